"""The other calls as subcommands: `count`, `get`, `share` and `cancel`.

PROJECT may be an ID or a name (`eu-de_prod`). Every ID is checked before
the first request. `share` and `cancel` change the cloud: both take
`--dry-run` (check everything the real run checks, names looked up
included; send no change) and ask for confirmation unless `--yes`
(refusing when there is no terminal to ask on). `cancel` takes sharing
IDs, or the JSONL or CSV a crawl wrote (`--from-file`): each row is
cancelled by the project that shared it (`from_project_id`), for bulk
clean-ups; a sharing already gone (404) counts as done when the file's
crawl listed it under that project (so a clean-up run again succeeds),
and as "not found" (a failure) otherwise: a 404 from the wrong project
looks the same.

Exit status, as the README's table: 0 done, 1 the item (or some items)
failed at the server (403, 409, ...), 2 usage, configuration, credentials
or an endpoint that does not answer, 3 `get` found nothing, 129/130/143 a
signal, 141 the reader of stdout left.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs
import click
import orjson

from vbs_async._errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    TransportError,
    VBSError,
)
from vbs_async._requests import text_filters
from vbs_async._retry import RetryPolicy
from vbs_async._validation import check_id

from ._connect import configured_client, connection_options
from ._logging import operator_logging
from ._projects import ProjectLookupError, is_project_name, resolve_projects
from ._rows import jsonl
from ._signals import StopSignals
from ._text import printable, stdout_for_rows

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from vbs_async._client import VBSClient

_AT_ONCE: Final = 32
"""Cancellations in flight at once (the client's limiter and learned rate still apply)."""

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOT_FOUND: Final = 3
EXIT_BROKEN_PIPE: Final = 141


class CallError(Exception):
    """A call that failed: one line on stderr, and its exit status.

    Attributes:
        status: The exit status.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _finite(_: click.Context, parameter: click.Parameter, value: float) -> float:
    """Refuse `nan` and `inf`, which FloatRange lets through."""
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds", param=parameter)
    return value


def call_options(command: Any) -> Any:
    """The options every single call takes: the connection's, `--timeout`, `--debug`."""
    command = click.option(
        "--debug", is_flag=True, help="Log every request with timestamps, and show tracebacks."
    )(command)
    command = click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        callback=_finite,
        default=30.0,
        show_default=True,
        help="Seconds one HTTP request may take (a call retries once within twice that).",
    )(command)
    return connection_options(command)


_LIBRARY_HINT: Final = "(RetryPolicy.timeout; --deadline on the command)"
_CALL_HINT: Final = "(--timeout, with one retry within twice it)"


def call_text(exc: Exception) -> str:
    """An error's text as a single call says it: its own options, not the library's or crawl's."""
    return printable(str(exc).replace(_LIBRARY_HINT, _CALL_HINT))


def _failure(exc: Exception, *, command: str, timeout: float) -> CallError:
    """The line and status for a call's failure (see the module's exit table)."""
    if isinstance(exc, NotFoundError) and command == "get":
        return CallError(f"not found: {call_text(exc)}", EXIT_NOT_FOUND)
    if isinstance(exc, AuthenticationError):
        return CallError(f"credentials refused ({call_text(exc)})", EXIT_USAGE)
    if isinstance(exc, TransportError):
        return CallError(
            f"{call_text(exc)}: is the endpoint right (--endpoint, VBS_ENDPOINT)? a slow one "
            f"needs a longer --timeout (now {timeout:g}s)",
            EXIT_USAGE,
        )
    if isinstance(exc, ProjectLookupError | ValueError):  # ConfigurationError is one
        return CallError(str(exc), EXIT_USAGE)
    return CallError(str(exc), EXIT_FAILED)


def _run(
    job: Callable[[VBSClient], Awaitable[int]],
    options: dict[str, Any],
    *,
    command: str,
    interrupted: Callable[[StopSignals], str],
) -> int:
    """Run one call's job with the configured client; map its failure to one line and a status."""
    timeout: float = options.pop("timeout")
    debug: bool = options.pop("debug")

    async def main() -> int:
        with StopSignals() as signals:
            try:
                client, _ = configured_client(
                    options, timeout=timeout, retry=RetryPolicy(attempts=2, timeout=2 * timeout)
                )
                async with client:
                    return await job(client)
            except asyncio.CancelledError:
                if signals.signal is None:
                    raise
                with contextlib.suppress(OSError):
                    click.echo(interrupted(signals), err=True)
                return signals.status

    try:
        with operator_logging("debug" if debug else "normal"):
            return asyncio.run(main())
    except (VBSError, ProjectLookupError, ValueError) as exc:
        if debug:
            raise
        raise _failure(exc, command=command, timeout=timeout) from None


