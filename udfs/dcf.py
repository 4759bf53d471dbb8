"""The DCF valued at the price date, its terminal value diagnosed, and the target it gives.

Conventions, shared by every function here (README, "Valuation conventions"):
- Time is counted in fiscal years from the valuation date (the price date). A forecast year's
  *period end* is how far its fiscal year end lies from that date: the first forecast year ends
  `stub` years away (days to its year end over the days of that fiscal year), each later year one
  more; a year already over is negative.
- Only the part of a year still to come is valued: its *flow share* is the period end clipped to
  0..1 (the stub year counts `stub` of its FCFF, a year wholly past none).
- A flow arrives at its year end, or, mid-year, at the middle of the part still to come (period
  end minus half its flow share): the stub year's flow at stub / 2, a full year's half a year
  before its end.
- The terminal value stands at the last forecast year's end. Gordon growth values the flows after
  it as the explicit ones are timed (half a year earlier mid-year); an exit multiple is a price
  paid at that year end.
- Net debt, minorities, investments and the share count come from the balance sheet nearest the
  valuation date (the year whose period end lies within half a year of it).

A target is either that value (the default) or the value rolled to the rating horizon at the
cost of equity, less the dividends paid within it (`dcf_target`).
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from .constants import (
    BASIS_NOTES, BLEND_COMPLETE_NOTE, BLEND_EXCLUDED_NOTE, BLEND_NM_NOTE, ERR_NA, ERR_NUM, ERR_VALUE, EXCLUDED,
    NOT_MEANINGFUL, NOT_VALUED, NOT_WEIGHTED,
)
from .errors import InputError
from .registry import ANY, NUMBER, OPTIONAL, Arg, Reject, cell_number, cell_row, cell_scalar, excel_function, is_blank, is_error
from .valuation import _MID_YEAR, DCF_TERMS, FCFF_ROW, _switch, _year_row

Number = float
Result = float | str

# A TRUE/FALSE switch cell as a native condition: a number (1/0), a boolean, or the text a
# drop-down of TRUE and FALSE gives; empty is FALSE (valuation._switch's reading).
_NATIVE_SWITCH = 'IF(ISNUMBER({i}),{i}<>0,IF(ISLOGICAL({i}),{i},UPPER(TRIM({i}))="TRUE"))'


def native_switch(i: int) -> str:
    return _NATIVE_SWITCH.replace("{i}", "{" + str(i) + "}")


# How the DCF target is stated: the value at the price date, or rolled to the rating horizon.
BASIS_PRICE_DATE, BASIS_HORIZON = "price_date", "horizon"
TARGET_BASES = (BASIS_PRICE_DATE, BASIS_HORIZON)

# Excel's day 0 of the 1900 date system, as serials count it (its phantom 29 Feb 1900 is day 60:
# serials from 61 on, every date this model meets, map exactly).
_EXCEL_EPOCH = dt.date(1899, 12, 30)


def as_date(value) -> dt.date:
    """A date cell as Excel, xlwings or the engine passes it: a serial number, a date or
    datetime, or ISO text ('2025-12-18'); #N/A when empty, #VALUE! for anything else."""
    value = cell_scalar(value)
    if is_blank(value):
        raise Reject(ERR_NA)
    if is_error(value):
        raise Reject(value.strip().upper())
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 61 <= value < 2958466:
        return _EXCEL_EPOCH + dt.timedelta(days=int(value))
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise Reject(ERR_VALUE)


