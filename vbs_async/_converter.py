"""Turning the service's JSON into models: one private cattrs converter.

The hot path structures with `detailed_validation=False` and strict,
allocation-free hooks per field type. When it fails, the same item is
structured again by a converter with detailed validation, only to find the
path of the bad field for the error message.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn
from cattrs.preconf.orjson import make_converter

from ._models import Backup, BackupSharing

_NONE_TYPE: Final = type(None)

# The document's response table spells it without the trailing "s"; its
# examples (and the service) use "has_dependent_backups".
_TABLE_SPELLING: Final = "has_dependent_backup"
_EXAMPLE_SPELLING: Final = "has_dependent_backups"


def _type_error(value: object, expected: str) -> TypeError:
    return TypeError(f"expected {expected}, got {type(value).__name__} {value!r:.60}")


def _optional_str(value: object, _: object) -> str | None:
    if value is None or type(value) is str:
        return value
    raise _type_error(value, "a string or null")


def _required_str(value: object, _: object) -> str:
    if type(value) is str:
        return value
    raise _type_error(value, "a string")


def _optional_int(value: object, _: object) -> int | None:
    # bool is an int subclass; `True` as a size is a wrong type, not 1.
    if value is None or type(value) is int:
        return value
    raise _type_error(value, "an integer or null")


def _optional_bool(value: object, _: object) -> bool | None:
    if value is None or type(value) is bool:
        return value
    raise _type_error(value, "a boolean or null")


def parse_timestamp(value: object, _: object = None) -> datetime | None:
    """Read one of the service's timestamps as an aware UTC datetime.

    The service writes `2017-08-10T12:25:40.480424` with no zone; it is UTC.
    A timestamp that does carry a zone is converted to UTC; an empty one is None.
    """
    if value is None:
        return None
    if type(value) is not str:
        raise _type_error(value, "an ISO 8601 timestamp or null")
    if not value.strip():
        return None  # an empty timestamp says no more than null: not worth a project's failure
    try:
        # Parsing with the zone appended is several times faster than
        # parsing and then calling .replace(tzinfo=UTC).
        parsed = _from_iso(value + "+00:00")
    except ValueError:
        parsed = _from_iso(value)  # it has a zone of its own, or is invalid (raises)
    else:
        if parsed.tzinfo is not None:
            return parsed
        parsed = _from_iso(value)  # a date alone: Python 3.11 drops the appended zone
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_from_iso: Final = datetime.fromisoformat


# Run once, at import: a mutation test cannot switch a mutant on there (mutmut chooses
# the mutant per call), so these three are left out of it; a mistake in them breaks
# every structuring test.
def _make_converter(*, detailed_validation: bool) -> cattrs.Converter:  # pragma: no mutate block
    converter = make_converter(detailed_validation=detailed_validation)
    converter.register_structure_hook(str, _required_str)
    # Optional scalars are registered by predicate: unions are not dispatched
    # by type, and a direct hook avoids cattrs' generic union handling.
    for union, hook in (
        (str | None, _optional_str),
        (int | None, _optional_int),
        (bool | None, _optional_bool),
        (datetime | None, parse_timestamp),
    ):
        converter.register_structure_hook_func(_is(union), hook)

    structure_backup = make_dict_structure_fn(Backup, converter)

    def backup_hook(data: Any, cls: type[Backup]) -> Backup:
        if type(data) is not dict:
            raise _type_error(data, "an object or null")
        if _TABLE_SPELLING in data and _EXAMPLE_SPELLING not in data:
            data = {**data, _EXAMPLE_SPELLING: data[_TABLE_SPELLING]}
        return structure_backup(data, cls)

    converter.register_structure_hook(Backup, backup_hook)
    converter.register_structure_hook(Backup | None, _optional(backup_hook, Backup))
    converter.register_structure_hook(
        BackupSharing, make_dict_structure_fn(BackupSharing, converter)
    )
    return converter


# Called only by `_make_converter`, at import: the closures they return are what runs.
def _is(expected: object) -> Any:  # pragma: no mutate block
    def predicate(candidate: object) -> bool:
        return candidate == expected

    return predicate


def _optional(hook: Any, cls: type[Any]) -> Any:  # pragma: no mutate block
    def optional_hook(value: Any, _: object) -> Any:
        return None if value is None else hook(value, cls)

    return optional_hook


# -- the hot path: one generated function per model, checks inlined ----------------------
#
# cattrs' generated structure function calls one hook per field (a Python call
# each: 24 per sharing), which made typed decoding four times slower than
# `orjson.loads` on fully populated records. cattrs has no way to inline a
# field's check into the function it generates, so the functions below are
# generated here, once at import, from the same attrs fields, with the same
# strict checks written inline. They are registered in the private converter
# as the hooks of the two models; a failure is still diagnosed by cattrs'
# detailed validation (`_diagnose`), which names the field.

_CHECKS: Final = {
    str: "if type({v}) is not str: raise _type_error({v}, 'a string')",
    str | None: (
        "if {v} is not None and type({v}) is not str: raise _type_error({v}, 'a string or null')"
    ),
    int | None: (
        "if {v} is not None and type({v}) is not int:"
        " raise _type_error({v}, 'an integer or null')"
    ),
    bool | None: (
        "if {v} is not None and type({v}) is not bool:"
        " raise _type_error({v}, 'a boolean or null')"
    ),
    # The service's zone-less form parses at once with UTC appended; anything
    # else (a zone of its own, a date alone, a wrong type) takes the full path.
    datetime | None: (
        "if {v} is not None:\n"
        "        try:\n"
        "            parsed = _from_iso({v} + '+00:00')\n"
        "        except (TypeError, ValueError):\n"
        "            parsed = None\n"
        "        {v} = parsed if parsed is not None and parsed.tzinfo is not None"
        " else parse_timestamp({v})"
    ),
}  # fmt: skip


def _generate(
    cls: type[Any], nested: dict[object, str], namespace: dict[str, Any]
) -> Any:  # pragma: no mutate block (mutmut reads it after the colon of a split signature)
    """A function `(data) -> cls` with every field's check inlined."""
    attrs.resolve_types(cls)
    lines = [
        f"def structure_{cls.__name__}(o):",
        "    if type(o) is not dict: raise _type_error(o, 'an object')",
    ]
    if cls is Backup:
        lines.append(
            f"    if {_TABLE_SPELLING!r} in o and {_EXAMPLE_SPELLING!r} not in o:"
            f" o = {{**o, {_EXAMPLE_SPELLING!r}: o[{_TABLE_SPELLING!r}]}}"
        )
    names = []
    for field in attrs.fields(cls):
        variable = f"v_{field.name}"
        names.append(variable)
        required = field.default is attrs.NOTHING
        lines.append(
            f"    {variable} = o[{field.name!r}]"
            if required
            else f"    {variable} = o.get({field.name!r})"
        )
        if field.type in nested:
            lines.append(
                f"    if {variable} is not None: {variable} = {nested[field.type]}({variable})"
            )
        else:
            lines.append("    " + _CHECKS[field.type].format(v=variable))
    lines.append(f"    return _{cls.__name__}({', '.join(names)})")
    namespace[f"_{cls.__name__}"] = cls
    exec("\n".join(lines), namespace)  # noqa: S102 - our own source, built from attrs fields
    return namespace[f"structure_{cls.__name__}"]


