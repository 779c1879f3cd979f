"""Issue 19's gateway matrix on a fake clock: the same figures on any machine, in seconds.

`gateway.py` crawls a real server in real time: one run per row, at whatever
calendar phase the crawl happens to begin (a 5-s window's crawl reads 1.08x to
1.12x its requests by phase alone, fake clock), on a machine whose stalls move
a 4-s crawl by a second. Here the client's own limiter (`RequestLimiter`, the
code every request waits in) meets each gateway model of `vbs_async.testing` on
the simulated clock of the tests (`tests/_throttle_sim.py`): 760 pages, 16
projects listed at once, 40 ms of backend latency, a refusal answered at once.
Each row is the mean (or the median, for random 429s) of many seeds, and the
fixed windows' seeds begin at phases spread over their period.

Rows: each model of the real matrix with its quota unknown and named (requests
÷ the minimum, and efficiency: the time at the quota ÷ the time taken), then
random 429s beyond the issue's 5 % (asked before a 50/s bucket, a new sequence
per seed, as two outsiders' gateways drew them; the time ÷ the time at the
quota with that share refused on top), with the quota unknown and named in every
429; a named quota another client of the account sends to as well; and penalty boxes
around slower buckets, with the quota unknown (crawls of minutes).
`VBS_BENCH_SEEDS` sets the seeds (16).
"""

from __future__ import annotations

import os
import random
import statistics
from typing import TYPE_CHECKING

from tests._throttle_sim import DrawnAsTheOutsiderDrew, SharedWithOthers, simulate
from vbs_async.testing import AllOf, GatewayQuota, parse_gateway

from ._harness import Row
from .gateway import MODELS

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests._throttle_sim import Simulated
    from vbs_async.testing import GatewayModel

PAGES, LISTINGS = 760, 16


def seeds() -> int:
    """`VBS_BENCH_SEEDS`: the seeds each row is the mean of (16)."""
    text = os.environ.get("VBS_BENCH_SEEDS", "16")
    if not text.isdigit() or int(text) < 1:
        raise SystemExit(f"VBS_BENCH_SEEDS must be a whole number of 1 or more, not {text!r}")
    return int(text)


def window_period(text: str) -> float:
    """A fixed window's period in seconds (`window:100/5`: 5), or 0 for any other model."""
    return float(text.rsplit("/", 1)[1]) if text.startswith("window:") else 0.0


def ideal(rate: Callable[[float], float], pages: int = PAGES) -> float:
    """Seconds a client sending at the quota, from the first moment, takes for `pages`."""
    done, at, step = 0.0, 0.0, 0.001
    while done < pages:
        done += rate(at) * step
        at += step
    return at


def crawl(gateway: GatewayModel, seed: int, calendar: float = 0.0) -> Simulated:
    random.seed(seed)  # the back-off's jitter
    return simulate(
        gateway,
        seconds=300,
        requests=PAGES,
        listings=LISTINGS,
        network=0.002,
        seed=seed,
        calendar=calendar,
    )


def model_rows(
    name: str, text: str, rate: Callable[[float], float], period: float, count: int
) -> list[Row]:
    rows = []
    for named in (False, True):
        requests, efficiency = [], []
        for seed in range(count):
            calendar = period * seed / count
            run = crawl(parse_gateway(text + ("" if named else ",announce=off")), seed, calendar)
            assert run.completed == PAGES, (name, named, seed)
            requests.append(len(run.starts) / PAGES)
            efficiency.append(ideal(rate) / run.ended)
        label = f"{name}, quota {'named' if named else 'unknown'} ({count} seeds, fake clock)"
        least = 0.6 if name.startswith("in-flight") else (0.95 if named else 0.8)
        most = 1.05
        mean_requests, mean_efficiency = statistics.mean(requests), statistics.mean(efficiency)
        rows.append(
            Row(
                label,
                f"requests {mean_requests:.3f}x (worst {max(requests):.3f}), "
                f"efficiency {mean_efficiency:.3f} (worst {min(efficiency):.3f})",
                "the minimum, at the quota",
                mean_efficiency,
                f"efficiency >= {least}, requests <= {most}x",
                mean_efficiency >= least and mean_requests <= most,
            )
        )
    return rows


