"""The inventory database: opening it (locked, migrated) and recording runs project by project.

Every project's rows commit with its outcome in one SQLite transaction, so
a crawl killed at any moment leaves each project either recorded whole or
not at all. A run left unfinished is continued by `start_run(...,
resume=True)` with the same job key; recording a project again in the same
run first undoes what it recorded before, so a project crawled twice (a
resume after a kill between the database's commit and the state file's)
ends up recorded once.

One process writes at a time: a writer holds an exclusive `flock` on the
database file for as long as it is open, and a second writer is refused
with `InventoryBusyError` at once. Readers (audit, diff) need no lock: the
database is in WAL mode, so they read the last committed state while a
crawl writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import operator
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

import attrs
import orjson

from ._schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from vbs_async._models import BackupSharing, Project, ProjectSharings

try:
    import fcntl
except ModuleNotFoundError:  # pragma: no cover - Windows: no lock (said in the README)
    fcntl = None  # type: ignore[assignment]

RUN_STATES: Final = ("running", "complete", "partial", "interrupted")

_SHARING_COLUMNS: Final = (
    "project_id, sharing_id, backup_id, from_project_id, to_project_id, created_at, "
    "updated_at, backup_name, backup_size, backup_volume_id, backup_status, "
    "backup_availability_zone"
)

_JUDGED: Final = (
    "backup_id", "from_project_id", "to_project_id", "backup_name", "backup_size",
    "backup_volume_id", "backup_status", "backup_availability_zone",
)  # fmt: skip
"""The fields whose change starts a new version of a sharing."""
_COLUMN_NAMES: Final = tuple(_SHARING_COLUMNS.split(", "))


def _listed(name: str) -> str:
    """A column of a row in `temp.staging`: its own column, or read from its JSON (`row`)."""
    return f"coalesce(listed.{name}, listed.row ->> {_COLUMN_NAMES.index(name)})"


_LISTED_COLUMNS: Final = ", ".join(
    f"listed.{name}" if name in {"project_id", "sharing_id"} else _listed(name)
    for name in _COLUMN_NAMES
)
"""`_SHARING_COLUMNS` of the rows in `temp.staging`."""
_UNCHANGED: Final = (
    # The row as the listing wrote it equals the version's, written again
    # (most rows of a nightly run): no field is read from the JSON. Else
    # each field that matters is compared (a changed `updated_at` alone
    # extends the version; a row staged one value at a time has no JSON).
    "((listed.row = json_array(" + ", ".join(f"versions.{name}" for name in _COLUMN_NAMES) + ")"
    " AND typeof(versions.backup_size) != 'real') OR ("
    + " AND ".join(f"{_listed(name)} IS versions.{name}" for name in _JUDGED)
    + "))"
)

SharingRow = tuple[
    str, str, str, str, str, str | None, str | None, str | None, int | None, str | None,
    str | None, str | None,
]  # fmt: skip
"""A sharing as the inventory stores it: `_SHARING_COLUMNS`, in order."""


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, kind: str = "IMMEDIATE") -> Iterator[None]:
    """One transaction: committed if the block ends, rolled back if it raises."""
    db.execute(f"BEGIN {kind}")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class InventoryError(Exception):
    """The inventory cannot be used as asked; the message says why, in one line."""


class InventoryBusyError(InventoryError):
    """Another process is writing to the inventory."""


def now() -> str:
    """The time now, as the inventory stores times."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _text(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def sharing_row(
    project_id: str,
    sharing_id: str,
    backup_id: str,
    from_project_id: str,
    to_project_id: str,
    *,
    created_at: str | None = None,
    updated_at: str | None = None,
    name: str | None = None,
    size: int | None = None,
    volume_id: str | None = None,
    status: str | None = None,
    availability_zone: str | None = None,
) -> SharingRow:
    """A sharing's row, as the inventory stores it."""
    return (
        project_id,
        sharing_id,
        backup_id,
        from_project_id,
        to_project_id,
        created_at,
        updated_at,
        name,
        size,
        volume_id,
        status,
        availability_zone,
    )


_SHARING_FIELDS = operator.attrgetter(
    "id", "backup_id", "from_project_id", "to_project_id", "created_at", "updated_at"
)
_ROW_FIELDS = operator.attrgetter(
    "id", "backup_id", "from_project_id", "to_project_id", "created_at", "updated_at",
    "backup.name", "backup.size", "backup.volume_id", "backup.status", "backup.availability_zone",
)  # fmt: skip
"""A sharing's fields in a `SharingRow`, after its project (`_SHARING_FIELDS` without a backup)."""
_NO_BACKUP: Final = (None, None, None, None, None)


