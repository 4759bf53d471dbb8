"""Headless refresh: surgical, honours the analyst's edits, refuses bad quotes, survives kills."""
from __future__ import annotations

import ast
import datetime as dt
import inspect
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from addin import modelfile
from addin.audit import audit
from addin.modelfile import REPLACE_STAGES, backups
from addin.quotes import LocalQuotesFile, QuoteError
from addin.refresh import refresh_book, refresh_file
import fake_excel
from kill_points import at_or_after, kill_at
from conftest import ROOT
from workbook import calcstate, xlsx
from workbook.xlcalc import evaluate

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
AS_OF = dt.date(2026, 11, 29)
NOW = dt.datetime(2026, 11, 29, 9, 30)
HEADER = "ticker,price,currency,price_date,fx_to_reporting,benchmark_level,source\n"


def quotes(tmp_path: Path, body: str, name="quotes.csv", encoding="utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes((HEADER + body).encode(encoding))
    return path


@pytest.fixture
def fresh(tmp_path) -> Path:
    path = tmp_path / "model.xlsm"
    shutil.copy(TEMPLATE, path)
    return path


def cell_of(package, name):
    return package.name_cells(name)[0]


def with_inputs(path: Path, values_by_name: dict) -> Path:
    """The model with inputs typed (by defined name) and its cached values recomputed."""
    package = xlsx.read(path)
    typed = {cell_of(package, name): value for name, value in values_by_name.items()}
    xlsx.type_values(package, typed, path.with_name("typed.xlsm"))
    typed_package = xlsx.read(path.with_name("typed.xlsm"))
    values = evaluate(typed_package)
    by_sheet = {}
    for (sheet, ref), value in values.items():
        by_sheet.setdefault(sheet, {})[ref] = value
    replaced = {typed_package.sheets[s].path: xlsx.rewrite_sheet(typed_package.sheets[s], c).encode() for s, c in by_sheet.items()}
    xlsx.write(typed_package, replaced, path)
    return path


def test_refresh_changes_market_inputs_and_dependent_values_only(fresh, tmp_path):
    with_inputs(fresh, {"RTG_target_price": 50.0, "RTG_benchmark_return": 0.05})
    before = xlsx.read(fresh)
    assert before.value(*cell_of(before, "RTG_computed_rating")) == "买入"      # 50/40.20 - 1 - 5% = 19.4%
    source = quotes(tmp_path, "1810.HK,44.00,HKD,2026-11-27,0.9150,25000.5,test feed\n")
    pre_refresh = fresh.read_bytes()
    result = refresh_file(fresh, str(source), AS_OF, now=NOW)
    after = xlsx.read(fresh)

    changed_members = [n for n in before.members if before.members[n] != after.members[n]]
    sheets_by_path = {s.path: name for name, s in before.sheets.items()}
    # the one addition: the refresh's record of what it computed from (workbook.calcstate), a custom
    # XML part registered where every part is (content types, the workbook's relationships)
    assert set(after.members) - set(before.members) == calcstate.record_parts(after)
    registered = {"[Content_Types].xml", "xl/_rels/workbook.xml.rels"}
    assert all(n in sheets_by_path or n in registered for n in changed_members), changed_members
    assert {sheets_by_path[n] for n in changed_members if n in sheets_by_path} == \
        {"封面", "盈利预测与估值简表", "主要财务比率", "估值测算", "估值", "敏感性", "评级", "校验"}  # the valuation is at the price date

    v = lambda name: after.value(*cell_of(after, name))
    assert v("MKT_price") == 44.0 and v("MKT_fx_rate") == 0.915 and v("MKT_benchmark_level") == 25000.5
    assert xlsx.from_excel_date(v("MKT_price_date")) == dt.date(2026, 11, 27)
    assert v("MKT_refresh_stamp") == "2026-11-29 09:30:00" and "test feed" in v("MKT_refresh_source")
    assert v("RTG_upside") == pytest.approx(50 / 44 - 1)
    assert v("RTG_computed_rating") == "增持"                                    # 13.6% - 5% = 8.6%
    assert v("RTG_rating_action") == "下调"
    sheet, ref = after.name_cells("SUM_adjusted_pe")[2]
    assert after.value(sheet, ref) == pytest.approx(44.0 * 0.915 / (42581 / 26045), rel=1e-3)

    for name, sheet in before.sheets.items():
        new_sheet = after.sheets[name]
        assert set(sheet.cells) == set(new_sheet.cells)
        for ref, cell in sheet.cells.items():
            new = new_sheet.cells[ref]
            assert new.formula == cell.formula and new.attrs.get("s") == cell.attrs.get("s"), (name, ref)
            if cell.formula is None and before.value(name, ref) != after.value(name, ref):
                stamped = {cell_of(before, n) for n in ("MKT_price", "MKT_price_date", "MKT_fx_rate", "MKT_benchmark_level",
                                                        "MKT_refresh_stamp", "MKT_refresh_source", "AUD_summary")}
                assert (name, ref) in stamped | set(before.name_cells("AUD_items")), (name, ref)
    revenue = after.name_cells("IS_revenue")
    assert [after.value(*c) for c in revenue] == [before.value(*c) for c in revenue]   # statements untouched by price
    assert result.backup.read_bytes() == pre_refresh

    # a second refresh changes the moved sheets and the record's own part, nothing else
    refresh_file(fresh, str(quotes(tmp_path, "1810.HK,45.00,HKD,2026-11-28,0.9150,25000.5,test feed\n")), AS_OF, now=NOW)
    again = xlsx.read(fresh)
    moved = {n for n in after.members if after.members[n] != again.members.get(n)}
    assert set(again.members) == set(after.members)
    assert moved - set(sheets_by_path) == {calcstate.record_part(again)}


def test_override_survives_refresh_flows_and_is_listed(fresh, tmp_path):
    package = xlsx.read(fresh)
    sheet, ref = package.name_cells("IS_smartphone")[3]                          # 2026E
    replaced_formula = package.sheets[sheet].cells[ref].formula
    xlsx.type_values(package, {(sheet, ref): 250000.0}, fresh.with_name("over.xlsm"))
    over = fresh.with_name("over.xlsm")
    refresh_file(over, str(quotes(tmp_path, "1810.HK,41.00,HKD,2026-11-28,0.91,,feed\n")), AS_OF, now=NOW)
    after = xlsx.read(over)
    assert after.sheets[sheet].cells[ref].formula is None and after.value(sheet, ref) == 250000.0
    revenue_2026 = after.name_cells("IS_revenue")[3]
    segments = sum(after.value(*after.name_cells(f"IS_{k}")[3]) for k in ("smartphone", "iot", "internet", "other_revenue", "auto"))
    assert after.value(*revenue_2026) == pytest.approx(segments) and segments > 549_073 + 50_000
    summary = after.value(*after.name_cells("AUD_summary")[0])        # the 校验 sheet carries the same audit
    assert "公式被覆盖 1 处" in summary and "校验 57/57 OK" in summary
    assert f"覆盖 {sheet}!{ref}" in after.value(*after.name_cells("AUD_items")[0])
    result = audit(over)
    assert [(s, c) for s, c, *_ in result.overrides] == [(sheet, ref)]
    assert result.overrides[0].formula == replaced_formula and result.overrides[0].value == 250000.0
    assert not result.check_failures                                               # cash still articulates


def test_edited_formula_is_honoured_and_listed(fresh, tmp_path):
    package = xlsx.read(fresh)
    sheet, ref = package.name_cells("IS_opex")[2]                                  # 2025E
    cell = package.sheets[sheet].cells[ref]
    edited_xml = package.sheets[sheet].xml.replace(f"<f>{cell.formula}</f>", "<f>-80000</f>", 1)
    xlsx.write(package, {package.sheets[sheet].path: edited_xml.encode()}, fresh.with_name("edited.xlsm"))
    edited = fresh.with_name("edited.xlsm")
    refresh_file(edited, str(quotes(tmp_path, "1810.HK,41.00,HKD,2026-11-28,0.91,,feed\n")), AS_OF, now=NOW)
    after = xlsx.read(edited)
    assert after.value(sheet, ref) == -80000.0
    gp, oi = (after.value(*after.name_cells(f"IS_{k}")[2]) for k in ("gross_profit", "other_income"))
    assert after.value(*after.name_cells("IS_operating_profit")[2]) == pytest.approx(gp + oi - 80000)
    assert [(s, c) for s, c, *_ in audit(edited).edited] == [(sheet, ref)]


@pytest.mark.parametrize("body,message", [
    ("", "no quote for 1810.HK"),
    ("9988.HK,80,HKD,2026-11-27,0.91,,x\n", "no quote for 1810.HK"),
    ("1810.HK,-1,HKD,2026-11-27,0.91,,x\n", "price -1 is not positive"),
    ("1810.HK,0,HKD,2026-11-27,0.91,,x\n", "price 0 is not positive"),
    ("1810.HK,40,HKD,2026-11-27,0,,x\n", "FX 0 is not positive"),
    ("1810.HK,40,HKD,2026-01-02,0.91,,x\n", "days before 2026-11-29"),
    ("1810.HK,40,HKD,2026-12-25,0.91,,x\n", "after 2026-11-29"),
    ("1810.HK,40,HKD,2026-11-27,0.91,,x\n1810.HK,41,HKD,2026-11-28,0.91,,y\n", "2 rows for 1810.HK"),
    ("1810.HK,forty,HKD,2026-11-27,0.91,,x\n", "price 'forty' is not a number"),
    ("1810.HK,40,HKD,the 27th,0.91,,x\n", "is not a date"),
    ("1810.HK,40,HKD,03/04/2026,0.91,,x\n", "ambiguous"),
    ("1810.HK,40,CNY,2026-11-27,0.91,,x\n", "is in CNY, the model trades in HKD"),     # the model's currency is used
    ("1810.HK,4020,HKD,2026-11-27,0.91,,x\n", "from the model's 40.2"),               # 100x price: refused
    ("1810.HK,40,HKD,2026-11-27,1.1051,,x\n", "invert"),                              # 1 / 0.9049
    ("1810.HK,40,HKD,2026-11-27,0.91,-5,x\n", "benchmark level -5 is not positive"),
])
def test_bad_quote_is_refused_and_model_untouched(fresh, tmp_path, body, message):
    original = fresh.read_bytes()
    with pytest.raises(QuoteError, match=message):
        refresh_file(fresh, str(quotes(tmp_path, body)), AS_OF, now=NOW)
    assert fresh.read_bytes() == original and not fresh.with_name("model.xlsm.bak").exists()


def test_quotes_file_as_chinese_excel_saves_it_refreshes(fresh, tmp_path):
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes((HEADER + "1810.HK,40,HKD,2026-11-27,0.91,,行情\n").encode("gbk"))
    refresh_file(fresh, str(gbk), AS_OF, now=NOW)
    after = xlsx.read(fresh)
    assert after.value(*cell_of(after, "MKT_price")) == 40.0
    assert after.value(*cell_of(after, "MKT_refresh_source")).startswith("行情")


def test_first_refresh_of_the_shipped_template_uses_the_sample_and_says_so(fresh, tmp_path):
    result = refresh_file(fresh, None, AS_OF, now=NOW)               # 346 days old, but the model holds it already
    after = xlsx.read(fresh)
    assert result.sample and result.quote.price == 40.20 and after.value(*cell_of(after, "MKT_price")) == 40.20
    assert after.value(*cell_of(after, "MKT_refresh_source")).startswith("样本数据 sample data")
    assert "Quotes Source" in after.value(*cell_of(after, "MKT_refresh_source"))


def test_sample_quote_never_overwrites_real_data(fresh, tmp_path):
    refresh_file(fresh, str(quotes(tmp_path, "1810.HK,44.00,HKD,2026-11-27,0.9150,,feed\n")), AS_OF, now=NOW)
    refreshed = fresh.read_bytes()
    with pytest.raises(QuoteError, match="2025-12-18, 346 days before"):
        refresh_file(fresh, None, AS_OF, now=NOW)
    assert fresh.read_bytes() == refreshed
    with pytest.raises(QuoteError, match="before the model's current price date 2026-11-27.*--accept-older"):
        refresh_file(fresh, None, dt.date(2025, 12, 19), now=NOW, accept_move=True)  # replaying the report's day
    result = refresh_file(fresh, None, dt.date(2025, 12, 19), now=NOW, accept_move=True, accept_older=True)
    assert result.quote.price == 40.20 and not result.sample


def test_locked_file_is_refused(fresh, tmp_path):
    (tmp_path / "~$model.xlsm").write_bytes(b"lock")
    with pytest.raises(xlsx.WorkbookError, match="open in Excel"):
        refresh_file(fresh, str(quotes(tmp_path, "1810.HK,41,HKD,2026-11-28,0.91,,x\n")), AS_OF, now=NOW)


def test_a_file_open_in_libreoffice_is_refused_naming_who_has_it(fresh, tmp_path):
    original = fresh.read_bytes()
    (tmp_path / ".~lock.model.xlsm#").write_text(",Wang Fang,ws-17,04.12.2026 09:12,file:///home/wf/.config/libreoffice/4;")
    with pytest.raises(xlsx.WorkbookError, match=r"open in LibreOffice \(lock file \.~lock\.model\.xlsm#, by Wang Fang\)"):
        refresh_file(fresh, str(quotes(tmp_path, "1810.HK,41,HKD,2026-11-28,0.91,,x\n")), AS_OF, now=NOW)
    assert fresh.read_bytes() == original


def test_time_only_moves_forward(fresh, tmp_path):
    """A quote dated before the price the model holds is refused unless the analyst accepts going back."""
    refresh_file(fresh, str(quotes(tmp_path, "1810.HK,43.50,HKD,2026-11-27,0.91,,feed\n")), AS_OF, now=NOW)
    refreshed = fresh.read_bytes()
    older = quotes(tmp_path, "1810.HK,41.00,HKD,2026-11-25,0.91,,feed\n", name="older.csv")
    with pytest.raises(QuoteError) as refused:
        refresh_file(fresh, str(older), AS_OF, now=NOW)
    assert "dated 2026-11-25, before the model's current price date 2026-11-27" in str(refused.value)
    assert "--accept-older" in str(refused.value) and fresh.read_bytes() == refreshed
    same_day = quotes(tmp_path, "1810.HK,43.60,HKD,2026-11-27,0.91,,feed\n", name="same.csv")  # a correction that day
    assert refresh_file(fresh, str(same_day), AS_OF, now=NOW).quote.price == 43.60
    assert refresh_file(fresh, str(older), AS_OF, now=NOW, accept_older=True).quote.price == 41.00
    run = subprocess.run([sys.executable, "-m", "addin", "refresh", str(fresh), "--quotes", str(older), "--as-of", "2026-11-29"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr  # the model now holds 2026-11-25: that quote is no longer older


def test_button_refresh_refuses_an_older_quote_and_names_the_setting(fresh, tmp_path):
    book = fake_excel.Book(fresh)
    refresh_book(book, str(quotes(tmp_path, "1810.HK,43.5,HKD,2026-11-27,0.91,,feed\n")), AS_OF, NOW)
    writes = len(book.writes)
    older = str(quotes(tmp_path, "1810.HK,41.0,HKD,2026-11-25,0.91,,feed\n", name="older.csv"))
    with pytest.raises(QuoteError, match="Quotes Accept Older") as refused:
        refresh_book(book, older, AS_OF, NOW)
    assert "--" not in str(refused.value) and len(book.writes) == writes
    conf = book.sheets["xlwings.conf"]  # the analyst's way in Excel: a setting, as for a large move
    conf.range("A3").value, conf.range("B3").value = "Quotes Accept Older", "TRUE"
    refresh_book(book, older, AS_OF, NOW)
    assert book.names["MKT_price"].refers_to_range.value == 41.0


def _valid_model(path: Path) -> bool:
    with zipfile.ZipFile(path) as z:
        if z.testzip() is not None:
            return False
    package = xlsx.read(path)
    values = evaluate(package)
    return all(v == "OK" for (s, c), v in values.items() if s == "校验" and isinstance(v, str) and v in ("OK", "FAIL"))


def test_every_stage_of_the_write_can_be_stopped_at():
    """The kill tests stop the refresh at each of REPLACE_STAGES: every `_stage` call in
    replace_model is one of them, in that order, so no moment of the write goes untested."""
    tree = ast.parse(inspect.getsource(modelfile.replace_model))
    calls = sorted((node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_stage"),
                   key=lambda node: (node.lineno, node.col_offset))
    assert [node.args[0].value for node in calls] == list(REPLACE_STAGES)


@pytest.mark.long
@pytest.mark.slow  # a refresh process per stage
@pytest.mark.parametrize("stage", REPLACE_STAGES)
def test_kill_during_refresh_never_corrupts_the_original(tmp_path, stage):
    """A refresh killed at each moment of its write: the model is the original, byte for byte, until
    the rename, and a complete refreshed model from then on; never missing or damaged; the
    original's backup, once made, is never lost; only temp files are left, and the next refresh
    removes them and keeps the original among its backups."""
    folder = tmp_path / "models"
    folder.mkdir()
    model = folder / "model.xlsm"
    shutil.copy(TEMPLATE, model)
    original = model.read_bytes()
    source = quotes(tmp_path, "1810.HK,44.00,HKD,2026-11-27,0.9150,,feed\n")

    kill_at(stage, model, source, tmp_path / "markers")

    assert model.exists()
    if at_or_after(stage, "replaced"):
        assert _valid_model(model) and _price(model) == 44.0
    else:
        assert model.read_bytes() == original
    assert [b.read_bytes() for b in backups(model)] == ([original] if at_or_after(stage, "backed up") else [])
    leftovers = sorted(p.name for p in folder.iterdir() if p != model and p not in backups(model))
    assert all(name.startswith(".model.xlsm.") and name.endswith(".refresh.tmp") for name in leftovers), leftovers
    # the model's temp file until it is renamed into place, and the backup's while it is being copied
    assert len(leftovers) == (0 if at_or_after(stage, "replaced") else 2 if stage == "backup copied" else 1), leftovers

    refresh_file(model, str(quotes(tmp_path, "1810.HK,45.00,HKD,2026-11-28,0.9150,,feed\n", "next.csv")), AS_OF, now=NOW)
    assert sorted(p.name for p in folder.iterdir() if p != model and p not in backups(model)) == []
    assert _price(model) == 45.0 and original in [b.read_bytes() for b in backups(model)]


def test_button_refresh_writes_inputs_recalculates_and_stamps(fresh, tmp_path):
    book = fake_excel.Book(fresh)
    source = quotes(tmp_path, "1810.HK,42.5,HKD,2026-11-27,0.91,24000,feed\n")
    refresh_book(book, str(source), AS_OF, NOW)
    value = lambda name: book.names[name].refers_to_range.value
    assert value("MKT_price") == 42.5 and value("MKT_fx_rate") == 0.91 and book.calculated == 1
    assert xlsx.from_excel_date(value("MKT_price_date")) == dt.date(2026, 11, 27)
    assert value("MKT_refresh_stamp") == "2026-11-29 09:30:00"
    assert "校验 57/57 OK" in value("AUD_summary")                   # the audit block, as headless writes it


def test_button_refresh_refuses_a_stale_quote_and_writes_nothing(fresh, tmp_path):
    book = fake_excel.Book(fresh)
    with pytest.raises(QuoteError, match="days before") as refused:
        refresh_book(book, str(quotes(tmp_path, "1810.HK,42.5,HKD,2026-01-01,0.91,,feed\n")), AS_OF, NOW)
    assert "Quotes Max Age Days" in str(refused.value) and "--" not in str(refused.value)
    assert book.writes == [] and book.calculated == 0


def test_batch_refresh_of_a_folder_shows_progress(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for i in range(4):
        shutil.copy(TEMPLATE, folder / f"m{i}.xlsm")
    (folder / "broken.xlsm").write_bytes(b"not a zip")
    source = quotes(tmp_path, "1810.HK,43,HKD,2026-11-27,0.91,,feed\n")
    run = subprocess.run([sys.executable, "-m", "addin", "refresh", str(folder), "--quotes", str(source), "--as-of", "2026-11-29"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert [l.split("]")[0] for l in lines[:5]] == [f"[{i}/5" for i in range(1, 6)]
    assert "broken.xlsm: FAILED: broken.xlsm: not an Excel workbook" in run.stdout
    assert lines[-1] == "refreshed 4 of 5 models; 1 refused"
    assert all(_price(folder / f"m{i}.xlsm") == 43.0 for i in range(4))


def test_provider_interface_reads_the_embedded_file():
    quote = LocalQuotesFile().quote("1810.hk")
    assert (quote.price, quote.fx_to_reporting, quote.price_date) == (40.20, 0.9049, dt.date(2025, 12, 18))


def _price(path):
    package = xlsx.read(path)
    return package.value(*package.name_cells("MKT_price")[0])
