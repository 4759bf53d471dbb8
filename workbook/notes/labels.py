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
# A statement table may carry ratio and per-share rows (毛利率 in the income statement, 每股收益 under
# the cash flow): they are looked up in the ratio table's section after the statement's own.
ROLE_SECTIONS = {"summary": ("summary", "income", "ratios"), "income": ("income", "ratios"), "balance": ("balance", "ratios"),
                 "cashflow": ("cashflow", "ratios"), "ratios": ("ratios",), "market": ("market",)}


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
        return any(key in table for table in self.variants.values()) or any(
            pattern.fullmatch(key) for patterns in _families(self).values() for pattern, _, _ in patterns)

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
                if isinstance(word, str) and not word.startswith(FAMILY):
                    table.setdefault(normalise_label(word), (role, word))
    return out


FAMILY = "re:"          # a variant written as a pattern: a family of labels (经营性/经营活动…现金流量净额)
MAX_LABEL = 80          # characters of a label that matter for matching


@lru_cache(maxsize=8)
def _families(data: LabelData) -> dict:
    """section -> [(compiled pattern, role, pattern as written)] of the label families."""
    out: dict = {}
    for name, roles in data.raw.items():
        if not isinstance(roles, dict):
            continue
        for role, words in roles.items():
            if not isinstance(words, list):
                continue
            for word in words:
                if isinstance(word, str) and word.startswith(FAMILY):
                    out.setdefault(name, []).append((re.compile(word[len(FAMILY):]), role, word))
    return out


@lru_cache(maxsize=4)
def _numbering(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def match_label(data: LabelData, section: str, label: str) -> tuple[str, str, str] | None:
    """(role, variant, how) for a printed label in a section of the label data: exact or after
    normalisation; after its numbering (一、, (二)) and bookkeeping words (加:, 减:, 其中:, 合计,
    总计) are dropped; by a
    family pattern; or as the truncated start of one role's variants (营业税金及 for 营业税金及附加,
    a converter's cut)."""
    key = normalise_label(label)
    table = data.variants.get(section, {})
    hit = table.get(key)
    if hit:
        return hit[0], hit[1], "exact" if hit[1] == label else "normalised"
    forms = data.section("label_forms")
    bare = key
    if forms.get("numbering"):
        bare = _numbering(forms["numbering"]).sub("", bare, count=1) or bare
    for prefix in forms.get("drop_prefixes", []):
        if bare.startswith(prefix) and len(bare) > len(prefix):
            bare = bare[len(prefix):]
    for suffix in forms.get("drop_suffixes", []):
        if bare.endswith(suffix) and len(bare) > len(suffix) + 1:
            bare = bare[: -len(suffix)]
            break
    if bare != key and bare in table:
        role, variant = table[bare]
        return role, variant, "normalised"
    for pattern, role, written in _families(data).get(section, []):
        if pattern.fullmatch(key) or pattern.fullmatch(bare):
            return role, written, "family"
    if len(key) >= 4:
        roles = {role for word, (role, _) in table.items() if word.startswith(key) and len(word) > len(key)}
        if len(roles) == 1:
            role = roles.pop()
            variant = next(v for w, (r, v) in table.items() if r == role and w.startswith(key))
            return role, variant, "truncated"
    return None


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
    parenthesised unit or mark (nor an unclosed one: `(%`), case ignored."""
    text = unicodedata.normalize("NFKC", label[:MAX_LABEL]).replace("&amp;", "&")
    text = re.sub(r"\s+", "", text).rstrip(":")
    text = re.sub(r"\([^()]{0,12}$", "", text)
    while True:
        stripped = _TRAILING_PARENS.sub("", text).rstrip(":").rstrip("%")
        if stripped == text or not stripped:
            break
        text = stripped
    return text.casefold()

