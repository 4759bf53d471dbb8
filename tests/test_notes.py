"""Reading broker notes: both seeds read completely, converter damage repaired, roles mapped,
subtotals inferred (on the seeds and on a fictional table), market data and rating schemes.

The seeds' figures are checked against the seed text read here with the test's own simple
parsing (split on tabs, or on <tr>/<td>), never against values copied from the code.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbook import notes
from workbook.notes import ratings
from workbook.notes import (LABEL_ABOVE, LABEL_SPLIT, NEGATIVE_ZERO, PARENTHESES, SPACE_IN_NUMBER, THOUSANDS,
                            FULL_WIDTH, UNICODE_MINUS, import_report, infer_subtotals, map_roles, memo_rows,
                            parse_number, partial_identities, read_note)

from conftest import KYSEC_SEED as KYSEC, XIAOMI_SEED as XIAOMI, needs_seeds

pytestmark = needs_seeds


@pytest.fixture(scope="module")
def xiaomi():
    return read_note(XIAOMI)


@pytest.fixture(scope="module")
def kysec():
    return read_note(KYSEC)


# --------------------------------------------------------------------------------------------
# The test's own reading of the seeds

def _expected_number(text: str) -> tuple[float, int] | None:
    text = text.strip()
    if not text:
        return None
    negative = text.startswith("(") and text.endswith(")")
    digits = text.strip("()").replace(",", "")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    value = float(digits)
    return (-value if negative else value) + 0.0, decimals


def _tsv_table(path: Path, title_contains: str) -> tuple[list[str], list[tuple[str, list]]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    start = next(i for i, line in enumerate(lines) if title_contains in line and "\t" not in line)
    header_at = next(i for i in range(start + 1, len(lines)) if "\t" in lines[i])
    header = lines[header_at].split("\t")
    rows = []
    for line in lines[header_at + 1:]:
        if "\t" not in line:
            break
        cells = line.split("\t")
        label = re.sub(r"</?b>", "", cells[0]).strip()
        rows.append((label, [_expected_number(c) for c in cells[1:]]))
    return header[1:], rows


def _html_tables(path: Path) -> dict[str, list[list[str]]]:
    """First cell -> rows of cell texts, for every HTML table of the note."""
    out = {}
    for table in re.findall(r"<table>(.*?)</table>", path.read_text(encoding="utf-8"), re.S):
        rows = [re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S) for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
        out[rows[0][0]] = rows
    return out


def _got(table) -> list[tuple[str, list]]:
    return [(row.label, [None if c is None else (c.value, c.decimals) for c in row.cells]) for row in table.rows]


XIAOMI_TABLES = [("公司盈利预测与估值简表", "summary"), ("损益表", "income"), ("资产负债表", "balance"),
                 ("现金流量表", "cashflow")]


@pytest.mark.parametrize("title, kind", XIAOMI_TABLES)
def test_xiaomi_table_read_completely(xiaomi, title, kind):
    years, rows = _tsv_table(XIAOMI, title)
    table = xiaomi.table(kind)
    assert title in table.title
    assert [y.label for y in table.years] == years
    assert _got(table) == rows
    assert sum(len(r[1]) for r in rows) == sum(len(r.cells) for r in table.rows)


KYSEC_TABLES = [("指标", "summary"), ("资产负债表(百万元)", "balance"), ("现金流量表(百万元)", "cashflow"),
                ("利润表(百万元)", "income"), ("主要财务比率", "ratios")]


@pytest.mark.parametrize("first_cell, kind", KYSEC_TABLES)
def test_kysec_table_read_completely(kysec, first_cell, kind):
    rows = _html_tables(KYSEC)[first_cell]
    table = kysec.table(kind)
    assert [y.label for y in table.years] == rows[0][1:]
    expected = [(cells[0], [_expected_number(c) for c in cells[1:]]) for cells in rows[1:]]
    assert _got(table) == expected
    headings = [label for label, values in expected if all(v is None for v in values)]
    assert [r.label for r in table.rows if r.heading] == headings


def test_kysec_ratio_sections_are_headings_not_lines(kysec):
    ratios = kysec.table("ratios")
    assert ratios.row("成长能力").heading and not ratios.row("成长能力").has_figures
    assert ratios.row("营业利润(%)").section == "成长能力"
    assert ratios.row("P/E").section == "估值比率"
    assert all(c.percent for c in ratios.row("ROE(%)").cells)
    assert not any(c.percent for c in ratios.row("流动比率").cells)


def test_years_units_and_kinds(xiaomi, kysec):
    income = xiaomi.table("income")
    assert [(y.year, y.forecast, y.mark) for y in income.years] == [
        (2023, False, ""), (2024, False, ""), (2025, True, "E"), (2026, True, "E"), (2027, True, "E")]
    assert [(y.year, y.forecast) for y in kysec.table("balance").years] == [
        (2024, False), (2025, False), (2026, True), (2027, True), (2028, True)]
    assert {t.kind: t.unit for t in xiaomi.tables if t.kind in notes.YEAR_KINDS} == {
        "summary": "百万人民币", "income": "百万人民币", "balance": "百万人民币", "cashflow": "百万人民币"}
    assert {t.kind: t.unit for t in kysec.tables if t.kind in notes.YEAR_KINDS} == {
        "summary": "百万元", "income": "百万元", "balance": "百万元", "cashflow": "百万元", "ratios": None}
    assert [t.kind for t in kysec.tables] == ["market", "summary", "balance", "cashflow", "income", "ratios",
                                             "rating_scheme"]
    assert income.row("主营收入").bold and not income.row("智能手机").bold
    assert xiaomi.table("summary").row("Non-IFRs 每股收益（人民币）").cells[1].decimals == 2


def test_printed_precision_kept(xiaomi, kysec):
    eps = xiaomi.table("income").row("每股收益 (元)").cells[1]
    assert (eps.value, eps.decimals, eps.raw) == (0.95, 2, "0.95")
    ratio = kysec.table("ratios").row("营业收入(%)").cells[3]
    assert (ratio.value, ratio.decimals, ratio.percent) == (14.2, 1, True)
    assert ratio.printed().as_fraction().value == pytest.approx(0.142)


# --------------------------------------------------------------------------------------------
# Converter damage

@pytest.mark.parametrize("raw, value, decimals, percent, repairs", [
    ("1.20", 1.2, 2, False, ()),
    ("1. 33", 1.33, 2, False, (SPACE_IN_NUMBER,)),
    ("(924)", -924.0, 0, False, (PARENTHESES,)),
    ("(3.2)", -3.2, 1, False, (PARENTHESES,)),
    ("-0", 0.0, 0, False, (NEGATIVE_ZERO,)),
    ("35.0%", 35.0, 1, True, ()),
    ("12,345.6", 12345.6, 1, False, (THOUSANDS,)),
    ("1, 234", 1234.0, 0, False, (SPACE_IN_NUMBER, THOUSANDS)),
    ("１２３．４", 123.4, 1, False, (FULL_WIDTH,)),
    ("－５", -5.0, 0, False, (FULL_WIDTH,)),
    ("−5.25", -5.25, 2, False, (UNICODE_MINUS,)),
    ("３５％", 35.0, 0, True, (FULL_WIDTH,)),
])
def test_parse_number_repairs(raw, value, decimals, percent, repairs):
    got = parse_number(raw)
    assert (got.value, got.decimals, got.percent, got.repairs, got.raw) == (value, decimals, percent, repairs, raw)


@pytest.mark.parametrize("raw", ["", "  ", "-", "--", "NM", "n/a", "abc", "1.2.3", "12a", "(-5)"])
def test_parse_number_refuses_what_is_not_a_figure(raw):
    assert parse_number(raw) is None


def test_bare_percent_takes_the_rows_percent():
    assert parse_number("35.0", percent=True).percent
    assert not parse_number("35.0").percent


DAMAGED_TSV = """
表 9：测试公司（000000.SZ）利润表
（单位：百万元）\t2024A\t2025E
营业收入\t1, 200\t1,350
营业成本\t(924)\t(1 000)
归属母公司\t\t
净利润\t276\t350
\t\t
毛利率(%)\t23.0\t25.9%
增长率(%)\t\t
\t-0\t12. 5
营业外收\t5\t6
入\t\t
其他\t-\t3
"""


def test_damaged_tsv_table_is_repaired_and_every_repair_listed():
    note = read_note(DAMAGED_TSV)
    table = note.table("income")
    assert table.unit == "百万元"
    assert [r.label for r in table.lines] == ["营业收入", "营业成本", "归属母公司净利润", "毛利率(%)", "增长率(%)",
                                                   "营业外收入", "其他"]
    assert table.row("归属母公司净利润").repairs == [LABEL_SPLIT]
    assert [c.value for c in table.row("营业收入").cells] == [1200, 1350]
    assert [c.value for c in table.row("营业成本").cells] == [-924, -1000]
    margin = table.row("毛利率(%)").cells
    assert [(c.value, c.percent) for c in margin] == [(23.0, True), (25.9, True)]
    growth = table.row("增长率(%)")
    assert growth.repairs == [LABEL_ABOVE]
    assert [(c.value, c.decimals, c.repairs) for c in growth.cells] == [(0.0, 0, (NEGATIVE_ZERO,)), (12.5, 1, (SPACE_IN_NUMBER,))]
    assert table.row("营业外收入").repairs == [LABEL_SPLIT]
    assert table.row("其他").cells[0] is None and "placeholder read as empty" in table.row("其他").repairs
    listed = {repair for _, _, repair, _ in note.repairs()}
    assert {LABEL_SPLIT, LABEL_ABOVE, PARENTHESES, SPACE_IN_NUMBER, NEGATIVE_ZERO, THOUSANDS} <= listed
    report = import_report(note, map_roles(note), {0: infer_subtotals(table)})
    for repair in (LABEL_SPLIT, LABEL_ABOVE, PARENTHESES, SPACE_IN_NUMBER, NEGATIVE_ZERO):
        assert repair in report


DAMAGED_HTML = """# 测试
<table><tr><td rowspan=2>利润表(亿元)</td><td colspan=2>预测</td></tr>
<tr><td>2026Ｅ</td><td>2027E</td></tr>
<tr><td>营业收入</td><td>１２．５</td><td>&minus;1.0</td></tr>
<tr><td>营业利润</td><td></td><td>3.0</td></tr></table>
"""


def test_html_spans_and_full_width_are_read():
    note = read_note(DAMAGED_HTML)
    # the spanned title cell is repeated into the second header row, whose years are then found
    tables = note.tables
    assert len(tables) == 1 and tables[0].kind == "income" and tables[0].unit == "亿元"
    assert [y.label for y in tables[0].years] == ["2026Ｅ", "2027E"]
    assert all(y.forecast for y in tables[0].years)
    revenue = tables[0].row("营业收入").cells
    assert (revenue[0].value, revenue[0].decimals, revenue[0].repairs) == (12.5, 1, (FULL_WIDTH,))
    assert (revenue[1].value, revenue[1].repairs) == (-1.0, (UNICODE_MINUS,))
    assert tables[0].row("营业利润").cells[0] is None


# --------------------------------------------------------------------------------------------
# Roles

@pytest.mark.parametrize("seed", [XIAOMI, KYSEC])
def test_every_line_of_both_seeds_is_mapped(seed):
    note = read_note(seed)
    mapping = map_roles(note)
    kinds = {"summary", "income", "balance", "cashflow", "ratios"}
    lines = [(i, r.position) for i, t in enumerate(note.tables) if t.kind in kinds for r in t.lines]
    assert lines and all(key in mapping for key in lines)
    assert [mapping[k].label for k in lines if mapping[k].role is None] == []
    # a role is unique within a statement
    for i, t in enumerate(note.tables):
        if t.kind in notes.STATEMENTS:
            roles = [mapping[(i, r.position)].role for r in t.lines]
            assert len(roles) == len(set(roles)), t.title


def _role(note, mapping, kind, label):
    i = next(i for i, t in enumerate(note.tables) if t.kind == kind)
    return mapping[(i, note.tables[i].row(label).position)]


def test_role_variants_and_how_they_matched(xiaomi, kysec):
    xm, km = map_roles(xiaomi), map_roles(kysec)
    assert (_role(kysec, km, "income", "营业费用").role, _role(kysec, km, "income", "营业费用").method) == ("selling_expenses", "exact")
    assert _role(kysec, km, "income", "归属母公司净利润").role == "attributable_profit"
    assert _role(xiaomi, xm, "income", "归母净利润").role == "attributable_profit"
    assert _role(kysec, km, "ratios", "归属于母公司净利润(%)").role == "attributable_profit_growth"
    assert _role(xiaomi, xm, "balance", "现金及短期投资").role == _role(kysec, km, "balance", "现金").role == "cash"
    assert _role(xiaomi, xm, "income", "主营收入").role == _role(kysec, km, "income", "营业收入").role == "revenue"
    summary = _role(xiaomi, xm, "summary", "Non-IFRs 净利润（百万人民币）")
    assert (summary.role, summary.method) == ("non_ifrs_net_profit", "normalised")
    table = kysec.table("summary")
    yoy = [m for k, m in km.items() if kysec.tables[k[0]] is table and m.label == "YOY(%)"]
    assert [(m.role, m.method) for m in yoy] == [("revenue_growth", "relative"), ("attributable_profit_growth", "relative")]


def test_label_normalisation_for_matching():
    text = ("资产负债表（单位：百万元）\t2024A\t2025E\n货币资金\t10\t12\n现金及现金等价物 :\t10\t12\n"
            "利润表(百万元)\t2024A\t2025E\n销售费用（百万元）\t5\t6\n归属于母公司净利润\t3\t4\n未知科目\t1\t1\n")
    note = read_note(text)
    mapping = map_roles(note)
    got = {(m.kind, m.label): (m.role, m.method) for m in mapping.values()}
    assert got == {
        ("balance", "货币资金"): ("cash", "exact"),
        ("balance", "现金及现金等价物 :"): ("cash", "normalised"),
        ("income", "销售费用（百万元）"): ("selling_expenses", "normalised"),
        ("income", "归属于母公司净利润"): ("attributable_profit", "exact"),
        ("income", "未知科目"): (None, "unmapped"),
    }
    report = import_report(note, mapping, {})
    assert "Lines left unmapped (1):" in report and "未知科目" in report.split("Lines left unmapped")[1]


def test_role_data_is_extendable(tmp_path):
    data_file = tmp_path / "roles.toml"
    data_file.write_text(notes.LABEL_ROLES.read_text(encoding="utf-8").replace(
        'revenue = ["营业收入",', 'revenue = ["营收净额", "营业收入",', 1), encoding="utf-8")
    data = notes.load_label_data(data_file)
    note = read_note("利润表\t2024A\t2025E\n营收净额\t5\t6\n", data)
    assert [m.role for m in map_roles(note, data).values()] == ["revenue"]
    assert [m.role for m in map_roles(note).values()] == [None]


# --------------------------------------------------------------------------------------------
# Subtotals

def _identities(table):
    return {(s.total.label, tuple((p.sign, p.row.label) for p in s.parts)) for s in infer_subtotals(table)}


def test_xiaomi_subtotals(xiaomi):
    income = _identities(xiaomi.table("income"))
    assert ("主营收入", tuple((1, x) for x in ("智能手机", "IoT 与生活消费产品", "互联网服务", "其他", "汽车"))) in income
    assert ("毛利", ((1, "主营收入"), (1, "营业成本"))) in income
    assert ("营业利润", ((1, "毛利"), (1, "其它收入"), (1, "营业开支"))) in income
    assert ("净利润", ((1, "税前利润"), (1, "所得税开支"))) in income
    assert ("归母净利润", ((1, "净利润"), (1, "少数股东权益"))) in income
    balance = _identities(xiaomi.table("balance"))
    assert ("总资产", ((1, "流动资产"), (1, "非流动资产"))) in balance
    assert ("负债及股东权益总额", ((1, "总负债"), (1, "股东权益合计"))) in balance
    assert len(balance) == 8
    cashflow = xiaomi.table("cashflow")
    assert ("净现金流", ((1, "经营活动现金流"), (1, "投资活动现金流"), (1, "融资活动现金流"))) in _identities(cashflow)
    assert [r.label for r in memo_rows(cashflow, infer_subtotals(cashflow))] == ["自由现金流"]
    memo = {r.label for r in memo_rows(xiaomi.table("income"), infer_subtotals(xiaomi.table("income")))}
    assert memo == {"Non-IFRS 净利润", "息税折旧前利润", "息税前利润", "每股收益 (元)", "Non-IFRS 每股收益(元)"}


def test_kysec_subtotals(kysec):
    income = _identities(kysec.table("income"))
    operating = ((1, "营业收入"), (-1, "营业成本"), (-1, "营业税金及附加"), (-1, "营业费用"), (-1, "管理费用"),
                 (-1, "研发费用"), (-1, "财务费用"), (1, "资产减值损失"), (1, "其他收益"), (1, "公允价值变动收益"),
                 (1, "投资净收益"), (1, "资产处置收益"))
    assert ("营业利润", operating) in income
    assert ("利润总额", ((1, "营业利润"), (1, "营业外收入"), (-1, "营业外支出"))) in income
    assert ("净利润", ((1, "利润总额"), (-1, "所得税"))) in income
    assert ("归属母公司净利润", ((1, "净利润"), (-1, "少数股东损益"))) in income
    balance = kysec.table("balance")
    assert ("负债和股东权益", ((1, "负债合计"), (1, "少数股东权益"), (1, "归属母公司股东权益"))) in _identities(balance)
    # share capital, reserves and retained earnings do not add up to equity in this note: the rest
    # is a line the note does not print
    [equity] = [s for s in infer_subtotals(balance) if s.total.label == "归属母公司股东权益"]
    assert equity.remainder and [p.row.label for p in equity.parts] == ["股本", "资本公积", "留存收益"]
    assert memo_rows(balance, infer_subtotals(balance)) == []
    cashflow = kysec.table("cashflow")
    assert ("投资活动现金流", ((-1, "资本支出"), (1, "长期投资"), (1, "其他投资现金流"))) in _identities(cashflow)
    # the net change in cash is the sum of the three sections, an identity of accounting the
    # note's reported years break
    [partial] = partial_identities(cashflow)
    assert partial.subtotal.total.label == "现金净增加额" and partial.subtotal.failed
    assert partial.held == ("2026E", "2027E", "2028E")
    assert [y for y, _, _ in partial.failed] == ["2024A", "2025A"]


FICTIONAL = """星辰咖啡（9999.XX）年度模型

