r"""Findings and changes as the operator reads them: a table, JSON Lines, CSV, or OCSF events.

Server text (a backup's name, a status) reaches a terminal or a spreadsheet
here, so every text cell of the table and of CSV is escaped as the
command's other output is (`_text.printable`: control characters, DEL, C1,
line separators and direction overrides become `\x1b`, `\n`, `\u202e`), and
a CSV cell that a spreadsheet would take for a formula (`= + - @`, a tab or
CR first), or that starts with `'`, gets a leading `'`. JSON Lines are escaped by orjson itself: one
object per line.
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
from datetime import datetime
from importlib import metadata
from typing import IO, TYPE_CHECKING, Any, Final

import orjson

from vbs_async.inventory import Severity, SharingClass
from vbs_async.inventory._files import guarded

from ._text import TerminalRows, printable, stdout_for_rows

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from vbs_async.inventory import Change, Finding, SharingVersion

OCSF_VERSION: Final = "1.5.0"
_SEVERITY_CAPTIONS: Final = {1: "Informational", 2: "Low", 3: "Medium", 4: "High"}
_TITLES: Final = {
    SharingClass.INTERNAL: "VBS backup shared within the account",
    SharingClass.TRUSTED: "VBS backup shared with a trusted project",
    SharingClass.CROSS_ACCOUNT: "VBS backup shared with another inventoried account",
    SharingClass.EXTERNAL: "VBS backup shared outside every inventoried account",
}


def rows_stdout() -> IO[str]:
    """Stdout for findings and changes: on a terminal, every row escaped as crawl's rows are.

    JSON Lines and OCSF keep non-ASCII as it is (U+202E, U+2028, C1 controls
    are valid JSON), so on a terminal they go through the same escaping as
    crawl's rows (`stdout_for_rows`); redirected, the exact bytes.
    """
    raw = stdout_for_rows()
    if not isinstance(raw, TerminalRows):
        return sys.stdout
    sys.stdout.flush()
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", newline="\n")


def escape(text: str) -> str:
    """`text` with every control character shown as an escape (the command's `printable`)."""
    return printable(text)


def csv_cell(value: object) -> object:
    """A value as a CSV cell that no spreadsheet runs as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    text = escape(str(value))
    return guarded(text)


def _sharing_document(sharing: SharingVersion) -> dict[str, Any]:
    return {
        "sharing_id": sharing.sharing_id,
        "project_id": sharing.project_id,
        "from_project_id": sharing.from_project_id,
        "to_project_id": sharing.to_project_id,
        "created_at": sharing.created_at,
        "backup": {
            "id": sharing.backup_id,
            "name": sharing.backup_name,
            "size": sharing.backup_size,
            "volume_id": sharing.backup_volume_id,
            "status": sharing.backup_status,
            "availability_zone": sharing.backup_availability_zone,
        },
    }


def finding_document(finding: Finding) -> dict[str, Any]:
    """A finding as one JSON object."""
    return {
        "severity": finding.severity.label,
        "class": finding.sharing_class.value,
        **_sharing_document(finding.sharing),
        "to_account": finding.to_account,
        "first_seen_run": finding.first_seen_run,
        "first_seen_at": finding.first_seen_at,
        "seen_run": finding.seen_run,
        "seen_at": finding.seen_at,
        "stale": finding.stale,
        "remediation": finding.remediation,
    }


def change_document(change: Change) -> dict[str, Any]:
    """A change as one JSON object."""
    return {
        "change": change.kind.value,
        "severity": change.severity.label,
        "class": change.sharing_class.value,
        "fields": list(change.fields),
        "old": None if change.old is None else _sharing_document(change.old),
        "new": None if change.new is None else _sharing_document(change.new),
        "remediation": None if change.new is None else change.new.remediation,
    }


FINDING_COLUMNS: Final = [
    "severity", "class", "sharing_id", "project_id", "from_project_id", "to_project_id",
    "to_account", "backup_id", "backup_name", "backup_size", "backup_volume_id",
    "backup_status", "first_seen_run", "first_seen_at", "seen_run", "stale", "remediation",
]  # fmt: skip
CHANGE_COLUMNS: Final = [
    "change", "severity", "class", "fields", "sharing_id", "project_id", "from_project_id",
    "to_project_id", "backup_id", "backup_name", "backup_size", "backup_volume_id",
    "old_status", "new_status", "remediation",
]  # fmt: skip


def _finding_cells(finding: Finding) -> list[object]:
    s = finding.sharing
    return [
        finding.severity.label, finding.sharing_class.value, s.sharing_id, s.project_id,
        s.from_project_id, s.to_project_id, finding.to_account, s.backup_id, s.backup_name,
        s.backup_size, s.backup_volume_id, s.backup_status, finding.first_seen_run,
        finding.first_seen_at, finding.seen_run, finding.stale, finding.remediation,
    ]  # fmt: skip


def _change_cells(change: Change) -> list[object]:
    s = change.sharing
    return [
        change.kind.value, change.severity.label, change.sharing_class.value,
        " ".join(change.fields), s.sharing_id, s.project_id, s.from_project_id, s.to_project_id,
        s.backup_id, s.backup_name, s.backup_size, s.backup_volume_id,
        None if change.old is None else change.old.backup_status,
        None if change.new is None else change.new.backup_status,
        None if change.new is None else change.new.remediation,
    ]  # fmt: skip


def _millis(moment: str | None) -> int | None:
    if moment is None:
        return None
    return int(datetime.fromisoformat(moment).timestamp() * 1000)


def _product_version() -> str:
    try:
        return metadata.version("vbs-async")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0"


def ocsf_event(finding: Finding, *, region: str | None, product_version: str) -> dict[str, Any]:
    """A finding as an OCSF Detection Finding (class 2004) event."""
    s = finding.sharing
    seen = _millis(finding.seen_at) or 0
    severity = int(finding.severity)
    where = f"project {s.to_project_id}" + (
        f" (account {finding.to_account})" if finding.to_account else ""
    )
    title = _TITLES[finding.sharing_class]
    return {
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "vbs-async",
                "vendor_name": "vbs-async",
                "version": product_version,
            },
            "event_code": f"vbs_backup_sharing_{finding.sharing_class.value.replace('-', '_')}",
            "uid": f"{s.project_id}/{s.sharing_id}/{finding.seen_run}",
        },
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "severity_id": severity,
        "severity": _SEVERITY_CAPTIONS[severity],
        "status_id": 1,
        "status": "New",
        "time": seen,
        "message": (
            f"Backup {s.backup_name or s.backup_id} of project {s.from_project_id} "
            f"can be restored by {where}"
        ),
        "finding_info": {
            "uid": f"vbs-async/{s.project_id}/{s.sharing_id}",
            "title": title,
            "desc": (
                f"Sharing {s.sharing_id} gives {where} a copy of backup {s.backup_id} "
                f"(volume {s.backup_volume_id}, {s.backup_size} GB, {s.backup_status}); "
                f"class {finding.sharing_class.value}."
            ),
            "types": [finding.sharing_class.value],
            "first_seen_time": _millis(finding.first_seen_at),
            "last_seen_time": seen,
            "attacks": [
                {
                    "technique": {"uid": "T1537", "name": "Transfer Data to Cloud Account"},
                    "tactic": {"uid": "TA0010", "name": "Exfiltration"},
                }
            ],
        },
        "resources": [
            {
                "uid": s.backup_id,
                "name": s.backup_name,
                "type": "VBS backup",
                "region": region,
                "data": {
                    "volume_id": s.backup_volume_id,
                    "size_gb": s.backup_size,
                    "status": s.backup_status,
                    "project_id": s.from_project_id,
                },
            },
            {
                "uid": s.sharing_id,
                "type": "VBS backup sharing",
                "region": region,
                "data": {"from_project_id": s.from_project_id, "to_project_id": s.to_project_id},
            },
        ],
        "remediation": {
            "desc": f"If the sharing is not intended, end it: {finding.remediation}",
        },
        "cloud": {"provider": "Open Telekom Cloud", "region": region},
        "unmapped": {
            "sharing_class": finding.sharing_class.value,
            **({"to_account": finding.to_account} if finding.to_account else {}),
            "stale": finding.stale,
            "seen_run": finding.seen_run,
        },
    }


TABLE_WIDTH: Final = 40
"""The widest a table column gets: a longer cell is cut, with `…` (the whole in JSON Lines)."""
_SEVERITY_ORDER: Final = [level.label for level in reversed(Severity)]


class Writer:
    """Writes findings or changes to a stream in one format.

    JSON Lines, OCSF and CSV are streamed. The table is sorted by severity
    (high first) and its columns are as wide as their widest cell, up to
    `TABLE_WIDTH`: its rows wait in temporary files, one per severity, not
    in memory, so a table of a million rows takes what JSON Lines does.
    """

    def __init__(self, stream: IO[str], output_format: str, *, columns: Sequence[str]) -> None:
        self._stream = stream
        self._format = output_format
        self._columns = columns
        self._csv = csv.writer(stream, lineterminator="\n") if output_format == "csv" else None
        self._severity = columns.index("severity")
        self._spools: dict[str, IO[bytes]] = {}
        self._widths = [0] * len(columns)
        if self._csv is not None:
            self._csv.writerow(columns)

    def row(self, document: dict[str, Any], cells: Iterable[object]) -> None:
        """One finding or change."""
        if self._format == "jsonl":
            self._stream.write(orjson.dumps(document).decode() + "\n")
        elif self._csv is not None:
            self._csv.writerow([csv_cell(cell) for cell in cells])
        else:
            shown = ["" if cell is None else escape(str(cell)) for cell in cells]
            self._widths = [
                max(width, min(len(cell), TABLE_WIDTH))
                for width, cell in zip(self._widths, shown, strict=True)
            ]
            spool = self._spools.get(shown[self._severity])
            if spool is None:
                spool = self._spools[shown[self._severity]] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
            spool.write(orjson.dumps(shown) + b"\n")

    def event(self, document: dict[str, Any]) -> None:
        """One OCSF event (a JSON line)."""
        self._stream.write(orjson.dumps(document).decode() + "\n")

    def close(self, shown: Sequence[str]) -> None:
        """Write the table (the `shown` columns), if the format is one."""
        try:
            if self._format == "table" and self._spools:
                self._table(shown)
        finally:
            for spool in self._spools.values():
                spool.close()
            self._spools = {}
        self._stream.flush()

    def _table(self, shown: Sequence[str]) -> None:
        indexes = [self._columns.index(name) for name in shown]
        widths = [max(self._widths[i], len(name)) for i, name in zip(indexes, shown, strict=True)]
        self._line([name.upper() for name in shown], widths)
        order = [label for label in _SEVERITY_ORDER if label in self._spools]
        order += sorted(set(self._spools) - set(order))
        for label in order:
            spool = self._spools[label]
            spool.seek(0)
            for line in spool:
                cells = orjson.loads(line)
                self._line([cells[i] for i in indexes], widths)

    def _line(self, cells: Sequence[str], widths: Sequence[int]) -> None:
        fitted = (
            (cell if len(cell) <= width else cell[: width - 1] + "…").ljust(width)
            for cell, width in zip(cells, widths, strict=True)
        )
        self._stream.write("  ".join(fitted).rstrip() + "\n")


def finding_row(writer: Writer, finding: Finding) -> None:
    """Write one finding."""
    writer.row(finding_document(finding), _finding_cells(finding))


def change_row(writer: Writer, change: Change) -> None:
    """Write one change."""
    writer.row(change_document(change), _change_cells(change))


def product_version() -> str:
    """This vbs-async's version, for OCSF metadata."""
    return _product_version()
