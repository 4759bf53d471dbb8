"""From a broker note's text to a working model in one step.

`read_note` (workbook/notes.py) reads the note's tables, figures, market data and rating; this
module writes what the rest of the project reads:

- the report file (`NAME.report.toml`): every printed figure of the summary, the three
  statements and the ratio table at its printed precision, keyed by the layout's line keys;
- the company file (`NAME.toml`): facts, market inputs, rating, the reported years' figures and
  a driver for every forecast line, calibrated so that the model displays the printed forecast;
- the layout file (`NAME.layout.toml`) when the note's tables are in a layout the project does
  not know yet, with its subtotals inferred from the printed figures;
- the model (`NAME.xlsm`) and the import report (`NAME.import.txt`): what was found, mapped,
  repaired, inferred, and where the note disagrees with itself.

Everything is written to temporary files and renamed into place; a note the import cannot turn
into a balanced model ends in an `ImportFailed` with one readable sentence.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

from udfs.engine import FORECAST
from udfs.errors import DataError
from udfs.findings import round_half_up
from udfs.rating import schemes

from . import spec
from .files import atomic_write
from .notes import Note, NoteError, map_roles

STATEMENT_KINDS = ("income", "balance", "cashflow")
TABLE_KINDS = ("summary", "income", "balance", "cashflow", "ratios")
SHARE_SCALE = {"亿股": 100.0, "百万股": 1.0, "万股": 0.01}   # to millions of shares


class ImportFailed(DataError):
    """A note that cannot become a model; the message says what is missing."""


@dataclass
class Mapped:
    """One printed line of the note, placed in a layout."""
    kind: str             # the note's table kind
    key: str | None       # the layout's line key, None when unmapped
    role: str | None      # the label role it was matched to
    label: str
    cells: list           # PrintedNumber or None, one per year column
    how: str              # how the role was found, or why not


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

    @property
    def ok(self) -> bool:
        return self.balanced and not self.unexplained


# ------------------------------------------------------------------------------------------------
# Mapping the note onto a layout
# ------------------------------------------------------------------------------------------------
def mapped_lines(note: Note) -> list[Mapped]:
    mapping = map_roles(note)
    out = []
    for index, table in enumerate(note.tables):
        if table.kind not in TABLE_KINDS:
            continue
        for row in table.rows:
            if row.heading or not row.has_figures:
                continue
            match = mapping.get((index, row.position))
            role = match.role if match else None
            out.append(Mapped(table.kind, None, role, row.label, list(row.cells), match.method if match else "unmapped"))
    return out


def _key_in(layout: spec.Layout, role: str | None) -> str | None:
    if role is None:
        return None
    keys = {line.key for line in layout.lines}
    return role if role in keys else layout.aliases.get(role)


def choose_layout(lines: list[Mapped]) -> spec.Layout | None:
    """The known layout that places every printed statement line of the note, and leaves the
    fewest of its own statement lines unprinted; None when no known layout places them all."""
    best, best_score = None, None
    statement_roles = [m for m in lines if m.kind in STATEMENT_KINDS]
    for path in sorted(spec.LAYOUT_DIR.glob("*.toml")):
        layout = spec.load_layout(path.stem)
        tables = {line.key: line.table for line in layout.lines}
        placed = [_key_in(layout, m.role) for m in statement_roles]
        if any(k is None or tables[k] != m.kind for k, m in zip(placed, statement_roles)):
            continue
        unprinted = len(set(layout.reported_keys) - set(placed))
        if best_score is None or unprinted < best_score:
            best, best_score = layout, unprinted
    return best


# ------------------------------------------------------------------------------------------------
# The report file: every printed figure
# ------------------------------------------------------------------------------------------------
def _years(note: Note) -> list:
    income = note.table("income")
    for kind in ("balance", "cashflow"):
        other = [y.label for y in note.table(kind).years]
        if other != [y.label for y in income.years]:
            raise ImportFailed(f"the {kind} table's years {other} differ from the income statement's "
                               f"{[y.label for y in income.years]}")
    return income.years


def report_data(note: Note, lines: list[Mapped], layout: spec.Layout, source_file: str) -> dict:
    years = _years(note)
    labels = [y.label for y in years]
    tables: dict = {kind: [] for kind in TABLE_KINDS}
    for m in lines:
        if m.key is None:
            continue
        cells = m.cells + [None] * (len(labels) - len(m.cells))
        printed = [c for c in cells if c is not None]
        if not printed:
            continue
        decimals = max(c.decimals for c in printed)
        tables[m.kind].append({
            "key": m.key, "label": m.label, "decimals": decimals, "percent": any(c.percent for c in printed),
            "values": [c.value if c is not None else math.nan for c in cells[:len(labels)]],
        })
    market = note.market
    out = {
        "source": {"date": note.date or "", "file": source_file, "years": labels,
                   "company": note.company or "", "ticker": note.ticker or ""},
        "market": _market_print(note),
    }
    out.update({kind: rows for kind, rows in tables.items() if rows})
    if market.price is None:
        raise ImportFailed("the note prints no share price (市场数据): the model needs one")
    return out


def _figure(figure):
    return None if figure is None else figure.value


def _market_print(note: Note) -> dict:
    m = note.market
    shares = _figure(m.shares)
    market = {"price": m.price.value.value if m.price else None}
    if m.fx:
        market["fx_rate"] = m.fx[2].value
        market["fx_pair"] = [m.fx[0], m.fx[1]]
    else:
        market["fx_rate"] = 1.0
    if shares is not None:
        market["shares_100mn"] = shares.value * SHARE_SCALE.get(m.shares.unit, 1.0) / 100
    if m.market_cap is not None:
        market["market_cap_100mn"] = m.market_cap.value.value
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
def matching_scheme(note: Note) -> str | None:
    """The known rating scheme whose bands the note prints (same labels and thresholds)."""
    if note.scheme is None:
        return None
    printed = [(b.label, b.lower, b.upper) for b in note.scheme.bands]
    for key, scheme in schemes().items():
        bands = [(b.label, None if b.min_pct is None else float(b.min_pct), None if b.max_pct is None else float(b.max_pct))
                 for b in scheme.bands]
        if bands == printed:
            return key
    return None


def share_count(note: Note, report: dict, layout: spec.Layout) -> tuple[float, str]:
    """Shares in millions: the printed count, or the count the market cap implies (market cap ÷
    price) when that is within the printed count's rounding and the per-share lines printed
    with it agree with more of the printed figures."""
    market = report["market"]
    printed = market.get("shares_100mn")
    if printed is None:
        raise ImportFailed("the note prints no share count (总股本): the model needs one")
    printed_m = round(printed * 100, 6)
    candidates = [(printed_m, "the printed share count")]
    if market.get("market_cap_100mn") and market.get("price"):
        implied = market["market_cap_100mn"] / market["price"] * 100
        decimals = _decimals(printed)
        if abs(implied / 100 - printed) <= 0.5 * 10 ** -decimals:
            candidates.append((round(implied, 2), "the market cap divided by the price (the printed count is rounded)"))
    if len(candidates) == 1:
        return candidates[0]
    misses = [_per_share_misses(report, layout, shares) for shares, _ in candidates]
    return candidates[1] if misses[1] < misses[0] else candidates[0]


def _decimals(value: float) -> int:
    text = repr(float(value))
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0


def _per_share_misses(report: dict, layout: spec.Layout, shares: float) -> int:
    """How many printed per-share figures (lines defined as per_share(x, shares)) a share count misses."""
    from udfs import formula as fx
    years = report["source"]["years"]
    forecast = {y for y in years if y.upper().endswith("E")}
    values = {row["key"]: row for kind in TABLE_KINDS for row in report.get(kind, [])}
    misses = 0
    for line in layout.lines + layout.report_identities:  # the note's own per-share definitions count too
        tree = fx.parse(line.formula) if line.formula else None
        if not (line.identity and isinstance(tree, fx.Call) and tree.function == "per_share"):
            continue
        numerator = tree.args[0]
        if line.key not in values or not isinstance(numerator, fx.Ref) or numerator.key not in values:
            continue
        row, base = values[line.key], values[numerator.key]
        for i, year in enumerate(years):
            if line.identity_years == FORECAST and year not in forecast:
                continue
            shown, amount = row["values"][i], base["values"][i]
            if not (math.isnan(shown) or math.isnan(amount)) and round_half_up(amount / shares, row["decimals"]) != shown:
                misses += 1
    return misses


def company_data(note: Note, report: dict, layout: spec.Layout, years: list) -> tuple[dict, list[str]]:
    problems = []
    market = report["market"]
    labels = [y.label for y in years]
    actual = [y.label for y in years if not y.forecast]
    forecast = [y.label for y in years if y.forecast]
    if not actual or not forecast:
        raise ImportFailed(f"the statements need reported and forecast years; the note has {labels}")
    shares, shares_note = share_count(note, report, layout)
    scheme = matching_scheme(note)
    if scheme is None:
        problems.append("rating scheme: the note's bands match no scheme of udfs/rating_schemes.toml; "
                        "the model uses the default scheme until one is added")
    fx_pair = market.get("fx_pair") or [note.market.currency, note.market.currency]
    statement_unit = note.table("income").unit or ""
    company = {
        "format_version": 1,
        "company": {
            "name_zh": note.company or "", "ticker": note.ticker or "", "market": note.exchange_market or "",
            "reporting_currency": fx_pair[1] or "", "quote_currency": fx_pair[0] or "", "layout": layout.name,
            "unit": statement_unit, "source": f"{note.company or ''}（{note.ticker or ''}）{note.date or ''} 研究报告",
        },
        "market": {"price": market["price"], "price_date": market.get("price_date") or note.date or "",
                   "fx_rate": market.get("fx_rate", 1.0), "shares": shares},
        "rating": {"scheme": scheme or "everbright", "boundary": "outer"},
        "years": {"actual": actual, "forecast": forecast},
    }
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
    company["market_notes"] = {"shares": shares_note}

    printed = {(row["key"], labels[i]): v for kind in STATEMENT_KINDS for row in report.get(kind, [])
               for i, v in enumerate(row["values"])}
    company["actual"] = {}
    for year in actual:
        figures = {}
        for key in sorted(layout.reported_keys, key=lambda k: [l.key for l in layout.lines].index(k)):
            value = printed.get((key, year))
            if value is None or math.isnan(value):
                problems.append(f"{year}: line {key} is not printed; entered as 0")
                value = 0.0
            figures[key] = value
        company["actual"][year] = figures
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
    return company, problems


# ------------------------------------------------------------------------------------------------
# Writing TOML (a small writer for the shapes these files have)
# ------------------------------------------------------------------------------------------------
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


def _one_line(text: str) -> str:
    """`text` as it may stand in a comment line: line breaks and control characters as spaces."""
    return " ".join("".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in str(text)).split())


def _toml_string(text: str) -> str:
    """A TOML basic string: backslash and quote escaped, and every control character written as
    \\uXXXX, never raw (TOML forbids them; a raw one made the file unreadable)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif unicodedata.category(ch) == "Cc":
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


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


