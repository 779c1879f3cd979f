"""`MockTransport`: a client's requests answered by a function, without sockets.

Give it to `VBSClient(..., transport=MockTransport(handler))`: every request
the client sends, IAM's included, goes to `handler(request)`, which returns
a `Response` (or awaits one, or raises a `TransportError` to play a network
failure). Retries, paging, throttling and crawls can then be tested in
microseconds.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from vbs_async._requests import Request
from vbs_async._responses import Response


@attrs.frozen
class SentRequest:
    """A request as the mock transport received it.

    Attributes:
        request: The client's request (method, path, query, body, project).
        url: The full URL it was sent to.
        headers: The headers it carried (credentials included: tests only).
    """

    request: Request
    url: URL
    headers: Mapping[str, str] = attrs.field(repr=False)


Handler = Callable[[SentRequest], Response | Awaitable[Response]]


def response(
    status: int = 200, body: Any = None, headers: Mapping[str, str] | None = None
) -> Response:
    """A `Response`: `body` bytes as they are, anything else as JSON."""
    raw = body if isinstance(body, bytes) else b"" if body is None else orjson.dumps(body)
    return Response(status=status, headers=CIMultiDictProxy(CIMultiDict(headers or {})), body=raw)


class MockTransport:
    """A transport whose answers come from `handler`; it records every request.

    Attributes:
        sent: Every request received, in order.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.sent: list[SentRequest] = []
        self.closed = False

    async def send(self, request: Request, url: URL, headers: Mapping[str, str]) -> Response:
        """Record the request and answer it with the handler."""
        sent = SentRequest(request, url, dict(headers))
        self.sent.append(sent)
        answer = self._handler(sent)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    async def close(self) -> None:
        """Nothing to release."""
        self.closed = True
