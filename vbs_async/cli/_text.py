r"""Text from a server made safe for a terminal or a log line.

A server's error message is printed in failure lines, in the summary and in
log lines. Raw, an escape sequence in it can clear the screen, set the
window title, or write the clipboard (OSC 52), and a newline can forge a
line of its own. As gh and kubectl do, every control character (C0, DEL,
C1 with ESC among them), the Unicode line separators and the bidirectional
overrides (which can reorder what is shown) is printed escaped: `\x1b`,
`\n`, `\u202e`. Printable text, non-ASCII included, is left as it is.
"""

from __future__ import annotations

import io
import re
import sys
from typing import IO, Any, Final, cast

_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_LATIN1: Final = 0xFF
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= _LATIN1 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """`text` with every control character escaped: safe on one terminal or log line."""
    return _UNSAFE.sub(_escape, str(text))


def for_terminal(data: bytes) -> bytes:
    r"""Rows (JSON Lines, CSV) as a terminal may show them: every control character escaped.

    Line ends (`\n`, CSV's `\r\n`) stay; a `\r`, an escape sequence, a C1
    control, U+2028 or U+202E inside a value is shown as `\r`, `\x1b`,
    `\x9b`, `\u2028`, `\u202e`. Only for a terminal: files keep the exact bytes.
    """
    text = data.decode("utf-8", "backslashreplace")
    lines = text.split("\n")
    safe = []
    for line in lines:
        if line.endswith("\r"):
            safe.append(printable(line[:-1]) + "\r")
        else:
            safe.append(printable(line))
    return "\n".join(safe).encode()


class TerminalRows(io.BufferedIOBase):
    """Stdout on a terminal: whole lines written escaped (`for_terminal`), a partial one kept."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self._pending = b""

    def writable(self) -> bool:
        """Always."""
        return True

    def write(self, data: Any) -> int:
        """Write the complete lines of what was given so far, escaped."""
        chunk = bytes(data)
        buffered = self._pending + chunk
        cut = buffered.rfind(b"\n") + 1  # a line (and a UTF-8 character) is never split
        if cut:
            self._raw.write(for_terminal(buffered[:cut]))
        self._pending = buffered[cut:]
        return len(chunk)

    def flush(self) -> None:
        """Write what is pending (a last line without its end) and flush the terminal."""
        if self._pending:
            self._raw.write(for_terminal(self._pending))
            self._pending = b""
        self._raw.flush()

    def fileno(self) -> int:
        """The terminal's descriptor."""
        return self._raw.fileno()

    def isatty(self) -> bool:
        """Whether the raw stream is a terminal."""
        return self._raw.isatty()


def stdout_for_rows() -> IO[bytes]:
    """Stdout for rows: escaped when it is a terminal (server text cannot drive it)."""
    stream = sys.stdout.buffer
    try:
        terminal = stream.isatty()
    except (OSError, ValueError):
        terminal = False
    return cast("IO[bytes]", TerminalRows(stream)) if terminal else stream
