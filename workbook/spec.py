"""The model, declared as data: a statement layout file (workbook/layouts/NAME.toml) gives every
line of a broker's summary table, three statements and ratio table, with its labels, number
format and formula in terms of other lines; the lines every model has whatever its layout (the
market inputs and the rating block) are declared in workbook/data/common_lines.toml, their
currency labels filled in from the company's data.

Read by the engine (udfs/engine.py) to compute and by the layout engine (workbook/layout.py) to
write the template, so the workbook and the Python model are one definition. A new broker
format is one layout file; nothing about a company, a broker or a currency lives in this code.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from udfs.engine import ALWAYS, FORECAST_ONLY, INPUT, Check, Line, SanityWarning
from udfs.errors import DataError

from .currencies import CURRENCIES_FILE
from .formats import FORMATS
from .tomlfile import TomlError, control_character, read_toml

SUMMARY, INCOME, BALANCE, CASHFLOW = "summary", "income", "balance", "cashflow"
DRIVERS, RATIOS, MARKET, RATING = "drivers", "ratios", "market", "rating"
VALUATION, VALUE = "valuation", "value"   # the yearly valuation bases, and the 估值 sheet's one-value lines
STATEMENTS = (INCOME, BALANCE, CASHFLOW)
YEARLY_TABLES = (SUMMARY, INCOME, BALANCE, CASHFLOW, RATIOS, DRIVERS)

LAYOUT_DIR = Path(__file__).parent / "layouts"
DEFAULT_LAYOUT = "everbright_hk"
LAYOUT_FORMAT_VERSION = 1
COMMON_LINES_FILE = Path(__file__).parent / "data" / "common_lines.toml"
STANDARD_WARNINGS_FILE = Path(__file__).parent / "data" / "warnings.toml"

# Roles every layout must map to one of its lines: the common lines (COMMON_LINES_FILE), the ratios a
# professional expects and the estimates history read them.
REQUIRED_ROLES = ("revenue", "net_profit", "attributable_profit", "eps", "cash", "total_assets",
                  "total_liabilities", "shareholders_equity", "net_cash_flow")


# Roles that name a group of lines rather than one: wherever a layout's formula names such a role
# it reads the sum of its lines (prev() of it the sum of their prior years). Every interest-bearing
# line, the revolver included, is debt for net debt, the EV bridge, gearing and the capital of
# ROIC; the cash and near-cash lines are what net debt nets against. A layout declares the
# members in [roles] (`interest_bearing_debt = ["short_term_debt", "long_term_debt", "revolver"]`);
# an undeclared group is the listed lines the layout has (the cash role's line for cash).
GROUP_ROLES = {
    "interest_bearing_debt": ("short_term_debt", "long_term_debt", "revolver"),
    "cash_and_equivalents": ("cash",),
}


class LayoutError(DataError):
    """A layout file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Statement:
    table: str
    sheet: str
    title: str
    prefix: str


@dataclass(frozen=True)
class Layout:
    name: str
    path: Path
    description: str
    statements: tuple          # of Statement, in sheet order
    lines: tuple               # of Line: every yearly line of the layout
    checks: tuple              # of Check
    summary_sheet: str
    summary_title: str
    summary_rows: tuple        # (key, label or None)
    ratios_sheet: str
    ratios_title: str
    ratio_mirrors: tuple       # summary lines repeated at the top of the ratio sheet
    base_lines: tuple          # lines the year before the first reported one must give
    bold: frozenset
    chart_segments: tuple
    chart_margins: tuple
    segments: tuple
    roles: dict = field(default_factory=dict)
    driver_defaults: dict = field(default_factory=dict)  # driven line -> (method, base): what `import` starts from
    aliases: dict = field(default_factory=dict)          # a label role (workbook/data/label_roles.toml) -> line key
    report_identities: tuple = ()                        # Lines: a printed line's other definition, for the findings
    not_targets: frozenset = frozenset()                 # printed lines the calibration does not fit (see README)
    reported_defaults: dict = field(default_factory=dict)  # lines notes never print: their value in reported years
    input_defaults: dict = field(default_factory=dict)   # input drivers a company file may omit: their value in every forecast year
    calibrated: frozenset = frozenset()                  # reconciling drivers with no reported-year value, and unprinted
                                                         # lines whose last reported value the forecast implies: solved by calibration
    undisclosed: frozenset = frozenset()                 # lines whose definition the report does not disclose
    valuation: dict = field(default_factory=dict)        # valuation bases as formulas (see VALUATION_BASES)
    warnings: tuple = ()                                 # of SanityWarning: implausible figures, shown apart from the checks
    groups: dict = field(default_factory=dict)           # a group role (GROUP_ROLES) -> its line keys, summed where named
    segment_metrics: dict = field(default_factory=dict)  # segment -> {profit/ebitda/equity: formula} for the sum of the parts
    measures: dict = field(default_factory=dict)         # what the standard warnings read, in the layout's signs
    table_aliases: dict = field(default_factory=dict)    # (label role, table) -> the line of that table the role means there

    def role(self, name: str) -> str | None:
        return self.roles.get(name)

    def keys(self, table: str) -> list[str]:
        return [line.key for line in self.lines if line.table == table]

    @property
    def reported_keys(self) -> set[str]:
        """Lines a reported year must give: every statement line, except those computed in every
        year, those that exist only in forecasts, and those a note never prints (their default)."""
        return {line.key for line in self.lines if line.table in STATEMENTS and line.history not in (ALWAYS, FORECAST_ONLY)
                and line.key not in self.reported_defaults}


MAX_KEY = 64   # a line key is part of defined names (IS_revenue, DRV_d_revenue), which Excel caps at 255 characters
_LINE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,%d}" % (MAX_KEY - 1))


