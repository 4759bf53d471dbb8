"""Facts and market data: the company, its ticker and market, the note's date, and the price,
share count and market capitalisation wherever the note prints them."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .labels import LabelData
from .numbers import PrintedNumber, parse_number, parse_range
from .tables import Table, _market_role, _unit_in

@dataclass(frozen=True)
class MarketFigure:
    label: str
    value: PrintedNumber
    unit: str | None


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
    other: dict = field(default_factory=dict)



# --------------------------------------------------------------------------------------------
# Market data, rating, scheme, identity

def _market_from(note_tables: list[Table], text_lines: list[str], data: LabelData) -> MarketData:
    market = MarketData()
    pairs: list[tuple[str, str]] = []
    for table in note_tables:
        if table.kind == "market":
            pairs.extend((r.label, r.texts[0] if r.texts else "") for r in table.rows)
    for line in text_lines:
        match = re.match(r"^\s*([^\t:：]{2,16}?)\s*[:：]\s*([-\d.,\s]+)\s*(\S*)\s*$", line)
        if match and _market_role(match.group(1), data) == "price":
            pairs.append((f"{match.group(1)}({match.group(3)})" if match.group(3) else match.group(1), match.group(2)))
    for label, raw in pairs:
        role = _market_role(label, data)
        unit = _unit_in(label, data)
        if role == "range_52w":
            values = parse_range(raw)
            if values:
                low_first = _low_first(label)
                low, high = values if low_first else values[::-1]
                market.low_52w, market.high_52w = MarketFigure(label, low, unit), MarketFigure(label, high, unit)
            continue
        number = parse_number(raw, unit == "%")
        if number is None:
            continue
        figure = MarketFigure(label, number, unit)
        if role and hasattr(market, role) and getattr(market, role) is None:
            setattr(market, role, figure)
        else:
            market.other[label] = figure
    if market.price and market.price.unit:
        market.currency_printed = market.price.unit
        market.currency = data.currency_of(market.price.unit)
    text = "\n".join(text_lines)
    fx = re.search(r"1\s*([A-Z]{3})\s*=\s*([\d.]+)\s*([A-Z]{3})", text)
    if fx:
        market.fx = (fx.group(1), fx.group(3), parse_number(fx.group(2)))
    date = re.search(r"股价(?:时间|日期)\s*(?:为|:|：)?\s*(\d{4}-\d{1,2}-\d{1,2})", text)
    if date:
        market.price_date = _iso(date.group(1))
    return market


def _low_first(label: str) -> bool:
    folded = unicodedata.normalize("NFKC", label)
    low, high = folded.find("低"), folded.find("高")
    return 0 <= low < high or high < 0


def _iso(text: str) -> str:
    parts = re.findall(r"\d+", text)
    return f"{int(parts[0]):04d}-{int(parts[1]):02d}-{int(parts[2]):02d}"


_TICKER = re.compile(r"([\u4e00-\u9fffA-Za-z][\u4e00-\u9fffA-Za-z&·]*)\s*[（(]\s*(\d{3,6}\.[A-Z]{1,2})\s*[)）]")
_DATE = re.compile(r"((?:19|20)\d{2})\s*(?:年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日|-(\d{1,2})-(\d{1,2}))")


def _identity(text: str, data: LabelData) -> tuple[str | None, str | None, str | None, str | None]:
    company = ticker = market = date = None
    match = _TICKER.search(text)
    if match:
        company, ticker = match.group(1), match.group(2)
        market = data.section("exchanges").get(ticker.rsplit(".", 1)[1])
    match = _DATE.search(text)
    if match:
        y, m, d = match.group(1), match.group(2) or match.group(4), match.group(3) or match.group(5)
        date = f"{int(y):04d}-{int(m):02d}-{int(d):02d}"
    return company, ticker, market, date


