"""A small Excel formula evaluator for the formulas our templates hold, so a model file can be
recomputed headless exactly as the analyst left it: changed drivers, numbers typed over
formulas, and edited formulas are all just cells.

It understands cell and range references (same sheet or 'Sheet'!$A$1), defined names (pointing
at cells, or holding a constant or a formula), numbers, text, TRUE and FALSE, error literals,
+ - * / ^ & and comparisons, percent, our ER_ functions and the worksheet functions of `NATIVE`
and `LAZY`. It follows Excel's rules, not Python's: implicit intersection of a row or column
used where one value belongs, number-to-text with 15 significant digits, operators that coerce
text to numbers while aggregates skip text in ranges, comparison across types (numbers < text <
booleans), COUNTIF criteria with wildcards. Anything else (an unknown function, another
workbook, a nesting deeper than `MAX_DEPTH`, text that Excel would read as a date) is refused by
name with `UnsupportedFormula`, never guessed.

Evaluation never recurses through cell references: a cell's precedents are computed first from
an explicit stack, so a long chain of cells needs no change to Python's recursion limit.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Callable, NamedTuple

from udfs.constants import ERR_DIV0, ERR_NA, ERR_NAME, ERR_NUM, ERR_REF, ERR_VALUE, EXCEL_ERRORS
from udfs.findings import quantize_half_up
from udfs.formula import excel_arith
from udfs.functions import GUARDED_BY_EXCEL_NAME
from udfs.registry import excel_name

from .xlsx import ErrorLikeText, Package, WorkbookError, col_index, col_letters


class UnsupportedFormula(WorkbookError):
    """A formula using something this evaluator does not know; the message names it and the cell."""


# Excel allows 64 levels of nested functions; a parenthesis, a function or a sign each count one
# level here (two parser steps), so this admits what Excel admits and bounds the Python stack.
MAX_DEPTH = 160
MAX_RANGE_CELLS = 100_000
MAX_NAME_NESTING = 16  # a name defined through a name through a name ...; each nests a whole formula

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"]|"")*")
  | (?P<err>{errors})
  | (?P<ref>(?:(?:'(?:[^']|'')+'|[^\W\d][\w.]*)!)?\$?[A-Z]{1,3}\$?\d+(?::\$?[A-Z]{1,3}\$?\d+)?(?![\w(]))
  | (?P<func>[A-Za-z_][A-Za-z0-9_.]*(?=\())
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<bool>TRUE|FALSE)(?![\w(])
  | (?P<name>[^\W\d][\w.]*|\\[\w.]*)
  | (?P<op><=|>=|<>|[-+*/^&=<>(),%])
""".replace("{errors}", "|".join(re.escape(error) for error in EXCEL_ERRORS)), re.X)

_PRECEDENCE = {"=": 1, "<>": 1, "<": 1, ">": 1, "<=": 1, ">=": 1, "&": 2, "+": 3, "-": 3, "*": 4, "/": 4, "^": 5}
# Characters Excel forbids in a sheet name: a quoted prefix holding one names another workbook
# ('[other.xlsx]Sheet1') or several sheets ('Sheet1:Sheet3').
_NOT_IN_SHEET_NAMES = re.compile(r"[\[\]:*?/\\]")


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
    """Precedence climbing into tuples: ("num", x), ("str", s), ("bool", b), ("err", e),
    ("ref", text), ("name", n), ("neg", node), ("chain", first, [(op, node), ...]) for a run of
    left-associative binary operators, ("call", NAME, [args])."""

    def __init__(self, tokens, text):
        self.tokens, self.pos, self.text, self.depth = tokens, 0, text, 0

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

    def _enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise UnsupportedFormula(f"formula nested more deeply than Excel allows; not evaluated headless: ={self.text[:60]}")

    def expression(self, min_precedence=1):
        self._enter()
        first, rest = self.unary(), []
        while True:
            kind, op = self.peek()
            if kind != "op" or op not in _PRECEDENCE or _PRECEDENCE[op] < min_precedence:
                break
            self.take()
            rest.append((op, self.expression(_PRECEDENCE[op] + 1)))
        self.depth -= 1
        return ("chain", first, rest) if rest else first

    def unary(self):
        kind, value = self.peek()
        if kind == "op" and value in "+-":
            self.take()
            self._enter()
            operand = self.unary()
            self.depth -= 1
            return ("neg", operand) if value == "-" else ("plus", operand)
        node = self.primary()
        while self.peek() == ("op", "%"):
            self.take()
            node = ("chain", node, [("/", ("num", 100.0))])
        return node

    def primary(self):
        kind, value = self.take()
        if kind == "num":
            if not math.isfinite(float(value)):
                raise UnsupportedFormula(f"the number {value} in ={self.text[:60]} is beyond Excel's largest number")
            return ("num", float(value))
        if kind == "str":
            return ("str", _as_text(value[1:-1].replace('""', '"')))
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
            return ("call", excel_name(value), args)   # _xlfn.ER_GROWTH: as Excel saves a function it did not know
        if (kind, value) == ("op", "("):
            node = self.expression(1)
            self.expect(")")
            return node
        raise UnsupportedFormula(f"cannot read formula ={self.text}")


