"""A version-1 inventory migrated as an outsider would meet it: killed midway, a second writer
while it runs, a read-only file or folder, a file newer than the code."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from vbs_async.inventory import SCHEMA_VERSION, Inventory, InventoryBusyError, InventoryError

from ._helpers import VBS_ASYNC
from .test_cli import invoke
from .test_inventory import P1, P2, _version_1_file

if TYPE_CHECKING:
    from pathlib import Path

_PAUSED = """
import pathlib, sys, time
from vbs_async.inventory import Inventory, _schema

step = int(sys.argv[2])
real = _schema.MIGRATIONS[step]

def paused(db):
    real(db)
    pathlib.Path(sys.argv[3]).write_text("migrating")
    while not pathlib.Path(sys.argv[4]).exists():
        time.sleep(0.01)

_schema.MIGRATIONS[step] = paused
with Inventory(sys.argv[1], write=True):
    pass
"""
"""Open an inventory to write, pausing inside its migration (in the transaction) after a step."""

_WITHOUT_OVERRIDE = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH\n"
    "    if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP\n"
    "        sys.exit(77)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)
"""Run a command as root would without the power to ignore permissions (CI runs as root)."""


def unprivileged(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `arguments` so that a file's or a folder's permissions hold, even for root."""
    command = list(arguments)
    if os.geteuid() == 0:
        command = [sys.executable, "-c", _WITHOUT_OVERRIDE, *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 77:
        pytest.skip("cannot drop CAP_DAC_OVERRIDE here")
    return done


def version_1(path: Path, *, wal: bool = True) -> None:
    """A version-1 inventory as vbs-async wrote it (in WAL mode), two runs."""
    _version_1_file(path)
    if wal:
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode = WAL")
        db.close()


def state(path: Path) -> dict[str, object]:
    """The schema version, what `sharings` is, and every row."""
    db = sqlite3.connect(path)
    try:
        return {
            "version": db.execute("PRAGMA user_version").fetchone()[0],
            "sharings is a": db.execute(
                "SELECT type FROM sqlite_master WHERE name = 'sharings'"
            ).fetchone()[0],
            "runs": db.execute("SELECT * FROM runs ORDER BY run_id").fetchall(),
            "projects": db.execute("SELECT * FROM run_projects ORDER BY 1, 2").fetchall(),
            "sharings": db.execute("SELECT * FROM sharings ORDER BY 1, 2, 3").fetchall(),
        }
    finally:
        db.close()


def answers(path: Path) -> list[tuple[int, str]]:
    """What audit and diff say about the database (exit status and output)."""
    found = []
    for command in ("audit", "diff"):
        result = invoke(command, "--db", str(path), "--format", "jsonl", "--fail-on", "info")
        found.append((result.exit_code, result.stdout))
    return found


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pause_migration(path: Path, step: int) -> tuple[subprocess.Popen[bytes], Path]:
    """A writer stopped inside the migration, after `MIGRATIONS[step]`; the file that resumes it."""
    started, go = path.parent / "migrating", path.parent / "go"
    process = subprocess.Popen(
        [sys.executable, "-c", _PAUSED, str(path), str(step), str(started), str(go)]
    )
    deadline = time.monotonic() + 30
    while not started.exists():
        assert process.poll() is None, "the migration ended before its pause"
        assert time.monotonic() < deadline, "the migration never started"
        time.sleep(0.005)
    return process, go


@pytest.mark.parametrize("step", [1, 2], ids=["after step 1 to 2", "after step 2 to 3"])
def test_a_migration_killed_midway_leaves_version_1_whole_and_a_crawl_completes_it(tmp_path, step):
    path = tmp_path / "inv.sqlite"
    version_1(path)
    before, said = state(path), answers(path)
    process, _ = pause_migration(path, step)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    assert state(path) == before
    assert before["version"] == 1
    assert answers(path) == said
    result = invoke("crawl", "--emulator", "--emulator-projects", "2", "--db", str(path),
                    "-o", str(tmp_path / "out.jsonl"))  # fmt: skip
    assert result.exit_code == 0, result.output
    after = state(path)
    assert (after["version"], after["sharings is a"]) == (SCHEMA_VERSION, "view")
    assert after["runs"][:2] == before["runs"]
    assert [row for row in after["sharings"] if row[0] in {P1, P2}] == before["sharings"]


@pytest.mark.parametrize("wal", [True, False], ids=["WAL", "rollback journal"])
def test_a_second_writer_during_a_migration_is_refused_and_the_first_completes_it(tmp_path, wal):
    """Readers read version 1 meanwhile (WAL), or are told the file is locked, in one line."""
    path = tmp_path / "inv.sqlite"
    version_1(path, wal=wal)
    before, said = state(path), answers(path)
    process, go = pause_migration(path, 2)
    try:
        with pytest.raises(InventoryBusyError, match="another vbs-async process is writing"):
            Inventory(path, write=True)
        crawl = invoke("crawl", "--emulator", "--emulator-projects", "2", "--db", str(path),
                       "-o", str(tmp_path / "out.jsonl"))  # fmt: skip
        assert crawl.exit_code == 2
        assert crawl.stderr.strip().splitlines() == [
            (
                f"vbs-async: error: --db {path}: another vbs-async process is writing to {path}: "
                "wait for it to end"
            )
        ]
        assert not (tmp_path / "out.jsonl").exists()
        audit = invoke("audit", "--db", str(path), "--format", "jsonl", "--fail-on", "info")
        if wal:
            assert (audit.exit_code, audit.stdout) == said[0]
        else:
            assert audit.exit_code == 2
            assert audit.stderr.strip().splitlines() == [
                (
                    f"vbs-async: error: {path} is locked by another program (a crawl upgrading its "
                    "schema, or an open transaction, e.g. an sqlite3 shell): run again when it ends"
                )
            ]
    finally:
        go.write_text("")
        assert process.wait(30) == 0
    after = state(path)
    assert (after["version"], after["sharings is a"]) == (SCHEMA_VERSION, "view")
    assert after["sharings"] == before["sharings"]
    assert answers(path) == said


def test_a_read_only_version_1_file_is_refused_by_crawl_and_read_by_audit(tmp_path):
    path = tmp_path / "inv.sqlite"
    version_1(path)
    said, written = answers(path), digest(path)
    path.chmod(0o444)
    try:
        crawl = unprivileged(*VBS_ASYNC, "crawl", "--emulator", "--emulator-projects", "2",
                             "--db", str(path), "-o", str(tmp_path / "out.jsonl"))  # fmt: skip
        audit = unprivileged(*VBS_ASYNC, "audit", "--db", str(path), "--format", "jsonl",
                             "--fail-on", "info")  # fmt: skip
    finally:
        path.chmod(0o644)
    assert crawl.returncode == 2
    assert crawl.stderr.strip().splitlines() == [
        f"vbs-async: error: --db {path}: cannot open {path}: Permission denied"
    ]
    assert not (tmp_path / "out.jsonl").exists()
    assert (audit.returncode, audit.stdout) == said[0]
    assert digest(path) == written
    assert state(path)["version"] == 1


def test_a_version_1_file_in_a_read_only_folder_is_refused_by_crawl_and_read_by_audit(tmp_path):
    folder = tmp_path / "kept"
    folder.mkdir()
    path = folder / "inv.sqlite"
    version_1(path)
    said, written = answers(path), digest(path)
    folder.chmod(0o555)
    try:
        crawl = unprivileged(*VBS_ASYNC, "crawl", "--emulator", "--emulator-projects", "2",
                             "--db", str(path), "-o", str(tmp_path / "out.jsonl"))  # fmt: skip
        library = unprivileged(sys.executable, "-c", (
            "import sys; from vbs_async.inventory import Inventory, InventoryError\n"
            "try:\n    Inventory(sys.argv[1], write=True)\n"
            "except InventoryError as exc:\n    print(exc)\n"
        ), str(path))  # fmt: skip
        audit = unprivileged(*VBS_ASYNC, "audit", "--db", str(path), "--format", "jsonl",
                             "--fail-on", "info")  # fmt: skip
        diff = unprivileged(*VBS_ASYNC, "diff", "--db", str(path), "--format", "jsonl",
                            "--fail-on", "info")  # fmt: skip
    finally:
        folder.chmod(0o755)
    assert crawl.returncode == 2
    assert crawl.stderr.strip().splitlines() == [
        (
            f"vbs-async: error: --db {path}: the directory {folder} is not writable "
            "(SQLite keeps its journal beside the database)"
        )
    ]
    assert library.stdout.strip() == (
        f"cannot use {path}: its folder is not writable (SQLite keeps its journal beside the "
        "database); it was left as it is"
    )
    assert [(audit.returncode, audit.stdout), (diff.returncode, diff.stdout)] == said
    assert sorted(p.name for p in folder.iterdir()) == ["inv.sqlite"]
    assert digest(path) == written


@pytest.mark.parametrize("command", ["crawl", "audit", "diff"])
def test_a_newer_schema_version_is_refused_in_one_line_and_left_as_it_is(tmp_path, command):
    path = tmp_path / "inv.sqlite"
    version_1(path)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    written = digest(path)
    extra = ["--emulator", "--emulator-projects", "2", "-o", str(tmp_path / "out.jsonl")]
    result = invoke(command, "--db", str(path), *(extra if command == "crawl" else []))
    assert result.exit_code == 2
    prefix = f"--db {path}: " if command == "crawl" else ""
    assert result.stderr.strip().splitlines() == [
        (
            f"vbs-async: error: {prefix}{path} has schema version {SCHEMA_VERSION + 1}, newer than "
            f"this vbs-async's ({SCHEMA_VERSION}): upgrade vbs-async"
        )
    ]
    assert digest(path) == written
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(InventoryError, match="newer than this vbs-async's"):
        Inventory(path)


def test_a_crawl_killed_at_once_while_migrating_a_big_file_leaves_it_old_or_new_never_half(
    tmp_path,
):
    """No pause put in: `crawl --db` killed once its migration has written (the log grows)."""
    path = tmp_path / "inv.sqlite"
    version_1(path)
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO sharings (project_id, sharing_id, first_seen, last_seen, backup_id, "
        "from_project_id, to_project_id, backup_name) VALUES (?, ?, 1, 2, ?, ?, ?, 'disk')",
        ((P1, f"m{index:06d}", f"b{index:06d}", P1, P2) for index in range(60_000)),
    )
    db.commit()
    db.close()
    before, said = state(path), answers(path)
    log = tmp_path / "inv.sqlite-wal"
    process = subprocess.Popen(
        [
            *VBS_ASYNC,
            "crawl",
            "--emulator",
            "--emulator-projects",
            "2",
            "--db",
            str(path),
            "-o",
            str(tmp_path / "out.jsonl"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (log.exists() and log.stat().st_size > 0) and process.poll() is None:
        assert time.monotonic() < deadline, "the migration never wrote"
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    after = state(path)
    if after["version"] == 1:
        assert after == before
    else:  # the migration had committed: complete, the old runs as they were
        assert (after["version"], after["sharings is a"]) == (SCHEMA_VERSION, "view")
        assert [row for row in after["sharings"] if row[0] in {P1, P2}] == before["sharings"]
    assert answers(path) == said


def test_a_version_2_file_gains_an_empty_digest_column_and_records_as_before(tmp_path):
    """The digests start empty (the next listing is merged row by row); each run records its own."""
    from vbs_async.inventory._schema import MIGRATIONS  # noqa: PLC0415

    from .test_inventory import record, sharing  # noqa: PLC0415

    path = tmp_path / "inv.sqlite"
    version_1(path)
    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[1](db)
    db.execute("PRAGMA user_version = 2")
    db.close()
    before = state(path)
    with Inventory(path, write=True):
        pass
    after = state(path)
    assert after["version"] == SCHEMA_VERSION
    assert after["sharings"] == before["sharings"]
    assert [row[:-1] for row in after["projects"]] == before["projects"]
    assert {row[-1] for row in after["projects"]} == {None}  # no digest yet
    listing = {P1: [sharing("s1", P1, "f" * 32)], P2: [sharing("t1", P2, P1)]}
    record(path, listing, job_key="job")
    record(path, listing, job_key="job")
    assert [row[:4] for row in state(path)["sharings"]] == [
        (P1, "s1", 1, 4),
        (P1, "s2", 1, 1),
        (P2, "t1", 1, 4),  # unchanged since run 1 (P2 failed in run 2)
    ]
    db = sqlite3.connect(path)
    try:
        digests = db.execute(
            "SELECT run_id, count(listing_digest) FROM run_projects GROUP BY run_id"
        ).fetchall()
    finally:
        db.close()
    assert digests == [(1, 0), (2, 0), (3, 2), (4, 2)]
