"""Printed, the model looks like a broker's (issue 24): LibreOffice renders every sheet of both
templates and of both native editions to PDF, and no page shows ###, Err: or #NAME?, no sheet
prints below half size (a sheet wider than its page shrinks to fit), every sheet an analyst reads
is there and the machinery sheets are not. The page setup is checked in the files too.

The scale of a page is read from the PDF: 10-point text at full size makes word boxes about 13
points tall, so the median box height over 13 is the page's print scale."""
from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT
from workbook import xlsx
from workbook.formats import FORMATS, NEGATIVE

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
TEMPLATES = {"xiaomi": ROOT / "workbook" / "xiaomi_1810hk_model.xlsm", "kysec": ROOT / "workbook" / "kysec_300592sz_model.xlsm"}
FULL_SIZE_BOX = 13.0   # points: the word-box height of 10-point text printed at 100%
MIN_SCALE = 0.5
MACHINERY = ("xlwings.conf", "_blueprint", "_source")


def _needs_libreoffice():
    return pytest.mark.skipif(SOFFICE is None and not os.environ.get("CI"),
                              reason="LibreOffice not installed here; `make test` installs it, and CI always has it")


@pytest.fixture(scope="module")
def editions(shipped_editions) -> dict[str, Path]:
    """Both templates as committed and the native edition of each (made once per run: conftest)."""
    return shipped_editions


@pytest.fixture(scope="module")
def pdfs(shipped_pdfs) -> dict[str, Path]:
    """Each edition printed by LibreOffice (once per run, shared with the other modules that read
    the PDFs: conftest)."""
    return shipped_pdfs


def _pages(pdf: Path) -> list[tuple[str, float | None]]:
    """(text, print scale) per page."""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    boxes = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    pages = []
    for page_text, page_boxes in zip(text.split("\f"), boxes.split("<page ")[1:]):
        heights = [float(b) - float(a) for a, b in re.findall(r'yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)"', page_boxes)]
        pages.append((page_text, statistics.median(heights) / FULL_SIZE_BOX if heights else None))
    return pages


def _printed_sheets(workbook: Path) -> list[str]:
    package = xlsx.read(workbook)
    hidden = set(re.findall(r'<sheet\b[^>]*name="([^"]+)"[^>]*state="(?:hidden|veryHidden)"',
                            package.members["xl/workbook.xml"].decode("utf-8")))
    return [name for name in package.sheets if name not in hidden]


@pytest.mark.long
@pytest.mark.slow
@_needs_libreoffice()
@pytest.mark.parametrize("edition", ["xiaomi", "kysec", "xiaomi native", "kysec native"])
def test_every_sheet_prints_readably_and_without_error_values(editions, pdfs, edition):
    pages = _pages(pdfs[edition])
    whole = "\f".join(text for text, _ in pages)
    for bad in ("###", "Err:", "#NAME?"):
        assert bad not in whole, f"{edition}: {bad} on a printed page"
    small = [(i + 1, round(scale, 2), text.strip()[:40]) for i, (text, scale) in enumerate(pages)
             if scale is not None and scale < MIN_SCALE]
    assert not small, f"{edition}: pages print below half size: {small}"
    assert all(scale is not None for _, scale in pages), f"{edition}: a blank page"
    if edition.endswith("native"):  # the cover's note prints on the cover, not beyond its page
        assert "原生公式版" in pages[0][0] and "Kept as values" in pages[0][0]
        assert "xlwings.conf" not in pages[0][0]  # the edition has no settings sheet, nor a line pointing at one
    footers = {m.strip() for text, _ in pages for m in re.findall(r"— (.+?)\s{2,}\d+ / \d+\s*$", text, re.M)}
    assert footers == set(_printed_sheets(editions[edition])), footers
    assert not footers & set(MACHINERY)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_machinery_sheets_are_hidden_and_do_not_print(template):
    package = xlsx.read(TEMPLATES[template])
    book = package.members["xl/workbook.xml"].decode("utf-8")
    for name in MACHINERY:
        tag = re.search(rf'<sheet\b[^>]*name="{re.escape(name)}"[^>]*>', book)[0]
        assert 'state="hidden"' in tag or 'state="veryHidden"' in tag, tag
    assert set(_printed_sheets(TEMPLATES[template])).isdisjoint(MACHINERY)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_printed_sheet_is_set_up_one_landscape_page_wide(template):
    package = xlsx.read(TEMPLATES[template])
    for name in _printed_sheets(TEMPLATES[template]):
        data = package.sheets[name].data().decode("utf-8")
        assert 'fitToPage="1"' in data and 'orientation="landscape"' in data and 'fitToHeight="0"' in data, name


def test_one_negative_style_for_every_number_format():
    """Every numeric format shows a negative with a leading minus: never "-" in one row and "(3.2%)" in the next."""
    for fmt, excel in FORMATS.items():
        if fmt in ("text", "date"):
            continue
        sections = excel.split(";")
        assert len(sections) >= 2 and sections[1].startswith(NEGATIVE) and "(" not in sections[1], (fmt, excel)


def test_the_fx_row_is_hidden_only_when_the_currencies_are_the_same():
    for template, hidden in (("kysec", True), ("xiaomi", False)):
        package = xlsx.read(TEMPLATES[template])
        (sheet, ref), = package.name_cells("MKT_fx_rate")[:1]
        row = xlsx.split_ref(ref)[0]
        tag = re.search(rf'<row r="{row}"[^>]*>', package.sheets[sheet].data().decode("utf-8"))[0]
        assert ('hidden="1"' in tag) == hidden, tag
        caption = " ".join(str(package.value(s, r)) for s in package.sheets for r in package.sheets[s].cells
                           if isinstance(package.value(s, r), str) and "资料来源" in package.value(s, r))
        assert ("汇率" in caption) != hidden, caption


def test_the_audit_cell_does_not_send_the_analyst_to_check():
    package = xlsx.read(TEMPLATES["xiaomi"])
    text = package.value(*package.name_cells("AUD_summary")[0])
    assert "refresh" in text.lower() and "check 只在终端打印" in text


def test_a_copys_cover_note_is_a_block_of_short_lines(tmp_path):
    """The native edition's note (which lists the cells kept as values) prints inside the cover:
    a block of lines down the label column, none wider than the page's share it may take."""
    from addin.native import export_native
    from addin.share import NOTE_WIDTH
    from workbook.formats import text_width

    live = xlsx.read(export_native(TEMPLATES["xiaomi"], tmp_path / "live.xlsx"))
    column_a = {xlsx.split_ref(ref)[0]: live.value("封面", ref) for ref in live.sheets["封面"].cells
                if xlsx.split_ref(ref)[1] == 1 and isinstance(live.value("封面", ref), str)}
    first = next(row for row, text in column_a.items() if text.startswith("原生公式版"))
    note = []
    while first + len(note) in column_a:
        note.append(column_a[first + len(note)])
    text = " ".join(note)
    # the cells kept as values are each named (the DCF is native since issue 21; long warning formulas are not)
    assert len(note) >= 3 and "Kept as values" in text and re.search(r"\S+![A-Z]+[0-9]+ \(", text)
    assert all(text_width(line) <= NOTE_WIDTH for line in note)
