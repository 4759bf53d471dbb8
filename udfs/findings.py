"""Where a report disagrees with itself, found by computation on its printed figures.

Every line whose formula is one of the report's own definitions (a subtotal, a roll-forward, a
growth rate, EPS on the share count) is recomputed from the printed figures it reads, and
compared with the printed figure at the precision the report prints it. A mismatch is a
finding. Each finding also says whether the report's own rounding can explain it: every printed
number stands for an interval (1.63 is anything in [1.625, 1.635)), and interval arithmetic
tells whether some true values behind the prints satisfy the definition. Figures the report
prints in two tables (the summary and Table 1) are compared with each other as well.
"""
from __future__ import annotations

import math

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

from . import formula as fx
from .engine import FORECAST, Line, Year


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float

    @staticmethod
    def of(value: float, decimals: int) -> "Interval":
        half = 0.5 * 10 ** (-decimals)
        return Interval(value - half, value + half)

    @staticmethod
    def exact(value: float) -> "Interval":
        return Interval(value, value)


def _interval_arith(op: str, a, b):
    a = a if isinstance(a, Interval) else Interval.exact(float(a))
    b = b if isinstance(b, Interval) else Interval.exact(float(b))
    if op == "+":
        return Interval(a.lo + b.lo, a.hi + b.hi)
    if op == "-":
        return Interval(a.lo - b.hi, a.hi - b.lo)
    if op == "*":
        products = (a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi)
        return Interval(min(products), max(products))
    if b.lo <= 0 <= b.hi:
        raise _Undefined
    return _interval_arith("*", a, Interval(1 / b.hi, 1 / b.lo))


def _point_arith(op: str, a: float, b: float) -> float:
    if op == "/" and b == 0:
        raise _Undefined
    return a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b


class _Undefined(Exception):
    """A printed figure the definition needs is missing, or a denominator spans zero."""


def _functions(arith):
    """The report definitions the findings can recompute, in the given arithmetic (points or
    intervals). A function not listed here makes its line undefined for the findings."""
    def ratio(a, b):
        return arith("/", a, b)
    return {
        "per_share": ratio, "price_to": ratio, "margin": ratio, "return_on": ratio, "coverage": ratio,
        "ev_to_ebitda": ratio,
        "local_price": lambda price, fx_rate: arith("*", price, fx_rate),
        "growth_rate": lambda current, prior: arith("-", arith("/", current, prior), 1.0),
        "quick_ratio": lambda assets, inventory, liabilities: arith("/", arith("-", assets, inventory), liabilities),
        "net_gearing": lambda debt, cash, equity: arith("/", arith("-", debt, cash), equity),
        "turnover": lambda flow, opening, closing: arith("/", flow, arith("/", arith("+", opening, closing), 2.0)),
        "enterprise_value": lambda cap, debt, cash, minority: arith("+", arith("-", arith("+", cap, debt), cash), minority),
    }


class _Known(dict):
    """The recomputable functions; any other makes the definition undefined, not an error."""
    def __missing__(self, name):
        raise _Undefined


@dataclass(frozen=True)
class Printed:
    value: float
    decimals: int
    percent: bool = False  # printed in percent points (30.1 for 30.1%)

    def as_fraction(self) -> "Printed":
        return Printed(self.value / 100, self.decimals + 2) if self.percent else self


@dataclass(frozen=True)
class Finding:
    kind: str           # "definition" or "two tables" or "market data"
    table: str
    key: str
    label: str
    year: str
    printed: float
    computed: float     # from the printed figures, at the printed precision
    exact: float        # from the printed figures, unrounded
    within_rounding: bool
    explanation: str
    decimals: int = 0
    percent: bool = False

    def shown(self, value: float) -> str:
        return f"{value:,.{self.decimals}f}" + ("%" if self.percent else "")

    def line(self) -> str:
        why = "within the rounding of the printed inputs" if self.within_rounding else "beyond rounding"
        return (f"{self.table} {self.label} {self.year}: printed {self.shown(self.printed)}, "
                f"computed {self.shown(self.computed)} ({why}; {self.explanation})")


def quantize_half_up(value: float | Decimal, decimals: int) -> Decimal:
    """`value` (a float taken at its shortest repr) to `decimals` places, halves away from zero,
    as the report, Excel's ROUND and its TEXT display round; negative `decimals` round to tens,
    hundreds... The context is wide enough for any float at any place Excel allows."""
    exact = value if isinstance(value, Decimal) else Decimal(repr(value))
    with localcontext() as context:
        context.prec = 1000
        return exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def round_half_up(value: float, decimals: int) -> float:
    """Rounding as the report and Excel display it: halves away from zero."""
    return float(quantize_half_up(value, decimals))


def displays_as(value: float, printed: float, decimals: int) -> bool:
    """Whether `value` shows as `printed` at that precision, as Excel shows it: the sign of the
    value picks the format's section, so -0.15 shows "-0", not the "0" a note prints."""
    if abs(value) < 1e-9:
        # a sum or difference that cancels to a floating-point remainder (-1.1e-13): Excel sets
        # the last step of such a calculation to 0, and shows 0, not -0
        value = 0.0
    shown = round_half_up(value, decimals)
    return shown == printed and not (shown == 0 and value < 0 and math.copysign(1.0, printed) > 0)


