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

import bisect
import itertools
import math
import os
import re
import unicodedata
from collections import Counter, deque
from dataclasses import astuple, dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

import numpy as np

from udfs.errors import DataError
from udfs.findings import Interval, Printed

from .files import read_regular
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
FOOTNOTE_MARK = "footnote mark after a figure dropped"

# What a converted note can be. The largest real note is ~40 KB with tables of ~60 rows and
# ~10 columns; these bounds are far above that and keep every stage's work bounded before
# anything is allocated: a file, a table or a span beyond them is refused, not read.
MAX_NOTE_BYTES = 4_000_000
MAX_TABLES = 500
MAX_TABLE_ROWS = 1_000
MAX_COLUMNS = 64
MAX_CELL_CHARS = 1_000         # a longer cell is cut there (a converter's run-on text, not a figure or a label)
MAX_NUMBER_CHARS = 40          # "1,234,567,890.123456" with a sign, parentheses and %: never longer
MAX_INTEGER_DIGITS = 15        # a float holds 15 significant digits exactly; a printed figure never needs more
MAX_DECIMALS = 10
MAX_WARNINGS_LISTED = 200      # the import report lists this many cells it could not read, then a count


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


def normalise_label(label: str) -> str:
    """The form labels are matched in: full-width folded, no spaces, no trailing colon or
    parenthesised unit or mark, case ignored."""
    text = "".join(unicodedata.normalize("NFKC", label).split()).rstrip(":")
    return _without_trailing_groups(text).casefold()


def _without_trailing_groups(text: str) -> str:
    """`text` without the parenthesised groups (and colons) that end it: 营业收入(百万元)(%) is
    营业收入; nothing is stripped that would leave nothing. A hand parser working from the end,
    linear in the text (a regular expression applied in a loop was quadratic in a label of
    30,000 parentheses)."""
    while text.endswith(")"):
        opening = text.rfind("(")
        if opening < 0 or text.find(")", opening) != len(text) - 1:
            break  # no group, or a nested one: left as printed
        stripped = text[:opening].rstrip(":")
        if not stripped:
            break
        text = stripped
    return text


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
    """One printed figure, or None when the text is empty, a placeholder or not a number this
    parser can represent exactly as printed: longer than MAX_NUMBER_CHARS, more than
    MAX_INTEGER_DIGITS digits before the point or MAX_DECIMALS after it. Every figure of a note
    is read here.

    `percent` says the row or table is in percent, so a bare `35.0` is 35.0%. A footnote mark
    after a figure (1000¹, 1200①, 35.2*) is dropped and reported, never read as a digit; one
    anywhere else makes the text not a number."""
    text = raw.strip()
    if not text or len(text) > MAX_NUMBER_CHARS:
        return None
    repairs = []
    text, marked = _without_footnote_mark(text)
    if marked:
        repairs.append(FOOTNOTE_MARK)
    if not text or any(unicodedata.category(ch) == "No" for ch in text):
        return None  # ², ① or ½ inside a figure: NFKC would turn it into a digit
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
    whole, _, fraction = folded.lstrip("+-").partition(".")
    if len(whole.lstrip("0")) > MAX_INTEGER_DIGITS or len(fraction) > MAX_DECIMALS:
        return None  # more digits than a float holds as printed: not a figure this model can show
    decimals = len(fraction)
    value = float(folded)
    if value == 0 and folded.startswith("-"):
        repairs.append(NEGATIVE_ZERO)
        value = 0.0
    return PrintedNumber(value, decimals, percent, raw, tuple(repairs))


_FOOTNOTE_SYMBOLS = "*†‡"


def _without_footnote_mark(text: str) -> tuple[str, bool]:
    """(`text` without the footnote mark that ends it, whether there was one): superscript or
    circled digits (Unicode "other number": ¹ ² ① ⑴ ❶) and * † ‡ after the figure."""
    end = len(text)
    while end and (unicodedata.category(text[end - 1]) == "No" or text[end - 1] in _FOOTNOTE_SYMBOLS):
        end -= 1
    return text[:end].rstrip(), end < len(text)