def _one_year_before(day: dt.date) -> dt.date:
    """The same day a year earlier; 29 Feb goes to 28 Feb (Excel's EDATE(day, -12))."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


@excel_function("YEAR_FRACTION", "Fiscal years from a date to a fiscal year end: days between them / days in that fiscal year.",
                Arg("from_date", ANY, "The valuation date (the price date)"),
                Arg("year_end", ANY, "The fiscal year end, a date"),
                native="({1}-{0})/({1}-EDATE({1},-12))",
                sample=("2025-12-18", "2025-12-31"), formula_name="year_fraction")
def _year_fraction_cell(from_date, year_end):
    return year_fraction(as_date(from_date), as_date(year_end))


def year_fraction(from_date: dt.date, year_end: dt.date) -> float:
    """(year end - date) / (year end - the same day a year earlier): the share of that fiscal year
    still to come when the date falls in it (13 / 365 from 18 to 31 December), negative after
    the year end."""
    return (year_end - from_date).days / (year_end - _one_year_before(year_end)).days


@excel_function("FLOW_SHARE", "The share of a year's flow still to come: its period end clipped to 0..1.",
                Arg("period_end", NUMBER, "Fiscal years from the valuation date to the year end"),
                native="MAX(0,MIN(1,{0}))", sample=(0.0356,), formula_name="flow_share")
def flow_share(period_end: Number) -> Number:
    """0 for a year already over, the stub for the year the valuation date falls in, 1 after."""
    return max(0.0, min(1.0, period_end))


@excel_function("DISCOUNT_PERIOD", "When a year's flow arrives, in years from the valuation date: its year end, or mid-year the middle of the part still to come.",
                Arg("period_end", NUMBER, "Fiscal years from the valuation date to the year end"),
                Arg("mid_year", ANY, _MID_YEAR, required=False),
                native="{0}-IF(" + native_switch(1) + ",MAX(0,MIN(1,{0}))/2,0)",
                sample=(1.0356, True), formula_name="discount_period")
def _discount_period_cell(period_end, mid_year):
    return discount_period(period_end, _switch(mid_year))


def discount_period(period_end: Number, mid_year: bool) -> Number:
    return period_end - flow_share(period_end) / 2 if mid_year else period_end


@excel_function("DISCOUNT_FACTOR", "1 / (1 + rate) ^ periods.",
                Arg("rate", NUMBER, "Discount rate per year"), Arg("periods", NUMBER, "Years from the valuation date"),
                native="IF({0}<=-1,#NUM!,(1+{0})^(-{1}))", sample=(0.09, 1.5356), formula_name="discount_factor")
def discount_factor(rate: Number, periods: Number) -> Result:
    if rate <= -1:
        return ERR_NUM
    return (1.0 + rate) ** -periods


def _terminal(last_fcff: Number, wacc: Number, growth: Number | None, exit_multiple: Number | None,
              terminal_metric: Number | None) -> Result:
    """The terminal value at the last forecast year end: exit multiple x metric when a multiple
    is given, else Gordon growth FCFF_N x (1 + g) / (WACC - g)."""
    if exit_multiple is not None:
        if terminal_metric is None:
            return ERR_NA
        if exit_multiple < 0:
            return ERR_NUM
        return exit_multiple * terminal_metric
    if growth is None:
        return ERR_NA
    if growth >= wacc or growth <= -1:
        return ERR_NUM   # the perpetuity does not converge: no finite value, refused in the cell
    return last_fcff * (1.0 + growth) / (wacc - growth)


@excel_function("TERMINAL_VALUE", "Terminal value at the last forecast year end: exit multiple x metric, or Gordon FCFF x (1+g) / (WACC - g); #NUM! for g >= WACC.",
                Arg("last_fcff", NUMBER, "FCFF of the last forecast year"), Arg("wacc", NUMBER, "WACC"),
                Arg("terminal_growth", OPTIONAL, "Perpetual growth; must be below WACC"),
                Arg("exit_multiple", OPTIONAL, "Exit multiple instead of Gordon growth, empty for Gordon"),
                Arg("terminal_metric", OPTIONAL, "What the exit multiple applies to (last-year EBITDA)"),
                native=('IF(ISNUMBER({3}),IF({4}="",#N/A,IF({3}<0,#NUM!,{3}*{4})),IF({2}="",#N/A,'
                        'IF(OR({2}>={1},{2}<=-1),#NUM!,{0}*(1+{2})/({1}-{2}))))'),
                sample=(60000.0, 0.09, 0.025, None, None), formula_name="terminal_value")
def terminal_value(last_fcff, wacc, terminal_growth=None, exit_multiple=None, terminal_metric=None) -> Result:
    return _terminal(last_fcff, wacc, terminal_growth, exit_multiple, terminal_metric)


@excel_function("TV_PERIOD", "When the terminal value is counted, in years from the valuation date: the last year end (half a year earlier for Gordon growth mid-year).",
                Arg("last_period_end", NUMBER, "Fiscal years from the valuation date to the last forecast year end"),
                Arg("mid_year", ANY, _MID_YEAR, required=False),
                Arg("exit_multiple", OPTIONAL, "The exit multiple, empty for Gordon growth"),
                native="{0}-IF(AND(NOT(ISNUMBER({2}))," + native_switch(1) + "),0.5,0)",
                sample=(2.0356, True, None), formula_name="tv_period")
def _tv_period_cell(last_period_end, mid_year, exit_multiple):
    return tv_period(last_period_end, _switch(mid_year), exit_multiple)


def tv_period(last_period_end: Number, mid_year: bool, exit_multiple: Number | None = None) -> Number:
    """An exit multiple is a price at the year end; Gordon's perpetuity of flows timed like the
    explicit ones is worth, mid-year, half a year's discounting more."""
    return last_period_end - (0.5 if mid_year and exit_multiple is None else 0.0)


