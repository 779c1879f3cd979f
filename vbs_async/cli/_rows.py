"""Sharings as output rows: JSON Lines (the API's own field names) or CSV (flattened).

CSV, written here rather than by the `csv` module, which leaves a field
holding a lone carriage return unquoted (every reader then splits the row):

- a field holding a comma, a quote, CR, LF or NUL, or starting or ending
  with white space, is quoted (quotes doubled), so any byte survives;
- formula cells: a text value that begins with `=`, `+`, `-`, `@`, a tab
  or a CR is written with a `'` before it, as OWASP advises (and one that
  begins with `'`, so that the guard is told from the text and reading
  drops exactly one `'`: `vbs_async.inventory._files.unguarded`), because a
  spreadsheet opening the file would run it (`=HYPERLINK(...)`,
  `=cmd|...`) and a backup's name and description are anyone's text.
  Numbers, timestamps and IDs are never touched. CSV is the format people
  open in spreadsheets; JSON Lines is the exact one, written as the
  service sent it: use it (or strip the `'`) where the value itself counts.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Final

import attrs
import orjson

from vbs_async._models import Backup, BackupSharing
from vbs_async.inventory._files import guarded

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


_QUOTED_IF_HELD: Final = frozenset(',"\r\n\x00')


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return guarded(value)
    return str(value)


def _field(text: str) -> str:
    if _QUOTED_IF_HELD.intersection(text) or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_header() -> bytes:
    """The header row."""
    return _csv_lines([CSV_COLUMNS])


def csv_rows(project_id: str, sharings: Iterable[BackupSharing]) -> bytes:
    """One CSV row per sharing, the backup's fields flattened as `backup_*` columns."""
    lines: list[list[str]] = []
    for sharing in sharings:
        row = [project_id, *(_cell(getattr(sharing, name)) for name in _SHARING_FIELDS)]
        backup = sharing.backup
        row += [_cell(getattr(backup, name)) if backup else "" for name in _BACKUP_FIELDS]
        lines.append(row)
    return _csv_lines(lines)


def _csv_lines(rows: Sequence[Sequence[str]]) -> bytes:
    return "".join(",".join(map(_field, row)) + "\n" for row in rows).encode()