@lru_cache(maxsize=4096)
def tokens_of(text: str) -> tuple:
    """The formula's tokens (kept: a batch of models shares its formulas)."""
    return tuple(tokenize(text))


@lru_cache(maxsize=4096)
def cells_of(token: str, sheet: str) -> tuple:
    """Every (sheet, ref) a reference token on `sheet` covers, row by row."""
    where = _address(token, sheet)
    return tuple((where.sheet, f"{col_letters(c)}{r}") for r in range(where.top, where.bottom + 1)
                 for c in range(where.left, where.right + 1))


@lru_cache(maxsize=4096)
def parse(text: str):
    """The formula's tree: nested tuples, shared by every cell (and model) with that formula."""
    parser = _Parser(list(tokens_of(text)), text)
    node = parser.expression(1)
    if parser.pos != len(parser.tokens):
        raise UnsupportedFormula(f"cannot read formula ={text}")
    return node


_CORNER = re.compile(r"\$?([A-Z]+)\$?(\d+)")


@dataclass(frozen=True)
class _Address:
    sheet: str
    top: int
    left: int
    bottom: int
    right: int
    absolute: bool


@lru_cache(maxsize=65536)
def _address(token: str, sheet: str) -> _Address:
    """Where a reference token points (the same token on the same sheet always points there)."""
    if "!" in token:
        prefix, ref = token.rsplit("!", 1)
        sheet = prefix[1:-1].replace("''", "'") if prefix.startswith("'") else prefix
        if _NOT_IN_SHEET_NAMES.search(sheet):
            raise UnsupportedFormula(f"the reference {token} points into another workbook or across sheets; "
                                     "open the model in Excel and press Refresh")
    else:
        ref = token
    first, _, last = ref.partition(":")
    absolute = first.count("$") == 2 and (not last or last.count("$") == 2)
    m1 = _CORNER.match(first)
    m2 = _CORNER.match(last or first)
    c1, c2 = sorted((col_index(m1[1]), col_index(m2[1])))
    r1, r2 = sorted((int(m1[2]), int(m2[2])))
    if (r2 - r1 + 1) * (c2 - c1 + 1) > MAX_RANGE_CELLS:
        raise UnsupportedFormula(f"range {ref} is too large to evaluate")
    return _Address(sheet, r1, c1, r2, c2, absolute)


@lru_cache(maxsize=65536)
def _grid(token: str, sheet: str) -> tuple[_Address, tuple]:
    """Where a reference token points, and the refs of its cells row by row (worked out once per
    token, not at every evaluation of a formula that holds it)."""
    where = _address(token, sheet)
    return where, tuple(tuple(f"{col_letters(c)}{r}" for c in range(where.left, where.right + 1))
                        for r in range(where.top, where.bottom + 1))


@lru_cache(maxsize=65536)
def _split_here(ref: str) -> tuple[int, int]:
    match = re.match(r"([A-Z]+)(\d+)$", ref)
    return int(match[2]), col_index(match[1])


@dataclass
class _Range:
    """A reference's cells, kept with where they are: functions read references differently
    from values (SUM skips text in a range but not text given directly), and a single cell of
    another row or column takes the value in its own column or row (implicit intersection)."""
    where: _Address
    rows: list

    def values(self):
        for row in self.rows:
            yield from row

    def single(self, here: tuple[int, int]):
        """The one value Excel uses where a single value belongs."""
        w = self.where
        if w.top == w.bottom and w.left == w.right:
            return self.rows[0][0]
        row, col = here
        if w.top == w.bottom and w.left <= col <= w.right:
            return self.rows[0][col - w.left]
        if w.left == w.right and w.top <= row <= w.bottom:
            return self.rows[row - w.top][0]
        return ERR_VALUE


# ---------------------------------------------------------------- values and Excel's coercions

def _is_error(v) -> bool:
    return isinstance(v, str) and v in EXCEL_ERRORS and not isinstance(v, ErrorLikeText)


def _as_text(text: str) -> str:
    """A computed or typed text, marked when it could be taken for an error value."""
    return ErrorLikeText(text) if text in EXCEL_ERRORS else text


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_NUMBER_TEXT = re.compile(r"^\s*([+-]?)\s*((?:\d{1,3}(?:,\d{3})+|\d*)(?:\.\d*)?)(?:[eE]([+-]?\d+))?\s*(%?)\s*$")
# Text Excel reads as a date, time, fraction or amount when it coerces it to a number: the
# value depends on the machine's regional settings, so it is refused rather than guessed.
_LOCALE_NUMBER_TEXT = re.compile(
    r"\d\s*[-/:]\s*\d|[$¥€£]|^\s*\(.*\)\s*$|^\s*\d+(?::\d+)*\s*[ap]m?\s*$"
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b.*\d|\d.*\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)",
    re.I)


def text_number(text: str):
    """The number Excel reads from text ("1", " 2.5 ", "1,000", "50%", "1E3"), or #VALUE!."""
    match = _NUMBER_TEXT.match(text)
    if match and any(ch.isdigit() for ch in match[2]):
        digits = match[2].replace(",", "")
        number = float(f"{'0' if digits == '.' else digits}e{match[3] or 0}")
        number = -number if match[1] == "-" else number
        number = number / 100 if match[4] else number
        return number if math.isfinite(number) else ERR_VALUE  # beyond Excel's largest number
    if _LOCALE_NUMBER_TEXT.search(text):
        raise UnsupportedFormula(f"the text {text[:40]!r} is used as a number; Excel reads it by the regional "
                                 "settings, so it is not evaluated headless")
    return ERR_VALUE


