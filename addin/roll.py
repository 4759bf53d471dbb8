"""Roll a model forward on results day: the first forecast year becomes reported, one forecast
year is added, and the analyst's work in the old workbook comes along.

`roll(model, actuals, output)` reads the model file (its structure verified first), rebuilds its
company data from the company and layout files the build stored in the very hidden `_source`
sheet, with the workbook's CURRENT inputs in place of the file's (every driver on its own year,
reported figures, market, rating and valuation inputs), takes the new reported year's figures
from an actuals file or a provider (addin/actuals.py vets them against the layout), carries the
last forecast year's drivers into the new year (marked `review`), moves every valuation year on
by one, builds the new model and types the analyst's numbers-over-formulas into it again. The
rolled model carries a visible 盈利预测调整 sheet: the reported year against its forecast
(addin/results.py), then old vs new estimates (addin.estimates.revision_table).
`write_template(model, output)` writes the actuals file to fill instead.

Every refusal is a `RollError` (one line) raised before anything is written; an output is
written to a temp file beside it, verified and renamed into place; an existing one is replaced
only with `force`, and kept as OUTPUT.bak.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import math
import re
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import tomli_w

from udfs.engine import ACTUAL
from workbook import spec, xlsx
from workbook.build import build
from workbook.files import check_output, place_output, temp_beside, write_output
from workbook.layout import (
    CHECKS, ENGLISH_COL, FIRST_ROW, HEADER_ROW, LABEL_COL, SUBTITLE_ROW, TITLE_ROW, cell_name, market_name, rating_name,
)
from workbook.model import build_model
from workbook.xlcalc import evaluate, same_value

from . import actuals as reported_year
from .actuals import ActualsError, ReportedYear, Request, year_number  # noqa: F401 - roll's API keeps these names
from .audit import TEXT_FORMAT, audit
from .source import SCALAR_FIELDS, RollError, current_inputs, load_company, read_source, stored_and_current  # noqa: F401
from .estimates import STATUS_LABELS, DROPPED, Estimates, RevisionRow, published_cells, read_model, render_revisions, revision_table
from .modelfile import regular_file
from .results import (
    BEAT, MISS, band_name, render_results, reported_cells, reported_figures, results_table, verdict_words,
)
from .template import blueprint, settings_as_values, verify_structure

REVISIONS_SHEET = "盈利预测调整"


@dataclass
class Override:
    """A number the analyst typed over a formula in the old model."""
    sheet: str
    cell: str
    key: str
    year: str
    value: object
    new_cell: str | None = None      # where it went in the rolled model; None when dropped
    reason: str = ""                 # why it was dropped

    def describe(self) -> str:
        where = f"{self.sheet}!{self.cell}（{self.key} {self.year or '—'}）= {self.value!r}"
        return f"{where} → {self.sheet}!{self.new_cell}" if self.new_cell else f"{where}: {self.reason}"


@dataclass
class RollResult:
    path: Path
    reported: str                    # the year that became reported, as the rolled model labels it
    was: str                         # its label in the old model
    added: str                       # the new forecast year
    company_text: str                # the rolled company file, as stored in the model's _source
    notes: list = field(default_factory=list)
    carried: list = field(default_factory=list)   # Override
    dropped: list = field(default_factory=list)   # Override
    revisions: list = field(default_factory=list)  # RevisionRow
    old: Estimates | None = None
    new: Estimates | None = None
    checks_failed: list = field(default_factory=list)  # (label, year, status) of the rolled model
    results: list = field(default_factory=list)    # ResultRow: the reported year against its forecast
    backup: Path | None = None                     # the output replaced with force, kept as OUTPUT.STAMP.bak

    @property
    def remaining(self) -> list:
        """The revisions of the years still forecast: the year that became reported is in `results`."""
        return [r for r in self.revisions if not (self.results and r.year == self.was and r.status == DROPPED)]


# ------------------------------------------------------------------------------------------------
# The actuals
# ------------------------------------------------------------------------------------------------
def read_actuals(path: str | Path, ticker: str, year_label: str, layout: spec.Layout) -> tuple[str, dict]:
    """(label as the file gives it, {line: value}) of one reported year, checked against the
    model: the same ticker, the model's first forecast year, every reported line of the layout."""
    got = reported_year.read_file(path, ticker, year_label, layout)
    return got.label, got.figures


def _request(old, data: dict, forecast: list, reported: str) -> Request:
    actual = [y.label for y in old.years if y.kind == ACTUAL]
    prior = {key: value for (key, year), value in old.inputs.items() if year == actual[-1]}
    return Request(str(data["company"]["ticker"]), forecast[0], reported, old.layout,
                   str(data["company"].get("unit") or ""), str(data["company"].get("reporting_currency") or ""), prior)