def _line(data: dict, where: str, tables: tuple = YEARLY_TABLES) -> Line:
    known = {"key", "table", "zh", "en", "fmt", "formula", "history", "identity", "identity_years", "driven", "note", "implied",
             "method", "base", "aliases", "calibration_target", "undisclosed", "reported_default", "input_default", "calibrated"}
    extra = set(data) - known
    if extra:
        raise LayoutError(f"{where}: unknown field {sorted(extra)[0]!r}; known: {', '.join(sorted(known))}")
    for required in ("key", "table", "zh", "en"):
        if not isinstance(data.get(required), str) or not data[required].strip():
            raise LayoutError(f"{where}: needs `{required}`")
    if data["table"] not in tables:
        raise LayoutError(f"{where}: table {data['table']!r} is not one of {', '.join(tables)}")
    if not _LINE_KEY.fullmatch(data["key"]):
        raise LayoutError(f"{where}: key {data['key'][:40]!r} must be letters, digits and _ (at most {MAX_KEY} characters, "
                          "not starting with a digit): it becomes part of a defined name")
    fmt = data.get("fmt", "money")
    if fmt not in FORMATS:
        raise LayoutError(f"{where}: fmt {fmt!r} is not one of {', '.join(FORMATS)}")
    history = data.get("history", FORECAST_ONLY if data["table"] == DRIVERS else INPUT)
    if history not in (INPUT, ALWAYS, FORECAST_ONLY):
        raise LayoutError(f"{where}: history {history!r} is not input, always or forecast_only")
    if data.get("driven") and data.get("formula"):
        raise LayoutError(f"{where}: a driven line takes its formula from the company's driver; remove `formula`")
    if "input_default" in data and (data["table"] != DRIVERS or data.get("implied") or not isinstance(data["input_default"], (int, float))
                                    or isinstance(data["input_default"], bool)):
        raise LayoutError(f"{where}: `input_default` is a number, for an input driver (table drivers, no `implied`)")
    if data.get("calibrated") and "reported_default" not in data \
            and (data["table"] != DRIVERS or data.get("implied") or "input_default" in data):
        raise LayoutError(f"{where}: `calibrated` marks a reconciling driver (table drivers) that has no `implied` value, "
                          "or a line notes never print whose last reported value the forecast implies (with `reported_default`)")
    return Line(data["key"], data["table"], data["zh"], data["en"], fmt=fmt, formula=data.get("formula"),
                history=history, identity=bool(data.get("identity")), identity_years=data.get("identity_years", "all"),
                driven=bool(data.get("driven")), note=str(data.get("note", "")), implied=data.get("implied"))


def parse_layout(data: dict, path: Path) -> Layout:
    name = path.name
    found = control_character(data)
    if found:
        raise LayoutError(f"{name}: {found}; remove it (a workbook cannot hold it)")
    if data.get("format_version") != LAYOUT_FORMAT_VERSION:
        raise LayoutError(f"{name}: format_version must be {LAYOUT_FORMAT_VERSION}, not {data.get('format_version')!r}")
    groups = _groups(data, name)
    data = _with_groups_expanded(data, groups)
    lines = tuple(_line(raw, f"{name}: [[lines]] #{i + 1} {raw.get('key', '')!r}") for i, raw in enumerate(data.get("lines", [])))
    keys = [line.key for line in lines]
    duplicates = {k for k in keys if keys.count(k) > 1}
    if duplicates:
        raise LayoutError(f"{name}: line {sorted(duplicates)[0]!r} is declared twice")
    reserved = {line.key for line in COMMON_LINES} & set(keys)
    if reserved:
        raise LayoutError(f"{name}: line key {sorted(reserved)[0]!r} is reserved for the market and rating lines")
    statements = []
    for i, raw in enumerate(data.get("statements", [])):
        try:
            statements.append(Statement(raw["table"], raw["sheet"], raw.get("title", raw["sheet"]), raw["prefix"]))
        except (KeyError, TypeError):
            raise LayoutError(f"{name}: [[statements]] #{i + 1} needs table, sheet and prefix") from None
    if sorted(s.table for s in statements) != sorted(STATEMENTS):
        raise LayoutError(f"{name}: [[statements]] must declare income, balance and cashflow once each")
    summary, ratios = data.get("summary") or {}, data.get("ratios") or {}
    sheet_names = [(f"[[statements]] {s.table} sheet", s.sheet) for s in statements] + [
        ("[summary] sheet", summary.get("sheet", "摘要")), ("[ratios] sheet", ratios.get("sheet", "主要财务比率"))]
    seen: dict = {}
    for where, sheet in sheet_names:
        _check_sheet_name(f"{name}: {where}", sheet)
        if sheet.casefold() in seen:
            raise LayoutError(f"{name}: {where} {sheet!r} is also the {seen[sheet.casefold()]}; sheet names must differ")
        seen[sheet.casefold()] = where
    checks = []
    for i, raw in enumerate(data.get("checks", [])):
        try:
            checks.append(Check(raw["key"], raw["zh"], raw["en"], raw["actual"], raw["expected"], float(raw.get("tolerance", 0.001))))
        except (KeyError, TypeError, ValueError):
            raise LayoutError(f"{name}: [[checks]] #{i + 1} needs key, zh, en, actual, expected") from None
    roles = {role: key for role, key in (data.get("roles") or {}).items() if role not in GROUP_ROLES}
    known = set(keys)
    for role, key in roles.items():
        if key not in known:
            raise LayoutError(f"{name}: [roles] {role} = {key!r} is not a line of the layout")
    missing = [r for r in REQUIRED_ROLES if r not in roles]
    if missing:
        raise LayoutError(f"{name}: [roles] must name the line for {missing[0]!r}")
    summary_rows = tuple((row["key"], row.get("label")) for row in summary.get("rows", []))
    defaults, aliases, table_aliases = {}, {}, {}
    for raw in data.get("lines", []):
        if raw.get("method"):
            if not raw.get("driven"):
                raise LayoutError(f"{name}: line {raw['key']!r} has a default `method` but is not driven")
            if raw.get("base") and raw["base"] not in keys:
                raise LayoutError(f"{name}: line {raw['key']!r}: base {raw['base']!r} is not a line of the layout")
            defaults[raw["key"]] = (raw["method"], raw.get("base"))
        for alias in raw.get("aliases", []):
            aliases.setdefault(alias, raw["key"])
            table_aliases[(alias, raw.get("table"))] = raw["key"]
    for listed, field_name in ((list(data.get("base_lines", [])), "base_lines"), ([k for k, _ in summary_rows], "summary rows"),
                               (list(ratios.get("mirrors", [])), "ratios.mirrors"), (list(data.get("segments", [])), "segments"),
                               (list(data.get("chart_segments", [])), "chart_segments"), (list(data.get("chart_margins", [])), "chart_margins")):
        unknown = [k for k in listed if k not in known]
        if unknown:
            raise LayoutError(f"{name}: {field_name} names {unknown[0]!r}, which is not a line of the layout")
    _check_formulas(name, lines, [k for k, _ in summary_rows])
    layout = Layout(str(data.get("name", path.stem)), path, str(data.get("description", "")), tuple(statements), lines,
                  tuple(checks), summary.get("sheet", "摘要"), summary.get("title", "盈利预测与估值"), summary_rows,
                  ratios.get("sheet", "主要财务比率"), ratios.get("title", "主要财务比率 Key ratios"),
                  tuple(ratios.get("mirrors", [])), tuple(data.get("base_lines", [])), frozenset(data.get("bold", [])),
                  tuple(data.get("chart_segments", [])), tuple(data.get("chart_margins", [])),
                  tuple(data.get("segments", [])), roles, defaults, aliases, _report_identities(data, name, known),
                  frozenset(raw["key"] for raw in data.get("lines", []) if raw.get("calibration_target") is False),
                  {raw["key"]: float(raw["reported_default"]) for raw in data.get("lines", []) if "reported_default" in raw},
                  {raw["key"]: float(raw["input_default"]) for raw in data.get("lines", []) if "input_default" in raw},
                  frozenset(raw["key"] for raw in data.get("lines", []) if raw.get("calibrated")),
                  frozenset(raw["key"] for raw in data.get("lines", []) if raw.get("undisclosed")),
                  _valuation_bases(data, roles, set(keys), name), _warnings(data, name, lines, roles), groups,
                  _segment_metrics(data, name, set(data.get("segments", []))), _measures(data, name, lines), table_aliases=table_aliases)
    plan = valuation_plan(layout)
    clash = sorted({l.key for l in plan.yearly + plan.scalars} & set(keys))
    if clash:
        raise LayoutError(f"{name}: line key {clash[0]!r} is reserved for the valuation lines")
    _check_formulas(name, lines + plan.yearly + plan.scalars, [])
    return replace(layout, warnings=layout.warnings + _common_warnings(layout, plan))


