"""Structuring the service's JSON into models (`_converter`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vbs_async import Backup, BackupSharing
from vbs_async._converter import (
    StructureError,
    parse_timestamp,
    structure_sharing,
    structure_sharings,
)

DOCUMENT_EXAMPLE = {
    "backup": {
        "availability_zone": "AZ1",
        "container": None,
        "created_at": "2017-08-08T04:03:27.456859",
        "data_timestamp": "2017-08-08T04:03:27.456859",
        "description": None,
        "fail_reason": "Invalid InitiatorConnector protocol specified DSWARE",
        "has_dependent_backups": None,
        "id": "066b1e37-9305-4057-97e5-2e99b21fc71d",
        "is_incremental": None,
        "name": "lbf",
        "object_count": None,
        "size": 1,
        "snapshot_id": None,
        "status": "available",
        "updated_at": "2017-08-08T04:03:35.109308",
        "volume_id": "a7d7783f-02b7-4645-b0e3-61df63f0ba10",
        "service_metadata": None,
    },
    "backup_id": "066b1e37-9305-4057-97e5-2e99b21fc71d",
    "created_at": "2017-08-10T12:25:40.480424",
    "from_project_id": "c13f5220dc1949b0b741ea81a7cd5554",
    "id": "e842bf23-1e05-4c2c-b0f9-25222f4686da",
    "to_project_id": "722513ed0a324dadaabe5b2d0fe848b9",
    "updated_at": "2017-08-14T06:41:49.381069",
}
MINIMAL = {"id": "s", "backup_id": "b", "from_project_id": "p", "to_project_id": "q"}


def test_document_example_becomes_typed_models_with_utc_timestamps():
    (sharing,) = structure_sharings([DOCUMENT_EXAMPLE])
    assert sharing == BackupSharing(
        id="e842bf23-1e05-4c2c-b0f9-25222f4686da",
        backup_id="066b1e37-9305-4057-97e5-2e99b21fc71d",
        from_project_id="c13f5220dc1949b0b741ea81a7cd5554",
        to_project_id="722513ed0a324dadaabe5b2d0fe848b9",
        created_at=datetime(2017, 8, 10, 12, 25, 40, 480424, tzinfo=UTC),
        updated_at=datetime(2017, 8, 14, 6, 41, 49, 381069, tzinfo=UTC),
        backup=Backup(
            id="066b1e37-9305-4057-97e5-2e99b21fc71d",
            name="lbf",
            status="available",
            size=1,
            volume_id="a7d7783f-02b7-4645-b0e3-61df63f0ba10",
            availability_zone="AZ1",
            created_at=datetime(2017, 8, 8, 4, 3, 27, 456859, tzinfo=UTC),
            updated_at=datetime(2017, 8, 8, 4, 3, 35, 109308, tzinfo=UTC),
            data_timestamp=datetime(2017, 8, 8, 4, 3, 27, 456859, tzinfo=UTC),
            fail_reason="Invalid InitiatorConnector protocol specified DSWARE",
        ),
    )


def test_missing_optional_fields_become_none_and_unknown_keys_are_ignored():
    (sharing,) = structure_sharings([{**MINIMAL, "deleted": False, "new_field": {"x": 1}}])
    assert sharing == BackupSharing("s", "b", "p", "q", None, None, None)


def test_backup_with_only_an_id_is_accepted():
    (sharing,) = structure_sharings([{**MINIMAL, "backup": {"id": "b"}}])
    assert sharing.backup == Backup(id="b")


@pytest.mark.parametrize(
    ("document", "expected"),
    [({"has_dependent_backup": True}, True), ({"has_dependent_backups": False}, False)],
)
def test_both_spellings_of_has_dependent_backups_are_read(document, expected):
    (sharing,) = structure_sharings([{**MINIMAL, "backup": {"id": "b", **document}}])
    assert sharing.backup is not None
    assert sharing.backup.has_dependent_backups is expected


def test_timestamp_with_a_zone_is_converted_to_utc():
    assert parse_timestamp("2017-08-10T14:25:40.480424+02:00") == datetime(
        2017, 8, 10, 12, 25, 40, 480424, tzinfo=UTC
    )


def test_timestamp_without_microseconds_is_read():
    assert parse_timestamp("2017-08-10T12:25:40") == datetime(2017, 8, 10, 12, 25, 40, tzinfo=UTC)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({**MINIMAL, "id": 3}, "shared[1].id: expected a string, got int"),
        (
            {k: v for k, v in MINIMAL.items() if k != "backup_id"},
            "shared[1].backup_id: is required",
        ),
        ({**MINIMAL, "created_at": "yesterday"}, "shared[1].created_at: Invalid isoformat"),
        ({**MINIMAL, "created_at": 17}, "shared[1].created_at: expected an ISO 8601"),
        (
            {**MINIMAL, "backup": {"id": "b", "size": "1"}},
            "shared[1].backup.size: expected an integer",
        ),
        (
            {**MINIMAL, "backup": {"id": "b", "size": True}},
            "shared[1].backup.size: expected an integer",
        ),
        ({**MINIMAL, "backup": {"size": 1}}, "shared[1].backup.id: is required"),
        ({**MINIMAL, "backup": [1]}, "shared[1].backup: expected an object or null"),
        (
            {**MINIMAL, "backup": {"id": "b", "is_incremental": "no"}},
            "backup.is_incremental: expected a boolean",
        ),
        ("sharing", "shared[1]: expected an object, got str"),
    ],
)
def test_wrong_shapes_name_the_bad_field(item, message):
    with pytest.raises(StructureError) as caught:
        structure_sharings([MINIMAL, item])
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-08-10T12:25:40Z", datetime(2017, 8, 10, 12, 25, 40, tzinfo=UTC)),
        ("2017-08-10T12:25:40.5-01:00", datetime(2017, 8, 10, 13, 25, 40, 500000, tzinfo=UTC)),
        ("2017-08-10", datetime(2017, 8, 10, tzinfo=UTC)),
    ],
)
def test_other_timestamp_forms_are_read_as_utc(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is UTC


# -- the exact words of each refusal, for a list and for one sharing ----------------------


@pytest.mark.parametrize(
    ("item", "field", "reason"),
    [
        ({**MINIMAL, "id": 3}, "id", "expected a string, got int 3"),
        (
            {**MINIMAL, "to_project_id": None},
            "to_project_id",
            "expected a string, got NoneType None",
        ),
        (
            {**MINIMAL, "backup": {"id": "b", "name": 5}},
            "backup.name",
            "expected a string or null, got int 5",
        ),
        (
            {**MINIMAL, "backup": {"id": "b", "size": "1"}},
            "backup.size",
            "expected an integer or null, got str '1'",
        ),
        (
            {**MINIMAL, "backup": {"id": "b", "size": True}},
            "backup.size",
            "expected an integer or null, got bool True",
        ),
        (
            {**MINIMAL, "backup": {"id": "b", "is_incremental": 0}},
            "backup.is_incremental",
            "expected a boolean or null, got int 0",
        ),
        ({**MINIMAL, "backup": "b"}, "backup", "expected an object or null, got str 'b'"),
        ({**MINIMAL, "backup": {"size": 1}}, "backup.id", "is required but missing"),
        (
            {**MINIMAL, "created_at": 17},
            "created_at",
            "expected an ISO 8601 timestamp or null, got int 17",
        ),
        (
            {**MINIMAL, "id": "x" * 100 + "\x1b"},
            "id",
            f"{'x' * 100 + chr(27)!r:.80} is not a plain ID (letters, digits, '-', '_')",
        ),
        (
            {**MINIMAL, "backup_id": "a/../b"},
            "backup_id",
            "'a/../b' is not a plain ID (letters, digits, '-', '_')",
        ),
        (
            {**MINIMAL, "from_project_id": "a..b"},
            "from_project_id",
            "'a..b' is not a plain ID (letters, digits, '-', '_')",
        ),
        (
            {**MINIMAL, "to_project_id": "=1+2"},
            "to_project_id",
            "'=1+2' is not a plain ID (letters, digits, '-', '_')",
        ),
    ],
)
def test_a_bad_field_is_named_with_its_path_and_the_reason_in_full(item, field, reason):
    with pytest.raises(StructureError) as listed:
        structure_sharings([MINIMAL, item], path="sharings")
    assert (listed.value.path, listed.value.reason) == (f"sharings[1].{field}", reason)
    assert str(listed.value) == f"sharings[1].{field}: {reason}"
    with pytest.raises(StructureError) as one:
        structure_sharing(item)
    assert (one.value.path, one.value.reason) == (f"shared.{field}", reason)
    with pytest.raises(StructureError) as named:
        structure_sharing(item, path="shared_to")
    assert named.value.path == f"shared_to.{field}"


@pytest.mark.parametrize("item", ["sharing", None, [MINIMAL]])
def test_an_item_that_is_not_an_object_is_refused_by_its_type(item):
    with pytest.raises(StructureError) as caught:
        structure_sharings([MINIMAL, item])
    assert str(caught.value) == f"shared[1]: expected an object, got {type(item).__name__}"
    with pytest.raises(StructureError) as one:
        structure_sharing(item)
    assert str(one.value) == f"shared: expected an object, got {type(item).__name__}"


def test_one_sharing_is_read_as_a_list_of_them_is():
    item = {**MINIMAL, "backup": None, "created_at": "", "updated_at": None}
    assert structure_sharing(DOCUMENT_EXAMPLE) == structure_sharings([DOCUMENT_EXAMPLE])[0]
    assert structure_sharing(item) == BackupSharing("s", "b", "p", "q", None, None, None)
    full = {
        **MINIMAL,
        "backup": {
            "id": "b",
            "name": None,
            "size": None,
            "is_incremental": None,
            "object_count": 0,
        },
    }
    assert structure_sharing(full).backup == Backup(id="b", object_count=0)
    assert structure_sharings([]) == ()


def test_the_field_named_is_the_bad_one_after_good_values_of_every_type():
    backup = {
        "id": "b",
        "name": "n",
        "size": 1,
        "created_at": "2017-08-08T04:03:27",
        "is_incremental": True,
        "object_count": 0,
        "snapshot_id": 7,
    }
    with pytest.raises(StructureError) as caught:
        structure_sharings([{**MINIMAL, "backup": backup}])
    assert str(caught.value) == "shared[0].backup.snapshot_id: expected a string or null, got int 7"


def test_a_value_holding_the_path_separator_is_quoted_whole():
    with pytest.raises(StructureError) as caught:
        structure_sharings([{**MINIMAL, "backup": {"id": "b", "size": "1 @ 2"}}])
    assert caught.value.path == "shared[0].backup.size"
    assert caught.value.reason == "expected an integer or null, got str '1 @ 2'"


class _Mapping(dict[str, object]):
    """A mapping that is not exactly a dict: JSON never decodes to one."""


def test_an_item_the_fast_path_refuses_but_diagnosis_cannot_name_is_refused_all_the_same():
    with pytest.raises(StructureError) as listed:
        structure_sharings([_Mapping(MINIMAL)], path="sharings")
    assert (listed.value.path, listed.value.reason) == ("sharings", "could not be read")
    with pytest.raises(StructureError) as one:
        structure_sharing(_Mapping(MINIMAL), path="sharing")
    assert (one.value.path, one.value.reason) == ("sharing", "could not be read")
