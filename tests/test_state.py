"""The resume state on its own: the file it writes, what it refuses and the words it says."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime

import pytest

from vbs_async.cli._state import State, StateError, digest_ids, finished_at

JOB = {"projects": digest_ids(["p1", "p2", "p3"]), "format": "jsonl", "output": "out.jsonl"}


def started(tmp_path, job=JOB):
    """A new state with its header written, and the output it records."""
    state = State(tmp_path / "state", dict(job))
    state.acquire()
    output = (tmp_path / "out.jsonl").open("w+b")
    state.start(output)
    return state, output


def commit_rows(state: State, output, project_id: str, rows: bytes, sharings: int = 1) -> None:
    output.write(rows)
    output.flush()
    state.commit(project_id, output, sharings)


def reread(tmp_path, job=JOB) -> State:
    state = State(tmp_path / "state", dict(job))
    state.acquire()
    return state


def message(excinfo: pytest.ExceptionInfo[StateError]) -> str:
    return str(excinfo.value)


# -- what a run records, and what the next run reads back ------------------------------


def test_commits_are_read_back_by_the_next_run_with_their_counts_and_sizes(tmp_path):
    state, output = started(tmp_path)
    commit_rows(state, output, "p1", b'{"id": "a"}\n', sharings=1)
    commit_rows(state, output, "p2", b'{"id": "b"}\n{"id": "c"}\n', sharings=2)
    assert state.committed_size == output.tell() == 36
    assert state.last_commit is not None
    assert state.last_commit.project_id == "p2"
    assert list(state.finished) == ["p1", "p2"]
    assert state.finished["p2"] == state.last_commit
    state.release()
    output.close()

    again = reread(tmp_path)
    assert not again.is_new
    assert {p: (c.output_bytes, c.sharings) for p, c in again.finished.items()} == {
        "p1": (12, 1),
        "p2": (36, 2),
    }
    assert again.committed_size == 36
    assert again.last_commit == again.finished["p2"]
    again.release()


def test_the_header_names_the_job_the_output_and_when_it_began_in_utc(tmp_path):
    before = datetime.now(UTC).replace(microsecond=0)
    state, output = started(tmp_path)
    state.release()
    header = json.loads((tmp_path / "state").read_bytes().splitlines()[0])
    status = os.fstat(output.fileno())
    assert header["vbs_async_state"] == 1
    assert header["job"] == JOB
    assert header["output"] == {"device": status.st_dev, "inode": status.st_ino}
    created = datetime.fromisoformat(header["created_at"])
    assert created.utcoffset() is not None
    assert created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert before <= created <= datetime.now(UTC)
    output.close()


def test_a_new_state_once_started_knows_its_output_and_refuses_another(tmp_path):
    state, output = started(tmp_path)
    assert not state.is_new
    other = (tmp_path / "other.jsonl").open("w+b")
    with pytest.raises(StateError, match=r"out\.jsonl is not the file"):
        state.check_output(other)
    state.check_output(output)
    state.release()
    other.close()
    output.close()


def test_the_project_list_digest_is_the_one_earlier_releases_wrote():
    """The digest is part of the state file's format: a state written before must still match."""
    assert digest_ids(["p1", "p2"]) == hashlib.sha256(b"p1\np2").hexdigest()
    assert digest_ids(["p1", "p2"]) != digest_ids(["p2", "p1"])


def test_a_line_a_crash_cut_short_is_dropped_before_the_next_commit(tmp_path):
    state, output = started(tmp_path)
    commit_rows(state, output, "p1", b"1\n")
    commit_rows(state, output, "p2", b"2\n")
    state.release()
    with (tmp_path / "state").open("ab") as file:
        file.write(b'{"project_id": "p3", "output_by')  # killed mid-line

    again = reread(tmp_path)
    assert list(again.finished) == ["p1", "p2"]
    again.start(output)
    commit_rows(again, output, "p3", b"3\n")
    again.release()
    final = reread(tmp_path)
    assert {p: c.output_bytes for p, c in final.finished.items()} == {"p1": 2, "p2": 4, "p3": 6}
    final.release()
    output.close()


def test_committed_bytes_are_checked_however_long_the_output_and_whatever_follows_them(tmp_path):
    """A resumed output longer than the digested tail (64 KiB), with a killed run's rows after."""
    state, output = started(tmp_path)
    commit_rows(state, output, "p1", b"x" * 99_999 + b"\n")
    state.release()
    output.write(b'{"id": "unfinished"}\n')  # rows a killed run left past its last commit
    output.flush()

    again = reread(tmp_path)
    again.check_output(output)  # the committed 100,000 bytes are as they were
    again.release()
    output.close()


def test_a_short_output_changed_in_its_very_first_byte_is_refused(tmp_path):
    state, output = started(tmp_path)
    commit_rows(state, output, "p1", b'{"id": "a"}\n')
    output.seek(0)
    output.write(b"[")
    output.flush()
    with pytest.raises(StateError, match="changed since"):
        state.check_output(output)
    state.release()
    output.close()


def test_committed_bytes_past_the_digested_tail_are_checked_by_their_end(tmp_path):
    state, output = started(tmp_path)
    commit_rows(state, output, "p1", b"x" * 99_999 + b"\n")
    state.release()
    again = reread(tmp_path)
    output.seek(50_000)
    output.write(b"y")
    output.flush()
    with pytest.raises(StateError) as refused:
        again.check_output(output)
    assert message(refused) == (
        "out.jsonl changed since "
        f"{tmp_path / 'state'} recorded it (another run wrote to it?): use a new state file"
    )
    again.release()
    output.close()


