"""What a model workbook holds now, read back as company data: the company and layout files the
build stored on the very hidden _source sheet, with every input the workbook holds in place of
the file's. `roll` rolls it forward; refresh re-runs the engine on it for the sensitivity table.

Kept apart from the roll so that refresh reads a model without the roll's heavier imports
(the template build, the estimates store).
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import re
import tempfile
from pathlib import Path

import tomli_w

from udfs.engine import ACTUAL, BASE, FORECAST, driver_key
from udfs.errors import DataError, InputError
from udfs.selection import scenario_case
from workbook import spec, xlsx
from workbook.company import SCENARIO_CASES, CompanyDataError, load
from workbook.company import parse as parse_company
from workbook.layout import SOURCE
from workbook.model import SCENARIO_KEY, scenario_key
from workbook.tomlfile import finite_number, parse_toml, shown_value

from .template import blueprint

SCALAR_FIELDS = {
    "ticker": ("company", "ticker"), "quote_currency": ("company", "quote_currency"),
    "reporting_currency": ("company", "reporting_currency"),
    "price": ("market", "price"), "price_date": ("market", "price_date"), "fx_rate": ("market", "fx_rate"),
    "benchmark_level": ("market", "benchmark_level"), "shares": ("market", "shares"),
    "rating_scheme": ("rating", "scheme"), "rating_boundary": ("rating", "boundary"),
    "target_price": ("rating", "target_price"), "expected_dps": ("rating", "expected_dps"),
    "benchmark_return": ("rating", "benchmark_return"), "previous_rating": ("rating", "previous"),
    "published_rating": ("rating", "published"), "published_action": ("rating", "published_action"),
}


class RollError(DataError):
    """A roll that cannot be done; the message is the one line the analyst sees."""


def read_source(package: xlsx.Package) -> dict:
    """{part: (file name, text)} from the `_source` sheet: the company and layout files verbatim."""
    name = package.path.name
    if SOURCE not in package.sheets:
        raise RollError(f"{name}: has no {SOURCE} sheet (built before models carried their company file); "
                        "rebuild it with `python -m addin new` and carry your inputs over with `diff`")
    rows: dict = {}
    for ref in package.sheets[SOURCE].cells:
        row, col = xlsx.split_ref(ref)
        rows.setdefault(row, {})[col] = package.value(SOURCE, ref)
    header = rows.pop(1, {})
    if [header.get(c) for c in (1, 2, 3)] != ["part", "file", "text"]:
        raise RollError(f"{name}: the {SOURCE} sheet's header was changed; the stored company file cannot be trusted")
    parts: dict = {}
    for row in sorted(rows):
        part, file_name, text = (rows[row].get(c) for c in (1, 2, 3))
        if part not in ("company", "layout") or not isinstance(file_name, str) or not isinstance(text, (str, type(None))):
            raise RollError(f"{name}: {SOURCE} row {row} is damaged; the stored company file cannot be trusted")
        known = parts.setdefault(part, (file_name, []))
        if known[0] != file_name:
            raise RollError(f"{name}: {SOURCE} holds two {part} files; the stored company file cannot be trusted")
        known[1].append(text or "")
    if set(parts) != {"company", "layout"}:
        raise RollError(f"{name}: the {SOURCE} sheet lacks the {'company' if 'company' not in parts else 'layout'} file")
    return {part: (file_name, "".join(chunks)) for part, (file_name, chunks) in parts.items()}


def _input_value(package: xlsx.Package, row: dict, number: bool):
    value = package.value(row["sheet"], row["cell"])
    where = f"{package.path.name}: {row['sheet']}!{row['cell']} ({row['key']} {row['year']})".rstrip()
    if number:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        number = finite_number(value)
        if number is None:
            raise RollError(f"{where} holds {shown_value(value)} where a number belongs; fix it before rolling")
        return number
    return value


def current_inputs(package: xlsx.Package, data: dict, layout: spec.Layout, kinds: dict) -> dict:
    """The company data `data` with every input the workbook holds now put in place of the file's."""
    standalone = {line.key: line.key for line in layout.lines if line.table == spec.DRIVERS}
    driven = {driver_key(key): key for key in data.get("drivers", {}) if key not in standalone}
    drivers = {**driven, **standalone}
    valuation_inputs = {line.key for line in spec.valuation_plan(layout).scalars if line.formula is None}
    valuation_inputs -= set(spec.YEAR_INPUTS)  # follow the years (the first forecast year's end too), not the analyst
    cases = {scenario_key(case, key): (case, key) for key in data.get("scenarios", {}).get("drivers", [])
             for case in ("base", *SCENARIO_CASES)}
    for row in blueprint(package):
        if row["kind"] != "input":
            continue
        key, year = row["key"], row["year"]
        if key in cases and year:
            case, driver = cases[key]
            value = _input_value(package, row, number=True)
            if case == "base":
                if value is None:
                    raise RollError(f"{package.path.name}: {row['sheet']}!{row['cell']} (base case of {driver} {year}) is "
                                    "blank where a number belongs; fill it in before rolling")
                data["drivers"][driver]["values"][year] = value
            elif value is not None:  # an empty bear or bull value means "as the base case"
                scenario = data["scenarios"].setdefault(case, {}).setdefault("drivers", {})
                scenario.setdefault(driver, {"values": {}})["values"][year] = value
            continue
        if key == SCENARIO_KEY and not year:  # the case the model is set to, read as every reader reads it
            if cases:
                try:
                    data["scenarios"]["case"] = scenario_case(package.value(row["sheet"], row["cell"]))
                except InputError as exc:
                    raise RollError(f"{package.path.name}: {row['sheet']}!{row['cell']} (scenario): {exc}") from None
            continue
        if not year and key in valuation_inputs:
            value = package.value(row["sheet"], row["cell"])
            if value is not None and not (isinstance(value, str) and not value.strip()):
                data.setdefault("valuation", {})[key] = (value.strip() if isinstance(value, str) else value
                                                         if isinstance(value, bool) else float(value))
            continue
        if not year:
            if key not in SCALAR_FIELDS:
                continue
            section, name = SCALAR_FIELDS[key]
            value = _scalar(package, row, key)
            if value is None:
                data[section].pop(name, None)
            else:
                data[section][name] = value
            continue
        value = _input_value(package, row, number=True)
        if value is None:
            raise RollError(f"{package.path.name}: {row['sheet']}!{row['cell']} ({key} {year}) is blank where a number "
                            "belongs; fill it in before rolling")
        if key in drivers and kinds.get(year) == FORECAST:
            # an input the layout defaults may be missing from the stored file: the workbook has it now
            entry = data.setdefault("drivers", {}).setdefault(drivers[key], {"method": "input", "values": {}}) \
                if key in standalone else data["drivers"][drivers[key]]
            entry["values"][year] = value
        elif kinds.get(year) in (ACTUAL, BASE):
            section = "actual" if kinds[year] == ACTUAL else "base"
            data.setdefault(section, {}).setdefault(year, {})[key] = value
        else:
            raise RollError(f"{package.path.name}: {row['sheet']}!{row['cell']} is an input for {key} {year}, which the "
                            "stored company file does not have; the blueprint and _source disagree")
    return data


