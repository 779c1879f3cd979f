"""Deciding what an answer means (`_responses`): error classes and fields, body shapes."""

from __future__ import annotations

import time
from email.utils import formatdate, parsedate_to_datetime

import orjson
import pytest
from multidict import CIMultiDict

from vbs_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
    Project,
    RateLimitedError,
    ResponseDecodeError,
    ServerError,
)
from vbs_async._requests import Request
from vbs_async._responses import (
    Response,
    _clock_hint,
    check_response,
    read_count,
    read_projects,
    read_sharing,
    read_sharing_list,
)

LIST = Request("GET", "/v2/p1/os-vendor-backup-sharing/detail", "p1", offset=300)


def answer(status, body=b"", **headers):
    return Response(status, CIMultiDict(headers), body)


def raised(response) -> APIError:
    with pytest.raises(APIError) as caught:
        check_response(response, LIST)
    return caught.value


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (405, APIError),
        (409, ConflictError),
        (429, RateLimitedError),
        (500, ServerError),
        (501, ServerError),
        (503, ServerError),
    ],
)
def test_each_status_gets_its_class(status, cls):
    error = raised(answer(status, b'{"error": {"message": "m", "code": "c"}}'))
    assert type(error) is cls
    assert error.status == status


def test_vbs_error_form_fills_code_and_message_and_context():
    error = raised(
        answer(
            404,
            b'{"error": {"message": "no such backup", "code": "VolumeBackup.0041"}}',
            **{"X-Request-Id": "req-9"},
        )
    )
    assert (error.code, error.message, error.request_id) == (
        "VolumeBackup.0041",
        "no such backup",
        "req-9",
    )
    assert (error.project_id, error.offset) == ("p1", 300)
    assert (
        str(error)
        == "HTTP 404 VolumeBackup.0041: no such backup (project p1, offset 300, request req-9)"
    )


def test_openstack_form_fills_code_and_message():
    error = raised(answer(400, b'{"badRequest": {"message": "Invalid sort_key", "code": 400}}'))
    assert (error.code, error.message, error.request_id) == ("400", "Invalid sort_key", None)


def test_gateway_form_fills_code_message_and_request_id_from_the_body():
    body = (
        b'{"error_msg": "Incorrect IAM authentication information", '
        b'"error_code": "APIGW.0301", "request_id": "abc"}'
    )
    error = raised(answer(401, body, **{"X-Request-Id": "from-header"}))
    assert (error.code, error.message, error.request_id) == (
        "APIGW.0301",
        "Incorrect IAM authentication information",
        "abc",
    )


def test_unrecognised_error_body_gives_right_class_and_first_200_characters():
    error = raised(answer(502, b"<html>" + b"x" * 500))
    assert type(error) is ServerError
    assert error.message == "<html>" + "x" * 194
    assert error.code is None


def test_empty_error_body_still_says_something():
    assert raised(answer(503)).message == "(no body)"


def test_retry_after_is_read_from_429_and_503():
    assert raised(answer(429, **{"Retry-After": "7"})).retry_after == 7.0
    assert raised(answer(503, **{"Retry-After": "2"})).retry_after == 2.0
    assert raised(answer(500, **{"Retry-After": "2"})).retry_after is None


def test_a_redirect_is_an_error_not_followed():
    error = raised(answer(302, Location="https://elsewhere.example/"))
    assert type(error) is APIError
    assert error.status == 302
    assert "redirect" in error.message


def test_2xx_passes():
    check_response(answer(200, b"{}"), LIST)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "a JSON list, not an object"),
        (b"{}", "'shared' must be a list, it is missing"),
        (b'{"shared": {}}', "'shared' must be a list, it is a dict"),
        (b'{"shared": [{"id": "s"}]}', "shared[0].backup_id: is required"),
        (
            b'{"shared": [{"id": "s", "backup_id": "b", "from_project_id": "p", "to_project_id": 1}]}',
            "shared[0].to_project_id: expected a string",
        ),
    ],
)
def test_malformed_list_bodies_raise_decode_error_with_project_and_offset(body, message):
    with pytest.raises(ResponseDecodeError) as caught:
        read_sharing_list(body, LIST)
    assert message in str(caught.value)
    assert (caught.value.project_id, caught.value.offset) == ("p1", 300)
    assert "project p1, offset 300" in str(caught.value)


