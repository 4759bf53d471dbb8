"""Refresh: new market inputs in, every model value recomputed, checks re-run, time and source
stamped. One logic, two runtimes:

- `main()` is what the workbook's Refresh button runs through xlwings (RunPython, UDF server):
  `refresh_book` writes the quote into the open workbook and lets Excel recalculate.
- `refresh_file()` does the same to a file, headless (`python -m addin refresh MODEL.xlsm`). It is
  surgical: only the market-input cells, the cached values of formula cells, the stamps and the
  audit block change; the VBA project, the button, styles, names, validation and every analyst
  input keep their bytes. Values are recomputed from the file's own cells and formulas, so
  changed drivers, numbers typed over formulas and edited formulas are all honoured.

Both runtimes share one sequence (`_market_update`, then the audit): the structure check, the
quote validated against the model's own trading currency, last price and last FX, the stamps,
the audit block, and a status that fails when the refreshed model's checks fail, naming the
first cause cell. The headless path holds the model's lock, writes beside it, verifies, keeps
the previous version as the newest timestamped backup and renames into place (addin.modelfile).
"""
from __future__ import annotations

import datetime as dt
import math
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from udfs.constants import ERR_NA
from udfs.errors import ModelError
from workbook import xlsx
from workbook.layout import (
    AUDIT_ITEMS, AUDIT_SUMMARY, CONF, DRIVERS_PREFIX, SENSITIVITY_COLS, SENSITIVITY_GRID, SENSITIVITY_ROWS, SENSITIVITY_SPEC,
    defined_name, market_name,
)
from workbook.xlcalc import evaluate, same_value

from .audit import Audit, audit, sheet_lines
from .modelfile import model_lock, parse_backups_setting, refuse_unwritable, regular_file, replace_model
from .quotes import Quote, QuoteError, parse_max_age, parse_timeout, provider_for, validate
from .template import TICKER, settings_as_values, verify_structure, verify_written_names

MARKET_INPUTS = {key: market_name(key) for key in ("price", "price_date", "fx_rate", "benchmark_level")}
QUOTE_CURRENCY, REPORTING_CURRENCY = market_name("quote_currency"), market_name("reporting_currency")
STAMP_NAME, SOURCE_NAME = market_name("refresh_stamp"), market_name("refresh_source")
WRITTEN_NAMES = (*MARKET_INPUTS.values(), STAMP_NAME, SOURCE_NAME)   # the one-cell names a refresh writes through
# xlwings.conf keys (column A of the sheet; matched without regard to case).
CONF_SOURCE, CONF_MAX_AGE, CONF_BACKUPS = "QUOTES SOURCE", "QUOTES MAX AGE DAYS", "BACKUPS"
CONF_ACCEPT_MOVE = "QUOTES ACCEPT MOVE"   # the button's --accept-move: Excel users have no flags
CONF_TIMEOUT = "QUOTES TIMEOUT"           # seconds a network quote provider may take to answer
SAMPLE_STAMP = "样本数据 sample data"


class ChecksFailed(ModelError):
    """The model was refreshed (and, headless, written), but its integrity checks fail."""


@dataclass
class RefreshResult:
    path: Path
    quote: Quote
    changed_cells: int
    backup: Path | None
    audit: Audit
    sample: bool = False

    @property
    def checks_failed(self) -> bool:
        return bool(self.audit.check_failures or self.audit.not_evaluable)

    def status(self) -> str | None:
        """Why the refreshed model is not sound (one line), or None when it is."""
        return checks_message(self.path.name, self.audit, written=True) if self.checks_failed else None


def checks_message(name: str, result: Audit, written: bool) -> str:
    what = "refreshed and saved" if written else "refreshed"
    if result.not_evaluable:
        return f"{name}: {what}, but it cannot be evaluated: {result.not_evaluable}"
    cause = f"; cause: {result.cause}" if result.cause else ""
    return (f"{name}: {what}, but {len(result.check_failures)} of {result.checks_run} integrity checks fail"
            f"{cause}; fix it and refresh again (details: python -m addin check {name})")


def conf(package: xlsx.Package) -> dict:
    """The workbook's xlwings.conf sheet as {KEY: value}."""
    sheet = package.sheets.get(CONF)
    if sheet is None:
        return {}
    out = {}
    for ref in sheet.cells:
        if ref.startswith("A") and ref[1:].isdigit():
            key = package.value(CONF, ref)
            if isinstance(key, str):
                out[key.strip().upper()] = package.value(CONF, "B" + ref[1:])
    return out


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value):
    return value.strip() if isinstance(value, str) and value.strip() else None


