"""Broker rating: expected return, excess over the benchmark, the band it falls in, the action.

Schemes are data (rating_schemes.toml). Returns are decimals (0.15 is 15%). Comparisons with a
band's bounds are made in decimal arithmetic on the return rounded to RETURN_COMPARISON_PLACES,
so that 15% is exactly 15% whatever binary rounding the arithmetic before it did.
A missing or non-numeric price, target or return gives the scheme's unrated label (无评级), never
an exception; an unknown scheme or boundary convention is an InputError (#VALUE! in a cell).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from . import tomlparse
from .constants import (
    ACTION_DOWNGRADE, ACTION_FIRST, ACTION_MAINTAIN, ACTION_UPGRADE, ACTIONS_EN, BOUNDARY_CONVENTIONS,
    BOUNDARY_OUTER, DEFAULT_BOUNDARY, DEFAULT_SCHEME, MARKET_BY_SUFFIX, NOT_MEANINGFUL,
    NOT_VALUED, NOT_VALUED_EN, RETURN_COMPARISON_PLACES, ERR_NA,
)
from .errors import DataError, InputError
from .registry import ANY, TEXT, Arg, excel_function

_SCHEME = Arg("scheme", TEXT, "Rating scheme key, everbright if empty", DEFAULT_SCHEME)
_BOUNDARY = Arg("boundary", TEXT, "outer or inner, outer if empty", DEFAULT_BOUNDARY)
_PRICE = Arg("price", ANY, "Current price")
_TARGET = Arg("target_price", ANY, "Target price, same currency")


@dataclass(frozen=True)
class Band:
    label: str
    min_pct: Decimal | None  # None: unbounded below
    max_pct: Decimal | None  # None: unbounded above
    label_en: str = ""


@dataclass(frozen=True)
class Scheme:
    key: str
    name: str
    basis: str  # "excess" or "absolute"
    horizon: str
    unrated: str
    benchmarks: dict
    bands: tuple  # best first
    name_en: str = ""
    unrated_en: str = ""
    benchmarks_en: dict = field(default_factory=dict)
    brokers: tuple = ()  # the names of the broker whose scheme it is, as notes print them
    horizon_months: int = 12  # the end of the horizon, where the target is judged (the rating horizon's default)

    @property
    def labels(self) -> list[str]:
        return [b.label for b in self.bands]

    def english(self, text):
        """The English name of a label this scheme prints (a band, the unrated label, a benchmark,
        a rating action), or `text` unchanged when it has none (a number, NM, an unknown label)."""
        if not isinstance(text, str):
            return text
        names = {b.label: b.label_en for b in self.bands if b.label_en}
        if self.unrated_en:
            names[self.unrated] = self.unrated_en
        names.update({self.benchmarks[m]: name for m, name in self.benchmarks_en.items() if m in self.benchmarks})
        names.update(ACTIONS_EN)
        names[NOT_VALUED] = NOT_VALUED_EN
        return names.get(text.strip(), text)

    def rank(self, label: str) -> int | None:
        """0 for the best band; None for the unrated label or a label not in the scheme."""
        return self.labels.index(label) if label in self.labels else None


def _decimal_or_none(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def parse_schemes(data: dict) -> dict[str, Scheme]:
    """Schemes from their TOML form; DataError naming the scheme and the problem otherwise."""
    schemes = {}
    for key, raw in data.items():
        try:
            bands = tuple(Band(b["label"], _decimal_or_none(b.get("min")), _decimal_or_none(b.get("max")),
                               str(b.get("en", ""))) for b in raw["bands"])
            scheme = Scheme(key, raw["name"], raw.get("basis", "excess"), raw.get("horizon", ""),
                            raw.get("unrated", "无评级"), dict(raw.get("benchmarks", {})), bands,
                            str(raw.get("name_en", "")), str(raw.get("unrated_en", "")),
                            dict(raw.get("benchmarks_en", {})), tuple(raw.get("brokers", [])), int(raw.get("horizon_months", 12)))
        except (KeyError, TypeError) as exc:
            raise DataError(f"rating scheme {key!r} is missing {exc}") from None
        if scheme.basis not in ("excess", "absolute"):
            raise DataError(f"rating scheme {key!r}: basis must be 'excess' or 'absolute', not {scheme.basis!r}")
        schemes[key] = scheme
    return schemes


@lru_cache(maxsize=1)
def schemes() -> dict[str, Scheme]:
    """The schemes shipped with the package."""
    text = (Path(__file__).parent / "rating_schemes.toml").read_text(encoding="utf-8")
    return parse_schemes(tomlparse.loads(text))


def get_scheme(key: str | None = None) -> Scheme:
    key = key or DEFAULT_SCHEME
    known = schemes()
    if key not in known:
        raise InputError(f"unknown rating scheme {key!r}; known: {', '.join(sorted(known))}")
    return known[key]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@excel_function("EXPECTED_RETURN", "Expected total return: (target + dividends) / price - 1.", _PRICE, _TARGET,
                Arg("dividends_per_share", ANY, "Dividends per share to the horizon, 0 if empty", required=False),
                native=("IF(AND(ISNUMBER({0}),ISNUMBER({1}),OR(ISBLANK({2}),ISNUMBER({2}),IFERROR({2}=\"\",FALSE))),"
                        "IF(AND({0}>0,{1}>0),({1}+N({2}))/{0}-1,{NM}),{NM})"),
                sample=(40.2, 50.0, 0.0))
def expected_return(price: float, target_price: float, dividends_per_share: float | None = 0.0) -> float | str:
    """Total expected return to the target: (target + dividends) / price - 1, in one currency.
    NM when the price or the target is not a positive number."""
    dividends = 0.0 if dividends_per_share is None else dividends_per_share
    if not (_is_number(price) and _is_number(target_price) and _is_number(dividends)):
        return NOT_MEANINGFUL
    if price <= 0 or target_price <= 0:
        return NOT_MEANINGFUL
    return (target_price + dividends) / price - 1.0


@excel_function("EXCESS_RETURN", "Expected return minus the benchmark's return.",
                Arg("stock_return", ANY, "Expected return of the stock"),
                Arg("benchmark_return", ANY, "Expected return of the benchmark index"), native="IF(AND(ISNUMBER({0}),ISNUMBER({1})),{0}-{1},{NM})",
                sample=(0.244, 0.05))
def excess_return(stock_return: float, benchmark_return: float) -> float | str:
    """Stock return minus the benchmark's return over the same horizon (decimals)."""
    if not (_is_number(stock_return) and _is_number(benchmark_return)):
        return NOT_MEANINGFUL
    return stock_return - benchmark_return