def _common_warnings(layout: Layout, plan) -> tuple:
    """The sanity warnings every model has (common_lines.toml [[warnings]]: the valuation's), for
    the lines this layout's model has; a warning on a line it lacks (no DCF) is left out."""
    from udfs import formula as fx
    known = {l.key for l in layout.lines + plan.yearly + plan.scalars} | {l.key for l in COMMON_LINES}
    own = {w.key for w in layout.warnings}
    fitting = [raw for raw in COMMON_WARNINGS if raw.get("key") not in own
               and all(r.key in known for r in fx.refs(fx.parse(raw["value"])))]
    return _warnings({"warnings": fitting}, COMMON_LINES_FILE.name, tuple(layout.lines + plan.yearly + plan.scalars),
                     standard=False)


def _segment_metrics(data: dict, name: str, segments: set) -> dict:
    """[segment_metrics.<segment>]: the segment's profit, EBITDA or book value as formulas, so the
    sum of the parts can apply P/E, EV/EBITDA or P/B to it (revenue is the segment line itself)."""
    out = {}
    for segment, metrics in (data.get("segment_metrics") or {}).items():
        where = f"{name}: [segment_metrics.{segment}]"
        if segment not in segments:
            raise LayoutError(f"{where}: {segment!r} is not one of the layout's segments")
        if not isinstance(metrics, dict) or set(metrics) - set(SEGMENT_METRIC_FIELDS) \
                or not all(isinstance(v, str) and v.strip() for v in metrics.values()):
            raise LayoutError(f"{where}: give formulas for {', '.join(SEGMENT_METRIC_FIELDS)}")
        out[segment] = dict(metrics)
    return out


def _groups(data: dict, name: str) -> dict:
    """The group roles' lines: as [roles] declares them, else the default lines the layout has."""
    declared = data.get("roles") or {}
    keys = [raw.get("key") for raw in data.get("lines", [])]
    out = {}
    for role, defaults in GROUP_ROLES.items():
        if role in keys:
            raise LayoutError(f"{name}: line key {role!r} is reserved for the group role of that name")
        if role in declared:
            members = declared[role]
            if isinstance(members, str):
                members = [members]
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise LayoutError(f"{name}: [roles] {role} must list line keys, e.g. {list(defaults)!r}")
            unknown = [m for m in members if m not in keys]
            if unknown:
                raise LayoutError(f"{name}: [roles] {role} names {unknown[0]!r}, which is not a line of the layout")
        elif role == "cash_and_equivalents":
            members = [declared["cash"]] if isinstance(declared.get("cash"), str) else []
        else:
            members = [k for k in defaults if k in keys]
        out[role] = tuple(members)
    return out


_FORMULA_STRING = re.compile(r"(\"[^\"]*\"|'[^']*')")


def expand_groups(text: str, groups: dict) -> str:
    """A formula with each group role it names replaced by the sum of the group's lines (0 for an
    empty group), prev(group) by the sum of their prior years; text in quotes is left alone."""
    parts = _FORMULA_STRING.split(text)
    for i in range(0, len(parts), 2):
        for role, members in groups.items():
            def summed(names):
                return "0" if not names else names[0] if len(names) == 1 else "(" + " + ".join(names) + ")"
            parts[i] = re.sub(rf"\bprev\(\s*{role}\s*\)", summed([f"prev({m})" for m in members]), parts[i])
            parts[i] = re.sub(rf"\b{role}\b(?!\s*\()", summed(list(members)), parts[i])
    return "".join(parts)


def _with_groups_expanded(data: dict, groups: dict) -> dict:
    """The layout's data with every formula's group roles expanded (see expand_groups)."""
    def expand(table: dict, fields) -> dict:
        return {k: expand_groups(v, groups) if k in fields and isinstance(v, str) else v for k, v in table.items()}
    out = dict(data)
    out["lines"] = [expand(raw, ("formula", "implied")) if isinstance(raw, dict) else raw for raw in data.get("lines", [])]
    out["checks"] = [expand(raw, ("actual", "expected")) if isinstance(raw, dict) else raw for raw in data.get("checks", [])]
    out["warnings"] = [expand(raw, ("value",)) if isinstance(raw, dict) else raw for raw in data.get("warnings", [])]
    out["report_identities"] = [expand(raw, ("formula",)) if isinstance(raw, dict) else raw
                                for raw in data.get("report_identities", [])]
    for table in ("valuation", "measures"):
        if isinstance(data.get(table), dict):
            out[table] = expand(data[table], tuple(data[table]))
    return out


def _measures(data: dict, name: str, lines: tuple) -> dict:
    """`[measures]`: name -> a formula the standard warnings read (tax as a positive charge, capex
    as a positive outflow, net debt), each parsed and reading only lines of the model."""
    from udfs import formula as fx
    measures = dict(data.get("measures") or {})
    known = _known_keys(lines)
    for key, text in measures.items():
        if not isinstance(text, str):
            raise LayoutError(f"{name}: [measures] {key} must be a formula")
        _parsed(text, known, f"{name}: [measures] {key}", "formula")
    return measures


def _parsed(text: str, known: set, where: str, what: str):
    """A formula's tree, once it parses and reads only `known` lines; else one sentence."""
    from udfs import formula as fx
    try:
        tree = fx.parse(text)
    except fx.FormulaError as exc:
        raise LayoutError(f"{where}: {exc}") from None
    unknown = sorted(r.key for r in fx.refs(tree) if r.key not in known)
    if unknown:
        raise LayoutError(f"{where}: {what} {text!r} reads {unknown[0]!r}, which is not a line")
    return tree


def _known_keys(lines: tuple) -> set:
    from udfs.engine import driver_key
    known = {line.key for line in lines} | {line.key for line in globals().get("COMMON_LINES", ())}
    return known | {driver_key(line.key) for line in lines if line.driven}


