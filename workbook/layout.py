"""The template's layout, declared as data, and the one engine that places it.

A sheet is a list of rows; a row shows one model line (its home), mirrors a line that lives on
another sheet, is a heading, or (on the checks sheet) is a check. The placement engine turns this
into cell addresses, defined names and Excel formulas, and places the blocks under the checks
(the audit block, the findings table, the sanity warnings), which audit and refresh find by the
defined names given here (AUDIT_*, FINDINGS_*, WARNINGS_* below).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from udfs import formula as fx
from udfs.engine import ACTUAL, BASE, FORECAST, FORECAST_ONLY, Line, Year, driver_key
from udfs.functions import BY_FORMULA_NAME

from . import spec
from .xlsx import col_letters, split_ref

# The template's version: stamped into every workbook, as a custom document property and as a
# defined name (Excel and LibreOffice keep both); `check` compares it with this add-in's.
TEMPLATE_VERSION = "1.0"
TEMPLATE_VERSION_PROPERTY, TEMPLATE_VERSION_NAME = "ER Template Version", "ER_TemplateVersion"

LABEL_COL, ENGLISH_COL, FIRST_VALUE_COL = 0, 1, 2
TITLE_ROW, SUBTITLE_ROW, HEADER_ROW = 0, 1, 3
FIRST_ROW = 4


class RowKind(str, Enum):
    """What one row of a sheet shows."""
    LINE = "line"        # a model line whose home is this row
    MIRROR = "mirror"    # a line whose home is on another sheet, shown here by reference
    HEADING = "heading"  # a section title across the row
    CHECK = "check"      # an integrity check of the checks sheet: one status per forecast year


@dataclass(frozen=True)
class Row:
    kind: RowKind
    key: str | None = None
    label: str | None = None  # overrides the line's Chinese label (the summary's own wording)
    years: str | None = None  # "base": only the base year; None: every year the line has


def line(key, label=None, years=None):
    return Row(RowKind.LINE, key, label, years)


def mirror(key, label=None):
    return Row(RowKind.MIRROR, key, label)


def heading(text):
    return Row(RowKind.HEADING, label=text)



@dataclass(frozen=True)
class Sheet:
    name: str
    title: str
    kind: str               # "yearly", "scalar", "checks", "sensitivity", "conf", "blueprint", "source"
    rows: tuple = ()
    years: str = "reported"  # yearly sheets: "reported" (actual + forecast), "all" (with base), "forecast"
    prefix: str = ""        # defined-name prefix for lines whose home is here
    unit: str = ""


COVER, DRIVERS, RATING, CHECKS, CONF = "封面", "预测假设", "评级", "校验", "xlwings.conf"
BLUEPRINT = "_blueprint"  # very hidden: what the template built where, for check, diff and export
# The blueprint's columns, named in its header row, one row per placed cell. Its readers find each
# column by name and need all but the later ones, which older templates lack: the Chinese label of
# the cell's row, which `check` compares with what the row shows, and the defined name over a
# line's home cells, which `check` requires to be there.
BLUEPRINT_REQUIRED = ("sheet", "cell", "kind", "key", "year", "formula")
BLUEPRINT_COLUMNS = BLUEPRINT_REQUIRED + ("label", "name")
SOURCE = "_source"        # very hidden: the company and layout files the model was built from, for roll
# Defined-name prefixes: a line is named <its home sheet's prefix>_<line key> (BASE_ for its base
# year); a statement sheet's prefix is its layout's (spec.Statement.prefix).
MARKET_PREFIX, SUMMARY_PREFIX, DRIVERS_PREFIX, SCENARIO_PREFIX = "MKT", "SUM", "DRV", "SCN"
RATIOS_PREFIX, VALUATION_BASES_PREFIX, VALUATION_PREFIX = "RAT", "VM", "VAL"
RATING_PREFIX, CHECK_PREFIX, BASE_PREFIX = "RTG", "CHK", "BASE"
# The blocks under the checks: the audit block, the report's findings, the sanity warnings.
AUDIT_PREFIX, FINDINGS_PREFIX, WARNING_PREFIX = "AUD", "FND", "WRN"
SENSITIVITY_PREFIX = "SENS"  # the engine-run sensitivity table, which refresh recomputes
# Every prefix the template names cells under whatever the layout (the statements' prefixes are the
# layout's own); an analyst's name under one of them is still the analyst's (addin/template.py).
NAME_PREFIXES = (MARKET_PREFIX, SUMMARY_PREFIX, DRIVERS_PREFIX, SCENARIO_PREFIX, RATIOS_PREFIX, VALUATION_BASES_PREFIX,
                 VALUATION_PREFIX, RATING_PREFIX, CHECK_PREFIX, BASE_PREFIX, AUDIT_PREFIX, FINDINGS_PREFIX, WARNING_PREFIX,
                 SENSITIVITY_PREFIX)


def defined_name(prefix: str, key: str) -> str:
    """The defined name over a line's cells or a block's: MKT_price, IS_revenue, CHK_balance."""
    return f"{prefix}_{key}"


def market_name(key: str) -> str:
    """The defined name of a cover (market data) line: MKT_price."""
    return defined_name(MARKET_PREFIX, key)


def rating_name(key: str) -> str:
    """The defined name of a rating line: RTG_target_price."""
    return defined_name(RATING_PREFIX, key)


# The market lines refresh reads (ticker, price, FX, date) and stamps: a file without their names
# is not a model any door can use.
REQUIRED_MARKET_LINES = ("ticker", "price", "fx_rate", "price_date", "refresh_stamp", "refresh_source")

# Blocks of the checks sheet that build writes and audit and refresh read back, found by these
# defined names rather than by position or heading (ChecksBlocks places them). The findings table
# lists the findings beyond rounding first; each group's rows (FINDINGS_FIELDS) carry one name,
# absent when the group is empty.
AUDIT_SUMMARY, AUDIT_ITEMS = defined_name(AUDIT_PREFIX, "summary"), defined_name(AUDIT_PREFIX, "items")
AUDIT_ROWS = 12  # item lines of the audit block: a refresh lists at most this many
FINDINGS_BEYOND, FINDINGS_WITHIN = defined_name(FINDINGS_PREFIX, "beyond"), defined_name(FINDINGS_PREFIX, "within")
FINDINGS_FIELDS = ("label", "explanation", "year", "printed", "computed", "difference", "verdict")
# The warnings' year header, one row per warning (WRN_<warning key>) and their overall status.
WARNINGS_YEARS, WARNINGS_STATUS = defined_name(WARNING_PREFIX, "years"), defined_name(WARNING_PREFIX, "status")
VALUATION, VALUATION_BASES = "估值", "估值测算"
SENSITIVITY = "敏感性"
# Defined names of the engine-run sensitivity table, which refresh recomputes (addin/refresh.py).
SENSITIVITY_GRID, SENSITIVITY_ROWS, SENSITIVITY_COLS = (defined_name(SENSITIVITY_PREFIX, f"eps_{part}")
                                                     for part in ("grid", "rows", "cols"))
SENSITIVITY_SPEC = defined_name(SENSITIVITY_PREFIX, "eps_spec")   # "driver a|driver b|line|year"
WACC_STEPS = (-0.015, -0.01, -0.005, 0.0, 0.005, 0.01, 0.015)     # around the model's WACC, down the rows
GROWTH_STEPS = (-0.015, -0.01, -0.005, 0.0, 0.005, 0.01, 0.015)   # around its terminal growth, across
EXIT_STEPS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)               # around the exit multiple, across, when the DCF uses one
MULTIPLE_FACTORS = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)            # times the target P/E, down the rows
WEIGHTS_NAME = defined_name(VALUATION_PREFIX, "weights")  # the block of method weights, as one range


def valuation_rows(plan) -> tuple:
    rows = []
    for heading_text, keys in plan.sections:
        rows.append(heading(heading_text))
        rows += [line(k) for k in keys]
    return tuple(rows)


def valuation_base_rows(plan) -> tuple:
    return tuple(line(l.key) for l in plan.yearly)


def sheets(model_layout: spec.Layout, lines: list[Line]) -> tuple[Sheet, ...]:
    """The template's sheets for one statement layout: the cover, the layout's summary table and
    statements, the drivers, the layout's ratio table, the rating, the checks and xlwings.conf."""
    by_table = {s.table: s for s in model_layout.statements}
    plan = spec.valuation_plan(model_layout)
    statement_sheets = tuple(
        Sheet(by_table[t].sheet, by_table[t].title, "yearly", tuple(line(k) for k in model_layout.keys(t)),
              prefix=by_table[t].prefix, unit="单位：{unit}")
        for t in (s.table for s in model_layout.statements))
    summary_rows = tuple(
        line(key, label) if _table_of(model_layout, key) == spec.SUMMARY else mirror(key, label)
        for key, label in model_layout.summary_rows)
    ratio_rows = tuple([mirror(k) for k in model_layout.ratio_mirrors] + [line(k) for k in model_layout.keys(spec.RATIOS)])
    taken = {name.casefold() for name in FIXED_SHEETS}
    for sheet in (model_layout.summary_sheet, model_layout.ratios_sheet, *(s.sheet for s in model_layout.statements)):
        if sheet.casefold() in taken:
            raise spec.LayoutError(f"{model_layout.path.name}: sheet {sheet!r} is the name of one of the template's own "
                                   "sheets; give the layout's sheet another name")
    return (
        Sheet(COVER, "封面 Cover", "scalar", (
            heading("市场数据 Market data (输入 inputs)"),
            line("ticker"), line("quote_currency"), line("reporting_currency"), line("price"), line("price_date"),
            line("fx_rate"), line("benchmark_level"), line("shares"),
            heading("估值 Valuation"),
            line("price_local"), line("market_cap_local"), line("market_cap_quote"),
            heading("评级 Rating"),
            mirror("published_rating"), mirror("published_action"), mirror("computed_rating"), mirror("rating_action"),
            mirror("benchmark"),
            heading("刷新 Refresh"),
            line("refresh_stamp"), line("refresh_source"),
        ), prefix=MARKET_PREFIX),
        Sheet(model_layout.summary_sheet, model_layout.summary_title, "yearly", summary_rows, prefix=SUMMARY_PREFIX,
              unit="{source_note}"),
        *statement_sheets,
        Sheet(DRIVERS, "预测假设 Forecast drivers", "yearly", drivers_rows(model_layout, lines), years="all",
              prefix=DRIVERS_PREFIX, unit="蓝色为输入 Blue cells are inputs"),
        *scenario_sheets(lines),
        Sheet(model_layout.ratios_sheet, model_layout.ratios_title, "yearly", ratio_rows, prefix=RATIOS_PREFIX),
        Sheet(VALUATION_BASES, "估值测算 Valuation bases", "yearly", valuation_base_rows(plan), prefix=VALUATION_BASES_PREFIX,
              unit="估值所用的各年度基数 The figures each valuation method reads"),
        Sheet(VALUATION, "估值 Valuation", "scalar", valuation_rows(plan), prefix=VALUATION_PREFIX),
        Sheet(SENSITIVITY, "敏感性 Sensitivity", "sensitivity"),
        Sheet(RATING, "评级 Rating", "scalar", tuple(line(l.key) for l in spec.COMMON_LINES if l.table == spec.RATING),
              prefix=RATING_PREFIX),
        Sheet(CHECKS, "校验 Checks", "checks", years="forecast", prefix=CHECK_PREFIX),
        Sheet(CONF, "xlwings.conf", "conf"),
        Sheet(BLUEPRINT, "blueprint", "blueprint"),
        Sheet(SOURCE, "source", "source"),
    )