def _in_band(value: Decimal, band: Band, boundary: str) -> bool:
    """Whether `value` (percent) lies in `band`. On a bound the value goes to the band further
    from zero ("outer") or nearer zero ("inner"); a bound at exactly 0 goes to the band above."""
    def includes(bound: Decimal, band_is_above_bound: bool) -> bool:
        outer_side_is_above = bound >= 0
        return (band_is_above_bound == outer_side_is_above) == (boundary == BOUNDARY_OUTER)

    if band.min_pct is not None:
        if value < band.min_pct or (value == band.min_pct and not includes(band.min_pct, True)):
            return False
    if band.max_pct is not None:
        if value > band.max_pct or (value == band.max_pct and not includes(band.max_pct, False)):
            return False
    return True


def classify(measure: float | None, scheme: str | Scheme | None = None, boundary: str = DEFAULT_BOUNDARY) -> str:
    """The band of a return measure (decimal; excess or absolute as the scheme's basis says).

    A missing, non-numeric or non-finite measure gives the scheme's unrated label.
    """
    if boundary not in BOUNDARY_CONVENTIONS:
        raise InputError(f"boundary must be one of {BOUNDARY_CONVENTIONS}, not {boundary!r}")
    scheme = scheme if isinstance(scheme, Scheme) else get_scheme(scheme)
    if not _is_number(measure):
        return scheme.unrated
    # A measure beyond any band's bound keeps its side: quantising 1e18 to 10 places would
    # exceed Decimal's precision, and such a return is simply the top (or bottom) band.
    clipped = max(-1e6, min(1e6, float(measure)))
    percent = round(Decimal(repr(clipped)), RETURN_COMPARISON_PLACES) * 100
    for band in scheme.bands:
        if _in_band(percent, band, boundary):
            return band.label
    return scheme.unrated  # a scheme whose bands leave a gap


