"""A company's model: the spec bound to its drivers, evaluated, checked, and shown as tables."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from udfs.engine import Line, Values, bind_drivers, evaluate, run_checks

from . import spec
from .company import Company, load


@dataclass
class Model:
    company: Company
    lines: list[Line]
    values: Values
    checks: list[dict]
    overrides: dict = field(default_factory=dict)

    def line(self, key: str) -> Line:
        return next(line for line in self.lines if line.key == key)

    def value(self, key: str, year: str | None = None):
        return self.values.get(key, year)

    @property
    def balanced(self) -> bool:
        return all(c["passed"] for c in self.checks)

    def frame(self, table: str, english: bool = False) -> pd.DataFrame:
        """One table's yearly lines as a DataFrame: rows are lines (indexed by key, with the
        label in a column), columns the year labels; NM and error values stay as text."""
        rows = [line for line in self.lines if line.table == table and not line.scalar]
        years = [y for y in self.values.years if y.kind != "base"]
        data = {y.label: [self.values.get(line.key, y.label) for line in rows] for y in years}
        frame = pd.DataFrame(data, index=pd.Index([line.key for line in rows], name="line"))
        frame.insert(0, "label", [line.label_en if english else line.label_zh for line in rows])
        return frame

    def frames(self, english: bool = False) -> dict[str, pd.DataFrame]:
        """Every yearly table: summary, income, balance, cashflow, ratios, drivers."""
        tables = (spec.INCOME, spec.BALANCE, spec.CASHFLOW, spec.RATIOS, spec.DRIVERS)
        out = {"summary": self.summary_frame(english)}
        out.update({table: self.frame(table, english) for table in tables})
        return out

    def summary_frame(self, english: bool = False) -> pd.DataFrame:
        """The summary table as the layout prints it, with its own labels."""
        rows = self.company.layout.summary_rows
        by_key = {line.key: line for line in self.lines}
        years = [y for y in self.values.years if y.kind != "base"]
        keys = [key for key, _ in rows]
        frame = pd.DataFrame({y.label: [self.values.get(k, y.label) for k in keys] for y in years},
                             index=pd.Index(keys, name="line"))
        frame.insert(0, "label", [by_key[k].label_en if english else (label or by_key[k].label_zh) for k, label in rows])
        return frame


def build_model(company: Company | None = None, overrides: dict | None = None,
                scalar_overrides: dict | None = None) -> Model:
    """Evaluate a company's model. `overrides[(key, year)]` are values typed over formulas;
    `scalar_overrides` replace market or rating inputs (a new price, a target price)."""
    company = company or load()
    named = [replace(line, label_zh=company.labels[line.key][0], label_en=company.labels[line.key][1])
             if line.key in company.labels else line for line in company_lines(company)]
    lines = bind_drivers(named, company.drivers)
    scalars = dict(company.scalar_inputs)
    scalars.update(scalar_overrides or {})
    values = evaluate(lines, company.years, company.inputs, scalars, overrides)
    checks = run_checks(list(company.layout.checks), lines, values)
    return Model(company, lines, values, checks, dict(overrides or {}))


def company_lines(company: Company) -> list[Line]:
    """The company's layout lines and the market and rating lines in its currencies."""
    return spec.model_lines(company.layout, company.facts.get("quote_currency"), company.facts.get("reporting_currency"))
