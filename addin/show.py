"""The model as text for a terminal: the summary table as the report prints it, the statements,
the main ratios, the rating block, the checks and the report's self-disagreements."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

from udfs.rating import schemes
from udfs.constants import ERR_NUM, NO_SEGMENT_LINE, NOT_MEANINGFUL, NOT_VALUED
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


def _english_title(statement_table: str) -> str:
    return spec.TABLE_TITLES_EN.get(statement_table, statement_table)


def _header(model: Model, english: bool) -> list[str]:
    """The company line and the market line, in the layout's Chinese or its English labels (the
    FX only where the trading and reporting currencies differ)."""
    company = model.company
    v = model.value
    quote, reporting = company.facts.get("quote_currency", ""), company.facts.get("reporting_currency", "")
    foreign = quote != reporting
    ticker = f"({company.facts['ticker']})"
    if not english:
        quote_zh = spec.currency_zh(quote)
        name = " ".join(filter(None, (company.facts["name_zh"], company.facts.get("name_en"), ticker)))
        fx = f", 1 {quote} = {show(v('fx_rate'), 'fx')} {reporting}" if foreign else ""
        return [name, f"当前价 {show(v('price'), 'price')} {quote_zh} ({v('price_date')}){fx}, "
                      f"总股本 {show(v('shares') / 100, 'price')} 亿股, 总市值 {show(v('market_cap_quote'), 'price')} 亿{quote_zh}"]
    label = {line.key: line.label_en for line in model.lines}
    fx = f", {label['fx_rate']} {show(v('fx_rate'), 'fx')}" if foreign else ""
    return [f"{company.facts.get('name_en') or company.facts['name_zh']} {ticker}",
            f"{label['price']} {show(v('price'), 'price')} ({v('price_date')}){fx}, "
            f"{label['shares']} {show(v('shares'), 'money')}, {label['market_cap_quote']} {show(v('market_cap_quote'), 'price')}"]


def scenario_note(model: Model, case: str | None = None, english: bool = False) -> str | None:
    """Which drivers have no value for the chosen case (bear or bull) and so take the base case's,
    as one line; None for the base case or when every varied driver has its own value."""
    company = model.company
    case = case or model.value("scenario")
    if not company.scenario_drivers or case in (None, "base"):
        return None
    given = company.scenarios.get(case, {})
    forecast = [y.label for y in company.forecast_years]
    by_key = {line.key: line for line in model.lines}
    gaps = []
    for key in company.scenario_drivers:
        missing = [year for year in forecast if given.get((key, year)) is None]
        if missing:
            label = by_key[key].label_en if english else by_key[key].label_zh
            every = "(all years)" if english else "（全部预测年度）"
            gaps.append(f"{label} {', '.join(missing)}" if len(missing) < len(forecast) else f"{label} {every}")
    if not gaps:
        return None
    if english:
        return (f"scenario {case}: no {case} value for {len(gaps)} of {len(company.scenario_drivers)} drivers, which use the "
                f"base case: {'; '.join(gaps)} (enter them on the 情景 sheet or in [scenarios.{case}.drivers])")
    return (f"情景 {case}：{len(gaps)}/{len(company.scenario_drivers)} 个驱动没有 {case} 值，取基准值：{'；'.join(gaps)}"
            f"（在 情景 表或公司文件 [scenarios.{case}.drivers] 中填写） — scenario {case}: these drivers use the base case")


def render(model: Model, findings=None, english: bool = False) -> str:
    company = model.company
    layout = company.layout
    years = [y.label for y in model.values.years if y.kind != "base"]
    v = model.value
    unit = company.unit_en if english else company.unit
    scheme = schemes().get(company.scalar_inputs.get("rating_scheme"))

    def name(line) -> str:
        return line.label_en if english else line.label_zh

    def value(text):
        return scheme.english(text) if english and scheme else text
    summary_keys = [key for key, _ in layout.summary_rows]
    summary_labels = {key: label for key, label in layout.summary_rows if label}
    parts = _header(model, english)
    note = scenario_note(model, english=english)
    parts += [note] if note else []
    parts += [
        "",
        table(layout.summary_title if not english else _english_title(spec.SUMMARY), ["指标" if not english else "Item"] + years,
              _rows(model, summary_keys, summary_labels, english)),
    ]
    for statement in layout.statements:
        keys = [line.key for line in model.lines if line.table == statement.table and not line.scalar]
        title = f"{statement.sheet} (单位: {unit})" if not english else f"{_english_title(statement.table)} ({unit})"
        parts += ["", table(title, ["" if not english else "Line"] + years, _rows(model, keys, english=english))]
    ratio_keys = [line.key for line in model.lines if line.table == spec.RATIOS]
    parts += ["", table(layout.ratios_sheet if not english else _english_title(spec.RATIOS), [""] + years,
                        _rows(model, ratio_keys, english=english))]

    parts += ["", valuation_block(model, english)]

    rating_lines = [line for line in model.lines if line.table == spec.RATING]
    parts += ["", "Rating" if english else "评级 Rating"]
    parts += [f"  {pad(name(line), 44)} {value(show(v(line.key), line.fmt))}" for line in rating_lines]
    if english:
        parts += [f"  Published rating {value(v('published_rating'))} ({value(company.rating.get('published_action', ''))}); "
                  f"computed rating {value(v('computed_rating'))}"
                  + (" (no target price: the note gives none)" if v("target_price") is None else "")
                  + (" (on the example valuation's assumptions)" if company.example_valuation else "")]
    else:
        published = f"{v('published_rating')}（{company.rating.get('published_action', '')}）"
        parts += [f"  报告评级 {published}; 模型评级 {v('computed_rating')}"
                  + ("（目标价未填写：报告未给出目标价）" if v("target_price") is None else "")
                  + ("（按示例估值假设）" if company.example_valuation else "")]

    failed = [c for c in model.checks if not c["passed"]]
    parts += ["", f"{'Checks' if english else '校验 Checks'}: {len(model.checks) - len(failed)}/{len(model.checks)} passed"
              + (" — balance sheet balances, cash flow reconciles" if not failed else "")]
    parts += [f"  FAIL {c['label_en'] if english else c['label_zh']} {c['year']}: {c['actual']} vs {c['expected']}" for c in failed]
    parts += ["", warnings_block(model, english)]
    if findings is not None:
        beyond = [f for f in findings if not f.within_rounding]
        rounding = [f for f in findings if f.within_rounding]
        head = "Report disagrees with itself" if english else "报告自身不一致 Report disagrees with itself"
        parts += ["", f"{head}: {len(beyond)} beyond rounding, {len(rounding)} within rounding"]
        labels = {line.key: line.label_en for line in model.lines} if english else {}
        if "market_cap_quote" in labels:  # the market-data finding is keyed by what the note prints
            labels["market_cap"] = labels["market_cap_quote"]
        parts += [f"  ! {_finding_line(f, labels)}" for f in beyond]
        parts += [f"  ~ {_finding_line(f, labels)}" for f in rounding]
    return "\n".join(parts)


def _finding_line(finding, english_labels: dict) -> str:
    """A finding's line, its label in English when the model has one for the finding's line."""
    label = english_labels.get(finding.key)
    return finding.line() if label is None else replace(finding, label=label).line()


_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def english_part(text) -> str:
    """The English of a bilingual text the functions return ("已剔除 excluded", "目标价 = … Target =
    …"): what follows its last Chinese character, when that holds English; the text otherwise."""
    text = str(text)
    last = max((m.end() for m in _CJK.finditer(text)), default=0)
    rest = text[last:].strip()
    return rest if last and re.search(r"[A-Za-z]{2}", rest) else text


def _money(value) -> str:
    return show(value, "money")


def _why_not(model: Model, key: str) -> str:
    """Why a method target is not a price, in words: what is missing or which input is out of range."""
    v = model.value
    value = v(key)
    method = key.removesuffix("_target")
    if value == NOT_VALUED:
        return "未估值 not valued: " + ("no WACC (rf, beta, ERP… or a WACC typed)" if method == "dcf" else
                                      "no multiple entered" if method != "sotp" else "a segment has no multiple")
    if method == "dcf":
        if v("dcf_terminal_value") == ERR_NUM:
            return "#NUM!: terminal growth at or above WACC (refused)" if not isinstance(v("exit_multiple"), float) \
                else "#NUM!: a negative exit multiple"
        if value == NOT_MEANINGFUL:
            return "NM: the equity value (EV + net cash - minorities + investments) is not positive" \
                if not isinstance(v("dcf_value"), float) else "NM: the value rolled to the horizon less its dividends is not positive"
    if method == "sotp":
        plan = spec.valuation_plan(model.company.layout)
        lacking = [(segment, v(f"sotp_{segment}_method"), v(f"sotp_{segment}_metric")) for segment in plan.segment_methods
                   if v(f"sotp_{segment}_metric") in NO_SEGMENT_LINE.values()]
        if lacking:
            return f"{value}: " + "; ".join(f"{model.line(segment).label_zh} {method_}: {metric}, so the method cannot value "
                                            f"it (choose {'/'.join(plan.segment_methods[segment])})"
                                            for segment, method_, metric in lacking)
    if value == NOT_MEANINGFUL:
        year = v(f"{method}_year")
        base = {"pe": "val_eps", "pb": "val_bvps", "ps": "val_sales_ps", "evebitda": "val_ebitda"}.get(method)
        if base and isinstance(year, str):
            return f"NM: {model.line(base).label_en} {year} is {show(v(base, year), model.line(base).fmt)}, not positive"
        return "NM: a segment's value or the equity value is not positive"
    return f"{value}: see the 估值 sheet"


def _method_inputs(model: Model, key: str) -> str:
    v = model.value
    method = key.removesuffix("_target")
    if method in ("pe", "pb", "ps", "evebitda"):
        base = {"pe": "val_eps", "pb": "val_bvps", "ps": "val_sales_ps", "evebitda": "val_ebitda"}[method]
        year = v(f"{method}_year")
        metric = v(base, year) if isinstance(year, str) else None
        text = f"{show(v(f'{method}_multiple'), 'multiple')} × {year} {model.line(base).label_en} {show(metric, model.line(base).fmt)}"
        if method == "evebitda":
            text += (f" + net cash {_money(v('val_net_cash', year))} - minorities {_money(v('val_minorities', year))}"
                     f" + investments {_money(v('val_investments', year))}, ÷ {show(v('val_shares', year), 'money2')}m shares")
        return text + f" ÷ FX {show(v('fx_rate'), 'fx')}"
    if method == "sotp":
        segments = [l.key.removeprefix("sotp_").removesuffix("_method") for l in model.lines
                    if l.key.startswith("sotp_") and l.key.endswith("_method")]
        parts = [f"{model.line(s).label_zh} {v(f'sotp_{s}_method')} {show(v(f'sotp_{s}_multiple'), 'multiple')}"
                 f" × {show(v(f'sotp_{s}_metric'), 'money')}" for s in segments if v(f"sotp_{s}_method")]
        return "; ".join(parts) + f" ({v('sotp_year')})"
    return ""


def dcf_lines(model: Model, english: bool = False) -> list[str]:
    """The DCF in full: WACC and its inputs, EV and its parts, the TV diagnostics, the bridge."""
    v = model.value
    pct = lambda key: show(v(key), "pct")  # noqa: E731
    terminal = (f"exit {show(v('exit_multiple'), 'multiple')} EBITDA" if isinstance(v("exit_multiple"), float)
                else f"g {pct('terminal_growth')}")
    flag_year = next((y.label for y in model.values.years if v("val_bridge_flag", y.label) == 1.0), "—")
    return [
        f"WACC {pct('wacc')} (rf {pct('rf')}, beta {show(v('beta'), 'fx')}, ERP {pct('erp')}, cost of debt {pct('cost_of_debt')}, "
        f"tax {pct('val_tax')}, D/(D+E) {pct('debt_weight')}); cost of equity {pct('cost_of_equity')}; {terminal}; "
        f"{'mid-year' if v('mid_year_switch') in (True, 'TRUE', 1.0) else 'year-end'}",
        f"valued at {v('valuation_date')}: first forecast year ends {v('first_year_end')}, "
        f"{show(v('first_period'), 'fx')} years away (its FCFF counted for that share)",
        f"EV {_money(v('dcf_ev'))} = PV of FCFF {_money(v('dcf_pv_explicit'))} + PV of terminal value {_money(v('dcf_pv_terminal'))} "
        f"(TV {_money(v('dcf_terminal_value'))} at {show(v('dcf_tv_period'), 'fx')} years)",
        f"TV share of EV {pct('tv_share')}; implied exit EV/EBITDA {show(v('implied_exit_multiple'), 'multiple')}; "
        f"implied perpetual growth {pct('implied_growth')}",
        f"bridge at the balance nearest the price date ({flag_year}): + net cash {_money(v('bridge_net_cash'))} - minorities "
        f"{_money(v('bridge_minorities'))} + investments {_money(v('bridge_investments'))} = equity {_money(v('dcf_equity'))}; "
        f"÷ {show(v('bridge_shares'), 'money2')}m diluted shares ÷ FX {show(v('fx_rate'), 'fx')} = {show(v('dcf_value'), 'price')}",
        f"target basis {v('dcf_target_basis')}: {english_part(v('dcf_basis_note')) if english else v('dcf_basis_note')}",
    ]


def valuation_block(model: Model, english: bool = False) -> str:
    """Every valuation method with its target or the reason it has none, its inputs, the weights
    and parts of the blend; the DCF in full (WACC, EV, its bridge, the TV share)."""
    v = model.value
    company = model.company
    plan = spec.valuation_plan(company.layout)
    case = v("scenario")
    title = ("Valuation" + (f" (scenario {case})" if case else "")) if english else \
        "估值 Valuation" + (f"（情景 {case}）" if case else "")
    if company.example_valuation:
        title += " — example assumptions (sources on the 估值 sheet)" if english else \
            " — 示例估值假设 example assumptions (sources on the 估值 sheet)"
    out = [title]
    for key in plan.targets:
        line = model.line(key)
        label = line.label_en if english else line.label_zh
        value = v(key)
        method = key.removesuffix("_target")
        weight, part = v(f"weight_{method}"), v(f"part_{method}")
        shown = show(value, "price") if isinstance(value, float) else _why_not(model, key)
        part_shown = show(part, "price")
        if english:
            shown, part_shown = english_part(shown), english_part(part_shown)
        out.append(f"  {pad(label, 30)} {shown}   weight {show(weight, 'pct')}, part {part_shown}")
        inputs = _method_inputs(model, key)
        given = v(f"{method}_multiple") is not None if method != "sotp" else any(
            v(l.key) is not None for l in model.lines if l.key.startswith("sotp_") and l.key.endswith("_method"))
        if inputs and given and method != "dcf":
            out.append(f"      {inputs}")
        if method == "dcf" and v("wacc") != NOT_VALUED:
            out += [f"      {text}" for text in dcf_lines(model, english)]
    blended = "Blended target" if english else "加权目标价 Blended target"
    note = english_part(v("blend_note")) if english else v("blend_note")
    out.append(f"  {pad(blended, 30)} {english_part(show(v('target_price_blend'), 'price')) if english else show(v('target_price_blend'), 'price')}   {note}")
    return "\n".join(out)


def warnings_block(model: Model, english: bool = False) -> str:
    """The sanity warnings, apart from the checks: a model can articulate and still be implausible."""
    fired = model.triggered_warnings
    judged = len({w["warning"] for w in model.warnings})
    title = "Warnings" if english else "提示 Warnings"
    head = (f"{title}: {len({w['warning'] for w in fired})} of {judged} sanity warnings fire"
            if fired else f"{title}: none of {judged} sanity warnings fires")
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
