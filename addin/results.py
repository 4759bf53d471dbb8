"""业绩 vs 预测: on results day, the year that became reported against the forecast the model made
for it (revenue, the profit lines and EPS): forecast, actual, difference, difference in percent
of the forecast, and beat, in line or miss by each line's band.

The bands and the verdicts' words are data (addin/results_day.toml). `roll` writes the table at
the top of its 盈利预测调整 sheet, the actual a link to the rolled model's reported cell and the
band an input the analyst edits there (named RES_band_<line>); `revisions OLD NEW` prints it
when NEW reports the year OLD forecast, with the bands NEW holds.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from workbook import xlsx
from workbook.formats import show
from workbook.layout import defined_name
from workbook.tomlfile import read_toml
from workbook.xlcalc import evaluate

from .estimates import YEARLY, Estimates, published_cells
from .show import pad, width
from .template import blueprint

RESULTS_FILE = Path(__file__).with_name("results_day.toml")
BAND_PREFIX = "RES"          # the band inputs on 盈利预测调整: RES_band_revenue
DEFAULT_BAND = "default"
BEAT, IN_LINE, MISS, NOT_MEANINGFUL = "beat", "in_line", "miss", "not_meaningful"
ROUNDING_PLACES = 10         # a difference of exactly the band is in line, whatever the binary fraction says


@lru_cache(maxsize=1)
def _data() -> dict:
    return read_toml(RESULTS_FILE)


def default_bands() -> dict:
    return {key: float(value) for key, value in _data()["bands"].items()}


def verdict_words() -> dict:
    return dict(_data()["verdicts"])


def band_name(key: str) -> str:
    return defined_name(BAND_PREFIX, f"band_{key}")


def verdict(pct: float | None, band: float) -> str:
    """beat, in line or miss: the difference in percent of the forecast against the band."""
    if pct is None:
        return NOT_MEANINGFUL
    rounded = round(pct, ROUNDING_PLACES)
    return BEAT if rounded > band else MISS if rounded < -band else IN_LINE


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ResultRow:
    key: str                  # the estimates' line key (addin/estimates.py YEARLY)
    label: str
    year: str                 # the year as now reported ("2025")
    forecast: float | None    # what the old model forecast for it
    actual: float | None      # what was reported
    band: float               # in line within ± this share of the forecast
    fmt: str = "money"

    @property
    def difference(self) -> float | None:
        return self.actual - self.forecast if _number(self.actual) and _number(self.forecast) else None

    @property
    def pct(self) -> float | None:
        """The difference in percent of the forecast (relative to |forecast|: a smaller loss is a beat)."""
        return self.difference / abs(self.forecast) if self.difference is not None and self.forecast else None

    @property
    def verdict(self) -> str:
        return verdict(self.pct, self.band)


def band_for(key: str, bands: dict) -> float:
    return float(bands.get(key, bands.get(DEFAULT_BAND, default_bands()[DEFAULT_BAND])))


def results_table(old: Estimates, forecast_year: str, actual: dict, reported: str, bands: dict | None = None) -> list[ResultRow]:
    """A row per published line either side has: the old estimates' `forecast_year` against the
    `actual` figures (estimates line key -> value) of the year now reported as `reported`."""
    bands = default_bands() if bands is None else bands
    forecast = old.years.get(forecast_year, {})
    return [ResultRow(key, label, reported, forecast.get(key), actual.get(key), band_for(key, bands), fmt)
            for key, _role, _required, label, fmt in YEARLY if key in forecast or key in actual]


# ------------------------------------------------------------------------------------------------
# Reading a model file
# ------------------------------------------------------------------------------------------------
def reported_cells(package: xlsx.Package, year: str) -> dict:
    """Estimates line key -> the (sheet, cell) of the line's figure in `year` on its statement."""
    years = {(r["sheet"], r["cell"]): r["year"] for r in blueprint(package)}
    return {key: cell for key, cells in published_cells(package).items() for cell in cells if years.get(cell) == year}


def reported_figures(package: xlsx.Package, year: str) -> dict:
    """Estimates line key -> the model's figure in `year` (its cached value, or computed when the
    file was saved without one)."""
    computed: dict = {}
    out = {}
    for key, cell in reported_cells(package, year).items():
        value = package.value(*cell)
        if value is None:
            computed = computed or evaluate(package)
            value = computed.get(cell)
        if _number(value):
            out[key] = float(value)
    return out


def reported_years(package: xlsx.Package) -> list[str]:
    """The model's reported years: where its revenue is typed, not computed."""
    rows = {(r["sheet"], r["cell"]): r for r in blueprint(package)}
    return [rows[c]["year"] for c in published_cells(package)["revenue"] if rows.get(c, {}).get("kind") == "input"]


def year_number(label: str) -> int | None:
    match = re.search(r"\d{4}", str(label))
    return int(match.group(0)) if match else None


def roll_pair(old: Estimates, package: xlsx.Package) -> tuple[str, str] | None:
    """(the old estimates' forecast year, its label in the new model) when the new model reports
    a year the old one forecast (the two are a roll pair); the latest such year, or None."""
    reported = {year_number(label): label for label in reported_years(package)}
    pairs = [(year_number(label), label) for label in old.years if year_number(label) in reported]
    if not pairs:
        return None
    number, label = max(pairs)
    return label, reported[number]


def bands_in(package: xlsx.Package) -> dict:
    """The bands a rolled model holds on its 盈利预测调整 sheet (as the analyst left them), over
    the defaults."""
    bands = default_bands()
    prefix = band_name("")
    for name in package.names:
        if name.startswith(prefix):
            value = package.value(*package.name_cells(name)[0])
            if _number(value):
                bands[name[len(prefix):]] = float(value)
    return bands


def results_for(old: Estimates, new_model: str | Path) -> tuple[list[ResultRow], str] | None:
    """(results rows, the old forecast year) when `new_model` reports a year `old` forecast; None otherwise."""
    package = xlsx.read(new_model)
    pair = roll_pair(old, package)
    if pair is None:
        return None
    forecast_year, reported = pair
    return results_table(old, forecast_year, reported_figures(package, reported), reported, bands_in(package)), forecast_year


# ------------------------------------------------------------------------------------------------
# The table as text
# ------------------------------------------------------------------------------------------------
def render_results(rows: list[ResultRow], forecast_year: str, old_source: str, new_source: str) -> str:
    words = verdict_words()
    header = ("指标", "年度", "预测", "实际", "差异", "差异%", "区间±", "结论")
    body = []
    for r in rows:
        difference = "" if r.difference is None else ("+" if r.difference > 0 else "") + show(r.difference, r.fmt)
        pct = "" if r.pct is None else f"{r.pct * 100:+.1f}%"
        body.append((r.label, r.year, show(r.forecast, r.fmt), show(r.actual, r.fmt), difference, pct,
                     f"{r.band * 100:.1f}%", words[r.verdict]))
    widths = [max(width(line[i]) for line in [header] + body) for i in range(len(header))]
    reported = rows[0].year if rows else ""
    out = [f"业绩 vs 预测 {reported}: reported in {new_source}, forecast as {forecast_year} in {old_source}"]
    for line in [header] + body:
        out.append("  ".join(pad(c, w, right=i not in (0, 1, 7)) for i, (c, w) in enumerate(zip(line, widths))).rstrip())
    return "\n".join(out)
