"""Reference implementations of the course's exercises.

Later notebooks import earlier pieces from here, so each notebook stands
alone: notebook 02 uses ``scaled_dot_product_attention`` from notebook 01
without making the learner finish notebook 01 first. The checkers do not use
these as ground truth where PyTorch has an independent one; the tests use them
to prove every checker accepts a correct answer.

There is one module per notebook (``attention`` for notebook 01, ...); every
name in a module's ``__all__`` is importable from ``utils.reference``.
"""

from utils._registry import export_all

__all__ = export_all(__name__, __path__, globals())
