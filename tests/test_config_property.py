"""clouds.yaml of any shape: a Settings or a ConfigurationError, never a crash, never a secret."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbs_async import _config
from vbs_async._config import resolve

SECRET = "S3CR3T-value-never-shown"
KEYS = [
    "auth", "profile", "region_name", "regions", "vbs_endpoint_override", "cacert", "cert",
    "key", "verify", "ak", "sk", "agency_name", "agency_domain_name", "delegated_project",
    "auth_url", "username", "password", "user_domain_name", "user_domain_id", "token",
    "access_key", "secret_key", "security_token", "project_name", "project_id", "domain_name",
    # The other vocabularies (otcextensions' agency plugin, Terraform, openstacksdk's).
    "auth_type", "auth_plugin", "target_agency_name", "target_domain_name", "target_domain_id",
    "target_project_name", "target_project_id", "user_id", "project_domain_name",
    "project_domain_id", "insecure", "auth_token", "volume_backup_endpoint_override",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(
        [
            "",
            "eu-de",
            "eu-ch2",
            "otc",
            "otc-swiss",
            "https://iam.example/v3",
            "x",
            "{region_name}",
            "agency",
            "password",
            "token",
            "v3oidcpassword",
            "true",
            "eu-de_prod",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)
    ),
    max_leaves=12,
)
clouds = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)
# Where a secret may sit: its value must never be shown, whatever else is wrong.
SECRET_SLOTS = [("auth", "password"), ("auth", "sk"), ("auth", "token"),
                ("auth", "security_token"), ("auth", "secret_key"), ("", "sk"),
                ("", "password"), ("auth", "auth_token"), ("", "secret_key"),
                ("", "security_token")]  # fmt: skip


def with_secret(entry: dict, slot: tuple[str, str]) -> dict:
    section, key = slot
    holder = entry if not section else entry.get(section)
    if isinstance(holder, dict):
        holder[key] = SECRET
    return entry


@settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    entry=clouds,
    secure=st.one_of(st.none(), clouds),
    slot=st.sampled_from(SECRET_SLOTS),
    secure_slot=st.sampled_from(SECRET_SLOTS),
)
def test_any_cloud_entry_gives_settings_or_a_configuration_error_without_secrets(
    entry, secure, slot, secure_slot
):
    entry = with_secret(entry, slot)
    if secure is not None:
        secure = with_secret(secure, secure_slot)
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        (home / "clouds.json").write_bytes(orjson.dumps({"clouds": {"c": entry}}))
        if secure is not None:
            (home / "secure.json").write_bytes(orjson.dumps({"clouds": {"c": secure}}))
        try:
            # A cloud without a password takes OS_PASSWORD: that one is never shown either.
            environ = {"OS_CLOUD": "c", "OS_PASSWORD": SECRET}
            found = resolve(environ, {}, cwd=home, home=home, system_root=home / "etc")
        except ValueError as error:  # ConfigurationError, or an auth object refusing a value
            shown = f"{type(error).__name__}: {error}"
        else:
            shown = repr(found)
        assert SECRET not in shown


ENV_NAMES = sorted({name for names in _config._ENV_NAMES.values() for name in names} | {"OS_CLOUD"})
ENV_SECRETS = ["OS_PASSWORD", "OS_SECRET_KEY", "OS_SK", "OS_AUTH_TOKEN", "OS_TOKEN",
               "OS_SECURITY_TOKEN"]  # fmt: skip
env_values = st.sampled_from(
    [
        "",
        "eu-de",
        "eu-ch2_x",
        "agency",
        "password",
        "token",
        "true",
        "1",
        "maybe",
        "x",
        "https://iam.example/v3",
        "htps://u:p@iam",
        "OTC-a",
        "AKID",
    ]
)


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(
    environ=st.dictionaries(st.sampled_from(ENV_NAMES), env_values, max_size=10),
    secret_at=st.sampled_from(ENV_SECRETS),
)
def test_any_environment_gives_settings_or_a_configuration_error_without_secrets(
    environ, secret_at
):
    environ = {**environ, secret_at: SECRET}
    environ.pop("OS_CLIENT_CONFIG_FILE", None)
    environ.pop("OS_CLIENT_SECURE_FILE", None)
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        try:
            found = resolve(environ, {}, cwd=home, home=home, system_root=home / "etc")
        except ValueError as error:
            shown = f"{type(error).__name__}: {error}"
        else:
            shown = repr(found)
    assert SECRET not in shown
