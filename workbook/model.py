"""A company's model: the spec bound to its drivers, evaluated, checked, and shown as tables."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING


from udfs.engine import BASE, FORECAST_ONLY, Line, Values, bind_drivers, driver_key, evaluate, run_checks, run_warnings
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
    named = [replace(line, label_zh=company.labels[line.key][0], label_en=company.labels[line.key][1])
             if line.key in company.labels else line for line in company_lines(company)]
    lines = scenario_lines(bind_drivers(named, company.drivers), company)
    scalars = dict(company.scalar_inputs)
    scalars.update(scalar_overrides or {})
    if company.scenario_drivers:
        try:  # read as the scenario cell is read everywhere (udfs.selection.scenario_case)
            scalars["scenario"] = scenario_case(scenario if scenario is not None else scalars.get("scenario"))
        except InputError as exc:
            raise ScenarioError(str(exc)) from None
    elif scenario is not None and scenario_case_or_none(scenario) != "base":
        raise ScenarioError(f"{company.path.name} defines no scenarios ([scenarios] in the company file)")
    inputs = scenario_inputs(company)
    known = {line.key for line in lines}
    stray = sorted({key for key, _ in inputs if key not in known} | {key for key, _ in (overrides or {}) if key not in known})
    if stray:  # a driver this model does not have would otherwise be silently ignored
        raise DataError(f"{company.path.name}: input for {stray[0]!r}, which is not a line of this model")
    if only is not None:
        lines = reading(lines, only)
        return Model(company, lines, evaluate(lines, company.years, inputs, scalars, overrides), [], dict(overrides or {}))
    values = evaluate(lines, company.years, inputs, scalars, overrides)
    checks = run_checks(list(company.layout.checks), lines, values)
    warnings = run_warnings(list(company.layout.warnings), lines, values)
    return Model(company, lines, values, checks, dict(overrides or {}), warnings)


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
    from dataclasses import replace as _replace

    from udfs.sensitivity import two_way
    forecast = [y.label for y in company.forecast_years]
    for driver in (driver_a, driver_b):
        if driver not in company.drivers:
            raise DataError(f"{driver!r} is not a driver of {company.path.name}; drivers: {', '.join(company.drivers)}")

    def run(a, b):
        inputs = dict(company.inputs)
        for year_label in forecast:
            inputs[(driver_key(driver_a), year_label)] = a
            inputs[(driver_key(driver_b), year_label)] = b
        return build_model(_replace(company, inputs=inputs), scenario=scenario, only=line).value(line, year)
    return two_way(run, list(values_a), list(values_b))


def default_sensitivity(company: Company) -> tuple[str, list, str, list]:
    """The two drivers a new model's sensitivity table uses: the first two whose values are
    rates, each stepped two points either side of its first forecast year's value."""
    rates = [key for key, d in company.drivers.items() if METHODS[d.method].driver_format == "pct"]
    first = company.forecast_years[0].label
    axes = []
    for key in rates[:2]:
        centre = company.inputs[(driver_key(key), first)]
        axes += [key, [centre + step for step in (-0.04, -0.02, 0.0, 0.02, 0.04)]]
    return tuple(axes) if len(axes) == 4 else ()
