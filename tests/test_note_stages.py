"""The note reader stage by stage, each on small fictional inputs in the forms converters and
brokers print: what one stage gives the next is a plain value these tests print and compare.

(The seeds' own reading is tests/test_notes.py; the whole corpus, tests/test_import_corpus.py.)
"""
from __future__ import annotations

import random

import pytest

from workbook.notes import read_note
from workbook.notes.facts import exchange_of, identity_from, market_from
from workbook.notes.labels import default_label_data, match_label
from workbook.notes.numbers import FOOTNOTE, FOOTNOTE_MARK, MALFORMED, RUN_TOGETHER, TOO_LONG, damage_of, parse_number
from workbook.notes.ratings import benchmarks_in, parse_band, rating_from, scheme_from
from workbook.notes.repair import LABEL_BROKEN, MOVED, Logical, Physical, join_labels, place_figures
from workbook.notes.structure import ATTEMPTS_PER_LINE, BLANK, DROPPED_DIGIT, MAX_LINES, THOUSANDS_POINT
from workbook.notes.tables import read_header

DATA = default_label_data()


def _lines(text: str) -> list[tuple[int, str]]:
    return list(enumerate(text.split("\n"), start=1))


# --------------------------------------------------------------------------------------------
# numbers

@pytest.mark.parametrize("raw, exp", [
    ("1,234", 1234), ("(924)", -924), ("2, 985", 2985), ("22. 61%", 22.61), ("1 200", 1200), ("-0", 0.0),
    ("１２．５", 12.5), ("\u22125", -5),
])
def test_a_printed_figure_reads(raw, exp):
    assert parse_number(raw).value == exp


@pytest.mark.parametrize("raw, why", [
    ("1²000", FOOTNOTE), ("258 2", RUN_TOGETHER), ("31,34", MALFORMED), ("6.,075", MALFORMED),
    ("0." + "1" * 11, TOO_LONG),
])
def test_what_is_not_a_figure_is_refused_and_named(raw, why):
    assert parse_number(raw) is None and damage_of(raw) == why


@pytest.mark.parametrize("raw, exp", [("1000¹", 1000), ("1,200①", 1200), ("35.2%*", 35.2), ("(924)²", -924)])
def test_a_footnote_mark_after_a_figure_is_dropped_and_named_never_read_as_a_digit(raw, exp):
    number = parse_number(raw)
    assert number.value == exp and FOOTNOTE_MARK in number.repairs and damage_of(raw) is None


def test_more_digits_than_a_float_keeps_is_refused():
    assert parse_number("1" * 20) is None and parse_number("9" * 15) is not None


# --------------------------------------------------------------------------------------------
# tables

@pytest.mark.parametrize("cells, years, packed, figures, extra", [
    (["利润表", "2024A", "2025E"], ["2024A", "2025E"], False, [], ""),
    (["项目\\年度 2025A 2026E", "", "", "2027E 2028E", ""], ["2025A", "2026E", "2027E", "2028E"], True, [], ""),
    (["会计年度", "2024A", "单位：百万元 2025E", "2026E"], ["2024A", "2025E", "2026E"], False, [], "单位：百万元"),
    (["重要财务指标 营业总收入(百万元)", "2024A 372", "2025A 475"], ["2024A", "2025A"], False, ["372", "475"], ""),
    (["市场数据", "2026-5-20"], None, None, None, None),
])
def test_year_headers_in_their_printed_forms(cells, years, packed, figures, extra):
    header = read_header(cells)
    if years is None:
        assert header is None
        return
    assert ([y.label for y in header.years], header.packed, header.figures, header.extra) == (years, packed, figures, extra)


STATEMENTS_WITHOUT_HEADERS = """# 测试
<table><tr><td>财务报表(百万元)</td><td>2025A</td><td>2026E</td></tr><tr><td>利润表</td><td></td><td></td></tr>
<tr><td>营业收入</td><td>100</td><td>120</td></tr><tr><td>营业成本</td><td>60</td><td>70</td></tr>
<tr><td>营业利润</td><td>40</td><td>50</td></tr><tr><td>净利润</td><td>30</td><td>38</td></tr></table>

<table><tr><td colspan="2">资产负债表</td><td></td></tr><tr><td>货币资金</td><td>10</td><td>12</td></tr>
<tr><td>存货</td><td>5</td><td>6</td></tr><tr><td>资产总计</td><td>15</td><td>18</td></tr></table>

<table><tr><td>毛利率</td><td>40.0%</td><td>41.7%</td></tr></table>
"""


