"""The inventory at scale: what `--db` costs a crawl, and a diff of two 1,000,000-sharing runs.

- Crawl overhead: `vbs-async crawl --emulator` (server and client in one
  process, one thread: the crawl runs as fast as one core allows) of
  PROJECTS x PER_PROJECT sharings into a JSONL file, without `--db` and
  with it, in `runs` interleaved pairs (the order alternating within each
  pair), each `--db` run into a new database; then the same with each
  `--db` run into a copy of a database that holds one run of the same job
  (the cron case: every version is extended, none inserted; since schema
  version 2 an extended version's row is compared, not rewritten; since
  version 3 a project whose listing has its previous listing's digest is
  recorded by its outcome alone, no version read). The figure
  judged is the median of the pairs' ratios of **wall-clock time**, what
  the user waits for; the ratios of the crawl thread's CPU time (the
  event loop's: its pace when a core is free for the writer thread) and of
  the whole process's CPU time (what the machine pays) are printed beside
  it, with the load average, since wall time on a shared machine moves
  with what else runs; and the writer's own CPU time (the process's CPU
  beyond the crawl thread's, less the same for the crawl alone) per 1,000
  projects, the figure least moved by the machine's load. Target: `--db`
  at most 1.10 x the crawl alone.
- Diff: two runs of 10,000 projects x 100 sharings recorded through
  `vbs_async.inventory` (1 % of the sharings added, 1 % removed, 1 % changed
  status between them, 20 projects failing in the second), then `vbs-async
  diff --db` in a child process: its time and peak RSS. Target: <= 200 MB.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vbs_async.inventory import Inventory
from vbs_async.inventory._store import sharing_row

from ._harness import ROOT, Row

if TYPE_CHECKING:
    from collections.abc import Callable

PROJECTS, PER_PROJECT = int(os.environ.get("BENCH_INVENTORY_PROJECTS", "2000")), 100
DIFF_PROJECTS, DIFF_PER_PROJECT = 10_000, 100
CHURN = 0.01
FAILED = 20

_PEAK = (
    "import resource, subprocess, sys; "
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); "
    "sys.stderr.write(done.stderr.decode()[-2000:]); "
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


_MEASURED = (
    "import atexit, sys, time; "
    "atexit.register(lambda: sys.stderr.write("
    "f'\\nbenchmark-cpu {time.thread_time()} {time.process_time()}\\n')); "
    "sys.argv[0] = 'vbs-async'; "
    "from vbs_async.cli import run; run()"
)
"""The command, telling at exit its main thread's CPU time (the crawl's) and its process's."""


@dataclass(frozen=True)
class _Crawl:
    wall: float
    loop_cpu: float
    process_cpu: float


def _crawl(folder: Path, database: Path | None) -> _Crawl:
    output = folder / "out.jsonl"
    command = [
        sys.executable, "-c", _MEASURED, "crawl", "--emulator",
        "--emulator-projects", str(PROJECTS), "--emulator-sharings", str(PER_PROJECT),
        "--output", str(output), "--quiet",
        *(["--db", str(database)] if database is not None else []),
    ]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)  # noqa: S603
    wall = time.perf_counter() - began
    output.unlink()
    loop_cpu, process_cpu = done.stderr.split("benchmark-cpu ")[-1].split()
    return _Crawl(wall, float(loop_cpu), float(process_cpu))


def _fresh(folder: Path, attempt: int) -> Path:
    return folder / f"fresh-{attempt}.sqlite"


def _pairs(folder: Path, runs: int, database: Callable[[int], Path]) -> list[tuple[_Crawl, _Crawl]]:
    pairs = []
    for attempt in range(runs):
        # Interleaved, the order alternating: the machine's mood hits both alike.
        if attempt % 2:
            recorded = _crawl(folder, database(attempt))
            alone = _crawl(folder, None)
        else:
            alone = _crawl(folder, None)
            recorded = _crawl(folder, database(attempt))
        pairs.append((alone, recorded))
        for leftover in folder.glob("*.sqlite*"):
            leftover.unlink()
    return pairs


