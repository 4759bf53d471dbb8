"""A valuation a PM can defend (issue 21): the bridge with every interest-bearing line, per-share
values on the valuation year's diluted count, the DCF at the price date with its stub, grids that
are the sheet's own DCF, terminal-value diagnostics, sum-of-the-parts metrics by method, one FX
judgement for every door, and the expected dividend paid within the horizon. Each property is
stated in numbers and checked on both layouts where it applies."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ON_THE_FORMULAS_WORKER, ROOT

DATA = ROOT / "workbook" / "data"
XIAOMI, KYSEC = DATA / "xiaomi_1810hk.toml", DATA / "kysec_300592sz.toml"


def _with(path, tmp_path, old: str, new: str, name: str = "company.toml"):
    """A copy of a company file with one text replaced (the copy sits beside its layout's name)."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    out = tmp_path / name
    out.write_text(text.replace(old, new, 1), encoding="utf-8")
    return out


# ---- 7. One FX judgement for every door --------------------------------------------------------
@pytest.mark.parametrize("command", [["show"], ["new", "-o", "{tmp}/m.xlsm"]])
def test_a_company_file_with_an_out_of_range_fx_is_refused_in_one_line(tmp_path, command):
    """CNY per HKD typed as 1.1051 (the inverse of 0.9049): refused by name, nothing written."""
    bad = _with(XIAOMI, tmp_path, "fx_rate = 0.9049", "fx_rate = 1.1051")
    args = [a.format(tmp=tmp_path) for a in command]
    run = subprocess.run([sys.executable, "-m", "addin", *args, "--data", str(bad)], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert run.stderr.count("\n") == 1, run.stderr
    assert "[market].fx_rate" in run.stderr and "0.7–1.1" in run.stderr and "looks inverted" in run.stderr
    assert not (tmp_path / "m.xlsm").exists()


def test_the_company_file_and_the_quote_doors_give_the_same_judgement():
    """The same rate, the same words, whichever door it comes through."""
    import datetime as dt

    from addin.quotes import Quote, QuoteError, validate
    from workbook.company import CompanyDataError, parse
    from workbook.tomlfile import read_toml
    data = read_toml(XIAOMI)
    data["market"]["fx_rate"] = 1.1051
    with pytest.raises(CompanyDataError) as from_file:
        parse(data, XIAOMI)
    quote = Quote("1810.HK", 40.2, "HKD", dt.date(2025, 12, 18), 1.1051, None, "test")
    with pytest.raises(QuoteError) as from_quote:
        validate(quote, "1810.HK", dt.date(2025, 12, 18), 5, currency="HKD", fx_pair=("HKD", "CNY"))
    reason = re.search(r"FX 1\.1051 is outside.*", str(from_file.value)).group()
    assert reason in str(from_quote.value)


def test_an_a_share_in_its_own_currency_must_have_fx_one(tmp_path):
    bad = _with(KYSEC, tmp_path, "fx_rate = 1", "fx_rate = 0.9")
    from workbook.company import CompanyDataError, load
    with pytest.raises(CompanyDataError, match=r"must be exactly 1"):
        load(bad)


# ---- helpers -----------------------------------------------------------------------------------
from dataclasses import replace  # noqa: E402

import numpy_financial as npf  # noqa: E402

from udfs.constants import ERR_NUM, NO_SEGMENT_LINE, NOT_MEANINGFUL  # noqa: E402
from workbook.company import load  # noqa: E402
from workbook.model import build_model  # noqa: E402

COMPANIES = {"xiaomi": XIAOMI, "kysec": KYSEC}
# A full valuation on the first forecast year: every multiple method, the DCF, nothing else weighted.
DCF_INPUTS = {"rf": 0.025, "beta": 1.1, "erp": 0.06, "cost_of_debt": 0.04, "val_tax": 0.2, "debt_weight": 0.1,
              "terminal_growth": 0.02, "mid_year_switch": True}


@pytest.fixture(scope="module", params=list(COMPANIES))
def company(request):
    return load(COMPANIES[request.param])


def first_year(company) -> str:
    return company.forecast_years[0].label


def every_method(company, year=None) -> dict:
    year = year or first_year(company)
    inputs = {**DCF_INPUTS, "pe_multiple": 20.0, "pe_year": year, "pb_multiple": 3.0, "pb_year": year, "ps_multiple": 1.5,
              "ps_year": year, "evebitda_multiple": 12.0, "evebitda_year": year,
              "weight_pe": 0.25, "weight_pb": 0.15, "weight_ps": 0.15, "weight_evebitda": 0.15, "weight_dcf": 0.3}
    for segment in company.layout.segments:
        inputs.update({f"sotp_{segment}_method": "PS", f"sotp_{segment}_multiple": 2.0, "sotp_year": year})
    return inputs


def with_inputs(company, changes: dict, years=None):
    """The company with driver inputs {line: value} set in `years` (every forecast year by default)."""
    inputs = dict(company.inputs)
    for key, value in changes.items():
        for year in years or [y.label for y in company.forecast_years]:
            inputs[(key, year)] = value
    return replace(company, inputs=inputs)


# ---- 1. The revolver is debt -------------------------------------------------------------------
def test_a_revolver_drawn_only_to_meet_a_cash_floor_leaves_ev_and_the_ev_ebitda_target_unchanged(company):
    """A floor above the first forecast year's cash draws the revolver by the shortfall: cash and
    debt rise alike, so net debt, the EV, EV/EBITDA, net gearing and the EV/EBITDA target stay
    put (±0.01), and the revolver sits in the capital of ROIC where the layout has one."""
    year = first_year(company)
    scalars = {"evebitda_multiple": 12.0, "evebitda_year": year, "weight_evebitda": 1.0, "weight_pe": 0.0, "weight_dcf": 0.0}
    base = build_model(company, scalar_overrides=scalars)
    floor = base.value("cash", year) * 2 + 10_000
    floored = build_model(with_inputs(company, {"d_min_cash": floor}, [year]), scalar_overrides=scalars)
    drawn = floored.value("revolver", year)
    assert drawn == pytest.approx(floor - base.value("cash", year)) and drawn > 0
    assert floored.balanced
    assert floored.value("val_debt", year) == pytest.approx(base.value("val_debt", year) + drawn)
    for key in ("val_net_cash", "enterprise_value", "ev_ebitda", "evebitda_target"):
        when = None if key == "evebitda_target" else year
        assert abs(floored.value(key, when) - base.value(key, when)) <= 0.01, key
    assert floored.value("net_gearing", year) == pytest.approx(base.value("net_gearing", year), abs=1e-12)
    if any(line.key == "roic" for line in floored.lines):
        v = lambda key: floored.value(key, year)  # noqa: E731
        nopat = (v("operating_profit") + v("finance_expenses")) * (1 - v("income_tax") / v("pretax_profit"))
        capital = v("shareholders_equity") + v("minority_equity") + v("short_term_debt") + v("long_term_debt") + drawn
        assert v("roic") == pytest.approx(nopat / capital, rel=1e-12)


# ---- 2. Per-share values on the valuation year's diluted count ---------------------------------
@pytest.mark.parametrize("exercise", [None, "half the price"])
def test_dilutive_awards_lower_every_per_share_target_by_the_ratio_of_the_share_counts(company, exercise):
    """Awards outstanding in every forecast year lower every method's per-share target by basic
    ÷ diluted shares; with an exercise price, the treasury-stock method counts awards x (1 - K/P)."""
    year = first_year(company)
    awards = company.scalar_inputs["shares"] * 0.08
    scalars = every_method(company)
    if exercise:
        scalars["award_exercise_price"] = company.scalar_inputs["price"] / 2
    base = build_model(company, scalar_overrides=scalars)
    diluted = build_model(with_inputs(company, {"d_dilutive_shares": awards}), scalar_overrides=scalars)
    counted = awards * (0.5 if exercise else 1.0)
    basic = base.value("val_shares", year)
    assert diluted.value("val_shares", year) == pytest.approx(basic + counted, rel=1e-12)
    ratio = basic / (basic + counted)
    targets = [k for k in ("pe_target", "pb_target", "ps_target", "evebitda_target", "dcf_target", "sotp_target")
               if any(line.key == k for line in base.lines)]
    priced = [k for k in targets if isinstance(base.value(k), float)]
    assert {"pe_target", "pb_target", "ps_target", "evebitda_target"} <= set(priced)
    for key in priced:
        shares_key = "bridge_shares" if key == "dcf_target" else None
        expected_ratio = (base.value(shares_key) / diluted.value(shares_key)) if shares_key else ratio
        assert diluted.value(key) == pytest.approx(base.value(key) * expected_ratio, rel=1e-12), key
    assert diluted.value("target_price_blend") < base.value("target_price_blend")


# ---- 3. The DCF at the price date ----------------------------------------------------------------
@pytest.mark.parametrize("mid_year", [True, False])
@pytest.mark.parametrize("exit_multiple", [None, 9.0])
def test_the_dcf_at_the_price_date_equals_an_independent_npv_with_the_stub(company, mid_year, exit_multiple):
    """numpy-financial's NPV of the same FCFF with the stub: the first forecast year counts the
    part after the price date (days to its year end over the days of the year), each year's flow
    at its year end (or the middle of the part still to come), the terminal value at the last
    year end (Gordon's, mid-year, half a year earlier)."""
    scalars = {**DCF_INPUTS, "mid_year_switch": mid_year, "exit_multiple": exit_multiple}
    model = build_model(company, scalar_overrides=scalars)
    forecast = [y.label for y in company.forecast_years]
    import datetime as dt
    price_date = dt.date.fromisoformat(company.scalar_inputs["price_date"])
    year_end = dt.date(company.forecast_years[0].year, 12, 31)
    stub = (year_end - price_date).days / (year_end - dt.date(year_end.year - 1, 12, 31)).days
    assert 0 < stub <= 1 and model.value("first_period") == pytest.approx(stub, rel=1e-15)
    w, g = model.value("wacc"), DCF_INPUTS["terminal_growth"]
    flows = [model.value("val_fcff", y) for y in forecast]
    if exit_multiple:
        terminal = exit_multiple * model.value("val_ebitda", forecast[-1])
    else:
        terminal = flows[-1] * (1 + g) / (w - g)
    if mid_year:
        # the stub's flow at stub/2; full years at their middles (stub - 0.5 + k), Gordon's TV with the last
        stub_flow = flows[0] * stub / (1 + w) ** (stub / 2)
        later = [0.0] + flows[1:]
        later[-1] += 0.0 if exit_multiple else terminal
        ev = stub_flow + npf.npv(w, later) * (1 + w) ** -(stub - 0.5)
        if exit_multiple:
            ev += terminal / (1 + w) ** (stub + len(forecast) - 1)
    else:
        values = [0.0, flows[0] * stub] + flows[1:]
        values[-1] += terminal
        ev = npf.npv(w, values) * (1 + w) ** (1 - stub)
    assert model.value("dcf_ev") == pytest.approx(ev, rel=1e-9)
    assert model.value("dcf_ev") == pytest.approx(model.value("dcf_pv_explicit") + model.value("dcf_pv_terminal"), rel=1e-12)


def test_the_bridge_is_the_balance_nearest_the_price_date(company):
    """Xiaomi (2025-12-18): the 2025E year-end balance, 13 days on; 华凯易佰 (2026-04-27): 2025A's."""
    model = build_model(company, scalar_overrides=DCF_INPUTS)
    flagged = [y.label for y in company.years if y.kind != "base" and model.value("val_bridge_flag", y.label) == 1.0]
    expected = {"1810.HK": "2025E", "300592.SZ": "2025A"}[company.facts["ticker"]]
    assert flagged == [expected]
    assert model.value("bridge_net_cash") == model.value("val_net_cash", expected)
    assert model.value("bridge_shares") == model.value("val_shares", expected)


@pytest.mark.parametrize("basis", ["price_date", "horizon"])
def test_the_dcf_target_is_the_value_at_the_price_date_or_rolled_to_the_horizon(company, basis):
    model = build_model(company, scalar_overrides={**DCF_INPUTS, "exit_multiple": 10.0, "dcf_target_basis": basis,
                                                   "rating_horizon": 1.0})
    value = model.value("dcf_value")
    assert isinstance(value, float)
    if basis == "price_date":
        assert model.value("dcf_target") == value
    else:
        ke = DCF_INPUTS["rf"] + DCF_INPUTS["beta"] * DCF_INPUTS["erp"]
        assert model.value("cost_of_equity") == pytest.approx(ke)
        assert model.value("dcf_target") == pytest.approx(value * (1 + ke) - model.value("dividends_in_horizon"), rel=1e-12)
    assert basis in model.value("dcf_basis_note") or {"price_date": "股价日期", "horizon": "滚动"}[basis] in model.value("dcf_basis_note")


# ---- 5. Terminal value diagnosed ---------------------------------------------------------------
def test_terminal_growth_at_or_above_wacc_is_refused_and_near_it_warns(company):
    at = build_model(company, scalar_overrides={**DCF_INPUTS, "wacc": 0.08, "terminal_growth": 0.08})
    assert at.value("dcf_terminal_value") == ERR_NUM and at.value("dcf_target") == ERR_NUM
    near = build_model(company, scalar_overrides={**DCF_INPUTS, "wacc": 0.08, "terminal_growth": 0.075})
    fired = {w["warning"] for w in near.triggered_warnings}
    assert "growth_near_wacc" in fired and near.balanced          # a warning, never a failed check
    far = build_model(company, scalar_overrides={**DCF_INPUTS, "wacc": 0.08, "terminal_growth": 0.05})
    assert "growth_near_wacc" not in {w["warning"] for w in far.triggered_warnings}
    exit_used = build_model(company, scalar_overrides={**DCF_INPUTS, "wacc": 0.08, "terminal_growth": 0.075,
                                                       "exit_multiple": 8.0})
    assert "growth_near_wacc" not in {w["warning"] for w in exit_used.triggered_warnings}   # g is not used


def test_the_terminal_value_is_diagnosed_in_named_cells(company):
    gordon = build_model(company, scalar_overrides=DCF_INPUTS)
    last = company.forecast_years[-1].label
    tv, ebitda = gordon.value("dcf_terminal_value"), gordon.value("val_ebitda", last)
    ev = gordon.value("dcf_ev")
    assert gordon.value("tv_share") == (pytest.approx(gordon.value("dcf_pv_terminal") / ev) if ev > 0 else NOT_MEANINGFUL)
    assert gordon.value("implied_exit_multiple") == (pytest.approx(tv / ebitda) if tv > 0 else NOT_MEANINGFUL)
    exit_ = build_model(company, scalar_overrides={**DCF_INPUTS, "exit_multiple": 9.0})
    tv, w, fcff = exit_.value("dcf_terminal_value"), exit_.value("wacc"), exit_.value("val_fcff", last)
    assert exit_.value("implied_growth") == pytest.approx((tv * w - fcff) / (tv + fcff), rel=1e-12)
    assert exit_.value("implied_exit_multiple") == pytest.approx(9.0)
    share = exit_.value("tv_share")
    assert ("terminal_value_share" in {w["warning"] for w in exit_.triggered_warnings}) == (share > 0.85)


def test_an_upside_beyond_100_percent_warns_without_failing_a_check(company):
    year = first_year(company)
    model = build_model(company, scalar_overrides={"pe_multiple": 200.0, "pe_year": year, "weight_pe": 1.0, "weight_dcf": 0.0})
    assert model.value("upside") > 1
    assert "upside_extreme" in {w["warning"] for w in model.triggered_warnings} and model.balanced


@pytest.mark.parametrize("policy", ["exclude", "nm"])
def test_a_weighted_method_that_is_nm_is_excluded_and_said_or_makes_the_blend_nm(company, policy):
    """A P/B on a negative book is NM: excluded, the other weight scaled up and the note saying
    so; or, by the analyst's choice, the blend NM with the method marked NM."""
    year = first_year(company)
    scalars = {"pe_multiple": 20.0, "pe_year": year, "pb_multiple": -1.0, "pb_year": year, "weight_pe": 0.6,
               "weight_pb": 0.4, "weight_dcf": 0.0, "blend_nm_policy": policy}
    model = build_model(company, scalar_overrides=scalars)
    assert model.value("pb_target") == NOT_MEANINGFUL
    if policy == "exclude":
        assert model.value("part_pb") == "已剔除 excluded"
        assert model.value("target_price_blend") == pytest.approx(model.value("pe_target"), rel=1e-12)
        assert "已剔除" in model.value("blend_note")
    else:
        assert model.value("part_pb") == NOT_MEANINGFUL and model.value("target_price_blend") == NOT_MEANINGFUL
        assert "NM" in model.value("blend_note")


# ---- 6. Sum of the parts reads each method's own metric ---------------------------------------
def test_sotp_never_multiplies_revenue_by_a_pe():
    company = load(XIAOMI)
    year = first_year(company)
    scalars = {"sotp_year": year, "weight_sotp": 1.0, "weight_pe": 0.0, "weight_dcf": 0.0}
    for segment in company.layout.segments:
        scalars.update({f"sotp_{segment}_method": "PS", f"sotp_{segment}_multiple": 2.0})
    scalars.update({"sotp_smartphone_method": "PE", "sotp_smartphone_multiple": 15.0})
    model = build_model(company, scalar_overrides=scalars)
    assert model.value("sotp_smartphone_metric") == NO_SEGMENT_LINE["profit"]   # the cell says so
    assert model.value("sotp_smartphone_value") != pytest.approx(15.0 * model.value("smartphone", year))
    assert not isinstance(model.value("sotp_target"), float)
    assert model.value("sotp_iot_value") == pytest.approx(2.0 * model.value("iot", year))   # P/S on revenue


def test_a_layout_that_declares_segment_profit_lets_pe_value_it(tmp_path):
    """[segment_metrics.smartphone] profit = ...: P/E 15 on that profit, and the method drop-down offers it."""
    from workbook import spec
    from workbook.build import _valuation_validation
    layout = spec.load_layout("everbright_hk")
    (tmp_path / "with_profit.toml").write_text(
        layout.path.read_text(encoding="utf-8") + '\n[segment_metrics.smartphone]\nprofit = "smartphone * 0.08"\n',
        encoding="utf-8")
    data = _with(XIAOMI, tmp_path, 'layout = "everbright_hk"', 'layout = "with_profit.toml"')
    company = load(data)
    year = first_year(company)
    scalars = {"sotp_year": year, "sotp_smartphone_method": "PE", "sotp_smartphone_multiple": 15.0}
    model = build_model(company, scalar_overrides=scalars)
    assert model.value("sotp_smartphone_value") == pytest.approx(15.0 * 0.08 * model.value("smartphone", year), rel=1e-12)
    assert _valuation_validation("sotp_smartphone_method", company)["source"] == ["PE", "PS"]
    assert _valuation_validation("sotp_iot_method", company)["source"] == ["PS"]


def test_a_company_file_cannot_choose_a_segment_method_its_layout_has_no_line_for():
    """The file door is held to what the method drop-down offers: P/E on 智能手机, which has no
    segment profit line, is refused by name; P/S in any spelling is taken, as the cell reads it."""
    from workbook.company import CompanyDataError, parse
    from workbook.tomlfile import read_toml
    data = read_toml(XIAOMI)
    data["valuation"]["sotp_smartphone_method"] = "P/E"
    with pytest.raises(CompanyDataError, match=r"\[valuation\]\.sotp_smartphone_method = 'P/E' is not one of PS"):
        parse(data, XIAOMI)
    data["valuation"]["sotp_smartphone_method"] = "ps"
    assert parse(data, XIAOMI).scalar_inputs["sotp_smartphone_method"] == "ps"
    data["valuation"]["blend_nm_policy"] = "drop"
    with pytest.raises(CompanyDataError, match=r"blend_nm_policy = 'drop' is not one of exclude, nm"):
        parse(data, XIAOMI)


def test_show_names_the_segment_a_method_cannot_value():
    from addin.show import valuation_block
    company = load(XIAOMI)
    scalars = {"sotp_year": first_year(company)}
    for segment in company.layout.segments:
        scalars.update({f"sotp_{segment}_method": "PS", f"sotp_{segment}_multiple": 2.0})
    scalars.update({"sotp_auto_method": "EV/EBITDA", "sotp_auto_multiple": 20.0})
    model = build_model(company, scalar_overrides=scalars)
    line = next(l for l in valuation_block(model).splitlines() if l.strip().startswith("分部加总 SOTP 目标价"))
    assert "汽车 EV/EBITDA: " + NO_SEGMENT_LINE["ebitda"] in line and "choose PS" in line


# ---- 8. show says what failed ------------------------------------------------------------------
def test_show_prints_every_method_its_target_or_why_not_the_dcf_bridge_and_tv_share():
    run = subprocess.run([sys.executable, "-m", "addin", "show"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    block = run.stdout.split("估值 Valuation", 1)[1].split("评级 Rating", 1)[0]
    for label in ("市盈率 目标价", "市净率 目标价", "市销率 目标价", "EV/EBITDA 目标价", "DCF 目标价", "分部加总 SOTP 目标价"):
        line = next(l for l in block.splitlines() if l.strip().startswith(label))
        assert re.search(r"\d+\.\d\d|未估值 not valued: .+|NM: .+|#\w+!?: .+", line), line
    for words in ("WACC", "EV ", "TV share of EV", "bridge at the balance nearest the price date", "diluted shares",
                  "target basis", "加权目标价"):
        assert words in block, words
    assert "分析师填写" not in run.stdout


# ---- 9. The expected dividend is paid within the horizon ---------------------------------------
def test_the_expected_dividend_counts_the_dividends_paid_within_the_horizon_from_the_price_date():
    """华凯易佰, priced 2026-04-27: the 2025A dividend (paid mid-2026) counts, the 2026E one (paid
    mid-2027) does not; Xiaomi, priced 2025-12-18: the 2025E dividend (paid mid-2026) counts."""
    kysec = load(KYSEC)
    inputs = dict(kysec.inputs)
    inputs[("dps", "2025A")] = 0.25
    inputs[("d_dps", "2026E")] = 0.3
    model = build_model(replace(kysec, inputs=inputs))
    assert model.value("dps", "2026E") > 0
    assert model.value("expected_dps") == pytest.approx(0.25 / model.value("fx_rate"))
    xiaomi = with_inputs(load(XIAOMI), {"d_dps": 0.2})
    model = build_model(xiaomi)
    assert model.value("dps", "2025E") > 0
    assert model.value("expected_dps") == pytest.approx(model.value("dps", "2025E") / model.value("fx_rate"), rel=1e-12)


# ---- 4. Every grid point is the sheet's DCF with its two inputs changed (the template) ----------
from workbook import xlsx  # noqa: E402
from workbook.build import build  # noqa: E402
from workbook.layout import EXIT_STEPS, GROWTH_STEPS, WACC_STEPS  # noqa: E402
from workbook.xlcalc import evaluate  # noqa: E402


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("templates")
    return {key: xlsx.read(build(out / f"{key}.xlsm", load(path))) for key, path in COMPANIES.items()}


def _name(package, name):
    return package.name_cells(name)[0]


def dcf_grid_cells(package) -> tuple[list, list, list]:
    """(row axis cells, column axis cells, grid rows of cells) of the DCF sensitivity table, found
    by its header formula."""
    sheet = package.sheets["敏感性"]
    header = next(ref for ref, cell in sheet.cells.items() if cell.formula and "WACC \\" in cell.formula)
    row, col = xlsx.split_ref(header)
    cols = [f"{xlsx.col_letters(col + 1 + j)}{row}" for j in range(len(GROWTH_STEPS))]
    rows = [f"{xlsx.col_letters(col)}{row + 1 + i}" for i in range(len(WACC_STEPS))]
    grid = [[f"{xlsx.col_letters(col + 1 + j)}{row + 1 + i}" for j in range(len(GROWTH_STEPS))] for i in range(len(WACC_STEPS))]
    return rows, cols, grid


@pytest.mark.parametrize("key", list(COMPANIES))
@pytest.mark.parametrize("exit_multiple", [None, 8.0])
def test_every_dcf_grid_point_is_the_sheets_dcf_with_its_two_inputs_changed(templates, key, exit_multiple):
    """The template evaluated headless (workbook/xlcalc.py): each point equals the engine's DCF
    target with WACC and, across, terminal growth or (when the DCF uses one) the exit multiple
    changed, everything else as the sheet has it; the centre is the sheet's DCF."""
    package = templates[key]
    company = load(COMPANIES[key])
    inputs = {**DCF_INPUTS, "exit_multiple": exit_multiple}
    values = evaluate(package, {_name(package, f"VAL_{k}"): v for k, v in inputs.items()})
    rows, cols, grid = dcf_grid_cells(package)
    model = build_model(company, scalar_overrides=inputs)
    across = "exit_multiple" if exit_multiple else "terminal_growth"
    steps = EXIT_STEPS if exit_multiple else GROWTH_STEPS
    checked = 0
    for i, w_step in enumerate(WACC_STEPS):
        assert values[("敏感性", rows[i])] == pytest.approx(model.value("wacc") + w_step)
        for j, step in enumerate(steps):
            assert values[("敏感性", cols[j])] == pytest.approx(inputs[across] + step)
            point = build_model(company, scalar_overrides={**inputs, "wacc": model.value("wacc") + w_step,
                                                           across: inputs[across] + step})
            want, got = point.value("dcf_target"), values[("敏感性", grid[i][j])]
            assert got == (pytest.approx(want, rel=1e-9) if isinstance(want, float) else want), (i, j)
            checked += isinstance(want, float)
    assert values[("敏感性", grid[3][3])] == (pytest.approx(model.value("dcf_target"), rel=1e-9)
                                            if isinstance(model.value("dcf_target"), float) else model.value("dcf_target"))
    assert checked > 0 or key == "kysec"   # 华凯易佰's negative terminal FCFF leaves Gordon NM at every point


def test_the_template_refuses_terminal_growth_at_or_above_wacc_in_the_cell(templates):
    """The growth cell's data validation stops a value at or above WACC (custom rule on the WACC cell)."""
    import openpyxl
    package = templates["xiaomi"]
    book = openpyxl.load_workbook(package.path)
    sheet, growth = _name(package, "VAL_terminal_growth")
    _, wacc = _name(package, "VAL_wacc")
    rules = [dv for dv in book[sheet].data_validations.dataValidation if growth in str(dv.sqref)]
    assert len(rules) == 1 and rules[0].type == "custom" and rules[0].errorStyle in (None, "stop")
    assert f"{growth}<${wacc[0]}${wacc[1:]}" in rules[0].formula1.replace("$", "$")


def test_valuation_warnings_show_in_wrn_status_and_never_fail_the_checks(templates):
    """g 0.5 points below WACC in the template: 校验's warnings say WARN, every check stays OK."""
    package = templates["xiaomi"]
    values = evaluate(package, {_name(package, "VAL_wacc"): 0.08, _name(package, "VAL_terminal_growth"): 0.075})
    assert values[_name(package, "WRN_status")] == "WARN"
    assert {values[c] for c in package.name_cells("WRN_growth_near_wacc")} == {"WARN"}
    checks = [c for name in package.names if name.startswith("CHK_") for c in package.name_cells(name)]
    assert checks and {values[c] for c in checks} == {"OK"}


# ---- 11. Out of the box --------------------------------------------------------------------------
@pytest.mark.parametrize("template", ["xiaomi_1810hk_model.xlsm", "kysec_300592sz_model.xlsm"])
def test_the_shipped_templates_open_with_a_target_filled_grids_and_a_computed_rating(template):
    from udfs.rating import schemes
    package = xlsx.read(ROOT / "workbook" / template)
    target = package.value(*_name(package, "RTG_target_price"))
    assert isinstance(target, float) and target > 0
    scheme = schemes()[package.value(*_name(package, "RTG_rating_scheme"))]
    assert package.value(*_name(package, "RTG_computed_rating")) in scheme.labels
    _, _, grid = dcf_grid_cells(package)
    pe = [package.value("敏感性", ref) for ref in package.sheets["敏感性"].cells
          if isinstance(package.value("敏感性", ref), float)]
    assert len(pe) > 60    # the three tables hold numbers
    dcf = [package.value("敏感性", ref) for row in grid for ref in row]
    assert all(isinstance(v, float) for v in dcf) or template.startswith("kysec")   # 华凯易佰's DCF is NM (excluded)
    banner = [package.value("估值", ref) for ref in package.sheets["估值"].cells if isinstance(package.value("估值", ref), str)]
    assert any("示例估值假设" in text for text in banner)


@pytest.mark.skipif(not (ROOT.parent / "shared" / "seed").is_dir(), reason="the seed notes live beside the repository")
def test_every_import_carries_an_example_valuation(tmp_path):
    from conftest import KYSEC_SEED
    from workbook.importer import import_note
    result = import_note(KYSEC_SEED, tmp_path, stem="imported", build=False)
    company = load(result.company_path)
    assert company.example_valuation and company.valuation_sources
    given = [k for k, v in company.scalar_inputs.items() if k in company.valuation_sources]
    assert {"pe_multiple", "rf", "weight_pe", "weight_dcf"} <= set(given)
    model = build_model(company)
    assert isinstance(model.value("target_price"), float)
    assert model.value("computed_rating") in ("买入", "增持", "中性", "减持")


# ---- 12. Pictures --------------------------------------------------------------------------------
def _chart_and_scales(path) -> tuple[list[str], int]:
    import zipfile
    with zipfile.ZipFile(path) as z:
        charts = [z.read(n).decode("utf-8") for n in z.namelist() if n.startswith("xl/charts/chart")]
        package = xlsx.read(path)
        sens = z.read(package.sheets["敏感性"].path).decode("utf-8")
    return charts, sens.count("<colorScale>")


def test_the_football_field_and_the_heat_maps_are_in_the_template_and_the_native_edition(tmp_path, templates):
    from addin.native import export_native
    path = templates["xiaomi"].path
    native = export_native(path, tmp_path / "live.xlsx")
    for book in (path, native):
        charts, scales = _chart_and_scales(book)
        football = [c for c in charts if "<c:barChart>" in c and re.search(r"<c:f>'?估值'?!", c)]
        assert len(football) == 1 and '<c:barDir val="bar"/>' in football[0]
        assert scales == 3    # the DCF, P/E and EPS grids


@pytest.mark.parametrize("key", list(COMPANIES))
def test_the_native_edition_writes_every_dcf_grid_point_as_a_formula(tmp_path, templates, key):
    """Each point reads its EV from a helper cell beside the grid, so its native form stays within
    Excel's 8,192 characters (written out whole it took 25,312) and no point is kept as a value."""
    from addin.native import EXCEL_FORMULA_LIMIT, export_native
    package = templates[key]
    native = xlsx.read(export_native(package.path, tmp_path / "live.xlsx"))
    _, _, grid = dcf_grid_cells(package)
    cells = native.sheets["敏感性"].cells
    for ref in (ref for row in grid for ref in row):
        formula = cells[ref].formula
        assert formula and "ER_" not in formula and len(formula) <= EXCEL_FORMULA_LIMIT, ref
    cover = [native.value("封面", ref) for ref in native.sheets["封面"].cells]
    assert not any(isinstance(text, str) and "敏感性!" in text for text in cover)


# ---- 10. The native edition is live where it matters ----------------------------------------------
from test_native import needs_libreoffice, recalculate  # noqa: E402

SHIPPED = {"xiaomi": "xiaomi_1810hk_model.xlsm", "kysec": "kysec_300592sz_model.xlsm"}


@needs_libreoffice
@ON_THE_FORMULAS_WORKER  # the templates loaded into `formulas` once, for every module there
def test_the_native_edition_moves_target_and_rating_with_a_multiple_and_a_weight_like_the_template(
        tmp_path, evaluated, kysec_evaluated):
    """Both companies: in the native edition a colleague doubles the P/E and moves weight from the
    DCF to it; LibreOffice recalculates the file and shows the target, the DCF, the blend and the
    rating the template shows when `formulas` re-evaluates it with our functions and the same change
    (the session's fresh builds of the two templates, which the committed ones equal: the
    test_committed_template_is_a_fresh_build tests)."""
    from addin.native import export_native
    in_formulas = {"xiaomi": evaluated, "kysec": kysec_evaluated}
    changed, expected, before = {}, {}, {}
    names = ("RTG_target_price", "RTG_computed_rating", "VAL_target_price_blend", "VAL_pe_target", "VAL_dcf_target",
             "VAL_dcf_ev", "VAL_tv_share", "RTG_expected_return")
    for key, template in SHIPPED.items():
        source = ROOT / "workbook" / template
        package = xlsx.read(source)
        cells = {name: _name(package, name) for name in names}
        cells["DCF grid centre"] = ("敏感性", dcf_grid_cells(package)[2][3][3])
        pe, w_pe, w_dcf = (_name(package, n) for n in ("VAL_pe_multiple", "VAL_weight_pe", "VAL_weight_dcf"))
        edit = {pe: package.value(*pe) * 2.0, w_pe: 0.8, w_dcf: 0.2}
        native = export_native(source, tmp_path / f"{key}.xlsx")
        changed[key] = tmp_path / f"{key}-edited.xlsx"
        xlsx.type_values(xlsx.read(native), edit, changed[key])
        solution = in_formulas[key].calculate(edit)
        expected[key] = {name: solution[cell] for name, cell in cells.items()}
        before[key] = {name: package.value(*cell) for name, cell in cells.items()}
    books = recalculate(list(changed.values()), tmp_path)
    for key, path in changed.items():
        package = xlsx.read(ROOT / "workbook" / SHIPPED[key])
        for name, want in expected[key].items():
            sheet, ref = ("敏感性", dcf_grid_cells(package)[2][3][3]) if name == "DCF grid centre" else _name(package, name)
            got = books[path][sheet][ref].value
            assert got == (pytest.approx(want, rel=1e-9) if isinstance(want, float) else want), (key, name, got, want)
        assert expected[key]["RTG_target_price"] != pytest.approx(before[key]["RTG_target_price"])   # the change is live
        assert expected[key]["RTG_computed_rating"] != before[key]["RTG_computed_rating"], key


@needs_libreoffice
def test_rendering_the_valuation_and_sensitivity_sheets_shows_the_chart_and_the_heat_map(tmp_path, shipped_pdfs):
    """LibreOffice renders the template to PDF (once per run, shared with the print tests:
    conftest) and pdftoppm to PNG: the 估值 page carries the football field, the 敏感性 page the
    three tables (a reviewer looks at the PNGs)."""
    pdf = shipped_pdfs["xiaomi"]
    pages = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout.split("\f")
    # the 估值 sheet prints two pages wide: its title on the first, the football field beside the inputs
    assert any(p.lstrip().startswith("估值 Valuation") for p in pages)
    valuation = next(i for i, p in enumerate(pages) if "Football field" in p)
    sensitivity = next(i for i, p in enumerate(pages) if "敏感性分析 Sensitivity" in p)
    for page in (valuation, sensitivity):
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", str(page + 1), "-l", str(page + 1), str(pdf),
                        str(tmp_path / f"page{page}")], check=True)
    pngs = sorted(tmp_path.glob("page*.png"))
    assert len(pngs) == 2 and all(p.stat().st_size > 10_000 for p in pngs)


# ---- The DCF functions: samples, and the edges of their arithmetic ---------------------------------
from udfs import dcf  # noqa: E402
from udfs.functions import all_functions  # noqa: E402

DCF_FUNCTIONS = [f for f in all_functions() if f.impl.__module__ == dcf.__name__]


@pytest.mark.parametrize("spec", DCF_FUNCTIONS, ids=[f.excel_name for f in DCF_FUNCTIONS])
def test_each_dcf_function_answers_its_sample(spec):
    import udfs
    result = udfs.excel_functions()[spec.excel_name](*spec.sample)
    assert isinstance(result, float) or result in (*dcf.BASIS_NOTES.values(), dcf.BLEND_EXCLUDED_NOTE), (spec.excel_name, result)


@pytest.mark.parametrize("exp,args", [
    (13 / 365, ("2025-12-18", "2025-12-31")),      # the stub: 13 days of a 365-day fiscal year
    (248 / 365, ("2026-04-27", "2026-12-31")),
    (-10 / 365, ("2026-01-10", "2025-12-31")),      # a year already over is behind the date
    (1.0, ("2024-12-31", "2025-12-31")),
    (29 / 366, ("2024-12-02", "2024-12-31")),       # a leap fiscal year has 366 days
])
def test_year_fraction_is_days_over_the_days_of_that_fiscal_year(exp, args):
    import udfs
    assert udfs.excel_functions()["ER_YEAR_FRACTION"](*args) == pytest.approx(exp, rel=1e-15)



def test_year_fraction_reads_dates_as_excel_and_xlwings_pass_them():
    """A serial (Excel, formulas), a datetime (xlwings), ISO text (the engine): the same answer."""
    import datetime as dt

    import udfs
    f = udfs.excel_functions()["ER_YEAR_FRACTION"]
    assert f(46009.0, 46022.0) == f(dt.datetime(2025, 12, 18), dt.date(2025, 12, 31)) == f("2025-12-18", "2025-12-31") == 13 / 365
    assert f(None, "2025-12-31") == "#N/A" and f("soon", "2025-12-31") == "#VALUE!"


@pytest.mark.parametrize("exp,args", [
    (26045.0 + 2000.0, (26045.0, 2000.0, None, 40.2)),               # restricted shares count in full
    (26045.0 + 1000.0, (26045.0, 2000.0, 20.1, 40.2)),               # K = P/2: proceeds buy back half
    (26045.0, (26045.0, 2000.0, 50.0, 40.2)),                        # out of the money: none
    ("#N/A", (26045.0, 2000.0, 20.0, None)),                          # an exercise price needs a price
])
def test_diluted_shares_by_the_treasury_stock_method(exp, args):
    import udfs
    got = udfs.excel_functions()["ER_DILUTED_SHARES"](*args)
    assert got == (pytest.approx(exp) if isinstance(exp, float) else exp)


@pytest.mark.parametrize("exp,args", [
    (0.5, (0.5, 0.0356, 0.5, 1.0)),          # declared on 2025E, paid mid-2026: within 12 months
    (0.0, (0.5, 1.0356, 0.5, 1.0)),          # 2026E's, paid mid-2027: after
    (0.0, (0.5, -0.9644, 0.5, 1.0)),         # 2024's, paid mid-2025: before the price date
    (0.0, ("NM", 0.0356, 0.5, 1.0)),         # no dividend on a loss
    ("#N/A", ("#N/A", 0.0356, 0.5, 1.0)),
])
def test_a_dividend_counts_when_it_is_paid_within_the_horizon(exp, args):
    import udfs
    assert udfs.excel_functions()["ER_DIVIDEND_IN_HORIZON"](*args) == exp


# ---- Properties ------------------------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import examples  # noqa: E402


@settings(max_examples=examples(200), deadline=None)
@given(flows=st.lists(st.floats(-5e4, 2e5), min_size=1, max_size=6), stub=st.floats(0.001, 1.0),
       wacc=st.floats(0.03, 0.2), growth=st.floats(-0.02, 0.05), mid=st.booleans(),
       exit_multiple=st.one_of(st.none(), st.floats(0.0, 30.0)), metric=st.floats(1.0, 1e5))
def test_dcf_ev_is_each_flows_share_discounted_from_its_time_plus_the_terminal_value(flows, stub, wacc, growth, mid,
                                                                                    exit_multiple, metric):
    """Term by term, written out here: year k (from 0) ends stub + k from the valuation date, counts
    min(1, stub + k) of its flow, arriving at its end or (mid-year) half that share earlier."""
    periods = [stub + k for k in range(len(flows))]
    got = dcf.dcf_ev(flows, periods, wacc, growth, mid, exit_multiple, metric)
    if exit_multiple is None and growth >= wacc:
        assert got == ERR_NUM
        return
    total = 0.0
    for k, flow in enumerate(flows):
        share = min(1.0, stub + k)
        t = stub + k - (share / 2 if mid else 0.0)
        total += flow * share / (1 + wacc) ** t
    last = stub + len(flows) - 1
    if exit_multiple is None:
        total += flows[-1] * (1 + growth) / (wacc - growth) / (1 + wacc) ** (last - (0.5 if mid else 0.0))
    else:
        total += exit_multiple * metric / (1 + wacc) ** last
    assert got == pytest.approx(total, rel=1e-9, abs=1e-6)


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(list(COMPANIES)), floor_factor=st.floats(1.01, 5.0), awards_share=st.floats(0.0, 0.3),
       year_index=st.integers(0, 2))
def test_any_cash_floor_leaves_ev_and_any_awards_scale_the_per_share_targets(key, floor_factor, awards_share, year_index):
    """Whatever floor draws the revolver in a year, that year's EV, net debt and EV/EBITDA target
    do not move; whatever awards are outstanding, that year's P/E and EV/EBITDA targets fall by
    basic ÷ diluted shares."""
    company = load(COMPANIES[key])
    year = company.forecast_years[year_index].label
    scalars = {"pe_multiple": 18.0, "pe_year": year, "evebitda_multiple": 10.0, "evebitda_year": year,
               "weight_pe": 0.5, "weight_evebitda": 0.5, "weight_dcf": 0.0}
    base = build_model(company, scalar_overrides=scalars)
    floored = build_model(with_inputs(company, {"d_min_cash": base.value("cash", year) * floor_factor}, [year]),
                          scalar_overrides=scalars)
    assert floored.value("revolver", year) > 0 and floored.balanced
    for name in ("enterprise_value", "val_net_cash"):
        assert abs(floored.value(name, year) - base.value(name, year)) <= 0.01
    assert abs(floored.value("evebitda_target") - base.value("evebitda_target")) <= 0.01
    awards = company.scalar_inputs["shares"] * awards_share
    diluted = build_model(with_inputs(company, {"d_dilutive_shares": awards}, [year]), scalar_overrides=scalars)
    ratio = base.value("val_shares", year) / (base.value("val_shares", year) + awards)
    for name in ("pe_target", "evebitda_target"):
        assert diluted.value(name) == pytest.approx(base.value(name) * ratio, rel=1e-12)


@pytest.mark.parametrize("method", [None, "", "  "])
def test_a_segment_without_a_method_is_not_valued_yet(method):
    """An empty method cell reads 未估值 in the metric cell (the native form tests it by ="", since
    the native edition trims a text argument and ISBLANK of a trimmed cell is never true)."""
    import udfs
    from udfs.constants import NOT_VALUED
    assert udfs.excel_functions()["ER_SEGMENT_METRIC"](method, 120000.0, None, None, None) == NOT_VALUED
