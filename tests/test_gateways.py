"""Issue 19's gateways, one by one: the learned rate neither collapses nor hammers.

Each row of the issue's table is a gateway model of `vbs_async.testing`,
driven by a simulated crawl on a fake clock (`tests/_throttle_sim.py`): the
same on any machine, a 30-second crawl in milliseconds. The announced quota
is tested end to end against the emulator.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import random
import statistics
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vbs_async import ProjectSharings, RetryPolicy, TokenAuth, VBSClient
from vbs_async._adaptive import HELD_MEMORY, Ticket
from vbs_async._announced import PHASE_PROBES, Quota, parse_quota
from vbs_async._limits import OVERSTATED_MEMORY, OVERSTATED_MEMORY_MAX, RequestLimiter
from vbs_async.testing import (
    AllOf,
    Emulator,
    Fault,
    FixedWindow,
    GatewayModel,
    GatewayQuota,
    InFlightCap,
    MockTransport,
    PenaltyBox,
    Schedule,
    SentRequest,
    SlidingWindow,
    Sporadic,
    parse_gateway,
    response,
)

from ._helpers import FakeClock, sharing_document
from ._throttle_sim import DrawnAsTheOutsiderDrew, SharedWithOthers, Simulated, simulate
from .test_retries import on_virtual_clock

if TYPE_CHECKING:
    from vbs_async._responses import Response


def per_second(run: Simulated, begin: float, end: float) -> list[int]:
    """Successes of requests started in each second from `begin` to `end`."""
    return [run.succeeded_between(s, s + 1) for s in range(int(begin), int(end))]


def efficiency(run: Simulated, quota: float, begin: float, end: float) -> float:
    return run.succeeded_between(begin, end) / (quota * (end - begin))


def quiet(**kwargs: object) -> dict[str, object]:
    return {"announce": False, **kwargs}


# -- the table, row by row (nothing announced: the controller alone) ----------------


def test_a_bucket_refusing_everything_for_2_5_s_is_served_at_its_rate_right_after():
    # Before: 4, 3, 2, 2, 0, 1, 0, 1 a second afterwards, never above 15/s in 25 s.
    gateway = Schedule(
        [
            (0, GatewayQuota(20, 20, **quiet())),
            (5, Sporadic(1.0)),
            (7.5, GatewayQuota(20, 20, **quiet())),
        ]
    )
    # Seeded (back-off jitter): 1 seed in 60 read 17 in one second, a lasting cut of a
    # pace a few per cent over beginning at 0.9 of it (at 1cd86e2 on; none before).
    random.seed(0)
    run = simulate(gateway, seconds=30)
    assert min(per_second(run, 10, 30)) >= 18
    assert efficiency(run, 20, 10, 30) >= 0.95


def test_100_requests_per_5_second_window_are_all_used():
    # Before: rate stuck at 1-2/s, 98 of 150 projects after 25 s (ideal 8.9 s).
    run = simulate(FixedWindow(100, 5, **quiet()), seconds=30)
    assert efficiency(run, 20, 5, 30) >= 0.8


def test_50_per_calendar_second_is_used_with_few_429s():
    # Before: efficiency 0.86, 3-8 % 429s.
    run = simulate(FixedWindow(50, 1, **quiet()), seconds=30)
    assert efficiency(run, 50, 5, 30) >= 0.9
    late = [ok for started, ok in run.starts if started >= 5]
    assert late.count(False) / len(late) < 0.15


def test_a_penalty_box_is_not_provoked_over_and_over():
    # Before: 186 of 200 projects in 20 s (ideal 5.8 s).
    run = simulate(PenaltyBox(GatewayQuota(50, 50, **quiet()), 2.0), seconds=30)
    assert efficiency(run, 50, 0, 30) >= 0.6
    assert efficiency(run, 50, 15, 30) >= 0.6


def crawl(
    gateway: GatewayModel, seed: int = 0, calendar: float = 0.0, seconds: float = 120
) -> Simulated:
    """The benchmark's crawl on the fake clock: 760 pages, 16 projects at once, 40 ms
    of backend latency behind a gateway that answers a refusal at once. The global
    random (back-off jitter) is seeded: left as the tests before had it, a calendar
    second's crawl was refused 14 times from 7 s on in one order, 2 or 3 in others."""
    random.seed(seed)
    return simulate(
        gateway,
        seconds=seconds,
        requests=760,
        listings=16,
        network=0.002,
        seed=seed,
        calendar=calendar,
    )


def test_a_penalty_box_costs_one_blackout_per_probe_not_one_every_5_s():
    # Before: every probe provoked the box and the cuts in it read 6 to 18/s:
    # 1.66x the requests and 44 s for a crawl of 15.2 s at the quota.
    run = crawl(PenaltyBox(GatewayQuota(50, 10, **quiet()), 2.0))
    assert len(run.starts) <= 1.3 * 760
    assert run.ended <= 32


def test_a_penalty_box_set_off_by_the_first_burst_is_probed_soon_after_and_rarely_again():
    # Before: the cuts in the first box (10 through, then 2 s refused) read 5.8/s, held
    # for 4 s after it; then a probe every 8 s set the box off again: 25.7 s, 844 requests.
    # Either alone: 24.6 s (the climb from the box's end) or 23.9 s (a probe every 20 s).
    run = crawl(PenaltyBox(GatewayQuota(50, 10, **quiet()), 2.0))
    assert run.ended <= 23.5
    assert len(run.starts) <= 830


def test_a_spent_5_second_window_is_waited_out_with_few_requests():
    # Before: paced at the estimate until the window rolled over: 1.59x the requests.
    run = crawl(FixedWindow(100, 5, **quiet()))
    assert len(run.starts) <= 1.5 * 760
    assert run.ended <= 760 / 20


def outages(begun: float, seconds: float = 200.0) -> Schedule:
    """90/s (burst 10), down 2 s in every calendar 5 (from 3 to 5), begun `begun` s into the 5."""
    phases: list[tuple[float, GatewayModel]] = []
    at = 0.0
    while at < seconds:
        down = (at + begun) % 5 >= 3
        phases.append((at, Sporadic(1.0) if down else GatewayQuota(90, 10, **quiet())))
        at += (5 - (at + begun) % 5) if down else (3 - (at + begun) % 5)
    return Schedule(phases)


@pytest.mark.parametrize(("begun", "seed"), [(4.0, 1), (4.5, 2), (3.5, 2)])
def test_a_crawl_begun_in_an_outage_is_not_paced_at_the_one_success_it_saw(begun, seed):
    # An outsider's gateway, 90/s but down 2 s in every 5, the crawl begun in an outage:
    # a second of refusals and the first success made the first sample, 1 a second, and
    # from that pace the outages read as a window of 5 per 5 s (1.3x to 3x the time of a
    # loop sleeping 1 s on each 429). The blackout the crawl began in is forgotten at its
    # first success. 570 requests, 10.6 s at 54/s: 133.5, 133.4 and 82.0 s before; 13.5,
    # 16.2 and 14.4 s now.
    random.seed(seed)
    run = simulate(outages(begun), seconds=300, requests=570, listings=16, network=0.002, seed=seed)
    assert run.ended <= 25


@pytest.mark.parametrize("calendar", [3.5, 4.0])
def test_a_window_read_after_a_crawl_began_late_in_one_is_held_under(calendar):
    # Begun 3.5 or 4 s into a calendar window of 100 per 5 s, the crawl spent it and the
    # next in 6.4 s: 31 a second got through, more than the window read at the next edge
    # lets through (20), and it was turned away there (a gateway that lets more through
    # than the count read is no count that ran out); the third window was spent at the
    # estimate too. 836 to 856 requests over four seeds before, 814 to 827 now (827 to
    # 832 begun as a window rolls over).
    run = crawl(FixedWindow(100, 5, **quiet()), calendar=calendar)
    assert len(run.starts) <= 835


def test_a_gateway_refusing_everything_for_a_minute_is_asked_less_as_it_lasts():
    # A trickle of 4 a second found the end of a blackout within a quarter second, and
    # sent 247 requests into an outage of a minute. Slowed once it lasted 5 s (to 5 %
    # of its length between requests), 75; the end seen at most 3 s late.
    bucket, down = GatewayQuota(50, 10, **quiet()), Sporadic(1.0, **quiet())
    gateway = Schedule([(0.0, bucket), (2.0, down), (62.0, GatewayQuota(50, 10, **quiet()))])
    run = crawl(gateway, seconds=300)
    assert run.sent_between(2, 62) <= 100
    assert run.completed == 760
    assert min(started for started, ok in run.starts if ok and started >= 62) < 64


@pytest.mark.parametrize(("calendar", "seed"), [(0.0, 0), (17.3, 1)])
def test_a_window_of_a_minute_spent_early_is_asked_less_as_it_lasts(calendar, seed):
    # 300 a minute on the calendar, the quota unknown: each minute spent in its first
    # seconds was trickled through at 4 a second until it rolled over, 1.31x to 1.40x
    # the requests (fake clock). The trickle slows as the blackout lasts, and the edges
    # it sees seconds wide are read as the minute they fit: 1.17x to 1.18x.
    run = crawl(FixedWindow(300, 60, **quiet()), seed, calendar, seconds=600)
    assert run.completed == 760
    assert len(run.starts) <= 1.25 * 760
    # From 20 s into the first blackout to its end (the first window spent at once):
    # a request a second at most on average, not 4.
    rolls_over = 60 - calendar
    assert run.sent_between(20, rolls_over - 2) <= rolls_over - 22


def test_a_bucket_with_a_burst_of_50_settles_at_its_rate_not_above():
    # Before: a refused probe that the bucket's saved-up tokens had carried raised
    # the estimate by up to 10 %, and a pace 5 % over is refused under the 10 % that
    # lowers it: 4 429s a second all along, 1.09x to 1.11x the requests.
    run = crawl(GatewayQuota(50, 50, **quiet()))
    assert len(run.starts) <= 1.07 * 760
    assert run.ended <= 760 / 50


