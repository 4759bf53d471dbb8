"""Writing a whole file so that a reader never sees half of it: write a temporary file beside the
target, give it the permissions a new file of the user's gets (0o666 less the umask, not
mkstemp's 0o600), then rename it into place. An interrupted write leaves the old file as it was
and no temporary file behind.

The refresh's replacement of an open model (`addin/modelfile.py`) takes its temporary files from
here and adds a lock, a verification, the analyst's own permissions and a backup before the same
rename; everything else that writes a file a user keeps uses this module (scratch files in a
temporary folder of our own, such as the bench's copies, are written directly).
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

NEW_FILE_MODE = 0o666  # what open() asks for; the umask takes away what the user withholds


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_beside(path: str | Path, suffix: str = ".tmp") -> Path:
    """An empty, hidden temporary file in `path`'s folder (same file system, so the rename is atomic)."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def put_in_place(temp: str | Path, path: str | Path, mode: int | None = None) -> None:
    """Rename the finished `temp` onto `path`, first giving it `mode` (default: a new file's
    permissions under the umask)."""
    os.chmod(temp, (NEW_FILE_MODE if mode is None else mode) & ~current_umask())
    os.replace(temp, path)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", mode: int | None = None) -> Iterator[Path]:
    """`with atomic_path(out) as temp: writer(temp)`: `out` is replaced only when the block ends
    without an exception; the temporary file is removed either way."""
    temp = temp_beside(path, suffix)
    try:
        yield temp
        put_in_place(temp, path, mode)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def atomic_write(path: str | Path, data: str | bytes, mode: int | None = None, encoding: str = "utf-8") -> Path:
    """Write `data` (text is encoded as given, line ends untouched) to `path` atomically."""
    raw = data.encode(encoding) if isinstance(data, str) else data
    with atomic_path(path, mode=mode) as temp:
        temp.write_bytes(raw)
    return Path(path)


def open_regular(path: Path, limit: int, fail: Callable[[str], Exception], what: str):
    """`path` opened for binary reading if it is a regular file of at most `limit` bytes. A
    symlink is followed to what it names; a folder, device, pipe or socket is refused before
    any read (reading a FIFO would block forever). Anything else raises `fail(message)`, the
    message naming the file and what it was expected to be (`what`: "file", "quotes file")."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise fail(f"{path}: no such {what}") from None
    except OSError as exc:
        raise fail(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise fail(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise fail(f"{path}: not a regular file (a device, pipe or socket); refused")
    if info.st_size > limit:
        raise fail(f"{path.name}: {info.st_size:,} bytes is more than a {what} can be ({limit:,}); refused")
    try:  # opened without blocking and checked again, in case the path was swapped for a pipe meanwhile
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise fail(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise fail(f"{path}: not a regular file (a device, pipe or socket); refused")
    return os.fdopen(fd, "rb")


def read_regular(path: Path, limit: int, fail: Callable[[str], Exception], what: str) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes (see `open_regular`), read
    once; `fail(message)` if it cannot be read or grew past the limit while it was read."""
    with open_regular(path, limit, fail, what) as handle:
        try:
            raw = handle.read(limit + 1)
        except OSError as exc:
            raise fail(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(raw) > limit:  # it grew after it was measured
        raise fail(f"{path.name}: larger than {limit:,} bytes; not a {what}")
    return raw
