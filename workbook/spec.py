"""The model, declared as data: every line of the summary table, the three statements, the
drivers, the ratios, the market inputs and the rating block, with its labels (Chinese as in the
report, English alongside), number format and formula in terms of other lines.

Read by the engine (udfs/engine.py) to compute and by the layout (workbook/layout.py) to write
the template, so the workbook and the Python model are one definition.

Signs follow the report: costs, tax, capex and outflows are negative; `minority_pl` is the
line the report adds to net profit to reach attributable profit (a loss borne by minorities is
positive).
"""
from udfs.engine import ALWAYS, FORECAST_ONLY, Check, Line

SUMMARY, INCOME, BALANCE, CASHFLOW = "summary", "income", "balance", "cashflow"
DRIVERS, RATIOS, MARKET, RATING = "drivers", "ratios", "market", "rating"


def _sum(*keys: str) -> str:
    return " + ".join(keys)


def _delta(key: str) -> str:
    return f"({key} - prev({key}))"


SEGMENTS = ("smartphone", "iot", "internet", "other_revenue", "auto")
CURRENT_ASSETS = ("cash", "securities", "receivables", "inventory", "other_current_assets")
NONCURRENT_ASSETS = ("lt_investments", "ppe", "other_noncurrent_assets")
CURRENT_LIABILITIES = ("payables", "short_term_debt", "other_current_liabilities")
NONCURRENT_LIABILITIES = ("long_term_debt", "other_noncurrent_liabilities")
CFO_LINES = ("cf_net_profit", "da", "working_capital_change", "cfo_other")
CFI_LINES = ("capex", "disposals", "lt_investment_change", "other_asset_change")
CFF_LINES = ("share_capital_change", "net_debt_change", "dividends", "other_lt_liability_change")

# Balance-sheet movements that no other cash-flow line carries: the report's 其它资产变化 is
# their total, the balancing item that makes the cash-flow statement explain every movement.
# PP&E's movement less what capex, D&A and disposals explain is the undisclosed remainder.
_OTHER_ASSET_CHANGE = (
    f"-{_delta('securities')} - {_delta('other_current_assets')} - {_delta('ppe')} - {_delta('other_noncurrent_assets')}"
    f" + {_delta('other_current_liabilities')} + {_delta('other_noncurrent_liabilities')} + {_delta('minority_equity')}"
    f" - da - capex - disposals - cfo_other - other_lt_liability_change"
)

