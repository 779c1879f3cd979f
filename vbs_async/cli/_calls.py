"""The other calls as subcommands: `count`, `get`, `share` and `cancel`.

PROJECT may be an ID or a name (`eu-de_prod`). `share` and `cancel` change
the cloud: both take `--dry-run` (say what would
be done, send nothing) and ask for confirmation unless `--yes` (refusing
when there is no terminal to ask on). `cancel` takes sharing IDs, or the
JSONL or CSV a crawl wrote (`--from-file`): each row is cancelled by the
project that shared it (`from_project_id`), for bulk clean-ups.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click
import orjson

from vbs_async._errors import VBSError
from vbs_async._requests import text_filters
from vbs_async._validation import check_id

from ._connect import configured_client, connection_options
from ._projects import ProjectLookupError, resolve_projects
from ._rows import jsonl

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from vbs_async._client import VBSClient

_AT_ONCE: Final = 32
"""Cancellations in flight at once (the client's limiter and learned rate still apply)."""


def _run(job: Callable[[VBSClient], Awaitable[int]], options: dict[str, Any]) -> int:
    async def main() -> int:
        client, _ = configured_client(options)
        async with client:
            return await job(client)

    try:
        return asyncio.run(main())
    except (VBSError, ProjectLookupError) as exc:
        raise click.ClickException(str(exc)) from None


async def _ids(client: VBSClient, projects: list[str]) -> list[str]:
    """Project IDs for IDs or names (`eu-de_prod`, one IAM call for all)."""
    return await resolve_projects(client, projects, all_in_region=None, every=False)


def _confirm(question: str, *, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{question} Nothing was done: confirm with --yes")
    if not click.confirm(question, default=False, err=True):
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("project")
@click.option(
    "--share-to-me/--shared-by-me", "share_to_me", default=None, help="Which side to count."
)
@connection_options
@click.pass_context
def count(ctx: click.Context, /, project: str, **options: Any) -> None:
    """Print how many sharings PROJECT has (shared by it, or --share-to-me)."""
    filters = {"share_to_me": options.pop("share_to_me")}
    filters.update({name: options.pop(name) for name, _ in text_filters()})
    wanted = {k: v for k, v in filters.items() if v is not None}

    async def job(client: VBSClient) -> int:
        (project_id,) = await _ids(client, [project])
        click.echo(await client.count_sharings(project_id, **wanted))
        return 0

    ctx.exit(_run(job, options))


for _name, _text in reversed(text_filters()):
    count = click.option(f"--{_name.replace('_', '-')}", _name, help=_text)(count)


@click.command()
@click.argument("project")
@click.argument("sharing_id")
@connection_options
@click.pass_context
def get(ctx: click.Context, /, project: str, sharing_id: str, **options: Any) -> None:
    """Print one sharing of PROJECT as a JSON line."""

    async def job(client: VBSClient) -> int:
        (project_id,) = await _ids(client, [project])
        sharing = await client.get_sharing(project_id, sharing_id)
        sys.stdout.buffer.write(jsonl(project_id, [sharing]))
        return 0

    ctx.exit(_run(job, options))


@click.command()
@click.argument("project")
@click.argument("backup_id")
@click.argument("to_projects", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Say what would be shared; send nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@connection_options
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
    for value, name in (
        (project, "PROJECT"),
        (backup_id, "BACKUP_ID"),
        *((t, "TO_PROJECTS") for t in to_projects),
    ):
        try:
            check_id(name, value)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    question = f"Share backup {backup_id} of {project} with {len(to_projects)} projects?"
    if dry_run:
        click.echo(f"dry run: would share backup {backup_id} of {project} with "
                   f"{', '.join(to_projects)}", err=True)  # fmt: skip
        ctx.exit(0)
    _confirm(question, yes=yes)

    async def job(client: VBSClient) -> int:
        project_id, *targets = await _ids(client, [project, *to_projects])
        created = await client.share_backup(project_id, backup_id, targets)
        sys.stdout.buffer.write(jsonl(project_id, created))
        return 0

    ctx.exit(_run(job, options))


def read_sharing_rows(path: Path) -> list[tuple[str, str]]:
    """(owning project, sharing ID) of each row of a crawl's JSONL or CSV, without repeats.

    Raises:
        click.UsageError: The file is not what a crawl writes.
    """
    text = path.read_text(encoding="utf-8-sig")
    pairs: list[tuple[str, str]] = []
    if text.startswith("project_id,"):
        records: list[Any] = list(csv.DictReader(io.StringIO(text)))
    else:
        try:
            records = [orjson.loads(line) for line in text.splitlines() if line.strip()]
        except orjson.JSONDecodeError:
            raise click.UsageError(f"{path} is neither a crawl's JSONL nor its CSV") from None
    for number, record in enumerate(records, start=1):
        try:
            owner, sharing_id = record["from_project_id"], record["id"]
            check_id("from_project_id", owner)
            check_id("id", sharing_id)
        except (KeyError, TypeError, ValueError):
            raise click.UsageError(
                f"{path}: row {number} has no valid from_project_id and id"
            ) from None
        pairs.append((owner, sharing_id))
    return list(dict.fromkeys(pairs))


@click.command()
@click.argument("project", required=False)
@click.argument("sharing_ids", nargs=-1)
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Cancel every sharing of this JSONL or CSV (as the crawl writes them).",
)
@click.option("--dry-run", is_flag=True, help="List what would be cancelled; send nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@connection_options
@click.pass_context
def cancel(
    ctx: click.Context,
    /,
    project: str | None,
    sharing_ids: tuple[str, ...],
    **options: Any,
) -> None:
    """End sharings: SHARING_IDS of PROJECT, or every row of --from-file.

    Exit status: 0 if every sharing was cancelled (or was already gone), 1 if
    any failed, 2 for a usage error.
    """
    dry_run, yes, from_file = options.pop("dry_run"), options.pop("yes"), options.pop("from_file")
    if from_file is not None:
        if project is not None:
            raise click.UsageError("give sharing IDs or --from-file, not both")
        targets = read_sharing_rows(from_file)
    else:
        if project is None or not sharing_ids:
            raise click.UsageError("give PROJECT and SHARING_IDS, or --from-file")
        targets = list(dict.fromkeys((project, s) for s in sharing_ids))
    owners = len({owner for owner, _ in targets})
    if dry_run:
        for owner, sharing_id in targets:
            click.echo(f"would cancel {sharing_id} of {owner}")
        click.echo(f"dry run: {len(targets)} sharings of {owners} projects", err=True)
        ctx.exit(0)
    _confirm(f"Cancel {len(targets)} sharings of {owners} projects?", yes=yes)

    async def job(client: VBSClient) -> int:
        if from_file is None:  # PROJECT may be a name
            (project_id,) = await _ids(client, [targets[0][0]])
            return await _cancel_all(client, [(project_id, s) for _, s in targets])
        return await _cancel_all(client, targets)

    ctx.exit(_run(job, options))


async def _cancel_all(client: VBSClient, targets: list[tuple[str, str]]) -> int:
    failed = 0
    queue = iter(targets)

    async def worker() -> None:
        nonlocal failed
        for owner, sharing_id in queue:
            try:
                await client.cancel_sharing(owner, sharing_id)
            except VBSError as exc:
                failed += 1
                click.echo(f"failed {sharing_id} of {owner}: {exc}", err=True)
            else:
                click.echo(f"cancelled {sharing_id} of {owner}")

    await asyncio.gather(*(worker() for _ in range(min(_AT_ONCE, len(targets)))))
    click.echo(f"cancelled {len(targets) - failed}, failed {failed}", err=True)
    return 1 if failed else 0
