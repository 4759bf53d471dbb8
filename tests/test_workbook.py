"""The built template, evaluated by an independent engine (`formulas`) with our functions bound,
against the report; its structure as an analyst meets it."""
from __future__ import annotations

import zipfile

import pytest

from conftest import GOLDEN, ON_THE_FORMULAS_WORKER, ROOT, YEARS, golden_cells
from workbook.formats import show

pytestmark = ON_THE_FORMULAS_WORKER

SHEET_OF_TABLE = {"summary": "盈利预测与估值简表", "income": "表1 损益表", "balance": "表2 资产负债表", "cashflow": "表3 现金流量表"}
KNOWN_REPORT_CONTRADICTIONS = {("summary", "non_ifrs_growth", "2025E"), ("income", "non_ifrs_eps", "2025E")}
COMMITTED = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"


# `built`, `template` and `evaluated` (the default model's) are shared fixtures (conftest.py).
@pytest.fixture(scope="session")
def solution(evaluated) -> dict:
    return evaluated.calculate()


def _fmt(key, decimals, percent):
    if key == "adjusted_pe":
        return "pe_summary"
    if percent:
        return "growth"
    return "eps" if decimals == 2 else "money"


CELLS = list(golden_cells())


@pytest.mark.parametrize("table,key,year,printed,decimals,percent", CELLS, ids=[f"{t}-{k}-{y}" for t, k, y, *_ in CELLS])
def test_evaluated_template_shows_the_report(template, solution, table, key, year, printed, decimals, percent):
    label = next(row["label"] for row in GOLDEN[table] if row["key"] == key)
    sheet = SHEET_OF_TABLE[table]
    cell = template.cell_by_label(sheet, label, year)
    got = solution.get((sheet, cell))
    if got is None:  # a typed input (reported year): formulas keeps inputs out of the solution
        got = template.book[sheet][cell].value
    assert isinstance(got, (int, float)), (sheet, cell, got)
    fmt = _fmt(key, decimals, percent)
    want = show(printed / 100 if percent else float(printed), fmt)
    if (table, key, year) in KNOWN_REPORT_CONTRADICTIONS:
        assert show(float(got), fmt) != want  # the report contradicts itself here; the model follows its own figures
    else:
        assert show(float(got), fmt) == want


def test_formulas_engine_agrees_with_python_engine(template, solution, model):
    """Every formula cell the independent engine computes equals the Python model's value."""
    from udfs.engine import BASE
    compared = 0
    for line in model.lines:
        for year in [y.label for y in model.values.years if y.kind != BASE] if not line.scalar else [None]:
            for prefix in ("IS", "BS", "CF", "SUM", "RAT", "DRV", "MKT", "RTG"):
                name = f"{prefix}_{line.key}"
                if name not in template.book.defined_names:
                    continue
                found = template.cell_by_name(name, year)
                if found is None:
                    continue
                sheet, cell = found
                if (sheet, cell) not in solution or not str(template.book[sheet][cell].value).startswith("="):
                    continue
                got, want = solution[(sheet, cell)], model.value(line.key, year)
                if isinstance(want, float):
                    assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (name, year)
                else:
                    assert got == want, (name, year)
                compared += 1
    assert compared > 300


def test_every_check_is_ok_and_overall_ok(solution):
    checks = {k: v for k, v in solution.items() if k[0] == "校验"}
    statuses = [v for (s, c), v in checks.items() if v in ("OK", "FAIL")]
    assert len(statuses) >= 18 * 3 + 1
    assert set(statuses) == {"OK"}


def test_changing_one_driver_moves_the_statements_and_keeps_the_balance(template, evaluated, solution):
    driver = template.cell_by_name("DRV_d_smartphone", "2026E")
    revenue_2026 = template.cell_by_name("IS_revenue", "2026E")
    assets_2027 = template.cell_by_name("BS_total_assets", "2027E")
    eps_2027 = template.cell_by_name("IS_eps", "2027E")
    changed = evaluated.calculate({driver: 0.20})
    assert changed[revenue_2026] > solution[revenue_2026] + 30_000      # smartphones +20% instead of +0.1%
    assert changed[assets_2027] != pytest.approx(solution[assets_2027])
    assert changed[eps_2027] > solution[eps_2027]
    statuses = [v for (s, c), v in changed.items() if s == "校验" and v in ("OK", "FAIL")]
    assert statuses and set(statuses) == {"OK"}
    balance = template.cell_by_name("CHK_balance", "2027E")
    assert changed[balance] == "OK"


