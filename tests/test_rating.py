"""Rating: the report's scheme at and around every boundary, both conventions, bad inputs,
actions, benchmarks, and a scheme that exists only as data."""
from __future__ import annotations

import pytest

from udfs import rating
from udfs.constants import NOT_MEANINGFUL as NM

OUTER = [  # the default: 以上/以下 include the bound
    (0.15, "买入"), (0.1500001, "买入"), (0.1499999, "增持"), (0.30, "买入"),
    (0.05, "增持"), (0.0500001, "增持"), (0.0499999, "中性"),
    (0.0, "中性"), (-0.0499999, "中性"), (-0.05, "减持"), (-0.0500001, "减持"),
    (-0.1499999, "减持"), (-0.15, "卖出"), (-0.1500001, "卖出"), (-0.9, "卖出"),
]
INNER = [
    (0.15, "增持"), (0.1500001, "买入"), (0.05, "中性"), (-0.05, "中性"), (-0.15, "减持"), (-0.1500001, "卖出"),
]
MISSING = [None, "", "text", "15%", True, float("nan"), float("inf"), [0.2]]


@pytest.mark.parametrize("excess,exp", OUTER)
def test_everbright_bands_outer(excess, exp):
    assert rating.classify(excess) == exp


@pytest.mark.parametrize("excess,exp", INNER)
def test_everbright_bands_inner(excess, exp):
    assert rating.classify(excess, boundary="inner") == exp


@pytest.mark.parametrize("bad", MISSING)
def test_missing_or_invalid_is_unrated(bad):
    assert rating.classify(bad) == "无评级"


def test_fifteen_percent_from_float_arithmetic_is_exactly_fifteen():
    stock = (46.23 - 40.20) / 40.20          # 0.15000000000000002 or thereabouts in binary
    assert rating.classify(stock) == "买入"
    assert rating.classify(0.1 + 0.05) == "买入"   # 0.15000000000000002
    assert rating.classify(0.35 - 0.2) == "买入"   # 0.14999999999999997


def test_unknown_boundary_convention_is_refused():
    with pytest.raises(ValueError, match="boundary"):
        rating.classify(0.1, boundary="sideways")


@pytest.mark.parametrize("price,target,dps,exp", [
    (40.0, 46.0, 0.0, 0.15), (40.0, 44.0, 2.0, 0.15), (40.0, 40.0, None, 0.0),
    (0.0, 46.0, 0.0, NM), (-1.0, 46.0, 0.0, NM), (40.0, 0.0, 0.0, NM), (40.0, None, 0.0, NM), ("40", 46.0, 0.0, NM),
])
def test_expected_return(price, target, dps, exp):
    got = rating.expected_return(price, target, dps)
    assert got == exp if exp == NM else got == pytest.approx(exp)


def test_rate_uses_excess_not_absolute_return():
    assert rating.rate(40.0, 50.0, benchmark_return=0.10) == "买入"     # 25% - 10% = 15%
    assert rating.rate(40.0, 50.0, benchmark_return=0.12) == "增持"     # 13%
    assert rating.rate(40.0, 50.0, benchmark_return=None) == "无评级"   # no benchmark, no relative rating
    assert rating.rate(40.0, None, benchmark_return=0.0) == "无评级"


@pytest.mark.parametrize("previous,current,exp", [
    (None, "买入", "首次"), ("", "买入", "首次"), ("无评级", "增持", "首次"),
    ("买入", "买入", "维持"), ("增持", "买入", "上调"), ("买入", "中性", "下调"), ("卖出", "减持", "上调"),
    ("买入", "无评级", "无评级"), ("买入", "unknown", "无评级"),
])
def test_rating_action(previous, current, exp):
    assert rating.rating_action(previous, current) == exp


@pytest.mark.parametrize("ticker,exp", [
    ("1810.HK", "恒生指数"), ("600519.SH", "沪深300指数"), ("000001.SZ", "沪深300指数"),
    ("AAPL.O", "纳斯达克综合指数或标普500指数"), ("AAPL", "纳斯达克综合指数或标普500指数"), ("HK", "恒生指数"),
    ("A", "沪深300指数"), ("1810.XX", None), ("", None), (None, None),
])
def test_benchmark(ticker, exp):
    assert rating.benchmark_for(ticker) == exp


def test_four_tier_scheme_is_data_only():
    scheme = rating.get_scheme("four_tier_example")
    assert scheme.labels == ["推荐", "谨慎推荐", "中性", "回避"]
    assert rating.classify(0.10, scheme) == "推荐"
    assert rating.classify(0.07, scheme) == "谨慎推荐"
    assert rating.classify(-0.05, scheme) == "回避"
    assert rating.rating_action("中性", "推荐", scheme) == "上调"


def test_a_new_scheme_needs_no_code():
    data = {"absolute5": {"name": "Absolute", "basis": "absolute", "bands": [
        {"label": "Buy", "min": 20}, {"label": "Hold", "min": -10, "max": 20}, {"label": "Sell", "max": -10}]}}
    scheme = rating.parse_schemes(data)["absolute5"]
    assert rating.rate(10.0, 12.0, scheme=scheme) == "Buy"                     # +20%: no benchmark needed
    assert rating.rate(10.0, 10.5, scheme=scheme) == "Hold"                    # +5%
    assert rating.rate(10.0, 9.0, scheme=scheme) == "Sell"                     # -10% on the bound, outer
    assert rating.rate(10.0, 9.0, scheme=scheme, boundary="inner") == "Hold"   # -10% on the bound, inner
    assert rating.rate(10.0, 8.0, scheme=scheme) == "Sell"                     # -20%


def test_bad_scheme_data_names_the_scheme():
    with pytest.raises(ValueError, match="'broken'"):
        rating.parse_schemes({"broken": {"bands": []}})
    with pytest.raises(ValueError, match="basis"):
        rating.parse_schemes({"odd": {"name": "x", "basis": "vibes", "bands": []}})
    with pytest.raises(ValueError, match="unknown rating scheme"):
        rating.get_scheme("nope")


def test_benchmark_of_a_bare_suffix_is_not_available():
    """'.HK' names no ticker: it must not fall through to the US index (issue 15)."""
    import udfs
    assert udfs.excel_functions()["ER_BENCHMARK"](".HK", "everbright") == "#N/A"
    assert udfs.excel_functions()["ER_BENCHMARK"]("HK", "everbright") != "#N/A"


def test_a_huge_return_is_the_top_band_not_an_error():
    import udfs
    band = udfs.excel_functions()["ER_RATING_BAND"]
    assert band(1e18, "everbright", "outer") == "买入"
    assert band(-1e18, "everbright", "outer") == "卖出"
