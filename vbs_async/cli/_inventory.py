"""`crawl --db FILE`: the crawl recorded in an inventory, one transaction per project.

The order that keeps the database, the output and the state file in step:
a project's rows are committed to the database first, then written to the
output, then recorded in the state file. A crawl killed in between crawls
that project again on `--resume`, and recording it again in the same run
replaces what the first pass recorded; so the database of a killed and
resumed crawl equals a clean run's.

Finished projects are committed to the database in batches (one
transaction for up to `BATCH_PROJECTS` projects or `BATCH_ROWS` rows, or
what finished in the last `BATCH_SECONDS`): each project is still recorded
whole or not at all, and its output rows and state line follow its commit.
A transaction per project cost a crawl about a third more time than a
batch does (`benchmarks/inventory.py` measures what `--db` costs).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from vbs_async._models import Project
from vbs_async.inventory import Inventory, InventoryError

if TYPE_CHECKING:
    from collections.abc import Callable

    from vbs_async._models import ProjectDone, SharingPage
    from vbs_async.inventory import RunRecorder

    from ._state import State


@attrs.frozen
class InventorySpec:
    """Where and how a crawl is recorded.

    Attributes:
        path: The database file.
        account: The account (domain) the crawled projects belong to, if known.
        region: The region crawled, if known.
        known_projects: Every project IAM lists for the account (with
            `--all-projects`), so that all of them count as internal.
        whole_account: The job's project list is the whole account.
    """

    path: Path
    account: str | None = None
    region: str | None = None
    known_projects: tuple[Project, ...] = ()
    whole_account: bool = False


BATCH_PROJECTS = 64
BATCH_ROWS = 20_000
BATCH_SECONDS = 1.0


class CrawlRecorder:
    """A crawl's run in the inventory.

    Pages go to the database's temporary table as they arrive; finished
    projects are committed in batches, and their output rows and state
    lines written once their commit is done (`then(True)`), in order.
    Everything runs on the event loop's thread: a writer thread of its own
    was tried, and cost the crawl more (the two threads took the GIL from
    each other at every page) than the work it took off the loop.
    """

    def __init__(self, inventory: Inventory, run: RunRecorder) -> None:
        self._inventory = inventory
        self._run = run
        self._batch: list[tuple[str, str | None, Callable[[bool], None]]] = []
        self._rows = 0
        self._since = 0.0

    @classmethod
    def open(
        cls,
        spec: InventorySpec,
        *,
        project_ids: list[str],
        job: dict[str, Any],
        listing: dict[str, Any],
        state: State | None,
        others: list[Path | None],
    ) -> CrawlRecorder:
        """Open the inventory and start (or, resuming, continue) the run.

        Raises:
            InventoryError: The database is another writer's, not an
                inventory, another file the crawl uses, or out of step with
                the state file.
        """
        for other in others:
            if other is not None and _same_file(spec.path, other):
                raise InventoryError(
                    f"--db {spec.path} is also {other}: give the database a file of its own"
                )
        inventory = Inventory(spec.path, write=True)
        try:
            key = hashlib.sha256(
                orjson.dumps([job, spec.account, spec.region], option=orjson.OPT_SORT_KEYS)
            ).hexdigest()
            resuming = state is not None and not state.is_new
            run = inventory.start_run(
                project_ids,
                job_key=key,
                account=spec.account,
                region=spec.region,
                listing={k: v for k, v in listing.items() if k not in _PAGING},
                options={"job": job},
                known_projects=spec.known_projects,
                whole_account=spec.whole_account,
                resume=resuming,
            )
            if resuming:
                assert state is not None  # noqa: S101 - resuming means a state
                _check_in_step(spec.path, run, state)
        except BaseException:
            inventory.close()
            raise
        return cls(inventory, run)

    def page(self, page: SharingPage) -> None:
        """Keep a page of a project being listed."""
        self._run.add_page(page.project_id, page.items)
        self._rows += len(page.items)
        self._flush_if_due()

    def done(self, done: ProjectDone, then: Callable[[bool], None]) -> None:
        """Record a project's end; `then(True)` (its output and state) runs after its commit.

        `then(False)` runs instead if the commit failed: the project's rows are dropped.
        """
        if not self._batch:
            self._since = time.monotonic()
        self._batch.append((done.project_id, None if done.ok else str(done.error), then))
        self._flush_if_due()

    def _flush_if_due(self) -> None:
        if self._batch and (
            len(self._batch) >= BATCH_PROJECTS
            or self._rows >= BATCH_ROWS
            or time.monotonic() - self._since >= BATCH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Commit the finished projects, then write their output and state, in order."""
        batch, self._batch = self._batch, []
        self._rows = 0
        if not batch:
            return
        try:
            self._run.commit_projects([(project_id, reason) for project_id, reason, _ in batch])
        except BaseException:
            for _, _, then in batch:
                then(False)  # noqa: FBT003 - not committed: the rows are dropped
            raise
        for _, _, then in batch:
            then(True)  # noqa: FBT003 - committed: write the rows

    def drop(self, project_id: str) -> None:
        """Forget the pages of a project that did not end."""
        self._run.drop_project(project_id)

    def finish(self) -> None:
        """The crawl went through its projects: the run is complete or partial."""
        self.flush()
        self._run.finish()

    def close(self) -> None:
        """Close the database (a run not finished stays resumable)."""
        self._inventory.close()


def _check_in_step(path: Path, run: RunRecorder, state: State) -> None:
    """Refuse a database that lacks projects the state file calls finished."""
    recorded = {p for p, outcome in run.outcomes().items() if outcome == "ok"}
    missing = set(state.finished) - recorded if run.resumed else set(state.finished)
    if missing:
        raise InventoryError(
            f"{path} has no record of {len(missing):,} projects that {state.path} says are "
            "finished: resume with the database that crawl used, or start again with a new "
            "state file"
        )


_PAGING = frozenset({"sort_key", "sort_dir", "page_size", "end_check", "verify", "prefetch"})


def _same_file(one: Path, other: Path) -> bool:
    if one.resolve() == other.resolve():
        return True
    try:
        return one.exists() and other.exists() and one.samefile(other)
    except OSError:
        return False
