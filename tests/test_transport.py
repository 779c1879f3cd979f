"""The transport seam: every request, IAM's included, goes through the client's call path.

These tests use `MockTransport`: no sockets, answers from a function.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from vbs_async import PasswordAuth, PermissionDeniedError, RetryPolicy, TokenAuth, VBSClient
from vbs_async.testing import MockTransport, SentRequest, response

from ._helpers import sharing_document

FAST = RetryPolicy(attempts=3, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)
PROJECT = "0123456789abcdef0123456789abcdef"
TOKEN_BODY = {"token": {"issued_at": "2030-01-01T00:00:00Z", "expires_at": "2030-01-02T00:00:00Z"}}


def sharing(index: int) -> dict[str, str]:
    return sharing_document(f"s{index:04d}", PROJECT)


async def test_an_iam_503_while_a_post_waits_for_its_token_is_retried():
    iam_answers = [response(503, {"error_msg": "busy", "error_code": "IAM.0001"})]

    def handler(sent: SentRequest):
        if sent.request.path == "/v3/auth/tokens":
            if iam_answers:
                return iam_answers.pop()
            return response(201, TOKEN_BODY, {"X-Subject-Token": "issued-token"})
        assert sent.headers["X-Auth-Token"] == "issued-token"
        return response(200, {"shared": [sharing(1)]})

    transport = MockTransport(handler)
    auth = PasswordAuth("https://iam.example/v3", "alice", "pa55word", "domain")
    async with VBSClient(
        "https://vbs.example", auth=auth, retry=FAST, transport=transport
    ) as client:
        shared = await client.share_backup(PROJECT, "b", ["t"])
    assert [s.id for s in shared] == ["s0001"]
    assert [(s.request.method, s.url.host) for s in transport.sent] == [
        ("POST", "iam.example"),
        ("POST", "iam.example"),
        ("POST", "vbs.example"),
    ]


async def test_iam_requests_share_the_clients_limits_and_learned_rate():
    def handler(sent: SentRequest):
        if sent.request.path == "/v3/auth/tokens":
            return (
                response(429, {"error_msg": "over ratelimit", "error_code": "APIGW.0308"})
                if len(transport.sent) == 1
                else response(201, TOKEN_BODY, {"X-Subject-Token": "t"})
            )
        return response(200, {"shared": []})

    transport = MockTransport(handler)
    auth = PasswordAuth("https://iam.example", "alice", "pa55word", "domain")
    async with VBSClient(
        "https://vbs.example", auth=auth, retry=FAST, transport=transport
    ) as client:
        iterator = client.iter_sharings(PROJECT)
        assert [s async for s in iterator] == []
        assert client.limiter.adaptive.throttled_answers == 1
        assert client.limiter.peak_in_flight == 1


async def test_closing_the_client_cancels_a_token_request_in_flight():
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(_: SentRequest):
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return response(201, TOKEN_BODY, {"X-Subject-Token": "t"})

    auth = PasswordAuth("https://iam.example", "alice", "pa55word", "domain")
    client = VBSClient("https://vbs.example", auth=auth, transport=MockTransport(handler))
    call = asyncio.create_task(client.count_sharings(PROJECT))
    await started.wait()
    call.cancel()  # the caller gives up; the shielded token fetch goes on...
    with contextlib.suppress(asyncio.CancelledError):
        await call
    assert not cancelled.is_set()
    await client.close()  # ...until the client closes
    assert cancelled.is_set()


# -- the iterator's cancellation, proven through the seam ------------------------------------


class BlockingPages:
    """Serves the first page at once; every later page blocks until cancelled."""

    def __init__(self) -> None:
        self.cancelled: list[int] = []
        self.blocked = asyncio.Event()

    async def __call__(self, sent: SentRequest):
        offset = int(dict(sent.request.query)["offset"])
        if offset == 0:
            return response(200, {"shared": [sharing(i) for i in range(100)]})
        self.blocked.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(offset)
            raise
        raise AssertionError("unreachable")  # pragma: no cover


@pytest.mark.parametrize("prefetch", [0, 4])
async def test_breaking_out_of_an_iterator_cancels_every_page_in_flight(prefetch):
    pages = BlockingPages()
    transport = MockTransport(pages)
    async with VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=transport) as client:
        items = aiter(client.iter_sharings(PROJECT, prefetch=prefetch))
        async with asyncio.timeout(5), contextlib.aclosing(items):  # a page left running hangs
            async for _ in items:
                if prefetch:
                    await pages.blocked.wait()
                break
    in_flight = len(transport.sent) - 1
    assert in_flight == (prefetch or 0)
    assert sorted(pages.cancelled) == sorted(
        int(dict(s.request.query)["offset"]) for s in transport.sent[1:]
    )


async def test_an_error_in_one_page_fetched_ahead_cancels_the_others():
    pages = BlockingPages()

    async def handler(sent: SentRequest):
        if dict(sent.request.query)["offset"] == "98":
            await pages.blocked.wait()
            return response(403, {"error": {"message": "no", "code": "VBS.403"}})
        return await pages(sent)

    transport = MockTransport(handler)
    async with VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=transport) as client:
        with pytest.raises(PermissionDeniedError):
            async with asyncio.timeout(5):  # a page left running would hang the listing
                await client.list_sharings(PROJECT, prefetch=4)
    blocked = {int(dict(s.request.query)["offset"]) for s in transport.sent} - {0, 98}
    assert blocked
    assert set(pages.cancelled) == blocked
