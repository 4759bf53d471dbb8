"""Valuation core: multiples, sum of the parts, DCF, blend and the sensitivity grids, each against
a hand computation or an independent one written here (a plain discounted sum, numpy-financial,
and a perpetuity summed term by term)."""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import udfs
from conftest import examples
from test_hostile import EXCEL_VALUES
from test_udf_inputs import BAD, acceptable as acceptable_scalar
from udfs import valuation as v
from udfs.constants import ERR_NA, ERR_NUM, ERR_VALUE, NOT_MEANINGFUL as NM
from udfs.functions import all_functions
from udfs.sensitivity import two_way

F = udfs.excel_functions()
VALUATION = [f for f in all_functions() if f.impl.__module__ == v.__name__]
REL = 1e-9  # "equals an independent computation to 1e-9", relative to the value's size

FLOWS = [40_000.0, 46_000.0, 52_000.0, 57_500.0, 61_000.0]
WACC, G = 0.09, 0.025


def close(got, exp, rel=REL) -> bool:
    return isinstance(got, float) and abs(got - exp) <= rel * max(1.0, abs(exp))


# ---- Relative valuation ---------------------------------------------------------------------
def test_pe_target_is_multiple_times_eps_over_fx_by_hand():
    # 22 x 1.635 = 35.97 CNY; / 0.9049 CNY per HKD = 39.75025 HKD
    assert v.multiple_target(22.0, 1.635, 0.9049) == pytest.approx(39.75025, abs=1e-5)
    assert F["ER_PE_TARGET"](22, 1.635, 0.9049) == pytest.approx(39.75025, abs=1e-5)


@pytest.mark.parametrize("year", ["2025E", "2026E", "2027E"])
def test_pe_target_on_the_models_eps_of_a_year(model, year):
    fx = model.company.market["fx_rate"]
    eps = model.value("non_ifrs_eps", year)
    assert F["ER_PE_TARGET"](20.0, eps, fx) == pytest.approx(20.0 * eps / fx, rel=1e-15)


CASES = [
    # (exp, function, args): hand-computed; the three multiple targets through their Excel names
    (3.0 * 10.0 / 0.5, F["ER_PB_TARGET"], (3.0, 10.0, 0.5)),
    (2.0 * 18.0 / 0.9, F["ER_PS_TARGET"], (2.0, 18.0, 0.9)),
    (NM, F["ER_PE_TARGET"], (22.0, -0.4, 0.9)),               # a P/E on a loss is no price
    (NM, F["ER_PE_TARGET"], (22.0, 0.0, 0.9)),
    (NM, F["ER_PE_TARGET"], (-5.0, 1.6, 0.9)),
    (NM, F["ER_PB_TARGET"], (3.0, 10.0, 0.0)),                # FX must be positive
    # EV/EBITDA: 10 x 1,000 = 10,000 EV; + 500 net cash - 100 minorities + 200 investments = 10,600;
    # / 100 shares = 106 CNY; / 0.5 = 212
    (212.0, v.ev_ebitda_target, (10.0, 1000.0, 500.0, 100.0, 100.0, 0.5, 200.0)),
    # net debt enters as negative net cash: 10,000 - 500 - 100 = 9,400 / 100 / 0.5 = 188
    (188.0, v.ev_ebitda_target, (10.0, 1000.0, -500.0, 100.0, 100.0, 0.5)),
    (NM, v.ev_ebitda_target, (10.0, -1000.0, 500.0, 100.0, 100.0, 0.5)),
    (NM, v.equity_per_share, (1000.0, -2000.0, 0.0, 100.0, 0.5)),   # net debt above EV: no equity
    (NM, v.equity_per_share, (1000.0, 0.0, 0.0, 0.0, 0.5)),
    (NM, v.equity_per_share, (1000.0, 0.0, 0.0, 100.0, -1.0)),
    (10.6, v.equity_per_share, (1000.0, 50.0, 10.0, 100.0, 1.0, 20.0)),
]


@pytest.mark.parametrize("exp,function,args", CASES)
def test_relative(exp, function, args):
    # called here, not when the table is collected, so a failure is this case's, not the module's
    assert function(*args) == (NM if exp == NM else pytest.approx(exp, rel=1e-12))