def test_the_trickle_through_a_spent_window_slows_as_it_lasts():
    # Before: 10 requests a second until the window rolled over, 24 to 31 refused
    # in the second half of each 5-second window (1.41x the requests in all).
    run = crawl(FixedWindow(100, 5, **quiet()))
    late = [started for started, ok in run.starts if not ok and started >= 5 and started % 5 >= 2.5]
    assert len(late) / (run.ended // 5 - 1) <= 20
    assert len(run.starts) <= 1.32 * 760
    assert run.ended <= 760 / 20


@pytest.mark.parametrize(("latency", "before"), [(0.9, 0.49), (1.2, 0.81), (2.0, 0.69)])
def test_a_gateway_answering_in_over_a_second_is_learned_from(latency, before):
    # Before: the refusals were judged by the requests started in the last second,
    # none of them answered yet: at 1.2 s and 2 s nothing was ever cut, and the
    # share of 429s after 20 s was `before` (a 5/s bucket, 32 in flight).
    run = simulate(GatewayQuota(5, 5, **quiet()), seconds=60, latency=latency)
    late = [ok for started, ok in run.starts if started >= 20]
    assert run.controller.cuts >= 1
    assert late.count(False) / len(late) <= 0.3 < before
    assert late.count(True) / 40 >= 0.8 * 5


@pytest.mark.parametrize(("latency", "seed"), [(0.3, 2), (0.55, 1)])
def test_a_quota_restored_behind_slow_answers_is_found_within_5_s(latency, seed):
    # 20/s, 4/s from 3 s to 8 s, 20/s again. With the steps after a cut stretched
    # from a median answer of 0.2 s on, 90 % of the restored quota came back 4.5 s
    # (0.3 s answers) and 4 to 8 s (0.55 s) after it, in 1 to 2 s now.
    gateway = Schedule(
        [(0, GatewayQuota(20, 20, **quiet())), (3, GatewayQuota(4, 4, **quiet())),
         (8, GatewayQuota(20, 20, **quiet()))]
    )  # fmt: skip
    run = simulate(gateway, seconds=20, latency=latency, seed=seed)
    back = [8 + i / 4 for i in range(17) if run.succeeded_between(8 + i / 4, 9 + i / 4) >= 18]
    assert back, "the restored quota was not back to 90 % within 5 s"


def test_a_cap_on_requests_in_flight_is_met_by_fewer_in_flight():
    # Before: efficiency 0.30. Here the gateway holds a request for half of the
    # 40 ms latency, so 4 in flight carry 200/s.
    run = simulate(InFlightCap(4), seconds=30)
    assert efficiency(run, 200, 5, 30) >= 0.5
    assert run.controller.window < 32 or run.controller.estimate < 200  # fewer in flight


def test_a_400_per_second_bucket_with_a_burst_of_3_is_used():
    # Before: efficiency 0.09, from a first cut to what the first burst let through.
    run = simulate(GatewayQuota(400, 3, **quiet()), seconds=30)
    first_cut = run.controller  # the estimate never fell to a tenth of the quota
    assert first_cut.estimate > 40
    assert efficiency(run, 400, 10, 30) >= 0.8


def test_a_quota_that_comes_back_is_found_within_seconds():
    # Before: only 10/s for about 4 s after the quota came back.
    gateway = Schedule(
        [
            (0, GatewayQuota(50, 50, **quiet())),
            (10, GatewayQuota(10, 10, **quiet())),
            (15, GatewayQuota(50, 50, **quiet())),
        ]
    )
    run = simulate(gateway, seconds=30)
    assert max(per_second(run, 10, 15)) <= 2 * 10 + 10  # not hammered while low
    assert min(per_second(run, 20, 30)) >= 0.9 * 50  # 90 % within 5 s, and after


def test_a_quota_that_rises_after_a_low_one_was_held_is_found_within_5_s():
    # Found by the property below (phases 8 s at 6/s, then 42/s; seed 0): the
    # probe refused at 42/s was cut back to the 6/s pace held 5 s before (a
    # refused held pace), so the restored quota was below half after 5 s.
    gateway = Schedule([(0, GatewayQuota(6, 3, **quiet())), (8, GatewayQuota(42, 42, **quiet()))])
    run = simulate(gateway, seconds=15, seed=0)
    assert run.succeeded_between(13, 15) >= 42


def test_a_quota_that_rises_soon_after_the_first_cuts_is_found_within_5_s():
    # Found by the property below (phases 3 s at 5/s, then 131/s; seed 0): the
    # probe refused at about 200/s 3.5 s after the rise was cut as if within the
    # first second, to what got through since the second cut (35/s over 5.6 s of
    # climbing from 3.5/s): 126 through from 8 s to 10 s, under half of 131/s.
    gateway = Schedule(
        [(0, GatewayQuota(5, 1, **quiet())), (3, GatewayQuota(131, 13.1, **quiet()))]
    )
    run = simulate(gateway, seconds=13, seed=0)
    assert run.controller.estimate >= 0.9 * 131
    assert run.succeeded_between(8, 10) >= 0.9 * 2 * 131


def test_random_429s_do_not_pull_the_rate_down():
    # Before: 84.3 s instead of 2.4 s (35x). Compared with the same crawl without them.
    clean = simulate(Sporadic(0.0), seconds=10)
    noisy = simulate(Sporadic(0.05), seconds=10)
    assert noisy.completed >= clean.completed / 1.3


def test_random_429s_on_top_of_a_quota_do_not_pull_it_down():
    run = simulate(AllOf([GatewayQuota(50, 50, **quiet()), Sporadic(0.05)]), seconds=30)
    assert efficiency(run, 50, 5, 30) >= 0.8


def noisy_crawl(spec: str, seed: int = 0) -> Simulated:
    """450 pages behind `spec`, 16 projects at once, the global random seeded (back-off
    jitter): the fake clock's crawl for random 429s on top of a quota."""
    random.seed(seed)
    return simulate(
        parse_gateway(spec), seconds=120, requests=450, listings=16, network=0.002, seed=seed
    )


def test_random_429s_do_not_stop_the_probes_short_of_a_bucket_with_a_small_burst():
    # Before: the first refusal of a probe above the estimate ended it, and 5 % at
    # random refused one of its first score of requests: each probe stopped at 35 to
    # 43/s and raised the estimate 3 %, a 50/s bucket paced at 25/s (17.8 s; now 12.2).
    run = noisy_crawl("50:10&random:0.05,announce=off")
    assert run.ended <= 13.5


@pytest.mark.parametrize("seed", [1, 3])
def test_a_cut_made_by_a_few_per_cent_lasting_is_judged_noise_over_as_long(seed):
    # 5 % at random, a 50/s bucket. Before: a cut made by a few per cent of refusals
    # over 2 s was judged on the 10 answers after it (half a second at 20/s), which held
    # none of the random ones three times in five: the cut was taken for the quota's,
    # and each such cut lowered the pace again (21.0 s for 450 requests; now 11 to 12).
    run = noisy_crawl("50:10&random:0.05,announce=off", seed)
    assert run.ended <= 13.5


def test_ten_per_cent_of_429s_at_random_on_a_quota_do_not_ratchet_its_pace_down():
    # An outsider's: 30/s bucket, 10 % refused at random. Before: the refusals lasting
    # a few per cent above the held pace cut it again every few seconds, to a third
    # of the quota (23 s for 450 requests; now 16). A cut after which as many are
    # refused makes that share noise: no more such cuts for it (taken back, or, over
    # `NOISE_MAX`, standing).
    run = noisy_crawl("30:30&random:0.1,announce=off")
    assert run.ended <= 19
    assert run.controller.noise() > 0.05


@pytest.mark.parametrize(
    ("spec", "seed", "most"),
    [
        ("50:10&random:0.1,announce=off", 2, 15),
        ("50:10&random:0.1,announce=off", 3, 15),
        ("100:20&random:0.1,announce=off", 5, 10),
    ],
)
def test_paces_held_lower_and_refused_as_often_make_the_refusals_noise(spec, seed, most):
    # An outsider's: a 50/s bucket, 10 % refused at random, slower than a loop sleeping
    # 1 s on each 429. Before: each cut's check (ten answers) missed the noise one
    # time in three, a second's share went over a cut's half the time, and the probes
    # were refused by the noise: a pace ratcheted to 14/s (23 s for 450 requests, 24.7 s
    # for the 100/s bucket's 14.7). Two held paces a tenth apart and refused alike now
    # make that share noise (13 s; 8.3 s).
    run = noisy_crawl(spec, seed)
    assert run.ended <= most
    assert run.controller.noise() > 0.05


@pytest.mark.parametrize(
    ("spec", "most"),
    [("random:0.2", 5), ("random:0.15", 4), ("100:10&random:0.2", 30), ("50:10&random:0.15", 19)],
)
def test_cuts_of_the_pace_held_after_which_as_many_are_refused_are_taken_back(spec, most):
    # An outsider's: 15 to 20 % refused at random, a loop sleeping 1 s on each 429 twice as
    # fast. Before: only a first cut was taken back; each later one lowered the pace
    # another fifth, one every half second (28 s for 450 requests of an unlimited backend,
    # 20 % refused; 9 to 19 s at 15 %; 58 s behind a 100/s bucket). Now 3, 2.4 and 18 s.
    # The noise's share taken is what the paces held lately were refused: the ten answers
    # checked read 10 % of 15 % on a 50/s bucket, and a second's 33 % cut again (23 s; 15.6).
    run = noisy_crawl(spec + ",announce=off", 1)
    assert run.ended <= most


@pytest.mark.parametrize(
    ("rate", "requests", "seed", "most"),
    [
        (100, 1200, 2, 24),
        (100, 1200, 4, 24),
        (20, 240, 8, 20),
        (20, 240, 9, 27),
        (20, 240, 19, 28),
        (20, 240, 28, 28),
        (20, 240, 32, 40),
        (50, 650, 2, 24),
        (50, 650, 12, 24),
    ],
)
def test_a_fifth_refused_at_random_on_a_bucket_is_not_paced_at_a_few_per_s(
    rate, requests, seed, most
):
    # An outsider's: 400 projects of a 100/s bucket unfinished after 58 s, a loop sleeping
    # 1 s on each 429 done in 28. The tests above draw one sequence of refusals
    # (`Sporadic`'s seed 0); others bunch early, and each case is a sequence that did.
    # 100/s: ten answers a second read over 30 % one time in three, each cut that left as
    # many refused was taken for a quota's (a pace of 4/s after 4 s), and twice the
    # noise, capped at 0.21, ended each probe by chance. Ideal 15 s: 44.7 and 49.6 s
    # before; 34.4 and 31.4 with the cuts' fix alone, 32.6 and 39.5 with the probes'
    # alone; 18.8 and 18.7 with both.
    # 20/s, 8 and 9: at a few requests a second, a second's three to six answers read
    # 0.3 to 0.67: each such second cut again, its share over `NOISE_MAX`, so no check
    # found the noise. Now judged on the last ten answers at least. Ideal 15 s: 43.0 and
    # 67.4 s at bb910a2; 22.6 and 31.5 s with the fixes above but this one; 17.0 and 24.8.
    # 20/s, 19 and 28: each pace held was answered 5 to 13 times, none the dozen that
    # noise was read from, and the pace went on down. Now the paces held before a step
    # down and after it are pooled: 40.2 and 68.4 s at cc904b3, 24.9 and 18.8 since.
    # 20/s, 32, and 50/s (ideal 16.3 s): noise taken, a probe from a few requests a
    # second was ended at twice it (capped at 0.21), by chance: the plateau before it
    # held too few answers to say what it was refused. Now the noise taken stands for
    # them: a tenth more than it ends a probe. 68.8, 27.9 and 32.1 s before; 35.4, 21.4
    # and 21.1 now.
    random.seed(0)
    gateway = AllOf([GatewayQuota(rate, 10, **quiet()), Sporadic(0.2, seed=seed)])
    run = simulate(gateway, seconds=120, requests=requests, listings=16)
    assert run.ended <= most


def test_a_third_refused_at_every_pace_as_it_is_cut_fivefold_is_noise():
    # The outsider's 200 projects of a 50/s bucket, a fifth refused at random: six cuts
    # from 33/s to 2/s in four seconds, each pace refused a third to a half, so no rule
    # under `NOISE_MAX` read noise; 88 projects done in 60 s, in two runs (a loop sleeping
    # 1 s on each 429: 18.9 s). Paces 0.6 apart or more, refused alike, are noise now
    # (up to `NOISE_MOST`). 550 requests, ideal 11 s: 80.7 s before, 27.4 now.
    random.seed(0)
    gateway = AllOf([DrawnAsTheOutsiderDrew(0.2, 16), GatewayQuota(50, 10, **quiet())])
    run = simulate(gateway, seconds=120, requests=550, listings=16)
    assert run.ended <= 35


def test_a_clean_pace_pooled_with_a_refused_one_is_not_read_as_noise():
    # A pace held clean before a quota dropped and one refused after, pooled, read as
    # refused about as often as the paces held under the lower quota: noise (0.21) was
    # taken, and no cut came below twice it (888 requests for 760, 805 before pooling).
    # A pace pooled must be refused about as often as the pool, within two deviations.
    assert len(crawl(parse_gateway("0=50:10;2=10:10;5=50:10,announce=off"), 5).starts) <= 830


def test_the_first_burst_into_a_spent_window_or_a_penalty_box_trickles_soon():
    # Five refusals in a row and a quarter second without a success started the trickle:
    # the first burst's listings were refused at the estimate's pace meanwhile. Now a
    # tenth of a second (848 requests for 760 behind 100 per 5 s, 822 behind a 2-s box;
    # now 832 and 806).
    assert len(crawl(FixedWindow(100, 5, **quiet())).starts) <= 838
    assert len(crawl(PenaltyBox(GatewayQuota(50, 10, **quiet()), 2.0)).starts) <= 814


class Contested(FixedWindow):
    """A calendar window (quota unknown) another client sends `others` a second to, evenly."""

    def __init__(self, limit: int, period: float, others: float) -> None:
        super().__init__(limit, period, announce=False)
        self.others, self._others_at = others, 0.0

    def _admit(self, now: float) -> bool:
        while self._others_at + 1 / self.others <= now:
            self._others_at += 1 / self.others
            super()._admit(self._others_at)
        return super()._admit(now)


def test_a_window_others_spend_as_it_rolls_over_is_looked_at_often_enough():
    # 100 per 2 s, another client sending 120 a second: the window is spent about 0.8 s
    # after each rollover, and what this client gets is what it sends before then. A
    # trickle of 2 a second through each blackout, not 4 (tried: 100 per 5 s alone,
    # 1.072x a crawl's requests, not 1.086x), saw it open less often: 120 pages in
    # 4.8 s on average over 16 phases (up to 19.8), 3.7 at 4 (up to 9.1); an outsider's
    # gateway in real time, 80 projects unfinished after 50 s where 21 to 28 s did.
    took = []
    for seed in range(16):
        random.seed(seed)
        gateway = Contested(100, 2, 120)
        run = simulate(
            gateway, seconds=300, requests=120, listings=16, seed=seed, calendar=seed / 8
        )
        took.append(run.ended)
    assert statistics.mean(took) <= 4.2


def test_the_paces_held_are_remembered_for_seconds_not_for_the_whole_crawl():
    # What the noise is read from stays as long as `HELD_MEMORY` whatever the crawl's
    # length: two minutes at 50/s, 10 % at random, endless listings.
    random.seed(0)
    run = simulate(parse_gateway("50:10&random:0.1,announce=off"), seconds=120)
    held = run.controller._held_answers
    assert held
    assert held[-1][0] - held[0][0] <= HELD_MEMORY
    assert run.controller._held_refused == sum(1 for _, ok in held if not ok)


@pytest.mark.parametrize("burst", [10, 50])
def test_a_buckets_next_probe_is_ended_by_its_first_refusals(burst):
    # Before: the 2.5 s after a refused probe, in which refusals of the pace held make no
    # cut (a penalty box may punish the probe), covered the next probe, begun 2 s after:
    # it ran on to 84/s of the 50/s (793 and 795 requests for 760; now 785 and 788).
    run = crawl(GatewayQuota(50, burst, **quiet()))
    assert len(run.starts) <= 1.04 * 760


def test_a_5_second_window_read_from_the_answers_is_sent_in_bursts_without_429s():
    # Before: the window's burst at each rollover read as the rate, probed and cut all
    # along: 131 to 137 refused among the requests sent from 11 s on, 1.28x the requests.
    run = crawl(FixedWindow(100, 5, **quiet()))
    assert sum(1 for started, ok in run.starts if not ok and started >= 11) <= 10
    assert len(run.starts) <= 1.12 * 760
    assert run.ended <= 760 / 20


def test_a_calendar_second_read_from_the_answers_is_paced_just_under():
    # Before: a probe's count straddling two calendar seconds held a pace a few per
    # cent over: 33 to 52 refused among the requests sent from 7 s on.
    run = crawl(FixedWindow(50, 1, **quiet()))
    assert sum(1 for started, ok in run.starts if not ok and started >= 7) <= 5
    assert len(run.starts) <= 1.1 * 760


def test_a_calendar_second_probed_every_3_s_is_never_sent_a_longer_window_s_burst():
    # Begun 0.625 s into a calendar second (seed 10): the probes every 3 s were its only
    # edges, 145 let through between each, read as 145 per 3 s; the pace gave way to a
    # burst of 56 in 0.2 s, and the second refused 28 of them (74 refused in all, 50 now).
    run = crawl(FixedWindow(50, 1, **quiet()), seed=10, calendar=0.625)
    busiest = max(run.sent_between(at / 10, at / 10 + 1) for at in range(20, 140))
    assert busiest <= 60
    assert len(run.starts) <= 1.075 * 760


def test_a_probe_refused_as_a_blackout_begins_is_a_probe_not_a_cut_of_the_pace_held():
    # Begun 5/32 s into a calendar second: each probe's refusals came back as the trickle
    # through the blackout began, were judged against the trickle's rate, not the probe's,
    # and made a cut of the pace held that raised the estimate (33 to 67/s), taken back
    # as noise half a second later: another probe 3 s on, 19 refused each (107 in all).
    run = crawl(FixedWindow(50, 1, **quiet()), seed=5, calendar=5 / 32)
    assert sum(1 for started, ok in run.starts if not ok and started >= 6) <= 25
    assert len(run.starts) <= 1.1 * 760


@pytest.mark.parametrize(("box", "rate", "burst", "before"), [(5, 10, 5, 253), (3, 10, 5, 184)])
def test_a_penalty_box_around_a_bucket_with_a_big_burst_does_not_cycle_for_good(
    box, rate, burst, before
):
    # The probe's last second counted the bucket's burst, the pace held after its
    # punishment set the box off again, and the probe from the blind floor was punished
    # at the same pace: a box every 7 s (an outsider's gateways: 0.26 to 0.45 of the
    # quota; here 253 s and 184 s for 76). The pace refused so now bounds the next one.
    run = crawl(PenaltyBox(GatewayQuota(rate, burst, **quiet()), box), seconds=300)
    ideal = 760 / rate
    assert run.ended <= 0.65 * before
    assert ideal / run.ended >= 0.55


@pytest.mark.parametrize(
    ("box", "rate", "burst", "before"),
    [(2, 20, 1, 0.49), (3, 10, 10, 0.48), (5, 10, 1, 0.42)],
)
def test_a_probe_of_a_gateway_that_punished_one_climbs_slowly_and_keeps_what_it_read(
    box, rate, burst, before
):
    # Doubling in 0.7 s, a punished probe's second before its refusal counted the climb
    # (12.5/s where 20/s was refused), and every later punished probe went back to the
    # pace held before it: a crawl held at 11/s of 20 for good. Climbing a tenth a
    # second, the refusal comes just above the quota, and what the second before it
    # read is kept (efficiency `before`, now 0.6 to 0.7).
    run = crawl(PenaltyBox(GatewayQuota(rate, burst, **quiet()), box), seconds=400)
    assert run.completed == 760
    assert 760 / rate / run.ended >= before + 0.09


@pytest.mark.parametrize("seed", [0, 1])
def test_a_first_punished_probe_over_a_calendar_second_holds_no_pace_above_it(seed):
    # The second before the probe's refusal counted two calendar windows (68.8/s of 50):
    # held at 95 % of 65.4/s after the box, 14 or 15 refused from 2.8 s to 6 s, 50 or
    # 51 in the crawl. Now held a few per cent over the estimate before the probe.
    run = crawl(FixedWindow(50, 1, **quiet()), seed, seed / 8)
    assert sum(1 for started, ok in run.starts if not ok and 2.8 <= started < 6) <= 5
    assert run.refused <= 40


def test_a_5_second_window_read_is_sent_in_a_burst_at_each_rollover():
    # Held under evenly it would send 19.6 a second; in a burst, each window's
    # count goes in its first second, as the gateway allows.
    run = crawl(FixedWindow(100, 5, **quiet()))
    for begin in (20, 25, 30):
        assert run.sent_between(begin, begin + 1) >= 90, begin
        # Its whole count: 2 % under it, a crawl's last 2 of 100 waited a window more.
        assert run.succeeded_between(begin, begin + 5) == 100, begin


def test_a_second_read_as_a_window_is_probed_within_seconds_when_raised():
    # A bucket drawn a little over its rate may pass for a window of a second: such a
    # window is probed as often as after any cut, and a quota raised is found in 5 s.
    gateway = Schedule(
        [(0, FixedWindow(50, 1, **quiet())), (12, GatewayQuota(150, 150, **quiet()))]
    )
    run = simulate(gateway, seconds=20)
    assert run.controller.cuts > 0
    assert run.succeeded_between(17, 19) >= 0.9 * 2 * 150


def test_a_window_read_and_then_raised_is_found_by_the_probes():
    # A 5-second window read, then the gateway is a 100/s bucket: the held window's
    # probes find it (its plateau is seconds, not the crawl).
    gateway = Schedule(
        [(0, FixedWindow(100, 5, **quiet())), (20, GatewayQuota(100, 100, **quiet()))]
    )
    run = simulate(gateway, seconds=45)
    assert run.succeeded_between(40, 45) >= 0.8 * 5 * 100


@pytest.mark.parametrize("seed", [0, 1])
def test_the_first_cut_is_lowered_to_the_refill_rate_once_requests_sent_since_say_it(seed):
    # The first burst's requests leave together: the 10 that got through of a 50/s
    # bucket's burst counted as sent since the first refused one, 228/s in 40 ms, and
    # 0.3 s paced at 205/s until the next cut cost 30 to 36 refusals in the first second.
    random.seed(seed)
    gateway = parse_gateway("50:10,announce=off")
    run = simulate(gateway, seconds=60, requests=760, listings=16, network=0.002, seed=seed)
    assert sum(1 for started, ok in run.starts if not ok and started < 1) <= 26


@pytest.mark.parametrize("seed", [1, 2])
def test_the_first_cut_is_not_lowered_by_a_refill_reading_of_too_few_requests(seed):
    # A 20/s bucket with a burst of 1: none of the first requests sent since the first
    # refusal came back had got through yet, and the first cut was lowered to 1/s (what
    # got through over a second) until a probe 4.8 s later. Half the quota at least.
    random.seed(seed)
    gateway = parse_gateway("20:1,announce=off")
    run = simulate(gateway, seconds=60, requests=600, listings=16, network=0.002, seed=seed)
    assert run.succeeded_between(1, 5) >= 40


@pytest.mark.parametrize("seed", [0, 7])
def test_a_pace_held_a_few_per_cent_over_a_bucket_is_lowered_and_stays_lowered(seed):
    # A 50/s bucket with a burst of 10. Each probe's last second counted the burst saved
    # up under the held pace (53/s), so the pace held at 95 % of it was refused 2 times a
    # second; the refusals that lasted came as the next probe began and were taken for
    # its refusals, the estimate kept: 18 refused from 6 s on. Lowered to what got
    # through but raised again by the next probe: 11 to 12.
    random.seed(seed)
    gateway = parse_gateway("50:10,announce=off")
    run = simulate(gateway, seconds=60, requests=760, listings=16, network=0.002, seed=seed)
    assert sum(1 for started, ok in run.starts if not ok and started >= 6) <= 9
    assert run.ended <= 16.5


@pytest.mark.parametrize("calendar", [0.5, 0.7])
def test_a_held_pace_boxed_after_a_punished_probe_is_held_lower_not_at_the_long_run(calendar):
    # An outsider's gateway: 20 per calendar second, and 3 s refusing everything after
    # any refusal. The probe's second before its refusal counted two calendar windows
    # (28/s), the pace held under that was boxed in its turn, and each such blackout
    # was cut to the long run's 7/s, from which the next probe climbed and was boxed:
    # a box every 5 s, 117 to 121 refused from 8 s on, 39 to 41 s for 300 requests.
    random.seed(1)
    gateway = parse_gateway("penalty:3+window:20/1,announce=off")
    run = simulate(
        gateway, seconds=120, requests=300, listings=16, network=0.002, seed=1, calendar=calendar
    )
    assert sum(1 for started, ok in run.starts if not ok and started >= 8) <= 80
    assert run.ended <= 36


# -- a property: random gateway schedules --------------------------------------------------

phase = st.tuples(
    st.floats(3, 10), st.floats(5, 200), st.floats(0.05, 1.0)
)  # (seconds, rate, burst as a share of the rate)


# The same 40 schedules in every run (derandomised): fresh draws found the controller's
# rare faults (about 1 in 300, then 1 in 13,500 draws), which made the suite fail at
# random. `VBS_EXPLORE=1` draws fresh schedules, for a developer looking for the next one.
# Known and open (issue 19), found by such a draw: phases [(6.59375, 27.4375, 0.6015625),
# (9.734375, 30.0, 0.0625), (4.40625, 70.0, 1.0), (4.07, 64.0, 1.0)], seed 5: 211 starts
# in [20.5, 21.5) against 2 x 70 + 70.
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=not os.environ.get("VBS_EXPLORE"),
)
@given(phases=st.lists(phase, min_size=1, max_size=4), seed=st.integers(0, 1000))
# Drawn in random-order runs (a quota that rose after a low one was held):
@example(phases=[(3.0, 5.0, 0.1), (10.0, 131.0, 0.1)], seed=0)
@example(phases=[(6.0, 5.0, 1.0), (7.0, 37.0, 1.0)], seed=136)
@example(phases=[(8.0, 6.0, 0.5), (7.0, 42.0, 1.0)], seed=0)
# Drawn (a quota dropped from 159/s to 25/s while a cut made by lasting refusals was
# judged, which held off any cut for 2 s: 71 sent in a second):
@example(
    phases=[
        (3.367258482220155, 193.7868161104955, 0.7652066539270246),
        (9.28145642904613, 26.655228776138003, 0.22758130541597404),
        (9.467432927672501, 159.03592730202286, 0.18523422172529458),
        (3.80168191033393, 25.317941231745884, 0.28918706770241526),
    ],
    seed=267,
)
# Drawn (a few per cent at random-looking refusals cut again and again: 19/s of 43.4):
@example(
    phases=[
        (9.312555688799698, 19.017503389839618, 0.9884695117661627),
        (4.447163542551719, 127.6959074042661, 0.8827367302713975),
        (8.093592150443948, 43.42750645573489, 0.6849788151284304),
        (6.0153730336392, 7.996846841468136, 0.3725988527004814),
    ],
    seed=322,
)
def test_never_twice_a_refused_quota_never_half_a_restored_one_for_5_s(phases, seed):
    bounds, schedule, began = [], [], 0.0
    for seconds, rate, burst_share in phases:
        schedule.append((began, GatewayQuota(rate, max(1.0, rate * burst_share), **quiet())))
        bounds.append((began, began + seconds, rate, max(1.0, rate * burst_share)))
        began += seconds
    run = simulate(Schedule(schedule), seconds=began, seed=seed)

    def quota_between(begin: float, end: float) -> tuple[float, float]:
        live = [(rate, burst) for a, b, rate, burst in bounds if a < end and b > begin]
        return max(rate for rate, _ in live), max(burst for _, burst in live)

    refused = [started for started, ok in run.starts if not ok]
    if refused:
        # A second after its first refusal, no second sends more than twice the
        # quota (of the last two seconds: a drop takes a round to see), bursts aside.
        start = refused[0] + 1.0
        while start + 1 <= began:
            quota, burst = quota_between(start - 2, start + 1)
            assert run.sent_between(start, start + 1) <= 2 * quota + burst, start
            start += 0.5
    for begin, end, rate, _ in bounds:
        # From 5 s into each quota on, at least half of it gets through (counted
        # over two seconds: a few requests a second are counted in whole ones).
        start = begin + 5
        while start + 2 <= end:
            assert run.succeeded_between(start, start + 2) >= rate, start
            start += 0.5