def _fetch(actuals, request: Request) -> ReportedYear:
    """The reported year from a provider (`akshare:`) or an actuals file; a provider's figures
    are held to the same rules as a file's (the layout's lines, every required one)."""
    provider = actuals if hasattr(actuals, "reported_year") else reported_year.provider_for(str(actuals))
    if provider is None:
        return reported_year.read_file(actuals, request.ticker, request.year, request.layout)
    got = provider.reported_year(request)
    missing = sorted(request.layout.reported_keys - set(got.figures))
    if missing:
        shown = ", ".join(missing[:reported_year.MAX_NAMED]) + (f" and {len(missing) - reported_year.MAX_NAMED} more"
                                                                 if len(missing) > reported_year.MAX_NAMED else "")
        raise ActualsError(f"{got.source}: gives no figure for {len(missing)} reported line{'s' if len(missing) > 1 else ''} "
                           f"of the layout: {shown}; write the year into an actuals file (roll --actuals {provider.name} "
                           "--template fills in what it has) and roll with that")
    return got


# ------------------------------------------------------------------------------------------------
# The new year window
# ------------------------------------------------------------------------------------------------
def relabel(label: str, year: int) -> str:
    """`label` with its four-digit year replaced: the same marks (bare, A, E, FY…) for another year."""
    return re.sub(r"\d{4}", str(year), label, count=1)


def rolled_years(actual: list[str], forecast: list[str]) -> tuple[str, str]:
    """(label of the first forecast year once reported, label of the added forecast year), each
    with the marks the model's own reported and forecast labels carry (2025E → 2025 where
    reported years are bare, 2026E → 2026A where they end in A)."""
    reported = relabel(actual[-1], year_number(forecast[0]))
    added = relabel(forecast[-1], year_number(forecast[-1]) + 1)
    return reported, added


def roll_data(data: dict, figures: dict, reported: str, added: str, text_inputs=frozenset()) -> dict:
    """The company data one year on: first forecast year reported with `figures`, one forecast
    year added whose drivers are the last forecast year's, every other driver on its own year,
    and the valuation inputs one year on. `text_inputs`: the valuation inputs that hold text
    (years, switches), from the layout's valuation plan."""
    years = data["years"]
    old_labels = [str(y) for y in ([years["base"]] if years.get("base") else []) + years["actual"] + years["forecast"]]
    forecast = [str(y) for y in years["forecast"]]
    first, last = forecast[0], forecast[-1]
    years["actual"] = [str(y) for y in years["actual"]] + [reported]
    years["forecast"] = forecast[1:] + [added]
    data.setdefault("actual", {})[reported] = figures
    for entry in data.get("drivers", {}).values():
        values = entry["values"]
        values.pop(first, None)
        values[added] = values[last]
        entry["review"] = True  # the new year's value is a copy, not a forecast: the analyst looks at it
    for case in ("bear", "bull"):  # scenario values move with their years too
        for entry in data.get("scenarios", {}).get(case, {}).get("drivers", {}).values():
            values = entry["values"]
            values.pop(first, None)
            if last in values:
                values[added] = values[last]
    _valuation_one_year_on(data.get("valuation", {}), old_labels, years, text_inputs)
    return data


def _valuation_one_year_on(valuation: dict, old_labels: list[str], years: dict, text_inputs) -> None:
    """The valuation inputs of the rolled model: a method valued on a year is valued on the next
    one, so it keeps its distance from the first forecast year (P/E on 2026E moves to 2027E when
    2025E becomes reported); a switch the workbook stores as 1 or 0 is TRUE or FALSE again."""
    labels = [str(y) for y in ([years["base"]] if years.get("base") else []) + years["actual"] + years["forecast"]]
    by_number = {year_number(label): label for label in labels}
    for key, value in list(valuation.items()):
        if key not in text_inputs:
            continue
        if isinstance(value, str) and value.strip() in old_labels:
            following = by_number.get(year_number(value) + 1)
            if following is not None:
                valuation[key] = following
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
            valuation[key] = bool(value)  # TRUE/FALSE: the workbook keeps a boolean input as 1/0


