"""Files other programs wrote: our template re-saved by LibreOffice, and variants of it shaped the
way Excel writes its parts (shared formulas, namespace prefixes, x14ac extension attributes and
mc:Ignorable, attributes in another order, inline strings, rich-text shared strings with phonetic
runs, a calculation chain). Each must read with the original's values, and export and diff must
work on it; the variants themselves pass the validator, so they are files Excel would open."""
from __future__ import annotations

import datetime as dt
import functools
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from addin.share import diff, export
from conftest import ROOT
from ooxml import assert_valid
from workbook import xlsx

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
SOFFICE = shutil.which("soffice")
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
# LibreOffice stores numbers with 15 significant digits, as Excel does: equal to that precision.
SIGNIFICANT = 1e-14


def _rezip(source: Path, target: Path, edit, extra: dict | None = None) -> Path:
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for info in z.infolist():
            out.writestr(info.filename, edit(info.filename, z.read(info.filename)))
        for name, data in (extra or {}).items():
            out.writestr(name, data)
    return target


@functools.cache
def _template() -> xlsx.Package:
    """The template read once: the variants below consult it for every part of every file."""
    return xlsx.read(TEMPLATE)


def _sheet_parts() -> set:
    return {s.path for s in _template().sheets.values()}


def _prefixed(name, data):
    """Every SpreadsheetML element under an `x:` prefix, as some Excel-generating tools write."""
    if name not in _sheet_parts() and name not in ("xl/workbook.xml", "xl/sharedStrings.xml"):
        return data
    text = data.decode("utf-8")
    text = text.replace(f'xmlns="{MAIN}"', f'xmlns:x="{MAIN}"', 1)
    text = re.sub(r"<(/?)([A-Za-z]\w*)(?=[\s/>])", r"<\1x:\2", text)
    return text.encode("utf-8")


def _excel_extensions(name, data):
    """x14ac:dyDescent on rows, mc:Ignorable on the root, s before r on cells, as Excel writes."""
    if name not in _sheet_parts():
        return data
    text = data.decode("utf-8")
    text = text.replace("<worksheet ", '<worksheet xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
                        'xmlns:x14ac="http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac" mc:Ignorable="x14ac" ', 1)
    text = re.sub(r'<row r="(\d+)"', r'<row r="\1" x14ac:dyDescent="0.25"', text)
    text = re.sub(r'<c r="([A-Z]+\d+)" s="(\d+)"', r'<c s="\2" r="\1"', text)
    return text.encode("utf-8")


def _inline_strings(name, data):
    """Every shared-string cell as an inline string."""
    if name not in _sheet_parts():
        return data
    shared = _template().shared

    def inline(match):
        attrs, index = match.group(1), int(match.group(2))
        return f'<c{attrs} t="inlineStr"><is><t xml:space="preserve">{xlsx.escape_data(shared[index])}</t></is></c>'
    return re.sub(r'<c([^>]*?) t="s"><v>(\d+)</v></c>', inline, data.decode("utf-8")).encode("utf-8")


def _rich_strings(name, data):
    """Every shared string of two characters or more split into two formatted runs, with a
    phonetic run (rPh) that is not part of the text."""
    if name != "xl/sharedStrings.xml":
        return data
    strings = _template().shared
    items = []
    for text in strings:
        if len(text) >= 2:
            a, b = xlsx.escape_data(text[:1]), xlsx.escape_data(text[1:])
            items.append(f'<si><r><rPr><b/><sz val="11"/></rPr><t>{a}</t></r><r><rPr><sz val="11"/></rPr>'
                         f'<t xml:space="preserve">{b}</t></r><rPh sb="0" eb="1"><t>ルビ</t></rPh></si>')
        else:
            items.append(f'<si><t xml:space="preserve">{xlsx.escape_data(text)}</t></si>')
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{MAIN}" count="{len(items)}" '
            f'uniqueCount="{len(items)}">' + "".join(items) + "</sst>").encode("utf-8")


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'").replace("&amp;", "&")


