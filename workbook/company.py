"""Company data files: load one, check it against the model, and hand the engine its inputs.

The format is documented in README.md ("Company data files"). Every problem is reported as a
`CompanyDataError` whose message names the file and the field, e.g.
"company.toml: [drivers.revenue]: no value for forecast year '2027E'".
"""
from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass, field
from pathlib import Path

from udfs.engine import ACTUAL, BASE, FORECAST, Driver, Year, driver_key
from udfs.errors import DataError, InputError
from udfs.forecast import METHODS
from udfs.rating import schemes
from udfs.selection import scenario_case

from . import spec
from .currencies import fx_range_problem
from .tomlfile import TomlError, finite_number, read_toml, shown_value

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_COMPANY = DATA_DIR / read_toml(DATA_DIR / "defaults.toml")["company"]
FORMAT_VERSION = 1
MAX_FILE_BYTES = 2_000_000

_SECTIONS = {"format_version", "company", "market", "rating", "years", "base", "actual", "drivers", "labels", "valuation",
             "scenarios"}
_COMPANY_FIELDS = {"name_zh", "name_en", "ticker", "market", "reporting_currency", "quote_currency", "unit", "source", "layout",
                   "fiscal_year_end"}
DEFAULT_FISCAL_YEAR_END = "12-31"
SOURCED_ELSEWHERE = ("benchmark_return",)  # inputs of the 评级 sheet whose source [valuation.sources] may give
_MARKET_FIELDS = {"price", "price_date", "fx_rate", "benchmark_level", "shares", "market_cap_quote", "low_52w", "high_52w",
                  "turnover_3m_pct", "relative_return_pct", "absolute_return_pct"}
_RATING_FIELDS = {"scheme", "boundary", "published", "published_action", "previous", "target_price",
                  "expected_dps", "benchmark_return"}


# Chinese scale words of a money unit and their English, longest first (百万 before 万).
_SCALES_EN = (("百万", "mn"), ("千万", "10mn"), ("亿", "100mn"), ("万", "10k"), ("千", "thousand"), ("元", ""))


class CompanyDataError(DataError):
    """A company data file that cannot be used; the message says where and what."""


@dataclass
class Company:
    path: Path
    facts: dict
    market: dict
    rating: dict
    years: list[Year]
    inputs: dict = field(default_factory=dict)         # (line key, year label) -> value
    scalar_inputs: dict = field(default_factory=dict)  # line key -> value
    drivers: dict = field(default_factory=dict)        # driven line key -> Driver
    labels: dict = field(default_factory=dict)         # line key -> (Chinese, English) shown instead of the layout's
    layout: spec.Layout | None = None                  # the broker's statement layout the company is modelled in
    valuation_sources: dict = field(default_factory=dict)  # valuation input -> where its value comes from (shown beside it)
    example_valuation: bool = False                    # the valuation inputs are example assumptions (示例估值假设)
    scenario_drivers: tuple = ()                       # driven lines whose driver varies by scenario
    scenarios: dict = field(default_factory=dict)      # "bear"/"bull" -> {(driven line, year): value}

    @property
    def forecast_years(self) -> list[Year]:
        return [y for y in self.years if y.kind == FORECAST]

    @property
    def unit(self) -> str:
        """The model's money unit as the company file names it (百万元, 百万人民币)."""
        return self.facts.get("unit") or f"百万{spec.currency_zh(self.facts.get('reporting_currency'))}"

    @property
    def unit_en(self) -> str:
        """The money unit in English, from its Chinese scale word and the reporting currency
        (百万元 → CNY mn); the Chinese unit itself when it names no scale this knows."""
        currency = self.facts.get("reporting_currency") or ""
        for scale, english in _SCALES_EN:
            if self.unit.startswith(scale):
                return f"{currency} {english}".strip()
        return self.unit

    @property
    def name(self) -> str:
        return f"{self.facts['name_zh']}（{self.facts['ticker']}）"


def _number(where: str, value, positive: bool = False) -> float:
    number = finite_number(value)
    if number is None:
        raise CompanyDataError(f"{where}: must be a number, not {shown_value(value)}")
    if positive and number <= 0:
        raise CompanyDataError(f"{where}: must be positive, not {shown_value(value)}")
    return number


