"""The client's lifecycle: owned and borrowed sessions, closing, warnings, reprs."""

from __future__ import annotations

import gc

import aiohttp
import pytest

from vbs_async import TokenAuth, VBSClient


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
