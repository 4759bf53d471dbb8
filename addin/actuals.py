"""The year that became reported, on results day: where `roll` gets its figures and how it vets them.

A roll takes the reported year from an actuals file (`--actuals FY.toml`) or from a provider
(`--actuals akshare:`; the providers live in addin/actuals_live.py and register themselves in
PROVIDERS, as the quote feeds do in addin/quotes.py). `template` writes the file to fill: every
line the model's layout takes for a reported year, with its label, unit and the model's forecast
shown, commented out so that an unfilled file cannot be rolled by accident.

Whatever the source, `vet` holds the figures to the layout before anything is built:

- a line the layout computes in reported years from a market input (the share count, which
  reported years show as the cover's share count) moves that input: the reported count is where
  the forecast starts, not silently replaced by today's;
- any other line the layout computes in reported years (EPS on the diluted count in some layouts)
  must agree with what the layout computes from the other figures, at the precision given;
- the layout's own definitions are checked on the figures as a note's are (udfs/findings.py,
  interval arithmetic on the precision each figure is given to): a subtotal that does not add up
  is refused naming the line; a roll-forward that does not (cash against last year's cash plus
  the net cash flow, which exchange differences break in real accounts) is recorded as a finding;
- the balance sheet must balance by the layout's `balance` check.
`--accept-unbalanced` takes such figures as reported and records every finding instead.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from udfs import formula as fx
from udfs.engine import ACTUAL, INPUT, bind_drivers, run_checks
from udfs.findings import Printed, displays_as, find
from workbook import spec
from workbook.formats import show
from workbook.model import build_model, company_lines
from workbook.tomlfile import TomlError, finite_number, read_toml, shown_value

from .source import RollError

MAX_NAMED = 5                    # missing lines named in full up to this many, then a count
BALANCE_CHECK = "balance"        # the layout check that says total assets = liabilities + equity
_SECTIONS = {"format_version", "company", "actual"}


class ActualsError(RollError):
    """Reported figures a roll cannot take; the message is the one line the analyst sees."""


@dataclass
class ReportedYear:
    """The figures of the year that became reported, in the model's units and signs."""
    label: str                                  # the year as the source gives it ("2025")
    figures: dict                               # line key -> value
    source: str                                 # where they came from: a file name, a provider and its call
    notes: list = field(default_factory=list)   # how the source got them (lines derived, items not carried)
    market: dict = field(default_factory=dict)  # market inputs the figures move: "shares" -> value (split_market fills it)


@dataclass(frozen=True)
class Request:
    """What a provider needs to know of the model to report a year in its terms."""
    ticker: str
    year: str                  # the model's label of the year to report ("2026E")
    reported: str              # its label once reported ("2026A")
    layout: spec.Layout
    unit: str                  # the company's money unit as written ("百万元")
    currency: str              # the reporting currency ("CNY")
    prior: dict                # line key -> value in the last reported year (changes in balances read it)


class ActualsProvider(Protocol):
    name: str

    def reported_year(self, request: Request) -> ReportedYear: ...


# Providers by scheme, as `--actuals SCHEME:WHERE` names them (addin/actuals_live.py adds its own).
PROVIDERS: dict[str, type] = {}


def provider_for(text: str) -> ActualsProvider | None:
    """The provider `--actuals` names ("akshare:"), or None for a path to an actuals file."""
    scheme, sep, where = str(text).strip().partition(":")
    if not sep or len(scheme) < 2 or Path(text).exists():
        return None  # a file (a Windows drive letter is one character)
    if not PROVIDERS:
        from . import actuals_live  # noqa: F401 - registers the live providers
    if scheme.lower() not in PROVIDERS:
        raise ActualsError(f"--actuals {text}: unknown source {scheme!r}; known: {', '.join(sorted(PROVIDERS))} "
                           "(or a path to an actuals file)")
    return PROVIDERS[scheme.lower()](where)


# ------------------------------------------------------------------------------------------------
# The lines a reported year takes
# ------------------------------------------------------------------------------------------------
def _lines(layout: spec.Layout) -> dict:
    return {line.key: line for line in layout.lines if line.table in spec.STATEMENTS}


def market_input_of(line) -> str | None:
    """The market input (a key of the cover's lines) a line shows in reported years, when its
    reported-year formula is that input alone: the share count shows today's count there."""
    text = line.formula_in(ACTUAL)
    if not text:
        return None
    tree = fx.parse(text)
    market = {l.key for l in spec.COMMON_LINES if l.table == spec.MARKET and l.formula is None}
    return tree.key if isinstance(tree, fx.Ref) and tree.lag == 0 and tree.key in market else None