def _scalar(package: xlsx.Package, row: dict, key: str):
    value = package.value(row["sheet"], row["cell"])
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if key == "price_date":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return xlsx.from_excel_date(value)
        try:
            return dt.date.fromisoformat(str(value).strip())
        except ValueError:
            raise RollError(f"{package.path.name}: {row['sheet']}!{row['cell']} (price date) holds {value!r}, "
                            "not a date") from None
    if key in ("ticker", "quote_currency", "reporting_currency", "rating_scheme", "rating_boundary",
               "previous_rating", "published_rating", "published_action"):
        return str(value).strip()
    return _input_value(package, row, number=True)


# The company and layout files a model stores are written into a scratch folder of our own to be
# loaded. What the _source sheet holds is data, never a path: a stored file name is kept there
# only when it is a plain file name (letters, digits, "_", "-", "."; ending in .toml), so that
# a rolled model keeps its label; anything else (a path, "..", a .pth, a control character)
# becomes one of these fixed names. Nothing is ever written outside that folder.
STORED_COMPANY, STORED_LAYOUT = "company.toml", "layout.toml"
_PLAIN_FILE_NAME = re.compile(r"[^\W_][\w.-]{0,79}\.toml")


def stored_file_name(name, fallback: str) -> str:
    """`name` if it is a plain file name a stored file may keep in our scratch folder, else `fallback`."""
    return name if isinstance(name, str) and _PLAIN_FILE_NAME.fullmatch(name) and ".." not in name else fallback


def _stored_files(package: xlsx.Package, work: Path, model_name: str) -> tuple[Path, dict, spec.Layout]:
    """(where the stored company file goes in `work`, its data, the stored layout): the layout
    file written into `work` under a name `stored_file_name` makes safe and loaded as given."""
    source = read_source(package)
    company_name, company_text = source["company"]
    layout_name, layout_text = source["layout"]
    company_file, layout_file = stored_file_name(company_name, STORED_COMPANY), stored_file_name(layout_name, STORED_LAYOUT)
    if company_file == layout_file:
        company_file, layout_file = STORED_COMPANY, STORED_LAYOUT
    layout_path = work / layout_file
    layout_path.write_text(layout_text, encoding="utf-8")
    try:
        layout = spec.load_layout(layout_path)
    except spec.LayoutError as exc:
        raise RollError(f"{model_name}: the layout stored in the model cannot be used: {exc}") from None
    data = parse_toml(company_text, f"{company_name!r} (stored in the model)")
    facts = data.get("company")
    if isinstance(facts, dict) and str(facts.get("layout", spec.DEFAULT_LAYOUT)) not in (layout_file, layout_path.stem):
        facts["layout"] = layout_file  # a reference that only meant something where it was built
    return work / company_file, data, layout