# -- the quota the gateway announces ----------------------------------------------------------


OTC_MESSAGE = (
    "The throttling threshold has been reached: policy user over ratelimit,limit:50,time:1 second"
)


@pytest.mark.parametrize(
    ("message", "quota"),
    [
        (
            OTC_MESSAGE,
            Quota(50, 1.0, "user", "1 second"),
        ),
        (
            "policy app over ratelimit, limit:3000, time:1 minute",
            Quota(3000, 60.0, "app", "1 minute"),
        ),
        ("policy api over ratelimit,limit:100,time:5 seconds", Quota(100, 5.0, "api", "5 second")),
        ("limit:10000,time:1 day", Quota(10000, 86400.0, None, "1 day")),
        ("policy ip over ratelimit,limit:7,time:2 hour", Quota(7, 7200.0, "ip", "2 hour")),
        ("The throttling threshold has been reached", None),
        ("limit:0,time:1 second", None),
    ],
)
def test_the_announced_quota_is_read_from_the_gateways_message(message, quota):
    assert parse_quota(message) == quota


def test_a_quota_reads_as_the_command_shows_it():
    assert str(Quota(50, 1.0, "user", "1 second")) == "50 per 1 s"
    assert str(Quota(3000, 60.0, "user", "1 minute")) == "3000 per 1 minute"


