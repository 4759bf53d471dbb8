"""Reading a broker note's converted text: its tables, printed figures, market data and rating.

A note reaches us as the text a PDF converter writes: tables as tab-separated rows, or as HTML
`<table>` markup inside Markdown (MinerU). `read_note` finds every table, reads its title, kind,
unit and year columns, and keeps every figure at the precision it was printed (`1.20` has two
decimals) together with the converter damage repaired on the way (`1. 33`, `(924)`, `-0`,
full-width digits, labels split over two rows). `map_roles` gives each line a role from the
label data in `data/label_roles.toml`; `infer_subtotals` finds which lines add up to which by
interval arithmetic on the printed figures; `import_report` says what was read and what was not.

Pure reading: no Excel, no files written. Every word a note uses for a currency, a market, a
table kind or a line lives in the label data, not here.
"""
from __future__ import annotations

import itertools
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

from udfs.errors import DataError
from udfs.findings import Interval, Printed

from .files import decode_text, what_binary
from .tomlfile import read_toml

LABEL_ROLES = Path(__file__).parent / "data" / "label_roles.toml"

STATEMENTS = ("income", "balance", "cashflow")
YEAR_KINDS = STATEMENTS + ("summary", "ratios")
# Which role sections a table kind's labels are looked up in, in order.
ROLE_SECTIONS = {"summary": ("summary", "income", "ratios"), "income": ("income",), "balance": ("balance",),
                 "cashflow": ("cashflow",), "ratios": ("ratios",), "market": ("market",)}

# Repair names, as the import report lists them.
FULL_WIDTH = "full-width characters"
UNICODE_MINUS = "unicode minus sign"
SPACE_IN_NUMBER = "space inside a number"
PARENTHESES = "parentheses for a negative"
THOUSANDS = "thousands separators"
NEGATIVE_ZERO = "-0 read as 0"
PLACEHOLDER = "placeholder read as empty"
LABEL_SPLIT = "label split across two rows"
LABEL_ABOVE = "label printed on the row above its figures"


# --------------------------------------------------------------------------------------------
# The label data

@dataclass(frozen=True)
class LabelData:
    raw: dict

    def section(self, name: str) -> dict:
        return self.raw.get(name, {})

    @property
    def variants(self) -> dict[str, dict[str, tuple[str, str]]]:
        """section -> normalised variant -> (role, variant as written)."""
        return _variants(self)

    def known(self, label: str) -> bool:
        key = normalise_label(label)
        return any(key in table for table in self.variants.values())

    def currency_of(self, text: str) -> str | None:
        words = sorted(self.section("currencies"), key=len, reverse=True)
        return next((self.section("currencies")[w] for w in words if w in text), None)

    def scale_of(self, text: str) -> int | None:
        words = sorted(self.section("scales"), key=len, reverse=True)
        return next((self.section("scales")[w] for w in words if w in text), None)


@lru_cache(maxsize=8)
def _variants(data: LabelData) -> dict:
    out = {}
    sections = {s for kinds in ROLE_SECTIONS.values() for s in kinds} | {"relative"}
    for name, roles in data.raw.items():
        if name not in sections or not isinstance(roles, dict):
            continue
        table = out.setdefault(name, {})
        for role, words in roles.items():
            for word in words:
                if isinstance(word, str):
                    table.setdefault(normalise_label(word), (role, word))
    return out


class _Frozen(dict):
    def __hash__(self):  # the label data is read once and never changed
        return id(self)


def load_label_data(path: str | Path = LABEL_ROLES) -> LabelData:
    return LabelData(_Frozen(read_toml(path)))


@lru_cache(maxsize=1)
def default_label_data() -> LabelData:
    return load_label_data()


_TRAILING_PARENS = re.compile(r"\s*\([^()]*\)\s*$")


def normalise_label(label: str) -> str:
    """The form labels are matched in: full-width folded, no spaces, no trailing colon or
    parenthesised unit or mark, case ignored."""
    text = unicodedata.normalize("NFKC", label)
    text = re.sub(r"\s+", "", text).rstrip(":")
    while True:
        stripped = _TRAILING_PARENS.sub("", text).rstrip(":")
        if stripped == text or not stripped:
            break
        text = stripped
    return text.casefold()


# --------------------------------------------------------------------------------------------
# Printed numbers

@dataclass(frozen=True)
class PrintedNumber:
    """A figure as printed: its value, the decimals it was printed with, whether it is in
    percent points (35.0 for 35.0%), the text it was read from and the repairs that reading
    needed."""
    value: float
    decimals: int
    percent: bool
    raw: str
    repairs: tuple[str, ...] = ()

    def printed(self) -> Printed:
        return Printed(self.value, self.decimals, self.percent)

    def interval(self) -> Interval:
        return Interval.of(self.value, self.decimals)

    def shown(self) -> str:
        return f"{self.value:,.{self.decimals}f}" + ("%" if self.percent else "")


