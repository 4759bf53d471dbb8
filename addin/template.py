"""What makes a file one of our model templates: its version, its blueprint, its structure.

Shared by refresh, check, export and diff, so that every door refuses the same damaged models
with the same sentence.
"""
from __future__ import annotations

import hashlib
import re
from types import MappingProxyType
from typing import NamedTuple

from workbook import xlsx
from workbook.layout import (
    AUDIT_ITEMS, AUDIT_PREFIX, AUDIT_ROWS, AUDIT_SUMMARY, BLUEPRINT, BLUEPRINT_REQUIRED, CELL_KINDS, CHECK_PREFIX, CONF, DRIVERS_PREFIX, FINDINGS_PREFIX,
    MARKET_PREFIX, RATING_PREFIX, RATIOS_PREFIX, REQUIRED_MARKET_LINES, SENSITIVITY_COLS, SENSITIVITY_GRID,
    SENSITIVITY_ROWS, SUMMARY_PREFIX, TEMPLATE_VERSION, TEMPLATE_VERSION_NAME, TEMPLATE_VERSION_PROPERTY, WARNING_PREFIX,
    WEIGHTS_NAME, label_cell, market_name,
)

TICKER = market_name("ticker")


class NewerTemplateError(xlsx.WorkbookError):
    """A model made by a newer add-in than this one: refused by every door but `check`, which
    reports it as a failed version check and audits the rest."""


def settings_as_values(package: xlsx.Package) -> dict:
    """{(xlwings.conf, ref): shown value} for formula cells of the settings sheet. xlwings reads
    that sheet's values, never recomputes it, and a re-save may turn TRUE into the formula
    TRUE(): the evaluator takes what the cells show instead of evaluating settings."""
    sheet = package.sheets.get(CONF)
    if sheet is None:
        return {}
    return {(CONF, ref): package.value(CONF, ref) for ref, cell in sheet.cells.items() if cell.formula}


_VERSION = re.compile(r"\d{1,6}(?:\.\d{1,6}){0,3}")
_A1 = re.compile(r"\$?[A-Z]{1,3}\$?[1-9]\d{0,6}")


def template_version(package: xlsx.Package) -> str:
    """The template version a workbook carries; WorkbookError if it is not one of ours.

    Read from the custom document property, else from the defined name: Excel keeps both, and
    LibreOffice keeps both too but writes the name's constant without its "=" (`"1.0"`)."""
    name = package.path.name
    candidates = [package.custom.get(TEMPLATE_VERSION_PROPERTY)]
    if TEMPLATE_VERSION_NAME in package.names:
        candidates.append(str(package.names[TEMPLATE_VERSION_NAME]).strip().lstrip("=").strip().strip('"'))
    found = [str(c).strip() for c in candidates if c is not None and str(c).strip()]
    if not found:
        raise xlsx.WorkbookError(f"{name}: not one of our model templates (no template version); "
                                 "build one with `python -m addin build`")
    version = found[0]
    if not _VERSION.fullmatch(version):
        raise xlsx.WorkbookError(f"{name}: the template version {version[:20]!r}{'…' if len(version) > 20 else ''} "
                                 "is not a version number; the file was edited by hand or is not one of our models")
    if TICKER not in package.names:
        raise xlsx.WorkbookError(f"{name}: the defined name {TICKER} is missing; is this one of our templates?")
    return version


def version_tuple(text: str) -> tuple:
    """(1, 0) for "1.0"; only called on versions `template_version` accepted, so bounded."""
    return tuple(int(p) for p in re.findall(r"\d{1,6}", text)[:4]) or (0,)


def blueprint(package: xlsx.Package) -> list[dict]:
    """The blueprint rows: sheet, cell, kind, key, year, formula (and label, name), every one a string.
    WorkbookError naming the cell if the blueprint was damaged (header renamed, a cell holding a
    number or garbage where a sheet, a cell reference or a kind belongs). Read once per package
    and shared by every caller (which must not change the rows)."""
    if "blueprint" not in package.memo:
        package.memo["blueprint"] = _blueprint_by_content(package)
    return package.memo["blueprint"]


_BLUEPRINTS: dict = {}   # digest of a blueprint part and the shared strings -> its rows, the few a process meets
_BLUEPRINTS_KEPT = 8


