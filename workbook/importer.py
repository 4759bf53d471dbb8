"""From a broker note's text to a working model in one step.

`read_note` (workbook/notes/) reads the note stage by stage: its tables and their repairs, the
facts and market data, the rating and scheme, the line roles and the note's own arithmetic. This
module places every printed row in a layout and writes what the rest of the project reads:

- the report file (`NAME.report.toml`): every printed figure of the summary, the three
  statements and the ratio table at its printed precision, keyed by the layout's line keys;
- the company file (`NAME.toml`): facts, market inputs, rating, the reported years' figures and
  a driver for every forecast line, calibrated so that the model displays the printed forecast;
- the layout file (`NAME.layout.toml`) when no known layout takes the note's lines with the
  note's own signs, inferred from the print;
- the model (`NAME.xlsm`) and the import report (`NAME.import.txt`): what was found, mapped,
  repaired, inferred, what the note does not print, and every printed statement cell the model
  does not show as printed with the reason (`Unshown`, which a test can verify on the note).

Nothing is written until everything is: the files are made in a folder of our own beside the
output and moved in at the end (the output folder is created then), so a note the import cannot
turn into a balanced model leaves the output folder as it was and ends in one `ImportFailed`.
"""
from __future__ import annotations

import contextlib
import math
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from udfs import formula as fx
from udfs.engine import FORECAST
from udfs.errors import DataError
from udfs.findings import round_half_up
from udfs.rating import schemes

from . import spec
from .files import check_output, place_output
from .notes import Note, map_roles, normalise_label
from .notes.import_report import MISSING_ADVICE, import_report, missing_facts
from .notes.source import NoteError

STATEMENT_KINDS = ("income", "balance", "cashflow")
TABLE_KINDS = ("summary", "income", "balance", "cashflow", "ratios")
SHARE_SCALE = {"亿股": 100.0, "百万股": 1.0, "万股": 0.01}   # to millions of shares
MAX_STEM = 80


class ImportFailed(DataError):
    """A note that cannot become a model; the message says what is missing."""


@dataclass
class Placed:
    """One printed row of the note, placed in a layout."""
    kind: str             # the note's table kind
    table_index: int
    position: int
    label: str
    occurrence: int       # 0 for the first row with this label in its table, 1 for the next…
    role: str | None      # the label role it was matched to
    cells: list           # PrintedNumber or None, one per year column of its table
    how: str              # how the role was found, or why not
    key: str | None = None


@dataclass(frozen=True)
class Unshown:
    """A printed statement cell the model does not show as printed, and why, with the evidence
    on the note's own figures: `evidence["total"]` and `evidence["parts"]` name printed rows as
    (table, label, occurrence), each part with its sign and its year lag; `evidence["years"]` the
    year and the years before it."""
    table: str
    label: str
    occurrence: int
    year: str
    printed: str
    reason: str            # "disagrees" (the note's own figures break an identity), "repaired", "not a number"
    text: str              # the line of the import report that says it
    evidence: dict = field(default_factory=dict)


@dataclass
class ImportResult:
    directory: Path
    stem: str
    layout: spec.Layout
    layout_written: Path | None
    company_path: Path
    report_path: Path
    model_path: Path | None
    text_path: Path
    problems: list = field(default_factory=list)    # what the analyst should look at
    balanced: bool = True                            # every integrity check of the model passes
    shown_as_printed: int = 0                        # printed cells the model shows as printed
    explained: int = 0                               # printed cells it does not, each with its reason
    unexplained: int = 0
    unshown: list = field(default_factory=list)      # of Unshown: the statement cells not shown as printed
    facts: dict = field(default_factory=dict)        # what the note prints (None where it does not)

    @property
    def ok(self) -> bool:
        return self.balanced and not self.unexplained


# ------------------------------------------------------------------------------------------------
# Placing the note's rows
# ------------------------------------------------------------------------------------------------
def placed_rows(note: Note) -> list[Placed]:
    """Every printed row with figures of the summary, statement and ratio tables, with its role."""
    mapping = map_roles(note)
    out = []
    for index, table in enumerate(note.tables):
        if table.kind not in TABLE_KINDS:
            continue
        seen: dict = {}
        for row in table.rows:
            if row.heading or not row.has_figures:
                continue
            label = re.sub(r"\s+", "", normalise_label(row.label))
            occurrence = seen.get(label, 0)
            seen[label] = occurrence + 1
            match = mapping.get((index, row.position))
            out.append(Placed(table.kind, index, row.position, row.label, occurrence, match.role if match else None,
                              list(row.cells), match.method if match else "unmapped"))
    return out


def mapped_lines(note: Note) -> list[Placed]:
    """The rows of the first table of each kind (the ones the model mirrors)."""
    first = {}
    for index, table in enumerate(note.tables):
        first.setdefault(table.kind, index)
    return [p for p in placed_rows(note) if first.get(p.kind) == p.table_index]


def _key_in(layout: spec.Layout, role: str | None, kind: str | None = None) -> str | None:
    """The layout's line for a role: the one its table names for it (a ratio table's own
    每股收益 row), else the line of that key, else the one that takes the role as an alias."""
    if role is None:
        return None
    if kind is not None and (role, kind) in layout.table_aliases:
        return layout.table_aliases[(role, kind)]
    keys = {line.key for line in layout.lines}
    return role if role in keys else layout.aliases.get(role)


def _layout_signs(layout: spec.Layout) -> dict[tuple[str, str], int]:
    """(total key, part key) -> sign in the layout's own subtotal formulas."""
    out = {}
    for line in layout.lines:
        if line.table in STATEMENT_KINDS and line.formula and line.identity:
            for sign, ref in fx.linear_terms(fx.parse(line.formula)) or []:
                if ref.lag == 0:
                    out[(line.key, ref.key)] = sign
    return out


def choose_layout(note: Note, lines: list[Placed]) -> spec.Layout | None:
    """The known layout that places every printed statement line of the note and adds them with
    the note's own signs, leaving the fewest of its own statement lines unprinted; None when no
    known layout does (a layout's signs are never imposed on another broker's print)."""
    best, best_score = None, None
    statement_rows = [m for m in lines if m.kind in STATEMENT_KINDS]
    for path in sorted(spec.LAYOUT_DIR.glob("*.toml")):
        layout = spec.load_layout(path.stem)
        tables = {line.key: line.table for line in layout.lines}
        placed = [_key_in(layout, m.role) for m in statement_rows]
        if any(k is None or tables[k] != m.kind for k, m in zip(placed, statement_rows)) or len(set(placed)) != len(placed):
            continue
        signs = _layout_signs(layout)
        keys = {(m.table_index, m.position): k for k, m in zip(placed, statement_rows)}
        agree = True
        for t_index, structure in note.structures.items():
            for subtotal in structure.subtotals:
                total = keys.get((t_index, subtotal.total.position))
                for part in subtotal.parts:
                    key = keys.get((t_index, part.row.position))
                    printed = any(c is not None and c.value for c in part.row.cells)   # a line of zeros has no sign
                    if printed and (total, key) in signs and signs[(total, key)] != part.sign:
                        agree = False
        if not agree:
            continue
        unprinted = len(set(layout.reported_keys) - set(placed))
        if best_score is None or unprinted < best_score:
            best, best_score = layout, unprinted
    return best