_MINUS_SIGNS = "\u2212\u2013\u2014\u2012\ufe63"
_PLACEHOLDERS = {"-", "--", "—", "–", "n/a", "na", "nm", "n.m.", "/"}
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def parse_number(raw: str, percent: bool = False) -> PrintedNumber | None:
    """One printed figure, or None when the text is empty, a placeholder or not a number.

    `percent` says the row or table is in percent, so a bare `35.0` is 35.0%."""
    text = raw.strip()
    if not text:
        return None
    repairs = []
    folded = unicodedata.normalize("NFKC", text)
    if folded != text:
        repairs.append(FULL_WIDTH)
    if any(c in folded for c in _MINUS_SIGNS):
        folded = "".join("-" if c in _MINUS_SIGNS else c for c in folded)
        repairs.append(UNICODE_MINUS)
    if folded.casefold() in _PLACEHOLDERS:
        return None
    if folded.endswith("%"):
        percent = True
        folded = folded[:-1].rstrip()
    negative = False
    if folded.startswith("(") and folded.endswith(")"):
        negative = True
        folded = folded[1:-1].strip()
        repairs.append(PARENTHESES)
    if re.search(r"\s", folded):
        squeezed = re.sub(r"\s+", "", folded)
        if not (_PLAIN_NUMBER.match(squeezed) or _GROUPED.match(squeezed)):
            return None
        folded = squeezed
        repairs.append(SPACE_IN_NUMBER)
    if _GROUPED.match(folded):
        folded = folded.replace(",", "")
        repairs.append(THOUSANDS)
    if not _PLAIN_NUMBER.match(folded):
        return None
    if negative:
        if folded.startswith("-"):
            return None  # (-5) has no agreed meaning
        folded = "-" + folded.lstrip("+")
    decimals = len(folded.split(".")[1]) if "." in folded else 0
    value = float(folded)
    if value == 0 and folded.startswith("-"):
        repairs.append(NEGATIVE_ZERO)
        value = 0.0
    return PrintedNumber(value, decimals, percent, raw, tuple(repairs))


def parse_range(raw: str) -> tuple[PrintedNumber, PrintedNumber] | None:
    """A printed range such as `30-61.45` or `15.16/10.09`, in printed order."""
    text = unicodedata.normalize("NFKC", raw).strip()
    match = re.match(r"^([\d.,\s]+?)\s*[-~/至]\s*([\d.,\s]+)$", text)
    if not match:
        return None
    first, second = parse_number(match.group(1)), parse_number(match.group(2))
    return (first, second) if first and second else None


# --------------------------------------------------------------------------------------------
# The note's structure

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


@dataclass(frozen=True)
class MarketFigure:
    label: str
    value: PrintedNumber
    unit: str | None


@dataclass
class MarketData:
    price: MarketFigure | None = None
    low_52w: MarketFigure | None = None
    high_52w: MarketFigure | None = None
    market_cap: MarketFigure | None = None
    float_market_cap: MarketFigure | None = None
    shares: MarketFigure | None = None
    float_shares: MarketFigure | None = None
    turnover_3m: MarketFigure | None = None
    currency: str | None = None            # trading currency, ISO code
    currency_printed: str | None = None    # as printed with the price
    fx: tuple[str, str, PrintedNumber] | None = None  # 1 FROM = rate TO, as printed
    price_date: str | None = None
    other: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RatingBand:
    label: str
    lower: float | None            # percent; None = unbounded
    upper: float | None
    lower_inclusive: bool | None   # None: the print does not say
    upper_inclusive: bool | None
    text: str
    note: str = ""


@dataclass
class RatingScheme:
    title: str
    bands: list[RatingBand]
    unrated: str | None
    benchmarks: dict[str, str]     # market code -> index name as printed (spaces in CJK removed)
    horizon: tuple[int, int] | None
    horizon_text: str | None
    basis: str = "excess"


@dataclass
class Note:
    tables: list[Table]
    market: MarketData
    rating: str | None
    action: str | None
    rating_printed: str | None
    scheme: RatingScheme | None
    company: str | None
    ticker: str | None
    exchange_market: str | None
    date: str | None
    warnings: list[str] = field(default_factory=list)

    def tables_of(self, kind: str) -> list[Table]:
        return [t for t in self.tables if t.kind == kind]

    def table(self, kind: str) -> Table:
        found = self.tables_of(kind)
        if not found:
            raise KeyError(f"the note has no {kind} table")
        return found[0]

    def repairs(self) -> list[tuple[Table, Row, str, str]]:
        """(table, row, what was repaired, the printed text) for every repair."""
        out = []
        for table in self.tables:
            for row in table.rows:
                for repair in row.repairs:
                    out.append((table, row, repair, row.label))
                for cell in row.cells:
                    if cell is not None:
                        out.extend((table, row, repair, cell.raw) for repair in cell.repairs)
        return out


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


_HTML_TABLE = re.compile(r"<table\b.*?</table\s*>", re.IGNORECASE | re.DOTALL)
_PREAMBLE_END = re.compile(r"^={5,}\s*$", re.MULTILINE)


def _body(text: str) -> str:
    """The converted note without a provenance header ended by a line of '=' near the top."""
    match = _PREAMBLE_END.search(text)
    if match and text.count("\n", 0, match.start()) < 30:
        return text[match.end():]
    return text


class _Item(NamedTuple):
    line: int
    kind: str       # "text" or "html"
    content: str


