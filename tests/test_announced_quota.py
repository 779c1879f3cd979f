"""Pacing under a quota the gateway announces (`AnnouncedQuota`, `RequestLimiter`, `Pacer`).

Each test drives the limiter on a fake clock and checks what a caller sees:
when requests start, how far under the quota, and when a learned quota is
tried higher or forgotten.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from vbs_async._adaptive import AdaptiveRate, Ticket
from vbs_async._announced import (
    PROBE_DOUBLING,
    QUIET,
    QUOTA_MARGIN,
    RESTORE_QUIET,
    AnnouncedQuota,
    Quota,
    parse_quota,
)
from vbs_async._limits import RequestLimiter

from ._helpers import FakeClock
from .test_retries import on_virtual_clock

PER_MINUTE = "1 minute"


def minute(limit: int) -> Quota:
    return Quota(limit, 60.0, None, PER_MINUTE)


async def starts_of(
    limiter: RequestLimiter,
    clock: FakeClock,
    count: int,
    *,
    through: bool = False,
    closed: tuple[Quota, float] | None = None,
) -> list[float]:
    """When each of `count` requests to `gw`'s `api`, one after the other, started.

    `through`: each got through, answered as it started (the client's answers,
    which a probe above a quota is judged on). `closed`: (quota, until): the
    gateway's window is spent until then; a request sent earlier (a probe of
    where a minute's window rolls over) is refused under that quota, answered as
    it started, and sent again: not listed.
    """
    starts: list[float] = []
    while len(starts) < count:
        async with limiter.slot("gw", "api") as ticket:
            started = clock.now
        if closed is not None and started < closed[1]:
            limiter.adaptive.refused_under_quota(ticket)
            limiter.announced("gw", "api", closed[0], started=ticket.started)
            continue
        starts.append(started)
        if through:
            limiter.adaptive.succeeded(ticket)
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
    first, second = await starts_of(limiter, fake_time, 2, closed=(quota, began + 30.0))
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
    starts = await starts_of(
        limiter, fake_time, 101, through=True, closed=(minute(100), began + 30.0)
    )
    # The burst that taught the quota spent this minute: its whole 100 from the next.
    assert starts[0] - began == pytest.approx(30.0)
    assert starts[99] == starts[0]
    assert starts[100] > starts[0]


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


def test_a_minute_window_counts_only_its_own_starts_and_those_sent_just_before_it():
    # The window on the calendar rolls over at 1020 s. Starts from the minute before it
    # are not in it (counted as a sliding window counts, a refused probe's kept a whole
    # window from a crawl); starts sent a moment before it may arrive after it, and are.
    def window_after(sent_at: float, asked_at: float = 1020.1) -> float:
        clock = FakeClock()
        quota = AnnouncedQuota(minute(2), clock, wall_offset=0.0, blocked=False)
        clock.now = sent_at
        for _ in range(2):
            quota.took(quota.due(), clock.now)
        clock.now = asked_at
        return quota.due()

    assert window_after(1010.0) <= 1020.1  # at once
    assert window_after(1019.8) > 1079.0
    assert window_after(1019.8, asked_at=1019.9) > 1079.0  # not as the minute rolls over


def test_a_calendar_minute_full_by_its_own_count_opens_as_it_rolls_over():
    # Counted as a sliding window, it opened 60.6 s after its starts: past a deadline
    # of 60 s, a call failed at once (two processes sharing a quota: 28 of 40 failed).
    clock = FakeClock()  # 1000 s: the calendar minute began at 960 s
    quota = AnnouncedQuota(minute(2), clock, wall_offset=0.0, blocked=False)
    for _ in range(2):
        quota.took(quota.due(), clock.now)
    assert quota.reopens() == 1020.0


def test_a_start_refused_at_random_leaves_room_in_a_minute_s_window():
    # Counted in the window, its retry waited for the next minute although the window
    # had room (an outsider's 5 % at random under 20 a minute: 1.22x the crawl).
    under = Answered(3, 60.0)
    for _ in range(3):
        under.start(1020.0)
    under.answer(1020.0, 1020.002, ok=False)
    under.answer(1020.0, 1020.003)
    under.answer(1020.0, 1020.004)
    assert under.quota.reopens() <= under.clock.now


@pytest.mark.parametrize(("period", "probed"), [(60.0, True), (3600.0, False), (5.0, False)])
def test_only_a_minute_s_spent_window_is_probed_for_where_it_rolls_over(period, probed):
    # A call's deadline is shorter than an hour's probes' steps; a 5-s window is a few
    # seconds lost at most.
    clock = FakeClock()
    quota = AnnouncedQuota(
        Quota(20, period), clock, wall_offset=0.0, answers=AdaptiveRate(clock=clock)
    )
    assert (quota.due() < quota.reopens()) is probed


def test_a_project_s_own_copy_of_a_minute_quota_is_not_probed_for_where_it_rolls_over():
    # A policy counting each project apart has a copy per project refused: each probing,
    # a thousand projects would send 200 probes a second.
    clock = FakeClock()
    answers = AdaptiveRate(clock=clock)
    copy = AnnouncedQuota(minute(20), clock, wall_offset=0.0, answers=answers, project="p")
    assert copy.due() == copy.reopens() == 1020.0


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
    assert await starts_of(limiter, fake_time, 21, through=True) == [4600.0] * 21
    fake_time.now += 1.0
    assert await starts_of(limiter, fake_time, 21, through=True) == [4601.0] * 21
    assert limiter.quotas == []  # more than twice its limit through, two seconds running: gone


async def test_a_probe_forgets_a_quota_on_its_own_requests_answers_not_on_their_starts(
    fake_time,
):
    # Before: twice the limit started in a second, none answered yet, forgot it (a 2/s
    # quota's probe did that before its first refusal came back: 52 of 500 refused).
    limiter = RequestLimiter(32, None, clock=fake_time, wall_offset=0.0)
    limiter.announced("gw", "a", Quota(2, 1.0, "api"))
    fake_time.now += QUIET + 3 * PROBE_DOUBLING  # quiet: probed at 8 times the limit

    async def probe_for_a_second() -> list[Ticket]:
        began, probe = fake_time.now, []
        for _ in range(5):
            async with limiter.slot("gw", "a") as ticket:
                probe.append(ticket)
        assert fake_time.now - began < 1.0
        fake_time.now = began + 1.0
        return probe

    known = [Quota(2, 1.0, "api")]
    first = await probe_for_a_second()
    assert [quota for _, quota in limiter.quotas] == known  # none answered
    # Another API's requests, not under it, got through meanwhile: they say nothing of it.
    for _ in range(5):
        fake_time.now += 0.01
        async with limiter.slot("gw", "b") as ticket:
            limiter.adaptive.succeeded(ticket)
    assert [quota for _, quota in limiter.quotas] == known
    for ticket in first[:4]:  # twice its limit through: a calendar second's and the next's
        limiter.adaptive.succeeded(ticket)
    assert [quota for _, quota in limiter.quotas] == known
    limiter.adaptive.succeeded(first[4])  # more than twice, in one second: a bucket's burst?
    assert [quota for _, quota in limiter.quotas] == known
    second = await probe_for_a_second()
    for ticket in second:  # and in the next second too: raised, forgotten
        limiter.adaptive.succeeded(ticket)
    assert limiter.quotas == []


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
    # At 1020 s, when the minute rolls over, each answered at once.
    starts = await starts_of(limiter, fake_time, 201, through=True, closed=(minute(100), 1020.0))
    assert starts[0] == starts[-1] == 1020.0
    # More than twice the lower quota went through in its minute: the higher one is back.
    assert [p.quota for p in limiter.quotas_for("gw", "api")] == [minute(600)]
    assert limiter.quotas == [("gw", minute(600))]
    fake_time.now = 1020.5
    assert await starts_of(limiter, fake_time, 1) == [1020.5]
    # Refused under it, sent after all that got through: until the calendar's minute rolls over.
    fake_time.now = 1021.0
    assert not limiter.announced("gw", "api", minute(600), started=1020.5)
    assert await starts_of(limiter, fake_time, 1, closed=(minute(600), 1080.0)) == [1080.0]


async def test_a_per_second_quota_comes_back_over_a_lower_per_minute_one(fake_time):
    limiter = RequestLimiter(4, None, clock=fake_time, wall_offset=0.0)
    limiter.announced("gw", "api", Quota(10, 1.0))
    limiter.announced("gw", "api", minute(100), started=fake_time.now)  # 1.7/s: lower
    await starts_of(limiter, fake_time, 201, through=True, closed=(minute(100), 1020.0))
    assert fake_time.now == 1020.0  # at six times 100 a minute, 201 went through at once
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
    assert quota.due() == 1110.0  # half a minute from the rollover: the next look at one
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


@pytest.mark.parametrize(("limit", "half_life"), [(50, 10.0), (5, 100.0)])
def test_an_even_pace_refused_widens_its_margin_which_halves_back_in_10_s_or_500_intervals(
    limit, half_life
):
    # 500 of a 5/s quota's intervals. Before: 10 s, and refusals at random seconds apart
    # never found the margin wide enough to tell them from the pace's (see below).
    clock = FakeClock()
    quota = AnnouncedQuota(Quota(limit, 1.0), clock, wall_offset=0.0)
    clock.now += 0.5
    quota.throttled(started=clock.now - 0.01)
    assert quota.rate() == pytest.approx(limit * (1 - 2 * QUOTA_MARGIN))
    clock.now += half_life / 2  # under the quiet minute that probes above it
    assert quota.rate() == pytest.approx(limit * (1 - 2 * QUOTA_MARGIN * 0.5**0.5))


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
    for i in range(42):  # over twice its limit through, two seconds running (its own caller)
        fake_time.now = 4600.0 + (i >= 21)
        host_wide.took(host_wide.due(), fake_time.now)
        limiter.adaptive.succeeded(Ticket(fake_time.now, 1))
    assert host_wide.forgotten
    assert [p.quota for p in limiter.quotas_for("gw", "a")] == [per_api]
    assert limiter.quotas == [("gw", per_api)]


async def test_requests_waiting_under_a_quota_also_wait_under_one_announced_meanwhile(
    fake_time,
):
    limiter = RequestLimiter(4, None, clock=fake_time, wall_offset=0.0)
    per_minute = Quota(100, 60.0, "user", PER_MINUTE)
    limiter.announced("gw", "api", per_minute)  # blocked until 1020 s
    starts: list[float] = []

    async def request() -> None:
        while True:
            async with limiter.slot("gw", "api") as ticket:
                started = fake_time.now
            if started >= 1020.0:
                starts.append(started)
                return
            # A probe of where the minute rolls over, refused: sent again.
            limiter.adaptive.refused_under_quota(ticket)
            limiter.announced("gw", "api", per_minute, started=ticket.started)

    waiting = [asyncio.create_task(request()) for _ in range(2)]
    await asyncio.sleep(0)
    limiter.announced("gw", "api", Quota(1, 1.0, "api"))  # one a second for this API
    await asyncio.gather(*waiting)
    assert starts[0] == 1020.0
    assert starts[1] - starts[0] >= 1.0


# -- refusals at random that name the quota (noise), on the client's answers -----------------


class Answered:
    """A quota of `limit` per `period` (a second) learned at 1000 s, judged on the client's answers."""

    def __init__(self, limit: int = 40, period: float = 1.0) -> None:
        self.clock = FakeClock()
        self.answers = AdaptiveRate(clock=self.clock)
        self.quota = AnnouncedQuota(
            Quota(limit, period), self.clock, wall_offset=0.0, answers=self.answers
        )

    def start(self, started: float) -> None:
        self.clock.now = started
        self.quota.took(self.quota.reopens(), started)  # due when the window opened

    def answer(self, started: float, at: float, *, ok: bool = True) -> bool:
        """The answer at `at` to the request sent at `started`; True if a refusal paused starts."""
        self.clock.now = at
        ticket = Ticket(started, 1)
        if ok:
            self.answers.succeeded(ticket)
            return False
        self.answers.refused_under_quota(ticket)
        self.quota.throttled(started)
        # Unpaused, the next start is due an interval after this one; paused, two after now.
        return self.quota.due() - started > 1.5 / self.quota.rate()

    def request(self, started: float, *, ok: bool = True, latency: float = 1 / 64) -> bool:
        """One request sent at `started`, answered `latency` later; True if its refusal paused."""
        self.start(started)
        return self.answer(started, started + latency, ok=ok)


