"""One project of 10,000 sharings at 20 ms latency: parallel pages against page by page."""

from __future__ import annotations

from typing import Any

from vbs_async import TokenAuth, VBSClient

from ._harness import TOKEN, Row, best_of, page_server
from .page_server import project_id

PER_PROJECT, LATENCY = 10_000, 0.02


async def run(runs: int) -> list[Row]:
    """Page by page (the default) against end_check="count" and prefetch=8."""
    with page_server(1, PER_PROJECT, latency=LATENCY) as url:
        async with VBSClient(url, auth=TokenAuth(TOKEN), max_concurrency=16) as client:

            def listing(**options: Any) -> Any:
                async def job() -> int:
                    return len(await client.list_sharings(project_id(0), **options))

                return job

            base_time, found = await best_of(runs, listing())
            settings = {"end_check='count'": {"end_check": "count"}, "prefetch=8": {"prefetch": 8}}
            timings = {}
            for label, options in settings.items():
                timings[label], other = await best_of(runs, listing(**options))
                assert other == found == PER_PROJECT
    best = min(timings, key=timings.__getitem__)
    ratio = base_time / timings[best]
    detail = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())
    return [
        Row(
            "big project 10k @20 ms: best setting vs page by page",
            f"{detail}",
            f"page by page {base_time * 1000:.0f} ms",
            ratio,
            ">= 5",
            ratio >= 5,
        ),
    ]