def optional_lines(layout: spec.Layout) -> dict:
    """Line key -> what it is when a reported year leaves it out: a default the layout states
    (a revolver notes never print, the dividend), or a market input (the share count)."""
    out = {key: f"default {value:g}" for key, value in layout.reported_defaults.items()}
    for key, line in _lines(layout).items():
        market = market_input_of(line)
        if market is not None and key not in out:
            out[key] = f"the model's {market} today"
    return out


def missing_message(name: str, label: str, missing: list[str], whole: int) -> str:
    if len(missing) == whole:
        return (f"{name}: [actual.\"{label}\"] gives no figures yet (is it the template, unfilled?); remove the \"# \" "
                "before each line and type the reported figure in place of the forecast it shows")
    shown = missing if len(missing) <= MAX_NAMED else missing[:MAX_NAMED]
    more = "" if len(missing) <= MAX_NAMED else f" and {len(missing) - MAX_NAMED} more"
    return (f"{name}: [actual.\"{label}\"] is missing {len(missing)} reported line{'s' if len(missing) > 1 else ''}: "
            f"{', '.join(shown)}{more}")


# ------------------------------------------------------------------------------------------------
# The actuals file
# ------------------------------------------------------------------------------------------------
def year_number(label: str) -> int:
    """The calendar year in a year label ("2025E" → 2025); RollError if it has none."""
    match = re.search(r"\d{4}", str(label))
    if match is None:
        raise RollError(f"{label!r} is not a year label such as \"2025E\"")
    return int(match.group(0))


def read_file(path: str | Path, ticker: str, year_label: str, layout: spec.Layout) -> ReportedYear:
    """The reported year an actuals file gives, checked against the model: the same ticker, the
    model's first forecast year, statement lines of its layout only, every line a reported year
    must give present, numbers only."""
    path = Path(path)
    try:
        data = read_toml(path)
    except TomlError as exc:
        raise ActualsError(str(exc)) from None
    name = path.name
    unknown = set(data) - _SECTIONS
    if unknown:
        raise ActualsError(f"{name}: unknown section {sorted(unknown)[0]!r}; an actuals file has [company] ticker and "
                           "[actual.\"YEAR\"] only")
    if data.get("format_version", 1) != 1:
        raise ActualsError(f"{name}: format_version must be 1, not {data['format_version']!r}")
    given = (data.get("company") or {}).get("ticker") if isinstance(data.get("company"), dict) else None
    if not isinstance(given, str) or not given.strip():
        raise ActualsError(f"{name}: needs [company] ticker = \"{ticker}\"")
    if given.strip().upper() != ticker.strip().upper():
        raise ActualsError(f"{name}: is for {given.strip()}, the model is {ticker}; refused")
    years = data.get("actual")
    if not isinstance(years, dict) or len(years) != 1:
        count = len(years) if isinstance(years, dict) else 0
        raise ActualsError(f"{name}: needs exactly one [actual.\"YEAR\"] table (the year being reported), found {count}")
    (label, figures), = years.items()
    if not re.search(r"\d{4}", str(label)):
        raise ActualsError(f"{name}: [actual.{label!r}] is not a year such as \"{year_number(year_label)}\"")
    if year_number(label) != year_number(year_label):
        raise ActualsError(f"{name}: gives {label}, but the model's first forecast year is {year_label}: only that year "
                           "can become reported")
    if not isinstance(figures, dict):
        raise ActualsError(f"{name}: [actual.\"{label}\"] must be a table of line = value")
    extra = sorted(set(figures) - set(_lines(layout)))
    if extra:
        raise ActualsError(f"{name}: [actual.\"{label}\"] has unknown line {extra[0]!r} (layout {layout.name})")
    missing = sorted(layout.reported_keys - set(figures))
    if missing:
        raise ActualsError(missing_message(name, label, missing, len(layout.reported_keys)))
    out = {}
    for key, value in figures.items():
        number = finite_number(value)
        if number is None:
            raise ActualsError(f"{name}: [actual.\"{label}\"].{key} = {shown_value(value)} is not a number a model can hold")
        out[key] = number
    return ReportedYear(str(label), out, name)


