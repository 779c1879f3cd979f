"""How many requests may be in flight and how fast they may start, across a client.

`RequestLimiter` combines a concurrency cap that adapts to throttling (AIMD:
halve on 429, grow back by one slot per window of successes) with an optional
fixed start rate (`StartRateLimiter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class RequestLimiter:
    """Caps requests in flight and request starts per second.

    The concurrency cap starts at `max_concurrency`. A 429 halves it (once per
    round of requests: answers to requests started before the last cut do not
    cut again); each success adds `1 / cap`, so the cap grows back by about one
    slot per full round of successes, never above `max_concurrency`.

    asyncio.Semaphore cannot change its size while tasks wait on it, which the
    adaptive cap needs; hence the small waiter queue below.

    Attributes:
        max_concurrency: The configured cap.
        rate_limit: The configured starts per second, or None.
        in_flight: Requests holding a slot now.
        peak_in_flight: The most requests ever in flight at once.
    """

    def __init__(self, max_concurrency: int, rate_limit: float | None) -> None:
        self.max_concurrency = max_concurrency
        self.rate_limit = rate_limit
        self._cap = float(max_concurrency)
        self._round = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._rate = StartRateLimiter(rate_limit) if rate_limit else None

    @property
    def current_cap(self) -> int:
        """The concurrency cap in force now (lowered after throttling)."""
        return max(1, int(self._cap))

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one request slot; yields the round it started in (for `throttled`)."""
        await self._acquire()
        try:
            if self._rate is not None:
                await self._rate.acquire()
            yield self._round
        finally:
            self._release()

    def throttled(self, started_in_round: int) -> None:
        """A request started in `started_in_round` was answered 429: halve the cap."""
        if started_in_round == self._round:
            self._round += 1
            self._cap = max(1.0, self._cap / 2)

    def succeeded(self) -> None:
        """A request succeeded: grow the cap back gradually."""
        if self._cap < self.max_concurrency:
            self._cap = min(float(self.max_concurrency), self._cap + 1 / self._cap)
            self._wake()

    async def _acquire(self) -> None:
        if self.in_flight < self.current_cap and not self._waiters:
            self._take()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Granted a slot in the same breath as being cancelled: pass it on.
                self._release()
            else:
                self._waiters.remove(waiter)
            raise

    def _take(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.current_cap:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)


_WINDOW: Final = 1.0
# Starts are checked against a window this much longer than a second: between
# granting a start and aiohttp sending the request, other tasks may run for a
# few milliseconds, which could otherwise bring one start too many into a
# one-second window as the gateway sees it. It costs 1 % of the rate.
_WINDOW_MARGIN: Final = 0.01


class StartRateLimiter:
    """At most `rate` request starts in any one-second window, and close to `rate`.

    Starts are paced 1/rate apart on an absolute timeline, so a timer that
    fires late does not push every later start back; a log of the last `rate`
    starts makes sure that no one-second window ever holds more.

    aiolimiter's leaky bucket was the first choice, but with a capacity of one
    (needed so that no window holds a burst on top of the rate) each late
    wake-up is lost for good: on the reference machine a 200/s limit ran at
    about 173/s. A larger capacity keeps the rate but lets a window exceed it.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._interval = 1 / rate
        self._next = -math.inf
        self._recent: deque[float] = deque(maxlen=max(1, math.floor(rate)))
        self._turn = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for this request's turn to start."""
        async with self._turn:
            loop = asyncio.get_running_loop()
            now = loop.time()
            slot = max(now, self._next)
            if len(self._recent) == self._recent.maxlen:
                slot = max(slot, self._recent[0] + _WINDOW + _WINDOW_MARGIN)
            if slot > now:
                await asyncio.sleep(slot - now)
            started = loop.time()
            self._recent.append(started)
            # The next slot follows this one's schedule, not its late wake-up;
            # after a long stall it restarts from now rather than bursting.
            self._next = max(slot, started - self._interval) + self._interval