def parse_range(raw: str) -> tuple[PrintedNumber, PrintedNumber] | None:
    """A printed range such as `30-61.45` or `15.16/10.09`, in printed order."""
    if len(raw) > 2 * MAX_NUMBER_CHARS + 10:
        return None
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
    search: tuple | None = field(default=None, repr=False, compare=False)   # the subtotal search, once done

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
        self._cell_chars = 0
        self._span = (1, 1)
        self._bold = False
        self._cell_bold = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self._new_row()
        elif tag in ("td", "th"):
            if not self.rows:
                self._new_row()
            if len(self.rows[-1]) >= MAX_COLUMNS:
                raise NoteError(f"a table row has more than {MAX_COLUMNS} cells; not a table of a broker note")
            self._cell, self._cell_chars = [], 0
            self._cell_bold = tag == "th"
            self._span = (_span(attrs.get("rowspan"), MAX_TABLE_ROWS), _span(attrs.get("colspan"), MAX_COLUMNS))
        elif tag in ("b", "strong"):
            self._bold = True
            self._cell_bold = self._cell_bold or self._cell is not None
        elif tag == "br" and self._cell is not None and self._cell_chars <= MAX_CELL_CHARS:
            self._cell.append(" ")
            self._cell_chars += 1

    def _new_row(self):
        if len(self.rows) >= MAX_TABLE_ROWS:
            raise NoteError(f"a table has more than {MAX_TABLE_ROWS:,} rows; not a table of a broker note")
        self.rows.append([])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append((_bounded_cell("".join(self._cell).strip()), self._cell_bold, *self._span))
            self._cell = None
        elif tag in ("b", "strong"):
            self._bold = False

    def handle_data(self, data):
        if self._cell is not None and self._cell_chars <= MAX_CELL_CHARS:
            self._cell.append(data)
            self._cell_chars += len(data)

    def grid(self) -> list[list[tuple[str, bool]]]:
        """The rows as a rectangle of cells. A span is clamped to the table (rowspan to the rows
        left, every row to MAX_COLUMNS), as browsers do, so no span allocates beyond the table."""
        grid: list[list[tuple[str, bool] | None]] = []
        pending: dict[tuple[int, int], tuple[str, bool]] = {}
        for r, cells in enumerate(self.rows):
            out: list = []
            c = 0
            queue = deque(cells)
            while (queue or (r, c) in pending) and c < MAX_COLUMNS:
                if (r, c) in pending:
                    out.append(pending.pop((r, c)))
                    c += 1
                    continue
                text, bold, rowspan, colspan = queue.popleft()
                rowspan, colspan = min(rowspan, len(self.rows) - r), min(colspan, MAX_COLUMNS - c)
                for dc in range(colspan):
                    # a cell spanning columns is printed once; the rest of its span is empty
                    out.append((text, bold) if dc == 0 else ("", bold))
                    for dr in range(1, rowspan):
                        pending[(r + dr, c + dc)] = ("", bold) if dc else (text, bold)
                c += colspan
            grid.append(out)
        return grid


def _span(value, largest: int) -> int:
    """A rowspan or colspan attribute as a whole number from 1 to `largest` (1 when unreadable)."""
    text = str(value).strip().strip('"')
    if not text.isascii() or not text.isdigit():
        return 1
    return max(1, min(largest, int(text[:7])))


def _bounded_cell(text: str) -> str:
    """A cell's text cut at MAX_CELL_CHARS (a converter's run-on text, never a figure or a label)."""
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS] + "…"


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


def _html_tables(text: str) -> list[tuple[int, int]]:
    """(start, end) of every `<table …>…</table>` in the text, in order, case ignored: a hand
    scanner, linear in the text (a lazy regular expression rescanned the rest of the note from
    every unclosed `<table`). A table never closed ends the search: the rest is text."""
    lower = text.lower()
    found, pos = [], 0
    while True:
        start = lower.find("<table", pos)
        if start < 0:
            return found
        after = lower[start + 6:start + 7]
        if after and (after.isalnum() or after == "_"):
            pos = start + 6
            continue
        close = lower.find("</table", start)
        while close >= 0:
            end = close + 7
            while end < len(lower) and lower[end].isspace():
                end += 1
            if end < len(lower) and lower[end] == ">":
                break
            close = lower.find("</table", close + 7)
        if close < 0:
            return found
        found.append((start, end + 1))
        if len(found) > MAX_TABLES:
            raise NoteError(f"more than {MAX_TABLES} tables; not a broker note")
        pos = end + 1


def _body(text: str) -> str:
    """The converted note without a provenance header ended by a line of '=' near the top
    (five or more, nothing else on the line but trailing spaces)."""
    offset = 0
    for line in text.split("\n", 30)[:30]:
        bare = line.rstrip()
        if len(bare) >= 5 and bare == "=" * len(bare):
            return text[offset + len(line):]
        offset += len(line) + 1
    return text


class _Item(NamedTuple):
    line: int
    kind: str       # "text" or "html"
    content: str


def _items(text: str) -> list[_Item]:
    items = []
    pos, line_at_pos = 0, 1
    for span in _html_tables(text) + [None]:
        end = span[0] if span else len(text)
        chunk = text[pos:end]
        lines = chunk.split("\n")
        for i, line in enumerate(lines):
            if span and i == len(lines) - 1 and not line.strip():
                continue  # the table starts on this line
            if line.strip() or i < len(lines) - 1:
                items.append(_Item(line_at_pos + i, "text", line.rstrip("\r")))
        if span:
            table_line = line_at_pos + chunk.count("\n")
            items.append(_Item(table_line, "html", text[span[0]:span[1]]))
            line_at_pos = table_line + text.count("\n", span[0], span[1])
            pos = span[1]
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


_OPENING, _CLOSING = "(（", ")）"


def paren_groups(text: str) -> list[tuple[int, int, str]]:
    r"""(start, end, inner text stripped) of every innermost parenthesised group, half- or
    full-width, left to right: what `[(（]\s*([^()（）]*?)\s*[)）]` finds, by a hand scanner
    linear in the text (that pattern backtracked quadratically on a long run of spaces)."""
    groups, opened = [], None
    for i, ch in enumerate(text):
        if ch in _OPENING:
            opened = i
        elif ch in _CLOSING and opened is not None:
            groups.append((opened, i + 1, text[opened + 1:i].strip()))
            opened = None
    return groups


