"""Running one crawl for the command line: rows out as projects finish, progress, resume, stop.

`run_crawl` owns the order of things that makes a crawl safe to interrupt:
a project's rows are kept apart while it is listed (`_output.ProjectRows`),
written to the output in one piece and flushed when it ends well, and only
then recorded as finished in the state file (`_state`). Pages are written
as they arrive, so memory holds the pages in flight, not whole projects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shlex
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from vbs_async._models import Project, ProjectDone, SharingPage

from ._failures import CrawlStoppedError, FailurePolicy
from ._files import PathError, Target, check_distinct, classify
from ._inventory import CrawlRecorder, InventorySpec
from ._output import Output, ProjectRows, check_finished_output, open_output
from ._progress import Display, Tally
from ._projects import ProjectUnavailableError
from ._report import Report
from ._rows import csv_header, csv_rows, jsonl
from ._signals import StopSignals
from ._state import State, StateError, digest_ids, finished_at
from ._text import printable

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable

    from vbs_async import VBSClient

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_STOPPED = 2
"""The crawl stopped early (credentials refused, endpoint gone, --max-failures)."""
UNREACHABLE_WINDOW = 10
"""Projects in a row failing without an answer that mean the endpoint is gone."""


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
        quiet: Errors only on stderr.
        report: Where to write the JSON report, if anywhere.
        max_failures: Stop after this many failed projects.
        command: The command line as run, for the resume hint.
        endpoint: The endpoint as messages name it.
        unavailable: Projects of the job that fail without a request
            (disabled, unknown names), with why.
        every_project_of: With --all-projects, the region: the job is then
            "every project of it", whatever IAM lists on each run, so that a
            resume keeps the finished projects of a list that changed.
        timeout: Seconds one request may take: with no answer at all that
            long after the first request, the endpoint is silent.
        inventory: Where to record the run (`--db`), if anywhere.
        account_projects: With --all-projects, every project IAM lists for
            the account (other regions and disabled ones too): the report
            names them, so that an audit of the files knows them as internal.
    """

    project_ids: list[str]
    output: Path | None
    output_format: str
    state: Path | None
    max_projects: int
    listing: dict[str, Any]
    progress_interval: float = 5.0
    quiet: bool = False
    report: Path | None = None
    max_failures: int | None = None
    command: tuple[str, ...] = ()
    endpoint: str = "VBS"
    unavailable: dict[str, str] = attrs.field(factory=dict)
    every_project_of: str | None = None
    timeout: float | None = None
    inventory: InventorySpec | None = None
    account_projects: tuple[Project, ...] = ()

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same job (the state refuses any other)."""
        listing = self.listing
        projects = (
            digest_ids(self.project_ids)
            if self.every_project_of is None
            else f"every project of {self.every_project_of}"
        )
        return {
            "projects": projects,
            "filters": {
                k: v
                for k, v in sorted(listing.items())
                if k not in {"sort_key", "sort_dir", "page_size", "end_check", "verify"}
            },
            "sort": [listing.get("sort_key"), listing.get("sort_dir")],
            "page_size": listing.get("page_size"),
            "checks": [listing.get("end_check"), bool(listing.get("verify"))],
            "format": self.output_format,
            "output": None if self.output is None else str(self.output.resolve()),
        }

    def rows(self, project_id: str, page: SharingPage) -> bytes:
        """A page's sharings as output rows."""
        if self.output_format == "csv":
            return csv_rows(project_id, page.items)
        return jsonl(project_id, page.items)


async def run_crawl(
    client: VBSClient, job: CrawlJob, stderr: IO[str], signals: StopSignals | None = None
) -> int:
    """Crawl, write, report; the exit status (0 ok, 1 some failed, 2 stopped, 129/130/143 signals).

    `signals`: the command's own signal handling, if it installed one
    already; else the crawl installs its own while it runs.

    Raises:
        StateError: The state or output cannot be used for this job (before
            anything is written).
    """
    check_paths(job.output, job.state, job.report)
    state = State(job.state, job.identity()) if job.state is not None else None
    if state is not None:
        state.acquire()
    recorder = None
    try:
        if job.inventory is not None:
            recorder = CrawlRecorder.open(
                job.inventory,
                project_ids=job.project_ids,
                job=job.identity(),
                listing=job.listing,
                state=state,
                others=[job.output, job.state, job.report],
            )
        try:
            return await _run(client, job, state, stderr, recorder, signals)
        except (StateError, PathError):
            # Refused before the first request (the output or state cannot
            # be used): the run it opened is no run.
            if recorder is not None:
                recorder.discard()
            raise
    finally:
        if recorder is not None:
            recorder.close()
        if state is not None:
            state.release()


