"""A process that refreshes one model after another parses a template's blueprint once per content
(`addin.refresh._PROCESS_SHEETS`): each file is refreshed exactly as with nothing shared, a
blueprint of other bytes (edited, damaged) is parsed and judged anew, and what is kept is bounded."""
from __future__ import annotations

import datetime as dt

import pytest

import addin.refresh as refresh_module
from addin.bench import _quotes
from addin.refresh import refresh_file
from conftest import ROOT
from workbook import xlsx
from workbook.layout import BLUEPRINT

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
NOW = dt.datetime.now().replace(second=0, microsecond=0)   # one stamp for every refresh, so files compare


@pytest.fixture()
def counted(monkeypatch):
    """The sheets parsed, by name, from a process that has kept nothing yet."""
    monkeypatch.setattr(refresh_module, "_PROCESS_SHEETS", xlsx.SharedSheets({BLUEPRINT}))
    parsed: list = []
    parse_sheet = xlsx.parse_sheet

    def counting(name, *args):
        parsed.append(name)
        return parse_sheet(name, *args)
    monkeypatch.setattr(xlsx, "parse_sheet", counting)
    return parsed


def _blueprint_edited(source, target, edit) -> None:
    package = xlsx.read(source)
    part = package.sheets[BLUEPRINT].path
    xlsx.write(package, {part: edit(package.members[part])}, target)


def test_models_of_one_template_parse_its_blueprint_once_and_refresh_as_alone(tmp_path, counted, monkeypatch):
    quotes = [str(_quotes(tmp_path, move)) for move in (1.01, 1.02)]
    shared = [tmp_path / f"shared{i}.xlsm" for i in range(3)]
    alone = [tmp_path / f"alone{i}.xlsm" for i in range(3)]
    for path in shared + alone:
        path.write_bytes(TEMPLATE.read_bytes())
    for path in shared:
        refresh_file(path, quotes[0], max_age_days=30, now=NOW)   # first refresh: everything recomputed
        refresh_file(path, quotes[1], max_age_days=30, now=NOW)   # market refresh of the refreshed model
    assert counted.count(BLUEPRINT) == 1 and counted.count("xlwings.conf") == 6
    monkeypatch.setattr(refresh_module, "_PROCESS_SHEETS", xlsx.SharedSheets(()))   # nothing shared
    for path in alone:
        refresh_file(path, quotes[0], max_age_days=30, now=NOW)
        refresh_file(path, quotes[1], max_age_days=30, now=NOW)
    assert counted.count(BLUEPRINT) == 1 + 6
    for a, b in zip(shared, alone):
        assert a.read_bytes() == b.read_bytes()


def test_a_blueprint_of_other_bytes_is_parsed_and_judged_anew(tmp_path, counted):
    quotes = str(_quotes(tmp_path, 1.01))
    good, spaced, damaged = tmp_path / "good.xlsm", tmp_path / "spaced.xlsm", tmp_path / "damaged.xlsm"
    good.write_bytes(TEMPLATE.read_bytes())
    _blueprint_edited(TEMPLATE, spaced, lambda data: data.replace(b"<sheetData>", b"<sheetData >", 1))
    _blueprint_edited(TEMPLATE, damaged, lambda data: data.replace(b"</sheetData>", b"</sheetData", 1))
    counted.clear()
    refresh_file(good, quotes, max_age_days=30, now=NOW)
    refresh_file(spaced, quotes, max_age_days=30, now=NOW)
    assert counted.count(BLUEPRINT) == 2                    # the same cells, other bytes: parsed again
    before = damaged.read_bytes()
    with pytest.raises(xlsx.WorkbookError, match="not well-formed"):
        refresh_file(damaged, quotes, max_age_days=30, now=NOW)   # blueprints kept do not hide a damaged one
    assert damaged.read_bytes() == before and counted.count(BLUEPRINT) == 3
    refresh_file(good, quotes, max_age_days=30, now=NOW)
    assert counted.count(BLUEPRINT) == 3                    # the good one is still kept


def test_what_the_process_keeps_is_bounded(tmp_path, counted):
    quotes = str(_quotes(tmp_path, 1.01))
    paths = [tmp_path / f"m{i}.xlsm" for i in range(4)]
    for i, path in enumerate(paths):
        _blueprint_edited(TEMPLATE, path, lambda data, i=i: data.replace(b"<sheetData>", b"<sheetData" + b" " * (i + 1) + b">", 1))
    counted.clear()
    for path in paths:
        refresh_file(path, quotes, max_age_days=30, now=NOW)
    assert counted.count(BLUEPRINT) == 4
    assert len(refresh_module._PROCESS_SHEETS._sheets) <= refresh_module._PROCESS_SHEETS.kept == 2
