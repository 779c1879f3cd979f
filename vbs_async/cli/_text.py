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

import re
from typing import Final

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