def test_a_statement_without_a_year_header_takes_the_years_before_it_and_a_split_table_is_joined():
    note = read_note(STATEMENTS_WITHOUT_HEADERS)
    kinds = [(t.kind, [y.label for y in t.years], len(t.lines)) for t in note.tables]
    assert kinds == [("income", ["2025A", "2026E"], 5), ("balance", ["2025A", "2026E"], 3)]
    income = note.table("income")
    assert income.title == "利润表" and "continues in the table" in income.notes[0]
    assert [c.value for c in income.row("毛利率").cells] == [40.0, 41.7]
    assert "prints no year header" in note.table("balance").notes[0]


def test_a_detached_title_yields_to_what_the_lines_are():
    text = ("利润表(百万元)\n\n现金流量表(百万元)\n<table><tr><td>会计年度</td><td>2024A</td><td>2025E</td></tr>"
            "<tr><td>经营活动现金流</td><td>5</td><td>6</td></tr><tr><td>投资活动现金流</td><td>-2</td><td>-3</td></tr>"
            "<tr><td>筹资活动现金流</td><td>1</td><td>1</td></tr><tr><td>现金净增加额</td><td>4</td><td>4</td></tr></table>\n"
            "<table><tr><td>会计年度</td><td>2024A</td><td>2025E</td></tr><tr><td>营业收入</td><td>50</td><td>60</td></tr>"
            "<tr><td>营业成本</td><td>30</td><td>35</td></tr><tr><td>营业利润</td><td>20</td><td>25</td></tr>"
            "<tr><td>净利润</td><td>15</td><td>19</td></tr></table>\n")
    assert [t.kind for t in read_note(text).tables] == ["cashflow", "income"]


# --------------------------------------------------------------------------------------------
# repairs

def test_a_label_broken_across_three_rows_and_figures_moved_between_rows_are_put_back():
    """少数股东损 / 益 归属母公司 / 净利润, with 净利润's 2026E figure printed on the 少数股东损 line,
    营业利润's 2025A one cell early and its 2026E inside the next row's cell, in six converter
    columns for three years."""
    rows = [Physical("营业收入", ["100", "", "110", "", "120", ""]), Physical("营业成本", ["60", "", "66", "", "70", ""]),
            Physical("营业利润", ["40", "44", "", "", "", ""]), Physical("营业外收支", ["1", "", "1", "", "50 2", ""]),
            Physical("净利润", ["41", "", "45", "", "", ""]), Physical("少数股东损", ["", "", "", "", "52", ""]),
            Physical("益 归属母公司", ["0", "", "0", "", "0", ""]), Physical("净利润", ["41", "", "45", "", "52", ""])]
    logical = join_labels(rows, DATA)
    assert [r.label for r in logical] == ["营业收入", "营业成本", "营业利润", "营业外收支", "净利润", "少数股东损益", "归属母公司净利润"]
    assert LABEL_BROKEN in logical[5].repairs
    notes = place_figures(logical, [0, 2, 4], ["2024A", "2025A", "2026E"], [False] * len(logical))
    got = {r.label: [c.value if c else None for c in r.cells] for r in logical}
    assert got == {"营业收入": [100, 110, 120], "营业成本": [60, 66, 70], "营业利润": [40, 44, 50], "营业外收支": [1, 1, 2],
                   "净利润": [41, 45, 52], "少数股东损益": [0, 0, 0], "归属母公司净利润": [41, 45, 52]}
    assert MOVED in logical[2].repairs and any("营业利润 2026E: 50" in n for n in notes)


def test_figures_that_cannot_be_dealt_back_stay_empty_and_say_why():
    logical = [Logical("甲", False, ["1", "2 3", "4"], []), Logical("乙", False, ["5", "", ""], [])]
    for i, row in enumerate(logical):
        row.members, row.tail = [i], i
    place_figures(logical, [0, 1, 2], ["2024A", "2025E", "2026E"], [False, False])
    assert all(c is None for c in logical[0].cells) and logical[0].damage


