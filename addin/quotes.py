"""Market quotes for refresh: a small provider interface, the local-file provider and `validate`.

A provider answers `quote(ticker)`; refresh never cares where the numbers came from. A live feed
is one more class with that method, registered in PROVIDERS under a scheme name and chosen with
`--quotes SCHEME:WHERE` or the workbook's xlwings.conf ("Quotes Source"). The live feeds
(`akshare:`, `yfinance:`) live in `addin/quotes_live.py` and register themselves here.

A quotes file is what an analyst's Excel saves: CSV in UTF-8 (with or without BOM), GBK/GB18030
or UTF-16 ("Unicode text"), separated by commas, semicolons or tabs, or an .xlsx sheet. Its
columns are COLUMNS (header row, any order, any case); one row per ticker.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from udfs.errors import QuoteSourceError
from workbook.currencies import fx_range_problem, normalise_currency
from workbook.files import UndecodableText, decode_text, read_regular

DEFAULT_QUOTES = Path(__file__).resolve().parents[1] / "workbook" / "data" / "quotes.csv"
DEFAULT_MAX_AGE_DAYS = 5
MAX_AGE_LIMIT_DAYS = 3650  # a "max age" beyond ten years is a typo, not a policy
DEFAULT_TIMEOUT_SECONDS = 20  # a network provider's answer to one request; a stalled connection never hangs a refresh
MAX_TIMEOUT_SECONDS = 600
MAX_QUOTES_BYTES = 5_000_000
MAX_UNZIPPED_BYTES = 50_000_000  # an .xlsx quotes sheet expanding beyond this is a zip bomb
MAX_ROWS = 100_000
COLUMNS = ("ticker", "price", "currency", "price_date", "fx_to_reporting", "benchmark_level", "source")
REQUIRED = ("ticker", "price", "price_date", "fx_to_reporting")
SEPARATORS = (",", ";", "\t")
MAX_FIELD_CHARS = {"source": 200}  # the source is stamped on the cover; a sane note fits in 200
MAX_OTHER_FIELD_CHARS = 64
# The largest value a field can plausibly hold: beyond it the number is a unit or typing error.
MAGNITUDE_LIMITS = {"price": 1e7, "fx_to_reporting": 1e5, "benchmark_level": 1e7}
FX_FLOOR = 1e-6

# Currency names and sane FX ranges are data (workbook/data/currencies.toml), judged by
# workbook.currencies for every door an FX rate comes through.
# Below this log-distance between the model's FX and its inverse (rates near 1) an inverted
# rate cannot be told from a real one, so no inversion verdict is given.
INVERSION_MIN_LOG_GAP = 0.05

# How the analyst overrides a refusal: on the command line, or in the workbook (the button).
OVERRIDE_HINTS = {
    "cli": {"max_age": "use a fresher quote, or --max-age-days",
            "move": "pass --accept-move if the move is real",
            "older": "use a quote at least as recent, or pass --accept-older to go back to it"},
    "excel": {"max_age": "point 'Quotes Source' at a fresher quote, or raise 'Quotes Max Age Days', "
                         "on the xlwings.conf sheet",
              "move": "set 'Quotes Accept Move' to TRUE on the xlwings.conf sheet if the move is real",
              "older": "point 'Quotes Source' at a quote at least as recent, or set 'Quotes Accept Older' to TRUE on "
                       "the xlwings.conf sheet to go back to it"},
}

# First bytes of files people pass by mistake: what to call them, and what to do instead.
SAVE_AS = "save it as .xlsx or CSV"
MAGIC = (
    (b"%PDF", "a PDF document", ""),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Excel 97-2003 workbook (.xls) or other old Office file", SAVE_AS),
    (b"\x1f\x8b", "a gzip archive", ""),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", ""),
    (b"Rar!", "a RAR archive", ""),
    (b"\x89PNG", "a PNG image", ""),
    (b"\xff\xd8\xff", "a JPEG image", ""),
    (b"GIF8", "a GIF image", ""),
    (b"{\\rtf", "an RTF document", ""),
)
# Parts that tell which kind of zip package a file is: (part, kind, advice that holds wherever the
# analyst works, advice only the command line's --quotes can mean).
ZIP_KINDS = (
    ("xl/vbaProject.bin", "an Excel macro-enabled workbook (.xlsm), such as a model", "the model is the file to refresh",
     "--quotes takes a CSV or .xlsx sheet"),
    ("xl/workbook.bin", "an Excel binary workbook (.xlsb)", SAVE_AS, ""),
    ("word/document.xml", "a Word document", "", ""),
    ("ppt/presentation.xml", "a PowerPoint presentation", "", ""),
    ("content.xml", "an OpenDocument file (.ods/.odt)", SAVE_AS, ""),
)


class QuoteError(QuoteSourceError):
    """A quote refresh must refuse; the message is the one line the analyst sees: the `reason`,
    then the `fix` when the fix depends on where the analyst works. `front` says which one it
    was written for ("cli": a flag, "excel": a setting on the xlwings.conf sheet), so the other
    front can give its own instead of reading the words."""

    def __init__(self, reason: str, fix: str = "", front: str | None = None):
        super().__init__(f"{reason}; {fix}" if fix else reason)
        self.reason, self.fix, self.front = reason, fix, front


@dataclass(frozen=True)
class Quote:
    ticker: str
    price: float
    currency: str
    price_date: dt.date
    fx_to_reporting: float
    benchmark_level: float | None
    source: str


class QuoteProvider(Protocol):
    name: str

    def quote(self, ticker: str) -> Quote: ...


# ------------------------------------------------------------------------------------------------
# Fields
# ------------------------------------------------------------------------------------------------
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(?:\.\d*)?|\.\d+)([eE][+-]?\d+)?")   # one way to read each digit: no backtracking
# Thousands groups with one separator used throughout: "25,000", "25 000", "1'234'567.5".
_GROUPED_NUMBER = re.compile(r"([+-]?\d{1,3})(?P<sep>[, \u00a0\u202f'])\d{3}((?P=sep)\d{3})*(\.\d+)?")
_TIME_SUFFIX = re.compile(r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")
_YEAR_FIRST = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})")
_YEAR_FIRST_CJK = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
_DAY_FIRST = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4})")


def _shown(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def parse_number(value, what: str, where: str) -> float:
    """A finite number from a cell or CSV field. Text may carry thousands separators (',', space,
    no-break space or apostrophe) between groups of exactly three digits, one kind per number; the
    decimal mark is a point. Anything else (a decimal comma, a currency sign, '%') is refused."""
    if isinstance(value, bool):
        raise QuoteError(f"{where}: {what} {value!r} is not a number")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value or "").strip()
        if _PLAIN_NUMBER.fullmatch(text):
            number = float(text)
        elif _GROUPED_NUMBER.fullmatch(text):
            number = float(re.sub(r"[, \u00a0\u202f']", "", text))
        else:
            hint = "; the decimal mark is a point" if re.fullmatch(r"[+-]?\d+,\d+", text) else ""
            raise QuoteError(f"{where}: {what} {_shown(text)} is not a number{hint}")
    if not math.isfinite(number):
        raise QuoteError(f"{where}: {what} {_shown(value)} is not a finite number")
    return number


def parse_date(value, what: str, where: str) -> dt.date:
    """A calendar date from a cell or CSV field.

    The rule, with no guessing: year first is always year-month-day (`2026-11-29`, `2026/11/29`,
    `2026.11.29`, `2026年11月29日`); a date ending in the year is day-first (`29/11/2026`,
    `29-11-2026`), and is accepted only when it cannot be read the other way round: the day is
    above 12, or day and month are equal. `03/04/2026` (3 April or March 4?) is refused by name.
    A time after the date (`2026/11/29 0:00`, as Excel writes date cells) is ignored."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value or "").strip()
    core = _TIME_SUFFIX.sub("", text)
    iso_hint = "write it as YYYY-MM-DD, e.g. 2026-11-29"
    try:
        if m := _YEAR_FIRST.fullmatch(core) or _YEAR_FIRST_CJK.fullmatch(core):
            year, month, day = (int(g) for g in m.groups() if g.isdigit())
            return dt.date(year, month, day)
        if m := _DAY_FIRST.fullmatch(core):
            first, _, second, year = m.groups()
            day, month = int(first), int(second)
            if day <= 12 and month <= 12 and day != month:
                raise QuoteError(f"{where}: {what} {_shown(text)} is ambiguous (day-first or month-first); "
                                 f"{iso_hint}")
            return dt.date(int(year), month, day)
    except ValueError as exc:
        if isinstance(exc, QuoteError):
            raise
        raise QuoteError(f"{where}: {what} {_shown(text)} is not a calendar date ({exc}); {iso_hint}") from None
    raise QuoteError(f"{where}: {what} {_shown(text)} is not a date like 2026-11-29 or 29/11/2026; {iso_hint}")


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a ticker such as 600519 typed as a number in a sheet
    return str(value).strip()


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------
def _read_regular_file(path: Path) -> bytes:
    """The file's bytes, if it is a regular file of sane size (never a FIFO, device or directory)."""
    return read_regular(path, MAX_QUOTES_BYTES, QuoteError, "quotes file")


