"""The label data (`workbook/data/label_roles.toml`): every word a note uses for a table kind, a
line, a currency, a unit or a market, and the normalised form labels are matched in."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..tomlfile import read_toml

LABEL_ROLES = Path(__file__).resolve().parents[1] / "data" / "label_roles.toml"

STATEMENTS = ("income", "balance", "cashflow")
YEAR_KINDS = STATEMENTS + ("summary", "ratios")
# Which role sections a table kind's labels are looked up in, in order.
ROLE_SECTIONS = {"summary": ("summary", "income", "ratios"), "income": ("income",), "balance": ("balance",),
                 "cashflow": ("cashflow",), "ratios": ("ratios",), "market": ("market",)}


# --------------------------------------------------------------------------------------------
# The label data

@dataclass(frozen=True)
class LabelData:
    raw: dict

    def section(self, name: str) -> dict:
        return self.raw.get(name, {})

    @property
    def variants(self) -> dict[str, dict[str, tuple[str, str]]]:
        """section -> normalised variant -> (role, variant as written)."""
        return _variants(self)

    def known(self, label: str) -> bool:
        key = normalise_label(label)
        return any(key in table for table in self.variants.values())

    def currency_of(self, text: str) -> str | None:
        words = sorted(self.section("currencies"), key=len, reverse=True)
        return next((self.section("currencies")[w] for w in words if w in text), None)

    def scale_of(self, text: str) -> int | None:
        words = sorted(self.section("scales"), key=len, reverse=True)
        return next((self.section("scales")[w] for w in words if w in text), None)


@lru_cache(maxsize=8)
def _variants(data: LabelData) -> dict:
    out = {}
    sections = {s for kinds in ROLE_SECTIONS.values() for s in kinds} | {"relative"}
    for name, roles in data.raw.items():
        if name not in sections or not isinstance(roles, dict):
            continue
        table = out.setdefault(name, {})
        for role, words in roles.items():
            for word in words:
                if isinstance(word, str):
                    table.setdefault(normalise_label(word), (role, word))
    return out


class _Frozen(dict):
    def __hash__(self):  # the label data is read once and never changed
        return id(self)


def load_label_data(path: str | Path = LABEL_ROLES) -> LabelData:
    return LabelData(_Frozen(read_toml(path)))


@lru_cache(maxsize=1)
def default_label_data() -> LabelData:
    return load_label_data()


_TRAILING_PARENS = re.compile(r"\s*\([^()]*\)\s*$")


def normalise_label(label: str) -> str:
    """The form labels are matched in: full-width folded, no spaces, no trailing colon or
    parenthesised unit or mark, case ignored."""
    text = unicodedata.normalize("NFKC", label)
    text = re.sub(r"\s+", "", text).rstrip(":")
    while True:
        stripped = _TRAILING_PARENS.sub("", text).rstrip(":")
        if stripped == text or not stripped:
            break
        text = stripped
    return text.casefold()

