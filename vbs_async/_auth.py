"""How requests are authenticated: the `Auth` interface and `TokenAuth`.

An auth object turns a request into the headers that authenticate it. It
never shows its secret: reprs print `<redacted>`.
"""

from __future__ import annotations

import abc
import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

    import aiohttp
    from yarl import URL

    from ._requests import Request

REDACTED: Final = "<redacted>"
_HEADER_UNSAFE: Final = re.compile(r"[\r\n\x00]")


def check_secret(name: str, value: object) -> str:
    """A non-empty string that is safe in a header. The message never shows it."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    if _HEADER_UNSAFE.search(value):
        raise ValueError(f"{name} contains a line break or NUL character")
    return value


class Auth(abc.ABC):
    """Authenticates requests to VBS."""

    @abc.abstractmethod
    async def headers(
        self, request: Request, url: URL, session: aiohttp.ClientSession
    ) -> dict[str, str]:
        """The headers that authenticate `request`, sent to `url`.

        Args:
            request: The request about to be sent.
            url: Its full URL, query included.
            session: The client's HTTP session, for auth that must call IAM.
        """

    def invalidate(self, project_id: str, sent: Mapping[str, str]) -> bool:
        """Forget cached credentials of `project_id` after the service answered 401.

        Args:
            project_id: The project whose request was refused.
            sent: The headers the refused request carried (to tell a stale
                credential from one already replaced).

        Returns:
            True if a retry with fresh credentials may succeed.
        """
        del project_id, sent
        return False


class TokenAuth(Auth):
    """A ready IAM token, sent as `X-Auth-Token` with every request.

    VBS wants a project-scoped token, so one `TokenAuth` serves one project.
    """

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        self._token = check_secret("token", token)

    def __repr__(self) -> str:
        return f"TokenAuth(token={REDACTED})"

    async def headers(
        self, request: Request, url: URL, session: aiohttp.ClientSession
    ) -> dict[str, str]:
        """`X-Auth-Token` for every request."""
        del request, url, session
        return {"X-Auth-Token": self._token}
