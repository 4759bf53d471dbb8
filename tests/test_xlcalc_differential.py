"""The headless evaluator (`workbook/xlcalc.py`) against an independent one (`formulas`), on
random formulas over a grid holding numbers, text, booleans, a blank and errors. The formulas
use every operator xlcalc evaluates (+ - * / ^ &, the six comparisons, percent, unary minus and
plus), every worksheet function it evaluates (`xlcalc.NATIVE`: SUM, MIN, MAX, AVERAGE, COUNTIF,
ABS, ROUND, NA, ISNUMBER, ISERROR, TEXT, TRUE, FALSE; and IF, IFERROR, AND, OR, NOT; a test
below fails if one is added and not drawn) and every ER_ function of the registry that returns
one value. What one sheet of constants cannot show (defined names, references to another sheet,
the formulas xlcalc refuses) is pinned against Excel in tests/test_xlcalc_rules.py.

Each example writes one workbook of `FORMULAS_PER_BOOK` formulas with XlsxWriter and evaluates
it with both; the CI profile (tests/conftest.py, selected when CI is set) runs enough examples
for at least 2,000 random cells. `formulas` cannot load a workbook holding TRUE() or FALSE()
("override function TRUE"), so the copy it reads spells them TRUE and FALSE, the values they
return (TRUE function help: "You can enter the value TRUE directly"). Every disagreement fails
the test, except where `formulas` itself departs from Excel; those cases are kept out of the
generator below, each with the Excel behaviour it would get wrong, and each is pinned against
Excel's value in tests/test_xlcalc_rules.py instead, unless its note says otherwise:

- A range where one value belongs (`=A1:A3`, `ISNUMBER(A1:A3)`): Excel applies implicit
  intersection (Microsoft, "Implicit intersection operator: @"); `formulas` gives #VALUE! or the
  first cell. Ranges are generated only as arguments of functions that take ranges.
- Text that looks like a number inside a reference (a cell holding the text "3"): Excel's SUM,
  MIN, MAX and AVERAGE ignore text in references ("If an argument is an array or reference,
  only numbers in that array or reference are counted", SUM/AVERAGE help) and ISNUMBER("3") is
  FALSE; `formulas` reads such text as a number, and so does its ISNUMBER(TEXT(1,"0")). Numeric
  text appears only as a literal given directly to an operator or an aggregate, where Excel does
  convert it, and & always joins a letter in, to TEXT's result too.
- A text or logical value computed by an expression and given directly to SUM, MIN, MAX,
  AVERAGE, AND or OR (`SUM(IF(A1,"a"))`, `SUM(1=1)`): Excel treats it as a value given directly
  (converted, or #VALUE! for text that is not a number; SUM help: "logical values and text
  representations of numbers that you type directly into the list of arguments are counted");
  `formulas` skips it as if it came from a reference. Those functions get ranges, literals and
  computed numbers only.
- The text "TRUE"/"FALSE" given to IF, NOT, AND, OR: Excel evaluates it as the logical value;
  `formulas` gives #VALUE!. The text pool holds no such text and & joins no booleans.
- Text in a percent form ("50%"): Excel reads it as 0.5 where it converts text to a number
  (VALUE help: any constant number format Excel recognises); `formulas` gives #VALUE!. The
  numeric text pool holds no percent, and TEXT's result is joined with a letter.
- Unary plus on numeric text: Excel leaves the text as it is (ISNUMBER(+"2") is FALSE);
  `formulas` converts it to a number. Unary plus is generated on leaves, which hold no numeric
  text, and on computed numbers. Not pinned in the rules file.
- 0^0 (#NUM! in Excel, 1 in `formulas`), 0^-1 (#DIV/0! in Excel, #VALUE! in `formulas`) and a
  negative base with a fractional power (#NUM! in Excel, a complex number in `formulas`): powers
  are generated on a base of at least 1.
- A blank cell compared with TRUE or FALSE: Excel compares a blank as the other side's empty
  value, so a blank equals FALSE; `formulas` compares it as 0 (FALSE). Blank cells enter
  comparisons only against numbers and text.
- COUNTIF with "<>x": Excel counts every cell not equal to x, blanks and text included (COUNTIF
  help: "<>" means not equal to); `formulas` counts only cells of x's type. A criterion naming a
  blank cell: Excel reads it as 0 (COUNTIFS help: "If the criteria argument is a reference to
  an empty cell, the COUNTIFS function treats the empty cell as a 0 value"); `formulas` matches
  nothing. "=" alone counts blank cells and "<>" alone every cell that is not blank;
  `formulas` reads both as text to match. Text ordering criteria ("<z"): `formulas` counts blank
  cells as "". These criteria are not generated. A wildcard ("*") matches text only, never a
  blank cell or an error value (COUNTIF help: wildcards match characters); `formulas` matches
  both, so wildcard criteria count over ranges without blanks and errors.
- Number to text (`&`) of a computed number: Excel writes 15 significant digits (0.1+0.2&"" is
  "0.3"); `formulas` writes Python's repr ("0.30000000000000004"). `&` joins only cells and
  literals whose numbers are short.
- TEXT of a number: Excel rounds a half away from zero (TEXT(2.5,"0") is "3"); `formulas`
  rounds the binary value, a half to even ("2"). It writes every binary digit beyond Excel's 15
  significant digits, "-0" for a negative zero (Excel has none), "0," for TEXT(0.5,"#,##0"),
  and #VALUE! for the format "General". So TEXT gets a number held within 1E+9, rounded to no
  more decimals than its format shows, plus 0, and formats without a thousands separator or
  General. The negative zero, the 15 digits and General are not pinned in the rules file.
- TEXT of a date serial: Excel's 1900 calendar has day 0 (1900-01-00) and the Lotus day 60
  (1900-02-29), and a serial past 9999-12-31 is #VALUE!; `formulas` gives 1899-12-31, #VALUE!
  and #NUM!. Serials are days 1 to 59 and 61 to 9999-12-31, and a blank gets number formats
  only. Past 9999-12-31 is not pinned in the rules file. Formats xlcalc refuses (`#.##`, "mmm",
  text inside a date format) are not generated.
- An ER_ function returning an array (ER_PE_GRID, ER_DCF_GRID) in one cell: Excel shows its
  first value, as xlcalc does; `formulas` gives #VALUE! when the array holds text. Functions
  whose sample call returns an array are not drawn; tests/test_valuation.py tests the grids.
"""
from __future__ import annotations

