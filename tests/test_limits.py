"""Concurrency and rate limits shared by the whole client, and slowing down on 429."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import random

import pytest

from vbs_async import RequestTimeoutError, RetryBudget, RetryPolicy, TokenAuth, VBSClient
from vbs_async._adaptive import (
    APPROACH,
    BETA,
    BLACKOUT_TRICKLE,
    CUT_GRACE,
    FIRST_LOOK,
    HOLD,
    NOISE_HALF_LIFE,
    AdaptiveRate,
    Ticket,
)
from vbs_async._announced import QUIET, QUOTA_MARGIN, AnnouncedQuota, Quota
from vbs_async._limits import RequestLimiter, _Gate
from vbs_async._pacing import StartRateLimiter, _Turns
from vbs_async.testing import Emulator

from ._helpers import PATIENT_RETRY, FakeClock, LoopClock


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
        async with limiter.slot() as ticket:
            starts.append(ticket.started)
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


def answer(rate: AdaptiveRate, clock: FakeClock, per_second: int, seconds: float, ok=True):
    """`per_second` answers a second for `seconds`, each 40 ms after its start."""
    for _ in range(int(per_second * seconds)):
        clock.now += 1 / per_second
        ticket = Ticket(clock.now - 0.04, 1)
        (rate.succeeded if ok else rate.throttled)(ticket)


def test_no_pacing_until_the_first_throttling_answer():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    answer(rate, clock, 200, 2)
    assert not rate.active
    assert rate.rate == math.inf


def test_a_429_with_nothing_through_yet_gives_no_basis_for_a_rate():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    answer(rate, clock, 50, 1, ok=False)
    assert not rate.active
    assert rate.throttled_answers == 50


def test_the_first_cut_waits_for_a_round_of_answers_and_paces_under_what_got_through():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    answer(rate, clock, 50, 2)
    rate.throttled(Ticket(clock.now - 0.04, 1))
    assert not rate.active  # one refusal among a hundred answers says little yet
    for _ in range(20):  # then a sixth of the answers refused
        answer(rate, clock, 50, 0.1)
        rate.throttled(Ticket(clock.now - 0.04, 1))
        if rate.active:
            break
    assert rate.active
    assert rate.estimate == pytest.approx(50, rel=0.1)
    assert rate.rate < rate.estimate


def test_refusals_of_requests_sent_in_the_grace_after_a_cut_do_not_cut_again():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    answer(rate, clock, 50, 2)
    while not rate.active:  # refused until the first cut
        answer(rate, clock, 50, 0.1)
        rate.throttled(Ticket(clock.now - 0.04, 1))
    cut_at = clock.now
    while clock.now < cut_at + CUT_GRACE * 0.9:  # a refused third, all sent in the grace
        answer(rate, clock, 30, 0.05)
        for _ in range(2):
            rate.throttled(Ticket(max(cut_at, clock.now - 0.04), 1))
    assert rate.cuts == 1
    for _ in range(20):  # the same after the grace: a new round, a new cut
        answer(rate, clock, 30, 0.05)
        for _ in range(2):
            rate.throttled(Ticket(clock.now - 0.04, 1))
    assert rate.cuts > 1


def test_refusals_that_do_not_follow_the_rate_are_taken_for_noise():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    for _ in range(30):  # a fifth of the answers refused, whatever the rate
        answer(rate, clock, 200, 0.04)
        answer(rate, clock, 50, 0.04, ok=False)
    assert rate.reverted == 1
    assert not rate.active  # the cut was taken back: no quota to pace under
    noise = rate.noise()
    assert noise > 0.1
    clock.now += NOISE_HALF_LIFE  # taken for noise less and less, as time goes by
    assert rate.noise() == pytest.approx(noise / 2)


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
        async with limiter.slot() as ticket:
            fake_time.now += 0.05
            limiter.adaptive.succeeded(ticket)
    for _ in range(5):
        async with limiter.slot() as ticket:
            fake_time.now += 0.05
            limiter.adaptive.throttled(ticket)
    assert limiter.adaptive.active
    pace = limiter.adaptive.rate
    began = fake_time.now
    for _ in range(5):
        async with limiter.slot():
            pass
    assert fake_time.now - began >= 4 / pace * 0.9


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
        # The emulator's gateway announces its quota, as Open Telekom Cloud's does.
        assert [str(quota) for _, quota in client.limiter.quotas] == (
            ["50 per 1 s"] if throttled else []
        )


# -- the call's deadline is the server's time, not the client's own queue -------------------


async def test_a_healthy_server_never_times_out_a_call_queued_behind_rate_limit(
    make_client, monkeypatch
):
    # One request per 100 s: the second call queues for 100 s, twenty times its deadline.
    # The loop's clock is moved on instead of waited for, so the answer does not depend
    # on the machine's speed; were queue time counted, the deadline would fire first.
    loop = asyncio.get_running_loop()
    real_time, moved = loop.time, [0.0]
    monkeypatch.setattr(loop, "time", lambda: real_time() + moved[0])
    async with Emulator(projects=1, sharings_per_project=3) as emu:
        client = make_client(emu, rate_limit=0.01, retry=RetryPolicy(timeout=5.0))
        project = emu.project_ids[0]
        assert await client.count_sharings(project) == 3
        queued = asyncio.create_task(client.count_sharings(project))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not queued.done()
        assert emu.requests_received == 1  # the second call waits in the client's queue
        moved[0] += 101.0  # its turn has come, 101 s after it asked
        assert await queued == 3
        assert emu.requests_received == 2


async def test_the_deadline_still_bounds_time_on_the_wire(make_client):
    async with Emulator(projects=1, sharings_per_project=1, latency=0.5) as emu:
        client = make_client(emu, rate_limit=40, retry=RetryPolicy(timeout=0.1))
        with pytest.raises(RequestTimeoutError, match=r"deadline of 0\.1s"):
            await client.count_sharings(emu.project_ids[0])


async def test_a_listing_under_way_is_paced_before_work_not_begun():
    # Before: first come, first served, so a large project begun late became a
    # tail of single pages, one queue's wait apart, after everything else.
    turns = _Turns()
    order: list[str] = []

    async def take(name: str, *, urgent: bool) -> None:
        async with turns.hold(urgent=urgent):
            order.append(name)

    async with turns.hold():
        tasks = [
            asyncio.create_task(take("project 2, page 1", urgent=False)),
            asyncio.create_task(take("project 1, page 7", urgent=True)),
            asyncio.create_task(take("project 3, page 1", urgent=False)),
            asyncio.create_task(take("project 1 again after a 429", urgent=True)),
        ]
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [
        "project 1, page 7",
        "project 1 again after a 429",
        "project 2, page 1",
        "project 3, page 1",
    ]


async def test_a_waiter_cancelled_in_the_queue_does_not_keep_the_turn():
    turns = _Turns()
    order: list[str] = []

    async def take(name: str) -> None:
        async with turns.hold():
            order.append(name)

    async with turns.hold():
        gone = asyncio.create_task(take("cancelled"))
        kept = asyncio.create_task(take("kept"))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
    await kept
    assert order == ["kept"]
    async with turns.hold():
        order.append("after")
    assert order == ["kept", "after"]


@pytest.fixture
def late_timers(fake_time, monkeypatch):
    """The fake clock, with every sleep waking 2 ms late (a loaded machine's timers)."""
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, result: object = None) -> object:
        fake_time.now += 0.002 if seconds > 0 else 0.0
        return await real_sleep(seconds, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return fake_time


async def test_timers_that_wake_late_do_not_slow_a_rate_limit(late_timers):
    # Before: each start's lateness pushed every later start back: 100 starts at
    # 50/s took 2.18 s (a tenth of the rate lost) with timers 2 ms late.
    limiter = StartRateLimiter(50, clock=late_timers)
    starts = []
    for _ in range(101):
        await limiter.acquire()
        starts.append(late_timers.now)
    assert windows_exceeded(starts, 50) == []
    assert starts[-1] - starts[0] <= 2.0 * 1.02 + 0.002


async def test_timers_that_wake_late_do_not_slow_an_announced_quota(late_timers):
    quota = AnnouncedQuota(Quota(50, 1.0), clock=late_timers, wall_offset=0.0)
    late_timers.now = 1.0  # the first window opens on the calendar second
    starts = [await quota.acquire() for _ in range(101)]
    assert windows_exceeded(starts, 50) == []
    assert starts[-1] - starts[0] <= 2.0 / (1 - QUOTA_MARGIN) * 1.02 + 0.002


async def test_paced_requests_start_in_the_order_they_asked_none_overtaken(fake_time):
    """Ten requests wait for the pace at once: they start in turn, 1/rate apart.

    A request overtaken by later ones could wait past its deadline while the
    pace is kept: the pacer serves its waiters first come, first served.
    """
    limiter = StartRateLimiter(20, clock=fake_time)
    order: list[int] = []
    starts: list[float] = []

    async def request(index: int) -> None:
        await limiter.acquire()
        order.append(index)
        starts.append(fake_time.now)

    await asyncio.gather(*(request(i) for i in range(10)))
    assert order == list(range(10))
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) == pytest.approx(0.05)


