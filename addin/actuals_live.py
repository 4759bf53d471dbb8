"""Reported statements from a data provider, for `roll --actuals akshare:` (addin/actuals.py).

`AkshareActuals` reads an A-share's annual statements through akshare's Sina financial-report
function (`stock_financial_report_sina(stock="sz300592", symbol="资产负债表")`, and the same for
利润表 and 现金流量表: every report date of the company as a row, the statutory items in yuan as
columns, then 数据源, 是否审计, 公告日期, 币种, 类型 and 更新日期). It takes the consolidated row of
the fiscal year's 31 December, checks the currency, and hands the items to `map_statements`.

`map_statements` maps statutory items to the model's lines through the [statutory] sections of
workbook/data/label_roles.toml, in the model's unit and sign convention, then fills what the
statutory statements do not print as such from the layout's own definitions: a change in a
balance from this year's and last year's balance sheets, a subtotal from its parts, an "other"
line as what its subtotal leaves (the roles listed as residual), a line with no statutory figure
(EBITDA) by its definition with the reconciling drivers at zero. Each such line is named in the
notes; a line with a statutory role the statements lack is never derived, it is named as missing.

akshare is imported on first use (`pip install "equity-research-model[akshare]"`); the module
can be passed in (`module=`), which is how the tests replay recorded frames without a network.
Each call runs with a time limit (akshare's own requests carry none).
"""
from __future__ import annotations

import math
import re
import threading
import unicodedata
from dataclasses import dataclass

from udfs import formula as fx
from udfs.functions import GUARDED
from workbook import spec
from workbook.notes import default_label_data
from workbook.spec import CURRENCIES_FILE
from workbook.tomlfile import read_toml

from .actuals import PROVIDERS, ActualsError, ReportedYear, Request
from .quotes_live import _number, optional_package

TIMEOUT_S = 30.0           # per statement; Sina answers in about a second
MAX_LISTED = 8             # items not carried, named in full up to this many
STATUTORY = "statutory"    # the label_roles.toml section of the statutory statements
_MARKETS = read_toml(CURRENCIES_FILE).get("markets", {})

# akshare's documented frame: the report date column, and the columns after the items.
AK_DATE = "报告日"
AK_CURRENCY, AK_KIND = "币种", "类型"
AK_META = ("数据源", "是否审计", "公告日期", AK_CURRENCY, AK_KIND, "更新日期")
AK_CONSOLIDATED = "合并"   # 类型 of a consolidated statement ("合并期末"), not the parent company's
AK_STATEMENTS = {"balance": "资产负债表", "income": "利润表", "cashflow": "现金流量表"}

_NUMBERING = re.compile(r"^(?:[一二三四五六七八九十]+、|\([一二三四五六七八九十\d]+\)|(?:加|减|其中)[:：])+")
_TRAILING_PARENS = re.compile(r"\([^()]*\)$")


def statutory_title(title: str) -> str:
    """The form statutory item titles are matched in: NFKC-folded, no spaces, no leading
    numbering (一、, (二)) or 加：/减：/其中：, case ignored. Parentheses inside are kept, so that
    其他应收款(合计) and 其他应收款 stay two items."""
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(title)))
    while True:
        stripped = _NUMBERING.sub("", text)
        if stripped == text or not stripped:
            break
        text = stripped
    return text.casefold()


# ------------------------------------------------------------------------------------------------
# Statutory items to the model's lines
# ------------------------------------------------------------------------------------------------
@dataclass
class _Statement:
    """One statement's items: title as given -> value (None: listed without a figure)."""
    table: str
    items: dict

    def index(self) -> dict:
        """Folded title -> title as given, and each title without a trailing parenthesis where
        that names one item only."""
        exact = {statutory_title(t): t for t in self.items}
        loose: dict = {}
        for folded, title in exact.items():
            loose.setdefault(_TRAILING_PARENS.sub("", folded), []).append(title)
        return {**{k: v[0] for k, v in loose.items() if len(v) == 1 and k not in exact}, **exact}


def _alternative(text: str, statement: _Statement, index: dict) -> tuple[float, list[str]] | None:
    """The value of one alternative ("应收票据 + 应收账款") and the items it used, or None when
    the statement lacks one of them or none has a figure."""
    titles = [index.get(statutory_title(part)) for part in text.split("+")]
    if any(t is None for t in titles):
        return None
    values = [statement.items[t] for t in titles]
    if all(v is None for v in values):
        return None
    return sum(v for v in values if v is not None), titles


def _coefficient(formula: str, key: str) -> float | None:
    """How a line enters a formula that adds lines up (+1, -1), or None if it does not enter it linearly."""
    tree = fx.parse(formula)
    if not any(r.key == key and r.lag == 0 for r in fx.refs(tree)):
        return None

    def at(x: float):
        return fx.evaluate(tree, lambda k, lag: x if (k == key and lag == 0) else 0.0, GUARDED)
    low, high = at(0.0), at(1.0)
    if not all(isinstance(v, float) for v in (low, high)):
        return None
    return high - low


