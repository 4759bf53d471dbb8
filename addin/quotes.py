"""Market quotes for refresh: a small provider interface and the embedded local-file provider.

A provider answers `quote(ticker)`; refresh never cares where the numbers came from. A live feed
is one more class with that method, registered in PROVIDERS under a scheme name and chosen with
`--quotes SCHEME:WHERE` or the workbook's xlwings.conf ("Quotes Source").
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DEFAULT_QUOTES = Path(__file__).resolve().parents[1] / "workbook" / "data" / "quotes.csv"
DEFAULT_MAX_AGE_DAYS = 5
MAX_QUOTES_BYTES = 5_000_000
COLUMNS = ("ticker", "price", "currency", "price_date", "fx_to_reporting", "benchmark_level", "source")


class QuoteError(ValueError):
    """A quote refresh must refuse; the message is the one line the analyst sees."""


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


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise QuoteError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise QuoteError(f"{where}: {what} {text!r} is not a finite number")
    return value


class LocalQuotesFile:
    """Quotes from a CSV file (UTF-8) with the columns of COLUMNS, one row per ticker."""

    def __init__(self, path: str | Path = DEFAULT_QUOTES):
        self.path = Path(path)
        self.name = f"file:{self.path.name}"

    def _rows(self) -> list[dict]:
        if not self.path.is_file():
            raise QuoteError(f"{self.path}: no such quotes file")
        raw = self.path.read_bytes()
        if len(raw) > MAX_QUOTES_BYTES:
            raise QuoteError(f"{self.path.name}: larger than {MAX_QUOTES_BYTES // 1_000_000} MB; not a quotes file")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise QuoteError(f"{self.path.name}: not UTF-8 text; save the quotes file as UTF-8") from None
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in ("ticker", "price", "price_date", "fx_to_reporting") if c not in (reader.fieldnames or [])]
        if missing:
            raise QuoteError(f"{self.path.name}: missing column {missing[0]!r}; expected {', '.join(COLUMNS)}")
        return list(reader)

    def quote(self, ticker: str) -> Quote:
        rows = [r for r in self._rows() if (r.get("ticker") or "").strip().upper() == ticker.strip().upper()]
        where = f"{self.path.name}"
        if not rows:
            raise QuoteError(f"{where}: no quote for {ticker}")
        if len(rows) > 1:
            raise QuoteError(f"{where}: {len(rows)} rows for {ticker}; keep one quote per ticker")
        row = rows[0]
        where = f"{self.path.name} ({ticker})"
        try:
            day = dt.date.fromisoformat((row.get("price_date") or "").strip())
        except ValueError:
            raise QuoteError(f"{where}: price_date {row.get('price_date')!r} is not a date like 2025-12-18") from None
        level = (row.get("benchmark_level") or "").strip()
        return Quote(row["ticker"].strip(), _number(row.get("price"), "price", where), (row.get("currency") or "").strip(),
                     day, _number(row.get("fx_to_reporting"), "fx_to_reporting", where),
                     _number(level, "benchmark_level", where) if level else None,
                     (row.get("source") or "").strip() or self.name)


PROVIDERS = {"file": LocalQuotesFile}


def provider_for(spec: str | None) -> QuoteProvider:
    """The provider a source string names: "file:PATH", a plain path, or None for the embedded file."""
    if not spec:
        return LocalQuotesFile()
    scheme, sep, where = spec.partition(":")
    if sep and scheme in PROVIDERS and len(scheme) > 1:
        return PROVIDERS[scheme](where)
    if sep and len(scheme) > 1 and not Path(spec).exists():
        raise QuoteError(f"unknown quote source {scheme!r}; known: {', '.join(PROVIDERS)} (or a path to a CSV file)")
    return LocalQuotesFile(spec)


def validate(quote: Quote, ticker: str, as_of: dt.date, max_age_days: int, currency: str | None = None) -> Quote:
    """The quote, if refresh may use it; QuoteError with the reason otherwise."""
    if quote.ticker.upper() != ticker.upper():
        raise QuoteError(f"quote is for {quote.ticker}, the model is {ticker}; refused")
    if quote.price <= 0:
        raise QuoteError(f"quote for {ticker}: price {quote.price:g} is not positive; refused")
    if quote.fx_to_reporting <= 0:
        raise QuoteError(f"quote for {ticker}: FX {quote.fx_to_reporting:g} is not positive; refused")
    if quote.benchmark_level is not None and quote.benchmark_level <= 0:
        raise QuoteError(f"quote for {ticker}: benchmark level {quote.benchmark_level:g} is not positive; refused")
    if currency and quote.currency and quote.currency.upper() != currency.upper():
        raise QuoteError(f"quote for {ticker} is in {quote.currency}, the model prices in {currency}; refused")
    if quote.price_date > as_of:
        raise QuoteError(f"quote for {ticker} is dated {quote.price_date}, after {as_of}; refused")
    age = (as_of - quote.price_date).days
    if age > max_age_days:
        raise QuoteError(f"quote for {ticker} is dated {quote.price_date}, {age} days before {as_of} "
                         f"(limit {max_age_days}); use a fresher quotes file or --max-age-days")
    return quote