import functools
import inspect
import math
import re
from typing import Callable

import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import udfs
from formulas_bridge import Evaluated
from udfs.functions import all_functions
from udfs.registry import registry_version
from workbook import xlsx
from workbook.xlcalc import LAZY, NATIVE, Evaluator, UnsupportedFormula

SHEET = "Grid"
FORMULAS_PER_BOOK = 40

# The grid in column A: what each cell holds. Errors are formulas so both evaluators compute them.
NUMBERS = {"A1": 1, "A2": -2.5, "A3": 0, "A4": 100, "A5": 0.5}
TEXTS = {"A6": "abc", "A7": "", "A8": "Xy"}
BOOLEANS = {"A9": True, "A10": False}
BLANK = "A11"
ERRORS = {"A12": "=NA()", "A13": "=1/0"}
LAST_ROW = 13

NUMBER_LITERALS = ["0", "1", "2", "0.5", "3", "10", "1E+3", "1234567"]
TEXT_LITERALS = ['"abc"', '""', '"Xy"', '"a"']
NUMERIC_TEXT = ['"2"', '" 3 "', '"1.5"', '"-4"']
BOOLEAN_LITERALS = ["TRUE", "FALSE", "TRUE()", "FALSE()"]
ERROR_LITERALS = ["NA()", "#N/A", "#DIV/0!"]
VALUE_CELLS = sorted(NUMBERS) + sorted(TEXTS) + sorted(BOOLEANS) + sorted(ERRORS)
LEAVES = VALUE_CELLS + NUMBER_LITERALS + TEXT_LITERALS + BOOLEAN_LITERALS + ERROR_LITERALS
# What may meet a blank cell in a comparison: anything but a boolean (see the module note).
NOT_BOOLEAN_LEAVES = sorted(NUMBERS) + sorted(TEXTS) + NUMBER_LITERALS + TEXT_LITERALS
LETTERS = ['"abc"', '"Xy"', '"a"']
# No booleans: TRUE&"" is the text "TRUE", which IF and NOT read differently (see the module note).
CONCAT_PARTS = sorted(NUMBERS) + sorted(TEXTS) + sorted(ERRORS) + [BLANK] + NUMBER_LITERALS + TEXT_LITERALS
CRITERIA = NUMBER_LITERALS + BOOLEAN_LITERALS + sorted(NUMBERS) + sorted(TEXTS) + [
    '"abc"', '""', '">0"', '"<=1"', '">=-2.5"', '"=abc"', '"#N/A"', '"2"', '"TRUE"']
