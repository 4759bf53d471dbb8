"""Live quote providers on optional packages: `akshare:` and `yfinance:` in `--quotes` or in the
workbook's xlwings.conf ("Quotes Source").

Each provider imports its package on first use, so the project runs without them; install with
`pip install "equity-research-model[akshare]"` or `[yfinance]`. A missing package, a failed
download or an answer in an unexpected shape is one QuoteError line. The library module can be
passed in (`module=`), which is how the tests replay recorded responses without a network.

Both providers take the last daily close on or before today, so the quote carries the date the
price is from, and `validate` judges its age like any file's.
"""
from __future__ import annotations

import datetime as dt
import decimal
import importlib
import math
import re
import threading
from dataclasses import dataclass

from workbook.spec import CURRENCIES_FILE
from workbook.tomlfile import read_toml

from .quotes import DEFAULT_TIMEOUT_SECONDS, PROVIDERS, Quote, QuoteError

HISTORY_DAYS = 30  # enough trading days to cover a long holiday


@dataclass(frozen=True)
class Market:
    """What a ticker's exchange suffix implies: trading currency, symbols, benchmark index."""
    currency: str
    yahoo_suffix: str
    yahoo_benchmark: str
    akshare_history: str            # the akshare function for the stock's daily history
    akshare_code_width: int         # akshare codes are zero-padded to this width
    akshare_benchmark: tuple[str, str]  # (function, symbol) of the benchmark's daily history
    yahoo_code_width: int = 0       # Yahoo codes drop leading zeros and pad to this width (0: as quoted)


_DATA = read_toml(CURRENCIES_FILE)
MARKETS = {suffix: Market(m["currency"], m["yahoo_suffix"], m["yahoo_benchmark"], m["akshare_history"],
                          int(m["akshare_code_width"]), tuple(m["akshare_benchmark"]), int(m.get("yahoo_code_width", 0)))
           for suffix, m in _DATA.get("markets", {}).items()}

# akshare's SAFE table (currency_boc_safe): column per currency, in CNY per 100 units.
SAFE_COLUMNS = dict(_DATA.get("safe_columns", {}))
SAFE_UNITS = 100

# akshare's documented column names for the frames read here.
AK_DATE, AK_CLOSE = "日期", "收盘"
AK_INDEX_DATE, AK_INDEX_CLOSE = "date", "close"


def split_ticker(ticker: str, provider: str) -> tuple[str, Market]:
    """('1810', HK market) for '1810.HK'; QuoteError for a market the provider does not cover."""
    m = re.fullmatch(r"\s*(\d{1,6})\.([A-Za-z]{2})\s*", ticker or "")
    if not m or m.group(2).upper() not in MARKETS:
        raise QuoteError(f"{provider}: cannot quote {ticker!r}; it covers tickers like 1810.HK, 600519.SH, "
                         "000001.SZ")
    return m.group(1), MARKETS[m.group(2).upper()]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, SystemExit) or not text:  # `SystemExit: 3` says more than "3"
        text = f"{type(exc).__name__} {text}".strip()
    return text if len(text) <= 120 else text[:117] + "..."


def _as_date(value) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp
        return value.to_pydatetime().date()
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        return None


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _last(rows, on_or_before: dt.date | None, what: str, provider: str) -> tuple[dt.date, float]:
    """The latest (date, value) with a number, on or before a date when one is given."""
    usable = [(d, v) for d, v in rows if d is not None and v is not None and (on_or_before is None or d <= on_or_before)]
    if not usable:
        raise QuoteError(f"{provider}: no usable {what} in the answer (no rows, or none with a number); "
                         "check the ticker, or use a quotes file")
    return max(usable, key=lambda row: row[0])


def _column_rows(frame, date_column: str, value_column: str, what: str, provider: str):
    """(date, value) pairs from a frame with the given columns (akshare's frames are plain tables)."""
    columns = list(getattr(frame, "columns", []))
    for column in (date_column, value_column):
        if column not in columns:
            raise QuoteError(f"{provider}: the {what} answer has no column {column!r} (columns: "
                             f"{', '.join(map(str, columns[:8])) or 'none'}); the library's format has changed")
    return [(_as_date(d), _number(v)) for d, v in zip(frame[date_column], frame[value_column])]


