"""The inventory library: schema, one writer, runs recorded per project, diff exact."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbs_async import Backup, BackupSharing, ProjectSharings, VBSError
from vbs_async.inventory import (
    SCHEMA_VERSION,
    ChangeKind,
    Inventory,
    InventoryBusyError,
    InventoryError,
    Severity,
    SharingClass,
    audit,
    diff,
)
from vbs_async.inventory import _store as inventory_store

P1, P2, P3 = "a" * 32, "b" * 32, "c" * 32
OUTSIDE = "f" * 32


def sharing(sharing_id: str, project: str, to: str, status: str = "available") -> BackupSharing:
    return BackupSharing(
        id=sharing_id,
        backup_id=f"backup-{sharing_id}",
        from_project_id=project,
        to_project_id=to,
        backup=Backup(id=f"backup-{sharing_id}", name=f"disk {sharing_id}", status=status, size=40),
    )


def record_in_one_transaction(path, projects: dict[str, list[BackupSharing] | None]) -> None:
    """One run, every project committed at once (as `crawl --db` batches them)."""
    with Inventory(path, write=True) as inventory:
        run = inventory.start_run(list(projects))
        for project_id, sharings in projects.items():
            run.add_page(project_id, sharings or ())
        run.commit_projects(
            [(p, None if s is not None else "HTTP 503") for p, s in projects.items()]
        )
        run.finish()


def _table(path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT * FROM sharings ORDER BY 1, 2, 3").fetchall()
    finally:
        db.close()


def record(path, projects: dict[str, list[BackupSharing] | None], **options) -> int:
    """One run: None marks a project whose listing failed."""
    with Inventory(path, write=True) as inventory:
        run = inventory.start_run(list(projects), **options)
        for project_id, sharings in projects.items():
            if sharings is None:
                run.record(ProjectSharings(project_id, (), VBSError("HTTP 503")))
            else:
                run.record(ProjectSharings(project_id, tuple(sharings)))
        run.finish()
        return run.run_id


def test_a_new_inventory_has_the_schema_version_and_the_application_id(tmp_path):
    path = tmp_path / "inv.sqlite"
    Inventory(path, write=True).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert db.execute("PRAGMA application_id").fetchone()[0] == 0x56425341
    tables = set(db.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')"))
    assert tables == {
        ("table", "runs"),
        ("table", "run_projects"),
        ("table", "versions"),
        ("view", "sharings"),
    }
    db.close()


def test_a_second_writer_is_refused_while_the_first_is_open(tmp_path):
    path = tmp_path / "inv.sqlite"
    with Inventory(path, write=True):
        with pytest.raises(InventoryBusyError, match="another vbs-async process is writing"):
            Inventory(path, write=True)
        with Inventory(path) as reader:  # readers need no lock
            assert reader.runs() == []
    Inventory(path, write=True).close()  # released


def test_another_sqlite_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE mine (x)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(InventoryError, match="not a vbs-async inventory"):
        Inventory(path, write=True)
    assert path.read_bytes() == before


def test_a_file_that_is_no_database_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not SQLite at all, just some text " * 20)
    with pytest.raises(InventoryError, match="not a vbs-async inventory"):
        Inventory(path, write=True)


def test_a_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "inv.sqlite"
    Inventory(path, write=True).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(InventoryError, match="schema version 99, newer"):
        Inventory(path)


def test_reading_a_missing_inventory_says_how_to_make_one(tmp_path):
    with pytest.raises(InventoryError, match="crawl --db"):
        Inventory(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_runs_record_outcomes_reasons_and_first_and_last_seen(tmp_path):
    path = tmp_path / "inv.sqlite"
    first = record(path, {P1: [sharing("s1", P1, P2)], P2: None}, account="acct", region="eu-de")
    second = record(path, {P1: [sharing("s1", P1, P2)], P2: []}, account="acct", region="eu-de")
    with Inventory(path) as inventory:
        runs = inventory.runs()
        assert [(r.run_id, r.state) for r in runs] == [(first, "partial"), (second, "complete")]
        outcomes = inventory.projects(first)
        assert [(p.project_id, p.outcome, p.reason) for p in outcomes] == [
            (P1, "ok", None),
            (P2, "failed", "HTTP 503"),
        ]
        assert outcomes[0].region == "eu-de"
        rows = inventory.connection.execute(
            "SELECT sharing_id, first_seen, last_seen FROM sharings"
        ).fetchall()
        assert rows == [("s1", first, second)]


def test_recording_a_project_again_in_the_same_run_counts_it_once(tmp_path):
    path = tmp_path / "inv.sqlite"
    record(path, {P1: [sharing("s1", P1, P2), sharing("s2", P1, P2)]})
    with Inventory(path, write=True) as inventory:
        run = inventory.start_run([P1])
        run.record(ProjectSharings(P1, (sharing("s1", P1, P2, "error"),)))
        run.record(ProjectSharings(P1, (sharing("s1", P1, P2),)))  # again, as after a resume
        run.finish()
        rows = inventory.connection.execute(
            "SELECT sharing_id, first_seen, last_seen FROM sharings ORDER BY sharing_id"
        ).fetchall()
    assert rows == [("s1", 1, 2), ("s2", 1, 1)]


def test_resume_continues_the_unfinished_run_of_the_same_job(tmp_path):
    path = tmp_path / "inv.sqlite"
    with Inventory(path, write=True) as inventory:
        run = inventory.start_run([P1, P2], job_key="job")
        run.record(ProjectSharings(P1, ()))
    with Inventory(path, write=True) as inventory:
        again = inventory.start_run([P1, P2], job_key="job", resume=True)
        assert (again.run_id, again.resumed) == (run.run_id, True)
        assert again.outcomes() == {P1: "ok", P2: "not_crawled"}
        other = inventory.start_run([P1, P2], job_key="job")  # no resume: a new run
        assert other.run_id == run.run_id + 1
        assert inventory.run(run.run_id).state == "interrupted"


def test_a_database_holds_one_kind_of_listing(tmp_path):
    path = tmp_path / "inv.sqlite"
    record(path, {P1: []})
    with (
        Inventory(path, write=True) as inventory,
        pytest.raises(InventoryError, match="one database per kind of listing"),
    ):
        inventory.start_run([P1], listing={"share_to_me": True})


def test_audit_carries_stale_findings_of_a_failed_project_and_counts_unknown_ones(tmp_path):
    path = tmp_path / "inv.sqlite"
    record(path, {P1: [sharing("s1", P1, OUTSIDE)], P2: None})
    record(path, {P1: None, P2: None})
    with Inventory(path) as inventory:
        result = audit(inventory)
        findings = list(result)
    assert [(f.sharing.sharing_id, f.stale, f.seen_run, f.first_seen_run) for f in findings] == [
        ("s1", True, 1, 1)
    ]
    assert findings[0].sharing_class is SharingClass.EXTERNAL
    assert findings[0].severity is Severity.HIGH
    assert findings[0].remediation == f"vbs-async cancel {P1} s1"
    assert result.unknown_projects == [P2]
    assert result.stale_projects == [P1]


def test_diff_of_a_failed_project_is_unknown_never_removed(tmp_path):
    path = tmp_path / "inv.sqlite"
    record(path, {P1: [sharing("s1", P1, OUTSIDE)], P2: [sharing("s2", P2, P1)]})
    record(path, {P1: None, P2: [sharing("s3", P2, OUTSIDE)]})
    with Inventory(path) as inventory:
        changes = diff(inventory)
        seen = sorted((c.kind, c.sharing.sharing_id) for c in changes)
    assert seen == [(ChangeKind.ADDED, "s3"), (ChangeKind.REMOVED, "s2")]
    summary = changes.summary
    assert (summary.added, summary.removed, summary.unknown) == (1, 1, 1)
    assert summary.unknown_projects == [P1]
    assert summary.new_at_least(Severity.HIGH) == 1


# -- the property: two (or three) runs with random changes, the diff exact -------------------

PROJECTS = [f"{i:032x}" for i in range(1, 6)]
TARGETS = [*PROJECTS, OUTSIDE]
STATUSES = ["available", "creating", "error"]

snapshots = st.dictionaries(
    st.sampled_from(PROJECTS),
    st.one_of(
        st.none(),  # the listing failed
        st.dictionaries(
            st.sampled_from([f"s{i}" for i in range(8)]),
            st.tuples(st.sampled_from(TARGETS), st.sampled_from(STATUSES)),
            max_size=6,
        ),
    ),
    min_size=1,
)


def _sharings(project: str, listing: dict[str, tuple[str, str]]) -> list[BackupSharing]:
    # A sharing's ID is unique per project in the service: prefix it.
    return [
        sharing(f"{project[-2:]}-{sid}", project, to, status)
        for sid, (to, status) in listing.items()
    ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(runs=st.lists(snapshots, min_size=2, max_size=3))
def test_diff_is_exact_and_never_calls_a_failed_projects_sharing_removed(tmp_path_factory, runs):
    folder = tmp_path_factory.mktemp("prop")
    path, batched = folder / "inv.sqlite", folder / "batched.sqlite"
    for snapshot in runs:
        projects = {p: None if s is None else _sharings(p, s) for p, s in snapshot.items()}
        record(path, projects)
        record_in_one_transaction(batched, projects)
    assert _table(batched) == _table(path)  # one transaction for all, or one each: the same
    old_snapshot, new_snapshot = runs[-2], runs[-1]
    for old_index in range(len(runs) - 1):
        old_snapshot = runs[old_index]
        expected = {"added": set(), "removed": set(), "changed": set()}
        unknown = 0
        for project in set(old_snapshot) | set(new_snapshot):
            # Each project is compared with its latest listing at or before the old run.
            listings = [r[project] for r in runs[: old_index + 1] if r.get(project) is not None]
            old, new = (listings[-1] if listings else None), new_snapshot.get(project)
            if old is None or new is None:
                unknown += len(new if new is not None else old or {})
                continue
            expected["added"] |= {(project, s) for s in set(new) - set(old)}
            expected["removed"] |= {(project, s) for s in set(old) - set(new)}
            expected["changed"] |= {(project, s) for s in set(old) & set(new) if old[s] != new[s]}
        with Inventory(path) as inventory:
            changes = diff(inventory, old_run=old_index + 1, new_run=len(runs))
            got = {"added": set(), "removed": set(), "changed": set()}
            for change in changes:
                item = change.sharing
                got[change.kind.value].add((item.project_id, item.sharing_id.split("-", 1)[1]))
                assert new_snapshot.get(item.project_id) is not None, "a failed project's sharing"
        assert got == expected
        assert changes.summary.unknown == unknown
        assert changes.summary.added == len(expected["added"])
        assert changes.summary.removed == len(expected["removed"])
        assert changes.summary.changed == len(expected["changed"])


def test_every_older_schema_version_has_a_migration_step():
    from vbs_async.inventory._schema import MIGRATIONS  # noqa: PLC0415

    assert sorted(MIGRATIONS) == list(range(SCHEMA_VERSION))


def test_an_empty_sqlite_file_is_migrated_to_the_current_version(tmp_path):
    path = tmp_path / "inv.sqlite"
    sqlite3.connect(path).close()  # an empty database: version 0
    with pytest.raises(InventoryError, match="is empty: record a crawl with crawl --db"):
        Inventory(path)  # a reader never writes
    Inventory(path, write=True).close()
    with Inventory(path) as inventory:
        assert inventory.runs() == []


def test_several_projects_commit_in_one_transaction_each_whole(tmp_path):
    path = tmp_path / "inv.sqlite"
    with Inventory(path, write=True) as inventory:
        run = inventory.start_run([P1, P2, P3])
        run.add_page(P1, [sharing("s1", P1, P2)])
        run.add_page(P2, [sharing("s2", P2, P1), sharing("s3", P2, OUTSIDE)])
        with pytest.raises(InventoryError, match="is not a project of run 1"):
            run.commit_projects([(P1, None), (OUTSIDE, None)])
        assert run.outcomes() == {P1: "not_crawled", P2: "not_crawled", P3: "not_crawled"}
        assert run.commit_projects([(P1, None), (P2, None), (P3, "HTTP 403")]) == [1, 2, 0]
        assert run.outcomes() == {P1: "ok", P2: "ok", P3: "failed"}
        assert run.finish() == "partial"


def test_a_resumed_run_follows_a_changed_project_list(tmp_path):
    """--all-projects may see projects come and go between a kill and the resume."""
    path = tmp_path / "inv.sqlite"
    with Inventory(path, write=True) as inventory:
        run = inventory.start_run([P1, P2], job_key="every project of eu-de")
        run.record(ProjectSharings(P1, (sharing("s1", P1, P2),)))
    with Inventory(path, write=True) as inventory:
        again = inventory.start_run([P1, P3], job_key="every project of eu-de", resume=True)
        assert again.resumed
        assert again.outcomes() == {P1: "ok", P3: "not_crawled"}  # P2 gone, P3 new
        again.record(ProjectSharings(P3, ()))
        assert again.finish() == "complete"


def test_a_project_too_big_to_hold_in_memory_is_recorded_the_same(tmp_path, monkeypatch):
    """Rows beyond HELD_ROWS wait on disk; the sharings recorded are the same either way."""
    listing = {
        P1: [sharing(f"s{i}", P1, P2) for i in range(7)] + [sharing("s3", P1, OUTSIDE, "error")],
        P2: [sharing("t1", P2, P1)],
    }
    second = {P1: [*listing[P1][2:], sharing("s9", P1, P3)], P2: listing[P2]}

    record(tmp_path / "memory.sqlite", listing)
    record(tmp_path / "memory.sqlite", second)
    monkeypatch.setattr(inventory_store, "HELD_ROWS", 2)
    record(tmp_path / "disk.sqlite", listing)
    record(tmp_path / "disk.sqlite", second)
    recorded = _table(tmp_path / "disk.sqlite")
    assert recorded == _table(tmp_path / "memory.sqlite")
    assert ("s3", OUTSIDE) in {(row[1], row[6]) for row in recorded}  # the last of an ID wins


def test_after_a_write_error_the_recorder_commits_nothing_more(tmp_path, monkeypatch):
    """A page that could not be kept must never let its project be recorded as listed."""
    monkeypatch.setattr(inventory_store, "HELD_ROWS", 1)  # every page goes to the table
    path = tmp_path / "inv.sqlite"
    with Inventory(path, write=True) as inventory:
        run = inventory.start_run([P1, P2])
        run.add_page(P1, [sharing("s1", P1, P2)])

        class FullDisk:
            def __init__(self, db):
                self._db = db

            def execute(self, statement, *arguments):
                if "temp.staging" in statement:
                    raise sqlite3.OperationalError("database or disk is full")
                return self._db.execute(statement, *arguments)

            executemany = execute

            def __getattr__(self, name):
                return getattr(self._db, name)

        real, run._db = run._db, FullDisk(run._db)
        with pytest.raises(sqlite3.OperationalError):
            run.add_page(P1, [sharing("s2", P1, OUTSIDE)])
        run._db = real
        run.add_page(P2, [sharing("s3", P2, P1)])
        with pytest.raises(InventoryError, match="after a write error"):
            run.commit_projects([(P1, None), (P2, None)])
        with pytest.raises(InventoryError, match="after a write error"):
            run.finish()
        assert run.outcomes() == {P1: "not_crawled", P2: "not_crawled"}


def test_a_name_holding_a_nul_character_is_recorded_whole(tmp_path):
    """SQLite's JSON functions end a text at NUL: such a page is recorded row by row."""
    path = tmp_path / "inv.sqlite"
    hostile = BackupSharing(
        id="s1", backup_id="b1", from_project_id=P1, to_project_id=OUTSIDE,
        backup=Backup(id="b1", name="disk\x00\x1b[31m", status="available", size=40),
    )  # fmt: skip
    record(path, {P1: [hostile, sharing("s2", P1, P2)]})
    db = sqlite3.connect(path)
    try:
        names = db.execute("SELECT sharing_id, backup_name FROM sharings ORDER BY 1").fetchall()
    finally:
        db.close()
    assert names == [("s1", "disk\x00\x1b[31m"), ("s2", "disk s2")]


