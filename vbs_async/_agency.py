"""`AgencyAuth`: tokens of an IAM agency, for one operator to reach many accounts.

An agency lets users of one account (the delegated user) act in another
account's projects. IAM's `assume_role` method turns the delegated user's
credentials into a token of the agency, scoped to one project of the
delegating account (`POST /v3/auth/tokens`, the request authenticated by
the delegated user: a domain-scoped token of a `PasswordAuth`, an AK/SK
signature, or a ready token as the Terraform provider accepts). Tokens
are cached and fetched once per project, as `PasswordAuth`'s are.
"""

from __future__ import annotations

from typing import Any

from ._auth import TokenAuth, check_secret
from ._iam import PasswordAuth, normalise_auth_url
from ._signing import AKSKAuth
from ._tokens import DEFAULT_MAX_TOKENS, IamTokenAuth


class AgencyAuth(IamTokenAuth):
    """Project-scoped tokens of an agency, obtained with the delegated user's credentials.

    Args:
        base: The delegated user's credentials: a `PasswordAuth`, or an
            `AKSKAuth` or a `TokenAuth` (then `auth_url` is needed).
        agency_domain: The delegating account (domain) name.
        agency_name: The agency's name in that account.
        domain_id: The delegating account's ID, instead of its name
            (otcextensions' `target_domain_id`).
        auth_url: The IAM endpoint; by default the `PasswordAuth`'s.
        refresh_margin: Seconds before expiry at which a token is replaced.
        max_tokens: Tokens cached at most (one per project).

    Raises:
        ValueError: An argument is invalid.
    """

    __slots__ = ("_agency_domain", "_agency_name", "_base")

    def __init__(
        self,
        base: PasswordAuth | AKSKAuth | TokenAuth,
        *,
        agency_domain: str | None = None,
        agency_name: str,
        domain_id: str | None = None,
        auth_url: str | None = None,
        refresh_margin: float = 600.0,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        if not isinstance(base, PasswordAuth | AKSKAuth | TokenAuth):
            raise ValueError(
                f"base must be a PasswordAuth, AKSKAuth or TokenAuth, got {type(base).__name__}"
            )
        if (agency_domain is None) == (domain_id is None):
            raise ValueError("give exactly one of agency_domain and domain_id")
        if auth_url is None:
            if not isinstance(base, PasswordAuth):
                raise ValueError(f"auth_url must be given with a {type(base).__name__} base")
            auth_url = base.auth_url
        super().__init__(
            normalise_auth_url(auth_url), refresh_margin=refresh_margin, max_tokens=max_tokens
        )
        self._base = base
        self._agency_domain = (
            {"name": check_secret("agency_domain", agency_domain)}
            if agency_domain is not None
            else {"id": check_secret("domain_id", domain_id)}
        )
        self._agency_name = check_secret("agency_name", agency_name)

    def __repr__(self) -> str:
        ((kind, value),) = self._agency_domain.items()
        domain = "agency_domain" if kind == "name" else "domain_id"
        return f"AgencyAuth({self._base!r}, {domain}={value!r}, agency_name={self._agency_name!r})"

    @property
    def agency_name(self) -> str:
        """The agency's name."""
        return self._agency_name

    @property
    def agency_domain(self) -> str | None:
        """The delegating account's name, if given by name."""
        return self._agency_domain.get("name")

    @property
    def domain_id(self) -> str | None:
        """The delegating account's ID, if given by ID."""
        return self._agency_domain.get("id")

    @property
    def base(self) -> PasswordAuth | AKSKAuth | TokenAuth:
        """The delegated user's credentials."""
        return self._base

    def secrets(self) -> tuple[str, ...]:
        """The delegated user's secrets and every agency token issued."""
        return (*self._base.secrets(), *self._tokens.issued)

    async def aclose(self) -> None:
        """Cancel token requests in flight, the base's too."""
        await super().aclose()
        await self._base.aclose()

    def _identity(self) -> tuple[str, dict[str, Any]]:
        # As otcextensions' AssumeRoleMethod: `domain_id` or `domain_name`, and `xrole_name`.
        ((kind, value),) = self._agency_domain.items()
        return "assume_role", {f"domain_{kind}": value, "xrole_name": self._agency_name}

    def _domain_scope(self) -> dict[str, str]:
        return dict(self._agency_domain)

    def _sending(self) -> dict[str, Any]:
        # Signed by the delegated user, acting in its own domain.
        return {"domain_scoped": True, "signer": self._base}