WILDCARDS = ['"a*"', '"?y"', '"*"', '"x~*"', '"*b*"']
ROUND_DIGITS = ['0', '1', '2', '-1']
# TEXT: number formats with how many decimals of the value each shows (a percent two more), date
# formats, serials of days 1 to 59 and 61 to 9999-12-31, and what TEXT returns as it is (see the module note).
NUMBER_FORMATS = {'"0"': 0, '"#"': 0, '"00"': 0, '"0.0"': 1, '"#0.0"': 1, '"0.00"': 2, '"0.000"': 3, '"0%"': 2, '"0.0%"': 3}
DATE_FORMATS = ['"yyyy-mm-dd"', '"yyyy/m/d"', '"dd/mm/yy"', '"mmdd"', '"yy"', '"d"', '"m/d"', '"dd.mm.yyyy"']
SERIALS = ["1", "59", "61", "45000", "45658.75", "1234567", "2958465", "A1", "A4", "(45000+A2)", "(1E+3+A5)"]
NOT_NUMBERS = sorted(TEXTS) + TEXT_LITERALS + sorted(ERRORS) + ERROR_LITERALS
LAST_ROW_OF_VALUES = min(int(ref[1:]) for ref in [BLANK, *ERRORS]) - 1  # rows above the blank and the errors