def _zip_kind(raw: bytes, name: str) -> tuple[str, str, str] | None:
    """None for an .xlsx sheet we may read; otherwise (what the zip is, advice, command-line advice),
    for the refusal."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError):
        return "a damaged zip archive (or a damaged .xlsx)", "open it in Excel and save it again", ""
    names = {i.filename for i in infos}
    for part, kind, advice, cli_fix in ZIP_KINDS:
        if part in names:
            return kind, advice, cli_fix
    if "xl/workbook.xml" not in names:
        return "a zip archive", "", ""
    if sum(i.file_size for i in infos) > MAX_UNZIPPED_BYTES:
        raise QuoteError(f"{name}: an .xlsx that expands beyond {MAX_UNZIPPED_BYTES // 1_000_000} MB; "
                         "not a quotes sheet")
    return None


# What each way a file fails to be text means for a quotes file (workbook.files.decode_text).
_UNDECODABLE_ADVICE = {"mark": "; save it again as CSV UTF-8", "binary": " nor an .xlsx sheet; not a quotes file",
                       "mixed": "; save the whole file as CSV UTF-8", "unknown": "; save the quotes file as CSV UTF-8",
                       "other": "; save the quotes file as CSV UTF-8"}


def _decode(raw: bytes, name: str) -> str:
    """Text of a CSV file (see workbook.files.decode_text: BOM, UTF-8, GB18030, UTF-16)."""
    try:
        return decode_text(raw)
    except UndecodableText as exc:
        raise QuoteError(f"{name}: {exc}{_UNDECODABLE_ADVICE[exc.kind]}") from None


def _identify(raw: bytes, name: str) -> str:
    """'csv' or 'xlsx'; QuoteError naming what the file is when it is neither."""
    def refuse(kind: str, advice: str, cli_fix: str = ""):
        reason = f"{name}: {kind}, not a quotes file" + (f"; {advice}" if advice else "")
        raise QuoteError(reason, cli_fix, "cli" if cli_fix else None)  # the workbook's refresh gives its own fix

    for magic, kind, advice in MAGIC:
        if raw.startswith(magic):
            refuse(kind, advice)
    if raw.startswith(b"PK\x03\x04") or raw.startswith(b"PK\x05\x06"):
        found = _zip_kind(raw, name)
        if found:
            refuse(*found)
        return "xlsx"
    if re.match(rb"\s*<(!doctype html|html)", raw[:200], re.IGNORECASE):
        raise QuoteError(f"{name}: an HTML page, not a quotes file")
    return "csv"


def _header_map(cells: list, name: str) -> dict[int, str]:
    """Column index -> known column name; unknown columns are ignored, duplicates refused."""
    found: dict[int, str] = {}
    for i, cell in enumerate(cells):
        key = _text(cell).lstrip("\ufeff").lower()
        if key in COLUMNS:
            if key in found.values():
                raise QuoteError(f"{name}: column {key!r} appears twice in the header")
            found[i] = key
    missing = [c for c in REQUIRED if c not in found.values()]
    if missing:
        shown = _shown(" | ".join(_text(c) for c in cells), 60)
        raise QuoteError(f"{name}: missing column {missing[0]!r} in the header {shown}; expected "
                         f"{', '.join(COLUMNS)}, separated by commas, semicolons or tabs")
    return found


def _records(rows, name: str) -> list[tuple[int, dict]]:
    """(line, {column: value}) for every non-blank row after the header."""
    rows = iter(rows)
    for line, header in rows:
        if any(_text(c) for c in header):
            break
    else:
        raise QuoteError(f"{name}: empty; expected a header row {', '.join(COLUMNS)}")
    columns = _header_map(list(header), name)
    records = []
    for line, cells in rows:
        if not any(_text(c) for c in cells):
            continue
        if len(records) >= MAX_ROWS:
            raise QuoteError(f"{name}: more than {MAX_ROWS:,} rows; not a quotes file")
        record = {key: (cells[i] if i < len(cells) else None) for i, key in columns.items()}
        for key, value in record.items():
            limit = MAX_FIELD_CHARS.get(key, MAX_OTHER_FIELD_CHARS)
            if isinstance(value, str) and len(value) > limit:
                raise QuoteError(f"{name}, line {line}: {key} is {len(value):,} characters long "
                                 f"(limit {limit}); shorten it")
        records.append((line, record))
    return records


def _sniff_separator(text: str) -> str:
    """The separator that makes the header line name the most known columns."""
    header = next((line for line in text.splitlines() if line.strip()), "")[:10_000]

    def score(sep):
        try:
            cells = next(csv.reader([header], delimiter=sep), [])
        except csv.Error:
            return (0, 0)
        return (sum(c.strip().lstrip("\ufeff").lower() in COLUMNS for c in cells), header.count(sep))
    return max(SEPARATORS, key=score)


def _csv_rows(raw: bytes, name: str) -> list[tuple[int, dict]]:
    text = _decode(raw, name)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_separator(text))
    rows = []
    try:
        for cells in reader:
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise QuoteError(f"{name}, line {reader.line_num}: a field longer than "
                             f"{csv.field_size_limit():,} characters; not a quotes file") from None
        raise QuoteError(f"{name}, line {reader.line_num}: not readable as CSV ({exc})") from None
    return _records(rows, name)


def _xlsx_rows(raw: bytes, name: str) -> list[tuple[int, dict]]:
    """The first sheet of an .xlsx file, header row first (openpyxl, read-only: rows are streamed)."""
    import openpyxl  # imported here: only .xlsx quotes sheets need it

    def rows(sheet):
        for line, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
            if line > MAX_ROWS + 1:
                raise QuoteError(f"{name}: more than {MAX_ROWS:,} rows; not a quotes sheet")
            yield line, cells
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles it does not need here
            book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
            try:
                return _records(rows(book.worksheets[0]), name)
            finally:
                book.close()
    except QuoteError:
        raise
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types on a damaged file; all mean the same
        raise QuoteError(f"{name}: an .xlsx file that cannot be read ({type(exc).__name__}); "
                         "open it in Excel and save it again") from None


_PARSED_FILES: dict = {}  # (path, inode, size, mtime) -> rows of the one quotes file last read


class LocalQuotesFile:
    """Quotes from a file with the columns of COLUMNS, one row per ticker: CSV (see `_decode` for
    encodings, separators sniffed from the header) or an .xlsx sheet (the first sheet)."""

    def __init__(self, path: str | Path = DEFAULT_QUOTES):
        self.path = Path(path)
        self.name = f"file:{self.path.name}"

    def _rows(self) -> list[tuple[int, dict]]:
        # A batch refreshes hundreds of models from one file: it is parsed once per process for
        # as long as it is the same file (same inode, size and modification time).
        try:
            info = os.stat(self.path)
            key = (str(self.path.resolve()), info.st_ino, info.st_size, info.st_mtime_ns)
        except OSError:
            key = None
        if key is not None and key in _PARSED_FILES:
            return _PARSED_FILES[key]
        raw = _read_regular_file(self.path)
        name = self.path.name
        rows = _xlsx_rows(raw, name) if _identify(raw, name) == "xlsx" else _csv_rows(raw, name)
        if key is not None:
            _PARSED_FILES.clear()   # one file at a time is all a batch needs
            _PARSED_FILES[key] = rows
        return rows

    def quote(self, ticker: str, reporting_currency: str | None = None) -> Quote:
        """The file's quote for `ticker`. `reporting_currency` is accepted for the provider protocol;
        a file states its own FX, which `validate` checks against the model."""
        wanted = ticker.strip().upper()
        rows = [(line, r) for line, r in self._rows() if _text(r.get("ticker")).upper() == wanted]
        where = self.path.name
        if not rows:
            raise QuoteError(f"{where}: no quote for {ticker}")
        if len(rows) > 1:
            raise QuoteError(f"{where}: {len(rows)} rows for {ticker}; keep one quote per ticker")
        line, row = rows[0]
        where = f"{self.path.name} ({ticker}, line {line})"
        level = row.get("benchmark_level")
        return Quote(_text(row["ticker"]), parse_number(row.get("price"), "price", where),
                     normalise_currency(row.get("currency")),
                     parse_date(row.get("price_date"), "price_date", where),
                     parse_number(row.get("fx_to_reporting"), "fx_to_reporting", where),
                     parse_number(level, "benchmark_level", where) if _text(level) else None,
                     _text(row.get("source")) or self.name)


PROVIDERS: dict[str, type] = {"file": LocalQuotesFile}


def provider_for(spec: str | None, timeout: float | None = None) -> QuoteProvider:
    """The provider a source string names: "file:PATH", "akshare:", "yfinance:CNY", a plain path,
    or None for the embedded file. `timeout`: seconds a network provider waits for each answer
    (its default when None); a file has none."""
    if not spec:
        return LocalQuotesFile()
    spec = str(spec).strip()
    scheme, sep, where = spec.partition(":")
    scheme = scheme.lower()
    if sep and scheme in PROVIDERS and len(scheme) > 1:
        provider = PROVIDERS[scheme](where)
        if timeout is not None and hasattr(provider, "timeout"):
            provider.timeout = timeout
        return provider
    if sep and len(scheme) > 1 and not Path(spec).exists():
        raise QuoteError(f"unknown quote source {scheme!r}; known: {', '.join(PROVIDERS)} (or a path to a quotes file)")
    return LocalQuotesFile(spec)


# ------------------------------------------------------------------------------------------------
# Settings and validation
# ------------------------------------------------------------------------------------------------
def _setting_number(value) -> float | None:
    """A setting's value (an xlwings.conf cell, command-line text) as a finite number, or None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def parse_max_age(value, where: str) -> int:
    """The quotes' maximum age in whole days, from a setting (xlwings.conf cell, CLI text).
    Empty means DEFAULT_MAX_AGE_DAYS; `where` names the setting for the message, e.g.
    "model.xlsm: xlwings.conf 'Quotes Max Age Days'"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_MAX_AGE_DAYS
    number = _setting_number(value)
    if number is None or not number.is_integer() or not 0 <= number <= MAX_AGE_LIMIT_DAYS:
        raise QuoteError(f"{where} is {_shown(value)}, not a whole number of days from 0 to {MAX_AGE_LIMIT_DAYS}; "
                         f"use e.g. {DEFAULT_MAX_AGE_DAYS}")
    return int(number)


def parse_timeout(value, where: str) -> float:
    """A network provider's timeout in seconds (1 to MAX_TIMEOUT_SECONDS), from xlwings.conf
    'Quotes Timeout' or the command line; empty means DEFAULT_TIMEOUT_SECONDS."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return float(DEFAULT_TIMEOUT_SECONDS)
    number = _setting_number(value)
    if number is None or not 1 <= number <= MAX_TIMEOUT_SECONDS:
        raise QuoteError(f"{where} is {_shown(value)}, not a number of seconds from 1 to {MAX_TIMEOUT_SECONDS}; "
                         f"use e.g. {DEFAULT_TIMEOUT_SECONDS}")
    return number


