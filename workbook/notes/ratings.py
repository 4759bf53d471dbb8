"""The published rating, its action (首次/维持/上调/下调) and the broker's rating scheme as the note
prints it (评级说明: labels, bands, benchmark index, horizon)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .labels import LabelData
from .numbers import _MINUS_SIGNS
from .tables import _PARENS, Table

@dataclass(frozen=True)
class RatingBand:
    label: str
    lower: float | None            # percent; None = unbounded
    upper: float | None
    lower_inclusive: bool | None   # None: the print does not say
    upper_inclusive: bool | None
    text: str
    note: str = ""


@dataclass
class RatingScheme:
    title: str
    bands: list[RatingBand]
    unrated: str | None
    benchmarks: dict[str, str]     # market code -> index name as printed (spaces in CJK removed)
    horizon: tuple[int, int] | None
    horizon_text: str | None
    basis: str = "excess"



_BAND_NUMBER = r"([+-]?\d+(?:\.\d+)?)\s*%"


def _band(label: str, text: str, data: LabelData) -> RatingBand | None:
    folded = unicodedata.normalize("NFKC", text).replace("～", "~")
    folded = "".join("-" if c in _MINUS_SIGNS else c for c in folded)
    words = data.section("rating_scheme")
    sign = -1 if any(w in folded for w in words.get("weaker", [])) else 1
    span = re.search(_BAND_NUMBER + r"?\s*(?:至|~|到)\s*" + _BAND_NUMBER, folded)
    if span:
        a, b = float(span.group(1)), float(span.group(2))
        lo, hi = sorted((sign * a, sign * b))
        return RatingBand(label, lo, hi, None, None, text)
    one = re.search(r"([><≥≤]=?)?\s*" + _BAND_NUMBER + r"\s*(以上|以下)?", folded)
    if not one:
        return None
    op, value, word = one.group(1), float(one.group(2)), one.group(3)
    note = ""
    if word == "以上" or op in (">", "≥", ">="):
        above = True
    elif word == "以下" or op in ("<", "≤", "<="):
        above = False
    else:
        return None
    inclusive = word is not None or op in ("≥", "≤", ">=", "<=")
    if sign < 0:
        if not above:
            note = "以下 after a word for 'weaker' read as beyond the bound, the reading that leaves no gap"
        return RatingBand(label, None, -value, None, inclusive, text, note)
    if above:
        return RatingBand(label, value, None, inclusive, None, text)
    return RatingBand(label, None, value, None, inclusive, text)


def _scheme_from(tables: list[Table], text_lines_after: dict[int, list[str]], data: LabelData) -> RatingScheme | None:
    words = data.section("rating_scheme")
    for table in tables:
        if table.kind != "rating_scheme":
            continue
        rows = [[r.label] + r.texts for r in table.rows]
        width = max(len(r) for r in rows)
        grouped = width >= 3 and any(any(g in r[0] for g in words.get("stock_groups", [])) for r in rows)
        bands, unrated, texts = [], None, []
        for cells in rows:
            texts.append(" ".join(cells))
            if grouped:
                if not any(g in cells[0] for g in words.get("stock_groups", [])):
                    continue
                label_cell, text_cell = cells[1], (cells[2] if len(cells) > 2 else "")
            else:
                label_cell, text_cell = cells[0], (cells[1] if len(cells) > 1 else "")
            label = _PARENS.sub("", label_cell).strip()
            if not label:
                continue
            if any(u == label for u in words.get("unrated", [])):
                unrated = label
                continue
            band = _band(label, text_cell, data)
            if band:
                bands.append(band)
        text = "\n".join(texts + text_lines_after.get(id(table), []))
        return RatingScheme(table.title, bands, unrated, _benchmarks(text, data), *_horizon(text))
    return None


def _benchmarks(text: str, data: LabelData) -> dict[str, str]:
    folded = unicodedata.normalize("NFKC", text)
    markets = data.section("markets")
    word_to_market = {w: m for m, ws in markets.items() for w in ws}
    alternation = "|".join(re.escape(w) for w in sorted(word_to_market, key=len, reverse=True))
    if not alternation:
        return {}
    pattern = re.compile(rf"({alternation})(?:市场)?基准(?:指数)?(?:为|是)(.+?)(?=[;；、。,，\n]|(?:{alternation})(?:市场)?基准|$)")
    out = {}
    for match in pattern.finditer(folded):
        name = re.sub(r"(?<=[\u4e00-\u9fff\d])\s+(?=[\u4e00-\u9fff\d])", "", match.group(2).strip())
        out.setdefault(word_to_market[match.group(1)], name)
    return out


def _horizon(text: str) -> tuple[tuple[int, int] | None, str | None]:
    folded = unicodedata.normalize("NFKC", text).replace("～", "~")
    match = re.search(r"(\d+)\s*[-~至到]\s*(\d+)\s*个月", folded)
    if not match:
        return None, None
    return (int(match.group(1)), int(match.group(2))), match.group(0)



def _rating_from(text: str, labels: list[str], data: LabelData):
    actions = data.section("rating_scheme").get("actions", [])
    if not labels or not actions:
        return None, None, None
    folded = unicodedata.normalize("NFKC", text)
    pattern = "({})\\s*\\(\\s*({})\\s*\\)".format("|".join(map(re.escape, sorted(labels, key=len, reverse=True))),
                                                "|".join(map(re.escape, sorted(actions, key=len, reverse=True))))
    match = re.search(pattern, folded)
    if not match:
        return None, None, None
    printed = text[match.start():match.end()] if len(text) == len(folded) else match.group(0)
    return match.group(1), match.group(2), printed


