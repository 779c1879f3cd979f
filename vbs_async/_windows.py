"""A fixed window told from the order of a gateway's answers, when it names no quota.

A gateway counting N requests per window of K seconds (on the calendar, or
sliding) admits a window's N, then refuses everything until the window
rolls over: in the order the requests left, its answers run successes, then
refusals, then successes again from the next window on. Each change from a
refusal to a success is a window's edge, somewhere between the refused start
and the admitted one; `WindowWatch` reads a window once `CYCLES` windows in a
row fit one period of whole seconds (a gateway's policies count in seconds,
minutes, hours or days), let through the same number each, and a run of
refusals outlasted every shorter window that divides the period
(`_rules_out_shorter`); edges seen seconds wide (a minute's, through a
slowed trickle) that fit a whole minute among other periods, a minute.

A token bucket overdrawn lets one through each interval (refusals and
successes interleave, windows under a second: not read); a penalty box's
windows last as long as the client's pace takes to provoke it, and let
through what that pace sent (seldom twice alike). One read wrongly paces at
what that gateway let through per window, and the controller's probes above
it find more.

Nothing here keeps more than the last few windows' edges, whatever the rate.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

CYCLES: Final = 2
"""Windows in a row that must agree on the period and the count before one is read."""
COUNT_SLACK: Final = 0.05
"""How far apart (a share of the larger) two windows' counts may be and still agree
(another client's requests in the window, a request answered late)."""
RUN: Final = 2
"""The fewest refusals in a row an edge follows: a bucket drawn a little over its rate
refuses one at a time, a second or more apart (a 6/s bucket read as 5 a second, and held
there after it rose to 42/s)."""
LONGEST: Final = 60.0
"""The longest period read from edges (a minute's window shows three edges in three minutes:
the controller's long-window goodput serves better meanwhile)."""
MINUTE: Final = 60.0
"""Edges that fit many whole seconds, a whole minute among them and all within half a
minute of each other, read a minute: a trickle through a long blackout slows as it lasts
(`_adaptive.BLACKOUT_TAIL`), and sees a minute's edges seconds wide. A policy counts whole
minutes; a window a few seconds off one, read so, lets through a few per cent less (or
refuses the next probe, and goes back to what the controller learns)."""
SETTLED: Final = 0.25
"""Seconds (or three median latencies, if longer) after a request left before its answer
is taken in order: answers overtake each other (a refusal comes back before an earlier
success), and the edges are read in the order the requests left."""


@attrs.frozen
class Window:
    """A fixed window read from the answers: `limit` requests per `period` seconds.

    Attributes:
        limit: The fewest let through in one of the windows read.
        period: Its length in whole seconds.
        read_at: The edge (the first admitted start) it was read at.
    """

    limit: int
    period: float
    read_at: float

    @property
    def rate(self) -> float:
        """Its requests per second."""
        return self.limit / self.period


@attrs.define
class _Edge:
    refused: float  # the last refused start before it
    admitted: float  # the first admitted start after the refusals
    count: int  # successes in the window it ends (since the edge before)
    refused_from: float = -math.inf  # the first refused start of the run before it

    @property
    def refused_for(self) -> float:
        """Seconds from the first refused start of the run before it to its admitted one."""
        return self.admitted - self.refused_from


class WindowWatch:
    """Reads a fixed window from answers, taken in the order their requests left."""

    def __init__(self) -> None:
        # Answers not yet settled, by start: (started, ok), sorted.
        self._pending: list[tuple[float, bool]] = []
        self._last_ok: bool | None = None
        self._last_refused = -math.inf
        self._run = 0  # refusals in a row, in the order the requests left
        self._run_from = -math.inf  # the first of them
        self._count = 0
        self._edges: deque[_Edge] = deque(maxlen=CYCLES + 1)
        self.window: Window | None = None
        # The first edge seen (its admitted start), and what got through before it.
        self.first_edge, self.first_count = math.inf, 0

    def answered(
        self, started: float, ok: bool, now: float, latency: Callable[[], float]
    ) -> Window | None:
        """An answer to a request that left at `started`; a window newly read, if any.

        `latency`: the median latency lately (asked for only when an answer may settle).
        """
        bisect.insort(self._pending, (started, ok))
        if self._pending[0][0] >= now - SETTLED:
            return None  # nothing can settle yet: no median latency taken
        horizon = now - max(SETTLED, 3 * latency())
        settled = bisect.bisect_left(self._pending, (horizon, False))
        if not settled:
            return None
        taken, self._pending = self._pending[:settled], self._pending[settled:]
        found = None
        for at, good in taken:
            found = self._take(at, good) or found
        return found

    def _take(self, started: float, ok: bool) -> Window | None:
        edge = None
        if self._last_ok is None:
            # The first request: a window began before it (the crawl's first window,
            # spent in its opening burst, is one of those read).
            self._edges.append(_Edge(-math.inf, started, 0))
        if not ok:
            if not self._run:
                self._run_from = started
            self._last_refused = started
            self._run += 1
        elif self._last_ok is False and self._run >= RUN:
            edge = _Edge(self._last_refused, started, self._count, self._run_from)
            self._count, self._run = 1, 0
            if self.first_edge == math.inf:
                self.first_edge, self.first_count = started, edge.count
        else:
            self._count, self._run = self._count + 1, 0
        self._last_ok = ok
        if edge is None:
            return None
        self._edges.append(edge)
        return self._read(edge)

    def _read(self, edge: _Edge) -> Window | None:
        """A window, if the last `CYCLES` windows fit one period and one count."""
        edges = list(self._edges)
        if len(edges) <= CYCLES or any(one.count < 1 for one in edges[1:]):
            return None
        counts = [later.count for later in edges[1:]]
        if min(counts) < (1 - COUNT_SLACK) * max(counts) - 1:
            return None
        # The edges lie on one lattice: edge k between its refused and admitted
        # starts, at first + k * period, for one period of whole seconds.
        low, high = -math.inf, math.inf
        for k, one in enumerate(edges):
            for j, other in enumerate(edges[k + 1 :], start=k + 1):
                low = max(low, (other.refused - one.admitted) / (j - k))
                high = min(high, (other.admitted - one.refused) / (j - k))
        # Whole seconds: the shortest is one (edges under a second apart are a bucket's interval).
        period = float(math.ceil(low))
        if low <= MINUTE <= high and high - low < MINUTE / 2:
            period = MINUTE
        elif not period <= high < period + 1 or period > LONGEST:
            return None  # no whole second fits, or more than one does (edges seen loosely)
        elif not _rules_out_shorter(period, edges[1:]):
            return None
        window = Window(min(counts), period, edge.admitted)
        self.window = window
        return window


def _rules_out_shorter(period: float, edges: list[_Edge]) -> bool:
    """Whether a run of refusals lasted longer than any window that divides `period`.

    A client paced just under a calendar second's quota, probing above it every
    3 s, is refused only as each probe spends a second's count: edges 3 s apart,
    145 let through between each, which fit 145 per 3 s as well as 50 per 1 s.
    Read as 3 s, the pace gave way to a burst of the whole count, and a second's
    window refused 28 of it (fake clock). A window of `d` seconds reopens within
    any `d` of refusals, so refusals that lasted longer rule it out; the edges
    alone cannot, for the windows between them were never spent.
    """
    whole = round(period)
    divisor = max((d for d in range(1, whole) if whole % d == 0), default=0)
    return divisor == 0 or max(edge.refused_for for edge in edges) > divisor
