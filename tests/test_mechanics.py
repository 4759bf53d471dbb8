"""Model mechanics a professional expects (issue 13): the sanity warnings shown apart from the
integrity checks. A model whose statements articulate can still be implausible (negative cash,
a 300% tax rate); every such draw must show its warning, so no model is green with negative cash."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import udfs
from addin.audit import audit
from addin.show import warnings_block
from conftest import examples
from workbook import spec
from workbook.build import build
from workbook.company import load
from workbook.model import build_model

SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
KYSEC = "workbook/data/kysec_300592sz.toml"
# The valuation's sanity warnings (common_lines.toml): they judge the valuation, not the statements.
VALUATION_WARNINGS = {"growth_near_wacc", "terminal_value_share", "upside_extreme"}
WARN = udfs.excel_functions()["ER_WARN"]


@pytest.mark.parametrize("args, expected", [
    ((-1.0, 0.0), "WARN"),              # below the floor
    ((0.0, 0.0), "OK"),                 # the bound itself is sensible
    ((0.6, 0.0, 0.5), "WARN"),          # above the ceiling
    ((0.175, 0.0, 0.5), "OK"),
    ((1e9, None, None), "OK"),          # no bound binds
    ((-1e9, None, 0.5), "OK"),          # only a ceiling
    (("NM", 0.0, 0.5), "NM"),           # a tax rate on a loss cannot be judged
    (("#DIV/0!", 0.0), "#DIV/0!"),      # an error reaches the cell as itself
    (("12", 0.0), "#VALUE!"),           # text is not a figure
    ((5.0, "low"), "#VALUE!"),          # nor a bound
    ((True, 0.0), "#VALUE!"),
])
def test_warn_function(args, expected):
    assert WARN(*args) == expected


ISSUE_13 = {"cash_negative", "ppe_negative", "equity_negative", "revenue_negative", "receivables_negative",
            "inventory_negative", "tax_rate_range", "payout_above_100"}
ISSUE_20 = {"revenue_growth_range", "gross_margin_range", "gross_margin_move", "ebitda_margin_range", "ebitda_margin_move",
            "capex_to_revenue", "net_debt_to_ebitda", "idle_securities", "share_count_not_positive"}


def test_both_layouts_declare_the_warnings_of_the_issues():
    """The standard warnings (workbook/data/warnings.toml) reach every layout that has the lines
    they read: the 开源 layout has no securities, so no idle-securities warning."""
    xiaomi, kysec = spec.load_layout("everbright_hk"), spec.load_layout("kysec_a")
    assert {w.key for w in xiaomi.warnings} == ISSUE_13 | ISSUE_20 | VALUATION_WARNINGS
    assert {w.key for w in kysec.warnings} == (ISSUE_13 | ISSUE_20 | VALUATION_WARNINGS) - {"idle_securities"}
    bounds = {w.key: (w.minimum, w.maximum) for w in xiaomi.warnings}
    assert bounds["tax_rate_range"] == (0.0, 0.5) and bounds["revenue_growth_range"] == (-0.8, 1.0)
    assert bounds["gross_margin_move"] == (-0.2, 0.2) and bounds["capex_to_revenue"] == (None, 0.5)
    assert bounds["net_debt_to_ebitda"] == (0.25, None)   # EBITDA below a quarter of net debt: above 4x
    # each in the layout's own signs: tax and capex are costs printed negative by Everbright, positive by 开源
    assert {w.key: w.value for w in xiaomi.warnings}["capex_to_revenue"] == "coverage((-capex), revenue)"
    assert {w.key: w.value for w in kysec.warnings}["capex_to_revenue"] == "coverage((capex), revenue)"


def test_a_layouts_own_warning_replaces_the_standard_one(tmp_path):
    from workbook.tomlfile import read_toml
    layout = spec.load_layout("kysec_a")
    data = read_toml(layout.path)
    data["warnings"] = [{"key": "capex_to_revenue", "zh": "资本支出过高", "en": "Capex high", "value": "coverage(capex, revenue)",
                         "max": 0.3}]
    parsed = spec.parse_layout(data, layout.path)
    assert [w for w in parsed.warnings if w.key == "capex_to_revenue"] == [
        spec.SanityWarning("capex_to_revenue", "资本支出过高", "Capex high", "coverage(capex, revenue)", None, 0.3)]
    assert len(parsed.warnings) == len(layout.warnings)


@pytest.mark.parametrize("raw, message", [
    ({"key": "k", "zh": "z", "en": "e", "value": "cash"}, "needs a number for `min`, `max` or both"),
    ({"key": "k", "zh": "z", "en": "e", "value": "cash", "min": "0"}, "needs a number"),
    ({"key": "k", "zh": "z", "en": "e", "value": "nonsense_line", "min": 0}, "reads 'nonsense_line'"),
    ({"key": "k", "zh": "z", "en": "e", "value": "cash", "min": 0, "colour": "red"}, "unknown field 'colour'"),
    ({"key": "k", "zh": "z", "value": "cash", "min": 0}, "needs `en`"),
])
def test_bad_warning_declarations_are_refused_in_one_line(raw, message):
    from workbook.tomlfile import read_toml
    layout = spec.load_layout("everbright_hk")
    data = read_toml(layout.path)
    data["warnings"] = [raw]
    with pytest.raises(spec.LayoutError, match=message.replace("(", r"\(").replace("`", "`")):
        spec.parse_layout(data, layout.path)


@pytest.mark.parametrize("data", [None, KYSEC])
def test_the_reports_forecast_fires_no_warning(data):
    """The note's forecast is plausible; the valuation's warnings judge the example valuation (the
    DCF's terminal value share, which a three-year forecast makes large: tests of issue 21)."""
    model = build_model(load(data) if data else None)
    layouts = {w.key for w in model.company.layout.warnings} - VALUATION_WARNINGS
    statuses = {w["status"] for w in model.warnings if w["warning"] in layouts}
    assert statuses <= {"OK", "NM"} and [w for w in model.triggered_warnings if w["warning"] in layouts] == []
    # NM: net cash, no leverage to judge (and 华凯易佰's example DCF is NM, so its TV share is too)
    assert {w["warning"] for w in model.warnings if w["status"] == "NM" and w["warning"] in layouts} <= {
        "net_debt_to_ebitda", "payout_above_100"}
    assert len(model.warnings) == len(model.company.layout.warnings) * len(model.company.forecast_years)


def _with(company, drivers: dict, **inputs_by_key):
    """The company with each driver (and each `d_` input named by keyword) set in every forecast year."""
    inputs = dict(company.inputs)
    for key, value in {**drivers, **inputs_by_key}.items():
        for year in company.forecast_years:
            inputs[(f"d_{key}", year.label)] = value
    return build_model(replace(company, inputs=inputs))


RATE = st.floats(min_value=-1.5, max_value=1.5, allow_nan=False)


def _expected_warnings(model, year: str, tax_sign: float) -> set[str]:
    """The conditions of issues 13 and 20 a year meets, computed from the figures themselves.
    `tax_sign` is how the layout prints costs: -1 where tax and capex are negative."""
    years = [y.label for y in model.values.years]
    prior = years[years.index(year) - 1]
    v = lambda key, y=year: model.value(key, y)  # noqa: E731

    def gross(y):
        return v("gross_profit", y) if tax_sign < 0 else v("revenue", y) - v("cogs", y)

    def margin_move(profit) -> bool:
        if v("revenue") <= 0 or v("revenue", prior) <= 0:
            return False   # a margin on no revenue cannot be judged
        return not -0.2 <= profit(year) / v("revenue") - profit(prior) / v("revenue", prior) <= 0.2

    securities = v("securities") if tax_sign < 0 else 0.0

    def net_debt():
        return v("short_term_debt") + v("long_term_debt") + v("revolver") - v("cash") - securities
    conditions = {
        "cash_negative": lambda: v("cash_before_revolver") < 0, "equity_negative": lambda: v("shareholders_equity") < 0,
        "revenue_negative": lambda: v("revenue") < 0, "ppe_negative": lambda: v("ppe") < 0,
        "receivables_negative": lambda: v("receivables") < 0, "inventory_negative": lambda: v("inventory") < 0,
        "tax_rate_range": lambda: v("pretax_profit") > 0 and not 0 <= tax_sign * v("income_tax") / v("pretax_profit") <= 0.5,
        "payout_above_100": lambda: v("eps") > 0 and v("dps") / v("eps") > 1,
        "revenue_growth_range": lambda: v("revenue", prior) > 0 and not -0.8 <= v("revenue") / v("revenue", prior) - 1 <= 1.0,
        "gross_margin_range": lambda: v("revenue") > 0 and not -1.0 <= gross(year) / v("revenue") <= 1.0,
        "gross_margin_move": lambda: margin_move(gross),
        "ebitda_margin_range": lambda: v("revenue") > 0 and not -1.0 <= v("ebitda") / v("revenue") <= 1.0,
        "ebitda_margin_move": lambda: margin_move(lambda y: v("ebitda", y)),
        "capex_to_revenue": lambda: v("revenue") > 0 and tax_sign * v("capex") / v("revenue") > 0.5,
        "net_debt_to_ebitda": lambda: net_debt() > 0 and v("ebitda") / net_debt() < 0.25,
        "idle_securities": lambda: v("revolver") > 0 and securities > 0,
        "share_count_not_positive": lambda: v("share_count") < 1e-6,
    }
    expected = {}
    for key, condition in conditions.items():
        try:
            expected[key] = condition()
        except TypeError:   # a figure that is NM or an error (no shares left): the warning shows it, not WARN
            expected[key] = False
    return {k for k, fires in expected.items() if fires}


MECHANICS = dict(debt_rate=st.floats(0.0, 0.2), buyback=st.floats(0.0, 3_000.0), floor=st.floats(0.0, 50_000.0),
                 credit=st.floats(0.0, 50_000.0))


@SETTINGS
@given(smartphone=RATE, iot=RATE, internet=RATE, auto=RATE, other=st.floats(-200_000, 50_000),
       margin=st.floats(-0.5, 0.9), opex=st.floats(0.0, 0.8), tax=st.floats(0.0, 1.0),
       capex=st.floats(-300_000, 0.0), payout=st.floats(0.0, 3.0), **MECHANICS)
def test_every_implausible_draw_shows_its_warning(smartphone, iot, internet, auto, other, margin, opex, tax,
                                                   capex, payout, debt_rate, buyback, floor, credit):
    """Wide random drivers, the mechanics included (interest, buybacks, a cash floor, a tax credit
    limit): whatever the draw, the statements articulate, cash stays at its floor, and a year
    with negative cash, equity, revenue or PP&E, a tax rate outside 0–50% or dividends above
    profit shows that warning, and only then."""
    company = load()
    model = _with(company, {"smartphone": smartphone, "iot": iot, "internet": internet, "auto": auto,
                            "other_revenue": other, "cogs": margin, "opex_cash": opex, "income_tax": tax,
                            "capex": capex, "dps": payout}, debt_rate=debt_rate, buyback_shares=buyback,
                  min_cash=floor, tax_credit_limit=credit)
    assert model.balanced  # the statements articulate whatever the draw: only the warnings can tell
    assert all(c["passed"] for c in model.checks)
    fired = {(w["warning"], w["year"]) for w in model.triggered_warnings if w["warning"] not in VALUATION_WARNINGS}
    for year in (y.label for y in company.forecast_years):
        assert _expected_warnings(model, year, -1.0) == {k for k, y in fired if y == year}
        assert model.value("cash", year) >= floor - 1e-6  # the revolver keeps cash at its floor whatever the draw


@SETTINGS
@given(growth=RATE, cogs=st.floats(0.3, 1.3), admin=st.floats(0.0, 0.6), tax=st.floats(0.0, 1.0),
       capex=st.floats(0.0, 5_000.0), payout=st.floats(0.0, 3.0), debt_rate=st.floats(0.0, 0.2),
       buyback=st.floats(0.0, 100.0), floor=st.floats(0.0, 3_000.0), credit=st.floats(0.0, 500.0))
def test_every_implausible_draw_of_the_second_company_shows_its_warning(growth, cogs, admin, tax, capex, payout,
                                                                         debt_rate, buyback, floor, credit):
    """The same for 华凯易佰 in the 开源 layout (costs and tax printed positive)."""
    company = load(KYSEC)
    model = _with(company, {"revenue": growth, "cogs": cogs, "admin_cash": admin, "income_tax": tax,
                            "capex": capex, "dps": payout}, debt_rate=debt_rate, buyback_shares=buyback,
                  min_cash=floor, tax_credit_limit=credit)
    assert model.balanced
    assert all(c["passed"] for c in model.checks)
    fired = {(w["warning"], w["year"]) for w in model.triggered_warnings if w["warning"] not in VALUATION_WARNINGS}
    for year in (y.label for y in company.forecast_years):
        assert _expected_warnings(model, year, 1.0) == {k for k, y in fired if y == year}
        assert model.value("cash", year) >= floor - 1e-6


def test_negative_cash_is_never_green_in_the_workbook(tmp_path):
    """The built workbook, evaluated headless as `check` does, lists the warnings the engine gives."""
    company = load()
    drivers = {"smartphone": -1.5, "auto": -1.5}
    model = _with(company, drivers)
    inputs = dict(company.inputs)
    for key, value in drivers.items():
        for year in company.forecast_years:
            inputs[(f"d_{key}", year.label)] = value
    path = build(tmp_path / "wild.xlsm", replace(company, inputs=inputs))
    engine = {(w["label_zh"], w["year"]) for w in model.triggered_warnings}
    assert ("现金为负（循环贷款前）", company.forecast_years[0].label) in engine
    result = audit(path)
    assert {(label, year) for label, year, _ in result.warnings} == engine
    assert result.warnings_run == len(model.warnings)
    assert not result.failed  # a warning is not a failing check: the statements still articulate
    assert "现金为负" in warnings_block(model)


FLOOR = st.floats(min_value=0.0, max_value=300_000.0)


@SETTINGS
@given(floor=FLOOR, smartphone=RATE, auto=RATE, capex=st.floats(-400_000, 0.0), payout=st.floats(0.0, 3.0))
def test_cash_never_falls_below_its_floor_and_the_revolver_is_repaid(floor, smartphone, auto, capex, payout):
    """Issue 13 item 2: a minimum-cash driver; any shortfall is drawn on the revolver (a balance-
    sheet line with its own cash-flow line), repaid once cash allows; the statements balance."""
    company = load()
    inputs = dict(company.inputs)
    for year in company.forecast_years:
        for key, value in (("d_min_cash", floor), ("d_smartphone", smartphone), ("d_auto", auto),
                           ("d_capex", capex), ("d_dps", payout)):
            inputs[(key, year.label)] = value
    model = build_model(replace(company, inputs=inputs))
    assert model.balanced
    for year in (y.label for y in company.forecast_years):
        before, cash, revolver = (model.value(k, year) for k in ("cash_before_revolver", "cash", "revolver"))
        assert cash >= floor - 1e-6
        assert revolver == pytest.approx(max(0.0, floor - before), abs=1e-6)
        assert cash == pytest.approx(max(before, floor), abs=1e-6)


@pytest.mark.parametrize("data", [None, KYSEC])
def test_with_the_reports_drivers_no_revolver_is_drawn(data):
    model = build_model(load(data) if data else None)
    assert all(model.value("revolver", y.label) == 0 for y in model.company.forecast_years)
    assert {c["check"] for c in model.checks} >= {"cash_floor"}


def test_a_cash_shortfall_in_the_second_company_is_funded_too():
    company = load(KYSEC)
    inputs = dict(company.inputs)
    for year in company.forecast_years:
        inputs[("d_min_cash", year.label)] = 2000.0  # above the printed cash: the revolver must fund it
    model = build_model(replace(company, inputs=inputs))
    assert model.balanced
    for year in company.forecast_years:
        assert model.value("cash", year.label) == pytest.approx(2000.0)
        assert model.value("revolver", year.label) > 0


def test_a_company_file_written_before_the_tax_credit_limit_loads_with_none(tmp_path):
    """Item 6: an input the layout defaults (`input_default`) may be missing from an older file."""
    import re
    text = (Path(__file__).resolve().parents[1] / "workbook" / "data" / "xiaomi_1810hk.toml").read_text(encoding="utf-8")
    older = re.sub(r"\n\[drivers\.d_tax_credit_limit\][^\[]*", "\n", text)
    assert "d_tax_credit_limit" not in older
    path = tmp_path / "older.toml"
    path.write_text(older, encoding="utf-8")
    company = load(str(path))
    assert all(company.inputs[("d_tax_credit_limit", y.label)] == 0.0 for y in company.forecast_years)
    assert build_model(company).balanced


@pytest.mark.parametrize("extra, message", [
    ({"input_default": "zero"}, "input_default"), ({"input_default": 0, "implied": "cash"}, "input_default"),
    ({"calibrated": True, "implied": "cash"}, "calibrated"), ({"calibrated": True, "input_default": 0}, "calibrated"),
])
def test_input_defaults_and_calibrated_drivers_are_declared_right(extra, message):
    """`input_default` is a number for an analyst input; `calibrated` marks a reconciling driver
    that has no reported-year value (a cash yield), never an input or one with `implied`."""
    from workbook.tomlfile import read_toml
    layout = spec.load_layout("everbright_hk")
    data = read_toml(layout.path)
    line = next(l for l in data["lines"] if l["key"] == "d_min_cash")
    line.update(extra)
    with pytest.raises(spec.LayoutError, match=message):
        spec.parse_layout(data, layout.path)
    assert "d_cash_yield" in layout.calibrated and "d_debt_rate" not in layout.calibrated


@pytest.mark.parametrize("data, capex_sign", [(None, -1.0), (KYSEC, 1.0)])  # Xiaomi prints capex negative, 开源 positive
@SETTINGS
@given(more_da=st.floats(0.001, 0.3), more_capex=st.floats(1.0, 2_000.0))
def test_da_comes_from_the_asset_base_and_reaches_profit(data, capex_sign, more_da, more_capex):
    """Item 3: D&A is a rate on opening PP&E plus capex, so capex drives D&A; D&A is inside the
    operating costs, so a higher rate lowers operating profit as much as it raises D&A (EBITDA
    unchanged) and adds to cash only its tax shield, not the whole amount."""
    company = load(data) if data else load()
    first = company.forecast_years[0].label
    before = build_model(company)

    def changed(key, delta):
        inputs = dict(company.inputs)
        inputs[(key, first)] = inputs[(key, first)] + delta
        return build_model(replace(company, inputs=inputs))

    faster = changed("d_da", more_da)
    extra = faster.value("da", first) - before.value("da", first)
    assert extra == pytest.approx(more_da * before.value("depreciable_base", first))
    assert faster.value("operating_profit", first) == pytest.approx(before.value("operating_profit", first) - extra)
    assert faster.value("ebitda", first) == pytest.approx(before.value("ebitda", first))
    tax_rate = company.inputs[("d_income_tax", first)]
    assert faster.value("cash", first) - before.value("cash", first) == pytest.approx(tax_rate * extra, rel=1e-6)
    assert faster.value("ppe", first) == pytest.approx(before.value("ppe", first) - extra)

    heavier = changed("d_capex", capex_sign * more_capex)
    rate = company.inputs[("d_da", first)]
    assert heavier.value("da", first) - before.value("da", first) == pytest.approx(rate * more_capex)
    assert heavier.value("ppe", first) - before.value("ppe", first) == pytest.approx(more_capex * (1 - rate))


@SETTINGS
@given(payout=st.lists(st.floats(0.0, 1.5), min_size=3, max_size=3), last_dps=st.floats(0.0, 2.0))
def test_dividends_are_declared_per_share_and_paid_the_next_year(payout, last_dps):
    """Item 5: DPS is a payout of the year's EPS; the cash flow pays last year's DPS on the share
    count (the first forecast year pays the last reported DPS), which leaves cash and equity; the
    yield is DPS over the price in the reporting currency; the rating's expected dividend is the
    first forecast year's DPS, paid within the rating's horizon, in the trading currency."""
    company = load()
    years = [y.label for y in company.years]
    forecast = [y.label for y in company.forecast_years]
    # No interest here: what a dividend costs in interest (lost yield, a revolver) is the interest tests' business.
    base = dict(company.inputs)
    for year in forecast:
        base[("d_cash_yield", year)] = base[("d_debt_rate", year)] = 0.0
    inputs = dict(base)
    inputs[("dps", years[years.index(forecast[0]) - 1])] = last_dps
    for year, ratio in zip(forecast, payout):
        inputs[("d_dps", year)] = ratio
    paid = build_model(replace(company, inputs=inputs))
    none = build_model(replace(company, inputs=base))
    shares = paid.value("shares")
    assert paid.balanced
    total = 0.0
    for year in forecast:
        before = years[years.index(year) - 1]
        assert paid.value("dps", year) == pytest.approx(payout[forecast.index(year)] * paid.value("eps", year))
        assert paid.value("dividends", year) == pytest.approx(-paid.value("dps", before) * shares)
        total += paid.value("dividends", year)
        assert paid.value("shareholders_equity", year) - none.value("shareholders_equity", year) == pytest.approx(total, abs=1e-6)
        assert paid.value("cash_before_revolver", year) - none.value("cash_before_revolver", year) == pytest.approx(total, abs=1e-6)
        assert paid.value("dividend_yield", year) == pytest.approx(paid.value("dps", year) / paid.value("price_local", year))
    assert paid.value("expected_dps") == pytest.approx(paid.value("dps", forecast[0]) / paid.value("fx_rate"))


@pytest.mark.parametrize("args, expected", [
    ((100.0, 0.02, 50.0, 150.0, 0.04), 2.0 - 4.0),          # cash on opening, debt on the average
    ((100.0, 0.02, 50.0, 150.0, 0.04, 25.0), 2.0 - 5.0),    # the opening revolver costs the debt rate
    ((0.0, 0.02, 0.0, 0.0, 0.04), 0.0),
    ((100.0, 0.02, 50.0, 150.0, 0.04, 0.0, 0.0), 2.0 - 2.0),   # borrowings on their opening balance
    ((100.0, 0.02, 50.0, 150.0, 0.04, 0.0, 1.0), 2.0 - 6.0),   # ... or their closing one
])
def test_net_interest(args, expected):
    from udfs.forecast import net_interest
    assert net_interest(*args) == pytest.approx(expected)


@SETTINGS
@given(new_debt=st.floats(1_000.0, 200_000.0), rate=st.floats(0.0, 0.12), cash_yield=st.floats(0.0, 0.05))
def test_interest_follows_the_balances(new_debt, rate, cash_yield):
    """Item 1: borrowing costs the debt rate on the average balance in the year it is drawn and on
    the whole balance after; cash earns its yield on the opening balance; the statements still
    articulate. 100 billion of new debt is no longer free."""
    company = load()
    forecast = [y.label for y in company.forecast_years]
    base = dict(company.inputs)
    for year in forecast:
        base[("d_debt_rate", year)], base[("d_cash_yield", year)] = rate, cash_yield
    before = build_model(replace(company, inputs=base))
    inputs = dict(base)
    for year in forecast:
        inputs[("d_short_term_debt", year)] = base[("d_short_term_debt", year)] + new_debt
    after = build_model(replace(company, inputs=inputs))
    assert after.balanced
    first, second = forecast[0], forecast[1]
    # the year it is drawn: half a year's interest on it; the cash it brings earns from next year
    assert after.value("net_finance", first) - before.value("net_finance", first) == pytest.approx(-rate * new_debt / 2, abs=1e-6)
    # the opening-balance option: borrowing costs nothing in the year it is drawn
    def on_opening(values):
        values = dict(values)
        for year in forecast:
            values[("d_debt_timing", year)] = 0.0
        return build_model(replace(company, inputs=values))
    assert on_opening(inputs).value("net_finance", first) == pytest.approx(on_opening(base).value("net_finance", first), abs=1e-6)
    extra_cash = after.value("cash", first) - before.value("cash", first) + after.value("securities", first) - before.value("securities", first)
    assert after.value("net_finance", second) - before.value("net_finance", second) == pytest.approx(
        -rate * new_debt + cash_yield * extra_cash, abs=1e-6)


def test_the_revolver_costs_interest_from_the_year_after_it_is_drawn():
    company = load()
    forecast = [y.label for y in company.forecast_years]
    inputs = dict(company.inputs)
    for year in forecast:
        inputs[("d_min_cash", year)] = 250_000.0
    model = build_model(replace(company, inputs=inputs))
    first, second = forecast[0], forecast[1]
    drawn = model.value("revolver", first)
    assert drawn > 0
    without = dict(inputs)
    without[("d_min_cash", first)] = 0.0     # none drawn in the first year
    quiet = build_model(replace(company, inputs=without))
    rate = inputs[("d_debt_rate", second)]
    cash_yield = inputs[("d_cash_yield", second)]
    opening_gap = (model.value("cash", first) + model.value("securities", first)) - (quiet.value("cash", first) + quiet.value("securities", first))
    assert model.value("net_finance", second) - quiet.value("net_finance", second) == pytest.approx(
        cash_yield * opening_gap - rate * drawn, abs=1e-6)


@SETTINGS
@given(bought=st.floats(1.0, 2_000.0), vested=st.floats(0.0, 500.0), dilutive=st.floats(0.0, 800.0))
def test_buybacks_and_share_based_pay_move_the_share_count_and_eps(bought, vested, dilutive):
    """Item 4: shares bought back leave at the current price (cash and equity fall) and count for
    half the year they go; share-based pay adds shares without cash; basic EPS is on the weighted
    shares, diluted EPS also counts the awards outstanding; per-share figures and P/E follow."""
    company = load()
    forecast = [y.label for y in company.forecast_years]
    first, second = forecast[0], forecast[1]
    inputs = dict(company.inputs)
    inputs[("d_buyback_shares", first)] = bought
    inputs[("d_sbc_shares", first)] = vested
    for year in forecast:
        inputs[("d_dilutive_shares", year)] = dilutive
    after = build_model(replace(company, inputs=inputs))
    before = build_model(company)
    shares = company.scalar_inputs["shares"]
    assert after.balanced
    assert after.value("share_count", first) == pytest.approx(shares - bought + vested)
    assert after.value("weighted_shares", first) == pytest.approx(shares + (vested - bought) / 2)
    assert after.value("weighted_shares", second) == pytest.approx(shares - bought + vested)
    cost = bought * after.value("price_local", first)
    assert after.value("share_capital_change", first) - before.value("share_capital_change", first) == pytest.approx(-cost)
    assert after.value("shareholders_equity", first) - before.value("shareholders_equity", first) == pytest.approx(-cost)
    for year in (first, second):
        profit = after.value("attributable_profit", year)
        assert after.value("eps", year) == pytest.approx(profit / after.value("weighted_shares", year))
        assert after.value("diluted_eps", year) == pytest.approx(profit / (after.value("weighted_shares", year) + dilutive))
        assert after.value("diluted_eps", year) <= after.value("eps", year) + 1e-12
        assert after.value("bvps", year) == pytest.approx(after.value("shareholders_equity", year) / after.value("share_count", year))
    # A buyback alone: fewer shares, and the interest the spent cash no longer earns is far smaller
    # than those shares' part of profit, so EPS rises and P/E falls.
    only = dict(company.inputs)
    only[("d_buyback_shares", first)] = bought
    bought_back = build_model(replace(company, inputs=only))
    assert bought_back.value("non_ifrs_eps", second) > before.value("non_ifrs_eps", second)
    assert bought_back.value("adjusted_pe", second) < before.value("adjusted_pe", second)


def test_the_second_company_pays_interest_on_its_borrowings_too():
    """Item 1 in the 开源 layout: finance expenses (a cost, printed positive) are interest on the
    balances plus other finance costs, the part the note's forecast grows with revenue."""
    company = load(KYSEC)
    forecast = [y.label for y in company.forecast_years]
    first = forecast[0]
    before = build_model(company)
    inputs = dict(company.inputs)
    inputs[("d_short_term_debt", first)] += 10_000.0
    after = build_model(replace(company, inputs=inputs))
    rate = company.inputs[("d_debt_rate", first)]
    assert rate > 0  # an imported model starts from the layout's cost of debt, never from free money
    assert after.value("finance_expenses", first) - before.value("finance_expenses", first) == pytest.approx(rate * 10_000.0 / 2)
    assert after.value("pretax_profit", first) < before.value("pretax_profit", first)
    assert after.balanced


def test_the_second_company_pays_dividends_and_buys_back_shares_from_equity():
    """Items 4 and 5 in the 开源 layout: its per-share figures are on the latest diluted count, so
    EPS divides by the year-end shares plus the awards outstanding; a dividend declared as a payout
    of EPS leaves equity (and so the balance sheet's cash) the next year; a buyback leaves at the
    current price the year it is made."""
    company = load(KYSEC)
    forecast = [y.label for y in company.forecast_years]
    first, second = forecast[0], forecast[1]
    shares = company.scalar_inputs["shares"]
    before = build_model(company)
    inputs = dict(company.inputs)
    inputs[("d_dps", first)] = 0.3
    inputs[("d_buyback_shares", first)] = 20.0
    inputs[("d_dilutive_shares", first)] = 5.0
    after = build_model(replace(company, inputs=inputs))
    assert after.balanced
    assert after.value("dps", first) == pytest.approx(0.3 * after.value("eps", first))
    assert after.value("diluted_shares", first) == pytest.approx(shares - 20.0 + 5.0)
    assert after.value("eps", first) == pytest.approx(after.value("attributable_profit", first) / (shares - 15.0))
    cost = 20.0 * after.value("price_local", first)
    assert after.value("shareholders_equity", first) - before.value("shareholders_equity", first) == pytest.approx(-cost)
    paid = after.value("dps", first) * after.value("share_count", first) \
        - before.value("dps", first) * before.value("share_count", first)  # the note's own payout is paid either way
    moved = after.value("shareholders_equity", second) - before.value("shareholders_equity", second)
    profit_change = after.value("attributable_profit", second) - before.value("attributable_profit", second)
    assert moved == pytest.approx(-cost - paid + profit_change)
    assert after.value("cash", second) < before.value("cash", second)
    # the 2026E dividend is paid in 2027, after the 12-month horizon from the 2026-04-27 price date
    # (issue 21): the rating's expected dividend counts only dividends paid within the horizon, the
    # 2025A one the note's retained earnings imply (paid mid-2026)
    last_reported = [y.label for y in company.years if y.kind == "actual"][-1]
    assert after.value("dps", last_reported) > 0
    assert after.value("expected_dps") == pytest.approx(after.value("dps", last_reported) / after.value("fx_rate"))
    longer = build_model(replace(company, inputs=inputs), scalar_overrides={"rating_horizon": 1.5})
    assert longer.value("expected_dps") == pytest.approx(
        (after.value("dps", last_reported) + after.value("dps", first)) / after.value("fx_rate"))


def test_a_loss_declares_no_dividend():
    """A payout of a negative EPS is no dividend (never a negative one that brings cash in)."""
    from udfs.forecast import payout
    assert payout(-2.6, 0.3) == 0.0 and payout(2.0, 0.3) == pytest.approx(0.6)
    company = load()
    forecast = [y.label for y in company.forecast_years]
    inputs = dict(company.inputs)
    for year in forecast:
        inputs[("d_opex_cash", year)], inputs[("d_dps", year)] = 0.4, 0.3
    model = build_model(replace(company, inputs=inputs))
    assert model.value("eps", forecast[0]) < 0
    assert model.value("dps", forecast[0]) == 0.0 and model.value("dividends", forecast[1]) == 0.0
    assert model.value("expected_dps") == 0.0


def test_interest_does_not_move_ebitda_and_per_share_bases_follow_the_share_count():
    """EBITDA is before interest in both layouts; the valuation's book value and sales per share
    divide by the valuation year's share count, as its EPS does."""
    for data, rate_key in ((None, "d_debt_rate"), (KYSEC, "d_debt_rate")):
        company = load(data) if data else load()
        first = company.forecast_years[0].label
        inputs = dict(company.inputs)
        inputs[(rate_key, first)] = 0.12
        inputs[("d_buyback_shares", first)] = 10.0 if data else 1_000.0
        before, after = build_model(company), build_model(replace(company, inputs=inputs))
        assert after.value("ebitda", first) == pytest.approx(before.value("ebitda", first))
        shares = after.value("val_shares", first)
        assert shares < before.value("val_shares", first)
        equity = after.value("shareholders_equity", first)
        assert after.value("val_bvps", first) == pytest.approx(equity / shares)


def test_calibration_reads_no_tax_rate_off_a_loss():
    """A loss year's tax is decided by the credit limit, not the rate: the inverse refuses it and
    calibration keeps the file's rate instead of writing a meaningless one."""
    from udfs.forecast import METHODS
    for name in ("tax", "cost_tax"):
        with pytest.raises(ZeroDivisionError):
            METHODS[name].invert(500.0, 0.0, -10_000.0)
    assert METHODS["tax"].invert(250.0, 0.0, 1_000.0) == pytest.approx(0.25)
    assert METHODS["cost_tax"].invert(-250.0, 0.0, 1_000.0) == pytest.approx(0.25)


@pytest.mark.parametrize("data", [None, KYSEC])
def test_da_never_takes_ppe_below_zero(data):
    """D&A is capped at its depreciable base (a rate above 100% is held there), so with no other
    PP&E movement PP&E ends at zero at worst, never below."""
    from udfs.forecast import depreciation
    assert depreciation(1000.0, 0.1) == pytest.approx(100.0)
    assert depreciation(1000.0, 5.0) == 1000.0 and depreciation(1000.0, -0.2) == 0.0 and depreciation(-50.0, 0.1) == 0.0
    company = load(data) if data else load()
    model = _with(company, {"da": 5.0}, ppe_other=0.0)
    for year in (y.label for y in company.forecast_years):
        assert model.value("da", year) == pytest.approx(model.value("depreciable_base", year))
        assert model.value("ppe", year) == pytest.approx(0.0, abs=1e-6)
    assert "ppe_negative" not in {w["warning"] for w in model.triggered_warnings}
    assert model.balanced
