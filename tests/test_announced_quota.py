"""Pacing under a quota the gateway announces (`AnnouncedQuota`, `RequestLimiter`, `Pacer`).

Each test drives the limiter on a fake clock and checks what a caller sees:
when requests start, how far under the quota, and when a learned quota is
tried higher or forgotten.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from vbs_async._limits import (
    PROBE_DOUBLING,
    QUIET,
    QUOTA_MARGIN,
    RESTORE_QUIET,
    AnnouncedQuota,
    Quota,
    RequestLimiter,
    parse_quota,
)

from ._helpers import FakeClock

PER_MINUTE = "1 minute"


def minute(limit: int) -> Quota:
    return Quota(limit, 60.0, None, PER_MINUTE)


async def starts_of(limiter: RequestLimiter, clock: FakeClock, count: int) -> list[float]:
    """When each of `count` requests to `gw`'s `api`, one after the other, started."""
    starts = []
    for _ in range(count):
        async with limiter.slot("gw", "api"):
            starts.append(clock.now)
    return starts


# -- what is announced ---------------------------------------------------------------------


async def test_one_request_a_minute_announced_lets_one_through_each_minute(fake_time):
    quota = parse_quota(
        "APIG.0308: the throttling threshold has been reached: limit:1,time:1 minute"
    )
    assert quota == minute(1)
    # The gateway's minute rolls over 30 s from now (its calendar 50 s ahead of the clock).
    limiter = RequestLimiter(4, None, clock=fake_time, wall_offset=50.0)
    assert limiter.announced("gw", "api", quota)
    began = fake_time.now
    first, second = await starts_of(limiter, fake_time, 2)
    assert first - began == 30.0
    assert second > first + 30.0  # not in that minute: when a quiet minute's probe comes


async def test_a_minute_quota_holds_requests_until_the_gateway_s_minute_rolls_over(
    fake_time, monkeypatch
):
    # The calendar is the machine's wall clock when none is injected: 30 s into a minute.
    monkeypatch.setattr(time, "time", lambda: 1_800_000_030.0)
    limiter = RequestLimiter(4, None, clock=fake_time)
    limiter.announced("gw", "api", minute(100))
    began = fake_time.now
    starts = await starts_of(limiter, fake_time, 99)
    # The burst that taught the quota spent this minute: 98 (2 % under 100) from the next.
    assert starts[0] - began == pytest.approx(30.0)
    assert starts[97] == starts[0]
    assert starts[98] > starts[0]


def test_a_quota_is_news_once_and_paces_one_api_only_when_its_policy_counts_per_api():
    clock = FakeClock()
    limiter = RequestLimiter(4, None, clock=clock, wall_offset=0.0)
    per_api = Quota(10, 1.0, "api")
    assert limiter.announced("gw", "a", per_api)  # news: logged once
    assert not limiter.announced("gw", "a", per_api)  # the same: its window spent
    assert [p.quota for p in limiter.quotas_for("gw", "a")] == [per_api]
    assert limiter.quotas_for("gw", "b") == []
    per_user = Quota(20, 1.0, "user")
    assert limiter.announced("gw", "a", per_user)
    assert [p.quota for p in limiter.quotas_for("gw", "b")] == [per_user]
    assert [p.quota for p in limiter.quotas_for("gw", "a")] == [per_user, per_api]
    assert limiter.quotas == [("gw", per_api), ("gw", per_user)]


# -- probing above it, and a lower quota that passes ------------------------------------------


def test_a_quiet_quota_is_probed_above_doubling_every_0_7_s():
    clock = FakeClock()
    quota = AnnouncedQuota(Quota(10, 1.0), clock, wall_offset=0.0)
    paced = 10 * (1 - QUOTA_MARGIN)
    assert quota.rate() == pytest.approx(paced)
    clock.now += QUIET
    assert quota.rate() == pytest.approx(paced)
    clock.now += 3 * PROBE_DOUBLING
    assert quota.rate() == pytest.approx(8 * paced)
    # A quota over two seconds is not paced evenly, but its rate is per second all the same.
    assert AnnouncedQuota(Quota(10, 2.0), clock, wall_offset=0.0).rate() == pytest.approx(4.9)


