"""Tables as the converter leaves them: an HTML grid or a run of tab-separated lines becomes a
table with a title, a kind, a unit, year columns and rows of printed figures.

The converter's forms this reads (each a class of notes, not one note):
- a title printed on the line above the table, in a row of its own inside it, or in the header's
  first cell, with the unit in parentheses or after 单位;
- a year header with one year per cell, several years in one merged cell ("2025A 2026E"), a year
  beside the unit ("单位：百万元 2027E") or beside the first row's figure ("2024A 372");
- no year header at all (a table that continues another: `tables_of_note` gives it the years);
- more columns than years, the figures of a row in order in whichever cells the converter chose.

The label repairs and the figures moved between rows are `repair.py`'s.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser

from .labels import STATEMENTS, LabelData, normalise_label
from .numbers import PrintedNumber

from .source import Block, NoteError

MAX_SPAN = 50            # rowspan/colspan beyond this is damage, not layout
MAX_ROWS = 2_000         # rows of one table
MAX_COLUMNS = 60         # cells of one row
MAX_CELL_CHARS = 1_000   # a cell's text beyond this is a converter's run-on text, never a figure or a label


@dataclass(frozen=True)
class YearColumn:
    label: str       # as printed: 2024A, 2026E, 2023
    year: int
    forecast: bool
    mark: str        # the printed mark: "A", "E", or "" for a bare year
    column: int      # index of the value cell (0 = the first cell after the label) it was printed over


@dataclass
class Row:
    label: str                             # as printed, markup removed (split labels joined)
    position: int                          # index among the table's rows (headings included)
    texts: list[str]                       # every printed cell after the label
    cells: list[PrintedNumber | None]      # one per year column
    heading: bool = False                  # a section heading such as 成长能力: no figures
    section: str | None = None             # the heading this row sits under
    bold: bool = False
    unit: str | None = None                # from the label: 营业收入(百万元) -> 百万元
    repairs: list[str] = field(default_factory=list)
    damage: dict[int, tuple[str, str]] = field(default_factory=dict)  # year index -> (printed text, what is wrong)

    @property
    def has_figures(self) -> bool:
        return any(c is not None for c in self.cells)

    @property
    def percent(self) -> bool:
        return any(c is not None and c.percent for c in self.cells)


@dataclass
class Table:
    title: str
    kind: str                    # income/balance/cashflow/summary/ratios/market/rating_scheme/other
    unit: str | None
    years: list[YearColumn]
    rows: list[Row]
    form: str                    # "tsv" or "html"
    line: int                    # line of the note (1-based) where the table starts
    heading: str | None = None   # the Markdown section it sits in
    header: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # what the reader did to the table as a whole

    @property
    def lines(self) -> list[Row]:
        """The rows that carry figures (headings excluded)."""
        return [r for r in self.rows if not r.heading]

    def row(self, label: str) -> Row:
        key = normalise_label(label)
        for r in self.rows:
            if normalise_label(r.label) == key:
                return r
        raise KeyError(f"no row labelled {label!r} in {self.title}")


# --------------------------------------------------------------------------------------------
# Grids

@dataclass(frozen=True)
class Cell:
    text: str
    bold: bool = False


class _HtmlTable(HTMLParser):
    """Rows of cells with rowspan/colspan expanded into a rectangular grid, spans bounded."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[list[tuple[str, bool, int, int]]] = []
        self._cell: list[str] | None = None
        self._chars = 0
        self._span = (1, 1)
        self._cell_bold = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            if len(self.rows) >= MAX_ROWS:
                raise NoteError(f"a table of more than {MAX_ROWS:,} rows: more than a note's table")
            self.rows.append([])
        elif tag in ("td", "th"):
            if not self.rows:
                self.rows.append([])
            self._cell, self._chars = [], 0
            self._cell_bold = tag == "th"
            self._span = (_span(attrs.get("rowspan")), _span(attrs.get("colspan")))
        elif tag in ("b", "strong"):
            self._cell_bold = self._cell_bold or self._cell is not None
        elif tag == "br" and self._cell is not None and self._chars < MAX_CELL_CHARS:
            self._cell.append(" ")
            self._chars += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            if len(self.rows[-1]) >= MAX_COLUMNS:
                raise NoteError(f"a table row of more than {MAX_COLUMNS} cells: more than a note's table")
            self.rows[-1].append(("".join(self._cell).strip(), self._cell_bold, *self._span))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None and self._chars < MAX_CELL_CHARS:
            self._cell.append(data[:MAX_CELL_CHARS])
            self._chars += len(data)

    def grid(self) -> list[list[Cell]]:
        grid: list[list[Cell]] = []
        pending: dict[tuple[int, int], Cell] = {}
        for r, cells in enumerate(self.rows):
            out: list[Cell] = []
            c = 0
            queue = list(cells)
            while queue or (r, c) in pending:
                if (r, c) in pending:
                    out.append(pending.pop((r, c)))
                    c += 1
                    continue
                text, bold, rowspan, colspan = queue.pop(0)
                rowspan = min(rowspan, len(self.rows) - r)      # a span never reaches beyond the table
                for dc in range(colspan):
                    # a cell spanning columns is printed once; the rest of its span is empty
                    out.append(Cell(text, bold) if dc == 0 else Cell("", bold))
                    for dr in range(1, rowspan):
                        pending[(r + dr, c + dc)] = Cell("", bold) if dc else Cell(text, bold)
                c += colspan
                if c > MAX_COLUMNS:
                    raise NoteError(f"a table row wider than {MAX_COLUMNS} cells: more than a note's table")
            grid.append(out)
        return grid


