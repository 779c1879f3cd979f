"""1,000 projects of one page each at 20 ms latency: crawl() against a raw gather."""

from __future__ import annotations

import math

from vbs_async import TokenAuth, VBSClient

from ._baselines import crawl_by_hand
from ._harness import TOKEN, Row, best_of, page_server
from .page_server import project_id

PROJECTS, PER_PROJECT, LATENCY, CONCURRENCY = 1000, 20, 0.02, 64


async def run(runs: int) -> list[Row]:
    """Time both against the ideal ceil(1000/64) x 20 ms."""
    projects = [project_id(i) for i in range(PROJECTS)]
    ideal = math.ceil(PROJECTS / CONCURRENCY) * LATENCY
    with page_server(PROJECTS, PER_PROJECT, latency=LATENCY) as url:

        async def raw() -> int:
            return await crawl_by_hand(
                url, projects, concurrency=CONCURRENCY, page_size=100, typed=False
            )

        async def library() -> int:
            # One request per project, as the raw gather sends: this row measures the
            # client's scheduling, not its end check. (With the default "auto", a
            # server that has never filled a page at limit=100 gets a second request
            # per project to confirm each short page: twice the time here.)
            async with VBSClient(url, auth=TokenAuth(TOKEN), max_concurrency=CONCURRENCY) as client:
                crawl = client.crawl(projects, max_projects=CONCURRENCY, end_check="short_page")
                return sum([len(r.sharings) async for r in crawl])

        await raw()  # warm up the server
        raw_time, raw_found = await best_of(runs, raw)
        lib_time, lib_found = await best_of(runs, library)
        assert raw_found == lib_found == PROJECTS * PER_PROJECT
    return [
        Row(
            f"fan-out 1000x1 page @20 ms, 64 at once (ideal {ideal * 1000:.0f} ms)",
            f"{lib_time * 1000:.0f} ms ({ideal / lib_time:.2f} of ideal)",
            f"raw gather {raw_time * 1000:.0f} ms ({ideal / raw_time:.2f} of ideal)",
            raw_time / lib_time,
            ">= 0.90",
            raw_time / lib_time >= 0.9,
        ),
    ]
