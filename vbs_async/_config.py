"""Endpoint, credentials, TLS and default project, read the way the OTC tools read them.

`resolve` is a function of an environment mapping and the files it names, so
that every path through it is tested without touching the real environment.

Why not `openstack.config` itself: it brings 25 packages and 58 MB into an
environment, and importing it takes 0.47 s on the machine this was measured
on (vs. 0.02 s for this module and PyYAML), for the handful of rules below.
They follow openstacksdk's loader (`openstack/config/loader.py`); where the
tools users have for Open Telekom Cloud disagree, each rule says whose it is
(otcextensions' `agency` plugin, `otcextensions/common/agency_auth.py`, and
AK/SK reader, `otcextensions/sdk/__init__.py` `get_ak_sk`; the Terraform
provider; gophertelekomcloud). One rule is above all: a setting that names an
agency, a domain or a project is honoured, or refused with a
`ConfigurationError` naming the key, never ignored.

- files: `OS_CLIENT_CONFIG_FILE` (refused if missing), else the first of
  `clouds.yaml`, `clouds.yml`, `clouds.json` in the working directory,
  `$XDG_CONFIG_HOME/openstack`, `~/.config/openstack`, each
  `$XDG_CONFIG_DIRS` entry's `openstack` (`/etc/xdg/openstack`) and
  `/etc/openstack`; `secure.yaml` (or `OS_CLIENT_SECURE_FILE`) found the same
  way is merged over it, so that passwords can live apart;
- `profile: otc` / `otc-swiss` (openstacksdk's vendor profiles, the IAM URL
  and the regions) under the cloud's own settings;
- the cloud named by the `cloud` override or `OS_CLOUD`; else the `OS_*`
  variables if any is set; else the only cloud of clouds.yaml, if it has one.

Precedence, first match wins:

- endpoint: the `endpoint` override, `VBS_ENDPOINT`, the cloud's
  `vbs_endpoint_override` or `volume_backup_endpoint_override`
  (`OS_VBS_ENDPOINT_OVERRIDE`); else none here, and the client takes it
  from each token's catalog or the known regions (`_endpoints`);
- region: the `region` override, the cloud's `region_name` (or first of
  `regions`), `OS_REGION_NAME`, the profile's first region, the prefix of
  the project's name (`eu-de_prod`, as gophertelekomcloud);
- credentials: the `auth` override; else the cloud's `auth` section (or the
  `OS_*` variables): a token, a key pair or a password (`auth_type`, if
  given, must agree); with an agency named in any vocabulary, an
  `AgencyAuth` over them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from ._agency import AgencyAuth
from ._auth import Auth, TokenAuth
from ._endpoints import KNOWN_REGIONS
from ._errors import ConfigurationError
from ._iam import PasswordAuth, normalise_auth_url
from ._signing import AKSKAuth
from ._tls import SSLSetting, tls_context
from ._validation import check_endpoint

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
SYSTEM_CONFIG_ROOT: Path = Path("/etc")
"""Where `/etc/openstack` and `/etc/xdg/openstack` live: tests point it at a temporary folder."""

_SUFFIXES: Final = (".yaml", ".yml", ".json")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})
# openstacksdk builds its "envvars" cloud from any OS_* variable but these
# selectors (loader.py `_get_os_environ`), and the variables of test runners.
_SELECTORS: Final = frozenset(
    {
        "OS_CLOUD",
        "OS_REGION_NAME",
        "OS_CLIENT_CONFIG_FILE",
        "OS_CLIENT_SECURE_FILE",
        "OS_CLOUD_NAME",
    }
)
_NOT_SETTINGS: Final = ("OS_TEST", "OS_STD", "OS_LOG")
# otcextensions' usual endpoint overrides name the versioned API root, often with the
# project's placeholder (keystone's `%(project_id)s`, `$(tenant_id)s`, or
# `{project_id}`): the client adds `/v2/{project}` itself, so it is taken off.
_API_ROOT: Final = re.compile(
    r"/v2(?:/(?:%\((?:project|tenant)_id\)s|\$\((?:project|tenant)_id\)s"
    r"|\{(?:project|tenant)_id\}))?/?$"
)
# A project's name starts with its region (`eu-de_prod`, `eu-ch2`): gophertelekomcloud
# takes the region from it when none is given.
_REGION_PREFIX: Final = re.compile(r"^([a-z]{2}-[a-z]+[0-9]*)(?:_|$)")
# auth_type values (openstacksdk/keystoneauth's names, otcextensions' `agency`) and
# the credentials each one takes.
_AUTH_TYPES: Final = {
    "password": ("password",),
    "v3password": ("password",),
    "token": ("token",),
    "v3token": ("token",),
    "admin_token": ("token",),
    "token_endpoint": ("token",),  # openstacksdk maps it to admin_token
    "agency": ("password", "key pair", "token"),
    "aksk": ("key pair",),  # gophertelekomcloud's name (clouds.yaml auth_type: aksk)
}


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


# -- finding the files ---------------------------------------------------------------------


def config_dirs(
    cwd: Path, home: Path, environ: Mapping[str, str], system_root: Path | None = None
) -> list[Path]:
    """Where openstacksdk looks for its files, in order (its `CONFIG_SEARCH_PATH`).

    openstacksdk takes the XDG folders from platformdirs; with more than one
    entry in `XDG_CONFIG_DIRS` it joins them into one path that names no
    folder, so it finds none of them: here each entry is searched.
    """
    root = SYSTEM_CONFIG_ROOT if system_root is None else system_root
    config_home = environ.get("XDG_CONFIG_HOME", "").strip()
    user = Path(config_home) if config_home else home / ".config"
    system = environ.get("XDG_CONFIG_DIRS", "").strip()
    site = [Path(d) for d in system.split(os.pathsep) if d] if system else [root / "xdg"]
    dirs = [
        cwd,
        user / "openstack",
        home / ".config" / "openstack",
        *(d / "openstack" for d in site),
        root / "openstack",
    ]
    return list(dict.fromkeys(dirs))


def find_file(
    stem: str, variable: str, environ: Mapping[str, str], dirs: Sequence[Path]
) -> Path | None:
    """The file named by `variable`, else the first `stem.{yaml,yml,json}` in `dirs`.

    Raises:
        ConfigurationError: `variable` names a file that does not exist
            (openstacksdk would silently read another: maybe another account's).
    """
    named = environ.get(variable)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"{variable} names {path}, which does not exist")
        return path
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
        # Not even its problem text: "found undefined alias 'Zq9TopSecret'" quotes
        # an unquoted password starting with * or !.
        return None, f"is not valid YAML{where}"
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


@attrs.frozen
class _Files:
    """The clouds of clouds.yaml with secure.yaml merged in, and where they came from."""

    clouds: dict[str, Any]
    clouds_file: Path | None
    dirs: Sequence[Path]

    def looked(self) -> str:
        if self.clouds_file is not None:
            return str(self.clouds_file)
        return f"clouds.yaml, .yml or .json in {', '.join(str(d) for d in self.dirs)}"


def _files(environ: Mapping[str, str], dirs: Sequence[Path]) -> _Files:
    clouds_file = find_file("clouds", "OS_CLIENT_CONFIG_FILE", environ, dirs)
    secure_file = find_file("secure", "OS_CLIENT_SECURE_FILE", environ, dirs)
    clouds = _clouds(clouds_file)
    for name, entry in _clouds(secure_file).items():
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{secure_file}: cloud {name!r} must be a mapping")
        base = clouds.get(name, {})
        clouds[name] = merge(base, entry) if isinstance(base, dict) else entry
    return _Files(clouds, clouds_file, dirs)


def _clouds(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    clouds = read_document(path).get("clouds") or {}
    if not isinstance(clouds, dict):
        raise ConfigurationError(f"{path}: clouds must be a mapping")
    return clouds


def load_cloud(name: str, files: _Files, *, how: str = "OS_CLOUD") -> tuple[dict[str, Any], str]:
    """Cloud `name`'s settings, its vendor profile merged in; (entry, source)."""
    entry = files.clouds.get(name)
    if not isinstance(entry, dict):
        raise ConfigurationError(
            f"cloud {name!r} ({how}) is not defined (looked in {files.looked()}); "
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
    return entry, f"cloud {name!r} in {files.clouds_file}"


# -- reading one source's values -----------------------------------------------------

# Every spelling of each setting, first found wins. The vocabularies: openstacksdk
# (OS_*), the Terraform provider and gophertelekomcloud (OS_AGENCY_*,
# OS_DELEGATED_PROJECT, OS_ACCESS_KEY, OS_PROJECT_DOMAIN_NAME as the user's domain),
# otcextensions (OS_AUTH_TYPE=agency with OS_TARGET_*, OS_AK/OS_SK).
_ENV_NAMES: Final = {
    "auth_type": ("OS_AUTH_TYPE",),
    "token": ("OS_AUTH_TOKEN", "OS_TOKEN"),
    "access_key": ("OS_ACCESS_KEY", "OS_AK"),
    "secret_key": ("OS_SECRET_KEY", "OS_SK"),
    "security_token": ("OS_SECURITY_TOKEN",),
    "auth_url": ("OS_AUTH_URL",),
    "username": ("OS_USERNAME",),
    "user_id": ("OS_USER_ID",),
    "password": ("OS_PASSWORD",),
    "domain_name": ("OS_USER_DOMAIN_NAME",),
    "domain_id": ("OS_USER_DOMAIN_ID",),
    "any_domain_name": ("OS_DOMAIN_NAME",),
    "any_domain_id": ("OS_DOMAIN_ID",),
    "project_domain_name": ("OS_PROJECT_DOMAIN_NAME",),
    "project_domain_id": ("OS_PROJECT_DOMAIN_ID",),
    "project_id": ("OS_PROJECT_ID", "OS_TENANT_ID"),
    "project_name": ("OS_PROJECT_NAME", "OS_TENANT_NAME"),
    "agency_name": ("OS_AGENCY_NAME", "OS_TARGET_AGENCY_NAME"),
    "agency_domain_name": ("OS_AGENCY_DOMAIN_NAME", "OS_TARGET_DOMAIN_NAME"),
    "agency_domain_id": ("OS_TARGET_DOMAIN_ID",),
    "agency_project_id": ("OS_TARGET_PROJECT_ID",),
    "delegated_project": ("OS_DELEGATED_PROJECT", "OS_TARGET_PROJECT_NAME"),
    "cacert": ("OS_CACERT",),
    "cert": ("OS_CERT",),
    "key": ("OS_KEY",),
    "insecure": ("OS_INSECURE",),
    "endpoint_override": ("OS_VBS_ENDPOINT_OVERRIDE", "OS_VOLUME_BACKUP_ENDPOINT_OVERRIDE"),
}
# The same in clouds.yaml: `auth.x` in the auth section, `x` beside it (openstacksdk
# moves a plugin's options found beside `auth` into it, loader.py `_validate_auth`).
_YAML_NAMES: Final = {
    "auth_type": ("auth_type", "auth_plugin"),
    "token": ("auth.token", "auth.auth_token"),
    "access_key": ("auth.ak", "auth.access_key"),
    "secret_key": ("auth.sk", "auth.secret_key"),
    "security_token": ("auth.security_token", "security_token"),
    "auth_url": ("auth.auth_url", "auth_url"),
    "username": ("auth.username", "auth.user_name", "username"),
    "user_id": ("auth.user_id", "user_id"),
    "password": ("auth.password", "password"),
    "domain_name": ("auth.user_domain_name", "user_domain_name"),
    "domain_id": ("auth.user_domain_id", "user_domain_id"),
    "any_domain_name": ("auth.domain_name", "domain_name"),
    "any_domain_id": ("auth.domain_id", "domain_id"),
    "project_domain_name": ("auth.project_domain_name", "project_domain_name"),
    "project_domain_id": ("auth.project_domain_id", "project_domain_id"),
    "project_id": ("auth.project_id", "project_id", "auth.tenant_id", "tenant_id"),
    "project_name": ("auth.project_name", "project_name", "auth.tenant_name", "tenant_name"),
    "agency_name": (
        "agency_name",
        "auth.agency_name",
        "auth.target_agency_name",
        "target_agency_name",
    ),
    "agency_domain_name": (
        "agency_domain_name",
        "auth.agency_domain_name",
        "auth.target_domain_name",
        "target_domain_name",
    ),
    "agency_domain_id": ("auth.target_domain_id", "target_domain_id"),
    "agency_project_id": ("auth.target_project_id", "target_project_id"),
    "delegated_project": (
        "delegated_project",
        "auth.delegated_project",
        "auth.target_project_name",
        "target_project_name",
    ),
    "cacert": ("cacert",),
    "cert": ("cert",),
    "key": ("key",),
    "insecure": ("insecure",),
    "verify": ("verify",),
    "endpoint_override": ("vbs_endpoint_override", "volume_backup_endpoint_override"),
}
# Settings that say which account: two spellings giving two values are refused, not
# one of them picked.
_ONE_VALUE: Final = ("agency_name", "agency_domain_name", "delegated_project")
_SECRETS: Final = frozenset({"token", "secret_key", "security_token", "password"})
# The otcextensions agency plugin's own keys: read by auth_type agency only.
_TARGET_KEY: Final = re.compile(r"(^|\.|OS_)(target_|TARGET_)")


@attrs.frozen
class _Source:
    """One place settings come from: its values, the names the user set them by."""

    values: dict[str, Any]
    names: Mapping[str, tuple[str, ...]]
    description: str
    used: dict[str, str] = attrs.field(factory=dict)

    def given(self, setting: str) -> bool:
        value = self.values.get(setting)
        return value is not None and value != ""

    def name(self, setting: str) -> str:
        """The spelling the user gave, else the first one."""
        return self.used.get(setting) or self.names[setting][0]

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

    def flag(self, setting: str) -> bool | None:
        """A yes/no setting (openstacksdk's BOOL_KEYS); None when not given."""
        value = self.values.get(setting)
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigurationError(f"{self.description}: {self.name(setting)} must be true or false")


def _pick(setting: str, found: list[tuple[str, Any]], description: str) -> tuple[str, Any] | None:
    """The first (name, value) given; two values for one account-choosing setting are refused."""
    if not found:
        return None
    first, value = found[0]
    if setting in _ONE_VALUE:
        other = next(((n, v) for n, v in found if str(v) != str(value)), None)
        if other is not None:
            raise ConfigurationError(
                f"{description}: {first} ({value!r}) and {other[0]} ({other[1]!r}) name "
                "different values for the same setting; keep one"
            )
    return found[0]


# A domain's ID in Open Telekom Cloud: 32 hex digits.
_DOMAIN_ID: Final = re.compile(r"^[0-9a-fA-F]{32}$")


def _target_domain_id_as_name(source: _Source) -> _Source:
    """A `target_domain_id` that is no ID read as the domain's name.

    otcextensions sends `target_domain_id` as the domain's ID; gophertelekomcloud's
    clouds.yaml struct (openstack/clouds.go) maps the same key to `AgencyDomainName`.
    A value that is not 32 hex digits cannot be an OTC domain ID (IAM would refuse it),
    so it is taken as gophertelekomcloud takes it: the delegating account's name.
    """
    value = source.values.get("agency_domain_id")
    if not source.given("agency_domain_id") or not isinstance(value, str):
        return source
    if _DOMAIN_ID.match(value):
        return source
    key = source.name("agency_domain_id")
    if source.given("agency_domain_name") and source.text("agency_domain_name") != value:
        raise ConfigurationError(
            f"{source.description}: {source.name('agency_domain_name')} "
            f"({source.text('agency_domain_name')!r}) and {key} ({value!r}) name different "
            "values for the same setting; keep one"
        )
    source.values["agency_domain_name"], source.used["agency_domain_name"] = value, key
    del source.values["agency_domain_id"]
    source.used.pop("agency_domain_id", None)
    return source


def _environment(environ: Mapping[str, str]) -> _Source:
    values: dict[str, Any] = {}
    used: dict[str, str] = {}
    for setting, variables in _ENV_NAMES.items():
        found = [(v, environ[v]) for v in variables if environ.get(v)]
        picked = _pick(setting, found, "the environment")
        if picked is not None:
            used[setting], values[setting] = picked
    return _target_domain_id_as_name(_Source(values, _ENV_NAMES, "the environment", used))


def _environment_sets_something(environ: Mapping[str, str]) -> bool:
    """Whether openstacksdk would make its `envvars` cloud of these variables."""
    return any(
        name.startswith("OS_")
        and name not in _SELECTORS
        and not name.startswith(_NOT_SETTINGS)
        and value != ""
        for name, value in environ.items()
    )


def _cloud(entry: Mapping[str, Any], description: str) -> _Source:
    auth = entry.get("auth") or {}
    if not isinstance(auth, dict):
        raise ConfigurationError(f"{description}: auth must be a mapping")
    scopes = {"auth": auth, "": entry}
    values: dict[str, Any] = {}
    used: dict[str, str] = {}
    for setting, keys in _YAML_NAMES.items():
        found = []
        for key in keys:
            scope, _, leaf = key.rpartition(".")
            if scopes[scope].get(leaf) not in (None, ""):
                found.append((key, scopes[scope][leaf]))
        picked = _pick(setting, found, description)
        if picked is not None:
            used[setting], values[setting] = picked
    if not any(values.get(s) for s in ("token", "access_key", "secret_key", "password")):
        # otcextensions keeps a key pair beside auth (get_ak_sk, for OBS): used only alone.
        for setting, keys in (
            ("access_key", ("ak", "access_key")),
            ("secret_key", ("sk", "secret_key")),
        ):
            beside = next((k for k in keys if entry.get(k) not in (None, "")), None)
            if beside is not None:
                values[setting], used[setting] = entry[beside], beside
    return _target_domain_id_as_name(_Source(values, _YAML_NAMES, description, used))


# -- turning values into settings ------------------------------------------------------


def _auth_type(source: _Source) -> str | None:
    """The cloud's `auth_type`, checked: an unknown one is refused by name."""
    auth_type = source.text("auth_type")
    if auth_type is None:
        return None
    if auth_type not in _AUTH_TYPES:
        raise ConfigurationError(
            f"{source.description}: {source.name('auth_type')} {auth_type!r} is not supported "
            f"(supported: {', '.join(_AUTH_TYPES)}; a key pair needs none)"
        )
    return auth_type


def _credentials(source: _Source, auth_url: str | None, auth_type: str | None) -> Auth:
    """The auth object `source` describes (the delegated user's, with an agency)."""
    kinds = {
        "token": source.given("token"),
        "key pair": source.given("access_key") or source.given("secret_key"),
        "password": any(source.given(s) for s in ("username", "user_id", "password")),
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
    if auth_type is not None and chosen[0] not in _AUTH_TYPES[auth_type]:
        raise ConfigurationError(
            f"{source.description}: {names('auth_type')} is {auth_type!r}, "
            f"but the credentials given are a {chosen[0]}"
        )

    if chosen == ["token"]:
        return TokenAuth(_required(source, "token")[0], auth_url=auth_url)
    if chosen == ["key pair"]:
        return _key_pair(source, auth_url)
    return _password(source, auth_url)


def _required(source: _Source, *settings: str) -> list[str]:
    """The settings' values; a ConfigurationError naming those missing."""
    missing = [source.name(s) for s in settings if not source.given(s)]
    if missing:
        raise ConfigurationError(f"{source.description}: {', '.join(missing)} must be set as well")
    return [str(source.text(s)) for s in settings]


# The user's domain, first found: user_domain_*, then domain_* (the Terraform provider's
# `domain_name`), then project_domain_* (the Terraform provider and gophertelekomcloud
# take it for the user's when it is the only one: in OTC the project's account is the
# user's). An ID before a name, as keystoneauth1 (identity/v3/password.py: user_domain_id
# first) and otcextensions; openstacksdk copies domain_id into user_domain_id when that
# is unset, so OS_DOMAIN_ID comes before OS_USER_DOMAIN_NAME.
_DOMAIN_TIERS: Final = (
    ("domain_id", "any_domain_id", "domain_name", "any_domain_name"),
    ("project_domain_id", "project_domain_name"),
)


def _user_domain(source: _Source) -> tuple[str, str] | None:
    """("name" or "id", the setting that gives it) of the user's domain, if given."""
    for tier in _DOMAIN_TIERS:
        for setting in tier:
            value = source.text(setting)
            if value is not None:
                return ("name" if setting.endswith("name") else "id", setting)
    return None


def _by_kind(source: _Source, settings: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The first (key, value) `source` gives of `settings`, by kind: an ID, or a name/value."""
    found: dict[str, tuple[str, str]] = {}
    for setting in settings:
        value = source.text(setting)
        if value is not None:
            found.setdefault("id" if setting.endswith("_id") else "value", (setting, value))
    return found


def _disagreement(
    one: _Source, these: Sequence[str], other: _Source, those: Sequence[str]
) -> tuple[str, str, str, str] | None:
    """(key, value, other key, other value) when the two do not name the same thing.

    A name and an ID cannot be compared: unless a value of the same kind agrees, they
    are a disagreement too.
    """
    mine, theirs = _by_kind(one, these), _by_kind(other, those)
    if not mine or not theirs:
        return None
    shared = [kind for kind in mine if kind in theirs]
    differing = [kind for kind in shared if mine[kind][1] != theirs[kind][1]]
    if shared and not differing:
        return None
    kind = differing[0] if differing else next(iter(mine))
    other_kind = kind if differing else next(iter(theirs))
    (setting, value), (other_setting, other_value) = mine[kind], theirs[other_kind]
    return one.name(setting), value, other.name(other_setting), other_value


def _check_project_domain(source: _Source) -> None:
    """A project's domain other than the user's is refused, never ignored.

    openstacksdk scopes the project in `project_domain_*`; here projects are found
    in the user's own account (IAM's project list), so a project domain that is not
    the user's (or cannot be compared: a name beside an ID) would be ignored. Only a
    project's name is looked up in a domain (keystone ignores it beside an ID).
    """
    if not source.given("project_name"):
        return
    found = _disagreement(source, _DOMAIN_TIERS[1], source, _DOMAIN_TIERS[0])
    if found is not None:
        key, value, user_key, user_value = found
        raise ConfigurationError(
            f"{source.description}: {key} ({value!r}) names the project's domain and "
            f"{user_key} ({user_value!r}) the user's; vbs-async finds projects in the "
            f"user's account only: remove {key}, or give the same domain the same way"
        )


def _key_pair(source: _Source, auth_url: str | None) -> AKSKAuth:
    access_key, secret_key = _required(source, "access_key", "secret_key")
    ids = [s for tier in _DOMAIN_TIERS for s in tier if s.endswith("_id") and source.given(s)]
    domain = _user_domain(source)
    if domain is not None and domain[0] == "name" and not ids:
        # IAM's calls signed with a key pair name the account by ID (X-Domain-Id).
        raise ConfigurationError(
            f"{source.description}: {source.name(domain[1])} names the account by name, "
            f"but a key pair's IAM calls need its ID: set {source.names['domain_id'][0]} "
            "instead"
        )
    return AKSKAuth(
        access_key,
        secret_key,
        security_token=source.text("security_token"),
        domain_id=source.text(ids[0]) if ids else None,
        auth_url=auth_url,
    )


def _password(source: _Source, auth_url: str | None) -> PasswordAuth:
    (password,) = _required(source, "password")
    if auth_url is None:
        _required(source, "auth_url")
    user_id = source.text("user_id")
    if user_id is not None and source.given("username"):
        raise ConfigurationError(
            f"{source.description}: {source.name('username')} and {source.name('user_id')} "
            "both name the user; keep one"
        )
    domain = _user_domain(source)
    if user_id is None:
        _required(source, "username")
        if domain is None:
            _required(source, "domain_name")
    kind, setting = domain or ("", "")
    return PasswordAuth(
        str(auth_url),
        source.text("username"),
        password,
        source.text(setting) if kind == "name" else None,
        domain_id=source.text(setting) if kind == "id" else None,
        user_id=user_id,
    )


def _name_beside_id(source: _Source, by_name: str, by_id: str) -> None:
    """A name and an ID of the agency's account (or project) from two vocabularies: refused.

    otcextensions' own pair (`target_domain_name` and `target_domain_id`) keeps its
    rule, the ID first; a Terraform name beside an otcextensions ID cannot be compared.
    """
    if not (source.given(by_name) and source.given(by_id)):
        return
    name_key, id_key = source.name(by_name), source.name(by_id)
    if _TARGET_KEY.search(name_key) and _TARGET_KEY.search(id_key):
        return
    raise ConfigurationError(
        f"{source.description}: {name_key} ({source.text(by_name)!r}) and {id_key} "
        f"({source.text(by_id)!r}) name the agency's "
        f"{'account' if 'domain' in by_name else 'project'}, one by name and one by ID, "
        "which cannot be compared; keep one"
    )


def _agency(base: Auth, source: _Source, auth_url: str | None, auth_type: str | None) -> Auth:
    """`base` as the delegated user of the configured agency, if one is configured."""
    name = source.text("agency_name")
    domain = source.text("agency_domain_name")
    domain_id = source.text("agency_domain_id")
    others = [s for s in ("agency_domain_name", "agency_domain_id", "agency_project_id",
                          "delegated_project") if source.given(s)]  # fmt: skip
    for by_name, by_id in (
        ("agency_domain_name", "agency_domain_id"),
        ("delegated_project", "agency_project_id"),
    ):
        _name_beside_id(source, by_name, by_id)
    if auth_type is not None and auth_type != "agency":
        for setting in ("agency_name", *others):
            if source.given(setting) and _TARGET_KEY.search(source.name(setting)):
                raise ConfigurationError(
                    f"{source.description}: {source.name(setting)} belongs to auth_type agency, "
                    f"but {source.name('auth_type')} is {auth_type!r}: set it to agency, or "
                    f"remove {source.name(setting)}"
                )
    if name is None:
        if auth_type == "agency" or others:
            what = source.name(others[0]) if others else f"{source.name('auth_type')} agency"
            raise ConfigurationError(
                f"{source.description}: {what} needs the agency's name: set "
                f"{source.names['agency_name'][0]} (or target_agency_name)"
            )
        return base
    if domain is None and domain_id is None:
        raise ConfigurationError(
            f"{source.description}: {source.name('agency_name')} needs the delegating "
            f"account: set {source.names['agency_domain_name'][0]} (or target_domain_id)"
        )
    if auth_url is None:
        raise ConfigurationError(
            f"{source.description}: assuming an agency needs IAM's endpoint; "
            f"set {source.name('auth_url')} or a known region"
        )
    if not isinstance(base, PasswordAuth | AKSKAuth | TokenAuth):
        raise ConfigurationError(f"{source.description}: an agency needs credentials of its own")
    # otcextensions prefers target_domain_id over target_domain_name.
    return AgencyAuth(
        base,
        agency_domain=None if domain_id is not None else domain,
        agency_name=name,
        domain_id=domain_id,
        auth_url=auth_url,
    )


def _tls(source: _Source, from_cloud: bool) -> SSLSetting:
    """`VBSClient(ssl=...)` from cacert/cert/key and verify/insecure."""
    verify = source.values.get("verify", True) if from_cloud else True
    if not isinstance(verify, bool):
        raise ConfigurationError(f"{source.description}: verify must be true or false")
    # openstacksdk: insecure wins over verify and cacert (cloud_region.get_requests_verify_args).
    if source.flag("insecure"):
        verify = False
    if not verify:
        logger.warning(
            "%s turns TLS verification off (%s): certificates are NOT checked",
            source.description,
            source.name("insecure") if source.flag("insecure") else "verify: false",
        )
        return False
    paths = [source.text(s) for s in ("cacert", "cert", "key")]
    ca_bundle, cert, key = (None if p is None else Path(p).expanduser() for p in paths)
    for setting, path in zip(("cacert", "cert", "key"), (ca_bundle, cert, key), strict=True):
        if path is not None and not path.exists():
            raise ConfigurationError(
                f"{source.description}: {source.name(setting)} names {path}, which does not exist"
            )
    if ca_bundle is None and cert is None and key is None:
        return True
    return tls_context(ca_bundle, cert=cert, key=key)


def _region(
    overrides: Mapping[str, Any], entry: Mapping[str, Any], environ: Mapping[str, str],
    source: _Source, project: str | None,
) -> str | None:  # fmt: skip
    own, variable = entry.get("region_name"), environ.get("OS_REGION_NAME")
    if own and variable and own != variable and not overrides.get("region"):
        # The openstack command refuses it too; the Terraform provider takes the variable.
        raise ConfigurationError(
            f"{source.description}: region_name is {own!r} but the environment's "
            f"OS_REGION_NAME is {variable!r}; unset OS_REGION_NAME, or choose with --region"
        )
    region = overrides.get("region") or own or variable
    regions = entry.get("regions")
    if not region and isinstance(regions, list) and regions:
        region = regions[0]
        if isinstance(region, dict):  # openstacksdk's {name: ..., values: {...}} form
            region = region.get("name")
    if not region and project is not None:
        prefix = _REGION_PREFIX.match(project)
        region = prefix.group(1) if prefix else None
    if region is not None and not isinstance(region, str):
        raise ConfigurationError(
            f"{source.description}: region_name must be text, not a {type(region).__name__}"
        )
    return region or None


def _auth_url(source: _Source, entry: Mapping[str, Any], region: str | None) -> str | None:
    auth_url = source.text("auth_url")
    if auth_url is not None and "{region_name}" in auth_url:
        if not region:
            raise ConfigurationError(f"{source.description}: the profile's IAM URL needs a region")
        profile = VENDOR_PROFILES.get(str(entry.get("profile") or entry.get("cloud")))
        served = profile.get("regions", []) if profile else []
        if served and region not in served:
            # Neither openstacksdk nor otcextensions catches it: the host does not exist.
            raise ConfigurationError(
                f"{source.description}: profile {entry.get('profile')!r} serves "
                f"{', '.join(served)}, not {region!r} (its IAM host would be "
                f"{auth_url.replace('{region_name}', region)}, which does not exist); "
                + ("use profile: otc-swiss" if region == "eu-ch2" else "set auth.auth_url")
            )
        auth_url = auth_url.replace("{region_name}", region)
    if auth_url is None and region in KNOWN_REGIONS:
        auth_url = KNOWN_REGIONS[region].iam
    if auth_url is not None and "://" not in auth_url:
        auth_url = f"https://{auth_url}"  # openstacksdk's otc-swiss profile omits it
    return _checked_url(source, "auth_url", auth_url, normalise_auth_url)


def _checked_url(
    source: _Source, setting: str, url: str | None, check: Callable[[str], object]
) -> str | None:
    """`url` unchanged, or a `ConfigurationError` naming its key (credentials never shown)."""
    if url is not None:
        try:
            check(url)
        except ValueError as exc:
            raise ConfigurationError(
                f"{source.description}: {source.name(setting)}: {exc}"
            ) from None
    return url


# The environment's settings that meet a named cloud: (settings, fill, compare). A group
# the cloud leaves empty is filled from the environment when `fill`: the Terraform
# provider (`setIfEmpty`, common/cfg/config.go: the environment first, clouds.yaml fills
# what is empty), gophertelekomcloud (`mergeClouds(cloud, cloudFromEnv())`) and
# `openstack --os-cloud` all assume the environment's agency, and take its project and
# CA. A group both give must agree when `compare`, else it is refused naming both: a
# leftover OS_* variable never silently loses to (or wins over) the cloud's account.
# The user and their domain are compared only: the environment's never log in to a
# cloud that names none (its key pair or token is the account).
_ENV_MEETS_CLOUD: Final = (
    (("auth_type",), True, True),
    (("agency_name",), True, True),
    (("agency_domain_id", "agency_domain_name"), True, True),
    (("agency_project_id", "delegated_project"), True, True),
    (("project_id", "project_name"), True, True),
    (("user_id", "username"), False, True),
    (_DOMAIN_TIERS[0], False, True),
    (_DOMAIN_TIERS[1], False, True),
    (("cacert",), True, False),
    (("cert",), True, False),
    (("key",), True, False),
)


def _environment_meets_cloud(source: _Source, environ: Mapping[str, str]) -> None:
    """The environment's `OS_*` settings over the named cloud `source` (see above)."""
    env = _environment(environ)
    for settings, fill, compare in _ENV_MEETS_CLOUD:
        if not any(env.given(s) for s in settings):
            continue
        if not any(source.given(s) for s in settings):
            if fill:
                for setting in settings:
                    if env.given(setting):
                        source.values[setting] = env.values[setting]
                        source.used[setting] = env.name(setting)
            continue
        found = _disagreement(source, settings, env, settings) if compare else None
        if found is not None:
            key, value, variable, env_value = found
            raise ConfigurationError(
                f"{source.description}: {key} is {value!r} but the environment's "
                f"{variable} is {env_value!r}; unset {variable}, or use it without a "
                "named cloud"
            )


def _choose(
    environ: Mapping[str, str], overrides: Mapping[str, Any], dirs: Sequence[Path]
) -> tuple[dict[str, Any], _Source]:
    """The cloud's entry and values; or the environment's."""
    cloud_name = overrides.get("cloud") or environ.get("OS_CLOUD")
    how = "--cloud" if overrides.get("cloud") else "OS_CLOUD"
    if cloud_name == "envvars":
        # openstacksdk's name for the cloud made of the OS_* variables.
        if not _environment_sets_something(environ):
            raise ConfigurationError(
                f"cloud 'envvars' ({how}) means the OS_* variables, and none is set"
            )
        cloud_name = None
    if not cloud_name and _environment_sets_something(environ):
        if environ.get("OS_CLIENT_CONFIG_FILE"):
            find_file("clouds", "OS_CLIENT_CONFIG_FILE", environ, dirs)  # refused if missing
        return {}, _environment(environ)
    files = _files(environ, dirs)
    if not cloud_name:
        if len(files.clouds) != 1:
            return {}, _environment(environ)
        # openstacksdk uses the only cloud there is (loader.py, `default_cloud`).
        (cloud_name,) = files.clouds
        how = "the only cloud"
    entry, description = load_cloud(str(cloud_name), files, how=how)
    source = _cloud(entry, description)
    _environment_meets_cloud(source, environ)
    if (
        not source.given("password")
        and (source.given("username") or source.given("user_id"))
        and environ.get("OS_PASSWORD")
    ):
        # The Terraform provider and the openstack command (--os-password's default)
        # take the password from the environment when the cloud has none.
        source.values["password"] = environ["OS_PASSWORD"]
        source.used["password"] = "OS_PASSWORD"  # noqa: S105 - the variable's name
    return entry, source


def resolve(
    environ: Mapping[str, str],
    overrides: Mapping[str, Any],
    *,
    cwd: Path | None = None,
    home: Path | None = None,
    system_root: Path | None = None,
) -> Settings:
    """Work out the settings (see the module's docstring for precedence).

    Args:
        environ: The environment variables.
        overrides: `cloud`, `region`, `endpoint`, `auth`, over the configuration.
        cwd: The working directory (searched first for clouds.yaml).
        home: The home folder.
        system_root: The folder for `/etc` (`SYSTEM_CONFIG_ROOT` by default).

    Raises:
        ConfigurationError: A setting is missing or contradicts another; the
            message names the variable or key to set.
    """
    dirs = config_dirs(cwd or Path.cwd(), home or Path.home(), environ, system_root)
    entry, source = _choose(environ, overrides, dirs)
    agency_project = source.text("agency_project_id") or source.text("delegated_project")
    project = agency_project or source.text("project_id") or source.text("project_name")
    named_project = source.text("delegated_project") or source.text("project_name")
    region = _region(overrides, entry, environ, source, named_project)
    auth_url = _auth_url(source, entry, region)
    auth_type = _auth_type(source)

    auth = overrides.get("auth")
    if auth is None:
        _check_project_domain(source)
        auth = _agency(_credentials(source, auth_url, auth_type), source, auth_url, auth_type)
    elif not isinstance(auth, Auth):
        raise ConfigurationError("the auth override must be a vbs_async auth object")

    override = source.text("endpoint_override")
    endpoint = (
        overrides.get("endpoint")
        or environ.get("VBS_ENDPOINT")
        or _checked_url(
            source,
            "endpoint_override",
            None if override is None else _API_ROOT.sub("", override),
            check_endpoint,
        )
    )
    return Settings(
        endpoint=None if not endpoint else str(endpoint),
        auth=auth,
        source=source.description,
        region=region,
        iam_endpoint=auth_url,
        ssl=_tls(source, from_cloud=bool(entry)),
        project=project,
    )


def resolve_from_os(overrides: Mapping[str, Any]) -> Settings:
    """`resolve` with the process's environment, working directory and home."""
    return resolve(os.environ, overrides)
