"""What a crawl says: at its end (interrupted, stopped, failed, how to go on), in its report, of a silent endpoint."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from vbs_async import BackupSharing, ListingStats, ServerError, SharingPage
from vbs_async._models import Project, ProjectDone
from vbs_async.cli import _output, _run
from vbs_async.cli._failures import CrawlStoppedError
from vbs_async.cli._files import PathError
from vbs_async.cli._output import ProjectRows
from vbs_async.cli._progress import Tally
from vbs_async.cli._report import Report
from vbs_async.cli._run import (
    CrawlJob,
    _conclude,
    _destination,
    _drain,
    _drain_events,
    _events,
    _finish,
    _is_terminal,
    _silence,
    _tell_gone,
    _ticking,
    _write_report,
    check_paths,
    run_crawl,
)
from vbs_async.cli._signals import StopSignals
from vbs_async.cli._state import StateError

from .test_cli import invoke

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

COMMAND = ["vbs-async", "crawl", "-o", "out.jsonl", "--resume", "state", "p1", "p2", "p3"]


def job(state: Path | None = Path("state")) -> CrawlJob:
    return CrawlJob(
        ["p1", "p2", "p3", "p4"], Path("out.jsonl"), "jsonl", state, max_projects=2, listing={},
        command=COMMAND,
    )  # fmt: skip


def tally(ok: int, failed: int, total: int | None = 10) -> Tally:
    counts = Tally(total=total)
    for index in range(ok):
        counts.record(ProjectDone(f"ok{index}", 1, None))
    for index in range(failed):
        counts.record(ProjectDone(f"bad{index}", 0, ServerError("boom", status=500)))
    return counts


def concluded(crawl: CrawlJob, counts: Tally, signum: int | None, stopped: str | None) -> str:
    stderr = io.StringIO()
    signals = StopSignals()
    signals.signal = signum
    _conclude(crawl, counts, signals, stopped, stderr)
    return stderr.getvalue()


def test_the_progress_summary_and_rate_show_the_requests_sent_not_only_those_finished():
    # Behind a gateway refusing everything no project finishes for a while: the progress
    # showed no 429 and the summary "requests: 0" beside a rate counted elsewhere.
    counts = tally(0, 0, total=60)
    counts.listings = lambda: (80, 3, 77)
    counts.started -= 4.0
    assert " 77 throttled, 20 req/s" in counts.line()
    lines, _ = counts.summary("out.jsonl")
    assert "requests: 80 (3 retries, 77 answered 429)" in lines
    assert lines[4].endswith("(0.0 rows/s, 20 requests/s)")


def test_an_interrupted_crawl_says_what_was_done_what_was_not_and_how_to_resume():
    assert concluded(job(), tally(3, 1), signal.SIGINT, None) == (
        "interrupted: SIGINT (Ctrl-C) after 4 projects finished in this run "
        "(3 written, 1 failed); 6 not finished, their rows dropped "
        "(nothing was changed in the cloud)\n"
        f"resume with: {' '.join(COMMAND)}\n"
    )


def test_a_crawl_without_a_state_says_how_to_make_one_resumable():
    assert concluded(job(state=None), tally(1, 0), None, "the endpoint stopped answering") == (
        "stopped: the endpoint stopped answering\n"
        "to be able to resume a crawl, run it with --output FILE --resume STATE\n"
    )


def test_a_crawl_that_failed_some_projects_says_how_to_resume_only_with_a_state():
    assert concluded(job(), tally(2, 1), None, None) == f"resume with: {' '.join(COMMAND)}\n"
    assert concluded(job(state=None), tally(2, 1), None, None) == ""
    assert concluded(job(), tally(3, 0), None, None) == ""


def test_rows_written_to_stdout_are_said_to_go_to_stdout():
    crawl = CrawlJob(["p1"], None, "jsonl", None, max_projects=1, listing={})
    assert _destination(crawl, output=None) == "stdout"  # type: ignore[arg-type]


# -- what makes two runs the same job (what --resume compares) ---------------------------------


def identity(**listing: object) -> dict[str, object]:
    crawl = CrawlJob(["p1", "p2"], Path("out.jsonl"), "jsonl", None, max_projects=2,
                     listing=dict(listing))  # fmt: skip
    return crawl.identity()


def differing(before: dict[str, object], after: dict[str, object]) -> set[str]:
    return {key for key in before | after if before.get(key) != after.get(key)}


def test_a_job_is_the_projects_filters_order_paging_checks_format_and_output():
    """The keys a state file records: a state an earlier release wrote must still match."""
    assert set(identity()) == {
        "projects", "filters", "sort", "page_size", "checks", "format", "output"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("status", "available", {"filters"}),
        ("sort_key", "name", {"sort"}),
        ("sort_dir", "desc", {"sort"}),
        ("page_size", 7, {"page_size"}),
        ("end_check", "count", {"checks"}),
        ("verify", True, {"checks"}),
    ],
)
def test_each_listing_option_changes_the_job_in_one_place_only(option, value, named):
    """A resume refused for another sort order names the sort order, not the filters too."""
    base = {"sort_key": "created_at", "sort_dir": "asc", "page_size": 100, "end_check": "auto"}
    assert differing(identity(**base), identity(**{**base, option: value})) == named


def test_an_interruption_with_nothing_to_crawl_leaves_nothing_unfinished():
    assert concluded(job(), tally(0, 0, total=0), signal.SIGTERM, None).startswith(
        "interrupted: SIGTERM after 0 projects finished in this run (0 written, 0 failed); "
        "0 not finished,"
    )


# -- projects an earlier run finished that IAM no longer lists ---------------------------------


def told_gone(gone: int, *, quiet: bool = False) -> tuple[str, list[str]]:
    names = [f"gone{index}" for index in range(gone)]
    crawl = CrawlJob(["p1"], Path("out.jsonl"), "jsonl", Path("state"), max_projects=1,
                     listing={}, quiet=quiet)  # fmt: skip
    report = Report(crawl.project_ids, {"p1", *names})
    stderr = io.StringIO()
    _tell_gone(crawl, {"p1", *names}, report, stderr)
    return stderr.getvalue(), names


def test_up_to_five_projects_no_longer_listed_are_all_named():
    text, names = told_gone(5)
    assert text == (
        "note: 5 projects finished earlier are no longer listed by IAM; "
        f"their rows stay in the output: {', '.join(names)}\n"
    )


def test_past_five_projects_no_longer_listed_the_rest_are_counted():
    text, names = told_gone(6)
    assert text == (
        "note: 6 projects finished earlier are no longer listed by IAM; "
        f"their rows stay in the output: {', '.join(names[:5])} and 1 more\n"
    )


def test_quiet_does_not_tell_projects_no_longer_listed():
    assert told_gone(3, quiet=True)[0] == ""


# -- the job as --report describes it ----------------------------------------------------------


def reported_job(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    crawl = CrawlJob(["p1", "p2"], tmp_path / "out.jsonl", "jsonl", max_projects=2,
                     report=tmp_path / "report.json", **fields)  # fmt: skip
    _write_report(crawl, Report(crawl.project_ids, set()), Tally(total=2), 2, "why it stopped")
    document = json.loads((tmp_path / "report.json").read_text())
    assert (document["exit_status"], document["stopped"]) == (2, "why it stopped")
    return document["job"]


def test_the_report_describes_the_job_its_state_and_the_listing_options_given(tmp_path):
    described = reported_job(
        tmp_path, state=tmp_path / "state", listing={"page_size": 7, "status": None}
    )
    crawl = CrawlJob(["p1", "p2"], tmp_path / "out.jsonl", "jsonl", tmp_path / "state",
                     max_projects=2, listing={"page_size": 7, "status": None})  # fmt: skip
    assert described == crawl.identity() | {
        "project_count": 2,
        "state": str(tmp_path / "state"),
        "listing": {"page_size": 7},
    }


def test_the_report_of_an_all_projects_job_lists_every_project_of_the_account(tmp_path):
    projects = (Project("id1", "eu-de_a", "eu-de"), Project("id2", "eu-nl", "eu-nl", enabled=False))
    described = reported_job(tmp_path, state=None, listing={}, account_projects=projects)
    assert described["state"] is None
    assert described["account_projects"] == [
        {"id": "id1", "name": "eu-de_a", "region": "eu-de", "enabled": True},
        {"id": "id2", "name": "eu-nl", "region": "eu-nl", "enabled": False},
    ]
    assert "account_projects" not in reported_job(tmp_path, state=None, listing={})


# -- a silent endpoint (the watchdog, on a fake clock) ----------------------------------------


class WaitsForeverError(Exception):
    """The watchdog waits for ever (or past the horizon the test looks to)."""


class FakeTime:
    """`time.monotonic` and `asyncio.sleep` for `_silence`: each sleep moves the clock."""

    def __init__(self, changes: Callable[[float], None], horizon: float) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._changes = changes
        self._horizon = horizon

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.now > self._horizon:
            raise WaitsForeverError
        self._changes(self.now)
        await asyncio.sleep(0)

    def Event(self) -> Any:  # noqa: N802 - stands in for asyncio.Event
        async def wait() -> None:
            raise WaitsForeverError

        return SimpleNamespace(wait=wait)


def watched(
    monkeypatch: pytest.MonkeyPatch,
    timeout: float | None,
    *,
    first_request_at: float = 0.5,
    throttled_at: float | None = None,
    answered_at: float | None = None,
    listed_at: float | None = None,
    requests_at: float | None = None,
    horizon: float = 60.0,
) -> tuple[str | None, FakeTime]:
    """(what the watchdog said, or None if it kept waiting; its clock)."""
    adaptive = SimpleNamespace(throttled_answers=3, rate=0.0)
    adaptive.measured_rate = lambda: adaptive.rate
    client = SimpleNamespace(
        limiter=SimpleNamespace(started=10, adaptive=adaptive), listings=ListingStats()
    )
    counts = Tally(total=1)

    def changes(now: float) -> None:
        if now >= first_request_at:
            client.limiter.started = 11
        if throttled_at is not None and now >= throttled_at:
            adaptive.throttled_answers = 4
        if answered_at is not None and now >= answered_at:
            adaptive.rate = 0.5
        if listed_at is not None and now >= listed_at:
            counts.listed = 3
        if requests_at is not None and now >= requests_at:
            counts.requests = 1

    clock = FakeTime(changes, horizon)
    monkeypatch.setattr(_run, "time", clock)
    monkeypatch.setattr(_run, "asyncio", clock)
    crawl = CrawlJob(["p1"], None, "jsonl", None, max_projects=1, listing={}, timeout=timeout,
                     endpoint="https://vbs.example")  # fmt: skip
    try:
        said = asyncio.run(_silence(client, counts, crawl))  # type: ignore[arg-type]
    except WaitsForeverError:
        return None, clock
    return said, clock


def test_a_silent_endpoint_is_told_timeout_and_grace_after_the_first_request(monkeypatch):
    said, clock = watched(monkeypatch, 1.0, first_request_at=0.5)
    assert said == (
        "the endpoint https://vbs.example accepts connections but sent no answer within "
        "--timeout 1s: check --endpoint (VBS_ENDPOINT) and the network (proxy), or raise "
        "--timeout for a slow one"
    )
    # Polled every quarter of the timeout; told timeout + grace (the timeout, up to
    # 5 s) after the poll that saw the first request start: 0.5 + 1 + 1.
    assert clock.sleeps == [0.25] * 10
    assert clock.now == 2.5


def test_the_silence_is_watched_at_least_every_quarter_second_with_at_least_0_2_s_grace(
    monkeypatch,
):
    said, clock = watched(monkeypatch, 0.5, first_request_at=0.25)
    assert said is not None
    assert "--timeout 0.5s" in said
    assert set(clock.sleeps) == {0.125}
    assert clock.now == 0.25 + 0.5 + 0.5
    said, clock = watched(monkeypatch, 8.0, first_request_at=0.25)
    assert set(clock.sleeps) == {0.25}
    assert clock.now == 0.25 + 8 + 5  # the grace is at most 5 s


def test_the_watchdog_waits_for_the_first_request_however_long(monkeypatch):
    said, clock = watched(monkeypatch, 1.0, first_request_at=40.0)
    assert said is not None
    assert clock.now == 42.0


@pytest.mark.parametrize(
    "sign",
    [
        {"throttled_at": 1.0},  # a 429 is an answer: the gateway is there
        {"answered_at": 1.0},  # answers measured
        {"listed_at": 1.0},  # a page listed
        {"requests_at": 1.0},  # a project ended, its requests counted
    ],
)
def test_any_answer_before_the_deadline_keeps_the_watchdog_quiet(monkeypatch, sign):
    said, _ = watched(monkeypatch, 1.0, first_request_at=0.5, **sign)
    assert said is None


def test_without_a_timeout_there_is_no_watchdog(monkeypatch):
    said, clock = watched(monkeypatch, None)
    assert said is None
    assert clock.sleeps == []


# -- the run's own steps ----------------------------------------------------------------------


def test_an_output_that_cannot_say_whether_it_is_a_terminal_is_not_one():
    closed = io.BytesIO()
    closed.close()
    assert _is_terminal(closed) is False  # rows are then written as they are, unescaped


@pytest.mark.parametrize("committed", [True, False])
def test_a_project_is_written_and_counted_only_once_its_database_commit_happened(committed):
    """With --db the project's rows go out, and it counts as finished, only when committed."""
    happened: list[str] = []
    rows = SimpleNamespace(close=lambda: happened.append("rows closed"))
    output = SimpleNamespace(append=lambda _rows: happened.append("rows written"), stream=None)
    recorder = SimpleNamespace(done=lambda _done, then: then(committed))
    done = ProjectDone("p1", 3, None)
    _finish(done, rows, output, None, recorder, lambda: happened.append("counted"))  # type: ignore[arg-type]
    if committed:
        assert happened == ["rows written", "rows closed", "counted"]
    else:
        assert happened == ["rows closed"]