经营摘要
项目（千元）\tFY2024A\tFY2025E\tFY2026E
门店收入\t1,213\t1,388\t1,571
外卖收入\t307\t421\t538
收入合计\t1,520\t1,809\t2,109
原料成本\t(613)\t(702)\t(797)
门店租金\t(298)\t(321)\t(347)
毛利\t609\t786\t965
营运费用\t(402)\t(455)\t(503)
经营利润\t207\t331\t462
利息支出\t38\t41\t36
税前利润\t169\t290\t426
门店数（家）\t84\t97\t112
税项\t(42)\t(73)\t(107)
本年利润\t127\t217\t319
"""


def test_fictional_layout_subtotals():
    """Labels the role data does not know, costs in parentheses, a cost printed positive, a memo
    line between a total's parts, three columns with an FY prefix."""
    note = read_note(FICTIONAL)
    [table] = note.tables
    assert [y.label for y in table.years] == ["FY2024A", "FY2025E", "FY2026E"] and table.unit == "千元"
    assert _identities(table) == {
        ("收入合计", ((1, "门店收入"), (1, "外卖收入"))),
        ("毛利", ((1, "收入合计"), (1, "原料成本"), (1, "门店租金"))),
        ("经营利润", ((1, "毛利"), (1, "营运费用"))),
        ("税前利润", ((1, "经营利润"), (-1, "利息支出"))),
        ("本年利润", ((1, "税前利润"), (1, "税项"))),
    }
    assert [r.label for r in memo_rows(table, infer_subtotals(table))] == ["门店数（家）"]


