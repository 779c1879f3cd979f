"""`crawl --db FILE`: every run recorded, one writer at a time, a killed crawl resumed exactly."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

from vbs_async.inventory import Inventory
from vbs_async.inventory._classify import SharingClass, classifier_for_run

from .test_cli import VBS_ASYNC, command_env, emulator_in_thread, invoke


def dump(path) -> dict[str, list[tuple]]:
    """What a database says, without times, run keys or row numbers."""
    db = sqlite3.connect(path)
    try:
        return {
            "runs": db.execute(
                "SELECT run_id, state, account, region, listing, whole_account FROM runs"
            ).fetchall(),
            "projects": db.execute(
                "SELECT run_id, project_id, position, outcome, reason, region, account, sharings "
                "FROM run_projects ORDER BY run_id, position"
            ).fetchall(),
            "sharings": db.execute(
                "SELECT project_id, sharing_id, backup_id, from_project_id, to_project_id, "
                "created_at, updated_at, backup_name, backup_size, backup_volume_id, "
                "backup_status, backup_availability_zone, first_seen, last_seen "
                "FROM sharings ORDER BY project_id, sharing_id, first_seen"
            ).fetchall(),
        }
    finally:
        db.close()


def test_crawl_db_records_the_run_its_projects_and_every_sharing(tmp_path):
    db = tmp_path / "inventory.sqlite"
    result = invoke("crawl", "--emulator", "--emulator-projects", "4", "--emulator-sharings", "15",
                    "--db", str(db), "--account", "OTC-A", "-o", str(tmp_path / "out.jsonl"))  # fmt: skip
    assert result.exit_code == 0, result.output
    with Inventory(db) as inventory:
        (run,) = inventory.runs()
        assert (run.state, run.account, run.region) == ("complete", "OTC-A", "eu-de")
        projects = inventory.projects(run.run_id)
        assert [p.outcome for p in projects] == ["ok"] * 4
        assert [p.sharings for p in projects] == [15] * 4
    assert len(dump(db)["sharings"]) == 60


def test_a_second_crawl_on_the_same_database_is_refused_at_once(tmp_path):
    db = tmp_path / "inventory.sqlite"
    out = tmp_path / "out.jsonl"
    with Inventory(db, write=True):
        result = invoke(
            "crawl", "--emulator", "--emulator-projects", "2", "--db", str(db), "-o", str(out)
        )
    assert result.exit_code == 2
    assert f"another vbs-async process is writing to {db}: wait for it to end" in result.output
    assert not out.exists()


def test_a_database_that_is_the_output_file_is_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    result = invoke(
        "crawl", "--emulator", "--emulator-projects", "2", "--db", str(out), "-o", str(out)
    )
    assert result.exit_code == 2
    assert "give the database a file of its own" in result.output


def test_account_without_db_is_a_usage_error():
    result = invoke("crawl", "--emulator", "--account", "OTC-A")
    assert result.exit_code == 2
    assert "--account names the account of a --db run: give --db too" in result.output


def test_a_failed_project_is_recorded_with_its_reason(tmp_path, clean_env):
    from vbs_async.testing import Fault  # noqa: PLC0415

    db = tmp_path / "inventory.sqlite"
    with emulator_in_thread(projects=3, sharings_per_project=5) as emu:
        emu.inject(Fault.answer(403), times=50, project_id=emu.project_ids[1])
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        result = invoke("crawl", "--endpoint", emu.url, "--db", str(db), "--attempts", "1",
                        "-o", str(tmp_path / "out.jsonl"), *emu.project_ids)  # fmt: skip
    assert result.exit_code == 1, result.output
    with Inventory(db) as inventory:
        (run,) = inventory.runs()
        assert run.state == "partial"
        outcomes = {p.project_id: (p.outcome, p.reason) for p in inventory.projects(1)}
    assert outcomes[emu.project_ids[0]] == ("ok", None)
    outcome, reason = outcomes[emu.project_ids[1]]
    assert outcome == "failed"
    assert "403" in reason


def test_a_resume_with_another_database_is_refused(tmp_path):
    out, state = tmp_path / "out.jsonl", tmp_path / "crawl.state"
    common = [
        "crawl",
        "--emulator",
        "--emulator-projects",
        "3",
        "-o",
        str(out),
        "--resume",
        str(state),
    ]
    assert invoke(*common, "--db", str(tmp_path / "a.sqlite")).exit_code == 0
    # The job finished: a resume with another database that knows nothing of it.
    result = invoke(*common, "--db", str(tmp_path / "b.sqlite"))
    assert result.exit_code == 2
    assert "has no record of 3 projects" in result.output


def resumable_crawl(folder, project_ids, *extra: str) -> list[str]:
    """The command line of a `--db` crawl with a state file, all in `folder`."""
    folder.mkdir(exist_ok=True)
    return [*VBS_ASYNC, "crawl", "--db", str(folder / "inv.sqlite"), "--account", "OTC-A",
            "-o", str(folder / "out.jsonl"), "--resume", str(folder / "crawl.state"), "--quiet",
            *extra, *project_ids]  # fmt: skip


def test_kill_9_during_a_db_crawl_then_resume_equals_a_clean_run(tmp_path):
    with emulator_in_thread(projects=60, sharings_per_project=40, latency=0.01, seed=5) as emu:
        env = command_env(emu)

        def arguments(name: str) -> list[str]:
            return resumable_crawl(tmp_path / name, emu.project_ids, "--page-size", "10",
                                   "--max-projects", "2")  # fmt: skip

        killed = arguments("killed")
        state = tmp_path / "killed" / "crawl.state"
        kills = 0
        # Killed at moments spread over the crawl: mid-batch, mid-commit, between.
        for delay in (0.3, 0.9, 0.5, 1.4):
            process = subprocess.Popen(
                killed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 30
            while not (state.exists() and state.stat().st_size) and time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                time.sleep(0.005)
            time.sleep(delay)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(30)
        assert kills >= 1  # the crawl was really cut
        resumed = subprocess.run(killed, env=env, capture_output=True, timeout=120, check=False)
        assert resumed.returncode == 0, resumed.stderr
        clean = subprocess.run(
            arguments("clean"), env=env, capture_output=True, timeout=120, check=False
        )
        assert clean.returncode == 0, clean.stderr
    killed_dump, clean_dump = (
        dump(tmp_path / "killed" / "inv.sqlite"),
        dump(tmp_path / "clean" / "inv.sqlite"),
    )
    assert killed_dump == clean_dump
    assert len(clean_dump["sharings"]) == 60 * 40
    assert clean_dump["runs"][0][1] == "complete"


@pytest.mark.parametrize("output_format", ["jsonl", "csv"])
def test_an_output_and_its_report_load_as_a_run(tmp_path, output_format):
    from vbs_async.inventory import load_crawl_output  # noqa: PLC0415

    out, report = tmp_path / f"out.{output_format}", tmp_path / "report.json"
    result = invoke("crawl", "--emulator", "--emulator-projects", "3", "--emulator-sharings", "7",
                    "--format", output_format, "-o", str(out), "--report", str(report),
                    "--db", str(tmp_path / "direct.sqlite"))  # fmt: skip
    assert result.exit_code == 0, result.output
    with Inventory(tmp_path / "loaded.sqlite", write=True) as inventory:
        load_crawl_output(inventory, out, report)
    direct, loaded = dump(tmp_path / "direct.sqlite"), dump(tmp_path / "loaded.sqlite")
    assert loaded["sharings"] == direct["sharings"]
    assert [p[1:5] for p in loaded["projects"]] == [p[1:5] for p in direct["projects"]]


def test_a_database_that_is_the_state_file_is_refused_before_anything_is_created(tmp_path):
    same = tmp_path / "X"
    out = tmp_path / "out.jsonl"
    result = invoke("crawl", "--emulator", "--emulator-projects", "1", "--db", str(same),
                    "--resume", str(same), "-o", str(out))  # fmt: skip
    assert result.exit_code == 2
    assert "give the database a file of its own" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither X nor out.jsonl


def test_a_full_disk_stops_the_crawl_and_a_resume_records_every_project_whole(tmp_path):
    import resource  # noqa: PLC0415 - POSIX only, as RLIMIT_FSIZE

    with emulator_in_thread(projects=60, sharings_per_project=50, seed=4) as emu:
        env = command_env(emu)

        def arguments(name: str) -> list[str]:
            return resumable_crawl(tmp_path / name, emu.project_ids)

        def full_disk(size: int):
            return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

        for size in (200_000, 600_000):
            name = f"full-{size}"
            cut = subprocess.run(arguments(name), env=env, capture_output=True, timeout=120,
                                 check=False, preexec_fn=full_disk(size))  # fmt: skip
            assert cut.returncode == 2, cut.stderr
            resumed = subprocess.run(
                arguments(name), env=env, capture_output=True, timeout=120, check=False
            )
            assert resumed.returncode == 0, resumed.stderr
        clean = subprocess.run(
            arguments("clean"), env=env, capture_output=True, timeout=120, check=False
        )
        assert clean.returncode == 0, clean.stderr
    clean_dump = dump(tmp_path / "clean" / "inv.sqlite")
    assert len(clean_dump["sharings"]) == 60 * 50
    for size in (200_000, 600_000):
        assert dump(tmp_path / f"full-{size}" / "inv.sqlite") == clean_dump, size


def test_a_failed_write_in_the_writer_thread_stops_the_crawl_with_one_clear_line(
    tmp_path, monkeypatch
):
    """The writer's error reaches the command; only what was committed is in the output."""
    from vbs_async.cli import _inventory  # noqa: PLC0415
    from vbs_async.inventory import RunRecorder  # noqa: PLC0415

    monkeypatch.setattr(_inventory, "BATCH_PROJECTS", 1)
    real = RunRecorder.commit_projects
    committed: list[str] = []

    def full_after_two(self, outcomes):
        if len(committed) >= 2:
            raise sqlite3.OperationalError("database or disk is full")
        committed.extend(project_id for project_id, _ in outcomes)
        return real(self, outcomes)

    monkeypatch.setattr(RunRecorder, "commit_projects", full_after_two)
    db, out = tmp_path / "inv.sqlite", tmp_path / "out.jsonl"
    result = invoke("crawl", "--emulator", "--emulator-projects", "6", "--emulator-sharings", "4",
                    "--max-projects", "1", "--db", str(db), "-o", str(out),
                    "--resume", str(tmp_path / "crawl.state"))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        f"vbs-async: error: --db {db}: database or disk is full; the crawl stopped "
        "(with --resume, a crawl lists again what was not recorded)"
    )
    written = {row.split('"project_id":"')[1][:32] for row in out.read_text().splitlines()}
    assert written == set(committed)
    recorded = {row[0] for row in dump(db)["sharings"]}
    assert recorded == set(committed)


