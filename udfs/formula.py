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
    with Excel's arithmetic, without walking the tree again on every call (the engine runs
    `line_function`'s, made the same way for its stores). Two plain
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


# The formula as the engine runs it: closures as `compiled`'s, but each taking the engine's own
# stores (`get`, `sget`, the year labels and the year's position) rather than a `lookup`
# closure made per year, and calling the functions whose arguments are numbers or any value
# without their guard when every number is a finite float (what the guard would pass straight
# through; anything else, and any exception, goes through the guard). Closures, not generated
# source: no code path executes text (tests/test_hostile.py). Same values as `evaluate`, held to
# it by tests/test_engine_formulas.py.


@lru_cache(maxsize=4096)
def line_function(text: str, scalar_keys: frozenset = frozenset(), direct: tuple = (), scalars_first: bool = False) -> Callable:
    """The formula `text` as a function `f(get, sget, labels, pos, functions, vectors)`, giving
    `evaluate(parse(text), lookup, functions, vectors=vectors)` with Excel's arithmetic, where
    `lookup(key, lag)` reads the line `key` in the year `pos - lag` of `labels`: `sget(key)`
    for the lines in `scalar_keys` (one value), else `get((key, label))`; a year before the
    first (`pos < lag`) is None, also for a one-value line unless `scalars_first` (a check
    reads a one-value line in any year).

    `direct` is `(result, ((name, impl, arguments), ...))` (udfs.registry.direct_calls): the
    functions whose guard returns `result(impl(*args))` when each argument that must be a number
    is a finite float, the omitted ones filled as it fills them; such a call calls `impl`
    itself, and the guard only when an argument is anything else or `impl` raises. Pass
    `direct` only when `functions` holds those very guards; with `()` every call goes through
    `functions`. Made once per argument values (a bounded cache, as `compiled`'s)."""
    calls = {name: (impl, args) for name, impl, args in direct[1]} if direct else {}
    return _line(parse(text), scalar_keys, calls, direct[0] if direct else None, scalars_first)


def _line(node, scalar_keys: frozenset, calls: dict, result, scalars_first: bool) -> Callable:
    def inner(operand):
        return _line(operand, scalar_keys, calls, result, scalars_first)
    if isinstance(node, Const):
        constant = node.value
        return lambda get, sget, labels, pos, functions, vectors: constant
    if isinstance(node, Ref):
        return _reader(node, scalar_keys, scalars_first, raw=False)
    if isinstance(node, Form):
        form, keys = node, frozenset(k for k in node.keys if k in scalar_keys)

        def read_form(get, sget, labels, pos, functions, vectors):
            def lookup(key, lag):   # a form reads its lines in the formula's own year
                return sget(key) if key in keys else get((key, labels[pos]))
            return evaluate(form, lookup, functions, vectors=vectors)
        return read_form
    if isinstance(node, Neg):
        operand = inner(node.operand)

        def negate(get, sget, labels, pos, functions, vectors):
            value = operand(get, sget, labels, pos, functions, vectors)
            return _finite(0.0 - value) if value.__class__ is float else excel_arith("-", 0.0, value)
        return negate
    if isinstance(node, BinOp) and node.op in "+-" and isinstance(node.left, BinOp) and node.left.op in "+-":
        return _line_chain(node, scalar_keys, inner)
    if isinstance(node, BinOp) and isinstance(node.left, Ref) and isinstance(node.right, Ref):
        return _line_binop_of_lines(node.op, _place(node.left, scalar_keys, scalars_first),
                                    _place(node.right, scalar_keys, scalars_first))
    if isinstance(node, BinOp):
        return _line_binop(node.op, inner(node.left), inner(node.right))
    if isinstance(node, Call):
        if len(node.args) == 2 and all(isinstance(a, Ref) for a in node.args) and node.function in calls:
            places = [_place(a, scalar_keys, scalars_first) for a in node.args]
            made = _line_call_of_lines(node.function, places, calls[node.function], result)
            if made is not None:
                return made
        args = tuple(_reader(a, scalar_keys, scalars_first, raw=True) if isinstance(a, Ref) else inner(a) for a in node.args)
        return _line_call(node.function, args, calls.get(node.function), result)
    raise FormulaError(f"cannot evaluate {node!r}")


