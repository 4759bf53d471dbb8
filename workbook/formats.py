"""Number formats, once: how each kind of figure looks in Excel and in the terminal.

Rounding for display is half away from zero, as Excel and the report round, not Python's
round-half-to-even.
"""
from __future__ import annotations

import math
import re
import unicodedata

from udfs.constants import ERR_NUM
from udfs.findings import round_half_up

# format class -> Excel number format. The terminal's decimals, percent scaling and bracketed
# negatives are read from it (`_DISPLAY`), so a figure never shows one way in Excel and another in
# `show`. One negative style for every number (a leading minus, as both notes print their
# statements): a printed page never shows "-" in one row and "(3.2%)" in the next. `growth` is a
# percentage the terminal shows without its % sign, as summary tables print it; `shares` counts
# shares (millions), so its input help names 百万股, not money.
NEGATIVE = "-"
FORMATS = {
    "money": "#,##0;-#,##0;0",
    "shares": "#,##0;-#,##0;0",
    "eps": "0.00;-0.00",
    "growth": "0.0%;-0.0%",
    "pe_summary": "0;-0",
    "pct": "0.0%;-0.0%",
    "multiple": '0.0"x";-0.0"x"',
    "days": "0.0;-0.0",
    "years": "0;-0",
    "price": "0.00;-0.00",
    "money2": "#,##0.00;-#,##0.00",
    "fx": "0.0000;-0.0000",
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
    """A value as the report prints it: 270,970; 1.63; 30.1 and -3.2 for growth in the summary;
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


# Widths of text in Excel column units (the digit '0' of the workbook's default font is one): a
# CJK character takes about two, a Latin letter a little less than one digit. Used to size label
# columns, wrap what does not fit, and split long notes into lines that stay inside a page.
CJK_COLUMNS, OTHER_COLUMNS = 1.75, 0.95


def text_width(text: str) -> float:
    return sum(CJK_COLUMNS if unicodedata.east_asian_width(ch) in "WF" else OTHER_COLUMNS for ch in str(text))


def wrap_text(text: str, width: float) -> list[str]:
    """`text` as lines of at most `width` columns, broken after a sentence (。 . ;) where it can
    be, else between words, else anywhere."""
    pieces = [p for p in re.split(r"(?<=[。；])|(?<=[.;]) ", text) if p]
    lines: list[str] = []
    for piece in pieces:
        for part in _hard_wrap(piece.strip(), width):
            joiner = "" if not lines or lines[-1].endswith(("。", "；")) else " "
            if lines and text_width(lines[-1] + joiner + part) <= width:
                lines[-1] += joiner + part
            else:
                lines.append(part)
    return lines


def _hard_wrap(piece: str, width: float) -> list[str]:
    out, line = [], ""
    for word in re.split(r"(?<= )", piece):
        while text_width(word) > width:  # one word wider than a line: cut it
            room = line + word
            cut = max(1, next((i for i in range(len(room), 0, -1) if text_width(room[:i]) <= width), 1))
            out.append(room[:cut].rstrip())
            word, line = room[cut:], ""
        if text_width(line + word) > width and line:
            out.append(line.rstrip())
            line = ""
        line += word
    if line.strip():
        out.append(line.rstrip())
    return out
