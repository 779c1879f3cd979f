"""What every benchmark shares: a server in a child process, timing, and result rows."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"  # noqa: S105 - the page server accepts any token


@contextlib.contextmanager
def page_server(
    projects: int, per_project: int, latency: float = 0.0, *, populated: bool = False
) -> Iterator[str]:
    """Run `benchmarks.page_server` in a child process; yield its URL."""
    command = [
        sys.executable, "-m", "benchmarks.page_server",
        "--projects", str(projects), "--per-project", str(per_project), "--latency", str(latency),
        *(["--populated"] if populated else []),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the page server did not start: {line!r}")
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait()


async def timed(job: Callable[[], Awaitable[object]]) -> tuple[float, object]:
    """Seconds `job()` took, and what it returned."""
    started = time.perf_counter()
    value = await job()
    return time.perf_counter() - started, value


async def best_of(runs: int, job: Callable[[], Awaitable[object]]) -> tuple[float, object]:
    """The fastest of `runs` runs (seconds, value): the least disturbed by the machine."""
    best: tuple[float, object] | None = None
    for _ in range(runs):
        result = await timed(job)
        if best is None or result[0] < best[0]:
            best = result
    assert best is not None
    return best


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    benchmark: str
    measured: str
    baseline: str
    ratio: float
    target: str
    met: bool

    def cells(self) -> list[str]:
        """The row as table cells."""
        verdict = "yes" if self.met else "NO"
        return [
            self.benchmark,
            self.measured,
            self.baseline,
            f"{self.ratio:.2f}",
            self.target,
            verdict,
        ]


HEADER = ["benchmark", "vbs_async", "baseline", "ratio", "target", "met"]


def markdown(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)
