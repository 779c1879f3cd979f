"""The files the command writes, as an operator gives them: never harmed, never mixed.

Every path lives in a temporary folder: a FIFO made with `os.mkfifo`, a
symlink, and for a character device the terminal of a pty this test opens
(a real character device that may be written to).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from vbs_async.cli._files import is_stdout
from vbs_async.testing import Emulator

from ._helpers import VBS_ASYNC, Gate, command_env, emulator_in_thread, wait_for_lines
from .test_cli import invoke, rows_by_project

PROJECTS = Emulator(projects=3).project_ids
EMULATED = ("--emulator", "--emulator-projects", "3", "--emulator-sharings", "4")


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vbs-async: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- targets that are not regular files ---------------------------------------------------


def test_a_fifo_is_written_as_a_redirect_and_its_reader_gets_every_row(tmp_path):
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = invoke("crawl", *EMULATED, "-o", str(fifo))
    reader.join(30)
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still a FIFO, not replaced by a file
    assert sum(map(len, rows_by_project(received[0].decode()).values())) == 12
    assert [p.name for p in tmp_path.iterdir()] == ["rows.fifo"]  # no temporary file


def test_a_character_device_is_written_as_a_redirect(tmp_path):
    controller, terminal = os.openpty()
    device = os.ttyname(terminal)  # /dev/pts/N: a character device this test owns
    seen = bytearray()

    def read() -> None:
        while seen.count(b"\n") < 12:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        result = invoke("crawl", *EMULATED, "-o", device, "--report", str(tmp_path / "r.json"))
        reader.join(30)
        assert stat.S_ISCHR(Path(device).stat().st_mode)  # still the device
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in seen.decode().splitlines() if line.strip()]
    assert len(rows) == 12
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_every_name_of_stdout_means_stdout_by_name():
    # Decided by name, never by touching the path: no test needs to hand the
    # command a real /dev path (CI runs as root).
    for name in ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"):
        assert is_stdout(Path(name)), name
    assert not is_stdout(Path("stdout"))
    assert not is_stdout(Path("/dev/stdout.jsonl"))


# /proc/self/fd/1 names stdout as /dev/stdout does, and a command that broke would
# fail to replace it (procfs refuses a rename) instead of replacing /dev/stdout.
STDOUT_BY_PATH = "/proc/self/fd/1"


def test_dev_stdout_is_stdout_whatever_stdout_is(tmp_path):
    piped = subprocess.run(
        [*VBS_ASYNC, "crawl", *EMULATED, "-o", STDOUT_BY_PATH],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stdout.splitlines()) == 12
    # Redirected to a file: that file (the same inode) gets the rows.
    target = tmp_path / "redirected.jsonl"
    with target.open("wb") as stream:
        inode = os.fstat(stream.fileno()).st_ino
        done = subprocess.run(
            [*VBS_ASYNC, "crawl", *EMULATED, "-o", STDOUT_BY_PATH],
            stdout=stream,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert target.stat().st_ino == inode
    assert len(target.read_bytes().splitlines()) == 12


def test_a_symlink_is_written_through_and_stays_a_symlink(tmp_path):
    real = tmp_path / "data" / "rows.jsonl"
    real.parent.mkdir()
    real.write_text("old\n")
    real.chmod(0o600)
    link = tmp_path / "latest.jsonl"
    link.symlink_to(real)
    result = invoke("crawl", *EMULATED, "-o", str(link))
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink()
    assert link.resolve() == real
    assert sum(map(len, rows_by_project(real.read_text()).values())) == 12
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    # A dangling symlink: its target is created, as `>` would.
    dangling = tmp_path / "next.jsonl"
    dangling.symlink_to(tmp_path / "data" / "next-target.jsonl")
    assert invoke("crawl", *EMULATED, "-o", str(dangling)).exit_code == 0
    assert dangling.is_symlink()
    assert len((tmp_path / "data" / "next-target.jsonl").read_text().splitlines()) == 12


def test_a_directory_as_output_or_report_is_one_line(tmp_path):
    result = invoke("crawl", *EMULATED, "--report", str(tmp_path))
    assert "is a directory" in one_error_line(result)
    assert result.exit_code == 2


# -- modes --------------------------------------------------------------------------------


def test_an_output_that_was_0600_stays_0600_and_the_report_keeps_its_mode(tmp_path):
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    out.write_text("")
    out.chmod(0o600)
    report.write_text("{}")
    report.chmod(0o640)
    result = invoke("crawl", *EMULATED, "-o", str(out), "--report", str(report))
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(report.stat().st_mode) == 0o640
    assert json.loads(report.read_text())["exit_status"] == 0


def test_new_files_honour_the_umask(tmp_path):
    out, report, state = tmp_path / "out.jsonl", tmp_path / "report.json", tmp_path / "state"
    done = subprocess.run(
        [*VBS_ASYNC, "crawl", *EMULATED, "-o", str(out), "--report", str(report)],
        capture_output=True,
        timeout=60,
        preexec_fn=lambda: os.umask(0o077),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    resumed = tmp_path / "resumed.jsonl"
    done = subprocess.run(
        [*VBS_ASYNC, "crawl", *EMULATED, "-o", str(resumed), "--resume", str(state)],
        capture_output=True,
        timeout=60,
        preexec_fn=lambda: os.umask(0o027),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(resumed.stat().st_mode) == 0o640
    # In this process's umask, a new report gets what any new file would.
    fresh = tmp_path / "fresh.json"
    assert invoke("crawl", *EMULATED, "-o", "-", "--report", str(fresh)).exit_code == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask()


# -- paths checked before anything runs -----------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-o", "{out}", "--report", "{out}"], "--report {out} is the same file as --output {out}"),
        (
            ["-o", "{out}", "--resume", "{state}", "--report", "{state}"],
            "--report {state} is the same file as --resume {state}",
        ),
        (
            ["-o", "{out}", "--report", "{projects}"],
            "--report {projects} is the same file as --projects-file {projects}",
        ),
        (["-o", "{projects}"], "--output {projects} is the same file as --projects-file"),
        (["--report", "-"], "--report stdout is the same file as --output stdout"),
        (["-o", "{out}", "--resume", "{out}"], "is the output file"),
        (["-o", "{link}", "--report", "{out}"], "--report {out} is the same file as --output"),
    ],
)
def test_paths_that_are_one_file_are_refused_before_anything_runs(tmp_path, arguments, message):
    out, state, projects = tmp_path / "out.jsonl", tmp_path / "state", tmp_path / "projects.txt"
    link = tmp_path / "link.jsonl"
    out.write_text("yesterday\n")
    link.symlink_to(out)
    projects.write_text("\n".join(PROJECTS) + "\n")
    names = {"out": out, "state": state, "projects": projects, "link": link}
    filled = [a.format(**names) for a in arguments]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.is_symlink()}
    result = invoke("crawl", *EMULATED, "--projects-file", str(projects), *filled)
    assert result.exit_code == 2
    assert message.format(**names) in one_error_line(result)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.is_symlink()}
    assert after == before  # nothing written, nothing created
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("output", "report"),
    [("sub/../o.jsonl", "o.jsonl"), ("linked/o.jsonl", "real/o.jsonl")],
    ids=["dot-dot", "symlinked-folder"],
)
def test_two_spellings_of_one_new_file_are_refused_before_anything_runs(tmp_path, output, report):
    # Nothing exists there yet, so no inode can tell: the spelled paths differ, the file does not.
    (tmp_path / "sub").mkdir()
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    result = invoke(
        "crawl", *EMULATED, "-o", str(tmp_path / output), "--report", str(tmp_path / report)
    )
    assert result.exit_code == 2
    assert "is the same file as --output" in one_error_line(result)
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["linked", "real", "sub"]


def test_report_dash_is_stdout_when_the_rows_go_to_a_file(tmp_path):
    out = tmp_path / "out.jsonl"
    result = invoke("crawl", *EMULATED, "-o", str(out), "--report", "-")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["sharings"] == 12
    assert not (tmp_path / "-").exists()
    assert len(out.read_text().splitlines()) == 12


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line_before_anything_runs(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = invoke("crawl", *EMULATED, "--report", str(folder / "r.json"))
    finally:
        folder.chmod(0o700)
    assert "is not writable" in one_error_line(result)


# -- empty inputs --------------------------------------------------------------------------


def test_an_empty_projects_file_or_stdin_is_an_error_not_the_configured_project(
    clean_env, tmp_path
):
    listing = tmp_path / "projects.txt"
    listing.write_text("# nothing yet\n\n")
    clean_env.setenv("OS_AUTH_TOKEN", "t")
    clean_env.setenv("OS_PROJECT_ID", "0" * 32)  # a configured project, never crawled instead
    clean_env.setenv("VBS_ENDPOINT", "http://127.0.0.1:9")
    from_file = invoke("crawl", "--projects-file", listing)
    assert from_file.exit_code == 2
    assert one_error_line(from_file) == f"vbs-async: error: no projects in {listing}"
    from_stdin = invoke("crawl", "--projects-file", "-", stdin="")
    assert from_stdin.exit_code == 2
    assert one_error_line(from_stdin) == "vbs-async: error: no projects in stdin"


# -- two runs on one output ------------------------------------------------------------------


def test_two_resumable_jobs_on_one_output_the_second_is_refused(tmp_path):
    gate = Gate([])
    with emulator_in_thread(projects=20, sharings_per_project=20, drift=gate) as emulator:
        gate.held = set(emulator.project_ids[5:])  # the first run cannot end before the others
        out = tmp_path / "out.jsonl"
        first_state, second_state = tmp_path / "first.state", tmp_path / "second.state"
        env = command_env(emulator)

        def arguments(state):
            # --timeout: the first run's request waits at the gate while the
            # others start (slow on a loaded machine); it must not time out.
            return [*VBS_ASYNC, "crawl", "-o", str(out), "--resume", str(state),
                    "--max-projects", "1", "--timeout", "600", "--deadline", "1200",
                    *emulator.project_ids]  # fmt: skip

        first = subprocess.Popen(arguments(first_state), env=env, stderr=subprocess.PIPE)
        wait_for_lines(first_state, 2, first)  # the job's line and a finished project
        second = subprocess.run(
            arguments(second_state), env=env, capture_output=True, text=True, timeout=30,
            check=False,
        )  # fmt: skip
        without_state = subprocess.run(
            [*VBS_ASYNC, "crawl", "-o", str(out), *emulator.project_ids[:1]],
            env=env, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert first.poll() is None  # both ran while the first was writing
        gate.opened.set()
        first.communicate(timeout=60)
    assert second.returncode == 2
    assert f"another vbs-async crawl is writing {out}" in second.stderr
    assert without_state.returncode == 2
    assert f"another vbs-async crawl is writing {out}" in without_state.stderr
    assert first.returncode == 0
    rows = rows_by_project(out.read_text())  # every line whole
    assert sum(len(v) for v in rows.values()) == 400


def test_a_report_to_a_fifo_is_written_as_a_redirect_and_resume_refuses_one(tmp_path):
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = invoke("crawl", *EMULATED, "-o", str(tmp_path / "out.jsonl"), "--report", str(fifo))
    reader.join(30)
    assert result.exit_code == 0, result.stderr
    assert json.loads(received[0])["totals"]["sharings"] == 12
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    resumed = invoke("crawl", *EMULATED, "-o", str(fifo), "--resume", str(tmp_path / "state"))
    assert resumed.exit_code == 2
    assert "--resume needs --output to be a regular file" in one_error_line(resumed)
    assert not (tmp_path / "state").exists()  # refused before anything was created
