"""Writing a whole file so that a reader never sees half of it, and never losing the analyst's work.

- `atomic_path` / `atomic_write`: write a temporary file beside the target, give it the
  permissions a new file of the user's gets (0o666 less the umask, not mkstemp's 0o600), then
  rename it into place. An interrupted write leaves the old file as it was and no temporary file.
- `output_file` / `write_output`: the same, for a file a command writes where the user said
  (`-o`): refused while the file is open in Excel, WPS or LibreOffice (their lock files beside
  it), refused when it exists unless `force`, and then the previous version is kept as
  `NAME.YYYYMMDD-HHMMSS.bak` before the rename, as a refresh keeps it. Every command writes its
  outputs through these (`check_output` refuses early, before any work; `place_output` is the
  last step for a writer that makes its own temporary file).
- `open_elsewhere`: what a reader says when the file it reads is open in a spreadsheet program
  (the program's unsaved edits are not in the file).

The refresh's replacement of an open model (`addin/modelfile.py`) takes its temporary files and
backups from here and adds a lock, a verification and the analyst's own permissions before the
same rename (scratch files in a temporary folder of our own, such as the bench's copies, are
written directly).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from udfs.errors import FileError

NEW_FILE_MODE = 0o666  # what open() asks for; the umask takes away what the user withholds
DEFAULT_BACKUPS = 5    # previous versions kept beside a file (xlwings.conf 'Backups' for a refreshed model)
_BACKUP_STAMP = "%Y%m%d-%H%M%S"


class OutputError(FileError):
    """An output a command must not write (open elsewhere, already there, the input itself)."""


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


# Text files other programs write (decode_text): the byte-order marks.
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# First bytes of files given where text belongs: what they are, and what to do instead.
NOT_TEXT = ((b"%PDF", "a PDF document"), (b"PK\x03\x04", "an Office document or other zip package (.docx, .xlsx)"),
            (b"\xd0\xcf\x11\xe0", "a legacy Office document (.doc, .xls)"), (b"{\\rtf", "an RTF document"))


def what_binary(raw: bytes) -> str | None:
    """"a PDF document" and the like, for bytes that are a known kind of file that is not text."""
    return next((kind for magic, kind in NOT_TEXT if raw.startswith(magic)), None)


class UndecodableText(FileError):
    """Bytes that are not text in an encoding we read; `kind` says how ("mark": a byte-order mark
    the rest does not follow, "binary", "mixed": encodings switch part-way, "unknown", "other":
    another East Asian encoding), so each reader adds its own advice to the message."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def decode_text(raw: bytes) -> str:
    """The text of a file written by an editor, a spreadsheet or a converter in any encoding
    Chinese desktops use: a byte-order mark first (UTF-8, UTF-16), then UTF-16 without a mark
    (NULs in every other byte), UTF-8, then GB18030 (a superset of GBK, what Chinese Windows
    saves as "ANSI"); the mark is removed. One decoder for quotes files and notes alike.
    UndecodableText for a file that switches encoding part-way, or that GB18030 decodes only into
    garbage (Big5, Shift-JIS: refused naming the encoding rather than read as nonsense)."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom):].decode(codec)
            except UnicodeDecodeError:
                raise UndecodableText("mark", f"starts with a {codec.upper()} mark but is not {codec.upper()} "
                                              "text") from None
    head = raw[:4096]
    if b"\x00" in head:
        # UTF-16 without a mark has a NUL in every other byte of ASCII text.
        even, odd = head[0::2], head[1::2]
        codec = "utf-16-le" if odd.count(0) > 0.4 * len(odd) else "utf-16-be" if even.count(0) > 0.4 * len(even) else None
        try:
            if codec:
                return raw.decode(codec)
        except UnicodeDecodeError:
            pass
        raise UndecodableText("binary", "binary data, not UTF-8, GBK or UTF-16 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    mixed = _utf8_and_not(raw)
    if mixed:
        raise UndecodableText("mixed", f"mixes encodings (line {mixed[0]} is UTF-8, line {mixed[1]} is not)")
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        raise UndecodableText("unknown", "not text in UTF-8, GBK/GB18030 or UTF-16") from None
    other = _other_double_byte_encoding(raw)
    if other:
        raise UndecodableText("other", f"looks like {other} text, which is not read here (UTF-8, GBK/GB18030 or "
                                       "UTF-16 are)")
    return text


def _utf8_and_not(raw: bytes) -> tuple[int, int] | None:
    """(a line that is UTF-8 with Chinese text in it, a line that is not UTF-8), both 1-based, when
    a file switches encoding part-way (rows pasted from another export); None otherwise. A GBK
    line is almost never valid UTF-8 with a three-byte character in it, so this does not
    mistake a GBK file for a mixed one."""
    utf8_line = other_line = None
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            other_line = other_line or number
            continue
        if utf8_line is None and any(len(ch.encode("utf-8")) >= 3 for ch in text):
            utf8_line = number
    return (utf8_line, other_line) if utf8_line and other_line else None


# Where GBK puts the characters a Chinese quotes file holds: punctuation and full-width forms
# (lead bytes A1-A3) and the GB2312 hanzi (B0-F7), each with a trail byte A1-FE. Big5 and
# Shift-JIS text that GB18030 happens to decode lands mostly elsewhere (trail bytes 40-7E, lead
# bytes 81-A0 or A4-AF), as garbled rare characters.
def _common_gbk(lead: int, trail: int) -> bool:
    return (0xA1 <= lead <= 0xA3 or 0xB0 <= lead <= 0xF7) and 0xA1 <= trail <= 0xFE


def _other_double_byte_encoding(raw: bytes) -> str | None:
    """The encoding a file decodable as GB18030 more likely is ("Big5 (traditional Chinese)",
    "Shift-JIS (Japanese)"), when most of its two-byte characters fall outside the characters
    GBK text uses; None for GBK text."""
    common = uncommon = 0
    i = 0
    while i < len(raw) - 1:
        lead = raw[i]
        if lead < 0x81 or lead == 0xFF:
            i += 1
            continue
        if 0x30 <= raw[i + 1] <= 0x39:  # a GB18030 four-byte character
            i += 4
            continue
        if _common_gbk(lead, raw[i + 1]):
            common += 1
        else:
            uncommon += 1
        i += 2
    if uncommon < 2 or uncommon < 0.3 * (common + uncommon):
        return None
    for codec, label in (("big5", "Big5 (traditional Chinese)"), ("shift_jis", "Shift-JIS (Japanese)"),
                         ("cp932", "Shift-JIS (Japanese, Windows)")):
        try:
            raw.decode(codec)
            return label
        except UnicodeDecodeError:
            continue
    return "an East Asian encoding other than GBK"


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


# ------------------------------------------------------------------------------------------------
# Files open in a spreadsheet program: their lock files.
# ------------------------------------------------------------------------------------------------
# (program, lock file name for a file NAME, how its user's name is stored). Excel and WPS write
# `~$NAME` (a byte giving the length of the user's name, then the name); LibreOffice writes
# `.~lock.NAME#` (one CSV line: ,user,host,date,profile;).
LOCK_FILES = (("Excel", "~${}", "owner"), ("LibreOffice", ".~lock.{}#", "csv"))


def _lock_user(lock: Path, kind: str) -> str:
    """Who holds the lock, as its file says (best effort: "" when it cannot be read)."""
    try:
        with open(lock, "rb") as fh:
            raw = fh.read(512)
    except OSError:
        return ""
    if kind == "owner":
        name = raw[1:1 + raw[0]] if raw else b""
    else:
        fields = raw.split(b";")[0].split(b",")
        name = next((f for f in fields[:2] if f.strip()), b"")
    for codec in ("utf-8", "gb18030"):
        try:
            text = name.decode(codec).strip()
        except UnicodeDecodeError:
            continue
        return text if text.isprintable() and len(text) <= 64 else ""
    return ""


def lock_files(path: str | Path) -> list[tuple[str, Path]]:
    """(program, lock file) for every spreadsheet program's lock beside `path` (and beside the
    file a symbolic link names), that is, every program that has the file open now or crashed
    with it open."""
    path = Path(path)
    places = [path]
    with contextlib.suppress(OSError, RuntimeError):
        if path.is_symlink():
            places.append(path.resolve())
    found = []
    for place in places:
        for program, pattern, _kind in LOCK_FILES:
            lock = place.with_name(pattern.format(place.name))
            if os.path.lexists(lock) and all(lock != seen for _, seen in found):
                found.append((program, lock))
    return found


def open_elsewhere(path: str | Path) -> str | None:
    """"open in Excel (lock file ~$model.xlsm, by 张三)" when a spreadsheet program holds `path`, else None."""
    locks = lock_files(path)
    if not locks:
        return None
    parts = []
    for program, lock in locks:
        kind = next(k for p, _, k in LOCK_FILES if p == program)
        user = _lock_user(lock, kind)
        parts.append(f"{program} (lock file {lock.name}{', by ' + user if user else ''})")
    return "open in " + " and ".join(parts)


def reading_note(path: str | Path) -> str | None:
    """The warning a command that only reads `path` gives while it is open in a spreadsheet
    program, or None."""
    where = open_elsewhere(path)
    if where is None:
        return None
    return (f"{Path(path).name} is {where}: this reads the file as last saved, so unsaved edits there are not "
            "seen; save it first")


# ------------------------------------------------------------------------------------------------
# Backups: the previous versions of a file, NAME.YYYYMMDD-HHMMSS.bak beside it.
# ------------------------------------------------------------------------------------------------
def _backup_pattern(path: Path) -> re.Pattern:
    return re.compile(re.escape(path.name) + r"\.(\d{8}-\d{6})(?:-(\d+))?\.bak")


def backups(path: str | Path) -> list[Path]:
    """The timestamped backups of `path`, oldest first."""
    path = Path(path)
    pattern = _backup_pattern(path)
    found = []
    for candidate in path.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match and candidate.is_file() and not candidate.is_symlink():
            found.append(((match[1], int(match[2] or 0)), candidate))
    return [p for _, p in sorted(found)]


def backup_name(path: Path, when: dt.datetime) -> Path:
    """The next backup's name: the time, and a counter after the highest for several in one second."""
    stamp = when.strftime(_BACKUP_STAMP)
    pattern = _backup_pattern(path)
    same_second = [int(m[2] or 1) for m in (pattern.fullmatch(p.name) for p in backups(path)) if m and m[1] == stamp]
    if not same_second:
        return path.with_name(f"{path.name}.{stamp}.bak")
    return path.with_name(f"{path.name}.{stamp}-{max(same_second) + 1}.bak")