# ---- Sum of the parts -----------------------------------------------------------------------
def test_sotp_sums_its_segment_rows():
    rows = [("P/E", 20.0, 300.0), ("P/S", 2.0, 1000.0), ("EV/EBITDA", 8.0, 50.0)]  # 6,000 + 2,000 + 400
    column = [[F["ER_SEGMENT_VALUE"](*row)] for row in rows]
    assert column == [[6000.0], [2000.0], [400.0]]
    # 8,400 + 600 net cash = 9,000 equity; / 100 shares / 0.9 = 100
    assert F["ER_SOTP_EQUITY"](column, 600.0) == pytest.approx(9000.0)
    assert F["ER_SOTP"](column, 100.0, 0.9, 600.0) == pytest.approx(100.0)
    assert F["ER_SOTP"](column + [[None], [""]], 100.0, 0.9, 600.0) == pytest.approx(100.0)  # spare rows
    assert F["ER_SOTP"]([6000.0, 2000.0, 400.0], 100.0, 0.9, 600.0) == pytest.approx(100.0)   # a row as xlwings passes it
    assert v.sotp_equity([6000.0, 2000.0, 400.0], 600.0, 100.0, 50.0) == pytest.approx(8950.0)


@pytest.mark.parametrize("args,exp", [
    (("pe", 20.0, 300.0), 6000.0),
    (("EV-EBITDA", 8.0, 50.0), 400.0),
    (("PB", 1.5, 1000.0), 1500.0),
    (("P/E", 20.0, -300.0), NM),       # a loss-making segment is not valued on earnings
    (("DCF", 20.0, 300.0), ERR_VALUE),  # not a segment method
    ((None, 20.0, 300.0), ERR_NA),
    ((7, 20.0, 300.0), ERR_VALUE),
])
def test_segment_value(args, exp):
    assert F["ER_SEGMENT_VALUE"](*args) == exp


def test_sotp_with_a_not_meaningful_segment_is_not_meaningful():
    assert F["ER_SOTP"]([[6000.0], ["NM"]], 100.0, 0.9) == NM
    assert F["ER_SOTP"]([[6000.0], ["#DIV/0!"]], 100.0, 0.9) == "#DIV/0!"
    assert F["ER_SOTP"]([[None], [None]], 100.0, 0.9) == ERR_NA
    assert F["ER_SOTP"]([[1.0, 2.0], [3.0, 4.0]], 100.0, 0.9) == ERR_VALUE


# ---- WACC and FCFF --------------------------------------------------------------------------
def test_wacc_by_capm_by_hand():
    # cost of equity 2.5% + 1.1 x 6% = 9.1%; after-tax debt 4% x 82.5% = 3.3%; 90/10 = 8.52%
    assert F["ER_WACC"](0.025, 1.1, 0.06, 0.04, 0.175, 0.1) == pytest.approx(0.0852, abs=1e-15)
    assert F["ER_WACC"](0.025, 1.1, 0.06, 0.04, 0.175, 0.0) == pytest.approx(0.091, abs=1e-15)
    assert F["ER_WACC"](0.025, 1.1, 0.06, 0.04, 0.175, 1.5) == ERR_NUM
    assert F["ER_WACC"](0.025, 1.1, 0.06, 0.04, -0.1, 0.1) == ERR_NUM


def test_fcff_takes_the_models_cash_flow_signs(model):
    # 1,000 x 80% + 100 D&A, 300 spent on capex (-300), working capital absorbing 50 (-50) = 550
    assert F["ER_FCFF"](1000.0, 0.2, 100.0, -300.0, -50.0) == pytest.approx(550.0)
    year = "2026E"
    ebit, da, capex, wc = (model.value(k, year) for k in ("ebit", "da", "capex", "working_capital_change"))
    assert capex < 0  # the model's capex is an outflow; the textbook form uses the spend
    spend, increase_in_wc = -capex, -wc
    assert F["ER_FCFF"](ebit, 0.175, da, capex, wc) == pytest.approx(ebit * (1 - 0.175) + da - spend - increase_in_wc)
    assert F["ER_FCFF"](ebit, 1.2, da, capex, wc) == ERR_NUM


# ---- DCF ------------------------------------------------------------------------------------
def plain_dcf(flows, w, g, mid_year):
    """The textbook sum, written out: each flow over (1+w)^t (t - 0.5 mid-year), and the Gordon
    value FCFF_N (1+g) / (w-g) discounted like the flows it stands for."""
    shift = 0.5 if mid_year else 0.0
    n = len(flows)
    total = 0.0
    for t in range(1, n + 1):
        total += flows[t - 1] / (1 + w) ** (t - shift)
    return total + flows[-1] * (1 + g) / (w - g) / (1 + w) ** (n - shift)