def test_timestamps_are_recorded_as_isoformat_writes_them():
    from datetime import UTC, datetime  # noqa: PLC0415

    import orjson  # noqa: PLC0415

    times = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 29, 23, 59, 59, 1, tzinfo=UTC)]
    encoded, count = inventory_store.encode_page(
        P1,
        [BackupSharing(f"s{i}", "b", P1, P2, created_at=moment) for i, moment in enumerate(times)],
    )
    assert count == len(times)
    assert [row[5] for row in orjson.loads(encoded)] == [moment.isoformat() for moment in times]


@pytest.mark.parametrize("held_rows", [5_000, 1], ids=["in memory", "on disk"])
def test_a_run_extends_each_unchanged_version_and_starts_one_for_each_change(
    tmp_path, monkeypatch, held_rows
):
    """Only the fields that matter start a version: a new `updated_at` alone extends it."""
    from datetime import UTC, datetime  # noqa: PLC0415

    monkeypatch.setattr(inventory_store, "HELD_ROWS", held_rows)
    hostile = Backup(id="b-n", name="disk\x00\x1b[31m", status="available", size=40)
    quoted = Backup(id="b-q", name='say "é\\\n\x7f"', status="available", size=40)

    def listing(name_of_s2: str, updated: datetime) -> dict[str, list[BackupSharing]]:
        return {
            P1: [
                sharing("s1", P1, P2),
                BackupSharing("s2", "b2", P1, P2, backup=Backup(id="b2", name=name_of_s2, size=1)),
                BackupSharing("s3", "b3", P1, OUTSIDE, updated_at=updated),
                BackupSharing("s4", "b-q", P1, P2, backup=quoted),
            ],
            P2: [BackupSharing("n1", "b-n", P2, P1, backup=hostile)],  # a page with a NUL
        }

    path = tmp_path / "inv.sqlite"
    record(path, listing("disk", datetime(2024, 1, 1, tzinfo=UTC)))
    record(path, listing("renamed", datetime(2024, 1, 2, tzinfo=UTC)))
    db = sqlite3.connect(path)
    try:
        versions = db.execute(
            "SELECT sharing_id, first_seen, last_seen, backup_name, updated_at FROM sharings "
            "ORDER BY 1, 2"
        ).fetchall()
    finally:
        db.close()
    assert versions == [
        ("n1", 1, 2, "disk\x00\x1b[31m", None),
        ("s1", 1, 2, "disk s1", None),
        ("s2", 1, 1, "disk", None),
        ("s2", 2, 2, "renamed", None),
        ("s3", 1, 2, None, "2024-01-01T00:00:00+00:00"),  # the version keeps its first fields
        ("s4", 1, 2, 'say "é\\\n\x7f"', None),
    ]


