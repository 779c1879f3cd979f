"""How many requests may be in flight and how fast they may start, across a client.

`RequestLimiter` holds every limit a request is sent under:

- the plain cap on requests in flight (`max_concurrency`);
- `AnnouncedQuota` (`_announced`), the gateway's own quota when a throttling
  answer names it (`limit:50,time:1 second` in `APIG.0308`): paced under it
  exactly (a `user` policy plainly exceeded across projects without refusal:
  a copy for each project refused; else, refused again for the one project
  it was ever refused for: that project's requests only, until refused for
  another's; a long window found not to be the calendar's: a sliding one);
- `AdaptiveRate` (`_adaptive`), the rate and the number in flight learned
  from the gateway's 429s when nothing is announced, inactive until the
  first 429;
- `StartRateLimiter` (`_pacing`), the user's explicit `rate_limit`, a hard
  cap that no one-second window ever exceeds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Final

from ._adaptive import LONG_WINDOW, AdaptiveRate, Ticket
from ._announced import QUIET, RAISED, AnnouncedQuota, Quota, per_second
from ._pacing import StartRateLimiter, loop_time

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

_EVERY_PROJECT: Final = frozenset({"api", "app", "ip"})
"""Scopes of a policy that count a client's requests whatever project they are for (an API's
calls, the app's credentials, the client's address); a `user` policy (or one unnamed) may
count one project's token: it holds for every project once refused for two."""
EACH_PROJECT: Final = 4
"""A `user` policy (or one unnamed) holds for each project apart once more than this many
times its limit got through, across projects, among the client's requests started within one
period: a quota counting them all lets twice its limit through at most (a calendar window
straddled), three times from a bucket whose burst is twice its rate. A quota per project
taken for every request's paced a crawl of 20 projects at 2/s in all: 45.6 s, not 7."""


OVERSTATED_MEMORY: Final = QUIET
OVERSTATED_MEMORY_MAX: Final = 3600.0
"""Seconds a quota found overstated is not believed (its refusals learned from as unnamed):
as long as an announced quota is paced under before it is probed above, doubling each
time it is found so again, up to an hour. Believed again after a minute each time, a
20/s bucket naming 100 a second cost 3 to 4 s of refusals a minute (46 each time; an
outsider's gateway)."""


