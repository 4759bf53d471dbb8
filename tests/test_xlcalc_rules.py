"""The headless evaluator against Excel's rules: one row per example of issue 15 (wrong numbers,
tracebacks) and issue 8 item 6. Each row is a formula as an analyst may type it, the value Excel
shows for it, and what `workbook/xlcalc.py` computes from a file holding it.

The grid every formula sees (sheet 表1, so references cross no sheet unless they say so):

    row 5, C..G   100, 200, 300, 475994.3, 500     IS_revenue = '表1'!$C$5:$G$5
    E6            1234.5678
    A10..A16      apple, apricot, banana, a*c, (blank), "" (empty text), 1 / "1" (text)
    names         TAXR = 0.175, DOUBLE_C5 = '表1'!$C$5*2, MKT_price_date = 46009 (2025-12-18),
                  MKT_fx_rate = 0.91234
Formulas go in column F (so a row range intersects at F) unless a row says otherwise.
"""
from __future__ import annotations

import sys

import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import examples
from workbook import xlsx
from workbook.xlcalc import Evaluator, UnsupportedFormula, evaluate, same_value

SHEET = "表1"

GRID = {
    "C5": 100, "D5": 200, "E5": 300, "F5": 475994.3, "G5": 500,
    "E6": 1234.5678,
    "A10": "apple", "A11": "apricot", "A12": "banana", "A13": "a*c", "A15": "", "A16": 1, "A17": "1",
}
NAMES = {
    "IS_revenue": f"='{SHEET}'!$C$5:$G$5",
    "TAXR": "=0.175",
    "DOUBLE_C5": f"='{SHEET}'!$C$5*2",
    "MKT_price_date": "=46009",
    "MKT_fx_rate": "=0.91234",
}
WORDS = f"'{SHEET}'!$A$10:$A$17"