LINES: list[Line] = [
    # ---- market inputs (one value each) ----
    Line("ticker", MARKET, "股票代码", "Ticker", fmt="text", scalar=True),
    Line("quote_currency", MARKET, "交易货币", "Trading currency", fmt="text", scalar=True,
         note="The currency the share trades in: quotes in any other currency are refused"),
    Line("reporting_currency", MARKET, "报告货币", "Reporting currency", fmt="text", scalar=True),
    Line("price", MARKET, "当前价（港元）", "Share price (HKD)", fmt="price", scalar=True),
    Line("price_date", MARKET, "股价日期", "Price date", fmt="date", scalar=True),
    Line("fx_rate", MARKET, "汇率（1 港元 = 人民币）", "FX (CNY per 1 HKD)", fmt="fx", scalar=True),
    Line("benchmark_level", MARKET, "基准指数点位", "Benchmark index level", fmt="money2", scalar=True,
         note="From the quote source when it carries one; the report gives none"),
    Line("shares", MARKET, "总股本（百万股）", "Shares outstanding (mn)", fmt="money", scalar=True,
         note="260.45亿股 as in the report's market data; forecast per-share lines use it"),
    Line("price_local", MARKET, "当前价（人民币）", "Share price (CNY)", fmt="price", scalar=True,
         formula="local_price(price, fx_rate)"),
    Line("market_cap_local", MARKET, "总市值（百万人民币）", "Market cap (CNY mn)", fmt="money", scalar=True,
         formula="price_local * shares"),
    Line("refresh_stamp", MARKET, "最近刷新", "Last refreshed", fmt="text", scalar=True),
    Line("refresh_source", MARKET, "行情来源", "Quote source", fmt="text", scalar=True),
    Line("market_cap_quote", MARKET, "总市值（亿港元）", "Market cap (HKD 100mn)", fmt="money2", scalar=True,
         formula="price * shares / 100"),

    # ---- 表1 损益表 ----
    Line("revenue", INCOME, "主营收入", "Revenue", formula=_sum(*SEGMENTS), identity=True),
    Line("smartphone", INCOME, "智能手机", "Smartphones", driven=True),
    Line("iot", INCOME, "IoT 与生活消费产品", "IoT and lifestyle products", driven=True),
    Line("internet", INCOME, "互联网服务", "Internet services", driven=True),
    Line("other_revenue", INCOME, "其他", "Others", driven=True),
    Line("auto", INCOME, "汽车", "Smart EV and new initiatives", driven=True),
    Line("cogs", INCOME, "营业成本", "Cost of sales", driven=True),
    Line("gross_profit", INCOME, "毛利", "Gross profit", formula="revenue + cogs", identity=True),
    Line("other_income", INCOME, "其它收入", "Other income", driven=True),
    Line("opex", INCOME, "营业开支", "Operating expenses", driven=True),
    Line("operating_profit", INCOME, "营业利润", "Operating profit",
         formula="gross_profit + other_income + opex", identity=True),
    Line("net_finance", INCOME, "财务成本净额", "Net finance income (cost)", driven=True),
    Line("associates", INCOME, "应占利润及亏损", "Share of associates", driven=True),
    Line("pretax_profit", INCOME, "税前利润", "Profit before tax",
         formula="operating_profit + net_finance + associates", identity=True),
    Line("income_tax", INCOME, "所得税开支", "Income tax", driven=True),
    Line("net_profit", INCOME, "净利润", "Net profit", formula="pretax_profit + income_tax", identity=True),
    Line("minority_pl", INCOME, "少数股东权益", "Minority interests", driven=True),
    Line("attributable_profit", INCOME, "归母净利润", "Profit attributable to owners",
         formula="net_profit + minority_pl", identity=True),
    Line("non_ifrs_net_profit", INCOME, "Non-IFRS 净利润", "Non-IFRS net profit",
         formula="attributable_profit + d_non_ifrs_adjustment"),
    Line("ebitda", INCOME, "息税折旧前利润", "EBITDA", formula="ebit + da", identity=True),
    Line("ebit", INCOME, "息税前利润", "EBIT", formula="operating_profit + d_ebit_adjustment"),
    Line("eps", INCOME, "每股收益 (元)", "EPS (CNY)", fmt="eps",
         formula="per_share(attributable_profit, shares)", identity=True, identity_years="forecast"),
    Line("non_ifrs_eps", INCOME, "Non-IFRS 每股收益(元)", "Non-IFRS EPS (CNY)", fmt="eps",
         formula="per_share(non_ifrs_net_profit, shares)", identity=True, identity_years="forecast"),

    # ---- 表2 资产负债表 ----
    Line("total_assets", BALANCE, "总资产", "Total assets", formula="current_assets + noncurrent_assets", identity=True),
    Line("current_assets", BALANCE, "流动资产", "Current assets", formula=_sum(*CURRENT_ASSETS), identity=True),
    Line("cash", BALANCE, "现金及短期投资", "Cash and short-term investments",
         formula="prev(cash) + net_cash_flow", identity=True,
         note="The single plug: last year's cash plus this year's net cash flow"),
    Line("securities", BALANCE, "有价证券及短期投资", "Marketable securities", driven=True),
    Line("receivables", BALANCE, "应收账款", "Trade receivables", driven=True),
    Line("inventory", BALANCE, "存货", "Inventories", driven=True),
    Line("other_current_assets", BALANCE, "其它流动资产", "Other current assets", driven=True),
    Line("noncurrent_assets", BALANCE, "非流动资产", "Non-current assets", formula=_sum(*NONCURRENT_ASSETS), identity=True),
    Line("lt_investments", BALANCE, "长期投资", "Long-term investments", driven=True),
    Line("ppe", BALANCE, "固定资产净额", "Property, plant and equipment",
         formula="prev(ppe) - capex - da - disposals + d_ppe_other",
         note="Roll-forward: capex in, depreciation and disposals out, plus the undisclosed other movements"),
    Line("other_noncurrent_assets", BALANCE, "其他非流动资产", "Other non-current assets", driven=True),
    Line("total_liabilities", BALANCE, "总负债", "Total liabilities",
         formula="current_liabilities + noncurrent_liabilities", identity=True),
    Line("current_liabilities", BALANCE, "流动负债", "Current liabilities", formula=_sum(*CURRENT_LIABILITIES), identity=True),
    Line("payables", BALANCE, "应付账款", "Trade payables", driven=True),
    Line("short_term_debt", BALANCE, "短期借贷", "Short-term borrowings", driven=True),
    Line("other_current_liabilities", BALANCE, "其它流动负债", "Other current liabilities", driven=True),
    Line("noncurrent_liabilities", BALANCE, "长期负债", "Non-current liabilities",
         formula=_sum(*NONCURRENT_LIABILITIES), identity=True),
    Line("long_term_debt", BALANCE, "长期债务", "Long-term borrowings", driven=True),
    Line("other_noncurrent_liabilities", BALANCE, "其它", "Other non-current liabilities", driven=True),
    Line("total_equity", BALANCE, "股东权益合计", "Total equity", formula="shareholders_equity + minority_equity", identity=True),
    Line("shareholders_equity", BALANCE, "股东权益", "Equity attributable to owners",
         formula="prev(shareholders_equity) + attributable_profit + share_capital_change + dividends", identity=True,
         note="Roll-forward: last year + attributable profit + share issuance (buy-backs negative) + dividends (negative)"),
    Line("minority_equity", BALANCE, "少数股东权益", "Minority interests",
         formula="prev(minority_equity) - minority_pl", identity=True),
    Line("total_liabilities_and_equity", BALANCE, "负债及股东权益总额", "Total liabilities and equity",
         formula="total_liabilities + total_equity", identity=True),

    # ---- 表3 现金流量表 ----
    Line("cfo", CASHFLOW, "经营活动现金流", "Cash flow from operations", formula=_sum(*CFO_LINES), identity=True),
    Line("cf_net_profit", CASHFLOW, "净利润", "Net profit (attributable)", formula="attributable_profit", identity=True),
    Line("da", CASHFLOW, "折旧与摊销", "Depreciation and amortisation", driven=True),
    Line("working_capital_change", CASHFLOW, "营运资本变动", "Change in working capital",
         formula=f"{_delta('payables')} - {_delta('receivables')} - {_delta('inventory')}", identity=True),
    Line("cfo_other", CASHFLOW, "其它", "Other operating items", driven=True),
    Line("cfi", CASHFLOW, "投资活动现金流", "Cash flow from investing", formula=_sum(*CFI_LINES), identity=True),
    Line("capex", CASHFLOW, "资本性支出净额", "Net capital expenditure", driven=True),
    Line("disposals", CASHFLOW, "资产处置", "Asset disposals", driven=True),
    Line("lt_investment_change", CASHFLOW, "长期投资变化", "Change in long-term investments",
         formula=f"-{_delta('lt_investments')}", identity=True),
    Line("other_asset_change", CASHFLOW, "其它资产变化", "Other asset changes", formula=_OTHER_ASSET_CHANGE,
         note="Balancing item: every balance-sheet movement no other cash-flow line carries"),
    Line("fcf", CASHFLOW, "自由现金流", "Free cash flow (report)", formula="cfo + capex + d_fcf_adjustment",
         note="The report's definition is not disclosed: CFO + capex + a reconciling driver"),
    Line("cff", CASHFLOW, "融资活动现金流", "Cash flow from financing", formula=_sum(*CFF_LINES), identity=True),
    Line("share_capital_change", CASHFLOW, "股本变动", "Share capital issued (bought back)", driven=True),
    Line("net_debt_change", CASHFLOW, "净债务变化", "Change in net borrowings",
         formula=f"{_delta('short_term_debt')} + {_delta('long_term_debt')}", identity=True),
    Line("dividends", CASHFLOW, "派发红利", "Dividends paid", driven=True),
    Line("other_lt_liability_change", CASHFLOW, "其它长期负债变化", "Other long-term liability changes", driven=True),
    Line("net_cash_flow", CASHFLOW, "净现金流", "Net cash flow", formula="cfo + cfi + cff", identity=True),
    Line("fcf_standard", CASHFLOW, "自由现金流（标准：经营现金流+资本性支出）", "Free cash flow (CFO + capex)",
         formula="cfo + capex", history=ALWAYS),

    # ---- 预测假设: drivers that are not a method of one line ----
    Line("d_non_ifrs_adjustment", DRIVERS, "Non-IFRS 调整项（Non-IFRS 净利润 - 归母净利润）",
         "Non-IFRS adjustments (non-IFRS less attributable profit)", history=FORECAST_ONLY,
         implied="non_ifrs_net_profit - attributable_profit"),
    Line("d_ebit_adjustment", DRIVERS, "息税前利润与营业利润之差（报告未披露口径）",
         "EBIT less operating profit (method not disclosed)", history=FORECAST_ONLY, implied="ebit - operating_profit"),
    Line("d_ppe_other", DRIVERS, "固定资产其他变动（报告未披露）", "Other PP&E movements (not disclosed)",
         history=FORECAST_ONLY, implied="ppe - (prev(ppe) - capex - da - disposals)"),
    Line("d_fcf_adjustment", DRIVERS, "自由现金流口径调整（报告未披露）", "FCF reconciling item (definition not disclosed)",
         history=FORECAST_ONLY, implied="fcf - (cfo + capex)"),

    # ---- 盈利预测与估值简表 lines not in the statements ----
    Line("revenue_growth", SUMMARY, "营业收入增长率（%）", "Revenue growth", fmt="growth",
         formula="growth_rate(revenue, prev(revenue))", history=ALWAYS, identity=True),
    Line("non_ifrs_growth", SUMMARY, "Non-IFRs 净利润增长率（%）", "Non-IFRS net profit growth", fmt="growth",
         formula="growth_rate(non_ifrs_net_profit, prev(non_ifrs_net_profit))", history=ALWAYS, identity=True),
    Line("adjusted_pe", SUMMARY, "调整后 P/E", "Adjusted P/E", fmt="pe_summary",
         formula="price_to(price_local, non_ifrs_eps)", history=ALWAYS, identity=True,
         note="Price x HKD/CNY over Non-IFRS EPS"),

    # ---- 主要财务比率 ----
    Line("gross_margin", RATIOS, "毛利率", "Gross margin", fmt="pct", formula="margin(gross_profit, revenue)", history=ALWAYS),
    Line("operating_margin", RATIOS, "营业利润率", "Operating margin", fmt="pct", formula="margin(operating_profit, revenue)", history=ALWAYS),
    Line("ebitda_margin", RATIOS, "EBITDA 利润率", "EBITDA margin", fmt="pct", formula="margin(ebitda, revenue)", history=ALWAYS),
    Line("net_margin", RATIOS, "归母净利率", "Net margin (attributable)", fmt="pct", formula="margin(attributable_profit, revenue)", history=ALWAYS),
    Line("non_ifrs_margin", RATIOS, "Non-IFRS 净利率", "Non-IFRS net margin", fmt="pct", formula="margin(non_ifrs_net_profit, revenue)", history=ALWAYS),
    Line("roe", RATIOS, "ROE（期末归母权益）", "ROE (year-end equity)", fmt="pct", formula="return_on(attributable_profit, shareholders_equity)", history=ALWAYS),
    Line("roa", RATIOS, "ROA（期末总资产）", "ROA (year-end assets)", fmt="pct", formula="return_on(net_profit, total_assets)", history=ALWAYS),
    Line("gross_profit_growth", RATIOS, "毛利增长率", "Gross profit growth", fmt="pct", formula="growth_rate(gross_profit, prev(gross_profit))", history=ALWAYS),
    Line("operating_profit_growth", RATIOS, "营业利润增长率", "Operating profit growth", fmt="pct", formula="growth_rate(operating_profit, prev(operating_profit))", history=ALWAYS),
    Line("ebitda_growth", RATIOS, "EBITDA 增长率", "EBITDA growth", fmt="pct", formula="growth_rate(ebitda, prev(ebitda))", history=ALWAYS),
    Line("attributable_growth", RATIOS, "归母净利润增长率", "Attributable profit growth", fmt="pct", formula="growth_rate(attributable_profit, prev(attributable_profit))", history=ALWAYS),
    Line("debt_ratio", RATIOS, "资产负债率", "Liabilities to assets", fmt="pct", formula="coverage(total_liabilities, total_assets)", history=ALWAYS),
    Line("current_ratio", RATIOS, "流动比率", "Current ratio", fmt="multiple", formula="coverage(current_assets, current_liabilities)", history=ALWAYS),
    Line("quick_ratio", RATIOS, "速动比率", "Quick ratio", fmt="multiple", formula="quick_ratio(current_assets, inventory, current_liabilities)", history=ALWAYS),
    Line("net_gearing", RATIOS, "净负债率（负值为净现金）", "Net gearing (negative: net cash)", fmt="pct",
         formula="net_gearing(short_term_debt + long_term_debt, cash + securities, total_equity)", history=ALWAYS),
    Line("receivable_days", RATIOS, "应收账款周转天数", "Receivable days", fmt="days", formula="turnover_days(receivables, revenue)", history=ALWAYS),
    Line("inventory_days", RATIOS, "存货周转天数", "Inventory days", fmt="days", formula="turnover_days(inventory, cogs)", history=ALWAYS),
    Line("payable_days", RATIOS, "应付账款周转天数", "Payable days", fmt="days", formula="turnover_days(payables, cogs)", history=ALWAYS),
    Line("bvps", RATIOS, "每股净资产（元）", "Book value per share (CNY)", fmt="eps", formula="per_share(shareholders_equity, shares)", history=ALWAYS),
    Line("cfo_per_share", RATIOS, "每股经营现金流（元）", "CFO per share (CNY)", fmt="eps", formula="per_share(cfo, shares)", history=ALWAYS),
    Line("pe", RATIOS, "P/E", "P/E", fmt="multiple", formula="price_to(price_local, eps)", history=ALWAYS),
    Line("pb", RATIOS, "P/B", "P/B", fmt="multiple", formula="price_to(price_local, bvps)", history=ALWAYS),
    Line("enterprise_value", RATIOS, "企业价值 EV（百万人民币）", "Enterprise value (CNY mn)",
         formula="enterprise_value(market_cap_local, short_term_debt + long_term_debt, cash + securities, minority_equity)", history=ALWAYS),
    Line("ev_ebitda", RATIOS, "EV/EBITDA", "EV/EBITDA", fmt="multiple", formula="ev_to_ebitda(enterprise_value, ebitda)", history=ALWAYS),
    Line("dividend_yield", RATIOS, "股息率", "Dividend yield", fmt="pct", formula="dividend_yield(dividends, shares, price_local)", history=ALWAYS),

    # ---- 评级 ----
    Line("rating_scheme", RATING, "评级体系", "Rating scheme", fmt="text", scalar=True),
    Line("rating_boundary", RATING, "边界口径（outer：以上/以下含本数）", "Boundary convention", fmt="text", scalar=True),
    Line("benchmark", RATING, "市场基准指数", "Benchmark index", fmt="text", scalar=True,
         formula="benchmark(ticker, rating_scheme)"),
    Line("target_price", RATING, "目标价（港元，分析师填写）", "Target price (HKD, analyst input)", fmt="price", scalar=True),
    Line("expected_dps", RATING, "预期每股股息（港元）", "Expected dividends per share (HKD)", fmt="price", scalar=True),
    Line("benchmark_return", RATING, "基准指数预期收益率", "Benchmark expected return", fmt="pct", scalar=True),
    Line("upside", RATING, "目标价空间", "Upside to target", fmt="pct", scalar=True, formula="upside(price, target_price)"),
    Line("expected_return", RATING, "预期收益率（含股息）", "Expected total return", fmt="pct", scalar=True,
         formula="expected_return(price, target_price, expected_dps)"),
    Line("excess_return", RATING, "相对基准超额收益", "Excess return over benchmark", fmt="pct", scalar=True,
         formula="excess_return(expected_return, benchmark_return)"),
    Line("computed_rating", RATING, "模型评级", "Computed rating", fmt="text", scalar=True,
         formula="rate(price, target_price, benchmark_return, expected_dps, rating_scheme, rating_boundary)"),
    Line("previous_rating", RATING, "上次评级", "Previous rating", fmt="text", scalar=True),
    Line("rating_action", RATING, "评级变动", "Rating action", fmt="text", scalar=True,
         formula="rating_action(previous_rating, computed_rating, rating_scheme)"),
    Line("published_rating", RATING, "报告评级（原文）", "Published rating (as printed)", fmt="text", scalar=True),
    Line("published_action", RATING, "报告评级变动（原文）", "Published rating action (as printed)", fmt="text", scalar=True),
]

