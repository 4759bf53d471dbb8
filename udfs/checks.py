"""Integrity checks as worksheet functions: two values that must agree."""
from __future__ import annotations

from .registry import NUMBER, OPTIONAL, Arg, excel_function

DEFAULT_TOLERANCE = 0.001


@excel_function("CHECK", "OK when two values agree within a tolerance, else FAIL.",
                Arg("actual", NUMBER, "Computed value"), Arg("expected", NUMBER, "Value it must equal"),
                Arg("tolerance", OPTIONAL, "Largest difference allowed, 0.001 if empty", DEFAULT_TOLERANCE),
                native="IF(ABS({0}-{1})<=ABS({2}),\"OK\",\"FAIL\")",
                sample=(507121.0, 507121.0, 0.001))
def check(actual: float, expected: float, tolerance: float) -> str:
    """'OK' when |actual - expected| <= tolerance, else 'FAIL'."""
    return "OK" if abs(actual - expected) <= abs(tolerance) else "FAIL"
