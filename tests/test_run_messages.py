"""What a crawl says at its end: interrupted, stopped, failed, and how to go on."""

from __future__ import annotations

import io
import signal
from pathlib import Path

import pytest

from vbs_async import ServerError
from vbs_async._models import ProjectDone
from vbs_async.cli._progress import Tally
from vbs_async.cli._run import CrawlJob, _conclude, _destination
from vbs_async.cli._signals import StopSignals

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
