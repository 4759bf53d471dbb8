"""The engine runs each formula as a function of its own stores (udfs.formula.line_function):
closures reading the engine's dicts in place, a subtotal as one chain, and the functions whose
arguments are numbers or any value called without their guard when every number is a finite
float. The tree walk `udfs.formula.evaluate` with the registry's guarded functions is the
definition; the line function must give the same value of the same type for every operand Excel can pass
(Excel errors, NM and other text, blanks, ints, booleans, -0, overflowing and non-finite
floats), whether a line is read in its own year, a year back or before the first year, and
whether the function is reached directly or through the guard (an explicit `functions`
mapping never goes past it). No time is asserted: the bench measures speed.

Then the whole engine: `engine.evaluate` and the checks and warnings of both companies, with
inputs, drivers and typed-over values replaced by such operands, equal a reference evaluation
of the same plan by the tree walk, cell for cell.
"""
from __future__ import annotations

import math
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import udfs  # noqa: F401 - registers every function
from conftest import ROOT, examples
from test_formula import Vectors   # the stub of what a form reads across years
from test_guard_fast_path import _answer   # a value, or the type of what was raised (strict mode raises a bug)
from udfs import engine
from udfs import formula as fx
from udfs.constants import NOT_MEANINGFUL
from udfs.registry import direct_calls
from workbook.company import load
from workbook.model import build_model, run_inputs

# Operands of every kind a cell can hold, by line name; the prior year holds others.
_THIS = {"a": 1.5, "b": -2.0, "z": 0.0, "nz": -0.0, "big": 1e308, "n": 3, "t": "text", "e": "#N/A",
         "d": "#DIV/0!", "blank": None, "empty": "", "nm": NOT_MEANINGFUL, "yes": True, "inf": math.inf,
         "nan": math.nan, "row": [[1.0, 2.0]]}
_PRIOR = {"a": 10.0, "b": 1e308, "z": None, "nz": -1e-300, "big": -1e308, "n": 0, "t": "#REF!", "e": 2.0,
          "d": 0.0, "blank": 4.0, "empty": -3.5, "nm": 0.25, "yes": "#VALUE!", "inf": 1.0, "nan": None, "row": 2.0}
# One-value lines (read the same in every year).
_SCALARS = {"s": 0.1, "st": "bear", "se": "#NUM!", "sb": None}
_LINES = sorted(_THIS) + sorted(_SCALARS)
LABELS = ["2023", "2024", "2025E"]
# A function of each kind: numbers only (grow, margin, growth_rate), an optional number that
# may be omitted (turnover_days, days_balance), any values (change, if_given, total), a text
# argument the guard converts (scenario).
_CALLS = {"grow": 2, "margin": 2, "growth_rate": 2, "turnover_days": (2, 3), "days_balance": (2, 3), "change": 2,
          "if_given": 2, "total": 1, "scenario": (2, 4)}


def _store(pos: int) -> tuple[dict, dict]:
    """The yearly and one-value cells as the engine holds them, the year at `pos` holding `_THIS`,
    the one before `_PRIOR`, any other a figure no formula should read (a year counted from
    the end would)."""
    yearly = {(k, label): 99.0 for k in _THIS for label in LABELS}
    yearly.update({(k, LABELS[pos]): v for k, v in _THIS.items()})
    if pos >= 1:
        yearly.update({(k, LABELS[pos - 1]): v for k, v in _PRIOR.items()})
    return yearly, dict(_SCALARS)


def _lookup(yearly: dict, scalars: dict, pos: int, scalars_first: bool):
    """`lookup(key, lag)` by the engine's rules (a year before the first is empty, also for a
    one-value line) or by the checks' (a one-value line in any year)."""
    def lookup(key, lag):
        if scalars_first and key in scalars:
            return scalars.get(key)
        if pos - lag < 0:
            return None
        if key in scalars:
            return scalars.get(key)
        return yearly.get((key, LABELS[pos - lag]))
    return lookup


