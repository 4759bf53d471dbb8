"""A statement layout for a note whose tables no known layout covers, inferred from the print.

Which lines are subtotals of which is found by interval arithmetic on the printed figures
(`notes.infer_subtotals`); those become formulas. The rest are reported inputs with a driver
each. The forecast articulates as a professional's model does, with nothing left to a plug:

- cash is last year's cash plus the net cash flow, and total assets and liabilities plus equity
  are computed apart, so the balance check fails when a formula is broken;
- every cash-flow line is an income-statement line, the change of balance-sheet lines, or a
  driver that moves balance-sheet lines by the same amount. Working capital is the change of
  the operating assets and liabilities; a line whose role pairs it with a balance (borrowings,
  long-term investments, share capital) is its change; capex and D&A roll PP&E forward, D&A
  inside an operating cost so that it reaches profit; dividends and the other equity movements
  leave equity. What no line of its own carries (the other non-current assets and liabilities,
  the reconciling drivers, interest paid on the finance costs the operating cash flow adds
  back) is carried by the note's "other" line of its section, less the section's other lines
  the note prints without a definition (each a driver moving those same balances);
- equity rolls forward: from its printed parts where the note prints them (retained earnings
  with attributable profit less dividends, the rest a driver), else as a whole; minority
  interests with their share of profit; EPS is attributable profit over the share count;
- tax is charged on the profit the losses brought forward do not shelter, with the market's
  carry-forward years (workbook/data/tax.toml).

The result is a plain layout file the analyst can read and edit; the import report lists what
was inferred.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from udfs.errors import DataError
from udfs.forecast import TAX_CREDIT_LIMIT, TAX_LOSS_USED

from .notes import Note, infer_subtotals
from .tomlfile import read_toml

STATEMENTS = ("income", "balance", "cashflow")
PREFIX = {"income": "IS", "balance": "BS", "cashflow": "CF"}
# An inferred layout names its sheets itself. A note's table titles are a converter's output
# (garbled, or holding braces, slashes, quotes): the import report shows them, no sheet name
# or title template is ever made of them.
STATEMENT_SHEETS = {"income": "利润表", "balance": "资产负债表", "cashflow": "现金流量表"}
TAX_FILE = Path(__file__).parent / "data" / "tax.toml"

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
# Cash-flow lines tied to the income statement: their value is a line of it, and the cash they
# stand for moves in another section (finance costs paid, investment income received).
ADD_BACKS = {"cf_finance_expenses": ("finance_expenses", FINANCING), "cf_investment_losses": ("investment_income", INVESTING)}
ADD_BACK_SIGNS = {"finance_expenses": -1, "investment_income": 1}   # how each reaches profit when no subtotal says
GROWTH_SUFFIX = "_growth"


class LayoutInferenceError(DataError):
    """The note lacks what any three-statement model needs; the message names it."""


MAX_SLUG = 32   # characters of a label's ASCII words kept in a key (keys become defined names)


@lru_cache(maxsize=1)
def loss_carry_forward_years() -> dict:
    return dict(read_toml(TAX_FILE).get("loss_carry_forward_years", {}))


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

    def carry(self, section: str, sign: int, text: str) -> None:
        """What a section's "other" line must carry: `text` with its sign of cash."""
        self.carried[section].append((sign, text))