def rate(price: float, target_price: float, benchmark_return: float | None = None,
         dividends_per_share: float | None = 0.0, scheme: str | Scheme | None = None,
         boundary: str = DEFAULT_BOUNDARY) -> str:
    """The rating from a target price: expected return, less the benchmark's for a relative scheme."""
    scheme = scheme if isinstance(scheme, Scheme) else get_scheme(scheme)
    measure = expected_return(price, target_price, dividends_per_share)
    if scheme.basis == "excess":
        measure = excess_return(measure, benchmark_return)
    return classify(measure, scheme, boundary)


def rating_action(previous: str | None, current: str, scheme: str | Scheme | None = None) -> str:
    """首次 when there is no previous rating, else 维持 / 上调 / 下调 by rank in the scheme.

    An unrated current rating, or one the scheme does not know, gives the unrated label: there
    is nothing to maintain or change.
    """
    scheme = scheme if isinstance(scheme, Scheme) else get_scheme(scheme)
    now = scheme.rank(current) if isinstance(current, str) else None
    if now is None:
        return scheme.unrated
    before = scheme.rank(previous) if isinstance(previous, str) else None
    if before is None:
        return ACTION_FIRST
    if now == before:
        return ACTION_MAINTAIN
    return ACTION_UPGRADE if now < before else ACTION_DOWNGRADE


def market_of(ticker: str) -> str | None:
    """'HK', 'A' or 'US' from a ticker's exchange suffix (1810.HK, 600519.SH, AAPL.O); a bare
    alphabetic ticker is taken as US. None when it cannot be told."""
    if not isinstance(ticker, str) or not ticker.strip():
        return None
    code, _, suffix = ticker.strip().upper().rpartition(".")
    if code and suffix in MARKET_BY_SUFFIX:
        return MARKET_BY_SUFFIX[suffix]
    if not code and suffix.isalpha():
        return "US"
    return None


def benchmark_for(ticker_or_market: str, scheme: str | Scheme | None = None) -> str | None:
    """The scheme's benchmark index for a ticker (1810.HK) or a market code (HK, A, US)."""
    scheme = scheme if isinstance(scheme, Scheme) else get_scheme(scheme)
    if not isinstance(ticker_or_market, str):
        return None
    key = ticker_or_market.strip().upper()
    market = key if key in scheme.benchmarks else market_of(key) if "." not in key or key.rpartition(".")[0] else None
    return scheme.benchmarks.get(market) if market else None


# ---- Excel faces of the rating functions: empty text arguments take the defaults ----
@excel_function("UPSIDE", "Target-price upside: target / price - 1 (NM without a target).", _PRICE, _TARGET,
                native="IF(AND(ISNUMBER({0}),ISNUMBER({1})),IF(AND({0}>0,{1}>0),{1}/{0}-1,{NM}),{NM})",
                sample=(40.2, 50.0))
def upside(price, target_price):
    """Target-price upside: target / price - 1; NM without a positive price and target."""
    if not (_is_number(price) and _is_number(target_price)) or price <= 0 or target_price <= 0:
        return NOT_MEANINGFUL
    return target_price / price - 1.0