def _blueprint_by_content(package: xlsx.Package) -> list:
    """The rows, read once per content: every model built from one template carries the same
    blueprint, so a batch worker (or the add-in's process, refresh after refresh) reads it once.
    The rows are read-only, as they are shared between packages."""
    sheet = package.sheets.get(BLUEPRINT)
    if sheet is None:
        return []
    digest = hashlib.blake2b(sheet.data(), digest_size=16)
    digest.update("\x1f".join(package.shared).encode("utf-8", "surrogatepass"))
    key = package.memo["blueprint key"] = digest.digest()
    rows = _BLUEPRINTS.get(key)
    if rows is None:
        rows = tuple(MappingProxyType(row) for row in _read_blueprint(package))
        if len(_BLUEPRINTS) >= _BLUEPRINTS_KEPT:
            _BLUEPRINTS.pop(next(iter(_BLUEPRINTS)))
        _BLUEPRINTS[key] = rows
    return rows


_PER_BLUEPRINT: dict = {}   # (digest of a blueprint, what) -> what is worked out from its rows alone


def per_blueprint(package: xlsx.Package, what: str, make):
    """`make(rows)`, worked out once per blueprint content (and kept while its rows are): what
    the structure check and the audit derive from the blueprint alone, the same for every model
    of a template. Only what the rows say is kept; every cell of the package is read again."""
    rows = blueprint(package)
    key = (package.memo.get("blueprint key"), what)
    if key[0] is None:   # no blueprint sheet
        return make(rows)
    if key not in _PER_BLUEPRINT:
        if len(_PER_BLUEPRINT) >= 4 * _BLUEPRINTS_KEPT:
            _PER_BLUEPRINT.pop(next(iter(_PER_BLUEPRINT)))
        _PER_BLUEPRINT[key] = make(rows)
    return _PER_BLUEPRINT[key]


def _read_blueprint(package: xlsx.Package) -> list[dict]:
    sheet = package.sheets.get(BLUEPRINT)
    if sheet is None:
        return []
    where = package.path.name
    rows: dict = {}
    shared = package.shared
    decode = xlsx.decode_value
    for ref, cell in sheet.cells.items():   # 8 columns of a thousand rows: decoded directly, not by address
        row = rows.get(cell.row)
        if row is None:
            row = rows[cell.row] = {}
        if cell.attrs.get("t") == "s" and cell.raw_value is not None and cell.raw_value.isdigit() \
                and int(cell.raw_value) < len(shared):
            row[cell.col] = shared[int(cell.raw_value)]
        else:
            row[cell.col] = decode(cell, shared, lambda ref=ref: f"{where}: {BLUEPRINT}!{ref}")
    header = rows.pop(1, {})
    names = [header.get(c) for c in range(1, max(header, default=0) + 1)]
    missing = [f for f in BLUEPRINT_REQUIRED if f not in names]
    if missing:
        raise xlsx.WorkbookError(f"{where}: the blueprint sheet's header has no {missing[0]!r} column (renamed?); "
                                 "the blueprint is damaged: rebuild the template and carry inputs over with `diff`")
    columns = [(c, title) for c, title in enumerate(names, start=1) if isinstance(title, str)]
    out = []
    for r, cells in sorted(rows.items()):
        row = {}
        for c, title in columns:
            value = cells.get(c)
            if value is not None and not isinstance(value, str):
                raise xlsx.WorkbookError(f"{where}: {BLUEPRINT}!{xlsx.col_letters(c)}{r} holds {value!r} where the "
                                         f"blueprint keeps text ({title}); the blueprint is damaged: rebuild the template")
            row[title] = value or ""
        if not any(row.values()):
            continue
        if row["kind"] not in CELL_KINDS or not _A1.fullmatch(row["cell"]) or not row["sheet"].strip():
            _refuse_row(where, r, row)
        row["cell"] = row["cell"].replace("$", "")
        out.append(row)
    return out


def _refuse_row(where: str, r: int, row: dict) -> None:
    problems = {"kind": (row["kind"] not in CELL_KINDS, "kind of cell"),
                "cell": (not _A1.fullmatch(row["cell"]), "cell reference"),
                "sheet": (not row["sheet"].strip(), "sheet name")}
    for field_name, (bad, what) in problems.items():
        if bad:
            raise xlsx.WorkbookError(f"{where}: {BLUEPRINT} row {r} has {field_name} {row[field_name][:30]!r}, which is "
                                     f"not a {what}; the blueprint is damaged: rebuild the template")


# Prefixes only the template's blocks use (checks, audit, findings, warnings): every name under
# them is the build's. Other names the build gave are the ones the blueprint records.
_BLOCK_PREFIXES = (CHECK_PREFIX, AUDIT_PREFIX, FINDINGS_PREFIX, WARNING_PREFIX)
_BLOCK_NAMES = (WEIGHTS_NAME, SENSITIVITY_GRID, SENSITIVITY_ROWS, SENSITIVITY_COLS)
# A template from before the blueprint recorded names: the prefixes its lines were named under.
_UNRECORDED_LINE_PREFIXES = ("IS", "BS", "CF", SUMMARY_PREFIX, DRIVERS_PREFIX, RATIOS_PREFIX, MARKET_PREFIX, RATING_PREFIX)


