"""The `vbs-async` command line: `crawl`, `emulator`, and the single calls of `_calls`."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import io
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import click

from vbs_async._auth import TokenAuth
from vbs_async._client import VBSClient
from vbs_async._errors import VBSError
from vbs_async._requests import text_filters
from vbs_async._retry import RetryPolicy
from vbs_async._validation import END_CHECKS, SORT_DIRECTIONS, SORT_KEYS, check_id
from vbs_async.inventory import InventoryError

from ._audit import audit_command
from ._calls import EXIT_BROKEN_PIPE, CallError, cancel, count, get, share, stdout_gone
from ._connect import configured_client, connection_options, tls_setting
from ._diff import diff_command
from ._failures import CrawlStoppedError
from ._files import PathError, is_stdout, read_target
from ._inventory import InventorySpec
from ._logging import Verbosity, operator_logging
from ._projects import ProjectLookupError, Resolved, resolve_for_crawl
from ._run import EXIT_USAGE, CrawlJob, check_paths, run_crawl
from ._signals import StopSignals
from ._state import StateError
from ._text import printable

if TYPE_CHECKING:
    from collections.abc import Iterable

    from vbs_async._models import Project


class CommandError(click.ClickException):
    """A mistake in how the command was called or set up: one line, exit status 2."""

    exit_code = EXIT_USAGE


class _Cli(click.Group):
    """Errors become one line on stderr (a traceback only with --debug), with the table's status."""

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        # The command line as typed, for the hint that says how to resume.
        arguments = sys.argv[1:] if args is None else list(args)
        self.invoked = (prog_name or "vbs-async", *arguments)
        _stdout_even_closed()
        try:
            status = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            _flush_stdout()
        except click.ClickException as exc:
            status = _error(exc.format_message(), EXIT_USAGE)
        except CallError as exc:
            status = _error(str(exc), exc.status)
        except click.exceptions.Abort:
            status = 130
        except BrokenPipeError:
            stdout_gone()  # the reader left (`| head`): quietly, as SIGPIPE would
            status = EXIT_BROKEN_PIPE
        except OSError as exc:
            # Writing stdout failed (`> /dev/full`, a full disk): say so in one line.
            stdout_gone()
            if "--debug" in arguments:
                raise
            status = _error(f"cannot write: {exc.strerror or exc}", EXIT_USAGE)
        except Exception as exc:
            if "--debug" in arguments:
                raise
            status = _error(
                f"unexpected {type(exc).__name__}: {exc} (--debug shows where)", EXIT_USAGE
            )
        status = status if isinstance(status, int) else 0
        if standalone_mode:
            sys.exit(status)
        return status


_CLOSED: Final = "stdout is closed (>&-): give --output FILE, or redirect it"


class _ClosedBinaryStdout(io.BufferedIOBase):
    """A closed stdout's bytes: any write is an OSError that says so."""

    def writable(self) -> bool:
        """Yes: writing is how the operator learns it is closed."""
        return True

    def write(self, data: Any) -> int:
        """Refuse, naming what to do."""
        del data
        raise OSError(errno.EBADF, _CLOSED)

    def fileno(self) -> int:
        """There is none."""
        raise OSError(errno.EBADF, _CLOSED)


class _ClosedStdout(io.TextIOBase):
    """Stdout when the command started with it closed: one line if anything is written to it.

    Python leaves `sys.stdout` None then, and every print became an
    AttributeError; a command that writes to files only runs as it should.
    """

    def __init__(self) -> None:
        super().__init__()
        self.buffer = _ClosedBinaryStdout()

    def writable(self) -> bool:
        """Yes: writing is how the operator learns it is closed."""
        return True

    def write(self, text: str) -> int:
        """Refuse, naming what to do."""
        del text
        raise OSError(errno.EBADF, _CLOSED)

    def fileno(self) -> int:
        """There is none."""
        raise OSError(errno.EBADF, _CLOSED)


def _stdout_even_closed() -> None:
    """Started with stdout closed (`>&-`): Python leaves it None, say so when it is written."""
    if sys.stdout is None:
        sys.stdout = _ClosedStdout()


