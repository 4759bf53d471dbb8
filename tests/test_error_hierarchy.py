"""Expected errors and bugs are told apart (issue 8, item 5).

A worksheet function's guard turns the outcomes it expects (bad cell input, undefined maths, an
argument the function refuses on purpose with `InputError`) into Excel error values in every mode;
any other exception is a bug, a `ValueError` Python raises itself included, and in strict mode
(tests/conftest.py) it is raised so that it fails the test that reaches it. A user's mistake in a
model, a company file or on the command line is a `ModelError` the command line prints as one line.
"""
from __future__ import annotations

import dataclasses
import importlib

import pytest

import udfs
from addin import cli
from conftest import ROOT
from udfs import engine, registry
from udfs.errors import DataError, InputError, ModelError
from udfs.registry import NUMBER, Arg, excel_function

KYSEC = ROOT / "workbook" / "data" / "kysec_300592sz.toml"
TEST_NAME = "ER_TEST_ERRORS"


# ---- Worksheet functions: a bug raises in strict mode, bad input is an error value -----------
def _unpacking_bug(numerator, denominator):
    a, b = [numerator, denominator, 1.0]  # ValueError from Python itself: a bug, not bad input
    return a / b


def _conversion_bug(numerator, denominator):
    return float("ratio") * numerator / denominator  # ValueError from float(): a bug


def _type_bug(numerator, denominator):
    return numerator + "x"


def _key_bug(numerator, denominator):
    return {}["missing"]


BUGS = [(_unpacking_bug, ValueError), (_conversion_bug, ValueError), (_type_bug, TypeError), (_key_bug, KeyError)]


def _register(body):
    excel_function("TEST_ERRORS", "A ratio registered by a test.", Arg("numerator", NUMBER, "Numerator"),
                   Arg("denominator", NUMBER, "Denominator"), sample=(3.0, 4.0), native=None,
                   formula_name="test_errors")(body)
    return registry.guarded(TEST_NAME)


@pytest.fixture(params=BUGS, ids=[body.__name__.strip("_") for body, _ in BUGS])
def buggy(request):
    body, error = request.param
    try:
        yield _register(body), error
    finally:
        registry.unregister(TEST_NAME)


@pytest.fixture
def lenient():
    """The guard as a worksheet reaches it (no strict mode), back to the suite's strict mode after."""
    registry.strict(False)
    try:
        yield
    finally:
        registry.strict(True)


def test_a_bug_raises_in_strict_mode(buggy):
    call, error = buggy
    with pytest.raises(error):
        call(3.0, 4.0)


# exp, the arguments Excel passes: the guard rejects them before the function's body runs.
BAD_INPUT = [
    ("#VALUE!", ("text", 4.0)),
    ("#VALUE!", ("12", 4.0)),
    ("#VALUE!", (True, 4.0)),
    ("#VALUE!", ([[1.0, 2.0]], 4.0)),
    ("#N/A", (None, 4.0)),
    ("#N/A", (3.0, "")),
    ("#DIV/0!", ("#DIV/0!", 4.0)),
    ("#REF!", (3.0, "#ref!")),
    ("#NUM!", (float("inf"), 4.0)),
    ("#VALUE!", (3.0, 4.0, 5.0)),  # more arguments than the function takes
]


@pytest.mark.parametrize("exp,args", BAD_INPUT)
def test_bad_input_to_a_buggy_function_is_still_an_error_value_in_strict_mode(buggy, exp, args):
    call, _ = buggy
    assert call(*args) == exp


def test_a_bug_shows_value_in_a_worksheet(buggy, lenient):
    call, _ = buggy
    assert call(3.0, 4.0) == "#VALUE!"


def _refused(numerator, denominator):
    raise InputError("no answer for this input")


def _divided(numerator, denominator):
    return numerator / 0.0


def _overflowed(numerator, denominator):
    return numerator ** 1e6


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "worksheet"])
@pytest.mark.parametrize("body,exp", [(_refused, "#VALUE!"), (_divided, "#DIV/0!"), (_overflowed, "#NUM!")],
                         ids=["refused", "divided by zero", "overflow"])
