"""The command line as a property: whatever options, paths and inputs an operator types,
the command ends with an exit status from the README's table and never a traceback.

Command lines are drawn from a small grammar: each subcommand with valid and
invalid option values, IDs well and badly formed, paths that collide (the
output as the report, the state or the projects file), empty, binary and
malformed input files. Runs go through click's runner, in process; the cloud
is the embedded emulator (`crawl --emulator`) or an endpoint on a closed
port, so nothing waits on a network.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbs_async.cli import cli

from ._helpers import closed_port

TABLE = {0, 1, 2, 3, 129, 130, 141, 143}
"""Every exit status the README's table lists."""

GOOD_ID = "0123456789abcdef0123456789abcdef"
ids = st.sampled_from(
    [GOOD_ID, "eu-de_prod", "bad/id", "..", "", " ", "a b", "x" * 300, "\x1b[2J", "%2F", "-"]
)
numbers = st.sampled_from(["0", "1", "-1", "2.5", "nan", "inf", "abc", "", "100000"])
# Retries and timeouts stay small: a refused connection is retried until the deadline.
small_numbers = st.sampled_from(["0", "1", "2", "-1", "0.5", "nan", "inf", "abc", ""])
FILES = ["out", "report", "state", "projects", "rows", "empty", "binary", "dir", "missing/x"]
files = st.sampled_from(FILES)


def crawl_options() -> st.SearchStrategy[list[str]]:
    option = st.one_of(
        st.tuples(st.just("-o"), files),
        st.tuples(st.just("--report"), st.sampled_from([*FILES, "-"])),
        st.tuples(st.just("--resume"), files),
        st.tuples(st.just("--projects-file"), st.sampled_from([*FILES, "-"])),
        st.tuples(st.just("--format"), st.sampled_from(["jsonl", "csv", "xml"])),
        st.tuples(st.sampled_from(["--page-size", "--max-projects"]), numbers),
        st.tuples(st.sampled_from(["--timeout", "--attempts", "--deadline"]), small_numbers),
        st.tuples(st.sampled_from(["--sort-key", "--sort-dir", "--end-check"]), ids),
        st.tuples(st.sampled_from(["--name", "--status", "--backup-id"]), ids),
        st.tuples(st.just("--region"), st.sampled_from(["eu-de", "eu-dee", ""])),
        st.tuples(st.sampled_from(["--all-projects", "--verify", "--quiet", "--bogus"])),
        st.tuples(ids),
    )
    return st.lists(option, max_size=5).map(lambda parts: [p for part in parts for p in part])


def call_lines() -> st.SearchStrategy[list[str]]:
    return st.one_of(
        st.tuples(st.just("count"), ids),
        st.tuples(st.just("get"), ids, ids),
        st.tuples(st.just("get"), ids),
        st.tuples(st.just("share"), ids, ids, ids, ids, st.sampled_from(["--dry-run", "--yes"])),
        st.tuples(st.just("cancel"), ids, ids, st.sampled_from(["--dry-run", "--yes", "-y"])),
        st.tuples(
            st.just("cancel"),
            st.just("--from-file"),
            st.sampled_from([*FILES, "-"]),
            st.sampled_from(["--dry-run", "--yes"]),
        ),
        st.tuples(
            st.sampled_from(["count", "get", "share", "cancel"]), st.just("--timeout"), numbers
        ),
    ).map(list)


command_lines = st.one_of(
    st.tuples(st.just(["crawl", "--emulator", "--emulator-projects", "2"]), crawl_options()).map(
        lambda parts: parts[0] + parts[1]
    ),
    st.tuples(st.just(["crawl", "--attempts", "1"]), crawl_options()).map(
        lambda parts: parts[0] + parts[1]
    ),
    call_lines(),
    st.lists(
        st.sampled_from(["--help", "--version", "nope", "-h", "crawl", "--bogus"]), max_size=3
    ),
)
stdin = st.sampled_from(["", "\n", f"{GOOD_ID}\n", "\x00\xff", '{"id": "s"}\n', "# only\n"])


def files_in(folder: Path) -> dict[str, str]:
    """The files the command line may name, made afresh in `folder`."""
    (folder / "dir").mkdir()
    (folder / "projects").write_text(f"{GOOD_ID}\n")
    (folder / "empty").write_text("")
    (folder / "binary").write_bytes(b"\xff\xfe\x00\x01garbage")
    (folder / "rows").write_text(
        f'{{"project_id": "{GOOD_ID}", "id": "s1", "from_project_id": "{GOOD_ID}"}}\n'
    )
    (folder / "out").write_text("yesterday\n")
    return {name: str(folder / name) for name in FILES}


@pytest.mark.usefixtures("clean_env")
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(line=command_lines, text=stdin)
def test_any_command_line_ends_with_a_status_from_the_table_and_no_traceback(line, text):
    port = closed_port()
    # No region: no known IAM endpoint either, so nothing leaves this machine.
    env = {"OS_AUTH_TOKEN": "token", "VBS_ENDPOINT": f"http://127.0.0.1:{port}"}
    with tempfile.TemporaryDirectory() as folder:
        named = files_in(Path(folder))
        arguments = [named.get(part, part) for part in line]
        before = Path.cwd()
        os.chdir(folder)  # a relative path the command writes stays in the folder
        try:
            result = CliRunner().invoke(cli, arguments, input=text, env=env)
        finally:
            os.chdir(before)
    assert result.exit_code in TABLE, (arguments, result.output, result.exception)
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), (arguments, result.exception)
    assert "Traceback" not in result.output, arguments
    if result.exit_code == 2 and "--help" not in arguments and "-h" not in arguments:
        errors = [line for line in result.stderr.splitlines() if line.startswith("vbs-async: ")]
        assert errors or "Usage:" in result.stderr, (arguments, result.stderr)