def prune_backups(path: Path, keep: int) -> None:
    """Delete the oldest backups of `path` beyond the newest `keep`. A backup we may not delete
    (another user's, in a shared sticky folder) is not ours to remove: it stays."""
    old = backups(path)
    for stale in old[: max(0, len(old) - keep)]:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            stale.unlink()


def keep_backup(path: Path, when: dt.datetime | None = None, temp_suffix: str = ".backup.tmp") -> Path:
    """Copy `path` (contents, permissions, times) to its next backup, atomically; the backup's
    path. The copy is made in a hidden temporary file `.NAME.*<temp_suffix>` first. (The
    refresh's `replace_model` makes the same copy stage by stage, for its kill tests.)"""
    backup = backup_name(path, when or dt.datetime.now())
    temp = temp_beside(path, temp_suffix)
    try:
        shutil.copy2(path, temp)
        os.replace(temp, backup)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return backup


# ------------------------------------------------------------------------------------------------
# A command's output: never over a file open elsewhere, never over an existing one unasked.
# ------------------------------------------------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def output_target(path: str | Path) -> Path:
    """Where writing `path` lands: a symbolic link's target (the link stays a link), else `path`."""
    path = Path(path)
    with contextlib.suppress(OSError, RuntimeError):
        if path.is_symlink():
            return path.resolve()
    return path


