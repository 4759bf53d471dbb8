"""Number formats, once: how each kind of figure looks in Excel and in the terminal.

Rounding for display is half away from zero, as Excel and the report round, not Python's
round-half-to-even.
"""
from __future__ import annotations

import math
import re

from udfs.constants import ERR_NUM
from udfs.findings import round_half_up

# format class -> Excel number format. The terminal's decimals, percent scaling and bracketed
# negatives are read from it (`_DISPLAY`), so a figure never shows one way in Excel and another in
# `show`.
FORMATS = {
    "money": "#,##0;-#,##0;0",
    "eps": "0.00;-0.00",
    "growth": "0.0%;(0.0%)",
    "pe_summary": "0;-0",
    "pct": "0.0%;-0.0%",
    "multiple": '0.0"x";-0.0"x"',
    "days": "0.0",
    "years": "0",
    "price": "0.00",
    "money2": "#,##0.00",
    "fx": "0.0000",
    "text": "@",
    "date": "yyyy-mm-dd",
}


def _display(excel_format: str) -> tuple[int, bool, bool]:
    """(decimals, percent, negatives in parentheses) of an Excel number format: the zeros after
    the point and the % of its positive section, a negative section that opens with "("."""
    positive, _, negative = excel_format.partition(";")
    point = re.search(r"\.(0+)", positive)
    return (len(point[1]) if point else 0), "%" in positive, negative.startswith("(")


_DISPLAY = {fmt: _display(excel) for fmt, excel in FORMATS.items()}
EMPTY = "—"


def excel_format(fmt: str) -> str:
    return FORMATS[fmt]


def show(value, fmt: str) -> str:
    """A value as the report prints it: 270,970; 1.63; 30.1 and (3.2) for growth in the summary;
    NM, error values and text as they are; an empty value as an em dash."""
    if value is None:
        return EMPTY
    if isinstance(value, str):
        return value
    decimals, percent, parentheses = _DISPLAY.get(fmt, _DISPLAY["money"])
    scaled = value * 100 if percent else value
    if not math.isfinite(scaled):  # 1e308 as a percentage: beyond a float, as Excel says
        return ERR_NUM
    number = round_half_up(scaled, decimals)
    text = f"{abs(number):,.{decimals}f}"
    suffix = "%" if fmt == "pct" else "x" if fmt == "multiple" else ""
    if scaled < 0:  # as Excel: the sign of the value picks the section, so -0.15 shows "-0"
        return f"({text})" if parentheses else f"-{text}{suffix}"
    return text + suffix
