"""Rows as the converter left them, put back as the page prints them.

Labels: a label split over two rows (its first half on a row of its own, or its second half on
the next row's label), a label printed on the row above its figures, a label broken across three
rows whose middle row carries the end of one label and the start of the next (`少数股东损` /
`益 归属母公司` / `净利润`), a row of figures printed without its label beside the labelled row it
completes.

Figures: a row is read by its cells when it has one cell per year, else in printed order when it
prints one figure per year. A converter that moved figures between rows leaves rows with too few
figures, too many, or two run into one cell (`258 2`); for such a block of rows, each year's
figures are read top to bottom and dealt to the block's rows in order — the page's order, which a
move of a figure to the row below keeps. The year of a figure in an irregular row comes from the
columns the regular rows print each year in. Where the counts do not fit, the cells stay empty
and say why; every figure moved is listed.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from .labels import LabelData
from .numbers import PLACEHOLDER_TEXTS, RUN_TOGETHER, PrintedNumber, damage_of, parse_number

LABEL_SPLIT = "label split across two rows"
LABEL_ABOVE = "label printed on the row above its figures"
LABEL_BROKEN = "label broken across rows, joined"
ROW_SPLIT = "row printed in two parts, joined"
PLACEHOLDER = "placeholder read as empty"
MOVED = "figure printed in another row or column by the converter, put back"
SHIFTED = "the converter moved figures between rows here and their places cannot be told"

MAX_BLOCK = 40          # rows of one block of moved figures


@dataclass
class Physical:
    """One row as the converter printed it."""
    label: str
    values: list[str]
    bold: bool = False


@dataclass
class Logical:
    """One row as the page prints it."""
    label: str
    bold: bool
    texts: list[str]                                     # the printed cells of the row its figures are on
    cells: list[PrintedNumber | None]
    damage: dict[int, tuple[str, str]] = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)
    members: list[int] = field(default_factory=list)    # physical rows it was read from
    tail: int = -1                                       # the physical row its figures are printed on


def _filled(values: list[str]) -> list[int]:
    return [i for i, v in enumerate(values) if v.strip()]


def join_labels(rows: list[Physical], data: LabelData) -> list[Logical]:
    """Logical rows with their labels put back together; figures not yet read."""
    out: list[Logical] = []
    i = 0
    n = len(rows)
    while i < n:
        row = rows[i]
        nxt = rows[i + 1] if i + 1 < n else None
        figureless = not _filled(row.values)
        # A label on its own row, its figures on the next row without a label.
        if figureless and row.label and nxt and _filled(nxt.values) and not nxt.label:
            out.append(Logical(row.label, row.bold or nxt.bold, nxt.values, [], repairs=[LABEL_ABOVE],
                               members=[i, i + 1], tail=i + 1))
            i += 2
            continue
        # Figures without a label, completing the labelled row after them (the row split in two).
        if row.label == "" and _filled(row.values) and nxt and nxt.label and _filled(nxt.values) \
                and not set(_filled(row.values)) & set(_filled(nxt.values)):
            merged = [a if a.strip() else b for a, b in zip(row.values + [""] * len(nxt.values), nxt.values)]
            out.append(Logical(nxt.label, row.bold or nxt.bold, merged, [], repairs=[ROW_SPLIT], members=[i, i + 1], tail=i + 1))
            i += 2
            continue
        # The first half of a label alone, the second half on the next row's label.
        if figureless and row.label and nxt and _filled(nxt.values) and data.known(row.label + nxt.label) \
                and not data.known(row.label):
            out.append(Logical(row.label + nxt.label, row.bold or nxt.bold, nxt.values, [], repairs=[LABEL_SPLIT],
                               members=[i, i + 1], tail=i + 1))
            i += 2
            continue
        # The second half of the label above, alone on its row.
        if figureless and row.label and out and _filled(out[-1].texts) and data.known(out[-1].label + row.label) \
                and not data.known(out[-1].label) and not data.known(row.label):
            out[-1].label += row.label
            out[-1].repairs.append(LABEL_SPLIT)
            out[-1].members.append(i)
            i += 1
            continue
        # The second half of this row's label alone on the next row.
        if not figureless and row.label and nxt and not _filled(nxt.values) and nxt.label \
                and data.known(row.label + nxt.label) and not data.known(row.label) and not data.known(nxt.label):
            out.append(Logical(row.label + nxt.label, row.bold or nxt.bold, row.values, [], repairs=[LABEL_SPLIT],
                               members=[i, i + 1], tail=i))
            i += 2
            continue
        # A label broken across rows: this row's label and the head of the next row's label
        # make a known label; what follows the head on that row starts the next label.
        others = data.section("others").get("words", [])
        if row.label and nxt and nxt.label and not data.known(row.label) and row.label not in others:
            head, _, rest = unicodedata.normalize("NFKC", nxt.label).partition(" ")
            if data.known(row.label + head) and not data.known(nxt.label) and (rest or not data.known(head)):
                logical = Logical(row.label + head, row.bold or nxt.bold, nxt.values, [], repairs=[LABEL_BROKEN],
                                  members=[i, i + 1], tail=i + 1)
                out.append(logical)
                if rest:
                    rows = rows[:i + 1] + [Physical(rest.strip(), [""] * len(nxt.values), nxt.bold)] + rows[i + 2:]
                    # the rest's own figures are the next row's; the broken row's are this label's
                    _stash_stray(logical, row)
                    i += 1
                    n = len(rows)
                    continue
                _stash_stray(logical, row)
                i += 2
                continue
        out.append(Logical(row.label, row.bold, row.values, [], members=[i], tail=i))
        i += 1
    return out


def _stash_stray(logical: Logical, head: Physical) -> None:
    """Figures printed on the row of a label's first half belong to no row there: the converter
    moved them. They are kept for the block repair."""
    if _filled(head.values):
        logical.repairs.append("stray:" + "\t".join(head.values))


@dataclass(frozen=True)
class _Token:
    physical: int      # order of the row it was printed on
    column: int        # value cell it was printed in
    order: int         # order within that cell
    text: str


def _tokens(values: list[str], physical: int) -> tuple[list[_Token], bool]:
    """The figures of a row's cells in printed order, and whether a cell held two run together."""
    out, run_together = [], False
    for column, text in enumerate(values):
        if not text.strip() or text.strip().casefold() in PLACEHOLDER_TEXTS:
            continue
        if parse_number(text) is not None:
            out.append(_Token(physical, column, 0, text))
        elif damage_of(text) == RUN_TOGETHER:
            run_together = True
            out.extend(_Token(physical, column, j, t) for j, t in enumerate(unicodedata.normalize("NFKC", text).split()))
        elif damage_of(text):
            out.append(_Token(physical, column, 0, text))
    return out, run_together


