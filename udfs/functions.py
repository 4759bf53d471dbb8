"""Every function the model exposes, described once: formula-language name, Excel name, the pure
function behind it, its arguments with their help text, and the one guard that does the Excel
chores for all of them.

The guard is what both callers reach: Excel (through the thin xlwings layer in `udfs/xl.py`)
and the Python engine evaluating the model's formulas. It turns 1x1 ranges into scalars and
single rows or columns into lists, empty cells into None, text where a number belongs into
#VALUE!, an error value in an argument into that same error, undefined maths into #DIV/0! or
#NUM!, and any exception into #VALUE!, so that a Python traceback can never reach a cell.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from . import forecast, rating, ratios
from .constants import DEFAULT_BOUNDARY, DEFAULT_SCHEME, ERR_DIV0, ERR_NA, ERR_NUM, ERR_VALUE, EXCEL_ERRORS

NUMBER = "number"       # a required number
OPTIONAL = "optional"   # a number that may be left empty (its default is used)
TEXT = "text"           # text, may be empty
SERIES = "series"       # a single row or column of numbers (empty cells skipped)
ANY = "any"             # passed through; the function itself judges validity

CATEGORY = "Equity research"
PREFIX = "ER_"


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str
    help: str
    default: object = None
    required: bool | None = None  # None: OPTIONAL and TEXT arguments may be omitted, others not

    @property
    def optional(self) -> bool:
        return self.kind in (OPTIONAL, TEXT) if self.required is None else not self.required


@dataclass(frozen=True)
class ExcelFunction:
    excel_name: str
    formula_name: str
    impl: Callable
    args: tuple
    description: str


class _Reject(Exception):
    """An argument Excel passed that the function cannot take; carries the error value to show."""
    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


def _is_error(value) -> bool:
    return isinstance(value, str) and value.strip().upper() in EXCEL_ERRORS


def _scalar(value):
    """A 1x1 range arrives as a scalar or a nested list; anything larger is the wrong shape."""
    while isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise _Reject(ERR_VALUE)
        value = value[0]
    return value


def _number(value, optional: bool, default):
    value = _scalar(value)
    if value is None or (isinstance(value, str) and value == ""):
        if optional:
            return default
        raise _Reject(ERR_NA)  # a blank where a number is needed: the input is not available
    if _is_error(value):
        raise _Reject(value.strip().upper())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Reject(ERR_VALUE)  # text (even "12"), dates, booleans: not a number the model accepts
    if not math.isfinite(value):
        raise _Reject(ERR_NUM)
    return float(value)


def _text(value, default):
    value = _scalar(value)
    if value is None or value == "":
        return default
    if _is_error(value):
        raise _Reject(value.strip().upper())
    if not isinstance(value, str):
        raise _Reject(ERR_VALUE)
    return value.strip()


def _series(value):
    if not isinstance(value, (list, tuple)):
        value = [value]
    if value and all(isinstance(row, (list, tuple)) for row in value):
        rows = [list(row) for row in value]
        if len(rows) == 1:
            value = rows[0]
        elif all(len(row) == 1 for row in rows):
            value = [row[0] for row in rows]
        else:
            raise _Reject(ERR_VALUE)  # a block, not a row or a column
    return [_number(v, False, None) for v in value if v is not None and v != ""]


def _convert(arg: Arg, value):
    if arg.kind == NUMBER:
        return _number(value, False, None)
    if arg.kind == OPTIONAL:
        return _number(value, True, arg.default)
    if arg.kind == TEXT:
        return _text(value, arg.default)
    if arg.kind == SERIES:
        return _series(value)
    return value


def _result(value):
    if isinstance(value, bool):
        return ERR_VALUE
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else ERR_NUM
    if isinstance(value, str):
        return value
    if value is None:
        return ERR_NA
    return ERR_VALUE


def guard(spec: ExcelFunction) -> Callable:
    """The callable Excel's call reaches for `spec`: positional arguments as Excel passes them."""
    def guarded(*values):
        if len(values) > len(spec.args):
            return ERR_VALUE
        values = list(values) + [None] * (len(spec.args) - len(values))
        try:
            converted = [_convert(arg, value) for arg, value in zip(spec.args, values)]
            return _result(spec.impl(*converted))
        except _Reject as rejected:
            return rejected.error
        except ZeroDivisionError:
            return ERR_DIV0
        except OverflowError:
            return ERR_NUM
        except Exception:  # noqa: BLE001 - a cell must show an error value, never a traceback
            return ERR_VALUE
    guarded.__name__ = spec.excel_name
    guarded.__doc__ = spec.description
    return guarded