async def test_a_quota_quiet_for_an_hour_is_probed_far_above_and_requests_still_start(fake_time):
    # Before: the probe's doubling overflowed after 13 quiet minutes (2.0 ** 1100:
    # OverflowError), and every request under the quota failed with it.
    limiter = RequestLimiter(4, None, clock=fake_time, wall_offset=0.0)
    limiter.announced("gw", "api", Quota(10, 1.0))
    fake_time.now += 3600.0
    (pacer,) = limiter.quotas_for("gw", "api")
    assert pacer.rate() > 1e18
    assert await starts_of(limiter, fake_time, 20) == [4600.0] * 20
    assert limiter.quotas == []  # twice its limit went through at once: it is gone


def test_a_lower_quota_tries_the_higher_one_after_a_quiet_second_at_the_higher_pace():
    clock = FakeClock()
    limiter = RequestLimiter(4, None, clock=clock, wall_offset=0.0)
    limiter.announced("gw", "api", Quota(15, 1.0))
    assert limiter.announced("gw", "api", Quota(10, 1.0), started=clock.now)
    (lower,) = limiter.quotas_for("gw", "api")
    assert lower.rate() == pytest.approx(9.8)
    clock.now += RESTORE_QUIET  # a second exactly: not yet
    assert lower.rate() == pytest.approx(9.8)
    clock.now += 0.5
    assert lower.rate() == pytest.approx(15 * (1 - QUOTA_MARGIN))


@pytest.mark.parametrize(
    "second", [Quota(20, 1.0), Quota(600, 60.0, None, PER_MINUTE)], ids=["higher", "as-high"]
)
def test_a_quota_announced_no_lower_than_the_one_before_is_probed_only_after_a_quiet_minute(
    second,
):
    clock = FakeClock()
    limiter = RequestLimiter(4, None, clock=clock, wall_offset=0.0)
    limiter.announced("gw", "api", Quota(10, 1.0))
    limiter.announced("gw", "api", second, started=clock.now)
    (pacer,) = limiter.quotas_for("gw", "api")
    paced = second.limit * (1 - QUOTA_MARGIN) / second.period
    clock.now += QUIET / 2
    assert pacer.rate() == pytest.approx(paced)
    clock.now += QUIET / 2 + 1.0
    assert pacer.rate() > 1.5 * paced


async def test_a_lower_minute_quota_that_lets_twice_its_limit_through_gives_way_to_the_higher(
    fake_time, monkeypatch
):
    monkeypatch.setattr(time, "time", lambda: 1_800_000_030.0)  # the machine's calendar: unused
    limiter = RequestLimiter(4, None, clock=fake_time, wall_offset=0.0)
    limiter.announced("gw", "api", minute(600))
    limiter.announced("gw", "api", minute(100), started=fake_time.now)
    starts = await starts_of(limiter, fake_time, 200)  # at 1020 s, when the minute rolls over
    assert starts[0] == starts[-1] == 1020.0
    # Twice the lower quota went through in its minute: the higher one is back, unblocked.
    assert [p.quota for p in limiter.quotas_for("gw", "api")] == [minute(600)]
    assert limiter.quotas == [("gw", minute(600))]
    assert await starts_of(limiter, fake_time, 1) == [1020.0]
    # Refused under it: until the injected calendar's minute rolls over.
    fake_time.now = 1021.0
    assert not limiter.announced("gw", "api", minute(600), started=1020.0)
    assert await starts_of(limiter, fake_time, 1) == [1080.0]


async def test_a_per_second_quota_comes_back_over_a_lower_per_minute_one(fake_time):
    limiter = RequestLimiter(4, None, clock=fake_time, wall_offset=0.0)
    limiter.announced("gw", "api", Quota(10, 1.0))
    limiter.announced("gw", "api", minute(100), started=fake_time.now)  # 1.7/s: lower
    await starts_of(limiter, fake_time, 201)
    assert fake_time.now == 1020.0  # at six times 100 a minute, 200 went through at once
    assert limiter.quotas == [("gw", Quota(10, 1.0))]


# -- refusals under it ---------------------------------------------------------------------


def test_refusals_of_a_minute_quota_wait_for_the_next_minute_or_half_one_after_a_rollover():
    clock = FakeClock()
    quota = AnnouncedQuota(minute(100), clock, wall_offset=0.0)
    assert quota.due() == 1020.0  # the burst that taught it spent this minute
    clock.now = 1056.0
    quota.throttled(started=1055.0)  # mid-minute: spent by others
    assert quota.due() == 1080.0
    clock.now = 1081.0
    quota.throttled(started=1080.5)  # right after it rolled over: a penalty box?
    assert quota.due() == 1111.0
    other = FakeClock()
    boundary = AnnouncedQuota(minute(100), other, wall_offset=0.0)
    other.now = 1050.5
    boundary.throttled(started=1050.0)  # half a minute after the block ended: a new minute
    assert boundary.due() == 1080.0