def _items(text: str) -> list[_Item]:
    items = []
    pos = 0
    for match in list(_HTML_TABLE.finditer(text)) + [None]:
        end = match.start() if match else len(text)
        chunk = text[pos:end]
        first = text.count("\n", 0, pos) + 1
        lines = chunk.split("\n")
        for i, line in enumerate(lines):
            if match and i == len(lines) - 1 and not line.strip():
                continue  # the table starts on this line
            if line.strip() or i < len(lines) - 1:
                items.append(_Item(first + i, "text", line.rstrip("\r")))
        if match:
            items.append(_Item(text.count("\n", 0, match.start()) + 1, "html", match.group(0)))
            pos = match.end()
    return items


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


# --------------------------------------------------------------------------------------------
# Market data, rating, scheme, identity

def _market_from(note_tables: list[Table], text_lines: list[str], data: LabelData) -> MarketData:
    market = MarketData()
    pairs: list[tuple[str, str]] = []
    for table in note_tables:
        if table.kind == "market":
            pairs.extend((r.label, r.texts[0] if r.texts else "") for r in table.rows)
    for line in text_lines:
        match = re.match(r"^\s*([^\t:：]{2,16}?)\s*[:：]\s*([-\d.,\s]+)\s*(\S*)\s*$", line)
        if match and _market_role(match.group(1), data) == "price":
            pairs.append((f"{match.group(1)}({match.group(3)})" if match.group(3) else match.group(1), match.group(2)))
    for label, raw in pairs:
        role = _market_role(label, data)
        unit = _unit_in(label, data)
        if role == "range_52w":
            values = parse_range(raw)
            if values:
                low_first = _low_first(label)
                low, high = values if low_first else values[::-1]
                market.low_52w, market.high_52w = MarketFigure(label, low, unit), MarketFigure(label, high, unit)
            continue
        number = parse_number(raw, unit == "%")
        if number is None:
            continue
        figure = MarketFigure(label, number, unit)
        if role and hasattr(market, role) and getattr(market, role) is None:
            setattr(market, role, figure)
        else:
            market.other[label] = figure
    if market.price and market.price.unit:
        market.currency_printed = market.price.unit
        market.currency = data.currency_of(market.price.unit)
    text = "\n".join(text_lines)
    fx = re.search(r"1\s*([A-Z]{3})\s*=\s*([\d.]+)\s*([A-Z]{3})", text)
    if fx:
        market.fx = (fx.group(1), fx.group(3), parse_number(fx.group(2)))
    date = re.search(r"股价(?:时间|日期)\s*(?:为|:|：)?\s*(\d{4}-\d{1,2}-\d{1,2})", text)
    if date:
        market.price_date = _iso(date.group(1))
    return market


def _low_first(label: str) -> bool:
    folded = unicodedata.normalize("NFKC", label)
    low, high = folded.find("低"), folded.find("高")
    return 0 <= low < high or high < 0


def _iso(text: str) -> str:
    parts = re.findall(r"\d+", text)
    return f"{int(parts[0]):04d}-{int(parts[1]):02d}-{int(parts[2]):02d}"


_BAND_NUMBER = r"([+-]?\d+(?:\.\d+)?)\s*%"


def _band(label: str, text: str, data: LabelData) -> RatingBand | None:
    folded = unicodedata.normalize("NFKC", text).replace("～", "~")
    folded = "".join("-" if c in _MINUS_SIGNS else c for c in folded)
    words = data.section("rating_scheme")
    sign = -1 if any(w in folded for w in words.get("weaker", [])) else 1
    span = re.search(_BAND_NUMBER + r"?\s*(?:至|~|到)\s*" + _BAND_NUMBER, folded)
    if span:
        a, b = float(span.group(1)), float(span.group(2))
        lo, hi = sorted((sign * a, sign * b))
        return RatingBand(label, lo, hi, None, None, text)
    one = re.search(r"([><≥≤]=?)?\s*" + _BAND_NUMBER + r"\s*(以上|以下)?", folded)
    if not one:
        return None
    op, value, word = one.group(1), float(one.group(2)), one.group(3)
    note = ""
    if word == "以上" or op in (">", "≥", ">="):
        above = True
    elif word == "以下" or op in ("<", "≤", "<="):
        above = False
    else:
        return None
    inclusive = word is not None or op in ("≥", "≤", ">=", "<=")
    if sign < 0:
        if not above:
            note = "以下 after a word for 'weaker' read as beyond the bound, the reading that leaves no gap"
        return RatingBand(label, None, -value, None, inclusive, text, note)
    if above:
        return RatingBand(label, value, None, inclusive, None, text)
    return RatingBand(label, None, value, None, inclusive, text)


def _scheme_from(tables: list[Table], text_lines_after: dict[int, list[str]], data: LabelData) -> RatingScheme | None:
    words = data.section("rating_scheme")
    for table in tables:
        if table.kind != "rating_scheme":
            continue
        rows = [[r.label] + r.texts for r in table.rows]
        width = max(len(r) for r in rows)
        grouped = width >= 3 and any(any(g in r[0] for g in words.get("stock_groups", [])) for r in rows)
        bands, unrated, texts = [], None, []
        for cells in rows:
            texts.append(" ".join(cells))
            if grouped:
                if not any(g in cells[0] for g in words.get("stock_groups", [])):
                    continue
                label_cell, text_cell = cells[1], (cells[2] if len(cells) > 2 else "")
            else:
                label_cell, text_cell = cells[0], (cells[1] if len(cells) > 1 else "")
            label = _PARENS.sub("", label_cell).strip()
            if not label:
                continue
            if any(u == label for u in words.get("unrated", [])):
                unrated = label
                continue
            band = _band(label, text_cell, data)
            if band:
                bands.append(band)
        text = "\n".join(texts + text_lines_after.get(id(table), []))
        return RatingScheme(table.title, bands, unrated, _benchmarks(text, data), *_horizon(text))
    return None


