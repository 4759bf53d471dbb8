"""Concurrent refreshes and kills: the model AND its backups stay valid (issue 15, "Lost or unsafe").

Before the lock, three or four refreshes of one file at once left `.bak` without the original in
every trial, and some failed with "No such file or directory" on a shared temp name."""
from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from addin.modelfile import backups, model_lock, regular_file
from conftest import ROOT
from workbook import xlsx

pytestmark = pytest.mark.slow  # kill and concurrency trials: several processes, each a full refresh

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
HEADER = "ticker,price,currency,price_date,fx_to_reporting,benchmark_level,source\n"
SCRIPT = ("import sys, datetime as dt; from addin.refresh import refresh_file; "
          "refresh_file(sys.argv[1], sys.argv[2], dt.date(2026, 11, 29))")


def price(path: Path) -> float:
    package = xlsx.read(path)
    return package.value(*package.name_cells("MKT_price")[0])


def complete(path: Path) -> bool:
    with zipfile.ZipFile(path) as z:
        return z.testzip() is None


def quotes(folder: Path, value: float) -> Path:
    path = folder / f"q{value:g}.csv"
    path.write_text(HEADER + f"1810.HK,{value},HKD,2026-11-27,0.9150,,feed {value:g}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("trial", range(3))
def test_concurrent_refreshes_of_one_file_keep_every_version(tmp_path, trial):
    model = tmp_path / "m.xlsm"
    shutil.copy(TEMPLATE, model)
    original = model.read_bytes()
    prices = [41.0, 42.0, 43.0, 44.0]
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(model), str(quotes(tmp_path, p))], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for p in prices]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    kept = backups(model)
    assert len(kept) == 4 and all(complete(b) for b in kept)
    assert kept[0].read_bytes() == original                                  # the first backup is the original
    chain = [price(b) for b in kept[1:]] + [price(model)]
    assert sorted(chain) == prices                                           # every refresh's result was kept once
    assert not list(tmp_path.glob(".m.xlsm.*"))                              # no temp file left


def test_second_writer_waits_then_refuses_in_one_line(tmp_path):
    model = tmp_path / "m.xlsm"
    shutil.copy(TEMPLATE, model)
    real = regular_file(model)
    with model_lock(real):
        start = time.monotonic()
        with pytest.raises(xlsx.WorkbookError, match="another refresh or export is writing this model"):
            with model_lock(real, wait=0.3):
                pass
        assert 0.25 <= time.monotonic() - start < 5
    with model_lock(real, wait=0.3):                                         # released: the next writer gets it
        pass


def test_kill_during_refresh_keeps_model_and_backups_valid(tmp_path):
    """Killed at random moments of a refresh of an already refreshed model: the model is the
    previous version or the new one, complete; every backup is a complete earlier version, and
    when the model moved on, the newest backup is exactly what it was before."""
    rng = random.Random(15)
    model = tmp_path / "k.xlsm"
    shutil.copy(TEMPLATE, model)
    original = model.read_bytes()
    subprocess.run([sys.executable, "-c", SCRIPT, str(model), str(quotes(tmp_path, 41.0))], cwd=ROOT, check=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", SCRIPT, str(model), str(quotes(tmp_path, 42.0))], cwd=ROOT, check=True)
    full_run = time.perf_counter() - start
    known = {original, *(b.read_bytes() for b in backups(model)), model.read_bytes()}
    outcomes = {"unchanged": 0, "moved": 0}
    for trial in range(16):
        before = model.read_bytes()
        value = 43.0 + trial
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(model), str(quotes(tmp_path, value))], cwd=ROOT)
        time.sleep(rng.uniform(0.0, full_run * 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = model.read_bytes()
        assert complete(model), f"trial {trial}: damaged model"
        kept = backups(model)
        assert kept and all(complete(b) for b in kept), f"trial {trial}: damaged backup"
        assert all(b.read_bytes() in known for b in kept), f"trial {trial}: a backup that is no earlier version"
        if now == before:
            outcomes["unchanged"] += 1
        else:
            assert price(model) == value
            assert kept[-1].read_bytes() == before, f"trial {trial}: newest backup is not the previous version"
            outcomes["moved"] += 1
        known.add(now)
    assert outcomes["unchanged"] and outcomes["moved"], outcomes
    # The next refresh cleans whatever temp files the killed ones left.
    subprocess.run([sys.executable, "-c", SCRIPT, str(model), str(quotes(tmp_path, 60.0))], cwd=ROOT, check=True)
    assert not list(tmp_path.glob(".k.xlsm.*"))