def test_one_refusal_in_20_answers_at_the_limit_is_noise_and_later_ones_pause_nothing():
    under = Answered(50)
    assert not any(under.request(1000.0 + i * 0.02) for i in range(19))
    assert not under.request(1000.0 + 19 * 0.02, ok=False)  # 1 of 20 refused: noise
    assert under.quota.rate() == pytest.approx(49.0)  # the margin not widened either
    # Seconds later, a refusal after a success, with few answers to judge by: noise still.
    assert not under.request(1003.0)
    assert not under.request(1003.02, ok=False)


def test_noise_ends_when_over_15_percent_of_20_answers_are_refused():
    under = Answered(50)
    for i in range(20):
        under.request(1000.0 + i * 0.02, ok=i != 19)  # noise, as above
    refused = {3, 8, 13, 19}
    paused = [under.request(1005.0 + i * 0.02, ok=i not in refused) for i in range(20)]
    # Judged on the last 20 answers (back into the first burst when two seconds hold
    # fewer): 2 and 3 of them refused, noise still; 4 of 20 (a fifth): the pace.
    assert paused == [i in {13, 19} for i in range(20)]
    # No longer noise: a refusal a few seconds later pauses, with few answers to judge by.
    assert not any(under.request(1008.0 + i * 0.02) for i in range(4))
    assert under.request(1008.08, ok=False)


