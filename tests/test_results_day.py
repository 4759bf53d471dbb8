"""Results day (issue 20, item 5): the actuals template, the reported year against its forecast,
the reported figures vetted against the layout, valuation inputs one year on, and actuals from
akshare on recorded responses.

The reported figures here are fictional: each model re-run with some of its first forecast
year's drivers moved (so that every subtotal adds up and the balance sheet balances, while some
lines beat the forecast and some miss it), never a real company's results.
"""
from __future__ import annotations

import re
import shutil
import time
import types
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import tomli_w

from addin.actuals import ActualsError, provider_for
from addin.actuals_live import AkshareActuals, statutory_title
from addin.audit import audit
from addin.cli import main
from addin.estimates import YEARLY
from addin.results import default_bands, verdict, verdict_words
from addin.roll import REVISIONS_SHEET, RollError, read_source, roll, write_template
from conftest import ROOT
from formulas_bridge import Evaluated
from test_roll import cells, company_of, run, write_actuals
from udfs.engine import driver_key
from udfs.tomlparse import tomllib
from workbook import spec, xlsx
from workbook.build import build
from workbook.company import load
from workbook.files import OutputError, backups
from workbook.model import build_model

# one worker rolls the models and loads the rolled one into `formulas` (module fixtures a third of
# the module's time), once
pytestmark = pytest.mark.xdist_group("results_day")

XIAOMI = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
KYSEC = ROOT / "workbook" / "kysec_300592sz_model.xlsm"
RECORDED = ROOT / "tests" / "data" / "actuals"
INCOME = "表1 损益表"


def reported_by_engine(model: Path, year: str, moves: dict) -> dict:
    """The model's figures for `year` with its drivers there moved by `moves` (driven line -> amount)."""
    company = company_of(model)
    inputs = dict(company.inputs)
    for line, amount in moves.items():
        inputs[(driver_key(line), year)] += amount
    values = build_model(replace(company, inputs=inputs))
    return {line.key: values.value(line.key, year) for line in company.layout.lines if line.table in spec.STATEMENTS}


def fill(template: str, figures: dict, keys) -> str:
    """The template with the lines `keys` uncommented and holding `figures`."""
    out = []
    for line in template.splitlines():
        match = re.match(r"# (\w+) = \S+(\s+#.*)$", line)
        if match and match[1] in keys:
            line = f"{match[1]} = {figures[match[1]]!r}{match[2]}"
        out.append(line)
    return "\n".join(out) + "\n"


def sheet_rows(path: Path) -> dict:
    package = xlsx.read(path)
    rows: dict = {}
    for ref in package.sheets[REVISIONS_SHEET].cells:
        r, c = xlsx.split_ref(ref)
        rows.setdefault(r, {})[c] = (ref, package.value(REVISIONS_SHEET, ref))
    return rows


# ------------------------------------------------------------------------------------------------
# The template, filled, rolled: the acceptance of item 5
# ------------------------------------------------------------------------------------------------
YEAR_END_SHARES = 25_900.0   # fewer than today's 26,045: bought back during the year


