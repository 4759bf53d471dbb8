"""The published rating, its action (首次/维持/上调/下调) and the broker's rating scheme as the note
prints it (评级说明: labels, bands, benchmark index, horizon).

The rating is read where notes print it: a short line of its own near the top (`买入（维持）`,
`投资评级：增持 (首次)`, `买入 |首次覆盖`, `增持-A(首次)`), a previous rating beside it (`原评级：买入`,
from which the action follows), or a sentence of the text (`维持公司“买入”评级`). The scheme is
read from a table (one row per band, bands grouped by a type column, or a column per type) or
from text lines under the rating-definitions heading; only the stock ratings count, never the
industry's. Every word involved (rating labels, actions, stronger/weaker, group names, index
names) is label data.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

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
    benchmarks: dict[str, str]     # market code -> index name (canonical, from the label data)
    horizon: tuple[int, int] | None
    horizon_text: str | None
    basis: str = "excess"
    where: str = ""

    @property
    def complete(self) -> bool:
        """Three or more bands, best first, each starting where the next one ends: a scheme a
        rating can be computed with."""
        if len(self.bands) < 3 or self.bands[0].upper is not None or self.bands[-1].lower is not None:
            return False
        return all(a.lower is not None and a.lower == b.upper for a, b in zip(self.bands, self.bands[1:]))


@dataclass
class Rating:
    label: str | None = None        # the band label (a risk suffix such as -A removed)
    printed: str | None = None      # as printed
    action: str | None = None       # 首次 / 维持 / 上调 / 下调
    previous: str | None = None
    where: str = ""
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Bands

_NUMBER = r"([+-]?\d+(?:\.\d+)?)"


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).replace("～", "~").replace("\\~", "~").replace("\\", "")
    return "".join("-" if c in _MINUS_SIGNS else c for c in folded)


def parse_band(label: str, text: str, data: LabelData) -> RatingBand | None:
    """The return range a band's description gives, in percent."""
    words = data.section("rating_scheme")
    folded = _fold(text)[:300]
    plain = folded
    for word in words.get("neutral", []):
        plain = plain.replace(word, "")
    weaker = any(w in plain for w in words.get("weaker", []))
    plus_minus = re.search(r"±\s*" + _NUMBER + r"\s*%", folded)
    if plus_minus:
        bound = abs(float(plus_minus.group(1)))
        return RatingBand(label, -bound, bound, None, None, text)
    span = re.search(_NUMBER + r"\s*%?\s*(?:至|~|到|与|和|—|-{1,2})\s*" + _NUMBER + r"\s*%", folded)
    if span:
        a, b = float(span.group(1)), float(span.group(2))
        if weaker:
            a, b = -abs(a), -abs(b)
        lo, hi = sorted((a, b))
        return RatingBand(label, lo, hi, None, None, text)
    one = re.search(r"(大于|小于|高于|低于|超过|>=?|<=?|≥|≤)?\s*" + _NUMBER + r"\s*%\s*(及?以上|及?以下)?", folded)
    if not one:
        return None
    op, value, word = one.group(1), float(one.group(2)), one.group(3) or ""
    before = folded[:one.start()]
    if op is None:
        op = next((w for w in ("大于", "小于", "高于", "低于", "超过") if before.rstrip().endswith(w)), None)
    if "以上" in word or op in (">", ">=", "≥", "大于", "高于", "超过"):
        above = True
    elif "以下" in word or op in ("<", "<=", "≤", "小于", "低于"):
        above = False
    else:
        return None
    inclusive = bool(word) or op in ("≥", "≤", ">=", "<=")
    if weaker:
        # "跌幅大于 15%", "落后 15% 以上", "弱于基准 5% 以下": beyond the bound, on the losing side
        return RatingBand(label, None, -abs(value), None, inclusive, text,
                          "以下 after a word for 'weaker' read as beyond the bound, the reading that leaves no gap"
                          if not above and value > 0 else "")
    if above:
        return RatingBand(label, value, None, inclusive, None, text)
    return RatingBand(label, None, value, None, inclusive, text)


# --------------------------------------------------------------------------------------------
# The scheme

def _label_pattern(data: LabelData) -> str:
    labels = sorted(data.section("rating_scheme").get("labels", []), key=len, reverse=True)
    spaced = ["\\s*".join(map(re.escape, label)) for label in labels]
    return "(" + "|".join(spaced) + ")"


def _items(text: str, data: LabelData) -> list[tuple[str, str]]:
    """(label, description) of each `LABEL：description` in a text, in order."""
    folded = _fold(text)[:2000]
    pattern = _label_pattern(data)
    starts = [m for m in re.finditer(pattern + r"\s*(?:[(（][A-Za-z ]{1,20}[)）])?\s*(?:[:：—|]|-{1,2}|\s-\s)", folded)]
    out = []
    for k, match in enumerate(starts):
        end = starts[k + 1].start() if k + 1 < len(starts) else len(folded)
        out.append((re.sub(r"\s+", "", match.group(1)), folded[match.end():end].strip(" ；;。|")))
    return out