@dataclass
class _Update:
    quote: Quote
    sample: bool
    inputs: dict       # defined name -> value to write


def _market_update(read, settings: dict, quotes: str | None, as_of: dt.date | None, max_age_days: int | None,
                   accept_move: bool, now: dt.datetime, where: str, front: str = "cli",
                   quotes_timeout: float | None = None) -> _Update:
    """The validated quote and every cell value it puts into the model, by defined name.

    `read(name)` gives the model's current value of a one-cell defined name (or None): the same
    decision for a file and for an open workbook. The model's trading currency, last price and
    last FX are what the quote is judged against.

    The shipped template's first refresh: with no quote source chosen (neither `--quotes` nor
    xlwings.conf 'Quotes Source'), the embedded sample quote is accepted while the model still
    holds that very quote (same price and date), whatever its age; the model is recomputed and
    the source cell says it is sample data. Once the model holds any other price, the sample is
    judged like any quote, so it can never overwrite real data."""
    spec = quotes or _text(settings.get(CONF_SOURCE))
    timeout = quotes_timeout or parse_timeout(settings.get(CONF_TIMEOUT), f"{where}: xlwings.conf 'Quotes Timeout'")
    provider = provider_for(spec, timeout)
    limit = (max_age_days if max_age_days is not None
             else parse_max_age(settings.get(CONF_MAX_AGE), f"{where}: xlwings.conf 'Quotes Max Age Days'"))
    ticker = _text(read(TICKER))
    if ticker is None:
        raise xlsx.WorkbookError(f"{where}: the ticker cell ({TICKER}) is empty")
    last_price, last_fx = _number(read(MARKET_INPUTS["price"])), _number(read(MARKET_INPUTS["fx_rate"]))
    quote = provider.quote(ticker)
    as_of = as_of or dt.date.today()
    last_date = read(MARKET_INPUTS["price_date"])
    sample = (spec is None and last_price == quote.price and last_fx == quote.fx_to_reporting
              and _number(last_date) == xlsx.excel_date(quote.price_date))
    if sample:
        limit = max(limit, (as_of - quote.price_date).days)
    currency, reporting = _text(read(QUOTE_CURRENCY)), _text(read(REPORTING_CURRENCY))
    quote = validate(quote, ticker, as_of, limit, currency=currency, last_price=last_price, last_fx=last_fx,
                     fx_pair=(currency, reporting) if currency and reporting else None, accept_move=accept_move,
                     front=front)
    source = (f"{SAMPLE_STAMP}: {quote.source} ({quote.price_date}), not a live quote; set 'Quotes Source' in xlwings.conf"
              if sample else f"{quote.source} ({provider.name}, {quote.price_date})")
    inputs = {MARKET_INPUTS["price"]: quote.price, MARKET_INPUTS["price_date"]: xlsx.excel_date(quote.price_date),
              MARKET_INPUTS["fx_rate"]: quote.fx_to_reporting, MARKET_INPUTS["benchmark_level"]: quote.benchmark_level,
              STAMP_NAME: now.isoformat(sep=" "), SOURCE_NAME: source}
    return _Update(quote, sample, inputs)


def _audit_lines(package: xlsx.Package, result: Audit, now: dt.datetime) -> dict:
    """The 校验 sheet's audit block by cell, filled with the same audit `check` prints."""
    if AUDIT_SUMMARY not in package.names:
        return {}
    items_cells = package.name_cells(AUDIT_ITEMS)
    summary, items = sheet_lines(result, now.isoformat(sep=" ", timespec="minutes"), len(items_cells))
    cells = {package.name_cells(AUDIT_SUMMARY)[0]: summary}
    for i, cell in enumerate(items_cells):
        cells[cell] = items[i] if i < len(items) else None
    return cells


def _excel_lock(path: Path) -> Path:
    return path.parent / ("~$" + path.name)


