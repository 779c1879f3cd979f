"""The vbs-async command, through click's runner and as a real process."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from vbs_async.cli import cli
from vbs_async.testing import Emulator, Fault

from ._helpers import (
    VBS_ASYNC,
    VBS_ASYNC_INTERRUPTIBLE,
    Gate,
    closed_port,
    command_emulator,
    command_env,
    emulator_in_thread,
    read_until_closed,
    stop_process,
    wait_for_lines,
)


def invoke(*args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def held(emulator: Emulator) -> dict[str, list[str]]:
    return {p: [s["id"] for s in emulator.sharings(p)] for p in emulator.project_ids}


def rows_by_project(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        row = json.loads(line)
        found.setdefault(row["project_id"], []).append(row["id"])
    return found


# -- through click's runner -----------------------------------------------------------


@pytest.mark.usefixtures("clean_env")
def test_crawl_of_the_embedded_emulator_writes_every_sharing_once():
    result = invoke("crawl", "--emulator", "--emulator-projects", "7", "--emulator-sharings", "33")
    assert result.exit_code == 0, result.stderr
    reference = Emulator(projects=7, sharings_per_project=33)
    assert rows_by_project(result.stdout) == held(reference)
    first = json.loads(result.stdout.splitlines()[0])
    assert list(first) == [
        "project_id", "id", "backup_id", "from_project_id", "to_project_id", "created_at", "updated_at", "backup",
    ]  # fmt: skip
    assert first["created_at"].endswith("+00:00")
    assert first["backup"]["id"] == first["backup_id"]
    assert "projects: 7 ok, 0 failed" in result.stderr
    assert "sharings: 231" in result.stderr


@pytest.mark.usefixtures("clean_env")
def test_csv_has_a_header_and_the_backup_flattened(tmp_path):
    out = tmp_path / "rows.csv"
    result = invoke("crawl", "--emulator", "--emulator-projects", "3", "--emulator-sharings", "10",
                    "--format", "csv", "--output", str(out))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 30
    assert {
        "project_id",
        "id",
        "backup_id",
        "created_at",
        "backup_name",
        "backup_size",
        "backup_created_at",
    } <= set(rows[0])
    assert "backup_backup_id" not in rows[0]
    assert rows[0]["created_at"].endswith("+00:00")
    assert rows[0]["backup_has_dependent_backups"] in {"true", "false", ""}


@pytest.mark.usefixtures("clean_env")
def test_filters_are_passed_to_every_listing():
    result = invoke(
        "crawl",
        "--emulator",
        "--emulator-projects",
        "4",
        "--status",
        "available",
        "--sort-key",
        "name",
    )
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows
    assert {r["backup"]["status"] for r in rows} == {"available"}


@pytest.mark.usefixtures("clean_env")
def test_projects_come_from_arguments_and_a_file_with_comments(tmp_path):
    reference = Emulator(projects=4)
    a, b, c, _ = reference.project_ids
    listing = tmp_path / "projects.txt"
    listing.write_text(f"# the inventory\n{b}\n\n{c}  # second\n{a}\n")
    result = invoke(
        "crawl", "--emulator", "--emulator-projects", "4", a, "--projects-file", str(listing)
    )
    assert result.exit_code == 0, result.stderr
    assert set(rows_by_project(result.stdout)) == {a, b, c}
    assert "projects: 3 ok" in result.stderr  # `a` twice is crawled once


def test_a_projects_file_saved_with_a_utf8_bom_reads_its_first_id(tmp_path):
    a, b = Emulator(projects=2).project_ids
    listing = tmp_path / "projects.txt"
    listing.write_bytes(f"{a}\r\n{b}\r\n".encode("utf-8-sig"))  # Notepad, PowerShell
    result = invoke(
        "crawl", "--emulator", "--emulator-projects", "2", "--projects-file", str(listing)
    )
    assert result.exit_code == 0, result.stderr
    assert set(rows_by_project(result.stdout)) == {a, b}


def test_a_projects_file_that_is_not_utf8_is_one_line_and_exit_2(tmp_path):
    a, b = Emulator(projects=2).project_ids
    listing = tmp_path / "projects.txt"
    listing.write_bytes(f"{a}\n".encode("latin-1") + b"\xff\xfe\xfa\n")
    result = invoke("crawl", "--emulator", "--projects-file", str(listing))
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"vbs-async: error: {listing} is not UTF-8 text (byte 33); save it as UTF-8"
    )
    # UTF-16 with its byte order mark (PowerShell 5's `>`) is read.
    listing.write_bytes(f"{a}\r\n{b}\r\n".encode("utf-16"))
    result = invoke("crawl", "--emulator", "--projects-file", str(listing))
    assert result.exit_code == 0, result.stderr
    assert set(rows_by_project(result.stdout)) == {a, b}


def test_output_dash_is_stdout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("crawl", "--emulator", "--emulator-projects", "2", "--output", "-")
    assert result.exit_code == 0, result.stderr
    assert len(rows_by_project(result.stdout)) == 2
    assert not (tmp_path / "-").exists()


@pytest.mark.usefixtures("clean_env")
def test_projects_file_dash_reads_stdin():
    reference = Emulator(projects=2)
    result = invoke("crawl", "--emulator", "--emulator-projects", "2", "--projects-file", "-",
                    stdin="\n".join(reference.project_ids))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert set(rows_by_project(result.stdout)) == set(reference.project_ids)


def test_a_failing_project_gives_exit_status_1_and_a_line_naming_it(clean_env):
    with emulator_in_thread(projects=3, sharings_per_project=5) as emu:
        emu.inject(Fault.answer(403, message="not yours"), project_id=emu.project_ids[1], times=10)
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        result = invoke("crawl", "--endpoint", emu.url, *emu.project_ids)
    assert result.exit_code == 1
    assert "projects: 2 ok, 1 failed" in result.stderr
    assert f"failed {emu.project_ids[1]}: HTTP 403" in result.stderr
    assert "not yours" in result.stderr
    assert set(rows_by_project(result.stdout)) == {emu.project_ids[0], emu.project_ids[2]}


@pytest.mark.usefixtures("clean_env")
def test_plain_progress_lines_when_stderr_is_not_a_terminal():
    result = invoke("crawl", "--emulator", "--emulator-projects", "5", "--progress-interval", "0")
    assert result.exit_code == 0
    progress = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert progress[-1].startswith("progress: 5/5 projects, 250 sharings, 0 failed, ")


@pytest.mark.parametrize(
    ("args", "environment", "message"),
    [
        (["--page-size", "0", "p1"], {}, "Invalid value for '--page-size'"),
        (["--projects-file", "/no/such/file"], {}, "Invalid value for '--projects-file'"),
        (["p1"], {}, "gives no credentials: set OS_AUTH_TOKEN"),
        (
            ["p1"],
            {"OS_ACCESS_KEY": "AK", "OS_REGION_NAME": "eu-de"},
            "OS_SECRET_KEY must be set as well",
        ),
        (["bad/id"], {"OS_AUTH_TOKEN": "t"}, "is not a plain ID"),
        ([], {"OS_AUTH_TOKEN": "t", "OS_REGION_NAME": "eu-de"}, "name projects as arguments"),
        (["--resume", "state", "p1"], {"OS_AUTH_TOKEN": "t"}, "--resume needs --output"),
        (
            ["--endpoint", "http://127.0.0.1:{port}", "--attempts", "1", "p1"],
            {"OS_AUTH_TOKEN": "t"},
            "the endpoint http://127.0.0.1:{port} does not answer",
        ),
        (
            ["--emulator", "--output", "/no/such/dir/out.jsonl"],
            {},
            "the directory /no/such/dir does not exist",
        ),
    ],
)
def test_mistakes_give_one_line_and_exit_status_2(clean_env, args, environment, message):
    port = closed_port()
    for name, value in environment.items():
        clean_env.setenv(name, value)
    result = invoke("crawl", *[a.format(port=port) for a in args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vbs-async: error: ")
    assert message.format(port=port) in lines[0]
    assert "Traceback" not in result.stderr


# -- as real processes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "status"), [(signal.SIGKILL, -9), (signal.SIGINT, 130), (signal.SIGTERM, 143)]
)
def test_a_crawl_stopped_part_way_and_resumed_loses_and_repeats_nothing(tmp_path, stop, status):
    gate = Gate([])
    with emulator_in_thread(projects=40, sharings_per_project=25, seed=3, drift=gate) as emu:
        # The first run can finish at most 8 projects: the rest wait at the gate.
        gate.held = set(emu.project_ids[8:])
        out, state = tmp_path / "out.jsonl", tmp_path / "state.jsonl"
        arguments = [*VBS_ASYNC, "crawl", "--output", str(out), "--resume", str(state),
                     "--max-projects", "2", "--page-size", "10", *emu.project_ids]  # fmt: skip
        first = subprocess.Popen(
            arguments, env=command_env(emu), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        wait_for_lines(state, 6, first)  # the job's line, then 5 finished projects
        _, stderr = stop_process(first, stop)
        gate.opened.set()
        assert first.returncode == status, stderr
        if stop != signal.SIGKILL:
            assert b"interrupted:" in stderr
            assert b"projects: " in stderr
        finished = state.read_bytes().count(b"\n") - 1
        assert 5 <= finished <= 8

        second = subprocess.run(
            arguments, env=command_env(emu), capture_output=True, timeout=60, check=False
        )
        assert second.returncode == 0, second.stderr
        assert f"{finished} already done".encode() in second.stderr
        assert rows_by_project(out.read_text()) == held(emu)


def test_a_crawl_interrupted_while_throttled_counts_every_request_it_sent(tmp_path):
    # Every request refused but the window's first 3: the summary and the report counted
    # only the projects that finished, "requests: 0 (0 retries, 0 answered 429)" after 80
    # requests and 80 refusals (an outsider's gateway), beside "22 requests/s".
    quota = "window:3/60,announce=off"
    with emulator_in_thread(projects=20, sharings_per_project=5, quota=quota) as emu:
        report = tmp_path / "report.json"
        arguments = [*VBS_ASYNC, "crawl", "--output", str(tmp_path / "out.jsonl"),
                     "--report", str(report), *emu.project_ids]  # fmt: skip
        process = subprocess.Popen(
            arguments, env=command_env(emu), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 30
        while emu.quota.throttled < 30 and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.01)
        _, stderr = stop_process(process, signal.SIGINT)
        sent, refused = emu.requests_received, emu.quota.throttled  # type: ignore[union-attr]
    assert process.returncode == 130, stderr
    written = json.loads(report.read_text())
    assert written["stopped"] == "interrupted: SIGINT (Ctrl-C)"  # it said null
    totals = written["totals"]
    # The requests in flight at the signal may or may not have reached the emulator.
    assert sent - 16 <= totals["requests"] <= sent
    assert refused - 16 <= totals["throttled"] <= refused
    summary = f"requests: {totals['requests']:,} ({totals['retries']} retries, "
    assert f"{summary}{totals['throttled']:,} answered 429)".encode() in stderr


def test_emulator_command_prints_its_url_and_a_token():
    command = [*VBS_ASYNC_INTERRUPTIBLE, "emulator", "--port", "0", "--projects", "2"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("VBS emulator at http://127.0.0.1:")
            assert "(token: emulator-token)" in line
        finally:
            stop_process(process, signal.SIGINT)
    assert process.returncode == 0


def test_the_installed_console_script_runs():
    script = Path(sys.executable).with_name("vbs-async")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "crawl" in result.stdout
    assert "emulator" in result.stdout


def test_plain_progress_keeps_coming_while_a_slow_project_runs(clean_env):
    with emulator_in_thread(projects=1, sharings_per_project=150, latency=0.06) as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        result = invoke("crawl", "--endpoint", emu.url, "--page-size", "10", "--end-check", "short_page",
                        "--progress-interval", "0.5", emu.project_ids[0])  # fmt: skip
    assert result.exit_code == 0
    while_listing = [
        line for line in result.stderr.splitlines() if "progress: 0/1 projects" in line
    ]
    assert len(while_listing) >= 2
    # The sharings of the project being listed count as they arrive.
    counts = [int(line.split(", ")[1].split()[0].replace(",", "")) for line in while_listing]
    assert counts == sorted(counts)
    assert 0 < counts[-1] < 150
    assert " 0 req/s" not in while_listing[-1]  # requests count as they start


def test_a_reader_that_leaves_early_ends_the_crawl_quietly_with_141():
    command = [*VBS_ASYNC, "crawl", "--emulator", "--emulator-projects", "300"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(b'{"project_id"')
        process.stdout.close()  # what `| head -1` does
        assert process.wait(30) == 141
        assert process.stderr is not None
        errors = process.stderr.read().decode()
    assert "Broken pipe" not in errors
    assert "Traceback" not in errors


def test_with_stderr_closed_the_summary_never_lands_in_the_data_on_stdout():
    result = subprocess.run(
        [*VBS_ASYNC, "crawl", "--emulator", "--emulator-projects", "2", "--emulator-sharings", "3"],
        stdout=subprocess.PIPE,
        preexec_fn=lambda: os.close(2),
        check=False,
    )
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 6
    assert all(json.loads(line)["project_id"] for line in lines)


def test_timeout_and_deadline_bound_a_silent_endpoint(clean_env):
    with emulator_in_thread(projects=1, sharings_per_project=1, latency=5) as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        result = invoke("crawl", "--endpoint", emu.url, "--timeout", "0.2", "--deadline", "0.5",
                        "--attempts", "10", emu.project_ids[0])  # fmt: skip
        sent = len(emu.requests)
    # Nothing ever answered: a setup problem, exit 2 in one line naming what to check.
    assert result.exit_code == 2
    assert 1 <= sent <= 3  # the deadline stopped it, not the 10 attempts
    # The deadline, or the silence after the first request's timeout, whichever came first.
    assert "deadline of 0.5s" in result.stderr or "no answer within --timeout 0.2s" in result.stderr
    assert "--endpoint" in result.stderr
    assert "--timeout" in result.stderr


def test_the_emulator_command_lists_the_ids_it_serves_and_writes_them_for_a_crawl(tmp_path):
    ids_file = tmp_path / "ids.txt"
    command = [
        *VBS_ASYNC_INTERRUPTIBLE,
        "emulator",
        "--port",
        "0",
        "--projects",
        "3",
        "--ids-file",
        str(ids_file),
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            header = [process.stdout.readline() for _ in range(2)]
            printed = [process.stdout.readline().strip() for _ in range(3)]
        finally:
            stop_process(process, signal.SIGINT)
    assert header[1].strip() == "Press Ctrl-C to stop. Project IDs:"
    assert printed == Emulator(projects=3).project_ids
    assert ids_file.read_text().split() == printed


@pytest.mark.parametrize(
    "entry", [[*VBS_ASYNC, "emulator"], [sys.executable, "-m", "vbs_async.testing"]]
)
def test_a_busy_port_is_one_line_and_exit_2_from_either_entry_point(entry):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*entry, "--port", str(port)], capture_output=True, text=True, timeout=30, check=False
        )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"vbs-async: error: cannot serve on 127.0.0.1:{port}: address already in use"
    )


# -- reaching the cloud: projects by name, every project, TLS ---------------------------


def password_env(clean_env, emu: Emulator) -> None:
    """The OS_* password setup, VBS found through the token catalog (no VBS_ENDPOINT)."""
    clean_env.setenv("OS_AUTH_URL", emu.url + "/v3")
    clean_env.setenv("OS_USERNAME", "alice")
    clean_env.setenv("OS_PASSWORD", "alice-password-1")
    clean_env.setenv("OS_USER_DOMAIN_NAME", "emulator-domain")
    clean_env.setenv("OS_REGION_NAME", "eu-de")


def crawled_projects(emu: Emulator) -> set[str]:
    return {r.project_id for r in emu.requests if r.project_id is not None}


def test_all_projects_crawls_exactly_the_enabled_non_mos_projects_of_the_region(clean_env):
    with emulator_in_thread(
        projects=4, sharings_per_project=3, users={"alice": "alice-password-1"}
    ) as emu:
        password_env(clean_env, emu)
        result = invoke("crawl", "--all-projects")
    assert result.exit_code == 0, result.stderr
    assert crawled_projects(emu) == set(emu.project_ids)
    assert {p for _, p in emu.identity.token_requests} == {None, *emu.project_ids}
    assert set(rows_by_project(result.stdout)) == set(emu.project_ids)


def test_projects_are_named_by_name_or_configured_as_the_default(clean_env):
    with emulator_in_thread(
        projects=4, sharings_per_project=2, users={"alice": "alice-password-1"}
    ) as emu:
        password_env(clean_env, emu)
        by_name = invoke("crawl", "eu-de_p00001", emu.project_ids[3])
        clean_env.setenv("OS_PROJECT_NAME", "eu-de_p00002")
        by_default = invoke("crawl")
        unknown = invoke("crawl", "eu-de_nothing")
    assert set(rows_by_project(by_name.stdout)) == {emu.project_ids[1], emu.project_ids[3]}
    assert set(rows_by_project(by_default.stdout)) == {emu.project_ids[2]}
    assert unknown.exit_code == 1  # an unknown name fails alone, named
    assert "no project named 'eu-de_nothing'" in unknown.stderr


@pytest.mark.usefixtures("clean_env")
def test_all_projects_and_named_projects_do_not_mix():
    result = invoke("crawl", "--emulator", "--all-projects", "p1")
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_the_emulator_s_every_project_comes_from_its_iam_too():
    result = invoke("crawl", "--emulator", "--emulator-projects", "3", "--all-projects")
    assert result.exit_code == 0, result.stderr
    assert len(rows_by_project(result.stdout)) == 3


def test_ca_bundle_trusts_a_private_ca_and_insecure_warns_loudly(clean_env):
    with command_emulator(clean_env, projects=2, sharings_per_project=2, tls=True) as emu:
        refused = invoke("crawl", "--attempts", "1", *emu.project_ids)
        trusted = invoke("crawl", "--ca-bundle", emu.ca_bundle, *emu.project_ids)
        insecure = invoke("crawl", "--insecure", *emu.project_ids)
        clean_env.setenv("OS_CACERT", emu.ca_bundle)
        from_env = invoke("crawl", *emu.project_ids)
    assert refused.exit_code != 0
    assert "certificate" in refused.stderr
    assert trusted.exit_code == 0, trusted.stderr
    assert len(rows_by_project(trusted.stdout)) == 2
    assert insecure.exit_code == 0
    assert "NOT verified" in insecure.stderr
    assert from_env.exit_code == 0, from_env.stderr


def test_verbose_shows_each_retry_and_debug_each_request_with_a_time(clean_env):
    with emulator_in_thread(projects=1, sharings_per_project=3) as emu:
        emu.inject(Fault.answer(503), project_id=emu.project_ids[0], times=1)
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        normal = invoke("crawl", "--endpoint", emu.url, *emu.project_ids)
        emu.inject(Fault.answer(503), project_id=emu.project_ids[0], times=1)
        verbose = invoke("crawl", "--verbose", "--endpoint", emu.url, *emu.project_ids)
        debug = invoke("crawl", "--debug", "--endpoint", emu.url, *emu.project_ids)
    assert "retry" not in normal.stderr
    retries = [line for line in verbose.stderr.splitlines() if "retry" in line]
    assert len(retries) == 1, verbose.stderr
    assert emu.project_ids[0] in retries[0]
    assert "503" in retries[0]
    assert "waiting" in retries[0]
    requests = [line for line in debug.stderr.splitlines() if "GET /v2/" in line]
    assert requests
    assert all(line[:2].isdigit() and line[2] == ":" for line in requests)


def test_verbose_says_when_the_gateway_announces_its_quota(clean_env):
    # The quota announced and the pace under it were INFO lines only `--debug` showed;
    # `--verbose` showed each throttled request but not what the client made of them.
    with emulator_in_thread(projects=4, sharings_per_project=3, quota="bucket:20:2") as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        normal = invoke("crawl", "--endpoint", emu.url, *emu.project_ids)
        verbose = invoke("crawl", "--verbose", "--endpoint", emu.url, *emu.project_ids)
    assert verbose.exit_code == 0, verbose.stderr
    assert "announced its quota: 20 per 1 s" in verbose.stderr
    assert "announced its quota" not in normal.stderr


def test_on_a_real_terminal_the_progress_bar_fits_80_columns_and_shows_an_eta(tmp_path):
    import pty  # noqa: PLC0415 - POSIX only
    import re  # noqa: PLC0415

    controller, terminal = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "xterm-256color"}
    command = [*VBS_ASYNC, "crawl", "--emulator", "--emulator-projects", "300",
               "--emulator-sharings", "40", "--max-projects", "4", "-o", "rows.jsonl"]  # fmt: skip
    process = subprocess.Popen(
        command, stderr=terminal, stdout=subprocess.DEVNULL, env=env, cwd=tmp_path
    )
    os.close(terminal)
    seen = read_until_closed(controller)
    process.wait(60)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    lines = [line for line in re.split(r"[\r\n]+", text) if line.strip()]
    assert process.returncode == 0
    bars = [line for line in lines if line.startswith("crawling")]
    assert bars, lines
    assert any("ETA" in line for line in bars)
    assert max(len(line) for line in lines) <= 80


def test_an_agency_from_the_environment_crawls_every_project_of_the_other_account(clean_env):
    with emulator_in_thread(
        projects=4,
        sharings_per_project=3,
        users={"alice": "alice-password-1"},
        agencies=[("OTC-other", "inventory")],
    ) as emu:
        password_env(clean_env, emu)
        clean_env.setenv("OS_AGENCY_NAME", "inventory")
        clean_env.setenv("OS_AGENCY_DOMAIN_NAME", "OTC-other")
        result = invoke("crawl", "--all-projects")
    assert result.exit_code == 0, result.stderr
    assert set(rows_by_project(result.stdout)) == set(emu.project_ids)
    # One agency token for the project list, then one per project; the user's once.
    assert sorted(p or "" for _, _, p in emu.identity.agency_token_requests) == sorted(
        ["", *emu.project_ids]
    )
    assert emu.identity.token_requests == [("alice", None)]


def test_shell_completion_completes_commands_and_options():
    def complete(words: str, index: int) -> str:
        env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(index),
               "_VBS_ASYNC_COMPLETE": "bash_complete"}  # fmt: skip
        done = subprocess.run(VBS_ASYNC, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "plain,crawl" in complete("vbs-async cr", 1)
    assert "plain,--all-projects" in complete("vbs-async crawl --all", 2)


@pytest.mark.parametrize("value", ["1e308", "1e-300"])
def test_an_absurd_rate_limit_is_a_usage_error_in_words(value):
    result = invoke("crawl", "--emulator", "--rate-limit", value)
    assert result.exit_code == 2
    assert result.stderr.startswith("vbs-async: error: rate_limit must be at ")
    assert len(result.stderr.strip().splitlines()) == 1  # no traceback