SCENARIOS = "情景"
FIXED_SHEETS = (COVER, DRIVERS, SCENARIOS, VALUATION_BASES, VALUATION, SENSITIVITY, RATING, CHECKS, CONF, BLUEPRINT, SOURCE)


def scenario_sheets(lines: list[Line]) -> tuple:
    """The 情景 sheet: the base, bear and bull values of every driver that varies by scenario."""
    rows = tuple(line(l.key) for l in lines if l.table == "scenarios")
    if not rows:
        return ()
    return (Sheet(SCENARIOS, "情景 Scenarios（悲观/乐观为空时取基准值）", "yearly", rows, years="forecast", prefix=SCENARIO_PREFIX,
                  unit="选择情景：预测假设 sheet 的“情景”单元格 Choose on the drivers sheet"),)


def _table_of(model_layout: spec.Layout, key: str) -> str | None:
    return next((l.table for l in model_layout.lines if l.key == key), None)


def drivers_rows(model_layout: spec.Layout, lines: list[Line]) -> tuple:
    """The assumptions sheet: base-year figures, then every driver line, grouped by statement."""
    rows = [line("scenario")] if any(l.key == "scenario" and l.scalar for l in lines) else []
    if model_layout.base_lines:
        rows += [heading("基期数据 Base year (公司公告)")] + [line(k, years="base") for k in model_layout.base_lines]
    titles = {spec.INCOME: "损益表假设 Income statement", spec.BALANCE: "资产负债表假设 Balance sheet",
              spec.CASHFLOW: "现金流量表假设 Cash flow"}
    by_key = {l.key: l for l in lines}
    for statement in model_layout.statements:
        rows.append(heading(titles[statement.table]))
        rows += [line(driver_key(l.key)) for l in model_layout.lines
                 if l.table == statement.table and l.driven and driver_key(l.key) in by_key]
    standalone = [l.key for l in model_layout.lines if l.table == spec.DRIVERS]
    if standalone:
        rows.append(heading("报告未披露口径的调节项 Reconciling drivers (method not disclosed)"))
        rows += [line(k) for k in standalone]
    return tuple(rows)


