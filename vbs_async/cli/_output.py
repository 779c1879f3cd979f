"""Where a crawl's rows go, so that no output is ever lost or mixed.

- Each project's rows are kept apart while it is listed (in memory up to
  1 MiB, then in an unnamed temporary file) and go to the output in one piece
  when its listing ends well; a failed project's rows are dropped.
- Without `--resume`, a regular output file (or a new one) is written to a
  temporary file beside it and renamed over it at the end, also after a
  partial run; when no project succeeded, an existing output is kept as it
  was. A run that fails to start never touches it. A symlink is written
  through: its target is replaced, the link stays.
- An output that is not a regular file (a terminal, a FIFO, a device) is
  written as a shell's `>` would: opened and written, never replaced.
- With `--resume`, rows are appended to the output itself (a regular file),
  which the state checks is the file it wrote and cuts back to what
  finished projects wrote.
- The output is locked for the job: a second crawl writing it stops at once.
- `-o -` (or no `--output`) is stdout.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import IO, TYPE_CHECKING, Final

from ._files import (
    HeldLock,
    Target,
    classify,
    lock,
    lock_output,
    open_redirect,
    remove_stale_temporaries,
    temporary_beside,
)
from ._state import State, StateError
from ._text import stdout_for_rows

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_SPOOL_IN_MEMORY: Final = 1024 * 1024


class ProjectRows:
    """One project's rows while it is being listed."""

    def __init__(self, directory: Path | None) -> None:
        self._spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by `close`
            max_size=_SPOOL_IN_MEMORY, dir=None if directory is None else str(directory)
        )

    def write(self, data: bytes) -> None:
        """Keep rows, serialised as `data`."""
        self._spool.write(data)

    def copy_to(self, stream: IO[bytes]) -> None:
        """Append the rows to `stream`."""
        self._spool.seek(0)
        shutil.copyfileobj(self._spool, stream, 1024 * 1024)

    def close(self) -> None:
        """Drop the rows."""
        self._spool.close()


class Output:
    """The stream rows go to, and what becomes of it at the end.

    Attributes:
        stream: Where rows are written.
        kept_old: Set at the end when an existing output was kept because no
            project succeeded.
    """

    def __init__(
        self,
        stream: IO[bytes],
        target: Target,
        temporary: Path | None = None,
        *,
        owned: bool,
        held: IO[bytes] | None = None,
        lock_file: HeldLock | None = None,
    ) -> None:
        self._owned = owned
        self.stream = stream
        self.target = target
        self._temporary = temporary
        self._held = held
        self._lock_file = lock_file
        self.kept_old = False

    @property
    def spool_directory(self) -> Path | None:
        """Where projects' rows spill to disk: beside the output (same disk)."""
        if self.target.replaceable and self.target.real is not None:
            return self.target.real.parent
        return None

    def append(self, rows: ProjectRows) -> None:
        """Append a finished project's rows and flush them.

        Raises:
            OSError: The output could not be written: its message names the
                file (a full disk, `ulimit -f`); a reader of stdout that left
                is a `BrokenPipeError`, as it was.
        """
        try:
            rows.copy_to(self.stream)
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot write --output {self.target.describe()}: {exc.strerror}"
            ) from None

    def finish(self, *, any_succeeded: bool) -> None:
        """Put the output in place: rename the temporary file over it, or keep the old one."""
        if self._temporary is None or self.target.real is None:
            self.stream.flush()
            return
        self.close()
        if not any_succeeded and self.target.kind == "regular":
            self._temporary.unlink()
            self.kept_old = True
            return
        self._temporary.replace(self.target.real)
        self._temporary = None

    def abandon(self) -> None:
        """The run failed before it could write anything worth keeping: leave the output alone."""
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                self.close()
            with contextlib.suppress(OSError):
                self._temporary.unlink()
            self._temporary = None

    def close(self) -> None:
        """Close the file this run opened (never stdout), and let go of the lock."""
        if self._owned and not self.stream.closed:
            self.stream.close()
        if self._held is not None:
            with contextlib.suppress(OSError):
                self._held.close()
            self._held = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


