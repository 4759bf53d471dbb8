"""The xlwings Lite edition (`python -m addin lite`): the generated main.py runs under Pyodide,
the Python xlwings Lite runs, and every function answers there exactly what CPython's guard
answers, for its sample call and for hostile arguments.

Pyodide comes from the npm registry (the `pyodide` package runs the standard library offline)
into a git-ignored cache folder; node and npm come from Debian (`make system-deps`). Inside
Pyodide, `xlwings` is a small stand-in whose `func` and `arg` record what main.py registers.
"""
from __future__ import annotations

import ast
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from addin import cli
from addin.lite import (
    BUNDLE_PACKAGE, LITE_REQUIREMENT, LiteError, _core_dependencies, core_files, core_modules, render_main,
    render_requirements, write_lite,
)
from conftest import ROOT
from once_per_run import locked
from udfs.functions import REGISTRY, SERIES, all_functions
from udfs import registry
from udfs.registry import guarded

pytestmark = pytest.mark.xdist_group("lite")  # one worker runs Pyodide, once

# xlwings Lite requires Pyodide 314 or newer (Python 3.14); this is the one the test runs.
PYODIDE_VERSION = "314.0.7"
PYODIDE_CACHE = ROOT / ".cache" / "pyodide"
NODE_TIMEOUT = 240

FAKE_XLWINGS = '''
"""Stand-in for xlwings in the test: records what main.py registers, as Lite's decorators would."""
import inspect

REGISTERED = {}


def _entry(f):
    if f.__name__ not in REGISTERED:
        params = inspect.signature(f).parameters.values()
        REGISTERED[f.__name__] = {"args": {}, "params": [[p.name, p.default is not inspect.Parameter.empty,
                                                          None if p.default is inspect.Parameter.empty else p.default]
                                                         for p in params]}
    return REGISTERED[f.__name__]


def func(f=None, **options):
    def register(f):
        entry = _entry(f)
        entry["doc"], entry["options"] = f.__doc__, options
        entry["funcs"] = entry.get("funcs", 0) + 1
        return f
    return register if f is None else register(f)


def arg(name, convert=None, **options):
    def register(f):
        _entry(f)["args"][name] = options
        return f
    return register
'''

DRIVER = '''
import json, sys
sys.path.insert(0, "/work")
import main
import xlwings

calls = json.load(open("/work/calls.json", encoding="utf-8"))
results = [json.dumps(getattr(main, name)(*args), ensure_ascii=False) for name, args in calls]
foreign = sorted(m for m in sys.modules if m.split(".")[0] in ("pandas", "numpy", "udfs"))
with open("/work/out.json", "w", encoding="utf-8") as fh:
    json.dump({"results": results, "registered": xlwings.REGISTERED, "python": list(sys.version_info[:2]),
               "foreign": foreign, "core": sys.modules[main._PACKAGE + ".registry"].__file__}, fh, ensure_ascii=False)
'''

RUNNER = '''
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
const [pyodideDir, workDir] = process.argv.slice(2);
try {
  const { loadPyodide } = await import(pathToFileURL(pyodideDir + "/pyodide.mjs").href);
  const pyodide = await loadPyodide({ indexURL: pyodideDir + "/" });
  pyodide.FS.mkdirTree("/work");
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: workDir }, "/work");
  pyodide.runPython(await readFile(workDir + "/driver.py", "utf8"));
} catch (error) {
  console.error(String(error && error.message || error));  // the Python traceback, not Pyodide's bundle
  process.exit(1);
}
'''

# What a worksheet can hand a function: blanks, text, error values, booleans, zero (every
# denominator), signs, extremes, non-finite numbers, cells, rows, columns and blocks.
HOSTILE = [
    None, "", "text", "12", " #n/a ", "#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!",
    True, False, 0, 0.0, -0.0, -1.0, 1.0, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan,
    [[7.5]], [[1.0, 2.0]], [[1.0], [2.0]], [[1.0, 2.0], [3.0, 4.0]], [[1.0, None, 2.0]], [[None]], [],
    [[0.0, 5.0]], [[-4.0, 2.0]], [["#N/A", 1.0]], [["x", 1.0]],
    "买入", "增持", "无评级", "outer", "inner", "sideways", "four_tier_example", "no_such_scheme", "1810.HK", "AAPL.O", "HK",
]


def _calls() -> list[tuple[str, list]]:
    calls = []
    for spec in all_functions():
        # Excel passes every declared argument (an omitted optional one as empty), never more.
        sample = (list(spec.sample) or [1.0] * len(spec.args)) + [None] * (len(spec.args) - len(spec.sample))
        calls += [(spec.excel_name, sample), (spec.excel_name, [None] * len(spec.args))]
        for position in range(len(spec.args)):
            for value in HOSTILE:
                args = list(sample)
                args[position] = value
                calls.append((spec.excel_name, args))
    return calls