def dcf_ev(cash_flows: Sequence[Number], period_ends: Sequence[Number], wacc: Number, growth: Number | None = None,
           mid_year: bool = False, exit_multiple: Number | None = None, terminal_metric: Number | None = None) -> Result:
    """Enterprise value at the valuation date: each year's FCFF times its flow share, discounted
    from its discount period, plus the terminal value discounted from its period (module
    docstring). #NUM! for WACC <= 0 or g >= WACC; #N/A when the forecast ends before the
    valuation date, or neither a growth nor an exit multiple is given."""
    if not cash_flows or len(cash_flows) != len(period_ends):
        return ERR_NA
    if wacc <= 0:
        return ERR_NUM
    last = period_ends[-1]
    if last <= 0:
        return ERR_NA
    explicit = math.fsum(cf * flow_share(p) * (1.0 + wacc) ** -discount_period(p, mid_year)
                         for cf, p in zip(cash_flows, period_ends))
    terminal = _terminal(cash_flows[-1], wacc, growth, exit_multiple, terminal_metric)
    if isinstance(terminal, str):
        return terminal
    return explicit + terminal * (1.0 + wacc) ** -tv_period(last, mid_year, exit_multiple)


_EV_SHARE = "((" + "{1}>0)*({1}<1)*{1}+({1}>=1))"
_EV_HALF = "IF(" + native_switch(4) + ",0.5,0)"
_EV_LAST_P = "INDEX({1},ROWS({1}),COLUMNS({1}))"
_EV_LAST_F = "INDEX({0},ROWS({0}),COLUMNS({0}))"


@excel_function("DCF_EV", "Enterprise value at the price date: FCFF x flow share, discounted from each period, plus the terminal value (Gordon or exit multiple).",
                FCFF_ROW, Arg("period_end_row", ANY, "Fiscal years from the valuation date to each year end, same columns"),
                *DCF_TERMS,
                native=("IF({2}<=0,#NUM!,IF(" + _EV_LAST_P + "<=0,#N/A,"
                        "SUMPRODUCT({0}," + _EV_SHARE + ",(1+{2})^(-({1}-" + _EV_HALF + "*" + _EV_SHARE + ")))+"
                        'IF(ISNUMBER({5}),IF({6}="",#N/A,IF({5}<0,#NUM!,{5}*{6}*(1+{2})^(-' + _EV_LAST_P + "))),"
                        'IF({3}="",#N/A,IF(OR({3}>={2},{3}<=-1),#NUM!,'
                        + _EV_LAST_F + "*(1+{3})/({2}-{3})*(1+{2})^(-(" + _EV_LAST_P + "-" + _EV_HALF + ")))))))"),
                sample=([[40000.0, 46000.0, 52000.0]], [[0.0356, 1.0356, 2.0356]], 0.09, 0.025, True, None, None),
                formula_name="dcf_ev")
def _dcf_ev_cell(fcff_row, period_end_row, wacc, terminal_growth, mid_year, exit_multiple, terminal_metric):
    return dcf_ev(_year_row(fcff_row), _year_row(period_end_row), wacc, terminal_growth, _switch(mid_year), exit_multiple,
                  terminal_metric)


@excel_function("GROWTH_HEADROOM", "WACC less terminal growth, for the sanity warning; NM when an exit multiple is used or either is missing.",
                Arg("wacc", ANY, "WACC"), Arg("terminal_growth", ANY, "Terminal growth"),
                Arg("exit_multiple", ANY, "Exit multiple, empty for Gordon growth", required=False),
                native="IF(OR(ISNUMBER({2}),NOT(ISNUMBER({0})),NOT(ISNUMBER({1}))),{NM},{0}-{1})",
                sample=(0.085, 0.025, None), formula_name="growth_headroom")
