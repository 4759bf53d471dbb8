"""The native-formula live edition (`export --native`), proven by engines we did not write:
LibreOffice recalculates it from scratch and the `formulas` package evaluates it, and both equal
the Python engine, for both companies and after a driver change; it holds no ER_ function, no
VBA, no link, and shows no #NAME? or Err: anywhere."""
from __future__ import annotations

import copy
import datetime as dt
import os
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest

import udfs
from addin.native import PLACEHOLDERS, NotExpressible, Translator, contiguous, export_native, parse, tokenize
from addin.template import blueprint
import libreoffice
from conftest import ROOT
from libreoffice import SOFFICE
from ooxml import assert_valid
from udfs.engine import driver_key
from udfs.rating import schemes
from udfs.registry import REGISTRY, guarded
from workbook import xlsx
from workbook.build import excel_serial
from workbook.company import load
from workbook.model import build_model

pytestmark = pytest.mark.xdist_group("native")  # one worker makes the editions and their LibreOffice recalculation

_has_libreoffice = pytest.mark.skipif(SOFFICE is None and not os.environ.get("CI"),
                                      reason="LibreOffice not installed here; `make test` installs it, and CI always has it")


def needs_libreoffice(test):
    """Starts LibreOffice: slow, and skipped where it is not installed (never in CI)."""
    return pytest.mark.slow(_has_libreoffice(test))
COMPANIES = {"xiaomi": ("xiaomi_1810hk_model.xlsm", "xiaomi_1810hk.toml"),
             "kysec": ("kysec_300592sz_model.xlsm", "kysec_300592sz.toml")}
RELATIVE = 1e-9
MACHINERY = ("_blueprint", "_source", "xlwings.conf")
# LibreOffice recalculates an .xlsx on load only when told to: OOXMLRecalcMode 0 is "always".
RECALC_ALWAYS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


def recalculate(sources: list[Path], out: Path) -> dict[Path, openpyxl.Workbook]:
    """Each file opened by LibreOffice headless with a hard recalculation, saved as .xlsx, and
    read back as values (openpyxl, data_only)."""
    profile = out / "profile"
    (profile / "user").mkdir(parents=True, exist_ok=True)
    (profile / "user" / "registrymodifications.xcu").write_text(RECALC_ALWAYS, encoding="utf-8")
    converted = libreoffice.convert(sources, "xlsx:Calc MS Excel 2007 XML", out / "recalculated", profile)
    return {source: openpyxl.load_workbook(path, data_only=True) for source, path in zip(sources, converted)}


