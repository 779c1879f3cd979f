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
    from collections.abc import Mapping

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