def _reader(ref: Ref, scalar_keys: frozenset, scalars_first: bool, raw: bool) -> Callable:
    """A line's value: as it is (a function's argument), or with an empty cell as 0 (arithmetic)."""
    key, lag = ref.key, ref.lag
    if key in scalar_keys:
        if scalars_first or lag == 0:
            def read(get, sget, labels, pos, functions, vectors):
                return sget(key)
        else:
            def read(get, sget, labels, pos, functions, vectors):
                return sget(key) if pos >= lag else None
    elif lag == 0:
        def read(get, sget, labels, pos, functions, vectors):
            return get((key, labels[pos]))
    else:
        def read(get, sget, labels, pos, functions, vectors):
            return get((key, labels[pos - lag])) if pos >= lag else None
    if raw:
        return read
    if key in scalar_keys and (scalars_first or lag == 0):
        def value(get, sget, labels, pos, functions, vectors):
            cell = sget(key)
            return 0.0 if cell is None else cell   # an empty cell is 0 in Excel arithmetic
    elif key in scalar_keys:
        def value(get, sget, labels, pos, functions, vectors):
            cell = sget(key) if pos >= lag else None
            return 0.0 if cell is None else cell
    elif lag == 0:
        def value(get, sget, labels, pos, functions, vectors):
            cell = get((key, labels[pos]))
            return 0.0 if cell is None else cell
    else:
        def value(get, sget, labels, pos, functions, vectors):
            cell = get((key, labels[pos - lag])) if pos >= lag else None
            return 0.0 if cell is None else cell
    return value


def _place(ref: Ref, scalar_keys: frozenset, scalars_first: bool) -> tuple:
    """Where a line is read, for the functions that read two lines in place (no closure per
    read): (key, lag, a one-value line?, read whatever the year?), as `_reader` reads it."""
    scalar = ref.key in scalar_keys
    return ref.key, ref.lag, scalar, scalar and (scalars_first or ref.lag == 0)


def _line_binop_of_lines(op: str, left: tuple, right: tuple) -> Callable:
    """`a op b` of two lines, each read in place as `_reader` reads it (an empty cell is 0)."""
    k0, l0, s0, always0 = left
    k1, l1, s1, always1 = right

    def binop(get, sget, labels, pos, functions, vectors):
        a = (sget(k0) if s0 else get((k0, labels[pos - l0]))) if always0 or pos >= l0 else None
        b = (sget(k1) if s1 else get((k1, labels[pos - l1]))) if always1 or pos >= l1 else None
        if a is None:
            a = 0.0   # an empty cell is 0 in Excel arithmetic
        if b is None:
            b = 0.0
        if a.__class__ is float and b.__class__ is float and (op != "/" or b != 0.0):
            out = a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b
            return out if out - out == 0.0 else ERR_NUM   # inf, nan
        return excel_arith(op, a, b)
    return binop


def _line_call_of_lines(name: str, places: list, direct: tuple, result) -> Callable | None:
    """A call of two lines past the guard, as `_line_call` makes it, the lines read in place
    (as they are: an empty cell stays None); None where `_line_call` is needed."""
    impl, spec = direct
    if len(spec) < 2 or not all(may_omit for _, may_omit, _ in spec[2:]):
        return None
    (k0, l0, s0, always0), (k1, l1, s1, always1) = places
    n0, n1 = spec[0][0], spec[1][0]
    fills = tuple(fill for _, _, fill in spec[2:])

    def call(get, sget, labels, pos, functions, vectors):
        x = (sget(k0) if s0 else get((k0, labels[pos - l0]))) if always0 or pos >= l0 else None
        y = (sget(k1) if s1 else get((k1, labels[pos - l1]))) if always1 or pos >= l1 else None
        if (not n0 or (x.__class__ is float and x - x == 0.0)) and (not n1 or (y.__class__ is float and y - y == 0.0)):
            try:
                out = impl(x, y, *fills)
            except Exception:   # noqa: BLE001 - the guard maps it (or raises it, in strict mode)
                return functions[name](x, y)
            return out if out.__class__ is float and out - out == 0.0 else result(out)
        return functions[name](x, y)
    return call