def _version_1_file(path) -> None:
    """An inventory as vbs-async wrote it with schema version 1: two runs, P2 failing in the second."""
    from vbs_async.inventory._schema import MIGRATIONS  # noqa: PLC0415

    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](db)
    db.execute("PRAGMA application_id = 1447187265")
    db.execute("PRAGMA user_version = 1")
    for run_id, state in ((1, "complete"), (2, "partial")):
        db.execute(
            "INSERT INTO runs (run_id, started_at, finished_at, state, job_key) "
            "VALUES (?, '2026-01-0' || ?, '2026-01-0' || ?, ?, 'job')",
            (run_id, run_id, run_id, state),
        )
    db.executemany(
        "INSERT INTO run_projects (run_id, project_id, position, outcome) VALUES (?, ?, ?, ?)",
        [(1, P1, 0, "ok"), (1, P2, 1, "ok"), (2, P1, 0, "ok"), (2, P2, 1, "failed")],
    )
    db.executemany(
        "INSERT INTO sharings (project_id, sharing_id, first_seen, last_seen, backup_id, "
        "from_project_id, to_project_id, backup_name, backup_size, backup_status) "
        "VALUES (?, ?, ?, ?, 'backup-' || ?2, ?1, ?, 'disk ' || ?2, 40, 'available')",
        [
            (P1, "s1", 1, 2, OUTSIDE),  # current at P1's latest listing
            (P1, "s2", 1, 1, P2),  # gone in run 2
            (P2, "t1", 1, 1, P1),  # current: P2's listing failed in run 2
        ],
    )
    db.close()