def col_name(col: int) -> str:
    """Column letters of a 0-based column index (the writer's convention; xlsx counts from 1)."""
    return col_letters(col + 1)


def cell_name(row: int, col: int, absolute: bool = False) -> str:
    d = "$" if absolute else ""
    return f"{d}{col_name(col)}{d}{row + 1}"


def label_cell(ref: str) -> str:
    """The label cell of the row a cell (A1 reference) sits in: where its line's name is written."""
    return cell_name(split_ref(ref)[0] - 1, LABEL_COL)


def quote_sheet(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


CELL_KINDS = ("input", "formula", "mirror")  # what a placed cell holds; the blueprint's kind column


@dataclass
class Cell:
    sheet: str
    row: int
    col: int
    key: str
    year: str | None            # None for a one-value line
    kind: str                   # one of CELL_KINDS
    formula: str | None = None  # Excel formula without "="
    name: str | None = None     # the defined name over the line's home cells; None for a mirror


@dataclass(frozen=True)
class WarningsBlock:
    """The sanity warnings' rows (0-based) on the checks sheet, and their bounds' columns."""
    title: int
    header: int                # the forecast years over the warnings' status cells
    rows: range                # one a warning, in the layout's order
    status: int                # the overall status
    bounds: tuple[int, int]    # the columns of a warning's lower and upper bound inputs, after the years


@dataclass(frozen=True)
class ChecksBlocks:
    """The rows (0-based) of the blocks under the checks on the checks sheet, each under a title
    row: the audit block a refresh fills (a summary line in the English column, AUDIT_ROWS item
    lines under it) and the report's findings (a header row, then one row a finding, beyond
    rounding first, FINDINGS_FIELDS from the label column on), each one blank row below what comes
    before; then, two blank rows down, the sanity warnings (a header row with the forecast years,
    one row a warning with its bounds after the years, an overall status row; absent without
    warnings)."""
    audit_title: int
    audit_summary: int
    findings_title: int
    findings_header: int
    findings_beyond: range
    findings_within: range
    warnings: WarningsBlock | None

    @property
    def audit_items(self) -> range:
        return range(self.audit_summary + 1, self.audit_summary + 1 + AUDIT_ROWS)

    @property
    def findings_last_col(self) -> int:
        """The findings table's last column: the blocks' titles span the table."""
        return LABEL_COL + len(FINDINGS_FIELDS) - 1


@dataclass
class Placement:
    """Where everything sits: every cell, every line's home, and the defined names."""
    years: list[Year]
    lines: dict
    sheets: tuple
    rows: dict = field(default_factory=dict)        # sheet name -> list of (row index, Row)
    year_cols: dict = field(default_factory=dict)   # sheet name -> list of year labels by column
    home: dict = field(default_factory=dict)        # (key, year or None) -> Cell
    cells: list = field(default_factory=list)
    names: dict = field(default_factory=dict)       # defined name -> "'Sheet'!$C$5:$G$5"
    checks_blocks: ChecksBlocks | None = None

    def address(self, key: str, year: str | None, from_sheet: str, absolute: bool = False) -> str:
        cell = self.home[(key, year)]
        ref = cell_name(cell.row, cell.col, absolute or year is None)
        return ref if cell.sheet == from_sheet else f"{quote_sheet(cell.sheet)}!{ref}"


def sheet_years(sheet: Sheet, years: list[Year]) -> list[str]:
    if sheet.years == "all":
        return [y.label for y in years]
    if sheet.years == "forecast":
        return [y.label for y in years if y.kind == FORECAST]
    return [y.label for y in years if y.kind != BASE]


def _line_years(line_: Line, row: Row, years: list[Year], columns: list[str]) -> list[str]:
    kinds = {y.label: y.kind for y in years}
    if row.years == "base":
        wanted = [y for y in columns if kinds[y] == BASE]
    elif line_.history == FORECAST_ONLY:
        shown = (FORECAST, ACTUAL) if line_.implied else (FORECAST,)
        wanted = [y for y in columns if kinds[y] in shown]
    else:
        wanted = [y for y in columns if kinds[y] != BASE]
    return wanted


def _is_formula(line_: Line, year_kind: str | None) -> bool:
    if year_kind is None:
        return line_.formula is not None
    return line_.formula_in(year_kind) is not None


class _Ranges:
    """Excel text for the formula forms that read other years: a line's forecast row, one-value
    lines side by side, a line's value in the year a cell names (ER_AT_YEAR over the line's
    row and its sheet's header row), and a line's row from its first reported year through the
    year of the cell being written."""

    def __init__(self, placement: "Placement", sheet: str, year: str | None = None, col: int | None = None):
        self.p, self.sheet, self.year, self.col = placement, sheet, year, col

    def _row(self, key: str, years: list[str]) -> str:
        cells = [self.p.home[(key, y)] for y in years if (key, y) in self.p.home]
        if not cells:
            raise ValueError(f"line {key!r} has no cells in years {years}")
        first, last = cells[0], cells[-1]
        if len({c.row for c in cells}) != 1 or last.col - first.col != len(cells) - 1:
            raise ValueError(f"line {key!r}: its cells in {years} are not one unbroken row")
        return self._qualify(first.sheet, f"{cell_name(first.row, first.col, True)}:{cell_name(last.row, last.col, True)}")

    def _qualify(self, sheet: str, ref: str) -> str:
        return ref if sheet == self.sheet else f"{quote_sheet(sheet)}!{ref}"

    def forecast(self, key: str) -> str:
        return self._row(key, [y.label for y in self.p.years if y.kind == FORECAST])

    def row(self, key: str) -> str:
        """The line over every year its sheet shows (the engine's `row()`: all but the base year)."""
        return self._row(key, [y.label for y in self.p.years if y.kind != BASE])

    def _header(self, sheet: str) -> str:
        columns = self.p.year_cols[sheet]
        first, last = FIRST_VALUE_COL, FIRST_VALUE_COL + len(columns) - 1
        return self._qualify(sheet, f"{cell_name(HEADER_ROW, first, True)}:{cell_name(HEADER_ROW, last, True)}")

    def years_after(self, year_key: str) -> str:
        """How many years this cell's column comes after the year a one-value line names, by the
        positions of both labels in the sheet's header row."""
        if self.year is None or self.col is None:
            raise ValueError("years_after() belongs in a yearly line's formula")
        own = cell_name(HEADER_ROW, self.col, True)
        return (f"{BY_FORMULA_NAME['years_after'].excel_name}({self.p.address(year_key, None, self.sheet, True)},{own},"
                f"{self._header(self.sheet)})")

    def history(self, key: str) -> str:
        labels = [y.label for y in self.p.years if y.kind != BASE]
        if self.year not in labels:
            raise ValueError(f"history({key}) is read by a yearly line, in its own year")
        return self._row(key, labels[:labels.index(self.year) + 1])

    def column(self, keys) -> str:
        cells = [self.p.home[(k, None)] for k in keys]
        rows = [c.row for c in cells]
        if len({(c.sheet, c.col) for c in cells}) != 1 or rows != list(range(rows[0], rows[0] + len(rows))):
            raise ValueError(f"lines {list(keys)} must sit in consecutive rows of one column to be read as a column")
        first, last = cells[0], cells[-1]
        return self._qualify(first.sheet, f"{cell_name(first.row, first.col, True)}:{cell_name(last.row, last.col, True)}")

    def at(self, key: str, year_key: str) -> str:
        sheet = next(c.sheet for (k, y), c in self.p.home.items() if k == key)
        columns = self.p.year_cols[sheet]
        first, last = FIRST_VALUE_COL, FIRST_VALUE_COL + len(columns) - 1
        row = next(c.row for (k, y), c in self.p.home.items() if k == key)
        values = self._qualify(sheet, f"{cell_name(row, first, True)}:{cell_name(row, last, True)}")
        header = self._qualify(sheet, f"{cell_name(HEADER_ROW, first, True)}:{cell_name(HEADER_ROW, last, True)}")
        return f"{BY_FORMULA_NAME['at_year'].excel_name}({values},{header},{self.p.address(year_key, None, self.sheet, True)})"


def place(lines: list[Line], years: list[Year], model_layout: spec.Layout, beyond_rounding: int = 0,
          within_rounding: int = 0) -> Placement:
    """Assign every line its cells, translate every formula, name every line: homes first, then
    the formulas and mirrors that address them, the check rows, the blocks under them (for this
    many findings of the report beyond and within rounding), and the defined names."""
    by_key = {l.key: l for l in lines}
    p = Placement(years, by_key, sheets(model_layout, lines))
    _place_homes(p)
    _place_formulas(p)
    _place_checks(p, model_layout.checks)
    _place_checks_blocks(p, model_layout.warnings, beyond_rounding, within_rounding)
    _place_names(p, model_layout)
    return p


def _place_homes(p: Placement) -> None:
    """Every line's row, and its home cell in each year it shows (or its one cell)."""
    kinds = {y.label: y.kind for y in p.years}
    for sheet in p.sheets:
        if sheet.kind not in ("yearly", "scalar"):
            continue
        columns = sheet_years(sheet, p.years) if sheet.kind == "yearly" else []
        p.year_cols[sheet.name] = columns
        placed, r = [], FIRST_ROW
        for row in sheet.rows:
            placed.append((r, row))
            if row.kind == RowKind.LINE:
                line_ = p.lines[row.key]
                if sheet.kind == "scalar" or line_.scalar:  # a one-value line sits in the first value column
                    p.home[(row.key, None)] = Cell(sheet.name, r, FIRST_VALUE_COL, row.key, None,
                                                   "formula" if line_.formula else "input")
                else:
                    for y in _line_years(line_, row, p.years, columns):
                        p.home[(row.key, y)] = Cell(sheet.name, r, FIRST_VALUE_COL + columns.index(y), row.key, y,
                                                    "formula" if _is_formula(line_, kinds[y]) else "input")
            r += 1
        p.rows[sheet.name] = placed


def translator(p: Placement, sheet_name: str, year: str | None):
    """How a formula on `sheet_name` in `year` addresses a line (a prior year outside the model: NA())."""
    labels = [y.label for y in p.years]

    def address(key: str, lag: int) -> str:
        if p.lines[key].scalar:
            return p.address(key, None, sheet_name, absolute=True)
        pos = labels.index(year) - lag
        if pos < 0 or (key, labels[pos]) not in p.home:
            return "NA()"
        return p.address(key, labels[pos], sheet_name)
    return address


def excel_name(function: str) -> str:
    return BY_FORMULA_NAME[function].excel_name


def _place_formulas(p: Placement) -> None:
    """The Excel formula of every formula cell, and the mirror cells, now that every home is known."""
    kinds = {y.label: y.kind for y in p.years}
    for home_key, cell in list(p.home.items()):
        line_ = p.lines[cell.key]
        if cell.kind == "formula":
            text = line_.formula if cell.year is None else line_.formula_in(kinds[cell.year])
            cell.formula = fx.to_excel(fx.parse(text), translator(p, cell.sheet, cell.year), excel_name,
                                       _Ranges(p, cell.sheet, cell.year, cell.col))
            if "NA()" in cell.formula and kinds.get(cell.year) != FORECAST:
                del p.home[home_key]  # a reported year whose prior year is not in the model: left empty
                continue
        p.cells.append(cell)
    for sheet in p.sheets:
        for r, row in p.rows.get(sheet.name, []):
            if row.kind != RowKind.MIRROR:
                continue
            line_ = p.lines[row.key]
            if sheet.kind == "scalar" or line_.scalar:
                p.cells.append(Cell(sheet.name, r, FIRST_VALUE_COL, row.key, None, "mirror",
                                    p.address(row.key, None, sheet.name, absolute=True)))
                continue
            for i, y in enumerate(p.year_cols[sheet.name]):
                if (row.key, y) in p.home:
                    p.cells.append(Cell(sheet.name, r, FIRST_VALUE_COL + i, row.key, y, "mirror",
                                        p.address(row.key, y, sheet.name)))


def _place_checks(p: Placement, checks) -> None:
    """One row per check, one column per forecast year, and a name over each row."""
    check_sheet = next(s for s in p.sheets if s.kind == "checks")
    columns = sheet_years(check_sheet, p.years)
    p.year_cols[check_sheet.name] = columns
    p.rows[check_sheet.name] = [(FIRST_ROW + i, Row(RowKind.CHECK, c.key, c.label_zh)) for i, c in enumerate(checks)]
    for i, check in enumerate(checks):
        r = FIRST_ROW + i
        for j, y in enumerate(columns):
            tr = translator(p, check_sheet.name, y)
            actual = fx.to_excel(fx.parse(check.actual), tr, excel_name)
            expected = fx.to_excel(fx.parse(check.expected), tr, excel_name)
            formula = f"{excel_name('check')}({actual},{expected},{check.tolerance!r})"
            p.cells.append(Cell(check_sheet.name, r, FIRST_VALUE_COL + j, f"check:{check.key}", y, "formula", formula))
        p.names[defined_name(check_sheet.prefix, check.key)] = _area(check_sheet.name, r, FIRST_VALUE_COL, r,
                                                                      FIRST_VALUE_COL + len(columns) - 1)


def _area(sheet: str, first_row: int, first_col: int, last_row: int, last_col: int) -> str:
    """A defined name's range, absolute, even when it is one cell: 'Sheet'!$C$5:$G$5."""
    return f"{quote_sheet(sheet)}!{cell_name(first_row, first_col, True)}:{cell_name(last_row, last_col, True)}"


def _place_checks_blocks(p: Placement, warnings, beyond_rounding: int, within_rounding: int) -> None:
    """The audit block, the findings table and the sanity warnings under the checks (ChecksBlocks),
    and the names audit and refresh find them by."""
    sheet = next(s.name for s in p.sheets if s.kind == "checks")
    columns = p.year_cols[sheet]
    last_check = FIRST_ROW + len(p.rows[sheet]) - 1
    audit_title = last_check + 2
    findings_title = audit_title + 1 + AUDIT_ROWS + 2  # below the summary line and its items
    findings_header = findings_title + 1
    beyond = range(findings_header + 1, findings_header + 1 + beyond_rounding)
    within = range(beyond.stop, beyond.stop + within_rounding)
    last_value_col = FIRST_VALUE_COL + len(columns) - 1
    warnings_block = None
    if warnings:
        title = within.stop + 2  # the last finding's row (or the header's) is within.stop - 1
        rows = range(title + 2, title + 2 + len(warnings))
        warnings_block = WarningsBlock(title, title + 1, rows, rows.stop, (last_value_col + 1, last_value_col + 2))
    blocks = ChecksBlocks(audit_title, audit_title + 1, findings_title, findings_header, beyond, within, warnings_block)
    p.checks_blocks = blocks
    p.names[AUDIT_SUMMARY] = f"{quote_sheet(sheet)}!{cell_name(blocks.audit_summary, ENGLISH_COL, True)}"
    p.names[AUDIT_ITEMS] = _area(sheet, blocks.audit_items[0], ENGLISH_COL, blocks.audit_items[-1], ENGLISH_COL)
    for name, group in ((FINDINGS_BEYOND, beyond), (FINDINGS_WITHIN, within)):
        if group:
            p.names[name] = _area(sheet, group[0], LABEL_COL, group[-1], blocks.findings_last_col)
    if warnings_block:
        header = warnings_block.header
        p.names[WARNINGS_YEARS] = _area(sheet, header, FIRST_VALUE_COL, header, last_value_col)
        for r, warning in zip(warnings_block.rows, warnings):
            p.names[defined_name(WARNING_PREFIX, warning.key)] = _area(sheet, r, FIRST_VALUE_COL, r, last_value_col)
        p.names[WARNINGS_STATUS] = f"{quote_sheet(sheet)}!{cell_name(warnings_block.status, FIRST_VALUE_COL, True)}"


def _place_names(p: Placement, model_layout: spec.Layout) -> None:
    """A defined name per line over its home cells (BASE_ for the base year), and the weights."""
    kinds = {y.label: y.kind for y in p.years}
    prefixes = {s.name: s.prefix for s in p.sheets}
    homes: dict = {}
    for (key, year), cell in p.home.items():
        homes.setdefault((key, cell.sheet, year is not None and kinds[year] == BASE), []).append(cell)
    for (key, sheet_name, is_base), cells in homes.items():
        prefix = BASE_PREFIX if is_base else prefixes[sheet_name]
        first = min(cells, key=lambda c: c.col)
        last = max(cells, key=lambda c: c.col)
        ref = cell_name(first.row, first.col, True) + ("" if first is last else ":" + cell_name(last.row, last.col, True))
        p.names[defined_name(prefix, key)] = f"{quote_sheet(sheet_name)}!{ref}"
        for cell in cells:
            cell.name = defined_name(prefix, key)
    weights = spec.valuation_plan(model_layout).weights
    if weights:
        p.names[WEIGHTS_NAME] = _Ranges(p, "").column(weights)
