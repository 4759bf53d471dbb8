"""Killing a real refresh at a named moment of its write: the kill tests take their moments from
the refresh's own progress (addin.modelfile.REPLACE_STAGES, reached through its test hook), not
from the clock, so every moment is hit on any machine, however slow or busy."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from addin.modelfile import PAUSE_VARIABLE, REPLACE_STAGES
from conftest import ROOT

SCRIPT = ("import sys, datetime as dt; from addin.refresh import refresh_file; "
          "refresh_file(sys.argv[1], sys.argv[2], dt.date(2026, 11, 29))")
# A refresh reaches its last stage in a second or two; this bound only keeps a hung refresh from
# hanging the suite, and is never what a test asserts.
HANG_GUARD_SECONDS = 300
POLL_SECONDS = 0.02


def at_or_after(stage: str, reference: str) -> bool:
    return REPLACE_STAGES.index(stage) >= REPLACE_STAGES.index(reference)


def kill_at(stage: str, model: Path, quotes: Path, markers: Path) -> None:
    """Run `refresh_file(model, quotes)` in a child process, wait until it reports `stage`, and
    SIGKILL it there. Fails if the refresh ends (or hangs) without reaching the stage."""
    assert stage in REPLACE_STAGES, stage
    markers.mkdir(parents=True, exist_ok=True)
    marker = markers / f"{model.name}.{REPLACE_STAGES.index(stage)}.{os.getpid()}.reached"
    marker.unlink(missing_ok=True)
    env = {**os.environ, PAUSE_VARIABLE: f"{stage}={marker}"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(model), str(quotes)], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        give_up = time.monotonic() + HANG_GUARD_SECONDS
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(f"the refresh ended (exit {proc.returncode}) before the stage {stage!r}: "
                                     f"{proc.stderr.read()[-2000:]}")
            if time.monotonic() > give_up:
                raise AssertionError(f"the refresh hung before the stage {stage!r}")
            time.sleep(POLL_SECONDS)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        marker.unlink(missing_ok=True)
