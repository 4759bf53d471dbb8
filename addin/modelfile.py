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
from workbook.files import DEFAULT_BACKUPS, backups, keep_backup, prune_backups, temp_beside  # noqa: F401
from workbook.xlsx import WorkbookError

# A model is ~120 KB; an analyst's heavily edited one a few MB. Far above that is not a model,
# and reading it would only cost memory before the zip reader refuses it anyway.
MAX_MODEL_BYTES = 64 * 1024 * 1024
MAX_BACKUPS = 1000
LOCK_WAIT_SECONDS = 10.0
_TEMP_SUFFIX = ".refresh.tmp"


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


# ------------------------------------------------------------------------------------------------
# One writer per model file.
# ------------------------------------------------------------------------------------------------
try:
    import fcntl
except ImportError:  # Windows: Excel's own lock file and os.replace's refusal to replace an open file guard there
    fcntl = None


@contextlib.contextmanager
def model_lock(path: Path, wait: float = LOCK_WAIT_SECONDS):
    """Hold the one write lock of the model file `path` (a real path, see `regular_file`).

    The lock is the model file itself (flock), so no lock file is ever left beside it. A writer
    that replaces the file swaps its inode; a waiter that then gets the lock on the old inode
    notices and locks the new one, so two writers never both hold "the" model."""
    if fcntl is None:
        yield
        return
    deadline = time.monotonic() + wait
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


def replace_model(path: Path, write, verify, keep: int = DEFAULT_BACKUPS, when: dt.datetime | None = None) -> Path | None:
    """Replace the model `path` (a real path, lock held) with what `write(temp)` writes, after
    `verify(temp)` accepts it. The previous version becomes the newest timestamped backup
    (when `keep` > 0) and older backups beyond `keep` are pruned. A crash or kill at any moment
    leaves the model either as it was or as the verified new version. Returns the backup path."""
    _remove_dead_temps(path)
    temp = temp_beside(path, _TEMP_SUFFIX)
    backup = None
    try:
        write(temp)
        verify(temp)
        shutil.copymode(path, temp)  # the analyst's permissions, not mkstemp's 0600
        with open(temp, "rb") as fh:
            os.fsync(fh.fileno())
        if keep > 0:
            backup = keep_backup(path, when, ".backup" + _TEMP_SUFFIX)  # a killed writer's copy is a dead temp
        os.replace(temp, path)
        prune_backups(path, keep)
    except PermissionError:
        raise WorkbookError(f"{path.name}: cannot write beside it (read-only folder or file open elsewhere)") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return backup