def test_a_refusal_of_a_request_sent_as_the_quota_was_learned_that_got_through_widens_it():
    under = Answered(50)
    under.request(1000.0)  # sent the moment it was learned: it got through under it
    assert under.request(1000.1, ok=False)
    assert under.quota.rate() == pytest.approx(50 * (1 - 2 * QUOTA_MARGIN))


def widened(under: Answered) -> None:
    """Six requests a quarter slower than 40/s, the sixth refused: paused, the margin widened."""
    assert not any(under.request(1000.0 + i / 32) for i in range(5))
    # Slow as it is, the margin was not widened yet: no reason to call it noise.
    assert under.request(1000.0 + 5 / 32, ok=False)
    assert under.quota.rate() == pytest.approx(40 * (1 - 2 * QUOTA_MARGIN))


@pytest.mark.parametrize(
    ("first", "gaps", "noise"),
    [
        (None, [0.04] * 5, True),  # from the pause's end exactly, 0.04 s apart
        (1000.25, [1 / 32] * 5, True),  # a quarter slower than 40/s exactly
        (1000.25, [1 / 32] * 4, False),  # 4 gaps: too few to tell a pace
        (1000.25, [3 / 128] * 5, False),  # under a quarter slower: jitter
        # The last 10 gaps, not 8 or 11: 0.0325 s apart on average.
        (1000.25, [0.0, 1 / 16, 1 / 16, *[0.025] * 8], True),
    ],
    ids=["from-the-pause", "a-quarter-slower", "four-gaps", "jitter", "ten-gaps"],
)
def test_a_refusal_after_starts_a_quarter_slower_than_the_limit_is_noise_once_widened(
    first, gaps, noise
):
    under = Answered(40)
    widened(under)
    at = under.quota.due() if first is None else first
    starts = [at]
    for gap in gaps:
        starts.append(starts[-1] + gap)
    assert not any(under.request(started) for started in starts[:-1])
    assert under.request(starts[-1], ok=False) is not noise
    # Noise: the margin is back at the limit's; not noise: it widens again.
    margin = QUOTA_MARGIN if noise else 4 * QUOTA_MARGIN
    assert under.quota.rate() == pytest.approx(40 * (1 - margin))


