"""The resume state of a crawl: which job it belongs to, which projects are finished.

The state file is a journal of JSON lines. The first line says what the job
is (the projects, the filters and order, the format and page size, the
output's path) and which output file it writes (device and inode); each
later line records one finished project, appended after that project's rows
were written and flushed, with the output's size at that point and a digest
of the output's last bytes up to there. A line cut short by a crash is
ignored. On resume:

- another job's state is refused, naming what differs;
- an output that is not the file the state wrote, is shorter than what it
  recorded, or whose committed bytes changed, is refused;
- otherwise the output is cut back to what finished projects wrote, so the
  rows of an unfinished project are dropped and it is crawled again: each
  project's rows end up in the output exactly once.

While a crawl runs, it holds an exclusive lock on the state file: a second
crawl on the same state stops at once. Writes are flushed to the operating
system, not synced: this survives Ctrl-C, SIGTERM, kill -9 and a crash of
the process, not a power cut.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Final

import attrs
import orjson

if TYPE_CHECKING:
    from pathlib import Path

try:
    import fcntl
except ModuleNotFoundError:  # pragma: no cover - Windows: no lock (said in the README)
    fcntl = None  # type: ignore[assignment]

FORMAT: Final = 1
TAIL_BYTES: Final = 64 * 1024
"""How much of the output's committed end is digested to notice another writer."""


class StateError(Exception):
    """The state cannot be used for this run; the message says why, in one line."""


def digest_ids(project_ids: list[str]) -> str:
    """A digest of the project list, in order."""
    return hashlib.sha256("\n".join(project_ids).encode()).hexdigest()


def tail_digest(stream: IO[bytes], end: int) -> str:
    """The sha256 of the `TAIL_BYTES` of `stream` before `end`."""
    start = max(0, end - TAIL_BYTES)
    position = stream.tell()
    stream.seek(start)
    data = stream.read(end - start)
    stream.seek(position)
    return hashlib.sha256(data).hexdigest()


@attrs.frozen
class Commit:
    """One finished project, as the state records it."""

    project_id: str
    output_bytes: int
    sharings: int
    tail: str
    at: float


