"""The outside tester's findings on audit and diff output: terminals, files, summaries, memory."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess

import pytest

from vbs_async.inventory import Inventory, Severity, _files, audit, load_crawl_output

from ._helpers import read_until_closed
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
    seen = read_until_closed(controller)
    process.wait(60)
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


@pytest.fixture
def info_and_high(tmp_path, clean_env):
    """A1 shares one backup inside the account (info) and one outside (high)."""
    db = tmp_path / "inventory.sqlite"
    with emulator_in_thread() as emu:
        add_sharing(emu, 1, A1, A2)
        add_sharing(emu, 2, A1, OUTSIDE1)
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        result = invoke("crawl", "--endpoint", emu.url, "--db", str(db), "-o",
                        str(tmp_path / "o.jsonl"), "--quiet", A1, A2)  # fmt: skip
        assert result.exit_code == 0, result.output
    return db


def test_the_summary_counts_every_finding_and_agrees_with_fail_on(info_and_high):
    result = invoke("audit", "--db", str(info_and_high), "--format", "jsonl", "--fail-on", "info")
    assert result.exit_code == 3
    assert len(result.stdout.splitlines()) == 1  # the info finding is below --min-severity low
    lines = result.stderr.splitlines()
    assert lines[0].endswith(": 2 projects; 1 high, 0 medium, 0 low, 1 info")
    assert "shown: 1 finding at or above low (--min-severity); 1 below it left out" in lines
    assert lines[-1] == "2 findings at or above info: exit 3"


def test_a_higher_min_severity_hides_findings_from_the_output_not_from_the_summary(
    info_and_high,
):
    result = invoke("audit", "--db", str(info_and_high), "--format", "jsonl",
                    "--min-severity", "high")  # fmt: skip
    assert result.exit_code == 0
    assert "1 high, 0 medium, 0 low, 1 info" in result.stderr
    assert "shown: 1 finding at or above high (--min-severity); 1 below it left out" in (
        result.stderr
    )
    everything = invoke("audit", "--db", str(info_and_high), "--min-severity", "info")
    assert "shown:" not in everything.stderr  # nothing left out: nothing to say


QUOTED_NAMES = ["'=already guarded?", "'plain", "''=twice", "=formula", "-minus", "'", "''"]


def test_a_csv_output_read_back_gives_every_name_the_server_sent(tmp_path, clean_env):
    with emulator_in_thread() as emu:
        for index, name in enumerate(QUOTED_NAMES):
            add_sharing(emu, index, A1, OUTSIDE1, name=name)
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        for form in ("jsonl", "csv"):
            result = invoke("crawl", "--endpoint", emu.url, "--format", form, "-o",
                            str(tmp_path / f"o.{form}"), "--report",
                            str(tmp_path / f"{form}.json"), A1)  # fmt: skip
            assert result.exit_code == 0, result.output
    audited = invoke("audit", str(tmp_path / "o.csv"), "--report", str(tmp_path / "csv.json"),
                     "--format", "jsonl")  # fmt: skip
    assert audited.exit_code == 0, audited.output  # no --fail-on
    names = sorted(json.loads(line)["backup"]["name"] for line in audited.stdout.splitlines())
    assert names == sorted(QUOTED_NAMES)
    compared = invoke("diff", str(tmp_path / "o.jsonl"), str(tmp_path / "o.csv"), "--report",
                      str(tmp_path / "jsonl.json"), "--report", str(tmp_path / "csv.json"),
                      "--format", "jsonl")  # fmt: skip
    assert compared.exit_code == 0, compared.output
    assert compared.stdout == ""
    assert "0 changed, 7 unchanged" in compared.stderr


def test_a_csv_written_before_the_guard_marked_quotes_reads_as_it_did():
    from vbs_async.inventory._files import unguarded  # noqa: PLC0415

    # Before, only `= + - @`, tab and CR were guarded: `'=x` was `=x` guarded.
    assert unguarded("'=x") == "=x"
    assert unguarded("'plain") == "'plain"
    assert unguarded("plain") == "plain"
    # Now a text starting with `'` is guarded too, so `''=x` is the text `'=x`.
    assert unguarded("''=x") == "'=x"


def test_trusted_entries_that_match_nothing_are_named_up_to_20_then_counted(
    info_and_high, tmp_path
):
    trusted = tmp_path / "trusted.txt"
    trusted.write_text("".join(f"junk-{n:06d}\n" for n in range(100_000)))
    result = invoke("audit", "--db", str(info_and_high), "--trusted", str(trusted),
                    "--format", "jsonl")  # fmt: skip
    assert result.exit_code == 0, result.stderr[-500:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("--trusted:")]
    assert len(warnings) == 21
    assert "'junk-000000' is neither a project ID nor an account" in warnings[0]
    assert warnings[-1] == "--trusted: ... and 99,980 more entries that match nothing"


def test_the_table_is_sorted_by_severity_and_a_huge_name_does_not_widen_it(tmp_path, clean_env):
    db = tmp_path / "inventory.sqlite"
    huge = "x" * 200_000
    with emulator_in_thread() as emu:
        add_sharing(emu, 1, A1, A2, name="inside")  # info, listed first
        add_sharing(emu, 2, A1, OUTSIDE1, name=huge)  # high
        add_sharing(emu, 3, A2, A1, name="inside too")  # info
        add_sharing(emu, 4, A2, OUTSIDE1, name="outside")  # high
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        assert invoke("crawl", "--endpoint", emu.url, "--db", str(db), "-o",
                      str(tmp_path / "o.jsonl"), "--quiet", A1, A2).exit_code == 0  # fmt: skip
    result = invoke("audit", "--db", str(db), "--format", "table", "--min-severity", "info")
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["SEVERITY", "high", "high", "info", "info"]
    assert max(map(len, lines)) < 400  # not 200 KB a row
    assert "x" * 39 + "…" in result.stdout  # cut to 40 columns, and said so
    whole = invoke("audit", "--db", str(db), "--format", "jsonl")
    assert huge in whole.stdout  # the exact value is in JSON Lines


def test_a_csv_output_with_a_200_kb_name_reads_back_whole(tmp_path, clean_env):
    huge = "y" * 200_000
    with emulator_in_thread() as emu:
        add_sharing(emu, 1, A1, OUTSIDE1, name=huge)
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        assert invoke("crawl", "--endpoint", emu.url, "--format", "csv", "-o",
                      str(tmp_path / "o.csv"), "--report", str(tmp_path / "r.json"),
                      A1).exit_code == 0  # fmt: skip
    result = invoke("audit", str(tmp_path / "o.csv"), "--report", str(tmp_path / "r.json"),
                    "--format", "jsonl")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["backup"]["name"] == huge
    broken = tmp_path / "o.csv"
    broken.write_bytes(broken.read_bytes().replace(b"yyyy", b"\xff\xfe", 1))
    result = invoke("audit", str(broken), "--report", str(tmp_path / "r.json"))
    assert result.exit_code == 2
    assert "is not a sharing row of vbs-async crawl" in result.stderr
    assert "unexpected" not in result.stderr


def test_a_resumed_crawl_s_files_read_alike_when_its_skipped_projects_spill_to_disk(
    tmp_path, clean_env, monkeypatch
):
    with emulator_in_thread() as emu:
        for index in range(12):
            add_sharing(emu, index, (A1, A2)[index % 2], OUTSIDE1)
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        assert invoke("crawl", "--endpoint", emu.url, "-o", str(tmp_path / "o.jsonl"),
                      "--report", str(tmp_path / "r.json"), A1, A2).exit_code == 0  # fmt: skip
    document = json.loads((tmp_path / "r.json").read_text())
    for entry in document["projects"]:  # as a resumed crawl reports those done before it
        entry["status"] = "skipped"
        entry.pop("sharings", None)
    (tmp_path / "skipped.json").write_text(json.dumps(document))

    def findings(report: str) -> list[tuple[str, str]]:
        with Inventory(tmp_path / f"{report}.sqlite", write=True) as inventory:
            load_crawl_output(inventory, tmp_path / "o.jsonl", tmp_path / report)
            return sorted(
                (f.sharing.sharing_id, f.sharing.backup_name or "")
                for f in audit(inventory, minimum=Severity.INFO)
            )

    whole = findings("r.json")
    monkeypatch.setattr(_files, "HELD_UNCOUNTED", 2)
    assert findings("skipped.json") == whole
    assert len(whole) == 12
