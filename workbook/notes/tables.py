"""Tables as the converter leaves them: HTML grids and tab-separated blocks become tables with a
title, a kind, a unit, year columns and rows of printed figures."""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser

from .labels import STATEMENTS, LabelData, normalise_label
from .numbers import _PLACEHOLDERS, PrintedNumber, parse_number
from .source import _Item

PLACEHOLDER = "placeholder read as empty"
LABEL_SPLIT = "label split across two rows"
LABEL_ABOVE = "label printed on the row above its figures"


@dataclass(frozen=True)
class YearColumn:
    label: str       # as printed: 2024A, 2026E, 2023
    year: int
    forecast: bool
    mark: str        # the printed mark: "A", "E", or "" for a bare year
    column: int      # index of the cell in the printed row


@dataclass
class Row:
    label: str                             # as printed, markup removed
    position: int                          # index among the table's rows (headings included)
    texts: list[str]                       # every printed cell after the label
    cells: list[PrintedNumber | None]      # one per year column
    heading: bool = False                  # a section heading such as 成长能力: no figures
    section: str | None = None             # the heading this row sits under
    bold: bool = False
    unit: str | None = None                # from the label: 营业收入(百万元) -> 百万元
    repairs: list[str] = field(default_factory=list)

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
# Splitting the text into lines and tables

