"""`check` names as the first cause of failing checks only a cell that can cause a failure
(issue 20, item 6): never the scenario selector or another cell that holds text by design."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from addin.audit import audit, text_by_design
from addin.template import blueprint
from conftest import ROOT
from workbook import xlsx

XIAOMI = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
KYSEC = ROOT / "workbook" / "kysec_300592sz_model.xlsm"


def cell_of(package: xlsx.Package, key: str, year: str, kind: str = "formula") -> tuple[str, str]:
    row = next(r for r in blueprint(package) if r["key"] == key and r["year"] == year and r["kind"] == kind)
    return row["sheet"], row["cell"]


def typed(source: Path, values: dict, tmp_path: Path, name: str = "typed.xlsm") -> Path:
    target = tmp_path / name
    xlsx.type_values(xlsx.read(source), values, target)
    return target


def with_formula(source: Path, where: tuple[str, str], formula: str, tmp_path: Path) -> Path:
    """A copy whose cell `where` holds another formula, as an analyst editing it in Excel leaves it."""
    package = xlsx.read(source)
    sheet = package.sheets[where[0]]
    xml = sheet.data().decode("utf-8")
    cell = re.search(rf'<c r="{where[1]}"[^>]*>.*?</c>', xml)
    edited = re.sub(r"<f>.*?</f>", f"<f>{formula}</f>", cell.group(0), count=1)
    target = tmp_path / "edited.xlsm"
    xlsx.write(package, {sheet.path: (xml[:cell.start()] + edited + xml[cell.end():]).encode("utf-8")}, target)
    return target


@pytest.mark.parametrize("model", [XIAOMI, KYSEC], ids=["everbright", "kysec"])
def test_text_by_design_covers_the_scenario_cell_and_the_valuation_years(model):
    package = xlsx.read(model)
    cells = text_by_design(package)
    keys = {r["key"] for r in blueprint(package) if (r["sheet"], r["cell"]) in cells}
    assert {"ticker", "pe_year", "rating_scheme", "mid_year_switch"} <= keys
    assert ("scenario" in keys) == any(r["key"] == "scenario" for r in blueprint(package))
    numbers = {r["key"] for r in blueprint(package) if r["kind"] == "input" and (r["sheet"], r["cell"]) not in cells}
    assert {"price", "fx_rate", "shares", "pe_multiple"} <= numbers  # a number belongs there: text in them is a cause


def test_a_number_typed_over_a_subtotal_is_named_not_the_scenario_cell(tmp_path):
    """The failure the issue saw: the balance check failed and check blamed 预测假设's scenario cell."""
    package = xlsx.read(XIAOMI)
    where = cell_of(package, "total_assets", "2026E")
    result = audit(typed(XIAOMI, {where: 1.0}, tmp_path))
    assert [(y, s) for _, y, s in result.check_failures] == [("2026E", "FAIL")]
    assert result.cause == f"{where[0]}!{where[1]} holds 1.0 typed over its formula ={package.sheets[where[0]].cells[where[1]].formula}"
    scenario = cell_of(package, "scenario", "", "input")
    assert f"{scenario[0]}!{scenario[1]}" not in result.cause


def test_an_edited_formula_that_breaks_the_articulation_is_named(tmp_path):
    package = xlsx.read(XIAOMI)
    where = cell_of(package, "working_capital_change", "2026E")
    built = package.sheets[where[0]].cells[where[1]].formula
    result = audit(with_formula(XIAOMI, where, f"{built}+1000", tmp_path))
    assert result.check_failures and all(year in ("2026E", "2027E") for _, year, _ in result.check_failures)
    assert result.cause.startswith(f"{where[0]}!{where[1]} holds the edited formula ={built[:40]}")
    assert f"(template: ={built[:40]}" in result.cause


def test_a_scenario_the_model_lacks_is_named_through_the_formula_it_breaks(tmp_path):
    """Text is by design in the scenario cell, so holding text is no cause; holding a case the
    model lacks is, and the cause says which formula it breaks."""
    package = xlsx.read(XIAOMI)
    scenario = cell_of(package, "scenario", "", "input")
    result = audit(typed(XIAOMI, {scenario: "bullish"}, tmp_path))
    assert result.check_failures
    assert result.cause.startswith(f"{scenario[0]}!{scenario[1]} holds 'bullish': ")
    assert "ER_SCENARIO(" in result.cause and result.cause.endswith("gives #VALUE!")


def test_text_where_a_number_belongs_stays_the_first_cause(tmp_path):
    package = xlsx.read(XIAOMI)
    driver = package.name_cells("DRV_d_iot")[1]
    where = cell_of(package, "total_assets", "2027E")
    result = audit(typed(XIAOMI, {driver: "20%", where: 5.0}, tmp_path))
    assert result.cause == f"{driver[0]}!{driver[1]} holds text '20%'"  # certain beats possible


def test_no_cell_that_holds_text_by_design_is_ever_the_cause(tmp_path):
    """Every failing model of this file names a cause, and none is a text-by-design cell
    holding its designed text."""
    package = xlsx.read(KYSEC)
    cells = text_by_design(package)
    breaks = {"number over a subtotal": {cell_of(package, "total_assets", "2027E"): 10.0},
              "blank driver": {cell_of(package, "d_revenue", "2026E", "input"): None},
              "number over the cash line": {cell_of(package, "cash", "2026E"): -5.0}}
    for name, values in breaks.items():
        result = audit(typed(KYSEC, values, tmp_path, f"{name.replace(' ', '_')}.xlsm"))
        assert result.check_failures, name
        named = re.match(r"(.+?)!([A-Z]+\d+) ", result.cause)
        assert named and (named[1], named[2]) not in cells, (name, result.cause)
        assert (named[1], named[2]) in values, (name, result.cause)