def _formulas():
    names = st.sampled_from(_LINES)
    leaf = st.one_of(names, names.map(lambda k: f"prev({k})"), names.map(lambda k: f"prev(prev({k}))"),
                     st.sampled_from(["0", "0.5", "2", "1e308", '"x"', '"#N/A"', "-0.0"]))

    def call(inner):
        return st.sampled_from(sorted(_CALLS)).flatmap(lambda name: st.integers(
            *(_CALLS[name] if isinstance(_CALLS[name], tuple) else (_CALLS[name], _CALLS[name] + 1))).flatmap(
            lambda n: st.lists(inner, min_size=n, max_size=n).map(lambda args: f"{name}({', '.join(args)})")))
    return st.recursive(leaf, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from("+-*/"), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda x: f"-({x})"), call(inner)), max_leaves=8)


def same(a, b) -> bool:
    """The same value of the same type (nan equals nan; lists cell by cell)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b))


@settings(max_examples=examples(600), deadline=None)
@given(text=_formulas(), pos=st.sampled_from([0, 1, 2]), scalars_first=st.booleans(), direct=st.booleans())
@example(text="big + prev(b)", pos=1, scalars_first=False, direct=True)          # overflow: #NUM!
@example(text="-(inf) + (a / nz) - nan * prev(z)", pos=1, scalars_first=False, direct=True)
@example(text="grow(big, big) + turnover_days(a, n) + change(e, blank)", pos=2, scalars_first=False, direct=True)
@example(text="prev(s) + prev(prev(a))", pos=0, scalars_first=False, direct=True)  # before the first year
@example(text="prev(s) + prev(prev(a))", pos=0, scalars_first=True, direct=True)
def test_a_line_function_equals_the_tree_walk(text, pos, scalars_first, direct):
    functions = engine._guarded_now()
    yearly, scalars = _store(pos)
    scalar_keys = frozenset(r.key for r in fx.refs(fx.parse(text)) if r.key in scalars)
    made = fx.line_function(text, scalar_keys, direct_calls() if direct else (), scalars_first)
    expected = _answer(lambda: fx.evaluate(fx.parse(text), _lookup(yearly, scalars, pos, scalars_first), functions))
    got = _answer(lambda: made(yearly.get, scalars.get, LABELS, pos, functions, None))
    assert expected[0] == got[0] and same(got[1], expected[1]), (text, expected, got)


@pytest.mark.parametrize("bounds", [(0.0, None), (None, 1), (-1, 0.5), (None, None), ("", 2.0), (math.nan, 1.0),
                                    (True, None), (0.0, "#N/A"), (1e308, -math.inf)])
def test_a_warning_judges_each_value_as_er_warn_does(bounds):
    """The warnings judge a plain float at once, anything else through ER_WARN's own function:
    every status is the function's."""
    from udfs.checks import warn
    cases = [0.5, -2.0, 1.0, 3, True, None, "", NOT_MEANINGFUL, "#DIV/0!", "text", math.nan, math.inf, -math.inf, -0.0]
    years = [engine.Year(f"{2020 + i}E", 2020 + i, engine.FORECAST) for i in range(len(cases))]
    lines = [engine.Line("x", "t", "x", "x")]
    values = engine.Values(years, {("x", y.label): v for y, v in zip(years, cases)})
    got = engine.run_warnings([engine.SanityWarning("w", "w", "w", "x", *bounds)], lines, values)
    assert [r["value"] for r in got][4:6] == [True, 0.0]   # the line as a formula reads it: an empty cell is 0
    assert [r["status"] for r in got] == [warn(r["value"], *bounds) for r in got]


def test_the_direct_calls_are_the_functions_whose_guard_passes_values_through():
    """Numbers-only functions and any-value ones are called directly; one with a text or series
    argument never (its guard converts what it is given)."""
    direct = {name for name, _, _ in direct_calls()[1]}
    assert {"grow", "margin", "turnover_days", "change", "if_given", "total"} <= direct
    assert "scenario" not in direct


def test_an_explicit_functions_mapping_is_always_called():
    """A caller's own functions are what the formula calls, also where the registry's guard
    would be passed by: made without `direct`, every call reaches the mapping."""
    calls = []
    functions = {"grow": lambda *a: calls.append(a) or 7.0}
    made = fx.line_function("grow(a, b) + 1", frozenset(), (), False)
    assert made({("a", "2023"): 1.0, ("b", "2023"): 2.0}.get, {}.get, LABELS, 0, functions, None) == 8.0
    assert calls == [(1.0, 2.0)]
    lines = [engine.Line("a", "t", "a", "a", formula="grow(1, 2)", history="always")]
    years = [engine.Year(label, int(label[:4]), engine.ACTUAL) for label in LABELS]
    engine.evaluate(lines, years, {}, {}, functions=functions)
    assert len(calls) == 1 + len(years)