def test_a_refusal_of_the_only_start_since_the_pause_is_no_pace_to_call_noise():
    under = Answered(40)
    for i in range(5):
        under.request(1000.0 + i / 32)
    under.start(1000.15625)
    under.start(1000.1875)  # left before the refusal came back
    assert under.answer(1000.15625, 1000.21, ok=False)
    under.answer(1000.1875, 1000.23)
    assert under.request(1000.4, ok=False)  # alone since the pause: paused again


def test_a_minute_quota_refused_on_and_on_looks_again_on_the_calendar_s_half_minutes():
    # Nothing got through since it was learned (1000 s). Counted from the first refusal
    # (1090 s), every look missed the rollover, where others sharing the quota spend it.
    clock = FakeClock()
    quota = AnnouncedQuota(minute(100), clock, wall_offset=0.0, answers=AdaptiveRate(clock=clock))
    assert quota.reopens() == 1020.0  # (probes of where it rolls over aside)
    clock.now = 1046.0
    quota.throttled(started=1045.0)  # refused 25 s after the block ended
    assert quota.reopens() == 1080.0  # the half minute after next: the next rollover


# -- noise under a slow quota: judged over answers and starts, not over seconds ----------------


def test_one_refusal_in_the_last_20_answers_of_a_5_per_second_pace_is_noise():
    # Before: judged on the last two seconds only, which hold 10 answers at 5/s: never
    # enough to judge, so it paused the pace and widened the margin.
    under = Answered(5)
    assert not any(under.request(1000.0 + i * 0.2) for i in range(19))
    assert not under.request(1000.0 + 19 * 0.2, ok=False)
    assert under.quota.rate() == pytest.approx(4.9)


def test_a_refusal_of_a_5_per_second_pace_a_quarter_slower_than_its_limit_is_noise():
    # Before: the spacing was read from the log of one period's starts (5 at most at
    # 5/s), never the 5 gaps it needs: paused, and the margin widened again.
    under = Answered(5)
    for i in range(4):
        under.request(1000.0 + i * 0.25)
    assert under.request(1001.0, ok=False)  # on 5 answers: the pace's, widened
    at = under.quota.due()
    starts = [at + i * 0.26 for i in range(6)]
    assert not any(under.request(started) for started in starts[:-1])
    assert not under.request(starts[-1], ok=False)
    assert under.quota.rate() == pytest.approx(4.9)


