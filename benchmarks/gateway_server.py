"""The emulator behind a gateway quota, in a child process, for `benchmarks.gateway`.

Prints `listening on URL`, then answers each line `stats` on stdin with one
JSON line of what the gateway saw since the last one (requests, 429s,
`span`: seconds from the first request's arrival to the last one's, and
`refused_at`: each 429's arrival, on `time.perf_counter`, which on Linux is
the system's monotonic clock, the same in every process), and a
line `quota MODEL` (`parse_gateway`'s text) by putting a fresh model in place.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time

import orjson

from vbs_async.testing import Emulator, GatewayModel, parse_gateway


def realistic_sizes(projects: int, total: int, seed: int) -> list[int]:
    """A third empty, most under 40, a few with thousands: `total` sharings in all."""
    rng = random.Random(seed)
    empty = projects // 3
    big = max(1, projects // 30)
    small = [rng.randrange(1, 40) for _ in range(projects - empty - big)]
    left = total - sum(small)
    large = [left // big + (1 if i < left % big else 0) for i in range(big)]
    sizes = [0] * empty + small + large
    rng.shuffle(sizes)
    return sizes


class Arrivals:
    """When the gateway saw its first and its last request since the last reset."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.refused_at: list[float] = []

    def watch(self, model: GatewayModel) -> GatewayModel:
        admit = model.admit

        def timed(now: float | None = None) -> bool:
            self.last = time.perf_counter()
            if self.first is None:
                self.first = self.last
            admitted = admit(now)
            if not admitted:
                self.refused_at.append(self.last)
            return admitted

        model.admit = timed  # type: ignore[method-assign]
        return model

    def span(self) -> float:
        span = 0.0 if self.first is None else self.last - self.first
        self.first = None
        return span

    def refusals(self) -> list[float]:
        refused, self.refused_at = self.refused_at, []
        return refused


async def serve(arguments: argparse.Namespace) -> None:
    arrivals = Arrivals()
    quota: GatewayModel = arrivals.watch(parse_gateway(arguments.quota))
    async with Emulator(
        projects=arguments.projects, latency=arguments.latency, quota=quota, seed=1
    ) as emu:
        sizes = realistic_sizes(arguments.projects, arguments.total, seed=1)
        for project_id, size in zip(emu.project_ids, sizes, strict=True):
            emu.add_sharings(project_id, size)
        ids = orjson.dumps({"ids": emu.project_ids, "sizes": sizes, "token": emu.token})
        sys.stdout.write(f"listening on {emu.url}\n{ids.decode()}\n")
        sys.stdout.flush()
        loop = asyncio.get_running_loop()
        seen = (0, 0)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command, _, text = line.strip().partition(" ")
            if command == "stats":
                now = (quota.admitted + quota.throttled, quota.throttled)
                stats = {
                    "requests": now[0] - seen[0],
                    "throttled": now[1] - seen[1],
                    "span": arrivals.span(),
                    "refused_at": arrivals.refusals(),
                }
                seen = now
                sys.stdout.write(orjson.dumps(stats).decode() + "\n")
            elif command == "quota":
                quota = emu.quota = arrivals.watch(parse_gateway(text))
                arrivals.span()
                arrivals.refusals()
                seen = (0, 0)
                sys.stdout.write("ok\n")
            sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--projects", type=int, default=300)
    parser.add_argument("--total", type=int, default=50_000)
    parser.add_argument("--quota", default="50:50", help="a gateway model (parse_gateway)")
    parser.add_argument("--latency", type=float, default=0.04)
    asyncio.run(serve(parser.parse_args()))
