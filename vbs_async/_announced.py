"""The gateway's own quota, when a throttling answer names it: read and paced under.

`parse_quota` reads `limit:50,time:1 second` from an `APIG.0308` answer;
`AnnouncedQuota` paces a client's requests under it exactly, probes above it
after a long quiet stretch, finds a window that is not the calendar's (a
sliding one), and tells a refusal the pace caused from an overloaded
backend's noise by the client's answers (`_adaptive.AdaptiveRate`).
`_limits.RequestLimiter` keeps one per policy scope.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import time
from collections import deque
from typing import TYPE_CHECKING, Final

import attrs

from ._pacing import WINDOW_MARGIN, Pacer, loop_time

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._adaptive import AdaptiveRate

PROBE_DOUBLING: Final = 0.7
"""Seconds in which a probing rate doubles."""
_ANNOUNCED: Final = re.compile(
    r"(?:policy\s+(?P<scope>[a-z]+)\b.*?)?limit\s*:\s*(?P<limit>[0-9]{1,12})\s*,\s*"
    r"time\s*:\s*(?P<count>[0-9]{1,12})\s*(?P<unit>second|minute|hour|day)s?",
    re.IGNORECASE | re.ASCII,
)
_UNITS: Final = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
QUOTA_MAX_RATE: Final = 10_000.0
"""An announced quota faster than this many requests a second is not believed: no client
on one event loop sends that many (the benchmark's reach a few hundred), so the refusal
that named it was not this client's excess, and a pace above what it sends paces nothing
(a 20/s bucket announcing 10^23 a second: 151 of 177 answers 429). Learned from instead."""
QUOTA_MAX_PERIOD: Final = 7 * 86400.0
"""An announced window longer than a week is not believed: the gateway's longest unit is
a day, and a window no call's deadline comes near is never waited for anyway."""
_PER_API: Final = frozenset({"api"})
"""Scopes of a policy that holds for one API, not for every request to the host."""
QUOTA_MARGIN: Final = 0.02
"""An announced quota is paced this much under its limit (network jitter bunches arrivals).
The starts a window holds are that much under its limit in whole requests only: a quota
under 50 holds its limit, paced evenly under it (4.9 of 5 a second read 4: 0.8 of it)."""
SHORT_PERIOD: Final = 1.0
"""A quota over at most this many seconds is also paced evenly: such a gateway may be a
bucket with a small burst. A longer window may be spent in a burst."""
QUIET: Final = 60.0
"""Seconds without a refusal at an announced quota before it is probed above (the gap
doubles after each refused probe, up to `QUIET_MAX`); a probe that succeeds above it
forgets it. Long: the gateway names its quota, a probe above it costs 429s (a spent
window, a penalty box), and only a quota raised since is found by it."""
QUIET_MAX: Final = 300.0
RAISED: Final = 2
"""A probe above an announced quota forgets it once more than this many times its limit got
through (answered, not only sent) among the probe's requests started within one period.
Judged on starts, before any answer, a probe of 1 or 2 a second started twice its limit in
a period before its first refusal came back: the quota was dropped, the crawl's listings
fired at once, and it was learned again, a burst of 429s each quiet minute (52 of 500
requests refused at 2/s, 70 of 369 at 1 per calendar second). More than twice, not twice:
a period straddles two calendar windows (or a bucket's burst and its refill), which admit
twice the limit of a quota that was not raised (20 % of a crawl at 1 per calendar second
refused, the calendar 0.3 s off). The probe's pace still doubles every `PROBE_DOUBLING`
seconds: its first refusal ends it a round trip later (one start, at a slow quota), and a
raised quota is found within seconds."""
RAISED_PERIODS: Final = 2
"""Periods running in each of which a probe above a quota of a second or less must get more
than `RAISED` times its limit through to forget it: such a gateway may be a bucket, whose
burst saved up while paced under it lets a probe through above twice the limit in the
first period only (a bucket of 2 a second with a burst of 4 was forgotten at each probe,
and learned again in a burst of refusals: 50 of 496 requests refused). A longer window is
judged on one period: calendar windows, no saved-up burst, and 10 s of answers to see by."""
PROBE_LOG: Final = 20.0
"""Seconds of a probe's requests kept to judge it by (twice the client's log of answers,
`LONG_WINDOW`, which holds no answer to a request sent earlier). Under a quota longer than
that log, only what got through in it counts: a raised quota a crawl cannot send twice the
limit of in 10 s is not forgotten, but its probe, unrefused, soon paces nothing."""
RESTORE_QUIET: Final = 1.0
"""Seconds without a refusal at a quota announced lower than one before it, before the
higher one is tried again (doubling while refused, up to `QUIET`): a drop may pass."""
PHASE_PROBED: Final = (30.0, 60.0)
"""Windows this long (at least, at most) are probed for where they roll over: a minute's.
A gateway's minutes may count from another second than the client's (or its clock may be
behind): waited out on the client's calendar, a crawl lost up to a window (an outsider's
36 requests at 20 a minute took 60.7 s where the gateway reopened at 24 s). An hour's or a
day's quota is not: a call's deadline is shorter than the probes' steps."""
PHASE_PROBES: Final = 12
"""Probes of a spent window's rollover per period (a minute's: one each 5 s, one at a time)."""
BEFORE_ANSWERED: Final = 10.0
"""Seconds after a quota was learned in which the answers to the burst that taught it are
looked for (the client's log of answers keeps 10 s: `_adaptive.LONG_WINDOW`)."""
BLACKOUT_STEP: Final = 0.5
"""The share of an announced quota's period a request waits, refused again right after
the window rolled over (a penalty box): the next calendar window would waste more, a
quarter cost a 429 each quarter second of a 2-s penalty box (1.8 % of a crawl's requests)."""
LOOK_POLL: Final = 0.02
"""Seconds between looks at whether a blackout's look got through, while it is out."""
BUCKET_PAUSE: Final = 2.0
"""Intervals of the pace a request refused under a quota of a second or less pauses every
start for: a bucket has a token again after one, a calendar window spent refuses the first
start after it, which then waits for the window to roll over."""
MARGIN_MAX: Final = 0.25
MARGIN_HALF_LIFE: Final = 10.0
MARGIN_HALF_LIFE_INTERVALS: Final = 500
"""A refusal of a start paced evenly under a short quota doubles the margin under its
limit (up to `MARGIN_MAX`); it halves back every `MARGIN_HALF_LIFE` quiet seconds, or
`MARGIN_HALF_LIFE_INTERVALS` of the limit's intervals if longer (10 s of 50/s): refusals
at random, a few per cent of a slow pace's, come seconds apart, and the margin, halved back
between them, never stayed wide enough to tell that the pace was not what they followed."""
QUOTA_NOISE_SHARE: Final = 0.15
QUOTA_NOISE_WINDOW: Final = 2.0
"""A refusal under an announced quota that follows a success, while at most this share of
the requests started in the last `QUOTA_NOISE_WINDOW` seconds (`QUOTA_NOISE_ANSWERS`) were
refused, does not follow the pace once the margin under the limit went to `MARGIN_MAX` and
refusals went on (a bucket's jitter refuses nothing paced at 75 %): an overloaded backend
refusing 5 % at random, or one project's policy. It pauses nothing: 5 % of 429s at random
under a 50/s bucket cost 1.6x to 2.0x the crawl, paused and paced at 75 % after each."""
QUOTA_NOISE_LOW: Final = 0.1
"""At most this share of the last seconds' requests refused, at the limit (the margin widened
once at most), is noise at once: a bucket's jitter refused a quarter there."""
QUOTA_NOISE_ANSWERS: Final = 20
"""The fewest answers the share of refusals is judged on. It is judged over the last
`QUOTA_NOISE_WINDOW` seconds, or over the last starts under the quota that hold this many
answers if they took longer (twice this many starts at most): a pace under 10 a second
has fewer than 20 answers in two seconds, so under a 5/s quota no refusal was ever judged
noise and each random 429 paused the pace (1.2x to 1.4x the crawl at 5 %); under a quota
of 100 a minute, each waited for the next minute (2.1x to 3.4x). Below about 2 a second the
client's answers (`AdaptiveRate`'s last 10 s) hold fewer: the spacing rule judges there."""
NOISE_STARTS: Final = 10
"""The starts before a refused one whose spacing tells the pace it was refused at: one gap
jitters with the event loop's timers (a pace at 77 % read 80 % to 125 % from one gap)."""
OVERSTATED: Final = 0.25
OVERSTATED_SPAN: Final = 3.0
"""A quota is not believed once, over the last `OVERSTATED_SPAN` seconds (two periods, if
longer) since it was learned, under `OVERSTATED` of its limit got through while more than
`QUOTA_NOISE_SHARE` of `QUOTA_NOISE_ANSWERS` answers at least were refused, and something
got through in every half of that span (a lower limit than it names lets requests through
all along; a penalty box or a spent window lets nothing through, and the pace under the
quota waits for it to reopen with a look each half second). A 20/s bucket naming 100 a
second, paced under the quota it named, blocked each refusal until the calendar second
rolled over: 7 a second got through, 84 s for a crawl of 760 where 38 s would do (40 s
now); naming 5000 a second, 2.5x the requests (1.18x now; fake clock). Its refusals are
learned from as unnamed ones then (`_limits.RequestLimiter.believes`). The share: others
spending a quota this client shares leave it more (another client sending 40 a second to
50 left it 14). Not sooner than 3 s: at 9 answers a second, 2 s held too few to judge
(`QUOTA_NOISE_ANSWERS`), or `OVERSTATED_FEWEST` if more than `OVERSTATED_REFUSED` of them
were refused. Fewer answers than that in the span, the last `BEFORE_ANSWERED` seconds are
judged once the quota is that old: behind a bucket with a burst of 1, any quota named
above it (a 20/s bucket naming 25) let 2 a second through, refused 2 and waited half a
second, 8 to 12 answers in 3 s, never judged (585 of 760 pages in 300 s; 1.3x to 1.6x the
time at the bucket's rate now, found so at 3 s). Not the whole 10 s sooner: 20 % of 429s
at random that name the quota read as much in the first seconds (a fifth refused, of
more answers), and the learned rate, begun from a pace held under the quota, fell to 2 a
second (33.9 s to 81.8 s)."""
OVERSTATED_REFUSED: Final = 0.4
"""More than this share refused over the span judged (`OVERSTATED_SPAN`) finds a quota
overstated whatever got through: a 2/s bucket with a burst of 1 naming 5 a second let
1.33 through and refused 1.33 every second of a crawl, over a quarter of the limit
(an outsider's gateway). Others spending a quota this client shares refused 15 to 18 %
(another client sending 20 to 40 a second to 50); 20 % of 429s at random, about that.
Three processes of this library sharing one quota see two thirds refused each, and drop
it (as they did on the quarter alone): their learned rates find their shares."""
OVERSTATED_FEWEST: Final = 8
"""The fewest answers more than `OVERSTATED_REFUSED` refused are judged on (of those whose
answers are in): a 20/s bucket with no burst naming 100 let 1 through and refused 2 a
second, 9 answers in 3 s."""
JUDGED_EVERY: Final = 0.25
"""Seconds between two judgements of whether a quota is `OVERSTATED` (each reads the last
seconds' answers)."""
REPROBE_ANSWERS: Final = 8
REPROBE_SHARE: Final = 0.25
"""A refusal with room in a window a probe found open probes for its rollover again once
this many answers to the requests started after that probe are in, more than this share
of them refused (`AnnouncedQuota._doubt_rollover`): a burst into a window spent, not a
429 at random. Half, judged from the refused start, stalled real-time crawls begun at
some seconds of the minute (helper-70: the refused start was the burst's last, or 7 of
15 were refused), each blocked for the minute."""
PUNISHMENT_WATCH: Final = 3.0
"""Seconds, from the window after a refused probe, in which a refusal at the quota itself
is the probe's punishment."""


@attrs.frozen
class Quota:
    """A quota the gateway announced in a throttling answer.

    Attributes:
        limit: Requests allowed per period.
        period: The period, in seconds.
        scope: Whom the policy counts (`user`, `app`, `ip`, `api`), if it said.
        unit: The period as the gateway wrote it (`1 second`, `1 minute`).
    """

    limit: int
    period: float
    scope: str | None = None
    unit: str = ""

    def __str__(self) -> str:
        period = f"{self.period:g} s" if self.period < 60 else self.unit  # noqa: PLR2004
        return f"{self.limit} per {period}"

    @property
    def per_api(self) -> bool:
        """Whether the policy counts one API's requests rather than all of the host's."""
        return (self.scope or "").lower() in _PER_API


def parse_quota(message: str | None) -> Quota | None:
    """The quota an `APIG.0308`/`APIGW.0308` message announces (`limit:N,time:K unit`), if any."""
    found = _ANNOUNCED.search(message or "")
    if found is None:
        return None
    limit, count = int(found["limit"]), int(found["count"])
    unit = found["unit"].lower()
    period = count * _UNITS[unit]
    if limit < 1 or count < 1 or limit / period > QUOTA_MAX_RATE or period > QUOTA_MAX_PERIOD:
        return None  # not a quota to pace under: learned from instead, as if unnamed
    return Quota(limit, period, found["scope"], f"{count} {unit}")


class AnnouncedQuota:
    """Paces starts under a quota the gateway announced: `limit` per `period` seconds.

    At most `limit` (less `QUOTA_MARGIN`, in whole requests) starts in any window of `period`
    seconds (a sliding window holds a fixed one too), or, under a window longer than a
    second on the calendar, since it rolled over (and a moment before: a request sent
    then may arrive after); a refused start counts in no window. A short period is also
    paced evenly, from the moment it is learned (a bucket refills at once; a
    calendar window the first burst spent refuses the next request, which
    blocks). A refusal of a request paced under it means the gateway's window
    was spent (by others, or before the quota was known): starts wait until the
    window rolls over on the calendar; refused again right as it did (a penalty
    box), until the next half window counted from the blackout's first refusal
    (from the rollover under a window longer than a second: others sharing the
    quota spend each window as it rolls over, and every other look is at one;
    once a window sooner, as its own oldest start of the last period leaves
    the window, which has room again then if it slides; a look within the
    window is one request, the rest after it got through).
    Refused again for a request sent before the refusal that set the block came
    back, nothing new is learned, and the block stands.
    Refusals of requests sent before the quota was known say nothing new.
    Refusals that do not follow the pace are noise (an overloaded backend's
    429s at random, naming the quota): few of them at the limit, or one to a
    start paced well under it, the margin widened already, make every refusal
    after a success pause nothing while few of the last seconds' are refused
    (or of the last 20 answers, at a slow pace). Under a window longer than a
    second, a refusal waits for nothing once a request sent no earlier got
    through (a burst's first answer may be its one random refusal).

    The quota is probed above only after a long quiet stretch (`QUIET` seconds
    without a refusal, doubling after each refused probe), and never again
    once a probe was punished (refusals at the quota itself after the probe's
    window rolled over: a penalty box). A quota announced lower than one
    before it (`higher`) may come back: after `RESTORE_QUIET` seconds the pace
    tries the higher one (the gap doubling while it is refused), and takes it
    again once more than twice the lower limit got through in a period. Any
    other quota is forgotten once a probe gets more than twice its limit
    through in a period (`RAISED`): judged on the client's answers to the
    probe's requests, not on their starts.

    Learned from a refusal under a window longer than a second, it blocks
    until the window rolls over (the burst that taught it may have spent it),
    unless a request sent no earlier than the refused one gets through (the
    refusal came at random). Refused right after the calendar window rolled
    over, while its own log of starts says the window is fresh, the gateway's
    window is not the calendar's (sliding, or aligned elsewhere), unless more of
    its own got through within a period than the limit (the calendar's window
    rolled over, and others spent it: two processes sharing a quota): from then on
    (`sliding`) at most `limit` start in any period, counted over the log (the
    successes started before it was learned included, its refused starts not:
    a gateway counts what it admits), and a refusal waits until the oldest
    start in the log leaves the window, not for the next calendar window;
    refused with room by that count, others spend the window, and it is read
    as the calendar's again.

    Under a minute's window (`PHASE_PROBED`), where it rolls over is probed
    until seen: while it is spent, one request each `PHASE_PROBES`-th of a
    period, one at a time (their refusals teach nothing else), and at the
    opening the client believes in, its first request alone. A probe through
    before that opening moves the client's calendar to the gateway's: the
    window rolled over by then (sliding or not), and the next one is a period
    later, unless the calendar's rollover was in the step before it. A probe
    through at it says the client's calendar was right.

    Attributes:
        quota: The announced quota.
        project: The one project whose requests it paces, once refused twice
            for it and never for another; None: every request to its host.
        forgotten: Whether a probe found it raised (see `RAISED`): no longer paced under.
        refused_for: The projects whose requests it was named for (None: unknown).
        since: When it was learned.
        higher: A higher quota the same policy announced before, if any.
        sliding: Whether the gateway's window was found not to be the calendar's.
        each_project: A policy found to count each project's requests apart:
            it paces nothing itself, each project refused has its own copy
            (see `RequestLimiter.announced`).
    """

    def __init__(
        self,
        quota: Quota,
        clock: Callable[[], float] = loop_time,
        wall_offset: float | None = None,
        *,
        higher: Quota | None = None,
        blocked: bool = True,
        answers: AdaptiveRate | None = None,
        project: str | None = None,
        started: float | None = None,
    ) -> None:
        self.quota = quota
        self.project = project
        self.refused_for: set[str | None] = {project}
        self.higher = higher
        self._clock = clock
        now = clock()
        self.since = now
        # The calendar, for windows aligned on it: the gateway counts in wall time.
        self._wall_offset = time.time() - now if wall_offset is None else wall_offset
        self._pacer = Pacer(clock)
        self._recent: deque[float] = deque()
        # Starts judged for noise: the window log above keeps a period's only (a 5/s quota's
        # 5 starts, under the `NOISE_STARTS` the spacing rule needs).
        self._starts: deque[float] = deque(maxlen=2 * QUOTA_NOISE_ANSWERS)
        # The requests a probe above it sent (their tickets' starts), to judge it by their answers.
        self._probe_sent: deque[float] = deque()
        # A long window was spent in the burst that learned it; a short one is paced at once.
        even = quota.period <= SHORT_PERIOD
        self._blocked_until = self._next_window(now) if blocked and not even else -math.inf
        # Where the window rolls over, while not yet seen (see `PHASE_PROBED`): the next
        # probe's time, and the one probe out (its start, and the opening believed then).
        shortest, longest = PHASE_PROBED
        self._phase_unknown = (
            answers is not None  # nothing to judge a probe by
            and project is None  # each project's copy probing: a probe each 5 s per project
            and self._blocked_until > now
            and shortest <= quota.period <= longest
        )
        self._probe_next = now + quota.period / PHASE_PROBES
        self._probe_out: tuple[float, float] | None = None
        # The last rollover a probe found; a refused start in its window that may doubt it
        # (`_doubt_rollover`), and whether it did; whether two rollovers were found less
        # than half a period apart: the window named is not what refuses (`overstated`);
        # or a period apart: a window others spend, not doubted again.
        self._found: float | None = None
        self._doubted: tuple[float, float] | None = None  # (the rollover found, the refused start)
        self._reprobing = False
        self._finer = False
        self._confirmed = False
        # A blackout's look within a long window: the block it ends (while in force), then
        # the one start sent at it, which the rest wait for (its answer, or a step).
        self._look_at: float | None = None
        self._look_out: float | None = None
        # Its own admitted starts of the last period under a long window, whatever the
        # calendar says (a sliding window has room again as they leave it).
        self._kept: deque[float] = deque()
        self._own_looked = -math.inf  # the window an own start leaving was last looked at in
        # When a refusal last set a block (its answer came): those sent before say no more.
        self._block_set_at = -math.inf
        # The latest refused start a block waits for, the block before the refusals, and
        # the block they set (any other block since, or its end, and it lifts nothing).
        self._lifted_by: tuple[float, float, float] | None = None
        self._quiet_since = now
        self._quiet = RESTORE_QUIET if higher is not None else QUIET
        self._watch: tuple[float, float] | None = None  # after a refused probe: (from, until)
        self._forgotten = False
        self.retired = False  # replaced: its waiters go, to queue under what replaced it
        self._probe_refused = -math.inf
        self._paused = False  # the last block was a short pause (`BUCKET_PAUSE`)
        self._jitter_margin = QUOTA_MARGIN
        # The client's answers (successes too), to tell a refusal the pace caused from noise.
        self._answers = answers
        self.noisy = False  # refusals went on at the widest margin: noise, not the pace
        self._blackout_from = now  # the first refusal since something paced got through
        self.sliding = False
        self.each_project = False
        self._judged_at = -math.inf  # when `overstated` last read the answers
        # The successes started in the period before it was learned: a sliding window
        # still counts them (refreshed while their answers come in).
        self._before: list[float] = []
        self._note_before()
        if self._blocked_until > now:
            # The refusal that taught it (sent at `started`) may have come at random (an
            # overloaded backend naming the quota): its window was not spent if a request
            # sent no earlier gets through (a minute waited for nothing: 1.25x a crawl).
            self._lift_when_through(started, -math.inf)

    def pause(self) -> None:
        """Pause every start for `BUCKET_PAUSE` intervals of the pace (a quota of a second or less).

        For a quota learned when the requests it paces had just spent its
        window (one project's, refused): its first start at once was refused
        again (a project's second 429 of two, under 2/s per project).
        """
        if self.quota.period <= SHORT_PERIOD:
            self._paused = True
            self._blocked_until = self._clock() + BUCKET_PAUSE / self.rate()

    def scale(self) -> float:
        """How far above the limit the pace is probing (1 until a quiet stretch)."""
        quiet_for = self._clock() - self._quiet_since - self._quiet
        if quiet_for <= 0:
            return 1.0
        if self.higher is not None:
            return max(1.0, per_second(self.higher) / per_second(self.quota))
        return float(2.0 ** min(quiet_for / PROBE_DOUBLING, 64))  # no overflow after an idle hour

    def rate(self) -> float:
        """Starts per second it paces at."""
        return self.quota.limit * (1 - self._margin()) * self.scale() / self.quota.period

    def _margin(self) -> float:
        """The share under the limit paced at: wider after refusals of an even pace, for a while."""
        if self._jitter_margin <= QUOTA_MARGIN:
            return QUOTA_MARGIN
        quiet_for = max(0.0, self._clock() - self._quiet_since)
        intervals = MARGIN_HALF_LIFE_INTERVALS * self.quota.period / self.quota.limit
        half_life = max(MARGIN_HALF_LIFE, intervals)
        return max(QUOTA_MARGIN, self._jitter_margin * math.pow(0.5, quiet_for / half_life))

    async def acquire(self, *, urgent: bool = False) -> float:
        """Wait for this start's turn (an `urgent` one first); return its start time."""
        started = await self._pacer.wait(self._pace, not_before=self._window_opens, urgent=urgent)
        self._started(started)
        return started

    def due(self) -> float:
        """When the next start may leave (for a caller that schedules starts itself)."""
        return self._pacer.due(self._pace(), self._window_opens())

    def reopens(self) -> float:
        """When the window lets starts through, as far as the client knows (no probe of it)."""
        return self._pacer.due(self._pace(), self._believed_open())

    def _believed_open(self) -> float:
        """When the window lets the next start through, as far as the client knows."""
        return max(self._openings())

    def took(self, slot: float, started: float) -> None:
        """A start due at `slot` (from `due`) left at `started` (its `Ticket`'s start)."""
        self._pacer.took(slot, started, self._pace())
        self._started(started)
        self.sent(started)

    def sent(self, started: float) -> None:
        """A request paced under it left at `started`, as its `Ticket` says.

        While probing above the quota, the probe's requests are logged: the
        client's answers to them, and to no other request (another API's,
        another project's), say whether the quota was raised.
        """
        probe = self._probe_sent
        if self.scale() <= 1:
            probe.clear()
            return
        probe.append(started)
        while probe[0] < started - PROBE_LOG:
            probe.popleft()

    def _pace(self) -> float:
        """Starts per second, evenly: a short period's (it may be a bucket), else unpaced."""
        if self.retired:
            return math.inf
        return self.rate() if self.quota.period <= SHORT_PERIOD else math.inf

    def _started(self, started: float) -> None:
        if self._look_at is not None and self._look_at == self._blocked_until <= started:
            self._look_at, self._look_out = None, started
        if self._phase_unknown and not self._probe_through():
            believed = self._believed_open()
            if started <= believed:
                # A probe of where the window rolls over (the window spent, as the gateway
                # said): the only start until it is answered (or a step has passed: an
                # error answers nothing). Not once the block lifted (the refusal came at
                # random): through then, a start said nothing of the rollover, and a client
                # taught the quota by a random 429 kept its own minute (2 s off the
                # gateway's: 1.83x the crawl).
                self._probe_out = (started, believed)
                self._probe_next = started + self.quota.period / PHASE_PROBES
        self._recent.append(started)
        self._starts.append(started)
        if self.quota.period > SHORT_PERIOD:
            kept = self._kept
            kept.append(started)
            while kept[0] <= started - self.quota.period * (1 + WINDOW_MARGIN):
                kept.popleft()
        if self._answers is None and len(self._recent) >= 2 * self.quota.limit:
            self._forgotten = True  # no answers to judge by: twice the quota started in a period

    @property
    def forgotten(self) -> bool:
        """Whether it is gone: a probe above it got more than `RAISED` times its limit through.

        Judged on the client's answers to the probe's requests: more than that
        many successes among them started within one period (in each of
        `RAISED_PERIODS` periods running, under a quota of a second or less).
        """
        most = RAISED * self.quota.limit  # one more in a period is above any such quota
        periods = RAISED_PERIODS if self.quota.period <= SHORT_PERIOD else 1
        answers = self._answers
        if self._forgotten or answers is None or len(self._probe_sent) <= periods * most:
            return self._forgotten
        probe = set(self._probe_sent)
        through = [at for at in answers.started_through(self._probe_sent[0]) if at in probe]
        period = self.quota.period

        def above(begin: float) -> bool:
            """More than `most` through among the starts of the period from `begin`."""
            end = bisect.bisect_left(through, begin + period)
            return end - bisect.bisect_left(through, begin) > most

        self._forgotten = any(
            all(above(first + i * period) for i in range(periods)) for first in through
        )
        return self._forgotten

    def overstated(self) -> bool:
        """Whether it lets through much less than it names, refusals all along (`OVERSTATED`)."""
        if self._finer and not self.retired:
            return True  # two rollovers found within half a period (`_doubt_rollover`)
        answers = self._answers
        if answers is None or self.each_project or self.project is not None or self.scale() > 1:
            return False  # nothing to judge by; or a copy per project, or probing above it
        now = self._clock()
        # The requests of the last moments have their refusals back, not their successes
        # (a backend answering in a second): only those whose answers are in are judged.
        # A quota another client spends 30 of 50 a second of, answered in half a second,
        # read as refusing over 40 % and was dropped at 4 s.
        end = max(self.since, answers.settled(now))
        span = max(OVERSTATED_SPAN, 2 * self.quota.period)
        kept = BEFORE_ANSWERED - (now - end)  # the client's log of answers, before `end`
        if end - self.since < span or span > kept or now < self._judged_at + JUDGED_EVERY:
            # Too soon; longer than the client's log of answers; or judged a moment ago
            # (each judgement reads the last seconds' answers: a storm of 429s, each
            # judged, would read them thousands of times a second).
            return False
        self._judged_at = now
        begin = end - span
        share, judged = answers.share_refused(begin, end)
        if (
            judged < QUOTA_NOISE_ANSWERS
            and not (judged >= OVERSTATED_FEWEST and share > OVERSTATED_REFUSED)
            and end - self.since >= kept
        ):
            span = kept
            begin = end - span
            share, judged = answers.share_refused(begin, end)
        if share <= QUOTA_NOISE_SHARE or judged < (
            OVERSTATED_FEWEST if share > OVERSTATED_REFUSED else QUOTA_NOISE_ANSWERS
        ):
            return False
        through = answers.started_through(begin, end)
        if (
            len(through) >= OVERSTATED * self.quota.limit * span / self.quota.period
            and share <= OVERSTATED_REFUSED
        ):
            return False
        edges = [begin, *through, end]
        return max(later - earlier for earlier, later in itertools.pairwise(edges)) < span / 2

    def _allowed(self) -> int:
        """Starts a period may hold: a short quota's limit less its margin, a longer one's all.

        The margin in whole requests (a slow quota's floor of 98 % lost one in a few).
        A longer window is spent in bursts, not paced evenly: no jitter bunches its
        arrivals, and 294 of 300 a minute left the last 6 of 900 requests a fourth
        minute to wait (an outsider's crawl: 160 s and 176 s where 99 and 115 would do).
        """
        limit = self.quota.limit
        margin = math.floor(limit * QUOTA_MARGIN) if self.quota.period <= SHORT_PERIOD else 0
        return max(1, math.floor(limit * self.scale()) - margin)

    def _window_opens(self) -> float:
        """When the next start may leave: the window's opening, or a probe of it (`PHASE_PROBED`).

        While where the window rolls over is not yet seen, one start at a time
        (a probe) until one gets through: before the opening the client
        believes, each `PHASE_PROBES`-th of a period; at it, the first alone.
        """
        counted, blocked = self._openings()
        opens = max(counted, blocked)
        look = self._look_out
        if look is not None and not self.retired:
            if self._through_since(look):
                self._look_out = None  # through: the rest go
            else:
                # Its answer first: asked again soon (the pacer naps a quarter second).
                answered = min(look + BLACKOUT_STEP * self.quota.period, self._clock() + LOOK_POLL)
                opens = max(opens, answered)
        if self._doubted is not None:
            self._reprobe()
        if not self._phase_unknown or self.retired:
            return opens
        if self._probe_through():
            return self._believed_open()
        out = self._probe_out
        # A probe passes the gateway's block, and a sliding window (which may be a
        # calendar's minute read from another second): never the client's own count of
        # starts since the window rolled over.
        counted = -math.inf if self.sliding else counted
        if out is not None:
            return max(counted, out[0] + self.quota.period / PHASE_PROBES)  # its answer first
        if opens <= self._clock():
            return opens
        return max(counted, min(opens, self._probe_next))

    def _probe_above_refused(self, now: float) -> None:
        """A probe above the quota was refused: back to the quota, and wait longer to probe."""
        self._quiet = min(QUIET_MAX, self._quiet * 2)
        if self.higher is None:
            # Refusals of requests sent at the quota once this window rolled over
            # (and a while after) would be the probe's punishment.
            begin = self._next_window(now)
            self._watch = (begin, begin + PUNISHMENT_WATCH)
        # Back to the quota: under a short one, no block (its log of starts spaces the
        # next ones, and a window the probe spent refuses the next request, which
        # blocks); a long window the probe spent refuses until it rolls over (its log
        # counts no refused start: a minute's probe sent 23 into a spent window, not 16).
        self._quiet_since = self._probe_refused = now
        if self.quota.period > SHORT_PERIOD:
            rolls = self._oldest_leaves(now) if self.sliding else self._next_window(now)
            self._blocked_until = max(self._blocked_until, rolls)

    def _probe_refused_early(self, started: float | None) -> bool:
        """Whether a refusal (sent at `started`) is of a probe sent before the believed opening.

        The probe out is answered either way: the next one goes a step after it.
        """
        out = self._probe_out
        if out is None or (started is not None and started < out[0]):
            return False
        self._probe_out = None
        return started is not None and started < out[1]

    def _probe_through(self) -> bool:
        """Whether the probe out got through: where the window rolls over is seen."""
        out = self._probe_out
        if out is None or not self._through_since(out[0]):
            return False
        self._rolled_over(*out)
        return True

    def _rolled_over(self, probed: float, believed: float) -> None:
        """A probe sent at `probed` got through; the window was believed to open at `believed`.

        Sent before that, the gateway's window rolls over elsewhere than the
        client's calendar (sliding or not): by then, a whole period before the
        next. Sent after: where the client believed.
        """
        self._phase_unknown, self._probe_out = False, None
        period = self.quota.period
        found, self._found = self._found, probed
        if self._reprobing and found is not None:
            # Each found up to a probe's step late: a window's rollovers a period apart are
            # seen 55 to 65 s apart under a minute's. A meter finer than the window named
            # lets the next probe through, a step after the burst it refused.
            self._finer = probed - found < period / 2
            self._confirmed = not self._finer  # others spend it: probed for again no more
        self._reprobing = False
        if probed >= believed:
            return
        if probed - self._window_began(probed) >= period / PHASE_PROBES:
            # The calendar's rollover is not in the step before the probe (the one
            # before it was refused): the gateway's is. Within that step, the calendar
            # stands: believed later than it (read as sliding), a client sharing a
            # minute's quota moved its calendar to its probe, 0.18 s after the
            # rollover, and came that late to each after, which the others had spent.
            self._wall_offset = -probed % period
        self.sliding = False  # its log now counts from the rollover: the probe on
        self._blocked_until, self._lifted_by = -math.inf, None

    def _openings(self) -> tuple[float, float]:
        """When the window opens, as far as the client knows: (by its count of starts, blocked).

        The block is the gateway's word (a refusal); the count, the client's own starts.
        """
        if self.retired:
            return -math.inf, -math.inf
        period = self.quota.period * (1 + WINDOW_MARGIN)
        recent = self._recent
        now = self._clock()
        while recent and recent[0] <= now - period:
            recent.popleft()
        if now - self.since < BEFORE_ANSWERED and self.quota.period > SHORT_PERIOD:
            # The burst that taught it is still being answered: a success answered after
            # the refusal is in the window too (13 of 60 left out, a sliding minute's
            # window was taken for a penalty box, and a whole minute waited).
            self._note_before()
        lifted_by = self._lifted_by
        if lifted_by is not None:
            refused_started, before, block = lifted_by
            if block != self._blocked_until or now >= block:
                self._lifted_by = None  # blocked otherwise since (a pause), or over
            elif self._through_since(refused_started):
                # A request sent no earlier than the refused one got through: the window
                # was not spent, the refusal came at random (an overloaded backend naming
                # the quota; a window of a minute waited for each: 2.1x to 3.4x the crawl).
                self._blocked_until, self._lifted_by = before, None
        if not self.sliding and self.quota.period > SHORT_PERIOD:
            # A calendar window counts only its own starts: those before it rolled over
            # (less a margin: one sent just before may arrive after) are no longer in
            # it (a refused probe's 16 kept a minute's window from 44 of its 60).
            rolled = self._window_began(now) - self.quota.period * WINDOW_MARGIN
            while recent and recent[0] < rolled:
                recent.popleft()
        allowed = self._allowed()
        opens = recent[len(recent) - allowed] + period if len(recent) >= allowed else -math.inf
        return self._calendar_opens(opens, now), self._blocked_until

    def _calendar_opens(self, counted: float, now: float) -> float:
        """When a calendar window longer than a second full by its count (at `counted`) opens.

        As it rolls over, all the same, unless the starts sent just before fill
        the next one (counted as a sliding window, it opened 60.6 s after its
        starts, and a call waiting for it failed at once under a deadline of 60).
        """
        if self.sliding or self.quota.period <= SHORT_PERIOD:
            return counted
        rollover = self._next_window(now)
        if counted <= rollover:
            return counted
        # The log is in order: the starts carried into the next window are its last.
        carried = rollover - self.quota.period * WINDOW_MARGIN
        kept = sum(1 for _ in itertools.takewhile(lambda at: at >= carried, reversed(self._recent)))
        return rollover if kept < self._allowed() else counted

    def _note_before(self) -> None:
        """Log the successes started in the period before it was learned, answered since."""
        answers = self._answers
        if answers is None or self.sliding:
            return
        begin = self.since - self.quota.period
        found = [at for at in answers.started_through(begin) if at < self.since]
        if len(found) > len(self._before):  # more answered since (the log only loses the old)
            self._before = found

    def _not_the_calendar(self, started: float, ended: float) -> bool:
        """Whether a refusal (sent at `started`) shows a window that is not the calendar's.

        Refused right after the block ended at the calendar window's rollover,
        while its own log holds fewer than the limit since the rollover, and
        the limit at least in the period before the refused start, counting the
        successes started before it was learned: a window counted back from
        each request. (Nothing of its own in that period: a penalty box, an
        outage, waited for in steps.) The log takes those successes in, and
        the quota is `sliding` from then on.
        """
        if self.sliding:
            return True
        right_after = 0 <= started - ended < BLACKOUT_STEP * self.quota.period
        # Right after the calendar window's end, not after a step of a blackout's: a
        # look half a minute into a window others spent read as a sliding one.
        if not right_after or not self._rolls_over_at(ended):
            return False
        allowed = self._allowed()
        if sum(1 for at in self._recent if ended <= at < started) >= allowed:
            return False  # its own log says the window was spent: the calendar's may be right
        logged = sorted([*self._before, *self._recent])
        counted = sum(1 for at in logged if started - self.quota.period < at < started)
        if counted < allowed or self._admitted_past_sliding(started, ended):
            return False
        self.sliding = True
        self._recent = deque(logged)
        return True

    def _admitted_past_sliding(self, started: float, ended: float) -> bool:
        """Whether more of its own got through in a period than a sliding window admits.

        Counted over the successes started in the period before the refused start
        (at `started`): those before the quota was learned, and those since the
        block ended (at `ended`, the calendar's rollover). Then the window rolled
        over on the calendar, and others spent it: read as sliding, a client
        sharing a minute's quota with another waited for its oldest start to leave
        the window, 0.6 s after each rollover, where the other spent it whole at
        the rollover (9 of 40 calls failed, the other process's all done).
        """
        answers = self._answers
        if answers is None:
            return False
        # Started before it was learned, or since the block: no start is in both.
        through = [*self._before, *(at for at in answers.started_through(ended) if at < started)]
        # Less a margin: starts a period apart may arrive less than one apart.
        begin = started - self.quota.period * (1 - WINDOW_MARGIN)
        return sum(1 for at in through if at > begin) > self.quota.limit

    def _unlog(self, started: float | None) -> None:
        """Take a refused start (sent at `started`, if known) out of a long window's log.

        A window counts what it admitted: not a refused start (a sliding one's
        15 refused of a probe kept 15 requests of a crawl a minute more; at 1 a
        minute, one refused probe stopped the probes for a minute; one refused
        at random kept its request a minute although the window had room). A
        window the gateway said was spent is held by the block the refusal sets.

        The log's entry is the latest logged no later: its turn under this
        quota came a moment before the request left (after the other limits).
        """
        if self.quota.period <= SHORT_PERIOD or started is None:
            return
        for log in (self._recent, self._kept):
            for index in range(len(log) - 1, -1, -1):  # in order: the latest first
                if log[index] <= started:
                    del log[index]
                    break

    def _leaves(self, log: deque[float], now: float) -> float:
        """When the oldest start of `log` still in a sliding window leaves it (inf: none)."""
        period = self.quota.period * (1 + WINDOW_MARGIN)
        return next((at + period for at in log if at + period > now), math.inf)

    def _oldest_leaves(self, now: float) -> float:
        """When the oldest start of the log leaves the (sliding) window."""
        leaves = self._leaves(self._recent, now)
        if leaves == math.inf:
            # Nothing of its own counted: others spend the window; look again a step later.
            return now + BLACKOUT_STEP * self.quota.period
        return leaves

    @property
    def calendar_assumed(self) -> bool:
        """Whether where its window rolls over is taken from the calendar, never looked for.

        A window longer than a minute's (an hour's, a day's): a call's deadline is
        shorter than the probes' steps.
        """
        return self.quota.period > PHASE_PROBED[1]

    def _rolls_over_at(self, at: float) -> bool:
        """Whether the calendar window rolls over at `at` (a block's end `_next_window` set)."""
        period = self.quota.period
        return math.isclose(self._next_window(at - period / 2), at, abs_tol=period * 1e-9)

    def _window_began(self, now: float) -> float:
        """When the gateway's current window began, on the calendar (`now` on this clock)."""
        return self._next_window(now) - self.quota.period

    def _next_window(self, now: float) -> float:
        """When the gateway's current window ends, on the calendar (`now` on this clock)."""
        period = self.quota.period
        wall = now + self._wall_offset
        return (math.floor(wall / period) + 1) * period - self._wall_offset

    def throttled(self, started: float | None = None) -> None:
        """The gateway refused a request (sent at `started`) under this quota."""
        now = self._clock()
        if self._nothing_new(started, now):
            return
        watch = self._watch
        if self.scale() > 1:
            self._probe_above_refused(now)
            return
        if started is not None and started < self._probe_refused:
            return  # sent by the probe that was refused
        if watch is not None and started is not None and watch[0] <= started < watch[1]:
            # Refused at the quota itself after a refused probe: the gateway
            # punishes an excess (a penalty box). Each probe would cost that much.
            self._quiet = math.inf
            self._watch = None
        self._quiet_since = now
        if self._through_since(self._blackout_from):
            self._blackout_from = now
        ended = self._blocked_until
        short = self.quota.period <= SHORT_PERIOD
        if short and started is not None and self._paced_refusal(now, started, ended):
            return
        if not short and started is not None:
            if self._long_refusal(now, started, ended):
                return
            self._doubt_rollover(started)
        self._block(now, started, ended)

    def _doubt_rollover(self, started: float) -> None:
        """A start (at `started`) refused with room in the window a probe found open.

        Others spent that window (several processes race for each rollover), or
        the gateway meters finer than the window it names (a 20/s bucket naming
        1200 a minute: the probe got through at 5 s, the burst after it was
        refused from its sixth request on; waited out a minute at a time, 5 got
        through each 30 to 60 s, 55 of 120 requests in 300 s). Once most of the
        requests started since were refused (`_reprobe`), the rollover is probed
        for again: a window others spent refuses the probes until it rolls over
        a period later, and is not doubted again (each doubt costs up to 11
        refusals a minute: others taking all but 3 of 30 a minute, 111 refused
        in 400 s, 172 doubting each window, 122 once); a probe through within
        half a period finds the window named is not what refuses (`overstated`).
        """
        found = self._found
        if found is None or self._phase_unknown or self._confirmed:
            return
        if not found <= started < found + self.quota.period:
            return
        if sum(1 for at in self._recent if found <= at < started) >= self._allowed():
            return  # its own count spent the window: the rollover found stands
        self._doubted = (found, started)

    def _reprobe(self) -> None:
        """Probe for the rollover again if most requests since it was found were refused.

        One refused among successes is noise (an overloaded backend naming the
        quota): the rollover found stands. Judged on the starts after the probe
        that found the rollover, not after the refused start: the refused one
        may be the burst's last, with too few started after it ever to judge by
        (a crawl begun at some seconds of the minute stalled, blocked for it).
        """
        doubted, answers = self._doubted, self._answers
        if doubted is None or answers is None:
            return
        found, started = doubted
        share, judged = answers.share_refused(math.nextafter(found, math.inf))  # the probe not
        if judged < REPROBE_ANSWERS:
            return  # their answers are not in yet
        self._doubted = None
        if share > REPROBE_SHARE:
            self._phase_unknown, self._probe_out, self._reprobing = True, None, True
            self._probe_next = started + self.quota.period / PHASE_PROBES

    def _block(self, now: float, started: float | None, ended: float) -> None:
        """Block until the window rolls over, or a blackout's step: refused (sent at `started`).

        `ended`: the block before it.
        """
        short = self.quota.period <= SHORT_PERIOD
        if started is not None and 0 <= started - ended < BLACKOUT_STEP * self.quota.period:
            self._blocked_until = self._blackout_step(now)
            own = self._leaves(self._kept, now) if not short else math.inf
            if own < self._blocked_until and self._own_looked != self._window_began(own):
                # Sooner, once a window: as its own oldest start of the last period leaves
                # it (a sliding window has room again as starts leave it: three processes
                # sharing one took 137 s on average for what 121 s hold, each refused
                # process waiting half a minute with room come free meanwhile).
                self._blocked_until = own
                self._own_looked = self._window_began(own)
            if not short and not self._rolls_over_at(self._blocked_until):
                # Within the window, one request looks: sent whole into a window others
                # spent, the queue cost a refusal each. At a rollover the queue goes (a
                # race with the others, were they there).
                self._look_at = self._blocked_until
        else:
            self._blocked_until = max(ended, self._next_window(now))
        self._lift_when_through(started, ended)
        if started is not None and not short:
            self._block_set_at = now

    def _nothing_new(self, started: float | None, now: float) -> bool:
        """Whether a refusal (of a request sent at `started`) teaches nothing new.

        Its start leaves the log either way (a window counts what it admitted).
        """
        if started is not None and started < self.since:
            return True  # sent before the quota was known: its refusal is the one that taught it
        self._unlog(started)
        if self._probe_refused_early(started):
            return True  # a probe sent into the window the gateway said was spent
        if started is None:
            return False
        if self._look_out is not None and started >= self._look_out:
            self._look_out = None  # the look was refused (the step it sets sets the next)
        # Sent before the refusal that set the block came back: with it (a burst's next
        # refusal moved a look half a minute on to the next rollover).
        return started < self._block_set_at and self._blocked_until > now

    def _blackout_step(self, now: float) -> float:
        """When to look again, refused right as the last block ended.

        The window rolling over did not help (a penalty box, an outage). Look
        again a step later, not a period, on steps counted from the first refusal
        of the blackout: a penalty box counts its seconds from the excess (a 2-s
        box learned in its first millisecond was looked at 22 ms before its end,
        then half a second late).
        """
        period = self.quota.period
        step = BLACKOUT_STEP * period
        anchor = self._blackout_from
        if period > SHORT_PERIOD:
            # A window longer than a second: on steps from the calendar's rollover, so
            # that every other look is at one. Others sharing the quota spend each
            # window as it rolls over: on steps from a refusal, a client sharing a
            # minute's quota came 0.3 s (or 1 s) after each rollover, where the others
            # had spent it whole (12 of its 40 calls failed; 16 with two others).
            anchor = self._window_began(now)
        return anchor + step * (math.floor((now + step / 2 - anchor) / step) + 1)

    def _long_refusal(self, now: float, started: float, ended: float) -> bool:
        """A refusal under a window longer than a second; True if it is dealt with.

        Noise waits for nothing; a window found not to be the calendar's waits
        until the oldest start in the log leaves it.
        """
        if self._noise(now, started):
            return True  # refusals that do not follow it: nothing waits for the next window
        self._note_before()
        if self.sliding and self._room_by_its_count(started):
            # Refused with room in a sliding window by its own count: others spend the
            # window, which may be the calendar's after all (read as sliding, a client
            # sharing a minute's quota with two others looked again as its own oldest
            # start left it, 0.3 s after the others had spent it whole at the rollover).
            self.sliding = False
            self._blocked_until = max(ended, self._next_window(now))
            self._lift_when_through(started, ended)
            return True
        if not self._not_the_calendar(started, ended):
            return False
        self._blocked_until = max(ended, self._oldest_leaves(now))
        self._lift_when_through(started, ended)
        return True

    def _room_by_its_count(self, started: float) -> bool:
        """Whether its log had room for a start at `started` (counted as the window opens)."""
        period = self.quota.period * (1 + WINDOW_MARGIN)  # as `_oldest_leaves` counts
        return sum(1 for at in self._recent if at < started < at + period) < self._allowed()

    def _lift_when_through(self, started: float | None, ended: float) -> None:
        """Lift the block a refusal set once a request sent no earlier gets through.

        `started`: when the refused request left; `ended`: the block before it.
        `_window_opens` lifts it.
        """
        if started is None or self._answers is None:
            return  # nothing to tell the window's refusals from noise by
        pending = self._lifted_by
        if pending is not None and pending[2] == ended:
            # Refused again while blocked: the latest refused start, the block before them.
            started, ended = max(started, pending[0]), pending[1]
        self._lifted_by = (started, ended, self._blocked_until)

    def _paced_refusal(self, now: float, started: float, ended: float) -> bool:
        """A refusal of a start paced evenly under a short quota; True if it is dealt with.

        A bucket with a small burst refuses a request that arrived a little
        early (arrivals jitter), and admits the first after a short pause; a
        spent window refuses that one too. Blocking until the window rolled over
        at each refusal let one through a second.
        """
        interval = 1 / self.rate()
        right_after = 0 <= started - ended < BUCKET_PAUSE * interval
        if not right_after or (
            self._margin() < MARGIN_MAX and self._sent_since_not_refused(ended, started)
        ):
            # Not right after a block, or a request sent since is out still or got
            # through (a 429 comes back before a success, which the backend answers):
            # the pace was refused, not a window still spent. A 100/s bucket with a
            # burst of 1 let the first start after each block through and refused the
            # next, 10 ms on, in real time: read as a spent window, then a penalty box,
            # 2 a second got through.
            if self._noise(now, started):
                return True  # refusals that do not follow the pace: nothing paused
            if not self.noisy and self._through_since(max(self.since, ended)):
                # Arrivals jitter more than the margin: widen it (a burst of 1 at
                # 50/s refused a quarter of an even pace at 98 %). Not while nothing
                # paced got through: a spent window, a penalty box, not jitter. Nor
                # among refusals at random: two in a row (one in twenty of them at 5 %)
                # are no jitter either, and the margin they widened stayed (a 5/s pace
                # at 84 % after three such pairs).
                self._jitter_margin = min(MARGIN_MAX, 2 * self._margin())
            self._paused = True
            self._blocked_until = max(ended, now + BUCKET_PAUSE * interval)
            return True
        if self._paused:
            self._paused = False  # refused after the pause too: a spent window
            self._blocked_until = max(ended, self._next_window(now))
            return True
        return False

    def _sent_since_not_refused(self, since: float, started: float) -> bool:
        """Whether a start from `since` to the one refused (at `started`) is out or through.

        That is, more started under it than were refused. Each start is logged a moment
        before its request leaves (after the other limits).
        """
        answers = self._answers
        if answers is None or since == -math.inf:
            return False
        sent = sum(1 for at in self._starts if since <= at <= started)
        return sent > answers.refused_started(since, started)

    def _noise(self, now: float, started: float) -> bool:
        """Whether this refusal (after a success, few refused lately) is noise, not the pace.

        Noise once at most `QUOTA_NOISE_LOW` of the last seconds' requests were
        refused at the limit, or a refusal came, with the margin widened already,
        to a start paced a quarter slower than the limit's interval over the
        `NOISE_STARTS` starts before it since the last pause (no bucket's jitter
        refuses that); until more than `QUOTA_NOISE_SHARE` of the requests of
        the last seconds are refused.
        """
        answers = self._answers
        if answers is None or answers.refused_in_a_row() != 1:
            return False  # refused after a refusal: a spent window, an excess
        share, judged = self._share_refused(answers, now)
        if judged >= QUOTA_NOISE_ANSWERS and share > QUOTA_NOISE_SHARE:
            self.noisy = False
            return False
        at_the_limit = self._jitter_margin <= 2 * QUOTA_MARGIN
        enough = judged >= QUOTA_NOISE_ANSWERS
        if not self.noisy and at_the_limit and enough and share <= QUOTA_NOISE_LOW:
            # Few refused at the limit (a bucket's jitter refused a quarter there).
            self.noisy = True
            self._jitter_margin = QUOTA_MARGIN
            return True
        if not self.noisy and self._jitter_margin > QUOTA_MARGIN:
            # The pace over the last starts since the last pause (one gap jitters
            # with the timers; a pause is no pace).
            ended = self._blocked_until
            # Its own start (logged a moment before `started`) and the ones before it.
            starts = [at for at in self._starts if ended <= at <= started][-NOISE_STARTS - 1 :]
            gaps = len(starts) - 1
            spacing = (starts[-1] - starts[0]) / gaps if gaps > 0 else 0.0
            enough = gaps >= NOISE_STARTS // 2
            if enough and spacing >= (1 + MARGIN_MAX) * self.quota.period / self.quota.limit:
                self.noisy = True
                self._jitter_margin = QUOTA_MARGIN
        return self.noisy

    def _share_refused(self, answers: AdaptiveRate, now: float) -> tuple[float, int]:
        """(share refused, answers) of the last seconds, or of the last starts at a slow pace.

        Back over the starts under this quota, newest first, until the requests
        started since hold `QUOTA_NOISE_ANSWERS` answers (some of the last are in flight).
        """
        since = max(self.since, now - QUOTA_NOISE_WINDOW)
        share, judged = answers.share_refused(since)
        for started in reversed(self._starts):
            if judged >= QUOTA_NOISE_ANSWERS or started < self.since:
                break
            if started < since:
                since = started
                share, judged = answers.share_refused(since)
        return share, judged

    def _through_since(self, since: float) -> bool:
        answers = self._answers
        return answers is None or answers.got_through_since(since)


def per_second(quota: Quota) -> float:
    return quota.limit / quota.period