def check_paths(
    output: Path | None,
    state: Path | None,
    report: Path | None,
    projects_file: Target | None = None,
) -> None:
    """Check a job's files before anything runs: each writable, no two the same file.

    Raises:
        PathError: A path cannot be written, or two are one file.
        StateError: The state is the output.
    """
    output_target = classify(output, "--output")
    # The file read first: an output that is it is named as the one at fault.
    targets = [] if projects_file is None else [projects_file]
    targets.append(output_target)
    if state is not None:
        if output_target.kind == "stdout":
            raise PathError("--resume needs --output FILE: stdout cannot be resumed")
        if output_target.kind == "special":
            raise PathError(
                f"--resume needs --output to be a regular file; {output} is not one "
                "(a device or a FIFO cannot be cut back to what finished projects wrote)"
            )
        state_target = classify(state, "--resume")
        if state_target.kind == "special":
            raise PathError(f"--resume {state} is not a regular file")
        if state_target.real == output_target.real or (
            state_target.identity is not None and state_target.identity == output_target.identity
        ):
            raise StateError(
                f"--resume {state} is the output file: give the state a file of its own"
            )
        targets.append(state_target)
    if report is not None:
        targets.append(classify(report, "--report"))
    check_distinct(targets)


def _listings_since(client: VBSClient) -> Callable[[], tuple[int, int, int]]:
    """The listings' (requests, retries, 429s) since now, read live (a client may crawl again)."""
    before = client.listings

    def since() -> tuple[int, int, int]:
        now = client.listings
        return (
            now.requests - before.requests,
            now.retries - before.retries,
            now.throttled - before.throttled,
        )

    return since


async def _run(  # noqa: PLR0917 - a private step of run_crawl
    client: VBSClient,
    job: CrawlJob,
    state: State | None,
    stderr: IO[str],
    recorder: CrawlRecorder | None = None,
    signals: StopSignals | None = None,
) -> int:
    finished = set(state.finished) if state is not None else set()
    pending = [p for p in job.project_ids if p not in finished]
    report = Report(job.project_ids, finished)
    _tell_gone(job, finished, report, stderr)
    tally = Tally(
        total=len(pending),
        skipped=len(job.project_ids) - len(pending),
        listings=_listings_since(client),
        quotas=lambda: [
            *(f"{quota}, announced" for _, quota in client.limiter.quotas),
            *(
                f"{quota}, announced, not believed (learned from 429s)"
                for _, quota in client.limiter.doubted
            ),
        ],
    )
    if state is not None and not state.is_new and not pending:
        check_finished_output(job.output, state)
        stderr.write(
            f"nothing to do: all {len(job.project_ids):,} projects finished at "
            f"{finished_at(state)}; remove {state.path} to crawl again\n"
        )
        _write_report(job, report, tally, EXIT_OK, None)
        if recorder is not None:
            recorder.finish()
        return EXIT_OK
    policy = FailurePolicy(
        client.auth,
        job.endpoint,
        max_failures=job.max_failures,
        unreachable_window=UNREACHABLE_WINDOW,
    )
    stopped_by = signals if signals is not None else StopSignals()
    stopped: str | None = None
    with open_output(job.output, state) as output:
        if state is not None:
            state.start(output.stream)
        display = Display(
            stderr,
            tally,
            interval=job.progress_interval,
            quiet=job.quiet,
            rows_to_terminal=_is_terminal(output.stream),
        )
        with display, contextlib.nullcontext() if signals is not None else stopped_by:
            try:
                if job.output_format == "csv" and (job.output is None or output.stream.tell() == 0):
                    output.stream.write(csv_header())
                async with _ticking(display, job.progress_interval):
                    await _drain(
                        client=client,
                        pending=pending,
                        job=job,
                        output=output,
                        state=state,
                        tally=tally,
                        report=report,
                        policy=policy,
                        display=display,
                        recorder=recorder,
                    )
            except CrawlStoppedError as exc:
                if tally.ok == 0 and exc.setup:
                    # Nothing crawled yet: a setup problem (wrong credentials or
                    # endpoint), told in one line; the output is left alone.
                    # (`--max-failures` is the operator's limit: it read as one,
                    # with no summary of what the failures cost.)
                    _write_report(job, report, tally, EXIT_STOPPED, str(exc))
                    raise
                stopped = str(exc)
            except asyncio.CancelledError:
                if stopped_by.signal is None:
                    raise
        output.finish(any_succeeded=tally.ok > 0)
    if recorder is not None and stopped_by.signal is None and stopped is None:
        recorder.finish()  # else the run stays open, to be resumed
    status = _status(tally, stopped_by, stopped)
    # A signal is a stop's reason too (the report said null for SIGINT, SIGTERM, SIGHUP).
    why = f"interrupted: {stopped_by.name}" if stopped_by.signal is not None else stopped
    _write_report(job, report, tally, status, why)
    # Last, as stderr may be gone (SIGHUP: the terminal closed); the files are done.
    with contextlib.suppress(OSError):
        display.summary(_destination(job, output))
        _conclude(job, tally, stopped_by, stopped, stderr)
    return status


