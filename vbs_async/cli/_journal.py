"""The resume state of a crawl: which projects are finished, and how much output is theirs.

The state file is a journal: one JSON line per finished project, appended
after that project's rows were written and flushed, holding the output's
size at that point. A line cut short by a crash is ignored. On resume the
output is cut back to the size the last complete line records, so rows of a
project that was not finished are dropped, and the project is crawled again:
each project's rows end up in the output exactly once.

Writes are flushed to the operating system, not synced to the disk: this
survives Ctrl-C, SIGTERM, kill -9 and a crash of the process, not a power cut.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from pathlib import Path


class Journal:
    """Finished projects of a crawl, kept in a state file.

    Attributes:
        path: The state file.
        finished: IDs of the projects whose rows are in the output.
        committed_size: Output bytes that belong to finished projects.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.finished: set[str] = set()
        self.committed_size = 0
        self._file: IO[bytes] | None = None
        if path.exists():
            self._read()

    def _read(self) -> None:
        # The last element is empty, or a line a crash cut short: ignored.
        for line in self.path.read_bytes().split(b"\n")[:-1]:
            try:
                entry = orjson.loads(line)
                project_id, size = entry["project_id"], int(entry["output_bytes"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise ValueError(f"{self.path} is not a vbs-async state file") from None
            self.finished.add(project_id)
            self.committed_size = max(self.committed_size, size)

    def open(self) -> None:
        """Open for appending, first dropping a line a crash cut short."""
        if self.path.exists():
            data = self.path.read_bytes()
            complete = data.rfind(b"\n") + 1
            if complete != len(data):
                with self.path.open("r+b") as journal:
                    journal.truncate(complete)
        self._file = self.path.open("ab")

    def commit(self, project_id: str, output_size: int, sharings: int) -> None:
        """Record a finished project whose rows end at `output_size` bytes of output."""
        if self._file is None:
            raise RuntimeError("the journal is not open")
        entry = {"project_id": project_id, "output_bytes": output_size, "sharings": sharings}
        self._file.write(orjson.dumps(entry) + b"\n")
        self._file.flush()
        self.finished.add(project_id)
        self.committed_size = output_size

    def close(self) -> None:
        """Close the state file."""
        if self._file is not None:
            self._file.close()
            self._file = None