# -- the state file itself: made, kept, removed, locked ---------------------------------


def test_a_state_this_run_made_and_never_wrote_is_removed_when_released(tmp_path):
    state = State(tmp_path / "state", dict(JOB))
    state.acquire()
    state.release()
    assert not (tmp_path / "state").exists()


def test_an_empty_state_file_that_was_there_before_is_kept(tmp_path):
    (tmp_path / "state").write_bytes(b"")
    state = State(tmp_path / "state", dict(JOB))
    state.acquire()
    state.release()
    assert (tmp_path / "state").exists()


def test_releasing_twice_or_never_acquired_or_after_the_file_went_is_quiet(tmp_path):
    State(tmp_path / "never", dict(JOB)).release()
    state = State(tmp_path / "state", dict(JOB))
    state.acquire()
    (tmp_path / "state").unlink()  # someone removed it meanwhile
    state.release()
    state.release()
    assert not (tmp_path / "state").exists()


def test_a_second_run_on_the_same_state_is_refused_while_the_first_holds_it(tmp_path):
    first, output = started(tmp_path)
    second = State(tmp_path / "state", dict(JOB))
    with pytest.raises(StateError) as refused:
        second.acquire()
    assert message(refused) == (
        f"another vbs-async crawl is using {tmp_path / 'state'}: wait for it to end"
    )
    first.release()
    second.acquire()  # free once the first let go
    second.release()
    output.close()


# -- what it refuses, in the words a user reads --------------------------------------------


def test_a_file_that_is_not_a_state_is_refused_and_left_as_it_is(tmp_path):
    for content in (b"[1, 2]\n", b'{"vbs_async_state": 2}\n', b"hello\n"):
        (tmp_path / "state").write_bytes(content)
        with pytest.raises(StateError) as refused:
            reread(tmp_path)
        assert message(refused) == (
            f"{tmp_path / 'state'} is not a vbs-async state file; it was left as it is "
            "(give --resume a new file name)"
        )
        assert (tmp_path / "state").read_bytes() == content


def test_a_state_of_version_0_1_is_refused_by_name(tmp_path):
    (tmp_path / "state").write_bytes(b'{"project_id": "p1", "output_bytes": 10}\n')
    with pytest.raises(StateError) as refused:
        reread(tmp_path)
    assert message(refused) == (
        f"{tmp_path / 'state'} was written by vbs-async 0.1, which did not record its job: "
        "finish that crawl with 0.1, or start again with a new state file"
    )


@pytest.mark.parametrize(
    ("job", "named"),
    [
        ({**JOB, "format": "csv"}, "format"),
        ({**JOB, "checks": ["count", True]}, "checks"),  # an option only this run has
        ({k: v for k, v in JOB.items() if k != "output"}, "output file"),  # one it lacks
        ({**JOB, "format": "csv", "output": "o.csv"}, "format, output file"),
    ],
)
def test_another_job_s_state_is_refused_naming_every_option_that_differs(tmp_path, job, named):
    state, output = started(tmp_path)
    state.release()
    with pytest.raises(StateError) as refused:
        reread(tmp_path, job)
    assert message(refused) == (
        f"{tmp_path / 'state'} belongs to another crawl (its {named} differ from this run's): "
        "run it with the same options, or use a new state file"
    )
    output.close()


def test_a_damaged_line_is_refused(tmp_path):
    state, output = started(tmp_path)
    commit_rows(state, output, "p1", b"1\n")
    state.release()
    with (tmp_path / "state").open("ab") as file:
        file.write(b'{"project_id": "p2"}\n')
    with pytest.raises(StateError) as refused:
        reread(tmp_path)
    assert message(refused) == f"{tmp_path / 'state'} has a damaged line; it was left as it is"
    output.close()


def test_an_output_replaced_or_shorter_than_recorded_is_refused(tmp_path):
    state, output = started(tmp_path)
    commit_rows(state, output, "p1", b"12345\n")
    state.release()
    again = reread(tmp_path)
    replaced = (tmp_path / "other").open("w+b")
    with pytest.raises(StateError) as refused:
        again.check_output(replaced)
    assert message(refused) == (
        f"out.jsonl is not the file {tmp_path / 'state'} was writing (it was replaced since): "
        "use a new state file, or the output it recorded"
    )
    output.truncate(3)
    with pytest.raises(StateError) as refused:
        again.check_output(output)
    assert message(refused) == (
        f"out.jsonl is shorter (3 bytes) than {tmp_path / 'state'} records (6): "
        "it changed since; use a new state file"
    )
    again.release()
    replaced.close()
    output.close()


def test_the_last_finish_is_told_in_utc_whatever_the_machine_s_zone(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        state, output = started(tmp_path)
        assert finished_at(state) == "an unknown time"
        commit_rows(state, output, "p1", b"1\n")
        assert state.last_commit is not None
        moment = datetime.fromtimestamp(state.last_commit.at, UTC)
        assert finished_at(state) == moment.strftime("%Y-%m-%d %H:%M:%S UTC")
        state.release()
        output.close()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
