"""The files the command writes: checked before anything runs, written without harming them.

- `-` (and `/dev/stdout`) is stdout.
- A target that exists and is not a regular file (a character device such
  as a terminal or `/dev/null`, a FIFO, a socket) is written as a shell
  redirect (`>`) would: opened for writing, never replaced.
- A regular file, or a name not yet taken, is written to a temporary file
  beside it and renamed over it: a reader never sees half of it. A symlink
  is followed, so its target is replaced and the link kept. A file that
  existed keeps its mode; a new one gets the mode the umask gives.
- Two paths the command takes that are the same file are refused before
  anything runs (character devices aside: two writers to one terminal are
  what a shell does too).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, Literal

import attrs

from ._text import stdout_for_rows

if TYPE_CHECKING:
    from collections.abc import Iterable

try:
    import fcntl
except ModuleNotFoundError:  # pragma: no cover - Windows: no lock (said in the README)
    fcntl = None  # type: ignore[assignment]

Kind = Literal["stdout", "new", "regular", "special"]

_STDOUT_NAMES: Final = frozenset({"-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"})
_DESCRIPTOR_PATH: Final = re.compile(r"^/(?:dev|proc/self)/fd/([0-9]+)$")


class PathError(Exception):
    """A path the command was given cannot be used; the message says why, in one line."""


@attrs.frozen
class Target:
    """Where one of the command's outputs goes.

    Attributes:
        option: The option that named it (`--output`), for messages.
        path: The path as given; None for stdout.
        kind: `stdout`, `new` (nothing there yet), `regular` (an existing
            regular file) or `special` (a device, a FIFO, a socket).
        real: The path with symlinks followed: what a rename replaces.
        identity: (device, inode) of what exists there, if anything.
        mode: The permission bits of an existing regular file.
        descriptor: For `/dev/fd/N` (a descriptor the shell opened, `exec
            3>>file`): N, written through as it is (appending if it appends).
    """

    option: str
    path: Path | None
    kind: Kind
    real: Path | None = None
    identity: tuple[int, int] | None = None
    mode: int | None = None
    descriptor: int | None = None

    @property
    def replaceable(self) -> bool:
        """Whether it is written to a temporary file and renamed into place."""
        return self.kind in {"new", "regular"}

    def describe(self) -> str:
        """The path as the operator named it."""
        return "stdout" if self.path is None else str(self.path)


def new_file_mode() -> int:
    """The mode a new file gets under the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def is_stdout(path: Path | None) -> bool:
    """Whether `path` names stdout (`-`, `/dev/stdout`)."""
    return path is None or str(path) in _STDOUT_NAMES


_REPLACED: Final = "the file is written beside its final name, then renamed"


def classify(path: Path | None, option: str, *, beside: str = _REPLACED) -> Target:
    """Say what `path` is, checking it can be written.

    `beside` says why its folder must be writable.

    Raises:
        PathError: A directory, a missing or read-only directory, a file
            that cannot be written.
    """
    if path is None or is_stdout(path):
        return Target(option, None, "stdout")
    inherited = _DESCRIPTOR_PATH.match(str(path))
    if inherited is not None:
        descriptor = int(inherited.group(1))
        try:
            opened = os.fstat(descriptor)
        except OSError:
            raise PathError(f"{option} {path}: no such open file descriptor") from None
        identity = (opened.st_dev, opened.st_ino)
        return Target(option, path, "special", identity=identity, descriptor=descriptor)
    try:
        status = path.stat()  # follows symlinks: the target is what counts
    except FileNotFoundError:
        status = None
    except OSError as exc:
        raise PathError(f"{option} {path}: {exc.strerror}") from None
    real = Path(os.path.realpath(path))
    if status is None:
        _check_directory(real.parent, option, path, beside)
        return Target(option, path, "new", real)
    identity = (status.st_dev, status.st_ino)
    if stat.S_ISDIR(status.st_mode):
        raise PathError(f"{option} {path} is a directory: give a file name")
    if stat.S_ISREG(status.st_mode):
        _check_directory(real.parent, option, path, beside)
        return Target(option, path, "regular", real, identity, stat.S_IMODE(status.st_mode))
    if not os.access(path, os.W_OK):
        raise PathError(f"{option} {path} cannot be written (permission denied)")
    return Target(option, path, "special", real, identity)


