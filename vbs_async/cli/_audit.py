"""`vbs-async audit`: who can restore our backups, as findings with a severity and a remedy.

The findings come from an inventory (`--db FILE`, the latest finished run
unless `--run N`) or from a crawl's output file with its `--report`, read
into a temporary inventory. Exit status: 0, 1 when some projects were
never listed (their sharings are unknown), 2 usage, 3 when a finding is at
or above `--fail-on` (before 1).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from vbs_async.inventory import (
    Inventory,
    InventoryError,
    Run,
    Severity,
    audit,
    load_crawl_output,
    read_trusted,
)
from vbs_async.inventory._classify import is_project_id, normalised

from ._calls import EXIT_BROKEN_PIPE, stdout_gone
from ._findings import (
    FINDING_COLUMNS,
    Writer,
    escape,
    finding_row,
    ocsf_event,
    product_version,
    rows_stdout,
)
from ._progress import MAX_FAILURE_LINES
from ._run import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

EXIT_FINDINGS: Final = 3
"""Findings at or above the threshold (`--fail-on`, `--fail-on-new`)."""
SEVERITIES: Final = [s.label for s in Severity]
_TABLE: Final = [
    "severity", "class", "backup_name", "backup_size", "backup_status", "from_project_id",
    "to_project_id", "sharing_id", "first_seen_at",
]  # fmt: skip


class AuditUsageError(click.ClickException):
    """A mistake in how audit or diff was called: one line, exit status 2."""

    exit_code = EXIT_USAGE


def severity_option(value: str | None) -> Severity | None:
    """A severity given on the command line."""
    return None if value is None else Severity.parse(value)


def trusted_ids(path: Path | None) -> frozenset[str]:
    """The trusted list of `--trusted FILE`."""
    if path is None:
        return frozenset()
    try:
        return read_trusted(path)
    except (OSError, ValueError) as exc:
        raise AuditUsageError(f"--trusted: {getattr(exc, 'strerror', None) or exc}") from None


@contextlib.contextmanager
def opened_inventory(
    db: Path | None, outputs: tuple[Path, ...], reports: tuple[Path, ...], *, account: str | None
) -> Iterator[Inventory]:
    """The inventory to read: `--db`, or the crawl outputs with their reports, loaded in order."""
    if db is not None and outputs:
        raise AuditUsageError("give --db or crawl output files with --report, not both")
    if db is not None:
        with Inventory(db) as inventory:
            yield inventory
        return
    if not outputs:
        raise AuditUsageError("give --db FILE, or a crawl's output file with --report FILE")
    if len(reports) != len(outputs):
        raise AuditUsageError(
            f"each crawl output needs its --report ({len(outputs)} outputs, {len(reports)} reports)"
        )
    with (
        tempfile.TemporaryDirectory(prefix="vbs-async-") as folder,
        Inventory(Path(folder) / "inventory.sqlite", write=True) as inventory,
    ):
        for output, report in zip(outputs, reports, strict=True):
            load_crawl_output(inventory, output, report, account=account)
        yield inventory


_FORMATS: Final = ["table", "jsonl", "csv", "ocsf"]


def source_options(formats: list[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options audit and diff share: where the sharings come from, what is trusted, format."""

    def add(command: Any) -> Any:
        options = [
            click.argument("outputs", nargs=-1, type=click.Path(dir_okay=False, path_type=Path)),
            click.option(
                "--db", type=click.Path(dir_okay=False, path_type=Path), help="The inventory."
            ),
            click.option(
                "--report",
                "reports",
                multiple=True,
                type=click.Path(dir_okay=False, path_type=Path),
                help="Each OUTPUT file's crawl --report, in the same order.",
            ),
            click.option(
                "--trusted",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Trusted project or account IDs, one per line (# comments).",
            ),
            click.option(
                "--account",
                help="For OUTPUT files: the account their projects belong to; "
                "with --db: that account's runs only.",
            ),
            click.option(
                "--format",
                "output_format",
                type=click.Choice(formats),
                help=f"{', '.join(formats)}: table by default on a terminal, else jsonl.",
            ),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return add


@click.command(name="audit")
@source_options(_FORMATS)
@click.option("--run", "run_id", type=click.IntRange(min=1), help="The run to audit.")
@click.option(
    "--min-severity",
    type=click.Choice(SEVERITIES),
    default="low",
    show_default=True,
    help="Leave out findings below this (info shows internal sharings too).",
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    help="Exit 3 when a finding is at or above this severity.",
)
def audit_command(outputs: tuple[Path, ...], reports: tuple[Path, ...], **options: Any) -> None:
    """Print the findings: backups restorable outside the account, by severity.

    Each sharing is internal (info), trusted (low), cross-account (medium) or
    external (high). Findings come from the latest finished run of --db (or
    --run N); a project that failed there contributes its last listed state,
    marked stale.

    Exit status: 0, 1 if some projects were never listed (their sharings are
    unknown), 2 for a usage error, 3 if a finding is at or above --fail-on.
    """
    if len(outputs) > 1:
        raise AuditUsageError("audit reads one crawl output file")
    if outputs and options["run_id"] is not None:
        raise AuditUsageError("--run names a run of --db, not of a crawl output file")
    trusted = trusted_ids(options["trusted"])
    fail_on = severity_option(options["fail_on"])
    output_format = options["output_format"] or ("table" if sys.stdout.isatty() else "jsonl")
    with (
        command_errors(),
        opened_inventory(options["db"], outputs, reports, account=options["account"]) as inv,
    ):
        warn_unmatched(inv, trusted)
        status = _audit(inv, trusted, output_format, fail_on, options)
    click.get_current_context().exit(status)


def warn_unmatched(inventory: Inventory, trusted: frozenset[str]) -> None:
    """Name each trusted entry that is neither a project ID nor an account of the inventory."""
    accounts = {
        normalised(row[0])
        for row in inventory.connection.execute(
            "SELECT DISTINCT account FROM run_projects WHERE account IS NOT NULL"
        )
    }
    unmatched = sorted(e for e in trusted if not is_project_id(e) and e not in accounts)
    for entry in unmatched[:MAX_FAILURE_LINES]:  # as many as crawl's failure lines, then a count
        sys.stderr.write(
            f"--trusted: {escape(repr(entry))} is neither a project ID nor an account "
            "recorded in the inventory: it matches nothing\n"
        )
    if len(unmatched) > MAX_FAILURE_LINES:
        sys.stderr.write(
            f"--trusted: ... and {len(unmatched) - MAX_FAILURE_LINES:,} more entries "
            "that match nothing\n"
        )


@contextlib.contextmanager
def command_errors() -> Iterator[None]:
    """Errors as the command's others: one line and exit 2, or 141 when the reader left.

    An inventory that cannot be used is one line, exit 2; the reader of
    stdout leaving (`| head`) is exit 141, quietly, as for crawl (click
    itself would say 1).
    """
    try:
        yield
    except InventoryError as exc:
        raise AuditUsageError(str(exc)) from None
    except BrokenPipeError:
        stdout_gone()
        click.get_current_context().exit(EXIT_BROKEN_PIPE)


def _audit(
    inventory: Inventory,
    trusted: frozenset[str],
    output_format: str,
    fail_on: Severity | None,
    options: dict[str, Any],
) -> int:
    result = audit(
        inventory,
        run_id=options["run_id"],
        trusted=trusted,
        minimum=Severity.parse(options["min_severity"]),
        account=options["account"] if options["db"] is not None else None,
    )
    writer = Writer(rows_stdout(), output_format, columns=FINDING_COLUMNS)
    version = product_version()
    regions = {run_id: inventory.run(run_id).region for run_id in result.run_ids}
    for finding in result:
        if output_format == "ocsf":
            region = regions.get(finding.seen_run) or inventory.run(finding.seen_run).region
            writer.event(ocsf_event(finding, region=region, product_version=version))
        else:
            finding_row(writer, finding)
    writer.close(_TABLE)
    # The counts are the audit's, every finding; what --min-severity left out is said apart.
    counts = ", ".join(
        f"{result.every_count.get(level, 0):,} {level.label}" for level in reversed(Severity)
    )
    runs = "; ".join(_described(inventory.run(run_id)) for run_id in result.run_ids)
    lines = [f"audited {runs}: {result.projects:,} projects; {counts}"]
    shown = sum(result.counts.values())
    left_out = sum(result.every_count.values()) - shown
    if left_out:
        lines.append(
            f"shown: {shown:,} {'finding' if shown == 1 else 'findings'} at or above "
            f"{result.minimum.label} (--min-severity); {left_out:,} below it left out"
        )
    earlier = sorted(result.seen_runs - set(result.run_ids))
    if earlier:
        sources = ", ".join(
            f"run {run_id} ({inventory.run(run_id).started_at})" for run_id in earlier
        )
        lines.append(f"findings also from earlier listings: {sources}")
    if result.stale_projects:
        lines.append(
            f"{len(result.stale_projects):,} projects not listed in the audited run: "
            "their findings are from their last listing (stale)"
        )
    if result.unknown_projects:
        lines.append(
            f"{len(result.unknown_projects):,} projects never listed: their sharings are unknown"
        )
    sys.stderr.write("".join(line + "\n" for line in lines))
    if fail_on is not None and result.at_least(fail_on):
        sys.stderr.write(
            f"{result.at_least(fail_on):,} findings at or above {fail_on.label}: exit 3\n"
        )
        return EXIT_FINDINGS
    return EXIT_FAILED if result.unknown_projects else EXIT_OK


def _described(run: Run) -> str:
    """`run 3 (complete, account OTC-A, eu-de)`; the account escaped, as a user typed it."""
    parts = [run.state]
    if run.account is not None:
        parts.append(f"account {escape(run.account)}")
    if run.region is not None:
        parts.append(escape(run.region))
    return f"run {run.run_id} ({', '.join(parts)})"