def test_a_refusal_of_a_request_sent_as_the_quota_was_learned_counts():
    clock = FakeClock()
    quota = AnnouncedQuota(Quota(10, 1.0), clock, wall_offset=0.0)
    clock.now += 0.05
    quota.throttled(started=1000.0)  # it left under the quota: a bucket's pause
    assert quota.due() == pytest.approx(1000.05 + 2 / 9.8)


def test_an_even_pace_refused_widens_its_margin_which_halves_back_every_10_quiet_seconds():
    clock = FakeClock()
    quota = AnnouncedQuota(Quota(50, 1.0), clock, wall_offset=0.0)
    clock.now += 0.5
    quota.throttled(started=clock.now - 0.01)
    assert quota.rate() == pytest.approx(50 * (1 - 2 * QUOTA_MARGIN))
    clock.now += 10.0
    assert quota.rate() == pytest.approx(50 * (1 - QUOTA_MARGIN))


def refused_probe(clock: FakeClock) -> AnnouncedQuota:
    """A 10/s quota whose probe was refused at 1060.5 s (its punishment watched 1061-1064 s)."""
    quota = AnnouncedQuota(Quota(10, 1.0), clock, wall_offset=0.0)
    clock.now = 1000.0 + QUIET + 0.5
    assert quota.rate() > 10
    quota.throttled(started=clock.now - 0.05)
    assert quota.rate() == pytest.approx(9.8)
    return quota


def test_after_a_refused_probe_refusals_of_the_probe_s_requests_say_nothing():
    clock = FakeClock()
    quota = refused_probe(clock)
    clock.now = 1060.6
    quota.throttled(started=1060.4)  # sent by the probe
    assert quota.due() <= clock.now
    clock.now = 1060.7
    quota.throttled(started=1060.5)  # sent at the quota again, as the probe's refusal came
    assert quota.due() > clock.now


@pytest.mark.parametrize(("started", "punished"), [(1061.0, True), (1063.9, True), (1064.0, False)])
def test_a_refusal_at_the_quota_in_the_3_s_after_a_refused_probe_stops_the_probing(
    started, punished
):
    clock = FakeClock()
    quota = refused_probe(clock)
    clock.now = started + 0.01
    quota.throttled(started=started)
    clock.now += 200.0
    assert (quota.rate() == pytest.approx(9.8)) is punished


async def test_a_per_api_quota_still_counts_the_moment_a_host_wide_one_is_forgotten(fake_time):
    limiter = RequestLimiter(4, None, clock=fake_time, wall_offset=0.0)
    limiter.announced("gw", "b", Quota(10, 1.0, "user"))
    per_api = Quota(5, 60.0, "api", PER_MINUTE)
    limiter.announced("gw", "a", per_api)
    fake_time.now += 3600.0  # quiet for an hour: the host's quota is probed far above
    (host_wide,) = limiter.quotas_for("gw", "b")
    for _ in range(20):  # twice its limit at once, scheduled by a caller of its own: gone
        host_wide.took(host_wide.due(), fake_time.now)
    assert host_wide.forgotten
    assert [p.quota for p in limiter.quotas_for("gw", "a")] == [per_api]
    assert limiter.quotas == [("gw", per_api)]


async def test_requests_waiting_under_a_quota_also_wait_under_one_announced_meanwhile(
    fake_time,
):
    limiter = RequestLimiter(4, None, clock=fake_time, wall_offset=0.0)
    limiter.announced("gw", "api", Quota(100, 60.0, "user", PER_MINUTE))  # blocked until 1020 s
    starts: list[float] = []

    async def request() -> None:
        async with limiter.slot("gw", "api"):
            starts.append(fake_time.now)

    waiting = [asyncio.create_task(request()) for _ in range(2)]
    await asyncio.sleep(0)
    limiter.announced("gw", "api", Quota(1, 1.0, "api"))  # one a second for this API
    await asyncio.gather(*waiting)
    assert starts[0] == 1020.0
    assert starts[1] - starts[0] >= 1.0
