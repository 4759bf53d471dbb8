"""Build the macro-enabled template with XlsxWriter: the only module that writes the file.

Every line's cell, every check and the blocks under the checks that audit and refresh read back
(the audit block, the findings table, the sanity warnings) come from the placement
(workbook/layout.py), as do the defined names they are found by; every formula from the model's
spec; every formula's cached value from the Python engine, so a viewer without Python sees
numbers. What only a reader looks at is laid out here, under the placed rows: the cover's version
line, button and chart, the rating scheme table, the sensitivity tables (whose engine-run grid
refresh finds by the SENS_ names written here), and the machinery sheets (xlwings.conf, the
blueprint, the source files).
"""
from __future__ import annotations

import datetime as dt
import io
import math
from pathlib import Path

import xlsxwriter

from .vba_modules import REFRESH_MACRO, UDF_MODULE, project_modules
from .vbaproject import vba_project_bin
from udfs import formula as fx
from udfs.engine import BASE, driver_key
from udfs.forecast import METHODS
from udfs.rating import schemes

from . import layout, spec
from .company import SCENARIO_CASES, Company, CompanyDataError, load
from udfs.constants import DAYS_IN_YEAR

from .files import atomic_path
from .tomlfile import control_character
from .formats import excel_format, text_width
from .layout import BLUEPRINT_COLUMNS, TEMPLATE_VERSION, TEMPLATE_VERSION_NAME, TEMPLATE_VERSION_PROPERTY, RowKind
from .layout import FIRST_ROW, FIRST_VALUE_COL, HEADER_ROW, LABEL_COL, ENGLISH_COL, SUBTITLE_ROW, TITLE_ROW
from .model import SCENARIO_KEY, Model, build_model, scenario_key
from .report import findings as report_findings, load_report, report_path_for

MACHINERY_KINDS = ("conf", "blueprint", "source")  # sheets for xlwings, check and roll: hidden, never printed
BUILD_DATE = dt.datetime(2025, 12, 18)  # fixed, so that two builds of the same data are identical
CALC_ID = 191029                         # a current Excel calc engine: no forced full recalculation on open

BLUE, BLACK, GREEN, GREY = "#0000FF", "#000000", "#006100", "#595959"
HEADER_FILL, HEADING_FILL, INPUT_FILL, REVIEW_FILL = "#1F3864", "#D9E1F2", "#FFF2CC", "#F8CBAD"
OK_FILL, FAIL_FILL = "#C6EFCE", "#FFC7CE"
FONT = "Microsoft YaHei"


class Styles:
    """XlsxWriter formats, made once per combination of number format and role."""

    def __init__(self, book: xlsxwriter.Workbook):
        self.book = book
        self.cache = {}

    def get(self, fmt: str = "text", role: str = "formula", bold: bool = False, wrap: bool = False):
        key = (fmt, role, bold, wrap)
        if key not in self.cache:
            props = {"font_name": FONT, "font_size": 10, "num_format": excel_format(fmt), "bold": bold,
                     "valign": "vcenter", "text_wrap": wrap}
            if role == "input":
                props.update(font_color=BLUE, bg_color=INPUT_FILL, border=1, border_color="#BFBFBF")
            elif role == "review":  # a driver `roll` carried into a new year: an input the analyst should revisit
                props.update(font_color=BLUE, bg_color=REVIEW_FILL, border=1, border_color="#BFBFBF")
            elif role == "mirror":
                props.update(font_color=GREEN)
            elif role == "implied":
                props.update(font_color=GREY, italic=True)
            elif role == "label":
                props.update(num_format="@", font_color=BLACK)
            elif role == "english":
                props.update(num_format="@", font_color=GREY, italic=True)
            else:
                props.update(font_color=BLACK)
            if fmt != "text" and role not in ("label", "english"):
                props["align"] = "right"
            self.cache[key] = self.book.add_format(props)
        return self.cache[key]

    def plain(self, **props):
        key = tuple(sorted(props.items()))
        if key not in self.cache:
            self.cache[key] = self.book.add_format({"font_name": FONT, "font_size": 10, **props})
        return self.cache[key]


# ------------------------------------------------------------------------------------------------
# Print: every sheet fits the width of a landscape A4 page at a readable size. Label columns are
# as wide as their longest text (up to a cap, beyond which the text wraps and its row grows), so
# nothing is cut off and no sheet is wider than it needs to be.
# ------------------------------------------------------------------------------------------------
LINE_HEIGHT = 15.0            # points per line of 10-point text in a row


class Page:
    """One printed sheet's columns and rows: `fit` sizes a column to the texts it will hold,
    `text` writes a text that wraps when it is wider than its column (its row made tall enough),
    `finish` sets those row heights."""

    def __init__(self, ws, styles: Styles):
        self.ws, self.styles = ws, styles
        self.widths: dict[int, float] = {}
        self.lines: dict[int, int] = {}

    def fit(self, col: int, texts, minimum: float, maximum: float) -> float:
        widest = max((text_width(t) for t in texts if t), default=0.0)
        width = round(min(max(widest + 2, minimum), maximum), 1)
        self.ws.set_column(col, col, width)
        self.widths[col] = width
        return width

    def fixed(self, first: int, last: int, width: float) -> None:
        self.ws.set_column(first, last, width)
        for col in range(first, last + 1):
            self.widths[col] = width

    def _lines(self, col: int, text: str) -> int:
        room = self.widths.get(col, 8.43) - 1
        return max(1, math.ceil(text_width(text) / room))

    def text(self, row: int, col: int, text: str, role: str = "label", bold: bool = False, **plain) -> None:
        """`text` in the role's style (or, with `plain` properties, a plain one), wrapped if it must be."""
        lines = self._lines(col, text)
        wrap = lines > 1
        if plain:
            style = self.styles.plain(**plain, text_wrap=True) if wrap else self.styles.plain(**plain)
        else:
            style = self.styles.get("text", role, bold, wrap=wrap)
        self.ws.write_string(row, col, text, style)
        if wrap:
            self.lines[row] = max(self.lines.get(row, 1), lines)

    def tall(self, row: int, lines: int) -> None:
        self.lines[row] = max(self.lines.get(row, 1), lines)

    def finish(self) -> None:
        for row, lines in sorted(self.lines.items()):
            self.ws.set_row(row, LINE_HEIGHT * lines)


# Caps of the label columns: wider labels wrap. With the year columns they keep a statement within
# one landscape page at a readable size.
LABEL_WIDTH, ENGLISH_WIDTH, YEAR_WIDTH = (18, 46), (16, 44), 12


def _cached(value):
    """A formula's cached value as XlsxWriter takes it."""
    if value is None:
        return ""
    return value


def _drivers_by_line(company: Company) -> dict:
    """{driver line key: the company driver it holds}: the blue inputs of the drivers sheet."""
    return {driver_key(key): driver for key, driver in company.drivers.items()}


def _drivers_by_case(company: Company) -> dict:
    """{scenario line key: the company driver it is a case of}: the inputs of the 情景 sheet."""
    return {scenario_key(case, key): company.drivers.get(key)
            for key in company.scenario_drivers for case in ("base", *SCENARIO_CASES)}


def _carried_for_review(cell, company: Company, drivers: dict) -> bool:
    """A driver value in the last forecast year that `roll` copied from the year before."""
    if cell.year != company.forecast_years[-1].label:
        return False
    driver = drivers.get(cell.key)
    return bool(driver and driver.review)


# ------------------------------------------------------------------------------------------------
# Input help: every input cell's validation says, in Chinese and English, what the cell holds and
# in which unit, the unit read from the cell's own number format class, so the two never disagree.
# ------------------------------------------------------------------------------------------------
TITLE_LIMIT, MESSAGE_LIMIT = 32, 255   # Excel's limits on a validation's title and message
PERCENT_FORMATS = ("pct", "growth")
NO_BOUND = 1e9  # a driver with no plausible range: the rule only asks for a number


def unit_words(fmt: str, company: Company) -> tuple[str, str] | None:
    """(Chinese, English) of the unit a number in format class `fmt` is typed in; None for text,
    dates and `money2`, a two-decimal number whose unit only its line knows (an index level, a
    price per unit). Money is the company's own unit (百万元, 百万人民币)."""
    quote, reporting = company.facts.get("quote_currency", ""), company.facts.get("reporting_currency", "")
    return {
        "pct": ("%", "%"), "growth": ("%", "%"),
        "days": (f"天（一年按 {DAYS_IN_YEAR} 天）", f"days ({DAYS_IN_YEAR}-day year)"),
        "money": (company.unit, company.unit_en),
        "shares": ("百万股", "mn shares"),
        "multiple": ("倍", "x (times)"), "pe_summary": ("倍", "x (times)"),
        "eps": (f"{spec.currency_zh(reporting)}/股", f"{reporting} per share"),
        "price": (f"{spec.currency_zh(quote)}/股", f"{quote} per share"),
        "fx": ("数值", "a number"),
    }.get(fmt)


def _fit(limit: int, *parts: str) -> str:
    """The parts joined, dropping trailing optional ones until the text fits Excel's limit (the
    first part, cut if it must be, always stays)."""
    kept = list(parts)
    while len("".join(kept)) > limit and len(kept) > 1:
        kept.pop()
    return "".join(kept)[:limit]


def _title(zh: str, en: str) -> str:
    """A validation title, both languages when they fit in Excel's 32 characters, else Chinese."""
    both = f"{zh} {en}"
    return both if len(both) <= TITLE_LIMIT else zh[:TITLE_LIMIT]


def help_message(zh: str, en: str, fmt: str, company: Company, extra_zh: str = "", extra_en: str = "") -> str:
    """An input message: what the cell holds and its unit, in Chinese, then in English."""
    unit = unit_words(fmt, company)
    percent = fmt in PERCENT_FORMATS
    zh_text = f"{zh}。" + (f"单位：{unit[0]}" + ("（输入 10% 或 0.10）" if percent else "") + "。" if unit else "")
    en_text = f"{en}." + (f" Unit: {unit[1]}" + (" (type 10% or 0.10)" if percent else "") + "." if unit else "")
    # The extras (a note, what an empty cell means) go first when Excel's 255 characters run out;
    # both languages always stay.
    for extra in ((extra_zh, f" {extra_en}" if extra_en else ""), (extra_zh, ""), ("", "")):
        text = f"{zh_text}{extra[0]}\n{en_text}{extra[1]}"
        if len(text) <= MESSAGE_LIMIT:
            return text
    return f"{zh_text[:MESSAGE_LIMIT - len(en_text) - 1]}\n{en_text}"[:MESSAGE_LIMIT]