def _error(message: str, status: int) -> int:
    with contextlib.suppress(OSError):
        click.echo(f"vbs-async: error: {printable(message)}", err=True)
    return status


def _flush_stdout() -> None:
    """Flush stdout now, so a write that fails is reported, not lost at exit."""
    sys.stdout.flush()


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vbs-async")
def cli() -> None:
    """Inventory Open Telekom Cloud VBS backup sharings across many projects."""


_PROJECTS_FILE_LIMIT: Final = 64 * 1024 * 1024
"""The largest --projects-file read: some 2,000,000 project IDs."""


def _read_project_ids(arguments: Iterable[str], projects_file: IO[bytes] | None) -> list[str]:
    """IDs from the arguments, then the file (`#` comments and blank lines skipped), no repeats."""
    ids = list(arguments)
    if projects_file is not None:
        data = projects_file.read(_PROJECTS_FILE_LIMIT + 1)
        name = getattr(projects_file, "name", "-")
        if len(data) > _PROJECTS_FILE_LIMIT:  # /dev/zero is not a list of projects
            raise CommandError(
                f"{name} is larger than {_PROJECTS_FILE_LIMIT // (1024 * 1024)} MiB: "
                "not a list of projects"
            )
        # Windows tools write byte order marks: UTF-16 (PowerShell's `>` before
        # version 6) is known by its mark; UTF-8's (Notepad) is dropped.
        encoding = (
            "utf-16" if data[:2] in {codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE} else "utf-8-sig"
        )
        try:
            lines = data.decode(encoding).splitlines()
        except UnicodeDecodeError as exc:
            raise CommandError(
                f"{name} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
            ) from None
        found = [text for line in lines if (text := line.split("#", 1)[0].strip())]
        if not found:
            # Never fall back to the configured project: an empty list is
            # usually a step before that failed (and `cancel --from-file`
            # fed from the crawl would then cancel the wrong project's rows).
            where = "stdin" if name in {"<stdin>", "-"} or not isinstance(name, str) else name
            raise CommandError(f"no projects in {where}")
        ids.extend(found)
    for project_id in ids:
        try:
            check_id("project ID", project_id)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    return list(dict.fromkeys(ids))


def _filter_options(command: Any) -> Any:
    """One option per text filter of `SharingFilters`: `--volume-id` for `volume_id`."""
    for name, text in reversed(text_filters()):
        command = click.option(f"--{name.replace('_', '-')}", name, help=text)(command)
    return command


