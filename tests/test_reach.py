"""Reaching real accounts: endpoints from the token catalog, agencies, project discovery, TLS."""

from __future__ import annotations

import logging

import pytest

from vbs_async import (
    AgencyAuth,
    AKSKAuth,
    AuthenticationError,
    ConfigurationError,
    PasswordAuth,
    Project,
    RetryPolicy,
    TokenAuth,
    TransportError,
    VBSClient,
    tls_context,
)
from vbs_async._endpoints import catalog_endpoint, read_catalog
from vbs_async._session import VBS_SERVICE
from vbs_async.testing import Emulator

from ._helpers import closed_port

PASSWORD = "pa55-VERY-SECRET-word"
FAST = RetryPolicy(attempts=2, wait_initial=0.001, wait_max=0.002, wait_jitter=0.0)


def alice(emu: Emulator, password: str = PASSWORD) -> PasswordAuth:
    return PasswordAuth(emu.url + "/v3", "alice", password, "emulator-domain")


# -- endpoints -------------------------------------------------------------------------


async def test_without_an_endpoint_vbs_is_found_in_each_token_s_catalog():
    # eu-de's known endpoint is a real host this machine cannot reach: only the
    # catalog (pointing at the emulator) makes the crawl succeed.
    async with Emulator(projects=3, sharings_per_project=7, users={"alice": PASSWORD}) as emu:
        client = VBSClient(auth=alice(emu), region="eu-de", retry=FAST)
        async with client:
            assert client.endpoint is None
            results = [r async for r in client.crawl(emu.project_ids)]
    assert [r.error for r in results] == [None, None, None]
    assert sum(len(r.sharings) for r in results) == 21


# Catalog entries as recorded from Open Telekom Cloud tokens (URLs shortened).
OTC_CATALOG = {
    "catalog": [
        {
            "type": "volumev2",
            "endpoints": [
                {
                    "interface": "public",
                    "region": "eu-de",
                    "url": "https://evs.eu-de.otc.t-systems.com/v2/p1",
                }
            ],
        },
        {
            "type": "vbsv2",
            "endpoints": [
                {
                    "interface": "public",
                    "region_id": "eu-de",
                    "region": "eu-de",
                    "url": "https://vbs.eu-de.otc.t-systems.com/v2/p1",
                }
            ],
        },
        {
            "type": "vbs",
            "endpoints": [
                {"interface": "internal", "region": "eu-de", "url": "https://internal.example/v2/"},
                {"interface": "public", "region": "eu-de", "url": "https://vbs.example:8443/v2/"},
            ],
        },
    ]
}


def test_the_catalog_prefers_vbs_then_vbsv2_public_in_the_region():
    catalog = read_catalog(OTC_CATALOG)
    assert catalog_endpoint(catalog, ("vbs", "vbsv2"), "eu-de") == "https://vbs.example:8443"
    assert catalog_endpoint(catalog, ("vbsv2",), "eu-de") == "https://vbs.eu-de.otc.t-systems.com"
    assert catalog_endpoint(catalog, ("vbs", "vbsv2"), None) == "https://vbs.example:8443"
    assert catalog_endpoint(catalog, ("vbs", "vbsv2"), "eu-nl") is None
    assert read_catalog({"catalog": "junk"}) == ()
    assert read_catalog({"catalog": [{"type": "vbs", "endpoints": [{"url": 3}]}]}) == ()


def test_a_catalog_cannot_send_tokens_over_plain_http():
    catalog = read_catalog(
        {
            "catalog": [
                {
                    "type": "vbs",
                    "endpoints": [
                        {
                            "interface": "public",
                            "region": "eu-de",
                            "url": "http://vbs.evil.example/v2/",
                        }
                    ],
                }
            ]
        }
    )
    with pytest.raises(ConfigurationError, match=r"plain http.*VBS_ENDPOINT"):
        catalog_endpoint(catalog, ("vbs",), "eu-de")