@pytest.fixture(scope="module")
def xiaomi(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    model = folder / "xiaomi.xlsm"
    shutil.copy(XIAOMI, model)
    template = folder / "fy2025.toml"
    assert main(["roll", str(model), "--template", "-o", str(template)]) == 0
    text = template.read_text(encoding="utf-8")
    # smartphones sold better (revenue beats) while other income fell short (the profits miss)
    figures = reported_by_engine(XIAOMI, "2025E", {"smartphone": 0.10, "other_income": -8000.0})
    figures["share_count"] = YEAR_END_SHARES
    layout = company_of(XIAOMI).layout
    filled = folder / "fy2025_filled.toml"
    filled.write_text(fill(text, figures, layout.reported_keys | {"share_count"}), encoding="utf-8")
    new = folder / "xiaomi_2026.xlsm"
    code = main(["roll", str(model), "--actuals", str(filled), "-o", str(new)])
    return {"model": model, "template": template, "text": text, "figures": figures, "filled": filled, "new": new,
            "code": code, "folder": folder, "layout": layout}


def test_the_template_lists_every_reported_line_commented_out_with_the_forecast(xiaomi):
    text, layout = xiaomi["text"], xiaomi["layout"]
    commented = dict(re.findall(r"^# (\w+) = (\S+)", text, flags=re.M))
    assert layout.reported_keys <= set(commented)
    assert {"share_count", "dps", "revolver"} <= set(commented)          # the optional ones, marked so
    assert set(commented) <= {line.key for line in layout.lines if line.table in spec.STATEMENTS}
    shown = cells(XIAOMI)
    assert float(commented["revenue"]) == round(shown[(INCOME, "revenue", "2025E")][1])
    assert float(commented["eps"]) == round(shown[(INCOME, "eps", "2025E")][1], 2)
    assert float(commented["cogs"]) < 0                                  # the model's sign for a cost
    assert "# revenue = 475994.0    # 主营收入 Revenue; 百万人民币; the model's forecast for 2025E" in text
    parsed = tomllib.loads(text)
    assert parsed == {"format_version": 1, "company": {"ticker": "1810.HK"}, "actual": {"2025": {}}}


def test_an_unfilled_or_half_filled_template_is_refused_naming_the_lines(xiaomi, tmp_path, capsys):
    code, out, err = run(capsys, "roll", xiaomi["model"], "--actuals", xiaomi["template"], "-o", tmp_path / "x.xlsm")
    assert code == 1 and out == "" and "gives no figures yet (is it the template, unfilled?)" in err
    keep = xiaomi["layout"].reported_keys - {"cash", "capex", "eps"}
    half = tmp_path / "half.toml"
    half.write_text(fill(xiaomi["text"], xiaomi["figures"], keep), encoding="utf-8")
    code, out, err = run(capsys, "roll", xiaomi["model"], "--actuals", half, "-o", tmp_path / "x.xlsm")
    assert code == 1 and "is missing 3 reported lines: capex, cash, eps" in err
    assert not (tmp_path / "x.xlsm").exists()


def test_the_template_is_not_written_over_an_existing_file_without_force(xiaomi, tmp_path, capsys):
    target = tmp_path / "fy.toml"
    target.write_text("mine", encoding="utf-8")
    code, out, err = run(capsys, "roll", xiaomi["model"], "--template", "-o", target)
    assert code == 1 and "fy.toml: exists; choose another name, or pass --force" in err
    assert target.read_text(encoding="utf-8") == "mine"
    code, out, err = run(capsys, "roll", xiaomi["model"], "--template", "-o", target, "--force")
    to_fill = len(re.findall(r"^# \w+ = ", target.read_text(encoding="utf-8"), flags=re.M))
    assert code == 0 and f"({to_fill} lines to fill)" in out and to_fill >= len(xiaomi["layout"].reported_keys)
    [kept] = backups(target)  # the one rule of every written file: NAME.YYYYMMDD-HHMMSS.bak
    assert kept.read_text(encoding="utf-8") == "mine" and f"kept as {kept.name}" in out
    assert target.read_text(encoding="utf-8").startswith("# Results day for 1810.HK")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fy.toml", kept.name]  # no temporary file left


@pytest.fixture(scope="module")
def evaluated(xiaomi):
    """The rolled workbook loaded into the `formulas` package (an independent evaluator)."""
    return Evaluated(xiaomi["new"])


def _evaluated_results(path: Path, evaluated: Evaluated, changes: dict | None = None) -> dict:
    """{label: [year, forecast, actual, difference, pct, band, verdict]} of the results table,
    the workbook evaluated by the `formulas` package."""
    rows = sheet_rows(path)
    solution = evaluated.calculate(changes)
    table = {}
    for r in sorted(rows):
        if rows[r].get(8, (None, None))[1] == "结论 Verdict" or len(rows[r]) < 8:
            continue
        refs = [rows[r][c][0] for c in range(1, 9)]
        values = [solution.get((REVISIONS_SHEET, ref), rows[r][c][1]) for c, ref in enumerate(refs, start=1)]
        table.setdefault(values[0], values[1:])
    return table


def test_the_rolled_model_shows_2025_against_its_forecast_by_hand_arithmetic(xiaomi, evaluated):
    assert xiaomi["code"] == 0
    old = cells(xiaomi["model"])
    figures, layout = xiaomi["figures"], xiaomi["layout"]
    table = _evaluated_results(xiaomi["new"], evaluated)
    bands = default_bands()
    words = verdict_words()
    seen = set()
    for key, role, _required, label, _fmt in YEARLY:
        line = layout.roles.get(role)
        if line is None:
            continue
        forecast = old[(INCOME, line, "2025E")][1]
        actual = figures[line]
        difference = actual - forecast
        pct = difference / abs(forecast)
        band = bands.get(key, bands["default"])
        expected = words["beat"] if pct > band else words["miss"] if pct < -band else words["in_line"]
        year, f, a, d, p, b, v = table[label]
        assert (year, b, v) == ("2025", band, expected), label
        assert (f, a, d, p) == (pytest.approx(forecast), pytest.approx(actual), pytest.approx(difference),
                                pytest.approx(pct)), label
        seen.add(expected)
    assert seen == {words["beat"], words["miss"]}   # revenue beat, the profits missed
    assert table["营业收入"][6] == words["beat"] and table["归母净利润"][6] == words["miss"]


def test_the_bands_are_inputs_on_the_sheet(xiaomi, evaluated):
    package = xlsx.read(xiaomi["new"])
    band = package.name_cells("RES_band_revenue")[0]
    assert package.value(*band) == default_bands()["revenue"]
    table = _evaluated_results(xiaomi["new"], evaluated, {band: 0.5})
    assert table["营业收入"][6] == verdict_words()["in_line"]


def test_the_revision_table_below_holds_the_years_still_forecast(xiaomi):
    rows = sheet_rows(xiaomi["new"])
    labels = [(r[1][1] if 1 in r else None, r[2][1] if 2 in r else None) for _, r in sorted(rows.items())]
    assert ("营业收入", "2025") in labels and ("营业收入", "2026E") in labels and ("营业收入", "2028E") in labels
    assert ("营业收入", "2025E") not in labels
    assert labels.index(("营业收入", "2025")) < labels.index(("营业收入", "2026E"))


def test_revisions_prints_the_same_table_for_the_roll_pair(xiaomi, capsys):
    code, out, _ = run(capsys, "revisions", xiaomi["model"], xiaomi["new"])
    assert code == 0
    assert out.startswith("业绩 vs 预测 2025: reported in xiaomi_2026.xlsm, forecast as 2025E in xiaomi.xlsm")
    revenue = next(line for line in out.splitlines() if line.startswith("营业收入") and " 2025 " in line)
    assert revenue.endswith("超预期 beat") and "2.0%" in revenue
    assert not any(line.startswith("营业收入") and " 2025E " in line for line in out.splitlines())
    assert "盈利预测调整 1810.HK" in out


def test_the_reported_share_count_is_where_the_forecast_starts(xiaomi):
    package = xlsx.read(xiaomi["new"])
    assert package.value(*package.name_cells("MKT_shares")[0]) == YEAR_END_SHARES
    new = cells(xiaomi["new"])
    assert new[(INCOME, "share_count", "2025")][1] == YEAR_END_SHARES
    stored = read_source(package)["company"][1]
    assert "# Roll: shares: the reported 2025 figure 25,900 (from fy2025_filled.toml) replaces the model's 26,045" in stored
    assert audit(xiaomi["new"]).check_failures == []


def test_the_reported_figures_are_the_models_reported_year(xiaomi):
    new = cells(xiaomi["new"])
    for key in xiaomi["layout"].reported_keys:
        sheet = next(s for (s, k, y) in new if k == key and y == "2025")
        assert new[(sheet, key, "2025")][1] == pytest.approx(xiaomi["figures"][key], rel=1e-12), key


# ------------------------------------------------------------------------------------------------
# Figures the layout computes, or does not have, in reported years
# ------------------------------------------------------------------------------------------------
def test_a_computed_line_that_disagrees_is_refused_naming_it(tmp_path, capsys):
    old = tmp_path / "kysec.xlsm"
    shutil.copy(KYSEC, old)
    actuals = write_actuals(tmp_path / "fy.toml", KYSEC, "2026E", "2026A", 1.0, change={"eps": 9.99})
    code, out, err = run(capsys, "roll", old, "--actuals", actuals, "-o", tmp_path / "new.xlsm")
    assert code == 1 and err.count("\n") == 1
    assert "[actual.\"2026A\"].eps = 9.99, but the layout computes EPS(元) in reported years as " \
           "per_share(attributable_profit, diluted_shares)" in err


def test_a_computed_line_that_agrees_is_taken(tmp_path):
    old = tmp_path / "kysec.xlsm"
    shutil.copy(KYSEC, old)
    eps = build_model(company_of(KYSEC)).value("eps", "2026E")
    actuals = write_actuals(tmp_path / "fy.toml", KYSEC, "2026E", "2026A", 1.0, change={"eps": round(eps, 2)})
    assert roll(old, actuals, tmp_path / "new.xlsm").checks_failed == []


def test_two_share_counts_that_disagree_are_refused(tmp_path):
    old = tmp_path / "kysec.xlsm"
    shutil.copy(KYSEC, old)
    actuals = write_actuals(tmp_path / "fy.toml", KYSEC, "2026E", "2026A", 1.0,
                            change={"share_count": 400.0, "diluted_shares": 402.0})
    with pytest.raises(RollError, match="diluted_shares = 402 and share_count = 400 both give the model's shares"):
        roll(old, actuals, tmp_path / "new.xlsm")


def test_a_forecast_only_line_is_refused(tmp_path):
    old = tmp_path / "old.xlsm"
    shutil.copy(XIAOMI, old)
    actuals = write_actuals(tmp_path / "fy.toml", XIAOMI, "2025E", "2025", 1.0, change={"weighted_shares": 26000.0})
    with pytest.raises(RollError, match="no reported-year figure for .* \\(weighted_shares\\), only a forecast; leave it out"):
        roll(old, actuals, tmp_path / "new.xlsm")


def test_the_rolled_model_is_not_written_over_an_existing_file_without_force(tmp_path):
    old = tmp_path / "old.xlsm"
    shutil.copy(XIAOMI, old)
    actuals = write_actuals(tmp_path / "fy.toml", XIAOMI, "2025E", "2025", 1.0)
    target = tmp_path / "new.xlsm"
    target.write_bytes(b"an earlier roll")
    with pytest.raises(OutputError, match="new.xlsm: exists; choose another name, or pass --force"):
        roll(old, actuals, target)
    result = roll(old, actuals, target, force=True)
    assert result.backup == backups(target)[-1] and result.backup.read_bytes() == b"an earlier roll"
    assert audit(target).check_failures == []


# ------------------------------------------------------------------------------------------------
# Valuation inputs round-trip, years one on
# ------------------------------------------------------------------------------------------------
VALUATION_YEARS = {"pe_year": ("2026E", "2027E"), "pb_year": ("2024", "2025"), "ps_year": ("2027E", "2028E"),
                   "evebitda_year": ("2025E", "2026E"), "sotp_year": ("2026E", "2027E")}


CHOICES = {"dcf_target_basis": "horizon", "blend_nm_policy": "nm"}   # the text inputs that take a word, not a year or switch


def test_a_model_with_every_valuation_input_set_rolls_and_keeps_them(tmp_path):
    """Every input of the 估值 sheet given (mid_year_switch = true among them): the rolled model
    holds each one, the valuation years moved on by one, so P/E on 2026E is now on 2027E."""
    data = tomllib.loads((ROOT / "workbook" / "data" / "xiaomi_1810hk.toml").read_text(encoding="utf-8"))
    layout = spec.load_layout(data["company"]["layout"])
    given = {}
    weights = [line.key for line in spec.valuation_plan(layout).scalars if line.key.startswith("weight_")]
    for line in spec.valuation_plan(layout).scalars:
        key = line.key
        if line.formula is not None or key in spec.YEAR_INPUTS:   # the years and the first year's end follow the roll
            continue
        if key in VALUATION_YEARS:
            given[key] = VALUATION_YEARS[key][0]
        elif key in weights:
            given[key] = 1 / 2 ** (weights.index(key) + 1) if key != weights[-1] else 1 / 2 ** (len(weights) - 1)
        elif key.endswith("_method"):
            given[key] = "PS"
        elif key in CHOICES:
            given[key] = CHOICES[key]
        elif line.fmt == "text":
            given[key] = True
        else:
            given[key] = {"multiple": 12.5, "pct": 0.045, "fx": 1.1, "money2": 0.75, "price": 20.0}[line.fmt]
    assert given["mid_year_switch"] is True and abs(sum(given[w] for w in weights) - 1) < 1e-12
    data["valuation"] = given
    data["rating"]["benchmark_return"] = 0.05
    (tmp_path / "x.toml").write_text(tomli_w.dumps(data), encoding="utf-8")
    model = tmp_path / "x.xlsm"
    build(model, load(tmp_path / "x.toml"))
    actuals = write_actuals(tmp_path / "fy.toml", XIAOMI, "2025E", "2025", 1.0)
    result = roll(model, actuals, tmp_path / "rolled.xlsm")
    assert result.checks_failed == []
    stored = tomllib.loads(read_source(xlsx.read(tmp_path / "rolled.xlsm"))["company"][1])
    expected = {**given, **{key: moved for key, (_, moved) in VALUATION_YEARS.items()}}
    assert stored["valuation"] == expected
    assert stored["rating"]["benchmark_return"] == 0.05
    package = xlsx.read(tmp_path / "rolled.xlsm")
    target = package.value(*package.name_cells("VAL_target_price_blend")[0])
    assert isinstance(target, float) and target > 0   # every method values, on its new year


# ------------------------------------------------------------------------------------------------
# Actuals from akshare, on recorded responses
# ------------------------------------------------------------------------------------------------
RECORDED_NAMES = {"资产负债表": "balance", "利润表": "income", "现金流量表": "cashflow"}


def recorded(edit=None, delay: float = 0.0):
    """A stand-in for the akshare module: stock_financial_report_sina returns the recorded frame
    of the statement asked for (edited by `edit(table, frame)` when given), and logs its calls."""
    calls = []

    def stock_financial_report_sina(stock="sh600600", symbol="资产负债表"):
        calls.append((stock, symbol))
        time.sleep(delay)
        frame = pd.read_csv(RECORDED / f"akshare_stock_financial_report_sina_{stock}_{RECORDED_NAMES[symbol]}.csv",
                            dtype={"报告日": str})
        return edit(RECORDED_NAMES[symbol], frame) if edit else frame
    return types.SimpleNamespace(stock_financial_report_sina=stock_financial_report_sina), calls


def statement(table: str, date: str = "20261231") -> dict:
    frame = pd.read_csv(RECORDED / f"akshare_stock_financial_report_sina_sz300592_{table}.csv", dtype={"报告日": str})
    return frame[frame["报告日"] == date].iloc[0].to_dict()


@pytest.fixture(scope="module")
def kysec_akshare(tmp_path_factory):
    folder = tmp_path_factory.mktemp("akshare")
    old = folder / "kysec.xlsm"
    shutil.copy(KYSEC, old)
    module, calls = recorded()
    result = roll(old, AkshareActuals("", module=module), folder / "rolled.xlsm")
    return {"old": old, "new": folder / "rolled.xlsm", "result": result, "calls": calls}


def test_akshare_actuals_build_a_model_whose_checks_pass(kysec_akshare):
    assert [c for c in kysec_akshare["calls"]] == [("sz300592", "资产负债表"), ("sz300592", "利润表"), ("sz300592", "现金流量表")]
    result = kysec_akshare["result"]
    assert (result.was, result.reported, result.added) == ("2026E", "2026A", "2029E")
    assert result.checks_failed == []
    checked = audit(kysec_akshare["new"])
    assert checked.checks_run > 0 and checked.check_failures == [] and not checked.failed


def test_akshare_figures_are_the_statutory_items_in_the_models_unit(kysec_akshare):
    new = cells(kysec_akshare["new"])
    balance, income, cashflow = statement("balance"), statement("income"), statement("cashflow")

    def at(key):
        return next(v for (s, k, y), (_, v, kind) in new.items() if k == key and y == "2026A" and kind == "input")
    assert at("revenue") == pytest.approx(income["营业收入"] / 1e6)
    assert at("cogs") == pytest.approx(income["营业成本"] / 1e6) and at("cogs") > 0      # 开源 prints costs positive
    assert at("impairment_losses") == pytest.approx((income["资产减值损失"] + income["信用减值损失"]) / 1e6)
    assert at("receivables") == pytest.approx(balance["应收票据及应收账款"] / 1e6)
    assert at("share_capital") == pytest.approx(balance["实收资本(或股本)"] / 1e6)
    # an "other" line is what its subtotal leaves: here the three statutory items it gathers
    assert at("other_current_assets") == pytest.approx(
        (balance["交易性金融资产"] + balance["合同资产"] + balance["其他流动资产"]) / 1e6)
    assert at("da") == pytest.approx(sum(cashflow[k] for k in ("固定资产折旧、油气资产折耗、生产性生物资产折旧", "使用权资产折旧",
                                                             "无形资产摊销", "长期待摊费用摊销")) / 1e6)
    prior = company_of(KYSEC).inputs[("short_term_debt", "2025A")]
    assert at("short_term_debt_change") == pytest.approx(balance["短期借款"] / 1e6 - prior)   # a change in a balance
    notes = "\n".join(kysec_akshare["result"].notes)
    assert "ebitda: by the layout's definition operating_profit + finance_expenses + da + d_ebitda_adjustment with " \
           "d_ebitda_adjustment at 0" in notes
    assert "other_current_assets: what current_assets leaves" in notes


def test_akshare_results_table_against_the_forecast(kysec_akshare):
    rows = {r.key: r for r in kysec_akshare["result"].results}
    income = statement("income")
    forecast = build_model(company_of(KYSEC)).value("revenue", "2026E")
    revenue = rows["revenue"]
    assert revenue.actual == pytest.approx(income["营业收入"] / 1e6) and revenue.forecast == pytest.approx(forecast)
    assert revenue.pct == pytest.approx(income["营业收入"] / 1e6 / forecast - 1)
    assert (revenue.verdict, rows["attributable_profit"].verdict) == ("beat", "miss")


def _refused(tmp_path, edit, match: str, **kwargs):
    old = tmp_path / "kysec.xlsm"
    shutil.copy(KYSEC, old)
    module, _ = recorded(edit, **{k: v for k, v in kwargs.items() if k == "delay"})
    provider = AkshareActuals("", module=module, **{k: v for k, v in kwargs.items() if k == "timeout"})
    with pytest.raises(RollError, match=match):
        roll(old, provider, tmp_path / "new.xlsm")
    assert not (tmp_path / "new.xlsm").exists()


def test_a_line_the_statements_lack_is_named_never_guessed(tmp_path):
    def without_inventory(table, frame):
        return frame.drop(columns=["存货"]) if table == "balance" else frame
    # inventory, and the other current assets, which are what the current assets leave once it is known
    _refused(tmp_path, without_inventory, r"akshare stock_financial_report_sina sz300592 20261231: gives no figure for 2 "
                                          r"reported lines of the layout: inventory, other_current_assets; write the year "
                                          r"into an actuals file \(roll --actuals akshare: --template fills in what it has\)")


def test_statements_that_do_not_add_up_are_refused_naming_the_line(tmp_path):
    def padded(table, frame):
        if table == "balance":
            frame.loc[frame["报告日"] == "20261231", "资产总计"] += 5e6
        return frame
    _refused(tmp_path, padded, r"do not add up as the layout defines them: total_assets .* is not "
                               r"current_assets \+ noncurrent_assets")


def test_a_year_not_yet_reported_is_refused(tmp_path):
    _refused(tmp_path, lambda table, frame: frame[frame["报告日"] != "20261231"],
             "has no consolidated statement dated 20261231 \\(is the annual report out yet\\?\\)")


def test_statements_in_another_currency_are_refused(tmp_path):
    def in_dollars(table, frame):
        frame["币种"] = "USD"
        return frame
    _refused(tmp_path, in_dollars, "is in USD, the model reports in CNY; refused")


def test_an_answer_that_does_not_come_is_one_line_within_the_time_limit(tmp_path):
    started = time.monotonic()
    _refused(tmp_path, None, "akshare: no answer for sz300592 资产负债表 within 0.2 s", delay=2.0, timeout=0.2)
    assert time.monotonic() - started < 10


def test_a_library_failure_is_one_line(tmp_path):
    def broken(table, frame):
        raise ConnectionError("Max retries exceeded with url: /openapi.php")
    _refused(tmp_path, broken, r"akshare: could not fetch sz300592 资产负债表 \(Max retries exceeded")


def test_a_hong_kong_ticker_is_refused(tmp_path):
    old = tmp_path / "x.xlsm"
    shutil.copy(XIAOMI, old)
    module, calls = recorded()
    with pytest.raises(RollError, match="reads the annual statements of A-shares .*, not 1810.HK"):
        roll(old, AkshareActuals("", module=module), tmp_path / "new.xlsm")
    assert calls == []


def test_without_akshare_installed_the_source_says_how_to_install_it(tmp_path, capsys):
    try:
        import akshare  # noqa: F401
        pytest.skip("akshare is installed here")
    except ImportError:
        pass
    old = tmp_path / "kysec.xlsm"
    shutil.copy(KYSEC, old)
    assert isinstance(provider_for("akshare:"), AkshareActuals)
    code, out, err = run(capsys, "roll", old, "--actuals", "akshare:", "-o", tmp_path / "new.xlsm")
    assert code == 1 and err.count("\n") == 1 and 'pip install "equity-research-model[akshare]"' in err
    with pytest.raises(ActualsError, match="unknown source 'bloomberg'"):
        provider_for("bloomberg:")


def test_the_template_from_akshare_is_filled_and_rolls(tmp_path):
    old = tmp_path / "kysec.xlsm"
    shutil.copy(KYSEC, old)
    module, _ = recorded()
    path, to_fill, given = write_template(old, tmp_path / "fy.toml", actuals=AkshareActuals("", module=module))
    layout = company_of(KYSEC).layout
    text = path.read_text(encoding="utf-8")
    filled = tomllib.loads(text)["actual"]["2026A"]
    assert set(filled) == layout.reported_keys and given == len(filled)
    assert "# akshare stock_financial_report_sina sz300592 20261231 gave the lines that are not commented out" in text
    assert re.search(r"^# share_count = ", text, flags=re.M)                  # what it does not give stays to fill
    rolled = roll(old, path, tmp_path / "rolled.xlsm")
    assert rolled.checks_failed == [] and rolled.results[0].verdict == "beat"


@pytest.mark.parametrize("title, folded", [("加:公允价值变动收益", "公允价值变动收益"), ("一、营业总收入", "营业总收入"),
                                           ("减：所得税费用", "所得税费用"), ("其他应收款(合计)", "其他应收款(合计)"),
                                           ("实收资本（或股本）", "实收资本(或股本)"), ("五、 净利润", "净利润")])
def test_statutory_titles_are_matched_without_their_numbering(title, folded):
    assert statutory_title(title) == folded


@pytest.mark.parametrize("pct, band, expected", [(0.02, 0.02, "in_line"), (0.0200000001, 0.02, "beat"),
                                                 (-0.02, 0.02, "in_line"), (-0.021, 0.02, "miss"), (None, 0.02, "not_meaningful"),
                                                 (0.1 + 0.2 - 0.3, 0.0, "in_line")])
def test_a_difference_of_exactly_the_band_is_in_line(pct, band, expected):
    assert verdict(pct, band) == expected