def test_a_version_1_inventory_is_migrated_and_reads_and_records_as_before(tmp_path):
    """Version 2 keeps a current version's `last_seen` empty; `sharings` reads as it did."""
    path = tmp_path / "inv.sqlite"
    _version_1_file(path)
    before = _table(path)
    with Inventory(path) as inventory:  # read as it is, not migrated
        result = audit(inventory, minimum=Severity.INFO)
        read_before = [(f.sharing.sharing_id, f.seen_run, f.stale) for f in result]
        assert inventory.connection.execute("PRAGMA user_version").fetchone()[0] == 1
    with Inventory(path, write=True):
        pass
    assert _table(path) == before
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute(
            "SELECT sharing_id, first_seen, last_seen FROM versions ORDER BY 1"
        ).fetchall() == [("s1", 1, None), ("s2", 1, 1), ("t1", 1, None)]
    finally:
        db.close()
    with Inventory(path) as inventory:
        result = audit(inventory, minimum=Severity.INFO)
        findings = [(f.sharing.sharing_id, f.seen_run, f.stale) for f in result]
    assert findings == read_before == [("s1", 2, False), ("t1", 1, True)]
    # Run 3: s1 unchanged, s2 back, t1 gone.
    record(
        path,
        {P1: [sharing("s1", P1, OUTSIDE), sharing("s2", P1, P2)], P2: []},
        job_key="job",
    )
    rows = [(row[0], row[1], row[2], row[3]) for row in _table(path)]
    assert rows == [
        (P1, "s1", 1, 3),
        (P1, "s2", 1, 1),
        (P1, "s2", 3, 3),
        (P2, "t1", 1, 1),
    ]
    with Inventory(path) as inventory:
        changes = diff(inventory)
        seen = sorted((c.kind, c.sharing.sharing_id) for c in changes)
    assert seen == [(ChangeKind.ADDED, "s2"), (ChangeKind.REMOVED, "t1")]
    assert changes.summary.unchanged == 1


