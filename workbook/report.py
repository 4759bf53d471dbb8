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
    found = _with_carriers(found, lines, company.years, printed)
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
    path: dict | None = None   # for "follows from": the cell's computation as a signed sum and the lines it inherits from

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
    # what the definitions read: the print, and the lines notes never print at their default
    readable = context[0]
    out = [Mismatch(m.table, m.key, m.year, m.printed, m.shown,
                    *_explain(by_key[m.key], m.year, first_year, findings_at, fx, by_key, model, mismatched,
                              printed, off_by(m), _rounding_admits(by_key[m.key], m, model, context, printed), near, m.table,
                              readable, context[1]))
           for m in out]
    return out


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
             printed: dict, off_by: float, admitted: str = "", near_misses: dict | None = None,
             printed_in: str = "", readable: dict | None = None, scalars: dict | None = None) -> tuple[str, dict | None]:
    """Why a printed cell is not shown as printed, and for a cell that inherits a disagreement of
    the note, the computation path it inherits it through (see `_inherited`)."""
    inherited = _inherited(line, year, by_key, fx, model, readable or printed, findings_at, mismatched, scalars or {})
    text = _reason(line, year, first_year, findings_at, fx, by_key, model, mismatched, printed, off_by, admitted,
                   near_misses, printed_in, inherited)
    return text, (inherited if text.startswith((INHERITED, INHERITED_WITHIN)) else None)


# How an explanation says a cell inherits the note's disagreements through its computation.
INHERITED = "follows from the report's disagreement on"
INHERITED_WITHIN = "within rounding: the gaps it inherits from"



def _reason(line, year: str, first_year: str, findings_at: dict, fx, by_key: dict, model, mismatched: set,
            printed: dict, off_by: float, admitted: str, near_misses: dict | None, printed_in: str,
            inherited: dict | None) -> str:
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
    # A disagreement beyond rounding of the note on a line this one is computed from, whose gap,
    # carried through the computation, is this cell's difference from the print (`_inherited`).
    if inherited is not None and not inherited["disagrees"]:
        names = inherited["via"]
        return (f"{INHERITED_WITHIN} {' and '.join(names)}, where the note's own figures disagree beyond rounding, "
                f"leave it within the rounding of the note's figures ({line.key} = "
                f"{'per_share(' if inherited['per_share'] else ''}{_path_text(inherited['terms'])}"
                f"{', shares)' if inherited['per_share'] else ''}, each other line as printed)")
    if inherited is not None:
        names = inherited["via"]
        lines = [next(f for f in findings_at[(key, year)] if not f.within_rounding).line() for key in names]
        return (f"{INHERITED} {' and on '.join(names)}, which it is computed from "
                f"({line.key} = {'per_share(' if inherited['per_share'] else ''}{_path_text(inherited['terms'])}"
                f"{', shares)' if inherited['per_share'] else ''}, each other line as printed): " + "; ".join(lines))
    if own and off_by <= 1:   # within rounding here, and no disagreement beyond rounding it inherits
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


