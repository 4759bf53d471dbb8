"""A statement layout for a note whose tables no known layout covers, inferred from the print.

The note's own arithmetic (`notes.structure`: which lines add up to which, with the note's signs)
becomes the formulas; a section whose printed lines leave some out gets a line of its own for the
rest (其他（报告未列示）, a calibrated driver); a line a model needs that the note does not print is
derived from the lines it does print (the net change in cash from the three sections, net profit
from profit before tax and tax, the minorities' profit from net and attributable profit, EPS from
profit and the share count) and says so. Ratio and per-share rows printed in a statement are
computed from their role's formula (`data/line_formulas.toml`). Every printed row keeps its own
line, repeated labels (其他 three times) apart by their place. The rest are reported inputs with a
driver each.

The forecast articulates as a professional's model does, with nothing left to a plug:

- cash is last year's cash plus the net cash flow, and total assets and liabilities plus equity
  are computed apart, so the balance check fails when a formula is broken;
- every cash-flow line is an income-statement line, the change of balance-sheet lines, or a
  driver that moves balance-sheet lines by the same amount. Working capital is the change of
  the operating assets and liabilities; a line whose role pairs it with a balance (borrowings,
  long-term investments, share capital) is its change; capex and D&A roll PP&E forward, D&A
  inside an operating cost so that it reaches profit; dividends and the other equity movements
  leave equity. What no line of its own carries (the other non-current assets and liabilities,
  the reconciling drivers, interest paid on the finance costs the operating cash flow adds
  back) is carried by the note's "other" line of its section (or the line the note does not
  print), less the section's other lines the note prints without a definition (each a driver
  moving those same balances);
- equity rolls forward: from its printed parts where the note prints them (retained earnings
  with attributable profit less dividends, the rest a driver), else as a whole; minority
  interests with their share of profit; EPS is attributable profit over the share count;
- tax is charged on the profit the losses brought forward do not shelter, with the market's
  carry-forward years (workbook/data/tax.toml).

Line keys are the roles' names (the first line of a role is keyed by it), so the stages below
name lines by role. Sheet names and titles come from the layout's own words, never from the
note's text. The result is a plain layout file the analyst can read and edit; the import report
lists what was inferred.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from udfs.errors import DataError
from udfs.forecast import TAX_CREDIT_LIMIT, TAX_LOSS_USED

from ..tomlfile import read_toml
from .labels import default_label_data, match_label
from .reader import Note

STATEMENTS = ("income", "balance", "cashflow")
PREFIX = {"income": "IS", "balance": "BS", "cashflow": "CF"}
SHEETS = {"income": "利润表", "balance": "资产负债表", "cashflow": "现金流量表"}
TAX_FILE = Path(__file__).parents[1] / "data" / "tax.toml"
OPERATING, INVESTING, FINANCING = "operating", "investing", "financing"
SECTION_TOTALS = {"cfo": OPERATING, "cfi": INVESTING, "cff": FINANCING}
# The cash-flow line that carries, in each section, what no line of its own does (most suitable first).
HOME_ROLES = {OPERATING: ("cfo_other",), INVESTING: ("cfi_other", "other_asset_change"), FINANCING: ("cff_other",)}
# When a section prints no line that can carry its balances, another section's carries them (cash is cash).
HOME_FALLBACK = (FINANCING, INVESTING, OPERATING)
# A cash-flow line that is the change of balance-sheet lines, by role.
CHANGE_OF = {"short_term_debt_change": ("short_term_debt",), "long_term_debt_change": ("long_term_debt",),
             "net_debt_change": ("short_term_debt", "long_term_debt"), "lt_investment_change": ("lt_investments",),
             "share_capital_change": ("share_capital",), "capital_reserve_change": ("capital_reserve",)}
# Current items that are not working capital: cash-like assets and borrowings; and the roles that
# are, whether or not the note prints a current-assets or current-liabilities subtotal.
NOT_WORKING_CAPITAL = {"cash", "securities", "short_term_debt"}
WORKING_CAPITAL_ROLES = {"receivables", "other_receivables", "prepayments", "inventory", "other_current_assets", "payables",
                         "other_current_liabilities"}
# Where D&A sits in the income statement when the note does not say: the first of these it prints.
DA_HOSTS = ("admin_expenses", "opex", "cogs", "selling_expenses")
EQUITY_PARTS = ("share_capital", "capital_reserve", "retained_earnings")
# The long-lived assets other than PP&E that 折旧摊销 amortises.
AMORTISED = ("intangibles", "lt_prepaid_expenses")
# Cash-flow lines tied to the income statement: their value is a line of it, and the cash they
# stand for moves in another section (finance costs paid, investment income received).
ADD_BACKS = {"cf_finance_expenses": ("finance_expenses", FINANCING), "cf_investment_losses": ("investment_income", INVESTING)}
ADD_BACK_SIGNS = {"finance_expenses": -1, "investment_income": 1}   # how each reaches profit when no subtotal says
GROWTH_SUFFIX = "_growth"


LINE_FORMULAS = Path(__file__).parents[1] / "data" / "line_formulas.toml"
RESERVED = {"ticker", "quote_currency", "reporting_currency", "price", "price_date", "fx_rate", "benchmark_level",
            "shares", "price_local", "market_cap_local", "refresh_stamp", "refresh_source", "market_cap_quote",
            "rating_scheme", "rating_boundary", "benchmark", "target_price", "expected_dps", "benchmark_return",
            "upside", "expected_return", "excess_return", "computed_rating", "previous_rating", "rating_action",
            "published_rating", "published_action"}


class LayoutInferenceError(DataError):
    """The note lacks what any three-statement model needs; the message names it."""


@lru_cache(maxsize=1)
def loss_carry_forward_years() -> dict:
    return dict(read_toml(TAX_FILE).get("loss_carry_forward_years", {}))


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
    by_fit: list[str] = field(default_factory=list)   # balances filed in a cash-flow section by the print's fit, and why


def tidy_label(label: str) -> str:
    """A printed label as the model shows it: the converter's spaces inside Chinese words gone."""
    text = re.sub(r"(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff（(])", "", label.strip())
    return re.sub(r"\s+", " ", text)[:60]