def _year_number(label: str) -> int:
    digits = "".join(ch for ch in str(label) if ch.isdigit())
    if len(digits) != 4:
        raise CompanyDataError(f"[years]: {label!r} is not a year such as \"2025E\"")
    return int(digits)


def parse(data: dict, path: Path, layout: spec.Layout | None = None) -> Company:
    """A company from its data file's tables, checked section by section; CompanyDataError
    names the file, the table and the field of the first thing wrong. `layout`: the statement
    layout to use whatever `[company].layout` says (a company read back from a workbook, whose
    layout reference is data, never a path to open)."""
    name = path.name
    unknown = set(data) - _SECTIONS
    if unknown:
        raise CompanyDataError(f"{name}: unknown section or field {sorted(unknown)[0]!r}; known: {', '.join(sorted(_SECTIONS))}")
    if data.get("format_version") != FORMAT_VERSION:
        raise CompanyDataError(f"{name}: format_version must be {FORMAT_VERSION}, not {data.get('format_version')!r}")
    facts, market, rating, price_date, scheme = _facts_market_rating(data, name)
    years = _years(data.get("years") or {}, name)
    if layout is None:
        try:
            layout = spec.load_layout(facts.get("layout", spec.DEFAULT_LAYOUT), relative_to=path.parent)
        except spec.LayoutError as exc:
            raise CompanyDataError(f"{name}: [company].layout: {exc}") from None
    company = Company(path, facts, market, rating, years, layout=layout)
    _reported_figures(data, company, name)
    _drivers(data.get("drivers") or {}, company, name)
    _check_model_order(company, name)
    _labels(data.get("labels") or {}, company, name)
    company.scalar_inputs = {
        "ticker": facts["ticker"],
        "quote_currency": facts.get("quote_currency"),
        "reporting_currency": facts.get("reporting_currency"),
        "price": float(market["price"]) if "price" in market else None,
        "price_date": price_date.isoformat() if price_date else None,
        "fx_rate": float(market["fx_rate"]),
        "benchmark_level": _optional(market.get("benchmark_level"), f"{name}: [market].benchmark_level"),
        "shares": float(market["shares"]) if "shares" in market else None,
        "rating_scheme": scheme,
        "rating_boundary": rating.get("boundary", "outer"),
        "benchmark_return": _optional(rating.get("benchmark_return"), f"{name}: [rating].benchmark_return"),
        "previous_rating": rating.get("previous"),
        "published_rating": rating.get("published"),
        "published_action": rating.get("published_action"),
        "refresh_stamp": None,
        "refresh_source": f"{path.name} ({price_date or 'no price yet'})",
    }
    # A target price or expected dividend typed in the file stands in for the valuation's and
    # the forecast's (the cell then holds the number, as if typed over the formula).
    for field_name in ("target_price", "expected_dps"):
        if rating.get(field_name) is not None:
            company.scalar_inputs[field_name] = _optional(rating[field_name], f"{name}: [rating].{field_name}")
    company.scalar_inputs.update(_valuation_inputs(data.get("valuation") or {}, company, name))
    _scenarios(data.get("scenarios") or {}, company, name)
    return company


