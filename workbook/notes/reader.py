"""The whole reading of a note, stage after stage: its text, its tables, the facts and market
data, the rating and scheme."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .facts import MarketData, _identity, _market_from
from .labels import LabelData, default_label_data
from .ratings import RatingScheme, _rating_from, _scheme_from
from .source import _body, _items, _note_text
from .tables import PLACEHOLDER, Row, Table, _HtmlTable, _split_tsv, _table_from_grid

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


