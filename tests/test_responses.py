"""Deciding what an answer means (`_responses`): error classes and fields, body shapes."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from vbs_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ResponseDecodeError,
    ServerError,
)
from vbs_async._requests import Request
from vbs_async._responses import (
    Response,
    check_response,
    read_count,
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
