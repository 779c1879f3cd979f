"""Listings that change while they are read: the emulator's drift mode.

Before each request of a project but its first (list or count), `Drift`
changes a few of its sharings, chosen by a seed: it deletes some, inserts
new ones, or moves some (a sharing's `updated_at` and its backup's `status`
change, which moves it under `sort_key="updated_at"` or `"status"`). Deleting
before the cursor shifts every later item to a lower offset; inserting before
it shifts them higher; a count read before a change is stale by the time the
list is read. A client that trusts offsets or counts then skips or repeats
items; these changes are what it must survive.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from ._store import Store

Where = Literal["before", "anywhere"]

_MAX_BACKUP_ID: Final = 1 << 128
_STATUSES: Final = ("available", "creating", "error", "restoring")


class Drift:
    """Seeded inserts, deletes and moves between the requests of a project.

    Args:
        seed: Makes the changes deterministic.
        max_changes: Each change inserts, deletes or moves 1 to this many sharings.
        where: `before`: deletes hit items before the request's offset and
            inserts go to the front (the default sort's newest first), so
            offsets shift both ways; `anywhere`: deletes may land anywhere
            and inserts get a `created_at` among the existing ones, so they
            land before the cursor, behind it or ahead of it.
        moves: Also move sharings: change their `updated_at` (to a moment
            after every other) and their backup's `status`.

    Attributes:
        deleted: IDs of the sharings deleted so far.
        inserted: IDs of the sharings inserted so far.
        moved: IDs of the sharings moved so far.
        changes: How many changes were made.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        max_changes: int = 3,
        where: Where = "before",
        moves: bool = False,
    ) -> None:
        if max_changes < 1:
            raise ValueError("max_changes must be >= 1")
        self._rng = random.Random(f"drift-{seed}")  # noqa: S311 - test data, not secrets
        self.max_changes = max_changes
        self.where = where
        self.moves = moves
        self.deleted: set[str] = set()
        self.inserted: set[str] = set()
        self.moved: set[str] = set()
        self.changes = 0
        self._started: set[str] = set()
        self._clock = datetime(2030, 1, 1, tzinfo=UTC)

    def before_count(self, store: Store, project_id: str) -> None:
        """Change the project's sharings, unless this is its first request."""
        self.before_list(store, project_id, 0)

    def before_list(self, store: Store, project_id: str, offset: int) -> None:
        """Change the project's sharings, unless this is its first request."""
        if project_id not in self._started:
            self._started.add(project_id)
            return
        rows = store.sharings(project_id)
        count = self._rng.randint(1, self.max_changes)
        kinds = ["delete", "insert", "move"] if self.moves else ["delete", "insert"]
        kind = self._rng.choice(kinds)
        limit = min(offset, len(rows)) if self.where == "before" else len(rows)
        if kind == "delete" and limit >= count:
            for index in sorted(self._rng.sample(range(limit), count), reverse=True):
                sharing_id = rows[index]["id"]
                store.remove(sharing_id)
                self.deleted.add(sharing_id)
        elif kind == "move" and rows:
            for row in self._rng.sample(rows, min(count, len(rows))):
                self._move(store, row)
        else:
            self._insert(store, project_id, rows, count)
        self.changes += 1

    def _move(self, store: Store, row: dict[str, Any]) -> None:
        self._clock += timedelta(seconds=1)
        moved = dict(row)
        moved["updated_at"] = self._clock.replace(tzinfo=None).isoformat(timespec="microseconds")
        backup = dict(row.get("backup") or {})
        backup["status"] = self._rng.choice(_STATUSES)
        moved["backup"] = backup
        store.add(moved)
        self.moved.add(str(row["id"]))

    def _insert(
        self, store: Store, project_id: str, rows: list[dict[str, Any]], count: int
    ) -> None:
        stamps = [str(row["created_at"]) for row in rows if row.get("created_at")]
        template = rows[0] if rows else None
        for step in range(count):
            if self.where == "anywhere" and stamps:
                moment = datetime.fromisoformat(self._rng.choice(stamps)).replace(tzinfo=UTC)
                moment += timedelta(microseconds=self._rng.randint(-999, 999))
            else:
                newest = max(stamps, default=None)
                moment = (
                    datetime.fromisoformat(newest).replace(tzinfo=UTC)
                    if newest
                    else datetime.now(UTC)
                ) + timedelta(seconds=step + 1)
            backup = dict(template["backup"]) if template and template.get("backup") else {}
            backup["id"] = f"{self._rng.randrange(_MAX_BACKUP_ID):032x}"
            created = store.share(
                project_id,
                backup,
                str(template["to_project_id"]) if template else "f" * 32,
                now=moment,
            )
            self.inserted.add(created["id"])
