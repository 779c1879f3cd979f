"""A crawl against a gateway model, simulated on a fake clock: the learned rate's test bench.

Requests start as `RequestLimiter` paces them (the quotas the gateway
announced in its refusals, the learned `AdaptiveRate` and its window in flight,
and `max_concurrency`), reach the gateway model half a latency later, and are
answered half a latency after that; a refused request waits its back-off
(`RetryPolicy.throttle_backoff`, as the session does) and queues again. Nothing
sleeps: events are taken in time order from a heap, so a 30-second crawl
runs in milliseconds, the same on any machine.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from typing import TYPE_CHECKING

import attrs
import orjson

from vbs_async import RetryPolicy
from vbs_async._adaptive import AdaptiveRate, Ticket
from vbs_async._announced import parse_quota
from vbs_async._limits import RequestLimiter
from vbs_async.testing import FixedWindow, GatewayQuota, Sporadic
from vbs_async.testing._quota import _inner_models

if TYPE_CHECKING:
    from vbs_async.testing import GatewayModel

_NAP = 0.25  # as the pacer: a long wait looks again this often


class DrawnAsTheOutsiderDrew(Sporadic):
    """`Sporadic`, its refusals drawn as two outsiders' gateways drew them (asked before the
    bucket, from `random.Random(seed)`, a new sequence per seed): the test's sequence 16
    refuses a third and more for seconds, from 20 %."""

    def __init__(
        self, share: float, seed: int, *, limit: int = 1000, announce: bool = False
    ) -> None:
        super().__init__(share, limit=limit, announce=announce)
        self._random = random.Random(seed)


class SharedWithOthers(GatewayQuota):
    """A 50/s bucket (burst 10) named in every 429, which another client of the account sends
    `others` requests a second to, evenly (an OTC `user` policy counts every client of the
    account): each of theirs takes a token if one is there, before the client's next."""

    def __init__(self, others: float) -> None:
        super().__init__(50, 10)
        self.others = others
        self.others_sent = self.others_served = 0
        self._next_other = 0.0

    def _admit(self, now: float) -> bool:
        while self._next_other <= now:
            self.others_sent += 1
            self.others_served += super()._admit(self._next_other)
            self._next_other += 1 / self.others
        return super()._admit(now)


@attrs.define
class Simulated:
    """What a simulated crawl did.

    Attributes:
        starts: (start time, answered ok) of every request sent.
        controller: The learned rate at the end.
        completed: Requests that succeeded.
        ended: When the last request was answered (or the time ran out).
        limiter: The limits, the announced quotas among them.
        first_refusal: When the first refusal reached the client, or None.
    """

    starts: list[tuple[float, bool]]
    controller: AdaptiveRate
    completed: int
    ended: float
    limiter: RequestLimiter
    first_refusal: float | None = None

    def sent_between(self, begin: float, end: float) -> int:
        return sum(1 for started, _ in self.starts if begin <= started < end)

    def succeeded_between(self, begin: float, end: float) -> int:
        return sum(1 for started, ok in self.starts if ok and begin <= started < end)

    @property
    def refused(self) -> int:
        return sum(1 for _, ok in self.starts if not ok)

    @property
    def refused_after_the_first(self) -> int:
        """Refusals of requests sent after the first refusal reached the client."""
        first = self.first_refusal
        return sum(
            1 for started, ok in self.starts if not ok and first is not None and started > first
        )

    @property
    def sent_after_the_first(self) -> int:
        """Requests sent after the first refusal reached the client."""
        first = self.first_refusal
        return sum(1 for started, _ in self.starts if first is not None and started > first)


