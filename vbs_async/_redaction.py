"""Keeping credentials out of every text the library lets out.

Error messages are built from values the client chose, but a server may echo
the request back (some gateways put the request's headers or body into their
error message), so a token or a password can arrive inside an answer. Before
an error leaves the client, every credential it knows is replaced by `***`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

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


_SENT_CREDENTIALS: Final = frozenset({"authorization", "x-auth-token", "x-security-token"})


def sent_secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The credentials a request carried: its token headers, its signature (whole and alone).

    A signature is good for its request only, but for minutes (the signed date's
    tolerance): a gateway echoing the `Authorization` header printed it whole in the
    throttled line of `--verbose` (an outsider's, with AK/SK).
    """
    found = []
    for name, value in headers.items():
        if name.lower() in _SENT_CREDENTIALS:
            found.append(value)
            found += [
                part.removeprefix("Signature=")
                for part in value.replace(",", " ").split()
                if part.startswith("Signature=")
            ]
    return tuple(found)


def redact_error(error: _Error, secrets: Iterable[str]) -> _Error:
    """Mask every secret in the error's text attributes (in place); return it."""
    secrets = tuple(secrets)
    for name in ("message", "code", "request_id"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, redact(value, secrets))
    error.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in error.args)
    return error