def test_expected_outcomes_are_error_values_in_both_modes(body, exp, strict):
    registry.strict(strict)
    try:
        assert _register(body)(3.0, 4.0) == exp
    finally:
        registry.strict(True)
        registry.unregister(TEST_NAME)


# The shipped functions' deliberate refusals: #VALUE! in a cell, InputError from Python.
REFUSALS = [
    ("ER_SCENARIO", ("sideways", 0.04), "udfs.selection", "scenario", ("sideways", 0.04)),
    ("ER_SEGMENT_VALUE", ("P/FCF", 20.0, 300.0), "udfs.valuation", "segment_value", ("P/FCF", 20.0, 300.0)),
    ("ER_RATING_BAND", (0.2, "no_such_scheme"), "udfs.rating", "get_scheme", ("no_such_scheme",)),
    ("ER_RATING_BAND", (0.2, "everbright", "sideways"), "udfs.rating", "classify", (0.2, "everbright", "sideways")),
    ("ER_RATING", (40.2, 50.0, 0.05, 0.0, "no_such_scheme"), "udfs.rating", "rate",
     (40.2, 50.0, 0.05, 0.0, "no_such_scheme")),
]


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "worksheet"])
@pytest.mark.parametrize("name,args,module,function,python_args", REFUSALS, ids=[r[0] + ":" + r[3] for r in REFUSALS])
def test_a_deliberate_refusal_is_value_in_a_cell_and_an_input_error_in_python(name, args, module, function,
                                                                           python_args, strict):
    registry.strict(strict)
    try:
        assert udfs.excel_functions()[name](*args) == "#VALUE!"
    finally:
        registry.strict(True)
    with pytest.raises(InputError) as raised:
        getattr(importlib.import_module(module), function)(*python_args)
    assert isinstance(raised.value, ModelError) and str(raised.value)


# ---- The model: a user's mistake is a ModelError, with the message it always had --------------
def _line(key, formula=None, table="t", **kw):
    return engine.Line(key, table, key, key, formula=formula, **kw)


def _unknown_driver_method():
    engine.bind_drivers([_line("x", driven=True)], {"x": engine.Driver("x", "vibes", [])})


def _missing_driver():
    engine.bind_drivers([_line("x", driven=True)], {})


def _driver_without_base():
    engine.bind_drivers([_line("x", driven=True)], {"x": engine.Driver("x", "share", [])})


def _driver_reads_a_missing_line():
    engine.bind_drivers([_line("x", driven=True), _line("p")], {"x": engine.Driver("x", "tax", [], base="p")})


def _formula_reads_an_unknown_line():
    engine.evaluation_order([_line("a", "nowhere + 1")])


def _formula_calls_an_unknown_function():
    engine.evaluation_order([_line("a", "no_such_function(1)")])


def _formulas_form_a_cycle():
    engine.evaluation_order([_line("a", "b + 1"), _line("b", "a + 1")])


def _yearly_line_reads_a_whole_row_scalar():
    years = [engine.Year("2025E", 2025, engine.FORECAST)]
    lines = [_line("f"), _line("s", "at(f, f)", scalar=True), _line("y", "s + 1")]
    engine.evaluate(lines, years, {}, {})


ENGINE_MISTAKES = [
    (_missing_driver, "needs a driver"),
    (_unknown_driver_method, "unknown method 'vibes'"),
    (_driver_without_base, "needs `base`"),
    (_driver_reads_a_missing_line, "which the layout does not have"),
    (_formula_reads_an_unknown_line, "reads unknown line 'nowhere'"),
    (_formula_calls_an_unknown_function, "unknown function 'no_such_function'"),
    (_formulas_form_a_cycle, "form a cycle"),
    (_yearly_line_reads_a_whole_row_scalar, "a yearly line cannot read it"),
]


