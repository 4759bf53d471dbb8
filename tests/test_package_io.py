"""A refresh does each thing once and writes only what changed (issue 23, items 2 and 3).

- The package is read and parsed once, its blueprint once; the written file is verified from
  the parts written (their stored bytes read back, the fresh parts inflated and CRC-checked),
  and a written file that differs from what was meant is refused with the original untouched.
- A member the refresh leaves alone is copied as the archive stores it: its compressed bytes
  are the original's (no inflate and deflate), so a member's stored bytes differ exactly when
  its content does; the refreshed file stays a valid package (tests/ooxml.py).
"""
from __future__ import annotations

import datetime as dt
import shutil
import zipfile
from pathlib import Path

import pytest

from addin import refresh as refresh_module
from addin import template as template_module
from addin.refresh import refresh_file
from conftest import ROOT
from workbook import xlsx, zipparts

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
AS_OF = dt.date(2026, 11, 29)
NOW = dt.datetime(2026, 11, 29, 9, 30)


def _quotes(folder: Path, price: float) -> Path:
    path = folder / f"quotes{price}.csv"
    path.write_text("ticker,price,currency,price_date,fx_to_reporting,benchmark_level,source\n"
                    f"1810.HK,{price},HKD,2026-11-27,0.91,3900.5,test\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def refreshed_once(tmp_path_factory) -> bytes:
    """The template refreshed once: it carries the record the next refresh starts from."""
    folder = tmp_path_factory.mktemp("once")
    model = folder / "model.xlsm"
    shutil.copy(TEMPLATE, model)
    refresh_file(model, str(_quotes(folder, 43.0)), AS_OF, now=NOW)
    return model.read_bytes()


def _stored(path: Path) -> dict:
    return {m.name: m for m in xlsx.read_stored(path)}


def _zipped_elsewhere(source: Path, target: Path) -> None:
    """The package as another program's zip writer might store it: deflated at another level,
    the VBA project stored uncompressed; a recompression by us would change those bytes."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for info in archive.infolist():
            method = zipfile.ZIP_STORED if info.filename.endswith(".bin") else zipfile.ZIP_DEFLATED
            out.writestr(info, archive.read(info), compress_type=method, compresslevel=1)


@pytest.mark.parametrize("kind", ["first refresh", "market refresh", "zipped elsewhere"])
def test_untouched_members_keep_their_stored_bytes(tmp_path, refreshed_once, kind):
    model = tmp_path / "model.xlsm"
    if kind == "first refresh":
        shutil.copy(TEMPLATE, model)
    elif kind == "market refresh":
        model.write_bytes(refreshed_once)
    else:
        (tmp_path / "once.xlsm").write_bytes(refreshed_once)
        _zipped_elsewhere(tmp_path / "once.xlsm", model)
    before = _stored(model)
    refresh_file(model, str(_quotes(tmp_path, 44.25)), AS_OF, now=NOW + dt.timedelta(days=1))
    after = _stored(model)
    assert [n for n in before if n in after] == [n for n in after if n in before]        # order kept
    changed = {n for n in before if n in after and zipparts.inflate(before[n]) != zipparts.inflate(after[n])}
    restored = {n for n in before if n in after and before[n].raw != after[n].raw}
    assert restored == changed, "a member's stored bytes differ exactly when its content does"
    assert "xl/vbaProject.bin" in before and "xl/vbaProject.bin" not in changed
    sheet_parts = {n for n in before if n.startswith("xl/worksheets/sheet")}
    assert 0 < len(changed & sheet_parts) < len(sheet_parts)        # some sheets rewritten, not all
    for name in set(before) & set(after) - changed:
        assert (before[name].info.CRC, before[name].info.compress_type, before[name].info.file_size) == \
            (after[name].info.CRC, after[name].info.compress_type, after[name].info.file_size), name
    with zipfile.ZipFile(model) as archive:               # an independent reader agrees, CRCs included
        assert archive.testzip() is None


def test_a_refresh_reads_the_package_and_the_blueprint_once(tmp_path, refreshed_once, monkeypatch):
    model = tmp_path / "model.xlsm"
    model.write_bytes(refreshed_once)
    calls = {"read": 0, "read_stored": 0, "blueprint": 0}
    read, read_stored, read_blueprint = xlsx.read, xlsx.read_stored, template_module._read_blueprint

    def counting(name, fn):
        def counted(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return counted
    monkeypatch.setattr(xlsx, "read", counting("read", read))
    monkeypatch.setattr(xlsx, "read_stored", counting("read_stored", read_stored))
    monkeypatch.setattr(template_module, "_read_blueprint", counting("blueprint", read_blueprint))
    monkeypatch.setattr(template_module, "_BLUEPRINTS", {})     # as in a fresh process
    result = refresh_file(model, str(_quotes(tmp_path, 44.25)), AS_OF, now=NOW + dt.timedelta(days=1))
    assert result.changed_cells > 0
    # one read to refresh, one read of the stored members to verify what was written
    assert calls == {"read": 1, "read_stored": 2, "blueprint": 1}
    model.write_bytes(refreshed_once)           # the same template's blueprint again: not read again
    refresh_file(model, str(_quotes(tmp_path, 44.5)), AS_OF, now=NOW + dt.timedelta(days=2))
    assert calls == {"read": 2, "read_stored": 4, "blueprint": 1}


def test_verification_refuses_a_written_file_that_differs_from_what_was_meant(tmp_path):
    package = xlsx.read(TEMPLATE)
    sheet, ref = package.name_cells("MKT_price")[0]
    part = package.sheets[sheet].path
    target = tmp_path / "out.xlsm"
    written = xlsx.write(package, {part: xlsx.rewrite_sheet_bytes(package.sheets[sheet], {ref: 44.5})}, target)
    fresh = xlsx.verify_written(target, written, {part})
    assert set(fresh) == {part} and xlsx.parse_sheet(sheet, part, fresh[part]).cells[ref].raw_value == "44.5"

    # A copied member altered on disk (its CRC recomputed, so zip readers would not notice)
    styles = next(i for i, m in enumerate(written) if m.name == "xl/styles.xml")
    content = zipparts.inflate(written[styles]).replace(b"<fonts", b"<fonts ", 1)
    altered = written[:styles] + [zipparts.pack("xl/styles.xml", content, like=written[styles].info)] + written[styles + 1:]
    with open(target, "wb") as out:
        zipparts.write_archive(out, altered)
    with pytest.raises(xlsx.WorkbookError, match="xl/styles.xml was not written as meant"):
        xlsx.verify_written(target, written, {part})

    # A member missing, or one too many
    with open(target, "wb") as out:
        zipparts.write_archive(out, written[:-1])
    with pytest.raises(xlsx.WorkbookError, match="does not hold the parts meant"):
        xlsx.verify_written(target, written, {part})

    # A written part that does not inflate to what its entry says
    at = next(i for i, m in enumerate(written) if m.name == part)
    broken = zipparts.Stored(written[at].info, written[at].raw[:-8] + b"\x00" * 8)
    with open(target, "wb") as out:
        zipparts.write_archive(out, written[:at] + [broken] + written[at + 1:])
    with pytest.raises(xlsx.WorkbookError):
        xlsx.verify_written(target, written[:at] + [broken] + written[at + 1:], {part})


def test_a_refresh_whose_written_file_fails_verification_leaves_the_original(tmp_path, refreshed_once, monkeypatch):
    model = tmp_path / "model.xlsm"
    model.write_bytes(refreshed_once)
    write = xlsx.write

    def write_then_damage(package, replaced, target, *args, **kwargs):
        members = write(package, replaced, target, *args, **kwargs)
        data = bytearray(Path(target).read_bytes())
        vba = next(m for m in members if m.name == "xl/vbaProject.bin")
        at = data.find(vba.raw[:64])
        data[at + 10] ^= 0xFF                          # one byte of a copied member flipped on its way to disk
        Path(target).write_bytes(bytes(data))
        return members
    monkeypatch.setattr(xlsx, "write", write_then_damage)
    with pytest.raises(xlsx.WorkbookError, match="original is untouched|not written as meant|damaged"):
        refresh_file(model, str(_quotes(tmp_path, 44.25)), AS_OF, now=NOW + dt.timedelta(days=1))
    assert model.read_bytes() == refreshed_once
    assert not [p for p in tmp_path.iterdir() if p.name not in ("model.xlsm",) and p.suffix != ".csv"]


def test_a_batch_parses_the_blueprint_once_for_every_model_of_a_template(tmp_path, refreshed_once, monkeypatch):
    """The blueprint, the largest part of a model, is parsed once per content for a batch; each
    model is refreshed as it would be alone, and the batch leaves no parsed sheet behind: the next
    refresh in the process parses its blueprint again (and keeps it for the refreshes after it:
    test_refresh_shared_sheets)."""
    from workbook.layout import BLUEPRINT
    folder, alone = tmp_path / "batch", tmp_path / "alone.xlsm"
    folder.mkdir()
    for i in range(3):
        (folder / f"m{i}.xlsm").write_bytes(refreshed_once)
    alone.write_bytes(refreshed_once)
    parsed = []
    parse_sheet = xlsx.parse_sheet

    def counted(name, *args):
        parsed.append(name)
        return parse_sheet(name, *args)
    monkeypatch.setattr(xlsx, "parse_sheet", counted)
    quotes, when = str(_quotes(tmp_path, 44.25)), NOW + dt.timedelta(days=1)
    outcomes = refresh_module.refresh_many(refresh_module.model_files(folder), quotes, AS_OF, now=when, workers=1)
    assert [o.error for o in outcomes] == [None] * 3
    assert parsed.count(BLUEPRINT) == 1 and parsed.count("xlwings.conf") == 3
    assert refresh_module._BATCH_SHEETS is None          # the batch is over: nothing shared any more
    refresh_file(alone, quotes, AS_OF, now=when)
    assert parsed.count(BLUEPRINT) == 2
    assert all((folder / f"m{i}.xlsm").read_bytes() == alone.read_bytes() for i in range(3))