_GONE_SHOWN = 5


def _tell_gone(job: CrawlJob, finished: set[str], report: Report, stderr: IO[str]) -> None:
    """Projects finished by an earlier run of an --all-projects job that IAM no longer lists."""
    listed = set(job.project_ids)
    gone = sorted(p for p in finished if p not in listed)
    if not gone:
        return
    report.gone(gone)  # their rows stay in the output
    if not job.quiet:
        more = len(gone) - _GONE_SHOWN
        shown = ", ".join(gone[:_GONE_SHOWN]) + (f" and {more:,} more" if more > 0 else "")
        stderr.write(
            f"note: {len(gone):,} projects finished earlier are no longer listed by IAM; "
            f"their rows stay in the output: {shown}\n"
        )


def _is_terminal(stream: IO[bytes]) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


def _status(tally: Tally, signals: StopSignals, stopped: str | None) -> int:
    if signals.signal is not None:
        return signals.status
    if stopped is not None:
        return EXIT_STOPPED
    return EXIT_FAILED if tally.failed else EXIT_OK


def _conclude(
    job: CrawlJob, tally: Tally, signals: StopSignals, stopped: str | None, stderr: IO[str]
) -> None:
    """After an interruption or an early stop: what was done, what was not, how to go on."""
    status = _status(tally, signals, stopped)
    if signals.signal is not None:
        left = (tally.total or 0) - tally.done
        stderr.write(
            f"interrupted: {signals.name} after {tally.done:,} projects finished in this run "
            f"({tally.ok:,} written, {len(tally.failed):,} failed); {left:,} not finished, "
            "their rows dropped (nothing was changed in the cloud)\n"
        )
    elif stopped is not None:
        stderr.write(f"stopped: {printable(stopped)}\n")
    if status not in {EXIT_OK, EXIT_FAILED} or (status == EXIT_FAILED and job.state is not None):
        stderr.write(_resume_hint(job) + "\n")
    stderr.flush()