def place_figures(rows: list[Logical], columns: list[int] | None, years: list[str], percent: list[bool]) -> list[str]:
    """Read each row's figures into its year cells (one per year), repairing moved figures.

    `columns[j]` is the value cell year j was printed over (None when the header packs several
    years in a cell: the cells follow the data rows). Returns what the table as a whole needed."""
    n = len(years)
    notes: list[str] = []
    plan: list[list[_Token] | None] = []      # per row: its figures in year order, or None (irregular)
    stray: dict[int, list[_Token]] = {}
    tokens_of: list[list[_Token]] = []
    for r, row in enumerate(rows):
        tokens, run_together = _tokens(row.texts, row.tail)
        extra = [x[len("stray:"):] for x in row.repairs if x.startswith("stray:")]
        row.repairs = [x for x in row.repairs if not x.startswith("stray:")]
        if extra:
            stray[r] = _tokens(extra[0].split("\t"), row.members[0])[0]
        tokens_of.append(tokens)
        if run_together or r in stray:
            plan.append(None)
        elif columns is not None and len(row.texts) >= max(columns) + 1 \
                and all(not row.texts[c].strip() for c in range(len(row.texts)) if c not in columns):
            # one cell per year, nothing outside them: blanks are figures not printed
            by_column = {t.column: t for t in tokens}
            plan.append([by_column.get(c) for c in columns])
        elif len(tokens) == n:
            plan.append(list(tokens))
        elif not tokens:
            plan.append([None] * n)
        elif columns is None and len(row.texts) == n:
            by_column = {t.column: t for t in tokens}
            plan.append([by_column.get(c) for c in range(n)])
        else:
            plan.append(None)
    irregular = [r for r, p in enumerate(plan) if p is None]
    if irregular:
        # The columns each year is printed in, from the regular rows.
        seen: dict[int, set[int]] = {}
        for p in plan:
            if p is not None:
                for j, token in enumerate(p):
                    if token is not None:
                        seen.setdefault(token.column, set()).add(j)
        blocks = _blocks(irregular, len(rows))
        for first, last in blocks:
            moved = _deal(rows, plan, tokens_of, stray, first, last, seen, years)
            if moved is None:
                for r in range(first, last + 1):
                    if plan[r] is None:
                        plan[r] = [None] * n
                        for j in range(n):
                            texts = [t.text for t in tokens_of[r]]
                            rows[r].damage[j] = (" ".join(texts), SHIFTED)
                notes.append(f"rows {rows[first].label} to {rows[last].label}: {SHIFTED}; left empty")
            else:
                notes.extend(moved)
        for r, p in enumerate(plan):       # a block too long to deal
            if p is None:
                plan[r] = [None] * n
                rows[r].damage.update({j: (" ".join(t.text for t in tokens_of[r]), SHIFTED) for j in range(n)})
    for row, p, pct in zip(rows, plan, percent):
        if any(t.strip().casefold() in PLACEHOLDER_TEXTS for t in row.texts):
            row.repairs.append(PLACEHOLDER)
        row.cells = []
        for j, token in enumerate(p):
            if token is None:
                row.cells.append(None)
                continue
            number = parse_number(token.text, pct)
            if number is None:
                row.damage.setdefault(j, (token.text, damage_of(token.text) or "not a number"))
            row.cells.append(number)
    return notes