@pytest.mark.parametrize("mid_year", [False, True])
def test_dcf_equals_a_plain_discounted_sum(mid_year):
    got = F["ER_DCF"]([FLOWS], WACC, G, mid_year)
    assert close(got, plain_dcf(FLOWS, WACC, G, mid_year))


@pytest.mark.parametrize("mid_year", [False, True])
def test_dcf_equals_numpy_financial_npv(mid_year):
    npf = pytest.importorskip("numpy_financial")
    terminal = FLOWS[-1] * (1 + G) / (WACC - G)
    # npv discounts its first value at t = 0, hence the leading 0; the terminal value sits on year N.
    end_year = float(npf.npv(WACC, [0.0, *FLOWS[:-1], FLOWS[-1] + terminal]))
    exp = end_year * (1 + WACC) ** 0.5 if mid_year else end_year  # mid-year: every flow half a year earlier
    assert close(F["ER_DCF"]([FLOWS], WACC, G, mid_year), exp)


@pytest.mark.parametrize("mid_year", [False, True])
def test_gordon_value_equals_the_perpetuity_summed_term_by_term(mid_year):
    # The terminal value's timing is right exactly when it equals the growing flows themselves,
    # discounted year by year with the same convention (the tail beyond 3,000 years is < 1e-60).
    years = 3000
    flows = FLOWS + [FLOWS[-1] * (1 + G) ** k for k in range(1, years)]
    shift = 0.5 if mid_year else 0.0
    explicit = math.fsum(cf / (1 + WACC) ** (t - shift) for t, cf in enumerate(flows, start=1))
    assert close(F["ER_DCF"](FLOWS, WACC, G, mid_year), explicit)


@pytest.mark.parametrize("mid_year", [False, True])
def test_exit_multiple_is_a_price_at_the_end_of_the_last_year(mid_year):
    npf = pytest.importorskip("numpy_financial")
    ebitda_n, multiple = 80_000.0, 12.0
    flows_value = float(npf.npv(WACC, [0.0, *FLOWS])) * ((1 + WACC) ** 0.5 if mid_year else 1.0)
    exp = flows_value + multiple * ebitda_n / (1 + WACC) ** len(FLOWS)
    assert close(F["ER_DCF"](FLOWS, WACC, None, mid_year, multiple, ebitda_n), exp)
    assert close(F["ER_DCF"](FLOWS, WACC, 0.5, mid_year, multiple, ebitda_n), exp)  # g unused with an exit
    assert F["ER_DCF"](FLOWS, WACC, None, mid_year, multiple) == ERR_NA             # multiple of what?


@pytest.mark.parametrize("g", [WACC, WACC + 1e-12, 0.12, 5.0])
def test_growth_at_or_above_wacc_is_an_error_value_not_a_number(g):
    assert v.dcf(FLOWS, WACC, g) == ERR_NUM
    assert F["ER_DCF"]([FLOWS], WACC, g, True) == ERR_NUM
    assert F["ER_DCF_GRID"]([FLOWS], [WACC], [g], False, 0.0, 0.0, 100.0, 1.0) == [[ERR_NUM]]


@pytest.mark.parametrize("args,exp", [
    (([FLOWS], 0.0, 0.02, False), ERR_NUM),                     # no discounting
    (([FLOWS], -0.05, -0.1, False), ERR_NUM),
    (([FLOWS], WACC, None, False), ERR_NA),                     # neither Gordon nor exit multiple
    (([FLOWS], WACC, -1.0, False), ERR_NUM),
    (([[1.0, None, 3.0]], WACC, G, False), ERR_NA),            # a gap would shift later years
    (([[None, 2.0, 3.0]], WACC, G, False), ERR_NA),
    (([[1.0, 2.0], [3.0, 4.0]], WACC, G, False), ERR_VALUE),    # a block is not a year row
    (([FLOWS], WACC, G, "yes"), ERR_VALUE),
    (([FLOWS], WACC, G, 2), ERR_VALUE),
    (([FLOWS], WACC, G, "#REF!"), "#REF!"),
    (([[1.0, "text", 3.0]], WACC, G, False), ERR_VALUE),
])
def test_dcf_refuses(args, exp):
    assert F["ER_DCF"](*args) == exp


