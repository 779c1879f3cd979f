"""`crawl --db FILE`: the crawl recorded in an inventory, one transaction per project.

The order that keeps the database, the output and the state file in step:
a project's rows are committed to the database first, then written to the
output, then recorded in the state file. A crawl killed in between crawls
that project again on `--resume`, and recording it again in the same run
replaces what the first pass recorded; so the database of a killed and
resumed crawl equals a clean run's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from vbs_async._models import Project
from vbs_async.inventory import Inventory, InventoryError

if TYPE_CHECKING:
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


class CrawlRecorder:
    """A crawl's run in the inventory."""

    def __init__(self, inventory: Inventory, run: RunRecorder) -> None:
        self._inventory = inventory
        self._run = run

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

    def done(self, done: ProjectDone) -> None:
        """Commit a project's rows and outcome (or its failure)."""
        if done.ok:
            self._run.commit_project(done.project_id)
        else:
            self._run.fail_project(done.project_id, str(done.error))

    def drop(self, project_id: str) -> None:
        """Forget the pages of a project that did not end."""
        self._run.drop_project(project_id)

    def finish(self) -> None:
        """The crawl went through its projects: the run is complete or partial."""
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
