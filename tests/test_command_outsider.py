"""What an outside tester broke after issue 21 was built: each finding a test, from outside.

A cancel that claimed success with the wrong project, crawls on one output
that silently lost rows, a dead endpoint during a bulk cancel, files the
crawl writes that cancel could not read, and other surprises.
"""

# ruff: noqa: F811 - `emu` is the fixture of test_command_surprises, imported
from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import resource
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from vbs_async.cli._text import TerminalRows, for_terminal, printable
from vbs_async.testing import Fault

from ._helpers import VBS_ASYNC, Gate, closed_port, command_env, emulator_in_thread
from .test_cli import invoke, rows_by_project
from .test_command_files import one_error_line
from .test_command_surprises import emu, password_setup  # noqa: F401 - the fixture

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def iam_emu(clean_env):
    """3 projects of 6 sharings, the command configured with a password (IAM lists projects)."""
    with emulator_in_thread(
        projects=3, sharings_per_project=6, seed=5, users={"alice": "alice-password-1"}
    ) as emulator:
        password_setup(clean_env, emulator)
        yield emulator


def crawl_file(tmp_path: Path, project: str, name: str = "rows.jsonl") -> Path:
    rows = tmp_path / name
    result = invoke("crawl", "-o", str(rows), project)
    assert result.exit_code == 0, result.stderr
    return rows


# -- 1. cancel with the wrong project is not a success ------------------------------------------


@pytest.mark.parametrize("fixture", ["emu", "iam_emu"])
def test_cancel_with_another_project_says_not_found_and_fails(request, fixture):
    emu = request.getfixturevalue(fixture)
    owner, other = emu.project_ids[0], emu.project_ids[1]
    sharing = emu.sharings(owner)[0]["id"]
    result = invoke("cancel", other, sharing, "--yes")
    assert result.exit_code == 1, result.stderr
    assert f"not found {sharing} of {other}" in result.stderr
    assert "already gone" not in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "cancelled 0, already gone 0, not found 1, failed 0"
    )
    assert sharing in {s["id"] for s in emu.sharings(owner)}


def test_cancel_with_another_project_s_name_says_not_found(iam_emu):
    owner = iam_emu.project_ids[0]
    sharing = iam_emu.sharings(owner)[0]["id"]
    result = invoke("cancel", "eu-de_p00001", sharing, "--yes")
    assert result.exit_code == 1, result.stderr
    assert "not found" in result.stderr
    assert sharing in {s["id"] for s in iam_emu.sharings(owner)}


@pytest.mark.parametrize("owner", ["eu-de_nowhere", "f" * 32])
@pytest.mark.parametrize("dry_run", [True, False])
def test_cancel_from_file_with_an_owner_iam_does_not_list_sends_nothing(
    iam_emu, tmp_path, owner, dry_run
):
    rows = crawl_file(tmp_path, iam_emu.project_ids[0])
    records = [json.loads(line) for line in rows.read_text().splitlines()]
    records[0]["from_project_id"] = owner
    rows.write_text("".join(json.dumps(r) + "\n" for r in records))
    before = iam_emu.requests_received
    result = invoke("cancel", "--from-file", str(rows), "--dry-run" if dry_run else "--yes")
    assert result.exit_code == 2, result.stderr
    line = one_error_line(result)
    assert owner in line
    assert "not a project IAM lists" in line
    assert "would cancel" not in result.stdout
    assert len(iam_emu.sharings(iam_emu.project_ids[0])) == 6
    assert iam_emu.requests_received - before <= 2  # the token and IAM's project list


def test_cancel_from_file_rows_moved_to_another_owner_are_not_found_without_iam(emu, tmp_path):
    rows = crawl_file(tmp_path, emu.project_ids[0])
    records = [json.loads(line) for line in rows.read_text().splitlines()]
    records[0]["from_project_id"] = emu.project_ids[1]  # not where the crawl saw it
    rows.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = invoke("cancel", "--from-file", str(rows), "--yes")
    assert result.exit_code == 1, result.stderr
    assert f"not found {records[0]['id']} of {emu.project_ids[1]}" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "cancelled 5, already gone 0, not found 1, failed 0"
    )
    assert [s["id"] for s in emu.sharings(emu.project_ids[0])] == [records[0]["id"]]


