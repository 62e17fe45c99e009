"""Re-export the public names of every module in a package (one module per notebook).

``utils.checks`` and ``utils.reference`` hold one module per notebook
(``attention``, ...). Their ``__init__`` calls ``export_all`` so that
``from utils.checks import check_softmax`` works for every notebook's names
without a list to keep in sync. Two modules exporting the same name is a
mistake and stops the import.
"""

from __future__ import annotations

import importlib
import pkgutil


def export_all(package_name: str, package_path, namespace: dict) -> list[str]:
    """Import each public submodule and copy its ``__all__`` names into ``namespace``."""
    exported: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package_name}.{info.name}")
        for name in module.__all__:
            if name in exported:
                raise ImportError(
                    f"{package_name}: {name!r} is exported by both {exported[name]} and {info.name}"
                )
            exported[name] = info.name
            namespace[name] = getattr(module, name)
    return list(exported)
