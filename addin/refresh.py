"""Refresh: new market inputs in, every model value recomputed, checks re-run, time and source
stamped. One logic, two runtimes:

- `main()` is what the workbook's Refresh button runs through xlwings (RunPython, UDF server):
  it writes the quote into the open workbook and lets Excel recalculate.
- `refresh_file()` does the same to a file, headless (`python -m addin refresh MODEL.xlsm`). It is
  surgical: only the market-input cells, the cached values of formula cells and the stamp change;
  the VBA project, the button, styles, names, validation and every analyst input keep their bytes.
  Values are recomputed from the file's own cells and formulas, so changed drivers, numbers typed
  over formulas and edited formulas are all honoured. The new file is written beside the old one,
  checked, the old one kept as MODEL.xlsm.bak, and the new one renamed into place: a crash or a
  kill at any moment leaves the original intact.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from workbook import xlsx
from workbook.xlcalc import evaluate

from .quotes import DEFAULT_MAX_AGE_DAYS, Quote, QuoteError, provider_for, validate
from .template import TICKER, verify_structure

MARKET_INPUTS = {"price": "MKT_price", "price_date": "MKT_price_date", "fx_rate": "MKT_fx_rate",
                 "benchmark_level": "MKT_benchmark_level"}
STAMP_NAME, SOURCE_NAME = "MKT_refresh_stamp", "MKT_refresh_source"
AUDIT_SUMMARY, AUDIT_ITEMS = "AUD_summary", "AUD_items"
CONF_SHEET = "xlwings.conf"


@dataclass
class RefreshResult:
    path: Path
    quote: Quote
    changed_cells: int
    backup: Path


def conf(package: xlsx.Package) -> dict:
    """The workbook's xlwings.conf sheet as {key: value}."""
    sheet = package.sheets.get(CONF_SHEET)
    if sheet is None:
        return {}
    out = {}
    for ref in sheet.cells:
        if ref.startswith("A"):
            key = package.value(CONF_SHEET, ref)
            if isinstance(key, str):
                out[key.strip().upper()] = package.value(CONF_SHEET, "B" + ref[1:])
    return out


def _locked(path: Path) -> bool:
    return (path.parent / ("~$" + path.name)).exists()


def refresh_file(path: str | Path, quotes: str | None = None, as_of: dt.date | None = None,
                 max_age_days: int | None = None, now: dt.datetime | None = None) -> RefreshResult:
    """Refresh one model file in place; QuoteError or WorkbookError (file untouched) otherwise."""
    path = Path(path)
    package = xlsx.read(path)
    verify_structure(package)
    if _locked(path):
        raise xlsx.WorkbookError(f"{path.name} is open in Excel (lock file ~${path.name}); close it, or use its Refresh button")
    settings = conf(package)
    provider = provider_for(quotes or settings.get("QUOTES SOURCE"))
    limit = max_age_days if max_age_days is not None else _max_age(settings, path.name)
    (ticker_cell,) = package.name_cells(TICKER)
    ticker = package.value(*ticker_cell)
    if not isinstance(ticker, str) or not ticker.strip():
        raise xlsx.WorkbookError(f"{path.name}: the ticker cell {ticker_cell[0]}!{ticker_cell[1]} is empty")
    quote = validate(provider.quote(ticker), ticker, as_of or dt.date.today(), limit)

    now = now or dt.datetime.now().replace(microsecond=0)
    new_inputs = {
        package.name_cells(MARKET_INPUTS["price"])[0]: quote.price,
        package.name_cells(MARKET_INPUTS["price_date"])[0]: xlsx.excel_date(quote.price_date),
        package.name_cells(MARKET_INPUTS["fx_rate"])[0]: quote.fx_to_reporting,
        package.name_cells(STAMP_NAME)[0]: now.isoformat(sep=" "),
        package.name_cells(SOURCE_NAME)[0]: f"{quote.source} ({provider.name}, {quote.price_date})",
    }
    if MARKET_INPUTS["benchmark_level"] in package.names:
        new_inputs[package.name_cells(MARKET_INPUTS["benchmark_level"])[0]] = quote.benchmark_level
    values = evaluate(package, new_inputs)
    if AUDIT_SUMMARY in package.names:
        new_inputs.update(_audit_cells(package, values, now))
    changes: dict = {}
    for key, value in list(new_inputs.items()) + list(values.items()):
        if package.value(*key) != value or key in new_inputs:
            changes.setdefault(key[0], {})[key[1]] = value
    replaced = {package.sheets[s].path: xlsx.rewrite_sheet(package.sheets[s], cells).encode("utf-8")
                for s, cells in changes.items()}
    backup = path.with_name(path.name + ".bak")
    _replace_atomically(path, package, replaced, changes, backup)
    return RefreshResult(path, quote, sum(len(c) for c in changes.values()), backup)


def _max_age(settings: dict, where: str) -> int:
    value = settings.get("QUOTES MAX AGE DAYS")
    if value in (None, ""):
        return DEFAULT_MAX_AGE_DAYS
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise xlsx.WorkbookError(f"{where}: xlwings.conf 'Quotes Max Age Days' is {value!r}, not a number of days") from None


