"""Sharing a model: a values-only copy for readers without Python, and the difference between
two versions of a model."""
from __future__ import annotations

import datetime as dt
import html
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from workbook import calcstate, xlsx
from workbook.files import atomic_path, check_output, output_file
from workbook.formats import wrap_text
from workbook.formats import show
from udfs.errors import DataError
from workbook.layout import BLUEPRINT, CONF, COVER, LABEL_COL, SOURCE, cell_name, label_cell
from workbook.spec import LINES, model_lines
from workbook.xlcalc import evaluate

from .audit import stored_layout
from .template import TICKER, blueprint, verify_structure

MACRO_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
PLAIN_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
VBA_TYPES = ("application/vnd.ms-office.vbaProject", "application/vnd.ms-office.vbaProjectSignature",
             "application/vnd.ms-office.vbaProjectSignatureAgile", "application/vnd.ms-office.vbaProjectSignatureV3")
# Sheets that carry the model's machinery, not its figures: a values-only copy leaves them out.
MACHINERY_SHEETS = (CONF, BLUEPRINT, SOURCE)
# Relationships of a sheet to the parts of a form button (VML shape, control properties).
BUTTON_RELATIONSHIPS = ("/vmlDrawing", "/ctrlProp")
# Text that opens a formula when a spreadsheet or CSV reader meets it at the start of a cell.
_FORMULA_START = re.compile(r"^[\s]*[=@]")
# `+` or `-` opens a formula that can do harm only when a call, a reference to another sheet or
# program, or a DDE link follows: `-HYPERLINK(...)`, `+cmd|' /C calc'!A0`.
_SIGNED_CALL = re.compile(r"^[\s]*[+\-].*[(!|]", re.S)


def needs_apostrophe(text) -> bool:
    """Whether a reader could take `text` for a formula that does something: it starts (after any
    leading whitespace, which CSV readers drop) with `=` or `@`, or with `+`/`-` and holds a call
    `(`, a reference `!` or a DDE pipe `|`. A signed number or range such as `-5% ~ 5%` or
    `-15% ~ -5%` stays as it is: even read as a formula it is only arithmetic."""
    return isinstance(text, str) and bool(_FORMULA_START.match(text) or _SIGNED_CALL.match(text))


def neutralise(text):
    """Text a reader could take for a formula (`needs_apostrophe`) gets a leading apostrophe, so it
    stays text in Excel, in a CSV saved from it, and in any other reader; other values unchanged."""
    return "'" + text if needs_apostrophe(text) else text


def button_captions(package: xlsx.Package, parts: set) -> list[str]:
    """The captions of the form buttons in these VML parts (the text inside each v:textbox)."""
    captions = []
    for part in parts:
        data = package.members.get(part, b"")
        pos = 0
        while True:
            start = data.find(b"<v:textbox", pos)
            end = data.find(b"</v:textbox>", start) if start >= 0 else -1
            if start < 0 or end < 0:
                break
            text = re.sub(rb"<[^>]*>", b"", data[start:end]).decode("utf-8", "replace")
            text = html.unescape(" ".join(text.split()))
            if text:
                captions.append(text)
            pos = end
    return captions


def _sheet_rels(package: xlsx.Package, sheet: xlsx.Sheet) -> dict:
    name = xlsx.rels_name(sheet.path)
    return xlsx.parse_rels(package.members[name], name) if name in package.members else {}


def strip_buttons(package: xlsx.Package, sheet: xlsx.Sheet, xml: bytes, dropped: set) -> bytes:
    """The sheet without its form buttons (there is no macro left to run): the legacyDrawing and
    the controls, their parts added to `dropped`. A VML part that also draws comments is kept."""
    rels = _sheet_rels(package, sheet)
    if any(kind.endswith("/comments") for _, kind, _ in rels.values()):
        return xml
    button_ids = {rid for rid, (_, kind, _) in rels.items() if kind.endswith(BUTTON_RELATIONSHIPS)}
    if not button_ids:
        return xml
    for rid in button_ids:
        dropped.add(xlsx.part_target(sheet.path, rels[rid][0]))
    xml = xlsx.edit_elements(xml, "legacyDrawing", lambda attrs, element: b"" if attrs.get("id") in button_ids else None)
    # Excel and LibreOffice wrap <controls> in mc:AlternateContent for Excel 2010+; the wrapper goes with it.
    xml = xlsx.edit_elements(xml, "AlternateContent", lambda attrs, element: b"" if b"controls" in element else None)
    return xlsx.edit_elements(xml, "controls", lambda attrs, element: b"")