# --------------------------------------------------------------------------------------------
# facts

@pytest.mark.parametrize("rows, exp", [
    ([("收盘价 (元) 一年内最高/最低", "93.78 97.59/49.62")], {"price": 93.78, "low": 49.62, "high": 97.59}),
    ([("流通股 (百万) 总市值 (人民币 百万)", "2,324.34 726,123.22")], {"float_shares": 2324.34, "cap_mn": 726123.22}),
    ([("总股本/流通股本（亿股）6.78/5.66", "")], {"shares_mn": 678.0, "float_shares": 5.66}),
    ([("总市值/流通(亿元)", "558.4/558.4")], {"cap_mn": 55840.0}),
    ([("流通A股/总股本(亿股)：", ":11.47/11.47")], {"shares_mn": 1147.0}),
    ([("12个月价格区间", "20.73/7.18")], {"low": 7.18, "high": 20.73}),
])
def test_market_data_in_its_printed_forms(rows, exp):
    html = "<table>" + "".join(f"<tr><td>{a}</td><td>{b}</td></tr>" for a, b in rows) + "</table>"
    market = read_note("# 测试\n" + html + "\n").market
    got = {"price": market.price and market.price.value.value, "low": market.low_52w and market.low_52w.value.value,
           "high": market.high_52w and market.high_52w.value.value, "shares_mn": market.shares_mn,
           "float_shares": market.float_shares and market.float_shares.value.value, "cap_mn": market.market_cap_mn}
    assert {k: got[k] for k in exp} == pytest.approx(exp)


@pytest.mark.parametrize("line, price, unit", [
    ("市场价格:人民币 312.40", 312.40, "人民币"), ("股价(2026-04-30) 17.75 元", 17.75, "元"), ("当前价: 40.20 港元", 40.20, "港元"),
])
def test_a_price_on_a_text_line(line, price, unit):
    market = market_from([], _lines(line), DATA)
    assert (market.price.value.value, market.price.unit) == (price, unit)


def test_shares_without_a_unit_take_the_one_that_makes_the_market_cap():
    market = market_from([], _lines("收盘价(元)：30.44\n总股本：412.41\n总市值(百万元)：12,553.66"), DATA)
    assert market.shares_mn == pytest.approx(412.41) and market.notes


@pytest.mark.parametrize("code, suffix", [("003010", "SZ"), ("688416", "SH"), ("600780", "SH"), ("300592", "SZ"),
                                          ("830799", "BJ"), ("1810", "HK"), ("12345678", None)])
def test_a_ticker_without_suffix_takes_its_exchange_from_its_code(code, suffix):
    assert exchange_of(code, DATA) == suffix


def test_the_notes_own_date_is_a_line_of_its_own_never_a_disclaimers_or_a_related_reports():
    text = ("焦点测试（002999）\n《焦点测试(002999)：年报点评》\n2026-03-30\n2026 年 05 月 03 日\n## 免责声明\n"
            "本办法于2017 年7 月1 日起正式实施\n")
    found = identity_from(_lines(text), DATA)
    assert (found.company, found.ticker, found.date) == ("焦点测试", "002999.SZ", "2026-05-03")
    assert identity_from(_lines("## 免责声明\n本办法于2017 年7 月1 日起正式实施\n"), DATA).date is None


# --------------------------------------------------------------------------------------------
# ratings and schemes

@pytest.mark.parametrize("text, exp", [
    ("预期个股相对同期基准指数涨幅在10%与20%之间", (10, 20)),
    ("预计涨幅落后相对基准指数介于-5%- -15%之间", (-15, -5)),
    ("预计涨幅落后相对基准指数-15%以上", (None, -15)),
    ("相对同期市场基准指数涨跌幅在20%以上", (20, None)),
    ("相对同期市场基准指数涨跌幅低于-5%及以下", (None, -5)),
    ("股价相对基准波动在±5%之间", (-5, 5)),
    ("股价涨幅劣于基准指数5%以上", (None, -5)),
    ("未来 6-12个月内相对同期相关证券市场代表性指数跌幅在 5%至 15%之间", (-15, -5)),
    ("预计该公司股价在未来 6-12 个月内相对基准指数跌幅在 10%以上", (None, -10)),
])
def test_band_wordings(text, exp):
    band = parse_band("某", text, DATA)
    assert (band.lower, band.upper) == exp