def _facts_market_rating(data: dict, name: str) -> tuple:
    """[company], [market] and [rating], checked: (facts, market, rating, price date, scheme)."""
    for section, known in (("company", _COMPANY_FIELDS), ("market", _MARKET_FIELDS), ("rating", _RATING_FIELDS)):
        if not isinstance(data.get(section), dict):
            raise CompanyDataError(f"{name}: missing section [{section}]")
        extra = set(data[section]) - known
        if extra:
            raise CompanyDataError(f"{name}: [{section}] has unknown field {sorted(extra)[0]!r}; known: {', '.join(sorted(known))}")
    facts, market, rating = data["company"], data["market"], data["rating"]
    for required in ("name_zh", "ticker"):
        if not isinstance(facts.get(required, ""), str):
            raise CompanyDataError(f"{name}: [company].{required} must be text")
    # A name or ticker the source note does not print stays empty (the cover asks for it).
    # A price or share count the source note does not print is left out: the model shows the cell
    # empty (the first refresh brings a price) and what reads it shows #N/A, not an invented number.
    if "fx_rate" not in market:
        raise CompanyDataError(f"{name}: [market] needs fx_rate")
    for field_name in ("price", "fx_rate", "shares"):
        if field_name in market:
            _number(f"{name}: [market].{field_name}", market[field_name], positive=True)
    price_date = market.get("price_date")
    if isinstance(price_date, str):
        try:
            price_date = dt.date.fromisoformat(price_date.strip())
        except ValueError:
            price_date = None
    if isinstance(price_date, dt.datetime):
        price_date = price_date.date()
    if not isinstance(price_date, dt.date) and "price_date" in market:
        raise CompanyDataError(f"{name}: [market].price_date must be a date such as 2025-12-18")
    for field_name in ("price", "fx_rate", "shares"):
        if field_name in market and market[field_name] > 1e12:
            raise CompanyDataError(f"{name}: [market].{field_name} = {market[field_name]!r} is not a plausible figure")
    scheme = rating.get("scheme", "everbright")
    if scheme not in schemes():
        raise CompanyDataError(f"{name}: [rating].scheme {scheme!r} is not one of {', '.join(sorted(schemes()))}")
    for field_name in ("name_zh", "name_en", "ticker", "market", "reporting_currency", "quote_currency", "unit", "source", "layout",
                       "fiscal_year_end"):
        if field_name in facts and not isinstance(facts[field_name], str):
            raise CompanyDataError(f"{name}: [company].{field_name} must be text, not {facts[field_name]!r}")
    for field_name in ("boundary", "published", "published_action", "previous", "scheme"):
        if rating.get(field_name) is not None and not isinstance(rating[field_name], str):
            raise CompanyDataError(f"{name}: [rating].{field_name} must be text, not {rating[field_name]!r}")
    if rating.get("boundary", "outer") not in ("outer", "inner"):
        raise CompanyDataError(f"{name}: [rating].boundary must be \"outer\" or \"inner\", not {rating['boundary']!r}")
    # the same judgement a quote's FX gets (workbook/currencies.py): one rule for every door
    problem = fx_range_problem(float(market["fx_rate"]), facts.get("quote_currency"), facts.get("reporting_currency"))
    if problem:
        raise CompanyDataError(f"{name}: [market].fx_rate: {problem}")
    return facts, market, rating, price_date, scheme


def _years(section: dict, name: str) -> list[Year]:
    """[years]: the base year (if any), the reported and the forecast years, consecutive."""
    try:
        actual = [str(y) for y in section["actual"]]
        forecast = [str(y) for y in section["forecast"]]
    except (KeyError, TypeError):
        raise CompanyDataError(f"{name}: [years] needs `actual` and `forecast` lists") from None
    if not actual or not forecast:
        raise CompanyDataError(f"{name}: [years] needs at least one actual and one forecast year")
    base = section.get("base")
    years = ([Year(str(base), _year_number(base), BASE)] if base else []) \
        + [Year(y, _year_number(y), ACTUAL) for y in actual] + [Year(y, _year_number(y), FORECAST) for y in forecast]
    numbers = [y.year for y in years]
    if numbers != sorted(set(numbers)) or any(b - a != 1 for a, b in zip(numbers, numbers[1:])):
        raise CompanyDataError(f"{name}: [years] must be consecutive and in order, got {[y.label for y in years]}")
    return years


def _reported_figures(data: dict, company: Company, name: str) -> None:
    """[base.YEAR] and [actual.YEAR]: every line a reported year must give, as printed."""
    layout = company.layout
    lines = {line.key: line for line in layout.lines}

    def take(section_name: str, year: str, values: dict, required: set[str]):
        if not isinstance(values, dict):
            raise CompanyDataError(f"{name}: [{section_name}.\"{year}\"] must be a table of line = value")
        for key, value in values.items():
            if key not in lines or lines[key].table not in spec.STATEMENTS:
                raise CompanyDataError(f"{name}: [{section_name}.\"{year}\"] has unknown line {key!r}")
            company.inputs[(key, year)] = _number(f"{name}: [{section_name}.\"{year}\"].{key}", value)
        missing = required - set(values)
        if missing:
            raise CompanyDataError(f"{name}: [{section_name}.\"{year}\"] is missing line {sorted(missing)[0]!r}")

    base = next((y.label for y in company.years if y.kind == BASE), None)
    actual = [y.label for y in company.years if y.kind == ACTUAL]
    if base:
        take("base", base, (data.get("base") or {}).get(base, {}), set(layout.base_lines))
    actual_section = data.get("actual") or {}
    for year in actual:
        take("actual", year, actual_section.get(year), layout.reported_keys)
    for year in actual:  # lines no note prints (a revolver the model adds) take their default
        for key, value in layout.reported_defaults.items():
            company.inputs.setdefault((key, year), value)
    extra_years = set(actual_section) - set(actual)
    if extra_years:
        raise CompanyDataError(f"{name}: [actual] has year {sorted(extra_years)[0]!r} not listed in [years].actual")