async def test_an_announced_minute_quota_is_spent_in_a_burst_kept_under_its_limit(fake_time):
    # 100 a minute announced: the first window's burst is the 100 the gateway counts to,
    # never more (a margin of 2 %, 98 a minute, left a crawl's last requests a window more
    # to wait: 160 s for 900 pages at 300 a minute, not 99 to 115).
    # The gateway's minute rolls over half a second from now (well within the quiet gap).
    quota = AnnouncedQuota(Quota(100, 60.0), clock=fake_time, wall_offset=59.5 - fake_time.now)
    starts = [await quota.acquire() for _ in range(101)]
    burst = [s for s in starts if s == starts[0]]
    assert len(burst) == 100
    assert starts[len(burst)] > starts[0]


async def test_after_a_refused_probe_the_quota_is_kept_twice_as_long_before_probing_again(
    fake_time,
):
    quota = AnnouncedQuota(Quota(10, 1.0), clock=fake_time, wall_offset=0.0)
    paced = quota.rate()
    assert paced == pytest.approx(10 * (1 - QUOTA_MARGIN))
    fake_time.now += QUIET + 1.0  # quiet long enough: the limit is probed above
    assert quota.rate() > paced
    quota.throttled()  # the probe was refused
    assert quota.rate() == paced
    fake_time.now += 2 * QUIET - 0.5  # past the first quiet gap, within twice it
    assert quota.rate() == paced
    fake_time.now += 1.0  # twice the gap has passed: probe again
    assert quota.rate() > paced
    quota.throttled()  # refused again: four times the gap now
    fake_time.now += 4 * QUIET - 0.5
    assert quota.rate() == paced


