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

import dataclasses
import datetime as dt
import hashlib
import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from udfs.constants import ERR_NA
from udfs.errors import ModelError
from udfs.selection import scenario_case
from workbook import calcstate, xlsx
from workbook.files import open_elsewhere
from workbook.layout import (
    AUDIT_ITEMS, AUDIT_SUMMARY, BLUEPRINT, CONF, DRIVERS_PREFIX, SENSITIVITY_COLS, SENSITIVITY_GRID, SENSITIVITY_ROWS, SENSITIVITY_SPEC,
    SOURCE, defined_name, market_name,
)
from workbook.model import SCENARIO_KEY
from workbook.xlcalc import same_stored, same_value, stored_value

from .audit import Audit, audit, sheet_lines
from .modelfile import model_lock, parse_backups_setting, refuse_unwritable, regular_file, replace_model
from .quotes import OVERRIDE_HINTS, Quote, QuoteError, parse_max_age, parse_timeout, provider_for, validate
from .template import TICKER, blueprint, settings_as_values, verify_structure, verify_written_names

MARKET_INPUTS = {key: market_name(key) for key in ("price", "price_date", "fx_rate", "benchmark_level")}
QUOTE_CURRENCY, REPORTING_CURRENCY = market_name("quote_currency"), market_name("reporting_currency")
STAMP_NAME, SOURCE_NAME = market_name("refresh_stamp"), market_name("refresh_source")
SCENARIO_CHOICE = defined_name(DRIVERS_PREFIX, SCENARIO_KEY)  # the drivers sheet's scenario cell
SENSITIVITY_FINGERPRINT = "sensitivity table"  # its name in the refresh record
WRITTEN_NAMES = (*MARKET_INPUTS.values(), STAMP_NAME, SOURCE_NAME)   # the one-cell names a refresh writes through
# xlwings.conf keys (column A of the sheet; matched without regard to case).
CONF_SOURCE, CONF_MAX_AGE, CONF_BACKUPS = "QUOTES SOURCE", "QUOTES MAX AGE DAYS", "BACKUPS"
CONF_ACCEPT_MOVE = "QUOTES ACCEPT MOVE"   # the button's --accept-move: Excel users have no flags
CONF_ACCEPT_OLDER = "QUOTES ACCEPT OLDER"  # the button's --accept-older
CONF_TIMEOUT = "QUOTES TIMEOUT"           # seconds a network quote provider may take to answer
SAMPLE_STAMP = "样本数据 sample data"
# While a batch runs (`refresh_many`, in each of its worker processes): the blueprint, the
# largest part of a model and the same in every model of a template, parsed once per content.
_BATCH_SHEETS: xlsx.SharedSheets | None = None
# Outside a batch, the process that refreshes one model after another (the add-in's, behind the
# Refresh button; a script; the bench) keeps the blueprint of the last templates it met in the
# same way: three quarters of a model's cells, and of its read, the same for every model and every
# refresh of a template. A sheet is reused only for a part of exactly the same bytes, so it is
# what a parse of that part gives (a damaged or edited blueprint is parsed, and judged, anew).
_PROCESS_SHEETS = xlsx.SharedSheets({BLUEPRINT})


