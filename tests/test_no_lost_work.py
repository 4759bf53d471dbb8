"""Nothing the analyst made is lost (issue 24): every command that writes a file refuses an existing
output unless --force (and then keeps the previous file as NAME.YYYYMMDD-HHMMSS.bak), refuses to
write over its own input, refuses while Excel, WPS or LibreOffice holds the output open (their
lock files), and every command that only reads a model says when it is open there."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from addin.cli import EXIT_FAILED, EXIT_OK, main
from conftest import ROOT
from workbook.files import OutputError, backups, check_output, open_elsewhere, output_file, write_output

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
KYSEC_DATA = ROOT / "workbook" / "data" / "kysec_300592sz.toml"
KYSEC_REPORT = ROOT / "workbook" / "data" / "kysec_300592sz.report.toml"
PRECIOUS = b"the analyst's refreshed price and driver edits"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(code: int, err: str, *words: str) -> None:
    assert code == EXIT_FAILED, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def excel_lock(path: Path, user: str = "Li Lei") -> Path:
    """The owner file Excel writes beside a workbook it has open: the user's name, length first."""
    lock = path.with_name("~$" + path.name)
    name = user.encode()
    lock.write_bytes(bytes([len(name)]) + name + b"\x00" * (54 - len(name)))
    return lock


def libreoffice_lock(path: Path, user: str = "Wang Fang") -> Path:
    lock = path.with_name(f".~lock.{path.name}#")
    lock.write_text(f",{user},ws-17,05.12.2026 09:12,file:///home/wf/.config/libreoffice/4;", encoding="utf-8")
    return lock


def precious(path: Path) -> Path:
    path.write_bytes(PRECIOUS)
    return path


# ------------------------------------------------------------------------------------------------
# The helper itself
# ------------------------------------------------------------------------------------------------
def test_output_file_refuses_keeps_a_backup_with_force_and_leaves_no_temporary(tmp_path):
    target = precious(tmp_path / "out.toml")
    with pytest.raises(OutputError, match="exists; choose another name, or pass --force"):
        write_output(target, "new")
    assert target.read_bytes() == PRECIOUS
    write_output(target, "new", force=True)
    assert target.read_text() == "new"
    kept = backups(target)
    assert len(kept) == 1 and kept[0].read_bytes() == PRECIOUS and kept[0].name.startswith("out.toml.")
    with pytest.raises(RuntimeError), output_file(target, force=True) as temp:
        temp.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "new" and len(backups(target)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.toml", kept[0].name])


def test_force_keeps_the_files_permissions_and_writes_through_a_link(tmp_path):
    real = precious(tmp_path / "real.toml")
    os.chmod(real, 0o640)
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    write_output(link, "new", force=True)
    assert link.is_symlink() and real.read_text() == "new" and os.stat(real).st_mode & 0o777 == 0o640
    assert backups(real)[0].read_bytes() == PRECIOUS


def test_backups_are_pruned_before_the_rename_and_a_colleagues_stays(tmp_path, monkeypatch):
    """As the refresh does (issue 25): nothing may fail once the output is replaced, so old
    backups go before the rename; one we may not delete stays."""
    import workbook.files as files

    target = precious(tmp_path / "out.toml")
    old = [tmp_path / f"out.toml.2020010{i}-090000.bak" for i in range(1, 4)]
    for path in old:
        path.write_text("old", encoding="utf-8")
    temp = tmp_path / "new.tmp"
    temp.write_text("new", encoding="utf-8")

    real_replace = os.replace
    def failing_rename(source, destination):  # the output's rename: pruning must be done already
        if Path(source) == temp:
            raise OSError("disk gone")
        return real_replace(source, destination)
    monkeypatch.setattr(files.os, "replace", failing_rename)
    with pytest.raises(OSError, match="disk gone"):
        files.place_output(temp, target, force=True, keep=2)
    assert target.read_bytes() == PRECIOUS and not old[0].exists() and not old[1].exists()
    assert [p.read_bytes() for p in backups(target)] == [b"old", PRECIOUS]
    monkeypatch.undo()

    real_unlink = Path.unlink
    def not_ours(path, *args, **kwargs):
        if path == old[2]:
            raise PermissionError("a colleague's, in a shared sticky folder")
        return real_unlink(path, *args, **kwargs)
    monkeypatch.setattr(Path, "unlink", not_ours)
    files.place_output(temp, target, force=True, keep=1)
    assert target.read_text(encoding="utf-8") == "new" and old[2].exists()


@pytest.mark.parametrize("lock", [excel_lock, libreoffice_lock])
def test_a_file_open_in_a_spreadsheet_program_is_never_written_even_with_force(tmp_path, lock):
    target = precious(tmp_path / "model.xlsm")
    lock(target)
    with pytest.raises(OutputError, match="close it there first"):
        write_output(target, "new", force=True)
    assert target.read_bytes() == PRECIOUS and backups(target) == []
    assert "Li Lei" in open_elsewhere(target) if lock is excel_lock else "Wang Fang" in open_elsewhere(target)


def test_the_input_itself_is_never_an_output(tmp_path):
    model = precious(tmp_path / "model.xlsx")
    with pytest.raises(OutputError, match="is the input file itself"):
        check_output(model, force=True, sources=[model])


# ------------------------------------------------------------------------------------------------
# One test per writing command
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["build"], ["new", "--data", KYSEC_DATA]])
def test_build_and_new_refuse_an_existing_model_and_keep_it_with_force(tmp_path, capsys, command):
    target = precious(tmp_path / "victim.xlsm")
    code, _, err = run(capsys, *command, "-o", target)
    refused(code, err, "victim.xlsm: exists", "--force")
    assert target.read_bytes() == PRECIOUS
    excel_lock(target)
    code, _, err = run(capsys, *command, "-o", target, "--force")
    refused(code, err, "open in Excel (lock file ~$victim.xlsm, by Li Lei)", "close it there first")
    assert target.read_bytes() == PRECIOUS
    target.with_name("~$victim.xlsm").unlink()
    code, out, err = run(capsys, *command, "-o", target, "--force")
    assert code == EXIT_OK, err
    kept = backups(target)
    assert len(kept) == 1 and kept[0].read_bytes() == PRECIOUS and kept[0].name in out
    assert target.read_bytes()[:2] == b"PK"