# ------------------------------------------------------------------------------------------------
# The whole import
# ------------------------------------------------------------------------------------------------
_PLAIN_STEM = re.compile(r"[^\W_][\w.-]{0,79}")


def file_stem(stem: str) -> str:
    """`stem` if it can name the files an import writes (letters, digits, '_', '-', '.'; at most
    80 characters, no '..'): never a path, a control character or a line break."""
    if not isinstance(stem, str) or not _PLAIN_STEM.fullmatch(stem) or ".." in stem:
        raise ImportFailed(f"--name {str(stem)[:60]!r}: give a file name stem such as 600519sh_20260427 (letters, "
                           "digits, '_', '-', '.'), not a path; the files are written in the -o folder")
    return stem


def import_note(note_path: str | Path, out_dir: str | Path, stem: str | None = None, build: bool = True) -> ImportResult:
    """Import `note_path` into `out_dir` (see the module doc). Every file is written into a
    scratch folder inside `out_dir` and moved into place only once the import has finished:
    a refused note (ImportFailed, or any failure) leaves nothing behind."""
    note_path, out_dir = Path(note_path), Path(out_dir)
    if stem is not None:
        file_stem(stem)
    if not out_dir.is_dir():
        raise ImportFailed(f"{out_dir}: no such folder")
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=out_dir))
    try:
        result = _import_into(note_path, staging, stem, build)
        written = sorted(staging.iterdir())
        blocked = [path.name for path in written if (out_dir / path.name).is_dir()]
        if blocked:
            raise ImportFailed(f"{out_dir / blocked[0]}: is a folder where the import writes a file; nothing written")
        for path in written:
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    moved = {name: (out_dir / getattr(result, name).name if getattr(result, name) else None)
             for name in ("layout_written", "company_path", "report_path", "model_path", "text_path")}
    return replace(result, directory=out_dir, **moved)


