"""The learned rate when no quota is announced (`AdaptiveRate`): each threshold on a fake clock.

These tests pin the numbers the controller's docstring gives (the first cut, the
grace after a cut, the cap on requests in flight, the punished probe), one
behaviour each, so that a change of one constant fails a named test.

Each test feeds the controller the answers a gateway gives (when each request
started, how many were in flight as it left, whether it got through), at the
times the test sets, and reads what a user of the limiter sees: whether
requests are paced and at what rate, how many may be in flight, the quota
estimated, and how that changes over the seconds after a cut.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import TYPE_CHECKING

import pytest

from vbs_async._adaptive import (
    BETA,
    CUT_GRACE,
    HOLD,
    LASTING,
    NOISE_MOST,
    WINDOW_PACE,
    AdaptiveRate,
    Ticket,
    _Stretch,
)

if TYPE_CHECKING:
    from collections.abc import Callable


class Gateway:
    """The answers a gateway gives, fed to an `AdaptiveRate` on a clock the test moves."""

    def __init__(self, max_rate: float | None = None, max_concurrency: int | None = None) -> None:
        self.now = 10.0
        self.rate = AdaptiveRate(max_rate, self.clock, max_concurrency=max_concurrency)

    def clock(self) -> float:
        return self.now

    def answer(self, at: float, started: float, *, ok: bool = True, in_flight: int = 1) -> None:
        """An answer at `at` to a request started at `started`."""
        self.now = at
        ticket = Ticket(started, in_flight)
        if ok:
            self.rate.succeeded(ticket)
        else:
            self.rate.throttled(ticket)

    def through(self, starts: list[float], *, latency: float) -> None:
        """Successes of requests started at `starts`, each answered `latency` later."""
        for started in starts:
            self.answer(started + latency, started)

    def stream(
        self,
        begin: float,
        end: float,
        per_second: int,
        *,
        latency: float = 0.04,
        in_flight: Callable[[int], int] = lambda _: 1,
        refused: Callable[[int], bool] = lambda _: False,
    ) -> None:
        """`per_second` answers a second from `begin` to `end`, each `latency` after its start."""
        for i in range(round((end - begin) * per_second)):
            at = begin + (i + 1) / per_second
            self.answer(at, at - latency, ok=not refused(i), in_flight=in_flight(i))

    def at(self, when: float) -> AdaptiveRate:
        """The controller as read at `when`."""
        self.now = when
        return self.rate


# -- the first cut of an unpaced burst: a cap on requests in flight, or a rate -------------

LOOK = 12.4
"""When the first burst's answers are judged (the last refusal of `first_burst`)."""


def first_burst(latency: float, max_concurrency: int | None = None) -> Gateway:
    """Two seconds at 50/s with 1 to 4 in flight, then ten refusals, nine with 5 to 8 in flight.

    One request more gets through (2 in flight) before the last refusal.

    One of the successes (its answer overtook others) left with 9 in flight.
    """
    gateway = Gateway(max_concurrency=max_concurrency)
    gateway.stream(10.0, 12.0, 50, latency=latency, in_flight=lambda i: 9 if i == 90 else i % 4 + 1)
    for i, in_flight in enumerate([3, 5, 6, 7, 8, 5, 6, 7, 8]):
        at = 12.01 + 0.005 * i  # within the first 50 ms: too soon to judge
        gateway.answer(at, at - latency, ok=False, in_flight=in_flight)
    assert not gateway.rate.active  # the first answers to a burst say little
    gateway.answer(12.055, 12.055 - latency, in_flight=2)  # one gets through
    gateway.answer(LOOK, LOOK - latency, ok=False, in_flight=5)
    return gateway


def through_the_burst(latency: float) -> float:
    """The first burst's estimate: the 101 successes since the first request left."""
    return 101 / (LOOK - (10.02 - latency))


def test_a_burst_refused_above_4_in_flight_caps_4_in_flight_and_paces_what_got_through():
    # 4 in flight, 80 ms each, carry 50/s: what got through (44/s) is what they carry.
    gateway = first_burst(latency=0.08, max_concurrency=6)
    rate = gateway.rate
    assert rate.window == 4  # not 9: one answer overtaking others is not the pattern
    assert rate.active
    assert rate.estimate == pytest.approx(through_the_burst(0.08))
    assert rate.rate == pytest.approx(BETA * through_the_burst(0.08))
    assert gateway.at(LOOK + 0.99).window == 4
    assert gateway.at(LOOK + 1.0).window == 5  # grows back by one a second
    assert gateway.at(LOOK + 2.0).window == math.inf  # at max_concurrency: no cap of its own


def test_a_burst_answered_too_fast_for_its_rate_caps_in_flight_and_stays_unpaced():
    # 4 in flight, 40 ms each, carry 100/s: 48/s through is too few answers to be a rate.
    gateway = first_burst(latency=0.04)
    rate = gateway.rate
    assert rate.window == 4
    assert not rate.active
    assert rate.rate == math.inf


async def test_while_only_a_window_is_in_force_starts_are_paced_at_twice_what_it_carries(
    monkeypatch,
):
    # A 429 comes back at once, and the slot it freed went to the next request waiting at
    # once: behind a 100/s bucket with a burst of 1, a window grown to 2 let 15 requests
    # through its second slot in 7 ms, each refused (real time).
    gateway = first_burst(latency=0.04)
    rate = gateway.rate
    assert (rate.window, rate.active) == (4, False)
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, result: object = None) -> object:
        gateway.now += max(0.0, seconds)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    starts = [await rate.acquire() for _ in range(10)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) == pytest.approx(0.04 / (WINDOW_PACE * 4))  # 200 a second, not at once


def test_a_burst_refused_above_4_in_flight_that_carry_less_than_half_is_paced_not_capped():
    # 4 in flight, 250 ms each, carry 16/s: 38/s got through, so no cap in flight held it.
    gateway = first_burst(latency=0.25)
    rate = gateway.rate
    assert rate.window == math.inf
    assert rate.active
    assert rate.estimate == pytest.approx(through_the_burst(0.25))


def test_refusals_not_nine_in_ten_above_the_in_flight_of_successes_are_no_cap():
    gateway = Gateway()
    gateway.stream(10.0, 12.0, 50, latency=0.08, in_flight=lambda i: i % 4 + 1)
    # Four refusals with 2 in flight, slow to come back (1.2 s), six with 6.
    for i in range(10):
        at = 12.01 + 0.01 * i if i < 9 else LOOK
        slow = i % 5 in {0, 2} and i < 8
        gateway.answer(at, at - (1.2 if slow else 0.08), ok=False, in_flight=2 if slow else 6)
    rate = gateway.rate
    assert rate.active
    assert rate.window == math.inf