def find(lines: list[Line], years: list[Year], printed: dict, scalars: dict, table_order: list[str]) -> list[Finding]:
    """Every mismatch of the printed figures with the report's own definitions.

    `printed[(table, key, year_label)]` is a `Printed`; `scalars[key]` a `Printed` for one-value
    inputs (price, FX, shares). `table_order` says which table's print a reference reads first
    after the line's own table.
    """
    findings = []
    labels = [y.label for y in years]
    forecast = {y.label for y in years if y.kind == FORECAST}

    def lookup_for(table: str, pos: int, mode: str):
        return _print_lookup(printed, scalars, labels, [table] + table_order, pos, mode)

    for line in lines:
        if not line.identity or not line.formula:
            continue
        tree = fx.parse(line.formula)
        for (table, key, year), shown in sorted(printed.items(), key=lambda kv: (kv[0][0], labels.index(kv[0][2]))):
            if key != line.key or table != line.table or (line.identity_years == FORECAST and year not in forecast):
                continue
            pos = labels.index(year)
            try:
                exact = fx.evaluate(tree, lookup_for(table, pos, "point"), _Known(_functions(_point_arith)), _point_arith)
                bounds = fx.evaluate(tree, lookup_for(table, pos, "interval"), _Known(_functions(_interval_arith)), _interval_arith)
            except _Undefined:
                continue
            scale = 100 if shown.percent else 1
            computed = round_half_up(exact * scale, shown.decimals)
            if computed == shown.value:
                continue
            target = Interval.of(shown.value / scale, shown.decimals + (2 if shown.percent else 0))
            within = bounds.lo <= target.hi and target.lo <= bounds.hi
            findings.append(Finding("definition", table, key, line.label_zh, year, shown.value,
                                    computed, exact * scale, within,
                                    f"{line.label_en} = {line.formula}" + (f"; {line.note}" if line.note else ""),
                                    shown.decimals, shown.percent))

    by_key_year = {}
    for (table, key, year), shown in printed.items():
        by_key_year.setdefault((key, year), []).append((table, shown))
    for (key, year), prints in sorted(by_key_year.items(), key=lambda kv: (kv[0][0], labels.index(kv[0][1]))):
        values = {shown.value for _, shown in prints}
        if len(values) > 1:
            (t1, p1), (t2, p2) = prints[0], prints[1]
            line = next((l for l in lines if l.key == key), None)
            label = line.label_zh if line else key
            findings.append(Finding("two tables", f"{t1} / {t2}", key, label, year, p2.value, p1.value, p1.value, False,
                                    f"{t1} prints {p1.value:g}, {t2} prints {p2.value:g}", p1.decimals, p1.percent))
    return findings


def _print_lookup(printed: dict, scalars: dict, labels: list, tables: list, pos: int, mode: str):
    """How a definition reads the print in the year at `pos`: a printed figure as its value
    ("point") or as the interval its rounding allows ("interval"), from the first table of
    `tables` that prints it; _Undefined where none does."""
    def lookup(key: str, lag: int):
        if key in scalars:
            p = scalars[key].as_fraction()
            return Interval.of(p.value, p.decimals) if mode == "interval" else p.value
        if pos - lag < 0:
            raise _Undefined
        year = labels[pos - lag]
        for t in tables:
            p = printed.get((t, key, year))
            if p is not None:
                p = p.as_fraction()
                return Interval.of(p.value, p.decimals) if mode == "interval" else p.value
        raise _Undefined
    return lookup


def print_bounds(formula: str, years: list[Year], printed: dict, scalars: dict, tables: list, year: str) -> Interval | None:
    """Every value `formula` can take in `year` from the true figures behind the print (each
    printed figure stands for the interval its rounding allows); None where a figure it reads
    is not printed or a denominator may be zero."""
    labels = [y.label for y in years]
    try:
        return fx.evaluate(fx.parse(formula), _print_lookup(printed, scalars, labels, tables, labels.index(year), "interval"),
                           _Known(_functions(_interval_arith)), _interval_arith)
    except _Undefined:
        return None


def market_cap_finding(price: Printed, shares_100mn: Printed, market_cap_100mn: Printed, currency: str = "") -> Finding | None:
    """The printed market cap against price x printed share count (both in the quote currency)."""
    exact = price.value * shares_100mn.value
    computed = round_half_up(exact, market_cap_100mn.decimals)
    if computed == market_cap_100mn.value:
        return None
    bounds = _interval_arith("*", Interval.of(price.value, price.decimals), Interval.of(shares_100mn.value, shares_100mn.decimals))
    target = Interval.of(market_cap_100mn.value, market_cap_100mn.decimals)
    implied_shares = market_cap_100mn.value / price.value
    return Finding("market data", "market", "market_cap", f"总市值（亿{currency}）", "", market_cap_100mn.value, computed, exact,
                   bounds.lo <= target.hi and target.lo <= bounds.hi,
                   f"price {price.value:.2f} x {shares_100mn.value:g}亿股; the print implies {implied_shares:.4f}亿股",
                   market_cap_100mn.decimals)