def infer_layout(note: Note, lines) -> dict:
    """Layout data (the TOML shape of workbook/layouts/*.toml) for the note's statements.

    `lines` are the importer's `Mapped` rows; their `role` names the line key where it has one.
    """
    from .importer import ImportFailed

    out_lines, statements, subtotals = _printed_lines(note, lines)
    formulas, identities, checks = subtotals
    by_key = {line["key"]: line for line in out_lines}
    for required in ("revenue", "net_profit", "attributable_profit", "cash", "total_assets", "net_cash_flow"):
        if required not in by_key:
            raise ImportFailed(f"the note's statements have no line the import recognises as {required}; "
                               "add its label to workbook/data/label_roles.toml")
    roles = {role: role for role in ("revenue", "net_profit", "attributable_profit", "eps", "cash", "total_assets",
                                     "total_liabilities", "shareholders_equity", "minority_equity", "net_cash_flow", "cfo",
                                     "da", "capex", "ebitda", "ebit", "operating_profit", "gross_profit", "pretax_profit")
             if role in by_key}
    if "eps" not in roles:
        raise ImportFailed("the note's income statement prints no EPS line the import recognises")
    b = _Inference(by_key, formulas, identities, checks)
    _balance_sheet(b)
    _cash_flow_sections(b)
    _equity(b)
    _flows_of_their_own(b)
    _homes(b)
    _driven_lines(b, out_lines)
    tax = next((l for l in out_lines if l["key"] == "income_tax" and l.get("method") in ("tax", "cost_tax")), None)
    if tax:
        b.extra += _tax_loss_lines(note, tax["base"])
    for line in out_lines + b.extra:
        if line["key"] in b.notes and line["table"] != "drivers":
            line["note"] = b.notes[line["key"]]
    roles["total_liabilities"] = roles.get("total_liabilities", "total_assets")
    roles["shareholders_equity"] = roles.get("shareholders_equity", "total_assets")
    return {
        "format_version": 1, "name": "inferred", "description": "inferred by `python -m addin import` from the note's print",
        "base_lines": [], "bold": sorted(k for k in formulas if k in by_key), "chart_segments": ["revenue"],
        "chart_margins": ["net_margin"], "segments": [], "roles": roles, "measures": _measures(b),
        "statements": statements,
        "summary": {"sheet": "摘要", "title": "盈利预测摘要",
                    "rows": [{"key": k} for k in ("revenue", "attributable_profit", "eps") if k in by_key]},
        "ratios": {"sheet": "主要财务比率", "title": "主要财务比率 Key ratios", "mirrors": []},
        "lines": _place(out_lines, b.extra) + _ratio_lines(b), "checks": checks,
        "report_identities": [{"key": "net_cash_flow", "zh": "现金净增加额 = 资产负债表现金变动",
                               "en": "Net increase in cash = change in balance-sheet cash", "formula": "cash - prev(cash)"}],
    }


def _printed_lines(note: Note, lines) -> tuple[list, list, tuple]:
    """Every printed statement line with its key (its role, or a slug), the statements, and the
    subtotals found in the print: (formulas, identities, their checks)."""
    keys_by_row: dict = {}
    taken: set = set()
    out_lines, statements, checks = [], [], []
    formulas: dict = {}
    identities: set = set()
    mapped = {(m.kind, m.label): m for m in lines}
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
            text = _text(parts)
            formulas[total] = text
            identities.add(total)
            checks.append({"key": f"{total}_sum", "zh": f"{subtotal.total.label}勾稽", "en": f"{_english(total)} adds up",
                           "actual": total, "expected": text})
    return out_lines, statements, (formulas, identities, checks)


def _balance_sheet(b: _Inference) -> None:
    """The balance sheet's leaves and what each one's increase does to cash; cash from the cash
    flow; the balance check on assets and claims computed apart."""
    from .importer import ImportFailed
    claims = [k for k in ("total_liabilities", "minority_equity", "shareholders_equity", "total_equity") if k in b.by_key]
    if "total_equity" in claims:
        claims = [k for k in claims if k not in ("minority_equity", "shareholders_equity")]
    claim_terms = ["total_liabilities_and_equity"] if "total_liabilities_and_equity" in b.by_key else claims
    assets = _signed_leaves("total_assets", b.formulas)
    if "cash" not in assets or len(assets) < 2 or not claim_terms:
        raise ImportFailed("the balance sheet's totals were not recognised, so cash cannot be computed apart from them")
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
    from .importer import ImportFailed
    sections = [k for k in SECTION_TOTALS if k in b.formulas]
    if "net_cash_flow" not in b.formulas and len(sections) >= 2:
        b.formulas["net_cash_flow"] = " + ".join(sections)
        b.identities.add("net_cash_flow")
        b.checks.append({"key": "net_cash_flow_sum", "zh": "现金净增加额勾稽", "en": "Net cash flow adds up",
                         "actual": "net_cash_flow", "expected": b.formulas["net_cash_flow"]})
    b.cf = _signed_leaves("net_cash_flow", b.formulas)
    if len(b.cf) < 2:
        raise ImportFailed("the cash-flow statement's net cash flow was not recognised as the sum of its sections")
    for total, name in SECTION_TOTALS.items():
        for leaf in _leaves_of(total, b.formulas):
            b.section[leaf] = name
    if "cf_net_profit" in b.cf:
        b.formulas["cf_net_profit"] = "net_profit"
    if "eps" in b.by_key:
        b.formulas["eps"] = "per_share(attributable_profit, shares)"
        b.identities.add("eps")
        b.by_key["eps"]["history"] = "always"


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
        b.extra.append({"key": "depreciable_base", "table": "cashflow", "zh": "折旧基数（期初固定资产 + 资本支出）",
                        "en": "Depreciable base (opening PP&E + capex)", "formula": f"prev(ppe) {received}", "history": "always"})
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


