"""Keeping credentials out of every text the library lets out.

Error messages are built from values the client chose, but a server may echo
the request back (some gateways put the request's headers or body into their
error message), so a token or a password can arrive inside an answer. Before
an error leaves the client, every credential it knows is replaced by `***`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._errors import VBSError

_Error = TypeVar("_Error", bound="VBSError")

MASK: Final = "***"
_SHORTEST: Final = 4
"""Shorter strings are not masked: they would blank out ordinary words."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret in it replaced by `***`."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _SHORTEST and secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_error(error: _Error, secrets: Iterable[str]) -> _Error:
    """Mask every secret in the error's text attributes (in place); return it."""
    secrets = tuple(secrets)
    for name in ("message", "code", "request_id"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, redact(value, secrets))
    error.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in error.args)
    return error
