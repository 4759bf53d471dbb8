"""The engine's short ways give the long way's figures exactly (issue 23). No time is asserted
here: the bench measures speed; these tests hold the answers.

- The sensitivity table evaluates per point only the lines both drivers reach and its line
  reads, from the first year a driver is set in, on inputs made once: for any two drivers, axis
  values, edits to the other drivers, line, year and scenario of either company, each point
  equals `build_model` run whole on the company with the two drivers set.
- Calibration's Jacobian re-runs per column only what the moved value reaches, from its year:
  each column equals `build_model` with the value moved.
- The line list and the evaluation plan are made once per content: an edited company or
  layout gets its own.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, examples
from test_incremental import _per_point as whole_model_per_point  # the table by its definition: build_model per point
from udfs.engine import Line, driver_key, evaluate
from workbook.company import load
from workbook.model import build_model, driver_sensitivity, model_lines, run_inputs

COMPANIES = {"xiaomi": ROOT / "workbook" / "data" / "xiaomi_1810hk.toml",
             "kysec": ROOT / "workbook" / "data" / "kysec_300592sz.toml"}
_LOADED: dict = {}


def company_named(name: str):
    """A fresh copy of the company each time (tests edit it), parsed once."""
    if name not in _LOADED:
        _LOADED[name] = load(COMPANIES[name])
    company = _LOADED[name]
    return replace(company, inputs=dict(company.inputs), scalar_inputs=dict(company.scalar_inputs),
                   drivers={k: replace(d, values=list(d.values)) for k, d in company.drivers.items()},
                   labels=dict(company.labels))


# Lines a table can show: per-share, a statement line, the balance sheet, a one-value line read
# from whole rows (the blend), a ratio.
TABLE_LINES = ("val_eps", "net_profit", "revenue", "target_price_blend", "total_assets", "gross_margin")
axis_value = st.floats(-0.5, 0.8, allow_nan=False).map(lambda v: round(v, 4))


@st.composite
def tables(draw):
    name = draw(st.sampled_from(sorted(COMPANIES)))
    company = company_named(name)
    drivers = sorted(company.drivers)
    a, b = draw(st.sampled_from(drivers)), draw(st.sampled_from(drivers))
    xs = draw(st.lists(axis_value, min_size=1, max_size=3))
    ys = draw(st.lists(axis_value, min_size=1, max_size=3))
    keys = {line.key for line in model_lines(company)}
    line = draw(st.sampled_from([k for k in TABLE_LINES if k in keys]))
    year = draw(st.sampled_from([y.label for y in company.forecast_years]))
    scenario = draw(st.sampled_from([None, "bear", "bull"] if company.scenario_drivers else [None]))
    # other drivers edited first: the table starts from any model, not only the shipped one
    forecast = [y.label for y in company.forecast_years]
    for key in draw(st.lists(st.sampled_from(drivers), max_size=3, unique=True)):
        for i, label in enumerate(forecast):
            moved = company.inputs[(driver_key(key), label)] * draw(st.floats(0.5, 1.5)) + 0.001 * i
            company.inputs[(driver_key(key), label)] = moved
    return company, a, xs, b, ys, line, year, scenario


@settings(max_examples=examples(60))
@given(tables())
def test_the_sensitivity_table_equals_the_whole_model_per_point_for_any_inputs(table):
    company, a, xs, b, ys, line, year, scenario = table
    assert driver_sensitivity(company, a, xs, b, ys, line, year, scenario) == \
        whole_model_per_point(company, a, xs, b, ys, line, year, scenario)


@pytest.mark.parametrize("name", sorted(COMPANIES))
def test_the_table_moves_where_the_drivers_reach_it(name):
    """The comparison above means something: the first forecast year's EPS moves with the
    drivers of the default table, and so does the last year's net profit."""
    from workbook.model import default_sensitivity
    company = company_named(name)
    a, xs, b, ys = default_sensitivity(company)
    last = company.forecast_years[-1].label
    grid = driver_sensitivity(company, a, xs, b, ys, "net_profit", last)
    assert grid == whole_model_per_point(company, a, xs, b, ys, "net_profit", last, None)
    assert len({v for row in grid for v in row}) > 1


