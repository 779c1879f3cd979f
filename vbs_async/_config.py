"""Endpoint, credentials, TLS and default project, read the way openstacksdk reads them.

`resolve` is a function of an environment mapping and the files it names, so
that every path through it is tested without touching the real environment.

Why not `openstack.config` itself: it brings 25 packages and 58 MB into an
environment, and importing it takes 0.47 s on the machine this was measured
on (vs. 0.02 s for this module and PyYAML), for the handful of rules below,
which follow its behaviour:

- files: `OS_CLIENT_CONFIG_FILE`, else the first of `clouds.yaml`,
  `clouds.yml`, `clouds.json` in the working directory,
  `~/.config/openstack` and `/etc/openstack`; `secure.yaml` (or `.yml`,
  `.json`, or `OS_CLIENT_SECURE_FILE`) found the same way is merged over it,
  so that passwords can live apart;
- `profile: otc` / `otc-swiss` (openstacksdk's vendor profiles, the IAM URL
  and the default region) under the cloud's own settings;
- a cloud named by the `cloud` override or `OS_CLOUD`; else the `OS_*`
  variables (`OS_TOKEN` too).

Precedence, first match wins:

- endpoint: the `endpoint` override, `VBS_ENDPOINT`, the cloud's
  `vbs_endpoint_override`; else none here, and the client takes it from
  each token's catalog or the known regions (`_endpoints`);
- region: the `region` override, the cloud's `region_name`,
  `OS_REGION_NAME`, the profile's first region;
- credentials: the `auth` override; else the cloud's `auth` section (or the
  `OS_*` variables): a token, a key pair (`ak`/`sk` or
  `access_key`/`secret_key`, with `security_token` for temporary keys) or a
  password; a cloud's top-level `ak`/`sk` (otcextensions keeps them there
  for OBS) only when the auth section has none. With `agency_name` and
  `agency_domain_name`, they become an `AgencyAuth`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from ._agency import AgencyAuth
from ._auth import Auth, TokenAuth
from ._endpoints import KNOWN_REGIONS
from ._errors import ConfigurationError
from ._iam import PasswordAuth
from ._signing import AKSKAuth
from ._tls import SSLSetting, tls_context

logger: Final = logging.getLogger("vbs_async")

# openstacksdk's vendor profiles for Open Telekom Cloud (openstack/config/vendors).
VENDOR_PROFILES: Final[dict[str, dict[str, Any]]] = {
    "otc": {
        "auth": {"auth_url": "https://iam.{region_name}.otc.t-systems.com/v3"},
        "regions": ["eu-de", "eu-nl"],
    },
    "otc-swiss": {
        "auth": {"auth_url": "https://iam-pub.eu-ch2.sc.otc.t-systems.com/v3"},
        "regions": ["eu-ch2"],
    },
}
_SUFFIXES: Final = (".yaml", ".yml", ".json")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


@attrs.frozen
class Settings:
    """What `VBSClient.from_env` resolved.

    Attributes:
        endpoint: The VBS endpoint, or None for the catalog's or the region's.
        auth: The credentials.
        source: Where the settings came from, for messages.
        region: The region, if one is configured.
        iam_endpoint: IAM's endpoint, if known.
        ssl: TLS verification for `VBSClient(ssl=...)`.
        project: The configured project (ID or name) to use when none is given.
    """

    endpoint: str | None
    auth: Auth
    source: str
    region: str | None = None
    iam_endpoint: str | None = None
    ssl: SSLSetting = True
    project: str | None = None

    def client_options(self) -> dict[str, Any]:
        """`VBSClient`'s keywords for these settings."""
        return {
            "endpoint": self.endpoint,
            "auth": self.auth,
            "region": self.region,
            "iam_endpoint": self.iam_endpoint,
            "ssl": self.ssl,
        }


def config_dirs(cwd: Path, home: Path) -> list[Path]:
    """Where openstacksdk looks for its files, in order."""
    return [cwd, home / ".config" / "openstack", Path("/etc/openstack")]