def _expected(name: str, args: list) -> str:
    return json.dumps(guarded(name)(*args), ensure_ascii=False)


@pytest.fixture(scope="module")
def pyodide_dir() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are not installed (`make system-deps` installs them from Debian)")
    package = PYODIDE_CACHE / "node_modules" / "pyodide"
    manifest = package / "package.json"
    with locked(PYODIDE_CACHE.with_name("pyodide.lock")):  # one install at a time, whichever run or worker asks
        if not manifest.is_file() or json.loads(manifest.read_text(encoding="utf-8")).get("version") != PYODIDE_VERSION:
            PYODIDE_CACHE.mkdir(parents=True, exist_ok=True)
            run = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(PYODIDE_CACHE),
                                  f"pyodide@{PYODIDE_VERSION}"], capture_output=True, text=True, timeout=NODE_TIMEOUT)
            assert run.returncode == 0, f"npm install pyodide@{PYODIDE_VERSION} failed: {run.stderr[-2000:]}"
    return package


@pytest.fixture(scope="module")
def lite_run(pyodide_dir, tmp_path_factory):
    """main.py generated by the command, imported and called inside Pyodide."""
    work = tmp_path_factory.mktemp("lite")
    write_lite(work)
    calls = _calls()
    (work / "calls.json").write_text(json.dumps(calls), encoding="utf-8")
    (work / "xlwings.py").write_text(FAKE_XLWINGS, encoding="utf-8")
    (work / "driver.py").write_text(DRIVER, encoding="utf-8")
    (work / "run.mjs").write_text(RUNNER, encoding="utf-8")
    run = subprocess.run([shutil.which("node"), str(work / "run.mjs"), str(pyodide_dir), str(work)],
                         capture_output=True, text=True, timeout=NODE_TIMEOUT)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads((work / "out.json").read_text(encoding="utf-8"))
    return calls, out


# --------------------------------------------------------------------------------------------
# Under Pyodide
# --------------------------------------------------------------------------------------------
@pytest.mark.slow  # runs Pyodide under node
def test_main_py_imports_under_the_python_of_xlwings_lite(lite_run):
    _, out = lite_run
    assert out["python"] >= [3, 14]            # Pyodide 314: tomllib is in the standard library
    assert out["foreign"] == []                  # neither pandas nor numpy nor the project's own udfs
    assert f"/{BUNDLE_PACKAGE}/registry.py" in out["core"]


@pytest.fixture
def as_a_worksheet_sees_it():
    """The guard as Excel reaches it: a bug shows #VALUE! (the test suite's strict mode would
    raise it instead, and Lite's main.py does not run in strict mode)."""
    was = registry._strict
    registry.strict(False)
    yield
    registry.strict(was)


@pytest.mark.slow  # runs Pyodide under node
def test_every_call_returns_exactly_what_cpython_returns(lite_run, as_a_worksheet_sees_it):
    calls, out = lite_run
    assert len(out["results"]) == len(calls) > 31 * 40
    differences = [(name, args, got, _expected(name, args)) for (name, args), got in zip(calls, out["results"])
                   if got != _expected(name, args)]
    assert not differences, differences[:10]


@pytest.mark.slow  # runs Pyodide under node
def test_the_hostile_calls_reach_every_kind_of_answer(lite_run):
    """The comparison above means something only if the calls provoke numbers, labels and each
    error value the guard gives."""
    _, out = lite_run
    values = [json.loads(r) for r in out["results"]]
    answers = {"number" if isinstance(v, float) else v for v in values if isinstance(v, (float, str))}
    assert {"number", "NM", "#VALUE!", "#N/A", "#DIV/0!", "#NUM!", "#REF!", "OK", "FAIL", "买入", "无评级"} <= answers


@pytest.mark.slow  # runs Pyodide under node
def test_every_registered_function_has_one_lite_wrapper(lite_run):
    _, out = lite_run
    registered = out["registered"]
    assert set(registered) == set(REGISTRY)
    for spec in all_functions():
        entry = registered[spec.excel_name]
        assert entry["funcs"] == 1 and entry["doc"] == spec.description
        assert [p[0] for p in entry["params"]] == [a.name for a in spec.args]
        assert [p[1] for p in entry["params"]] == [a.optional for a in spec.args]
        assert all(p[2] is None for p in entry["params"])       # the guard applies the registry's defaults
        assert set(entry["args"]) == {a.name for a in spec.args}
        for a in spec.args:
            options = entry["args"][a.name]
            assert options["doc"] == a.help
            assert options["err_to_str"] is True                 # an error cell arrives as its text
            assert options.get("ndim") == (2 if a.kind == SERIES else None)


