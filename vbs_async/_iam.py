"""`PasswordAuth`: project-scoped IAM tokens, fetched once per project and cached.

VBS is a project-level service, so a crawl over many projects needs one token
per project. Tokens are requested from `POST {auth_url}/v3/auth/tokens`,
cached until a margin before they expire, and requested at most once at a
time per project however many requests wait for one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Final

import aiohttp
import attrs
import orjson
from yarl import URL

from ._auth import REDACTED, Auth, check_secret
from ._errors import APIError, AuthenticationError, ResponseDecodeError
from ._requests import Request
from ._responses import api_error
from ._transport import send
from ._validation import check_endpoint, check_positive_number

if TYPE_CHECKING:
    from collections.abc import Mapping

logger: Final = logging.getLogger("vbs_async")

_TOKEN_PATH: Final = "/v3/auth/tokens"  # noqa: S105 - a path, not a password
_MAX_BODY: Final = 16 * 1024 * 1024


@attrs.frozen
class _Token:
    value: str = attrs.field(repr=False)
    refresh_at: float  # time.monotonic()


def _normalise_auth_url(auth_url: str) -> str:
    """`https://iam.example[:port]`, from a URL that may end in `/v3` (as OS_AUTH_URL does)."""
    if not isinstance(auth_url, str):
        raise ValueError("auth_url must be a URL string")
    trimmed = auth_url.rstrip("/")
    trimmed = trimmed.removesuffix("/v3")
    try:
        return str(check_endpoint(trimmed))
    except ValueError as exc:
        raise ValueError(str(exc).replace("endpoint", "auth_url", 1)) from None


class PasswordAuth(Auth):
    """An IAM user's password, exchanged for one project-scoped token per project.

    Args:
        auth_url: The IAM endpoint, `https://iam.eu-de.otc.t-systems.com`
            (a trailing `/v3` is accepted).
        username: The IAM user's name.
        password: The IAM user's password.
        domain_name: The user's domain (the account, `OTC00000000001000000xxx`).
        refresh_margin: Seconds before expiry at which a token is replaced (at
            most a tenth of its lifetime).
        timeout: Seconds one token request may take.
    """

    __slots__ = (
        "_auth_url",
        "_domain_name",
        "_password",
        "_pending",
        "_refresh_margin",
        "_timeout",
        "_tokens",
        "_username",
        "token_requests",
    )

    def __init__(
        self,
        auth_url: str,
        username: str,
        password: str,
        domain_name: str,
        *,
        refresh_margin: float = 600.0,
        timeout: float = 30.0,
    ) -> None:
        self._auth_url = _normalise_auth_url(auth_url)
        self._username = check_secret("username", username)
        self._password = check_secret("password", password)
        self._domain_name = check_secret("domain_name", domain_name)
        check_positive_number("refresh_margin", refresh_margin)
        check_positive_number("timeout", timeout)
        self._refresh_margin = float(refresh_margin)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._tokens: dict[str, _Token] = {}
        self._pending: dict[str, asyncio.Task[_Token]] = {}
        self.token_requests = 0

    def __repr__(self) -> str:
        return (
            f"PasswordAuth(auth_url={self._auth_url!r}, username={self._username!r}, "
            f"password={REDACTED}, domain_name={self._domain_name!r})"
        )

    async def headers(
        self, request: Request, url: URL, session: aiohttp.ClientSession
    ) -> dict[str, str]:
        """`X-Auth-Token` with the project's token, fetched if none is cached and fresh."""
        del url
        token = await self._token(request.project_id, session)
        return {"X-Auth-Token": token.value}

    def invalidate(self, project_id: str, sent: Mapping[str, str]) -> bool:
        """Forget the project's token if it is the one VBS refused; a retry may then pass."""
        cached = self._tokens.get(project_id)
        if cached is not None and cached.value == sent.get("X-Auth-Token"):
            del self._tokens[project_id]
        return True

    async def _token(self, project_id: str, session: aiohttp.ClientSession) -> _Token:
        cached = self._tokens.get(project_id)
        if cached is not None and time.monotonic() < cached.refresh_at:
            return cached
        pending = self._pending.get(project_id)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(project_id, session))
            self._pending[project_id] = pending
            pending.add_done_callback(lambda _: self._pending.pop(project_id, None))
        # Shielded: one waiter being cancelled must not cancel the others' token.
        return await asyncio.shield(pending)

    async def _fetch(self, project_id: str, session: aiohttp.ClientSession) -> _Token:
        body = orjson.dumps(
            {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": self._username,
                                "password": self._password,
                                "domain": {"name": self._domain_name},
                            }
                        },
                    },
                    "scope": {"project": {"id": project_id}},
                }
            }
        )
        request = Request("POST", _TOKEN_PATH, project_id, body=body)
        url = URL(self._auth_url + _TOKEN_PATH, encoded=True)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self.token_requests += 1
        began = time.monotonic()
        response = await send(
            session, url, request, headers, timeout=self._timeout, max_body_size=_MAX_BODY
        )
        logger.debug(
            "POST %s%s project=%s -> %s in %.3fs (IAM token)",
            self._auth_url,
            _TOKEN_PATH,
            project_id,
            response.status,
            time.monotonic() - began,
        )
        if response.status != 201:  # noqa: PLR2004 - IAM answers 201 Created
            raise self._failure(api_error(response, project_id=project_id, offset=None))
        value = response.headers.get("X-Subject-Token")
        if not value:
            raise ResponseDecodeError("IAM answered without X-Subject-Token", project_id=project_id)
        lifetime = _lifetime(response.body, project_id)
        margin = min(self._refresh_margin, lifetime / 10)
        token = _Token(value, began + lifetime - margin)
        self._tokens[project_id] = token
        return token

    @staticmethod
    def _failure(error: APIError) -> APIError:
        """IAM's 4xx is an authentication failure; a 5xx or 429 stays transient (retried)."""
        if 400 <= error.status < 500 and error.status != 429:  # noqa: PLR2004
            return AuthenticationError(
                f"IAM refused the token request: {error.message}",
                status=error.status,
                code=error.code,
                request_id=error.request_id,
                project_id=error.project_id,
            )
        error.message = f"IAM: {error.message}"
        return error


def _lifetime(body: bytes, project_id: str) -> float:
    """Seconds the token lives, from `token.issued_at` and `token.expires_at`.

    Measured between IAM's own two timestamps, so the local clock's skew
    does not matter; without `issued_at`, against the local clock.
    """
    try:
        token = orjson.loads(body)["token"]
        expires = datetime.fromisoformat(token["expires_at"])
        issued_text = token.get("issued_at")
        if issued_text:
            issued = datetime.fromisoformat(issued_text)
            return max(0.0, (expires - issued).total_seconds())
        return max(0.0, expires.timestamp() - time.time())
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise ResponseDecodeError(
            "IAM's answer has no readable token.expires_at", project_id=project_id
        ) from None