class RecordedWindow(FixedWindow):
    """A fixed window that remembers when it admitted or refused."""

    def __init__(self, limit: int, period: float) -> None:
        super().__init__(limit, period)
        self.log: list[tuple[float, bool]] = []

    def _admit(self, now: float) -> bool:
        admitted = super()._admit(now)
        self.log.append((now, admitted))
        return admitted


async def test_an_announced_quota_is_paced_under_with_no_429_after_the_first_ones():
    gateway = RecordedWindow(40, 1)
    async with Emulator(projects=60, sharings_per_project=3, quota=gateway) as emu:
        async with VBSClient(emu.url, auth=TokenAuth(emu.token)) as client:
            results = [r async for r in client.crawl(emu.project_ids, max_projects=16)]
            learned = [(host, str(quota)) for host, quota in client.limiter.quotas]
        assert all(r.ok for r in results)
        assert learned == [(f"127.0.0.1:{emu.port}", "40 per 1 s")]
        first_refusal = min(when for when, admitted in gateway.log if not admitted)
        # Once the window the quota was learned in has rolled over, none refused.
        late = [admitted for when, admitted in gateway.log if when > first_refusal + 1.05]
        assert len(late) > 10
        assert all(late)


def test_the_emulators_gateway_models_are_read_from_text():
    bucket = parse_gateway("20:5")
    assert isinstance(bucket, GatewayQuota)
    assert (bucket.rate, bucket.burst, bucket.announce) == (20, 5, True)
    window = parse_gateway("window:100/5,announce=off,retry-after=zero")
    assert isinstance(window, FixedWindow)
    assert (window.limit, window.period, window.announce, window.retry_after) == (
        100,
        5.0,
        False,
        "zero",
    )
    changing = parse_gateway("0=50;5=10;10=50")
    assert isinstance(changing, Schedule)
    assert [start for start, _ in changing.phases] == [0, 5, 10]
    assert isinstance(parse_gateway("penalty:2+50"), PenaltyBox)
    assert isinstance(parse_gateway("inflight:4"), InFlightCap)
    assert isinstance(parse_gateway("50&random:0.05"), AllOf)
    with pytest.raises(ValueError, match="not a gateway model"):
        parse_gateway("fast")


