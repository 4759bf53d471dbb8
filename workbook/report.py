"""The source report's printed figures (the golden file) and the findings computed from them."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from udfs.engine import FORECAST, bind_drivers
from udfs.findings import Finding, Printed, find, market_cap_finding

from .company import Company
from .spec import currency_zh
from .model import company_lines
from .tomlfile import read_toml

# The tables a report file may carry, in the order a reference reads them; a layout's own
# tables (the summary, the ratio table) are printed under these keys too.
TABLES = ("summary", "income", "balance", "cashflow", "ratios")
STATEMENT_TABLES = ("income", "balance", "cashflow")


@dataclass
class Report:
    path: Path
    data: dict

    @property
    def years(self) -> list[str]:
        return list(self.data["source"]["years"])

    def rows(self, table: str) -> list[dict]:
        return list(self.data.get(table, []))

    def printed(self) -> dict:
        """(table, key, year) -> Printed, for every figure of the four tables."""
        out = {}
        for table in TABLES:
            for row in self.rows(table):
                for year, value in zip(self.years, row["values"]):
                    if value is None or math.isnan(float(value)):
                        continue  # a cell the report leaves empty
                    out[(table, row["key"], year)] = Printed(float(value), int(row.get("decimals", 0)), bool(row.get("percent")))
        return out


def report_path_for(company: Company) -> Path:
    """A company's report file sits beside its data file: NAME.report.toml for NAME.toml."""
    return company.path.with_name(company.path.stem + ".report.toml")


def load_report(path: str | Path) -> Report:
    path = Path(path)
    return Report(path, read_toml(path))


FINDING_TABLES = ["income", "summary", "balance", "cashflow", "ratios", "base"]  # where a definition reads a figure, after its own table


def findings(company: Company, report: Report) -> list[Finding]:
    """Every place where the report's printed figures disagree with each other."""
    lines = bind_drivers(company_lines(company), company.drivers)
    printed, scalars = _print_context(company, report)
    found = find(lines + list(company.layout.report_identities), company.years, printed, scalars, FINDING_TABLES)
    found = [_with_gap_match(f, printed) for f in found]
    market = report.data["market"]
    cap = None
    if all(k in market for k in ("price", "shares_100mn", "market_cap_100mn")):   # a figure not printed is no finding
        cap = market_cap_finding(Printed(market["price"], 2), Printed(market["shares_100mn"], _places(market["shares_100mn"])),
                                 Printed(market["market_cap_100mn"], _places(market["market_cap_100mn"])),
                                 currency_zh(company.facts.get("quote_currency", "")))
    return found + ([cap] if cap else [])


def _print_context(company: Company, report: Report) -> tuple[dict, dict]:
    """The printed figures as the definitions read them, (table, key, year) -> Printed, with the
    base year's figures and the defaults of lines notes never print; and the one-value inputs."""
    printed = report.printed()
    for key, value in company.inputs.items():  # base-year figures the first growth rates need
        line_key, year = key
        if year not in report.years and line_key in company.layout.base_lines:
            printed[("base", line_key, year)] = Printed(value, 0)
    # Lines no note prints (a revolver the model adds) are what the note's figures imply: their default.
    tables = {line.key: line.table for line in company.layout.lines}
    for key, value in company.layout.reported_defaults.items():
        for year in report.years:
            printed.setdefault((tables[key], key, year), Printed(value, 9))
    market = report.data["market"]
    # The note's market figures, where it prints them (a figure it does not print is no finding).
    scalars = {"fx_rate": Printed(market["fx_rate"], _places(market["fx_rate"]))}
    if "shares_100mn" in market:
        scalars["shares"] = Printed(round(market["shares_100mn"] * 100, 6), _places(market["shares_100mn"]) - 2)
    if "price" in market:
        scalars["price"] = Printed(market["price"], 2)
        # The price in the reporting currency, as the P/E lines read it: price x FX, held to the
        # price's printed precision (an FX rate printed to four places moves it less than that).
        scalars["price_local"] = Printed(market["price"] * market["fx_rate"], 2)
    return printed, scalars


def _places(value: float) -> int:
    text = repr(float(value))
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0


@dataclass(frozen=True)
class Mismatch:
    """A printed cell the model does not display as printed, and why."""
    table: str
    key: str
    year: str
    printed: float
    shown: object        # the model's value at the printed precision, or the text it shows
    explanation: str     # empty when nothing explains it

    def line(self) -> str:
        return f"{self.table} {self.key} {self.year}: printed {self.printed:g}, model {self.shown} — {self.explanation or 'UNEXPLAINED'}"


