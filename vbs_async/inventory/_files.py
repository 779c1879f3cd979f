"""A crawl's output file and its `--report`, read into an inventory (for users without `--db`).

The output (JSON Lines or CSV, as `vbs-async crawl` writes them) gives the
sharings; the report gives every project of the job and its outcome, so
that a failed project is told from one with no sharings.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from vbs_async._models import Project

from ._store import InventoryError, SharingRow, sharing_row

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from ._store import Inventory, RunRecorder

_BATCH: Final = 1000


def read_report(path: Path) -> dict[str, Any]:
    """A crawl report's document.

    Raises:
        InventoryError: The file is not a vbs-async crawl report.
    """
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise InventoryError(f"cannot read the report {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("vbs_async_report") != 1:
        raise InventoryError(f"{path} is not a vbs-async crawl report (crawl --report)")
    return document


def load_crawl_output(
    inventory: Inventory, output: Path, report: Path, *, account: str | None = None
) -> int:
    """Record a crawl's output file and report as a run of `inventory`; the run's ID.

    Raises:
        InventoryError: The report is not one, or is the report of another
            crawl (it names another output file that exists, or its sharing
            count of a project listed differs from the output's rows), or the
            output holds rows of a project the report does not name, or rows
            that are not sharings.
    """
    document = read_report(report)
    entries = document.get("projects") or []
    outcomes = {str(entry["project_id"]): entry for entry in entries}
    job = document.get("job") or {}
    known = _account_projects(report, job)
    recorder = inventory.start_run(
        list(outcomes),
        job_key=f"file:{output}",
        account=account,
        listing=job.get("listing") or {},
        options={"output": str(output), "report": str(report)},
        known_projects=known,
        whole_account=bool(known),
    )
    listed = {p for p, entry in outcomes.items() if entry.get("status") in {"ok", "skipped"}}
    _check_same_crawl(output, report, job)
    # A project is committed once its rows reach the report's count (a
    # crawl writes each project's rows together), so that memory holds a
    # batch, not the file; a row of it after that makes the counts differ.
    expected = {
        project_id: entry["sharings"]
        for project_id, entry in outcomes.items()
        if entry.get("status") == "ok" and isinstance(entry.get("sharings"), int)
    }
    counted: dict[str, int] = {}
    batch: list[SharingRow] = []
    complete: list[str] = []
    committed: set[str] = set()

    def flush() -> None:
        recorder.add_rows(batch)
        batch.clear()
        recorder.commit_projects([(project_id, None) for project_id in complete])
        committed.update(complete)
        complete.clear()

    for row in _rows(output):
        project_id = row[0]
        counted[project_id] = counted.get(project_id, 0) + 1
        if project_id not in outcomes:
            raise InventoryError(
                f"{output} has rows of project {project_id}, which {report} does not name: "
                "give the report of the same crawl"
            )
        if project_id in listed:
            batch.append(row)
            if counted[project_id] == expected.get(project_id):
                complete.append(project_id)
        if len(batch) >= _BATCH:
            flush()
    flush()
    _check_counts(output, report, outcomes, counted)
    _commit_rest(recorder, outcomes, listed - committed)
    recorder.finish()
    return recorder.run_id


def _commit_rest(recorder: RunRecorder, outcomes: Mapping[str, Any], listed: set[str]) -> None:
    """Record the projects not committed yet: those `listed`, and those that failed."""
    for project_id, entry in outcomes.items():
        if project_id in listed:
            recorder.commit_project(project_id)
        elif entry.get("status") == "failed":
            error = entry.get("error") or {}
            recorder.fail_project(project_id, str(error.get("message") or "failed"))


def _account_projects(report: Path, job: Mapping[str, Any]) -> list[Project]:
    """The account's projects an `--all-projects` crawl's report names (none for others)."""
    entries = job.get("account_projects") or []
    try:
        return [
            Project(
                id=str(entry["id"]),
                name=str(entry.get("name") or ""),
                region=str(entry.get("region") or ""),
                enabled=bool(entry.get("enabled", True)),
            )
            for entry in entries
        ]
    except (KeyError, TypeError, AttributeError):
        raise InventoryError(f"{report}: its account_projects are not a project list") from None


def _check_same_crawl(output: Path, report: Path, job: Mapping[str, Any]) -> None:
    """Refuse a report whose crawl wrote another output file that is still there."""
    written = job.get("output")
    if not isinstance(written, str):
        return
    with contextlib.suppress(OSError):
        if Path(written).exists() and not Path(written).samefile(output):
            raise InventoryError(
                f"{report} is the report of the crawl that wrote {written}, not {output}: "
                "give the report of the same crawl"
            )


def _check_counts(
    output: Path, report: Path, outcomes: Mapping[str, Any], counted: Mapping[str, int]
) -> None:
    """Refuse an output whose rows of a listed project are not the report's count."""
    for project_id, entry in outcomes.items():
        expected = entry.get("sharings")
        if entry.get("status") == "ok" and isinstance(expected, int):
            found = counted.get(project_id, 0)
            if found != expected:
                raise InventoryError(
                    f"{report} says project {project_id} listed {expected:,} sharings, "
                    f"{output} holds {found:,} of its rows: give the report of the same crawl"
                )


def _rows(output: Path) -> Iterator[SharingRow]:
    try:
        stream = output.open("rb")
    except OSError as exc:
        raise InventoryError(f"cannot read {output}: {exc.strerror}") from None
    with stream:
        if stream.readline().startswith(b"project_id,"):
            stream.seek(0)
            with io.TextIOWrapper(stream, encoding="utf-8", newline="") as text:
                yield from _csv_rows(output, text)
            return
        stream.seek(0)
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                yield _json_row(orjson.loads(line))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise InventoryError(
                    f"{output} line {number} is not a sharing row of vbs-async crawl"
                ) from None


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _size(value: object) -> int | None:
    return None if value is None or value == "" else int(str(value))


def _row(row: Mapping[str, Any], backup: Mapping[str, Any]) -> SharingRow:
    """A sharing's row from an output row's fields and its backup's."""
    return sharing_row(
        str(row["project_id"]),
        str(row["id"]),
        str(row["backup_id"]),
        str(row["from_project_id"]),
        str(row["to_project_id"]),
        created_at=_text(row.get("created_at")),
        updated_at=_text(row.get("updated_at")),
        name=_text(backup.get("name")),
        size=_size(backup.get("size")),
        volume_id=_text(backup.get("volume_id")),
        status=_text(backup.get("status")),
        availability_zone=_text(backup.get("availability_zone")),
    )


_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
# A text that starts with `'` is guarded too: else the guard's `'` before
# `=x` and a server's own `'=x` are one cell, and reading it back loses one.
_GUARDED_STARTS: Final = (*_FORMULA_STARTS, "'")


def guarded(text: str) -> str:
    """A text as a CSV cell no spreadsheet runs as a formula: `'` before a guarded start.

    `=`, `+`, `-`, `@`, a tab or a CR first (OWASP's formula cells), and a
    `'` first, so that `unguarded` gives back exactly the text.
    """
    return "'" + text if text.startswith(_GUARDED_STARTS) else text


def unguarded(value: str) -> str:
    """The text of a cell `guarded` wrote: the exact inverse.

    A file written before `'` was guarded reads as it did, except a server's
    own text beginning with `''` (or with `'` then a formula character),
    which loses its first `'` (then, it was one cell with a guarded text).
    """
    if value.startswith("'") and value[1:].startswith(_GUARDED_STARTS):
        return value[1:]
    return value


def _unprotected(value: str | None) -> str | None:
    """A CSV cell without the `'` the crawl puts before a guarded text."""
    return None if value is None else unguarded(value)


def _json_row(row: dict[str, Any]) -> SharingRow:
    return _row(row, row.get("backup") or {})


def _csv_rows(output: Path, text: io.TextIOWrapper) -> Iterator[SharingRow]:
    # A field may be as large as the file (a 200 KB backup name): the csv
    # module's limit of 128 KiB would call such a row an error.
    before = csv.field_size_limit()
    csv.field_size_limit(max(before, os.fstat(text.fileno()).st_size + 1))
    reader = csv.DictReader(text)
    try:
        for row in reader:
            backup = {
                k.removeprefix("backup_"): _unprotected(v)
                for k, v in row.items()
                if k.startswith("backup_")
            }
            yield _row(row, backup)
    except (KeyError, TypeError, ValueError, csv.Error) as exc:
        reason = f" ({exc})" if isinstance(exc, (csv.Error, UnicodeDecodeError)) else ""
        raise InventoryError(
            f"{output} line {reader.line_num} is not a sharing row of vbs-async crawl{reason}"
        ) from None
    finally:
        csv.field_size_limit(before)