def _benchmarks(text: str, data: LabelData) -> dict[str, str]:
    folded = unicodedata.normalize("NFKC", text)
    markets = data.section("markets")
    word_to_market = {w: m for m, ws in markets.items() for w in ws}
    alternation = "|".join(re.escape(w) for w in sorted(word_to_market, key=len, reverse=True))
    if not alternation:
        return {}
    pattern = re.compile(rf"({alternation})(?:市场)?基准(?:指数)?(?:为|是)(.+?)(?=[;；、。,，\n]|(?:{alternation})(?:市场)?基准|$)")
    out = {}
    for match in pattern.finditer(folded):
        name = re.sub(r"(?<=[\u4e00-\u9fff\d])\s+(?=[\u4e00-\u9fff\d])", "", match.group(2).strip())
        out.setdefault(word_to_market[match.group(1)], name)
    return out


def _horizon(text: str) -> tuple[tuple[int, int] | None, str | None]:
    folded = unicodedata.normalize("NFKC", text).replace("～", "~")
    match = re.search(r"(\d+)\s*[-~至到]\s*(\d+)\s*个月", folded)
    if not match:
        return None, None
    return (int(match.group(1)), int(match.group(2))), match.group(0)


_TICKER = re.compile(r"([\u4e00-\u9fffA-Za-z][\u4e00-\u9fffA-Za-z&·]*)\s*[（(]\s*(\d{3,6}\.[A-Z]{1,2})\s*[)）]")
_DATE = re.compile(r"((?:19|20)\d{2})\s*(?:年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日|-(\d{1,2})-(\d{1,2}))")


def _identity(text: str, data: LabelData) -> tuple[str | None, str | None, str | None, str | None]:
    company = ticker = market = date = None
    match = _TICKER.search(text)
    if match:
        company, ticker = match.group(1), match.group(2)
        market = data.section("exchanges").get(ticker.rsplit(".", 1)[1])
    match = _DATE.search(text)
    if match:
        y, m, d = match.group(1), match.group(2) or match.group(4), match.group(3) or match.group(5)
        date = f"{int(y):04d}-{int(m):02d}-{int(d):02d}"
    return company, ticker, market, date


def _rating_from(text: str, labels: list[str], data: LabelData):
    actions = data.section("rating_scheme").get("actions", [])
    if not labels or not actions:
        return None, None, None
    folded = unicodedata.normalize("NFKC", text)
    pattern = "({})\\s*\\(\\s*({})\\s*\\)".format("|".join(map(re.escape, sorted(labels, key=len, reverse=True))),
                                                "|".join(map(re.escape, sorted(actions, key=len, reverse=True))))
    match = re.search(pattern, folded)
    if not match:
        return None, None, None
    printed = text[match.start():match.end()] if len(text) == len(folded) else match.group(0)
    return match.group(1), match.group(2), printed


# --------------------------------------------------------------------------------------------
# The reader

class NoteError(DataError):
    """A note that cannot be read at all (missing file, not text, a PDF not yet converted)."""


def _note_text(source: str | Path) -> str:
    looks_like_path = isinstance(source, Path) or (
        "\n" not in source and "\t" not in source and len(source) < 1024
        and (source.endswith((".txt", ".md")) or os.path.exists(source)))
    if not looks_like_path:
        return source
    path = Path(source)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NoteError(f"{path}: no such file") from None
    except OSError as exc:
        raise NoteError(f"{path}: {exc.strerror or exc}") from None
    kind = what_binary(raw)
    if kind is not None:  # the note itself, not its text: say how to get the text
        raise NoteError(f"{path}: is {kind}, not the note's text; convert the note to text first (e.g. with MinerU, "
                        "or `pdftotext -layout NOTE.pdf`) and import the .md or .txt it writes")
    text = decode_text(raw)
    if text is None:
        raise NoteError(f"{path}: not text in UTF-8, GBK/GB18030 or UTF-16; save the converter's output as UTF-8 text")
    return text


_SOURCE_LINE = re.compile(r"^(资料来源|数据来源|!\[)")


