"""Invariants under any sane change of the drivers (Hypothesis)."""
from __future__ import annotations

import copy
import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import examples
from udfs.engine import driver_key
from workbook import spec
from workbook.company import load
from workbook.model import build_model

RATE_METHODS = {"growth", "share", "cost_share", "cost_from_margin"}
SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def base():
    """The default company, loaded when a test first needs it rather than while pytest collects."""
    return load()


def _forecast() -> list[str]:
    return [y.label for y in base().forecast_years]


def _driver_of(input_key: str):
    """The company driver behind an input cell's key, or None for an input that is not a driver."""
    return {driver_key(line): driver for line, driver in base().drivers.items()}.get(input_key)


def _driver_cells() -> list:
    """Every forecast-year input on the assumptions sheet, standalone drivers included."""
    return sorted(k for k in base().inputs if k[0].startswith(driver_key("")) and k[1] in _forecast())


def _is_rate(key: str) -> bool:
    driver = _driver_of(key)
    return driver is not None and driver.method in RATE_METHODS


@st.composite
def perturbations(draw):
    """A few driver cells moved: rates by up to +-0.3, days by up to +-50%, money by up to +-50%
    of the value plus or minus 5,000."""
    cells = draw(st.lists(st.sampled_from(_driver_cells()), min_size=1, max_size=6, unique=True))
    moves = {}
    for cell in cells:
        value = base().inputs[cell]
        if _is_rate(cell[0]):
            moves[cell] = value + draw(st.floats(-0.3, 0.3))
        else:
            moves[cell] = value * draw(st.floats(0.5, 1.5)) + draw(st.floats(-5000, 5000))
    return moves


def _model_with(moves):
    company = copy.deepcopy(base())
    company.inputs.update(moves)
    return build_model(company)


@SETTINGS
@given(perturbations())
def test_any_driver_change_keeps_the_balance_sheet_balanced(moves):
    model = _model_with(moves)
    for year in _forecast():
        assets = model.value("total_assets", year)
        claims = model.value("total_liabilities", year) + model.value("total_equity", year)
        assert abs(assets - claims) < 0.001
    assert all(c["passed"] for c in model.checks), [c for c in model.checks if not c["passed"]][:1]


@SETTINGS
@given(perturbations())
def test_any_driver_change_keeps_cash_flow_reconciled(moves):
    model = _model_with(moves)
    years = [y.label for y in model.values.years]
    for year in _forecast():
        prior = years[years.index(year) - 1]
        assert abs(model.value("cash", prior) + model.value("net_cash_flow", year) - model.value("cash", year)) < 0.001


DIMENSIONLESS = ("gross_margin", "operating_margin", "ebitda_margin", "net_margin", "roe", "roa", "debt_ratio",
                 "current_ratio", "quick_ratio", "net_gearing", "receivable_days", "inventory_days", "payable_days",
                 "revenue_growth", "non_ifrs_growth", "gross_profit_growth", "attributable_growth")
MONEY_METHODS = {"fixed", "step"}


def _scaled(factor: float):
    company = copy.deepcopy(base())
    rates = {line.key for line in company.layout.lines if line.fmt in ("pct", "eps")}  # a yield, a debt rate, a per-share input
    for (key, year), value in base().inputs.items():
        driver = _driver_of(key)
        is_money = driver is None or driver.method in MONEY_METHODS
        if is_money and key not in rates:
            company.inputs[(key, year)] = value * factor
    return build_model(company)


@settings(max_examples=examples(25), deadline=None)
@given(st.floats(0.001, 1000.0))
def test_ratios_do_not_depend_on_the_unit_of_money(factor):
    plain, scaled = build_model(base()), _scaled(factor)
    for key in DIMENSIONLESS:
        for year in [y.label for y in plain.values.years if y.kind != "base"]:
            a, b = plain.value(key, year), scaled.value(key, year)
            if isinstance(a, float):
                assert abs(a - b) <= 1e-9 * max(1.0, abs(a)), (key, year, a, b)
            else:
                assert a == b


RANKS = ["卖出", "减持", "中性", "增持", "买入"]


@settings(max_examples=examples(300), deadline=None)
@given(st.floats(-2, 2), st.floats(0, 0.5), st.sampled_from(["outer", "inner"]))
def test_rating_never_worsens_as_excess_return_rises(excess, rise, boundary):
    from udfs.rating import classify
    before, after = classify(excess, boundary=boundary), classify(excess + rise, boundary=boundary)
    assert RANKS.index(after) >= RANKS.index(before)


def test_lines_cover_every_table_line_of_the_report():
    from conftest import GOLDEN
    keys = {line.key for line in spec.model_lines(spec.load_layout())}
    for table in ("income", "balance", "cashflow", "summary"):
        assert {row["key"] for row in GOLDEN[table]} <= keys