# ------------------------------------------------------------------------------------------------
# The roll
# ------------------------------------------------------------------------------------------------
def _check_output(output: Path, model: Path, suffix: str, force: bool) -> None:
    """Refuse an output of the wrong kind or place, or one the shared output rules refuse (open in a
    spreadsheet program, the model itself, there already without `force`), before any work."""
    if output.suffix.lower() != suffix:
        what = "the model carries macros, so its name" if suffix == ".xlsm" else "an actuals file is TOML, so its name"
        raise RollError(f"{output}: {what} must end in {suffix}")
    if output.is_dir():
        raise RollError(f"{output}: is a folder; give a file name ending in {suffix}")
    if output.exists() and output.resolve() == model.resolve():
        raise RollError(f"{output}: is the model being rolled; write to a new file")
    if not output.parent.is_dir():
        raise RollError(f"{output.parent}: no such folder")
    check_output(output, force, sources=(model,))  # open elsewhere, or there already without --force


def roll(model: str | Path, actuals, output: str | Path, accept_unbalanced: bool = False,
         today: dt.date | None = None, force: bool = False) -> RollResult:
    """Roll `model` forward with the reported year `actuals` gives (an actuals file, `akshare:`,
    or a provider object) into `output` (see the module doc)."""
    model, output = Path(model), Path(output)
    real = regular_file(model)
    _check_output(output, real, ".xlsm", force)
    package = xlsx.read(real)
    verify_structure(package)
    source = read_source(package)
    today = today or dt.date.today()

    with tempfile.TemporaryDirectory(prefix="er-roll-") as work:
        work = Path(work)
        company_text = source["company"][1]
        old, data = stored_and_current(package, work, model.name)
        forecast = [y.label for y in old.forecast_years]
        actual = [y.label for y in old.years if y.kind == ACTUAL]
        if len(forecast) < 1 or not actual:
            raise RollError(f"{model.name}: needs a reported and a forecast year to roll")
        reported, added = rolled_years(actual, forecast)
        got = _fetch(actuals, _request(old, data, forecast, reported))
        name = got.source
        reported_year.split_market(got, old.layout, name)
        computed = reported_year.computed_in_reported_years(got, old.layout)

        overrides = _overrides(package, forecast[0])
        text_inputs = {line.key for line in spec.valuation_plan(old.layout).scalars if line.fmt == TEXT_FORMAT}
        data = roll_data(data, got.figures, reported, added, text_inputs)
        notes = [f"rolled from {model.name} on {today.isoformat()}: {forecast[0]} reported as {reported} from "
                 f"{got.source}; {added} added, its drivers carried from {forecast[-1]} and marked review"]
        notes += got.notes
        notes += _market_moves(data, got, reported)
        notes += [f"override dropped: {o.describe()}" for o in overrides if o.reason]

        draft = load_company(old.path, data, model.name, old.layout)
        reported_year.compare_computed(computed, build_model(draft), reported, name, got.label)
        notes += _vet_definitions(draft, reported, name, got.label, accept_unbalanced)
        text = _company_text(data, notes, company_text)
        company = load_company(old.path, text, model.name, old.layout)
        result = RollResult(output, reported, forecast[0], added, text, notes)
        _write(company, package, overrides, output, result, force)
    return result


def write_template(model: str | Path, output: str | Path, force: bool = False, actuals=None,
                   today: dt.date | None = None) -> tuple[Path, int, int]:
    """Write the actuals file to fill for `model`'s first forecast year (addin/actuals.py
    `template_text`): every line a reported year takes with the forecast the workbook shows for
    it now, commented out; with `actuals` (a provider such as "akshare:"), the lines it gives
    filled in. Written atomically; an existing file is replaced only with `force`, and kept as
    OUTPUT.YYYYMMDD-HHMMSS.bak. Returns (the path, lines to fill, lines filled)."""
    model, output = Path(model), Path(output)
    real = regular_file(model)
    _check_output(output, real, ".toml", force)
    package = xlsx.read(real)
    verify_structure(package)
    with tempfile.TemporaryDirectory(prefix="er-template-") as work:
        old, data = stored_and_current(package, Path(work), model.name)
        forecast = [y.label for y in old.forecast_years]
        actual = [y.label for y in old.years if y.kind == ACTUAL]
        reported, _added = rolled_years(actual, forecast)
        filled = None
        if actuals is not None:
            provider = actuals if hasattr(actuals, "reported_year") else reported_year.provider_for(str(actuals))
            if provider is None:
                raise RollError(f"--actuals {actuals}: with --template, --actuals names a provider (akshare:) whose "
                                "figures fill the template; an actuals file is already filled")
            filled = provider.reported_year(_request(old, data, forecast, reported))
        statements = {s.sheet for s in old.layout.statements}
        shown = {}
        for row in blueprint(package):
            if row["year"] == forecast[0] and row["sheet"] in statements and row["kind"] != "mirror":
                shown.setdefault(row["key"], package.value(row["sheet"], row["cell"]))
        text = reported_year.template_text(old, model.name, forecast[0], reported, shown, filled, today)
    write_output(output, text, force, sources=(real,))  # an existing file (--force) is kept as a .bak
    to_fill = sum(1 for line in text.splitlines() if re.match(r"# \w+ = ", line))
    given = sum(1 for line in text.splitlines() if re.match(r"\w+ = ", line)) - 2  # less format_version and ticker
    return output, to_fill, given