def _slug(label: str, kind: str, taken: set) -> str:
    """A key for a line no role names: its ASCII words if it has any, else its table and place."""
    ascii_part = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:30].strip("_")   # keys become defined names
    base = f"{kind}_{ascii_part}" if ascii_part else f"{kind}_line"
    return _unique(base, taken)


def _unique(base: str, taken: set) -> str:
    key, n = base, 2
    while key in taken or key in RESERVED:
        key, n = f"{base}_{n}", n + 1
    taken.add(key)
    return key


def _english(key: str, role: str | None = None) -> str:
    names = line_formulas().get("english", {})
    return names.get(role or "", key.replace("_", " ").capitalize())


def _signed(parts: list[tuple[int, str]]) -> str:
    text = ""
    for i, (sign, key) in enumerate(parts):
        text += (("" if sign > 0 else "-") if i == 0 else (" + " if sign > 0 else " - ")) + key
    return text


def _text(terms: list[tuple[int, str]]) -> str:
    """Signed terms as a formula: [(1, "a"), (-1, "b")] -> "a - b"; nothing is "0"."""
    out = ""
    for i, (sign, term) in enumerate(terms):
        out += (("" if sign > 0 else "-") if i == 0 else (" + " if sign > 0 else " - ")) + term
    return out or "0"


def _change(key: str) -> str:
    return f"({key} - prev({key}))"


@dataclass
class _Inference:
    """What the inference has decided so far, handed from one stage to the next."""
    by_key: dict                 # every printed line, by key (its layout data)
    formulas: dict               # line -> its forecast formula
    identities: set              # lines whose formula is the note's own definition
    checks: list
    extra: list = field(default_factory=list)      # lines the model adds to the print (drivers, helpers)
    notes: dict = field(default_factory=dict)
    effect: dict = field(default_factory=dict)     # balance-sheet leaf -> what its increase does to cash (+1 or -1)
    current: set = field(default_factory=set)      # the current assets and liabilities
    cf: dict = field(default_factory=dict)         # cash-flow leaf -> its sign in the net cash flow
    section: dict = field(default_factory=dict)    # cash-flow leaf -> operating, investing or financing
    income_signs: dict = field(default_factory=dict)  # income line -> its sign in operating or pre-tax profit
    tied: set = field(default_factory=set)         # balances a line of their own carries
    carried: dict = field(default_factory=lambda: {OPERATING: [], INVESTING: [], FINANCING: []})  # (cash sign, formula)
    rolls: bool = False                            # PP&E rolls forward with capex and D&A
    printed: dict = field(default_factory=dict)    # line -> its printed figures, one per statement year (None: blank)
    places: dict = field(default_factory=dict)     # line -> the decimals it is printed to
    by_fit: list = field(default_factory=list)     # balances filed in a section by the print's fit, for the import report
    derived: list = field(default_factory=list)    # what the stages derived, for the import report

    def carry(self, section: str, sign: int, text: str) -> None:
        """What a section's "other" line must carry: `text` with its sign of cash."""
        self.carried[section].append((sign, text))


def infer_layout(note: Note, placed) -> Inferred:
    """Layout data for the note's statements, with no plug (see the module doc). `placed` are
    the importer's rows; their `role` names the line key where it has one."""

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
        formulas[key] = formula
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
            raise LayoutInferenceError(f"the note's statements have no line the import recognises as {required} and none "
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

    # The mechanics: no plug (see the module doc), each stage over one record of what is decided.
    by_key = {line["key"]: line for line in lines}
    eps = by_role.get("eps")
    if eps and eps not in formulas:   # a reported year shows its printed EPS (on that year's share count)
        formulas[eps] = f"per_share({by_role['attributable_profit']}, shares)"
        identities.add(eps)
    b = _Inference(by_key, formulas, identities, checks, printed=_printed_figures(note, keys),
                   places=_printed_places(note, keys))
    _balance_sheet(b)
    _cash_flow_sections(b)
    _memo_parts(b)
    _equity(b)
    _flows_of_their_own(b)
    _homes(b, _sections_by_fit(b))
    derived += b.derived
    revenue_parts = _leaves_of(by_role["revenue"], formulas)
    for line in lines + b.extra:
        key = line["key"]
        if line["table"] == "drivers":
            continue
        if key in formulas:
            for k in ("driven", "implied", "method", "base"):
                line.pop(k, None)
            line["formula"] = formulas[key]
            if key in identities:
                line["identity"] = True
            if key in history_always:
                line["history"] = "always"
        elif "formula" in line:
            continue
        elif not line.get("driven"):
            line["driven"] = True
            method, base = _default_method(key, line["table"], by_key, formulas, revenue_parts)
            line["method"] = method
            if base:
                line["base"] = base
        elif "method" not in line:
            line["method"] = "fixed"
    tax = by_key.get(by_role.get("income_tax", ""))
    if tax is not None and tax.get("method") in ("tax", "cost_tax"):
        b.extra += _tax_loss_lines(note, tax["base"])
    out_lines = []
    for line in _place(lines, b.extra):
        line = {k: v for k, v in line.items() if not k.startswith("_")}
        if line["key"] in b.notes and line["table"] != "drivers":
            line["note"] = b.notes[line["key"]]
        out_lines.append(line)
    cash = by_role["cash"]

    printed = {key for (t_index, _), key in keys.items() if note.tables[t_index].kind in STATEMENTS}
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
        "chart_margins": margins, "segments": [], "roles": roles, "measures": _measures(b), "statements": statements,
        "summary": {"sheet": "摘要", "title": "盈利预测摘要", "rows": summary_rows},
        "ratios": {"sheet": "主要财务比率", "title": "主要财务比率 Key ratios", "mirrors": []},
        "lines": out_lines + ratio_lines, "checks": checks,
        # the note's own claim that its cash flow explains its balance-sheet cash, checked on the print,
        # and what each line the model computes from balances is on the note's own figures
        "report_identities": [{"key": by_role["net_cash_flow"], "zh": "现金净增加额 = 资产负债表现金变动",
                               "en": "Net change in cash = change in balance-sheet cash",
                               "formula": f"{cash} - prev({cash})"}]
        + _printed_identities(out_lines, printed, skip={cash}),
    }
    if base:
        derived.append(f"{base[0]}: " + ", ".join(f"{k} {v:,g}" for k, v in base[1].items())
                       + " printed in another table: the year before the statements' first, which their growth rates read")
    return Inferred(layout, keys, derived, base, b.by_fit)


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