def test_a_scheme_in_text_lines_takes_the_stock_bands_only():
    text = ("## 投资评级说明\n## 1、行业评级\n看好：行业整体回报高于沪深 300指数5%以上；\n中性：介于-5%与5%之间；\n"
            "## 2、公司评级\n买入：个股相对沪深 300指数涨幅在 15%以上；\n增持：介于 5%与15%之间；\n中性：介于-5%与5%之间；\n"
            "减持：介于-5%与-15%之间；\n卖出：低于-15%以下。\n")
    scheme = scheme_from([], _lines(text), DATA)
    assert [(b.label, b.lower, b.upper) for b in scheme.bands] == [
        ("买入", 15, None), ("增持", 5, 15), ("中性", -5, 5), ("减持", -15, -5), ("卖出", None, -15)]
    assert scheme.complete and scheme.benchmarks == {"A": "沪深300指数"}


@pytest.mark.parametrize("text, exp", [
    ("A股市场以沪深300指数为基准；香港市场以恒生指数为基准", {"A": "沪深300指数", "HK": "恒生指数"}),
    ("A 股市场基准为沪深 300 指数；美国市场基准为纳斯达克综合指数或标普 500 指数。", {"A": "沪深300指数", "US": "纳斯达克综合指数或标普500指数"}),
    ("本报告采用的基准指数：沪深300 指数", {"A": "沪深300指数"}),
])
def test_benchmarks_by_market(text, exp):
    assert benchmarks_in(text, DATA) == exp


@pytest.mark.parametrize("lines, exp", [
    ("投资评级：买入（维持）", ("买入", "维持")), ("买入 |首次覆盖", ("买入", "首次")), ("增持-A(首次)", ("增持", "首次")),
    ("买入\n原评级：买入", ("买入", None)), ("我们维持公司“买入”评级", ("买入", "维持")),
    ("首次覆盖，给予“增持”评级", ("增持", "首次")), ("投资评级\n上次评级", (None, None)),
])
def test_the_published_rating_and_action(lines, exp):
    rating = rating_from(_lines(lines), set(), [], DATA)
    assert (rating.label, rating.action) == exp


# --------------------------------------------------------------------------------------------
# roles

@pytest.mark.parametrize("section, label, role, how", [
    ("cashflow", "经营性现金净流量", "cfo", "family"), ("cashflow", "筹资活动现金流净额", "cff", "family"),
    ("cashflow", "五、现金净增加额", "net_cash_flow", "normalised"), ("income", "税后利润", "net_profit", "exact"),
    ("income", "归母股东净利润", "attributable_profit", "exact"), ("income", "营业税金及", "business_taxes", "truncated"),
    ("income", "减：所得税", "income_tax", "normalised"), ("balance", "流动资产总计", "current_assets", "normalised"),
    ("balance", "货币资金及交易性金融资产", "cash", "exact"), ("income", "未知科目", None, None),
])
def test_label_families(section, label, role, how):
    hit = match_label(DATA, section, label)
    assert (hit[0], hit[2]) == (role, how) if role else hit is None


# --------------------------------------------------------------------------------------------
# the note's arithmetic

def _statement(rows: str, years: str = "2024A\t2025E\t2026E", title: str = "资产负债表") -> str:
    return f"{title}\t{years}\n{rows}"


def test_signs_are_the_notes_own():
    """Costs printed positive and subtracted, a net finance income printed negative still
    subtracted (a cost line), impairment printed negative and added."""
    text = _statement("营业收入\t1000\t1200\t1400\n营业成本\t600\t700\t800\n财务费用\t-20\t-10\t-15\n资产减值损失\t-5\t-6\t-7\n"
                      "营业利润\t415\t504\t608\n", title="利润表")
    note = read_note(text)
    [operating] = note.structures[0].subtotals
    assert [(p.sign, p.row.label) for p in operating.parts] == [(1, "营业收入"), (-1, "营业成本"), (-1, "财务费用"),
                                                               (1, "资产减值损失")]


