"""The model's formula language: how a line is computed from other lines, written once.

A formula is a Python-syntax expression restricted to a small whitelist, parsed with `ast` and
never executed by Python itself (no eval):

    revenue                  the line `revenue`, same year
    prev(cash)               the line `cash`, prior year; prev(a - b) reads every line of a
                             formula a year earlier
    grow(prev(iot), d_iot)   a registered function (see udfs/registry.py); d_iot is the driver
                             line of `iot` (engine.driver_key)
    a + b - c * d / e, -a    arithmetic on numbers
    1.0, "text"              constants
    forecast(fcff)           the line over the forecast years, as a row (for DCF)
    row(net_cash)            the line over every year its sheet shows, as a row
    column(a, b, c)          one-value lines side by side, as a column (for a blend)
    at(eps, pe_year)         the line in the year a one-value line names ("2026E")
    years_after(first_year)  in a yearly line: how many years its own year comes after the year a
                             one-value line names (0 in that year, negative before it)
    history(tax_loss_new)    the line from its first reported year through this year, as a row

The same parsed formula is evaluated in Python by the engine and translated to an Excel formula
by the workbook layout, so the template and the engine cannot drift apart.
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from .constants import ERR_DIV0, ERR_NUM, ERR_VALUE, EXCEL_ERRORS
from .errors import DataError

PRIOR = "prev"
_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class FormulaError(DataError):
    """A formula that is not in the language; the message names the formula and the problem."""


@dataclass(frozen=True)
class Ref:
    key: str
    lag: int  # 0 this year, 1 prior year


@dataclass(frozen=True)
class Const:
    value: float | str


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple


@dataclass(frozen=True)
class BinOp:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Neg:
    operand: object


@dataclass(frozen=True)
class Form:
    """A form that reads lines as a range rather than one value each, by `name`: `forecast(key)`
    a yearly line over the forecast years, `column(a, b, c)` one-value lines side by side,
    `at(key, year_line)` a yearly line in the year a one-value line names, `history(key)` a
    yearly line from its first reported year through the year being computed (a yearly line's
    own formula only). `keys` are the lines it names, in the order written."""
    name: str
    keys: tuple


FORECAST_ROW, ROW, COLUMN, AT, YEARS_AFTER, HISTORY = "forecast", "row", "column", "at", "years_after", "history"
# form -> (fewest, most line names it takes; None: any number), and what to say otherwise
_FORMS = {FORECAST_ROW: (1, 1, "forecast() takes one line name"),
          ROW: (1, 1, "row() takes one line name"),
          COLUMN: (1, None, "column() takes line names"),
          AT: (2, 2, "at() takes a yearly line and the line holding the year"),
          YEARS_AFTER: (1, 1, "years_after() takes the one-value line holding a year"),
          HISTORY: (1, 1, "history() takes one line name")}
ACROSS_YEARS = frozenset({FORECAST_ROW, ROW, AT})  # the forms that read a line in years other than its own


def _convert(node: ast.AST, text: str):
    if isinstance(node, ast.Name):
        return Ref(node.id, 0)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)) and not isinstance(node.value, bool):
        return Const(float(node.value) if not isinstance(node.value, str) else node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _convert(node.operand, text)
        return Neg(operand) if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return BinOp(_OPERATORS[type(node.op)], _convert(node.left, text), _convert(node.right, text))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id == PRIOR:
            if len(node.args) != 1:
                raise FormulaError(f"{text!r}: prev() takes one line name or formula")
            return _shift(_convert(node.args[0], text), text)
        if node.func.id in _FORMS:
            fewest, most, usage = _FORMS[node.func.id]
            names = tuple(a.id for a in node.args if isinstance(a, ast.Name))
            if len(names) != len(node.args) or len(names) < fewest or (most is not None and len(names) > most):
                raise FormulaError(f"{text!r}: {usage}")
            return Form(node.func.id, names)
        return Call(node.func.id, tuple(_convert(a, text) for a in node.args))
    raise FormulaError(f"{text!r}: {ast.dump(node)[:60]} is not allowed in a model formula")


def _shift(node, text: str):
    """A formula read a year earlier: prev(a - b) is prev(a) - prev(b), prev(prev(a)) two years back."""
    if isinstance(node, Ref):
        return Ref(node.key, node.lag + 1)
    if isinstance(node, Const):
        return node
    if isinstance(node, BinOp):
        return BinOp(node.op, _shift(node.left, text), _shift(node.right, text))
    if isinstance(node, Neg):
        return Neg(_shift(node.operand, text))
    if isinstance(node, Call):
        return Call(node.function, tuple(_shift(a, text) for a in node.args))
    raise FormulaError(f"{text!r}: prev() cannot read a row of years a year earlier")


@lru_cache(maxsize=4096)
def parse(text: str):
    """The formula's tree; FormulaError for anything outside the language."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"{text!r}: {exc.msg}") from None
    return _convert(tree.body, text)


