"""VBSClient.from_env: every configuration path, and every configuration error."""

from __future__ import annotations

import pytest

from vbs_async import AKSKAuth, ConfigurationError, PasswordAuth, TokenAuth, VBSClient
from vbs_async._config import Settings, resolve
from vbs_async.testing import Emulator

PASSWORD_ENV = {
    "OS_AUTH_URL": "https://iam.eu-de.otc.t-systems.com/v3",
    "OS_USERNAME": "alice",
    "OS_PASSWORD": "pw-secret",
    "OS_USER_DOMAIN_NAME": "OTC00000000001000000001",
    "OS_REGION_NAME": "eu-de",
}

CLOUDS = """
clouds:
  otc:
    region_name: eu-nl
    auth:
      auth_url: https://iam.eu-nl.otc.t-systems.com/v3
      username: bob
      password: yaml-secret
      user_domain_name: OTC00000000001000000002
  keys:
    region_name: eu-de
    vbs_endpoint_override: https://vbs.internal.example:8443
    auth:
      ak: AKFROMYAML
      sk: sk-from-yaml
  tokened:
    auth:
      token: tok-from-yaml
  empty:
    region_name: eu-de
  half:
    region_name: eu-de
    auth:
      ak: AKONLY
"""


@pytest.fixture
def clouds(tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text(CLOUDS)
    return path


def client_for(settings: Settings) -> VBSClient:
    return VBSClient(**settings.client_options())


def test_password_from_the_environment_and_endpoint_from_the_region(tmp_path):
    settings = resolve(PASSWORD_ENV, {}, cwd=tmp_path, home=tmp_path)
    assert (settings.endpoint, settings.region) == (None, "eu-de")  # the catalog's, else:
    assert client_for(settings)._fallback_endpoint == "https://vbs.eu-de.otc.t-systems.com"
    assert isinstance(settings.auth, PasswordAuth)
    assert repr(settings.auth) == (
        "PasswordAuth(auth_url='https://iam.eu-de.otc.t-systems.com', username='alice', "
        "password=<redacted>, domain_name='OTC00000000001000000001')"
    )


def test_os_domain_name_stands_in_for_the_user_domain(tmp_path):
    env = {k: v for k, v in PASSWORD_ENV.items() if k != "OS_USER_DOMAIN_NAME"}
    env["OS_DOMAIN_NAME"] = "OTC-fallback"
    assert "OTC-fallback" in repr(resolve(env, {}, cwd=tmp_path, home=tmp_path).auth)


def test_token_and_key_pair_from_the_environment(tmp_path):
    token = resolve(
        {"OS_AUTH_TOKEN": "t", "OS_REGION_NAME": "eu-de"}, {}, cwd=tmp_path, home=tmp_path
    )
    assert isinstance(token.auth, TokenAuth)
    keys = resolve(
        {"OS_ACCESS_KEY": "AK", "OS_SECRET_KEY": "SK", "VBS_ENDPOINT": "https://vbs.example"},
        {},
        cwd=tmp_path,
        home=tmp_path,
    )
    assert isinstance(keys.auth, AKSKAuth)
    assert keys.endpoint == "https://vbs.example"


def test_vbs_endpoint_wins_over_the_region(tmp_path):
    env = {**PASSWORD_ENV, "VBS_ENDPOINT": "https://vbs.override.example"}
    assert resolve(env, {}, cwd=tmp_path, home=tmp_path).endpoint == "https://vbs.override.example"


def test_overrides_win_over_everything(tmp_path):
    auth = TokenAuth("given")
    settings = resolve(
        PASSWORD_ENV, {"auth": auth, "endpoint": "https://x.example"}, cwd=tmp_path, home=tmp_path
    )
    assert (settings.auth, settings.endpoint) == (auth, "https://x.example")
    swiss = resolve(PASSWORD_ENV, {"region": "eu-ch2"}, cwd=tmp_path, home=tmp_path)
    assert client_for(swiss)._fallback_endpoint == "https://vbs.eu-ch2.sc.otc.t-systems.com"


def test_a_named_cloud_from_os_client_config_file(clouds, tmp_path):
    settings = resolve(
        {"OS_CLOUD": "otc", "OS_CLIENT_CONFIG_FILE": str(clouds)}, {}, cwd=tmp_path, home=tmp_path
    )
    assert (settings.endpoint, settings.region) == (None, "eu-nl")  # eu-nl: the catalog's
    assert "username='bob'" in repr(settings.auth)
    assert settings.source == f"cloud 'otc' in {clouds}"


def test_a_cloud_ignores_the_os_credential_variables(clouds, tmp_path):
    env = {**PASSWORD_ENV, "OS_CLOUD": "keys", "OS_CLIENT_CONFIG_FILE": str(clouds)}
    settings = resolve(env, {}, cwd=tmp_path, home=tmp_path)
    assert isinstance(settings.auth, AKSKAuth)
    assert settings.endpoint == "https://vbs.internal.example:8443"  # vbs_endpoint_override


def test_clouds_yaml_is_found_in_the_working_directory_then_the_home(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "home"
    (home / ".config" / "openstack").mkdir(parents=True)
    (home / ".config" / "openstack" / "clouds.yaml").write_text(CLOUDS.replace("bob", "carol"))
    assert "carol" in repr(resolve({"OS_CLOUD": "otc"}, {}, cwd=work, home=home).auth)
    (work / "clouds.yaml").write_text(CLOUDS)
    assert "bob" in repr(resolve({"OS_CLOUD": "otc"}, {}, cwd=work, home=home).auth)
    assert "bob" in repr(resolve({}, {"cloud": "otc"}, cwd=work, home=home).auth)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OS_REGION_NAME": "eu-de"},
            "gives no credentials: set OS_AUTH_TOKEN, or OS_ACCESS_KEY and OS_SECRET_KEY",
        ),
        (
            {**PASSWORD_ENV, "OS_AUTH_TOKEN": "t"},
            "more than one kind of credentials (token and password)",
        ),
        ({"OS_ACCESS_KEY": "AK", "OS_REGION_NAME": "eu-de"}, "OS_SECRET_KEY must be set as well"),
        (
            {k: v for k, v in PASSWORD_ENV.items() if k != "OS_USER_DOMAIN_NAME"},
            "OS_USER_DOMAIN_NAME must be set",
        ),
        ({"OS_AUTH_TOKEN": "t"}, "no VBS endpoint: no region is given"),
        ({"OS_AUTH_TOKEN": "t", "OS_REGION_NAME": "eu-xx"}, "set VBS_ENDPOINT"),
        ({"OS_AUTH_TOKEN": "t", "VBS_ENDPOINT": "http://vbs.example"}, "plain http"),
    ],
)
def test_environment_errors_name_what_to_set(tmp_path, env, message):
    def configure() -> VBSClient:
        return client_for(resolve(env, {}, cwd=tmp_path, home=tmp_path))

    with pytest.raises(ValueError) as caught:  # ConfigurationError is a ValueError too  # noqa: PT011
        configure()
    assert message in str(caught.value)
    assert "pw-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("cloud", "message"),
    [
        ("missing", "cloud 'missing' (OS_CLOUD) is not defined"),
        ("empty", "gives no credentials: set auth.token, or auth.ak and auth.sk"),
        ("half", "auth.sk must be set as well"),
        ("tokened", "no VBS endpoint: no region is given"),
    ],
)
def test_clouds_yaml_errors_name_the_key_to_set(clouds, tmp_path, cloud, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        client_for(
            resolve(
                {"OS_CLOUD": cloud, "OS_CLIENT_CONFIG_FILE": str(clouds)},
                {},
                cwd=tmp_path,
                home=tmp_path,
            )
        )


def test_unreadable_clouds_yaml_is_a_configuration_error(tmp_path):
    broken = tmp_path / "clouds.yaml"
    broken.write_text("clouds: [unclosed")
    with pytest.raises(ConfigurationError, match="is not valid YAML"):
        resolve({"OS_CLOUD": "x"}, {}, cwd=tmp_path, home=tmp_path)


def test_a_yaml_error_names_the_file_and_line_never_the_content(tmp_path):
    broken = tmp_path / "clouds.yaml"
    broken.write_text("clouds:\n  otc:\n    auth:\n      password: hunter2-secret: {\n")
    with pytest.raises(ConfigurationError) as caught:
        resolve({"OS_CLOUD": "otc"}, {}, cwd=tmp_path, home=tmp_path)
    message = str(caught.value)
    assert str(broken) in message
    assert "line 4" in message
    assert "hunter2" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_a_clouds_yaml_that_is_not_utf8_is_a_configuration_error(tmp_path):
    (tmp_path / "clouds.yaml").write_bytes(
        "clouds:\n  otc:\n    region_name: z\xfcrich\n".encode("latin-1")
    )
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        resolve({"OS_CLOUD": "otc"}, {}, cwd=tmp_path, home=tmp_path)


async def test_from_env_builds_a_working_client(monkeypatch, tmp_path):
    async with Emulator(projects=1, sharings_per_project=4) as emu:
        for name in [
            *list(PASSWORD_ENV),
            "OS_CLOUD",
            "OS_ACCESS_KEY",
            "OS_SECRET_KEY",
            "OS_CLIENT_CONFIG_FILE",
        ]:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OS_AUTH_TOKEN", emu.token)
        monkeypatch.setenv("VBS_ENDPOINT", emu.url)
        monkeypatch.chdir(tmp_path)
        async with VBSClient.from_env(max_concurrency=3) as client:
            assert client.limiter.max_concurrency == 3
            assert len(await client.list_sharings(emu.project_ids[0])) == 4


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("auth:\n      token: [1, 2]", "auth.token"),
        ("auth:\n      ak: AK\n      sk: {nested: yes}", "auth.sk"),
        ("region_name: {a: b}\n    auth:\n      token: t", "region_name"),
    ],
)
def test_a_wrong_type_in_clouds_yaml_is_a_configuration_error_naming_the_key(tmp_path, entry, key):
    (tmp_path / "clouds.yaml").write_text(f"clouds:\n  otc:\n    {entry}\n")
    with pytest.raises(ConfigurationError, match=rf"{key} must be text, not a (list|dict)"):
        resolve({"OS_CLOUD": "otc"}, {}, cwd=tmp_path, home=tmp_path)


