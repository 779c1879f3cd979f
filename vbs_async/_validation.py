"""Checks on caller-supplied values, run before any request is made.

Each check raises ValueError with a message that names the argument.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from yarl import URL

if TYPE_CHECKING:
    from collections.abc import Callable

SortKey = Literal[
    "name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at"
]
"""The documented `sort_key` values of the list call."""
SortDir = Literal["asc", "desc"]
"""The `sort_dir` values of the list call."""
EndCheck = Literal["auto", "short_page", "empty_page", "count"]
"""How a listing recognises its end (see `iter_sharings`)."""

SORT_KEYS: Final = frozenset(get_args(SortKey))
SORT_DIRECTIONS: Final = frozenset(get_args(SortDir))
END_CHECKS: Final = frozenset(get_args(EndCheck))

# An ID goes into a URL path. Anything that could change the path's meaning
# (separators, escapes, dot segments) or hide in a log line is refused.
_UNSAFE_ID: Final = re.compile(r"[/?#%\s\x00-\x1f\x7f]|\.\.")


def check_id(name: str, value: object) -> str:
    """Return `value` if it is a plain, non-empty ID; raise ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    if _UNSAFE_ID.search(value) or value == ".":
        raise ValueError(
            f"{name} {value!r:.80} is not a plain ID: it is '.' or contains '/', '?', '#', "
            "'%', '..', white space or a control character"
        )
    return value


def check_optional_id(name: str, value: object) -> str | None:
    """Like `check_id`, letting None through."""
    return None if value is None else check_id(name, value)


def check_optional_text(name: str, value: object) -> str | None:
    """A free-text filter: None, or a non-empty string without control characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if not value or re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError(f"{name} must be non-empty and free of control characters")
    return value


def check_optional_bool(name: str, value: object) -> bool | None:
    """None or a real bool (not a truthy string, which would be sent wrongly)."""
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"{name} must be True, False or None, got {value!r}")


def check_bool(name: str, value: object) -> bool:
    """A real bool (not a truthy value)."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"{name} must be True or False, got {value!r}")


def check_int(name: str, value: object, *, minimum: int) -> int:
    """An int (not a bool) no smaller than `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_optional_int(name: str, value: object, *, minimum: int) -> int | None:
    """Like `check_int`, letting None through."""
    return None if value is None else check_int(name, value, minimum=minimum)


def check_positive_number(name: str, value: object, *, allow_none: bool = False) -> float | None:
    """A finite number > 0 (or None when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if value == float("inf"):
        raise ValueError(f"{name} must be finite")
    return float(value)


RATE_LIMIT_MIN: Final = 1 / 3600
"""The slowest `rate_limit`: one request an hour. Slower, a listing of a few pages takes
days, which no one means: such a value is a typo or a unit mix-up (1e-300 sent one
request and then waited 1e300 seconds for the next, the deadline paused meanwhile)."""
RATE_LIMIT_MAX: Final = 1_000_000
"""The fastest `rate_limit`: no client on one event loop starts a million requests a
second, so a larger value means 'no cap', which None says (1e19 overflowed the log of
starts the cap keeps)."""


def check_rate_limit(name: str, value: object) -> float | None:
    """None, or starts per second between `RATE_LIMIT_MIN` and `RATE_LIMIT_MAX`."""
    rate = check_positive_number(name, value, allow_none=True)
    if rate is not None and rate > RATE_LIMIT_MAX:
        raise ValueError(
            f"{name} must be at most {RATE_LIMIT_MAX} requests a second (None for no cap), "
            f"got {value!r}"
        )
    if rate is not None and rate < RATE_LIMIT_MIN:
        raise ValueError(f"{name} must be at least one request an hour (1/3600), got {value!r}")
    return rate


def check_choice(name: str, value: object, choices: frozenset[str]) -> str:
    """One of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(sorted(choices))}; got {value!r}")
    return str(value)


def check_optional_choice(name: str, value: object, choices: frozenset[str]) -> str | None:
    """Like `check_choice`, letting None through."""
    return None if value is None else check_choice(name, value, choices)


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_USERINFO: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*:/*)[^/?#]*@")


def shown_url(text: str) -> str:
    """A URL as an error may show it: no user name or password, no query, no fragment.

    Works on text that does not parse as a URL too (a bad port, a typo in
    the scheme), since that is when the error is raised.
    """
    text = text.split("#", 1)[0].split("?", 1)[0]
    return _USERINFO.sub(r"\1", text)[:100]


def check_endpoint(endpoint: object, name: str = "endpoint") -> URL:
    """Parse a service endpoint: https (or http on loopback), a host, optional port.

    Messages show the URL without user name, password or query: any of them
    may hold a credential.

    Raises:
        ValueError: The endpoint is not such a URL.
    """
    if not isinstance(endpoint, str | URL):
        raise ValueError(f"{name} must be a URL string, got {type(endpoint).__name__}")
    shown = repr(shown_url(str(endpoint)))
    try:
        url = URL(str(endpoint))
        host, port = url.host, url.port  # a bad port raises only when read
    except (ValueError, TypeError):
        # Not the parser's message: it quotes the text, password included.
        raise ValueError(f"{name} {shown} is not a URL (check the host and port)") from None
    del port
    if url.user is not None or url.password is not None:
        raise ValueError(f"{name} {shown} must not carry a user name or password")
    if url.scheme not in {"https", "http"} or not host:
        raise ValueError(f"{name} must look like https://host[:port], got {shown}")
    if url.path not in {"", "/"} or url.query_string or url.fragment:
        raise ValueError(f"{name} must be scheme, host and port only, got {shown}")
    if url.scheme == "http" and not is_loopback(host):
        raise ValueError(f"{name} {shown} uses plain http; only loopback hosts may (use https)")
    return url.origin()


def validator(check: Callable[..., object], name: str, **kwargs: Any) -> Callable[..., None]:
    """An attrs validator that runs `check(name, value, **kwargs)`."""

    def validate(_instance: object, _attribute: object, value: object) -> None:
        check(name, value, **kwargs)

    return validate