def test_count_and_get_bodies_are_checked():
    assert read_count(b'{"count": 12}', LIST) == 12
    with pytest.raises(ResponseDecodeError, match="'count' must be a non-negative integer"):
        read_count(b'{"count": "12"}', LIST)
    with pytest.raises(ResponseDecodeError, match="'shared' must be an object"):
        read_sharing(b'{"shared": []}', LIST)


@pytest.mark.parametrize("header", ["X-Openstack-Request-Id", "X-Request-Id"])
def test_the_request_id_comes_from_either_header_when_the_body_has_none(header):
    error = raised(answer(403, b'{"error": {"message": "no", "code": "X"}}', **{header: "req-7"}))
    assert error.request_id == "req-7"
    assert str(error).endswith("request req-7)")


def test_a_count_of_zero_is_a_count_a_negative_one_is_not():
    assert read_count(b'{"count": 0}', LIST) == 0
    for body in (b'{"count": -1}', b'{"count": true}', b'{"count": 1.5}', b"{}"):
        with pytest.raises(ResponseDecodeError, match="'count' must be a non-negative integer"):
            read_count(body, LIST)


# -- survivors of the mutation run, killed ----------------------------------------------------


@pytest.mark.parametrize("status", [300, 301, 302])
def test_any_3xx_is_an_error_naming_the_redirect_never_followed(status):
    error = raised(answer(status, b"", Location="https://elsewhere.example"))
    assert error.status == status
    assert error.message == "the service answered with a redirect, which vbs_async never follows"


def test_299_is_success_and_a_body_that_is_not_utf8_still_gives_a_message():
    check_response(answer(299), LIST)  # no error
    error = raised(answer(500, b"\xff\xfe gateway broke"))
    assert "gateway broke" in error.message
    assert "\ufffd" in error.message


def test_each_error_body_form_is_recognised_by_any_one_of_its_fields():
    only_code = raised(answer(429, b'{"error_code": "APIGW.0308"}'))
    assert only_code.code == "APIGW.0308"
    only_message = raised(answer(400, b'{"error_msg": "bad limit"}'))
    assert (only_message.code, only_message.message) == (None, "bad limit")
    vbs_code = raised(answer(404, b'{"other": 1, "itemNotFound": {"code": 404}}'))
    assert vbs_code.code == "404"
    vbs_message = raised(answer(404, b'{"itemNotFound": {"message": "gone"}}'))
    assert (vbs_message.code, vbs_message.message) == (None, "gone")
    neither = raised(answer(400, b'{"error": {"detail": "x"}}'))
    assert (neither.code, neither.message) == (None, '{"error": {"detail": "x"}}')


def test_a_field_that_is_an_object_or_a_list_is_no_code_or_message():
    body = b'{"error_code": ["A", "B"], "error_msg": {"text": "x"}}'
    error = raised(answer(400, body))
    assert (error.code, error.message) == (None, body.decode())  # the body, shown as it is
    numbered = raised(answer(400, b'{"error_code": 4001, "error_msg": "bad"}'))
    assert (numbered.code, numbered.message) == ("4001", "bad")


def test_a_list_answer_that_does_not_fit_names_its_project_and_offset():
    with pytest.raises(ResponseDecodeError) as caught:
        read_sharing_list(b'{"shared": [{"id": 5}]}', LIST)
    assert (caught.value.project_id, caught.value.offset) == ("p1", 300)


# -- the clock hint of a signature refused for its time, in full -----------------------------

RULE = (
    "the gateway refuses signatures more than 15 minutes from its clock: "
    "set this machine's clock right (NTP)"
)
SERVER_NOW = "Wed, 25 Nov 2026 12:00:00 GMT"
SERVER_SECONDS = parsedate_to_datetime(SERVER_NOW).timestamp()