# ------------------------------------------------------------------------------------------------
# Calibration's columns
# ------------------------------------------------------------------------------------------------
@st.composite
def columns(draw):
    """A company, some of its driven lines' cells as free values (overrides), some driver inputs
    as free values, a starting point near the model's own values, and outputs to read."""
    from workbook.calibrate import _number
    name = draw(st.sampled_from(sorted(COMPANIES)))
    company = company_named(name)
    model = build_model(company)
    forecast = [y.label for y in company.forecast_years]
    cells = [(line, year) for line in sorted(company.drivers) for year in forecast]
    free_lines = draw(st.lists(st.sampled_from(cells), min_size=1, max_size=4, unique=True))
    inputs = sorted(cell for cell in company.inputs if cell[0].startswith("d_") and cell[1] in forecast)
    free_drivers = draw(st.lists(st.sampled_from(inputs), max_size=3, unique=True))
    x0 = [_number(model.value(*cell)) * draw(st.floats(0.9, 1.1)) for cell in free_lines] \
        + [company.inputs[cell] for cell in free_drivers]
    statement = [line.key for line in model_lines(company) if line.table in ("income", "balance", "cashflow", "ratios")
                 and not line.scalar]
    outputs = draw(st.lists(st.tuples(st.sampled_from(statement), st.sampled_from(forecast)), min_size=1, max_size=12,
                            unique=True))
    return company, free_lines, free_drivers, np.array(x0, dtype=float), outputs


@settings(max_examples=examples(40))
@given(columns(), st.data())
def test_each_calibration_column_equals_the_whole_model_with_the_value_moved(case, data):
    from workbook.calibrate import _Columns, _number
    company, free_lines, free_drivers, x0, outputs = case
    made = _Columns(company, free_lines, free_drivers, x0, outputs)
    j = data.draw(st.integers(0, len(x0) - 1))
    x = x0 + np.eye(len(x0))[j]
    inputs = dict(company.inputs)
    inputs.update({cell: x[len(free_lines) + i] for i, cell in enumerate(free_drivers)})
    whole = build_model(replace(company, inputs=inputs), {cell: x[i] for i, cell in enumerate(free_lines)})
    expected = np.array([_number(whole.value(key, year)) for key, year in outputs], dtype=float)
    assert np.array_equal(made.moved(j), expected, equal_nan=True)


def test_a_column_from_a_later_year_keeps_the_earlier_years_and_moves_the_later_ones():
    """The short way skips the years before the moved value's: the comparison above must see it
    move what comes after (net profit read by retained earnings, year after year)."""
    from workbook.calibrate import _Columns
    company = company_named("xiaomi")
    forecast = [y.label for y in company.forecast_years]
    outputs = [("net_profit", year) for year in forecast] + [("total_assets", year) for year in forecast]
    x0 = np.array([build_model(company).value("net_profit", forecast[1]) + 10.0])
    made = _Columns(company, [("net_profit", forecast[1])], [], x0, outputs)
    start = build_model(company, {("net_profit", forecast[1]): x0[0]})
    moved = made.moved(0)
    assert moved[0] == start.value("net_profit", forecast[0])
    assert moved[1] == x0[0] + 1.0
    later = len(forecast) + 1
    assert moved[later] != start.value("total_assets", forecast[1])
    assert moved[later + 1] != start.value("total_assets", forecast[2])


