"""The tests' own reading of a converted broker note's statement tables, independent of the
importer: a plain split of the HTML (or tab-separated) tables into rows of cell texts, figures
read with a strict and simple parser, and the human reader's corrections where the converter
scrambled a table beyond what its cells say (typed in the test that needs them).

Nothing here imports the product's reader.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})([AE]?)(?!\d)")
_NUMBER = re.compile(r"^-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")


@dataclass(frozen=True)
class Cell:
    """One printed figure as the test reads it: the text in the note and its value."""
    raw: str
    value: float | None      # None: the text is not a well-formed number (a converter's damage)
    decimals: int
    percent: bool


@dataclass
class PrintedRow:
    label: str                       # as printed, markup and spaces removed
    cells: dict[str, Cell]           # year label -> printed figure
    occurrence: int = 0              # 0 for the first row with this label in its table, 1 for the next…


@dataclass
class PrintedTable:
    kind: str
    years: list[str]
    rows: list[PrintedRow] = field(default_factory=list)
    scrambled: list[str] = field(default_factory=list)   # labels of rows whose cells do not fit the years

    def row(self, label: str, occurrence: int = 0) -> PrintedRow:
        return next(r for r in self.rows if r.label == squeeze(label) and r.occurrence == occurrence)


def squeeze(label: str) -> str:
    """A label as the test compares it: full-width folded, markup, spaces and HTML entities gone."""
    text = unicodedata.normalize("NFKC", re.sub(r"<[^>]+>", "", label)).replace("&amp;", "&")
    return re.sub(r"\s+", "", text)


def read_cell(raw: str, percent_row: bool = False) -> Cell | None:
    """A printed figure, or None for an empty cell. `(1,234)` is negative; spaces inside a number
    (a converter's) are dropped; a malformed number keeps its text with no value."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text or text in ("-", "--", "—"):
        return None
    percent = percent_row or text.endswith("%")
    # A space beside a comma or a decimal point is the converter's ("2, 985", "22. 61"); one
    # between two digits separates two figures the converter ran into one cell.
    text = re.sub(r"\s*([,.])\s*", r"\1", text.rstrip("%").strip())
    negative = text.startswith("(") and text.endswith(")")
    digits = text.strip("()")
    if not _NUMBER.match(digits):
        return Cell(raw.strip(), None, 0, percent)
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    value = float(digits.replace(",", ""))
    return Cell(raw.strip(), (-value if negative else value) + 0.0, decimals, percent)


def html_tables(path: Path) -> list[list[list[str]]]:
    """Every HTML table of the note, as rows of cell texts (spans not expanded: as printed)."""
    text = path.read_text(encoding="utf-8")
    out = []
    for table in re.findall(r"<table>(.*?)</table>", text, re.S):
        rows = [[c for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)] for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
        out.append(rows)
    return out


def tsv_table(path: Path, title_contains: str) -> list[list[str]]:
    """The tab-separated table printed after a title line."""
    lines = path.read_text(encoding="utf-8").split("\n")
    start = next(i for i, line in enumerate(lines) if title_contains in line and "\t" not in line)
    at = next(i for i in range(start + 1, len(lines)) if "\t" in lines[i])
    rows = []
    for line in lines[at:]:
        if "\t" not in line:
            break
        rows.append(line.split("\t"))
    return rows


def statement(rows: list[list[str]], kind: str, years: list[str] | None = None) -> PrintedTable:
    """A statement from its rows of cell texts. The header is the first row naming two or more
    years (`years` when the table prints none); a row of figures whose label cell is empty
    completes the labelled row after it when their filled cells do not overlap (a row the
    converter split in two); rows without figures are headings."""
    header_at = None
    if years is None:
        for i, cells in enumerate(rows):
            found = [m.group(0) for c in cells for m in [_YEAR.search(squeeze(c))] if m]
            if len(found) >= 2:
                header_at, years = i, found
                break
        if years is None:
            raise ValueError("no year header")
    table = PrintedTable(kind, list(years))
    body = rows[header_at + 1:] if header_at is not None else rows
    pending: list[str] | None = None
    seen: dict[str, int] = {}
    for cells in body:
        label = squeeze(cells[0]) if cells else ""
        values = [c for c in cells[1:]]
        filled = [c for c in values if squeeze(c)]
        if not label and filled:
            pending = values
            continue
        if pending is not None:
            merged = [a if squeeze(a) else b for a, b in zip(pending, values + [""] * len(pending))]
            if all(not (squeeze(a) and squeeze(b)) for a, b in zip(pending, values)):
                values, filled = merged, [c for c in merged if squeeze(c)]
            pending = None
        if not label or not filled:
            continue
        percent = "%" in label
        if len(values) == len(table.years):       # one cell per year; a blank one is not printed
            cells = {y: c for y, c in zip(table.years, (read_cell(v, percent) for v in values)) if c is not None}
        elif len(filled) == len(table.years):     # extra empty cells: the figures in order
            cells = dict(zip(table.years, (read_cell(v, percent) for v in filled)))
        else:
            table.scrambled.append(label)         # the test's caller gives this table by hand
            continue
        occurrence = seen.get(label, 0)
        seen[label] = occurrence + 1
        table.rows.append(PrintedRow(label, cells, occurrence))
    return table


def replace_rows(table: PrintedTable, truth: list[tuple[str, list[str]]]) -> PrintedTable:
    """The table with its rows as a human reads them off the page (the converter scrambled them)."""
    out = PrintedTable(table.kind, table.years)
    seen: dict[str, int] = {}
    for label, texts in truth:
        label = squeeze(label)
        occurrence = seen.get(label, 0)
        seen[label] = occurrence + 1
        parsed = [read_cell(t, "%" in label) for t in texts]
        out.rows.append(PrintedRow(label, {y: c for y, c in zip(table.years, parsed) if c is not None}, occurrence))
    return out