def encode_page(project_id: str, sharings: Iterable[BackupSharing]) -> tuple[bytes, int]:
    """The rows of sharings a listing of `project_id` returned, as one JSON array; how many.

    A JSON array of `SharingRow`s (orjson writes the timestamps as
    `datetime.isoformat` does, for the UTC times the client decodes), so that
    SQLite reads a page's rows in one statement (`json_each`), not one call
    per row: a writer thread then holds Python's lock once per statement.
    """
    rows = [
        (project_id, *_ROW_FIELDS(sharing))
        if sharing.backup is not None
        else (project_id, *_SHARING_FIELDS(sharing), *_NO_BACKUP)
        for sharing in sharings
    ]
    return orjson.dumps(rows), len(rows)


_ROW_VALUES: Final = ", ".join(f"value ->> {index}" for index in range(12))
"""The columns `_SHARING_COLUMNS` of one row of an encoded page (`json_each`)."""
_ROW_PARAMETERS: Final = ", ".join("?" * 12)
_NUL: Final = b"\\u0000"


def _joined(pages: Iterable[bytes]) -> bytes:
    """Several encoded pages as one JSON array."""
    return b"[" + b",".join(page[1:-1] for page in pages if len(page) > 2) + b"]"  # noqa: PLR2004


def _insert_rows(db: sqlite3.Connection, into: str, values: str, encoded: bytes) -> None:
    """`INSERT ... into (_SHARING_COLUMNS ...) SELECT values` for each row of `encoded`.

    `values` names each row's columns as `{row}` and `{parameters}` (filled with
    `_ROW_VALUES` for `json_each`, `_ROW_PARAMETERS` for one row at a time).
    SQLite's JSON functions end a text at a NUL character: a page holding one
    (a hostile server's) is inserted row by row instead, each value as it is.
    """
    if _NUL in encoded:
        db.executemany(
            f"{into} VALUES ({values.format(row=_ROW_PARAMETERS)})", orjson.loads(encoded)
        )
    else:
        # Bound as text: newer SQLite reads a BLOB as its binary JSON form.
        db.execute(
            f"{into} SELECT {values.format(row=_ROW_VALUES)} FROM json_each(?)",  # noqa: S608 - ours
            (encoded.decode(),),
        )


def _stage_rows(db: sqlite3.Connection, encoded: bytes) -> None:
    """Put the rows of `encoded` in `temp.staging`: each row's JSON and key, nothing parsed.

    A nightly run finds most rows unchanged by comparing that JSON whole
    (`_UNCHANGED`): reading twelve fields out of every row's JSON would
    cost SQLite most of a run's work. A page holding a NUL character (see
    `_insert_rows`) is staged one value at a time instead, with no JSON.
    """
    if _NUL in encoded:
        _insert_rows(db, f"INSERT INTO temp.staging ({_SHARING_COLUMNS})", "{row}", encoded)
    else:
        db.execute(
            "INSERT INTO temp.staging (project_id, sharing_id, row) "
            "SELECT value ->> 0, value ->> 1, value FROM json_each(?)",
            (encoded.decode(),),
        )


HELD_ROWS: Final = 5_000
"""A project's rows kept in memory before they go to the temporary table."""


@attrs.frozen
class Run:
    """One recorded crawl.

    Attributes:
        run_id: Its number; later runs have higher numbers.
        started_at: When it started (ISO 8601, UTC).
        finished_at: When it ended, or None while running (or killed).
        state: `running`, `complete`, `partial` or `interrupted`.
        job_key: What makes two runs the same job.
        account: The account (domain) of its projects, where known.
        region: The region it crawled, where known.
        whole_account: Whether its project list is the whole account.
        listing: The listing options (filters) of the job.
        options: The rest of the job, as given.
    """

    run_id: int
    started_at: str
    finished_at: str | None
    state: str
    job_key: str
    account: str | None
    region: str | None
    whole_account: bool
    listing: dict[str, Any]
    options: dict[str, Any]


@attrs.frozen
class ProjectOutcome:
    """A project of a run and how its listing went.

    Attributes:
        project_id: The project.
        outcome: `ok`, `failed`, `not_crawled` or `known` (of the account, not crawled by the job).
        reason: Why it failed, for `failed`.
        region: Its region, where known.
        account: Its account (domain), where known.
        name: Its name, where known.
        sharings: Sharings listed, for `ok`.
    """

    project_id: str
    outcome: str
    reason: str | None = None
    region: str | None = None
    account: str | None = None
    name: str | None = None
    sharings: int | None = None


