"""Concurrency and rate limits shared by the whole client, and slowing down on 429."""

from __future__ import annotations

import asyncio
import bisect

import pytest

from vbs_async._limits import RequestLimiter
from vbs_async.testing import Emulator, Fault

from .conftest import PATIENT_RETRY


async def test_requests_in_flight_never_exceed_max_concurrency(make_client):
    async with Emulator(projects=40, sharings_per_project=30, latency=0.01) as emu:
        client = make_client(emu, max_concurrency=5)
        results = [r async for r in client.crawl(emu.project_ids, max_projects=20, page_size=10)]
        assert all(r.ok for r in results)
        assert emu.peak_in_flight == 5  # reached, never passed
        assert client.limiter.peak_in_flight == 5


async def test_retries_take_slots_like_any_request(make_client):
    async with Emulator(
        projects=30,
        sharings_per_project=12,
        latency=0.005,
        fault_rate=0.3,
        fault_seed=4,
        retry_after=0,
    ) as emu:
        client = make_client(emu, max_concurrency=3, retry=PATIENT_RETRY)
        results = [r async for r in client.crawl(emu.project_ids, max_projects=30, page_size=5)]
        assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok]
        assert sum(r.stats.retries for r in results) > 0
        assert emu.peak_in_flight <= 3


def windows_exceeded(starts: list[float], rate: float) -> list[int]:
    """Counts of request starts in every one-second window that held more than `rate`."""
    starts = sorted(starts)
    counts = [bisect.bisect_left(starts, t + 1.0) - i for i, t in enumerate(starts)]
    return [c for c in counts if c > rate]


async def test_rate_limit_holds_over_every_one_second_window(make_client):
    async with Emulator(projects=60, sharings_per_project=3) as emu:
        client = make_client(emu, rate_limit=40, max_concurrency=16)
        crawl = client.crawl(emu.project_ids, max_projects=16, end_check="short_page")
        results = [r async for r in crawl]
        assert all(r.ok for r in results)
        starts = [r.started for r in emu.requests]
        assert len(starts) == 60
        assert windows_exceeded(starts, 40) == []
        # And the limit is used, not undershot: 60 starts need about 1.5 s at 40/s.
        assert max(starts) - min(starts) >= 59 / 40 * 0.9


async def test_429_halves_the_concurrency_cap_and_successes_restore_it():
    limiter = RequestLimiter(max_concurrency=16, rate_limit=None)
    async with limiter.slot() as round_a, limiter.slot() as round_b:
        limiter.throttled(round_a)
        limiter.throttled(round_b)  # same round: one cut, not two
    assert limiter.current_cap == 8
    async with limiter.slot() as round_c:
        limiter.throttled(round_c)
    assert limiter.current_cap == 4
    for _ in range(200):
        limiter.succeeded()
    assert limiter.current_cap == 16


async def test_a_lowered_cap_holds_back_new_requests():
    limiter = RequestLimiter(max_concurrency=4, rate_limit=None)
    async with limiter.slot() as started_round:
        limiter.throttled(started_round)
    assert limiter.current_cap == 2
    entered = asyncio.Event()
    async with limiter.slot(), limiter.slot():

        async def third() -> None:
            async with limiter.slot():
                entered.set()

        task = asyncio.create_task(third())
        await asyncio.sleep(0.01)
        assert not entered.is_set()
        assert limiter.in_flight == 2
    await task
    assert entered.is_set()


async def test_a_cancelled_waiter_gives_its_slot_back():
    limiter = RequestLimiter(max_concurrency=1, rate_limit=None)
    async with limiter.slot():
        waiter = asyncio.create_task(limiter.slot().__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert limiter.in_flight == 0
    async with limiter.slot():
        assert limiter.in_flight == 1


async def test_throttling_during_a_crawl_slows_the_client_down(make_client):
    async with Emulator(projects=20, sharings_per_project=5) as emu:
        client = make_client(emu, max_concurrency=16)
        emu.inject(Fault.answer(429, headers={"Retry-After": "0"}), times=3)
        results = [r async for r in client.crawl(emu.project_ids, max_projects=16)]
        assert all(r.ok for r in results)
        assert client.limiter.current_cap < 16