def test_the_gateway_models_admit_as_documented():
    window = FixedWindow(3, 1.0)
    window._wall_offset = 0.0
    assert [window.admit(10.0 + i / 10) for i in range(5)] == [True, True, True, False, False]
    assert window.admit(11.0)  # the next calendar second
    box = PenaltyBox(GatewayQuota(1, 1), 2.0)
    assert [box.admit(0.0), box.admit(0.1), box.admit(1.5), box.admit(2.2)] == [
        True,
        False,
        False,
        True,
    ]
    cap = InFlightCap(2)
    assert [cap.admit(0), cap.admit(0), cap.admit(0)] == [True, True, False]
    cap.release(0)
    assert cap.admit(0)
    body, headers = FixedWindow(50, 60).refusal("r1")
    assert b"limit:50,time:1 minute" in body
    assert "Retry-After" not in headers
    _, headers = GatewayQuota(5, retry_after="zero").refusal("r2")
    assert headers["Retry-After"] == "0"
    body, _ = GatewayQuota(5, announce=False).refusal("r3")
    assert b"limit" not in body


def test_a_penalty_box_names_its_quota_and_retry_after_as_the_model_inside_it_does():
    # Before: announcing by default around a quiet bucket, so that the suite's own tests
    # of a penalty box with the quota unknown rehearsed a named one.
    quiet_box = PenaltyBox(GatewayQuota(50, 10, announce=False, retry_after="zero"))
    body, headers = quiet_box.refusal("r1")
    assert b"limit" not in body
    assert headers["Retry-After"] == "0"
    body, headers = PenaltyBox(GatewayQuota(50, 10)).refusal("r2")
    assert b"limit:50,time:1 second" in body
    assert "Retry-After" not in headers
    body, _ = PenaltyBox(GatewayQuota(50, 10, announce=False), announce=True).refusal("r3")
    assert b"limit:50,time:1 second" in body


# -- the quota announced, on the fake clock: the benchmark's crawl ---------------------------


def named_crawl(model: str, requests: int = 760) -> Simulated:
    """`crawl`, behind a gateway that names its quota in each refusal (`parse_gateway`'s text)."""
    return simulate(
        parse_gateway(model), seconds=400, requests=requests, listings=16, network=0.002
    )


@pytest.mark.parametrize(
    ("model", "ideal"),
    [
        ("50:50", 760 / 50),
        ("50:10", 760 / 50),
        ("window:50/1", 760 / 50),
        ("window:100/5", 760 / 20),
        ("0=50:10;2=10:10;5=50:10", 2 + 3 + (760 - 100 - 30) / 50),
    ],
)
def test_an_announced_quota_is_used_from_the_first_refusal_with_no_429_after_it(model, ideal):
    # Before: a bucket with a burst of 10 waited for the next calendar second after
    # the first refusal and a probe at 5 s cost half a second more (0.87 of the quota);
    # the quota that came back at 5 s was found by a probe at 10 s (0.81); a probe
    # above a bucket of burst 50 cost 11 429s after the first (1.5 %).
    run = named_crawl(model)
    assert ideal / run.ended >= 0.95
    assert run.refused_after_the_first <= 0.01 * run.sent_after_the_first


@pytest.mark.parametrize(
    ("model", "rate", "before"),
    [("5:5", 5, 0.81), ("2:2", 2, 0.51), ("3:1", 3, 0.66), ("window:5/1", 5, 0.8)],
)
def test_a_slow_announced_quota_is_used_whole(model, rate, before):
    # Before: the starts a window may hold were 98 % of the limit rounded down, so a
    # quota under 50 a second lost a whole request a window: 4 of 5 a second, 1 of 2.
    run = named_crawl(model, requests=400)
    assert (400 / rate) / run.ended >= 0.95 > before


def test_an_announced_penalty_box_is_provoked_by_the_first_burst_only():
    # Before: a probe above the quota 5 s later provoked it again, and the next
    # calendar second after each refusal was waited for: 0.66 of the quota.
    # The first burst's penalty (2 s) is the price of learning the quota: 15.2 / 17.2.
    run = named_crawl("penalty:2+50:10")
    assert (760 / 50) / run.ended >= 0.85
    assert run.refused_after_the_first <= 0.01 * run.sent_after_the_first


@pytest.mark.parametrize("calendar", [0.25, 0.53, 0.9])
def test_an_announced_penalty_box_is_looked_at_on_steps_from_when_it_began(calendar):
    # The benchmark's box began 0.53 s into a calendar second: looked at on the
    # calendar second, then every half second from that look, the last look came 22 ms
    # before the box's end and the next half a second late (0.85, 6 429s after the first).
    # On half seconds from the first refusal, the look at 2 s finds it over. Bound: the
    # box costs 2 s and paced at 49/s the bucket's 10 saved tokens go unused, so
    # 2 + 750/49 = 17.3 s for 15.2 s at the quota (0.878).
    run = simulate(
        parse_gateway("penalty:2+50:10"),
        seconds=400,
        requests=760,
        listings=16,
        network=0.002,
        calendar=calendar,
    )
    assert (760 / 50) / run.ended >= 0.865
    assert run.refused_after_the_first <= 0.01 * run.sent_after_the_first


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_429s_naming_the_quota_cost_little_more_than_none(seed):
    # a17: a 50/s bucket (burst 50) refusing 5 % more at random, each refusal naming
    # `limit:50,time:1 second`: each paused every start two intervals and widened the
    # margin under the limit to 25 %: 1.62x to 1.67x the same crawl without them (2.0x
    # against the outsider's gateway). A refusal of a start spaced a quarter more than the
    # limit's interval after the one before, with the margin widened already, is noise:
    # refusals after a success then pause nothing while few of the last seconds' are.
    def crawl_refusing(share: float) -> Simulated:
        gateway = AllOf([GatewayQuota(50, 50), Sporadic(share, seed=seed, limit=50, announce=True)])
        return simulate(gateway, seconds=400, requests=760, listings=16, network=0.002, seed=seed)

    clean, noisy = crawl_refusing(0.0), crawl_refusing(0.05)
    assert noisy.refused >= 0.04 * 760
    assert noisy.ended <= 1.3 * clean.ended


@pytest.mark.parametrize("others", [20, 30])
def test_a_named_quota_other_clients_spend_too_is_not_taken_from_them(others):
    # A quota the account's other clients spend too (an OTC `user` policy counts them
    # all) refuses the client's pace and theirs alike as the client's pace drops, so
    # refusals alike at 98 % and 75 % of the limit tell noise from it no better than
    # chance. Taken for noise that way (a rule tried in a8b6ddb and reverted), the client
    # paced at the limit and took the others' tokens: a client sending 30 a second got
    # 15 to 20 through, not 26 (an outsider's gateway: 16 to 18).
    random.seed(0)
    gateway = SharedWithOthers(others)
    run = simulate(gateway, seconds=600, requests=550, listings=16)
    assert run.completed == 550
    assert gateway.others_served >= 0.65 * gateway.others_sent
    assert run.refused <= 0.2 * len(run.starts)


class Overloaded(Sporadic):
    """A share of requests refused at random, each refusal naming `limit` per `unit`."""

    def __init__(self, share: float, seed: int, limit: int, unit: str) -> None:
        super().__init__(share, seed=seed, limit=limit, announce=True)
        self.unit = unit

    def quota(self, now: float | None = None) -> tuple[int, str] | None:
        del now
        return self.limit, self.unit


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("quota", "unit", "requests"),
    [
        pytest.param(lambda: GatewayQuota(2, 2), "1 second", 400, id="2/s-bucket"),
        pytest.param(lambda: GatewayQuota(5, 5), "1 second", 400, id="5/s-bucket"),
        pytest.param(lambda: FixedWindow(1, 1), "1 second", 400, id="1-per-calendar-second"),
        pytest.param(lambda: FixedWindow(5, 1), "1 second", 400, id="5-per-calendar-second"),
        pytest.param(lambda: FixedWindow(100, 60), "1 minute", 1500, id="100-per-minute"),
    ],
)
def test_random_429s_naming_a_slow_quota_cost_little_more_than_none(quota, unit, requests, seed):
    # As above, under quotas too slow for two seconds to hold the 20 answers the share
    # of refusals was judged on, or the log of one period's starts the 10 gaps the
    # spacing was: no random 429 was noise, each paused the pace and widened the margin
    # (5/s: 1.29x to 1.35x; 5 per calendar second: 1.28x to 1.34x; 2/s: 1.21x to 1.26x;
    # 1 per calendar second: 1.14x to 1.20x), and under 100 a minute each waited for
    # the next minute, or half of one (2.36x to 2.49x). Judged over the last 20 answers
    # where two seconds hold fewer: 1.06x to 1.13x.
    def crawl_refusing(share: float) -> Simulated:
        gateway = quota()
        limit = int(gateway.quota()[0])  # type: ignore[index]
        refusing = AllOf([gateway, Overloaded(share, seed, limit, unit)])
        return simulate(
            refusing, seconds=10_000, requests=requests, listings=16, network=0.002, seed=seed
        )

    clean, noisy = crawl_refusing(0.0), crawl_refusing(0.05)
    assert noisy.refused >= 0.04 * requests
    assert noisy.ended <= 1.3 * clean.ended


def test_an_announced_minute_s_whole_count_is_used():
    # 300 a minute, named: 294 a minute (a margin of 2 %) left the last 6 of 900 requests
    # a fourth minute to wait, 181 s (an outsider's crawl of 900: 160 s and 176 s where 99
    # and 115 would do). A window longer than a second is spent in bursts: its whole
    # count, no jitter to keep a margin for.
    random.seed(0)
    run = simulate(FixedWindow(300, 60), seconds=600, requests=900, listings=16, network=0.002)
    assert run.completed == 900
    assert run.ended < 150  # three minutes' windows, not four


class _Behind(FixedWindow):
    """`FixedWindow`, its minutes counted from `behind` seconds after the client's."""

    def __init__(self, limit: int, period: float, behind: float) -> None:
        super().__init__(limit, period)
        self.behind = behind

    def _admit(self, now: float) -> bool:
        return super()._admit(now - self.behind)