async def test_requests_waiting_under_an_announced_quota_follow_a_lower_one_at_once(fake_time):
    # Found by the benchmark (50/s dropping to 10/s): the 16 requests already queued
    # under 50/s kept leaving at 50/s for 0.3 s after 10/s was announced, all refused.
    limiter = RequestLimiter(max_concurrency=32, rate_limit=None, clock=fake_time, wall_offset=0.0)
    limiter.announced("gw", "api", Quota(50, 1.0))
    starts: list[float] = []

    async def request() -> None:
        async with limiter.slot("gw", "api"):
            starts.append(fake_time.now)

    waiting = [asyncio.create_task(request()) for _ in range(16)]
    await asyncio.sleep(0)  # all queued under 50/s; the first has left
    limiter.announced("gw", "api", Quota(10, 1.0), started=fake_time.now)
    lowered = fake_time.now
    await asyncio.gather(*waiting)
    assert sum(1 for at in starts if lowered < at <= lowered + 1) <= 10


def test_refused_again_as_the_window_rolled_over_an_announced_quota_waits_half_a_window():
    # A penalty box refuses for 2 s whatever the calendar: before, each refusal
    # waited for the next calendar second (up to a second lost at the box's end);
    # a quarter of a second apart, each cost a 429 (1.8 % of a crawl's requests).
    clock = FakeClock()
    clock.now = 0.3
    quota = AnnouncedQuota(Quota(50, 1.0), clock=clock, wall_offset=0.0)
    assert quota.due() <= clock.now  # paced from the first refusal on, not blocked
    clock.now = 0.32
    quota.throttled(started=0.31)  # a request paced under it: too early for a bucket?
    pause = quota.due()
    assert 0.32 < pause < 0.4  # two intervals of the pace (a bucket has a token again)
    clock.now = pause + 0.01
    quota.throttled(started=pause)  # the first after the pause refused: the window was spent
    assert quota.due() == pytest.approx(1.0)  # until the calendar second rolls over
    clock.now = 1.002
    quota.throttled(started=1.0)  # refused again as it rolled over
    assert quota.due() == pytest.approx(1.502)


# -- the learned window of requests in flight (`_Gate`) -------------------------------------


async def turns(count: int = 10) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_the_learned_window_admits_that_many_in_flight_and_the_next_at_a_release():
    gate, window = _Gate(), 2.0
    await gate.acquire(lambda: window)
    await gate.acquire(lambda: window)
    third = asyncio.create_task(gate.acquire(lambda: window))
    await turns()
    assert not third.done()
    assert gate.held == 2
    gate.release()
    await turns()
    assert third.done()
    assert gate.held == 2
    gate.release()
    gate.release()
    assert gate.held == 0


