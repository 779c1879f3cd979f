"""`crawl --db FILE`: the crawl recorded in an inventory, one transaction per project.

The order that keeps the database, the output and the state file in step:
a project's rows are committed to the database first, then written to the
output, then recorded in the state file. A crawl killed in between crawls
that project again on `--resume`, and recording it again in the same run
replaces what the first pass recorded; so the database of a killed and
resumed crawl equals a clean run's.

Finished projects are committed to the database in batches (one
transaction for up to `BATCH_PROJECTS` projects or `BATCH_ROWS` rows, or
what finished in the last `BATCH_SECONDS`), by a writer thread: each
project is still recorded whole or not at all, and its output rows and
state line follow its commit. A transaction per project cost a crawl about
a third more time than a batch does (`benchmarks/inventory.py` measures
what `--db` costs); 16 projects cost the writer no more than 64 (less, as a
smaller batch's temporary rows stay in the caches), and the last batch,
which the crawl waits for at its end, is a quarter as long.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs
import orjson

from vbs_async._models import Project
from vbs_async.inventory import Inventory, InventoryError, _store
from vbs_async.inventory._store import encode_page

from ._files import check_database

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
        account: The account (domain) the crawled projects belong to, as
            given (`--account`): part of what makes two runs the same job.
        detected_account: The account IAM lists the projects in, recorded
            when none is given (not part of the job: a resume finds the run
            whether IAM answered or not).
        detected_projects: The job's projects IAM lists in `detected_account`:
            only those are recorded under it (a project IAM does not list
            keeps an unknown account).
        region: The region crawled, if known.
        known_projects: Every project IAM lists for the account (with
            `--all-projects`), so that all of them count as internal.
        whole_account: The job's project list is the whole account.
    """

    path: Path
    account: str | None = None
    detected_account: str | None = None
    detected_projects: frozenset[str] = frozenset()
    region: str | None = None
    known_projects: tuple[Project, ...] = ()
    whole_account: bool = False


BATCH_PROJECTS = 16
BATCH_ROWS = 20_000
BATCH_SECONDS = 1.0
WRITES_QUEUED = 4
"""Batches handed to the writer thread and not yet taken; beyond, the crawl waits (memory bound)."""


class _Write:
    """One piece of work for the writer thread, and what came of it."""

    def __init__(self, work: Callable[[], object], then: list[Callable[[bool], None]]) -> None:
        self.work = work
        self.then = then
        self.error: BaseException | None = None
        self.done = threading.Event()