_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@lru_cache(maxsize=1)
def standard_warnings() -> tuple:
    """The standard sanity warnings (STANDARD_WARNINGS_FILE), as written: values with {names}."""
    try:
        data = read_toml(STANDARD_WARNINGS_FILE)
    except TomlError as exc:
        raise LayoutError(str(exc)) from None
    if data.get("format_version") != LAYOUT_FORMAT_VERSION:
        raise LayoutError(f"{STANDARD_WARNINGS_FILE.name}: format_version must be {LAYOUT_FORMAT_VERSION}")
    return tuple(data.get("warnings", []))


def _standard_for(data: dict, lines: tuple, roles: dict) -> list[dict]:
    """The standard warnings this layout can read, each {name} filled in from its measures,
    roles or lines; a warning naming what the layout lacks does not apply."""
    measures = dict(data.get("measures") or {})
    keys = {line.key for line in lines} | {line.key for line in COMMON_LINES}
    out = []
    for raw in standard_warnings():
        names = _PLACEHOLDER.findall(raw["value"])
        fill = {}
        for n in names:
            fill[n] = f"({measures[n]})" if n in measures else roles.get(n) or (n if n in keys else None)
        if all(fill.values()):
            out.append({**raw, "value": _PLACEHOLDER.sub(lambda m: fill[m.group(1)], raw["value"])})
    return out


def _warnings(data: dict, name: str, lines: tuple, roles: dict | None = None, standard: bool = True) -> tuple:
    """The standard warnings the layout can read (unless `standard` is false), then `[[warnings]]`
    (key, zh, en, `value` a formula, at least one of `min` and `max`), which replace a standard
    one of the same key."""
    from udfs import formula as fx
    known = _known_keys(lines)
    own = list(data.get("warnings", []))
    own_keys = {raw.get("key") for raw in own}
    standard = [raw for raw in _standard_for(data, lines, roles or {}) if raw["key"] not in own_keys] if standard else []
    out = []
    for i, raw in enumerate(standard + own):
        where = (f"{name}: [[warnings]] #{i - len(standard) + 1} {raw.get('key', '')!r}" if i >= len(standard)
                 else f"{STANDARD_WARNINGS_FILE.name} for {name}: {raw.get('key', '')!r}")
        extra = set(raw) - {"key", "zh", "en", "value", "min", "max"}
        if extra:
            raise LayoutError(f"{where}: unknown field {sorted(extra)[0]!r}; known: key, zh, en, value, min, max")
        for required in ("key", "zh", "en", "value"):
            if not isinstance(raw.get(required), str) or not raw[required].strip():
                raise LayoutError(f"{where}: needs `{required}`")
        bounds = [raw.get(side) for side in ("min", "max")]
        if all(b is None for b in bounds) or any(b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)))
                                                 for b in bounds):
            raise LayoutError(f"{where}: needs a number for `min`, `max` or both")
        _parsed(raw["value"], known, where, "value")
        out.append(SanityWarning(raw["key"], raw["zh"], raw["en"], raw["value"],
                                 *(None if b is None else float(b) for b in bounds)))
    keys = [w.key for w in out]
    if len(set(keys)) != len(keys):
        raise LayoutError(f"{name}: [[warnings]] key {next(k for k in keys if keys.count(k) > 1)!r} is declared twice")
    return tuple(out)


def _check_formulas(name: str, lines: tuple, summary_keys: list) -> None:
    """Every formula parses, reads only lines the model has and calls only registered functions."""
    from udfs import formula as fx
    from udfs.functions import BY_FORMULA_NAME
    known = _known_keys(lines)
    for line in lines:
        for text in (line.formula, line.implied):
            if not text:
                continue
            tree = _parsed(text, known, f"{name}: line {line.key!r}", "formula")
            functions = sorted(fx.functions_used(tree) - set(BY_FORMULA_NAME))
            if functions:
                raise LayoutError(f"{name}: line {line.key!r}: formula {text!r} calls {functions[0]!r}, which is not a "
                                  "registered function")
    missing = [k for k in summary_keys if k not in known]
    if missing:
        raise LayoutError(f"{name}: the summary shows {missing[0]!r}, which is not a line")


# What a valuation reads from a layout, as formulas in its lines: a layout's [valuation] table
# names them; a missing one defaults to the role of the same meaning.
VALUATION_BASES = {
    "earnings": "Profit the P/E is applied to, divided by the valuation year's diluted shares",
    "eps": "EPS the P/E is applied to, as a per-share line of the layout's own (layouts written before `earnings`)",
    "equity": "Equity attributable to owners (book value for P/B)",
    "revenue": "Revenue (for P/S)",
    "ebitda": "EBITDA (for EV/EBITDA and an exit multiple)",
    "ebit": "EBIT (for FCFF)",
    "da": "Depreciation and amortisation, positive (for FCFF)",
    "capex": "Capital expenditure with its cash-flow sign, negative when spent (for FCFF)",
    "wc_change": "Change in working capital with its cash-flow sign (for FCFF)",
    "net_cash": "Net cash (negative for net debt) for the bridge from EV to equity",
    "minorities": "Minority interests for the bridge",
    "investments": "Long-term investments added in the bridge",
    "dps": "Dividends per share (reporting currency), for the rating's expected dividend",
    "tax_rate": "Effective tax rate the FCFF applies to EBIT (the model's own, year by year)",
    "shares": "Shares at the year end (today's count if not given); the awards are added to make the diluted count",
    "dilutive_awards": "Dilutive awards outstanding (share options, restricted shares) added to the year-end shares",
}
_VALUATION_DEFAULTS = {"earnings": ("recurring_profit", "attributable_profit"), "shares": ("share_count",),
                       "dilutive_awards": ("d_dilutive_shares",), "equity": ("shareholders_equity",), "revenue": ("revenue",),
                       "ebitda": ("ebitda",), "ebit": ("ebit", "operating_profit"), "da": ("da",), "capex": ("capex",),
                       "wc_change": ("working_capital_change",), "minorities": ("minority_equity",),
                       "investments": ("lt_investments",)}


def _valuation_bases(data: dict, roles: dict, keys: set, name: str) -> dict:
    given = dict(data.get("valuation") or {})
    unknown = set(given) - set(VALUATION_BASES)
    if unknown:
        raise LayoutError(f"{name}: [valuation] has unknown field {sorted(unknown)[0]!r}; known: {', '.join(VALUATION_BASES)}")
    out = {}
    for base in VALUATION_BASES:
        if base in given:
            out[base] = given[base]
            continue
        if base == "earnings" and "eps" in given:
            continue   # a layout that names its EPS line keeps it
        for candidate in _VALUATION_DEFAULTS.get(base, ()):
            key = roles.get(candidate) or (candidate if candidate in keys else None)
            if key:
                out[base] = key
                break
    return out