@pytest.mark.parametrize("turns_before", [0, 1])
async def test_a_wait_for_the_learned_window_cancelled_as_it_is_woken_is_cancelled(turns_before):
    # Ctrl-C as a slot is handed on: `asyncio.wait_for` (Python 3.11) lost the
    # cancellation that came in the tick its future completed, and the cancelled call
    # went on, holding the slot (cpython#86296). The call is cancelled; the slot passes on.
    gate = _Gate()
    await gate.acquire(lambda: 1)
    waiting = asyncio.create_task(gate.acquire(lambda: 1))
    await turns()
    gate.release()
    await turns(turns_before)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate.held == 0
    await asyncio.wait_for(gate.acquire(lambda: 1), timeout=1)  # the slot is free


async def test_a_window_that_grows_admits_a_waiter_within_a_second_without_a_release(
    monkeypatch,
):
    clock = LoopClock(monkeypatch)
    gate, window = _Gate(), [1.0]
    await gate.acquire(lambda: window[0])
    waiting = asyncio.create_task(gate.acquire(lambda: window[0]))
    await turns()
    window[0] = 2.0  # the window grew back by one: nothing was released
    await clock.advance(0.9)
    assert not waiting.done()
    await clock.advance(0.2)
    assert waiting.done()
    assert gate.held == 2


# -- what each limiter does with a start: its order, its timeline, its counts ---------------


def learned_rate(
    clock: FakeClock, *, in_flight: int = 1, refused_in_flight: int = 1
) -> AdaptiveRate:
    """A rate learned from a 50/s quota: paced since its first cut."""
    rate = AdaptiveRate(clock=clock)
    return learn(rate, clock, in_flight=in_flight, refused_in_flight=refused_in_flight)


def learn(
    rate: AdaptiveRate, clock: FakeClock, *, in_flight: int = 1, refused_in_flight: int = 1
) -> AdaptiveRate:
    for _ in range(100):
        clock.now += 0.02
        rate.succeeded(Ticket(clock.now - 0.04, in_flight))
    while not rate.active:
        for _ in range(5):
            clock.now += 0.02
            rate.succeeded(Ticket(clock.now - 0.04, in_flight))
        rate.throttled(Ticket(clock.now - 0.04, refused_in_flight))
    return rate


@pytest.mark.parametrize("pace", ["rate_limit", "announced", "learned", "slot"])
async def test_an_urgent_start_goes_before_the_starts_queued_before_it(fake_time, pace):
    limiter = RequestLimiter(8, None, clock=fake_time, wall_offset=0.0)
    limiter.announced("gw", "api", Quota(10, 1.0))
    announced = AnnouncedQuota(Quota(10, 1.0), fake_time, wall_offset=0.0)
    fixed = StartRateLimiter(10, clock=fake_time)
    learned = learned_rate(fake_time) if pace == "learned" else None

    async def acquire(*, urgent: bool | None = None) -> None:
        """A start, as a caller asks it: `urgent` said only when it is."""
        kwargs = {} if urgent is None else {"urgent": urgent}
        if pace == "rate_limit":
            await fixed.acquire(**kwargs)
        elif pace == "announced":
            await announced.acquire(**kwargs)
        elif pace == "learned":
            assert learned is not None
            await learned.acquire(**kwargs)
        else:
            async with limiter.slot("gw", "api", **kwargs):
                pass

    order: list[str] = []

    async def start(name: str, *, urgent: bool | None = None) -> None:
        await acquire(urgent=urgent)
        order.append(name)

    await acquire()  # the pace's first start leaves at once: the next ones wait
    await asyncio.gather(start("first"), start("second"), start("urgent", urgent=True))
    assert order == ["first", "urgent", "second"]


async def test_a_start_a_whole_interval_late_restarts_the_timeline_from_it(fake_time):
    limiter = StartRateLimiter(4, clock=fake_time)
    fake_time.now = 1024.0
    await limiter.acquire()
    fake_time.now = 1024.375  # half an interval late: the next keeps the timeline
    await limiter.acquire()
    await limiter.acquire()
    assert fake_time.now == 1024.5
    fake_time.now = 1025.0  # a whole interval late (a stall): never two at once after it
    await limiter.acquire()
    await limiter.acquire()
    assert fake_time.now == 1025.25