def _pair(fx_pair) -> tuple[str, str] | None:
    if fx_pair is None:
        return None
    if isinstance(fx_pair, str):
        parts = re.split(r"[/→>\-\s]+", fx_pair.strip())
    else:
        parts = list(fx_pair)
    if len(parts) != 2 or not all(str(p).strip() for p in parts):
        raise QuoteError(f"FX pair {_shown(fx_pair)} is not two currency codes like 'USD/CNY'")
    return normalise_currency(parts[0]), normalise_currency(parts[1])


def _positive(value) -> float | None:
    """A model cell's last value, if it is a usable positive number (text or errors give None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def validate(quote: Quote, ticker: str, as_of: dt.date, max_age_days: int, *, currency: str | None = None,
             last_price=None, last_fx=None, fx_pair=None, max_move: float = 0.5, accept_move: bool = False,
             front: str = "cli") -> Quote:
    """The quote, if refresh may use it; QuoteError with the reason and what to do otherwise.

    currency: the model's trading currency (MKT_quote_currency); a quote in another is refused.
    last_price, last_fx: the model's current price and FX; a price (or FX) moving by more than
        `max_move` (relative, 0.5 = 50%) is refused unless `accept_move`; an FX that sits closer
        to 1/last_fx than to last_fx is refused as inverted. Values that are not positive
        numbers (an empty or broken cell) skip these comparisons.
    fx_pair: ("USD", "CNY") or "USD/CNY", trading → reporting; the FX must lie in its sane range.
    front: "cli" or "excel", which override the messages name (a flag, or xlwings.conf keys).
    """
    if front not in OVERRIDE_HINTS:
        raise ValueError(f"front must be one of {', '.join(OVERRIDE_HINTS)}, not {front!r}")
    limit = parse_max_age(max_age_days, "max age")
    if not (isinstance(max_move, (int, float)) and math.isfinite(max_move) and max_move > 0):
        raise QuoteError(f"price move band {_shown(max_move)} is not a positive fraction like 0.5")
    if quote.ticker.upper() != ticker.upper():
        raise QuoteError(f"quote is for {quote.ticker}, the model is {ticker}; refused")
    for what, value in (("price", quote.price), ("FX", quote.fx_to_reporting), ("benchmark level", quote.benchmark_level)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise QuoteError(f"quote for {ticker}: {what} {_shown(value)} is not a finite number; refused")
    if quote.price <= 0:
        raise QuoteError(f"quote for {ticker}: price {quote.price:g} is not positive; refused")
    if quote.fx_to_reporting <= 0:
        raise QuoteError(f"quote for {ticker}: FX {quote.fx_to_reporting:g} is not positive; refused")
    if quote.benchmark_level is not None and quote.benchmark_level <= 0:
        raise QuoteError(f"quote for {ticker}: benchmark level {quote.benchmark_level:g} is not positive; refused")
    for field, what, value in (("price", "price", quote.price), ("fx_to_reporting", "FX", quote.fx_to_reporting),
                               ("benchmark_level", "benchmark level", quote.benchmark_level)):
        if value is not None and value > MAGNITUDE_LIMITS[field]:
            raise QuoteError(f"quote for {ticker}: {what} {value:g} is beyond {MAGNITUDE_LIMITS[field]:g}, not a "
                             "plausible figure; check its units")
    if quote.fx_to_reporting < FX_FLOOR:
        raise QuoteError(f"quote for {ticker}: FX {quote.fx_to_reporting:g} is below {FX_FLOOR:g}, not a plausible "
                         "rate; check its units")
    if currency:
        model_ccy = normalise_currency(currency)
        quote_ccy = normalise_currency(quote.currency)
        if not quote_ccy:
            raise QuoteError(f"quote for {ticker} names no currency; the model trades in {model_ccy}: "
                             "fill the quote's currency")
        if quote_ccy != model_ccy:
            raise QuoteError(f"quote for {ticker} is in {quote_ccy}, the model trades in {model_ccy}; "
                             f"give a quote in {model_ccy}")
    if quote.price_date > as_of:
        raise QuoteError(f"quote for {ticker} is dated {quote.price_date}, after {as_of}; refused")
    age = (as_of - quote.price_date).days
    if age > limit:
        raise QuoteError(f"quote for {ticker} is dated {quote.price_date}, {age} days before {as_of} (limit {limit})",
                         OVERRIDE_HINTS[front]["max_age"], front)
    _check_fx(quote, ticker, _pair(fx_pair), _positive(last_fx), max_move, accept_move, front)
    last = _positive(last_price)
    if last is not None and not accept_move:
        move = quote.price / last - 1
        if abs(move) > max_move:
            raise QuoteError(f"quote for {ticker}: price {quote.price:g} is {move:+.0%} from the model's {last:g} "
                             f"(band ±{max_move:.0%})", f"check the quote's units, or {OVERRIDE_HINTS[front]['move']}", front)
    return quote


def _check_fx(quote: Quote, ticker: str, pair, last_fx, max_move, accept_move, front: str) -> None:
    fx = quote.fx_to_reporting
    name = f"{pair[0]}→{pair[1]}" if pair else "FX"
    problem = fx_range_problem(fx, *pair) if pair else None
    if problem:
        raise QuoteError(f"quote for {ticker}: {problem}" + ("; refused" if "exactly 1" in problem else ""))
    if last_fx is None:
        return
    direct, inverted = abs(math.log(fx / last_fx)), abs(math.log(fx * last_fx))
    if abs(math.log(last_fx)) > INVERSION_MIN_LOG_GAP and inverted < direct:
        raise QuoteError(f"quote for {ticker}: FX {fx:g} looks inverted against the model's {last_fx:g} "
                         f"(1/{fx:g} = {1 / fx:.4f}); give the rate in the model's direction"
                         + (f" ({pair[1]} per 1 {pair[0]})" if pair else ""))
    move = fx / last_fx - 1
    if abs(move) > max_move and not accept_move:
        raise QuoteError(f"quote for {ticker}: {name} {fx:g} is {move:+.0%} from the model's {last_fx:g} "
                         f"(band ±{max_move:.0%})", f"check the rate, or {OVERRIDE_HINTS[front]['move']}", front)


from . import quotes_live  # noqa: E402,F401 - registers the live providers in PROVIDERS
