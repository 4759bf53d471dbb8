"""Ratios: exp/got tables, including every undefined case."""
from __future__ import annotations

import pytest

from udfs import ratios as r
from udfs.constants import NOT_MEANINGFUL as NM
from udfs.functions import BY_FORMULA_NAME


def by_formula_name(name: str):
    """The function a layout's formula reaches under `name` (several names share one quotient)."""
    return BY_FORMULA_NAME[name].impl


margin, return_on, coverage, per_share, ev_to_ebitda = map(
    by_formula_name, ("margin", "return_on", "coverage", "per_share", "ev_to_ebitda"))

CASES = [
    # growth_rate
    (0.301, r.growth_rate, (130.1, 100)), (-0.032, r.growth_rate, (96.8, 100)),
    (NM, r.growth_rate, (10, 0)), (NM, r.growth_rate, (10, -5)), (-1.0, r.growth_rate, (0, 10)),
    # margin, return_on, coverage
    (0.22, margin, (22, 100)), (NM, margin, (22, 0)), (NM, margin, (22, -100)), (-0.1, margin, (-10, 100)),
    (0.195, return_on, (19.5, 100)), (NM, return_on, (10, 0)), (NM, return_on, (10, -50)),
    (1.5, coverage, (150, 100)), (NM, coverage, (150, 0)),
    # quick ratio, net gearing
    (0.8, r.quick_ratio, (150, 70, 100)), (NM, r.quick_ratio, (150, 70, 0)),
    (-0.5, r.net_gearing, (50, 150, 200)), (0.25, r.net_gearing, (150, 100, 200)), (NM, r.net_gearing, (10, 0, -1)),
    # days
    (36.5, r.turnover_days, (10, 100)), (36.5, r.turnover_days, (10, -100)), (NM, r.turnover_days, (10, 0)),
    (30.0, r.turnover_days, (10, 120, 360)),
    # per share, multiples
    (2.0, per_share, (50, 25)), (NM, per_share, (10, 0)), (-0.5, per_share, (-10, 20)),
    (22.0, r.price_to, (36.3, 1.65)), (NM, r.price_to, (36.3, 0)), (NM, r.price_to, (36.3, -0.5)), (NM, r.price_to, (0, 1.0)),
    (36.37698, r.local_price, (40.20, 0.9049)), (NM, r.local_price, (-1, 0.9)), (NM, r.local_price, (40.2, 0)),
    (1100.0, r.enterprise_value, (1000, 300, 250, 50)),
    (11.0, ev_to_ebitda, (1100, 100)), (NM, ev_to_ebitda, (1100, 0)), (NM, ev_to_ebitda, (1100, -5)),
    (0.02, r.dividend_yield, (-100, 100, 50)), (0.0, r.dividend_yield, (0, 100, 50)), (NM, r.dividend_yield, (-100, 0, 50)),
    (NM, r.dividend_yield, (-100, 100, 0)),
]


@pytest.mark.parametrize("exp,function,args", CASES)
def test_ratio(exp, function, args):
    # called here, not when the table is collected, so a failure is this case's, not the module's
    assert function(*args) == (NM if exp == NM else pytest.approx(exp, rel=1e-6))


def test_negative_earnings_pe_is_labelled_not_a_low_number(model):
    assert r.price_to(36.4, -0.2) == NM
