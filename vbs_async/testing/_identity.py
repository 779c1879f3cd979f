"""Who may call the emulator: an emulated IAM issuing project tokens, and AK/SK checks.

`Identity` issues a distinct token per (user, project) with a set lifetime,
accepts a token only for the project it was scoped to, and verifies
SDK-HMAC-SHA256 signatures made with a configured key pair.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

DEFAULT_DOMAIN: Final = "emulator-domain"
# The emulator checks signatures with code of its own, written from the public
# signing guide (APIG's "SDK-HMAC-SHA256" scheme) and not shared with the
# client's signer, so that a mistake in the client cannot pass its own check.
_ALGORITHM: Final = "SDK-HMAC-SHA256"
_DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"


_AUTHORIZATION: Final = re.compile(
    rf"^{_ALGORITHM} Access=(?P<access>[^,]+), SignedHeaders=(?P<names>[^,]+), "
    r"Signature=(?P<signature>[0-9a-f]+)$"
)
_CLOCK_SKEW: Final = timedelta(minutes=15)


class Refused(Exception):  # noqa: N818 - a verdict, not a failure of the emulator
    """The caller is not allowed; the message is what the gateway says."""

    status = 401


class Forbidden(Refused):
    """The password is right but the scope is forbidden (IAM's 403)."""

    status = 403


@attrs.frozen
class IssuedToken:
    """A token the emulated IAM handed out.

    Attributes:
        user: Who asked for it (for an agency token: the delegated user).
        project_id: The project it is scoped to; None for the user's domain.
        expires: `time.monotonic()` after which it is refused.
        agency: `(domain, agency name)` of an agency token, else None.
    """

    user: str
    project_id: str | None
    expires: float
    agency: tuple[str, str] | None = None


class Identity:
    """Users, their tokens, access keys and agencies.

    Attributes:
        users: User name to password.
        domain_name: The domain every user belongs to.
        domain_id: That domain's ID (a password request may name either).
        token_lifetime: Seconds an issued token is valid.
        access_keys: Access key to secret key.
        security_tokens: Access key to the security token its requests must
            carry and sign (temporary keys).
        agencies: `(delegating domain, agency name)` pairs any user may assume.
        token_requests: (user, project) of every password token issued, in order.
        agency_token_requests: (user, agency, project) of every agency token issued.
        catalog: Makes the service catalog sent with a token of a project.
        denied_projects: Projects no user has a role in: a token for one is
            refused (401, as Keystone answers), the password being right.
        forbidden_projects: Projects whose token IAM answers 403 (the password
            accepted, the scope forbidden).
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        domain_name: str = DEFAULT_DOMAIN,
        token_lifetime: float = 86_400.0,
        access_keys: Mapping[str, str] | None = None,
        security_tokens: Mapping[str, str] | None = None,
        agencies: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.users = dict(users or {})
        self.domain_name = domain_name
        self.domain_id = hashlib.sha256(domain_name.encode()).hexdigest()[:32]
        self.token_lifetime = token_lifetime
        self.access_keys = dict(access_keys or {})
        self.security_tokens = dict(security_tokens or {})
        self.agencies = set(agencies)
        self.token_requests: list[tuple[str, str | None]] = []
        self.agency_token_requests: list[tuple[str, str, str | None]] = []
        self.catalog: Callable[[str | None], list[dict[str, Any]]] = lambda _: []
        self._tokens: dict[str, IssuedToken] = {}
        self.denied_projects: set[str] = set()
        self.forbidden_projects: set[str] = set()

    def _check_scope(self, project_id: str | None) -> None:
        """Refuse a token for a project no user has a role in (401) or one forbidden (403)."""
        if project_id in self.denied_projects:
            raise Refused(f"The user has no role in project {project_id}.")
        if project_id in self.forbidden_projects:
            raise Forbidden(f"You are not authorized to perform this action on {project_id}.")

    def issue(self, payload: Any, caller: str | None = None) -> tuple[str, dict[str, Any]]:
        """Answer a `POST /v3/auth/tokens` body: (token, response body).

        Args:
            payload: The request body.
            caller: The user the request is authenticated as (by a token or
                a signature), for `assume_role`; None when it is not.

        Raises:
            Refused: The body is malformed, the password wrong, or the agency unknown.
        """
        try:
            identity = payload["auth"]["identity"]
            methods = identity["methods"]
            scope = payload["auth"].get("scope") or {}
            project_id = scope["project"]["id"] if "project" in scope else None
        except (KeyError, TypeError):
            raise Refused("the request body is not an authentication request") from None
        agency = None
        if methods == ["assume_role"]:
            if caller is None:
                raise Refused("assume_role needs the delegated user's token or signature")
            try:
                agency = (
                    identity["assume_role"]["domain_name"],
                    identity["assume_role"]["xrole_name"],
                )
            except (KeyError, TypeError):
                raise Refused(
                    "the assume_role request names no domain_name and xrole_name"
                ) from None
            if agency not in self.agencies:
                raise Refused("The agency does not exist or the user may not assume it.")
            name = caller
        elif methods == ["password"]:
            name = self._check_password(identity)
        else:
            raise Refused("the request body is not a password or assume_role authentication")
        self._check_scope(project_id)
        token = secrets.token_urlsafe(48)
        self._tokens[token] = IssuedToken(
            name, project_id, time.monotonic() + self.token_lifetime, agency
        )
        if agency is None:
            self.token_requests.append((name, project_id))
        else:
            self.agency_token_requests.append((name, agency[1], project_id))
        issued = datetime.now(UTC)
        expires = issued + timedelta(seconds=self.token_lifetime)
        body: dict[str, Any] = {
            "token": {
                "issued_at": issued.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "expires_at": expires.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "methods": methods,
                "user": {"name": name, "domain": {"name": self.domain_name}},
            }
        }
        if project_id is not None:
            body["token"]["project"] = {"id": project_id}
            body["token"]["catalog"] = self.catalog(project_id)
        else:
            body["token"]["domain"] = {"name": agency[0] if agency else self.domain_name}
        return token, body

    def _check_password(self, identity: Any) -> str:
        try:
            user = identity["password"]["user"]
            name, password, domain = user["name"], user["password"], user["domain"]
        except (KeyError, TypeError):
            raise Refused("the request body is not a password authentication") from None
        known = self.users.get(name)
        if (
            known is None
            or not hmac.compare_digest(known, str(password))
            or domain not in ({"name": self.domain_name}, {"id": self.domain_id})
        ):
            raise Refused("The username or password is wrong.")
        return str(name)

    def revoke_all(self) -> None:
        """Invalidate every token issued so far (as a password change would)."""
        self._tokens.clear()

    def user_of(self, token: str) -> str:
        """The user a live token of a user (not of an agency) belongs to, any scope.

        Raises:
            Refused: It is no such token.
        """
        issued = self._live(token)
        if issued.agency is not None:
            raise Refused("Incorrect IAM authentication information: an agency token")
        return issued.user

    def holder_of(self, token: str) -> str:
        """Who a live token of any kind speaks for: a user, or an agency as `agency:NAME`.

        Raises:
            Refused: It is no live token.
        """
        issued = self._live(token)
        return issued.user if issued.agency is None else f"agency:{issued.agency[1]}"

    def check_token(self, token: str, project_id: str) -> None:
        """Raise `Refused` unless `token` is live and scoped to `project_id`."""
        if self._live(token).project_id != project_id:
            raise Refused("Incorrect IAM authentication information: token is for another project")

    def _live(self, token: str) -> IssuedToken:
        issued = self._tokens.get(token)
        if issued is None:
            raise Refused("Incorrect IAM authentication information: token is not valid")
        if time.monotonic() >= issued.expires:
            raise Refused("Incorrect IAM authentication information: token has expired")
        return issued

    def check_signature(
        self,
        authorization: str,
        *,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> str:
        """The access key whose pair signs this request; `Refused` unless one does.

        Temporary keys (in `security_tokens`) must also send and sign their
        `X-Security-Token`.
        """
        match = _AUTHORIZATION.match(authorization)
        if match is None:
            raise Refused("Incorrect IAM authentication information: malformed Authorization")
        secret = self.access_keys.get(match["access"])
        if secret is None:
            raise Refused("Incorrect IAM authentication information: unknown access key")
        names = match["names"].split(";")
        if "host" not in names or "x-sdk-date" not in names:
            raise Refused(
                "Incorrect IAM authentication information: host and x-sdk-date must be signed"
            )
        sdk_date = headers.get("X-Sdk-Date", "")
        try:
            signed_at = datetime.strptime(sdk_date, _DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise Refused("Incorrect IAM authentication information: bad X-Sdk-Date") from None
        if abs(datetime.now(UTC) - signed_at) > _CLOCK_SKEW:
            raise Refused("Incorrect IAM authentication information: X-Sdk-Date out of range")
        expected = _expected_signature(
            secret,
            sdk_date,
            method=method,
            path=path,
            query=query,
            headers=headers,
            names=names,
            body=body,
        )
        if not hmac.compare_digest(expected, match["signature"]):
            raise Refused("Incorrect IAM authentication information: verify aksk signature fail")
        required = self.security_tokens.get(match["access"])
        if required is not None and (
            "x-security-token" not in names
            or not hmac.compare_digest(headers.get("X-Security-Token", ""), required)
        ):
            raise Refused(
                "Incorrect IAM authentication information: "
                "temporary keys need their X-Security-Token, signed"
            )
        return str(match["access"])


def _uri_encode(text: str) -> str:
    """RFC 3986: unreserved characters stay, every other byte of UTF-8 is %XX."""
    unreserved = set(string.ascii_letters + string.digits + "-_.~")
    return "".join(
        char if char in unreserved else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in text
    )


def _expected_signature(
    secret: str,
    sdk_date: str,
    *,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    names: list[str],
    body: bytes,
) -> str:
    """The signature the guide's four steps give for this request."""
    segments = urllib.parse.unquote(path).split("/")
    uri = "/".join(_uri_encode(segment) for segment in segments)
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted((_uri_encode(k), _uri_encode(v)) for k, v in query)
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    lowered = {name.lower(): value for name, value in headers.items()}
    canonical_headers = "".join(f"{name}:{lowered.get(name, '').strip()}\n" for name in names)
    canonical = "\n".join(
        [
            method.upper(),
            uri,
            canonical_query,
            canonical_headers,
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = f"{_ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