@cli.command(
    epilog="""\b
Examples:
  vbs-async crawl --all-projects -o sharings.jsonl --resume crawl.state
  vbs-async crawl eu-de_prod eu-de_test --format csv -o sharings.csv --report -

\b
Exit status: 0 every project succeeded, 1 some failed, 2 a usage or
configuration error or a crawl stopped early (credentials refused, an
endpoint that does not answer, --max-failures), 129/130/143 stopped by
SIGHUP/Ctrl-C/SIGTERM (with the summary so far), 141 the reader of stdout
left (`| head`)."""
)
@click.argument("project_ids", nargs=-1)
@click.option(
    "--projects-file",
    # A path, opened here: a click.File opened while parsing leaks when a
    # later option is refused.
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    help="Project IDs or names, one per line (# comments, blank lines ignored); - for stdin.",
)
@click.option(
    "--share-to-me/--shared-by-me",
    "share_to_me",
    default=None,
    help="Backups shared with each project, or by it (the default: by it).",
)
@_filter_options
@click.option("--sort-key", type=click.Choice(sorted(SORT_KEYS)), help="Order of each listing.")
@click.option("--sort-dir", type=click.Choice(sorted(SORT_DIRECTIONS)), help="asc or desc.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write rows here (- for stdout; a FIFO or device is written as `>` would).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="HTTP requests in flight at most.",
)
@click.option(
    "--max-projects",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Projects listed at once.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    help="Request starts per second at most.",
)
@click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="The limit sent per request.",
)
@click.option(
    "--end-check",
    type=click.Choice(sorted(END_CHECKS)),
    default="auto",
    show_default=True,
    help="How the end of a listing is recognised.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="List each project again after its end until a pass brings nothing new "
    "(catches sharings that moved while listed; about twice the requests).",
)
@click.option(
    "--attempts",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Tries per request, the first included.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds one HTTP request may take.",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds one call may take with its retries and throttled waits.",
)
@click.option(
    "--all-projects",
    is_flag=True,
    help="Crawl every enabled project IAM lists for the credentials in --region (MOS skipped).",
)
@connection_options
@click.option("--emulator", is_flag=True, help="Crawl the embedded emulator's synthetic data.")
@click.option(
    "--emulator-projects",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Projects the emulator makes up.",
)
@click.option(
    "--emulator-sharings",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Sharings per emulator project.",
)
@click.option(
    "--resume",
    "state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="State file: a crawl run again with it repeats no finished project.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write what the crawl did as JSON (- for stdout): per project ok/failed/skipped/gone.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also record the run in this SQLite inventory (for audit and diff).",
)
@click.option(
    "--account",
    help="With --db: the account (domain) the projects belong to, as audit and diff name it.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=1),
    help="Stop the crawl (exit 2) once this many projects have failed.",
)
@click.option(
    "--progress-interval",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds between progress lines when stderr is not a terminal.",
)
@click.option(
    "--quiet", "-q", "verbosity", flag_value="quiet", help="Errors only: no progress, no summary."
)
@click.option(
    "--verbose",
    "-v",
    "verbosity",
    flag_value="verbose",
    help="Also one line per retry and per throttled request (project, status, wait).",
)
@click.option(
    "--debug",
    "verbosity",
    flag_value="debug",
    help="Log every request with timestamps, and show tracebacks.",
)
@click.pass_context
def crawl(ctx: click.Context, /, project_ids: tuple[str, ...], **options: Any) -> None:
    """Crawl projects' backup sharings into JSON Lines or CSV.

    PROJECT_IDS and --projects-file name the projects, by ID or by name
    (eu-de_prod); --all-projects crawls every enabled project of the region;
    with none of them, the configured project (project_name / project_id,
    delegated_project), or with --emulator every emulator project.
    """
    verbosity: Verbosity = options.pop("verbosity") or "normal"
    debug = verbosity == "debug"
    options["quiet"] = verbosity == "quiet"
    root = ctx.find_root().command
    options["command"] = getattr(root, "invoked", ("vbs-async", "crawl"))
    projects_file = options.pop("projects_file")
    if is_stdout(options["output"]):
        options["output"] = None  # `-o -` is stdout
    if options["state"] is not None and options["output"] is None:
        raise CommandError("--resume needs --output: stdout cannot be resumed")
    with contextlib.ExitStack() as files:
        stream: IO[bytes] | None = None
        if projects_file is not None:
            path: Path = projects_file
            stream = sys.stdin.buffer if str(path) == "-" else files.enter_context(path.open("rb"))
        try:
            check_paths(
                options["output"],
                options["state"],
                options["report"],
                read_target("--projects-file", stream),
            )
        except (PathError, StateError) as exc:
            raise CommandError(str(exc)) from None
        ids = _read_project_ids(project_ids, stream)
    if ids and options["all_projects"]:
        raise CommandError("name projects or use --all-projects, not both")
    try:
        with operator_logging(verbosity):
            status = asyncio.run(_crawl(ids, options))
    except (CommandError, click.ClickException):
        raise
    except BrokenPipeError:
        # The reader left (`| head -1`): stop quietly, as a shell tool killed by
        # SIGPIPE would, and keep Python from complaining when it flushes stdout.
        stdout_gone()
        status = EXIT_BROKEN_PIPE
    except Exception as exc:
        if debug:
            raise
        raise CommandError(str(exc) or type(exc).__name__) from None
    ctx.exit(status)


async def _crawl(ids: list[str], options: dict[str, Any]) -> int:
    with StopSignals() as signals:
        try:
            return await _crawl_with(ids, options, signals)
        except asyncio.CancelledError:
            if signals.signal is None:
                raise
            # Before the crawl proper: looking projects up, or opening files.
            with contextlib.suppress(OSError):
                sys.stderr.write(
                    f"interrupted: {signals.name} before any project was crawled; "
                    "nothing was written\n"
                )
            return signals.status


