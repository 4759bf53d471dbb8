"""Constants only: labels, error values, thresholds and conventions shared by the pure core.

Kept apart from the logic (as empyrical keeps `periods.py`) so that a reader can see every
convention the model relies on in one screen.
"""

# A result that exists but means nothing (negative-earnings P/E, growth from a negative base).
NOT_MEANINGFUL = "NM"

# The blended target price before the analyst has weighted any valuation method.
NOT_VALUED = "未估值"

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
