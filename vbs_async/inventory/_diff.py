"""What changed between two runs: sharings added, removed and changed, and what is unknown.

A sharing's state in a run is known only when its project was listed in that
run (`ok`). A project that failed or was not crawled in either run makes its
sharings `unknown`: never reported removed (a failed listing is not an empty
one), nor added.

Memory stays bounded whatever the size: sharings unchanged between the runs
(one version covering both) are counted by SQLite, per project; only the
versions that start or end between the runs are read, in order, one sharing
at a time.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import attrs

from ._classify import (
    SEVERITY,
    Classifier,
    Severity,
    SharingClass,
    classifier_for_run,
    normalised,
)
from ._findings import FINISHED, VERSION_COLUMNS, SharingVersion, finished_run, version
from ._store import InventoryError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable

    from ._store import Inventory

COMPARED: Final = (
    "backup_status",
    "backup_name",
    "backup_size",
    "backup_volume_id",
    "backup_id",
    "from_project_id",
    "to_project_id",
    "backup_availability_zone",
)
"""The fields whose change makes a sharing `changed`."""


class ChangeKind(enum.StrEnum):
    """How a sharing differs between two runs."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@attrs.frozen
class Change:
    """One sharing that differs between the two runs.

    Attributes:
        kind: Added, removed or changed.
        old: The sharing in the old run (None when added).
        new: The sharing in the new run (None when removed).
        sharing_class: Its class (in the new run; in the old one when removed).
        severity: The class's severity.
        fields: The fields that changed, for `changed`.
    """

    kind: ChangeKind
    old: SharingVersion | None
    new: SharingVersion | None
    sharing_class: SharingClass
    severity: Severity
    fields: tuple[str, ...] = ()

    @property
    def sharing(self) -> SharingVersion:
        """The sharing as last seen."""
        latest = self.new or self.old
        assert latest is not None  # noqa: S101 - a change has one side at least
        return latest


@attrs.define
class DiffSummary:
    """The counts of a diff (complete once its changes are all read).

    Attributes:
        added: Sharings only in the new run.
        removed: Sharings only in the old run.
        changed: Sharings in both whose backup or status changed.
        unchanged: Sharings the same in both.
        unknown: Sharings of projects not listed in one of the runs.
        unknown_projects: Those projects.
        added_by_severity: Added sharings by severity.
    """

    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    unknown: int = 0
    unknown_projects: list[str] = attrs.field(factory=list)
    added_by_severity: dict[Severity, int] = attrs.field(factory=dict)

    def new_at_least(self, severity: Severity) -> int:
        """Added sharings at or above `severity`."""
        return sum(n for level, n in self.added_by_severity.items() if level >= severity)


@attrs.define
class RunDiff:
    """The differences between two runs; iterate once for the changes, then read `summary`.

    Attributes:
        old_run: The earlier run.
        new_run: The later run.
        summary: The counts (complete after iteration).
    """

    old_run: int
    new_run: int
    summary: DiffSummary = attrs.field(factory=DiffSummary)
    _changes: Iterator[Change] | None = None

    def __iter__(self) -> Iterator[Change]:
        if self._changes is None:
            raise RuntimeError("a diff is iterated once")
        changes, self._changes = self._changes, None
        return changes


class NothingToCompareError(InventoryError):
    """The inventory holds no earlier run to compare the latest with (not a failure)."""