@contextlib.contextmanager
def open_output(path: Path | None, state: State | None) -> Iterator[Output]:
    """The output for a run: stdout, the resumed file, a redirect, or a temporary file.

    Raises:
        StateError: The resumed output is not the one the state wrote, or a
            new state would write over an existing file.
        PathError: The output cannot be written, or another crawl writes it.
    """
    target = classify(path, "--output")
    if target.kind == "stdout":
        output = Output(stdout_for_rows(), target, owned=False)
    elif target.kind == "special":
        if state is not None:
            raise StateError(
                f"--resume needs --output to be a regular file; {path} is not one "
                "(a device or a FIFO cannot be cut back to what finished projects wrote)"
            )
        output = Output(open_redirect(target), target, owned=True)
    else:
        # Every crawl writing this file holds its lock file, with or without
        # a state: the output may not exist yet, and a rename replaces it.
        lock_file = lock_output(target)
        try:
            remove_stale_temporaries(target)  # of a crawl killed with SIGKILL
            output = _locked_output(target, state, lock_file)
        except BaseException:
            if lock_file is not None:
                lock_file.close()
            raise
    try:
        yield output
    except BaseException:
        output.abandon()
        raise
    finally:
        output.close()


def _locked_output(target: Target, state: State | None, lock_file: HeldLock | None) -> Output:
    """The output of a crawl holding its lock file: resumed in place, or a temporary file."""
    if state is not None:
        return Output(_resumed(target, state), target, owned=True, lock_file=lock_file)
    held = _hold(target)
    try:
        stream, temporary = temporary_beside(target)
    except BaseException:
        if held is not None:
            held.close()
        raise
    return Output(stream, target, temporary, owned=True, held=held, lock_file=lock_file)


def _hold(target: Target) -> IO[bytes] | None:
    """Lock an existing output while a new version of it is written (None: nothing there)."""
    if target.kind != "regular" or target.real is None:
        return None
    try:
        held = target.real.open("rb")
    except OSError:
        return None  # unreadable: the rename is still atomic; only the lock is lost
    try:
        lock(held, target)
    except BaseException:
        held.close()
        raise
    return held


def check_finished_output(path: Path | None, state: State) -> None:
    """Refuse to call a job finished whose output is gone or changed since.

    Raises:
        StateError: The output is missing, another file, or changed.
    """
    if path is None:
        return
    try:
        with path.open("rb") as stream:
            state.check_output(stream)
            size = os.fstat(stream.fileno()).st_size
    except FileNotFoundError:
        raise StateError(
            f"{path} is missing but {state.path} records finished projects: use a new state file"
        ) from None
    if size != state.committed_size:
        raise StateError(
            f"{path} changed since {state.path} recorded it ({size} bytes, not "
            f"{state.committed_size}): use a new state file"
        )


def _resumed(target: Target, state: State) -> IO[bytes]:
    path = target.path
    assert path is not None  # noqa: S101 - a file, not stdout
    flags = os.O_RDWR | (os.O_CREAT if state.is_new else 0)
    try:
        # As a redirect would: a new file gets the umask's mode.
        stream = os.fdopen(os.open(path, flags, 0o666), "r+b")
    except FileNotFoundError:
        raise StateError(
            f"{path} is missing but {state.path} records finished projects: use a new state file"
        ) from None
    try:
        lock(stream, target)  # first: another job writing it is the reason to give
        _check_resumable(stream, path, state)
    except BaseException:
        stream.close()
        raise
    stream.truncate(state.committed_size)
    stream.seek(state.committed_size)
    return stream


def _check_resumable(stream: IO[bytes], path: Path, state: State) -> None:
    """Refuse a new state over an existing output, or an output the state did not write."""
    if state.is_new and os.fstat(stream.fileno()).st_size > 0:
        raise StateError(
            f"{path} already exists and the new state {state.path} has no record of it: "
            "move it away or choose another --output (nothing was written)"
        )
    state.check_output(stream)
