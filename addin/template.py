"""What makes a file one of our model templates: its version, its blueprint, its structure.

Shared by refresh, check, export and diff, so that every door refuses the same damaged models
with the same sentence.
"""
from __future__ import annotations

import re

from workbook import xlsx
from workbook.layout import BLUEPRINT, TEMPLATE_VERSION

VERSION_PROPERTY, VERSION_NAME = "ER Template Version", "ER_TemplateVersion"
TICKER = "MKT_ticker"


def template_version(package: xlsx.Package) -> str:
    """The template version a workbook carries; WorkbookError if it is not one of ours."""
    version = package.custom.get(VERSION_PROPERTY)
    if version is None and VERSION_NAME in package.names:
        version = package.names[VERSION_NAME].strip('="')
    if version is None or TICKER not in package.names:
        raise xlsx.WorkbookError(f"{package.path.name}: not one of our model templates (no template version); "
                                 "build one with `python -m addin build`")
    return version


def _version_tuple(text: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", text)) or (0,)


def blueprint(package: xlsx.Package) -> list[dict]:
    """The blueprint rows: sheet, cell, kind, key, year, formula."""
    sheet = package.sheets.get(BLUEPRINT)
    if sheet is None:
        return []
    rows: dict = {}
    for ref in sheet.cells:
        row, col = xlsx.split_ref(ref)
        rows.setdefault(row, {})[col] = package.value(BLUEPRINT, ref)
    header = rows.pop(1, {})
    names = [header.get(c) for c in range(1, len(header) + 1)]
    return [{names[c - 1]: (r.get(c) or "") for c in range(1, len(names) + 1)} for _, r in sorted(rows.items())]


def verify_structure(package: xlsx.Package, require_vba: bool = True) -> None:
    """Refuse a model whose structure no longer matches its blueprint: a sheet deleted or
    renamed, a defined name removed, labels moved, text typed where a formula belongs, the VBA
    project removed, or a template from a newer add-in. One WorkbookError sentence otherwise."""
    name = package.path.name
    version = template_version(package)
    if _version_tuple(version) > _version_tuple(TEMPLATE_VERSION):
        raise xlsx.WorkbookError(f"{name}: made by a newer add-in (template {version}, this is {TEMPLATE_VERSION}); upgrade first")
    rows = blueprint(package)
    if not rows:
        raise xlsx.WorkbookError(f"{name}: the template's blueprint sheet is missing; rebuild the template")
    missing = sorted({r["sheet"] for r in rows} - set(package.sheets))
    if missing:
        raise xlsx.WorkbookError(f"{name}: sheet {missing[0]!r} is missing (deleted or renamed); restore it before using this model")
    for needed in ("MKT_ticker", "MKT_price", "MKT_fx_rate", "MKT_price_date", "MKT_refresh_stamp", "MKT_refresh_source"):
        package.name_cells(needed)
    for defined in package.names:
        if defined.startswith(("IS_", "BS_", "CF_", "SUM_", "DRV_", "RAT_", "MKT_", "RTG_", "CHK_")):
            package.name_cells(defined)
    if require_vba and "xl/vbaProject.bin" not in package.members:
        raise xlsx.WorkbookError(f"{name}: the VBA project is missing (saved as .xlsx?); rebuild the template")
    for row in rows:
        label = row.get("label")
        if label:
            r, _ = xlsx.split_ref(row["cell"])
            shown = package.value(row["sheet"], f"A{r}")
            if shown != label:
                raise xlsx.WorkbookError(f"{name}: {row['sheet']}!A{r} reads {shown!r}, the template put {label!r} there "
                                         "(rows or labels moved); the model's cells no longer mean what they did")
        if row["kind"] in ("formula", "mirror"):
            value = package.value(row["sheet"], row["cell"])
            cell = package.sheets[row["sheet"]].cells.get(row["cell"])
            if cell is not None and cell.formula is None and isinstance(value, str) and value.strip():
                raise xlsx.WorkbookError(f"{name}: {row['sheet']}!{row['cell']} holds the text {value[:30]!r} where the "
                                         f"template has ={row['formula'][:60]}; type a number or restore the formula")