# ------------------------------------------------------------------------------------------------
# The template to fill
# ------------------------------------------------------------------------------------------------
def template_text(company, model_name: str, year: str, reported: str, forecast: dict,
                  filled: ReportedYear | None = None, today: dt.date | None = None) -> str:
    """The actuals file to fill for `company`'s year `year` (labelled `reported` once reported):
    every line a reported year takes, grouped by statement in the layout's order, with its labels,
    unit and the model's forecast (`forecast`: line key -> value) shown. Lines are commented out
    unless `filled` (a provider's figures) gives them, so that a file nobody filled is refused."""
    layout = company.layout
    lines = _lines(layout)
    optional = optional_lines(layout)
    wanted = [key for key in lines if key in layout.reported_keys or key in optional]
    currency = company.facts.get("reporting_currency") or ""
    unit = company.facts.get("unit") or currency
    given = dict(filled.figures) if filled else {}
    given.update({key: filled.market[market_input_of(lines[key])] for key in wanted if filled
                  and market_input_of(lines[key]) in filled.market})
    today = today or dt.date.today()
    out = [f"# Results day for {company.facts['ticker']} ({company.facts.get('name_zh', '')}): the reported figures of "
           f"{reported}, the year the model forecast as {year}.",
           f"# Written by `python -m addin roll {model_name} --template` on {today.isoformat()}"
           + (f", filled from {filled.source}." if filled else "."),
           "#",
           "# Fill in every line: remove the \"# \" in front of it and type the reported figure in place of the",
           "# model's forecast, which the line shows. A roll refuses this file while a required line is still",
           "# commented out, and names the lines; an optional line left out takes what its comment says.",
           f"# Units and signs are the model's: money in {unit}, per-share figures in {currency}; a line the",
           "# model shows negative (a cost, where the layout prints costs negative) is negative here too.",
           "# The layout's subtotals are checked on the figures: one that does not add up is refused."]
    if filled:
        out += ["#", f"# {filled.source} gave the lines that are not commented out; check them."]
        out += [f"# {note}" for note in filled.notes]
    out += ["", "format_version = 1", "", "[company]", f"ticker = \"{company.facts['ticker']}\"", "",
            f"[actual.\"{reported}\"]"]
    sheets = {statement.table: statement.sheet for statement in layout.statements}
    cover = {line.key: line.label_zh for line in spec.COMMON_LINES}
    for table in spec.STATEMENTS:
        keys = [key for key in wanted if lines[key].table == table]
        if not keys:
            continue
        out += ["", f"# ---- {sheets.get(table, table)} ----"]
        for key in keys:
            line = lines[key]
            fmt = line.fmt if line.fmt in ("eps", "price") else "money"
            market = market_input_of(line)
            where = (f"{currency} per share" if fmt != "money" else
                     f"as the cover's {cover[market]}" if market else unit)
            note = f"{line.label_zh} {line.label_en}; {where}"
            if key in optional:
                note += f"; optional: {optional[key]} if left out"
            if key in given:
                out.append(f"{key} = {_toml_number(given[key])}    # {note}")
                continue
            shown = forecast.get(key)
            placeholder = _placeholder(shown, fmt)
            out.append(f"# {key} = {placeholder}    # {note}; the model's forecast for {year}")
    return "\n".join(out) + "\n"