def without_paren_groups(text: str) -> str:
    """`text` with every group `paren_groups` finds taken out."""
    out, pos = [], 0
    for start, end, _inner in paren_groups(text):
        out.append(text[pos:start])
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _unit_in(text: str, data: LabelData) -> str | None:
    """A unit named in parentheses, or after 单位:, if it is one."""
    folded = unicodedata.normalize("NFKC", text)
    candidates = [inner for _start, _end, inner in paren_groups(folded)]
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
    title_from_cell = without_paren_groups(first).strip()
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
        found = market_line(line)
        if found and _market_role(found[0], data) == "price":
            label, figure, unit = found
            pairs.append((f"{label}({unit})" if unit else label, figure))
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
    fx = _FX.search(text)
    rate = parse_number(fx.group(2)) if fx else None
    if rate is not None and rate.value > 0:  # "1 XXX = . YYY" is not a rate
        market.fx = (fx.group(1), fx.group(3), rate)
    date = re.search(r"股价(?:时间|日期)\s*(?:为|:|：)?\s*(\d{4}-\d{1,2}-\d{1,2})", text)
    if date:
        market.price_date = _iso(date.group(1))
    return market


_FIGURE_CHARS = set("-0123456789.,")
# "1 XXX = 0.9126 YYY". Possessive quantifiers and a look-behind: each attempt starts at most once
# per run of digits or spaces, so the search is linear in the note.
_FX = re.compile(r"(?<![\d.])1[ \t]*+([A-Z]{3})[ \t]*+=[ \t]*+(\d++(?:\.\d++)?|\.++)[ \t]*+([A-Z]{3})")


def market_line(line: str) -> tuple[str, str, str] | None:
    """(label, figure text, unit) of a text line printing one market figure, `收盘价: 312.40 元`:
    a label of 2-16 characters (no tab), a colon, figure characters (digits, signs, points,
    commas, spaces), then at most one word. A hand parser, linear in the line (the regular
    expression it replaces backtracked cubically on a long run of spaces)."""
    cut = min((i for i in (line.find(":"), line.find("：")) if i >= 0), default=-1)
    if cut < 0:
        return None
    label, rest = line[:cut].strip(), line[cut + 1:].strip()
    if not 2 <= len(label) <= 16 or "\t" in label:
        return None
    end = 0
    while end < len(rest) and (rest[end] in _FIGURE_CHARS or rest[end].isspace()):
        end += 1
    figure, unit = rest[:end].strip(), rest[end:].strip()
    if not figure or any(ch.isspace() for ch in unit):
        return None
    return label, figure, unit


def _low_first(label: str) -> bool:
    folded = unicodedata.normalize("NFKC", label)
    low, high = folded.find("低"), folded.find("高")
    return 0 <= low < high or high < 0


def _iso(text: str) -> str:
    parts = re.findall(r"\d+", text)
    return f"{int(parts[0]):04d}-{int(parts[1]):02d}-{int(parts[2]):02d}"


# A percentage in a rating band's text. Possessive quantifiers and a look-behind keep every
# search linear: an attempt never restarts inside a number or re-reads a run of spaces.
_BAND_NUMBER = r"(?<![\d.])([+-]?\d++(?:\.\d++)?)\s*+%"
_BAND_SPAN = re.compile(r"(?<![\d.])([+-]?\d++(?:\.\d++)?)\s*+(?:%\s*+)?(?:至|~|到)\s*+" + _BAND_NUMBER)
_BAND_ONE = re.compile(r"(?:([><≥≤]=?)\s*+)?" + _BAND_NUMBER + r"(?:\s*+(以上|以下))?")


def _band(label: str, text: str, data: LabelData) -> RatingBand | None:
    folded = unicodedata.normalize("NFKC", text).replace("～", "~")
    folded = "".join("-" if c in _MINUS_SIGNS else c for c in folded)
    words = data.section("rating_scheme")
    sign = -1 if any(w in folded for w in words.get("weaker", [])) else 1
    span = _BAND_SPAN.search(folded)
    a, b = (parse_number(span.group(1)), parse_number(span.group(2))) if span else (None, None)
    if a is not None and b is not None:
        lo, hi = sorted((sign * a.value, sign * b.value))
        return RatingBand(label, lo, hi, None, None, text)
    one = _BAND_ONE.search(folded)
    number = parse_number(one.group(2)) if one else None
    if number is None:
        return None
    op, value, word = one.group(1), number.value, one.group(3)
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
            label = without_paren_groups(label_cell).strip()
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
    match = re.search(r"(?<!\d)(\d{1,3}+)\s*+[-~至到]\s*+(\d{1,3}+)\s*+个月", folded)
    if not match:
        return None, None
    return (int(match.group(1)), int(match.group(2))), match.group(0)


_TICKER_IN_PARENS = re.compile(r"[（(]\s*+(\d{3,6}\.[A-Z]{1,2})\s*+[)）]")
_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})\s*+(?:年\s*+(\d{1,2})\s*+月\s*+(\d{1,2})\s*+日|-(\d{1,2})-(\d{1,2}))")


def _name_char(ch: str, first: bool = False) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or (ch.isascii() and ch.isalpha()) or (not first and ch in "&·")


def company_and_ticker(text: str) -> tuple[str, str] | None:
    """The first `名称（600519.SH）` in the text: the name (Chinese or Latin letters, & and ·
    inside) printed right before a ticker in parentheses. Each ticker found is followed back to
    its name by hand, so the search is linear in the text (the pattern it replaces retried every
    character of a long run of prose)."""
    for match in _TICKER_IN_PARENS.finditer(text):
        end = match.start()
        while end and text[end - 1].isspace():
            end -= 1
        start = end
        while start and _name_char(text[start - 1]):
            start -= 1
        while start < end and not _name_char(text[start], first=True):
            start += 1
        if start < end:
            return text[start:end], match.group(1)
    return None