def test_a_total_that_fails_in_one_year_is_not_a_subtotal():
    text = "利润表\t2024A\t2025E\t2026E\n甲\t10\t20\t30\n乙\t5\t6\t7\n合计\t15\t26\t40\n"
    table = read_note(text).table("income")
    assert infer_subtotals(table) == []
    [partial] = partial_identities(table)
    assert partial.held == ("2024A", "2025E") and partial.failed == (("2026E", 40.0, 37.0),)


def test_rounding_is_allowed_for_by_intervals():
    # 1.4 + 1.4 = 2.8 prints as 3 when the parts print as 1 and 1: within rounding
    text = "利润表\t2024A\t2025E\n甲\t1\t11\n乙\t1\t12\n合计\t3\t22\n"
    table = read_note(text).table("income")
    assert _identities(table) == {("合计", ((1, "甲"), (1, "乙")))}


# --------------------------------------------------------------------------------------------
# Market data, rating, scheme, identity

def _fig(figure):
    return figure.value.value, figure.value.decimals, figure.unit


def _fx(fx):
    return None if fx is None else (fx[0], fx[1], fx[2].value, fx[2].decimals)


# What each seed's market block and cover say: fact -> (how it is read off the parsed note, the
# value per seed). A seed is checked on the facts given a value for it here (only 开源 prints a
# float market cap, only the Xiaomi note an FX rate); None is a value: the note prints no such line.
MARKET_FACTS = {
    "price": (lambda n: _fig(n.market.price), {"xiaomi": (40.2, 2, "港元"), "kysec": (13.93, 2, "元")}),
    "currency": (lambda n: n.market.currency, {"xiaomi": "HKD", "kysec": "CNY"}),
    "52-week low, high": (lambda n: (n.market.low_52w.value.value, n.market.high_52w.value.value),
                          {"xiaomi": (30, 61.45), "kysec": (10.09, 15.16)}),
    "market cap": (lambda n: _fig(n.market.market_cap), {"xiaomi": (10470.24, 2, "亿港元"), "kysec": (56.33, 2, "亿元")}),
    "float market cap": (lambda n: _fig(n.market.float_market_cap), {"kysec": (48.6, 2, "亿元")}),
    "shares": (lambda n: _fig(n.market.shares), {"xiaomi": (260.45, 2, "亿股"), "kysec": (4.04, 2, "亿股")}),
    "float shares": (lambda n: _fig(n.market.float_shares), {"kysec": (3.49, 2, "亿股")}),
    "3-month turnover": (lambda n: n.market.turnover_3m.value.value, {"xiaomi": 88.7, "kysec": 185.55}),
    "3-month turnover is a percent": (lambda n: n.market.turnover_3m.value.percent, {"xiaomi": True}),
    "FX pair, rate, decimals": (lambda n: _fx(n.market.fx), {"xiaomi": ("HKD", "CNY", 0.9049, 4), "kysec": None}),
    "price date": (lambda n: n.market.price_date, {"xiaomi": "2025-12-18"}),
    "note date": (lambda n: n.date, {"kysec": "2026-04-27"}),
    "company, ticker, market": (lambda n: (n.company, n.ticker, n.exchange_market),
                                {"xiaomi": ("小米集团", "1810.HK", "HK"), "kysec": ("华凯易佰", "300592.SZ", "A")}),
    "rating, action": (lambda n: (n.rating, n.action), {"xiaomi": ("买入", "维持"), "kysec": ("买入", "维持")}),
    "rating as printed": (lambda n: n.rating_printed, {"xiaomi": "买入（维持）"}),
}


