"""The command as operators run it: resume that cannot mix jobs, output never lost, early stops."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading

import pytest

from vbs_async.testing import Fault

from ._helpers import (
    VBS_ASYNC,
    Gate,
    closed_port,
    command_emulator,
    command_env,
    emulator_in_thread,
    wait_for_lines,
)
from .test_cli import held, invoke, rows_by_project


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vbs-async: error: ")
    return lines[0]


@pytest.fixture
def emu(clean_env):
    with command_emulator(clean_env, projects=6, sharings_per_project=5, seed=4) as emulator:
        yield emulator


def crawl(emu, *args):
    return invoke("crawl", *args, *emu.project_ids)


# -- a resume state that knows its job ---------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["--format", "csv"], "format"),
        (["--status", "available"], "filters"),
        (["--sort-key", "name"], "sort order"),
        (["--page-size", "7"], "page size"),
    ],
)
def test_resume_refuses_another_job_s_options_naming_what_differs(emu, tmp_path, change, named):
    out, state = tmp_path / "out.jsonl", tmp_path / "state"
    assert crawl(emu, "-o", str(out), "--resume", str(state)).exit_code == 0
    before = (out.read_bytes(), state.read_bytes())
    result = crawl(emu, "-o", str(out), "--resume", str(state), *change)
    assert result.exit_code == 2
    assert named in one_error_line(result)
    assert (out.read_bytes(), state.read_bytes()) == before


def test_resume_refuses_another_project_list_and_another_output(emu, tmp_path):
    out, state = tmp_path / "out.jsonl", tmp_path / "state"
    assert (
        invoke("crawl", "-o", str(out), "--resume", str(state), *emu.project_ids[:3]).exit_code == 0
    )
    others = invoke("crawl", "-o", str(out), "--resume", str(state), *emu.project_ids[3:])
    assert "project list" in one_error_line(others)
    important = tmp_path / "important.jsonl"
    important.write_text('{"precious": true}\n' * 1000)
    elsewhere = invoke("crawl", "-o", str(important), "--resume", str(state), *emu.project_ids[:3])
    assert "output file" in one_error_line(elsewhere)
    assert important.read_text() == '{"precious": true}\n' * 1000


def test_a_new_state_never_writes_over_an_existing_output(emu, tmp_path):
    important = tmp_path / "important.jsonl"
    important.write_text("keep me\n")
    result = crawl(emu, "-o", str(important), "--resume", str(tmp_path / "new-state"))
    assert "already exists" in one_error_line(result)
    assert important.read_text() == "keep me\n"


def test_an_output_rewritten_since_is_refused(emu, tmp_path):
    out, state = tmp_path / "out.jsonl", tmp_path / "state"
    assert crawl(emu, "-o", str(out), "--resume", str(state)).exit_code == 0
    data = out.read_bytes()
    out.write_bytes(data[:-40] + b"x" * 40)  # same size, other bytes: another writer
    changed = crawl(emu, "-o", str(out), "--resume", str(state))
    assert "changed since" in one_error_line(changed)
    out.rename(tmp_path / "out.old")
    out.write_bytes(data)  # the same bytes, but another file
    replaced = crawl(emu, "-o", str(out), "--resume", str(state))
    assert "replaced since" in one_error_line(replaced)
    (tmp_path / "out.old").replace(out)  # the original file back
    with out.open("ab") as stream:
        stream.write(b'{"appended": "by someone"}\n')
    appended = crawl(emu, "-o", str(out), "--resume", str(state))
    assert "changed since" in one_error_line(appended)


def test_the_state_cannot_be_the_output_nor_a_file_that_is_not_a_state(emu, tmp_path):
    out = tmp_path / "out.jsonl"
    same = crawl(emu, "-o", str(out), "--resume", str(out))
    assert "is the output file" in one_error_line(same)
    projects = tmp_path / "projects.txt"
    projects.write_text(emu.project_ids[0] + "\n")
    not_a_state = crawl(emu, "-o", str(out), "--resume", str(projects))
    assert "not a vbs-async state file" in one_error_line(not_a_state)
    assert projects.read_text() == emu.project_ids[0] + "\n"
    assert not out.exists()


def test_a_state_of_version_0_1_is_refused_saying_so(emu, tmp_path):
    state = tmp_path / "old-state"
    state.write_text('{"project_id":"p1","output_bytes":120,"sharings":3}\n')
    result = crawl(emu, "-o", str(tmp_path / "out.jsonl"), "--resume", str(state))
    assert "written by vbs-async 0.1" in one_error_line(result)


def test_a_finished_job_run_again_has_nothing_to_do(emu, tmp_path):
    out, state = tmp_path / "out.jsonl", tmp_path / "state"
    assert crawl(emu, "-o", str(out), "--resume", str(state)).exit_code == 0
    data = out.read_bytes()
    again = crawl(emu, "-o", str(out), "--resume", str(state))
    assert again.exit_code == 0
    assert again.stderr.startswith("nothing to do: all 6 projects finished at ")
    assert f"remove {state} to crawl again" in again.stderr
    assert out.read_bytes() == data


def test_a_second_crawl_on_the_same_state_stops_at_once(tmp_path):
    gate = Gate([])
    with emulator_in_thread(projects=20, sharings_per_project=20, drift=gate) as emulator:
        gate.held = set(emulator.project_ids[5:])  # the first run cannot end before the second
        out, state = tmp_path / "out.jsonl", tmp_path / "state"
        arguments = [*VBS_ASYNC, "crawl", "-o", str(out), "--resume", str(state),
                     "--max-projects", "1", *emulator.project_ids]  # fmt: skip
        env = command_env(emulator)
        first = subprocess.Popen(arguments, env=env, stderr=subprocess.PIPE)
        wait_for_lines(state, 2, first)  # the job's line and a finished project
        second = subprocess.run(
            arguments, env=env, capture_output=True, text=True, timeout=30, check=False
        )
        gate.opened.set()
        first.communicate(timeout=60)
    assert second.returncode == 2
    assert "another vbs-async crawl is using" in second.stderr
    assert first.returncode == 0
    rows = rows_by_project(out.read_text())
    assert sum(len(v) for v in rows.values()) == 400  # nothing twice


# -- output that is never lost ----------------------------------------------------------------


def test_a_run_that_fails_at_setup_leaves_the_existing_output_alone(clean_env, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("yesterday's rows\n")
    clean_env.setenv("OS_AUTH_TOKEN", "t")
    result = invoke("crawl", "--endpoint", f"http://127.0.0.1:{closed_port()}", "--attempts", "1",
                    "-o", str(out), "p1")  # fmt: skip
    assert "does not answer" in one_error_line(result)
    assert out.read_text() == "yesterday's rows\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary file left


def test_a_partial_run_replaces_the_output_and_one_with_no_success_keeps_it(emu, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("yesterday's rows\n")
    emu.inject(Fault.answer(500), project_id=emu.project_ids[0], times=50)
    partial = crawl(emu, "-o", str(out), "--attempts", "1")
    assert partial.exit_code == 1
    assert set(rows_by_project(out.read_text())) == set(emu.project_ids[1:])
    out.write_text("yesterday's rows\n")
    emu.inject(Fault.answer(500), times=500)
    failed = crawl(emu, "-o", str(out), "--attempts", "1", "--max-projects", "1")
    assert failed.exit_code in {1, 2}
    assert out.read_text() == "yesterday's rows\n"


def test_a_crawl_removes_only_its_own_temporaries_left_by_a_dead_process(emu, tmp_path):
    # `.out.jsonl.<pid>.<8 random>.partial` is a temporary of out.jsonl; a crawl writing
    # `out.jsonl.<n>` names its own `.out.jsonl.<n>.<pid>.<random>.partial`, and <n> is no
    # process ID however dead a process of that number is.
    dead = next(pid for pid in range(4_000_000, 4_100_000) if not _running(pid))
    stale = tmp_path / f".out.jsonl.{dead}.k3j2h1g0.partial"
    live = tmp_path / f".out.jsonl.{os.getpid()}.zzzzzzzz.partial"
    other_output = tmp_path / f".out.jsonl.{dead}.{os.getpid()}.abcd_123.partial"
    for path in (stale, live, other_output):
        path.write_text("rows\n")
    result = crawl(emu, "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert live.read_text() == "rows\n"
    assert other_output.read_text() == "rows\n"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- stop early on what cannot get better -----------------------------------------------------


def test_a_wrong_password_is_sent_once_and_stops_the_crawl_in_one_line(clean_env):
    with emulator_in_thread(projects=40, users={"alice": "right-password-1"}) as emulator:
        clean_env.setenv("OS_AUTH_URL", emulator.url + "/v3")
        clean_env.setenv("OS_USERNAME", "alice")
        clean_env.setenv("OS_PASSWORD", "wrong-password-1")
        clean_env.setenv("OS_USER_DOMAIN_NAME", "emulator-domain")
        clean_env.setenv("VBS_ENDPOINT", emulator.url)
        result = invoke("crawl", *emulator.project_ids)
        token_requests = [r for r in emulator.requests if r.path == "/v3/auth/tokens"]
    line = one_error_line(result)
    assert result.exit_code == 2
    assert "credentials refused" in line
    assert "OS_PASSWORD" in line
    assert "wrong-password-1" not in result.stderr
    assert len(token_requests) == 1


def test_a_bad_token_stops_the_crawl_in_one_line(emu, clean_env):
    clean_env.setenv("OS_AUTH_TOKEN", "not-the-token")
    ids = [f"{n:032x}" for n in range(2000)]
    result = invoke("crawl", "--projects-file", "-", stdin="\n".join(ids))
    line = one_error_line(result)
    assert "credentials refused" in line
    assert "OS_AUTH_TOKEN" in line
    assert emu.requests_received < 100


def test_an_endpoint_that_dies_mid_crawl_stops_it_and_says_how_to_resume(clean_env, tmp_path):
    with command_emulator(clean_env, projects=60, sharings_per_project=3) as emulator:
        for project_id in emulator.project_ids[5:]:
            emulator.inject(Fault.drop(), times=10, project_id=project_id)
        out, state = tmp_path / "out.jsonl", tmp_path / "state"
        result = invoke("crawl", "-o", str(out), "--resume", str(state), "--attempts", "1",
                        "--max-projects", "1", *emulator.project_ids)  # fmt: skip
    assert result.exit_code == 2
    assert "stopped answering" in result.stderr
    assert "resume with: " in result.stderr
    assert result.stderr.count("failed ") <= 21


def test_max_failures_stops_the_crawl(emu):
    emu.inject(Fault.answer(500), times=1000)
    result = crawl(emu, "--attempts", "1", "--max-projects", "1", "--max-failures", "2")
    assert result.exit_code == 2
    assert "stopped: 2 projects failed (--max-failures 2)" in result.stderr
    # The operator's own limit ends with a summary even before any project succeeded
    # (it was one error line, as for wrong credentials; an outsider's all-429 gateway).
    assert "projects: 0 ok, 2 failed" in result.stderr
    # Two projects' requests, and those of any begun before the stop came.
    counted = re.search(
        r"^requests: (\d+) \(0 retries, 0 answered 429\)$", result.stderr, re.MULTILINE
    )
    assert counted is not None
    assert 2 <= int(counted[1]) <= emu.requests_received + 1  # one cut on its way out


def test_failure_lines_are_capped_then_counted(clean_env):
    with command_emulator(clean_env, projects=30, sharings_per_project=1) as emulator:
        emulator.inject(Fault.answer(404, message="gone"), times=1000)
        result = invoke("crawl", "--attempts", "1", *emulator.project_ids)
    assert result.exit_code == 1
    assert result.stderr.count("failed ") == 21  # 20 lines and the summary's count
    assert "... and 10 more failed projects" in result.stderr


# -- results a machine can read ---------------------------------------------------------------


def test_the_report_lists_every_project_zero_sharing_ones_included(clean_env, tmp_path):
    with command_emulator(clean_env, projects=3, sharings_per_project=2) as emulator:
        empty = "f" * 32  # a project with no sharings
        emulator.inject(
            Fault.answer(403, message="not yours"), project_id=emulator.project_ids[2], times=9
        )
        report = tmp_path / "report.json"
        out = tmp_path / "out.jsonl"
        result = invoke(
            "crawl", "-o", str(out), "--report", str(report), *emulator.project_ids, empty
        )
    assert result.exit_code == 1
    document = json.loads(report.read_text())
    statuses = {p["project_id"]: p["status"] for p in document["projects"]}
    assert statuses == {
        emulator.project_ids[0]: "ok",
        emulator.project_ids[1]: "ok",
        emulator.project_ids[2]: "failed",
        empty: "ok",
    }
    failed = next(p for p in document["projects"] if p["status"] == "failed")
    assert failed["error"]["class"] == "PermissionDeniedError"
    assert failed["error"]["status"] == 403
    zero = next(p for p in document["projects"] if p["project_id"] == empty)
    assert zero["sharings"] == 0
    assert document["totals"]["sharings"] == 4
    assert document["exit_status"] == 1
    assert f"written to {out}" in result.stderr
    assert "rows/s" in result.stderr


def test_the_report_of_a_resumed_job_marks_what_earlier_runs_did(emu, tmp_path):
    out, state, report = tmp_path / "out.jsonl", tmp_path / "state", tmp_path / "r.json"
    assert invoke("crawl", "-o", str(out), "--resume", str(state), *emu.project_ids).exit_code == 0
    assert (
        crawl(emu, "-o", str(out), "--resume", str(state), "--report", str(report)).exit_code == 0
    )
    document = json.loads(report.read_text())
    assert {p["status"] for p in document["projects"]} == {"skipped"}


def test_a_catalog_without_vbs_stops_the_crawl_in_one_line(clean_env):
    with emulator_in_thread(projects=30, users={"alice": "alice-password-1"}) as emulator:
        emulator.identity.catalog = lambda _project: []
        clean_env.setenv("OS_AUTH_URL", emulator.url + "/v3")
        clean_env.setenv("OS_USERNAME", "alice")
        clean_env.setenv("OS_PASSWORD", "alice-password-1")
        clean_env.setenv("OS_USER_DOMAIN_NAME", "emulator-domain")
        clean_env.setenv("OS_REGION_NAME", "eu-nl")  # no VBS in the known table either
        result = invoke("crawl", *emulator.project_ids)
    assert result.exit_code == 2
    assert "VBS_ENDPOINT" in one_error_line(result)


def test_a_full_disk_is_one_line_and_the_old_output_stays(tmp_path):
    import resource  # noqa: PLC0415 - POSIX only
    import signal  # noqa: PLC0415

    def small_disk() -> None:  # files may not grow past 64 KiB: writes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    out = tmp_path / "out.jsonl"
    out.write_text("yesterday's rows\n")
    with emulator_in_thread(projects=20, sharings_per_project=50) as emulator:
        result = subprocess.run(
            [*VBS_ASYNC, "crawl", "-o", str(out), *emulator.project_ids],
            env=command_env(emulator), capture_output=True, text=True, timeout=60,
            preexec_fn=small_disk, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("vbs-async: error: ")
    assert "File too large" in lines[-1]
    assert "Traceback" not in result.stderr
    assert out.read_text() == "yesterday's rows\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_the_output_gets_the_mode_a_new_file_would(emu, tmp_path):
    out = tmp_path / "out.jsonl"
    assert crawl(emu, "-o", str(out)).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_five_projects_in_a_row_refused_by_vbs_stop_the_crawl(clean_env):
    with command_emulator(clean_env, projects=12, sharings_per_project=2) as emulator:
        first = emulator.project_ids[0]
        for project_id in emulator.project_ids[1:]:
            emulator.inject(Fault.answer(403, message="not yours"), project_id=project_id, times=5)
        result = invoke("crawl", "--max-projects", "1", first, *emulator.project_ids[1:])
    assert result.exit_code == 2
    assert "credentials refused" in result.stderr
    assert "projects: 1 ok, 5 failed" in result.stderr


def test_verbose_shows_each_throttled_request(clean_env):
    with command_emulator(
        clean_env, projects=6, sharings_per_project=2, quota=(400, 3)
    ) as emulator:
        result = invoke("crawl", "--verbose", *emulator.project_ids)
        throttled = emulator.quota.throttled
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "throttled (APIGW.0308)" in line]
    assert throttled > 0
    assert len(lines) == throttled
    assert "waiting" in lines[0]
    assert result.stderr.splitlines()[-1] == "gateway quota: 400 per 1 s, announced"


def test_quiet_prints_errors_only(emu):
    emu.inject(Fault.answer(404, message="gone"), project_id=emu.project_ids[0], times=1)
    quiet = crawl(emu, "--quiet", "--progress-interval", "0", "--attempts", "1")
    assert quiet.exit_code == 1
    lines = quiet.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"failed {emu.project_ids[0]}: HTTP 404")
    normal = crawl(emu, "--progress-interval", "0")
    assert "progress:" in normal.stderr
    assert "projects: 6 ok" in normal.stderr


# -- mistakes nothing caught once ----------------------------------------------------------


def test_a_resume_cuts_back_the_rows_a_killed_run_left_past_the_last_commit(emu, tmp_path):
    out, state = tmp_path / "out.jsonl", tmp_path / "state"
    emu.inject(Fault.answer(500), project_id=emu.project_ids[-1], times=1)
    first = crawl(emu, "-o", str(out), "--resume", str(state), "--attempts", "1")
    assert first.exit_code == 1
    committed = out.read_bytes()
    # What a run killed mid-write leaves: rows past the committed size, longer than
    # everything the resumed run will write.
    with out.open("ab") as stream:
        stream.write(b'{"project_id": "uncommitted", "id": "x"}\n' * 200)
    second = crawl(emu, "-o", str(out), "--resume", str(state))
    assert second.exit_code == 0, second.stderr
    assert out.read_bytes().startswith(committed)
    assert rows_by_project(out.read_text()) == held(emu)


def test_403s_and_500s_in_turn_fail_each_project_but_never_stop_as_refused_credentials(
    clean_env, tmp_path
):
    out = tmp_path / "out.jsonl"
    with command_emulator(clean_env, projects=12, sharings_per_project=2) as emulator:
        for index, project_id in enumerate(emulator.project_ids):
            fault = Fault.answer(403 if index % 2 == 0 else 500)
            emulator.inject(fault, project_id=project_id, times=10)
        result = invoke("crawl", "-o", str(out), "--attempts", "1", "--max-projects", "1",
                        *emulator.project_ids)  # fmt: skip
    assert result.exit_code == 1
    assert "credentials refused" not in result.stderr
    assert "projects: 0 ok, 12 failed" in result.stderr
    # No output existed: none was "kept as it was".
    assert "kept as it was" not in result.stderr
    assert f"written to {out}" in result.stderr


def test_a_reader_of_stdout_gets_each_project_s_rows_as_it_finishes():
    """Rows are flushed project by project: a pipe's reader is not kept waiting for the end.

    The last project is held at the emulator (one project at a time, so the
    five others are done): the reader must have every row of those five while
    it is still held (a block buffer would keep them back).
    """
    gate = Gate([])
    with emulator_in_thread(projects=6, sharings_per_project=3, seed=4, drift=gate) as emulator:
        gate.held = {emulator.project_ids[-1]}
        process = subprocess.Popen(
            [*VBS_ASYNC, "crawl", "--quiet", "--max-projects", "1", *emulator.project_ids],
            env=command_env(emulator, PYTHONUNBUFFERED=""),  # stdout as a pipe buffers it
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        rows: list[bytes] = []
        five_done = threading.Event()
        stack = contextlib.ExitStack()
        stack.enter_context(process)  # its pipes closed at the end, whatever happens

        def read() -> None:
            assert process.stdout is not None
            for row in process.stdout:
                rows.append(row)
                if len(rows) == 15:  # 5 projects x 3 sharings
                    five_done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            got_them = five_done.wait(30)
            rows_while_held = list(rows)
            reached = gate.reached.is_set()
        finally:
            gate.opened.set()
            process.wait(60)  # --quiet: its stderr is a line at most
            reader.join(10)
            stderr = process.stderr.read() if process.stderr else b""
            stack.close()
    assert process.returncode == 0, stderr
    assert got_them, (reached, rows_while_held, stderr)
    held = {json.loads(row)["project_id"] for row in rows_while_held}
    assert held == set(emulator.project_ids[:-1])
    assert len(rows) == 18


def test_the_report_describes_the_job_and_how_it_ended(emu, tmp_path):
    out, state, report = tmp_path / "out.jsonl", tmp_path / "state", tmp_path / "report.json"
    result = crawl(emu, "-o", str(out), "--resume", str(state), "--report", str(report),
                   "--page-size", "7", "--status", "available")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    document = json.loads(report.read_text())
    assert document["exit_status"] == 0
    assert document["stopped"] is None
    job = document["job"]
    assert job["project_count"] == len(emu.project_ids)
    assert job["state"] == str(state)
    assert job["listing"]["page_size"] == 7
    assert job["listing"]["status"] == "available"
    assert None not in job["listing"].values()


def test_the_report_of_a_crawl_stopped_before_anything_was_crawled_says_why(
    emu, clean_env, tmp_path
):
    clean_env.setenv("OS_AUTH_TOKEN", "not-the-token")
    report = tmp_path / "report.json"
    result = invoke("crawl", "--report", str(report), *emu.project_ids)
    assert result.exit_code == 2, result.stderr
    document = json.loads(report.read_text())
    assert document["exit_status"] == 2
    assert document["stopped"].startswith("credentials refused")
    assert document["job"]["state"] is None