def _market_moves(data: dict, got: ReportedYear, reported: str) -> list[str]:
    """Put the market inputs the reported figures give (the year-end share count) into the
    company data, and say what each replaced."""
    notes = []
    for market, value in got.market.items():
        section, field_name = SCALAR_FIELDS[market]
        before = data.get(section, {}).get(field_name)
        data.setdefault(section, {})[field_name] = value
        if before != value:
            notes.append(f"{market}: the reported {reported} figure {value:,g} (from {got.source}) replaces the model's "
                         f"{before:,g}; the forecast starts from it")
    return notes


def _vet_definitions(draft, reported: str, name: str, label: str, accept_unbalanced: bool) -> list[str]:
    """The layout's definitions on the reported figures: a subtotal that does not add up and a
    balance sheet that does not balance are refused (with `accept_unbalanced`, recorded as
    findings); a roll-forward that does not hold is recorded as a finding."""
    subtotals, roll_forwards = reported_year.definition_findings(draft, reported)
    balance = reported_year.balance_failure(draft, reported)
    notes = []
    if subtotals:
        first = reported_year.describe(*subtotals[0])
        more = f" (and {len(subtotals) - 1} more)" if len(subtotals) > 1 else ""
        if not accept_unbalanced:
            raise ActualsError(f"{name}: the {label} figures do not add up as the layout defines them: {first}{more}; "
                               "refused (--accept-unbalanced takes them as reported and records the findings)")
        notes += [f"finding: the reported {reported} figures do not add up: {reported_year.describe(*item)}; accepted with "
                  "--accept-unbalanced" for item in subtotals]
    if balance is not None:
        if not accept_unbalanced:
            raise ActualsError(f"{name}: the {label} balance sheet does not balance ({balance}); "
                               "refused (--accept-unbalanced takes it as reported and records the finding)")
        notes.append(f"finding: the reported {reported} balance sheet does not balance ({balance}); "
                     "accepted with --accept-unbalanced")
    notes += [f"finding: {reported_year.describe(*item)} (a roll-forward the reported figures do not follow: "
              "exchange differences, acquisitions or reclassifications)" for item in roll_forwards]
    return notes


def _company_text(data: dict, notes: list, original: str) -> str:
    """The rolled company file: the original's opening comment, the roll's notes, then the data."""
    head = []
    for line in original.splitlines():
        if not line.startswith("#"):
            break
        head.append(line)
    head.append("#")
    head += [f"# Roll: {note}" for note in notes]
    return "\n".join(head) + "\n" + tomli_w.dumps(data, indent=4)


def _overrides(package: xlsx.Package, becomes_reported: str) -> list[Override]:
    """The numbers typed over formulas in the old model; those on the year that becomes reported
    are dropped (the reported figure replaces the formula), the rest are carried."""
    found = []
    for sheet, cell, key, year, value, _formula in audit(package).overrides:
        item = Override(sheet, cell, key, year, value)
        if year == becomes_reported:
            item.reason = f"{year} is now reported; the actuals replace it"
        found.append(item)
    return found