def role_of(label: str, kind: str) -> str | None:
    hit = match_label(default_label_data(), kind, label)
    return hit[0] if hit else None

def _balance_sheet(b: _Inference) -> None:
    """The balance sheet's leaves and what each one's increase does to cash; cash from the cash
    flow; the balance check on assets and claims computed apart."""
    claims = [k for k in ("total_liabilities", "minority_equity", "shareholders_equity", "total_equity") if k in b.by_key]
    if "total_equity" in claims:
        claims = [k for k in claims if k not in ("minority_equity", "shareholders_equity")]
    claim_terms = ["total_liabilities_and_equity"] if "total_liabilities_and_equity" in b.by_key else claims
    assets = _signed_leaves("total_assets", b.formulas)
    if "cash" not in assets or len(assets) < 2 or not claim_terms:
        raise LayoutInferenceError("the balance sheet's totals were not recognised, so cash cannot be computed apart from them")
    b.effect = {k: -s for k, s in assets.items() if k != "cash"}   # an asset that grows takes cash
    for term in claim_terms:
        b.effect.update(_signed_leaves(term, b.formulas))           # a claim that grows brings it
    b.current = _leaves_of("current_assets", b.formulas) | _leaves_of("current_liabilities", b.formulas) \
        | (WORKING_CAPITAL_ROLES & set(b.effect))   # a note need not print the current subtotals
    b.formulas["cash"] = "prev(cash) + net_cash_flow"
    b.identities.discard("cash")
    b.notes["cash"] = "Last year's cash plus the net cash flow"
    b.checks.insert(0, {"key": "balance", "zh": "资产 = 负债 + 股东权益", "en": "Assets = liabilities + equity",
                        "actual": "total_assets", "expected": " + ".join(claim_terms)})
    b.income_signs = {**_signed_leaves("operating_profit", b.formulas), **_signed_leaves("pretax_profit", b.formulas)}


def _cash_flow_sections(b: _Inference) -> None:
    """Each cash-flow line's sign in the net cash flow and its section; a note whose net cash
    flow is not the sum of its sections in every printed year (the findings say where) gets the
    model's."""
    sections = [k for k in SECTION_TOTALS if k in b.formulas]
    if "net_cash_flow" not in b.formulas and len(sections) >= 2:
        b.formulas["net_cash_flow"] = " + ".join(sections)
        b.identities.add("net_cash_flow")
        b.checks.append({"key": "net_cash_flow_sum", "zh": "现金净增加额勾稽", "en": "Net cash flow adds up",
                         "actual": "net_cash_flow", "expected": b.formulas["net_cash_flow"]})
    b.cf = _signed_leaves("net_cash_flow", b.formulas)
    if len(b.cf) < 2:
        raise LayoutInferenceError("the cash-flow statement's net cash flow was not recognised as the sum of its sections")
    for total, name in SECTION_TOTALS.items():
        for leaf in _leaves_of(total, b.formulas):
            b.section[leaf] = name
        if total in b.cf:   # a section printed as its total alone is a line of that section
            b.section[total] = name
    if "cf_net_profit" in b.cf:
        b.formulas["cf_net_profit"] = "net_profit"
    if "eps" in b.by_key:
        b.formulas["eps"] = "per_share(attributable_profit, shares)"
        b.identities.add("eps")


def _statement_rows(note: Note, keys: dict):
    """(line key, printed row) for each statement line."""
    for (t_index, position), key in keys.items():
        table = note.tables[t_index]
        row = next((r for r in table.rows if r.position == position), None)
        if table.kind in STATEMENTS and row is not None:
            yield key, row


def _printed_figures(note: Note, keys: dict) -> dict:
    """Each statement line's printed figures in the statements' years (None where blank)."""
    return {key: [c.value if c is not None else None for c in row.cells] for key, row in _statement_rows(note, keys)}


def _printed_places(note: Note, keys: dict) -> dict:
    """Each statement line's printed decimals (the most any of its cells shows)."""
    return {key: max((c.decimals for c in row.cells if c is not None), default=0) for key, row in _statement_rows(note, keys)}


def _memo_parts(b: _Inference) -> None:
    """A cash-flow section printed as its total alone, with D&A, the working-capital change or
    capex printed below the statement as memo rows: those rows are its parts (D&A added back,
    working capital and capex with the sign the print shows), and what they leave of the total a
    line the note does not print, so that D&A is a non-cash cost in the operating section and
    capex the investing section's, as in any cash-flow statement, rather than both lost in one
    balance's change."""
    in_formulas = {k for text in b.formulas.values() for k in re.findall(r"[a-z_][a-z0-9_]*", text)}
    for total, section in SECTION_TOTALS.items():
        if total not in b.cf or total in b.formulas:   # not printed, or printed with its parts
            continue
        parts = [k for k, home in MEMO_ROWS.items() if home == total and k in b.by_key
                 and b.by_key[k]["table"] == "cashflow" and k not in b.cf and k not in in_formulas]
        if not parts:
            continue
        signs = {k: _memo_sign(b, k) for k in parts}
        rest = f"{total}_unprinted"
        label = b.by_key[total]["zh"]
        b.by_key[rest] = {"key": rest, "table": "cashflow", "zh": f"其他（报告未列示：{label}）",
                          "en": f"{_english(total)}: lines the note does not print", "fmt": "money",
                          "history": "forecast_only",   # a reported year: what the print leaves of the total
                          "implied": f"{total} - ({_text([(signs[k], k) for k in parts])})"}
        b.extra.append(b.by_key[rest])
        b.formulas[total] = _text([(signs[k], k) for k in parts] + [(1, rest)])
        b.identities.add(total)
        b.notes[total] = "Its memo rows printed below the statement, and the rest, which the note does not print"
        sign = b.cf.pop(total)
        for k in parts + [rest]:
            b.cf[k] = sign * signs.get(k, 1)
            b.section[k] = section
        b.derived.append(f"{label}: printed as its total alone; {', '.join(b.by_key[k]['zh'] for k in parts)} printed "
                         f"below the statement are its parts, the rest a line the note does not print ({rest})")