def _fast_hooks() -> tuple[Any, Any]:  # pragma: no mutate block
    namespace: dict[str, Any] = {
        "_type_error": _type_error,
        "_from_iso": _from_iso,
        "parse_timestamp": parse_timestamp,
    }
    backup = _generate(Backup, {}, namespace)
    sharing = _generate(BackupSharing, {Backup | None: "structure_Backup"}, namespace)
    return backup, sharing


_structure_backup_fast, _structure_sharing_fast = _fast_hooks()
_FAST: Final = _make_converter(detailed_validation=False)
_FAST.register_structure_hook(Backup, lambda data, _: _structure_backup_fast(data))
_FAST.register_structure_hook(BackupSharing, lambda data, _: _structure_sharing_fast(data))
_DETAILED: Final = _make_converter(detailed_validation=True)
_structure_sharing: Final = _FAST.get_structure_hook(BackupSharing)


class StructureError(Exception):
    """An item did not fit the model; `path` names the field, `reason` says why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def structure_sharings(items: list[Any], path: str = "shared") -> tuple[BackupSharing, ...]:
    """Structure a list of sharing objects.

    Raises:
        StructureError: An item is not a sharing; the error names its field.
    """
    try:
        sharings = tuple([_structure_sharing(item, BackupSharing) for item in items])
    except Exception:  # noqa: BLE001 - any failure is diagnosed below
        for index, item in enumerate(items):
            _diagnose(item, f"{path}[{index}]")
        raise StructureError(path, "could not be read") from None
    for index, sharing in enumerate(sharings):
        _check_ids(sharing, f"{path}[{index}]")
    return sharings


def structure_sharing(item: Any, path: str = "shared") -> BackupSharing:
    """Structure one sharing object.

    Raises:
        StructureError: The item is not a sharing; the error names its field.
    """
    try:
        sharing: BackupSharing = _structure_sharing(item, BackupSharing)
    except Exception:  # noqa: BLE001 - any failure is diagnosed below
        _diagnose(item, path)
        raise StructureError(path, "could not be read") from None
    _check_ids(sharing, path)
    return sharing


# The IDs the service sends are UUIDs and 32 hexadecimal digits. An ID is
# written unchanged everywhere (a URL path, a CSV cell, a terminal), so one
# that is anything else (an escape sequence, `=1+2`) makes the answer invalid
# instead of being escaped in one place and missed in another.
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _check_ids(sharing: BackupSharing, path: str) -> None:
    """Raise a `StructureError` if one of the sharing's IDs is not a plain ID."""
    for field in ("id", "backup_id", "from_project_id", "to_project_id"):
        value = getattr(sharing, field)
        if _PLAIN_ID.fullmatch(value) is None or ".." in value:
            raise StructureError(
                f"{path}.{field}", f"{value!r:.80} is not a plain ID (letters, digits, '-', '_')"
            )


def _diagnose(item: Any, path: str) -> None:
    """Raise a `StructureError` naming the first bad field of `item`, if any."""
    if not isinstance(item, dict):
        raise StructureError(path, f"expected an object, got {type(item).__name__}")
    try:
        _DETAILED.structure(item, BackupSharing)
    except Exception as exc:  # noqa: BLE001 - cattrs raises many kinds
        # cattrs names each failure's path ("... @ shared[1].backup.size").
        first = cattrs.transform_error(exc, path=path, format_exception=_reason)[0]
        reason, _, where = first.rpartition(" @ ")
        raise StructureError(where, reason) from None


def _reason(exc: BaseException, _: object) -> str:
    """What cattrs' `transform_error` says of one failure: our hooks' own words."""
    if isinstance(exc, KeyError):
        return "is required but missing"
    return str(exc) or type(exc).__name__