def test_a_long_subtotal_is_one_chain():
    """A subtotal of hundreds of lines (an imported statement) is read as one chain, with the
    same figure as the tree walk, empty cells, text and errors in it included."""
    keys = [f"x{i}" for i in range(400)]
    text = " + ".join(keys)
    yearly = {(k, "2023"): float(i) for i, k in enumerate(keys)}
    made = fx.line_function(text, frozenset(), direct_calls(), False)
    assert made(yearly.get, {}.get, LABELS, 0, {}, None) == float(sum(range(400)))
    for odd in (None, "text", "#N/A", 1e308, -0.0):
        yearly[("x7", "2023")] = yearly[("x9", "2023")] = odd
        for text in (" + ".join(keys), " - ".join(keys), "1e308 + " + " - ".join(keys[::-1])):
            expected = fx.evaluate(fx.parse(text), _lookup(yearly, {}, 0, False), {})
            assert same(fx.line_function(text)(yearly.get, {}.get, LABELS, 0, {}, None), expected), (odd, text[:40])


def test_the_forms_read_as_the_tree_walk_reads_them():
    yearly = {("y", "2023"): "2026E", ("a", "2023"): 2.0}
    scalars = {"b": 3.0, "sy": "2026E"}
    functions = engine._guarded_now()
    for text in ("at(a, y) * 2", "-at(b, sy)", "column(a, b)", "forecast(a)", "dcf(forecast(a), 0.1, 0.02)",
                 "at(a, y) + column(a, b)"):
        keys = frozenset(r.key for r in fx.refs(fx.parse(text)) if r.key in scalars)
        expected = fx.evaluate(fx.parse(text), _lookup(yearly, scalars, 0, False), functions, vectors=Vectors())
        assert same(fx.line_function(text, keys, direct_calls())(yearly.get, scalars.get, LABELS, 0, functions, Vectors()),
                    expected), text
    with pytest.raises(fx.FormulaError):   # a form that reads other years, where there are none
        fx.line_function("forecast(a)")(yearly.get, scalars.get, LABELS, 0, functions, None)


# The whole engine against a reference: the same plan, each formula by the tree walk.
COMPANIES = {"xiaomi": ROOT / "workbook" / "data" / "xiaomi_1810hk.toml",
             "kysec": ROOT / "workbook" / "data" / "kysec_300592sz.toml"}
_LOADED: dict = {}
_ODD = st.sampled_from([None, "", "text", "#N/A", "#DIV/0!", "#REF!", NOT_MEANINGFUL, 0.0, -0.0, 1e308, -1e308, 3, True,
                        math.inf, math.nan, 1e-300])


def _company(name: str):
    if name not in _LOADED:
        _LOADED[name] = load(COMPANIES[name])
    return _LOADED[name]


def reference(lines, years, inputs, scalar_inputs, overrides) -> engine.Values:
    """`engine.evaluate` as it was defined before its line functions: the plan's order,
    each formula walked as a tree through the guarded functions."""
    functions = engine._guarded_now()
    plan = engine._plan(lines, years)
    values = engine.Values(list(years))
    labels = [y.label for y in years]

    def lookup_in(year_pos):
        def lookup(key, lag):
            pos = year_pos - lag
            if pos < 0:
                return None
            if key in plan.scalar_keys:
                return values.scalars.get(key)
            return values.yearly.get((key, labels[pos]))
        return lookup

    def scalar(key, text):
        if text is not None and key not in scalar_inputs:
            values.scalars[key] = fx.evaluate(fx.parse(text), lookup_in(0), functions, vectors=engine._Vectors(values, years))
        else:
            values.scalars[key] = scalar_inputs.get(key)
    for key, text in plan.early:
        scalar(key, text)
    for pos, year in enumerate(years):
        vectors = engine._Vectors(values, years, pos)
        for key, text in plan.yearly[year.kind]:
            cell = (key, year.label)
            if cell in overrides:
                values.yearly[cell] = overrides[cell]
            elif text is not None:
                values.yearly[cell] = fx.evaluate(fx.parse(text), lookup_in(pos), functions, vectors=vectors)
            else:
                values.yearly[cell] = inputs.get(cell)
    for key, text in plan.late:
        scalar(key, text)
    return values