def _report_identities(data: dict, name: str, known: set) -> tuple:
    """`[[report_identities]]`: a second definition of a printed line that the report's figures
    should also satisfy (net cash flow = change in balance-sheet cash), checked only on the print."""
    out = []
    for i, raw in enumerate(data.get("report_identities", [])):
        try:
            key, formula = raw["key"], raw["formula"]
        except (KeyError, TypeError):
            raise LayoutError(f"{name}: [[report_identities]] #{i + 1} needs key and formula") from None
        if key not in known:
            raise LayoutError(f"{name}: [[report_identities]] #{i + 1}: {key!r} is not a line of the layout")
        table = next(l["table"] for l in data.get("lines", []) if l.get("key") == key)
        out.append(Line(key, table, raw.get("zh", key), raw.get("en", key), formula=formula, identity=True,
                        identity_years=raw.get("identity_years", "all")))
    return tuple(out)


_SHEET_NAME_FORBIDDEN = set("[]:*?/\\")
MAX_SHEET_NAME = 31   # characters Excel allows in a sheet name


def _check_sheet_name(where: str, sheet) -> None:
    r"""A name Excel accepts for a sheet: text of 1-31 characters, none of [ ] : * ? / \, not
    starting or ending with an apostrophe; LayoutError saying which rule it breaks."""
    if not isinstance(sheet, str) or not sheet.strip():
        raise LayoutError(f"{where} must be a sheet name, not {sheet!r}")
    if len(sheet) > MAX_SHEET_NAME:
        raise LayoutError(f"{where} {sheet[:40]!r} is longer than the {MAX_SHEET_NAME} characters Excel allows")
    bad = sorted(_SHEET_NAME_FORBIDDEN & set(sheet))
    if bad:
        raise LayoutError(f"{where} {sheet!r} holds {bad[0]!r}, which Excel does not allow in a sheet name")
    if sheet.startswith("'") or sheet.endswith("'"):
        raise LayoutError(f"{where} {sheet!r} starts or ends with an apostrophe, which Excel does not allow")


_BY_CONTENT: dict = {}   # (digest of a layout file's bytes, file stem) -> Layout, the few a process meets
_BY_CONTENT_KEPT = 16


@lru_cache(maxsize=64)
def _load_cached(path: Path, mtime: float) -> Layout:
    """The layout at `path`, parsed once per content: a model carries its layout file, which a
    refresh writes into a scratch folder to read, so the same text comes back under ever new
    paths (a batch: hundreds of times); it is parsed and checked once and shared."""
    try:
        key = (hashlib.blake2b(path.read_bytes(), digest_size=16).digest(), path.stem)
    except OSError as exc:
        raise LayoutError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
    layout = _BY_CONTENT.get(key)
    if layout is None:
        try:
            data = read_toml(path)
        except TomlError as exc:
            raise LayoutError(str(exc)) from None
        layout = parse_layout(data, path)
        if len(_BY_CONTENT) >= _BY_CONTENT_KEPT:
            _BY_CONTENT.pop(next(iter(_BY_CONTENT)))
        _BY_CONTENT[key] = layout
    return layout if layout.path == path else replace(layout, path=path)


def load_layout(name_or_path: str | Path = DEFAULT_LAYOUT, relative_to: Path | None = None) -> Layout:
    """A layout by name (workbook/layouts/NAME.toml) or by path (relative to a company file's folder)."""
    text = str(name_or_path)
    candidates = []
    if text.endswith(".toml"):  # a path: beside the company file when relative, never the current folder's first
        candidates += [relative_to / text] if relative_to and not Path(text).is_absolute() else [Path(text)]
    else:
        candidates += ([relative_to / f"{text}.toml"] if relative_to else []) + [LAYOUT_DIR / f"{text}.toml"]
    for path in candidates:
        if path.is_file():
            return _load_cached(path.resolve(), path.stat().st_mtime)
    known = ", ".join(sorted(p.stem for p in LAYOUT_DIR.glob("*.toml")))
    raise LayoutError(f"layout {text!r} not found; known layouts: {known}")


@lru_cache(maxsize=None)
def currency_names() -> dict[str, str]:
    return dict(read_toml(CURRENCIES_FILE).get("names_zh", {}))


# English titles of the tables every layout has, for English output (`show --english`): a
# layout's own titles are its broker's Chinese.
TABLE_TITLES_EN = {INCOME: "Income statement", BALANCE: "Balance sheet", CASHFLOW: "Cash flow statement",
                   SUMMARY: "Earnings forecast and valuation", RATIOS: "Key ratios"}


def currency_zh(code: str | None) -> str:
    return currency_names().get((code or "").upper(), code or "")


def _load_common_lines(path: Path) -> tuple[list[Line], frozenset, list]:
    """The lines every model has whatever its layout (the market inputs and the rating block,
    one value each), the ones shown in bold, and the sanity warnings every model has (as their
    raw tables: each layout parses those its model can judge), from their data file."""
    try:
        data = read_toml(path)
    except TomlError as exc:
        raise LayoutError(str(exc)) from None
    if data.get("format_version") != LAYOUT_FORMAT_VERSION:
        raise LayoutError(f"{path.name}: format_version must be {LAYOUT_FORMAT_VERSION}")
    lines = [replace(_line(raw, f"{path.name}: [[lines]] #{i + 1} {raw.get('key', '')!r}", tables=(MARKET, RATING)), scalar=True)
             for i, raw in enumerate(data.get("lines", []))]
    keys = [line.key for line in lines]
    if len(set(keys)) != len(keys):
        raise LayoutError(f"{path.name}: line {next(k for k in keys if keys.count(k) > 1)!r} is declared twice")
    bold = frozenset(data.get("bold", []))
    unknown = sorted(bold - {line.key for line in lines})
    if unknown:
        raise LayoutError(f"{path.name}: bold names {unknown[0]!r}, which is not one of its lines")
    warnings = list(data.get("warnings", []))
    if not all(isinstance(w, dict) and isinstance(w.get("value"), str) for w in warnings):
        raise LayoutError(f"{path.name}: each [[warnings]] needs key, zh, en, value and min or max")
    return lines, bold, warnings


COMMON_LINES, COMMON_BOLD, COMMON_WARNINGS = _load_common_lines(COMMON_LINES_FILE)


def common_lines(quote_currency: str | None, reporting_currency: str | None) -> list[Line]:
    """The market and rating lines with their currency labels for one company."""
    names = {"quote": currency_zh(quote_currency), "reporting": currency_zh(reporting_currency),
             "QUOTE": (quote_currency or "").upper(), "REPORTING": (reporting_currency or "").upper()}
    return [replace(line, label_zh=line.label_zh.format(**names), label_en=line.label_en.format(**names))
            for line in COMMON_LINES]