def test_known_regions_give_their_endpoints_and_others_an_error_naming_vbs_endpoint():
    swiss = VBSClient(auth=TokenAuth("t"), region="eu-ch2")
    # No catalog is at hand with a ready token: the region table decides.
    assert swiss.endpoint == "https://vbs.eu-ch2.sc.otc.t-systems.com"
    assert swiss._iam_endpoint == "https://iam-pub.eu-ch2.sc.otc.t-systems.com"
    assert VBSClient(auth=TokenAuth("t"), region="eu-de")._fallback_endpoint == (
        "https://vbs.eu-de.otc.t-systems.com"
    )
    for region in ("eu-xx", None):
        with pytest.raises(ConfigurationError, match="VBS_ENDPOINT"):
            VBSClient(auth=TokenAuth("t"), region=region)


async def test_a_catalog_without_vbs_is_a_configuration_error_naming_vbs_endpoint():
    async with Emulator(projects=1, users={"alice": PASSWORD}) as emu:
        emu.identity.catalog = lambda _project: []
        async with VBSClient(auth=alice(emu), region="eu-xx", retry=FAST) as client:
            with pytest.raises(ConfigurationError, match="VBS_ENDPOINT") as caught:
                await client.count_sharings(emu.project_ids[0])
    assert caught.value.project_id == emu.project_ids[0]


@pytest.mark.parametrize(
    ("region", "where"), [(None, ""), ("eu-xx", " in region eu-xx")], ids=["none", "unknown"]
)
async def test_no_vbs_in_the_catalog_nor_the_table_is_refused_in_full_words(region, where):
    async with Emulator(projects=1, users={"alice": PASSWORD}) as emu:
        emu.identity.catalog = lambda _project: []
        async with VBSClient(auth=alice(emu), region=region, retry=FAST) as client:
            with pytest.raises(ConfigurationError) as caught:
                await client.count_sharings(emu.project_ids[0])
    assert str(caught.value) == (
        "the token's service catalog names no VBS endpoint (type vbs or vbsv2)"
        f"{where}; set VBS_ENDPOINT (project {emu.project_ids[0]})"
    )


async def test_the_catalog_s_endpoint_of_the_configured_region_is_taken_before_others():
    elsewhere = f"http://127.0.0.1:{closed_port()}/v2/"  # nothing answers there
    async with Emulator(projects=1, sharings_per_project=2, users={"alice": PASSWORD}) as emu:
        own = {"interface": "public", "region": emu.region, "url": emu.url + "/v2/"}
        other = {"interface": "public", "region": "eu-xx", "url": elsewhere}
        emu.identity.catalog = lambda _project: [
            {"type": "vbs", "name": "vbs", "endpoints": [other, own]}
        ]
        async with VBSClient(auth=alice(emu), region=emu.region, retry=FAST) as client:
            assert await client.count_sharings(emu.project_ids[0]) == 2


async def test_a_catalog_without_vbs_falls_back_to_the_region_s_published_endpoint(monkeypatch):
    async with Emulator(projects=1, sharings_per_project=2, users={"alice": PASSWORD}) as emu:
        emu.identity.catalog = lambda _project: []
        # The table's eu-de endpoint is a real host: here it is the emulator.
        monkeypatch.setitem(VBS_SERVICE.known_endpoints, "eu-de", emu.url)
        async with VBSClient(auth=alice(emu), region="eu-de", retry=FAST) as client:
            assert await client.count_sharings(emu.project_ids[0]) == 2


# -- agencies --------------------------------------------------------------------------


async def test_an_agency_crawl_of_5_projects_costs_5_agency_token_requests():
    async with Emulator(
        projects=5,
        sharings_per_project=4,
        users={"alice": PASSWORD},
        agencies=[("other-account", "inventory")],
    ) as emu:
        auth = AgencyAuth(alice(emu), agency_domain="other-account", agency_name="inventory")
        async with VBSClient(emu.url, auth=auth, retry=FAST) as client:
            results = [r async for r in client.crawl(emu.project_ids, page_size=2)]
            assert client.auth is auth
    assert [r.error for r in results] == [None] * 5
    assert sum(len(r.sharings) for r in results) == 20
    assert sorted(p for _, _, p in emu.identity.agency_token_requests) == sorted(emu.project_ids)
    assert {(u, a) for u, a, _ in emu.identity.agency_token_requests} == {("alice", "inventory")}
    # The delegated user authenticated once, in its own domain.
    assert emu.identity.token_requests == [("alice", None)]
    assert auth.token_requests == 5


