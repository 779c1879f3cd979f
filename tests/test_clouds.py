"""clouds.yaml as openstacksdk and otcextensions users write it: profiles, secure.yaml, TLS, agencies."""

from __future__ import annotations

import logging
import ssl

import pytest

from vbs_async import (
    AgencyAuth,
    AKSKAuth,
    ConfigurationError,
    PasswordAuth,
    TokenAuth,
    VBSClient,
)
from vbs_async._config import resolve
from vbs_async.testing import Emulator


@pytest.fixture
def home(tmp_path):
    """An empty home and working directory; clouds files go in ~/.config/openstack."""
    config = tmp_path / "home" / ".config" / "openstack"
    config.mkdir(parents=True)
    (tmp_path / "work").mkdir()
    return tmp_path


def settings_of(home, environ=None, **overrides):
    return resolve(environ or {}, overrides, cwd=home / "work", home=home / "home")


def write(home, name, text):
    (home / "home" / ".config" / "openstack" / name).write_text(text)


# The otcextensions README's own setup: a profile, the password kept apart.
OTC_README_CLOUDS = """
clouds:
  otc:
    profile: otc
    auth:
      username: 'alice'
      project_name: 'eu-de_prod'
      user_domain_name: 'OTC00000000001000000xxx'
"""
OTC_README_SECURE = """
clouds:
  otc:
    auth:
      password: 'secret-from-secure-yaml'
"""


def test_the_otcextensions_setup_profile_otc_and_secure_yaml(home):
    write(home, "clouds.yaml", OTC_README_CLOUDS)
    write(home, "secure.yaml", OTC_README_SECURE)
    settings = settings_of(home, {"OS_CLOUD": "otc"})
    assert isinstance(settings.auth, PasswordAuth)
    assert settings.auth.auth_url == "https://iam.eu-de.otc.t-systems.com"  # the profile's
    assert settings.region == "eu-de"  # the profile's first region
    assert settings.project == "eu-de_prod"
    assert settings.auth.secrets()[0] == "secret-from-secure-yaml"
    assert "secret-from-secure-yaml" not in repr(settings)


def test_profile_otc_swiss_points_at_the_swiss_iam(home):
    write(home, "clouds.yaml", OTC_README_CLOUDS.replace("profile: otc", "profile: otc-swiss"))
    write(home, "secure.yaml", OTC_README_SECURE)
    settings = settings_of(home, {"OS_CLOUD": "otc"})
    assert settings.auth.auth_url == "https://iam-pub.eu-ch2.sc.otc.t-systems.com"
    client = VBSClient(**settings.client_options())
    assert client._fallback_endpoint == "https://vbs.eu-ch2.sc.otc.t-systems.com"


def test_a_region_name_picks_the_profile_s_iam_of_that_region(home):
    write(
        home,
        "clouds.yaml",
        OTC_README_CLOUDS.replace("profile: otc", "profile: otc\n    region_name: eu-nl"),
    )
    write(home, "secure.yaml", OTC_README_SECURE)
    assert settings_of(home, {"OS_CLOUD": "otc"}).auth.auth_url == (
        "https://iam.eu-nl.otc.t-systems.com"
    )


def test_an_unknown_profile_is_named(home):
    write(home, "clouds.yaml", "clouds:\n  x:\n    profile: nowhere\n    auth:\n      token: t\n")
    with pytest.raises(ConfigurationError, match="unknown profile 'nowhere'"):
        settings_of(home, {"OS_CLOUD": "x"})


@pytest.mark.parametrize("name", ["clouds.yml", "clouds.json"])
def test_clouds_yml_and_clouds_json_are_read(home, name):
    if name.endswith(".json"):
        text = '{"clouds": {"c": {"region_name": "eu-de", "auth": {"token": "tok"}}}}'
    else:
        text = "clouds:\n  c:\n    region_name: eu-de\n    auth:\n      token: tok\n"
    write(home, name, text)
    assert isinstance(settings_of(home, {"OS_CLOUD": "c"}).auth, TokenAuth)


