"""The transport seam: every request the client sends goes through a `Transport`.

`Transport` is one async method, send a request and return its answer fully
read, plus `close`. `AiohttpTransport` is the default and the only HTTP I/O
of the library; `vbs_async.testing.MockTransport` answers from a function, so
that retries, paging and crawls can be tested without sockets.

aiohttp's exceptions are translated into `TransportError` here. They are not
chained: some of them carry the request's headers, and with them a token.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Final, Protocol

import aiohttp
import aiohttp.http_exceptions
from aiohttp.helpers import get_env_proxy_for_url

from ._errors import RequestTimeoutError, ResponseDecodeError, TransportError
from ._responses import Response

if TYPE_CHECKING:
    from collections.abc import Mapping

    from yarl import URL

    from ._requests import Request

USER_AGENT: Final = "vbs-async"


class Transport(Protocol):
    """Sends one request and reads its whole answer."""

    async def send(self, request: Request, url: URL, headers: Mapping[str, str]) -> Response:
        """Send `request` to `url` with `headers`; return the answer, whatever its status.

        Raises:
            TransportError: The request did not complete.
            ResponseDecodeError: The body is larger than the transport accepts.
        """
        ...  # pragma: no cover - a protocol

    async def close(self) -> None:
        """Release connections."""
        ...  # pragma: no cover - a protocol


class AiohttpTransport:
    """Requests over one aiohttp session: redirects never followed, TLS verified.

    Args:
        session: A session to borrow (never closed here), or None to own one,
            created on the first request.
        max_connections: Connections the owned session may open at once.
        timeout: Seconds one request may take, connecting included.
        max_body_size: Answers larger than this many bytes are refused.
        ssl: True verifies TLS against the system's CAs, an `ssl.SSLContext`
            against its own, False not at all.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        max_connections: int = 100,
        timeout: float = 30.0,
        max_body_size: int = 64 * 1024 * 1024,
        ssl: ssl.SSLContext | bool = True,
    ) -> None:
        self._ssl = ssl
        self._session = session
        self._owns_session = session is None
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_body_size = max_body_size
        self._proxies: dict[URL, tuple[URL | None, aiohttp.BasicAuth | None]] = {}

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session in use, once there is one."""
        return self._session

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                headers={"User-Agent": USER_AGENT},
                # Not aiohttp's trust_env: it would also send ~/.netrc's
                # credentials as an Authorization header (clashing with AK/SK
                # signatures), and it reads the environment and .netrc in a
                # thread for every request. Proxies are taken per origin
                # below instead.
                trust_env=False,
            )
            # aiohttp re-sends an idempotent request once, silently, when the
            # server closed the connection without answering; a DELETE the
            # server carried out then comes back 404 and looks like a failure.
            # The client's own retry loop re-sends instead, knowing that the
            # first attempt may have acted (aiohttp has no public switch).
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False  # noqa: SLF001
        return self._session

    def _proxy(self, url: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        """The proxy for `url`'s origin from HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read once.

        Corporate networks reach the cloud only through their proxy; the
        variables are the ones curl and the OpenStack tools honour.
        """
        origin = url.origin()
        found = self._proxies.get(origin)
        if found is None:
            try:
                found = get_env_proxy_for_url(origin)
            except LookupError:
                found = (None, None)
            self._proxies[origin] = found
        return found

    async def close(self) -> None:
        """Close the session this transport owns; a borrowed one stays open."""
        if self._owns_session and self._session is not None:
            await self._session.close()

    @property
    def unclosed(self) -> bool:
        """Whether an owned session is still open."""
        return self._owns_session and self._session is not None and not self._session.closed

    async def send(self, request: Request, url: URL, headers: Mapping[str, str]) -> Response:
        """Send `request` to `url` and read the whole answer."""
        timeout = self._timeout
        failure: TransportError | ResponseDecodeError | None = None
        proxy, proxy_auth = self._proxy(url)
        try:
            async with self._http().request(
                request.method,
                url,
                headers=headers,
                data=request.body,
                allow_redirects=False,
                timeout=timeout,
                ssl=self._ssl,
                proxy=proxy,
                proxy_auth=proxy_auth,
            ) as answer:
                body = await _read_body(answer, request, self._max_body_size)
                return Response(status=answer.status, headers=answer.headers, body=body)
        except aiohttp.ConnectionTimeoutError:
            failure = RequestTimeoutError(
                f"could not connect within {timeout.total}s",
                request_sent=False,
                project_id=request.project_id,
                offset=request.offset,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            failure = RequestTimeoutError(
                f"no complete answer within {timeout.total}s",
                project_id=request.project_id,
                offset=request.offset,
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            failure = TransportError(
                f"TLS certificate of {exc.host} could not be verified",
                request_sent=False,
                retryable=False,
                project_id=request.project_id,
                offset=request.offset,
            )
        except aiohttp.ClientConnectorError as exc:
            # Failed before the request went out: safe to retry even a POST.
            failure = TransportError(
                f"could not connect to {exc.host}:{exc.port}: "
                f"{exc.os_error.strerror or exc.os_error}",
                request_sent=False,
                project_id=request.project_id,
                offset=request.offset,
            )
        except aiohttp.ClientPayloadError as exc:
            if isinstance(exc.__cause__, aiohttp.http_exceptions.ContentEncodingError):
                # A whole answer that is not what its Content-Encoding says:
                # asking again brings the same body.
                failure = ResponseDecodeError(
                    "the answer's body does not decode as its Content-Encoding says",
                    project_id=request.project_id,
                    offset=request.offset,
                )
            else:
                failure = TransportError(
                    "the answer's body was cut short",
                    project_id=request.project_id,
                    offset=request.offset,
                )
        except (aiohttp.ClientError, ssl.SSLError, ConnectionError) as exc:
            failure = TransportError(
                f"the connection failed: {type(exc).__name__}",
                project_id=request.project_id,
                offset=request.offset,
            )
        # Raised outside the except blocks so that no aiohttp exception (which
        # may hold request headers) is kept as __context__.
        raise failure


async def _read_body(answer: aiohttp.ClientResponse, request: Request, max_body_size: int) -> bytes:
    """The body, decompressed, refused as soon as it grows past `max_body_size`.

    `Content-Length` counts the bytes on the wire (compressed, for a gzip
    body), so it is only an early refusal; the cap counts what aiohttp has
    inflated, chunk by chunk, whatever the framing.
    """
    declared = answer.content_length
    if declared is not None and declared > max_body_size:
        raise _too_large(request, max_body_size)
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_any():
        size += len(chunk)
        if size > max_body_size:
            raise _too_large(request, max_body_size)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(request: Request, max_body_size: int) -> ResponseDecodeError:
    return ResponseDecodeError(
        f"the answer's body is larger than max_body_size ({max_body_size} bytes)",
        project_id=request.project_id,
        offset=request.offset,
    )