def read_note(source: str | Path, data: LabelData | None = None) -> Note:
    """Every table, figure, market datum and the rating of a converted broker note.

    `source` is a path to the note's text (UTF-8) or the text itself. Raises `NoteError` when
    the file cannot be read."""
    data = data or default_label_data()
    text = _body(_note_text(source).replace("\r\n", "\n").lstrip("\ufeff"))
    items = _items(text)

    tables: list[Table] = []
    context: list[str] = []        # the last few text lines: where a table's title is printed
    heading = None                 # the Markdown section being read
    text_lines: list[str] = []
    after: dict[int, list[str]] = {}   # id(table) -> the first text lines after it (scheme notes)

    def add(table: Table | None):
        if table:
            tables.append(table)
            after[id(table)] = []

    i = 0
    while i < len(items):
        item = items[i]
        if item.kind == "html":
            parser = _HtmlTable()
            parser.feed(item.content)
            parser.close()
            add(_table_from_grid(parser.grid(), "html", item.line, context, heading, data))
            i += 1
        elif "\t" in item.content:
            block = []
            while i < len(items) and items[i].kind == "text" and "\t" in items[i].content:
                block.append(items[i])
                i += 1
            for start, rows in _split_tsv(block):
                grid = [[(cell, False) for cell in line.content.split("\t")] for line in rows]
                add(_table_from_grid(grid, "tsv", start, context, heading, data))
        else:
            line = item.content.strip()
            text_lines.append(item.content)
            if line:
                if tables and len(after[id(tables[-1])]) < 3:
                    after[id(tables[-1])].append(line)
                if line.startswith("#"):
                    heading = line.lstrip("#").strip()
                    context.append(heading)
                elif not _SOURCE_LINE.match(line):
                    context.append(line)
                context = context[-3:]
            i += 1

    market = _market_from(tables, text_lines, data)
    scheme = _scheme_from(tables, after, data)
    company, ticker, exchange_market, date = _identity(text, data)
    labels = [b.label for b in scheme.bands] if scheme else []
    rating, action, printed = _rating_from(text, labels, data)
    warnings = []
    for table in tables:
        for row in table.rows:
            for y, raw, cell in ((y, row.texts[y.column - 1] if y.column - 1 < len(row.texts) else "", c)
                                 for y, c in zip(table.years, row.cells)):
                if cell is None and raw.strip() and PLACEHOLDER not in row.repairs:
                    warnings.append(f"{table.title} {row.label} {y.label}: {raw!r} is not a number")
    return Note(tables, market, rating, action, printed, scheme, company, ticker, exchange_market, date, warnings)


def _split_tsv(block: list[_Item]):
    """A run of tab-separated lines, split where a new header of year columns begins."""
    start = 0
    for j in range(1, len(block)):
        if _year_columns(block[j].content.split("\t")):
            yield block[start].line, block[start:j]
            start = j
    yield block[start].line, block[start:]


# --------------------------------------------------------------------------------------------
# Roles

@dataclass(frozen=True)
class RoleMatch:
    table: str
    kind: str
    label: str
    position: int
    role: str | None
    method: str          # "exact", "normalised", "relative" (growth of the line above) or "unmapped"
    variant: str | None  # the variant in the label data that matched


def map_roles(note: Note, data: LabelData | None = None) -> dict[tuple[int, int], RoleMatch]:
    """(table index, row position) -> the row's role and how it was matched, for every line of
    the statements, summary, ratio and market tables."""
    data = data or default_label_data()
    variants = data.variants
    relative = {normalise_label(w) for w in data.section("relative").get("growth", [])}
    out = {}
    for t_index, table in enumerate(note.tables):
        sections = ROLE_SECTIONS.get(table.kind)
        if not sections:
            continue
        previous_role = None
        for row in table.lines:
            key = normalise_label(row.label)
            match = None
            for section in sections:
                hit = variants.get(section, {}).get(key)
                if hit:
                    role, variant = hit
                    match = RoleMatch(table.title, table.kind, row.label, row.position, role,
                                      "exact" if variant == row.label else "normalised", variant)
                    break
            if match is None and key in relative and previous_role:
                match = RoleMatch(table.title, table.kind, row.label, row.position, previous_role + "_growth",
                                  "relative", None)
            if match is None:
                match = RoleMatch(table.title, table.kind, row.label, row.position, None, "unmapped", None)
            if match.role and match.method != "relative":
                previous_role = match.role
            out[(t_index, row.position)] = match
    return out


# --------------------------------------------------------------------------------------------
# Subtotals

class Part(NamedTuple):
    sign: int
    row: Row


class Subtotal(NamedTuple):
    total: Row
    parts: tuple[Part, ...]

    def formula(self) -> str:
        text = ""
        for i, (sign, row) in enumerate(self.parts):
            text += (("" if sign > 0 else "−") if i == 0 else (" + " if sign > 0 else " − ")) + row.label
        return f"{self.total.label} = {text}"


@dataclass(frozen=True)
class PartialIdentity:
    """A combination of lines that adds up to a line in some years but not in all."""
    subtotal: Subtotal
    held: tuple[str, ...]
    failed: tuple[tuple[str, float, float], ...]   # (year, printed, computed from the parts)


def _check(total: Row, parts: list[Row], signs: tuple[int, ...], years: list[YearColumn]):
    """(informative years held, years failed with printed and computed values).

    A year holds when the printed total's interval meets the interval the printed parts allow.
    A year is informative only when the total is larger than the rounding slack of the sum, so
    that a sum of zeros cannot "explain" a small figure such as EPS."""
    held, failed = [], []
    for j, year in enumerate(years):
        t = total.cells[j]
        cells = [p.cells[j] for p in parts]
        if t is None or any(c is None for c in cells):
            continue
        lo = hi = point = 0.0
        for sign, c in zip(signs, cells):
            iv = c.interval()
            lo, hi = (lo + iv.lo, hi + iv.hi) if sign > 0 else (lo - iv.hi, hi - iv.lo)
            point += sign * c.value
        tv = t.interval()
        if lo <= tv.hi + 1e-9 and tv.lo - 1e-9 <= hi:
            if abs(t.value) > (hi - lo + tv.hi - tv.lo) / 2:
                held.append(year.label)
        else:
            failed.append((year.label, t.value, round(point, max(c.decimals for c in cells))))
    return held, failed


