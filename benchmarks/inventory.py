"""The inventory at scale: what `--db` costs a crawl, and a diff of two 1,000,000-sharing runs.

- Crawl overhead: `vbs-async crawl --emulator` of PROJECTS x PER_PROJECT
  sharings into a JSONL file, with and without `--db` (each run a fresh
  database), best of `runs`. Target: `--db` at most 1.10 x the crawl alone.
- Diff: two runs of 10,000 projects x 100 sharings recorded through
  `vbs_async.inventory` (1 % of the sharings added, 1 % removed, 1 % changed
  status between them, 20 projects failing in the second), then `vbs-async
  diff --db` in a child process: its time and peak RSS. Target: <= 200 MB.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vbs_async.inventory import Inventory
from vbs_async.inventory._store import sharing_row

from ._harness import ROOT, Row

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


def _crawl_seconds(folder: Path, *, with_db: bool, attempt: int) -> float:
    output = folder / f"out-{with_db}-{attempt}.jsonl"
    database = folder / f"inventory-{attempt}.sqlite"
    command = [
        sys.executable, "-m", "vbs_async", "crawl", "--emulator",
        "--emulator-projects", str(PROJECTS), "--emulator-sharings", str(PER_PROJECT),
        "--output", str(output), "--quiet",
        *(["--db", str(database)] if with_db else []),
    ]  # fmt: skip
    began = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)  # noqa: S603
    elapsed = time.perf_counter() - began
    output.unlink()
    return elapsed


def _overhead_rows(runs: int) -> list[Row]:
    with tempfile.TemporaryDirectory(dir=ROOT) as scratch:
        folder = Path(scratch)
        alone: list[float] = []
        recorded: list[float] = []
        for attempt in range(runs):  # interleaved: the machine's mood hits both alike
            alone.append(_crawl_seconds(folder, with_db=False, attempt=attempt))
            recorded.append(_crawl_seconds(folder, with_db=True, attempt=attempt))
    sharings = PROJECTS * PER_PROJECT
    ratio = min(recorded) / min(alone)
    return [
        Row(
            f"inventory: crawl --emulator {PROJECTS:,}x{PER_PROJECT} with --db",
            f"{min(recorded):.1f} s ({sharings / min(recorded):,.0f} rows/s)",
            f"without --db {min(alone):.1f} s ({sharings / min(alone):,.0f} rows/s)",
            ratio,
            "<= 1.10",
            ratio <= 1.10,
        )
    ]


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