async def _drain(**parts: Any) -> None:
    """Drain the crawl, stopping it if the endpoint stays silent after its first request."""
    drain = asyncio.create_task(_drain_events(**parts))
    watchdog = asyncio.create_task(_silence(parts["client"], parts["tally"], parts["job"]))
    try:
        await asyncio.wait({drain, watchdog}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watchdog.cancel()
        if not drain.done():
            drain.cancel()
        await asyncio.wait({drain, watchdog})
        # Retrieved on every path: a stop (SIGTERM) whose last --db commit
        # failed says that failure in one line, not a "never retrieved" trace.
        failure = None if drain.cancelled() else drain.exception()
        if failure is not None:
            raise failure
    if not watchdog.cancelled() and watchdog.exception() is None:
        raise CrawlStoppedError(watchdog.result())


async def _silence(client: VBSClient, tally: Tally, job: CrawlJob) -> str:
    """Return (why) once the endpoint answered nothing `timeout` after the first request.

    A request ends within the timeout: if by then (and a little more) not a
    page, not a project's end, not a throttling answer, not any answer at
    all came back, the endpoint accepts connections and never answers. That
    is a setup problem (a wrong --endpoint, a proxy swallowing requests),
    told at once instead of after every project's retries and deadline.
    """
    if job.timeout is None:
        await asyncio.Event().wait()  # never: no timeout to judge by
    timeout = float(job.timeout or 0)
    started_before = client.limiter.started
    throttled_before = client.limiter.adaptive.throttled_answers
    grace = max(0.2, min(timeout, 5.0))
    first: float | None = None
    while True:
        await asyncio.sleep(min(0.25, timeout / 4))
        if tally.listed or tally.requests:
            await asyncio.Event().wait()  # it answers: nothing more to watch
        if first is None:
            if client.limiter.started > started_before:
                first = time.monotonic()
            continue
        adaptive = client.limiter.adaptive
        if (
            time.monotonic() - first >= timeout + grace
            and adaptive.throttled_answers == throttled_before
            and adaptive.measured_rate() == 0
        ):
            return (
                f"the endpoint {job.endpoint} accepts connections but sent no answer within "
                f"--timeout {timeout:g}s: check --endpoint (VBS_ENDPOINT) and the network "
                "(proxy), or raise --timeout for a slow one"
            )


async def _events(
    client: VBSClient, pending: list[str], job: CrawlJob
) -> AsyncGenerator[SharingPage | ProjectDone]:
    """The crawl's events; first the end of each project that fails without a request."""
    for project_id in pending:
        reason = job.unavailable.get(project_id)
        if reason is not None:
            yield ProjectDone(
                project_id, error=ProjectUnavailableError(reason, project_id=project_id)
            )
    crawled = [p for p in pending if p not in job.unavailable]
    events = client.crawl_pages(crawled, max_projects=job.max_projects, **job.listing)
    async with contextlib.aclosing(events):
        async for event in events:
            yield event


async def _drain_events(
    *,
    client: VBSClient,
    pending: list[str],
    job: CrawlJob,
    output: Output,
    state: State | None,
    tally: Tally,
    report: Report,
    policy: FailurePolicy,
    display: Display,
    recorder: CrawlRecorder | None = None,
) -> None:
    """Keep each project's pages apart; write them in one piece when it ends well."""
    open_projects: dict[str, ProjectRows] = {}
    events = _events(client, pending, job)
    try:
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, SharingPage):
                    rows = open_projects.get(event.project_id)
                    if rows is None:
                        rows = open_projects[event.project_id] = ProjectRows(output.spool_directory)
                    rows.write(job.rows(event.project_id, event))
                    if recorder is not None:
                        recorder.page(event)
                    tally.listed += len(event.items)
                    display.update()  # a big project shows its progress too
                    continue
                _finish(
                    event,
                    open_projects.pop(event.project_id, None),
                    output,
                    state,
                    recorder,
                    counted=functools.partial(_count, event, tally, report),
                )
                display.update()
                if event.ok:
                    policy.succeeded()
                else:
                    assert event.error is not None  # noqa: S101 - not ok means an error
                    policy.failed(event.error)
    finally:
        try:
            if recorder is not None:
                recorder.flush()  # the projects that finished are kept, whatever ends the crawl
        finally:  # a write that failed (surfacing here) leaves no project's rows open
            for project_id, rows in open_projects.items():
                rows.close()
                if recorder is not None:
                    recorder.drop(project_id)


def _count(done: ProjectDone, tally: Tally, report: Report) -> None:
    tally.record(done)
    report.record(done)


def _finish(  # noqa: PLR0917 - a private step of the drain
    done: ProjectDone,
    rows: ProjectRows | None,
    output: Output,
    state: State | None,
    recorder: CrawlRecorder | None = None,
    counted: Callable[[], None] | None = None,
) -> None:
    """Write a project that ended well and record it; drop a failed one's rows.

    With `--db`, the project is committed to the database first (in a batch),
    and written (and `counted`, for the summary and report) when its commit
    is done: one whose commit did not happen is not counted as finished.
    """

    def then(committed: bool) -> None:
        _write(done, rows, output, state, committed=committed)
        if committed and counted is not None:
            counted()

    if recorder is not None:
        recorder.done(done, then)
        return
    then(True)  # noqa: FBT003 - no database: written at once


def _write(
    done: ProjectDone,
    rows: ProjectRows | None,
    output: Output,
    state: State | None,
    *,
    committed: bool,
) -> None:
    try:
        if done.ok and committed:
            if rows is not None:
                output.append(rows)
            if state is not None:
                state.commit(done.project_id, output.stream, done.sharings)
    finally:
        if rows is not None:
            rows.close()


def _destination(job: CrawlJob, output: Output) -> str:
    if job.output is None:
        return "stdout"
    if output.kept_old:
        return f"nowhere: {job.output} was kept as it was, as no project succeeded"
    return str(job.output)


def _resume_hint(job: CrawlJob) -> str:
    if job.state is None:
        return "to be able to resume a crawl, run it with --output FILE --resume STATE"
    return f"resume with: {shlex.join(job.command)}"


def _write_report(
    job: CrawlJob, report: Report, tally: Tally, status: int, stopped: str | None
) -> None:
    if job.report is None:
        return
    described = job.identity() | {
        "project_count": len(job.project_ids),
        "state": None if job.state is None else str(job.state),
        "listing": {k: v for k, v in job.listing.items() if v is not None},
    }
    if job.account_projects:
        described["account_projects"] = [
            {"id": p.id, "name": p.name, "region": p.region, "enabled": p.enabled}
            for p in job.account_projects
        ]
    report.write(job.report, job=described, tally=tally, exit_status=status, stopped=stopped)


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
