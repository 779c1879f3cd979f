"""Findings: the sharings of the latest known state of each project, classified.

The audited runs are the latest finished one (`complete` or `partial`) of
each account recorded, unless one run is named. The audited state of an
account is every project its runs up to that one recorded: each
contributes the sharings of its latest successful listing, in that run or
an earlier one of any job (then marked `stale`, with that run); a project
never listed is `unknown`, and its sharings cannot be audited.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._classify import (
    SEVERITY,
    Classifier,
    Severity,
    SharingClass,
    classifier_for_run,
    normalised,
)
from ._store import InventoryError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable

    from ._store import Inventory

VERSION_COLUMNS: Final = (
    "project_id, sharing_id, backup_id, from_project_id, to_project_id, created_at, "
    "updated_at, backup_name, backup_size, backup_volume_id, backup_status, "
    "backup_availability_zone, first_seen, last_seen"
)


@attrs.frozen
class SharingVersion:
    """A sharing as one or more runs saw it.

    Attributes:
        project_id: The project whose listing showed it.
        sharing_id: The sharing's ID.
        backup_id: The backup shared.
        from_project_id: The project that shared it.
        to_project_id: The project it is shared with.
        created_at: When it was shared (ISO 8601), if the service said.
        updated_at: When it last changed (ISO 8601), if the service said.
        backup_name: The backup's name.
        backup_size: The backup's size in GB.
        backup_volume_id: The disk the backup is of.
        backup_status: The backup's status (`available`, ...).
        backup_availability_zone: The backup's availability zone.
        first_seen: The first run of this version.
        last_seen: The last run of this version.
    """

    project_id: str
    sharing_id: str
    backup_id: str
    from_project_id: str
    to_project_id: str
    created_at: str | None
    updated_at: str | None
    backup_name: str | None
    backup_size: int | None
    backup_volume_id: str | None
    backup_status: str | None
    backup_availability_zone: str | None
    first_seen: int
    last_seen: int

    @property
    def remediation(self) -> str:
        """The command that ends the sharing (run by the project that shared it), shell-quoted."""
        return (
            f"vbs-async cancel {shlex.quote(self.from_project_id)} {shlex.quote(self.sharing_id)}"
        )


@attrs.frozen
class Finding:
    """One sharing of the audited state, classified.

    Attributes:
        sharing: The sharing as last seen.
        sharing_class: Where it can be restored.
        severity: How urgent it is.
        to_account: The account of the project it is shared with, if recorded.
        first_seen_run: The first run that saw the sharing.
        first_seen_at: When that run started.
        seen_run: The run whose listing the finding comes from.
        seen_at: When that run started.
        stale: Whether that is an earlier run than the audited one (the
            project's listing failed, or it was not crawled, since).
    """

    sharing: SharingVersion
    sharing_class: SharingClass
    severity: Severity
    to_account: str | None
    first_seen_run: int
    first_seen_at: str | None
    seen_run: int
    seen_at: str | None
    stale: bool

    @property
    def remediation(self) -> str:
        """The command that ends the sharing."""
        return self.sharing.remediation


@attrs.define
class Audit:
    """The findings of one run's state; iterate it once for the findings.

    Attributes:
        run_ids: The audited runs, latest first (one per account).
        minimum: Findings below this severity are left out.
        projects: Projects of the run.
        stale_projects: Projects whose findings come from an earlier run.
        seen_runs: The runs whose listings the findings come from (so far).
        every_count: Findings so far by severity, those below `minimum` included.
        unknown_projects: Projects never listed: their sharings are unknown.
        counts: Findings yielded so far, by severity.
        classes: Findings yielded so far, by class.
    """

    run_ids: list[int]
    minimum: Severity
    projects: int = 0
    stale_projects: list[str] = attrs.field(factory=list)
    unknown_projects: list[str] = attrs.field(factory=list)
    counts: dict[Severity, int] = attrs.field(factory=dict)
    seen_runs: set[int] = attrs.field(factory=set)
    every_count: dict[Severity, int] = attrs.field(factory=dict)
    classes: dict[SharingClass, int] = attrs.field(factory=dict)
    _findings: Iterator[Finding] | None = None

    def __iter__(self) -> Iterator[Finding]:
        if self._findings is None:
            raise RuntimeError("an audit is iterated once")
        findings, self._findings = self._findings, None
        return findings

    def at_least(self, severity: Severity) -> int:
        """How many findings so far are at or above `severity` (whatever `minimum` hides)."""
        return sum(count for level, count in self.every_count.items() if level >= severity)


FINISHED: Final = ("complete", "partial")
"""The states of a finished run: audit and diff read these only (`running` and
`interrupted` runs may be resumed, and hold some projects only)."""

_LARGEST_ID: Final = 2**63 - 1
"""SQLite's largest integer: no run has a greater ID."""


def finished_run(db: sqlite3.Connection, run_id: int) -> int:
    """`run_id`, if the inventory records it finished.

    Raises:
        InventoryError: No such run, or it is not finished.
    """
    row = (
        db.execute("SELECT state FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if 0 < run_id <= _LARGEST_ID
        else None
    )
    if row is None:
        raise InventoryError(f"no run {run_id} in the inventory")
    if row[0] not in FINISHED:
        raise InventoryError(
            f"run {run_id} is not finished ({row[0]}): audit and diff read finished runs only; "
            "finish it with crawl --resume, or name a finished run"
        )
    return run_id


def audited_runs(
    db: sqlite3.Connection, run_id: int | None, account: str | None = None
) -> list[int]:
    """The runs to audit: `run_id`, else each account's latest finished run (or `account`'s).

    Raises:
        InventoryError: No such run, or it is not finished; or no finished run at all.
    """
    if run_id is not None:
        if account is not None:
            raise InventoryError("--account picks the run: not with --run")
        return [finished_run(db, run_id)]
    latest: dict[str | None, int] = {}  # by account, whatever the case of its label
    for finished_id, label in db.execute(
        "SELECT run_id, account FROM runs WHERE state IN (?, ?) ORDER BY run_id", FINISHED
    ):
        latest[None if label is None else normalised(label)] = finished_id
    if account is not None:
        if normalised(account) not in latest:
            raise InventoryError(f"the inventory records no finished run of account {account}")
        return [latest[normalised(account)]]
    if latest:
        return sorted(latest.values(), reverse=True)
    last = db.execute("SELECT run_id, state FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()
    if last is None:
        raise InventoryError("the inventory records no run yet")
    raise InventoryError(
        f"the inventory records no finished run yet (run {last[0]} is {last[1]}): "
        "audit reads finished runs only"
    )


def version(row: tuple[Any, ...]) -> SharingVersion:
    """A `SharingVersion` from a row of `VERSION_COLUMNS`."""
    return SharingVersion(*row)


def audit(
    inventory: Inventory,
    *,
    run_id: int | None = None,
    trusted: Iterable[str] = (),
    minimum: Severity = Severity.LOW,
    account: str | None = None,
) -> Audit:
    """The findings of a run's state (by default the latest finished run's).

    Args:
        inventory: The inventory to read.
        run_id: The run to audit; None for the latest finished one.
        trusted: Trusted project and account IDs.
        minimum: Leave out findings below this severity (`Severity.INFO`
            includes internal sharings).
        account: Only this account's latest finished run (whatever the
            case of its label); None for every account's.

    Raises:
        InventoryError: No such run, or none recorded.
    """
    db = inventory.connection
    run_ids = audited_runs(db, run_id, account)
    result = Audit(run_ids=run_ids, minimum=minimum)
    trusted = frozenset(trusted)
    classifiers = {run: classifier_for_run(db, run, trusted) for run in run_ids}
    result._findings = _findings(db, classifiers, result)  # noqa: SLF001
    return result


def _findings(
    db: sqlite3.Connection, classifiers: dict[int, Classifier], result: Audit
) -> Iterator[Finding]:
    audited: set[str] = set()
    for run_id, classifier in classifiers.items():
        # Every project the account's runs up to this one recorded: the run's
        # own first (in its order), then those only earlier runs listed (a
        # crawl of other projects of the same account does not hide them).
        same = _same_account(db, run_id)
        rows = db.execute(
            "SELECT project_id, outcome, run_id FROM run_projects "
            "WHERE run_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY run_id = ? DESC, run_id DESC, position",
            (json.dumps(same), run_id),
        ).fetchall()
        projects: dict[str, str] = {}
        for project_id, outcome, seen in rows:
            if project_id in audited:
                continue  # a project of two accounts' runs is audited once, in the latest
            if seen == run_id and outcome != "known":
                projects.setdefault(project_id, outcome)
            elif outcome != "known":
                projects.setdefault(project_id, "not_crawled")
        audited.update(projects)
        result.projects += len(projects)
        yield from _project_findings(db, run_id, list(projects.items()), classifier, result)


def _same_account(db: sqlite3.Connection, run_id: int) -> list[int]:
    """The runs up to `run_id` of its account (whatever the case of the label), or of none."""
    account = db.execute("SELECT account FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
    same = None if account is None else normalised(account)
    return [
        earlier
        for earlier, label in db.execute(
            "SELECT run_id, account FROM runs WHERE run_id <= ?", (run_id,)
        )
        if (None if label is None else normalised(label)) == same
    ]


def _project_findings(
    db: sqlite3.Connection,
    run_id: int,
    projects: list[tuple[str, str]],
    classifier: Classifier,
    result: Audit,
) -> Iterator[Finding]:
    started = dict(db.execute("SELECT run_id, started_at FROM runs").fetchall())
    for project_id, outcome in projects:
        seen = run_id
        if outcome != "ok":
            row = db.execute(
                "SELECT max(run_id) FROM run_projects WHERE project_id = ? AND outcome = 'ok' "
                "AND run_id < ?",
                (project_id, run_id),
            ).fetchone()
            if row[0] is None:
                result.unknown_projects.append(project_id)
                continue
            seen = int(row[0])
            result.stale_projects.append(project_id)
        result.seen_runs.add(seen)
        rows = db.execute(
            f"SELECT {VERSION_COLUMNS}, "  # noqa: S608 - constant columns
            "(SELECT min(first_seen) FROM sharings AS earlier "
            " WHERE earlier.project_id = sharings.project_id "
            " AND earlier.sharing_id = sharings.sharing_id) "
            "FROM sharings WHERE project_id = ? AND first_seen <= ? AND last_seen >= ? "
            "ORDER BY sharing_id",
            (project_id, seen, seen),
        )
        for row in rows:
            sharing = version(row[:-1])
            sharing_class = classifier.classify(sharing.to_project_id)
            severity = SEVERITY[sharing_class]
            result.every_count[severity] = result.every_count.get(severity, 0) + 1
            if severity < result.minimum:
                continue
            result.counts[severity] = result.counts.get(severity, 0) + 1
            result.classes[sharing_class] = result.classes.get(sharing_class, 0) + 1
            yield Finding(
                sharing=sharing,
                sharing_class=sharing_class,
                severity=severity,
                to_account=classifier.account_of(sharing.to_project_id),
                first_seen_run=int(row[-1]),
                first_seen_at=started.get(row[-1]),
                seen_run=seen,
                seen_at=started.get(seen),
                stale=seen != run_id,
            )