def model_lines(layout: Layout, quote_currency: str | None = None, reporting_currency: str | None = None) -> list[Line]:
    """Every line of a company's model: the layout's yearly lines, the valuation lines, then the
    market and rating lines (the target price the blend's, the expected dividend the dividends
    paid within the rating horizon where the layout has dividends)."""
    plan = valuation_plan(layout)
    common = common_lines(quote_currency, reporting_currency)
    rating = {"target_price": "target_price_blend"}
    if any(line.key == "dividends_in_horizon" for line in plan.scalars):
        rating["expected_dps"] = "dividends_in_horizon"   # paid within the horizon from the price date
    common = [replace(line, formula=rating[line.key]) if line.key in rating else line for line in common]
    return list(layout.lines) + list(plan.yearly) + list(plan.scalars) + common


def __getattr__(name: str):
    """`spec.LINES`: the default layout's lines, for callers that format any line key of a model
    and do not know its company (the values-only export's number formats)."""
    if name == "LINES":
        return model_lines(load_layout(DEFAULT_LAYOUT))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------------------
# Valuation: the bases by year (估值测算) and the one-value inputs, targets and blend (估值)
# ------------------------------------------------------------------------------------------------
METHODS = (  # method key, Chinese and English names, the base its multiple applies to
    ("pe", "市盈率", "P/E", "eps"),
    ("pb", "市净率", "P/B", "bvps"),
    ("ps", "市销率", "P/S", "sales_ps"),
    ("evebitda", "EV/EBITDA", "EV/EBITDA", "ebitda"),
)
# What a segment's value may be measured on (udfs.valuation.SEGMENT_METRICS: P/E on profit, P/B on
# book, P/S on revenue, EV/EBITDA on EBITDA): the segment line itself is its revenue; a layout
# declares the others per segment in [segment_metrics.<segment>] as formulas.
SEGMENT_METRIC_FIELDS = ("profit", "ebitda", "equity")
SEGMENT_METHOD_BY_METRIC = {"revenue": "PS", "profit": "PE", "equity": "PB", "ebitda": "EV/EBITDA"}
# Inputs with a convention rather than an opinion: a company file may change them.
VALUATION_INPUT_DEFAULTS = {"dividend_lag": 0.5, "dcf_target_basis": "price_date", "blend_nm_policy": "exclude"}
YEAR_INPUTS = ("first_forecast", "last_forecast", "last_reported", "first_year_end")  # follow the years, not the analyst


@dataclass(frozen=True)
class ValuationPlan:
    """The valuation lines of one model and how the 估值 sheet groups them."""
    yearly: tuple       # Lines on 估值测算
    scalars: tuple      # Lines on 估值
    sections: tuple     # (heading, keys) for the 估值 sheet, in order
    targets: tuple      # the method target keys, in blend order (laid out together)
    weights: tuple      # the weight keys, same order (laid out together: VAL_weights)
    parts: tuple = ()   # each method's part of the blend, same order
    segment_methods: dict = field(default_factory=dict)  # segment -> the methods its metrics allow


