"""AK/SK request signing (SDK-HMAC-SHA256), as Open Telekom Cloud's API gateway checks it.

`canonical_request` and `signature` are plain functions, shared by `AKSKAuth`
and by the emulator that verifies signatures. The scheme (from the public
signing guide and `huaweicloudsdkcore.signer.Signer`, which the tests compare
against):

1. canonical request: METHOD, the URI (each segment percent-encoded, ending
   with `/`), the query sorted by name and value, each signed header as
   `name:value`, the signed header names joined with `;`, hex SHA-256 of the body;
2. string to sign: `SDK-HMAC-SHA256`, the `X-Sdk-Date`, hex SHA-256 of (1);
3. signature: hex HMAC-SHA256 of (2) keyed with the secret key;
4. `Authorization: SDK-HMAC-SHA256 Access=AK, SignedHeaders=..., Signature=...`.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote

from ._auth import REDACTED, CatalogFromIamAuth, Send, check_secret

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from yarl import URL

    from ._requests import Request

ALGORITHM: Final = "SDK-HMAC-SHA256"
DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"


def _encode(value: str) -> str:
    return quote(value, safe="~")


def canonical_uri(path: str) -> str:
    """Each segment of the (decoded) path percent-encoded, with a trailing `/`."""
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(query: Iterable[tuple[str, str]]) -> str:
    """The query sorted by name and value, each part percent-encoded."""
    return "&".join(f"{_encode(name)}={_encode(value)}" for name, value in sorted(query))


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes | None,
) -> tuple[str, str]:
    """(canonical request, signed header names) for the headers to be signed."""
    signed = {name.lower(): str(value).strip() for name, value in headers.items()}
    names = sorted(signed)
    lines = [
        method.upper(),
        canonical_uri(path),
        canonical_query(query),
        "".join(f"{name}:{signed[name]}\n" for name in names),
        ";".join(names),
        hashlib.sha256(body or b"").hexdigest(),
    ]
    return "\n".join(lines), ";".join(names)


def signature(secret_key: str, sdk_date: str, canonical: str) -> str:
    """Hex HMAC-SHA256 of the string to sign."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{sdk_date}\n{digest}"
    return hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def host_header(url: URL) -> str:
    """The Host header aiohttp sends for `url`: the port only when it is not the default."""
    host = url.raw_host or ""
    return host if url.is_default_port() else f"{host}:{url.port}"


class AKSKAuth(CatalogFromIamAuth):
    """Signs every request with an access key and secret key (SDK-HMAC-SHA256).

    The signed headers are `Host`, `X-Sdk-Date`, `X-Project-Id`, with a body
    `Content-Type`, and with temporary keys `X-Security-Token`, which is sent
    and signed as huaweicloudsdkcore does. An account-wide call (IAM's:
    listing projects, assuming an agency) carries `X-Domain-Id` instead of
    `X-Project-Id` when the account's ID is known, as the vendor's AK/SK
    guide asks of global services and gophertelekomcloud sends. The gateway
    wants `X-Sdk-Date` within 15 minutes of its clock, so the machine's clock
    must be right.

    Args:
        access_key: The access key (AK).
        secret_key: The secret key (SK).
        security_token: The security token of temporary keys, or None.
        domain_id: The account's (domain's) ID, for IAM's account-wide calls.
        auth_url: IAM's endpoint: each project's service catalog is then asked
            of IAM (`GET /v3/auth/catalog`), as gophertelekomcloud does, to
            find VBS; without it, the region's known endpoint.
    """

    __slots__ = ("_access_key", "_domain_id", "_secret_key", "_security_token")

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        security_token: str | None = None,
        *,
        domain_id: str | None = None,
        auth_url: str | None = None,
    ) -> None:
        super().__init__(auth_url)
        self._access_key = check_secret("access_key", access_key)
        self._secret_key = check_secret("secret_key", secret_key)
        self._security_token = (
            None if security_token is None else check_secret("security_token", security_token)
        )
        self._domain_id = None if domain_id is None else check_secret("domain_id", domain_id)

    def __repr__(self) -> str:
        token = "" if self._security_token is None else f", security_token={REDACTED}"
        domain = "" if self._domain_id is None else f", domain_id={self._domain_id!r}"
        return (
            f"AKSKAuth(access_key={self._access_key[:4]!r}..., secret_key={REDACTED}"
            f"{token}{domain})"
        )

    @property
    def domain_id(self) -> str | None:
        """The account's ID sent as `X-Domain-Id` on account-wide calls, if given."""
        return self._domain_id

    async def headers(self, request: Request, url: URL, send: Send) -> dict[str, str]:
        """`Host`, `X-Sdk-Date`, `X-Project-Id` (or `X-Domain-Id`) and the `Authorization`."""
        del send
        return self.sign(request, url, datetime.now(UTC))

    def secrets(self) -> tuple[str, ...]:
        """The secret key and the security token (the access key is an identifier)."""
        return (
            (self._secret_key,)
            if self._security_token is None
            else (
                self._secret_key,
                self._security_token,
            )
        )

    def sign(self, request: Request, url: URL, now: datetime) -> dict[str, str]:
        """The headers that sign `request` to `url` at the time `now`."""
        sdk_date = now.astimezone(UTC).strftime(DATE_FORMAT)
        signed = {"Host": host_header(url), "X-Sdk-Date": sdk_date}
        if not request.domain_scoped:
            signed["X-Project-Id"] = request.project_id
        elif self._domain_id is not None:  # an account-wide IAM call is about no project
            signed["X-Domain-Id"] = self._domain_id
        if request.body is not None:
            signed["Content-Type"] = "application/json"
        if self._security_token is not None:
            signed["X-Security-Token"] = self._security_token
        canonical, names = canonical_request(
            request.method, request.path, request.query, signed, request.body
        )
        value = signature(self._secret_key, sdk_date, canonical)
        authorization = (
            f"{ALGORITHM} Access={self._access_key}, SignedHeaders={names}, Signature={value}"
        )
        return {**signed, "Authorization": authorization}