@pytest.mark.parametrize("seed", ["xiaomi", "kysec"])
def test_market_data(seed, request):
    note = request.getfixturevalue(seed)
    expected = {fact: values[seed] for fact, (_, values) in MARKET_FACTS.items() if seed in values}
    # one comparison of every fact, so that a failure lists all that differ
    assert {fact: MARKET_FACTS[fact][0](note) for fact in expected} == expected


def _bands(scheme):
    return [(b.label, b.lower, b.upper, b.lower_inclusive, b.upper_inclusive) for b in scheme.bands]


def test_xiaomi_rating_scheme(xiaomi):
    s = xiaomi.scheme
    assert _bands(s) == [("买入", 15, None, True, None), ("增持", 5, 15, None, None), ("中性", -5, 5, None, None),
                         ("减持", -15, -5, None, None), ("卖出", None, -15, None, True)]
    assert s.unrated == "无评级" and s.horizon == (6, 12)
    assert s.benchmarks == {"A": "沪深300指数", "HK": "恒生指数", "US": "纳斯达克综合指数或标普500指数"}


def test_kysec_rating_scheme(kysec):
    s = kysec.scheme
    # the industry ratings (看好/中性/看淡) in the same table are not stock bands
    assert _bands(s) == [("买入", 20, None, True, None), ("增持", 5, 20, None, None), ("中性", -5, 5, None, None),
                         ("减持", None, -5, None, True)]
    assert s.bands[-1].note  # 弱于 ... 以下 is read, and said to be read, as below -5%
    assert s.horizon == (6, 12) and s.unrated is None
    assert (s.benchmarks["A"], s.benchmarks["HK"], s.benchmarks["US"]) == ("沪深300指数", "恒生指数", "标普500或纳斯达克综合指数")