def test_two_refusals_in_a_row_among_noise_pause_the_pace_but_widen_nothing():
    # One in twenty refusals at random at 5 % follows another: each widened the margin,
    # which refusals seconds apart never let narrow again (a 5/s pace at 84 %).
    under = Answered(5)
    for i in range(19):
        under.request(1000.0 + i * 0.2)
    assert not under.request(1003.8, ok=False)
    assert under.quota.noisy
    assert under.request(1004.0, ok=False)  # in a row: a spent window, paused
    assert under.quota.rate() == pytest.approx(4.9)


def test_a_lone_refusal_among_a_minute_quotas_answers_is_noise_a_second_in_a_row_is_not():
    # Before: each waited for the next minute, or half of one (2.4x the crawl at 5 %).
    under = Answered(100, 60.0)
    assert under.quota.reopens() == 1020.0  # the burst that taught it spent this minute
    for i in range(30):
        under.request(1020.0 + i * 0.01)
    assert not under.request(1020.3, ok=False)
    assert under.quota.due() <= under.clock.now
    under.request(1020.31, ok=False)
    # Right after the block ended (a penalty box?), with requests sent since through:
    # half a minute from the rollover, so that the look after is at the next minute's.
    assert under.quota.due() == pytest.approx(1020.0 + 30.0, abs=0.02)
    under.request(under.quota.due(), ok=False)  # others spent this minute: at its rollover
    assert under.quota.due() == pytest.approx(1080.0, abs=0.02)


def learned_after(
    quota: Quota, through: int, at: float, learned: float
) -> tuple[AnnouncedQuota, AdaptiveRate, FakeClock]:
    """`quota`, learned at `learned` after `through` requests sent at `at` got through."""
    clock = FakeClock()
    answers = AdaptiveRate(clock=clock)
    clock.now = at
    for _ in range(through):
        answers.succeeded(Ticket(at, 1))
    clock.now = learned
    return AnnouncedQuota(quota, clock, wall_offset=0.0, answers=answers), answers, clock


def sent_at(
    quota: AnnouncedQuota, answers: AdaptiveRate, clock: FakeClock, at: float, *, ok: bool
) -> None:
    """A request left at `at` (due by then), answered 40 ms later: through, or refused."""
    clock.now = at
    assert quota.due() <= at
    quota.took(quota.due(), at)
    clock.now = at + 0.04
    if ok:
        answers.succeeded(Ticket(at, 1))
    else:
        answers.refused_under_quota(Ticket(at, 1))
        quota.throttled(at)


@pytest.mark.parametrize(
    ("before", "through", "sliding"),
    [(19, 1, True), (20, 1, False), (15, 5, True), (15, 6, False)],
    ids=["20-a-sliding-window", "21-the-calendar", "20-from-the-rollover", "21-from-it"],
)
def test_a_refusal_at_the_rollover_is_a_sliding_window_only_if_it_admitted_no_more_than_its_limit(
    before, through, sliding
):
    # 20 a minute, learned at 1000 s: `before` got through 5 s before, `through` more as
    # the calendar minute rolled over (1020 s), and the next was refused. A sliding window
    # admits at most 20 in a minute: it opens as the oldest leaves it. More than 20 in a
    # minute: the calendar's window rolled over, and others spent it (two processes
    # sharing one quota: read as sliding, one came 0.6 s after each rollover, where the
    # other spent the window whole, and 9 of its 40 calls failed).
    quota, answers, clock = learned_after(minute(20), before, 995.0, 1000.0)
    for sent in range(through + 1):
        sent_at(quota, answers, clock, 1020.0 + sent * 0.05, ok=sent < through)
    assert quota.sliding is sliding
    # Sliding: as the oldest (at 995 s) leaves it, and a margin. Else half a minute from
    # the rollover (refused at random, perhaps), then at the next minute's.
    assert quota.reopens() == pytest.approx(995.0 + 60.6 if sliding else 1050.0)


def test_a_sliding_window_refused_with_room_by_the_client_s_count_waits_for_the_calendar_s():
    # Read as sliding (20 a minute: 19 through at 995 s, one at the rollover, 1020 s, the
    # next refused), it opens as the 19 leave it. Refused then, with room by its own
    # count: others spend the window, which may be the calendar's after all. Waiting for
    # its own oldest start to leave (1080.6 s), a client sharing a minute's quota with
    # two others came 0.6 s after each rollover, where they had spent it whole.
    quota, answers, clock = learned_after(minute(20), 19, 995.0, 1000.0)
    sent_at(quota, answers, clock, 1020.0, ok=True)
    sent_at(quota, answers, clock, 1020.05, ok=False)
    assert quota.sliding
    assert quota.reopens() == pytest.approx(995.0 + 60.6)
    sent_at(quota, answers, clock, 1055.6, ok=False)
    assert not quota.sliding
    assert quota.reopens() == pytest.approx(1080.0)