def _inherited(line, year: str, by_key: dict, fx, model, printed: dict, findings_at: dict,
               mismatched: set, scalars: dict) -> dict | None:
    """The note's disagreements a cell inherits through its own computation: its formula as a
    signed sum of lines (or such a sum per share), every line on the way that the model computes
    and does not show as printed expanded by its own formula, down to lines shown as printed and
    lines where the note's own figures disagree beyond rounding (`via`). It qualifies only when
    the printed cell is its printed terms' sum within their rounding (the note's cell follows from
    its printed terms) and the model's cell is the same sum with the `via` lines at the model's
    values, within the same rounding: the gap of each `via` line, carried through the path, is the
    cell's difference from the print. None when the formula is not such a sum, reads a figure the
    note does not print, or the gaps do not account for the difference.
    {"terms": {(key, lag): coefficient}, "via": [key, ...], "per_share": bool}"""
    years = [y.label for y in model.values.years]
    if year not in years or not line.formula:
        return None
    index = years.index(year)

    def beyond(key, at):
        return any(not f.within_rounding for f in findings_at.get((key, at), []))

    def through(key, lag, other):   # a line on the way the model does not show as printed
        return lag == 0 and not other.scalar and not beyond(key, year) \
            and ((key, year) in mismatched or _printed_at(printed, key, year) is None)

    tree = fx.parse(line.formula_in(FORECAST))
    shares_print = shares_model = None
    if isinstance(tree, fx.Call) and tree.function == "per_share" and len(tree.args) == 2 \
            and isinstance(tree.args[1], fx.Ref) and tree.args[1].key == "shares" and tree.args[1].lag == 0:
        # a per-share line: its numerator's path, over a share count the note prints (and the model uses)
        shares_print, shares_model = scalars.get("shares"), model.company.scalar_inputs.get("shares")
        if shares_print is None or not isinstance(shares_model, (int, float)) or shares_model <= 0 \
                or abs(shares_model - shares_print.value) > 0.5 * 10 ** -shares_print.decimals + 1e-9:
            return None
        tree = tree.args[0]
    terms = _signed_path(tree, 3, {line.key}, by_key, fx, through)
    if not terms:
        return None
    terms = {k: c for k, c in terms.items() if abs(c) > 1e-12}
    via = sorted(key for (key, lag), c in terms.items() if lag == 0 and beyond(key, year))
    cell = _printed_at(printed, line.key, year)
    if not via or cell is None or cell.percent:
        return None
    sum_printed = sum_model = 0.0
    slack = via_slack = 0.0      # the terms' rounding (the via lines' counts only on the print)
    identity_slack = 0.0         # the rounding of what the via lines' identities give them on the print
    for (key, lag), c in terms.items():
        if index - lag < 0:
            return None
        at = years[index - lag]
        figure = _printed_at(printed, key, at)
        if figure is None or figure.percent:
            return None
        sum_printed += c * figure.value
        if key in via and lag == 0:
            value = model.value(key, at)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                return None
            sum_model += c * value
            via_slack += abs(c) * 0.5 * 10 ** -figure.decimals
            spread = _identity_slack(key, year, years, by_key, fx, printed, findings_at)
            if spread is None:
                return None
            identity_slack += abs(c) * spread
        else:
            sum_model += c * figure.value
            slack += abs(c) * 0.5 * 10 ** -figure.decimals
    half = 0.5 * 10 ** -cell.decimals
    value = model.value(line.key, year)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if shares_print is not None:
        s, h = shares_print.value, 0.5 * 10 ** -shares_print.decimals
        print_ok = abs(cell.value - sum_printed / s) <= half + (slack + via_slack) / (s - h) + abs(sum_printed) * h / (s * (s - h))
        model_ok = abs(value - sum_model / shares_model) <= half + slack / shares_model
        # the print against what the identities give (the note's other figures), every rounding counted
        apart = abs(cell.value - sum_model / s) > half + (slack + identity_slack) / (s - h) + abs(sum_model) * h / (s * (s - h))
    else:
        print_ok = abs(cell.value - sum_printed) <= half + slack + via_slack + 1e-9
        model_ok = abs(value - sum_model) <= half + slack + 1e-9
        apart = abs(cell.value - sum_model) > half + slack + identity_slack + 1e-9
    if not (print_ok and model_ok):
        return None     # the print does not follow from its terms, or the gaps do not account for the difference
    # apart: the note's cell disagrees with what its other figures give it; else the gaps it
    # inherits leave the print within the rounding of those figures (they cancel, or are small)
    return {"terms": terms, "via": via, "per_share": shares_print is not None, "disagrees": apart}


def _identity_slack(key: str, year: str, years: list, by_key: dict, fx, printed: dict, findings_at: dict) -> float | None:
    """The rounding of what the identity of `key`'s disagreement beyond rounding gives it on the
    print: half a unit of each printed figure it adds up. None when it is not a signed sum of
    printed figures."""
    finding = next((f for f in findings_at.get((key, year), []) if not f.within_rounding), None)
    if finding is None:
        return None
    candidates = [l for k, l in by_key.items() if (k == key or k.startswith(f"{key}~")) and l.formula]
    candidates = [l for l in candidates if l.formula in finding.explanation] or candidates
    index = years.index(year)
    for line in candidates:
        terms = fx.linear_terms(fx.parse(line.formula))
        if not terms or any(index - t.lag < 0 for _, t in terms):
            continue
        figures = [_printed_at(printed, t.key, years[index - t.lag]) for _, t in terms]
        if all(f is not None for f in figures):
            return sum(0.5 * 10 ** -f.decimals for f in figures)
    return None