@pytest.mark.parametrize("native", [False, True])
def test_export_refuses_an_existing_copy_and_its_own_input(tmp_path, capsys, native):
    model = Path(shutil.copy(TEMPLATE, tmp_path / "model.xlsm"))
    flag = ["--native"] if native else []
    copy = precious(tmp_path / "copy.xlsx")
    code, _, err = run(capsys, "export", model, "-o", copy, *flag)
    refused(code, err, "copy.xlsx: exists", "--force")
    assert copy.read_bytes() == PRECIOUS
    code, out, err = run(capsys, "export", model, "-o", copy, *flag, "--force")
    assert code == EXIT_OK, err
    assert backups(copy)[0].read_bytes() == PRECIOUS and "kept as copy.xlsx." in out
    saved_as_xlsx = Path(shutil.copy(TEMPLATE, tmp_path / "saved.xlsx"))  # the model, saved as .xlsx by hand
    before = saved_as_xlsx.read_bytes()
    code, _, err = run(capsys, "export", saved_as_xlsx, "-o", saved_as_xlsx, *flag, "--force")
    refused(code, err, "is the input file itself")
    assert saved_as_xlsx.read_bytes() == before


def test_import_refuses_to_replace_an_edited_company_file(tmp_path, capsys):
    from test_import import FICTIONAL_NOTE

    note = tmp_path / "note.txt"
    note.write_text(FICTIONAL_NOTE, encoding="utf-8")
    out = tmp_path / "models"
    out.mkdir()
    code, _, err = run(capsys, "import", note, "-o", out, "--name", "demo")
    assert code in (EXIT_OK, EXIT_FAILED) and "exists" not in err, err
    company = out / "demo.toml"
    edited = company.read_text(encoding="utf-8") + "\n# the analyst's edit\n"
    company.write_text(edited, encoding="utf-8")
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run(capsys, "import", note, "-o", out, "--name", "demo")
    refused(code, err, "exists", "--force")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written  # nothing written at all
    code, _, err = run(capsys, "import", note, "-o", out, "--name", "demo", "--force")
    assert "exists" not in err, err
    assert backups(company)[-1].read_text(encoding="utf-8") == edited
    assert "the analyst's edit" not in company.read_text(encoding="utf-8")


def test_lite_refuses_its_files_and_keeps_them_with_force(tmp_path, capsys):
    out = tmp_path / "lite"
    out.mkdir()
    main_py = precious(out / "main.py")
    code, _, err = run(capsys, "lite", "-o", out)
    refused(code, err, "main.py: exists", "--force")
    assert main_py.read_bytes() == PRECIOUS and not (out / "requirements.txt").exists()
    code, _, err = run(capsys, "lite", "-o", out, "--force")
    assert code == EXIT_OK, err
    assert backups(main_py)[0].read_bytes() == PRECIOUS


