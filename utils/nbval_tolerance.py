"""nbval with a tolerance for numbers that come out of training, sampling or timing.

nbval compares every output of a solution notebook with the stored one, byte
for byte. That is right for shapes, exact counts, closed-form numbers and the
check cells' lines, and wrong for a loss after 2,000 steps of training: another
CPU (AVX-512 instead of AVX2, an ARM laptop), another thread count or another
PyTorch build rounds the last bits differently, training amplifies that, and
``val 1.775`` comes out as ``val 1.769``.

A code cell tagged ``nbval-approx`` is compared like every other cell, except
that each number printed with a decimal point (or an exponent) in its text
outputs may differ from the stored one by a tolerance: the larger of

* ``RTOL`` (5%) of the stored value, and
* one unit of the last digit the stored number prints (``1.78`` may come back
  as ``1.77`` or ``1.79``; rounding alone can move the last digit by one).

Everything else must still be identical: the words, the number of numbers,
and every integer (a shape, a count, a step number), so a changed shape or
check line fails as in any other cell. ``nan`` and ``inf`` must stay what
they are. A count that comes out of training is printed as a fraction or a
percentage with decimals, or asserted in the cell instead of compared.

The comparison is done by nbval itself: before nbval compares a tagged cell,
every number of the new output that is within tolerance of the stored number
at the same place is replaced by the stored text, so whatever is left to
differ (a number out of tolerance, changed words, a changed count of numbers)
fails with nbval's usual side-by-side report.

The plugin is loaded by the repository's ``conftest.py``; to use it elsewhere:
``pytest -p utils.nbval_tolerance --nbval ...``.
"""

from __future__ import annotations

import copy
import math
import re

TAG = "nbval-approx"
RTOL = 0.05

# A number as notebooks print them: optional sign, digits with an optional
# fraction (or a bare fraction), optional exponent; or nan / inf. Not a part of
# a word or of a version string ("avx512", "x86", "2.13.0"), but a unit may
# follow ("1.84x", "12ms"), and so may a full stop.
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?:\d+\.\d+|\.\d+|\d+)(?:[eE][-+]?\d+)?(?!\d|\.\d)"
    r"|(?<![\w])[-+]?(?:nan|inf)(?![\w])",
    re.IGNORECASE,
)


def _tolerance(ref: str, value: float, rtol: float) -> float:
    """How far a number may move from the stored ``ref`` (its text and its value); 0 for an integer."""
    mantissa, e, exponent = ref.lower().partition("e")
    if "." not in mantissa and not e:
        return 0.0
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return max(rtol * abs(value), 10.0 ** (int(exponent) - decimals if e else -decimals))


def numbers_close(ref: str, new: str, rtol: float = RTOL) -> bool:
    """Whether the number printed as ``new`` is within tolerance of the stored ``ref``."""
    a, b = float(ref), float(new)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    # A tiny margin for the float arithmetic of the tolerance itself.
    return abs(a - b) <= _tolerance(ref, a, rtol) * (1 + 1e-9)


def snap(ref: str, new: str, rtol: float = RTOL) -> str:
    """``new`` with every number that is close to ``ref``'s number at the same place replaced by it.

    The two texts must have the same words and the same number of numbers;
    otherwise ``new`` comes back unchanged (and nbval reports the difference).
    """
    ref_parts, new_parts = _NUMBER.split(ref), _NUMBER.split(new)
    if ref_parts != new_parts:  # different text around the numbers (or a different count)
        return new
    ref_numbers, new_numbers = _NUMBER.findall(ref), _NUMBER.findall(new)
    out = [new_parts[0]]
    for r, n, text_after in zip(ref_numbers, new_numbers, new_parts[1:]):
        out.append(r if numbers_close(r, n, rtol) else n)
        out.append(text_after)
    return "".join(out)


def _texts(output: dict):
    """(key, text) for each comparable text of one output, in a stable order."""
    if output.get("output_type") == "stream":
        yield ("stream", output.get("name")), output.get("text", "")
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") and isinstance(value, str):
            yield ("data", mime), value


def snap_outputs(new_outputs: list, ref_outputs: list, rtol: float = RTOL) -> list:
    """A copy of ``new_outputs`` whose numbers are snapped to ``ref_outputs``'s where close.

    Outputs are paired as nbval pairs them: the n-th stdout text with the n-th
    stored stdout text, the n-th ``text/plain`` with the n-th stored one, and
    so on.
    """
    stored: dict = {}
    for output in ref_outputs:
        for key, text in _texts(output):
            stored.setdefault(key, []).append(text)
    seen: dict = {}
    snapped = copy.deepcopy(new_outputs)
    for output in snapped:
        for key, text in list(_texts(output)):
            i = seen.get(key, 0)
            seen[key] = i + 1
            if i >= len(stored.get(key, [])):
                continue
            new_text = snap(stored[key][i], text, rtol)
            if key[0] == "stream":
                output["text"] = new_text
            else:
                output["data"][key[1]] = new_text
    return snapped


def pytest_configure(config):
    """Teach nbval's cell comparison about cells tagged ``nbval-approx``."""
    try:
        from nbval.plugin import IPyNbCell, coalesce_streams
    except ImportError:  # nbval not installed: nothing to extend
        return
    if getattr(IPyNbCell.compare_outputs, "_course_tolerance", False):
        return
    exact = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        if TAG in self.cell.get("metadata", {}).get("tags", []):
            # nbval hands over coalesced streams; the stored side is coalesced the same way.
            test = snap_outputs(coalesce_streams(test), coalesce_streams(ref))
        return exact(self, test, ref, skip_compare)

    compare_outputs._course_tolerance = True
    IPyNbCell.compare_outputs = compare_outputs
