"""Roll a model forward on results day: the first forecast year becomes reported, one forecast
year is added, and the analyst's work in the old workbook comes along.

`roll(model, actuals, output)` reads the model file (its structure verified first), rebuilds its
company data from the company and layout files the build stored in the very hidden `_source`
sheet, with the workbook's CURRENT inputs in place of the file's (every driver on its own year,
reported figures, market and rating inputs), takes the new reported year's figures from an
actuals file, carries the last forecast year's drivers into the new year (marked `review`),
builds the new model and types the analyst's numbers-over-formulas into it again. The rolled
model carries a visible 盈利预测调整 sheet: old vs new estimates (addin.estimates.revision_table).

Every refusal is a `RollError` (one line) raised before anything is written; the output is
written to a temp file beside it, verified and renamed into place.
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

from udfs.engine import ACTUAL, run_checks
from workbook import spec, xlsx
from workbook.build import build
from workbook.files import check_output, place_output, temp_beside
from workbook.layout import (
    CHECKS, ENGLISH_COL, FIRST_ROW, HEADER_ROW, LABEL_COL, SUBTITLE_ROW, TITLE_ROW, cell_name, market_name, rating_name,
)
from workbook.model import build_model
from workbook.tomlfile import TomlError, read_toml
from workbook.xlcalc import evaluate, same_value

from .audit import audit
from .source import RollError, current_inputs, load_company, read_source, stored_and_current  # noqa: F401 - roll's API keeps these names
from .estimates import STATUS_LABELS, Estimates, RevisionRow, published_cells, read_model, render_revisions, revision_table
from .modelfile import regular_file
from .template import blueprint, settings_as_values, verify_structure

REVISIONS_SHEET = "盈利预测调整"
BALANCE_CHECK = "balance"        # the layout check that says total assets = liabilities + equity
MAX_NAMED = 5                    # missing lines named in full up to this many, then a count

# Where each one-value input cell of a model lives in a company file: the inverse of
# workbook.company's scalar_inputs. refresh_stamp and refresh_source are not carried: the
# rolled model is a new build, stamped by its own first refresh.
_ACTUALS_SECTIONS = {"format_version", "company", "actual"}


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


# ------------------------------------------------------------------------------------------------
# Reading the old model
# ------------------------------------------------------------------------------------------------
# ------------------------------------------------------------------------------------------------
# The actuals file
# ------------------------------------------------------------------------------------------------
def read_actuals(path: str | Path, ticker: str, year_label: str, layout: spec.Layout) -> tuple[str, dict]:
    """(label as the file gives it, {line: value}) of one reported year, checked against the
    model: the same ticker, the model's first forecast year, every reported line of the layout."""
    path = Path(path)
    try:
        data = read_toml(path)
    except TomlError as exc:
        raise RollError(str(exc)) from None
    name = path.name
    unknown = set(data) - _ACTUALS_SECTIONS
    if unknown:
        raise RollError(f"{name}: unknown section {sorted(unknown)[0]!r}; an actuals file has [company] ticker and "
                        "[actual.\"YEAR\"] only")
    if data.get("format_version", 1) != 1:
        raise RollError(f"{name}: format_version must be 1, not {data['format_version']!r}")
    given = (data.get("company") or {}).get("ticker") if isinstance(data.get("company"), dict) else None
    if not isinstance(given, str) or not given.strip():
        raise RollError(f"{name}: needs [company] ticker = \"{ticker}\"")
    if given.strip().upper() != ticker.strip().upper():
        raise RollError(f"{name}: is for {given.strip()}, the model is {ticker}; refused")
    years = data.get("actual")
    if not isinstance(years, dict) or len(years) != 1:
        count = len(years) if isinstance(years, dict) else 0
        raise RollError(f"{name}: needs exactly one [actual.\"YEAR\"] table (the year being reported), found {count}")
    (label, figures), = years.items()
    if not re.search(r"\d{4}", str(label)):
        raise RollError(f"{name}: [actual.{label!r}] is not a year such as \"{year_number(year_label)}\"")
    if year_number(label) != year_number(year_label):
        raise RollError(f"{name}: gives {label}, but the model's first forecast year is {year_label}: only that year "
                        "can become reported")
    if not isinstance(figures, dict):
        raise RollError(f"{name}: [actual.\"{label}\"] must be a table of line = value")
    statement_lines = {line.key for line in layout.lines if line.table in spec.STATEMENTS}
    extra = sorted(set(figures) - statement_lines)
    if extra:
        raise RollError(f"{name}: [actual.\"{label}\"] has unknown line {extra[0]!r} (layout {layout.name})")
    missing = sorted(layout.reported_keys - set(figures))
    if missing:
        shown = missing if len(missing) <= MAX_NAMED else missing[:MAX_NAMED]
        more = "" if len(missing) <= MAX_NAMED else f" and {len(missing) - MAX_NAMED} more"
        raise RollError(f"{name}: [actual.\"{label}\"] is missing {len(missing)} reported line"
                        f"{'s' if len(missing) > 1 else ''}: {', '.join(shown)}{more}")
    out = {}
    for key, value in figures.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RollError(f"{name}: [actual.\"{label}\"].{key} = {value!r} is not a number")
        out[key] = float(value)
    return label, out


