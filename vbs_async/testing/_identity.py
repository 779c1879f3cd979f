"""Who may call the emulator: an emulated IAM issuing project tokens, and AK/SK checks.

`Identity` issues a distinct token per (user, project) with a set lifetime,
accepts a token only for the project it was scoped to, and verifies
SDK-HMAC-SHA256 signatures made with a configured key pair.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

from vbs_async._signing import ALGORITHM, DATE_FORMAT, canonical_request, signature

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_DOMAIN: Final = "emulator-domain"
_AUTHORIZATION: Final = re.compile(
    rf"^{ALGORITHM} Access=(?P<access>[^,]+), SignedHeaders=(?P<names>[^,]+), "
    r"Signature=(?P<signature>[0-9a-f]+)$"
)
_CLOCK_SKEW: Final = timedelta(minutes=15)


class Refused(Exception):  # noqa: N818 - a verdict, not a failure of the emulator
    """The caller is not allowed; the message is what the gateway says."""


@attrs.frozen
class IssuedToken:
    """A token the emulated IAM handed out.

    Attributes:
        user: Who asked for it.
        project_id: The project it is scoped to.
        expires: `time.monotonic()` after which it is refused.
    """

    user: str
    project_id: str
    expires: float


class Identity:
    """Users, their project tokens, and access keys.

    Attributes:
        users: User name to password.
        domain_name: The domain every user belongs to.
        token_lifetime: Seconds an issued token is valid.
        access_keys: Access key to secret key.
        token_requests: (user, project) of every token issued, in order.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        domain_name: str = DEFAULT_DOMAIN,
        token_lifetime: float = 86_400.0,
        access_keys: Mapping[str, str] | None = None,
    ) -> None:
        self.users = dict(users or {})
        self.domain_name = domain_name
        self.token_lifetime = token_lifetime
        self.access_keys = dict(access_keys or {})
        self.token_requests: list[tuple[str, str]] = []
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, payload: Any) -> tuple[str, dict[str, Any]]:
        """Answer a `POST /v3/auth/tokens` body: (token, response body).

        Raises:
            Refused: The body is malformed or the password is wrong.
        """
        try:
            identity = payload["auth"]["identity"]
            user = identity["password"]["user"]
            name, password, domain = user["name"], user["password"], user["domain"]["name"]
            project_id = payload["auth"]["scope"]["project"]["id"]
        except (KeyError, TypeError):
            raise Refused("the request body is not a password authentication") from None
        known = self.users.get(name)
        if (
            known is None
            or not hmac.compare_digest(known, str(password))
            or domain != self.domain_name
        ):
            raise Refused("The username or password is wrong.")
        token = secrets.token_urlsafe(48)
        self._tokens[token] = IssuedToken(name, project_id, time.monotonic() + self.token_lifetime)
        self.token_requests.append((name, project_id))
        issued = datetime.now(UTC)
        expires = issued + timedelta(seconds=self.token_lifetime)
        body = {
            "token": {
                "issued_at": issued.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "expires_at": expires.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "methods": ["password"],
                "project": {"id": project_id},
                "user": {"name": name, "domain": {"name": domain}},
            }
        }
        return token, body

    def revoke_all(self) -> None:
        """Invalidate every token issued so far (as a password change would)."""
        self._tokens.clear()

    def check_token(self, token: str, project_id: str) -> None:
        """Raise `Refused` unless `token` is live and scoped to `project_id`."""
        issued = self._tokens.get(token)
        if issued is None:
            raise Refused("Incorrect IAM authentication information: token is not valid")
        if time.monotonic() >= issued.expires:
            raise Refused("Incorrect IAM authentication information: token has expired")
        if issued.project_id != project_id:
            raise Refused("Incorrect IAM authentication information: token is for another project")

    def check_signature(
        self,
        authorization: str,
        *,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> None:
        """Raise `Refused` unless `authorization` signs this request with a known key pair."""
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
            signed_at = datetime.strptime(sdk_date, DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise Refused("Incorrect IAM authentication information: bad X-Sdk-Date") from None
        if abs(datetime.now(UTC) - signed_at) > _CLOCK_SKEW:
            raise Refused("Incorrect IAM authentication information: X-Sdk-Date out of range")
        signed = {name: headers.get(name, "") for name in names}
        canonical, _ = canonical_request(method, path, query, signed, body)
        expected = signature(secret, sdk_date, canonical)
        if not hmac.compare_digest(expected, match["signature"]):
            raise Refused("Incorrect IAM authentication information: verify aksk signature fail")