async def test_an_agency_lists_the_delegating_account_s_projects():
    async with Emulator(
        projects=3, users={"alice": PASSWORD}, agencies=[("other-account", "inventory")]
    ) as emu:
        auth = AgencyAuth(alice(emu), agency_domain="other-account", agency_name="inventory")
        async with VBSClient(emu.url, auth=auth, retry=FAST) as client:
            projects = await client.list_projects(region="eu-de")
    assert sorted(p.id for p in projects) == sorted(emu.project_ids)
    assert emu.identity.agency_token_requests == [("alice", "inventory", None)]


async def test_an_agency_can_be_assumed_with_a_temporary_key_pair():
    async with Emulator(
        projects=2,
        sharings_per_project=3,
        access_keys={"AK1": "SK1-secret-value"},
        security_tokens={"AK1": "temporary-security-token"},
        agencies=[("other-account", "inventory")],
    ) as emu:
        base = AKSKAuth("AK1", "SK1-secret-value", security_token="temporary-security-token")
        auth = AgencyAuth(
            base, agency_domain="other-account", agency_name="inventory", auth_url=emu.url
        )
        async with VBSClient(emu.url, auth=auth, retry=FAST) as client:
            results = [r async for r in client.crawl(emu.project_ids)]
    assert [r.error for r in results] == [None, None]
    assert len(emu.identity.agency_token_requests) == 2


async def test_an_unknown_agency_is_an_authentication_error_without_secrets():
    async with Emulator(projects=1, users={"alice": PASSWORD}) as emu:
        auth = AgencyAuth(alice(emu), agency_domain="other-account", agency_name="nope")
        async with VBSClient(emu.url, auth=auth, retry=FAST) as client:
            with pytest.raises(AuthenticationError, match="agency") as caught:
                await client.count_sharings(emu.project_ids[0])
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(auth)