# ------------------------------------------------------------------------------------------------
# Writing the rolled model
# ------------------------------------------------------------------------------------------------
def _write(company, old_package: xlsx.Package, overrides: list, output: Path, result: RollResult, force: bool) -> None:
    built, typed, final = (temp_beside(output, f".{what}.roll.tmp") for what in ("built", "typed", "final"))
    try:
        build(built, company)
        package = xlsx.read(built)
        rows = {(r["sheet"], r["key"], r["year"]): r for r in blueprint(package) if r["kind"] in ("formula", "mirror")}
        cells = {}
        for item in overrides:
            if item.reason:
                result.dropped.append(item)
                continue
            row = rows.get((item.sheet, item.key, item.year))
            if row is None:
                item.reason = "the rolled model has no such formula cell"
                result.dropped.append(item)
                result.notes.append(f"override dropped: {item.describe()}")
                continue
            item.new_cell = row["cell"]
            cells[(item.sheet, row["cell"])] = item.value
            result.carried.append(item)
        _type_and_recompute(package, cells, typed)
        result.old = read_model(old_package.path)
        result.new = replace(read_model(typed), source=output.name)
        result.revisions = revision_table(result.old, result.new)
        typed_package = xlsx.read(typed)
        result.results = results_table(result.old, result.was, reported_figures(typed_package, result.reported),
                                       result.reported)
        add_revisions_sheet(typed_package, result, final)
        written = xlsx.read(final)
        verify_structure(written)
        if REVISIONS_SHEET not in written.sheets:
            raise RollError(f"{output.name}: the rolled model lost its {REVISIONS_SHEET} sheet while being written; nothing written")
        for (sheet, ref), value in cells.items():
            if not same_value(written.value(sheet, ref), value) and not (value is None and written.value(sheet, ref) in (None, "")):
                raise RollError(f"{output.name}: the carried override at {sheet}!{ref} did not survive; nothing written")
        _verify_results(written, result, output)
        checks = audit(written)
        result.checks_failed = checks.check_failures
        result.backup = place_output(final, output, force)  # an existing output (--force) is kept as a .bak
    finally:
        for temp in (built, typed, final):
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def _type_and_recompute(package: xlsx.Package, typed: dict, target: Path) -> None:
    """The package with `typed` values replacing their formulas and every formula's cached value
    recomputed from the file's own cells, as refresh does."""
    values = evaluate(package, {**settings_as_values(package), **typed})
    changes: dict = {}
    for (sheet, ref), value in typed.items():
        changes.setdefault(sheet, {})[ref] = value
    for (sheet, ref), value in values.items():
        if (sheet, ref) not in typed and not same_value(package.value(sheet, ref), value):
            changes.setdefault(sheet, {})[ref] = value
    replaced = {package.sheets[s].path: xlsx.rewrite_sheet(package.sheets[s], cells,
                                                           frozenset(r for (sh, r) in typed if sh == s)).encode("utf-8")
                for s, cells in changes.items()}
    extra, dropped = xlsx.without_calc_chain(package)
    replaced.update(extra)
    xlsx.write(package, replaced, target, dropped)


# ------------------------------------------------------------------------------------------------
# The 盈利预测调整 sheet
# ------------------------------------------------------------------------------------------------
def revision_rows(old_model_path: str | Path, new_model_path: str | Path) -> list[RevisionRow]:
    """盈利预测调整 between two model files: the rows `revisions OLD NEW` prints."""
    return revision_table(read_model(old_model_path), read_model(new_model_path))


_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_WORKSHEET_TYPE = _REL + "/worksheet"
_WORKSHEET_CONTENT = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
# The sheet's column widths from the label column on, and the headers of its two tables: the
# reported year against its forecast, then the revisions of the years still forecast. Its rows are
# the template's: title, subtitle, header row, then one row a line from the first row
# (workbook/layout.py).
_WIDTHS = (22.7109375, 10.7109375, 14.7109375, 14.7109375, 14.7109375, 14.7109375, 12.7109375, 16.7109375)
_RESULTS_HEADER = ("指标 Line", "年度 Year", "预测 Forecast", "实际 Actual", "差异 Difference", "差异% Difference %",
                   "区间± Band", "结论 Verdict")
_REVISIONS_HEADER = ("指标 Line", "年度 Year", "调整前 Old", "调整后 New", "变动 Change", "变动% Change %", "备注 Note")
_RESULT_FIELDS = ("label", "year", "forecast", "actual", "difference", "pct", "band", "verdict")  # the columns, in order


@dataclass(frozen=True)
class _Cell:
    """One cell of the sheet: a value, or a formula with its computed value, and a style role."""
    value: object
    style: str
    formula: str | None = None
    name: str | None = None          # a defined name over the cell (the band inputs)


def _styles(package: xlsx.Package) -> dict:
    """Style indexes borrowed from cells the build formatted, so the sheet looks like the rest
    of the model: title, header, label, money, EPS, price, percent, a percent input and text."""
    def style_of(sheet: str, ref: str) -> str:
        cell = package.sheets[sheet].cells.get(ref)
        return cell.attrs.get("s", "0") if cell is not None else "0"

    def of_name(name: str) -> str:
        return style_of(*package.name_cells(name)[-1])

    published = published_cells(package)
    revenue_sheet, revenue_ref = published["revenue"][-1]
    row = xlsx.split_ref(revenue_ref)[0] - 1
    return {"title": style_of(revenue_sheet, cell_name(TITLE_ROW, LABEL_COL)),
            "subtitle": style_of(revenue_sheet, cell_name(SUBTITLE_ROW, LABEL_COL)),
            "header": style_of(revenue_sheet, cell_name(HEADER_ROW, LABEL_COL)),
            "label": style_of(revenue_sheet, cell_name(row, LABEL_COL)),
            "english": style_of(revenue_sheet, cell_name(row, ENGLISH_COL)), "money": style_of(revenue_sheet, revenue_ref),
            "eps": style_of(*published["eps"][-1]), "price": of_name(market_name("price_local")), "pct": of_name(rating_name("upside")),
            "pct_input": of_name(rating_name("benchmark_return")), "text": of_name(rating_name("computed_rating"))}


