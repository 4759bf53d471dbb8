"""Every message issue 24 found misleading now says what to do: one line, non-zero exit, no
traceback, and the next step named (use the model, not its export; give the company file; convert
the PDF first; name the field meant)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from addin.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from conftest import ROOT

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
DATA = ROOT / "workbook" / "data"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code: int, err: str, *words: str, exit_code: int = EXIT_FAILED) -> None:
    assert code == exit_code, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    model = Path(shutil.copy(TEMPLATE, folder / "model.xlsm"))
    assert main(["export", str(model), "-o", str(folder / "values.xlsx")]) == EXIT_OK
    assert main(["export", str(model), "-o", str(folder / "live.xlsx"), "--native"]) == EXIT_OK
    return folder


@pytest.mark.parametrize("command", ["check", "refresh", "publish", "diff"])
@pytest.mark.parametrize("copy, edition", [("values.xlsx", "a values-only export"), ("live.xlsx", "a native-formula export")])
def test_a_command_on_an_export_names_the_model_instead_of_saying_rebuild(exports, capsys, command, copy, edition):
    path = exports / copy
    before = path.read_bytes()
    argv = [command, path] + ([exports / "model.xlsm"] if command == "diff" else [])
    argv += ["--db", exports / "e.sqlite"] if command == "publish" else []
    code, _, err = run(capsys, *argv)
    one_line(code, err, f"{copy}: is {edition}", "use the model it was exported from, model.xlsm, instead")
    assert "rebuild" not in err and path.read_bytes() == before


def test_show_given_a_model_workbook_says_which_file_it_reads(capsys):
    code, _, err = run(capsys, "show", "--data", TEMPLATE)
    one_line(code, err, "is an Excel workbook", "show --data reads a company data file (.toml",
             "python -m addin check")
    assert "UTF-8" not in err


def test_a_pdf_given_to_import_is_to_be_converted_first(tmp_path, capsys):
    pdf = tmp_path / "note.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    code, _, err = run(capsys, "import", pdf, "-o", tmp_path)
    one_line(code, err, "is a PDF document", "convert the note to text first (e.g. with MinerU")
    assert list(tmp_path.iterdir()) == [pdf]


def test_a_gbk_company_file_is_refused_with_how_to_save_it(tmp_path, capsys):
    data = tmp_path / "co.toml"
    data.write_bytes((DATA / "kysec_300592sz.toml").read_text(encoding="utf-8").encode("gb18030"))
    code, _, err = run(capsys, "show", "--data", data)
    one_line(code, err, "GBK/GB18030 text", "save it as UTF-8")


def test_a_misspelt_driver_field_is_named_with_the_field_meant(tmp_path, capsys):
    text = (DATA / "kysec_300592sz.toml").read_text(encoding="utf-8")
    assert '\nmethod = "growth"' in text
    data = tmp_path / "co.toml"
    data.write_text(text.replace('\nmethod = "growth"', '\nmethd = "growth"', 1), encoding="utf-8")
    code, _, err = run(capsys, "show", "--data", data)
    one_line(code, err, "unknown field 'methd' (did you mean 'method'?)")
    assert "None" not in err
    data.write_text(text.replace('\nmethod = "growth"', '\nmethod = "growht"', 1), encoding="utf-8")
    code, _, err = run(capsys, "show", "--data", data)
    one_line(code, err, "method 'growht' is not one of", "(did you mean 'growth'?)")


# ------------------------------------------------------------------------------------------------
# Calibration's command line: python -m addin calibrate
# ------------------------------------------------------------------------------------------------
def test_calibrate_help_and_usage_are_one_screen_and_one_line(capsys):
    with pytest.raises(SystemExit) as done:
        main(["calibrate", "--help"])
    out, _ = capsys.readouterr()
    assert done.value.code == 0 and "report" in out and "--write" in out and "--company" in out
    with pytest.raises(SystemExit) as done:
        main(["calibrate"])
    _, err = capsys.readouterr()
    one_line(done.value.code, err, "the following arguments are required: report", exit_code=EXIT_USAGE)


@pytest.mark.parametrize("argv, words", [
    (["nowhere.report.toml"], ["nowhere.report.toml: no such file"]),
    ([DATA / "kysec_300592sz.toml"], ["not a report file", "it looks like a company data file: pass that with --company"]),
    ([TEMPLATE], ["is an Excel workbook", "calibrate reads a report file"]),
    ([DATA / "kysec_300592sz.report.toml", "--company", "nowhere.toml"], ["nowhere.toml: no such company data file"]),
])
def test_calibrate_mistakes_are_one_line(capsys, argv, words):
    code, out, err = run(capsys, "calibrate", *argv)
    one_line(code, err, *words)
    assert out == ""


def test_calibrate_prints_the_drivers_of_a_report(capsys):
    code, out, err = run(capsys, "calibrate", DATA / "kysec_300592sz.report.toml")
    assert code == EXIT_OK, err
    assert "[drivers.revenue]" in out and "method = " in out


def test_the_old_module_entry_points_to_the_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "workbook.calibrate", "x.report.toml"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    one_line(done.returncode, done.stderr, "python -m addin calibrate REPORT.toml", exit_code=EXIT_USAGE)


# ------------------------------------------------------------------------------------------------
# Outside the project's environment: one line that says how to run the commands
# ------------------------------------------------------------------------------------------------
def test_python_without_the_dependencies_gets_one_line_not_a_traceback(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    python = bare / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    for command in (["build", "-o", str(tmp_path / "m.xlsm")], ["publish", "x.xlsm"], ["refresh", "x.xlsm"]):
        done = subprocess.run([str(python), "-m", "addin", *command], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, env={"PATH": "/usr/bin:/bin"})
        one_line(done.returncode, done.stderr, "lacks the project's packages", ".venv/bin/er-model",
                 "source .venv/bin/activate", "pip install -e .", exit_code=2)
    assert not (tmp_path / "m.xlsm").exists()


def test_the_guard_checks_every_runtime_dependency():
    """The packages the guard looks for are the ones pyproject.toml installs (import names)."""
    from addin.__main__ import REQUIRED
    from udfs.tomlparse import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    names = {d.split(";")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower().replace("-", "_") for d in declared
             if "python_version <" not in d}
    assert set(REQUIRED) == names


def test_every_package_the_product_imports_is_a_runtime_dependency():
    """`make run` installs the product without its test tools: a module of udfs, workbook or addin
    that imports a package only the tests install works in the suite and fails for the analyst
    (`import` once needed scipy that only `formulas` brought in). Every import in the product's
    source, at module level or inside a function, is the standard library, the product itself, a
    runtime dependency, or one the product answers for in one line where it is missing."""
    import ast
    import sys

    from addin.__main__ import REQUIRED
    # imported inside a try or only on demand, with a one-line answer where they are missing
    # the bench's reference, refused in one line without it (the test below); tomli, a dependency
    # only below Python 3.11 (udfs/tomlparse.py imports it there)
    optional = {"formulas", "tomli"}
    project = {"udfs", "workbook", "addin"}
    found = {}
    for folder in project:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], f"{path.relative_to(ROOT)}:{node.lineno}")
    undeclared = {top: where for top, where in found.items()
                  if top not in sys.stdlib_module_names and top not in project and top not in REQUIRED and top not in optional}
    assert undeclared == {}


def test_the_bench_without_its_reference_package_is_one_line(monkeypatch, capsys, tmp_path):
    """After `make run` (the product without its test tools) the bench names what it needs."""
    import importlib.util

    from addin.cli import main
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "formulas" else real(name, *a))
    code = main(["bench", "--quick", "--json", str(tmp_path / "b.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("error: ") and "make test" in err[0]
    assert not (tmp_path / "b.json").exists()