def close(got, want) -> bool:
    if want == "" and got is None:   # an empty text result reads back as an empty cell
        return True
    if isinstance(want, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", want):   # the engine's date, the cell's serial
        day = got.date() if isinstance(got, dt.datetime) else got
        return day == dt.date.fromisoformat(want) if isinstance(day, dt.date) else got == excel_serial(want)
    if isinstance(want, float) and not isinstance(got, bool) and isinstance(got, (int, float)):
        return got == pytest.approx(want, rel=RELATIVE, abs=RELATIVE)
    return got == want


def engine_cells(rows: list, model) -> list:
    """(sheet, ref, key, year, engine value) for every formula cell of the source model's
    blueprint the engine computes: the summary, the statements, the ratios, the drivers'
    history, cover and rating."""
    out = []
    for row in rows:
        if row["kind"] == "input":
            continue
        want = model.value(row["key"], row["year"] or None)
        if want is not None:
            out.append((row["sheet"], row["cell"], row["key"], row["year"], want))
    return out


def company_with_driver(company, line: str, year: str, value: float):
    """The company with one driver value changed, as the engine reads drivers (its inputs)."""
    changed = copy.deepcopy(company)
    changed.inputs[(driver_key(line), year)] = value
    return changed


# ------------------------------------------------------------------------------------------------
# The registry: every function says how it is written natively
# ------------------------------------------------------------------------------------------------
TABLE = {"scheme_key": "'评级'!$B$2", "basis": "'评级'!$B$3", "unrated": "'评级'!$B$4",
         "labels": "'评级'!$A$6:$A$10", "thresholds": "'评级'!$B$6:$B$9", "benchmarks": "'评级'!$A$12:$B$20"}


@pytest.mark.parametrize("name", sorted(udfs.excel_functions()))
def test_every_function_has_a_native_template_or_is_declared_not_expressible(name):
    spec = REGISTRY[name]
    assert spec.native_declared, f"{name}: give native=TEMPLATE or native=None"
    if spec.native is None:
        with pytest.raises(NotExpressible):
            Translator(TABLE).formula(f"{name}({','.join('1' for _ in spec.args)})")
        return
    for key in re.findall(r"\{(\d+|[A-Za-z_]+)\}", spec.native):
        assert (key.isdigit() and int(key) < len(spec.args)) or key in PLACEHOLDERS, (name, key)
    native = Translator(TABLE).formula(f"{name}({','.join(f'A{i + 1}' for i in range(len(spec.args)))})")
    assert not any(kind == "word" and token.upper().startswith("ER_") for kind, token in tokenize(native)), native


def test_functions_not_expressible_are_the_array_and_series_ones():
    assert {n for n, f in REGISTRY.items() if f.native is None} == {
        "ER_CAGR", "ER_AVG_GROWTH", "ER_TREND", "ER_DCF_GRID", "ER_PE_GRID", "ER_DCF", "ER_BLEND", "ER_VALUATION_TARGET"}


def _OK(e: str) -> str:    # a number, and not a boolean (which LibreOffice counts as one)
    return f"AND(ISNUMBER({e}),NOT(ISLOGICAL({e})))"


def _BAD(e: str) -> str:   # empty: #N/A; anything else that is not a number: #VALUE!; an error: itself
    return f'IF({e}="",#N/A,#VALUE!)'


F9, XY, ABC = "'预测假设'!F9", '"x,)y"', "'a,b(c'!C9"


@pytest.mark.parametrize("formula,expected", [
    # an empty required cell is #N/A and text or a boolean #VALUE!, as the guard answers, where
    # Excel would read 0, "5" or TRUE: for any argument expression, not only a bare cell
    ("ER_GROWTH(D6,'预测假设'!F9)", f"IF({_OK('D6')},IF({_OK(F9)},D6*(1+{F9}),{_BAD(F9)}),{_BAD('D6')})"),
    ("_xlfn.ER_GROWTH(E6,0.1)", f"IF({_OK('E6')},E6*(1+0.1),{_BAD('E6')})"),   # as Excel saves an unknown function
    ("ER_GROWTH(E6,(Z99))", f"IF({_OK('E6')},IF({_OK('Z99')},E6*(1+Z99),{_BAD('Z99')}),{_BAD('E6')})"),
    ('ER_MARGIN(" 5",2)', f'IF({_OK(chr(34) + " 5" + chr(34))},IF(2<=0,"NM"," 5"/2),{_BAD(chr(34) + " 5" + chr(34))})'),
    ("ER_STEP(A1+B1,2)*3", "((A1+B1)+2)*3"),                           # operands and the result keep their precedence
    ("-ER_COST_SHARE(E5+0,F16*1)", "-(-(E5+0)*(F16*1))"),
    ("ER_MARGIN(ER_STEP(A1+0,B1+0),C1+0)", 'IF((C1+0)<=0,"NM",((A1+0)+(B1+0))/(C1+0))'),  # nested calls
    ("ER_DAYS(A1+0,B1+0,C1)", f'IF(OR({_OK("C1")},C1=""),IF(ABS(B1+0)=0,"NM",(A1+0)/ABS(B1+0)*IF(C1="",365,C1)),#VALUE!)'),
    ('ER_DAYS(A1+0,"x,)y")', f'IF({_OK(XY)},IF(ABS({XY})=0,"NM",(A1+0)/ABS({XY})*365),{_BAD(XY)})'),  # commas in quotes
    ("ER_FIXED('a,b(c'!C9)", f"IF({_OK(ABC)},{ABC},{_BAD(ABC)})"),  # a quoted sheet name with a comma
    ("SUM(ER_FIXED(2),2)&\"ER_FIXED(\"", 'SUM(2,2)&"ER_FIXED("'),      # text that looks like a call stays text
    ("er_check(1, 2)", 'IF(ABS(1-2)<=ABS(0.001),"OK","FAIL")'),         # Excel names are case-insensitive
    ("IF(COUNTIF(C5:E22,\"OK\")=54,\"OK\",\"FAIL\")", "IF(COUNTIF(C5:E22,\"OK\")=54,\"OK\",\"FAIL\")"),
    ("ER_WACC(0.02,1,0.06,0.04,A5*1,A6*1)", "IF(OR((A5*1)<0,(A5*1)>1,(A6*1)<0,(A6*1)>1),#NUM!,(1-(A6*1))*(0.02+1*0.06)+(A6*1)*0.04*(1-(A5*1)))"),
])
def test_translation(formula, expected):
    assert Translator(TABLE).formula(formula) == expected


@pytest.mark.parametrize("formula", ["ER_GROWTH(A1", "ER_GROWTH(A1))", "ER_NO_SUCH(A1)", "ER_GROWTH(A1,B1,C1)",
                                     "ER_DCF_GRID(A1:C1,A2:A4,B1:B3,TRUE,1,1,1,1,0)"])
def test_formulas_that_cannot_be_translated_are_refused(formula):
    with pytest.raises((NotExpressible, ValueError)):
        Translator(TABLE).formula(formula)


def test_tokenizer_keeps_every_character():
    text = "IF('表2 资产负债表'!$E$5<>0,{\"PE\",\"PB\"},#N/A)&\"a\"\"b\"+1.5E+3%"
    assert "".join(t for _, t in tokenize(text)) == text
    assert ("error", "#N/A") in tokenize(text) and ("sheetref", "'表2 资产负债表'!$E$5") in tokenize(text)
    assert len(parse(text)) == 5  # IF(...) & "a""b" + 1.5E+3%


def test_shipped_schemes_have_contiguous_bands():
    assert all(contiguous(scheme) for scheme in schemes().values())


# ------------------------------------------------------------------------------------------------
# The editions, LibreOffice and the engine
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def editions(tmp_path_factory) -> dict:
    """Per company: the native edition of the committed template, a copy with a driver changed,
    and a copy holding the rating formula at target prices on the rating thresholds (LibreOffice's
    recalculation of them all is `recalculated`, which only the slow tests ask for)."""
    out = tmp_path_factory.mktemp("native")
    found = {}
    for key, (template, data) in COMPANIES.items():
        native = export_native(ROOT / "workbook" / template, out / f"{key}.xlsx")
        package = xlsx.read(native)
        company = load(ROOT / "workbook" / "data" / data)
        rows = blueprint(xlsx.read(ROOT / "workbook" / template))
        second_year = company.forecast_years[1].label
        line = next(line for line, d in company.drivers.items() if d.method == "growth" and line not in company.scenario_drivers)
        driver = next(r for r in rows if r["key"] == driver_key(line) and r["year"] == second_year and r["kind"] == "input")
        new_value = 0.20
        changed = out / f"{key}-driver.xlsx"
        xlsx.type_values(package, {(driver["sheet"], driver["cell"]): new_value}, changed)
        found[key] = {"native": native, "package": package, "rows": rows, "company": company,
                      "changed": changed, "changed_company": company_with_driver(company, line, second_year, new_value),
                      "thresholds": _threshold_book(native, package, out, key)}
    return found


@pytest.fixture(scope="module")
def recalculated(editions, tmp_path_factory) -> dict:
    """`editions`, each entry with LibreOffice's recalculation of its files added: every file of
    both companies in one LibreOffice start."""
    sources = [path for entry in editions.values()
               for path in [entry["native"], entry["changed"], entry["thresholds"][0]]]
    books = recalculate(sources, tmp_path_factory.mktemp("native_lo"))
    for entry in editions.values():
        entry["lo"], entry["lo_changed"] = books[entry["native"]], books[entry["changed"]]
        entry["lo_thresholds"] = books[entry["thresholds"][0]]
    return editions


# The rating's inputs, as the threshold cases set them: (defined name, field of a case)
RATING_INPUTS = (("MKT_price", "price"), ("RTG_target_price", "target"), ("RTG_benchmark_return", "benchmark"),
                 ("RTG_expected_dps", "dividend"), ("RTG_rating_scheme", "scheme"), ("RTG_rating_boundary", "boundary"))
FIRST_CASE_ROW, FIRST_CASE_COL = 100, 30   # below and right of anything the edition uses


def _threshold_book(native: Path, package: xlsx.Package, out: Path, key: str) -> tuple[Path, list]:
    """A copy of the native edition whose rating sheet holds one row per case: a target price that
    puts the excess return on each threshold of the scheme (and just either side of it), under
    each boundary convention, and the edition's own rating formula with its input cells replaced
    by that row's. One LibreOffice recalculation then judges every case (a copy of the whole
    edition per case cost a second each); the formula in the edition's rating cell itself is what
    `test_libreoffice_recalculation_equals_the_engine` compares. (path, [(ref, case)])."""
    cell = {name: package.name_cells(name)[0] for name, _ in RATING_INPUTS}
    rating_sheet, rating_ref = package.name_cells("RTG_computed_rating")[0]
    formula = package.sheets[rating_sheet].cells[rating_ref].formula
    price = package.value(*cell["MKT_price"])
    dividend = package.value(*cell["RTG_expected_dps"]) or 0.0  # the expected return counts it
    scheme = schemes()[package.value(*cell["RTG_rating_scheme"])]
    cases = []
    for band in scheme.bands[:-1]:
        for boundary in ("outer", "inner"):
            for nudge in (0.0, 1e-6, -1e-6):
                benchmark = 0.05
                target = price * (1 + float(band.min_pct) / 100 + benchmark + nudge) - dividend
                cases.append({"price": price, "target": target, "benchmark": benchmark, "boundary": boundary,
                              "scheme": scheme.key, "dividend": dividend})
    patterns = {}   # name -> the ways the rating formula can write its input cell
    for name, _ in RATING_INPUTS:
        where, ref = cell[name]
        col, r = re.fullmatch(r"([A-Z]+)(\d+)", ref).groups()
        absolute = rf"\$?{col}\$?{r}(?!\d)"
        patterns[name] = [rf"(?:'{re.escape(where)}'|(?<!')\b{re.escape(where)})!{absolute}"]
        if where == rating_sheet:
            patterns[name].append(rf"(?<![!\w$']){absolute}")
    book = openpyxl.load_workbook(native)
    sheet = book[rating_sheet]
    placed = []
    result_column = openpyxl.utils.get_column_letter(FIRST_CASE_COL + len(RATING_INPUTS))
    for number, case in enumerate(cases):
        row = FIRST_CASE_ROW + number
        row_formula = formula
        for column, (name, field) in enumerate(RATING_INPUTS, start=FIRST_CASE_COL):
            sheet.cell(row, column, case[field])
            for pattern in patterns[name]:
                row_formula = re.sub(pattern, f"${openpyxl.utils.get_column_letter(column)}${row}", row_formula)
        assert row_formula != formula
        sheet[f"{result_column}{row}"] = "=" + row_formula
        placed.append((f"{result_column}{row}", case))
    path = out / f"{key}-thresholds.xlsx"
    book.save(path)
    return path, placed


def _lo_value(book, sheet, ref):
    return book[sheet][ref].value


@needs_libreoffice
@pytest.mark.parametrize("key", list(COMPANIES))
def test_libreoffice_recalculation_equals_the_engine(recalculated, key):
    entry = recalculated[key]
    model = build_model(entry["company"])
    cells = engine_cells(entry["rows"], model)
    assert len(cells) > 250
    wrong = [(s, r, k, y, _lo_value(entry["lo"], s, r), want) for s, r, k, y, want in cells
             if not close(_lo_value(entry["lo"], s, r), want)]
    assert not wrong, wrong[:5]


@needs_libreoffice
@pytest.mark.parametrize("key", list(COMPANIES))
def test_libreoffice_after_a_driver_change_equals_the_engine_with_that_driver(recalculated, key):
    entry = recalculated[key]
    before, after = build_model(entry["company"]), build_model(entry["changed_company"])
    cells = engine_cells(entry["rows"], after)
    moved = [c for c in cells if not close(before.value(c[2], c[3] or None), c[4])]
    assert len(moved) > 20   # the change reaches the statements, not one cell
    wrong = [(s, r, k, y, _lo_value(entry["lo_changed"], s, r), want) for s, r, k, y, want in cells
             if not close(_lo_value(entry["lo_changed"], s, r), want)]
    assert not wrong, wrong[:5]
    assert after.balanced
    statuses = [c.value for row in entry["lo_changed"]["校验"].iter_rows() for c in row if c.value in ("OK", "FAIL")]
    assert statuses and set(statuses) == {"OK"}


@needs_libreoffice
@pytest.mark.parametrize("key", list(COMPANIES))
def test_rating_on_a_threshold_follows_the_boundary_convention(recalculated, key):
    entry = recalculated[key]
    sheet = entry["package"].name_cells("RTG_computed_rating")[0][0]
    checked = set()
    for ref, inputs in entry["thresholds"][1]:
        want = guarded("ER_RATING")(inputs["price"], inputs["target"], inputs["benchmark"], inputs["dividend"], inputs["scheme"],
                                    inputs["boundary"])
        assert _lo_value(entry["lo_thresholds"], sheet, ref) == want, inputs
        checked.add(want)
    assert len(checked) == len(schemes()[entry["company"].scalar_inputs["rating_scheme"]].bands)


@needs_libreoffice
@pytest.mark.parametrize("key", list(COMPANIES))
def test_no_cell_shows_name_or_err_after_libreoffice(recalculated, key):
    entry = recalculated[key]
    for book in (entry["lo"], entry["lo_changed"]):
        bad = [(ws.title, c.coordinate, c.value) for ws in book for row in ws.iter_rows() for c in row
               if isinstance(c.value, str) and (c.value.startswith("#NAME") or c.value.startswith("Err:"))]
        assert not bad, bad[:5]


@pytest.mark.parametrize("key", list(COMPANIES))
def test_formulas_package_equals_the_engine(editions, key):
    from formulas_bridge import Evaluated
    entry = editions[key]
    solution = Evaluated(entry["native"]).calculate()
    cells = engine_cells(entry["rows"], build_model(entry["company"]))
    compared = [(s, r, solution[(s, r)], want) for s, r, _, _, want in cells if (s, r) in solution]
    assert len(compared) > 250
    wrong = [c for c in compared if not close(c[2], c[3])]
    assert not wrong, wrong[:5]


# ------------------------------------------------------------------------------------------------
# The package
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(COMPANIES))
def test_the_edition_holds_no_er_function_no_vba_no_link(editions, key):
    entry = editions[key]
    package, path = entry["package"], entry["native"]
    formulas = [cell.formula for sheet in package.sheets.values() for cell in sheet.cells.values() if cell.formula]
    assert len(formulas) > 300
    words = {token.upper() for f in formulas for kind, token in tokenize(f) if kind == "word"}
    assert not [w for w in words if w.startswith("ER_")]
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        types = archive.read("[Content_Types].xml").decode()
        book = archive.read("xl/workbook.xml").decode()
        rels = archive.read("xl/_rels/workbook.xml.rels").decode()
    assert not [n for n in names if "vbaproject" in n.lower() or "externallink" in n.lower() or "calcchain" in n.lower()]
    assert "macroEnabled" not in types and "vbaProject" not in types and "vbaProject" not in rels
    assert 'fullCalcOnLoad="1"' in book
    assert "ER_" not in "".join(package.shared)   # the blueprint's formula text does not travel


