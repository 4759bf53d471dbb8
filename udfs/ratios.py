"""Financial ratios, in the report's definitions where it gives one.

Inputs are numbers in one consistent unit (百万人民币 for money, 百万股 for shares, 元 per share);
results are decimals (0.22 is 22%), multiples (P/E 22.3x) or days. A ratio whose denominator is
zero or negative, where a negative denominator would give a misleading sign (negative earnings,
negative equity, negative revenue), returns NOT_MEANINGFUL ("NM") instead of a number.
"""
from __future__ import annotations

import math

from .constants import DAYS_IN_YEAR, NOT_MEANINGFUL
from .registry import ANY, NUMBER, OPTIONAL, Arg, cell_scalar, excel_function, is_error

Number = float
Result = float | str


_POSITIVE_QUOTIENT = "IF({1}<=0,{NM},{0}/{1})"  # over_positive as a native Excel formula


@excel_function("GROWTH_RATE", "Year-on-year growth: current / prior - 1; NM from a non-positive base.", Arg("current", NUMBER, "This year's value"), Arg("prior", NUMBER, "Prior-year value of the line"), native="IF({1}<=0,{NM},{0}/{1}-1)",
                sample=(475994.0, 365906.0))
def growth_rate(current: Number, prior: Number) -> Result:
    """Year-on-year growth, current / prior - 1. NM when the prior year is zero or negative:
    a swing from a loss to a profit has no meaningful growth rate."""
    if prior <= 0:
        return NOT_MEANINGFUL
    return current / prior - 1.0


# One quotient, five Excel names: each name carries its own argument help and sample, so an
# analyst reads "profit line / revenue" on MARGIN and "EV / EBITDA" on EV_EBITDA, while the
# definition of "NM below a positive denominator" lives once.
@excel_function("MARGIN", "A line as a share of revenue; NM for non-positive revenue.", Arg("profit_line", NUMBER, "Profit line"), Arg("revenue", NUMBER, "Revenue"), native=_POSITIVE_QUOTIENT,
                sample=(104990.0, 475994.0), formula_name="margin")
@excel_function("RETURN_ON", "Return on a balance (ROE, ROA); NM for a non-positive balance.", Arg("profit", NUMBER, "Profit for the year"), Arg("base_value", NUMBER, "Equity or total assets"), native=_POSITIVE_QUOTIENT,
                sample=(45650.0, 234222.0), formula_name="return_on")
@excel_function("RATIO", "A ratio of two balances; NM for a non-positive denominator.", Arg("numerator", NUMBER, "Numerator"), Arg("denominator", NUMBER, "Denominator"), native=_POSITIVE_QUOTIENT,
                sample=(255957.0, 233364.0), formula_name="coverage")
@excel_function("PER_SHARE", "An amount per share; amount and shares in the same unit.", Arg("amount", NUMBER, "Profit, equity or cash flow"), Arg("shares", NUMBER, "Shares"), native=_POSITIVE_QUOTIENT,
                sample=(42581.0, 26045.0), formula_name="per_share")
@excel_function("EV_EBITDA", "EV / EBITDA; NM for non-positive EBITDA.", Arg("ev", NUMBER, "Enterprise value"), Arg("ebitda", NUMBER, "EBITDA"), native=_POSITIVE_QUOTIENT,
                sample=(872115.0, 59555.0), formula_name="ev_to_ebitda")
def over_positive(numerator: Number, denominator: Number) -> Result:
    """numerator / denominator, NOT_MEANINGFUL unless the denominator is positive.

    Under its Excel names: a margin (gross, operating, net, EBITDA) on revenue; a return (ROE on
    shareholders' equity, ROA on total assets) on year-end balances, as broker summary tables
    usually show; a plain ratio of two balances (current ratio, debt ratio); an amount per share
    (EPS, BVPS, CFO per share, amount and shares in one unit, 百万); EV / EBITDA. A negative
    denominator (negative revenue, equity, shares or EBITDA) would give a misleading sign."""
    if denominator <= 0:
        return NOT_MEANINGFUL
    return numerator / denominator


@excel_function("QUICK_RATIO", "(Current assets - inventory) / current liabilities.", Arg("current_assets", NUMBER, "Current assets"), Arg("inventory", NUMBER, "Inventory"), Arg("current_liabilities", NUMBER, "Current liabilities"), native="IF({2}<=0,{NM},({0}-{1})/{2})",
                sample=(255957.0, 71701.0, 233364.0))
def quick_ratio(current_assets: Number, inventory: Number, current_liabilities: Number) -> Result:
    """(Current assets - inventory) / current liabilities."""
    return over_positive(current_assets - inventory, current_liabilities)


@excel_function("NET_GEARING", "(Borrowings - cash) / total equity; negative is net cash.", Arg("debt", NUMBER, "Short- and long-term borrowings"), Arg("cash", NUMBER, "Cash and short-term investments"), Arg("equity", NUMBER, "Total equity"), native="IF({2}<=0,{NM},({0}-{1})/{2})",
                sample=(42103.0, 117725.0, 234621.0))
def net_gearing(debt: Number, cash: Number, equity: Number) -> Result:
    """(Borrowings - cash and short-term investments) / total equity; negative means net cash."""
    return over_positive(debt - cash, equity)


