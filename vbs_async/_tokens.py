"""IAM tokens as the auth objects keep them: read from IAM's answer, cached, fetched once.

`PasswordAuth` and `AgencyAuth` both exchange credentials for one token per
scope (a project, or the user's domain). `TokenCache` is what they share:
a token is requested at most once at a time per scope however many requests
wait for it, kept until a margin before it expires, and the cache is bounded
(least recently used first out, expired tokens before live ones). Every
token issued is remembered (bounded) so that no text ever shows one.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import attrs
import orjson

from ._auth import Auth, Send
from ._endpoints import Catalog, read_catalog
from ._errors import APIError, AuthenticationError, ResponseDecodeError
from ._requests import Request
from ._validation import check_int, check_positive_number

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from yarl import URL

    from ._responses import Response

logger: Final = logging.getLogger("vbs_async")

TOKEN_PATH: Final = "/v3/auth/tokens"  # noqa: S105 - a path, not a password
DEFAULT_MAX_TOKENS: Final = 1024
"""Tokens cached at most: a crawl's projects in flight many times over."""
_KEEP_SKEWED: Final = 30.0
"""Seconds a token that seems expired on arrival is kept, rather than asking IAM for every call."""

Scope = str | None
"""What a token is scoped to: a project ID, or None for the user's own domain."""


@attrs.frozen
class Token:
    """A token and what came with it.

    Attributes:
        value: The token (`X-Subject-Token`).
        refresh_at: `time.monotonic()` from which it is replaced.
        catalog: The service catalog of its answer.
    """

    value: str = attrs.field(repr=False)
    refresh_at: float
    catalog: Catalog = attrs.field(default=(), repr=False)


def read_token(
    response: Response, *, began: float, refresh_margin: float, project_id: str
) -> Token:
    """The token of IAM's 201 answer to `POST /v3/auth/tokens`.

    Args:
        response: IAM's answer.
        began: `time.monotonic()` when the request was made.
        refresh_margin: Seconds before expiry to replace it (at most a tenth
            of its lifetime).
        project_id: The project it was asked for, for errors.

    Raises:
        ResponseDecodeError: The answer has no token or no readable expiry.
    """
    if response.status != 201:  # noqa: PLR2004 - IAM answers 201 Created
        raise ResponseDecodeError(
            f"IAM answered {response.status} to a token request, not 201", project_id=project_id
        )
    value = response.headers.get("X-Subject-Token")
    if not value:
        raise ResponseDecodeError("IAM answered without X-Subject-Token", project_id=project_id)
    try:
        body = orjson.loads(response.body)["token"]
        lifetime = _lifetime(body)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise ResponseDecodeError(
            "IAM's answer has no readable token.expires_at", project_id=project_id
        ) from None
    catalog = read_catalog(body)
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
        return Token(value, began + _KEEP_SKEWED, catalog)
    margin = min(refresh_margin, lifetime / 10)
    return Token(value, began + lifetime - margin, catalog)


def _lifetime(token: dict[str, str]) -> float:
    """Seconds the token lives, from `issued_at` and `expires_at`.

    Measured between IAM's own two timestamps, so the local clock's skew
    does not matter; without `issued_at`, against the local clock.
    """
    expires = datetime.fromisoformat(token["expires_at"])
    issued_text = token.get("issued_at")
    if issued_text:
        return max(0.0, (expires - datetime.fromisoformat(issued_text)).total_seconds())
    return max(0.0, expires.timestamp() - time.time())


def iam_failure(error: APIError, scope: Scope = None) -> APIError:
    """IAM's 4xx is an authentication failure; a 5xx or 429 stays transient (retried).

    The refusal of a project-scoped token names that project (the error's
    `project_id`); whether the credentials themselves were refused is the
    auth object's to say (`AuthenticationError.credentials_refused`).
    """
    if 400 <= error.status < 500 and error.status != 429:  # noqa: PLR2004
        what = "an account-wide token" if scope is None else "a token for this project"
        return AuthenticationError(
            f"IAM refused {what}: {error.message}",
            status=error.status,
            code=error.code,
            request_id=error.request_id,
            project_id=error.project_id,
        )
    error.message = f"IAM: {error.message}"
    return error


class TokenCache:
    """Tokens by scope: single-flight fetches, a bounded LRU, every issued token remembered.

    Args:
        max_tokens: Tokens cached at most.
    """

    __slots__ = ("_issued", "_max_tokens", "_pending", "_tokens")

    def __init__(self, max_tokens: int) -> None:
        self._max_tokens = max_tokens
        self._tokens: OrderedDict[Scope, Token] = OrderedDict()
        self._pending: dict[Scope, asyncio.Task[Token]] = {}
        # Every token issued, most recent last: redacted from any text (bounded).
        self._issued: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        """Tokens cached now."""
        return len(self._tokens)

    @property
    def issued(self) -> tuple[str, ...]:
        """The most recent tokens issued."""
        return tuple(self._issued)

    async def get(self, scope: Scope, fetch: Callable[[], Awaitable[Token]]) -> Token:
        """The cached token of `scope` while fresh; else the one `fetch` gets (once at a time)."""
        cached = self._tokens.get(scope)
        if cached is not None and time.monotonic() < cached.refresh_at:
            self._tokens.move_to_end(scope)
            return cached
        pending = self._pending.get(scope)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(scope, fetch))
            self._pending[scope] = pending
            pending.add_done_callback(lambda _: self._pending.pop(scope, None))
            pending.add_done_callback(_retrieve)
        # Shielded: one waiter being cancelled must not cancel the others' token.
        return await asyncio.shield(pending)

    def forget(self, scope: Scope, value: str | None) -> None:
        """Drop the token of `scope` if it is `value` (not one fetched since)."""
        cached = self._tokens.get(scope)
        if cached is not None and cached.value == value:
            del self._tokens[scope]

    async def aclose(self) -> None:
        """Cancel fetches in flight and wait for them to end."""
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task

    async def _fetch(self, scope: Scope, fetch: Callable[[], Awaitable[Token]]) -> Token:
        token = await fetch()
        self._remember(scope, token)
        return token

    def _remember(self, scope: Scope, token: Token) -> None:
        tokens = self._tokens
        tokens[scope] = token
        tokens.move_to_end(scope)
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


