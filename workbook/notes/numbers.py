"""Printed numbers: one parser for every figure a note prints, keeping the precision it was
printed at and naming the converter damage it repaired on the way.

A footnote mark after a figure (`1000¹`, `1200①`, `35.2%*`) is dropped and named, never read as
a digit (Unicode folds ¹ and ① into digits). It refuses what it cannot represent faithfully
rather than guess: such a mark inside a figure (`1²000`, `½`), two figures run into one cell
(`258 2`), more digits than a float keeps as printed, a malformed grouping (`31,34`). A refused figure is
not a number; `damage_of` says what kind of not-a-number it is, for the import report.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from udfs.findings import Interval, Printed

# Repair names, as the import report lists them.
FULL_WIDTH = "full-width characters"
UNICODE_MINUS = "unicode minus sign"
SPACE_IN_NUMBER = "space inside a number"
PARENTHESES = "parentheses for a negative"
THOUSANDS = "thousands separators"
NEGATIVE_ZERO = "-0 read as 0"
FOOTNOTE_MARK = "footnote mark after a figure dropped"

# What a cell that looks like a figure but is not one suffers from, as the report says it.
MALFORMED = "a malformed number (a digit dropped or a separator garbled)"
RUN_TOGETHER = "two figures run into one cell"
FOOTNOTE = "a superscript or circled digit inside the figure"
TOO_LONG = "more digits than a figure can carry"

MAX_TEXT = 40           # characters of one printed figure, signs and separators included
MAX_DIGITS = 15         # significant digits a float represents exactly
MAX_DECIMALS = 10       # decimals a printed figure ever has

_MINUS_SIGNS = "\u2212\u2013\u2014\u2012\ufe63"
PLACEHOLDER_TEXTS = frozenset({"-", "--", "—", "–", "n/a", "na", "nm", "n.m.", "/"})
# Linear patterns only: no nested quantifiers.
_PLAIN = re.compile(r"[+-]?\d+(?:\.\d+)?")
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SPACE_GROUPED = re.compile(r"[+-]?\d{1,3}(?: \d{3})+(?:\.\d+)?")
_SPACE_BY_SEPARATOR = re.compile(r" *([,.]) *")
_NUMBERISH = re.compile(r"[+-]?[\d.,]*\d[\d.,]*")


@dataclass(frozen=True)
class PrintedNumber:
    """A figure as printed: its value, the decimals it was printed with, whether it is in
    percent points (35.0 for 35.0%), the text it was read from and the repairs that reading
    needed."""
    value: float
    decimals: int
    percent: bool
    raw: str
    repairs: tuple[str, ...] = ()

    def printed(self) -> Printed:
        return Printed(self.value, self.decimals, self.percent)

    def interval(self) -> Interval:
        return Interval.of(self.value, self.decimals)

    def shown(self) -> str:
        return f"{self.value:,.{self.decimals}f}" + ("%" if self.percent else "")


_FOOTNOTE_SYMBOLS = "*†‡"


def _without_footnote_mark(text: str) -> tuple[str, bool]:
    """(`text` without the footnote marks that end it, whether there were any): superscript or
    circled digits (Unicode "other number": ¹ ② ⑴ ❶) and * † ‡ after the figure."""
    end = len(text)
    while end and (unicodedata.category(text[end - 1]) == "No" or text[end - 1] in _FOOTNOTE_SYMBOLS):
        end -= 1
    return text[:end].rstrip(), end < len(text)


def _foreign_digit(text: str) -> bool:
    """A character Unicode counts as a digit that is not one a figure is printed with (¹, ①, ₂):
    folding would make it part of the number."""
    return any(unicodedata.digit(c, None) is not None and not ("0" <= c <= "9" or "\uff10" <= c <= "\uff19")
               for c in text)


def _clean(raw: str) -> tuple[str, list[str], bool, bool] | None:
    """(digits text, repairs, negative by parentheses, percent) or None when the text is empty
    or a placeholder."""
    text = raw.strip()
    if not text:
        return None
    repairs = []
    folded = unicodedata.normalize("NFKC", text)
    if folded != text:
        repairs.append(FULL_WIDTH)
    if any(c in folded for c in _MINUS_SIGNS):
        folded = "".join("-" if c in _MINUS_SIGNS else c for c in folded)
        repairs.append(UNICODE_MINUS)
    if folded.casefold() in PLACEHOLDER_TEXTS:
        return None
    percent = folded.endswith("%")
    if percent:
        folded = folded[:-1].rstrip()
    negative = False
    if folded.startswith("(") and folded.endswith(")"):
        negative = True
        folded = folded[1:-1].strip()
        repairs.append(PARENTHESES)
    return folded, repairs, negative, percent


def parse_number(raw: str, percent: bool = False) -> PrintedNumber | None:
    """One printed figure, or None when the text is empty, a placeholder or not a number.

    `percent` says the row or table is in percent, so a bare `35.0` is 35.0%."""
    if len(raw) > MAX_TEXT:
        return None
    text, marked = _without_footnote_mark(raw.strip())
    if not text or _foreign_digit(text):
        return None
    cleaned = _clean(text)
    if cleaned is None:
        return None
    folded, repairs, negative, printed_percent = cleaned
    if marked:
        repairs.insert(0, FOOTNOTE_MARK)
    percent = percent or printed_percent
    if " " in folded or "\t" in folded:
        squeezed = _SPACE_BY_SEPARATOR.sub(r"\1", " ".join(folded.split()))
        squeezed = re.sub(r"^([+-]) ", r"\1", squeezed)
        if _SPACE_GROUPED.fullmatch(squeezed):
            squeezed = squeezed.replace(" ", "")
        if " " in squeezed:
            return None        # two figures in one cell, or words
        folded = squeezed
        repairs.append(SPACE_IN_NUMBER)
    if _GROUPED.fullmatch(folded):
        folded = folded.replace(",", "")
        repairs.append(THOUSANDS)
    if not _PLAIN.fullmatch(folded):
        return None
    if negative:
        if folded.startswith("-"):
            return None  # (-5) has no agreed meaning
        folded = "-" + folded.lstrip("+")
    whole, _, fraction = folded.lstrip("+-").partition(".")
    if len(whole.lstrip("0")) > MAX_DIGITS or len(fraction) > MAX_DECIMALS:
        return None      # more digits than a float holds as printed
    decimals = len(fraction)
    value = float(folded)
    if value == 0 and folded.startswith("-"):
        repairs.append(NEGATIVE_ZERO)
        value = 0.0
    return PrintedNumber(value, decimals, percent, raw, tuple(repairs))


def damage_of(raw: str) -> str | None:
    """What is wrong with a cell that looks like a figure but does not parse as one (None when it
    parses, is empty, or is plainly words)."""
    if parse_number(raw) is not None:
        return None
    text = raw.strip()
    if not text or text.casefold() in PLACEHOLDER_TEXTS:
        return None
    if len(text) > MAX_TEXT:
        return TOO_LONG if re.fullmatch(r"[\d.,\s()+%-]+", text[:10_000]) else None
    unmarked = _without_footnote_mark(text)[0]
    if not unmarked:
        return None
    if _foreign_digit(unmarked):
        return FOOTNOTE if re.search(r"\d", text) else None
    cleaned = _clean(text)
    if cleaned is None:
        return None
    folded = cleaned[0]
    if re.fullmatch(r"[+-]?[\d.,]+(?: +[+-]?[\d.,]+)+", folded):
        return RUN_TOGETHER
    if _NUMBERISH.fullmatch(folded):
        whole, _, fraction = folded.lstrip("+-").partition(".")
        too_long = sum(c.isdigit() for c in whole) > MAX_DIGITS or len(fraction) > MAX_DECIMALS
        return TOO_LONG if too_long else MALFORMED
    return None


def parse_range(raw: str) -> tuple[PrintedNumber, PrintedNumber] | None:
    """A printed range such as `30-61.45`, `15.16/10.09` or `29.14 / 18.74`, in printed order."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if len(text) > 2 * MAX_TEXT:
        return None
    match = re.fullmatch(r"([\d.,]+(?: ?[.,] ?\d+)*) *[-~/至／] *([\d.,]+(?: ?[.,] ?\d+)*)", text)
    if not match:
        return None
    first, second = parse_number(match.group(1)), parse_number(match.group(2))
    return (first, second) if first and second else None