_DRIVER_FIELDS = ("method", "values", "base", "note", "review", "keep")


def _did_you_mean(word, choices) -> str:
    """" (did you mean 'method'?)" for a near miss of one of `choices`, else ""."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _known_fields(table: dict, known, where: str) -> None:
    """A misspelt field (`methd`) named as such, with the field it probably means."""
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise CompanyDataError(f"{where}: unknown field {unknown[0]!r}{_did_you_mean(unknown[0], known)}; "
                               f"known: {', '.join(known)}")


def _drivers(drivers: dict, company: Company, name: str) -> None:
    """[drivers.LINE]: a method and its values by forecast year for every driven line, values
    for every input and reconciling driver (an input the layout defaults may be left out)."""
    layout = company.layout
    lines = {line.key: line for line in layout.lines}
    forecast = [y.label for y in company.forecast_years]
    driven = {line.key for line in layout.lines if line.driven}
    standalone = {line.key for line in layout.lines if line.table == spec.DRIVERS}
    for key, raw in drivers.items():
        where = f"{name}: [drivers.{key}]"
        if key not in driven | standalone:
            raise CompanyDataError(f"{where}: unknown line; drivers are for: {', '.join(sorted(driven | standalone))}")
        if not isinstance(raw, dict):
            raise CompanyDataError(f"{where}: must be a table with `method` and `values`")
        _known_fields(raw, _DRIVER_FIELDS, where)
        by_year = _driver_values(raw.get("values"), forecast, where)
        method = raw.get("method")
        if key in standalone:
            if method not in (None, "input"):
                raise CompanyDataError(f"{where}: this driver is an input; method must be \"input\"")
            for year, value in by_year.items():
                company.inputs[(key, year)] = value
            continue
        if method is None:
            raise CompanyDataError(f"{where}: needs `method`, one of {', '.join(METHODS)}")
        if method not in METHODS:
            raise CompanyDataError(f"{where}: method {method!r} is not one of {', '.join(METHODS)}"
                                   + _did_you_mean(method, METHODS))
        base_line = raw.get("base")
        if METHODS[method].needs_base and base_line not in lines:
            raise CompanyDataError(f"{where}: method {method!r} needs `base`, a line key such as \"revenue\"")
        missing = [k for k in METHODS[method].reads if k not in lines]
        if missing:
            raise CompanyDataError(f"{where}: method {method!r} reads the line {missing[0]!r}, which layout {layout.name!r} does not have")
        company.drivers[key] = Driver(key, method, [by_year[y] for y in forecast], base_line, str(raw.get("note", "")),
                                      bool(raw.get("review", False)), bool(raw.get("keep", False)))
        for year, value in by_year.items():
            company.inputs[(driver_key(key), year)] = value
    for key, value in layout.input_defaults.items():  # an input added after the file was written
        for year in forecast:
            company.inputs.setdefault((key, year), value)
    missing = (driven - set(company.drivers)) | {k for k in standalone if (k, forecast[0]) not in company.inputs}
    if missing:
        raise CompanyDataError(f"{name}: missing driver [drivers.{sorted(missing)[0]}]")


def _labels(labels: dict, company: Company, name: str) -> None:
    """[labels]: the company's own names for lines (Chinese, optionally English)."""
    lines = {line.key: line for line in company.layout.lines}
    for key, text in labels.items():
        if key not in lines:
            raise CompanyDataError(f"{name}: [labels] has unknown line {key!r}")
        if isinstance(text, str):
            text = [text]
        if not isinstance(text, list) or not 1 <= len(text) <= 2 or not all(isinstance(t, str) and t.strip() for t in text):
            raise CompanyDataError(f"{name}: [labels].{key} must be a label, or [Chinese, English]")
        company.labels[key] = (text[0], text[1] if len(text) > 1 else lines[key].label_en)


SCENARIO_CASES = ("bear", "bull")