def test_bench_refuses_an_existing_figures_file_before_measuring(tmp_path, capsys):
    figures = precious(tmp_path / "bench.json")
    code, _, err = run(capsys, "bench", "--quick", "--json", figures)
    refused(code, err, "bench.json: exists", "--force")
    assert figures.read_bytes() == PRECIOUS


def test_calibrate_write_keeps_the_previous_company_file(tmp_path, capsys):
    company = Path(shutil.copy(KYSEC_DATA, tmp_path / "kysec_300592sz.toml"))
    report = Path(shutil.copy(KYSEC_REPORT, tmp_path / "kysec_300592sz.report.toml"))
    before = company.read_bytes()
    libreoffice_lock(company)
    code, _, err = run(capsys, "calibrate", report, "--write")
    refused(code, err, "open in LibreOffice")
    assert company.read_bytes() == before
    company.with_name(f".~lock.{company.name}#").unlink()
    code, out, err = run(capsys, "calibrate", report, "--write")
    assert code == EXIT_OK, err
    assert backups(company)[0].read_bytes() == before and "kept as" in out


def test_roll_refuses_an_existing_output_before_any_work(tmp_path, capsys):
    model = Path(shutil.copy(TEMPLATE, tmp_path / "model.xlsm"))
    rolled = precious(tmp_path / "rolled.xlsm")
    actuals = tmp_path / "fy.toml"
    actuals.write_text('[company]\nticker = "1810.HK"\n', encoding="utf-8")
    code, _, err = run(capsys, "roll", model, "--actuals", actuals, "-o", rolled)
    refused(code, err, "rolled.xlsm: exists", "--force")
    assert rolled.read_bytes() == PRECIOUS
    libreoffice_lock(rolled)
    code, _, err = run(capsys, "roll", model, "--actuals", actuals, "-o", rolled, "--force")
    refused(code, err, "open in LibreOffice")


def test_roll_template_follows_the_same_rule(tmp_path, capsys):
    """`roll --template -o FY.toml` (results day's actuals file to fill) is a writer like any other."""
    model = Path(shutil.copy(TEMPLATE, tmp_path / "model.xlsm"))
    target = precious(tmp_path / "fy.toml")
    code, _, err = run(capsys, "roll", model, "--template", "-o", target)
    refused(code, err, "fy.toml: exists", "--force")
    excel_lock(target)
    code, _, err = run(capsys, "roll", model, "--template", "-o", target, "--force")
    refused(code, err, "open in Excel", "Li Lei")
    assert target.read_bytes() == PRECIOUS
    target.with_name("~$" + target.name).unlink()
    code, _, err = run(capsys, "roll", model, "--template", "-o", model.with_suffix(".toml"))
    assert code == EXIT_OK, err
    code, out, err = run(capsys, "roll", model, "--template", "-o", target, "--force")
    assert code == EXIT_OK, err
    [kept] = backups(target)
    assert kept.read_bytes() == PRECIOUS and f"kept as {kept.name}" in out
    assert target.read_bytes() == model.with_suffix(".toml").read_bytes()


# ------------------------------------------------------------------------------------------------
# Readers say that what is on screen in Excel is not what they read
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["check", "{model}"], ["diff", "{model}", "{model}"], ["export", "{model}", "-o", "{out}"],
    ["publish", "{model}", "--db", "{db}"], ["revisions", "{model}", "{model}"],
])
def test_readers_warn_that_unsaved_edits_in_excel_are_not_seen(tmp_path, capsys, command):
    model = Path(shutil.copy(TEMPLATE, tmp_path / "model.xlsm"))
    excel_lock(model)
    fill = {"model": model, "out": tmp_path / "copy.xlsx", "db": tmp_path / "e.sqlite"}
    code, _, err = run(capsys, *(part.format(**fill) for part in command))
    assert code in (EXIT_OK, EXIT_FAILED)
    warning = [line for line in err.splitlines() if line.startswith("warning: model.xlsm is open in Excel")]
    assert warning and "unsaved edits there are not seen" in warning[0], err


def test_show_warns_for_a_company_file_open_elsewhere(tmp_path, capsys):
    data = Path(shutil.copy(KYSEC_DATA, tmp_path / "kysec_300592sz.toml"))
    libreoffice_lock(data)
    code, _, err = run(capsys, "show", "--data", data)
    assert code == EXIT_OK and "warning: kysec_300592sz.toml is open in LibreOffice" in err