def _operands(node) -> tuple:
    """The formulas inside an arithmetic or a function call (none inside a line, constant or form)."""
    if isinstance(node, BinOp):
        return node.left, node.right
    if isinstance(node, Neg):
        return (node.operand,)
    if isinstance(node, Call):
        return node.args
    return ()


def operands(node) -> tuple:
    """The formulas directly inside an arithmetic or a function call."""
    return _operands(node)


def linear_terms(node) -> list[tuple[int, Ref]] | None:
    """A formula that is a signed sum of lines, as (sign, line) pairs (a 0 adds nothing); None
    for any other formula."""
    if isinstance(node, Ref):
        return [(1, node)]
    if isinstance(node, Const) and node.value == 0:
        return []
    if isinstance(node, Neg):
        inner = linear_terms(node.operand)
        return None if inner is None else [(-s, r) for s, r in inner]
    if isinstance(node, BinOp) and node.op in ("+", "-"):
        left, right = linear_terms(node.left), linear_terms(node.right)
        if left is None or right is None:
            return None
        return left + [((1 if node.op == "+" else -1) * s, r) for s, r in right]
    return None


def refs(node) -> set[Ref]:
    """Every line the formula reads (a form reads its lines this year)."""
    if isinstance(node, Ref):
        return {node}
    if isinstance(node, Form):
        return {Ref(k, 0) for k in node.keys}
    return set().union(*(refs(a) for a in _operands(node)))


def reads_across_years(node) -> bool:
    """Whether the formula reads a line in years other than its own (forecast(), at())."""
    if isinstance(node, Form):
        return node.name in ACROSS_YEARS
    return any(reads_across_years(a) for a in _operands(node))


def functions_used(node) -> set[str]:
    own = {node.function} if isinstance(node, Call) else set()
    return own.union(*(functions_used(a) for a in _operands(node)))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def excel_arith(op: str, left, right):
    """Excel's arithmetic: an error operand propagates, text gives #VALUE!, x/0 gives #DIV/0!."""
    for operand in (left, right):
        if isinstance(operand, str) and operand in EXCEL_ERRORS:
            return operand
    if not (_is_number(left) and _is_number(right)):
        return ERR_VALUE
    if op == "/" and right == 0:
        return ERR_DIV0
    result = {"+": left + right, "-": left - right, "*": left * right}.get(op) if op != "/" else left / right
    return result if math.isfinite(result) else ERR_NUM


