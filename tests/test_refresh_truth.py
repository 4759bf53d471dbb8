"""Refresh that tells the truth (issue 14 items 1, 3, 4, 8; issue 15 items 2, 5, 6, 7).

Each test is one "What was seen" line: it failed on main before this work and passes now."""
from __future__ import annotations

import datetime as dt
import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fake_excel
from addin.audit import audit
from addin.modelfile import backups
from addin.quotes import QuoteError
from addin.refresh import ChecksFailed, refresh_book, refresh_file, worker_count
from addin.template import blueprint, template_version, verify_structure
from addin.terminal import clean
from conftest import ROOT
from in_process import run_cli
from workbook import xlsx

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
AS_OF = dt.date(2026, 11, 29)
NOW = dt.datetime(2026, 11, 29, 9, 30)
HEADER = "ticker,price,currency,price_date,fx_to_reporting,benchmark_level,source\n"
GOOD = "1810.HK,44.00,HKD,2026-11-27,0.9150,25000,feed\n"


def cli(*args: str):
    return run_cli(*args)


def cli_process(*args: str, timeout: float = 120):
    """The command in a child process: for a special file that could block a read (a hang must
    end in a timeout, not stop the suite) and for batches that start their own worker processes."""
    return subprocess.run([sys.executable, "-m", "addin", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(run) -> str:
    assert run.returncode != 0, run.stdout
    assert "Traceback" not in run.stderr + run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    return lines[0]


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "model.xlsm"
    shutil.copy(TEMPLATE, path)
    return path


@pytest.fixture
def good_quotes(tmp_path) -> Path:
    path = tmp_path / "quotes.csv"
    path.write_text(HEADER + GOOD, encoding="utf-8")
    return path


def quotes(tmp_path: Path, row: str, name="q.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + row, encoding="utf-8")
    return path


def value(path: Path, name: str):
    package = xlsx.read(path)
    return package.value(*package.name_cells(name)[0])


TEXT_DRIVER = "DRV_d_iot"


@functools.cache
def text_ref() -> str:
    """Where the text driver goes, read from the template when a test first asks (not at collection)."""
    sheet, ref = xlsx.read(ROOT / "workbook" / "xiaomi_1810hk_model.xlsm").name_cells(TEXT_DRIVER)[1]
    return f"{sheet}!{ref}"


def with_text_driver(model: Path) -> Path:
    """The analyst typed the text '20%' into the 2025E IoT growth driver."""
    package = xlsx.read(model)
    cell = package.name_cells(TEXT_DRIVER)[1]
    typed = model.with_name("typed.xlsm")
    xlsx.type_values(package, {cell: "20%"}, typed)
    os.replace(typed, model)
    return model


# ------------------------------------------------------------------------------------------------
# Quotes validated against the model
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row,message", [
    ("1810.HK,44.00,CNY,2026-11-27,0.9150,,feed\n", "is in CNY, the model trades in HKD"),
    ("1810.HK,44.00,USD,2026-11-27,0.9150,,feed\n", "is in USD, the model trades in HKD"),
    ("1810.HK,44.00,HKD,2026-11-27,1.0989,,feed\n", "invert"),
    ("1810.HK,4400,HKD,2026-11-27,0.9150,,feed\n", "from the model's 40.2"),
])
def test_quote_that_does_not_fit_the_model_is_refused_untouched(model, tmp_path, row, message):
    original = model.read_bytes()
    line = one_line_error(cli("refresh", model, "--quotes", quotes(tmp_path, row), "--as-of", AS_OF))
    assert message in line
    assert model.read_bytes() == original and backups(model) == []


def test_accept_move_lets_a_real_move_through(model, tmp_path):
    jump = quotes(tmp_path, "1810.HK,66.00,HKD,2026-11-27,0.9150,,feed\n")          # +64%: beyond the band
    assert "--accept-move" in one_line_error(cli("refresh", model, "--quotes", jump, "--as-of", AS_OF))
    run = cli("refresh", model, "--quotes", jump, "--as-of", AS_OF, "--accept-move")
    assert run.returncode == 0, run.stderr
    assert value(model, "MKT_price") == 66.0


# ------------------------------------------------------------------------------------------------
# Status that tells the truth
# ------------------------------------------------------------------------------------------------
def test_refresh_of_a_model_whose_checks_fail_exits_non_zero_naming_the_cause(model, good_quotes):
    with_text_driver(model)
    run = cli("refresh", model, "--quotes", good_quotes, "--as-of", AS_OF)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    error = run.stderr.strip()
    assert error.count("\n") == 0 and f"{text_ref()} holds text '20%'" in error
    assert "refreshed and saved" in error                                    # the message says the file was written
    assert value(model, "MKT_price") == 44.0 and len(backups(model)) == 1
    assert "CHECKS FAIL" in run.stdout


def test_check_names_the_cause_instead_of_thirty_bare_failures(model):
    with_text_driver(model)
    run = cli("check", model)
    assert run.returncode == 1
    assert f"cause: {text_ref()} holds text '20%'" in run.stdout
    assert run.stdout.count("FAIL ") <= 12                                   # the list is capped, the cause leads


def test_refresh_writes_the_cause_into_the_audit_block(model, good_quotes):
    with_text_driver(model)
    result = refresh_file(model, str(good_quotes), AS_OF, now=NOW)
    assert result.checks_failed and text_ref() in result.status()
    package = xlsx.read(model)
    first_item = package.value(*package.name_cells("AUD_items")[0])
    assert first_item.startswith(f"校验失败原因 {text_ref()} holds text '20%'")


def test_changed_decision_is_type_aware(model, good_quotes):
    """A formula whose new value is FALSE must not keep a cached 0 (0 == False in Python)."""
    package = xlsx.read(model)
    sheet, ref = package.name_cells("RTG_upside")[0]
    cell = package.sheets[sheet].cells[ref]
    xml = package.sheets[sheet].xml
    xml = xml if isinstance(xml, bytes) else xml.encode("utf-8")
    new = f'<c r="{ref}" s="{cell.attrs.get("s", "0")}"><f>1&gt;2</f><v>0</v></c>'.encode()
    edited = model.with_name("edited.xlsm")
    xlsx.write(package, {package.sheets[sheet].path: xml[:cell.span[0]] + new + xml[cell.span[1]:]}, edited)
    assert xlsx.read(edited).value(sheet, ref) == 0 and xlsx.read(edited).value(sheet, ref) is not False
    refresh_file(edited, str(good_quotes), AS_OF, now=NOW)
    assert xlsx.read(edited).value(sheet, ref) is False


# ------------------------------------------------------------------------------------------------
# The button path equals the headless path
# ------------------------------------------------------------------------------------------------
def test_button_refuses_a_cny_quote_like_the_command_line(model, tmp_path):
    book = fake_excel.Book(model)
    with pytest.raises(QuoteError, match="is in CNY, the model trades in HKD"):
        refresh_book(book, str(quotes(tmp_path, "1810.HK,44.00,CNY,2026-11-27,0.9150,,feed\n")), AS_OF, NOW)
    assert book.writes == []


def test_button_on_a_missing_quote_names_the_xlwings_conf_keys(model, tmp_path):
    book = fake_excel.Book(model)
    with pytest.raises(QuoteError) as refused:
        refresh_book(book, str(quotes(tmp_path, "9988.HK,80,HKD,2026-11-27,0.91,,x\n")), AS_OF, NOW)
    assert "Quotes Source" in str(refused.value) and "--" not in str(refused.value)


def test_button_first_click_on_the_shipped_template_works(model):
    book = fake_excel.Book(model)
    result = refresh_book(book, None, AS_OF, NOW)
    assert result.sample and book.calculated == 1
    assert book.names["MKT_refresh_source"].refers_to_range.value.startswith("样本数据 sample data")
    assert "校验 57/57 OK" in book.names["AUD_summary"].refers_to_range.value


def test_button_checks_structure_like_the_command_line(model, good_quotes):
    package = xlsx.read(model)
    cell = package.name_cells("IS_smartphone")[3]
    broken = model.with_name("broken.xlsm")
    xlsx.type_values(package, {cell: "abc"}, broken)                         # text where a formula belongs
    with pytest.raises(xlsx.WorkbookError, match="holds the text 'abc'"):
        refresh_book(fake_excel.Book(broken), str(good_quotes), AS_OF, NOW)


def test_button_reports_failing_checks_with_their_cause(model, good_quotes):
    book = fake_excel.Book(with_text_driver(model))
    with pytest.raises(ChecksFailed, match=re.escape(f"{text_ref()} holds text '20%'")):
        refresh_book(book, str(good_quotes), AS_OF, NOW)
    assert book.names["MKT_price"].refers_to_range.value == 44.0              # refreshed all the same


# ------------------------------------------------------------------------------------------------
# Backups
# ------------------------------------------------------------------------------------------------
def test_backups_keep_the_last_five_versions_oldest_pruned(model, tmp_path):
    versions = [model.read_bytes()]
    for i in range(7):
        source = quotes(tmp_path, f"1810.HK,{41 + i},HKD,2026-11-27,0.9150,,feed\n")
        result = refresh_file(model, str(source), AS_OF, now=NOW + dt.timedelta(minutes=i))
        assert result.backup.read_bytes() == versions[-1]                    # the newest backup: the previous version
        versions.append(model.read_bytes())
    kept = backups(model)
    assert [p.read_bytes() for p in kept] == versions[2:7]
    assert kept[-1].name == "model.xlsm.20261129-093600.bak"


def test_backups_count_comes_from_xlwings_conf(model, tmp_path):
    package = xlsx.read(model)
    xlsx.type_values(package, {("xlwings.conf", "A3"): "Backups", ("xlwings.conf", "B3"): 2.0}, model.with_name("c.xlsm"))
    os.replace(model.with_name("c.xlsm"), model)
    for i in range(4):
        refresh_file(model, str(quotes(tmp_path, f"1810.HK,{41 + i},HKD,2026-11-27,0.9150,,feed\n")), AS_OF, now=NOW)
    kept = backups(model)
    assert len(kept) == 2 and [value(p, "MKT_price") for p in kept] == [42.0, 43.0]


@pytest.mark.parametrize("setting", ["lots", "-1", "1e400", "2.5"])
def test_bad_backups_setting_is_one_line(model, good_quotes, setting):
    package = xlsx.read(model)
    xlsx.type_values(package, {("xlwings.conf", "A3"): "Backups", ("xlwings.conf", "B3"): setting}, model.with_name("c.xlsm"))
    os.replace(model.with_name("c.xlsm"), model)
    original = model.read_bytes()
    assert "'Backups'" in one_line_error(cli("refresh", model, "--quotes", good_quotes, "--as-of", AS_OF))
    assert model.read_bytes() == original


# ------------------------------------------------------------------------------------------------
# Only regular files; symlinks refreshed in place
# ------------------------------------------------------------------------------------------------
def test_symlink_is_resolved_and_the_real_model_refreshed(model, good_quotes, tmp_path):
    link = tmp_path / "link.xlsm"
    link.symlink_to(model)
    run = cli("refresh", link, "--quotes", good_quotes, "--as-of", AS_OF)
    assert run.returncode == 0, run.stderr
    assert link.is_symlink() and link.resolve() == model.resolve()
    assert value(model, "MKT_price") == 44.0
    assert len(backups(model)) == 1


@pytest.mark.parametrize("special", ["fifo", "dev_zero", "folder", "link_to_dev_zero", "huge"])
def test_special_files_are_refused_before_reading(tmp_path, good_quotes, special):
    target = tmp_path / f"{special}.xlsm"
    if special == "fifo":
        os.mkfifo(target)
    elif special == "dev_zero":
        target = Path("/dev/zero")
    elif special == "folder":
        target.mkdir()
    elif special == "link_to_dev_zero":
        target.symlink_to("/dev/zero")
    else:
        with open(target, "wb") as fh:                                      # sparse: no disk used
            fh.truncate(200 * 1024 * 1024)
    for command in (("refresh", target, "--quotes", good_quotes), ("check", target), ("diff", target, target)):
        line = one_line_error(cli_process(*command, timeout=30))
        assert any(word in line for word in ("named pipe", "device", "folder", "more than any model")), line


# ------------------------------------------------------------------------------------------------
# Batch keeps going; workers bounded
# ------------------------------------------------------------------------------------------------
def test_batch_with_one_broken_file_among_six_reports_all(tmp_path, good_quotes):
    folder = tmp_path / "models"
    folder.mkdir()
    for i in range(5):
        shutil.copy(TEMPLATE, folder / f"m{i}.xlsm")
    package = xlsx.read(TEMPLATE)
    bp = package.sheets["_blueprint"]
    xlsx.type_values(package, {("_blueprint", "B7"): 12345.0}, folder / "m2_broken.xlsm")   # a number for a cell ref
    assert "B7" in bp.cells
    run = cli_process("refresh", folder, "--quotes", good_quotes, "--as-of", AS_OF, "--workers", "100", timeout=300)
    assert run.returncode == 1 and "Traceback" not in run.stderr + run.stdout
    lines = run.stdout.splitlines()
    assert len([l for l in lines if l.startswith("[")]) == 6
    assert any("m2_broken.xlsm: FAILED: " in l and "_blueprint!B7 holds 12345" in l for l in lines), lines
    assert lines[-1] == "refreshed 5 of 6 models; 1 refused"
    assert all(value(folder / f"m{i}.xlsm", "MKT_price") == 44.0 for i in range(5))


def test_the_batch_summary_groups_refusals_by_reason_and_names_each_workers_peak_memory():
    from addin.refresh import BatchSummary, Outcome
    stale = "quote for 1810.HK is 40 days before 2026-11-29"
    outcomes = [Outcome(Path(f"m{i}.xlsm"), None, 12, True, None, 101 + i % 2, 60_000 + i) for i in range(3)]
    outcomes += [Outcome(Path(f"s{i}.xlsm"), f"s{i}.xlsm: {stale}", 0, False, None, 101, 64_000) for i in range(7)]
    outcomes += [Outcome(Path("x.xlsm"), "x.xlsm: not an Excel workbook (not a zip package)", 0, False, None, 102, 50_000),
                 Outcome(Path("c.xlsm"), "c.xlsm: checks fail: 预测假设!F9 holds text '20%'", 5, True, None, 102, 61_000)]
    summary = BatchSummary.of(outcomes)
    assert (summary.refreshed, len(summary.failing)) == (3, 1)
    assert summary.peak_kb_by_worker == {101: 64_000, 102: 61_000}        # each worker's highest, not the sum
    assert summary.lines() == [
        f"refused, 7 files: {stale} (s0.xlsm, s1.xlsm, s2.xlsm, s3.xlsm, s4.xlsm and 2 more)",
        "refused, 1 file: not an Excel workbook (not a zip package) (x.xlsm)",
        "written, checks fail: c.xlsm: checks fail: 预测假设!F9 holds text '20%'",
        "peak memory per worker process: 62 MB, 60 MB"]


def test_workers_are_bounded_by_cores_and_files():
    assert worker_count(100, 3) <= min(3, os.cpu_count() or 1)
    assert worker_count(2, 1) == 1 and worker_count(1, 50) == 1
    assert "processes" in one_line_error(cli("refresh", TEMPLATE, "--workers", "0"))


# ------------------------------------------------------------------------------------------------
# Terminal output
# ------------------------------------------------------------------------------------------------
def test_clean_escapes_control_characters_and_keeps_text():
    exp_got = [("营业收入 1,234", "营业收入 1,234"), ("a\x1b[31mred", "a\\x1b[31mred"), ("nul\x00", "nul\\x00"),
               ("bidi\u202eevil", "bidi\\u202eevil"), ("two\nlines\tok", "two\nlines\tok"), ("cr\r", "cr\\x0d")]
    for text, expected in exp_got:
        assert clean(text) == expected


def test_show_escapes_control_characters_from_labels(tmp_path):
    data = (ROOT / "workbook" / "data" / "xiaomi_1810hk.toml").read_text(encoding="utf-8")
    if "[labels]" in data:
        data = data.replace("[labels]", '[labels]\nsmartphone = "智能手机\\u001b[2J\\u0000"', 1)
    else:
        data += '\n[labels]\nsmartphone = "智能手机\\u001b[2J\\u0000"\n'
    company = tmp_path / "xiaomi_1810hk.toml"
    company.write_text(data, encoding="utf-8")
    run = cli("show", "--data", company)
    assert "\x1b" not in run.stdout and "\x00" not in run.stdout
    assert "智能手机\\x1b[2J\\x00" in run.stdout


def test_closed_pipe_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "addin", "show"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()                                                      # `show | head -1`
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and stderr == ""


# ------------------------------------------------------------------------------------------------
# Template identity
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_template_resaved_by_libreoffice_is_still_our_model(tmp_path, libreoffice_resave):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(libreoffice_resave, out / TEMPLATE.name)
    resaved = xlsx.read(out / TEMPLATE.name)
    assert template_version(resaved) == "1.0"
    verify_structure(resaved)
    assert audit(resaved).edited == []                                       # LibreOffice's spelling is not an edit
    source = tmp_path / "q.csv"
    source.write_text(HEADER + GOOD, encoding="utf-8")
    result = refresh_file(out / TEMPLATE.name, str(source), AS_OF, now=NOW)  # its TRUE() setting is read, not evaluated
    after = xlsx.read(out / TEMPLATE.name)
    assert not result.checks_failed and after.value(*after.name_cells("MKT_price")[0]) == 44.0
    assert after.members["xl/vbaProject.bin"] == resaved.members["xl/vbaProject.bin"]


def _edit_blueprint(tmp_path, cells: dict) -> Path:
    target = tmp_path / "bp.xlsm"
    xlsx.type_values(xlsx.read(TEMPLATE), {("_blueprint", ref): v for ref, v in cells.items()}, target)
    return target


@pytest.mark.parametrize("cells,message", [
    ({"B9": 7.0}, "_blueprint!B9 holds 7.0"),
    ({"B9": "not a cell!"}, "not a cell reference"),
    ({"C9": "garbage"}, "not a kind of cell"),
    ({"A1": "sheet name"}, "no 'sheet' column"),
])
def test_damaged_blueprint_is_one_line(tmp_path, cells, message):
    damaged = _edit_blueprint(tmp_path, cells)
    with pytest.raises(xlsx.WorkbookError, match=message):
        blueprint(xlsx.read(damaged))
    for command in (("check", damaged), ("refresh", damaged), ("export", damaged, "-o", tmp_path / "x.xlsx")):
        assert message in one_line_error(cli(*command))


def test_five_thousand_digit_template_version_is_one_line(tmp_path):
    import zipfile
    target = tmp_path / "v.xlsm"
    with zipfile.ZipFile(TEMPLATE) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/custom.xml":
                data = data.replace(b"<vt:lpwstr>1.0</vt:lpwstr>", b"<vt:lpwstr>" + b"9" * 5000 + b"</vt:lpwstr>")
            dst.writestr(info, data)
    for command in (("check", target), ("refresh", target)):
        assert "is not a version number" in one_line_error(cli(*command))


@pytest.mark.parametrize("setting", ["1e400", "soon", "-3"])
def test_bad_max_age_setting_is_one_line(model, good_quotes, setting):
    package = xlsx.read(model)
    xlsx.type_values(package, {("xlwings.conf", "A3"): "Quotes Max Age Days", ("xlwings.conf", "B3"): setting},
                     model.with_name("c.xlsm"))
    os.replace(model.with_name("c.xlsm"), model)
    original = model.read_bytes()
    assert "'Quotes Max Age Days'" in one_line_error(cli("refresh", model, "--quotes", good_quotes, "--as-of", AS_OF))
    assert model.read_bytes() == original


def test_batch_says_failed_for_a_model_whose_checks_fail(tmp_path, good_quotes):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(TEMPLATE, folder / "a.xlsm")
    shutil.copy(TEMPLATE, folder / "b.xlsm")
    with_text_driver(folder / "b.xlsm")
    run = cli_process("refresh", folder, "--quotes", good_quotes, "--as-of", AS_OF, timeout=300)
    assert run.returncode == 1
    # each file is shown as it finishes, in whichever order the two workers finish them
    assert any(re.match(r"\[[12]/2\] b\.xlsm: FAILED: ", l) and f"{text_ref()} holds text '20%'" in l
               for l in run.stdout.splitlines()), run.stdout
    assert run.stdout.splitlines()[-1] == "refreshed 1 of 2 models; 1 written with failing checks"
    assert value(folder / "b.xlsm", "MKT_price") == 44.0


def test_button_re_runs_the_driver_grid_on_the_drivers_the_workbook_shows_now(model, good_quotes):
    """A driver typed in the open workbook and not saved: the Refresh button's sensitivity table
    re-runs the engine on it, as the headless refresh does on a file."""
    import dataclasses
    from udfs.engine import driver_key
    from workbook.company import load
    from workbook.model import default_sensitivity, driver_sensitivity
    book = fake_excel.Book(model)
    for cell in book.package.name_cells("DRV_d_internet")[1:]:
        book.sheets[cell[0]].range(cell[1]).value = 0.30        # typed in Excel, not saved
    refresh_book(book, str(good_quotes), AS_OF, NOW)
    grid = [book.sheets[s].range(r).value for s, r in book.package.name_cells("SENS_eps_grid")]
    company = load()
    inputs = dict(company.inputs)
    for y in company.forecast_years:
        inputs[(driver_key("internet"), y.label)] = 0.30
    a, xs, b, ys = default_sensitivity(company)
    expected = driver_sensitivity(dataclasses.replace(company, inputs=inputs), a, xs, b, ys, "val_eps",
                                  company.forecast_years[0].label)
    assert grid == pytest.approx([v for row in expected for v in row], rel=1e-12)
