"""The zip/XML reader: a real parser (any attribute order, namespace prefixes, extension
attributes, inline and rich strings, shared formulas), hostile files refused in one sentence and
in linear time, names bounded by the used range, and every write escaped once."""
from __future__ import annotations

import os
import struct
import sys
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from conftest import ROOT
from workbook import xlsx

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"

def _audit_ref(name: str) -> str:
    """An audit-block name as the template defines it (its rows move when checks are added)."""
    return xlsx.read(TEMPLATE).names[name]
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _sheet(body: str, root_attrs: str = f'xmlns="{MAIN}"') -> xlsx.Sheet:
    return xlsx.parse_sheet("S", "xl/worksheets/sheet1.xml", f"<worksheet {root_attrs}><sheetData>{body}</sheetData></worksheet>")


def test_attribute_order_prefixes_and_extension_attributes():
    sheet = _sheet('<x:row r="1" x14ac:dyDescent="0.25"><x:c s="3" x14ac:foo="1" r="B1"><x:v>2.5</x:v></x:c></x:row>',
                   f'xmlns:x="{MAIN}" xmlns:x14ac="http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac"')
    cell = sheet.cells["B1"]
    assert (cell.attrs["s"], cell.raw_value, cell.prefix) == ("3", "2.5", "x")


def test_inline_rich_and_phonetic_text():
    sheet = _sheet('<row r="1"><c r="A1" t="inlineStr"><is><r><t>小</t></r><r><rPr><b/></rPr><t xml:space="preserve">米 </t>'
                   '</r><rPh sb="0" eb="1"><t>xiao</t></rPh></is></c><c r="B1" t="str"><f>A1</f><v>bad_x000B_x</v></c></row>')
    package = xlsx.Package(Path("t.xlsx"), {}, [], {"S": sheet}, {}, [], {})
    assert package.value("S", "A1") == "小米 "
    assert package.value("S", "B1") == "bad\x0bx"


def test_shared_formulas_expand_relative_references_only():
    sheet = _sheet('<row r="5"><c r="C5"><f t="shared" ref="C5:E5" si="0">B5*$A$1+\'x y\'!B5&amp;"B5"</f><v>1</v></c>'
                   '<c r="D5"><f t="shared" si="0"/><v>2</v></c><c r="E5"><f t="shared" si="0"/></c></row>')
    assert sheet.cells["D5"].formula == "C5*$A$1+'x y'!C5&\"B5\""      # text in quotes never moves
    assert sheet.cells["E5"].formula == "D5*$A$1+'x y'!D5&\"B5\""


@pytest.mark.parametrize("text", ["plain", "bad\x0bsource", "a\x00b\x1fc\rd", "_x0041_ literal", "<&>\"'", "tab\tnl\n"])
def test_every_write_escapes_once_and_reads_back(text):
    escaped = xlsx.escape_data(text)
    parsed = etree.fromstring(f"<t>{escaped}</t>".encode("utf-8"))   # well-formed for lxml
    assert xlsx.unescape_data(parsed.text) == text


def test_rewritten_cell_with_control_characters_is_well_formed_and_reads_back(tmp_path):
    package = xlsx.read(TEMPLATE)
    cell = package.name_cells("MKT_refresh_source")[0]
    out = tmp_path / "m.xlsm"
    xlsx.type_values(package, {cell: "bad\x0bsource\x01"}, out)
    written = xlsx.read(out)
    assert written.value(*cell) == "bad\x0bsource\x01"
    with zipfile.ZipFile(out) as z:
        etree.fromstring(z.read(written.sheets[cell[0]].path))


def _edited(tmp_path: Path, name: str, edit=None, drop=(), flags=None, method=zipfile.ZIP_DEFLATED) -> Path:
    target = tmp_path / name
    with zipfile.ZipFile(TEMPLATE) as z, zipfile.ZipFile(target, "w", method) as out:
        for info in z.infolist():
            if info.filename not in drop:
                data = z.read(info.filename)
                out.writestr(info.filename, edit(info.filename, data) if edit else data)
    if flags:
        _patch_headers(target, *flags)
    return target