class State:
    """A crawl job's resume state.

    Attributes:
        path: The state file.
        job: What the job is: the keys of the first line's `job`.
        finished: Projects whose rows are in the output, in order of commit.
        committed_size: Output bytes that belong to finished projects.
        last_commit: The latest commit, if any.
    """

    def __init__(self, path: Path, job: dict[str, Any]) -> None:
        self.path = path
        self.job = job
        self.finished: dict[str, Commit] = {}
        self.committed_size = 0
        self.last_commit: Commit | None = None
        self._output_identity: tuple[int, int] | None = None
        self._file: IO[bytes] | None = None
        self._created = False

    # -- opening --------------------------------------------------------------------

    def acquire(self) -> None:
        """Lock the state file (creating it) and read it; refuse another job's state.

        Raises:
            StateError: Another run holds it, it is not a state file, or it
                belongs to another job.
        """
        self._created = not self.path.exists()
        self._file = self.path.open("a+b")
        if fcntl is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.release()
                raise StateError(
                    f"another vbs-async crawl is using {self.path}: wait for it to end"
                ) from None
        self._file.seek(0)
        data = self._file.read()
        if data:
            self._read(data)

    def _read(self, data: bytes) -> None:
        lines = data.split(b"\n")
        header = _header(lines[0])
        if header is None:
            self.release()
            if b'"output_bytes"' in lines[0]:
                raise StateError(
                    f"{self.path} was written by vbs-async 0.1, which did not record its job: "
                    "finish that crawl with 0.1, or start again with a new state file"
                )
            raise StateError(
                f"{self.path} is not a vbs-async state file; it was left as it is "
                "(give --resume a new file name)"
            )
        job, identity = header
        differences = [
            key for key in sorted(set(job) | set(self.job)) if job.get(key) != self.job.get(key)
        ]
        if differences:
            self.release()
            named = ", ".join(_describe(k) for k in differences)
            raise StateError(
                f"{self.path} belongs to another crawl (its {named} differ from this run's): "
                "run it with the same options, or use a new state file"
            )
        self._output_identity = identity
        # The last element is empty, or a line a crash cut short: ignored.
        for line in lines[1:-1]:
            try:
                entry = orjson.loads(line)
                commit = Commit(
                    str(entry["project_id"]),
                    int(entry["output_bytes"]),
                    int(entry["sharings"]),
                    str(entry["tail"]),
                    float(entry["at"]),
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.release()
                raise StateError(f"{self.path} has a damaged line; it was left as it is") from None
            self.finished[commit.project_id] = commit
            self.committed_size = max(self.committed_size, commit.output_bytes)
            self.last_commit = commit

    @property
    def is_new(self) -> bool:
        """Whether the state holds nothing yet (a new job)."""
        return self._output_identity is None

    def check_output(self, output: IO[bytes]) -> None:
        """Refuse an output that is not the one this state wrote, or that changed since.

        Raises:
            StateError: It is another file, shorter, or its committed bytes changed.
        """
        if self._output_identity is None:
            return
        status = os.fstat(output.fileno())
        name = self.job["output"]
        if (status.st_dev, status.st_ino) != self._output_identity:
            raise StateError(
                f"{name} is not the file {self.path} was writing (it was replaced since): "
                "use a new state file, or the output it recorded"
            )
        if status.st_size < self.committed_size:
            raise StateError(
                f"{name} is shorter ({status.st_size} bytes) than {self.path} records "
                f"({self.committed_size}): it changed since; use a new state file"
            )
        last = self.last_commit
        if last is not None and tail_digest(output, last.output_bytes) != last.tail:
            raise StateError(
                f"{name} changed since {self.path} recorded it (another run wrote to it?): "
                "use a new state file"
            )

    def start(self, output: IO[bytes]) -> None:
        """Write the job's first line if the state is new; make later lines appendable."""
        assert self._file is not None  # noqa: S101 - acquired first
        # Drop a line a crash cut short before appending.
        self._file.seek(0)
        data = self._file.read()
        complete = data.rfind(b"\n") + 1
        if complete != len(data):
            self._file.truncate(complete)
        if self.is_new:
            status = os.fstat(output.fileno())
            self._output_identity = (status.st_dev, status.st_ino)
            header = {
                "vbs_async_state": FORMAT,
                "job": self.job,
                "output": {"device": status.st_dev, "inode": status.st_ino},
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self._write(header)

    def commit(self, project_id: str, output: IO[bytes], sharings: int) -> None:
        """Record a finished project whose rows end where `output` stands now."""
        end = output.tell()
        commit = Commit(project_id, end, sharings, tail_digest(output, end), time.time())
        self._write(attrs.asdict(commit))
        self.finished[project_id] = commit
        self.committed_size = end
        self.last_commit = commit

    def _write(self, entry: dict[str, Any]) -> None:
        assert self._file is not None  # noqa: S101 - acquired first
        self._file.seek(0, os.SEEK_END)
        self._file.write(orjson.dumps(entry) + b"\n")
        self._file.flush()

    def release(self) -> None:
        """Unlock and close the state file; remove it if this run made it and wrote nothing.

        A run refused before it started (another crawl writes the output, a
        database that cannot be opened) leaves no empty state behind.
        """
        if self._file is not None:
            with contextlib.suppress(OSError):
                if self._created and os.fstat(self._file.fileno()).st_size == 0:
                    self.path.unlink()
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def _header(line: bytes) -> tuple[dict[str, Any], tuple[int, int]] | None:
    """The job and the output's (device, inode) of a state's first line; None if it is not one."""
    try:
        header = orjson.loads(line)
        if not isinstance(header, dict) or header.get("vbs_async_state") != FORMAT:
            return None
        job, output = header["job"], header["output"]
        if not isinstance(job, dict):
            return None
        return job, (int(output["device"]), int(output["inode"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


_DESCRIPTIONS: Final = {
    "projects": "project list",
    "filters": "filters",
    "sort": "sort order",
    "format": "format",
    "page_size": "page size",
    "output": "output file",
    "listing": "listing options",
}


def _describe(key: str) -> str:
    return _DESCRIPTIONS.get(key, key)


def finished_at(state: State) -> str:
    """When the state's last project finished, for messages."""
    if state.last_commit is None:
        return "an unknown time"
    moment = datetime.fromtimestamp(state.last_commit.at, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
