"""What a crawl says: at its end (interrupted, stopped, failed, how to go on), in its report, of a silent endpoint."""

from __future__ import annotations

import asyncio
import io
import json
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from vbs_async import ServerError
from vbs_async._models import Project, ProjectDone
from vbs_async.cli import _run
from vbs_async.cli._progress import Tally
from vbs_async.cli._report import Report
from vbs_async.cli._run import (
    CrawlJob,
    _conclude,
    _destination,
    _silence,
    _tell_gone,
    _write_report,
)
from vbs_async.cli._signals import StopSignals

if TYPE_CHECKING:
    from collections.abc import Callable

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
    client = SimpleNamespace(limiter=SimpleNamespace(started=10, adaptive=adaptive))
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
