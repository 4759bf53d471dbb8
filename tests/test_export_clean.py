"""The values-only export is clean: nothing of the model's machinery travels (calcChain, VBA,
button and its note, blueprint, xlwings.conf), it is readable by colleagues (umask), only text
that could run as a formula gets an apostrophe, and the file validates."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from lxml import etree

from addin.share import export, needs_apostrophe
from conftest import ROOT
from ooxml import assert_valid
from test_foreign_files import _calc_chain, _rezip, _with_calc_chain
from workbook import calcstate, xlsx

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    model = _rezip(TEMPLATE, folder / "saved_by_excel.xlsm", _with_calc_chain, _calc_chain(TEMPLATE))
    old = os.umask(0o022)
    try:
        return export(model, folder / "clean.xlsx", now=dt.datetime(2026, 11, 29, 9))
    finally:
        os.umask(old)


def test_no_calc_chain_vba_or_machinery_sheets(exported):
    with zipfile.ZipFile(exported) as z:
        names = z.namelist()
        types, rels = z.read("[Content_Types].xml").decode(), z.read("xl/_rels/workbook.xml.rels").decode()
        workbook = z.read("xl/workbook.xml").decode()
        strings = z.read("xl/sharedStrings.xml").decode()
    assert not any("calcChain" in n or "vbaProject" in n or n.endswith(".vml") for n in names)
    assert "calcChain" not in types + rels and "vbaProject" not in types + rels and "macroEnabled" not in types
    assert "_blueprint" not in workbook and "xlwings.conf" not in workbook
    assert "ER_GROWTH(" not in strings            # the blueprint's formulas do not travel in the strings either


def test_no_button_and_no_line_asking_to_click_it(exported):
    package = xlsx.read(exported)
    texts = [package.value(s, r) for s in package.sheets for r in package.sheets[s].cells]
    assert not any(isinstance(t, str) and "Refresh 刷新" in t for t in texts)
    assert any(isinstance(t, str) and "Values-only copy of saved_by_excel.xlsm" in t for t in texts)


def test_permissions_follow_the_umask(exported):
    assert os.stat(exported).st_mode & 0o777 == 0o644


def test_dimension_covers_the_note(exported):
    package = xlsx.read(exported)
    cover = package.sheets["封面"]
    dimension = cover.data()[cover.dimension[0]:cover.dimension[1]].decode()
    assert f"{xlsx.col_letters(cover.max_col)}{cover.max_row}" in dimension


@pytest.mark.parametrize("text,expected", [
    ("=HYPERLINK(\"http://x\",\"y\")", True), ("@SUM(A1)", True), ("  =1+1", True),
    ("+cmd|' /C calc'!A0", True), ("-2+HYPERLINK(\"x\")", True),
    ("-5% ~ 5%", False), ("-15% ~ -5%", False), ("+5%", False), ("-", False), ("买入", False), ("a=b", False),
])
def test_apostrophe_only_on_text_that_could_run(text, expected):
    assert needs_apostrophe(text) is expected


def test_harmless_signed_text_is_exported_unchanged(exported):
    package = xlsx.read(exported)
    texts = {package.value(s, r) for s in package.sheets for r in package.sheets[s].cells}
    assert "-5% ~ 5%" in texts and "'-5% ~ 5%" not in texts


def test_export_is_a_valid_file(exported):
    assert_valid(exported)


def test_template_and_refreshed_template_are_valid(tmp_path):
    assert_valid(TEMPLATE)
    model = tmp_path / "m.xlsm"
    shutil.copy(TEMPLATE, model)
    run = subprocess.run([sys.executable, "-m", "addin", "refresh", str(model), "--as-of", "2025-12-19"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert_valid(model)                           # with the refresh's record, a custom XML part
    assert calcstate.record_part(xlsx.read(model)) is not None
    out = export(model, tmp_path / "clean.xlsx")  # a copy without formulas carries no record of them
    assert not any(n.startswith("customXml/") for n in zipfile.ZipFile(out).namelist())
    assert_valid(out)


def test_control_characters_in_text_give_a_well_formed_export(tmp_path):
    model = tmp_path / "m.xlsm"
    package = xlsx.read(TEMPLATE)
    xlsx.type_values(package, {package.name_cells("MKT_refresh_source")[0]: "bad\x0bsource"}, model)
    out = export(model, tmp_path / "c.xlsx")
    with zipfile.ZipFile(out) as z:
        for name in z.namelist():
            if name.endswith(".xml"):
                etree.fromstring(z.read(name))
    assert xlsx.read(out).value(*package.name_cells("MKT_refresh_source")[0]) == "bad\x0bsource"


def test_a_hostile_doctype_never_reaches_the_copy(tmp_path):
    model = _rezip(TEMPLATE, tmp_path / "h.xlsm", lambda n, b: b.replace(
        b"?>", b'?><!DOCTYPE x [<!ENTITY a "aaaa">]>', 1) if n == "xl/styles.xml" else b)
    run = subprocess.run([sys.executable, "-m", "addin", "export", str(model), "-o", str(tmp_path / "x.xlsx")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "DOCTYPE" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "x.xlsx").exists()
