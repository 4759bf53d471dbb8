"""The model file on disk: what may be opened, who may write it, and how it is replaced.

Every command that reads a model goes through `regular_file` (a FIFO, a device or a folder is
refused before a byte is read, and so is a file larger than any model); every command that
writes a model, or beside one, holds `model_lock` and replaces the file with `replace_model`:
temp file (unique per process) → verify → timestamped backup of the previous version → rename.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import re
import shutil
import stat
import time
from pathlib import Path

# backups and prune_backups are this module's too: a model's backups are any file's (workbook.files)
from workbook.files import DEFAULT_BACKUPS, backup_name, backups, prune_backups, temp_beside  # noqa: F401
from workbook.xlsx import WorkbookError

# A model is ~120 KB; an analyst's heavily edited one a few MB. Far above that is not a model,
# and reading it would only cost memory before the zip reader refuses it anyway.
MAX_MODEL_BYTES = 64 * 1024 * 1024
MAX_BACKUPS = 1000
LOCK_WAIT_SECONDS = 10.0
_TEMP_SUFFIX = ".refresh.tmp"
# The moments of `replace_model`, in order, at which a test may stop a real process (`_stage`).
REPLACE_STAGES = ("writing", "written", "verified", "backup copied", "backed up", "pruned", "replaced")
PAUSE_VARIABLE = "ER_TEST_PAUSE_AT"


def regular_file(path: str | Path, max_bytes: int = MAX_MODEL_BYTES) -> Path:
    """The real path behind `path` (symlinks resolved), if it is a regular file of sane size;
    WorkbookError naming what it is otherwise. Checked with os.stat, before anything is opened."""
    given = Path(path)
    try:
        real = given.resolve(strict=True)
        info = os.stat(real)
    except FileNotFoundError:
        raise WorkbookError(f"{given}: no such file") from None
    except RuntimeError:  # a symlink loop
        raise WorkbookError(f"{given}: a symbolic link that loops; not a workbook") from None
    except OSError as exc:
        raise WorkbookError(f"{given}: cannot be read ({exc.strerror or exc})") from None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise WorkbookError(f"{given}: is a folder, not a workbook")
    if not stat.S_ISREG(mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise WorkbookError(f"{given}: is {kind}, not a workbook file; refused")
    if info.st_size > max_bytes:
        raise WorkbookError(f"{given}: {info.st_size:,} bytes, more than any model ({max_bytes // (1024 * 1024)} MB); refused")
    return real


def refuse_unwritable(real: Path, given: Path | None = None) -> None:
    """WorkbookError before anything is done when the model may not be replaced: the file is
    read-only (0444: its owner asked for it to be left alone; root ignores permissions, so the
    mode bits are read too), or it lies in a shared "sticky" folder (mode +t, such as /tmp)
    and belongs to someone else, so that the rename onto it would fail half-way."""
    shown = (given or real).name
    info = os.stat(real)
    if not info.st_mode & 0o222 or not os.access(real, os.W_OK):
        raise WorkbookError(f"{shown}: is read-only; refused (make it writable if it should be refreshed)")
    folder = os.stat(real.parent)
    euid = os.geteuid() if hasattr(os, "geteuid") else None
    if folder.st_mode & stat.S_ISVTX and euid not in (0, None, info.st_uid, folder.st_uid):
        raise WorkbookError(f"{shown}: belongs to another user in a shared folder, so it cannot be replaced; refused "
                            "(copy it to a folder of your own)")


# ------------------------------------------------------------------------------------------------
# One writer per model file.
# ------------------------------------------------------------------------------------------------
try:
    import fcntl
except ImportError:  # Windows: Excel's own lock file and os.replace's refusal to replace an open file guard there
    fcntl = None


@contextlib.contextmanager
def model_lock(path: Path, wait: float | None = None):
    """Hold the one write lock of the model file `path` (a real path, see `regular_file`).

    The lock is the model file itself (flock), so no lock file is ever left beside it. A writer
    that replaces the file swaps its inode; a waiter that then gets the lock on the old inode
    notices and locks the new one, so two writers never both hold "the" model."""
    if fcntl is None:
        yield
        return
    # read when called, not when defined: a test racing several writers on a loaded machine waits
    # as long as the others take (monkeypatching the constant), the product keeps its 10 s
    deadline = time.monotonic() + (LOCK_WAIT_SECONDS if wait is None else wait)
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise WorkbookError(f"{path.name}: no such file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise WorkbookError(f"{path.name}: another refresh or export is writing this model; try again when it "
                                    "has finished") from None
            time.sleep(0.05)
            continue
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_ino, current.st_dev) == (os.fstat(fd).st_ino, os.fstat(fd).st_dev):
            break
        os.close(fd)  # replaced while we waited: lock the file that is there now
    try:
        yield
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------
# Backups (workbook.files keeps and names them) and the atomic replace.
# ------------------------------------------------------------------------------------------------
def parse_backups_setting(value, where: str) -> int:
    """xlwings.conf 'Backups': how many previous versions to keep (default 5, 0 keeps none)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_BACKUPS
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if not re.fullmatch(r"\d{1,4}", text) or int(text) > MAX_BACKUPS:
        raise WorkbookError(f"{where}: xlwings.conf 'Backups' is {str(value)[:40]!r}, not a whole number of versions "
                            f"from 0 to {MAX_BACKUPS}")
    return int(text)