class Inventory:
    """An inventory database of crawls (SQLite, one file).

    `Inventory(path, write=True)` creates or migrates it and takes the
    writer's lock; `Inventory(path)` opens an existing one to read. Use it
    as a context manager, or call `close()`.

    Attributes:
        path: The database file.
        writable: Whether this object may record runs.

    Raises:
        InventoryError: The file is not an inventory, is of a newer schema
            version, is missing (to read), or cannot be opened.
        InventoryBusyError: Another process is writing to it (to write).
    """

    def __init__(self, path: str | os.PathLike[str], *, write: bool = False) -> None:
        self.path = Path(path)
        self.writable = write
        self._lock: Any = None
        if not write and not self.path.is_file():
            raise InventoryError(f"no inventory at {self.path}: record one with crawl --db")
        if write:
            self._acquire()
        self._db = self._connect(str(self.path))
        try:
            try:
                self._prepare()
            except sqlite3.OperationalError as exc:
                if write or not self._unchangeable(exc):
                    raise
                # A database in a folder nobody can write to, without a write-ahead
                # log: no process can be changing it, and SQLite cannot make the
                # shared-memory file it reads a WAL database through. Read the
                # file as it is.
                self._db.close()
                self._db = self._connect(f"{self.path.resolve().as_uri()}?immutable=1")
                self._prepare()
        except sqlite3.OperationalError as exc:
            self.close()
            if "locked" in str(exc):
                raise InventoryBusyError(
                    f"{self.path} is locked by another program (a crawl upgrading its schema, "
                    "or an open transaction, e.g. an sqlite3 shell): run again when it ends"
                ) from None
            if exc.sqlite_errorname in _NO_FOLDER and not _writable_folder(self.path):
                raise InventoryError(
                    f"cannot use {self.path}: its folder is not writable (SQLite keeps its "
                    "journal beside the database); it was left as it is"
                ) from None
            raise InventoryError(f"cannot use {self.path}: {exc}") from None
        except BaseException:
            self.close()
            raise

    def _connect(self, target: str) -> sqlite3.Connection:
        try:
            # Any thread may use it, one at a time (the command's writer thread).
            return sqlite3.connect(
                target,
                isolation_level=None,
                check_same_thread=False,
                uri=target.startswith("file:"),
            )
        except sqlite3.Error as exc:
            self._release()
            raise InventoryError(f"cannot open {self.path}: {exc}") from None

    def _unchangeable(self, exc: sqlite3.OperationalError) -> bool:
        """Whether a reader's failure is a folder no one can write into, with no log in it."""
        log = Path(f"{self.path}-wal")
        return (
            exc.sqlite_errorname in _NO_FOLDER
            and not _writable_folder(self.path)
            and not (log.exists() and log.stat().st_size)
        )

    def _acquire(self) -> None:
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise InventoryError(f"cannot open {self.path}: {exc.strerror}") from None
        if fcntl is not None:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(descriptor)
                raise InventoryBusyError(
                    f"another vbs-async process is writing to {self.path}: wait for it to end"
                ) from None
        self._lock = descriptor

    def _release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = None

    def _prepare(self) -> None:
        db = self._db
        try:
            application_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.OperationalError:
            raise  # locked, or cannot be opened: not a judgement of the file
        except sqlite3.DatabaseError:
            raise InventoryError(
                f"{self.path} is not a vbs-async inventory (not an SQLite database); "
                "it was left as it is"
            ) from None
        if application_id != APPLICATION_ID and (application_id != 0 or tables):
            raise InventoryError(
                f"{self.path} is not a vbs-async inventory (another SQLite database); "
                "it was left as it is"
            )
        if version == 0 and tables:
            raise InventoryError(
                f"{self.path} has vbs-async's tables but no schema version (user_version 0): "
                "another program changed it; restore a copy, or record into a new file"
            )
        if version > SCHEMA_VERSION:
            raise InventoryError(
                f"{self.path} has schema version {version}, newer than this vbs-async's "
                f"({SCHEMA_VERSION}): upgrade vbs-async"
            )
        if version < SCHEMA_VERSION:
            if self.writable:
                self._migrate(version)
            elif version == 0:
                raise InventoryError(
                    f"{self.path} is empty: record a crawl with crawl --db to create or upgrade it"
                )
            # Else read as it is: readers read `runs`, `run_projects` and
            # `sharings` (a table in version 1, a view since), the same in every version.
        if self.writable:
            db.execute("PRAGMA journal_mode = WAL")
            # WAL with NORMAL survives a killed process (not a power cut) and
            # commits without waiting for the disk: a project per transaction
            # then costs little more than its rows.
            db.execute("PRAGMA synchronous = NORMAL")
            # A crawl writes a project's rows at a place of its own in the
            # tree: a larger cache keeps the pages it went through. A batch
            # of projects dirties pages of its own, so checkpoints every few
            # batches copy about as much as one at the end would, but in the
            # writer's thread while the crawl goes on: what is left for
            # `close()` (the crawl's thread, after the crawl) stays small.
            db.execute("PRAGMA cache_size = -32768")
            db.execute("PRAGMA wal_autocheckpoint = 1024")
            db.execute("PRAGMA temp.journal_mode = OFF")
            # Rows wait here while their project is listed: each as its page's
            # JSON wrote it (`row`), with its key; or, for a page SQLite's JSON
            # functions cannot read, the columns of `sharings` (see `_stage_rows`).
            db.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS staging AS SELECT {_SHARING_COLUMNS}, "  # noqa: S608
                "NULL AS row FROM versions WHERE 0"
            )
            db.execute(
                "CREATE INDEX IF NOT EXISTS temp.staging_by_key ON staging (project_id, sharing_id)"
            )
            # The projects a transaction records by merging, each with its previous listed run.
            db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS merging "
                "(project_id TEXT PRIMARY KEY, previous INTEGER) WITHOUT ROWID"
            )
        db.execute("PRAGMA foreign_keys = ON")

    def _migrate(self, version: int) -> None:
        db = self._db
        with _transaction(db, "EXCLUSIVE"):
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](db)
                version += 1
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (read what you like; write through `start_run`)."""
        return self._db

    def close(self) -> None:
        """Close the database and release the writer's lock."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------

    def runs(self) -> list[Run]:
        """Every recorded run, oldest first."""
        rows = self._db.execute(
            "SELECT run_id, started_at, finished_at, state, job_key, account, region, "
            "whole_account, listing, options FROM runs ORDER BY run_id"
        ).fetchall()
        return [_run(row) for row in rows]

    def run(self, run_id: int) -> Run:
        """One run.

        Raises:
            InventoryError: There is no such run.
        """
        row = self._db.execute(
            "SELECT run_id, started_at, finished_at, state, job_key, account, region, "
            "whole_account, listing, options FROM runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise InventoryError(f"{self.path} has no run {run_id}")
        return _run(row)

    def projects(self, run_id: int) -> list[ProjectOutcome]:
        """The projects of a run (the job's, in order, then the account's others)."""
        rows = self._db.execute(
            "SELECT project_id, outcome, reason, region, account, name, sharings "
            "FROM run_projects WHERE run_id = ? ORDER BY position",
            (run_id,),
        ).fetchall()
        return [ProjectOutcome(*row) for row in rows]

    # -- writing ----------------------------------------------------------------------

    def start_run(
        self,
        project_ids: Sequence[str],
        *,
        job_key: str | None = None,
        account: str | None = None,
        region: str | None = None,
        listing: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        known_projects: Iterable[Project] = (),
        whole_account: bool = False,
        resume: bool = False,
        project_accounts: Mapping[str, str | None] | None = None,
        resume_finished: bool = False,
    ) -> RunRecorder:
        """Start recording a crawl of `project_ids`, or continue the unfinished one.

        Args:
            project_ids: The job's projects, in order.
            job_key: What makes two runs the same job; by default the
                projects, account, region and listing.
            account: The account (domain) the projects belong to, if known.
            region: The region crawled, if known.
            listing: The listing options (filters); every run of a database
                must have the same.
            options: Anything else worth keeping about the job (JSON).
            known_projects: Projects IAM lists for the account (names and
                regions of the job's; the others are recorded as `known`).
            whole_account: The project list is the whole account.
            resume: Continue the job's latest run if it is unfinished
                (whatever other jobs ran since), else start a new one.
            project_accounts: Each job project's account, where it differs
                from `account` (None: unknown); by default `account`.
            resume_finished: With `resume`, continue the job's latest run
                even if it ended (a resume of a state file that run wrote).

        Raises:
            InventoryError: The database holds runs of another listing, or
                was opened to read.
        """
        if not self.writable:
            raise InventoryError(f"{self.path} was opened to read: open it with write=True")
        listing_text = orjson.dumps(dict(listing or {}), option=orjson.OPT_SORT_KEYS).decode()
        ids = list(dict.fromkeys(project_ids))
        given = dict(project_accounts or {})
        accounts = {p: given.get(p, account) for p in ids}
        if job_key is None:
            job_key = hashlib.sha256(
                orjson.dumps([ids, account, region, listing_text, whole_account])
            ).hexdigest()
        first = self._db.execute("SELECT listing FROM runs ORDER BY run_id LIMIT 1").fetchone()
        if first is not None and first[0] != listing_text:
            raise InventoryError(
                f"{self.path} records crawls listed with {first[0]}, not {listing_text}: "
                "use one database per kind of listing"
            )
        continued = self.resumable_run(job_key, finished=resume_finished) if resume else None
        if continued is not None:
            self._follow_project_list(continued, ids, region, accounts)
            return RunRecorder(self, continued, resumed=True)
        stamp = now()
        db = self._db
        with _transaction(db):
            # Only this job's runs left running (killed) end here: another
            # job's (another account's, sharing the database) stays
            # resumable by its own --resume.
            db.execute(
                "UPDATE runs SET state = 'interrupted', finished_at = ? "
                "WHERE state = 'running' AND job_key = ?",
                (stamp, job_key),
            )
            run_id = db.execute(
                "INSERT INTO runs (started_at, job_key, account, region, listing, options, "
                "whole_account) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    stamp,
                    job_key,
                    account,
                    region,
                    listing_text,
                    orjson.dumps(dict(options or {}), default=str).decode(),
                    int(whole_account),
                ),
            ).lastrowid
            known = {p.id: p for p in known_projects}
            rows = []
            for position, project_id in enumerate(ids):
                project = known.pop(project_id, None)
                rows.append(
                    (
                        run_id,
                        project_id,
                        position,
                        "not_crawled",
                        project.region if project is not None else region,
                        accounts[project_id],
                        None if project is None else project.name,
                    )
                )
            rows.extend(
                (run_id, p.id, len(ids) + index, "known", p.region, account, p.name)
                for index, p in enumerate(known.values())
            )
            db.executemany(
                "INSERT INTO run_projects (run_id, project_id, position, outcome, region, "
                "account, name) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        assert run_id is not None  # noqa: S101 - an INSERT has a row id
        return RunRecorder(self, run_id, resumed=False)

    def resumable_run(self, job_key: str, *, finished: bool = False) -> int | None:
        """The job's latest run if it is unfinished (or, with `finished`, any state); else None."""
        row = self._db.execute(
            "SELECT run_id, state FROM runs WHERE job_key = ? ORDER BY run_id DESC LIMIT 1",
            (job_key,),
        ).fetchone()
        if row is None or (row[1] != "running" and not (finished and row[1] != "interrupted")):
            return None
        return int(row[0])

    def _follow_project_list(
        self, run_id: int, ids: list[str], region: str | None, accounts: Mapping[str, str | None]
    ) -> None:
        """A resumed run's projects follow the job's list (`--all-projects` sees it change).

        New projects are added, not crawled yet; projects no longer listed
        are left out unless the run recorded them already.
        """
        db = self._db
        with _transaction(db):
            known = dict(
                db.execute(
                    "SELECT project_id, outcome FROM run_projects WHERE run_id = ?", (run_id,)
                ).fetchall()
            )
            wanted = set(ids)
            db.executemany(
                "DELETE FROM run_projects WHERE run_id = ? AND project_id = ?",
                [
                    (run_id, project_id)
                    for project_id, outcome in known.items()
                    if outcome == "not_crawled" and project_id not in wanted
                ],
            )
            start = db.execute(
                "SELECT coalesce(max(position), -1) + 1 FROM run_projects WHERE run_id = ?",
                (run_id,),
            ).fetchone()[0]
            added = [project_id for project_id in ids if project_id not in known]
            db.executemany(
                "INSERT INTO run_projects (run_id, project_id, position, outcome, region, "
                "account) VALUES (?, ?, ?, 'not_crawled', ?, ?)",
                [
                    (run_id, project_id, start + index, region, accounts[project_id])
                    for index, project_id in enumerate(added)
                ],
            )


_NO_FOLDER: Final = frozenset({"SQLITE_CANTOPEN", "SQLITE_READONLY_DIRECTORY"})
"""SQLite's errors when it cannot make its files (`-wal`, `-shm`, `-journal`) beside a database."""


def _writable_folder(path: Path) -> bool:
    return os.access(path.resolve().parent, os.W_OK | os.X_OK)


def _run(row: tuple[Any, ...]) -> Run:
    return Run(
        run_id=row[0],
        started_at=row[1],
        finished_at=row[2],
        state=row[3],
        job_key=row[4],
        account=row[5],
        region=row[6],
        whole_account=bool(row[7]),
        listing=orjson.loads(row[8]),
        options=orjson.loads(row[9]),
    )


class RunRecorder:
    """Records one run's projects as they end.

    Pages may arrive for several projects at once (`add_page`); each
    project's rows wait in memory (beyond `HELD_ROWS`, in a temporary table,
    on disk beyond SQLite's cache) and are recorded, with its outcome, in
    one transaction by `commit_project` (or dropped by `fail_project`). A
    project listed for the first time, with its rows in memory, is inserted
    as it is; otherwise its rows are merged with its versions in SQL.

    Attributes:
        run_id: The run being recorded.
        resumed: Whether this continues a run recorded before.
    """

    def __init__(self, inventory: Inventory, run_id: int, *, resumed: bool) -> None:
        self._inventory = inventory
        self._db = inventory.connection
        self.run_id = run_id
        self.resumed = resumed
        self._outcomes = self.outcomes()
        self._ended = (
            inventory.connection.execute(
                "SELECT state FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            != "running"
        )  # a finished run, continued: ended again only if something is recorded
        self._broken: str | None = None  # the write error after which nothing is committed
        # Each project's pages kept in memory (encoded, see `encode_page`) and their rows.
        self._held: dict[str, list[bytes]] = {}
        self._held_rows: dict[str, int] = {}
        self._staged: set[str] = set()
        # The digest of each project's rows kept so far (see `_listing_digest`).
        self._digests: dict[str, hashlib._Hash] = {}
        # Each project's latest listed run before this one (its versions
        # that ended there are the ones this run may extend), with that
        # listing's digest and sharings (SQLite takes the bare columns of
        # a `max()` query from the row of the maximum).
        self._previous: dict[str, int] = {}
        self._previous_listing: dict[str, tuple[bytes | None, int | None]] = {}
        for project_id, previous, digest, sharings in self._db.execute(
            "SELECT project_id, max(run_id), listing_digest, sharings FROM run_projects "
            "WHERE outcome = 'ok' AND run_id < ? GROUP BY project_id",
            (run_id,),
        ):
            self._previous[project_id] = previous
            self._previous_listing[project_id] = (digest, sharings)

    def outcomes(self) -> dict[str, str]:
        """The outcome so far of each project of the job."""
        return dict(
            self._db.execute(
                "SELECT project_id, outcome FROM run_projects "
                "WHERE run_id = ? AND outcome != 'known'",
                (self.run_id,),
            ).fetchall()
        )

    def add_page(self, project_id: str, sharings: Iterable[BackupSharing]) -> None:
        """Keep sharings of `project_id`'s listing until it ends."""
        self.add_encoded(project_id, *encode_page(project_id, sharings))

    def add_rows(self, rows: Iterable[SharingRow]) -> None:
        """Keep rows (see `sharing_row`) until their project ends."""
        by_project: dict[str, list[SharingRow]] = {}
        for row in rows:
            by_project.setdefault(row[0], []).append(row)
        for project_id, kept in by_project.items():
            self.add_encoded(project_id, orjson.dumps(kept), len(kept))

    def add_encoded(self, project_id: str, encoded: bytes, rows: int) -> None:
        """Keep a page of `project_id` that `encode_page` encoded (`rows` sharings).

        `add_page` in two halves, so that the encoding may happen on one
        thread (the crawl's) and the keeping, which may write, on another.
        """
        # A project's rows wait in memory up to `HELD_ROWS`, then in the
        # temporary table (bounded memory for a project of any size).
        held = self._held.get(project_id)
        if held is None:
            held = self._held[project_id] = []
            self._held_rows[project_id] = 0
        held.append(encoded)
        self._held_rows[project_id] += rows
        digest = self._digests.get(project_id)
        if digest is None:
            digest = self._digests[project_id] = hashlib.sha256()
        if len(encoded) > 2:  # noqa: PLR2004 - not `[]`
            # The rows, each followed by a comma: the same bytes however the
            # listing was cut into pages (hashlib lets go of Python's lock).
            digest.update(encoded[1:-1])
            digest.update(b",")
        if self._held_rows[project_id] >= HELD_ROWS or project_id in self._staged:
            self._stage([project_id])

    def _stage(self, project_ids: Sequence[str]) -> None:
        """Move the projects' rows held in memory to the temporary table."""
        pages: list[bytes] = []
        for project_id in project_ids:
            pages.extend(self._held.pop(project_id, ()))
            self._held_rows.pop(project_id, None)
            self._staged.add(project_id)
        if pages:
            with self._breaking():
                _stage_rows(self._db, _joined(pages))

    @contextlib.contextmanager
    def _breaking(self) -> Iterator[None]:
        """A write error poisons the recorder: rows may be missing, so nothing more commits."""
        try:
            yield
        except sqlite3.Error as exc:
            self._broken = self._broken or str(exc)
            raise

    def _check_whole(self) -> None:
        if self._broken is not None:
            raise InventoryError(
                f"run {self.run_id} records nothing more after a write error "
                f"({self._broken}): the projects not committed are listed again on --resume"
            )

    def record(self, result: ProjectSharings) -> None:
        """Record one `VBSClient.crawl` result: its sharings, or its failure."""
        if result.error is not None:
            self.fail_project(result.project_id, str(result.error))
            return
        self.add_page(result.project_id, result.sharings)
        self.commit_project(result.project_id)

    def commit_project(self, project_id: str) -> int:
        """Record `project_id` as listed, with the sharings kept for it; how many.

        Raises:
            InventoryError: The project is not one of the run's.
        """
        return self.commit_projects([(project_id, None)])[0]

    def fail_project(self, project_id: str, reason: str) -> None:
        """Record that listing `project_id` failed, and why; drop what was kept for it.

        Raises:
            InventoryError: The project is not one of the run's.
        """
        self.commit_projects([(project_id, reason)])

    def commit_projects(self, outcomes: Sequence[tuple[str, str | None]]) -> list[int]:
        """Record several projects in one transaction.

        After any write error (a full disk) the recorder commits nothing
        more: a project whose pages were not all kept must not be recorded
        as listed.

        `(project_id, None)` records one listed, with the sharings kept for
        it; `(project_id, reason)` one that failed. Each project is recorded
        whole or not at all; one transaction for many projects costs a crawl
        less than one each. Returns the sharings recorded for each.

        Raises:
            InventoryError: A project is not one of the run's, or a write
                failed before (nothing is recorded).
        """
        self._check_whole()
        for project_id, _ in outcomes:
            self._check_member(project_id)
        last = dict(outcomes)  # a project given twice is recorded as its last entry says
        listed: dict[str, int] = {}
        self._ended = False
        digests = {
            project_id: self._listing_digest(project_id)
            for project_id, reason in last.items()
            if reason is None
        }
        with self._breaking(), _transaction(self._db):
            fresh: list[str] = []
            merged: list[str] = []
            unchanged: list[str] = []
            for project_id, reason in last.items():
                self._undo(project_id, self._previous.get(project_id))
                if reason is not None:
                    self._record_failed(project_id, reason)
                elif self._previous_listing.get(project_id, (None,))[0] == digests[project_id]:
                    unchanged.append(project_id)
                elif self._previous.get(project_id) is None and project_id not in self._staged:
                    fresh.append(project_id)
                else:
                    merged.append(project_id)
            if fresh:
                listed.update(self._record_fresh(fresh))
            if merged:
                listed.update(self._record_merged(merged))
            listed.update(self._record_unchanged(unchanged, digests))
        for project_id, reason in last.items():
            self._outcomes[project_id] = "ok" if reason is None else "failed"
            self.drop_project(project_id)
        return [listed.get(project_id, 0) for project_id, _ in outcomes]

    def _listing_digest(self, project_id: str) -> bytes:
        """The SHA-256 of the rows kept for a project (`encode_page`'s JSON, the pages joined)."""
        digest = self._digests.get(project_id)
        return (hashlib.sha256() if digest is None else digest).digest()

    def _record_unchanged(
        self, project_ids: list[str], digests: dict[str, bytes]
    ) -> dict[str, int]:
        """Record each listed project's digest; a project listed as before, by that alone.

        A listing whose rows are, byte for byte, those of the project's
        previous listing leaves its current versions as they are (merging it
        would find every row unchanged and end none): its `run_projects` row
        is all it writes, whatever its size.
        """
        now_text = now()
        self._db.executemany(
            "UPDATE run_projects SET outcome = 'ok', reason = NULL, recorded_at = ?, "
            "sharings = ?, listing_digest = ? WHERE run_id = ? AND project_id = ?",
            [
                (now_text, self._previous_listing[p][1], digests[p], self.run_id, p)
                for p in project_ids
            ],
        )
        unchanged = set(project_ids)
        self._db.executemany(
            "UPDATE run_projects SET listing_digest = ? WHERE run_id = ? AND project_id = ?",
            [(d, self.run_id, p) for p, d in digests.items() if p not in unchanged],
        )
        return {p: self._previous_listing[p][1] or 0 for p in project_ids}

    def _record_fresh(self, project_ids: list[str]) -> dict[str, int]:
        """Record projects listed for the first time, every row in memory: a few statements in all.

        Nothing to extend: their rows are inserted as they are, in order (the
        last of a repeated ID wins), all the projects' at once.
        """
        db = self._db
        run_id = int(self.run_id)  # an integer, written into the statement as it is
        _insert_rows(
            db,
            f"INSERT OR REPLACE INTO versions ({_SHARING_COLUMNS}, first_seen, last_seen)",
            f"{{row}}, {run_id}, NULL",
            _joined(page for project_id in project_ids for page in self._held.get(project_id, ())),
        )
        keys = {"run": run_id, "projects": orjson.dumps(project_ids).decode(), "now": now()}
        # A project never listed before has no rows but this run's.
        db.execute(
            "UPDATE run_projects SET outcome = 'ok', reason = NULL, recorded_at = :now, "
            "sharings = (SELECT count(*) FROM versions "
            " WHERE versions.project_id = run_projects.project_id) "
            "WHERE run_id = :run AND project_id IN (SELECT value FROM json_each(:projects))",
            keys,
        )
        return dict(
            db.execute(
                "SELECT project_id, sharings FROM run_projects WHERE run_id = :run "
                "AND project_id IN (SELECT value FROM json_each(:projects))",
                keys,
            ).fetchall()
        )

    def _record_merged(self, project_ids: list[str]) -> dict[str, int]:
        """Record projects listed before (or with rows on disk): merged with their versions, in SQL.

        A version current at its project's previous listing stays open (its
        row unwritten) when this listing shows it unchanged, and ends at that
        listing otherwise; any other row starts a new version (the last of a
        repeated ID wins). Set-based, a few statements for all the projects
        at once.
        """
        db = self._db
        self._stage(project_ids)
        db.execute("DELETE FROM temp.merging")
        db.execute(
            "INSERT INTO temp.merging (project_id, previous) "
            "SELECT value ->> 0, value ->> 1 FROM json_each(?)",
            (orjson.dumps([(p, self._previous.get(p)) for p in project_ids]).decode(),),
        )
        keys = {"run": int(self.run_id), "now": now()}
        db.execute(
            "UPDATE versions SET last_seen = (SELECT previous FROM temp.merging AS merging"  # noqa: S608
            "  WHERE merging.project_id = versions.project_id) "
            "WHERE project_id IN (SELECT project_id FROM temp.merging WHERE previous IS NOT NULL)"
            " AND last_seen IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM temp.staging AS listed"
            "  WHERE listed.project_id = versions.project_id"
            f"  AND listed.sharing_id = versions.sharing_id AND {_UNCHANGED})",
            keys,
        )
        db.execute(
            f"INSERT OR REPLACE INTO versions ({_SHARING_COLUMNS}, first_seen, last_seen) "  # noqa: S608
            f"SELECT {_LISTED_COLUMNS}, :run, NULL FROM temp.staging AS listed "
            "WHERE listed.project_id IN (SELECT project_id FROM temp.merging) AND NOT EXISTS ("
            " SELECT 1 FROM versions WHERE versions.project_id = listed.project_id"
            " AND versions.sharing_id = listed.sharing_id AND versions.last_seen IS NULL)"
            " ORDER BY listed.rowid",
            keys,
        )
        db.execute(
            "UPDATE run_projects SET outcome = 'ok', reason = NULL, recorded_at = :now, "
            "sharings = (SELECT count(DISTINCT sharing_id) FROM temp.staging"
            " WHERE staging.project_id = run_projects.project_id) "
            "WHERE run_id = :run AND project_id IN (SELECT project_id FROM temp.merging)",
            keys,
        )
        listed = dict(
            db.execute(
                "SELECT project_id, sharings FROM run_projects WHERE run_id = :run "
                "AND project_id IN (SELECT project_id FROM temp.merging)",
                keys,
            ).fetchall()
        )
        self._staged.difference_update(project_ids)
        if self._staged:  # big projects still being listed keep their rows
            db.execute(
                "DELETE FROM temp.staging WHERE project_id IN (SELECT project_id FROM temp.merging)"
            )
        else:  # emptied whole, without a look at each row and its index entry
            db.execute("DELETE FROM temp.staging")
        return listed

    def _record_failed(self, project_id: str, reason: str) -> None:
        self._db.execute(
            "UPDATE run_projects SET outcome = 'failed', reason = ?, sharings = NULL, "
            "recorded_at = ? WHERE run_id = ? AND project_id = ?",
            (reason, now(), self.run_id, project_id),
        )

    def drop_project(self, project_id: str) -> None:
        """Forget what was kept for `project_id` without recording an outcome."""
        self._held.pop(project_id, None)
        self._held_rows.pop(project_id, None)
        self._digests.pop(project_id, None)
        if project_id in self._staged:
            self._staged.discard(project_id)
            self._db.execute("DELETE FROM temp.staging WHERE project_id = ?", (project_id,))

    def finish(self) -> str:
        """End the run: `complete` if every project was listed, else `partial`.

        Raises:
            InventoryError: A write failed earlier (the run stays resumable).
        """
        self._check_whole()
        db = self._db
        if self._ended:  # a finished run resumed with nothing to do: left as it is
            return str(
                db.execute("SELECT state FROM runs WHERE run_id = ?", (self.run_id,)).fetchone()[0]
            )
        with self._breaking(), _transaction(db):
            unlisted = db.execute(
                "SELECT count(*) FROM run_projects WHERE run_id = ? "
                "AND outcome IN ('failed', 'not_crawled')",
                (self.run_id,),
            ).fetchone()[0]
            state = "partial" if unlisted else "complete"
            db.execute(
                "UPDATE runs SET state = ?, finished_at = ? WHERE run_id = ?",
                (state, now(), self.run_id),
            )
        db.execute("DELETE FROM temp.staging")
        self._held.clear()
        self._held_rows.clear()
        self._digests.clear()
        self._staged.clear()
        return state

    def _check_member(self, project_id: str) -> None:
        if project_id not in self._outcomes:
            raise InventoryError(f"{project_id} is not a project of run {self.run_id}")

    def _undo(self, project_id: str, previous: int | None) -> None:
        """Take back what this run recorded for the project, if anything."""
        if self._outcomes.get(project_id) == "not_crawled":
            return  # nothing recorded yet in this run
        db = self._db
        db.execute(
            "DELETE FROM versions WHERE project_id = ? AND first_seen = ?",
            (project_id, self.run_id),
        )
        if previous is not None:
            # A version this run ended (at the previous listing) is current again.
            db.execute(
                "UPDATE versions SET last_seen = NULL WHERE project_id = ? AND last_seen = ?",
                (project_id, previous),
            )