def _nothing_changed(signals: StopSignals) -> str:
    return f"interrupted: {signals.name}; nothing was changed"


async def _ids(client: VBSClient, projects: list[str]) -> list[str]:
    """Project IDs for IDs or names (`eu-de_prod`, one IAM call for all)."""
    return await resolve_projects(client, projects, all_in_region=None, every=False)


def _check_ids(*named: tuple[str, str]) -> None:
    """Refuse any ID that is not a plain one, before anything is sent.

    Raises:
        click.UsageError: One is not.
    """
    for name, value in named:
        try:
            check_id(name, value)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None


def _confirm(question: str, *, yes: bool, nothing: str) -> None:
    """Ask `question` on the terminal; an answer other than yes (Ctrl-D too) changes nothing.

    Raises:
        CallError: Not confirmed (exit 1, with a line saying `nothing`).
        click.UsageError: No terminal to ask on, and no --yes.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{question} Nothing was done: confirm with --yes")
    try:
        confirmed = click.confirm(question, default=False, err=True)
    except click.Abort:  # Ctrl-D: no answer is not a yes (and not a signal)
        click.echo(err=True)
        confirmed = False
    if not confirmed:
        raise CallError(f"{nothing}: not confirmed", EXIT_FAILED)


@click.command(
    epilog="""\b
Examples:
  vbs-async count eu-de_prod
  vbs-async count 0123456789abcdef0123456789abcdef --share-to-me --status available

\b
Exit status: 0 printed, 1 the server refused the call (403, ...), 2 usage,
configuration, credentials or an endpoint that does not answer, 129/130/143
a signal, 141 the reader of stdout left."""
)
@click.argument("project")
@click.option(
    "--share-to-me/--shared-by-me", "share_to_me", default=None, help="Which side to count."
)
@call_options
@click.pass_context
def count(ctx: click.Context, /, project: str, **options: Any) -> None:
    """Print how many sharings PROJECT has (shared by it, or --share-to-me)."""
    filters = {"share_to_me": options.pop("share_to_me")}
    filters.update({name: options.pop(name) for name, _ in text_filters()})
    wanted = {k: v for k, v in filters.items() if v is not None}
    _check_ids(("PROJECT", project))

    async def job(client: VBSClient) -> int:
        (project_id,) = await _ids(client, [project])
        click.echo(await client.count_sharings(project_id, **wanted))
        return 0

    ctx.exit(_run(job, options, command="count", interrupted=_nothing_changed))


for _name, _text in reversed(text_filters()):
    count = click.option(f"--{_name.replace('_', '-')}", _name, help=_text)(count)


@click.command(
    epilog="""\b
Examples:
  vbs-async get eu-de_prod 6b0a2ad9-5b85-4cfd-8f3a-0c4e1e1b7a52

\b
Exit status: 0 printed, 1 the server refused the call (403, ...), 2 usage,
configuration, credentials or an endpoint that does not answer, 3 no such
sharing (404), 129/130/143 a signal, 141 the reader of stdout left."""
)
@click.argument("project")
@click.argument("sharing_id")
@call_options
@click.pass_context
def get(ctx: click.Context, /, project: str, sharing_id: str, **options: Any) -> None:
    """Print one sharing of PROJECT as a JSON line."""
    _check_ids(("PROJECT", project), ("SHARING_ID", sharing_id))

    async def job(client: VBSClient) -> int:
        (project_id,) = await _ids(client, [project])
        sharing = await client.get_sharing(project_id, sharing_id)
        stdout = stdout_for_rows()
        stdout.write(jsonl(project_id, [sharing]))
        stdout.flush()
        return 0

    ctx.exit(_run(job, options, command="get", interrupted=_nothing_changed))


@click.command(
    epilog="""\b
Examples:
  vbs-async share eu-de_prod BACKUP_ID eu-de_test --dry-run
  vbs-async share eu-de_prod BACKUP_ID 0123456789abcdef0123456789abcdef --yes