def refresh_file(path: str | Path, quotes: str | None = None, as_of: dt.date | None = None,
                 max_age_days: int | None = None, now: dt.datetime | None = None,
                 accept_move: bool = False, quotes_timeout: float | None = None) -> RefreshResult:
    """Refresh one model file in place. QuoteError or WorkbookError leave the file untouched; a
    model whose checks fail after the refresh is still written (the analyst needs to see it) and
    the result's `status()` says why."""
    given = Path(path)
    real = regular_file(given)  # a symlink's target is refreshed in place; the link stays a link
    now = now or dt.datetime.now().replace(microsecond=0)
    with model_lock(real):
        refuse_unwritable(real, given)
        package = xlsx.read(real)
        verify_structure(package)
        verify_written_names(package, WRITTEN_NAMES)
        if _excel_lock(real).exists() or _excel_lock(given).exists():
            raise xlsx.WorkbookError(f"{given.name} is open in Excel (lock file ~${real.name}); close it, or use its "
                                     "Refresh button")
        settings = conf(package)
        keep = parse_backups_setting(settings.get(CONF_BACKUPS), given.name)

        def read(name):
            if name not in package.names:
                return None
            return package.value(*package.name_cells(name)[0])

        update = _market_update(read, settings, quotes, as_of, max_age_days, accept_move, now, given.name,
                                quotes_timeout=quotes_timeout)
        new_inputs = {package.name_cells(name)[0]: value for name, value in update.inputs.items()
                      if name in package.names}
        values = evaluate(package, {**settings_as_values(package), **new_inputs})
        # written only where a value moved beyond the 15-16 digits a cell stores
        values.update({cell: value for cell, value in sensitivity_cells(package, given.name).items()
                       if not _close(package.value(*cell), value)})
        result = audit(package, values)
        new_inputs.update(_audit_lines(package, result, now))

        changes: dict = {}
        for key, value in list(new_inputs.items()) + list(values.items()):
            if key in new_inputs or not same_value(package.value(*key), value):
                changes.setdefault(key[0], {})[key[1]] = value
        replaced = {package.sheets[s].path: xlsx.rewrite_sheet(package.sheets[s], cells).encode("utf-8")
                    for s, cells in changes.items()}
        backup = replace_model(real, lambda temp: xlsx.write(package, replaced, temp),
                               lambda temp: _verify(temp, package, replaced, changes), keep=keep, when=now)
    return RefreshResult(given, update.quote, sum(len(c) for c in changes.values()), backup, result, update.sample)


def _close(stored, value) -> bool:
    if isinstance(stored, float) and isinstance(value, float):
        return abs(stored - value) <= 1e-12 * max(abs(stored), abs(value))
    return same_value(stored, value)


