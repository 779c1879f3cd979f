"""Records/s of crawl() on loopback against hand-written crawlers, in one run."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from vbs_async import TokenAuth, VBSClient

from ._baselines import crawl_by_hand, crawl_sync
from ._harness import TOKEN, Row, best_of, page_server
from .page_server import project_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

PROJECTS, PER_PROJECT, CONCURRENCY, PAGE_SIZE = 300, 250, 16, 100


async def crawl_with_client(url: str, projects: list[str], concurrency: int) -> int:
    """The library: crawl() every project, count the sharings."""
    async with VBSClient(url, auth=TokenAuth(TOKEN), max_concurrency=concurrency) as client:
        found = 0
        async for result in client.crawl(projects, max_projects=concurrency, page_size=PAGE_SIZE):
            if result.error:
                raise result.error
            found += len(result.sharings)
        return found


def raw_at(url: str) -> Callable[[], Awaitable[int]]:
    """The raw baseline against `url`: aiohttp, orjson, dicts."""
    projects = [project_id(i) for i in range(PROJECTS)]

    async def raw() -> int:
        return await crawl_by_hand(
            url, projects, concurrency=CONCURRENCY, page_size=PAGE_SIZE, typed=False
        )

    return raw


async def run(runs: int) -> list[Row]:
    """Library vs raw (orjson, dicts) and hand-typed (json, models); vs sync at 20 ms."""
    projects = [project_id(i) for i in range(PROJECTS)]
    total = PROJECTS * PER_PROJECT
    with page_server(PROJECTS, PER_PROJECT) as url:
        await crawl_with_client(url, projects[:20], CONCURRENCY)  # warm up both sides

        raw = raw_at(url)

        async def hand() -> int:
            return await crawl_by_hand(
                url, projects, concurrency=CONCURRENCY, page_size=PAGE_SIZE, typed=True
            )

        async def library() -> int:
            return await crawl_with_client(url, projects, CONCURRENCY)

        raw_time, raw_found = await best_of(runs, raw)
        hand_time, hand_found = await best_of(runs, hand)
        lib_time, lib_found = await best_of(runs, library)
        assert raw_found == hand_found == lib_found == total
    rate, raw_rate, hand_rate = total / lib_time, total / raw_time, total / hand_time
    rows = [
        Row(
            "throughput vs raw aiohttp+orjson dicts",
            f"{rate:,.0f} rec/s",
            f"{raw_rate:,.0f} rec/s",
            rate / raw_rate,
            ">= 0.30",
            rate / raw_rate >= 0.3,
        ),
        Row(
            "throughput vs hand-typed aiohttp+json+models",
            f"{rate:,.0f} rec/s",
            f"{hand_rate:,.0f} rec/s",
            rate / hand_rate,
            ">= 1.00",
            rate / hand_rate >= 1.0,
        ),
    ]
    # Every field filled: five timestamps and all 17 backup fields, the decoder's worst case.
    with page_server(PROJECTS, PER_PROJECT, populated=True) as url:
        await crawl_with_client(url, projects[:20], CONCURRENCY)
        raw_time, raw_found = await best_of(runs, raw_at(url))
        lib_time, lib_found = await best_of(
            runs, lambda: crawl_with_client(url, projects, CONCURRENCY)
        )
        assert raw_found == lib_found == total
    full_rate, full_raw_rate = total / lib_time, total / raw_time
    rows.append(
        Row(
            "throughput vs raw, fully populated records",
            f"{full_rate:,.0f} rec/s",
            f"{full_raw_rate:,.0f} rec/s",
            full_rate / full_raw_rate,
            ">= 0.35",
            full_rate / full_raw_rate >= 0.35,
        )
    )
    # The sync loop pays every 20 ms round trip in turn; the client overlaps them.
    sync_projects = projects[:40]
    with page_server(PROJECTS, PER_PROJECT, latency=0.02) as url:
        sync_time, sync_found = await best_of(
            1, lambda: asyncio.to_thread(crawl_sync, url, sync_projects, page_size=PAGE_SIZE)
        )
        lib_time, lib_found = await best_of(runs, lambda: crawl_with_client(url, projects, 64))
    sync_rate, rate = sync_found / sync_time, lib_found / lib_time  # type: ignore[operator]
    rows.append(
        Row(
            "throughput at 20 ms latency vs sync requests loop",
            f"{rate:,.0f} rec/s",
            f"{sync_rate:,.0f} rec/s",
            rate / sync_rate,
            ">= 20",
            rate / sync_rate >= 20,
        )
    )
    return rows