def refused_at_the_rollover() -> tuple[AnnouncedQuota, AdaptiveRate, FakeClock]:
    """20 a minute, learned at 1000 s (5 through at 995 s): its probe at the rollover
    (1020 s) through, the burst after it refused (3 sent from 1020.05 s, a millisecond
    apart), as others sharing the quota spent the window as it rolled over."""
    quota, answers, clock = learned_after(minute(20), 5, 995.0, 1000.0)
    sent_at(quota, answers, clock, 1020.0, ok=True)
    burst = [1020.05, 1020.051, 1020.052]
    for started in burst:
        quota.took(quota.due(), started)
    for started in burst:  # answered in order, 20 ms on
        clock.now = started + 0.02
        answers.refused_under_quota(Ticket(started, 1))
        quota.throttled(started)
    return quota, answers, clock


def test_refusals_sent_with_the_one_that_set_a_blackout_s_look_leave_the_look_where_it_is():
    # Refused right as the window rolled over, it looks again half a minute on. The
    # burst's next refusals, sent before the first came back, say nothing more: they moved
    # the look to the next rollover, and a client sharing a sliding minute waited a whole
    # one, the room the others left unused (three processes: 180 s where 150 do).
    quota, _, _ = refused_at_the_rollover()
    assert quota.reopens() == pytest.approx(1050.0)


@pytest.mark.parametrize("through", [True, False], ids=["through", "refused"])
def test_a_blackout_s_look_within_the_window_is_one_request_the_rest_after_its_answer(through):
    # The look half a minute on goes alone: sent whole into a window others spent, a
    # queue costs a refusal each. Through, the rest follow at once; refused, the next
    # look is at the rollover, where the whole queue goes (the race with the others).
    quota, answers, clock = refused_at_the_rollover()
    sent_at(quota, answers, clock, 1050.0, ok=through)
    if through:
        assert quota.due() <= clock.now
        return
    assert quota.due() == pytest.approx(1080.0)
    clock.now = 1080.0
    for _ in range(3):
        quota.took(quota.due(), 1080.0)  # no answer waited for
    assert quota.due() <= clock.now


def test_a_blackout_s_look_holds_the_rest_until_it_is_answered():
    quota, _, clock = refused_at_the_rollover()
    clock.now = 1050.0
    assert quota.due() <= clock.now
    quota.took(quota.due(), 1050.0)
    assert quota.due() > clock.now  # asked again shortly, its answer not in
    clock.now = 1051.0
    assert quota.due() > clock.now
    clock.now = 1080.0  # never answered (an error): held a step at most
    assert quota.due() <= clock.now


def test_a_look_goes_as_the_client_s_own_oldest_start_leaves_a_sliding_window_once_a_window():
    # 20 a minute: 10 of its own through as the minute rolled over (1020 s), the rest of
    # the window others' (refused at 1020.05 s and at 1050 s); at the next rollover (1080 s)
    # its burst is refused. A sliding
    # window has room again as the starts in it leave: its own, at least, from 1080.6 s
    # (a period and a margin after them), where the half minute's look came at 1110 s
    # (three processes sharing a sliding minute: 137 s on average where 121 s do).
    quota, answers, clock = learned_after(minute(20), 5, 995.0, 1000.0)
    for _ in range(10):
        sent_at(quota, answers, clock, 1020.0, ok=True)
    sent_at(quota, answers, clock, 1020.05, ok=False)  # others spent the rest
    sent_at(quota, answers, clock, 1050.0, ok=False)  # the half minute's look
    for started in (1080.0, 1080.001):
        quota.took(quota.due(), started)
    clock.now = 1080.02
    for started in (1080.0, 1080.001):
        answers.refused_under_quota(Ticket(started, 1))
        quota.throttled(started)
    assert quota.reopens() == pytest.approx(1020.0 + 60.6)
    # Refused there too (a calendar's minute others spent): once a window, then the half
    # minute's look, as before.
    sent_at(quota, answers, clock, 1080.6, ok=False)
    assert quota.reopens() == pytest.approx(1110.0)


def test_the_rest_follow_a_blackout_s_look_as_soon_as_it_got_through():
    # In real time (a virtual clock): the requests held behind the look go once its
    # answer is in, not when their pacer next wakes (a quarter second on).
    async def scenario() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        answers = AdaptiveRate(clock=loop.time)
        await asyncio.sleep(995.0 - loop.time())
        for _ in range(5):
            answers.succeeded(Ticket(995.0, 1))
        await asyncio.sleep(1000.0 - loop.time())
        quota = AnnouncedQuota(minute(20), loop.time, wall_offset=0.0, answers=answers)
        await asyncio.sleep(1020.0 - loop.time())
        probe = await quota.acquire()  # at the rollover, through
        await asyncio.sleep(0.04)
        answers.succeeded(Ticket(probe, 1))
        burst = [await quota.acquire() for _ in range(3)]
        await asyncio.sleep(0.002)
        for started in burst:
            answers.refused_under_quota(Ticket(started, 1))
            quota.throttled(started)
        look = await quota.acquire()

        async def through() -> None:
            await asyncio.sleep(0.04)
            answers.succeeded(Ticket(look, 1))

        answered = asyncio.ensure_future(through())
        after = await quota.acquire()
        await answered
        return look, after

    (look, after), _ = on_virtual_clock(scenario)
    assert look == pytest.approx(1050.0)
    assert look + 0.04 <= after < look + 0.1


