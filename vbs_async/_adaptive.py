"""The rate and the number in flight learned from the gateway's 429s, when no quota is named.

`AdaptiveRate` is inactive until the first 429; `_limits.RequestLimiter`
makes every request wait for it, and tells it each answer (`Ticket`).

Why `AdaptiveRate` is built the way it is (the gateway models of issue 19;
botocore's adaptive mode, the first anchor, failed each as said):

- A bucket that refuses everything for 2.5 s; a penalty box. botocore: with
  nothing succeeding the measured rate falls to the floor, and the climb
  back is capped at twice it. Here: one cut per round (`CUT_GRACE`); no
  estimate below the goodput of the last `LONG_WINDOW` seconds; above the
  estimate the rate doubles each second until refused.
- N per 5-second window. botocore: the refusals for the rest of each window
  cut again every round. Here: the long-window goodput (N per window) is
  the floor of every cut; once two windows in a row show edges on one
  period of whole seconds and let the same count through (`_windows`), the
  pace holds just under that count per period (in a burst, for a window
  longer than a second), probed above after `WINDOW_PLATEAU` seconds: each
  window's burst, read as the rate, had raised the estimate to 50-60/s of
  20/s after every rollover (131 to 137 refused from 11 s on in a crawl of
  760; now 1 to 5).
- A penalty box, a spent fixed window, an outage: nothing gets through for
  a while. Paced at the estimate, each second of it cost 45 429s, and a
  gateway that punishes an excess was provoked by every probe (every 5 s,
  2 s lost each). Here: after `BLACKOUT_RUN` refusals in a row and no
  success for `TRICKLE_GAP`, requests trickle (`BLACKOUT_TRICKLE`, slower as
  the blackout lasts: `BLACKOUT_PATIENCE`) until one gets through; a probe
  followed by such a blackout (`BLACKOUT_GAP`) was punished: the pace goes back to what held
  before it, the blackout cuts nothing, and the next probe waits
  `PUNISHED_PLATEAU` seconds, doubling, and climbs slowly
  (`PUNISHED_DOUBLING`), so that what it reads is the quota, not its climb.
- A quota that drops, then comes back. botocore: a cubic climb from a
  collapsed `w_max`. Here: after a short plateau the rate doubles each
  second, so a restored quota is found within seconds.
- 4 requests in flight; a bucket with a burst of 3. botocore: a cut to a
  tenth, from the few that got through the first burst. Here: when every
  refused request left with more in flight than any that got through, the
  number in flight is cut (`window`, growing back by one a second) and the
  rate set from it (`window / latency`), not from the first sample; when
  that first sample is too small to be a rate (a connection's first answers
  come late: 4 in flight read as 8/s), the window alone is set, paced at
  twice what it carries (`WINDOW_PACE`).
- 5 % of answers 429 at random. botocore: every round cuts again. Here: a
  cut that does not make refusals rarer within `NOISE_CHECK` is taken back,
  and that share of refusals is noise from then on (decaying). At 10 %, ten
  answers after a cut are too few to tell, and the pace was cut a second at a
  time, to a third of a 50/s bucket: two paces held a tenth apart and refused
  alike make the share noise too (`_held_noise`), and a probe then needs twice
  it to end, or a cut's share more than the pace held. At 20 %, a second of
  ten answers reads over `NOISE_MAX` one time in three: a later cut that left
  as many refused is noise as well, up to `NOISE_MOST` (a 100/s bucket was cut
  six times in four seconds, to 4/s).
- A calendar second; a bucket with a generous burst. botocore: a burst in
  the first moments sets the first cut. Here: the first sample is what got
  through over a second at least, or what got through of the requests sent
  since the first refused one left (a bucket's refill rate), whichever is
  more, never the opening burst over the fraction of a second it took (a
  burst of 50 in 0.15 s read 350/s, and 0.3 s at that pace was mostly 429s);
  a second cut within the first second counts only what its paced requests
  got through; and a held pace refused more than `CUT_SHARE` (a 1-second
  count that straddled two calendar windows) lowers the estimate to what
  the held pace got through, rather than the probe after it keeping it.
- A bucket with a small burst (50/s, 10). The first burst's requests leave
  together and reach the gateway in any order: the 10 of its burst that got
  through counted as sent since the first refused one, 228/s in 40 ms, and
  0.3 s at 205/s cost 20 429s. Here: the first cut is lowered to what got
  through of the requests sent since the first refusal came back, once a
  round of them is answered (`_refine_first_cut`). Each refused probe's last
  second counted the burst saved up under the held pace (53/s), and the pace
  held at 95 % of that was refused twice a second for good. Here: refusals
  that last at a held pace (`LASTING`) lower it to what got through of it,
  and for `CEILING_MEMORY` seconds a refused probe raises the estimate no
  higher; such a cut is judged noise or not over as long as it took.

- A gateway that answers in more than a second. Judged by the requests
  started in the last second, none of which were answered yet, its 429s never
  cut (81 % of a 5/s bucket's answers refused at 1.2 s). Here: the last
  second's share and goodput count starts early enough for half of them to be
  answered, and a cut's steps (`CUT_GRACE`, `APPROACH`, the plateau, probing)
  stretch with the latency past `SLOW_ANSWERS`: a round trip, not a second
  (at the cost of a slower climb back: a restored quota behind answers of a
  second is found in 6 to 8 s, not 5).

Not done: a slow start of requests in flight (TCP's: few at first, doubling
each round trip until the first refusal). Against a bucket's saved-up burst
(50 at 50/s) the doubling reaches 32 in flight in five round trips, before
the burst runs dry, so the first refusal would still find about as many in
flight as now; and every crawl that meets no quota would pay those round
trips. What the unpaced first burst costs (its 429s) is bounded by the
requests in flight, a crawl's `max_projects` (16) by default.

Once paced, a cut sets the rate to `BETA` of the estimated quota, climbs back
to it over `APPROACH` seconds, holds it for a plateau (doubling after each
probe the gateway refused, so that a penalty box is not provoked every few
seconds), then doubles the rate every `PROBE_DOUBLING` seconds until refused
again (a quota that went away leaves a pace too fast to matter).
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections import deque
from typing import TYPE_CHECKING, Final

import attrs

from ._announced import PROBE_DOUBLING, QUOTA_MARGIN, QUOTA_NOISE_ANSWERS, SHORT_PERIOD
from ._pacing import WINDOW_MARGIN, Pacer, loop_time
from ._windows import COUNT_SLACK, Window, WindowWatch

if TYPE_CHECKING:
    from collections.abc import Callable

BETA: Final = 0.9
"""The share of the estimated quota a cut paces at (the estimate is goodput, not sends)."""
MIN_RATE: Final = 0.5
"""The learned rate never drops below this many requests per second."""
FIRST_LOOK: Final = 0.05
"""Seconds (one and a half latencies at least) after the first 429 before the first cut: the answers
to the first burst are in by then, and a few early answers say little."""
REFILL_FEWEST: Final = 3
"""The fewest successes the refill rate that lowers a first cut is read from."""
FIRST_LOOK_LONGEST: Final = 0.3
"""Seconds after the first cut during which it may still be lowered to the refill rate
(`_refine_first_cut`) once requests sent since the first refusal came back are answered."""
SLOW_ANSWERS: Final = 0.4
"""A median latency above this many seconds stretches the steps after a cut (its grace,
climb, plateau, probing and checks) by as many times: they are a round trip or a few, and
behind a gateway answering in 1.2 s the rate doubled three times before a probe's refusals
came back (81 % of a 5/s bucket's answers refused; about 10 % now). Not lower: at 0.2 s, a
quota restored behind 0.55-s answers was found 4 to 8 s later instead of 1 to 1.5 s (the
climb back is stretched too); stretching only the doubling and the grace, not the plateau,
refused half the answers at 1.2 s again."""
LASTING: Final = 2.0
LASTING_SHARE: Final = 0.02
"""Refusals over `LASTING` seconds since a cut above this share cut too (a pace a few
percent above the quota)."""
CUT_SHARE: Final = 0.1
"""The share of refusals (over the last second) a cut needs: fewer say a pace a few
percent off, or a backend's noise, not where the quota is."""
PROBE_AFTERMATH: Final = 2.5
"""Seconds after a refused probe during which refusals of the pace held make no further cut
unless less than half the estimate gets through: a gateway may refuse everything for a
while after any excess (a penalty box). A next probe begun meanwhile is judged as any."""
RECENT: Final = 1.0
"""Seconds of starts whose answers estimate the quota once paced."""
SHORT_WINDOW: Final = 1.0
"""Seconds over which the first sample's goodput is measured (a second at least)."""
LONG_WINDOW: Final = 10.0
"""Seconds over which goodput is measured for the floor of a cut: a fixed window or a
penalty box refuses everything for a while, which a short window would take for the rate."""
CUT_GRACE: Final = 0.3
"""Seconds after a cut during which further 429s do not cut again: they answer requests
sent at the old rate, or come while the gateway's bucket refills."""
HOLD: Final = 0.95
"""The share of the estimated quota the rate holds at between cuts and probes: paced at
the quota exactly, arrivals that jitter overflow a window that has no burst."""
APPROACH: Final = 0.5
"""Seconds the rate takes to climb from a cut back to the estimated quota."""
PLATEAU: Final = 1.0
"""Seconds the rate holds at the estimate before probing beyond it (longer for a gateway
that punished a probe, up to `PENALTY_PLATEAU_MAX`)."""
PENALTY_PLATEAU_MAX: Final = 30.0
"""The longest plateau between probes of a gateway that punishes an excess."""
PROBE_GAIN: Final = 1.03
"""A refused probe raises the estimate by at most this factor (its pace, refused, is
above the quota by as much as the refusal took to come back). Small: what carried the
probe may be a bucket's saved-up tokens, and an estimate 10 % high (1.1 before) held a
pace 5 % over a 50/s bucket, under the share of refusals that lowers it (4 429s a
second all along); a fast bucket with a tiny burst (400/s, 3) still climbs by it."""
PROBE_PLATEAU_MAX: Final = 2.0
"""The plateau grows after each refused probe, up to this many seconds (a restored
quota must still be found within seconds)."""
CEILING_MEMORY: Final = 20.0
"""Seconds during which a probe refused raises the estimate no higher than what got
through of a pace held under it and refused for seconds (a few per cent, `LASTING`),
unless it read more than `CEILING_BURST` times that. The probe's last second counts a
bucket's burst saved up while held under the quota (53/s of a 50/s bucket with a burst
of 10): held at 95 % of that, 2 429s a second all along, each probe raising it again.
Forgotten after that long (a quota raised by less than a quarter is found then), and
when the refusals turn out to be noise."""
CEILING_BURST: Final = 1.25
"""A probe's reading over this many times that ceiling is a quota raised since, not a
bucket's saved-up burst (10 of a 50/s bucket's in a second read 53 to 55/s): taken."""
WINDOW_PACE: Final = 2.0
"""While only a window in flight is in force (the first burst's refusals, no rate yet),
starts are paced at this many times what the window carries at the answers' latency: a
429 comes back at once, and its slot went to the next request waiting at once. Behind a
100/s bucket with a burst of 1, the window grown to 2 let 15 requests through its second
slot in 7 ms, each refused (real time)."""
BLACKOUT_RUN: Final = 5
BLACKOUT_SHARE: Final = 0.2
BLACKOUT_TRICKLE: Final = 10.0
"""After `BLACKOUT_RUN` refusals in a row, nothing is getting through (a spent calendar
window, a penalty box, an outage): requests start at `BLACKOUT_SHARE` of the estimate
(at least `BLACKOUT_TRICKLE` a second, to see the end soon) until one succeeds, and
then at the full rate again."""
TRICKLE_GAP: Final = 0.1
"""Seconds without a success (or three of the estimate's intervals) after `BLACKOUT_RUN`
refusals in a row that start the trickle: at `BLACKOUT_GAP`, the first burst into a spent
window or a penalty box was paced at the estimate for a quarter second more (1.12x a
crawl's requests behind 100 per 5 s, now 1.09x; a 2-s box 1.08x, now 1.06x, fake clock).
Not for a punishment: a bucket whose quota dropped (60/s to 7.7/s) lets one through each
130 ms, and a blackout read there held 60/s for 2 s after it (the property)."""
CUT_ANSWERS: Final = 10
"""The fewest answers a cut's share of refusals is judged on (`_judged_from`)."""
BLACKOUT_PATIENCE: Final = 4.0
BLACKOUT_SLOWEST: Final = 4.0
BLACKOUT_TAIL: Final = 20.0
"""The trickle slows as the blackout lasts, to `BLACKOUT_PATIENCE` divided by the seconds
it has lasted (a quarter of that between requests), but not under `BLACKOUT_SLOWEST` a
second, nor, past `BLACKOUT_TAIL / BLACKOUT_SLOWEST` seconds, under a request each
twentieth of the time it has lasted. At 10 a second, a 5-second window spent in its
first half second cost about 30 refusals a window; at 4, 17, its end seen at most a
quarter second late. Not 2: 14 refusals, 100 per 5 s 1.086x a crawl's requests → 1.072x,
but a window others spend as it rolls over (120 a second to 100 per 2 s) was seen open
less often: 120 pages in 4.8 s on average over 16 phases, not 3.7 (fake clock; an
outsider's gateway in real time, another client sending 100 a second: 80 projects
unfinished after 50 s where 21 to 28 s did). Past it: 4 a second into a minute's window spent in its
first seconds, or an outage of a minute, cost 1.40x a crawl's requests behind 300 a
minute (247 sent into the outage, 75 now; its end seen up to 3 s late, not a quarter
second). Edges seen that loosely fit many whole seconds: `_windows` reads the one whole
minute among them."""
BLACKOUT_GAP: Final = 0.25
"""Seconds (or three of the estimate's intervals, if longer) without a success after a
refused probe that make a punishment: a penalty box or a spent fixed window refuses
everything after an excess, a bucket overdrawn still lets one through each interval."""
NOISE_RUN_ODDS: Final = 1e-5
"""How seldom the noise known may draw the refusals in a row that tell a punishment."""
PUNISHED_PLATEAU: Final = 20.0
"""The plateau after a first punished probe (doubling with each, up to
`PENALTY_PLATEAU_MAX`): each probe of such a gateway costs a blackout (2 s of a box's
quota) and gains a few per cent (`PROBE_GAIN`), or finds a raised quota. Probed every
8 s, a 2-s box cost a probe's blackout in each 10 s of the crawl (0.59 efficiency on the
fake clock, 1.11x the requests); every 20 s, about a tenth of the time."""
FIRST_PUNISHED_TRUSTED: Final = 1.1
FIRST_PUNISHED_SPAN: Final = 1.5
"""A first punished probe reading between these many times the estimate before it raises
that estimate by `PROBE_GAIN` only: a calendar second of 50, read at 65 by a second
counted across two windows, was held over its quota and refused 13 times in the 3 s
after the box (51 refused of 811 requests, now 35 of 795; over 32 phases of the second
1.066x the requests, now 1.060x; fake clock). Over the span, the estimate was a
blackout's floor (6.9/s of a box around 50/s, read at 53), not a quota; under a tenth
over it, the reading is taken."""
PUNISHED_DOUBLING: Final = 7.0
"""Seconds in which a probe of a gateway that punished one doubles (not `PROBE_DOUBLING`):
it climbs a tenth a second, so its refusal comes just above the quota and the second
before it counts the quota, not the climb. Doubling in 0.7 s, the second before a
refusal at 20/s counted the climb, 12.5/s, each punished probe went back to it, and
a 2-s box around a 20/s bucket with a burst of 1 ran at 11/s of 20 for good (0.48
of the quota; 0.42 to 0.57 behind boxes of 2 to 5 s around buckets of 5 to 20/s, now
0.60 to 0.72; fake clock). A probe of a gateway that punished none, or of a window
held, still doubles fast: a quota restored after a drop is found within seconds; behind
a gateway that punished a probe, a raised quota is found in tens of seconds."""
NOISE_CHECK: Final = 0.3
"""Seconds after a cut at which it is checked that the cut lowered the share of refusals."""
NOISE_HALF_LIFE: Final = 30.0
"""Seconds in which the share of refusals taken for noise halves."""
NOISE_MIN: Final = 0.03
"""Fewer refusals than this share before a cut are too few to call noise."""
NOISE_MAX: Final = 0.3
"""More refusals than this share are a quota's, not noise."""
NOISE_KEPT: Final = 0.6
"""A cut that leaves this much of the share of refusals did not help: noise."""
NOISE_MOST: Final = 0.245
"""The most noise a cut that left as many refused, over `NOISE_MAX`, marks: a cut then
needs more than twice it and a point, half the answers, and a pace refused more than half
is over twice any quota (more refused after the cut than that: a quota's, not noise)."""
NOISE_CEILING: Final = 2 * NOISE_MOST + 0.01
"""A share refused that no noise explains: half, what a cut needs once `NOISE_MOST` is taken."""
NOISE_SPREAD: Final = 0.6
"""Paces held this far apart (the lower over the higher) and refused alike are noise even
over `NOISE_MAX`, up to `NOISE_MOST` (see `_held_noise`)."""
HELD_ANSWERS: Final = 12
HELD_STEP: Final = 0.9
HELD_MEMORY: Final = 20.0
NOISE_ALIKE: Final = 0.8
"""Two paces held under the estimate, one at most `HELD_STEP` of the other, each with this
many answers at least, within `HELD_MEMORY` seconds, the lower refused `NOISE_ALIKE` as
often as the higher at least: refusals that do not follow the pace are noise (see
`_held_noise`). Paces both over a quota are refused 1 - quota/pace each: the lower, a tenth
lower, less than 0.75 as often while the higher is refused under `NOISE_MAX` (0.6 took a
pace held 24 % over a calendar second, where a probe had raised the estimate, and the pace
held just under it next, 15 % and 14 % refused, for noise: 16 refused from 7 s on, not 2)."""
WINDOW_GOODPUT: Final = 0.75
"""A window read is held under only if it carries this share of the goodput of the last
`LONG_WINDOW` seconds at least: a gateway refusing everything 2 s in every 5 (an outage,
not a count) was read as the count a hold had sent per window, and held there (28 per
5 s of 90). Not nine tenths: a true 100 per 5 s, read while the last ten seconds held
an opening burst, was turned away for a window or two (1.16x the requests, not 1.13x)."""
WINDOW_PLATEAU: Final = 8.0
"""Seconds a pace just under a fixed window read from the answers holds before it is probed
above (doubling each time the window refused the probe, up to `PENALTY_PLATEAU_MAX`)."""


@attrs.define
class Ticket:
    """One request's start, for the controller to judge its answer by.

    Attributes:
        started: When it left.
        in_flight: Requests in flight when it left, itself included.
    """

    started: float
    in_flight: int


@attrs.define
class _Cut:
    """The controller's state after a cut, to go back to if the cut did not help."""

    at: float
    rate: float
    estimate: float
    plateau: float
    share_before: float
    probe: bool = False
    punished: bool = False
    rounds: float = 1.0  # the time constants' scale: slower answers, slower steps
    lasting: bool = False  # made by refusals that lasted, a few per cent (`LASTING_SHARE`)
    blind: bool = False  # read in a blackout: the long run's goodput, a floor, not a quota
    slow_probe: bool = False  # a punishment's: probed doubling in `PUNISHED_DOUBLING`


def _refused_alike(higher: float, lower: float, most: float = NOISE_MAX) -> bool:
    """Whether a lower pace was refused about as often as a higher one, both under `most`."""
    return NOISE_MIN <= higher < most and NOISE_ALIKE * higher <= lower < most


def _pooled_share(stretches: list[_Stretch]) -> float | None:
    """The share refused of `stretches` taken together, if they are alike (None: not).

    Alike: `HELD_ANSWERS` answers at least in all, and each stretch refused as
    often as the pool within two deviations and one answer. A clean pace held before
    a quota dropped (37 answers, none refused) pooled with one refused after it (11
    of 15) read 21 %, as often as the paces held under the lower quota were: noise
    was taken (a 50 -> 10 -> 50/s schedule: 888 requests for 760, not 805).
    """
    answers = sum(x.answers for x in stretches)
    if answers < HELD_ANSWERS:
        return None
    share = sum(x.refused for x in stretches) / answers
    for x in stretches:
        if abs(x.refused - x.answers * share) > 2 * math.sqrt(x.answers * share * (1 - share)) + 1:
            return None
    return share


@attrs.define
class _Stretch:
    """The answers to requests started at one held pace (after one cut, not probing)."""

    cut_at: float
    pace: float
    answers: int = 0
    refused: int = 0

    @property
    def share(self) -> float:
        return self.refused / self.answers


class AdaptiveRate:
    """The rate (and number in flight) a throttling gateway sustains, learned from its 429s.

    See the module's docstring for why each part is there. Until the first
    throttling answer there is no limit. A 429 of a request started at
    least `CUT_GRACE` after the last cut cuts: the quota is estimated (the
    pace times the share that got through, at least the goodput of the last
    `LONG_WINDOW` seconds) and the rate set to `BETA` of it; it climbs back
    and probes beyond as that docstring says.

    Attributes:
        max_rate: The ceiling (the user's `rate_limit`), or None.
        max_concurrency: The client's cap on requests in flight.
        active: Whether the rate is paced (a 429 has been seen, and not taken for noise).
        estimate: The quota as last estimated, in requests per second.
        throttled_answers: 429s seen.
        cuts: Times the rate was cut.
        reverted: Cuts taken back because they did not lower the refusals (noise).
    """

    def __init__(
        self,
        max_rate: float | None = None,
        clock: Callable[[], float] = loop_time,
        *,
        max_concurrency: int | None = None,
    ) -> None:
        self.max_rate = max_rate
        self.max_concurrency = max_concurrency
        self.active = False
        self.estimate = math.inf
        self.throttled_answers = 0
        self.cuts = 0
        self.reverted = 0
        self._clock = clock
        self._pacer = Pacer(clock)
        # (answered, started, in flight at start, ok), newest last, LONG_WINDOW long.
        self._answers: deque[tuple[float, float, int, bool]] = deque()
        self._first_answer = -math.inf
        self._cut: _Cut | None = None
        self._previous: _Cut | None = None
        self._checked = True
        self._noise = 0.0
        self._noise_at = -math.inf
        self._window = math.inf
        self._window_at = -math.inf
        self._first_refusal: float | None = None
        self._refused_run = 0  # refusals answered since the last success
        self._run_began = -math.inf  # when the first of those left
        self._back_at = -math.inf  # when the first success after a blackout left
        self._last_success = -math.inf
        self._punished_plateau = 0.0
        self._punished_until = -math.inf  # refusals of requests started before: no cut
        # A fixed window read from the order of the answers, and the cut that holds under it.
        self._windows = WindowWatch()
        self._window_cut: _Cut | None = None
        self._window_plateau = 0.0
        self._window_held: Window | None = None
        self._held_starts: deque[float] = deque()
        self._held_block = -math.inf
        # (when, rate): the quota as last read from a held pace refused for seconds.
        self._ceiling = (-math.inf, math.inf)
        # When a pace held after a punishment was refused again, and the lowest such pace.
        self._set_off = (-math.inf, math.inf)
        # (the first cut, the first refusal, what got through over a second): see
        # `_refine_first_cut`.
        self._refine: tuple[_Cut, float, float] | None = None
        # Answers to requests started at a held pace: (answered, ok), `HELD_MEMORY` long.
        self._held_answers: deque[tuple[float, bool]] = deque()
        self._held_refused = 0  # of them (summed on every answer, they were a hot path)
        self._stretches: deque[_Stretch] = deque(maxlen=8)  # a few seconds' cuts, at least

    # -- what is in force now ------------------------------------------------------------

    @property
    def rate(self) -> float:
        """The rate in force, in starts per second (inf while inactive)."""
        now = self._clock()
        rate = self._rate_at(now)
        if self.active and self._blackout(now, TRICKLE_GAP):
            # Nothing gets through: a trickle finds when it does again.
            # Slower as it lasts (a spent window may last seconds).
            trickle = max(BLACKOUT_TRICKLE, BLACKOUT_SHARE * self.estimate)
            lasted = max(now - self._last_success, 1e-3)
            slowest = min(BLACKOUT_SLOWEST, BLACKOUT_TAIL / lasted)  # a long one: slower
            return min(rate, trickle, max(slowest, BLACKOUT_PATIENCE / lasted))
        return rate

    def _blackout(self, now: float, gap: float = BLACKOUT_GAP) -> bool:
        """Whether nothing gets through: refusals in a row, and none through for a while.

        A bucket overdrawn, or refusals at random, let one through every
        interval: only a penalty box, a spent fixed window or an outage do not.
        """
        gap = max(gap, 3 / self.estimate)
        return self._refused_run >= BLACKOUT_RUN and now - self._last_success >= gap

    def _rate_at(self, when: float) -> float:
        cut = self._cut
        if not self.active or cut is None:
            return math.inf
        held = self._holding()
        if held is not None and held.period > SHORT_PERIOD:
            return self.max_rate or math.inf  # sent in bursts, under `opens`
        since = (when - cut.at) / cut.rounds
        if since < APPROACH:
            hold = HOLD * cut.estimate
            rate = cut.rate + (hold - cut.rate) * max(0.0, since / APPROACH)
        elif since < APPROACH + cut.plateau:
            rate = HOLD * cut.estimate
        else:
            doubling = PUNISHED_DOUBLING if cut.slow_probe else PROBE_DOUBLING
            probing = (since - APPROACH - cut.plateau) / doubling
            rate = HOLD * cut.estimate * 2.0 ** min(probing, 64)
        return max(MIN_RATE, min(rate, self.max_rate or math.inf))

    @property
    def window(self) -> float:
        """Requests in flight allowed (inf: only `max_concurrency`); grows by one a second."""
        if self._window == math.inf:
            return math.inf
        grown = self._window + math.floor(max(0.0, self._clock() - self._window_at))
        if self.max_concurrency is not None and grown >= self.max_concurrency:
            self._window = math.inf
            return math.inf
        return grown

    def refused_in_a_row(self) -> int:
        """Refusals answered since the last success."""
        return self._refused_run

    def share_refused(self, since: float, until: float = math.inf) -> tuple[float, int]:
        """(share refused, answers) among the requests started since `since` (10 s at most).

        Only those started before `until`, if given.
        """
        return self._share_refused(since, until)

    def settled(self, now: float) -> float:
        """When the requests started before it have had their answers, as the slowest lately.

        A 429 comes back at once, a success after the backend: among the requests
        of the last moments, the answered are mostly refusals.
        """
        slowest = max((a - at for a, at, _, good in self._answers if good), default=0.0)
        return now - slowest

    def got_through_since(self, since: float) -> bool:
        """Whether a request started since `since` got through."""
        return any(good for _, started, _, good in self._answers if started >= since)

    def refused_started(self, since: float, until: float) -> int:
        """Refusals answered to the requests started from `since` to `until` (10 s at most)."""
        return sum(1 for _, at, _, good in self._answers if not good and since <= at <= until)

    def started_through(self, since: float, until: float = math.inf) -> list[float]:
        """When each request started since `since` (before `until`) that got through left.

        In order; 10 s at most.
        """
        found = []
        for answered, started, _, good in reversed(self._answers):
            if answered < since:
                break  # answered before `since`, and every one before it: started before too
            if good and since <= started < until:
                found.append(started)
        return sorted(found)

    def noise(self) -> float:
        """The share of refusals taken for noise (decaying), not for the rate."""
        age = self._clock() - self._noise_at
        return self._noise * 0.5 ** (age / NOISE_HALF_LIFE) if self._noise else 0.0

    async def acquire(self, *, urgent: bool = False) -> float:
        """Wait for this request's turn (an `urgent` one first); return its start time."""
        if not self.active:
            if self._window == math.inf:
                return self._clock()  # nothing learned yet: unpaced (every request until a 429)
            return await self._pacer.wait(self.window_pace, urgent=urgent)
        return await self._pacer.wait(lambda: self.rate, not_before=self.opens, urgent=urgent)

    def window_pace(self) -> float:
        """Starts a second while only a window in flight is in force (`WINDOW_PACE`; inf: none)."""
        if self._window == math.inf:
            return math.inf
        latency = self._latency(self._clock())
        return WINDOW_PACE * self.window / latency if latency > 0 else math.inf

    # -- measuring -----------------------------------------------------------------------

    def _record(self, ticket: Ticket, ok: bool) -> float:
        now = self._clock()
        if self._first_answer == -math.inf:
            self._first_answer = now
        answers = self._answers
        answers.append((now, ticket.started, ticket.in_flight, ok))
        if ok and self._refused_run >= BLACKOUT_RUN:
            self._back_at = ticket.started  # the first through after refusals in a row
        elif not ok and not self._refused_run:
            self._run_began = ticket.started
        self._refused_run = 0 if ok else self._refused_run + 1
        if ok:
            self._last_success = now
            if self._punished_until == math.inf:
                # The punishment is over; a cut's last-second and lasting counts,
                # from `LASTING` on, no longer hold the blackout.
                self._punished_until = now + LASTING
        while answers and answers[0][0] <= now - LONG_WINDOW:
            answers.popleft()
        self._note_held(ticket, ok, now)
        window = self._windows.answered(ticket.started, ok, now, lambda: self._latency(now))
        if window is not None:
            self._hold_under(window, now)
        return now

    def _note_held(self, ticket: Ticket, ok: bool, now: float) -> None:
        """Count an answer to a request started at a held pace, and mark noise they show."""
        cut = self._cut
        if (
            not self.active
            or cut is None
            or ticket.started < cut.at + CUT_GRACE * cut.rounds
            or ticket.started < self._punished_until
            or self._rate_at(ticket.started) > HOLD * cut.estimate * (1 + 1e-9)
        ):
            return  # the old pace's answers, a punishment's, or a probe's
        held, stretches = self._held_answers, self._stretches
        held.append((now, ok))
        self._held_refused += not ok
        while held and held[0][0] <= now - HELD_MEMORY:
            self._held_refused -= not held.popleft()[1]
        if not stretches or stretches[-1].cut_at != cut.at:
            stretches.append(_Stretch(cut.at, HOLD * cut.estimate))
        stretches[-1].answers += 1
        stretches[-1].refused += not ok
        level = self._held_noise(now)
        if level > self.noise():
            self._noise, self._noise_at = level, now

    def _held_noise(self, now: float) -> float:
        """The share of refusals at random that paces held lately show (0: none shown).

        A pace held under the estimate and refused, then held a tenth lower or
        more and refused about as often: the refusals do not follow the pace
        (over the quota, the lower pace is refused much less, or not at all).
        Then all that the held paces of the last `HELD_MEMORY` seconds were refused
        is the noise's share, up to `NOISE_MAX`. Needed beside the check of each
        cut: at 10 % at random, the ten answers a cut is checked on held none of
        them one time in three, and each cut was taken for the quota's; a cut
        a second (a second's share over `CUT_SHARE` half the time) ratcheted a
        50/s bucket's pace down to 14/s, and each probe was refused by the noise
        (23 s for 450 requests, not 9.6; now 13).
        """
        judged = [
            x for x in self._stretches if x.answers >= HELD_ANSWERS and x.cut_at > now - HELD_MEMORY
        ]
        found = 0.0
        for i, higher in enumerate(judged):
            for lower in judged[i + 1 :]:
                if lower.pace <= HELD_STEP * higher.pace and _refused_alike(
                    higher.share, lower.share
                ):
                    found = max(found, min(higher.share, lower.share))
        pooled, wide = self._pooled_noise(now)
        found = max(found, pooled)
        if found:
            return max(found, self._held_share(1))
        return min(NOISE_MOST, max(wide, self._held_share(1))) if wide else 0.0

    def _pooled_noise(self, now: float) -> tuple[float, float]:
        """(noise, noise over `NOISE_MAX`) the paces held lately show, taken together.

        The paces held before a step down (a tenth at least, as in `_held_noise`),
        and those held after it. Cut to a few requests a second, each pace held was
        answered 5 to 13 times, none the dozen a pair is judged on, and the pace went
        on down: a 20/s bucket, a fifth at random, paced at 1 to 3/s (240 requests in
        40 and 68 s, ideal 15; now 25 and 19; fake clock).
        """
        recent = [x for x in self._stretches if x.cut_at > now - HELD_MEMORY]
        found = wide = 0.0
        for i in range(1, len(recent)):
            high, low = recent[:i], recent[i:]
            step = max(x.pace for x in low) / min(x.pace for x in high)
            if step > HELD_STEP:
                continue
            hs, ls = _pooled_share(high), _pooled_share(low)
            if hs is None or ls is None:
                continue
            if _refused_alike(hs, ls):
                found = max(found, min(hs, ls))
            elif step <= NOISE_SPREAD and _refused_alike(hs, ls, NOISE_CEILING):
                # Refused about alike over `NOISE_SPREAD` of the pace or more, over
                # `NOISE_MAX` too: a quota would have to have dropped as fast as the pace
                # did. Noise, up to `NOISE_MOST` as for a later cut (a cut then needs half
                # refused, over twice any quota). An outsider's gateway drew a third
                # refused for seconds from 20 % at random: six cuts from 33/s to 2/s, all
                # refused a third to a half, and 88 of 200 projects in 60 s (now 27 s).
                wide = max(wide, min(hs, ls))
        return found, wide

    def _held_share(self, fewest: int) -> float:
        """The share of the paces held lately refused, up to `NOISE_MAX` (0: fewer answers)."""
        held = self._held_answers
        if len(held) < fewest:
            return 0.0
        return min(NOISE_MAX, self._held_refused / len(held))

    def _hold_under(self, window: Window, now: float, *, refused: bool = False) -> None:
        """Pace just under a fixed window read from the answers (see `_windows`).

        A window of a second is paced evenly just under its count; a longer
        one is sent in a burst of its whole count at most in any of its
        periods (a log of starts, as under an announced quota). Held for a
        plateau, then probed above as after any cut; a probe the window
        refused (`refused`) waits for its next edge, and the plateau doubles.
        """
        cut = self._cut
        if self._holding() is not None and not refused:
            return  # held under it already, and nothing refused since
        lately, watch = LONG_WINDOW, self._windows
        if watch.first_edge < now and watch.first_count <= window.limit * (1 + COUNT_SLACK):
            # The crawl's first window, begun anywhere in it, is no whole period: its count
            # says more than its rate (begun 4 s into a calendar window of 100 per 5 s, it
            # and the next let 31 a second through, and the window read was turned away at
            # each edge: 1.10x to 1.13x the crawl's requests, 1.07x to 1.09x now; fake
            # clock). More through before the first edge than the count read: no count
            # that ran out.
            lately = min(lately, now - watch.first_edge)
        if not refused and window.rate < WINDOW_GOODPUT * self._goodput(now, lately):
            # Less than the gateway let through lately: not a count that ran out (an
            # outage every 5 s, read as the 30 a hold of its own had sent per window).
            return
        if window.period <= SHORT_PERIOD:
            # A bucket drawn a little over its rate may pass for a window of a second:
            # probed as often as after any cut (a quota raised is found within seconds).
            first, most = PLATEAU, PROBE_PLATEAU_MAX
        else:
            first, most = WINDOW_PLATEAU, PENALTY_PLATEAU_MAX
        plateau = first if self._window_cut is None else min(most, 2 * self._window_plateau)
        self._window_plateau = plateau
        target = (1 - QUOTA_MARGIN) * window.rate
        if self.max_rate is not None:
            target = min(target, self.max_rate)
        estimate = target / HOLD
        if not refused:
            self._previous = cut if self.active else None
        rounds = max(1.0, self._latency(now) / SLOW_ANSWERS)
        self._cut = self._window_cut = _Cut(
            now, target, estimate, plateau, 0.0, punished=True, rounds=rounds
        )
        self._window_held = window
        # Its current window, as read: spent by what got through of it already.
        opened = self._window_edge(window, now) - window.period
        self._held_starts = deque(self.started_through(opened))
        self._held_block = self._window_edge(window, now) if refused else -math.inf
        self._checked = True
        self._first_refusal = None
        self.estimate = estimate
        self.active = True
        self.cuts += 1

    @staticmethod
    def _window_edge(window: Window, now: float) -> float:
        """When the window read next rolls over after `now` (a start at an edge opens one)."""
        passed = math.floor((now - window.read_at) / window.period)
        return window.read_at + window.period * (passed + 1)

    def _holding(self) -> Window | None:
        """The window paced under, if its hold is the cut in force."""
        cut = self._cut
        held = self._window_held
        return held if self.active and cut is not None and cut is self._window_cut else None

    def _probing_window(self, when: float) -> float:
        """How far above a held window's limit a start at `when` may go (1: the plateau)."""
        cut = self._cut
        assert cut is not None  # noqa: S101 - only while holding
        since = (when - cut.at) / cut.rounds - APPROACH - cut.plateau
        return 2.0 ** min(since / PROBE_DOUBLING, 64) if since > 0 else 1.0

    def opens(self) -> float:
        """When the next start may leave under a held window (-inf: none held, or its turn)."""
        window = self._holding()
        if window is None:
            return -math.inf
        if window.period <= SHORT_PERIOD:
            return self._held_block  # paced evenly by `rate`
        now = self._clock()
        # Its whole count: the log spaces every start a period and a hundredth from the
        # one its count before (2 % under left a crawl's last 2 of 100 a window later).
        allowed = max(1, math.floor(window.limit * self._probing_window(now)))
        period = window.period * (1 + WINDOW_MARGIN)
        starts = self._held_starts
        while starts and starts[0] <= now - period:
            starts.popleft()
        opens = starts[-allowed] + period if len(starts) >= allowed else -math.inf
        return max(opens, self._held_block)

    def sent(self, started: float) -> None:
        """A request left at `started` (logged under a held window's limit)."""
        if self._holding() is not None:
            self._held_starts.append(started)

    def _goodput(self, now: float, window: float) -> float:
        """Successes a second over the last `window` seconds (as long as answers came)."""
        ok = sum(1 for answered, _, _, good in self._answers if good and answered > now - window)
        return ok / max(SHORT_WINDOW, min(window, now - self._first_answer))

    def _early_goodput(self, now: float) -> float:
        """The first sample's rate: what got through once refusals began, or in a second.

        What got through since the first request left, over that time, counts a
        bucket's saved-up burst as rate (a burst of 50 in 0.15 s reads 350/s).
        Among the requests started since the first refused one left, what got
        through is the gateway's refill rate (a burst of 3 at 400/s reads 400/s);
        all that got through, over a second at least, is a calendar second's
        quota (whose refusals let nothing through until it rolls over).
        """
        refused_from = min((s for _, s, _, good in self._answers if not good), default=now)
        return max(self._over_a_second(now), self._goodput_since(now, refused_from))

    def _over_a_second(self, now: float) -> float:
        """All that got through since the first request left, over a second at least."""
        first_start = min((started for _, started, _, _ in self._answers), default=now)
        ok = sum(1 for *_, good in self._answers if good)
        return ok / max(now - first_start, SHORT_WINDOW)

    def _refill_since(self, now: float, first_refusal: float) -> float | None:
        """The first start since the first refusal came back, once a round of them is answered."""
        latency = self._latency(now)
        since = min((s for _, s, _, _ in self._answers if s >= first_refusal), default=None)
        return since if since is not None and now - latency - since >= latency else None

    def _refine_first_cut(self, now: float) -> None:
        """Lower the first cut to the refill rate, once requests sent since it say it.

        The first burst's requests leave together and reach the gateway in any
        order: among those that left with the first refused one or after it,
        what got through may be a bucket's saved-up burst (10 of a 50/s
        bucket's in 40 ms read 228/s; 0.3 s at 205/s cost 20 429s before the
        next cut). What got through of the requests sent since the first
        refusal came back, a round of them, is the refill rate.

        Not behind slow answers (over `SLOW_ANSWERS`): there the lower first
        cut moved the later ones, and a quota dropped for 5 s and restored
        was found over 5 s late in 6 of 12 runs at 0.55-s answers (none
        before): the next probe was refused by the dropped quota just before
        it came back, and the one after it came seconds later.
        """
        pending = self._refine
        if pending is None:
            return
        cut, first_refusal, floor = pending
        if self._cut is not cut:
            self._refine = None  # cut again since: read anew
            return
        since = self._refill_since(now, first_refusal)
        if since is None or self._through_since(now, since) < REFILL_FEWEST:
            # None sent since is answered yet, or too few got through to be a rate (a
            # 20/s bucket with a burst of 1 read 1/s). A round more, for a while.
            if now > cut.at + FIRST_LOOK_LONGEST:
                self._refine = None
            return
        self._refine = None
        refill = max(floor, self._goodput_since(now, since))
        if refill < cut.estimate:
            self._cut = attrs.evolve(cut, rate=max(MIN_RATE, BETA * refill), estimate=refill)
            self.estimate = refill

    def _held(self, cut: _Cut, now: float, *, lasting: bool = False) -> float | None:
        """The goodput of the pace held after `cut`, if more of it was refused than lasts.

        That is: among the requests started between the climb's end and the
        probe (or now), answered by now, more than `CUT_SHARE` refused (more
        than `LASTING_SHARE`, for refusals that lasted) and at least half the
        estimate through.
        """
        begin = cut.at + APPROACH * cut.rounds
        end = min(begin + cut.plateau * cut.rounds, now - self._latency(now))
        if cut.punished:
            begin = max(begin, self._punished_until)  # the blackout is not the pace's
        held = [good for _, started, _, good in self._answers if begin <= started < end]
        refused = held.count(False)
        least = LASTING_SHARE if lasting else CUT_SHARE
        if len(held) < 10 or refused / len(held) <= max(least, 2 * self.noise() + 0.01):  # noqa: PLR2004
            return None
        goodput = (len(held) - refused) / (end - begin)
        # Less than half through is a blackout (a penalty box, a spent window), not a pace.
        return goodput if goodput >= cut.estimate / 2 else None

    def _goodput_since(self, now: float, since: float) -> float:
        """Successes a second among the requests started since `since` (and answered by now)."""
        until = now - self._latency(now)
        return self._through_since(now, since) / max(until - since, self._latency(now), 1e-3)

    def _through_since(self, now: float, since: float) -> int:
        """Successes among the requests started since `since`, a latency before now at most."""
        until = now - self._latency(now)
        return sum(1 for _, started, _, good in self._answers if good and since <= started < until)

    def _recent_goodput(self, now: float) -> float:
        """Successes a second among the requests started in the last `RECENT` seconds."""
        until = now - self._latency(now)
        # A quarter window at least, however long the answers take (none were
        # counted behind a gateway answering in more than `RECENT` seconds).
        since = min(now - RECENT, until - RECENT / 4)
        ok = sum(1 for _, started, _, good in self._answers if good and since <= started < until)
        return ok / max(until - since, 1e-3)

    def _share_refused(self, since: float, until: float = math.inf) -> tuple[float, int]:
        """(share refused, answers) among requests started after `since` (before `until`)."""
        judged = [good for _, started, _, good in self._answers if since <= started < until]
        if not judged:
            return 0.0, 0
        return judged.count(False) / len(judged), len(judged)

    def _in_flight_estimate(self, now: float) -> tuple[int, float] | None:
        """(window, rate) when the refusals look like a cap on requests in flight.

        That is: every refused request left with more in flight than any
        that got through, in the last second.
        """
        recent = [a for a in self._answers if a[0] > now - SHORT_WINDOW]
        ok = sorted(in_flight for _, _, in_flight, good in recent if good)
        refused = [in_flight for _, _, in_flight, good in recent if not good]
        if not ok or not refused:
            return None
        # Answers overtake each other: most, not all, is the pattern (the 90th percentile).
        window = ok[int(0.9 * len(ok))]
        above = sum(1 for in_flight in refused if in_flight > window)
        if above < 0.9 * len(refused) or (self._window != math.inf and window >= self.window):
            return None
        return window, window / max(self._latency(now), 1e-3)

    # -- feedback ------------------------------------------------------------------------

    def measured_rate(self) -> float:
        """Successful answers a second, over the last two seconds."""
        return self._goodput(self._clock(), 2 * SHORT_WINDOW)

    def refused_under_quota(self, ticket: Ticket) -> None:
        """A 429 that named the gateway's quota: counted, measured, no cut (it is paced)."""
        self.throttled_answers += 1
        self._record(ticket, ok=False)
        # The gateway names its quota: no window is read from its answers (the quota
        # paces them), from the first again once it names none.
        self._windows = WindowWatch()

    def succeeded(self, ticket: Ticket) -> None:
        """A request was answered without throttling."""
        back = self._blackout(self._clock())
        # The first success ever, of a request sent after the first answer (a refusal).
        first_success = self._last_success == -math.inf
        if not self.active and first_success and -math.inf < self._first_answer < ticket.started:
            self._begin_again()
        now = self._record(ticket, ok=True)
        cut = self._cut
        if back and cut is not None and cut.blind and self.active:
            # The first success after a blackout whose cuts read the long run's goodput
            # (a floor: 10 through before a penalty box's first 2 s, read as 5.8/s):
            # the gateway is back, and that floor says nothing of how far. Probe up
            # from it now, not after a plateau (a penalty box's quota of 50/s was paced
            # at 5.8/s for 4 s after its blackout; now a second or two).
            self._cut = attrs.evolve(cut, at=now - APPROACH * cut.rounds, plateau=0.0, blind=False)
        self._refine_first_cut(now)
        self._check_cut(now)
        if not self.active:
            self._first_look(now)

    def throttled(self, ticket: Ticket) -> None:
        """A request was throttled: cut once per round, unless refusals look like noise."""
        self.throttled_answers += 1
        now = self._record(ticket, ok=False)
        self._refine_first_cut(now)
        self._check_cut(now)
        if (
            self._window_probe_refused(ticket, now)
            or self._punished(now)
            or ticket.started < self._punished_until
        ):
            return  # back under a held window, or a punishment's: nothing of the rate
        cut = self._cut
        if not self.active or cut is None:
            if self._first_refusal is None:
                self._first_refusal = now
            self._first_look(now)
            return
        # After a refused probe more refusals of the pace held say little for a while
        # (a gateway may punish the excess): each request backs off on its own
        # meanwhile. The next probe's say what a probe's refusal says: it begins two
        # seconds after a refused one, and 2.5 s let it run on to 84/s of a 50/s bucket
        # (8 refusals each, 1.045x the requests; 1.036x now).
        if ticket.started < cut.at + CUT_GRACE * cut.rounds or (
            cut.probe
            and ticket.started < cut.at + PROBE_AFTERMATH * cut.rounds
            and not 0 < self._recent_goodput(now) < cut.estimate / 2
            and self._rate_at(ticket.started) <= cut.estimate
        ):
            return
        share, _ = self._share_refused(self._judged_from(now))
        if not self._checked and not (cut.lasting and share >= NOISE_MAX):
            # Not judged yet. A cut made by lasting refusals is judged over seconds:
            # meanwhile a quota's share of refusals (one that dropped since) cuts again.
            return
        if self._rate_at(ticket.started) > cut.estimate and share > self._noise_floor(cut):
            # Refused while probing beyond the estimate: the first refusal says
            # enough, and waiting for more costs more of them.
            self._cut_now(now, share, refused_at=self._rate_at(ticket.started))
            return
        floor = 2 * self.noise() + 0.01
        lasting_cut = False
        if share <= max(CUT_SHARE, floor):
            # As few as a pace off by a few percent gives, or the gateway's usual
            # noise: only if they last (the estimate is a few percent high) do
            # they cut, else the probe goes on and finds the quota.
            lasting, _ = self._share_refused(self._answered_from(now, LASTING))
            if not (ticket.started >= cut.at + LASTING and lasting > max(LASTING_SHARE, floor)):
                return
            share, lasting_cut = lasting, True
        self._cut_now(now, share, lasting=lasting_cut)

    def _window_probe_refused(self, ticket: Ticket, now: float) -> bool:
        """Whether `ticket` was a probe above a held window, refused: back under it.

        Refused once the window's count got through: back under it from its next
        edge. (More through: it was raised, or is no window, a bucket refusing the
        probe's burst. Refused under it: another client spends it, or it is not
        what was read. Either is learned from as after any cut, and a window is
        read again at its edges, if it is one.)
        """
        held, cut = self._holding(), self._cut
        if held is None or cut is None or ticket.started < cut.at:
            return False
        opened = self._window_edge(held, ticket.started) - held.period
        through = sum(1 for at in self.started_through(opened) if at <= ticket.started)
        if self._probing_window(ticket.started) > 1 and through <= held.limit * (1 + COUNT_SLACK):
            self._hold_under(held, now, refused=True)
            return True
        return False

    def _noise_floor(self, cut: _Cut) -> float:
        """The share of refusals a probe after `cut` must exceed to be the quota's.

        Twice what the pace held before the probe had refused (and a point, up to
        `CUT_SHARE`), once 20 answers say: refusals at random refused a probe's first score of
        requests (5 % of them), each stopped short of the quota and raised the
        estimate 3 % (a 50/s bucket, 5 % at random: paced at 25/s for good).
        """
        begin = cut.at + APPROACH * cut.rounds
        end = begin + cut.plateau * cut.rounds
        if cut.punished:
            begin = max(begin, self._punished_until)  # the blackout is not the pace's
        held = [good for _, started, _, good in self._answers if begin <= started < end]
        # Twice the noise taken, as a cut needs (a probe ended by the noise's share
        # found no quota: 17/s to 30/s of a 50/s bucket, at 10 % at random), but no
        # more than twice a cut's share (a probe let run on through a quota that
        # dropped since, noise taken from paces over it, sent twice that quota).
        taken = self.noise()
        noise = min(2 * CUT_SHARE, 2 * taken) + 0.01 if taken else 0.0
        if len(held) >= QUOTA_NOISE_ANSWERS and not all(held):
            # No more than a cut needs: refusals above that are a quota's (one that dropped
            # while held), and a probe let run on through them doubled past twice a quota.
            share = held.count(False) / len(held)
            floor = max(noise, min(CUT_SHARE, 2 * share + 0.01))
        elif len(held) < QUOTA_NOISE_ANSWERS and taken:
            # Too few held to say (a plateau at a few requests a second): the noise taken
            # stands for what they were refused. Twice it, capped at 0.21, ended nearly
            # every probe from 3/s at 20 % at random: a 20/s bucket paced at 3 to 5/s for
            # 25 s (fake clock).
            share, floor = taken, noise
        else:
            return noise
        if taken:
            # Noise taken: a cut's share more than the pace held was refused, up to
            # `NOISE_MAX` (a probe over a quota is refused 1 - quota/pace more: under
            # 1.5 times it). Twice the noise, capped at 0.21, ended a probe at 20 % at
            # random one time in two, by chance, at 35 to 58/s of a 100/s bucket: each
            # raised the estimate to what got through, 26/s for 40 s (fake clock).
            floor = max(floor, min(NOISE_MAX, share + CUT_SHARE))
        return floor

    def _punished(self, now: float) -> bool:
        """Whether a refused probe has just turned out punished: back to the pace that held.

        A penalty box (or a spent fixed window) refuses everything for a while
        after an excess: the pace before the probe held, the probe cost a
        blackout, and each cut during it would read the blackout as the rate
        (a penalty box's cuts fell to 18/s of 50/s, then climbed back and
        probed again every 5 s). So the pace goes back to what got through in
        the second before the probe (a tenth under: a bucket's saved-up burst
        may have carried the probe's excess), no refusal of a request started
        in the blackout or within `LASTING` seconds after it cuts, and the next
        probe comes after `PUNISHED_PLATEAU` seconds or more.
        """
        cut, previous = self._cut, self._previous
        if (
            cut is None
            or previous is None
            or not cut.probe
            or cut.punished
            or now > cut.at + PROBE_AFTERMATH * cut.rounds
            or not self._blackout(now)
            or self._refused_run < self._run_beyond_noise()
        ):
            return False
        plateau = min(PENALTY_PLATEAU_MAX, max(PUNISHED_PLATEAU, 2 * self._punished_plateau))
        self._punished_plateau = plateau
        # What got through in the second before the probe's refusal: the pace that
        # held (the estimate before it may be a blackout's reading, 6/s of 50/s).
        begin = max(previous.at, cut.at - SHORT_WINDOW - self._latency(now))
        held = sum(
            1 for _, started, _, good in self._answers if good and begin <= started < cut.at
        ) / max(cut.at - begin, 0.25)
        read = HOLD * min(held, cut.estimate)
        if not previous.punished and (
            FIRST_PUNISHED_TRUSTED * previous.estimate
            < read
            < FIRST_PUNISHED_SPAN * previous.estimate
        ):
            # The first punished probe over an estimate read outside a blackout (a
            # blackout's floor reads far under): the second before its refusal counted
            # two calendar windows (68.8/s of 50 a second, held at 58.9 and refused 13
            # times in the 3 s after the box): a few per cent over the estimate at most.
            read = min(read, PROBE_GAIN * previous.estimate)
        estimate = (
            # After a punished plateau, the pace it held, unless its slow probe read a
            # quota well above it (within `CEILING_BURST`, the second before the
            # refusal counted a bucket's saved-up burst: 57/s of a 50/s bucket's, 10).
            previous.estimate
            if previous.punished and read < CEILING_BURST * previous.estimate
            else max(previous.estimate, read)
        )
        off_at, off_pace = self._set_off
        if now < off_at + CEILING_MEMORY:
            # A pace held after a punishment lately set the gateway off again: the
            # second before this probe counted a bucket's saved-up burst as well.
            estimate = max(previous.estimate, min(estimate, BETA * off_pace))
        self._cut = attrs.evolve(
            cut,
            rate=BETA * estimate,
            estimate=estimate,
            plateau=plateau,
            punished=True,
            # Not a window held (marked punished for its plateau): a bucket drawn a
            # little over its rate may pass for a calendar second, probed as fast as ever.
            slow_probe=True,
        )
        self.estimate = estimate
        self._checked = True
        self._punished_until = math.inf
        return True

    def _run_beyond_noise(self) -> int:
        """The refusals in a row that tell a punishment: more than the noise known draws.

        `BLACKOUT_RUN`, or as many as the noise draws in a row one time in
        `NOISE_RUN_ODDS` (8 at a fifth at random). A fifth at random drew five in a
        row after a probe at 15/s of a 50/s bucket: held there 20 s as punished (an
        outsider's gateway, in real time: 32 s for 200 projects, a loop sleeping 1 s
        on each 429 19 s).
        """
        noise = self.noise()
        if noise <= 0:
            return BLACKOUT_RUN
        return max(BLACKOUT_RUN, math.ceil(math.log(NOISE_RUN_ODDS) / math.log(noise)))

    def _punished_again(self, previous: _Cut, now: float) -> bool:
        """Whether the pace held after a punished probe was punished too: held a tenth lower.

        A second without a success, in a blackout that began with a refusal of
        the held pace (not a probe) after a punishment: the held estimate was
        high (the second before the probe counted two calendar windows: 28/s
        of 20 a second, then a 3-s box after each held second, the long run's
        7/s read as the rate between).
        The estimate goes to a tenth under the least of it and what got
        through since the last blackout ended (over a second at least); the
        punishment's plateau goes on, and the blackout's refusals cut nothing.
        """
        began = self._run_began
        if (
            self._goodput(now, SHORT_WINDOW) > 0
            or not previous.punished
            or previous is self._window_cut
            or began < previous.at + APPROACH * previous.rounds
            or self._rate_at(began) > HOLD * previous.estimate * (1 + 1e-9)
        ):
            return False
        since = max(self._back_at, previous.at)
        through = sum(1 for _, at, _, good in self._answers if good and since <= at < began)
        estimate = BETA * min(previous.estimate, through / max(began - since, SHORT_WINDOW))
        estimate = max(MIN_RATE, estimate)
        self._cut = attrs.evolve(previous, at=now, rate=BETA * estimate, estimate=estimate)
        self.estimate = estimate
        self._checked = True
        self._punished_until = math.inf
        self.cuts += 1
        return True

    def _begin_again(self) -> None:
        """Forget a blackout the crawl began in, at its first success: it says nothing of the rate.

        Begun 4 s into an outage of 2 s in every 5 (90/s otherwise), a second of
        refusals and one success made the first sample: 1 a second. The crawl was
        paced from there, read the outages as a window of 5 per 5 s, and took 133 s
        for 10.6 at the gateway's pace (fake clock). The first refusals after it
        make the first sample now, as if the crawl began with that success.
        """
        self._answers.clear()
        self._first_answer = -math.inf
        self._first_refusal = None
        self._refused_run = 0
        self._windows = WindowWatch()

    def _first_look(self, now: float) -> None:
        """The first cut, once a round of answers is in (a few answers say little)."""
        first = self._first_refusal
        if first is None or now < first + max(FIRST_LOOK, 1.5 * self._latency(now)):
            return
        self._first_refusal = None
        share, _ = self._share_refused(self._answered_from(now, SHORT_WINDOW))
        if share > max(CUT_SHARE, 2 * self.noise() + 0.01):
            cuts = self.cuts
            self._cut_now(now, share)
            cut, floor = self._cut, self._over_a_second(now)
            if self.cuts > cuts and cut is not None and cut.rounds == 1 and cut.estimate > floor:
                # Read from the requests sent since the first refused one left: a
                # refill rate, or a burst that reached the gateway before it.
                self._refine = (cut, first, floor)

    def _answered_from(self, now: float, seconds: float) -> float:
        """The first start of `seconds` of starts of which half at least are answered by now.

        Judging the requests started in the last second judged none behind a
        gateway answering in more than a second: it was never cut (81 % of a
        5/s bucket's answers refused, at 1.2 s latency).
        """
        latency = self._latency(now)
        return now - seconds - (latency - seconds / 2 if latency > seconds else 0.0)

    def _judged_from(self, now: float) -> float:
        """The first start a cut's share of refusals is judged from.

        The last second's, or the last `CUT_ANSWERS` answers' if that second holds
        fewer. At a few requests a second, 20 % at random read 0.3 to 0.67 from three to
        six answers, and each such second cut again: a 20/s bucket paced at 1 to 3/s
        for a minute (fake clock).
        """
        since = self._answered_from(now, SHORT_WINDOW)
        latest = heapq.nlargest(CUT_ANSWERS, (started for _, started, _, _ in self._answers))
        return min(since, latest[-1]) if len(latest) == CUT_ANSWERS else since

    def _latency(self, now: float) -> float:
        answered = [a - s for a, s, _, good in self._answers if good and a > now - SHORT_WINDOW]
        return statistics.median(answered) if answered else 0.0

    def _cap_in_flight(self, now: float, estimate: float, *, first: bool) -> bool:
        """Cap the requests in flight if the refusals say so; True: no pace from this cut."""
        # Paced, as many are in flight as the rate carries, for any gateway: only
        # the unpaced first burst, or a window already learned, tells a cap in flight.
        in_flight = self._in_flight_estimate(now) if first or self._window != math.inf else None
        if in_flight is None:
            return False
        window, carried = in_flight
        if 0.5 * carried <= estimate <= 2 * carried:
            # The goodput is what that many in flight would carry: a cap in flight.
            self._window, self._window_at = window, now
            return False
        if first and estimate < 0.5 * carried:
            # The first burst: every refused request left with more in flight than
            # any that got through, and too few answers are in to measure a rate
            # (the first answers of a connection come late): a cap in flight, or
            # a burst smaller than the requests in flight. Fewer in flight meet
            # both, and leave the rate unpaced (but for `WINDOW_PACE`); a pace comes from the next
            # refusals, with a round more to measure it by. A rate from this
            # sample would be a tenth of what 4 in flight carry.
            self._window, self._window_at = window, now
            return True
        return False

    def _cut_now(
        self, now: float, share: float, refused_at: float | None = None, *, lasting: bool = False
    ) -> None:
        previous = self._cut if self.active else None
        if (previous is None and not any(good for _, _, _, good in self._answers)) or (
            previous is not None and self._punished_again(previous, now)
        ):
            # Nothing got through yet: no basis for a rate (the quota is spent by
            # others, or this is the first request). Each refused request backs off
            # on its own meanwhile, and the first successes give the basis. Or the
            # pace held after a punishment was punished too (held lower already).
            return
        # The pace scheduled, not the trickle through a blackout in force: a probe's
        # refusals that came back as a blackout began were taken for the held pace's, the
        # last second's count (the probe's, two calendar seconds: 67/s of 50) raised the
        # estimate from 33/s as a cut of it, and that cut was taken back as noise: a
        # probe refused every 3 s, 19 refusals each (fake clock: 1.14x a crawl's
        # requests, 1.09x now).
        rate_now = self._rate_at(now)
        self._note_set_off(previous, rate_now, now)
        blind = False
        if previous is None:
            # The first sample: what got through since the first request left,
            # over that time (a second's denominator would make a few early
            # answers a tenth of the quota).
            estimate = self._early_goodput(now)
        elif self._goodput(now, SHORT_WINDOW) == 0:
            # A second without a success (a penalty box, a spent window, an
            # outage): the last seconds say nothing of the rate, the long run
            # does. Never the floor because refusals came together.
            estimate, blind = self._goodput(now, LONG_WINDOW), True
        elif self._recent_goodput(now) == 0:
            return  # a blackout begins: wait for a second of it, or for successes
        else:
            # Over the last second, and what got through of the requests sent
            # lately (a bucket's saved-up burst, counted in the last second's
            # answers, is not in it).
            estimate = min(self._goodput(now, SHORT_WINDOW), self._recent_goodput(now))
            if previous.at < self._first_answer + SHORT_WINDOW and now < previous.at + SHORT_WINDOW:
                # Cut again within a second of a cut in the first second: the last
                # second's answers still hold the opening burst, what got through of
                # the requests paced since does not. Later, what got through since
                # that cut counts the climb from it (35/s of a quota that rose to
                # 131/s, measured over 5.6 s of doubling from 3.5/s).
                paced = self._goodput_since(now, previous.at)
                estimate = min(estimate, paced) if paced > 0 else estimate
        if self._cap_in_flight(now, estimate, first=previous is None):
            return
        plateau, probe = PLATEAU, False
        held = self._held(previous, now, lasting=lasting) if previous is not None else None
        if held is not None and previous is not None and estimate <= 2 * held:
            # Refused at the pace held under the estimate already, before the probe
            # (the estimate is high: a 1-second count straddling two calendar
            # windows, a bucket's saved-up burst): what got through of it is the quota.
            # Unless twice as much got through in the last second: the quota rose
            # since (6/s held, then 42/s restored: the held pace is history).
            estimate, probe = min(estimate, held), False
            if lasting:
                # A few per cent for seconds: the quota lies just under the pace held.
                # Remembered, for a probe's last second may count a bucket's saved-up
                # burst again; a step of `HOLD` over what got through, which read a
                # few per cent low (19.5/s of a 20/s bucket, held at 18.5 for good).
                self._ceiling = (now, max(estimate, HOLD * previous.estimate))
                plateau = previous.plateau
        elif (
            previous is not None and rate_now > previous.estimate and not self._still_out(previous)
        ):
            estimate = self._probe_refused(previous, now, estimate, refused_at)
            # Probe less often.
            plateau, probe = min(PROBE_PLATEAU_MAX, previous.plateau * 1.5), True
        estimate = max(MIN_RATE, min(estimate, self.max_rate or math.inf))
        self._previous = previous
        rounds = max(1.0, self._latency(now) / SLOW_ANSWERS)
        self._cut = _Cut(
            now,
            max(MIN_RATE, BETA * estimate),
            estimate,
            plateau,
            share,
            probe,
            rounds=rounds,
            lasting=lasting,
            blind=blind,
        )
        self._checked = False
        self.estimate = estimate
        self.active = True
        self.cuts += 1

    def _note_set_off(self, previous: _Cut | None, rate_now: float, now: float) -> None:
        """Remember a pace held after a punishment (`previous`) that the gateway refused again.

        Behind a penalty box around a bucket whose burst is half its rate (5 s
        around 10/s, 5), the probe's second before its refusal counted the burst
        (13.6/s), the pace held after the punishment (12.2/s) set the box off
        within seconds, the blind cuts fell to the long run (2.5/s), and the next
        probe from there was punished at the same 12.8/s: a box every 7 s, 253 s
        for a crawl of 76 (fake clock; an outsider's gateways, 0.26 to 0.45 of
        their quota). For `CEILING_MEMORY` seconds a punished probe's estimate
        stays a tenth under the lowest pace refused so: 124 s.
        """
        if previous is None or not previous.punished or rate_now > previous.estimate:
            return  # no punishment, or probing beyond it
        at, pace = self._set_off
        held = self._rate_at(self._run_began)
        self._set_off = (now, min(pace, held) if now < at + CEILING_MEMORY else held)

    def _still_out(self, previous: _Cut) -> bool:
        """Whether nothing got through since before the probe after `previous` began.

        A probe that began in a blackout (a penalty box set off by the crawl's
        first burst, 3 s long) found nothing that its pace provoked: refused
        since before it began, it is the blackout going on, not a probe
        punished (a 5/s bucket in a 3-s box, its first sample 2/s: that pace
        held as punished for 30 s, 2 of 5 a second; an outsider's gateway).
        """
        probing = previous.at + (APPROACH + previous.plateau) * previous.rounds
        return self._refused_run >= BLACKOUT_RUN and self._run_began < probing

    def _probe_refused(
        self, previous: _Cut, now: float, estimate: float, refused_at: float | None
    ) -> float:
        """The estimate after a probe beyond `previous` was refused (`estimate`: the goodput).

        The quota lies between the estimate and the pace refused (the last
        second's goodput mostly counts the plateau, under the estimate: it
        would ratchet down).
        """
        if refused_at is not None and estimate > HOLD * previous.estimate:
            # More got through than the plateau sends: the quota is above it.
            estimate = max(estimate, min(refused_at, PROBE_GAIN * previous.estimate))
        at, ceiling = self._ceiling
        if now < at + CEILING_MEMORY and estimate <= CEILING_BURST * ceiling:
            # No more than a saved-up burst over it: the probe found no higher quota.
            estimate = min(estimate, ceiling)
        # Refused above the estimate says nothing against the estimate itself.
        return max(estimate, previous.estimate)

    def _check_cut(self, now: float) -> None:
        """`NOISE_CHECK` after a cut: take it back if the refusals did not become rarer."""
        cut = self._cut
        if self._checked or cut is None or now < cut.at + NOISE_CHECK * cut.rounds:
            return
        share, answers = self._share_refused(cut.at)
        if answers < 10 and (answers < 3 or now < cut.at + 4 * NOISE_CHECK * cut.rounds):  # noqa: PLR2004
            return  # too few to judge by yet
        if cut.lasting and now < cut.at + LASTING * cut.rounds:
            # Made by a few per cent over `LASTING` seconds: judged over as long (5 % at
            # random, 20 a second: the 10 answers after 0.5 s held none of them three
            # times in five, the cut was taken for the quota's, and each such cut
            # lowered the pace another 5 %: 16 s for 450 requests at 50/s, now 12).
            return
        self._checked = True
        previous = self._previous
        nothing_through = not any(
            good for _, started, _, good in self._answers if started >= cut.at
        )
        if cut.probe and previous is not None and nothing_through:
            # Nothing through even back under the old pace: the gateway punishes
            # an excess (a penalty box). Hold under what the probe measured (a
            # tenth under: it may hold a saved-up burst), never under the old
            # estimate, and probe much more rarely.
            plateau = min(PENALTY_PLATEAU_MAX, cut.plateau * 4)
            estimate = max(previous.estimate, BETA * cut.estimate)
            self._cut = attrs.evolve(cut, rate=BETA * estimate, estimate=estimate, plateau=plateau)
            self.estimate = estimate
            return
        noise = NOISE_MIN <= cut.share_before < NOISE_MAX and (
            NOISE_KEPT * cut.share_before <= share < NOISE_MAX
        )
        if noise and previous is not None and (cut.lasting or not cut.probe):
            # Refused as often after the cut: noise from then on (no more cuts below
            # twice it).
            self.reverted += 1
            level = share
            if cut.lasting:
                # A few per cent for seconds, not a pace a little over the quota (10 %
                # at random on a 30/s bucket cut it every few seconds, to a third).
                # The cut stands, and its probes find the quota again. (Going back to
                # the pace before it sent twice a quota raised since: the property.)
                self._ceiling = (-math.inf, math.inf)  # noise's reading, not the quota's
            else:
                # A cut of the pace held: taken back. (At 15 to 20 % at random, each
                # lowered the pace another fifth, a cut every half second: 450 requests
                # of an unlimited backend, 20 % refused, took 28 s on the fake clock,
                # now 3; a 100/s bucket's 58 s, now 18.) The noise's share is what the
                # paces held lately were refused, if they say (the ten answers checked
                # read 10 % of 15 %, and a second's 33 % cut again).
                level = max(share, self._held_share(QUOTA_NOISE_ANSWERS))
                self._cut = attrs.evolve(
                    cut, rate=BETA * previous.estimate, estimate=previous.estimate
                )
                self.estimate = previous.estimate
            self._noise, self._noise_at = max(self.noise(), level), now
            return
        if (
            previous is not None
            and not cut.probe
            and answers >= 10  # noqa: PLR2004 - as above: ten answers at least
            and NOISE_KEPT * cut.share_before <= share < NOISE_CEILING
            and max(share, cut.share_before) >= NOISE_MAX
        ):
            # Refused as often after the cut or more, and over `NOISE_MAX` before or
            # after: a second of ten answers at 20 % at random reads over it one time in
            # three, and each such cut was taken for a quota's: six cuts in four seconds,
            # a 100/s bucket paced at 4/s (the outsider's gateway: unfinished after 58 s).
            # Noise, up to `NOISE_MOST`; the cut stands (a quota that went on dropping
            # is refused as often too, and taken back it sent twice that quota).
            self._noise, self._noise_at = max(self.noise(), min(share, NOISE_MOST)), now
            return
        if previous is None and noise:
            # Refusals that do not follow the rate: an overloaded backend, not a quota.
            # Only a first cut is taken back: what it cut was unpaced.
            self.reverted += 1
            self._noise, self._noise_at = max(self.noise(), share), now
            self.active = False
            self._cut = None
            self.estimate = math.inf
            self._window = math.inf