def runs_to_compare(
    db: sqlite3.Connection,
    old_run: int | None,
    new_run: int | None,
    account: str | None = None,
) -> tuple[int, int]:
    """The two runs: as given, or the latest finished run and the one before it of the same account.

    Only finished runs (`complete` or `partial`) are compared: a run in
    progress, or one stopped or killed before its end (`running`,
    `interrupted`), is never picked, and naming one is refused. By default
    the new run is the latest finished one, and the old one the latest
    earlier finished run of the same account (and listing), so a database
    shared by several accounts never compares one account's run with
    another's. `account` picks that account's latest two finished runs
    (whatever the case of its label) instead of the latest run's account.

    Raises:
        NothingToCompareError: No run given and no earlier run to compare with.
        InventoryError: Unknown or unfinished runs, or the old one is not earlier.
    """
    for run_id in (old_run, new_run):
        if run_id is not None:
            finished_run(db, run_id)
    runs = {
        row[0]: (None if row[1] is None else normalised(row[1]), row[2])
        for row in db.execute(
            "SELECT run_id, account, listing FROM runs WHERE state IN (?, ?) ORDER BY run_id",
            FINISHED,
        )
    }
    ids = list(runs) if account is None else _of_account(runs, account, old_run, new_run)
    if new_run is None:
        if not ids:
            raise NothingToCompareError(
                "nothing to compare yet: the inventory records no finished run"
            )
        new_run = ids[-1]
    if old_run is None:
        same = [run_id for run_id in ids if run_id < new_run and runs[run_id] == runs[new_run]]
        if not same:
            account = db.execute(
                "SELECT account FROM runs WHERE run_id = ?", (new_run,)
            ).fetchone()[0]
            whose = "" if account is None else f" of account {account}"
            raise NothingToCompareError(
                f"nothing to compare yet: one finished run{whose} (run {new_run})"
            )
        old_run = same[-1]
    if old_run >= new_run:
        raise InventoryError(f"run {old_run} is not earlier than run {new_run}")
    return old_run, new_run


def _of_account(
    runs: dict[int, tuple[str | None, str]],
    account: str,
    old_run: int | None,
    new_run: int | None,
) -> list[int]:
    """The finished runs of `account` (`runs`: each run's normalised account and listing)."""
    if old_run is not None or new_run is not None:
        raise InventoryError("--account picks the runs: not with --old or --new")
    ids = [run_id for run_id, (label, _) in runs.items() if label == normalised(account)]
    if not ids:
        raise NothingToCompareError(f"nothing to compare yet: no finished run of account {account}")
    return ids


def diff(
    inventory: Inventory,
    *,
    old_run: int | None = None,
    new_run: int | None = None,
    trusted: Iterable[str] = (),
    account: str | None = None,
) -> RunDiff:
    """The changes between two runs (by default the last two finished ones of an account).

    Raises:
        InventoryError: See `runs_to_compare`.
    """
    db = inventory.connection
    old_run, new_run = runs_to_compare(db, old_run, new_run, account)
    trusted = frozenset(trusted)
    result = RunDiff(old_run=old_run, new_run=new_run)
    result._changes = _changes(  # noqa: SLF001
        db,
        result,
        classifier_for_run(db, old_run, trusted),
        classifier_for_run(db, new_run, trusted),
    )
    return result


def _listed(db: sqlite3.Connection, run_id: int) -> set[str]:
    return {
        row[0]
        for row in db.execute(
            "SELECT project_id FROM run_projects WHERE run_id = ? AND outcome = 'ok'", (run_id,)
        )
    }


@attrs.frozen
class _Judge:
    """Judges each sharing of the two runs and counts it in the summary."""

    both: set[str]
    old_classes: Classifier
    new_classes: Classifier
    summary: DiffSummary

    def __call__(self, old: SharingVersion | None, new: SharingVersion | None) -> Change | None:
        """The change of one sharing; None if it is unknown or unchanged."""
        summary = self.summary
        latest = new or old
        if latest is None:
            return None
        if latest.project_id not in self.both:
            return None  # counted unknown by project
        if new is None:
            assert old is not None  # noqa: S101 - one side at least
            sharing_class = self.old_classes.classify(old.to_project_id)
            summary.removed += 1
            return Change(ChangeKind.REMOVED, old, None, sharing_class, SEVERITY[sharing_class])
        sharing_class = self.new_classes.classify(new.to_project_id)
        severity = SEVERITY[sharing_class]
        if old is None:
            summary.added += 1
            summary.added_by_severity[severity] = summary.added_by_severity.get(severity, 0) + 1
            return Change(ChangeKind.ADDED, None, new, sharing_class, severity)
        fields = tuple(name for name in COMPARED if getattr(old, name) != getattr(new, name))
        if not fields:
            summary.unchanged += 1
            return None
        summary.changed += 1
        return Change(ChangeKind.CHANGED, old, new, sharing_class, severity, fields)