def test_user_domain_id_instead_of_its_name(home):
    write(
        home,
        "clouds.yaml",
        "clouds:\n  c:\n    region_name: eu-de\n    auth:\n      auth_url: https://iam.example/v3\n"
        "      username: u\n      password: p\n      user_domain_id: 0123abcd\n      project_id: 99aa\n",
    )
    settings = settings_of(home, {"OS_CLOUD": "c"})
    assert "domain_id='0123abcd'" in repr(settings.auth)
    assert settings.project == "99aa"
    env = {
        "OS_AUTH_URL": "https://iam.example/v3",
        "OS_USERNAME": "u",
        "OS_PASSWORD": "p",
        "OS_USER_DOMAIN_ID": "0123abcd",
        "OS_PROJECT_NAME": "eu-de_dev",
    }
    settings = settings_of(home, env)
    assert "domain_id='0123abcd'" in repr(settings.auth)
    assert settings.project == "eu-de_dev"


def test_os_token_works_like_os_auth_token(home):
    settings = settings_of(home, {"OS_TOKEN": "tok", "OS_REGION_NAME": "eu-de"})
    assert isinstance(settings.auth, TokenAuth)
    assert settings.auth.secrets() == ("tok",)


def test_a_key_pair_beside_auth_is_used_only_without_other_credentials(home):
    write(
        home,
        "clouds.yaml",
        "clouds:\n"
        "  both:\n    profile: otc\n    ak: AKOBS\n    sk: sk-obs\n"
        "    auth:\n      username: u\n      password: p\n      user_domain_name: d\n"
        "  keys:\n    profile: otc\n    ak: AKALONE\n    sk: sk-alone\n",
    )
    assert isinstance(settings_of(home, {"OS_CLOUD": "both"}).auth, PasswordAuth)
    assert isinstance(settings_of(home, {"OS_CLOUD": "keys"}).auth, AKSKAuth)


# -- agencies ----------------------------------------------------------------------------


def test_an_agency_as_the_terraform_provider_names_it(home):
    write(
        home,
        "clouds.yaml",
        "clouds:\n  a:\n    profile: otc\n    agency_name: inventory\n"
        "    agency_domain_name: OTC-other\n    delegated_project: eu-de_theirs\n"
        "    auth:\n      username: u\n      password: p\n      user_domain_name: d\n",
    )
    settings = settings_of(home, {"OS_CLOUD": "a"})
    assert isinstance(settings.auth, AgencyAuth)
    assert isinstance(settings.auth.base, PasswordAuth)
    assert settings.project == "eu-de_theirs"
    env = {
        "OS_ACCESS_KEY": "AK",
        "OS_SECRET_KEY": "SK",
        "OS_REGION_NAME": "eu-de",
        "OS_AGENCY_NAME": "inventory",
        "OS_AGENCY_DOMAIN_NAME": "OTC-other",
    }
    settings = settings_of(home, env)
    assert isinstance(settings.auth, AgencyAuth)
    assert settings.auth.auth_url == "https://iam.eu-de.otc.t-systems.com"  # the region's
    with pytest.raises(ConfigurationError, match="set OS_AGENCY_DOMAIN_NAME"):
        settings_of(home, {**env, "OS_AGENCY_DOMAIN_NAME": ""})
    # A token assumes an agency too (the Terraform provider accepts it), given IAM's endpoint.
    with pytest.raises(ConfigurationError, match="assuming an agency needs IAM's endpoint"):
        settings_of(
            home, {"OS_AUTH_TOKEN": "t", "OS_AGENCY_NAME": "a", "OS_AGENCY_DOMAIN_NAME": "d"}
        )
    tokened = settings_of(
        home,
        {
            "OS_AUTH_TOKEN": "t",
            "OS_AGENCY_NAME": "a",
            "OS_AGENCY_DOMAIN_NAME": "d",
            "OS_REGION_NAME": "eu-de",
        },
    )
    assert isinstance(tokened.auth, AgencyAuth)
    assert isinstance(tokened.auth.base, TokenAuth)


