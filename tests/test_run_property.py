"""The command's run, as a property: whatever pages arrive in whatever order, whichever
projects fail and wherever a run dies, a resumed run ends with every sharing once.

A scripted client stands in for VBS (`crawl_pages` yields the script's pages and
ends), so that Hypothesis can try hundreds of interleavings without a server;
the kill -9 loop (`test_kill_loop.py`) covers real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import tempfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbs_async import (
    BackupSharing,
    ListingStats,
    ProjectDone,
    ServerError,
    SharingPage,
    TokenAuth,
)
from vbs_async.cli._run import CrawlJob, run_crawl
from vbs_async.cli._state import State

from ._helpers import output_rows


class Died(Exception):  # noqa: N818 - stands for the process dying
    """The run stops here, as a crash would."""


def sharing(project: str, page: int, item: int) -> BackupSharing:
    return BackupSharing(
        id=f"{project}-{page}-{item}", backup_id="b", from_project_id=project, to_project_id="t"
    )


class ScriptedClient:
    """Yields each project's pages, interleaved as the script says; some projects fail."""

    def __init__(
        self, plan: dict[str, tuple[list[int], bool]], order: list[int], die_at: int | None
    ):
        self.plan, self.order, self.die_at = plan, order, die_at
        self.auth = TokenAuth("t")
        self.limiter = SimpleNamespace(started=0, quotas=[], doubted=[])
        self.listings = ListingStats()

    async def crawl_pages(self, pending: list[str], **_: Any):
        streams = {p: self._events(p) for p in pending}
        queue = list(self._interleaving(pending))
        for step, project in enumerate(queue):
            if step == self.die_at:
                raise Died
            yield next(streams[project])
            await asyncio.sleep(0)

    def _events(self, project: str):
        pages, ok = self.plan[project]
        for number, size in enumerate(pages):
            items = tuple(sharing(project, number, i) for i in range(size))
            yield SharingPage(project, number * 10, 10, items)
        error = None if ok else ServerError("boom", status=500, project_id=project)
        yield ProjectDone(project, sum(pages) if ok else 0, error)

    def _interleaving(self, pending: list[str]) -> list[str]:
        # Each project's events in order; projects interleaved by the script.
        remaining = {p: len(self.plan[p][0]) + 1 for p in pending}
        turns: list[str] = []
        index = 0
        while any(remaining.values()):
            live = [p for p in pending if remaining[p]]
            project = live[self.order[index % len(self.order)] % len(live)]
            index += 1
            remaining[project] -= 1
            turns.append(project)
        return turns


plans = st.dictionaries(
    st.sampled_from([f"p{n}" for n in range(6)]),
    st.tuples(st.lists(st.integers(0, 4), max_size=3), st.booleans()),
    min_size=1,
)


@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    plan=plans,
    order=st.lists(st.integers(0, 5), min_size=1, max_size=8),
    die_at=st.one_of(st.none(), st.integers(0, 20)),
    die_at_commit=st.one_of(st.none(), st.integers(0, 5)),
    output_format=st.sampled_from(["jsonl", "csv"]),
)
def test_a_resumed_run_has_every_sharing_of_every_project_once(
    plan, order, die_at, die_at_commit, output_format
):
    projects = sorted(plan)
    with tempfile.TemporaryDirectory() as scratch:
        out, state = Path(scratch) / "out", Path(scratch) / "state"
        job = CrawlJob(projects, out, output_format, state, max_projects=4, listing={}, quiet=True)
        stderr = io.StringIO()
        commits = 0
        real_commit = State.commit

        def commit(self: State, *args: Any) -> None:
            # Dying here leaves a project's rows written but not recorded.
            nonlocal commits
            if commits == die_at_commit:
                raise Died
            commits += 1
            real_commit(self, *args)

        with contextlib.suppress(Died), pytest.MonkeyPatch.context() as patch:
            patch.setattr(State, "commit", commit)
            asyncio.run(run_crawl(ScriptedClient(plan, order, die_at), job, stderr))
        # The second run: every project now succeeds.
        healed = {p: (pages, True) for p, (pages, _) in plan.items()}
        status = asyncio.run(run_crawl(ScriptedClient(healed, order, None), job, stderr))
        assert status == 0, stderr.getvalue()
        expected = Counter(
            (p, sharing(p, n, i).id) for p, (pages, _) in plan.items()
            for n, size in enumerate(pages) for i in range(size)
        )  # fmt: skip
        assert output_rows(out, output_format) == expected


def test_the_scripted_client_does_interleave_projects():
    client = ScriptedClient({"a": ([1, 1], True), "b": ([1, 1], True)}, [0, 1], None)
    assert client._interleaving(["a", "b"]) == ["a", "b", "a", "b", "a", "b"]
