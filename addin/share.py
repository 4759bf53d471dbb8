"""Sharing a model: a values-only copy for readers without Python, and the difference between
two versions of a model."""
from __future__ import annotations

import datetime as dt
import html
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from workbook import xlsx
from workbook.formats import show
from workbook.layout import BLUEPRINT, CONF, COVER
from workbook.spec import LINES
from workbook.xlcalc import evaluate

from .template import blueprint, verify_structure

MACRO_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
PLAIN_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
INJECTION_PREFIXES = ("=", "+", "-", "@")


def neutralise(text: str) -> str:
    """Text that a spreadsheet or CSV reader could take for a formula gets a leading apostrophe."""
    return "'" + text if isinstance(text, str) and text.startswith(INJECTION_PREFIXES) else text


def _values_only_sheet(sheet: xlsx.Sheet, package: xlsx.Package, values: dict) -> str:
    """The sheet XML with every formula replaced by its value (and text made inert)."""
    changes = {}
    for ref, cell in sheet.cells.items():
        if cell.formula is not None:
            value = values.get((sheet.name, ref), package.value(sheet.name, ref))
        elif cell.attrs.get("t") == "inlineStr":
            value = cell.inline
        else:
            continue
        changes[ref] = neutralise(value) if isinstance(value, str) else value
    return xlsx.rewrite_sheet(sheet, changes, typed=frozenset(changes))


def _note_row(xml: str, text: str) -> str:
    rows = [int(r) for r in re.findall(r'<row r="(\d+)"', xml)]
    row = (max(rows) if rows else 0) + 2
    cell = f'<row r="{row}"><c r="A{row}" t="inlineStr"><is><t>{html.escape(text, quote=False)}</t></is></c></row>'
    return xml.replace("</sheetData>", cell + "</sheetData>", 1)


def _strip_legacy_drawing(package: xlsx.Package, sheet: xlsx.Sheet, xml: str, replaced: dict, dropped: set) -> str:
    """Remove the sheet's VML drawing (the Refresh button: there is no macro to run)."""
    match = re.search(r'<legacyDrawing r:id="([^"]+)"/>', xml)
    if not match:
        return xml
    rels_name = sheet.path.replace("worksheets/", "worksheets/_rels/") + ".rels"
    rels = package.members[rels_name].decode("utf-8")
    target = re.search(rf'<Relationship Id="{match[1]}"[^>]*Target="([^"]+)"', rels)
    if target:
        dropped.add(os.path.normpath(os.path.join(os.path.dirname(sheet.path), target[1])).replace(os.sep, "/"))
    replaced[rels_name] = re.sub(rf'<Relationship Id="{match[1]}"[^>]*/>', "", rels).encode("utf-8")
    return xml.replace(match.group(0), "")


def export(model: str | Path, output: str | Path, now: dt.datetime | None = None) -> Path:
    """Write a values-only .xlsx of `model`: no VBA, no formulas; formats, labels, charts kept;
    the cover notes the source model and the time. Written through a temporary file."""
    model, output = Path(model), Path(output)
    if output.suffix.lower() != ".xlsx":
        raise xlsx.WorkbookError(f"{output}: a values-only copy has no macros, so its name must end in .xlsx")
    package = xlsx.read(model)
    verify_structure(package)
    values = evaluate(package)
    now = now or dt.datetime.now().replace(microsecond=0)
    replaced, dropped = {}, {"xl/vbaProject.bin"}
    for name, sheet in package.sheets.items():
        xml = _values_only_sheet(sheet, package, values)
        if name == COVER:
            xml = _note_row(xml, f"数值版（无公式、无宏）导出自 {model.name}，{now:%Y-%m-%d %H:%M}。"
                                 f" Values-only copy of {model.name}, exported {now:%Y-%m-%d %H:%M}.")
            xml = _strip_legacy_drawing(package, sheet, xml, replaced, dropped)
        replaced[sheet.path] = xml.encode("utf-8")
    workbook = package.members["xl/workbook.xml"].decode("utf-8")
    for hidden in (CONF, BLUEPRINT):
        def hide(match):
            return re.sub(r' state="\w+"', "", match.group(1)) + ' state="hidden"/>'
        workbook = re.sub(rf'(<sheet name="{re.escape(hidden)}"[^>]*?)/>', hide, workbook)
    replaced["xl/workbook.xml"] = workbook.encode("utf-8")
    rels = package.members["xl/_rels/workbook.xml.rels"].decode("utf-8")
    replaced["xl/_rels/workbook.xml.rels"] = re.sub(r'<Relationship [^>]*Target="vbaProject.bin"[^>]*/>', "", rels).encode("utf-8")
    types = package.members["[Content_Types].xml"].decode("utf-8").replace(MACRO_MAIN, PLAIN_MAIN)
    types = re.sub(r'<Override PartName="/xl/vbaProject.bin"[^>]*/>', "", types)
    types = re.sub(r'<Default Extension="bin"[^>]*/>', "", types)
    replaced["[Content_Types].xml"] = types.encode("utf-8")
    if "xl/sharedStrings.xml" in package.members:
        strings = package.members["xl/sharedStrings.xml"].decode("utf-8")
        strings = re.sub(r"(<t(?: [^>]*)?>)([=+\-@])", r"\1'\2", strings)
        replaced["xl/sharedStrings.xml"] = strings.encode("utf-8")

    output.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(fd)
    try:
        kept = xlsx.Package(package.path, {k: v for k, v in package.members.items() if k not in dropped},
                            [i for i in package.infos if i.filename not in dropped], package.sheets, package.names,
                            package.shared, package.custom)
        xlsx.write(kept, replaced, Path(temp))
        os.replace(temp, output)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return output