# Memo rows a cash flow printed as section totals may carry below them, and the section each belongs to.
MEMO_ROWS = {"da": "cfo", "working_capital_change": "cfo", "capex": "cfi"}


def _memo_sign(b: _Inference, key: str) -> int:
    """How a memo row adds to its section: D&A is added back; capex as printed (negative when
    printed as an outflow, else subtracted); the working-capital change as the balance sheet's
    change in working capital shows it (printed as the cash it brings, or as the increase)."""
    values = [v for v in b.printed.get(key, []) if v is not None]
    if key == "da":
        return 1
    if key == "capex":
        return 1 if sum(values) <= 0 else -1
    items = [k for k in b.current if k in b.effect and k not in NOT_WORKING_CAPITAL]
    figures = b.printed.get(key, [])
    fit = {1: 0.0, -1: 0.0}
    for i in range(1, len(figures)):
        change = [b.effect[k] * (b.printed[k][i] - b.printed[k][i - 1]) for k in items
                  if b.printed.get(k) and b.printed[k][i] is not None and b.printed[k][i - 1] is not None]
        if figures[i] is None or not change:
            continue
        for sign in fit:
            fit[sign] += abs(sign * figures[i] - sum(change))
    return 1 if fit[1] <= fit[-1] else -1


def _equity(b: _Inference) -> None:
    """Retained earnings roll forward with profit and dividends (equity as a whole where the note
    prints no parts), minorities with their share of profit; the other movements are drivers,
    which the financing section's "other" line carries."""
    formulas, effect, cf = b.formulas, b.effect, b.cf
    attributable = _signed_leaves("attributable_profit", formulas)
    minority_share = (f"{'-' if attributable['minority_pl'] > 0 else ''}minority_pl" if "minority_pl" in attributable
                      else "net_profit - attributable_profit")
    dividends = f"{'' if cf['dividends'] > 0 else '-'}dividends" if "dividends" in cf else None
    equity = "shareholders_equity" if "shareholders_equity" in effect else "total_equity" if "total_equity" in effect else None
    profit = "net_profit" if equity == "total_equity" and "minority_equity" not in effect else "attributable_profit"
    parts = [p for p in EQUITY_PARTS if p in b.by_key and p not in effect and p not in formulas]   # printed beside equity
    rolled = "retained_earnings" in effect or bool(equity and ("retained_earnings" in parts or equity not in formulas))
    if "retained_earnings" in effect or (equity and "retained_earnings" in parts):
        formulas["retained_earnings"] = f"prev(retained_earnings) + {profit}" + (f" + {dividends}" if dividends else " - d_dividends")
        b.notes["retained_earnings"] = "Roll-forward: last year + attributable profit - dividends paid"
        b.tied.add("retained_earnings")
        if not dividends:
            b.extra.append({"key": "d_dividends", "table": "drivers", "zh": "派发股利（报告未列示）",
                            "en": "Dividends paid (not printed)", "implied": f"prev(retained_earnings) + {profit} - retained_earnings"})
            b.carry(FINANCING, -1, "d_dividends")
    if equity and "retained_earnings" in parts:
        b.extra.append({"key": "other_equity_items", "table": "balance", "zh": "其他权益项目（报告未列示）",
                        "en": "Equity items the note does not print", "formula": "prev(other_equity_items) + d_other_reserves",
                        "history": "forecast_only", "implied": f"{equity} - " + " - ".join(parts)})
        b.extra.append({"key": "d_other_reserves", "table": "drivers", "zh": "其他权益项目变动（报告未披露）",
                        "en": "Other reserve movements (not disclosed)", "implied": "other_equity_items - prev(other_equity_items)"})
        b.carry(FINANCING, 1, "d_other_reserves")
        formulas[equity] = " + ".join(parts + ["other_equity_items"])
        b.notes[equity] = "The sum of its parts"
        b.tied.add(equity)
        effect.update({p: 1 for p in parts if p != "retained_earnings"})   # share capital and reserves: claims like any other
    elif equity and equity not in formulas:
        formulas[equity] = f"prev({equity}) + {profit}" + (f" + {dividends}" if dividends else "") + " + d_equity_other"
        b.notes[equity] = ("Roll-forward: last year + profit" + (" + dividends (negative)" if dividends else "")
                           + " + other equity movements (a reconciling driver)")
        b.extra.append({"key": "d_equity_other", "table": "drivers", "zh": "股东权益其他变动（报告未披露）",
                        "en": "Other equity movements (not disclosed)",
                        "implied": f"{equity} - prev({equity}) - {profit}" + (f" - ({dividends})" if dividends else "")})
        b.carry(FINANCING, 1, "d_equity_other")
        b.tied.add(equity)
    if "minority_equity" in effect and profit == "attributable_profit":
        formulas["minority_equity"] = f"prev(minority_equity) + {minority_share} + d_minority_other"
        b.notes["minority_equity"] = "Roll-forward: last year + the minorities' share of profit + their other movements (a driver)"
        b.extra.append({"key": "d_minority_other", "table": "drivers", "zh": "少数股东权益其他变动（报告未披露）",
                        "en": "Other movements in minority interests (not disclosed)",
                        "implied": f"minority_equity - prev(minority_equity) - ({minority_share})"})
        b.carry(FINANCING, 1, "d_minority_other")
        b.tied.add("minority_equity")
    if "cf_net_profit" not in cf:
        # The note's cash flow starts from no profit line of its own (its sections printed as
        # totals): the profit equity receives is cash the operating section brings in.
        for term in ([profit] if rolled else []) + (["minority_share"] if "minority_equity" in formulas
                                                   and "d_minority_other" in formulas["minority_equity"] else []):
            b.carry(OPERATING, 1, term if term != "minority_share" else f"({minority_share})")


