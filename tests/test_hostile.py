"""Red team: servers written to break the client, and careless inputs.

Each server here is a raw asyncio socket server (or an aiohttp one) that does
one hostile thing; each test asserts the typed error a user sees, that no
credential leaks, and (for the bombs) that memory stays bounded, measured in
a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from vbs_async import (
    AuthenticationError,
    PaginationError,
    PasswordAuth,
    RequestTimeoutError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    TokenAuth,
    TransportError,
    VBSClient,
    VBSError,
)
from vbs_async._requests import Request
from vbs_async._retry import parse_retry_after
from vbs_async._transport import AiohttpTransport
from vbs_async.testing import Emulator, MockTransport, SentRequest, response

from ._helpers import EchoServer, closed_port

if TYPE_CHECKING:
    from vbs_async._responses import Response

PROJECT = "0123456789abcdef0123456789abcdef"
SECRET = "tok-HOSTILE-secret-123456"
FAST = RetryPolicy(attempts=2, timeout=5, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)
Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(reply: Reply) -> AsyncIterator[str]:
    """A socket server on 127.0.0.1 that answers every connection with `reply`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await reader.readuntil(b"\r\n\r\n")
            await reply(reader, writer)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def raw(text: bytes) -> Reply:
    async def reply(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(text)
        await writer.drain()

    return reply


async def list_once(url: str, **options: object) -> None:
    options.setdefault("retry", FAST)
    options.setdefault("timeout", 1.0)
    async with VBSClient(url, auth=TokenAuth(SECRET), **options) as client:  # type: ignore[arg-type]
        await client.list_sharings(PROJECT)


# -- transport faults -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (raw(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"shared": ['), TransportError),
        (raw(b'HTTP/1.0 200 OK\r\n\r\n{"shared": [tru'), VBSError),
        (raw(b"garbage\r\n\r\n"), TransportError),
        (raw(b"HTTP/1.1 999999999999 Huh\r\nContent-Length: 0\r\n\r\n"), VBSError),
        (raw(b""), TransportError),
        (
            raw(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 14\r\n\r\n"
                b'{"shared": []}'
            ),
            ResponseDecodeError,
        ),
    ],
    ids=[
        "reset-mid-body",
        "http10-close-delimited-cut",
        "garbage-status-line",
        "absurd-status",
        "closed-at-once",
        "gzip-header-plain-body",
    ],
)
async def test_broken_answers_are_typed_errors_naming_project_and_offset(reply, error):
    async with raw_server(reply) as url:
        with pytest.raises(error) as caught:
            await list_once(url)
    assert (caught.value.project_id, caught.value.offset) == (PROJECT, 0)
    assert SECRET not in repr(caught.value)


async def test_a_server_that_never_answers_times_out():
    async def silent(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up

    async with raw_server(silent) as url:
        with pytest.raises(TimeoutError):
            await list_once(url, timeout=0.2)


async def test_a_slow_drip_is_cut_off_by_the_request_timeout():
    async def drip(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(1000):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.01)

    async with raw_server(drip) as url:
        with pytest.raises(TimeoutError):
            await list_once(url, timeout=0.3)


# -- what the transport says of each failure: its type, whether the request left, the text --
#
# A failure before the request left (`request_sent=False`) lets the retry loop send even a
# POST again; after, a POST is never repeated. Each server makes aiohttp fail one real way.

SENT_LIST = Request("GET", "/v2/p/backups/share", project_id=PROJECT, offset=7)
WHERE = f"(project {PROJECT}, offset 7)"


async def send_once(url: str, request: Request = SENT_LIST, **options: Any) -> Response:
    """`request` sent once through a fresh `AiohttpTransport` (no retry) to `url`."""
    transport = AiohttpTransport(**{"timeout": 1.0, **options})
    try:
        return await transport.send(request, URL(url) / "x", {"X-Probe": "yes"})
    finally:
        await transport.close()


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (
            b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"shared": [',
            TransportError,
            "the answer's body was cut short",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
            TransportError,
            "the answer's body was cut short",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            TransportError,
            "the connection failed: ClientResponseError",
        ),
        (b"garbage\r\n\r\n", TransportError, "the connection failed: ClientResponseError"),
        (b"", TransportError, "the connection failed: ServerDisconnectedError"),
        (
            (
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 14\r\n\r\n"
                b'{"shared": []}'
            ),
            ResponseDecodeError,
            "the answer's body does not decode as its Content-Encoding says",
        ),
    ],
    ids=["reset-mid-body", "cut-mid-chunk", "bad-chunk-size", "garbage", "closed", "not-gzip"],
)
async def test_each_failure_after_sending_says_what_broke_and_that_the_request_left(
    answer, error, message
):
    async with raw_server(raw(answer)) as url:
        with pytest.raises(error) as caught:
            await send_once(url)
    assert type(caught.value) is error
    assert str(caught.value) == f"{message} {WHERE}"
    assert (caught.value.project_id, caught.value.offset) == (PROJECT, 7)
    if isinstance(caught.value, TransportError):
        assert caught.value.request_sent is True
        assert caught.value.retryable is True
    assert caught.value.__context__ is None  # no aiohttp error (holding headers) kept


