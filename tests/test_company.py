"""Company data files: every mistake gets a sentence that names the file and the field."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbook.company import DEFAULT_COMPANY, CompanyDataError, load

TEXT = DEFAULT_COMPANY.read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str, name: str = "co.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("format_version = 1", "format_version = 9"), "format_version"),
    (lambda t: t.replace('ticker = "1810.HK"', 'tickr = "1810.HK"'), "unknown field 'tickr'"),
    (lambda t: t.replace("price = 40.20", "price = -40.20"), r"\[market\].price: must be positive"),
    (lambda t: t.replace("fx_rate = 0.9049", 'fx_rate = "0.9"'), "fx_rate: must be a number"),
    (lambda t: t.replace('scheme = "everbright"', 'scheme = "nobody"'), "scheme 'nobody'"),
    (lambda t: t.replace("[drivers.smartphone]", "[drivers.smartfone]"), "smartfone"),
    (lambda t: re.sub(r'(\[drivers.iot\]\nmethod = "growth"\nvalues = )\{[^}]*\}', r"\1[0.1, 0.1, 0.1]", t), "keyed by year"),
    (lambda t: re.sub(r'(\[drivers.iot\]\nmethod = "growth"\nvalues = )\{[^}]*\}', r'\1{ "2025E" = 0.1, "2026E" = 0.1 }', t),
     "no value for forecast year '2027E'"),
    (lambda t: re.sub(r'(\[drivers.iot\]\nmethod = "growth"\nvalues = )\{[^}]*\}',
                      r'\1{ "2025E" = 0.1, "2026E" = 0.1, "2027E" = 0.1, "2028E" = 0.1 }', t), "year '2028E' is not a forecast year"),
    (lambda t: t.replace('price_date = 2025-12-18', 'price_date = "2025-13-45"'), "price_date must be a date"),
    (lambda t: t.replace('boundary = "outer"', 'boundary = "sideways"'), "boundary must be"),
    (lambda t: t.replace('layout = "everbright_hk"', 'layout = "no_such_layout"'), "layout 'no_such_layout' not found"),
    (lambda t: t.replace('[drivers.cogs]\nmethod = "cost_from_margin"', '[drivers.cogs]\nmethod = "magic"'), "method 'magic'"),
    (lambda t: t.replace("smartphone = 157461\n", ""), "missing line 'smartphone'"),
    (lambda t: t.replace("revenue = 270970", "revenue = 270970\nrevnue = 1"), "unknown line 'revnue'"),
    (lambda t: t.replace('forecast = ["2025E", "2026E", "2027E"]', 'forecast = ["2025E", "2027E", "2026E"]'), "consecutive"),
    (lambda t: t + "\n[extra]\nx = 1\n", "unknown section"),
    (lambda t: t.replace("[market]", "[market"), "not valid TOML"),
])
def test_bad_field_gets_one_sentence(tmp_path, edit, message):
    path = _write(tmp_path, edit(TEXT))
    with pytest.raises(CompanyDataError, match=message) as info:
        load(path)
    assert "\n" not in str(info.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "gbk.toml"
    path.write_bytes(TEXT.encode("gbk"))
    with pytest.raises(CompanyDataError, match="UTF-8"):
        load(path)


def test_missing_file(tmp_path):
    with pytest.raises(CompanyDataError, match="no such company data file"):
        load(tmp_path / "none.toml")


def test_calibration_reproduces_the_committed_drivers():
    """The drivers in the data file are what the calibration derives from the report."""
    from udfs.tomlparse import tomllib

    from workbook.calibrate import calibrate
    report = tomllib.loads((DEFAULT_COMPANY.parent / "xiaomi_1810hk.report.toml").read_text(encoding="utf-8"))
    committed = tomllib.loads(TEXT)["drivers"]
    derived = calibrate(report, DEFAULT_COMPANY)
    assert set(derived) == set(committed)
    for key, entry in derived.items():
        assert entry["method"] == committed[key]["method"], key
        assert entry["values"] == pytest.approx(committed[key]["values"], abs=1e-6), key


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace('price_date = 2025-12-18', 'price_date = "garbage"'), "price_date must be a date"),
    (lambda t: t.replace('price_date = 2025-12-18', 'price_date = "=NOW()"'), "price_date must be a date"),
    (lambda t: t.replace('boundary = "outer"', 'boundary = ["outer"]'), "boundary must be text"),
    (lambda t: t.replace('published = "买入"', 'published = ["买入"]'), "published must be text"),
    (lambda t: t.replace('price = 40.20', 'price = 1e308'), "not a plausible figure"),
    (lambda t: t.replace('[market]', '[market]\nnested = ' + "[" * 3000 + "]" * 3000), "nested too deeply|unknown field"),
])
def test_hostile_company_files_get_one_sentence(tmp_path, edit, message):
    """Issue 15's company-file attacks: each is one readable sentence, never a traceback."""
    path = _write(tmp_path, edit(TEXT))
    with pytest.raises(CompanyDataError, match=message):
        load(path)


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + TEXT.encode("utf-8"))
    assert load(path).facts["ticker"] == "1810.HK"