@pytest.mark.parametrize("key", list(COMPANIES))
def test_the_edition_keeps_sheets_names_chart_and_values(editions, key):
    entry = editions[key]
    template, _ = COMPANIES[key]
    source = xlsx.read(ROOT / "workbook" / template)
    package = entry["package"]
    assert list(package.sheets) == [s for s in source.sheets if s not in MACHINERY]
    kept_names = {n for n, text in source.names.items() if not any(m in text for m in MACHINERY)}
    assert kept_names <= set(package.names) and {"MKT_price", "RTG_computed_rating"} <= kept_names
    assert any(p.startswith("xl/charts/") for p in package.members)
    for row in entry["rows"]:                      # cached values and inputs kept
        if row["sheet"] in package.sheets:
            assert package.value(row["sheet"], row["cell"]) == source.value(row["sheet"], row["cell"]), row
    cover = " ".join(str(v) for v in (package.value("封面", ref) for ref in package.sheets["封面"].cells) if v)
    assert template in cover and "原生公式版" in cover and "Refresh 刷新" not in cover


@pytest.mark.parametrize("key", list(COMPANIES))
def test_the_edition_is_valid_ooxml(editions, key):
    assert_valid(editions[key]["native"])


def test_a_function_without_native_form_becomes_its_value_with_a_note(tmp_path):
    model = ROOT / "workbook" / COMPANIES["xiaomi"][0]
    package = xlsx.read(model)
    sheet = package.sheets["主要财务比率"]
    target = tmp_path / "with-cagr.xlsm"
    data = sheet.data().replace(b"<f>ER_MARGIN('\xe8\xa1\xa81", b"<f>ER_CAGR(C5:E5)+0*ER_MARGIN('\xe8\xa1\xa81", 1)
    assert data != sheet.data()
    xlsx.write(package, {sheet.path: data}, target)
    native = xlsx.read(export_native(target, tmp_path / "live.xlsx"))
    changed = [ref for ref, cell in xlsx.read(target).sheets["主要财务比率"].cells.items()
               if cell.formula and cell.formula.startswith("ER_CAGR")]
    assert len(changed) == 1
    ref = changed[0]
    assert native.sheets["主要财务比率"].cells[ref].formula is None
    assert native.value("主要财务比率", ref) == package.value("主要财务比率", ref)
    note = " ".join(str(native.value("封面", r)) for r in native.sheets["封面"].cells)
    assert f"主要财务比率!{ref}" in note and "ER_CAGR" in note