@pytest.mark.parametrize(
    ("date", "skew", "hint"),
    [
        (None, 0, f" (is this machine's clock off? {RULE})"),
        ("not a date", 0, f" (is this machine's clock off? {RULE})"),
        (
            SERVER_NOW,
            59.5,
            " (this machine's clock agrees with the server's Date header: check the keys)",
        ),
        (
            SERVER_NOW,
            -59.5,
            " (this machine's clock agrees with the server's Date header: check the keys)",
        ),
        (
            SERVER_NOW,
            60,
            f" (this machine's clock is 1 minutes ahead of the server's Date header; {RULE})",
        ),
        (
            SERVER_NOW,
            7200,
            f" (this machine's clock is 120 minutes ahead of the server's Date header; {RULE})",
        ),
        (
            SERVER_NOW,
            -7200,
            f" (this machine's clock is 120 minutes behind the server's Date header; {RULE})",
        ),
    ],
)
def test_the_clock_hint_in_full_words(date, skew, hint):
    assert _clock_hint(date, now=SERVER_SECONDS + skew) == hint


def test_an_expired_signature_keeps_the_gateway_s_words_before_the_clock_hint():
    date = formatdate(time.time() - 7200, usegmt=True)
    body = b'{"error_code": "APIGW.0301", "error_msg": "Signature expired"}'
    error = raised(answer(401, body, Date=date))
    assert error.message.startswith("Signature expired (this machine's clock is 120 minutes ahead")


# -- each decode error in full, naming the call --------------------------------------------

GET = Request("GET", "/v2/p1/os-vendor-backup-sharing/s1", "p1")
PROJECTS = Request("GET", "/v3/auth/projects", "")


def test_a_count_that_is_not_json_or_not_an_object_is_a_decode_error_naming_the_call():
    with pytest.raises(ResponseDecodeError) as caught:
        read_count(b"[1]", LIST)
    assert str(caught.value) == (
        "unexpected answer to GET /v2/p1/os-vendor-backup-sharing/detail: "
        "the body is a JSON list, not an object (project p1, offset 300)"
    )


def test_a_sharing_that_does_not_fit_names_its_field_and_the_call():
    with pytest.raises(ResponseDecodeError) as caught:
        read_sharing(b'{"shared": {"id": 3}}', GET)
    assert str(caught.value) == (
        "unexpected answer to GET /v2/p1/os-vendor-backup-sharing/s1: "
        "shared.id: expected a string, got int 3 (project p1)"
    )


def test_more_items_than_the_limit_name_the_page():
    body = b'{"shared": [' + b",".join([b'{"id": "s"}'] * 3) + b"]}"
    with pytest.raises(PaginationError) as caught:
        read_sharing_list(body, LIST, limit=2)
    assert (caught.value.project_id, caught.value.offset) == ("p1", 300)
    assert str(caught.value) == "the server returned 3 items for limit 2 (project p1, offset 300)"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"projects": {}}', "'projects' must be a list"),
        (b'{"projects": ["p"]}', "a project is not an object"),
        (b'{"projects": [{"id": "p", "name": 5}]}', "a project has no text id or name"),
        (b'{"projects": [{"id": "", "name": "eu-de_a"}]}', "a project has no text id or name"),
        (b'{"projects": [{"name": "eu-de_a"}]}', "a project has no text id or name"),
        (
            b'{"projects": [{"id": "p", "name": "eu-de_a", "enabled": null}]}',
            "project p's 'enabled' is not a bool",
        ),
    ],
)
def test_each_project_list_that_does_not_fit_in_full_words(body, reason):
    with pytest.raises(ResponseDecodeError) as caught:
        read_projects(body, PROJECTS)
    assert str(caught.value) == f"unexpected answer to GET /v3/auth/projects: {reason}"
    assert caught.value.project_id is None


def test_a_project_without_enabled_is_enabled_and_mos_is_left_out():
    body = (
        b'{"projects": [{"id": "p1", "name": "eu-de_a"}, {"id": "p2", "name": "MOS"},'
        b' {"id": "p3", "name": "eu-nl_b", "enabled": false}]}'
    )
    assert read_projects(body, PROJECTS) == [
        Project("p1", "eu-de_a", "eu-de", enabled=True),
        Project("p3", "eu-nl_b", "eu-nl", enabled=False),
    ]


@pytest.mark.parametrize(("domain_id", "read"), [("d1", "d1"), ("", None), (5, None), (None, None)])
def test_a_project_s_domain_id_is_kept_only_as_text(domain_id, read):
    body = orjson.dumps({"projects": [{"id": "p1", "name": "eu-de_a", "domain_id": domain_id}]})
    (project,) = read_projects(body, PROJECTS)
    assert project.domain_id == read