async def test_a_silent_endpoint_cancels_the_crawl_it_stops(monkeypatch):
    cancelled = asyncio.Event()

    async def crawl_for_ever(**_parts: object) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def silent(*_args: object) -> str:
        return "the endpoint sent nothing"

    monkeypatch.setattr(_run, "_drain_events", crawl_for_ever)
    monkeypatch.setattr(_run, "_silence", silent)
    async with asyncio.timeout(10):  # a hang guard only: it ends at once or never
        with pytest.raises(CrawlStoppedError) as caught:
            await _drain(client=None, tally=None, job=None)
    assert str(caught.value) == "the endpoint sent nothing"
    assert cancelled.is_set()


async def test_a_project_that_fails_without_a_request_fails_naming_itself():
    async def no_pages(*_args: object, **_options: object) -> AsyncIterator[object]:
        for event in ():
            yield event

    client = SimpleNamespace(crawl_pages=no_pages)
    crawl = CrawlJob(["p1", "p2"], None, "jsonl", None, max_projects=2, listing={},
                     unavailable={"p2": "disabled in IAM"})  # fmt: skip
    events = [event async for event in _events(client, ["p1", "p2"], crawl)]  # type: ignore[arg-type]
    assert [(e.project_id, str(e.error)) for e in events] == [
        ("p2", "disabled in IAM (project p2)")  # as the report and the failure line say it
    ]