def _cell_xml(ref: str, cell: _Cell, style: str) -> str:
    value = cell.value
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if cell.formula is not None:
        formula = f"<f>{xlsx.escape_data(cell.formula)}</f>"
        if number:
            return f'<c r="{ref}" s="{style}">{formula}<v>{repr(float(value))}</v></c>'
        return f'<c r="{ref}" s="{style}" t="str">{formula}<v>{xlsx.escape_data(str(value or ""))}</v></c>'
    if value is None or value == "":
        return f'<c r="{ref}" s="{style}"/>'
    if number:
        return f'<c r="{ref}" s="{style}"><v>{repr(float(value))}</v></c>'
    text = xlsx.escape_data(str(value))
    space = ' xml:space="preserve"' if str(value) != str(value).strip() else ""
    return f'<c r="{ref}" s="{style}" t="inlineStr"><is><t{space}>{text}</t></is></c>'


def _sheet_ref(sheet: str, ref: str) -> str:
    return "'" + sheet.replace("'", "''") + "'!" + ref


def _results_rows(result: RollResult, first: int, links: dict) -> list[list[_Cell]]:
    """The reported year against its forecast, a row per line from sheet row `first`: the
    forecast as a number, the actual a link to the rolled model's reported cell (`links`: line
    key -> (sheet, cell)), the difference, its percent of the forecast and the verdict formulas
    on the band, an input."""
    words = verdict_words()
    rows = []
    for i, r in enumerate(result.results):
        at = {name: cell_name(first + i, LABEL_COL + j) for j, name in enumerate(_RESULT_FIELDS)}
        money = "eps" if r.fmt == "eps" else "money"
        actual = _Cell(r.actual, money, _sheet_ref(*links[r.key]) if r.key in links and r.actual is not None else None)
        row = [_Cell(r.label, "label"), _Cell(r.year, "english"), _Cell(r.forecast, money), actual]
        if r.difference is None:
            row += [_Cell(None, money), _Cell(None, "pct")]
        else:
            row += [_Cell(r.difference, money, f"{at['actual']}-{at['forecast']}"),
                    _Cell(r.pct if r.pct is not None else words["not_meaningful"], "pct",
                          f'IF({at["forecast"]}=0,"{words["not_meaningful"]}",{at["difference"]}/ABS({at["forecast"]}))')]
        row.append(_Cell(r.band, "pct_input", name=band_name(r.key)))
        pct, band = at["pct"], at["band"]
        row.append(_Cell(words[r.verdict], "text",
                         f'IF(ISNUMBER({pct}),IF(ROUND({pct},10)>{band},"{words[BEAT]}",'
                         f'IF(ROUND({pct},10)<-{band},"{words[MISS]}","{words["in_line"]}")),"{words["not_meaningful"]}")'))
        rows.append(row)
    return rows


def revisions_sheet_rows(result: RollResult, links: dict | None = None) -> list[list[_Cell]]:
    """The sheet's content as rows of cells, from the top: title, source line and header on the
    template's rows; the reported year against its forecast (when the roll reported one) from the
    first row; the revisions of the years still forecast under their own header; then the roll's
    notes. Numbers stay numbers (formatted by the cell style)."""
    rows: list[list[_Cell]] = [[] for _ in range(FIRST_ROW)]
    rows[TITLE_ROW] = [_Cell(f"盈利预测调整 Earnings forecast revisions — {result.new.ticker}", "title")]
    rows[SUBTITLE_ROW] = [_Cell(f"调整前 {result.old.source} → 调整后 {result.new.source}：{result.was} 转为实际 "
                                f"{result.reported}，新增预测年度 {result.added}", "subtitle")]
    revisions_header = [_Cell(title, "header") for title in _REVISIONS_HEADER]
    if result.results:
        rows[HEADER_ROW] = [_Cell(title, "header") for title in _RESULTS_HEADER]
        rows[HEADER_ROW - 1] = [_Cell(f"业绩 vs 预测 Results vs forecast: {result.reported} 实际 against the {result.was} "
                                      "forecast; 区间± is editable", "subtitle")]
        rows += _results_rows(result, FIRST_ROW, links or {})
        rows += [[], [_Cell("盈利预测调整 Revisions of the years still forecast", "subtitle")], revisions_header]
    else:
        rows[HEADER_ROW] = revisions_header
    for r in result.remaining:
        change = r.change
        if change is None and r.key == "rating" and r.old != r.new:
            change = "调整"
        fmt = "eps" if r.key == "eps" else "price" if r.key == "target_price" else "text" if r.key == "rating" else "money"
        rows.append([_Cell(r.label, "label"), _Cell(r.year or "—", "english"), _Cell(r.old, fmt), _Cell(r.new, fmt),
                     _Cell(change, fmt), _Cell(r.change_pct, "pct"), _Cell(STATUS_LABELS[r.status], "english")])
    rows.append([])
    rows.append([_Cell("说明 Roll notes", "subtitle")])
    rows += [[_Cell(note, "english")] for note in result.notes]
    rows += [[_Cell(f"覆盖已沿用 carried override: {item.describe()}", "english")] for item in result.carried]
    return rows


