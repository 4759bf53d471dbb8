"""The note's arithmetic: which printed lines add up to which (subtotals with their signs), the
lines that are part of no total, and the identities across lines and tables the print breaks."""
from __future__ import annotations

from typing import TYPE_CHECKING

import itertools
from dataclasses import dataclass
from typing import NamedTuple

from udfs.findings import Interval

from .labels import YEAR_KINDS, LabelData, default_label_data, normalise_label
from .numbers import PrintedNumber
from .tables import Row, Table, YearColumn

if TYPE_CHECKING:
    from .reader import Note

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
