"""Reading the project's TOML data files, once: size cap, UTF-8 (a BOM is accepted), and one
readable error naming the file."""
from __future__ import annotations

import math
import unicodedata
from pathlib import Path

from udfs import tomlparse
from udfs.errors import DataError

from .files import UndecodableText, decode_text, what_binary

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
        try:
            decode_text(raw)
            encoding = "GBK/GB18030 text"
        except UndecodableText:
            encoding = "not UTF-8 text"
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
    except ValueError as exc:  # an integer of thousands of digits: Python refuses to convert it
        raise TomlError(f"{name}: not a data file this project can read ({str(exc).split(';')[0]})") from None


def finite_number(value) -> float | None:
    """`value` from a data file or a cell as a finite float, or None when it is not one: text, a
    boolean, inf or nan, or an integer too large for a float (a figure of 400 digits)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def shown_value(value, limit: int = 40) -> str:
    """`value` as a message quotes it: its repr, cut short."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10 ** 30 else f"{str(value)[:12]}… ({len(str(abs(value)))} digits)"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def control_character(data, where: str = "") -> str | None:
    """Where a text in `data` (a data file's tables) holds a control character, e.g.
    "[company].ticker holds U+0001", or None. Text of a company or layout file ends up in cells,
    formulas, validation messages and sheet names, where XML cannot hold such a character."""
    if isinstance(data, str):
        bad = next((ch for ch in data if unicodedata.category(ch) == "Cc"), None)
        return f"{where or 'a text'} holds the control character U+{ord(bad):04X}" if bad is not None else None
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, (list, tuple)) else ()
    for key, value in items:
        if isinstance(key, str) and (found := control_character(key, f"the key {where}.{key}".strip("."))):
            return found
        inner = f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]"
        found = control_character(value, inner.lstrip(".") if where else f"[{key}]" if isinstance(value, dict) else str(key))
        if found:
            return found
    return None