def _line_chain(node: BinOp, scalar_keys: frozenset, inner: Callable) -> Callable:
    """`a + b - c + ...` (a left-deep chain of additions and subtractions, a subtotal) in one
    function: the operands left to right, each step as `_line_binop` takes it; a line read in
    its own year is read in place."""
    steps = []
    while isinstance(node, BinOp) and node.op in "+-":
        right = node.right
        key = right.key if isinstance(right, Ref) and right.lag == 0 and right.key not in scalar_keys else None
        steps.append((node.op == "+", key, None if key else inner(right)))
        node = node.left
    first, steps = inner(node), tuple(reversed(steps))
    reads_in_place = any(key is not None for _, key, _ in steps)

    def chain(get, sget, labels, pos, functions, vectors):
        a = first(get, sget, labels, pos, functions, vectors)
        label = labels[pos] if reads_in_place else None
        for add, key, operand in steps:
            if key is None:
                b = operand(get, sget, labels, pos, functions, vectors)
            else:
                b = get((key, label))
                if b is None:
                    b = 0.0   # an empty cell is 0 in Excel arithmetic
            if a.__class__ is float and b.__class__ is float:
                a = a + b if add else a - b
                if a - a != 0.0:
                    a = ERR_NUM   # inf, nan
            else:
                a = excel_arith("+" if add else "-", a, b)
        return a
    return chain


def _line_binop(op: str, left: Callable, right: Callable) -> Callable:
    if op == "+":
        def add(get, sget, labels, pos, functions, vectors):
            a, b = left(get, sget, labels, pos, functions, vectors), right(get, sget, labels, pos, functions, vectors)
            return _finite(a + b) if a.__class__ is float and b.__class__ is float else excel_arith("+", a, b)
        return add
    if op == "-":
        def subtract(get, sget, labels, pos, functions, vectors):
            a, b = left(get, sget, labels, pos, functions, vectors), right(get, sget, labels, pos, functions, vectors)
            return _finite(a - b) if a.__class__ is float and b.__class__ is float else excel_arith("-", a, b)
        return subtract
    if op == "*":
        def multiply(get, sget, labels, pos, functions, vectors):
            a, b = left(get, sget, labels, pos, functions, vectors), right(get, sget, labels, pos, functions, vectors)
            return _finite(a * b) if a.__class__ is float and b.__class__ is float else excel_arith("*", a, b)
        return multiply

    def divide(get, sget, labels, pos, functions, vectors):
        a, b = left(get, sget, labels, pos, functions, vectors), right(get, sget, labels, pos, functions, vectors)
        if a.__class__ is float and b.__class__ is float and b != 0.0:
            return _finite(a / b)
        return excel_arith("/", a, b)
    return divide


def _line_call(name: str, args: tuple, direct, result) -> Callable:
    """A function's call: through `functions` (its guard), or past it where `direct` allows."""
    def guarded(get, sget, labels, pos, functions, vectors):
        return functions[name](*[arg(get, sget, labels, pos, functions, vectors) for arg in args])
    if direct is None:
        return guarded
    impl, spec = direct
    omitted = spec[len(args):]
    if len(args) > len(spec) or not all(may_omit for _, may_omit, _ in omitted):
        return guarded
    numbers = tuple(i for i, (number, _, _) in enumerate(spec[:len(args)]) if number)
    fills = tuple(fill for _, _, fill in omitted)
    if len(args) == 2:   # most calls: two arguments given
        first, second = args
        n0, n1 = 0 in numbers, 1 in numbers

        def call2(get, sget, labels, pos, functions, vectors):
            x, y = first(get, sget, labels, pos, functions, vectors), second(get, sget, labels, pos, functions, vectors)
            if (not n0 or (x.__class__ is float and x - x == 0.0)) and (not n1 or (y.__class__ is float and y - y == 0.0)):
                try:
                    out = impl(x, y, *fills)
                except Exception:   # noqa: BLE001 - the guard maps it (or raises it, in strict mode)
                    return functions[name](x, y)
                return out if out.__class__ is float and out - out == 0.0 else result(out)
            return functions[name](x, y)
        return call2
    if len(args) == 1:
        (only,), n0 = args, 0 in numbers

        def call1(get, sget, labels, pos, functions, vectors):
            x = only(get, sget, labels, pos, functions, vectors)
            if not n0 or (x.__class__ is float and x - x == 0.0):
                try:
                    out = impl(x, *fills)
                except Exception:   # noqa: BLE001 - the guard maps it (or raises it, in strict mode)
                    return functions[name](x)
                return out if out.__class__ is float and out - out == 0.0 else result(out)
            return functions[name](x)
        return call1

    def call(get, sget, labels, pos, functions, vectors):
        values = [arg(get, sget, labels, pos, functions, vectors) for arg in args]
        for i in numbers:
            value = values[i]
            if value.__class__ is not float or value - value != 0.0:
                return functions[name](*values)
        try:
            out = impl(*values, *fills)
        except Exception:   # noqa: BLE001 - the guard maps it (or raises it, in strict mode)
            return functions[name](*values)
        return out if out.__class__ is float and out - out == 0.0 else result(out)
    return call


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
