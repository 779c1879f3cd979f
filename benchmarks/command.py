"""The vbs-async command at scale: RSS on a 1,000,000-sharing project; 10,000 emulator projects.

- Memory: `vbs-async crawl` of one project of 1,000,000 sharings (the page
  server, in a child process of its own) into a JSONL file, its peak RSS
  beside the same command on a 10,000-sharing project: streaming keeps the
  two alike. Target: at most 150 MB.
- Emulator: `vbs-async crawl --emulator --emulator-projects 10000` (server
  and client in one process), beside 1,000 projects: the time grows
  linearly. Target of the issue: under 10 s.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._harness import ROOT, TOKEN, Row, page_server
from .page_server import project_id

BIG, SMALL, PAGE_SIZE = 1_000_000, 10_000, 1000

# Runs the command in a child and prints its peak RSS (kB): a fresh process per
# measurement, so that no earlier child's peak is counted.
_PEAK = (
    "import resource, subprocess, sys; "
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); "
    "sys.stderr.write(done.stderr.decode()[-2000:] if done.returncode else ''); "
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def _crawl_peak_mib(url: str, output: Path) -> float:
    command = [
        sys.executable, "-c", _PEAK, sys.executable, "-m", "vbs_async", "crawl",
        "--endpoint", url, "--page-size", str(PAGE_SIZE), "--output", str(output), "--quiet",
        project_id(0),
    ]  # fmt: skip
    environment = {**os.environ, "OS_AUTH_TOKEN": TOKEN}
    done = subprocess.run(  # noqa: S603
        command, cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )
    status, peak_kib = done.stdout.split()
    if status != "0":
        raise RuntimeError(f"the crawl failed: {done.stderr}")
    return int(peak_kib) / 1024


def _rows(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))


def _emulator_seconds(projects: int) -> float:
    command = [
        sys.executable, "-m", "vbs_async", "crawl", "--emulator",
        "--emulator-projects", str(projects), "--output", os.devnull, "--quiet",
    ]  # fmt: skip
    began = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)  # noqa: S603
    return time.perf_counter() - began


def _memory_rows() -> list[Row]:
    with tempfile.TemporaryDirectory(dir=ROOT) as scratch:
        output = Path(scratch) / "rows.jsonl"
        with page_server(1, SMALL) as url:
            small = _crawl_peak_mib(url, output)
            assert _rows(output) == SMALL
        with page_server(1, BIG) as url:
            big = _crawl_peak_mib(url, output)
            assert _rows(output) == BIG
    return [
        Row(
            "command: 1M-sharing project, peak RSS",
            f"{big:.0f} MiB",
            f"10k-sharing project {small:.0f} MiB",
            big / small,
            "<= 150 MiB",
            big <= 150,
        )
    ]


def _emulator_rows() -> list[Row]:
    small, big = _emulator_seconds(1000), _emulator_seconds(10_000)
    return [
        Row(
            "command: crawl --emulator --emulator-projects 10000",
            f"{big:.1f} s",
            f"1000 projects {small:.1f} s (x10 = {10 * small:.1f} s)",
            big / (10 * small),
            "< 10 s; linear (ratio <= 1.2)",
            big < 10,
        )
    ]


async def run(runs: int) -> list[Row]:
    """Both measurements, in child processes."""
    del runs  # one run each: they take a while
    return await asyncio.to_thread(lambda: _memory_rows() + _emulator_rows())
