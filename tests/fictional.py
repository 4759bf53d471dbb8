"""Fictional layouts and companies that tests write as data files: the head every minimal
layout shares (roles, the three statements, a summary) and a fictional US company's facts, so
that a test states only the lines and figures it is about. Those lines and figures are TOML data
files in tests/data/fictional/, each read by `tail` and written after its head."""
from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "fictional"


def tail(file_name: str) -> str:
    """A fictional layout's own lines or a fictional company's figures (tests/data/fictional/
    FILE_NAME), to follow `layout_head` or `company_head` in the file a test writes."""
    return "\n" + (DATA / file_name).read_text(encoding="utf-8")


def layout_head(name: str, description: str, revenue: str, summary: tuple, profit: str, assets: str,
                net_cash: str) -> str:
    """Roles, statements, a summary, the lines every such layout has (profit, total assets and net
    cash flow by the formulas given, EPS, cash, liabilities, equity) and the balance check; the other lines are
    the test's."""
    rows = ", ".join(f'{{ key = "{key}" }}' for key in summary)
    return f'''
format_version = 1
name = "{name}"
description = "{description}"
[roles]
revenue = "{revenue}"
net_profit = "profit"
attributable_profit = "profit"
eps = "eps"
cash = "cash"
total_assets = "assets"
total_liabilities = "debt"
shareholders_equity = "equity"
net_cash_flow = "net_cash"
[[statements]]
table = "income"
sheet = "损益"
prefix = "IS"
[[statements]]
table = "balance"
sheet = "资产负债"
prefix = "BS"
[[statements]]
table = "cashflow"
sheet = "现金流"
prefix = "CF"
[summary]
sheet = "摘要"
rows = [{rows}]
[[lines]]
key = "profit"
table = "income"
zh = "利润"
en = "Profit"
formula = "{profit}"
identity = true
[[lines]]
key = "eps"
table = "income"
zh = "每股收益"
en = "EPS"
fmt = "eps"
formula = "per_share(profit, shares)"
history = "always"
[[lines]]
key = "cash"
table = "balance"
zh = "现金"
en = "Cash"
formula = "prev(cash) + net_cash"
[[lines]]
key = "assets"
table = "balance"
zh = "资产合计"
en = "Assets"
formula = "{assets}"
identity = true
[[lines]]
key = "debt"
table = "balance"
zh = "负债"
en = "Liabilities"
driven = true
[[lines]]
key = "equity"
table = "balance"
zh = "权益"
en = "Equity"
formula = "prev(equity) + profit"
[[lines]]
key = "net_cash"
table = "cashflow"
zh = "现金净变动"
en = "Net cash flow"
formula = "{net_cash}"
[[checks]]
key = "balance"
zh = "资产 = 负债 + 权益"
en = "Assets = liabilities + equity"
actual = "assets"
expected = "debt + equity"
'''


def company_head(name_zh: str, name_en: str, ticker: str, layout_file: str) -> str:
    """A fictional company listed and reporting in US dollars, 100 million shares at 20.00, one
    reported year (2025A) and two forecast years; its figures and drivers are the test's."""
    return f'''
format_version = 1
[company]
name_zh = "{name_zh}"
name_en = "{name_en}"
ticker = "{ticker}"
market = "US"
reporting_currency = "USD"
quote_currency = "USD"
layout = "{layout_file}"
unit = "百万美元"
source = "a test"
[market]
price = 20.0
price_date = 2026-01-05
fx_rate = 1.0
shares = 100
[rating]
scheme = "four_tier_example"
[years]
actual = ["2025A"]
forecast = ["2026E", "2027E"]
'''