def _shared_formulas(name, data):
    """Runs of formula cells in a row that are one formula moved along, written as Excel writes
    them: the first cell holds the text and the range, the others only the shared index."""
    if name not in _sheet_parts():
        return data
    text = data.decode("utf-8")
    cells = list(re.finditer(r'<c r="([A-Z]+)(\d+)"([^>]*)><f>([^<]*)</f>', text))
    groups: list = []      # [[match, ...]] of cells sharing the first one's formula
    for match in cells:
        col, row, _, formula = match.groups()
        if groups:
            head = groups[-1][0]
            last_col = xlsx.col_index(groups[-1][-1].group(1))
            moved = xlsx._expand_shared(_unescape(head.group(4)), head.group(1) + head.group(2), col + row)
            if head.group(2) == row and xlsx.col_index(col) == last_col + 1 and moved == _unescape(formula):
                groups[-1].append(match)
                continue
        groups.append([match])
    out, pos, si = [], 0, 0
    for group in groups:
        if len(group) == 1:
            continue
        head = group[0]
        last = group[-1].group(1) + group[-1].group(2)
        for match in group:
            col, row, attrs, formula = match.groups()
            out.append(text[pos:match.start()])
            if match is head:
                out.append(f'<c r="{col}{row}"{attrs}><f t="shared" ref="{col}{row}:{last}" si="{si}">{formula}</f>')
            else:
                out.append(f'<c r="{col}{row}"{attrs}><f t="shared" si="{si}"/>')
            pos = match.end()
        si += 1
    out.append(text[pos:])
    return "".join(out).encode("utf-8")


def _calc_chain(template: Path) -> dict:
    """A calcChain part listing every formula cell, with its override and relationship."""
    package = xlsx.read(template)
    entries = []
    for index, sheet in enumerate(package.sheets.values(), start=1):
        first = True
        for ref, cell in sheet.cells.items():
            if cell.formula is not None:
                entries.append(f'<c r="{ref}" i="{index}"/>' if first else f'<c r="{ref}"/>')
                first = False
    return {"xl/calcChain.xml": (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<calcChain xmlns="{MAIN}">'
                                 + "".join(entries) + "</calcChain>").encode()}


def _with_calc_chain(name, data):
    if name == "[Content_Types].xml":
        return data.replace(b"</Types>", b'<Override PartName="/xl/calcChain.xml" ContentType="' +
                            xlsx.CALC_CHAIN_TYPE.encode() + b'"/></Types>')
    if name == "xl/_rels/workbook.xml.rels":
        return data.replace(b"</Relationships>", b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/'
                            b'officeDocument/2006/relationships/calcChain" Target="calcChain.xml"/></Relationships>')
    return data


