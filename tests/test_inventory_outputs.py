"""The outside tester's findings on audit and diff output: terminals, files, summaries, memory."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess

import pytest

from .test_audit import A1, A2, OUTSIDE1, add_sharing
from .test_cli import VBS_ASYNC, emulator_in_thread, invoke

# Characters JSON leaves raw (valid JSON) that a terminal acts on: a C1 CSI,
# a line separator, a right-to-left override and an isolate.
RAW_IN_JSON = ["\x9b31mred", "two\u2028lines", "\u202eevil", "\u2066isolate"]


def on_a_terminal(*arguments: str) -> tuple[int, bytes]:
    """Run vbs-async with stdout on a pty; its exit status and what the terminal got."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*VBS_ASYNC, *arguments], stdout=terminal, stderr=subprocess.DEVNULL,
        env={**os.environ, "TERM": "xterm-256color"},
    )  # fmt: skip
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        seen += chunk
    process.wait(60)
    os.close(controller)
    return process.returncode, seen


@pytest.fixture
def raw_names(tmp_path, clean_env):
    """Two runs of A1: the second adds sharings outside whose names JSON leaves raw."""
    db = tmp_path / "inventory.sqlite"
    with emulator_in_thread() as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        add_sharing(emu, 1, A1, A2)
        for number in (1, 2):
            if number == 2:
                for index, name in enumerate(RAW_IN_JSON, start=10):
                    add_sharing(emu, index, A1, OUTSIDE1, name=name)
            result = invoke("crawl", "--endpoint", emu.url, "--db", str(db), "-o",
                            str(tmp_path / f"{number}.jsonl"), "--quiet", A1)  # fmt: skip
            assert result.exit_code == 0, result.output
    return db


@pytest.mark.parametrize(
    "arguments",
    [("audit", "--format", "jsonl"), ("audit", "--format", "ocsf"), ("diff", "--format", "jsonl")],
)
def test_json_rows_on_a_terminal_escape_what_a_terminal_would_act_on(raw_names, arguments):
    status, seen = on_a_terminal(*arguments, "--db", str(raw_names))
    assert status == 0, seen
    text = seen.decode()
    for char in ("\x9b", "\u2028", "\u202e", "\u2066"):
        assert char not in text
    for escaped in ("\\x9b31mred", "two\\u2028lines", "\\u202eevil", "\\u2066isolate"):
        assert escaped in text
    redirected = invoke(*arguments, "--db", str(raw_names)).stdout
    assert text.count("\n") == redirected.count("\n")  # one line a row still


def test_json_rows_written_to_a_file_keep_the_exact_text(raw_names):
    result = invoke("audit", "--db", str(raw_names), "--format", "jsonl")
    names = {json.loads(line)["backup"]["name"] for line in result.stdout.split("\n") if line}
    assert set(RAW_IN_JSON) <= names


@pytest.mark.parametrize(
    ("option", "suffix"),
    [("-o", "-wal"), ("-o", "-shm"), ("-o", "-journal"), ("--report", "-wal"),
     ("--report", "-shm"), ("--resume", "-wal"), ("--resume", "-journal")],
)  # fmt: skip
def test_a_file_of_the_database_s_own_is_refused_before_any_request(
    tmp_path, clean_env, option, suffix
):
    db = tmp_path / "inventory.sqlite"
    sibling = tmp_path / f"inventory.sqlite{suffix}"
    extra = [] if option == "-o" else ["-o", str(tmp_path / "rows.jsonl")]
    with emulator_in_thread() as emu:
        add_sharing(emu, 1, A1, OUTSIDE1)
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        assert invoke("crawl", "--endpoint", emu.url, "--db", str(db), "-o",
                      str(tmp_path / "first.jsonl"), "--quiet", A1).exit_code == 0  # fmt: skip
        before = emu.requests_received
        result = invoke("crawl", "--endpoint", emu.url, "--db", str(db), option, str(sibling),
                        *extra, "--quiet", A1)  # fmt: skip
        assert emu.requests_received == before
    assert result.exit_code == 2, result.output
    assert f"is the database's own {suffix} file" in result.stderr
    assert not sibling.exists()
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