def sensitivity_cells(package: xlsx.Package, model_name: str) -> dict:
    """The engine-run sensitivity table (敏感性: EPS by two drivers) recomputed from the
    workbook's current drivers and axis values, the whole model re-run per point. A workbook
    whose company cannot be rebuilt shows #N/A there rather than last time's numbers."""
    from workbook.model import SCENARIO_KEY, driver_sensitivity

    from .source import current_company

    if SENSITIVITY_GRID not in package.names:
        return {}
    grid = package.name_cells(SENSITIVITY_GRID)
    rows, cols = package.name_cells(SENSITIVITY_ROWS), package.name_cells(SENSITIVITY_COLS)
    not_available = {cell: ERR_NA for cell in grid}
    spec = package.names.get(SENSITIVITY_SPEC, "").strip().strip('"').split("|")
    xs, ys = [_axis_value(package.value(*c)) for c in rows], [_axis_value(package.value(*c)) for c in cols]
    if len(spec) != 4 or None in xs or None in ys:  # a damaged table, an axis cell cleared or not a number
        return not_available
    a, b, line, year = spec
    try:
        company = current_company(package, model_name)
        choice = defined_name(DRIVERS_PREFIX, SCENARIO_KEY)  # the drivers sheet's scenario cell
        chosen = package.value(*package.name_cells(choice)[0]) if choice in package.names else None
        scenario = chosen.strip().lower() if isinstance(chosen, str) and chosen.strip() else None
        values = driver_sensitivity(company, a, xs, b, ys, line, year, scenario=scenario)
    except ModelError:  # a company that cannot be rebuilt
        return not_available
    return {cell: values[i // len(ys)][i % len(ys)] for i, cell in enumerate(grid)}


def _axis_value(value) -> float | None:
    """A sensitivity axis cell as the driver value to run (a number, or text that reads as one),
    None when it is empty or holds anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _verify(temp: Path, original: xlsx.Package, replaced: dict, changes: dict) -> None:
    """The written file holds what was meant and nothing else moved."""
    written = xlsx.read(temp)
    for name, data in original.members.items():
        expected = replaced.get(name, data)
        if written.members.get(name) != expected:
            raise xlsx.WorkbookError(f"refresh verification failed on {name}; the original is untouched")
    for sheet, cells in changes.items():
        for ref, value in cells.items():
            got = written.value(sheet, ref)
            if not same_value(got, value) and not (value is None and got in (None, "")):
                raise xlsx.WorkbookError(f"refresh verification failed at {sheet}!{ref}; the original is untouched")


def model_files(target: Path) -> list[Path]:
    """The model files a path names: the file itself, or every .xlsm in a folder (no backups or lock files)."""
    if target.is_dir():
        return sorted(p for p in target.glob("*.xlsm") if not p.name.startswith(("~$", ".")))
    return [target]


class Outcome(NamedTuple):
    """One file of a batch: `error` is the one-line reason when it failed; `written` says whether
    the file was nonetheless refreshed (its checks fail after the refresh)."""
    path: Path
    error: str | None
    changed: int
    written: bool = False
    backup: Path | None = None


def _refresh_one(args) -> Outcome:
    path, quotes, as_of, max_age_days, now, accept_move, quotes_timeout = args
    try:
        result = refresh_file(path, quotes, as_of, max_age_days, now, accept_move, quotes_timeout)
    except (QuoteError, xlsx.WorkbookError) as exc:
        return Outcome(path, str(exc), 0)
    except OSError as exc:  # disk full, permissions: this file fails, the batch goes on
        return Outcome(path, f"{path.name}: {exc.strerror or exc}", 0)
    except RecursionError:
        return Outcome(path, f"{path.name}: formulas nested too deeply to evaluate headless", 0)
    except Exception as exc:  # noqa: BLE001 - one unforeseen file must not stop the batch; it is reported
        return Outcome(path, f"{path.name}: cannot refresh ({type(exc).__name__}: {str(exc)[:200]})", 0)
    return Outcome(path, result.status(), result.changed_cells, True, result.backup)


def worker_count(requested: int, files: int) -> int:
    """Processes for a batch: never more than the cores, nor than the files."""
    return max(1, min(requested, os.cpu_count() or 1, files))


def refresh_many(paths: list[Path], quotes=None, as_of=None, max_age_days=None, now=None, workers: int = 2,
                 progress=None, accept_move: bool = False, quotes_timeout: float | None = None) -> list[Outcome]:
    """Refresh several files on up to `workers` processes; one Outcome per file, in the order
    given. A file that fails is reported and the others go on."""
    jobs = [(p, quotes, as_of, max_age_days, now, accept_move, quotes_timeout) for p in paths]
    workers = worker_count(workers, len(jobs))
    done = []

    def collect(results):
        for i, outcome in enumerate(results, start=1):
            if progress:
                progress(i, len(jobs), *outcome[:3])
            done.append(outcome)

    if workers <= 1:
        collect(map(_refresh_one, jobs))
        return done
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            collect(pool.map(_refresh_one, jobs, chunksize=1))
    except BrokenProcessPool:  # a worker died (killed, out of memory): report the rest, don't lose them
        finished = {o.path for o in done}
        collect(Outcome(p, f"{p.name}: the refresh process died; the file is as it was or fully refreshed", 0)
                for p in paths if p not in finished)
    return done


# ------------------------------------------------------------------------------------------------
# In Excel: the Refresh button.
# ------------------------------------------------------------------------------------------------
def excel_quote_message(exc: QuoteError) -> str:
    """A refused quote as the Excel user should read it: the fix is a setting on the workbook's
    xlwings.conf sheet, never a command-line flag."""
    if exc.front == "excel":
        return str(exc)
    reason = exc.reason if exc.front == "cli" else str(exc)
    return f"{reason}; in Excel, set 'Quotes Source' on the xlwings.conf sheet to a current quotes file"


def _truthy(value) -> bool:
    return value is True or (isinstance(value, str) and value.strip().upper() in ("TRUE", "YES", "1"))


class _LiveView:
    """A saved package read through the open workbook's values: what `sensitivity_cells` needs
    of a model (`value`, `names`, `name_cells`, `sheets`), with the analyst's unsaved inputs."""

    def __init__(self, package: xlsx.Package, values: dict):
        self.package, self.values = package, values

    def value(self, sheet: str, ref: str):
        return self.values[(sheet, ref)] if (sheet, ref) in self.values else self.package.value(sheet, ref)

    def __getattr__(self, name):
        return getattr(self.package, name)


def _book_values(book, package: xlsx.Package) -> dict:
    """Every cell of the workbook as Excel now shows it, {(sheet, ref): value}, one read per sheet."""
    values = {}
    for name, sheet in package.sheets.items():
        if not sheet.cells:
            continue
        rows = max(xlsx.split_ref(r)[0] for r in sheet.cells)
        cols = max(xlsx.split_ref(r)[1] for r in sheet.cells)
        rng = book.sheets[name].range(f"A1:{xlsx.col_letters(cols)}{rows}")
        try:
            grid = rng.options(ndim=2, err_to_str=True).value
        except (AttributeError, TypeError):
            grid = rng.value
        for ref in sheet.cells:
            r, c = xlsx.split_ref(ref)
            try:
                values[(name, ref)] = grid[r - 1][c - 1]
            except (IndexError, TypeError):
                values[(name, ref)] = None
    return values


def refresh_book(book, quotes: str | None = None, as_of: dt.date | None = None, now: dt.datetime | None = None,
                 accept_move: bool = False) -> RefreshResult:
    """Refresh an open xlwings Book the way `refresh_file` refreshes a file: the structure check
    (on the workbook as last saved, whose formulas and blueprint it reads), the same quote
    validation, stamps and audit block. A refused quote raises QuoteError before anything is
    written, with the xlwings.conf keys to change; failing checks after the refresh raise
    ChecksFailed naming the cause. `book` only needs xlwings' Book surface (`fullname`,
    `app.calculate()`, `names[NAME].refers_to_range.value`, `sheets[NAME].range(...)`)."""
    path = Path(book.fullname)
    if not path.is_absolute():  # a workbook never saved: Excel gives just its caption, e.g. "Book1"
        raise xlsx.WorkbookError(f"{path.name}: save the workbook first; refresh checks its structure on the saved file")
    package = xlsx.read(regular_file(path))
    verify_structure(package)
    verify_written_names(package, WRITTEN_NAMES)
    now = now or dt.datetime.now().replace(microsecond=0)

    def cell(name):
        return book.names[name].refers_to_range

    def read(name):
        try:
            value = cell(name).value
        except (KeyError, AttributeError):
            return None
        if isinstance(value, dt.datetime):
            return xlsx.excel_date(value.date())
        return value

    settings = _book_conf(book)
    accept_move = accept_move or _truthy(settings.get(CONF_ACCEPT_MOVE))
    try:
        update = _market_update(read, settings, quotes, as_of, None, accept_move, now, path.name, front="excel")
    except QuoteError as exc:
        raise QuoteError(excel_quote_message(exc), front="excel") from None
    for name, value in update.inputs.items():
        if name == MARKET_INPUTS["price_date"]:
            value = dt.datetime.combine(update.quote.price_date, dt.time())
        if name in package.names:
            cell(name).value = value
    book.app.calculate()
    values = _book_values(book, package)
    live = _LiveView(package, values)  # the drivers as the analyst has them now, saved or not
    for (sheet, ref), value in sensitivity_cells(live, path.name).items():
        if not _close(values.get((sheet, ref)), value):
            book.sheets[sheet].range(ref).value = value
    result = audit(package, values)
    for (sheet, ref), text in _audit_lines(package, result, now).items():
        book.sheets[sheet].range(ref).value = text
    refreshed = RefreshResult(path, update.quote, len(update.inputs), None, result, update.sample)
    if refreshed.checks_failed:
        raise ChecksFailed(checks_message(path.name, result, written=False))
    return refreshed


def _book_conf(book) -> dict:
    try:
        rows = book.sheets[CONF].range("A1").expand().value
    except Exception:  # noqa: BLE001 - a workbook without the sheet simply has no settings
        return {}
    rows = rows if rows and isinstance(rows[0], list) else [rows]
    return {str(r[0]).strip().upper(): (r[1] if len(r) > 1 else None) for r in rows if r and r[0]}


def main() -> None:
    """The Refresh button: every refusal and every failing check is a message box with one
    sentence, never a Python traceback."""
    import xlwings as xw

    book = xw.Book.caller()
    try:
        result = refresh_book(book)
    except (QuoteError, xlsx.WorkbookError, ChecksFailed) as exc:
        book.app.alert(str(exc), title="Refresh 刷新", mode="critical")
        return
    if result.sample:
        book.app.alert(f"Refreshed with the embedded sample quote ({result.quote.price_date}); set 'Quotes Source' "
                       "on the xlwings.conf sheet for live prices.", title="Refresh 刷新", mode="info")