def reproduction(model, report: Report, found: list[Finding]) -> list[Mismatch]:
    """Every printed cell the model does not show as printed, each with the finding or the
    reason that explains it: the report's own disagreement on that cell or on a figure its
    definition reads, or a prior year the report does not print."""
    from udfs import formula as fx
    from udfs.findings import displays_as, round_half_up

    by_key = {line.key: line for line in model.lines}
    for identity in model.company.layout.report_identities:  # their findings explain the lines they read
        by_key.setdefault(f"{identity.key}~{identity.formula}", identity)
    labels = [y.label for y in model.values.years]
    first_year = labels[0]
    findings_at = {}
    for f in found:
        findings_at.setdefault((f.key, f.year), []).append(f)
    out = []
    for (table, key, year), shown in sorted(report.printed().items()):
        if table == "base" or key not in by_key:
            continue
        value = model.value(key, None if by_key[key].scalar else year)
        scale = 100 if shown.percent else 1
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            displayed = round_half_up(value * scale, shown.decimals)
            if displays_as(value * scale, shown.value, shown.decimals):
                continue
        else:
            displayed = value
        out.append(Mismatch(table, key, year, shown.value, displayed, ""))
    mismatched = {(m.key, m.year) for m in out}
    printed = report.printed()
    context = _print_context(model.company, report)

    def off_by(m) -> float:  # the miss in units of the last printed digit
        shown = printed[(m.table, m.key, m.year)]
        return round(abs(m.shown - m.printed) * 10 ** shown.decimals, 6) if isinstance(m.shown, (int, float)) else math.inf
    near: dict = {}       # lines a unit of their last digit off the print, by year
    for m in out:
        if off_by(m) <= 1:
            near.setdefault(m.year, set()).add(m.key)
    return [Mismatch(m.table, m.key, m.year, m.printed, m.shown,
                     _explain(by_key[m.key], m.year, first_year, findings_at, fx, by_key, model, mismatched,
                              printed, off_by(m), _rounding_admits(by_key[m.key], m, model, context, printed), near, m.table))
            for m in out]


def _rounding_admits(line, miss: Mismatch, model, context: tuple, printed: dict) -> str:
    """Where the model's figure lies among the values the line's definition can take from the true
    figures behind the print (each printed figure an interval): the range, or empty when it does not."""
    from udfs.findings import print_bounds
    text = line.formula_in(FORECAST) if line.formula else None
    if not text or not isinstance(miss.shown, (int, float)):
        return ""
    table = next((t for t in TABLES if (t, line.key, miss.year) in printed), line.table)
    bounds = print_bounds(text, model.company.years, *context, [table] + FINDING_TABLES, miss.year)
    value = model.value(line.key, miss.year)
    if bounds is None or not isinstance(value, (int, float)) or not bounds.lo <= value <= bounds.hi:
        return ""
    shown = printed[(miss.table, miss.key, miss.year)]
    scale, places = (100, shown.decimals) if shown.percent else (1, shown.decimals)
    half = 0.5 * 10 ** -places / scale
    if not bounds.lo - half <= miss.printed / scale <= bounds.hi + half:
        return ""     # the print itself lies outside what its inputs allow: a disagreement, not rounding
    return f"{bounds.lo * scale:,.{places}f} to {bounds.hi * scale:,.{places}f}"


