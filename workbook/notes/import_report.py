"""The import report: what the reader found and where, what it inferred, what it repaired, and
what the note does not print (so the analyst knows what to fill)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from .labels import STATEMENTS
from .ratings import RatingBand
from .reader import Note, read_note
from .roles import map_roles
from .structure import Structure, Subtotal, identity_failures, memo_rows

# Facts the model needs, and what to do when the note does not print them.
MAX_WARNINGS_LISTED = 200      # cells the report lists as unreadable, then a count

MISSING_ADVICE = {
    "company": "type the company's name on the cover (股票名称)",
    "ticker": "type the ticker on the cover (股票代码): quotes are matched by it",
    "date": "the note's own date is not printed; its files carry the price date, or none",
    "price": "the price cell is empty: the first `refresh` fills it (P/E, market cap and the rating follow)",
    "shares": "the share count is empty: type it (millions) on the cover; per-share lines need it",
    "rating": "no published rating: the model's own rating is computed once a target price is set",
}


def missing_facts(note: Note) -> list[str]:
    """The facts the note does not print, by their names in MISSING_ADVICE."""
    out = []
    for name, value in (("company", note.company), ("ticker", note.ticker), ("date", note.date),
                        ("price", note.market.price), ("shares", note.market.shares_mn), ("rating", note.rating)):
        if value is None:
            out.append(name)
    return out


def import_report(note: Note, mapping: dict, subtotals: dict[int, list[Subtotal]] | None = None) -> str:
    """What was read and what was not: the facts and where they are printed, every table, every
    line's role and how it was found, the subtotals and memo lines, the identities that did not
    hold, every repair and what could not be read. `subtotals` (table index -> subtotals) is for
    a note read without its structures."""
    out = []
    add = out.append
    where = note.identity.where
    add(f"Import report: {note.company or '(company not printed)'} {note.ticker or '(ticker not printed)'}, "
        f"note dated {note.date or '(date not printed)'}")
    for fact in ("company", "ticker", "date"):
        if fact in where:
            add(f"  {fact}: {where[fact]}")
    rating = note.rating_read
    add(f"Published rating: {note.rating_printed or '(not printed)'}"
        + (f" — {note.rating} ({note.action or 'no action printed'}), at {rating.where}" if note.rating else "")
        + (f"; previous rating {rating.previous}" if rating.previous else ""))
    m = note.market
    figures = []
    for name in ("price", "low_52w", "high_52w", "market_cap", "float_market_cap", "shares", "float_shares", "turnover_3m"):
        fig = getattr(m, name)
        if fig:
            figures.append(f"{name} {fig.value.shown()}{' ' + fig.unit if fig.unit and fig.unit != '%' else ''}"
                           + (f" ({fig.where})" if fig.where else ""))
    add("Market data: " + (", ".join(figures) if figures else "(none printed)")
        + (f"; trading currency {m.currency}" if m.currency else "")
        + (f"; FX 1 {m.fx[0]} = {m.fx[2].shown()} {m.fx[1]}" if m.fx else "")
        + (f"; price date {m.price_date} ({m.price_date_where})" if m.price_date else ""))
    if m.shares_mn is not None or m.market_cap_mn is not None:
        add(f"  in millions: shares {_millions(m.shares_mn)}, market cap {_millions(m.market_cap_mn)}")
    missing = missing_facts(note)
    if missing:
        add("Facts not printed: " + ", ".join(missing))
        out.extend(f"  not printed: {name} — {MISSING_ADVICE[name]}" for name in missing)
    if note.scheme:
        s = note.scheme
        bands = "; ".join(f"{b.label} {_bounds(b)}" for b in s.bands)
        add(f"Rating scheme ({s.title}, {s.where or 'printed'}): {bands}; unrated {s.unrated or '-'}; "
            f"horizon {s.horizon_text or '-'}; benchmarks " + ", ".join(f"{k} {v}" for k, v in s.benchmarks.items()))
        for b in s.bands:
            if b.note:
                add(f"  note on {b.label}: {b.note}")
        if not s.complete:
            add("  the printed bands do not make a complete scheme (gaps, overlaps or fewer than three bands)")
    else:
        add("Rating scheme: (not printed)")

    add("")
    add(f"Tables found ({len(note.tables)}):")
    for i, t in enumerate(note.tables):
        years = " ".join(y.label + ("(forecast)" if y.forecast and not y.mark else "") for y in t.years)
        add(f"  [{i}] {t.title} — {t.kind}, {t.form} at line {t.line}"
            + (f", unit {t.unit}" if t.unit else "") + (f", years {years}" if years else "")
            + f", {len(t.lines)} lines" + (f", {len(t.rows) - len(t.lines)} headings" if len(t.rows) > len(t.lines) else ""))
        out.extend(f"      {n}" for n in t.notes)
    for kind in STATEMENTS:
        if not note.tables_of(kind):
            add(f"  MISSING: no {kind} statement")

    add("")
    mapped = [(k, v) for k, v in mapping.items() if v.role]
    unmapped = [(k, v) for k, v in mapping.items() if not v.role]
    add(f"Lines mapped ({len(mapped)}):")
    for (t_index, _), v in mapped:
        how = v.method + (f" as {v.variant}" if v.method in ("normalised", "family", "truncated", "other of its total") else "")
        add(f"  [{t_index}] {v.label} -> {v.role} ({how})")
    add(f"Lines left unmapped ({len(unmapped)}):" + ("" if unmapped else " none"))
    for (t_index, _), v in unmapped:
        add(f"  [{t_index}] {v.label}")

    structures = _structures(note, subtotals)
    add("")
    add("Subtotals inferred (holding in every year within the rounding of the printed figures):")
    for t_index in sorted(structures):
        table, structure = note.tables[t_index], structures[t_index]
        add(f"  [{t_index}] {table.title}:")
        for s in structure.subtotals:
            add(f"    {s.formula()}" + ("   [an identity of accounting the print breaks]" if s.failed else ""))
        memos = memo_rows(table, structure.subtotals)
        add("    memo lines (part of no total): " + (", ".join(r.label for r in memos) if memos else "none"))
        out.extend(f"    {n}" for n in structure.notes)

    add("")
    add("Identities that did not hold:")
    failures = []
    for t_index in sorted(structures):
        for p in structures[t_index].partial:
            years = ", ".join(f"{y} printed {pv:,g}, parts give {cv:,g}" for y, pv, cv in p.failed)
            failures.append(f"  [{t_index}] {p.subtotal.formula()}: holds in {', '.join(p.held) or 'no year'}; fails in {years}")
    failures.extend("  " + f.line() for f in identity_failures(note, mapping))
    out.extend(failures or ["  none"])

    add("")
    repairs = note.repairs()
    add(f"Repairs ({len(repairs)}):" + ("" if repairs else " none"))
    counts = Counter(r for _, _, r, _ in repairs)
    for repair, count in counts.most_common():
        examples = [f"{t.title} {row.label}: {raw!r}" for t, row, r, raw in repairs if r == repair][:3]
        add(f"  {repair}: {count} ({'; '.join(examples)}{'; …' if count > 3 else ''})")
    for t_index in sorted(structures):
        table = note.tables[t_index]
        for repair in structures[t_index].repairs:
            add(f"  {table.title} {repair.row.label} {table.years[repair.year].label}: printed {repair.printed!r}, "
                f"read {repair.value:,.{repair.decimals}f} — {repair.kind}; {repair.proof.formula()} holds with it")
    if note.warnings:
        add("")
        add("Could not read:")
        out.extend("  " + w for w in note.warnings[:MAX_WARNINGS_LISTED])
        if len(note.warnings) > MAX_WARNINGS_LISTED:
            add(f"  … and {len(note.warnings) - MAX_WARNINGS_LISTED:,} more")
    return "\n".join(out) + "\n"


def _millions(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _structures(note: Note, subtotals: dict[int, list[Subtotal]] | None) -> dict[int, Structure]:
    if subtotals is None:
        return dict(note.structures)
    out = {}
    for t_index, found in subtotals.items():
        known = note.structures.get(t_index)
        out[t_index] = Structure(found, known.partial if known else [], known.repairs if known else [])
    return out


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
    return note, import_report(note, map_roles(note))
