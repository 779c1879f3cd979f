"""The client's lifecycle: owned and borrowed sessions, closing, warnings, reprs."""

from __future__ import annotations

import gc

import aiohttp
import pytest

from vbs_async import BadRequestError, TokenAuth, VBSClient
from vbs_async.testing import MockTransport, SentRequest, response


async def test_async_with_closes_the_owned_session(emulator):
    async with VBSClient(emulator.url, auth=TokenAuth(emulator.token)) as client:
        await client.list_sharings(emulator.project_ids[0])
        session = client._transport.session
    assert session is not None
    assert session.closed


async def test_a_borrowed_session_is_used_and_left_open(emulator):
    async with aiohttp.ClientSession() as session:
        async with VBSClient(
            emulator.url, auth=TokenAuth(emulator.token), session=session
        ) as client:
            await client.list_sharings(emulator.project_ids[0])
        assert not session.closed
        assert emulator.requests_received == 1


async def test_calls_after_close_are_refused(emulator):
    client = VBSClient(emulator.url, auth=TokenAuth(emulator.token))
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await client.list_sharings(emulator.project_ids[0])


async def test_an_unclosed_client_warns_when_collected(emulator):
    client = VBSClient(emulator.url, auth=TokenAuth(emulator.token))
    await client.list_sharings(emulator.project_ids[0])
    session = client._transport.session
    assert session is not None
    del client
    with pytest.warns(ResourceWarning, match="VBSClient was not closed"):
        gc.collect()
    await session.close()


def test_a_client_that_never_sent_anything_needs_no_closing():
    VBSClient("https://vbs.example", auth=TokenAuth("t"))
    gc.collect()


def test_reprs_never_show_the_token():
    auth = TokenAuth("super-secret-token")
    client = VBSClient("https://vbs.example", auth=auth)
    assert "super-secret-token" not in repr(auth)
    assert "super-secret-token" not in repr(client)
    assert repr(client) == "VBSClient('https://vbs.example', auth=TokenAuth(token=<redacted>))"


async def test_every_request_asks_for_json_and_only_one_with_a_body_says_it_sends_json():
    def handler(sent: SentRequest):
        if sent.request.method == "GET":
            return response(200, {"count": 1})
        return response(400, {"error_code": "BS.0001", "error_msg": "refused"})

    transport = MockTransport(handler)
    project = "0123456789abcdef0123456789abcdef"
    async with VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=transport) as client:
        await client.count_sharings(project)
        with pytest.raises(BadRequestError):
            await client.share_backup(project, "b1", ["fedcba9876543210fedcba9876543210"])
    get, post = ({k.lower(): v for k, v in sent.headers.items()} for sent in transport.sent)
    assert get["accept"] == post["accept"] == "application/json"
    assert "content-type" not in get
    assert post["content-type"] == "application/json"