class _Formulas:
    """Random formulas drawn from the operators and functions the module's docstring lists, in three
    families: any value, a number (or error), a logical value (or error). Each family is a table
    of productions, one drawn with even chances, or a leaf at the depth limit or one time in four."""

    def __init__(self, draw, max_depth: int):
        self.draw, self.max_depth = draw, max_depth

    def pick(self, options):
        return self.draw(st.sampled_from(options))

    def choose(self, count: int) -> int:
        return self.draw(st.integers(0, count - 1))

    def one_of(self, *productions: Callable[[], str]) -> str:
        """One of the productions, each as likely."""
        return productions[self.choose(len(productions))]()

    def derive(self, depth: int, leaves: list[str], *productions: Callable[[], str]) -> str:
        """A leaf where the formula must stop growing, and one time in four anyway, so that
        shallow formulas are common; else one of the productions."""
        if depth >= self.max_depth or self.choose(4) == 0:
            return self.pick(leaves)
        return self.one_of(*productions)

    def cell_range(self, last: int = LAST_ROW) -> str:
        top = self.draw(st.integers(1, last))
        return f"A{top}:A{self.draw(st.integers(top, last))}"

    def operand(self, depth) -> str:
        """Any expression, or the blank cell where conversion reads it as 0, "" or FALSE
        (never compared directly with a boolean; see the module note)."""
        return BLANK if self.choose(10) == 0 else self.expression(depth)

    def listing(self, item: Callable[[], str]) -> str:
        return ",".join(item() for _ in range(self.draw(st.integers(1, 3))))

    def expression(self, depth: int = 0) -> str:
        """Any value: number, text, boolean or error; never a blank (see `operand`). A number or
        a logical value is one more choice at the same depth, not a level deeper."""
        d = depth + 1
        return self.derive(
            depth, LEAVES,
            lambda: self.number(depth),
            lambda: self.logical(depth),
            self.joined,
            lambda: f"IF({self.operand(d)},{self.expression(d)},{self.expression(d)})",
            lambda: f"IF({self.operand(d)},{self.expression(d)})",
            lambda: f"IFERROR({self.expression(d)},{self.expression(d)})",
            lambda: self.udf_call(d),
            lambda: self.formatted(d),
            # unary plus changes nothing; never on numeric text (see the module note)
            lambda: "+" + self.one_of(lambda: self.pick(LEAVES), lambda: f"({self.number(d)})"),
            lambda: "NA()",
        )

    def udf_call(self, depth: int) -> str:
        """Any ER_ function of the registry that returns one value (a number, or text: NM, a
        label, or an error value as xlwings returns it), each argument an operand or a range and
        the optional ones at the end left out at random. Both evaluators call the same Python
        functions, so what is compared is how each hands them Excel's arguments and shows the result."""
        name, required, most = self.pick(_single_valued_udfs(registry_version()))
        arguments = [self.one_of(lambda: self.operand(depth), self.cell_range)
                     for _ in range(self.draw(st.integers(required, most)))]
        return f"{name}({','.join(arguments)})"

    def formatted(self, depth: int) -> str:
        """TEXT of a number in a number format, of a date serial in a date format, or of text, an
        error or a blank (text and errors come back as they are). The number is held within
        1E+9, rounded to no more decimals than the format shows, and +0 makes a -0 plain 0. The
        result is joined with a letter, so that it never reads as a number (see the module note)."""
        digits = self.pick(ROUND_DIGITS)
        value, fmt = self.one_of(
            lambda: (f"ROUND(MAX(MIN({self.number(depth)},1E+9),-1E+9),{digits})+0",
                     self.pick([f for f, shown in NUMBER_FORMATS.items() if shown >= int(digits)])),
            lambda: (self.pick(SERIALS), self.pick(DATE_FORMATS)),
            lambda: (self.pick(NOT_NUMBERS), self.pick(list(NUMBER_FORMATS) + DATE_FORMATS)),
            lambda: (BLANK, self.pick(list(NUMBER_FORMATS))),
        )
        return f"(TEXT({value},{fmt})&{self.pick(LETTERS)})"

    def joined(self) -> str:
        """Cells and literals joined with &, ending in a letter: never text that reads as a number."""
        parts = [self.pick(CONCAT_PARTS) for _ in range(self.draw(st.integers(1, 2)))]
        return "(" + "&".join(parts + [self.pick(LETTERS)]) + ")"

    def aggregate_arg(self, depth) -> str:
        """What SUM, MIN, MAX, AVERAGE get: a range, a literal, or a computed number (computed
        text and logical values are kept out; see the module note)."""
        return self.one_of(
            self.cell_range,
            lambda: self.pick(NUMERIC_TEXT + TEXT_LITERALS + BOOLEAN_LITERALS + [BLANK]),
            lambda: self.number(depth),
        )

    def number(self, depth: int) -> str:
        """A number or an error."""
        d = depth + 1
        return self.derive(
            depth, sorted(NUMBERS) + NUMBER_LITERALS,
            lambda: self.arithmetic(d),
            lambda: f"(1+ABS({self.operand(d)}))^{self.draw(st.integers(0, 3))}",
            lambda: self.one_of(lambda: f"-({self.operand(d)})", lambda: f"({self.operand(d)})%"),
            lambda: f"{self.pick(['SUM', 'MIN', 'MAX', 'AVERAGE'])}({self.listing(lambda: self.aggregate_arg(d))})",
            lambda: f"ROUND({self.number(d)},{self.pick(ROUND_DIGITS)})",
            lambda: f"ABS({self.operand(d)})",
            lambda: f"ROUND({self.operand(d)},{self.pick(ROUND_DIGITS)})",
            lambda: self.one_of(lambda: f"COUNTIF({self.cell_range()},{self.pick(CRITERIA)})",
                                lambda: f"COUNTIF({self.cell_range(LAST_ROW_OF_VALUES)},{self.pick(WILDCARDS)})"),
            lambda: f"IFERROR({self.number(d)},{self.number(d)})",
        )

    def arithmetic(self, depth: int) -> str:
        """Two operands, each an expression or numeric text given directly (which Excel converts),
        and one of + - * /."""
        a, b = (self.one_of(lambda: self.operand(depth), lambda: self.pick(NUMERIC_TEXT)) for _ in range(2))
        return f"({a}{self.pick(list('+-*/'))}{b})"

    def logical(self, depth: int) -> str:
        """A logical value or an error."""
        d = depth + 1
        return self.derive(
            depth, BOOLEAN_LITERALS + sorted(BOOLEANS),
            lambda: f"({BLANK}{self.pick(['=', '<>', '<', '>'])}{self.pick(NOT_BOOLEAN_LEAVES)})",
            lambda: f"({self.expression(d)}{self.pick(['=', '<>', '<', '>', '<=', '>='])}{self.expression(d)})",
            lambda: f"NOT({self.operand(d)})",
            lambda: f"{self.pick(['AND', 'OR'])}({self.listing(lambda: self.logical_arg(d))})",
            lambda: f"ISNUMBER({self.expression(d)})",
            lambda: f"ISERROR({self.expression(d)})",
        )

    def logical_arg(self, depth) -> str:
        """What AND and OR get: a range, a logical value or a number (computed text is kept out)."""
        return self.one_of(self.cell_range, lambda: self.logical(depth), lambda: self.number(depth))