async def _crawl_with(ids: list[str], options: dict[str, Any], signals: StopSignals) -> int:
    listing = {
        key: options.pop(key)
        for key in ["share_to_me", "sort_key", "sort_dir", "page_size", "end_check", "verify"]
        + [name for name, _ in text_filters()]
        if options[key] is not None
    }
    async with contextlib.AsyncExitStack() as stack:
        settings: dict[str, Any] = {
            "max_concurrency": options["concurrency"],
            "rate_limit": options["rate_limit"],
            "retry": RetryPolicy(attempts=options["attempts"], timeout=options["deadline"]),
            "timeout": options["timeout"],
        }
        client, resolved = await _client(stack, ids, options, settings)
        account_projects: tuple[Any, ...] = ()
        if options["all_projects"] and (options["db"] is not None or options["report"]):
            # Every project of the account (other regions, disabled ones, its
            # MOS project): what audit calls internal, from the database or
            # from the report.
            account_projects = tuple(
                await client.list_projects(include_disabled=True, include_mos=True)
            )
        detected: tuple[str | None, frozenset[str]] = (None, frozenset())
        if options["db"] is not None and options["account"] is None:
            detected = await _account_of(client, resolved.ids, account_projects)
        job = CrawlJob(
            project_ids=resolved.ids,
            unavailable=resolved.unavailable,
            every_project_of=(client.region or "every region") if options["all_projects"] else None,
            timeout=options["timeout"],
            output=options["output"],
            output_format=options["output_format"],
            state=options["state"],
            max_projects=options["max_projects"],
            listing=listing,
            progress_interval=options["progress_interval"],
            quiet=options["quiet"],
            report=options["report"],
            max_failures=options["max_failures"],
            command=options["command"],
            endpoint=client.endpoint or f"of VBS in {client.region or 'the catalog'}",
            inventory=_inventory_spec(client, options, account_projects, detected),
            account_projects=account_projects,
        )
        try:
            return await run_crawl(client, job, sys.stderr, signals)
        except (StateError, PathError, CrawlStoppedError, InventoryError) as exc:
            raise CommandError(str(exc)) from None
        except (OSError, ValueError) as exc:
            if isinstance(exc, VBSError | BrokenPipeError):
                raise
            raise CommandError(str(exc)) from None


async def _account_of(
    client: VBSClient, project_ids: list[str], listed: tuple[Project, ...]
) -> tuple[str | None, frozenset[str]]:
    """The account (domain ID) IAM lists the job's projects in, if they share one; those projects.

    Best effort, for a `--db` run without `--account`: one request to IAM
    (none with `--all-projects`, which lists them already); IAM refusing
    leaves the run's account unknown. A project IAM does not list is not
    given the account (its own stays unknown): a sharing to it is then not
    internal to the account.
    """
    if not listed:
        try:
            listed = tuple(await client.list_projects(include_disabled=True))
        except VBSError:
            return None, frozenset()
    wanted = set(project_ids)
    domains = {project.domain_id for project in listed if project.id in wanted}
    if len(domains) != 1:
        return None, frozenset()
    return domains.pop(), frozenset(project.id for project in listed if project.id in wanted)


def _inventory_spec(
    client: VBSClient,
    options: dict[str, Any],
    known: tuple[Any, ...],
    detected: tuple[str | None, frozenset[str]] = (None, frozenset()),
) -> InventorySpec | None:
    """Where `--db` records the run; with --all-projects, every project of the account."""
    if options["db"] is None:
        if options["account"] is not None:
            raise CommandError("--account names the account of a --db run: give --db too")
        return None
    return InventorySpec(
        options["db"],
        account=options["account"],
        detected_account=detected[0],
        detected_projects=detected[1],
        region=client.region,
        known_projects=known,
        whole_account=options["all_projects"],
    )


