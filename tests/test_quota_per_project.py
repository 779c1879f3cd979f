"""Issue 19, outsider 19c: an announced quota per project, and a minute's sliding window.

A `user` policy may hold each project's token apart: refused for one project
while the client's requests for the others go through far above its limit,
it paces that project's requests only. A window announced per minute may
slide rather than roll over on the calendar: waited for as one.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from typing import TYPE_CHECKING

import orjson
import pytest

from vbs_async import RetryPolicy, TokenAuth, VBSClient
from vbs_async._adaptive import AdaptiveRate, Ticket
from vbs_async._announced import PHASE_PROBES, Quota
from vbs_async._limits import RequestLimiter
from vbs_async.testing import (
    GatewayQuota,
    MockTransport,
    SentRequest,
    SlidingWindow,
    parse_gateway,
    response,
)

from ._helpers import FakeClock, LoopClock, sharing_document
from ._throttle_sim import simulate

if TYPE_CHECKING:
    from vbs_async._responses import Response

PER_PROJECT = (
    "The throttling threshold has been reached: policy user over ratelimit,limit:2,time:1 second"
)
PAGES = 6
LATENCY_TURNS = 20


def per_project_gateway(limit: int, refused: list[float] | None = None) -> MockTransport:
    """Six pages of each project, at most `limit` admitted a second for each (sliding).

    Each answer lets the other requests in flight go first (without moving the
    clock): as over a network, the crawl's first pages of every project leave
    before any is answered.
    """
    admitted: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    async def answer(sent: SentRequest) -> Response:
        for _ in range(LATENCY_TURNS):
            await asyncio.sleep(0)
        project = sent.request.project_id or ""
        now = asyncio.get_running_loop().time()
        window = admitted[project]
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= limit:
            if refused is not None:
                refused.append(now)
            return response(429, {"error_code": "APIG.0308", "error_msg": PER_PROJECT})
        window.append(now)
        offset = sent.request.offset or 0
        count = 100 * PAGES - 50
        page = [
            sharing_document(f"{project}-{i}", project)
            for i in range(offset, min(count, offset + 100))
        ]
        return response(200, {"shared": page, "count": count})

    return MockTransport(answer)


async def test_a_quota_per_project_paces_each_refused_project_under_its_own_copy(monkeypatch):
    # Outsider 19c, perproject.py: 2/s per project (sliding), 20 projects of 6 pages. The
    # client's first second got 32 requests of 16 projects through; after two refusals
    # the 2/s paced every request of the client: 45.6 s against their gateway (7.0 s with
    # nothing announced). On this clock: 44.6 s before, 7.6 s now: each refused project
    # paced alone at 2/s, 20 projects of 6 pages, 16 at once, take about two rounds.
    clock = LoopClock(monkeypatch)
    projects = [f"{i:032x}" for i in range(1, 21)]
    retry = RetryPolicy(wait_initial=0.01, wait_max=0.02, wait_jitter=0.01)
    refused: list[float] = []
    gateway = per_project_gateway(2, refused)
    async with VBSClient(
        "https://vbs.example", auth=TokenAuth("t"), transport=gateway, retry=retry
    ) as client:
        results = [result async for result in client.crawl(projects)]
        assert [str(quota) for _, quota in client.limiter.quotas] == ["2 per 1 s"]
    assert all(result.ok for result in results)
    assert sum(len(result.sharings) for result in results) == 20 * (100 * PAGES - 50)
    assert clock.moved < 12.0
    # Each project's copy pauses as it is learned (its window spent just now): 54 refused
    # without it (each project's first request under its copy refused again), now 34.
    assert len(refused) < 40


async def test_a_shared_quota_whose_burst_passed_for_one_per_project_paces_every_request_again(
    monkeypatch,
):
    # A 10/s bucket over every project with a burst of 60 lets 60 through at once: more than
    # four times the limit, evidence of a quota per project. Copies refused for three projects
    # within a second while the client's total stays at the limit make it shared again:
    # 26 refused (12 paced as one quota from the start; 99 when only refusals under copies
    # were counted, and over the last 10 s of answers, which held the burst).
    clock = LoopClock(monkeypatch)
    bucket = GatewayQuota(10, 60)

    async def answer(sent: SentRequest) -> Response:
        for _ in range(LATENCY_TURNS):
            await asyncio.sleep(0)
        project = sent.request.project_id or ""
        if not bucket.admit(asyncio.get_running_loop().time()):
            return response(429, orjson.loads(bucket.refusal("r")[0]))
        offset = sent.request.offset or 0
        page = [
            sharing_document(f"{project}-{i}", project)
            for i in range(offset, min(550, offset + 100))
        ]
        return response(200, {"shared": page, "count": 550})

    retry = RetryPolicy(wait_initial=0.01, wait_max=0.02, wait_jitter=0.01)
    async with VBSClient(
        "https://vbs.example", auth=TokenAuth("t"), transport=MockTransport(answer), retry=retry
    ) as client:
        results = [result async for result in client.crawl([f"{i:032x}" for i in range(1, 41)])]
        (pacer,) = client.limiter.quotas_for("vbs.example:443", "", "f" * 32)
        assert pacer.project is None  # every project's requests, those never refused too
    assert all(result.ok for result in results)
    assert bucket.throttled < 40
    assert clock.moved < (240 - 60) / 10 * 1.1


def got_through(limiter: RequestLimiter, clock: FakeClock, starts: list[float]) -> None:
    for started in starts:
        clock.now = max(clock.now, started)
        limiter.adaptive.succeeded(Ticket(started, 1))


P, Q, R, S = "p" * 32, "q" * 32, "r" * 32, "s" * 32


def paced(limiter: RequestLimiter) -> list[str]:
    return [project for project in (P, Q, R, S) if limiter.quotas_for("gw", "api", project)]


def test_a_user_quota_plainly_exceeded_across_projects_holds_for_each_refused_project_apart():
    clock = FakeClock()
    limiter = RequestLimiter(16, None, clock=clock, wall_offset=0.0)
    user = Quota(2, 1.0, "user")
    got_through(limiter, clock, [1000.0 + i / 100 for i in range(32)])  # 32 in 0.32 s
    assert limiter.announced("gw", "api", user, started=clock.now, project=P)
    assert paced(limiter) == [P]
    clock.now += 0.1
    assert not limiter.announced("gw", "api", user, started=clock.now, project=Q)
    assert paced(limiter) == [P, Q]  # not R, S: never refused
    (for_p,) = limiter.quotas_for("gw", "api", P)
    (for_q,) = limiter.quotas_for("gw", "api", Q)
    assert for_p is not for_q
    assert for_p.rate() == pytest.approx(2 * 0.98)


def test_a_user_quota_not_exceeded_counts_every_project_as_before():
    # Twice its limit through in a period: a calendar window straddled, no evidence.
    clock = FakeClock()
    limiter = RequestLimiter(16, None, clock=clock, wall_offset=0.0)
    user = Quota(2, 1.0, "user")
    got_through(limiter, clock, [1000.0, 1000.2, 1000.9, 1001.1])
    limiter.announced("gw", "api", user, started=clock.now, project=P)
    assert paced(limiter) == [P, Q, R, S]


def test_a_shared_quota_that_dropped_is_not_taken_apart_by_what_got_through_before():
    # 50 a second announced, then 10: the last second's 50 through were the old quota's.
    # Before: read as a quota per project (50 > 4 x 10), each project was paced under its
    # own 10/s and the gateway's benchmark crawl ran at 0.27 of the quota (64.8 s, not 18).
    clock = FakeClock()
    limiter = RequestLimiter(16, None, clock=clock, wall_offset=0.0)
    high, low = Quota(50, 1.0, "user"), Quota(10, 1.0, "user")
    limiter.announced("gw", "api", high, started=clock.now, project=P)
    got_through(limiter, clock, [clock.now + 0.1 + i / 50 for i in range(50)])
    clock.now += 0.1
    limiter.announced("gw", "api", low, started=clock.now, project=Q)
    assert paced(limiter) == [P, Q, R, S]
    (shared,) = limiter.quotas_for("gw", "api", S)
    assert shared.quota == low


def test_copies_refused_for_several_projects_with_the_total_at_the_limit_pace_every_request():
    # Taken apart on a burst's evidence (a bucket's saved-up burst), then refused under the
    # copies for three projects while the client's total stayed at the limit: shared.
    clock = FakeClock()
    limiter = RequestLimiter(16, None, clock=clock, wall_offset=0.0)
    user = Quota(2, 1.0, "user")
    got_through(limiter, clock, [1000.0 + i / 100 for i in range(32)])
    for project in (P, Q, R):
        limiter.announced("gw", "api", user, started=clock.now, project=project)
    clock.now = 1020.0  # the burst out of the client's log of answers
    got_through(limiter, clock, [1020.0, 1020.5])
    clock.now = 1021.0
    for project in (P, Q, R):
        assert len(limiter.quotas_for("gw", "api", project)) == 1  # its own copy
        limiter.announced("gw", "api", user, started=clock.now - 0.1, project=project)
    assert paced(limiter) == [P, Q, R, S]
    (shared,) = limiter.quotas_for("gw", "api", S)
    assert limiter.quotas_for("gw", "api", P) == [shared]
    # and it stays so: another burst's evidence does not take it apart again
    got_through(limiter, clock, [1021.0 + i / 100 for i in range(32)])
    limiter.announced("gw", "api", user, started=clock.now, project=P)
    assert paced(limiter) == [P, Q, R, S]


# -- a minute's window that slides ---------------------------------------------------------


@pytest.mark.parametrize(("calendar", "before"), [(20.0, 100.0), (45.0, 75.0)])
def test_a_minute_quota_on_a_sliding_window_reopens_with_it_not_at_the_next_calendar_minute(
    calendar, before
):
    # Outsider 19c, minute_sliding.py: 30 a minute over a 60-s sliding window, 45 projects
    # of one request, begun at wall-clock second :20. The first 30 go through; at the
    # calendar minute (t = 40) a burst of 15 is refused, then it blocked until the next
    # calendar minute: 100.2 s against their gateway, 100.0 s (75.0 begun at :45) here.
    # The window reopens at 60 s, as the oldest start of the client's log leaves it.
    run = simulate(
        SlidingWindow(30, 60.0),
        seconds=400,
        requests=45,
        listings=45,
        max_concurrency=16,
        calendar=calendar,
    )
    assert run.completed == 45
    assert run.ended < 62.0 < before
    # One burst refused at the calendar minute; after it, only the probes of where the
    # window rolls over (`PHASE_PROBED`): one at a time, 5 s apart.
    minute = 60.0 - calendar
    later = [started for started, ok in run.starts if not ok and started > minute + 1]
    assert all(b - a >= 60 / PHASE_PROBES - 0.01 for a, b in itertools.pairwise(later))


def test_a_minute_quota_refused_on_a_fresh_calendar_window_waits_for_its_oldest_start():
    clock = FakeClock()
    answers = AdaptiveRate(clock=clock)
    limiter = RequestLimiter(16, None, clock=clock, wall_offset=0.0)
    limiter.adaptive = answers
    got_through(limiter, clock, [1020.5 + i / 10 for i in range(30)])  # 30 from :20.5
    clock.now = 1023.6
    minute = Quota(30, 60.0, "user", "1 minute")
    limiter.announced("gw", "api", minute, started=1023.5)  # the 31st
    (quota,) = limiter.quotas_for("gw", "api")
    assert quota.reopens() == 1080.0  # the calendar minute (probes of it aside)
    clock.now = 1080.0
    quota.took(quota.due(), 1080.0)
    answers.refused_under_quota(Ticket(1080.0, 1))
    clock.now = 1080.2
    limiter.announced("gw", "api", minute, started=1080.0)
    assert quota.sliding
    # The oldest success (1020.5) leaves the window: not the next calendar minute (1140).
    assert quota.reopens() == pytest.approx(1020.5 + 60.0 * 1.01)


def test_the_emulator_models_a_sliding_window():
    model = parse_gateway("sliding:3/60,announce=on")
    assert isinstance(model, SlidingWindow)
    assert [model.admit(t) for t in (0.0, 10.0, 20.0, 59.0, 60.5, 70.5)] == [
        True,
        True,
        True,
        False,  # three admitted in the 60 s before it
        True,  # the one at 0 s left the window
        True,
    ]
    body, _ = model.refusal("r", 61.0)
    assert b"limit:3,time:1 minute" in body