def _group(text: str, data: LabelData) -> str | None:
    words = data.section("rating_scheme")
    folded = re.sub(r"\s+", "", _fold(text))
    if any(w in folded for w in words.get("other_groups", [])):
        return "other"
    if any(w in folded for w in words.get("stock_groups", [])):
        return "stock"
    return None


def _is_label(cell: str, data: LabelData) -> bool:
    """A cell that is a band label alone (`买入`, `买入（Buy）`)."""
    return bool(re.fullmatch(_label_pattern(data) + r"\s*(?:[(（][^)）]{0,20}[)）])?", _fold(cell).strip()))


def _from_table(table: Table, data: LabelData) -> tuple[list[tuple[str, str]], str]:
    """Band items of a table: by a column whose header names the stock ratings, by rows whose
    type cell does, or by every row (label cell, description cell)."""
    rows: list[tuple[str, str]] = []
    grid = [table.header] + [[r.label] + r.texts for r in table.rows] if table.header else \
        [[r.label] + r.texts for r in table.rows]
    grid = [row for row in grid if any(c.strip() for c in row)]
    text = "\n".join(" ".join(row) for row in grid)
    header_groups = [_group(c, data) for c in grid[0]] if grid else []
    if "stock" in header_groups and header_groups.count("stock") == 1:
        column = header_groups.index("stock")
        for row in grid[1:]:
            cell = row[column] if column < len(row) else ""
            if _items(cell, data):
                rows.extend(_items(cell, data))
            elif column > 0 and row[0].strip():
                rows.append((re.sub(r"\s+", "", _PARENS.sub("", row[0])), cell))
        return rows, text
    typed = [(row, [_group(c, data) for c in row]) for row in grid]
    if any("stock" in groups for _, groups in typed):
        for row, groups in typed:
            if "stock" not in groups:
                continue
            at = next((i for i, c in enumerate(row) if _is_label(c, data)), None)
            if at is not None and at + 1 < len(row):
                rows.append((re.sub(r"\s+", "", _PARENS.sub("", row[at])), row[at + 1]))
            else:
                rows.extend(item for c, g in zip(row, groups) if g is None for item in _items(c, data))
        return rows, text
    for row in grid:
        if len(row) >= 2 and _is_label(row[0], data):
            rows.append((re.sub(r"\s+", "", _PARENS.sub("", row[0])), row[1]))
        else:
            for cell in row:
                rows.extend(_items(cell, data))
    return rows, text


def scheme_from(tables: list[Table], lines: list[tuple[int, str]], data: LabelData) -> RatingScheme | None:
    """The stock rating scheme the note prints, or None."""
    words = data.section("rating_scheme")
    items: list[tuple[str, str]] = []
    texts: list[str] = []
    title, where = "", ""
    for table in tables:
        if table.kind == "rating_scheme" or (not table.years and sum(len(_items(" | ".join([r.label] + r.texts), data)) > 0
                                                                     for r in table.rows) >= 3):
            found, text = _from_table(table, data)
            if len(found) >= 2:
                items, title, where = found, table.title, f"table at line {table.line}"
                texts.append(text)
                break
    started = False
    group = None
    line_items: list[tuple[str, str]] = []
    section_start = None
    for number, line in lines:
        text = _fold(line).strip().lstrip("#").strip()
        if not text:
            continue
        heads = words.get("section_words", [])
        if not started and len(text) <= 30 and any(w in text for w in heads):
            started, section_start = True, number
            title = title or text
        if not started:
            continue
        texts.append(text)
        g = _group(text, data) if len(text) <= 40 or re.match(r"^[\d、.()（）\s]*[\u4e00-\u9fff]{2,8}[:：]", text) else None
        found = _items(text, data)
        if g and not (found and _group(found[0][1], data) is None and len(text) > 40):
            group = g
            if not found:
                continue
        if group == "other":
            continue
        if found and re.match(r"^\s*" + _label_pattern(data), text):
            line_items.extend(found)
    if not items and len(line_items) >= 2:
        items, where = line_items, f"text from line {section_start}"
    if not items:
        return None
    bands, unrated, seen = [], None, set()
    for label, description in items:
        if label in seen:
            continue
        seen.add(label)
        if label in words.get("unrated", []) or not re.search(r"\d\s*%", _fold(description)):
            if label in words.get("unrated", []) or any(w in description for w in words.get("unrated_words", [])):
                unrated = unrated or label
            continue
        band = parse_band(label, description, data)
        if band:
            bands.append(band)
    bands.sort(key=lambda b: -(b.lower if b.lower is not None else -1e9))
    joined = "\n".join(texts)
    horizon, horizon_text = _horizon(joined)
    return RatingScheme(title, bands, unrated, benchmarks_in(joined, data), horizon, horizon_text, where=where)