def _flows_of_their_own(b: _Inference) -> None:
    """The cash-flow lines that are balances' changes or income-statement lines: working capital,
    the lines a role pairs with a balance, PP&E's roll-forward with capex and D&A (D&A inside an
    operating cost, so it reaches profit), the finance costs and investment income added back."""
    formulas, effect, cf = b.formulas, b.effect, b.cf
    if "working_capital_change" in cf:
        items = sorted(k for k in b.current if k in effect and k not in NOT_WORKING_CAPITAL and k not in b.tied)
        formulas["working_capital_change"] = _text([(cf["working_capital_change"] * effect[k], _change(k)) for k in items])
        b.identities.add("working_capital_change")
        b.by_key["working_capital_change"]["identity_years"] = "forecast"
        b.notes["working_capital_change"] = "The change in the operating assets and liabilities"
        b.tied |= set(items)
    for line, balances in CHANGE_OF.items():
        present = [k for k in balances if k in effect and k not in b.tied]
        if line in cf and present:
            present += _also_changed(b, line, present)
            formulas[line] = _text([(cf[line] * effect[k], _change(k)) for k in present])
            b.identities.add(line)
            b.tied |= set(present)
    b.rolls = "ppe" in effect and "capex" in cf and "da" in cf and "ppe" not in b.tied
    if b.rolls:
        received = "+ capex" if cf["capex"] < 0 else "- capex"   # the capex the PP&E receives: the cash it costs, positive
        formulas["ppe"] = f"prev(ppe) {received} - da + d_ppe_other"
        b.notes["ppe"] = "Roll-forward: capex in, D&A out, plus the movements the note does not explain (a reconciling driver)"
        b.extra.append({"key": "d_ppe_other", "table": "drivers", "zh": "固定资产其他变动（报告未披露）",
                        "en": "Other PP&E movements (not disclosed)", "implied": f"ppe - (prev(ppe) {received} - da)"})
        b.carry(INVESTING, -1, "d_ppe_other")
        b.tied.add("ppe")
        # 折旧摊销 is depreciation and amortisation: the base holds the amortised assets the note
        # prints beside PP&E, so a D&A larger than PP&E and capex (intangibles written down) is reachable
        amortised = [k for k in AMORTISED if k in effect]
        b.extra.append({"key": "depreciable_base", "table": "cashflow",
                        "zh": "折旧摊销基数（期初固定资产" + ("及无形资产等" if amortised else "") + " + 资本支出）",
                        "en": "Depreciable base (opening PP&E" + (", intangibles and the like" if amortised else "") + " + capex)",
                        "formula": f"prev(ppe) {received}" + "".join(f" + prev({k})" for k in amortised),
                        "history": "always"})
        b.by_key["da"].update(method="depreciation", base="depreciable_base", driven=True)
        host = next((h for h in DA_HOSTS if h in b.income_signs and h not in formulas), None)
        if host:
            sign = "+" if b.income_signs[host] < 0 else "-"   # a cost the subtotal subtracts grows with D&A
            formulas[host] = f"{host}_cash {sign} da"
            b.notes[host] = "Costs before D&A plus D&A (the note does not say where its D&A sits), so that D&A reaches profit"
            b.extra.append({"key": f"{host}_cash", "table": "income", "zh": f"{b.by_key[host]['zh']}（不含折旧摊销）",
                            "en": f"{_english(host)} before D&A", "driven": True, "method": "share", "base": "revenue",
                            "history": "forecast_only", "implied": f"{host} {'-' if sign == '+' else '+'} da"})
    elif "da" in cf:  # no PP&E line to depreciate: the assets the investing line carries lose it
        b.carry(INVESTING, -cf["da"], "da")
    for line, (source, sect) in ADD_BACKS.items():   # added back in the operating cash flow, paid or received elsewhere
        if line in cf and source in b.by_key and source not in formulas:
            sign = -b.income_signs.get(source, ADD_BACK_SIGNS[source])
            formulas[line] = source if sign > 0 else f"-{source}"
            b.identities.add(line)
            b.carry(sect, -cf[line], line)


def _also_changed(b: _Inference, line: str, balances: list[str]) -> list[str]:
    """The balances of the same kind the note prints under another name ("其他" non-current
    liabilities that are borrowings) whose change the printed line also is: those that, added
    to the line's own balances, make the note's own arithmetic hold in more printed years (and in
    most of them) than the line's own balances alone. A balance is only ever added by the print."""
    side = {k: b.effect[k] for k in balances}
    candidates = [k for k in OTHER_OF.get(line, ()) if k in b.effect and k not in b.tied and k not in balances
                  and b.effect[k] in side.values() and b.printed.get(k)]
    figures = b.printed.get(line, [])

    def holds(keys) -> int:
        n = 0
        for i in range(1, len(figures)):
            values = [(b.printed[k][i], b.printed[k][i - 1]) for k in keys if b.printed.get(k)]
            if figures[i] is None or len(values) != len(keys) or any(v is None for pair in values for v in pair):
                continue
            change = b.cf[line] * sum(b.effect[k] * (now - before) for k, (now, before) in zip(keys, values))
            n += abs(change - figures[i]) <= len(keys) + 0.5   # every figure printed to its unit at least
        return n
    years = sum(1 for i in range(1, len(figures)) if figures[i] is not None)
    best, best_n = [], holds(balances)
    for k in candidates:
        n = holds(balances + [k])
        if n > best_n and 2 * n > years:
            best, best_n = [k], n
    if best:
        b.derived.append(f"{b.by_key[line]['zh']}: the change of {', '.join(balances + best)} in the note's own arithmetic "
                         f"({best_n} of {years} years hold)")
    return best