def _shared_sheets() -> xlsx.SharedSheets:
    return _BATCH_SHEETS if _BATCH_SHEETS is not None else _PROCESS_SHEETS


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
    recomputed: int | None = None       # formula cells computed by this refresh
    formula_cells: int | None = None    # of how many
    table_recomputed: bool | None = None  # whether the engine's sensitivity table was re-run

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
                   accept_older: bool = False, quotes_timeout: float | None = None) -> _Update:
    """The validated quote and every cell value it puts into the model, by defined name.

    `read(name)` gives the model's current value of a one-cell defined name (or None): the same
    decision for a file and for an open workbook. The model's trading currency, last price and
    last FX are what the quote is judged against.

    The shipped template's first refresh: with no quote source chosen (neither `--quotes` nor
    xlwings.conf 'Quotes Source'), the embedded sample quote is accepted while the model still
    holds that very quote (same price and date), whatever its age; the model is recomputed and
    the source cell says it is sample data. Once the model holds any other price, the sample is
    judged like any quote, so it can never overwrite real data.

    Time only moves forward: a quote dated before the model's current price date is refused
    unless `accept_older` (a correction the analyst means to go back to)."""
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
    _not_older(quote, _number(last_date), accept_older, front)
    source = (f"{SAMPLE_STAMP}: {quote.source} ({quote.price_date}), not a live quote; set 'Quotes Source' in xlwings.conf"
              if sample else f"{quote.source} ({provider.name}, {quote.price_date})")
    inputs = {MARKET_INPUTS["price"]: quote.price, MARKET_INPUTS["price_date"]: xlsx.excel_date(quote.price_date),
              MARKET_INPUTS["fx_rate"]: quote.fx_to_reporting, MARKET_INPUTS["benchmark_level"]: quote.benchmark_level,
              STAMP_NAME: now.isoformat(sep=" "), SOURCE_NAME: source}
    return _Update(quote, sample, inputs)


def _not_older(quote: Quote, model_date: float | None, accept_older: bool, front: str) -> None:
    """Refuse a quote older than the price the model holds (its date an Excel serial, or None)."""
    if accept_older or model_date is None or xlsx.excel_date(quote.price_date) >= model_date:
        return
    held = xlsx.from_excel_date(model_date)
    raise QuoteError(f"quote for {quote.ticker} is dated {quote.price_date}, before the model's current price date {held}: "
                     "refreshing would move the model back in time", OVERRIDE_HINTS[front]["older"], front)


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


def refresh_file(path: str | Path, quotes: str | None = None, as_of: dt.date | None = None,
                 max_age_days: int | None = None, now: dt.datetime | None = None,
                 accept_move: bool = False, accept_older: bool = False,
                 quotes_timeout: float | None = None) -> RefreshResult:
    """Refresh one model file in place. QuoteError or WorkbookError leave the file untouched; a
    model whose checks fail after the refresh is still written (the analyst needs to see it) and
    the result's `status()` says why.

    Each thing is done once: the package is read and parsed once (its blueprint parsed once per
    content in this process, `_PROCESS_SHEETS`), its blueprint rows read once; only
    the formula cells downstream of what changed since the last refresh are recomputed
    (workbook.calcstate), the engine's sensitivity table only when what it reads changed; only
    the sheets whose cells moved are rewritten, every other part copied as stored; and the
    written file is verified from the parts written."""
    given = Path(path)
    real = regular_file(given)  # a symlink's target is refreshed in place; the link stays a link
    now = now or dt.datetime.now().replace(microsecond=0)
    with model_lock(real):
        refuse_unwritable(real, given)
        package = xlsx.read(real, shared=_shared_sheets())
        verify_structure(package)
        verify_written_names(package, WRITTEN_NAMES)
        where = open_elsewhere(given)  # Excel, WPS or LibreOffice would overwrite our refresh when it saves
        if where is not None:
            raise xlsx.WorkbookError(f"{given.name} is {where}: close it there first (or use the workbook's Refresh "
                                     "button in Excel; if no program has it open, delete the lock file)")
        settings = conf(package)
        keep = parse_backups_setting(settings.get(CONF_BACKUPS), given.name)

        def read(name):
            if name not in package.names:
                return None
            return package.value(*package.name_cells(name)[0])

        update = _market_update(read, settings, quotes, as_of, max_age_days, accept_move, now, given.name,
                                accept_older=accept_older, quotes_timeout=quotes_timeout)
        new_inputs = {package.name_cells(name)[0]: value for name, value in update.inputs.items()
                      if name in package.names}
        calc = calcstate.recalculate(package, {**settings_as_values(package), **new_inputs})
        values = calc.values

        def now_holds(sheet, ref):   # a cell as this refresh leaves it: the new quote, formulas recomputed
            key = (sheet, ref)
            return new_inputs[key] if key in new_inputs else values[key] if key in values else package.value(sheet, ref)

        table = sensitivity_update(package, given.name, calc.tracker.record, now_holds)
        values.update(table.cells)
        fingerprints = {}
        if table.fingerprint is not None:
            fingerprints[SENSITIVITY_FINGERPRINT] = (table.fingerprint, " ".join(sorted(table.reads)))
        result = audit(package, values)
        new_inputs.update(_audit_lines(package, result, now))

        changes: dict = {}
        # a formula cell not computed this time holds its cached value as read: nothing to write
        candidates = values if calc.computed is None else {key: values[key] for key in (*calc.computed, *table.cells)
                                                            if key in values}
        for key, value in list(new_inputs.items()) + list(candidates.items()):
            if key in new_inputs or not same_stored(stored_value(package, *key), value):
                changes.setdefault(key[0], {})[key[1]] = value
        written = _rewritten(package, changes)
        record = calc.tracker.after(written, changes, fingerprints)
        replaced, added = calcstate.placed(package, record)
        replaced.update({written.sheets[s].path: written.sheets[s].data() for s in changes})
        parts = {}

        def write(temp):
            parts["written"] = xlsx.write(package, replaced, temp, added=added)

        def verify(temp):
            contents = xlsx.verify_written(temp, parts["written"], set(replaced) | set(added))
            if any(contents[name] != data for name, data in {**replaced, **added}.items()):
                raise xlsx.WorkbookError(f"{given.name}: refresh verification failed; the original is untouched")

        backup = replace_model(real, write, verify, keep=keep, when=now)
    return RefreshResult(given, update.quote, sum(len(c) for c in changes.values()), backup, result, update.sample,
                         calc.recomputed, calc.formula_cells, table.recomputed)