def test_a_refusal_after_a_second_with_no_answer_is_paced_at_what_got_through_before():
    gateway = Gateway()
    gateway.stream(10.0, 11.0, 50)
    gateway.answer(12.05, 12.01, ok=False)  # a second later, the first refusal
    gateway.answer(12.11, 12.07, ok=False)
    rate = gateway.rate
    assert rate.active  # nothing answered in the last second to read a cap in flight from
    assert rate.window == math.inf
    assert rate.estimate == pytest.approx(50 / (12.11 - 9.98))


# -- a cut after a cap in flight was learned --------------------------------------------------

SECOND = 13.55
"""When the second cut comes (the fifth refusal of `second_round`)."""


def second_round(gateway: Gateway, *, latency: float, most: int) -> None:
    """After the first cut (at `LOOK`): 40/s get through with 1 to `most` in flight, for
    1.1 s, then five of them are refused, each with more in flight than any success."""
    gateway.stream(LOOK, 13.5, 40, latency=latency, in_flight=lambda i: i % most + 1)
    for i in range(5):
        at = 13.51 + 0.01 * i
        gateway.answer(at, at - latency, ok=False, in_flight=most + 1 + i % 2)
    assert gateway.rate.cuts == 2


def test_a_learned_cap_in_flight_is_cut_again_when_fewer_in_flight_carry_the_rate():
    gateway = first_burst(latency=0.08)
    assert gateway.at(13.5).window == 5  # 4, grown by one in the second since
    second_round(gateway, latency=0.08, most=3)  # 3 in flight carry 37.5/s, 40/s through
    assert gateway.rate.window == 3
    assert gateway.at(SECOND + 1.0).window == 4


def test_refusals_at_the_learned_cap_in_flight_leave_it_growing_a_request_a_second():
    gateway = first_burst(latency=0.08)
    second_round(gateway, latency=0.08, most=5)  # the cap has grown to 5 by then
    assert gateway.at(LOOK + 1.99).window == 5
    assert gateway.at(LOOK + 2.0).window == 6  # a second after the first cut, not the second


def test_refusals_once_paced_say_nothing_of_a_cap_in_flight():
    # Paced, as many are in flight as the rate carries: refusals at the most in
    # flight so far are the rate's, not a cap's.
    gateway = first_burst(latency=0.25)
    assert gateway.rate.window == math.inf
    second_round(gateway, latency=0.08, most=3)
    assert gateway.rate.window == math.inf


def test_a_learned_cap_in_flight_that_carries_twice_the_rate_is_kept_and_the_rate_cut():
    gateway = first_burst(latency=0.08)
    # 3 in flight answered in 20 ms carry 150/s, and only 40/s get through: a rate.
    second_round(gateway, latency=0.02, most=3)
    rate = gateway.rate
    assert rate.window == 5
    assert rate.estimate == pytest.approx(40, rel=0.05)


# -- a first cut that does not make refusals rarer is taken back (noise) -------------------


def first_cut(
    gateway: Gateway, *, through: int, refused: int, since: float = 10.0, slow: float = 0.04
) -> float:
    """A second at 50/s, a pause, then `through` successes and `refused` refusals started in
    the last second before the first cut (at the last refusal): return when it came.

    The refusals come back `slow` seconds after their start."""
    cuts = gateway.rate.cuts
    gateway.stream(since, since + 1.0, 50)
    for i in range(through):
        at = since + 1.4 + 0.8 * i / through
        gateway.answer(at, at - 0.04)
    for i in range(refused - 1):  # within 50 ms of the first: too soon to judge
        at = since + 2.21 + 0.004 * i
        gateway.answer(at, at - slow, ok=False)
    cut_at = since + 2.3
    gateway.answer(cut_at, cut_at - slow, ok=False)
    assert gateway.rate.active
    assert gateway.rate.cuts == cuts + 1
    return cut_at


def answered_after(
    gateway: Gateway, cut_at: float, refused: list[bool], *, until: float, latency: float = 0.04
) -> None:
    """Answers to requests started after the cut, evenly until `until` (`refused`: each in turn)."""
    for i, no in enumerate(refused):
        at = cut_at + latency + (until - cut_at - latency) * (i + 1) / len(refused)
        gateway.answer(at, at - latency, ok=not no)


def test_a_cut_is_judged_noise_no_sooner_than_0_3_s_after_it():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)  # a quarter refused
    # A fifth still refused at the lower rate: the cut did not help.
    answered_after(gateway, cut_at, [True, False, False, False, False] * 2, until=cut_at + 0.29)
    assert gateway.rate.active
    assert gateway.rate.reverted == 0
    gateway.answer(cut_at + 0.3, cut_at + 0.26)
    assert not gateway.rate.active  # taken back: no pace, no estimate, no cap in flight
    assert gateway.rate.reverted == 1
    assert gateway.rate.rate == math.inf
    assert gateway.rate.estimate == math.inf
    assert gateway.rate.window == math.inf


def test_ten_answers_after_a_cut_judge_it_at_once():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)
    answered_after(gateway, cut_at, [True, False, False, False, False] * 2, until=cut_at + 0.5)
    assert not gateway.rate.active


def test_fewer_than_ten_answers_wait_until_1_2_s_after_the_cut():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)
    answered_after(gateway, cut_at, [True, False, False, False, False], until=cut_at + 1.1)
    assert gateway.rate.active  # five answers say little yet
    gateway.answer(cut_at + 4 * 0.3, cut_at + 1.1)  # a sixth, at 1.2 s: 1 in 6 refused
    assert not gateway.rate.active


def test_three_answers_after_1_2_s_judge_a_cut_and_the_next_refusal_cuts_again():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)
    gateway.answer(cut_at + 0.54, cut_at + 0.5)
    gateway.answer(cut_at + 0.94, cut_at + 0.9)
    gateway.answer(cut_at + 1.25, cut_at + 1.0, ok=False)  # a third refused: not noise
    rate = gateway.rate
    assert rate.active
    assert rate.cuts == 2  # judged, so this refusal cut again, to what got through
    assert rate.estimate == pytest.approx(2.0, rel=0.1)


