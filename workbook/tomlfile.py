"""Reading the project's TOML data files, once: size cap, UTF-8 (a BOM is accepted), and one
readable error naming the file."""
from __future__ import annotations

from pathlib import Path

from udfs import tomlparse
from udfs.errors import DataError

from .files import decode_text, what_binary

MAX_FILE_BYTES = 2_000_000


class TomlError(DataError):
    """A data file that cannot be read as TOML; the message names the file."""


def read_toml(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TomlError(f"{path}: no such file")
    if path.stat().st_size > max_bytes:
        raise TomlError(f"{path.name}: larger than {max_bytes // 1_000_000} MB; not a data file")
    raw = path.read_bytes()
    kind = what_binary(raw)
    if kind is not None:
        raise TomlError(f"{path.name}: is {kind}, not a TOML data file; give the .toml file (company data, layout or "
                        "report) the command reads")
    try:
        text = raw.decode("utf-8-sig")  # Windows editors often add a byte-order mark
    except UnicodeDecodeError:
        # TOML is UTF-8 by definition: a GBK file is refused, but the message says how to save it
        encoding = "GBK/GB18030 text" if decode_text(raw) is not None else "not UTF-8 text"
        raise TomlError(f"{path.name}: {encoding}; TOML data files are UTF-8: save it as UTF-8 (Notepad: Save as, "
                        "Encoding UTF-8)") from None
    return parse_toml(text, path.name)


def parse_toml(text: str, name: str) -> dict:
    """`text` as TOML; TomlError naming `name` (the file, or where the text came from) if it is not."""
    try:
        return tomlparse.loads(text)
    except tomlparse.TOMLDecodeError as exc:
        raise TomlError(f"{name}: not valid TOML ({exc})") from None
    except RecursionError:
        raise TomlError(f"{name}: nested too deeply to be a data file") from None