def valuation_plan(layout: Layout) -> ValuationPlan:
    bases = layout.valuation
    yearly, scalars, sections = [], [], []

    def y(key, zh, en, formula, fmt="money", history=ALWAYS, implied=None, note=""):
        yearly.append(Line(key, VALUATION, zh, en, fmt=fmt, formula=formula, history=history, implied=implied, note=note))
        return key

    def s(key, zh, en, fmt="money", formula=None, note=""):
        scalars.append(Line(key, VALUE, zh, en, fmt=fmt, formula=formula, scalar=True, note=note))
        return key

    # ---- the per-share count: the valuation year's diluted shares ----
    y("val_basic_shares", "期末股本（百万股）", "Shares at year end (mn)", bases.get("shares", "shares"))
    y("val_awards", "潜在摊薄股数（百万股）", "Dilutive awards outstanding (mn)", bases.get("dilutive_awards", "0"),
      implied="0", note="Reported years: the share count already is today's")
    y("val_shares", "摊薄股本（估值用，百万股）", "Diluted shares for valuation (mn)",
      "diluted_shares(val_basic_shares, val_awards, award_exercise_price, price)",
      note="Every award counts; with an exercise price, by the treasury-stock method at the current price")
    if "earnings" in bases:
        y("val_eps", "估值用每股收益（摊薄，元）", "EPS for valuation (diluted)", f"per_share({bases['earnings']}, val_shares)", "eps")
    elif "eps" in bases:   # a layout written before `earnings`: its own per-share line, as it defines it
        y("val_eps", "估值用每股收益（元）", "EPS for valuation", bases["eps"], "eps")
    if "equity" in bases:
        y("val_bvps", "每股净资产（摊薄，元）", "Book value per share (diluted)", f"per_share({bases['equity']}, val_shares)", "eps")
    if "revenue" in bases:
        y("val_sales_ps", "每股营业收入（摊薄，元）", "Revenue per share (diluted)", f"per_share({bases['revenue']}, val_shares)", "eps")
    if "ebitda" in bases:
        y("val_ebitda", "EBITDA", "EBITDA", bases["ebitda"])
    # ---- the bridge: every interest-bearing line is debt (the group roles) ----
    groups = layout.groups
    y("val_cash", "现金及等价物", "Cash and equivalents", " + ".join(groups.get("cash_and_equivalents", ())) or "0")
    y("val_debt", "有息负债（含循环贷款）", "Interest-bearing debt (revolver included)",
      " + ".join(groups.get("interest_bearing_debt", ())) or "0")
    y("val_net_cash", "净现金（负值为净负债）", "Net cash (negative: net debt)", bases.get("net_cash", "val_cash - val_debt"))
    y("val_minorities", "少数股东权益", "Minority interests", bases.get("minorities", "0"))
    y("val_investments", "长期投资", "Long-term investments", bases.get("investments", "0"))
    # ---- time from the valuation date (the price date) ----
    y("val_period_end", "距估值基准日（至财年末，年）", "Years from the valuation date to the year end",
      "first_period + years_after(first_forecast)", "fx")
    y("val_bridge_flag", "离估值基准日最近的资产负债表（1）", "Balance sheet nearest the valuation date (1)",
      "nearest_balance(val_period_end)", "days")
    dcf_ready = all(b in bases for b in ("ebit", "da", "capex", "wc_change"))
    if dcf_ready:
        y("val_ebit", "息税前利润 EBIT", "EBIT", bases["ebit"])
        y("val_da", "折旧与摊销", "D&A", bases["da"])
        y("val_capex", "资本支出（现金流口径）", "Capex (cash-flow sign)", bases["capex"])
        y("val_wc", "营运资本变动（现金流口径）", "Change in working capital (cash-flow sign)", bases["wc_change"])
        if "tax_rate" in bases:
            y("val_tax_rate", "有效税率", "Effective tax rate", bases["tax_rate"], "pct")
        y("val_fcff", "企业自由现金流 FCFF", "Free cash flow to the firm",
          f"fcff(val_ebit, {'val_tax_rate' if 'tax_rate' in bases else 'val_tax'}, val_da, val_capex, val_wc)")
        y("val_flow_share", "计入估值的比例（剩余期间）", "Share of the year still to come", "flow_share(val_period_end)", "pct",
          history=FORECAST_ONLY)
        y("val_discount_period", "折现期（年）", "Discount period (years)", "discount_period(val_period_end, mid_year_switch)",
          "fx", history=FORECAST_ONLY)
        y("val_discount_factor", "折现因子", "Discount factor", "if_given(wacc, discount_factor(wacc, val_discount_period))",
          "fx", history=FORECAST_ONLY)
        y("val_pv_fcff", "FCFF 现值", "Present value of FCFF", "if_given(wacc, val_fcff * val_flow_share * val_discount_factor)",
          history=FORECAST_ONLY)
    if "dps" in bases:
        y("val_dps", "每股股息（元）", "Dividends per share", bases["dps"], "eps")
        y("val_dps_paid", "评级期内支付的每股股息（元）", "Dividends per share paid within the rating horizon",
          "dividend_in_horizon(val_dps, val_period_end, dividend_lag, rating_horizon)", "eps",
          note="A year's dividend is paid `dividend_lag` years after its year end")
    segment_lines = {}
    for segment, metrics in layout.segment_metrics.items():
        for what, formula in metrics.items():
            segment_lines[(segment, what)] = y(f"val_{segment}_{what}", f"{_label_of(layout, segment)}：分部{_METRIC_ZH[what]}",
                                               f"{segment}: segment {what}", formula)
    yearly_keys = {line.key for line in yearly}

    basis = [s("first_forecast", "首个预测年度", "First forecast year", "text"),
             s("last_forecast", "最后预测年度", "Last forecast year", "text"),
             s("last_reported", "最近报告年度", "Last reported year", "text"),
             s("valuation_date", "估值基准日（= 股价日期）", "Valuation date (the price date)", "date", "price_date"),
             s("first_year_end", "首个预测年度结束日", "First forecast year's year end", "date"),
             s("first_period", "首个预测年度末距估值基准日（年）", "Years from the valuation date to the first forecast year end",
               "fx", "year_fraction(valuation_date, first_year_end)",
               "Days to the year end over the days of that fiscal year: the stub the DCF values of the first forecast year"),
             s("rating_horizon", "评级期限（年）", "Rating horizon (years)", "money2"),
             s("dividend_lag", "股息支付时点（财年末后，年）", "Dividends paid, years after the fiscal year end", "money2")]
    if "val_dps_paid" in yearly_keys:
        basis.append(s("dividends_in_horizon", "评级期内每股股息（交易货币）", "Dividends per share paid within the horizon (trading currency)",
                       "price", "total(row(val_dps_paid)) / fx_rate",
                       "The dividends whose payment falls after the price date and within the rating horizon"))
    basis += [s("award_exercise_price", "股权激励行权价（交易货币，可选）", "Awards' exercise price (trading currency, optional)", "price")]
    sections.append(("估值基准 Valuation date, horizon and share basis", tuple(basis)))

    targets = []
    for method, zh, en, base in METHODS:
        base_key = f"val_{base}"
        if base_key not in yearly_keys:
            continue
        multiple = s(f"{method}_multiple", f"目标{zh}（倍）", f"Target {en} multiple", "multiple")
        year = s(f"{method}_year", f"{zh} 估值年度", f"{en} year", "text")
        if method == "evebitda":
            formula = (f"ev_ebitda_target({multiple}, at(val_ebitda, {year}), at(val_net_cash, {year}), "
                       f"at(val_minorities, {year}), at(val_shares, {year}), fx_rate, at(val_investments, {year}))")
        else:
            formula = f"{method}_target({multiple}, at({base_key}, {year}), fx_rate)"
        formula = f"if_given({multiple}, {formula})"  # not valued until the analyst enters a multiple
        targets.append((f"{method}_target", f"{zh} 目标价", f"Target price by {en}", formula))
        sections.append((f"{zh}估值 {en}", (multiple, year)))

    if dcf_ready:
        capm = [s("rf", "无风险利率", "Risk-free rate", "pct"), s("beta", "贝塔", "Beta", "fx"),
                s("erp", "股权风险溢价", "Equity risk premium", "pct"), s("cost_of_debt", "税前债务成本", "Pre-tax cost of debt", "pct"),
                s("val_tax", "税率", "Tax rate", "pct"), s("debt_weight", "目标债务占比 D/(D+E)", "Target debt weight", "pct"),
                s("cost_of_equity", "股权成本（CAPM）", "Cost of equity (CAPM)", "pct", "if_given(rf, cost_of_equity(rf, beta, erp))",
                  "Rolls the DCF value to the horizon when the target is stated there")]
        wacc = s("wacc", "加权平均资本成本 WACC", "WACC", "pct", "if_given(rf, wacc(rf, beta, erp, cost_of_debt, val_tax, debt_weight))",
                 "From the CAPM inputs; type a rate over it to enter WACC directly")
        growth = s("terminal_growth", "永续增长率（须低于 WACC）", "Terminal growth (below WACC)", "pct")
        mid = s("mid_year_switch", "年中折现（TRUE/FALSE）", "Mid-year convention (TRUE/FALSE)", "text")
        exit_multiple = s("exit_multiple", "退出 EV/EBITDA 倍数（可选）", "Exit EV/EBITDA multiple (optional)", "multiple")
        ebitda_n = "at(val_ebitda, last_forecast)" if "val_ebitda" in yearly_keys else None
        fcff_n = "at(val_fcff, last_forecast)"
        rows = [
            s("dcf_pv_explicit", "预测期 FCFF 现值合计", "PV of the forecast years' FCFF", "money",
              "if_given(wacc, total(forecast(val_pv_fcff)))"),
            s("dcf_terminal_value", "终值（最后预测年度末）", "Terminal value at the last forecast year end", "money",
              f"if_given(wacc, terminal_value({fcff_n}, wacc, terminal_growth"
              + (f", exit_multiple, {ebitda_n}))" if ebitda_n else "))")),
            s("dcf_tv_period", "终值折现期（年）", "Terminal value's discount period (years)", "fx",
              "tv_period(at(val_period_end, last_forecast), mid_year_switch, exit_multiple)"),
            s("dcf_pv_terminal", "终值现值", "PV of the terminal value", "money",
              "if_given(wacc, dcf_terminal_value * discount_factor(wacc, dcf_tv_period))"),
            s("dcf_ev", "DCF 企业价值（估值基准日）", "DCF enterprise value at the valuation date", "money",
              "if_given(wacc, dcf_pv_explicit + dcf_pv_terminal)"),
            s("tv_share", "终值占企业价值比例", "Terminal value share of EV", "pct", "if_given(wacc, coverage(dcf_pv_terminal, dcf_ev))")]
        if ebitda_n:
            rows.append(s("implied_exit_multiple", "隐含退出 EV/EBITDA 倍数", "Implied exit EV/EBITDA multiple", "multiple",
                          f"if_given(wacc, implied_exit_multiple(dcf_terminal_value, {ebitda_n}))"))
        rows.append(s("implied_growth", "隐含永续增长率", "Implied perpetual growth", "pct",
                      f"if_given(wacc, implied_growth(dcf_terminal_value, {fcff_n}, wacc))"))
        bridge = [s(f"bridge_{what}", f"{zh}（离估值基准日最近的资产负债表）", f"{en} at the balance nearest the valuation date",
                    fmt, f"at_flag(row(val_bridge_flag), row(val_{what}))")
                  for what, zh, en, fmt in (("net_cash", "净现金", "Net cash", "money"),
                                            ("minorities", "少数股东权益", "Minorities", "money"),
                                            ("investments", "长期投资", "Long-term investments", "money"),
                                            ("shares", "摊薄股本（百万股）", "Diluted shares (mn)", "money2"))]
        value = [s("dcf_equity", "DCF 股权价值", "DCF equity value", "money",
                   "if_given(dcf_ev, dcf_ev + bridge_net_cash - bridge_minorities + bridge_investments)"),
                 s("dcf_value", "每股价值（估值基准日）", "Value per share at the valuation date", "price",
                   "if_given(dcf_ev, equity_per_share(dcf_ev, bridge_net_cash, bridge_minorities, bridge_shares, fx_rate, "
                   "bridge_investments))"),
                 s("dcf_target_basis", "目标价口径（price_date / horizon）", "Target basis (price_date / horizon)", "text"),
                 s("dcf_basis_note", "目标价口径说明", "Target convention", "text", "dcf_basis_note(dcf_target_basis)")]
        dividends = "dividends_in_horizon" if "val_dps_paid" in yearly_keys else "0"
        targets.append(("dcf_target", "DCF 目标价", "Target price by DCF",
                        f"dcf_target(dcf_value, dcf_target_basis, cost_of_equity, rating_horizon, {dividends})"))
        sections.append(("DCF（FCFF，估值基准日 = 股价日期）", tuple(capm + [wacc, growth, mid, exit_multiple] + rows + bridge + value)))

    segment_methods = {}
    if layout.segments:
        keys = [s("sotp_year", "分部估值年度", "Sum-of-the-parts year", "text")]
        methods, multiples, metrics, values = [], [], [], []
        for segment in layout.segments:
            available = ["revenue"] + [w for w in SEGMENT_METRIC_FIELDS if (segment, w) in segment_lines]
            segment_methods[segment] = tuple(SEGMENT_METHOD_BY_METRIC[w] for w in ("profit", "equity", "revenue", "ebitda")
                                             if w in available)
            label = _label_of(layout, segment)
            methods.append(s(f"sotp_{segment}_method", f"{label}：方法（{'/'.join(segment_methods[segment])}）",
                             f"{segment}: method", "text"))
        for segment in layout.segments:
            multiples.append(s(f"sotp_{segment}_multiple", f"{_label_of(layout, segment)}：倍数", f"{segment}: multiple", "multiple"))
        for segment, method in zip(layout.segments, methods):
            given = {w: f"at({segment_lines[(segment, w)]}, sotp_year)" if (segment, w) in segment_lines else '""'
                     for w in SEGMENT_METRIC_FIELDS}
            metrics.append(s(f"sotp_{segment}_metric", f"{_label_of(layout, segment)}：估值基数（随方法）",
                             f"{segment}: what the method multiplies", "money",
                             f"segment_metric({method}, at({segment}, sotp_year), {given['profit']}, {given['ebitda']}, "
                             f"{given['equity']})",
                             "P/S: the segment's revenue; P/E, P/B, EV/EBITDA: its profit, book or EBITDA where the layout "
                             "has the line, else the cell says there is none"))
        for segment, method, multiple, metric in zip(layout.segments, methods, multiples, metrics):
            values.append(s(f"sotp_{segment}_value", f"{_label_of(layout, segment)}：价值", f"{segment}: value", "money",
                            f"if_given({multiple}, segment_value({method}, {multiple}, {metric}))"))
        keys += methods + multiples + metrics + values
        targets.append(("sotp_target", "分部加总 SOTP 目标价", "Target price by sum of the parts",
                        f"if_given(column({', '.join(multiples)}), sotp(column({', '.join(values)}), at(val_shares, sotp_year), "
                        "fx_rate, at(val_net_cash, sotp_year), at(val_minorities, sotp_year), at(val_investments, sotp_year)))"))
        sections.append(("分部加总 Sum of the parts", tuple(keys)))

    target_keys = tuple(s(k, zh, en, "price", formula) for k, zh, en, formula in targets)
    weight_keys = tuple(s(f"weight_{k.removesuffix('_target')}", f"权重：{zh}", f"Weight: {en}", "pct")
                        for k, zh, en, _ in targets)
    sections.append(("各方法目标价 Targets (trading currency)", target_keys))
    sections.append(("权重 Weights（合计 100%）", weight_keys))
    policy = s("blend_nm_policy", "加权方法非价格时：exclude 剔除并说明 / nm 结果为 NM",
               "A weighted method that is not a price: exclude (and say so) or nm", "text")
    part_keys = tuple(s(f"part_{k.removesuffix('_target')}", f"加权贡献：{zh}", f"Part of the blend: {en}", "price",
                        f"blend_part({k}, weight_{k.removesuffix('_target')}, blend_nm_policy)")
                      for k, zh, en, _ in targets)
    sections.append(("加权贡献 Parts of the blend", (policy,) + part_keys))
    blended = s("target_price_blend", "加权目标价", "Blended target price", "price",
                f"blend_target(column({', '.join(part_keys)}), column({', '.join(weight_keys)}), column({', '.join(target_keys)}))")
    note = s("blend_note", "加权说明", "What the blend did", "text", f"blend_note(column({', '.join(part_keys)}))")
    sections.append(("结论 Result", (blended, note)))
    return ValuationPlan(tuple(yearly), tuple(scalars), tuple(sections), target_keys, weight_keys, part_keys, segment_methods)


_METRIC_ZH = {"profit": "利润", "ebitda": "EBITDA", "equity": "净资产"}


def _label_of(layout: Layout, key: str) -> str:
    return next(l.label_zh for l in layout.lines if l.key == key)
