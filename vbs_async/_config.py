"""Endpoint and credentials from the OpenStack environment variables and clouds.yaml.

`resolve` is a function of an environment mapping and the files it names, so
that every path through it is tested without touching the real environment.

Precedence, first match wins:

- endpoint: the `endpoint` override, `VBS_ENDPOINT`, the cloud's
  `vbs_endpoint_override`, else `https://vbs.{region}.otc.t-systems.com` with
  the region from the `region` override, the cloud's `region_name`, or
  `OS_REGION_NAME`;
- credentials: the `auth` override; else, when a cloud is named (`cloud`
  override or `OS_CLOUD`), that cloud's `auth` section in clouds.yaml (the
  OS_* credential variables are then ignored); else the OS_* variables. Of a
  token, a key pair and a password exactly one may be given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._auth import Auth, TokenAuth
from ._errors import ConfigurationError
from ._iam import PasswordAuth
from ._signing import AKSKAuth

if TYPE_CHECKING:
    from collections.abc import Mapping

_ENDPOINT_TEMPLATE: Final = "https://vbs.{region}.otc.t-systems.com"


@attrs.frozen
class Settings:
    """What `VBSClient.from_env` resolved.

    Attributes:
        endpoint: The VBS endpoint.
        auth: The credentials.
        source: Where the credentials came from, for messages.
    """

    endpoint: str
    auth: Auth
    source: str


def clouds_yaml_paths(environ: Mapping[str, str], cwd: Path, home: Path) -> list[Path]:
    """Where clouds.yaml is looked for, in order."""
    if environ.get("OS_CLIENT_CONFIG_FILE"):
        return [Path(environ["OS_CLIENT_CONFIG_FILE"])]
    return [
        cwd / "clouds.yaml",
        home / ".config" / "openstack" / "clouds.yaml",
        Path("/etc/openstack/clouds.yaml"),
    ]


def load_cloud(name: str, paths: list[Path]) -> tuple[dict[str, Any], Path]:
    """The entry of cloud `name` from the first clouds.yaml that defines it."""
    try:
        import yaml  # noqa: PLC0415 - only for who reads clouds.yaml
    except ModuleNotFoundError:
        raise ConfigurationError(
            "reading clouds.yaml needs PyYAML: pip install 'vbs-async[cli]'"
        ) from None
    for path in paths:
        if not path.is_file():
            continue
        problem: str | None = None
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.MarkedYAMLError as exc:
            # Never the snippet PyYAML quotes: it may be the password's line.
            mark = exc.problem_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = f"is not valid YAML{where}: {exc.problem or 'syntax error'}"
        except yaml.YAMLError:
            problem = "is not valid YAML"
        except UnicodeDecodeError as exc:
            problem = f"is not UTF-8 text (a byte at position {exc.start} cannot be read)"
        except OSError as exc:
            problem = f"cannot be read: {exc.strerror or type(exc).__name__}"
        if problem is not None:
            # Raised outside the except blocks: PyYAML's exception (holding the
            # file's text) is not kept as the context.
            raise ConfigurationError(f"{path} {problem}")
        clouds = document.get("clouds") if isinstance(document, dict) else None
        if isinstance(clouds, dict) and isinstance(clouds.get(name), dict):
            return clouds[name], path
    looked = ", ".join(str(p) for p in paths)
    raise ConfigurationError(
        f"cloud {name!r} (OS_CLOUD) is not defined in any clouds.yaml (looked in {looked}); "
        "set OS_CLIENT_CONFIG_FILE to the file that defines it"
    )


def _credentials(values: Mapping[str, Any], names: Mapping[str, str], source: str) -> Auth:
    """Build the auth object from `values`; `names` maps each setting to what the user sets."""

    def given(setting: str) -> bool:
        return bool(values.get(setting))

    kinds = {
        "token": given("token"),
        "key pair": given("access_key") or given("secret_key"),
        "password": any(given(s) for s in ("auth_url", "username", "password")),
    }
    chosen = [kind for kind, present in kinds.items() if present]
    if len(chosen) > 1:
        raise ConfigurationError(
            f"{source} gives more than one kind of credentials ({' and '.join(chosen)}); "
            f"keep only one of {names['token']}, {names['access_key']}/{names['secret_key']}, "
            f"{names['password']}"
        )
    if not chosen:
        raise ConfigurationError(
            f"{source} gives no credentials: set {names['token']}, or {names['access_key']} and "
            f"{names['secret_key']}, or {names['auth_url']}, {names['username']}, "
            f"{names['password']} and {names['domain_name']}"
        )

    def text(setting: str) -> str:
        value = values[setting]
        if isinstance(value, bool) or not isinstance(value, str | int):
            # Never str() of it: a list would become a credential "[1, 2]".
            raise ConfigurationError(
                f"{source}: {names[setting]} must be text, not a {type(value).__name__}"
            )
        return str(value)

    def required(*settings: str) -> list[str]:
        missing = [names[s] for s in settings if not given(s)]
        if missing:
            raise ConfigurationError(f"{source}: {', '.join(missing)} must be set as well")
        return [text(s) for s in settings]

    if chosen == ["token"]:
        return TokenAuth(text("token"))
    if chosen == ["key pair"]:
        access_key, secret_key = required("access_key", "secret_key")
        security_token = text("security_token") if given("security_token") else None
        return AKSKAuth(access_key, secret_key, security_token=security_token)
    return PasswordAuth(*required("auth_url", "username", "password", "domain_name"))


_ENV_NAMES: Final = {
    "token": "OS_AUTH_TOKEN",
    "access_key": "OS_ACCESS_KEY",
    "secret_key": "OS_SECRET_KEY",
    "auth_url": "OS_AUTH_URL",
    "username": "OS_USERNAME",
    "password": "OS_PASSWORD",
    "domain_name": "OS_USER_DOMAIN_NAME",
    "security_token": "OS_SECURITY_TOKEN",
}
_YAML_NAMES: Final = {
    "token": "auth.token",
    "access_key": "auth.ak",
    "secret_key": "auth.sk",
    "auth_url": "auth.auth_url",
    "username": "auth.username",
    "password": "auth.password",
    "domain_name": "auth.user_domain_name",
    "security_token": "auth.security_token",
}


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values = {setting: environ.get(variable) for setting, variable in _ENV_NAMES.items()}
    values["domain_name"] = values["domain_name"] or environ.get("OS_DOMAIN_NAME")
    return values


def _from_cloud(entry: Mapping[str, Any]) -> dict[str, Any]:
    auth = entry.get("auth") or {}
    if not isinstance(auth, dict):
        raise ConfigurationError("the cloud's auth must be a mapping")
    return {
        "token": auth.get("token"),
        "access_key": auth.get("ak") or auth.get("access_key"),
        "secret_key": auth.get("sk") or auth.get("secret_key"),
        "auth_url": auth.get("auth_url"),
        "username": auth.get("username"),
        "password": auth.get("password"),
        "domain_name": auth.get("user_domain_name") or auth.get("domain_name"),
        "security_token": auth.get("security_token"),
    }


def resolve(
    environ: Mapping[str, str],
    overrides: Mapping[str, Any],
    *,
    cwd: Path | None = None,
    home: Path | None = None,
) -> Settings:
    """Work out the endpoint and credentials (see the module's docstring for precedence).

    Raises:
        ConfigurationError: A setting is missing or contradicts another; the
            message names the variable or key to set.
    """
    cloud_name = overrides.get("cloud") or environ.get("OS_CLOUD")
    entry: dict[str, Any] = {}
    if cloud_name:
        paths = clouds_yaml_paths(environ, cwd or Path.cwd(), home or Path.home())
        entry, path = load_cloud(str(cloud_name), paths)
        source = f"cloud {cloud_name!r} in {path}"
    else:
        source = "the environment"

    auth = overrides.get("auth")
    if auth is None:
        if cloud_name:
            auth = _credentials(_from_cloud(entry), _YAML_NAMES, source)
        else:
            auth = _credentials(_from_environment(environ), _ENV_NAMES, source)
    elif not isinstance(auth, Auth):
        raise ConfigurationError("the auth override must be a vbs_async auth object")

    endpoint = (
        overrides.get("endpoint")
        or environ.get("VBS_ENDPOINT")
        or entry.get("vbs_endpoint_override")
    )
    if not endpoint:
        region = (
            overrides.get("region") or entry.get("region_name") or environ.get("OS_REGION_NAME")
        )
        if region and not isinstance(region, str):
            raise ConfigurationError(
                f"{source}: region_name must be text, not a {type(region).__name__}"
            )
        if not region:
            where = (
                f"region_name or vbs_endpoint_override in {source}"
                if cloud_name
                else "OS_REGION_NAME"
            )
            raise ConfigurationError(f"no VBS endpoint: set VBS_ENDPOINT or {where}")
        endpoint = _ENDPOINT_TEMPLATE.format(region=region)
    return Settings(str(endpoint), auth, source)


def resolve_from_os(overrides: Mapping[str, Any]) -> Settings:
    """`resolve` with the process's environment, working directory and home."""
    return resolve(os.environ, overrides)