# -- TLS ---------------------------------------------------------------------------------


async def test_cacert_in_clouds_yaml_reaches_an_emulator_behind_a_private_ca(home):
    async with Emulator(projects=1, sharings_per_project=5, tls=True) as emu:
        write(
            home,
            "clouds.yaml",
            f"clouds:\n  private:\n    vbs_endpoint_override: {emu.url}\n"
            f"    cacert: {emu.ca_bundle}\n    auth:\n      token: {emu.token}\n",
        )
        settings = settings_of(home, {"OS_CLOUD": "private"})
        assert isinstance(settings.ssl, ssl.SSLContext)
        async with VBSClient(**settings.client_options()) as client:
            assert await client.count_sharings(emu.project_ids[0]) == 5
        env = {"OS_AUTH_TOKEN": emu.token, "VBS_ENDPOINT": emu.url, "OS_CACERT": emu.ca_bundle}
        async with VBSClient(**settings_of(home, env).client_options()) as client:
            assert await client.count_sharings(emu.project_ids[0]) == 5


def test_verify_false_is_honoured_with_a_warning_naming_the_cloud(home, caplog):
    write(
        home,
        "clouds.yaml",
        "clouds:\n  lab:\n    verify: false\n    region_name: eu-de\n    auth:\n      token: t\n",
    )
    with caplog.at_level(logging.WARNING, logger="vbs_async"):
        settings = settings_of(home, {"OS_CLOUD": "lab"})
    assert settings.ssl is False
    assert any("cloud 'lab'" in r.getMessage() for r in caplog.records)
    assert settings_of(home, {"OS_AUTH_TOKEN": "t", "OS_INSECURE": "true"}).ssl is False


def test_a_missing_ca_file_is_a_configuration_error(home):
    env = {"OS_AUTH_TOKEN": "t", "OS_CACERT": str(home / "nope.pem")}
    with pytest.raises(ConfigurationError, match=r"OS_CACERT names .*nope.pem, which does not"):
        settings_of(home, env)


# -- the command: --os-cloud, the openstack command's spelling -----------------------------


@pytest.mark.parametrize("option", ["--cloud", "--os-cloud"])
def test_the_command_takes_os_cloud_as_an_alias_of_cloud(tmp_path, monkeypatch, option):
    from click.testing import CliRunner  # noqa: PLC0415

    from vbs_async.cli import cli  # noqa: PLC0415

    from ._helpers import emulator_in_thread  # noqa: PLC0415

    with emulator_in_thread(projects=1, sharings_per_project=3) as emu:
        (tmp_path / "clouds.yaml").write_text(
            "clouds:\n"
            f"  lab:\n    vbs_endpoint_override: {emu.url}\n    auth:\n      token: {emu.token}\n"
            "  other:\n    vbs_endpoint_override: https://vbs.nowhere.example\n"
            "    auth:\n      token: wrong\n"
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("OS_CLOUD", "other")
        result = CliRunner().invoke(cli, ["count", option, "lab", emu.project_ids[0]])
    assert (result.exit_code, result.stdout) == (0, "3\n")


def test_a_secure_yaml_entry_that_is_not_a_mapping_is_named(home):
    write(home, "clouds.yaml", OTC_README_CLOUDS)
    write(home, "secure.yaml", "clouds:\n  otc: [password-in-a-list]\n  other: {}\n")
    with pytest.raises(ConfigurationError, match="cloud 'otc' must be a mapping") as caught:
        settings_of(home, {"OS_CLOUD": "otc"})
    assert "password-in-a-list" not in str(caught.value)


@pytest.mark.parametrize("auth_type", ["auth_type: agency\n    ", ""])
def test_an_otcextensions_agency_crawls_the_other_account_not_the_user_s_own(
    tmp_path, monkeypatch, auth_type
):
    from click.testing import CliRunner  # noqa: PLC0415

    from vbs_async.cli import cli  # noqa: PLC0415

    from ._helpers import emulator_in_thread  # noqa: PLC0415
    from .test_cli import rows_by_project  # noqa: PLC0415

    with emulator_in_thread(
        projects=3,
        sharings_per_project=2,
        users={"alice": "alice-password-1"},
        agencies=[("OTC-other", "inventory")],
    ) as emu:
        (tmp_path / "clouds.yaml").write_text(
            f"clouds:\n  customer:\n    region_name: eu-de\n    {auth_type}auth:\n"
            f"      auth_url: {emu.url}/v3\n      username: alice\n"
            "      password: alice-password-1\n      user_domain_name: emulator-domain\n"
            "      target_agency_name: inventory\n      target_domain_name: OTC-other\n"
        )
        monkeypatch.chdir(tmp_path)  # the only cloud of ./clouds.yaml, no OS_CLOUD
        result = CliRunner().invoke(cli, ["crawl", "--all-projects"])
    assert result.exit_code == 0, result.stderr
    assert set(rows_by_project(result.stdout)) == set(emu.project_ids)
    # Every token is the agency's: the user's own account is never crawled.
    assert sorted(p or "" for _, _, p in emu.identity.agency_token_requests) == sorted(
        ["", *emu.project_ids]
    )
    assert emu.identity.token_requests == [("alice", None)]


def test_the_command_refuses_two_different_clouds(tmp_path, monkeypatch):
    from click.testing import CliRunner  # noqa: PLC0415

    from vbs_async.cli import cli  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["count", "--os-cloud", "a", "--cloud", "b", "p0"])
    assert result.exit_code == 2
    assert "names two clouds ('a', 'b'): give one" in result.output
    # The same cloud twice is one cloud: refused only because it is not defined.
    same = CliRunner().invoke(cli, ["count", "--os-cloud", "a", "--cloud", "a", "p0"])
    assert "names two clouds" not in same.output
    assert "cloud 'a' (--cloud) is not defined" in same.output


