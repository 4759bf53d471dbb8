"""A company's model: the spec bound to its drivers, evaluated, checked, and shown as tables."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING


from udfs.constants import ERR_NA
from udfs.engine import (
    BASE, FORECAST_ONLY, Line, Values, bind_drivers, downstream, driver_key, evaluate, reads_ahead, run_checks, run_warnings,
    upstream,
)
from udfs.errors import DataError, InputError
from udfs.forecast import METHODS
from udfs.selection import scenario_case

from . import spec
from .company import SCENARIO_CASES, Company, load

if TYPE_CHECKING:
    import pandas as pd


class ScenarioError(DataError):
    """A scenario the company's model does not have: not base, bear or bull, or any scenario but
    base for a company file without [scenarios]."""


@dataclass
class Model:
    company: Company
    lines: list[Line]
    values: Values
    checks: list[dict]
    overrides: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)  # run_warnings results: implausible figures, per forecast year

    def line(self, key: str) -> Line:
        return next(line for line in self.lines if line.key == key)

    def value(self, key: str, year: str | None = None):
        return self.values.get(key, year)

    @property
    def balanced(self) -> bool:
        return all(c["passed"] for c in self.checks)

    @property
    def triggered_warnings(self) -> list[dict]:
        """The sanity warnings that fire (status WARN), in layout order, year by year."""
        return [w for w in self.warnings if w["triggered"]]

    def frame(self, table: str, english: bool = False) -> "pd.DataFrame":
        """One table's yearly lines as a DataFrame: rows are lines (indexed by key, with the
        label in a column), columns the year labels; NM and error values stay as text."""
        rows = [line for line in self.lines if line.table == table and not line.scalar]
        years = [y for y in self.values.years if y.kind != BASE]
        data = {y.label: [self.values.get(line.key, y.label) for line in rows] for y in years}
        import pandas as pd  # only the DataFrame face needs it: refresh runs the engine without pandas
        frame = pd.DataFrame(data, index=pd.Index([line.key for line in rows], name="line"))
        frame.insert(0, "label", [line.label_en if english else line.label_zh for line in rows])
        return frame

    def frames(self, english: bool = False) -> "dict[str, pd.DataFrame]":
        """Every yearly table: summary, income, balance, cashflow, ratios, drivers."""
        tables = (spec.INCOME, spec.BALANCE, spec.CASHFLOW, spec.RATIOS, spec.DRIVERS)
        out = {"summary": self.summary_frame(english)}
        out.update({table: self.frame(table, english) for table in tables})
        return out

    def summary_frame(self, english: bool = False) -> "pd.DataFrame":
        """The summary table as the layout prints it, with its own labels."""
        rows = self.company.layout.summary_rows
        by_key = {line.key: line for line in self.lines}
        years = [y for y in self.values.years if y.kind != BASE]
        keys = [key for key, _ in rows]
        import pandas as pd
        frame = pd.DataFrame({y.label: [self.values.get(k, y.label) for k in keys] for y in years},
                             index=pd.Index(keys, name="line"))
        frame.insert(0, "label", [by_key[k].label_en if english else (label or by_key[k].label_zh) for k, label in rows])
        return frame


def build_model(company: Company | None = None, overrides: dict | None = None,
                scalar_overrides: dict | None = None, scenario: str | None = None, only: str | None = None) -> Model:
    """Evaluate a company's model. `overrides[(key, year)]` are values typed over formulas;
    `scalar_overrides` replace market or rating inputs (a new price, a target price);
    `scenario` ("base", "bear", "bull") picks the driver set of the company's scenarios
    (ScenarioError for one it does not have); DataError for an input no line of the model takes.
    `only`: evaluate just that line and what it reads, no checks or warnings (a sensitivity
    table re-runs the model per point for one line)."""
    company = company or load()
    lines = model_lines(company)
    scalars = _scalars(company, scenario, scalar_overrides)
    inputs = scenario_inputs(company)
    _refuse_stray(company, lines, inputs, overrides)
    if only is not None:
        lines = reading(lines, only)
        return Model(company, lines, evaluate(lines, company.years, inputs, scalars, overrides), [], dict(overrides or {}))
    values = evaluate(lines, company.years, inputs, scalars, overrides)
    checks = run_checks(list(company.layout.checks), lines, values)
    warnings = run_warnings(list(company.layout.warnings), lines, values)
    return Model(company, lines, values, checks, dict(overrides or {}), warnings)


def run_inputs(company: Company, scenario: str | None = None) -> tuple[list[Line], dict, dict]:
    """What `build_model(company, scenario=scenario)` evaluates: the lines, the yearly inputs
    (with the scenarios' driver values) and the one-value inputs; for callers that re-run the
    engine on a part of the model (calibration's Jacobian, a sensitivity table)."""
    return model_lines(company), scenario_inputs(company), _scalars(company, scenario)


def _scalars(company: Company, scenario: str | None, overrides: dict | None = None) -> dict:
    """The one-value inputs a run of the model takes, with the scenario chosen."""
    scalars = dict(company.scalar_inputs)
    scalars.update(overrides or {})
    if company.scenario_drivers:
        try:  # read as the scenario cell is read everywhere (udfs.selection.scenario_case)
            scalars["scenario"] = scenario_case(scenario if scenario is not None else scalars.get("scenario"))
        except InputError as exc:
            raise ScenarioError(str(exc)) from None
    elif scenario is not None and scenario_case_or_none(scenario) != "base":
        raise ScenarioError(f"{company.path.name} defines no scenarios ([scenarios] in the company file)")
    return scalars


def _refuse_stray(company: Company, lines: list[Line], inputs: dict, overrides: dict | None) -> None:
    known = {line.key for line in lines}
    stray = sorted({key for key, _ in inputs if key not in known} | {key for key, _ in (overrides or {}) if key not in known})
    if stray:  # a driver this model does not have would otherwise be silently ignored
        raise DataError(f"{company.path.name}: input for {stray[0]!r}, which is not a line of this model")


def model_lines(company: Company) -> list[Line]:
    """Every line `build_model` evaluates: the company's lines with its labels, bound to its
    drivers, with its scenarios.

    Made once per content and shared (a fresh list of the same frozen `Line`s): the model is run
    many times with the same lines and other inputs (a sensitivity table, calibration, a batch of
    models of one template), and making them was a fifth of a run. The key is everything the
    lines are made from: the layout (a frozen value: an edited layout has other parts; the
    cache holds them, so that their identities cannot be reused), the currencies, the labels, each
    driver's method, base and note, and the varied drivers; driver values are inputs, not lines."""
    key = _lines_key(company)
    cached = _LINES.get(key)
    if cached is None:
        named = [replace(line, label_zh=company.labels[line.key][0], label_en=company.labels[line.key][1])
                 if line.key in company.labels else line for line in company_lines(company)]
        cached = (company.layout, tuple(scenario_lines(bind_drivers(named, company.drivers), company)))
        if len(_LINES) >= _LINES_KEPT:
            _LINES.pop(next(iter(_LINES)))
        _LINES[key] = cached
    return list(cached[1])


_LINES: dict = {}   # _lines_key -> (layout, lines): the layout kept alive so that its parts' ids stay their own
_LINES_KEPT = 16    # a batch worker meets a few templates; its memory must not grow with the models


def _lines_key(company: Company) -> tuple:
    # The layout by the identities of its parts, its path aside: a refresh reads the layout a
    # model carries from a scratch folder, and the parsed layout's parts are shared by every copy
    # of it under another path (spec._load_cached), so each model of a batch finds the lines made.
    layout = company.layout
    parts = tuple(id(getattr(layout, f.name)) for f in fields(layout) if f.name != "path") if layout is not None else None
    return (parts, company.facts.get("quote_currency"), company.facts.get("reporting_currency"),
            tuple((key, label[0], label[1]) for key, label in company.labels.items()),
            tuple((key, d.method, d.base, d.note) for key, d in company.drivers.items()),
            tuple(company.scenario_drivers))


def scenario_case_or_none(text) -> str | None:
    try:
        return scenario_case(text)
    except InputError:
        return None


def reading(lines: list[Line], key: str) -> list[Line]:
    """The lines `key` reads, directly or through others, in any year (itself included), in order."""
    from udfs import formula as fx
    by_key = {line.key: line for line in lines}
    needed, todo = set(), [key]
    while todo:
        current = todo.pop()
        if current in needed or current not in by_key:
            continue
        needed.add(current)
        line = by_key[current]
        for text in (line.formula, line.implied):
            if text:
                todo += [ref.key for ref in fx.refs(fx.parse(text))]
    return [line for line in lines if line.key in needed]


def company_lines(company: Company) -> list[Line]:
    """The company's layout lines and the market and rating lines in its currencies."""
    return spec.model_lines(company.layout, company.facts.get("quote_currency"), company.facts.get("reporting_currency"))


SCENARIO_KEY = "scenario"


def scenario_key(case: str, line_key: str) -> str:
    return f"{case}_{driver_key(line_key)}"


def scenario_lines(lines: list[Line], company: Company) -> list[Line]:
    """With scenarios, each varied driver reads the chosen case (ER_SCENARIO) from its base,
    bear and bull values, which become inputs of their own; one cell chooses the case."""
    if not company.scenario_drivers:
        return lines
    varied = {driver_key(k): k for k in company.scenario_drivers}
    out = []
    for line in lines:
        if line.key in varied:
            cases = ", ".join(scenario_key(c, varied[line.key]) for c in ("base", *SCENARIO_CASES))
            line = replace(line, formula=f"scenario({SCENARIO_KEY}, {cases})",
                           note=(line.note + " " if line.note else "") + "Chosen by the scenario cell; values on 情景.")
        out.append(line)
    names = {"base": ("基准", "Base"), "bear": ("悲观", "Bear"), "bull": ("乐观", "Bull")}
    by_key = {line.key: line for line in lines}
    for key in company.scenario_drivers:
        driver = by_key[driver_key(key)]
        for case in ("base", *SCENARIO_CASES):
            zh, en = names[case]
            out.append(Line(scenario_key(case, key), "scenarios", f"{zh}：{driver.label_zh}", f"{en}: {driver.label_en}",
                            fmt=driver.fmt, history=FORECAST_ONLY))
    out.append(Line(SCENARIO_KEY, "drivers", "情景（base / bear / bull）", "Scenario (base / bear / bull)", fmt="text",
                    scalar=True))
    return out


def scenario_inputs(company: Company) -> dict:
    """The company's inputs with each varied driver's base, bear and bull values."""
    if not company.scenario_drivers:
        return company.inputs
    inputs = dict(company.inputs)
    for key in company.scenario_drivers:
        for year in (y.label for y in company.forecast_years):
            base = company.inputs[(driver_key(key), year)]
            inputs[(scenario_key("base", key), year)] = base
            for case in SCENARIO_CASES:
                inputs[(scenario_key(case, key), year)] = company.scenarios.get(case, {}).get((key, year))
    return inputs


def driver_sensitivity(company: Company, driver_a: str, values_a, driver_b: str, values_b,
                       line: str, year: str, scenario: str | None = None) -> list[list]:
    """`line` in `year` for every pair of values of two drivers, each applied to every forecast
    year, by re-running the whole model per point (the engine takes milliseconds): rows follow
    `values_a`, columns `values_b`."""
    from udfs.sensitivity import two_way
    forecast = [y.label for y in company.forecast_years]
    for driver in (driver_a, driver_b):
        if driver not in company.drivers:
            raise DataError(f"{driver!r} is not a driver of {company.path.name}; drivers: {', '.join(company.drivers)}")
    # Each point is `build_model(company with the two drivers set, scenario=scenario).value(line,
    # year)`; the lines, the one-value inputs and the lines neither driver reaches are the same at
    # every point, so they are made once, and per point only the lines the drivers reach and
    # `line` reads are evaluated again (the others cannot move it: ratios, valuation, warnings).
    lines = model_lines(company)
    scalars = _scalars(company, scenario)
    base_inputs = scenario_inputs(company)
    _refuse_stray(company, lines, base_inputs, None)

    def inputs_at(a, b) -> dict:
        inputs = dict(company.inputs)
        for year_label in forecast:
            inputs[(driver_key(driver_a), year_label)] = a
            inputs[(driver_key(driver_b), year_label)] = b
        return scenario_inputs(replace(company, inputs=inputs))

    # The inputs of a point differ from the company's only in the cells that take a driver's
    # value (the driver's own, and the scenario case that copies it): found once, by a point of
    # two markers, and set per point on a copy of the company's inputs.
    probe = inputs_at(_AXIS_A, _AXIS_B)
    takes = {cell: value for cell, value in probe.items() if value is _AXIS_A or value is _AXIS_B}
    if probe.keys() == base_inputs.keys() and all(takes.get(cell) is not None or base_inputs.get(cell, _AXIS_A) is value
                                              for cell, value in probe.items()):
        def point_inputs(a, b) -> dict:
            return {**base_inputs, **{cell: a if marker is _AXIS_A else b for cell, marker in takes.items()}}
        varied_cells = {cell for cell, marker in takes.items()
                        if any(cell not in base_inputs or base_inputs[cell] != v
                               for v in (values_a if marker is _AXIS_A else values_b))}
    else:   # a company whose inputs are made otherwise: every point's inputs whole, compared whole
        point_inputs = inputs_at
        varied_cells = {cell for a in values_a for b in values_b for cell, value in inputs_at(a, b).items()
                        if cell not in base_inputs or base_inputs[cell] != value}
    varied = {key for key, _ in varied_cells}
    points = {(a, b): point_inputs(a, b) for a in values_a for b in values_b}
    base = evaluate(lines, company.years, base_inputs, scalars)
    reached = downstream(lines, varied) & upstream(lines, {line})

    through = None if any(l.key == line and l.scalar for l in lines) else year   # a yearly line: no later year moves it
    # The years before the first one a driver is set in keep the base run's values too, unless a
    # line evaluated again reads a later year than its own.
    labels = [y.label for y in company.years]
    set_in = [labels.index(y) for _, y in varied_cells if y in labels]
    since = labels[min(set_in)] if set_in and not reached & reads_ahead(lines) else None

    def run(a, b):
        return evaluate(lines, company.years, points[(a, b)], scalars, unchanged=base, recompute=reached,
                        through=through, since=since).get(line, year)
    return two_way(run, list(values_a), list(values_b))


class _Marker:
    """A value no input can hold: where a sensitivity point's drivers land among the inputs."""


_AXIS_A, _AXIS_B = _Marker(), _Marker()


def sensitivity_inputs(company: Company, driver_a: str, driver_b: str, line: str, scenario: str | None = None,
                       quote_keys=frozenset()) -> set[str]:
    """The lines `driver_sensitivity(company, driver_a, ..., driver_b, ..., line, ...)` reads,
    directly or through other lines in any year: what the table must be recomputed for when one
    of them changes (each line's inputs: its reported figures, its drivers' values).

    One exception is made for the quote (`quote_keys`: the price, its date, FX and benchmark a
    refresh writes, each a validated positive number): where an operand's value cannot matter at
    any point of the grid, the lines it reads that read nothing but the quote are not followed
    (its other lines are: a change to them re-runs the table). That is a factor of a product whose
    other factor is exactly zero in every year (shares bought back and issued: 0, times the price
    less the par value), and a function's argument declared read only when another argument is
    positive, that one being empty or not positive in every year (the treasury-stock method's
    price without an exercise price: `udfs.registry.Arg.read_only_if_positive`); in both cases the
    operand must read only the quote and inputs neither driver reaches and be a finite number now,
    since an error would pass through. Without that, every new price would re-run a table that
    cannot move."""
    from udfs import formula as fx
    from udfs.functions import BY_FORMULA_NAME, GUARDED

    lines = {l.key: l for l in model_lines(company)}
    if line not in lines:
        raise DataError(f"{line!r} is not a line of {company.path.name}")
    # the inputs that differ between points of the grid: the two drivers and, with scenarios,
    # the base case they set
    varied = {key for driver in (driver_a, driver_b) for key in (driver_key(driver), scenario_key("base", driver))}
    inputs = scenario_inputs(company)
    scalars = _scalars(company, scenario)
    years = company.years
    base = None   # the model as it stands, for the value of an operand the quote reaches (computed when first needed)
    quote = set(quote_keys)

    def formulas(key):
        own = lines[key]
        return [fx.parse(text) for text in {own.formula, own.implied} if text]

    def is_input(key):
        own = lines[key]
        return key not in varied and own.formula is None and own.implied is None

    def plain_inputs(node, seen) -> set:
        """The input lines a formula reads through any chain of lines."""
        found, pending = set(), [r.key for r in fx.refs(node)]
        while pending:
            key = pending.pop()
            if key in seen or key not in lines:
                continue
            seen.add(key)
            trees = formulas(key)
            if not trees:
                found.add(key)
            for tree in trees:
                pending.extend(r.key for r in fx.refs(tree))
        return found

    def inputs_everywhere(node, holds) -> bool:
        """Whether `node` reads only input lines neither driver reaches (so it is the same at
        every point of the grid) and `holds` its value in every year."""
        if not all(r.key in lines and is_input(r.key) for r in fx.refs(node)):
            return False
        for pos in range(len(years)):
            def lookup(key, lag, pos=pos):
                if lines[key].scalar:
                    return scalars.get(key)
                return inputs.get((key, years[pos - lag].label)) if pos - lag >= 0 else ERR_NA
            if not holds(fx.evaluate(node, lookup, GUARDED)):
                return False
        return True

    def is_number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def zero_everywhere(node) -> bool:
        return (not any(lines[r.key].scalar for r in fx.refs(node) if r.key in lines)
                and inputs_everywhere(node, lambda value: is_number(value) and value == 0))

    def never_positive(node) -> bool:   # empty or a number <= 0: what the guard and the function take as not given
        return inputs_everywhere(node, lambda value: value is None or (is_number(value) and value <= 0))

    def quote_only(key) -> bool:
        """A line that reads nothing but the quote."""
        leaves = plain_inputs(fx.Ref(key, 0), set())
        return bool(leaves) and leaves <= quote

    def fixed_number_but_quote(node) -> bool:
        """Whether `node` reads the quote, otherwise only inputs neither driver reaches, and is
        a finite number now in every year."""
        nonlocal base
        leaves = plain_inputs(node, set())
        if not leaves & quote or not all(key in quote or is_input(key) for key in leaves):
            return False
        if base is None:   # the values alone: a run without its checks and warnings
            run_lines, run_yearly, run_scalars = run_inputs(company, scenario)
            _refuse_stray(company, run_lines, run_yearly, None)
            base = evaluate(run_lines, years, run_yearly, run_scalars)
        for year in years:
            value = fx.evaluate(node, lambda key, lag: base.get(key, year), GUARDED, vectors=None)
            if not is_number(value) or not math.isfinite(value):
                return False
        return True

    def unread(call) -> set:
        """The positions of `call`'s arguments whose value cannot matter at any point of the grid."""
        spec = BY_FORMULA_NAME.get(call.function)
        if spec is None:
            return set()
        position = {arg.name: i for i, arg in enumerate(spec.args)}
        found = set()
        for i, arg in enumerate(spec.args[:len(call.args)]):
            gate = position.get(arg.read_only_if_positive)
            if gate is None:
                continue
            if (gate >= len(call.args) or never_positive(call.args[gate])) and fixed_number_but_quote(call.args[i]):
                found.add(i)
        return found

    read: set = set()
    beside_quote: set = set()   # the lines an operand whose value cannot matter reads, but for the quote's
    pending = [line]

    def follow_but_quote(node) -> None:
        waiting = [r.key for r in fx.refs(node)]
        while waiting:
            key = waiting.pop()
            if key in beside_quote or key not in lines or quote_only(key):
                continue
            beside_quote.add(key)
            for tree in formulas(key):
                waiting.extend(r.key for r in fx.refs(tree))

    while pending:
        key = pending.pop()
        if key in read or key not in lines:
            continue
        read.add(key)
        trees = formulas(key)
        while trees:
            node = trees.pop()
            if isinstance(node, fx.Ref):
                pending.append(node.key)
            elif isinstance(node, fx.Form):
                pending.extend(node.keys)
            elif isinstance(node, fx.BinOp) and node.op == "*":
                pair = next(((z, other) for z, other in ((node.left, node.right), (node.right, node.left))
                             if zero_everywhere(z) and fixed_number_but_quote(other)), None)
                if pair is None:
                    trees.extend((node.left, node.right))
                else:
                    trees.append(pair[0])
                    follow_but_quote(pair[1])
            elif isinstance(node, fx.Call):
                skipped = unread(node)
                trees.extend(arg for i, arg in enumerate(node.args) if i not in skipped)
                for i in skipped:
                    follow_but_quote(node.args[i])
            else:
                trees.extend(fx.operands(node))
    return read | beside_quote


# The smallest move of EPS the sensitivity table shows: its cells are formatted to the cent
# (workbook/formats.py, "eps").
EPS_SHOWN = 0.01
SENSITIVITY_STEPS = (-0.04, -0.02, 0.0, 0.02, 0.04)


def _eps_with_driver(company: Company, key: str, value: float, year: str):
    """EPS in `year` with one driver set to `value` in every forecast year, as the table's point
    sets it."""
    inputs = dict(company.inputs)
    for forecast_year in company.forecast_years:
        inputs[(driver_key(key), forecast_year.label)] = value
    return build_model(replace(company, inputs=inputs), only="val_eps").value("val_eps", year)


def default_sensitivity(company: Company) -> tuple[str, list, str, list]:
    """The two drivers a new model's sensitivity table uses: the first two whose values are
    rates and whose range moves the first forecast year's EPS by at least what the table shows
    (a working-capital share that never reaches profit would fill its row with one figure),
    each stepped two points either side of its first forecast year's value."""
    rates = [key for key, d in company.drivers.items() if METHODS[d.method].driver_format == "pct"]
    first = company.forecast_years[0].label
    if not rates or not any(l.key == "val_eps" for l in model_lines(company)):
        return ()
    axes = []
    for key in rates:
        centre = company.inputs[(driver_key(key), first)]
        values = [centre + step for step in SENSITIVITY_STEPS]
        low, high = (_eps_with_driver(company, key, value, first) for value in (values[0], values[-1]))
        if isinstance(low, float) and isinstance(high, float) and abs(high - low) >= EPS_SHOWN:
            axes += [key, values]
        if len(axes) == 4:
            return tuple(axes)
    return ()
