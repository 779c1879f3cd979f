"""Helpers the test files share: written once here, imported everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web

from vbs_async import RetryPolicy
from vbs_async.testing import Emulator

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    import pytest

VBS_ASYNC = [sys.executable, "-m", "vbs_async"]
"""The command, run as a real process by the interpreter running the tests."""

VBS_ASYNC_INTERRUPTIBLE = [
    sys.executable,
    "-c",
    (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('vbs_async', run_name='__main__', alter_sys=True)"
    ),
]
"""The command with Ctrl-C's default handler, for tests that stop it with SIGINT.

A process started from a background job inherits SIGINT ignored (as `sh` does for
`cmd &`), and Python then never raises KeyboardInterrupt: the emulator would not stop
when the test runner itself was started that way.
"""


def stop_process(
    process: subprocess.Popen[Any], signum: int, timeout: float = 30
) -> tuple[Any, Any]:
    """Send `signum` and collect the process's output; killed (and the test failed) if it
    outlives `timeout`, so that no test leaves a process behind."""
    process.send_signal(signum)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"still running {timeout}s after signal {signum}: killed") from None


# Tiny waits: retries are exercised for real, but never sleep noticeably.
FAST_RETRY = RetryPolicy(attempts=4, wait_initial=0.001, wait_max=0.002, wait_jitter=0.0)
# One retry, no wait at all: for tests where a retry only repeats the same answer.
ONE_RETRY = RetryPolicy(attempts=2, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)
# For fault rates of 25-30 %: ten tries make a page failing them all a one-in-a-million event.
PATIENT_RETRY = RetryPolicy(attempts=10, wait_initial=0.001, wait_max=0.002, wait_jitter=0.0)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def served_in_thread(
    start: Callable[[], Awaitable[object]], stop: Callable[[], Awaitable[object]]
) -> Iterator[None]:
    """A server started by `start` on an event loop of its own in a thread, until the block ends.

    The command under test runs its own loop. `asyncio.Runner` closes this one: the
    handlers still running (a silent endpoint's, asleep) are cancelled and awaited first,
    where a loop closed straight after aiohttp's shutdown (which only asks them to stop)
    left them destroyed pending at the interpreter's exit ("Task was destroyed but it is
    pending!", 24 of them after a run with the silent endpoints' tests).
    """
    ready = threading.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    def serve() -> None:
        with asyncio.Runner() as runner:
            runner.run(start())
            loops.append(runner.get_loop())
            ready.set()
            runner.get_loop().run_forever()
            runner.run(stop())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield
    finally:
        loops[0].call_soon_threadsafe(loops[0].stop)
        thread.join(10)


@contextlib.contextmanager
def emulator_in_thread(**options: Any) -> Iterator[Emulator]:
    """An emulator serving from a thread of its own, so the command can run its own loop."""
    emulator = Emulator(**options)
    with served_in_thread(emulator.start, emulator.close):
        yield emulator


@contextlib.contextmanager
def command_emulator(monkeypatch: pytest.MonkeyPatch, **options: Any) -> Iterator[Emulator]:
    """`emulator_in_thread`, with the command pointed at it (`OS_AUTH_TOKEN`, `VBS_ENDPOINT`)."""
    with emulator_in_thread(**options) as emulator:
        monkeypatch.setenv("OS_AUTH_TOKEN", emulator.token)
        monkeypatch.setenv("VBS_ENDPOINT", emulator.url)
        yield emulator


def command_env(emulator: Emulator, **extra: str) -> dict[str, str]:
    """The environment of a command run against `emulator` (the test's isolated one)."""
    env = dict(os.environ)
    env.update(OS_AUTH_TOKEN=emulator.token, VBS_ENDPOINT=emulator.url, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def wait_for_lines(
    path: Path, count: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 30
) -> None:
    """Wait until `path` holds `count` lines; fail if `process` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        if process is not None and process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else b""
            raise AssertionError(f"the process ended before {path} had {count} lines: {stderr!r}")
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {count} lines")


def output_rows(path: Path, output_format: str) -> Counter[tuple[str, str]]:
    """The (project, sharing) of every row of a command's output: each must count once."""
    text = path.read_text()
    if output_format == "csv":
        records = list(csv.DictReader(io.StringIO(text)))
    else:
        records = [json.loads(line) for line in text.splitlines()]
    return Counter((r["project_id"], r["id"]) for r in records)


class Gate:
    """An emulator `drift` that holds every request for `held` projects until opened.

    The emulator's thread waits at the gate, so a process under test is stopped
    while its work is provably unfinished: a signal sent then cannot race the
    end of the run.
    """

    def __init__(self, held: list[str]) -> None:
        self.held = set(held)
        self.opened = threading.Event()
        self.reached = threading.Event()

    def _wait(self, project_id: str) -> None:
        if project_id in self.held and not self.opened.is_set():
            self.reached.set()
            self.opened.wait(60)

    def before_list(self, store: object, project_id: str, offset: int) -> None:
        del store, offset
        self._wait(project_id)

    def before_count(self, store: object, project_id: str) -> None:
        del store
        self._wait(project_id)


class EchoServer:
    """Answers every request with `status` and everything the request held, echoed."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.received: list[str] = []
        self.credentials: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def echo(self, request: web.Request, body: bytes) -> str:
        headers = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        return f"{request.method} {request.path_qs} headers: {headers} body: {body.decode()}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        text = self.echo(request, body)
        self.received.append(text)
        self.credentials.update(
            request.headers[name] for name in ("X-Auth-Token", "X-Security-Token")
            if name in request.headers
        )  # fmt: skip
        # The request id echoes whichever credential header came (a gateway's mistake).
        echoed_header = next(
            (
                request.headers[name]
                for name in ("X-Auth-Token", "X-Security-Token", "Authorization")
                if name in request.headers
            ),
            body.decode()[:200],
        )
        headers = {"X-Openstack-Request-Id": echoed_header, "X-Request-Id": echoed_header}
        headers.update(self.headers)
        if self.status == 200:  # an answer that is not JSON, holding it all
            return web.Response(status=200, text=f"<html>{text}</html>", headers=headers)
        payload = {"error_msg": text, "error_code": text[:400], "error": {"message": text}}
        return web.Response(
            status=self.status,
            body=json.dumps(payload).encode(),
            content_type="application/json",
            headers=headers,
        )

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def sharing_document(
    sharing_id: str, from_project_id: str, to_project_id: str = "t"
) -> dict[str, str]:
    """A sharing as the service lists it, with only the fields it must have."""
    return {
        "id": sharing_id,
        "backup_id": "b",
        "from_project_id": from_project_id,
        "to_project_id": to_project_id,
    }


class LoopClock:
    """The running loop's clock moved on by each `asyncio.sleep` instead of waiting for it.

    A client's limiter and its deadlines read the loop's clock: on this one an hour's
    pacing takes no time, and how long a call waited is `moved`, the same on any
    machine. `advance` moves it by hand (a timer due by then fires at the next turn).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.moved = 0.0
        loop = asyncio.get_running_loop()
        real_time, real_sleep = loop.time, asyncio.sleep

        async def sleep(seconds: float, result: object = None) -> object:
            self.moved += max(0.0, seconds)
            return await real_sleep(0, result)

        monkeypatch.setattr(loop, "time", lambda: real_time() + self.moved)
        monkeypatch.setattr(asyncio, "sleep", sleep)

    async def advance(self, seconds: float) -> None:
        """Move the clock on by `seconds`, then let every task ready run a few turns."""
        self.moved += seconds
        for _ in range(20):
            await asyncio.sleep(0)


class FakeClock:
    """A clock that moves only when a test moves it (`now`, from 1000.0): exact times."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def read_until_closed(controller: int) -> bytes:
    """Everything a pseudo-terminal's other end wrote, until it closed; then close ours."""
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    return seen