def add_revisions_sheet(package: xlsx.Package, result: RollResult, target: Path) -> None:
    """A copy of the package with a visible 盈利预测调整 sheet after 校验, added surgically: the
    sheet part, its relationship, its content type, its entry in the workbook and the defined
    names of its band inputs; local defined names of the sheets after it follow their sheets."""
    styles = _styles(package)
    links = reported_cells(package, result.reported) if result.results else {}
    rows = revisions_sheet_rows(result, links)
    body, names = [], {}
    for r, cells in enumerate(rows):
        xml_cells = []
        for j, cell in enumerate(cells):
            ref = cell_name(r, LABEL_COL + j)
            xml_cells.append(_cell_xml(ref, cell, styles[cell.style]))
            if cell.name:
                names[cell.name] = _sheet_ref(REVISIONS_SHEET, cell_name(r, LABEL_COL + j, absolute=True))
        if xml_cells:
            body.append(f'<row r="{r + 1}">{"".join(xml_cells)}</row>')
    last = cell_name(max(len(rows), 1) - 1, LABEL_COL + len(_WIDTHS) - 1)
    sheet_xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}"><sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>'
        f'<dimension ref="{cell_name(TITLE_ROW, LABEL_COL)}:{last}"/><sheetViews><sheetView showGridLines="0" workbookViewId="0">'
        f'<pane ySplit="{FIRST_ROW}" topLeftCell="{cell_name(FIRST_ROW, LABEL_COL)}" activePane="bottomLeft" state="frozen"/>'
        '</sheetView></sheetViews>'
        f'<sheetFormatPr defaultRowHeight="15"/><cols>{_cols_xml()}</cols>'
        f'<sheetData>{"".join(body)}</sheetData>'
        '<pageMargins left="0.4" right="0.4" top="0.5" bottom="0.5" header="0.3" footer="0.3"/>'
        '<pageSetup paperSize="9" orientation="landscape" fitToHeight="0"/></worksheet>')

    existing = {m for m in package.members if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", m)}
    number = 1
    while f"xl/worksheets/sheet{number}.xml" in existing:
        number += 1
    part = f"xl/worksheets/sheet{number}.xml"
    rels_part = xlsx.rels_name("xl/workbook.xml")
    rels = xlsx.parse_rels(package.members[rels_part], rels_part)
    rid_number = 1
    while f"rId{rid_number}" in rels:
        rid_number += 1
    rid = f"rId{rid_number}"

    workbook_xml = package.members["xl/workbook.xml"]
    order = list(package.sheets)
    position = order.index(CHECKS) + 1 if CHECKS in order else len(order)
    sheet_ids = [int(m) for m in re.findall(rb'<sheet\b[^>]*\ssheetId="(\d+)"', workbook_xml)]
    prefix = _rel_prefix(workbook_xml)
    entry = (f'<sheet name="{xlsx.escape_attribute(REVISIONS_SHEET)}" sheetId="{max(sheet_ids, default=0) + 1}" '
             f'{prefix}:id="{rid}"/>').encode("utf-8")

    def place(attrs, element):
        starts = [m.start() for m in re.finditer(rb"<(?:\w+:)?sheet\b", element)]
        at = starts[position] if position < len(starts) else element.rindex(b"</")
        return element[:at] + entry + element[at:]

    def shift(attrs, element):
        local = attrs.get("localSheetId")
        if local is None or not local.isdigit() or int(local) < position:
            return None
        return re.sub(rb'localSheetId="\d+"', f'localSheetId="{int(local) + 1}"'.encode(), element, count=1)

    def name(attrs, element):
        added = "".join(f'<definedName name="{key}">{xlsx.escape_data(ref)}</definedName>' for key, ref in names.items())
        at = element.rindex(b"</")
        return element[:at] + added.encode("utf-8") + element[at:]

    workbook_xml = xlsx.edit_elements(workbook_xml, "sheets", place)
    workbook_xml = xlsx.edit_elements(workbook_xml, "definedName", shift)
    if names:
        workbook_xml = xlsx.edit_elements(workbook_xml, "definedNames", name)
    rel = f'<Relationship Id="{rid}" Type="{_WORKSHEET_TYPE}" Target="worksheets/sheet{number}.xml"/>'.encode()
    rels_xml = package.members[rels_part]
    rels_xml = rels_xml[:rels_xml.rindex(b"</")] + rel + rels_xml[rels_xml.rindex(b"</"):]
    types_xml = package.members[xlsx.CONTENT_TYPES]
    override = f'<Override PartName="/{part}" ContentType="{_WORKSHEET_CONTENT}"/>'.encode()
    types_xml = types_xml[:types_xml.rindex(b"</")] + override + types_xml[types_xml.rindex(b"</"):]
    replaced = {"xl/workbook.xml": workbook_xml, rels_part: rels_xml, xlsx.CONTENT_TYPES: types_xml}
    xlsx.write(package, replaced, target)
    with zipfile.ZipFile(target, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(part, date_time=package.infos[0].date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, sheet_xml.encode("utf-8"))


def _verify_results(written: xlsx.Package, result: RollResult, output: Path) -> None:
    """The results table's formulas, evaluated in the written file, give what the roll computed:
    the actual linked to the reported cell, the difference, its percent and the verdict."""
    if not result.results:
        return
    values = evaluate(written)
    words = verdict_words()
    for r in result.results:
        sheet, band_ref = written.name_cells(band_name(r.key))[0]
        row = xlsx.split_ref(band_ref)[0] - 1
        got = [values.get((sheet, ref), written.value(sheet, ref))
               for ref in (cell_name(row, LABEL_COL + _RESULT_FIELDS.index(name)) for name in ("actual", "difference", "pct", "verdict"))]
        expected = [r.actual, r.difference, r.pct if r.pct is not None or r.difference is None else words["not_meaningful"],
                    words[r.verdict]]
        if not all(same_value(a, b) or (a in (None, "") and b is None) for a, b in zip(got, expected)):
            raise RollError(f"{output.name}: the results table's row for {r.label} reads {got}, not {expected}; "
                            "nothing written")


def _cols_xml() -> str:
    """The columns' widths, neighbours of one width in one <col> element."""
    out = []
    for width, group in itertools.groupby(enumerate(_WIDTHS, start=LABEL_COL + 1), key=lambda c: c[1]):
        numbers = [number for number, _ in group]
        out.append(f'<col min="{numbers[0]}" max="{numbers[-1]}" width="{width}" customWidth="1"/>')
    return "".join(out)


def _rel_prefix(workbook_xml: bytes) -> str:
    """The prefix workbook.xml binds to the relationships namespace (r for every writer we know)."""
    match = re.search(rb'xmlns:(\w+)="' + re.escape(_REL.encode()) + b'"', workbook_xml)
    return match.group(1).decode() if match else "r"


def render(result: RollResult) -> str:
    """What the command prints: the notes, the carried and dropped overrides, the reported year
    against its forecast, the revisions."""
    lines = [f"rolled into {result.path}: {result.was} → {result.reported} (reported), {result.added} added"]
    lines += [f"  note: {note}" for note in result.notes]
    lines.append(f"Overrides carried: {len(result.carried)}")
    lines += [f"  {item.describe()}" for item in result.carried]
    if result.dropped:
        lines.append(f"Overrides dropped: {len(result.dropped)}")
        lines += [f"  {item.describe()}" for item in result.dropped]
    if result.backup:
        lines.append(f"  the file it replaced is kept as {result.backup.name}")
    if result.results:
        lines.append(render_results(result.results, result.was, result.old.source, result.new.source))
    lines.append(render_revisions(result.old, result.new, result.remaining))
    if result.checks_failed:
        lines.append(f"CHECKS FAIL in the rolled model: {len(result.checks_failed)} "
                     f"(first: {result.checks_failed[0][0]} {result.checks_failed[0][1]})")
    else:
        lines.append("Integrity checks of the rolled model: OK")
    return "\n".join(lines)