# ------------------------------------------------------------------------------------------------
# The report file: every printed figure
# ------------------------------------------------------------------------------------------------
def statement_years(note: Note) -> list:
    """The statements' year columns: the income statement's, which the others must print too."""
    income = note.table("income")
    labels = [y.label for y in income.years]
    for kind in ("balance", "cashflow"):
        other = [y.label for y in note.table(kind).years]
        if other != labels:
            raise ImportFailed(f"the {kind} table's years {other} differ from the income statement's {labels}")
    return income.years


def report_data(note: Note, lines: list[Placed], layout: spec.Layout, source_file: str) -> dict:
    years = statement_years(note)
    labels = [y.label for y in years]
    tables: dict = {kind: [] for kind in TABLE_KINDS}
    for m in lines:
        if m.key is None:
            continue
        table = note.tables[m.table_index]
        by_label = {y.label: c for y, c in zip(table.years, m.cells)}
        cells = [by_label.get(label) for label in labels]
        printed = [c for c in cells if c is not None]
        if not printed:
            continue
        decimals = max(c.decimals for c in printed)
        tables[m.kind].append({
            "key": m.key, "label": m.label, "decimals": decimals, "percent": any(c.percent for c in printed),
            "values": [c.value if c is not None else math.nan for c in cells],
        })
    out = {
        "source": {"date": note.date or note.market.price_date or "", "file": source_file, "years": labels,
                   "company": note.company or "", "ticker": note.ticker or ""},
        "market": _market_print(note),
    }
    out.update({kind: rows for kind, rows in tables.items() if rows})
    return out


def _market_print(note: Note) -> dict:
    m = note.market
    market = {"price": m.price.value.value if m.price else None}
    if m.fx:
        market["fx_rate"] = m.fx[2].value
        market["fx_pair"] = [m.fx[0], m.fx[1]]
    else:
        market["fx_rate"] = 1.0
    if m.shares_mn is not None:
        market["shares_100mn"] = round(m.shares_mn / 100, 8)
    if m.market_cap_mn is not None:
        market["market_cap_100mn"] = round(m.market_cap_mn / 100, 8)
    for name in ("low_52w", "high_52w"):
        figure = getattr(m, name)
        if figure is not None:
            market[name] = figure.value.value
    if m.turnover_3m is not None:
        market["turnover_3m_pct"] = m.turnover_3m.value.value
    market["price_date"] = m.price_date or note.date or ""
    market["published_rating"] = note.rating or ""
    market["published_action"] = note.action or ""
    return {k: v for k, v in market.items() if v is not None}


# ------------------------------------------------------------------------------------------------
# The company file: facts, reported years and drivers to calibrate
# ------------------------------------------------------------------------------------------------
def matching_scheme(note: Note) -> tuple[str | None, str]:
    """(the rating scheme of udfs/rating_schemes.toml the model uses, and why): the one whose
    bands the note prints (same labels and thresholds), else the library's scheme for the note's
    broker when the printed one is missing or garbled."""
    known = schemes()
    printed = [(b.label, b.lower, b.upper) for b in note.scheme.bands] if note.scheme else []
    broker = broker_of(note)

    def bands(scheme):
        return [(b.label, None if b.min_pct is None else float(b.min_pct), None if b.max_pct is None else float(b.max_pct))
                for b in scheme.bands]
    if printed and broker and bands(known[broker]) == printed:
        return broker, f"the note's printed scheme, as the library has it for its broker ({broker!r})"
    for key, scheme in known.items():
        if printed and bands(scheme) == printed:
            return key, f"the note's printed scheme, as the library's {key!r}"
    if broker:
        if note.scheme and note.scheme.complete:
            return broker, (f"the library's scheme for the note's broker ({broker!r}): the bands the note prints differ "
                            "from it; add them to udfs/rating_schemes.toml to use them")
        return broker, f"the library's scheme for the note's broker ({broker!r}): the note's 评级说明 is missing or garbled"
    return None, "the note's scheme matches none of udfs/rating_schemes.toml and its broker is not in the library"


def broker_of(note: Note) -> str | None:
    """The library scheme (udfs/rating_schemes.toml) whose broker names the note prints most."""
    text = note.text
    counts = {}
    for key, scheme in schemes().items():
        names = scheme.brokers
        hits = sum(text.count(n) for n in names)
        if hits:
            counts[key] = hits
    return max(counts, key=counts.get) if counts else None


def share_count(note: Note, report: dict, layout: spec.Layout) -> tuple[float | None, str]:
    """Shares in millions: the printed count, or the count the market cap implies (market cap ÷
    price) when that is within the printed count's rounding and the per-share lines agree with
    more of the printed figures, or market cap ÷ price when no count is printed, or the count the
    printed EPS implies when neither is."""
    market = report["market"]
    printed = market.get("shares_100mn")
    cap, price = market.get("market_cap_100mn"), market.get("price")
    if printed is None:
        if cap and price:
            return round(cap / price * 100, 2), "the market cap divided by the price (the note prints no share count)"
        implied = _implied_by_eps(report, layout)
        if implied:
            return implied, "the count the printed EPS implies (the note prints no share count)"
        return None, "not printed: per-share lines wait for a share count"
    printed_m = round(printed * 100, 6)
    candidates = [(printed_m, "the printed share count")]
    if cap and price:
        implied = cap / price * 100
        decimals = _decimals(printed)
        if abs(implied / 100 - printed) <= 0.5 * 10 ** -decimals:
            candidates.append((round(implied, 2), "the market cap divided by the price (the printed count is rounded)"))
    # EPS on another count than the market data's (317 against 412.41 million), or on the count
    # the rounded one stands for: for an inferred layout, whose EPS is profit over this count (a
    # known layout carries its own per-share definitions, diluted counts and all)
    eps_implied = _implied_by_eps(report, layout) if layout.name == "inferred" else None
    if eps_implied and eps_implied != printed_m:
        candidates.append((eps_implied, f"the count the printed EPS implies ({eps_implied:,.2f}m; the market data print "
                                        f"{printed_m:,.2f}m)"))
    if len(candidates) == 1:
        return candidates[0]
    misses = [_per_share_misses(report, layout, shares) for shares, _ in candidates]
    best = min(range(len(candidates)), key=lambda i: (misses[i], i))
    return candidates[best]