def test_a_project_listed_as_before_is_recorded_without_reading_its_versions(tmp_path):
    """Same rows (however paged): only its outcome is written; a change is merged as before."""
    path = tmp_path / "inv.sqlite"
    listing = [sharing("s1", P1, P2), sharing("s2", P1, OUTSIDE), sharing("s3", P1, P2)]
    record(path, {P1: listing, P2: []})
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE writes (what TEXT)")
    for event in ("INSERT", "UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER on_{event.lower()} AFTER {event} ON versions "  # noqa: S608 - ours
            f"BEGIN INSERT INTO writes VALUES ('{event}'); END"
        )
    db.close()

    def writes() -> list[str]:
        db = sqlite3.connect(path)
        try:
            return [row[0] for row in db.execute("SELECT what FROM writes")]
        finally:
            db.close()

    record(path, {P1: listing, P2: []})
    with Inventory(path, write=True) as inventory:  # the same rows in two pages
        run = inventory.start_run([P1, P2])
        run.add_page(P1, listing[:1])
        run.add_page(P1, listing[1:])
        tables: set[str] = set()

        def authorize(_action: int, table: str | None, *_: object) -> int:
            tables.add(table or "")
            return sqlite3.SQLITE_OK

        inventory.connection.set_authorizer(authorize)
        assert run.commit_projects([(P1, None), (P2, None)]) == [3, 0]
        inventory.connection.set_authorizer(None)
        assert "run_projects" in tables
        assert "versions" not in tables
        run.finish()
    assert writes() == []
    with Inventory(path) as inventory:
        assert [(p.project_id, p.outcome, p.sharings) for p in inventory.projects(3)] == [
            (P1, "ok", 3),
            (P2, "ok", 0),
        ]
    assert [row[:4] for row in _table(path)] == [
        (P1, "s1", 1, 3),
        (P1, "s2", 1, 3),
        (P1, "s3", 1, 3),
    ]
    record(path, {P1: [*listing[:2], sharing("s3", P1, P2, status="deleting")], P2: []})
    assert writes()
    assert [row[:4] for row in _table(path)] == [
        (P1, "s1", 1, 4),
        (P1, "s2", 1, 4),
        (P1, "s3", 1, 3),
        (P1, "s3", 4, 4),
    ]


