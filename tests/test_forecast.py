"""Forecast methods: exp/got tables of plain cases and edges."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import examples
from udfs import forecast as f
from udfs.constants import NOT_MEANINGFUL as NM


@pytest.mark.parametrize("exp,method,args", [
    (110.0, f.grow, (100, 0.10)),
    (90.0, f.grow, (100, -0.10)),
    (0.0, f.grow, (100, -1.0)),
    (105.0, f.step, (100, 5)),
    (100.0, f.step, (100, 0)),
    (42.0, f.fixed, (42,)),
    (25.0, f.share_of, (100, 0.25)),
    (-15.0, f.cost_share, (100, 0.15)),
    (-78.0, f.cost_from_margin, (100, 0.22)),
    (-100.0, f.cost_from_margin, (100, 0.0)),
    (36.5, f.days_balance, (365, 36.5)),
    (36.5, f.days_balance, (-365, 36.5)),      # cost of sales is negative: the balance is not
    (30.0, f.days_balance, (360, 30, 360)),
])
def test_methods(exp, method, args):
    assert method(*args) == pytest.approx(exp)  # called here, not when the table is collected


def test_cagr_uses_n_minus_one_periods():
    # 100 -> 121 over three observations is two years of 10%, not three of 6.6%.
    assert f.cagr([100, 110, 121]) == pytest.approx(0.10)
    assert f.cagr([100, 200]) == pytest.approx(1.0)


@pytest.mark.parametrize("values", [[], [100], [0, 100], [-5, 10], [100, -1]])
def test_cagr_not_meaningful(values):
    assert f.cagr(values) == NM


@pytest.mark.parametrize("exp,values", [
    (0.10, [100, 110, 121]),
    (0.25, [100, 150, 150]),          # +50% then 0%
    (NM, [100]),
    (NM, [100, 0, 50]),               # growth from zero is undefined
    (NM, [-10, 20]),
])
def test_average_growth(exp, values):
    got = f.average_growth(values)
    assert got == exp if exp == NM else got == pytest.approx(exp)


@pytest.mark.parametrize("exp,values,ahead", [
    (40.0, [10, 20, 30], 1),
    (60.0, [10, 20, 30], 3),
    (5.0, [5, 5, 5, 5], 1),
    (NM, [5], 1),
])
def test_linear_trend(exp, values, ahead):
    got = f.linear_trend(values, ahead)
    assert got == exp if exp == NM else got == pytest.approx(exp)


def test_every_method_formula_names_a_registered_function():
    from udfs.formula import functions_used, parse
    from udfs.functions import BY_FORMULA_NAME
    for method in f.METHODS.values():
        tree = parse(method.formula.format(line="x", base="y", driver="d_x"))
        assert functions_used(tree) <= set(BY_FORMULA_NAME), method.name
        assert BY_FORMULA_NAME[next(iter(functions_used(tree)))].impl is method.function


@settings(max_examples=examples(200), deadline=None)
@given(driver=st.floats(0.0, 1.0), prior=st.floats(1.0, 1e6), base=st.floats(1.0, 1e6))  # every method's driver range holds [0, 1]
def test_every_method_inverts_to_its_own_driver(driver, prior, base):
    """Calibration solves each driver with its method's `invert`: the driver that makes the line
    land on a value is the driver that produced it, for every method (a new one included)."""
    from udfs.formula import evaluate, parse
    from udfs.functions import BY_FORMULA_NAME
    functions = {name: spec.impl for name, spec in BY_FORMULA_NAME.items()}
    for method in f.METHODS.values():
        used = 0.25 * base  # losses brought forward used: a method that takes them off its base inverts on the rest
        values = {("x", 1): prior, ("y", 0): base, ("d_x", 0): driver, ("d_tax_credit_limit", 0): 0.0, ("tax_loss_used", 0): used}
        line = evaluate(parse(method.formula.format(line="x", base="y", driver="d_x")), lambda k, lag: values[(k, lag)], functions)
        taxable = base - sum(values[(key, 0)] for key in method.base_less)
        assert method.invert(line, prior, taxable) == pytest.approx(driver, rel=1e-9, abs=1e-9), method.name


@pytest.mark.parametrize("pretax, rate, limit, expected", [
    (1000.0, 0.25, 0.0, 250.0),        # a profit is taxed in full
    (1000.0, 0.25, 999.0, 250.0),      # the limit only bounds credits
    (-1000.0, 0.25, 0.0, 0.0),         # a loss earns nothing without a limit
    (-1000.0, 0.25, 100.0, -100.0),    # ... and at most the limit
    (-1000.0, 0.25, 1e9, -250.0),      # ... and never more than rate x loss
    (-1000.0, 0.25, -50.0, 0.0),       # a negative limit counts as none
    (0.0, 0.25, 100.0, 0.0),
])
def test_tax_charge(pretax, rate, limit, expected):
    assert f.tax_charge(pretax, rate, limit) == pytest.approx(expected)