def test_agency_arguments_are_checked_before_any_request():
    with pytest.raises(ValueError, match="base"):
        AgencyAuth(TokenAuth("t"), agency_domain="d", agency_name="a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="auth_url"):
        AgencyAuth(AKSKAuth("ak", "sk"), agency_domain="d", agency_name="a")
    with pytest.raises(ValueError, match="agency_name"):
        AgencyAuth(AKSKAuth("ak", "sk"), agency_domain="d", agency_name="", auth_url="https://i")


# -- temporary keys ----------------------------------------------------------------------


async def test_temporary_keys_are_accepted_only_with_their_security_token():
    async with Emulator(
        projects=1,
        sharings_per_project=2,
        access_keys={"AK1": "SK1-secret-value"},
        security_tokens={"AK1": "temporary-security-token"},
    ) as emu:
        project = emu.project_ids[0]
        good = AKSKAuth("AK1", "SK1-secret-value", security_token="temporary-security-token")
        async with VBSClient(emu.url, auth=good, retry=FAST) as client:
            assert await client.count_sharings(project) == 2
        async with VBSClient(emu.url, auth=AKSKAuth("AK1", "SK1-secret-value")) as client:
            with pytest.raises(AuthenticationError, match="X-Security-Token"):
                await client.count_sharings(project)


# -- discovery ---------------------------------------------------------------------------


async def test_list_projects_gives_the_enabled_projects_of_the_region_without_mos():
    async with Emulator(projects=4, users={"alice": PASSWORD}) as emu:
        client = VBSClient(emu.url, auth=alice(emu), retry=FAST)
        async with client:
            mine = await client.list_projects(region="eu-de")
            every = await client.list_projects(include_disabled=True)
            with_mos = await client.list_projects(include_disabled=True, include_mos=True)
    assert sorted(p.id for p in mine) == sorted(emu.project_ids)
    assert {p.name for p in with_mos} - {p.name for p in every} == {"MOS"}
    assert all(p.enabled and p.region == "eu-de" for p in mine)
    assert mine[0] == Project(
        emu.project_ids[0], "eu-de_p00000", "eu-de", enabled=True, domain_id=emu.identity.domain_id
    )
    names = {p.name for p in every}
    assert "MOS" not in names
    assert {"eu-de_disabled", "eu-xx_elsewhere"} <= names
    # One domain-scoped token served every listing.
    assert emu.identity.token_requests == [("alice", None)]


async def test_list_projects_with_a_key_pair_uses_the_region_s_iam_or_the_one_given():
    async with Emulator(projects=2, access_keys={"AK1": "SK1-secret-value"}) as emu:
        auth = AKSKAuth("AK1", "SK1-secret-value")
        async with VBSClient(emu.url, auth=auth, iam_endpoint=emu.url + "/v3") as client:
            assert len(await client.list_projects("eu-de")) == 2
        async with VBSClient(emu.url, auth=auth) as client:
            with pytest.raises(ConfigurationError, match="iam_endpoint"):
                await client.list_projects()
            with pytest.raises(ValueError, match="region"):
                await client.list_projects(region="")


def test_a_project_s_region_is_its_name_s_prefix():
    from vbs_async._models import region_of  # noqa: PLC0415

    assert region_of("eu-de_prod") == "eu-de"
    assert region_of("eu-de") == "eu-de"
    assert region_of("eu-ch2_a_b") == "eu-ch2"


# -- a password IAM refused ----------------------------------------------------------------


async def test_a_refused_password_is_sent_to_iam_once_for_a_whole_crawl():
    async with Emulator(projects=50, users={"alice": PASSWORD}) as emu:
        auth = alice(emu, password="wrong-password-123")
        async with VBSClient(emu.url, auth=auth, retry=FAST) as client:
            results = [r async for r in client.crawl(emu.project_ids, max_projects=8)]
    assert all(isinstance(r.error, AuthenticationError) for r in results)
    assert auth.token_requests == 1
    assert emu.unauthorized == 0  # VBS never saw a request either
    assert [r.path for r in emu.requests] == ["/v3/auth/tokens"]
    assert all("wrong-password-123" not in str(r.error) for r in results)


# -- TLS -----------------------------------------------------------------------------------


async def test_a_private_ca_is_trusted_only_when_configured(caplog):
    async with Emulator(projects=1, sharings_per_project=3, tls=True) as emu:
        assert emu.url.startswith("https://")
        project = emu.project_ids[0]
        async with VBSClient(emu.url, auth=TokenAuth(emu.token), retry=FAST) as client:
            with pytest.raises(TransportError, match="certificate"):
                await client.count_sharings(project)
        context = tls_context(emu.ca_bundle)
        async with VBSClient(emu.url, auth=TokenAuth(emu.token), ssl=context) as client:
            assert await client.count_sharings(project) == 3
        with caplog.at_level(logging.WARNING, logger="vbs_async"):
            async with VBSClient(emu.url, auth=TokenAuth(emu.token), ssl=False) as client:
                assert await client.count_sharings(project) == 3
    assert any("NOT verified" in r.getMessage() for r in caplog.records)


async def test_iam_requests_use_the_same_tls_settings():
    async with Emulator(
        projects=2, sharings_per_project=1, users={"alice": PASSWORD}, tls=True
    ) as emu:
        context = tls_context(emu.ca_bundle)
        async with VBSClient(auth=alice(emu), region="eu-de", ssl=context) as client:
            assert [await client.count_sharings(p) for p in emu.project_ids] == [1, 1]


def test_tls_files_that_cannot_be_used_are_configuration_errors(tmp_path):
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="CA bundle"):
        tls_context(junk)
    with pytest.raises(ConfigurationError, match="CA bundle"):
        tls_context(tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError, match="client certificate"):
        tls_context(cert=junk)
    with pytest.raises(ConfigurationError, match="certificate"):
        tls_context(key=junk)


