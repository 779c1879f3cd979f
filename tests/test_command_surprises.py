"""What an operator tried in the first hour and was surprised by: each a test, from outside.

Signals, malformed IDs, a re-run clean-up, a reader that leaves, a full
disk, server text with escape sequences, odd CSV values, a dumb terminal.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from vbs_async._models import Backup, BackupSharing
from vbs_async.cli._rows import csv_rows
from vbs_async.cli._text import printable
from vbs_async.testing import Fault

from ._helpers import (
    VBS_ASYNC,
    command_emulator,
    command_env,
    emulator_in_thread,
    read_until_closed,
    stop_process,
)
from .test_cli import invoke, rows_by_project
from .test_command_files import one_error_line

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def emu(clean_env):
    """3 projects of 6 sharings, the command configured for it."""
    with command_emulator(clean_env, projects=3, sharings_per_project=6, seed=5) as emulator:
        yield emulator


HOSTILE = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\x1b]0;owned\x07\r\nfailed 0000: forged line\u202e"


# -- IDs checked before any request, in every subcommand ------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        ["count", "bad/id"],
        ["get", "{p}", "bad/id"],
        ["get", "bad/id", "s1"],
        ["share", "{p}", "bad/id", "{q}", "--yes"],
        ["share", "{p}", "b1", "{q}", "to/../x", "--yes"],
        ["share", "{p}", "bad/id", "{q}", "--dry-run"],
        ["cancel", "{p}", "bad/id", "--yes"],
        ["cancel", "{p}", "bad/id", "--dry-run"],
        ["cancel", "{p}", *[f"{n:032x}" for n in range(80)], "bad/id", "--yes"],
        ["crawl", "{p}", "bad/id"],
        ["count", "{p}", "--name", "line\nbreak"],
    ],
)
def test_a_malformed_id_is_one_line_exit_2_and_nothing_is_sent(emu, arguments):
    before = emu.requests_received
    filled = [a.format(p=emu.project_ids[0], q=emu.project_ids[1]) for a in arguments]
    result = invoke(*filled)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert "bad/id" in line or "to/../x" in line or "control characters" in line
    assert emu.requests_received == before
    assert len(emu.sharings(emu.project_ids[0])) == 6


def test_a_dry_run_checks_names_as_the_real_run_does(clean_env):
    with emulator_in_thread(projects=2, sharings_per_project=2, users={"alice": "pw-1"}) as emu:
        clean_env.setenv("OS_AUTH_URL", emu.url + "/v3")
        clean_env.setenv("OS_USERNAME", "alice")
        clean_env.setenv("OS_PASSWORD", "pw-1")
        clean_env.setenv("OS_USER_DOMAIN_NAME", "emulator-domain")
        clean_env.setenv("VBS_ENDPOINT", emu.url)
        backup = emu.sharings(emu.project_ids[0])[0]["backup_id"]
        unknown = invoke("share", "eu-de_p00000", backup, "eu-de_nowhere", "--dry-run")
        known = invoke("share", "eu-de_p00000", backup, "eu-de_p00001", "--dry-run")
        cancel_unknown = invoke("cancel", "eu-de_nowhere", "s1", "--dry-run")
    assert unknown.exit_code == 2
    assert "no project named 'eu-de_nowhere'" in one_error_line(unknown)
    assert known.exit_code == 0, known.stderr
    assert "would share" in known.stderr
    assert cancel_unknown.exit_code == 2
    assert "no project named 'eu-de_nowhere'" in cancel_unknown.stderr


# -- exit codes of the single calls ----------------------------------------------------------


def test_single_calls_tell_not_found_refused_and_conflict_apart_from_usage(emu):
    project = emu.project_ids[0]
    sharing = emu.sharings(project)[0]
    emu.inject(Fault.answer(403, message="not yours"), project_id=project, times=1)
    refused = invoke("get", project, sharing["id"])
    emu.inject(Fault.answer(409, message="already shared"), project_id=project, times=1)
    conflict = invoke("share", project, sharing["backup_id"], emu.project_ids[1], "--yes")
    missing = invoke("get", project, "f" * 32)
    usage = invoke("get", project)
    assert (refused.exit_code, conflict.exit_code, missing.exit_code) == (1, 1, 3)
    assert usage.exit_code == 2
    assert "HTTP 403" in one_error_line(refused)
    assert "HTTP 409" in one_error_line(conflict)
    assert one_error_line(missing).startswith("vbs-async: error: not found: ")


def test_a_silent_endpoint_is_exit_2_naming_endpoint_and_timeout(clean_env):
    with emulator_in_thread(projects=1, sharings_per_project=1, latency=5) as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        result = invoke("count", emu.project_ids[0], "--endpoint", emu.url, "--timeout", "0.2")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "--endpoint" in line
    assert "--timeout" in line


@pytest.mark.parametrize("command", ["count", "get", "share", "cancel", "crawl", "emulator"])
def test_every_help_states_its_exit_codes_with_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Exit status: 0" in text
    assert "Example" in text
    for status in {"crawl": ["129", "130", "141", "143"], "get": ["3"]}.get(command, ["2"]):
        assert status in text


# -- cancel: idempotent, interruptible, and quiet when the reader leaves --------------------


def test_cancel_from_file_run_again_after_success_is_success(emu, tmp_path):
    rows = tmp_path / "rows.jsonl"
    assert invoke("crawl", "-o", str(rows), *emu.project_ids[:2]).exit_code == 0
    first = invoke("cancel", "--from-file", str(rows), "--yes")
    assert first.exit_code == 0, first.stderr
    again = invoke("cancel", "--from-file", str(rows), "--yes")
    assert again.exit_code == 0, again.stderr
    assert again.stdout.count("already gone ") == 12
    assert again.stderr.strip().splitlines()[-1] == "cancelled 0, already gone 12, failed 0"


def test_cancel_from_an_empty_file_is_an_error(emu, tmp_path):
    empty = tmp_path / "rows.jsonl"
    empty.write_text("")
    result = invoke("cancel", "--from-file", str(empty), "--yes")
    assert result.exit_code == 2
    assert f"no sharings in {empty}" in one_error_line(result)
    assert len(emu.sharings(emu.project_ids[0])) == 6


def cancel_rows(emu, tmp_path: Path, count: int) -> Path:
    project = emu.project_ids[0]
    emu.add_sharings(project, count)
    rows = tmp_path / "rows.jsonl"
    crawled = invoke("crawl", "-o", str(rows), project)
    assert crawled.exit_code == 0, crawled.stderr
    return rows


def test_cancel_piped_into_head_exits_141_with_a_closing_line(emu, tmp_path):
    rows = cancel_rows(emu, tmp_path, 294)
    with subprocess.Popen(
        [*VBS_ASYNC, "cancel", "--from-file", str(rows), "--yes"],
        env=command_env(emu),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        head = [process.stdout.readline() for _ in range(3)]
        process.stdout.close()  # what `| head -3` does
        status = process.wait(60)
        errors = process.stderr.read().decode()
    assert all(line.startswith(b"cancelled ") for line in head)
    assert status == 141
    assert "Traceback" not in errors
    closing = errors.strip().splitlines()[-1]
    assert closing.startswith("stopped: the reader of stdout left; cancelled ")
    done = int(closing.split("cancelled ")[1].split(",")[0])
    assert 3 <= done < 300
    assert len(emu.sharings(emu.project_ids[0])) == 300 - done  # what it says it did


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_bulk_cancel_ends_with_what_was_done_and_what_is_unknown(
    clean_env, tmp_path, stop, status
):
    with command_emulator(clean_env, projects=1, sharings_per_project=300, latency=0.02) as emu:
        rows = tmp_path / "rows.jsonl"
        assert invoke("crawl", "-o", str(rows), emu.project_ids[0]).exit_code == 0
        out = tmp_path / "cancelled.txt"
        with out.open("wb") as stdout:
            process = subprocess.Popen(
                [*VBS_ASYNC, "cancel", "--from-file", str(rows), "--yes"],
                env=command_env(emu),
                stdout=stdout,
                stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + 30
            while out.read_bytes().count(b"\n") < 40 and time.monotonic() < deadline:
                time.sleep(0.01)
            _, errors = stop_process(process, stop)
        left = len(emu.sharings(emu.project_ids[0]))
    assert process.returncode == status, errors
    closing = errors.decode().strip().splitlines()[-1]
    assert closing.startswith(f"interrupted: {signal.Signals(stop).name}")
    said = out.read_text().count("cancelled ")
    assert f"cancelled {said}," in closing
    unknown = int(closing.split("; ")[2].split()[0]) if "in flight" in closing else 0
    assert said <= 300 - left <= said + unknown  # the server agrees with what it said


def test_sighup_during_a_crawl_is_like_sigterm_summary_report_no_partial_file(tmp_path):
    with emulator_in_thread(projects=40, sharings_per_project=25, latency=0.01) as emu:
        out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
        process = subprocess.Popen(
            [*VBS_ASYNC, "crawl", "-o", str(out), "--report", str(report),
             "--max-projects", "2", "--page-size", "5", *emu.project_ids],
            env=command_env(emu), stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            p.name.endswith(".partial") and p.stat().st_size for p in tmp_path.iterdir()
        ):
            time.sleep(0.02)
        _, errors = stop_process(process, signal.SIGHUP)
    assert process.returncode == 129, errors
    text = errors.decode()
    assert "interrupted: SIGHUP after " in text
    assert "projects: " in text
    assert json.loads(report.read_text())["exit_status"] == 129
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "report.json"]


# -- stdout that cannot be written -----------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")  # noqa: PTH110
@pytest.mark.parametrize("arguments", [["count", "{p}"], ["crawl", "{p}"]])
def test_stdout_on_a_full_device_is_one_line_and_exit_2(emu, arguments):
    filled = [a.format(p=emu.project_ids[0]) for a in arguments]
    with open("/dev/full", "wb") as full:  # noqa: PTH123 - refuses every write; harmless
        result = subprocess.run(
            [*VBS_ASYNC, *filled], env=command_env(emu), stdout=full,
            stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "No space left on device" in result.stderr.strip().splitlines()[-1]


# -- server text reaching a terminal, a CSV ---------------------------------------------------


def test_server_text_is_escaped_in_every_line_an_operator_reads(emu):
    project = emu.project_ids[0]
    emu.inject(Fault.answer(403, message=HOSTILE), project_id=project, times=10)
    crawled = invoke("crawl", "--attempts", "1", *emu.project_ids)
    emu.inject(Fault.answer(403, message=HOSTILE), project_id=project, times=10)
    got = invoke("get", project, emu.sharings(project)[0]["id"])
    emu.inject(Fault.answer(403, message=HOSTILE), project_id=project, times=10)
    cancelled = invoke("cancel", project, emu.sharings(project)[0]["id"], "--yes")
    for result in (crawled, got, cancelled):
        assert "\x1b" not in result.stderr
        assert "\x07" not in result.stderr
        assert "\u202e" not in result.stderr
        assert "\\x1b]52;c;" in result.stderr
        assert not any(line.startswith("failed 0000") for line in result.stderr.splitlines())


def test_printable_escapes_controls_and_keeps_other_text():
    assert printable("caf\u00e9 \u6f22\u5b57 ok") == "caf\u00e9 \u6f22\u5b57 ok"
    assert printable("a\x1b[2Jb\r\n\t\x00\x7f\x9b\u2028") == (
        "a\\x1b[2Jb\\r\\n\\t\\x00\\x7f\\x9b\\u2028"
    )


def sharing_named(name: str) -> BackupSharing:
    ids = "0123456789abcdef0123456789abcdef"
    return BackupSharing(
        id="s1",
        backup_id="b1",
        from_project_id=ids,
        to_project_id=ids,
        backup=Backup(id="b1", name=name, description=name, size=-5),
    )


@pytest.mark.parametrize(
    "value", ["lone\rcarriage", "line\nfeed", "nul\x00byte", 'quote"d', "comma,", "x" * 200_000]
)
def test_csv_survives_any_value_as_one_row(tmp_path, value):
    path = tmp_path / "rows.csv"
    path.write_bytes(csv_rows("p", [sharing_named(value)] * 2))
    csv.field_size_limit(1_000_000)
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    assert len(rows) == 2
    assert value in rows[0]


@pytest.mark.parametrize("value", ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\t=x", "\r=x"])
def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(value):
    row = next(csv.reader(io.StringIO(csv_rows("p", [sharing_named(value)]).decode())))
    assert f"'{value}" in row
    assert "-5" in row  # numbers are numbers: never escaped


# -- progress on terminals that cannot draw a bar -----------------------------------------------


def run_on_a_terminal(tmp_path: Path, term: str, *arguments: str) -> tuple[int, str]:
    import pty  # noqa: PLC0415 - POSIX only

    controller, terminal = pty.openpty()
    env = {**os.environ, "TERM": term, "COLUMNS": "80"}
    process = subprocess.Popen(
        [*VBS_ASYNC, "crawl", "--emulator", "--progress-interval", "0", *arguments],
        stdout=terminal, stderr=terminal, env=env, cwd=tmp_path,
    )  # fmt: skip
    os.close(terminal)
    seen = read_until_closed(controller)
    return process.wait(60), seen.decode(errors="replace")


def test_term_dumb_gets_plain_progress_lines(tmp_path):
    status, text = run_on_a_terminal(
        tmp_path, "dumb", "--emulator-projects", "30", "-o", "rows.jsonl"
    )
    assert status == 0
    assert "progress: 30/30 projects" in text
    assert "\x1b[" not in text


def test_rows_on_the_terminal_never_share_a_line_with_progress(tmp_path):
    status, text = run_on_a_terminal(
        tmp_path, "xterm-256color", "--emulator-projects", "20", "--emulator-sharings", "5"
    )
    assert status == 0
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    rows = [line for line in lines if line.startswith("{")]
    assert len(rows) == 100
    for line in rows:
        json.loads(line)  # whole: nothing of the bar glued to it
    assert set(rows_by_project("\n".join(rows)))


# -- projects: disabled, unknown, regions, a list that changed -------------------------------


def password_setup(clean_env, emu, *, region: str | None = "eu-de") -> None:
    clean_env.setenv("OS_AUTH_URL", emu.url + "/v3")
    clean_env.setenv("OS_USERNAME", "alice")
    clean_env.setenv("OS_PASSWORD", "alice-password-1")
    clean_env.setenv("OS_USER_DOMAIN_NAME", "emulator-domain")
    clean_env.setenv("VBS_ENDPOINT", emu.url)
    if region is not None:
        clean_env.setenv("OS_REGION_NAME", region)


def test_a_disabled_or_unknown_project_fails_alone_named(clean_env, tmp_path):
    with emulator_in_thread(
        projects=2, sharings_per_project=3, users={"alice": "alice-password-1"}
    ) as emu:
        password_setup(clean_env, emu)
        report = tmp_path / "report.json"
        result = invoke("crawl", "eu-de_p00000", "eu-de_disabled", "eu-de_typo", "eu-de_p00001",
                        "--report", str(report))  # fmt: skip
        disabled_id = next(p["id"] for p in emu.iam_projects if p["name"] == "eu-de_disabled")
        touched = {r.project_id for r in emu.requests if r.project_id}
    assert result.exit_code == 1
    assert set(rows_by_project(result.stdout)) == set(emu.project_ids)
    assert "is disabled in IAM" in result.stderr
    assert "no project named 'eu-de_typo'" in result.stderr
    assert "check the user name, password" not in result.stderr
    assert disabled_id not in touched
    statuses = {p["project_id"]: p["status"] for p in json.loads(report.read_text())["projects"]}
    assert statuses == {
        emu.project_ids[0]: "ok", disabled_id: "failed", "eu-de_typo": "failed",
        emu.project_ids[1]: "ok",
    }  # fmt: skip


def test_all_projects_without_a_region_refuses_several_regions_and_a_typo_is_an_error(clean_env):
    with emulator_in_thread(
        projects=2, sharings_per_project=3, users={"alice": "alice-password-1"}
    ) as emu:
        password_setup(clean_env, emu, region=None)
        several = invoke("crawl", "--all-projects")
        typo = invoke("crawl", "--all-projects", "--region", "eu-dee")
        crawled = {r.project_id for r in emu.requests if r.project_id and "/v2/" in r.path}
    assert several.exit_code == 2
    line = one_error_line(several)
    assert "--all-projects needs --region" in line
    assert "eu-de: 2" in line
    assert "eu-xx: 1" in line
    assert typo.exit_code == 2
    assert "no enabled project in region 'eu-dee'" in one_error_line(typo)
    assert crawled == set()


def test_all_projects_resume_keeps_finished_adds_new_and_reports_gone(clean_env, tmp_path):
    with emulator_in_thread(
        projects=4, sharings_per_project=3, users={"alice": "alice-password-1"}
    ) as emu:
        password_setup(clean_env, emu)
        out, state, report = tmp_path / "out.jsonl", tmp_path / "state", tmp_path / "r.json"
        first = invoke("crawl", "--all-projects", "-o", str(out), "--resume", str(state))
        assert first.exit_code == 0, first.stderr
        gone = emu.project_ids[3]
        emu.iam_projects[:] = [p for p in emu.iam_projects if p["id"] != gone]
        added = "feed" * 8
        emu.iam_projects.append({"id": added, "name": "eu-de_added", "enabled": True})
        emu.add_sharings(added, 2)
        second = invoke("crawl", "--all-projects", "-o", str(out), "--resume", str(state),
                        "--report", str(report))  # fmt: skip
    assert second.exit_code == 0, second.stderr
    assert "3 already done" in second.stderr
    assert "1 projects finished earlier are no longer listed by IAM" in second.stderr
    assert gone in second.stderr
    rows = rows_by_project(out.read_text())
    assert set(rows) == {*emu.project_ids, added}
    assert len(rows[added]) == 2
    statuses = {p["project_id"]: p["status"] for p in json.loads(report.read_text())["projects"]}
    assert statuses[gone] == "gone"
    assert statuses[added] == "ok"


def test_a_silent_endpoint_stops_the_crawl_soon_after_the_first_timeout(clean_env):
    with command_emulator(clean_env, projects=3, sharings_per_project=1, latency=30) as emu:
        began = time.monotonic()
        result = invoke("crawl", "--timeout", "0.3", "--deadline", "60", *emu.project_ids)
        took = time.monotonic() - began
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "--endpoint" in line
    assert "--timeout" in line
    assert took < 10  # not the 60 s deadline: timeout, plus a little


def test_log_lines_escape_server_text(capsys):
    import logging  # noqa: PLC0415

    from vbs_async.cli._logging import operator_logging  # noqa: PLC0415

    with operator_logging("verbose"):
        logging.getLogger("vbs_async").warning("IAM says: %s", HOSTILE)
    line = capsys.readouterr().err
    assert line.count("\n") == 1
    assert "\x1b" not in line
    assert "IAM says: \\x1b]52;c;" in line


# -- found walking the hostile checklist from outside ---------------------------------------------


def test_cancel_reads_a_crawl_s_jsonl_whose_values_hold_unicode_line_separators(emu, tmp_path):
    rows = tmp_path / "rows.jsonl"
    assert invoke("crawl", "-o", str(rows), emu.project_ids[0]).exit_code == 0
    records = [json.loads(line) for line in rows.read_text().split("\n") if line]
    records[0]["backup"]["name"] = "a\u2028b\x85c\x1ed"  # JSON leaves these raw
    rows.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    result = invoke("cancel", "--from-file", str(rows), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("would cancel") == 6


def test_share_with_its_own_project_and_mos_are_refused_in_one_line(emu):
    project = emu.project_ids[0]
    backup = emu.sharings(project)[0]["backup_id"]
    before = emu.requests_received
    itself = invoke("share", project, backup, project, "--yes")
    mos = invoke("count", "MOS")
    assert (itself.exit_code, mos.exit_code) == (2, 2)
    assert "names" in one_error_line(itself)
    assert "itself" in one_error_line(itself)
    assert "MOS is IAM's built-in project" in one_error_line(mos)
    assert emu.requests_received == before
    crawled = invoke("crawl", "MOS", project)
    assert crawled.exit_code == 1  # MOS fails alone, named; the other is crawled
    assert "failed MOS: MOS is IAM's built-in project" in crawled.stderr
    assert set(rows_by_project(crawled.stdout)) == {project}


def test_a_project_iam_refuses_after_accepting_the_password_fails_alone(clean_env):
    with emulator_in_thread(
        projects=3, sharings_per_project=2, users={"alice": "alice-password-1"}
    ) as emu:
        password_setup(clean_env, emu)
        denied = emu.project_ids[1]
        emu.identity.denied_projects.add(denied)
        result = invoke("crawl", *emu.project_ids)  # all three at once
    assert result.exit_code == 1, result.stderr
    assert f"failed {denied}: " in result.stderr
    assert "credentials refused" not in result.stderr
    assert set(rows_by_project(result.stdout)) == {emu.project_ids[0], emu.project_ids[2]}


def test_iam_answering_403_for_the_first_project_fails_it_alone(clean_env):
    # A 403 says the password was accepted and that scope forbidden: the
    # command crawls the other projects instead of stopping on "credentials".
    with emulator_in_thread(
        projects=6, sharings_per_project=2, users={"alice": "alice-password-1"}
    ) as emu:
        password_setup(clean_env, emu)
        forbidden = emu.project_ids[0]
        emu.identity.forbidden_projects.add(forbidden)
        result = invoke("crawl", *emu.project_ids)
    assert result.exit_code == 1, result.stderr
    assert f"failed {forbidden}: " in result.stderr
    assert "credentials refused" not in result.stderr
    assert set(rows_by_project(result.stdout)) == set(emu.project_ids[1:])


async def test_after_a_signal_is_handled_the_task_goes_on_as_if_never_cancelled():
    # The command's task catches the cancel a signal sends, then finishes its files and
    # report: it must then count as never cancelled (asyncio's `cancelling()`, which
    # deadlines, task groups and asyncio.run consult), so what it awaits after that
    # behaves as in any task.
    from vbs_async.cli._signals import StopSignals  # noqa: PLC0415

    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.Event().wait()
    assert signals.signal == signal.SIGTERM
    assert signals.status == 143
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):
            await asyncio.Event().wait()
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