def _remove_dead_temps(path: Path) -> None:
    """Temp files of writers killed before they could clean up. Only the lock holder writes
    temps beside a model, so while we hold the lock any such file is a dead process's."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*{_TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _stage(name: str) -> None:
    """A test hook, inert unless PAUSE_VARIABLE is set: the kill tests stop a refresh at each of
    REPLACE_STAGES in turn rather than at moments guessed from the clock, which a slower machine
    never reaches. With ER_TEST_PAUSE_AT="STAGE=MARKER" the process writes the file MARKER on
    reaching STAGE and waits there for the test to kill it."""
    hook = os.environ.get(PAUSE_VARIABLE)
    if not hook:
        return
    stage, _, marker = hook.partition("=")
    if stage == name:
        Path(marker).write_text(name, encoding="utf-8")
        while True:
            time.sleep(60)


def replace_model(path: Path, write, verify, keep: int = DEFAULT_BACKUPS, when: dt.datetime | None = None) -> Path | None:
    """Replace the model `path` (a real path, lock held) with what `write(temp)` writes, after
    `verify(temp)` accepts it. The previous version becomes the newest timestamped backup
    (when `keep` > 0) and older backups beyond `keep` are pruned. A crash or kill at any moment
    leaves the model either as it was or as the verified new version. Returns the backup path."""
    _remove_dead_temps(path)
    temp = temp_beside(path, _TEMP_SUFFIX)
    backup = None
    try:
        _stage("writing")
        write(temp)
        _stage("written")
        verify(temp)
        shutil.copymode(path, temp)  # the analyst's permissions, not mkstemp's 0600
        with open(temp, "rb") as fh:
            os.fsync(fh.fileno())
        _stage("verified")
        if keep > 0:
            # workbook.files names the backup as every command's; the copy is made here, stage by
            # stage, for the kill tests (a killed writer's copy is a dead temp: _remove_dead_temps)
            backup = backup_name(path, when or dt.datetime.now())
            backup_temp = temp_beside(path, ".backup" + _TEMP_SUFFIX)
            try:
                shutil.copy2(path, backup_temp)
                _stage("backup copied")
                os.replace(backup_temp, backup)
                _stage("backed up")
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(backup_temp)
        prune_backups(path, keep)  # before the rename: nothing may fail once the model is replaced
        _stage("pruned")
        os.replace(temp, path)
        _stage("replaced")
    except PermissionError:
        raise WorkbookError(f"{path.name}: cannot write beside it (read-only folder or file open elsewhere)") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return backup
