"""What the command line prints: text from cells, labels and files is shown, never obeyed.

A label or a quote's `source` may hold ESC, NUL, a carriage return or a bidirectional override;
printed raw they would move the cursor, recolour or hide the rest of the line. `clean` shows
each as a visible escape (`\\x1b`, `\\u202e`), and `SanitisedStream` applies it to everything a
command writes to stdout or stderr, so every command, present or future, prints through it.
"""
from __future__ import annotations

import io
import re

# C0 controls except newline and tab, DEL, C1 controls, and the Unicode bidi/format controls
# that reorder or hide text on a terminal.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def clean(text: str) -> str:
    """`text` with every control character replaced by a visible Python-style escape."""
    return _CONTROL.sub(lambda m: (f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}"), text)


class SanitisedStream(io.TextIOBase):
    """A text stream that writes `clean(text)` to the stream it wraps."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(clean(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self):
        return getattr(self._stream, "encoding", "utf-8")

    def writable(self) -> bool:
        return True
