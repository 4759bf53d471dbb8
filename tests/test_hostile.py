"""Hostile input at every door: what Excel can pass to a UDF, and malformed files at every command.
Each gets a clear answer: an error value or label for a UDF; one readable line, a non-zero exit,
no traceback, no partial output and the input unchanged for a command."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import udfs
from conftest import ROOT, examples
from test_udf_inputs import acceptable
from workbook import xlsx

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
COMPANY = ROOT / "workbook" / "data" / "xiaomi_1810hk.toml"

ERRORS = st.sampled_from(["#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!"])
SCALARS = st.one_of(
    st.none(), st.just(""), st.text(max_size=12), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, -0.0, 0.0, 5e-324]), ERRORS,
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)),
)
EXCEL_VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.lists(st.lists(SCALARS, min_size=1, max_size=3), min_size=1, max_size=3),
)
FUNCTIONS = sorted(udfs.excel_functions().items())


@pytest.mark.parametrize("name,function", FUNCTIONS, ids=[n for n, _ in FUNCTIONS])
@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(data=st.data())
def test_every_udf_answers_anything_excel_can_pass(name, function, data):
    import inspect
    arity = len(inspect.signature(function).parameters)
    args = data.draw(st.lists(EXCEL_VALUES, min_size=0, max_size=arity + 1))
    result = function(*args)
    assert acceptable(result), (name, args, result)
    if isinstance(result, str):
        assert "Traceback" not in result and "<" not in result and "Error(" not in result


def test_udf_numbers_are_finite_and_not_silent_garbage():
    f = udfs.excel_functions()
    assert f["ER_GROWTH"](1e308, 1e308) == "#NUM!"
    assert f["ER_MULTIPLE"](36.4, 5e-324) == "#NUM!"           # a price over a denormal EPS overflows
    assert f["ER_GROWTH"](-0.0, 0.1) == 0.0
    assert f["ER_GROWTH"](dt.datetime(2025, 1, 1), 0.1) == "#VALUE!"


# --------------------------------------------------------------------------------------------
# Malformed files at every command
# --------------------------------------------------------------------------------------------
def _zip_edit(source: Path, target: Path, edit=None, drop=(), extra=None):
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for info in z.infolist():
            if info.filename in drop:
                continue
            data = z.read(info.filename)
            if edit:
                data = edit(info.filename, data)
            out.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            out.writestr(name, data)
    return target


def _sheet_member(name: str) -> str:
    return xlsx.read(TEMPLATE).sheets[name].path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    (d / "not_zip.xlsm").write_text("this is not a workbook", encoding="utf-8")
    (d / "empty.xlsm").write_bytes(b"")
    (d / "truncated.xlsm").write_bytes(TEMPLATE.read_bytes()[: TEMPLATE.stat().st_size * 6 // 10])
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * 30_000_000)
    (d / "bomb.xlsm").write_bytes(bomb.getvalue())
    book = openpyxl.Workbook()
    book.active["A1"] = "not ours"
    book.save(d / "not_ours.xlsx")
    shutil.copy(d / "not_ours.xlsx", d / "not_ours.xlsm")
    _zip_edit(TEMPLATE, d / "sheet_deleted.xlsm",
              lambda n, b: re.sub(rb'<sheet name="\xe8\xaf\x84\xe7\xba\xa7"[^>]*/>', b"", b) if n == "xl/workbook.xml" else b)
    _zip_edit(TEMPLATE, d / "sheet_renamed.xlsm",
              lambda n, b: b.replace("表1 损益表".encode(), "表一".encode()) if n == "xl/workbook.xml" else b)
    income = _sheet_member("表1 损益表")
    package = xlsx.read(TEMPLATE)
    a6, a7 = (package.sheets["表1 损益表"].cells[r] for r in ("A6", "A7"))
    _zip_edit(TEMPLATE, d / "labels_moved.xlsm",
              lambda n, b: b.replace(f'<c r="A6" s="{a6.attrs["s"]}" t="s"><v>{a6.raw_value}</v>'.encode(),
                                     f'<c r="A6" s="{a6.attrs["s"]}" t="s"><v>{a7.raw_value}</v>'.encode()) if n == income else b)
    _zip_edit(TEMPLATE, d / "name_removed.xlsm",
              lambda n, b: re.sub(rb'<definedName name="MKT_price">[^<]*</definedName>', b"", b) if n == "xl/workbook.xml" else b)
    cell = package.name_cells("IS_smartphone")[3]
    xlsx.type_values(package, {cell: "abc"}, d / "formula_text.xlsm")
    _zip_edit(TEMPLATE, d / "vba_removed.xlsm", drop=("xl/vbaProject.bin",))
    cells = "".join(f'<row r="{r}"><c r="Z{r}"/></row>' for r in range(5000, 215_000))
    _zip_edit(TEMPLATE, d / "huge.xlsm",
              lambda n, b: b.replace(b"</sheetData>", cells.encode() + b"</sheetData>") if n == _sheet_member("评级") else b)
    _zip_edit(TEMPLATE, d / "newer.xlsm",
              lambda n, b: b.replace(b"<vt:lpwstr>1.0</vt:lpwstr>", b"<vt:lpwstr>9.0</vt:lpwstr>") if n == "docProps/custom.xml" else b)
    _zip_edit(TEMPLATE, d / "bad_xml.xlsm", lambda n, b: b"\xff\xfe\x00garbage" if n == "xl/workbook.xml" else b)
    (d / "folder.xlsm").mkdir()
    shutil.copy(TEMPLATE, d / "good.xlsm")

    header = "ticker,price,currency,price_date,fx_to_reporting,benchmark_level,source\n"
    today = dt.date.today()
    (d / "q_ambiguous.csv").write_text(header + "1810.HK,40,HKD,03/04/2026,0.9,,a\n", encoding="utf-8")
    (d / "q_dup.csv").write_text(header + f"1810.HK,40,HKD,{today},0.9,,a\n1810.HK,41,HKD,{today},0.9,,b\n", encoding="utf-8")
    (d / "q_neg.csv").write_text(header + f"1810.HK,-40,HKD,{today},0.9,,a\n", encoding="utf-8")
    (d / "q_future.csv").write_text(header + f"1810.HK,40,HKD,{today + dt.timedelta(days=3)},0.9,,a\n", encoding="utf-8")
    (d / "q_columns.csv").write_text("symbol,last\n1810.HK,40\n", encoding="utf-8")
    (d / "q_binary.csv").write_bytes(bytes(range(256)) * 10)
    (d / "q_huge.csv").write_text(header + "x" * 6_000_000, encoding="utf-8")

    text = COMPANY.read_text(encoding="utf-8")
    (d / "co_unknown.toml").write_text(text.replace("[market]", "[market]\nbeta = 1.2"), encoding="utf-8")
    (d / "co_gbk.toml").write_bytes(text.encode("gbk"))
    (d / "co_not_toml.toml").write_text("this = is = not toml", encoding="utf-8")
    (d / "co_huge.toml").write_text(text + "\n#" + "x" * 2_100_000, encoding="utf-8")
    (d / "co_negative.toml").write_text(text.replace("shares = 26045", "shares = -26045"), encoding="utf-8")
    (d / "co_no_driver.toml").write_text(re.sub(r"\[drivers\.capex\]\n(?:.+\n)*\n?", "", text), encoding="utf-8")
    return d


CASES = [
    # (command with {d} for the corpus folder and {out} for an output folder, message)
    ("check {d}/not_zip.xlsm", "not an Excel workbook (not a zip package)"),
    ("check {d}/empty.xlsm", "not an Excel workbook"),
    ("check {d}/truncated.xlsm", "not an Excel workbook"),
    ("check {d}/bomb.xlsm", "zip bomb"),
    ("check {d}/not_ours.xlsx", "not one of our model templates"),
    ("check {d}/sheet_deleted.xlsm", "评级"),
    ("check {d}/bad_xml.xlsm", "damaged workbook"),
    ("check {d}/folder.xlsm", "is a folder"),
    ("refresh {d}/sheet_renamed.xlsm --quotes {d}/q_dup.csv", "表1 损益表"),
    ("refresh {d}/labels_moved.xlsm", "labels moved"),
    ("refresh {d}/name_removed.xlsm", "MKT_price is missing"),
    ("refresh {d}/formula_text.xlsm", "holds the text 'abc'"),
    ("refresh {d}/vba_removed.xlsm", "VBA project is missing"),
    ("refresh {d}/huge.xlsm", "more than 200,000 cells"),
    ("refresh {d}/newer.xlsm", "newer add-in"),
    ("refresh {d}/not_ours.xlsm", "not one of our model templates"),
    ("refresh {d}/good.xlsm --quotes {d}/q_ambiguous.csv", "ambiguous"),
    ("refresh {d}/good.xlsm --quotes {d}/q_dup.csv", "2 rows for 1810.HK"),
    ("refresh {d}/good.xlsm --quotes {d}/q_neg.csv", "price -40 is not positive"),
    ("refresh {d}/good.xlsm --quotes {d}/q_future.csv", "refused"),
    ("refresh {d}/good.xlsm --quotes {d}/q_columns.csv", "missing column 'ticker'"),
    ("refresh {d}/good.xlsm --quotes {d}/q_binary.csv", "not UTF-8"),
    ("refresh {d}/good.xlsm --quotes {d}/q_huge.csv", "more than a quotes file can be"),
    ("refresh {d}/good.xlsm --quotes {d}/missing.csv", "no such quotes file"),
    ("export {d}/truncated.xlsm -o {out}/clean.xlsx", "not an Excel workbook"),
    ("export {d}/labels_moved.xlsm -o {out}/clean.xlsx", "labels moved"),
    ("export {d}/bomb.xlsm -o {out}/clean.xlsx", "zip bomb"),
    ("diff {d}/good.xlsm {d}/sheet_deleted.xlsm", "评级"),
    ("diff {d}/not_zip.xlsm {d}/good.xlsm", "not an Excel workbook"),
    ("build --data {d}/co_unknown.toml -o {out}/m.xlsm", "unknown field 'beta'"),
    ("build --data {d}/co_gbk.toml -o {out}/m.xlsm", "GBK/GB18030 text; TOML data files are UTF-8: save it as UTF-8"),
    ("new --data {d}/co_not_toml.toml -o {out}/m.xlsm", "not valid TOML"),
    ("new --data {d}/co_huge.toml -o {out}/m.xlsm", "larger than 2 MB"),
    ("new --data {d}/co_negative.toml -o {out}/m.xlsm", "shares: must be positive"),
    ("new --data {d}/co_no_driver.toml -o {out}/m.xlsm", "missing driver [drivers.capex]"),
    ("show --data {d}/co_gbk.toml", "save it as UTF-8"),
]


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("command,message", CASES, ids=[c.split()[0] + ":" + Path(c.split()[1]).name for c, _ in CASES])
def test_malformed_input_gets_one_line(corpus, tmp_path, command, message):
    before = _digest(corpus)
    args = command.format(d=corpus, out=tmp_path).split()
    run = subprocess.run([sys.executable, "-m", "addin", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0, run.stdout
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    assert message in lines[0]
    assert _digest(corpus) == before                                  # inputs untouched, no .bak, no temp files
    assert not any(tmp_path.iterdir())                                # no partial output


def test_corpus_is_large_enough():
    inputs = {name for command, _ in CASES for name in re.findall(r"\{d\}/([\w.]+)", command)}
    assert len(CASES) >= 20 and len(inputs) >= 20


# --------------------------------------------------------------------------------------------
# Nothing leaks
# --------------------------------------------------------------------------------------------
PRODUCT = [p for d in ("udfs", "workbook", "addin") for p in (ROOT / d).rglob("*.py")]


@pytest.mark.parametrize("pattern", [r"(?<![\w.])eval\(", r"(?<![\w.])exec\(", r"os\.system", r"shell=True", r"\bpickle\b",
                                     r"__import__", r"(?<![\w.])compile\("])
def test_no_code_path_executes_text(pattern):
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in PRODUCT
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(pattern, line) and not line.lstrip().startswith("#") and "never" not in line]
    assert not offenders, offenders


def test_vba_never_runs_text_from_a_cell():
    from workbook.vba_modules import project_modules
    ours = [m for m in project_modules(["Sheet1"]) if m.name not in ("xlwings", "Dictionary")]
    for module in ours:
        code = "\n".join(line for line in module.code.splitlines() if not line.strip().startswith("'"))
        for call in re.findall(r"RunPython\s*\(?(.*)", code):
            assert re.fullmatch(r'"[^"&]*"\)?\s*', call.strip()), (module.name, call)   # a literal, never concatenated
        assert "Evaluate(" not in module.code and "Shell" not in module.code


@pytest.mark.slow  # runs the whole benchmark
def test_bench_runs_and_emits_every_figure(tmp_path):
    from addin.bench import TARGETS, render, run
    results = run(quick=True, out=tmp_path / "bench.json")
    for key in ("udf_us", "reference_call_us", "udf_calls_per_recalc", "engine_ms", "build_s", "refresh_s", "formulas_s",
                "refresh_vs_formulas", "batch_s", "batch_100_s", "refresh_peak_mb", "targets"):
        assert key in results, key
    assert set(results["udf_us"]) == set(udfs.excel_functions())
    assert all(v["runs"] >= 3 and v["min"] <= v["median"] <= v["max"] for v in results["udf_us"].values())
    assert set(results["targets"]) == set(TARGETS)
    assert (tmp_path / "bench.json").is_file() and "Headless refresh" in render(results)
