"""The model's formula language: how a line is computed from other lines, written once.

A formula is a Python-syntax expression restricted to a small whitelist, parsed with `ast` and
never executed by Python itself (no eval):

    revenue                  the line `revenue`, same year
    prev(cash)               the line `cash`, prior year
    grow(prev(iot), g_iot)   a registered function (see udfs/functions.py)
    a + b - c * d / e, -a    arithmetic on numbers
    1.0, "text"              constants
    forecast(fcff)           the line over the forecast years, as a row (for DCF)
    column(a, b, c)          one-value lines side by side, as a column (for a blend)
    at(eps, pe_year)         the line in the year a one-value line names ("2026E")

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
class Series:
    """A yearly line over the forecast years: `forecast(key)`."""
    key: str


@dataclass(frozen=True)
class Column:
    """One-value lines side by side: `column(a, b, c)`."""
    keys: tuple


@dataclass(frozen=True)
class At:
    """A yearly line in the year a one-value line names: `at(key, year_line)`."""
    key: str
    year: str


FORECAST_ROW, COLUMN, AT = "forecast", "column", "at"


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
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Name):
                raise FormulaError(f"{text!r}: prev() takes one line name")
            return Ref(node.args[0].id, 1)
        names = [a.id for a in node.args if isinstance(a, ast.Name)]
        if node.func.id == FORECAST_ROW:
            if len(node.args) != 1 or len(names) != 1:
                raise FormulaError(f"{text!r}: forecast() takes one line name")
            return Series(names[0])
        if node.func.id == COLUMN:
            if not node.args or len(names) != len(node.args):
                raise FormulaError(f"{text!r}: column() takes line names")
            return Column(tuple(names))
        if node.func.id == AT:
            if len(node.args) != 2 or len(names) != 2:
                raise FormulaError(f"{text!r}: at() takes a yearly line and the line holding the year")
            return At(names[0], names[1])
        return Call(node.func.id, tuple(_convert(a, text) for a in node.args))
    raise FormulaError(f"{text!r}: {ast.dump(node)[:60]} is not allowed in a model formula")


@lru_cache(maxsize=None)
def parse(text: str):
    """The formula's tree; FormulaError for anything outside the language."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"{text!r}: {exc.msg}") from None
    return _convert(tree.body, text)


def refs(node) -> set[Ref]:
    """Every line the formula reads (a row, column or year pick reads its lines this year)."""
    if isinstance(node, Ref):
        return {node}
    if isinstance(node, Series):
        return {Ref(node.key, 0)}
    if isinstance(node, Column):
        return {Ref(k, 0) for k in node.keys}
    if isinstance(node, At):
        return {Ref(node.key, 0), Ref(node.year, 0)}
    if isinstance(node, BinOp):
        return refs(node.left) | refs(node.right)
    if isinstance(node, Neg):
        return refs(node.operand)
    if isinstance(node, Call):
        return set().union(*(refs(a) for a in node.args)) if node.args else set()
    return set()


def reads_across_years(node) -> bool:
    """Whether the formula reads a line in years other than its own (forecast(), at())."""
    if isinstance(node, (Series, At)):
        return True
    if isinstance(node, BinOp):
        return reads_across_years(node.left) or reads_across_years(node.right)
    if isinstance(node, Neg):
        return reads_across_years(node.operand)
    if isinstance(node, Call):
        return any(reads_across_years(a) for a in node.args)
    return False


def functions_used(node) -> set[str]:
    if isinstance(node, Call):
        return {node.function}.union(*(functions_used(a) for a in node.args))
    if isinstance(node, BinOp):
        return functions_used(node.left) | functions_used(node.right)
    if isinstance(node, Neg):
        return functions_used(node.operand)
    return set()


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


_arith = excel_arith  # the old private name, kept until no caller uses it


def evaluate(node, lookup: Callable[[str, int], object], functions: dict[str, Callable], arith: Callable = excel_arith,
             vectors=None):
    """The formula's value; `lookup(key, lag)` gives a line's value, `functions` the callables,
    `arith(op, left, right)` the arithmetic (Excel's by default; the findings use intervals).
    `vectors` answers the forms that read other years: `.forecast(key)` a list, `.at(key, label)`
    a value; without it those forms are undefined (FormulaError)."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, (Series, At)):
        if vectors is None:
            raise FormulaError(f"{node!r} needs the model's years")
        if isinstance(node, Series):
            return [vectors.forecast(node.key)]
        return vectors.at(node.key, lookup(node.year, 0))
    if isinstance(node, Column):
        return [[lookup(k, 0)] for k in node.keys]
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


def to_excel(node, address: Callable[[str, int], str], excel_name: Callable[[str], str], ranges=None) -> str:
    """The formula as Excel writes it (without the leading '='), with `address(key, lag)` giving
    each line's cell and `excel_name(function)` each function's worksheet name; `ranges` writes
    the forms that read other years: `.forecast(key)`, `.column(keys)`, `.at(key, year_key)`."""
    if isinstance(node, (Series, Column, At)):
        if ranges is None:
            raise FormulaError(f"{node!r} needs the template's placement")
        if isinstance(node, Series):
            return ranges.forecast(node.key)
        if isinstance(node, Column):
            return ranges.column(node.keys)
        return ranges.at(node.key, node.year)
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