def test_a_section_whose_printed_lines_leave_some_out_keeps_them_and_the_rest():
    text = _statement("货币资金\t100\t120\t130\n存货\t50\t60\t70\n流动资产合计\t200\t230\t260\n固定资产\t300\t310\t320\n"
                      "资产总计\t500\t540\t580\n")
    subtotals = {s.total.label: s for s in read_note(text).structures[0].subtotals}
    assert subtotals["流动资产合计"].remainder and [p.row.label for p in subtotals["流动资产合计"].parts] == ["货币资金", "存货"]
    assert [p.row.label for p in subtotals["资产总计"].parts] == ["流动资产合计", "固定资产"]


@pytest.mark.parametrize("printed, kind, value", [("2.875", THOUSANDS_POINT, 2875), ("31,34", DROPPED_DIGIT, 31342),
                                                  ("", BLANK, 31342)])
def test_a_damaged_cell_is_repaired_only_where_an_identity_proves_it(printed, kind, value):
    text = _statement(f"短期借款\t1000\t1100\t1200\n应付账款\t28000\t29000\t30,142\n负债合计\t29000\t30100\t{printed}\n"
                      if kind != THOUSANDS_POINT else
                      f"短期借款\t1000\t1100\t1200\n应付账款\t1500\t1600\t1675\n负债合计\t2500\t2700\t{printed}\n")
    structure = read_note(text).structures[0]       # the reader analyses each statement once
    [repair] = structure.repairs
    assert (repair.kind, repair.value, repair.printed) == (kind, value, printed)


def _unrelated(n: int) -> str:
    draw = random.Random(n)
    return "".join(f"项目{i}\t" + "\t".join(str(draw.randrange(100_000, 999_999)) for _ in range(3)) + "\n"
                   for i in range(n))


# The subtotal search on long statements (test_hostile held the same two tests, each running the
# search a second time: merged here, with its CPU-time hang guard and its exact bound)
@pytest.mark.long
def test_the_subtotal_search_is_linear_in_a_statement_without_subtotals():
    from test_hostile import cpu_guard
    work = {}
    for n in (100, 200, 400):
        with cpu_guard(120):
            result = read_note(_statement(_unrelated(n))).structures[0]
        assert result.subtotals == [] and result.examined <= result.bound == ATTEMPTS_PER_LINE * n
        work[n] = result.examined
    assert work[400] <= 2.2 * work[200] and work[200] <= 2.2 * work[100]


def test_the_subtotal_search_finds_every_subtotal_of_a_long_statement_within_its_bound():
    """100 blocks of three lines and their total (400 lines, totals named by nothing)."""
    draw, rows = random.Random(25), []
    for block in range(100):
        parts = [[draw.randrange(1_000, 9_999) for _ in range(3)] for _ in range(3)]
        rows += [f"明细{block}-{i}\t" + "\t".join(map(str, p)) + "\n" for i, p in enumerate(parts)]
        rows.append(f"小计{block}\t" + "\t".join(str(sum(p[j] for p in parts)) for j in range(3)) + "\n")
    from test_hostile import cpu_guard
    with cpu_guard(300):
        result = read_note(_statement("".join(rows))).structures[0]
    assert {s.total.label for s in result.subtotals} == {f"小计{block}" for block in range(100)}
    assert result.examined <= result.bound == ATTEMPTS_PER_LINE * 400


def test_a_statement_longer_than_the_search_takes_on_is_read_as_printed():
    note = read_note(_statement(_unrelated(MAX_LINES + 1)))
    assert note.structures[0].subtotals == [] and "more than the subtotal search takes on" in note.structures[0].notes[0]


def test_a_note_of_more_tables_than_a_note_prints_is_refused_in_one_line():
    from workbook.notes import NoteError
    from workbook.notes.reader import MAX_TABLES
    with pytest.raises(NoteError, match=f"more than {MAX_TABLES} tables"):
        read_note("利润表\t2024A\t2025E\n营业收入\t1\t2\n\n" * (MAX_TABLES + 1))


