"""The note's text: read from its file and split into text lines and tables."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from udfs.errors import DataError

_HTML_TABLE = re.compile(r"<table\b.*?</table\s*>", re.IGNORECASE | re.DOTALL)
_PREAMBLE_END = re.compile(r"^={5,}\s*$", re.MULTILINE)


def _body(text: str) -> str:
    """The converted note without a provenance header ended by a line of '=' near the top."""
    match = _PREAMBLE_END.search(text)
    if match and text.count("\n", 0, match.start()) < 30:
        return text[match.end():]
    return text


class _Item(NamedTuple):
    line: int
    kind: str       # "text" or "html"
    content: str


def _items(text: str) -> list[_Item]:
    items = []
    pos = 0
    for match in list(_HTML_TABLE.finditer(text)) + [None]:
        end = match.start() if match else len(text)
        chunk = text[pos:end]
        first = text.count("\n", 0, pos) + 1
        lines = chunk.split("\n")
        for i, line in enumerate(lines):
            if match and i == len(lines) - 1 and not line.strip():
                continue  # the table starts on this line
            if line.strip() or i < len(lines) - 1:
                items.append(_Item(first + i, "text", line.rstrip("\r")))
        if match:
            items.append(_Item(text.count("\n", 0, match.start()) + 1, "html", match.group(0)))
            pos = match.end()
    return items



class NoteError(DataError):
    """A note that cannot be read at all (missing file, not UTF-8 text)."""


def _note_text(source: str | Path) -> str:
    looks_like_path = isinstance(source, Path) or (
        "\n" not in source and "\t" not in source and len(source) < 1024
        and (source.endswith((".txt", ".md")) or os.path.exists(source)))
    if not looks_like_path:
        return source
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NoteError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise NoteError(f"{path}: not UTF-8 text; save the converter's output as UTF-8") from None
    except OSError as exc:
        raise NoteError(f"{path}: {exc.strerror or exc}") from None