# "Other" balances that may be what a cash-flow line of borrowings or investments changes.
OTHER_OF = {"short_term_debt_change": ("other_current_liabilities",),
            "long_term_debt_change": ("other_noncurrent_liabilities", "bonds_payable", "lease_liabilities"),
            "net_debt_change": ("other_noncurrent_liabilities", "bonds_payable", "lease_liabilities"),
            "lt_investment_change": ("other_noncurrent_assets",)}


def _section_by_kind(b: _Inference, key: str) -> str:
    """The cash-flow section a balance's change belongs to by its kind: operating for a current
    item other than cash and borrowings, investing for another asset, financing for another claim."""
    if key in b.current and key not in NOT_WORKING_CAPITAL:   # securities are invested, borrowings financing
        return OPERATING
    return INVESTING if b.effect[key] < 0 else FINANCING


# Balances whose label does not settle which section their change belongs to: an "other" line
# of unknown content (其他负债 may be operating payables or a financing liability; 其他流动资产 may
# hold wealth-management products), the rest of such a line the note does not print, and a line
# no role names. Their section is the one the note's own cash flow shows (`_sections_by_fit`).
SECTION_BY_FIT_ROLES = {"other_current_assets", "other_noncurrent_assets", "other_assets", "other_current_liabilities",
                        "other_noncurrent_liabilities", "other_liabilities"}
SECTIONS = (OPERATING, INVESTING, FINANCING)


def _section_unsettled(b: _Inference) -> list[str]:
    """The balances a line of their own does not carry and whose label does not settle their section."""
    out = []
    for key in b.effect:
        if key in b.tied or key in b.formulas or not any(v is not None for v in b.printed.get(key, [])
                                                           or b.printed.get(key.removesuffix("_unprinted"), [])):
            continue
        line = b.by_key.get(key, {})
        if key.endswith("_unprinted"):
            unsettled = key.removesuffix("_unprinted") in SECTION_BY_FIT_ROLES
        else:
            unsettled = line.get("_role") in SECTION_BY_FIT_ROLES or ("_role" in line and line["_role"] is None)
        if unsettled:
            out.append(key)
    return out


def _fit_residuals(b: _Inference, sections: dict) -> dict:
    """{(printed cash-flow line, year index): the printed figure less what the note's other
    figures give it} with the balances in `sections` filed there: each printed cash-flow line the
    model computes, expanded to printed lines as the findings recompute it (see
    `_printed_identities`), in every year the print gives all it reads."""
    trial = copy.deepcopy(b)
    _homes(trial, sections)
    view = {}
    for line in list(trial.by_key.values()) + trial.extra:
        key = line["key"]
        view[key] = {**line, "formula": trial.formulas[key]} if key in trial.formulas else line
    printed = set(trial.printed)
    out = {}
    for key in sorted(printed):
        if key not in trial.formulas or view.get(key, {}).get("table") != "cashflow":
            continue
        terms = _expanded(trial.formulas[key], 0, view, printed, set())
        if not terms:
            continue
        figures = trial.printed[key]
        for i, figure in enumerate(figures):
            if figure is None or any(i - lag < 0 for _, lag in terms):
                continue
            values = [(c, trial.printed[k][i - lag]) for (k, lag), c in terms.items()]
            if any(v is None for _, v in values):
                continue
            out[(key, i)] = figure - sum(c * v for c, v in values)
    return out


def _by_year(residuals: dict) -> dict:
    out: dict = {}
    for (_, i), r in residuals.items():
        out[i] = out.get(i, 0.0) + abs(r)
    return out


def _sections_by_fit(b: _Inference) -> dict:
    """{balance: section} for the balances whose label does not settle their section (see
    SECTION_BY_FIT_ROLES) that the note's own cash flow files elsewhere than their kind does: a
    balance moves to the section whose printed lines it fits best over the printed years (the least
    total absolute gap between each printed cash-flow line and what the note's other figures give
    it), one balance at a time, the best move first, and only when the move closes the gap in most
    of those years (a balance whose change happens to match a gap in one year stays where its kind
    puts it: a contradiction of the note is not absorbed by a coincidence). Each move is said in
    the import report with the fit that made it."""
    candidates = _section_unsettled(b)
    if not candidates:
        return {}
    current = _fit_residuals(b, {})
    if not current:
        return {}
    unit = 10 ** -max((b.places.get(k, 0) for k, _ in current), default=0)
    # a section with no line of its own to carry a balance hands it to another's: no choice there
    own = [s for s, lines in _free_lines(b).items() if lines]
    chosen: dict = {}
    while True:
        best = None
        for key in candidates:
            if key in chosen:
                continue
            for section in own:
                if section == _section_by_kind(b, key):
                    continue
                trial = _fit_residuals(b, {**chosen, key: section})
                # the same lines and years on both sides: a line one side computes and the other
                # leaves to a driver (calibrated to its print) misses by nothing on that side
                common = {k for k in current.keys() | trial.keys() if k[1] >= 1}   # a change needs the year before
                before = _by_year({k: current.get(k, 0.0) for k in common})
                after = _by_year({k: trial.get(k, 0.0) for k in common})
                years = sorted(before)
                better = sum(1 for i in years if after[i] < before[i] - unit / 2)
                gain = sum(before[i] - after[i] for i in years)
                if 2 * better > len(years) and gain > unit and (best is None or gain > best[0]):
                    moved = sorted({k for k, i in common if abs(trial.get((k, i), 0.0) - current.get((k, i), 0.0)) > 1e-9})
                    best = (gain, key, section, trial, better, len(years), sum(before[i] for i in years), moved)
        if best is None:
            break
        gain, key, section, current, better, years, total, moved = best
        chosen[key] = section
        names = [b.by_key[k]["zh"] for k in moved if k in b.by_key]
        line = b.by_key.get(key) or next((l for l in b.extra if l["key"] == key), {"zh": key})
        b.by_fit.append(f"{line['zh']} ({key}): its change is filed in the {section} cash flow, not the "
                        f"{_section_by_kind(b, key)} one its kind suggests (the label does not say); the note's printed "
                        f"cash-flow lines ({', '.join(names)}) then miss what its other figures give them by "
                        f"{total - gain:,.{_places_of(unit)}f} in all, against {total:,.{_places_of(unit)}f}, "
                        f"closer in {better} of {years} printed years")
    return chosen