def _blocks(irregular: list[int], count: int) -> list[tuple[int, int]]:
    """Runs of rows around the irregular ones: a move spans the rows between two irregular rows."""
    out: list[list[int]] = []
    for r in irregular:
        if out and r - out[-1][1] <= 3:
            out[-1][1] = r
        else:
            out.append([r, r])
    return [(a, min(count - 1, b)) for a, b in out if b - a < MAX_BLOCK]


def _year_of(token: _Token, seen: dict[int, set[int]], floor: int, n: int) -> int | None:
    """The year a figure in an irregular row was printed for: the columns regular rows print
    each year in, the earliest not before the row's previous figure."""
    candidates = sorted(seen.get(token.column, set(range(n))))
    return next((j for j in candidates if j >= floor), None)


def _deal(rows: list[Logical], plan: list, tokens_of: list, stray: dict, first: int, last: int,
          seen: dict[int, set[int]], years: list[str]) -> list[str] | None:
    """Deal each year's figures of rows first..last, top to bottom, to those rows; None when a
    year's count does not fit."""
    n = len(years)
    streams: list[list[_Token]] = [[] for _ in range(n)]
    for r in range(first, last + 1):
        pools = []
        if r in stray:
            pools.append(stray[r])
        pools.append(tokens_of[r])
        for tokens in pools:
            floor, last_column, last_year = 0, None, None
            for token in tokens:
                if token.column == last_column:
                    year = last_year          # figures run into one cell share its year
                else:
                    year = _year_of(token, seen, floor, n)
                if year is None:
                    return None
                streams[year].append(token)
                floor = year + 1
                last_column, last_year = token.column, year
    span = list(range(first, last + 1))
    if any(len(stream) != len(span) for stream in streams):
        return None
    moved = []
    for r in span:
        plan[r] = [streams[j][span.index(r)] for j in range(n)]
        for j, token in enumerate(plan[r]):
            if token.physical != rows[r].tail:
                moved.append(f"{rows[r].label} {years[j]}: {token.text} was printed on another row; put back")
                rows[r].repairs.append(MOVED)
    return moved