def test_cancel_from_file_of_the_crawl_run_again_is_already_gone_with_iam(iam_emu, tmp_path):
    rows = crawl_file(tmp_path, iam_emu.project_ids[0])
    first = invoke("cancel", "--from-file", str(rows), "--yes")
    again = invoke("cancel", "--from-file", str(rows), "--yes")
    assert (first.exit_code, again.exit_code) == (0, 0), again.stderr
    assert again.stderr.strip().splitlines()[-1] == "cancelled 0, already gone 6, failed 0"


# -- 4. cancel reads every file the crawl writes -------------------------------------------------


def test_cancel_reads_a_crawl_s_csv_with_a_200_kb_description(emu, tmp_path):
    project = emu.project_ids[0]
    for sharing in emu.sharings(project):
        emu.store.add({**sharing, "backup": {**sharing["backup"], "description": "d" * 200_000}})
    rows = tmp_path / "rows.csv"
    assert invoke("crawl", "-o", str(rows), "--format", "csv", project).exit_code == 0
    assert rows.stat().st_size > 6 * 200_000
    result = invoke("cancel", "--from-file", str(rows), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("would cancel") == 6


def test_cancel_reads_a_utf16_file_as_the_projects_file_does(emu, tmp_path):
    rows = crawl_file(tmp_path, emu.project_ids[0])
    rows.write_bytes(rows.read_text().encode("utf-16"))
    result = invoke("cancel", "--from-file", str(rows), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("would cancel") == 6


@pytest.mark.usefixtures("emu")
def test_cancel_from_a_file_larger_than_the_limit_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("vbs_async.cli._calls._FROM_FILE_LIMIT", 1000)
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b"0" * 5000)  # no line end: an endless input looks like this
    result = invoke("cancel", "--from-file", str(rows), "--yes")
    assert result.exit_code == 2
    assert "is larger than" in one_error_line(result)


# -- 2. every crawl locks its output; 8. a killed crawl's temporary file is removed -------------


def partial_with_rows(directory: Path, process: subprocess.Popen[bytes]) -> Path:
    """The first crawl's temporary output, once it holds a finished project's rows."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for partial in directory.glob(".out.jsonl.*.partial"):
            if b"\n" in partial.read_bytes():
                return partial
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.01)
    raise AssertionError("the first crawl never wrote a project's rows")


@contextlib.contextmanager
def held_crawl(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[str], Gate, dict]]:
    """A crawl to out.jsonl (no state) that wrote a project's rows and is held at a gate."""
    gate = Gate([])
    with emulator_in_thread(projects=20, sharings_per_project=20, drift=gate) as emulator:
        gate.held = set(emulator.project_ids[5:])
        env = command_env(emulator)
        command = [*VBS_ASYNC, "crawl", "-o", str(tmp_path / "out.jsonl"), "--max-projects",
                   "1", "--timeout", "600", "--deadline", "1200", *emulator.project_ids]  # fmt: skip
        first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
        try:
            partial_with_rows(tmp_path, first)
            yield first, emulator.project_ids, gate, env
        finally:
            gate.opened.set()
            first.communicate(timeout=60)


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_crawl_on_the_same_new_output_stops_at_once(tmp_path, resume):
    out = tmp_path / "out.jsonl"
    with held_crawl(tmp_path) as (first, projects, _gate, env):
        extra = ["--resume", str(tmp_path / "second.state")] if resume else []
        second = subprocess.run(
            [*VBS_ASYNC, "crawl", "-o", str(out), *extra, projects[0]],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert first.poll() is None  # the second ran while the first was writing
    assert second.returncode == 2, second.stderr
    assert f"another vbs-async crawl is writing {out}" in second.stderr
    assert first.returncode == 0
    rows = rows_by_project(out.read_text())
    assert sum(len(v) for v in rows.values()) == 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]  # no lock file left


def test_a_crawl_removes_the_temporary_file_of_one_killed_with_sigkill(tmp_path):
    with held_crawl(tmp_path) as (first, projects, gate, env):
        first.kill()
        first.wait(timeout=30)
        gate.opened.set()  # the emulator answers the next run
        assert list(tmp_path.glob(".out.jsonl.*.partial"))  # what SIGKILL leaves
        again = subprocess.run(
            [*VBS_ASYNC, "crawl", "-o", str(tmp_path / "out.jsonl"), projects[0]],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


# -- 11. a refused run leaves no empty state ----------------------------------------------------


def test_a_crawl_refused_before_it_starts_leaves_no_state_file(emu, tmp_path):
    state = tmp_path / "crawl.state"
    result = invoke("crawl", emu.project_ids[0], "-o", str(tmp_path / "out.jsonl"),
                    "--resume", str(state), "--account", "a", "--db",
                    str(tmp_path / "missing" / "x.db"))  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# -- 3. a bulk cancel against a dead endpoint or refused credentials stops early --------------


def test_a_bulk_cancel_against_a_silent_endpoint_stops_early_with_exit_2(clean_env):
    with emulator_in_thread(projects=1, sharings_per_project=80, latency=5) as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        project = emu.project_ids[0]
        ids = [s["id"] for s in emu.sharings(project)]
        result = invoke("cancel", project, *ids, "--yes", "--endpoint", emu.url,
                        "--timeout", "0.2")  # fmt: skip
    assert result.exit_code == 2, result.stderr
    *before, last = result.stderr.strip().splitlines()
    assert last.startswith("vbs-async: error: ")
    assert "--endpoint" in last
    assert "--timeout" in last
    assert "--deadline" not in result.stderr  # the crawl's option: cancel has none
    closing = before[-1]
    assert closing.startswith("cancelled 0, already gone 0, failed 0; ")
    assert "unknown whether cancelled" in closing
    assert "not sent" in closing  # it stopped sending
    assert not any(line.startswith(("failed ", "unknown ")) for line in before)


def test_a_bulk_cancel_with_a_refused_token_stops_early_with_exit_2(clean_env):
    with emulator_in_thread(projects=1, sharings_per_project=80) as emu:
        clean_env.setenv("OS_AUTH_TOKEN", "not-the-token")
        clean_env.setenv("VBS_ENDPOINT", emu.url)
        project = emu.project_ids[0]
        ids = [s["id"] for s in emu.sharings(project)]
        before = emu.requests_received
        result = invoke("cancel", project, *ids, "--yes")
        sent = emu.requests_received - before
    assert result.exit_code == 2, result.stderr
    assert (
        result.stderr.strip().splitlines()[-1].startswith("vbs-async: error: credentials refused")
    )
    assert sent < len(ids)
    assert "not sent" in result.stderr


@pytest.mark.parametrize("command", ["count", "get"])
def test_a_single_call_s_timeout_names_its_own_options(clean_env, command):
    with emulator_in_thread(projects=1, sharings_per_project=1, latency=5) as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        project = emu.project_ids[0]
        extra = [emu.sharings(project)[0]["id"]] if command == "get" else []
        result = invoke(command, project, *extra, "--endpoint", emu.url, "--timeout", "0.2")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "--deadline" not in line
    assert "RetryPolicy" not in line
    assert "--timeout" in line


# -- 6. a shell redirect to one of the command's files; 7. /dev/fd/N ---------------------------


@pytest.mark.parametrize(
    ("options", "redirected"),
    [
        (["-q", "--report", "{d}/rr.json"], "rr.json"),
        (["-o", "{d}/oo.jsonl", "--report", "-"], "oo.jsonl"),
    ],
)
def test_stdout_redirected_to_a_file_the_command_writes_is_refused(
    emu, tmp_path, options, redirected
):
    target = tmp_path / redirected
    target.write_bytes(b"kept\n")
    with target.open("ab") as stdout:
        result = subprocess.run(
            [*VBS_ASYNC, "crawl", emu.project_ids[0], *(o.format(d=tmp_path) for o in options)],
            env=command_env(emu), stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60,
            check=False,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "is the file stdout is redirected to" in result.stderr
    assert target.read_bytes() == b"kept\n"


def test_output_to_an_inherited_descriptor_is_written_through_it(emu, tmp_path):
    target = tmp_path / "log.jsonl"
    target.write_bytes(b"earlier\n")
    inode = target.stat().st_ino
    with target.open("ab") as appended:  # the shell's `exec 3>>log.jsonl`
        descriptor = appended.fileno()
        result = subprocess.run(
            [*VBS_ASYNC, "crawl", emu.project_ids[0], "-o", f"/proc/self/fd/{descriptor}"],
            env=command_env(emu), pass_fds=(descriptor,), capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert target.stat().st_ino == inode  # not replaced
    lines = target.read_text().splitlines()
    assert lines[0] == "earlier"
    assert len(lines) == 7


# -- 5. server IDs that are not plain IDs; 14. rows to a terminal are escaped ------------------

HOSTILE_NAME = "\x1b]0;T\x07 \u009b2J \u2028 \u202e end"


def hostile_backup(emu) -> None:
    sharing = emu.sharings(emu.project_ids[0])[0]
    emu.store.add({**sharing, "backup": {**sharing["backup"], "name": HOSTILE_NAME}})


def on_a_terminal(arguments: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run the command with stdout on a pseudo-terminal; its status and what the terminal got."""
    main, secondary = pty.openpty()
    try:
        process = subprocess.Popen(arguments, env=env, stdout=secondary, stderr=subprocess.PIPE)
    finally:
        os.close(secondary)
    shown = b""
    with contextlib.suppress(OSError):  # EIO: the command closed its end
        while chunk := os.read(main, 65536):
            shown += chunk
    os.close(main)
    process.communicate(timeout=60)
    return process.returncode, shown


@pytest.mark.parametrize("form", ["jsonl", "csv"])
def test_rows_to_a_terminal_escape_control_characters_files_keep_them(emu, tmp_path, form):
    hostile_backup(emu)
    project = emu.project_ids[0]
    status, shown = on_a_terminal(
        [*VBS_ASYNC, "crawl", project, "--format", form], command_env(emu)
    )
    assert status == 0
    for raw in ["\x1b", "\x07", "\u009b", "\u2028", "\u202e"]:
        assert raw.encode() not in shown
    assert b"\\x1b]0;T\\x07" in shown or b"\\u001b]0;T\\u0007" in shown
    assert b"\\u2028" in shown
    assert b"\\u202e" in shown
    exact = tmp_path / f"rows.{form}"
    assert invoke("crawl", project, "--format", form, "-o", str(exact)).exit_code == 0
    assert "\u202e end".encode() in exact.read_bytes()


TERMINAL_HOSTILE = ["\x1b[2J", "\x1b]52;c;ZXZpbA==\x07", "\u202e", "\x9b2J", "\u2028"]


@pytest.mark.parametrize("end", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("hostile", TERMINAL_HOSTILE)
def test_every_row_shown_on_a_terminal_is_escaped_whatever_its_line_end(hostile, end):
    # CSV ends its rows with CRLF, JSON Lines with LF: the escaping must not depend on it,
    # whether the rows come in one write or byte by byte.
    rows = f"a,{hostile}x{end}b,{hostile}{end}last {hostile}".encode()
    shown_at_once = for_terminal(rows)
    terminal = io.BytesIO()
    written = TerminalRows(terminal)
    for byte in rows:
        written.write(bytes([byte]))
    written.flush()
    for shown in (shown_at_once, terminal.getvalue()):
        assert hostile.encode() not in shown
        assert shown.count(end.encode()) == 2  # the line ends stay, nothing else splits a line
        assert printable(hostile).encode() in shown
        assert shown.endswith(b"last " + printable(hostile).encode())


@pytest.mark.parametrize("bad_id", ["=1+2", "\x1b]0;T\x07", "-x"])
def test_a_sharing_whose_id_is_not_a_plain_id_fails_its_project(emu, bad_id):
    project, other = emu.project_ids[0], emu.project_ids[1]
    sharing = emu.sharings(project)[0]
    emu.store.add({**sharing, "id": bad_id})
    result = invoke("crawl", project, other)
    assert result.exit_code == 1
    assert "is not a plain ID" in result.stderr
    assert "\x1b" not in result.stderr
    assert set(rows_by_project(result.stdout)) == {other}


# -- 12. endless inputs; 13. small surprises -----------------------------------------------------


@pytest.mark.usefixtures("emu")
def test_a_projects_file_larger_than_the_limit_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("vbs_async.cli._commands._PROJECTS_FILE_LIMIT", 1000)
    endless = tmp_path / "projects.txt"
    endless.write_bytes(b"\0" * 5000)
    result = invoke("crawl", "--projects-file", str(endless))
    assert result.exit_code == 2
    assert "is larger than" in one_error_line(result)


def answered(
    arguments: list[str], env: dict[str, str], answer: bytes
) -> subprocess.CompletedProcess:
    """Run the command with stdin on a pseudo-terminal that answers its prompt with `answer`."""
    main, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            arguments, env=env, stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    finally:
        os.close(secondary)
    try:
        os.write(main, answer)
        out, err = process.communicate(timeout=60)
    finally:
        os.close(main)
    return subprocess.CompletedProcess(arguments, process.returncode, out.decode(), err.decode())


@pytest.mark.parametrize("answer", [b"n\n", b"\x04"])
def test_declining_the_prompt_says_nothing_was_cancelled(emu, answer):
    project = emu.project_ids[0]
    sharing = emu.sharings(project)[0]["id"]
    result = answered([*VBS_ASYNC, "cancel", project, sharing], command_env(emu), answer)
    assert result.returncode == 1, result.stderr
    assert "vbs-async: error: nothing cancelled: not confirmed" in result.stderr
    assert len(emu.sharings(project)) == 6


def test_share_dry_run_names_a_repeated_project_once(emu):
    project, other = emu.project_ids[0], emu.project_ids[1]
    backup = emu.sharings(project)[0]["backup_id"]
    result = invoke("share", project, backup, other, other, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count(other) == 1


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_timeout_that_is_not_a_number_of_seconds_is_a_usage_error(emu, value):
    result = invoke("count", emu.project_ids[0], "--timeout", value)
    assert result.exit_code == 2
    assert "RetryPolicy" not in result.stderr
    assert "--timeout" in result.stderr


# -- 10. errors that say what went wrong -----------------------------------------------------


def close_stdout() -> None:
    """The shell's `>&-`."""
    os.close(1)


@pytest.mark.parametrize("command", ["crawl", "count"])
def test_stdout_closed_is_one_line_naming_it(emu, command):
    result = subprocess.run(
        [*VBS_ASYNC, command, emu.project_ids[0]], preexec_fn=close_stdout,
        env=command_env(emu), stderr=subprocess.PIPE, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("vbs-async: error: ")
    assert "stdout is closed" in lines[-1]
    assert "NoneType" not in result.stderr
    assert "unexpected" not in result.stderr


def test_stdout_closed_with_an_output_file_crawls(emu, tmp_path):
    out = tmp_path / "rows.jsonl"
    result = subprocess.run(
        [*VBS_ASYNC, "crawl", emu.project_ids[0], "-o", str(out)], preexec_fn=close_stdout,
        env=command_env(emu), stderr=subprocess.PIPE, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 6


def test_an_output_over_the_file_size_limit_names_the_file(emu, tmp_path):
    out = tmp_path / "rows.jsonl"
    emu.add_sharings(emu.project_ids[0], 200)

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # `ulimit -f`

    result = subprocess.run(
        [*VBS_ASYNC, "crawl", emu.project_ids[0], "-o", str(out)],
        env=command_env(emu), stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        preexec_fn=small_files,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("vbs-async: error: ")
    assert str(out) in line
    assert "File too large" in line


# -- 9. log lines print above the progress bar ----------------------------------------------------


@pytest.mark.usefixtures("clean_env")
def test_verbose_log_lines_are_never_glued_to_the_progress_bar(tmp_path):
    with emulator_in_thread(projects=2, sharings_per_project=3, latency=0.5) as emu:
        emu.inject(Fault.answer(500, message="try again"), project_id=emu.project_ids[0], times=1)
        main, secondary = pty.openpty()
        env = command_env(emu, TERM="xterm-256color", COLUMNS="100")
        try:
            process = subprocess.Popen(
                [*VBS_ASYNC, "crawl", *emu.project_ids, "-o", str(tmp_path / "rows.jsonl"),
                 "--verbose"],
                env=env, stdout=subprocess.DEVNULL, stderr=secondary,
            )  # fmt: skip
        finally:
            os.close(secondary)
        shown = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(main, 65536):
                shown += chunk
        os.close(main)
        assert process.wait(timeout=60) == 0
    assert b"vbs-async: retry" in shown  # the line was logged, while the bar was drawn
    assert b"crawling" in shown
    assert re.search(rb"ETA [^\x1b\r\n]*vbs-async:", shown) is None, shown


def test_an_ids_file_that_cannot_be_written_is_named_not_the_port(tmp_path):
    ids = tmp_path / "missing" / "ids.txt"
    port = closed_port()
    result = invoke("emulator", "--port", str(port), "--ids-file", str(ids))
    assert result.exit_code == 2
    line = one_error_line(result)
    assert f"--ids-file {ids}" in line
    assert str(port) not in line