async def test_a_refused_connection_is_unsent_retryable_and_names_host_and_port():
    port = closed_port()
    with pytest.raises(TransportError) as caught:
        await send_once(f"http://127.0.0.1:{port}")
    assert str(caught.value) == (
        f"could not connect to 127.0.0.1:{port}: Connect call failed ('127.0.0.1', {port}) " + WHERE
    )
    assert (caught.value.request_sent, caught.value.retryable) == (False, True)
    assert (caught.value.project_id, caught.value.offset) == (PROJECT, 7)
    assert caught.value.__context__ is None


class _ConnectTimesOut(aiohttp.TCPConnector):
    """A connector failing as aiohttp's does when its connect timeout fires."""

    async def connect(self, *_: object, **__: object) -> aiohttp.connector.Connection:
        raise aiohttp.ConnectionTimeoutError("Connection timeout to host")


async def test_a_connection_that_timed_out_opening_is_an_unsent_timeout():
    async with aiohttp.ClientSession(connector=_ConnectTimesOut()) as session:
        with pytest.raises(RequestTimeoutError) as caught:
            await send_once("http://127.0.0.1:9", session=session, timeout=0.25)
        assert not session.closed  # a borrowed session is left open
    assert str(caught.value) == f"could not connect within 0.25s {WHERE}"
    assert (caught.value.request_sent, caught.value.retryable) == (False, True)
    assert (caught.value.project_id, caught.value.offset) == (PROJECT, 7)


