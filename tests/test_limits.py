"""Concurrency and rate limits shared by the whole client, and slowing down on 429."""

from __future__ import annotations

import asyncio
import bisect
import math
import random

import pytest

from vbs_async import RequestTimeoutError, RetryBudget, RetryPolicy, TokenAuth, VBSClient
from vbs_async._limits import BETA, CUT_GRACE, SCALE, AdaptiveRate, RequestLimiter, StartRateLimiter
from vbs_async.testing import Emulator

from ._helpers import PATIENT_RETRY


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


async def test_rate_limit_holds_over_every_one_second_window(fake_time):
    """16 requests at once behind `rate_limit=40`, on a fake clock: no one-second window
    holds more than 40 starts, and the limit is used (60 starts take about 1.5 s)."""
    limiter = RequestLimiter(max_concurrency=16, rate_limit=40, clock=fake_time)
    starts: list[float] = []

    async def request() -> None:
        async with limiter.slot() as started:
            starts.append(started)
            await asyncio.sleep(0)  # others run meanwhile

    await asyncio.gather(*(request() for _ in range(60)))
    assert len(starts) == 60
    assert windows_exceeded(starts, 40) == []
    assert max(starts) - min(starts) == pytest.approx(59 / 40, rel=0.05)


async def test_a_crawl_with_a_rate_limit_sends_every_request_once(make_client):
    async with Emulator(projects=60, sharings_per_project=3) as emu:
        client = make_client(emu, rate_limit=40, max_concurrency=16)
        crawl = client.crawl(emu.project_ids, max_projects=16, end_check="short_page")
        results = [r async for r in crawl]
        assert all(r.ok for r in results)
        assert len(emu.requests) == 60
        assert sum(len(r.sharings) for r in results) == 180


# -- the rate learned from throttling, on a fake clock -----------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def succeed(rate: AdaptiveRate, clock: FakeClock, per_second: int, seconds: float) -> None:
    """`per_second` successful starts a second for `seconds`, on the fake clock."""
    for _ in range(int(per_second * seconds)):
        clock.now += 1 / per_second
        rate.succeeded(clock.now)


def test_no_pacing_until_the_first_throttling_answer():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    succeed(rate, clock, 200, 2)
    assert not rate.active
    assert rate.rate == math.inf


def test_a_429_cuts_to_beta_times_what_got_through_in_the_last_second_once_per_round():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    succeed(rate, clock, 50, 2)
    in_flight = clock.now - 0.01  # started before the cut
    rate.throttled(clock.now)
    assert rate.active
    assert rate.rate == pytest.approx(50 * BETA, rel=0.03)
    rate.throttled(in_flight)  # an answer to a request sent before the cut: no new cut
    assert rate.rate == pytest.approx(50 * BETA, rel=0.03)
    assert (rate.cuts, rate.throttled_answers) == (1, 2)


def test_429s_of_requests_sent_during_the_grace_after_a_cut_do_not_cut_again():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    succeed(rate, clock, 50, 2)
    rate.throttled(clock.now)
    cut_at = clock.now
    succeed(rate, clock, 35, CUT_GRACE * 0.8)
    rate.throttled(cut_at + CUT_GRACE * 0.5)  # sent while the bucket refills
    rate.throttled(clock.now)  # sent just inside the grace
    assert rate.cuts == 1
    succeed(rate, clock, 35, CUT_GRACE * 0.4)
    rate.throttled(cut_at + CUT_GRACE)  # sent when the grace ended: a new round
    assert rate.cuts == 2


def test_after_a_cut_the_rate_climbs_back_on_the_cubic_curve_then_probes_beyond():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    succeed(rate, clock, 50, 2)
    rate.throttled(clock.now)
    k = (50 * (1 - BETA) / SCALE) ** (1 / 3)
    succeed(rate, clock, 35, k / 2)
    assert 35 < rate.rate < 50  # on its way back
    succeed(rate, clock, 48, k / 2)
    assert rate.rate == pytest.approx(50, abs=1)  # at the old rate after K seconds
    succeed(rate, clock, 50, 2)
    assert rate.rate > 50  # then probing for more


def test_the_learned_rate_never_passes_rate_limit_nor_twice_what_is_measured():
    clock = FakeClock()
    capped = AdaptiveRate(max_rate=40, clock=clock)
    succeed(capped, clock, 40, 2)
    capped.throttled(clock.now)
    succeed(capped, clock, 40, 30)
    assert capped.rate == 40
    free = AdaptiveRate(clock=clock)
    succeed(free, clock, 10, 2)
    free.throttled(clock.now)
    succeed(free, clock, 10, 30)
    assert free.rate == pytest.approx(20, rel=0.1)