# ------------------------------------------------------------------------------------------------
# What is made once per content
# ------------------------------------------------------------------------------------------------
def _uncached_lines(company) -> list[Line]:
    from udfs.engine import bind_drivers
    from workbook.model import company_lines, scenario_lines
    named = [replace(line, label_zh=company.labels[line.key][0], label_en=company.labels[line.key][1])
             if line.key in company.labels else line for line in company_lines(company)]
    return scenario_lines(bind_drivers(named, company.drivers), company)


@pytest.mark.parametrize("name", sorted(COMPANIES))
def test_an_edited_company_or_layout_never_gets_a_stale_line_list(name):
    company = company_named(name)
    first = model_lines(company)
    assert first == _uncached_lines(company)
    first.append("not a line")          # the caller's list is its own
    assert model_lines(company) == _uncached_lines(company)

    # a label edited in place
    key = next(line.key for line in company.layout.lines if not line.scalar)
    company.labels[key] = ("改过的标签", "An edited label")
    assert next(l for l in model_lines(company) if l.key == key).label_zh == "改过的标签"
    # a driver's method edited in place: its line's formula follows
    driven = next(k for k, d in company.drivers.items() if d.method == "growth")
    company.drivers[driven].method = "step"
    formula = next(l for l in model_lines(company) if l.key == driven).formula
    assert formula.startswith("step(") and model_lines(company) == _uncached_lines(company)
    # a layout edited (a frozen value: a new one) whose line's formula changes
    layout = company.layout
    target = next(l for l in layout.lines if l.formula and not l.driven)
    edited = replace(layout, lines=tuple(replace(l, formula=f"({l.formula}) * 2") if l is target else l
                                         for l in layout.lines))
    changed = replace(company, layout=edited)
    assert next(l for l in model_lines(changed) if l.key == target.key).formula == f"({target.formula}) * 2"
    assert model_lines(changed) == _uncached_lines(changed)
    assert build_model(changed).value(target.key, company.forecast_years[0].label) != \
        build_model(company).value(target.key, company.forecast_years[0].label)


def test_the_evaluation_plan_follows_the_lines_it_is_given():
    """Two lists of different lines evaluated one after the other, then the first again: each
    gets its own figures (the plan is keyed by the lines themselves)."""
    years = load(COMPANIES["xiaomi"]).years
    label = years[-1].label
    doubled = [Line("a", "t", "a", "a", formula="1 + 1", history="always"), Line("b", "t", "b", "b", formula="a * 2", history="always")]
    tripled = [doubled[0], Line("b", "t", "b", "b", formula="a * 3", history="always")]
    for lines, expected in ((doubled, 4.0), (tripled, 6.0), (doubled, 4.0)):
        assert evaluate(lines, years, {}, {}).get("b", label) == expected


@pytest.mark.parametrize("name", sorted(COMPANIES))
def test_run_inputs_are_what_build_model_evaluates(name):
    company = company_named(name)
    lines, inputs, scalars = run_inputs(company)
    values = evaluate(lines, company.years, inputs, scalars)
    assert values.yearly == build_model(company).values.yearly


def test_the_lines_that_read_a_later_year_are_found_in_any_formula():
    """A re-run from a year on must not skip the earlier years when a line reads a later one;
    the lines that do are found however deep their formula (a subtotal of hundreds of lines is
    a tree deeper than a recursive walk may go)."""
    from udfs.engine import reads_ahead
    long_sum = " + ".join(f"x{i}" for i in range(600))
    lines = [Line(f"x{i}", "t", "x", "x") for i in range(600)] + [
        Line("subtotal", "t", "s", "s", formula=long_sum),
        Line("ahead", "t", "a", "a", formula="x0 + sum(forecast(x1))"),
        Line("named_year", "t", "n", "n", formula="at(x2, x3)"),
        Line("implied_ahead", "t", "i", "i", formula="x4", implied="1 + sum(forecast(x5))"),
        Line("one_value", "t", "v", "v", formula="sum(forecast(x6))", scalar=True),
    ]
    assert reads_ahead(lines) == {"ahead", "named_year", "implied_ahead"}