def _patch_headers(path: Path, flag_bits: int, method: int | None) -> None:
    """Set the general-purpose flags (and compression method) of every entry, local and central."""
    data = bytearray(path.read_bytes())
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        pos = data.find(signature)
        while pos >= 0:
            struct.pack_into("<H", data, pos + flag_at, struct.unpack_from("<H", data, pos + flag_at)[0] | flag_bits)
            if method is not None:
                struct.pack_into("<H", data, pos + method_at, method)
            pos = data.find(signature, pos + 4)
    path.write_bytes(bytes(data))


def _sheet_part(name="校验"):
    return xlsx.read(TEMPLATE).sheets[name].path


@pytest.mark.parametrize("case,message", [
    ("encrypted", "encrypted"),
    ("deflate64", "compression method 9"),
    ("aes", "compression method 99"),
    ("no_shared_strings", "shared string"),
    ("no_content_types", "[Content_Types].xml"),
    ("doctype", "DOCTYPE"),
    ("name_outside_sheet", "points outside the sheet"),
])
def test_damaged_packages_are_one_sentence(tmp_path, case, message):
    checks = xlsx.read(TEMPLATE).sheets["校验"].path
    path = {
        "encrypted": lambda: _edited(tmp_path, "e.xlsm", flags=(0x1, None)),
        "deflate64": lambda: _edited(tmp_path, "d.xlsm", flags=(0, 9)),
        "aes": lambda: _edited(tmp_path, "a.xlsm", flags=(0, 99)),
        "no_shared_strings": lambda: _edited(tmp_path, "s.xlsm", drop=("xl/sharedStrings.xml",)),
        "no_content_types": lambda: _edited(tmp_path, "c.xlsm", drop=("[Content_Types].xml",)),
        "doctype": lambda: _edited(tmp_path, "t.xlsm", lambda n, b: b.replace(
            b"?>", b'?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>', 1) if n == "xl/styles.xml" else b),
        "name_outside_sheet": lambda: _edited(tmp_path, "n.xlsm", lambda n, b: b.replace(
            (_audit_ref("AUD_summary") + "<").encode(), (_audit_ref("AUD_summary").replace("$B$", "$XFE$") + "<").encode()) if n == "xl/workbook.xml" else b),
    }[case]()
    with pytest.raises(xlsx.WorkbookError, match=message.replace("[", r"\[").replace("]", r"\]")) as caught:
        package = xlsx.read(path)
        for sheet in package.sheets:                       # every cell's value, every name
            for ref in package.sheets[sheet].cells:
                package.value(sheet, ref)
        for name in package.names:
            if name.startswith("AUD_"):
                package.name_cells(name)
    assert "\n" not in str(caught.value)
    assert checks


def _python_steps(action) -> int:
    """How many Python calls, lines and returns `action()` runs (an exception it raises is its
    answer, and ends the count): a measure of work that, unlike a stopwatch, is the same on every
    machine and under any load."""
    steps = 0

    def count(frame, event, arg):
        nonlocal steps
        steps += 1
        return count
    sys.settrace(count)
    try:
        action()
    except xlsx.WorkbookError:
        pass
    finally:
        sys.settrace(None)
    return steps


UNCLOSED = {   # the tag left open, the part it goes into (None: the 校验 sheet), after which element, its parser
    "c": ('<c r="A1" t="s">', None, b"<sheetData>", lambda part, data: xlsx.parse_sheet("校验", part, data)),
    "si": ("<si><t>x", "xl/sharedStrings.xml", b"<sst", lambda part, data: xlsx._parse_shared_strings(data, part)),
    "definedName": ('<definedName name="x">', "xl/workbook.xml", b"<definedNames>",
                    lambda part, data: xlsx._parse_workbook(data, part)),
}