def _classes(path, trusted=()) -> dict[str, tuple[SharingClass, str | None]]:
    with Inventory(path) as inventory:
        return {
            f.sharing.sharing_id: (f.sharing_class, f.to_account)
            for f in audit(inventory, trusted=trusted, minimum=Severity.INFO)
        }


def test_project_ids_are_compared_whatever_their_case(tmp_path):
    path = tmp_path / "inv.sqlite"
    record(path, {P1: [sharing("s1", P1, P2.upper())], P2: []}, account="OTC-A")
    record(path, {P3.upper(): [sharing("s3", P3, P1)]}, account="OTC-B")
    record(path, {OUTSIDE: [sharing("s4", OUTSIDE, P3)]}, account="OTC-C")
    classes = _classes(path)
    assert classes["s1"] == (SharingClass.INTERNAL, "OTC-A")  # P2 crawled as aaa…, shared as AAA…
    assert classes["s4"] == (SharingClass.CROSS_ACCOUNT, "OTC-B")  # crawled as CCC…
    assert _classes(path, trusted={P3})["s4"][0] is SharingClass.TRUSTED


def test_account_labels_are_compared_whatever_their_case(tmp_path):
    path = tmp_path / "inv.sqlite"
    record(path, {P1: [sharing("s1", P1, P2)]}, account="OTC-A")
    record(path, {P2: [sharing("s2", P2, P1)]}, account="otc-a")
    record(path, {P3: [sharing("s3", P3, P1)]}, account="OTC-B")
    classes = _classes(path)
    assert classes["s1"][0] is SharingClass.INTERNAL
    assert classes["s2"][0] is SharingClass.INTERNAL
    assert classes["s3"][0] is SharingClass.CROSS_ACCOUNT
    assert _classes(path, trusted={"Otc-A"})["s3"][0] is SharingClass.TRUSTED
    with Inventory(path) as inventory:
        assert audit(inventory).run_ids == [3, 2]  # one account: its latest run
        assert (diff(inventory, new_run=2).old_run, diff(inventory, new_run=2).new_run) == (1, 2)