def find_file(
    stem: str, variable: str, environ: Mapping[str, str], dirs: list[Path]
) -> Path | None:
    """The file named by `variable`, else the first `stem.{yaml,yml,json}` in `dirs`."""
    if environ.get(variable):
        return Path(environ[variable])
    for directory in dirs:
        for suffix in _SUFFIXES:
            candidate = directory / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def read_document(path: Path) -> dict[str, Any]:
    """A YAML or JSON file's mapping; errors never quote the file's text (a password)."""
    problem: str | None = None
    document: Any = None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problem = f"is not UTF-8 text (a byte at position {exc.start} cannot be read)"
    except OSError as exc:
        problem = f"cannot be read: {exc.strerror or type(exc).__name__}"
    else:
        if path.suffix == ".json":
            try:
                document = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                problem = f"is not valid JSON at line {exc.lineno}, column {exc.colno}"
        else:
            document, problem = _load_yaml(text)
    if problem is not None:
        # Raised outside the except blocks: the parser's exception (holding the
        # file's text) is not kept as the context.
        raise ConfigurationError(f"{path} {problem}")
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigurationError(f"{path} must hold a mapping, not a {type(document).__name__}")
    return document


def _load_yaml(text: str) -> tuple[Any, str | None]:
    try:
        import yaml  # noqa: PLC0415 - only for who reads clouds.yaml
    except ModuleNotFoundError:
        raise ConfigurationError(
            "reading clouds.yaml needs PyYAML: pip install 'vbs-async[cli]'"
        ) from None
    try:
        return yaml.safe_load(text), None
    except yaml.MarkedYAMLError as exc:
        # Never the snippet PyYAML quotes: it may be the password's line.
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, f"is not valid YAML{where}: {exc.problem or 'syntax error'}"
    except yaml.YAMLError:
        return None, "is not valid YAML"


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` merged into `base`, mappings key by key (as openstacksdk merges secure.yaml)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_cloud(
    name: str, environ: Mapping[str, str], dirs: list[Path]
) -> tuple[dict[str, Any], str]:
    """Cloud `name`'s settings, secure.yaml and its vendor profile merged in; (entry, source)."""
    clouds_file = find_file("clouds", "OS_CLIENT_CONFIG_FILE", environ, dirs)
    secure_file = find_file("secure", "OS_CLIENT_SECURE_FILE", environ, dirs)
    clouds = _clouds(clouds_file)
    if secure_file is not None and secure_file.is_file():
        secure = _clouds(secure_file)
        if name in secure:
            clouds[name] = merge(clouds.get(name, {}), secure[name])
    entry = clouds.get(name)
    if not isinstance(entry, dict):
        looked = (
            str(clouds_file)
            if clouds_file
            else f"clouds.yaml, .yml or .json in {', '.join(str(d) for d in dirs)}"
        )
        raise ConfigurationError(
            f"cloud {name!r} (OS_CLOUD) is not defined (looked in {looked}); "
            "set OS_CLIENT_CONFIG_FILE to the file that defines it"
        )
    profile_name = entry.get("profile") or entry.get("cloud")
    if profile_name is not None:
        profile = VENDOR_PROFILES.get(str(profile_name))
        if profile is None:
            raise ConfigurationError(
                f"cloud {name!r}: unknown profile {profile_name!r} "
                f"(known: {', '.join(VENDOR_PROFILES)})"
            )
        entry = merge(profile, entry)
    return entry, f"cloud {name!r} in {clouds_file}"


def _clouds(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    if not path.is_file():
        raise ConfigurationError(f"{path} does not exist")
    clouds = read_document(path).get("clouds") or {}
    if not isinstance(clouds, dict):
        raise ConfigurationError(f"{path}: clouds must be a mapping")
    return clouds


# -- reading one source's values -----------------------------------------------------

_ENV_NAMES: Final = {
    "token": ("OS_AUTH_TOKEN", "OS_TOKEN"),
    "access_key": ("OS_ACCESS_KEY", "OS_AK"),
    "secret_key": ("OS_SECRET_KEY", "OS_SK"),
    "security_token": ("OS_SECURITY_TOKEN",),
    "auth_url": ("OS_AUTH_URL",),
    "username": ("OS_USERNAME",),
    "password": ("OS_PASSWORD",),
    "domain_name": ("OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME"),
    "domain_id": ("OS_USER_DOMAIN_ID", "OS_DOMAIN_ID"),
    "project_id": ("OS_PROJECT_ID", "OS_TENANT_ID"),
    "project_name": ("OS_PROJECT_NAME", "OS_TENANT_NAME"),
    "agency_name": ("OS_AGENCY_NAME",),
    "agency_domain_name": ("OS_AGENCY_DOMAIN_NAME",),
    "delegated_project": ("OS_DELEGATED_PROJECT",),
    "cacert": ("OS_CACERT",),
    "cert": ("OS_CERT",),
    "key": ("OS_KEY",),
}
_YAML_NAMES: Final = {
    "token": ("auth.token",),
    "access_key": ("auth.ak", "auth.access_key"),
    "secret_key": ("auth.sk", "auth.secret_key"),
    "security_token": ("auth.security_token", "security_token"),
    "auth_url": ("auth.auth_url",),
    "username": ("auth.username", "auth.user_name"),
    "password": ("auth.password",),
    "domain_name": ("auth.user_domain_name", "auth.domain_name"),
    "domain_id": ("auth.user_domain_id", "auth.domain_id"),
    "project_id": ("auth.project_id", "auth.tenant_id"),
    "project_name": ("auth.project_name", "auth.tenant_name"),
    "agency_name": ("agency_name", "auth.agency_name"),
    "agency_domain_name": ("agency_domain_name", "auth.agency_domain_name"),
    "delegated_project": ("delegated_project", "auth.delegated_project"),
    "cacert": ("cacert",),
    "cert": ("cert",),
    "key": ("key",),
}


@attrs.frozen
class _Source:
    """One place settings come from: its values and the names the user sets them by."""

    values: dict[str, Any]
    names: Mapping[str, tuple[str, ...]]
    description: str

    def given(self, setting: str) -> bool:
        value = self.values.get(setting)
        return value is not None and value != ""

    def name(self, setting: str) -> str:
        return self.names[setting][0]

    def text(self, setting: str) -> str | None:
        if not self.given(setting):
            return None
        value = self.values[setting]
        if isinstance(value, bool) or not isinstance(value, str | int):
            # Never str() of it: a list would become a credential "[1, 2]".
            raise ConfigurationError(
                f"{self.description}: {self.name(setting)} must be text, "
                f"not a {type(value).__name__}"
            )
        return str(value)


def _environment(environ: Mapping[str, str]) -> _Source:
    values = {
        setting: next((environ[v] for v in variables if environ.get(v)), None)
        for setting, variables in _ENV_NAMES.items()
    }
    return _Source(values, _ENV_NAMES, "the environment")


def _cloud(entry: Mapping[str, Any], description: str) -> _Source:
    auth = entry.get("auth") or {}
    if not isinstance(auth, dict):
        raise ConfigurationError(f"{description}: auth must be a mapping")
    scopes = {"auth": auth, "": entry}
    values: dict[str, Any] = {}
    for setting, keys in _YAML_NAMES.items():
        for key in keys:
            scope, _, leaf = key.rpartition(".")
            if scopes[scope].get(leaf) not in (None, ""):
                values[setting] = scopes[scope][leaf]
                break
    if not any(values.get(s) for s in ("token", "access_key", "secret_key", "password")):
        # otcextensions keeps a key pair beside auth (for OBS): used only alone.
        values["access_key"] = entry.get("ak") or entry.get("access_key")
        values["secret_key"] = entry.get("sk") or entry.get("secret_key")
    return _Source(values, _YAML_NAMES, description)


# -- turning values into settings ------------------------------------------------------


def _credentials(source: _Source, auth_url: str | None) -> Auth:
    """The auth object `source` describes."""
    kinds = {
        "token": source.given("token"),
        "key pair": source.given("access_key") or source.given("secret_key"),
        "password": source.given("username") or source.given("password"),
    }
    chosen = [kind for kind, present in kinds.items() if present]
    names = source.name
    if len(chosen) > 1:
        raise ConfigurationError(
            f"{source.description} gives more than one kind of credentials "
            f"({' and '.join(chosen)}); keep only one of {names('token')}, "
            f"{names('access_key')}/{names('secret_key')}, {names('password')}"
        )
    if not chosen:
        raise ConfigurationError(
            f"{source.description} gives no credentials: set {names('token')}, or "
            f"{names('access_key')} and {names('secret_key')}, or {names('auth_url')}, "
            f"{names('username')}, {names('password')} and {names('domain_name')}"
        )

    def required(*settings: str) -> list[str]:
        missing = [names(s) for s in settings if not source.given(s)]
        if missing:
            raise ConfigurationError(
                f"{source.description}: {', '.join(missing)} must be set as well"
            )
        return [str(source.text(s)) for s in settings]

    if chosen == ["token"]:
        return TokenAuth(required("token")[0])
    if chosen == ["key pair"]:
        access_key, secret_key = required("access_key", "secret_key")
        return AKSKAuth(access_key, secret_key, security_token=source.text("security_token"))
    username, password = required("username", "password")
    if auth_url is None:
        required("auth_url")
    if not source.given("domain_name") and not source.given("domain_id"):
        required("domain_name")
    return PasswordAuth(
        str(auth_url),
        username,
        password,
        source.text("domain_name"),
        domain_id=None if source.given("domain_name") else source.text("domain_id"),
    )


def _agency(base: Auth, source: _Source, auth_url: str | None) -> Auth:
    """`base` as the delegated user of the configured agency, if one is configured."""
    name, domain = source.text("agency_name"), source.text("agency_domain_name")
    if name is None and domain is None:
        return base
    if name is None or domain is None:
        missing = source.name("agency_domain_name" if name else "agency_name")
        raise ConfigurationError(f"{source.description}: {missing} must be set as well")
    if not isinstance(base, PasswordAuth | AKSKAuth):
        raise ConfigurationError(
            f"{source.description}: an agency is assumed with a password or a key pair, "
            "not with a token"
        )
    if auth_url is None:
        raise ConfigurationError(
            f"{source.description}: assuming an agency needs IAM's endpoint; "
            f"set {source.name('auth_url')} or a known region"
        )
    return AgencyAuth(base, agency_domain=domain, agency_name=name, auth_url=auth_url)


def _tls(source: _Source, entry: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    """`VBSClient(ssl=...)` from cacert/cert/key and verify (or OS_INSECURE)."""
    verify = entry.get("verify", True)
    if not isinstance(verify, bool):
        raise ConfigurationError(f"{source.description}: verify must be true or false")
    if environ.get("OS_INSECURE", "").lower() in _TRUE:
        verify = False
    if not verify:
        logger.warning(
            "%s turns TLS verification off (verify: false / OS_INSECURE): certificates "
            "are NOT checked",
            source.description,
        )
        return False
    ca_bundle, cert, key = source.text("cacert"), source.text("cert"), source.text("key")
    if ca_bundle is None and cert is None and key is None:
        return True
    return tls_context(ca_bundle, cert=cert, key=key)


def resolve(
    environ: Mapping[str, str],
    overrides: Mapping[str, Any],
    *,
    cwd: Path | None = None,
    home: Path | None = None,
) -> Settings:
    """Work out the settings (see the module's docstring for precedence).

    Raises:
        ConfigurationError: A setting is missing or contradicts another; the
            message names the variable or key to set.
    """
    cloud_name = overrides.get("cloud") or environ.get("OS_CLOUD")
    entry: dict[str, Any] = {}
    if cloud_name:
        dirs = config_dirs(cwd or Path.cwd(), home or Path.home())
        entry, description = load_cloud(str(cloud_name), environ, dirs)
        source = _cloud(entry, description)
    else:
        source = _environment(environ)

    region = overrides.get("region") or entry.get("region_name") or environ.get("OS_REGION_NAME")
    regions = entry.get("regions")
    if not region and isinstance(regions, list) and regions:
        region = regions[0]
    if region is not None and not isinstance(region, str):
        raise ConfigurationError(
            f"{source.description}: region_name must be text, not a {type(region).__name__}"
        )

    auth_url = source.text("auth_url")
    if auth_url is not None and "{region_name}" in auth_url:
        if not region:
            raise ConfigurationError(f"{source.description}: the profile's IAM URL needs a region")
        auth_url = auth_url.replace("{region_name}", region)
    if auth_url is None and region in KNOWN_REGIONS:
        auth_url = KNOWN_REGIONS[region].iam
    if auth_url is not None and "://" not in auth_url:
        auth_url = f"https://{auth_url}"  # openstacksdk's otc-swiss profile omits it

    auth = overrides.get("auth")
    if auth is None:
        auth = _agency(_credentials(source, auth_url), source, auth_url)
    elif not isinstance(auth, Auth):
        raise ConfigurationError("the auth override must be a vbs_async auth object")

    endpoint = (
        overrides.get("endpoint")
        or environ.get("VBS_ENDPOINT")
        or entry.get("vbs_endpoint_override")
    )
    project = (
        source.text("delegated_project") or source.text("project_id") or source.text("project_name")
    )
    return Settings(
        endpoint=None if not endpoint else str(endpoint),
        auth=auth,
        source=source.description,
        region=region or None,
        iam_endpoint=auth_url,
        ssl=_tls(source, entry, environ),
        project=project,
    )


def resolve_from_os(overrides: Mapping[str, Any]) -> Settings:
    """`resolve` with the process's environment, working directory and home."""
    return resolve(os.environ, overrides)