def test_temporary_keys_come_with_their_security_token(tmp_path):
    environment = {
        "OS_ACCESS_KEY": "AKTEMP",
        "OS_SECRET_KEY": "sk-temp",
        "OS_SECURITY_TOKEN": "sts-token-from-env",
        "VBS_ENDPOINT": "https://vbs.example",
    }
    auth = resolve(environment, {}, cwd=tmp_path, home=tmp_path).auth
    assert isinstance(auth, AKSKAuth)
    assert auth.secrets() == ("sk-temp", "sts-token-from-env")
    (tmp_path / "clouds.yaml").write_text(
        "clouds:\n  temp:\n    vbs_endpoint_override: https://vbs.example\n"
        "    auth:\n      ak: AKTEMP\n      sk: sk-temp\n      security_token: sts-from-yaml\n"
    )
    auth = resolve({"OS_CLOUD": "temp"}, {}, cwd=tmp_path, home=tmp_path).auth
    assert isinstance(auth, AKSKAuth)
    assert auth.secrets() == ("sk-temp", "sts-from-yaml")


# -- the outside tester's findings ---------------------------------------------------------


def _agency_cloud(tmp_path, domain_line: str) -> str:
    (tmp_path / "clouds.yaml").write_text(
        "clouds:\n  otc:\n    profile: otc\n    auth_type: agency\n    auth:\n"
        "      username: alice\n      password: pw\n      user_domain_name: OTC-alice\n"
        f"      target_agency_name: inventory\n      {domain_line}\n"
    )
    return str(tmp_path / "clouds.yaml")