def benchmarks_in(text: str, data: LabelData) -> dict[str, str]:
    """Market -> the benchmark index a scheme's text names for it: as printed after the market's
    word (`A 股市场基准为沪深 300 指数`, `A股市场以沪深300指数为基准`, spaces between Chinese and
    digits removed), else the first known index of that market the text names (label data)."""
    folded = re.sub(r"[(（][^)）]{0,20}[)）]", "", _fold(text))
    squeezed = re.sub(r"(?<=[\u4e00-\u9fff\d])\s+(?=[\u4e00-\u9fff\d])", "", folded)
    out: dict[str, str] = {}
    markets = data.section("markets")
    words = sorted(((w, m) for m, ws in markets.items() for w in ws), key=lambda wm: -len(wm[0]))
    index_words = [re.sub(r"\s+", "", v) for indexes in data.section("benchmark_indexes").values()
                   for canonical, variants in indexes.items() for v in [canonical] + list(variants)]
    for word, market in words:
        for match in re.finditer(re.escape(word), squeezed):
            tail = re.split(r"[;；。，,、\n]", squeezed[match.end():match.end() + 60], maxsplit=1)[0]
            for other, _ in words:
                cut = tail.find(other, 1)
                if cut > 0:
                    tail = tail[:cut]
            phrase = re.sub(r"^(?:市场)?(?:基准(?:指数)?(?:为|是)|以)", "", tail.strip())
            phrase = re.sub(r"为基准$", "", phrase).strip(" ：:")
            if phrase != tail.strip() and any(w in re.sub(r"\s+", "", phrase) for w in index_words):
                out.setdefault(market, re.sub(r"\s+", "", phrase))
                break
    plain = re.sub(r"\s+", "", folded)
    found: list[tuple[int, str, str]] = []
    for market, indexes in data.section("benchmark_indexes").items():
        for canonical, variants in indexes.items():
            for variant in [canonical] + list(variants):
                at = plain.find(re.sub(r"\s+", "", variant))
                if at >= 0:
                    found.append((at, market, canonical))
    for at, market, canonical in sorted(found):
        out.setdefault(market, canonical)
    return out


def _horizon(text: str) -> tuple[tuple[int, int] | None, str | None]:
    folded = _fold(text)
    match = re.search(r"(\d{1,2})\s*(?:-{1,2}|~|至|到)\s*(\d{1,2})\s*个月", folded)
    if match:
        return (int(match.group(1)), int(match.group(2))), match.group(0)
    match = re.search(r"(\d{1,2})\s*个月", folded)
    if match:
        return (int(match.group(1)), int(match.group(1))), match.group(0)
    return None, None


# --------------------------------------------------------------------------------------------
# The rating

def rating_from(lines: list[tuple[int, str]], skip: set[int], labels: list[str], data: LabelData) -> Rating:
    """The published rating and its action, from the note's own lines (not the rating
    definitions or the disclaimers)."""
    words = data.section("rating_scheme")
    actions = words.get("actions", {})
    known = sorted(set(labels) | set(words.get("labels", [])), key=len, reverse=True)
    if not known:
        return Rating()
    label_re = "(" + "|".join(re.escape(l) for l in known) + ")"
    action_re = "(" + "|".join(re.escape(a) for a in sorted(actions, key=len, reverse=True)) + ")"
    risk = r"(?:\s*-\s*[A-Z])?"
    prefix = r"(?:(?:投资|公司|股票)?评级\s*[:：]?\s*)?"
    heading = re.compile(prefix + label_re + risk + r"\s*(?:[(（|｜]\s*" + action_re + r"\s*[)）]?)?")
    previous_re = re.compile(r"(?:原评级|上次评级|前次评级|原有评级)\s*[:：]?\s*" + label_re)
    found = Rating()
    for number, line in lines:
        if number in skip:
            continue
        text = _fold(line).strip().lstrip("#").strip().replace("**", "")
        if not text or len(text) > 30:
            continue
        match = heading.fullmatch(text)
        if match and found.label is None:
            original = line.strip().lstrip("#").strip().replace("**", "")
            found.label = match.group(1)
            found.printed = original[match.start(1):match.end()] if len(original) == len(text) else text[match.start(1):]
            found.action = actions.get(match.group(2)) if match.group(2) else None
            found.where = f"line {number}"
            continue
        prev = previous_re.fullmatch(text)
        if prev:
            found.previous = prev.group(1)
    prose = re.compile(action_re + r"[^“\"「”\n]{0,12}[“\"「]" + label_re + risk + r"[”\"」]\s*(?:投资)?评级")
    for number, line in lines:
        if number in skip:
            continue
        for match in prose.finditer(_fold(line)):
            label, action = match.group(2), actions.get(match.group(1))
            if found.label is None:
                found.label, found.printed, found.action = label, match.group(0), action
                found.where = f"the text, line {number}"
            elif label != found.label:
                found.notes.append(f"the text, line {number}, says {match.group(0)!r}; the rating printed at "
                                   f"{found.where} ({found.printed}) is taken")
            elif found.action is None and action:
                found.action = action
    return found