def test_a_project_s_rows_spill_beside_the_output_file(tmp_path, monkeypatch):
    """Big projects' rows wait on the output's own disk, not in the system's temporary folder."""
    folders: list[Path | None] = []

    class Recorded(ProjectRows):
        def __init__(self, directory: Path | None) -> None:
            folders.append(directory)
            super().__init__(directory)

    monkeypatch.setattr(_run, "ProjectRows", Recorded)
    out = tmp_path / "rows" / "out.jsonl"
    out.parent.mkdir()
    result = invoke("crawl", "--emulator", "--emulator-projects", "2", "--emulator-sharings", "3",
                    "-o", str(out))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert folders == [out.parent.resolve()] * 2


async def test_a_crawl_that_breaks_drops_the_projects_still_open_from_the_database():
    """What was recorded is kept (flushed); a project whose listing never ended is dropped."""
    calls: list[tuple[str, ...]] = []

    async def pages(*_args: object, **_options: object) -> AsyncIterator[object]:
        yield SharingPage("p1", 0, 10, (BackupSharing("s1", "b", "p1", "q"),))
        raise RuntimeError("the crawl broke")

    recorder = SimpleNamespace(
        page=lambda page: calls.append(("page", page.project_id)),
        flush=lambda: calls.append(("flush",)),
        drop=lambda project_id: calls.append(("drop", project_id)),
    )
    crawl = CrawlJob(["p1"], None, "jsonl", None, max_projects=1, listing={})
    with pytest.raises(RuntimeError, match="the crawl broke"):
        await _drain_events(
            client=SimpleNamespace(crawl_pages=pages),  # type: ignore[arg-type]
            pending=["p1"],
            job=crawl,
            output=SimpleNamespace(spool_directory=None),  # type: ignore[arg-type]
            state=None,
            tally=Tally(total=1),
            report=Report(["p1"], set()),
            policy=None,  # type: ignore[arg-type]
            display=SimpleNamespace(update=lambda: None),  # type: ignore[arg-type]
            recorder=recorder,  # type: ignore[arg-type]
        )
    assert calls == [("page", "p1"), ("flush",), ("drop", "p1")]