def test_a_probe_through_just_after_the_calendar_s_rollover_leaves_the_calendar_as_it_is():
    # 20 per 30 s, learned at 1019.95 s after 20 got through at 1019.9 s; its opening
    # probe at the rollover (1020 s) refused: read as sliding, believed to open at
    # 1050.2 s. A probe at 1050.1 s gets through: the gateway rolled over in the step
    # before it, where the calendar's rollover (1050 s) is. Moved to 1050.1 s, a client
    # sharing a minute's quota came that late to each rollover after, spent by others.
    quota, answers, clock = learned_after(Quota(20, 30.0), 20, 1019.9, 1019.95)
    sent_at(quota, answers, clock, 1020.0, ok=False)
    assert quota.reopens() == pytest.approx(1019.9 + 30.3)
    for _ in range(20):
        sent_at(quota, answers, clock, 1050.1, ok=True)
    assert quota.reopens() == pytest.approx(1080.0)  # the calendar's next, not 1080.1 s


@pytest.mark.parametrize(("refused_started", "lifted"), [(1020.0, True), (1020.1, False)])
def test_a_minute_quotas_block_is_lifted_when_a_request_sent_no_earlier_gets_through(
    refused_started, lifted
):
    # The first answer of a burst, a refusal, with nothing to judge it by, blocks; a
    # request sent with it that gets through says the window was not spent. One sent
    # before it may have been what spent it.
    under = Answered(100, 60.0)
    for started in (1020.0, 1020.0, refused_started):
        under.start(started)
    assert under.answer(refused_started, refused_started + 0.002, ok=False)
    under.answer(1020.0, refused_started + 0.04)
    assert (under.quota.due() <= under.clock.now) is lifted


@pytest.mark.parametrize(("through_started", "lifted"), [(999.99, True), (999.98, False)])
def test_a_minute_quota_learned_from_a_refusal_lets_requests_go_once_one_sent_with_it_got_through(
    through_started, lifted
):
    # The refusal that taught it came at random (an overloaded backend naming the quota).
    # Before: blocked until the next minute all the same (1.25x a crawl of 400 pages
    # under 100 a minute). One sent before the refused one may have spent the minute.
    clock = FakeClock()
    limiter = RequestLimiter(4, None, clock=clock, wall_offset=0.0)
    limiter.adaptive.refused_under_quota(Ticket(999.99, 1))
    assert limiter.announced("gw", "api", minute(100), started=999.99)
    (pacer,) = limiter.quotas_for("gw", "api")
    assert pacer.reopens() == 1020.0  # the burst that taught it may have spent this minute
    clock.now = 1000.01
    limiter.adaptive.succeeded(Ticket(through_started, 1))
    assert (pacer.due() <= clock.now) is lifted


def test_two_refusals_of_a_minute_quotas_burst_are_lifted_together():
    # Refusals come back before the successes sent with them: two in a row, each blocking.
    under = Answered(100, 60.0)
    for _ in range(3):
        under.start(1020.0)
    assert under.answer(1020.0, 1020.002, ok=False)
    assert under.answer(1020.0, 1020.003, ok=False)
    under.answer(1020.0, 1020.04)
    assert under.quota.due() <= under.clock.now


def test_a_block_that_ended_lifts_no_pause_set_after_it():
    # Refused after a pause, then after the calendar second: a penalty box? A block
    # that a request sent no earlier getting through would lift; it ends first. Before:
    # the refusal's lift, still armed, took the pause of a later refusal back at once.
    under = Answered(5)
    assert under.request(1000.5, ok=False)  # paused
    under.request(under.quota.due(), ok=False)  # the first after the pause: the calendar
    assert under.request(under.quota.due(), ok=False)  # the first after that: a step
    at = under.quota.due()
    for i in range(3):
        under.request(at + i * 0.21)  # after the step, sent after the refused one: through
    assert under.request(at + 3 * 0.21, ok=False)  # paused again, and stays so
    assert under.quota.due() > under.clock.now + 1.5 / under.quota.rate()  # asked again


# -- a quota named for one project's requests --------------------------------------------------