\b
Exit status: 0 shared (or, with --dry-run, all checks passed), 1 the server
refused (403, 409: already shared, ...), 2 usage, configuration,
credentials or an endpoint that does not answer, 129/130/143 a signal."""
)
@click.argument("project")
@click.argument("backup_id")
@click.argument("to_projects", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Check everything and say what would be shared.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@call_options
@click.pass_context
def share(
    ctx: click.Context,
    /,
    project: str,
    backup_id: str,
    to_projects: tuple[str, ...],
    **options: Any,
) -> None:
    """Share BACKUP_ID of PROJECT with TO_PROJECTS; print the new sharings as JSON lines."""
    dry_run, yes = options.pop("dry_run"), options.pop("yes")
    to_projects = tuple(dict.fromkeys(to_projects))  # `T T` is one project
    _check_ids(
        ("PROJECT", project),
        ("BACKUP_ID", backup_id),
        *(("TO_PROJECTS", t) for t in to_projects),
    )
    question = f"Share backup {backup_id} of {project} with {len(to_projects)} projects?"
    if not dry_run:
        _confirm(question, yes=yes, nothing="nothing shared")

    async def job(client: VBSClient) -> int:
        (project_id,) = await _ids(client, [project])
        targets = await _ids(client, list(to_projects))
        if project_id in targets:
            raise CallError(
                f"TO_PROJECTS names {project} itself: a backup is shared with other projects",
                EXIT_USAGE,
            )
        if dry_run:
            click.echo(
                f"dry run: would share backup {backup_id} of {project} with "
                f"{', '.join(to_projects)}",
                err=True,
            )
            return 0
        created = await client.share_backup(project_id, backup_id, targets)
        stdout = stdout_for_rows()
        stdout.write(jsonl(project_id, created))
        stdout.flush()
        return 0

    def interrupted(signals: StopSignals) -> str:
        if dry_run:
            return _nothing_changed(signals)
        return (
            f"interrupted: {signals.name} while sharing: unknown whether backup {backup_id} "
            f"was shared (see: vbs-async count {project} --backup-id {backup_id})"
        )

    ctx.exit(_run(job, options, command="share", interrupted=interrupted))


@attrs.frozen
class SharingRow:
    """One sharing to cancel.

    Attributes:
        owner: The project that shared it (an ID, or a name to look up).
        sharing_id: The sharing's ID.
        seen_there: Whether a crawl listed it under `owner` (a file's row whose
            `project_id` is its `from_project_id`): only then is a 404 proof
            that it is gone, not that `owner` is the wrong project.
    """

    owner: str
    sharing_id: str
    seen_there: bool = False


_FROM_FILE_LIMIT: Final = 256 * 1024 * 1024
"""The largest --from-file read (a crawl of some 200,000 sharings): /dev/zero is not a file."""


def read_sharing_rows(path: Path) -> list[SharingRow]:
    """The sharings of a crawl's JSONL or CSV, without repeats.

    Raises:
        click.UsageError: The file is not what a crawl writes, is too large,
            or holds no rows.
    """
    from_stdin = str(path) == "-"
    name = "stdin" if from_stdin else str(path)
    try:
        if from_stdin:
            data = sys.stdin.buffer.read(_FROM_FILE_LIMIT + 1)
        else:
            with path.open("rb") as stream:
                data = stream.read(_FROM_FILE_LIMIT + 1)
    except OSError as exc:
        raise click.UsageError(f"{name}: {exc.strerror}") from None
    if len(data) > _FROM_FILE_LIMIT:
        raise click.UsageError(
            f"{name} is larger than {_FROM_FILE_LIMIT // (1024 * 1024)} MiB: "
            "split it (a crawl's file per project or region)"
        )
    text = decode_text(data, name)
    if text.startswith("project_id,"):
        records: list[Any] = _csv_records(text)
    else:
        # Lines end at LF only: `str.splitlines` also cuts at U+2028, U+0085 and
        # others, which JSON leaves raw inside a backup's name.
        try:
            records = [orjson.loads(line) for line in text.split("\n") if line.strip()]
        except orjson.JSONDecodeError:
            raise click.UsageError(f"{name} is neither a crawl's JSONL nor its CSV") from None
    if not records:
        raise click.UsageError(f"no sharings in {name}: nothing to cancel")
    rows: dict[tuple[str, str], SharingRow] = {}
    for number, record in enumerate(records, start=1):
        try:
            owner, sharing_id = record["from_project_id"], record["id"]
            check_id("from_project_id", owner)
            check_id("id", sharing_id)
        except (KeyError, TypeError, ValueError):
            raise click.UsageError(
                f"{name}: row {number} has no valid from_project_id and id"
            ) from None
        seen_there = record.get("project_id") == owner
        earlier = rows.get((owner, sharing_id))
        rows[owner, sharing_id] = SharingRow(
            owner, sharing_id, seen_there or (earlier is not None and earlier.seen_there)
        )
    return list(rows.values())


def decode_text(data: bytes, name: str) -> str:
    """A file's text: UTF-8 (a byte order mark dropped) or UTF-16 with its mark, as Windows saves.

    Raises:
        click.UsageError: It is neither.
    """
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise click.UsageError(f"{name} is not UTF-8 text (byte {exc.start})") from None


def _csv_records(text: str) -> list[dict[str, str]]:
    """A crawl's CSV rows: fields as large as the file (a description may be long)."""
    before = csv.field_size_limit()
    csv.field_size_limit(max(before, _FROM_FILE_LIMIT))
    try:
        return list(csv.DictReader(io.StringIO(text, newline="")))
    finally:
        csv.field_size_limit(before)