def judged(gateway: Gateway, cut_at: float, refused: int, answers: int) -> None:
    """`answers` answers after the cut, `refused` of them refused, the last one (through) at
    0.3 s, when the cut is judged."""
    answered_after(
        gateway, cut_at, [True] * refused + [False] * (answers - refused - 1), until=cut_at + 0.29
    )
    gateway.answer(cut_at + 0.3, cut_at + 0.26)


def test_a_cut_that_leaves_exactly_0_6_of_the_refusals_is_taken_back():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)  # 0.25 refused
    judged(gateway, cut_at, refused=3, answers=20)  # 0.15 after: exactly 0.6 of 0.25
    assert not gateway.rate.active


def test_a_cut_that_leaves_30_percent_refused_is_a_quota_not_noise():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)
    judged(gateway, cut_at, refused=3, answers=10)
    assert gateway.rate.active


def test_refusals_of_30_percent_before_a_cut_are_a_quota_not_noise():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=28, refused=12)  # 0.3 refused
    judged(gateway, cut_at, refused=2, answers=10)  # 0.2 after: would be noise under 0.3
    assert gateway.rate.active


def test_a_later_cut_refused_as_often_after_over_30_percent_marks_noise_and_stands():
    # At 20 % at random a second of ten answers reads over 30 % one time in three, and
    # before, each such cut was a quota's: a 100/s bucket cut six times in four seconds,
    # to 4/s. Now noise (at most 0.245: a cut then needs over half refused), and the
    # cut stands.
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)
    answered_after(gateway, cut_at, [False] * 10, until=cut_at + 0.3)  # the cut helped
    at = cut_at + 1.3  # its plateau: a second cut, of the pace held, 2 of the last 10 refused
    gateway.answer(at, at - 0.04)
    gateway.answer(at + 0.05, at + 0.01, ok=False)
    gateway.answer(at + 0.1, at + 0.06, ok=False)
    rate = gateway.rate
    assert rate.cuts == 2
    estimate, second = rate.estimate, at + 0.1
    refused = [True, False, False, True, False, False, True, False, True, False]  # 0.4
    answered_after(gateway, second, refused, until=second + 0.5)
    assert rate.noise() == pytest.approx(0.245)
    assert (rate.reverted, rate.estimate) == (0, estimate)


def test_a_later_cut_after_which_half_are_refused_is_a_quota_not_noise():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)
    answered_after(gateway, cut_at, [False] * 10, until=cut_at + 0.3)
    at = cut_at + 1.3
    gateway.answer(at, at - 0.04)
    gateway.answer(at + 0.05, at + 0.01, ok=False)
    gateway.answer(at + 0.1, at + 0.06, ok=False)
    second = at + 0.1
    answered_after(gateway, second, [False, True] * 5, until=second + 0.5)
    assert gateway.rate.noise() == 0
    assert gateway.rate.cuts == 3  # judged, the next refusal cut again


def test_each_cut_taken_back_is_counted_and_the_noise_fades_in_a_minute():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)
    answered_after(gateway, cut_at, [True, False, False, False, False] * 2, until=cut_at + 0.5)
    assert gateway.rate.reverted == 1
    assert gateway.rate.noise() == pytest.approx(0.2)
    assert gateway.at(cut_at + 30.5).noise() == pytest.approx(0.1, rel=0.01)  # halved in 30 s
    cut_at = first_cut(gateway, through=30, refused=10, since=cut_at + 60)
    answered_after(gateway, cut_at, [True, False, False, False, False] * 2, until=cut_at + 0.5)
    assert gateway.rate.reverted == 2
    assert not gateway.rate.active


# -- a probe beyond the estimate, refused ----------------------------------------------------


def probe_refused(gateway: Gateway) -> float:
    """A first cut (to 34.5/s), 35/s through until the probe, 50/s through it, then a
    refusal of a request sent while probing: return when it came (the probe's cut)."""
    cut_at = first_cut(gateway, through=30, refused=10)
    estimate = gateway.rate.estimate
    assert estimate == pytest.approx(34.48, rel=0.01)
    gateway.stream(cut_at, 13.8, 35)
    assert gateway.rate.rate == pytest.approx(HOLD * estimate)  # the plateau, until 13.8
    gateway.stream(13.8, 14.2, 50)
    assert gateway.rate.rate > 1.4 * estimate  # probing, doubling every 0.7 s
    gateway.answer(14.22, 14.17, ok=False)
    assert gateway.rate.cuts == 2
    return 14.22


def nothing_through_after(gateway: Gateway, probe_at: float, *, first_through: bool) -> None:
    """0.3 s in which every request started since the probe's refusal is refused, while
    slower ones started before it still get through (`first_through`: but the one started
    at the refusal)."""
    if first_through:
        gateway.answer(probe_at + 0.02, probe_at)
    for i in range(12):
        at = probe_at + 0.025 * (i + 1)
        gateway.answer(at, at - 0.02, ok=False)
        if i % 3 == 2:
            gateway.answer(at + 0.001, probe_at - 0.5)


def test_a_probe_after_which_nothing_gets_through_holds_under_it_and_probes_4_times_later():
    gateway = Gateway()
    probe_at = probe_refused(gateway)
    probed = gateway.rate.estimate
    assert probed == pytest.approx(40)  # what got through while probing
    nothing_through_after(gateway, probe_at, first_through=False)
    held = BETA * probed  # a tenth under: the probe may have spent a saved-up burst
    assert gateway.rate.estimate == pytest.approx(held)
    # Climbing from a tenth under that, over APPROACH (0.5 s) ...
    assert gateway.at(probe_at + 0.4).rate == pytest.approx(
        BETA * held + 0.8 * (HOLD - BETA) * held
    )
    # ... then holding 6 s (4 times the probe's 1.5 s), then doubling every 0.7 s.
    assert gateway.at(probe_at + 0.5 + 5.99).rate == pytest.approx(HOLD * held)
    assert gateway.at(probe_at + 0.5 + 6 + 0.7).rate == pytest.approx(2 * HOLD * held)


def test_a_probe_after_which_the_request_sent_at_its_refusal_got_through_is_not_punished():
    gateway = Gateway()
    probe_at = probe_refused(gateway)
    nothing_through_after(gateway, probe_at, first_through=True)
    assert gateway.rate.estimate == pytest.approx(40)
    # It holds 1.5 s (the plateau grows by half after a refused probe), then doubles.
    assert gateway.at(probe_at + 0.5 + 1.5 + 0.7).rate == pytest.approx(2 * HOLD * 40)


