"""One checker per exercise, named ``check_<exercise name>``.

Use it in the cell right after the exercise::

    check_softmax(softmax)

It prints one line when your code is right, and raises ``AssertionError``
saying what was expected, what came back and, when it recognises a common
mistake, what to look at.

There is one module per notebook (``attention`` for notebook 01, ...); every
name in a module's ``__all__`` is importable from ``utils.checks``.
"""

from utils._registry import export_all

__all__ = export_all(__name__, __path__, globals())