def test_dcf_reads_rows_columns_trailing_blanks_and_switches_alike():
    exp = plain_dcf(FLOWS, WACC, G, True)
    for row in ([FLOWS], [[cf] for cf in FLOWS], FLOWS, [FLOWS + [None, ""]]):
        for switch in (True, 1, [[True]]):
            assert close(F["ER_DCF"](row, WACC, G, switch), exp)
    assert close(F["ER_DCF"]([FLOWS], WACC, G, None), plain_dcf(FLOWS, WACC, G, False))  # empty: year-end
    assert close(F["ER_DCF"](40_000.0, WACC, G, False), plain_dcf([40_000.0], WACC, G, False))


# ---- Blend ----------------------------------------------------------------------------------
def test_blend_by_hand():
    # 50% x 45 + 30% x 50 + 20% x 48 = 22.5 + 15 + 9.6 = 47.1
    assert F["ER_BLEND"]([[45.0, 50.0, 48.0]], [[0.5, 0.3, 0.2]]) == pytest.approx(47.1, abs=1e-12)
    assert F["ER_BLEND"]([[45.0], [50.0], [48.0]], [[0.5], [0.3], [0.2]]) == pytest.approx(47.1, abs=1e-12)
    assert F["ER_BLEND"]([[30.0, 60.0, 90.0]], [[1 / 3, 1 / 3, 1 / 3]]) == pytest.approx(60.0, abs=1e-12)


@pytest.mark.parametrize("weights", [[[0.5, 0.3, 0.1]], [[50.0, 30.0, 20.0]], [[0.5, 0.3, 0.2 + 2e-9]], [[None, None, None]]])
def test_weights_not_summing_to_100_percent_give_the_labelled_error(weights):
    assert F["ER_BLEND"]([[45.0, 50.0, 48.0]], weights) == v.WEIGHTS_NOT_100 == "weights≠100%"


@pytest.mark.parametrize("values,weights,exp", [
    ([[45.0, "NM", None, "#NUM!"]], [[1.0, 0.0, None, 0]], 45.0),   # unweighted methods may be empty, NM or errors
    ([[45.0, "NM"]], [[0.5, 0.5]], NM),
    ([[45.0, "#NUM!"]], [[0.5, 0.5]], ERR_NUM),
    ([[45.0, None]], [[0.5, 0.5]], ERR_NA),
    ([[45.0, -3.0]], [[0.5, 0.5]], NM),
    ([[45.0, 50.0]], [[1.5, -0.5]], ERR_NUM),                        # sums to 100% but shorts a method
    ([[45.0, 50.0, 48.0]], [[0.5, 0.5]], ERR_VALUE),
    ([[45.0, 50.0]], [[0.5, "half"]], ERR_VALUE),
])
def test_blend_edges(values, weights, exp):
    got = F["ER_BLEND"](values, weights)
    assert got == (pytest.approx(exp) if isinstance(exp, float) else exp)


# ---- Sensitivity grids ----------------------------------------------------------------------
def test_two_way_puts_xs_down_and_ys_across():
    assert two_way(lambda x, y: f"{x}{y}", "ab", "123") == [["a1", "a2", "a3"], ["b1", "b2", "b3"]]
    assert two_way(lambda x, y: x * y, [], [1, 2]) == []


def test_dcf_grid_equals_cell_by_cell_calls():
    waccs, growths = [0.07, 0.08, 0.09, 0.10, 0.11, 0.12, 0.13], [0.0, 0.01, 0.02, 0.025, 0.03, 0.04, 0.08]
    bridge = (75_000.0, 400.0, 26_045.0, 0.9049)
    got = F["ER_DCF_GRID"]([FLOWS], [waccs], [[g] for g in growths], True, *bridge)
    assert len(got) == 7 and all(len(row) == 7 for row in got)
    for w, row in zip(waccs, got):
        for g, cell in zip(growths, row):
            ev = F["ER_DCF"]([FLOWS], w, g, True)
            exp = ev if isinstance(ev, str) else F["ER_EQUITY_PER_SHARE"](ev, *bridge)
            assert cell == exp
    assert got[0][-1] == ERR_NUM  # g 8% >= WACC 7%