@pytest.mark.parametrize(
    ("gateway", "pages", "calendar", "most"),
    [
        # On the calendar, begun 5 s before a minute: windows from 5 s and 65 s. Before:
        # 121 s and 121.7 s. The probe above after a quiet minute sent 16 into the spent
        # window before 65 s; counted in it as a sliding window counts, they kept 16 of
        # the next window's 60 for a third minute (and 300 a minute from 30 s: 90 s).
        pytest.param(lambda: FixedWindow(60, 60), 180, 55.0, 65 + 2, id="calendar 60"),
        pytest.param(lambda: FixedWindow(300, 60), 900, 30.0, 90 + 2, id="calendar 300"),
        # Sliding: windows from 0 s and 60 s. Before: 180.4 s. 13 of the first burst's
        # 60 were answered after the refusal that taught the quota: left out of its log,
        # the refusals at the calendar's minute read as a penalty box, not a window
        # counted back from each request, and waited for the next minute; the probe's 15
        # refused then counted in the sliding log, and cost a third minute.
        # (+4: each window's burst waits for the answer of its first request, and the
        # last request of the window before it leaves it 1 % late.)
        pytest.param(lambda: SlidingWindow(60, 60), 180, 0.5, 120 + 4, id="sliding 60"),
        # The gateway's minutes roll over elsewhere than the client's: 20 s after them (at
        # 50 s and 110 s; before: 151.4 s, then 122 s read as sliding, a minute after each
        # burst), 2 s after (at 7 s and 67 s: 121.4 s, an outsider's 125.5 s), 24 s into
        # the crawl (36 requests at 20 a minute: 59.9 s, an outsider's 60.7 s). Probed
        # while spent (`PHASE_PROBED`), the rollover is seen within a probe's step.
        pytest.param(lambda: _Behind(300, 60, 20.0), 900, 30.0, 110 + 3, id="20 s behind"),
        pytest.param(lambda: _Behind(60, 60, 2.0), 180, 55.0, 67 + 5, id="2 s behind"),
        pytest.param(lambda: _Behind(20, 60, 24.2), 36, 0.2, 24 + 5, id="24 s in"),
    ],
)
def test_an_announced_minute_window_is_used_whole_at_each_minute(gateway, pages, calendar, most):
    random.seed(0)
    run = simulate(
        gateway(), seconds=600, requests=pages, listings=16, network=0.002, calendar=calendar
    )
    assert run.completed == pages
    assert run.ended <= most


def test_a_minute_s_rollover_is_probed_a_request_at_a_time_until_seen():
    # On the calendar, begun at its first second: the first burst spends the minute, and
    # the rest wait for the next. Until then, one request each 5 s asks whether the
    # gateway's minute rolled over earlier (each refused here); once through at the
    # client's minute, nothing more.
    random.seed(0)
    run = simulate(
        FixedWindow(20, 60), seconds=600, requests=36, listings=12, network=0.002, calendar=0.2
    )
    assert run.ended < 60.0
    probes = [at for at, ok in run.starts if not ok and at > run.first_refusal]
    assert len(probes) <= PHASE_PROBES - 1  # a step apart before the minute, not at it
    assert all(b - a >= 60 / PHASE_PROBES - 1e-6 for a, b in itertools.pairwise(probes))
    refusals_after = [at for at, ok in run.starts if not ok and at >= 59.8]
    assert refusals_after == []


def test_at_the_client_s_minute_one_request_asks_first_while_the_rollover_is_unseen():
    # The gateway's minute rolls over 2 s after the client's (at 7 s): at the client's
    # (5 s), its first request alone is refused, not the 16 waiting (as before).
    random.seed(0)
    run = simulate(
        _Behind(60, 60, 2.0), seconds=600, requests=180, listings=16, network=0.002, calendar=55
    )
    assert [at for at, ok in run.starts if not ok and 4.9 < at < 6.9] == [pytest.approx(5.0)]


def test_a_random_429_that_teaches_a_minute_quota_does_not_wait_out_its_first_minute():
    # 100 a minute, 5 % refused at random (naming it): the first refusal came at random,
    # before the crawl's burst spent the minute, and the quota learned from it waited for
    # the next minute: 1.25x to 1.26x the crawl of 400 pages without them (9 of 10 seeds).
    # A request sent no earlier than the refused one got through: the minute was not
    # spent, and the block lifts. 330 pages: four minutes' whole counts hold them and
    # their 5 % refused again (400 did not, once the count was used whole: a fifth minute
    # for the noise alone). Over 12 sequences of refusals: a minute lost mid-crawl read
    # 1.33x (one of them, and 2 of 40); the crawl's last request refused at random may
    # wait for a look half a minute on (1.167x, 2 of them).
    ratios = []
    for seed in range(12):
        random.seed(seed)  # the back-off's jitter

        def crawl_refusing(share: float, seed: int = seed) -> Simulated:
            refusing = AllOf([FixedWindow(100, 60), Overloaded(share, seed, 100, "1 minute")])
            return simulate(
                refusing, seconds=10_000, requests=330, listings=16, network=0.002, seed=seed
            )

        clean, noisy = crawl_refusing(0.0), crawl_refusing(0.05)
        assert noisy.refused >= 0.04 * 330
        assert noisy.first_refusal is not None
        assert noisy.first_refusal < 1.0
        assert noisy.succeeded_between(0, 60) > 50  # the first minute used, not waited out
        ratios.append(noisy.ended / clean.ended)
    assert max(ratios) < 1.2
    assert statistics.mean(ratios) < 1.05


@pytest.mark.parametrize("behind", [2.0, 34.0])
def test_a_random_429_that_teaches_a_minute_quota_leaves_the_gateway_s_minute_to_be_found(
    behind,
):
    # 100 a minute, 5 % refused at random (naming it), the gateway's minute `behind` the
    # client's. The first refusal came at random; the block it set lifted as the next
    # request got through, and that request, taken for a probe of the rollover at the
    # opening believed (none: the block was gone), said the client's own minute was the
    # gateway's. It was never looked for again: each minute's burst came 2 s early into
    # a spent window (1.83x the crawl without the noise, the median of 8 sequences; 34 s
    # behind, 1.26x). A probe is one only while the window is spent, as the gateway said.
    ratios = []
    for seed in range(8):
        random.seed(seed)  # the back-off's jitter

        def crawl_refusing(share: float, seed: int = seed) -> Simulated:
            refusing = AllOf([_Behind(100, 60, behind), Overloaded(share, seed, 100, "1 minute")])
            return simulate(
                refusing,
                seconds=10_000,
                requests=240,
                listings=16,
                network=0.002,
                seed=seed,
                calendar=0.5,
            )

        clean, noisy = crawl_refusing(0.0), crawl_refusing(0.05)
        assert noisy.refused >= 0.04 * 240
        ratios.append(noisy.ended / clean.ended)
    assert statistics.median(ratios) < 1.01
    # One sequence of 8 still loses a window (1.91x at 2 s behind, 1.31x at 34 s).
    assert sum(ratio > 1.2 for ratio in ratios) <= 1


@pytest.mark.parametrize(
    ("model", "limit", "requests", "calendar"),
    [
        ("2:2", 2, 450, 0.0),
        ("window:1/1", 1, 300, 0.3),
        ("5:5", 5, 1000, 0.0),
        ("2:4", 2, 450, 0.0),
        ("5:10", 5, 1000, 0.0),
    ],
)
def test_a_probe_above_a_slow_announced_quota_costs_a_refusal_not_a_burst(
    model, limit, requests, calendar
):
    # A clean crawl (no 429 at random). Before: the probe after each quiet minute started
    # twice the limit within a second before its first refusal came back, which forgot
    # the quota on those starts alone; the crawl's 16 listings then fired at once and
    # learned it again: 52 of 500 requests after the first refusal refused at 2/s, 70 of
    # 369 at 1 per calendar second, 49 of 1044 at 5/s; behind a bucket whose burst is twice
    # the limit, 46 of 492 (2/s) and 40 of 1030 (5/s), and still 50 of 496 and 46 of 1036
    # judged on one second's answers (the saved-up burst and a second's refill got more than
    # twice the limit through). Judged on the probe's answers, two seconds running: one
    # refusal per probe (and one as the quota is learned), the quota known throughout.
    run = simulate(
        parse_gateway(model),
        seconds=10_000,
        requests=requests,
        listings=16,
        network=0.002,
        calendar=calendar,
    )
    assert run.refused_after_the_first <= 0.01 * run.sent_after_the_first
    # Probes after 60 quiet seconds, then 120, 240 (each refused one doubles the gap).
    probes = sum(1 for at in (60, 180, 420, 720) if at < run.ended)
    assert run.refused_after_the_first <= 1 + probes
    assert [quota.limit for _, quota in run.limiter.quotas] == [limit]


def test_a_slow_announced_quota_that_was_raised_is_found_by_the_probe_and_forgotten():
    # 2 a second for the first 30 s, then 20 (the refusals say so). The probe after the
    # quiet minute gets more than twice the old limit through in a second: it is
    # forgotten, and the 20/s learned when refused again (as before: judged on starts).
    run = named_crawl("0=2:2;30=20:20", requests=400)
    assert run.succeeded_between(0, 60) <= 2 * 60 + 16  # the old quota's pace, a burst
    assert run.ended <= 61 + 280 / 20 + 2
    assert [quota for _, quota in run.limiter.quotas] == [Quota(20, 1.0, "user", "1 second")]


@pytest.mark.parametrize(("model", "latency"), [("5:1", 0.3), ("2:1", 0.6)])
def test_a_slow_buckets_own_jitter_still_widens_the_margin(model, latency):
    # A bucket with a burst of 1, reached through a network that jitters by 10 % of its
    # latency (15 ms at 5/s, 30 ms at 2/s: more than the 2 % margin's 4 ms and 10 ms):
    # its refusals follow the pace, and each widens the margin. Taken for noise (any
    # lone refusal), 30 % of the requests after the first refusal were refused.
    run = simulate(parse_gateway(model), seconds=10_000, requests=400, listings=16, latency=latency)
    assert run.refused_after_the_first <= 0.05 * run.sent_after_the_first