@excel_function("RATING", "Broker rating from a target price (unrated when an input is missing).", _PRICE, _TARGET,
                Arg("benchmark_return", ANY, "Benchmark's expected return (relative schemes)", required=False),
                Arg("dividends_per_share", ANY, "Dividends per share to the horizon, 0 if empty", required=False),
                _SCHEME, _BOUNDARY, native=("ER_RATING_BAND(IF(AND({basis}=\"excess\",NOT(ISNUMBER({2}))),{NM},"
                        "IFERROR(ER_EXPECTED_RETURN({0},{1},{3})-IF({basis}=\"excess\",{2},0),{NM})),{4},{5})"),
                sample=(40.2, 50.0, 0.05, 0.0, "everbright", "outer"), formula_name="rate")
def _rate_cell(price, target_price, benchmark_return, dividends_per_share, scheme, boundary):
    return rate(price, target_price, benchmark_return, dividends_per_share, scheme or DEFAULT_SCHEME,
                boundary or DEFAULT_BOUNDARY)


@excel_function("RATING_BAND", "The rating band of a return measure.",
                Arg("measure", ANY, "Excess (or absolute) return as a decimal"), _SCHEME, _BOUNDARY,
                native=("IF(IF({1}=\"\",{DEFAULT_SCHEME},{1})<>{scheme_key},#N/A,IF(AND({2}<>\"\",{2}<>{OUTER},{2}<>{INNER}),#VALUE!,"
                        # a threshold counts against the return when it lies above it, or on it and the
                        # convention puts the bound in the band below: outer for negative bounds, inner for others
                        # (a product, not --: the formulas package reads SUMPRODUCT(--(...)) as 0)
                        "IF(NOT(ISNUMBER({0})),{unrated},INDEX({labels},1+SUMPRODUCT((SIGN({thresholds}-ROUND({0},{RETURN_PLACES}))"
                        ">=1-(({thresholds}<0)=({2}<>{INNER})))*1)))))"),
                sample=(0.194, "everbright", "outer"), formula_name="classify")
def _classify_cell(measure, scheme, boundary):
    return classify(measure, scheme or DEFAULT_SCHEME, boundary or DEFAULT_BOUNDARY)


@excel_function("RATING_ACTION", "Rating action against the previous rating: first, maintain, upgrade or downgrade.",
                Arg("previous", ANY, "Previous rating, empty if none"), Arg("current", ANY, "Current rating"), _SCHEME,
                native=("IF(IF({2}=\"\",{DEFAULT_SCHEME},{2})<>{scheme_key},#N/A,IF(ISERROR(MATCH({1},{labels},0)),{unrated},"
                        "IF(ISERROR(MATCH({0},{labels},0)),{FIRST},IF(MATCH({1},{labels},0)=MATCH({0},{labels},0),{MAINTAIN},"
                        "IF(MATCH({1},{labels},0)<MATCH({0},{labels},0),{UPGRADE},{DOWNGRADE})))))"),
                sample=("买入", "增持", "everbright"), formula_name="rating_action")
def _rating_action_cell(previous, current, scheme):
    previous = previous if isinstance(previous, str) and previous.strip() else None
    return rating_action(previous, current, scheme or DEFAULT_SCHEME)


@excel_function("BENCHMARK", "The scheme's benchmark index for a ticker or market.",
                Arg("ticker", TEXT, "Ticker such as 1810.HK, or a market code HK / A / US", required=True), _SCHEME,
                native=("IF(IF({1}=\"\",{DEFAULT_SCHEME},{1})<>{scheme_key},#N/A,IFERROR(VLOOKUP(UPPER(TRIM({0})),{benchmarks},2,FALSE),"
                        "IFERROR(VLOOKUP(\".\"&TRIM(RIGHT(SUBSTITUTE(UPPER(TRIM({0})),\".\",REPT(\" \",99)),99)),{benchmarks},2,FALSE),#N/A)))"),
                sample=("1810.HK", "everbright"), formula_name="benchmark")
def _benchmark_cell(ticker, scheme):
    return benchmark_for(ticker, scheme or DEFAULT_SCHEME) or ERR_NA
