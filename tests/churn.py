"""A listing that changes between requests, written apart from the client and the emulator.

`ChurningListing` keeps sharings in a sort order and serves `offset`/`limit`
pages of them. Before each request it applies the next step of a schedule:
inserts, deletes and moves (a sharing whose sort key changed) anywhere in the
order. It can cap `limit` silently, lie about the count, and ignore `offset`
while shuffling its order, as misbehaving servers do. It knows nothing of how
the client pages, so that tests built on it judge the client from outside.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field
from typing import Literal

from vbs_async import BackupSharing

Kind = Literal["insert", "delete", "move"]


@dataclass(frozen=True)
class Change:
    """One change: `where` and `to` are fractions of the listing (0 = first, 1 = last)."""

    kind: Kind
    where: float
    to: float = 0.0


@dataclass
class ChurningListing:
    """A server's sort order of sharings that changes before each request.

    Attributes:
        schedule: Step `i` (a list of changes) is applied before request `i`.
        cap: Silently serve at most this many items per page.
        count_error: Added to every count answer (a count that lies).
        shuffle: Ignore `offset` and answer from a fresh random order each time.
        frozen: Apply no more changes (set it to stop the churn).
    """

    size: int
    schedule: list[list[Change]] = field(default_factory=list)
    cap: int | None = None
    count_error: int = 0
    shuffle: bool = False
    frozen: bool = False
    requests: int = 0
    initial: set[str] = field(init=False)
    deleted: set[str] = field(init=False, default_factory=set)
    inserted: set[str] = field(init=False, default_factory=set)
    moved: set[str] = field(init=False, default_factory=set)
    _rows: list[tuple[float, str]] = field(init=False)
    _names: itertools.count[int] = field(init=False, default_factory=itertools.count)
    _random: random.Random = field(init=False, default_factory=lambda: random.Random(7))

    def __post_init__(self) -> None:
        self._rows = [(float(index), self._new_id()) for index in range(self.size)]
        self.initial = {row_id for _, row_id in self._rows}

    @property
    def ids(self) -> list[str]:
        """The listing in order, now."""
        return [row_id for _, row_id in self._rows]

    @property
    def lasting(self) -> set[str]:
        """Sharings present from start to end whose sort position never changed."""
        return self.initial - self.deleted - self.moved

    @property
    def at_start_and_end(self) -> set[str]:
        """Sharings present at the start and now."""
        return self.initial & set(self.ids)

    def _new_id(self) -> str:
        return f"s{next(self._names):06d}"

    def _step(self) -> None:
        index = self.requests
        self.requests += 1
        if self.frozen or index >= len(self.schedule):
            return
        for change in self.schedule[index]:
            self._apply(change)

    def _position(self, fraction: float, length: int) -> int:
        return min(length - 1, int(fraction * length)) if length else 0

    def _key_at(self, fraction: float) -> float:
        """A fresh sort key that lands at `fraction` of the order."""
        if not self._rows:
            return 0.0
        position = self._position(fraction, len(self._rows) + 1)
        low = self._rows[position - 1][0] if position > 0 else self._rows[0][0] - 1.0
        high = self._rows[position][0] if position < len(self._rows) else low + 2.0
        return (low + high) / 2

    def _apply(self, change: Change) -> None:
        if change.kind == "insert":
            row = (self._key_at(change.where), self._new_id())
            bisect.insort(self._rows, row)
            self.inserted.add(row[1])
            return
        if not self._rows:
            return
        _, row_id = self._rows.pop(self._position(change.where, len(self._rows)))
        if change.kind == "delete":
            self.deleted.add(row_id)
        else:
            bisect.insort(self._rows, (self._key_at(change.to), row_id))
            self.moved.add(row_id)

    def page(self, offset: int, limit: int) -> tuple[BackupSharing, ...]:
        """Answer a list request."""
        self._step()
        if self.cap is not None:
            limit = min(limit, self.cap)
        ids = self.ids
        if self.shuffle:
            self._random.shuffle(ids)
            offset = 0
        return tuple(
            BackupSharing(row_id, "b", "p", "q") for row_id in ids[offset : offset + limit]
        )

    def count(self) -> int:
        """Answer a count request."""
        self._step()
        return len(self._rows) + self.count_error

    async def fetch_page(self, offset: int, limit: int) -> tuple[BackupSharing, ...]:
        """`page` in the shape `SharingIterator` calls."""
        return self.page(offset, limit)

    async def fetch_count(self) -> int:
        """`count` in the shape `SharingIterator` calls."""
        return self.count()
