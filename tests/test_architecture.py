"""The house rules that keep the codebase extensible: one-way layers, one function registry, and
tests that compute their results when they run."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import udfs
from udfs import registry
from udfs.registry import NUMBER, Arg, excel_function

ROOT = Path(__file__).resolve().parents[1]


def test_layers_point_one_way():
    """udfs must not import workbook or addin; workbook must not import addin (import-linter)."""
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert tool, "import-linter is a test dependency"
    result = subprocess.run([tool, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],  # no cache written into the tree
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_layer_contract_would_catch_an_upward_import(tmp_path):
    """The contract is not vacuous: a copy of the tree with one upward import breaks it."""
    for package in ("udfs", "workbook", "addin"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.xlsm", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "udfs" / "constants.py", "a", encoding="utf-8") as fh:
        fh.write("\nimport workbook.layout  # noqa\n")
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    result = subprocess.run([tool, "--config", str(tmp_path / "pyproject.toml")], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


@pytest.fixture
def new_ratio():
    """A ratio function added the way a newcomer would: one decorated function."""
    @excel_function("TEST_DOUBLE_RATIO", "Twice a ratio (a function registered by a test).",
                    Arg("numerator", NUMBER, "Numerator"), Arg("denominator", NUMBER, "Denominator"),
                    sample=(3.0, 4.0))
    def double_ratio(numerator, denominator):
        return 2 * numerator / denominator
    yield "ER_TEST_DOUBLE_RATIO"
    registry.unregister("ER_TEST_DOUBLE_RATIO")


def test_one_decorated_function_reaches_every_consumer(new_ratio):
    from addin.bench import sample_args
    from udfs.functions import GUARDED
    from workbook.vba_modules import function_help_module, udf_wrapper_module

    functions = udfs.excel_functions()
    assert functions[new_ratio](3.0, 4.0) == 1.5
    assert functions[new_ratio](3.0, 0.0) == "#DIV/0!"
    assert functions[new_ratio]("x", 4.0) == "#VALUE!"
    assert GUARDED["double_ratio"](1.0, 4.0) == 0.5          # the engine's formula language knows it
    assert f"Function {new_ratio}(numerator, denominator)" in udf_wrapper_module().code
    assert f'"{new_ratio}", Description:="Twice a ratio' in function_help_module().code
    assert sample_args()[new_ratio] == (3.0, 4.0)


def test_unregistering_removes_it_everywhere(new_ratio):
    registry.unregister(new_ratio)
    assert new_ratio not in udfs.excel_functions()
    from workbook.vba_modules import udf_wrapper_module
    assert new_ratio not in udf_wrapper_module().code


def test_a_name_registered_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        @excel_function("GROWTH", "A second ER_GROWTH.", Arg("x", NUMBER, "x"))
        def another_growth(x):
            return x


def test_a_required_argument_after_an_optional_one_is_refused():
    with pytest.raises(ValueError, match="follows an optional"):
        @excel_function("TEST_BAD_ORDER", "Bad argument order.", Arg("a", "optional", "a"), Arg("b", NUMBER, "b"))
        def bad_order(a, b):
            return a
    assert "ER_TEST_BAD_ORDER" not in udfs.excel_functions()


def test_every_function_has_a_sample_that_runs():
    from udfs.functions import all_functions
    for spec in all_functions():
        assert spec.sample, f"{spec.excel_name} has no bench sample"
        assert len(spec.sample) <= len(spec.args)
        result = udfs.excel_functions()[spec.excel_name](*spec.sample)
        assert not (isinstance(result, str) and result.startswith("#")), (spec.excel_name, result)


def test_a_bug_inside_a_function_fails_in_strict_mode_and_shows_value_in_excel():
    @excel_function("TEST_BUGGY", "A function with a bug.", Arg("x", NUMBER, "x"), sample=(1.0,))
    def buggy(x):
        return {}["missing"]  # KeyError: a bug, not bad input
    try:
        call = registry.guarded("ER_TEST_BUGGY")
        with pytest.raises(KeyError):
            call(1.0)
        registry.strict(False)
        assert call(1.0) == "#VALUE!"
    finally:
        registry.strict(True)
        registry.unregister("ER_TEST_BUGGY")


# ---- Tests compute their results when they run, not when they are collected ---------------------
_PROJECT = ("udfs", "workbook", "addin")
# Module-level calls into the project that are set-up, not a result under test.
_SETUP_CALLS = {
    ("conftest.py", "registry.strict"),   # the suite runs functions in strict mode
    ("conftest.py", "tomllib.loads"),     # reading the golden data file
    ("test_errors.py", "cli.UserError"),  # an exception instance as a parameter
}


def _project_names(tree) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in _PROJECT}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in _PROJECT:
            names |= {a.asname or a.name for a in node.names}
    return names


def _callee(call) -> str:
    return ast.unparse(call.func).split("(")[0].split("[")[0]


def collection_time_calls(path: Path) -> list[tuple[int, str]]:
    """Calls with arguments into udfs, workbook or addin that run when the module is imported:
    in module-level statements and in decorators (a parametrize table), outside any lambda."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = _project_names(tree)
    tops = []
    for node in tree.body:
        tops += node.decorator_list if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else [node]
    found, pending = [], tops
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.Call) and node.args and _callee(node).split(".")[0] in names:
            found.append((node.lineno, _callee(node)))
        pending.extend(ast.iter_child_nodes(node))
    return found


def test_no_test_computes_its_result_at_collection_time():
    """A table of (expected, function, arguments) calls the function inside the test: computed at
    collection, one failing case would break the whole module's collection and every run of any
    test pays for all of them (issue 8, item 8)."""
    offenders = [f"{path.name}:{line}: {callee}(...)" for path in sorted((ROOT / "tests").glob("*.py"))
                 for line, callee in collection_time_calls(path) if (path.name, callee) not in _SETUP_CALLS]
    assert offenders == []


def test_the_collection_time_rule_sees_a_computed_table(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text("import pytest\nfrom udfs import ratios as r\n\n"
                      "@pytest.mark.parametrize('exp,got', [(0.1, r.growth_rate(110, 100))])\n"
                      "def test_it(exp, got):\n    assert got == exp\n\n"
                      "CASES = [(0.1, r.growth_rate, (110, 100)), (0.2, lambda: r.growth_rate(120, 100))]\n",
                      encoding="utf-8")
    assert collection_time_calls(sample) == [(4, "r.growth_rate")]


def test_the_readme_lists_every_excel_function():
    """The README's function list is kept by hand; a function registered without it is caught here."""
    import re
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Functions"):readme.index("\n### ", readme.index("### Functions") + 1)]
    listed = set(re.findall(r"\bER_[A-Z0-9_]+\b", section))
    assert sorted(set(udfs.excel_functions()) - listed) == []
    assert sorted(listed - set(udfs.excel_functions())) == []  # nor one listed that does not exist
