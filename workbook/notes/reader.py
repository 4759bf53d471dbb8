"""The whole reading of a note, stage after stage: its text, its tables, the facts and market
data, the rating and scheme. Each stage's output is a plain value the next one reads."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .facts import Identity, MarketData, citation_lines, identity_from, market_from, price_date_from
from .labels import STATEMENTS, LabelData, default_label_data
from .ratings import Rating, RatingScheme, rating_from, scheme_from
from .source import Block, NoteError, blocks, body, read_text
from .structure import analyse
from .tables import Draft, Row, Table, YearColumn, draft_of, finish, read_header, title_kind

MAX_TABLES = 500         # tables of one note; a real note prints a few dozen
MAX_SHOWN = 40           # characters of an unreadable cell quoted in a warning


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
    identity: Identity = field(default_factory=Identity)
    rating_read: Rating = field(default_factory=Rating)
    structures: dict = field(default_factory=dict)      # table index -> Structure (statements)
    text: str = ""                                      # the note's text, for what is read from it whole

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


_SOURCE_LINE = re.compile(r"(资料来源|数据来源|!\[)")


@dataclass
class Layout:
    """The tables of a note and the text around them."""
    tables: list[Table]
    text_lines: list[str]
    after: dict[int, list[str]]     # table index -> the first text lines after it


def read_tables(parts: list[Block], data: LabelData) -> Layout:
    """Every table of the note. A table that prints no year header takes the years of the last
    table before it that prints as many columns: as a table of its own when it names its own
    kind (a statement printed without a header), else as the rest of that table (a table the
    converter split)."""
    tables: list[Table] = []
    context: list[str] = []
    heading = None
    text_lines: list[str] = []
    after: dict[int, list[str]] = {}
    drafts: list[Draft] = []
    for part in parts:
        if part.kind == "text":
            line = part.text.strip()
            text_lines.append(part.text)
            if not line:
                continue
            if tables and len(after[len(tables) - 1]) < 3:
                after[len(tables) - 1].append(line)
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
                context.append(heading)
            elif not _SOURCE_LINE.match(line):
                context.append(line)
            context = context[-3:]
            continue
        if part.kind == "tsv":
            # a run of tab-separated lines holds as many tables as it prints year headers
            pieces, lines = [], part.text.split("\n")
            start = 0
            for j in range(1, len(lines)):
                if read_header(lines[j].split("\t")):
                    pieces.append(Block(part.line + start, "tsv", "\n".join(lines[start:j])))
                    start = j
            pieces.append(Block(part.line + start, "tsv", "\n".join(lines[start:])))
        else:
            pieces = [part]
        for piece in pieces:
            context = _add_table(piece, context, heading, data, tables, drafts, after)
    return Layout(tables, text_lines, after)


def _add_table(part: Block, context: list[str], heading: str | None, data: LabelData, tables: list[Table],
               drafts: list[Draft], after: dict) -> list[str]:
    draft = draft_of(part, context, heading, data)
    if draft is None:
        return []
    table = None
    if draft.header is not None:
        table = finish(draft, draft.header.years, data)
    elif any(r.values and _figures(r.values) for r in draft.rows):
        donor = next((d for d in reversed(drafts) if d.header is not None and d.width == draft.width), None)
        if donor is not None:
            years = [YearColumn(y.label, y.year, y.forecast, y.mark, j) for j, y in enumerate(_columns(donor))]
            own = next((k for t in draft.titles + draft.context[::-1] for k in [title_kind(t, data)] if k), None)
            donor_table = tables[donor.index]
            if own is not None and own != donor_table.kind or draft.titles:
                table = finish(draft, years, data)
                table.notes.append(f"prints no year header: the years of the table at line {donor.block.line}")
            else:
                rest = finish(draft, years, data, kind_hint=donor_table.kind)
                offset = len(donor_table.rows)
                for row in rest.rows:
                    row.position += offset
                donor_table.rows.extend(rest.rows)
                donor_table.notes.append(f"continues in the table at line {part.line} (no header of its own)")
                return []
    if table is None:
        table = finish(draft, [], data)
    if len(tables) >= MAX_TABLES:
        raise NoteError(f"more than {MAX_TABLES} tables: more than a broker note prints")
    draft.index = len(tables)
    drafts.append(draft)
    tables.append(table)
    after[len(tables) - 1] = []
    return []


def _figures(values: list[str]) -> bool:
    from .numbers import parse_number
    return any(parse_number(v) is not None for v in values)


def _columns(draft: Draft) -> list[YearColumn]:
    return draft.header.years if draft.header else []


def read_note(source: str | Path, data: LabelData | None = None) -> Note:
    """Every table, figure, market datum and the rating of a converted broker note.

    `source` is a path to the note's text (UTF-8 or GBK) or the text itself. Raises `NoteError`
    when the file cannot be read."""
    data = data or default_label_data()
    text = body(read_text(source).replace("\r\n", "\n").lstrip("\ufeff"))
    layout = read_tables(blocks(text), data)
    tables = layout.tables
    structures = {i: analyse(t, data) for i, t in enumerate(tables) if t.kind in STATEMENTS}
    numbered = [(n + 1, line) for n, line in enumerate(layout.text_lines)]
    market = market_from(tables, numbered, data)
    identity = identity_from(numbered, data)
    market.price_date, market.price_date_where = price_date_from(numbered, tables, market)
    scheme = scheme_from(tables, numbered, data)
    labels = [b.label for b in scheme.bands] + ([scheme.unrated] if scheme and scheme.unrated else []) if scheme else []
    rating = rating_from(numbered, citation_lines(numbered, data), labels, data)
    if rating.label and rating.action is None and rating.previous and scheme:
        order = [b.label for b in scheme.bands]
        if rating.previous == rating.label:
            rating.action = "维持"
        elif rating.previous in order and rating.label in order:
            rating.action = "上调" if order.index(rating.label) < order.index(rating.previous) else "下调"
    warnings = []
    for table in tables:
        for row in table.rows:
            for j, (raw, why) in sorted(row.damage.items()):
                shown = raw if len(raw) <= MAX_SHOWN else raw[:MAX_SHOWN] + f"… ({len(raw):,} characters)"
                warnings.append(f"{table.title} {row.label} {table.years[j].label}: {shown!r}: {why}")
    return Note(tables, market, rating.label, rating.action, rating.printed, scheme, identity.company, identity.ticker,
                identity.exchange_market, identity.date, warnings + market.notes + rating.notes, identity, rating,
                structures, text)