def _audit_cells(package: xlsx.Package, values: dict, now: dt.datetime) -> dict:
    """The 校验 sheet's audit block, filled with the same audit `check` prints."""
    from .audit import audit, sheet_lines

    items_cells = package.name_cells(AUDIT_ITEMS)
    summary, items = sheet_lines(audit(package, values), now.isoformat(sep=" ", timespec="minutes"), len(items_cells))
    cells = {package.name_cells(AUDIT_SUMMARY)[0]: summary}
    for i, cell in enumerate(items_cells):
        cells[cell] = items[i] if i < len(items) else None
    return cells


def _replace_atomically(path: Path, package: xlsx.Package, replaced: dict, changes: dict, backup: Path) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".refresh.tmp", dir=path.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        xlsx.write(package, replaced, temp)
        _verify(temp, package, replaced, changes)
        with open(temp, "rb") as fh:
            os.fsync(fh.fileno())
        backup_temp = backup.with_name(backup.name + ".tmp")
        shutil.copy2(path, backup_temp)
        os.replace(backup_temp, backup)
        os.replace(temp, path)
    except PermissionError:
        raise xlsx.WorkbookError(f"{path.name}: cannot write beside it (read-only folder or file open elsewhere)") from None
    finally:
        if temp.exists():
            temp.unlink()


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
            if got != value and not (value is None and got in (None, "")):
                raise xlsx.WorkbookError(f"refresh verification failed at {sheet}!{ref}; the original is untouched")


def model_files(target: Path) -> list[Path]:
    """The model files a path names: the file itself, or every .xlsm in a folder (no backups or lock files)."""
    if target.is_dir():
        return sorted(p for p in target.glob("*.xlsm") if not p.name.startswith(("~$", ".")))
    return [target]


def _refresh_one(args):
    path, quotes, as_of, max_age_days, now = args
    try:
        result = refresh_file(path, quotes, as_of, max_age_days, now)
        return path, None, result.changed_cells
    except (QuoteError, xlsx.WorkbookError) as exc:
        return path, str(exc), 0
    except OSError as exc:  # disk full, permissions: this file fails, the batch goes on
        return path, f"{path.name}: {exc.strerror or exc}", 0


def refresh_many(paths: list[Path], quotes=None, as_of=None, max_age_days=None, now=None, workers: int = 2, progress=None):
    """Refresh several files on `workers` processes; yields (path, error or None, changed cells)."""
    jobs = [(p, quotes, as_of, max_age_days, now) for p in paths]
    done = []

    def collect(results):
        for i, outcome in enumerate(results, start=1):
            if progress:
                progress(i, len(jobs), *outcome)
            done.append(outcome)

    if workers <= 1 or len(jobs) == 1:
        collect(map(_refresh_one, jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            collect(pool.map(_refresh_one, jobs, chunksize=max(1, len(jobs) // (workers * 4))))
    return done


# ------------------------------------------------------------------------------------------------
# In Excel: the Refresh button.
# ------------------------------------------------------------------------------------------------
def refresh_book(book, quotes: str | None = None, as_of: dt.date | None = None, now: dt.datetime | None = None) -> Quote:
    """Refresh an open xlwings Book. `book` only needs xlwings' Book surface (`app.calculate()`,
    `names[NAME].refers_to_range.value`, `sheets[NAME].range(...)`), so tests can pass a stand-in.
    A refused quote raises before anything is written: xlwings shows the message, the model is untouched."""
    def cell(name):
        return book.names[name].refers_to_range

    settings = _book_conf(book)
    provider = provider_for(quotes or settings.get("QUOTES SOURCE"))
    limit = int(settings.get("QUOTES MAX AGE DAYS") or DEFAULT_MAX_AGE_DAYS)
    ticker = cell(TICKER).value
    quote = validate(provider.quote(str(ticker or "")), str(ticker or ""), as_of or dt.date.today(), limit)
    now = now or dt.datetime.now().replace(microsecond=0)
    cell(MARKET_INPUTS["price"]).value = quote.price
    cell(MARKET_INPUTS["price_date"]).value = dt.datetime(quote.price_date.year, quote.price_date.month, quote.price_date.day)
    cell(MARKET_INPUTS["fx_rate"]).value = quote.fx_to_reporting
    cell(MARKET_INPUTS["benchmark_level"]).value = quote.benchmark_level
    book.app.calculate()
    cell(STAMP_NAME).value = now.isoformat(sep=" ")
    cell(SOURCE_NAME).value = f"{quote.source} ({provider.name}, {quote.price_date})"
    return quote


def _book_conf(book) -> dict:
    try:
        rows = book.sheets[CONF_SHEET].range("A1").expand().value
    except Exception:  # noqa: BLE001 - a workbook without the sheet simply has no settings
        return {}
    rows = rows if rows and isinstance(rows[0], list) else [rows]
    return {str(r[0]).strip().upper(): (r[1] if len(r) > 1 else None) for r in rows if r and r[0]}


def main() -> None:
    import xlwings as xw

    refresh_book(xw.Book.caller())
