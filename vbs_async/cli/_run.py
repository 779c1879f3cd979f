"""Running one crawl for the command line: rows out as projects finish, progress, resume, stop.

`run_crawl` owns the order of things that makes a crawl safe to interrupt:
a project's rows are written in one piece and flushed, and only then is the
project recorded as finished in the state file.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

import attrs

from vbs_async._errors import TransportError

from ._journal import Journal
from ._progress import Display, Tally
from ._rows import csv_header, csv_rows, jsonl

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Iterator

    from vbs_async import ProjectSharings, VBSClient

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UnreachableError(Exception):
    """The endpoint does not answer at all: the crawl stops, it is a setup problem."""


@attrs.frozen
class CrawlJob:
    """What to crawl and where the rows go.

    Attributes:
        project_ids: The projects, in order, without repeats.
        output: The output file; None for stdout.
        output_format: `jsonl` or `csv`.
        state: The resume state file, if any.
        max_projects: Projects listed at once.
        listing: `crawl()` keywords (filters, sort, paging).
        progress_interval: Seconds between plain progress lines.
    """

    project_ids: list[str]
    output: Path | None
    output_format: str
    state: Path | None
    max_projects: int
    listing: dict[str, Any]
    progress_interval: float = 5.0


@contextlib.contextmanager
def _output(job: CrawlJob, journal: Journal | None) -> Iterator[IO[bytes]]:
    """The output stream, cut back to what finished projects wrote when resuming."""
    if job.output is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = job.output
    if journal is not None and path.exists():
        size = path.stat().st_size
        if size < journal.committed_size:
            raise OSError(
                f"{path} is shorter ({size} bytes) than {journal.path} records "
                f"({journal.committed_size}); they do not belong together"
            )
        with path.open("r+b") as stream:
            stream.truncate(journal.committed_size)
    elif journal is not None and journal.committed_size:
        raise OSError(f"{path} is missing but {journal.path} records finished projects")
    mode = "ab" if journal is not None else "wb"
    with path.open(mode) as stream:
        yield stream


def _rows(job: CrawlJob, result: ProjectSharings) -> bytes:
    if job.output_format == "csv":
        return csv_rows(result.project_id, result.sharings)
    return jsonl(result.project_id, result.sharings)


async def run_crawl(client: VBSClient, job: CrawlJob, stderr: IO[str]) -> int:
    """Crawl, write, report; the exit status (0 all ok, 1 some failed, 130/143 interrupted)."""
    journal = Journal(job.state) if job.state is not None else None
    pending = job.project_ids
    if journal is not None:
        pending = [p for p in job.project_ids if p not in journal.finished]
    tally = Tally(total=len(pending), skipped=len(job.project_ids) - len(pending))
    stopped_by = _StopSignals()
    display = Display(stderr, tally, interval=job.progress_interval)
    with _output(job, journal) as out, display, stopped_by:
        if journal is not None:
            journal.open()
        try:
            if job.output_format == "csv" and (job.output is None or out.tell() == 0):
                out.write(csv_header())
            results = client.crawl(pending, max_projects=job.max_projects, **job.listing)
            async with _ticking(display, job.progress_interval):
                await _drain(
                    results, job=job, out=out, journal=journal, tally=tally, display=display
                )
        except asyncio.CancelledError:
            if stopped_by.signal is None:
                raise
        finally:
            if journal is not None:
                journal.close()
    display.summary()
    if stopped_by.signal is not None:
        stderr.write(f"interrupted: {tally.done} projects finished in this run\n")
        return 128 + stopped_by.signal
    return EXIT_FAILED if tally.failed else EXIT_OK


async def _drain(
    results: AsyncGenerator[ProjectSharings, None],
    *,
    job: CrawlJob,
    out: IO[bytes],
    journal: Journal | None,
    tally: Tally,
    display: Display,
) -> None:
    """Write each finished project's rows in one piece, then record it as finished."""
    async with contextlib.aclosing(results):
        async for result in results:
            tally.record(result)
            if result.ok:
                out.write(_rows(job, result))
                out.flush()
                if journal is not None:
                    journal.commit(result.project_id, out.tell(), len(result.sharings))
            elif _unreachable(result) and tally.ok == 0:
                raise UnreachableError(str(result.error))
            display.update()


@contextlib.asynccontextmanager
async def _ticking(display: Display, interval: float) -> AsyncIterator[None]:
    """Refresh the display every `interval` even while no project finishes (a slow one)."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(max(interval, 0.5))
            display.update()

    ticker = asyncio.create_task(tick())
    try:
        yield
    finally:
        ticker.cancel()
        await asyncio.wait([ticker])


def _unreachable(result: ProjectSharings) -> bool:
    error = result.error
    return isinstance(error, TransportError) and not error.request_sent


class _StopSignals:
    """Ctrl-C and SIGTERM cancel the crawl so that it can stop cleanly with a summary."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._installed: list[int] = []

    def __enter__(self) -> Self:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - called from a coroutine

        def stop(signum: int) -> None:
            if self.signal is None:
                self.signal = signum
                task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or not a Unix loop
            self._installed.append(signum)
        return self

    def __exit__(self, *_: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._installed:
            loop.remove_signal_handler(signum)
        if self.signal is not None:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