# ------------------------------------------------------------------------------------------------
# The new year window
# ------------------------------------------------------------------------------------------------
def year_number(label: str) -> int:
    """The calendar year in a year label ("2025E" → 2025); RollError if it has none."""
    match = re.search(r"\d{4}", str(label))
    if match is None:
        raise RollError(f"{label!r} is not a year label such as \"2025E\"")
    return int(match.group(0))


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


def roll_data(data: dict, figures: dict, reported: str, added: str) -> dict:
    """The company data one year on: first forecast year reported with `figures`, one forecast
    year added whose drivers are the last forecast year's, every other driver on its own year."""
    years = data["years"]
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
    valuation = data.get("valuation", {})
    for key, value in list(valuation.items()):
        if key.endswith("_year") and value == first:
            valuation.pop(key)  # a method valued on the year now reported starts again on the first forecast year
    return data


# ------------------------------------------------------------------------------------------------
# The roll
# ------------------------------------------------------------------------------------------------
def roll(model: str | Path, actuals: str | Path, output: str | Path, accept_unbalanced: bool = False,
         today: dt.date | None = None, force: bool = False) -> RollResult:
    """Roll `model` forward with the figures of `actuals` into `output` (see the module doc)."""
    model, output = Path(model), Path(output)
    if output.suffix.lower() != ".xlsm":
        raise RollError(f"{output}: the model carries macros, so its name must end in .xlsm")
    if output.is_dir():
        raise RollError(f"{output}: is a folder; give a file name ending in .xlsm")
    real = regular_file(model)
    if output.exists() and output.resolve() == real:
        raise RollError(f"{output}: is the model being rolled; write the rolled model to a new file")
    if not output.parent.is_dir():
        raise RollError(f"{output.parent}: no such folder")
    check_output(output, force, sources=(real,))  # open elsewhere, or there already without --force
    package = xlsx.read(real)
    verify_structure(package)
    source = read_source(package)
    today = today or dt.date.today()

    with tempfile.TemporaryDirectory(prefix="er-roll-") as work:
        work = Path(work)
        company_name, company_text = source["company"]
        old, data = stored_and_current(package, work, model.name)
        forecast = [y.label for y in old.forecast_years]
        actual = [y.label for y in old.years if y.kind == ACTUAL]
        if len(forecast) < 1 or not actual:
            raise RollError(f"{model.name}: needs a reported and a forecast year to roll")
        reported, added = rolled_years(actual, forecast)
        ticker = str(data["company"]["ticker"])
        given_label, figures = read_actuals(actuals, ticker, forecast[0], old.layout)

        overrides = _overrides(package, forecast[0])
        data = roll_data(data, figures, reported, added)
        notes = [f"rolled from {model.name} on {today.isoformat()}: {forecast[0]} reported as {reported} from "
                 f"{Path(actuals).name}; {added} added, its drivers carried from {forecast[-1]} and marked review"]
        notes += [f"override dropped: {o.describe()}" for o in overrides if o.reason]

        draft = load_company(work / company_name, data, model.name)
        balance = _balance(draft, reported)
        if balance is not None:
            if not accept_unbalanced:
                raise RollError(f"{Path(actuals).name}: the {given_label} balance sheet does not balance ({balance}); "
                                "refused (--accept-unbalanced takes it as reported and records the finding)")
            notes.append(f"finding: the reported {reported} balance sheet does not balance ({balance}); "
                         "accepted with --accept-unbalanced")
        text = _company_text(data, notes, company_text)
        company = load_company(work / company_name, text, model.name)
        result = RollResult(output, reported, forecast[0], added, text, notes)
        _write(company, package, overrides, output, result, force)
    return result


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


def _balance(company, year: str) -> str | None:
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
        add_revisions_sheet(typed_package, result, final)
        written = xlsx.read(final)
        verify_structure(written)
        if REVISIONS_SHEET not in written.sheets:
            raise RollError(f"{output.name}: the rolled model lost its {REVISIONS_SHEET} sheet while being written; nothing written")
        for (sheet, ref), value in cells.items():
            if not same_value(written.value(sheet, ref), value) and not (value is None and written.value(sheet, ref) in (None, "")):
                raise RollError(f"{output.name}: the carried override at {sheet}!{ref} did not survive; nothing written")
        checks = audit(written)
        result.checks_failed = checks.check_failures
        place_output(final, output, force)  # an existing output (--force) is kept as a .bak
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
# The sheet's columns from the label column on: header, the style of a revision's cell (None: the
# line's own number format) and width. Its rows are the template's: title, subtitle, header row,
# then one row a revision from the first row (workbook/layout.py).
_COLUMNS = (("指标 Line", "label", 22.7109375), ("年度 Year", "english", 10.7109375), ("调整前 Old", None, 14.7109375),
            ("调整后 New", None, 14.7109375), ("变动 Change", None, 14.7109375), ("变动% Change %", "pct", 14.7109375),
            ("备注 Note", "english", 12.7109375))