def noise_row(share: float, count: int, *, named: bool = False, pages: int = 550) -> Row:
    """A 50/s bucket (burst 10), `share` refused at random before it: time ÷ the ideal.

    `named`: every 429 names the bucket's quota, the random ones too (as one
    outsider's gateway did; an overloaded backend behind OTC's gateway would not).
    """
    ratios = []
    for seed in range(2 * count):
        random.seed(0)
        noise = DrawnAsTheOutsiderDrew(share, seed, limit=50, announce=named)
        gateway = AllOf([noise, GatewayQuota(50, 10, announce=named)])
        run = simulate(gateway, seconds=600, requests=pages, listings=LISTINGS)
        assert run.completed == pages, (share, seed)
        ratios.append(run.ended / (pages / 50 / (1 - share)))
    ratios.sort()
    median, p90 = statistics.median(ratios), ratios[int(0.9 * len(ratios))]
    target = 1.3 if share <= 0.05 else None
    return Row(
        f"{share:.0%} of 429s at random before a 50/s bucket, quota "
        f"{'named in every 429' if named else 'unknown'} ({2 * count} sequences, fake clock)",
        f"median {median:.2f}x, p90 {p90:.2f}x, worst {ratios[-1]:.2f}x, "
        f"over 2x {sum(ratio > 2 for ratio in ratios)}",
        "the time at the quota, the share refused on top",
        median,
        f"median <= {target}x" if target else "none (beyond the issue's 5 %)",
        target is None or median <= target,
    )


SLOW_BOXES = ((2, 20, 1), (2, 20, 20), (3, 10, 10), (5, 10, 1), (4, 5, 5), (3, 5, 1))
"""Penalty boxes (seconds) around slower buckets (rate, burst), as outsiders' gateways had
them: each crawl is minutes, not the matrix's 15 s, and probes after a punishment count."""


def slow_box_row(box: float, rate: float, burst: int, count: int) -> Row:
    """A penalty box around a slow bucket, quota unknown: efficiency and requests."""
    requests, efficiency = [], []
    for seed in range(max(1, count // 4)):
        gateway = parse_gateway(f"penalty:{box:g}+{rate:g}:{burst},announce=off")
        run = crawl(gateway, seed, seed / 4)
        assert run.completed == PAGES, (box, rate, burst, seed)
        requests.append(len(run.starts) / PAGES)
        efficiency.append(PAGES / rate / run.ended)
    mean_efficiency = statistics.mean(efficiency)
    return Row(
        f"penalty box {box:g} s, bucket {rate:g}/{burst}, quota unknown "
        f"({max(1, count // 4)} seeds, fake clock)",
        f"requests {statistics.mean(requests):.3f}x, efficiency {mean_efficiency:.3f} "
        f"(worst {min(efficiency):.3f})",
        "the minimum, at the quota",
        mean_efficiency,
        "none (beyond the matrix; outsiders' gateways)",
        met=True,
    )


def shared_row(others: float, count: int, pages: int = 550) -> Row:
    """A 50/s quota named, which another client sends `others` a second to: time, 429s, theirs."""
    ratios, refused, served = [], [], []
    for seed in range(count):
        random.seed(seed)
        gateway = SharedWithOthers(others)
        run = simulate(gateway, seconds=600, requests=pages, listings=LISTINGS, seed=seed)
        assert run.completed == pages, (others, seed)
        ratios.append(run.ended / (pages / (50 - others)))
        refused.append(run.refused / len(run.starts))
        served.append(gateway.others_served / run.ended)
    return Row(
        f"a 50/s quota named, another client sending {others:.0f}/s to it ({count} seeds, "
        "fake clock)",
        f"time {statistics.mean(ratios):.2f}x (worst {max(ratios):.2f}x), "
        f"{statistics.mean(refused):.1%} of requests refused, the other client served "
        f"{statistics.mean(served):.1f}/s",
        "the time at what the other client leaves",
        statistics.mean(ratios),
        "none (the other client's share is what to keep)",
        met=True,
    )


async def run(runs: int) -> list[Row]:
    """The matrix and the noise rows (deterministic: `runs` is not used)."""
    del runs
    count = seeds()
    only = os.environ.get("VBS_BENCH_MODELS")
    rows = []
    for name, (text, rate) in MODELS.items():
        if rate is not None and (not only or only in name):
            rows += model_rows(name, text, rate, window_period(text), count)
    if not only or only in "random":
        rows += [noise_row(share, count) for share in (0.05, 0.1, 0.2, 0.25, 0.3)]
        rows += [noise_row(share, count, named=True) for share in (0.05, 0.1, 0.15, 0.2)]
    if not only or only in "shared":
        rows += [shared_row(others, count) for others in (10, 20, 30, 40)]
    if not only or only in "penalty box":
        rows += [slow_box_row(box, rate, burst, count) for box, rate, burst in SLOW_BOXES]
    return rows