def _homes(b: _Inference) -> None:
    """The balances no line of their own carries go to their section's "other" line (its home),
    less the section's other lines the note prints without a definition, which are drivers that
    move those same balances; a section without such a line hands them to another's, and a note
    without any gets a line of the model's."""
    cf, carried = b.cf, b.carried
    for key, sign in b.effect.items():
        if key in b.tied or key in b.formulas:
            continue
        operating = key in b.current and key not in NOT_WORKING_CAPITAL   # securities are invested, borrowings financing
        b.carry(OPERATING if operating else INVESTING if sign < 0 else FINANCING, sign, _change(key))
    undefined = {k for k in cf if k not in b.formulas and k not in ("da", "dividends") and not (b.rolls and k == "capex")}
    free = {s: [k for k in cf if k in undefined and b.section.get(k, FINANCING) == s] for s in carried}
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


def _driven_lines(b: _Inference, out_lines: list[dict]) -> None:
    """Every line: its formula, or a driver with the method `import` starts from."""
    for line in out_lines + b.extra:
        key = line["key"]
        if line["table"] == "drivers" or "formula" in line or line.get("driven"):
            continue
        if key in b.formulas:
            line["formula"] = b.formulas[key]
            if key in b.identities:
                line["identity"] = True
        else:
            line["driven"] = True
            method, base = _default_method(key, line["table"], b.by_key, b.formulas)
            line["method"] = method
            if base:
                line["base"] = base


def _ratio_lines(b: _Inference) -> list[dict]:
    out = [{"key": "revenue_growth", "table": "ratios", "zh": "营业收入增长率", "en": "Revenue growth", "fmt": "pct",
            "formula": "growth_rate(revenue, prev(revenue))", "history": "always"},
           {"key": "net_margin", "table": "ratios", "zh": "净利率", "en": "Net margin", "fmt": "pct",
            "formula": "margin(net_profit, revenue)", "history": "always"}]
    gross = _gross_profit(b)
    if gross:
        out.append({"key": "gross_margin", "table": "ratios", "zh": "毛利率", "en": "Gross margin", "fmt": "pct",
                    "formula": f"margin({gross}, revenue)", "history": "always"})
    if "ebitda" in b.by_key:
        out.append({"key": "ebitda_margin", "table": "ratios", "zh": "EBITDA 利润率", "en": "EBITDA margin", "fmt": "pct",
                    "formula": "margin(ebitda, revenue)", "history": "always"})
    return out


def _gross_profit(b: _Inference) -> str | None:
    if "gross_profit" in b.by_key:
        return "gross_profit"
    if "cogs" in b.by_key:
        return "revenue - cogs" if b.income_signs.get("cogs", 0) < 0 else "revenue + cogs"
    return None


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


def _leaves(total: str, formulas: dict) -> set:
    """The lines a subtotal is made of, subtotals expanded."""
    if total not in formulas:
        return {total}
    out = set()
    for key in re.findall(r"[a-z_][a-z0-9_]*", formulas[total]):
        out |= _leaves(key, formulas)
    return out


def _leaves_of(total: str, formulas: dict) -> set:
    """A subtotal's lines, subtotals expanded; nothing for a line that is not a subtotal."""
    return _leaves(total, formulas) if total in formulas else set()


def _signed_leaves(total: str, formulas: dict, sign: int = 1) -> dict:
    """{leaf: +1 or -1}: the lines a subtotal adds or subtracts, subtotals expanded."""
    if total not in formulas:
        return {total: sign}
    out: dict = {}
    for op, key in re.findall(r"(^|[+-])\s*([a-z_][a-z0-9_]*)", formulas[total].replace(" ", "")):
        out.update(_signed_leaves(key, formulas, sign * (-1 if op == "-" else 1)))
    return out


def _tax_base(by_key: dict, formulas: dict) -> str | None:
    """The profit tax is charged on: pre-tax profit, or the one line net profit takes the tax from
    where the note prints no pre-tax line (营业利润 - 所得税 = 净利润)."""
    if "pretax_profit" in by_key:
        return "pretax_profit"
    terms = re.findall(r"[a-z_][a-z0-9_]*", formulas.get("net_profit", ""))
    others = [t for t in terms if t != "income_tax"]
    return others[0] if "income_tax" in terms and len(others) == 1 else None


def _default_method(key: str, table: str, by_key: dict, formulas: dict) -> tuple[str, str | None]:
    if key == "revenue" or key in _leaves_of("revenue", formulas):   # revenue, or the segments it adds up
        return "growth", None
    if key == "income_tax" and _tax_base(by_key, formulas):
        added = _signed_leaves("net_profit", formulas).get("income_tax", -1) > 0
        return ("cost_tax" if added else "tax"), _tax_base(by_key, formulas)
    if table == "income":
        return "share", "revenue"
    if table == "balance":
        return "step", None
    return "fixed", None
