"""A statement layout for a note whose tables no known layout covers, inferred from the print.

The note's own arithmetic (`notes.structure`: which lines add up to which, with the note's signs)
becomes the formulas; a section whose printed lines leave some out gets a line of its own for the
rest (其他（报告未列示）, a calibrated driver); a line a model needs that the note does not print is
derived from the lines it does print (the net change in cash from the three sections, net profit
from profit before tax and tax, the minorities' profit from net and attributable profit, EPS from
profit and the share count) and says so. Ratio and per-share rows printed in a statement are
computed from their role's formula (`data/line_formulas.toml`). Every printed row keeps its own
line, repeated labels (其他 three times) apart by their place. The rest are reported inputs with a
driver each. Three mechanics make any inferred layout a working three-statement model:

- cash is the balance sheet's plug: what liabilities and equity leave after every other asset;
- one cash-flow line (a line the note does not print where there is one, else its "other" line)
  is the balancing item, so the net cash flow equals the change in cash;
- attributable equity rolls forward with attributable profit and a reconciling driver, and EPS
  is attributable profit over the share count.

Sheet names and titles come from the layout's own words, never from the note's text. The result
is a plain layout file the analyst can read and edit; the import report lists what was inferred.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from udfs.errors import DataError
from udfs.forecast import TAX_CREDIT_LIMIT

from .notes import Note
from .notes.labels import default_label_data, match_label
from .tomlfile import read_toml

STATEMENTS = ("income", "balance", "cashflow")
PREFIX = {"income": "IS", "balance": "BS", "cashflow": "CF"}
SHEETS = {"income": "利润表", "balance": "资产负债表", "cashflow": "现金流量表"}
# Cash-flow lines that may carry the balancing item, most suitable first.
BALANCING_ROLES = ("cff_other", "cfi_other", "cfo_other", "other_asset_change")
LINE_FORMULAS = Path(__file__).parent / "data" / "line_formulas.toml"
RESERVED = {"ticker", "quote_currency", "reporting_currency", "price", "price_date", "fx_rate", "benchmark_level",
            "shares", "price_local", "market_cap_local", "refresh_stamp", "refresh_source", "market_cap_quote",
            "rating_scheme", "rating_boundary", "benchmark", "target_price", "expected_dps", "benchmark_return",
            "upside", "expected_return", "excess_return", "computed_rating", "previous_rating", "rating_action",
            "published_rating", "published_action"}


class LayoutInferenceError(DataError):
    """The note lacks what any three-statement model needs; the message names it."""


@lru_cache(maxsize=1)
def line_formulas() -> dict:
    return read_toml(LINE_FORMULAS)


@dataclass
class Inferred:
    """The layout data (the TOML shape of workbook/layouts/*.toml), the line key of each printed
    row ((table index, position) -> key), and what was derived or added, for the report."""
    data: dict
    keys: dict
    derived: list[str] = field(default_factory=list)
    base: tuple[str, dict] | None = None     # (year label, {line key: value}): a year before the statements' first


def tidy_label(label: str) -> str:
    """A printed label as the model shows it: the converter's spaces inside Chinese words gone."""
    text = re.sub(r"(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff（(])", "", label.strip())
    return re.sub(r"\s+", " ", text)[:60]


def _slug(label: str, kind: str, taken: set) -> str:
    """A key for a line no role names: its ASCII words if it has any, else its table and place."""
    ascii_part = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:30]
    base = f"{kind}_{ascii_part}" if ascii_part else f"{kind}_line"
    return _unique(base, taken)


def _unique(base: str, taken: set) -> str:
    key, n = base, 2
    while key in taken or key in RESERVED:
        key, n = f"{base}_{n}", n + 1
    taken.add(key)
    return key


def _english(key: str, role: str | None) -> str:
    names = line_formulas().get("english", {})
    return names.get(role or "", key.replace("_", " ").capitalize())


def _signed(parts: list[tuple[int, str]]) -> str:
    text = ""
    for i, (sign, key) in enumerate(parts):
        text += (("" if sign > 0 else "-") if i == 0 else (" + " if sign > 0 else " - ")) + key
    return text


def infer_layout(note: Note, placed) -> Inferred:
    """Layout data for the note's statements. `placed` are the importer's rows; their `role`
    names the line key where it has one."""
    from .importer import ImportFailed

    roles_by_row = {(p.table_index, p.position): p.role for p in placed}
    keys: dict = {}
    taken: set = set()
    lines: list[dict] = []
    statements = []
    formulas: dict = {}
    identities: set = set()
    checks: list[dict] = []
    by_role: dict = {}
    derived: list[str] = []
    history_always: set = set()
    unprinted_rest: dict = {}           # total key -> the key of its 其他（报告未列示） line

    for kind in STATEMENTS:
        statements.append({"table": kind, "sheet": SHEETS[kind], "title": "{company} " + SHEETS[kind], "prefix": PREFIX[kind]})
        tables = note.tables_of(kind)
        if not tables:
            continue
        table = tables[0]
        t_index = note.tables.index(table)
        structure = note.structures.get(t_index)
        rows = [r for r in table.lines if r.has_figures]
        for row in rows:
            role = roles_by_row.get((t_index, row.position))
            base = role if role and role not in by_role else None
            key = _unique(base, taken) if base else (_unique(f"{role}_{kind}", taken) if role else _slug(row.label, kind, taken))
            keys[(t_index, row.position)] = key
            if role and role not in by_role:
                by_role[role] = key
            decimals = max((c.decimals for c in row.cells if c is not None), default=0)
            fmt = "pct" if row.percent else "eps" if decimals >= 2 and role in ("eps", "bvps", "cfo_per_share", "dps") \
                else "money2" if decimals >= 1 else "money"
            lines.append({"key": key, "table": kind, "zh": tidy_label(row.label), "en": _english(key, role), "fmt": fmt,
                          "_role": role, "_percent": row.percent})
        for subtotal in (structure.subtotals if structure else []):
            total = keys.get((t_index, subtotal.total.position))
            parts = [(p.sign, keys.get((t_index, p.row.position))) for p in subtotal.parts]
            if total is None or any(k is None for _, k in parts):
                continue
            if subtotal.remainder:
                rest = _unique(f"{total}_unprinted", taken)
                unprinted_rest[total] = rest
                parts.append((1, rest))
                at = max(i for i, l in enumerate(lines) if l["key"] in {k for _, k in parts[:-1]} | {total})
                label = f"其他（报告未列示：{tidy_label(subtotal.total.label)}）"
                lines.insert(at + 1 if lines[at]["key"] != total else at, {
                    "key": rest, "table": kind, "zh": label, "en": f"{_english(total, None)}: lines the note does not print",
                    "fmt": "money", "driven": True, "history": "forecast_only",
                    "implied": f"{total} - ({_signed(parts[:-1])})",
                    "note": "What the printed lines leave of the printed total: lines the note does not print (a calibrated driver)"})
                derived.append(f"{subtotal.total.label}: the printed lines leave {rest} to lines the note does not print")
            formulas[total] = _signed(parts)
            identities.add(total)
            checks.append({"key": f"{total}_sum", "zh": f"{tidy_label(subtotal.total.label)}勾稽", "en": f"{_english(total, None)} adds up",
                           "actual": total, "expected": formulas[total]})

    # Lines every model needs, derived where the note does not print them.
    def have(role):
        return role in by_role

    def add_line(role: str, kind: str, zh: str, formula: str, why: str, after: str | None = None):
        key = _unique(role, taken)
        by_role[role] = key
        line = {"key": key, "table": kind, "zh": zh, "en": _english(key, role), "fmt": "eps" if role == "eps" else "money",
                "formula": formula, "history": "always", "_role": role}
        index = next((i + 1 for i, l in enumerate(lines) if l["key"] == after), None) if after else None
        if index is None:
            index = max((i + 1 for i, l in enumerate(lines) if l["table"] == kind), default=len(lines))
        lines.insert(index, line)
        derived.append(f"{zh}: {why}")
        history_always.add(key)
        return key

    sign_of = _signs_by_role(note, keys, by_role)
    if not have("net_profit") and have("pretax_profit") and have("income_tax"):
        add_line("net_profit", "income", "净利润（报告未列示，由利润总额与所得税得出）",
                 f"{by_role['pretax_profit']} {'-' if sign_of('income_tax') < 0 else '+'} {by_role['income_tax']}",
                 "not printed; profit before tax less income tax", after=by_role["income_tax"])
    if not have("attributable_profit") and have("net_profit"):
        formula = by_role["net_profit"] + (f" {'-' if sign_of('minority_pl') < 0 else '+'} {by_role['minority_pl']}"
                                            if have("minority_pl") else "")
        add_line("attributable_profit", "income", "归属母公司净利润（报告未列示）", formula,
                 "not printed; net profit less the minorities' share", after=by_role.get("minority_pl", by_role["net_profit"]))
    if have("attributable_profit") and have("net_profit") and not have("minority_pl") \
            and by_role["attributable_profit"] not in formulas:
        key = _unique("minority_pl", taken)
        by_role["minority_pl"] = key
        at = next(i for i, l in enumerate(lines) if l["key"] == by_role["attributable_profit"])
        lines.insert(at, {"key": key, "table": "income", "zh": "少数股东损益（报告未列示）", "en": "Minority interests' profit",
                          "fmt": "money", "driven": True, "history": "forecast_only",
                          "implied": f"{by_role['net_profit']} - {by_role['attributable_profit']}", "_role": "minority_pl",
                          "note": "Not printed: what net profit leaves after the attributable profit (a driver)"})
        formulas[by_role["attributable_profit"]] = f"{by_role['net_profit']} - {key}"
        identities.add(by_role["attributable_profit"])
        derived.append("少数股东损益（报告未列示）: not printed; net profit less attributable profit")
    if not have("net_cash_flow") and all(have(r) for r in ("cfo", "cfi", "cff")):
        add_line("net_cash_flow", "cashflow", "现金净增加额（报告未列示，由三项现金流得出）",
                 f"{by_role['cfo']} + {by_role['cfi']} + {by_role['cff']}",
                 "not printed; the sum of the operating, investing and financing cash flows")
    if not have("eps") and have("attributable_profit"):
        add_line("eps", "income", "每股收益（报告未列示于报表）", f"per_share({by_role['attributable_profit']}, shares)",
                 "not printed in the statements; attributable profit over the share count",
                 after=by_role["attributable_profit"])
    for required in ("revenue", "net_profit", "attributable_profit", "cash", "total_assets", "net_cash_flow"):
        if not have(required):
            raise ImportFailed(f"the note's statements have no line the import recognises as {required} and none "
                               "can be derived from the lines they print")

    # Ratio and per-share rows printed in the statements: their role's formula.
    computed = line_formulas().get("computed", {})
    undisclosed = set(line_formulas().get("undisclosed", {}).get("roles", []))
    gross = _gross_expression(by_role, sign_of)
    for line in lines:
        role = line.get("_role")
        if role in computed and line["key"] not in formulas and role != "eps":
            formula, fmt = computed[role]
            text = _fill(formula, by_role, gross)
            if text is not None:
                formulas[line["key"]] = text
                history_always.add(line["key"])
                identities.add(line["key"])     # the note's own figure: the findings recheck it on the print
                line["fmt"] = fmt
                if role in undisclosed:
                    line["undisclosed"] = True

    # The balance sheet: cash is the plug.
    tle = by_role.get("total_liabilities_and_equity")
    asset_leaves = _leaves(by_role["total_assets"], formulas) - {by_role["cash"]}
    if by_role["cash"] not in _leaves(by_role["total_assets"], formulas):
        raise ImportFailed("cash is not among the lines that add up to total assets, so it cannot be the balance sheet's plug")
    if tle is None:
        claims = [by_role[k] for k in ("total_liabilities", "minority_equity", "shareholders_equity", "total_equity") if have(k)]
        if have("total_equity"):
            claims = [k for k in claims if k not in (by_role.get("minority_equity"), by_role.get("shareholders_equity"))]
        tle_text = " + ".join(claims)
    else:
        tle_text = tle
    if not asset_leaves or not tle_text:
        raise ImportFailed("the balance sheet's totals were not recognised, so cash cannot be made its plug")
    formulas[by_role["cash"]] = f"{tle_text} - ({' + '.join(sorted(asset_leaves))})"
    checks.insert(0, {"key": "balance", "zh": "资产 = 负债 + 股东权益", "en": "Assets = liabilities + equity",
                      "actual": by_role["total_assets"], "expected": tle_text})
    identities.discard(by_role["cash"])

    # Equity rolls forward; EPS is profit per share.
    equity = by_role.get("shareholders_equity")
    if equity and equity not in formulas:
        formulas[equity] = f"prev({equity}) + {by_role['attributable_profit']} + d_equity_other"
        lines.append({"key": "d_equity_other", "table": "drivers", "zh": "股东权益其他变动（分红等，报告未披露）",
                      "en": "Other equity movements: dividends and the like", "history": "forecast_only",
                      "implied": f"{equity} - prev({equity}) - {by_role['attributable_profit']}"})
    eps = by_role.get("eps")
    if eps and eps not in formulas:
        formulas[eps] = f"per_share({by_role['attributable_profit']}, shares)"
        identities.add(eps)

    # The cash flow: one balancing item makes the net cash flow the change in cash.
    cf_leaves = _signed_leaves(by_role["net_cash_flow"], formulas)
    if not cf_leaves:
        raise ImportFailed("the cash-flow statement's net cash flow was not recognised as the sum of its sections")
    unprinted = [k for k in cf_leaves if k.endswith("_unprinted")]
    balancing = next((k for k in unprinted), None) or next((by_role[r] for r in BALANCING_ROLES if have(r) and by_role[r] in cf_leaves),
                                                            None) or list(cf_leaves)[-1]
    others = " ".join(("- " if sign > 0 else "+ ") + key for key, sign in cf_leaves.items() if key != balancing)
    sign = cf_leaves[balancing]
    cash = by_role["cash"]
    formulas[balancing] = f"{'' if sign > 0 else '-'}(({cash} - prev({cash})) {others})"
    checks.insert(1, {"key": "cash_link", "zh": "期末现金 = 期初现金 + 净现金流", "en": "Closing cash = opening cash + net cash flow",
                      "actual": cash, "expected": f"prev({cash}) + {by_role['net_cash_flow']}"})
    if have("cf_net_profit") and by_role["cf_net_profit"] not in formulas:
        formulas[by_role["cf_net_profit"]] = by_role["net_profit"]

    out_lines = []
    for line in lines:
        key = line["key"]
        line = {k: v for k, v in line.items() if not k.startswith("_")}
        if line["table"] == "drivers":
            out_lines.append(line)
            continue
        if key in formulas:
            line.pop("driven", None)
            line.pop("implied", None)
            line["formula"] = formulas[key]
            if key in identities:
                line["identity"] = True
            if key in history_always:
                line["history"] = "always"
            elif key == balancing and line.get("history") == "forecast_only":
                line["history"] = "forecast_only"
            elif line.get("history") == "forecast_only":
                line.pop("history")
        elif not line.get("driven"):
            line["driven"] = True
            method, base = _default_method(key, line["table"], by_role, set(_leaves(by_role["revenue"], formulas)))
            line["method"] = method
            if base:
                line["base"] = base
            if method == "tax":  # the tax method reads the loss credit limit, an input none is printed for
                out_lines.append({"key": TAX_CREDIT_LIMIT, "table": "drivers", "zh": "亏损年度可确认的所得税抵免上限（0 为不确认）",
                                  "en": "Largest tax credit a loss-making year may book (0: none)", "input_default": 0})
        elif "method" not in line:
            line["method"] = "fixed"
        out_lines.append(line)
    notes = {cash: "The single plug: what liabilities and equity leave after every other asset",
             balancing: "Balancing item: makes the net cash flow equal the change in cash"}
    for line in out_lines:
        if line["key"] in notes:
            line["note"] = notes[line["key"]]

    roles = {}
    for role in ("revenue", "net_profit", "attributable_profit", "eps", "cash", "total_assets", "total_liabilities",
                 "shareholders_equity", "minority_equity", "net_cash_flow", "cfo", "da", "capex", "ebitda", "ebit",
                 "operating_profit", "gross_profit", "pretax_profit"):
        if have(role):
            roles[role] = by_role[role]
    roles.setdefault("total_liabilities", by_role["total_assets"])
    roles.setdefault("shareholders_equity", by_role.get("total_equity", by_role["total_assets"]))
    # The summary and ratio tables, mirrored row for row where the model can show the row: a line
    # of the statements, or a ratio its role's formula computes (added to the ratio sheet).
    summary_rows, ratio_lines = [], []
    first = {}
    for index, table in enumerate(note.tables):
        first.setdefault(table.kind, index)
    for p in placed:
        if p.kind not in ("summary", "ratios") or first.get(p.kind) != p.table_index or p.role is None:
            continue
        key = by_role.get(p.role)
        if key is None and p.role in computed:
            formula, fmt = computed[p.role]
            text = _fill(formula, by_role, gross)
            if text is not None:
                key = _unique(p.role, taken)
                by_role[p.role] = key
                ratio_lines.append({"key": key, "table": "ratios", "zh": tidy_label(p.label), "en": _english(key, p.role),
                                    "fmt": fmt, "formula": text, "history": "always", "identity": True,
                                    **({"undisclosed": True} if p.role in undisclosed else {})})
        if key is None:
            continue
        keys[(p.table_index, p.position)] = key
        if p.kind == "summary":
            summary_rows.append({"key": key, "label": tidy_label(p.label)})
    if not summary_rows:
        summary_rows = [{"key": by_role[k]} for k in ("revenue", "attributable_profit", "eps") if have(k)]
    base = _base_year(note, placed, by_role, {**formulas, **{l["key"]: l["formula"] for l in ratio_lines}},
                      history_always | {l["key"] for l in ratio_lines})
    margins = [line["key"] for line in out_lines if line.get("fmt") == "pct"][:2]
    layout = {
        "format_version": 1, "name": "inferred", "description": "inferred by `python -m addin import` from the note's print",
        "base_lines": sorted(base[1]) if base else [], "bold": sorted(k for k in formulas if k in identities),
        "chart_segments": [by_role["revenue"]],
        "chart_margins": margins, "segments": [], "roles": roles, "statements": statements,
        "summary": {"sheet": "摘要", "title": "盈利预测摘要", "rows": summary_rows},
        "ratios": {"sheet": "主要财务比率", "title": "主要财务比率 Key ratios", "mirrors": []},
        "lines": out_lines + ratio_lines, "checks": checks,
        # the note's own claim that its cash flow explains its balance-sheet cash, checked on the print
        "report_identities": [{"key": by_role["net_cash_flow"], "zh": "现金净增加额 = 资产负债表现金变动",
                               "en": "Net change in cash = change in balance-sheet cash",
                               "formula": f"{cash} - prev({cash})"}],
    }
    if base:
        derived.append(f"{base[0]}: " + ", ".join(f"{k} {v:,g}" for k, v in base[1].items())
                       + " printed in another table: the year before the statements' first, which their growth rates read")
    return Inferred(layout, keys, derived, base)


def _base_year(note: Note, placed, by_role: dict, formulas: dict, computed: set) -> tuple[str, dict] | None:
    """The year before the statements' first, where another table prints it (a summary printing
    2024A beside statements from 2025A) and a line computed in every year reads its prior value."""
    income = note.tables_of("income")[0]
    if not income.years:
        return None
    first = income.years[0]
    needed = {ref for key in computed for ref in re.findall(r"prev\(([a-z_][a-z0-9_]*)\)", formulas.get(key, ""))}
    values, label = {}, None
    for p in placed:
        table = note.tables[p.table_index]
        if p.kind not in ("summary", "ratios") or p.role not in by_role or by_role[p.role] not in needed:
            continue
        for year, cell in zip(table.years, p.cells):
            if year.year == first.year - 1 and not year.forecast and cell is not None and not cell.percent:
                values.setdefault(by_role[p.role], cell.value)
                label = label or year.label
    return (label, values) if values else None


def _signs_by_role(note: Note, keys: dict, by_role: dict):
    """The sign a role's line takes in the total it is part of (-1 for a cost printed positive)."""
    signs = {}
    for t_index, structure in note.structures.items():
        for subtotal in structure.subtotals:
            for part in subtotal.parts:
                key = keys.get((t_index, part.row.position))
                if key:
                    signs[key] = part.sign

    def sign_of(role: str) -> int:
        key = by_role.get(role)
        return signs.get(key, -1 if role in ("income_tax", "minority_pl", "cogs") else 1)
    return sign_of


def _gross_expression(by_role: dict, sign_of) -> str | None:
    if "gross_profit" in by_role:
        return by_role["gross_profit"]
    if "revenue" in by_role and "cogs" in by_role:
        return f"{by_role['revenue']} {'-' if sign_of('cogs') < 0 else '+'} {by_role['cogs']}"
    return None


def _fill(formula: str, by_role: dict, gross: str | None) -> str | None:
    """A role formula with the layout's keys, or None when the layout lacks a line it reads."""
    if "{gross}" in formula:
        if gross is None:
            return None
        formula = formula.replace("{gross}", gross)
    missing = False

    def key(match):
        nonlocal missing
        word = match.group(0)
        if word in ("growth_rate", "margin", "return_on", "coverage", "quick_ratio", "per_share", "price_to", "prev",
                    "shares", "price_local", "market_cap_local"):
            return word
        if word in by_role:
            return by_role[word]
        if word in by_role.values():
            return word
        missing = True
        return word
    text = re.sub(r"[a-z_][a-z0-9_]*", key, formula)
    return None if missing else text


def _leaves(total: str, formulas: dict, seen: frozenset = frozenset()) -> set:
    """The lines a subtotal is made of, subtotals expanded."""
    if total not in formulas or total in seen:
        return {total}
    out = set()
    for key in re.findall(r"[a-z_][a-z0-9_]*", formulas[total]):
        if key in ("prev", "per_share"):
            continue
        out |= _leaves(key, formulas, seen | {total})
    return out


def _signed_leaves(total: str, formulas: dict, sign: int = 1, seen: frozenset = frozenset()) -> dict:
    """{leaf: +1 or -1}: the lines a subtotal adds or subtracts, subtotals expanded."""
    if total not in formulas or total in seen:
        return {total: sign}
    out: dict = {}
    for op, key in re.findall(r"(^|[+-])\s*([a-z_][a-z0-9_]*)", formulas[total].replace(" ", "")):
        out.update(_signed_leaves(key, formulas, sign * (-1 if op == "-" else 1), seen | {total}))
    return out


def _default_method(key: str, table: str, by_role: dict, revenue_parts: set = frozenset()) -> tuple[str, str | None]:
    if key == by_role.get("revenue") or key in revenue_parts:
        return "growth", None
    if key == by_role.get("income_tax") and "pretax_profit" in by_role:
        return "tax", by_role["pretax_profit"]
    if table == "income":
        return "share", by_role["revenue"]
    if table == "balance":
        return "step", None
    return "fixed", None


def role_of(label: str, kind: str) -> str | None:
    hit = match_label(default_label_data(), kind, label)
    return hit[0] if hit else None

