"""How requests are authenticated: the `Auth` interface and `TokenAuth`.

An auth object turns a request into the headers that authenticate it. It
does no I/O of its own: when it needs a token from IAM it builds the IAM
request and hands it to `send`, the client's own call path (limits,
retries, redaction), so that every request goes through one seam. It never
shows its secret: reprs print `<redacted>`.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

    from yarl import URL

    from ._catalog import IamCatalog
    from ._endpoints import Catalog
    from ._requests import Request
    from ._responses import Response

Send = Callable[["Request"], Awaitable["Response"]]
"""The client's call path, for the requests an auth object must make (IAM)."""

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
    async def headers(self, request: Request, url: URL, send: Send) -> dict[str, str]:
        """The headers that authenticate `request`, sent to `url`.

        Args:
            request: The request about to be sent.
            url: Its full URL, query included.
            send: The client's call path, for the IAM requests auth must make.
        """

    def secrets(self) -> tuple[str, ...]:
        """Every credential this auth holds or was issued: never to appear in any text."""
        return ()

    @property
    def brings_catalog(self) -> bool:
        """Whether `catalog` may name the service's endpoint (else the region's is needed)."""
        return False

    async def catalog(self, project_id: str, send: Send) -> Catalog:
        """The service catalog that came with the project's token; empty without one."""
        del project_id, send
        return ()

    async def aclose(self) -> None:  # noqa: B027 - most auth has nothing to stop
        """Stop work in flight (token requests) when the client closes."""

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


def iam_catalog(auth_url: str | None) -> IamCatalog | None:
    """Catalogs asked of IAM at `auth_url` (for credentials that come without one)."""
    if auth_url is None:
        return None
    from ._catalog import IamCatalog  # noqa: PLC0415 - _catalog needs _requests, which needs us
    from ._iam import normalise_auth_url  # noqa: PLC0415 - as above

    return IamCatalog(normalise_auth_url(auth_url))


class CatalogFromIamAuth(Auth):
    """Credentials that come without a service catalog: it is asked of IAM, if given.

    A ready token and a key pair bring no catalog (a password's token does);
    with IAM's endpoint, each project's catalog is fetched once
    (`GET /v3/auth/catalog`, as gophertelekomcloud does) to find the service.
    """

    __slots__ = ("_catalogs",)

    def __init__(self, auth_url: str | None) -> None:
        self._catalogs = iam_catalog(auth_url)

    @property
    def brings_catalog(self) -> bool:
        """Whether IAM's endpoint was given, to ask it for the catalog."""
        return self._catalogs is not None

    async def catalog(self, project_id: str, send: Send) -> Catalog:
        """The project's service catalog from IAM, if IAM's endpoint was given."""
        return () if self._catalogs is None else await self._catalogs.get(project_id, send)

    async def aclose(self) -> None:
        """Cancel catalog requests in flight."""
        if self._catalogs is not None:
            await self._catalogs.aclose()


class TokenAuth(CatalogFromIamAuth):
    """A ready IAM token, sent as `X-Auth-Token` with every request.

    VBS wants a project-scoped token, so one `TokenAuth` serves one project.

    Args:
        token: The token.
        auth_url: IAM's endpoint: the token's service catalog is then asked of
            IAM (`GET /v3/auth/catalog`, as gophertelekomcloud does) to find
            VBS; without it, the region's known endpoint.
    """

    __slots__ = ("_token",)

    def __init__(self, token: str, *, auth_url: str | None = None) -> None:
        super().__init__(auth_url)
        self._token = check_secret("token", token)

    def __repr__(self) -> str:
        return f"TokenAuth(token={REDACTED})"

    async def headers(self, request: Request, url: URL, send: Send) -> dict[str, str]:
        """`X-Auth-Token` for every request."""
        del request, url, send
        return {"X-Auth-Token": self._token}

    def secrets(self) -> tuple[str, ...]:
        """The token."""
        return (self._token,)