def _values_only_sheet(sheet: xlsx.Sheet, package: xlsx.Package, values: dict, blank: set, note: str | None) -> bytes:
    """The sheet XML with every formula replaced by its value, text made inert, the cells in
    `blank` emptied (their style kept) and, if given, a note two rows below the last one."""
    changes = {}
    for ref, cell in sheet.cells.items():
        if ref in blank:
            changes[ref] = None
        elif cell.formula is not None:
            value = values.get((sheet.name, ref), package.value(sheet.name, ref))
            changes[ref] = neutralise(value)
        elif cell.attrs.get("t") == "inlineStr":
            changes[ref] = neutralise(cell.inline)
    if note is not None:
        changes.update(note_cells(sheet, note))
    return xlsx.rewrite_sheet(sheet, changes, typed=frozenset(changes)).encode("utf-8")


def note_cell(sheet: xlsx.Sheet) -> str:
    """Where a copy's note goes: the label column, two rows below the sheet's last."""
    return cell_name(sheet.max_row + 1, LABEL_COL)  # max_row counts from 1, cell_name from 0


NOTE_WIDTH = 100  # columns a line of a copy's cover note may take: it prints inside the cover's page


def note_cells(sheet: xlsx.Sheet, note: str) -> dict[str, str]:
    """The note as a block of lines down the label column from `note_cell`, each short enough to
    stay within the printed cover (one long cell would stretch the page to a thumbnail)."""
    row, col = xlsx.split_ref(note_cell(sheet))
    return {f"{xlsx.col_letters(col)}{row + i}": line for i, line in enumerate(wrap_text(note, NOTE_WIDTH))}


def _first_qname(element: bytes) -> str:
    return re.match(rb"<([^\s/>]+)", element).group(1).decode()


def clean_shared_strings(package: xlsx.Package, used: set) -> tuple[str, bytes] | None:
    """sharedStrings.xml with strings no kept cell uses emptied (the blueprint's formulas do not
    travel in the copy) and formula-like strings given their apostrophe; indexes unchanged."""
    part = next((p for p in package.members if p.lower() == "xl/sharedstrings.xml"), None)
    if part is None:
        return None
    counter = iter(range(len(package.shared)))

    def edit(attrs, element):
        index = next(counter, None)
        if index is None:
            return None
        qname = _first_qname(element)
        p = qname[: qname.index(":") + 1] if ":" in qname else ""
        text = package.shared[index]
        if index not in used:
            return f"<{qname}><{p}t/></{qname}>".encode()
        if needs_apostrophe(text):
            return f"<{qname}><{p}t>{xlsx.escape_data(neutralise(text))}</{p}t></{qname}>".encode("utf-8")
        return None
    return part, xlsx.edit_elements(package.members[part], "si", edit)


def used_strings(sheets) -> set:
    used = set()
    for sheet in sheets:
        for cell in sheet.cells.values():
            if cell.attrs.get("t") == "s" and cell.raw_value is not None and cell.raw_value.strip().isdigit():
                used.add(int(cell.raw_value))
    return used


def without_macros(package: xlsx.Package) -> tuple[dict, set]:
    """(replaced, dropped) parts that take the calculation chain, the refresh's record (which
    describes formulas such a copy does not keep) and the VBA project (with its relationships)
    out of `package`: the start of every copy made for readers without macros."""
    replaced, dropped = xlsx.without_calc_chain(package)
    dropped |= calcstate.record_parts(package)
    defaults, overrides = xlsx.content_types(package)
    for part in package.members:
        kind = overrides.get(part) or defaults.get(part.rsplit(".", 1)[-1].lower(), "")
        if kind in VBA_TYPES:
            dropped.update({part, xlsx.rels_name(part)})
    return replaced, dropped


