"""One checker per exercise, named ``check_<exercise name>``.

Use it in the cell right after the exercise::

    check_softmax(softmax)

It prints one line when your code is right, and raises ``AssertionError``
saying what was expected, what came back and, when it recognises a common
mistake, what to look at.
"""

from utils.checks.attention import check_causal_mask, check_scaled_dot_product_attention, check_softmax

__all__ = ["check_softmax", "check_scaled_dot_product_attention", "check_causal_mask"]