def _implied_by_eps(report: dict, layout: spec.Layout) -> float | None:
    """The share count (millions) the printed forecast EPS and attributable profit imply: the
    middle of the range every forecast year allows, when they agree."""
    years = report["source"]["years"]
    rows = {row["key"]: row for kind in ("income", "summary", "cashflow") for row in report.get(kind, [])}
    eps, profit = rows.get(layout.role("eps")), rows.get(layout.role("attributable_profit"))
    if not eps or not profit:
        return None
    lo, hi = 0.0, math.inf
    for i, year in enumerate(years):
        if not year.upper().endswith("E"):
            continue
        e, p = eps["values"][i], profit["values"][i]
        if math.isnan(e) or math.isnan(p) or e == 0 or p == 0 or (e > 0) != (p > 0):
            continue
        he, hp = 0.5 * 10 ** -eps["decimals"], 0.5 * 10 ** -profit["decimals"]
        a, b = (abs(p) - hp) / (abs(e) + he), (abs(p) + hp) / max(abs(e) - he, 1e-12)
        lo, hi = max(lo, a), min(hi, b)
    if not math.isfinite(hi) or lo > hi or lo <= 0:
        return None
    return round((lo + hi) / 2, 2)


def _decimals(value: float) -> int:
    text = repr(float(value))
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0


def _per_share_misses(report: dict, layout: spec.Layout, shares: float) -> int:
    """How many printed per-share figures (lines defined as per_share(x, shares)) a share count misses."""
    years = report["source"]["years"]
    forecast = {y for y in years if y.upper().endswith("E")}
    values = {row["key"]: row for kind in TABLE_KINDS for row in report.get(kind, [])}
    misses = 0
    for line in layout.lines + layout.report_identities:  # the note's own per-share definitions count too
        tree = fx.parse(line.formula) if line.formula else None
        if not (isinstance(tree, fx.Call) and tree.function == "per_share"):
            continue
        numerator = tree.args[0]
        if line.key not in values or not isinstance(numerator, fx.Ref) or numerator.key not in values:
            continue
        row, base = values[line.key], values[numerator.key]
        for i, year in enumerate(years):
            if year not in forecast or (line.identity_years == FORECAST and year not in forecast):
                continue
            shown, amount = row["values"][i], base["values"][i]
            if not (math.isnan(shown) or math.isnan(amount)) and round_half_up(amount / shares, row["decimals"]) != shown:
                misses += 1
    return misses


def company_data(note: Note, report: dict, layout: spec.Layout, years: list) -> tuple[dict, list[str], str]:
    problems = []
    market = report["market"]
    labels = [y.label for y in years]
    actual = [y.label for y in years if not y.forecast]
    forecast = [y.label for y in years if y.forecast]
    if not actual or not forecast:
        raise ImportFailed(f"the statements need reported and forecast years; the note has {labels}")
    shares, shares_note = share_count(note, report, layout)
    scheme, scheme_note = matching_scheme(note)
    if scheme is None:
        problems.append(f"rating scheme: {scheme_note}; the model uses the default scheme until one is added")
    fx_pair = market.get("fx_pair") or [note.market.currency or "CNY", note.market.currency or "CNY"]
    statement_unit = note.table("income").unit or ""
    company = {
        "format_version": 1,
        "company": {
            "name_zh": note.company or "", "ticker": note.ticker or "", "market": note.exchange_market or "",
            "reporting_currency": fx_pair[1] or "", "quote_currency": fx_pair[0] or "", "layout": layout.name,
            "unit": statement_unit,
            "source": f"{note.company or ''}（{note.ticker or ''}）{report['source']['date']} 研究报告",
        },
        "market": {"price": market.get("price"), "price_date": market.get("price_date") or None,
                   "fx_rate": market.get("fx_rate", 1.0), "shares": shares},
        "rating": {"scheme": scheme or "everbright", "boundary": "outer"},
        "years": {"actual": actual, "forecast": forecast},
    }
    company["market"] = {k: v for k, v in company["market"].items() if v is not None}
    for name, key in (("market_cap_100mn", "market_cap_quote"), ("low_52w", "low_52w"), ("high_52w", "high_52w"),
                      ("turnover_3m_pct", "turnover_3m_pct")):
        if name in market:
            company["market"][key] = market[name]
    if note.rating:
        company["rating"]["published"] = note.rating
        if note.action:
            company["rating"]["published_action"] = note.action
        if note.action == "维持":
            company["rating"]["previous"] = note.rating
    printed = {(row["key"], labels[i]): v for kind in STATEMENT_KINDS for row in report.get(kind, [])
               for i, v in enumerate(row["values"])}
    places = {(row["key"], labels[i]): int(row.get("decimals", 0)) for kind in STATEMENT_KINDS for row in report.get(kind, [])
              for i, v in enumerate(row["values"])}
    for kind in ("summary", "ratios"):        # a reported figure printed finer in another table: the finer
        for row in report.get(kind, []):
            if row.get("percent"):
                continue
            for i, v in enumerate(row["values"]):
                cell = (row["key"], labels[i])
                if cell in printed and not math.isnan(v) and not math.isnan(printed[cell]) \
                        and int(row.get("decimals", 0)) > places[cell] and abs(v - printed[cell]) <= 0.5 * 10 ** -places[cell] + 1e-12:
                    printed[cell], places[cell] = v, int(row.get("decimals", 0))
    company["actual"] = {}
    order = [l.key for l in layout.lines]
    for year in actual:
        figures = {}
        for key in sorted(layout.reported_keys, key=order.index):
            value = printed.get((key, year))
            if value is None or math.isnan(value):
                problems.append(f"{year}: line {key} is not printed; entered as 0")
                value = 0.0
            figures[key] = value
        company["actual"][year] = figures
    if actual:
        note_on = _balanced_opening(company["actual"][actual[-1]], layout, {k: v for (k, y), v in places.items() if y == actual[-1]})
        if note_on:
            problems.append(f"{actual[-1]}: {note_on}")
    drivers = {}
    for line in layout.lines:
        if line.driven:
            method, base = layout.driver_defaults.get(line.key, ("fixed", None))
            entry = {"method": method}
            if base:
                entry["base"] = base
            entry["values"] = {y: 0.0 for y in forecast}
            drivers[line.key] = entry
        elif line.table == spec.DRIVERS:  # an analyst input starts from the layout's default (a cost of debt), else 0
            drivers[line.key] = {"method": "input", "values": {y: layout.input_defaults.get(line.key, 0.0) for y in forecast}}
    company["drivers"] = drivers
    return company, problems, f"shares: {shares_note}; rating scheme: {scheme_note}"