# -- the pace held after a cut, refused: what got through of it is the quota -----------------


def held_round(gateway: Gateway, *, climb: int, held: str, span: float) -> float:
    """After a first cut (33.6/s, its refusals long gone from the last second), `climb`
    successes of requests started in the 0.5 s climb from it, then the plateau's requests
    (`held`: `.` through, `x` refused, the last one refused cutting again), started
    evenly over `span` seconds from the climb's end: return when the plateau began."""
    cut_at = first_cut(gateway, through=28, refused=12, slow=0.9)
    assert gateway.rate.estimate == pytest.approx(33.62, rel=0.001)
    gateway.through([cut_at + i * 0.5 / climb for i in range(climb)], latency=0.04)
    plateau = cut_at + 0.5
    for i, answer in enumerate(held):
        started = plateau + i * span / len(held)
        gateway.answer(started + 0.04, started, ok=answer == ".")
    return plateau


def test_a_held_pace_refused_more_than_a_tenth_is_the_quota_not_the_last_second():
    gateway = Gateway()
    # 24/s got through in the last second (the climb's 16 and the plateau's 8), but of
    # the 10 requests started at the held pace 2 were refused: 8 in 0.41 s is the quota.
    plateau = held_round(gateway, climb=16, held="..x...x...x", span=0.45)
    assert gateway.rate.cuts == 2
    assert gateway.rate.estimate == pytest.approx(8 / (gateway.now - 0.04 - plateau))
    assert gateway.rate.estimate == pytest.approx(19.56, rel=0.001)


def test_a_held_pace_with_twice_as_much_through_since_is_history():
    gateway = Gateway()
    # 40/s got through in the last second, twice the 19/s of the held pace: the quota rose.
    held_round(gateway, climb=32, held="..x..x..x..xx", span=0.45)
    assert gateway.rate.cuts == 2
    assert gateway.rate.estimate == pytest.approx(40)


def test_a_held_pace_with_less_than_half_the_estimate_through_is_no_pace():
    gateway = Gateway()
    # 14/s of the held pace got through, under half the estimate (33.6/s): a blackout's
    # reading, not the quota, and the refusal came just past the plateau: the estimate stays.
    plateau = held_round(gateway, climb=0, held="..x..x" + "." * 10, span=1.0)
    assert gateway.rate.cuts == 1  # its refusals came before the cut was judged
    # 8 through since the plateau ended
    gateway.through([plateau + 1.0 + 0.005 * i for i in range(8)], latency=0.04)
    gateway.answer(plateau + 1.1, plateau + 1.04, ok=False)
    assert gateway.rate.cuts == 2
    assert gateway.rate.estimate == pytest.approx(33.62, rel=0.001)


# -- a probe punished: a blackout right after it -----------------------------------------------


def blackout_after(gateway: Gateway, probe_at: float, *, first_through: bool = False) -> None:
    """Every request started after the probe's refusal refused for 1.1 s (`first_through`:
    but the one started at that refusal), then one through."""
    if first_through:
        gateway.answer(probe_at + 0.01, probe_at)
    for i in range(26):
        at = probe_at + 0.05 * (i + 1) if i < 4 else probe_at + 0.26 + 0.04 * (i - 4)
        gateway.answer(at, at - 0.02, ok=False)
    gateway.answer(probe_at + 1.35, probe_at + 1.3)


def test_a_probe_followed_by_a_blackout_goes_back_to_the_pace_before_it_for_20_s():
    gateway = Gateway()
    probe_at = probe_refused(gateway)
    assert gateway.rate.estimate == pytest.approx(40)
    blackout_after(gateway, probe_at)
    # 40 got through of the requests started in the 1.04 s before the probe's refusal
    # (a second and a latency): a twentieth under that, not the probe's 40/s.
    held = HOLD * 40 / 1.04
    rate = gateway.rate
    assert rate.estimate == pytest.approx(held)
    assert gateway.at(probe_at + 0.4).rate == pytest.approx(
        BETA * held + 0.8 * (HOLD - BETA) * held
    )
    assert gateway.at(probe_at + 0.5 + 19.99).rate == pytest.approx(HOLD * held)
    # Then a slow probe: doubling in 7 s (`PUNISHED_DOUBLING`), not 0.7.
    assert gateway.at(probe_at + 0.5 + 20 + 7).rate == pytest.approx(2 * HOLD * held)


def test_with_noise_known_a_punishment_needs_a_run_of_refusals_the_noise_seldom_draws():
    # A fifth at random draws five refusals in a row about once in 3,000: after a probe at
    # 15/s of a 50/s bucket it did, and the pace was held there 20 s as punished (an
    # outsider's gateway: 32 s for 200 projects; a loop sleeping 1 s on each 429, 19 s).
    gateway = Gateway()
    probe_at = probe_refused(gateway)
    rate = gateway.rate
    rate._noise, rate._noise_at = 0.21, probe_at  # a fifth refused at random, known
    for i in range(6):
        at = probe_at + 0.05 * (i + 1)
        gateway.answer(at, at - 0.02, ok=False)
    assert rate.refused_in_a_row() == 7  # the probe's refusal, then six: 0.3 s without one
    assert not rate._cut.punished
    gateway.answer(probe_at + 0.35, probe_at + 0.33, ok=False)  # 0.21 ** 8: 4 in a million
    assert rate._cut.punished


@pytest.mark.parametrize(("lower", "noise"), [((12, 10), NOISE_MOST), ((22, 20), 0.0)])
def test_paces_far_apart_refused_alike_over_30_percent_are_noise_a_cut_still_ends(lower, noise):
    # 30/s and 25/s held, then `lower`, each answered 20 times and refused 8 (40 %): a
    # quota would have dropped as fast as the pace did. Noise, but no more than
    # `NOISE_MOST`, so a share of half still cuts (a pace refused more than half is over
    # twice any quota). A step of 0.88 says nothing over 30 %: a quota refuses 12 % less.
    rate = AdaptiveRate(clock=lambda: 100.0)
    for at, pace in zip((90.0, 92.0, 94.0, 96.0), (30, 25, *lower), strict=True):
        rate._stretches.append(_Stretch(at, pace, answers=20, refused=8))
    assert rate._held_noise(100.0) == noise


def test_a_punished_probe_counts_what_got_through_of_requests_started_before_it_only():
    gateway = Gateway()
    probe_at = probe_refused(gateway)
    blackout_after(gateway, probe_at, first_through=True)
    assert gateway.rate.estimate == pytest.approx(HOLD * 40 / 1.04)


