"""Listings that change while they are read: the emulator's drift mode.

Between two list requests of a project, `Drift` deletes or inserts a few of
its sharings, chosen by a seed. Deleting before the cursor shifts every later
item to a lower offset; inserting at the front shifts them higher. A client
that trusts offsets then skips or repeats items; these changes are what it
must survive.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from ._store import Store

Where = Literal["before", "anywhere"]

_MAX_BACKUP_ID: Final = 1 << 128


class Drift:
    """Seeded inserts and deletes between the list requests of a project.

    Args:
        seed: Makes the changes deterministic.
        max_changes: Each change inserts or deletes 1 to this many sharings.
        where: `before`: deletes hit items before the request's offset and
            inserts go to the front (the default sort's newest first), so
            offsets shift both ways; `anywhere`: changes may also land after
            the offset.

    Attributes:
        deleted: IDs of the sharings deleted so far.
        inserted: IDs of the sharings inserted so far.
        changes: How many changes were made.
    """

    def __init__(self, seed: int = 0, *, max_changes: int = 3, where: Where = "before") -> None:
        if max_changes < 1:
            raise ValueError("max_changes must be >= 1")
        self._rng = random.Random(f"drift-{seed}")  # noqa: S311 - test data, not secrets
        self.max_changes = max_changes
        self.where = where
        self.deleted: set[str] = set()
        self.inserted: set[str] = set()
        self.changes = 0
        self._listed: set[str] = set()

    def before_list(self, store: Store, project_id: str, offset: int) -> None:
        """Change the project's sharings, unless this is its first list request."""
        if project_id not in self._listed:
            self._listed.add(project_id)
            return
        rows = store.sharings(project_id)
        count = self._rng.randint(1, self.max_changes)
        limit = min(offset, len(rows)) if self.where == "before" else len(rows)
        if self._rng.random() < 0.5 and limit >= count:  # noqa: PLR2004 - a fair coin
            for index in sorted(self._rng.sample(range(limit), count), reverse=True):
                sharing_id = rows[index]["id"]
                store.remove(sharing_id)
                self.deleted.add(sharing_id)
        else:
            newest = max((row["created_at"] for row in rows if row["created_at"]), default=None)
            moment = (
                datetime.fromisoformat(newest).replace(tzinfo=UTC) if newest else datetime.now(UTC)
            )
            template = rows[0] if rows else None
            for step in range(count):
                backup = dict(template["backup"]) if template and template.get("backup") else {}
                backup["id"] = f"{self._rng.randrange(_MAX_BACKUP_ID):032x}"
                created = store.share(
                    project_id,
                    backup,
                    template["to_project_id"] if template else "f" * 32,
                    now=moment + timedelta(seconds=step + 1),
                )
                self.inserted.add(created["id"])
        self.changes += 1