def _sign(layout: spec.Layout, key: str, costs: set) -> float:
    """-1 for a cost the statutory statements give positive where the layout adds it (prints it
    negative): the sign its same-year subtotal gives it, else +1."""
    if key not in costs:
        return 1.0
    for line in layout.lines:
        if line.identity and line.formula and not any(r.lag for r in fx.refs(fx.parse(line.formula))):
            coefficient = _coefficient(line.formula, key)
            if coefficient:
                return -1.0 if coefficient > 0 else 1.0
    return 1.0


class _Unknown(Exception):
    """A line a formula reads that the reported year does not have (yet)."""


def _evaluate(formula: str, known: dict, prior: dict, zeroed: set, unknown_key: str | None = None, x: float = 0.0):
    """`formula` on the known figures; the reconciling drivers in `zeroed` read 0, and
    `unknown_key` (when solving for it) reads `x`."""
    def lookup(key, lag):
        if lag:
            if key in prior:
                return prior[key]
            raise _Unknown(key)
        if key == unknown_key:
            return x
        if key in known:
            return known[key]
        if key in zeroed:
            return 0.0
        raise _Unknown(key)
    value = fx.evaluate(fx.parse(formula), lookup, GUARDED)
    return value if isinstance(value, float) and math.isfinite(value) else None


def map_statements(statements: dict, request: Request, scale: float, source: str) -> ReportedYear:
    """The reported year in the model's lines from statutory statements (`statements`: table ->
    {item title: value in yuan or None}); lines it cannot fill are left out, for the roll to
    name (`scale`: yuan per unit of the model's money, 1e6 for 百万元)."""
    data = default_label_data().section(STATUTORY)
    residual, costs = set(data.get("residual", [])), set(data.get("costs", []))
    layout = request.layout
    lines = {line.key: line for line in layout.lines}
    wanted = [key for key, line in lines.items() if line.table in spec.STATEMENTS and key in layout.reported_keys]
    roles = {key: [key] + [role for role, target in layout.aliases.items() if target == key] for key in wanted}
    known, used, notes = {}, set(), []
    listed = {key for key in wanted for role in roles[key] if role in data.get(lines[key].table, {})}
    for key in wanted:
        table = lines[key].table
        statement = _Statement(table, statements.get(table, {}))
        index = statement.index()
        for role in roles[key]:
            for alternative in data.get(table, {}).get(role, []):
                found = _alternative(alternative, statement, index)
                if found is not None:
                    value, _titles = found
                    per_share = lines[key].fmt in ("eps", "price")
                    known[key] = (value if per_share else value / scale) * _sign(layout, key, costs)
                    # every item the role names is accounted for, the parts of the total it took too
                    used.update((table, index[statutory_title(part)]) for other in data[table][role]
                                for part in other.split("+") if statutory_title(part) in index)
                    break
            if key in known:
                break
    derived = _derive(known, request.prior, lines, [k for k in wanted if k not in listed or k in residual], residual,
                      layout.reported_defaults)
    for key, how in derived.items():
        notes.append(f"{key}: {how}")
    missing = [key for key in wanted if key not in known]
    if missing:
        notes.append(f"not in {source}'s statements: {', '.join(missing)}")
    carried = [(table, title, value) for table, items in statements.items() for title, value in items.items()
               if (table, title) not in used and value not in (None, 0)]
    if carried:
        shown = ", ".join(f"{title} {value / scale:,.1f}" for _, title, value in carried[:MAX_LISTED])
        more = f" and {len(carried) - MAX_LISTED} more" if len(carried) > MAX_LISTED else ""
        notes.append(f"statutory items the layout has no line for (inside its subtotals and other lines, or memo items): "
                     f"{shown}{more}")
    return ReportedYear(request.reported, known, source, notes)


