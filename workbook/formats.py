"""Number formats, once: how each kind of figure looks in Excel and in the terminal.

Rounding for display is half away from zero, as Excel and the report round, not Python's
round-half-to-even.
"""
from __future__ import annotations

from udfs.findings import round_half_up

# format class -> (Excel number format, decimals, percent points, negatives in parentheses)
FORMATS = {
    "money": ("#,##0;-#,##0;0", 0, False, False),
    "eps": ("0.00;-0.00", 2, False, False),
    "growth": ("0.0%;(0.0%)", 1, True, True),
    "pe_summary": ("0;-0", 0, False, False),
    "pct": ("0.0%;-0.0%", 1, True, False),
    "multiple": ('0.0"x";-0.0"x"', 1, False, False),
    "days": ("0.0", 1, False, False),
    "price": ("0.00", 2, False, False),
    "money2": ("#,##0.00", 2, False, False),
    "fx": ("0.0000", 4, False, False),
    "text": ("@", 0, False, False),
    "date": ("yyyy-mm-dd", 0, False, False),
}
EMPTY = "—"


def excel_format(fmt: str) -> str:
    return FORMATS[fmt][0]


def show(value, fmt: str) -> str:
    """A value as the report prints it: 270,970; 1.63; 30.1 and (3.2) for growth in the summary;
    NM, error values and text as they are; an empty value as an em dash."""
    if value is None:
        return EMPTY
    if isinstance(value, str):
        return value
    _, decimals, percent, parentheses = FORMATS.get(fmt, FORMATS["money"])
    scaled = value * 100 if percent else value
    number = round_half_up(scaled, decimals)
    text = f"{abs(number):,.{decimals}f}"
    suffix = "%" if fmt == "pct" else "x" if fmt == "multiple" else ""
    if scaled < 0:  # as Excel: the sign of the value picks the section, so -0.15 shows "-0"
        return f"({text})" if parentheses else f"-{text}{suffix}"
    return text + suffix