def _placeholder(value, fmt: str) -> str:
    """The forecast as the model displays it, written as a TOML number (0 where it has none)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "0.0"
    return _toml_number(float(show(value, fmt).replace(",", "")))


def _toml_number(value: float) -> str:
    text = repr(float(value))
    return text if ("." in text or "e" in text or "inf" in text or "nan" in text) else text + ".0"


# ------------------------------------------------------------------------------------------------
# Vetting the figures against the layout
# ------------------------------------------------------------------------------------------------
def decimals_of(value: float) -> int:
    """The decimals a figure is given to (1234.5 → 1; 1200.0 → 0), at most 9."""
    text = repr(float(value))
    if "e" in text or "." not in text:
        return 0
    return min(9, len(text.split(".")[1].rstrip("0")))


def split_market(reported: ReportedYear, layout: spec.Layout, name: str) -> None:
    """Move the lines the layout shows in reported years as a market input (the share count) out
    of the figures and into `reported.market`; refuse lines that have no reported-year value at
    all (they exist only in forecasts)."""
    lines = _lines(layout)
    for key in list(reported.figures):
        line = lines[key]
        market = market_input_of(line)
        if market is not None:
            value = reported.figures.pop(key)
            if market in reported.market and reported.market[market] != value:
                other = next(k for k in lines if market_input_of(lines[k]) == market and k != key)
                raise ActualsError(f"{name}: {key} = {value:,g} and {other} = {reported.market[market]:,g} both give the "
                                   f"model's {market} (what reported years show for both lines); give one")
            reported.market[market] = value
        elif line.history != INPUT and line.formula_in(ACTUAL) is None:
            raise ActualsError(f"{name}: [actual.\"{reported.label}\"].{key}: the layout has no reported-year figure for "
                               f"{line.label_zh} ({key}), only a forecast; leave it out")


def computed_in_reported_years(reported: ReportedYear, layout: spec.Layout) -> dict:
    """The figures of lines the layout computes in reported years (not typed there): taken out of
    the figures, to be compared with what the layout computes (`compare_computed`)."""
    lines = _lines(layout)
    return {key: reported.figures.pop(key) for key in list(reported.figures)
            if lines[key].history != INPUT or lines[key].implied}


def compare_computed(given: dict, model, year: str, name: str, label: str) -> None:
    """Each line the layout computes in reported years must show, at the precision it is given,
    what the layout computes from the other figures; else the roll refuses naming it."""
    lines = {line.key: line for line in model.lines}
    for key, value in given.items():
        computed = model.value(key, year)
        if isinstance(computed, (int, float)) and displays_as(computed, value, decimals_of(value)):
            continue
        formula = lines[key].formula_in(ACTUAL)
        raise ActualsError(f"{name}: [actual.\"{label}\"].{key} = {value:,g}, but the layout computes {lines[key].label_zh} "
                           f"in reported years as {formula} = {_shown(computed)} from the other figures; correct it or "
                           "leave the line out")


def _shown(value) -> str:
    return f"{value:,.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def definition_findings(company, year: str) -> tuple[list, list]:
    """(subtotals that do not add up, roll-forwards that do not hold) in the reported `year` of
    `company`: (line key, its definition, the udfs.findings.Finding) for each figure beyond the
    rounding of the figures as given. A subtotal reads only its own year; a roll-forward reads
    the year before too."""
    printed = {}
    tables = {line.key: line.table for line in company.layout.lines}
    reported = [y for y in company.years if y.kind == ACTUAL]
    labels = {y.label for y in reported}
    for (key, label), value in company.inputs.items():
        if label in labels and tables.get(key) in spec.STATEMENTS and isinstance(value, (int, float)):
            printed[(tables[key], key, label)] = Printed(float(value), decimals_of(value))
    shares = float(company.scalar_inputs["shares"])
    scalars = {"shares": Printed(shares, decimals_of(shares))}
    lines = bind_drivers(company_lines(company), company.drivers) + list(company.layout.report_identities)
    identities = [line for line in lines if line.identity and line.formula]
    out: tuple[list, list] = ([], [])
    for lagged in (False, True):
        chosen = [line for line in identities if any(r.lag for r in fx.refs(fx.parse(line.formula))) == lagged]
        for finding in find(chosen, reported, printed, scalars, list(spec.STATEMENTS)):
            if finding.year == year and finding.kind == "definition" and not finding.within_rounding:
                formula = next(line.formula for line in chosen if line.key == finding.key and line.formula in finding.explanation)
                out[lagged].append((finding.key, formula, finding))
    return out


def balance_failure(company, year: str) -> str | None:
    """Why the reported `year` does not balance as the layout's balance check defines it, or None."""
    check = next((c for c in company.layout.checks if c.key == BALANCE_CHECK), None)
    if check is None:
        return None
    model = build_model(company)
    target = [y for y in company.years if y.label == year]
    result = run_checks([check], model.lines, model.values, target)[0]
    if result["passed"]:
        return None
    if result["difference"] is None:
        return f"{check.actual} or {check.expected} is not a number"
    return (f"{check.actual} {result['actual']:,.2f} vs {check.expected} {result['expected']:,.2f}, "
            f"difference {result['difference']:,.2f}")


def describe(key: str, formula: str, finding) -> str:
    """A finding on reported figures in one phrase: the line, its figure, what its definition gives
    (to two decimals, or as many as the figures are given to when the gap is smaller)."""
    gap = finding.printed - finding.exact
    places = min(finding.decimals, 2)
    while places < finding.decimals and round(gap, places) == 0:
        places += 1
    return (f"{key} {finding.printed:,.{places}f} is not {formula} = {finding.exact:,.{places}f} "
            f"(difference {gap:+,.{places}f})")
