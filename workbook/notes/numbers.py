"""Printed numbers: a figure with the precision it was printed at and the converter damage
repaired on the way to reading it."""
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


_MINUS_SIGNS = "\u2212\u2013\u2014\u2012\ufe63"
_PLACEHOLDERS = {"-", "--", "—", "–", "n/a", "na", "nm", "n.m.", "/"}
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def parse_number(raw: str, percent: bool = False) -> PrintedNumber | None:
    """One printed figure, or None when the text is empty, a placeholder or not a number.

    `percent` says the row or table is in percent, so a bare `35.0` is 35.0%."""
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
    if folded.casefold() in _PLACEHOLDERS:
        return None
    if folded.endswith("%"):
        percent = True
        folded = folded[:-1].rstrip()
    negative = False
    if folded.startswith("(") and folded.endswith(")"):
        negative = True
        folded = folded[1:-1].strip()
        repairs.append(PARENTHESES)
    if re.search(r"\s", folded):
        squeezed = re.sub(r"\s+", "", folded)
        if not (_PLAIN_NUMBER.match(squeezed) or _GROUPED.match(squeezed)):
            return None
        folded = squeezed
        repairs.append(SPACE_IN_NUMBER)
    if _GROUPED.match(folded):
        folded = folded.replace(",", "")
        repairs.append(THOUSANDS)
    if not _PLAIN_NUMBER.match(folded):
        return None
    if negative:
        if folded.startswith("-"):
            return None  # (-5) has no agreed meaning
        folded = "-" + folded.lstrip("+")
    decimals = len(folded.split(".")[1]) if "." in folded else 0
    value = float(folded)
    if value == 0 and folded.startswith("-"):
        repairs.append(NEGATIVE_ZERO)
        value = 0.0
    return PrintedNumber(value, decimals, percent, raw, tuple(repairs))


def parse_range(raw: str) -> tuple[PrintedNumber, PrintedNumber] | None:
    """A printed range such as `30-61.45` or `15.16/10.09`, in printed order."""
    text = unicodedata.normalize("NFKC", raw).strip()
    match = re.match(r"^([\d.,\s]+?)\s*[-~/至]\s*([\d.,\s]+)$", text)
    if not match:
        return None
    first, second = parse_number(match.group(1)), parse_number(match.group(2))
    return (first, second) if first and second else None