# --------------------------------------------------------------------------------------------
# The generated files
# --------------------------------------------------------------------------------------------
def test_main_py_is_self_contained():
    text = render_main()
    tree = ast.parse(text)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"importlib", "sys", "tempfile", "pathlib", "xlwings"}
    files = core_files()
    assert "xl.py" not in files and "__init__.py" not in files and "rating_schemes.toml" in files
    assert {n[:-3] for n in files if n.endswith(".py")} == set(core_modules())
    assert {"registry", "constants", "forecast", "ratios", "rating", "checks"} <= set(core_modules())
    assert (ROOT / "udfs" / "rating_schemes.toml").read_text(encoding="utf-8") in _embedded(tree).values()


def _embedded(tree: ast.Module) -> dict:
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_CORE_FILES":
            return ast.literal_eval(node.value)
    raise AssertionError("main.py has no _CORE_FILES")


def test_embedded_sources_are_the_project_files_byte_for_byte():
    embedded = _embedded(ast.parse(render_main()))
    assert embedded == {name: (ROOT / "udfs" / name).read_text(encoding="utf-8") for name in embedded}


@pytest.mark.parametrize("source,refused", [
    ("import pandas as pd", True),
    ("from xlwings import func", True),
    ("import numpy.linalg", True),
    ("import math\nfrom decimal import Decimal\nfrom .registry import Arg", False),
    ("try:\n    import tomllib\nexcept ModuleNotFoundError:\n    import tomli as tomllib", False),
    ("def later():\n    import pandas", False),        # not run at import; Lite never calls it
])
def test_bundle_refuses_a_core_module_lite_cannot_import(source, refused):
    tree = ast.parse(source)
    if refused:
        with pytest.raises(LiteError, match="xlwings Lite does not have"):
            _core_dependencies("example", tree)
    else:
        assert _core_dependencies("example", tree) <= {"registry"}


def test_output_is_deterministic(tmp_path):
    write_lite(tmp_path / "a")
    write_lite(tmp_path / "b")
    for name in ("main.py", "requirements.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert render_main() == render_main()


def test_requirements_name_only_xlwings():
    lines = [line for line in render_requirements().splitlines() if line and not line.startswith("#")]
    assert lines == [LITE_REQUIREMENT] and LITE_REQUIREMENT.startswith("xlwings")


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------
def test_command_writes_both_files_and_prints_one_line(tmp_path, capsys):
    out = tmp_path / "lite"
    assert cli.main(["lite", "-o", str(out)]) == cli.EXIT_OK
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and str(out.resolve()) in printed[0]
    assert sorted(p.name for p in out.iterdir()) == ["main.py", "requirements.txt"]   # no temp file left
    assert (out / "main.py").read_text(encoding="utf-8") == render_main()


def test_command_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "lite"
    out.mkdir()
    (out / "main.py").write_text("# the analyst's own code\n", encoding="utf-8")
    assert cli.main(["lite", "-o", str(out)]) == cli.EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0] and "main.py" in err[0]
    assert (out / "main.py").read_text(encoding="utf-8") == "# the analyst's own code\n"
    assert not (out / "requirements.txt").exists()          # nothing written when anything is refused
    assert cli.main(["lite", "-o", str(out), "--force"]) == cli.EXIT_OK
    assert (out / "main.py").read_text(encoding="utf-8") == render_main()


def test_command_accepts_an_empty_file_and_refuses_a_file_as_folder(tmp_path, capsys):
    out = tmp_path / "lite"
    out.mkdir()
    (out / "requirements.txt").touch()
    assert cli.main(["lite", "-o", str(out)]) == cli.EXIT_OK
    assert (out / "requirements.txt").read_text(encoding="utf-8") == render_requirements()
    capsys.readouterr()
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x", encoding="utf-8")
    assert cli.main(["lite", "-o", str(not_a_folder)]) == cli.EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0] and "Traceback" not in err[0]


def test_command_without_output_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["lite"])
    assert exit_.value.code == cli.EXIT_USAGE
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_readme_documents_the_lite_edition():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    editions = (ROOT / "docs" / "editions.md").read_text(encoding="utf-8")
    assert "docs/editions.md" in readme and "python -m addin lite -o" in readme
    assert "## Three editions" in editions
    section = editions.split("## Three editions", 1)[1]
    assert "xlwings Lite" in section and "#VALUE!" in section
