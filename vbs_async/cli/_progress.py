"""What an operator sees on stderr: a live progress bar (or plain lines) and a summary."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Self

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ._text import printable

if TYPE_CHECKING:
    from vbs_async import ProjectDone

MAX_FAILURE_LINES = 20


@attrs.define
class Tally:
    """Running totals of a crawl.

    Attributes:
        total: Projects to crawl, if known.
        skipped: Projects already finished in an earlier run (resume).
        ok: Projects listed completely.
        failed: Projects that failed, with their error's text.
        sharings: Sharings written.
        listed: Sharings listed so far, those of projects still being listed
            (and of failed ones) included: what the progress shows.
        requests: HTTP requests sent for the projects finished.
        retries: Retries among them.
        throttled: Throttling answers (429) among them (waited out, or their
            projects failed: a quota that reopens past the deadline).
        shifts: Listing shifts detected and re-aligned.
        duplicates: Duplicate items dropped.
        started: `time.monotonic()` at the start.
        listings: The listings' requests, retries and throttled answers so far,
            counted live, what the progress, the summary and the report show
            (the per-project figures arrive only when a project ends, and a
            crawl stopped midway, Ctrl-C, read "requests: 0" after 80); the
            finished projects' sums without it.
        quotas: The quotas gateways announced, and what came of each (`50 per 1 s,
            announced`), asked at the end.
    """

    total: int | None = None
    skipped: int = 0
    ok: int = 0
    failed: list[tuple[str, str]] = attrs.field(factory=list)
    sharings: int = 0
    listed: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    shifts: int = 0
    duplicates: int = 0
    started: float = attrs.field(factory=time.monotonic)
    listings: Callable[[], tuple[int, int, int]] | None = None
    quotas: Callable[[], list[str]] | None = None  # the gateway's, as announced

    def record(self, result: ProjectDone) -> None:
        """Add one project's result."""
        if result.ok:
            self.ok += 1
            self.sharings += result.sharings
        else:
            self.failed.append((result.project_id, str(result.error)))
        stats = result.stats
        self.requests += stats.requests
        self.retries += stats.retries
        self.throttled += stats.throttled
        self.shifts += stats.shifts_detected
        self.duplicates += stats.duplicates_dropped

    @property
    def done(self) -> int:
        """Projects finished in this run, failed ones included."""
        return self.ok + len(self.failed)

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.started

    def sent(self) -> tuple[int, int, int]:
        """(requests, retries, throttled answers) of the listings so far, stopped ones included."""
        if self.listings is not None:
            return self.listings()
        return self.requests, self.retries, self.throttled

    def rate(self) -> float:
        """Requests per second so far."""
        return self.sent()[0] / self.elapsed if self.elapsed > 0 else 0.0

    def rows_per_second(self) -> float:
        """Rows written per second so far."""
        return self.sharings / self.elapsed if self.elapsed > 0 else 0.0

    def eta(self) -> str:
        """The time left at the pace so far, `1h02m` / `5m07s` / `12s`, or `?`."""
        if self.total is None or self.done == 0:
            return "?"
        left = round((self.total - self.done) * self.elapsed / self.done)
        hours, rest = divmod(left, 3600)
        minutes, seconds = divmod(rest, 60)
        if hours:
            return f"{hours}h{minutes:02d}m"
        return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"

    def line(self) -> str:
        """One line of progress, at most 80 columns for up to a million projects."""
        total = "?" if self.total is None else f"{self.total:,}"
        _, _, refused = self.sent()
        throttled = f" {refused:,} throttled," if refused else ""
        return (
            f"{self.done:,}/{total} projects, {self.listed:,} sharings, "
            f"{len(self.failed):,} failed,{throttled} {rate_text(self.rate())} req/s, "
            f"ETA {self.eta()}"
        )

    def summary(self, destination: str) -> tuple[list[str], list[str]]:
        """The closing report: (totals and where the rows went, the failed projects)."""
        skipped = f", {self.skipped:,} already done" if self.skipped else ""
        requests, retries, throttled = self.sent()
        lines = [
            f"projects: {self.ok:,} ok, {len(self.failed):,} failed{skipped}",
            f"sharings: {self.sharings:,} written to {destination}",
            f"requests: {requests:,} ({retries:,} retries, {throttled:,} answered 429)",
            f"shifts re-aligned: {self.shifts:,}, duplicates dropped: {self.duplicates:,}",
            (
                f"elapsed: {self.elapsed:.2f}s ({rate_text(self.rows_per_second())} rows/s, "
                f"{rate_text(self.rate())} requests/s)"
            ),
            *(f"gateway quota: {quota}" for quota in (self.quotas or list)()),
        ]
        shown = self.failed[:MAX_FAILURE_LINES]
        failures = [
            f"failed {printable(project_id)}: {printable(error)}" for project_id, error in shown
        ]
        if len(self.failed) > len(shown):
            failures.append(
                f"... and {len(self.failed) - len(shown):,} more failed projects "
                "(--report FILE lists them all)"
            )
        return lines, failures


class Display:
    """Progress on stderr: a rich bar on a terminal, a plain line every `interval` otherwise.

    The bar is drawn only on a terminal that can draw it: not with
    `TERM=dumb`, and not when the rows go to the same terminal (stdout),
    where it would share lines with them; plain lines are printed instead.
    """

    def __init__(
        self,
        stream: IO[str],
        tally: Tally,
        *,
        interval: float = 5.0,
        quiet: bool = False,
        rows_to_terminal: bool = False,
    ) -> None:
        self._quiet = quiet
        self._stream = stream
        self._tally = tally
        self._interval = interval
        self._last_line = time.monotonic()
        self._console = Console(file=stream, highlight=False, soft_wrap=True)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        drawable = self._console.is_terminal and not self._console.is_dumb_terminal
        if drawable and not quiet and not rows_to_terminal:
            self._bar = Progress(
                TextColumn("crawling"),
                BarColumn(bar_width=10),
                MofNCompleteColumn(),
                TextColumn(
                    "{task.fields[sharings]:,} sharings {task.fields[failed]} failed "
                    "{task.fields[rate]:.0f} req/s"
                ),
                TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"),
                console=self._console,
                transient=True,
            )

    def __enter__(self) -> Self:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(
                "crawl", total=self._tally.total, sharings=0, failed=0, rate=0.0, eta="?"
            )
        return self

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
                self._bar.stop()

    def update(self) -> None:
        """Show the tally's latest figures."""
        tally = self._tally
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                completed=tally.done,
                sharings=tally.listed,
                failed=len(tally.failed),
                rate=tally.rate(),
                eta=tally.eta(),
            )
            return
        now = time.monotonic()
        if not self._quiet and now - self._last_line >= self._interval:
            self._last_line = now
            self._stream.write(f"progress: {tally.line()}\n")
            self._stream.flush()

    def summary(self, destination: str) -> None:
        """Print the closing report (with --quiet: only the failed projects)."""
        totals, failures = self._tally.summary(destination)
        for line in failures if self._quiet else totals + failures:
            self._console.print(line, markup=False)


def rate_text(rate: float) -> str:
    """A rate in words: a tenth under 10 a second (93 requests in 206 s read "0 requests/s")."""
    return f"{rate:,.1f}" if round(rate, 1) < 10 else f"{rate:,.0f}"  # noqa: PLR2004 - a tenth shows