def _styles(package: xlsx.Package) -> dict:
    """Style indexes borrowed from cells the build formatted, so the sheet looks like the rest
    of the model: title, header, label, money, EPS, price, percent and text."""
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
            "text": of_name(rating_name("computed_rating"))}


def _cell_xml(ref: str, value, style: str) -> str:
    if value is None or value == "":
        return f'<c r="{ref}" s="{style}"/>'
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f'<c r="{ref}" s="{style}"><v>{repr(float(value))}</v></c>'
    text = xlsx.escape_data(str(value))
    space = ' xml:space="preserve"' if str(value) != str(value).strip() else ""
    return f'<c r="{ref}" s="{style}" t="inlineStr"><is><t{space}>{text}</t></is></c>'


def revisions_sheet_rows(result: RollResult) -> list[list]:
    """The sheet's content as rows of values, from the top: title, source line and header on the
    template's rows, one row per revision from its first row, then the roll's notes. Numbers stay
    numbers (formatted by the cell style)."""
    rows: list[list] = [[] for _ in range(FIRST_ROW)]
    rows[TITLE_ROW] = [f"盈利预测调整 Earnings forecast revisions — {result.new.ticker}"]
    rows[SUBTITLE_ROW] = [f"调整前 {result.old.source} → 调整后 {result.new.source}：{result.was} 转为实际 {result.reported}，"
                          f"新增预测年度 {result.added}"]
    rows[HEADER_ROW] = [title for title, _, _ in _COLUMNS]
    for r in result.revisions:
        change = r.change
        if change is None and r.key == "rating" and r.old != r.new:
            change = "调整"
        rows.append([r.label, r.year or "—", r.old, r.new, change, r.change_pct, STATUS_LABELS[r.status]])
    rows.append([])
    rows.append(["说明 Roll notes"])
    rows += [[note] for note in result.notes]
    rows += [[f"覆盖已沿用 carried override: {item.describe()}"] for item in result.carried]
    return rows


def add_revisions_sheet(package: xlsx.Package, result: RollResult, target: Path) -> None:
    """A copy of the package with a visible 盈利预测调整 sheet after 校验, added surgically: the
    sheet part, its relationship, its content type and its entry in the workbook; local defined
    names of the sheets after it follow their sheets."""
    styles = _styles(package)
    rows = revisions_sheet_rows(result)
    formats = {r.key: ("eps" if r.key == "eps" else "price" if r.key == "target_price" else
                       "text" if r.key == "rating" else "money") for r in result.revisions}
    body = []
    notes_from = FIRST_ROW + len(result.revisions)
    for r, values in enumerate(rows):
        cells = []
        for j, value in enumerate(values):
            role = _COLUMNS[j][1]
            if r == TITLE_ROW:
                style = styles["title"]
            elif r == SUBTITLE_ROW or r >= notes_from:
                style = styles["subtitle"] if j == 0 else styles["english"]
            elif r == HEADER_ROW:
                style = styles["header"]
            else:
                style = styles[role or formats[result.revisions[r - FIRST_ROW].key]]
            cells.append(_cell_xml(cell_name(r, LABEL_COL + j), value, style))
        if cells:
            body.append(f'<row r="{r + 1}">{"".join(cells)}</row>')
    last = cell_name(max(len(rows), 1) - 1, LABEL_COL + len(_COLUMNS) - 1)
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

    workbook_xml = xlsx.edit_elements(workbook_xml, "sheets", place)
    workbook_xml = xlsx.edit_elements(workbook_xml, "definedName", shift)
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


def _cols_xml() -> str:
    """The columns' widths, neighbours of one width in one <col> element."""
    out = []
    for width, group in itertools.groupby(enumerate(_COLUMNS, start=LABEL_COL + 1), key=lambda c: c[1][2]):
        numbers = [number for number, _ in group]
        out.append(f'<col min="{numbers[0]}" max="{numbers[-1]}" width="{width}" customWidth="1"/>')
    return "".join(out)


def _rel_prefix(workbook_xml: bytes) -> str:
    """The prefix workbook.xml binds to the relationships namespace (r for every writer we know)."""
    match = re.search(rb'xmlns:(\w+)="' + re.escape(_REL.encode()) + b'"', workbook_xml)
    return match.group(1).decode() if match else "r"


def render(result: RollResult) -> str:
    """What the command prints: the notes, the carried and dropped overrides, the revisions."""
    lines = [f"rolled into {result.path}: {result.was} → {result.reported} (reported), {result.added} added"]
    lines += [f"  note: {note}" for note in result.notes]
    lines.append(f"Overrides carried: {len(result.carried)}")
    lines += [f"  {item.describe()}" for item in result.carried]
    if result.dropped:
        lines.append(f"Overrides dropped: {len(result.dropped)}")
        lines += [f"  {item.describe()}" for item in result.dropped]
    lines.append(render_revisions(result.old, result.new, result.revisions))
    if result.checks_failed:
        lines.append(f"CHECKS FAIL in the rolled model: {len(result.checks_failed)} "
                     f"(first: {result.checks_failed[0][0]} {result.checks_failed[0][1]})")
    else:
        lines.append("Integrity checks of the rolled model: OK")
    return "\n".join(lines)