class RequestLimiter:
    """Caps requests in flight, paces them to what the gateway said, learned, and `rate_limit`.

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
        wall_offset: float | None = None,
    ) -> None:
        self.max_concurrency = max_concurrency
        self._wall_offset = wall_offset
        self.rate_limit = rate_limit
        self._clock = clock
        self.adaptive = AdaptiveRate(rate_limit, clock, max_concurrency=max_concurrency)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.started = 0
        # The cap never changes, so asyncio's semaphore (cancellation-safe) serves.
        self._slots = asyncio.Semaphore(max_concurrency)
        self._window = _Gate()
        self._fixed = StartRateLimiter(rate_limit, clock) if rate_limit else None
        self._quotas: dict[tuple[str, str | None], AnnouncedQuota] = {}
        # A policy counting each project apart (`AnnouncedQuota.each_project`): its copy per
        # project refused, and the refusals under them (when, which project) of the last period.
        self._copies: dict[tuple[str, str | None], dict[str, AnnouncedQuota]] = {}
        self._copy_refusals: dict[tuple[str, str | None], deque[tuple[float, str]]] = {}
        # Scopes whose policy was found to count every project: never taken apart again.
        self._shared: set[tuple[str, str | None]] = set()
        # Quotas named that let much less through than they say (`AnnouncedQuota.overstated`),
        # per scope: (the quota, until when it is not believed, for how long it was last).
        self._overstated: dict[tuple[str, str | None], tuple[Quota, float, float]] = {}

    @property
    def quotas(self) -> list[tuple[str, Quota]]:
        """The quotas gateways announced and are paced under: (host, quota), per scope."""
        in_force = ((key[0], self._in_force(key)) for key in list(self._quotas))
        return [(host, pacer.quota) for host, pacer in in_force if pacer is not None]

    @property
    def doubted(self) -> list[tuple[str, Quota]]:
        """Quotas named and found overstated (`doubts`), not paced under now: (host, quota)."""
        paced = set(self.quotas)
        found = ((key[0], quota) for key, (quota, _, _) in self._overstated.items())
        return [entry for entry in found if entry not in paced]

    def announced(
        self,
        host: str,
        api: str,
        quota: Quota,
        started: float | None = None,
        project: str | None = None,
    ) -> bool:
        """A throttling answer from `host` for `api` named `quota`; True if it is news.

        An answer at a quota already paced under is that quota's window spent
        (unless the request, sent at `started`, left before it was known).
        Refused again for the one `project` it was ever refused for (a request
        sent since it was known), it paces only that project's requests, until
        it is refused for another project's too.

        A `user` policy (or one unnamed) whose limit the client plainly exceeded
        without refusal (more than `EACH_PROJECT` times it got through, across
        projects, within one period) counts each project apart: each project
        refused is paced under its own copy, the others not until refused
        themselves; unless more than `RAISED` projects are refused (under their
        copies, or to learn them) within a period while at most `RAISED` times
        its limit got through in the last one: then it counts them all, and
        paces every request from then on.
        """
        key = (host, api if quota.per_api else None)
        if (quota.scope or "").lower() in _EVERY_PROJECT:
            project = None  # counts every project's requests, whatever it was refused for
        known = self._quotas.get(key)
        if project is not None and key not in self._shared:
            apart = known is not None and known.each_project
            if apart or self._through_above(self._ceiling(known, quota), EACH_PROJECT):
                return self._announced_for(key, quota, started, project)
        if known is not None and not known.forgotten and known.quota == quota:
            if known.project is not None and known.project != project:
                # Refused for another project too: the quota counts them all. Its
                # request was not paced under it: its refusal blocks nothing.
                known.project = None
                known.refused_for.add(project)
                return False
            if (
                project is not None
                and known.refused_for == {project}
                and started is not None
                and started >= known.since
            ):
                # Refused again, sent under it, and only ever for this project,
                # while the others' requests went through: not a quota over them.
                known.project = project
            known.refused_for.add(project)
            known.throttled(started)
            return False
        higher = None
        refused_for = {project}
        if known is not None:
            # A quota lower than the one before (or than a higher one before that) may pass.
            before = known.higher or known.quota
            higher = before if per_second(before) > per_second(quota) else None
            known.retired = True
            if not known.forgotten:
                refused_for |= known.refused_for
        pacer = AnnouncedQuota(
            quota,
            self._clock,
            self._wall_offset,
            higher=higher,
            answers=self.adaptive,
            started=started,
        )
        pacer.refused_for = refused_for
        if known is not None and not known.forgotten and known.project == project:
            pacer.project = project  # the one project's policy, announced anew
        self._quotas[key] = pacer
        return True

    def doubts(self, host: str, api: str, quota: Quota) -> bool:
        """Whether `quota`, paced under for its scope, is found overstated just now.

        A gateway naming a quota far above what it lets through (a 20/s bucket
        naming 100 a second): the quota goes, and for `OVERSTATED_MEMORY` seconds
        its refusals are learned from as if unnamed (`believes`).
        """
        key = (host, api if quota.per_api else None)
        known = self._quotas.get(key)
        if known is None or known.forgotten or known.quota != quota or not known.overstated():
            return False
        known.retired = True
        del self._quotas[key]
        before = self._overstated.get(key)
        memory = OVERSTATED_MEMORY
        if before is not None and before[0] == quota:
            memory = min(OVERSTATED_MEMORY_MAX, 2 * before[2])  # found so again
        self._overstated[key] = (quota, self._clock() + memory, memory)
        return True

    def believes(self, host: str, api: str, quota: Quota) -> bool:
        """Whether a refusal naming `quota` is paced under it (not found overstated lately)."""
        key = (host, api if quota.per_api else None)
        doubted = self._overstated.get(key)
        return doubted is None or doubted[0] != quota or self._clock() >= doubted[1]

    @staticmethod
    def _ceiling(known: AnnouncedQuota | None, quota: Quota) -> Quota:
        """The quota what got through lately was sent under: a higher one before `quota`.

        A quota that dropped (50 a second, then 10) leaves the last seconds' 50
        through, more than `EACH_PROJECT` times the new limit: read as evidence
        of a quota per project, a shared 10/s was taken apart for each project,
        and the crawl ran at 10/s long after the gateway was back at 50 (0.27
        of the quota, the benchmark's quota change).
        """
        if known is None or known.forgotten:
            return quota
        before = known.higher or known.quota
        return before if per_second(before) > per_second(quota) else quota

    def _through_above(self, quota: Quota, times: int, *, lately: bool = False) -> bool:
        """Whether more than `times` its limit got through within one of `quota`'s periods.

        Judged on the client's requests answered in the last `LONG_WINDOW`
        seconds, or (`lately`) started in the last period.
        """
        span = quota.period if lately else LONG_WINDOW + quota.period
        through = self.adaptive.started_through(self._clock() - span)
        most = times * quota.limit
        return any(
            later - earlier < quota.period
            for earlier, later in zip(through, through[most:], strict=False)
        )

    def _announced_for(
        self, key: tuple[str, str | None], quota: Quota, started: float | None, project: str
    ) -> bool:
        """A refusal for `project` under a policy counting each project apart; True if news."""
        known = self._quotas.get(key)
        news = known is None or not known.each_project or known.quota != quota
        if news:
            if known is not None:
                known.retired = True  # its waiters go, to queue under their project's copy
            template = AnnouncedQuota(
                quota, self._clock, self._wall_offset, blocked=False, answers=self.adaptive
            )
            template.each_project = True
            self._quotas[key] = template
            self._copies[key] = {}
            self._copy_refusals[key] = deque()
        copies = self._copies[key]
        copy = copies.get(project)
        if copy is None or copy.forgotten:
            copies[project] = copy = AnnouncedQuota(
                quota,
                self._clock,
                self._wall_offset,
                answers=self.adaptive,
                project=project,
                started=started,
            )
            copy.pause()  # the project's own requests spent its window just now
            if not news:
                self._copy_refused(key, quota, project)
            return news
        copy.throttled(started)
        if started is not None and started >= copy.since:
            self._copy_refused(key, quota, project)
        return news

    def _copy_refused(self, key: tuple[str, str | None], quota: Quota, project: str) -> None:
        """A project refused under its copy (or to learn it): enough so, and it is shared.

        More than `RAISED` projects refused within a period while at most
        `RAISED` times the limit got through in the last one: a quota over them
        all (a bucket whose saved-up burst passed for evidence of one per project).
        """
        now = self._clock()
        refusals = self._copy_refusals[key]
        refusals.append((now, project))
        while refusals[0][0] <= now - quota.period:
            refusals.popleft()
        projects = {refused_for for _, refused_for in refusals}
        if len(projects) <= RAISED or self._through_above(quota, RAISED, lately=True):
            return
        # Several projects, each paced under its copy, refused while the client's total
        # stayed near the limit: the policy counts them all.
        self._shared.add(key)
        self._quotas[key].retired = True
        for copy in self._copies.pop(key).values():
            copy.retired = True
        del self._copy_refusals[key]
        pacer = AnnouncedQuota(quota, self._clock, self._wall_offset, answers=self.adaptive)
        pacer.refused_for = set(projects)
        self._quotas[key] = pacer

    def quotas_for(self, host: str, api: str, project: str | None = None) -> list[AnnouncedQuota]:
        """The announced quotas a request to `host` for `api` (of `project`) is paced under."""
        found = []
        for key in ((host, None), (host, api)):
            pacer = self._in_force(key)
            if pacer is not None and pacer.each_project:
                copies = self._copies.get(key, {})
                copy = copies.get(project) if project is not None else None
                if copy is not None and copy.forgotten:
                    copy.retired = True
                    del copies[project]  # type: ignore[arg-type]
                elif copy is not None:
                    found.append(copy)
            elif pacer is not None and pacer.project in {None, project}:
                found.append(pacer)
        return found

    def _in_force(self, key: tuple[str, str | None]) -> AnnouncedQuota | None:
        """The quota in force for `key`: none once forgotten, or the higher one it gave way to."""
        pacer = self._quotas.get(key)
        if pacer is None or not pacer.forgotten:
            return pacer
        pacer.retired = True
        if pacer.higher is None:
            del self._quotas[key]
            return None
        # More than twice the lower quota went through: the higher one is back.
        lower, pacer = (
            pacer,
            AnnouncedQuota(
                pacer.higher,
                self._clock,
                self._wall_offset,
                blocked=False,
                answers=self.adaptive,
                project=pacer.project,
            ),
        )
        pacer.refused_for = lower.refused_for
        self._quotas[key] = pacer
        return pacer

    @contextlib.asynccontextmanager
    async def slot(
        self,
        host: str = "",
        api: str = "",
        *,
        project: str | None = None,
        queued: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
        urgent: bool = False,
    ) -> AsyncIterator[Ticket]:
        """Hold one request slot, started at its turn; yields its `Ticket`.

        Args:
            host: Where it goes (announced quotas are per host).
            api: Which API it calls (for quotas a gateway keeps per API).
            project: The project it is about (for a quota named for one project's requests).
            queued: The context the waiting for the turn runs in (the call's
                deadline pauses there: the client's own queue is not the server's time).
            urgent: Part of a listing under way (its next page, a throttled
                request again): paced before requests that begin something new.
        """
        waiting = queued if queued is not None else contextlib.nullcontext
        with waiting():
            await self._slots.acquire()
        try:
            with waiting():
                await self._window.acquire(lambda: self.adaptive.window)
            try:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                try:
                    with waiting():
                        quotas = await self._announced_turn(host, api, project, urgent=urgent)
                        await self.adaptive.acquire(urgent=urgent)
                        if self._fixed is not None:
                            await self._fixed.acquire(urgent=urgent)
                    self.started += 1
                    # After every wait: what a throttled answer is judged by is when
                    # the request really left.
                    started = self._clock()
                    for quota in quotas:
                        quota.sent(started)
                    self.adaptive.sent(started)
                    yield Ticket(started, self.in_flight)
                finally:
                    self.in_flight -= 1
            finally:
                self._window.release()
        finally:
            self._slots.release()

    async def _announced_turn(
        self, host: str, api: str, project: str | None, *, urgent: bool
    ) -> list[AnnouncedQuota]:
        """A turn under every quota announced for `host` and `api`, as they are when it comes.

        A quota replaced while requests wait under it (announced lower, say)
        lets them go at once, to queue again under the one in force.
        """
        while True:
            quotas = self.quotas_for(host, api, project)
            for quota in quotas:
                await quota.acquire(urgent=urgent)
            if all(not quota.retired for quota in quotas) and len(
                self.quotas_for(host, api, project)
            ) == len(quotas):
                return quotas


class _Gate:
    """Admits while fewer than a changing limit are held (the learned window in flight)."""

    def __init__(self) -> None:
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, limit: Callable[[], float]) -> None:
        while self.held >= limit():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                # Woken by a release; the window also grows with time, so look again.
                # Not `asyncio.wait_for`: on Python 3.11 it loses a cancellation that comes
                # in the tick its future completes (cpython#86296): a call stopped (Ctrl-C)
                # as a slot was handed to it went on, holding the slot.
                async with asyncio.timeout(1.0):
                    await asyncio.shield(waiter)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass on the wake-up this waiter got
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if not waiter.done():
                    waiter.cancel()
        self.held += 1

    def release(self) -> None:
        self.held -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