def _rewritten(package: xlsx.Package, changes: dict) -> xlsx.Package:
    """The package as it will be written: each sheet in `changes` ({sheet: {ref: value}})
    rewritten, its new cells parsed back from the bytes produced (`xlsx.rewritten_sheet`), and
    every changed cell confirmed to read back as the value meant, before anything is written."""
    sheets = dict(package.sheets)
    for name, cells in changes.items():
        sheets[name] = xlsx.rewritten_sheet(package.sheets[name], cells)
    written = dataclasses.replace(package, sheets=sheets, memo={})
    for name, cells in changes.items():
        for ref, value in cells.items():
            formula = written.sheets[name].cells.get(ref)
            got = stored_value(written, name, ref) if formula is not None and formula.formula is not None \
                else written.value(name, ref)
            if not (same_stored(got, value) or same_value(got, value)) and not (value is None and got in (None, "")):
                raise xlsx.WorkbookError(f"refresh verification failed at {name}!{ref}; the original is untouched")
    return written


def _close(stored, value) -> bool:
    if isinstance(stored, float) and isinstance(value, float):
        return abs(stored - value) <= 1e-12 * max(abs(stored), abs(value))
    return same_value(stored, value)


def sensitivity_cells(package: xlsx.Package, model_name: str) -> dict:
    """The engine-run sensitivity table (敏感性: EPS by two drivers) recomputed from the
    workbook's current drivers and axis values, the whole model re-run per point. A workbook
    whose company cannot be rebuilt shows #N/A there rather than last time's numbers."""
    return _sensitivity_table(package, model_name, package.value)[0]


