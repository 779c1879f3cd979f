"""Sending one request with aiohttp and reading its answer: the only HTTP I/O.

aiohttp's exceptions are translated into `TransportError` here. They are not
chained: some of them carry the request's headers, and with them a token.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import aiohttp

from ._errors import RequestTimeoutError, ResponseDecodeError, TransportError
from ._responses import Response

if TYPE_CHECKING:
    from collections.abc import Mapping

    from yarl import URL

    from ._requests import Request


async def send(
    session: aiohttp.ClientSession,
    url: URL,
    request: Request,
    headers: Mapping[str, str],
    *,
    timeout: aiohttp.ClientTimeout,
    max_body_size: int,
) -> Response:
    """Send `request` to `url` and read the whole answer.

    Redirects are not followed and TLS certificates are verified.

    Raises:
        TransportError: The request did not complete.
        ResponseDecodeError: The body is larger than `max_body_size`.
    """
    failure: TransportError | None = None
    try:
        async with session.request(
            request.method,
            url,
            headers=headers,
            data=request.body,
            allow_redirects=False,
            timeout=timeout,
            ssl=True,
        ) as answer:
            body = await _read_body(answer, request, max_body_size)
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
            f"could not connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}",
            request_sent=False,
            project_id=request.project_id,
            offset=request.offset,
        )
    except aiohttp.ClientPayloadError:
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
    declared = answer.content_length
    if declared is not None and declared > max_body_size:
        raise _too_large(request, max_body_size)
    if declared is not None:
        return await answer.read()
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