def _places_of(unit: float) -> int:
    return max(0, -int(round(math.log10(unit))))


def _free_lines(b: _Inference) -> dict:
    """{section: the cash-flow lines of it the note prints without a definition}: drivers, one of
    which carries the section's balances."""
    cf = b.cf
    undefined = {k for k in cf if k not in b.formulas and k not in ("da", "dividends") and not (b.rolls and k == "capex")}
    return {s: [k for k in cf if k in undefined and b.section.get(k, FINANCING) == s] for s in SECTIONS}


def _homes(b: _Inference, sections: dict | None = None) -> None:
    """The balances no line of their own carries go to their section's "other" line (its home),
    less the section's other lines the note prints without a definition, which are drivers that
    move those same balances; a section without such a line hands them to another's, and a note
    without any gets a line of the model's. A balance's section is its kind's
    (`_section_by_kind`) unless `sections` files it elsewhere (`_sections_by_fit`)."""
    cf, carried = b.cf, b.carried
    for key, sign in b.effect.items():
        if key in b.tied or key in b.formulas:
            continue
        b.carry((sections or {}).get(key) or _section_by_kind(b, key), sign, _change(key))
    free = _free_lines(b)
    homes = {s: next((r for r in HOME_ROLES[s] if r in free[s]), free[s][-1]) for s in carried if carried[s] and free[s]}
    netted = {s: [k for k in free[s] if k != homes.get(s)] for s in carried}
    for sect in carried:
        if sect in homes or not (carried[sect] or netted[sect]):
            continue
        target = next((h for h in HOME_FALLBACK if h in homes), None)
        if target is None:  # the note prints no line that could carry them: the model adds one
            homes[sect] = "cf_other_balances"
            b.extra.append({"key": "cf_other_balances", "table": "cashflow", "zh": "其他资产负债变动（报告未列示）",
                            "en": "Other balance-sheet movements (not printed)"})
            b.formulas["net_cash_flow"] += " + cf_other_balances"
            cf["cf_other_balances"] = 1
            continue
        carried[target] += carried[sect]
        netted[target] += netted[sect]
        carried[sect], netted[sect] = [], []
    for sect, home in homes.items():
        terms = carried[sect] + [(-cf[k], k) for k in netted[sect]]   # the other lines move those same balances
        b.formulas[home] = _text([(cf[home] * sign, text) for sign, text in terms])
        b.notes[home] = ("What no line of its own carries: " + ", ".join(t for _, t in carried[sect])
                         + (f"; less {', '.join(netted[sect])}, drivers that move the same balances" if netted[sect] else ""))


def _gross_profit(b: _Inference) -> str | None:
    if "gross_profit" in b.by_key:
        return "gross_profit"
    if "cogs" in b.by_key:
        return "revenue - cogs" if b.income_signs.get("cogs", 0) < 0 else "revenue + cogs"
    return None


def _printed_identities(out_lines: list[dict], printed: set, skip: set = frozenset()) -> list[dict]:
    """What each printed line the model computes (a cash-flow section, its "other" line, the
    working-capital change) is on the note's own figures: its forecast formula with every line the
    note does not print replaced by what the print implies for it (a driver by its `implied`
    formula, an unprinted line by its definition), as a signed sum of printed lines. The findings
    recompute it on the print like any of the note's identities, so a printed cash-flow line its
    own balance sheet does not give is a named disagreement, or agrees within rounding, instead of
    a cell nothing explains. A roll-forward (retained earnings, PP&E) comes out as the line
    itself and says nothing; `skip` lines are checked another way (cash, by the net cash flow)."""
    by_key = {line["key"]: line for line in out_lines}
    out = []
    for line in out_lines:
        key = line["key"]
        if line["table"] not in STATEMENTS or key not in printed or key in skip or "formula" not in line:
            continue
        terms = _expanded(line["formula"], 0, by_key, printed, set())
        if terms is None:
            continue
        terms = {ref: c for ref, c in terms.items() if abs(c) > 1e-12}
        if not terms or terms == {(key, 0): 1.0}:
            continue
        formula = _lagged_text(terms)
        if line.get("identity") and formula == _lagged_text(_expanded(line["formula"], 0, {}, None, set()) or {}):
            continue  # already checked on the print as the note's own subtotal
        out.append({"key": key, "zh": f"{line['zh']}（由报告其他数字推算）",
                    "en": f"{line.get('en', key)} as the note's other figures give it", "formula": formula,
                    "identity_years": "forecast"})
    return out


def _expanded(text: str, lag: int, by_key: dict, printed: set | None, seen: set) -> dict | None:
    """`text` read `lag` years back as {(printed line, lag): coefficient}; None where it is not a
    signed sum, or reads a line that neither the print nor an implied formula gives. With
    `printed` None every line is a leaf (the formula's own terms)."""
    from udfs import formula as fx
    terms = fx.linear_terms(fx.parse(text))
    if terms is None:
        return None
    out: dict = {}
    for sign, ref in terms:
        at = lag + ref.lag
        if printed is None or ref.key in printed:
            inner = {(ref.key, at): 1.0}
        else:
            # its definition (a line the model computes from balances), else what the print
            # implies for it (a driver, a section's unprinted rest, equity items the note does not
            # print, whose roll-forward reads only itself a year back)
            line = by_key.get(ref.key) or {}
            inner = None
            if (ref.key, at) not in seen and at <= MAX_LAG and len(seen) <= 40:
                for source in (line.get("formula"), line.get("implied")):
                    inner = _expanded(source, at, by_key, printed, seen | {(ref.key, at)}) if source else None
                    if inner is not None:
                        break
            if inner is None:
                return None
        for k, c in inner.items():
            out[k] = out.get(k, 0.0) + sign * c
    return out


MAX_LAG = 6   # years back an expansion follows a line (a roll-forward reads itself a year back)