def _import_into(note_path: Path, out_dir: Path, stem: str | None, build: bool) -> ImportResult:
    from .build import build as build_template
    from .calibrate import calibrate
    from .company import CompanyDataError, load
    from .currencies import fx_range_problem
    from .examples import example_valuation
    from .model import build_model
    from .report import findings, load_report, reproduction
    from .notes import read_and_report

    try:
        note, note_text = read_and_report(note_path)
    except NoteError as exc:
        raise ImportFailed(str(exc)) from None
    for kind in STATEMENT_KINDS:
        if not note.tables_of(kind):
            raise ImportFailed(f"{note_path.name}: no {kind} statement found; the import needs all three statements")
    years = _years(note)
    lines = mapped_lines(note)
    layout = choose_layout(lines)
    layout_written = None
    stem = file_stem(stem or _stem(note))
    if layout is None:
        from .infer_layout import infer_layout
        layout_data = infer_layout(note, lines)
        layout_written = out_dir / f"{stem}.layout.toml"
        atomic_write(layout_written, to_toml(layout_data, "# Statement layout inferred by `python -m addin import` from "
                                                         f"{_one_line(note_path.name)}; edit freely.\n"))
        try:
            layout = spec.load_layout(layout_written)
        except spec.LayoutError as exc:
            raise ImportFailed(f"the layout inferred from the note is not usable: {exc}") from None
    by_label = {(line.table, line.label_zh): line.key for line in layout.lines}
    for m in lines:
        m.key = _key_in(layout, m.role) if layout_written is None else by_label.get((m.kind, m.label))
    report = report_data(note, lines, layout, note_path.name)
    company, problems = company_data(note, report, layout, years)
    fx_problem = fx_range_problem(float(company["market"]["fx_rate"]), company["company"]["quote_currency"],
                                  company["company"]["reporting_currency"])
    if fx_problem:   # the judgement every door gives an FX rate, before anything is written
        raise ImportFailed(f"{note_path.name}: the note's FX: {fx_problem}")
    unbalanced = _printed_balance_failures(report, layout, [y.label for y in years if not y.forecast])
    if layout_written is not None:
        company["company"]["layout"] = layout_written.name
    shares_note = company.pop("market_notes")["shares"]
    report_path = out_dir / f"{stem}.report.toml"
    company_path = out_dir / f"{stem}.toml"
    atomic_write(report_path, to_toml(report, f"# Every figure {_one_line(note_path.name)} prints, at its printed precision, "
                                             "as read by `python -m addin import`.\n# nan: a cell the note leaves empty.\n"))
    header = (f"# {_one_line(note.company or '')}（{_one_line(note.ticker or '')}）, from {_one_line(note_path.name)} by "
              f"`python -m addin import`.\n# Shares: {shares_note}. Drivers: calibrated so that the model displays the "
              "printed forecast.\n")
    atomic_write(company_path, to_toml(company, header))
    implied_reported: dict = {}
    try:
        drivers = calibrate(load_report(report_path).data, company_path, reported=implied_reported)
    except CompanyDataError as exc:
        raise ImportFailed(f"the company file written from the note is not usable: {exc}") from None
    company["drivers"] = drivers
    for (key, year), value in implied_reported.items():  # a figure the forecast implies (last year's dividend)
        company["actual"][year][key] = value
    atomic_write(company_path, to_toml(company, header))
    example = example_valuation(load(company_path))   # the valuation a first open shows, labelled as an example
    company["rating"].update(example["rating"])
    company["valuation"] = example["valuation"]
    atomic_write(company_path, to_toml(company, header))
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
    model_path = None
    if build:
        model_path = build_template(out_dir / f"{stem}.xlsm", loaded)
    text = _import_text(note_path, note_text, layout, layout_written, lines, found, missed, problems, model, note)
    text_path = out_dir / f"{stem}.import.txt"
    atomic_write(text_path, text)
    total = len(load_report(report_path).printed())
    unexplained = sum(1 for m in missed if not m.explanation)
    return ImportResult(out_dir, stem, layout, layout_written, company_path, report_path, model_path, text_path, problems,
                        not failed, total - len(missed), len(missed) - unexplained, unexplained)


