"""A statement layout for a note whose tables no known layout covers, inferred from the print.

Which lines are subtotals of which is found by interval arithmetic on the printed figures
(`notes.infer_subtotals`); those become formulas. The rest are reported inputs with a driver
each. Three mechanics make any inferred layout a working three-statement model:

- cash is the balance sheet's plug: what liabilities and equity leave after every other asset;
- one cash-flow line (the note's "other" financing, investing or operating line, else the last
  line of the statement) is the balancing item, so the net cash flow equals the change in cash;
- attributable equity rolls forward with attributable profit and a reconciling driver, and EPS
  is attributable profit over the share count.

The result is a plain layout file the analyst can read and edit; the import report lists what
was inferred.
"""
from __future__ import annotations

import re

from udfs.errors import DataError
from udfs.forecast import TAX_CREDIT_LIMIT

from .notes import Note, infer_subtotals

STATEMENTS = ("income", "balance", "cashflow")
PREFIX = {"income": "IS", "balance": "BS", "cashflow": "CF"}
# An inferred layout names its sheets itself. A note's table titles are a converter's output
# (garbled, or holding braces, slashes, quotes): the import report shows them, no sheet name
# or title template is ever made of them.
STATEMENT_SHEETS = {"income": "利润表", "balance": "资产负债表", "cashflow": "现金流量表"}
# Cash-flow lines that may carry the balancing item, most suitable first.
BALANCING_ROLES = ("cff_other", "cfi_other", "cfo_other", "other_asset_change")
GROWTH_SUFFIX = "_growth"


class LayoutInferenceError(DataError):
    """The note lacks what any three-statement model needs; the message names it."""


MAX_SLUG = 32   # characters of a label's ASCII words kept in a key (keys become defined names)


def _slug(label: str, kind: str, taken: set) -> str:
    """A key for a line no role names: its ASCII words if it has any, else its table and place."""
    ascii_part = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:MAX_SLUG].strip("_")
    base = f"{kind}_{ascii_part}" if ascii_part else f"{kind}_line"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


def _english(key: str) -> str:
    return key.replace("_", " ").capitalize()


