"""Every way the service can fail a listing surfaces as a typed error with project and offset."""

from __future__ import annotations

import pytest

from vbs_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ResponseDecodeError,
    TokenAuth,
    VBSError,
)
from vbs_async.testing import Emulator, Fault

MINIMAL = (
    b'{"shared": [{"id": "s", "backup_id": "b", "from_project_id": "p", "to_project_id": "q"}]}'
)
STATUSES = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: APIError,
    406: APIError,
    408: APIError,
    409: ConflictError,
    501: APIError,
}


@pytest.mark.parametrize("form", ["error", "openstack", "gateway"])
@pytest.mark.parametrize("status", sorted(STATUSES))
async def test_each_error_status_and_body_form_mid_listing(make_client, status, form):
    async with Emulator(projects=1, sharings_per_project=30) as emu:
        project = emu.project_ids[0]
        client = make_client(emu)
        iterator = client.iter_sharings(project, page_size=10)
        got = []
        emu.inject(
            Fault.answer(status, form=form, message="the reason", code="VolumeBackup.0099"), times=1
        )
        # The first request fails.
        with pytest.raises(APIError) as caught:
            got.extend([s async for s in iterator])
        error = caught.value
        assert isinstance(error, STATUSES[status])
        assert isinstance(error, VBSError)
        assert error.status == status
        assert error.message == "the reason"
        assert error.code == ("VolumeBackup.0099" if form != "openstack" else str(status))
        assert error.request_id  # from the gateway body or the X-Request-Id header
        assert (error.project_id, error.offset) == (project, 0)
        assert got == []


async def test_error_on_a_later_page_names_that_pages_offset(make_client):
    async with Emulator(projects=1, sharings_per_project=50) as emu:
        project = emu.project_ids[0]
        client = make_client(emu)
        got = []

        async def drain() -> None:
            async for sharing in client.iter_sharings(project, page_size=10):
                got.append(sharing)
                if len(got) == 10:
                    emu.inject(Fault.answer(404))

        with pytest.raises(NotFoundError) as caught:
            await drain()
        assert caught.value.offset == 8  # 10 reached, minus the 2 re-read
        assert len(got) == 10


async def test_wrong_token_is_an_authentication_error_in_gateway_form(make_client, emulator):
    client = make_client(emulator, auth=TokenAuth("not-the-token"))
    with pytest.raises(AuthenticationError) as caught:
        await client.list_sharings(emulator.project_ids[0])
    assert caught.value.code == "APIGW.0301"
    assert "not-the-token" not in str(caught.value)


async def test_emulator_rejects_a_bad_sort_key_with_400(make_client, emulator):
    # The client refuses bad sort keys itself; send one raw to check the emulator's answer.
    client = make_client(emulator)
    session = client._transport._http()
    async with session.get(
        f"{emulator.url}/v2/{emulator.project_ids[0]}/os-vendor-backup-sharing/detail?sort_key=colour",
        headers={"X-Auth-Token": emulator.token},
    ) as answer:
        assert answer.status == 400
        assert "sort_key" in (await answer.json())["error"]["message"]
    async with session.get(
        f"{emulator.url}/v2/{emulator.project_ids[0]}/os-vendor-backup-sharing/detail?offset=-1",
        headers={"X-Auth-Token": emulator.token},
    ) as answer:
        assert answer.status == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b'{"shared": null}', "'shared' must be a list, it is missing"),
        (b'{"sharings": []}', "'shared' must be a list, it is missing"),
        (b'{"shared": [{"id": "s1"}]}', "shared[0].backup_id: is required"),
        (
            (
                b'{"shared": [{"id": "s", "backup_id": "b", "from_project_id": "p", "to_project_id": "q", '
                b'"backup": {"id": "b", "size": "big"}}]}'
            ),
            "shared[0].backup.size: expected an integer",
        ),
        (
            (
                b'{"shared": [{"id": "s", "backup_id": "b", "from_project_id": "p", "to_project_id": "q", '
                b'"created_at": "last week"}]}'
            ),
            "shared[0].created_at",
        ),
    ],
)
async def test_malformed_2xx_bodies_raise_decode_error(make_client, emulator, body, message):
    project = emulator.project_ids[0]
    emulator.inject(Fault.raw(200, body))
    with pytest.raises(ResponseDecodeError) as caught:
        await make_client(emulator).list_sharings(project)
    assert message in str(caught.value)
    assert (caught.value.project_id, caught.value.offset) == (project, 0)
    assert isinstance(caught.value, ValueError)


def test_a_code_repeating_the_status_is_shown_once_and_an_empty_project_never():
    refused = AuthenticationError("IAM refused the password", status=401, code="401")
    assert str(refused) == "HTTP 401: IAM refused the password"
    gateway = AuthenticationError("bad signature", status=401, code="APIGW.0301")
    assert str(gateway) == "HTTP 401 APIGW.0301: bad signature"
    assert str(VBSError("cannot connect to IAM", project_id="")) == "cannot connect to IAM"