def _reference_results(formula_of, lines, values) -> list:
    """Each (formula, forecast year) of the checks or warnings by the tree walk, read as a check reads."""
    scalar_keys = {line.key for line in lines if line.scalar}
    labels = [y.label for y in values.years]
    functions = engine._guarded_now()
    out = []
    for text in formula_of:
        for pos, year in enumerate(values.years):
            if year.kind == engine.FORECAST:
                def lookup(key, lag, pos=pos):
                    if key in scalar_keys:
                        return values.scalars.get(key)
                    return values.yearly.get((key, labels[pos - lag])) if pos - lag >= 0 else None
                out.append(fx.evaluate(fx.parse(text), lookup, functions))
    return out


@st.composite
def edited_runs(draw):
    name = draw(st.sampled_from(sorted(COMPANIES)))
    company = _company(name)
    lines, inputs, scalars = run_inputs(company)
    inputs, scalars = dict(inputs), dict(scalars)
    for cell in draw(st.lists(st.sampled_from(sorted(inputs)), max_size=6, unique=True)):
        inputs[cell] = draw(_ODD)
    for key in draw(st.lists(st.sampled_from(sorted(scalars)), max_size=3, unique=True)):
        scalars[key] = draw(_ODD)
    formula_cells = sorted((line.key, y.label) for line in lines if not line.scalar for y in company.years
                           if line.formula_in(y.kind))
    overrides = {cell: draw(_ODD) for cell in draw(st.lists(st.sampled_from(formula_cells), max_size=3, unique=True))}
    return company, lines, inputs, scalars, overrides


@settings(max_examples=examples(60), deadline=None)
@given(run=edited_runs())
def test_the_engine_equals_the_tree_walk_on_odd_inputs(run):
    company, lines, inputs, scalars, overrides = run
    got = engine.evaluate(lines, company.years, inputs, scalars, overrides)
    expected = reference(lines, company.years, inputs, scalars, overrides)
    assert got.yearly.keys() == expected.yearly.keys() and got.scalars.keys() == expected.scalars.keys()
    for cell, value in expected.yearly.items():
        assert same(got.yearly[cell], value), (cell, got.yearly[cell], value)
    for key, value in expected.scalars.items():
        assert same(got.scalars[key], value), (key, got.scalars[key], value)
    checks, warnings = list(company.layout.checks), list(company.layout.warnings)
    got_checks = [(r["actual"], r["expected"]) for r in engine.run_checks(checks, lines, got)]
    expected_checks = [pair for c in checks for pair in zip(_reference_results([c.actual], lines, expected),
                                                             _reference_results([c.expected], lines, expected))]
    assert all(same(a, b) for a, b in zip(got_checks, expected_checks, strict=True))
    got_warnings = [r["value"] for r in engine.run_warnings(warnings, lines, got)]
    assert all(same(a, b) for a, b in zip(got_warnings, _reference_results([w.value for w in warnings], lines, expected),
                                           strict=True))


@pytest.mark.parametrize("name", sorted(COMPANIES))
def test_each_company_builds_as_the_tree_walk_computes_it(name):
    """The printed model, run after run: every cell of `build_model` and every check and
    warning equal the reference's."""
    company = _company(name)
    lines, inputs, scalars = run_inputs(company)
    expected = reference(lines, company.years, inputs, scalars, {})
    for _ in range(4):
        model = build_model(company)
        assert model.values.yearly.keys() == expected.yearly.keys()
        assert all(same(model.values.yearly[c], v) for c, v in expected.yearly.items())
        assert all(same(model.values.scalars[k], v) for k, v in expected.scalars.items())
        assert [(r["actual"], r["expected"]) for r in model.checks] == [
            pair for c in company.layout.checks for pair in zip(_reference_results([c.actual], lines, expected),
                                                                  _reference_results([c.expected], lines, expected))]
        assert [r["value"] for r in model.warnings] == _reference_results([w.value for w in company.layout.warnings],
                                                                           lines, expected)