def test_a_second_punished_probe_keeps_the_pace_held_and_waits_30_s_to_probe_again():
    gateway = Gateway()
    probe_at = probe_refused(gateway)
    blackout_after(gateway, probe_at)
    held = gateway.rate.estimate
    gateway.stream(probe_at + 1.35, probe_at + 20.5, 34)  # the plateau of 20 s
    gateway.stream(probe_at + 20.5, probe_at + 21.2, 50)  # the next probe: 50/s got through
    again = probe_at + 21.22
    gateway.answer(again, again - 0.05, ok=False)
    assert gateway.rate.estimate == pytest.approx(45)
    blackout_after(gateway, again)
    # Not what got through before this probe (a probe's own pace): the pace held before.
    assert gateway.rate.estimate == pytest.approx(held)
    assert gateway.at(again + 0.5 + 29.99).rate == pytest.approx(HOLD * held)
    # Then a slow probe: doubling in 7 s (`PUNISHED_DOUBLING`), not 0.7.
    assert gateway.at(again + 0.5 + 30 + 7).rate == pytest.approx(2 * HOLD * held)


def test_a_pace_cut_in_a_blackout_doubles_from_the_first_success_after_it():
    # 50 through in a second, then everything refused for 2 s (a penalty box the first
    # burst set off): each cut in it reads the long run's goodput, a floor (18/s), not a
    # quota. Before: the floor held for a plateau after the blackout's end, then climbed,
    # 4 s at a tenth of a 50/s box's quota.
    gateway = Gateway()
    gateway.stream(10.0, 11.0, 50)
    for i in range(40):
        at = 11.0 + 0.05 * (i + 1)
        gateway.answer(at, at - 0.04, ok=False)
    floor = gateway.rate.estimate
    assert floor == pytest.approx(50 / (12.8 - 10.02))  # the last cut, at 12.8 s
    back = 13.1
    gateway.answer(back, back - 0.04)
    assert gateway.at(back).rate == pytest.approx(HOLD * floor)
    assert gateway.at(back + 0.7).rate == pytest.approx(2 * HOLD * floor)
    assert gateway.at(back + 1.4).rate == pytest.approx(4 * HOLD * floor)


def test_a_probe_punished_by_a_blackout_that_begins_late_in_the_pace_held_after_it():
    gateway = Gateway()
    probe_at = probe_refused(gateway)
    gateway.stream(probe_at, probe_at + 1.7, 40)  # the probe's refusal was the last
    for i in range(4):
        at = probe_at + 1.75 + 0.05 * i
        gateway.answer(at, at - 0.02, ok=False)
    assert gateway.rate.estimate == pytest.approx(40)
    gateway.answer(probe_at + 1.95, probe_at + 1.93, ok=False)  # the fifth in a row
    # 41 through in the second before the probe's refusal: one of them answered after it.
    assert gateway.rate.estimate == pytest.approx(HOLD * 41 / 1.04)


def test_a_next_probe_refused_in_a_refused_ones_aftermath_is_refused_at_once():
    # Before: the 2.5 s after a refused probe covered the next one, begun 2 s after it:
    # a bucket's refusals of it were let run on to 84/s of 50/s (8 refusals each).
    gateway = Gateway()
    probe_at = probe_refused(gateway)
    gateway.stream(probe_at, probe_at + 2.1, 40)
    assert gateway.rate.rate > gateway.rate.estimate  # probing again
    gateway.answer(probe_at + 2.16, probe_at + 2.12, ok=False)
    assert gateway.rate.cuts == 3


# -- a second cut soon after the first ----------------------------------------------------------


def opening(gateway: Gateway, *, until: float, per_second: int, look: float) -> float:
    """A burst from 10.0 to `until`, ten refusals, the first cut at `look`; then 20/s got
    through for 0.6 s and a request started then is refused: return the first cut's time."""
    gateway.stream(10.0, until, per_second)
    for i in range(9):
        at = until + 0.005 * (i + 1)
        gateway.answer(at, at - 0.04, ok=False)
    gateway.answer(look, look - 0.04, ok=False)
    assert gateway.rate.cuts == 1
    gateway.through([look + i / 20 for i in range(12)], latency=0.04)
    gateway.answer(look + 0.62, look + 0.58, ok=False)
    assert gateway.rate.cuts == 2
    return look


def test_a_second_cut_within_a_second_of_one_in_the_first_second_counts_what_got_through_since():
    gateway = Gateway()
    # 60 in 0.3 s got through, then 20/s: the last second's 72/s holds the opening burst.
    cut_at = opening(gateway, until=10.3, per_second=200, look=10.37)
    assert gateway.rate.estimate == pytest.approx(12 / (cut_at + 0.62 - 0.04 - cut_at))


def test_a_second_cut_after_a_first_one_a_second_after_the_first_answer_counts_the_last_second():
    gateway = Gateway()
    first_answer = 10.0 + 1 / 60
    opening(gateway, until=10.9, per_second=60, look=first_answer + 1.0)
    # The last second's 26 through (14 of the burst, 12 since), over 0.96 s.
    assert gateway.rate.estimate == pytest.approx(26 / 0.96)


# -- what a cut is not -------------------------------------------------------------------------


def test_a_refusal_when_only_requests_started_over_a_second_ago_get_through_does_not_cut():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)
    # the gateway now answers its successes 0.3 s late
    gateway.through([cut_at + i / 30 for i in range(31)], latency=0.3)
    # A blackout may be beginning: nothing started in the last second got through yet,
    # though answers take 0.3 s (a gateway answering in over a second answers none of
    # the last second's starts by then: that is no blackout, see test_gateways).
    gateway.answer(cut_at + 2.25, cut_at + 2.2, ok=False)
    assert gateway.rate.cuts == 1


def test_a_refusal_of_a_request_sent_before_the_probe_while_probing_cuts_to_the_estimate():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)
    estimate = gateway.rate.estimate
    gateway.stream(cut_at, cut_at + 2.0, 40)
    for i in range(5):  # started at the plateau's end, answered once probing
        gateway.answer(cut_at + 2.0 + 0.001 * i, cut_at + 1.5 + 0.01 * i, ok=False)
    assert gateway.rate.cuts == 2
    # 40/s got through, above the estimate (34.5/s): the quota is at least that.
    assert gateway.rate.estimate == pytest.approx(40)
    assert estimate < 40
    assert gateway.rate.rate == pytest.approx(BETA * 40)