def with_review(message: str) -> str:
    """A carried driver's message: "revisit it" said first in each language, the rest cut (the
    Chinese first) to Excel's limit."""
    zh, _, en = message.partition("\n")
    zh, en = "由 roll 从上一年复制，请复核。" + zh, "Carried from the previous year by roll: revisit it. " + en
    room = MESSAGE_LIMIT - len(en) - 1
    return f"{zh[:max(room, 15)]}\n{en}"[:MESSAGE_LIMIT]


def _decimal_rule(low: float, high: float, fmt: str, company: Company) -> dict:
    """A warning (not a stop) outside [low, high], said in the cell's own unit."""
    unit = unit_words(fmt, company) or ("", "")
    percent = fmt in PERCENT_FORMATS
    if high >= NO_BOUND:
        message = (f"请输入数字（单位：{unit[0]}）。", f"\nA number is expected (unit: {unit[1]}).")
    else:
        def shown(x: float, words: str) -> str:
            return f"{x:.0%}" if percent else f"{x:,g} {words}".strip()
        message = (f"通常在 {shown(low, unit[0])} 至 {shown(high, unit[0])} 之间。",
                   f"\nUsually between {shown(low, unit[1])} and {shown(high, unit[1])}.")
    return {"validate": "decimal", "criteria": "between", "minimum": low, "maximum": high, "error_type": "warning",
            "error_title": "数值异常 Unusual value", "error_message": _fit(MESSAGE_LIMIT, *message)}


DRIVER_BOUNDS = {"pct": (-1.0, 20.0), "days": (0.0, 1000.0), "money": (-NO_BOUND, NO_BOUND), "money2": (0.0, NO_BOUND),
                 "shares": (-NO_BOUND, NO_BOUND)}


def _driver_validation(line, driver, company: Company, lines: dict) -> dict:
    """A driver input's validation and help: the method's words with its base line named, and the
    unit of the cell's format. `driver` is None for a driver line of its own (a reconciling driver
    the note does not disclose, or an analyst input such as a debt rate or a buyback)."""
    if driver is None:
        reconciling = bool(line.implied) or line.key in company.layout.calibrated
        title = ("调节项", "Reconciling driver") if reconciling else ("分析师输入", "Analyst input")
        why = (("报告未披露其口径，校准使模型显示报告数字。", "The note does not disclose it; calibrated so the model shows the print.")
               if reconciling else ("", f"{line.note}." if line.note else ""))
        low, high = DRIVER_BOUNDS.get(line.fmt, (-NO_BOUND, NO_BOUND))
        return {**_decimal_rule(low, high, line.fmt, company), "input_title": _title(*title),
                "input_message": help_message(line.label_zh, line.label_en, line.fmt, company, *why)}
    method = METHODS[driver.method]
    base = lines.get(driver.base)
    words = (filled(method.label_zh, base=base.label_zh if base else ""),
             filled(method.label_en, base=base.label_en if base else ""))
    note = ("", f"Note: {driver.note}.") if driver.note else ("", "")  # the company file's notes are English
    low, high = DRIVER_BOUNDS[method.driver_format]
    if method.driver_format == "money2":  # a price per unit of a volume line: its unit is the volume's
        note = (f"单位：{company.unit}/每单位{base.label_zh if base else '销量'}。" + note[0],
                f"Unit: {company.unit_en} per unit of {base.label_en if base else 'volume'}. " + note[1])
    return {**_decimal_rule(low, high, method.driver_format, company), "input_title": _title(*words),
            "input_message": help_message(line.label_zh, line.label_en, method.driver_format, company, *note)}


SCENARIO_VALIDATION = {
    "validate": "list", "source": ["base", "bear", "bull"], "input_title": "情景 Scenario",
    "input_message": ("base 基准 / bear 悲观 / bull 乐观：情景表中各驱动取哪一列；悲观或乐观为空时取基准值。\n"
                      "Which column of the 情景 sheet the varied drivers read; an empty bear or bull value uses base."),
    "error_type": "stop", "error_title": "情景 Scenario", "error_message": "请选择 base、bear 或 bull。Choose base, bear or bull.",
}


# Market inputs a source note may not print: what the empty cell asks for.
UNPRINTED_FACTS = {"price": "报告未列示股价：刷新即填入。The note prints no price: Refresh fills it.",
                   "shares": "报告未列示总股本：请填写。The note prints no share count: type it.",
                   "price_date": "报告未列示股价日期：刷新即填入。No price date: Refresh fills it."}


def input_validation(key: str, company: Company) -> dict | None:
    """Data validation and the input message of a market, rating or valuation input, in the
    company's currencies and both languages."""
    quote, reporting = company.facts.get("quote_currency", ""), company.facts.get("reporting_currency", "")
    quote_zh, reporting_zh = spec.currency_zh(quote), spec.currency_zh(reporting)
    positive = {"validate": "decimal", "criteria": ">", "value": 0, "error_type": "warning",
                "error_title": "数值异常 Unusual value", "error_message": "应为正数。A positive number is expected."}
    rules = {
        "target_price": {**positive, "input_title": "目标价 Target price",
                         "input_message": help_message(f"分析师目标价（交易货币 {quote_zh}）", f"Analyst's target price in the "
                                                       f"trading currency ({quote})", "price", company,
                                                       "留空：无评级。", "Empty: not rated.")},
        "expected_dps": {"validate": "decimal", "criteria": ">=", "value": 0, "input_title": "预期股息 Dividends",
                         "input_message": help_message("评级期内预期每股股息", "Dividends per share expected to the horizon",
                                                       "price", company, "留空按 0 计。", "Empty counts as 0.")},
        "benchmark_return": {**_decimal_rule(-1, 5, "pct", company), "input_title": "基准收益 Benchmark return",
                             "input_message": help_message("评级期内基准指数的预期收益率",
                                                           "Expected return of the benchmark index over the rating horizon",
                                                           "pct", company)},
        "rating_boundary": {"validate": "list", "source": ["outer", "inner"], "input_title": "边界 Boundary",
                            "input_message": ("outer：恰在阈值上的收益归入离零更远的一档（以上/以下含本数）；inner 相反。\n"
                                              "outer: a return exactly on a threshold takes the band further from zero; "
                                              "inner: the nearer one.")},
        "price": {**positive, "input_title": "股价 Price",
                  "input_message": help_message(f"最新股价（{quote_zh}）", f"Last price in {quote}", "price", company,
                                                "刷新按钮会更新。", "Refresh updates it.")},
        "fx_rate": {**positive, "input_title": "汇率 FX",
                    "input_message": help_message(f"1 {quote} 兑 {reporting} 的汇率（{reporting_zh}）",
                                                  f"{reporting} per 1 {quote}", "fx", company,
                                                  "刷新按钮会更新。", "Refresh updates it.")},
        "shares": {**positive, "input_title": "总股本 Shares",
                   "input_message": help_message("总股本", "Shares outstanding", "shares", company)},
        "mid_year_switch": {"validate": "list", "source": ["TRUE", "FALSE"], "input_title": "年中折现 Mid-year",
                            "input_message": ("TRUE：现金流按年中折现；FALSE 或留空：按年末。\n"
                                              "TRUE: cash flows arrive mid-year; FALSE or empty: year-end.")},
    }
    return rules.get(key) or _valuation_validation(key, company)


def _valuation_validation(key: str, company: Company) -> dict | None:
    years = [y.label for y in company.years if y.kind != BASE]
    if key.endswith("_year") and key not in ("first_forecast", "last_forecast", "last_reported"):
        return {"validate": "list", "source": years, "input_title": "估值年度 Year",
                "input_message": "该方法估值所用的年度。\nThe year the method values."}
    if key.endswith("_method") and key.startswith("sotp_"):
        # only the methods whose metric the layout has a segment line for: P/S on the segment's
        # revenue always, P/E, P/B, EV/EBITDA where [segment_metrics] gives its profit, book, EBITDA
        allowed = spec.valuation_plan(company.layout).segment_methods.get(key.removeprefix("sotp_").removesuffix("_method"))
        allowed = list(allowed or ("PS",))
        missing = [m for m in ("PE", "PB", "EV/EBITDA") if m not in allowed]
        return {"validate": "list", "source": allowed, "input_title": "估值方法 Method",
                "input_message": ("分部估值方法，仅限版式有对应分部行的方法。\nPS on the segment's revenue" + (", PE on its profit" if "PE" in allowed else "")
                                  + (", PB on its book value" if "PB" in allowed else "")
                                  + (", EV/EBITDA on its EBITDA" if "EV/EBITDA" in allowed else "") + "."
                                  + (f" Not {', '.join(missing)}: the layout has no such segment line." if missing else ""))[:255],
                "error_title": "无分部行 No segment line",
                "error_message": "版式没有该方法所需的分部行。This layout has no segment line that method applies to."}
    if key == "dcf_target_basis":
        return {"validate": "list", "source": ["price_date", "horizon"], "input_title": "DCF 目标价口径 DCF target",
                "input_message": "price_date：股价日的价值；horizon：评级期末的价值。\nprice_date: the value at the price date; horizon: rolled to the rating horizon at the cost "
                                 "of equity, less the dividends paid within it."}
    if key == "blend_nm_policy":
        return {"validate": "list", "source": ["exclude", "nm"], "input_title": "NM 方法 NM method",
                "input_message": "exclude：剔除并说明；nm：加权目标价为 NM。\nA weighted method that is not a price: exclude leaves it out and says so (the other "
                                 "weights scale up); nm makes the blend NM, naming the method."}
    if key in ("rating_horizon", "dividend_lag"):
        return {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": 5, "input_title": "年数 Years",
                "input_message": {"rating_horizon": "评级期限（年）。Years from the price date to where the target is judged (the scheme's horizon).",
                                  "dividend_lag": "股息在财年结束后几年支付（年）。Years after a fiscal year end its dividend is paid (0.5: mid next year)."}[key]}
    if key == "first_year_end":
        return {"validate": "date", "criteria": ">", "value": dt.date(1990, 1, 1), "input_title": "财年结束日 Year end",
                "input_message": "首个预测年度的财年结束日。\nThe first forecast year's fiscal year end; the DCF values the part of it after the price date."}
    if key == "award_exercise_price":
        return {"validate": "decimal", "criteria": ">=", "value": 0, "input_title": "行权价 Exercise price",
                "input_message": "摊薄工具的行权价（交易货币）。\nExercise price of the dilutive awards, trading currency; empty: they count in full "
                                 "(restricted shares), else by the treasury-stock method at the current price."}
    if key.startswith("weight_"):
        return {**_decimal_rule(0, 1, "pct", company), "input_title": "权重 Weight",
                "input_message": help_message("该方法的权重", "Weight of this method", "pct", company,
                                              "各方法权重合计须为 100%。", "The weights must add up to 100%.")}
    if key.endswith("_multiple"):
        return {"validate": "decimal", "criteria": ">", "value": 0, "input_title": "目标倍数 Multiple",
                "input_message": help_message("目标倍数", "The target multiple", "multiple", company,
                                              "留空：不使用该方法。", "Empty: the method is not used.")}
    return None


