"""`python -m addin roll`: results day for a model file.

The actuals files here are fictional: the old model's own first-forecast-year figures scaled by
a factor (every line by the same factor, so the balance sheet still balances), never a real
company's results.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tomli_w

from addin.audit import audit
from ooxml import assert_valid
from addin.cli import main
from addin.roll import REVISIONS_SHEET, RollError, read_source, relabel, roll, roll_data, rolled_years
from addin.template import blueprint
from workbook import xlsx
from workbook.company import load
from udfs.tomlparse import tomllib
from workbook.model import build_model

pytestmark = pytest.mark.xdist_group("roll")  # one worker rolls each model, once

ROOT = Path(__file__).resolve().parents[1]
XIAOMI = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
KYSEC = ROOT / "workbook" / "kysec_300592sz_model.xlsm"
DRIVERS_SHEET = "预测假设"


def cells(path: Path) -> dict:
    """{(sheet, key, year): (ref, value, kind)} of every blueprint cell of a model file."""
    package = xlsx.read(path)
    return {(r["sheet"], r["key"], r["year"]): (r["cell"], package.value(r["sheet"], r["cell"]), r["kind"])
            for r in blueprint(package)}


def company_of(model: Path):
    """The company the model was built from, as its _source sheet stores it."""
    return load(ROOT / "workbook" / "data" / read_source(xlsx.read(model))["company"][0])


def write_actuals(path: Path, model: Path, year: str, label: str, scale: float, ticker: str | None = None,
                  drop: tuple = (), change: dict | None = None, add: dict | None = None) -> Path:
    """An actuals file for `model`: its `year` figures times `scale`, some lines dropped, changed
    or moved by an amount (`add`)."""
    company = company_of(model)
    values = build_model(company)
    figures = {k: values.value(k, year) * scale for k in company.layout.reported_keys if k not in drop}
    figures.update(change or {})
    for key, amount in (add or {}).items():
        figures[key] += amount
    path.write_text(tomli_w.dumps({"company": {"ticker": ticker or company.facts["ticker"]}, "actual": {label: figures}}),
                    encoding="utf-8")
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------
# The Xiaomi roll: the acceptance of issue 11
# ------------------------------------------------------------------------------------------------
OVERRIDE_VALUE = -91234.0   # typed over 表1 opex 2026E: carried
DROPPED_VALUE = -81234.0    # typed over 表1 opex 2025E: that year becomes reported, dropped
DRIVER_VALUE = 0.05         # 智能手机 2026E growth changed in the workbook, not in the company file
SCENARIOS_SHEET = "情景"      # smartphone varies by scenario: its base case is typed on this sheet


@pytest.fixture(scope="module")
def xiaomi_roll(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xiaomi")
    original = folder / "old_original.xlsm"
    shutil.copy(XIAOMI, original)
    before = cells(original)
    package = xlsx.read(original)
    typed = {("表1 损益表", before[("表1 损益表", "opex", "2026E")][0]): OVERRIDE_VALUE,
             ("表1 损益表", before[("表1 损益表", "opex", "2025E")][0]): DROPPED_VALUE,
             (SCENARIOS_SHEET, before[(SCENARIOS_SHEET, "base_d_smartphone", "2026E")][0]): DRIVER_VALUE}
    old = folder / "old.xlsm"
    xlsx.type_values(package, typed, old)
    actuals = write_actuals(folder / "fy2025.toml", XIAOMI, "2025E", "2025", 1.02)
    new = folder / "new.xlsm"
    code = main(["roll", str(old), "--actuals", str(actuals), "-o", str(new)])
    return {"old": old, "new": new, "actuals": actuals, "code": code, "folder": folder}


def test_xiaomi_roll_makes_2025_reported_with_the_actuals(xiaomi_roll):
    assert xiaomi_roll["code"] == 0
    new = cells(xiaomi_roll["new"])
    figures = tomllib.loads(xiaomi_roll["actuals"].read_text(encoding="utf-8"))["actual"]["2025"]
    reported = {(s, k): v for (s, k, y), (_, v, kind) in new.items() if y == "2025" and kind == "input"}
    assert reported, "2025 has no input cells: it did not become a reported year"
    defaults = company_of(xiaomi_roll["new"]).layout.reported_defaults
    for (sheet, key), value in reported.items():
        expected = figures[key] if key in figures else defaults[key]  # a line no note prints: its default
        assert value == pytest.approx(expected, rel=1e-12), (sheet, key)
    assert not any(y == "2025E" for (_, _, y) in new)


def test_xiaomi_roll_adds_2028e_with_the_2027e_drivers_marked_for_review(xiaomi_roll):
    old, new = cells(xiaomi_roll["old"]), cells(xiaomi_roll["new"])
    drivers_2027 = {k: v for (s, k, y), (_, v, kind) in old.items() if s == DRIVERS_SHEET and y == "2027E" and kind == "input"}
    drivers_2028 = {k: v for (s, k, y), (_, v, kind) in new.items() if s == DRIVERS_SHEET and y == "2028E" and kind == "input"}
    assert drivers_2028 == drivers_2027 and len(drivers_2028) > 30
    stored = tomllib.loads(read_source(xlsx.read(xiaomi_roll["new"]))["company"][1])
    assert stored["years"]["forecast"] == ["2026E", "2027E", "2028E"]
    assert stored["years"]["actual"] == ["2023", "2024", "2025"]
    assert all(entry.get("review") is True for entry in stored["drivers"].values())


def test_xiaomi_roll_keeps_every_2026e_and_2027e_driver_as_the_workbook_holds_it(xiaomi_roll):
    old, new = cells(xiaomi_roll["old"]), cells(xiaomi_roll["new"])
    compared = 0
    for (sheet, key, year), (ref, value, kind) in old.items():
        if sheet == DRIVERS_SHEET and kind == "input" and year in ("2026E", "2027E"):
            assert new[(sheet, key, year)][1] == value, (key, year)
            compared += 1
    assert compared > 60
    # the workbook's value, not the company file's
    assert new[(DRIVERS_SHEET, "d_smartphone", "2026E")][1] == DRIVER_VALUE


def test_xiaomi_roll_carries_the_override_and_check_lists_it(xiaomi_roll, capsys):
    found = audit(xiaomi_roll["new"]).overrides
    assert [(k, y, v) for _, _, k, y, v, _ in found] == [("opex", "2026E", OVERRIDE_VALUE)]
    code, out, _ = run(capsys, "check", xiaomi_roll["new"])
    assert "Numbers typed over formulas: 1" in out and "(opex 2026E) = -91234.0" in out
    assert code == 0
    new = cells(xiaomi_roll["new"])
    # the override is what the model computes with: operating profit 2026E moves with it
    gross, other, opex = (new[("表1 损益表", k, "2026E")][1] for k in ("gross_profit", "other_income", "opex"))
    assert opex == OVERRIDE_VALUE
    assert new[("表1 损益表", "operating_profit", "2026E")][1] == pytest.approx(gross + other + opex)


def test_xiaomi_roll_model_balances_and_is_a_valid_package(xiaomi_roll):
    result = audit(xiaomi_roll["new"])
    assert result.checks_run >= 54 and result.check_failures == []
    assert_valid(xiaomi_roll["new"])  # the surgically added sheet included


def test_xiaomi_roll_revision_table_shows_the_moved_estimates(xiaomi_roll):
    old, new = cells(xiaomi_roll["old"]), cells(xiaomi_roll["new"])
    package = xlsx.read(xiaomi_roll["new"])
    assert package.sheet_states[REVISIONS_SHEET] == "visible"
    rows = {}
    for ref in package.sheets[REVISIONS_SHEET].cells:
        r, c = xlsx.split_ref(ref)
        rows.setdefault(r, {})[c] = package.value(REVISIONS_SHEET, ref)
    table = {(row.get(1), row.get(2)): row for row in rows.values()}
    revenue = table[("营业收入", "2026E")]
    old_revenue = old[("表1 损益表", "revenue", "2026E")][1]
    new_revenue = new[("表1 损益表", "revenue", "2026E")][1]
    assert (revenue[3], revenue[4]) == (pytest.approx(old_revenue), pytest.approx(new_revenue))
    assert revenue[5] == pytest.approx(new_revenue - old_revenue) and abs(revenue[5]) > 1000
    assert revenue[6] == pytest.approx(new_revenue / old_revenue - 1)
    assert table[("营业收入", "2028E")][7] == "新增年度"
    # the year that became reported is no longer a revision: it heads the sheet, against its forecast
    assert ("营业收入", "2025E") not in table
    reported = table[("营业收入", "2025")]
    assert reported[3] == pytest.approx(old[("表1 损益表", "revenue", "2025E")][1])
    assert reported[4] == pytest.approx(new[("表1 损益表", "revenue", "2025")][1])


def test_xiaomi_roll_lists_the_dropped_override(xiaomi_roll):
    stored = read_source(xlsx.read(xiaomi_roll["new"]))["company"][1]
    assert "override dropped" in stored and "opex 2025E" in stored and "now reported" in stored


# ------------------------------------------------------------------------------------------------
# The second company, and the year window
# ------------------------------------------------------------------------------------------------
def test_kysec_roll_makes_2026a_reported_and_adds_2029e(tmp_path, capsys):
    old = tmp_path / "kysec.xlsm"
    shutil.copy(KYSEC, old)
    actuals = write_actuals(tmp_path / "fy2026.toml", KYSEC, "2026E", "2026A", 0.97)
    code, out, err = run(capsys, "roll", old, "--actuals", actuals, "-o", tmp_path / "rolled.xlsm")
    assert (code, err) == (0, "")
    assert "2026E → 2026A (reported), 2029E added" in out
    new, before = cells(tmp_path / "rolled.xlsm"), cells(old)
    assert any(y == "2026A" and kind == "input" for (_, _, y), (_, _, kind) in new.items())
    assert not any(y == "2026E" for (_, _, y) in new)
    for (sheet, key, year), (_, value, kind) in before.items():
        if sheet == DRIVERS_SHEET and kind == "input" and year in ("2027E", "2028E"):
            assert new[(sheet, key, year)][1] == value, (key, year)
        if sheet == DRIVERS_SHEET and kind == "input" and year == "2028E":
            assert new[(sheet, key, "2029E")][1] == value, key
    result = audit(tmp_path / "rolled.xlsm")
    assert result.checks_run > 0 and result.check_failures == []


def test_shifting_the_year_window_keeps_every_driver_on_its_year(tmp_path):
    """The issue's failure: with positional drivers, 2025E's auto growth landed on 2026E. Rolled
    with actuals equal to the old model's own 2025E figures, every 2026E and 2027E figure of the
    statements must come out exactly as before."""
    old = tmp_path / "old.xlsm"
    shutil.copy(XIAOMI, old)
    actuals = write_actuals(tmp_path / "same.toml", XIAOMI, "2025E", "2025", 1.0)
    roll(old, actuals, tmp_path / "new.xlsm")
    before, after = cells(old), cells(tmp_path / "new.xlsm")
    compared = 0
    for (sheet, key, year), (_, value, kind) in before.items():
        if year in ("2026E", "2027E") and sheet in ("表1 损益表", "表2 资产负债表", "表3 现金流量表") \
                and isinstance(value, float):
            assert after[(sheet, key, year)][1] == pytest.approx(value, rel=1e-9, abs=1e-6), (sheet, key, year)
            compared += 1
    assert compared > 100
    assert after[("表1 损益表", "revenue", "2026E")][1] == pytest.approx(549073, abs=1)


def test_roll_data_moves_the_window_not_the_values():
    data = {"years": {"actual": ["2023", "2024"], "forecast": ["2025E", "2026E", "2027E"]},
            "drivers": {"auto": {"method": "growth", "values": {"2025E": 2.26, "2026E": 0.57, "2027E": 0.41}}}}
    rolled = roll_data(data, {"revenue": 1.0}, "2025", "2028E")
    assert rolled["drivers"]["auto"]["values"] == {"2026E": 0.57, "2027E": 0.41, "2028E": 0.41}
    assert rolled["years"] == {"actual": ["2023", "2024", "2025"], "forecast": ["2026E", "2027E", "2028E"]}
    assert rolled["actual"]["2025"] == {"revenue": 1.0}


@pytest.mark.parametrize("actual, forecast, expected", [
    (["2023", "2024"], ["2025E", "2026E", "2027E"], ("2025", "2028E")),
    (["2024A", "2025A"], ["2026E", "2027E", "2028E"], ("2026A", "2029E")),
    (["FY2024"], ["FY2025E", "FY2026E"], ("FY2025", "FY2027E")),
])
def test_year_labels_follow_the_models_own_marks(actual, forecast, expected):
    assert rolled_years(actual, forecast) == expected
    assert relabel("2026E", 2031) == "2031E"


# ------------------------------------------------------------------------------------------------
# Bad input: one line, nothing written
# ------------------------------------------------------------------------------------------------
def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name == "new.xlsm")


@pytest.mark.parametrize("case, expected", [
    ("other_ticker", "fy.toml: is for 0700.HK, the model is 1810.HK; refused"),
    ("wrong_year", "fy.toml: gives 2026, but the model's first forecast year is 2025E: only that year can become reported"),
    ("few_missing", "fy.toml: [actual.\"2025\"] is missing 2 reported lines: cash, revenue"),
    ("many_missing", "fy.toml: [actual.\"2025\"] is missing 7 reported lines: capex, cash, cogs, da, ebit and 2 more"),
    ("unbalanced", "fy.toml: the 2025 balance sheet does not balance (total_assets"),
    ("subtotal", "fy.toml: the 2025 figures do not add up as the layout defines them: cfo "),
    ("unknown_line", "fy.toml: [actual.\"2025\"] has unknown line 'turnover'"),
    ("two_years", "fy.toml: needs exactly one [actual.\"YEAR\"] table (the year being reported), found 2"),
])
def test_bad_actuals_are_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, case, expected):
    old = tmp_path / "old.xlsm"
    shutil.copy(XIAOMI, old)
    path = tmp_path / "fy.toml"
    if case == "other_ticker":
        write_actuals(path, XIAOMI, "2025E", "2025", 1.0, ticker="0700.HK")
    elif case == "wrong_year":
        write_actuals(path, XIAOMI, "2025E", "2026", 1.0)
    elif case == "few_missing":
        write_actuals(path, XIAOMI, "2025E", "2025", 1.0, drop=("revenue", "cash"))
    elif case == "many_missing":
        write_actuals(path, XIAOMI, "2025E", "2025", 1.0, drop=("revenue", "cash", "cogs", "capex", "da", "ebit", "ebitda"))
    elif case == "unbalanced":  # every subtotal adds up, yet assets are not liabilities plus equity
        write_actuals(path, XIAOMI, "2025E", "2025", 1.0, add={"cash": 1000.0, "current_assets": 1000.0, "total_assets": 1000.0})
    elif case == "subtotal":  # a cash line that does not match its subtotal is refused naming the line
        write_actuals(path, XIAOMI, "2025E", "2025", 1.0, add={"cfo": 1000.0})
    elif case == "unknown_line":
        write_actuals(path, XIAOMI, "2025E", "2025", 1.0, change={"turnover": 1.0})
    elif case == "two_years":
        write_actuals(path, XIAOMI, "2025E", "2025", 1.0)
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        data["actual"]["2026"] = dict(data["actual"]["2025"])
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
    before = old.read_bytes()
    code, out, err = run(capsys, "roll", old, "--actuals", path, "-o", tmp_path / "new.xlsm")
    assert code == 1 and out == ""
    assert err.startswith("error: " + expected) and err.count("\n") == 1
    assert _leftovers(tmp_path) == [] and old.read_bytes() == before


def test_unbalanced_actuals_accepted_with_the_flag_record_the_finding(tmp_path, capsys):
    old = tmp_path / "old.xlsm"
    shutil.copy(XIAOMI, old)
    company = company_of(XIAOMI)
    total = build_model(company).value("total_assets", "2025E")
    path = write_actuals(tmp_path / "fy.toml", XIAOMI, "2025E", "2025", 1.0, change={"total_assets": total + 500})
    code, out, err = run(capsys, "roll", old, "--actuals", path, "-o", tmp_path / "new.xlsm", "--accept-unbalanced")
    assert code == 0 and err == ""
    assert "finding: the reported 2025 balance sheet does not balance" in out and "difference 500.00" in out
    stored = read_source(xlsx.read(tmp_path / "new.xlsm"))["company"][1]
    assert "# Roll: finding: the reported 2025 balance sheet does not balance" in stored


def test_a_broken_model_is_refused_in_one_line(tmp_path, capsys):
    package = xlsx.read(XIAOMI)
    broken = tmp_path / "broken.xlsm"
    revenue = package.name_cells("IS_revenue")[-1]
    xlsx.type_values(package, {revenue: "lots"}, broken)
    path = write_actuals(tmp_path / "fy.toml", XIAOMI, "2025E", "2025", 1.0)
    code, out, err = run(capsys, "roll", broken, "--actuals", path, "-o", tmp_path / "new.xlsm")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "holds the text 'lots' where the template has" in err
    assert _leftovers(tmp_path) == []


def test_a_model_without_its_source_is_refused(tmp_path):
    package = xlsx.read(XIAOMI)
    stripped = tmp_path / "nosource.xlsm"
    source = package.sheets["_source"]
    xlsx.type_values(package, {("_source", ref): None for ref in source.cells}, stripped)
    path = write_actuals(tmp_path / "fy.toml", XIAOMI, "2025E", "2025", 1.0)
    with pytest.raises(RollError, match="header was changed"):
        roll(stripped, path, tmp_path / "new.xlsm")
    assert _leftovers(tmp_path) == []


def test_rolling_onto_the_model_itself_is_refused(tmp_path):
    old = tmp_path / "old.xlsm"
    shutil.copy(XIAOMI, old)
    path = write_actuals(tmp_path / "fy.toml", XIAOMI, "2025E", "2025", 1.0)
    with pytest.raises(RollError, match="is the model being rolled"):
        roll(old, path, old)


def test_carried_drivers_are_marked_for_review_on_the_drivers_sheet(xiaomi_roll):
    """The new forecast year's drivers are copies: the drivers sheet shows them in the review
    fill with an input message saying so; the years that kept their own values are plain inputs."""
    import openpyxl
    book = openpyxl.load_workbook(xiaomi_roll["new"], keep_vba=True)
    new = cells(xiaomi_roll["new"])
    carried = new[(DRIVERS_SHEET, "d_iot", "2028E")][0]
    kept = new[(DRIVERS_SHEET, "d_iot", "2027E")][0]
    sheet = book[DRIVERS_SHEET]
    assert sheet[carried].fill.fgColor.rgb.endswith("F8CBAD")
    assert not sheet[kept].fill.fgColor.rgb.endswith("F8CBAD")
    messages = {str(r): dv.prompt for dv in sheet.data_validations.dataValidation for r in dv.sqref.ranges}
    assert "Carried from the previous year by roll" in messages[carried]