def check_database(path: Path) -> None:
    """Refuse a `--db` that is not a file of its own: stdout, a device, a fifo, the file stdout is.

    SQLite needs a regular file it can lock and read back.

    Raises:
        PathError: The path names stdout or something that is not a regular file.
    """
    target = classify(path, "--db", beside="SQLite keeps its journal beside the database")
    if target.kind == "stdout":
        raise PathError(
            f"--db {path} names stdout: the database must be a file of its own "
            "(write the rows to stdout with -o -)"
        )
    if target.descriptor is not None:
        raise PathError(
            f"--db {path} is an open file descriptor: give the database a file name of its own"
        )
    if target.kind == "special":
        raise PathError(
            f"--db {path} is not a regular file (a device, a fifo): "
            "give the database a file of its own"
        )
    if target.identity is not None and target.identity == _stdout_file():
        raise PathError(
            f"--db {path} is the file stdout is redirected to: give the database a file of its own"
        )


def _check_directory(directory: Path, option: str, path: Path, beside: str) -> None:
    if not directory.is_dir():
        raise PathError(f"{option} {path}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PathError(f"{option} {path}: the directory {directory} is not writable ({beside})")


def check_distinct(targets: Iterable[Target]) -> None:
    """Refuse two of the command's paths that are one file.

    Stdout counts as the file a shell redirected it to (`> rows.jsonl`)
    when something is written to it.

    Raises:
        PathError: Two targets are the same file, or both stdout.
    """
    targets = list(targets)
    if any(target.kind == "stdout" for target in targets):
        redirected = _stdout_file()
        for target in targets:
            if redirected is not None and target.kind != "stdout" and target.identity == redirected:
                raise PathError(
                    f"{target.option} {target.describe()} is the file stdout is redirected "
                    "to, which the command also writes: give each its own"
                )
    seen: list[Target] = []
    for target in targets:
        for earlier in seen:
            if _same(earlier, target):
                raise PathError(
                    f"{target.option} {target.describe()} is the same file as "
                    f"{earlier.option} {earlier.describe()}: give each its own"
                )
        seen.append(target)


def _stdout_file() -> tuple[int, int] | None:
    """(device, inode) of the regular file stdout is redirected to, if it is one."""
    try:
        status = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return (status.st_dev, status.st_ino) if stat.S_ISREG(status.st_mode) else None


def _same(first: Target, second: Target) -> bool:
    if first.kind == "stdout" or second.kind == "stdout":
        return first.kind == second.kind
    if first.identity is not None and first.identity == second.identity:
        # Two writers to one terminal (or /dev/null) are what a shell allows too.
        return not _is_character_device(first)
    return first.real is not None and first.real == second.real


def _is_character_device(target: Target) -> bool:
    with contextlib.suppress(OSError):
        return target.path is not None and stat.S_ISCHR(target.path.stat().st_mode)
    return False


def read_target(option: str, stream: IO[bytes] | None, path: Path | None = None) -> Target | None:
    """A file the command reads (`--projects-file`), to check no output is that file."""
    if stream is not None:
        try:
            status = os.fstat(stream.fileno())
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return None
        if not stat.S_ISREG(status.st_mode):
            return None
        name = getattr(stream, "name", None)
        real = Path(os.path.realpath(name)) if isinstance(name, str) else None
        return Target(option, Path(str(name)), "regular", real, (status.st_dev, status.st_ino))
    if path is not None:
        with contextlib.suppress(OSError):
            status = path.stat()
            return Target(
                option,
                path,
                "regular",
                Path(os.path.realpath(path)),
                (status.st_dev, status.st_ino),
            )
    return None


def open_redirect(target: Target) -> IO[bytes]:
    """Open a target for writing as a shell's `>` would: truncated, never replaced.

    Raises:
        PathError: It cannot be opened.
    """
    assert target.path is not None  # noqa: S101 - stdout is never opened by name
    try:
        if target.descriptor is not None:
            # Opening /dev/fd/N by name would truncate the file and lose its
            # append mode on Linux: write through the descriptor itself.
            return os.fdopen(os.dup(target.descriptor), "wb")
        descriptor = os.open(target.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    except OSError as exc:
        raise PathError(f"{target.option} {target.path}: {exc.strerror}") from None
    return os.fdopen(descriptor, "wb")


def temporary_beside(target: Target) -> tuple[IO[bytes], Path]:
    """A hidden temporary file beside the target, with the mode the target will have.

    Its name carries this process's ID (`.out.jsonl.1234.x8f2.partial`), so
    that a later run can tell one left by a process killed with SIGKILL
    (see `remove_stale_temporaries`).
    """
    assert target.real is not None  # noqa: S101 - only for new and regular targets
    real = target.real
    descriptor, name = tempfile.mkstemp(
        prefix=f".{real.name}.{os.getpid()}.", suffix=".partial", dir=real.parent
    )
    # mkstemp makes it private (0600): an existing file keeps its mode, a new
    # one gets what the umask gives.
    if hasattr(os, "fchmod"):  # not on Windows, where modes do not apply
        os.fchmod(descriptor, target.mode if target.mode is not None else new_file_mode())
    return os.fdopen(descriptor, "w+b"), Path(name)


def write_whole(target: Target, data: bytes) -> None:
    """Write `data` as the whole of `target`: atomically for a file, as a redirect otherwise."""
    if target.kind == "stdout":
        stdout = stdout_for_rows()
        stdout.write(data)
        stdout.flush()
        return
    if target.kind == "special":
        with open_redirect(target) as stream:
            stream.write(data)
        return
    assert target.real is not None  # noqa: S101 - new and regular targets have one
    stream, temporary = temporary_beside(target)
    try:
        with stream:
            stream.write(data)
        temporary.replace(target.real)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def lock(stream: IO[bytes], target: Target) -> None:
    """Hold an exclusive lock on `stream` while the job runs (released when it closes).

    Raises:
        PathError: Another crawl holds it.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise PathError(
            f"another vbs-async crawl is writing {target.describe()}: wait for it to end, "
            f"or give {target.option} another file"
        ) from None


def remove_stale_temporaries(target: Target) -> list[Path]:
    """Remove the temporary files of `target` left by processes that are gone (SIGKILL).

    Only files named as `temporary_beside` names them are touched, and only
    when the process whose ID they carry no longer runs.

    Returns:
        The files removed.
    """
    if target.real is None:
        return []
    removed = []
    # Exactly `.NAME.PID.RANDOM.partial`, RANDOM being mkstemp's eight letters, digits or
    # underscores: `.out.jsonl.999.1234.x8f2k3j2.partial` is the temporary of another
    # output, `out.jsonl.999`, written by process 1234 - not one of process 999's.
    own = re.compile(re.escape(f".{target.real.name}.") + r"([0-9]+)\.[a-z0-9_]{8}\.partial")
    with contextlib.suppress(OSError):
        for entry in target.real.parent.iterdir():
            found = own.fullmatch(entry.name)
            if found is not None and not _alive(int(found[1])):
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process: alive; a silly number
        return pid > 0
    return True


class HeldLock:
    """The lock file of one output, held for the job: removed when the job lets go.

    The lock is on a file beside the output (`.out.jsonl.lock`), not on the
    output itself: the output may not exist yet, and without `--resume` it is
    replaced by a rename, so a lock on its inode would protect nothing.
    """

    def __init__(self, stream: IO[bytes], path: Path) -> None:
        self._stream: IO[bytes] | None = stream
        self.path = path

    def close(self) -> None:
        """Let go: the file is removed first, so the next job makes a new one."""
        if self._stream is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            self._stream.close()
        self._stream = None


def lock_output(target: Target) -> HeldLock | None:
    """Lock the output a crawl writes (a regular file, or a name not taken yet) for the job.

    Raises:
        PathError: Another crawl holds it, or the lock file cannot be made.
    """
    if fcntl is None or target.real is None or not target.replaceable:  # pragma: no branch
        return None
    path = target.real.parent / f".{target.real.name}.lock"
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise PathError(
                f"{target.option} {target.describe()}: its lock file {path} cannot be made "
                f"({exc.strerror})"
            ) from None
        stream = os.fdopen(descriptor, "r+b")
        try:
            lock(stream, target)
        except BaseException:
            stream.close()
            raise
        # The job before may have removed the file between our open and our
        # lock: a lock on a removed file guards nothing; take a new one.
        try:
            current = path.stat()
        except FileNotFoundError:
            current = None
        status = os.fstat(descriptor)
        if current is not None and (current.st_dev, current.st_ino) == (
            status.st_dev,
            status.st_ino,
        ):
            return HeldLock(stream, path)
        stream.close()