def template_names(package: xlsx.Package, rows: list[dict]) -> list[str]:
    """The defined names of this file that the build gave the model's cells: each line's own
    name as the blueprint records it, and the blocks' names. Any other name is the analyst's
    (a constant, a link to another book) and is left alone, whatever it is called."""
    recorded = {row["name"] for row in rows if row.get("name")}
    if recorded:
        return [defined for defined in package.names if defined in recorded or defined in _BLOCK_NAMES
                or defined.partition("_")[0] in _BLOCK_PREFIXES]
    return [defined for defined in package.names
            if defined.partition("_")[0] in _BLOCK_PREFIXES + _UNRECORDED_LINE_PREFIXES]


# The cover note `export` writes on a copy (addin/share.py, addin/native.py): which edition, and from which model.
_EXPORT_NOTE = re.compile(r"(数值版|原生公式版)[^\n]*?导出自 ([^\n，,]+?)，")
_EDITIONS = {"数值版": "a values-only export", "原生公式版": "a native-formula export (the live edition)"}


def exported_from(package: xlsx.Package) -> tuple[str, str] | None:
    """(which edition, the model's file name) when `package` is a copy `export` made, else None."""
    if "xl/vbaProject.bin" in package.members or BLUEPRINT in package.sheets:
        return None
    for sheet_name in package.sheets:
        for ref in package.sheets[sheet_name].cells:
            text = package.value(sheet_name, ref)
            match = _EXPORT_NOTE.search(text) if isinstance(text, str) else None
            if match:
                return _EDITIONS[match[1]], match[2]
    return None


def verify_structure(package: xlsx.Package, require_vba: bool = True) -> None:
    """Refuse a model whose structure no longer matches its blueprint: a sheet deleted or
    renamed, a defined name removed, labels moved, text typed where a formula belongs, the VBA
    project removed, or a template from a newer add-in. One WorkbookError sentence otherwise.
    A package verified once is not verified again (refresh, its audit and its sensitivity table
    all ask)."""
    if package.memo.get(("structure verified", require_vba)):
        return
    _verify_structure(package, require_vba)
    package.memo[("structure verified", require_vba)] = True


def _verify_structure(package: xlsx.Package, require_vba: bool) -> None:
    name = package.path.name
    version = template_version(package)
    if version_tuple(version) > version_tuple(TEMPLATE_VERSION):
        raise NewerTemplateError(f"{name}: made by a newer add-in (template {version}, this is {TEMPLATE_VERSION}); upgrade first")
    rows = blueprint(package)
    if not rows:
        exported = exported_from(package)
        if exported is not None:
            raise xlsx.WorkbookError(f"{name}: is {exported[0]}, which keeps no blueprint or macros; use the model it was "
                                     f"exported from, {exported[1]}, instead")
        raise xlsx.WorkbookError(f"{name}: the template's blueprint sheet is missing; rebuild the template")
    plan = per_blueprint(package, "structure", _StructurePlan.of)
    missing = sorted(plan.sheets - set(package.sheets))
    if missing:
        raise xlsx.WorkbookError(f"{name}: sheet {missing[0]!r} is missing (deleted or renamed); restore it before using this model")
    for needed in map(market_name, REQUIRED_MARKET_LINES):
        package.name_cells(needed)
    for defined in template_names(package, rows):
        package.name_cells(defined)
    for line_name, sheet, cell in plan.line_names:  # every line's own name, which the analyst's formulas and the VBA may use
        if line_name not in package.names:
            raise xlsx.WorkbookError(f"{name}: the defined name {line_name} is missing (deleted?); it names "
                                     f"{sheet}!{cell}. Restore it, or rebuild the template and carry "
                                     "inputs over with `diff`")
    if require_vba and "xl/vbaProject.bin" not in package.members:
        raise xlsx.WorkbookError(f"{name}: the VBA project is missing (saved as .xlsx?); rebuild the template")
    value, sheets = package.value, package.sheets
    for sheet, where, label, cell, formula in plan.cells:   # in blueprint order: the first wrong cell is named
        if label is not None:
            shown = value(sheet, where)
            if shown != label:
                raise xlsx.WorkbookError(f"{name}: {sheet}!{where} reads {shown!r}, the template put {label!r} "
                                         "there (rows or labels moved); the model's cells no longer mean what they did")
        if formula is not None:
            text = value(sheet, cell)   # read even under a formula: a damaged cached value is refused here
            found = sheets[sheet].cells.get(cell)
            if found is not None and found.formula is None and isinstance(text, str) and text.strip():
                raise xlsx.WorkbookError(f"{name}: {sheet}!{cell} holds the text {text[:30]!r} where the "
                                         f"template has ={formula[:60]}; type a number or restore the formula")


