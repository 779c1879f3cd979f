"""Building requests as plain values (`_requests`), with their argument checks."""

from __future__ import annotations

import attrs
import orjson
import pytest

from vbs_async._requests import (
    FilterKeywords,
    ListingKeywords,
    ListingOptions,
    SharingFilters,
    SortOrder,
    cancel_sharing_request,
    count_sharings_request,
    get_sharing_request,
    list_sharings_request,
    share_backup_request,
    text_filters,
)

PROJECT = "c13f5220dc1949b0b741ea81a7cd5554"


def test_list_request_carries_filters_sort_limit_and_offset_in_order():
    request = list_sharings_request(
        PROJECT,
        SharingFilters(share_to_me=True, name="nightly backup", availability_zone="eu-de-01"),
        SortOrder("created_at", "asc"),
        offset=200,
        limit=100,
    )
    assert request.method == "GET"
    assert request.path == f"/v2/{PROJECT}/os-vendor-backup-sharing/detail"
    assert request.query == (
        ("share_to_me", "true"),
        ("name", "nightly backup"),
        ("availability_zone", "eu-de-01"),
        ("avalilability_zone", "eu-de-01"),
        ("sort_key", "created_at"),
        ("sort_dir", "asc"),
        ("limit", "100"),
        ("offset", "200"),
    )
    assert request.target.endswith(
        "?share_to_me=true&name=nightly%20backup&availability_zone=eu-de-01"
        "&avalilability_zone=eu-de-01&sort_key=created_at&sort_dir=asc"
        "&limit=100&offset=200"
    )
    assert request.offset == 200


def test_none_filters_are_not_sent_and_false_is_sent_as_false():
    request = count_sharings_request(PROJECT, SharingFilters(share_to_me=False))
    assert request.query == (("share_to_me", "false"),)
    assert count_sharings_request(PROJECT, SharingFilters()).query == ()


def test_query_values_are_percent_encoded():
    request = count_sharings_request(PROJECT, SharingFilters(name="a&b=c/ü"))
    assert request.query_string == "name=a%26b%3Dc%2F%C3%BC"


def test_share_request_body_names_backup_and_targets():
    request = share_backup_request(PROJECT, "b1", ["p2", "p3"])
    assert (request.method, request.path) == ("POST", f"/v2/{PROJECT}/os-vendor-backup-sharing")
    assert orjson.loads(request.body or b"") == {
        "shared": {"backup_id": "b1", "to_project_ids": ["p2", "p3"]}
    }
    assert not request.idempotent


def test_cancel_requests_say_which_kind_of_id():
    by_sharing = cancel_sharing_request(PROJECT, "s1", is_backup_id=False)
    by_backup = cancel_sharing_request(PROJECT, "b1", is_backup_id=True)
    assert by_sharing.target == f"/v2/{PROJECT}/os-vendor-backup-sharing/s1?is_backup_id=false"
    assert by_backup.target == f"/v2/{PROJECT}/os-vendor-backup-sharing/b1?is_backup_id=true"
    assert by_sharing.idempotent


def test_get_request_path():
    assert get_sharing_request(PROJECT, "s1").path == f"/v2/{PROJECT}/os-vendor-backup-sharing/s1"


@pytest.mark.parametrize(
    "bad_id",
    ["", "a/b", "a?b", "a#b", "a%2Fb", "a b", "a\tb", "a\nb", "..", "a..b", "\x00", 7, None],
)
def test_ids_that_could_change_the_path_are_refused(bad_id):
    with pytest.raises(ValueError, match="project_id"):
        get_sharing_request(bad_id, "s1")
    with pytest.raises(ValueError, match="sharing_id"):
        get_sharing_request(PROJECT, bad_id)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"sort_key": "colour"}, "sort_key must be one of"),
        ({"sort_dir": "up"}, "sort_dir must be one of"),
        ({"page_size": 0}, "page_size must be >= 1"),
        ({"page_size": 2.5}, "page_size must be an integer"),
        ({"start_offset": -1}, "start_offset must be >= 0"),
        ({"max_items": -1}, "max_items must be >= 0"),
        ({"end_check": "never"}, "end_check must be one of"),
        ({"prefetch": -2}, "prefetch must be >= 0"),
        ({"share_to_me": "yes"}, "share_to_me must be True, False or None"),
        ({"volume_id": "v/1"}, "volume_id"),
        ({"backup_id": ""}, "backup_id must not be empty"),
        ({"from_project_id": "a b"}, "from_project_id"),
        ({"to_project_id": "x?y"}, "to_project_id"),
        ({"name": "a\x00"}, "name must be non-empty"),
        ({"status": 5}, "status must be a string"),
        ({"availability_zone": ""}, "availability_zone must be non-empty"),
    ],
)
def test_invalid_listing_keywords_raise_value_error_naming_the_argument(keywords, message):
    with pytest.raises(ValueError, match=message):
        ListingOptions.from_keywords(**keywords)


def test_every_documented_sort_key_is_accepted():
    for key in (
        "name",
        "status",
        "container_format",
        "disk_format",
        "size",
        "id",
        "created_at",
        "updated_at",
    ):
        assert ListingOptions.from_keywords(sort_key=key, sort_dir="desc").sort.query() == (
            ("sort_key", key),
            ("sort_dir", "desc"),
        )


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([], "at least one"),
        ("p2", "a list"),
        (["p2", "p2"], "twice"),
        (["ok", "no/pe"], "to_project_ids"),
    ],
)
def test_bad_share_targets_are_refused(targets, message):
    with pytest.raises(ValueError, match=message):
        share_backup_request(PROJECT, "b1", targets)


def test_the_keyword_typeddicts_name_exactly_the_options_the_classes_define():
    filters = {field.name for field in attrs.fields(SharingFilters)}
    assert set(FilterKeywords.__annotations__) == filters
    paging = {field.name for field in attrs.fields(ListingOptions)} - {"filters", "sort"}
    assert set(ListingKeywords.__annotations__) == filters | {"sort_key", "sort_dir"} | paging


def test_the_command_offers_one_option_per_text_filter():
    from vbs_async.cli._commands import crawl  # noqa: PLC0415

    flags = {opt for param in crawl.params for opt in getattr(param, "opts", [])}
    for name, _ in text_filters():
        assert f"--{name.replace('_', '-')}" in flags
