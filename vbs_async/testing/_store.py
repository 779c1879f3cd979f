"""The emulator's data: backups and sharings in memory, with the API's filters and sorting.

Sharings are kept as the JSON objects the API returns, each serialised once,
so that a page is answered by joining bytes. Nothing here does I/O.
"""

from __future__ import annotations

import functools
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs
import orjson

if TYPE_CHECKING:
    from collections.abc import Callable

_BACKUP_SORT_KEYS: Final = frozenset({"name", "status", "size", "container_format", "disk_format"})
_EPOCH: Final = datetime(2024, 1, 1, tzinfo=UTC)
_STATUSES: Final = ("available", "available", "available", "creating", "error")
_ZONES: Final = ("eu-de-01", "eu-de-02", "eu-de-03")


def _timestamp(moment: datetime) -> str:
    # The service's form: microseconds, no zone.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


class StoredSharing:
    """One sharing as the API shows it, kept serialised; its document decoded when needed.

    Attributes:
        encoded: The JSON object the API returns for it, serialised.
        id: The sharing's ID.
        from_project_id: The project that shared it.
        to_project_id: The project it is shared with.
        created_at: Its `created_at` (the default sort key), or None.
    """

    __slots__ = ("_document", "created_at", "encoded", "from_project_id", "id", "to_project_id")

    def __init__(self, document: dict[str, Any]) -> None:
        self._document: dict[str, Any] | None = document
        self.encoded = orjson.dumps(document)
        self.id = str(document["id"])
        self.from_project_id = str(document["from_project_id"])
        self.to_project_id = str(document["to_project_id"])
        self.created_at: str | None = document.get("created_at")

    @classmethod
    def serialised(
        cls,
        encoded: bytes,
        *,
        sharing_id: str,
        from_project_id: str,
        to_project_id: str,
        created_at: str,
    ) -> StoredSharing:
        """A sharing made serialised (synthetic data): its document is decoded only if read."""
        stored = cls.__new__(cls)
        stored._document = None  # noqa: SLF001 - the class making its own instance
        stored.encoded = encoded
        stored.id = sharing_id
        stored.from_project_id = from_project_id
        stored.to_project_id = to_project_id
        stored.created_at = created_at
        return stored

    @property
    def document(self) -> dict[str, Any]:
        """The JSON object the API returns for it."""
        if self._document is None:
            self._document = orjson.loads(self.encoded)
        return self._document

    def side(self, name: str) -> str:
        """`from_project_id` or `to_project_id`."""
        return self.from_project_id if name == "from_project_id" else self.to_project_id


@attrs.frozen
class Query:
    """A list or count request's filters and order, as the emulator reads them."""

    share_to_me: bool = False
    volume_id: str | None = None
    name: str | None = None
    status: str | None = None
    backup_id: str | None = None
    from_project_id: str | None = None
    to_project_id: str | None = None
    availability_zone: str | None = None
    sort_key: str = "created_at"
    sort_dir: str = "desc"

    @property
    def filtered(self) -> bool:
        """Whether any filter is set (else every sharing of the side matches)."""
        return any(
            value is not None
            for value in (
                self.volume_id,
                self.name,
                self.status,
                self.backup_id,
                self.from_project_id,
                self.to_project_id,
                self.availability_zone,
            )
        )

    def matches(self, sharing: dict[str, Any]) -> bool:
        """Whether a sharing passes every filter (`name` matches as a substring)."""
        backup = sharing.get("backup") or {}
        checks = (
            (self.volume_id, backup.get("volume_id")),
            (self.status, backup.get("status")),
            (self.backup_id, sharing["backup_id"]),
            (self.from_project_id, sharing["from_project_id"]),
            (self.to_project_id, sharing["to_project_id"]),
            (self.availability_zone, backup.get("availability_zone")),
        )
        if any(wanted is not None and wanted != actual for wanted, actual in checks):
            return False
        return self.name is None or self.name.lower() in (backup.get("name") or "").lower()


def _sort_value(sharing: dict[str, Any], key: str) -> tuple[bool, Any]:
    holder = sharing.get("backup") or {} if key in _BACKUP_SORT_KEYS else sharing
    value = holder.get(key)
    # Nulls sort first ascending, last descending, as in SQL with NULLS FIRST.
    return (value is not None, value if value is not None else "")


