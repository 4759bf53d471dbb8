"""The note's text: read from its file within bounds, and split into blocks (text lines, HTML
tables, runs of tab-separated lines) in printed order.

A note is untrusted input: only a regular file is opened (a FIFO or a device would hang or
never end), at most `MAX_NOTE_BYTES` are read, control characters become spaces (none reaches a
label, a data file or a workbook), and the split scans the text once (no regular expression
that backtracks over an unclosed table).
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from udfs.errors import DataError

from ..files import UndecodableText, decode_text, read_regular, what_binary

MAX_NOTE_BYTES = 4_000_000      # a converted note is tens of kilobytes; a hundred times that is no note
MAX_TABLE_CHARS = 400_000       # one HTML table's markup


class NoteError(DataError):
    """A note that cannot be read at all (missing file, not text, too large)."""


@dataclass(frozen=True)
class Block:
    """One unit of the note in printed order: a text line, an HTML table's markup, or a run of
    tab-separated lines (a table as a plain-text converter writes it)."""
    line: int        # 1-based line of the note where it starts
    kind: str        # "text", "html" or "tsv"
    text: str


def read_text(source: str | Path) -> str:
    """The note's text. `source` is a path, or the text itself (a str with a line break, a tab
    or that names no file)."""
    looks_like_path = isinstance(source, Path) or (
        "\n" not in source and "\t" not in source and len(source) < 1024
        and (source.endswith((".txt", ".md", ".pdf")) or os.path.exists(source)))
    if not looks_like_path:
        return without_control_characters(_bounded(source))
    path = Path(source)
    return without_control_characters(_decode(read_regular(path, MAX_NOTE_BYTES, NoteError, "note file"), path))


_KEPT_CONTROLS = "\t\n\r"


def without_control_characters(text: str) -> str:
    """`text` with every control character but tab and line ends replaced by a space: none can
    reach a label, a data file or a workbook (XML cannot hold them)."""
    if not any(unicodedata.category(ch) == "Cc" and ch not in _KEPT_CONTROLS for ch in text):
        return text
    return "".join(" " if unicodedata.category(ch) == "Cc" and ch not in _KEPT_CONTROLS else ch for ch in text)


def _bounded(text: str) -> str:
    if len(text) > MAX_NOTE_BYTES:
        raise NoteError(f"the note's text is {len(text):,} characters, more than a note ({MAX_NOTE_BYTES:,} at most)")
    return text


def _decode(raw: bytes, path: Path) -> str:
    """The note's text in any encoding Chinese desktops write (workbook.files.decode_text, the
    quotes reader's decoder too); a PDF or other binary file is refused with what to do instead."""
    kind = what_binary(raw)
    if kind is not None:  # the note itself, not its text: say how to get the text
        raise NoteError(f"{path}: is {kind}, not the note's text; convert the note to text first (e.g. with MinerU, "
                        "or `pdftotext -layout NOTE.pdf`) and import the .md or .txt it writes")
    try:
        return decode_text(raw)
    except UndecodableText as exc:
        raise NoteError(f"{path}: {exc}; save the converter's output as UTF-8 text") from None


_PREAMBLE_END = re.compile(r"={5,}[ \t]*")


def body(text: str) -> str:
    """The converted note without a provenance header ended by a line of '=' near the top."""
    lines = text.split("\n", 31)
    for i, line in enumerate(lines[:30]):
        if _PREAMBLE_END.fullmatch(line.strip()):
            return "\n".join(lines[i + 1:]) if len(lines) > i + 1 else ""
    return text


def blocks(text: str) -> list[Block]:
    """The note's blocks in printed order. An HTML table runs from `<table` to its `</table>`; an
    unclosed one ends the note's tables (its markup is read as far as it goes)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    lower = text.lower()
    out: list[Block] = []
    pos, line = 0, 1
    while pos < len(text):
        start = lower.find("<table", pos)
        end_of_text = len(text) if start < 0 else start
        chunk = text[pos:end_of_text]
        lines = chunk.split("\n")
        if start >= 0 and lines and not lines[-1].strip():
            lines = lines[:-1] if len(lines) > 1 else []   # the table starts on its own line
        tsv: list[str] = []
        tsv_line = line
        for offset, piece in enumerate(lines):
            if "\t" in piece and (piece.strip() or tsv):
                if not tsv:
                    tsv_line = line + offset
                tsv.append(piece)
                continue
            if tsv:
                out.append(Block(tsv_line, "tsv", "\n".join(tsv)))
                tsv = []
            out.append(Block(line + offset, "text", piece))
        if tsv:
            out.append(Block(tsv_line, "tsv", "\n".join(tsv)))
        if start < 0:
            break
        line += chunk.count("\n")
        close = lower.find("</table", start)
        stop = len(text) if close < 0 else lower.find(">", close)
        stop = len(text) if stop < 0 else stop + 1
        markup = text[start:stop]
        if len(markup) > MAX_TABLE_CHARS:
            raise NoteError(f"a table of {len(markup):,} characters at line {line}: more than a note's table "
                            f"({MAX_TABLE_CHARS:,} at most)")
        out.append(Block(line, "html", markup))
        line += markup.count("\n")
        pos = stop
    return out
