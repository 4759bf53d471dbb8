"""Integrity checks and sanity warnings as worksheet functions.

A check is an identity that must hold (the balance sheet balances); a warning is a figure that
articulates but that no professional would accept (negative cash, a tax rate of 80%): the model
stays consistent, the reader is told.
"""
from __future__ import annotations

import math

from .constants import ERR_NA, ERR_VALUE, NOT_MEANINGFUL, NOT_VALUED
from .registry import ANY, NUMBER, OPTIONAL, Arg, excel_function, is_error

DEFAULT_TOLERANCE = 0.001

OK = "OK"
WARN = "WARN"


@excel_function("CHECK", "OK when two values agree within a tolerance, else FAIL.",
                Arg("actual", NUMBER, "Computed value"), Arg("expected", NUMBER, "Value it must equal"),
                Arg("tolerance", OPTIONAL, "Largest difference allowed, 0.001 if empty", DEFAULT_TOLERANCE),
                native="IF(ABS({0}-{1})<=ABS({2}),\"OK\",\"FAIL\")",
                sample=(507121.0, 507121.0, 0.001))
def check(actual: float, expected: float, tolerance: float) -> str:
    """'OK' when |actual - expected| <= tolerance, else 'FAIL'."""
    return "OK" if abs(actual - expected) <= abs(tolerance) else "FAIL"


def _bound(value):
    """A bound as a number, or None for no bound (an empty cell); anything else is rejected."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError("bound")
    return float(value)


@excel_function("WARN", "WARN when a value lies outside its bounds, else OK; NM passes through.",
                Arg("value", ANY, "The figure judged (a balance, a rate)"),
                Arg("minimum", ANY, "Smallest sensible value; empty for no lower bound", required=False),
                Arg("maximum", ANY, "Largest sensible value; empty for no upper bound", required=False),
                native='IF(ISNUMBER({0}),IF(OR(AND(ISNUMBER({1}),{0}<{1}),AND(ISNUMBER({2}),{0}>{2})),"WARN","OK"),'
                       'IF(ISERROR({0}),{0},IF(OR({0}={NM},{0}={NOT_VALUED}),{NM},#VALUE!)))',
                sample=(-805917.0, 0.0))
def warn(value, minimum=None, maximum=None) -> str:
    """A sanity warning: 'WARN' when `value` < `minimum` or > `maximum` (an empty bound does
    not bind), 'OK' inside. A ratio that is not meaningful (NM: a tax rate on a pre-tax loss)
    cannot be judged and answers NM, as does a valuation not made yet (未估值); an error value
    answers that error."""
    if is_error(value):
        return value.strip().upper()
    if value is None or value == "":
        return ERR_NA
    if isinstance(value, str):   # NM, or a valuation not made yet (未估值): nothing to judge
        return NOT_MEANINGFUL if value.strip() in (NOT_MEANINGFUL, NOT_VALUED) else ERR_VALUE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return ERR_VALUE
    for bound in (minimum, maximum):
        if is_error(bound):
            return bound.strip().upper()
    try:
        low, high = _bound(minimum), _bound(maximum)
    except ValueError:
        return ERR_VALUE
    return WARN if (low is not None and value < low) or (high is not None and value > high) else OK