def _nonzero(row: Row) -> bool:
    return any(c is not None and c.value != 0 for c in row.cells)


# Sign patterns, in the order a statement prefers them: everything added (costs printed
# negative), deductions subtracted (costs printed positive), the first line less the rest, then
# for short runs any combination (which is also how a rearranged identity would match, so last).
ALL_ADDED, DEDUCTIONS, FIRST_LESS_REST, ANY_SIGNS = range(4)
NATURAL = (ALL_ADDED, DEDUCTIONS, FIRST_LESS_REST)


def _signs(pattern: int, deduction: list[bool]):
    k = len(deduction)
    if pattern == ALL_ADDED:
        return [tuple([1] * k)]
    if pattern == DEDUCTIONS:
        return [tuple(-1 if d else 1 for d in deduction)] if any(deduction) else []
    if pattern == FIRST_LESS_REST:
        return [tuple([1] + [-1] * (k - 1))]
    return [s for s in itertools.product((1, -1), repeat=k) if -1 in s] if k <= 4 else []


def _is_deduction(row: Row, roles: dict[int, str | None], deductions: set[str]) -> bool:
    if roles.get(row.position) not in deductions:
        return False
    values = [c.value for c in row.cells if c is not None and c.value != 0]
    return sum(v > 0 for v in values) >= len(values) / 2 if values else False


def _search(table: Table, data: LabelData | None = None) -> tuple[list[Subtotal], list[PartialIdentity]]:
    data = data or default_label_data()
    section = data.variants.get(table.kind, {})
    roles = {r.position: section.get(normalise_label(r.label), (None,))[0] for r in table.lines}
    deductions = set(data.section("deductions").get("roles", []))
    years = table.years
    lines = [r for r in table.lines if r.has_figures and not r.percent]
    top = list(lines)            # the collapsed view: rows that are part of no total found yet
    found: list[Subtotal] = []
    partial: dict[int, PartialIdentity] = {}
    totals: set[int] = set()

    def attempt(total: Row, parts: list[Row], pattern: int) -> Subtotal | None:
        if not _nonzero(total) or sum(_nonzero(p) for p in parts) < 2 or any(contains(p, total) for p in parts):
            return None
        deduction = [_is_deduction(p, roles, deductions) for p in parts]
        for signs in _signs(pattern, deduction):
            held, failed = _check(total, parts, signs, years)
            candidate = Subtotal(total, tuple(Part(s, p) for s, p in zip(signs, parts)))
            if len(held) >= 2 and not failed:
                return candidate
            if pattern in NATURAL and len(held) >= 2 and len(held) >= len(failed):
                best = partial.get(total.position)
                if best is None or len(held) > len(best.held):
                    partial[total.position] = PartialIdentity(candidate, tuple(held), tuple(failed))
        return None

    def neighbours(total: Row):
        above = [r for r in top if r.position < total.position]
        below = [r for r in top if r.position > total.position]
        return above, below

    def contiguous() -> bool:
        # Shorter runs first; at each length the natural sign patterns first, and among those a
        # total printed after its parts (净利润 after 利润总额 and 所得税) before one printed
        # above them, the usual reading of a statement.
        for k in range(2, len(lines)):
            for patterns in ((ALL_ADDED, DEDUCTIONS), (FIRST_LESS_REST,), (ANY_SIGNS,)):
                for side, pattern in itertools.product(("above", "below"), patterns):
                    for total in lines:
                        if total.position in totals:
                            continue
                        above, below = neighbours(total)
                        run = above[-k:] if side == "above" else below[:k]
                        if len(run) == k and (hit := attempt(total, run, pattern)):
                            record(hit)
                            return True
        return False

    def subsets() -> bool:
        window = 8
        for size in (2, 3, 4):
            for pattern in NATURAL:
                for total in lines:
                    if total.position in totals:
                        continue
                    above, below = neighbours(total)
                    for side in (above[-window:], below[:window]):
                        for combo in itertools.combinations(side, size):
                            if (hit := attempt(total, list(combo), pattern)):
                                record(hit)
                                return True
        return False

    children: dict[int, list[Row]] = {}

    def contains(row: Row, target: Row) -> bool:
        return any(c is target or contains(c, target) for c in children.get(row.position, []))

    def record(hit: Subtotal):
        children[hit.total.position] = [p.row for p in hit.parts]
        found.append(hit)
        totals.add(hit.total.position)
        for part in hit.parts:
            top.remove(part.row)

    while contiguous() or subsets():
        pass
    found.sort(key=lambda s: s.total.position)
    memo = {r.position for r in memo_rows(table, found)}
    return found, sorted((p for pos, p in partial.items() if pos in memo), key=lambda p: p.subtotal.total.position)


def infer_subtotals(table: Table, data: LabelData | None = None) -> list[Subtotal]:
    """Which lines are the sum of which others, with signs, holding in every year column
    within the rounding of the printed figures.

    Contiguous runs of lines directly below or above a candidate total are tried first (runs
    already found collapse into their total, so totals of totals are found next), then small
    sets of nearby lines. Signs: all added, deductions (by role, printed positive) subtracted,
    the first line less the rest, and for short runs every combination."""
    return _search(table, data=data)[0]


