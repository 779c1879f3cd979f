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
A transaction per project cost a crawl about a third more time; a batch
costs it a few percent (`benchmarks/inventory.py`).
"""

from __future__ import annotations

import collections
import hashlib
import queue
import threading
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
QUEUE_LENGTH = 256
"""Pages and batches waiting for the writer; beyond, the crawl waits (memory stays bounded)."""


class CrawlRecorder:
    """A crawl's run in the inventory, written by a thread of its own.

    The event loop hands pages and finished projects to a writer thread
    (SQLite works without the GIL, so the crawl goes on meanwhile); batches
    of finished projects are committed there, and their output rows and
    state lines are written back on the event loop, in order, once their
    commit is done (`then(True)`).
    """

    def __init__(self, inventory: Inventory, run: RunRecorder) -> None:
        self._inventory = inventory
        self._run = run
        self._batch: list[tuple[str, str | None, Callable[[bool], None]]] = []
        self._rows = 0
        self._since = 0.0
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue(QUEUE_LENGTH)
        self._committed: collections.deque[tuple[list[Callable[[bool], None]], bool]] = (
            collections.deque()
        )
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._work, name="vbs-async-db", daemon=True)
        self._writer.start()

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

    # -- the writer thread ------------------------------------------------------------

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                if task is None:
                    return
                if self._error is None:  # after a failure, nothing more is written
                    task()
            except BaseException as exc:  # noqa: BLE001 - handed to the event loop
                self._error = exc
            finally:
                self._tasks.task_done()

    def _commit(self, batch: list[tuple[str, str | None, Callable[[bool], None]]]) -> None:
        thens = [then for _, _, then in batch]
        try:
            self._run.commit_projects([(project_id, reason) for project_id, reason, _ in batch])
        except BaseException:
            self._committed.append((thens, False))
            raise
        self._committed.append((thens, True))

    # -- the event loop's side --------------------------------------------------------

    def _written_back(self) -> None:
        """Write the output and state of the batches committed so far; raise a writer's error."""
        while self._committed:
            thens, committed = self._committed.popleft()
            for then in thens:
                then(committed)
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def page(self, page: SharingPage) -> None:
        """Keep a page of a project being listed."""
        self._tasks.put(lambda: self._run.add_page(page.project_id, page.items))
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
            batch, self._batch = self._batch, []
            self._rows = 0
            self._tasks.put(lambda: self._commit(batch))
        self._written_back()

    def flush(self) -> None:
        """Commit every finished project and write its output and state; wait for it."""
        batch, self._batch = self._batch, []
        self._rows = 0
        if batch:
            self._tasks.put(lambda: self._commit(batch))
        self._tasks.join()
        self._written_back()

    def drop(self, project_id: str) -> None:
        """Forget the pages of a project that did not end."""
        self._tasks.put(lambda: self._run.drop_project(project_id))

    def finish(self) -> None:
        """The crawl went through its projects: the run is complete or partial."""
        self.flush()
        self._tasks.put(self._finish_run)
        self._tasks.join()
        self._written_back()

    def _finish_run(self) -> None:
        self._run.finish()

    def close(self) -> None:
        """Stop the writer and close the database (a run not finished stays resumable)."""
        self._tasks.put(None)
        self._writer.join()
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