@excel_function("DAYS", "Days of an annual flow held in a balance.", Arg("balance", NUMBER, "Receivables, inventory or payables"), Arg("flow", NUMBER, "Annual revenue or cost of sales"), Arg("days_in_year", OPTIONAL, "Days in the year, 365 if empty", float(DAYS_IN_YEAR)), native="IF(ABS({1})=0,{NM},{0}/ABS({1})*{2})",
                sample=(18278.0, 475994.0, None))
def turnover_days(balance: Number, annual_flow: Number, days_in_year: Number = DAYS_IN_YEAR) -> Result:
    """Days of an annual flow held in a balance: receivables on revenue, inventory and payables
    on cost of sales. The flow's sign is ignored (costs are negative); NM for a zero flow."""
    flow = abs(annual_flow)
    if flow == 0:
        return NOT_MEANINGFUL
    return balance / flow * days_in_year


@excel_function("TURNOVER", "Turnover on the average balance: flow / ((opening + closing) / 2); NM for a non-positive average.",
                Arg("flow", NUMBER, "Annual flow: revenue or cost of sales"), Arg("opening", NUMBER, "Balance at the start of the year"),
                Arg("closing", NUMBER, "Balance at the end of the year"), native="IF(({1}+{2})/2<=0,{NM},ABS({0})/(({1}+{2})/2))",
                sample=(10460.0, 456.0, 554.0))
def turnover(flow: Number, opening: Number, closing: Number) -> Result:
    """Times a year an average balance turns over: total-asset, receivable and payable turnover
    as mainland notes print them (营运能力). The sign of a cost flow is ignored."""
    return over_positive(abs(flow), (opening + closing) / 2.0)


@excel_function("MULTIPLE", "Price multiple (P/E, P/B); NM for non-positive earnings or book value.", Arg("price", NUMBER, "Share price in the reporting currency"), Arg("per_share_value", NUMBER, "EPS or BVPS"), native="IF({0}<=0,{NM},IF({1}<=0,{NM},{0}/{1}))",
                sample=(36.377, 1.635))
def price_to(price: Number, per_share_value: Number) -> Result:
    """A price multiple: P/E on EPS, P/B on BVPS. NM when the per-share value is not positive
    (a negative-earnings P/E is not a low P/E). Price and per-share value in one currency."""
    if price <= 0:
        return NOT_MEANINGFUL
    return over_positive(price, per_share_value)


@excel_function("LOCAL_PRICE", "Quoted price in the reporting currency: price x FX.", Arg("price", NUMBER, "Quoted price"), Arg("fx_rate", NUMBER, "Reporting currency per unit of quote currency"), native="IF(OR({0}<=0,{1}<=0),{NM},{0}*{1})",
                sample=(40.2, 0.9049))
def local_price(price: Number, fx_rate: Number) -> Result:
    """A quoted price in the reporting currency: price x FX (40.20 x 0.9049 = 36.38)."""
    if price <= 0 or fx_rate <= 0:
        return NOT_MEANINGFUL
    return price * fx_rate


@excel_function("EV", "Enterprise value: market cap + borrowings - cash + minority interest.", Arg("market_cap", NUMBER, "Market capitalisation"), Arg("debt", NUMBER, "Borrowings"), Arg("cash", NUMBER, "Cash and short-term investments"), Arg("minority", NUMBER, "Minority interest"), native="{0}+{1}-{2}+{3}",
                sample=(947438.0, 42103.0, 117725.0, 399.0))
def enterprise_value(market_cap: Number, debt: Number, cash: Number, minority: Number) -> Number:
    """Market value of equity + borrowings - cash and short-term investments + minority interest."""
    return market_cap + debt - cash + minority


@excel_function("DIV_YIELD", "Dividend yield from the cash-flow dividends line (negative when paid).", Arg("dividends", NUMBER, "Dividends paid, cash-flow sign"), Arg("shares", NUMBER, "Shares"), Arg("price", NUMBER, "Price in the reporting currency"), native="IF(OR({1}<=0,{2}<=0),{NM},-{0}/{1}/{2})",
                sample=(0.0, 26045.0, 36.377))
def dividend_yield(dividends_paid: Number, shares: Number, price: Number) -> Result:
    """Dividends per share / price. `dividends_paid` is the cash-flow line (negative when paid)."""
    if shares <= 0 or price <= 0:
        return NOT_MEANINGFUL
    return -dividends_paid / shares / price


@excel_function("CHANGE", "The change of a figure over the year: current - prior; NM when either is not a number (a margin on no revenue).",
                Arg("current", ANY, "This year's figure"), Arg("prior", ANY, "The prior year's figure"),
                native="IF(ISERROR({0}),{0},IF(ISERROR({1}),{1},IF(AND(ISNUMBER({0}),ISNUMBER({1})),{0}-{1},{NM})))",
                sample=(0.2206, 0.2090))
def change(current, prior) -> Result:
    """current - prior: a margin's move in points (as a decimal). An error value in either passes
    through; anything else that is not a number (NM, text, an empty cell) makes the change NM."""
    for value in (current, prior):
        value = cell_scalar(value)
        if is_error(value):
            return value.strip().upper()
    current, prior = cell_scalar(current), cell_scalar(prior)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (current, prior))
    return current - prior if numbers else NOT_MEANINGFUL
