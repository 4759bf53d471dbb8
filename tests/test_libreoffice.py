"""LibreOffice, headless, as an independent reader: the template renders to PDF with the report's
figures and legible Chinese, and its VBA modules and button survive into LibreOffice's Basic."""
from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

import libreoffice
from conftest import ROOT
from libreoffice import SOFFICE

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"

pytestmark = [
    pytest.mark.slow,  # starts LibreOffice
    pytest.mark.skipif(SOFFICE is None and not os.environ.get("CI"),
                       reason="LibreOffice not installed here; `make test` installs it, and CI always has it"),
    pytest.mark.xdist_group("libreoffice"),  # one worker converts the template to PDF and to ODS, once each
]


def convert(target: str, out: Path) -> Path:
    return libreoffice.convert([TEMPLATE], target, out, out / "profile")[0]


@pytest.fixture(scope="module")
def pdf(shipped_pdfs) -> Path:
    """The template printed by LibreOffice (once per run, shared with the print tests: conftest)."""
    return shipped_pdfs["xiaomi"]


@pytest.fixture(scope="module")
def pdf_text(pdf) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("figure", [
    "270,970", "365,906", "475,994", "549,073", "635,307",     # revenue row of the summary
    "-3.2%", "30.1%", "42,581", "1.63", "1.96",               # growth, Non-IFRS profit and EPS
    "507,121", "580,223", "670,387", "72,721", "-78,073",      # balance-sheet and cash-flow totals
    "40.20", "0.9049", "26,045", "10,470.09",                  # market data (and the computed market cap)
])
def test_pdf_shows_the_report_figures(pdf_text, figure):
    assert figure in pdf_text


@pytest.mark.parametrize("label", [
    "公司盈利预测与估值简表", "营业收入增长率", "调整后 P/E", "小米集团 (1810.HK) 损益表", "资产负债表", "现金流量表",
    "归母净利润", "负债及股东权益总额", "主要财务比率", "买入", "无评级", "恒生指数", "报告自身不一致",
])
def test_pdf_shows_the_labels(pdf_text, label):
    assert label in pdf_text


def test_pdf_has_no_error_values_where_numbers_belong(pdf_text):
    assert "#NAME?" not in pdf_text and "#VALUE!" not in pdf_text and "Err:" not in pdf_text


def test_chinese_is_rendered_with_a_cjk_font(pdf):
    fonts = subprocess.run(["pdffonts", str(pdf)], check=True, capture_output=True, text=True).stdout
    assert any(name in fonts for name in ("WenQuanYi", "WQY", "Micro Hei", "MicroHei")), fonts


def test_pages_render_to_images(pdf, tmp_path):
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "3", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) == 3 and all(p.stat().st_size > 5_000 for p in pages)


@pytest.fixture(scope="module")
def ods(tmp_path_factory) -> zipfile.ZipFile:
    return zipfile.ZipFile(convert("ods", tmp_path_factory.mktemp("ods")))


def test_basic_library_holds_our_modules(ods):
    names = set(ods.namelist())
    for module in ("ER_Refresh", "xlwings_udfs", "ER_FunctionHelp", "xlwings", "ThisWorkbook"):
        assert f"Basic/VBAProject/{module}.xml" in names
    refresh = ods.read("Basic/VBAProject/ER_Refresh.xml").decode()
    assert "Sub RefreshModel()" in refresh and "addin.refresh.main()" in refresh


def test_button_is_bound_to_the_refresh_macro(ods):
    content = ods.read("content.xml").decode()
    assert 'form:label="Refresh 刷新"' in content
    assert "vnd.sun.star.script:VBAProject.ER_Refresh.RefreshModel" in content


def test_a_refreshed_model_with_its_record_opens_and_renders(tmp_path):
    """The refresh adds its record (a custom XML part) to the model: LibreOffice still opens it
    and recalculates it to the same figures."""
    import datetime as dt

    from addin.refresh import refresh_file
    model = tmp_path / TEMPLATE.name
    shutil.copy(TEMPLATE, model)
    refresh_file(model, None, dt.date(2025, 12, 19))
    assert any(n.startswith("customXml/") for n in zipfile.ZipFile(model).namelist())
    profile = tmp_path / "profile"
    subprocess.run([SOFFICE, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(tmp_path / "out"), str(model)], check=True, capture_output=True, timeout=180)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "out" / (model.stem + ".pdf")), "-"], check=True,
                          capture_output=True, text=True).stdout
    assert "549,073" in text and "42,581" in text
