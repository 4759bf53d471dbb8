"""`diff` compares two versions of one company's model year by year (issue 20, item 5)."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from addin.share import DiffError, diff, render_diff
from addin.template import blueprint
from conftest import ROOT
from workbook import xlsx

XIAOMI = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
KYSEC = ROOT / "workbook" / "kysec_300592sz_model.xlsm"


def cell(path, sheet_key_year):
    package = xlsx.read(path)
    return next((r["sheet"], r["cell"]) for r in blueprint(package) if (r["sheet"], r["key"], r["year"]) == sheet_key_year)


@pytest.fixture(scope="module")
def rolled(tmp_path_factory):
    """The Xiaomi model rolled with actuals equal to its own 2025E figures: every driver of
    2026E and 2027E is unchanged, only the window moved."""
    from test_roll import write_actuals
    from addin.roll import roll
    folder = tmp_path_factory.mktemp("rolled")
    old = folder / "old.xlsm"
    shutil.copy(XIAOMI, old)
    roll(old, write_actuals(folder / "fy.toml", XIAOMI, "2025E", "2025", 1.0), folder / "new.xlsm")
    return old, folder / "new.xlsm"


def test_after_a_roll_no_driver_is_reported_changed(rolled):
    """Cell by cell, 2025E's drivers sat where 2026E's sit now: diff reported every one moved."""
    result = diff(*rolled)
    assert result.only_old == ["2025E"] and result.only_new == ["2025", "2028E"]
    changed = {(key, year) for _, key, year, _, _ in result.inputs}
    assert not any(year in ("2026E", "2027E") for _, year in changed), changed
    assert not any(key.startswith("d_") or key.startswith("base_d_") for key, _ in changed), changed
    # the statements of 2026E and 2027E did not move; the example valuation did, its years one on (issue 21)
    assert [o for o in result.outputs if o[1] not in ("target_price", "computed_rating")] == []
    assert "only in the old model 2025E; only in the new model 2025, 2028E" in render_diff(result)


def test_a_driver_changed_after_a_roll_is_reported_on_its_year(rolled, tmp_path):
    old, new = rolled
    where = cell(new, ("预测假设", "d_iot", "2027E"))
    before = xlsx.read(new).value(*where)
    changed = tmp_path / "changed.xlsm"
    xlsx.type_values(xlsx.read(new), {where: before + 0.05}, changed)
    result = diff(old, changed)
    assert [(k, y, b) for _, k, y, _, b in result.inputs if k.startswith("d_")] == [("d_iot", "2027E", pytest.approx(before + 0.05))]


def test_scenario_values_are_matched_by_year(tmp_path):
    package = xlsx.read(XIAOMI)
    bear = next(r for r in blueprint(package) if r["key"].startswith("bear_d_") and r["year"] == "2026E")
    typed = tmp_path / "bear.xlsm"
    xlsx.type_values(package, {(bear["sheet"], bear["cell"]): -0.1}, typed)
    result = diff(XIAOMI, typed)
    assert [(k, y, b) for _, k, y, _, b in result.inputs] == [(bear["key"], "2026E", -0.1)]


def test_two_companies_are_refused_in_one_line(tmp_path):
    with pytest.raises(DiffError, match="1810.HK and .* is 300592.SZ: diff compares two versions of one company"):
        diff(XIAOMI, KYSEC)
    run = subprocess.run([sys.executable, "-m", "addin", "diff", str(XIAOMI), str(KYSEC)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stdout == "" and run.stderr.count("\n") == 1
    assert "diff compares two versions of one company's model" in run.stderr