class Store:
    """Projects' sharings in memory.

    Each sharing is listed under its `from_project_id` (what a project shared)
    and its `to_project_id` (what was shared with it, `share_to_me=true`).
    """

    def __init__(self) -> None:
        self._sharings: dict[str, StoredSharing] = {}
        # Each project's sharings, by side: a listing reads its project's only,
        # so that serving 10,000 projects stays linear, not quadratic.
        self._by_project: dict[tuple[str, str], dict[str, StoredSharing]] = {}
        self._version = 0
        self._views: dict[tuple[str, Query], tuple[int, list[StoredSharing]]] = {}
        self._sequence = 0
        # Sharings not made yet, by the project that shares them (see `populate`).
        self._deferred: dict[str, list[tuple[Callable[[Store], None], int]]] = {}

    def __len__(self) -> int:
        """How many sharings there are, those not made yet included (none is made for it)."""
        deferred = sum(count for makers in self._deferred.values() for _, count in makers)
        return len(self._sharings) + deferred

    def defer(self, project_id: str, make: Callable[[Store], None], count: int) -> None:
        """Have `make(store)` insert `count` sharings of `project_id` when first needed."""
        self._deferred.setdefault(project_id, []).append((make, count))

    def _make(self, project_id: str) -> None:
        for make, _ in self._deferred.pop(project_id, ()):
            make(self)

    def _make_all(self) -> None:
        while self._deferred:
            self._make(next(iter(self._deferred)))

    def sharings(self, project_id: str, *, share_to_me: bool = False) -> list[dict[str, Any]]:
        """A project's sharings in the API's default order (newest first)."""
        return [s.document for s in self.view(project_id, Query(share_to_me=share_to_me))]

    def get(self, sharing_id: str) -> dict[str, Any] | None:
        """One sharing's document, or None."""
        self._make_all()
        stored = self._sharings.get(sharing_id)
        return None if stored is None else stored.document

    def view(self, project_id: str, query: Query) -> list[StoredSharing]:
        """The sharings a list request of `project_id` sees, filtered and sorted."""
        if query.share_to_me:
            self._make_all()  # what others shared with it may not be made yet
        else:
            self._make(project_id)
        key = (project_id, query)
        cached = self._views.get(key)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        side = "to_project_id" if query.share_to_me else "from_project_id"
        rows = list(self._by_project.get((side, project_id), {}).values())
        if query.filtered:
            rows = [s for s in rows if query.matches(s.document)]
        rows.sort(key=lambda s: s.id)
        if query.sort_key == "created_at":  # the default: no document to decode
            rows.sort(key=lambda s: (s.created_at is not None, s.created_at or ""))
        else:
            rows.sort(key=lambda s: _sort_value(s.document, query.sort_key))
        if query.sort_dir == "desc":
            rows.reverse()
        if len(self._views) > 1024:  # noqa: PLR2004 - a bound, not a tuning knob
            self._views.clear()
        self._views[key] = (self._version, rows)
        return rows

    def add(self, document: dict[str, Any]) -> dict[str, Any]:
        """Store a sharing document (as the API would return it) and return it."""
        for field in ("id", "backup_id", "from_project_id", "to_project_id"):
            if not isinstance(document.get(field), str):
                raise ValueError(f"a sharing needs a string {field}")
        self.remove(document["id"])
        return self.insert(document)

    def insert(self, document: dict[str, Any]) -> dict[str, Any]:
        """Store a new sharing document whose ID is not stored yet."""
        self._keep(StoredSharing(document))
        return document

    def insert_serialised(self, stored: StoredSharing) -> None:
        """Store a new sharing made serialised (synthetic data) whose ID is not stored yet."""
        self._keep(stored)

    def _keep(self, stored: StoredSharing) -> None:
        self._sharings[stored.id] = stored
        for side in ("from_project_id", "to_project_id"):
            self._by_project.setdefault((side, stored.side(side)), {})[stored.id] = stored
        self._version += 1

    def remove(self, sharing_id: str) -> bool:
        """Delete a sharing; False if there was none."""
        self._make_all()
        stored = self._sharings.pop(sharing_id, None)
        if stored is None:
            return False
        for side in ("from_project_id", "to_project_id"):
            self._by_project[side, stored.side(side)].pop(sharing_id, None)
        self._version += 1
        return True

    def remove_backup(self, project_id: str, backup_id: str) -> int:
        """Delete every sharing of a backup owned by `project_id`; how many went."""
        self._make_all()
        doomed = [
            s.id
            for s in self._sharings.values()
            if s.document["backup_id"] == backup_id and s.document["from_project_id"] == project_id
        ]
        for sharing_id in doomed:
            self.remove(sharing_id)
        return len(doomed)

    def backup(self, project_id: str, backup_id: str) -> dict[str, Any] | None:
        """The backup document of a backup `project_id` has shared before, if any."""
        self._make_all()
        for stored in self._sharings.values():
            document = stored.document
            if document["backup_id"] == backup_id and document["from_project_id"] == project_id:
                return dict(document.get("backup") or {"id": backup_id})
        return None

    def share(
        self, project_id: str, backup: dict[str, Any], to_project_id: str, *, now: datetime
    ) -> dict[str, Any]:
        """Create a sharing of `backup` from `project_id` to `to_project_id`."""
        self._sequence += 1
        return self.add(
            {
                "id": str(uuid.uuid4()),
                "backup_id": backup["id"],
                "from_project_id": project_id,
                "to_project_id": to_project_id,
                "created_at": _timestamp(now),
                "updated_at": None,
                "backup": backup,
            }
        )