def generic_validation(line, company: Company) -> dict | None:
    """The help of any other numeric input (a CAPM input, a growth rate, a benchmark level): its
    label and unit in both languages, no bounds."""
    if unit_words(line.fmt, company) is None:
        return None
    return {"validate": "any", "input_title": _title("输入", "Input"),
            "input_message": help_message(line.label_zh, line.label_en, line.fmt, company)}


def _bold(company: Company) -> frozenset:
    return company.layout.bold | spec.COMMON_BOLD


def company_kinds(company: Company) -> dict:
    return {y.label: y.kind for y in company.years}


def company_title(company: Company) -> str:
    return f"{company.facts['name_zh']} ({company.facts['ticker']})"


def source_note(company: Company, price_date: str, fx_rate: float) -> str:
    """The summary table's source line, from the company's own facts and the market inputs."""
    quote, reporting = company.facts.get("quote_currency", ""), company.facts.get("reporting_currency", "")
    fx = f"，汇率 1{quote}={fx_rate:.4f}{reporting}" if quote != reporting else ""  # 1 CNY = 1 CNY says nothing
    return f"资料来源：{company.facts.get('source', '公司财报')}；股价时间为 {price_date or '—'}{fx}"


def source_note_formula(company: Company, placement, sheet_name: str) -> str:
    """The same line as an Excel formula on the market-input cells, so that a refresh (in Excel
    or headless) updates the caption with the price and FX it quotes."""
    quote, reporting = company.facts.get("quote_currency", ""), company.facts.get("reporting_currency", "")
    date_ref = placement.address("price_date", None, sheet_name, absolute=True)
    fx_ref = placement.address("fx_rate", None, sheet_name, absolute=True)

    def text(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'
    caption = (f'={text(company.name + "  资料来源：" + company.facts.get("source", "公司财报") + "；股价时间为 ")}'
               f'&TEXT({date_ref},"yyyy-mm-dd")')
    if quote == reporting:
        return caption
    return caption + f'&{text("，汇率 1" + quote + "=")}&TEXT({fx_ref},"0.0000")&{text(reporting)}'


def _row_texts(placement, sheet_name: str) -> tuple[list[str], list[str]]:
    """The Chinese and English labels a sheet's rows show, to size its label columns."""
    zh, en = [], []
    for _, row in placement.rows[sheet_name]:
        if row.kind in (RowKind.LINE, RowKind.MIRROR):
            line = placement.lines[row.key]
            zh.append(row.label or line.label_zh)
            en.append(line.label_en + (" (base year)" if row.years == "base" else ""))
    return zh, en


def filled(template: str, **values: str) -> str:
    """`template` with each `{name}` replaced by its value, literally: a layout's title is data
    (an imported one comes from a note), so braces in it or in a value are text, never a
    format field (str.format raised KeyError on a title holding "{x}")."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def _write_yearly(page: Page, sheet, placement, model: Model, styles: Styles, company: Company):
    ws = page.ws
    columns = placement.year_cols[sheet.name]
    kinds = {y.label: y.kind for y in company.years}
    zh, en = _row_texts(placement, sheet.name)
    page.fit(LABEL_COL, zh + ["项目"], *LABEL_WIDTH)
    page.fit(ENGLISH_COL, en + ["Line"], *ENGLISH_WIDTH)
    page.fixed(FIRST_VALUE_COL, FIRST_VALUE_COL + len(columns) - 1, YEAR_WIDTH)
    ws.write(TITLE_ROW, LABEL_COL, filled(sheet.title, company=company_title(company)), styles.plain(bold=True, font_size=14))
    if "{source_note}" in sheet.unit:
        caption = f"{company.name}  " + source_note(company, model.value("price_date"), model.value("fx_rate"))
        ws.write_formula(SUBTITLE_ROW, LABEL_COL, source_note_formula(company, placement, sheet.name),
                         styles.plain(font_color=GREY), caption)
    else:
        ws.write(SUBTITLE_ROW, LABEL_COL, f"{company.name}  {filled(sheet.unit, unit=company.facts.get('unit', ''))}",
                 styles.plain(font_color=GREY))
    head = styles.plain(bold=True, font_color="#FFFFFF", bg_color=HEADER_FILL, align="center")
    ws.write(HEADER_ROW, LABEL_COL, "项目", head)
    ws.write(HEADER_ROW, ENGLISH_COL, "Line", head)
    for i, year in enumerate(columns):
        label = f"{year}（基期）" if kinds[year] == BASE else year
        ws.write(HEADER_ROW, FIRST_VALUE_COL + i, label, head)
    for r, row in placement.rows[sheet.name]:
        if row.kind == RowKind.HEADING:
            ws.merge_range(r, LABEL_COL, r, FIRST_VALUE_COL + len(columns) - 1, row.label,
                           styles.plain(bold=True, bg_color=HEADING_FILL))
        elif row.kind in (RowKind.LINE, RowKind.MIRROR):
            line = placement.lines[row.key]
            bold = row.key in _bold(company)
            page.text(r, LABEL_COL, row.label or line.label_zh, "label", bold)
            page.text(r, ENGLISH_COL, line.label_en + (" (base year)" if row.years == "base" else ""), "english")
    ws.freeze_panes(FIRST_ROW, FIRST_VALUE_COL)
    ws.repeat_rows(HEADER_ROW)


COVER_VALUE_WIDTH, VALUE_WIDTH = 26, 22
SOURCE_LINES = 3  # the cover's quote-source cell: its text wraps within the box, this many lines tall


def _write_scalar(page: Page, sheet, placement, styles: Styles, company: Company):
    ws = page.ws
    zh, en = _row_texts(placement, sheet.name)
    page.fit(LABEL_COL, zh, *LABEL_WIDTH)
    page.fit(ENGLISH_COL, en, *ENGLISH_WIDTH)
    page.fixed(FIRST_VALUE_COL, FIRST_VALUE_COL, COVER_VALUE_WIDTH if sheet.name == layout.COVER else VALUE_WIDTH)
    ws.write(TITLE_ROW, LABEL_COL, sheet.title if sheet.name != layout.COVER else f"{company.name} 盈利预测模型",
             styles.plain(bold=True, font_size=16 if sheet.name == layout.COVER else 14))
    subtitle = company.facts.get("source", "") if sheet.name == layout.COVER else company.name
    ws.write(SUBTITLE_ROW, LABEL_COL, subtitle, styles.plain(font_color=GREY))
    for r, row in placement.rows[sheet.name]:
        if row.kind == RowKind.HEADING:
            ws.merge_range(r, LABEL_COL, r, FIRST_VALUE_COL, row.label, styles.plain(bold=True, bg_color=HEADING_FILL))
        elif row.kind in (RowKind.LINE, RowKind.MIRROR):
            line = placement.lines[row.key]
            bold = row.key in _bold(company)
            page.text(r, LABEL_COL, row.label or line.label_zh, "label", bold)
            page.text(r, ENGLISH_COL, line.label_en, "english")
    if sheet.name == layout.COVER:
        home = placement.home
        source = home.get(("refresh_source", None))
        if source is not None:  # a long source (the sample's) wraps inside its box
            page.tall(source.row, SOURCE_LINES)
        fx_row = home.get(("fx_rate", None))
        if fx_row is not None and company.facts.get("quote_currency") == company.facts.get("reporting_currency"):
            ws.set_row(fx_row.row, None, None, {"hidden": True})  # 1 CNY = 1 CNY: nothing to show


def _write_cells(book_sheets, placement, model: Model, styles: Styles, company: Company):
    company_kinds = {y.label: y.kind for y in company.years}
    drivers, cases = _drivers_by_line(company), _drivers_by_case(company)
    check_results = {(c["check"], c["year"]): ("OK" if c["passed"] else "FAIL") for c in model.checks}
    for cell in placement.cells:
        ws = book_sheets[cell.sheet]
        if cell.key.startswith("check:"):
            value = check_results[(cell.key.split(":", 1)[1], cell.year)]
            ws.write_formula(cell.row, cell.col, "=" + cell.formula, styles.get("text", "formula"), value)
            continue
        line = placement.lines[cell.key]
        value = model.value(cell.key, cell.year)
        bold = cell.key in _bold(company)
        if cell.kind == "input":
            # a fact the source note does not print (a price, a share count) is left empty and
            # marked for the analyst, as a value carried for review is
            review = _carried_for_review(cell, company, drivers) or (value is None and cell.key in UNPRINTED_FACTS)
            fmt = styles.get(line.fmt, "review" if review else "input", bold, wrap=cell.key == "refresh_source")
            if (cell.key == "price_date" or line.fmt == "date") and isinstance(value, str):
                ws.write_datetime(cell.row, cell.col, dt.datetime.fromisoformat(value), fmt)
            elif isinstance(value, bool):   # a TRUE/FALSE switch, as Excel's own boolean
                ws.write_boolean(cell.row, cell.col, value, fmt)
            elif value is None:
                ws.write_blank(cell.row, cell.col, None, fmt)
            elif isinstance(value, str):
                ws.write_string(cell.row, cell.col, value, fmt)
            else:
                ws.write_number(cell.row, cell.col, value, fmt)
            validation = None
            if cell.key == SCENARIO_KEY:
                validation = SCENARIO_VALIDATION
            elif cell.sheet == layout.DRIVERS and (line.table == spec.DRIVERS or line.history == "forecast_only"):
                validation = _driver_validation(line, drivers.get(cell.key), company, placement.lines)
            elif cell.sheet == layout.SCENARIOS:  # a case of a driver: the driver's own validation
                validation = _driver_validation(line, cases[cell.key], company, placement.lines)
            elif input_validation(cell.key, company):
                validation = input_validation(cell.key, company)
            elif cell.key == "rating_scheme":
                validation = {"validate": "list", "source": sorted(schemes()), "input_title": "评级体系 Rating scheme",
                              "input_message": "udfs/rating_schemes.toml 中的评级体系。\nA scheme of udfs/rating_schemes.toml."}
            elif cell.key == "previous_rating":
                labels = schemes()[company.scalar_inputs["rating_scheme"]].labels
                validation = {"validate": "list", "source": labels, "input_title": "上次评级 Previous rating",
                              "input_message": "本报告之前的评级；首次评级留空。\nThe rating before this report; empty for a first rating."}
            elif cell.year is None:  # a one-value input (a CAPM input, a benchmark level)
                validation = generic_validation(line, company)
            if cell.key == "terminal_growth" and ("wacc", None) in placement.home:
                # refused in the cell: a growth at or above WACC has no finite perpetuity
                wacc = placement.address("wacc", None, cell.sheet, absolute=True)
                here = layout.cell_name(cell.row, cell.col)
                validation = {"validate": "custom", "value": f"=OR(NOT(ISNUMBER({wacc})),{here}<{wacc})",
                              "input_title": "永续增长率 Terminal growth",
                              "input_message": "永续增长率，须低于 WACC。\nPerpetual growth after the last forecast "
                              "year, decimal; must be below WACC (a value at or above it is refused).",
                              "error_type": "stop", "error_title": "g ≥ WACC",
                              "error_message": "永续增长率须低于 WACC。Terminal growth must be below WACC: the perpetuity would not converge."}
            if validation and review and value is None and cell.key in UNPRINTED_FACTS:
                validation = {**validation, "input_title": "报告未列示 To fill",
                              "input_message": (UNPRINTED_FACTS[cell.key] + " " + validation.get("input_message", ""))[:255]}
            elif validation and review:
                validation = {**validation, "input_title": "待复核 Review",
                              "input_message": with_review(validation.get("input_message", ""))}
            if validation:
                ws.data_validation(cell.row, cell.col, cell.row, cell.col, validation)
        elif cell.kind == "formula" and cell.year is None and company.scalar_inputs.get(cell.key) is not None:
            # The company file gives this one-value line a number (a target price decided
            # elsewhere): it is typed over the formula, as an analyst would, and `check` lists it.
            ws.write_number(cell.row, cell.col, company.scalar_inputs[cell.key], styles.get(line.fmt, "input", False))
        else:
            role = "mirror" if cell.kind == "mirror" else "formula"
            if line.implied and cell.year is not None and company_kinds[cell.year] != "forecast":
                role = "implied"  # what the reported years imply: context for the blue inputs beside it
            if line.fmt == "date" and isinstance(value, str):
                value = excel_serial(value)   # the engine's ISO date, as the serial Excel computes
            ws.write_formula(cell.row, cell.col, "=" + cell.formula, styles.get(line.fmt, role, bold), _cached(value))


def excel_serial(iso_date: str) -> float:
    """An ISO date as Excel's 1900-system serial number."""
    return float((dt.date.fromisoformat(iso_date[:10]) - dt.date(1899, 12, 30)).days)




def _checks_texts(placement, company: Company, found) -> tuple[list[str], list[str]]:
    """Every Chinese and English label the checks sheet shows in its two label columns."""
    checks = {c.key: c for c in company.layout.checks}
    rows = placement.rows[layout.CHECKS]
    zh = [row.label for _, row in rows] + [f.label for f in found or []] + [w.label_zh for w in company.layout.warnings]
    en = [checks[row.key].label_en for _, row in rows] + [w.label_en for w in company.layout.warnings]
    return zh + ["模型校验总体状态 Overall", "审计结果 Audit result"], en


AUDIT_PENDING = ("尚未审计：每次刷新（Refresh 按钮或 python -m addin refresh）写入此处；python -m addin check 只在终端打印。"
                 " Not audited yet: every refresh writes here; check prints to the terminal only.")
VERDICT_WIDTH = 20  # the findings' last column: "否 beyond rounding" in one line


def _write_checks(page: Page, sheet, placement, model: Model, styles: Styles, company: Company, found):
    ws = page.ws
    columns = placement.year_cols[sheet.name]
    zh, en = _checks_texts(placement, company, found)
    page.fit(LABEL_COL, zh, *LABEL_WIDTH)
    page.fit(ENGLISH_COL, en, 30, ENGLISH_WIDTH[1])  # the findings' explanations wrap at this width
    last = placement.checks_blocks.findings_last_col
    page.fixed(FIRST_VALUE_COL, last - 1, 13)
    page.fixed(last, last, VERDICT_WIDTH)
    ws.write(TITLE_ROW, LABEL_COL, sheet.title, styles.plain(bold=True, font_size=14))
    rows = placement.rows[sheet.name]
    first, last_row = rows[0][0], rows[-1][0]
    status_range = (f"{layout.cell_name(first, FIRST_VALUE_COL)}:"
                    f"{layout.cell_name(last_row, FIRST_VALUE_COL + len(columns) - 1)}")
    all_passed = all(c["passed"] for c in model.checks)
    ws.write(SUBTITLE_ROW, LABEL_COL, "模型校验总体状态 Overall", styles.plain(bold=True))
    ws.write_formula(SUBTITLE_ROW, FIRST_VALUE_COL, f'=IF(COUNTIF({status_range},"OK")={len(rows) * len(columns)},"OK","FAIL")',
                     styles.plain(bold=True, align="center"), "OK" if all_passed else "FAIL")
    head = styles.plain(bold=True, font_color="#FFFFFF", bg_color=HEADER_FILL, align="center", text_wrap=True)
    ws.write(HEADER_ROW, LABEL_COL, "预测年度校验", head)
    ws.write(HEADER_ROW, ENGLISH_COL, "Check (forecast years)", head)
    for i, year in enumerate(columns):
        ws.write(HEADER_ROW, FIRST_VALUE_COL + i, year, head)
    checks = {c.key: c for c in company.layout.checks}
    for r, row in rows:
        page.text(r, LABEL_COL, row.label, "label")
        page.text(r, ENGLISH_COL, checks[row.key].label_en, "english")
    for rng in (status_range, layout.cell_name(SUBTITLE_ROW, FIRST_VALUE_COL)):
        ws.conditional_format(rng, {"type": "cell", "criteria": "==", "value": '"OK"',
                                    "format": styles.plain(bg_color=OK_FILL, font_color=GREEN)})
        ws.conditional_format(rng, {"type": "cell", "criteria": "==", "value": '"FAIL"',
                                    "format": styles.plain(bg_color=FAIL_FILL, font_color="#9C0006")})

    blocks = placement.checks_blocks
    # The audit block: written by every headless refresh with the same logic as `check`. Its
    # lines are merged across the table, so a long one is cut at the table's edge, never printed
    # beyond it (a refresh writes them; no row height can be known here).
    ws.merge_range(blocks.audit_title, LABEL_COL, blocks.audit_title, blocks.findings_last_col,
                   "审计 Audit（每次刷新时由 Refresh 写入，与 python -m addin check 同一逻辑）",
                   styles.plain(bold=True, bg_color=HEADING_FILL))
    ws.write(blocks.audit_summary, LABEL_COL, "审计结果 Audit result", styles.get("text", "label", True))
    pending = styles.plain(text_wrap=True, valign="top")
    ws.merge_range(blocks.audit_summary, ENGLISH_COL, blocks.audit_summary, blocks.findings_last_col, AUDIT_PENDING, pending)
    page.tall(blocks.audit_summary, 2)
    for r in blocks.audit_items:
        ws.merge_range(r, ENGLISH_COL, r, blocks.findings_last_col, "", styles.plain(font_color=GREY))

    # The report's disagreements with itself, computed when the template was built.
    ws.merge_range(blocks.findings_title, LABEL_COL, blocks.findings_title, blocks.findings_last_col,
                   "报告自身不一致（由报告印刷数字计算）The report disagrees with itself",
                   styles.plain(bold=True, bg_color=HEADING_FILL))
    for col, text in enumerate(FINDINGS_HEADERS, start=LABEL_COL):
        ws.write(blocks.findings_header, col, text, head)
    page.tall(blocks.findings_header, 2)
    # beyond rounding first, as the layout placed (and named) the two groups' rows
    ordered = sorted(found or [], key=lambda f: (f.within_rounding, f.table))
    for r, finding in zip([*blocks.findings_beyond, *blocks.findings_within], ordered):
        number = styles.plain(num_format="#,##0.00;-#,##0.00" if finding.decimals else "#,##0;-#,##0", align="right",
                              valign="top")
        cells = {"year": (finding.year, styles.plain(align="center", valign="top")),
                 "printed": (finding.printed, number), "computed": (finding.computed, number),
                 "difference": (finding.printed - finding.computed, number),
                 "verdict": ("是 within rounding" if finding.within_rounding else "否 beyond rounding",
                             styles.plain(font_color=GREY if finding.within_rounding else "#9C0006",
                                          bold=not finding.within_rounding, valign="top", indent=1))}
        for col, field in enumerate(layout.FINDINGS_FIELDS, start=LABEL_COL):
            if field == "label":
                page.text(r, col, finding.label, valign="top")
            elif field == "explanation":
                page.text(r, col, f"{finding.table}: {finding.explanation}", font_color=GREY, italic=True, valign="top")
            else:
                ws.write(r, col, *cells[field])


# The findings table's header, by layout.FINDINGS_FIELDS.
FINDINGS_HEADERS = ("项目", "Table / explanation", "年份", "报告数 Printed", "计算数 Computed", "差异 Diff", "可由四舍五入解释")
WARN_FILL = "#FFEB9C"  # Excel's neutral amber: a warning is not a failure


def _write_warnings(page: Page, placement, model: Model, styles: Styles, company: Company):
    """The sanity warnings under everything else on the 校验 sheet: one ER_WARN formula per
    warning and forecast year on the layout's formula, with its bounds as blue inputs beside
    them (an empty bound does not bind), and an overall status. Kept apart from the checks: a
    warning does not make the model wrong, it makes it implausible."""
    block = placement.checks_blocks.warnings
    if block is None:
        return
    ws = page.ws
    warnings = company.layout.warnings
    sheet = layout.CHECKS
    columns = placement.year_cols[sheet]
    results = {(w["warning"], w["year"]): w["status"] for w in model.warnings}
    min_col, max_col = block.bounds
    ws.merge_range(block.title, LABEL_COL, block.title, max_col, "合理性提示 Sanity warnings（勾稽无误但不合理的数字；不影响校验状态）",
                   styles.plain(bold=True, bg_color=HEADING_FILL))
    head = styles.plain(bold=True, font_color="#FFFFFF", bg_color=HEADER_FILL, align="center")
    for col, text in [(LABEL_COL, "提示（预测年度）"), (ENGLISH_COL, "Warning (forecast years)")] + \
            [(FIRST_VALUE_COL + i, y) for i, y in enumerate(columns)] + [(min_col, "下限 Min"), (max_col, "上限 Max")]:
        ws.write(block.header, col, text, head)
    for r, warning in zip(block.rows, warnings):
        page.text(r, LABEL_COL, warning.label_zh, "label")
        page.text(r, ENGLISH_COL, warning.label_en, "english")
        for col, bound in ((min_col, warning.minimum), (max_col, warning.maximum)):
            if bound is None:
                ws.write_blank(r, col, None, styles.get("money2", "input", False))
            else:
                ws.write_number(r, col, bound, styles.get("money2", "input", False))
        low, high = layout.cell_name(r, min_col, True), layout.cell_name(r, max_col, True)
        for j, year in enumerate(columns):
            value = fx.to_excel(fx.parse(warning.value), layout.translator(placement, sheet, year), layout.excel_name)
            ws.write_formula(r, FIRST_VALUE_COL + j, f"={layout.excel_name('warn')}({value},{low},{high})",
                             styles.plain(align="center"), results[(warning.key, year)])
    status_range = (f"{layout.cell_name(block.rows[0], FIRST_VALUE_COL)}:"
                    f"{layout.cell_name(block.rows[-1], FIRST_VALUE_COL + len(columns) - 1)}")
    ws.write(block.status, LABEL_COL, "合理性提示总体状态 Overall", styles.plain(bold=True))
    ws.write_formula(block.status, FIRST_VALUE_COL, f'=IF(COUNTIF({status_range},"WARN")=0,"OK","WARN")',
                     styles.plain(bold=True, align="center"), "WARN" if model.triggered_warnings else "OK")
    for rng in (status_range, layout.cell_name(block.status, FIRST_VALUE_COL)):
        ws.conditional_format(rng, {"type": "cell", "criteria": "==", "value": '"OK"',
                                    "format": styles.plain(bg_color=OK_FILL, font_color=GREEN)})
        ws.conditional_format(rng, {"type": "cell", "criteria": "==", "value": '"WARN"',
                                    "format": styles.plain(bg_color=WARN_FILL, font_color="#9C5700")})


EXAMPLE_BANNER = ("示例估值假设 Example assumptions: the inputs below are an example, each with its source beside it; "
                  "replace them with your own view before publishing")
SOURCE_COL = FIRST_VALUE_COL + 1   # where the 估值 sheet says where an input comes from
RANGE_FACTORS = (0.8, 1.2)         # a multiple method's range on the football field: its multiple -/+ 20%


def _write_valuation_extras(book, ws, placement, model: Model, company: Company, styles: Styles, grids: dict):
    """The 估值 sheet beyond its placed rows: where each input comes from (and, for example
    assumptions, a banner saying so), the DCF's convention, and the football field: each
    method's range from its sensitivity, the blend and the current price, as a chart."""
    write_sources(ws, placement, layout.VALUATION, company, styles, notes=True)
    _write_football_field(book, ws, placement, model, styles, grids)


def write_sources(ws, placement, sheet: str, company: Company, styles: Styles, notes: bool = False):
    """Beside each input of a one-value sheet, where its value comes from (the company file's
    [valuation.sources]; with `notes`, a formula line's note where it has no source), under a
    banner when the inputs are example assumptions."""
    sourced = [(r, row.key) for r, row in placement.rows[sheet] if row.kind == RowKind.LINE
               and (row.key in company.valuation_sources or (notes and placement.lines[row.key].note))]
    if not sourced:
        return
    ws.set_column(SOURCE_COL, SOURCE_COL, 70)
    if company.example_valuation:
        ws.merge_range(SUBTITLE_ROW + 1, LABEL_COL, SUBTITLE_ROW + 1, SOURCE_COL, EXAMPLE_BANNER,
                       styles.plain(bold=True, font_color="#9C5700", bg_color=WARN_FILL))
    head = styles.plain(bold=True, font_color="#FFFFFF", bg_color=HEADER_FILL, align="center")
    ws.write(HEADER_ROW, SOURCE_COL, "来源 Source" + ("（示例估值假设）" if company.example_valuation else ""), head)
    for r, key in sourced:
        ws.write_string(r, SOURCE_COL, company.valuation_sources.get(key) or placement.lines[key].note,
                        styles.plain(font_color=GREY, italic=True))


def _football_rows(placement, model: Model, grids: dict) -> list[tuple[str, str, object, str, object]]:
    """(label, low formula, low value, high formula, high value) per method with a target, then the
    blend and the current price (a sliver around each): a multiple method's range is its target
    at the multiple -/+ 20% (the P/E grid's rows), the DCF's the lowest and highest point of its
    grid within one point of WACC and of growth (the inner 5 x 5); #N/A, not drawn, without a target."""
    v = model.value
    here = layout.VALUATION
    cell = lambda key: placement.address(key, None, here, absolute=True)  # noqa: E731
    out = []
    sens = layout.quote_sheet(layout.SENSITIVITY)
    for target in spec.valuation_plan(model.company.layout).targets:
        label = placement.lines[target].label_zh.replace(" 目标价", "").replace("目标价", "")
        value = v(target)
        if target == "dcf_target" and "dcf" in grids:
            first_row, first_col, last_row, last_col = grids["dcf"]
            inner = (f"{sens}!{layout.cell_name(first_row + 1, first_col + 1, True)}:"
                     f"{layout.cell_name(last_row - 1, last_col - 1, True)}")
            numbers = [dcf_point(model, _add(v("wacc"), w), _across(model, j))
                       for w in layout.WACC_STEPS[1:-1] for j in range(1, len(layout.GROWTH_STEPS) - 1)]
            numbers = [n for n in numbers if isinstance(n, float)]
            low_f = f"IF(COUNTIF({inner},\">0\")=0,NA(),IFERROR(MIN({inner}),NA()))"
            high_f = f"IF(COUNTIF({inner},\">0\")=0,NA(),IFERROR(MAX({inner}),NA()))"
            low, high = (min(numbers), max(numbers)) if numbers and isinstance(value, float) else ("#N/A", "#N/A")
        else:
            factor_low, factor_high = RANGE_FACTORS
            low_f = f"IF(ISNUMBER({cell(target)}),{cell(target)}*{factor_low!r},NA())"
            high_f = f"IF(ISNUMBER({cell(target)}),{cell(target)}*{factor_high!r},NA())"
            linear = target in ("pe_target", "pb_target", "ps_target")
            if not linear:   # EV/EBITDA and the sum of the parts: the bridge makes them not linear in the multiple
                low_f, high_f = (_scaled_target_formula(placement, model, target, f) for f in RANGE_FACTORS)
            low, high = ((value * factor_low, value * factor_high) if linear else
                         tuple(_scaled_target_value(model, target, f) for f in RANGE_FACTORS)) \
                if isinstance(value, float) else ("#N/A", "#N/A")
        out.append((label, low_f, low, high_f, high))
    for key, label in (("target_price_blend", "加权目标价 Blend"), ("price", "当前股价 Price")):
        ref = cell(key)
        value = v(key)
        out.append((label, f"IF(ISNUMBER({ref}),{ref}*0.995,NA())", value * 0.995 if isinstance(value, float) else "#N/A",
                    f"IF(ISNUMBER({ref}),{ref}*1.005,NA())", value * 1.005 if isinstance(value, float) else "#N/A"))
    return out


def _across(model: Model, j: int):
    """The DCF grid's column value j: the exit multiple's step when one is used, else growth's."""
    v = model.value
    if isinstance(v("exit_multiple"), float):
        return v("exit_multiple") + layout.EXIT_STEPS[j]
    return _add(v("terminal_growth"), layout.GROWTH_STEPS[j])


_SCALED_TARGETS = {  # a non-linear method's target with its multiple(s) scaled, in the formula language
    "evebitda_target": ("ev_ebitda_target(evebitda_multiple * {f}, at(val_ebitda, evebitda_year), at(val_net_cash, evebitda_year), "
                        "at(val_minorities, evebitda_year), at(val_shares, evebitda_year), fx_rate, "
                        "at(val_investments, evebitda_year))"),
    "sotp_target": ("equity_per_share(total(column({values})) * {f}, at(val_net_cash, sotp_year), at(val_minorities, sotp_year), "
                    "at(val_shares, sotp_year), fx_rate, at(val_investments, sotp_year))"),
}


def _scaled_text(model: Model, target: str, factor: float) -> str:
    values = ", ".join(l.key for l in model.lines if l.key.startswith("sotp_") and l.key.endswith("_value"))
    return _SCALED_TARGETS[target].format(f=repr(factor), values=values)


def _scaled_target_formula(placement, model: Model, target: str, factor: float) -> str:
    text = _scaled_text(model, target, factor)
    excel = fx.to_excel(fx.parse(text), layout.translator(placement, layout.VALUATION, None), layout.excel_name,
                        layout._Ranges(placement, layout.VALUATION))
    ref = placement.address(target, None, layout.VALUATION, absolute=True)
    return f"IF(ISNUMBER({ref}),{excel},NA())"


def _scaled_target_value(model: Model, target: str, factor: float):
    from udfs.engine import _Vectors
    from udfs.functions import GUARDED
    values = model.values
    lookup = lambda key, lag: values.scalars.get(key) if key in values.scalars else None  # noqa: E731
    result = fx.evaluate(fx.parse(_scaled_text(model, target, factor)), lookup, GUARDED, vectors=_Vectors(values, values.years))
    return result if isinstance(result, float) else "#N/A"


def _write_football_field(book, ws, placement, model: Model, styles: Styles, grids: dict):
    rows = _football_rows(placement, model, grids)
    top = max(r for r, _ in placement.rows[layout.VALUATION]) + 3
    head = styles.plain(bold=True, font_color="#FFFFFF", bg_color=HEADER_FILL, align="center")
    ws.merge_range(top, LABEL_COL, top, SOURCE_COL, "估值区间（足球场图） Football field: each method's range from its "
                   "sensitivity (multiples -/+20%, DCF WACC and growth -/+1 point), the blend and the price",
                   styles.plain(bold=True, bg_color=HEADING_FILL))
    for col, text in enumerate(("方法 Method", "低 Low", "高 High", "区间 Range")):
        ws.write(top + 1, LABEL_COL + col, text, head)
    price = styles.get("price", "formula")
    first = top + 2
    for i, (label, low_f, low, high_f, high) in enumerate(rows):
        r = first + i
        ws.write_string(r, LABEL_COL, label, styles.get("text", "label"))
        ws.write_formula(r, ENGLISH_COL, "=" + low_f, price, low)
        ws.write_formula(r, FIRST_VALUE_COL, "=" + high_f, price, high)
        width = high - low if isinstance(high, float) and isinstance(low, float) else "#N/A"
        ws.write_formula(r, SOURCE_COL, f"={layout.cell_name(r, FIRST_VALUE_COL)}-{layout.cell_name(r, ENGLISH_COL)}", price,
                         width)
    last = first + len(rows) - 1
    chart = book.add_chart({"type": "bar", "subtype": "stacked"})
    sheet = layout.VALUATION
    chart.add_series({"name": "低 Low", "categories": [sheet, first, LABEL_COL, last, LABEL_COL],
                      "values": [sheet, first, ENGLISH_COL, last, ENGLISH_COL], "fill": {"none": True}, "border": {"none": True}})
    chart.add_series({"name": "区间 Range", "categories": [sheet, first, LABEL_COL, last, LABEL_COL],
                      "values": [sheet, first, SOURCE_COL, last, SOURCE_COL], "fill": {"color": "#2F5597"},
                      "gap": 60, "points": [None] * (len(rows) - 2) + [{"fill": {"color": "#C55A11"}},   # the blend
                                                                       {"fill": {"color": "#595959"}}]})  # the price
    chart.set_title({"name": "估值区间 Football field（交易货币 trading currency）", "name_font": {"size": 11, "name": FONT}})
    chart.set_y_axis({"reverse": True, "num_font": {"name": FONT, "size": 9}})
    chart.set_x_axis({"num_format": "0.00", "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}},
                      "num_font": {"name": FONT, "size": 9}})
    chart.set_legend({"none": True})
    chart.set_size({"width": 620, "height": 60 + 34 * len(rows)})
    ws.insert_chart(layout.cell_name(FIRST_ROW, SOURCE_COL + 1), chart)


def _write_scheme_table(ws, placement, company: Company, styles: Styles):
    """The rating scheme as a table under the rating block: band, range, and the report's wording."""
    scheme = schemes()[company.scalar_inputs["rating_scheme"]]
    r = max(row for row, _ in placement.rows[layout.RATING]) + 3
    head = styles.plain(bold=True, font_color="#FFFFFF", bg_color=HEADER_FILL, align="center")
    ws.merge_range(r - 1, LABEL_COL, r - 1, FIRST_VALUE_COL, f"评级体系 {scheme.name}（{scheme.horizon}，"
                   f"{'相对基准' if scheme.basis == 'excess' else '绝对收益'}）", styles.plain(bold=True, bg_color=HEADING_FILL))
    for col, text in enumerate(("评级 Rating", "区间 Range (excess return)", "基准 Benchmarks")):
        ws.write(r, col, text, head)
    benchmarks = "；".join(f"{market}: {name}" for market, name in scheme.benchmarks.items())
    for i, band in enumerate(scheme.bands, start=1):
        low = f"{band.min_pct:g}%" if band.min_pct is not None else "−∞"
        high = f"{band.max_pct:g}%" if band.max_pct is not None else "+∞"
        ws.write(r + i, LABEL_COL, band.label, styles.plain(bold=True))
        ws.write(r + i, ENGLISH_COL, f"{low} ~ {high}", styles.plain())
        ws.write(r + i, FIRST_VALUE_COL, benchmarks if i == 1 else "", styles.plain(font_color=GREY))
    ws.write(r + len(scheme.bands) + 1, LABEL_COL, scheme.unrated, styles.plain(bold=True))
    ws.write(r + len(scheme.bands) + 1, ENGLISH_COL, "inputs missing or invalid", styles.plain())
    ws.write(r + len(scheme.bands) + 2, LABEL_COL,
             "边界：outer 表示恰在阈值上的收益归入离零更远的一档（以上/以下含本数）；inner 相反。", styles.plain(font_color=GREY))


def _write_blueprint(ws, placement, labels: dict):
    """What the template put where: every input and formula cell with its line, year and formula.
    `check` compares a model against it to find numbers typed over formulas and edited formulas;
    `diff` and `export` use it to know inputs from outputs. Very hidden: not for the analyst."""
    for col, title in enumerate(BLUEPRINT_COLUMNS):
        ws.write_string(0, col, title)
    for i, cell in enumerate(sorted(placement.cells, key=lambda c: (c.sheet, c.row, c.col)), start=1):
        fields = {"sheet": cell.sheet, "cell": layout.cell_name(cell.row, cell.col), "kind": cell.kind, "key": cell.key,
                  "year": cell.year or "", "formula": cell.formula or "", "label": labels.get((cell.sheet, cell.row), ""),
                  "name": cell.name or ""}
        for col, title in enumerate(BLUEPRINT_COLUMNS):
            ws.write_string(i, col, fields[title])
    ws.very_hidden()


def _write_sensitivity(ws, placement, model: Model, company: Company, styles: Styles) -> tuple[dict, dict]:
    """Three two-way tables. Target price by WACC x terminal growth (or x exit multiple, when
    the DCF uses one) and by P/E multiple x EPS year are formulas on the 估值 sheet's inputs,
    each point the sheet's own DCF (or P/E) with those two inputs changed, so they follow the
    analyst's valuation live; EPS by two drivers re-runs the whole model per point, which a
    worksheet cannot do, so it is the Python engine's answer when the template was built (or
    `python -m addin show --sensitivity`), written as values and said so. Each grid is coloured
    as a heat map. Returns (the defined names of the engine-run table, {grid: its range})."""
    from udfs.registry import guarded
    from .model import default_sensitivity, driver_sensitivity
    names: dict = {}  # the defined names of the engine-run table, which refresh recomputes
    grids: dict = {}  # "dcf", "pe", "eps" -> (first row, first col, last row, last col)

    ws.set_column(LABEL_COL, LABEL_COL, 30)
    ws.set_column(ENGLISH_COL, ENGLISH_COL + 8, 12)
    ws.write(TITLE_ROW, LABEL_COL, "敏感性分析 Sensitivity", styles.plain(bold=True, font_size=14))
    ws.write(SUBTITLE_ROW, LABEL_COL, company.name, styles.plain(font_color=GREY))
    head = styles.plain(bold=True, font_color="#FFFFFF", bg_color=HEADER_FILL, align="center")
    home = placement.home
    # the valuation inputs the tables read, as absolute references from this sheet (not names:
    # an analyst's own name "shares" or "wacc" must not clash with the template's)
    inputs = {key: placement.address(key, None, layout.SENSITIVITY, absolute=True)
              for key in DCF_GRID_INPUTS + ("fx_rate", "pe_multiple") if (key, None) in home}
    call = {name: guarded(name) for name in ("ER_IF_GIVEN", "ER_PE_TARGET")}
    v = model.value
    number = styles.get("price", "formula")
    r = FIRST_ROW

    def title(row, text):
        ws.merge_range(row, LABEL_COL, row, ENGLISH_COL + 7, text, styles.plain(bold=True, bg_color=HEADING_FILL))

    forecast = [y.label for y in company.forecast_years]
    if "wacc" in inputs:
        title(r, "DCF 目标价：WACC（行）× 永续增长率或退出倍数（列），每点即估值表的 DCF 只改这两项 "
                 "DCF target: WACC down, terminal growth (or the exit multiple, when used) across")
        rows = {key: _row_range(placement, key, forecast) for key in ("val_fcff", "val_period_end")}
        metric = placement.address("val_ebitda", forecast[-1], layout.SENSITIVITY, True) \
            if ("val_ebitda", forecast[-1]) in home else '""'
        header, first = r + 1, r + 2
        exit_given = isinstance(v("exit_multiple"), float)
        exit_ref, g_ref = inputs["exit_multiple"], inputs["terminal_growth"]
        ws.write_formula(header, LABEL_COL, f'=IF(ISNUMBER({exit_ref}),"WACC \\ 退出倍数 exit","WACC \\ g")', head,
                         "WACC \\ 退出倍数 exit" if exit_given else "WACC \\ g")
        axis_format = styles.plain(bold=True, num_format='[<1]0.0%;0.0"x"', align="right")
        helper = styles.plain(font_color=GREY, italic=True, num_format="#,##0")
        columns = []
        for j, (g_step, exit_step) in enumerate(zip(layout.GROWTH_STEPS, layout.EXIT_STEPS)):
            value = (v("exit_multiple") + exit_step if exit_given
                     else call["ER_IF_GIVEN"](v("terminal_growth"), _add(v("terminal_growth"), g_step)))
            ws.write_formula(header, ENGLISH_COL + j, f"=IF(ISNUMBER({exit_ref}),{exit_ref}+{exit_step!r},"
                             f"ER_IF_GIVEN({g_ref},{g_ref}+{g_step!r}))", axis_format, _cached(value))
            columns.append((layout.cell_name(header, ENGLISH_COL + j, True), value))
        for i, step in enumerate(layout.WACC_STEPS):
            row = first + i
            w_value = call["ER_IF_GIVEN"](v("wacc"), _add(v("wacc"), step))
            ws.write_formula(row, LABEL_COL, f"=ER_IF_GIVEN({inputs['wacc']},{inputs['wacc']}+{step!r})",
                             styles.get("pct", "formula", True), _cached(w_value))
            w_ref = layout.cell_name(row, LABEL_COL, True)
            for j, (c_ref, c_value) in enumerate(columns):
                # each point's EV in a helper cell beside the grid, which the point reads: the native
                # edition repeats an argument wherever its template names it, and the EV written out
                # inside the bridge and the target basis would exceed the 8,192 characters Excel allows
                ev_col = ENGLISH_COL + len(columns) + 1 + j
                ws.write_formula(row, ev_col, "=" + dcf_ev_formula(inputs, rows, metric, w_ref, c_ref), helper,
                                 _cached(dcf_point(model, w_value, c_value, ev_only=True)))
                formula = dcf_point_formula(inputs, layout.cell_name(row, ev_col, True), w_ref, c_ref)
                ws.write_formula(row, ENGLISH_COL + j, "=" + formula, number, _cached(dcf_point(model, w_value, c_value)))
        ws.write(header, ENGLISH_COL + len(columns) + 1, "EV（辅助） EV per point (helper)", styles.plain(font_color=GREY, italic=True))
        grids["dcf"] = (first, ENGLISH_COL, first + len(layout.WACC_STEPS) - 1, ENGLISH_COL + len(columns) - 1)
        r = first + len(layout.WACC_STEPS) + 1

    if "pe_multiple" in inputs and all(("val_eps", y) in home for y in forecast):
        title(r, "P/E 目标价：倍数（行）× 预测年度每股收益（列） P/E target price: multiple down, EPS year across")
        header, first = r + 1, r + 2
        ws.write(header, LABEL_COL, "P/E \\ EPS", head)
        eps = [(placement.address("val_eps", y, layout.SENSITIVITY, True), v("val_eps", y)) for y in forecast]
        for j, year in enumerate(forecast):
            ws.write(header, ENGLISH_COL + j, year, head)
        for i, factor in enumerate(layout.MULTIPLE_FACTORS):
            row = first + i
            m_value = call["ER_IF_GIVEN"](v("pe_multiple"), _mul(v("pe_multiple"), factor))
            ws.write_formula(row, LABEL_COL, f"=ER_IF_GIVEN({inputs['pe_multiple']},{inputs['pe_multiple']}*{factor!r})",
                             styles.get("multiple", "formula", True), _cached(m_value))
            m_ref = layout.cell_name(row, LABEL_COL, True)
            for j, (e_ref, e_value) in enumerate(eps):
                value = call["ER_IF_GIVEN"](m_value, call["ER_PE_TARGET"](m_value, e_value, v("fx_rate")))
                ws.write_formula(row, ENGLISH_COL + j, f"=ER_IF_GIVEN({m_ref},ER_PE_TARGET({m_ref},{e_ref},{inputs['fx_rate']}))",
                                 number, _cached(value))
        grids["pe"] = (first, ENGLISH_COL, first + len(layout.MULTIPLE_FACTORS) - 1, ENGLISH_COL + len(forecast) - 1)
        r = first + len(layout.MULTIPLE_FACTORS) + 1

    axes = default_sensitivity(company)
    if axes and any(l.key == "val_eps" for l in model.lines):
        a, xs, b, ys = axes
        grid = driver_sensitivity(company, a, xs, b, ys, "val_eps", forecast[0])
        label = {k: next(l.label_zh for l in model.lines if l.key == k) for k in (a, b)}
        title(r, f"{forecast[0]} 每股收益：{label[a]}驱动（行）× {label[b]}驱动（列） EPS by two drivers, each applied to "
                 "every forecast year")
        header, first = r + 1, r + 2
        ws.write(header, LABEL_COL, f"{a} \\ {b}", head)
        for j, y_value in enumerate(ys):  # the steps are the analyst's to change: inputs
            ws.write_number(header, ENGLISH_COL + j, y_value, styles.get("pct", "input", True))
        for i, x_value in enumerate(xs):
            ws.write_number(first + i, LABEL_COL, x_value, styles.get("pct", "input", True))
            for j, value in enumerate(grid[i]):
                if isinstance(value, float):
                    ws.write_number(first + i, ENGLISH_COL + j, value, styles.get("eps", "formula"))
                else:
                    ws.write_string(first + i, ENGLISH_COL + j, str(value), styles.get("eps", "formula"))
        ws.write(first + len(xs), LABEL_COL, "每次刷新（按钮或 python -m addin refresh）由 Python 引擎按工作簿当前的驱动逐点重算整个模型",
                 styles.plain(font_color=GREY, italic=True))
        grids["eps"] = (first, ENGLISH_COL, first + len(xs) - 1, ENGLISH_COL + len(ys) - 1)
        sheet = layout.quote_sheet(layout.SENSITIVITY)
        names.update({
            layout.SENSITIVITY_GRID: f"{sheet}!{layout.cell_name(first, ENGLISH_COL, True)}:"
                              f"{layout.cell_name(first + len(xs) - 1, ENGLISH_COL + len(ys) - 1, True)}",
            layout.SENSITIVITY_ROWS: f"{sheet}!{layout.cell_name(first, LABEL_COL, True)}:{layout.cell_name(first + len(xs) - 1, LABEL_COL, True)}",
            layout.SENSITIVITY_COLS: f"{sheet}!{layout.cell_name(header, ENGLISH_COL, True)}:"
                              f"{layout.cell_name(header, ENGLISH_COL + len(ys) - 1, True)}",
            layout.SENSITIVITY_SPEC: '="' + "|".join((a, b, "val_eps", forecast[0])) + '"',
        })
    for first_row, first_col, last_row, last_col in grids.values():   # a heat map: low red, high green
        ws.conditional_format(first_row, first_col, last_row, last_col,
                              {"type": "3_color_scale", "min_color": "#F8696B", "mid_color": "#FFEB84", "max_color": "#63BE7B"})
    return names, grids  # names: empty when the company has fewer than two rate drivers


# The 估值 inputs a DCF grid point reads besides the two it varies.
DCF_GRID_INPUTS = ("wacc", "terminal_growth", "mid_year_switch", "exit_multiple", "bridge_net_cash", "bridge_minorities",
                   "bridge_investments", "bridge_shares", "dcf_target_basis", "cost_of_equity", "rating_horizon",
                   "dividends_in_horizon")


def _row_range(placement, key: str, years: list[str]) -> str:
    cells = [placement.home[(key, y)] for y in years]
    return (f"{layout.quote_sheet(cells[0].sheet)}!{layout.cell_name(cells[0].row, cells[0].col, True)}:"
            f"{layout.cell_name(cells[-1].row, cells[-1].col, True)}")


def dcf_ev_formula(inputs: dict, rows: dict, metric: str, w_ref: str, c_ref: str) -> str:
    """The sheet's DCF EV at the price date at WACC `w_ref` and, across, terminal growth or, when
    the DCF uses an exit multiple, the exit multiple `c_ref`: every other input as the sheet has it."""
    exit_ref, g_ref = inputs["exit_multiple"], inputs["terminal_growth"]
    ev = (f"ER_DCF_EV({rows['val_fcff']},{rows['val_period_end']},{w_ref},IF(ISNUMBER({exit_ref}),{g_ref},{c_ref}),"
          f"{inputs['mid_year_switch']},IF(ISNUMBER({exit_ref}),{c_ref},\"\"),{metric})")
    return f"ER_IF_GIVEN({w_ref},ER_IF_GIVEN({c_ref},{ev}))"


def dcf_point_formula(inputs: dict, ev: str, w_ref: str, c_ref: str) -> str:
    """The sheet's DCF target (估值: the bridge at the nearest balance, per diluted share, on the
    target basis) from the EV in cell `ev` (`dcf_ev_formula` at the same WACC `w_ref` and growth
    or exit multiple `c_ref`)."""
    dividends = inputs.get("dividends_in_horizon", "0")
    value = (f"ER_EQUITY_PER_SHARE({ev},{inputs['bridge_net_cash']},{inputs['bridge_minorities']},{inputs['bridge_shares']},"
             f"{inputs['fx_rate']},{inputs['bridge_investments']})")
    target = (f"ER_DCF_TARGET({value},{inputs['dcf_target_basis']},{inputs['cost_of_equity']},{inputs['rating_horizon']},"
              f"{dividends})")
    return f"ER_IF_GIVEN({w_ref},ER_IF_GIVEN({c_ref},{target}))"


def dcf_point(model: Model, wacc, across, ev_only: bool = False):
    """`dcf_point_formula`'s value (`dcf_ev_formula`'s with `ev_only`), by the same functions, on
    the model's values."""
    from udfs.registry import guarded
    f = {name: guarded(name) for name in ("ER_IF_GIVEN", "ER_DCF_EV", "ER_EQUITY_PER_SHARE", "ER_DCF_TARGET")}
    v = model.value
    forecast = [y.label for y in model.company.forecast_years]
    exit_given = isinstance(v("exit_multiple"), float)
    ev = f["ER_DCF_EV"]([[v("val_fcff", y) for y in forecast]], [[v("val_period_end", y) for y in forecast]], wacc,
                        v("terminal_growth") if exit_given else across, v("mid_year_switch"), across if exit_given else "",
                        v("val_ebitda", forecast[-1]) if any(l.key == "val_ebitda" for l in model.lines) else "")
    if ev_only:
        return f["ER_IF_GIVEN"](wacc, f["ER_IF_GIVEN"](across, ev))
    value = f["ER_EQUITY_PER_SHARE"](ev, v("bridge_net_cash"), v("bridge_minorities"), v("bridge_shares"), v("fx_rate"),
                                     v("bridge_investments"))
    dividends = v("dividends_in_horizon") if any(l.key == "dividends_in_horizon" for l in model.lines) else 0.0
    target = f["ER_DCF_TARGET"](value, v("dcf_target_basis"), v("cost_of_equity"), v("rating_horizon"), dividends)
    return f["ER_IF_GIVEN"](wacc, f["ER_IF_GIVEN"](across, target))


def _add(value, step):
    return value + step if isinstance(value, float) else value


def _mul(value, factor):
    return value * factor if isinstance(value, float) else value


SOURCE_COLUMNS = ("part", "file", "text")
SOURCE_CHUNK = 30000  # an Excel cell holds at most 32,767 characters


def _write_source(ws, company: Company):
    """The company and layout files the model was built from, verbatim and in order, so that
    `roll` can rebuild the model for a new year window from the workbook alone. Very hidden."""
    for col, title in enumerate(SOURCE_COLUMNS):
        ws.write_string(0, col, title)
    row = 1
    for part, path in (("company", company.path), ("layout", company.layout.path)):
        text = path.read_text(encoding="utf-8")
        for start in range(0, max(len(text), 1), SOURCE_CHUNK):
            ws.write_string(row, 0, part)
            ws.write_string(row, 1, path.name)
            ws.write_string(row, 2, text[start:start + SOURCE_CHUNK])
            row += 1
    ws.very_hidden()


def _row_labels(placement) -> dict:
    """(sheet, row) -> the Chinese label written in column A of that row."""
    labels = {}
    for sheet_name, rows in placement.rows.items():
        for r, row in rows:
            if row.kind in (RowKind.LINE, RowKind.MIRROR):
                labels[(sheet_name, r)] = row.label or placement.lines[row.key].label_zh
            elif row.kind == RowKind.CHECK:
                labels[(sheet_name, r)] = row.label
    return labels


def _write_conf(ws, styles: Styles):
    """xlwings' standalone module reads this sheet: keys in column A from A1, values in B. Hidden
    (not very hidden: the analyst unhides it to set 'Quotes Source'), so it never prints; xlwings
    finds it by name whether it shows or not (its VBA GetConfigFromSheet reads
    wb.Sheets("xlwings.conf"), its Python read_config_sheet book.sheets["xlwings.conf"])."""
    ws.write_string(0, 0, "UDF Modules")
    ws.write_string(0, 1, UDF_MODULE)
    ws.write_string(1, 0, "Use UDF Server")
    ws.write_boolean(1, 1, True)
    ws.write_string(0, 3, "xlwings settings for this workbook: the Python module of the ER_ functions, and one "
                          "Python process shared by the functions and the Refresh button. Add a key in column A and its "
                          "value in B: Quotes Source, Quotes Max Age Days, Quotes Accept Move, Quotes Accept Older, "
                          "Backups, Estimates DB.", styles.plain(font_color=GREY))
    ws.set_column(0, 0, 18)
    ws.set_column(1, 1, 12)
    ws.hide()


CHART_COLUMNS, CHART_COLUMN_WIDTH, CHART_SIZE = 10, 9.0, (600, 340)  # the cover chart's own columns, so every reader sizes it alike


def _write_cover_extras(book, page: Page, placement, company: Company, styles: Styles):
    ws = page.ws
    gap, first_chart_col = FIRST_VALUE_COL + 1, FIRST_VALUE_COL + 2
    page.fixed(gap, gap, 2)
    page.fixed(first_chart_col, first_chart_col + CHART_COLUMNS - 1, CHART_COLUMN_WIDTH)
    ws.insert_button(layout.cell_name(FIRST_ROW, first_chart_col), {
        "macro": REFRESH_MACRO, "caption": "Refresh 刷新", "width": 150, "height": 36,
        "description": "Fetch market inputs, recompute the model and re-run the checks"})
    last_row = max(r for r, _ in placement.rows[layout.COVER])
    ws.write(last_row + 2, LABEL_COL, "模板版本", styles.get("text", "label"))
    ws.write(last_row + 2, ENGLISH_COL, "Template version", styles.get("text", "english"))
    ws.write_string(last_row + 2, FIRST_VALUE_COL, TEMPLATE_VERSION, styles.plain(align="right"))
    # Both lines name the button, so a copy without it (export) drops them with the button.
    ws.write(last_row + 3, LABEL_COL, "点击“Refresh 刷新”按钮：取行情、重算模型、重跑校验；行情来源等设置在隐藏的 xlwings.conf 表"
             "（右键工作表标签 → 取消隐藏）", styles.plain(font_color=GREY))
    ws.write(last_row + 4, LABEL_COL, "Refresh 刷新 reads its settings (Quotes Source, …) from the hidden xlwings.conf sheet: "
             "right-click a sheet tab → Unhide", styles.plain(font_color=GREY, italic=True))

    series = {name: _chart_series(keys, placement, company) for name, keys in
              (("columns", company.layout.chart_segments), ("lines", company.layout.chart_margins))}
    if not series["columns"]:
        return  # a layout that names no chart series gets no chart
    chart = book.add_chart({"type": "column", "subtype": "stacked"})
    for item in series["columns"]:
        chart.add_series({**item, "gap": 60})
    if series["lines"]:
        margins = book.add_chart({"type": "line"})
        for item in series["lines"]:
            margins.add_series({**item, "y2_axis": True, "marker": {"type": "circle"}})
        margins.set_y2_axis({"name": "利润率", "num_format": "0%", "name_font": {"name": FONT}})
        chart.combine(margins)
    chart.set_title({"name": "分部收入与利润率 Revenue by segment and margins", "name_font": {"size": 11, "name": FONT}})
    chart.set_y_axis({"name": company.facts.get("unit", ""), "num_format": "#,##0", "name_font": {"name": FONT}})
    chart.set_legend({"position": "bottom", "font": {"name": FONT, "size": 9}})
    chart.set_size({"width": CHART_SIZE[0], "height": CHART_SIZE[1]})
    ws.insert_chart(layout.cell_name(FIRST_ROW + 3, first_chart_col), chart)



def _chart_series(keys, placement, company: Company) -> list[dict]:
    """One chart series per line key: the line's reported and forecast cells, on its own sheet."""
    out = []
    for key in keys:
        cells = sorted((c for (k, y), c in placement.home.items() if k == key and y is not None
                        and company_kinds(company)[y] != BASE), key=lambda c: c.col)
        if not cells:
            continue
        sheet_name, row = cells[0].sheet, cells[0].row
        out.append({"name": [sheet_name, row, LABEL_COL],
                    "categories": [sheet_name, HEADER_ROW, cells[0].col, HEADER_ROW, cells[-1].col],
                    "values": [sheet_name, row, cells[0].col, row, cells[-1].col]})
    return out


def template_findings(company: Company) -> list:
    """The report's disagreements with itself that the checks sheet lists (none without a report file)."""
    report_file = report_path_for(company)
    return report_findings(company, load_report(report_file)) if report_file.is_file() else []


def template_placement(company: Company, model: Model, found: list) -> layout.Placement:
    """Where the template puts everything, the findings table sized for `found`."""
    within = sum(1 for f in found if f.within_rounding)
    return layout.place(model.lines, company.years, company.layout, len(found) - within, within)


def refuse_control_characters(company: Company) -> None:
    """CompanyDataError when a text the workbook would hold has a control character: the
    company's facts, rating texts and labels reach cells, formulas and validation messages,
    where XML cannot hold one (the file would not open). `show` prints them escaped instead."""
    found = control_character({"company": company.facts, "rating": company.rating, "labels": company.labels})
    if found:
        raise CompanyDataError(f"{company.path.name}: {found}; remove it (a workbook cannot hold it)")


def build(output: str | Path, company: Company | None = None) -> Path:
    """Write the template for `company` (default: the embedded sample company) to `output`,
    through a temporary file renamed into place, so a failure never leaves a half-written file."""
    company = company or load()
    refuse_control_characters(company)
    output = Path(output)
    model = build_model(company)
    found = template_findings(company)
    placement = template_placement(company, model, found)

    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output, suffix=".xlsm") as temp:  # permissions from the umask, like any file the user saves
        _write(str(temp), company, model, placement, found)
    return output


