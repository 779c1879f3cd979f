"""`vbs-async diff`: what changed between two runs, and whether a new finding appeared.

Two runs of an inventory (`--db FILE`; the last two unless `--old`/`--new`),
or two crawl outputs with their reports. A project not listed in either run
makes its sharings unknown: counted, never reported removed.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any, Final

import click

from vbs_async.inventory import Inventory, NothingToCompareError, Severity, diff

from ._audit import (
    EXIT_FINDINGS,
    SEVERITIES,
    AuditUsageError,
    command_errors,
    opened_inventory,
    severity_option,
    source_options,
    trusted_ids,
    warn_unmatched,
)
from ._findings import CHANGE_COLUMNS, Writer, change_row, escape, rows_stdout
from ._run import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from pathlib import Path

_TABLE: Final = [
    "change", "severity", "class", "fields", "backup_name", "old_status", "new_status",
    "from_project_id", "to_project_id", "sharing_id",
]  # fmt: skip


@click.command(name="diff")
@source_options(["table", "jsonl", "csv"])
@click.option("--old", "old_run", type=click.IntRange(min=1), help="The earlier run.")
@click.option("--new", "new_run", type=click.IntRange(min=1), help="The later run.")
@click.option(
    "--fail-on-new",
    type=click.Choice(SEVERITIES),
    help="Exit 3 when a sharing added since the old run is at or above this severity.",
)
def diff_command(outputs: tuple[Path, ...], reports: tuple[Path, ...], **options: Any) -> None:
    """Print the sharings added, removed and changed between two runs.

    With --db, the last two runs unless --old N / --new N; or OLD NEW crawl
    output files, each with its --report. A project that failed or was not
    crawled in either run makes its sharings unknown, never removed.

    Exit status: 0, 1 if some projects' sharings are unknown, 2 for a usage
    error, 3 if a sharing added is at or above --fail-on-new.
    """
    if outputs and len(outputs) != 2:  # noqa: PLR2004 - old and new
        raise AuditUsageError("diff compares two crawl output files: OLD NEW")
    if outputs:
        _check_files(outputs, options)
    trusted = trusted_ids(options["trusted"])
    fail_on_new = severity_option(options["fail_on_new"])
    output_format = options["output_format"] or ("table" if sys.stdout.isatty() else "jsonl")
    with (
        command_errors(),
        opened_inventory(options["db"], outputs, reports, account=options["account"]) as inv,
    ):
        warn_unmatched(inv, trusted)
        try:
            changes = diff(
                inv,
                old_run=options["old_run"],
                new_run=options["new_run"],
                trusted=trusted,
                account=options["account"] if options["db"] is not None else None,
            )
        except NothingToCompareError as exc:
            sys.stderr.write(f"{escape(str(exc))}\n")
            click.get_current_context().exit(EXIT_OK)
        compared = f"{_described(inv, changes.old_run)} -> {_described(inv, changes.new_run)}"
        writer = Writer(rows_stdout(), output_format, columns=CHANGE_COLUMNS)
        for change in changes:
            change_row(writer, change)
        writer.close(_TABLE)
    summary = changes.summary
    new_by_level = ", ".join(
        f"{summary.added_by_severity.get(level, 0):,} {level.label}" for level in reversed(Severity)
    )
    lines = [
        (
            f"{compared}: {summary.added:,} added "
            f"({new_by_level}), {summary.removed:,} removed, {summary.changed:,} changed, "
            f"{summary.unchanged:,} unchanged"
        )
    ]
    if summary.unknown_projects:
        lines.append(
            f"unknown: {summary.unknown:,} sharings of {len(summary.unknown_projects):,} "
            "projects not listed in one of the runs (failed or not crawled)"
        )
    sys.stderr.write("".join(line + "\n" for line in lines))
    if fail_on_new is not None and summary.new_at_least(fail_on_new):
        sys.stderr.write(
            f"{summary.new_at_least(fail_on_new):,} new sharings at or above "
            f"{fail_on_new.label}: exit 3\n"
        )
        click.get_current_context().exit(EXIT_FINDINGS)
    click.get_current_context().exit(EXIT_FAILED if summary.unknown_projects else EXIT_OK)


def _check_files(outputs: tuple[Path, ...], options: dict[str, Any]) -> None:
    """Refuse what output files cannot honour: run numbers, one file compared with itself."""
    if options["old_run"] is not None or options["new_run"] is not None:
        raise AuditUsageError(
            "--old and --new name runs of --db: with crawl output files, "
            "OLD is the first file and NEW the second"
        )
    old, new = outputs
    with contextlib.suppress(OSError):
        if old.resolve() == new.resolve() or old.samefile(new):
            raise AuditUsageError(
                f"OLD and NEW are the same file ({old}): give the outputs of two crawls"
            )


def _described(inventory: Inventory, run_id: int) -> str:
    """`run 3 (account OTC-A)`: a run and, where known, its account."""
    account = inventory.run(run_id).account
    return f"run {run_id}" if account is None else f"run {run_id} (account {escape(account)})"