def _signed_path(node, depth: int, seen: set, by_key: dict, fx, through, lag: int = 0) -> dict | None:
    """`node` as a signed sum of lines {(line, years back): coefficient}, each line `through(key,
    years back, line)` admits replaced by its own forecast formula, up to `depth` lines deep; None
    where a formula on the way is not a signed sum."""
    terms = fx.linear_terms(node)
    if terms is None:
        return None
    out: dict = {}
    for sign, ref in terms:
        at, other = lag + ref.lag, by_key.get(ref.key)
        inner = None
        if depth > 0 and other is not None and other.formula and ref.key not in seen and through(ref.key, at, other):
            inner = _signed_path(fx.parse(other.formula_in(FORECAST)), depth - 1, seen | {ref.key}, by_key, fx, through, at)
            if inner is None:
                return None
        for k, c in (inner or {(ref.key, at): 1.0}).items():
            out[k] = out.get(k, 0.0) + sign * c
    return out


def _printed_at(printed: dict, key: str, year: str):
    return next((printed[(t, key, year)] for t in TABLES if (t, key, year) in printed), None)


def _path_text(terms: dict) -> str:
    parts = []
    for (key, lag), c in sorted(terms.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ref = key
        for _ in range(lag):
            ref = f"prev({ref})"
        n = abs(c)
        ref = ref if abs(n - 1) < 1e-12 else f"{n:g} * {ref}"
        parts.append(("-" if c < 0 else "+", ref))
    return " ".join(f"{sign} {ref}" if i or sign == "-" else ref for i, (sign, ref) in enumerate(parts)).lstrip("+ ")


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


def _with_carriers(found: list[Finding], lines: list, years: list, printed: dict) -> list[Finding]:
    """A disagreement beyond rounding on a line whose definition adds up lines where the note
    disagrees with itself too (a net cash flow made of sections whose "other" lines are not what
    the note's other figures give them): when the gaps of those lines, carried through the
    definition, are this one's gap within the rounding of every printed figure it reads, the
    explanation says which lines carry it. The definition is followed through the subtotals it
    adds up (as printed) to the lines that disagree; nothing is said where the gaps do not add up."""
    from dataclasses import replace as _replace
    from udfs import formula as fx
    labels = [y.label for y in years]
    by_key = {line.key: line for line in lines}
    beyond = {(f.key, f.year): f for f in found if not f.within_rounding and f.kind == "definition" and not f.percent}


    def figure(key, year):
        return next((printed[(t, key, year)] for t in TABLES if (t, key, year) in printed), None)

    out = []
    for f in found:
        line = by_key.get(f.key)
        if (f.key, f.year) not in beyond or line is None or not line.formula or f.year not in labels:
            out.append(f)
            continue
        def through(key, lag, other, year=f.year):   # a subtotal on the way where the note agrees with itself
            return lag == 0 and other.identity and not other.scalar and (key, year) not in beyond
        terms = _signed_path(fx.parse(line.formula_in(FORECAST)), 2, {f.key}, by_key, fx, through)
        index = labels.index(f.year)
        carriers = sorted(k for (k, lag), c in (terms or {}).items() if lag == 0 and (k, f.year) in beyond and abs(c) > 1e-12)
        own = figure(f.key, f.year)
        if not carriers or own is None:
            out.append(f)
            continue
        total, slack, carried, ok = 0.0, 0.5 * 10 ** -own.decimals, 0.0, True
        for (k, lag), c in terms.items():
            p = figure(k, labels[index - lag]) if index - lag >= 0 else None
            if p is None or p.percent:
                ok = False
                break
            total += c * p.value
            slack += abs(c) * 0.5 * 10 ** -p.decimals
            if lag == 0 and k in carriers:
                carried += c * (beyond[(k, f.year)].exact - beyond[(k, f.year)].printed)
        gap = f.exact - f.printed
        # the print adds up along the definition, and the carried gaps are this one's
        if not ok or abs(own.value - total) > slack + 1e-9 or abs(gap - carried) > 2 * slack + 1e-9:
            out.append(f)
            continue
        parts = ", ".join(f"{k} ({terms[(k, 0)] * (beyond[(k, f.year)].exact - beyond[(k, f.year)].printed):+,.{f.decimals}f})"
                          for k in carriers)
        out.append(_replace(f, explanation=f.explanation + f"; the gap of {gap:+,.{f.decimals}f} is carried by the note's "
                                                          f"disagreements on {parts}, which {f.key} adds up"))
    return out