def _explain(line, year: str, first_year: str, findings_at: dict, fx, by_key: dict, model, mismatched: set,
             printed: dict, off_by: float, admitted: str = "", near_misses: dict | None = None, printed_in: str = "") -> str:
    near_misses = near_misses or {}
    own = findings_at.get((line.key, year)) or []
    beyond = [f for f in own if not f.within_rounding]
    if beyond:
        return "the report disagrees with itself here: " + beyond[0].line()
    refs = _refs(line, fx)
    if year == first_year and any(r.lag for r in refs):
        return "needs the year before the first one the report prints"
    empty = sorted(r.key for r in refs if r.key in by_key and by_key[r.key].scalar
                   and model.company.scalar_inputs.get(r.key, 0) is None)
    empty += sorted(k for k in _scalar_inputs_behind(line, by_key, fx) if model.company.scalar_inputs.get(k, 0) is None
                    and k not in empty)
    if empty:
        return f"reads {', '.join(empty)}, which the note does not print (empty until filled or refreshed)"
    if line.key in model.company.layout.undisclosed:
        return f"the report does not disclose how it computes this line; the model's definition is {line.formula}"
    if own and off_by <= 1:   # one unit off where the note's own figures agree only within their rounding
        return "the report disagrees with itself here: " + own[0].line()
    inputs = {r.key for r in refs if r.key in by_key and not by_key[r.key].scalar}
    printed_inputs = all(any((t, key, year) in printed for t in TABLES) for key in inputs)
    settled = inputs and printed_inputs and not any((key, year) in mismatched for key in inputs)
    if off_by <= 1:
        # a unit off where a line it is computed from, or one that adds it up, meets the note's own
        # figures only within their rounding (cash, from a net cash flow a unit off the change in
        # cash; a part of a subtotal its printed parts miss by a unit): the rounding travels
        # (the two sides of a check are linked too: liabilities and equity equal total assets)
        balanced = [c.expected if c.actual == line.key else c.actual for c in model.company.layout.checks
                    if line.key in (c.actual, c.expected) and c.expected in by_key and c.actual in by_key]
        for key in _neighbours(line.key, by_key, fx) + balanced:
            within = [f for f in findings_at.get((key, year), []) if f.within_rounding and f.kind == "definition"]
            if within:
                how = "computed from" if key in inputs else "equal by a check to" if key in balanced else "added up by"
                return (f"within rounding: it is {how} {key}, where the note's own figures agree only within "
                        f"their rounding: " + within[0].line())
    # A disagreement beyond rounding spreads along definitions: look for one on a line linked
    # to this one (read by it, or reading it) within two steps, in the same year. One in the
    # statements comes before one in a ratio (a ratio's own definition cannot move a statement
    # line), then the nearer, then the lines this one is computed from before its readers.
    seen, frontier, candidates = {line.key}, [line.key], []
    for step in range(2):
        nxt = []
        for key in frontier:
            for other in _neighbours(key, by_key, fx):
                if other in seen:
                    continue
                seen.add(other)
                nxt.append(other)
                for f in findings_at.get((other, year), []):
                    if not f.within_rounding:
                        ratio = by_key[other].table not in STATEMENT_TABLES if other in by_key else True
                        candidates.append(((ratio, step, len(candidates)), other, f))
        frontier = nxt
    if candidates:
        _, other, f = min(candidates, key=lambda c: c[0])
        return f"follows from the report's disagreement on {other}: " + f.line()
    if own:   # within rounding here, and no disagreement beyond rounding nearby
        return "the report disagrees with itself here: " + own[0].line()
    if settled and admitted:
        return (f"within rounding: the figures it is computed from ({', '.join(sorted(inputs))}) display as printed, "
                f"and at their printed precision it can be anything from {admitted}")
    if settled and off_by <= 1:
        return (f"within rounding: the figures it is computed from ({', '.join(sorted(inputs))}) display as printed, "
                "and the model keeps their unrounded values")
    near = [key for key in inputs if (key, year) in mismatched and key in near_misses.get(year, set())]
    if inputs and printed_inputs and near and all((key, year) not in mismatched or key in near for key in inputs) and off_by <= 1:
        return (f"within rounding: it adds up figures that display as printed or a unit away ({', '.join(sorted(near))}), "
                "where the note's own figures agree only within their rounding")
    if printed_in not in ("income", "balance", "cashflow"):
        # a summary or ratio figure: notes do not say how they compute these
        how = f"the model's definition is {line.formula}" if line.formula else "the model shows its own statement line"
        return f"the report does not disclose how it computes this figure; {how}"
    return ""


def _scalar_inputs_behind(line, by_key: dict, fx, depth: int = 3) -> set:
    """The one-value inputs (price, shares) a line reads through the lines it reads."""
    out, frontier = set(), [line]
    for _ in range(depth):
        nxt = []
        for current in frontier:
            for ref in _refs(current, fx):
                other = by_key.get(ref.key)
                if other is None:
                    continue
                if other.scalar and not other.formula:
                    out.add(ref.key)
                elif other is not current:
                    nxt.append(other)
        frontier = nxt
    return out


def _refs(line, fx) -> set:
    text = line.formula_in(FORECAST) if line.formula else None
    return fx.refs(fx.parse(text)) if text else set()


def _neighbours(key: str, by_key: dict, fx) -> list:
    """The lines linked to `key`: the ones it is computed from first (a disagreement there is
    what its own figure inherits), then the ones that read it."""
    line = by_key.get(key)
    inputs = sorted({r.key for r in _refs(line, fx)}) if line is not None else []
    readers = sorted({other.key for other in by_key.values() if key in {r.key for r in _refs(other, fx)}} - set(inputs))
    return inputs + readers


def _with_gap_match(finding: Finding, printed: dict) -> Finding:
    """A disagreement beyond rounding often equals one printed figure, or its change on the year
    before, counted twice or left out; when it does, the explanation says which."""
    from dataclasses import replace as _replace
    if finding.within_rounding or finding.kind != "definition" or finding.percent:
        return finding
    gap = finding.exact - finding.printed
    if abs(gap) < 10:
        return finding  # a small gap matches too many printed figures to say anything
    years = sorted({y for (_, _, y) in printed})
    matches = []
    for (table, key, year), p in printed.items():
        if year != finding.year or p.percent or p.decimals or key == finding.key or table == "base":
            continue
        candidates = [(p.value, "")]
        position = years.index(year)
        prior = printed.get((table, key, years[position - 1])) if position else None
        if prior is not None:
            candidates.append((p.value - prior.value, "the change in "))
        for value, what in candidates:
            if value != 0 and abs(abs(gap) - abs(value)) <= 1.0 + 10 ** -p.decimals:
                matches.append(f"{what}{key} ({value:+,.{p.decimals}f})")
    if not matches:
        return finding
    text = f"; the gap of {gap:+,.0f} matches {', '.join(sorted(set(matches))[:3])}"
    return _replace(finding, explanation=finding.explanation + text)
