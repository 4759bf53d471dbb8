"""A small Excel formula evaluator for the formulas our templates hold, so a model file can be
recomputed headless exactly as the analyst left it: changed drivers, numbers typed over
formulas, and edited formulas are all just cells.

It understands cell and range references (same sheet or 'Sheet'!$A$1), numbers, text, TRUE and
FALSE, error literals, + - * / ^ & and comparisons, percent, our ER_ functions and a handful of
worksheet functions (SUM, IF, IFERROR, COUNTIF, NA, ROUND, ABS, MIN, MAX, AVERAGE, AND, OR, NOT,
ISNUMBER, ISERROR). Anything else is refused by name, never guessed.
"""
from __future__ import annotations

import math
import re
import sys
from decimal import ROUND_HALF_UP, Decimal

from udfs.functions import GUARDED_BY_EXCEL_NAME
from udfs.constants import ERR_DIV0, ERR_NA, ERR_NUM, ERR_REF, ERR_VALUE, EXCEL_ERRORS
from udfs.formula import _arith

from .xlsx import Package, WorkbookError, col_index, col_letters


class UnsupportedFormula(WorkbookError):
    """A formula using something this evaluator does not know; the message names it and the cell."""


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"]|"")*")
  | (?P<err>\#N/A|\#VALUE!|\#DIV/0!|\#NUM!|\#REF!|\#NAME\?|\#NULL!)
  | (?P<ref>(?:(?:'(?:[^']|'')+'|[A-Za-z_\u4e00-\u9fff][\w.\u4e00-\u9fff]*)!)?\$?[A-Z]{1,3}\$?\d+(?::\$?[A-Z]{1,3}\$?\d+)?(?![\w(]))
  | (?P<func>[A-Za-z_][A-Za-z0-9_.]*(?=\())
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<bool>TRUE|FALSE)(?![\w(])
  | (?P<name>[A-Za-z_\\][\w.]*)
  | (?P<op><=|>=|<>|[-+*/^&=<>(),%])
""", re.X)

_PRECEDENCE = {"=": 1, "<>": 1, "<": 1, ">": 1, "<=": 1, ">=": 1, "&": 2, "+": 3, "-": 3, "*": 4, "/": 4, "^": 5}


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise UnsupportedFormula(f"cannot read formula ={text} at {text[pos:pos + 10]!r}")
        kind = match.lastgroup
        if kind != "ws":
            tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens, text):
        self.tokens, self.pos, self.text = tokens, 0, text

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self):
        token = self.peek()
        self.pos += 1
        return token

    def expect(self, value):
        kind, got = self.take()
        if got != value:
            raise UnsupportedFormula(f"cannot read formula ={self.text}: expected {value!r}")

    def expression(self, min_precedence=1):
        """Precedence climbing; every binary operator is left-associative, as in Excel."""
        left = self.unary()
        while True:
            kind, op = self.peek()
            if kind != "op" or op not in _PRECEDENCE or _PRECEDENCE[op] < min_precedence:
                return left
            self.take()
            left = ("bin", op, left, self.expression(_PRECEDENCE[op] + 1))

    def unary(self):
        kind, value = self.peek()
        if kind == "op" and value in "+-":
            self.take()
            operand = self.unary()
            return ("neg", operand) if value == "-" else operand
        node = self.primary()
        while self.peek() == ("op", "%"):
            self.take()
            node = ("bin", "/", node, ("num", 100.0))
        return node

    def primary(self):
        kind, value = self.take()
        if kind == "num":
            return ("num", float(value))
        if kind == "str":
            return ("str", value[1:-1].replace('""', '"'))
        if kind == "bool":
            return ("bool", value == "TRUE")
        if kind == "err":
            return ("err", value)
        if kind == "ref":
            return ("ref", value)
        if kind == "name":
            return ("name", value)
        if kind == "func":
            self.expect("(")
            args = []
            if self.peek() != ("op", ")"):
                while True:
                    args.append(self.expression(1))
                    if self.peek() == ("op", ","):
                        self.take()
                        continue
                    break
            self.expect(")")
            return ("call", value.upper(), args)
        if (kind, value) == ("op", "("):
            node = self.expression(1)
            self.expect(")")
            return node
        raise UnsupportedFormula(f"cannot read formula ={self.text}")


def parse(text: str):
    parser = _Parser(tokenize(text), text)
    node = parser.expression(1)
    if parser.pos != len(parser.tokens):
        raise UnsupportedFormula(f"cannot read formula ={text}")
    return node


def _split_ref(token: str, sheet: str) -> tuple[str, str, str | None]:
    if "!" in token:
        prefix, ref = token.rsplit("!", 1)
        sheet = prefix[1:-1].replace("''", "'") if prefix.startswith("'") else prefix
    else:
        ref = token
    ref = ref.replace("$", "")
    first, _, last = ref.partition(":")
    return sheet, first, last or None


def _cells(first: str, last: str) -> list[list[str]]:
    m1, m2 = re.match(r"([A-Z]+)(\d+)", first), re.match(r"([A-Z]+)(\d+)", last)
    c1, c2 = sorted((col_index(m1[1]), col_index(m2[1])))
    r1, r2 = sorted((int(m1[2]), int(m2[2])))
    if (r2 - r1 + 1) * (c2 - c1 + 1) > 100_000:
        raise UnsupportedFormula(f"range {first}:{last} is too large to evaluate")
    return [[f"{col_letters(c)}{r}" for c in range(c1, c2 + 1)] for r in range(r1, r2 + 1)]


def _is_error(v) -> bool:
    return isinstance(v, str) and v in EXCEL_ERRORS


def _number_or_error(v):
    if _is_error(v):
        return v
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    return ERR_VALUE


def _flatten(values):
    for v in values:
        if isinstance(v, list):
            yield from _flatten(v)
        else:
            yield v


def _criterion(criterion):
    if isinstance(criterion, str):
        match = re.match(r"^(<=|>=|<>|<|>|=)?(.*)$", criterion)
        op, operand = match[1] or "=", match[2]
        try:
            operand = float(operand)
        except ValueError:
            operand = operand.lower()
    else:
        op, operand = "=", criterion

    def test(v):
        value = v.lower() if isinstance(v, str) else v
        if isinstance(operand, float) and not isinstance(value, (int, float)):
            return op == "<>"
        if isinstance(operand, str) and not isinstance(value, str):
            return op == "<>"
        return {"=": value == operand, "<>": value != operand, "<": value < operand, ">": value > operand,
                "<=": value <= operand, ">=": value >= operand}[op]
    return test


def _round(x, digits):
    x, digits = _number_or_error(x), _number_or_error(digits)
    if _is_error(x) or _is_error(digits):
        return x if _is_error(x) else digits
    return float(Decimal(repr(x)).quantize(Decimal(1).scaleb(-int(digits)), rounding=ROUND_HALF_UP))


def _aggregate(values, combine):
    numbers = []
    for v in _flatten(values):
        if _is_error(v):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            numbers.append(float(v))
    return combine(numbers)


NATIVE = {
    "SUM": lambda *a: _aggregate(a, sum),
    "MIN": lambda *a: _aggregate(a, lambda n: min(n) if n else 0.0),
    "MAX": lambda *a: _aggregate(a, lambda n: max(n) if n else 0.0),
    "AVERAGE": lambda *a: _aggregate(a, lambda n: sum(n) / len(n) if n else ERR_DIV0),
    "ABS": lambda x: x if _is_error(_number_or_error(x)) else abs(_number_or_error(x)),
    "ROUND": _round,
    "NA": lambda: ERR_NA,
    "COUNTIF": lambda rng, crit: float(sum(1 for v in _flatten([rng]) if _criterion(crit)(v))),
    "ISNUMBER": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
    "ISERROR": lambda x: _is_error(x),
}
LAZY = {"IF", "IFERROR", "AND", "OR", "NOT"}


class Evaluator:
    """Every formula cell of a package, computed from its inputs; `inputs` override cell values."""

    def __init__(self, package: Package, inputs: dict | None = None):
        self.package = package
        self.inputs = dict(inputs or {})
        self.values: dict = {}
        self.active: set = set()
        self.parsed: dict = {}
        self.functions = dict(GUARDED_BY_EXCEL_NAME)

    def formula_cells(self):
        for name, sheet in self.package.sheets.items():
            for ref, cell in sheet.cells.items():
                if cell.formula is not None and (name, ref) not in self.inputs:
                    yield name, ref

    def run(self) -> dict:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20_000))
        try:
            for key in self.formula_cells():
                self.cell(*key)
        finally:
            sys.setrecursionlimit(limit)
        return self.values

    def cell(self, sheet: str, ref: str):
        key = (sheet, ref)
        if key in self.inputs:
            return self.inputs[key]
        if key in self.values:
            return self.values[key]
        if sheet not in self.package.sheets:
            return ERR_REF
        cell = self.package.sheets[sheet].cells.get(ref)
        if cell is None:
            return None
        if cell.formula is None:
            return self.package.value(sheet, ref)
        if key in self.active:
            raise WorkbookError(f"circular reference through {sheet}!{ref}; fix it in Excel before refreshing")
        self.active.add(key)
        try:
            if cell.formula not in self.parsed:
                self.parsed[cell.formula] = parse(cell.formula)
            value = self.value_of(self.parsed[cell.formula], sheet, ref)
        except UnsupportedFormula as exc:
            raise UnsupportedFormula(f"{sheet}!{ref}: {exc}") from None
        finally:
            self.active.discard(key)
        if isinstance(value, list):
            value = value[0][0] if value and value[0] else None
        if isinstance(value, float) and not math.isfinite(value):
            value = ERR_NUM
        self.values[key] = value
        return value

    def value_of(self, node, sheet: str, here: str):
        kind = node[0]
        if kind in ("num", "str", "bool", "err"):
            return node[1]
        if kind == "ref":
            target, first, last = _split_ref(node[1], sheet)
            if last is None:
                return self.cell(target, first)
            return [[self.cell(target, r) for r in row] for row in _cells(first, last)]
        if kind == "name":
            if node[1] not in self.package.names:
                return "#NAME?"
            return self.value_of(("ref", self.package.names[node[1]]), sheet, here)
        if kind == "neg":
            return _arith("-", 0.0, _number_or_error(self._scalar(self.value_of(node[1], sheet, here))))
        if kind == "bin":
            op = node[1]
            a = self._scalar(self.value_of(node[2], sheet, here))
            b = self._scalar(self.value_of(node[3], sheet, here))
            return self._binary(op, a, b)
        if kind == "call":
            return self.call(node[1], node[2], sheet, here)
        raise UnsupportedFormula(f"cannot evaluate {node!r}")

    @staticmethod
    def _scalar(v):
        if isinstance(v, list):
            return v[0][0] if len(v) == 1 and len(v[0]) == 1 else ERR_VALUE
        return v

    @staticmethod
    def _binary(op, a, b):
        if op in "+-*/":
            return _arith(op, _number_or_error(a), _number_or_error(b))
        if op == "^":
            a, b = _number_or_error(a), _number_or_error(b)
            if _is_error(a) or _is_error(b):
                return a if _is_error(a) else b
            try:
                return float(a ** b)
            except (OverflowError, ZeroDivisionError, TypeError):
                return ERR_NUM
        if op == "&":
            for v in (a, b):
                if _is_error(v):
                    return v
            text = lambda v: "" if v is None else ("TRUE" if v is True else "FALSE" if v is False else
                                                   (f"{v:g}" if isinstance(v, float) else str(v)))
            return text(a) + text(b)
        for v in (a, b):
            if _is_error(v):
                return v
        a = "" if a is None and isinstance(b, str) else (0.0 if a is None else a)
        b = "" if b is None and isinstance(a, str) else (0.0 if b is None else b)
        if isinstance(a, str) and isinstance(b, str):
            a, b = a.lower(), b.lower()
        elif isinstance(a, str) != isinstance(b, str):
            return op == "<>" or (op in (">", ">=") and isinstance(a, str)) or (op in ("<", "<=") and isinstance(b, str))
        return {"=": a == b, "<>": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]

    def call(self, name: str, args: list, sheet: str, here: str):
        if name in LAZY:
            return self._lazy(name, args, sheet, here)
        values = [self.value_of(a, sheet, here) for a in args]
        if name in self.functions:
            return self.functions[name](*[self._excel_arg(v) for v in values])
        if name in NATIVE:
            scalar_args = values if name in ("SUM", "MIN", "MAX", "AVERAGE", "COUNTIF") else [self._scalar(v) for v in values]
            return NATIVE[name](*scalar_args)
        raise UnsupportedFormula(f"the function {name} is not evaluated headless; open the model in Excel and press Refresh")

    @staticmethod
    def _excel_arg(v):
        """What xlwings hands a UDF: a single cell as a scalar, a range as a list of rows."""
        if isinstance(v, list) and len(v) == 1 and len(v[0]) == 1:
            return v[0][0]
        return v

    def _lazy(self, name, args, sheet, here):
        if name == "IF":
            cond = self._scalar(self.value_of(args[0], sheet, here))
            if _is_error(cond):
                return cond
            truthy = bool(cond) if not isinstance(cond, str) else None
            if truthy is None:
                return ERR_VALUE
            if truthy:
                return self._scalar(self.value_of(args[1], sheet, here)) if len(args) > 1 else True
            return self._scalar(self.value_of(args[2], sheet, here)) if len(args) > 2 else False
        if name == "IFERROR":
            value = self._scalar(self.value_of(args[0], sheet, here))
            return self._scalar(self.value_of(args[1], sheet, here)) if _is_error(value) else value
        values = [self._scalar(self.value_of(a, sheet, here)) for a in args]
        for v in values:
            if _is_error(v):
                return v
        if name == "NOT":
            return not bool(values[0])
        return all(bool(v) for v in values) if name == "AND" else any(bool(v) for v in values)


def evaluate(package: Package, inputs: dict | None = None) -> dict:
    """{(sheet, ref): value} for every formula cell, with `inputs` replacing cell values."""
    return Evaluator(package, inputs).run()