def test_a_client_certificate_is_loaded_with_its_key(tmp_path):
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    issued = authority.issue_cert("operator@example")
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    issued.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    context = tls_context(tmp_path / "ca.pem", cert=tmp_path / "cert.pem", key=tmp_path / "key.pem")
    assert context.verify_mode.name == "CERT_REQUIRED"
    with pytest.raises(ConfigurationError, match="client certificate"):
        tls_context(cert=tmp_path / "cert.pem")  # its key is elsewhere


async def test_a_domain_token_refused_by_iam_is_replaced_once():
    async with Emulator(projects=2, users={"alice": PASSWORD}) as emu:
        auth = alice(emu)
        async with VBSClient(emu.url, auth=auth, retry=FAST) as client:
            assert len(await client.list_projects("eu-de")) == 2
            emu.identity.revoke_all()  # as a password change would
            assert len(await client.list_projects("eu-de")) == 2
    assert emu.identity.token_requests == [("alice", None), ("alice", None)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        ({"projects": {"id": "x"}}, "'projects' must be a list"),
        ({"projects": ["x"]}, "a project is not an object"),
        ({"projects": [{"id": 7, "name": "eu-de"}]}, "no text id or name"),
        ({"projects": [{"id": "p", "name": "eu-de", "enabled": "yes"}]}, "'enabled' is not a bool"),
    ],
)
async def test_an_iam_project_list_of_the_wrong_shape_is_a_decode_error(body, reason):
    from vbs_async import ResponseDecodeError  # noqa: PLC0415
    from vbs_async.testing import MockTransport, response  # noqa: PLC0415

    transport = MockTransport(lambda _sent: response(200, body))
    client = VBSClient(
        "https://vbs.example",
        auth=TokenAuth("t"),
        iam_endpoint="https://iam.example",
        transport=transport,
    )
    async with client:
        with pytest.raises(ResponseDecodeError, match=reason) as caught:
            await client.list_projects()
    assert caught.value.project_id is None  # an account-wide call is about no project
    assert transport.sent[0].url.path == "/v3/auth/projects"


# -- identities in every vocabulary: user IDs, agencies by domain ID, X-Domain-Id ----------


def test_agency_by_domain_id_asks_iam_with_domain_id_as_otcextensions_does():
    import orjson  # noqa: PLC0415

    base = PasswordAuth("https://iam.example", "alice", "pw", "OTC-alice")
    auth = AgencyAuth(base, domain_id="d0bob", agency_name="inventory")
    project = orjson.loads(auth._request("p1", "p1").body)["auth"]
    assert project["identity"]["assume_role"] == {"domain_id": "d0bob", "xrole_name": "inventory"}
    assert project["scope"] == {"project": {"id": "p1"}}
    account = orjson.loads(auth._request(None, "").body)["auth"]
    assert account["scope"] == {"domain": {"id": "d0bob"}}
    assert "domain_id='d0bob'" in repr(auth)
    with pytest.raises(ValueError, match="exactly one of agency_domain and domain_id"):
        AgencyAuth(base, agency_domain="OTC-bob", domain_id="d0bob", agency_name="inventory")


def test_a_user_named_by_id_logs_in_without_a_domain():
    import orjson  # noqa: PLC0415

    auth = PasswordAuth("https://iam.example", None, "pw-secret", user_id="u0123")
    user = orjson.loads(auth._request("p1", "p1").body)["auth"]["identity"]["password"]["user"]
    assert user == {"id": "u0123", "password": "pw-secret"}
    assert "pw-secret" not in repr(auth)
    with pytest.raises(ConfigurationError, match="needs the user's domain"):
        auth._request(None, "")  # an account-wide token (listing projects)
    with pytest.raises(ValueError, match="exactly one of username and user_id"):
        PasswordAuth("https://iam.example", "alice", "pw", "d", user_id="u0123")