@functools.cache
def _single_valued_udfs(version: int) -> list[tuple[str, int, int]]:
    """(name, required arguments, all arguments) of each ER_ function whose sample call returns
    one value: the grids return an array (see the module note). Keyed by the registry's version,
    so that a function registered at run time is drawn too."""
    functions = udfs.excel_functions()
    return [(f.excel_name, sum(not a.optional for a in f.args), len(f.args)) for f in all_functions()
            if not isinstance(functions[f.excel_name](*f.sample), list)]


@st.composite
def books(draw, max_depth: int = 4) -> list[str]:
    generator = _Formulas(draw, max_depth)
    return [generator.expression() for _ in range(FORMULAS_PER_BOOK)]


def _book(path, formulas: list[str]) -> None:
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet(SHEET)
    for ref, value in {**NUMBERS, **BOOLEANS}.items():
        sheet.write(ref, value)
    for ref, text in TEXTS.items():
        sheet.write_formula(ref, '=""', None, "") if text == "" else sheet.write_string(ref, text)
    for ref, formula in ERRORS.items():
        sheet.write_formula(ref, formula, None, 0)
    for row, formula in enumerate(formulas, start=1):
        sheet.write_formula(f"C{row}", "=" + formula, None, 0)
    book.close()


def _for_formulas(formula: str) -> str:
    """The formula as `formulas` can load it: TRUE() and FALSE() spelled as the values they return."""
    return formula.replace("TRUE()", "TRUE").replace("FALSE()", "FALSE")


def _agree(ours, theirs) -> bool:
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return isinstance(ours, bool) and isinstance(theirs, bool) and ours == theirs
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
        return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12)
    return ours == theirs


# Each example is FORMULAS_PER_BOOK cells: half the profile's examples gives 2,000 cells under the
# CI profile (100 examples) and a quick run locally.
@pytest.mark.long
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
          max_examples=max(1, settings.default.max_examples // 2), database=None)
@given(books())
def test_xlcalc_agrees_with_formulas(tmp_path_factory, formulas):
    folder = tmp_path_factory.mktemp("differential")
    path, theirs_path = folder / "random.xlsx", folder / "random_for_formulas.xlsx"
    _book(path, formulas)
    _book(theirs_path, [_for_formulas(f) for f in formulas])
    theirs = Evaluated(theirs_path).calculate()
    ours = Evaluator(xlsx.read(path))
    disagreements = []
    for row, formula in enumerate(formulas, start=1):
        try:
            value = ours.cell(SHEET, f"C{row}")
        except UnsupportedFormula as refused:
            # Refusing is allowed for one reason only: text whose number depends on the regional
            # settings ("1000-2.5" may be a date), which a random & can build.
            assert "regional settings" in str(refused), f"={formula}: {refused}"
            continue
        expected = theirs[(SHEET.upper(), f"C{row}")]
        if not _agree(value, expected):
            disagreements.append(f"={formula}: xlcalc {value!r}, formulas {expected!r}")
    assert not disagreements, "\n".join(disagreements)


def test_the_grammar_draws_every_function_xlcalc_evaluates():
    """A worksheet function added to xlcalc and not to the grammar fails here rather than going
    untested (the ER_ functions are drawn from the registry itself)."""
    grammar, leaves = inspect.getsource(_Formulas), repr(LEAVES)  # a call, or a name in a list to pick from
    missing = [name for name in sorted({*NATIVE, *LAZY})
               if not re.search(rf"\b{name}\(", grammar + leaves) and f"'{name}'" not in grammar]
    assert missing == []
