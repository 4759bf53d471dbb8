"""Currencies as data (workbook/data/currencies.toml): the names analysts' files use for them and
the sane range of each FX pair.

One judgement of an FX rate for every door it comes through: a company file, a quote, a refresh
and an import all ask `fx_range_problem`, so a rate refused at one door is refused at all.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .tomlfile import read_toml

CURRENCIES_FILE = Path(__file__).parent / "data" / "currencies.toml"


@lru_cache(maxsize=1)
def _data() -> dict:
    return read_toml(CURRENCIES_FILE)


def aliases() -> dict[str, str]:
    """Names quote files use for a currency (港币, RMB, US$) mapped to its code."""
    return dict(_data().get("aliases", {}))


def normalise_currency(text) -> str:
    """A currency's code from any name the data's aliases give; other text upper-cased."""
    code = str(text or "").strip()
    known = aliases()
    return known.get(code, known.get(code.upper(), code.upper()))


@lru_cache(maxsize=1)
def sane_ranges() -> dict[tuple[str, str], tuple[float, float]]:
    return {tuple(pair.split("/")): (float(lo), float(hi)) for pair, (lo, hi) in _data().get("fx_sane_ranges", {}).items()}


def sane_fx_range(base: str, quote_ccy: str) -> tuple[float, float] | None:
    """The sane range of "quote_ccy per one base", or None for a pair the table does not know."""
    if base == quote_ccy:
        return (1.0, 1.0)
    ranges = sane_ranges()
    if (base, quote_ccy) in ranges:
        return ranges[(base, quote_ccy)]
    if (quote_ccy, base) in ranges:
        low, high = ranges[(quote_ccy, base)]
        return (1 / high, 1 / low)
    return None


def fx_range_problem(rate: float, base: str | None, quote_ccy: str | None) -> str | None:
    """Why `rate` (units of `quote_ccy` per one `base`) cannot be that pair's rate, or None when it
    can (or the pair is not in the table). A rate whose inverse is in range is said to look
    inverted: the usual mistake."""
    if not base or not quote_ccy:
        return None
    base, quote_ccy = normalise_currency(base), normalise_currency(quote_ccy)
    sane = sane_fx_range(base, quote_ccy)
    if sane is None:
        return None
    name = f"{base}→{quote_ccy}"
    if sane == (1.0, 1.0):
        return None if abs(rate - 1) <= 1e-12 else f"FX {rate:g} for {name} must be exactly 1 (same currency)"
    if sane[0] <= rate <= sane[1]:
        return None
    inverse = rate > 0 and sane[0] <= 1 / rate <= sane[1]
    why = f"1/{rate:g} = {1 / rate:.4g} is in range, so it looks inverted" if inverse else "check the rate"
    return (f"FX {rate:g} is outside the sane range {sane[0]:g}–{sane[1]:g} for {name} ({quote_ccy} per 1 {base}); "
            f"{why}")
