"""Financial ratios, in the report's definitions where it gives one.

Inputs are numbers in one consistent unit (百万人民币 for money, 百万股 for shares, 元 per share);
results are decimals (0.22 is 22%), multiples (P/E 22.3x) or days. A ratio whose denominator is
zero or negative, where a negative denominator would give a misleading sign (negative earnings,
negative equity, negative revenue), returns NOT_MEANINGFUL ("NM") instead of a number.
"""
from __future__ import annotations

from .constants import DAYS_IN_YEAR, NOT_MEANINGFUL

Number = float
Result = float | str


def _over_positive(numerator: Number, denominator: Number) -> Result:
    """numerator / denominator, NOT_MEANINGFUL unless the denominator is positive."""
    if denominator <= 0:
        return NOT_MEANINGFUL
    return numerator / denominator


def growth_rate(current: Number, prior: Number) -> Result:
    """Year-on-year growth, current / prior - 1. NM when the prior year is zero or negative:
    a swing from a loss to a profit has no meaningful growth rate."""
    if prior <= 0:
        return NOT_MEANINGFUL
    return current / prior - 1.0


def margin(line: Number, revenue: Number) -> Result:
    """A line as a share of revenue (gross, operating, net, EBITDA margin). NM for revenue <= 0."""
    return _over_positive(line, revenue)


def return_on(profit: Number, base: Number) -> Result:
    """Return on a balance (ROE on shareholders' equity, ROA on total assets), on year-end
    balances as broker summary tables usually show. NM when the base is not positive."""
    return _over_positive(profit, base)


def coverage(numerator: Number, denominator: Number) -> Result:
    """A plain ratio of two balances (current ratio, debt ratio). NM when the denominator is not positive."""
    return _over_positive(numerator, denominator)


def quick_ratio(current_assets: Number, inventory: Number, current_liabilities: Number) -> Result:
    """(Current assets - inventory) / current liabilities."""
    return _over_positive(current_assets - inventory, current_liabilities)


def net_gearing(debt: Number, cash: Number, equity: Number) -> Result:
    """(Borrowings - cash and short-term investments) / total equity; negative means net cash."""
    return _over_positive(debt - cash, equity)


def turnover_days(balance: Number, annual_flow: Number, days_in_year: Number = DAYS_IN_YEAR) -> Result:
    """Days of an annual flow held in a balance: receivables on revenue, inventory and payables
    on cost of sales. The flow's sign is ignored (costs are negative); NM for a zero flow."""
    flow = abs(annual_flow)
    if flow == 0:
        return NOT_MEANINGFUL
    return balance / flow * days_in_year


def per_share(amount: Number, shares: Number) -> Result:
    """An amount per share (EPS, BVPS, CFO per share); amount and shares in the same unit (百万)."""
    return _over_positive(amount, shares)


def price_to(price: Number, per_share_value: Number) -> Result:
    """A price multiple: P/E on EPS, P/B on BVPS. NM when the per-share value is not positive
    (a negative-earnings P/E is not a low P/E). Price and per-share value in one currency."""
    if price <= 0:
        return NOT_MEANINGFUL
    return _over_positive(price, per_share_value)


def local_price(price: Number, fx_rate: Number) -> Result:
    """A quoted price in the reporting currency: 40.20 HKD x 0.9049 = 36.38 CNY."""
    if price <= 0 or fx_rate <= 0:
        return NOT_MEANINGFUL
    return price * fx_rate


def enterprise_value(market_cap: Number, debt: Number, cash: Number, minority: Number) -> Number:
    """Market value of equity + borrowings - cash and short-term investments + minority interest."""
    return market_cap + debt - cash + minority


def ev_to_ebitda(ev: Number, ebitda: Number) -> Result:
    """EV / EBITDA. NM when EBITDA is not positive."""
    return _over_positive(ev, ebitda)


def dividend_yield(dividends_paid: Number, shares: Number, price: Number) -> Result:
    """Dividends per share / price. `dividends_paid` is the cash-flow line (negative when paid)."""
    if shares <= 0 or price <= 0:
        return NOT_MEANINGFUL
    return -dividends_paid / shares / price