def infer_layout(note: Note, lines) -> dict:
    """Layout data (the TOML shape of workbook/layouts/*.toml) for the note's statements.

    `lines` are the importer's `Mapped` rows; their `role` names the line key where it has one.
    """
    from .importer import ImportFailed

    keys_by_row: dict = {}
    taken: set = set()
    out_lines: list[dict] = []
    statements = []
    roles: dict = {}
    mapped = {(m.kind, m.label): m for m in lines}
    checks = []
    formulas: dict = {}
    identities: set = set()
    for kind in STATEMENTS:
        table = note.table(kind)
        statements.append({"table": kind, "sheet": STATEMENT_SHEETS[kind], "title": "{company} " + STATEMENT_SHEETS[kind],
                           "prefix": PREFIX[kind]})
        for row in table.lines:
            if not row.has_figures:
                continue
            m = mapped.get((kind, row.label))
            key = m.role if m and m.role and m.role not in taken else _slug(row.label, kind, taken)
            taken.add(key)
            keys_by_row[(kind, row.position)] = key
            decimals = max((c.decimals for c in row.cells if c is not None), default=0)
            out_lines.append({"key": key, "table": kind, "zh": row.label, "en": _english(key),
                              "fmt": "eps" if decimals == 2 else "money"})
        for subtotal in infer_subtotals(table):
            total = keys_by_row.get((kind, subtotal.total.position))
            parts = [(p.sign, keys_by_row.get((kind, p.row.position))) for p in subtotal.parts]
            if total is None or any(k is None for _, k in parts):
                continue
            text = ""
            for i, (sign, key) in enumerate(parts):
                text += (("" if sign > 0 else "-") if i == 0 else (" + " if sign > 0 else " - ")) + key
            formulas[total] = text
            identities.add(total)
            checks.append({"key": f"{total}_sum", "zh": f"{subtotal.total.label}勾稽", "en": f"{_english(total)} adds up",
                           "actual": total, "expected": text})

    by_key = {line["key"]: line for line in out_lines}
    for required in ("revenue", "net_profit", "attributable_profit", "cash", "total_assets", "net_cash_flow"):
        if required not in by_key:
            raise ImportFailed(f"the note's statements have no line the import recognises as {required}; "
                               "add its label to workbook/data/label_roles.toml")
    for role in ("revenue", "net_profit", "attributable_profit", "eps", "cash", "total_assets", "total_liabilities",
                 "shareholders_equity", "minority_equity", "net_cash_flow", "cfo", "da", "capex", "ebitda", "ebit",
                 "operating_profit", "gross_profit", "pretax_profit"):
        if role in by_key:
            roles[role] = role

    # The balance sheet: cash is the plug.
    tle = next((k for k in ("total_liabilities_and_equity",) if k in by_key), None)
    asset_leaves = _leaves("total_assets", formulas) - {"cash"}
    if tle is None:
        claims = [k for k in ("total_liabilities", "minority_equity", "shareholders_equity", "total_equity") if k in by_key]
        if "total_equity" in claims:
            claims = [k for k in claims if k not in ("minority_equity", "shareholders_equity")]
        tle_text = " + ".join(claims)
    else:
        tle_text = tle
    if not asset_leaves or not tle_text:
        raise ImportFailed("the balance sheet's totals were not recognised, so cash cannot be made its plug")
    formulas["cash"] = f"{tle_text} - ({' + '.join(sorted(asset_leaves))})"
    checks.insert(0, {"key": "balance", "zh": "资产 = 负债 + 股东权益", "en": "Assets = liabilities + equity",
                      "actual": "total_assets", "expected": tle_text})
    identities.discard("cash")

    # Equity rolls forward; EPS is profit per share.
    if "shareholders_equity" in by_key and "shareholders_equity" not in formulas:
        formulas["shareholders_equity"] = "prev(shareholders_equity) + attributable_profit + d_equity_other"
        out_lines.append({"key": "d_equity_other", "table": "drivers", "zh": "股东权益其他变动（分红等，报告未披露）",
                          "en": "Other equity movements: dividends and the like", "history": "forecast_only",
                          "implied": "shareholders_equity - prev(shareholders_equity) - attributable_profit"})
    if "eps" in by_key:
        formulas["eps"] = "per_share(attributable_profit, shares)"
        identities.add("eps")
        by_key["eps"]["history"] = "always"

    # The cash flow: one balancing item makes the net cash flow the change in cash.
    cf_leaves = _signed_leaves("net_cash_flow", formulas)
    if not cf_leaves:
        raise ImportFailed("the cash-flow statement's net cash flow was not recognised as the sum of its sections")
    balancing = next((k for k in BALANCING_ROLES if k in cf_leaves), None) or list(cf_leaves)[-1]
    others = " ".join(("- " if sign > 0 else "+ ") + key for key, sign in cf_leaves.items() if key != balancing)
    sign = cf_leaves[balancing]
    formulas[balancing] = f"{'' if sign > 0 else '-'}((cash - prev(cash)) {others})"
    checks.insert(1, {"key": "cash_link", "zh": "期末现金 = 期初现金 + 净现金流", "en": "Closing cash = opening cash + net cash flow",
                      "actual": "cash", "expected": "prev(cash) + net_cash_flow"})
    if "cf_net_profit" in by_key and "cf_net_profit" not in formulas:
        formulas["cf_net_profit"] = "net_profit"

    for line in out_lines:
        key = line["key"]
        if line["table"] == "drivers":
            continue
        if key in formulas:
            line["formula"] = formulas[key]
            if key in identities:
                line["identity"] = True
        else:
            line["driven"] = True
            method, base = _default_method(key, line["table"], by_key)
            line["method"] = method
            if base:
                line["base"] = base
            if method == "tax":  # the tax method reads the loss credit limit, an input none is printed for
                out_lines.append({"key": TAX_CREDIT_LIMIT, "table": "drivers", "zh": "亏损年度可确认的所得税抵免上限（0 为不确认）",
                                  "en": "Largest tax credit a loss-making year may book (0: none)", "input_default": 0})
    notes = {"cash": "The single plug: what liabilities and equity leave after every other asset",
             balancing: "Balancing item: makes the net cash flow equal the change in cash"}
    for line in out_lines:
        if line["key"] in notes:
            line["note"] = notes[line["key"]]

    summary_rows = [{"key": k} for k in ("revenue", "attributable_profit", "eps") if k in by_key]
    ratio_lines = [{"key": "revenue_growth", "table": "ratios", "zh": "营业收入增长率", "en": "Revenue growth", "fmt": "pct",
                    "formula": "growth_rate(revenue, prev(revenue))", "history": "always"},
                   {"key": "net_margin", "table": "ratios", "zh": "净利率", "en": "Net margin", "fmt": "pct",
                    "formula": "margin(net_profit, revenue)", "history": "always"}]
    roles["total_liabilities"] = roles.get("total_liabilities", "total_assets")
    roles["shareholders_equity"] = roles.get("shareholders_equity", "total_assets")
    roles.setdefault("eps", "eps") if "eps" in by_key else None
    if "eps" not in roles:
        raise ImportFailed("the note's income statement prints no EPS line the import recognises")
    return {
        "format_version": 1, "name": "inferred", "description": "inferred by `python -m addin import` from the note's print",
        "base_lines": [], "bold": sorted(formulas), "chart_segments": ["revenue"], "chart_margins": ["net_margin"],
        "segments": [], "roles": roles, "statements": statements,
        "summary": {"sheet": "摘要", "title": "盈利预测摘要", "rows": summary_rows},
        "ratios": {"sheet": "主要财务比率", "title": "主要财务比率 Key ratios", "mirrors": []},
        "lines": out_lines + ratio_lines, "checks": checks,
    }


def _leaves(total: str, formulas: dict) -> set:
    """The lines a subtotal is made of, subtotals expanded."""
    if total not in formulas:
        return {total}
    out = set()
    for key in re.findall(r"[a-z_][a-z0-9_]*", formulas[total]):
        out |= _leaves(key, formulas)
    return out


def _signed_leaves(total: str, formulas: dict, sign: int = 1) -> dict:
    """{leaf: +1 or -1}: the lines a subtotal adds or subtracts, subtotals expanded."""
    if total not in formulas:
        return {total: sign}
    out: dict = {}
    for op, key in re.findall(r"(^|[+-])\s*([a-z_][a-z0-9_]*)", formulas[total].replace(" ", "")):
        out.update(_signed_leaves(key, formulas, sign * (-1 if op == "-" else 1)))
    return out


def _default_method(key: str, table: str, by_key: dict) -> tuple[str, str | None]:
    if key == "revenue":
        return "growth", None
    if key == "income_tax" and "pretax_profit" in by_key:
        return "tax", "pretax_profit"
    if table == "income":
        return "share", "revenue"
    if table == "balance":
        return "step", None
    return "fixed", None