def _sensitivity_table(package: xlsx.Package, model_name: str, read, quote_keys=frozenset()) -> tuple[dict, set | None]:
    """The table's cells, and the model's lines it reads (`workbook.model.sensitivity_inputs`;
    None when it could not be computed and shows #N/A). Its axes and the scenario chosen are
    each cell as `read(sheet, ref)` gives it (a refresh: as recomputed, an axis cell may be a
    formula)."""
    from workbook.model import driver_sensitivity, sensitivity_inputs

    from .source import current_company

    if SENSITIVITY_GRID not in package.names:
        return {}, None
    grid = package.name_cells(SENSITIVITY_GRID)
    rows, cols = package.name_cells(SENSITIVITY_ROWS), package.name_cells(SENSITIVITY_COLS)
    not_available = {cell: ERR_NA for cell in grid}
    spec = package.names.get(SENSITIVITY_SPEC, "").strip().strip('"').split("|")
    xs, ys = [_axis_value(read(*c)) for c in rows], [_axis_value(read(*c)) for c in cols]
    if len(spec) != 4 or None in xs or None in ys:  # a damaged table, an axis cell cleared or not a number
        return not_available, None
    a, b, line, year = spec
    try:
        company = current_company(package, model_name)
        chosen = read(*package.name_cells(SCENARIO_CHOICE)[0]) if SCENARIO_CHOICE in package.names else None
        scenario = scenario_case(chosen)  # read as every reader reads the scenario cell (udfs.selection)
        values = driver_sensitivity(company, a, xs, b, ys, line, year, scenario=scenario)
        reads = sensitivity_inputs(company, a, b, line, scenario, quote_keys)
    except ModelError:  # a company that cannot be rebuilt
        return not_available, None
    return {cell: values[i // len(ys)][i % len(ys)] for i, cell in enumerate(grid)}, reads


@dataclass
class SensitivityTable:
    """What a refresh does to the engine's table: `cells` to write (none when the table stands),
    the lines it reads (`reads`, None when unknown), whether it was re-run, and the fingerprint
    of what it now stands on (None when unknown), for the refresh record."""
    cells: dict
    reads: set | None
    recomputed: bool
    fingerprint: str | None = None


def sensitivity_update(package: xlsx.Package, model_name: str, record: calcstate.Record | None,
                       read) -> SensitivityTable:
    """The table re-run only when something it reads changed since the last refresh: its axes,
    its driver pair and line, the scenario chosen, the company files the model carries, the
    values of the inputs of the lines it reads (with the refresh's new quote), or its own cells.
    The last refresh's record holds the fingerprint of all that and the lines it read.

    `read(sheet, ref)` is each cell as this refresh leaves it (new quote in, formula cells
    recomputed): the one reading both the comparison with the record and the fingerprint stored
    are taken from, so a formula-driven axis cell (or scenario cell) counts by the value it now
    computes to, never by a cached value an edit left stale."""
    if SENSITIVITY_GRID not in package.names:
        return SensitivityTable({}, None, False)
    stored = record.fingerprints.get(SENSITIVITY_FINGERPRINT) if record is not None else None
    if stored is not None:
        reads = set(stored[1].split())
        fingerprint = table_fingerprint(package, reads, read)
        if fingerprint == stored[0]:
            return SensitivityTable({}, reads, False, fingerprint)
    cells, reads = _sensitivity_table(package, model_name, read, frozenset(MARKET_INPUTS))
    # written only where a value moved beyond the 15-16 digits a cell stores
    cells = {cell: value for cell, value in cells.items() if not _close(read(*cell), value)}
    if reads is None:
        return SensitivityTable(cells, None, True)
    # the table's own cells are part of what it stands on: taken as this refresh writes them
    written = lambda sheet, ref: cells[(sheet, ref)] if (sheet, ref) in cells else read(sheet, ref)
    return SensitivityTable(cells, reads, True, table_fingerprint(package, reads, written))


def table_fingerprint(package: xlsx.Package, reads: set, read) -> str:
    """A digest of everything the sensitivity table is computed from, each cell as `read(sheet,
    ref)` gives it: the table's definition and axes, its own cells, the scenario chosen, the
    company and layout files stored in the model, and every input of the lines in `reads`."""
    digest = hashlib.blake2b(digest_size=16)

    def put(*parts):
        digest.update("\x1f".join(map(repr, parts)).encode("utf-8", "surrogatepass") + b"\x1e")
    put(package.names.get(SENSITIVITY_SPEC))
    for name in (SENSITIVITY_ROWS, SENSITIVITY_COLS, SENSITIVITY_GRID, SCENARIO_CHOICE):
        if name in package.names:
            for cell in package.name_cells(name):
                put(cell, read(*cell))
    if SOURCE in package.sheets:
        for ref in sorted(package.sheets[SOURCE].cells, key=xlsx.split_ref):
            put(ref, package.value(SOURCE, ref))
    for row in blueprint(package):
        if row["kind"] == "input" and row["key"] in reads:
            put(row["key"], row["year"], read(row["sheet"], row["cell"]))
    return digest.hexdigest()


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


def model_files(target: Path) -> list[Path]:
    """The model files a path names: the file itself, or every .xlsm in a folder (no backups or lock files)."""
    if target.is_dir():
        return sorted(p for p in target.glob("*.xlsm") if not p.name.startswith(("~$", ".")))
    return [target]


class Outcome(NamedTuple):
    """One file of a batch: `error` is the one-line reason when it failed; `written` says whether
    the file was nonetheless refreshed (its checks fail after the refresh). `worker` and
    `peak_kb` say which process did it and that process's peak resident memory so far."""
    path: Path
    error: str | None
    changed: int
    written: bool = False
    backup: Path | None = None
    worker: int | None = None
    peak_kb: int | None = None


def peak_memory_kb() -> int | None:
    """This process's peak resident memory (VmHWM: its own high-water mark, pages shared with the
    parent that forked it included), in kB; None where /proc does not say."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _refresh_one(args) -> Outcome:
    path, quotes, as_of, max_age_days, now, accept_move, accept_older, quotes_timeout = args
    try:
        result = refresh_file(path, quotes, as_of, max_age_days, now, accept_move, accept_older, quotes_timeout)
        outcome = Outcome(path, result.status(), result.changed_cells, True, result.backup)
    except (QuoteError, xlsx.WorkbookError) as exc:
        outcome = Outcome(path, str(exc), 0)
    except OSError as exc:  # disk full, permissions: this file fails, the batch goes on
        outcome = Outcome(path, f"{path.name}: {exc.strerror or exc}", 0)
    except RecursionError:
        outcome = Outcome(path, f"{path.name}: formulas nested too deeply to evaluate headless", 0)
    except Exception as exc:  # noqa: BLE001 - one unforeseen file must not stop the batch; it is reported
        outcome = Outcome(path, f"{path.name}: cannot refresh ({type(exc).__name__}: {str(exc)[:200]})", 0)
    return outcome._replace(worker=os.getpid(), peak_kb=peak_memory_kb())


def _start_batch() -> None:
    """Begin a batch in this process: sheets of template content are shared between its files."""
    global _BATCH_SHEETS
    _BATCH_SHEETS = xlsx.SharedSheets({BLUEPRINT})


def _end_batch() -> None:
    """End a batch in this process: what it shared is released, and so is what the process had
    kept (a batch of many templates' models leaves no parsed sheet behind; the next refresh
    parses its blueprint again)."""
    global _BATCH_SHEETS, _PROCESS_SHEETS
    _BATCH_SHEETS = None
    _PROCESS_SHEETS = xlsx.SharedSheets({BLUEPRINT})


def worker_count(requested: int, files: int) -> int:
    """Processes for a batch: never more than the cores, nor than the files."""
    return max(1, min(requested, os.cpu_count() or 1, files))


def refresh_many(paths: list[Path], quotes=None, as_of=None, max_age_days=None, now=None, workers: int = 2,
                 progress=None, accept_move: bool = False, accept_older: bool = False,
                 quotes_timeout: float | None = None) -> list[Outcome]:
    """Refresh several files on up to `workers` processes (never more than the cores); one
    Outcome per file, in the order given. `progress(done, total, path, error, changed)` is told
    of each file as it finishes. A file that fails is reported and the others go on; a worker
    that dies (killed, out of memory) fails the files it had, not the batch."""
    jobs = [(p, quotes, as_of, max_age_days, now, accept_move, accept_older, quotes_timeout) for p in paths]
    workers = worker_count(workers, len(jobs))
    done: dict = {}

    def finished(index: int, outcome: Outcome) -> None:
        done[index] = outcome
        if progress:
            progress(len(done), len(jobs), *outcome[:3])

    if workers <= 1:
        _start_batch()
        try:
            for index, job in enumerate(jobs):
                finished(index, _refresh_one(job))
        finally:
            _end_batch()
        return [done[i] for i in range(len(jobs))]
    from . import source  # noqa: F401 - imported once here, not by each worker at its first file
    try:
        with ProcessPoolExecutor(max_workers=workers, initializer=_start_batch) as pool:
            futures = {pool.submit(_refresh_one, job): index for index, job in enumerate(jobs)}
            for future in as_completed(futures):
                finished(futures[future], future.result())
    except BrokenProcessPool:  # a worker died: report the rest, don't lose them
        for index, path in enumerate(paths):
            if index not in done:
                finished(index, Outcome(path, f"{path.name}: the refresh process died; the file is as it was or "
                                              "fully refreshed", 0))
    return [done[i] for i in range(len(jobs))]


@dataclass
class BatchSummary:
    """What a batch did: how many refreshed, refused (grouped by reason) and written with failing
    checks, and the peak memory of each worker process."""
    refreshed: int
    refused: dict           # reason -> [file names]
    failing: list           # (file name, why)
    peak_kb_by_worker: dict  # pid -> kB

    @classmethod
    def of(cls, outcomes: list[Outcome]) -> "BatchSummary":
        refused: dict = {}
        failing = []
        peaks: dict = {}
        for o in outcomes:
            if o.worker is not None and o.peak_kb is not None:
                peaks[o.worker] = max(peaks.get(o.worker, 0), o.peak_kb)
            if o.error and o.written:
                failing.append((o.path.name, _without_name(o.error, o.path.name)))
            elif o.error:
                refused.setdefault(_without_name(o.error, o.path.name), []).append(o.path.name)
        refreshed = sum(1 for o in outcomes if not o.error)
        return cls(refreshed, refused, failing, peaks)

    def lines(self, shown: int = 5) -> list[str]:
        """The summary as printed after a batch: refusals by reason, failing checks, memory."""
        out = []
        for reason, names in sorted(self.refused.items(), key=lambda item: -len(item[1])):
            more = f" and {len(names) - shown} more" if len(names) > shown else ""
            out.append(f"refused, {len(names)} file{'s' if len(names) > 1 else ''}: {reason} "
                       f"({', '.join(names[:shown])}{more})")
        for name, why in self.failing[:shown]:
            out.append(f"written, checks fail: {name}: {why}")
        if len(self.failing) > shown:
            out.append(f"written, checks fail: {len(self.failing) - shown} more")
        if self.peak_kb_by_worker:
            peaks = ", ".join(f"{kb / 1024:.0f} MB" for kb in sorted(self.peak_kb_by_worker.values(), reverse=True))
            out.append(f"peak memory per worker process: {peaks}")
        return out


def _without_name(message: str, name: str) -> str:
    """A file's message without the file name it starts with, so equal reasons group."""
    return message[len(name) + 2:] if message.startswith(name + ": ") else message


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
                 accept_move: bool = False, accept_older: bool = False) -> RefreshResult:
    """Refresh an open xlwings Book the way `refresh_file` refreshes a file: the structure check
    (on the workbook as last saved, whose formulas and blueprint it reads), the same quote
    validation, stamps and audit block. A refused quote raises QuoteError before anything is
    written, with the xlwings.conf keys to change; failing checks after the refresh raise
    ChecksFailed naming the cause. `book` only needs xlwings' Book surface (`fullname`,
    `app.calculate()`, `names[NAME].refers_to_range.value`, `sheets[NAME].range(...)`)."""
    path = Path(book.fullname)
    if not path.is_absolute():  # a workbook never saved: Excel gives just its caption, e.g. "Book1"
        raise xlsx.WorkbookError(f"{path.name}: save the workbook first; refresh checks its structure on the saved file")
    package = xlsx.read(regular_file(path), shared=_shared_sheets())
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
    accept_older = accept_older or _truthy(settings.get(CONF_ACCEPT_OLDER))
    try:
        update = _market_update(read, settings, quotes, as_of, None, accept_move, now, path.name, front="excel",
                                accept_older=accept_older)
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
