"""A crawl with rate_limit=200: how close to the rate, and never over it in any second."""

from __future__ import annotations

import bisect
import time
from typing import TYPE_CHECKING

import aiohttp

from vbs_async import TokenAuth, VBSClient

from ._harness import TOKEN, Row, page_server
from .page_server import project_id

if TYPE_CHECKING:
    from types import SimpleNamespace

RATE, PROJECTS = 200, 800


async def run(runs: int) -> list[Row]:
    """Record every request start (aiohttp tracing) and check each one-second window."""
    del runs
    starts: list[float] = []

    async def on_start(_: object, __: SimpleNamespace, ___: object) -> None:
        starts.append(time.monotonic())

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(on_start)
    with page_server(PROJECTS, 5) as url:
        async with (
            aiohttp.ClientSession(trace_configs=[tracing]) as session,
            VBSClient(
                url, auth=TokenAuth(TOKEN), rate_limit=RATE, max_concurrency=64, session=session
            ) as client,
        ):
            results = [
                r
                async for r in client.crawl(
                    [project_id(i) for i in range(PROJECTS)], max_projects=64
                )
            ]
    assert all(r.ok for r in results)
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    busiest = max(bisect.bisect_left(starts, t + 1.0) - i for i, t in enumerate(starts))
    return [
        Row(
            f"rate_limit={RATE}: achieved rate, busiest 1 s window",
            f"{achieved:.1f}/s, {busiest} in 1 s",
            f"limit {RATE}/s",
            achieved / RATE,
            ">= 0.95, window <= 200",
            achieved / RATE >= 0.95 and busiest <= RATE,
        ),
    ]
