"""Red team: servers written to break the client, and careless inputs.

Each server here is a raw asyncio socket server (or an aiohttp one) that does
one hostile thing; each test asserts the typed error a user sees, that no
credential leaks, and (for the bombs) that memory stays bounded, measured in
a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from vbs_async import (
    AuthenticationError,
    PaginationError,
    PasswordAuth,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    TokenAuth,
    TransportError,
    VBSClient,
    VBSError,
)
from vbs_async._retry import parse_retry_after
from vbs_async.testing import MockTransport, SentRequest, response

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