def _upside(price, target_price):
    """Target-price upside: target / price - 1; NM without a positive price and target."""
    valid = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                for v in (price, target_price))
    return target_price / price - 1.0 if valid else ratios.NOT_MEANINGFUL


def _check(actual: float, expected: float, tolerance: float):
    """'OK' when |actual - expected| <= tolerance, else 'FAIL'."""
    return "OK" if abs(actual - expected) <= abs(tolerance) else "FAIL"


def _rating(price, target_price, benchmark_return, dividends_per_share, scheme, boundary):
    return rating.rate(price, target_price, benchmark_return, dividends_per_share, scheme or DEFAULT_SCHEME, boundary or DEFAULT_BOUNDARY)


def _band(measure, scheme, boundary):
    return rating.classify(measure, scheme or DEFAULT_SCHEME, boundary or DEFAULT_BOUNDARY)


def _action(previous, current, scheme):
    previous = previous if isinstance(previous, str) and previous.strip() else None
    return rating.rating_action(previous, current, scheme or DEFAULT_SCHEME)


def _benchmark(ticker, scheme):
    return rating.benchmark_for(ticker, scheme or DEFAULT_SCHEME) or ERR_NA


def _f(excel, formula, impl, description, *args):
    return ExcelFunction(PREFIX + excel, formula, impl, tuple(args), description)


_PRIOR = Arg("prior", NUMBER, "Prior-year value of the line")
_HISTORY = Arg("values", SERIES, "A row or column of historical values, oldest first")

