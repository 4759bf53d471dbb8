"""The note's arithmetic: which printed lines add up to which (subtotals with their signs), the
lines that are part of no total, the cells the arithmetic proves the converter damaged, and the
identities across lines and tables the print breaks.

Signs are the note's own: a cost printed positive and subtracted, printed negative and added, a
finance cost printed negative (net income) still subtracted — each part's sign is found from
which combination of the printed figures gives the printed total in every year, starting from
what the line's role suggests and flipping the fewest signs. Totals are looked for first where
the label data says a line is a total (营业利润, 流动资产合计, 经营活动现金流), among the lines printed
directly before or after it; then any line among its neighbours. A section total whose printed
lines never add up to it (流动资产合计 with lines the note leaves out) keeps those lines as parts and
the difference as a line the note does not print.

Bounded and linear: runs of at most `MAX_RUN` lines, sets of at most 4 among the 8 nearest, at
most `ATTEMPTS_PER_LINE` sign checks per line of the table (each candidate is checked once: what
fails stays failed as subtotals are found), each check on the figures read once; a table longer
than `MAX_LINES` lines is read without subtotals (its lines stay memo lines) and the report says
so, as it says when the checks ran out.
"""
from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from udfs.findings import Interval

from .labels import ROLE_SECTIONS, YEAR_KINDS, LabelData, default_label_data, match_label, normalise_label
from .numbers import PrintedNumber, parse_number
from .tables import Row, Table, YearColumn

if TYPE_CHECKING:
    from .reader import Note

MAX_LINES = 1_000        # statement lines the subtotal search takes on
MAX_RUN = 30             # lines one total may add up
ATTEMPTS_PER_LINE = 300  # sign checks per line of the table: the search's work is linear in it


class Part(NamedTuple):
    sign: int
    row: Row


@dataclass(frozen=True)
class Subtotal:
    """A printed line that is the signed sum of other printed lines, in every year within the
    rounding of the printed figures; `remainder`: the printed parts leave out lines the note does
    not print, which the model carries as one line of its own."""
    total: Row
    parts: tuple[Part, ...]
    remainder: bool = False
    failed: tuple = ()       # an identity of accounting the print breaks: (year, printed, computed)

    def __iter__(self):            # (total, parts), as the tuple it used to be
        return iter((self.total, self.parts))

    def formula(self) -> str:
        text = ""
        for i, (sign, row) in enumerate(self.parts):
            text += (("" if sign > 0 else "−") if i == 0 else (" + " if sign > 0 else " − ")) + row.label
        if self.remainder:
            text += " + 其他（报告未列示）"
        return f"{self.total.label} = {text}"


@dataclass(frozen=True)
class PartialIdentity:
    """A combination of lines that adds up to a line in some years but not in all."""
    subtotal: Subtotal
    held: tuple[str, ...]
    failed: tuple[tuple[str, float, float], ...]   # (year, printed, computed from the parts)


@dataclass(frozen=True)
class CellRepair:
    """A printed cell the arithmetic reads otherwise than its text: a decimal point the converter
    put for a thousands separator (2.875 for 2,875), a garbled separator (6.,075), a dropped digit
    (31,34), a blank cell — each shown by an identity that holds in the other years."""
    row: Row
    year: int                       # index of the year column
    printed: str                    # the text as printed ("" when blank)
    value: float
    decimals: int
    kind: str                       # THOUSANDS_POINT, GARBLED, DROPPED_DIGIT, BLANK
    proof: Subtotal


THOUSANDS_POINT = "a decimal point printed for a thousands separator"
GARBLED = "a garbled separator"
DROPPED_DIGIT = "a digit dropped by the converter: the note's own totals give the figure"
BLANK = "a cell the note leaves blank: its own totals give the figure"


