"""The command's output on its own: locked while written, resumed or refused, spilled beside it."""

from __future__ import annotations

import errno
import fcntl
import io
import os
from pathlib import Path

import pytest

from vbs_async.cli._files import PathError, classify
from vbs_async.cli._output import Output, ProjectRows, check_finished_output, open_output
from vbs_async.cli._state import State, StateError

from .test_state import JOB, commit_rows, started


def locked_by_another(path: Path) -> bool:
    """Whether another open file description holds an exclusive lock on `path`."""
    with path.open("rb") as probe:
        try:
            fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe.fileno(), fcntl.LOCK_UN)
        return False


def test_an_existing_output_is_locked_while_its_new_version_is_written(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"old\n")
    with open_output(out, None) as output:
        assert locked_by_another(out)
        output.stream.write(b"new\n")
        output.finish(any_succeeded=True)
    assert out.read_bytes() == b"new\n"
    assert not locked_by_another(out)


def test_an_output_another_process_locks_is_refused_by_name(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"old\n")
    with out.open("rb") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(PathError) as refused, open_output(out, None):
            pass
    assert str(refused.value) == (
        f"another vbs-async crawl is writing {out}: wait for it to end, "
        "or give --output another file"
    )
    assert out.read_bytes() == b"old\n"


def test_a_resumed_output_another_process_locks_is_refused_by_name(tmp_path):
    state, output = started(tmp_path)
    commit_rows(state, output, "p1", b"1\n")
    state.release()
    again = State(tmp_path / "state", dict(JOB))
    again.acquire()
    with output:
        fcntl.flock(output.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with (
            pytest.raises(PathError, match=r"another vbs-async crawl is writing .*out\.jsonl"),
            open_output(tmp_path / "out.jsonl", again),
        ):
            pass
    again.release()


def test_a_new_state_over_an_output_of_one_byte_is_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"x")
    state = State(tmp_path / "state", dict(JOB))
    state.acquire()
    with pytest.raises(StateError) as refused, open_output(out, state):
        pass
    assert str(refused.value) == (
        f"{out} already exists and the new state {tmp_path / 'state'} has no record of it: "
        "move it away or choose another --output (nothing was written)"
    )
    assert out.read_bytes() == b"x"
    state.release()


def test_a_resumed_output_that_went_missing_is_refused_not_made_again(tmp_path):
    state, output = started(tmp_path)
    commit_rows(state, output, "p1", b"1\n")
    state.release()
    output.close()
    (tmp_path / "out.jsonl").unlink()
    again = State(tmp_path / "state", dict(JOB))
    again.acquire()
    with pytest.raises(StateError) as refused, open_output(tmp_path / "out.jsonl", again):
        pass
    assert str(refused.value) == (
        f"{tmp_path / 'out.jsonl'} is missing but {tmp_path / 'state'} records finished "
        "projects: use a new state file"
    )
    assert not (tmp_path / "out.jsonl").exists()
    again.release()


@pytest.mark.parametrize(("umask", "mode"), [(0o027, 0o640), (0, 0o666)])
def test_a_new_resumable_output_gets_the_umask_s_mode_as_a_redirect_would(tmp_path, umask, mode):
    state = State(tmp_path / "state", dict(JOB))
    state.acquire()
    previous = os.umask(umask)
    try:
        with open_output(tmp_path / "out.jsonl", state):
            pass
    finally:
        os.umask(previous)
        state.release()
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == mode


def test_a_finished_job_whose_output_is_gone_or_changed_is_not_called_finished(tmp_path):
    state, output = started(tmp_path)
    commit_rows(state, output, "p1", b"12345\n")
    check_finished_output(tmp_path / "out.jsonl", state)  # as it was: finished
    check_finished_output(None, state)  # stdout: nothing to check
    output.write(b"more\n")
    output.flush()
    with pytest.raises(StateError) as refused:
        check_finished_output(tmp_path / "out.jsonl", state)
    assert str(refused.value) == (
        f"{tmp_path / 'out.jsonl'} changed since {tmp_path / 'state'} recorded it (11 bytes, "
        "not 6): use a new state file"
    )
    output.close()
    (tmp_path / "out.jsonl").unlink()
    with pytest.raises(StateError) as refused:
        check_finished_output(tmp_path / "out.jsonl", state)
    assert str(refused.value) == (
        f"{tmp_path / 'out.jsonl'} is missing but {tmp_path / 'state'} records finished "
        "projects: use a new state file"
    )
    state.release()


def test_an_existing_output_is_kept_as_it_was_when_no_project_succeeds(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"old\n")
    with open_output(out, None) as output:
        output.stream.write(b"partial\n")
        output.finish(any_succeeded=False)
        assert output.kept_old is True
    assert out.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary file left


class _FullDisk(io.BytesIO):
    def write(self, data: object) -> int:
        del data
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_write_that_fails_names_the_output_and_keeps_its_errno(tmp_path):
    target = classify(tmp_path / "out.jsonl", "--output")
    rows = ProjectRows(tmp_path)
    rows.write(b'{"id": "a"}\n')
    with pytest.raises(OSError, match="No space left") as failed:
        Output(_FullDisk(), target, owned=False).append(rows)
    assert failed.value.errno == errno.ENOSPC
    assert failed.value.strerror == (
        f"cannot write --output {tmp_path / 'out.jsonl'}: No space left on device"
    )
    rows.close()


def test_a_big_project_s_rows_spill_to_disk_beside_the_output_not_in_memory(tmp_path):
    rows = ProjectRows(tmp_path)
    rows.write(b"x" * (1024 * 1024 - 1))
    assert not rows._spool._rolled
    rows.write(b"yy")
    assert rows._spool._rolled
    spilled = Path(f"/proc/self/fd/{rows._spool.fileno()}").readlink()
    assert Path(str(spilled).removesuffix(" (deleted)")).parent == tmp_path
    copied = io.BytesIO()
    rows.copy_to(copied)
    assert copied.getvalue() == b"x" * (1024 * 1024 - 1) + b"yy"
    rows.close()


def test_a_big_project_s_rows_for_stdout_spill_to_the_system_s_temporary_folder():
    rows = ProjectRows(None)
    rows.write(b"x" * (1024 * 1024 + 1))
    assert rows._spool._rolled
    copied = io.BytesIO()
    rows.copy_to(copied)
    assert len(copied.getvalue()) == 1024 * 1024 + 1
    rows.close()