@pytest.mark.parametrize("text, exp", [
    ("预计相对强于市场表现>20%", (20, None, False, None)),
    ("领先基准 ≥10%", (10, None, True, None)),
    ("落后基准 15%以上", (None, -15, None, True)),
    ("相对基准 -5%～+5%", (-5, 5, None, None)),
    ("落后基准 5%至 15%", (-15, -5, None, None)),
    ("无法给出明确的投资评级", None),
])
def test_band_wording(text, exp):
    band = ratings.parse_band("某评级", text, notes.default_label_data())
    got = band and (band.lower, band.upper, band.lower_inclusive, band.upper_inclusive)
    assert got == exp


# --------------------------------------------------------------------------------------------
# The import report

def test_kysec_import_report_names_the_cash_that_does_not_tie(kysec):
    mapping = map_roles(kysec)
    subtotals = {i: infer_subtotals(t) for i, t in enumerate(kysec.tables) if t.kind in notes.STATEMENTS}
    report = import_report(kysec, mapping, subtotals)
    for table in kysec.tables:
        assert table.title in report
    failures = report.split("Identities that did not hold:")[1].split("Repairs")[0]
    cash_lines = [l for l in failures.splitlines() if l.strip().startswith("change in 现金")]
    assert [l.split("现金流量表) ")[1].split(":")[0] for l in cash_lines] == ["2026E", "2027E", "2028E"]
    assert all("短期借款" in l for l in cash_lines)
    assert "现金净增加额 = 经营活动现金流 + 投资活动现金流 + 筹资活动现金流" in failures
    assert "Lines left unmapped (0): none" in report
    assert "-0 read as 0: 1" in report
    assert "归属母公司股东权益 = 股本 + 资本公积 + 留存收益 + 其他（报告未列示）" in report