def _references(db: sqlite3.Connection, old_run: int) -> dict[str, int]:
    """Each project's latest successful listing at or before the old run."""
    return dict(
        db.execute(
            "SELECT project_id, max(run_id) FROM run_projects WHERE outcome = 'ok' "
            "AND run_id <= ? GROUP BY project_id",
            (old_run,),
        ).fetchall()
    )


def _count_unchanged(
    db: sqlite3.Connection, result: RunDiff, references: dict[str, int], new_listed: set[str]
) -> set[str]:
    """Count the versions covering both sides (unchanged), the unknown ones; the projects known."""
    old_run, new_run, summary = result.old_run, result.new_run, result.summary
    both = {p for p in new_listed if p in references}
    summary.unknown_projects = sorted(
        {
            row[0]
            for row in db.execute(
                "SELECT DISTINCT project_id FROM run_projects WHERE run_id IN (?, ?) "
                "AND outcome != 'known'",
                (old_run, new_run),
            )
        }
        - both
    )
    for reference in sorted({references[p] for p in both}):
        for project_id, count in db.execute(
            "SELECT project_id, count(*) FROM sharings WHERE first_seen <= ? AND last_seen >= ? "
            "GROUP BY project_id",
            (reference, new_run),
        ):
            if project_id in both and references[project_id] == reference:
                summary.unchanged += count
    for project_id in summary.unknown_projects:
        seen = new_run if project_id in new_listed else references.get(project_id)
        if seen is not None:
            summary.unknown += db.execute(
                "SELECT count(*) FROM sharings WHERE project_id = ? AND first_seen <= ? "
                "AND last_seen >= ?",
                (project_id, seen, seen),
            ).fetchone()[0]
    return both


def _changes(
    db: sqlite3.Connection, result: RunDiff, old_classes: Classifier, new_classes: Classifier
) -> Iterator[Change]:
    # Each project is compared with its latest successful listing at or
    # before the old run: a sharing made while its listing failed is added
    # once, in the first diff whose new run lists it.
    new_run = result.new_run
    references = _references(db, result.old_run)
    new_listed = _listed(db, new_run)
    both = _count_unchanged(db, result, references, new_listed)
    if not both:
        return
    judge = _Judge(both, old_classes, new_classes, result.summary)
    earliest = min(references[p] for p in both)
    rows = db.execute(
        f"SELECT {VERSION_COLUMNS} FROM sharings "  # noqa: S608 - constant columns
        "WHERE first_seen <= :new AND last_seen >= :old "
        "AND NOT (first_seen <= :old AND last_seen >= :new) "
        "ORDER BY project_id, sharing_id, first_seen",
        {"old": earliest, "new": new_run},
    )
    key: tuple[str, str] | None = None
    old: SharingVersion | None = None
    new: SharingVersion | None = None
    for row in rows:
        current = version(row)
        if current.project_id not in both:
            continue
        reference = references[current.project_id]
        if current.first_seen <= reference and current.last_seen >= new_run:
            continue  # counted unchanged
        if (current.project_id, current.sharing_id) != key:
            change = judge(old, new)
            if change is not None:
                yield change
            key, old, new = (current.project_id, current.sharing_id), None, None
        if current.first_seen <= reference <= current.last_seen:
            old = current
        if current.first_seen <= new_run <= current.last_seen:
            new = current
    change = judge(old, new)
    if change is not None:
        yield change
