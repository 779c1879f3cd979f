"""How many requests may be in flight and how fast they may start, across a client.

`RequestLimiter` holds three limits, each acquired for every request sent:

- a plain cap on requests in flight (`max_concurrency`);
- `AdaptiveRate`, the request rate learned from the gateway's throttling
  (botocore's adaptive retry mode: cut on a 429, probe back up on a cubic
  curve), inactive until the first 429;
- `StartRateLimiter`, the user's explicit `rate_limit`, a hard cap that no
  one-second window ever exceeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

_WINDOW: Final = 1.0
# Starts are checked against a window this much longer than a second: between
# granting a start and aiohttp sending the request, other tasks may run for a
# few milliseconds, which could otherwise bring one start too many into a
# one-second window as the gateway sees it. It costs 1 % of the rate.
_WINDOW_MARGIN: Final = 0.01

BETA: Final = 0.7
"""The share of the measured rate kept after a throttling answer (botocore's beta)."""
SCALE: Final = 0.4
"""The cubic curve's scale constant, in requests/s per s³ (botocore's C)."""
MIN_RATE: Final = 0.5
"""The learned rate never drops below this many requests per second."""
MEASURE_WINDOW: Final = 2.0
"""Seconds over which the rate that got through is measured: a gateway's bucket lets a
burst through after a quiet spell, which a one-second window would take for the rate."""
CUT_GRACE: Final = 0.5
"""Seconds after a cut during which further 429s do not cut again: the gateway's bucket
needs a moment to refill at the new rate, and its refusals meanwhile say nothing new."""


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
        self._next = -math.inf
        self._turn = asyncio.Lock()

    async def wait(self, rate: float, *, not_before: Callable[[], float] | None = None) -> float:
        """Wait for this start's turn at `rate` starts per second; return its start time.

        `not_before` is asked, in turn, for the earliest start allowed besides the pace.
        """
        async with self._turn:
            now = self._clock()
            slot = max(now, self._next, not_before() if not_before else -math.inf)
            if slot > now:
                await asyncio.sleep(slot - now)
            started = self._clock()
            interval = 1 / rate
            self._next = max(slot, started - interval) + interval
            return started


class StartRateLimiter:
    """At most `rate` request starts in any one-second window, and close to `rate`.

    aiolimiter's leaky bucket was the first choice, but with a capacity of one
    (needed so that no window holds a burst on top of the rate) each late
    wake-up is lost for good: on the reference machine a 200/s limit ran at
    about 173/s. A larger capacity keeps the rate but lets a window exceed it.
    Hence a pacer plus a log of the last `rate` starts.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = loop_time) -> None:
        self.rate = rate
        self._pacer = Pacer(clock)
        self._recent: deque[float] = deque(maxlen=max(1, math.floor(rate)))

    async def acquire(self) -> None:
        """Wait for this request's turn to start."""
        self._recent.append(await self._pacer.wait(self.rate, not_before=self._window_opens))

    def _window_opens(self) -> float:
        """When a start no longer makes the last second hold more than `rate`."""
        if len(self._recent) < (self._recent.maxlen or 0):
            return -math.inf
        return self._recent[0] + _WINDOW + _WINDOW_MARGIN


class AdaptiveRate:
    """The request rate a throttling gateway sustains, learned from its 429s.

    Anchored on botocore's adaptive retry mode (`botocore/retries/adaptive.py`
    and `throttling.py`, the CUBIC congestion window of RFC 8312 applied to a
    rate): until the first throttling answer there is no limit. On a 429 the
    rate becomes `BETA` times the rate measured over the last two seconds (the
    successful answers: what the gateway let through), and the rate at
    the cut is remembered as `w_max`. Afterwards the rate follows
    `SCALE * (t - K)**3 + w_max` with `K = cbrt(w_max * (1 - BETA) / SCALE)`:
    quickly back to just under `w_max`, flat there, then gently beyond to
    probe whether the quota grew. It never goes above `max_rate` (the user's
    `rate_limit`) nor above twice the measured rate.

    Only a 429 of a request started `CUT_GRACE` after the last cut cuts again:
    the answers to requests sent before, or while the gateway's bucket refills,
    tell nothing new (cutting on each of them drove the rate to a tenth of
    the quota in a benchmark). A 429 when nothing
    got through in the last second gives no basis for a rate: the caller
    backs off instead (botocore would fall to its 0.5/s floor and crawl back).

    Attributes:
        max_rate: The ceiling (the user's `rate_limit`), or None.
        active: Whether a 429 has been seen (before that, no pacing at all).
        rate: The rate in force, in starts per second (inf while inactive).
        throttled_answers: 429s seen.
        cuts: Times the rate was cut.
    """

    def __init__(
        self, max_rate: float | None = None, clock: Callable[[], float] = loop_time
    ) -> None:
        self.max_rate = max_rate
        self.active = False
        self.rate = math.inf
        self.throttled_answers = 0
        self.cuts = 0
        self._clock = clock
        self._pacer = Pacer(clock)
        self._successes: deque[float] = deque()
        self._w_max = 0.0
        self._k = 0.0
        self._cut_at = -math.inf
        self._first_success = -math.inf

    async def acquire(self) -> float:
        """Wait for this request's turn; return its start time (pass it to `throttled`)."""
        if not self.active:
            return self._clock()
        return await self._pacer.wait(self.rate)

    def measured_rate(self) -> float:
        """Successful answers a second, over the last `MEASURE_WINDOW` seconds."""
        now = self._clock()
        successes = self._successes
        while successes and successes[0] <= now - MEASURE_WINDOW:
            successes.popleft()
        # Early on, the window is as long as the client has been answered (one
        # second at least): a burst in the first moments is not averaged away.
        window = min(MEASURE_WINDOW, max(1.0, now - self._first_success))
        return len(successes) / window

    def succeeded(self, started: float) -> None:
        """A request started at `started` was answered without throttling."""
        del started  # counted when answered, so that the log stays in order
        now = self._clock()
        if not self._successes and self._first_success == -math.inf:
            self._first_success = now
        self._successes.append(now)
        if self.active:
            elapsed = self._clock() - self._cut_at
            cubic = SCALE * (elapsed - self._k) ** 3 + self._w_max
            ceiling = 2 * max(self.measured_rate(), MIN_RATE)
            self.rate = max(MIN_RATE, min(cubic, ceiling, self.max_rate or math.inf))

    def throttled(self, started: float) -> None:
        """A request started at `started` was throttled: cut the rate once per round."""
        self.throttled_answers += 1
        if started < self._cut_at + CUT_GRACE:
            return
        measured = self.measured_rate()
        if measured == 0 and not self.active:
            # Nothing got through in the last second: no basis for a rate yet
            # (the quota is spent by others, or this is the first request). The
            # caller backs off instead, and the first successes give the basis.
            return
        base = min(measured, self.rate) if self.active else measured
        base = max(base, MIN_RATE)
        self._w_max = base
        self._k = (base * (1 - BETA) / SCALE) ** (1 / 3)
        self.rate = max(MIN_RATE, base * BETA)
        self._cut_at = self._clock()
        self.active = True
        self.cuts += 1


class RequestLimiter:
    """Caps requests in flight, paces them to the learned rate and to `rate_limit`.

    Attributes:
        max_concurrency: The cap on requests in flight.
        rate_limit: The configured starts per second, or None.
        adaptive: The rate learned from throttling.
        in_flight: Requests holding a slot now.
        peak_in_flight: The most requests ever in flight at once.
        started: Requests started so far (IAM's included).
    """

    def __init__(
        self,
        max_concurrency: int,
        rate_limit: float | None,
        *,
        clock: Callable[[], float] = loop_time,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.rate_limit = rate_limit
        self._clock = clock
        self.adaptive = AdaptiveRate(rate_limit, clock)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.started = 0
        # The cap never changes, so asyncio's semaphore (cancellation-safe) serves.
        self._slots = asyncio.Semaphore(max_concurrency)
        self._fixed = StartRateLimiter(rate_limit, clock) if rate_limit else None

    @contextlib.asynccontextmanager
    async def slot(
        self, *, queued: Callable[[], contextlib.AbstractContextManager[None]] | None = None
    ) -> AsyncIterator[float]:
        """Hold one request slot, started at its turn; yields the start time.

        Args:
            queued: The context the waiting for the turn runs in (the call's
                deadline pauses there: the client's own queue is not the server's time).
        """
        with queued() if queued is not None else contextlib.nullcontext():
            await self._slots.acquire()
        try:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                with queued() if queued is not None else contextlib.nullcontext():
                    await self.adaptive.acquire()
                    if self._fixed is not None:
                        await self._fixed.acquire()
                self.started += 1
                # After every wait: what a throttled answer is judged by is when
                # the request really left.
                yield self._clock()
            finally:
                self.in_flight -= 1
        finally:
            self._slots.release()