def synthetic_project_ids(count: int, seed: int) -> list[str]:
    """`count` project IDs (32 hex digits), deterministic from `seed`."""
    rng = random.Random(f"projects-{seed}")  # noqa: S311 - test data, not secrets
    return [f"{rng.getrandbits(128):032x}" for _ in range(count)]


def populate(store: Store, project_ids: list[str], per_project: int, seed: int) -> None:
    """Give every project `per_project` sharings of its own backups, deterministic from `seed`.

    Each backup is shared with one other project (or a random outside one),
    so every project also has sharings with it (`share_to_me=true`). The
    sharings are made when first needed: a project's own when it is listed,
    everyone's when anything else is asked. Building 10,000 projects costs
    nothing until they are listed.
    """
    if per_project <= 0:
        return
    for project_index, project_id in enumerate(project_ids):
        store.defer(
            project_id, _Synthetic(project_ids, project_index, per_project, seed), per_project
        )


@attrs.frozen
class _Synthetic:
    """One project's synthetic sharings, made on demand (each project from its own seed)."""

    project_ids: list[str]
    project_index: int
    per_project: int
    seed: int

    def __call__(self, store: Store) -> None:
        project_ids, project_index = self.project_ids, self.project_index
        project_id = project_ids[project_index]
        rng = random.Random(f"sharings-{self.seed}-{project_index}")  # noqa: S311 - test data
        random_bits, uniform = rng.getrandbits, rng.random
        others = len(project_ids) - 1
        start = project_index * _DAY_MICROSECONDS  # microseconds after _EPOCH
        hour = 3_600_000_000
        for index in range(self.per_project):
            created = start + index * 37_000_000 + int(uniform() * 1_000_000)
            backup_id, volume_id, sharing_id = (_uuid(random_bits(128)) for _ in range(3))
            if others:
                target = project_ids[
                    (project_index + 1 + int(uniform() * others)) % len(project_ids)
                ]
            else:
                target = f"{random_bits(128):032x}"
            before = _format_microseconds(created - 2 * hour)
            created_at = _format_microseconds(created)
            updated = "null" if index % 5 == 0 else f'"{_format_microseconds(created + hour)}"'
            description = "null" if index % 3 else f'"nightly backup {index}"'
            # The JSON the service sends, written directly: every value is
            # made here and needs no escaping. orjson would need a dict first.
            encoded = (
                f'{{"backup":{{"availability_zone":"{_ZONES[int(uniform() * 3)]}",'
                f'"container":null,"created_at":"{before}","data_timestamp":"{before}",'
                f'"description":{description},"fail_reason":null,'
                f'"has_dependent_backups":{_JSON_BOOL[index % 4 == 0]},"id":"{backup_id}",'
                f'"is_incremental":{_JSON_BOOL[index % 2 == 1]},'
                f'"name":"backup-{project_index:04d}-{index:05d}",'
                f'"object_count":{1 + int(uniform() * 199)},'
                f'"size":{_SIZES[int(uniform() * len(_SIZES))]},"snapshot_id":null,'
                f'"status":"{_STATUSES[int(uniform() * len(_STATUSES))]}",'
                f'"updated_at":"{_format_microseconds(created - hour)}",'
                f'"volume_id":"{volume_id}","service_metadata":null}},'
                f'"backup_id":"{backup_id}","created_at":"{created_at}",'
                f'"from_project_id":"{project_id}","id":"{sharing_id}",'
                f'"to_project_id":"{target}","updated_at":{updated}}}'
            ).encode()
            store.insert_serialised(
                StoredSharing.serialised(
                    encoded,
                    sharing_id=sharing_id,
                    from_project_id=project_id,
                    to_project_id=target,
                    created_at=created_at,
                )
            )


_JSON_BOOL: Final = {True: "true", False: "false"}
_DAY_MICROSECONDS: Final = 86_400_000_000
_SIZES: Final = (10, 20, 40, 80, 100)
_VERSION_4: Final = (0xF << 76, 0x4 << 76, 0x3 << 62, 0x2 << 62)


def _uuid(number: int) -> str:
    """A version-4 UUID's text from 128 random bits (what uuid.UUID does, faster)."""
    clear_version, version, clear_variant, variant = _VERSION_4
    text = f"{(number & ~clear_version | version) & ~clear_variant | variant:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@functools.cache
def _day(days: int) -> str:
    return (_EPOCH + timedelta(days=days)).strftime("%Y-%m-%d")


def _format_microseconds(since_epoch: int) -> str:
    """The service's timestamp form for `since_epoch` microseconds after _EPOCH."""
    days, rest = divmod(since_epoch, _DAY_MICROSECONDS)
    seconds, micro = divmod(rest, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_day(days)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{micro:06d}"