@click.command(
    epilog="""\b
Examples:
  vbs-async cancel eu-de_prod SHARING_ID SHARING_ID --yes
  vbs-async crawl --all-projects -o old.jsonl --to-project-id GONE_PROJECT
  vbs-async cancel --from-file old.jsonl --dry-run

\b
Exit status: 0 every sharing cancelled or already gone (a 404 for a row a
crawl listed under its owner), 1 any failed or not found,
2 usage, configuration, credentials or an endpoint that does not answer,
129/130/143 a signal, 141 the reader of stdout left (the closing line on
stderr says what was done and what is unknown)."""
)
@click.argument("project", required=False)
@click.argument("sharing_ids", nargs=-1)
@click.option(
    "--from-file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Cancel every sharing of this JSONL or CSV (as the crawl writes them); - for stdin.",
)
@click.option("--dry-run", is_flag=True, help="Check everything and list what would be cancelled.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@call_options
@click.pass_context
def cancel(
    ctx: click.Context,
    /,
    project: str | None,
    sharing_ids: tuple[str, ...],
    **options: Any,
) -> None:
    """End sharings: SHARING_IDS of PROJECT, or every row of --from-file."""
    dry_run, yes, from_file = options.pop("dry_run"), options.pop("yes"), options.pop("from_file")
    targets = _cancel_targets(project, sharing_ids, from_file)
    owners = len({row.owner for row in targets})
    if not dry_run:
        _confirm(
            f"Cancel {len(targets)} sharings of {owners} projects?",
            yes=yes,
            nothing="nothing cancelled",
        )
    tally = _Cancelled(len(targets))
    timeout = options["timeout"]

    async def job(client: VBSClient) -> int:
        if from_file is None:  # PROJECT may be a name
            (project_id,) = await _ids(client, [targets[0].owner])
            resolved = [attrs.evolve(row, owner=project_id) for row in targets]
        else:
            resolved = await _known_owners(client, targets, from_file)
        if dry_run:
            for row in resolved:
                click.echo(f"would cancel {row.sharing_id} of {row.owner}")
            click.echo(f"dry run: {len(targets)} sharings of {owners} projects", err=True)
            return 0
        return await _cancel_all(client, resolved, tally, timeout=timeout)

    def interrupted(signals: StopSignals) -> str:
        if dry_run:
            return _nothing_changed(signals)
        return f"interrupted: {signals.name}; {tally.closing()}"

    ctx.exit(_run(job, options, command="cancel", interrupted=interrupted))


async def _known_owners(
    client: VBSClient, rows: list[SharingRow], from_file: Path
) -> list[SharingRow]:
    """The file's rows with every owner checked against IAM's list (names made IDs).

    Without an IAM endpoint (a token and an endpoint only), IDs cannot be
    checked and names cannot be looked up: names are refused, IDs kept (a
    404 then counts as gone only for a row the crawl listed under its owner).

    Raises:
        CallError: An owner IAM does not list for these credentials (nothing is sent).
    """
    name = "stdin" if str(from_file) == "-" else str(from_file)
    try:
        listed = await client.list_projects(include_disabled=True)
    except ConfigurationError:
        if any(is_project_name(row.owner) for row in rows):
            raise
        return rows
    by_key = {project.id: project.id for project in listed}
    by_key.update({project.name: project.id for project in listed})
    unknown = list(dict.fromkeys(row.owner for row in rows if row.owner not in by_key))
    if unknown:
        raise CallError(
            f"{name}: from_project_id {unknown[0]} is not a project IAM lists for these "
            f"credentials ({len(unknown)} such): nothing was cancelled",
            EXIT_USAGE,
        )
    return [attrs.evolve(row, owner=by_key[row.owner]) for row in rows]


def _cancel_targets(
    project: str | None, sharing_ids: tuple[str, ...], from_file: Path | None
) -> list[SharingRow]:
    """The sharings to cancel, from the arguments or the file, every ID checked."""
    if from_file is not None:
        if project is not None:
            raise click.UsageError("give sharing IDs or --from-file, not both")
        return read_sharing_rows(from_file)
    if project is None or not sharing_ids:
        raise click.UsageError("give PROJECT and SHARING_IDS, or --from-file")
    _check_ids(("PROJECT", project), *(("SHARING_IDS", s) for s in sharing_ids))
    return [SharingRow(project, s) for s in dict.fromkeys(sharing_ids)]


@attrs.define
class _Cancelled:
    """What a bulk cancel did so far: the closing line says it, and what is unknown."""

    total: int
    cancelled: int = 0
    gone: int = 0
    not_found: int = 0
    failed: int = 0
    in_flight: int = 0
    unknown: int = 0
    setup_error: VBSError | None = None

    @property
    def hopeless(self) -> bool:
        """Whether to send no more: the credentials or the endpoint failed before any success."""
        return self.setup_error is not None and not (self.cancelled or self.gone or self.not_found)

    def closing(self) -> str:
        line = f"cancelled {self.cancelled}, already gone {self.gone}"
        if self.not_found:
            line += f", not found {self.not_found}"
        line += f", failed {self.failed}"
        done = self.cancelled + self.gone + self.not_found + self.failed
        unknown = self.in_flight + self.unknown
        not_sent = self.total - done - unknown
        if unknown:
            line += (
                f"; {unknown} in flight (or unanswered): unknown whether cancelled "
                "(run again: one already gone counts as done)"
            )
        if not_sent:
            line += f"; {not_sent} not sent"
        return line


async def _cancel_all(
    client: VBSClient, targets: list[SharingRow], tally: _Cancelled, *, timeout: float
) -> int:
    queue = iter(targets)
    reader_left = False

    def say(line: str) -> None:
        nonlocal reader_left
        if reader_left or not line:
            return
        try:
            click.echo(line)
        except BrokenPipeError:
            reader_left = True  # `| head -3`: send nothing more

    async def worker() -> None:
        for row in queue:
            if reader_left or tally.hopeless:
                return
            say(await _cancel_one(client, row, tally))

    await asyncio.gather(*(worker() for _ in range(min(_AT_ONCE, len(targets)))))
    if tally.hopeless:
        # Nothing got through, and the reason is the same for every sharing:
        # what is unknown first, then the one line that names the settings.
        assert tally.setup_error is not None  # noqa: S101 - hopeless says so
        click.echo(tally.closing(), err=True)
        raise _failure(tally.setup_error, command="cancel", timeout=timeout)
    if reader_left:
        stdout_gone()
        click.echo(f"stopped: the reader of stdout left; {tally.closing()}", err=True)
        return EXIT_BROKEN_PIPE
    click.echo(tally.closing(), err=True)
    return EXIT_FAILED if tally.failed or tally.not_found or tally.unknown else 0


async def _cancel_one(client: VBSClient, row: SharingRow, tally: _Cancelled) -> str:
    """Cancel one sharing, count the outcome; the line for stdout ("" when it failed)."""
    owner, sharing_id = row.owner, row.sharing_id
    tally.in_flight += 1  # stays counted if a signal cancels the call: its outcome is unknown
    try:
        await client.cancel_sharing(owner, sharing_id)
    except NotFoundError:
        tally.in_flight -= 1
        if row.seen_there:
            tally.gone += 1  # a crawl listed it there: already cancelled, what a clean-up wants
            return f"already gone {sharing_id} of {owner}"
        # No evidence it was ever there: the wrong project gives a 404 too.
        tally.not_found += 1
        click.echo(
            f"not found {sharing_id} of {owner}: nothing cancelled (is {owner} the project "
            "that shared it?)",
            err=True,
        )
        return ""
    except VBSError as exc:
        tally.in_flight -= 1
        unanswered = isinstance(exc, TransportError) and exc.request_sent
        if unanswered:
            tally.unknown += 1  # sent, never answered: it may have been cancelled
        else:
            tally.failed += 1
        setup = isinstance(exc, TransportError) or (
            isinstance(exc, AuthenticationError) and exc.credentials_refused is not False
        )
        if setup and tally.setup_error is None:
            tally.setup_error = exc
        if not tally.hopeless:  # else the closing error line says it once
            verdict = "unknown" if unanswered else "failed"
            click.echo(f"{verdict} {sharing_id} of {owner}: {call_text(exc)}", err=True)
        return ""
    tally.in_flight -= 1
    tally.cancelled += 1
    return f"cancelled {sharing_id} of {owner}"


def stdout_gone() -> None:
    """Point stdout at /dev/null, so that Python's last flush does not complain."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