def test_gophertelekomcloud_s_target_domain_id_holding_a_name_is_sent_as_the_name(tmp_path):
    env = {"OS_CLOUD": "otc", "OS_REGION_NAME": "eu-de"}
    _agency_cloud(tmp_path, "target_domain_id: OTC00000000001000000yyy")
    auth = resolve(env, {}, cwd=tmp_path, home=tmp_path).auth
    assert (auth.agency_domain, auth.domain_id) == ("OTC00000000001000000yyy", None)
    _agency_cloud(tmp_path, "target_domain_id: 0123456789abcdef0123456789ABCDEF")
    auth = resolve(env, {}, cwd=tmp_path, home=tmp_path).auth
    assert (auth.agency_domain, auth.domain_id) == (None, "0123456789abcdef0123456789ABCDEF")


@pytest.mark.parametrize("password", ["*Zq9TopSecret", "!Zq9TopSecret", "%Zq9TopSecret"])
def test_a_yaml_error_never_shows_the_password(tmp_path, password):
    (tmp_path / "secure.yaml").write_text(
        f"clouds:\n  otc:\n    auth:\n      password: {password}\n"
    )
    (tmp_path / "clouds.yaml").write_text("clouds:\n  otc:\n    auth:\n      username: alice\n")
    with pytest.raises(
        ConfigurationError, match=r"is not valid YAML at line \d+, column \d+$"
    ) as e:
        resolve({"OS_CLOUD": "otc"}, {}, cwd=tmp_path, home=tmp_path)
    assert "Zq9TopSecret" not in str(e.value)