# ------------------------------------------------------------------------------------------------
# diff
# ------------------------------------------------------------------------------------------------
OUTPUT_LINES = ("revenue", "attributable_profit", "non_ifrs_net_profit", "eps", "non_ifrs_eps", "adjusted_pe", "pe",
                "computed_rating")
LINE_FORMATS = {line.key: line.fmt for line in LINES}


@dataclass
class Diff:
    inputs: list = field(default_factory=list)    # (label, key, year, old, new)
    outputs: list = field(default_factory=list)   # (label, key, year, old, new)
    layout_changed: bool = False


def _label(package: xlsx.Package, sheet: str, ref: str, key: str) -> str:
    row = xlsx.split_ref(ref)[0]
    label = package.value(sheet, f"A{row}")
    return f"{sheet} {label}" if isinstance(label, str) else f"{sheet} {key}"


def diff(old_path: str | Path, new_path: str | Path) -> Diff:
    old, new = xlsx.read(old_path), xlsx.read(new_path)
    verify_structure(old)
    verify_structure(new)
    old_map = {(r["sheet"], r["cell"]): r for r in blueprint(old)}
    new_map = {(r["sheet"], r["cell"]): r for r in blueprint(new)}
    result = Diff(layout_changed=set(old_map) != set(new_map))
    old_values, new_values = evaluate(old), evaluate(new)

    def current(package, values, sheet, ref):
        return values.get((sheet, ref), package.value(sheet, ref))

    for key in sorted(set(old_map) & set(new_map), key=lambda k: (k[0], xlsx.split_ref(k[1]))):
        row = new_map[key]
        old_cell = old.sheets[key[0]].cells.get(key[1])
        new_cell = new.sheets[key[0]].cells.get(key[1])
        overridden = any(c is not None and c.formula is None for c in (old_cell, new_cell)) and row["kind"] != "input"
        if row["kind"] == "input" or overridden:
            a, b = current(old, old_values, *key), current(new, new_values, *key)
            if a != b:
                result.inputs.append((_label(new, *key, row["key"]), row["key"], row["year"], a, b))
        if row["key"] in OUTPUT_LINES and row["kind"] != "mirror":
            a, b = current(old, old_values, *key), current(new, new_values, *key)
            if a != b and not (isinstance(a, float) and isinstance(b, float) and abs(a - b) < 1e-9):
                result.outputs.append((_label(new, *key, row["key"]), row["key"], row["year"], a, b))
    return result


def render_diff(result: Diff) -> str:
    def fmt(key, value):
        if key == "price_date" and isinstance(value, float):
            return xlsx.from_excel_date(value).isoformat()
        if isinstance(value, float) and key in LINE_FORMATS:
            return show(value, LINE_FORMATS[key])
        return "—" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))

    lines = [f"Inputs changed: {len(result.inputs)}"]
    lines += [f"  {label} {year}: {fmt(key, a)} -> {fmt(key, b)}" for label, key, year, a, b in result.inputs]
    lines.append(f"Outputs moved: {len(result.outputs)}")
    for label, key, year, a, b in result.outputs:
        change = ""
        if isinstance(a, float) and isinstance(b, float) and a:
            change = f" ({(b / a - 1) * 100:+.1f}%)"
        lines.append(f"  {label} {year}: {fmt(key, a)} -> {fmt(key, b)}{change}")
    if result.layout_changed:
        lines.append("note: the two files were built from different templates; only cells both have are compared")
    return "\n".join(lines)