def _lagged_text(terms: dict) -> str:
    """{(line, lag): coefficient} as a formula: each line as often as its coefficient says,
    `prev()` once per year back."""
    parts = []
    for (key, lag), c in sorted(terms.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        n = int(round(abs(c)))
        if n == 0:
            continue
        ref = key
        for _ in range(lag):
            ref = f"prev({ref})"
        parts += [(1 if c > 0 else -1, ref)] * n
    return _text(parts)


def _place(out_lines: list[dict], extra: list[dict]) -> list[dict]:
    """The printed lines in their order, each added statement line after the line it serves,
    the drivers last."""
    after = {"depreciable_base": "da", "other_equity_items": "retained_earnings", "tax_loss_used": "income_tax",
             "tax_loss_new": "tax_loss_used", "tax_losses": "tax_loss_new"}
    placed = list(out_lines)
    for line in extra:
        if line["table"] == "drivers":
            continue
        anchor = after.get(line["key"]) or (line["key"].removesuffix("_cash") if line["key"].endswith("_cash") else None)
        keys = [l["key"] for l in placed]
        position = keys.index(anchor) + 1 if anchor in keys else next(
            (i + 1 for i in range(len(placed) - 1, -1, -1) if placed[i]["table"] == line["table"]), len(placed))
        placed.insert(position, line)
    return placed + [l for l in extra if l["table"] == "drivers"]


def _tax_loss_lines(note: Note, base: str) -> list[dict]:
    """Losses carried forward, the losses used against profit (`base`, the profit tax is charged
    on), their expiry (the market's, workbook/data/tax.toml) and the credit limit."""
    years = loss_carry_forward_years().get(note.exchange_market or "", 0)
    return [
        {"key": TAX_LOSS_USED, "table": "income", "zh": "本年抵扣的以前年度亏损", "en": "Tax losses brought forward used",
         "formula": f"loss_relief({base}, prev(tax_losses))", "history": "forecast_only"},
        {"key": "tax_loss_new", "table": "income", "zh": "本年新增可抵扣亏损", "en": "New tax losses",
         "formula": f"new_tax_loss({base}, d_income_tax, {TAX_CREDIT_LIMIT})", "history": "forecast_only",
         "implied": "tax_losses"},
        {"key": "tax_losses", "table": "income", "zh": "可抵扣亏损余额（结转以后年度）", "en": "Tax losses carried forward",
         "formula": "losses_carried(prev(tax_losses) - tax_loss_used + tax_loss_new, history(tax_loss_new), d_tax_loss_expiry)",
         "reported_default": 0},
        {"key": TAX_CREDIT_LIMIT, "table": "drivers", "zh": "亏损年度可确认的所得税抵免上限（0 为不确认）",
         "en": "Largest tax credit a loss-making year may book (0: none)", "input_default": 0},
        {"key": "d_tax_loss_expiry", "table": "drivers", "zh": "可抵扣亏损结转年限（年，0 为不限）",
         "en": "Years a tax loss can be carried forward (0: no limit)", "fmt": "years", "input_default": years},
    ]


def _measures(b: _Inference) -> dict:
    """What the standard sanity warnings read (workbook/data/warnings.toml), in this layout's signs."""
    out = {"cash_before_revolver": "cash"}
    if "income_tax" in b.by_key:
        out["tax_charge"] = "-income_tax" if _signed_leaves("net_profit", b.formulas).get("income_tax", -1) > 0 else "income_tax"
        base = _tax_base(b.by_key, b.formulas)
        if base and base != "pretax_profit":
            out["pretax_profit"] = base   # the profit the tax is charged on
    if "capex" in b.cf:
        out["capex_outflow"] = "capex" if b.cf["capex"] < 0 else "-capex"
    debt = [k for k in ("short_term_debt", "long_term_debt") if k in b.by_key]
    cash = [k for k in ("cash", "securities") if k in b.by_key]
    out["net_debt"] = _text([(1, k) for k in debt] + [(-1, k) for k in cash])
    if "gross_profit" not in b.by_key and _gross_profit(b):
        out["gross_profit"] = _gross_profit(b)
    out["share_count"] = "shares"
    return out


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


def _leaves_of(total: str, formulas: dict) -> set:
    """A subtotal's lines, subtotals expanded; nothing for a line that is not a subtotal."""
    return _leaves(total, formulas) if total in formulas else set()


def _signed_leaves(total: str, formulas: dict, sign: int = 1, seen: frozenset = frozenset()) -> dict:
    """{leaf: +1 or -1}: the lines a subtotal adds or subtracts, subtotals expanded."""
    if total not in formulas or total in seen:
        return {total: sign}
    out: dict = {}
    for op, key in re.findall(r"(^|[+-])\s*([a-z_][a-z0-9_]*)", formulas[total].replace(" ", "")):
        out.update(_signed_leaves(key, formulas, sign * (-1 if op == "-" else 1), seen | {total}))
    return out


def _tax_base(by_key: dict, formulas: dict) -> str | None:
    """The profit tax is charged on: pre-tax profit, or the one line net profit takes the tax from
    where the note prints no pre-tax line (营业利润 - 所得税 = 净利润)."""
    if "pretax_profit" in by_key:
        return "pretax_profit"
    terms = re.findall(r"[a-z_][a-z0-9_]*", formulas.get("net_profit", ""))
    others = [t for t in terms if t != "income_tax"]
    return others[0] if "income_tax" in terms and len(others) == 1 else None


def _default_method(key: str, table: str, by_key: dict, formulas: dict, revenue_parts: set = frozenset()) -> tuple[str, str | None]:
    if key == "revenue" or key in revenue_parts:   # revenue, or the segments it adds up
        return "growth", None
    if key == "income_tax" and _tax_base(by_key, formulas):
        added = _signed_leaves("net_profit", formulas).get("income_tax", -1) > 0
        return ("cost_tax" if added else "tax"), _tax_base(by_key, formulas)
    if table == "income":
        return "share", "revenue"
    if table == "balance":
        return "step", None
    return "fixed", None