def _derive(known: dict, prior: dict, lines: dict, derivable: list[str], residual: set, defaults: dict) -> dict:
    """Fill `derivable` lines (those with no statutory role, and the residual "other" lines) from
    the layout's definitions, as far as the known figures go (a line notes never print reads its
    default, `defaults`); line key -> how, for the notes."""
    drivers = {key for key, line in lines.items() if line.table == spec.DRIVERS}
    drivers |= {f"d_{key}" for key, line in lines.items() if line.driven}
    how: dict = {}
    progress = True
    while progress:
        progress = False
        for key in [k for k in derivable if k not in known]:
            line = lines[key]
            if key in residual:  # what a same-year subtotal leaves
                for parent in lines.values():
                    if not (parent.identity and parent.formula and parent.key in known) or \
                            any(r.lag for r in fx.refs(fx.parse(parent.formula))):
                        continue
                    try:
                        low = _evaluate(parent.formula, {**defaults, **known}, prior, set(), key, 0.0)
                        high = _evaluate(parent.formula, {**defaults, **known}, prior, set(), key, 1.0)
                    except _Unknown:
                        continue
                    if low is None or high is None or high == low:
                        continue
                    known[key] = (known[parent.key] - low) / (high - low)
                    how[key] = f"what {parent.key} leaves ({parent.key} = {parent.formula})"
                    progress = True
                    break
                continue
            if not line.formula:
                continue
            zeroed = {r.key for r in fx.refs(fx.parse(line.formula)) if r.key in drivers}
            try:
                value = _evaluate(line.formula, {**defaults, **known}, prior, zeroed)
            except _Unknown:
                continue
            if value is None:
                continue
            known[key] = value
            how[key] = (f"by the layout's definition {line.formula}"
                        + (f" with {', '.join(sorted(zeroed))} at 0" if zeroed else ""))
            progress = True
    return how


# ------------------------------------------------------------------------------------------------
# akshare
# ------------------------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def call_with_timeout(function, timeout: float, what: str, **kwargs):
    """`function(**kwargs)` in a daemon thread, waited for at most `timeout` seconds: an answer
    that does not come is one ActualsError line, and the abandoned call cannot keep the command
    from ending."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = function(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - the library raises whatever its HTTP stack raises
            outcome["error"] = exc
    worker = threading.Thread(target=run, name=f"actuals {what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ActualsError(f"akshare: no answer for {what} within {timeout:g} s; check the network connection, or fill an "
                           "actuals file (roll --template)")
    if "error" in outcome:
        raise ActualsError(f"akshare: could not fetch {what} ({_one_line(outcome['error'])}); check the network "
                           "connection, or fill an actuals file (roll --template)")
    return outcome["value"]


class AkshareActuals:
    """An A-share's annual statements through akshare's `stock_financial_report_sina`."""

    package = "akshare"
    function = "stock_financial_report_sina"

    def __init__(self, where: str = "", module=None, timeout: float = TIMEOUT_S):
        self.name = f"{self.package}:{where.strip()}"
        self._module = module
        self.timeout = timeout

    def _lib(self):
        if self._module is None:
            self._module = optional_package(self.package, "actuals source", ActualsError)
        function = getattr(self._module, self.function, None)
        if function is None:
            raise ActualsError(f"akshare has no function {self.function}; upgrade it: pip install -U akshare")
        return function

    def reported_year(self, request: Request) -> ReportedYear:
        match = re.fullmatch(r"\s*(\d{6})\.([A-Za-z]{2})\s*", request.ticker)
        market = _MARKETS.get(match.group(2).upper(), {}) if match else {}
        prefix = market.get("akshare_statements")
        if not prefix:
            raise ActualsError(f"akshare: reads the annual statements of A-shares (tickers like 300592.SZ or 600519.SH), "
                               f"not {request.ticker}; fill an actuals file instead (roll --template)")
        stock = f"{prefix}{match.group(1)}"
        year = re.search(r"\d{4}", request.year).group(0)
        date = f"{year}1231"
        scale = default_label_data().scale_of(request.unit) or 1
        function = self._lib()
        statements = {}
        for table, symbol in AK_STATEMENTS.items():
            frame = call_with_timeout(function, self.timeout, f"{stock} {symbol}", stock=stock, symbol=symbol)
            statements[table] = self._items(frame, date, request.currency, f"{stock} {symbol}")
        source = f"akshare {self.function} {stock} {date}"
        return map_statements(statements, request, float(scale), source)

    def _items(self, frame, date: str, currency: str, what: str) -> dict:
        """Item title -> value (yuan, None where the statement lists it without a figure) of the
        consolidated statement dated `date`."""
        columns = [str(c) for c in getattr(frame, "columns", [])]
        if AK_DATE not in columns:
            raise ActualsError(f"akshare: the {what} answer has no column {AK_DATE!r} (columns: "
                               f"{', '.join(columns[:6]) or 'none'}); the library's format has changed")
        rows = [row for _, row in frame.iterrows() if str(row[AK_DATE]).strip()[:8] == date
                and (AK_KIND not in columns or AK_CONSOLIDATED in str(row[AK_KIND]))]
        if not rows:
            raise ActualsError(f"akshare: {what} has no consolidated statement dated {date} (is the annual report out "
                               "yet?); fill an actuals file instead (roll --template)")
        row = rows[0]
        given = str(row[AK_CURRENCY]).strip().upper() if AK_CURRENCY in columns else currency
        if given and currency and given != currency.upper():
            raise ActualsError(f"akshare: {what} {date} is in {given}, the model reports in {currency}; refused")
        return {column: _number(row[column]) for column in columns if column != AK_DATE and column not in AK_META}


PROVIDERS["akshare"] = AkshareActuals
