"""Picking values out of a model's rows: a line's value in a chosen year, and the target price
the valuation blend gives once the analyst has weighted some method.

The engine reads other years of a line directly (`at(eps, pe_year)` in the formula language);
a worksheet does it with these functions, so both read the same cells the same way.
"""
from __future__ import annotations

from .constants import ERR_NA, ERR_VALUE, NOT_MEANINGFUL, NOT_VALUED
from .errors import InputError
from .registry import ANY, TEXT, Arg, cell_row, excel_function, is_blank, is_error
from .valuation import blend_cells


def year_label(header) -> str:
    """A column header's year label: '2022（基期）' is the year 2022's column."""
    return str(header).split("（")[0].strip() if header is not None else ""


@excel_function("AT_YEAR", "A line's value in the year a cell names: the column of a year label in the header row.",
                Arg("values_row", ANY, "The line's row of yearly values"),
                Arg("years_row", ANY, "The header row of year labels, same columns"),
                Arg("year", TEXT, "The year label, e.g. 2026E", required=True),
                # the column whose header is the year, or starts with it and a note (2022（基期）)
                native=("IF(ROWS({0})*COLUMNS({0})<>ROWS({1})*COLUMNS({1}),#N/A,"
                        "IF(INDEX({0},IFERROR(MATCH({2},{1},0),MATCH({2}&\"（*\",{1},0)))=\"\",#N/A,"
                        "INDEX({0},IFERROR(MATCH({2},{1},0),MATCH({2}&\"（*\",{1},0)))))"),
                sample=([[1.10, 1.63, 1.68]], [["2024", "2025E", "2026E"]], "2025E"), formula_name="at_year")
def at_year(values_row, years_row, year):
    """The value under the header `year`; #N/A when the header row has no such year."""
    values, years = cell_row(values_row), [year_label(y) for y in cell_row(years_row)]
    if len(values) != len(years) or not year:
        return ERR_NA
    if year not in years:
        return ERR_NA
    value = values[years.index(year)]
    if is_blank(value):
        return ERR_NA
    if isinstance(value, str) and not is_error(value) and value != NOT_MEANINGFUL:
        return ERR_VALUE  # a model line's yearly value is a number, NM or an error, never other text
    return value


@excel_function("YEARS_AFTER", "How many years one year label comes after another, by their places in a header row of consecutive years.",
                Arg("year", TEXT, "The year counted from, e.g. 2025E", required=True),
                Arg("this_year", TEXT, "The year counted to", required=True),
                Arg("years_row", ANY, "The header row of consecutive year labels"),
                native="MATCH({1},{2},0)-MATCH({0},{2},0)",
                sample=("2025E", "2027E", [["2024", "2025E", "2026E", "2027E"]]), formula_name="years_after")
def years_after(year, this_year, years_row):
    """this_year's column minus year's column; #N/A when the row lacks either."""
    years = [year_label(y) for y in cell_row(years_row)]
    if year not in years or this_year not in years:
        return ERR_NA
    return float(years.index(this_year) - years.index(year))


@excel_function("VALUATION_TARGET", "Blended target price once some method is weighted; the not-valued label while no weight is entered.",
                Arg("values_column", ANY, "Target price of each method, trading currency"),
                Arg("weights_column", ANY, "Weight of each method (decimals summing to 100%)"),
                native=None,  # reads a row or column: no single native formula
                sample=([[45.0], [50.0]], [[0.5], [0.5]]), formula_name="valuation_target")
def valuation_target(values_column, weights_column):
    """The blend (ER_BLEND) of the weighted methods; the label NOT_VALUED (未估值), so the rating
    stays unrated, while every weight is empty or zero: no valuation has been made yet."""
    weights = cell_row(weights_column)
    if all(is_blank(w) or w == 0 for w in weights):
        return NOT_VALUED
    return blend_cells(values_column, weights_column)


def _given(value) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_given(v) for v in cell_row(value))
    return not (is_blank(value) or value == NOT_VALUED)


@excel_function("IF_GIVEN", "The result once an input (or any cell of a range) is given; the not-valued label while it is empty.",
                Arg("input", ANY, "The analyst's input the result needs, or a range of them"),
                Arg("result", ANY, "What to show once it is given"),
                # products, not --: the formulas package reads --(range<>"") as 0 (LibreOffice and Excel do not)
                native='IF(SUMPRODUCT((({0})<>"")*(({0})<>"\u672a\u4f30\u503c"))=0,"\u672a\u4f30\u503c",{1})',
                sample=(22.0, 45.2), formula_name="if_given")
def if_given(value, result):
    """`result` when `value` is given; NOT_VALUED (未估值) while it is empty, so a valuation
    method the analyst has not filled in reads as not valued rather than as an error."""
    return _value_or_label(result) if _given(value) else NOT_VALUED


def _value_or_label(value):
    """What a valuation cell may show: a number, an error value or a label of the model's
    (NM, not valued, weights not 100%); any other text is #VALUE!."""
    from .valuation import LABELS
    if isinstance(value, (list, tuple)):
        cells = cell_row(value)
        value = cells[0] if len(cells) == 1 else ERR_VALUE  # a block where one value belongs
    if isinstance(value, str) and not (is_error(value) or value in (NOT_MEANINGFUL, NOT_VALUED, *LABELS)):
        return ERR_VALUE
    return value


SCENARIOS = ("base", "bear", "bull")


def scenario_case(choice) -> str:
    """The scenario a cell or a file names, read the one way every reader reads it (the worksheet
    function, the engine, refresh, roll, the native edition's LOWER(TRIM())): case and spaces
    ignored, empty is base; anything else is an InputError naming the three cases."""
    if choice is None or (isinstance(choice, str) and not choice.strip()):
        return "base"
    case = choice.strip().lower() if isinstance(choice, str) else choice
    if case not in SCENARIOS:
        raise InputError(f"scenario must be base, bear or bull, not {choice!r}")
    return case


@excel_function("SCENARIO", "The driver value of the chosen scenario: base, bear or bull.",
                Arg("scenario", TEXT, "base, bear or bull; base if empty", "base", required=True),
                Arg("base", ANY, "The base-case value"), Arg("bear", ANY, "The bear-case value, base if empty", required=False),
                Arg("bull", ANY, "The bull-case value, base if empty", required=False),
                native='IF(LOWER(TRIM({0}))="bear",IF(ISBLANK({2}),{1},{2}),IF(LOWER(TRIM({0}))="bull",IF(ISBLANK({3}),{1},{3}),'
                       'IF(OR(TRIM({0})="",LOWER(TRIM({0}))="base"),{1},#VALUE!)))',
                sample=("bull", 0.04, 0.0, 0.08), formula_name="scenario")
def scenario(choice, base, bear=None, bull=None):
    """The value of the chosen scenario; an empty bear or bull value falls back to the base
    case, and a scenario name other than base, bear or bull is #VALUE! (InputError)."""
    picked = {"base": base, "bear": bear, "bull": bull}[scenario_case(choice)]
    return _value_or_label(base if is_blank(picked) else picked)