def fake_client(events: Callable[[], AsyncIterator[object]]) -> Any:
    """What `run_crawl` reads of a client: its limiter's counters, its auth, `crawl_pages`."""
    adaptive = SimpleNamespace(throttled_answers=0, measured_rate=lambda: 0.0)
    return SimpleNamespace(
        limiter=SimpleNamespace(started=0, quotas=[], doubted=[], adaptive=adaptive),
        listings=ListingStats(),
        auth=None,
        crawl_pages=lambda *_args, **_options: events(),
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
async def test_a_signal_the_command_caught_ends_the_crawl_with_what_it_finished(tmp_path, signum):
    """The command's own signal handling (passed in) stops the run: its status and words."""
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    with StopSignals() as signals:

        async def events() -> AsyncIterator[object]:
            yield SharingPage("p1", 0, 10, (BackupSharing("s1", "b", "p1", "q"),))
            yield ProjectDone("p1", 1, None)
            signals._received(signum)  # as the loop's handler does when the signal comes
            await asyncio.Event().wait()
            yield ProjectDone("p2", 0, None)  # never

        crawl = CrawlJob(["p1", "p2"], out, "jsonl", None, max_projects=1, listing={},
                         report=report, progress_interval=3600, command=("vbs-async",))  # fmt: skip
        stderr = io.StringIO()
        status = await run_crawl(fake_client(events), crawl, stderr, signals)
        # The command's handlers stay until the command ends (its own cleanup after the run).
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    assert status == 128 + signum
    name = "SIGTERM" if signum == signal.SIGTERM else "SIGHUP"
    assert (
        f"interrupted: {name} after 1 projects finished in this run (1 written, 0 failed); "
        "1 not finished, their rows dropped (nothing was changed in the cloud)\n"
    ) in stderr.getvalue()
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["s1"]
    assert json.loads(report.read_text())["exit_status"] == 128 + signum


def test_a_finished_job_run_again_reports_nothing_to_do_and_exit_status_0(tmp_path):
    out, state, report = tmp_path / "out.jsonl", tmp_path / "state", tmp_path / "report.json"
    job = [
        "crawl",
        "--emulator",
        "--emulator-projects",
        "2",
        "-o",
        str(out),
        "--resume",
        str(state),
    ]
    assert invoke(*job).exit_code == 0
    again = invoke(*job, "--report", str(report))
    assert again.exit_code == 0, again.stderr
    assert "nothing to do: all 2 projects finished" in again.stderr
    document = json.loads(report.read_text())
    assert (document["exit_status"], document["stopped"]) == (0, None)
    assert {p["status"] for p in document["projects"]} == {"skipped"}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class BytesTerminal(io.BytesIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("rows_on_the_terminal", [True, False])
async def test_with_rows_on_the_terminal_too_progress_is_plain_lines_not_a_bar(
    monkeypatch, rows_on_the_terminal
):
    """A bar redrawn over rows written to the same terminal would garble both."""
    monkeypatch.setenv("TERM", "xterm-256color")
    stdout = BytesTerminal() if rows_on_the_terminal else io.BytesIO()
    monkeypatch.setattr(_output, "stdout_for_rows", lambda: stdout)

    async def events() -> AsyncIterator[object]:
        yield SharingPage("p1", 0, 10, (BackupSharing("s1", "b", "p1", "q"),))
        yield ProjectDone("p1", 1, None)

    crawl = CrawlJob(["p1"], None, "jsonl", None, max_projects=1, listing={})
    stderr = Terminal()
    assert await run_crawl(fake_client(events), crawl, stderr) == 0
    assert json.loads(stdout.getvalue())["id"] == "s1"
    assert ("\x1b[" not in stderr.getvalue()) is rows_on_the_terminal


async def test_a_run_without_the_command_s_signals_stops_on_sigterm_by_itself(tmp_path):
    """`run_crawl` called by a program of its own: SIGTERM stops it cleanly all the same."""
    out = tmp_path / "out.jsonl"

    async def events() -> AsyncIterator[object]:
        yield SharingPage("p1", 0, 10, (BackupSharing("s1", "b", "p1", "q"),))
        yield ProjectDone("p1", 1, None)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            raise AssertionError("no handler: SIGTERM would kill the process")
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.Event().wait()
        yield ProjectDone("p2", 0, None)  # never

    crawl = CrawlJob(["p1", "p2"], out, "jsonl", None, max_projects=1, listing={},
                     progress_interval=3600)  # fmt: skip
    stderr = io.StringIO()
    assert await run_crawl(fake_client(events), crawl, stderr) == 143
    assert "interrupted: SIGTERM after 1 projects finished in this run" in stderr.getvalue()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # removed when it ended


async def test_a_run_stopped_after_a_success_says_why_in_its_words_and_its_report(tmp_path):
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"

    async def events() -> AsyncIterator[object]:
        yield SharingPage("p1", 0, 10, (BackupSharing("s1", "b", "p1", "q"),))
        yield ProjectDone("p1", 1, None)
        yield ProjectDone("p2", 0, ServerError("boom", status=500))
        yield ProjectDone("p3", 0, None)  # never: the run stopped

    out.write_text('{"id": "from an earlier run"}\n')  # replaced: one project succeeded
    crawl = CrawlJob(["p1", "p2", "p3"], out, "jsonl", None, max_projects=1, listing={},
                     report=report, max_failures=1, progress_interval=3600)  # fmt: skip
    stderr = io.StringIO()
    assert await run_crawl(fake_client(events), crawl, stderr) == 2
    assert "stopped: 1 projects failed (--max-failures 1)\n" in stderr.getvalue()
    document = json.loads(report.read_text())
    assert (document["exit_status"], document["stopped"]) == (
        2,
        "1 projects failed (--max-failures 1)",
    )
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["s1"]


class Closed(io.StringIO):
    """A stderr whose terminal went away (SIGHUP): every write fails."""

    def write(self, text: str) -> int:
        raise OSError(5, f"Input/output error writing {len(text)} characters")


async def test_a_run_whose_stderr_went_away_still_ends_with_its_status_and_files(tmp_path):
    out = tmp_path / "out.jsonl"

    async def events() -> AsyncIterator[object]:
        yield SharingPage("p1", 0, 10, (BackupSharing("s1", "b", "p1", "q"),))
        yield ProjectDone("p1", 1, None)

    crawl = CrawlJob(["p1"], out, "jsonl", None, max_projects=1, listing={},
                     progress_interval=3600)  # fmt: skip
    assert await run_crawl(fake_client(events), crawl, Closed()) == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["s1"]


async def test_the_display_is_refreshed_every_interval_at_least_half_a_second(monkeypatch):
    """A slow project still shows progress: the refresh does not wait for a project's end."""
    naps: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        naps.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(_run, "asyncio", SimpleNamespace(
        sleep=sleep, create_task=asyncio.create_task, wait=asyncio.wait))  # fmt: skip
    for interval, nap in ((0.1, 0.5), (2.0, 2.0)):
        naps.clear()
        updates: list[int] = []
        display = SimpleNamespace(update=functools.partial(updates.append, 1))
        async with _ticking(display, interval):  # type: ignore[arg-type]
            for _ in range(5):
                await real_sleep(0)
        assert len(updates) >= 2
        assert set(naps) == {nap}


def test_resume_to_stdout_is_refused_in_words_before_anything_runs():
    with pytest.raises(PathError) as caught:
        check_paths(None, Path("state"), None)
    assert str(caught.value) == "--resume needs --output FILE: stdout cannot be resumed"


def test_resume_into_a_fifo_is_refused_in_words_before_anything_runs(tmp_path):
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    with pytest.raises(PathError) as caught:
        check_paths(fifo, tmp_path / "state", None)
    assert str(caught.value) == (
        f"--resume needs --output to be a regular file; {fifo} is not one (a device or a FIFO "
        "cannot be cut back to what finished projects wrote)"
    )


@pytest.mark.parametrize("same", ["state", "report"])
async def test_a_run_refuses_a_state_or_report_that_is_its_output(tmp_path, same):
    """`run_crawl` checks its files itself, whoever calls it."""
    out = tmp_path / "out.jsonl"

    async def events() -> AsyncIterator[object]:
        raise AssertionError("nothing runs")
        yield  # an async generator

    crawl = CrawlJob(["p1"], out, "jsonl", out if same == "state" else None, max_projects=1,
                     listing={}, report=out if same == "report" else None)  # fmt: skip
    with pytest.raises((StateError, PathError)) as caught:
        await run_crawl(fake_client(events), crawl, io.StringIO())
    assert ("is the output file" if same == "state" else "is the same file as") in str(caught.value)
    assert not out.exists()


def test_a_state_that_is_a_fifo_is_refused_in_words_before_anything_runs(tmp_path):
    fifo = tmp_path / "state.fifo"
    os.mkfifo(fifo)
    with pytest.raises(PathError) as caught:
        check_paths(tmp_path / "out.jsonl", fifo, None)
    assert str(caught.value) == f"--resume {fifo} is not a regular file"


def test_the_summary_shows_a_slow_crawl_s_rates_to_a_tenth(monkeypatch):
    # An outsider's crawl behind 20 a minute: 93 requests in 206 s read "0 requests/s".
    counts = Tally(total=1, requests=93, sharings=40)
    monkeypatch.setattr(Tally, "elapsed", property(lambda _: 206.0))
    lines, _ = counts.summary("out.jsonl")
    assert "(0.2 rows/s, 0.5 requests/s)" in lines[4]
    counts.requests, counts.sharings = 20_600, 206_000
    assert "(1,000 rows/s, 100 requests/s)" in counts.summary("out.jsonl")[0][4]
    counts.requests, counts.sharings = 2_054, 2_047  # 9.97 and 9.94 a second
    assert "(9.9 rows/s, 10 requests/s)" in counts.summary("out.jsonl")[0][4]