@pytest.mark.parametrize("kind", list(UNCLOSED))
def test_unclosed_tags_are_refused_in_linear_time(tmp_path, kind):
    """Thousands of unclosed tags are refused in one sentence, and the work grows linearly with
    them: counted in Python steps, 18,000 more tags cost exactly 9 times what 2,000 more cost (a
    reader that rescanned what it had read would cost ~30 times as much)."""
    tag, part, anchor, parse = UNCLOSED[kind]
    part = part or _sheet_part()

    def edited(count):
        def edit(name, data):
            if name != part:
                return data
            at = data.index(anchor)
            at = data.index(b">", at) + 1
            return data[:at] + tag.encode() * count + data[at:]
        return _edited(tmp_path, f"{kind}{count}.xlsm", edit, method=zipfile.ZIP_STORED)  # past the zip-bomb guard

    steps = {}
    for count in (2_000, 4_000, 20_000):
        path = edited(count)
        with pytest.raises(xlsx.WorkbookError, match="not well-formed"):
            xlsx.read(path)
        with zipfile.ZipFile(path) as z:
            data = z.read(part)
        with pytest.raises(xlsx.WorkbookError, match="not well-formed"):
            parse(part, data)
        steps[count] = _python_steps(lambda: parse(part, data))
    assert steps[20_000] - steps[2_000] <= 9 * (steps[4_000] - steps[2_000]), steps


def test_a_name_over_the_whole_sheet_is_bounded_by_the_used_range(tmp_path):
    items = _audit_ref("AUD_items")
    first = items.split(":")[0]
    path = _edited(tmp_path, "wide.xlsm", lambda n, b: b.replace(
        (items + "<").encode(), (first + ":$XFD$1048576<").encode()) if n == "xl/workbook.xml" else b)
    package = xlsx.read(path)
    cells = package.name_cells("AUD_items")
    max_row, max_col = package.used_range("校验")
    assert len(cells) <= max_row * max_col and ("校验", first.split("!")[1].replace("$", "")) in cells
    # The work of a name ending at the used range's corner (and a few steps of clamping), not 17 billion cells' worth.
    package.names["AUD_bounded"] = f"{first}:${xlsx.col_letters(max_col)}${max_row}"
    assert package.name_cells("AUD_bounded") == cells
    bounded = _python_steps(lambda: package.name_cells("AUD_bounded"))
    assert _python_steps(lambda: package.name_cells("AUD_items")) <= bounded + 50


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_special_files_are_refused_before_reading(tmp_path):
    link = tmp_path / "zero.xlsm"
    link.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.xlsm"
    os.mkfifo(fifo)
    for path in (link, fifo):
        with pytest.raises(xlsx.WorkbookError, match="not a regular file"):
            xlsx.read(path)


def test_refresh_style_rewrite_keeps_every_other_byte(tmp_path):
    package = xlsx.read(TEMPLATE)
    sheet, ref = package.name_cells("MKT_price")[0]
    xml = xlsx.rewrite_sheet(package.sheets[sheet], {ref: 44.5}).encode("utf-8")
    original = package.sheets[sheet].data()
    cell = package.sheets[sheet].cells[ref]
    assert xml[:cell.span[0]] == original[:cell.span[0]]
    assert xml.endswith(original[cell.span[1]:])
    out = tmp_path / "p.xlsm"
    xlsx.write(package, {package.sheets[sheet].path: xml}, out)
    written = xlsx.read(out)
    assert written.value(sheet, ref) == 44.5
    assert {k: v for k, v in written.members.items() if k != package.sheets[sheet].path} == \
        {k: v for k, v in package.members.items() if k != package.sheets[sheet].path}


def test_a_cell_the_sheet_lacks_is_inserted_in_order_and_the_dimension_grows(tmp_path):
    package = xlsx.read(TEMPLATE)
    sheet = package.sheets["评级"]
    far = f"{xlsx.col_letters(sheet.max_col + 2)}{sheet.max_row + 3}"
    xml = xlsx.rewrite_sheet(sheet, {far: "note", "A1": "t"}, frozenset({"A1"}))
    again = xlsx.parse_sheet("评级", sheet.path, xml)
    assert again.cells[far].inline == "note"
    assert (again.max_row, again.max_col) == (sheet.max_row + 3, sheet.max_col + 2)
    assert f'ref="A1:{far}"' in xml


def _cells_as_read(sheet: xlsx.Sheet) -> dict:
    return {ref: (c.formula, c.raw_value, c.inline, c.attrs.get("t"), c.attrs.get("s"), c.prefix)
            for ref, c in sheet.cells.items()}


