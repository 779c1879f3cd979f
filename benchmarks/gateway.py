"""A crawl behind a gateway that throttles to a quota nobody told the client.

The realistic mix (300 projects: a third empty, most under 40 sharings, a few
with thousands; 50,000 sharings) behind a 50 requests/s quota with 40 ms
latency, crawled four ways against the same server: the library with its
defaults, the library told the quota (`rate_limit=50`), the `vbs-async
crawl` command with its defaults, and a hand-written aiohttp loop that
sleeps a second on each 429. For each: wall time, efficiency (the minimum
number of requests ÷ the quota ÷ wall time: 1.0 is a client that knew the
quota and the listing in advance), requests sent ÷ the minimum, and the
share of 429s.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

import aiohttp
import orjson

from vbs_async import TokenAuth, VBSClient

from ._harness import ROOT, Row

if TYPE_CHECKING:
    from collections.abc import Iterator

RATE, LATENCY = 50.0, 0.04


class Gateway:
    """The child server: its URL, project IDs and sizes, and its counters."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self._in: IO[str] = process.stdin
        self._out: IO[str] = process.stdout
        line = self._out.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the gateway server did not start: {line!r}")
        self.url = line.split()[-1]
        setup = orjson.loads(self._out.readline())
        self.ids: list[str] = setup["ids"]
        self.sizes: list[int] = setup["sizes"]
        self.token: str = setup["token"]
        self.minimum = sum(max(1, math.ceil(size / 100)) for size in self.sizes)

    def stats(self) -> dict[str, int]:
        """Requests and 429s since the last call."""
        self._in.write("stats\n")
        self._in.flush()
        return orjson.loads(self._out.readline())  # type: ignore[no-any-return]


@contextlib.contextmanager
def gateway() -> Iterator[Gateway]:
    command = [sys.executable, "-m", "benchmarks.gateway_server", "--rate", str(RATE),
               "--latency", str(LATENCY)]  # fmt: skip
    process = subprocess.Popen(  # noqa: S603
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield Gateway(process)
    finally:
        process.terminate()
        process.wait()


async def library(server: Gateway, **settings: object) -> int:
    async with VBSClient(server.url, auth=TokenAuth(server.token), **settings) as client:  # type: ignore[arg-type]
        results = [r async for r in client.crawl(server.ids)]
    assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok][:3]
    return sum(len(r.sharings) for r in results)


async def command(server: Gateway) -> int:
    with tempfile.TemporaryDirectory() as folder:
        projects = Path(folder, "projects.txt")
        projects.write_text("\n".join(server.ids) + "\n")
        output = Path(folder, "out.jsonl")
        environment = {**os.environ, "OS_AUTH_TOKEN": server.token}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vbs_async", "crawl", "--endpoint", server.url,
            "--projects-file", str(projects), "--output", str(output), "--progress-interval", "60",
            env=environment, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        status = await process.wait()
        assert status == 0, f"vbs-async crawl exited {status}"
        return output.read_bytes().count(b"\n")


async def naive(server: Gateway) -> int:
    """Sixteen projects at a time, offset += len(page), one second's sleep on a 429."""
    queue = list(server.ids)
    listed = 0

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal listed
        while queue:
            project = queue.pop()
            offset = 0
            while True:
                url = f"{server.url}/v2/{project}/os-vendor-backup-sharing/detail"
                async with http.get(url, params={"limit": 100, "offset": offset}) as answer:
                    body = await answer.read()
                    if answer.status == 429:
                        await asyncio.sleep(1)
                        continue
                page = orjson.loads(body)["shared"]
                listed += len(page)
                offset += len(page)
                if len(page) < 100:
                    break

    async with aiohttp.ClientSession(headers={"X-Auth-Token": server.token}) as http:
        await asyncio.gather(*(worker(http) for _ in range(16)))
    return listed


async def run(runs: int) -> list[Row]:
    """Each way once (they take 15 to 40 s each); `runs` is not used."""
    del runs
    rows = []
    with gateway() as server:
        ways = {
            "library defaults": lambda: library(server),
            "library, rate_limit=50": lambda: library(server, rate_limit=RATE),
            "vbs-async crawl defaults": lambda: command(server),
            "naive loop, 1 s sleep on 429": lambda: naive(server),
        }
        targets = {
            "library defaults": (0.85, 1.05, 0.05),
            "vbs-async crawl defaults": (0.80, 1.10, 1.0),
        }
        figures = {}
        for name, way in ways.items():
            await asyncio.sleep(1.5)  # let the quota's bucket fill again
            server.stats()
            began = time.perf_counter()
            listed = await way()
            wall = time.perf_counter() - began
            seen = server.stats()
            assert listed == sum(server.sizes), (name, listed, sum(server.sizes))
            efficiency = server.minimum / RATE / wall
            spent = seen["requests"] / server.minimum
            share = seen["throttled"] / seen["requests"]
            figures[name] = (wall, efficiency, spent, share)
            sys.stderr.write(
                f"  {name}: {wall:.1f} s, efficiency {efficiency:.2f}, "
                f"requests {spent:.3f}x the minimum ({server.minimum}), 429s {share:.1%}\n"
            )
        naive_wall = figures["naive loop, 1 s sleep on 429"][0]
        for name, (wall, efficiency, spent, share) in figures.items():
            low, high, most_429 = targets.get(name, (0.0, math.inf, 1.0))
            rows.append(
                Row(
                    f"gateway 50/s, 40 ms, 300 projects: {name}",
                    f"{wall:.1f} s, efficiency {efficiency:.2f}, "
                    f"{spent:.3f}x min requests, {share:.1%} 429s",
                    f"naive loop {naive_wall:.1f} s",
                    naive_wall / wall,
                    f"efficiency >= {low}, <= {high}x, 429s <= {most_429:.0%}"
                    if name in targets
                    else "-",
                    efficiency >= low and spent <= high and share <= most_429,
                )
            )
    return rows