def _scenarios(section: dict, company: Company, name: str) -> None:
    """[scenarios]: `drivers` lists the driven lines that vary by scenario; [scenarios.bear.drivers.X]
    and [scenarios.bull.drivers.X] give their values by year. A value not given is the base
    case's: a scenario starts as the base case until the analyst enters a view. `case` is the
    scenario the model is set to (the drivers sheet's scenario cell; base if not given)."""
    if not section:
        return
    extra = set(section) - {"drivers", "case", *SCENARIO_CASES}
    if extra:
        raise CompanyDataError(f"{name}: [scenarios] has unknown field {sorted(extra)[0]!r}; known: drivers, case, bear, bull")
    if section.get("case") is not None:  # the case the model opens on (the scenario cell), base if not given
        try:
            company.scalar_inputs["scenario"] = scenario_case(section["case"])
        except InputError as exc:
            raise CompanyDataError(f"{name}: [scenarios].case: {exc}") from None
    varied = section.get("drivers", [])
    if not isinstance(varied, list) or not all(isinstance(k, str) for k in varied):
        raise CompanyDataError(f"{name}: [scenarios].drivers must be a list of driven line keys")
    unknown = [k for k in varied if k not in company.drivers]
    if unknown:
        raise CompanyDataError(f"{name}: [scenarios].drivers names {unknown[0]!r}, which has no driver")
    forecast = [y.label for y in company.forecast_years]
    for case in SCENARIO_CASES:
        given = (section.get(case) or {}).get("drivers", {})
        values = {}
        for key, raw in given.items():
            where = f"{name}: [scenarios.{case}.drivers.{key}]"
            if key not in varied:
                raise CompanyDataError(f"{where}: add {key!r} to [scenarios].drivers first")
            if not isinstance(raw, dict):
                raise CompanyDataError(f"{where}: must be a table with `values`")
            entries = raw.get("values")
            if not isinstance(entries, dict):
                raise CompanyDataError(f"{where}: `values` must be keyed by year")
            for year, value in entries.items():
                if year not in forecast:
                    raise CompanyDataError(f"{where}: year {year!r} is not a forecast year ({', '.join(forecast)})")
                values[(key, year)] = _number(f"{where}.values.\"{year}\"", value)
        company.scenarios[case] = values
    company.scenario_drivers = tuple(varied)


def fiscal_year_end(company_facts: dict, year: int, name: str) -> dt.date:
    """The end of fiscal year `year` ([company] fiscal_year_end, "MM-DD", 31 December by default;
    29 February is the 28th in other years)."""
    text = company_facts.get("fiscal_year_end", DEFAULT_FISCAL_YEAR_END)
    try:
        month, day = (int(part) for part in str(text).split("-"))
        return dt.date(year, month, min(day, 28) if (month, day) == (2, 29) else day)
    except ValueError:
        raise CompanyDataError(f"{name}: [company].fiscal_year_end must be month-day such as \"12-31\", not {text!r}") from None


def _valuation_inputs(section: dict, company: Company, name: str) -> dict:
    """The 估值 sheet's inputs: the years it values on (the first forecast year unless the file
    says otherwise), the valuation date's conventions (the first forecast year's end, the rating
    horizon of the scheme, when dividends are paid) and whatever multiples, rates and weights the
    file gives. A method the file does not fill stays empty: nothing is invented. `sources`
    says where each value comes from, `example = true` that they are example assumptions."""
    plan = spec.valuation_plan(company.layout)
    inputs = {line.key: line for line in plan.scalars if line.formula is None}
    forecast = [y.label for y in company.forecast_years]
    reported = [y.label for y in company.years if y.kind == ACTUAL]
    out = {key: None for key in inputs}
    out.update(first_forecast=forecast[0], last_forecast=forecast[-1], last_reported=reported[-1])
    for key in inputs:
        if key.endswith("_year"):
            out[key] = forecast[0]
    out.update({k: v for k, v in spec.VALUATION_INPUT_DEFAULTS.items() if k in inputs})
    if "first_year_end" in inputs:
        out["first_year_end"] = fiscal_year_end(company.facts, company.forecast_years[0].year, name).isoformat()
    if "rating_horizon" in inputs:
        out["rating_horizon"] = schemes()[company.rating.get("scheme", "everbright")].horizon_months / 12
    section = dict(section)
    sources = section.pop("sources", {})
    example = section.pop("example", False)
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise CompanyDataError(f"{name}: [valuation.sources] must map inputs to text saying where each comes from")
    if not isinstance(example, bool):
        raise CompanyDataError(f"{name}: [valuation].example must be true or false")
    settable = sorted(k for k in inputs if k not in spec.YEAR_INPUTS)
    for key in list(section) + [k for k in sources if k not in SOURCED_ELSEWHERE]:
        if key not in settable:
            raise CompanyDataError(f"{name}: [valuation] has unknown input {key!r}; inputs: {', '.join(settable)}")
    for key, value in section.items():
        if inputs[key].fmt == "text":
            if not isinstance(value, (str, bool)):
                raise CompanyDataError(f"{name}: [valuation].{key} must be text such as \"{forecast[0]}\"")
            if key.endswith("_year") and value not in forecast + reported:
                raise CompanyDataError(f"{name}: [valuation].{key} = {value!r} is not a year of the model")
            allowed = _choices(key, plan)
            if allowed and _word(key, value) not in {_word(key, a) for a in allowed}:
                raise CompanyDataError(f"{name}: [valuation].{key} = {value!r} is not one of {', '.join(allowed)}"
                                       + (" (the layout has no segment line the others apply to)" if key.startswith("sotp_") else ""))
            out[key] = value
        else:
            out[key] = _number(f"{name}: [valuation].{key}", value)
    company.valuation_sources, company.example_valuation = dict(sources), example
    return out