def test_every_batch_handed_to_the_writer_is_committed_before_the_command_ends(
    tmp_path, monkeypatch
):
    """A slow writer falls behind the crawl: no row is lost, outputs follow commits in order."""
    from vbs_async.cli import _inventory  # noqa: PLC0415
    from vbs_async.inventory import RunRecorder  # noqa: PLC0415

    monkeypatch.setattr(_inventory, "BATCH_PROJECTS", 2)
    monkeypatch.setattr(_inventory, "WRITES_QUEUED", 1)
    real = RunRecorder.commit_projects

    def slow(self, outcomes):
        time.sleep(0.02)
        return real(self, outcomes)

    monkeypatch.setattr(RunRecorder, "commit_projects", slow)
    db, out = tmp_path / "inv.sqlite", tmp_path / "out.jsonl"
    result = invoke("crawl", "--emulator", "--emulator-projects", "25", "--emulator-sharings",
                    "9", "--db", str(db), "-o", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(dump(db)["sharings"]) == 25 * 9
    assert len(out.read_text().splitlines()) == 25 * 9
    with Inventory(db) as inventory:
        (run,) = inventory.runs()
        assert run.state == "complete"
        assert [p.sharings for p in inventory.projects(run.run_id)] == [9] * 25


def test_big_projects_waiting_in_the_database_are_recorded_the_same(tmp_path, monkeypatch):
    """Pages of a project beyond HELD_ROWS go to the writer before the project ends."""
    from vbs_async.inventory import _store  # noqa: PLC0415

    def crawl(name: str) -> dict[str, list[tuple]]:
        db = tmp_path / f"{name}.sqlite"
        for _ in range(2):  # the second run extends the first's versions
            result = invoke("crawl", "--emulator", "--emulator-projects", "3",
                            "--emulator-sharings", "45", "--page-size", "10", "--db", str(db),
                            "-o", str(tmp_path / f"{name}.jsonl"))  # fmt: skip
            assert result.exit_code == 0, result.output
        return dump(db)

    in_memory = crawl("memory")
    monkeypatch.setattr(_store, "HELD_ROWS", 15)
    assert crawl("staged") == in_memory
    assert len(in_memory["sharings"]) == 3 * 45


def test_a_run_without_account_records_the_domain_iam_lists_its_projects_in(tmp_path):
    from vbs_async.testing import Emulator  # noqa: PLC0415

    domain_id = Emulator(projects=1).identity.domain_id  # the emulator's account
    db = tmp_path / "inv.sqlite"
    for extra in ([], ["--account", "OTC-A"]):
        result = invoke("crawl", "--emulator", "--emulator-projects", "2", "--db", str(db),
                        "-o", str(tmp_path / "out.jsonl"), *extra)  # fmt: skip
        assert result.exit_code == 0, result.output
    with Inventory(db) as inventory:
        assert [run.account for run in inventory.runs()] == [domain_id, "OTC-A"]


def test_a_run_whose_account_iam_does_not_tell_is_recorded_without_one(tmp_path, clean_env):
    """No IAM endpoint to ask (a token and a VBS endpoint only): the crawl goes on."""
    db = tmp_path / "inv.sqlite"
    with emulator_in_thread(projects=2, sharings_per_project=3) as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        result = invoke("crawl", "--endpoint", emu.url, "--db", str(db),
                        "-o", str(tmp_path / "out.jsonl"), *emu.project_ids)  # fmt: skip
    assert result.exit_code == 0, result.output
    with Inventory(db) as inventory:
        (run,) = inventory.runs()
        assert run.account is None
        assert [p.sharings for p in inventory.projects(run.run_id)] == [3, 3]


def test_an_output_that_cannot_be_written_leaves_no_project_s_rows_open(tmp_path, monkeypatch):
    """A full disk under the output, with --db: one clear line, and every project's
    spooled rows closed (none left for the garbage collector to warn about)."""
    import errno  # noqa: PLC0415
    import gc  # noqa: PLC0415
    import warnings  # noqa: PLC0415

    from vbs_async.cli import _inventory, _output  # noqa: PLC0415

    monkeypatch.setattr(_inventory, "BATCH_PROJECTS", 4)  # projects end together, in batches
    real_copy = _output.ProjectRows.copy_to
    copies: list[int] = []

    def full_after_one(self, stream):
        copies.append(1)
        if len(copies) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_copy(self, stream)

    monkeypatch.setattr(_output.ProjectRows, "copy_to", full_after_one)
    db, out = tmp_path / "inv.sqlite", tmp_path / "out.jsonl"
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = invoke("crawl", "--emulator", "--emulator-projects", "8", "--emulator-sharings",
                        "3", "--db", str(db), "-o", str(out))  # fmt: skip
        gc.collect()
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output.splitlines()[-1]
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_a_project_iam_does_not_list_is_not_given_the_detected_account(tmp_path):
    """Security: the domain IAM lists the job's projects in is not given to a project it does not list."""
    db = tmp_path / "inventory.sqlite"
    listed = "ff49cd58005650f1a16eb13bb3910a20"  # the emulator's first project (seeded)
    unlisted = "0123456789abcdef0123456789abcdef"
    result = invoke("crawl", "--emulator", "--emulator-projects", "5", "--emulator-sharings", "3",
                    listed, unlisted, "-o", str(tmp_path / "out.jsonl"), "--db", str(db))  # fmt: skip
    assert result.exit_code == 0, result.output
    accounts = {row[1]: row[6] for row in dump(db)["projects"]}
    assert accounts[listed] is not None
    assert accounts[unlisted] is None
    # A sharing to the unlisted project is not internal to the listed one's account.
    conn = sqlite3.connect(db)
    try:
        classifier = classifier_for_run(conn, 1)
    finally:
        conn.close()
    assert classifier.classify(listed) is SharingClass.INTERNAL
    assert classifier.classify(unlisted) is not SharingClass.INTERNAL


def _crawl(tmp_path, db, state, *extra: str):
    return invoke("crawl", "--emulator", "--emulator-projects", "3", "-o",
                  str(tmp_path / f"{state}.jsonl"), "--resume", str(tmp_path / state),
                  "--db", str(tmp_path / db), "--quiet", *extra)  # fmt: skip


def _as_killed_before_finish(db) -> None:
    """The run as a kill -9 leaves it after its projects' commits, before its end's."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE runs SET state = 'running', finished_at = NULL WHERE run_id = 1")
    conn.close()


def test_a_refused_resume_leaves_the_database_unchanged(tmp_path):
    assert _crawl(tmp_path, "other.sqlite", "other.state").exit_code == 0
    assert _crawl(tmp_path, "st.sqlite", "st.state").exit_code == 0
    before = dump(tmp_path / "other.sqlite")
    # The state of the crawl into st.sqlite, resumed into other.sqlite: out of step.
    result = _crawl(tmp_path, "other.sqlite", "st.state")
    assert result.exit_code == 2
    assert "has no record of 3 projects" in result.output
    assert dump(tmp_path / "other.sqlite") == before


def test_a_finished_db_crawl_resumed_again_has_nothing_to_do(tmp_path):
    assert _crawl(tmp_path, "rr.sqlite", "rr.state").exit_code == 0
    before = dump(tmp_path / "rr.sqlite")
    result = _crawl(tmp_path, "rr.sqlite", "rr.state")
    assert result.exit_code == 0, result.output
    assert "nothing to do: all 3 projects finished" in result.output
    assert dump(tmp_path / "rr.sqlite") == before


def test_a_kill_before_the_state_file_is_written_is_resumed_in_the_same_run(tmp_path):
    assert _crawl(tmp_path, "inv.sqlite", "crawl.state").exit_code == 0
    # Killed after the run was recorded, before any line of the state file.
    _as_killed_before_finish(tmp_path / "inv.sqlite")
    (tmp_path / "crawl.state").unlink()
    (tmp_path / "crawl.state.jsonl").unlink()
    result = _crawl(tmp_path, "inv.sqlite", "crawl.state")
    assert result.exit_code == 0, result.output
    assert [row[:2] for row in dump(tmp_path / "inv.sqlite")["runs"]] == [(1, "complete")]


def test_a_resume_continues_its_own_run_whatever_another_account_crawled_since(tmp_path):
    assert _crawl(tmp_path, "inv.sqlite", "a.state", "--account", "OTC-A").exit_code == 0
    _as_killed_before_finish(tmp_path / "inv.sqlite")
    # Another account's crawl into the same database meanwhile.
    assert _crawl(tmp_path, "inv.sqlite", "b.state", "--account", "OTC-B").exit_code == 0
    assert [row[:3] for row in dump(tmp_path / "inv.sqlite")["runs"]] == [
        (1, "running", "OTC-A"),
        (2, "complete", "OTC-B"),
    ]
    result = _crawl(tmp_path, "inv.sqlite", "a.state", "--account", "OTC-A")
    assert result.exit_code == 0, result.output
    assert [row[:3] for row in dump(tmp_path / "inv.sqlite")["runs"]] == [
        (1, "complete", "OTC-A"),
        (2, "complete", "OTC-B"),
    ]


def test_db_must_not_be_the_file_stdout_is_redirected_to(tmp_path):
    rows = tmp_path / "so.txt"
    with rows.open("wb") as stdout:
        command = [*VBS_ASYNC, "crawl", "--emulator", "--emulator-projects", "2", "-q",
                   "-o", "-", "--db", str(rows)]  # fmt: skip
        result = subprocess.run(
            command, stdout=stdout, stderr=subprocess.PIPE, timeout=120, check=False
        )
    assert result.returncode == 2
    assert b"--db" in result.stderr
    assert b"stdout is redirected to" in result.stderr
    assert rows.read_bytes() == b""


def test_db_dash_is_refused_and_creates_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("crawl", "--emulator", "--emulator-projects", "2", "-o", "out.jsonl",
                    "--db", "-")  # fmt: skip
    assert result.exit_code == 2
    assert "--db - names stdout" in result.output
    assert not (tmp_path / "-").exists()


def test_db_that_is_a_fifo_is_refused_in_one_line(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = invoke("crawl", "--emulator", "--emulator-projects", "2",
                    "-o", str(tmp_path / "out.jsonl"), "--db", str(fifo))  # fmt: skip
    assert result.exit_code == 2
    assert f"--db {fifo} is not a regular file" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_db_with_tables_but_no_schema_version_names_the_file_and_the_way_out(tmp_path):
    db = tmp_path / "inv.sqlite"
    out = str(tmp_path / "out.jsonl")
    assert invoke("crawl", "--emulator", "--emulator-projects", "2", "-o", out,
                  "--db", str(db)).exit_code == 0  # fmt: skip
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 0")
    conn.close()
    result = invoke("crawl", "--emulator", "--emulator-projects", "2", "-o", out, "--db", str(db))
    assert result.exit_code == 2
    assert f"--db {db}" in result.output
    assert "no schema version" in result.output
    assert "already exists" not in result.output


def test_sigterm_while_the_writer_fails_says_one_line_and_counts_only_what_was_written(
    tmp_path, monkeypatch, caplog
):
    """A stop whose last commit fails (a database locked by another program)."""
    from vbs_async.cli import _inventory  # noqa: PLC0415
    from vbs_async.inventory import RunRecorder  # noqa: PLC0415

    monkeypatch.setattr(_inventory, "BATCH_PROJECTS", 1)
    real = RunRecorder.commit_projects
    calls: list[int] = []

    def locked_at_the_third(self, outcomes):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            raise sqlite3.OperationalError("database is locked")
        return real(self, outcomes)

    monkeypatch.setattr(RunRecorder, "commit_projects", locked_at_the_third)
    db, out, state = tmp_path / "inv.sqlite", tmp_path / "out.jsonl", tmp_path / "crawl.state"
    result = invoke("crawl", "--emulator", "--emulator-projects", "20", "--emulator-sharings", "4",
                    "--max-projects", "1", "--db", str(db), "-o", str(out),
                    "--resume", str(state))  # fmt: skip
    assert "never retrieved" not in caplog.text
    written = len(state.read_text().splitlines()) - 1
    assert written == 2
    # The signal and the failed commit race: whichever the command meets first
    # ends it, in one line (the database's, exit 2) or in the stop's summary
    # (exit 143); either way it counts only what was committed.
    last = result.output.splitlines()[-1]
    if result.exit_code == 2:
        assert last == (
            f"vbs-async: error: --db {db}: database is locked; the crawl stopped "
            "(with --resume, a crawl lists again what was not recorded)"
        )
    else:
        assert result.exit_code == 143
        assert last.startswith("resume with: ")
        assert f"after {written} projects finished in this run ({written} written" in result.output
    assert f"projects: {written} ok" in result.output or "projects:" not in result.output


def test_db_locked_by_another_program_at_startup_names_the_file_and_the_way_out(
    tmp_path, monkeypatch
):
    from vbs_async.inventory import _store  # noqa: PLC0415

    db, out = tmp_path / "inv.sqlite", str(tmp_path / "out.jsonl")
    assert invoke("crawl", "--emulator", "--emulator-projects", "2", "-o", out,
                  "--db", str(db)).exit_code == 0  # fmt: skip
    real = sqlite3.connect
    # No busy wait in the test: the lock is held throughout.
    monkeypatch.setattr(_store.sqlite3, "connect", lambda *a, **k: real(*a, **{**k, "timeout": 0}))
    holder = real(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = invoke("crawl", "--emulator", "--emulator-projects", "2", "-o", out,
                        "--db", str(db))  # fmt: skip
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith(f"vbs-async: error: --db {db}: ")
    assert "locked by another program" in result.output


def test_a_crawl_refused_before_its_first_request_records_no_run(tmp_path):
    db, out = tmp_path / "inv.sqlite", tmp_path / "out.jsonl"
    crawl = ("crawl", "--emulator", "--emulator-projects", "3", "--db", str(db), "-o", str(out),
             "--quiet")  # fmt: skip
    assert invoke(*crawl).exit_code == 0
    before = dump(db)
    # A new state file over an output that holds rows: refused before any request.
    refused = invoke(*crawl, "--resume", str(tmp_path / "new.state"))
    assert refused.exit_code == 2, refused.output
    assert dump(db) == before
    result = invoke("diff", "--db", str(db))
    assert result.exit_code == 0
    assert result.stderr.startswith("nothing to compare yet: one finished run")


def test_the_database_is_written_by_a_thread_that_yields_to_the_crawl(tmp_path, monkeypatch):
    # Recording must not slow the crawl: its writer thread lowers its own priority (nice 10),
    # so on a busy machine the crawl's threads get the cores first.
    asked = []
    real = os.setpriority

    def setpriority(which, who, priority):
        asked.append((which, who, priority, threading.current_thread().name))
        real(which, who, priority)

    monkeypatch.setattr(os, "setpriority", setpriority)
    db = tmp_path / "inv.sqlite"
    result = invoke("crawl", "--emulator", "--emulator-projects", "2", "--emulator-sharings", "3",
                    "--db", str(db), "-o", str(tmp_path / "out.jsonl"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [(which, priority, name) for which, _, priority, name in asked] == [
        (os.PRIO_PROCESS, 10, f"vbs-async --db {db}")
    ]
    assert asked[0][1] != os.getpid()  # the thread's own ID, not the whole process's