def growth_headroom(wacc, terminal_growth, exit_multiple=None) -> Result:
    numbers = [v for v in (wacc, terminal_growth) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    given_exit = isinstance(exit_multiple, (int, float)) and not isinstance(exit_multiple, bool)
    if given_exit or len(numbers) != 2:
        return NOT_MEANINGFUL
    return wacc - terminal_growth


@excel_function("IMPLIED_EXIT_MULTIPLE", "The EV/EBITDA a terminal value implies: TV / last-year EBITDA; NM unless both are positive.",
                Arg("terminal_value", NUMBER, "Terminal value at the last year end"),
                Arg("ebitda", NUMBER, "EBITDA of the last forecast year"),
                native="IF(OR({0}<=0,{1}<=0),{NM},{0}/{1})", sample=(700000.0, 74475.0), formula_name="implied_exit_multiple")
def implied_exit_multiple(terminal_value: Number, ebitda: Number) -> Result:
    if terminal_value <= 0 or ebitda <= 0:
        return NOT_MEANINGFUL
    return terminal_value / ebitda


@excel_function("IMPLIED_GROWTH", "The perpetual growth a terminal value implies: (TV x WACC - FCFF) / (TV + FCFF).",
                Arg("terminal_value", NUMBER, "Terminal value at the last year end"),
                Arg("last_fcff", NUMBER, "FCFF of the last forecast year"), Arg("wacc", NUMBER, "WACC"),
                native="IF({0}+{1}<=0,{NM},({0}*{2}-{1})/({0}+{1}))", sample=(700000.0, 60000.0, 0.09),
                formula_name="implied_growth")
def implied_growth(terminal_value: Number, last_fcff: Number, wacc: Number) -> Result:
    """g solving TV = FCFF x (1 + g) / (WACC - g); NM when TV + FCFF is not positive."""
    if terminal_value + last_fcff <= 0:
        return NOT_MEANINGFUL
    return (terminal_value * wacc - last_fcff) / (terminal_value + last_fcff)


@excel_function("NEAREST_BALANCE", "1 for the year whose balance sheet is nearest the valuation date (period end within half a year), else 0.",
                Arg("period_end", NUMBER, "Fiscal years from the valuation date to the year end"),
                native="IF(AND({0}>-0.5,{0}<=0.5),1,0)", sample=(0.0356,), formula_name="nearest_balance")
def nearest_balance(period_end: Number) -> Number:
    return 1.0 if -0.5 < period_end <= 0.5 else 0.0


@excel_function("AT_FLAG", "The value in the one column whose flag is 1; #N/A unless exactly one flag is 1.",
                Arg("flags_row", ANY, "A row of 1 and 0"), Arg("values_row", ANY, "The values, same columns"),
                native="IF(COUNTIF({0},1)<>1,#N/A,INDEX({1},MATCH(1,{0},0)))",
                sample=([[0.0, 1.0, 0.0]], [[75000.0, 91000.0, 120000.0]]), formula_name="at_flag")
def at_flag(flags_row, values_row):
    flags, values = cell_row(flags_row), cell_row(values_row)
    if len(flags) != len(values):
        return ERR_VALUE
    hits = [i for i, f in enumerate(flags) if isinstance(f, (int, float)) and not isinstance(f, bool) and f == 1]
    if len(hits) != 1:
        return ERR_NA
    value = values[hits[0]]
    return ERR_NA if is_blank(value) else value


@excel_function("DILUTED_SHARES", "Shares plus dilutive awards: all of them, or by the treasury-stock method when an exercise price is given.",
                Arg("shares", NUMBER, "Shares outstanding, millions"),
                Arg("awards", OPTIONAL, "Dilutive awards outstanding, millions; 0 if empty", 0.0),
                Arg("exercise_price", OPTIONAL, "Their exercise price in the trading currency; empty or 0: none (restricted shares)"),
                Arg("price", OPTIONAL, "The share price the treasury-stock method buys back at, trading currency",
                    read_only_if_positive="exercise_price"),
                native="{0}+{1}*IF(N({2})<=0,1,IF(N({3})<=0,#N/A,MAX(0,1-N({2})/N({3}))))",
                sample=(26045.0, 2000.0, None, 40.2), formula_name="diluted_shares")
def diluted_shares(shares: Number, awards: Number = 0.0, exercise_price: Number | None = None,
                   price: Number | None = None) -> Result:
    """Shares + awards x (1 - exercise price / price), the awards' exercise proceeds buying back
    shares at the price (none dilute when out of the money); every award counts in full without
    an exercise price. #N/A when an exercise price is given without a positive price."""
    if not exercise_price or exercise_price <= 0:
        return shares + awards
    if not price or price <= 0:
        return ERR_NA
    return shares + awards * max(0.0, 1.0 - exercise_price / price)


@excel_function("DIVIDEND_IN_HORIZON", "A year's dividend per share if it is paid within the rating horizon from the valuation date, else 0.",
                Arg("dps", ANY, "The year's dividend per share; 0 if empty or not a number (none on a loss)"),
                Arg("period_end", NUMBER, "Fiscal years from the valuation date to the year end"),
                Arg("payment_lag", NUMBER, "Years after the fiscal year end the dividend is paid"),
                Arg("horizon", NUMBER, "The rating horizon, years"),
                native="IF(ISERROR({0}),{0},IF(AND({1}+{2}>0,{1}+{2}<={3}),N({0}),0))", sample=(0.5, 0.0356, 0.5, 1.0),
                formula_name="dividend_in_horizon")
def dividend_in_horizon(dps, period_end: Number, payment_lag: Number, horizon: Number) -> Result:
    """A dividend declared on a year is paid `payment_lag` years after its year end: counted when
    that day falls after the valuation date and no later than the horizon. An error in the
    dividend passes on; an empty or NM dividend is none."""
    dps = cell_scalar(dps)
    if is_error(dps):
        return dps.strip().upper()
    paid = period_end + payment_lag
    amount = float(dps) if isinstance(dps, (int, float)) and not isinstance(dps, bool) else 0.0
    return amount if 0 < paid <= horizon else 0.0


@excel_function("COST_OF_EQUITY", "Cost of equity by CAPM: rf + beta x ERP.",
                Arg("rf", NUMBER, "Risk-free rate"), Arg("beta", NUMBER, "Equity beta"), Arg("erp", NUMBER, "Equity risk premium"),
                native="{0}+{1}*{2}", sample=(0.018, 1.0, 0.06), formula_name="cost_of_equity")
def cost_of_equity(rf: Number, beta: Number, erp: Number) -> Number:
    return rf + beta * erp


def _choice(value, choices: tuple, what: str) -> str:
    """A cell holding one of `choices` (any case; empty: the first); an error value is that error,
    anything else an InputError (#VALUE!) naming the choices."""
    value = cell_scalar(value)
    if is_blank(value):
        return choices[0]
    if is_error(value):
        raise Reject(value.strip().upper())
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise InputError(f"{what} must be one of {', '.join(choices)}, not {value!r}")
    return value.strip().lower()


def _basis(value) -> str:
    return _choice(value, TARGET_BASES, "DCF target basis")


@excel_function("DCF_TARGET", "The DCF target: the value per share at the price date, or rolled to the horizon at the cost of equity less the dividends within it.",
                Arg("value", ANY, "Value per share at the price date, trading currency"),
                Arg("basis", ANY, "price_date (default) or horizon", required=False),
                Arg("cost_of_equity", ANY, "Cost of equity (rolling to the horizon)", required=False),
                Arg("horizon", ANY, "Rating horizon, years", required=False),
                Arg("dividends", ANY, "Dividends per share paid within the horizon, trading currency; 0 if empty", required=False),
                native=('IF(NOT(ISNUMBER({0})),{0},IF(OR(TRIM({1}&"")="",LOWER(TRIM({1}&""))="price_date"),{0},'
                        'IF(LOWER(TRIM({1}&""))<>"horizon",#VALUE!,IF(OR(NOT(ISNUMBER({2})),NOT(ISNUMBER({3}))),#N/A,'
                        'IF({0}*(1+{2})^{3}-N({4})<=0,{NM},{0}*(1+{2})^{3}-N({4}))))))'),
                sample=(31.2, "horizon", 0.078, 1.0, 0.5), formula_name="dcf_target")
def _dcf_target_cell(value, basis, cost_of_equity_, horizon, dividends):
    value = cell_scalar(value)
    if is_blank(value):
        return ERR_NA
    if is_error(value):
        return value.strip().upper()
    if isinstance(value, str):   # a valuation not made (未估值) or not meaningful passes through; other text is wrong
        return value.strip() if value.strip() in (NOT_VALUED, NOT_MEANINGFUL) else ERR_VALUE
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ERR_VALUE
    if _basis(basis) == BASIS_PRICE_DATE:
        return float(value)
    ke, years = (cell_number(x, optional=True) for x in (cost_of_equity_, horizon))
    if ke is None or years is None:
        return ERR_NA
    return dcf_target(float(value), BASIS_HORIZON, ke, years, cell_number(dividends, optional=True, default=0.0))


def dcf_target(value: Number, basis: str = BASIS_PRICE_DATE, cost_of_equity_: Number = 0.0, horizon: Number = 1.0,
               dividends: Number = 0.0) -> Result:
    """The value itself, or value x (1 + cost of equity) ^ horizon - dividends paid within the
    horizon: what the share should be worth at the horizon when it earns its cost of equity and
    pays those dividends on the way. NM when that is not positive."""
    if basis == BASIS_PRICE_DATE:
        return value
    rolled = value * (1.0 + cost_of_equity_) ** horizon - dividends
    return rolled if rolled > 0 else NOT_MEANINGFUL


@excel_function("DCF_BASIS_NOTE", "The DCF target's convention, as a sentence for the sheet.",
                Arg("basis", ANY, "price_date or horizon", required=False),
                native=('IF(LOWER(TRIM({0}&""))="horizon","' + BASIS_NOTES[BASIS_HORIZON] + '",'
                        'IF(OR(TRIM({0}&"")="",LOWER(TRIM({0}&""))="price_date"),"' + BASIS_NOTES[BASIS_PRICE_DATE]
                        + '",#VALUE!))'),
                sample=("price_date",), formula_name="dcf_basis_note")
def dcf_basis_note(basis) -> str:
    return BASIS_NOTES[_basis(basis)]


@excel_function("TOTAL", "The sum of a row of values; NM if one is NM, not valued while one is not valued.",
                Arg("values", ANY, "A row or column of values"),
                native=('IF(COUNTIF({0},"' + NOT_VALUED + '")>0,"' + NOT_VALUED + '",IF(COUNTIF({0},{NM})>0,{NM},SUM({0})))'),
                sample=([[120.5, 98.0, 77.25]],), formula_name="total")
def total(values) -> Result:
    cells = [v for v in cell_row(values) if not is_blank(v)]
    if any(isinstance(v, str) and v.strip() == NOT_VALUED for v in cells):
        return NOT_VALUED
    if any(isinstance(v, str) and v.strip() == NOT_MEANINGFUL for v in cells):
        return NOT_MEANINGFUL
    return math.fsum(cell_number(v) for v in cells)


# ---- The blend, with the analyst's choice for a weighted method that is NM ----------------------
POLICY_EXCLUDE, POLICY_NM = "exclude", "nm"
NM_POLICIES = (POLICY_EXCLUDE, POLICY_NM)


def _policy(value) -> str:
    return _choice(value, NM_POLICIES, "NM policy")


def usable(value) -> bool:
    """A method target the blend can weight: a positive number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@excel_function("BLEND_PART", "A method's part of the blend: weight x target; a weighted target that is not a price is excluded (exclude) or makes the blend NM (nm).",
                Arg("target", ANY, "The method's target price"),
                Arg("weight", OPTIONAL, "The method's weight; 0 if empty", 0.0),
                Arg("policy", ANY, "exclude (default): leave a weighted NM method out and say so; nm: the blend is NM", required=False),
                native=('IF(N({1})=0,0,IF(ISERROR({0}),{0},IF(ISNUMBER({0}),IF({0}>0,{1}*{0},'
                        'IF(LOWER(TRIM({2}&""))="nm",{NM},"' + EXCLUDED + '")),'
                        'IF(LOWER(TRIM({2}&""))="nm",{NM},"' + EXCLUDED + '"))))'),
                sample=(45.0, 0.5, "exclude"), formula_name="blend_part")
def _blend_part_cell(target, weight, policy):
    return blend_part(cell_scalar(target), weight, _policy(policy))


def blend_part(target, weight: Number, policy: str = POLICY_EXCLUDE) -> Result:
    """0 for an unweighted method (whatever its target); weight x target for a price; an error
    target passes its error on; any other target (NM, 未估值, a label, a non-positive number) is
    EXCLUDED under `exclude` and NM under `nm`."""
    if not weight:
        return 0.0
    if is_error(target):
        return target.strip().upper()
    if usable(target):
        return weight * target
    return NOT_MEANINGFUL if policy == POLICY_NM else EXCLUDED


@excel_function("BLEND_TARGET", "Blended target price from the methods' parts: their sum over the weights of the methods that are prices.",
                Arg("parts", ANY, "Each method's part (ER_BLEND_PART)"),
                Arg("weights", ANY, "Each method's weight (decimals summing to 100%), empty is 0"),
                Arg("targets", ANY, "Each method's target price"),
                native=('IF(SUMPRODUCT(({1}<>0)*1)=0,"' + NOT_VALUED + '",IF(COUNTIF({1},"<0")>0,#NUM!,'
                        'IF(ABS(SUM({1})-1)>1E-09,"weights\u2260100%",IF(COUNTIF({0},{NM})>0,{NM},'
                        'IF(SUMIFS({1},{2},">0")<=0,{NM},SUM({0})/SUMIFS({1},{2},">0"))))))'),
                sample=([[22.5], [14.4], [0.0]], [[0.5], [0.3], [0.2]], [[45.0], [48.0], ["NM"]]), formula_name="blend_target")
def blend_target(parts, weights, targets):
    """未估值 while no method is weighted; #NUM! for a negative weight; the weights≠100% label
    unless they add up to 100%; NM when a part is NM (policy nm) or no weighted method is a
    price; an error part passes on; else the parts' sum over the weights of the methods that
    are prices, so an excluded method's weight is spread over the others in proportion."""
    from .valuation import WEIGHT_TOLERANCE, WEIGHTS_NOT_100
    parts, targets = cell_row(parts), cell_row(targets)
    weights = [0.0 if is_blank(w) else cell_number(w) for w in cell_row(weights)]
    if not (len(parts) == len(weights) == len(targets)):
        return ERR_VALUE
    if all(w == 0 for w in weights):
        return NOT_VALUED
    if any(w < 0 for w in weights):
        return ERR_NUM
    if abs(math.fsum(weights) - 1.0) > WEIGHT_TOLERANCE:
        return WEIGHTS_NOT_100
    if any(isinstance(p, str) and p.strip() == NOT_MEANINGFUL for p in parts):
        return NOT_MEANINGFUL
    for part in parts:
        if is_error(part):
            return part.strip().upper()
    priced = math.fsum(w for w, t in zip(weights, targets) if usable(t))
    if priced <= 0:
        return NOT_MEANINGFUL
    return math.fsum(p for p in parts if isinstance(p, (int, float)) and not isinstance(p, bool)) / priced


@excel_function("BLEND_NOTE", "What the blend did with a weighted method that is not a price, as a sentence.",
                Arg("parts", ANY, "Each method's part (ER_BLEND_PART)"),
                native=('IF(COUNTIF({0},{NM})>0,"' + BLEND_NM_NOTE + '",IF(COUNTIF({0},"' + EXCLUDED + '")>0,"'
                        + BLEND_EXCLUDED_NOTE + '",IF(AND(COUNTIF({0},"*")=0,SUM({0})=0),"' + NOT_WEIGHTED + '","'
                        + BLEND_COMPLETE_NOTE + '")))'),
                sample=([[22.5], [EXCLUDED], [0.0]],), formula_name="blend_note")
def blend_note(parts) -> str:
    cells = cell_row(parts)
    if any(isinstance(p, str) and p.strip() == NOT_MEANINGFUL for p in cells):
        return BLEND_NM_NOTE
    if any(p == EXCLUDED for p in cells):
        return BLEND_EXCLUDED_NOTE
    for part in cells:
        if is_error(part):
            return part.strip().upper()
    if all(isinstance(p, (int, float)) and not isinstance(p, bool) and p == 0 for p in cells):
        return NOT_WEIGHTED
    return BLEND_COMPLETE_NOTE