@pytest.mark.parametrize("rate", [0.5, 1.9, 2.5, 10.5, 199.5])
async def test_a_fractional_rate_limit_is_reached_and_never_exceeded(fake_time, rate):
    # 1.9 a second ran at 1, 10.5 at 10: the log held the whole part's starts a second.
    limiter = StartRateLimiter(rate, clock=fake_time)
    began = fake_time.now
    starts = []
    for _ in range(math.ceil(20 * rate)):
        await limiter.acquire()
        starts.append(fake_time.now - began)
    assert len(starts) / (starts[-1] + 1 / rate) >= 0.98 * rate
    window = math.ceil(rate) / rate
    assert all(
        later - earlier >= window
        for earlier, later in zip(starts, starts[math.ceil(rate) :], strict=False)
    )


async def test_a_rate_limit_of_one_a_second_never_lets_two_starts_into_one_second(fake_time):
    limiter = StartRateLimiter(1, clock=fake_time)
    starts = []
    for _ in range(3):
        await limiter.acquire()
        starts.append(fake_time.now)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert gaps == pytest.approx([1.01, 1.01], abs=1e-9)


async def test_the_limiter_reports_its_settings_and_counts_requests_from_zero(fake_time):
    limiter = RequestLimiter(max_concurrency=3, rate_limit=20.0, clock=fake_time)
    assert (limiter.max_concurrency, limiter.rate_limit) == (3, 20.0)
    assert (limiter.in_flight, limiter.peak_in_flight, limiter.started) == (0, 0, 0)

    async def request() -> None:
        async with limiter.slot():
            await asyncio.sleep(0.5)

    await asyncio.gather(*(request() for _ in range(5)))
    assert (limiter.in_flight, limiter.peak_in_flight, limiter.started) == (0, 3, 5)


def test_the_rate_learned_never_exceeds_the_rate_limit():
    clock = FakeClock()
    limiter = RequestLimiter(8, 20.0, clock=clock)
    learn(limiter.adaptive, clock)  # a 50/s quota: 20/s is under it
    assert limiter.adaptive.estimate == 20.0
    clock.now += 60.0  # long past the probe's start
    assert limiter.adaptive.rate == 20.0


def test_a_learned_window_in_flight_grows_back_by_one_a_second_to_no_window_at_the_cap():
    clock = FakeClock()
    limiter = RequestLimiter(8, None, clock=clock)
    # Four in flight got through, eight in flight were refused: a cap of four in flight.
    learn(limiter.adaptive, clock, in_flight=4, refused_in_flight=8)
    assert limiter.adaptive.window == 4
    clock.now += 3.5
    assert limiter.adaptive.window == 7
    clock.now += 1.0
    assert limiter.adaptive.window == math.inf  # `max_concurrency` caps it alone again
    clock.now += 10.0
    assert limiter.adaptive.window == math.inf


def test_the_measured_rate_counts_successes_of_the_last_two_seconds_over_a_second_at_least():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    for k in range(8):  # 8 successes in the first half second
        clock.now = 1024.0 + k / 16
        rate.succeeded(Ticket(clock.now - 1 / 32, 1))
    assert rate.measured_rate() == 8.0  # over a second, not the half second they took
    rate.refused_under_quota(Ticket(clock.now, 1))
    rate.refused_under_quota(Ticket(clock.now, 1))
    assert rate.throttled_answers == 2
    assert rate.measured_rate() == 8.0  # refusals are not successes
    clock.now = 1026.0  # the first success is two seconds old: out
    assert rate.measured_rate() == 3.5
    clock.now = 1027.0
    assert rate.measured_rate() == 0.0


def test_refusals_under_an_announced_quota_count_among_those_the_learned_rate_judges():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    answer(rate, clock, 50, 2)
    for _ in range(10):  # a sixth refused naming the quota: no cut for those
        clock.now += 0.01
        rate.refused_under_quota(Ticket(clock.now - 0.04, 1))
    assert not rate.active
    rate.throttled(Ticket(clock.now - 0.04, 1))  # one refusal that names none
    answer(rate, clock, 50, 0.1)  # the first look, a round later: a sixth refused
    assert rate.active


@pytest.mark.parametrize(
    ("before", "refusals", "quiet", "blackout"),
    [(3, 4, 0.5, False), (0, 5, 0.125, True), (0, 5, 0.0625, False)],
    ids=["4-after-a-success", "5-then-a-tenth-second", "5-within-a-tenth-second"],
)
def test_five_refusals_in_a_row_and_a_tenth_second_without_a_success_slow_to_a_trickle(
    before, refusals, quiet, blackout
):
    clock = FakeClock()
    rate = learned_rate(clock)
    clock.now = 2048.0  # long after the cut: probing far above it
    for _ in range(before):
        rate.refused_under_quota(Ticket(clock.now, 1))
    rate.succeeded(Ticket(clock.now - 0.03125, 1))
    for _ in range(refusals):
        rate.refused_under_quota(Ticket(clock.now, 1))
    clock.now += quiet
    assert (rate.rate < 2 * BLACKOUT_TRICKLE) is blackout


