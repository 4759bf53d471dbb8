"""Facts and market data: the company, its ticker and market, the note's own date, and the price,
share count and market capitalisation wherever the note prints them.

Market data come in many printed forms, read here as classes: a label and its figure in a
two-column table or on a text line (`市场价格:人民币 312.40`, `股价(2026-04-30) 17.75 元`), two
labels sharing one cell with two figures (`流通股 (百万) 总市值 (人民币 百万) | 2,324.34 726,123.22`),
a pair of labels over a pair of figures (`总股本/流通股本（亿股）6.78/5.66`, the figures in the label's
own cell), a unit written before or after the figure. Every figure carries its unit: shares and
market capitalisation are given in millions whatever the note printed (亿股, 百万股, 万股; 亿元,
百万元). The note's date is a line of its own; a date in a disclaimer, in a related report's title
or beside a price is not the note's.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from .labels import LabelData, normalise_label
from .numbers import PrintedNumber, parse_number, parse_range
from .tables import Table, market_role, unit_in

MAX_MARKET_LINE = 60      # a text line longer than this is prose, not a market datum
FIGURE_ROLES = ("price", "market_cap", "float_market_cap", "shares", "float_shares", "turnover_3m")


@dataclass(frozen=True)
class MarketFigure:
    label: str                 # the label as printed
    value: PrintedNumber
    unit: str | None           # as printed (亿股, 百万元, 元, …)
    where: str = ""            # where the note prints it


@dataclass
class MarketData:
    price: MarketFigure | None = None
    low_52w: MarketFigure | None = None
    high_52w: MarketFigure | None = None
    market_cap: MarketFigure | None = None
    float_market_cap: MarketFigure | None = None
    shares: MarketFigure | None = None
    float_shares: MarketFigure | None = None
    turnover_3m: MarketFigure | None = None
    currency: str | None = None            # trading currency, ISO code
    currency_printed: str | None = None    # as printed with the price
    fx: tuple[str, str, PrintedNumber] | None = None  # 1 FROM = rate TO, as printed
    price_date: str | None = None
    price_date_where: str = ""
    other: dict = field(default_factory=dict)
    shares_mn: float | None = None         # the share count in millions, its unit applied
    market_cap_mn: float | None = None     # the market capitalisation in millions of the trading currency
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Scales of units

def scale_to_millions(unit: str | None, data: LabelData) -> float | None:
    """The factor that turns a figure printed in `unit` into millions (亿 -> 100, 百万 -> 1,
    万 -> 0.01, a bare 股 or 元 -> 1e-6); None when the unit names no magnitude."""
    if not unit:
        return None
    factor = data.scale_of(unit)
    if factor:
        return factor / 1_000_000
    folded = unicodedata.normalize("NFKC", unit)
    if folded.endswith("股") or data.currency_of(folded):
        return 1e-6
    return None


# --------------------------------------------------------------------------------------------
# Label and figure pairs

@dataclass(frozen=True)
class _Pair:
    label: str
    text: str          # the printed figure(s)
    unit: str | None
    where: str


_TRAILING_FIGURES = re.compile(r"[:：]?\s*([-+]?[\d][\d.,\s]*(?:[/／]\s*[\d][\d.,\s]*)?)$")
_LEADING_UNIT = re.compile(r"^[(（][^)）]{0,12}[)）]\s*")


def _split_label_figures(label: str) -> tuple[str, str]:
    """A label cell that carries its own figures (`总股本/流通股本（亿股）6.78/5.66`)."""
    text = unicodedata.normalize("NFKC", label).strip()[:120]
    match = _TRAILING_FIGURES.search(text)
    if not match or not re.search(r"[\u4e00-\u9fffA-Za-z)]", text[:match.start()]):
        return label, ""
    return text[:match.start()].strip(), match.group(1).strip()


def _variants_in(text: str, data: LabelData) -> list[tuple[int, int, str]]:
    """(start, end, role) of every market label found in the text, longest first, in order."""
    folded = unicodedata.normalize("NFKC", text)
    squeezed_index = [i for i, c in enumerate(folded) if not c.isspace()]
    squeezed = "".join(folded[i] for i in squeezed_index).casefold()
    words = sorted(((normalise_label(w), role) for role, ws in data.section("market").items() for w in ws
                    if isinstance(w, str)),
                   key=lambda wr: -len(wr[0]))
    taken: list[tuple[int, int, str]] = []
    for word, role in words:
        if not word:
            continue
        start = squeezed.find(word)
        while start >= 0:
            end = start + len(word)
            if not any(a < end and start < b for a, b, _ in taken):
                taken.append((squeezed_index[start], squeezed_index[end - 1] + 1, role))
                break
            start = squeezed.find(word, start + 1)
    return sorted(taken)


def _pairs_from_table(table: Table, data: LabelData) -> list[_Pair]:
    out = []
    where = f"table at line {table.line}"
    for row in table.rows:
        label = _LEADING_UNIT.sub("", unicodedata.normalize("NFKC", row.label).strip())
        value = " ".join(t for t in row.texts if t.strip())
        if not value:
            label, value = _split_label_figures(label)
        if label and value:
            out.append(_Pair(label, value, None, where))
    return out


_TEXT_PAIR = re.compile(
    r"\s*(?P<label>[^:：|]{2,24}?(?:[(（][^)）]{0,16}[)）])?)\s*[:：]?\s*(?P<pre>[^\d\s:：+-]{0,4})\s*"
    r"(?P<value>[-+]?\d[\d.,]*(?:\s*[/／~-]\s*\d[\d.,]*)?)\s*(?P<post>[^\d\s]{0,4})\s*")


def _pairs_from_lines(lines: list[str], data: LabelData) -> list[_Pair]:
    out = []
    for number, line in lines:
        text = unicodedata.normalize("NFKC", line).strip().lstrip("#").strip()
        if not text or len(text) > MAX_MARKET_LINE:
            continue
        match = _TEXT_PAIR.fullmatch(text)
        if not match or not _variants_in(match.group("label"), data):
            continue
        unit = match.group("post") or match.group("pre") or None
        out.append(_Pair(match.group("label").strip(), match.group("value"), unit, f"text line {number}"))
    return out


def _figures(text: str) -> list[str]:
    """The figures of a printed value: one, a range (`97.59/49.62`), or several apart."""
    text = unicodedata.normalize("NFKC", text).strip().lstrip(":：").strip()
    if parse_number(text) is not None or parse_range(text) is not None:
        return [text]
    parts = text.split()
    if len(parts) > 1 and all(parse_number(p) is not None or parse_range(p) is not None for p in parts):
        return parts
    return [text]


_FLOAT_OF = {"shares": "float_shares", "market_cap": "float_market_cap"}


def _expand(pair: _Pair, data: LabelData) -> list[tuple[str, str, str, str | None, str]]:
    """(role, label, figure text, unit, where) for each datum a pair prints."""
    label = pair.label
    whole = market_role(label, data)
    figures = _figures(pair.text)
    unit = unit_in(label, data) or pair.unit
    if whole:
        return [(whole, label, figures[0], unit, pair.where)]
    found = _variants_in(label, data)
    if len(found) >= 2 and len(figures) == len(found):
        out = []
        for k, (start, end, role) in enumerate(found):
            stop = found[k + 1][0] if k + 1 < len(found) else len(label)
            part = label[start:stop]
            out.append((role, part.strip(), figures[k], unit_in(part, data) or unit, pair.where))
        return out
    # A pair of labels over a pair of figures: 总股本/流通股本（亿股） 6.78/5.66.
    parts = re.split(r"[/／]", re.sub(r"[(（][^)）]*[)）]", "", unicodedata.normalize("NFKC", label)))
    values = re.split(r"\s*[/／]\s*", unicodedata.normalize("NFKC", figures[0]).lstrip(":：").strip())
    if len(parts) == 2 and len(values) == 2:
        roles = [market_role(p, data) for p in parts]
        floats = set(data.section("market_floats").get("words", []))
        if roles[0] in _FLOAT_OF and not roles[1] and parts[1].strip() in floats:
            roles[1] = _FLOAT_OF[roles[0]]
        if roles[1] in _FLOAT_OF and not roles[0] and parts[0].strip() in floats:
            roles[0] = _FLOAT_OF[roles[1]]
        if all(roles):
            return [(r, p.strip(), v, unit, pair.where) for r, p, v in zip(roles, parts, values)]
    if len(found) == 1:
        return [(found[0][2], label, figures[0], unit, pair.where)]
    return []


def _low_first(label: str) -> bool | None:
    """Whether a range label names the low first (最低/最高); None when it names neither."""
    folded = unicodedata.normalize("NFKC", label)
    low, high = folded.find("低"), folded.find("高")
    if low < 0 and high < 0:
        return None
    return 0 <= low < high or high < 0


def market_from(tables: list[Table], lines: list[tuple[int, str]], data: LabelData) -> MarketData:
    """The market data the note prints, from its tables without years and its short text lines."""
    market = MarketData()
    pairs: list[_Pair] = []
    for table in tables:
        if not table.years and table.kind not in ("rating_scheme",):
            pairs.extend(_pairs_from_table(table, data))
    pairs.extend(_pairs_from_lines(lines, data))
    for pair in pairs:
        for role, label, text, unit, where in _expand(pair, data):
            if role == "range_52w":
                values = parse_range(text)
                if values and getattr(market, "low_52w") is None:
                    order = _low_first(label)
                    if order is None:
                        low, high = sorted(values, key=lambda v: v.value)
                    else:
                        low, high = values if order else values[::-1]
                    market.low_52w = MarketFigure(label, low, unit, where)
                    market.high_52w = MarketFigure(label, high, unit, where)
                continue
            number = parse_number(text.lstrip(":：").strip(), unit == "%")
            if number is None:
                continue
            figure = MarketFigure(label, number, unit, where)
            if role in FIGURE_ROLES and getattr(market, role) is None:
                setattr(market, role, figure)
            else:
                market.other.setdefault(label, figure)
    if market.price:
        printed = market.price.unit
        market.currency_printed = printed
        market.currency = data.currency_of(printed or "") if printed else None
    _scale(market, data)
    joined = "\n".join(line for _, line in lines)
    fx = re.search(r"1\s*([A-Z]{3})\s*=\s*(\d{1,6}(?:\.\d{1,8})?)\s*([A-Z]{3})", joined)
    if fx:
        rate = parse_number(fx.group(2))
        if rate is not None and rate.value > 0:
            market.fx = (fx.group(1), fx.group(3), rate)
    return market


def _scale(market: MarketData, data: LabelData) -> None:
    """Shares and market cap in millions, from the units printed; where the share count prints no
    unit, the one that makes price x shares the printed market cap."""
    cap = market.market_cap
    shares = market.shares
    cap_scale = scale_to_millions(cap.unit, data) if cap else None
    share_scale = scale_to_millions(shares.unit, data) if shares else None
    if cap and cap_scale:
        market.market_cap_mn = round(cap.value.value * cap_scale, 6)
    if shares and share_scale:
        market.shares_mn = round(shares.value.value * share_scale, 6)
    price = market.price.value.value if market.price else None
    if shares and share_scale is None and price and market.market_cap_mn:
        for factor in (100.0, 1.0, 0.01):
            if abs(shares.value.value * factor * price / market.market_cap_mn - 1) < 0.02:
                market.shares_mn = shares.value.value * factor
                market.notes.append(f"the share count prints no unit; {shares.value.shown()} is read in "
                                    f"{'亿股' if factor == 100 else '百万股' if factor == 1 else '万股'}, "
                                    "the unit that makes price x shares the printed market cap")
                break
    if cap and cap_scale is None and price and market.shares_mn:
        for factor in (100.0, 1.0, 0.01):
            if abs(cap.value.value * factor / (price * market.shares_mn) - 1) < 0.02:
                market.market_cap_mn = cap.value.value * factor
                break


# --------------------------------------------------------------------------------------------
# Identity: company, ticker, market, date

_TEMPLATE_TAG = re.compile(r"\[Table\\?_[A-Za-z]{0,30}\]?")
_TICKER = re.compile(r"([\u4e00-\u9fff][\u4e00-\u9fffA-Za-z0-9&·-]{0,15}?)\s*[（(]\s*(\d{4,6})(?:\.([A-Za-z]{1,2}))?\s*[)）]")
_LONE_TICKER = re.compile(r"(\d{4,6})\.([A-Za-z]{1,2})")
_DATE = re.compile(r"((?:19|20)\d{2})\s*(?:年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?|[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{1,2}))")


@dataclass
class Identity:
    company: str | None = None
    ticker: str | None = None
    exchange_market: str | None = None
    date: str | None = None
    where: dict = field(default_factory=dict)     # fact -> where the note prints it


def exchange_of(code: str, data: LabelData) -> str | None:
    """The exchange suffix a code without one belongs to, from its range (label data)."""
    for suffix, rule in data.section("exchange_codes").items():
        lengths = rule.get("lengths", [6])
        if len(code) in lengths and any(code.startswith(p) for p in rule.get("prefixes", [""])):
            return suffix
    return None


def citation_lines(lines: list[tuple[int, str]], data: LabelData) -> set[int]:
    """Lines that cite another report (a related report's title and its date) or sit in a
    disclaimer, an analyst's statement or the rating definitions: no fact of the note is there."""
    words = data.section("note_sections")
    related = words.get("related", [])
    closing = words.get("closing", [])
    out = set()
    in_related = in_closing = False
    previous_cited = False
    for number, line in lines:
        text = line.strip()
        if not text:
            continue
        is_heading = text.startswith("#") or (len(text) <= 20 and not re.search(r"\d", text))
        if is_heading:
            in_related = any(w in text for w in related)
            if any(w in text for w in closing):
                in_closing = True
        cited = text.startswith(("《", "<<", "<")) or "》" in text[:80] or ">>" in text[:120]
        lone_date = bool(_DATE.fullmatch(text.strip("（）()- ")))
        if in_related or in_closing or cited or (previous_cited and lone_date):
            out.add(number)
        previous_cited = cited
    return out


def identity_from(lines: list[tuple[int, str]], data: LabelData) -> Identity:
    """The company, its ticker (with the exchange suffix inferred from the code's range when the
    note prints none), the market and the note's own date."""
    found = Identity()
    skip = citation_lines(lines, data)
    own = [(n, _TEMPLATE_TAG.sub("", unicodedata.normalize("NFKC", l))) for n, l in lines if n not in skip]
    cited = [(n, _TEMPLATE_TAG.sub("", unicodedata.normalize("NFKC", l))) for n, l in lines if n in skip]
    body = "\n".join(l for _, l in own)
    names = Counter()
    for n, line in own + cited:
        for match in _TICKER.finditer(line):
            names[match.group(1)] += 0      # seen
    for pool, where in ((own, "the note's text"), (cited, "a related report's title")):
        for n, line in pool:
            match = _TICKER.search(line)
            if not match:
                continue
            name, code, suffix = match.group(1), match.group(2), match.group(3)
            name = _strip_lead(name)
            if where != "the note's text" and body.count(name) < 2:
                continue   # a related report about another company
            suffix = suffix.upper() if suffix else exchange_of(code, data)
            found.company = name
            found.ticker = f"{code}.{suffix}" if suffix else code
            found.where["company"] = found.where["ticker"] = f"{where}, line {n}"
            if not match.group(3) and suffix:
                found.where["ticker"] += f" (no exchange suffix printed: {suffix} from the code's range)"
            break
        if found.ticker:
            break
    if not found.ticker:
        for n, line in own:
            match = _LONE_TICKER.fullmatch(line.strip().lstrip("#").strip())
            if match:
                found.ticker = f"{match.group(1)}.{match.group(2).upper()}"
                found.where["ticker"] = f"a line of its own, line {n}"
                found.company = _most_named_heading(own, body)
                if found.company:
                    found.where["company"] = "the heading the text names most"
                break
    if found.ticker and "." in found.ticker:
        found.exchange_market = data.section("exchanges").get(found.ticker.rsplit(".", 1)[1])
    for n, line in own:
        text = line.strip().lstrip("#").strip()
        match = _DATE.fullmatch(text)
        if match:
            found.date = _iso(match)
            found.where["date"] = f"a line of its own, line {n}"
            break
    return found


def _strip_lead(name: str) -> str:
    """A name without the words a heading puts before it (——, 公司点评-)."""
    return re.sub(r"^[-—\s]+", "", name).split("-")[-1].strip()


def _most_named_heading(lines: list[tuple[int, str]], body: str) -> str | None:
    best, count = None, 0
    for _, line in lines:
        text = line.strip()
        if not text.startswith("#"):
            continue
        name = text.lstrip("#").strip()
        if 2 <= len(name) <= 8 and re.fullmatch(r"[\u4e00-\u9fffA-Za-z]+", name):
            seen = body.count(name)
            if seen > count:
                best, count = name, seen
    return best if count >= 3 else None


def _iso(match: re.Match) -> str | None:
    y = int(match.group(1))
    m = int(match.group(2) or match.group(4))
    d = int(match.group(3) or match.group(5))
    if not (1 <= m <= 12 and 1 <= d <= 31):
        return None
    return f"{y:04d}-{m:02d}-{d:02d}"


def price_date_from(lines: list[tuple[int, str]], tables: list[Table], market: MarketData) -> tuple[str | None, str]:
    """The date the price is quoted at: printed beside it (`股价(2026-04-30)`, `股价时间为 …`) or
    in the title of the market-data table."""
    if market.price:
        match = _DATE.search(unicodedata.normalize("NFKC", market.price.label))
        if match and _iso(match):
            return _iso(match), f"beside the price ({market.price.where})"
    for n, line in lines:
        text = unicodedata.normalize("NFKC", line)
        match = re.search(r"股价(?:时间|日期)\s*(?:为|:|：)?\s*", text)
        if match:
            date = _DATE.match(text, match.end())
            if date and _iso(date):
                return _iso(date), f"text line {n}"
    for table in tables:
        if table.kind == "market" or (market.price and market.price.where == f"table at line {table.line}"):
            match = _DATE.search(unicodedata.normalize("NFKC", table.title))
            if match and _iso(match):
                return _iso(match), f"the title of the market-data table at line {table.line}"
    return None, ""