class _HtmlTable(HTMLParser):
    """Rows of (text, bold) cells with rowspan/colspan expanded into a rectangular grid."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[list[tuple[str, bool, int, int]]] = []
        self._cell: list[str] | None = None
        self._span = (1, 1)
        self._bold = False
        self._cell_bold = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            if not self.rows:
                self.rows.append([])
            self._cell = []
            self._cell_bold = tag == "th"
            self._span = (_span(attrs.get("rowspan")), _span(attrs.get("colspan")))
        elif tag in ("b", "strong"):
            self._bold = True
            self._cell_bold = self._cell_bold or self._cell is not None
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(("".join(self._cell).strip(), self._cell_bold, *self._span))
            self._cell = None
        elif tag in ("b", "strong"):
            self._bold = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def grid(self) -> list[list[tuple[str, bool]]]:
        grid: list[list[tuple[str, bool] | None]] = []
        pending: dict[tuple[int, int], tuple[str, bool]] = {}
        for r, cells in enumerate(self.rows):
            out: list = []
            c = 0
            queue = list(cells)
            while queue or (r, c) in pending:
                if (r, c) in pending:
                    out.append(pending.pop((r, c)))
                    c += 1
                    continue
                text, bold, rowspan, colspan = queue.pop(0)
                for dc in range(colspan):
                    # a cell spanning columns is printed once; the rest of its span is empty
                    out.append((text, bold) if dc == 0 else ("", bold))
                    for dr in range(1, rowspan):
                        pending[(r + dr, c + dc)] = ("", bold) if dc else (text, bold)
                c += colspan
            grid.append(out)
        return grid


def _span(value) -> int:
    try:
        return max(1, int(str(value).strip().strip('"')))
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


def _strip_markup(cell: str) -> tuple[str, bool]:
    if "<" not in cell and "&" not in cell:
        return cell.strip(), False
    parser = _Markup()
    parser.feed(cell)
    parser.close()
    return "".join(parser.parts).strip(), parser.bold



# --------------------------------------------------------------------------------------------
# Reading a grid into a table

_YEAR = re.compile(r"^(?:FY)?((?:19|20)\d{2})(?:年)?([AEFP]?)$")


def _year_of(cell: str) -> tuple[int, str] | None:
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", cell)).upper()
    match = _YEAR.match(text)
    return (int(match.group(1)), match.group(2)) if match else None


def _year_columns(header: list[str]) -> list[YearColumn]:
    found = [(i, _year_of(cell), cell.strip()) for i, cell in enumerate(header) if i > 0]
    found = [(i, y, cell) for i, y, cell in found if y]
    if len(found) < 2:
        return []
    return [YearColumn(cell, year, mark in ("E", "F", "P"), mark, i) for i, (year, mark), cell in found]


_PARENS = re.compile(r"[(（]\s*([^()（）]*?)\s*[)）]")


def _unit_in(text: str, data: LabelData) -> str | None:
    """A unit named in parentheses, or after 单位:, if it is one."""
    folded = unicodedata.normalize("NFKC", text)
    candidates = [m.group(1) for m in _PARENS.finditer(folded)]
    match = re.search(r"单位\s*:\s*([^\s,;)]+)", folded)
    if match:
        candidates.insert(0, match.group(1))
    for candidate in candidates:
        candidate = re.sub(r"^单位\s*:\s*", "", candidate).strip()
        if candidate in ("%", "倍", "x") or data.currency_of(candidate) or candidate.endswith("股"):
            return candidate
    return None


def _title_keyword_kind(title: str, data: LabelData) -> str | None:
    folded = unicodedata.normalize("NFKC", title).casefold()
    for kind, words in data.section("table_kinds").items():
        if any(unicodedata.normalize("NFKC", w).casefold() in folded for w in words):
            return kind
    return None


def _join_split_labels(raw_rows: list[tuple[str, bool, list[str]]], data: LabelData):
    """Labels the converter split over two rows, joined back; the rest unchanged.

    A figureless row directly above a row without a label is that row's label; a figureless row
    whose text completes the label above or below it into a known label is half of that label.
    """
    def figureless(texts):
        return not any(t.strip() for t in texts)

    out: list[list] = []   # [label, bold, texts, repairs]
    i = 0
    while i < len(raw_rows):
        label, bold, texts = raw_rows[i]
        nxt = raw_rows[i + 1] if i + 1 < len(raw_rows) else None
        if figureless(texts) and nxt and not figureless(nxt[2]) and label:
            if not nxt[0]:
                out.append([label, bold or nxt[1], nxt[2], [LABEL_ABOVE]])
                i += 2
                continue
            if data.known(label + nxt[0]) and not data.known(label):
                out.append([label + nxt[0], bold or nxt[1], nxt[2], [LABEL_SPLIT]])
                i += 2
                continue
        if (figureless(texts) and label and out and not figureless(out[-1][2])
                and data.known(out[-1][0] + label) and not data.known(out[-1][0]) and not data.known(label)):
            out[-1][0] += label
            out[-1][3].append(LABEL_SPLIT)
            i += 1
            continue
        out.append([label, bold, texts, []])
        i += 1
    return out


def _table_from_grid(grid: list[list[tuple[str, bool]]], form: str, line: int, context: list[str],
                     heading: str | None, data: LabelData) -> Table | None:
    grid = [row for row in grid if any(text.strip() for text, _ in row)]
    if not grid:
        return None
    # The header is the first row with year columns; a row above it (a spanned group title
    # such as 预测) belongs to the header too.
    start = next((i for i, row in enumerate(grid[:3]) if _year_columns([text for text, _ in row])), 0)
    header = [text for text, _ in grid[start]]
    if start and not _strip_markup(header[0])[0]:
        header[0] = grid[0][0][0]
    years = _year_columns(header)
    raw_rows = []
    for cells in grid[start + 1:]:
        label, bold = _strip_markup(cells[0][0]) if cells else ("", False)
        bold = bold or (cells[0][1] if cells else False)
        texts = [_strip_markup(text)[0] for text, _ in cells[1:]]
        raw_rows.append((label, bold, texts))
    if not years:
        raw_rows = [(_strip_markup(header[0])[0], False, [_strip_markup(h)[0] for h in header[1:]])] + raw_rows \
            if not _is_scheme_header(header, data) else raw_rows
    first = _strip_markup(header[0])[0] if header else ""
    unit = _unit_in(first, data)
    title_from_cell = _PARENS.sub("", first).strip()
    kind = _title_keyword_kind(title_from_cell, data) if years else None
    title = title_from_cell if kind else (context[-1] if context else title_from_cell)
    if years and not kind:
        kind = _title_keyword_kind(title, data)

    joined = _join_split_labels(raw_rows, data) if years else [[l, b, t, []] for l, b, t in raw_rows]
    rows = []
    section = None
    for position, (label, bold, texts, repairs) in enumerate(joined):
        row_unit = _unit_in(label, data)
        percent = row_unit == "%" or (unit == "%")
        cells = []
        for y in years:
            raw = texts[y.column - 1] if y.column - 1 < len(texts) else ""
            number = parse_number(raw, percent)
            if number is None and raw.strip() and unicodedata.normalize("NFKC", raw.strip()).casefold() in _PLACEHOLDERS:
                repairs.append(PLACEHOLDER)
            cells.append(number)
        row = Row(label, position, texts, cells, bold=bold, unit=row_unit, repairs=repairs)
        if years and not row.has_figures and not any(t.strip() for t in texts):
            row.heading = True
            section = label
        else:
            row.section = section
        rows.append(row)

    if not years:
        if _is_scheme_header(header, data):
            kind = "rating_scheme"
            title = context[-1] if context else first
        elif sum(_market_role(r.label, data) is not None for r in rows) >= 2:
            kind = "market"
        else:
            kind = "other"
    elif not kind:
        kind = _kind_by_roles(rows, data)
    if not years:
        unit = None
    elif unit is None:
        units = Counter(r.unit for r in rows if r.unit and data.scale_of(r.unit))
        unit = units.most_common(1)[0][0] if units else None
    return Table(title, kind, unit, years, rows, form, line, heading, header)


def _is_scheme_header(header: list[str], data: LabelData) -> bool:
    words = data.section("rating_scheme").get("header_words", [])
    cells = {_strip_markup(h)[0] for h in header}
    return bool(words) and all(w in cells for w in words)


def _kind_by_roles(rows: list[Row], data: LabelData) -> str:
    """For a table whose title names no kind: the statement most of its labels belong to."""
    votes = Counter()
    for kind in STATEMENTS + ("ratios",):
        table = data.variants.get(kind, {})
        votes[kind] = sum(normalise_label(r.label) in table for r in rows if not r.heading)
    kind, count = votes.most_common(1)[0] if votes else ("other", 0)
    return kind if count >= max(2, len(rows) // 3) else "other"


def _market_role(label: str, data: LabelData) -> str | None:
    hit = data.variants.get("market", {}).get(normalise_label(label))
    return hit[0] if hit else None



def _split_tsv(block: list[_Item]):
    """A run of tab-separated lines, split where a new header of year columns begins."""
    start = 0
    for j in range(1, len(block)):
        if _year_columns(block[j].content.split("\t")):
            yield block[start].line, block[start:j]
            start = j
    yield block[start].line, block[start:]

