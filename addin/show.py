"""The model as text for a terminal: the summary table as the report prints it, the statements,
the main ratios, the rating block, the checks and the report's self-disagreements."""
from __future__ import annotations

import unicodedata

from workbook import spec
from workbook.formats import show
from workbook.model import SUMMARY_KEYS, SUMMARY_LABELS, Model

RATIO_KEYS = ("gross_margin", "operating_margin", "net_margin", "roe", "roa", "debt_ratio", "current_ratio",
              "quick_ratio", "net_gearing", "receivable_days", "inventory_days", "payable_days", "bvps", "pe", "pb", "ev_ebitda")


def width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, columns: int, right: bool = False) -> str:
    space = " " * max(0, columns - width(text))
    return space + text if right else text + space


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    label_width = max([width(header[0])] + [width(r[0]) for r in rows]) + 2
    col = max([width(h) for h in header[1:]] + [width(c) for r in rows for c in r[1:]]) + 2
    out = [title, pad(header[0], label_width) + "".join(pad(h, col, True) for h in header[1:])]
    out.append("-" * (label_width + col * (len(header) - 1)))
    out += [pad(r[0], label_width) + "".join(pad(c, col, True) for c in r[1:]) for r in rows]
    return "\n".join(out)


def _rows(model: Model, keys, labels=None, english=False):
    by_key = {line.key: line for line in model.lines}
    years = [y for y in model.values.years if y.kind != "base"]
    rows = []
    for key in keys:
        line = by_key[key]
        label = (labels or {}).get(key) if not english and labels else (line.label_en if english else line.label_zh)
        rows.append([label] + [show(model.value(key, y.label), line.fmt) for y in years])
    return rows


def render(model: Model, findings=None, english: bool = False) -> str:
    company = model.company
    years = [y.label for y in model.values.years if y.kind != "base"]
    v = model.value
    unit = "百万人民币" if not english else "CNY mn"
    parts = [
        f"{company.facts['name_zh']} {company.facts.get('name_en', '')} ({company.facts['ticker']})",
        f"当前价 {show(v('price'), 'price')} 港元 ({v('price_date')}), 1 HKD = {show(v('fx_rate'), 'fx')} CNY, "
        f"总股本 {show(v('shares') / 100, 'price')} 亿股, 总市值 {show(v('market_cap_quote'), 'price')} 亿港元",
        "",
        table("公司盈利预测与估值简表" if not english else "Earnings forecast and valuation", ["指标" if not english else "Item"] + years,
              _rows(model, SUMMARY_KEYS, SUMMARY_LABELS, english)),
    ]
    for key, title in ((spec.INCOME, "表1 损益表"), (spec.BALANCE, "表2 资产负债表"), (spec.CASHFLOW, "表3 现金流量表")):
        keys = [line.key for line in model.lines if line.table == key and not line.scalar]
        parts += ["", table(f"{title} (单位: {unit})", ["" if not english else "Line"] + years, _rows(model, keys, english=english))]
    parts += ["", table("主要财务比率", [""] + years, _rows(model, RATIO_KEYS, english=english))]

    rating_lines = [line for line in model.lines if line.table == spec.RATING]
    parts += ["", "评级 Rating"]
    parts += [f"  {pad(line.label_zh if not english else line.label_en, 44)} {show(v(line.key), line.fmt)}" for line in rating_lines]
    published = f"{v('published_rating')}（{company.rating.get('published_action', '')}）"
    parts += [f"  报告评级 {published}; 模型评级 {v('computed_rating')}"
              + ("（目标价未填写：报告未给出目标价）" if v("target_price") is None else "")]

    failed = [c for c in model.checks if not c["passed"]]
    parts += ["", f"校验 Checks: {len(model.checks) - len(failed)}/{len(model.checks)} passed"
              + (" — balance sheet balances, cash flow reconciles" if not failed else "")]
    parts += [f"  FAIL {c['label_zh']} {c['year']}: {c['actual']} vs {c['expected']}" for c in failed]
    if findings is not None:
        beyond = [f for f in findings if not f.within_rounding]
        rounding = [f for f in findings if f.within_rounding]
        parts += ["", f"报告自身不一致 Report disagrees with itself: {len(beyond)} beyond rounding, {len(rounding)} within rounding"]
        parts += [f"  ! {f.line()}" for f in beyond]
        parts += [f"  ~ {f.line()}" for f in rounding]
    return "\n".join(parts)