def export(model: str | Path, output: str | Path, now: dt.datetime | None = None, native: bool = False,
           force: bool = False) -> Path:
    """Write a values-only .xlsx of `model` for readers without Python (with `native`, the
    native-formula live edition instead: `addin.native.export_native`): formats, labels and the
    chart kept; formulas replaced by their values; no VBA, no form button (nor the cover's line
    telling the reader to click it), no calculation chain, no blueprint or xlwings.conf sheet; text
    that a reader could run as a formula made inert (`needs_apostrophe`); a note of the source
    model and the time on the cover. Written as every command's output is (workbook.files
    `output_file`): never over the model itself, nor over a file open in a spreadsheet program,
    nor over an existing one without `force` (then kept as a .bak); refused before any work."""
    if native:
        from .native import export_native  # it builds on this module's package surgery
        return export_native(model, output, now, force=force)
    model, output = Path(model), Path(output)
    if output.suffix.lower() != ".xlsx":
        raise xlsx.WorkbookError(f"{output}: a values-only copy has no macros, so its name must end in .xlsx")
    check_output(output, force, sources=(model,))
    package = xlsx.read(model)
    verify_structure(package)
    values = evaluate(package)
    now = now or dt.datetime.now().replace(microsecond=0)
    note = (f"数值版（无公式、无宏）导出自 {model.name}，{now:%Y-%m-%d %H:%M}。"
            f" Values-only copy of {model.name}, exported {now:%Y-%m-%d %H:%M}.")

    replaced, dropped = without_macros(package)
    removed = [name for name in MACHINERY_SHEETS if name in package.sheets]
    for name in removed:
        sheet = package.sheets[name]
        dropped.update({sheet.path, xlsx.rels_name(sheet.path)})
    kept = [sheet for name, sheet in package.sheets.items() if name not in removed]

    button_parts: set = set()
    stripped = {sheet.name: strip_buttons(package, sheet, sheet.data(), button_parts) for sheet in kept}
    captions = button_captions(package, {p for p in button_parts if p.lower().endswith(".vml")})
    dropped |= button_parts
    for sheet in kept:
        # a line that tells the reader to click a button this copy no longer has goes with it
        blank = {ref for ref, cell in sheet.cells.items() if cell.formula is None and captions
                 and isinstance(package.value(sheet.name, ref), str)
                 and any(c in package.value(sheet.name, ref) for c in captions)}
        source = sheet if stripped[sheet.name] == sheet.data() else xlsx.parse_sheet(sheet.name, sheet.path, stripped[sheet.name])
        replaced[sheet.path] = _values_only_sheet(source, package, values, blank, note if sheet.name == COVER else None)

    strings = clean_shared_strings(package, used_strings(kept))
    if strings is not None:
        replaced[strings[0]] = strings[1]
    replaced["xl/workbook.xml"] = workbook_without(package, removed)
    replaced.update(references_without(package, dropped, replaced))

    with output_file(output, force, sources=(model,)) as temp:
        xlsx.write(package, replaced, temp, dropped)
    return output


def workbook_without(package: xlsx.Package, removed: list) -> bytes:
    """workbook.xml without the removed sheets, the names that point into them, and with the
    sheet-local names of later sheets renumbered."""
    order = list(package.sheets)
    gone = {order.index(name) for name in removed}
    renumber = {str(i): str(i - sum(1 for g in gone if g < i)) for i in range(len(order)) if i not in gone}
    mentions = [f"'{name.replace(chr(39), chr(39) * 2)}'!" for name in removed] + [f"{name}!" for name in removed]
    data = package.members["xl/workbook.xml"]
    data = xlsx.edit_elements(data, "sheet", lambda attrs, element: b"" if attrs.get("name") in removed else None)

    def name(attrs, element):
        local = attrs.get("localSheetId")
        text = element.decode("utf-8")
        if (local is not None and int(local) in gone) or any(m in text for m in mentions):
            return b""
        if local is not None and renumber.get(local) != local:
            return re.sub(r'localSheetId="\d+"', f'localSheetId="{renumber[local]}"', text, count=1).encode("utf-8")
        return None
    data = xlsx.edit_elements(data, "definedName", name)
    # a workbook whose every name was removed may not keep an empty <definedNames/>
    return xlsx.edit_elements(data, "definedNames", lambda attrs, element: b"" if element.count(b"definedName") <= 2 else None)


