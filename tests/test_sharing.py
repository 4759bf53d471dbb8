"""Sharing: values-only export, new models from data files, diff, and the command line's manners."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import openpyxl
import pytest

from addin.share import diff, export
import libreoffice
from conftest import ROOT
from in_process import run_cli
from libreoffice import SOFFICE
from workbook import xlsx
from workbook.xlcalc import evaluate

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"


def cli(*args, cwd=ROOT):
    return run_cli(*args, cwd=cwd)


@pytest.fixture
def exported(tmp_path) -> Path:
    model = tmp_path / "model.xlsm"
    shutil.copy(TEMPLATE, model)
    package = xlsx.read(model)
    xlsx.type_values(package, {package.name_cells("RTG_previous_rating")[0]: "=HYPERLINK(\"http://x\",\"y\")"}, model)
    return export(model, tmp_path / "clean.xlsx", now=dt.datetime(2026, 11, 29, 9))


def test_export_has_no_macros_no_formulas_and_the_same_figures(exported):
    with zipfile.ZipFile(exported) as z:
        names = z.namelist()
        assert "xl/vbaProject.bin" not in names and not any(n.endswith(".vml") for n in names)
        assert "macroEnabled" not in z.read("[Content_Types].xml").decode()
        assert "vbaProject" not in z.read("xl/_rels/workbook.xml.rels").decode()
        assert not any("<f>" in z.read(n).decode() for n in names if n.startswith("xl/worksheets/"))
        assert any(n.startswith("xl/charts/") for n in names)           # the chart is kept
    book = openpyxl.load_workbook(exported)
    income = book["表1 损益表"]
    model = xlsx.read(TEMPLATE)
    for sheet, ref in model.name_cells("IS_revenue") + model.name_cells("BS_total_assets"):
        assert book[sheet][ref].value == pytest.approx(model.value(sheet, ref))
    assert income["E6"].number_format == "#,##0;-#,##0;0"
    cover = book["封面"]
    notes = [c.value for row in cover.iter_rows() for c in row if isinstance(c.value, str) and "Values-only copy" in c.value]
    assert notes and "model.xlsm" in notes[0] and "2026-11-29 09:00" in notes[0]
    assert "xlwings.conf" not in book.sheetnames and "_blueprint" not in book.sheetnames  # the machinery stays home


def test_export_neutralises_formula_text(exported):
    book = openpyxl.load_workbook(exported)
    sheet, ref = xlsx.read(TEMPLATE).name_cells("RTG_previous_rating")[0]
    assert book[sheet][ref].value.startswith("'=HYPERLINK")


@pytest.mark.slow
@pytest.mark.skipif(SOFFICE is None and not os.environ.get("CI"), reason="LibreOffice not installed here")
def test_export_opens_in_libreoffice_without_name_errors(exported, tmp_path):
    libreoffice.convert([exported], "pdf", tmp_path, tmp_path / "p")
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "clean.pdf"), "-"], capture_output=True, text=True).stdout
    assert "475,994" in text and "调整后 P/E" in text and "Values-only copy" in text
    assert "#NAME?" not in text and "#VALUE!" not in text


def test_diff_names_changed_drivers_and_moved_outputs(tmp_path):
    new = tmp_path / "new.xlsm"
    package = xlsx.read(TEMPLATE)
    driver = package.name_cells("DRV_d_smartphone")[-2]  # 2026E: the name runs 2024 (implied) to 2027E
    typed = tmp_path / "typed.xlsm"
    xlsx.type_values(package, {driver: 0.20}, typed)
    typed_package = xlsx.read(typed)
    # the analyst types the driver; the cached values are recomputed as Excel would on save
    values = evaluate(typed_package)
    by_sheet = {}
    for (s, c), v in values.items():
        by_sheet.setdefault(s, {})[c] = v
    xlsx.write(typed_package, {typed_package.sheets[s].path: xlsx.rewrite_sheet(typed_package.sheets[s], c).encode()
                               for s, c in by_sheet.items()}, new)
    result = diff(TEMPLATE, new)
    assert [(k, y, b) for _, k, y, a, b in result.inputs] == [("d_smartphone", "2026E", 0.20)]
    moved = {(k, y) for _, k, y, *_ in result.outputs}
    assert {("revenue", "2026E"), ("revenue", "2027E"), ("eps", "2026E"), ("adjusted_pe", "2026E")} <= moved
    before = next(a for _, k, y, a, b in result.inputs if (k, y) == ("d_smartphone", "2026E"))
    run = cli("diff", str(TEMPLATE), str(new))
    assert run.returncode == 0 and f"智能手机：同比增速 2026E: {before:g}" in run.stdout and "主营收入 2026E: 549,073 ->" in run.stdout


def test_new_builds_a_model_from_a_data_file(tmp_path):
    run = cli("new", "--data", str(ROOT / "workbook" / "data" / "xiaomi_1810hk.toml"), "-o", str(tmp_path / "x.xlsm"))
    assert run.returncode == 0 and (tmp_path / "x.xlsm").is_file()
    assert cli("check", str(tmp_path / "x.xlsm")).returncode == 0


def _not_ours(tmp_path) -> Path:
    path = tmp_path / "other.xlsx"
    book = openpyxl.Workbook()
    book.active["A1"] = "hello"
    book.save(path)
    return path


@pytest.mark.parametrize("args,message", [
    (("check", "missing.xlsm"), "no such file"),
    (("check", "README.md"), "not an Excel workbook"),
    (("check", "{other}"), "not one of our model templates"),
    (("refresh", "missing.xlsm"), "no such file"),
    (("refresh", "{other}", "--quotes", "workbook/data/quotes.csv"), "not one of our model templates"),
    (("export", "{other}", "-o", "{tmp}/x.xlsx"), "not one of our model templates"),
    (("export", str(TEMPLATE), "-o", "{tmp}/x.xlsm"), "must end in .xlsx"),
    (("diff", str(TEMPLATE), "README.md"), "not an Excel workbook"),
    (("new", "--data", "{tmp}/bad.toml", "-o", "{tmp}/y.xlsm"), "unknown field 'tickr'"),
    (("build", "-o", "{tmp}/y.xlsx"), "must end in .xlsm"),
    (("refresh", str(TEMPLATE), "--as-of", "yesterday"), "is not a date"),
])
def test_user_mistakes_get_one_line_and_a_non_zero_exit(tmp_path, args, message):
    other = _not_ours(tmp_path)
    bad = (ROOT / "workbook" / "data" / "xiaomi_1810hk.toml").read_text(encoding="utf-8").replace("ticker =", "tickr =", 1)
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
    before = TEMPLATE.read_bytes()
    run = cli(*[a.format(other=other, tmp=tmp_path) for a in args])
    assert run.returncode != 0
    assert message in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert TEMPLATE.read_bytes() == before
    assert not (tmp_path / "y.xlsm").exists() and not (tmp_path / "x.xlsx").exists()


@pytest.mark.parametrize("command", ["show", "build", "refresh", "check", "export", "new", "diff"])
def test_every_command_has_help_with_an_example(command):
    run = cli(command, "--help")
    assert run.returncode == 0 and "example" in run.stdout


def _toml(data: dict, prefix: str = "") -> str:
    """A small TOML writer for the company-file shape (tables of scalars, lists and inline tables)."""
    import datetime as _dt

    def value(v):
        if isinstance(v, str):
            return '"' + v.replace('"', '\\"') + '"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (_dt.date, int, float)):
            return v.isoformat() if isinstance(v, _dt.date) else repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{ " + ", ".join(f'"{k}" = {value(x)}' for k, x in v.items()) + " }"

    out = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for key, table in tables.items():
        name = f'{prefix}.{key}' if prefix else key
        name = name if all(part.isidentifier() for part in name.split(".")) else ".".join(
            p if p.isidentifier() else f'"{p}"' for p in name.split("."))
        inline = {k: v for k, v in table.items() if not isinstance(v, dict) or k.endswith("_pct")}
        if inline:
            out.append(f"\n[{name}]")
            out += [f"{k} = {value(v)}" for k, v in inline.items()]
        nested = {k: v for k, v in table.items() if isinstance(v, dict) and not k.endswith("_pct")}
        if nested:
            out.append(_toml(nested, f"{prefix}.{key}" if prefix else key))
    return "\n".join(out)


def _example_company_file(tmp_path) -> Path:
    """A fictional company (clearly not real) made from the Xiaomi file by renaming, rescaling and
    re-pricing, to prove the template is not Xiaomi-only: money x 0.1, US-listed, priced in USD,
    its own segment labels, a target price and a benchmark return."""
    from udfs.tomlparse import tomllib
    data = tomllib.loads((ROOT / "workbook" / "data" / "xiaomi_1810hk.toml").read_text(encoding="utf-8"))
    data["company"].update(name_zh="示例科技（虚构）", name_en="Example Corp (fictional)", ticker="EXMP.US", market="US",
                           quote_currency="USD")
    data["market"].update(price=12.0, fx_rate=7.10, shares=2604.5, market_cap_quote=312.54)
    data["rating"].update(target_price=15.0, benchmark_return=0.08)
    for year in list(data["base"]):
        data["base"][year] = {k: v * 0.1 for k, v in data["base"][year].items()}
    for year in list(data["actual"]):
        data["actual"][year] = {k: (v if k in ("eps", "non_ifrs_eps") else v * 0.1) for k, v in data["actual"][year].items()}
    for key, driver in data["drivers"].items():
        if driver["method"] in ("fixed", "step", "input"):
            driver["values"] = {y: v * 0.1 for y, v in driver["values"].items()}
    data["labels"] = {"smartphone": ["硬件", "Hardware"], "iot": ["服务", "Services"], "internet": ["广告", "Advertising"],
                      "auto": ["新业务", "New ventures"]}
    path = tmp_path / "example_co.toml"
    path.write_text(_toml(data), encoding="utf-8")
    return path


def test_new_builds_balances_and_rates_another_company(tmp_path):
    data = _example_company_file(tmp_path)
    out = tmp_path / "example.xlsm"
    run = cli("new", "--data", str(data), "-o", str(out))
    assert run.returncode == 0, run.stderr
    check = cli("check", str(out))
    assert check.returncode == 0 and "Integrity checks: 57/57 OK" in check.stdout, check.stdout
    package = xlsx.read(out)
    values = evaluate(package)
    rating = package.name_cells("RTG_computed_rating")[0]
    assert values[rating] == "买入"                 # 15 / 12 - 1 = 25%, less the benchmark's 8%: 17% >= 15%
    assert values[package.name_cells("RTG_benchmark")[0]] == "纳斯达克综合指数或标普500指数"
    income = package.sheets["表1 损益表"]
    labels = {package.value("表1 损益表", ref) for ref in income.cells if ref.startswith("A")}
    assert {"硬件", "服务", "广告", "新业务"} <= labels and "智能手机" not in labels
    revenue = [values.get(c, package.value(*c)) for c in package.name_cells("IS_revenue")]
    assert revenue[0] == pytest.approx(27097.0) and revenue[2] == pytest.approx(47599.4, abs=0.1)