def memo_rows(table: Table, subtotals: list[Subtotal]) -> list[Row]:
    """Lines printed with figures that are neither a total nor part of one."""
    used = {s.total.position for s in subtotals} | {p.row.position for s in subtotals for p in s.parts}
    return [r for r in table.lines if r.has_figures and r.position not in used]


def partial_identities(table: Table, data: LabelData | None = None) -> list[PartialIdentity]:
    """Combinations that add up to a line in most years but not all: identities the note
    breaks."""
    return _search(table, data=data)[1]


# --------------------------------------------------------------------------------------------
# Identities across tables

@dataclass(frozen=True)
class IdentityFailure:
    what: str
    year: str
    printed: float
    computed: float
    within_rounding: bool
    explanation: str = ""

    def line(self) -> str:
        why = "within rounding" if self.within_rounding else "beyond rounding"
        text = f"{self.what} {self.year}: {self.printed:,.6g} vs {self.computed:,.6g} ({why})"
        return text + (f"; {self.explanation}" if self.explanation else "")


def _by_role(note: Note, mapping: dict, kind: str, role: str) -> tuple[Table, Row] | None:
    for (t_index, position), match in mapping.items():
        table = note.tables[t_index]
        if table.kind == kind and match.role == role:
            return table, next(r for r in table.rows if r.position == position)
    return None


def _cells_by_year(table: Table, row: Row) -> dict[str, PrintedNumber]:
    return {y.label: c for y, c in zip(table.years, row.cells) if c is not None}


def _overlap(a: Interval, b: Interval) -> bool:
    return a.lo <= b.hi + 1e-9 and b.lo <= a.hi + 1e-9


def identity_failures(note: Note, mapping: dict, data: LabelData | None = None) -> list[IdentityFailure]:
    """The accounting identities across lines and tables that the printed figures break: assets
    against liabilities and equity, the balance-sheet cash against the cash flow, and a figure
    printed in two tables."""
    data = data or default_label_data()
    out = []
    assets = _by_role(note, mapping, "balance", "total_assets")
    funding = _by_role(note, mapping, "balance", "total_liabilities_and_equity")
    if assets and funding:
        a, f = _cells_by_year(*assets), _cells_by_year(*funding)
        for year in a:
            if year in f and a[year].value != f[year].value:
                out.append(IdentityFailure(f"{assets[1].label} = {funding[1].label}", year, f[year].value,
                                           a[year].value, _overlap(a[year].interval(), f[year].interval())))
    cash = _by_role(note, mapping, "balance", "cash")
    flow = _by_role(note, mapping, "cashflow", "net_cash_flow")
    if cash and flow:
        balance = cash[0]
        c, n = _cells_by_year(*cash), _cells_by_year(*flow)
        labels = [y.label for y in balance.years]
        for prev, year in zip(labels, labels[1:]):
            if prev not in c or year not in c or year not in n:
                continue
            change = c[year].value - c[prev].value
            change_iv = Interval(c[year].interval().lo - c[prev].interval().hi, c[year].interval().hi - c[prev].interval().lo)
            if _overlap(change_iv, n[year].interval()):
                continue
            gap = Interval(change_iv.lo - n[year].interval().hi, change_iv.hi - n[year].interval().lo)
            explained = []
            for row in balance.lines:
                if row is cash[1]:
                    continue
                cells = _cells_by_year(balance, row)
                if prev in cells and year in cells:
                    d = Interval(cells[year].interval().lo - cells[prev].interval().hi,
                                 cells[year].interval().hi - cells[prev].interval().lo)
                    if _overlap(d, gap) and cells[year].value != cells[prev].value:
                        explained.append(f"the change in {row.label} ({cells[year].value - cells[prev].value:,.0f})")
            why = (f"the difference {change - n[year].value:,.0f} matches " + " or ".join(explained)
                   if explained else f"the difference {change - n[year].value:,.0f} matches no balance-sheet movement")
            out.append(IdentityFailure(f"change in {cash[1].label} ({balance.title}) = {flow[1].label} ({flow[0].title})",
                                       year, n[year].value, change, False, why))
    seen: dict[tuple[str, str], list] = {}
    for (t_index, position), match in mapping.items():
        table = note.tables[t_index]
        if match.role and table.kind in YEAR_KINDS:
            row = next(r for r in table.rows if r.position == position)
            scale = data.scale_of(row.unit or table.unit or "")
            seen.setdefault((match.role, row.percent, scale), []).append((table, row))
    for places in seen.values():
        for (t1, r1), (t2, r2) in itertools.combinations(places, 2):
            if t1 is t2:
                continue
            c1, c2 = _cells_by_year(t1, r1), _cells_by_year(t2, r2)
            for year in c1:
                if year in c2 and c1[year].value != c2[year].value:
                    out.append(IdentityFailure(f"{r1.label} ({t1.title}) = {r2.label} ({t2.title})", year,
                                               c2[year].value, c1[year].value,
                                               _overlap(c1[year].interval(), c2[year].interval()),
                                               "the same line printed in two tables"))
    return out


# --------------------------------------------------------------------------------------------
# The report