@pytest.mark.parametrize("mistake,message", ENGINE_MISTAKES, ids=[m.__name__.strip("_") for m, _ in ENGINE_MISTAKES])
def test_a_mistake_in_the_model_definition_is_a_data_error(mistake, message):
    with pytest.raises(DataError, match=message):
        mistake()


@pytest.fixture(scope="module")
def kysec():
    from workbook.company import load
    return load(KYSEC)


def test_an_unknown_scenario_is_a_scenario_error(company, kysec):
    from workbook.model import ScenarioError, build_model
    with pytest.raises(ScenarioError, match="scenario must be base, bear or bull, not 'sideways'"):
        build_model(company, scenario="sideways")
    with pytest.raises(ScenarioError, match="defines no scenarios"):
        build_model(kysec, scenario="bear")
    assert issubclass(ScenarioError, DataError)


def test_other_model_mistakes_are_data_errors_but_not_scenario_errors(company):
    from workbook.model import ScenarioError, build_model, driver_sensitivity
    stray = dataclasses.replace(company, inputs={**company.inputs, ("no_such_line", "2025E"): 1.0})
    with pytest.raises(DataError, match="input for 'no_such_line', which is not a line of this model") as raised:
        build_model(stray)
    assert not isinstance(raised.value, ScenarioError)
    with pytest.raises(DataError, match="'no_such_driver' is not a driver"):
        driver_sensitivity(company, "no_such_driver", [0.1], "smartphone", [0.1], "revenue", "2025E")


def test_calibration_mistakes_are_data_errors(tmp_path):
    from types import SimpleNamespace

    from workbook import spec
    from workbook.calibrate import standalone_targets, write_drivers
    no_drivers = tmp_path / "no_drivers.toml"
    no_drivers.write_text("[facts]\nname = \"x\"\n", encoding="utf-8")
    with pytest.raises(DataError, match="no \\[drivers.\\*\\] tables to replace"):
        write_drivers(no_drivers, {})
    split = tmp_path / "split.toml"   # a table between driver tables: which run would be replaced is unclear
    split.write_text("[facts]\n\n[drivers.revenue]\nmethod = \"growth\"\n\n[valuation]\n\n[drivers.cogs]\nmethod = \"margin\"\n",
                     encoding="utf-8")
    with pytest.raises(DataError, match="must be one run of tables"):
        write_drivers(split, {})
    after = tmp_path / "after.toml"   # a table after the drivers (import writes [valuation] there) is kept
    after.write_text("[facts]\n\n[drivers.revenue]\nmethod = \"growth\"\n\n[valuation]\npe_multiple = 20\n", encoding="utf-8")
    write_drivers(after, {"revenue": {"method": "growth"}})
    assert after.read_text(encoding="utf-8").endswith("[valuation]\npe_multiple = 20\n")
    lines = [_line("d_x", implied="x", table=spec.DRIVERS), _line("a", "d_x + 1"), _line("b", "d_x * 2")]
    twice_read = SimpleNamespace(layout=SimpleNamespace(lines=lines, calibrated=()))
    with pytest.raises(DataError, match="must be read by exactly one line"):
        standalone_targets(twice_read)


# ---- The command line: one line, a non-zero exit; only a scenario mistake names --scenario ------
def test_the_command_line_names_scenario_only_for_a_scenario_mistake(capsys):
    assert cli._run(["show", "--data", str(KYSEC), "--scenario", "bear"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("error: --scenario: ") and "defines no scenarios" in err and err.count("\n") == 1


def test_the_command_line_prints_any_other_model_mistake_as_one_line_without_scenario(monkeypatch, capsys):
    import workbook.company
    load = workbook.company.load

    def load_with_a_bad_driver(path):
        company = load(path)
        key, driver = next(iter(company.drivers.items()))
        return dataclasses.replace(company, drivers={**company.drivers, key: dataclasses.replace(driver, method="vibes")})
    monkeypatch.setattr(workbook.company, "load", load_with_a_bad_driver)
    assert cli._run(["show", "--data", str(KYSEC)]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("error: driver ") and "unknown method 'vibes'" in err and err.count("\n") == 1
    assert "--scenario" not in err
