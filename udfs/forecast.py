"""Forecast methods: how one line of a future year is made from its drivers.

Every function is a plain function of numbers. Money is in the company's reporting unit
(百万元 in the sample models); rates and margins are decimals (0.175 is 17.5%); days are calendar days
on a 365-day year. Costs follow the report's sign convention: they are negative numbers.

Functions that summarise a history (CAGR, average growth, trend) return NOT_MEANINGFUL when
the maths is undefined (a non-positive starting value, fewer than two observations).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .constants import DAYS_IN_YEAR, NOT_MEANINGFUL
from .registry import ANY, NUMBER, OPTIONAL, SERIES, Arg, cell_number, cell_row, excel_function

_PRIOR = Arg("prior", NUMBER, "Prior-year value of the line")
_HISTORY = Arg("values", SERIES, "A row or column of historical values, oldest first")


@excel_function("GROWTH", "Prior-year value grown by a rate: prior x (1 + rate).", _PRIOR, Arg("rate", NUMBER, "Growth rate as a decimal, 0.1 for 10%"), native="{0}*(1+{1})",
                sample=(191759.0, 0.0409))
def grow(prior: float, rate: float) -> float:
    """Prior-year value grown by `rate` (0.10 is +10%)."""
    return prior * (1.0 + rate)


@excel_function("STEP", "Prior-year value plus a fixed increment.", _PRIOR, Arg("increment", NUMBER, "Increment in money, 0 for a flat line"), native="{0}+{1}",
                sample=(36806.0, 0.0))
def step(prior: float, increment: float) -> float:
    """Prior-year value plus a fixed increment in money (a flat line is an increment of 0)."""
    return prior + increment


@excel_function("FIXED", "A fixed amount for the year (the driver itself).", Arg("amount", NUMBER, "The amount"), native="{0}",
                sample=(4000.0,))
def fixed(amount: float) -> float:
    """A fixed amount typed by the analyst for that year."""
    return amount


@excel_function("SHARE", "A line as a share of another line: base x ratio.", Arg("base_value", NUMBER, "The line it is a share of, same year"), Arg("ratio", NUMBER, "Share as a decimal"), native="{0}*{1}",
                sample=(475994.0, 0.1014))
def share_of(base: float, ratio: float) -> float:
    """A line as a share of another line of the same year (e.g. other current assets at 10% of revenue)."""
    return base * ratio


@excel_function("COST_SHARE", "A cost as a share of another line, negative: -base x ratio.", Arg("base_value", NUMBER, "The line it is a share of, e.g. revenue or pre-tax profit"), Arg("ratio", NUMBER, "Cost ratio or tax rate as a decimal"), native="-{0}*{1}",
                sample=(475994.0, 0.1525))
def cost_share(base: float, ratio: float) -> float:
    """A cost as a positive share of another line, shown negative as the report shows costs.

    Opex at 15.25% of revenue is cost_share(revenue, 0.1525); income tax at a 17.5% effective
    rate is cost_share(pre-tax profit, 0.175).
    """
    return -base * ratio


@excel_function("COST_FROM_MARGIN", "Cost of sales from a gross margin, negative: -revenue x (1 - margin).", Arg("revenue", NUMBER, "Revenue of the year"), Arg("gross_margin", NUMBER, "Gross margin as a decimal"), native="-{0}*(1-{1})",
                sample=(475994.0, 0.2206))
def cost_from_margin(revenue: float, gross_margin: float) -> float:
    """Cost of sales implied by a gross margin, negative: -revenue x (1 - margin)."""
    return -revenue * (1.0 - gross_margin)


@excel_function("DAYS_BALANCE", "Working-capital balance held for a number of days of an annual flow.", Arg("flow", NUMBER, "Annual revenue (receivables) or cost of sales (inventory, payables)"), Arg("days", NUMBER, "Days held"), Arg("days_in_year", OPTIONAL, "Days in the year, 365 if empty", float(DAYS_IN_YEAR)), native="ABS({0})*{1}/{2}",
                sample=(371004.0, 70.5, None))
def days_balance(flow: float, days: float, days_in_year: float = DAYS_IN_YEAR) -> float:
    """A working-capital balance held for `days` of an annual flow.

    Receivables use revenue; inventory and payables use cost of sales. The flow's sign is
    ignored (cost of sales is negative in the report), the balance is positive.
    """
    return abs(flow) * days / days_in_year


@excel_function("CAGR", "Compound annual growth over n values: (last/first)^(1/(n-1)) - 1.", _HISTORY, native=None,
                sample=([[270970.0], [365906.0], [475994.0]],))
def cagr(values: Sequence[float]) -> float | str:
    """Compound annual growth over n observations: (last / first) ** (1 / (n - 1)) - 1.

    n observations span n - 1 years: the usual off-by-one is to divide by n.
    NOT_MEANINGFUL for fewer than two values, a non-positive first value or a negative last one.
    """
    if len(values) < 2 or values[0] <= 0 or values[-1] < 0:
        return NOT_MEANINGFUL
    return (values[-1] / values[0]) ** (1.0 / (len(values) - 1)) - 1.0


@excel_function("AVG_GROWTH", "Average of the year-on-year growth rates of a history.", _HISTORY, native=None,
                sample=([[270970.0, 365906.0, 475994.0]],))
def average_growth(values: Sequence[float]) -> float | str:
    """Arithmetic mean of the year-on-year growth rates of a history.

    NOT_MEANINGFUL for fewer than two values or when any year but the last is non-positive.
    """
    if len(values) < 2 or any(v <= 0 for v in values[:-1]):
        return NOT_MEANINGFUL
    rates = [values[i] / values[i - 1] - 1.0 for i in range(1, len(values))]
    return sum(rates) / len(rates)


@excel_function("TREND", "Least-squares straight line through a history, read some periods after its end.", _HISTORY, Arg("periods_ahead", OPTIONAL, "Periods after the last value, 1 if empty", 1.0), native=None,
                sample=([[270970.0, 365906.0, 475994.0]], 1.0))
def linear_trend(values: Sequence[float], periods_ahead: float = 1.0) -> float | str:
    """Least-squares straight line through a history, read `periods_ahead` after its last point."""
    n = len(values)
    if n < 2:
        return NOT_MEANINGFUL
    mean_x = (n - 1) / 2.0
    mean_y = sum(values) / n
    sxx = sum((x - mean_x) ** 2 for x in range(n))
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    slope = sxy / sxx
    return mean_y + slope * (n - 1 + periods_ahead - mean_x)


@excel_function("TAX_CHARGE", "Income tax on pre-tax profit at a rate; a loss earns a tax credit only up to a limit (none if empty).",
                Arg("pretax", NUMBER, "Pre-tax profit of the year"), Arg("rate", NUMBER, "Tax rate as a decimal, 0.25 for 25%"),
                Arg("credit_limit", OPTIONAL, "Largest credit a loss may earn (deferred tax asset recognised), 0 if empty", 0.0),
                native="IF({0}>=0,{0}*{1},-MIN(-{0}*{1},MAX(0,IF(ISBLANK({2}),0,{2}))))", sample=(55250.0, 0.175, 0.0))
def tax_charge(pretax: float, rate: float, credit_limit: float = 0.0) -> float:
    """The tax charge, positive; a credit is negative. A profit is taxed at `rate`; a loss earns
    rate x loss back only up to `credit_limit` (the deferred tax asset the analyst accepts), so
    a loss-making year cannot conjure unlimited tax income. A negative limit counts as none."""
    if pretax >= 0:
        return pretax * rate
    credit = min(-pretax * rate, max(0.0, credit_limit))
    return -credit if credit else 0.0   # no credit is 0, not the -0 a cell would show as "-0"


# One implementation, two Excel names: the smaller of two amounts, none unless both are positive.
@excel_function("LOSS_RELIEF", "Tax losses brought forward set against the year's profit: min(max(0, pre-tax profit), losses available).",
                Arg("pretax", NUMBER, "Pre-tax profit of the year"),
                Arg("losses_available", NUMBER, "Tax losses carried into the year (the prior year-end balance)"),
                native="MIN(MAX(0,{0}),MAX(0,{1}))", sample=(55250.0, 108000.0), formula_name="loss_relief")
@excel_function("IDLE_WHILE_BORROWING", "Cash-like assets held while a revolver is drawn: min(max(0, revolver), max(0, securities)); 0 when either is none.",
                Arg("revolver", NUMBER, "Revolver drawn"), Arg("securities", NUMBER, "Securities and cash-like investments held"),
                native="MIN(MAX(0,{0}),MAX(0,{1}))", sample=(97000.0, 36806.0), formula_name="idle_while_borrowing")
def smaller_positive(first: float, second: float) -> float:
    """The smaller of two amounts, none unless both are positive. As LOSS_RELIEF: the losses
    used this year, as much of the year's profit as the losses brought forward cover (none in a
    loss year). As IDLE_WHILE_BORROWING: the securities that could repay a revolver being drawn."""
    return min(max(0.0, first), max(0.0, second))


@excel_function("NEW_TAX_LOSS", "The part of a pre-tax loss that carries forward: the loss less what a booked tax credit already used, max(0, -pre-tax - credit limit / rate).",
                Arg("pretax", NUMBER, "Pre-tax profit of the year"), Arg("rate", NUMBER, "Tax rate as a decimal"),
                Arg("credit_limit", OPTIONAL, "Largest credit a loss may earn (as in ER_TAX_CHARGE), 0 if empty", 0.0),
                native="MAX(0,-{0}-IF({1}>0,MAX(0,IF(ISBLANK({2}),0,{2}))/{1},0))", sample=(-40000.0, 0.25, 0.0))
def new_tax_loss(pretax: float, rate: float, credit_limit: float = 0.0) -> float:
    """A year's new tax loss, positive: a profit makes none; a loss whose tax credit was booked
    (ER_TAX_CHARGE's credit, rate x loss up to the limit) carries forward only the part the
    credit did not cover, so a loss never earns a credit and relief on later profits twice."""
    if pretax >= 0:
        return 0.0
    credited = min(-pretax, max(0.0, credit_limit) / rate) if rate > 0 else 0.0
    return -pretax - credited


@excel_function("TAX_LOSSES", "Tax losses carried forward at the year end: the balance after this year's use and new losses, less the losses older than the expiry (oldest used first).",
                Arg("balance", NUMBER, "Losses carried into the year, less those used this year, plus this year's new losses"),
                Arg("new_losses", ANY, "Each year's new tax losses, a row from the first year through this one"),
                Arg("expiry_years", OPTIONAL, "Years after the year of the loss in which it can be used; 0 or empty: it never expires", 0.0),
                native="IF(N({2})>0,MAX(0,MIN({0},SUMPRODUCT(({1})*(COLUMN({1})>MAX(COLUMN({1}))-{2})))),MAX(0,{0}))",
                sample=(108000.0, [[0.0, 60000.0, 48000.0]], 5.0), formula_name="losses_carried")
def tax_losses(balance: float, new_losses, expiry_years: float = 0.0) -> float:
    """The losses usable next year. Losses are used oldest first (FIFO) and a loss of year t can
    be used through year t + expiry, so what is carried forward is always the most recent
    losses: the balance, but never more than the losses of the last `expiry_years` years (this
    one included). No vintage table is needed, and the Excel form stays one readable formula."""
    if expiry_years <= 0:
        return max(0.0, balance)
    row = [cell_number(v, optional=True, default=0.0) for v in cell_row(new_losses)]
    recent = sum(v for back, v in enumerate(reversed(row)) if back < expiry_years)
    return max(0.0, min(balance, recent))


@excel_function("NET_INTEREST", "Net finance income: interest earned on opening cash less interest paid on borrowings (average balance unless timed otherwise) and on the opening revolver.",
                Arg("opening_cash", NUMBER, "Cash and interest-earning investments at the start of the year"),
                Arg("cash_yield", NUMBER, "Interest earned on cash, decimal"),
                Arg("opening_debt", NUMBER, "Borrowings at the start of the year"),
                Arg("closing_debt", NUMBER, "Borrowings at the end of the year"),
                Arg("debt_rate", NUMBER, "Interest rate on borrowings and the revolver, decimal"),
                Arg("opening_revolver", OPTIONAL, "Revolver drawn at the start of the year, 0 if empty", 0.0),
                Arg("debt_timing", OPTIONAL, "Part of the year's change in borrowings that bears interest: 0.5 (average balance) if empty, 0 opening balance, 1 closing", 0.5),
                native="{0}*{1}-({2}+IF(ISBLANK({6}),0.5,{6})*({3}-{2})+IF(ISBLANK({5}),0,{5}))*{4}",
                sample=(75488.0, 0.018, 30603.0, 42102.0, 0.035, 0.0, 0.5))
def net_interest(opening_cash: float, cash_yield: float, opening_debt: float, closing_debt: float, debt_rate: float,
                 opening_revolver: float = 0.0, debt_timing: float = 0.5) -> float:
    """Interest on balances, positive for net income. Borrowings are set by their drivers, so they
    may cost on the average balance (timing 0.5, the default), the opening one (0) or anything
    between without circularity. Cash earns on its opening balance and the revolver costs on its
    opening balance, because this year's closing cash depends on this year's interest: an average
    there would make the model circular (Excel's iterative calculation, which the template never
    relies on)."""
    bearing = opening_debt + debt_timing * (closing_debt - opening_debt)
    return opening_cash * cash_yield - (bearing + opening_revolver) * debt_rate


@excel_function("DEPRECIATION", "D&A as a rate on a depreciable base, never more than the base: min(rate, 1) x base, 0 on a base of 0 or less.",
                Arg("depreciable_base", NUMBER, "Opening PP&E plus the year's capex"), Arg("rate", NUMBER, "D&A rate as a decimal"),
                native="MAX(0,{0})*MIN(MAX(0,{1}),1)", sample=(94071.0, 0.066))
def depreciation(depreciable_base: float, rate: float) -> float:
    """D&A at `rate` of the depreciable base, capped at the base itself, so that D&A can never
    take PP&E below zero (a rate above 100% or below 0 is held at its bound)."""
    return max(0.0, depreciable_base) * min(max(0.0, rate), 1.0)


@excel_function("PAYOUT", "A dividend per share declared as a payout of EPS; none on a loss: max(0, EPS) x payout ratio.",
                Arg("eps", NUMBER, "Earnings per share of the year"), Arg("payout_ratio", NUMBER, "Payout ratio as a decimal, 0.3 for 30%"),
                native="MAX(0,{0})*{1}", sample=(1.75, 0.3))
def payout(eps: float, payout_ratio: float) -> float:
    """The dividend per share a payout ratio declares: none on a loss (a negative EPS must not
    declare a negative dividend, which would bring cash in)."""
    return max(0.0, eps) * payout_ratio


@dataclass(frozen=True)
class Method:
    """A forecast method a driver can name in a company data file: everything about it lives
    here, so a new method is one entry below.

    `formula` is written in the model's formula language: `{line}` is the line being forecast,
    `{base}` the line the method is a share of, `{driver}` the driver line holding the values.
    `invert(target, prior, base)` is the driver value that makes the line land on `target`
    (calibration), `places` the decimals that value is kept to. `reads` are the layout lines
    the formula names besides these (a layout using the method must have them); `base_less`
    those the formula takes off its base, which the inverse must take off too.
    """
    name: str
    function: Callable
    formula: str
    implied: str  # the driver value reported figures imply, in the same language
    needs_base: bool
    label_zh: str
    label_en: str
    driver_format: str  # number-format class of the driver values: pct, days, money
    invert: Callable[[float, float, float | None], float]
    places: int
    reads: tuple = ()
    base_less: tuple = ()  # lines taken off the base before inverting (tax: the losses used)


def _rate_on_profit(charge: float, pretax: float) -> float:
    """The tax rate a charge implies; none can be read off a loss year, where the credit limit and
    not the rate decides the charge (ZeroDivisionError: calibration keeps the file's rate)."""
    if pretax <= 0:
        raise ZeroDivisionError("no tax rate on a pre-tax loss")
    return charge / pretax


TAX_CREDIT_LIMIT = "d_tax_credit_limit"  # the layout line a tax method reads its loss credit limit from
TAX_LOSS_USED = "tax_loss_used"          # the layout line of the losses brought forward used this year

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("growth", grow, "grow(prev({line}), {driver})", "growth_rate({line}, prev({line}))", False, "同比增速", "YoY growth", "pct",
           lambda target, prior, base: target / prior - 1, 8),
    Method("step", step, "step(prev({line}), {driver})", "{line} - prev({line})", False, "较上年增加额", "Increment on prior year", "money",
           lambda target, prior, base: target - prior, 2),
    Method("fixed", fixed, "fixed({driver})", "{line}", False, "金额", "Fixed amount", "money",
           lambda target, prior, base: target, 2),
    Method("share", share_of, "share_of({base}, {driver})", "{line} / {base}", True, "占{base}比例", "Share of {base}", "pct",
           lambda target, prior, base: target / base, 8),
    Method("cost_share", cost_share, "cost_share({base}, {driver})", "-{line} / {base}", True, "占{base}比例（费用）", "Cost as share of {base}", "pct",
           lambda target, prior, base: -target / base, 8),
    Method("cost_from_margin", cost_from_margin, "cost_from_margin({base}, {driver})", "1 + {line} / {base}", True, "毛利率", "Gross margin", "pct",
           lambda target, prior, base: 1 + target / base, 8),
    Method("days", days_balance, "days_balance({base}, {driver})", "turnover_days({line}, {base})", True, "周转天数（按{base}）", "Days of {base}", "days",
           lambda target, prior, base: target / abs(base) * DAYS_IN_YEAR, 6),
    # D&A from the asset base: a rate on opening PP&E plus capex, never more than that base.
    Method("depreciation", depreciation, "depreciation({base}, {driver})", "{line} / {base}", True, "折旧摊销率（按{base}）",
           "D&A rate on {base}", "pct", lambda target, prior, base: target / base, 8),
    # A segment build: revenue as volume x price, the volume a line of its own (shipments,
    # deliveries, driven by growth) and the driver the average selling price per unit.
    Method("per_unit", share_of, "share_of({base}, {driver})", "{line} / {base}", True, "单价（按{base}）", "Price per unit of {base}", "money2",
           lambda target, prior, base: target / base, 6),
    # Dividends: a payout of EPS, none on a loss.
    Method("payout", payout, "payout({base}, {driver})", "coverage({line}, {base})", True, "派息率（按{base}）", "Payout of {base}", "pct",
           lambda target, prior, base: target / base, 8),
    # Tax as the notes print it: a positive charge (tax), or a negative cost (cost_tax), on the
    # profit the losses brought forward do not shelter. A loss earns a credit only up to the
    # layout's loss credit limit.
    Method("tax", tax_charge, "tax_charge({base} - " + TAX_LOSS_USED + ", {driver}, " + TAX_CREDIT_LIMIT + ")",
           "coverage({line}, {base})", True, "税率（按{base}）", "Tax rate on {base}", "pct",
           lambda target, prior, base: _rate_on_profit(target, base), 8, (TAX_CREDIT_LIMIT, TAX_LOSS_USED), (TAX_LOSS_USED,)),
    Method("cost_tax", tax_charge, "-tax_charge({base} - " + TAX_LOSS_USED + ", {driver}, " + TAX_CREDIT_LIMIT + ")",
           "coverage(-{line}, {base})", True, "税率（按{base}）", "Tax rate on {base}", "pct",
           lambda target, prior, base: _rate_on_profit(-target, base), 8, (TAX_CREDIT_LIMIT, TAX_LOSS_USED), (TAX_LOSS_USED,)),
)}


@excel_function("REVOLVER", "Revolving credit drawn to keep cash at its floor: max(0, minimum cash - cash before the revolver).",
                Arg("cash_before", NUMBER, "Cash the year would end with if the prior revolver were repaid and none drawn"),
                Arg("minimum_cash", OPTIONAL, "The cash floor, 0 if empty", 0.0),
                native="IF(ISBLANK({0}),#N/A,MAX(0,IF(ISBLANK({1}),0,{1})-{0}))", sample=(-5000.0, 1000.0))
def revolver(cash_before: float, minimum_cash: float = 0.0) -> float:
    """The revolver balance that lifts cash to its floor, zero when cash is above it. Drawn and
    repaid in full each year (the cash before it counts the prior balance as repaid), so the
    balance never depends on itself: no circularity."""
    return max(0.0, minimum_cash - cash_before)