VARIANTS = {
    "prefixed": _prefixed,
    "excel_extensions": _excel_extensions,
    "inline_strings": _inline_strings,
    "rich_strings": _rich_strings,
    "shared_formulas": _shared_formulas,
    "calc_chain": _with_calc_chain,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("foreign")
    files = {}
    for name, edit in VARIANTS.items():
        extra = _calc_chain(TEMPLATE) if name == "calc_chain" else None
        files[name] = _rezip(TEMPLATE, folder / f"{name}.xlsm", edit, extra)
    files["all_excel_shapes"] = folder / "all_excel_shapes.xlsm"
    step = TEMPLATE
    for name in ("shared_formulas", "excel_extensions", "rich_strings", "calc_chain"):
        target = folder / f"step_{name}.xlsm"
        _rezip(step, target, VARIANTS[name], _calc_chain(TEMPLATE) if name == "calc_chain" else None)
        step = target
    shutil.copy(step, files["all_excel_shapes"])
    return files


LIBREOFFICE = pytest.param("libreoffice", marks=pytest.mark.slow)
NAMES = list(VARIANTS) + ["all_excel_shapes", LIBREOFFICE]


def _file(request, corpus, name) -> Path:
    return request.getfixturevalue("libreoffice_resave") if name == "libreoffice" else corpus[name]


# LibreOffice writes xlwings.conf's TRUE as the formula =TRUE(); the headless evaluator knows
# TRUE() and FALSE(), so export and diff evaluate the LibreOffice re-save like any other file.
def _evaluated(names):
    return list(names)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= SIGNIFICANT * max(abs(a), abs(b), 1e-300) or a == b
    return a == b or (a in (None, "") and b in (None, ""))


@pytest.mark.parametrize("name", NAMES)
def test_foreign_file_reads_with_the_original_values(request, corpus, name):
    original, foreign = xlsx.read(TEMPLATE), xlsx.read(_file(request, corpus, name))
    assert list(foreign.sheets) == list(original.sheets)
    assert foreign.custom == original.custom
    for defined in (n for n in original.names if n.startswith(("IS_", "BS_", "CF_", "DRV_", "MKT_", "RTG_", "CHK_"))):
        assert foreign.name_cells(defined) == original.name_cells(defined), defined
    wrong = []
    for sheet_name, sheet in original.sheets.items():
        for ref, cell in sheet.cells.items():
            a, b = original.value(sheet_name, ref), foreign.value(sheet_name, ref)
            if not _same(a, b):
                wrong.append((sheet_name, ref, a, b))
            other = foreign.sheets[sheet_name].cells.get(ref)
            if name != "libreoffice" and cell.formula is not None and (other is None or other.formula != cell.formula):
                wrong.append((sheet_name, ref, cell.formula, other and other.formula))
    assert not wrong, wrong[:5]


def test_corpus_has_the_shapes_it_claims(corpus):
    """Each variant really carries the shape it is named after (else the test above proves nothing)."""
    def part(name, member):
        with zipfile.ZipFile(corpus[name]) as z:
            return z.read(member).decode("utf-8")
    income = xlsx.read(TEMPLATE).sheets["表1 损益表"].path
    assert "<x:c " in part("prefixed", income) and "<c " not in part("prefixed", income)
    assert 'x14ac:dyDescent' in part("excel_extensions", income) and re.search(r'<c s="\d+" r=', part("excel_extensions", income))
    assert 't="inlineStr"' in part("inline_strings", income) and 't="s"' not in part("inline_strings", income)
    assert "<rPh" in part("rich_strings", "xl/sharedStrings.xml")
    assert len(re.findall(r'<f t="shared" si="\d+"/>', part("shared_formulas", income))) >= 20
    assert "xl/calcChain.xml" in zipfile.ZipFile(corpus["calc_chain"]).namelist()


@pytest.mark.parametrize("name", list(VARIANTS) + ["all_excel_shapes"])
def test_excel_shaped_variants_are_valid_files(corpus, name):
    assert_valid(corpus[name])


@pytest.mark.parametrize("name", _evaluated(NAMES))
def test_export_of_a_foreign_file_is_clean_and_valid(request, corpus, name, tmp_path):
    out = export(_file(request, corpus, name), tmp_path / "clean.xlsx", now=dt.datetime(2026, 11, 29, 9))
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
    assert not any("calcChain" in n or "vbaProject" in n or n.endswith(".vml") for n in names)
    exported = xlsx.read(out)
    original = xlsx.read(TEMPLATE)
    assert "_blueprint" not in exported.sheets and "xlwings.conf" not in exported.sheets
    for sheet, ref in original.name_cells("IS_revenue") + original.name_cells("BS_total_assets"):
        assert _same(exported.value(sheet, ref), original.value(sheet, ref)), (sheet, ref)
    if name == "libreoffice":
        # LibreOffice writes no theme part, which the validator requires of a workbook (Excel opens
        # such files): the export must add no problem of its own to what its source already has.
        from ooxml import audit_errors, our_checks
        source = _file(request, corpus, name)
        assert not our_checks(out)
        assert set(audit_errors(out)) <= set(audit_errors(source))
    else:
        assert_valid(out)


@pytest.mark.parametrize("name", _evaluated(NAMES))
def test_diff_of_a_foreign_file_against_the_original_finds_no_change(request, corpus, name):
    result = diff(TEMPLATE, _file(request, corpus, name))
    assert result.inputs == [] and not result.layout_changed
    assert all(abs(b - a) <= 1e-9 * max(abs(a), 1) for *_, a, b in result.outputs if isinstance(a, float))