def test_a_cut_paces_at_0_9_of_the_estimate_and_climbs_to_0_95_of_it_in_half_a_second():
    clock = FakeClock()
    rate = learned_rate(clock)  # cut a few answers ago
    estimate = rate.estimate
    first = rate.rate
    assert BETA * estimate <= first < HOLD * estimate
    clock.now += 0.1
    climbed = (HOLD - BETA) * estimate * 0.1 / APPROACH
    assert rate.rate - first == pytest.approx(climbed)
    clock.now += APPROACH
    assert rate.rate == pytest.approx(HOLD * estimate)


@pytest.mark.parametrize(
    ("idle", "look"), [(0.0, 0.06), (2.0, 0.05)], ids=["a-round-and-a-half", "no-round-to-wait"]
)
def test_the_first_cut_comes_a_round_and_a_half_of_answers_after_the_first_refusal(idle, look):
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    answer(rate, clock, 50, 2)  # each answered 40 ms after it left
    clock.now += idle  # none answered in the last second: no round to wait for
    first = clock.now
    while clock.now < first + look + 0.004:  # refused from then on, answered every 5 ms
        assert not rate.active
        rate.throttled(Ticket(clock.now - 0.04, 1))
        clock.now += 0.005
    assert rate.active


def test_a_tenth_of_the_answers_refused_is_not_yet_a_reason_to_cut():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)

    def answers(outcomes: str) -> None:  # "+" got through, "-" refused
        for outcome in outcomes:
            ok = outcome == "+"
            clock.now += 0.01
            (rate.succeeded if ok else rate.throttled)(Ticket(clock.now - 0.004, 1))

    answers("+" * 44 + "-" * 5)
    clock.now += FIRST_LOOK
    answers("+")  # the first look, a round after the first refusal: 5 of 50
    assert not rate.active
    answers("-")
    clock.now += FIRST_LOOK
    answers("+")  # 6 of 52
    assert rate.active


@pytest.mark.parametrize(("above", "cut"), [(0.0, False), (0.5, True)], ids=["twice", "2.5-times"])
def test_after_refusals_taken_for_noise_a_first_look_cuts_only_above_twice_the_noise(above, cut):
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    for _ in range(30):  # a fifth of the answers refused, whatever the rate: noise
        answer(rate, clock, 200, 0.04)
        answer(rate, clock, 50, 0.04, ok=False)
    assert rate.reverted == 1
    assert not rate.active
    start = clock.now + 2.0  # the noise's second is over
    look = start + 1.0
    clock.now = look
    noise = rate.noise()  # as the look will see it (it decays slowly)
    share = (2 + above) * noise + (0.01 if above else 0.0)
    judged = 201
    refused = math.ceil(share * judged) if cut else math.floor(share * judged)
    clock.now = start + 0.005
    for _ in range(judged - 1 - refused):  # got through, in the last second
        clock.now += 0.8 / judged
        rate.succeeded(Ticket(clock.now - 0.004, 1))
    for _ in range(refused):  # refused, together
        clock.now += 0.0001
        rate.throttled(Ticket(clock.now - 0.004, 1))
    clock.now = look
    rate.succeeded(Ticket(clock.now - 0.004, 1))  # the first look, a round later
    assert rate.active is cut


def test_under_12_per_second_a_blackout_needs_three_intervals_of_the_estimate_without_a_success():
    clock = FakeClock()
    rate = AdaptiveRate(clock=clock)
    while not rate.active:  # a quota of 6 a second
        answer(rate, clock, 6, 0.5)
        rate.throttled(Ticket(clock.now - 0.04, 1))
    gap = 3 / rate.estimate
    assert gap > 0.25
    clock.now += 100.0  # long after the cut: probing far above it
    rate.succeeded(Ticket(clock.now - 0.04, 1))
    for _ in range(5):
        rate.refused_under_quota(Ticket(clock.now, 1))
    clock.now += 0.9 * gap
    assert rate.rate > 100
    clock.now += 0.2 * gap
    assert rate.rate < BLACKOUT_TRICKLE
