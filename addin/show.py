"""The model as text for a terminal: the summary table as the report prints it, the statements,
the main ratios, the rating block, the checks and the report's self-disagreements."""
from __future__ import annotations

import unicodedata

from workbook import spec
from workbook.formats import show
from workbook.model import Model


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
    layout = company.layout
    years = [y.label for y in model.values.years if y.kind != "base"]
    v = model.value
    unit = company.facts.get("unit", "")
    quote, reporting = company.facts.get("quote_currency", ""), company.facts.get("reporting_currency", "")
    quote_zh = spec.currency_zh(quote)
    summary_keys = [key for key, _ in layout.summary_rows]
    summary_labels = {key: label for key, label in layout.summary_rows if label}
    parts = [
        " ".join(filter(None, (company.facts['name_zh'], company.facts.get('name_en'), f"({company.facts['ticker']})"))),
        f"当前价 {show(v('price'), 'price')} {quote_zh} ({v('price_date')}), 1 {quote} = {show(v('fx_rate'), 'fx')} {reporting}, "
        f"总股本 {show(v('shares') / 100, 'price')} 亿股, 总市值 {show(v('market_cap_quote'), 'price')} 亿{quote_zh}",
        "",
        table(layout.summary_title if not english else "Earnings forecast and valuation", ["指标" if not english else "Item"] + years,
              _rows(model, summary_keys, summary_labels, english)),
    ]
    for statement in layout.statements:
        keys = [line.key for line in model.lines if line.table == statement.table and not line.scalar]
        parts += ["", table(f"{statement.sheet} (单位: {unit})", ["" if not english else "Line"] + years,
                            _rows(model, keys, english=english))]
    ratio_keys = [line.key for line in model.lines if line.table == spec.RATIOS]
    parts += ["", table(layout.ratios_sheet, [""] + years, _rows(model, ratio_keys, english=english))]

    plan = spec.valuation_plan(layout)
    valued = [key for key in plan.targets + ("target_price_blend",) if isinstance(v(key), float)]
    parts += ["", "估值 Valuation" + (f"（情景 {v('scenario')}）" if v("scenario") else "")]
    by_key = {line.key: line for line in model.lines}
    if valued:
        parts += [f"  {pad(by_key[k].label_zh if not english else by_key[k].label_en, 44)} {show(v(k), 'price')}" for k in valued]
    else:
        parts += ["  未估值: no method is weighted yet (fill the 估值 sheet, or [valuation] in the company file)"]

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
    parts += ["", warnings_block(model, english)]
    if findings is not None:
        beyond = [f for f in findings if not f.within_rounding]
        rounding = [f for f in findings if f.within_rounding]
        parts += ["", f"报告自身不一致 Report disagrees with itself: {len(beyond)} beyond rounding, {len(rounding)} within rounding"]
        parts += [f"  ! {f.line()}" for f in beyond]
        parts += [f"  ~ {f.line()}" for f in rounding]
    return "\n".join(parts)


def warnings_block(model: Model, english: bool = False) -> str:
    """The sanity warnings, apart from the checks: a model can articulate and still be implausible."""
    fired = model.triggered_warnings
    judged = len({w["warning"] for w in model.warnings})
    head = (f"提示 Warnings: {len({w['warning'] for w in fired})} of {judged} sanity warnings fire"
            if fired else f"提示 Warnings: none of {judged} sanity warnings fires")
    def bounds(w):
        low = "" if w["minimum"] is None else show(w["minimum"], "money2")
        high = "" if w["maximum"] is None else show(w["maximum"], "money2")
        return f"[{low}, {high}]"
    rows = [f"  WARN {w['label_en'] if english else w['label_zh']} {w['year']}: {show(w['value'], 'money2')} outside {bounds(w)}"
            for w in fired]
    return "\n".join([head] + rows)


def sensitivity_table(model: Model) -> str:
    """The valuation EPS of the first forecast year for a grid of two drivers' values, each
    grid point a full re-run of the model (the drivers and steps the template's 敏感性 sheet uses)."""
    from workbook.model import default_sensitivity, driver_sensitivity
    company = model.company
    axes = default_sensitivity(company)
    if not axes:
        return "敏感性 Sensitivity: the company has fewer than two rate drivers"
    a, xs, b, ys = axes
    year = company.forecast_years[0].label
    grid = driver_sensitivity(company, a, xs, b, ys, "val_eps", year, scenario=model.value("scenario"))
    rows = [[show(x, "pct")] + [show(v, "eps") for v in row] for x, row in zip(xs, grid)]
    return table(f"敏感性 {year} EPS: {a} (rows) x {b} (columns)", [f"{a} \\ {b}"] + [show(y, "pct") for y in ys], rows)