def test_cli_export_native(tmp_path):
    from addin.cli import main
    out = tmp_path / "live.xlsx"
    assert main(["export", str(ROOT / "workbook" / COMPANIES["xiaomi"][0]), "--native", "-o", str(out)]) == 0
    rows = blueprint(xlsx.read(ROOT / "workbook" / COMPANIES["xiaomi"][0]))
    driver = next(r["cell"] for r in rows if r["key"] == "d_iot" and r["year"] == "2025E")
    iot = next(r["cell"] for r in rows if r["key"] == "iot" and r["year"] == "2025E")
    prior = next(r["cell"] for r in rows if r["key"] == "iot" and r["year"] == "2024")
    rate = f"'预测假设'!{driver}"
    assert xlsx.read(out).sheets["表1 损益表"].cells[iot].formula == \
        f"IF({_OK(prior)},IF({_OK(rate)},{prior}*(1+{rate}),{_BAD(rate)}),{_BAD(prior)})"
    assert main(["export", str(ROOT / "workbook" / COMPANIES["xiaomi"][0]), "--native", "-o", str(tmp_path / "x.xlsm")]) != 0
    assert not (tmp_path / "x.xlsm").exists()


# ------------------------------------------------------------------------------------------------
# Formulas an analyst types: every ER_ call, prefixed or not, under the guard's argument rules
# (issue 25: 7 of 20 such formulas disagreed between the .xlsm and the native edition)
# ------------------------------------------------------------------------------------------------
ANALYST_CELLS = {"E6": 181462, "F6": 200, "A1": "5", "A2": "Bear", "C1": "=NA()", "D1": '=""'}
ANALYST_FORMULAS = [   # (formula as typed, what the .xlsm shows: the Python guard's answer)
    ("ER_GROWTH(E6,(Z99))", "#N/A"),                 # an empty cell in parentheses is still empty
    ('ER_GROWTH(E6,"0.1")', "#VALUE!"),              # text where a number belongs, even numeric text
    ("ER_GROWTH(E6,TRUE)", "#VALUE!"),
    ('ER_MARGIN(" 5",2)', "#VALUE!"),
    ("ER_GROWTH(E6,A1)", "#VALUE!"),                 # a cell holding the text "5"
    ('ER_GROWTH(E6,IF(TRUE,"0.1"))', "#VALUE!"),     # text from a function
    ('ER_GROWTH(E6,0.1&"")', "#VALUE!"),
    ("ER_GROWTH(E6,E6>0)", "#VALUE!"),               # a comparison is a boolean
    ("ER_STEP(E6,TRUE)", "#VALUE!"),
    ("ER_GROWTH(E6,Z99)", "#N/A"),
    ("ER_GROWTH(E6,D1)", "#N/A"),                    # a formula returning ""
    ("ER_GROWTH(E6,C1)", "#N/A"),                    # an error value is passed on
    ("ER_GROWTH(E6,1/0)", "#DIV/0!"),
    ("ER_GROWTH(E6,-0.1)", 163315.8),
    ("ER_GROWTH(E6,0.1+Z99)", 199608.2),             # arithmetic: Excel computes it first, in both editions
    ("ER_GROWTH(E6,ROUND(0.1,2))", 199608.2),
    ("ER_GROWTH((E6),(0.1))", 199608.2),
    ("ER_MARGIN(E6,0)", "NM"),
    ("ER_MARGIN(E6,Z99)", "#N/A"),
    ("ER_DAYS(E6,F6,Z99)", 331168.15),               # an empty optional argument takes its default
    ('ER_DAYS(E6,F6,"x")', "#VALUE!"),
    ("ER_DAYS(E6,F6,TRUE)", "#VALUE!"),
    ('ER_SCENARIO(" bull ",1,2,3)', 3),              # text arguments are trimmed
    ("ER_SCENARIO(A2,1,2,3)", 2),
    ("ER_SCENARIO(5,1,2,3)", "#VALUE!"),             # a number where text belongs
    ("ER_CHECK(E6,E6)", "OK"),
    ("ER_MARGIN(ER_STEP(E6,Z99),F6)", "#N/A"),        # another function's error passes through
    ("ER_MARGIN(ER_MARGIN(E6,0),F6)", "#VALUE!"),     # and its label is text where a number belongs
]
SAVED_AS_UNKNOWN = [("_xlfn.ER_GROWTH(E6,0.1)", 199608.2), ("_xlfn._xlws.ER_MARGIN(E6,F6)", 907.31)]


