"""Where a crawl's rows go, so that no output is ever lost or mixed.

- Each project's rows are kept apart while it is listed (in memory up to
  1 MiB, then in an unnamed temporary file) and go to the output in one piece
  when its listing ends well; a failed project's rows are dropped.
- Without `--resume`, the output is written to a temporary file beside it
  and renamed over it at the end, also after a partial run; when no project
  succeeded, an existing output is kept as it was. A run that fails to start
  never touches it.
- With `--resume`, rows are appended to the output itself, which the state
  checks is the file it wrote and cuts back to what finished projects wrote.
- `-o -` (or no `--output`) is stdout.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from typing import IO, TYPE_CHECKING, Final

from ._state import State, StateError

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
        self.rows = 0

    def write(self, data: bytes, rows: int) -> None:
        """Keep `rows` rows, serialised as `data`."""
        self._spool.write(data)
        self.rows += rows

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
        path: The output file, or None for stdout.
        kept_old: Set at the end when an existing output was kept because no
            project succeeded.
    """

    def __init__(
        self, stream: IO[bytes], path: Path | None, temporary: Path | None, *, owned: bool
    ) -> None:
        self._owned = owned
        self.stream = stream
        self.path = path
        self._temporary = temporary
        self.kept_old = False

    @property
    def spool_directory(self) -> Path | None:
        """Where projects' rows spill to disk: beside the output (same disk)."""
        return None if self.path is None else self.path.parent

    def append(self, rows: ProjectRows) -> None:
        """Append a finished project's rows and flush them."""
        rows.copy_to(self.stream)
        self.stream.flush()

    def finish(self, *, any_succeeded: bool) -> None:
        """Put the output in place: rename the temporary file over it, or keep the old one."""
        if self._temporary is None or self.path is None:
            self.stream.flush()
            return
        self.close()
        if not any_succeeded and self.path.exists():
            self._temporary.unlink()
            self.kept_old = True
            return
        self._temporary.replace(self.path)

    def abandon(self) -> None:
        """The run failed before it could write anything worth keeping: leave the output alone."""
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                self.close()
            with contextlib.suppress(OSError):
                self._temporary.unlink()

    def close(self) -> None:
        """Close the file this run opened (never stdout)."""
        if self._owned and not self.stream.closed:
            self.stream.close()


@contextlib.contextmanager
def open_output(path: Path | None, state: State | None) -> Iterator[Output]:
    """The output for a run: stdout, the resumed file, or a temporary file beside `path`.

    Raises:
        StateError: The resumed output is not the one the state wrote, or a
            new state would write over an existing file.
    """
    if path is None:
        output = Output(sys.stdout.buffer, None, None, owned=False)
    elif state is not None:
        output = Output(_resumed(path, state), path, None, owned=True)
    else:
        output = Output(*_temporary_beside(path), owned=True)
    try:
        yield output
    except BaseException:
        output.abandon()
        raise
    finally:
        output.close()


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


def _resumed(path: Path, state: State) -> IO[bytes]:
    if state.is_new:
        if path.exists() and path.stat().st_size > 0:
            raise StateError(
                f"{path} already exists and the new state {state.path} has no record of it: "
                "move it away or choose another --output (nothing was written)"
            )
        stream = path.open("w+b")
    else:
        try:
            stream = path.open("r+b")
        except FileNotFoundError:
            raise StateError(
                f"{path} is missing but {state.path} records finished projects: "
                "use a new state file"
            ) from None
        try:
            state.check_output(stream)
        except StateError:
            stream.close()
            raise
    stream.truncate(state.committed_size)
    stream.seek(state.committed_size)
    return stream


def _temporary_beside(path: Path) -> tuple[IO[bytes], Path, Path]:
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    # mkstemp makes it private (0600); the output gets the mode a new file would.
    if hasattr(os, "fchmod"):  # not on Windows, where modes do not apply
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(descriptor, 0o666 & ~umask)
    return os.fdopen(descriptor, "w+b"), path, type(path)(name)