class CrawlRecorder:
    """A crawl's run in the inventory, written by a thread of its own.

    The crawl's thread (the event loop's) only encodes each page's rows as
    JSON (`encode_page`, in C) and keeps them until their project ends;
    finished projects go in batches to a writer thread, which commits each
    batch in one transaction, a few SQL statements in all (the rows are read
    by SQLite from the JSON, `json_each`), so that SQLite works while the
    crawl goes on, without the two threads trading Python's lock at every
    row. A batch's output rows and state lines are written on the crawl's
    thread once its commit is done (`then(True)`), in order; the same order
    as before, so a crawl killed at any moment resumes to the same database.
    A write that fails (a full disk) fails the crawl at its next page, with
    the writer's error; nothing after it is written.
    """

    def __init__(self, inventory: Inventory, run: RunRecorder) -> None:
        self._inventory = inventory
        self._run = run
        self._batch: list[tuple[str, str | None, Callable[[bool], None]]] = []
        self._rows = 0
        self._since = 0.0
        self._pages: dict[str, list[tuple[bytes, int]]] = {}
        self._page_rows: dict[str, int] = {}
        self._sent: collections.deque[_Write] = collections.deque()
        self._queue: queue.Queue[_Write | None] = queue.Queue(WRITES_QUEUED)
        self._failed = False
        self._writer = threading.Thread(
            target=self._write, name=f"vbs-async --db {inventory.path}", daemon=True
        )
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
            PathError: The database is stdout, a device or a fifo.
        """
        check_database(spec.path)
        for other in others:
            if other is not None and _same_file(spec.path, other):
                raise InventoryError(
                    f"--db {spec.path} is also {other}: give the database a file of its own"
                )
            suffix = None if other is None else _sqlite_sibling(spec.path, other)
            if suffix is not None:
                raise InventoryError(
                    f"{other} is the database's own {suffix} file (SQLite's, beside --db "
                    f"{spec.path}): give it a file of its own"
                )
        try:
            inventory = Inventory(spec.path, write=True)
        except InventoryError as exc:
            raise InventoryError(f"--db {spec.path}: {exc}") from None
        try:
            key = hashlib.sha256(
                orjson.dumps([job, spec.account, spec.region], option=orjson.OPT_SORT_KEYS)
            ).hexdigest()
            # With --resume, the job's run left running is continued even if
            # the state file is still empty (killed before its first line);
            # a state file with finished projects continues the run that
            # wrote it, ended or not, and must be in step with it: checked
            # before anything is written, so a refusal changes nothing.
            resuming = state is not None
            in_progress = state is not None and not state.is_new
            if in_progress:
                assert state is not None  # noqa: S101 - in progress means a state
                _check_in_step(
                    spec.path, inventory, inventory.resumable_run(key, finished=True), state
                )
            run = inventory.start_run(
                project_ids,
                job_key=key,
                account=spec.account or spec.detected_account,
                project_accounts=_project_accounts(spec, project_ids),
                region=spec.region,
                listing={k: v for k, v in listing.items() if k not in _PAGING},
                options={"job": job},
                known_projects=spec.known_projects,
                whole_account=spec.whole_account,
                resume=resuming,
                resume_finished=in_progress,
            )
        except sqlite3.Error as exc:
            inventory.close()
            advice = (
                "locked by another program (an open transaction, e.g. an sqlite3 shell): "
                "end it and run again"
                if "locked" in str(exc)
                else f"{exc}: check the file, or record into a new one"
            )
            raise InventoryError(f"--db {spec.path}: {advice}") from None
        except BaseException:
            inventory.close()
            raise
        return cls(inventory, run)

    def _write(self) -> None:
        """The writer thread: each piece of work in turn; after a failure, none."""
        # Recording is background work: on a busy machine the crawl's own threads go first
        # (Linux nices a thread by its ID; elsewhere, or if refused, it runs as it is).
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        failed: BaseException | None = None
        while (write := self._queue.get()) is not None:
            if failed is None:
                try:
                    write.work()
                except BaseException as exc:  # noqa: BLE001 - handed to the crawl's thread
                    failed = exc
            write.error = failed
            write.done.set()

    def _send(self, work: Callable[[], object], then: list[Callable[[bool], None]]) -> None:
        write = _Write(work, then)
        self._sent.append(write)
        self._queue.put(write)  # waits while the writer is WRITES_QUEUED batches behind

    def _settle(self, *, wait: bool) -> None:
        """Write the output of the batches committed so far, in order; raise a write's failure.

        After a failure, every batch handed over is settled (dropped) before
        the error is raised, so no project's rows are left open.
        """
        while self._sent and (wait or self._sent[0].done.is_set()):
            write = self._sent.popleft()
            write.done.wait()
            if write.error is None:
                _settle_each(write.then)
                continue
            for then in write.then:
                then(False)  # noqa: FBT003 - not committed: the rows are dropped
            if not self._failed:
                self._failed = True
                self._settle(wait=True)
                if isinstance(write.error, sqlite3.Error):
                    raise InventoryError(
                        f"--db {self._inventory.path}: {write.error}; the crawl stopped "
                        "(with --resume, a crawl lists again what was not recorded)"
                    ) from write.error
                raise write.error

    def page(self, page: SharingPage) -> None:
        """Keep a page of a project being listed."""
        project_id = page.project_id
        encoded = encode_page(project_id, page.items)
        pages = self._pages.setdefault(project_id, [])
        pages.append(encoded)
        rows = self._page_rows.get(project_id, 0) + encoded[1]
        self._rows += encoded[1]
        if rows >= _store.HELD_ROWS:  # a big project: its pages wait in the database
            self._send(functools.partial(self._keep, project_id, self._pages.pop(project_id)), [])
            rows = 0
        self._page_rows[project_id] = rows
        self._settle(wait=False)
        self._flush_if_due()

    def _keep(self, project_id: str, pages: list[tuple[bytes, int]]) -> None:
        for encoded, rows in pages:
            self._run.add_encoded(project_id, encoded, rows)

    def done(self, done: ProjectDone, then: Callable[[bool], None]) -> None:
        """Record a project's end; `then(True)` (its output and state) runs after its commit.

        `then(False)` runs instead if the commit failed: the project's rows are dropped.
        """
        if not self._batch:
            self._since = time.monotonic()
        self._batch.append((done.project_id, None if done.ok else str(done.error), then))
        self._settle(wait=False)
        self._flush_if_due()

    def _flush_if_due(self) -> None:
        if self._batch and (
            len(self._batch) >= BATCH_PROJECTS
            or self._rows >= BATCH_ROWS
            or time.monotonic() - self._since >= BATCH_SECONDS
        ):
            self._send_batch()

    def _send_batch(self) -> None:
        batch, self._batch = self._batch, []
        self._rows = 0
        if not batch:
            return
        outcomes = [(project_id, reason) for project_id, reason, _ in batch]
        pages = []
        for project_id, reason in outcomes:
            kept = self._pages.pop(project_id, [])
            self._page_rows.pop(project_id, None)
            if reason is None:
                pages.append((project_id, kept))
        self._send(functools.partial(self._commit, pages, outcomes), [then for _, _, then in batch])

    def _commit(
        self,
        pages: list[tuple[str, list[tuple[bytes, int]]]],
        outcomes: list[tuple[str, str | None]],
    ) -> None:
        for project_id, kept in pages:
            self._keep(project_id, kept)
        self._run.commit_projects(outcomes)

    def flush(self) -> None:
        """Commit the finished projects, then write their output and state, in order."""
        self._send_batch()
        self._settle(wait=True)

    def drop(self, project_id: str) -> None:
        """Forget the pages of a project that did not end."""
        self._pages.pop(project_id, None)
        self._page_rows.pop(project_id, None)
        self._send(functools.partial(self._run.drop_project, project_id), [])

    def finish(self) -> None:
        """The crawl went through its projects: the run is complete or partial."""
        self._send_batch()
        self._send(self._run.finish, [])
        self._settle(wait=True)

    def discard(self) -> None:
        """Forget the run this crawl started, refused before its first request.

        Only a run started by this crawl (not one it resumed) in which no
        project was recorded: nothing then tells the run was ever there.
        """
        run = self._run
        if run.resumed or self._sent:
            return
        db = self._inventory.connection
        with _store._transaction(db):  # noqa: SLF001 - the store's own transaction
            recorded = db.execute(
                "SELECT 1 FROM run_projects WHERE run_id = ? AND outcome IN ('ok', 'failed')",
                (run.run_id,),
            ).fetchone()
            if recorded is None:
                db.execute("DELETE FROM run_projects WHERE run_id = ?", (run.run_id,))
                db.execute("DELETE FROM runs WHERE run_id = ?", (run.run_id,))

    def close(self) -> None:
        """Stop the writer (after the work handed to it) and close the database.

        A run not finished stays resumable.
        """
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()
        # Batches not settled (the crawl ended by an error of its own): their
        # output is not written, as if the crawl had been killed there.
        while self._sent:
            for then in self._sent.popleft().then:
                then(False)  # noqa: FBT003 - not written
        self._inventory.close()


def _settle_each(thens: list[Callable[[bool], None]]) -> None:
    """Write each project of a committed batch; after a write fails, drop the rest, then raise.

    Every project's rows are closed whatever happens (`then` closes them), so
    an output that cannot be written (a full disk) leaves no file open.
    """
    failure: BaseException | None = None
    for then in thens:
        if failure is not None:
            then(False)  # noqa: FBT003 - the output failed: not written
            continue
        try:
            then(True)  # noqa: FBT003 - committed: write the rows
        except BaseException as exc:  # noqa: BLE001 - raised once the rest are closed
            failure = exc
    if failure is not None:
        raise failure


def _project_accounts(spec: InventorySpec, project_ids: list[str]) -> dict[str, str | None] | None:
    """Each project's account when the run's was detected: none for a project IAM does not list."""
    if spec.account is not None or spec.detected_account is None:
        return None
    return {
        project_id: spec.detected_account if project_id in spec.detected_projects else None
        for project_id in project_ids
    }


def _check_in_step(path: Path, inventory: Inventory, run_id: int | None, state: State) -> None:
    """Refuse a database whose run of the job lacks projects the state file calls finished."""
    recorded = (
        set()
        if run_id is None
        else {
            row[0]
            for row in inventory.connection.execute(
                "SELECT project_id FROM run_projects WHERE run_id = ? AND outcome = 'ok'",
                (run_id,),
            )
        }
    )
    missing = set(state.finished) - recorded
    if missing:
        raise InventoryError(
            f"{path} has no record of {len(missing):,} projects that {state.path} says are "
            "finished: resume with the database that crawl used, or start again with a new "
            "state file"
        )


_PAGING = frozenset({"sort_key", "sort_dir", "page_size", "end_check", "verify", "prefetch"})


_SQLITE_SIBLINGS: Final = ("-wal", "-shm", "-journal")


def _sqlite_sibling(database: Path, other: Path) -> str | None:
    """The suffix of the database's own file (`-wal`, `-shm`, `-journal`) `other` is, if any.

    SQLite makes, empties and deletes them beside the database (beside the
    file a symlink names, too): rows written there are lost.
    """
    databases = {database, database.resolve()}
    for suffix in _SQLITE_SIBLINGS:
        for path in databases:
            if _same_file(path.with_name(path.name + suffix), other):
                return suffix
    return None


def _same_file(one: Path, other: Path) -> bool:
    if one.resolve() == other.resolve():
        return True
    try:
        return one.exists() and other.exists() and one.samefile(other)
    except OSError:
        return False