def _analyst_book(path: Path, formulas: list) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "S"
    for ref, value in ANALYST_CELLS.items():
        sheet[ref] = value
    for row, formula in enumerate(formulas, start=10):
        sheet[f"H{row}"] = "=" + formula
    book.save(path)
    return path


def _same(got, want) -> bool:
    if isinstance(want, (int, float)) and not isinstance(got, bool) and isinstance(got, (int, float)):
        return got == pytest.approx(want, rel=1e-9)
    return got == want


def test_analyst_formulas_in_the_template_give_the_guards_answers(tmp_path):
    from formulas_bridge import Evaluated
    path = _analyst_book(tmp_path / "typed.xlsx", [f for f, _ in ANALYST_FORMULAS])
    got = Evaluated(path).calculate()
    wrong = [(f, got.get(("S", f"H{row}")), want) for row, (f, want) in enumerate(ANALYST_FORMULAS, start=10)
             if not _same(got.get(("S", f"H{row}")), want)]
    assert wrong == []


@needs_libreoffice
def test_analyst_formulas_in_the_native_edition_give_the_same_answers(tmp_path):
    cases = ANALYST_FORMULAS + SAVED_AS_UNKNOWN
    native = [Translator(TABLE).formula(f) for f, _ in cases]
    assert not any("ER_" in text.upper() for text in native)
    path = _analyst_book(tmp_path / "native.xlsx", native)
    book = recalculate([path], tmp_path)[path]
    wrong = [(f, book["S"][f"H{row}"].value, want) for row, (f, want) in enumerate(cases, start=10)
             if not _same(book["S"][f"H{row}"].value, want)]
    assert wrong == []