@dataclass
class Structure:
    """A statement's arithmetic, as the layout inference reads it."""
    subtotals: list[Subtotal]
    partial: list[PartialIdentity]
    repairs: list[CellRepair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    examined: int = 0          # sign checks the subtotal search made
    bound: int = 0             # the most it could make

    def memo(self, table: Table) -> list[Row]:
        return memo_rows(table, self.subtotals)

    def parent(self, row: Row) -> Subtotal | None:
        return next((s for s in self.subtotals if any(p.row is row for p in s.parts)), None)


# --------------------------------------------------------------------------------------------
# Checking a candidate

def _check(total: Row, parts: list[Row], signs: tuple[int, ...], years: list[YearColumn], value=None):
    """(informative years held, years failed with printed and computed values).

    A year holds when the printed total's interval meets the interval the printed parts allow.
    A year is informative only when the total is larger than the rounding slack of the sum, so
    that a sum of zeros cannot "explain" a small figure such as EPS."""
    value = value or _printed
    held, failed = [], []
    for j, year in enumerate(years):
        t = value(total, j)
        cells = [value(p, j) for p in parts]
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
            failed.append((year.label, t.value, round(point, max(c.decimals for c in cells) if cells else 0)))
    return held, failed


def _printed(row: Row, j: int) -> PrintedNumber | None:
    return row.cells[j] if j < len(row.cells) else None


def _nonzero(row: Row, value) -> bool:
    return any(value(row, j) is not None and value(row, j).value != 0 for j in range(len(row.cells)))


def _default_signs(parts: list[Row], roles: dict, deductions: set, value, costs: set = frozenset(),
                   convention: int | None = None) -> tuple[int, ...]:
    """What each part's role suggests: a cost takes the statement's convention (subtracted where
    costs are printed positive, whatever this line's sign); another deduction printed mostly
    positive is subtracted; anything else is added."""
    out = []
    for part in parts:
        role = roles.get(part.position)
        if role in costs and convention is not None:
            out.append(convention)
            continue
        values = [value(part, j).value for j in range(len(part.cells)) if value(part, j) is not None and value(part, j).value]
        positive = sum(v > 0 for v in values) >= len(values) / 2 if values else True
        out.append(-1 if role in deductions and positive else 1)
    return tuple(out)


def _convention(table: Table, roles: dict, data: LabelData) -> int | None:
    """-1 when the statement prints its costs positive (to be subtracted), +1 when negative."""
    words = set(data.section("deductions").get("convention_from", []))
    signs = [c.value for r in table.lines if roles.get(r.position) in words for c in r.cells if c is not None and c.value]
    if not signs:
        return None
    return -1 if sum(v > 0 for v in signs) >= len(signs) / 2 else 1


class _Search:
    """The subtotal search over one statement."""

    def __init__(self, table: Table, data: LabelData, value):
        self.table = table
        cells = {(r.position, j): value(r, j) for r in table.lines for j in range(len(r.cells))}
        self.value = lambda row, j: cells.get((row.position, j))      # each cell read once
        # (figure, half its rounding, decimals) per line and year, for the arithmetic
        self.figures = {r.position: [None if (c := cells.get((r.position, j))) is None
                                     else (c.value, 0.5 * 10 ** -c.decimals, c.decimals) for j in range(len(table.years))]
                        for r in table.lines}
        self.nonzero = {r.position: any(f is not None and f[0] != 0 for f in self.figures[r.position]) for r in table.lines}
        self.failed: set = set()       # (total, parts, patterns) tried without an answer: never one later
        self.data = data
        sections = ROLE_SECTIONS.get(table.kind, ("income", "balance", "cashflow"))
        self.roles = {r.position: next((hit[0] for sec in sections for hit in [match_label(data, sec, r.label)] if hit), None)
                      for r in table.lines}
        self.deductions = set(data.section("deductions").get("roles", []))
        self.costs = set(data.section("deductions").get("costs", [])) if table.kind == "income" else set()
        self.convention = _convention(table, self.roles, data) if table.kind == "income" else None
        structure = data.section("structure")
        self.total_roles = set(structure.get("totals", []))
        self.open_roles = set(structure.get("open_totals", []))
        self.total_words = structure.get("total_words", [])
        self.rank = structure.get("rank", {})
        self.excluded = structure.get("excluded_parts", {})
        self.must = structure.get("must_include", {})
        self.sides = (set(structure.get("asset_side", [])), set(structure.get("funding_side", [])))
        self.lines = [r for r in table.lines if r.has_figures and not r.percent and self._additive(r)]
        self.printed_roles = {self.roles.get(r.position) for r in self.lines}
        self.top = list(self.lines)
        self.found: list[Subtotal] = []
        self.partial: dict[int, PartialIdentity] = {}
        self.children: dict[int, list[Row]] = {}
        self.hosted: list[str] = []    # lines read as holding a printed total, said in the notes
        self.attempts = 0
        self._totals: dict[int, bool] = {}
        self.bound = ATTEMPTS_PER_LINE * max(len(self.lines), 1)

    def _additive(self, row: Row) -> bool:
        """Per-share figures and ratios printed inside a statement are not part of its sums."""
        own = match_label(self.data, self.table.kind, row.label) if self.table.kind in ROLE_SECTIONS else None
        if own is None:
            other = match_label(self.data, "ratios", row.label)
            return other is None
        return own[0] not in ("eps", "non_ifrs_eps", "dps", "bvps", "cfo_per_share")

    def is_total(self, row: Row) -> bool:
        known = self._totals.get(row.position)
        if known is None:
            label = normalise_label(row.label)
            known = self._totals[row.position] = (self.roles.get(row.position) in self.total_roles
                                                  or any(label.endswith(w) for w in self.total_words))
        return known

    def default_signs(self, parts: list[Row]) -> tuple[int, ...]:
        """`_default_signs` on the figures read once."""
        out = []
        for part in parts:
            role = self.roles.get(part.position)
            if role in self.costs and self.convention is not None:
                out.append(self.convention)
                continue
            values = [f[0] for f in self.figures[part.position] if f is not None and f[0]]
            positive = sum(v > 0 for v in values) >= len(values) / 2 if values else True
            out.append(-1 if role in self.deductions and positive else 1)
        return tuple(out)

    def contains(self, row: Row, target: Row) -> bool:
        return any(c is target or self.contains(c, target) for c in self.children.get(row.position, []))

    def attempt(self, total: Row, parts: list[Row], patterns: str) -> Subtotal | None:
        """The signs that make `parts` add up to `total` in every year, trying `patterns`:
        "natural" (the roles' signs, everything added, the roles' signs with one or two flipped),
        "less" (the first part less the rest), "any" (every combination, short runs only)."""
        value = self.value
        key = (total.position, tuple(p.position for p in parts), patterns)
        if key in self.failed or self.attempts >= self.bound:
            return None
        hit = self._attempt(total, parts, patterns, value)
        if hit is None:
            self.failed.add(key)     # what fails now fails later too: found subtotals only forbid more
        return hit

    def _attempt(self, total: Row, parts: list[Row], patterns: str, value) -> Subtotal | None:
        if not self.nonzero[total.position] or any(self.contains(p, total) for p in parts):
            return None
        if any(p is total for p in parts) or not self._allowed(total, parts):
            return None
        if len(parts) == 1:
            # one line equal to another in every year (营业总收入 = 营业收入, 非流动负债合计 = 其他)
            part = parts[0]
            same = [j for j in range(len(total.cells)) if value(total, j) is not None and value(part, j) is not None]
            if patterns == "natural" and len(same) >= 2 and all(value(total, j).value == value(part, j).value for j in same) \
                    and self.is_total(total) and self.nonzero[part.position] \
                    and (not self.is_total(part) or self.roles.get(part.position) == self.roles.get(total.position)):
                return Subtotal(total, (Part(1, part),))
            return None
        # a role total may have a part that is zero throughout (所得税 0: 净利润 = 利润总额 − 所得税)
        if sum(self.nonzero[p.position] for p in parts) < (1 if patterns == "natural" and self.is_total(total) else 2):
            return None
        years = self.table.years
        default = self.default_signs(parts)
        if patterns == "natural":
            candidates = [default, tuple([1] * len(parts))]
        elif patterns == "less":
            candidates = [tuple([1] + [-1] * (len(parts) - 1))]
        else:
            candidates = [s for s in itertools.product((1, -1), repeat=len(parts)) if -1 in s] if len(parts) <= 4 else []
        for signs in dict.fromkeys(candidates):
            if self.attempts >= self.bound:
                return None
            self.attempts += 1
            held, failed = self.check(total, parts, signs)
            if len(held) >= 2 and not failed:
                return Subtotal(total, tuple(Part(s, p) for s, p in zip(signs, parts)))
            if patterns == "natural" and signs == default and len(held) >= 2 and len(held) >= len(failed):
                best = self.partial.get(total.position)
                if best is None or len(held) > len(best.held):
                    self.partial[total.position] = PartialIdentity(
                        Subtotal(total, tuple(Part(s, p) for s, p in zip(signs, parts))), tuple(held), tuple(failed))
        return self._flips(total, parts, default) if patterns == "natural" else None

    def _allowed(self, total: Row, parts: list[Row]) -> bool:
        """What accounting forbids whatever the arithmetic: a part from the other side of the
        balance sheet, a part a total never has, an identity without a part the total must have."""
        role = self.roles.get(total.position)
        roles = [self.roles.get(p.position) for p in parts]
        assets, funding = self.sides
        if role in assets and any(r in funding for r in roles) or role in funding and any(r in assets for r in roles):
            return False
        if any(r in self.excluded.get(role, []) for r in roles):
            return False
        if any(m in self.printed_roles and m not in roles for m in self.must.get(role, [])):
            return False
        return True

    def _flips(self, total: Row, parts: list[Row], default: tuple) -> Subtotal | None:
        """The role's signs with one or two of them flipped, where the residual of the default
        says which: flipping part i moves the sum by twice that part."""
        figures, rows = self.figures[total.position], [self.figures[p.position] for p in parts]
        usable = [j for j, t in enumerate(figures) if t is not None and all(r[j] is not None for r in rows)]
        if len(usable) < 2:
            return None
        residual = [figures[j][0] - sum(s * r[j][0] for s, r in zip(default, rows)) for j in usable]
        slack = [sum(r[j][1] for r in rows) + figures[j][1] + 1e-9 for j in usable]
        moves = [[-2 * s * r[j][0] for j in usable] for s, r in zip(default, rows)]
        singles = [i for i, m in enumerate(moves) if all(abs(r - x) <= e for r, x, e in zip(residual, m, slack))]
        pairs = [] if singles else [(a, b) for a, b in itertools.combinations(range(len(parts)), 2)
                                    if all(abs(r - ma - mb) <= e for r, ma, mb, e in zip(residual, moves[a], moves[b], slack))]
        for flip in [(i,) for i in singles] + pairs[:4]:
            signs = tuple(-s if i in flip else s for i, s in enumerate(default))
            if self.attempts >= self.bound:
                return None
            self.attempts += 1
            held, failed = self.check(total, parts, signs)
            if len(held) >= 2 and not failed:
                return Subtotal(total, tuple(Part(s, p) for s, p in zip(signs, parts)))
        return None

    def check(self, total: Row, parts: list[Row], signs: tuple[int, ...]):
        """`_check` on the figures read once: the same answer, without building intervals."""
        held, failed = [], []
        rows = [self.figures[p.position] for p in parts]
        for j, (year, t) in enumerate(zip(self.table.years, self.figures[total.position])):
            if t is None:
                continue
            point = slack = 0.0
            decimals = 0
            for sign, row in zip(signs, rows):
                f = row[j]
                if f is None:
                    break
                point += sign * f[0]
                slack += f[1]
                decimals = max(decimals, f[2])
            else:
                if abs(t[0] - point) <= slack + t[1] + 1e-9:
                    if abs(t[0]) > slack + t[1]:
                        held.append(year.label)
                else:
                    failed.append((year.label, t[0], round(point, decimals)))
        return held, failed

    def _with_zero_rows(self, hit: Subtotal) -> Subtotal:
        """A total of the lines above it takes the lines printed between them and the previous
        total that are zero in every year (长期借款 0 above 其他非流动负债): they are the section's too."""
        if any(p.row.position > hit.total.position for p in hit.parts):
            return hit
        above = [r for r in self.top if r.position < hit.parts[0].row.position]
        zeros = []
        excluded = set(self.excluded.get(self.roles.get(hit.total.position), []))
        for row in reversed(above):
            if self.is_total(row) or self.roles.get(row.position) in excluded:
                break
            if self.nonzero[row.position]:
                return hit
            zeros.insert(0, row)
        if not zeros:
            return hit
        return Subtotal(hit.total, tuple(Part(1, r) for r in zeros) + hit.parts, hit.remainder)

    def record(self, hit: Subtotal) -> None:
        hit = self._with_zero_rows(hit)
        self.children[hit.total.position] = [p.row for p in hit.parts]
        self.found.append(hit)
        for part in hit.parts:
            if part.row in self.top:
                self.top.remove(part.row)

    def explained(self) -> set[int]:
        return {s.total.position for s in self.found}

    def runs(self, total: Row, limit: int) -> list[list[Row]]:
        """The runs of the collapsed view a total may add up: the lines directly above it, and the
        lines directly below it up to the next total (which may be the one line)."""
        above = [r for r in self.top if r.position < total.position][-limit:]
        below: list[Row] = []
        explained = self.explained()
        own = self.rank.get(self.roles.get(total.position))
        for row in (r for r in self.top if r.position > total.position):
            if len(below) >= limit:
                break
            if self.is_total(row):
                other = self.rank.get(self.roles.get(row.position))
                if own is not None and other is not None:
                    if other >= own:
                        break
                elif row.position not in explained and below:
                    break
            below.append(row)
            if self.is_total(row) and row.position not in explained and (own is None or
                                                                           self.rank.get(self.roles.get(row.position)) is None):
                break
        out = [above[-k:] for k in range(1, len(above) + 1)]
        out += [below[:k] for k in range(1, len(below) + 1)]
        return out

    def guided(self, patterns: str) -> bool:
        """Totals by role, shortest runs first."""
        explained = self.explained()
        totals = [r for r in self.lines if self.is_total(r) and r.position not in explained]
        runs = {t.position: self.runs(t, MAX_RUN) for t in totals}
        for k in range(1, MAX_RUN + 1):
            for total in totals:
                for run in runs[total.position]:
                    if len(run) == k and (hit := self.attempt(total, run, patterns)):
                        self.record(hit)
                        return True
        return False

    def generic(self) -> bool:
        """A line of unknown role, of a short run of its neighbours or of a few of them; parts
        printed after it may not be totals (a rearranged identity is no subtotal)."""
        explained = self.explained()
        candidates = [r for r in self.lines if r.position not in explained and self.roles.get(r.position) is None]
        positions = [r.position for r in self.top]          # the collapsed view, in printed order

        def above(total: Row, k: int) -> list[Row]:
            i = bisect.bisect_left(positions, total.position)
            return self.top[max(0, i - k):i]

        def below(total: Row, k: int, skip_totals: bool = False) -> list[Row]:
            i = bisect.bisect_right(positions, total.position)
            if not skip_totals:
                return self.top[i:i + k]
            return list(itertools.islice((self.top[j] for j in range(i, len(self.top)) if not self.is_total(self.top[j])), k))
        for k in range(2, 7):
            # the natural signs before a first line less the rest before any signs, each on the
            # lines above a total before those below it: a rearranged identity comes last
            for patterns in ("natural", "less", "any"):
                for side in ("above", "below"):
                    for total in candidates:
                        run = above(total, k) if side == "above" else below(total, k)
                        if side == "below" and any(self.is_total(r) for r in run):
                            continue
                        if len(run) == k and (hit := self.attempt(total, run, patterns)):
                            self.record(hit)
                            return True
        # a role total whose lines are not all next to it (a memo line between: 股本 between 负债合计
        # and 归属母公司股东权益 under 负债和股东权益合计): a few of its nearest lines, natural signs
        totals = [r for r in self.lines if r.position not in explained and self.is_total(r)]
        total_positions = {r.position for r in totals}
        for size in (2, 3, 4):
            for total in totals + [c for c in candidates if c.position not in total_positions]:
                sides = [above(total, 8)]
                if total.position not in total_positions:
                    sides.append(below(total, 8, skip_totals=True))
                for side in sides:
                    for combo in itertools.combinations(side, size):
                        if (hit := self.attempt(total, list(combo), "natural")):
                            self.record(hit)
                            return True
        return False

    def remainders(self) -> None:
        """Section totals whose printed lines never add up to them: the run of lines next to them
        (down to the line the section starts from) are their parts, the rest is a line the note does
        not print."""
        explained = self.explained()
        inclusive = set(self.data.section("structure").get("inclusive", []))
        parts_now = {p.row.position for s in self.found for p in s.parts}
        for total in [r for r in self.lines if r.position not in explained and self.roles.get(r.position) in self.open_roles]:
            above: list[Row] = []
            for row in reversed([r for r in self.top if r.position < total.position]):
                if self.is_total(row) and row.position not in parts_now:
                    if self.roles.get(row.position) in inclusive:
                        above.insert(0, row)
                    break
                above.insert(0, row)
            below: list[Row] = []
            for row in (r for r in self.top if r.position > total.position):
                if self.is_total(row):
                    break
                below.append(row)
            lines_above = [r for r in self.top if r.position < total.position]
            directly_above = lines_above[-1] if lines_above else None
            excluded = set(self.excluded.get(self.roles.get(total.position), []))
            above = [r for r in above if self.roles.get(r.position) not in excluded]
            below = [r for r in below if self.roles.get(r.position) not in excluded]
            run = above if directly_above is not None and not self.is_total(directly_above) and len(above) >= 2 \
                else below if len(below) >= 2 else []
            if not run:
                continue
            signs = self.default_signs(run)
            self.record(Subtotal(total, tuple(Part(s, p) for s, p in zip(signs, run)), remainder=True))
            parts_now |= {p.position for p in run}


    def accounting(self) -> None:
        """The identities of accounting the print breaks (the label data's `accounting`): the total
        is the sum of the lines of those roles, and the break is a finding."""
        explained = self.explained()
        by_role: dict = {}
        for row in self.lines:
            by_role.setdefault(self.roles.get(row.position), row)
        for role, parts in self.data.section("structure").get("accounting", {}).items():
            total = by_role.get(role)
            rows = [by_role.get(p) for p in parts]
            if total is None or total.position in explained or any(r is None for r in rows):
                continue
            if any(self.contains(r, total) for r in rows):
                continue
            held, failed = _check(total, rows, (1,) * len(rows), self.table.years, self.value)
            hit = Subtotal(total, tuple(Part(1, r) for r in rows), failed=tuple(failed))
            self.found.append(hit)
            self.children[total.position] = rows
            if failed:
                self.partial[total.position] = PartialIdentity(hit, tuple(held), tuple(failed))
        # a total that must contain a printed total (assets contain current assets): that total
        # and the lines between it and the total, whatever the print says
        for role, musts in self.must.items():
            total = by_role.get(role)
            firsts = [by_role.get(m) for m in musts]
            if total is None or total.position in self.explained() or any(f is None for f in firsts):
                continue
            start = max(f.position for f in firsts)
            between = [r for r in self.top if start < r.position < total.position]
            if not between or any(self.is_total(r) and r.position not in self.explained() for r in between):
                continue
            rows = firsts + between
            signs = (1,) * len(firsts) + self.default_signs(between)
            held, failed = _check(total, rows, signs, self.table.years, self.value)
            if failed and self._hosted(total, firsts, between):
                continue
            hit = Subtotal(total, tuple(Part(sg, r) for sg, r in zip(signs, rows)), failed=tuple(failed))
            self.record(hit)
            if failed:
                self.partial[total.position] = PartialIdentity(hit, tuple(held), tuple(failed))

    def _hosted(self, total: Row, firsts: list[Row], between: list[Row]) -> bool:
        """A total that must contain a printed total (assets contain current assets) but adds up
        without it in every year, while the other way it misses by exactly that total: one of its
        lines holds it (a template whose 其他非流动资产 is total assets less the non-current lines
        it lists, current assets included). That line is read as the included total plus a rest
        the note does not print, and the total as the note adds it; False when the print is not so."""
        if len(firsts) != 1 or len(between) < 2:
            return False
        inner = firsts[0]
        signs = self.default_signs(between)
        held, failed = _check(total, between, signs, self.table.years, self.value)
        if failed or not held:
            return False
        hosts = []
        for sign, row in zip(signs, between):
            values = [(self.value(row, j), self.value(inner, j)) for j in range(len(self.table.years))]
            pairs = [(a.value, b.value) for a, b in values if a is not None and b is not None]
            if sign > 0 and pairs and len(pairs) == len(held) + len(failed) and all(a >= b > 0 for a, b in pairs):
                hosts.append(row)
        if not hosts:
            return False
        host = max(hosts, key=lambda r: ((self.roles.get(r.position) or "").startswith("other_"), r.position))
        self.record(Subtotal(total, tuple(Part(sg, r) for sg, r in zip(signs, between))))
        self.found.append(Subtotal(host, (Part(1, inner),), remainder=True))
        self.children[host.position] = [inner]
        self.hosted.append(f"{host.label} holds {inner.label}: {total.label} adds up without {inner.label} in every "
                           f"year and misses by exactly it with it; {host.label} is read as {inner.label} plus the rest")
        return True


class SearchResult(NamedTuple):
    subtotals: list[Subtotal]
    partial: list[PartialIdentity]
    notes: list[str]
    examined: int          # sign checks made
    bound: int             # the most it could make: ATTEMPTS_PER_LINE per line


def search(table: Table, data: LabelData | None = None, value=None) -> SearchResult:
    """The subtotals, partial identities and notes of one statement, and the work it took."""
    data = data or default_label_data()
    value = value or _printed
    state = _Search(table, data, value)
    if len(state.lines) > MAX_LINES:
        return SearchResult([], [], [f"{table.title}: {len(state.lines)} lines, more than the subtotal search takes "
                                     f"on ({MAX_LINES:,}); every line is read as printed, none as a total"], 0, state.bound)
    while state.guided("natural"):
        pass
    while state.guided("less"):
        pass
    state.remainders()
    while state.guided("natural"):
        pass
    while state.generic():
        pass
    state.accounting()
    state.found.sort(key=lambda s: s.total.position)
    memo = {r.position for r in memo_rows(table, state.found)}
    broken = {s.total.position for s in state.found if s.failed}
    partial = sorted((p for pos, p in state.partial.items() if pos in memo or pos in broken),
                     key=lambda p: p.subtotal.total.position)
    notes = [f"{table.title}: {text}" for text in state.hosted]
    if state.attempts >= state.bound:
        notes.append(f"{table.title}: the subtotal search stopped after {state.bound:,} checks; lines left are memo lines")
    return SearchResult(state.found, partial, notes, state.attempts, state.bound)


def _candidates(table: Table) -> dict[tuple[int, int], tuple[str, float | None, int]]:
    """(row position, year index) -> (kind, the value the repair would give or None to solve for,
    its decimals) of every cell the converter may have damaged."""
    cells = [c for r in table.lines for c in r.cells if c is not None]
    whole = sum(c.decimals == 0 for c in cells) >= 0.7 * len(cells) if cells else False
    out: dict = {}
    for row in table.lines:
        if row.percent:
            continue
        filled = [c for c in row.cells if c is not None]
        for j, cell in enumerate(row.cells):
            if cell is not None:
                if whole and cell.decimals == 3 and abs(cell.value) < 1000 and "." in cell.raw \
                        and filled and any(abs(c.value) >= 1000 for c in filled if c is not cell):
                    out[(row.position, j)] = (THOUSANDS_POINT, round(cell.value * 1000), 0)
                continue
            if j in row.damage:
                text = row.damage[j][0]
                fixed = re.sub(r"(?<=\d)[.,]{2,}(?=\d)", ",", text)
                number = parse_number(fixed) if fixed != text else None
                if number is not None:
                    out[(row.position, j)] = (GARBLED, number.value, number.decimals)
                elif re.fullmatch(r"[-(]?\d[\d,]*\d\)?", text.strip()):
                    out[(row.position, j)] = (DROPPED_DIGIT, None, 0)
                continue
            if filled:
                out[(row.position, j)] = (BLANK, None, max(c.decimals for c in filled))
    return out


def _solve(hit: Subtotal, row: Row, j: int, value) -> tuple[float, float] | None:
    """The value row's cell in year j takes for the identity to hold, and its rounding slack;
    None when another cell of the identity is not known."""
    rows = [(1, hit.total)] + [(-p.sign, p.row) for p in hit.parts]
    if hit.remainder:
        return None
    target = next((sign for sign, r in rows if r is row), None)
    if target is None:
        return None
    total, slack = 0.0, 0.0
    for sign, r in rows:
        if r is row:
            continue
        cell = value(r, j)
        if cell is None:
            return None
        total += sign * cell.value
        slack += 0.5 * 10 ** -cell.decimals
    return -total / target, slack


def analyse(table: Table, data: LabelData | None = None) -> Structure:
    """A statement's arithmetic: subtotals found with the cells the converter may have damaged
    held out, then those cells repaired where an identity that holds in the other years gives
    them (and says so); a cell no identity gives stays as printed, or empty."""
    data = data or default_label_data()
    candidates = _candidates(table)

    def held_out(row: Row, j: int):
        return None if (row.position, j) in candidates else _printed(row, j)
    found, partial, notes, examined, bound = search(table, data, held_out)
    structure = Structure(found, partial, notes=notes, examined=examined, bound=bound)
    by_position = {r.position: r for r in table.rows}
    pending = dict(candidates)

    def current(row: Row, j: int):
        return None if (row.position, j) in pending else _printed(row, j)
    progress = True
    while progress:          # a repaired cell may let the next one be solved
        progress = False
        for key in sorted(pending):
            if _repair(structure, by_position[key[0]], key[1], pending[key], current):
                del pending[key]
                progress = True
    return structure


def _repair(structure: Structure, row: Row, j: int, candidate: tuple, held_out) -> bool:
    kind, proposed, decimals = candidate
    for hit in structure.subtotals:
        solved = _solve(hit, row, j, held_out)
        if solved is None:
            continue
        value, slack = solved
        printed = row.damage[j][0] if j in row.damage else (row.cells[j].raw if row.cells[j] else "")
        if kind in (THOUSANDS_POINT, GARBLED):
            if abs(value - proposed) > slack + 0.5 * 10 ** -decimals + 1e-9:
                continue
            repaired = proposed
        elif kind == DROPPED_DIGIT:
            digits = re.sub(r"\D", "", printed)
            whole_value = round(value)
            if not (str(abs(whole_value)).startswith(digits) and len(str(abs(whole_value))) == len(digits) + 1
                    and abs(value - whole_value) <= slack + 0.5):
                continue
            repaired = float(whole_value)
        else:
            repaired = round(value, decimals)
        percent = row.percent
        row.cells[j] = PrintedNumber(float(repaired), decimals, percent, printed, (kind,))
        row.damage.pop(j, None)
        structure.repairs.append(CellRepair(row, j, printed, float(repaired), decimals, kind, hit))
        return True
    return False


def infer_subtotals(table: Table, data: LabelData | None = None) -> list[Subtotal]:
    """Which lines are the sum of which others, with signs, holding in every year column
    within the rounding of the printed figures (and the section totals whose printed lines leave
    some out, `remainder`)."""
    return search(table, data)[0]


def memo_rows(table: Table, subtotals: list[Subtotal]) -> list[Row]:
    """Lines printed with figures that are neither a total nor part of one."""
    used = {s.total.position for s in subtotals} | {p.row.position for s in subtotals for p in s.parts}
    return [r for r in table.lines if r.has_figures and r.position not in used]


def partial_identities(table: Table, data: LabelData | None = None) -> list[PartialIdentity]:
    """Combinations that add up to a line in most years but not all: identities the note
    breaks."""
    return search(table, data)[1]


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