def evaluate(node, lookup: Callable[[str, int], object], functions: dict[str, Callable], arith: Callable = excel_arith,
             vectors=None):
    """The formula's value; `lookup(key, lag)` gives a line's value, `functions` the callables,
    `arith(op, left, right)` the arithmetic (Excel's by default; the findings use intervals).
    `vectors` answers the forms that read other years: `.forecast(key)`, `.row(key)` and
    `.history(key)` a list, `.at(key, label)` a value, `.years_after(label)` the distance of the
    formula's own year from that year; without it those forms are undefined (FormulaError)."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Form):
        if node.name == COLUMN:
            return [[lookup(k, 0)] for k in node.keys]
        if vectors is None:
            raise FormulaError(f"{node!r} needs the model's years")
        if node.name == FORECAST_ROW:
            return [vectors.forecast(node.keys[0])]
        if node.name == ROW:
            return [vectors.row(node.keys[0])]
        if node.name == YEARS_AFTER:
            return vectors.years_after(lookup(node.keys[0], 0))
        if node.name == HISTORY:
            return [vectors.history(node.keys[0])]
        key, year_line = node.keys
        return vectors.at(key, lookup(year_line, 0))
    if isinstance(node, Ref):
        value = lookup(node.key, node.lag)
        return 0.0 if value is None else value  # an empty cell is 0 in Excel arithmetic
    if isinstance(node, Neg):
        return arith("-", 0.0, evaluate(node.operand, lookup, functions, arith, vectors))
    if isinstance(node, BinOp):
        return arith(node.op, evaluate(node.left, lookup, functions, arith, vectors),
                     evaluate(node.right, lookup, functions, arith, vectors))
    if isinstance(node, Call):
        args = [evaluate(a, lookup, functions, arith, vectors) if not isinstance(a, Ref) else lookup(a.key, a.lag)
                for a in node.args]
        return functions[node.function](*args)
    raise FormulaError(f"cannot evaluate {node!r}")


@lru_cache(maxsize=4096)
def compiled(text: str) -> Callable:
    """The formula `text` made once into nested Python closures, called as `f(lookup, functions,
    vectors=None)`: the same value as `evaluate(parse(text), lookup, functions, vectors=vectors)`
    with Excel's arithmetic, without walking the tree again on every call (the engine runs a
    model's first evaluations on these, see `walked`, and `generated` formulas after). Two plain
    floats take the arithmetic's short way (same IEEE operation, same checks); anything else
    goes through `excel_arith`. Functions are looked up at each call, so a function registered
    later is found. Both caches are bounded: a batch worker meets the layouts of every model it
    refreshes, and its memory must not grow with them."""
    return _compile(parse(text))


def _compile(node) -> Callable:
    if isinstance(node, Const):
        constant = node.value
        return lambda lookup, functions, vectors=None: constant
    if isinstance(node, Ref):
        key, lag = node.key, node.lag

        def ref(lookup, functions, vectors=None):
            value = lookup(key, lag)
            return 0.0 if value is None else value  # an empty cell is 0 in Excel arithmetic
        return ref
    if isinstance(node, Form):
        form = node

        def read_form(lookup, functions, vectors=None):
            return evaluate(form, lookup, functions, vectors=vectors)
        return read_form
    if isinstance(node, Neg):
        operand = _compile(node.operand)

        def negate(lookup, functions, vectors=None):
            value = operand(lookup, functions, vectors)
            return _finite(0.0 - value) if value.__class__ is float else excel_arith("-", 0.0, value)
        return negate
    if isinstance(node, BinOp):
        return _compile_binop(node.op, _compile(node.left), _compile(node.right))
    if isinstance(node, Call):
        name = node.function
        args = tuple(_raw_ref(a) if isinstance(a, Ref) else _compile(a) for a in node.args)

        def call(lookup, functions, vectors=None):
            return functions[name](*[arg(lookup, functions, vectors) for arg in args])
        return call
    raise FormulaError(f"cannot evaluate {node!r}")


def _raw_ref(node: Ref) -> Callable:
    """A line given to a function as it is (an empty cell stays None), as `evaluate` does."""
    key, lag = node.key, node.lag
    return lambda lookup, functions, vectors=None: lookup(key, lag)


def _finite(value: float):
    return value if value - value == 0.0 else ERR_NUM   # inf - inf and nan - nan are nan


def _compile_binop(op: str, left: Callable, right: Callable) -> Callable:
    if op == "+":
        def add(lookup, functions, vectors=None):
            a, b = left(lookup, functions, vectors), right(lookup, functions, vectors)
            return _finite(a + b) if a.__class__ is float and b.__class__ is float else excel_arith("+", a, b)
        return add
    if op == "-":
        def subtract(lookup, functions, vectors=None):
            a, b = left(lookup, functions, vectors), right(lookup, functions, vectors)
            return _finite(a - b) if a.__class__ is float and b.__class__ is float else excel_arith("-", a, b)
        return subtract
    if op == "*":
        def multiply(lookup, functions, vectors=None):
            a, b = left(lookup, functions, vectors), right(lookup, functions, vectors)
            return _finite(a * b) if a.__class__ is float and b.__class__ is float else excel_arith("*", a, b)
        return multiply

    def divide(lookup, functions, vectors=None):
        a, b = left(lookup, functions, vectors), right(lookup, functions, vectors)
        if a.__class__ is float and b.__class__ is float and b != 0.0:
            return _finite(a / b)
        return excel_arith("/", a, b)
    return divide


# The formula as generated Python source: what the engine runs. `compiled` above is a closure per
# node, so a formula of n nodes costs n Python calls per year plus one per guarded function; the
# generated function is one call per line and year, its arithmetic and lookups inline, and the
# functions whose arguments are all numbers called without their guard when every argument is a
# finite float (what the guard would pass straight through; anything else, and any exception,
# goes through the guard). Same values as `evaluate`, held to it by tests/test_generated_formulas.py.

_CONST_PREFIX = "_const"


@lru_cache(maxsize=2048)
def generated(text: str, scalar_keys: frozenset = frozenset(), direct: tuple = (), scalars_first: bool = False) -> Callable:
    """The formula `text` as one generated Python function `f(get, sget, labels, pos, functions,
    vectors)`, giving `evaluate(parse(text), lookup, functions, vectors=vectors)` with Excel's
    arithmetic, where `lookup(key, lag)` reads the line `key` in the year `pos - lag` of
    `labels`: `sget(key)` for the lines in `scalar_keys` (one value), else `get((key, label))`;
    a year before the first (`pos < lag`) is None, also for a one-value line unless
    `scalars_first` (a check reads a one-value line in any year).

    `direct` is `(result, ((name, impl, arguments), ...))` (udfs.registry.direct_calls): the
    functions whose guard returns `result(impl(*args))` when each argument that must be a number
    is a finite float, the omitted ones filled as it fills them; such a call calls `impl`
    itself, and the guard only when an argument is anything else or `impl` raises. Pass
    `direct` only when `functions` holds those very guards; with `()` every call goes through
    `functions`. Made once per argument values (a bounded cache, as `compiled`'s)."""
    tree = parse(text)
    source, namespace = _Generator(scalar_keys, {name: (impl, args) for name, impl, args in direct[1]} if direct else {},
                                   scalars_first).function(tree)
    namespace.update(_ERR_NUM=ERR_NUM, _arith=excel_arith, _needs_years=_needs_years, _result=direct[0] if direct else None)
    exec(compile(source, f"<formula {text[:60]!r}>", "exec"), namespace)  # noqa: S102 - source made here from a parsed formula
    return namespace["line"]


@lru_cache(maxsize=4096)
def walked(text: str, scalar_keys: frozenset = frozenset(), scalars_first: bool = False) -> Callable:
    """`generated(text, scalar_keys, (), scalars_first)` made from `compiled(text)` instead: the
    same function of the same arguments, at once (generating costs a quarter of a millisecond
    of compiling per formula, a few runs of a whole model), slower per call. For formulas run
    only a few times (udfs.engine's plans start on these)."""
    closure = compiled(text)

    def line(get, sget, labels, pos, functions, vectors):
        def lookup(key, lag):
            if scalars_first and key in scalar_keys:
                return sget(key)
            if pos < lag:
                return None
            return sget(key) if key in scalar_keys else get((key, labels[pos - lag]))
        return closure(lookup, functions, vectors)
    return line


def _needs_years(form: Form):
    raise FormulaError(f"{form!r} needs the model's years")


class _Generator:
    """Python source of one formula, as flat statements (one temporary per node), so that a sum
    of hundreds of lines neither nests expressions past the compiler's limits nor recurses here."""

    def __init__(self, scalar_keys: frozenset, direct: dict, scalars_first: bool):
        self.scalar_keys, self.direct, self.scalars_first = scalar_keys, direct, scalars_first
        self.body: list[str] = []
        self.namespace: dict = {}
        self.lags: set = set()
        self.count = 0

    def temp(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def function(self, tree) -> tuple[str, dict]:
        result = self.node(tree)
        prologue = [f"    y{lag} = labels[pos - {lag}] if pos >= {lag} else None" if lag else "    y0 = labels[pos]"
                    for lag in sorted(self.lags)]
        source = "\n".join(["def line(get, sget, labels, pos, functions, vectors):", *prologue, *self.body,
                            f"    return {result}"])
        return source, self.namespace

    def emit(self, *statements: str, indent: int = 1) -> None:
        self.body.extend("    " * indent + s for s in statements)

    def constant(self, value) -> str:
        name = f"{_CONST_PREFIX}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def read(self, ref: Ref, raw: bool) -> str:
        """A line's value: as it is (a function's argument), or with an empty cell as 0 (arithmetic)."""
        out, key = self.temp(), repr(ref.key)
        if ref.key in self.scalar_keys:
            if self.scalars_first or ref.lag == 0:
                self.emit(f"{out} = sget({key})")
            else:
                self.lags.add(ref.lag)
                self.emit(f"{out} = sget({key}) if y{ref.lag} is not None else None")
        else:
            self.lags.add(ref.lag)
            self.emit(f"{out} = get(({key}, y{ref.lag}))")
        if not raw:
            self.emit(f"if {out} is None: {out} = 0.0")  # an empty cell is 0 in Excel arithmetic
        return out

    def node(self, tree) -> str:
        """The name holding the formula's value, its statements emitted; walked with a stack."""
        done: dict = {}     # id(node) -> the name holding its value
        pending = [(tree, False)]
        while pending:
            node, ready = pending.pop()
            if isinstance(node, Call):
                operands = [a for a in node.args if not isinstance(a, Ref)]
            else:
                operands = list(_operands(node))
            if not ready and operands:
                pending.append((node, True))
                pending.extend((operand, False) for operand in reversed(operands))
                continue
            done[id(node)] = self.value(node, done)
        return done[id(tree)]

    def value(self, node, done: dict) -> str:
        if isinstance(node, Const):
            return self.constant(node.value)
        if isinstance(node, Ref):
            return self.read(node, raw=False)
        if isinstance(node, Form):
            return self.form(node)
        if isinstance(node, Neg):
            return self.arithmetic("-", self.constant(0.0), done[id(node.operand)], negate=True)
        if isinstance(node, BinOp):
            return self.arithmetic(node.op, done[id(node.left)], done[id(node.right)])
        if isinstance(node, Call):
            return self.call(node, [self.read(a, raw=True) if isinstance(a, Ref) else done[id(a)] for a in node.args])
        raise FormulaError(f"cannot evaluate {node!r}")

    def form(self, node: Form) -> str:
        """A form as `evaluate` reads it: its lines in the formula's own year, the other years
        through `vectors`."""
        out = self.temp()
        if node.name == COLUMN:
            cells = [self.read(Ref(key, 0), raw=True) for key in node.keys]
            self.emit(f"{out} = [{', '.join(f'[{cell}]' for cell in cells)}]")
            return out
        self.emit(f"if vectors is None: _needs_years({self.constant(node)})")
        key = repr(node.keys[0])
        if node.name in (FORECAST_ROW, ROW, HISTORY):
            self.emit(f"{out} = [vectors.{ {FORECAST_ROW: 'forecast', ROW: 'row', HISTORY: 'history'}[node.name]}({key})]")
        elif node.name == YEARS_AFTER:
            self.emit(f"{out} = vectors.years_after({self.read(Ref(node.keys[0], 0), raw=True)})")
        elif node.name == AT:
            self.emit(f"{out} = vectors.at({key}, {self.read(Ref(node.keys[1], 0), raw=True)})")
        else:
            raise FormulaError(f"cannot evaluate {node!r}")
        return out

    def arithmetic(self, op: str, left: str, right: str, negate: bool = False) -> str:
        """Two plain floats the short way (the same IEEE operation and checks); else Excel's rules."""
        out = self.temp()
        floats = f"{right}.__class__ is float" if negate else f"{left}.__class__ is float and {right}.__class__ is float"
        if op == "/":
            floats += f" and {right} != 0.0"
        self.emit(f"if {floats}:")
        self.emit(f"{out} = {left} {op} {right}", f"if {out} - {out} != 0.0: {out} = _ERR_NUM", indent=2)  # inf, nan
        self.emit("else:")
        self.emit(f"{out} = _arith({op!r}, {left}, {right})", indent=2)
        return out

    def call(self, node: Call, args: list[str]) -> str:
        out, name, joined = self.temp(), repr(node.function), ", ".join(args)
        guarded = f"{out} = functions[{name}]({joined})"
        impl, spec = self.direct.get(node.function, (None, ()))
        omitted = spec[len(args):]
        if impl is None or len(args) > len(spec) or not all(may_omit for _, may_omit, _ in omitted):
            self.emit(guarded)
            return out
        given = [a for a, (number, _, _) in zip(args, spec) if number]
        every = ", ".join(args + [self.constant(fill) for _, _, fill in omitted])
        impl = self.constant(impl)
        self.emit(f"if {' and '.join(f'{a}.__class__ is float and {a} - {a} == 0.0' for a in given) or 'True'}:")
        self.emit("try:", indent=2)
        self.emit(f"{out} = {impl}({every})", indent=3)
        self.emit("except Exception:", indent=2)   # the guard maps it (or raises it, in strict mode)
        self.emit(guarded, indent=3)
        self.emit("else:", indent=2)
        self.emit(f"if not ({out}.__class__ is float and {out} - {out} == 0.0): {out} = _result({out})", indent=3)
        self.emit("else:")
        self.emit(guarded, indent=2)
        return out


def to_excel(node, address: Callable[[str, int], str], excel_name: Callable[[str], str], ranges=None) -> str:
    """The formula as Excel writes it (without the leading '='), with `address(key, lag)` giving
    each line's cell and `excel_name(function)` each function's worksheet name; `ranges` writes
    the forms that read other years: `.forecast(key)`, `.row(key)`, `.column(keys)`, `.at(key, year_key)`,
    `.years_after(year_key)`, `.history(key)`."""
    if isinstance(node, Form):
        if ranges is None:
            raise FormulaError(f"{node!r} needs the template's placement")
        if node.name == COLUMN:
            return ranges.column(node.keys)
        if node.name == ROW:
            return ranges.row(*node.keys)
        if node.name == YEARS_AFTER:
            return ranges.years_after(*node.keys)
        if node.name == HISTORY:
            return ranges.history(node.keys[0])
        return ranges.forecast(*node.keys) if node.name == FORECAST_ROW else ranges.at(*node.keys)
    if isinstance(node, Const):
        if isinstance(node.value, str):
            return '"' + node.value.replace('"', '""') + '"'
        return repr(node.value).removesuffix(".0") if float(node.value).is_integer() else repr(node.value)
    if isinstance(node, Ref):
        return address(node.key, node.lag)
    if isinstance(node, Neg):
        inner = to_excel(node.operand, address, excel_name, ranges)
        return f"-({inner})" if isinstance(node.operand, BinOp) else f"-{inner}"
    if isinstance(node, BinOp):
        left = to_excel(node.left, address, excel_name, ranges)
        right = to_excel(node.right, address, excel_name, ranges)
        if node.op in "*/" and isinstance(node.left, BinOp) and node.left.op in "+-":
            left = f"({left})"
        if isinstance(node.right, BinOp) and (node.op in "*/" or (node.op == "-" and node.right.op in "+-")):
            right = f"({right})"
        return f"{left}{node.op}{right}"
    if isinstance(node, Call):
        return f"{excel_name(node.function)}({','.join(to_excel(a, address, excel_name, ranges) for a in node.args)})"
    raise FormulaError(f"cannot translate {node!r}")