def test_a_429_with_nothing_through_in_the_last_second_gives_no_basis_for_a_rate():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    rate.throttled(clock.now)
    assert not rate.active
    assert rate.throttled_answers == 1


@pytest.fixture
def fake_time(monkeypatch):
    """A fake clock that `asyncio.sleep` advances instead of waiting."""
    clock = FakeClock()
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, result: object = None) -> object:
        clock.now += max(0.0, seconds)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return clock


async def test_the_pacer_spaces_starts_on_its_clock(fake_time):
    limiter = StartRateLimiter(20, clock=fake_time)
    began = fake_time.now
    starts = []
    for _ in range(61):
        await limiter.acquire()
        starts.append(fake_time.now - began)
    assert starts[:3] == pytest.approx([0, 0.05, 0.1])
    assert windows_exceeded(starts, 20) == []
    assert starts[-1] == pytest.approx(3.0, abs=0.05)


async def test_the_learned_rate_paces_requests_once_active(fake_time):
    limiter = RequestLimiter(max_concurrency=8, rate_limit=None, clock=fake_time)
    for _ in range(20):
        async with limiter.slot() as started:
            limiter.adaptive.succeeded(started)
    async with limiter.slot() as started:
        limiter.adaptive.throttled(started)
    assert limiter.adaptive.rate == pytest.approx(20 * BETA)
    began = fake_time.now
    for _ in range(14):
        async with limiter.slot():
            pass
    assert fake_time.now - began == pytest.approx(13 / 14, rel=0.05)


# -- the concurrency cap ------------------------------------------------------------------


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


async def test_waiters_cancelled_while_slots_are_granted_never_leak_a_slot():
    rng = random.Random(5)
    for _ in range(1000):
        limiter = RequestLimiter(max_concurrency=2, rate_limit=None)

        async def hold(limiter: RequestLimiter = limiter) -> None:
            async with limiter.slot():
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(hold()) for _ in range(6)]
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)
        for task in rng.sample(tasks, 3):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert limiter.in_flight == 0
        async with limiter.slot(), limiter.slot():
            assert limiter.in_flight == 2


# -- a crawl behind a gateway quota ----------------------------------------------------------


def realistic_sizes(projects: int, seed: int) -> list[int]:
    """A third empty, most under 40, a few with hundreds."""
    rng = random.Random(seed)
    sizes = []
    for index in range(projects):
        if index % 3 == 0:
            sizes.append(0)
        elif index % 50 == 1:
            sizes.append(rng.randrange(300, 600))
        else:
            sizes.append(rng.randrange(1, 40))
    return sizes


async def test_a_crawl_behind_a_50_per_second_quota_finishes_with_defaults():
    sizes = realistic_sizes(300, seed=1)
    async with Emulator(projects=300, sharings_per_project=0, quota=(50, 50)) as emu:
        for project_id, size in zip(emu.project_ids, sizes, strict=True):
            emu.add_sharings(project_id, size)
        budget = RetryBudget()
        async with VBSClient(emu.url, auth=TokenAuth(emu.token), retry_budget=budget) as client:
            results = [r async for r in client.crawl(emu.project_ids)]
        assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok][:3]
        crawled = [s.id for r in results for s in r.sharings]
        assert len(crawled) == len(set(crawled)) == sum(sizes)
        throttled = sum(r.stats.throttled for r in results)
        assert throttled == emu.quota.throttled  # type: ignore[union-attr]
        # How few 429s it takes depends on the machine's speed: benchmarks/gateway.py.
        assert sum(r.stats.retries for r in results) == 0  # no attempt spent on a 429
        assert budget.tokens == budget.capacity
        assert client.limiter.adaptive.active == (throttled > 0)


# -- the call's deadline is the server's time, not the client's own queue -------------------


async def test_a_healthy_server_never_times_out_a_call_queued_behind_rate_limit(make_client):
    # The row, scaled down: 16 projects listed at once through rate_limit,
    # so that the last requests queue for longer than the call's deadline.
    async with Emulator(projects=16, sharings_per_project=190, latency=0.003) as emu:
        client = make_client(emu, rate_limit=40, retry=RetryPolicy(timeout=0.5))
        results = [r async for r in client.crawl(emu.project_ids, end_check="count")]
        assert [str(r.error) for r in results if not r.ok] == []
        assert sum(len(r.sharings) for r in results) == 16 * 190
        assert emu.requests_received == 16 * 3  # a count and two pages each, at 40/s: 1.2 s


async def test_the_deadline_still_bounds_time_on_the_wire(make_client):
    async with Emulator(projects=1, sharings_per_project=1, latency=0.5) as emu:
        client = make_client(emu, rate_limit=40, retry=RetryPolicy(timeout=0.1))
        with pytest.raises(RequestTimeoutError, match=r"deadline of 0\.1s"):
            await client.count_sharings(emu.project_ids[0])