@pytest.mark.parametrize(
    ("how", "agency_env"),
    [
        ("OS_CLOUD", {"OS_AGENCY_NAME": "inventory", "OS_AGENCY_DOMAIN_NAME": "OTC-other"}),
        (
            "OS_CLOUD",
            {
                "OS_AUTH_TYPE": "agency",
                "OS_TARGET_AGENCY_NAME": "inventory",
                "OS_TARGET_DOMAIN_NAME": "OTC-other",
            },
        ),
        ("--os-cloud", {"OS_AGENCY_NAME": "inventory", "OS_AGENCY_DOMAIN_NAME": "OTC-other"}),
    ],
    ids=["terraform", "otcextensions", "os-cloud-flag"],
)
def test_a_named_cloud_crawls_the_account_of_the_agency_in_the_environment(
    tmp_path, monkeypatch, how, agency_env
):
    from click.testing import CliRunner  # noqa: PLC0415

    from vbs_async.cli import cli  # noqa: PLC0415

    from ._helpers import emulator_in_thread  # noqa: PLC0415
    from .test_cli import rows_by_project  # noqa: PLC0415

    with emulator_in_thread(
        projects=2,
        sharings_per_project=1,
        users={"alice": "alice-password-1"},
        agencies=[("OTC-other", "inventory")],
    ) as emu:
        (tmp_path / "clouds.yaml").write_text(
            "clouds:\n  mine:\n    region_name: eu-de\n    auth:\n"
            f"      auth_url: {emu.url}/v3\n      username: alice\n"
            "      password: alice-password-1\n      user_domain_name: emulator-domain\n"
        )
        monkeypatch.chdir(tmp_path)
        for name, value in agency_env.items():
            monkeypatch.setenv(name, value)
        if how == "OS_CLOUD":
            monkeypatch.setenv("OS_CLOUD", "mine")
            args = ["crawl", "--all-projects"]
        else:
            args = ["crawl", "--os-cloud", "mine", "--all-projects"]
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    assert set(rows_by_project(result.stdout)) == set(emu.project_ids)
    # Every token is the agency's: the user's own account is never crawled.
    assert sorted(p or "" for _, _, p in emu.identity.agency_token_requests) == sorted(
        ["", *emu.project_ids]
    )