async def test_a_server_that_never_answers_is_a_sent_timeout():
    async def silent(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.read()

    async with raw_server(silent) as url:
        with pytest.raises(RequestTimeoutError) as caught:
            await send_once(url, timeout=0.1)
    assert str(caught.value) == f"no complete answer within 0.1s {WHERE}"
    assert (caught.value.request_sent, caught.value.retryable) == (True, True)
    assert (caught.value.project_id, caught.value.offset) == (PROJECT, 7)


async def test_an_unverified_certificate_is_unsent_and_not_retryable():
    async with Emulator(projects=1, tls=True) as emu:
        with pytest.raises(TransportError) as caught:
            await send_once(emu.url)
        assert (await send_once(emu.url, ssl=False)).status == 404  # TLS itself works
    assert str(caught.value) == f"TLS certificate of 127.0.0.1 could not be verified {WHERE}"
    assert (caught.value.request_sent, caught.value.retryable) == (False, False)
    assert (caught.value.project_id, caught.value.offset) == (PROJECT, 7)


async def test_the_answer_comes_back_whole_with_its_status_headers_and_body_not_redirected():
    async with EchoServer(302, {"Location": "http://127.0.0.1:9/elsewhere"}) as server:
        posted = Request("POST", "/v2/p/x", project_id=PROJECT, body=b'{"k": "v"}')
        answer = await send_once(server.url, posted)
    assert answer.status == 302  # not followed
    assert answer.headers["Location"] == "http://127.0.0.1:9/elsewhere"
    assert json.loads(answer.body)["error_msg"] == server.received[0]
    (received,) = server.received
    assert received.startswith("POST /x headers: ")
    assert "X-Probe: yes" in received
    assert "User-Agent: vbs-async" in received
    assert received.endswith('body: {"k": "v"}')


def _answer(framing: str, size: int) -> bytes:
    if framing == "content-length":
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (size, b"x" * size)
    chunk = b"%x\r\n%s\r\n" % (size, b"x" * size)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_of_exactly_max_body_size_is_read_one_byte_more_is_refused(framing):
    async with raw_server(raw(_answer(framing, 10))) as url:
        assert (await send_once(url, max_body_size=10)).body == b"x" * 10
    async with raw_server(raw(_answer(framing, 11))) as url:
        with pytest.raises(ResponseDecodeError) as caught:
            await send_once(url, max_body_size=10)
    assert str(caught.value) == f"the answer's body is larger than max_body_size (10 bytes) {WHERE}"
    assert (caught.value.project_id, caught.value.offset) == (PROJECT, 7)


async def test_a_declared_length_past_the_cap_is_refused_before_the_body_comes():
    async def headers_only(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
        await writer.drain()
        await asyncio.Event().wait()  # the body never comes

    async with raw_server(headers_only) as url:
        with pytest.raises(ResponseDecodeError, match=r"larger than max_body_size \(10 bytes\)"):
            await send_once(url, max_body_size=10, timeout=30)


async def test_the_cap_counts_every_chunk_not_the_largest():
    async def in_two(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nxxxxxxxx\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # two reads, most likely; one read is refused all the same
        writer.write(b"8\r\nyyyyyyyy\r\n0\r\n\r\n")
        await writer.drain()

    async with raw_server(in_two) as url:
        assert (await send_once(url, max_body_size=16)).body == b"xxxxxxxxyyyyyyyy"
        with pytest.raises(ResponseDecodeError, match="larger than max_body_size"):
            await send_once(url, max_body_size=15)


async def test_an_idempotent_request_whose_connection_closed_unanswered_is_not_resent_silently():
    """aiohttp would send a DELETE again on a new connection; the client's own retries decide."""
    received: list[bytes] = []

    async def keep_alive_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        received.append(b"first")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")  # the second request, on the same connection
            received.append(b"second")
        # closed without an answer

    deleting = Request("DELETE", "/v2/p/x", project_id=PROJECT, offset=7)
    async with raw_server(keep_alive_then_close) as url:
        transport = AiohttpTransport(timeout=5.0)
        try:
            assert (await transport.send(deleting, URL(url), {})).body == b"ok"
            with pytest.raises(TransportError) as caught:
                await transport.send(deleting, URL(url), {})
        finally:
            await transport.close()
    assert received == [b"first", b"second"]  # no third request: not sent again
    assert str(caught.value) == f"the connection failed: ServerDisconnectedError {WHERE}"
    assert caught.value.request_sent is True


async def test_the_transport_s_defaults_and_its_connection_cap():
    async with aiohttp.ClientSession(connector=_ConnectTimesOut()) as session:
        with pytest.raises(RequestTimeoutError, match=r"could not connect within 30\.0s"):
            await AiohttpTransport(session).send(SENT_LIST, URL("http://127.0.0.1:9"), {})
    declared = 64 * 1024 * 1024
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (declared + 1)
    async with raw_server(raw(head)) as url:
        with pytest.raises(ResponseDecodeError, match=rf"max_body_size \({declared} bytes\)"):
            await send_once(url)
    async with raw_server(raw(_answer("content-length", 2))) as url:
        for connections, limit in [({}, 100), ({"max_connections": 3}, 3)]:
            transport = AiohttpTransport(**connections)  # type: ignore[arg-type]
            await transport.send(SENT_LIST, URL(url), {})
            assert transport.session is not None
            assert transport.session.connector is not None
            assert transport.session.connector.limit == limit
            assert transport.unclosed
            await transport.close()
            assert not transport.unclosed


# -- bombs: memory bounded whatever a server sends ------------------------------------------

BOMB_PROGRAM = textwrap.dedent(
    """
    import asyncio, resource, sys, zlib
    from aiohttp import web
    from vbs_async import RetryPolicy, TokenAuth, VBSClient, VBSError

    INFLATED = 256 * 1024 * 1024

    def gzip_bomb(size):
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        block = b" " * (1024 * 1024)
        parts = [packer.compress(b'{"shared": [')]
        parts += [packer.compress(block) for _ in range(size // len(block))]
        return b"".join(parts) + packer.flush()

    async def main(chunked):
        body = gzip_bomb(INFLATED)  # a few hundred KiB on the wire
        async def bomb(request):
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            if chunked:
                answer = web.StreamResponse(headers=headers)
                answer.enable_chunked_encoding()
                await answer.prepare(request)
                for start in range(0, len(body), 65536):
                    await answer.write(body[start:start + 65536])
                return answer
            return web.Response(body=body, headers=headers)
        app = web.Application()
        app.router.add_get("/{tail:.*}", bomb)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        policy = RetryPolicy(attempts=1)
        async with VBSClient(url, auth=TokenAuth("t"), retry=policy) as client:
            try:
                await client.list_sharings("p1")
                outcome = "accepted"
            except VBSError as error:
                outcome = type(error).__name__
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
        await runner.cleanup()
        print(outcome, grown)

    asyncio.run(main(sys.argv[1] == "chunked"))
    """
)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_gzip_bomb_is_refused_at_the_body_cap_with_bounded_memory(framing):
    result = subprocess.run(
        [sys.executable, "-c", BOMB_PROGRAM, framing],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    outcome, grown_mib = result.stdout.split()
    assert outcome == "ResponseDecodeError"
    # The 256 MiB it inflates to never sits in memory: the cap (64 MiB) is counted
    # on the inflated bytes, chunk by chunk.
    assert int(grown_mib) < 160


async def test_an_oversized_page_is_refused_before_any_model_is_built():
    built = []
    item = {"id": "s", "backup_id": "b", "from_project_id": PROJECT, "to_project_id": "t"}

    def handler(_: SentRequest):
        return response(200, {"shared": [dict(item, id=f"s{i}") for i in range(5000)]})

    async with VBSClient(
        "https://vbs.example", auth=TokenAuth(SECRET), transport=MockTransport(handler)
    ) as client:
        import vbs_async._responses as responses  # noqa: PLC0415

        real = responses.structure_sharings
        responses.structure_sharings = lambda items: built.append(len(items)) or real(items)  # type: ignore[assignment]
        try:
            with pytest.raises(PaginationError, match="5000 items for limit 100"):
                await client.list_sharings(PROJECT)
        finally:
            responses.structure_sharings = real
    assert built == []


# -- headers and bodies meant to break parsing ----------------------------------------------


@pytest.mark.parametrize(
    "value", ["²", "٣", "1e3", "-5", "   ", "9" * 40, "Fri, 31 Dec 99999 23:59:59 GMT"]
)
def test_every_retry_after_form_parses_or_is_ignored(value):
    parsed = parse_retry_after(429, value)
    assert parsed is None or parsed >= 0


async def test_an_odd_retry_after_in_a_crawl_is_no_crash():
    answers = iter([response(503, {"error_msg": "busy"}, {"Retry-After": "²"})])

    def handler(_: SentRequest):
        return next(answers, None) or response(200, {"shared": []})

    async with VBSClient(
        "https://vbs.example", auth=TokenAuth(SECRET), retry=FAST, transport=MockTransport(handler)
    ) as client:
        results = [r async for r in client.crawl([PROJECT])]
    assert [r.ok for r in results] == [True]


async def test_an_unexpected_exception_in_one_project_is_that_projects_error(caplog):
    def handler(sent: SentRequest):
        if sent.request.project_id == "broken":
            raise RuntimeError(f"a bug, holding {SECRET}")
        return response(200, {"shared": []})

    async with VBSClient(
        "https://vbs.example", auth=TokenAuth(SECRET), transport=MockTransport(handler)
    ) as client:
        results = {r.project_id: r async for r in client.crawl([PROJECT, "broken", "other"])}
    assert results[PROJECT].ok
    assert results["other"].ok
    error = results["broken"].error
    assert isinstance(error, VBSError)
    assert str(error).startswith("unexpected RuntimeError: a bug, holding ***")
    assert [r.levelno for r in caplog.records if "broken" in r.getMessage()] == [logging.ERROR]


# -- secrets echoed back --------------------------------------------------------------------


async def test_a_server_echoing_the_request_headers_never_shows_the_token(caplog):
    caplog.set_level(logging.DEBUG)

    async def echo(request: web.Request) -> web.Response:
        text = " ".join(f"{k}={v}" for k, v in request.headers.items())
        return web.json_response(
            {"error_msg": f"bad request: {text}", "error_code": "X"}, status=503
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        with pytest.raises(ServerError) as caught:
            await list_once(url)
    finally:
        await runner.cleanup()
    assert "X-Auth-Token=***" in caught.value.message
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert SECRET not in text


async def test_iam_echoing_the_password_never_shows_it():
    password = "pw-HOSTILE-echoed-987"

    def handler(sent: SentRequest):
        body = (sent.request.body or b"").decode()
        return response(401, {"error": {"message": f"refused {body}", "code": "IAM.0001"}})

    auth = PasswordAuth("https://iam.example", "alice", password, "domain")
    async with VBSClient(
        "https://vbs.example", auth=auth, transport=MockTransport(handler)
    ) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.count_sharings(PROJECT)
    assert "***" in caught.value.message
    assert password not in str(caught.value)
    assert password not in repr(caught.value)


@pytest.mark.parametrize(
    "endpoint",
    [
        "htps://user:PASSWORD-x@host",
        "https://user:PASSWORD-x@host:bad",
        "https://host:443/?token=PASSWORD-x",
        "https://user:PASSWORD-x@host",
    ],
)
def test_a_careless_endpoint_is_refused_without_echoing_its_secret(endpoint):
    with pytest.raises(ValueError, match="endpoint") as caught:
        VBSClient(endpoint, auth=TokenAuth("t"))
    assert "PASSWORD-x" not in str(caught.value)
    assert caught.value.__context__ is None or "PASSWORD-x" not in str(caught.value.__context__)


# -- resources ---------------------------------------------------------------------------------


class Iam:
    """Issues tokens with the given lifetime (IAM's own timestamps); VBS counts nothing."""

    def __init__(self, expires_at: str) -> None:
        self.expires_at = expires_at
        self.issued = 0

    def __call__(self, sent: SentRequest):
        if sent.request.path != "/v3/auth/tokens":
            return response(200, {"count": 0})
        self.issued += 1
        token = {"issued_at": "2030-01-01T00:00:00Z", "expires_at": self.expires_at}
        return response(201, {"token": token}, {"X-Subject-Token": f"token-{self.issued}"})


async def test_the_token_cache_is_bounded_and_keeps_the_most_recent():
    iam = Iam(expires_at="2030-01-02T00:00:00Z")
    auth = PasswordAuth("https://iam.example", "alice", "pw-123456", "domain", max_tokens=8)
    async with VBSClient("https://vbs.example", auth=auth, transport=MockTransport(iam)) as client:
        for index in range(20):
            await client.count_sharings(f"project{index}")
        assert len(auth._tokens) == 8
        await client.count_sharings("project19")  # cached: the most recent stay
        assert iam.issued == 20
        await client.count_sharings("project0")  # evicted: asked again
        assert iam.issued == 21


async def test_a_token_issued_already_expired_is_kept_awhile_with_a_warning(caplog):
    iam = Iam(expires_at="2030-01-01T00:00:00Z")  # no lifetime at all
    auth = PasswordAuth("https://iam.example", "alice", "pw-123456", "domain")
    async with VBSClient("https://vbs.example", auth=auth, transport=MockTransport(iam)) as client:
        for _ in range(5):
            await client.count_sharings(PROJECT)
    assert iam.issued == 1
    assert [
        "IAM's clock" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    ] == [True]


async def test_a_repeated_delete_whose_first_answer_was_lost_succeeds():
    answers = [
        response(502, {"error_msg": "bad gateway"}),
        response(404, {"itemNotFound": {"message": "gone", "code": 404}}),
    ]

    def handler(_: SentRequest):
        return answers.pop(0)

    async with VBSClient(
        "https://vbs.example", auth=TokenAuth(SECRET), retry=FAST, transport=MockTransport(handler)
    ) as client:
        await client.cancel_sharing(PROJECT, "s1")  # no NotFoundError: it is gone, as asked
    assert answers == []


@pytest.mark.parametrize("bad_id", ["", "../../x"])
async def test_a_sharing_id_that_is_not_a_plain_id_fails_its_project(bad_id):
    # The client refuses such IDs as arguments; from the server they fail the
    # project with ResponseDecodeError naming project and offset (one rule).
    item = {"id": bad_id, "backup_id": "b", "from_project_id": PROJECT, "to_project_id": "t"}
    transport = MockTransport(lambda _: response(200, {"shared": [item]}))
    async with VBSClient("https://vbs.example", auth=TokenAuth(SECRET), transport=transport) as c:
        with pytest.raises(ResponseDecodeError) as caught:
            await c.list_sharings(PROJECT)
    assert (caught.value.project_id, caught.value.offset) == (PROJECT, 0)
    assert "not a plain ID" in str(caught.value)


async def test_a_redirect_is_never_followed_nor_sent_the_credentials():
    """A 302 to another place is the call's error: the place it names receives nothing."""
    landed: list[dict[str, str]] = []

    async def redirect(request: web.Request) -> web.Response:
        del request
        raise web.HTTPFound("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        landed.append(dict(request.headers))
        return web.json_response({"sharings": [], "count": 0})

    app = web.Application()
    app.router.add_get("/elsewhere", elsewhere)
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        with pytest.raises(VBSError) as caught:
            await list_once(url)
        assert caught.value.status == 302  # type: ignore[attr-defined]
        assert "redirect, which vbs_async never follows" in str(caught.value)
        assert landed == []
    finally:
        await runner.cleanup()
