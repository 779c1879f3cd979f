"""Closing a client ends what runs on it with one typed error; a client belongs to one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from vbs_async import ClientClosedError, EventLoopError, TokenAuth, VBSClient, VBSError
from vbs_async._auth import Auth
from vbs_async._requests import Request
from vbs_async.testing import MockTransport, SentRequest, response

from ._helpers import LoopClock

PROJECT = "c13f5220dc1949b0b741ea81a7cd5554"


def sharing(project: str, index: int) -> dict[str, Any]:
    return {
        "id": f"{project}-{index}",
        "backup_id": "b",
        "from_project_id": project,
        "to_project_id": "q",
    }


class SlowServer:
    """Every project holds `size` sharings; each answer takes a few loop turns."""

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.after_close = 0
        self.closed = False

    async def __call__(self, sent: SentRequest) -> Any:
        if self.closed:
            self.after_close += 1
        await asyncio.sleep(0.001)
        project = sent.request.project_id
        query = dict(sent.request.query)
        offset, limit = int(query["offset"]), int(query["limit"])
        items = [sharing(project, i) for i in range(self.size)][offset : offset + limit]
        return response(200, {"shared": items})


def client_for(server: SlowServer) -> VBSClient:
    return VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=MockTransport(server))


def other_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def test_close_mid_crawl_of_2000_projects_ends_it_with_one_error_and_no_error_log(caplog):
    caplog.set_level(logging.DEBUG, logger="vbs_async")
    server = SlowServer()
    client = client_for(server)
    projects = [f"{index:032x}" for index in range(2_000)]
    results = []
    closing: asyncio.Task[None] | None = None

    async def close() -> None:
        server.closed = True  # from here on, nothing may reach the server
        await client.close()

    with pytest.raises(ClientClosedError) as caught:  # noqa: PT012 - closed inside the loop
        async for result in client.crawl(projects, max_projects=64):
            results.append(result)
            if len(results) == 30:
                closing = asyncio.create_task(close())
    assert closing is not None
    await closing
    assert "closed" in str(caught.value)
    assert all(result.ok for result in results)  # no project was failed by the close
    assert len(results) < 2_000
    assert server.after_close == 0  # nothing was sent once close() began
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert other_tasks() == set()


async def test_close_from_inside_the_crawl_loop_ends_it_at_the_next_step(caplog):
    server = SlowServer()
    client = client_for(server)
    projects = [f"{index:032x}" for index in range(200)]
    seen = 0
    with pytest.raises(ClientClosedError):  # noqa: PT012 - closed inside the loop
        async for _ in client.crawl(projects, max_projects=16):
            seen += 1
            if seen == 5:
                await client.close()
    assert seen < 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert other_tasks() == set()


@pytest.mark.parametrize("prefetch", [0, 4])
async def test_close_while_iterating_raises_client_closed_from_the_iteration(prefetch):
    server = SlowServer(size=1_000)
    client = client_for(server)
    got = 0
    with pytest.raises(ClientClosedError) as caught:  # noqa: PT012 - closed inside the loop
        async for _ in client.iter_sharings(PROJECT, prefetch=prefetch):
            got += 1
            if got == 150:
                task = asyncio.create_task(client.close())
                await asyncio.sleep(0)
    await task
    assert caught.value.project_id == PROJECT
    assert isinstance(caught.value, RuntimeError)  # as a closed client's error was before
    assert got < 1_000
    assert other_tasks() == set()


async def test_close_returns_once_the_calls_it_cancelled_have_ended():
    """Even a call whose transport takes a few turns to wind down has ended by then."""
    started = asyncio.Event()

    async def handler(_: SentRequest) -> Any:
        started.set()
        try:
            await asyncio.Event().wait()  # never answers
        finally:
            for _ in range(5):  # closing its connection, say
                await asyncio.sleep(0)

    client = VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=MockTransport(handler))
    call = asyncio.create_task(client.list_sharings(PROJECT, start_offset=5))
    await started.wait()
    await client.close()
    assert call.done()
    error = call.exception()
    assert isinstance(error, ClientClosedError)
    assert (error.project_id, error.offset) == (PROJECT, 5)
    assert str(error) == (
        f"cancelled: the client was closed while this call ran (project {PROJECT}, offset 5)"
    )


async def test_close_waits_5_s_for_a_call_that_ignores_its_cancellation_then_returns(
    monkeypatch,
):
    clock = LoopClock(monkeypatch)
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(_: SentRequest) -> Any:
        started.set()
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()
        return response(200, {"count": 1})

    client = VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=MockTransport(handler))
    call = asyncio.create_task(client.count_sharings(PROJECT))
    try:
        await started.wait()
        closing = asyncio.create_task(client.close())
        await clock.advance(0)  # close() cancels the call, which goes on, and waits
        await clock.advance(4.9)
        assert not closing.done()
        await clock.advance(0.2)
        assert closing.done()
        assert closing.result() is None  # no TimeoutError: close() ends, that call left to itself
    finally:
        release.set()
        await call


async def test_a_client_closed_from_inside_one_of_its_calls_lets_that_call_finish():
    """close() cancels the calls in flight but the one it runs in (it would wait for itself)."""
    client: VBSClient

    async def handler(_: SentRequest) -> Any:
        await client.close()
        return response(200, {"count": 7})

    client = VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=MockTransport(handler))
    assert await client.count_sharings(PROJECT) == 7
    with pytest.raises(ClientClosedError, match="the client is closed"):
        await client.count_sharings(PROJECT)


class TokenThroughTheCall(Auth):
    """An auth of the caller's own that fetches its token through the client's call path,
    inside the call it authenticates (the same task)."""

    async def headers(self, request: Request, url: Any, send: Any) -> dict[str, str]:
        del request, url  # every call gets the same token
        fetch = Request("GET", "/token", "", endpoint="https://iam.example", authenticate=False)
        return {"X-Auth-Token": (await send(fetch)).body.decode()}

    def secrets(self) -> tuple[str, ...]:
        return ()


async def test_a_call_made_inside_a_call_leaves_the_outer_one_for_close_to_cancel():
    held = asyncio.Event()

    async def handler(sent: SentRequest) -> Any:
        if sent.request.path == "/token":
            return response(200, b"a-token")
        assert sent.headers["X-Auth-Token"] == "a-token"
        held.set()
        await asyncio.Event().wait()  # the outer call never answered
        return None

    client = VBSClient(
        "https://vbs.example", auth=TokenThroughTheCall(), transport=MockTransport(handler)
    )
    call = asyncio.create_task(client.count_sharings(PROJECT))
    await held.wait()
    await client.close()
    assert call.done()
    with pytest.raises(ClientClosedError, match="the client was closed while this call ran"):
        call.result()


async def test_a_call_after_close_raises_client_closed_naming_the_cause():
    client = client_for(SlowServer())
    await client.close()
    with pytest.raises(ClientClosedError) as caught:
        await client.list_sharings(PROJECT, start_offset=5)
    assert str(caught.value) == f"the client is closed (project {PROJECT}, offset 5)"
    assert (caught.value.project_id, caught.value.offset) == (PROJECT, 5)
    with pytest.raises(ClientClosedError, match="the client is closed"):
        await client.list_sharings(PROJECT)
    with pytest.raises(ClientClosedError):
        async for _ in client.crawl([PROJECT]):
            pass


LOOP_REFUSED = (
    "this client first ran in another event loop ({state}); its connections, limits and "
    "tokens belong to that loop: create the client inside the asyncio.run() (or loop) that "
    f"uses it (project {PROJECT})"
)


def test_a_client_used_from_a_second_event_loop_raises_event_loop_error():
    client = client_for(SlowServer())
    assert len(asyncio.run(client.list_sharings(PROJECT))) == 3
    with pytest.raises(EventLoopError, match="another event loop") as caught:
        asyncio.run(client.list_sharings(PROJECT))
    assert str(caught.value) == LOOP_REFUSED.format(state="now closed")
    assert caught.value.project_id == PROJECT
    asyncio.run(client.close())  # its first loop is gone: closing still works
    with pytest.raises(VBSError):
        asyncio.run(client.list_sharings(PROJECT))


async def test_closing_from_another_running_loop_is_refused():
    client = client_for(SlowServer())
    await client.list_sharings(PROJECT)

    def close_elsewhere() -> None:
        with pytest.raises(EventLoopError, match="still runs"):
            asyncio.run(client.close())

    await asyncio.to_thread(close_elsewhere)
    with contextlib.suppress(VBSError):
        await client.close()


async def test_close_mid_listing_with_pages_fetched_ahead_stops_the_items():
    # Quick answers: the pages fetched ahead are already in when close() runs;
    # their items must not be handed out by a closed client.
    transport = MockTransport(
        lambda sent: response(
            200,
            {
                "shared": [sharing(PROJECT, i) for i in range(250)][
                    int(dict(sent.request.query)["offset"]) :
                ][: int(dict(sent.request.query)["limit"])]
            },
        )
    )
    client = VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=transport)
    got = 0
    with pytest.raises(ClientClosedError) as caught:  # noqa: PT012 - closed inside the loop
        async for _ in client.iter_sharings(PROJECT, prefetch=3):
            got += 1
            if got == 5:
                await client.close()
    assert got == 5
    assert caught.value.project_id == PROJECT
    assert caught.value.offset == 5
    assert other_tasks() == set()


async def test_a_call_from_another_loop_while_the_first_still_runs_is_refused_in_full():
    client = client_for(SlowServer())
    await client.list_sharings(PROJECT)

    def call_elsewhere() -> EventLoopError:
        with pytest.raises(EventLoopError) as caught:
            asyncio.run(client.count_sharings(PROJECT))
        return caught.value

    refused = await asyncio.to_thread(call_elsewhere)
    assert str(refused) == LOOP_REFUSED.format(state="still running")
    assert refused.project_id == PROJECT
    await client.close()