def import_report(note: Note, mapping: dict, subtotals: dict[int, list[Subtotal]]) -> str:
    """What was read and what was not: every table, every line's role and how it was found,
    the unmapped lines, the subtotals and memo lines, the identities that did not hold and every
    repair. `subtotals` maps a table's index in `note.tables` to its inferred subtotals."""
    out = []
    add = out.append
    add(f"Import report: {note.company or '(company not found)'} {note.ticker or '(ticker not found)'}, "
        f"note dated {note.date or '(date not found)'}")
    add(f"Published rating: {note.rating_printed or '(not found)'}")
    m = note.market
    figures = []
    for name in ("price", "low_52w", "high_52w", "market_cap", "float_market_cap", "shares", "float_shares", "turnover_3m"):
        fig = getattr(m, name)
        if fig:
            figures.append(f"{name} {fig.value.shown()}{' ' + fig.unit if fig.unit and fig.unit != '%' else ''}")
    add("Market data: " + (", ".join(figures) if figures else "(none found)")
        + (f"; trading currency {m.currency}" if m.currency else "")
        + (f"; FX 1 {m.fx[0]} = {m.fx[2].shown()} {m.fx[1]}" if m.fx else "")
        + (f"; price date {m.price_date}" if m.price_date else ""))
    if note.scheme:
        s = note.scheme
        bands = "; ".join(f"{b.label} {_bounds(b)}" for b in s.bands)
        add(f"Rating scheme ({s.title}): {bands}; unrated {s.unrated or '-'}; horizon {s.horizon_text or '-'}; "
            "benchmarks " + ", ".join(f"{k} {v}" for k, v in s.benchmarks.items()))
        for b in s.bands:
            if b.note:
                add(f"  note on {b.label}: {b.note}")
    else:
        add("Rating scheme: (not found)")

    add("")
    add(f"Tables found ({len(note.tables)}):")
    for i, t in enumerate(note.tables):
        years = " ".join(y.label + ("(forecast)" if y.forecast and not y.mark else "") for y in t.years)
        add(f"  [{i}] {t.title} — {t.kind}, {t.form} at line {t.line}"
            + (f", unit {t.unit}" if t.unit else "") + (f", years {years}" if years else "")
            + f", {len(t.lines)} lines" + (f", {len(t.rows) - len(t.lines)} headings" if len(t.rows) > len(t.lines) else ""))
    for kind in STATEMENTS:
        if not note.tables_of(kind):
            add(f"  MISSING: no {kind} statement")

    add("")
    mapped = [(k, v) for k, v in mapping.items() if v.role]
    unmapped = [(k, v) for k, v in mapping.items() if not v.role]
    add(f"Lines mapped ({len(mapped)}):")
    for (t_index, _), v in mapped:
        how = v.method + (f" as {v.variant}" if v.method == "normalised" else "")
        add(f"  [{t_index}] {v.label} -> {v.role} ({how})")
    add(f"Lines left unmapped ({len(unmapped)}):" + ("" if unmapped else " none"))
    for (t_index, _), v in unmapped:
        add(f"  [{t_index}] {v.label}")

    add("")
    add("Subtotals inferred (holding in every year within the rounding of the printed figures):")
    for t_index in sorted(subtotals):
        table = note.tables[t_index]
        add(f"  [{t_index}] {table.title}:")
        for s in subtotals[t_index]:
            add(f"    {s.formula()}")
        memos = memo_rows(table, subtotals[t_index])
        add("    memo lines (part of no total): " + (", ".join(r.label for r in memos) if memos else "none"))

    add("")
    add("Identities that did not hold:")
    failures = []
    for t_index in sorted(subtotals):
        for p in partial_identities(note.tables[t_index]):
            years = ", ".join(f"{y} printed {pv:,g}, parts give {cv:,g}" for y, pv, cv in p.failed)
            failures.append(f"  [{t_index}] {p.subtotal.formula()}: holds in {', '.join(p.held)}; fails in {years}")
    failures.extend("  " + f.line() for f in identity_failures(note, mapping))
    out.extend(failures or ["  none"])

    add("")
    repairs = note.repairs()
    add(f"Repairs ({len(repairs)}):" + ("" if repairs else " none"))
    counts = Counter(r for _, _, r, _ in repairs)
    for repair, count in counts.most_common():
        examples = [f"{t.title} {row.label}: {raw!r}" for t, row, r, raw in repairs if r == repair][:3]
        add(f"  {repair}: {count} ({'; '.join(examples)}{'; …' if count > 3 else ''})")
    if note.warnings:
        add("")
        add("Could not read:")
        out.extend("  " + w for w in note.warnings)
    return "\n".join(out) + "\n"


def _bounds(band: RatingBand) -> str:
    """A band's range with the bounds' inclusion as printed: [ ] included, ( ) excluded,
    ⟨ ⟩ not stated."""
    def bound(value, inclusive, opening):
        if value is None:
            return "(-∞" if opening else "+∞)"
        brackets = ("[", "]") if inclusive else ("(", ")") if inclusive is False else ("⟨", "⟩")
        return f"{brackets[0]}{value:g}%" if opening else f"{value:g}%{brackets[1]}"
    return f"{bound(band.lower, band.lower_inclusive, True)}, {bound(band.upper, band.upper_inclusive, False)}"


def read_and_report(source: str | Path) -> tuple[Note, str]:
    """The note and its import report, in one call."""
    note = read_note(source)
    mapping = map_roles(note)
    subtotals = {i: infer_subtotals(t) for i, t in enumerate(note.tables) if t.kind in STATEMENTS}
    return note, import_report(note, mapping, subtotals)
