"""The template's own help is right (issue 24): every input's message says in Chinese and English
what the cell holds, with the unit its number format shows and no unfilled placeholder; the
scenario cell offers base, bear and bull, and every reader of that cell reads it the same way."""
from __future__ import annotations

import re
from pathlib import Path

import openpyxl
import pytest

from conftest import ROOT

TEMPLATES = {"xiaomi": ROOT / "workbook" / "xiaomi_1810hk_model.xlsm", "kysec": ROOT / "workbook" / "kysec_300592sz_model.xlsm"}
CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")
# Units a message may name, and what the cell's number format must then be (or must not be).
MONEY_UNITS = ("百万元", "百万人民币", "百万港元", "CNY mn", "HKD mn")


@pytest.fixture(scope="module", params=sorted(TEMPLATES))
def helps(request) -> list[tuple[str, str, str, str, str]]:
    """(sheet, cell, number format, title, message) for every cell with an input message."""
    book = openpyxl.load_workbook(TEMPLATES[request.param])
    out = []
    for ws in book.worksheets:
        for rule in ws.data_validations.dataValidation:
            for ref in str(rule.sqref).split():
                out.append((ws.title, ref, ws[ref].number_format, rule.promptTitle or "", rule.prompt or ""))
    return out


def test_every_input_cell_has_help(helps):
    assert len(helps) > 50
    assert all(message for *_, message in helps)


def test_no_placeholder_is_left_unfilled(helps):
    unfilled = [(sheet, ref, title, message) for sheet, ref, _, title, message in helps if "{" in title + message]
    assert not unfilled, unfilled[:3]


def test_every_message_is_in_chinese_and_english_within_excels_limits(helps):
    for sheet, ref, _, title, message in helps:
        assert CJK.search(message) and LATIN_WORD.search(message), (sheet, ref, message)
        assert len(title) <= 32 and len(message) <= 255, (sheet, ref, title)


def _unit(message: str) -> str | None:
    match = re.search(r"单位：([^。（]+)", message)
    return match[1].strip() if match else None


def test_no_unit_contradicts_the_cells_number_format(helps):
    for sheet, ref, fmt, _, message in helps:
        unit = _unit(message)
        percent_format = "%" in fmt
        where = (sheet, ref, fmt, message)
        if unit is None:
            continue
        if unit == "%":
            assert percent_format, where
        else:
            assert not percent_format, where  # a rate cell never says 百万元, 天 or 百万股
        if unit.startswith("天"):
            assert fmt.startswith("0.0"), where
        if unit in MONEY_UNITS or unit == "百万股":
            assert "#,##0" in fmt, where


def test_rates_days_share_counts_and_multiples_say_their_own_unit(helps):
    by_kind = {}
    for sheet, ref, fmt, title, message in helps:
        unit = _unit(message)
        by_kind.setdefault(unit, []).append(message)
    assert {"%", "百万股", "倍"} <= set(by_kind)
    assert any(unit and unit.startswith("天") for unit in by_kind)
    assert any(unit in MONEY_UNITS for unit in by_kind)
    share_messages = [m for m in by_kind["百万股"]]
    assert all("mn shares" in m for m in share_messages)


def test_a_driver_names_its_method_and_base_line(helps):
    days = [(title, message) for *_, title, message in helps if "周转天数" in title]
    assert days and all("按" in title for title, _ in days)
    assert all("Days of " in message and "Days of {" not in message for _, message in days)


def test_the_scenario_cell_offers_base_bear_and_bull():
    book = openpyxl.load_workbook(TEMPLATES["xiaomi"])
    ws = book["预测假设"]
    scenario = next(rule for rule in ws.data_validations.dataValidation if (rule.promptTitle or "").startswith("情景"))
    assert scenario.type == "list" and scenario.formula1 == '"base,bear,bull"' and scenario.errorStyle in (None, "stop")
    cell = str(scenario.sqref)
    assert ws[cell].value == "base"
    assert "A number" not in (scenario.error or "") and "调节项" not in scenario.promptTitle


@pytest.mark.parametrize("typed, expected", [("bull", "bull"), (" BULL ", "bull"), ("", "base"), (None, "base"), ("Bear", "bear")])
def test_every_reader_reads_the_scenario_cell_alike(typed, expected):
    """The engine, refresh's sensitivity run, roll and the worksheet function share one reading."""
    from udfs.selection import scenario, scenario_case

    assert scenario_case(typed) == expected
    assert scenario(typed, 1.0, 2.0, 3.0) == {"base": 1.0, "bear": 2.0, "bull": 3.0}[expected]


def test_the_chosen_case_is_a_company_file_field_and_roll_reads_it(tmp_path):
    """[scenarios] case sets the cell a model opens on; a rolled model keeps the case the old one was set to."""
    from addin.source import current_company
    from workbook import xlsx
    from workbook.build import build
    from workbook.company import load
    from workbook.model import build_model

    text = (ROOT / "workbook" / "data" / "xiaomi_1810hk.toml").read_text(encoding="utf-8")
    data = tmp_path / "xiaomi_1810hk.toml"
    data.write_text(text.replace("[scenarios]\n", '[scenarios]\ncase = "Bull"\n', 1), encoding="utf-8")
    company = load(data)
    assert build_model(company).value("scenario") == "bull"
    model = build(tmp_path / "m.xlsm", company)
    package = xlsx.read(model)
    assert package.value(*package.name_cells("DRV_scenario")[0]) == "bull"
    assert current_company(package, model.name).scalar_inputs["scenario"] == "bull"
    with pytest.raises(Exception, match=r"\[scenarios\]\.case: scenario must be base, bear or bull, not 'sideways'"):
        data.write_text(text.replace("[scenarios]\n", '[scenarios]\ncase = "sideways"\n', 1), encoding="utf-8")
        load(data)


def test_the_native_edition_reads_the_scenario_as_the_template_does():
    from udfs.functions import BY_FORMULA_NAME

    native = BY_FORMULA_NAME["scenario"].native
    assert native.count("LOWER(TRIM({0}))") == 3 and 'TRIM({0})=""' in native


def test_a_carried_drivers_help_says_review_first_in_both_languages():
    from workbook.build import MESSAGE_LIMIT, with_review

    long_message = "营业收入：同比增速。" * 20 + "\nRevenue: YoY growth. Unit: % (type 10% or 0.10)."
    reviewed = with_review(long_message)
    zh, en = reviewed.split("\n")
    assert len(reviewed) <= MESSAGE_LIMIT and zh.startswith("由 roll 从上一年复制，请复核。")
    assert en == "Carried from the previous year by roll: revisit it. Revenue: YoY growth. Unit: % (type 10% or 0.10)."