# (formula, Excel's value, where it is typed); each row names the example it stands for.
RULES = [
    # implicit intersection: a row range or a name spanning a row takes the same column's cell
    ("=IS_revenue", 475994.3, "F20"),
    ("=C5:G5", 475994.3, "F20"),
    ("=IS_revenue*2", 951988.6, "F20"),
    ("=IS_revenue", 300.0, "E20"),
    ("=IS_revenue", "#VALUE!", "H20"),            # no cell of the row in column H
    ("=ABS(C5:G5)", 200.0, "D20"),
    ("=SUM(IS_revenue)", 477094.3, "A20"),        # a function taking a range reads all of it
    # defined names holding a constant or a formula
    ("=TAXR*E5", 0.175 * 300, "F20"),
    ("=DOUBLE_C5+1", 201.0, "F20"),
    ("=UNKNOWN_NAME+1", "#NAME?", "F20"),
    # number to text as Excel writes it: 15 significant digits, plain below 1E+15
    ('=F5/1000&"亿"', "475.9943亿", "F20"),
    ('=10000000&""', "10000000", "F20"),
    ('="a"&1234567', "a1234567", "F20"),
    ('=0.1+0.2&""', "0.3", "F20"),
    ('=1E+15&""', "1E+15", "F20"),
    ('=123456789012345678&""', "1.23456789012346E+17", "F20"),
    ('=1/3&""', "0.333333333333333", "F20"),
    ('=TRUE&"x"', "TRUEx", "F20"),
    # aggregates: values given directly are coerced, the NM label is #VALUE!; ranges skip text
    ("=MAX(ER_MARGIN(1,-5),0)", "#VALUE!", "F20"),
    ('=SUM("3",TRUE,1)', 5.0, "F20"),
    ('=SUM(1,"2")', 3.0, "F20"),
    (f"=SUM({WORDS})", 1.0, "F20"),                # text "1" and the words in the range are skipped
    ('=AVERAGE("x",1)', "#VALUE!", "F20"),
    ('=MIN(TRUE,5)', 1.0, "F20"),
    # operators coerce text to numbers
    ('="1"+1', 2.0, "F20"),
    ('=" 2.5 "*2', 5.0, "F20"),
    ('="50%"*10', 5.0, "F20"),
    ('="x"+1', "#VALUE!", "F20"),
    ('=-"3"', -3.0, "F20"),
    # COUNTIF: wildcards, escapes, blanks
    (f'=COUNTIF({WORDS},"ap*")', 2.0, "F20"),
    (f'=COUNTIF({WORDS},"?pple")', 1.0, "F20"),
    (f'=COUNTIF({WORDS},"A*")', 3.0, "F20"),
    (f'=COUNTIF({WORDS},"a~*c")', 1.0, "F20"),
    (f'=COUNTIF({WORDS},"")', 2.0, "F20"),      # the blank cell and the empty text
    (f'=COUNTIF({WORDS},"=")', 1.0, "F20"),     # only the blank cell
    (f'=COUNTIF({WORDS},"<>")', 7.0, "F20"),    # everything but the blank cell
    (f'=COUNTIF({WORDS},1)', 2.0, "F20"),       # the number 1 and the text "1"
    (f'=COUNTIF({WORDS},"<>apple")', 7.0, "F20"),
    # comparison across types and power rules
    ("=TRUE>5", True, "F20"),
    ('="a">5', True, "F20"),
    ('=TRUE>"a"', True, "F20"),
    ("=1=TRUE", False, "F20"),
    ('="abc"="ABC"', True, "F20"),
    ('="a"<"B"', True, "F20"),
    ("=0^0", "#NUM!", "F20"),
    ("=0^-1", "#DIV/0!", "F20"),
    ("=(-8)^0.5", "#NUM!", "F20"),
    ("=-2^2", 4.0, "F20"),
    # issue 8 item 6
    ('=ABS("x")', "#VALUE!", "F20"),
    ('=NOT("x")', "#VALUE!", "F20"),
    ('=IF("x",1,2)', "#VALUE!", "F20"),
    # ROUND overflow and huge digits: a value, not decimal.InvalidOperation
    ("=ROUND(E5*1E+25,2)", 300.0 * 1e25, "F20"),
    ("=ROUND(E6,1E+10)", 1234.5678, "F20"),
    ("=ROUND(E6,-1E+10)", 0.0, "F20"),
    ("=ROUND(E6,2)", 1234.57, "F20"),
    ("=ROUND(2.675,2)", 2.68, "F20"),
    ("=ROUND(-2.5,0)", -3.0, "F20"),
    # a formula showing an empty cell shows 0
    ("=B99", 0.0, "F20"),
    # TEXT with the formats the templates use; dates are 1900-system serials
    ('="股价时间为 "&TEXT(MKT_price_date,"yyyy-mm-dd")&"，汇率 "&TEXT(MKT_fx_rate,"0.0000")',
     "股价时间为 2025-12-18，汇率 0.9123", "F20"),
    ('=TEXT(1234.5,"0")', "1235", "F20"),
    ('=TEXT(1234.56,"0.0")', "1234.6", "F20"),
    ('=TEXT(-1234.567,"0.00")', "-1234.57", "F20"),
    ('=TEXT(475994,"#,##0")', "475,994", "F20"),
    ('=TEXT(1234567.891,"#,##0.00")', "1,234,567.89", "F20"),
    ('=TEXT(0.2345,"0.0%")', "23.5%", "F20"),
    ('=TEXT(2^60,"0")', "1152921504606850000", "F20"),       # 15 significant digits, then zeros
    ('=TEXT(0.1+0.2,"0.00000000000000000")', "0.30000000000000000", "F20"),
    ('=TEXT(60,"yyyy-mm-dd")', "1900-02-29", "F20"),
    ('=TEXT(61,"yyyy-mm-dd")', "1900-03-01", "F20"),
    ('=TEXT(1,"yyyy-mm-dd")', "1900-01-01", "F20"),
    ('=TEXT("abc","0.00")', "abc", "F20"),
    # text that reads like an error value is text
    ('=ISERROR("#N/A")', False, "F20"),
    ('=ISERROR("#N/"&"A")', False, "F20"),
    ('=IFERROR("#N/A",1)', "#N/A", "F20"),
    ('="#N/A"+1', "#VALUE!", "F20"),
    ("=ISERROR(ER_MARGIN(NA(),1))", False, "F20"),   # xlwings returns the UDF's error as text
    ("=ER_MARGIN(NA(),1)+1", "#VALUE!", "F20"),
    # text beyond Excel's largest number is not a number
    ('="1E+999"+0', "#VALUE!", "F20"),
]

# Formulas Excel would not accept, or that need Excel: refused by name, never a traceback.
REFUSED = [
    ("='[other.xlsx]Sheet1'!A1", "another workbook"),
    ("=ROUND(E6)", "ROUND takes 2"),
    ("=ABS()", "ABS takes 1"),
    ("=IF()", "IF takes 2 to 3"),
    ("=IFERROR(E6)", "IFERROR takes 2"),
    (f"=COUNTIF({WORDS})", "COUNTIF takes 2"),
    ("=VLOOKUP(1,C5:G5,1)", "VLOOKUP"),
    ('=TEXT(1,"mmm d")', "TEXT format"),
    ('="2025-01-02"+1', "regional settings"),
    ("=" + "(" * 200 + "1" + ")" * 200, "nested"),
    ('=TEXT(1,"0.' + "0" * 40 + '")', "decimals"),
    ("=1E+999*2", "largest number"),
]