FUNCTIONS: tuple[ExcelFunction, ...] = (
    # Forecast methods: one scalar function each, so a single year can be filled right or overridden.
    _f("GROWTH", "grow", forecast.grow, "Prior-year value grown by a rate: prior x (1 + rate).",
       _PRIOR, Arg("rate", NUMBER, "Growth rate as a decimal, 0.1 for 10%")),
    _f("STEP", "step", forecast.step, "Prior-year value plus a fixed increment.",
       _PRIOR, Arg("increment", NUMBER, "Increment in money, 0 for a flat line")),
    _f("FIXED", "fixed", forecast.fixed, "A fixed amount for the year (the driver itself).",
       Arg("amount", NUMBER, "The amount")),
    _f("SHARE", "share_of", forecast.share_of, "A line as a share of another line: base x ratio.",
       Arg("base_value", NUMBER, "The line it is a share of, same year"), Arg("ratio", NUMBER, "Share as a decimal")),
    _f("COST_SHARE", "cost_share", forecast.cost_share, "A cost as a share of another line, negative: -base x ratio.",
       Arg("base_value", NUMBER, "The line it is a share of, e.g. revenue or pre-tax profit"), Arg("ratio", NUMBER, "Cost ratio or tax rate as a decimal")),
    _f("COST_FROM_MARGIN", "cost_from_margin", forecast.cost_from_margin, "Cost of sales from a gross margin, negative: -revenue x (1 - margin).",
       Arg("revenue", NUMBER, "Revenue of the year"), Arg("gross_margin", NUMBER, "Gross margin as a decimal")),
    _f("DAYS_BALANCE", "days_balance", forecast.days_balance, "Working-capital balance held for a number of days of an annual flow.",
       Arg("flow", NUMBER, "Annual revenue (receivables) or cost of sales (inventory, payables)"),
       Arg("days", NUMBER, "Days held"), Arg("days_in_year", OPTIONAL, "Days in the year, 365 if empty", 365.0)),
    _f("CAGR", "cagr", forecast.cagr, "Compound annual growth over n values: (last/first)^(1/(n-1)) - 1.", _HISTORY),
    _f("AVG_GROWTH", "average_growth", forecast.average_growth, "Average of the year-on-year growth rates of a history.", _HISTORY),
    _f("TREND", "linear_trend", forecast.linear_trend, "Least-squares straight line through a history, read some periods after its end.",
       _HISTORY, Arg("periods_ahead", OPTIONAL, "Periods after the last value, 1 if empty", 1.0)),
    # Ratios.
    _f("GROWTH_RATE", "growth_rate", ratios.growth_rate, "Year-on-year growth: current / prior - 1; NM from a non-positive base.",
       Arg("current", NUMBER, "This year's value"), _PRIOR),
    _f("MARGIN", "margin", ratios.margin, "A line as a share of revenue; NM for non-positive revenue.",
       Arg("profit_line", NUMBER, "Profit line"), Arg("revenue", NUMBER, "Revenue")),
    _f("RETURN_ON", "return_on", ratios.return_on, "Return on a balance (ROE, ROA); NM for a non-positive balance.",
       Arg("profit", NUMBER, "Profit for the year"), Arg("base_value", NUMBER, "Equity or total assets")),
    _f("RATIO", "coverage", ratios.coverage, "A ratio of two balances; NM for a non-positive denominator.",
       Arg("numerator", NUMBER, "Numerator"), Arg("denominator", NUMBER, "Denominator")),
    _f("QUICK_RATIO", "quick_ratio", ratios.quick_ratio, "(Current assets - inventory) / current liabilities.",
       Arg("current_assets", NUMBER, "Current assets"), Arg("inventory", NUMBER, "Inventory"), Arg("current_liabilities", NUMBER, "Current liabilities")),
    _f("NET_GEARING", "net_gearing", ratios.net_gearing, "(Borrowings - cash) / total equity; negative is net cash.",
       Arg("debt", NUMBER, "Short- and long-term borrowings"), Arg("cash", NUMBER, "Cash and short-term investments"), Arg("equity", NUMBER, "Total equity")),
    _f("DAYS", "turnover_days", ratios.turnover_days, "Days of an annual flow held in a balance.",
       Arg("balance", NUMBER, "Receivables, inventory or payables"), Arg("flow", NUMBER, "Annual revenue or cost of sales"),
       Arg("days_in_year", OPTIONAL, "Days in the year, 365 if empty", 365.0)),
    _f("PER_SHARE", "per_share", ratios.per_share, "An amount per share; amount and shares in the same unit.",
       Arg("amount", NUMBER, "Profit, equity or cash flow"), Arg("shares", NUMBER, "Shares")),
    _f("MULTIPLE", "price_to", ratios.price_to, "Price multiple (P/E, P/B); NM for non-positive earnings or book value.",
       Arg("price", NUMBER, "Share price in the reporting currency"), Arg("per_share_value", NUMBER, "EPS or BVPS")),
    _f("LOCAL_PRICE", "local_price", ratios.local_price, "Quoted price in the reporting currency: price x FX.",
       Arg("price", NUMBER, "Quoted price"), Arg("fx_rate", NUMBER, "Reporting currency per unit of quote currency")),
    _f("EV", "enterprise_value", ratios.enterprise_value, "Enterprise value: market cap + borrowings - cash + minority interest.",
       Arg("market_cap", NUMBER, "Market capitalisation"), Arg("debt", NUMBER, "Borrowings"), Arg("cash", NUMBER, "Cash and short-term investments"), Arg("minority", NUMBER, "Minority interest")),
    _f("EV_EBITDA", "ev_to_ebitda", ratios.ev_to_ebitda, "EV / EBITDA; NM for non-positive EBITDA.",
       Arg("ev", NUMBER, "Enterprise value"), Arg("ebitda", NUMBER, "EBITDA")),
    _f("DIV_YIELD", "dividend_yield", ratios.dividend_yield, "Dividend yield from the cash-flow dividends line (negative when paid).",
       Arg("dividends", NUMBER, "Dividends paid, cash-flow sign"), Arg("shares", NUMBER, "Shares"), Arg("price", NUMBER, "Price in the reporting currency")),
    # Rating.
    _f("UPSIDE", "upside", _upside, "Target-price upside: target / price - 1 (NM without a target).",
       Arg("price", ANY, "Current price"), Arg("target_price", ANY, "Target price, same currency")),
    _f("EXPECTED_RETURN", "expected_return", rating.expected_return, "Expected total return: (target + dividends) / price - 1.",
       Arg("price", ANY, "Current price"), Arg("target_price", ANY, "Target price, same currency"), Arg("dividends_per_share", ANY, "Dividends per share to the horizon, 0 if empty", required=False)),
    _f("EXCESS_RETURN", "excess_return", rating.excess_return, "Expected return minus the benchmark's return.",
       Arg("stock_return", ANY, "Expected return of the stock"), Arg("benchmark_return", ANY, "Expected return of the benchmark index")),
    _f("RATING", "rate", _rating, "Broker rating from a target price (unrated when an input is missing).",
       Arg("price", ANY, "Current price"), Arg("target_price", ANY, "Target price, same currency"),
       Arg("benchmark_return", ANY, "Benchmark's expected return (relative schemes)", required=False),
       Arg("dividends_per_share", ANY, "Dividends per share to the horizon, 0 if empty", required=False),
       Arg("scheme", TEXT, "Rating scheme key, everbright if empty", DEFAULT_SCHEME), Arg("boundary", TEXT, "outer or inner, outer if empty", DEFAULT_BOUNDARY)),
    _f("RATING_BAND", "classify", _band, "The rating band of a return measure.",
       Arg("measure", ANY, "Excess (or absolute) return as a decimal"),
       Arg("scheme", TEXT, "Rating scheme key, everbright if empty", DEFAULT_SCHEME), Arg("boundary", TEXT, "outer or inner, outer if empty", DEFAULT_BOUNDARY)),
    _f("RATING_ACTION", "rating_action", _action, "Rating action against the previous rating: first, maintain, upgrade or downgrade.",
       Arg("previous", ANY, "Previous rating, empty if none"), Arg("current", ANY, "Current rating"),
       Arg("scheme", TEXT, "Rating scheme key, everbright if empty", DEFAULT_SCHEME)),
    _f("BENCHMARK", "benchmark", _benchmark, "The scheme's benchmark index for a ticker or market.",
       Arg("ticker", TEXT, "Ticker such as 1810.HK, or a market code HK / A / US", required=True),
       Arg("scheme", TEXT, "Rating scheme key, everbright if empty", DEFAULT_SCHEME)),
    # Checks.
    _f("CHECK", "check", _check, "OK when two values agree within a tolerance, else FAIL.",
       Arg("actual", NUMBER, "Computed value"), Arg("expected", NUMBER, "Value it must equal"),
       Arg("tolerance", OPTIONAL, "Largest difference allowed, 0.001 if empty", 0.001)),
)

BY_EXCEL_NAME = {f.excel_name: f for f in FUNCTIONS}
BY_FORMULA_NAME = {f.formula_name: f for f in FUNCTIONS}
GUARDED = {f.formula_name: guard(f) for f in FUNCTIONS}
# The same guarded callables by worksheet name: what headless evaluation calls without importing
# xlwings (udfs.xl's wrappers only forward to these).
GUARDED_BY_EXCEL_NAME = {f.excel_name: GUARDED[f.formula_name] for f in FUNCTIONS}