def simulate(  # noqa: C901, PLR0915 - one event loop, kept in one place to read
    gateway: GatewayModel,
    *,
    seconds: float = 30.0,
    requests: int | None = None,
    latency: float = 0.04,
    max_concurrency: int = 32,
    retry: RetryPolicy | None = None,
    seed: int = 0,
    listings: int | None = None,
    network: float | None = None,
    calendar: float = 0.0,
) -> Simulated:
    """Run a crawl of `requests` (None: endless demand) for at most `seconds`.

    `listings`: as a crawl's projects listed at once (`max_projects`), each
    waiting for its page's answer (or its back-off) before its next request:
    at most that many requests in flight or backing off. None: only
    `max_concurrency` bounds the requests in flight.

    `network`: the round trip to the gateway, which answers a refusal at once
    and a request it admits after the backend's `latency` (as the emulator
    does, whose latency is the backend's). None: half of `latency` each way,
    refusals too.

    `calendar`: the wall clock when the crawl begins, in seconds past a
    calendar second (the gateway's fixed windows and the client's reckoning of
    them roll over at its whole seconds); 0: the crawl begins as one rolls over.

    A refusal that names its quota (`limit:N,time:K unit`) is learned as the
    session learns it.
    """
    policy = retry or RetryPolicy()
    rng = random.Random(seed)
    now = 0.0
    _align_calendars(gateway, calendar)
    limiter = RequestLimiter(max_concurrency, None, clock=lambda: now, wall_offset=calendar)
    controller = limiter.adaptive
    first_refusal: float | None = None
    order = itertools.count()
    events: list[tuple[float, int, str, object]] = []
    fresh = math.inf if requests is None else requests
    retries: list[int] = []  # throttles so far of each request ready to go again
    in_flight = 0
    backing_off = 0
    chains = math.inf if listings is None else listings
    slot = started_last = -math.inf
    wake_pending = False
    starts: list[tuple[float, bool]] = []
    completed = 0
    ended = seconds

    def push(at: float, kind: str, data: object = None) -> None:
        heapq.heappush(events, (at, next(order), kind, data))

    def start_what_may() -> None:
        nonlocal fresh, in_flight, backing_off, slot, started_last, wake_pending
        while (retries or fresh > 0) and in_flight < min(max_concurrency, controller.window):
            rate = controller.rate if controller.active else controller.window_pace()
            interval = 1 / rate if rate < math.inf else 0.0
            due = max(slot, started_last - interval) + interval
            quotas = [(quota, quota.due()) for quota in limiter.quotas_for("gateway", "api")]
            due = max([due, controller.opens(), *(when for _, when in quotas)])
            if due > now:
                if not wake_pending:
                    wake_pending = True
                    push(min(due, now + _NAP), "wake")
                return
            if not retries and in_flight + backing_off >= chains:
                return  # every listing waits for an answer
            throttles = retries.pop(0) if retries else 0
            if not throttles:
                fresh -= 1
            else:
                backing_off -= 1
            slot, started_last = max(now, due), now
            for quota, when in quotas:
                quota.took(when, now)
            controller.sent(now)
            in_flight += 1
            ticket = Ticket(now, in_flight)
            jitter = 0.9 + 0.2 * rng.random()
            leg = (latency if network is None else network) * jitter / 2
            push(now + leg, "arrive", (ticket, throttles, leg))

    start_what_may()
    while events:
        at, _, kind, data = heapq.heappop(events)
        if at > seconds:
            break
        now = at
        if kind == "wake":
            wake_pending = False
        elif kind == "arrive":
            ticket, throttles, leg = data  # type: ignore[misc]
            ok = gateway.admit(now)
            backend = latency * (0.9 + 0.2 * rng.random()) if ok and network is not None else 0.0
            push(now + leg + backend, "answer", (ticket, throttles, ok))
        elif kind == "answer":
            ticket, throttles, ok = data  # type: ignore[misc]
            if ok:
                gateway.release(now)
            in_flight -= 1
            starts.append((ticket.started, ok))
            if ok:
                controller.succeeded(ticket)
                completed += 1
                if requests is not None and completed == requests:
                    ended = now
                    break
            else:
                first_refusal = now if first_refusal is None else first_refusal
                _learn(gateway, limiter, ticket, now)
                backing_off += 1
                push(now + policy.throttle_backoff(throttles + 1, None), "ready", throttles + 1)
        elif kind == "ready":
            retries.append(data)  # type: ignore[arg-type]
        start_what_may()
    starts.sort()
    return Simulated(starts, controller, completed, ended, limiter, first_refusal)


def _learn(gateway: GatewayModel, limiter: RequestLimiter, ticket: Ticket, now: float) -> None:
    """What a refusal teaches, as the session learns it: the quota it names, else the rate."""
    body, _ = gateway.refusal("simulated", now)
    named = parse_quota(orjson.loads(body)["error_msg"])
    if named is not None:
        limiter.doubts("gateway", "api", named)
    if named is None or not limiter.believes("gateway", "api", named):
        limiter.adaptive.throttled(ticket)
    else:
        limiter.adaptive.refused_under_quota(ticket)
        limiter.announced("gateway", "api", named, ticket.started)


def _align_calendars(gateway: GatewayModel, calendar: float) -> None:
    """Fixed windows roll over on the client's calendar (the fake clock plus `calendar`)."""
    if isinstance(gateway, FixedWindow):
        gateway._wall_offset = calendar  # the model's calendar, for a fake clock
    for inner in _inner_models(gateway):
        _align_calendars(inner, calendar)