def _identity(text: str, data: LabelData) -> tuple[str | None, str | None, str | None, str | None]:
    company = ticker = market = date = None
    found = company_and_ticker(text)
    if found:
        company, ticker = found
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
    printed_labels = "|".join(map(re.escape, sorted(labels, key=len, reverse=True)))   # note text, escaped: data
    action_words = "|".join(map(re.escape, sorted(actions, key=len, reverse=True)))
    pattern = rf"({printed_labels})\s*+\(\s*+({action_words})\s*+\)"
    match = re.search(pattern, folded)
    if not match:
        return None, None, None
    printed = text[match.start():match.end()] if len(text) == len(folded) else match.group(0)
    return match.group(1), match.group(2), printed


# --------------------------------------------------------------------------------------------
# The reader

class NoteError(DataError):
    """A note that cannot be read at all (missing file, not UTF-8 text)."""


def _note_text(source: str | Path) -> str:
    """The note's text: `source` read as a file when it is a path (a regular file of at most
    MAX_NOTE_BYTES in UTF-8: a FIFO, a device or a folder is refused before a byte is read), or
    `source` itself; control characters a converter leaves are replaced by spaces."""
    looks_like_path = isinstance(source, Path) or (
        "\n" not in source and "\t" not in source and len(source) < 1024
        and (source.endswith((".txt", ".md")) or os.path.exists(source)))
    if not looks_like_path:
        if len(source) > MAX_NOTE_BYTES:
            raise NoteError(f"{len(source):,} characters is more than a broker note ({MAX_NOTE_BYTES:,}); refused")
        return without_control_characters(source)
    path = Path(source)
    raw = read_regular(path, MAX_NOTE_BYTES, NoteError, "note file")
    try:
        return without_control_characters(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise NoteError(f"{path}: not UTF-8 text; save the converter's output as UTF-8") from None


_KEPT_CONTROLS = "\t\n\r"


def without_control_characters(text: str) -> str:
    """`text` with every control character but tab and line ends replaced by a space: none can
    reach a label, a data file or a workbook (XML cannot hold them)."""
    if not any(unicodedata.category(ch) == "Cc" and ch not in _KEPT_CONTROLS for ch in text):
        return text
    return "".join(" " if unicodedata.category(ch) == "Cc" and ch not in _KEPT_CONTROLS else ch for ch in text)


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
            if len(tables) >= MAX_TABLES:
                raise NoteError(f"more than {MAX_TABLES} tables; not a broker note")
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
                add(_table_from_grid(_tsv_grid(start, rows), "tsv", start, context, heading, data))
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
                    shown = raw if len(raw) <= 40 else raw[:40] + f"… ({len(raw):,} characters)"
                    warnings.append(f"{table.title} {row.label} {y.label}: {shown!r} is not a number")
    return Note(tables, market, rating, action, printed, scheme, company, ticker, exchange_market, date, warnings)


def _tsv_grid(start: int, rows: list[_Item]) -> list[list[tuple[str, bool]]]:
    """The cells of a tab-separated table, its size bounded like an HTML table's."""
    if len(rows) > MAX_TABLE_ROWS:
        raise NoteError(f"the table at line {start} has more than {MAX_TABLE_ROWS:,} rows; not a table of a broker note")
    grid = []
    for line in rows:
        cells = line.content.split("\t", MAX_COLUMNS)
        if len(cells) > MAX_COLUMNS:
            raise NoteError(f"line {line.line} has more than {MAX_COLUMNS} tab-separated cells; not a table of a broker note")
        grid.append([(_bounded_cell(cell), False) for cell in cells])
    return grid


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


def _nonzero(row: Row) -> bool:
    return any(c is not None and c.value != 0 for c in row.cells)


# Sign patterns, in the order a statement prefers them: everything added (costs printed
# negative), deductions subtracted (costs printed positive), the first line less the rest, then
# for short runs any combination (which is also how a rearranged identity would match, so last).
ALL_ADDED, DEDUCTIONS, FIRST_LESS_REST, ANY_SIGNS = range(4)
NATURAL = (ALL_ADDED, DEDUCTIONS, FIRST_LESS_REST)
# A run's patterns in the order they are tried at each length: (group, patterns), each group on
# the lines above the total before those below it.
RUN_GROUPS = ((0, (ALL_ADDED, DEDUCTIONS)), (1, (FIRST_LESS_REST,)), (2, (ANY_SIGNS,)))
_RUN_GROUP = {pattern: group for group, patterns in RUN_GROUPS for pattern in patterns}

# How far the search looks, and so what it costs (see `SubtotalSearch`): a subtotal adds at most
# MAX_PARTS printed lines in a run (the notes' largest adds 14); any combination of signs is tried
# on runs of up to ANY_SIGNS_UP_TO lines; small sets of SUBSET_SIZES lines are taken among the
# SUBSET_WINDOW nearest lines on either side.
MAX_PARTS = 24
ANY_SIGNS_UP_TO = 4
SUBSET_WINDOW = 8
SUBSET_SIZES = (2, 3, 4)
# The most sign patterns one candidate total is checked against, on both sides: every run length
# under each natural pattern, every sign combination of the short runs, every small set.
CANDIDATE_WORK = 2 * (len(NATURAL) * MAX_PARTS + sum(2 ** k - 1 for k in range(2, ANY_SIGNS_UP_TO + 1))
                      + len(NATURAL) * sum(math.comb(SUBSET_WINDOW, k) for k in SUBSET_SIZES))


def _is_deduction(row: Row, roles: dict[int, str | None], deductions: set[str]) -> bool:
    if roles.get(row.position) not in deductions:
        return False
    values = [c.value for c in row.cells if c is not None and c.value != 0]
    return sum(v > 0 for v in values) >= len(values) / 2 if values else False


class SearchResult(NamedTuple):
    subtotals: list            # Subtotal, by the total's position
    partial: list              # PartialIdentity of the memo lines
    examined: int              # sign patterns checked against a candidate total: the search's work
    bound: int                 # what `examined` may reach for this table (see SubtotalSearch)


class SubtotalSearch:
    """Which lines of a statement add up to which: the search `infer_subtotals` documents, with
    a stated bound on its work.

    Candidates, in the order a statement is read: contiguous runs of lines directly above or
    below a candidate total, shortest first (up to MAX_PARTS lines), under the natural sign
    patterns, then any signs for runs of up to ANY_SIGNS_UP_TO lines; only when no run adds up
    anywhere, small sets among the SUBSET_WINDOW nearest lines. The first candidate in that
    order that holds in every year within the printed rounding is recorded, its parts collapse
    into their total, and the search goes on until nothing more adds up.

    The bound: each candidate total's first run and first small set are searched once, at most
    CANDIDATE_WORK sign patterns checked (each check is linear in the run and the years), and
    kept; a recorded subtotal changes the neighbourhood only of the totals within
    max(MAX_PARTS, SUBSET_WINDOW) + 1 lines of its total and parts (and of its total's own
    parts), and only those are searched again. So the patterns checked are at most
    CANDIDATE_WORK x (lines + the totals each recorded subtotal makes stale), which the search
    counts (`SearchResult.bound`): linear in the lines of a statement without subtotals, never
    worse than quadratic. (The search it replaces re-tried every run length up to the table's
    size on every total after every subtotal found, and was still running after a minute on a
    150-line statement.)"""

    def __init__(self, table: Table, data: LabelData | None = None):
        data = data or default_label_data()
        section = data.variants.get(table.kind, {})
        roles = {r.position: section.get(normalise_label(r.label), (None,))[0] for r in table.lines}
        deductions = set(data.section("deductions").get("roles", []))
        self.table = table
        self.years = table.years
        self.lines = [r for r in table.lines if r.has_figures and not r.percent]
        self.index = {r.position: i for i, r in enumerate(self.lines)}
        self.deduction = {r.position: _is_deduction(r, roles, deductions) for r in self.lines}
        self.nonzero = {r.position: _nonzero(r) for r in self.lines}
        self.intervals = {r.position: [None if c is None else (*astuple(c.interval()), c.value, c.decimals)
                                       for c in r.cells[:len(self.years)]] + [None] * (len(self.years) - len(r.cells))
                          for r in self.lines}
        # The same figures as arrays, for the small-set search: interval ends and values per
        # line and year, nan where a year is not printed.
        grid = [[self.intervals[r.position][j] for j in range(len(self.years))] for r in self.lines]
        self.lo, self.hi, self.value = (np.array([[np.nan if c is None else c[k] for c in row] for row in grid],
                                                 dtype=float).reshape(len(self.lines), len(self.years)) for k in range(3))
        self.nonzero_array = np.array([self.nonzero[r.position] for r in self.lines], dtype=int)
        self.deduction_array = np.array([self.deduction[r.position] for r in self.lines], dtype=bool)
        self.top = list(self.lines)     # the collapsed view: rows that are part of no total found yet
        self.found: list[Subtotal] = []
        self.partial: dict[int, PartialIdentity] = {}
        self.totals: set[int] = set()
        self.children: dict[int, list[Row]] = {}
        self.parent: dict[int, int] = {}               # part position -> the total it is part of
        self.examined = 0
        self.bound = CANDIDATE_WORK * len(self.lines)
        # total position -> (its first run or small set that adds up: (key, Subtotal), or None;
        # the near misses met before it: [(key, Subtotal, years held, years failed)])
        self.runs: dict[int, tuple] = {}
        self.sets: dict[int, tuple] = {}
        self._events: list = []
        self._reach = 0

    # -- the parts of the search --------------------------------------------------------------
    def run(self) -> SearchResult:
        while True:
            hit = self._best(self.runs, self._best_run, total_at=4)
            if hit is None:
                hit = self._best(self.sets, self._best_set, total_at=2)
            if hit is None:
                break
            self._record(hit)
        self.found.sort(key=lambda s: s.total.position)
        memo = {r.position for r in memo_rows(self.table, self.found)}
        partial = sorted((p for pos, p in self.partial.items() if pos in memo), key=lambda p: p.subtotal.total.position)
        return SearchResult(self.found, partial, self.examined, self.bound)

    def _best(self, cache: dict, search, total_at: int) -> Subtotal | None:
        """The first hit over every candidate total: each total's own first hit (cached until a
        recorded subtotal changes its neighbourhood), ordered with the total's place in the
        table at `total_at` in the key, where the statement's reading order puts it."""
        best, events = None, []
        for total in self.lines:
            if total.position in self.totals:
                continue
            if total.position not in cache:
                self._events = []
                cache[total.position] = (search(total), self._events, self._reach)
            found, partial, _reach = cache[total.position]
            where = self.index[total.position]
            events += [((*key[:total_at], where, *key[total_at:]), *event) for key, *event in partial]
            if found is not None:
                key = (*found[0][:total_at], where, *found[0][total_at:])
                if best is None or key < best[0]:
                    best = (key, found[1])
        # The near misses a reader of the statement would meet before the first hit, in that
        # order; the first with the most years held is kept for each total.
        for key, candidate, held, failed in sorted(events, key=lambda event: event[0]):
            if best is not None and key >= best[0]:
                break
            known = self.partial.get(candidate.total.position)
            if known is None or len(held) > len(known.held):
                self.partial[candidate.total.position] = PartialIdentity(candidate, tuple(held), tuple(failed))
        return best[1] if best else None

    def _neighbours(self, total: Row) -> tuple[list[Row], list[Row]]:
        positions = [r.position for r in self.top]
        cut = bisect.bisect_left(positions, total.position)
        below = cut + 1 if cut < len(positions) and positions[cut] == total.position else cut
        return self.top[:cut], self.top[below:]

    def _ancestors(self, row: Row) -> set[int]:
        """Positions of the totals `row` is part of, directly or through other totals: none of
        them may be a part of a subtotal of `row` (that would count it twice)."""
        out, position = set(), row.position
        while position in self.parent:
            position = self.parent[position]
            out.add(position)
        return out

    def _best_run(self, total: Row):
        """((k, group, side, pattern), Subtotal) of the first run that adds up to `total` in
        the order (run length, pattern group, side, pattern), or None. The natural patterns are
        checked for every run length at once (numpy), with the same interval sums added in the
        same order as `_check`; any signs, on the short runs only, one by one. Sets `_reach`:
        how many lines on either side the answer depends on."""
        self._reach = 0
        if not self.nonzero[total.position]:
            return None
        above, below = self._neighbours(total)
        longest = min(MAX_PARTS, len(self.lines) - 1)
        sides = (list(reversed(above[-longest:])), below[:longest])   # nearest first, both sides
        ancestors = self._ancestors(total)
        found = []   # (key, side, k, pattern index, failed) of every natural hit or near miss
        usable = {}  # (side, pattern index) -> which run lengths (index k - 1) can be a subtotal
        runs = {}    # side -> its rows in printed order for each length: a function of k
        for side, rows in enumerate(sides):
            if len(rows) < 2:
                continue
            lines = np.array([self.index[r.position] for r in rows])
            blocked = next((i for i, r in enumerate(rows) if r.position in ancestors), len(rows))
            length = np.arange(1, len(rows) + 1)
            valid = (length >= 2) & (length <= blocked) & (np.cumsum(self.nonzero_array[lines]) >= 2)
            deduction = self.deduction_array[lines]
            lo, hi = _run_sums(self.lo[lines], self.hi[lines], deduction, printed_backwards=side == 0)
            held, failed, _informative, _missed = self._years(total, lo, hi)
            for p, pattern in enumerate(NATURAL):
                usable[(side, p)] = valid & (np.cumsum(deduction) > 0) if pattern == DEDUCTIONS else valid
                for i in np.flatnonzero(usable[(side, p)] & (held[p] >= 2) & (held[p] >= failed[p])):
                    k = int(i) + 1
                    found.append(((k, _RUN_GROUP[pattern], side, pattern), side, k, p, int(failed[p, i])))
            runs[side] = rows
        hits = [f for f in found if f[4] == 0]
        first = min(hits)[0] if hits else None
        hit = None
        for k in range(2, min(ANY_SIGNS_UP_TO, longest) + 1):   # any signs: only keys before the first natural hit
            for side in (0, 1):
                key = (k, _RUN_GROUP[ANY_SIGNS], side, ANY_SIGNS)
                valid = usable.get((side, 0))   # ALL_ADDED's: every run that can be a subtotal
                if (first is not None and key > first) or valid is None or k > len(valid) or not valid[k - 1]:
                    continue
                attempt = self._attempt(total, self._run(runs[side], k, side), ANY_SIGNS, key)
                if attempt:
                    first, hit = key, attempt
                    break
            if hit:
                break
        for (side, p), ok in usable.items():   # the natural patterns a reader meets up to the first hit
            keys_k = np.flatnonzero(ok) + 1
            pattern = NATURAL[p]
            self.examined += int(sum(1 for k in keys_k if first is None or (k, _RUN_GROUP[pattern], side, pattern) <= first))
        for key, side, k, p, failed in found:
            if first is not None and key > first:
                continue
            run = self._run(runs[side], k, side)
            signs = _signs(NATURAL[p], [self.deduction[r.position] for r in run])[0]
            checked = self._check(total, run, signs, True)
            candidate = Subtotal(total, tuple(Part(sg, r) for sg, r in zip(signs, run)))
            if key == first:
                hit = candidate
            elif checked is not None:
                held, missed = checked
                self._events.append((key, candidate, held, self._failures(total, run, signs, missed)))
        self._reach = first[0] if first is not None else longest
        return (first, hit) if hit is not None else None

    @staticmethod
    def _run(rows: list[Row], k: int, side: int) -> list[Row]:
        """The run of `k` lines nearest a total on one side (`rows` nearest first), in printed order."""
        return list(reversed(rows[:k])) if side == 0 else rows[:k]

    def _years(self, total: Row, lo: np.ndarray, hi: np.ndarray):
        """For sums of parts (rows of `lo`, `hi` by year): (informative years held, years failed,
        which years held informatively, which failed), per row, as `_check` judges a year."""
        t = self.index[total.position]
        t_lo, t_hi, t_value = self.lo[t], self.hi[t], self.value[t]
        with np.errstate(invalid="ignore"):
            counted = ~(np.isnan(lo) | np.isnan(t_lo))     # a year every figure is printed in
            meets = counted & (lo <= t_hi + 1e-9) & (t_lo - 1e-9 <= hi)
            informative = meets & (np.abs(t_value) > (hi - lo + t_hi - t_lo) / 2)
        missed = counted & ~meets
        return informative.sum(axis=-1), missed.sum(axis=-1), informative, missed

    def _best_set(self, total: Row):
        """((size, pattern, side, combination), Subtotal) of the first small set of nearby lines
        that adds up to `total`, or None. All the sets of one size, pattern and side are checked
        at once (numpy), with the same interval sums, in the same order, as `_check`."""
        self._reach = SUBSET_WINDOW
        if not self.nonzero[total.position]:
            return None
        above, below = self._neighbours(total)
        sides = (above[-SUBSET_WINDOW:], below[:SUBSET_WINDOW])
        ancestors = self._ancestors(total)
        for size in SUBSET_SIZES:
            for pattern in NATURAL:
                for side, rows in enumerate(sides):
                    if len(rows) < size:
                        continue
                    lines = np.array([self.index[r.position] for r in rows])
                    combos = lines[_combinations(len(rows), size)]            # (sets, size): line indexes
                    usable = (self.nonzero_array[combos].sum(axis=1) >= 2) & \
                        ~np.isin(combos, [self.index[a] for a in ancestors if a in self.index]).any(axis=1)
                    deduction = self.deduction_array[combos]
                    if pattern == ALL_ADDED:
                        positive = np.ones(combos.shape, dtype=bool)
                    elif pattern == DEDUCTIONS:
                        positive, usable = ~deduction, usable & deduction.any(axis=1)
                    else:
                        positive = np.zeros(combos.shape, dtype=bool)
                        positive[:, 0] = True
                    lo = np.zeros((len(combos), len(self.years)))
                    hi = np.zeros_like(lo)
                    for i in range(size):
                        plus = positive[:, i:i + 1]
                        part_lo, part_hi = self.lo[combos[:, i]], self.hi[combos[:, i]]
                        lo, hi = lo + np.where(plus, part_lo, -part_hi), hi + np.where(plus, part_hi, -part_lo)
                    held, failed, informative, missed = self._years(total, lo, hi)
                    hits = np.flatnonzero(usable & (held >= 2) & (failed == 0))
                    stop = hits[0] if len(hits) else len(combos)
                    self.examined += int(usable[:stop + 1].sum())
                    for n in np.flatnonzero(usable[:stop] & (held[:stop] >= 2) & (held[:stop] >= failed[:stop])):
                        parts = [self.lines[i] for i in combos[n]]
                        signs = tuple(1 if plus else -1 for plus in positive[n])
                        candidate = Subtotal(total, tuple(Part(sg, r) for sg, r in zip(signs, parts)))
                        years_held = [self.years[j].label for j in np.flatnonzero(informative[n])]
                        self._events.append(((size, pattern, side, int(n)), candidate, years_held,
                                             self._failures(total, parts, signs, list(np.flatnonzero(missed[n])))))
                    if len(hits):
                        n = hits[0]
                        signs = tuple(1 if plus else -1 for plus in positive[n])
                        return (size, pattern, side, int(n)), Subtotal(
                            total, tuple(Part(sg, self.lines[i]) for sg, i in zip(signs, combos[n])))
        return None

    def _attempt(self, total: Row, parts: list[Row], pattern: int, key: tuple) -> Subtotal | None:
        """The subtotal if `parts` add up to `total` under `pattern` in every year; a near miss
        under a natural pattern (most years hold) is noted with its `key` for `_best`."""
        deduction = [self.deduction[p.position] for p in parts]
        natural = pattern in NATURAL
        for signs in _signs(pattern, deduction):
            self.examined += 1
            checked = self._check(total, parts, signs, natural)
            if checked is None:
                continue
            held, failed = checked
            candidate = Subtotal(total, tuple(Part(s, p) for s, p in zip(signs, parts)))
            if not failed:
                return candidate
            self._events.append((key, candidate, held, self._failures(total, parts, signs, failed)))
        return None

    def _check(self, total: Row, parts: list[Row], signs: tuple[int, ...], natural: bool):
        """(labels of the informative years held, indexes of the years failed) when `parts`
        under `signs` add up to `total` in every year (a hit) or, under a natural pattern, hold
        in at least two years and in no fewer than fail (a near miss); None otherwise, as soon
        as the years left cannot make it either.

        A year holds when the printed total's interval meets the interval the printed parts
        allow. A year is informative only when the total is larger than the rounding slack of
        the sum, so that a sum of zeros cannot "explain" a small figure such as EPS."""
        held, failed = [], []
        cells = [self.intervals[p.position] for p in parts]
        totals = self.intervals[total.position]
        last = len(totals) - 1
        for j, t in enumerate(totals):
            if t is None:
                continue
            lo = hi = 0.0
            for sign, c in zip(signs, cells):
                value = c[j]
                if value is None:
                    break
                lo, hi = (lo + value[0], hi + value[1]) if sign > 0 else (lo - value[1], hi - value[0])
            else:
                t_lo, t_hi, t_value, _ = t
                if lo <= t_hi + 1e-9 and t_lo - 1e-9 <= hi:
                    if abs(t_value) > (hi - lo + t_hi - t_lo) / 2:
                        held.append(self.years[j].label)
                else:
                    failed.append(j)
                    if not natural or len(held) + last - j < max(2, len(failed)):
                        return None
        if len(held) < 2 or len(held) < len(failed):
            return None
        return held, failed

    def _failures(self, total: Row, parts: list[Row], signs: tuple[int, ...], failed: list[int]) -> list:
        """(year, printed total, what the printed parts give) for each year failed."""
        cells = [self.intervals[p.position] for p in parts]
        out = []
        for j in failed:
            point = 0.0
            for sign, c in zip(signs, cells):
                point += sign * c[j][2]
            out.append((self.years[j].label, self.intervals[total.position][j][2], round(point, max(c[j][3] for c in cells))))
        return out

    def _record(self, hit: Subtotal) -> None:
        """Collapse the parts into the total, and forget the searches they change."""
        positions = [r.position for r in self.top]
        touched = [hit.total.position] + [p.row.position for p in hit.parts]
        self.children[hit.total.position] = [p.row for p in hit.parts]
        self.parent.update((p.row.position, hit.total.position) for p in hit.parts)
        self.found.append(hit)
        self.totals.add(hit.total.position)
        for part in hit.parts:
            self.top.remove(part.row)
        # A cached search depends on the `reach` nearest lines of the collapsed view on either
        # side of its total (and on the totals above it): only those that lost one are stale.
        reach = max(MAX_PARTS, SUBSET_WINDOW) + 1
        lost = [bisect.bisect_left(positions, position) for position in touched]
        stale: set = set(self._descendants(hit.total))
        for i in lost:
            lo, hi = positions[max(0, i - reach)], positions[min(len(positions) - 1, i + reach)]
            for row in self.lines:
                if not lo <= row.position <= hi:
                    continue
                at = bisect.bisect_left(positions, row.position)
                below = at + (at < len(positions) and positions[at] == row.position)
                for cache in (self.runs, self.sets):
                    entry = cache.get(row.position)
                    if entry is not None and (at - entry[2] <= i < at or below <= i < below + entry[2]):
                        stale.add(row.position)
        for position in stale:
            self.runs.pop(position, None)
            self.sets.pop(position, None)
        self.bound += CANDIDATE_WORK * len(stale)

    def _descendants(self, row: Row):
        for child in self.children.get(row.position, []):
            yield child.position
            yield from self._descendants(child)


def _run_sums(part_lo: np.ndarray, part_hi: np.ndarray, deduction: np.ndarray, printed_backwards: bool):
    """(lo, hi) interval sums, shaped (pattern, run length - 1, year), of the runs of 1, 2, ...
    lines from lines given nearest the total first, under each natural sign pattern (NATURAL's
    order), each run's parts added one by one in printed order: the lines below a total run
    downwards from it; those above end at it (`printed_backwards`), so there each longer run
    starts with a new first line."""
    n = len(part_lo)
    first = np.arange(n) == 0
    if printed_backwards:   # run k adds lines k-1, k-2, ..., 0: a triangle of them, summed left to right
        k, i = np.arange(n)[:, None], np.arange(n)[None, :]
        order, inside = np.clip(k - i, 0, None), i <= k
        first = np.broadcast_to(i == 0, (n, n))
    else:                   # run k adds lines 0, 1, ..., k-1: a running sum
        order, inside = None, None
    out_lo, out_hi = [], []
    for pattern in NATURAL:
        plus = (np.ones(n, dtype=bool) if pattern == ALL_ADDED else ~deduction if pattern == DEDUCTIONS else first)
        if printed_backwards:
            plus = np.broadcast_to(plus[order] if pattern != FIRST_LESS_REST else plus, (n, n))[..., None]
            lo = np.where(inside[..., None], np.where(plus, part_lo[order], -part_hi[order]), 0.0)
            hi = np.where(inside[..., None], np.where(plus, part_hi[order], -part_lo[order]), 0.0)
            out_lo.append(np.add.accumulate(lo, axis=1)[:, -1])
            out_hi.append(np.add.accumulate(hi, axis=1)[:, -1])
        else:
            plus = plus[:, None]
            out_lo.append(np.cumsum(np.where(plus, part_lo, -part_hi), axis=0))
            out_hi.append(np.cumsum(np.where(plus, part_hi, -part_lo), axis=0))
    return np.stack(out_lo), np.stack(out_hi)


@lru_cache(maxsize=None)
def _combinations(n: int, size: int) -> np.ndarray:
    """Every choice of `size` of `n` items, as rows of indexes, in itertools' order."""
    return np.array(list(itertools.combinations(range(n), size)), dtype=int).reshape(-1, size)


def _signs(pattern: int, deduction: list[bool]):
    k = len(deduction)
    if pattern == ALL_ADDED:
        return [tuple([1] * k)]
    if pattern == DEDUCTIONS:
        return [tuple(-1 if d else 1 for d in deduction)] if any(deduction) else []
    if pattern == FIRST_LESS_REST:
        return [tuple([1] + [-1] * (k - 1))]
    return [s for s in itertools.product((1, -1), repeat=k) if -1 in s] if k <= ANY_SIGNS_UP_TO else []


def _search(table: Table, data: LabelData | None = None) -> SearchResult:
    """The table's subtotal search, done once per table and label data: the import report, the
    layout inference and the partial identities all read the same result."""
    fingerprint = (id(data), tuple((r.position, r.label, r.heading, tuple((c.value, c.decimals, c.percent) if c else None
                                                                        for c in r.cells)) for r in table.rows))
    if table.search is None or table.search[0] != fingerprint:
        table.search = (fingerprint, SubtotalSearch(table, data).run())
    return table.search[1]


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
        out.extend("  " + w for w in note.warnings[:MAX_WARNINGS_LISTED])
        if len(note.warnings) > MAX_WARNINGS_LISTED:
            add(f"  … and {len(note.warnings) - MAX_WARNINGS_LISTED} more")
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