def references_without(package: xlsx.Package, dropped: set, replaced: dict) -> dict:
    """Every relationships part and the content types without a mention of a dropped part, and
    the main part declared as a plain (macro-free) workbook."""
    out = {}
    for part in package.members:
        if part in dropped or not part.endswith(".rels"):
            continue
        folder = posixpath.dirname(posixpath.dirname(part))
        source = posixpath.join(folder, posixpath.basename(part)[: -len(".rels")])
        data = replaced.get(part, package.members[part])
        rels = xlsx.parse_rels(data, part)
        gone = {rid for rid, (target, _, mode) in rels.items()
                if mode != "External" and xlsx.part_target(source if folder else "", target) in dropped}
        if gone:
            out[part] = xlsx.remove_elements(data, "Relationship", lambda a: a.get("Id") in gone)
    types = replaced.get(xlsx.CONTENT_TYPES, package.members[xlsx.CONTENT_TYPES])
    types = xlsx.remove_elements(types, "Override", lambda a: a.get("PartName", "").lstrip("/") in dropped)
    kept_bins = [p for p in package.members if p not in dropped and p.lower().endswith(".bin")]
    if not kept_bins:
        types = xlsx.remove_elements(types, "Default", lambda a: a.get("ContentType") in VBA_TYPES)
    out[xlsx.CONTENT_TYPES] = types.replace(MACRO_MAIN.encode(), PLAIN_MAIN.encode())
    return out


# ------------------------------------------------------------------------------------------------
# diff
# ------------------------------------------------------------------------------------------------
# What a diff reports as outputs: the layout's summary table, the lines these roles name in the
# model's layout (revenue, the profit lines, EPS), and the rating block's verdict.
OUTPUT_ROLES = ("revenue", "net_profit", "attributable_profit", "recurring_profit", "eps", "recurring_eps")
RATING_OUTPUTS = ("target_price", "computed_rating")   # lines of workbook/data/common_lines.toml
LINE_FORMATS = {line.key: line.fmt for line in LINES}


class DiffError(DataError):
    """Two files a diff cannot compare; the message is one line."""


@dataclass
class Diff:
    inputs: list = field(default_factory=list)    # (label, key, year, old, new)
    outputs: list = field(default_factory=list)   # (label, key, year, old, new)
    layout_changed: bool = False
    only_old: list = field(default_factory=list)  # years only the old model has (a year rolled into the reported ones)
    only_new: list = field(default_factory=list)  # years only the new model has (a year a roll added)
    formats: dict = field(default_factory=dict)   # line key -> number format, from the models' layouts


def _label(package: xlsx.Package, sheet: str, ref: str, key: str) -> str:
    label = package.value(sheet, label_cell(ref))
    return f"{sheet} {label}" if isinstance(label, str) else f"{sheet} {key}"


def _by_meaning(package: xlsx.Package) -> dict:
    """(sheet, line key, year) -> blueprint row: a cell by what it holds, so that two models whose
    year windows differ (one rolled forward) are compared year by year, not cell by cell."""
    out: dict = {}
    for row in blueprint(package):
        out.setdefault((row["sheet"], row["key"], row["year"]), row)
    return out


def _ticker(package: xlsx.Package) -> str:
    value = package.value(*package.name_cells(TICKER)[0])
    return str(value).strip() if value is not None else ""


