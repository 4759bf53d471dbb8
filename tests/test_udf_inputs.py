"""No Python traceback can reach a cell: every exposed function, fed what Excel can pass, answers
with a number, an Excel error value or a documented label."""
from __future__ import annotations

import datetime as dt
import inspect
import itertools
import math

import pytest

import udfs
from udfs.constants import ACTION_DOWNGRADE, ACTION_FIRST, ACTION_MAINTAIN, ACTION_UPGRADE, EXCEL_ERRORS, NOT_MEANINGFUL, NOT_VALUED
from udfs.rating import schemes
from udfs.valuation import LABELS as VALUATION_LABELS

LABELS = {NOT_MEANINGFUL, NOT_VALUED, "OK", "FAIL", "WARN", ACTION_FIRST, ACTION_MAINTAIN, ACTION_UPGRADE, ACTION_DOWNGRADE, *VALUATION_LABELS}
for scheme in schemes().values():
    LABELS |= set(scheme.labels) | {scheme.unrated} | set(scheme.benchmarks.values())

BAD = [None, "", "text", "12", True, False, "#N/A", "#DIV/0!", "#VALUE!", 0, 0.0, -0.0, -1, -1e308, 1e308,
       float("nan"), float("inf"), dt.datetime(2025, 12, 18), [[1, 2], [3, 4]], [[1, 2, 3]], [[None]], [], [[]]]
FUNCTIONS = sorted(udfs.excel_functions().items())


def acceptable(result) -> bool:
    if isinstance(result, list):  # an array function's grid: every cell acceptable
        return all(acceptable(cell) for cell in result)
    if isinstance(result, float):
        return math.isfinite(result)
    return isinstance(result, str) and (result in EXCEL_ERRORS or result in LABELS)


@pytest.mark.parametrize("name,function", FUNCTIONS, ids=[n for n, _ in FUNCTIONS])
def test_bad_inputs_never_raise_or_leak(name, function):
    arity = len(inspect.signature(function).parameters)
    good = ([40.2, 46.0, 0.1, 0.0, "everbright", "outer"] + [1.0] * arity)[:arity]
    checked = 0
    for position, bad in itertools.product(range(arity), BAD):
        args = list(good)
        args[position] = bad
        result = function(*args)
        assert acceptable(result), (name, position, bad, result)
        checked += 1
    assert acceptable(function())
    assert acceptable(function(*([None] * arity)))
    assert function(*([1.0] * (arity + 1))) == "#VALUE!"  # more arguments than the function takes
    assert checked == arity * len(BAD)


@pytest.mark.parametrize("name,args,exp", [
    ("ER_GROWTH", (100, "ten"), "#VALUE!"),
    ("ER_GROWTH", (None, 0.1), "#N/A"),
    ("ER_GROWTH", ("#DIV/0!", 0.1), "#DIV/0!"),
    ("ER_GROWTH", ([[100, 200]], 0.1), "#VALUE!"),
    ("ER_GROWTH", ([[100]], 0.1), pytest.approx(110.0)),
    ("ER_MULTIPLE", (36.38, -0.5), "NM"),
    ("ER_MULTIPLE", (36.38, 0), "NM"),
    ("ER_PER_SHARE", (45650, 0), "NM"),
    ("ER_GROWTH", (1e308, 10), "#NUM!"),
    ("ER_CAGR", ([[100], [110], [121]],), pytest.approx(0.1)),
    ("ER_CAGR", ([[100, 110], [121, 133]],), "#VALUE!"),
    ("ER_RATING", (40.2, None), "无评级"),
    ("ER_RATING", (40.2, 50.0, 0.12), "增持"),             # 24.4% - 12% = 12.4%
    ("ER_RATING", ("#N/A", 50.0, 0.05), "无评级"),
    ("ER_UPSIDE", (40.2, None), "NM"),
    ("ER_BENCHMARK", ("1810.HK",), "恒生指数"),
    ("ER_BENCHMARK", ("XYZ.??",), "#N/A"),
    ("ER_DAYS_BALANCE", (365, 30, None), pytest.approx(30.0)),
])
def test_documented_answers(name, args, exp):
    assert udfs.excel_functions()[name](*args) == exp
