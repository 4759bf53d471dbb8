"""Valuation: from forecasts to a target price by multiples, sum of the parts, DCF and a blend.

Units and conventions, shared by every function here:
- Money is in the reporting currency's millions (百万, as the statements), shares in millions,
  so an amount / shares is a per-share value in the reporting currency.
- A target price is in the trading currency: per-share value / FX, FX being reporting currency
  per unit of trading currency (the cover's FX cell: 0.9049 reporting currency per unit of trading currency).
- Rates are decimals (0.09 is 9%).
- Net cash is positive for net cash and negative for net debt; the bridge from enterprise to
  equity value is EV + net cash - minorities + long-term investments.

Three kinds of non-number answers, each for its own case:
- `NM` (not meaningful): the maths has a result but it is no target price: a multiple on a loss
  or a negative book, a non-positive equity value, a non-positive share count or FX.
- `#NUM!`: an input outside the formula's domain: terminal growth >= WACC (Gordon's series
  diverges), WACC <= 0, a tax rate or debt weight outside 0..100%, a negative weight or multiple
  in a DCF exit. #NUM! is Excel's own answer for a numeric argument outside a function's domain
  (as IRR or SQRT give), and as an error value it poisons every cell built on it, where a text
  label could be mistaken for a mere note.
- `WEIGHTS_NOT_100` ("weights≠100%"): blend weights that do not add up to 100%: the analyst's
  weights need fixing, and the label says which input is wrong.
Bad cell input (text for a number, blanks, error values, blocks) is judged by the shared guard
(udfs/registry.py) as everywhere else.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from .constants import (
    BASIS_NOTES, BLEND_COMPLETE_NOTE, BLEND_EXCLUDED_NOTE, BLEND_NM_NOTE, ERR_NA, ERR_NUM, ERR_VALUE, EXCLUDED,
    NO_SEGMENT_LINE, NOT_MEANINGFUL, NOT_VALUED, NOT_WEIGHTED,
)
from .errors import InputError
# The year rows and weight rows here keep empty cells in place (a gap shifts years), so they
# convert cell by cell with the guard's own rules (cell_row, cell_number...).
from .registry import (
    ANY, NUMBER, OPTIONAL, SERIES, TEXT, Arg, Reject, cell_number, cell_row, cell_scalar, excel_function, is_blank,
    is_error,
)
from .sensitivity import grid

Number = float
Result = float | str

# Blend weights must add up to 100% within this tolerance (binary rounding of 1/3 + 1/3 + 1/3).
WEIGHT_TOLERANCE = 1e-9
WEIGHTS_NOT_100 = "weights≠100%"
# Every label a valuation function can answer with besides NM, 未估值 and Excel's error values.
LABELS = (WEIGHTS_NOT_100, EXCLUDED, BLEND_NM_NOTE, BLEND_EXCLUDED_NOTE, BLEND_COMPLETE_NOTE, NOT_WEIGHTED,
          *BASIS_NOTES.values(), *NO_SEGMENT_LINE.values())

# Segment valuation methods, by the spellings an analyst types: P/E on an allocated profit, P/B
# on an allocated book value, P/S on revenue (equity values); EV/EBITDA on EBITDA (an enterprise
# value). Keys are normalised by `_method_key`.
SEGMENT_METHODS = ("PE", "PB", "PS", "EVEBITDA")

_FX = Arg("fx", NUMBER, "Reporting currency per unit of trading currency")
# multiple_target as a native Excel formula
_MULTIPLE_TARGET_NATIVE = "IF(OR({0}<=0,{1}<=0,{2}<=0),{NM},{0}*{1}/{2})"
_SHARES = Arg("shares", NUMBER, "Shares, millions")
_NET_CASH = Arg("net_cash", NUMBER, "Net cash (negative for net debt), millions")
_MINORITIES = Arg("minorities", NUMBER, "Minority interests, millions")
_INVESTMENTS = Arg("investments", OPTIONAL, "Long-term investments added to equity, 0 if empty", 0.0)
_MID_YEAR = "TRUE: cash flows mid-year, discounted (1+WACC)^(t-0.5); FALSE or empty: year-end"


# ---- Relative valuation ---------------------------------------------------------------------
# One computation, three Excel names: each carries its own argument help (EPS, book value,
# revenue per share) and sample, while the rule "no price from a non-positive metric" lives once.
@excel_function("PE_TARGET", "Target price by P/E: multiple x EPS / FX, in the trading currency.",
                Arg("multiple", NUMBER, "Target P/E"), Arg("eps", NUMBER, "EPS of the chosen year, reporting currency"),
                _FX, native=_MULTIPLE_TARGET_NATIVE, sample=(22.0, 1.635, 0.9049), formula_name="pe_target")
@excel_function("PB_TARGET", "Target price by P/B: multiple x book value per share / FX.",
                Arg("multiple", NUMBER, "Target P/B"), Arg("bvps", NUMBER, "Book value per share, reporting currency"),
                _FX, native=_MULTIPLE_TARGET_NATIVE, sample=(3.5, 9.8, 0.9049), formula_name="pb_target")
@excel_function("PS_TARGET", "Target price by P/S: multiple x revenue per share / FX.",
                Arg("multiple", NUMBER, "Target P/S"),
                Arg("revenue_per_share", NUMBER, "Revenue per share, reporting currency"),
                _FX, native=_MULTIPLE_TARGET_NATIVE, sample=(2.0, 18.28, 0.9049), formula_name="ps_target")
def multiple_target(multiple: Number, per_share_metric: Number, fx: Number) -> Result:
    """Target price in the trading currency: multiple x per-share metric / FX. The metric is the
    EPS (reported or Non-IFRS, of the chosen year) for P/E, book value per share for P/B, revenue
    per share for P/S, all in the reporting currency.

    NM when the multiple or the metric is not positive (a P/E on a loss is no price, nor a P/B on
    a negative book) or FX is not positive."""
    if multiple <= 0 or per_share_metric <= 0 or fx <= 0:
        return NOT_MEANINGFUL
    return multiple * per_share_metric / fx


def equity_value(enterprise_value: Number, net_cash: Number, minorities: Number, investments: Number = 0.0) -> Number:
    """Equity value attributable to shareholders: EV + net cash - minorities + long-term investments."""
    return enterprise_value + net_cash - minorities + investments


@excel_function("EQUITY_PER_SHARE", "Equity value per share from an EV: (EV + net cash - minorities + investments) / shares / FX.",
                Arg("ev", NUMBER, "Enterprise value, millions"), _NET_CASH, _MINORITIES, _SHARES, _FX, _INVESTMENTS,
                native="IF(OR({3}<=0,{4}<=0),{NM},IF({0}+{1}-{2}+{5}<=0,{NM},({0}+{1}-{2}+{5})/{3}/{4}))",
                sample=(900000.0, 75000.0, 400.0, 26045.0, 0.9049, 0.0))
def equity_per_share(ev: Number, net_cash: Number, minorities: Number, shares: Number, fx: Number,
                     investments: Number = 0.0) -> Result:
    """The bridge from an enterprise value to a target price in the trading currency.

    NM when the equity value, the share count or FX is not positive: a negative equity value is
    no price."""
    if shares <= 0 or fx <= 0:
        return NOT_MEANINGFUL
    equity = equity_value(ev, net_cash, minorities, investments)
    if equity <= 0:
        return NOT_MEANINGFUL
    return equity / shares / fx


@excel_function("EV_EBITDA_TARGET", "Target price by EV/EBITDA: multiple x EBITDA, bridged to equity, per share / FX.",
                Arg("multiple", NUMBER, "Target EV/EBITDA"), Arg("ebitda", NUMBER, "EBITDA of the chosen year, millions"),
                _NET_CASH, _MINORITIES, _SHARES, _FX, _INVESTMENTS,
                native="IF(OR({0}<=0,{1}<=0),{NM},ER_EQUITY_PER_SHARE({0}*{1},{2},{3},{4},{5},{6}))",
                sample=(15.0, 59555.0, 75000.0, 400.0, 26045.0, 0.9049, 0.0))
def ev_ebitda_target(multiple: Number, ebitda: Number, net_cash: Number, minorities: Number, shares: Number,
                     fx: Number, investments: Number = 0.0) -> Result:
    """EV = multiple x EBITDA, then the equity bridge per share (NM for a non-positive EBITDA)."""
    if multiple <= 0 or ebitda <= 0:
        return NOT_MEANINGFUL
    return equity_per_share(multiple * ebitda, net_cash, minorities, shares, fx, investments)


# ---- Sum of the parts -----------------------------------------------------------------------
def _method_key(method: str) -> str:
    """'P/E', 'pe', 'EV/EBITDA', 'ev-ebitda' -> PE, EVEBITDA."""
    return "".join(ch for ch in method.upper() if ch.isalnum())


@excel_function("SEGMENT_VALUE", "One segment's value for a sum of the parts: multiple x metric by method PE, PB, PS or EV/EBITDA.",
                Arg("method", TEXT, "PE, PB, PS or EV/EBITDA", required=True),
                Arg("multiple", NUMBER, "The segment's multiple"),
                Arg("metric", NUMBER, "Allocated profit, book value, revenue or EBITDA, millions"),
                native=("IF({0}=\"\",#N/A,IF(ISNA(MATCH(SUBSTITUTE(SUBSTITUTE(SUBSTITUTE(UPPER(TRIM({0})),\"/\",\"\"),\"-\",\"\"),\" \",\"\"),"
                        "{" + ",".join(f'"{m}"' for m in SEGMENT_METHODS) + "},0)),#VALUE!,IF(OR({1}<=0,{2}<=0),{NM},{1}*{2})))"),
                sample=("PE", 20.0, 30000.0), formula_name="segment_value")
def _segment_value_cell(method, multiple, metric):
    if method is None or (isinstance(method, str) and not method.strip()):
        raise Reject(ERR_NA)  # an empty method cell: the row is not filled in yet
    return segment_value(method, multiple, metric)


# What each segment method multiplies, and the cell's words when the layout has no such segment line.
SEGMENT_METRICS = {"PE": "profit", "PB": "equity", "PS": "revenue", "EVEBITDA": "ebitda"}


def _native_method_key(i: int) -> str:
    return f'SUBSTITUTE(SUBSTITUTE(SUBSTITUTE(UPPER(TRIM({{{i}}})),"/",""),"-","")," ","")'


@excel_function("SEGMENT_METRIC", "What a segment's method multiplies: profit for PE, equity for PB, revenue for PS, EBITDA for EV/EBITDA; says so where the layout has no such line.",
                Arg("method", TEXT, "PE, PB, PS or EV/EBITDA", required=True),
                Arg("revenue", ANY, "The segment's revenue, or empty where the layout has none", required=False),
                Arg("profit", ANY, "The segment's profit, or empty where the layout has none", required=False),
                Arg("ebitda", ANY, "The segment's EBITDA, or empty where the layout has none", required=False),
                Arg("equity", ANY, "The segment's book value, or empty where the layout has none", required=False),
                native=("IF({0}=\"\",\"" + NOT_VALUED + "\",IFERROR(CHOOSE(MATCH(" + _native_method_key(0) + ",{\"PE\",\"PB\",\"PS\",\"EVEBITDA\"},0),"
                        + ",".join(f'IF({{{i}}}="","{NO_SEGMENT_LINE[what]}",{{{i}}})'
                                   for i, what in ((2, "profit"), (4, "equity"), (1, "revenue"), (3, "ebitda")))
                        + "),#VALUE!))"),
                sample=("PE", 120000.0, 9000.0, None, None), formula_name="segment_metric")
def segment_metric(method, revenue=None, profit=None, ebitda=None, equity=None):
    """The segment line the method applies to, or the label saying the layout has none (so the
    method cannot value this segment; the method cell's drop-down offers only the others); not
    valued (未估值) while no method is chosen. InputError (#VALUE!) for a method not in
    SEGMENT_METHODS."""
    if method is None or (isinstance(method, str) and not method.strip()):
        return NOT_VALUED
    key = _method_key(method)
    if key not in SEGMENT_METRICS:
        raise InputError(f"segment method {method!r} is not one of PE, PB, PS, EV/EBITDA")
    what = SEGMENT_METRICS[key]
    value = cell_scalar({"revenue": revenue, "profit": profit, "ebitda": ebitda, "equity": equity}[what])
    if is_blank(value):
        return NO_SEGMENT_LINE[what]
    return _valuation_cell(value)   # a number, NM, or an error value; other text is #VALUE!


def segment_value(method: str, multiple: Number, metric: Number) -> Result:
    """A segment's value, multiple x metric, in millions: an equity value for P/E (on the profit
    allocated to the segment), P/B (allocated book) and P/S (revenue), an enterprise value for
    EV/EBITDA. One sheet row per segment calls this once; `sotp` adds the rows.

    NM for a non-positive multiple or metric (a loss-making segment is not valued on P/E: give it
    P/S). InputError (#VALUE! in a cell) for a method not in SEGMENT_METHODS."""
    if _method_key(method) not in SEGMENT_METHODS:
        raise InputError(f"segment method {method!r} is not one of PE, PB, PS, EV/EBITDA")
    if multiple <= 0 or metric <= 0:
        return NOT_MEANINGFUL
    return multiple * metric


def sotp_equity(segment_values: Sequence[Number], net_cash: Number = 0.0, minorities: Number = 0.0,
                investments: Number = 0.0) -> Number:
    """Total equity value of a sum of the parts: the segments' values, plus net cash, less
    minorities, plus long-term investments, each bridge term counted once at group level (so a
    segment valued on P/E should be allocated a profit that excludes interest on group cash)."""
    return equity_value(math.fsum(segment_values), net_cash, minorities, investments)


def sotp(segment_values: Sequence[Number], shares: Number, fx: Number, net_cash: Number = 0.0,
         minorities: Number = 0.0, investments: Number = 0.0) -> Result:
    """Sum-of-the-parts target price in the trading currency: `sotp_equity` / shares / FX."""
    return equity_per_share(math.fsum(segment_values), net_cash, minorities, shares, fx, investments)


def _valuation_cell(value) -> Result:
    """A cell holding a value to be added or weighted: a number, NM (passed on as NM: a method
    with no meaningful value has none to contribute), or an error value (passed on)."""
    if isinstance(value, str) and value.strip().upper() == NOT_MEANINGFUL:
        return NOT_MEANINGFUL
    return cell_number(value)


@excel_function("SOTP_EQUITY", "Sum of the parts: segment values + net cash - minorities + investments, millions.",
                Arg("segment_values", ANY, "Column or row of segment values, millions"),
                Arg("net_cash", OPTIONAL, "Group net cash (negative for net debt), 0 if empty", 0.0),
                Arg("minorities", OPTIONAL, "Minority interests, 0 if empty", 0.0), _INVESTMENTS,
                native=('IF(COUNTIF({0},"' + NOT_VALUED + '")>0,"' + NOT_VALUED + '",IF(COUNTIF({0},{NM})>0,{NM},'
                        'SUM({0})+{1}-{2}+{3}))'),
                sample=([[300000.0], [200000.0], [150000.0]], 75000.0, 400.0, 0.0), formula_name="sotp_equity")
def _sotp_equity_cell(segment_values, net_cash, minorities, investments):
    values = _segment_cells(segment_values)
    if isinstance(values, str):
        return values
    return sotp_equity(values, net_cash, minorities, investments)


@excel_function("SOTP", "Sum-of-the-parts target price: (segments + net cash - minorities + investments) / shares / FX.",
                Arg("segment_values", ANY, "Column or row of segment values, millions"), _SHARES, _FX,
                Arg("net_cash", OPTIONAL, "Group net cash (negative for net debt), 0 if empty", 0.0),
                Arg("minorities", OPTIONAL, "Minority interests, 0 if empty", 0.0), _INVESTMENTS,
                native=('IF(COUNTIF({0},"' + NOT_VALUED + '")>0,"' + NOT_VALUED + '",IF(COUNTIF({0},{NM})>0,{NM},'
                        'ER_EQUITY_PER_SHARE(SUM({0}),{3},{4},{1},{2},{5})))'),
                sample=([[300000.0], [200000.0], [150000.0]], 26045.0, 0.9049, 75000.0, 400.0, 0.0),
                formula_name="sotp")
def _sotp_cell(segment_values, shares, fx, net_cash, minorities, investments):
    values = _segment_cells(segment_values)
    if isinstance(values, str):
        return values
    return sotp(values, shares, fx, net_cash, minorities, investments)


def _segment_cells(value) -> list[float] | str:
    """Segment values from a range: empty cells skipped (a spare row); 未估值 while a segment is
    not valued yet (every segment must be, or the parts do not add up to the whole), then NM if
    any segment is NM; an error value passes on."""
    cells = [v for v in cell_row(value) if not is_blank(v)]
    if not cells:
        raise Reject(ERR_NA)
    if any(isinstance(v, str) and v.strip() == NOT_VALUED for v in cells):
        return NOT_VALUED
    if any(isinstance(v, str) and v.strip().upper() == NOT_MEANINGFUL for v in cells):
        return NOT_MEANINGFUL
    return [_valuation_cell(v) for v in cells]


# ---- DCF (FCFF) -----------------------------------------------------------------------------
def _in_unit_interval(rate: Number) -> bool:
    return 0.0 <= rate <= 1.0


@excel_function("WACC", "WACC by CAPM: (1 - w) x (rf + beta x ERP) + w x cost of debt x (1 - tax).",
                Arg("rf", NUMBER, "Risk-free rate"), Arg("beta", NUMBER, "Equity beta"),
                Arg("erp", NUMBER, "Equity risk premium"), Arg("cost_of_debt", NUMBER, "Pre-tax cost of debt"),
                Arg("tax", NUMBER, "Tax rate"), Arg("debt_weight", NUMBER, "Target debt / (debt + equity)"),
                native="IF(OR({4}<0,{4}>1,{5}<0,{5}>1),#NUM!,(1-{5})*({0}+{1}*{2})+{5}*{3}*(1-{4}))",
                sample=(0.025, 1.1, 0.06, 0.04, 0.175, 0.1))
def wacc(rf: Number, beta: Number, erp: Number, cost_of_debt: Number, tax: Number, debt_weight: Number) -> Result:
    """Weighted average cost of capital with the cost of equity from CAPM (rf + beta x ERP) and
    the after-tax cost of debt, at target weights. #NUM! for a tax rate or debt weight outside
    0..100%."""
    if not (_in_unit_interval(tax) and _in_unit_interval(debt_weight)):
        return ERR_NUM
    cost_of_equity = rf + beta * erp
    return (1.0 - debt_weight) * cost_of_equity + debt_weight * cost_of_debt * (1.0 - tax)


@excel_function("FCFF", "Free cash flow to the firm: EBIT x (1 - t) + D&A + capex + WC change, cash-flow signs.",
                Arg("ebit", NUMBER, "EBIT, millions"), Arg("tax_rate", NUMBER, "Tax rate on EBIT"),
                Arg("da", NUMBER, "Depreciation and amortisation, positive (the cash-flow add-back)"),
                Arg("capex", NUMBER, "Capex as the cash-flow line: negative when spent"),
                Arg("wc_change", NUMBER, "Change in working capital as the cash-flow line: negative when it absorbs cash"),
                native="IF(OR({1}<0,{1}>1),#NUM!,{0}*(1-{1})+{2}+{3}+{4})",
                sample=(52000.0, 0.175, 9000.0, -12000.0, -3000.0))
def fcff(ebit: Number, tax_rate: Number, da: Number, capex: Number, wc_change: Number) -> Result:
    """FCFF = EBIT x (1 - t) + D&A - capital spending - increase in working capital.

    Signs are the model's cash-flow signs, so the lines link straight in: `capex` is the cash-flow
    line 资本性支出净额 (negative when spent) and `wc_change` the line 营运资本变动 (negative when
    working capital absorbs cash); both are therefore ADDED, which is the textbook "- capex -
    ΔWC" with the spend and the increase as positive amounts. Tax is charged on EBIT at the given
    rate, also when EBIT is negative (a credit, the usual simplification). #NUM! for a tax rate
    outside 0..100%."""
    if not _in_unit_interval(tax_rate):
        return ERR_NUM
    return ebit * (1.0 - tax_rate) + da + capex + wc_change


def discount_factor(rate: Number, t: Number, mid_year: bool) -> Number:
    """1 / (1 + rate)^(t - 0.5) for mid-year cash flows, 1 / (1 + rate)^t for year-end ones."""
    return (1.0 + rate) ** -(t - 0.5 if mid_year else t)


def dcf(cash_flows: Sequence[Number], discount_rate: Number, terminal_growth: Number | None = None,
        mid_year: bool = False, exit_multiple: Number | None = None, terminal_metric: Number | None = None) -> Result:
    """Enterprise value at the valuation date (the start of the first forecast year) of FCFF
    `cash_flows` for years t = 1..N, plus a terminal value.

    Discounting: year t's flow is discounted by (1 + WACC)^t at year-end, or by (1 + WACC)^(t -
    0.5) with `mid_year`, the flow arriving on average half-way through the year.

    Terminal value, discounted consistently with the timing of the cash flows it stands for:
    - Gordon growth (the default): TV = FCFF_N x (1 + g) / (WACC - g), the value one period
      before the first terminal flow. Those flows arrive as the explicit ones do, so TV is
      discounted by (1 + WACC)^N at year-end and (1 + WACC)^(N - 0.5) mid-year.
      #NUM! when g >= WACC: the perpetuity does not converge and no finite value exists.
    - Exit multiple (when `exit_multiple` is given): TV = multiple x `terminal_metric` (for
      example EV/EBITDA x EBITDA of year N), a price paid at the end of year N, so discounted by
      (1 + WACC)^N under both conventions; `terminal_growth` is then not used.

    #NUM! also for WACC <= 0, growth <= -100%, or a negative exit multiple; #N/A when neither a
    terminal growth nor an exit multiple is given, or an exit multiple without its metric."""
    if not cash_flows:
        return ERR_NA
    if discount_rate <= 0:
        return ERR_NUM
    n = len(cash_flows)
    explicit = math.fsum(cf * discount_factor(discount_rate, t, mid_year) for t, cf in enumerate(cash_flows, start=1))
    if exit_multiple is not None:
        if terminal_metric is None:
            return ERR_NA
        if exit_multiple < 0:
            return ERR_NUM
        terminal = exit_multiple * terminal_metric * discount_factor(discount_rate, n, False)
    else:
        if terminal_growth is None:
            return ERR_NA
        if terminal_growth >= discount_rate or terminal_growth <= -1.0:
            return ERR_NUM
        value = cash_flows[-1] * (1.0 + terminal_growth) / (discount_rate - terminal_growth)
        terminal = value * discount_factor(discount_rate, n, mid_year)
    return explicit + terminal


def _switch(value) -> bool:
    """A TRUE/FALSE cell: booleans, 1 or 0, or the text TRUE/FALSE that a drop-down list of
    those words gives; empty is FALSE, as Excel's IF reads an empty cell."""
    value = cell_scalar(value)
    if is_blank(value):
        return False
    if is_error(value):
        raise Reject(value.strip().upper())
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in ("TRUE", "FALSE"):
        return value.strip().upper() == "TRUE"
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise Reject(ERR_VALUE)


def _year_row(value) -> list[float]:
    """Cash flows for consecutive years from a row or column: trailing empty cells are spare
    columns and dropped, but an empty cell before a number would shift every later year by one
    period, so it is #N/A rather than skipped."""
    cells = cell_row(value)
    while cells and is_blank(cells[-1]):
        cells.pop()
    if not cells or any(is_blank(v) for v in cells):
        raise Reject(ERR_NA)
    return [cell_number(v) for v in cells]


FCFF_ROW = Arg("fcff_row", ANY, "FCFF of the forecast years, first year first, millions")
# A DCF's discount rate and terminal value, in the argument order both DCF functions take.
DCF_TERMS = (Arg("wacc", NUMBER, "Discount rate (WACC)"),
             Arg("terminal_growth", OPTIONAL, "Perpetual growth after the last year; must be below WACC"),
             Arg("mid_year", ANY, _MID_YEAR, required=False),
             Arg("exit_multiple", OPTIONAL, "Exit multiple instead of Gordon growth, empty for Gordon"),
             Arg("terminal_metric", OPTIONAL, "The metric the exit multiple applies to (last-year EBITDA)"))


@excel_function("DCF", "Enterprise value of FCFF by DCF: Gordon growth or exit-multiple terminal value, mid-year switch.",
                FCFF_ROW, *DCF_TERMS,
                native=None,
                sample=([[40000.0, 46000.0, 52000.0]], 0.09, 0.025, True, None, None), formula_name="dcf")
def _dcf_cell(fcff_row, discount_rate, terminal_growth, mid_year, exit_multiple, terminal_metric):
    return dcf(_year_row(fcff_row), discount_rate, terminal_growth, _switch(mid_year), exit_multiple, terminal_metric)


# ---- Blend ----------------------------------------------------------------------------------
def blend(values: Sequence[Result | None], weights: Sequence[Number]) -> Result:
    """Weighted target price: sum of weight x value over the methods.

    Weights are decimals and must add up to 100% (within WEIGHT_TOLERANCE), else the label
    WEIGHTS_NOT_100; a negative weight is #NUM!. A method with weight 0 is ignored whatever its
    value (so an unused method may stay empty or NM); a weighted method whose value is NM or not
    positive makes the blend NM, and a weighted error value is passed on."""
    if len(values) != len(weights):
        return ERR_VALUE
    if any(w < 0 for w in weights):
        return ERR_NUM
    if abs(math.fsum(weights) - 1.0) > WEIGHT_TOLERANCE:
        return WEIGHTS_NOT_100
    used = [(v, w) for v, w in zip(values, weights) if w != 0]
    for value, _ in used:
        if isinstance(value, str):
            return value  # NM or an error value
        if value is None:
            return ERR_NA
        if value <= 0:
            return NOT_MEANINGFUL
    return math.fsum(v * w for v, w in used)


@excel_function("BLEND", "Blended target price: values weighted by method; weights must sum to 100%.",
                Arg("values_row", ANY, "Target price of each method, trading currency"),
                Arg("weights_row", ANY, "Weight of each method (decimals summing to 100%), empty is 0"),
                native=None,
                sample=([[45.0, 50.0, 48.0]], [[0.5, 0.3, 0.2]]), formula_name="blend")
def blend_cells(values_row, weights_row):
    weights = [0.0 if is_blank(w) else cell_number(w) for w in cell_row(weights_row)]
    values = cell_row(values_row)
    if len(values) != len(weights):
        return ERR_VALUE
    # Only weighted values are converted, so an unused method's cell may hold anything.
    converted = [None if w == 0 or is_blank(v) else _valuation_cell(v) for v, w in zip(values, weights)]
    return blend(converted, weights)


# ---- Sensitivity grids ----------------------------------------------------------------------
def dcf_target(cash_flows: Sequence[Number], discount_rate: Number, terminal_growth: Number, mid_year: bool,
               net_cash: Number, minorities: Number, shares: Number, fx: Number, investments: Number = 0.0) -> Result:
    """Target price by DCF (Gordon terminal value): `dcf`, then the equity bridge per share."""
    ev = dcf(cash_flows, discount_rate, terminal_growth, mid_year)
    if isinstance(ev, str):
        return ev
    return equity_per_share(ev, net_cash, minorities, shares, fx, investments)


def _axis(values: list[float]) -> list[float]:
    if not values:
        raise Reject(ERR_NA)
    return values


@excel_function("DCF_GRID", "Array: DCF target price for each WACC (rows) x terminal growth (columns).",
                Arg("fcff_row", ANY, "FCFF of the forecast years, first year first, millions"),
                Arg("wacc_list", SERIES, "WACC values, one per grid row"),
                Arg("g_list", SERIES, "Terminal growth values, one per grid column"),
                Arg("mid_year", ANY, _MID_YEAR), _NET_CASH, _MINORITIES, _SHARES, _FX, _INVESTMENTS,
                native=None,
                sample=([[40000.0, 46000.0, 52000.0]], [0.08, 0.09, 0.10], [0.02, 0.025, 0.03], True,
                        75000.0, 400.0, 26045.0, 0.9049, 0.0))
def dcf_grid(fcff_row, wacc_list, g_list, mid_year, net_cash, minorities, shares, fx, investments):
    """`dcf_target` at every WACC x terminal growth; a point with g >= WACC shows #NUM!."""
    cash_flows, at_mid_year = _year_row(fcff_row), _switch(mid_year)
    return grid(lambda w, g: dcf_target(cash_flows, w, g, at_mid_year, net_cash, minorities, shares, fx, investments),
                _axis(wacc_list), _axis(g_list))


@excel_function("PE_GRID", "Array: P/E target price for each multiple (rows) x EPS (columns).",
                Arg("multiples", SERIES, "Target P/E values, one per grid row"),
                Arg("eps_row", SERIES, "EPS values (for example by year), one per grid column"), _FX,
                native=None,
                sample=([18.0, 20.0, 22.0], [[1.635, 1.98, 2.35]], 0.9049))
def pe_grid(multiples, eps_row, fx):
    """The P/E target (`multiple_target`) at every multiple x EPS."""
    return grid(lambda m, e: multiple_target(m, e, fx), _axis(multiples), _axis(eps_row))