def test_xiaomi_import_report_finds_the_reports_own_disagreements(xiaomi):
    failures = notes.identity_failures(xiaomi, map_roles(xiaomi))
    cash = [f for f in failures if f.what.startswith("change in")]
    assert [(f.year, f.printed, f.computed) for f in cash] == [("2024", -90, 75488 - 91223)]
    two_tables = [f for f in failures if "two tables" in f.explanation]
    assert [(f.year, f.printed, f.computed, f.within_rounding) for f in two_tables] == [("2025E", 1.64, 1.63, True)]


def test_missing_statements_are_said(xiaomi):
    note = read_note("利润表\t2024A\t2025E\n营业收入\t5\t6\n")
    report = import_report(note, map_roles(note), {})
    assert "MISSING: no balance statement" in report and "MISSING: no cashflow statement" in report
    assert "MISSING" not in notes.read_and_report(XIAOMI)[1]


def test_unreadable_note_is_one_clear_error(tmp_path):
    with pytest.raises(notes.NoteError, match="no such note file"):
        read_note(tmp_path / "missing.txt")
    garbage = tmp_path / "note.txt"
    garbage.write_bytes(b"\x81\x20\x81\x20 not text in any encoding")
    with pytest.raises(notes.NoteError, match="not text in UTF-8, GBK/GB18030 or UTF-16"):
        read_note(garbage)
    big5 = tmp_path / "big5.txt"  # GB18030 would decode it, into nonsense: refused as the quotes reader refuses it
    big5.write_bytes("利潤表 營業收入 2025年 歸屬母公司股東淨利潤\n".encode("big5"))
    with pytest.raises(notes.NoteError, match="looks like Big5 .*save the converter's output as UTF-8 text"):
        read_note(big5)
    pdf = tmp_path / "note.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj")
    with pytest.raises(notes.NoteError, match=r"is a PDF document, not the note's text; convert the note to text first \(e\.g\. with MinerU"):
        read_note(pdf)


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig", "utf-16"])
def test_a_note_saved_in_any_chinese_desktop_encoding_is_read(tmp_path, encoding):
    """Quotes files in GBK are read; so are notes (issue 24): the same text whatever the encoding."""
    text = "利润表(百万元)\t2024A\t2025E\n营业收入\t1000\t1 200\n"
    path = tmp_path / "note.txt"
    path.write_bytes(text.encode(encoding))
    assert read_note(path).tables[0].rows == read_note(text).tables[0].rows
