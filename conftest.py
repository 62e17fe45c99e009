# nbval compares numbers in cells tagged `nbval-approx` with a tolerance
# (see utils/nbval_tolerance.py and the README's maintainer section).
pytest_plugins = ["utils.nbval_tolerance"]
