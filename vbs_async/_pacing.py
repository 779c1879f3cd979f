"""Pacing starts: the pacer every paced limit waits in, and the user's `rate_limit`.

`Pacer` spaces starts at a pace that may change while they wait (an urgent
start first); `StartRateLimiter` is the user's explicit `rate_limit`, a hard
cap that no one-second window ever exceeds. The announced quota
(`_announced`) and the learned rate (`_adaptive`) pace through a `Pacer` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections import deque
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

_WINDOW: Final = 1.0
_NAP: Final = 0.25
"""A pacer waiting longer looks again this often (the pace may have risen)."""
# Starts are checked against a window this much longer than a second: between
# granting a start and aiohttp sending the request, other tasks may run for a
# few milliseconds, which could otherwise bring one start too many into a
# one-second window as the gateway sees it. It costs 1 % of the rate.
WINDOW_MARGIN: Final = 0.01


def loop_time() -> float:
    """The running event loop's clock: the one `asyncio.sleep` waits on (and tests can fake)."""
    return asyncio.get_running_loop().time()


class Pacer:
    """Spaces request starts `1 / rate` apart on an absolute timeline.

    A timer that fires late does not push every later start back; after a
    stall the timeline restarts from now rather than bursting.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._slot = -math.inf  # when the last start was due
        self._started = -math.inf  # when it left
        self._turn = _Turns()

    async def wait(
        self,
        rate: Callable[[], float] | float,
        *,
        not_before: Callable[[], float] | None = None,
        urgent: bool,
    ) -> float:
        """Wait for this start's turn at `rate` starts per second; return its start time.

        `rate` may be a function, asked again at least every `_NAP` seconds
        while waiting: a pace that rose while a request waited applies to it.
        `not_before` is asked, in turn, for the earliest start allowed besides the pace.
        An `urgent` start (a listing's next page) takes its turn before every
        start that is not.
        """
        current = rate if callable(rate) else (lambda: rate)
        async with self._turn.hold(urgent=urgent):
            while True:
                now = self._clock()
                slot = self.due(current(), not_before() if not_before else -math.inf)
                if slot <= now:
                    break
                await asyncio.sleep(min(slot - now, _NAP))
            started = self._clock()
            self.took(slot, started, current())
            return started

    def due(self, pace: float, not_before: float = -math.inf) -> float:
        """When the next start may leave at `pace` a second (and not before `not_before`)."""
        interval = 1 / pace  # every pace is above 0; an infinite one has no interval
        return max(max(self._slot, self._started - interval) + interval, not_before)

    def took(self, slot: float, started: float, pace: float) -> None:
        """A start due at `slot` left at `started`."""
        interval = 1 / pace
        # The time it was due, not the time the timer woke it: a timer that
        # fires late (a millisecond or two on a loaded machine) would otherwise
        # push every later start back, and cost that much of each interval
        # (a tenth of 50/s). Later than an interval (a stall, an idle spell),
        # the timeline restarts from now rather than bursting.
        self._slot = slot if started - slot < interval else started
        self._started = started


class _Turns:
    """One holder at a time, urgent waiters first, then in order of arrival.

    asyncio.Lock wakes in order of arrival only. Under a pace, a crawl's next
    pages queue behind the first pages of projects not yet begun, so each
    project's pages (sequential: one answer gives the next offset) come one
    queue's wait apart, and a large project begun late is a tail of single
    requests after everything else is done, far under the quota. Served
    first, a listing under way runs at its round-trip time and the projects
    not begun fill the rest of the pace.
    """

    def __init__(self) -> None:
        self._held = False
        self._order = itertools.count()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []

    @contextlib.asynccontextmanager
    async def hold(self, *, urgent: bool = False) -> AsyncIterator[None]:
        if self._held or self._waiters:
            waiter = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (0 if urgent else 1, next(self._order), waiter))
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._pass_on()  # the turn came with the cancellation: hand it on
                else:
                    waiter.cancel()  # skipped when its place comes up
                raise
        self._held = True
        try:
            yield
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)  # the turn goes to it: still held
                return
        self._held = False


class StartRateLimiter:
    """At most `rate` request starts a second in any window, and close to `rate`.

    The window is a second for a whole `rate` (no second holds more than it);
    for a fractional one, the time its next whole number of starts takes (1.9
    a second: 2 starts in any 1.05 s).

    aiolimiter's leaky bucket was the first choice, but with a capacity of one
    (needed so that no window holds a burst on top of the rate) each late
    wake-up is lost for good: on the reference machine a 200/s limit ran at
    about 173/s. A larger capacity keeps the rate but lets a window exceed it.
    Hence a pacer plus a log of the last `rate` starts.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = loop_time) -> None:
        self.rate = rate
        self._pacer = Pacer(clock)
        # A whole number of starts in any window of the time they take at `rate`: one
        # second for a whole rate. A fractional one took the whole part a second
        # (1.9/s ran at 1/s, 10.5/s at 10/s: an outsider's measure).
        self._most = max(1, math.ceil(rate))  # starts in any window
        self._window = self._most / rate if rate < self._most else _WINDOW
        self._recent: deque[float] = deque(maxlen=self._most)

    async def acquire(self, *, urgent: bool = False) -> None:
        """Wait for this request's turn to start (an `urgent` one first)."""
        self._recent.append(
            await self._pacer.wait(self.rate, not_before=self._window_opens, urgent=urgent)
        )

    def _window_opens(self) -> float:
        """When a start no longer makes the last window hold more than its starts."""
        if len(self._recent) < self._most:
            return -math.inf
        return self._recent[0] + self._window * (1 + WINDOW_MARGIN)