def _write(path: str, company: Company, model: Model, placement, found):
    # The workbook's default font is the one its cells use: column widths are counted in that
    # font's digits, so a reader without Calibri (LibreOffice substitutes a wider font) sizes the
    # columns as Excel does and a sheet prints at the same scale.
    book = xlsxwriter.Workbook(path, {"strings_to_numbers": False, "strings_to_formulas": False,
                                      "strings_to_urls": False,
                                      "default_format_properties": {"font_name": FONT, "font_size": 10}})
    book.set_properties({"title": f"{company.name} 盈利预测模型", "subject": "Equity research model",
                         "author": "Equity research model builder", "created": BUILD_DATE,
                         "comments": f"Built from {company.path.name}"})
    book.set_custom_property(TEMPLATE_VERSION_PROPERTY, TEMPLATE_VERSION)
    book.set_calc_mode("auto", calc_id=CALC_ID)
    book.calc_on_load = False
    styles = Styles(book)
    sensitivity_names: dict = {}
    sensitivity_grids: dict = {}
    sheets = {}
    codenames = []
    for i, sheet in enumerate(placement.sheets, start=1):
        ws = book.add_worksheet(sheet.name)
        ws.set_vba_name(f"Sheet{i}")
        codenames.append(f"Sheet{i}")
        if sheet.kind not in MACHINERY_KINDS:  # what an analyst prints: landscape A4, one page wide
            ws.set_landscape()
            ws.set_paper(9)
            ws.fit_to_pages(1, 0)
            ws.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.5)
            ws.set_footer(f"&L&8{company.name} — &A&R&8&P / &N")
        ws.hide_gridlines(2)
        sheets[sheet.name] = ws
    pages = {name: Page(ws, styles) for name, ws in sheets.items()}
    book.set_vba_name("ThisWorkbook")
    book.add_vba_project(io.BytesIO(vba_project_bin(project_modules(codenames))), is_stream=True)

    for sheet in placement.sheets:
        ws = sheets[sheet.name]
        if sheet.kind == "yearly":
            _write_yearly(pages[sheet.name], sheet, placement, model, styles, company)
        elif sheet.kind == "scalar":
            _write_scalar(pages[sheet.name], sheet, placement, styles, company)
        elif sheet.kind == "checks":
            _write_checks(pages[sheet.name], sheet, placement, model, styles, company, found)
        elif sheet.kind == "conf":
            _write_conf(ws, styles)
        elif sheet.kind == "blueprint":
            _write_blueprint(ws, placement, _row_labels(placement))
        elif sheet.kind == "source":
            _write_source(ws, company)
        elif sheet.kind == "sensitivity":
            names_made, sensitivity_grids = _write_sensitivity(ws, placement, model, company, styles)
            sensitivity_names.update(names_made)
    _write_warnings(pages[layout.CHECKS], placement, model, styles, company)
    _write_cells(sheets, placement, model, styles, company)
    _write_cover_extras(book, pages[layout.COVER], placement, company, styles)
    _write_scheme_table(sheets[layout.RATING], placement, company, styles)
    write_sources(sheets[layout.RATING], placement, layout.RATING, company, styles)
    if layout.VALUATION in sheets:
        _write_valuation_extras(book, sheets[layout.VALUATION], placement, model, company, styles, sensitivity_grids)
        # the inputs' sources and the football field beside them make the sheet too wide for one
        # page at a readable size: two pages wide, as a broker prints a valuation
        sheets[layout.VALUATION].fit_to_pages(2, 0)
    for page in pages.values():
        page.finish()
    for name, ref in sorted({**placement.names, **sensitivity_names}.items()):
        book.define_name(name, "=" + ref)
    book.define_name(TEMPLATE_VERSION_NAME, f'="{TEMPLATE_VERSION}"')
    sheets[layout.COVER].activate()
    book.close()