async def _client(
    stack: contextlib.AsyncExitStack,
    ids: list[str],
    options: dict[str, Any],
    settings: dict[str, Any],
) -> tuple[VBSClient, Resolved]:
    """The run's client (the configured cloud's, or an emulator's) and its projects."""
    region = options["region"]
    if options["emulator"]:
        from vbs_async.testing import Emulator  # noqa: PLC0415 - aiohttp's server, when used

        emulator = await stack.enter_async_context(
            Emulator(
                projects=options["emulator_projects"],
                sharings_per_project=options["emulator_sharings"],
            )
        )
        if not ids and not options["all_projects"]:
            ids = emulator.project_ids
        client = VBSClient(
            emulator.url,
            auth=TokenAuth(emulator.token),
            iam_endpoint=emulator.url,
            region=region or emulator.region,
            **settings,
            **tls_setting(options),
        )
    else:
        client, configured = configured_client(options, **settings)
        if not ids and not options["all_projects"]:
            if configured.project is None:
                raise CommandError(
                    "name projects as arguments or with --projects-file, use --all-projects, "
                    "or configure a project (OS_PROJECT_NAME, project_name in clouds.yaml)"
                )
            ids = [configured.project]
    await stack.enter_async_context(client)
    try:
        resolved = await resolve_for_crawl(
            client, ids, region=client.region, every=options["all_projects"]
        )
    except ProjectLookupError as exc:
        raise CommandError(str(exc)) from None
    return client, resolved


def _parse_quota(value: str | None) -> str | None:
    """A gateway model's text (`RATE[:BURST]`, `window:100/5`, ...), checked here."""
    if value is None:
        return None
    from vbs_async.testing import parse_gateway  # noqa: PLC0415 - the emulator's, when used

    try:
        parse_gateway(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--quota") from None
    return value


@cli.command(
    epilog="""\b
Examples:
  vbs-async emulator --port 8080 --projects 20 --ids-file ids.txt
  vbs-async emulator --port 0 --quota 50:10 --fault-rate 0.05

\b
Exit status: 0 stopped with Ctrl-C, 2 a usage error or a port that is
taken."""
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8080,
    show_default=True,
    help="Port (0 picks a free one).",
)
@click.option("--projects", type=click.IntRange(min=0), default=10, show_default=True)
@click.option(
    "--sharings",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Sharings per project.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic data.")
@click.option(
    "--token", default="emulator-token", show_default=True, help="The X-Auth-Token to accept."
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests that fail.",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds added to each request.",
)
@click.option(
    "--ids-file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the project IDs here, one per line (for crawl --projects-file).",
)
@click.option(
    "--quota",
    callback=lambda _, __, value: _parse_quota(value),
    metavar="MODEL",
    help="A gateway model: RATE[:BURST] (a token bucket), window:LIMIT/SECONDS, "
    "sliding:LIMIT/SECONDS, inflight:LIMIT, random:SHARE, penalty:SECONDS+MODEL, A&B, "
    "0=A;5=B; options "
    ",announce=on|off ,retry-after=none|zero|past|now|huge|garbage|SECONDS "
    "(README: Throttling).",
)
def emulator(**options: Any) -> None:
    """Serve the VBS sharing API on this machine, for tests and demos, until Ctrl-C."""
    from vbs_async.testing import Emulator  # noqa: PLC0415 - aiohttp's server, when used
    from vbs_async.testing._serve import IdsFileError, serve  # noqa: PLC0415

    emu = Emulator(
        token=options["token"],
        quota=options["quota"],
        projects=options["projects"],
        sharings_per_project=options["sharings"],
        seed=options["seed"],
        host=options["host"],
        port=options["port"],
        fault_rate=options["fault_rate"],
        latency=options["latency"],
    )
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(serve(emu, sys.stdout, ids_file=options["ids_file"]))
        except IdsFileError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            # asyncio's text repeats the address; the reason is its last part.
            reason = str(exc.strerror or exc).rsplit(": ", 1)[-1]
            raise CommandError(
                f"cannot serve on {options['host']}:{options['port']}: {reason}"
            ) from None


for _call in (count, get, share, cancel):
    cli.add_command(_call)

cli.add_command(audit_command)
cli.add_command(diff_command)