def test_a_blackout_begun_before_the_probe_is_no_probe_punished():
    # The crawl's first burst set off a 3-s penalty box around a 5/s bucket; the first
    # sample read 2/s; the probe after its plateau began in the box and was refused
    # there. Taken for a probe the gateway punished, it held the estimate at what "got
    # through" and probed again only after 20 s, then 30: 2 a second of 5 for 30 s
    # (an outsider's gateway: 53 s for 60 projects, now 27 s). Refused since before it
    # began, it is the blackout going on: a floor read from the long run.
    gateway = Gateway()
    for i in range(14):  # the first burst: 2 through (a new connection answers late)
        gateway.answer(10.04 + 0.001 * i, 10.0, ok=False, in_flight=3 + i)
    gateway.answer(10.08, 10.0, in_flight=1)
    gateway.answer(10.081, 10.0, in_flight=2)
    started = 10.1
    while started < 13.0:  # the box: each refused request tries again on its own
        gateway.answer(started + 0.04, started, ok=False)
        started += 0.2 if started < 11 else 0.4
    assert gateway.rate.cuts >= 2
    assert gateway.rate.estimate < 2  # what got through in the long run: a floor
    assert gateway.at(13.0).rate < 2
    gateway.answer(13.04, 13.0)  # the box is over
    assert gateway.at(15.5).rate > 2  # probed up from the floor once back


def test_a_held_pace_refused_is_no_probe_to_be_punished():
    gateway = Gateway()
    held_round(gateway, climb=16, held="..x...x...x", span=0.45)
    cut_at = gateway.now
    held = gateway.rate.estimate
    nothing_through_after(gateway, cut_at, first_through=False)
    assert gateway.rate.estimate == pytest.approx(held)  # not back to the estimate before


# -- the user's rate limit ---------------------------------------------------------------------


def test_a_rate_limit_caps_the_estimate_and_every_probe():
    gateway = Gateway(max_rate=20)
    cut_at = first_cut(gateway, through=30, refused=10)  # 34.5/s got through
    assert gateway.rate.estimate == 20
    assert gateway.rate.rate == pytest.approx(BETA * 20)
    gateway.stream(cut_at, cut_at + 0.5, 18)
    assert gateway.at(cut_at + 3.0).rate == 20  # probing, but never past the limit


def test_refused_at_the_rate_limit_the_estimate_falls_to_what_got_through():
    gateway = Gateway(max_rate=20)
    cut_at = first_cut(gateway, through=30, refused=10)
    gateway.stream(cut_at, cut_at + 2.0, 16)
    assert gateway.rate.rate == 20  # the probe reached the limit
    gateway.answer(cut_at + 2.05, cut_at + 2.01, ok=False)
    gateway.answer(cut_at + 2.06, cut_at + 2.02, ok=False)
    assert gateway.rate.cuts == 2
    assert gateway.rate.estimate == pytest.approx(16, rel=0.03)  # not kept at the limit


def test_a_rare_refusal_at_the_rate_limit_is_no_refused_probe():
    gateway = Gateway(max_rate=20)
    cut_at = first_cut(gateway, through=30, refused=10)
    gateway.stream(cut_at, cut_at + 2.0, 20)
    gateway.answer(cut_at + 2.0, cut_at + 1.9, ok=False)  # 1 of 21 in the last second
    assert gateway.rate.cuts == 1


def test_a_held_pace_refused_exactly_a_tenth_is_no_reading_of_the_quota():
    gateway = Gateway()
    # 2 of the 20 started at the held pace refused, and one started as the plateau ended.
    plateau = held_round(gateway, climb=0, held="..x..x" + "." * 14, span=1.0)
    gateway.answer(plateau + 1.1, plateau + 1.0, ok=False)
    assert gateway.rate.cuts == 2
    # Refused as probing began: the quota is not under the estimate.
    assert gateway.rate.estimate == pytest.approx(33.62, rel=0.001)


# -- which refusals cut again -------------------------------------------------------------------


def test_a_refusal_of_a_request_started_0_3_s_after_a_cut_cuts_again_one_before_does_not():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)
    gateway.through([cut_at + i * 0.025 for i in range(12)], latency=0.04)
    gateway.answer(cut_at + 0.35, cut_at + 0.29, ok=False)  # sent at the old rate
    assert gateway.rate.cuts == 1
    gateway.answer(cut_at + 0.4, cut_at + CUT_GRACE, ok=False)
    assert gateway.rate.cuts == 2


def test_after_a_refused_probe_refusals_of_the_pace_held_do_not_cut():
    gateway = Gateway()
    probe_at = probe_refused(gateway)
    gateway.stream(probe_at, probe_at + 1.95, 40)
    assert gateway.rate.rate <= gateway.rate.estimate  # held, before the next probe
    for i in range(10):  # a penalty box's, maybe: a fifth of the last second's answers
        gateway.answer(probe_at + 1.96 + 0.001 * i, probe_at + 1.9, ok=False)
    assert gateway.rate.cuts == 2


def test_after_a_refused_probe_a_refusal_as_nothing_started_since_gets_through_does_not_cut():
    gateway = Gateway()
    probe_at = probe_refused(gateway)
    # three requests started at the probe's refusal get through
    gateway.through([probe_at + 0.05 * i for i in range(3)], latency=0.04)
    # Nothing started in the last second got through: a penalty box may have begun.
    gateway.answer(probe_at + 1.3, probe_at + 0.5, ok=False)
    assert gateway.rate.cuts == 2


def test_after_a_refused_probe_refusals_cut_again_when_under_half_the_estimate_gets_through():
    gateway = Gateway()
    probe_at = probe_refused(gateway)  # the estimate is 40/s
    gateway.stream(probe_at, probe_at + 1.0, 15)  # 15/s get through: not a penalty box
    gateway.answer(probe_at + 1.03, probe_at + 0.99, ok=False)
    gateway.answer(probe_at + 1.04, probe_at + 1.0, ok=False)
    assert gateway.rate.cuts == 3


def test_a_slow_refusal_of_a_request_sent_while_probing_does_not_cut_if_none_since_was():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10)
    gateway.stream(cut_at, cut_at + 4.2, 40)
    # 1.6 s to come back, and none of the 40 started in the last second was refused.
    gateway.answer(cut_at + 4.2, cut_at + 2.6, ok=False)
    assert gateway.rate.cuts == 1