def diff(old_path: str | Path, new_path: str | Path) -> Diff:
    """What changed between two versions of one company's model: every input (and number typed
    over a formula) that differs, and how the layout's summary lines and the rating moved. Cells
    are matched by sheet, line and year, so a driver keeps its year when the window moved."""
    old, new = xlsx.read(old_path), xlsx.read(new_path)
    verify_structure(old)
    verify_structure(new)
    if _ticker(old).upper() != _ticker(new).upper():
        raise DiffError(f"{old.path.name} is {_ticker(old) or 'a model without a ticker'} and {new.path.name} is "
                        f"{_ticker(new) or 'a model without a ticker'}: diff compares two versions of one company's model")
    old_map, new_map = _by_meaning(old), _by_meaning(new)
    layouts = [stored_layout(old), stored_layout(new)]
    outputs = {key for layout in layouts for key, _label_text in layout.summary_rows} | set(RATING_OUTPUTS)
    outputs |= {layout.roles[role] for layout in layouts for role in OUTPUT_ROLES if role in layout.roles}
    old_years = {year for (_, _, year) in old_map if year}
    new_years = {year for (_, _, year) in new_map if year}
    result = Diff(only_old=[y for y in _in_order(old_map) if y not in new_years],
                  only_new=[y for y in _in_order(new_map) if y not in old_years])
    result.layout_changed = ({(s, k) for s, k, _ in old_map} != {(s, k) for s, k, _ in new_map})
    result.formats = {line.key: line.fmt for layout in layouts for line in model_lines(layout)}
    old_values, new_values = evaluate(old), evaluate(new)

    def current(package, values, sheet, ref):
        return values.get((sheet, ref), package.value(sheet, ref))

    def moved(a, b) -> bool:
        return a != b and not (isinstance(a, float) and isinstance(b, float) and abs(a - b) < 1e-9)

    for meaning in sorted(set(old_map) & set(new_map), key=lambda m: (m[0], xlsx.split_ref(new_map[m]["cell"]))):
        before, after = old_map[meaning], new_map[meaning]
        sheet, key, year = meaning
        old_cell = old.sheets[sheet].cells.get(before["cell"])
        new_cell = new.sheets[sheet].cells.get(after["cell"])
        overridden = after["kind"] != "input" and any(c is not None and c.formula is None for c in (old_cell, new_cell))
        a = current(old, old_values, sheet, before["cell"])
        b = current(new, new_values, sheet, after["cell"])
        if (after["kind"] == "input" or overridden) and moved(a, b):
            result.inputs.append((_label(new, sheet, after["cell"], key), key, year, a, b))
        if key in outputs and after["kind"] != "mirror" and moved(a, b):
            result.outputs.append((_label(new, sheet, after["cell"], key), key, year, a, b))
    return result


def _in_order(rows: dict) -> list[str]:
    """The year labels of a model's blueprint, earliest first."""
    years = {year for (_, _, year) in rows if year}
    return sorted(years, key=lambda label: (re.sub(r"\D", "", label), label))


def _where(label: str, year: str) -> str:
    return f"{label} {year}" if year else label


def render_diff(result: Diff) -> str:
    formats = result.formats or LINE_FORMATS

    def fmt(key, value):
        if key == "price_date" and isinstance(value, float):
            return xlsx.from_excel_date(value).isoformat()
        if isinstance(value, float) and key in formats:
            return show(value, formats[key])
        return "—" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))

    lines = []
    if result.only_old or result.only_new:
        lines.append(f"Years: only in the old model {', '.join(result.only_old) or '—'}; only in the new model "
                     f"{', '.join(result.only_new) or '—'} (compared year by year where both have the year)")
    lines.append(f"Inputs changed: {len(result.inputs)}")
    lines += [f"  {_where(label, year)}: {fmt(key, a)} -> {fmt(key, b)}" for label, key, year, a, b in result.inputs]
    lines.append(f"Outputs moved: {len(result.outputs)}")
    for label, key, year, a, b in result.outputs:
        change = ""
        if isinstance(a, float) and isinstance(b, float) and a:
            change = f" ({(b / a - 1) * 100:+.1f}%)"
        lines.append(f"  {_where(label, year)}: {fmt(key, a)} -> {fmt(key, b)}{change}")
    if result.layout_changed:
        lines.append("note: the two files were built from different templates; only lines both have are compared")
    return "\n".join(lines)