class SharedWindow(FixedWindow):
    """A fixed window of which another client spends `taken` at the start of every other one."""

    def __init__(self, limit: int, period: float, taken: int) -> None:
        super().__init__(limit, period)
        self.taken = taken

    def _admit(self, now: float) -> bool:
        window = int((now + self._wall_offset) // self.period)
        if window != self._window and window % 2 == 0:
            self._window, self._count = window, self.taken
        return super()._admit(now)


def test_a_minute_window_spent_by_another_client_still_blocks_until_it_rolls_over():
    # The refusals of a window spent come in a row: the second waits for the next
    # minute. Taken for noise (every refusal), 130 of 490 requests after the first
    # refusal were refused; 32 of 392 here, as before refusals were judged under it.
    # Each window the other client spent refuses the requests in flight when its
    # first refusal came (16 listings), and two looks, one request each (a sliding
    # window has room again as its own oldest start leaves it, and half a minute on as
    # the others' do), and no more: those after them wait for the next. In the first,
    # where the rollover is not yet seen, a probe of it each 5 s too.
    run = simulate(SharedWindow(100, 60, 60), seconds=10_000, requests=400, listings=16)
    refused = collections.Counter(int(at // 60) for at, ok in run.starts if not ok)
    assert refused[0] <= 16 + PHASE_PROBES
    assert max(count for window, count in refused.items() if window) <= 16 + 2
    assert (400 / (100 / 60)) / run.ended >= 0.75


def test_a_probe_above_an_announced_quota_that_was_punished_is_not_tried_again():
    # 204 s at 49/s: a probe after a minute's quiet provokes the penalty box, and is
    # the last. Before: probes after 5, 10, 20 ... quiet seconds, each provoking it
    # (220 s); a second probe two minutes after the first: 212 s.
    run = named_crawl("penalty:2+50:10", requests=10_000)
    assert run.ended <= 10_000 / 49 + 2 + 2.5 + 2  # the first burst's penalty, one probe's
    assert run.refused_after_the_first <= 15


def test_a_lower_quota_that_lasts_is_tried_above_rarely():
    # The quota drops to 10/s for good: the old 50/s is tried again after 1, 2, 4 ...
    # quiet seconds, each try costing a 429 and up to a second of the lower quota.
    # Before: probes doubling the pace every 0.7 s after 5 quiet seconds, 61 429s.
    run = named_crawl("0=50:10;2=10:10", requests=400)
    assert run.refused_after_the_first <= 0.02 * run.sent_after_the_first
    assert run.ended <= 2 + 300 / 10 / 0.9


@pytest.mark.parametrize(
    ("message", "quota"),
    [
        ("limit:10000,time:1 second", Quota(10000, 1.0, None, "1 second")),
        ("limit:10001,time:1 second", None),  # faster than a client sends: not a pace
        ("limit:99999999999999999999999,time:1 second", None),
        ("limit:" + "9" * 5000 + ",time:1 second", None),  # no int() of 5,000 digits
        ("limit:1000,time:7 day", Quota(1000, 7 * 86400.0, None, "7 day")),
        ("limit:1000,time:8 day", None),  # longer than a week: not waited for
        ("limit:20,time:99999999999999999999 second", None),
    ],
)
def test_an_announced_quota_that_cannot_be_true_is_not_believed(message, quota):
    assert parse_quota(message) == quota


async def test_an_absurd_announced_limit_is_learned_from_instead(make_client):
    # a06 D: a 20/s bucket announcing limit:99999999999999999999999 was paced "under" it:
    # 6 of 20 projects done after 25 s, 151 of 177 answers 429.
    huge = "policy user over ratelimit,limit:99999999999999999999999,time:1 second"
    async with Emulator(projects=1, sharings_per_project=3) as emu:
        emu.inject(Fault.answer(429, form="gateway", message=huge), times=2)
        client = make_client(emu)
        assert await client.count_sharings(emu.project_ids[0]) == 3
        assert client.limiter.quotas == []  # nothing announced believed
        assert client.limiter.adaptive.throttled_answers == 2  # learned from instead


class Overstating(GatewayQuota):
    """A bucket (`rate`, `burst`) whose 429s name `named` per `unit`, not what it lets through."""

    def __init__(self, rate: float, burst: int, named: int, unit: str = "1 second") -> None:
        super().__init__(rate, burst)
        self.named = named
        self.unit = unit

    def quota(self, now: float | None = None) -> tuple[int, str] | None:
        del now
        return self.named, self.unit


@pytest.mark.parametrize(
    ("named", "most_requests"),
    [
        # Paced under 100 a second, each refusal paused the pace and, refused again,
        # blocked until the calendar second rolled over: 7 a second got through, 84 s
        # and 1.30x the requests (1.09x to 1.10x now, 40 s).
        (100, 1.15),
        # Paced under 5,000 a second (nothing): 44 s and 2.5x the requests (1.17x to
        # 1.19x now, 38 s).
        (5000, 1.25),
    ],
)
def test_a_quota_named_far_above_what_the_gateway_lets_through_is_learned_from(
    named, most_requests
):
    # helper-61's gateway: a 20/s bucket naming 5,000 a second, 51 % of requests refused.
    run = simulate(Overstating(20, 5, named), seconds=300, requests=760, listings=16, seed=0)
    assert run.completed == 760
    assert run.ended <= 1.15 * 760 / 20  # 38 s at the quota
    assert len(run.starts) <= most_requests * 760
    assert run.limiter.quotas == []  # not paced under it any more


@pytest.mark.parametrize(
    ("rate", "named"),
    [
        (20, 25),  # named a quarter too high: paced under it, the margin widened
        (20, 100),
        (5, 50),  # a slow bucket: 5 answers a second
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_a_quota_named_above_a_bucket_with_no_burst_is_not_crawled_at_two_a_second(
    rate, named, seed
):
    # A bucket with a burst of 1 refuses any request sent a little early. Paced under the
    # quota named, each refusal paused the pace and, refused again, waited half a
    # second: 2 a second got through, 585 to 595 of 760 pages done in 300 s. The 3 s
    # judged then held too few answers (8 to 12) to find it overstated. Now 10 are
    # judged when over 40 % were refused (20/s naming 100, dropped at 3 s), or the last
    # 10 s (5/s naming 50); and a refusal while a request sent before it is out does not
    # wait half a second: 20/s naming 25 is paced under it, the margin widened to a
    # quarter. 1.1x to 1.5x the time at the bucket's rate.
    random.seed(seed)
    gateway = Overstating(rate, 1, named)
    run = simulate(gateway, seconds=600, requests=760, listings=16, seed=seed, network=0.002)
    assert run.completed == 760
    assert run.ended <= 1.6 * 760 / rate
    assert len(run.starts) <= 1.25 * 760


@pytest.mark.parametrize(
    "named",
    [
        1200,  # the bucket's rate, named per minute
        20,  # a second's worth of the bucket per minute, refused under it all the same
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_a_minute_named_over_a_bucket_is_not_waited_out_a_minute_at_a_time(named, seed):
    # helper-68's gateway: a 20/s bucket with a burst of 5 whose 429s name 1200 a minute.
    # The probe of the minute's rollover got through at 5 s, the burst after it was
    # refused from its sixth request on, and the client waited for the next minute, then
    # half minutes: 5 through each time, 55 of 120 requests in 300 s (an outsider's
    # command: 7 of 40 projects after 105 s, "ETA 7m52s", where rate_limit=20 took 6 s).
    # Now the rollover is probed for again, found 5 s after the first, and the quota
    # goes: its rate is learned. 18 s.
    random.seed(seed)
    gateway = Overstating(20, 5, named, "1 minute")
    run = simulate(gateway, seconds=300, requests=120, listings=16, seed=seed, network=0.002)
    assert run.completed == 120
    assert run.ended <= 30
    assert run.limiter.quotas == []  # not paced under it any more
    assert [str(quota) for _, quota in run.limiter.doubted] == [f"{named} per 1 minute"]


class SpentByOthers(FixedWindow):
    """A window naming `named` a `period`, `shift` s off the client's calendar, of which
    others take all but `limit`."""

    def __init__(self, named: int, period: float, limit: int, shift: float) -> None:
        super().__init__(limit, period)
        self.named, self.shift = named, shift

    def _admit(self, now: float) -> bool:
        return super()._admit(now + self.shift)

    def quota(self, now: float | None = None) -> tuple[int, str] | None:
        del now
        return self.named, "1 minute"


@pytest.mark.parametrize("shift", [0.0, 22.5, 45.0])
def test_a_minute_others_spend_is_kept_and_doubted_once(shift):
    # 30 a minute named, others taking all but 3 of each minute as it rolls over: each
    # burst after a rollover is refused with room, as behind a bucket naming a minute.
    # Probed for again, the rollover comes a minute later: the quota stands. Doubted at
    # each window, 172 refused in 400 s (111 without the doubt); once, 122 to 129.
    random.seed(0)
    gateway = SpentByOthers(30, 60, 3, shift)
    run = simulate(gateway, seconds=400, requests=30, listings=16, seed=0, network=0.002)
    assert run.completed >= 21  # 3 a minute
    assert [str(quota) for _, quota in run.limiter.quotas] == ["30 per 1 minute"]
    assert run.refused <= 140


def crawl_behind_a_named_bucket(
    rate: float, burst: float, named: int | None, projects: int, *, jitter: float = 0.0
) -> tuple[list[ProjectSharings], list[object], float]:
    """The session's path on the virtual clock: a bucket whose 429s name `named` a second.

    Three pages a project. Each request arrives up to `jitter` seconds late; a 429
    comes back at once, a success after the backend's 40 ms when `jitter` is set.
    `named` None: the 429s name nothing.
    """
    message = "The throttling threshold has been reached"
    if named is not None:
        message += f": policy user over ratelimit,limit:{named},time:1 second"
    bucket = {"tokens": burst, "at": 0.0}
    late = random.Random(0)

    async def answer(sent: SentRequest) -> Response:
        if jitter:
            await asyncio.sleep(late.uniform(0, jitter))  # the way there
        now = asyncio.get_running_loop().time()
        bucket["tokens"] = min(burst, bucket["tokens"] + rate * (now - bucket["at"]))
        bucket["at"] = now
        if bucket["tokens"] < 1:
            return response(429, {"error_code": "APIG.0308", "error_msg": message})
        bucket["tokens"] -= 1
        if jitter:
            await asyncio.sleep(0.04)  # the backend
        offset = sent.request.offset or 0
        project = sent.request.project_id
        page = [sharing_document(f"{project}-{i}", project) for i in range(offset, offset + 100)]
        return response(200, {"shared": page[: max(0, 250 - offset)], "count": 250})

    async def crawl() -> tuple[list[ProjectSharings], list[object]]:
        async with VBSClient(
            "https://vbs.example", auth=TokenAuth("t"), transport=MockTransport(answer)
        ) as client:
            ids = [f"{i:032x}" for i in range(1, projects + 1)]
            results = [result async for result in client.crawl(ids)]
            return results, list(client.limiter.quotas)

    (results, quotas), took = on_virtual_clock(crawl)
    return results, quotas, took


def test_a_bucket_with_no_burst_named_truthfully_is_paced_under_through_jitter():
    # A 100/s bucket with a burst of 1, named, in real time: arrivals jitter a few
    # milliseconds, 429s come back at once and successes after the backend's 40 ms. The
    # first start after each block got through, the next, 10 ms on, was refused before
    # that success came back: read as a spent window, then as a penalty box, 2 a second
    # got through, and the quota was dropped at 3.4 s (11 s for 150 pages, 1.5 s at the
    # quota). On the virtual clock, arrivals jittered by up to 4 ms: 9.5 s before. The
    # back-off's jitter seeded: over 100 seeds 2.5 s is typical, 3 took 3.0 to 4.9 s (the
    # test failed at random, after a test that seeded the generator otherwise).
    random.seed(0)
    results, quotas, took = crawl_behind_a_named_bucket(100, 1, 100, 50, jitter=0.004)
    assert all(result.ok for result in results)
    assert quotas != []  # still paced under it
    assert took < 2 * 150 / 100


@pytest.mark.parametrize(
    "gateway",
    [
        pytest.param(lambda: SharedWithOthers(30), id="a-quota-others-spend-30-of-50"),
        pytest.param(lambda: parse_gateway("penalty:2+50:10"), id="a-2-s-penalty-box"),
        pytest.param(lambda: parse_gateway("penalty:5+50:10"), id="a-5-s-penalty-box"),
        pytest.param(lambda: parse_gateway("window:100/5"), id="100-per-5-s"),
    ],
)
def test_a_named_quota_that_holds_is_never_found_overstated(gateway):
    # Others spending the quota leave this client more than a quarter of it; a penalty
    # box lets nothing through for 2 or 5 s, a 5-s window spent in a burst nothing for 4,
    # and the pace under the quota waits with a look each half second: too few answers
    # to judge (a 5-s box's 3 s of nothing, judged, would read under a quarter).
    random.seed(0)
    run = simulate(gateway(), seconds=300, requests=760, listings=16, seed=0)
    assert run.completed == 760
    assert run.limiter.quotas != []
    assert run.limiter.adaptive.cuts == 0  # every 429 paced under the quota, none learned from


def test_a_true_quota_others_spend_is_not_dropped_behind_a_backend_answering_slowly():
    # 429s come back at once, successes after the backend's half second: of the requests
    # sent in the last moments, the answered were mostly refusals, and a quota another
    # client spends 30 of 50 a second of read as refusing over 40 % (dropped at 4 s).
    # Judged only on the requests whose answers are in (an outsider's: three processes
    # sharing a true quota, answered in 0.5 to 1.5 s, each dropped it).
    random.seed(0)
    run = simulate(
        SharedWithOthers(30), seconds=300, requests=760, listings=16, latency=0.5, network=0.002
    )
    assert run.completed == 760
    assert run.limiter.quotas != []
    assert run.limiter.adaptive.cuts == 0


def test_a_quota_named_above_a_slow_bucket_is_not_paced_under_with_half_refused_for_good():
    # An outsider's: a 2/s bucket (burst 1) naming 5 a second let 1.33 through and refused
    # 1.33 every second of a crawl, over a quarter of the limit through: never found
    # overstated (1.41 refused a second from 20 s on, fake clock; 0.49 now, learned).
    random.seed(0)
    run = simulate(Overstating(2, 1, 5), seconds=90, listings=16, network=0.002)
    late = [ok for started, ok in run.starts if started >= 20]
    assert run.limiter.quotas == []
    assert late.count(False) / 70 <= 0.7
    assert late.count(True) / 70 >= 1.2  # the learned rate: 0.67 of the bucket


def test_a_long_penalty_box_named_is_not_found_overstated_when_its_answers_are_few():
    # A 12-s box around a 10/s bucket (burst 1): a look each half second while it holds,
    # 20 answers in 10 s, all refused. Judged over 10 s, it read as a quota overstated,
    # and learning its refusals took 223 s where 102 s do: nothing got through for the
    # second half of the span, as a lower limit than the one named would have let.
    random.seed(0)
    run = simulate(
        parse_gateway("penalty:12+10:1"), seconds=600, requests=760, listings=16, network=0.002
    )
    assert run.completed == 760
    assert run.limiter.quotas == [("gateway", Quota(10, 1.0, "user", "1 second"))]
    assert run.ended <= 1.5 * 760 / 10


def test_a_client_behind_a_gateway_naming_five_times_its_quota_runs_at_the_quota(caplog):
    # The session's path (`Session._learn`), on the virtual clock: a 20/s bucket (burst 5)
    # whose 429s name 100 a second. 80 projects of three pages: 12 s at the quota.
    with caplog.at_level("INFO", logger="vbs_async"):
        results, quotas, took = crawl_behind_a_named_bucket(20, 5, 100, 80)
    assert all(result.ok for result in results)
    # Paced under 100 a second: 34 s, 7 a second through. Now 15.3 s: 3 s under it, then
    # learned as an unnamed quota.
    assert took < 1.35 * 240 / 20
    assert quotas == []
    dropped = [r for r in caplog.records if "much more than the quota it names" in r.message]
    assert len(dropped) == 1
    assert "(100 per 1 s;" in dropped[0].message
    assert dropped[0].vbs_quota == "100 per 1 s"  # what `--verbose` shows it by


def answer_a_quarter_refused(limiter: RequestLimiter, clock: FakeClock) -> None:
    """4 s of answers under a quota named: a quarter refused, 15 a second through."""
    for tick in range(80):
        clock.now += 0.05
        ticket = Ticket(clock() - 0.04, 1)
        if tick % 4:
            limiter.adaptive.succeeded(ticket)
        else:
            limiter.adaptive.refused_under_quota(ticket)


def test_a_quota_named_twice_what_the_gateway_lets_through_is_kept_and_crawled_in_time():
    # Under a quarter is the line: others sharing a quota leave this client more. A 20/s
    # bucket naming 40 a second stays paced under it (the README says so: 1.24x the
    # requests, in time).
    run = simulate(Overstating(20, 5, 40), seconds=300, requests=760, listings=16, seed=0)
    assert run.limiter.quotas == [("gateway", Quota(40, 1.0, "user", "1 second"))]
    assert run.ended <= 1.05 * 760 / 20
    assert len(run.starts) <= 1.3 * 760


def test_a_quota_found_overstated_is_not_believed_for_a_minute_but_another_is_at_once():
    clock = FakeClock()
    limiter = RequestLimiter(16, None, clock=clock)
    named, other = Quota(100, 1.0, "user", "1 second"), Quota(30, 1.0, "user", "1 second")
    assert limiter.announced("host", "api", named, clock())
    answer_a_quarter_refused(limiter, clock)
    assert limiter.doubts("host", "api", named)
    assert limiter.quotas == []
    assert not limiter.believes("host", "api", named)
    assert limiter.believes("host", "api", other)  # another quota named: news
    clock.now += OVERSTATED_MEMORY
    assert limiter.believes("host", "api", named)
    # Found overstated again: not believed for twice as long (believed again after a
    # minute each time, a 20/s bucket naming 100 a second cost 46 refusals a minute).
    assert limiter.announced("host", "api", named, clock())
    answer_a_quarter_refused(limiter, clock)
    assert limiter.doubts("host", "api", named)
    clock.now += OVERSTATED_MEMORY
    assert not limiter.believes("host", "api", named)
    clock.now += OVERSTATED_MEMORY
    assert limiter.believes("host", "api", named)
    # Doubling each time (240 s, 480 s …) up to an hour, no longer.
    memory = 2 * OVERSTATED_MEMORY
    for _ in range(8):
        memory = min(OVERSTATED_MEMORY_MAX, 2 * memory)
        assert limiter.announced("host", "api", named, clock())
        answer_a_quarter_refused(limiter, clock)
        assert limiter.doubts("host", "api", named)
        clock.now += memory - 1
        assert not limiter.believes("host", "api", named)
        clock.now += 1
        assert limiter.believes("host", "api", named)
    assert memory == OVERSTATED_MEMORY_MAX


@pytest.mark.parametrize(("model", "before"), [("50:1", 0.11), ("20:1", 0.2)])
def test_an_announced_bucket_with_a_burst_of_one_is_not_blocked_a_second_per_refusal(model, before):
    # a07: requests arriving a little early (the network jitters) were refused, and each
    # refusal blocked every request until the calendar second rolled over: one success a
    # second (efficiency 0.06 to 0.11). A refusal pauses two intervals and widens the
    # margin under the limit; only a refusal of the first start after the pause (a spent
    # window) waits for the calendar.
    rate = int(model.split(":")[0])
    run = simulate(parse_gateway(model), seconds=400, requests=760, listings=16)
    assert (760 / rate) / run.ended >= 0.75 > before
    assert run.refused_after_the_first <= 0.01 * run.sent_after_the_first


# -- a quota named for one project's requests -----------------------------------------------

NAMED = (
    "The throttling threshold has been reached: policy user over ratelimit,limit:50,time:1 second"
)


def refusing(refused: dict[str, int]) -> MockTransport:
    """A gateway listing three pages of each project, refusing each of `refused` so many times."""
    left = dict(refused)

    def answer(sent: SentRequest) -> Response:
        project = sent.request.project_id
        if left.get(project, 0) > 0:
            left[project] -= 1
            return response(429, {"error_code": "APIG.0308", "error_msg": NAMED})
        offset = sent.request.offset or 0
        page = [
            sharing_document(f"{project}-{i}", project)
            for i in range(offset, min(250, offset + 100))
        ]
        return response(200, {"shared": page, "count": 250})

    return MockTransport(answer)


async def crawl_behind(transport: MockTransport, projects: list[str]) -> list[ProjectSharings]:
    retry = RetryPolicy(wait_initial=0.01, wait_max=0.02, wait_jitter=0.01)
    async with VBSClient(
        "https://vbs.example", auth=TokenAuth("t"), transport=transport, retry=retry
    ) as client:
        results = [result async for result in client.crawl(projects)]
        assert [quota for _, quota in client.limiter.quotas] == [Quota(50, 1.0, "user", "1 second")]
    return results


def test_a_quota_named_for_one_projects_requests_does_not_pace_the_others():
    # a10: one project refused (its quota named) while 80 others are served at 240/s: the
    # 50/s paced every project's requests, and the others took 5.8 to 8.0 s instead of
    # 0.8. Refused again for that project (its request sent again), and never for
    # another, the quota holds for that project's requests only.
    good = [f"{i:032x}" for i in range(1, 81)]
    transport = refusing({"b" * 32: 3})
    results, took = on_virtual_clock(lambda: crawl_behind(transport, ["b" * 32, *good]))
    assert all(result.ok for result in results)
    # The pace's waits until the quota is known for that project only (1.4 s of them);
    # before, the others' 240 pages at 49/s: 4.9 s at least.
    assert took < 2.0


def test_a_quota_named_for_two_projects_paces_every_request():
    # On the virtual clock, whose seconds are the pace's alone: on `LoopClock` the real
    # time a loaded machine took counted as pacing (2.38 s of 2.4 waited, an outsider
    # running the suite beside four CPU hogs).
    good = [f"{i:032x}" for i in range(1, 41)]
    refused = {"a" * 32: 1, "b" * 32: 1}
    transport = refusing(refused)
    results, took = on_virtual_clock(lambda: crawl_behind(transport, [*sorted(refused), *good]))
    assert all(result.ok for result in results)
    assert took >= 120 / 50


def test_a_quota_named_for_two_projects_stays_on_every_request_when_one_is_refused_again():
    # A spent window refuses the first burst's requests of several projects: one of
    # them refused again does not make the quota that project's alone.
    good = [f"{i:032x}" for i in range(1, 41)]
    refused = {"a" * 32: 3, "b" * 32: 1}
    transport = refusing(refused)
    results, took = on_virtual_clock(lambda: crawl_behind(transport, [*sorted(refused), *good]))
    assert all(result.ok for result in results)
    assert took >= 120 / 50