def test_refusals_of_a_tenth_of_the_last_second_only_cut_if_they_last():
    gateway = Gateway()
    cut_at = first_cut(gateway, through=30, refused=10, slow=0.9)
    gateway.through([cut_at + 0.01 + i * 0.045 for i in range(18)], latency=0.04)
    gateway.answer(cut_at + 0.8, cut_at + 0.4, ok=False)
    gateway.answer(cut_at + 1.0, cut_at + 0.5, ok=False)  # 2 of the 20 started since
    assert gateway.rate.cuts == 1


def test_refusals_lasting_over_2_s_at_the_rate_limit_cut_from_2_s_after_the_cut():
    gateway = Gateway(max_rate=20)
    cut_at = first_cut(gateway, through=30, refused=10)
    gateway.stream(cut_at, cut_at + 2.5, 20)
    gateway.answer(cut_at + 2.0, cut_at + 1.9, ok=False)
    assert gateway.rate.cuts == 1  # 1 in 21 in the last second: a pace a few percent off
    gateway.answer(cut_at + 2.1, cut_at + LASTING, ok=False)
    assert gateway.rate.cuts == 2  # 2 in 40 over 2 s: the estimate is high


def test_one_refusal_in_50_over_2_s_at_the_rate_limit_does_not_cut():
    gateway = Gateway(max_rate=25)
    cut_at = first_cut(gateway, through=30, refused=10)
    gateway.through([cut_at + 0.31 + i * 0.04 for i in range(49)], latency=0.04)
    gateway.answer(cut_at + 2.3, cut_at + 2.25, ok=False)
    assert gateway.rate.cuts == 1


def test_refusals_of_requests_started_2_s_into_the_pace_after_a_punishment_cut_again():
    gateway = Gateway()
    probe_at = probe_refused(gateway)
    blackout_after(gateway, probe_at)  # a success at 1.35 s after the probe ended it
    gateway.stream(probe_at + 1.35, probe_at + 4.0, 36)
    punished_until = (probe_at + 1.35) + LASTING
    gateway.answer(probe_at + 3.1, probe_at + 3.0, ok=False)
    gateway.answer(probe_at + 3.3, probe_at + 3.2, ok=False)
    assert gateway.rate.cuts == 2  # still the punishment's
    gateway.answer(probe_at + 3.45, punished_until, ok=False)
    assert gateway.rate.cuts == 3


# -- once refusals were taken for noise, cuts need more of them --------------------------------


def after_noise(gateway: Gateway) -> float:
    """A first cut taken back (a tenth still refused after it: noise of 0.1), then another,
    heavier, first cut 3 s later: return when it came."""
    cut_at = first_cut(gateway, through=34, refused=6)  # 0.15 refused
    judged(gateway, cut_at, refused=2, answers=20)  # 0.1 after
    assert gateway.rate.reverted == 1
    assert gateway.rate.noise() == pytest.approx(0.1)
    cut_at = first_cut(gateway, through=28, refused=12, since=13.0, slow=0.9)  # 0.3
    assert gateway.rate.cuts == 2
    return cut_at


def refused_in_the_last_second(gateway: Gateway, cut_at: float, *, through: int) -> float:
    """`through` successes, then 4 refusals: return the share refused of the last second."""
    gateway.through([cut_at + 0.1 + i * 0.04 for i in range(through)], latency=0.04)
    for i in range(4):
        gateway.answer(cut_at + 1.0 + 0.01 * i, cut_at + 0.8 + 0.01 * i, ok=False)
    return 4 / (through + 4)


def test_after_noise_a_share_refused_over_twice_the_noise_cuts():
    gateway = Gateway()
    cut_at = after_noise(gateway)
    share = refused_in_the_last_second(gateway, cut_at, through=16)
    noise = gateway.rate.noise()  # 0.09: halving every 30 s
    assert 2 * noise + 0.01 < share <= 3 * noise + 0.01
    assert gateway.rate.cuts == 3


def test_after_noise_a_share_refused_under_twice_the_noise_does_not_cut():
    gateway = Gateway()
    cut_at = after_noise(gateway)
    share = refused_in_the_last_second(gateway, cut_at, through=17)
    noise = gateway.rate.noise()
    assert 2 * noise - 0.01 < share <= 2 * noise + 0.01
    assert gateway.rate.cuts == 2


def held_after_noise(gateway: Gateway, held: str) -> None:
    """After `after_noise`, the plateau's requests (`held`, as in `held_round`, refused
    before the cut is judged), then refusals of requests started as the plateau ends
    until one cuts."""
    cut_at = after_noise(gateway)
    plateau = cut_at + 0.5
    for i, answer in enumerate(held):
        started = plateau + i * 0.9 / len(held)
        gateway.answer(started + 0.04, started, ok=answer == ".")
    for i in range(3):
        gateway.answer(plateau + 1.1 + 0.001 * i, plateau + 1.0 + 0.01 * i, ok=False)
        if gateway.rate.cuts == 3:
            return
    pytest.fail("no cut")


def test_after_noise_a_held_pace_refused_over_twice_the_noise_is_the_quota():
    gateway = Gateway()
    held_after_noise(gateway, "xx.xx.xx" + "." * 15)  # 6 of 23 refused: 0.26
    assert 2 * gateway.rate.noise() + 0.01 < 6 / 23 <= 3 * gateway.rate.noise() + 0.01
    assert gateway.rate.estimate < 17  # not the estimate before (33.8)


def test_after_noise_a_held_pace_refused_under_twice_the_noise_is_no_reading():
    gateway = Gateway()
    held_after_noise(gateway, "xx.xx" + "." * 18)  # 4 of 23 refused: 0.17
    assert 2 * gateway.rate.noise() - 0.01 < 4 / 23 <= 2 * gateway.rate.noise() + 0.01
    assert gateway.rate.estimate == pytest.approx(33.83, rel=0.001)  # refused as probing began


# -- the bounds of a cap in flight, met exactly (times in 64ths of a second: no rounding) -----


def burst_of_32(latency: float, first_refusal: float) -> Gateway:
    """32 requests through in the first second (1 to 4 in flight, each `latency` long),
    then 10 refused with 5 to 8 in flight, the last at 12.0: 16/s got through.

    The 29th (started at 10.875) left with 9 in flight."""
    gateway = Gateway()
    for i in range(32):
        started = 10.0 + i / 32
        gateway.answer(started + latency, started, in_flight=9 if i == 28 else i % 4 + 1)
    for j in range(9):
        at = first_refusal + j / 64
        gateway.answer(at, at - latency, ok=False, in_flight=5 + j % 4)
    gateway.answer(12.0, 12.0 - latency, ok=False, in_flight=5)
    assert gateway.rate.estimate == 16.0
    return gateway