def _overhead_row(label: str, pairs: list[tuple[_Crawl, _Crawl]]) -> Row:
    def ratio(measure: Callable[[_Crawl], float]) -> float:
        return statistics.median(measure(recorded) / measure(alone) for alone, recorded in pairs)

    wall = ratio(lambda crawl: crawl.wall)
    loop_cpu = ratio(lambda crawl: crawl.loop_cpu)
    process_cpu = ratio(lambda crawl: crawl.process_cpu)
    recorded = statistics.median(pair[1].wall for pair in pairs)
    alone = statistics.median(pair[0].wall for pair in pairs)
    writer = statistics.median(
        (pair[1].process_cpu - pair[1].loop_cpu) - (pair[0].process_cpu - pair[0].loop_cpu)
        for pair in pairs
    )
    sharings = PROJECTS * PER_PROJECT
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return Row(
        f"inventory: crawl --emulator {PROJECTS:,}x{PER_PROJECT} with --db {label} "
        f"(wall, median of {len(pairs)} interleaved pairs)",
        f"{recorded:.2f} s ({sharings / recorded:,.0f} rows/s); CPU x{loop_cpu:.2f} in the "
        f"crawl's thread, x{process_cpu:.2f} in all; writer thread "
        f"{writer / PROJECTS * 1000:.2f} s CPU per 1,000 projects",
        f"without --db {alone:.2f} s; load average {load}",
        wall,
        "<= 1.10",
        wall <= 1.10,
    )


def _overhead_rows(runs: int) -> list[Row]:
    with tempfile.TemporaryDirectory(dir=ROOT) as scratch:
        folder = Path(scratch)
        rows = [
            _overhead_row("into a new database", _pairs(folder, runs, lambda a: _fresh(folder, a)))
        ]
        previous = folder / "previous.db"
        _crawl(folder, previous)

        def copy(attempt: int) -> Path:
            database = folder / f"again-{attempt}.sqlite"
            shutil.copyfile(previous, database)
            return database

        rows.append(_overhead_row("into a database of one run", _pairs(folder, runs, copy)))
    return rows


def _record(inventory: Inventory, snapshot: dict[str, dict[str, str]], failed: set[str]) -> None:
    run = inventory.start_run(list(snapshot), account="bench", region="eu-de")
    for project_id, sharings in snapshot.items():
        if project_id in failed:
            run.fail_project(project_id, "HTTP 503")
            continue
        run.add_rows(
            sharing_row(
                project_id,
                sharing_id,
                f"b-{sharing_id}",
                project_id,
                f"{hash(sharing_id) % 10_000:032x}",
                name=f"backup {sharing_id}",
                size=40,
                volume_id=f"v-{sharing_id}",
                status=status,
            )
            for sharing_id, status in sharings.items()
        )
        run.commit_project(project_id)
    run.finish()


def _diff_rows() -> list[Row]:
    rng = random.Random(23)
    projects = [f"{index:032x}" for index in range(DIFF_PROJECTS)]
    first = {
        p: {f"{p[-5:]}-{i:05d}": "available" for i in range(DIFF_PER_PROJECT)} for p in projects
    }
    second = {p: dict(s) for p, s in first.items()}
    changes = int(DIFF_PROJECTS * DIFF_PER_PROJECT * CHURN)
    for index in range(changes):
        project = rng.choice(projects)
        sharings = second[project]
        sharings[f"{project[-5:]}-new{index}"] = "available"
        sharings.pop(rng.choice(list(sharings)), None)
        sharings[rng.choice(list(sharings))] = "error"
    failed = set(rng.sample(projects, FAILED))
    with tempfile.TemporaryDirectory(dir=ROOT) as scratch:
        database = Path(scratch) / "inventory.sqlite"
        began = time.perf_counter()
        with Inventory(database, write=True) as inventory:
            _record(inventory, first, set())
            recorded_one = time.perf_counter() - began
            _record(inventory, second, failed)
        del first, second
        size = database.stat().st_size
        command = [
            sys.executable, "-c", _PEAK, sys.executable, "-m", "vbs_async", "diff",
            "--db", str(database), "--format", "jsonl",
        ]  # fmt: skip
        began = time.perf_counter()
        done = subprocess.run(  # noqa: S603
            command, cwd=ROOT, capture_output=True, text=True, check=True
        )
        seconds = time.perf_counter() - began
    status, peak_kib = done.stdout.split()
    if status not in {"0", "1"}:
        raise RuntimeError(f"the diff failed: {done.stderr}")
    peak = int(peak_kib) / 1024
    total = DIFF_PROJECTS * DIFF_PER_PROJECT
    return [
        Row(
            f"inventory: diff of two {total / 1e6:.0f}M-sharing runs, peak RSS",
            f"{peak:.0f} MiB, {seconds:.1f} s ({done.stderr.strip().splitlines()[0]})",
            f"recording one run {recorded_one:.1f} s ({total / recorded_one:,.0f} rows/s); "
            f"database {size / 2**20:.0f} MiB",
            peak / 200,
            "<= 200 MB",
            peak * 2**20 <= 200e6,
        )
    ]


async def run(runs: int) -> list[Row]:
    """Both measurements, in child processes."""
    return await asyncio.to_thread(lambda: _overhead_rows(runs) + _diff_rows())


if __name__ == "__main__":
    from ._harness import markdown

    sys.stdout.write(markdown(asyncio.run(run(3))) + "\n")
