"""Derive a company's forecast drivers from a report's printed forecast, so that the model
reproduces the report. Run once per report; its output goes into the company data file, where
the analyst then owns the drivers:

    python -m addin calibrate workbook/data/COMPANY.report.toml --write

First, values for every forecast line are chosen that display exactly as printed wherever the
report's own rounding allows (see `consistent_targets`). Then each driver is solved so that its
line hits that value, given what the model itself computes for the line's base and prior year,
repeated until the drivers stop moving.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from udfs.engine import driver_key
from udfs.errors import DataError
from udfs.forecast import METHODS

# Decimals a solved value is kept to, by the line's number format: a rate as the rate methods
# keep it, a per-share amount to a hundredth of a fen, money to the cent.
RATIO_WEIGHT = 0.01
PLACES = {"pct": METHODS["share"].places, "eps": 6}
# The share of a printed figure's half unit the fit aims within, a margin left for the drivers'
# rounding (a driver kept to its places moves its line by a little).
WITHIN = 0.9
# How many places finer than usual money drivers may be kept, where their rounding adds up to
# more than that margin (see `calibrate`).
MORE_PLACES = 2


def standalone_targets(company) -> dict[str, str]:
    """Each reconciling driver of the layout -> the one line whose formula reads it, which the
    driver makes land on its print. A driver that moves a balance-sheet line is also read by the
    cash-flow line that carries the same amount: its target is the line outside the cash flow."""
    from udfs import formula as fx
    from workbook import spec

    # Analyst inputs (a cash floor, a tax credit limit, a cost of debt) are kept as given; the
    # reconciling drivers (an implied value in reported years, or marked `calibrated`) are solved.
    standalone = [l.key for l in company.layout.lines if l.table == spec.DRIVERS and (l.implied or l.key in company.layout.calibrated)]
    targets = {}
    for key in standalone:
        readers = [l for l in company.layout.lines if l.formula and any(r.key == key for r in fx.refs(fx.parse(l.formula)))]
        if len(readers) > 1:
            readers = [l for l in readers if l.table != spec.CASHFLOW]
        readers = [l.key for l in readers]
        if len(readers) != 1:
            raise DataError(f"reconciling driver {key!r} must be read by exactly one line, is read by {readers}")
        targets[key] = readers[0]
    return targets


def printed_lines(report: dict) -> dict[str, list[float]]:
    lines = {}
    for table in ("income", "balance", "cashflow"):
        for row in report.get(table, []):
            lines.setdefault(row["key"], [float(v) for v in row["values"]])
    return lines


def consistent_targets(report: dict, company, forecast: list[str], misses: dict | None = None,
                       cache: dict | None = None) -> tuple[dict, dict]:
    """Values for the forecast lines that display as printed wherever the print allows it.

    Printed parts and totals often disagree by a unit of rounding (segments summing to 475,995
    against a printed 475,994). Behind every print is an interval (475,994 is [475,993.5,
    475,994.5)); this finds values for the driven lines and reconciling drivers such that every
    printed line of the forecast years lands inside its interval, by linear programming (the
    statements are linear in those values). Where no such values exist (a real disagreement of
    the report with itself), it minimises how far outside the intervals the lines land.
    Returns (line targets, standalone driver values).
    """
    import numpy as np
    from dataclasses import replace
    from scipy.optimize import linprog

    from workbook.model import build_model

    labels = report["source"]["years"]
    # Every printed forecast figure the model computes: the statements, and the summary and
    # ratio tables (growth rates, margins, per-share figures), at its printed precision.
    model_keys = {line.key for line in company.layout.lines}
    printed = {}
    for table in ("income", "balance", "cashflow", "summary", "ratios"):
        for row in report.get(table, []):
            scale = 100 if row.get("percent") else 1
            for year, v in zip(labels, row["values"]):
                if year in forecast and v is not None and v == v and row["key"] in model_keys:
                    figure = (float(v) / scale, int(row.get("decimals", 0)) + (2 if scale == 100 else 0))
                    known = printed.get((row["key"], year))
                    # the same line printed twice: the finer print, where it rounds to the coarser
                    if known is None or (figure[1] > known[1] and abs(figure[0] - known[0]) <= 0.5 * 10 ** -known[1] + 1e-12):
                        printed[(row["key"], year)] = figure
    # A printed figure the report's own definitions cannot produce from its other figures (a
    # finding beyond rounding) is no target: fitting it would bend the lines it is made of.
    beyond = unreachable_prints(report, company)
    outputs = sorted(key for key in printed if key not in beyond and key[0] not in company.layout.not_targets)
    p = printed_lines(report)
    # Driven lines are free: a printed one starts from its print, one the note does not print but
    # the print implies (operating costs before D&A) from that; any other (a dividend per share
    # the note is silent on) keeps the file's driver.
    # A driven line marked `calibrated` (dividends per share, which the retained earnings the
    # note prints imply) is free too, from where the file's driver puts it.
    implied = {l.key for l in company.layout.lines if l.implied}
    calibrated = company.layout.calibrated
    start = build_model(company)
    free_lines = [(line, year) for line, driver in company.drivers.items() if not driver.keep for year in forecast
                  if line in p or line in implied or line in calibrated]
    # Reconciling drivers, and the last reported value of a line notes never print that the
    # forecast implies (the dividend per share declared on the last reported year, paid in the
    # first forecast year), are solved alongside.
    reported_years = [y.label for y in company.years if y.kind == "actual"]
    free_drivers = [(key, year) for key in standalone_targets(company) for year in forecast] \
        + [(key, reported_years[-1]) for key in sorted(calibrated & set(company.layout.reported_defaults)) if reported_years]
    x0 = np.array([p[line][labels.index(year)] if line in p else _number(start.value(line, year)) if line in calibrated
                   else _from_print(company, line, year, p, labels) for line, year in free_lines]
                  + [company.inputs[(key, year)] for key, year in free_drivers], dtype=float)
    x0[~np.isfinite(x0)] = 0.0   # a line the note leaves blank in that year starts from nothing
    if not len(x0):
        return {}, {}

    def evaluate_on(x, cells):
        inputs = dict(company.inputs)
        inputs.update({cell: x[len(free_lines) + i] for i, cell in enumerate(free_drivers)})
        overrides = {cell: x[i] for i, cell in enumerate(free_lines)}
        model = build_model(replace(company, inputs=inputs), overrides)
        return np.array([_number(model.value(key, year)) for key, year in cells], dtype=float)

    f0 = evaluate_on(x0, outputs)
    numeric = np.isfinite(f0)  # an output the model shows as NM or an error cannot be fitted
    outputs = [o for o, ok in zip(outputs, numeric) if ok]
    f0 = f0[numeric]
    if not outputs:
        return {cell: float(x0[i]) for i, cell in enumerate(free_lines)}, \
            {cell: float(x0[len(free_lines) + i]) for i, cell in enumerate(free_drivers)}
    fitted = list(outputs)

    # The statements are linear in these values (ratios nearly so): a Jacobian measured for the
    # same variables and outputs on an earlier pass is reused (`cache`), which halves the builds.
    signature = (tuple(free_lines), tuple(free_drivers), tuple(fitted))
    if cache is not None and cache.get("signature") == signature:
        jacobian = cache["jacobian"]
    else:
        columns = _Columns(company, free_lines, free_drivers, x0, fitted)
        jacobian = np.column_stack([columns.moved(j) - f0 for j in range(len(x0))])
        jacobian[~np.isfinite(jacobian)] = 0.0   # a move that makes an output NM: no linear effect to fit
        if cache is not None:
            cache.update(signature=signature, jacobian=jacobian)
    target = np.array([printed[o][0] for o in outputs])
    half = np.array([WITHIN * 0.5 * 10 ** -printed[o][1] for o in outputs])
    n, m = len(x0), len(outputs)
    # Where the print cannot all hold (a report whose cash flow does not tie to its balance
    # sheet), the analyst's inputs and the balance sheet are kept and the derived cash-flow
    # lines give way: missing a driven line's or a balance-sheet line's print costs ten times more.
    driven = set(company.drivers)
    balance = {l.key for l in company.layout.lines if l.table == "balance"}
    # Slack is counted in units of each figure's last printed digit, so that missing 30.1% by
    # 0.1 point weighs as much as missing 475,994 by one.
    # The summary and ratio tables only break ties between values the statements allow: their
    # definitions are often undisclosed (EV/EBITDA, ROIC), and a statement line must not bend to them.
    statements = {l.key for l in company.layout.lines if l.table in ("income", "balance", "cashflow")}
    weights = np.array([(10.0 if key in driven or key in balance else 1.0 if key in statements else RATIO_WEIGHT)
                        / 10 ** -printed[(key, year)][1] for key, year in outputs])
    # Variables: the moves up and down of each free value (n each, >= 0), then the slack of each
    # output (m, >= 0). Minimise the weighted slack, then the moves: among values
    # that fit the print equally well, the ones nearest the printed lines themselves (4,000
    # rather than 3,999.55).
    a_upper = np.hstack([jacobian, -jacobian, -np.eye(m)])
    a_lower = np.hstack([-jacobian, jacobian, -np.eye(m)])
    scale = np.maximum(1.0, np.abs(x0))
    a_ub = np.vstack([a_upper, a_lower])
    # A printed 0 is not a -0 (the note would print that, and the reader folds it away): a line
    # printed 0 stays at or above zero, so that the template does not show "-0" under a "0".
    low = np.where(target == 0, 1e-7, target - half)
    b_ub = np.concatenate([target + half - f0, -(low - f0)])
    bounds = [(0, None)] * (2 * n + m)
    # Two passes, so that the tie-break is not lost in the solver's tolerance: first the least
    # weighted miss, then, holding that, the smallest relative moves.
    fit = linprog(np.concatenate([np.zeros(2 * n), weights]), A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if not fit.success:
        raise DataError(f"calibration found no drivers that reproduce the note ({fit.message})")
    hold = np.concatenate([np.zeros(2 * n), weights])[None, :]
    result = linprog(np.concatenate([1 / scale, 1 / scale, np.zeros(m)]), A_ub=np.vstack([a_ub, hold]),
                     b_ub=np.concatenate([b_ub, [fit.fun + 1e-6 * max(1.0, fit.fun)]]), bounds=bounds, method="highs")
    if not result.success:
        result = fit   # the tie-break did not solve cleanly: the best fit without it
    x = x0 + result.x[:n] - result.x[n:2 * n]
    if misses is not None:  # the printed figures no consistent set of values can reach, and by how much
        slack = result.x[2 * n:]
        misses.update({o: float(slack[i]) for i, o in enumerate(outputs) if slack[i] > 1e-9})
    line_targets = {cell: float(x[i]) for i, cell in enumerate(free_lines)}
    driver_values = {cell: float(x[len(free_lines) + i]) for i, cell in enumerate(free_drivers)}
    return line_targets, driver_values


class _Columns:
    """The outputs with one free value moved by 1, column by column of the Jacobian, each the
    same figures a whole run of the model gives (`build_model` of the company with the value
    moved): the engine re-evaluates only the lines the moved value reaches and the outputs
    read, from the year it is in (the earlier years cannot move, unless a line among them reads
    a later year), and keeps every other value from one run at the starting point. A column
    thus costs a part of a run, not a whole one with its checks and warnings (about 650 runs
    for a note's calibration, three quarters of an import)."""

    def __init__(self, company, free_lines: list, free_drivers: list, x0, outputs: list):
        from dataclasses import replace

        from udfs.engine import evaluate, reads_ahead, upstream
        from workbook.model import run_inputs
        self.company, self.free_lines, self.free_drivers, self.outputs = company, free_lines, free_drivers, outputs
        # Plain floats, as the model's own inputs are: the same IEEE values as numpy's, on the
        # engine's short way for floats.
        self.x0 = [float(v) for v in x0]
        self.replace = replace
        self.lines, self.inputs, self.scalars = run_inputs(self._company(self.x0))
        self.overrides = self._overrides(self.x0)
        self.base = evaluate(self.lines, company.years, self.inputs, self.scalars, self.overrides)
        self.read = upstream(self.lines, {key for key, _ in outputs})
        self.ahead = reads_ahead(self.lines)
        self.labels = [y.label for y in company.years]
        self._reach: dict = {}

    def _company(self, x):
        inputs = dict(self.company.inputs)
        inputs.update({cell: x[len(self.free_lines) + i] for i, cell in enumerate(self.free_drivers)})
        return self.replace(self.company, inputs=inputs)

    def _overrides(self, x) -> dict:
        return {cell: x[i] for i, cell in enumerate(self.free_lines)}

    def moved(self, j: int):
        import numpy as np

        from udfs.engine import downstream, evaluate
        from workbook.model import scenario_inputs
        x = list(self.x0)
        x[j] += 1.0
        if j < len(self.free_lines):
            inputs, overrides = self.inputs, self._overrides(x)
            changed = [self.free_lines[j]]
        elif not self.company.scenario_drivers:   # a driver's value: an input as it is
            cell = self.free_drivers[j - len(self.free_lines)]
            inputs, overrides = {**self.inputs, cell: x[j]}, self.overrides
            changed = [cell]
        else:   # through the company's inputs, as its scenarios read them
            inputs, overrides = scenario_inputs(self._company(x)), self.overrides
            changed = [cell for cell, value in inputs.items() if self.inputs.get(cell) != value]
            changed += [cell for cell in self.inputs if cell not in inputs]
        keys = frozenset(key for key, _ in changed)
        recompute = self._reach.get(keys)
        if recompute is None:
            recompute = self._reach[keys] = downstream(self.lines, set(keys)) & self.read
        positions = [self.labels.index(year) for _, year in changed if year in self.labels]
        since = None if recompute & self.ahead or not positions else self.labels[min(positions)]
        values = evaluate(self.lines, self.company.years, inputs, self.scalars, overrides,
                          unchanged=self.base, recompute=recompute, since=since)
        return np.array([_number(values.get(key, year)) for key, year in self.outputs], dtype=float)


def unreachable_prints(report: dict, company) -> set[tuple[str, str]]:
    """(line, year) of every printed figure that disagrees beyond rounding with its definition."""
    from workbook.report import Report, findings
    return {(f.key, f.year) for f in findings(company, Report(company.path, report))
            if not f.within_rounding and f.kind == "definition"}


def _from_print(company, key: str, year: str, printed: dict, labels: list) -> float:
    """A driven line the note does not print, made from the print by the line's `implied`
    formula (costs before D&A are the printed costs with D&A taken out), so that calibration
    starts from the same place however the file's drivers stand and gives the same drivers
    when run on its own output."""
    from udfs import formula as fx
    from udfs.functions import BY_FORMULA_NAME
    line = next(l for l in company.layout.lines if l.key == key)
    position = labels.index(year)
    functions = {name: spec.impl for name, spec in BY_FORMULA_NAME.items()}

    def figure(ref, lag):   # a line the note does not print (a cut note's costs) gives nothing: nan, started from 0
        values = printed.get(ref)
        return values[position - lag] if values is not None and 0 <= position - lag < len(values) else float("nan")
    return _number(fx.evaluate(fx.parse(line.implied), figure, functions))


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def calibrate(report: dict, company_path: Path, rounds: int = 8, reported: dict | None = None) -> dict[str, dict]:
    """Drivers (TOML-ready tables) that make the company's model display the report's print;
    `reported`, when given, receives {(line, last reported year): value} for the lines notes
    never print whose last reported value the forecast implies (the layout's `calibrated` lines
    with a `reported_default`), for the company file's [actual] table."""
    from workbook import spec
    from workbook.company import load

    labels = report["source"]["years"]
    company = load(company_path)
    forecast = [y.label for y in company.forecast_years]
    formats = {l.key: l.fmt for l in company.layout.lines}
    # Among values that fit the print equally well the fit prefers those nearest where it starts,
    # so it is repeated from its own result until that stops moving: the drivers it writes are
    # then what it derives again from them (a committed file is its own calibration).
    # money to the cent, or two places finer than the note prints (a note printing 1,765.78 needs
    # drivers kept to 1e-4, or their rounding moves a line off its print; a line it does not print
    # at the precision of its table's print); rates to the places of the rate methods
    decimals = money_decimals(report, company)
    targets_of = standalone_targets(company)

    def money_places(key: str) -> int:
        return METHODS["fixed"].places + decimals.get(targets_of.get(key, key), 0)
    for _ in range(4):
        line_targets, driver_values = consistent_targets(report, company, forecast)
        moved = False
        for (key, year), value in driver_values.items():  # a rate to the places of the rate methods, money finer than printed
            value = round(value, PLACES[formats[key]] if formats[key] in PLACES else money_places(key))
            moved |= value != company.inputs[(key, year)]
            company.inputs[(key, year)] = value
        if not moved:
            break
    else:
        raise DataError("calibration did not settle: the reconciling drivers still move after 4 fits")
    labels = [y.label for y in company.years]
    # Each driver kept to its places moves its line by up to half its last place; a total of many
    # driven lines (cash, which every balance reaches through the cash flow) gathers those moves and
    # can leave the print the fit reached. Where finer drivers bring back more of it, they are kept
    # one place finer (a figure they do not bring back was not lost to rounding).
    start = dict(company.inputs), {line: list(driver.values) for line, driver in company.drivers.items()}

    def solve(extra: int) -> None:   # each try from the same start, so the result is the same as a fresh run's
        company.inputs.clear()
        company.inputs.update(start[0])
        for line, driver in company.drivers.items():
            driver.values = list(start[1][line])
        _solve_drivers(company, line_targets, forecast, labels, decimals, rounds, extra)
        _no_negative_zeros(company, line_targets, forecast, decimals, extra)
    best = None
    for extra in range(MORE_PLACES + 1):
        solve(extra)
        lost = len(_lost_to_rounding(report, company, line_targets, forecast))
        if best is None or lost < best[0]:
            best = (lost, extra)
        if not lost:
            break
    if best[1] != extra:
        solve(best[1])
    if reported is not None:
        reported.update({(key, year): company.inputs[(key, year)] for key in company.layout.calibrated
                         for year in [y.label for y in company.years if y.kind == "actual"][-1:]
                         if key in company.layout.reported_defaults})
    out = {}
    notes = raw_driver_notes(company_path)
    for line, driver in company.drivers.items():
        entry = {"method": driver.method}
        if driver.base:
            entry["base"] = driver.base
        entry["values"] = dict(zip(forecast, driver.values))
        if driver.note:
            entry["note"] = driver.note
        if driver.keep:
            entry["keep"] = True
        out[line] = entry
    for key in (l.key for l in company.layout.lines if l.table == spec.DRIVERS):
        out[key] = {"method": "input", "values": {y: company.inputs[(key, y)] for y in forecast}}
        if notes.get(key):
            out[key]["note"] = notes[key]
    return out


def _solve_drivers(company, line_targets: dict, forecast: list[str], labels: list[str], decimals: dict,
                   rounds: int, extra: int) -> None:
    """Each driven line's driver, solved so that the line lands on its target given what the model
    computes for its base and prior year, repeated `rounds` times; money drivers kept to the places
    of their method, the note's decimals, and `extra`."""
    from workbook.model import build_model
    for _ in range(rounds):
        model = build_model(company)
        for line, driver in company.drivers.items():
            if driver.keep or (line, forecast[0]) not in line_targets:
                continue
            values = []
            for year in forecast:
                prior = model.value(line, labels[labels.index(year) - 1])
                method = METHODS[driver.method]
                base_value = model.value(driver.base, year) if driver.base else None
                try:
                    for key in method.base_less:  # the part of the base the formula takes off (losses used)
                        base_value -= model.value(key, year)
                    places = method.places + (decimals.get(line, 0) + extra if method.driver_format in ("money", "money2") else 0)
                    values.append(round(method.invert(line_targets[(line, year)], prior, base_value), places))
                except (ZeroDivisionError, TypeError):
                    # its base is not computed yet (still zero in the first round): keep the value
                    values.append(driver.values[forecast.index(year)])
            driver.values = values
            for year, value in zip(forecast, values):
                company.inputs[(driver_key(line), year)] = value


def _lost_to_rounding(report: dict, company, line_targets: dict, forecast: list[str]) -> list[tuple[str, str]]:
    """The printed statement figures of the forecast that the fitted values display as printed and
    the model with its rounded drivers does not."""
    from udfs.findings import displays_as
    from workbook.model import build_model
    fitted, model = build_model(company, line_targets), build_model(company)
    labels = report["source"]["years"]
    lost = []
    for table in ("income", "balance", "cashflow"):
        for row in report.get(table, []):
            scale = 100 if row.get("percent") else 1
            for year, printed in zip(labels, row["values"]):
                if year not in forecast or printed is None or printed != printed:
                    continue
                shows = [isinstance(v, float) and displays_as(v * scale, float(printed), int(row.get("decimals", 0)))
                         for v in (fitted.value(row["key"], year), model.value(row["key"], year))]
                if shows[0] and not shows[1]:
                    lost.append((row["key"], year))
    return lost


def money_decimals(report: dict, company) -> dict[str, int]:
    """Each statement line -> the decimals the note shows it to: its own print, or, for a line the
    note does not print (an unprinted rest of a section, costs before D&A), the precision the note
    prints its table's money in (the most common among its rows). A driver kept to the cent under
    a note printing cents would move such a line, and every total it is part of, off the print."""
    from collections import Counter
    decimals: dict[str, int] = {}
    by_table: dict[str, Counter] = {}
    for table in ("income", "balance", "cashflow"):
        for row in report.get(table, []):
            if not row.get("percent"):
                places = int(row.get("decimals", 0))
                decimals[row["key"]] = max(decimals.get(row["key"], 0), places)
                by_table.setdefault(table, Counter())[places] += 1
    for line in company.layout.lines:
        if line.key not in decimals and line.table in by_table:
            decimals[line.key] = by_table[line.table].most_common(1)[0][0]
    return decimals


def _no_negative_zeros(company, line_targets: dict, forecast: list[str], decimals: dict, extra: int = 0) -> None:
    """A line printed 0 whose driver, rounded to its places, leaves it a hair below zero (a step
    of -1,361.06 from 1,361.0612) would show "-0" under the note's "0": its driver moves by one
    unit of its last place, towards the side where the line is not negative."""
    from workbook.model import build_model
    model = None
    for line, driver in company.drivers.items():
        if driver.keep:
            continue
        method = METHODS[driver.method]
        places = method.places + (decimals.get(line, 0) + extra if method.driver_format in ("money", "money2") else 0)
        for i, year in enumerate(forecast):
            target = line_targets.get((line, year))
            if target is None or not 0 <= target < 1e-6:
                continue
            model = model or build_model(company)
            value = model.value(line, year)
            if not isinstance(value, float) or not -0.5 * 10 ** -decimals.get(line, 0) < value < 0:
                continue
            original = driver.values[i]
            for move in (10 ** -places, -10 ** -places):
                driver.values[i] = round(original + move, places)
                company.inputs[(driver_key(line), year)] = driver.values[i]
                model = build_model(company)
                if model.value(line, year) >= 0:
                    break
            else:
                driver.values[i] = original
                company.inputs[(driver_key(line), year)] = original
                model = build_model(company)


def raw_driver_notes(company_path: Path) -> dict[str, str]:
    from workbook.tomlfile import read_toml
    return {k: v.get("note", "") for k, v in read_toml(company_path).get("drivers", {}).items() if isinstance(v, dict)}


def toml_value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def to_toml(drivers: dict[str, dict]) -> str:
    blocks = []
    for key, entry in drivers.items():
        blocks.append(f"[drivers.{key}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in entry.items()))
    return "\n".join(blocks)


def _with_drivers(text: str, drivers: dict[str, dict], name: str) -> str:
    """The company file's `text` with its driver tables (one run of [drivers.*] tables, followed
    or not by other tables such as [valuation]) replaced by `drivers`; what follows them is kept."""
    start = text.find("\n[drivers.")
    if start < 0:
        raise DataError(f"{name}: no [drivers.*] tables to replace")
    after = text[start + 1:]
    other = next((i for i in range(len(after)) if after.startswith("\n[", i) and not after.startswith("\n[drivers.", i)), None)
    tail = "" if other is None else after[other + 1:]
    if "\n[drivers." in "\n" + tail:
        raise DataError(f"{name}: the [drivers.*] tables must be one run of tables, not split by [{tail.split(']')[0][1:]}]")
    return text[:start + 1] + to_toml(drivers) + ("\n" + tail if tail else "")


def _with_reported(text: str, values: dict, name: str) -> str:
    """The company file's `text` with {(line, year): value} set in its [actual."YEAR"] tables (a
    figure the forecast implies, such as the last reported DPS), each line replaced or added under
    its year's header; everything else kept as written."""
    for (key, year), value in sorted(values.items()):
        header = re.search(rf'^\[actual\.(?:"{re.escape(year)}"|{re.escape(year)})\][ \t]*$', text, re.M)
        if header is None:
            raise DataError(f"{name}: no [actual.\"{year}\"] table for {key}")
        end = re.search(r"^\[", text[header.end():], re.M)
        block_end = header.end() + (end.start() if end else len(text) - header.end())
        block = text[header.end():block_end]
        line = f"{key} = {toml_value(value)}"
        block, found = re.subn(rf"^{re.escape(key)}\s*=.*$", line, block, count=1, flags=re.M)
        if not found:
            block = block.rstrip("\n") + f"\n{line}\n\n"
        text = text[:header.end()] + block + text[block_end:]
    return text


def write_drivers(company_path: Path, drivers: dict[str, dict], reported: dict | None = None) -> None:
    """Replace the company file's driver tables with `drivers` and set the `reported` figures the
    forecast implies ({(line, year): value}, see `calibrate`) in one write: a temporary file
    renamed into place, the previous file kept as a .bak (refused while an editor holds it
    open); everything else is kept as written."""
    from workbook.files import write_output
    text = _with_drivers(company_path.read_text(encoding="utf-8"), drivers, company_path.name)
    write_output(company_path, _with_reported(text, reported or {}, company_path.name), force=True)


def write_reported(company_path: Path, values: dict) -> None:
    """Set {(line, year): value} in the company file's [actual."YEAR"] tables (see
    `_with_reported`), written as `write_drivers` writes."""
    from workbook.files import write_output
    text = company_path.read_text(encoding="utf-8")
    write_output(company_path, _with_reported(text, values, company_path.name), force=True)


if __name__ == "__main__":  # the command line is the add-in's (addin/commands.toml): one line says where
    print("error: calibration runs as `python -m addin calibrate REPORT.toml [--company COMPANY.toml] [--write]` "
          "(see python -m addin calibrate --help)", file=sys.stderr)
    sys.exit(2)