def to_number(v):
    """An operand of + - * / ^ or a numeric argument: blank 0, TRUE 1, numeric text its number."""
    if _is_error(v):
        return v
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return float(v)
    if _is_number(v):
        return float(v)
    if isinstance(v, str):
        return text_number(v)
    return ERR_VALUE


def to_bool(v):
    """A condition: numbers by zero, blank FALSE, the text TRUE/FALSE, anything else #VALUE!."""
    if _is_error(v):
        return v
    if v is None:
        return False
    if isinstance(v, bool) or _is_number(v):
        return bool(v)
    if isinstance(v, str) and v.upper() in ("TRUE", "FALSE"):
        return v.upper() == "TRUE"
    return ERR_VALUE


# Excel writes a number as text with 15 significant digits, in plain notation from 1E-05 up to
# (not including) 1E+15 and in scientific notation (two-digit exponent) outside.
_PLAIN_EXPONENTS = range(-5, 15)


def number_text(x: float) -> str:
    """A number as `&` and text coercion write it: 475.994, 10000000, 1.23456789012346E+17."""
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.14e}".split("e")
    exponent = int(exponent)
    if exponent in _PLAIN_EXPONENTS:
        text = format(Decimal(f"{mantissa}e{exponent}"), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}E{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"


def to_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if _is_number(v):
        return number_text(float(v))
    return str(v)


def _type_rank(v) -> int:
    """Excel orders values of different types: numbers < text < booleans."""
    return 2 if isinstance(v, bool) else 1 if isinstance(v, str) else 0


def compare(op: str, a, b):
    """Excel's comparison: no coercion, blank as the other side's empty value, text ignoring case."""
    for v in (a, b):
        if _is_error(v):
            return v
    a = ("" if isinstance(b, str) else False if isinstance(b, bool) else 0.0) if a is None else a
    b = ("" if isinstance(a, str) else False if isinstance(a, bool) else 0.0) if b is None else b
    ra, rb = _type_rank(a), _type_rank(b)
    if ra != rb:
        a, b = ra, rb
    elif ra == 1:
        a, b = a.lower(), b.lower()
    return {"=": a == b, "<>": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def power(a, b):
    a, b = to_number(a), to_number(b)
    for v in (a, b):
        if _is_error(v):
            return v
    if a == 0 and b == 0:
        return ERR_NUM
    if a == 0 and b < 0:
        return ERR_DIV0
    if a < 0 and not float(b).is_integer():
        return ERR_NUM
    try:
        result = math.pow(a, b)
    except (OverflowError, ValueError):
        return ERR_NUM
    return result if math.isfinite(result) else ERR_NUM


def binary(op: str, a, b):
    """One binary operator on two single values, with Excel's coercions; an error operand
    propagates (the left one first) before any text is read as a number."""
    for v in (a, b):
        if _is_error(v):
            return v
    if op in "+-*/":
        a, b = to_number(a), to_number(b)
        result = excel_arith(op, a, b)
        return result + 0.0 if _is_number(result) else result  # Excel has no negative zero
    if op == "^":
        return power(a, b)
    if op == "&":
        return _as_text(to_text(a) + to_text(b))
    return compare(op, a, b)


def same_value(a, b) -> bool:
    """Whether two cell values are the same to Excel: FALSE is not 0, "" is not a blank cell,
    text differing only in case is a different value to store."""
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    if isinstance(a, str) and isinstance(b, str):
        return str(a) == str(b)
    return type(a) is type(b) and a == b


def same_stored(a, b) -> bool:
    """`same_value`, and an error value is not the text that reads like it: what a cell must
    store so that reading it back (`stored_value`) gives what was computed."""
    return same_value(a, b) and _is_error(a) == _is_error(b)


def stored_value(package: Package, sheet: str, ref: str):
    """A cell's value as the evaluator reads it back from the file: a formula's cached text that
    reads like an error (t="str", "s" or inline) stays text (ErrorLikeText); only t="e" is an error."""
    value = package.value(sheet, ref)
    if isinstance(value, str) and value in EXCEL_ERRORS:
        cell = package.sheets[sheet].cells.get(ref)
        if cell is not None and cell.formula is not None and cell.attrs.get("t") != "e":
            return ErrorLikeText(value)
    return value


# ---------------------------------------------------------------- worksheet functions

def _first_error(args):
    for arg in args:
        for v in arg.values() if isinstance(arg, _Range) else (arg,):
            if _is_error(v):
                return v
    return None


def _arguments(args, counts_in_reference: Callable, convert: Callable, skip_given_blank: bool):
    """The values an aggregating function takes from its arguments, or the error that stops it.

    In a reference only the values `counts_in_reference` accepts are taken (text and blanks are
    skipped); a value given directly is converted (`convert`), and one that cannot be is the
    function's error. An error among the arguments comes out before any text is converted, as
    with the operators."""
    error = _first_error(args)
    if error is not None:
        return error
    taken = []
    for arg in args:
        if isinstance(arg, _Range):
            taken.extend(convert(v) for v in arg.values() if counts_in_reference(v))
        elif arg is not None or not skip_given_blank:
            v = convert(arg)
            if _is_error(v):
                return v
            taken.append(v)
    return taken


def _is_logical(v) -> bool:
    return isinstance(v, bool) or _is_number(v)


def _aggregate(combine: Callable[[list], object]) -> Callable:
    """SUM, MIN, MAX, AVERAGE: in a reference only numbers count; a value given directly is
    coerced (TRUE 1, "3" 3, blank 0) and text that is not a number is #VALUE!."""
    def aggregate(*args):
        numbers = _arguments(args, _is_number, to_number, skip_given_blank=False)
        if isinstance(numbers, str):
            return numbers
        result = combine(numbers)
        return result if not _is_number(result) or math.isfinite(result) else ERR_NUM
    return aggregate


def _logical(combine: Callable) -> Callable:
    """AND/OR: numbers and booleans count; text and blanks in a reference, and a blank given
    directly, are skipped; text given directly must read TRUE or FALSE; no logical value at all
    is #VALUE!."""
    def logical(*args):
        seen = _arguments(args, _is_logical, to_bool, skip_given_blank=True)
        if isinstance(seen, str):
            return seen
        return combine(seen) if seen else ERR_VALUE
    return logical


def _round(x, digits):
    x, digits = to_number(x), to_number(digits)
    for v in (x, digits):
        if _is_error(v):
            return v
    places = int(digits)  # Excel truncates the number of digits toward zero
    exact = Decimal(repr(x))
    if places >= -exact.as_tuple().exponent:
        return x  # already has no more digits than asked for
    if places < -400:
        return 0.0
    rounded = float(quantize_half_up(exact, places))
    return rounded + 0.0 if math.isfinite(rounded) else ERR_NUM


def _abs(x):
    x = to_number(x)
    return x if _is_error(x) else abs(x)


def _not(x):
    x = to_bool(x)
    return x if _is_error(x) else not x


def _wildcard(pattern: str) -> re.Pattern:
    """COUNTIF's pattern: * any run, ? one character, ~ escapes the next; whole text, any case."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "~" and i + 1 < len(pattern) and pattern[i + 1] in "*?~":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.I | re.S)


_CRITERION_OP = re.compile(r"^(<=|>=|<>|<|>|=)?(.*)$", re.S)


def criterion(crit) -> Callable[[object], bool]:
    """COUNTIF's test for one cell. A number matches equal numbers and numeric text; a blank
    criterion cell is 0; "" matches blank cells and empty text, "=" only blank cells, "<>" every
    cell that is not blank; "<>x" matches every cell "=x" does not match."""
    if crit is None:
        crit = 0.0
    if isinstance(crit, bool) or _is_number(crit) or _is_error(crit):
        op, operand, text = "=", crit, False
    else:
        match = _CRITERION_OP.match(crit)
        op, operand, text = match[1] or "=", match[2], True
    if text and operand == "":
        if op == "=":
            explicit = crit.startswith("=")
            return (lambda v: v is None) if explicit else (lambda v: v is None or v == "")
        if op == "<>":
            return lambda v: v is not None
        return lambda v: False
    if text:
        number = text_number(operand)
        if _is_number(number):
            operand = number
        elif operand.upper() in ("TRUE", "FALSE"):
            operand = operand.upper() == "TRUE"
        elif operand.upper() in EXCEL_ERRORS:
            operand = operand.upper()
    if op == "<>":
        equal = criterion_equal(operand, text)
        return lambda v: not equal(v)
    if op == "=":
        return criterion_equal(operand, text)

    def ordered(v):
        if _is_error(operand) or _is_error(v):
            return False
        if _is_number(operand):
            v = text_number(v) if isinstance(v, str) else v
            if not _is_number(v):
                return False
        elif _type_rank(v) != _type_rank(operand) or v is None:
            return False
        return compare(op, v, operand) is True
    return ordered


def criterion_equal(operand, text: bool) -> Callable[[object], bool]:
    if _is_error(operand):
        return lambda v: v == operand
    if isinstance(operand, bool):
        return lambda v: v is operand
    if _is_number(operand):
        def equal_number(v):
            if isinstance(v, str) and not _is_error(v):
                v = text_number(v)
            return _is_number(v) and float(v) == operand
        return equal_number
    pattern = _wildcard(operand) if text else re.compile(re.escape(operand), re.I | re.S)
    return lambda v: isinstance(v, str) and not _is_error(v) and pattern.fullmatch(v) is not None


def _countif(rng, crit):
    if not isinstance(rng, _Range):
        raise UnsupportedFormula("COUNTIF needs a cell range as its first argument")
    test = criterion(crit)
    return float(sum(1 for v in rng.values() if test(v)))


# ---- TEXT(value, format)

_EXCEL_DAY_ZERO = dt.date(1899, 12, 30)
_LAST_SERIAL = 2958465  # 9999-12-31
_DATE_TOKEN = re.compile(r'yyyy|yy|mmmm|mmm|mm|m|dddd|ddd|dd|d|[hsHS]|AM/PM|"[^"]*"|\\.|.', re.I)
MAX_FORMAT_DECIMALS = 30  # Excel's limit on the decimal places of a number format
_NUMBER_FORMAT = re.compile(r"^(?P<int>[#0,]*)(?:\.(?P<dec>0*))?(?P<pct>%?)$")


def _serial_date(serial: float) -> tuple[int, int, int]:
    """(year, month, day) of an Excel serial in the 1900 date system, whose day 60 is the
    1900-02-29 that Lotus 1-2-3 invented and Excel keeps."""
    day = int(serial)
    if day == 0:
        return 1900, 1, 0
    if day == 60:
        return 1900, 2, 29
    date = _EXCEL_DAY_ZERO + dt.timedelta(days=day + (1 if day < 60 else 0))
    return date.year, date.month, date.day


def _format_date(serial: float, fmt: str):
    if serial < 0 or serial >= _LAST_SERIAL + 1:
        return ERR_VALUE
    year, month, day = _serial_date(serial)
    out = []
    for token in _DATE_TOKEN.findall(fmt):
        low = token.lower()
        if low == "yyyy":
            out.append(f"{year:04d}")
        elif low == "yy":
            out.append(f"{year % 100:02d}")
        elif low in ("mm", "m"):
            out.append(f"{month:0{len(low)}d}")
        elif low in ("dd", "d"):
            out.append(f"{day:0{len(low)}d}")
        elif token.startswith('"'):
            out.append(token[1:-1])
        elif token.startswith("\\"):
            out.append(token[1:])
        elif len(token) == 1 and not token.isalpha() and token not in "0#@;[]*_":
            out.append(token)
        else:
            raise UnsupportedFormula(f"TEXT format {fmt!r} is not evaluated headless")
    return "".join(out)


def _format_number(x: float, fmt: str):
    match = _NUMBER_FORMAT.match(fmt)
    whole = match and match["int"]
    if not match or (not whole and match["dec"] is None) or whole.endswith(",") or whole.startswith(","):
        raise UnsupportedFormula(f"TEXT format {fmt!r} is not evaluated headless")
    decimals = len(match["dec"] or "")
    if decimals > MAX_FORMAT_DECIMALS:
        raise UnsupportedFormula(f"TEXT format {fmt[:40]!r} asks for more than {MAX_FORMAT_DECIMALS} decimals, which Excel refuses")
    # Excel formats the number it displays, which keeps 15 significant digits: TEXT(2^60,"0") is
    # 1152921504606850000, not the 19 digits of the binary value
    value = quantize_half_up(Decimal(f"{x:.14e}") * (100 if match["pct"] else 1), decimals)
    sign = "-" if value < 0 else ""
    digits = format(abs(value), f"{',' if ',' in whole else ''}.{decimals}f")
    integer, _, fraction = digits.partition(".")
    min_integer = whole.count("0")
    if integer.replace(",", "") == "0" and min_integer == 0:
        integer = ""
    elif len(integer.replace(",", "")) < min_integer:
        integer = integer.zfill(min_integer)
    text = integer + ("." + fraction if decimals else "") + match["pct"]
    return sign + text if any(ch in "123456789" for ch in text) else text


def _text(value, fmt):
    for v in (value, fmt):
        if _is_error(v):
            return v
    fmt = to_text(fmt)
    if isinstance(value, bool):
        return to_text(value)
    if isinstance(value, str):
        number = text_number(value)
        if not _is_number(number):
            return value  # text that is not a number is returned as it is
        value = number
    value = 0.0 if value is None else float(value)
    if fmt.lower() == "general":
        return number_text(value)
    if re.search(r"[ymd]", fmt, re.I) and not re.search(r"[0#]", fmt):
        return _format_date(value, fmt)
    return _format_number(value, fmt)


class Native(NamedTuple):
    function: Callable
    min_args: int
    max_args: int
    takes_references: bool = False  # receives _Range arguments rather than single values


_MANY = 255  # Excel's limit on the arguments of a function
NATIVE = {
    "SUM": Native(_aggregate(sum), 1, _MANY, True),
    "MIN": Native(_aggregate(lambda n: min(n) if n else 0.0), 1, _MANY, True),
    "MAX": Native(_aggregate(lambda n: max(n) if n else 0.0), 1, _MANY, True),
    "AVERAGE": Native(_aggregate(lambda n: sum(n) / len(n) if n else ERR_DIV0), 1, _MANY, True),
    "COUNTIF": Native(_countif, 2, 2, True),
    "ABS": Native(_abs, 1, 1),
    "ROUND": Native(_round, 2, 2),
    "NA": Native(lambda: ERR_NA, 0, 0),
    "ISNUMBER": Native(_is_number, 1, 1),
    "ISERROR": Native(_is_error, 1, 1),
    "TEXT": Native(_text, 2, 2),
    "TRUE": Native(lambda: True, 0, 0),    # LibreOffice writes a typed TRUE as the formula TRUE()
    "FALSE": Native(lambda: False, 0, 0),
}
# Functions that decide which arguments to evaluate (IF, IFERROR) or read references
# themselves (AND, OR); with their argument counts.
_LAZY_ARGS = {"IF": (2, 3), "IFERROR": (2, 2), "AND": (1, _MANY), "OR": (1, _MANY), "NOT": (1, 1)}
LAZY = frozenset(_LAZY_ARGS)
_AND, _OR = _logical(all), _logical(any)


def _check_arity(name: str, count: int, least: int, most: int) -> None:
    if not least <= count <= most:
        wanted = f"{least}" if least == most else f"{least} to {most}" if most < _MANY else f"at least {least}"
        raise UnsupportedFormula(f"{name} takes {wanted} argument{'s' if most != 1 else ''}, the formula gives {count}; "
                                 "Excel would not accept it")


# ---------------------------------------------------------------- the evaluator

class Graph:
    """Which cells each formula cell may read (every cell of a range, both branches of an IF, the
    cells a defined name points at), and the reverse: which formula cells read a cell. Formulas
    here read cells by fixed references only (no INDIRECT or OFFSET), so the graph is exact."""

    _PLANS_KEPT = 32

    def __init__(self, precedents: dict):
        self.precedents = precedents            # formula cell -> tuple of cells it reads
        self.dependents: dict = {}              # cell -> formula cells that read it
        for cell, reads in precedents.items():
            for read in reads:
                self.dependents.setdefault(read, []).append(cell)
        self._cells: frozenset | None = None
        self._plans: dict = {}                  # frozenset of changed cells -> their plan

    def cells(self) -> frozenset:
        """Every formula cell and every cell a formula reads."""
        if self._cells is None:
            self._cells = frozenset(self.precedents).union(self.dependents)
        return self._cells

    def plan(self, changed) -> tuple:
        """`in_order(affected(changed))`: the formula cells a change of `changed` may move, each
        after those of them it reads. A graph is shared by every model of its template, and the
        models of a batch change the same cells (the market inputs, the same drivers): the plan
        for a set of changed cells is worked out once and kept (the few last ones)."""
        key = frozenset(changed)
        plan = self._plans.get(key)
        if plan is None:
            plan = tuple(self.in_order(self.affected(key)))
            if len(self._plans) >= self._PLANS_KEPT:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = plan
        return plan

    def in_order(self, cells: set) -> list:
        """`cells` (formula cells) ordered so that each comes after those of them it reads; the
        cells of a circular reference, which have no such order, come last, in any order."""
        waiting = {cell: sum(1 for read in self.precedents[cell] if read in cells) for cell in cells}
        ready = [cell for cell, count in waiting.items() if count == 0]
        out = []
        while ready:
            cell = ready.pop()
            out.append(cell)
            for dependent in self.dependents.get(cell, ()):
                if dependent in waiting:
                    waiting[dependent] -= 1
                    if waiting[dependent] == 0:
                        ready.append(dependent)
        if len(out) < len(cells):
            placed = set(out)
            out.extend(cell for cell in cells if cell not in placed)
        return out

    def affected(self, changed) -> set:
        """The formula cells whose value may move when the cells `changed` do: the changed formula
        cells themselves and every formula that reads one of them, directly or through others."""
        out = {cell for cell in changed if cell in self.precedents}
        pending = list(changed)
        while pending:
            for dependent in self.dependents.get(pending.pop(), ()):
                if dependent not in out:
                    out.add(dependent)
                    pending.append(dependent)
        return out


_GRAPHS: dict = {}   # digest of the formula cells and defined names -> Graph, the few a process meets
_GRAPHS_KEPT = 8


class Evaluator:
    """Every formula cell of a package, computed from its inputs; `inputs` override cell values,
    and `known` gives formula cells whose values are known (left as they are, read by the rest)."""

    def __init__(self, package: Package, inputs: dict | None = None, known: dict | None = None):
        self.package = package
        self.inputs = dict(inputs or {})
        self.values: dict = dict(known or {})
        self.active: set = set()
        self.parsed: dict = {}
        self.functions = dict(GUARDED_BY_EXCEL_NAME)
        # A name defined on a sheet hides the workbook's name of the same spelling on that sheet.
        self.names = {(None, name.upper()): text for name, text in package.names.items()}
        self.names.update({(scope, name.upper()): text for (scope, name), text in getattr(package, "local_names", {}).items()})
        self.parsed_names: dict = {}
        self.active_names: set = set()

    def formula_cells(self):
        for name, sheet in self.package.sheets.items():
            for ref, cell in sheet.cells.items():
                if cell.formula is not None and (name, ref) not in self.inputs:
                    yield name, ref

    def run(self) -> dict:
        for key in self.formula_cells():
            self.cell(*key)
        return self.values

    def graph(self) -> Graph:
        """The dependency graph of every formula cell (those given as inputs are values here).
        A formula's reads are its reference and name tokens: exactly the references and names
        its parse holds, found without parsing it (only the cells recomputed are parsed).
        Made once per content: the same formulas in the same cells with the same defined names
        (every model of one template, refresh after refresh) give the same graph, which is
        shared, read-only."""
        inputs = self.inputs
        formulas = [((name, ref), cell.formula) for name, sheet in self.package.sheets.items()
                    for ref, cell in sheet.cells.items() if cell.formula is not None and (name, ref) not in inputs]
        digest = hashlib.blake2b(repr(sorted(self.names.items(), key=repr)).encode("utf-8", "surrogatepass"),
                                 digest_size=16)
        # sheet, cell and formula of each, separated by characters no sheet name, reference or
        # formula text can hold unescaped in XML 1.0 (\x1f, \x1e): the same text means the same cells
        digest.update("\x1e".join(f"{sheet}\x1f{ref}\x1f{formula}" for (sheet, ref), formula in formulas)
                      .encode("utf-8", "surrogatepass"))
        content = digest.digest()
        graph = _GRAPHS.get(content)
        if graph is None:
            graph = self._graph(formulas)
            if len(_GRAPHS) >= _GRAPHS_KEPT:
                _GRAPHS.pop(next(iter(_GRAPHS)))
            _GRAPHS[content] = graph
        return graph

    def _graph(self, formulas: list) -> Graph:
        precedents = {}
        reads: dict = {}
        for key, formula in formulas:
            found = reads.get((formula, key[0]))
            if found is None:
                try:
                    found = reads[(formula, key[0])] = self._reads(formula, key[0])
                except UnsupportedFormula as exc:
                    raise UnsupportedFormula(f"{key[0]}!{key[1]}: {exc}") from None
            precedents[key] = found
        return Graph(precedents)

    def _reads(self, formula: str, sheet: str) -> tuple:
        found: set = set()
        for kind, text in tokens_of(formula):
            if kind == "ref":
                found.update(cells_of(text, sheet))
            elif kind == "name":
                key = self._name_key(text, sheet)
                if key is not None:
                    found.update(self._precedents(self._name_formula(key), sheet))
        return tuple(found)

    # ---- cells, computed precedents first from an explicit stack

    def _pending(self, key) -> bool:
        """Whether the cell holds a formula still to compute (not a value, an input or done)."""
        if key in self.inputs or key in self.values or key[0] not in self.package.sheets:
            return False
        cell = self.package.sheets[key[0]].cells.get(key[1])
        return cell is not None and cell.formula is not None

    def _formula(self, key):
        formula = self.package.sheets[key[0]].cells[key[1]].formula
        if formula not in self.parsed:
            self.parsed[formula] = parse(formula)
        return self.parsed[formula]

    def cell(self, sheet: str, ref: str):
        key = (sheet, ref)
        if key in self.inputs:
            return self.inputs[key]
        if key in self.values:
            return self.values[key]
        if sheet not in self.package.sheets:
            return ERR_REF
        if not self._pending(key):
            return self.package.value(sheet, ref)
        stack, started = [(key, False)], set()
        try:
            self._resolve(stack, started)
        except RecursionError:  # the bounds above should make this unreachable; a last line of defence
            raise UnsupportedFormula(f"{sheet}!{ref}: formula nested too deeply to evaluate headless") from None
        finally:
            self.active.difference_update(started)  # a refused cell leaves no half-started work
        return self.values[key]

    def recompute(self, sheet: str, ref: str):
        """A formula cell computed again from what `values` holds of the cells it reads: the step
        of a recalculation that visits cells precedents first, where every formula cell read is
        already known (recomputed, or its cached value). A formula cell read that is not known
        is computed as `cell` would; a cell that reads itself is a circular reference."""
        key = (sheet, ref)
        self.values.pop(key, None)
        self.active.add(key)
        try:
            value = self._compute(key)
        except UnsupportedFormula as exc:
            raise UnsupportedFormula(f"{sheet}!{ref}: {exc}") from None
        finally:
            self.active.discard(key)
        self.values[key] = value
        return value

    def _resolve(self, stack: list, started: set) -> None:
        while stack:
            current, ready = stack.pop()
            if current in self.values:
                continue
            try:
                if ready:
                    self.values[current] = self._compute(current)
                    self.active.discard(current)
                    continue
                self.active.add(current)
                started.add(current)
                stack.append((current, True))
                for precedent in self._precedents(self._formula(current), current[0]):
                    if precedent in self.active:
                        raise WorkbookError(f"circular reference through {precedent[0]}!{precedent[1]}; "
                                            "fix it in Excel before refreshing")
                    if self._pending(precedent):
                        stack.append((precedent, False))
            except UnsupportedFormula as exc:
                raise UnsupportedFormula(f"{current[0]}!{current[1]}: {exc}") from None

    def _precedents(self, node, sheet: str):
        """Every cell the formula may read (both branches of an IF, every cell of a range)."""
        pending, seen_names = [node], set()
        while pending:
            for part in self._parts(pending.pop()):
                if part[0] == "ref":
                    yield from cells_of(part[1], sheet)
                elif part[0] == "name":
                    key = self._name_key(part[1], sheet)
                    if key is not None and key not in seen_names:
                        seen_names.add(key)
                        pending.append(self._name_formula(key))

    def _compute(self, key):
        sheet, ref = key
        here = _split_here(ref)
        value = self._single(self.value_of(self._formula(key), sheet, here), here)
        if value is None:
            return 0.0  # a formula showing an empty cell shows 0
        if isinstance(value, float) and not math.isfinite(value):
            return ERR_NUM
        return value

    # ---- names

    def _name_key(self, name: str, sheet: str):
        """Where a name used on `sheet` is defined: (sheet, NAME), (None, NAME), or None."""
        name = name.upper()
        for key in ((sheet, name), (None, name)):
            if key in self.names:
                return key
        return None

    def _name_formula(self, key):
        if key not in self.parsed_names:
            text = self.names[key].strip()
            try:
                node = parse(text[1:] if text.startswith("=") else text)
            except UnsupportedFormula as exc:
                raise UnsupportedFormula(f"the defined name {key[1]}: {exc}") from None
            for part in self._parts(node):
                if part[0] == "ref" and not _address(part[1], "").absolute:
                    raise UnsupportedFormula(f"the defined name {key[1]} holds the relative reference {part[1]}; "
                                             "not evaluated headless")
            self.parsed_names[key] = node
        return self.parsed_names[key]

    @staticmethod
    def _parts(node):
        pending = [node]
        while pending:
            node = pending.pop()
            yield node
            if node[0] in ("neg", "plus"):
                pending.append(node[1])
            elif node[0] == "chain":
                pending.append(node[1])
                pending.extend(operand for _, operand in node[2])
            elif node[0] == "call":
                pending.extend(node[2])

    def _name(self, name: str, sheet: str, here):
        key = self._name_key(name, sheet)
        if key is None:
            return ERR_NAME
        if key in self.active_names:
            raise WorkbookError(f"the defined name {name} refers to itself; fix it in Excel before refreshing")
        if len(self.active_names) >= MAX_NAME_NESTING:
            raise UnsupportedFormula(f"defined names nested more than {MAX_NAME_NESTING} deep (at {name}); not evaluated headless")
        self.active_names.add(key)
        try:
            return self.value_of(self._name_formula(key), sheet, here)
        finally:
            self.active_names.discard(key)

    # ---- expressions

    def value_of(self, node, sheet: str, here: tuple[int, int]):
        """A single value, or a _Range for a reference (left to the consumer to read)."""
        kind = node[0]
        if kind in ("num", "str", "bool", "err"):
            return node[1]
        if kind == "ref":
            where, grid = _grid(node[1], sheet)
            if where.sheet not in self.package.sheets:
                return ERR_REF
            cell = self.cell
            return _Range(where, [[cell(where.sheet, ref) for ref in row] for row in grid])
        if kind == "name":
            return self._name(node[1], sheet, here)
        if kind == "neg":
            return binary("-", 0.0, self._single(self.value_of(node[1], sheet, here), here))
        if kind == "plus":
            return self.value_of(node[1], sheet, here)  # unary plus changes nothing in Excel, not even text
        if kind == "chain":
            value = self.value_of(node[1], sheet, here)
            for op, operand in node[2]:
                left = self._single(value, here)
                value = binary(op, left, self._single(self.value_of(operand, sheet, here), here))
            return value
        if kind == "call":
            return self.call(node[1], node[2], sheet, here)
        raise UnsupportedFormula(f"cannot evaluate {node!r}")

    @staticmethod
    def _single(v, here):
        return v.single(here) if isinstance(v, _Range) else v

    def call(self, name: str, args: list, sheet: str, here):
        if name in LAZY:
            _check_arity(name, len(args), *_LAZY_ARGS[name])
            return self._lazy(name, args, sheet, here)
        if name in self.functions:
            values = [self.value_of(a, sheet, here) for a in args]
            result = self.functions[name](*[self._excel_arg(v) for v in values])
            while isinstance(result, list):  # an array result in one cell shows its first value
                result = result[0] if result else None
            return _as_text(result) if isinstance(result, str) else result
        if name in NATIVE:
            native = NATIVE[name]
            _check_arity(name, len(args), native.min_args, native.max_args)
            values = [self.value_of(a, sheet, here) for a in args]
            if not native.takes_references:
                values = [self._single(v, here) for v in values]
            elif name == "COUNTIF":
                values[1] = self._single(values[1], here)
            return native.function(*values)
        raise UnsupportedFormula(f"the function {name} is not evaluated headless; open the model in Excel and press Refresh")

    @staticmethod
    def _excel_arg(v):
        """What xlwings hands a UDF: a single cell as a scalar, a range as a list of rows."""
        if isinstance(v, _Range):
            return v.rows[0][0] if len(v.rows) == 1 and len(v.rows[0]) == 1 else v.rows
        return v

    def _lazy(self, name, args, sheet, here):
        if name == "IF":
            cond = to_bool(self._single(self.value_of(args[0], sheet, here), here))
            if _is_error(cond):
                return cond
            if cond:
                return self.value_of(args[1], sheet, here)
            return self.value_of(args[2], sheet, here) if len(args) > 2 else False
        if name == "IFERROR":
            value = self._single(self.value_of(args[0], sheet, here), here)
            return self._single(self.value_of(args[1], sheet, here), here) if _is_error(value) else value
        if name == "NOT":
            return _not(self._single(self.value_of(args[0], sheet, here), here))
        values = [self.value_of(a, sheet, here) for a in args]
        return (_AND if name == "AND" else _OR)(*values)


def evaluate(package: Package, inputs: dict | None = None, known: dict | None = None) -> dict:
    """{(sheet, ref): value} for every formula cell, with `inputs` replacing cell values and the
    formula cells in `known` taken at the value given instead of computed."""
    return Evaluator(package, inputs, known).run()
