"""Constants only: labels, error values, thresholds and conventions shared by the pure core.

Kept apart from the logic (as empyrical keeps `periods.py`) so that a reader can see every
convention the model relies on in one screen.
"""

# A result that exists but means nothing (negative-earnings P/E, growth from a negative base).
NOT_MEANINGFUL = "NM"

# The blended target price before the analyst has weighted any valuation method.
NOT_VALUED = "未估值"

# The valuation's words in a cell (udfs/valuation.py, udfs/dcf.py).
# A weighted method whose target is not a price, left out of the blend (the analyst's policy "exclude").
EXCLUDED = "已剔除 excluded"
# What the blend did, one of these (ER_BLEND_NOTE).
BLEND_NM_NOTE = "加权目标价为 NM：见加权贡献中标为 NM 的方法 Blend NM: see the method marked NM"
BLEND_EXCLUDED_NOTE = ("已剔除非价格的方法（见加权贡献中标为已剔除的行），其余权重按比例放大 "
                       "A weighted method that is not a price was left out; the other weights scale up")
BLEND_COMPLETE_NOTE = "全部加权方法均已计入 Every weighted method counts"
NOT_WEIGHTED = "尚未加权任何方法 No method is weighted yet"
# The DCF target's convention (ER_DCF_BASIS_NOTE), by basis.
BASIS_NOTES = {
    "price_date": "目标价 = 股价日期的每股价值（未滚动） Target = value per share at the price date",
    "horizon": ("目标价 = 每股价值按股权成本滚动至评级期末，减期内股息 "
                "Target = value rolled to the rating horizon at the cost of equity, less dividends paid within it"),
}
# A segment method whose metric the layout has no line for (ER_SEGMENT_METRIC), by metric.
NO_SEGMENT_LINE = {"profit": "无分部利润行 no segment profit line", "equity": "无分部净资产行 no segment equity line",
                   "revenue": "无分部收入行 no segment revenue line", "ebitda": "无分部 EBITDA 行 no segment EBITDA line"}

# Excel error values, as the cell shows them.
ERR_VALUE = "#VALUE!"
ERR_DIV0 = "#DIV/0!"
ERR_NA = "#N/A"
ERR_NUM = "#NUM!"
ERR_REF = "#REF!"
ERR_NAME = "#NAME?"
ERR_NULL = "#NULL!"
EXCEL_ERRORS = (ERR_VALUE, ERR_DIV0, ERR_NA, ERR_NUM, ERR_REF, ERR_NAME, ERR_NULL)

# Day count used by the days-based working-capital lines (receivable, inventory, payable days).
DAYS_IN_YEAR = 365

# Returns are rounded to this many decimal places before they are compared with rating bands,
# so that a 15% computed through binary floating point (0.15000000000000002) is exactly 15%.
RETURN_COMPARISON_PLACES = 10

# Rating boundary conventions. "outer": a return exactly on a threshold belongs to the band
# further from zero, the reading of 以上/以下 that includes the bound (+15% is 买入, +5% is 增持,
# -5% is 减持, -15% is 卖出). "inner": the bound belongs to the band nearer zero.
BOUNDARY_OUTER = "outer"
BOUNDARY_INNER = "inner"
BOUNDARY_CONVENTIONS = (BOUNDARY_OUTER, BOUNDARY_INNER)
DEFAULT_BOUNDARY = BOUNDARY_OUTER

DEFAULT_SCHEME = "everbright"

# Rating actions against the previous rating.
ACTION_FIRST = "首次"
ACTION_MAINTAIN = "维持"
ACTION_UPGRADE = "上调"
ACTION_DOWNGRADE = "下调"
# Their English names (and the published actions notes print, which use the same words), for
# English output; each scheme's rating labels have theirs in rating_schemes.toml.
ACTIONS_EN = {ACTION_FIRST: "Initiate", ACTION_MAINTAIN: "Maintain", ACTION_UPGRADE: "Upgrade",
              ACTION_DOWNGRADE: "Downgrade", "首次覆盖": "Initiate", "上调评级": "Upgrade", "下调评级": "Downgrade"}
NOT_VALUED_EN = "Not valued"

# Ticker suffix to market, for the benchmark lookup.
MARKET_BY_SUFFIX = {
    "HK": "HK",
    "SH": "A", "SS": "A", "SZ": "A", "BJ": "A",
    "US": "US", "O": "US", "N": "US", "OQ": "US", "A": "US",
}