def test_formula_cells_carry_cached_values(template):
    """A viewer without Python sees numbers: every formula cell has a cached value."""
    missing = []
    for ws in template.book.worksheets:
        cached = template.values[ws.title]
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    if cached[cell.coordinate].value is None:
                        missing.append(f"{ws.title}!{cell.coordinate}")
    assert not missing, missing[:5]


def test_sheets_and_conventions(template):
    book = template.book
    assert book.sheetnames == ["封面", "盈利预测与估值简表", "表1 损益表", "表2 资产负债表", "表3 现金流量表",
                               "预测假设", "情景", "主要财务比率", "估值测算", "估值", "敏感性", "评级", "校验", "xlwings.conf",
                               "_blueprint", "_source"]
    assert book["_blueprint"].sheet_state == "veryHidden"
    assert book["_source"].sheet_state == "veryHidden"
    assert book["xlwings.conf"].sheet_state == "hidden"  # xlwings reads it by name; it does not print
    income = book["表1 损益表"]
    assert income.freeze_panes == "C5"
    historical = income[template.cell_by_label("表1 损益表", "智能手机", "2024")]
    forecast = income[template.cell_by_label("表1 损益表", "智能手机", "2025E")]
    assert not str(historical.value).startswith("=") and historical.font.color.rgb.endswith("0000FF")  # input, blue
    assert str(forecast.value).startswith("=ER_GROWTH(") and forecast.font.color.rgb.endswith("000000")  # formula, black
    assert "#,##0" in forecast.number_format
    drivers = book["预测假设"]
    validated = {str(rng) for dv in drivers.data_validations.dataValidation for rng in dv.sqref.ranges}
    driver_cell = template.cell_by_name("DRV_d_iot", "2025E")[1]
    assert driver_cell in validated
    dv = next(dv for dv in drivers.data_validations.dataValidation if driver_cell in {str(r) for r in dv.sqref.ranges})
    assert dv.prompt and "单位：%" in dv.prompt and "Unit: %" in dv.prompt  # the unit the cell's format shows, both languages
    assert income.page_setup.orientation == "landscape" and income.sheet_properties.pageSetUpPr.fitToPage
    conf = book["xlwings.conf"]
    assert (conf["A1"].value, conf["B1"].value) == ("UDF Modules", "udfs.xl")
    assert (conf["A2"].value, conf["B2"].value) == ("Use UDF Server", True)


def test_no_analyst_number_is_invented(template):
    """The report gives no target price: the target is the valuation's blend of the example
    valuation, every input of which says on the sheet that it is an example and where it comes
    from (issue 21); the model's rating is computed beside the published one."""
    sheet, cell = template.cell_by_name("RTG_target_price")
    assert str(template.book[sheet][cell].value).startswith("=")          # the blend's result, not a typed number
    assert isinstance(template.values[sheet][cell].value, float)
    ws = template.book["估值"]
    assert any("示例估值假设" in str(c.value) for row in ws.iter_rows(max_row=4) for c in row if c.value)
    for name in ("VAL_pe_multiple", "VAL_rf", "VAL_terminal_growth", "VAL_weight_pe", "VAL_weight_dcf"):
        sheet, cell = template.cell_by_name(name)
        assert template.book[sheet][cell].value is not None, name
        source = ws.cell(ws[cell].row, ws[cell].column + 1).value
        assert isinstance(source, str) and source.strip(), (name, "has no source beside it")
    for name in ("VAL_pb_multiple", "VAL_evebitda_multiple"):   # a method the example does not use stays empty
        sheet, cell = template.cell_by_name(name)
        assert template.book[sheet][cell].value is None, name
    sheet, cell = template.cell_by_name("RTG_computed_rating")
    assert template.values[sheet][cell].value in ("买入", "增持", "中性", "减持", "卖出")
    sheet, cell = template.cell_by_name("RTG_published_rating")
    assert template.book[sheet][cell].value == "买入"


def test_committed_template_is_a_fresh_build(built):
    """The template the README points at equals what the code builds now (member by member)."""
    assert COMMITTED.is_file(), "run: python -m addin build -o workbook/xiaomi_1810hk_model.xlsm --force"
    with zipfile.ZipFile(COMMITTED) as old, zipfile.ZipFile(built) as new:
        assert sorted(old.namelist()) == sorted(new.namelist())
        stale = [name for name in new.namelist() if old.read(name) != new.read(name)]
    assert not stale, f"rebuild the committed template: {stale}"


def test_years_follow_the_report(template):
    years = [y for y in template.year_columns("表1 损益表") if y not in ("项目", "Line")]
    assert years == YEARS