def stored_and_current(package: xlsx.Package, work: Path, model_name: str):
    """(the company as the model stored it, its data with every input the workbook holds now).

    `work` is an empty scratch folder the caller created: the stored files are written there,
    under names `stored_file_name` makes safe, and the stored layout is used as given (the
    company's `[company].layout` reference is never resolved as a path)."""
    company_path, data, layout = _stored_files(package, work, model_name)
    stored = load_company(company_path, data, model_name, layout)
    return stored, current_inputs(package, data, stored.layout, {y.label: y.kind for y in stored.years})


def current_company(package: xlsx.Package, model_name: str):
    """The company a model workbook holds now: the company and layout files it was built from
    (its _source sheet) with every input the workbook holds in place of the file's. Read from the
    data directly, never written out as a company file (refresh needs the company, not a file).

    Made once per content: the stored files once per _source content (the same in every model
    of a template), the company once per those and every input cell's value (the blueprint's
    input rows, where each sits and what it holds now), so an edited input, a moved row or
    another stored file makes a new one. The company returned is shared: read it, never change it."""
    stored_key = _source_key(package)
    key = _inputs_key(package, stored_key)
    company = _COMPANIES.get(key)
    if company is None:
        stored = _STORED.get(stored_key)
        if stored is None:
            with tempfile.TemporaryDirectory(prefix="er-current-") as work:
                path, data, layout = _stored_files(package, Path(work), model_name)
                company = _company(path, copy.deepcopy(data), model_name, layout)
            stored = _STORED[stored_key] = (path, data, layout, company.layout, {y.label: y.kind for y in company.years})
            _bounded(_STORED)
        path, data, layout, stored_layout, kinds = stored
        company = _company(path, current_inputs(package, copy.deepcopy(data), stored_layout, kinds), model_name, layout)
        _COMPANIES[key] = company
        _bounded(_COMPANIES)
    return company


# What current_company made, by content: the few stored files a process meets (one per template)
# and the last few companies (a model refreshed again with no input changed, its table re-run).
_STORED: dict = {}
_COMPANIES: dict = {}
_KEPT = 8


def _bounded(cache: dict) -> None:
    while len(cache) > _KEPT:
        cache.pop(next(iter(cache)))


def _put(digest, *parts) -> None:
    digest.update("\x1f".join(f"{type(p).__name__}:{p!r}" for p in parts).encode("utf-8", "surrogatepass") + b"\x1e")


def _source_key(package: xlsx.Package) -> bytes:
    """A digest of what the _source sheet holds, cell by cell (its value and kind of value)."""
    digest = hashlib.blake2b(digest_size=16)
    sheet = package.sheets.get(SOURCE)
    if sheet is not None:
        for ref in sheet.cells:
            _put(digest, ref, package.value(SOURCE, ref))
    return digest.digest()


def _inputs_key(package: xlsx.Package, stored_key: bytes) -> bytes:
    """A digest of the stored files' digest and every blueprint input row: where it sits, what
    it is, and what its cell holds now (value and kind of value)."""
    digest = hashlib.blake2b(stored_key, digest_size=16)
    for row in blueprint(package):
        if row["kind"] == "input":
            _put(digest, row["sheet"], row["cell"], row["key"], row["year"], package.value(row["sheet"], row["cell"]))
    return digest.digest()


def _company(path: Path, data: dict, model_name: str, layout: spec.Layout):
    """The company in `data` in `layout`, as `load` would read it from a file at `path` holding that data."""
    try:
        return parse_company(data, path, layout)
    except CompanyDataError as exc:
        raise RollError(f"{model_name}: {exc}") from None


def load_company(path: Path, data_or_text, model_name: str, layout: spec.Layout | None = None):
    """The company in `data_or_text` (a dict or the file's text) written to `path` (in a scratch
    folder of ours, see `stored_and_current`) and loaded in `layout`, so that the build stores
    exactly that file; a CompanyDataError becomes a RollError naming the model."""
    text = data_or_text if isinstance(data_or_text, str) else tomli_w.dumps(data_or_text)
    path.write_text(text, encoding="utf-8")
    try:
        return load(path, layout)
    except CompanyDataError as exc:
        raise RollError(f"{model_name}: {exc}") from None
