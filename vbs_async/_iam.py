"""`PasswordAuth`: project-scoped IAM tokens, fetched once per project and cached.

VBS is a project-level service, so a crawl over many projects needs one token
per project. Tokens are requested from `POST {auth_url}/v3/auth/tokens`
through the client's own call path (its limits, retries and redaction),
cached until a margin before they expire, and requested at most once at a
time per project however many requests wait for one. The cache is bounded
(least recently used first out, expired tokens before live ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Final

import attrs
import orjson

from ._auth import REDACTED, Auth, Send, check_secret
from ._errors import APIError, AuthenticationError, ResponseDecodeError
from ._requests import Request
from ._validation import check_endpoint, check_int, check_positive_number

if TYPE_CHECKING:
    from collections.abc import Mapping

    from yarl import URL

logger: Final = logging.getLogger("vbs_async")

_TOKEN_PATH: Final = "/v3/auth/tokens"  # noqa: S105 - a path, not a password
DEFAULT_MAX_TOKENS: Final = 1024
"""Tokens cached at most: a crawl's projects in flight many times over."""
_KEEP_SKEWED: Final = 30.0
"""Seconds such a token is kept anyway, rather than asking IAM again for every call."""


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
    return str(check_endpoint(trimmed, "auth_url"))


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
        max_tokens: Tokens cached at most (one per project).
    """

    __slots__ = (
        "_auth_url",
        "_domain_name",
        "_issued",
        "_max_tokens",
        "_password",
        "_pending",
        "_refresh_margin",
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
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self._auth_url = _normalise_auth_url(auth_url)
        self._username = check_secret("username", username)
        self._password = check_secret("password", password)
        self._domain_name = check_secret("domain_name", domain_name)
        check_positive_number("refresh_margin", refresh_margin)
        self._refresh_margin = float(refresh_margin)
        self._max_tokens = check_int("max_tokens", max_tokens, minimum=1)
        self._tokens: OrderedDict[str, _Token] = OrderedDict()
        self._pending: dict[str, asyncio.Task[_Token]] = {}
        # Every token issued, most recent last: redacted from any text (bounded).
        self._issued: OrderedDict[str, None] = OrderedDict()
        self.token_requests = 0

    def __repr__(self) -> str:
        return (
            f"PasswordAuth(auth_url={self._auth_url!r}, username={self._username!r}, "
            f"password={REDACTED}, domain_name={self._domain_name!r})"
        )

    async def headers(self, request: Request, url: URL, send: Send) -> dict[str, str]:
        """`X-Auth-Token` with the project's token, fetched if none is cached and fresh."""
        del url
        token = await self._token(request.project_id, send)
        return {"X-Auth-Token": token.value}

    def invalidate(self, project_id: str, sent: Mapping[str, str]) -> bool:
        """Forget the project's token if it is the one VBS refused; a retry may then pass."""
        cached = self._tokens.get(project_id)
        if cached is not None and cached.value == sent.get("X-Auth-Token"):
            del self._tokens[project_id]
        return True

    def secrets(self) -> tuple[str, ...]:
        """The password and every token issued (the most recent ones)."""
        return (self._password, *self._issued)

    async def aclose(self) -> None:
        """Cancel token requests in flight and wait for them to end."""
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task

    async def _token(self, project_id: str, send: Send) -> _Token:
        cached = self._tokens.get(project_id)
        if cached is not None and time.monotonic() < cached.refresh_at:
            self._tokens.move_to_end(project_id)
            return cached
        pending = self._pending.get(project_id)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(project_id, send))
            self._pending[project_id] = pending
            pending.add_done_callback(lambda _: self._pending.pop(project_id, None))
            pending.add_done_callback(_retrieve)
        # Shielded: one waiter being cancelled must not cancel the others' token.
        return await asyncio.shield(pending)

    def _remember(self, project_id: str, token: _Token) -> None:
        tokens = self._tokens
        tokens[project_id] = token
        tokens.move_to_end(project_id)
        if len(tokens) > self._max_tokens:
            now = time.monotonic()
            expired = [key for key, value in tokens.items() if value.refresh_at <= now]
            for key in expired[: len(tokens) - self._max_tokens]:
                del tokens[key]
            while len(tokens) > self._max_tokens:
                tokens.popitem(last=False)
        self._issued[token.value] = None
        while len(self._issued) > 4 * self._max_tokens:
            self._issued.popitem(last=False)

    def _request(self, project_id: str) -> Request:
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
        return Request(
            "POST",
            _TOKEN_PATH,
            project_id,
            body=body,
            endpoint=self._auth_url,
            authenticate=False,
            repeatable=True,  # asking for a token twice has no effect beyond a token
        )

    async def _fetch(self, project_id: str, send: Send) -> _Token:
        self.token_requests += 1
        began = time.monotonic()
        try:
            response = await send(self._request(project_id))
        except APIError as error:
            raise self._failure(error) from None
        if response.status != 201:  # noqa: PLR2004 - IAM answers 201 Created
            raise ResponseDecodeError(
                f"IAM answered {response.status} to a token request, not 201",
                project_id=project_id,
            )
        value = response.headers.get("X-Subject-Token")
        if not value:
            raise ResponseDecodeError("IAM answered without X-Subject-Token", project_id=project_id)
        lifetime = _lifetime(response.body, project_id)
        if lifetime <= 0:  # expired on arrival, or no lifetime: a wrong clock
            # IAM's clock, or ours, is off: the token may well work. Keep it a
            # short while rather than asking IAM again for every call; VBS's
            # 401 replaces it if it really has expired.
            logger.warning(
                "IAM issued a token for project %s that expires in %.0f s: is IAM's clock "
                "(or this machine's) right? It is kept for %.0f s",
                project_id,
                lifetime,
                _KEEP_SKEWED,
            )
            token = _Token(value, began + _KEEP_SKEWED)
            self._remember(project_id, token)
            return token
        margin = min(self._refresh_margin, lifetime / 10)
        token = _Token(value, began + lifetime - margin)
        self._remember(project_id, token)
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


def _retrieve(task: asyncio.Task[_Token]) -> None:
    """A token fetch that failed after every waiter left: its error is seen, not logged."""
    if not task.cancelled():
        task.exception()


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
