"""`PasswordAuth`: an IAM user's password, exchanged for project-scoped tokens.

VBS is a project-level service, so a crawl over many projects needs one token
per project. Tokens are requested from `POST {auth_url}/v3/auth/tokens`
through the client's own call path (its limits, retries and redaction) and
kept in a `TokenCache` (single-flight, bounded, refreshed before expiry).
A password IAM refused (401) before it ever issued a token for it is never
sent again: every later request fails with that refusal at once, so that a
crawl of many projects cannot lock the account. A refusal of one project's
token once IAM has accepted the password (the user has no role there, or the
project does not exist) is that project's failure alone.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

from ._auth import REDACTED, check_secret
from ._errors import APIError, AuthenticationError, ConfigurationError
from ._tokens import DEFAULT_MAX_TOKENS, IamTokenAuth, Scope, Token
from ._validation import check_endpoint

if TYPE_CHECKING:
    from ._auth import Send

_UNAUTHORIZED: Final = 401
_FORBIDDEN: Final = 403


def normalise_auth_url(auth_url: str) -> str:
    """`https://iam.example[:port]`, from a URL that may end in `/v3` (as OS_AUTH_URL does)."""
    if not isinstance(auth_url, str):
        raise ValueError("auth_url must be a URL string")
    trimmed = auth_url.rstrip("/")
    trimmed = trimmed.removesuffix("/v3")
    return str(check_endpoint(trimmed, "auth_url"))


class PasswordAuth(IamTokenAuth):
    """An IAM user's password, exchanged for one project-scoped token per project.

    Args:
        auth_url: The IAM endpoint, `https://iam.eu-de.otc.t-systems.com`
            (a trailing `/v3` is accepted).
        username: The IAM user's name (or None, with `user_id`).
        password: The IAM user's password.
        domain_name: The user's domain (the account, `OTC00000000001000000xxx`).
        domain_id: The domain's ID, instead of its name.
        user_id: The user's ID instead of a name (then no domain is needed,
            except for listing projects).
        refresh_margin: Seconds before expiry at which a token is replaced (at
            most a tenth of its lifetime).
        max_tokens: Tokens cached at most (one per project).
    """

    __slots__ = ("_domain", "_first", "_password", "_proven", "_refused", "_user")

    def __init__(
        self,
        auth_url: str,
        username: str | None,
        password: str,
        domain_name: str | None = None,
        *,
        domain_id: str | None = None,
        user_id: str | None = None,
        refresh_margin: float = 600.0,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        super().__init__(
            normalise_auth_url(auth_url), refresh_margin=refresh_margin, max_tokens=max_tokens
        )
        if (username is None) == (user_id is None):
            raise ValueError("give exactly one of username and user_id")
        # A user ID names the user alone (keystoneauth's v3 password plugin); a
        # name needs its domain.
        self._user = (
            {"name": check_secret("username", username)}
            if username is not None
            else {"id": check_secret("user_id", user_id)}
        )
        self._password = check_secret("password", password)
        if domain_name is not None and domain_id is not None:
            raise ValueError("give one of domain_name and domain_id, not both")
        if username is not None and domain_name is None and domain_id is None:
            raise ValueError("give exactly one of domain_name and domain_id")
        self._domain: dict[str, str] | None = (
            {"name": check_secret("domain_name", domain_name)}
            if domain_name is not None
            else {"id": check_secret("domain_id", domain_id)}
            if domain_id is not None
            else None
        )
        self._refused: AuthenticationError | None = None
        self._proven = False  # IAM has accepted the password once
        self._first = asyncio.Lock()

    def __repr__(self) -> str:
        user = ", ".join(
            f"user{'name' if k == 'name' else '_id'}={v!r}" for k, v in self._user.items()
        )
        domain = "".join(f", domain_{k}={v!r}" for k, v in (self._domain or {}).items())
        return f"PasswordAuth(auth_url={self._auth_url!r}, {user}, password={REDACTED}{domain})"

    def secrets(self) -> tuple[str, ...]:
        """The password and every token issued (the most recent ones)."""
        return (self._password, *self._tokens.issued)

    async def token(self, scope: Scope, project_id: str, send: Send) -> Token:
        """The token of `scope` (a project ID, or None for the user's domain).

        Raises:
            AuthenticationError: IAM refused the password, now or before.
        """
        self._check_refused(project_id)
        return await super().token(scope, project_id, send)

    def _check_refused(self, project_id: str) -> None:
        refused = self._refused
        if refused is not None:
            # IAM's words were about the project it was asked for, not this one.
            raise AuthenticationError(
                f"IAM refused the password when asked for a token of project "
                f"{refused.project_id} ({refused.message}); the password is not sent again",
                status=refused.status,
                code=refused.code,
                request_id=refused.request_id,
                project_id=project_id,
                credentials_refused=True,
            )

    async def _fetch(self, scope: Scope, project_id: str, send: Send) -> Token:
        if not self._proven:
            # Until IAM has accepted the password once, ask one project at a
            # time: a wrong password is then sent once, not once per project
            # in flight (an account lockout risk).
            async with self._first:
                self._check_refused(project_id)
                if not self._proven:
                    return await self._first_fetch(scope, project_id, send)
        return await super()._fetch(scope, project_id, send)

    async def _first_fetch(self, scope: Scope, project_id: str, send: Send) -> Token:
        """The first token request: a 401 now refuses the password for good.

        IAM (Keystone) answers 401 alike for a wrong password and for a project
        the user has no role in. Before IAM has issued a token for this
        password, the refusal is taken as the password's, so that it is sent
        once, not once per project (accounts lock after a few).
        """
        try:
            token = await super()._fetch(scope, project_id, send)
        except AuthenticationError as error:
            if error.status == _UNAUTHORIZED:
                error.credentials_refused = True
                self._refused = error  # the password itself: never send it again
            elif error.status == _FORBIDDEN:
                # 403: IAM accepted the password and forbids this scope only.
                error.credentials_refused = False
                self._proven = True
            raise
        self._proven = True
        return token

    def _failure(self, error: APIError) -> APIError:
        if isinstance(error, AuthenticationError) and self._proven:
            error.credentials_refused = False  # IAM accepted this password before
        return error

    def _identity(self) -> tuple[str, dict[str, Any]]:
        user: dict[str, Any] = {**self._user, "password": self._password}
        if self._domain is not None:
            user["domain"] = self._domain
        return "password", {"user": user}

    def _domain_scope(self) -> dict[str, str]:
        if self._domain is None:
            raise ConfigurationError(
                "an account-wide token (listing projects) for a user named by ID needs the "
                "user's domain: set OS_USER_DOMAIN_ID or OS_USER_DOMAIN_NAME "
                "(auth.user_domain_id or auth.user_domain_name)"
            )
        return self._domain

    def _sending(self) -> dict[str, Any]:
        return {"authenticate": False}  # the credentials are in the body
