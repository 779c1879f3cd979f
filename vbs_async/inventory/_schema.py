"""The inventory database's schema, its version, and the way from one version to the next.

The schema is versioned with SQLite's `PRAGMA user_version`; `PRAGMA
application_id` marks the file as a vbs-async inventory, so that another
SQLite file given by mistake is refused, not written into. Opening a file
of an older version applies the migrations in `MIGRATIONS` in one
transaction; a file of a newer version is refused (it was written by a
newer vbs-async).

Tables (version 1):

- `runs`: one row per crawl recorded. `run_id` orders them; `started_at`,
  `finished_at` (ISO 8601 UTC); `state` (`running`, `complete`: every
  project of the job listed, `partial`: some failed or were not crawled,
  `interrupted`: the run ended without finishing and was not resumed);
  `job_key` (what makes two runs the same job, for `--resume`);
  `account` (the account, or domain, the job's projects belong to, where
  known); `region`; `listing` (the listing options as JSON: one database
  holds one kind of listing); `options` (the rest of the job as JSON);
  `whole_account` (1 when the project list is the whole account,
  `--all-projects`).
- `run_projects`: every project of each run: `outcome` is `ok`, `failed`
  (with `reason`), `not_crawled`, or `known` (a project of the account
  that IAM lists but the job does not crawl: another region, disabled);
  `region`, `account` and `name` where known; `sharings` listed;
  `recorded_at`.
- `sharings`: one row per version of a sharing as a project's listing
  showed it: the sharing's and its backup's fields, and `first_seen` /
  `last_seen`, the first
  and last runs of the version; its key is `(project_id, sharing_id,
  first_seen)`, one B-tree (`WITHOUT ROWID`) in the order a diff reads it.
  A version covers the runs between them in
  which its project was listed (`ok`); a sharing that changes, or comes
  back after it was gone, starts a new version.

Version 2: the versions are the table `versions` (the same columns), in
which `last_seen` is NULL while a version is current: it ends at its
project's latest `ok` listing (`LATEST_LISTING`), so a run that lists a
project unchanged writes none of its rows (version 1 rewrote every row's
`last_seen` at every run). `sharings` is a view of `versions` with
`last_seen` filled in: it reads as version 1's table did. The migration
from version 1 empties `last_seen` of each version that ended at its
project's latest listing.

Version 3: `run_projects.listing_digest`, the SHA-256 of a listed
project's rows as the run recorded them (their JSON, see
`_store.encode_page`, whatever the pages). A project whose next listing has
the same digest is recorded by its `run_projects` row alone: its current
versions are exactly that listing's rows, so none is read or written. The
migration from version 2 adds the column, empty (the next listing of each
project is then merged row by row, once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

SCHEMA_VERSION: Final = 3
"""The schema version this vbs-async writes (`PRAGMA user_version`)."""

APPLICATION_ID: Final = 0x56425341
"""`PRAGMA application_id` of an inventory: `VBSA`."""

_VERSION_1: Final = """
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    state TEXT NOT NULL DEFAULT 'running'
        CHECK (state IN ('running', 'complete', 'partial', 'interrupted')),
    job_key TEXT NOT NULL,
    account TEXT,
    region TEXT,
    listing TEXT NOT NULL DEFAULT '{}',
    options TEXT NOT NULL DEFAULT '{}',
    whole_account INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE run_projects (
    run_id INTEGER NOT NULL REFERENCES runs (run_id),
    project_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'not_crawled', 'known')),
    reason TEXT,
    region TEXT,
    account TEXT,
    name TEXT,
    sharings INTEGER,
    recorded_at TEXT,
    PRIMARY KEY (run_id, project_id)
) WITHOUT ROWID;
CREATE INDEX run_projects_by_project ON run_projects (project_id, outcome, run_id);
CREATE TABLE sharings (
    project_id TEXT NOT NULL,
    sharing_id TEXT NOT NULL,
    first_seen INTEGER NOT NULL REFERENCES runs (run_id),
    last_seen INTEGER NOT NULL REFERENCES runs (run_id),
    backup_id TEXT NOT NULL,
    from_project_id TEXT NOT NULL,
    to_project_id TEXT NOT NULL,
    created_at TEXT,
    updated_at TEXT,
    backup_name TEXT,
    backup_size INTEGER,
    backup_volume_id TEXT,
    backup_status TEXT,
    backup_availability_zone TEXT,
    PRIMARY KEY (project_id, sharing_id, first_seen)
) WITHOUT ROWID;
"""


_VERSION_COLUMNS: Final = (
    "backup_id, from_project_id, to_project_id, created_at, updated_at, backup_name, "
    "backup_size, backup_volume_id, backup_status, backup_availability_zone"
)

LATEST_LISTING: Final = (
    "(SELECT max(run_id) FROM run_projects "
    "WHERE run_projects.project_id = versions.project_id AND outcome = 'ok')"
)
"""The latest run that listed the project of a row of `versions`: the end of an open version."""

_VERSION_2: Final = f"""
CREATE TABLE versions (
    project_id TEXT NOT NULL,
    sharing_id TEXT NOT NULL,
    first_seen INTEGER NOT NULL REFERENCES runs (run_id),
    last_seen INTEGER REFERENCES runs (run_id),
    backup_id TEXT NOT NULL,
    from_project_id TEXT NOT NULL,
    to_project_id TEXT NOT NULL,
    created_at TEXT,
    updated_at TEXT,
    backup_name TEXT,
    backup_size INTEGER,
    backup_volume_id TEXT,
    backup_status TEXT,
    backup_availability_zone TEXT,
    PRIMARY KEY (project_id, sharing_id, first_seen)
) WITHOUT ROWID;
INSERT INTO versions (project_id, sharing_id, first_seen, last_seen, {_VERSION_COLUMNS})
    SELECT project_id, sharing_id, first_seen,
        CASE WHEN last_seen = {LATEST_LISTING.replace("versions.", "sharings.")}
            THEN NULL ELSE last_seen END,
        {_VERSION_COLUMNS}
    FROM sharings;
DROP TABLE sharings;
CREATE VIEW sharings AS
    SELECT project_id, sharing_id, first_seen,
        coalesce(last_seen, {LATEST_LISTING}, first_seen) AS last_seen,
        {_VERSION_COLUMNS}
    FROM versions;
"""  # noqa: S608 - constant columns


def _run_script(connection: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


def _create_version_1(connection: sqlite3.Connection) -> None:
    _run_script(connection, _VERSION_1)


def _open_versions(connection: sqlite3.Connection) -> None:
    """Version 2: a version still current has no `last_seen`, so a run rewrites no unchanged row."""
    _run_script(connection, _VERSION_2)


def _listing_digests(connection: sqlite3.Connection) -> None:
    """Version 3: a listing's digest, so that a project listed unchanged costs one row."""
    connection.execute("ALTER TABLE run_projects ADD COLUMN listing_digest BLOB")


MIGRATIONS: Final[dict[int, Callable[[sqlite3.Connection], None]]] = {
    0: _create_version_1,
    1: _open_versions,
    2: _listing_digests,
}
"""From each version, the step to the next: `MIGRATIONS[n]` takes a version-n file to n + 1.

A new schema version adds its step here (and raises `SCHEMA_VERSION`);
steps run in order, in one transaction, when an older file is opened for
writing.
"""