def _choices(key: str, plan) -> tuple:
    """The words a text input of the 估值 sheet takes (its drop-down's), or () for free text: a
    segment's methods are those its layout has a metric line for, as the template offers them."""
    from udfs.dcf import NM_POLICIES, TARGET_BASES
    if key.startswith("sotp_") and key.endswith("_method"):
        return tuple(plan.segment_methods.get(key.removeprefix("sotp_").removesuffix("_method")) or ("PS",))
    return {"dcf_target_basis": TARGET_BASES, "blend_nm_policy": NM_POLICIES}.get(key, ())


def _word(key: str, value) -> str:
    """A choice as the cell function reads it: a segment method by its letters ('EV/EBITDA',
    'ev-ebitda' and 'EVEBITDA' alike), another choice in any case."""
    if key.startswith("sotp_"):
        return "".join(ch for ch in str(value).upper() if ch.isalnum())
    return str(value).strip().lower()


def _check_model_order(company: Company, name: str) -> None:
    """The layout's formulas and the company's drivers must not read each other in a circle."""
    from udfs.engine import bind_drivers, evaluation_order
    lines = bind_drivers(spec.model_lines(company.layout, company.facts.get("quote_currency"),
                                          company.facts.get("reporting_currency")), company.drivers)
    for kind in {y.kind for y in company.years}:
        try:
            evaluation_order(lines, kind)
        except ValueError as exc:
            raise CompanyDataError(f"{name}: {exc}") from None


def _driver_values(values, forecast: list[str], where: str) -> dict[str, float]:
    """A driver's values, keyed by forecast year label, so that moving the year window can never
    shift a driver onto another year. Every forecast year must have one, and no other year."""
    if isinstance(values, list):
        raise CompanyDataError(f"{where}: `values` must be keyed by year, e.g. values = {{ \"{forecast[0]}\" = 0.1 }}; "
                               "a positional list would move drivers when the year window moves")
    if not isinstance(values, dict):
        raise CompanyDataError(f"{where}: needs `values`, one per forecast year keyed by year")
    extra = [y for y in values if y not in forecast]
    if extra:
        raise CompanyDataError(f"{where}: year {extra[0]!r} is not a forecast year ({', '.join(forecast)})")
    missing = [y for y in forecast if y not in values]
    if missing:
        raise CompanyDataError(f"{where}: no value for forecast year {missing[0]!r}")
    return {y: _number(f"{where}.values.\"{y}\"", values[y]) for y in forecast}


def _optional(value, where: str):
    return None if value is None else _number(where, value)


def load(path: str | Path = DEFAULT_COMPANY, layout: spec.Layout | None = None) -> Company:
    """The company in a data file (in `layout` when given, see `parse`); CompanyDataError with
    one readable sentence otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CompanyDataError(f"{path}: no such company data file")
    try:
        data = read_toml(path, MAX_FILE_BYTES)
    except TomlError as exc:
        raise CompanyDataError(str(exc)) from None
    return parse(data, path, layout)