class _StructurePlan(NamedTuple):
    """What the structure check reads from the blueprint alone: the sheets its rows sit on, each
    line's own defined name, and each row that has a label or a formula, in blueprint order: its
    sheet, label cell and label (None when it has none), its cell and its formula (None unless a
    formula or mirror cell)."""
    sheets: frozenset
    line_names: tuple    # (name, sheet, cell)
    cells: tuple         # (sheet, label cell, label, cell, formula)

    @classmethod
    def of(cls, rows) -> "_StructurePlan":
        cells = []
        for row in rows:
            label = row.get("label") or None
            formula = row["formula"] if row["kind"] in ("formula", "mirror") else None
            if label is not None or formula is not None:
                cells.append((row["sheet"], label_cell(row["cell"]) if label else None, label, row["cell"], formula))
        return cls(frozenset(r["sheet"] for r in rows),
                   tuple((r["name"], r["sheet"], r["cell"]) for r in rows if r.get("name")),
                   tuple(cells))


def _area_text(area: tuple) -> str:
    sheet, (r1, c1), (r2, c2) = area
    first, last = f"{xlsx.col_letters(c1)}{r1}", f"{xlsx.col_letters(c2)}{r2}"
    return f"{sheet}!{first}" + (f":{last}" if last != first else "")


def verify_written_names(package: xlsx.Package, line_names: tuple = ()) -> None:
    """Refuse a model where a defined name a refresh writes through spans other cells than the
    build gave it: each of `line_names` exactly its home cells in the blueprint, the audit block
    its summary cell and the AUDIT_ROWS cells below it, the engine's sensitivity table its axes
    and the grid between them. A widened name would have the refresh write (or blank) cells of
    the analyst's; one WorkbookError sentence instead, before anything is written."""
    where = package.path.name
    homes: dict = {}
    for row in blueprint(package):
        if row.get("name") in line_names:
            homes.setdefault(row["name"], []).append((row["sheet"], *xlsx.split_ref(row["cell"])))
    expected = {}
    for name, cells in homes.items():
        sheets = {c[0] for c in cells}
        rows, cols = [c[1] for c in cells], [c[2] for c in cells]
        if len(sheets) == 1 and (max(rows) - min(rows) + 1) * (max(cols) - min(cols) + 1) == len(cells):
            expected[name] = (sheets.pop(), (min(rows), min(cols)), (max(rows), max(cols)))
    names = package.names
    if AUDIT_SUMMARY in names and AUDIT_ITEMS in names:
        sheet, (r, c), _ = summary = package.name_area(AUDIT_SUMMARY)
        expected[AUDIT_SUMMARY] = (sheet, (r, c), (r, c))
        expected[AUDIT_ITEMS] = (sheet, (r + 1, c), (r + AUDIT_ROWS, c))
        if summary != expected[AUDIT_SUMMARY]:
            _wrong_extent(where, AUDIT_SUMMARY, summary, "one cell")
    if all(n in names for n in (SENSITIVITY_GRID, SENSITIVITY_ROWS, SENSITIVITY_COLS)):
        sheet, (r1, c1), (r2, c2) = axis_rows = package.name_area(SENSITIVITY_ROWS)
        _, (h1, k1), (h2, k2) = axis_cols = package.name_area(SENSITIVITY_COLS)
        if c1 != c2 or h1 != h2 or axis_cols[0] != sheet or r2 - r1 >= 100 or k2 - k1 >= 100:
            _wrong_extent(where, SENSITIVITY_ROWS, axis_rows, f"a column of values beside a row of values ({_area_text(axis_cols)})")
        expected[SENSITIVITY_GRID] = (sheet, (r1, k1), (r2, k2))
    for name, want in expected.items():
        if name in names:
            got = package.name_area(name)
            if got != want:
                _wrong_extent(where, name, got, _area_text(want))


def _wrong_extent(where: str, name: str, got: tuple, want: str):
    raise xlsx.WorkbookError(f"{where}: the defined name {name} spans {_area_text(got)}, not {want} as the template "
                             "made it; restore it (Formulas > Name Manager) before refreshing, a refresh writes through it")
