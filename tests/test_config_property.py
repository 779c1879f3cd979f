"""clouds.yaml of any shape: a Settings or a ConfigurationError, never a crash, never a secret."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbs_async._config import resolve

SECRET = "S3CR3T-value-never-shown"
KEYS = [
    "auth", "profile", "region_name", "regions", "vbs_endpoint_override", "cacert", "cert",
    "key", "verify", "ak", "sk", "agency_name", "agency_domain_name", "delegated_project",
    "auth_url", "username", "password", "user_domain_name", "user_domain_id", "token",
    "access_key", "secret_key", "security_token", "project_name", "project_id", "domain_name",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(
        ["", "eu-de", "eu-ch2", "otc", "otc-swiss", "https://iam.example/v3", "x", "{region_name}"]
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
                ("auth", "security_token"), ("auth", "secret_key"), ("", "sk")]  # fmt: skip


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
            found = resolve({"OS_CLOUD": "c"}, {}, cwd=home, home=home)
        except ValueError as error:  # ConfigurationError, or an auth object refusing a value
            shown = f"{type(error).__name__}: {error}"
        else:
            shown = repr(found)
        assert SECRET not in shown