def _printed_balance_failures(report: dict, layout: spec.Layout, actual_years: list[str]) -> list[dict]:
    """The layout's balance check on the reported years' printed figures, beyond their rounding."""
    from udfs import formula as fx
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


def _stem(note: Note) -> str:
    ticker = (note.ticker or "model").replace(".", "").lower()
    return f"{ticker}_{(note.date or '').replace('-', '')}".rstrip("_")


def _import_text(note_path, note_text, layout, layout_written, lines, found, missed, problems, model, note) -> str:
    out = [f"Import of {_one_line(note_path.name)}", ""]
    out.append(f"Layout: {layout.name}" + (f" (inferred, written to {layout_written.name})" if layout_written else " (known)"))
    if layout_written:  # the layout names its sheets; the note's titles (converter output) are shown, not used
        for statement in layout.statements:
            title = note.table(statement.table).title
            shown = title if len(title) <= 60 else title[:60] + "…"
            out.append(f"  sheet {statement.sheet}: the note's {statement.table} table, titled {shown!r}")
    mapped = [m for m in lines if m.key]
    unmapped = [m for m in lines if not m.key]
    out.append(f"Lines placed in the layout: {len(mapped)}; not placed: {len(unmapped)}")
    out += [f"  not placed: [{m.kind}] {m.label} (role {m.role or '—'})" for m in unmapped]
    checks = model.checks
    out.append(f"Model checks: {sum(c['passed'] for c in checks)}/{len(checks)} pass")
    out.append(f"Printed cells the model does not display as printed: {len(missed)}"
               + ("" if not missed else " (each explained below)"))
    out += [f"  {m.line()}" for m in missed]
    beyond = [f for f in found if not f.within_rounding]
    out.append(f"Findings (the note disagrees with itself): {len(beyond)} beyond rounding, {len(found) - len(beyond)} within")
    out += [f"  {'!' if not f.within_rounding else '~'} {f.line()}" for f in found]
    if problems:
        out += ["Problems:"] + [f"  {p}" for p in problems]
    out += ["", "What the reader found", note_text]
    return "\n".join(out) + "\n"