def test_pe_grid_equals_cell_by_cell_calls(model):
    multiples = [16.0, 18.0, 20.0, 22.0, 24.0]
    eps = [model.value("non_ifrs_eps", y) for y in ("2025E", "2026E", "2027E")]
    fx = model.company.market["fx_rate"]
    got = F["ER_PE_GRID"]([[m] for m in multiples], [eps], fx)
    assert got == [[F["ER_PE_TARGET"](m, e, fx) for e in eps] for m in multiples]
    assert F["ER_PE_GRID"]([[20.0]], [[1.6, -0.2]], fx)[0][1] == NM


def test_an_empty_grid_axis_is_not_available():
    assert F["ER_PE_GRID"]([[None]], [[1.6]], 0.9) == ERR_NA
    assert F["ER_DCF_GRID"]([FLOWS], [], [0.02], False, 0.0, 0.0, 1.0, 1.0) == ERR_NA


# ---- Registration: samples and hostile input ------------------------------------------------
def acceptable(result) -> bool:
    """A finite number, an error value, a documented label, or a grid of those."""
    if isinstance(result, list):
        return all(acceptable(cell) for cell in result)
    return acceptable_scalar(result) or result in v.LABELS


def test_every_valuation_function_is_registered_with_a_sample_that_answers_a_number():
    names = {f.excel_name for f in VALUATION}
    assert names == {"ER_PE_TARGET", "ER_PB_TARGET", "ER_PS_TARGET", "ER_EQUITY_PER_SHARE", "ER_EV_EBITDA_TARGET",
                     "ER_SEGMENT_VALUE", "ER_SEGMENT_METRIC", "ER_SOTP_EQUITY", "ER_SOTP", "ER_WACC", "ER_FCFF", "ER_DCF", "ER_BLEND",
                     "ER_DCF_GRID", "ER_PE_GRID"}
    for spec in VALUATION:
        result = F[spec.excel_name](*spec.sample)
        cells = [c for row in result for c in row] if isinstance(result, list) else [result]
        assert cells and all(isinstance(c, float) and math.isfinite(c) for c in cells), (spec.excel_name, result)
        spec.description.encode("cp1252")  # the VBA help module is cp1252
        for arg in spec.args:
            arg.help.encode("cp1252")


@pytest.mark.parametrize("spec", VALUATION, ids=[f.excel_name for f in VALUATION])
def test_bad_inputs_get_an_error_value_or_label(spec):
    function = F[spec.excel_name]
    arity = len(spec.args)
    for position in range(arity):
        for bad in BAD:
            args = list(spec.sample)
            args[position] = bad
            assert acceptable(function(*args)), (spec.excel_name, position, bad)
    assert function(*([1.0] * (arity + 1))) == ERR_VALUE


# Anything Excel can pass to a valuation function: tests/test_hostile.py's
# test_every_udf_answers_anything_excel_can_pass draws the same arguments for every registered
# function, these among them, and holds the answer to the same rule (`acceptable` there takes the
# valuation labels too).


# ---- What a function does not read ------------------------------------------------------------
# (function, the argument read only when another is positive, that other argument): the
# sensitivity table's dependency analysis leaves the first out when the second is not positive
# (workbook.model.sensitivity_inputs), so each declaration must be true of the function.
GATED = [(f, arg.name, arg.read_only_if_positive) for f in all_functions() for arg in f.args if arg.read_only_if_positive]


def test_the_treasury_stock_price_is_declared_read_only_with_an_exercise_price():
    assert ("ER_DILUTED_SHARES", "price", "exercise_price") in [(f.excel_name, a, g) for f, a, g in GATED]


@pytest.mark.parametrize("spec,argument,gate", GATED, ids=[f"{f.excel_name}.{a}" for f, a, _ in GATED])
@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(data=st.data())
def test_an_argument_read_only_if_another_is_positive_is_not_read_otherwise(spec, argument, gate, data):
    """Whatever Excel passes in the other arguments, with the gate empty or not positive, two
    numbers in the argument give the same result (a number in it: an error would pass through)."""
    names = [arg.name for arg in spec.args]
    args = [data.draw(EXCEL_VALUES) for _ in names]
    args[names.index(gate)] = data.draw(st.one_of(st.none(), st.floats(max_value=0.0, allow_nan=False)))
    results = []
    for value in data.draw(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=2)):
        args[names.index(argument)] = value
        results.append(F[spec.excel_name](*args))
    assert results[0] == results[1] or all(isinstance(r, float) and math.isnan(r) for r in results), (args, results)