def _retrieve(task: asyncio.Task[Token]) -> None:
    """A token fetch that failed after every waiter left: its error is seen, not logged."""
    if not task.cancelled():
        task.exception()


class IamTokenAuth(Auth):
    """What `PasswordAuth` and `AgencyAuth` share: IAM tokens per scope, sent as `X-Auth-Token`.

    A subclass says how to ask IAM for a token (`_request`) and which secrets
    it holds besides the tokens issued.

    Args:
        auth_url: The IAM endpoint, normalised.
        refresh_margin: Seconds before expiry at which a token is replaced.
        max_tokens: Tokens cached at most.
    """

    __slots__ = ("_auth_url", "_refresh_margin", "_requests", "_tokens")

    def __init__(self, auth_url: str, *, refresh_margin: float, max_tokens: int) -> None:
        check_positive_number("refresh_margin", refresh_margin)
        self._auth_url = auth_url
        self._refresh_margin = float(refresh_margin)
        self._tokens = TokenCache(check_int("max_tokens", max_tokens, minimum=1))
        self._requests = 0

    @property
    def auth_url(self) -> str:
        """The IAM endpoint."""
        return self._auth_url

    @property
    def token_requests(self) -> int:
        """Token requests sent to IAM so far."""
        return self._requests

    async def headers(self, request: Request, url: URL, send: Send) -> dict[str, str]:
        """`X-Auth-Token` with the token of the request's scope, fetched if none is fresh."""
        del url
        scope = None if request.domain_scoped else request.project_id
        token = await self.token(scope, request.project_id, send)
        return {"X-Auth-Token": token.value}

    @property
    def brings_catalog(self) -> bool:
        """Every project token comes with its catalog."""
        return True

    async def catalog(self, project_id: str, send: Send) -> Catalog:
        """The service catalog of the project's token."""
        return (await self.token(project_id, project_id, send)).catalog

    def invalidate(self, project_id: str, sent: Mapping[str, str]) -> bool:
        """Forget the refused token (the project's, or the domain's); a retry may then pass."""
        refused = sent.get("X-Auth-Token")
        self._tokens.forget(project_id, refused)
        self._tokens.forget(None, refused)  # an account-wide call's token
        return True

    async def aclose(self) -> None:
        """Cancel token requests in flight and wait for them to end."""
        await self._tokens.aclose()

    async def token(self, scope: Scope, project_id: str, send: Send) -> Token:
        """The token of `scope` (a project ID, or None for the user's domain)."""
        return await self._tokens.get(scope, lambda: self._fetch(scope, project_id, send))

    async def _fetch(self, scope: Scope, project_id: str, send: Send) -> Token:
        """Ask IAM for a token of `scope`; the cache calls it once at a time per scope."""
        self._requests += 1
        began = time.monotonic()
        try:
            response = await send(self._request(scope, project_id))
        except APIError as error:
            raise self._failure(iam_failure(error, scope)) from None
        return read_token(
            response, began=began, refresh_margin=self._refresh_margin, project_id=project_id
        )

    def _failure(self, error: APIError) -> APIError:
        """What IAM's refusal becomes (a subclass may remember it)."""
        return error

    def _request(self, scope: Scope, project_id: str) -> Request:
        """The token request (`POST /v3/auth/tokens`) for `scope`, made about `project_id`."""
        method, credentials = self._identity()
        body = orjson.dumps(
            {
                "auth": {
                    "identity": {"methods": [method], method: credentials},
                    "scope": (
                        {"domain": self._domain_scope()}
                        if scope is None
                        else {"project": {"id": scope}}
                    ),
                }
            }
        )
        return Request(
            "POST",
            TOKEN_PATH,
            project_id,
            body=body,
            endpoint=self._auth_url,
            repeatable=True,  # asking for a token twice has no effect beyond a token
            **self._sending(),
        )

    @abc.abstractmethod
    def _identity(self) -> tuple[str, dict[str, Any]]:
        """IAM's identity method and its credentials (`password`, `assume_role`)."""

    @abc.abstractmethod
    def _domain_scope(self) -> dict[str, str]:
        """The domain a domain-scoped token is for (`{"name": ...}` or `{"id": ...}`)."""

    @abc.abstractmethod
    def _sending(self) -> dict[str, Any]:
        """How the token request is authenticated (`Request` keywords)."""