# ------------------------------------------------------------------------------------------------
# Writing TOML (a small writer for the shapes these files have)
# ------------------------------------------------------------------------------------------------
def _toml_string(value: str) -> str:
    """A TOML basic string: backslash, quote and every control character escaped."""
    out = []
    for c in value:
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").isalnum() and key.isascii() else _toml_value(key)


def to_toml(data: dict, header: str = "") -> str:
    out = [header.rstrip("\n")] if header else []
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, dict) and not _is_table_list(v)]
    out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars]
    for key, value in data.items():
        if isinstance(value, dict):
            nested = any(isinstance(v, dict) and not _inline(k2, v) for k2, v in value.items())
            if not nested:
                out += ["", f"[{_toml_key(key)}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()]
                continue
            plain = [(k, v) for k, v in value.items() if not isinstance(v, dict) or _inline(k, v)]
            if plain:   # a table's own values first, then its sub-tables (the valuation and its sources)
                out += ["", f"[{_toml_key(key)}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in plain]
            for sub, entry in value.items():
                if isinstance(entry, dict) and not _inline(sub, entry):
                    out += ["", f"[{_toml_key(key)}.{_toml_key(sub)}]"] + [f"{_toml_key(k)} = {_toml_value(v)}"
                                                                         for k, v in entry.items()]
        elif _is_table_list(value):
            for entry in value:
                out += ["", f"[[{_toml_key(key)}]]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in entry.items()]
    return "\n".join(out) + "\n"


def _inline(key: str, value: dict) -> bool:
    return key == "values" or not any(isinstance(v, dict) for v in value.values()) and len(value) <= 2 and key in ("relative_return_pct",)


def _is_table_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _comment(text: str) -> str:
    """Text safe inside a TOML comment: one line, no control characters."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)


# ------------------------------------------------------------------------------------------------
# Writing nothing until everything is written
# ------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def staging(out_dir: Path):
    """A folder of our own beside `out_dir` (in its nearest existing ancestor, so the final moves
    are renames on one file system); removed whatever happens. Nothing touches `out_dir` until
    `publish` moves the finished files in."""
    anchor = out_dir
    while not anchor.exists():
        if anchor.parent == anchor:
            raise ImportFailed(f"{out_dir}: no folder to write under")
        anchor = anchor.parent
    if not anchor.is_dir():
        raise ImportFailed(f"{anchor}: not a folder")
    try:
        stage = Path(tempfile.mkdtemp(prefix=".import-", dir=anchor))
    except OSError as exc:
        raise ImportFailed(f"{anchor}: cannot write there ({exc.strerror or exc})") from None
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, out_dir: Path, names: list[str], force: bool = False, note_path: Path | None = None) -> None:
    """Move the finished files into `out_dir`, creating it (and its parents) if needed: all of
    them refused or none (the output checks again, then the moves; an existing file replaced only
    with `force`, and then kept as a backup)."""
    blocked = [name for name in names if (out_dir / name).is_dir()]
    if blocked:
        raise ImportFailed(f"{out_dir / blocked[0]}: is a folder where the import writes a file; nothing written")
    for name in names:
        check_output(out_dir / name, force, sources=(note_path,) if note_path else ())
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            place_output(stage / name, out_dir / name, force)
    except OSError as exc:
        raise ImportFailed(f"{out_dir}: cannot write the model there ({exc.strerror or exc})") from None


def _safe_stem(stem: str) -> str:
    """An output file stem: a plain file name, never a path (no separator, no `..`, no control
    character)."""
    if not stem or len(stem) > MAX_STEM or stem in (".", "..") or re.search(r"[\\/\x00-\x1f\x7f]", stem) \
            or stem.startswith("."):
        raise ImportFailed(f"--name {str(stem)[:60]!r}: give a file name stem such as 600519sh_20260427 (letters, digits, "
                           "'_', '-', '.'), not a path; the files are written in the -o folder")
    return stem


# ------------------------------------------------------------------------------------------------
# The whole import
# ------------------------------------------------------------------------------------------------
def import_note(note_path: str | Path, out_dir: str | Path, stem: str | None = None, build: bool = True,
                force: bool = False) -> ImportResult:
    """Import `note_path` into `out_dir` (see the module doc). Every file is written into a
    staging folder and moved into place only once the import has finished: a refused note leaves
    nothing behind. Each file is a command output (workbook.files): all of them are checked once
    the note says their names, before the work, and again before the moves, so an existing file
    (without `force`; with it, the previous one is kept as a backup) or one open in another
    program refuses the whole import."""
    from .notes import read_note

    note_path, out_dir = Path(note_path), Path(out_dir)
    if stem is not None:
        stem = _safe_stem(stem)
    try:
        note = read_note(note_path)
    except NoteError as exc:
        raise ImportFailed(str(exc)) from None
    for kind in STATEMENT_KINDS:
        if not note.tables_of(kind):
            raise ImportFailed(f"{note_path.name}: no {kind} statement found; the import needs all three statements")
    if out_dir.exists() and not out_dir.is_dir():
        raise ImportFailed(f"{out_dir}: not a folder")
    try:
        return _import(note, note_path, out_dir, stem, build, force=force)
    except ImportFailed:
        raise
    except (DataError, ArithmeticError, ValueError, LookupError) as exc:   # a note no model can be built from: one line
        raise ImportFailed(f"{note_path.name}: the model built from the note is not usable ({exc})") from None


def _import(note: Note, note_path: Path, out_dir: Path, stem: str | None, build: bool,
            force: bool = False) -> ImportResult:
    """One import: the layout (known, or inferred with no plug), the report and company files,
    the calibration, the model and what it does not show as printed, and why."""
    from .build import build as build_template
    from .calibrate import calibrate
    from .company import CompanyDataError, load
    from .currencies import fx_range_problem
    from .examples import example_valuation
    from .model import build_model
    from .report import findings, load_report, reproduction

    years = statement_years(note)
    lines = mapped_lines(note)
    layout = choose_layout(note, lines)
    stem = stem or _stem(note, note_path)
    names = [f"{stem}.report.toml", f"{stem}.toml", f"{stem}.import.txt"]
    planned = names + ([f"{stem}.xlsm"] if build else []) + ([f"{stem}.layout.toml"] if layout is None else [])
    for name in planned:  # refused now, before the work, rather than after it
        check_output(out_dir / name, force, sources=(note_path,))
    derived: list[str] = []
    by_fit: list[str] = []
    with staging(out_dir) as stage:
        layout_written = None
        if layout is None:
            from .notes.inference import LayoutInferenceError, infer_layout
            try:
                inferred = infer_layout(note, lines)
            except LayoutInferenceError as exc:
                raise ImportFailed(str(exc)) from None
            derived = inferred.derived
            by_fit = inferred.by_fit
            base = inferred.base
            for m in lines:
                m.key = inferred.keys.get((m.table_index, m.position))
            layout_path = stage / f"{stem}.layout.toml"
            layout_path.write_text(to_toml(inferred.data, "# Statement layout inferred by `python -m addin import` from "
                                                          f"{_comment(note_path.name)}; edit freely.\n"), encoding="utf-8")
            try:
                layout = spec.load_layout(layout_path)
            except spec.LayoutError as exc:
                raise ImportFailed(f"the layout inferred from the note is not usable: {exc}") from None
            layout_written = out_dir / layout_path.name
            names.append(layout_path.name)
        else:
            base = None
            for m in lines:
                m.key = _key_in(layout, m.role, m.kind)
        report = report_data(note, lines, layout, note_path.name)
        company, problems, facts_note = company_data(note, report, layout, years)
        fx_rate = (company.get("market") or {}).get("fx_rate")
        fx_problem = fx_range_problem(float(fx_rate), company["company"]["quote_currency"],
                                      company["company"]["reporting_currency"]) if isinstance(fx_rate, (int, float)) else None
        if fx_problem:   # the judgement every door gives an FX rate, before anything is written
            raise ImportFailed(f"{note_path.name}: the note's FX: {fx_problem}")
        if base:
            company["years"] = {"base": base[0], **company["years"]}
            company = {k: v for k, v in company.items() if k not in ("actual", "drivers")} | \
                {"base": {base[0]: base[1]}, "actual": company["actual"], "drivers": company["drivers"]}
        unbalanced = _printed_balance_failures(report, layout, [y.label for y in years if not y.forecast])
        if layout_written is not None:
            company["company"]["layout"] = layout_written.name
        report_path = stage / f"{stem}.report.toml"
        company_path = stage / f"{stem}.toml"
        report_path.write_text(to_toml(report, f"# Every figure {_comment(note_path.name)} prints, at its printed precision, "
                                               "as read by `python -m addin import`.\n# nan: a cell the note leaves empty.\n"),
                               encoding="utf-8")
        header = (f"# {_comment(note.company or '')}（{_comment(note.ticker or '')}）, from {_comment(note_path.name)} by "
                  f"`python -m addin import`.\n# {_comment(facts_note)}. Drivers: calibrated so that the model displays the "
                  "printed forecast.\n")
        company_path.write_text(to_toml(company, header), encoding="utf-8")
        implied_reported: dict = {}
        try:
            drivers = calibrate(load_report(report_path).data, company_path, reported=implied_reported)
        except CompanyDataError as exc:
            raise ImportFailed(f"the company file written from the note is not usable: {exc}") from None
        company["drivers"] = drivers
        for (key, year), value in implied_reported.items():  # a figure the forecast implies (last year's dividend)
            company["actual"][year][key] = value
        company_path.write_text(to_toml(company, header), encoding="utf-8")
        if isinstance((company.get("market") or {}).get("price"), (int, float)):   # no price printed: nothing to value yet
            example = example_valuation(load(company_path))   # the valuation a first open shows, labelled as an example
            company["rating"].update(example["rating"])
            company["valuation"] = example["valuation"]
            company_path.write_text(to_toml(company, header), encoding="utf-8")
        loaded = load(company_path)
        model = build_model(loaded)
        failed = [c for c in model.checks if not c["passed"]] + unbalanced
        problems += [f"the printed balance sheet does not balance in {u['year']}: {u['actual']:,.0f} against {u['expected']:,.0f}"
                     for u in unbalanced]
        if failed and not unbalanced:
            first = failed[0]
            problems.append(f"the model does not balance: {first['label_zh']} {first['year']} fails")
        found = findings(loaded, load_report(report_path))
        missed = reproduction(model, load_report(report_path), found)
        unshown = _unshown(note, lines, layout, missed, found, report, base)
        if build:
            build_template(stage / f"{stem}.xlsm", loaded)
            names.append(f"{stem}.xlsm")
        note_text = import_report(note, map_roles(note))
        text = _import_text(note, note_path, note_text, layout, layout_written, lines, found, missed, problems, model,
                            unshown, derived, by_fit)
        (stage / f"{stem}.import.txt").write_text(text, encoding="utf-8")
        if unbalanced:
            raise ImportFailed(problems[-len(unbalanced)] + "; the note is refused and nothing is written")
        publish(stage, out_dir, names, force, note_path)
    total = len(load_report(out_dir / f"{stem}.report.toml").printed())
    unexplained = sum(1 for m in missed if not m.explanation)
    problems += [f"{m.table} {m.key} {m.year}: printed {m.printed:g}, model {m.shown}, and nothing explains it"
                 for m in missed if not m.explanation]
    return ImportResult(out_dir, stem, layout, layout_written, out_dir / f"{stem}.toml", out_dir / f"{stem}.report.toml",
                        out_dir / f"{stem}.xlsm" if build else None, out_dir / f"{stem}.import.txt", problems,
                        not failed, total - len(missed), len(missed) - unexplained, unexplained, unshown, facts_of(note))


def facts_of(note: Note) -> dict:
    """The facts the note prints, as the import read them (None where it prints none)."""
    m = note.market
    scheme = note.scheme
    return {
        "company": note.company, "ticker": note.ticker, "date": note.date,
        "price": m.price.value.value if m.price else None, "shares_mn": m.shares_mn, "market_cap_mn": m.market_cap_mn,
        "rating": note.rating, "action": note.action,
        "bands": [(b.label, b.lower, b.upper) for b in scheme.bands] if scheme else [],
        "benchmarks": dict(scheme.benchmarks) if scheme else {},
        "price_date": m.price_date, "missing": missing_facts(note),
    }


def _printed_balance_failures(report: dict, layout: spec.Layout, actual_years: list[str]) -> list[dict]:
    """The layout's balance check on the reported years' printed figures, beyond their rounding."""
    from udfs.functions import GUARDED
    check = next((c for c in layout.checks if c.key == "balance"), None)
    if check is None:
        return []
    years = report["source"]["years"]
    values = {(row["key"], years[i]): v for kind in STATEMENT_KINDS for row in report.get(kind, [])
              for i, v in enumerate(row["values"])}
    failures = []
    for year in actual_years:
        def lookup(key, lag, year=year):
            return values.get((key, years[years.index(year) - lag])) if years.index(year) - lag >= 0 else None
        actual = fx.evaluate(fx.parse(check.actual), lookup, GUARDED)
        expected = fx.evaluate(fx.parse(check.expected), lookup, GUARDED)
        parts = len(fx.refs(fx.parse(check.actual)) | fx.refs(fx.parse(check.expected)))
        if isinstance(actual, float) and isinstance(expected, float) and abs(actual - expected) > 0.5 * (parts + 1):
            failures.append({"check": "balance", "label_zh": check.label_zh, "year": year, "actual": actual,
                             "expected": expected, "passed": False})
    return failures


def _balance_leaves(layout: spec.Layout, expression: str, sign: int = 1) -> dict[str, int]:
    """{line: +1 or -1}: the balance-sheet lines `expression` adds up, its subtotals (sums of
    other lines) expanded; a line defined otherwise (a roll-forward) is a leaf."""
    by_key = {line.key: line for line in layout.lines}
    out: dict = {}
    for term_sign, ref in fx.linear_terms(fx.parse(expression)) or []:
        line = by_key.get(ref.key)
        inner = fx.linear_terms(fx.parse(line.formula)) if line is not None and line.formula and line.table == spec.BALANCE else None
        if ref.lag == 0 and inner and all(r.lag == 0 for _, r in inner):
            for key, s in _balance_leaves(layout, line.formula, sign * term_sign).items():
                out[key] = out.get(key, 0) + s
        elif ref.lag == 0:
            out[ref.key] = out.get(ref.key, 0) + sign * term_sign
    return out


def _balanced_opening(figures: dict, layout: spec.Layout, places: dict) -> str:
    """The last reported balance sheet as the forecast's opening position: where its printed
    lines miss the balance only by their rounding (assets 4,818 against lines of claims that
    add up to 4,817, every figure rounded), each line takes its share of the gap within its own
    rounding, so it still displays as printed and the forecast starts balanced; no line moves
    further than its last printed digit allows, and a gap beyond rounding is left for the
    balance check to fail. Returns what was done, for the import report ('' when nothing)."""
    check = next((c for c in layout.checks if c.key == "balance"), None)
    if check is None:
        return ""
    assets = _balance_leaves(layout, check.actual)
    claims = _balance_leaves(layout, check.expected)
    signed = {k: s for k, s in assets.items() if s}
    for k, s in claims.items():
        signed[k] = signed.get(k, 0) - s
    signed = {k: s for k, s in signed.items() if s}
    # A line the note does not print (the rest of a section) holds what its definition gives.
    from udfs.functions import GUARDED
    by_key = {line.key: line for line in layout.lines}
    held = {}
    for key in signed:
        if key in figures:
            held[key] = figures[key]
        elif by_key.get(key) is not None and by_key[key].implied:
            value = fx.evaluate(fx.parse(by_key[key].implied), lambda k, lag: figures.get(k) if lag == 0 else None, GUARDED)
            if isinstance(value, float) and math.isfinite(value):
                held[key] = value
    if set(held) != set(signed):
        return ""
    gap = sum(s * held[k] for k, s in signed.items())
    # a printed 0 is exactly nothing; a line a section's unprinted rest is computed from moves that rest with it
    absorbed = {r.key for key in signed if key not in figures for r in fx.refs(fx.parse(by_key[key].implied))}
    signed = {k: s for k, s in signed.items() if k in places and figures.get(k) and k not in absorbed}
    half = {k: 0.5 * 10 ** -places[k] * 0.98 for k in signed}      # strictly inside each figure's rounding
    room = sum(half.values())
    if abs(gap) < 1e-9 or abs(gap) >= room:
        return ""
    for key, s in signed.items():
        figures[key] -= s * gap * half[key] / room
    return (f"the printed balance sheet's lines miss its balance by {gap:+,.2f}, within their rounding; each line "
            "takes its share within its last printed digit, so the forecast opens balanced")


def _stem(note: Note, note_path: Path) -> str:
    """The output files' stem: the ticker and date the note prints, else the note file's own name
    (made a plain stem), so that two notes without a ticker imported into one folder do not collide."""
    ticker = re.sub(r"[^0-9A-Za-z]", "", note.ticker or "").lower()
    if not ticker:
        ticker = re.sub(r"[^0-9A-Za-z_\-\u4e00-\u9fff]+", "_", note_path.stem).strip("_-.")[:MAX_STEM - 10] or "model"
    return f"{ticker}_{(note.date or note.market.price_date or '').replace('-', '')}".rstrip("_")


# ------------------------------------------------------------------------------------------------
# Printed cells not shown as printed, with evidence a test can check on the note
# ------------------------------------------------------------------------------------------------
def _unshown(note: Note, lines: list[Placed], layout: spec.Layout, missed: list, found: list, report: dict,
             base: tuple | None = None) -> list[Unshown]:
    """Every printed statement cell the model does not show as printed: the cells a repair read
    otherwise than printed, and the reproduction's misses with the identity that explains them."""
    years = report["source"]["years"]
    ref_of = {m.key: (m.kind, m.label, m.occurrence) for m in lines if m.key and m.kind in STATEMENT_KINDS}
    by_key = {line.key: line for line in layout.lines}
    for identity in layout.report_identities:
        by_key.setdefault(f"{identity.key}~{identity.formula}", identity)
    out: dict = {}
    # repairs: the printed text is not the figure the model shows
    for t_index, structure in note.structures.items():
        table = note.tables[t_index]
        for repair in structure.repairs:
            placed = next((m for m in lines if m.table_index == t_index and m.position == repair.row.position), None)
            if placed is None:
                continue
            evidence = _evidence_of_subtotal(repair.proof, t_index, lines, table.years[repair.year].label, years)
            if evidence is None:
                continue
            evidence.update({"value": repair.value, "decimals": repair.decimals})
            # other cells of the proof that were repaired too (each with its own entry): their figures
            evidence["repaired"] = [[*_ref(lines, t_index, other.row.position), table.years[other.year].label, other.value,
                                     other.decimals] for other in structure.repairs
                                    if other is not repair and other.year == repair.year
                                    and other.row.position in {p.row.position for p in repair.proof.parts}
                                    | {repair.proof.total.position}]
            year = table.years[repair.year].label
            text = (f"{table.kind} {placed.label} {year}: printed {repair.printed!r}, shown {repair.value:,.{repair.decimals}f} — "
                    f"{repair.kind} ({repair.proof.formula()} holds with it)")
            out[(table.kind, placed.label, placed.occurrence, year)] = Unshown(
                table.kind, placed.label, placed.occurrence, year, repair.printed, "repaired", text, evidence)
    findings_at = {}
    for f in found:
        findings_at.setdefault((f.key, f.year), []).append(f)
    repaired_cells = [[*_ref(lines, t, r.row.position), note.tables[t].years[r.year].label, r.value, r.decimals]
                      for t, structure in note.structures.items() for r in structure.repairs
                      if any(m.table_index == t and m.position == r.row.position for m in lines)]
    printed_shares = note.market.shares
    shares = None
    if printed_shares is not None and note.market.shares_mn is not None:
        scale = note.market.shares_mn / printed_shares.value.value
        shares = {"printed": printed_shares.value.raw.strip(), "unit": printed_shares.unit, "millions": note.market.shares_mn,
                  "half_unit": 0.5 * 10 ** -printed_shares.value.decimals * scale}
    for miss in missed:
        ref = ref_of.get(miss.key)
        if ref is None or miss.table not in STATEMENT_KINDS or (ref[0], ref[1], ref[2], miss.year) in out:
            continue
        evidence, reason = None, "disagrees"
        if miss.path is not None:
            # a cell that inherits the note's disagreements through its own computation: the path as
            # printed rows and each inherited disagreement's identity, for the test to recompute
            evidence = _evidence_of_path(miss, findings_at, by_key, ref_of, years, shares, layout)
            if evidence is None:
                continue
            evidence["repaired"] = repaired_cells
            text = f"{ref[0]} {ref[1]} {miss.year}: printed {miss.printed:g}, model {miss.shown} — {miss.explanation}"
            out[(ref[0], ref[1], ref[2], miss.year)] = Unshown(ref[0], ref[1], ref[2], miss.year, f"{miss.printed:g}",
                                                                "disagrees" if miss.path["disagrees"] else "rounding",
                                                                text, evidence)
            continue
        for finding in _findings_named(miss, findings_at):
            evidence = _evidence_of_line(finding, by_key, ref_of, years, shares)
            if evidence is not None:
                reason = "disagrees" if not finding.within_rounding else "rounding"
                break
        cited = ""
        if evidence is None and miss.explanation.startswith("within rounding") and miss.key in by_key:
            # an identity through this line that the note's figures meet only within their
            # rounding: its own definition, else one of a line that reads it (the change in cash)
            own = by_key[miss.key]
            candidates = [(own.formula_in(FORECAST) if own.formula else None, miss.key)]
            for f in found:
                if f.year == miss.year and f.key != miss.key and miss.key in _reads(by_key.get(f.key)):
                    for line in [by_key.get(f.key)] + [l for k, l in by_key.items() if k.startswith(f"{f.key}~")]:
                        if line is not None and line.formula and line.formula in f.explanation:
                            candidates.append((line.formula, f.key))
            for formula, key in candidates:
                evidence = _evidence_of_formula(formula, key, miss.year, ref_of, years)
                if evidence is not None and _gap(evidence, report, ref_of, lines) != 0:
                    reason, cited = "rounding", f"; {key} = {formula} holds there only within the rounding of the print"
                    break
                evidence = None
            if evidence is None and own.formula:
                # a ratio (a growth rate, a margin) of figures that display as printed: the range
                # their rounding allows holds both the print and the model
                evidence = _ratio_evidence(fx.parse(own.formula_in(FORECAST)), ref_of, _At(miss.year), years, base)
                if evidence is not None:
                    reason = "rounding"
        if evidence is None:
            continue
        evidence["repaired"] = repaired_cells
        text = f"{ref[0]} {ref[1]} {miss.year}: printed {miss.printed:g}, model {miss.shown} — {miss.explanation}{cited}"
        out[(ref[0], ref[1], ref[2], miss.year)] = Unshown(ref[0], ref[1], ref[2], miss.year, f"{miss.printed:g}",
                                                            reason, text, evidence)
    return list(out.values())


def _evidence_of_path(miss, findings_at: dict, by_key: dict, ref_of: dict, years: list[str], shares: dict | None,
                      layout: spec.Layout) -> dict | None:
    """A cell's computation path (`Mismatch.path`) as printed rows: `parts` its terms with their
    coefficients and year lags (a line the note never prints, at its default of 0, drops out), `via`
    the identity each inherited disagreement checked, and for a per-share cell the share count."""
    terms, index = miss.path["terms"], years.index(miss.year)
    parts = []
    for (key, lag), c in sorted(terms.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if key not in ref_of:
            if layout.reported_defaults.get(key) == 0 and key not in miss.path["via"]:
                continue
            return None
        parts.append([c, list(ref_of[key]), lag])
    top = max((lag for (_, lag) in terms), default=0)
    if index - top < 0:
        return None
    via = []
    for key in miss.path["via"]:
        finding = next((f for f in findings_at.get((key, miss.year), []) if not f.within_rounding), None)
        evidence = _evidence_of_line(finding, by_key, ref_of, years) if finding is not None else None
        if evidence is None or "parts" not in evidence:
            return None
        via.append(evidence)
    out = {"years": [years[index - lag] for lag in range(top + 1)], "total": list(ref_of[miss.key]), "parts": parts,
           "via": via}
    if miss.path.get("per_share"):
        if shares is None:
            return None
        out["denominator"] = shares
    return out


@dataclass(frozen=True)
class _At:
    """A year, where the evidence builders take a finding's."""
    year: str


def _reads(line) -> set:
    """The lines a line's definition reads."""
    if line is None or not line.formula:
        return set()
    return {r.key for r in fx.refs(fx.parse(line.formula))}


def _gap(evidence: dict, report: dict, ref_of: dict, lines: list[Placed]) -> float:
    """The printed total less its printed parts, for an identity in evidence form."""
    years = report["source"]["years"]
    key_of = {tuple(v): k for k, v in ref_of.items()}
    values = {row["key"]: row["values"] for kind in STATEMENT_KINDS for row in report.get(kind, [])}
    try:
        total = values[key_of[tuple(evidence["total"])]][years.index(evidence["years"][0])]
        parts = sum(sign * values[key_of[tuple(ref)]][years.index(evidence["years"][lag])]
                    for sign, ref, lag in evidence["parts"])
    except (KeyError, ValueError):
        return 0.0
    gap = total - parts
    return 0.0 if math.isnan(gap) or abs(gap) < 1e-9 else gap


def _evidence_of_formula(formula: str | None, key: str, year: str, ref_of: dict, years: list[str]) -> dict | None:
    if not formula or key not in ref_of:
        return None
    terms = fx.linear_terms(fx.parse(formula))
    if not terms or any(t.key not in ref_of for _, t in terms):
        return None
    index = years.index(year)
    top = max(t.lag for _, t in terms)
    if index - top < 0:
        return None
    return {"years": [years[index - lag] for lag in range(top + 1)], "total": list(ref_of[key]),
            "parts": [[sign, list(ref_of[t.key]), t.lag] for sign, t in terms]}


def _ref(lines: list[Placed], t_index: int, position: int) -> list:
    m = next(m for m in lines if m.table_index == t_index and m.position == position)
    return [m.kind, m.label, m.occurrence]


def _findings_named(miss, findings_at: dict) -> list:
    """The findings a miss's explanation names: its own, else the one on the line it follows from."""
    own = findings_at.get((miss.key, miss.year), [])
    named = re.search(r"disagreement on (\w+)|(?:computed from|added up by|equal by a check to) (\w+), where", miss.explanation or "")
    linked = findings_at.get((named.group(1) or named.group(2), miss.year), []) if named else []
    return [f for f in own + linked if not f.within_rounding] + [f for f in own + linked if f.within_rounding]


def _evidence_of_subtotal(subtotal, t_index: int, lines: list[Placed], year: str, years: list[str]) -> dict | None:
    refs = {(m.table_index, m.position): [m.kind, m.label, m.occurrence] for m in lines}
    total = refs.get((t_index, subtotal.total.position))
    parts = [[p.sign, refs.get((t_index, p.row.position)), 0] for p in subtotal.parts]
    if total is None or any(p[1] is None for p in parts) or subtotal.remainder:
        return None
    return {"years": [year], "total": total, "parts": parts}


def _evidence_of_line(finding, by_key: dict, ref_of: dict, years: list[str], shares: dict | None = None) -> dict | None:
    """The identity a finding checked, as printed rows: a line defined as a signed sum of printed
    lines (a subtotal, the change in cash)."""
    line = by_key.get(finding.key)
    candidates = [line] if line is not None else []
    candidates += [l for k, l in by_key.items() if k.startswith(f"{finding.key}~")]
    # the definition the finding checked is the one its explanation names
    candidates = [l for l in candidates if l.formula and l.formula in finding.explanation] or candidates
    for line in candidates:
        if not line.formula or finding.key not in ref_of:
            continue
        tree = fx.parse(line.formula)
        if isinstance(tree, fx.Call) and tree.function == "per_share" and len(tree.args) == 2 \
                and isinstance(tree.args[0], fx.Ref) and tree.args[0].key in ref_of and tree.args[0].lag == 0 \
                and isinstance(tree.args[1], fx.Ref) and tree.args[1].key == "shares" and shares is not None:
            return {"years": [finding.year], "total": list(ref_of[finding.key]), "numerator": list(ref_of[tree.args[0].key]),
                    "denominator": shares}
        ratio = _ratio_evidence(tree, ref_of, finding, years)
        if ratio is not None:
            return ratio
        terms = fx.linear_terms(tree)
        if not terms or any(t.key not in ref_of for _, t in terms):
            continue
        index = years.index(finding.year)
        lags = sorted({t.lag for _, t in terms})
        if index - max(lags) < 0:
            continue
        return {"years": [years[index - lag] for lag in range(max(lags) + 1)], "total": list(ref_of[finding.key]),
                "parts": [[sign, list(ref_of[t.key]), t.lag] for sign, t in terms]}
    return None


# the ratio functions a printed ratio row is checked against: (numerator arg, denominator arg, less one)
_RATIOS = {"margin": (0, 1, False), "return_on": (0, 1, False), "coverage": (0, 1, False), "growth_rate": (0, 1, True)}


def _ratio_evidence(tree, ref_of: dict, finding, years: list[str], base: tuple | None = None) -> dict | None:
    """A ratio row (a margin, a growth rate) as the printed rows it divides; a year before the
    statements' first that another table prints (`base`: its label and figures by line) is read
    there, and the evidence gives each such figure as printed (`elsewhere`), for a reader to find."""
    if not (isinstance(tree, fx.Call) and tree.function in _RATIOS):
        return None
    top, bottom, less_one = _RATIOS[tree.function]
    numerator, denominator = fx.linear_terms(tree.args[top]), fx.linear_terms(tree.args[bottom])
    if not numerator or not denominator or any(t.key not in ref_of for _, t in numerator + denominator):
        return None
    index = years.index(finding.year)
    lags = {t.lag for _, t in numerator + denominator}
    elsewhere = []
    if index - max(lags) < 0:
        if base is None or index - max(lags) < -1:
            return None
        label, figures = base
        for _, t in numerator + denominator:
            if index - t.lag < 0:
                if t.key not in figures:
                    return None
                value = figures[t.key]
                places = len(repr(float(value)).split(".")[1].rstrip("0")) if not float(value).is_integer() else 0
                elsewhere.append([*ref_of[t.key], label, value, places, f"{value:,.{places}f}"])
        years = [label] + years
        index += 1
    return {"years": [years[index - lag] for lag in range(max(lags) + 1)],
            "ratio": {"numerator": [[sign, list(ref_of[t.key]), t.lag] for sign, t in numerator],
                      "denominator": [[sign, list(ref_of[t.key]), t.lag] for sign, t in denominator],
                      "less_one": less_one},
            **({"elsewhere": elsewhere} if elsewhere else {})}


def _import_text(note, note_path, note_text, layout, layout_written, lines, found, missed, problems, model,
                 unshown, derived, by_fit=()) -> str:
    out = [f"Import of {_comment(note_path.name)}", ""]
    out.append(f"Layout: {layout.name}" + (f" (inferred, written to {layout_written.name})" if layout_written else " (known)"))
    if layout_written:  # the layout names its sheets; the note's titles (converter output) are shown, not used
        for statement in layout.statements:
            tables = note.tables_of(statement.table)
            title = tables[0].title if tables else ""
            shown = title if len(title) <= 60 else title[:60] + "…"
            out.append(f"  sheet {statement.sheet}: the note's {statement.table} table, titled {shown!r}")
    mapped = [m for m in lines if m.key]
    unmapped = [m for m in lines if not m.key]
    out.append(f"Lines placed in the layout: {len(mapped)}; not placed: {len(unmapped)}")
    out += [f"  not placed: [{m.kind}] {m.label} (role {m.role or '—'})" for m in unmapped]
    if derived:
        out.append("Lines the note does not print, derived from those it does:")
        out += [f"  {d}" for d in derived]
    if by_fit:
        out.append("Balances filed in a cash-flow section by the note's own cash flow (their labels do not say which):")
        out += [f"  {d}" for d in by_fit]
    missing = missing_facts(note)
    if missing:
        out.append("Facts the note does not print (the model leaves them empty and marked): " + ", ".join(missing))
        out += [f"  not printed: {name} — {MISSING_ADVICE[name]}" for name in missing]
    checks = model.checks
    out.append(f"Model checks: {sum(c['passed'] for c in checks)}/{len(checks)} pass")
    out.append(f"Printed cells the model does not display as printed: {len(missed)}"
               + ("" if not missed else " (each explained below)"))
    out += [f"  {m.line()}" for m in missed]
    if unshown:
        out.append(f"Printed statement cells not shown as printed, with the note's own figures that say why: {len(unshown)}")
        out += [f"  {u.text}" for u in unshown]
    beyond = [f for f in found if not f.within_rounding]
    out.append(f"Findings (the note disagrees with itself): {len(beyond)} beyond rounding, {len(found) - len(beyond)} within")
    out += [f"  {'!' if not f.within_rounding else '~'} {f.line()}" for f in found]
    if problems:
        out += ["Problems:"] + [f"  {p}" for p in problems]
    out += ["", "What the reader found", note_text]
    return "\n".join(out) + "\n"