def optional_package(package: str, what: str, error: type):
    """An optional package imported on first use (the live sources); `error` (one line saying how
    to install it) when it is not installed."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise error(f"the {package} {what} needs the {package} package: "
                    f'pip install "equity-research-model[{package}]"') from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken install fails at import
        raise error(f"the {package} package cannot be loaded ({_one_line(exc)}); reinstall it: "
                    f'pip install -U "equity-research-model[{package}]"') from None


class _LiveProvider:
    package = ""

    def __init__(self, where: str = "", module=None, today: dt.date | None = None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self.reporting = where.strip().upper() or None
        self.name = f"{self.package}:{self.reporting or ''}"
        self._module = module
        self._today = today
        self.timeout = timeout

    def _lib(self):
        if self._module is None:
            self._module = optional_package(self.package, "quote source", QuoteError)
        return self._module

    def _call(self, what: str, function, *args, **kwargs):
        """`function(*args, **kwargs)` on a worker thread, given `self.timeout` seconds: a stalled
        connection is a QuoteError naming the provider, never a hung refresh. Whatever the library
        raises, SystemExit included (a library must not end the analyst's command), is one line.
        The thread is a daemon: a request still hanging dies with the process."""
        outcome: dict = {}

        def run():
            try:
                outcome["value"] = function(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - carried to the caller's thread and judged there
                outcome["error"] = exc

        worker = threading.Thread(target=run, name=f"{self.package} quote", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise QuoteError(f"{self.package}: timed out after {self.timeout:g} s waiting for {what}; the provider did "
                             "not answer (check the network, raise xlwings.conf 'Quotes Timeout' or --quotes-timeout, "
                             "or use a quotes file)")
        error = outcome.get("error")
        if isinstance(error, (QuoteError, KeyboardInterrupt)):
            raise error
        if error is not None:  # the library raises whatever its HTTP stack raises
            raise QuoteError(f"{self.package}: could not fetch {what} ({_one_line(error)}); check the network "
                             "connection, or use a quotes file") from None
        return outcome["value"]

    def _reporting(self, reporting_currency: str | None, default: str | None) -> str:
        reporting = (reporting_currency or self.reporting or default or "").strip().upper()
        if not reporting:
            raise QuoteError(f"{self.package}: name the model's reporting currency, e.g. "
                             f"'{self.package}:CNY' as the quote source")
        return reporting


class AkshareQuotes(_LiveProvider):
    """Hong Kong and A-share daily closes from akshare (East Money history: `stock_hk_hist`,
    `stock_zh_a_hist`), the foreign currency's CNY central parity published by SAFE / the China
    Foreign Exchange Trade System (`currency_boc_safe`), and the market's benchmark index close
    (Hang Seng: `stock_hk_index_daily_sina`; CSI 300: `stock_zh_index_daily`). The central parity
    is quoted against CNY only, so the reporting currency is CNY ("akshare:" or "akshare:CNY")."""

    package = "akshare"

    def _function(self, name: str):
        function = getattr(self._lib(), name, None)
        if function is None:
            raise QuoteError(f"akshare has no function {name}; upgrade it: pip install -U akshare")
        return function

    def quote(self, ticker: str, reporting_currency: str | None = None) -> Quote:
        code, market = split_ticker(ticker, "akshare")
        reporting = self._reporting(reporting_currency, "CNY")
        if reporting != "CNY" and reporting != market.currency:
            raise QuoteError(f"akshare: the central parity is quoted in CNY only, the model reports in {reporting}; "
                             "use the yfinance source or a quotes file")
        today = self._today or dt.date.today()
        symbol = code.zfill(market.akshare_code_width)
        history = self._call(f"the {symbol} price history", self._function(market.akshare_history), symbol=symbol,
                             period="daily", start_date=f"{today - dt.timedelta(days=HISTORY_DAYS):%Y%m%d}",
                             end_date=f"{today:%Y%m%d}", adjust="")
        day, price = _last(_column_rows(history, AK_DATE, AK_CLOSE, "price history", "akshare"), today,
                           f"close for {symbol}", "akshare")
        fx, fx_note = 1.0, ""
        if market.currency != reporting:
            fx, fx_day = self._parity(market.currency, day)
            fx_note = f", {market.currency}/CNY central parity {fx_day}"
        function, index = market.akshare_benchmark
        levels = self._call(f"the {index} index history", self._function(function), symbol=index)
        _, level = _last(_column_rows(levels, AK_INDEX_DATE, AK_INDEX_CLOSE, "index history", "akshare"), day,
                         f"{index} close", "akshare")
        return Quote(ticker.strip(), price, market.currency, day, fx, level,
                     f"akshare {market.akshare_history} {symbol} close {day}{fx_note}")

    def _parity(self, currency: str, day: dt.date) -> tuple[float, dt.date]:
        column = SAFE_COLUMNS.get(currency)
        if column is None:
            raise QuoteError(f"akshare: no central parity for {currency} in the SAFE table; use a quotes file")
        table = self._call("the SAFE central parity", self._function("currency_boc_safe"))
        fx_day, per_100 = _last(_column_rows(table, AK_DATE, column, "central parity", "akshare"), day,
                                f"{currency}/CNY central parity", "akshare")
        # In decimal, so that 91.26 per 100 is 0.9126 and not 0.9126000000000001.
        return float(decimal.Decimal(repr(per_100)) / SAFE_UNITS), fx_day


class YfinanceQuotes(_LiveProvider):
    """Daily closes from Yahoo Finance through yfinance (`Ticker.history`, unadjusted), the trading
    currency from `Ticker.fast_info`, FX from Yahoo's trading-to-reporting pair (`USDCNY=X` for a
    dollar stock reporting in yuan) and the market's benchmark index. Yahoo serves any pair, so the
    model's reporting currency must be named: "yfinance:CNY"."""

    package = "yfinance"

    def _closes(self, symbol: str, what: str):
        ticker = self._call(what, self._lib().Ticker, symbol)
        frame = self._call(what, ticker.history, period="1mo", interval="1d", auto_adjust=False)
        if "Close" not in list(getattr(frame, "columns", [])):
            raise QuoteError(f"yfinance: the {what} answer has no 'Close' column; the library's format has changed")
        return ticker, [(_as_date(d), _number(v)) for d, v in zip(frame.index, frame["Close"])]

    def quote(self, ticker: str, reporting_currency: str | None = None) -> Quote:
        code, market = split_ticker(ticker, "yfinance")
        reporting = self._reporting(reporting_currency, None)
        today = self._today or dt.date.today()
        symbol = f"{code.lstrip('0').zfill(market.yahoo_code_width) if market.yahoo_code_width else code}.{market.yahoo_suffix}"
        handle, closes = self._closes(symbol, f"the {symbol} price history")
        day, price = _last(closes, today, f"close for {symbol}", "yfinance")
        info = self._call(f"the {symbol} currency", lambda: handle.fast_info["currency"])
        currency = str(info or "").strip().upper()
        if not currency:
            raise QuoteError(f"yfinance: no trading currency for {symbol}; use a quotes file")
        fx = 1.0
        if currency != reporting:
            pair = f"{currency}{reporting}=X"
            _, rates = self._closes(pair, f"the {pair} rate")
            _, fx = _last(rates, day, f"{pair} rate", "yfinance")
        _, levels = self._closes(market.yahoo_benchmark, f"the {market.yahoo_benchmark} index")
        _, level = _last(levels, day, f"{market.yahoo_benchmark} close", "yfinance")
        return Quote(ticker.strip(), price, currency, day, fx, level,
                     f"Yahoo Finance {symbol} close {day}" + (f", {currency}{reporting}=X" if fx != 1.0 else ""))


PROVIDERS["akshare"] = AkshareQuotes
PROVIDERS["yfinance"] = YfinanceQuotes