def test_a_burst_through_at_exactly_half_what_its_cap_in_flight_carries_is_capped_and_paced():
    gateway = burst_of_32(0.125, first_refusal=11.5)  # 4 in flight carry 32/s
    # Not 9: the answer with 9 in flight came at 11.0, a second before the cut, not within it.
    assert gateway.rate.window == 4
    assert gateway.rate.active


def test_a_burst_through_at_exactly_twice_what_its_cap_in_flight_carries_is_capped_and_paced():
    gateway = burst_of_32(0.5, first_refusal=11.2)  # 4 in flight carry 8/s
    assert gateway.rate.window == 4
    assert gateway.rate.active


def test_a_second_cut_exactly_a_second_after_one_in_the_first_second_counts_the_last_second():
    gateway = Gateway()
    gateway.stream(10.0, 10.3, 200)
    for i in range(10):
        at = 10.3 + 0.005 * (i + 1) if i < 9 else 10.37
        gateway.answer(at, at - 0.04, ok=False)
    cut_at = 10.37
    assert gateway.rate.cuts == 1
    # Answers now take 0.6 s: 20 to requests sent before the cut, 10 to requests sent after.
    gateway.through([cut_at - 0.5 + i * 0.025 for i in range(20)], latency=0.6)
    gateway.through([cut_at + i * 0.04 for i in range(10)], latency=0.6)
    gateway.answer(cut_at + 0.995, cut_at + 0.35, ok=False)
    gateway.answer(cut_at + 1.0, cut_at + 0.36, ok=False)
    assert gateway.rate.cuts == 2
    # What got through of the requests started in the last second (10 in the 0.4 s whose
    # answers are in), not of those started since the cut over the latency (0.6 s).
    assert gateway.rate.estimate == pytest.approx(25)


def paced_at(through: int) -> Gateway:
    """As `burst_of_32`, `through` successes in the first second, one request in flight at a
    time: no cap in flight, a first cut at 12.0 to an estimate of exactly `through` / 2 a
    second (over the 2 s from the first start), its plateau from 12.5 to 13.5."""
    gateway = Gateway()
    gateway.through([10.0 + i / through for i in range(through)], latency=0.125)
    for j in range(9):
        at = 11.5 + j / 64
        gateway.answer(at, at - 0.125, ok=False)
    gateway.answer(12.0, 11.875, ok=False)
    assert gateway.rate.window == math.inf
    assert gateway.rate.estimate == through / 2
    return gateway


def test_a_held_pace_at_exactly_half_the_estimate_with_twice_it_through_since_is_the_quota():
    gateway = paced_at(32)
    for i, answer in enumerate("..x..x...."):  # 8 of 10 through over the 1 s plateau
        started = 12.6 + i * 0.08
        gateway.answer(started + 0.04, started, ok=answer == ".")
    # 8 more through since it ended: 16 in the last second
    gateway.through([13.5 + i * 0.005 for i in range(8)], latency=0.04)
    gateway.answer(13.6, 13.5, ok=False)
    assert gateway.rate.cuts == 2
    assert gateway.rate.estimate == 8.0  # the held pace, exactly half the estimate


def test_after_a_refused_probe_exactly_half_the_estimate_through_is_not_under_half():
    gateway = paced_at(32)
    gateway.through([12.0 + i / 16 for i in range(24)], latency=1 / 16)
    probe_at = 13.625
    gateway.answer(probe_at, 13.5625, ok=False)  # sent probing past 16/s
    assert gateway.rate.cuts == 2
    assert gateway.rate.estimate == 16.0
    # 8/s get through, each 0.5 s long
    gateway.through([probe_at + i / 8 for i in range(12)], latency=0.5)
    # 4 through of the requests started between 1 s and 0.5 s (the latency) ago: 8/s,
    # exactly half the estimate. Only under half (and some) cuts in a refused probe's
    # aftermath: this refusal does not.
    gateway.answer(probe_at + 2.0, probe_at + 1.9, ok=False)
    assert gateway.rate.cuts == 2


def test_a_punished_probe_counts_from_a_second_and_a_latency_before_it_exactly():
    gateway = paced_at(32)
    # 32/s through, each 1/16 s long
    gateway.through([12.0 + i / 32 for i in range(48)], latency=1 / 16)
    probe_at = 13.625
    gateway.answer(probe_at, 13.5625, ok=False)
    assert gateway.rate.estimate == 29.0  # what the probe got through in the last second
    for i in range(1, 5):  # nothing through since: a blackout
        gateway.answer(probe_at + i / 16, probe_at + i / 16 - 0.01, ok=False)
    # From 12.5625 (the probe's refusal less a second and 1/16 s) to it: 30 through.
    assert gateway.rate.estimate == pytest.approx(HOLD * 30 / 1.0625)


def test_a_probe_refused_with_exactly_the_held_pace_through_keeps_the_estimate():
    gateway = paced_at(40)  # 20/s
    gateway.through([12.0 + i / 20 for i in range(13)], latency=1 / 16)
    for i in range(19):  # 19 through in the last second: the held pace (0.95 x 20)
        at = 12.8 + i * 0.85 / 18
        gateway.answer(at, at - 1 / 16)
    gateway.answer(13.7, 13.6375, ok=False)  # sent probing, at 21.8/s
    assert gateway.rate.cuts == 2
    # No more got through than the plateau sends: the quota is not above the estimate.
    assert gateway.rate.estimate == 20.0


def test_a_window_read_that_carries_less_than_lately_got_through_is_not_held():
    # An outsider's gateway, down 2 s in every 5 and 30 a second otherwise: edges as
    # regular as a window's, read as "30 per 3 s", held, and the hold's own 28 a window
    # read again as its count: the crawl ran at 5.6/s of 18. A count that ran out lets
    # through at least what got through lately.
    gateway = Gateway()
    gateway.stream(10.0, 21.0, 100)
    for begin in (21.0, 24.0, 27.0):
        gateway.stream(begin, begin + 1.0, 30)  # 30 through in the window's first second
        gateway.stream(begin + 1.0, begin + 3.0, 10, refused=lambda _: True)
    gateway.stream(30.0, 30.5, 30)
    assert gateway.rate.estimate != pytest.approx(0.98 * 30 / 3 / HOLD)
    assert gateway.rate.opens() == -math.inf