def _span(value) -> int:
    try:
        return min(MAX_SPAN, max(1, int(str(value).strip().strip('"'))))
    except (TypeError, ValueError):
        return 1


class _Markup(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.bold = False

    def handle_starttag(self, tag, attrs):
        self.bold = self.bold or tag in ("b", "strong")

    def handle_data(self, data):
        self.parts.append(data)


def strip_markup(cell: str) -> tuple[str, bool]:
    """A cell's text without markup (bold kept as a flag), entities decoded, converter escapes
    (`\\_`, `\\~`) undone."""
    text, bold = cell, False
    if "<" in cell or "&" in cell:
        parser = _Markup()
        parser.feed(well_formed(cell))
        parser.close()
        text, bold = "".join(parser.parts), parser.bold
    return re.sub(r"\\([_~*\[\]])", r"\1", text).strip(), bold


def well_formed(markup: str) -> str:
    """`markup` with every `<` that does not open a tag closed before the next `<` written as
    text (`&lt;`): a converter's stray or cut-off tag is text, and the HTML parser, which looks
    ahead for the end of an unclosed tag from each one (quadratic on `<table<table…`), only
    ever sees whole tags. Linear in the markup."""
    pieces = markup.split("<")
    out = [pieces[0]]
    for piece in pieces[1:]:
        first = piece[:1]
        opens = first.isascii() and (first.isalpha() or first in "/!") and ">" in piece
        out.append(("<" if opens else "&lt;") + piece)
    return "".join(out)


def grid_of(block: Block) -> list[list[Cell]]:
    """The block's cells, markup removed."""
    if block.kind == "html":
        parser = _HtmlTable()
        parser.feed(well_formed(block.text))
        parser.close()
        raw = parser.grid()
    else:
        lines = block.text.split("\n")
        if len(lines) > MAX_ROWS:
            raise NoteError(f"a table of more than {MAX_ROWS:,} rows: more than a note's table")
        raw = [[Cell(c[:MAX_CELL_CHARS]) for c in line.split("\t")[:MAX_COLUMNS + 1]] for line in lines]
    grid = []
    for row in raw:
        cells = []
        for cell in row:
            text, bold = strip_markup(cell.text)
            cells.append(Cell(text, bold or cell.bold))
        grid.append(cells)
    return grid


# --------------------------------------------------------------------------------------------
# Years

_YEAR = re.compile(r"(?:FY)?((?:19|20)\d{2})(?:年)?([AEFP]?)")


def year_of(token: str) -> tuple[int, str] | None:
    text = unicodedata.normalize("NFKC", token).strip().upper()
    match = _YEAR.fullmatch(text)
    return (int(match.group(1)), match.group(2)) if match else None


@dataclass(frozen=True)
class Header:
    """A header row: its years with the value column each was printed over, and what else its
    cells held (the title and unit; a first row of figures printed beside the years)."""
    years: list[YearColumn]
    first_cell: str
    packed: bool                 # several years in one cell: columns follow the data rows
    figures: list[str]           # a figure printed after each year in the same cell, if any
    extra: str                   # other words in the year cells (a unit: 单位：百万元)


def read_header(cells: list[str]) -> Header | None:
    """The row's years, if it names two or more in increasing order; None otherwise."""
    years: list[tuple[int, str, int]] = []
    figures: list[str] = []
    extra: list[str] = []
    packed = False
    for index, cell in enumerate(cells[1:]):
        tokens = cell.split()
        found = [(t, year_of(t)) for t in tokens]
        in_cell = [(t, y) for t, y in found if y]
        packed |= len(in_cell) > 1
        for j, (token, y) in enumerate(found):
            if y:
                years.append((y[0], y[1], index, token))
                after = found[j + 1][0] if j + 1 < len(found) and not found[j + 1][1] else ""
                figures.append(after if re.fullmatch(r"[-+(]?[\d,.]+\)?%?", after or "x") else "")
            elif not (j and found[j - 1][1] and figures and figures[-1] == token):
                extra.append(token)
    first = cells[0] if cells else ""
    # Years printed in the first cell too ("项目\年度 2025A 2026E" merged over three cells).
    lead = [(t, year_of(t)) for t in first.split()]
    if any(y for _, y in lead):
        packed = True
        years = [(y[0], y[1], -1, t) for t, y in lead if y] + years
        figures = [""] * sum(1 for _, y in lead if y) + figures
        first = " ".join(t for t, y in lead if not y)
    if len(years) < 2 or any(b[0] <= a[0] for a, b in zip(years, years[1:])):
        return None
    columns = [YearColumn(token.strip(), y, mark in ("E", "F", "P"), mark, -1 if packed else col)
               for y, mark, col, token in years]
    return Header(columns, first, packed, figures if any(figures) else [], " ".join(extra))


# --------------------------------------------------------------------------------------------
# Units, kinds, titles

_PARENS = re.compile(r"[(（]\s*([^()（）]{0,40}?)\s*[)）]")


def unit_in(text: str, data: LabelData) -> str | None:
    """A unit named in parentheses, or after 单位:, if it is one."""
    folded = unicodedata.normalize("NFKC", text)[:200]
    candidates = [m.group(1) for m in _PARENS.finditer(folded)]
    match = re.search(r"单位\s*[:：]\s*([^\s,;)]{1,12})", folded)
    if match:
        candidates.insert(0, match.group(1))
    for candidate in candidates:
        candidate = re.sub(r"^单位\s*[:：]\s*", "", candidate).strip()
        if candidate in ("%", "倍", "x", "X") or data.currency_of(candidate) or candidate.endswith("股") \
                or data.scale_of(candidate):
            return candidate
    return None


def title_kind(title: str, data: LabelData) -> str | None:
    """The table kind a title names, by the label data's keywords."""
    folded = re.sub(r"\s+", "", unicodedata.normalize("NFKC", title)).casefold()[:200]
    for kind, words in data.section("table_kinds").items():
        if any(re.sub(r"\s+", "", unicodedata.normalize("NFKC", w)).casefold() in folded for w in words):
            return kind
    return None


def kind_votes(labels: list[str], data: LabelData) -> Counter:
    """How many of the labels each table kind's vocabulary knows."""
    votes = Counter()
    for kind in STATEMENTS + ("ratios", "summary"):
        table = data.variants.get(kind, {})
        votes[kind] = sum(normalise_label(label) in table for label in labels)
    return votes


def kind_of(title_kind_: str | None, labels: list[str], data: LabelData) -> tuple[str, str]:
    """(kind, how it was decided): the title's kind unless the lines say otherwise (a detached
    title, a ratio table printed after a balance sheet), else the kind most of the lines are. A
    short table of money lines with multiples (P/E) is a summary."""
    votes = kind_votes(labels, data)
    n = max(1, len(labels))
    summary = data.variants.get("summary", {})
    roles = [summary[normalise_label(l)][0] for l in labels if normalise_label(l) in summary]
    multiples = sum(r in ("pe", "pb", "adjusted_pe") for r in roles)
    money = sum(r in ("revenue", "attributable_profit", "net_profit", "non_ifrs_net_profit") for r in roles)
    statements = [k for k in STATEMENTS if votes[k] >= max(3, n // 3)]
    best = max(statements, key=lambda k: votes[k]) if statements else None
    if title_kind_ in STATEMENTS:
        if votes[title_kind_] >= max(2, n // 4) or best is None:
            return title_kind_, "title"
        return best, f"lines (its title names the {title_kind_})"
    if title_kind_ in ("summary", "ratios"):
        if best and votes[best] >= n // 2 and not multiples:
            return best, f"lines (its title names the {title_kind_})"
        return title_kind_, "title"
    if best and votes[best] >= n // 2 and not (multiples and n <= 16):
        return best, "lines"
    if multiples and money:
        return "summary", "lines"
    if votes["ratios"] >= max(3, n // 2) and votes["ratios"] >= votes["summary"]:
        return "ratios", "lines"
    if votes["summary"] >= max(2, n // 3):
        return "summary", "lines"
    if best:
        return best, "lines"
    return "other", "lines"


def market_role(label: str, data: LabelData) -> str | None:
    hit = data.variants.get("market", {}).get(normalise_label(label))
    return hit[0] if hit else None


def is_scheme_header(cells: list[str], data: LabelData) -> bool:
    words = data.section("rating_scheme").get("header_words", [])
    joined = " ".join(cells)
    return bool(words) and all(w in joined for w in words)


# --------------------------------------------------------------------------------------------
# A table from its grid

@dataclass
class Draft:
    """A table block read as far as it can be without the rest of the note: its title rows, its
    header (if it prints one) and its rows as the converter printed them."""
    block: Block
    titles: list[str]
    header: Header | None
    header_cells: list[str]
    rows: list            # of repair.Physical
    width: int            # value cells in a row, as most rows print them
    context: list[str]    # text lines printed between the previous table and this one
    heading: str | None
    index: int = 0


MAX_TITLE = 40           # a text line longer than this above a table is prose, not its title
_TEMPLATE_TAG = re.compile(r"\[Table_[^\]]{0,40}\]?")


def clean_title(text: str) -> str:
    """A title without the Markdown heading marks and the converter's template tags
    (`[Table_FinchinaDetail]`)."""
    text = _TEMPLATE_TAG.sub("", text.replace("\\_", "_")).strip().lstrip("#").strip()
    return text


_FIGURE = re.compile(r"[-+(]?[\d,.]*\d[\d,.]*\)?%?")


def _has_figure(cells: list[str]) -> bool:
    return any(_FIGURE.fullmatch(unicodedata.normalize("NFKC", c).replace(" ", "")) for c in cells if c.strip())


def draft_of(block: Block, context: list[str], heading: str | None, data: LabelData) -> Draft | None:
    from .repair import Physical
    grid = [row for row in grid_of(block) if any(c.text.strip() for c in row)]
    if not grid:
        return None
    titles: list[str] = []
    header = None
    header_cells: list[str] = []
    start = 0
    title_rows = True
    for i, row in enumerate(grid[:4]):
        cells = [c.text for c in row]
        found = read_header(cells)
        if found:
            header, header_cells, start = found, cells, i + 1
            if not strip_markup(found.first_cell)[0] and i:
                # the header's first cell spanned from a row above (利润表 over 预测 / 2026E)
                header = Header(found.years, grid[0][0].text, found.packed, found.figures, found.extra)
            break
        filled = [c for c in cells if c.strip()]
        units = [c for c in filled[1:] if unit_in(c, data) and len(c) <= 12]
        if title_rows and not (_has_figure(cells[1:]) or len(filled) - len(units) > 1 or is_scheme_header(cells, data)
                               or re.search(r"\d[\d,.]*\s+\d", " ".join(filled))):
            titles.append(" ".join(filled))
            continue
        title_rows = False
        if _has_figure(cells[1:]) or i >= 2:
            break
    if header is None:
        # title rows count only where the table goes on with figures; else they are its rows
        start = len(titles) if any(_has_figure([c.text for c in row][1:]) for row in grid[len(titles):]) else 0
        titles = titles[:start]
    rows = []
    if header and header.figures:
        # figures printed beside the years: the first row of the table, its label the first
        # cell's last words (the words before them are the title)
        words = header.first_cell.split()
        label = words[-1] if words else ""
        if len(words) > 1:
            titles.append(" ".join(words[:-1]))
        rows.append(Physical(label, list(header.figures), False))
    for row in grid[start:]:
        cells = [c.text for c in row]
        rows.append(Physical(cells[0].strip() if cells else "", [c.strip() for c in cells[1:]], bool(row and row[0].bold)))
    widths = Counter(len(r.values) for r in rows if _has_figure(r.values))
    width = widths.most_common(1)[0][0] if widths else 0
    return Draft(block, titles, header, header_cells, rows, width, list(context), heading)


def finish(draft: Draft, years: list[YearColumn], data: LabelData, kind_hint: str | None = None) -> Table:
    """The table: labels joined, figures read into year cells, title, kind and unit."""
    from .repair import join_labels, place_figures
    logical = join_labels(draft.rows, data)
    for row in logical:
        if not row.texts and row.members:
            row.texts = draft.rows[row.tail].values if row.tail < len(draft.rows) else []
    packed = any(y.column < 0 for y in years)
    columns = None if packed else [y.column for y in years]
    units = [unit_in(row.label, data) for row in logical]
    percent = [u == "%" for u in units]
    notes = place_figures(logical, columns, [y.label for y in years], percent) if years else []
    if packed:
        years = [YearColumn(y.label, y.year, y.forecast, y.mark, j) for j, y in enumerate(years)]
    rows: list[Row] = []
    section = None
    for position, (logic, unit) in enumerate(zip(logical, units)):
        row = Row(logic.label, position, logic.texts, logic.cells if years else [], bold=logic.bold, unit=unit,
                  repairs=list(logic.repairs), damage=dict(logic.damage))
        if years and not row.has_figures and not row.damage and not any(t.strip() for t in logic.texts):
            row.heading = True
            section = row.label
        else:
            row.section = section
        rows.append(row)
    first = clean_title(draft.header.first_cell) if draft.header else ""
    leading = []                       # heading rows before the first figure (利润表 under 财务报表)
    for row in rows:
        if not row.heading:
            break
        leading.append(row.label)
    context = [clean_title(c) for c in draft.context[::-1] if len(clean_title(c)) <= MAX_TITLE]
    candidates = [clean_title(t) for t in draft.titles] + ([first] if first else []) + leading + context
    named = next(((c, k) for c in candidates for k in [title_kind(c, data)] if k), (None, None))
    title_text, named_kind = named
    labels = [r.label for r in rows if not r.heading]
    how = "title"
    if years:
        kind, how = kind_of(kind_hint or named_kind, labels, data)
    elif draft.header_cells and is_scheme_header(draft.header_cells, data) or (
            rows and is_scheme_header([rows[0].label] + rows[0].texts, data)):
        kind = "rating_scheme"
    elif sum(market_role(r.label, data) is not None for r in rows) >= 2:
        kind = "market"
    else:
        kind = "other"
    raw_title = title_text if title_text and (not years or title_kind(title_text, data) == kind) else \
        (clean_title(draft.titles[0]) if draft.titles else first or (context[0] if context else ""))
    title = _PARENS.sub("", raw_title).strip() or raw_title.strip()
    unit = None
    if years:
        for source in draft.titles + [first, draft.header.extra if draft.header else ""] + [title_text or ""]:
            unit = unit or (unit_in(source, data) if source else None)
        if unit is None:
            scales = Counter(r.unit for r in rows if r.unit and data.scale_of(r.unit))
            unit = scales.most_common(1)[0][0] if scales else None
    table = Table(title, kind, unit, years, rows, draft.block.kind, draft.block.line, draft.heading,
                  draft.header_cells or ([draft.rows[0].label] + draft.rows[0].values if draft.rows else []))
    if how != "title" and years:
        table.notes.append(f"kind {kind} read from its {how}")
    table.notes.extend(notes)
    return table
