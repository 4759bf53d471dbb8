"""The import report: what the reader found and how, and what it could not read."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from .labels import STATEMENTS
from .ratings import RatingBand
from .reader import Note, read_note
from .roles import map_roles
from .structure import Subtotal, identity_failures, infer_subtotals, memo_rows, partial_identities

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
