"""Sharings as output rows: JSON Lines (the API's own field names) or CSV (flattened)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import TYPE_CHECKING, Final

import attrs
import orjson

from vbs_async._models import Backup, BackupSharing

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

_SHARING_FIELDS: Final = [f.name for f in attrs.fields(BackupSharing) if f.name != "backup"]
# The backup's own id repeats the sharing's backup_id, and `backup_id` is taken.
_BACKUP_FIELDS: Final = [f.name for f in attrs.fields(Backup) if f.name != "id"]
CSV_COLUMNS: Final = ["project_id", *_SHARING_FIELDS, *(f"backup_{f}" for f in _BACKUP_FIELDS)]


def _document(project_id: str, sharing: BackupSharing) -> dict[str, object]:
    row: dict[str, object] = {"project_id": project_id}
    row.update((name, getattr(sharing, name)) for name in _SHARING_FIELDS)
    backup = sharing.backup
    row["backup"] = None if backup is None else attrs.asdict(backup, recurse=False)
    return row


def jsonl(project_id: str, sharings: Iterable[BackupSharing]) -> bytes:
    """One JSON object per line; timestamps in ISO 8601 with their zone."""
    return b"".join(orjson.dumps(_document(project_id, s)) + b"\n" for s in sharings)


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def csv_header() -> bytes:
    """The header row."""
    return _csv_lines([CSV_COLUMNS])


def csv_rows(project_id: str, sharings: Iterable[BackupSharing]) -> bytes:
    """One CSV row per sharing, the backup's fields flattened as `backup_*` columns."""
    lines: list[list[object]] = []
    for sharing in sharings:
        row = [project_id, *(_cell(getattr(sharing, name)) for name in _SHARING_FIELDS)]
        backup = sharing.backup
        row += [_cell(getattr(backup, name)) if backup else "" for name in _BACKUP_FIELDS]
        lines.append(row)
    return _csv_lines(lines)


def _csv_lines(rows: Sequence[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()