@pytest.mark.parametrize("xml, changes, alone", [
    # numbers, text, an error, a blank and a formula's cached value, with a namespace prefix
    (f'<x:worksheet xmlns:x="{MAIN}"><x:dimension ref="A1:B2"/><x:sheetData><x:row r="1"><x:c r="A1" s="2"><x:v>1</x:v></x:c>'
     '<x:c r="B1"><x:f>A1*2</x:f><x:v>2</x:v></x:c></x:row><x:row r="2"><x:c r="A2" t="inlineStr"><x:is><x:t>old</x:t></x:is>'
     '</x:c><x:c r="B2" t="inlineStr"><x:is><x:t>old</x:t></x:is></x:c></x:row></x:sheetData><x:mergeCells count="1">'
     '<x:mergeCell ref="C1:D1"/></x:mergeCells></x:worksheet>',
     {"A1": 44.5, "B1": "#DIV/0!", "A2": "new <&> text ", "B2": None}, True),
    (f'<worksheet xmlns="{MAIN}"><sheetData><row r="3"><c r="C3"><f>1=1</f><v>1</v></c><c r="D3"/></row></sheetData></worksheet>',
     {"C3": True, "D3": "x\x0by"}, True),
    # a follower of a shared formula cannot be read alone: the whole part is parsed instead
    (f'<worksheet xmlns="{MAIN}"><sheetData><row r="5"><c r="C5"><f t="shared" ref="C5:D5" si="0">B5*2</f><v>1</v></c>'
     '<c r="D5"><f t="shared" si="0"/><v>2</v></c></row></sheetData></worksheet>', {"D5": 9.0}, False),
    # a new cell moves rows and the dimension: the whole part is parsed
    (f'<worksheet xmlns="{MAIN}"><dimension ref="A1"/><sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData></worksheet>',
     {"A1": 2.0, "C4": "new"}, False),
])
def test_a_rewritten_sheet_reads_as_a_parse_of_the_whole_part(xml, changes, alone):
    sheet = xlsx.parse_sheet("S", "xl/worksheets/sheet1.xml", xml)
    new = xlsx.rewritten_sheet(sheet, changes)
    whole = xlsx.parse_sheet(sheet.name, sheet.path, new.data())
    assert new.data() == xlsx.rewrite_sheet_bytes(sheet, changes)
    assert _cells_as_read(new) == _cells_as_read(whole)
    assert (new.max_row, new.max_col) == (whole.max_row, whole.max_col)
    assert new.rewritable is not alone    # read back cell by cell, or parsed whole
    if alone:
        with pytest.raises(xlsx.WorkbookError, match="parse it before rewriting it again"):
            xlsx.rewrite_sheet_bytes(new, {"A1": 1.0})


def test_every_sheet_of_the_template_rewritten_reads_as_a_whole_parse():
    package = xlsx.read(TEMPLATE)
    for name, sheet in package.sheets.items():
        refs = sorted(sheet.cells, key=xlsx.split_ref)[::7][:40]
        changes = {ref: (i * 1.25 if i % 3 else f"t{i}") for i, ref in enumerate(refs)}
        new = xlsx.rewritten_sheet(sheet, changes)
        assert _cells_as_read(new) == _cells_as_read(xlsx.parse_sheet(name, sheet.path, new.data())), name
        assert not new.rewritable, name    # read back cell by cell, not by parsing the whole part


@pytest.mark.parametrize("damage, message", [
    (lambda element: element[:-4], "not well-formed"),                       # an element cut short
    (lambda element: element.replace(b'r="', b'r="Z', 1), "does not read back as itself"),   # another cell's place
])
def test_a_rewritten_cell_that_does_not_read_back_is_refused(monkeypatch, damage, message):
    sheet = xlsx.parse_sheet("S", "xl/worksheets/sheet1.xml", f'<worksheet xmlns="{MAIN}"><sheetData><row r="1"><c r="A1">'
                             '<v>1</v></c><c r="B1"><v>2</v></c></row></sheetData></worksheet>')
    cell_bytes = xlsx._cell_bytes
    monkeypatch.setattr(xlsx, "_cell_bytes", lambda *args: damage(cell_bytes(*args)))
    with pytest.raises(xlsx.WorkbookError, match=message):
        xlsx.rewritten_sheet(sheet, {"A1": 5.0})
