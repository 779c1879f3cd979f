"""What `RetryPolicy.timeout` counts: the server's time, not the client's own queue.

On a virtual clock (`on_virtual_clock`): the gateways below answer after set
latencies, and nothing depends on the machine's speed.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from typing import TYPE_CHECKING, Any

import pytest

from vbs_async import (
    RateLimitedError,
    RequestTimeoutError,
    RetryPolicy,
    TokenAuth,
    VBSClient,
    _retry,
)
from vbs_async.testing import MockTransport, SentRequest, response

from .test_retries import on_virtual_clock

if TYPE_CHECKING:
    from vbs_async._responses import Response

MINUTE_QUOTA = (
    "The throttling threshold has been reached: policy user over ratelimit,limit:{limit},"
    "time:1 {unit}"
)


class SlidingGateway:
    """At most `limit` requests accepted in any `period` seconds (a sliding window).

    Successes are answered after `ok_latency`, refusals after `refused_latency` (each
    a function of the request's number), the quota named in the 429 or not.
    """

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        ok_latency: Any,
        refused_latency: Any,
        announce: str | None,
    ) -> None:
        self.limit = limit
        self.period = period
        self.ok_latency = ok_latency
        self.refused_latency = refused_latency
        self.announce = announce
        self.accepted: list[float] = []
        self.served = 0
        self.refused = 0
        self.transport = MockTransport(self.answer)

    async def answer(self, _: SentRequest) -> Response:
        number = len(self.transport.sent)
        now = asyncio.get_running_loop().time()
        in_window = [t for t in self.accepted if t > now - self.period]
        if len(in_window) < self.limit:
            self.accepted.append(now)
            await asyncio.sleep(self.ok_latency(number))
            self.served += 1
            return response(200, {"shared": []})
        await asyncio.sleep(self.refused_latency(number))
        self.refused += 1
        body = {"error_code": "APIG.0308", "error_msg": self.announce} if self.announce else None
        return response(429, body)


async def outcomes(gateway: SlidingGateway, calls: int, **options: Any) -> list[Any]:
    """What `calls` calls of `list_sharings`, one per project, all at once, return or raise."""
    async with VBSClient(
        "https://vbs.example", auth=TokenAuth("t"), transport=gateway.transport, **options
    ) as client:
        async with asyncio.timeout(3_600):  # were a deadline not kept: fail, not hang
            return await asyncio.gather(
                *(client.list_sharings(f"p{n}") for n in range(calls)), return_exceptions=True
            )


@pytest.mark.parametrize(
    "announce", [MINUTE_QUOTA.format(limit=3, unit="second"), None], ids=["announced", "unnamed"]
)
def test_a_call_never_fails_while_the_gateway_serves_others_and_no_200_is_thrown_away(announce):
    # Outsider's deadline3.py: 3 a second over a sliding second, every answer 0.5 to 1 s,
    # timeout=3, 60 projects at once: 1 of 60 failed announced (its retry waited 3.8 s in
    # the client, then its 200 came after the deadline), 10 to 13 unannounced. Every
    # call's server time stays under the deadline; only the queue (others being served)
    # was long.
    gateway = SlidingGateway(
        3,
        1.0,
        ok_latency=lambda n: 0.5 + (n * 7 % 6) / 10,
        refused_latency=lambda n: 0.5 + (n * 5 % 6) / 10,
        announce=announce,
    )
    results, _ = on_virtual_clock(lambda: outcomes(gateway, 60, retry=RetryPolicy(timeout=3)))
    failed = [r for r in results if isinstance(r, BaseException)]
    assert gateway.served == 60 - len(failed)  # every 200 the gateway sent reached its caller
    if announce is not None:
        assert failed == []  # paced under the quota, a call is refused once at most
    # Unnamed, a call refused three times in 0.5 to 1 s each has spent its deadline on
    # the wire and in back-off: the server's time, and the words say so.
    for error in failed:
        assert isinstance(error, RateLimitedError | RequestTimeoutError)
        assert sum(deadline_figures(str(error))) == pytest.approx(3.0, abs=0.03)


def deadline_figures(message: str) -> list[float]:
    """The seconds a deadline error says its deadline went to (and had left, if any)."""
    found = re.search(
        r"(?:([0-9.]+) s left after )?([0-9.]+) s on the wire, ([0-9.]+) s in back-off"
        r"(?:, ([0-9.]+) s queued while none of the client's requests got through)?",
        message,
    )
    assert found is not None, message
    return [float(figure) for figure in found.groups() if figure is not None]


def test_refusals_in_a_burst_that_others_got_through_do_not_charge_the_queue(monkeypatch):
    # Outsider's minute_sliding.py on a virtual clock: 30 a minute announced, counted over
    # a sliding 60 s; 45 calls at once, 30 served, 15 refused in the same burst (answers
    # of 0.05 to 0.3 s, interleaved). The client holds them to the calendar minute, 40 s
    # later: refused again (the window slides), and the window reopens 20.4 s after. The
    # 40 s queued counted, as if the gateway refused everything, so all 15 failed with
    # "in 20.4 s: past the call's deadline of 45s" with 44 s of it left; now they wait.
    monkeypatch.setattr(time, "time", lambda: 20_000 * 86_400 + 20.0)  # wall second :20
    monkeypatch.setattr(_retry.random, "uniform", lambda a, _: a)
    gateway = SlidingGateway(
        30,
        60.0,
        ok_latency=lambda n: 0.05 + (n * 7 % 26) / 100,
        refused_latency=lambda n: 0.05 + (n * 11 % 26) / 100,
        announce=MINUTE_QUOTA.format(limit=30, unit="minute"),
    )
    results, _ = on_virtual_clock(lambda: outcomes(gateway, 45, retry=RetryPolicy(timeout=45)))
    assert results == [[]] * 45
    assert gateway.served == 45


def _answer_after(latency: float, answers: list[Response | None]):
    """A transport answering each request after `latency` s with the next of `answers`.

    None is no answer at all (the request hangs); after the list, no answer either.
    """

    async def answer(_: SentRequest) -> Response:
        await asyncio.sleep(latency)
        number = len(transport.sent) - 1
        given = answers[number] if number < len(answers) else None
        if given is None:
            await asyncio.sleep(3_600)
            raise AssertionError("never answered")
        return given

    transport = MockTransport(answer)
    return transport


async def the_error(transport: MockTransport, policy: RetryPolicy) -> BaseException:
    async with VBSClient(
        "https://vbs.example", auth=TokenAuth("t"), transport=transport, retry=policy
    ) as client:
        try:
            async with asyncio.timeout(600):
                await client.list_sharings("p1")
        except Exception as error:  # noqa: BLE001 - what the caller sees
            return error
    raise AssertionError("the call succeeded")


def test_a_request_cut_on_the_wire_at_the_deadline_is_a_timeout_with_its_figures(monkeypatch):
    # Refused twice (1 s each on the wire), then a request that gets no answer before the
    # deadline: "still throttled" said the 429s decided, when the last request was cut
    # unanswered (its 200 may have been on its way).
    monkeypatch.setattr(_retry.random, "uniform", lambda a, _: a)
    transport = _answer_after(1.0, [response(429), response(429)])
    error, took = on_virtual_clock(lambda: the_error(transport, RetryPolicy(timeout=5)))
    assert took == pytest.approx(5.0)
    assert isinstance(error, RequestTimeoutError)
    assert str(error) == (
        "the call did not finish within its deadline of 5s, retries included (4.70 s on the "
        "wire, 0.30 s in back-off, 2 refused with 429, its request in flight unanswered) "
        "(RetryPolicy.timeout; --deadline on the command) (project p1, offset 0)"
    )


def test_a_429_wait_past_the_deadline_says_how_much_was_left_and_where_it_went(monkeypatch):
    # "still throttled at the call's deadline of 5s" was said 1 s into the call: the next
    # wait (Retry-After: 30) would pass it. The words now say so, with the figures.
    monkeypatch.setattr(_retry.random, "uniform", lambda a, _: a)
    refused = response(429, headers={"Retry-After": "30"})
    transport = _answer_after(1.0, [refused])
    error, took = on_virtual_clock(
        lambda: the_error(transport, RetryPolicy(timeout=5, wait_max=60))
    )
    assert took == pytest.approx(1.0)
    assert isinstance(error, RateLimitedError)
    assert error.message == (
        "(no body) (its next wait, 30.00 s, would pass the deadline: 4.00 s left "
        "after 1.00 s on the wire, 0.00 s in back-off) (still throttled at the call's "
        "deadline of 5s: RetryPolicy.timeout; --deadline on the command)"
    )


def test_a_retry_queued_while_the_gateway_refuses_everything_says_how_long_it_waited():
    # The first call's retry never gets a turn (one start every 10 s) while the gateway
    # refuses everything: its deadline runs in the queue once nothing got through for a
    # deadline (5 s from the refusal), and the words say for how long.
    transport = _answer_after(0.0, [response(429)] * 10)

    async def call() -> BaseException:
        async with VBSClient(
            "https://vbs.example",
            auth=TokenAuth("t"),
            transport=transport,
            retry=RetryPolicy(timeout=5.0, wait_initial=1.0, wait_jitter=0.0),
            rate_limit=0.1,
        ) as client:
            try:
                await client.list_sharings("p1")
            except RateLimitedError as error:
                return error
        raise AssertionError("the call succeeded")

    error, took = on_virtual_clock(call)
    assert took == pytest.approx(9.0)  # 1 s of back-off, 4 s queued from 5 s on
    assert len(transport.sent) == 1
    assert isinstance(error, RateLimitedError)
    assert error.message.endswith(
        " (its retry queued while the gateway let none of the client's requests through: "
        "0.00 s on the wire, "
        "1.00 s in back-off, 4.00 s queued while none of the client's requests got through) "
        "(still throttled at the "
        "call's deadline of 5.0s: RetryPolicy.timeout; --deadline on the command)"
    )


class CalendarWindow:
    """At most `limit` requests accepted per window of `period` seconds on the calendar.

    The calendar is `time.time()` (which the test makes follow the virtual clock) less
    `behind`: the gateway's clock and the client's are never quite one. Successes are
    answered after 40 ms, refusals at once, the quota named or not.
    """

    def __init__(
        self, limit: int, period: float, *, announce: str | None, behind: float = 0.0
    ) -> None:
        self.limit = limit
        self.behind = behind
        self.period = period
        self.announce = announce
        self.counts: dict[int, int] = {}
        self.transport = MockTransport(self.answer)

    async def answer(self, _: SentRequest) -> Response:
        window = int((time.time() - self.behind) // self.period)
        if self.counts.get(window, 0) < self.limit:
            self.counts[window] = self.counts.get(window, 0) + 1
            await asyncio.sleep(0.04)
            return response(200, {"shared": []})
        body = {"error_code": "APIG.0308", "error_msg": self.announce} if self.announce else None
        return response(429, body)


class JitteredCalendarWindow(CalendarWindow):
    """A `CalendarWindow` whose requests arrive 20 to 30 ms after they leave (a seeded
    draw), answered 40 ms after they arrive, or `refused_after` for a refusal.

    Clients that send at the same instant then arrive in no set order, as on a network.
    """

    def __init__(
        self, limit: int, period: float, *, announce: str, seed: int, refused_after: float
    ) -> None:
        super().__init__(limit, period, announce=announce)
        self.random = random.Random(seed)
        self.refused_after = refused_after

    async def answer(self, _: SentRequest) -> Response:
        await asyncio.sleep(0.02 + self.random.uniform(0.0, 0.01))
        window = int(time.time() // self.period)
        admitted = self.counts.get(window, 0) < self.limit
        self.counts[window] = self.counts.get(window, 0) + admitted
        await asyncio.sleep(0.04 if admitted else self.refused_after)
        if admitted:
            return response(200, {"shared": []})
        return response(429, {"error_code": "APIG.0308", "error_msg": self.announce})


def crawl_from(
    wall: float, gateway: CalendarWindow, projects: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Any], float]:
    """A crawl of `projects` projects of a page each through `gateway`, library defaults,
    on a virtual clock, the calendar (`time.time()`) at `wall` as it begins: (results,
    seconds)."""

    async def crawl() -> list[Any]:
        loop = asyncio.get_running_loop()
        offset = wall - loop.time()
        monkeypatch.setattr(time, "time", lambda: loop.time() + offset)
        async with VBSClient(
            "https://vbs.example", auth=TokenAuth("t"), transport=gateway.transport
        ) as client:
            async with asyncio.timeout(3_600):  # were a deadline not kept: fail, not hang
                return [r async for r in client.crawl([f"p{n}" for n in range(projects)])]

    return on_virtual_clock(crawl)


@pytest.mark.parametrize("behind", [0.0, 0.2])
@pytest.mark.parametrize(
    "announce", [MINUTE_QUOTA.format(limit=20, unit="minute"), None], ids=["announced", "unnamed"]
)
def test_a_crawl_behind_a_quota_per_minute_finishes_with_the_default_deadline(
    announce, behind, monkeypatch
):
    # An outsider's crawl against the emulator: 20 a minute, 50 projects of a page each,
    # library defaults (a deadline of 60 s), begun 0.3 s after a calendar minute. A call
    # refused as a minute's window was spent waits the rest of the minute: 10 and 8 of
    # the 50 failed ("lets no request through before ..., past the call's deadline";
    # "the gateway refused every request while this call waited for its turn"). A
    # quota per minute is the gateway's commonest: normal weather, waited out.
    gateway = CalendarWindow(20, 60.0, announce=announce, behind=behind)
    results, took = crawl_from(20_000 * 86_400 + 0.3, gateway, 50, monkeypatch)
    failed = [str(r.error) for r in results if r.error is not None]
    assert failed == []
    assert len(results) == 50
    assert took < 3 * 60  # three windows of 20


def test_calls_queued_behind_a_quota_spent_for_the_hour_fail_at_once_not_one_by_one(
    monkeypatch,
):
    # An outsider's gateway: 20 a second in truth, but its 429s name 20 an hour, taken at
    # its word. The refused calls failed at once ("lets no request through before ...");
    # the ones queued behind the quota each waited out its deadline in the queue first,
    # 16 a minute: 0 of 100 projects done and 48 failed after 3 minutes. A call about to
    # queue behind a window that opens past its deadline fails at once too.
    gateway = CalendarWindow(20, 3_600.0, announce=MINUTE_QUOTA.format(limit=20, unit="hour"))
    results, took = crawl_from(20_000 * 86_400 + 1.0, gateway, 100, monkeypatch)  # 1 s in
    failed = [r.error for r in results if r.error is not None]
    assert len(results) == 100
    assert len(failed) == 80
    assert all(isinstance(error, RateLimitedError) for error in failed)
    assert all("quota (20 per 1 hour) lets no request through before" in str(e) for e in failed)
    assert took < 5  # not a deadline (and its grace) per round of projects
    assert len(gateway.transport.sent) <= 20 + 16  # the queued ones sent nothing


def closed_until(reopens: float) -> MockTransport:
    """A gateway refusing every request, its 429 naming 20 a minute, until the calendar
    (`time.time()`) reads `reopens`; then answering each at once."""

    def answer(_: SentRequest) -> Response:
        if time.time() >= reopens:
            return response(200, {"shared": []})
        message = MINUTE_QUOTA.format(limit=20, unit="minute")
        return response(429, {"error_code": "APIG.0308", "error_msg": message})

    return MockTransport(answer)


def calls_at(
    wall: float, transport: MockTransport, starts: list[float], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Any], list[float]]:
    """`list_sharings` of project p0, p1, ... begun `starts` seconds in, deadline 30 s, the
    calendar at `wall` as the first begins: what each returned or raised, and when it ended."""

    async def calls() -> tuple[list[Any], list[float]]:
        loop = asyncio.get_running_loop()
        began = loop.time()
        monkeypatch.setattr(time, "time", lambda: loop.time() - began + wall)
        ended: list[float] = []
        async with VBSClient(
            "https://vbs.example",
            auth=TokenAuth("t"),
            transport=transport,
            retry=RetryPolicy(timeout=30.0),
        ) as client:

            async def call(n: int, start: float) -> Any:
                await asyncio.sleep(start)
                try:
                    return await client.list_sharings(f"p{n}")
                except RateLimitedError as error:
                    return error
                finally:
                    ended.append(loop.time() - began)

            async with asyncio.timeout(600):  # were a deadline not kept: fail, not hang
                outcomes = await asyncio.gather(*(call(n, s) for n, s in enumerate(starts)))
        return outcomes, ended

    return on_virtual_clock(calls)[0]


def test_a_minute_s_window_that_reopens_within_deadline_and_grace_is_waited_out(monkeypatch):
    # 20 s into a calendar minute, deadline 30 s: refused under 20 a minute, the window
    # reopens in 40 s, past the deadline's 30 but within it and its grace in the queue
    # (30 s more while the gateway lets nothing through): waited out, not given up.
    minute = 20_000 * 86_400
    (outcome,), (ended,) = calls_at(minute + 20, closed_until(minute + 60), [0.0], monkeypatch)
    assert outcome == []
    assert 40 <= ended < 42


def test_a_call_begun_late_in_a_blackout_has_less_grace_left(monkeypatch):
    # Refused from the minute's first second, deadline 30 s: the first call's window
    # reopens (60.6 s, its margin in) past its deadline and grace (60 s): it ends at
    # once. A second call begun 20 s later has 10 s of the grace left: 40 s in all, and
    # the window 40.6 s away: it ends at once too, not waiting to its deadline.
    minute = 20_000 * 86_400
    transport = closed_until(minute + 60)
    (first, second), ended = calls_at(minute, transport, [0.0, 20.0], monkeypatch)
    assert isinstance(first, RateLimitedError)
    assert isinstance(second, RateLimitedError)
    assert "lets no request through before" in str(second)
    assert max(ended) < 21  # neither waited


class JitteredSlidingWindow(JitteredCalendarWindow):
    """A `JitteredCalendarWindow` whose window slides: at most `limit` admitted in any
    `period` seconds before a request arrives, nothing on the calendar."""

    def __init__(self, limit: int, period: float, *, announce: str, seed: int) -> None:
        super().__init__(limit, period, announce=announce, seed=seed, refused_after=0.02)
        self.admitted: list[float] = []

    async def answer(self, _: SentRequest) -> Response:
        await asyncio.sleep(0.02 + self.random.uniform(0.0, 0.01))
        now = asyncio.get_running_loop().time()
        admitted = sum(1 for at in self.admitted if at > now - self.period) < self.limit
        if admitted:
            self.admitted.append(now)
        await asyncio.sleep(0.04 if admitted else self.refused_after)
        if admitted:
            return response(200, {"shared": []})
        return response(429, {"error_code": "APIG.0308", "error_msg": self.announce})


def crawls_sharing(
    wall: float,
    gateway: CalendarWindow,
    later: float,
    monkeypatch: pytest.MonkeyPatch,
    crawls: int = 2,
    *,
    projects: int = 40,
) -> tuple[list[list[Any]], float]:
    """`crawls` crawls of `projects` projects (processes' worth: a client each) through
    one `gateway`, library defaults, each begun `later` seconds after the one before, on
    a virtual clock, the calendar at `wall` as the first begins: (their results, seconds)."""

    async def crawl(name: str, delay: float) -> list[Any]:
        await asyncio.sleep(delay)
        async with VBSClient(
            "https://vbs.example", auth=TokenAuth("t"), transport=gateway.transport
        ) as client:
            return [r async for r in client.crawl([f"{name}{n}" for n in range(projects)])]

    async def both() -> list[list[Any]]:
        loop = asyncio.get_running_loop()
        offset = wall - loop.time()
        monkeypatch.setattr(time, "time", lambda: loop.time() + offset)
        async with asyncio.timeout(3_600):  # were a deadline not kept: fail, not hang
            return list(await asyncio.gather(*(crawl(f"{n}-", n * later) for n in range(crawls))))

    return on_virtual_clock(both)


@pytest.mark.parametrize(("second", "later"), [(10.0, 3.0), (59.7, 0.0), (30.0, 15.0)])
def test_two_crawls_sharing_a_minute_s_quota_both_finish_with_the_default_deadline(
    second, later, monkeypatch
):
    # Two processes crawling 40 projects each behind one quota of 20 a minute, named (an
    # outsider's gateway, in real time): one finished, the other's calls failed, 29 to
    # 33 of its 40 ("lets no request through before ..., past the call's deadline"). It
    # was refused as each minute rolled over, after the other had spent it whole: it
    # read a refusal at the rollover, with some of its own through, as a sliding window
    # (waiting for its oldest start to leave it, 0.6 s past each rollover) or as a
    # penalty box (a look half a minute on, then 0.3 s past the next rollover).
    random.seed(0)
    gateway = CalendarWindow(20, 60.0, announce=MINUTE_QUOTA.format(limit=20, unit="minute"))
    crawls, took = crawls_sharing(20_000 * 86_400 + second, gateway, later, monkeypatch)
    failed = [str(r.error) for results in crawls for r in results if r.error is not None]
    assert failed == []
    assert [len(results) for results in crawls] == [40, 40]
    # The 80 requests hold four windows: the first, begun at `second`, and three more.
    assert took < (60 - second) + 3 * 60 + 5


@pytest.mark.parametrize(
    ("second", "later", "seed", "refused_after"),
    [(59.7, 0.3, 2, 0.02), (55.0, 3.0, 1, 0.02), (59.7, 0.0, 3, 0.0), (5.0, 3.0, 4, 0.0)],
)
def test_three_crawls_sharing_a_minute_s_quota_all_finish_with_the_default_deadline(
    second, later, seed, refused_after, monkeypatch
):
    # Three processes of 40 projects behind 20 a minute: each rollover is a race, won by
    # whichever requests arrive first. A client that lost one (read as sliding, it came
    # 0.3 s late to the next; refusals answered before its successes; a blackout's look
    # on steps from its first refusal, a second after each rollover) failed every call
    # it had queued, the grace spent: on 48 shapes, 35 with failed calls (570 calls),
    # then 12 (168) once two finished.
    random.seed(seed)
    gateway = JitteredCalendarWindow(
        20,
        60.0,
        announce=MINUTE_QUOTA.format(limit=20, unit="minute"),
        seed=seed,
        refused_after=refused_after,
    )
    crawls, took = crawls_sharing(20_000 * 86_400 + second, gateway, later, monkeypatch, 3)
    failed = [str(r.error) for results in crawls for r in results if r.error is not None]
    assert failed == []
    assert [len(results) for results in crawls] == [40, 40, 40]
    # The 120 requests hold six windows: the first, begun at `second`, and five more.
    assert took < (60 - second) + 5 * 60 + 5


@pytest.mark.parametrize(
    ("second", "later", "seed"), [(5.0, 0.0, 2), (5.0, 2.0, 1), (20.0, 0.0, 3), (20.0, 7.0, 5)]
)
def test_three_crawls_sharing_a_sliding_minute_find_the_room_others_left(
    second, later, seed, monkeypatch
):
    # Three processes of 20 projects behind 20 a sliding minute: room comes free as each
    # one's starts leave the window, at no rollover. Refused in a burst as its calendar
    # rolled over, a client set a look half a minute on, and the burst's next refusal
    # (sent with the first) moved it to the next rollover: a whole minute waited, with
    # room left by the others (180 s for the three windows these shapes need); then, the
    # look kept, half a minute waited (150 s).
    random.seed(seed)
    gateway = JitteredSlidingWindow(
        20, 60.0, announce=MINUTE_QUOTA.format(limit=20, unit="minute"), seed=seed
    )
    crawls, took = crawls_sharing(
        20_000 * 86_400 + second, gateway, later, monkeypatch, 3, projects=20
    )
    assert [r.error for results in crawls for r in results if r.error is not None] == []
    # The 60 requests hold three windows, the last begun two minutes after the first:
    # room is found as it comes free (its own starts leaving the window among the
    # others'), not half a minute on (150 s), nor at the next rollover (180 s).
    assert took < 2 * 60 + 5


def test_calls_refused_behind_a_quota_spent_for_the_hour_fail_at_once_with_others_out(
    monkeypatch,
):
    # An outsider's gateway, 20 an hour named, 20 projects of 2 pages: the refusals came
    # back while the burst's successes were still out, and each refused call waited a
    # window more than it could (an hour, for the successes that might give the time
    # back), then its deadline in the queue: 15 of 16 failed after 2 minutes, not at once.
    random.seed(0)
    gateway = JitteredCalendarWindow(
        20,
        3_600.0,
        announce=MINUTE_QUOTA.format(limit=20, unit="hour"),
        seed=0,
        refused_after=0.02,
    )
    results, took = crawl_from(20_000 * 86_400 + 1.0, gateway, 40, monkeypatch)
    failed = [r.error for r in results if r.error is not None]
    assert len(failed) == 20
    assert all("quota (20 per 1 hour) lets no request through before" in str(e) for e in failed)
    # Where the gateway's hour rolls over is not looked for: the words say so (an outsider's
    # rolled over 25 s on, where the message named the calendar's hour, 47 minutes on).
    assert all("UTC (its window taken to roll over on the calendar), in" in str(e) for e in failed)
    assert took < 5