def _package(tmp_path, formulas: dict, names: dict = NAMES):
    path = tmp_path / "rules.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet(SHEET)
    for ref, value in GRID.items():
        if value == "":
            sheet.write_formula(ref, '=""', None, "")
        else:
            sheet.write(ref, value)
    for ref, formula in formulas.items():
        sheet.write_formula(ref, formula, None, 0)
    for name, text in names.items():
        book.define_name(name, text)
    book.close()
    return xlsx.read(path)


def _same(got, want) -> bool:
    if isinstance(want, float) and isinstance(got, float) and not isinstance(got, bool):
        return got == pytest.approx(want, rel=1e-12)
    return same_value(got, want)


@pytest.mark.parametrize("formula, excel, where", RULES, ids=[f"{r[0]}@{r[2]}" for r in RULES])
def test_formula_gives_what_excel_shows(tmp_path, formula, excel, where):
    values = evaluate(_package(tmp_path, {where: formula}))
    got = values[(SHEET, where)]
    assert _same(got, excel), f"{formula} in {where}: Excel {excel!r}, evaluator {got!r}"


@pytest.mark.parametrize("formula, says", REFUSED, ids=[r[0][:40] for r in REFUSED])
def test_formula_is_refused_by_name(tmp_path, formula, says):
    package = _package(tmp_path, {"F20": formula})
    with pytest.raises(UnsupportedFormula, match=says) as refused:
        evaluate(package)
    assert "F20" in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("a, b, same", [
    (0.0, False, False), (1.0, True, False), ("", None, False), (None, 0.0, False),
    ("OK", "ok", False), (2, 2.0, True), (False, False, True), ("#N/A", "#N/A", True),
])
def test_same_value_tells_types_apart(a, b, same):
    assert same_value(a, b) is same


def test_long_chain_of_cells_leaves_the_recursion_limit_alone(tmp_path, monkeypatch):
    def forbidden(limit):
        raise AssertionError("the evaluator changed the process-wide recursion limit")
    monkeypatch.setattr(sys, "setrecursionlimit", forbidden)
    cells = 3000
    formulas = {f"H{row}": f"=H{row - 1}+1" for row in range(2, cells + 1)}
    formulas["H1"] = "=1"
    limit = sys.getrecursionlimit()
    values = evaluate(_package(tmp_path, formulas))
    assert values[(SHEET, f"H{cells}")] == float(cells)
    assert sys.getrecursionlimit() == limit


def test_circular_reference_is_one_line(tmp_path):
    package = _package(tmp_path, {"H1": "=H3+1", "H2": "=H1", "H3": "=H2"})
    with pytest.raises(xlsx.WorkbookError, match="circular reference"):
        evaluate(package)


def test_a_name_defined_on_the_sheet_hides_the_workbook_name(tmp_path):
    package = _package(tmp_path, {"F20": "=TAXR*100"}, {**NAMES, f"'{SHEET}'!TAXR": "=0.25"})
    assert evaluate(package)[(SHEET, "F20")] == 25.0


def test_a_name_defined_through_itself_is_one_line(tmp_path):
    package = _package(tmp_path, {"F20": "=LOOP+1"}, {**NAMES, "LOOP": "=LOOP*2"})
    with pytest.raises(xlsx.WorkbookError, match="LOOP refers to itself"):
        evaluate(package)


def test_names_nested_without_end_are_refused(tmp_path):
    chain = {f"STEP_{i}": f"=STEP_{i + 1}+1" for i in range(40)}
    package = _package(tmp_path, {"F20": "=STEP_0"}, {**NAMES, **chain, "STEP_40": "=1"})
    with pytest.raises(UnsupportedFormula, match="nested"):
        evaluate(package)


TOKENS = ["1", "0", "-", "+", "*", "/", "^", "&", "%", "=", "<", ">", "<>", "(", ")", ",", '"a"', '""', "TRUE",
          "E5", "C5:G5", "IS_revenue", "TAXR", "SUM(", "ROUND(", "ABS(", "IF(", "IFERROR(", "COUNTIF(", "NOT(",
          "AND(", "TEXT(", "ER_MARGIN(", "#N/A", "1E+300", "'表1'!", "[x]", "$", ":", " "]


@settings(max_examples=examples(50), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map("".join), min_size=20, max_size=20))
def test_any_formula_text_gives_a_value_or_one_line(tmp_path_factory, formulas):
    """Whatever an analyst types: a value, or a refusal in one line, never a Python traceback."""
    path = tmp_path_factory.mktemp("garbage")
    package = _package(path, {f"J{row}": "=" + text for row, text in enumerate(formulas, start=1)})
    evaluator = Evaluator(package)
    for row in range(1, len(formulas) + 1):
        try:
            value = evaluator.cell(SHEET, f"J{row}")
        except xlsx.WorkbookError as refused:
            assert "\n" not in str(refused)
            continue
        assert value is None or isinstance(value, (bool, float, str))