# Integrity checks on forecast years: each pair must agree. Subtotals are re-added from their
# parts here, so a hard-coded subtotal in the workbook is caught.
CHECKS: list[Check] = [
    Check("balance", "资产 = 负债 + 股东权益", "Assets = liabilities + equity", "total_assets", "total_liabilities + total_equity"),
    Check("cash_link", "期末现金 = 期初现金 + 净现金流", "Closing cash = opening cash + net cash flow", "cash", "prev(cash) + net_cash_flow"),
    Check("revenue_sum", "主营收入 = 分部收入之和", "Revenue = sum of segments", "revenue", _sum(*SEGMENTS)),
    Check("gross_profit_sum", "毛利 = 收入 + 营业成本", "Gross profit = revenue + cost of sales", "gross_profit", "revenue + cogs"),
    Check("operating_profit_sum", "营业利润勾稽", "Operating profit adds up", "operating_profit", "gross_profit + other_income + opex"),
    Check("pretax_sum", "税前利润勾稽", "Pre-tax profit adds up", "pretax_profit", "operating_profit + net_finance + associates"),
    Check("net_profit_sum", "净利润勾稽", "Net profit adds up", "net_profit", "pretax_profit + income_tax"),
    Check("attributable_sum", "归母净利润勾稽", "Attributable profit adds up", "attributable_profit", "net_profit + minority_pl"),
    Check("current_assets_sum", "流动资产勾稽", "Current assets add up", "current_assets", _sum(*CURRENT_ASSETS)),
    Check("noncurrent_assets_sum", "非流动资产勾稽", "Non-current assets add up", "noncurrent_assets", _sum(*NONCURRENT_ASSETS)),
    Check("current_liabilities_sum", "流动负债勾稽", "Current liabilities add up", "current_liabilities", _sum(*CURRENT_LIABILITIES)),
    Check("noncurrent_liabilities_sum", "长期负债勾稽", "Non-current liabilities add up", "noncurrent_liabilities", _sum(*NONCURRENT_LIABILITIES)),
    Check("cfo_sum", "经营活动现金流勾稽", "CFO adds up", "cfo", _sum(*CFO_LINES)),
    Check("cfi_sum", "投资活动现金流勾稽", "CFI adds up", "cfi", _sum(*CFI_LINES)),
    Check("cff_sum", "融资活动现金流勾稽", "CFF adds up", "cff", _sum(*CFF_LINES)),
    Check("cf_profit_link", "现金流量表净利润 = 归母净利润", "Cash-flow profit = attributable profit", "cf_net_profit", "attributable_profit"),
    Check("eps_link", "每股收益 = 归母净利润 / 股本", "EPS = attributable profit / shares", "eps", "attributable_profit / shares", 0.000001),
    Check("non_ifrs_eps_link", "Non-IFRS 每股收益 = Non-IFRS 净利润 / 股本", "Non-IFRS EPS = non-IFRS profit / shares",
          "non_ifrs_eps", "non_ifrs_net_profit / shares", 0.000001),
]

# Figures before the first reported year that the first year's growth rates need
# (Xiaomi's published FY2022 results, not printed in the report).
BASE_LINES = ("revenue", "non_ifrs_net_profit")