def check_output(path: str | Path, force: bool = False, sources: Iterable[str | Path] = ()) -> None:
    """Refuse, with one sentence that says what to do, to write `path` when it is a folder, one
    of the command's own input files (`sources`), open in a spreadsheet program, or an existing
    file without `force`. Called before any work, so nothing is done for a refused output."""
    path = Path(path)
    target = output_target(path)
    if target.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    for source in sources:
        if target.exists() and _same_file(target, Path(source)):
            raise OutputError(f"{path}: is the input file itself; write to another name (the input is never replaced)")
    where = open_elsewhere(path)
    if where is not None:
        raise OutputError(f"{path.name} is {where}: close it there first (or, if no program has it open, delete "
                          "that lock file), then run the command again")
    if target.exists() and not force:
        raise OutputError(f"{path}: exists; choose another name, or pass --force to replace it (the previous file is "
                          "kept as a .bak)")


def place_output(temp: str | Path, path: str | Path, force: bool = False, keep: int = DEFAULT_BACKUPS) -> Path | None:
    """Rename the finished `temp` onto `path` (a symbolic link's target), after the last look at
    the lock files; an existing file (allowed by `force`) is kept as the newest backup first,
    its permissions carried over, and backups beyond `keep` pruned (before the rename, so nothing
    can fail after it). Returns the backup's path."""
    path = Path(path)
    target = output_target(path)
    check_output(path, force)
    backup = None
    mode = None
    if target.exists():
        mode = stat.S_IMODE(os.stat(target).st_mode)
        if keep > 0:
            backup = keep_backup(target)
            prune_backups(target, keep)  # before the rename: nothing may fail once the file is replaced
    with open(temp, "rb") as fh:
        os.fsync(fh.fileno())
    if mode is None:
        put_in_place(temp, target)
    else:
        os.chmod(temp, mode)
        os.replace(temp, target)
    return backup


@contextlib.contextmanager
def output_file(path: str | Path, force: bool = False, suffix: str | None = None,
                sources: Iterable[str | Path] = ()) -> Iterator[Path]:
    """`with output_file(out, force) as temp: writer(temp)`: the one way a command writes a file
    the user named. Refused before the block runs (`check_output`); `out` is replaced only when
    the block ends without an exception (`place_output`: the previous version kept as a .bak);
    the temporary file (named with `suffix`, default `out`'s own) is removed either way."""
    path = Path(path)
    check_output(path, force, sources)
    target = output_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_beside(target, suffix if suffix is not None else (target.suffix or ".tmp"))
    try:
        yield temp
        place_output(temp, path, force)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def write_output(path: str | Path, data: str | bytes, force: bool = False, encoding: str = "utf-8",
                 sources: Iterable[str | Path] = ()) -> Path:
    """`data` written to the user's output `path` through `output_file` (text encoded as given)."""
    raw = data.encode(encoding) if isinstance(data, str) else data
    with output_file(path, force, sources=sources) as temp:
        temp.write_bytes(raw)
    return Path(path)


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