def test_an_agency_can_be_assumed_with_a_ready_token():
    auth = AgencyAuth(
        TokenAuth("user-token"),
        agency_domain="OTC-bob",
        agency_name="inventory",
        auth_url="https://iam.example",
    )
    assert auth._request("p1", "p1").signer is auth.base
    with pytest.raises(ValueError, match="auth_url must be given with a TokenAuth base"):
        AgencyAuth(TokenAuth("t"), agency_domain="OTC-bob", agency_name="inventory")


async def test_key_pair_calls_to_iam_carry_x_domain_id_and_sign_it():
    from datetime import UTC, datetime  # noqa: PLC0415

    from yarl import URL  # noqa: PLC0415

    from vbs_async._requests import Request, list_projects_request  # noqa: PLC0415

    keys = AKSKAuth("AKID", "sk-secret", domain_id="d0alice")
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    iam = list_projects_request("https://iam.example")
    headers = keys.sign(iam, URL("https://iam.example/v3/auth/projects"), now)
    assert headers["X-Domain-Id"] == "d0alice"
    assert "X-Project-Id" not in headers
    assert "x-domain-id" in headers["Authorization"].split("SignedHeaders=")[1]
    vbs = Request("GET", "/v2/p1/os-vendor-backup-sharing/detail", "p1")
    headers = keys.sign(vbs, URL("https://vbs.example/v2/p1/os-vendor-backup-sharing/detail"), now)
    assert "X-Domain-Id" not in headers
    assert headers["X-Project-Id"] == "p1"
    assert "domain_id='d0alice'" in repr(keys)
    async with (
        Emulator(projects=2, access_keys={"AKID": "sk-secret"}) as emu,
        VBSClient(emu.url, auth=keys, iam_endpoint=emu.url) as client,
    ):
        assert len(await client.list_projects()) >= 2  # the emulator checks the signature


# -- catalogs for every kind of credentials; a project of another region ------------------


async def test_a_project_of_another_region_goes_to_its_own_region_s_vbs():
    # The emulator is eu-nl; the client is configured for eu-de, whose known
    # endpoint is a real host this machine cannot reach: only the project's own
    # catalog entry (its region's) makes the crawl succeed.
    async with (
        Emulator(
            projects=2, sharings_per_project=3, users={"alice": PASSWORD}, region="eu-nl"
        ) as emu,
        VBSClient(auth=alice(emu), region="eu-de", retry=FAST) as client,
    ):
        results = [r async for r in client.crawl(emu.project_ids)]
    assert [r.error for r in results] == [None, None]
    assert sum(len(r.sharings) for r in results) == 6


@pytest.mark.parametrize("kind", ["key pair", "token"])
async def test_key_pairs_and_ready_tokens_ask_iam_for_their_catalog(kind):
    async with Emulator(
        projects=2, sharings_per_project=4, access_keys={"AKCAT": "sk-cat-secret"}
    ) as emu:
        auth = (
            AKSKAuth("AKCAT", "sk-cat-secret", auth_url=emu.url + "/v3")
            if kind == "key pair"
            else TokenAuth(emu.token, auth_url=emu.url)
        )
        async with VBSClient(auth=auth, retry=FAST) as client:  # no endpoint, no region
            assert client.endpoint is None
            counts = [await client.count_sharings(p) for p in emu.project_ids * 2]
        asked = [r for r in emu.requests if r.path == "/v3/auth/catalog"]
    assert counts == [4, 4, 4, 4]
    assert len(asked) == 2  # once per project


async def test_a_catalog_iam_refuses_falls_back_to_the_region_s_endpoint(caplog):
    async with Emulator(projects=1, access_keys={"AKCAT": "sk-cat-secret"}) as emu:
        auth = AKSKAuth("AKCAT", "wrong-secret", auth_url=emu.url)
        async with VBSClient(auth=auth, region="eu-de", retry=FAST) as client:
            with caplog.at_level(logging.WARNING, logger="vbs_async"):
                catalog = await auth.catalog(emu.project_ids[0], client._call)
    assert catalog == ()
    assert any("/v3/auth/catalog" in r.getMessage() for r in caplog.records)
    assert not any("wrong-secret" in r.getMessage() for r in caplog.records)