P, Q, R = "p" * 32, "q" * 32, "r" * 32


def paced_projects(limiter: RequestLimiter) -> list[str]:
    return [project for project in (P, Q, R) if limiter.quotas_for("gw", "api", project)]


def test_a_quota_refused_again_for_one_project_then_for_another_paces_every_project():
    clock = FakeClock()
    limiter = RequestLimiter(4, None, clock=clock, wall_offset=0.0)
    user = Quota(50, 1.0, "user")
    assert limiter.announced("gw", "api", user, started=clock.now, project=P)
    # Refused again, sent the moment it was learned: that project's alone.
    assert not limiter.announced("gw", "api", user, started=clock.now, project=P)
    assert paced_projects(limiter) == [P]
    clock.now += 0.1
    assert not limiter.announced("gw", "api", user, started=clock.now, project=Q)  # no news
    assert paced_projects(limiter) == [P, Q, R]


def test_a_quota_counting_every_project_is_not_narrowed_to_the_one_refused():
    clock = FakeClock()
    limiter = RequestLimiter(4, None, clock=clock, wall_offset=0.0)
    app = parse_quota("APIG.0308: policy app over ratelimit,limit:50,time:1 second")
    assert app is not None
    assert app.scope == "app"
    limiter.announced("gw", "api", app, started=clock.now, project=P)
    clock.now += 0.1
    limiter.announced("gw", "api", app, started=clock.now, project=P)
    assert paced_projects(limiter) == [P, Q, R]


def test_refusals_of_a_project_s_first_burst_do_not_stop_the_quota_narrowing_to_it():
    clock = FakeClock()
    limiter = RequestLimiter(4, None, clock=clock, wall_offset=0.0)
    user = Quota(50, 1.0, "user")
    limiter.announced("gw", "api", user, started=999.9, project=P)
    limiter.announced("gw", "api", user, started=999.95, project=P)  # sent before it was known
    assert paced_projects(limiter) == [P, Q, R]
    clock.now = 1000.5
    limiter.announced("gw", "api", user, started=1000.4, project=P)  # sent under it
    assert paced_projects(limiter) == [P]


@pytest.mark.parametrize(
    ("refused_before", "announced_for"),
    [([P, Q], P), ([P], Q)],
    ids=["two-projects-then-one-of-them", "one-project-then-another"],
)
def test_a_quota_announced_anew_remembers_the_projects_the_one_before_was_refused_for(
    refused_before, announced_for
):
    clock = FakeClock()
    limiter = RequestLimiter(4, None, clock=clock, wall_offset=0.0)
    for project in refused_before:
        limiter.announced("gw", "api", Quota(50, 1.0, "user"), started=clock.now, project=project)
    lower = Quota(40, 1.0, "user")
    assert limiter.announced("gw", "api", lower, started=clock.now, project=announced_for)
    clock.now += 0.1
    # Refused again for P: named for two projects' requests, so it counts them all.
    limiter.announced("gw", "api", lower, started=clock.now, project=P)
    assert paced_projects(limiter) == [P, Q, R]


async def test_a_project_s_quota_announced_lower_and_restored_stays_that_project_s(fake_time):
    limiter = RequestLimiter(4, None, clock=fake_time, wall_offset=0.0)
    user, lower = Quota(50, 1.0, "user"), Quota(5, 1.0, "user")
    limiter.announced("gw", "api", user, started=fake_time.now, project=P)
    limiter.announced("gw", "api", user, started=fake_time.now, project=P)
    assert limiter.announced("gw", "api", lower, started=fake_time.now, project=P)
    assert paced_projects(limiter) == [P]  # the one project's policy, announced lower
    (pacer,) = limiter.quotas_for("gw", "api", P)
    fake_time.now += 2 * RESTORE_QUIET  # quiet: the higher pace is tried
    began = fake_time.now
    for i in range(22):  # over twice the lower limit, two seconds running: the higher is back
        fake_time.now = began + (i >= 11)
        pacer.took(pacer.due(), fake_time.now)
        limiter.adaptive.succeeded(Ticket(fake_time.now, 1))
    assert paced_projects(limiter) == [P]
    (restored,) = limiter.quotas_for("gw", "api", P)
    assert restored.quota == user
    # Judged on the client's answers: 1 refused of 20 at the limit is noise, no pause.
    began = fake_time.now
    for i in range(20):
        fake_time.now = began + i * 0.02
        restored.took(restored.due(), fake_time.now)
        ticket = Ticket(fake_time.now, 1)
        if i < 19:
            limiter.adaptive.succeeded(ticket)
    limiter.adaptive.refused_under_quota(ticket)
    before = restored.due()
    assert not limiter.announced("gw", "api", user, started=ticket.started, project=P)
    assert restored.due() == before