def test_the_report_lists_a_bounded_number_of_unreadable_cells_each_quoted_short():
    from workbook.notes.import_report import MAX_WARNINGS_LISTED, read_and_report
    rows = "".join(f"科目{i}\t258 2\t{'1' * 30}{'2' * 30}\t1\n" for i in range(MAX_WARNINGS_LISTED))
    note, report = read_and_report(_statement(rows, title="利润表"))
    assert len(note.warnings) > MAX_WARNINGS_LISTED
    assert f"… and {len(note.warnings) - MAX_WARNINGS_LISTED:,} more" in report
    assert all(len(w) < 200 and "characters)" in w and "2" * 30 not in w for w in note.warnings)   # quoted short


def test_layout_inference_is_a_stage_of_the_reader_with_no_plug():
    """The layout inference reads the reader's output (the note and the importer's placed rows)
    and gives a plain layout: sheets named by the layout, cash rolled forward from the net cash
    flow, the balance check on assets and claims computed apart. There is no other way to close
    a model: no `articulated` switch, no line whose note calls it a plug or a balancing item."""
    import inspect
    from test_import import FICTIONAL_NOTE
    from workbook.importer import mapped_lines
    from workbook.notes.inference import infer_layout
    note = read_note(FICTIONAL_NOTE)
    lines = {line["key"]: line for line in infer_layout(note, mapped_lines(note)).data["lines"]}
    assert lines["cash"]["formula"] == "prev(cash) + net_cash_flow"
    assert not any("plug" in line.get("note", "").lower() for line in lines.values())
    data = infer_layout(note, mapped_lines(note)).data
    assert sorted(s["sheet"] for s in data["statements"]) == ["利润表", "现金流量表", "资产负债表"]
    assert data["checks"][0]["key"] == "balance" and data["checks"][0]["actual"] == "total_assets"
    assert list(inspect.signature(infer_layout).parameters) == ["note", "placed"]
    assert not any("balancing" in line.get("note", "").lower() for line in lines.values())


def test_a_line_that_holds_a_printed_total_is_read_as_that_total_and_a_rest():
    """A template whose 其他非流动资产 is total assets less the non-current lines it lists, current
    assets included: total assets add up without current assets in every year, and miss by exactly
    them with them. That line is current assets plus a rest, and total assets are added as printed
    (not an identity of accounting forced on a print that breaks it in every year)."""
    text = _statement("货币资金\t100\t120\t130\n存货\t50\t60\t70\n流动资产合计\t150\t180\t200\n固定资产\t300\t310\t320\n"
                      "其他非流动资产\t160\t190\t215\n资产总计\t460\t500\t535\n")
    structure = read_note(text).structures[0]
    subtotals = {s.total.label: s for s in structure.subtotals}
    host = subtotals["其他非流动资产"]
    assert host.remainder and [p.row.label for p in host.parts] == ["流动资产合计"]
    assert [p.row.label for p in subtotals["资产总计"].parts] == ["固定资产", "其他非流动资产"] and not subtotals["资产总计"].failed
    assert any("其他非流动资产 holds 流动资产合计" in n for n in structure.notes)


def test_a_line_computed_from_balances_is_checked_on_the_print_in_the_notes_own_terms():
    """What the model computes for a printed cash-flow line, with each driver replaced by what the
    print implies for it, is a signed sum of printed lines the findings can recompute; a
    roll-forward comes out as the line itself and adds nothing."""
    from workbook.notes.inference import _printed_identities
    lines = [
        {"key": "retained_earnings", "table": "balance", "zh": "留存收益",
         "formula": "prev(retained_earnings) + attributable_profit - d_dividends"},
        {"key": "cff_other", "table": "cashflow", "zh": "其他筹资现金流",
         "formula": "-d_dividends + (long_term_debt - prev(long_term_debt)) - cfo_other"},
        {"key": "d_dividends", "table": "drivers", "zh": "派发股利",
         "implied": "prev(retained_earnings) + attributable_profit - retained_earnings"},
    ]
    printed = {"retained_earnings", "cff_other", "long_term_debt", "attributable_profit", "cfo_other"}
    [identity] = _printed_identities(lines, printed)
    assert identity["key"] == "cff_other" and identity["identity_years"] == "forecast"
    assert identity["formula"] == ("-attributable_profit - cfo_other + long_term_debt + retained_earnings"
                                   " - prev(long_term_debt) - prev(retained_earnings)")
