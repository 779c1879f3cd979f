"""Setups OTC users have, resolved by vbs_async and, where it is installed, by openstacksdk.

Each row is one setup (environment variables and files in an isolated home)
and what vbs_async resolves it to, written out. Where openstacksdk (with
otcextensions' `agency` plugin) reads the same setup, the row says `SAME`
and the test checks that openstacksdk resolves it the same way; else the row
gives the reason it differs, and the README's "Connecting to your cloud"
lists each reason (a test checks it does).
"""

from __future__ import annotations

import os
import re
import ssl
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import trustme

from vbs_async import AgencyAuth, AKSKAuth, ConfigurationError, PasswordAuth, TokenAuth
from vbs_async._config import resolve

SAME = "same as openstacksdk"
README = Path(__file__).resolve().parent.parent / "README.md"

# Deliberate differences from openstacksdk, each listed in the README by its tag.
NO_AKSK = "[aksk] openstacksdk has no AK/SK login"
TOKEN = "[token] a token without auth_type is used (the openstack command's choice)"
REGION_FROM_PROJECT = (
    "[region-from-project] the region from the project's name (gophertelekomcloud)"
)
ENV_FILLS_REGION = "[env-region] OS_REGION_NAME fills a named cloud's missing region"
ENV_PASSWORD = "[env-password] OS_PASSWORD fills a named cloud's missing password (Terraform)"
PROJECT_DOMAIN = "[project-domain] OS_PROJECT_DOMAIN_NAME alone names the user's domain (Terraform)"
TERRAFORM_AGENCY = "[terraform-agency] agency_name/agency_domain_name/delegated_project (Terraform)"
TARGET_WITHOUT_TYPE = "[target-keys] target_* keys without auth_type assume the agency"
REFUSED = "[refused] a setting that would be ignored, or would pick an account silently, is refused"
IAM_FROM_REGION = "[iam-from-region] IAM's URL from a known region"
XDG_DIRS = "[xdg-dirs] each XDG_CONFIG_DIRS entry is searched"
OS_INSECURE_1 = "[insecure-values] OS_INSECURE=1/yes/on mean true"
VBS_OVERRIDE = "[endpoint-override] vbs_endpoint_override and volume_backup_endpoint_override"
ENV_MEETS_CLOUD = (
    "[env-meets-cloud] OS_* variables fill what a named cloud leaves empty (agency, project, "
    "CA: Terraform), and are refused where they name another account, domain, project or region"
)
ID_FIRST = "[id-first] a domain's ID before its name (keystoneauth1)"
NAME_AND_ID = "[name-and-id] a name and an ID for the same account or project are refused"
GOPHER_DOMAIN = "[gopher-target-domain] target_domain_id that is no 32-hex ID is a name"


class Setup(NamedTuple):
    """One row: the environment, files (by place), the expected view, and openstacksdk's verdict."""

    name: str
    env: dict[str, str]
    files: dict[str, str]
    expected: dict[str, Any] | str  # the view, or the text of the ConfigurationError
    sdk: str  # SAME, or the reason it differs
    overrides: dict[str, str] | None = None


PW = {"username": "alice", "user": "alice", "domain": "OTC-alice"}
ENV_PW = {
    "OS_AUTH_URL": "https://iam.eu-de.otc.t-systems.com/v3",
    "OS_USERNAME": "alice",
    "OS_PASSWORD": "pw-env",
    "OS_USER_DOMAIN_NAME": "OTC-alice",
    "OS_PROJECT_NAME": "eu-de_prod",
    "OS_PROJECT_DOMAIN_NAME": "OTC-alice",
    "OS_REGION_NAME": "eu-de",
}
IAM_DE = "https://iam.eu-de.otc.t-systems.com/v3"


def without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


def view(
    kind: str,
    *,
    user: str | None = None,
    domain: str | None = None,
    agency: tuple[str, str] | None = None,
    project: str | None = None,
    region: str | None = None,
    verify: bool | str = True,
    auth_url: str | None = None,
) -> dict[str, Any]:
    """What a resolution says that matters to which account is reached, and how."""
    return {
        "kind": kind,
        "user": user,
        "domain": domain,
        "agency": agency,
        "project": project,
        "region": region,
        "verify": verify,
        "auth_url": auth_url,
    }


def pw_view(**changes: Any) -> dict[str, Any]:
    base = view(
        "password",
        user="alice",
        domain="OTC-alice",
        project="eu-de_prod",
        region="eu-de",
        auth_url="https://iam.eu-de.otc.t-systems.com",
    )
    return {**base, **changes}


def cloud(body: str, name: str = "otc") -> str:
    """A clouds.yaml with one cloud, its body indented under it."""
    indented = "\n".join(f"    {line}" if line else "" for line in body.strip("\n").splitlines())
    return f"clouds:\n  {name}:\n{indented}\n"


PW_AUTH = """
auth:
  auth_url: https://iam.eu-de.otc.t-systems.com/v3
  username: alice
  password: pw-yaml
  user_domain_name: OTC-alice
  project_name: eu-de_prod
  project_domain_name: OTC-alice
region_name: eu-de
"""
PROFILE_AUTH = """
profile: otc
auth:
  username: alice
  password: pw-yaml
  user_domain_name: OTC-alice
  project_name: eu-de_prod
  project_domain_name: OTC-alice
"""
AGENCY_OTCEXT = """
profile: otc
auth_type: agency
auth:
  username: alice
  password: pw-yaml
  user_domain_name: OTC-alice
  project_name: eu-de_prod
  project_domain_name: OTC-alice
  target_agency_name: inventory
  target_domain_name: OTC-bob
  target_project_name: eu-de_bob
region_name: eu-de
"""
AGENCY_VIEW = pw_view(kind="agency", agency=("inventory", "OTC-bob"), project="eu-de_bob")

SETUPS: list[Setup] = [
    # -- the environment alone ---------------------------------------------------------
    Setup("env password", ENV_PW, {}, pw_view(), SAME),
    Setup(
        "env password, user domain by ID",
        {
            **ENV_PW,
            "OS_USER_DOMAIN_NAME": "",
            "OS_USER_DOMAIN_ID": "d0123",
            "OS_PROJECT_DOMAIN_NAME": "",
            "OS_PROJECT_DOMAIN_ID": "d0123",
        },
        {},
        pw_view(domain="d0123"),
        SAME,
    ),
    Setup(
        "env password, project by ID",
        {**ENV_PW, "OS_PROJECT_NAME": "", "OS_PROJECT_ID": "p0123"},
        {},
        pw_view(project="p0123"),
        SAME,
    ),
    Setup(
        "env login by OS_USER_ID",
        {**ENV_PW, "OS_USERNAME": "", "OS_USER_ID": "u0123"},
        {},
        pw_view(user="u0123"),
        SAME,
    ),
    Setup(
        "env OS_TENANT_NAME for the project",
        {**without(ENV_PW, "OS_PROJECT_NAME"), "OS_TENANT_NAME": "eu-de_prod"},
        {},
        pw_view(),
        SAME,
    ),
    Setup(
        "env only OS_PROJECT_DOMAIN_NAME for the user's domain",
        {**ENV_PW, "OS_USER_DOMAIN_NAME": ""},
        {},
        pw_view(),
        PROJECT_DOMAIN,
    ),
    Setup(
        "env no region: IAM's URL names it, VBS from the project's name",
        {**ENV_PW, "OS_REGION_NAME": ""},
        {},
        pw_view(),
        REGION_FROM_PROJECT,
    ),
    Setup(
        "env password without its domain",
        {**ENV_PW, "OS_USER_DOMAIN_NAME": "", "OS_PROJECT_DOMAIN_NAME": ""},
        {},
        "OS_USER_DOMAIN_NAME must be set as well",
        REFUSED,
    ),
    Setup(
        "env token",
        {"OS_AUTH_TOKEN": "tok", "OS_REGION_NAME": "eu-de", "OS_PROJECT_ID": "p1"},
        {},
        view("token", project="p1", region="eu-de", auth_url="https://iam.eu-de.otc.t-systems.com"),
        TOKEN,
    ),
    Setup(
        "env token with OS_AUTH_TYPE=token",
        {
            "OS_AUTH_TYPE": "token",
            "OS_TOKEN": "tok",
            "OS_AUTH_URL": IAM_DE,
            "OS_PROJECT_ID": "p1",
            "OS_REGION_NAME": "eu-de",
        },
        {},
        view("token", project="p1", region="eu-de", auth_url="https://iam.eu-de.otc.t-systems.com"),
        SAME,
    ),
    Setup(
        "env OS_AUTH_TYPE unknown",
        {**ENV_PW, "OS_AUTH_TYPE": "v3oidcpassword"},
        {},
        "OS_AUTH_TYPE 'v3oidcpassword' is not supported",
        REFUSED,
    ),
    Setup(
        "env OS_AUTH_TYPE=token with a password",
        {**ENV_PW, "OS_AUTH_TYPE": "token"},
        {},
        "OS_AUTH_TYPE is 'token', but the credentials given are a password",
        REFUSED,
    ),
    # -- AK/SK spellings -----------------------------------------------------------------
    Setup(
        "env OS_ACCESS_KEY/OS_SECRET_KEY",
        {"OS_ACCESS_KEY": "AK1", "OS_SECRET_KEY": "sk1", "OS_REGION_NAME": "eu-de"},
        {},
        view("aksk", user="AK1", region="eu-de", auth_url="https://iam.eu-de.otc.t-systems.com"),
        NO_AKSK,
    ),
    Setup(
        "env OS_AK/OS_SK with a domain ID",
        {"OS_AK": "AK1", "OS_SK": "sk1", "OS_REGION_NAME": "eu-de", "OS_DOMAIN_ID": "d9"},
        {},
        view(
            "aksk",
            user="AK1",
            domain="d9",
            region="eu-de",
            auth_url="https://iam.eu-de.otc.t-systems.com",
        ),
        NO_AKSK,
    ),
    Setup(
        "env AK/SK, no region, project eu-de_prod",
        {"OS_ACCESS_KEY": "AK1", "OS_SECRET_KEY": "sk1", "OS_PROJECT_NAME": "eu-de_prod"},
        {},
        view(
            "aksk",
            user="AK1",
            project="eu-de_prod",
            region="eu-de",
            auth_url="https://iam.eu-de.otc.t-systems.com",
        ),
        REGION_FROM_PROJECT,
    ),
    Setup(
        "env AK/SK, no region, project eu-ch2",
        {"OS_ACCESS_KEY": "AK1", "OS_SECRET_KEY": "sk1", "OS_PROJECT_NAME": "eu-ch2"},
        {},
        view(
            "aksk",
            user="AK1",
            project="eu-ch2",
            region="eu-ch2",
            auth_url="https://iam-pub.eu-ch2.sc.otc.t-systems.com",
        ),
        REGION_FROM_PROJECT,
    ),
    Setup(
        "env AK/SK with a domain name only",
        {"OS_ACCESS_KEY": "AK1", "OS_SECRET_KEY": "sk1", "OS_USER_DOMAIN_NAME": "OTC-alice"},
        {},
        "OS_USER_DOMAIN_NAME names the account by name, but a key pair's IAM calls need its ID",
        REFUSED,
    ),
    Setup(
        "env AK without SK",
        {"OS_ACCESS_KEY": "AK1", "OS_REGION_NAME": "eu-de"},
        {},
        "OS_SECRET_KEY must be set as well",
        REFUSED,
    ),
    Setup(
        "clouds.yaml auth.ak/auth.sk",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud("region_name: eu-de\nauth:\n  ak: AK2\n  sk: sk2\n")},
        view("aksk", user="AK2", region="eu-de", auth_url="https://iam.eu-de.otc.t-systems.com"),
        NO_AKSK,
    ),
    Setup(
        "clouds.yaml auth.access_key/secret_key with user_domain_id",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                "region_name: eu-de\nauth:\n  access_key: AK2\n  secret_key: sk2\n"
                "  user_domain_id: d7\n"
            )
        },
        view(
            "aksk",
            user="AK2",
            domain="d7",
            region="eu-de",
            auth_url="https://iam.eu-de.otc.t-systems.com",
        ),
        NO_AKSK,
    ),
    Setup(
        "clouds.yaml ak/sk beside auth (otcextensions' place)",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud("profile: otc\nak: AK3\nsk: sk3\n")},
        view("aksk", user="AK3", region="eu-de", auth_url="https://iam.eu-de.otc.t-systems.com"),
        NO_AKSK,
    ),
    # -- clouds.yaml, each profile, secure.yaml ----------------------------------------------
    Setup(
        "clouds.yaml password",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PW_AUTH)},
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml profile otc",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml profile otc, region eu-nl",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "region_name: eu-nl\n")},
        pw_view(region="eu-nl", auth_url="https://iam.eu-nl.otc.t-systems.com"),
        SAME,
    ),
    Setup(
        "clouds.yaml profile otc, region eu-ch2: no such IAM host",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "region_name: eu-ch2\n")},
        "profile 'otc' serves eu-de, eu-nl, not 'eu-ch2'",
        REFUSED,
    ),
    Setup(
        "clouds.yaml profile otc-swiss",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                PROFILE_AUTH.replace("profile: otc", "profile: otc-swiss").replace(
                    "eu-de_prod", "eu-ch2"
                )
            )
        },
        pw_view(
            project="eu-ch2",
            region="eu-ch2",
            auth_url="https://iam-pub.eu-ch2.sc.otc.t-systems.com",
        ),
        "[https] the otc-swiss profile's IAM URL gains its missing https://",
    ),
    Setup(
        "clouds.yaml the legacy `cloud: otc` for the profile",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH.replace("profile: otc", "cloud: otc"))},
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml password in secure.yaml",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(PROFILE_AUTH.replace("  password: pw-yaml\n", "")),
            "home/.config/openstack/secure.yaml": cloud("auth:\n  password: pw-secure\n"),
        },
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml secure.yaml named by OS_CLIENT_SECURE_FILE",
        {"OS_CLOUD": "otc", "OS_CLIENT_SECURE_FILE": "{root}/elsewhere/s.yaml"},
        {
            "cwd/clouds.yaml": cloud(PROFILE_AUTH.replace("  password: pw-yaml\n", "")),
            "elsewhere/s.yaml": cloud("auth:\n  password: pw-secure\n"),
        },
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml without a password takes OS_PASSWORD",
        {"OS_CLOUD": "otc", "OS_PASSWORD": "pw-env"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH.replace("  password: pw-yaml\n", ""))},
        pw_view(),
        ENV_PASSWORD,
    ),
    Setup(
        "clouds.yaml refuses the OS_* credentials of another account",
        {"OS_CLOUD": "otc", "OS_USERNAME": "mallory", "OS_USER_DOMAIN_NAME": "OTC-other"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        "auth.username is 'alice' but the environment's OS_USERNAME is 'mallory'",
        ENV_MEETS_CLOUD,
    ),
    Setup(
        "clouds.yaml user_id",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH.replace("username: alice", "user_id: u0123"))},
        pw_view(user="u0123"),
        SAME,
    ),
    Setup(
        "clouds.yaml keys beside auth (openstacksdk moves them in)",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                "profile: otc\nusername: alice\npassword: pw\nuser_domain_name: OTC-alice\n"
                "project_name: eu-de_prod\nproject_domain_name: OTC-alice\n"
            )
        },
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml auth_type password",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "auth_type: password\n")},
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml auth_type v3password",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "auth_type: v3password\n")},
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml auth_type v3applicationcredential",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "auth_type: v3applicationcredential\n")},
        "auth_type 'v3applicationcredential' is not supported",
        REFUSED,
    ),
    Setup(
        "clouds.yaml token with auth_type token",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                "profile: otc\nauth_type: token\nauth:\n  token: tok\n  project_id: p1\n"
            )
        },
        view("token", project="p1", region="eu-de", auth_url="https://iam.eu-de.otc.t-systems.com"),
        SAME,
    ),
    Setup(
        "clouds.yaml unknown cloud",
        {"OS_CLOUD": "nowhere"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        "cloud 'nowhere' (OS_CLOUD) is not defined",
        SAME,
    ),
    Setup(
        "--cloud over OS_CLOUD",
        {"OS_CLOUD": "nowhere"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        pw_view(),
        SAME,
        {"cloud": "otc"},
    ),
    Setup(
        "clouds.yaml region override",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        pw_view(region="eu-nl", auth_url="https://iam.eu-nl.otc.t-systems.com"),
        SAME,
        {"region": "eu-nl"},
    ),
    Setup(
        "clouds.yaml without a region takes OS_REGION_NAME",
        {"OS_CLOUD": "otc", "OS_REGION_NAME": "eu-de"},
        {"cwd/clouds.yaml": cloud(PW_AUTH.replace("region_name: eu-de\n", ""))},
        pw_view(),
        ENV_FILLS_REGION,
    ),
    Setup(
        "clouds.yaml regions list",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "regions:\n  - eu-nl\n  - eu-de\n")},
        pw_view(region="eu-nl", auth_url="https://iam.eu-nl.otc.t-systems.com"),
        SAME,
    ),
    # -- which cloud, which file -------------------------------------------------------
    Setup(
        "the only cloud of clouds.yaml, no OS_CLOUD",
        {},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        pw_view(),
        SAME,
    ),
    Setup(
        "two clouds and no OS_CLOUD",
        {},
        {
            "cwd/clouds.yaml": cloud(PROFILE_AUTH)
            + cloud(PROFILE_AUTH, "two").replace("clouds:\n", "")
        },
        "the environment gives no credentials",
        "[no-cloud] openstacksdk falls back to an empty cloud and fails later",
    ),
    Setup(
        "OS_* variables win over the only cloud",
        ENV_PW,
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH.replace("alice", "carol"))},
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml in ~/.config/openstack",
        {"OS_CLOUD": "otc"},
        {"home/.config/openstack/clouds.yaml": cloud(PROFILE_AUTH)},
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml in $XDG_CONFIG_HOME/openstack",
        {"OS_CLOUD": "otc", "XDG_CONFIG_HOME": "{root}/xdg"},
        {"xdg/openstack/clouds.yaml": cloud(PROFILE_AUTH)},
        pw_view(),
        SAME,
    ),
    Setup(
        "$XDG_CONFIG_HOME before ~/.config",
        {"OS_CLOUD": "otc", "XDG_CONFIG_HOME": "{root}/xdg"},
        {
            "xdg/openstack/clouds.yaml": cloud(PROFILE_AUTH),
            "home/.config/openstack/clouds.yaml": cloud(PROFILE_AUTH.replace("alice", "carol")),
        },
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml in /etc/xdg/openstack",
        {"OS_CLOUD": "otc", "XDG_CONFIG_DIRS": ""},
        {"etc/xdg/openstack/clouds.yaml": cloud(PROFILE_AUTH)},
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yaml in the second XDG_CONFIG_DIRS entry",
        {"OS_CLOUD": "otc", "XDG_CONFIG_DIRS": "{root}/sys1:{root}/sys2"},
        {"sys2/openstack/clouds.yaml": cloud(PROFILE_AUTH)},
        pw_view(),
        XDG_DIRS,
    ),
    Setup(
        "clouds.yaml in /etc/openstack",
        {"OS_CLOUD": "otc"},
        {"etc/openstack/clouds.yaml": cloud(PROFILE_AUTH)},
        pw_view(),
        SAME,
    ),
    Setup(
        "the working directory before the home and /etc",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(PROFILE_AUTH),
            "home/.config/openstack/clouds.yaml": cloud(PROFILE_AUTH.replace("alice", "carol")),
            "etc/openstack/clouds.yaml": cloud(PROFILE_AUTH.replace("alice", "dave")),
        },
        pw_view(),
        SAME,
    ),
    Setup(
        "clouds.yml and clouds.json",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.json": '{"clouds": {"otc": {"profile": "otc", "auth": {"username": '
            '"alice", "password": "p", "user_domain_name": "OTC-alice", "project_name": '
            '"eu-de_prod", "project_domain_name": "OTC-alice"}}}}'
        },
        pw_view(),
        SAME,
    ),
    Setup(
        "OS_CLIENT_CONFIG_FILE",
        {"OS_CLOUD": "otc", "OS_CLIENT_CONFIG_FILE": "{root}/elsewhere/c.yaml"},
        {
            "elsewhere/c.yaml": cloud(PROFILE_AUTH),
            "cwd/clouds.yaml": cloud(PROFILE_AUTH.replace("alice", "carol")),
        },
        pw_view(),
        SAME,
    ),
    Setup(
        "OS_CLIENT_CONFIG_FILE naming a missing file",
        {"OS_CLOUD": "otc", "OS_CLIENT_CONFIG_FILE": "{root}/missing.yaml"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH.replace("alice", "carol"))},
        "OS_CLIENT_CONFIG_FILE names",
        "[missing-file] openstacksdk reads the next file found: maybe another account",
    ),
    # -- agencies in each vocabulary ---------------------------------------------------
    Setup(
        "otcextensions agency in clouds.yaml",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(AGENCY_OTCEXT)},
        AGENCY_VIEW,
        SAME,
    ),
    Setup(
        "otcextensions agency by domain and project ID",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                AGENCY_OTCEXT.replace(
                    "target_domain_name: OTC-bob", "target_domain_id: dbob"
                ).replace("target_project_name: eu-de_bob", "target_project_id: pbob")
            )
        },
        {**AGENCY_VIEW, "agency": ("inventory", "dbob"), "project": "pbob"},
        SAME,
    ),
    Setup(
        "otcextensions agency in the environment",
        {
            **ENV_PW,
            "OS_AUTH_TYPE": "agency",
            "OS_TARGET_AGENCY_NAME": "inventory",
            "OS_TARGET_DOMAIN_NAME": "OTC-bob",
            "OS_TARGET_PROJECT_NAME": "eu-de_bob",
        },
        {},
        AGENCY_VIEW,
        SAME,
    ),
    Setup(
        "target_* keys without auth_type",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(AGENCY_OTCEXT.replace("auth_type: agency\n", ""))},
        AGENCY_VIEW,
        TARGET_WITHOUT_TYPE,
    ),
    Setup(
        "OS_TARGET_* without OS_AUTH_TYPE",
        {
            **ENV_PW,
            "OS_TARGET_AGENCY_NAME": "inventory",
            "OS_TARGET_DOMAIN_NAME": "OTC-bob",
            "OS_TARGET_PROJECT_NAME": "eu-de_bob",
        },
        {},
        AGENCY_VIEW,
        TARGET_WITHOUT_TYPE,
    ),
    Setup(
        "target_* keys with auth_type password",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                AGENCY_OTCEXT.replace("auth_type: agency", "auth_type: password")
            )
        },
        "target_agency_name belongs to auth_type agency",
        REFUSED,
    ),
    Setup(
        "auth_type agency without target_agency_name",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(AGENCY_OTCEXT.replace("  target_agency_name: inventory\n", ""))},
        "needs the agency's name",
        SAME,
    ),
    Setup(
        "target_agency_name without a domain",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(AGENCY_OTCEXT.replace("  target_domain_name: OTC-bob\n", ""))},
        "needs the delegating account",
        SAME,
    ),
    Setup(
        "Terraform agency in clouds.yaml",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                PROFILE_AUTH
                + "agency_name: inventory\nagency_domain_name: OTC-bob\ndelegated_project: eu-de_bob\n"
            )
        },
        AGENCY_VIEW,
        TERRAFORM_AGENCY,
    ),
    Setup(
        "Terraform agency in the environment",
        {
            **ENV_PW,
            "OS_AGENCY_NAME": "inventory",
            "OS_AGENCY_DOMAIN_NAME": "OTC-bob",
            "OS_DELEGATED_PROJECT": "eu-de_bob",
        },
        {},
        AGENCY_VIEW,
        TERRAFORM_AGENCY,
    ),
    Setup(
        "an agency with AK/SK (gophertelekomcloud)",
        {
            "OS_ACCESS_KEY": "AK1",
            "OS_SECRET_KEY": "sk1",
            "OS_REGION_NAME": "eu-de",
            "OS_AGENCY_NAME": "inventory",
            "OS_AGENCY_DOMAIN_NAME": "OTC-bob",
        },
        {},
        view(
            "agency",
            user="AK1",
            agency=("inventory", "OTC-bob"),
            region="eu-de",
            auth_url="https://iam.eu-de.otc.t-systems.com",
        ),
        NO_AKSK,
    ),
    Setup(
        "an agency with a token (Terraform)",
        {
            "OS_AUTH_TOKEN": "tok",
            "OS_REGION_NAME": "eu-de",
            "OS_AGENCY_NAME": "inventory",
            "OS_AGENCY_DOMAIN_NAME": "OTC-bob",
        },
        {},
        view(
            "agency",
            agency=("inventory", "OTC-bob"),
            region="eu-de",
            auth_url="https://iam.eu-de.otc.t-systems.com",
        ),
        TERRAFORM_AGENCY,
    ),
    Setup(
        "two vocabularies naming two agencies",
        {
            **ENV_PW,
            "OS_AGENCY_NAME": "inventory",
            "OS_TARGET_AGENCY_NAME": "other",
            "OS_AGENCY_DOMAIN_NAME": "OTC-bob",
        },
        {},
        "OS_AGENCY_NAME ('inventory') and OS_TARGET_AGENCY_NAME ('other') name different values",
        REFUSED,
    ),
    Setup(
        "delegated_project without an agency",
        {**ENV_PW, "OS_DELEGATED_PROJECT": "eu-de_bob"},
        {},
        "OS_DELEGATED_PROJECT needs the agency's name",
        REFUSED,
    ),
    # -- TLS -----------------------------------------------------------------------------
    Setup(
        "clouds.yaml insecure: true",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "insecure: true\n")},
        pw_view(verify=False),
        SAME,
    ),
    Setup(
        "clouds.yaml insecure: 'True' as text",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "insecure: 'True'\n")},
        pw_view(verify=False),
        SAME,
    ),
    Setup(
        "clouds.yaml verify: false",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "verify: false\n")},
        pw_view(verify=False),
        SAME,
    ),
    Setup(
        "OS_INSECURE does not reach a named cloud",
        {"OS_CLOUD": "otc", "OS_INSECURE": "true"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        pw_view(),
        SAME,
    ),
    Setup(
        "env OS_INSECURE=true",
        {**ENV_PW, "OS_INSECURE": "true"},
        {},
        pw_view(verify=False),
        SAME,
    ),
    Setup(
        "env OS_INSECURE=1",
        {**ENV_PW, "OS_INSECURE": "1"},
        {},
        pw_view(verify=False),
        OS_INSECURE_1,
    ),
    Setup(
        "clouds.yaml cacert with ~",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "cacert: ~/ca.pem\n")},
        pw_view(verify="ca.pem"),
        SAME,
    ),
    Setup(
        "env OS_CACERT",
        {**ENV_PW, "OS_CACERT": "{root}/home/ca.pem"},
        {},
        pw_view(verify="ca.pem"),
        SAME,
    ),
    Setup(
        "insecure wins over cacert",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "cacert: ~/ca.pem\ninsecure: true\n")},
        pw_view(verify=False),
        SAME,
    ),
    Setup(
        "clouds.yaml insecure: maybe",
        {"OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH + "insecure: maybe\n")},
        "insecure must be true or false",
        REFUSED,
    ),
    # -- endpoints -----------------------------------------------------------------------
    Setup(
        "volume_backup_endpoint_override (otcextensions' service name)",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                PROFILE_AUTH + "volume_backup_endpoint_override: https://vbs.example\n"
            )
        },
        {**pw_view(), "endpoint": "https://vbs.example"},
        VBS_OVERRIDE,
    ),
    Setup(
        "token and IAM from a known region only",
        {"OS_AUTH_TOKEN": "tok", "OS_REGION_NAME": "eu-nl"},
        {},
        view("token", region="eu-nl", auth_url="https://iam.eu-nl.otc.t-systems.com"),
        IAM_FROM_REGION,
    ),
    # -- the outside tester's findings ---------------------------------------------------
    Setup(
        "named cloud plus the Terraform agency variables",
        {
            "OS_CLOUD": "otc",
            "OS_AGENCY_NAME": "inventory",
            "OS_AGENCY_DOMAIN_NAME": "OTC-bob",
            "OS_DELEGATED_PROJECT": "eu-de_bob",
        },
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        AGENCY_VIEW,
        ENV_MEETS_CLOUD,
    ),
    Setup(
        "named cloud plus OS_AUTH_TYPE=agency and OS_TARGET_*",
        {
            "OS_CLOUD": "otc",
            "OS_AUTH_TYPE": "agency",
            "OS_TARGET_AGENCY_NAME": "inventory",
            "OS_TARGET_DOMAIN_NAME": "OTC-bob",
            "OS_TARGET_PROJECT_NAME": "eu-de_bob",
        },
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        AGENCY_VIEW,
        ENV_MEETS_CLOUD,
    ),
    Setup(
        "--cloud plus the Terraform agency variables",
        {"OS_AGENCY_NAME": "inventory", "OS_AGENCY_DOMAIN_NAME": "OTC-bob"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        {**AGENCY_VIEW, "project": "eu-de_prod"},
        ENV_MEETS_CLOUD,
        {"cloud": "otc"},
    ),
    Setup(
        "named cloud's agency and another in the environment",
        {"OS_CLOUD": "otc", "OS_AGENCY_NAME": "other"},
        {"cwd/clouds.yaml": cloud(AGENCY_OTCEXT)},
        "auth.target_agency_name is 'inventory' but the environment's OS_AGENCY_NAME is 'other'",
        ENV_MEETS_CLOUD,
    ),
    Setup(
        "OS_USER_DOMAIN_ID and OS_USER_DOMAIN_NAME: the ID",
        {**ENV_PW, "OS_USER_DOMAIN_ID": "d0123", "OS_PROJECT_DOMAIN_NAME": ""},
        {},
        pw_view(domain="d0123"),
        SAME,
    ),
    Setup(
        "auth.user_domain_id and auth.user_domain_name: the ID",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                PROFILE_AUTH.replace("  project_domain_name: OTC-alice\n", "")
                + "  user_domain_id: d0123\n"
            )
        },
        pw_view(domain="d0123"),
        SAME,
    ),
    Setup(
        "OS_DOMAIN_ID and OS_USER_DOMAIN_NAME: the ID",
        {**ENV_PW, "OS_DOMAIN_ID": "d0123", "OS_PROJECT_DOMAIN_NAME": ""},
        {},
        pw_view(domain="d0123"),
        ID_FIRST,
    ),
    Setup(
        "agency_domain_name beside auth.target_domain_id",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                AGENCY_OTCEXT.replace(
                    "target_domain_name: OTC-bob",
                    "target_domain_id: 0123456789abcdef0123456789abcdef",
                )
                + "agency_domain_name: OTC-carol\n"
            )
        },
        "agency_domain_name ('OTC-carol') and auth.target_domain_id ('0123456789abcdef0123456789abcdef') name the agency's "
        "account, one by name and one by ID",
        NAME_AND_ID,
    ),
    Setup(
        "OS_AGENCY_DOMAIN_NAME beside OS_TARGET_DOMAIN_ID",
        {
            **ENV_PW,
            "OS_AGENCY_NAME": "inventory",
            "OS_AGENCY_DOMAIN_NAME": "OTC-bob",
            "OS_TARGET_DOMAIN_ID": "0123456789abcdef0123456789abcdef",
        },
        {},
        "OS_AGENCY_DOMAIN_NAME ('OTC-bob') and OS_TARGET_DOMAIN_ID ('0123456789abcdef0123456789abcdef')",
        NAME_AND_ID,
    ),
    Setup(
        "delegated_project beside auth.target_project_id",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                AGENCY_OTCEXT.replace(
                    "target_project_name: eu-de_bob",
                    "target_project_id: 0123456789abcdef0123456789abcdef",
                )
                + "delegated_project: eu-de_carol\n"
            )
        },
        "delegated_project ('eu-de_carol') and auth.target_project_id ('0123456789abcdef0123456789abcdef') name the "
        "agency's project",
        NAME_AND_ID,
    ),
    Setup(
        "project_domain_name other than user_domain_name",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                PROFILE_AUTH.replace(
                    "project_domain_name: OTC-alice", "project_domain_name: OTC-other"
                )
            )
        },
        "auth.project_domain_name ('OTC-other') names the project's domain",
        REFUSED,
    ),
    Setup(
        "OS_PROJECT_DOMAIN_ID beside OS_USER_DOMAIN_NAME",
        {**ENV_PW, "OS_PROJECT_DOMAIN_NAME": "", "OS_PROJECT_DOMAIN_ID": "d0123"},
        {},
        "OS_PROJECT_DOMAIN_ID ('d0123') names the project's domain",
        REFUSED,
    ),
    Setup(
        "named cloud plus another account's OS_USER_DOMAIN_NAME and OS_PROJECT_NAME",
        {"OS_CLOUD": "otc", "OS_USER_DOMAIN_NAME": "OTC-other", "OS_PROJECT_NAME": "eu-de_x"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        "but the environment's",
        ENV_MEETS_CLOUD,
    ),
    Setup(
        "named cloud's region_name and another OS_REGION_NAME",
        {"OS_CLOUD": "otc", "OS_REGION_NAME": "eu-nl"},
        {"cwd/clouds.yaml": cloud(PW_AUTH)},
        "region_name is 'eu-de' but the environment's OS_REGION_NAME is 'eu-nl'",
        ENV_MEETS_CLOUD,
    ),
    Setup(
        "named cloud plus the same OS_* values",
        {**ENV_PW, "OS_CLOUD": "otc"},
        {"cwd/clouds.yaml": cloud(PW_AUTH)},
        pw_view(),
        ENV_MEETS_CLOUD,
    ),
    Setup(
        "named cloud plus OS_CACERT",
        {"OS_CLOUD": "otc", "OS_CACERT": "{root}/home/ca.pem"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        pw_view(verify="ca.pem"),
        ENV_MEETS_CLOUD,
    ),
    Setup(
        "named cloud plus OS_CACERT naming a missing file",
        {"OS_CLOUD": "otc", "OS_CACERT": "{root}/home/missing.pem"},
        {"cwd/clouds.yaml": cloud(PROFILE_AUTH)},
        "OS_CACERT names",
        ENV_MEETS_CLOUD,
    ),
    Setup(
        "volume_backup_endpoint_override with /v2/%(project_id)s",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                PROFILE_AUTH
                + "volume_backup_endpoint_override: https://vbs.example/v2/%(project_id)s\n"
            )
        },
        {**pw_view(), "endpoint": "https://vbs.example"},
        VBS_OVERRIDE,
    ),
    Setup(
        "vbs_endpoint_override with /v2/$(tenant_id)s",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                PROFILE_AUTH + "vbs_endpoint_override: https://vbs.example/v2/$(tenant_id)s\n"
            )
        },
        {**pw_view(), "endpoint": "https://vbs.example"},
        VBS_OVERRIDE,
    ),
    Setup(
        "vbs_endpoint_override with another path",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                PROFILE_AUTH + "vbs_endpoint_override: https://vbs.example/v3\n"
            )
        },
        "vbs_endpoint_override: endpoint must be scheme, host and port only",
        VBS_OVERRIDE,
    ),
    Setup(
        "gophertelekomcloud's target_domain_id holding a name",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                AGENCY_OTCEXT.replace("target_domain_name: OTC-bob", "target_domain_id: OTC-bob")
            )
        },
        AGENCY_VIEW,
        GOPHER_DOMAIN,
    ),
    Setup(
        "target_domain_id holding an ID",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                AGENCY_OTCEXT.replace(
                    "target_domain_name: OTC-bob",
                    "target_domain_id: 0123456789abcdef0123456789abcdef",
                )
            )
        },
        {**AGENCY_VIEW, "agency": ("inventory", "0123456789abcdef0123456789abcdef")},
        SAME,
    ),
    Setup(
        "OS_CLOUD=envvars is the environment",
        {**ENV_PW, "OS_CLOUD": "envvars"},
        {},
        pw_view(),
        SAME,
    ),
    Setup(
        "auth_type: aksk (gophertelekomcloud)",
        {"OS_CLOUD": "otc"},
        {
            "cwd/clouds.yaml": cloud(
                "auth_type: aksk\nregion_name: eu-de\nauth:\n  ak: AK1\n  sk: sk1\n"
            )
        },
        view("aksk", user="AK1", region="eu-de", auth_url="https://iam.eu-de.otc.t-systems.com"),
        NO_AKSK,
    ),
]


@pytest.fixture
def place(tmp_path, monkeypatch):
    """An isolated machine: home, working directory, /etc and XDG folders under tmp_path."""
    for folder in ("home", "cwd", "etc"):
        (tmp_path / folder).mkdir()
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "home" / "ca.pem"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


def lay_out(root: Path, setup: Setup) -> dict[str, str]:
    """Write the setup's files; its environment with `{root}` filled in."""
    for where, text in setup.files.items():
        path = root / where
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    env = {
        "HOME": str(root / "home"),
        "XDG_CONFIG_HOME": "",
        "XDG_CONFIG_DIRS": str(root / "nowhere"),
    }
    env.update({k: v.replace("{root}", str(root)) for k, v in setup.env.items()})
    return env


def ours(root: Path, env: dict[str, str], setup: Setup) -> dict[str, Any] | str:
    try:
        settings = resolve(
            env,
            setup.overrides or {},
            cwd=root / "cwd",
            home=root / "home",
            system_root=root / "etc",
        )
    except ConfigurationError as error:
        return str(error)
    auth = settings.auth
    agency = None
    kind = ""
    if isinstance(auth, AgencyAuth):
        agency = (auth.agency_name, auth.agency_domain or auth.domain_id)
        kind, auth = "agency", auth.base
    user = domain = None
    if isinstance(auth, PasswordAuth):
        kind = kind or "password"
        user = next(iter(auth._user.values()))
        domain = next(iter((auth._domain or {None: None}).values()))
    elif isinstance(auth, AKSKAuth):
        kind = kind or "aksk"
        user, domain = auth._access_key, auth.domain_id
    elif isinstance(auth, TokenAuth):
        kind = kind or "token"
    verify: bool | str = settings.ssl if isinstance(settings.ssl, bool) else "ca.pem"
    found = view(
        kind,
        user=user,
        domain=domain,
        agency=agency,
        project=settings.project,
        region=settings.region,
        verify=verify,
        auth_url=None
        if settings.iam_endpoint is None
        else settings.iam_endpoint.rstrip("/").removesuffix("/v3"),
    )
    if settings.endpoint is not None:
        found["endpoint"] = settings.endpoint
    return found


@pytest.mark.parametrize("setup", SETUPS, ids=[s.name for s in SETUPS])
def test_vbs_async_resolves_each_setup_as_written(place, setup):
    env = lay_out(place, setup)
    found = ours(place, env, setup)
    if isinstance(setup.expected, str):
        assert isinstance(found, str), f"expected a refusal, resolved {found}"
        assert setup.expected in found
    else:
        assert found == setup.expected


def test_there_are_at_least_60_setups_each_difference_listed_in_the_readme():
    assert len(SETUPS) >= 60
    readme = README.read_text()
    for setup in SETUPS:
        if setup.sdk != SAME:
            tag = re.match(r"\[[a-z-]+\]", setup.sdk)
            assert tag, setup.sdk
            assert tag.group(0) in readme, f"{tag.group(0)} ({setup.name}) is not in the README"


# -- openstacksdk's resolution of the same setups ---------------------------------------------


def sdk_search_path(root: Path) -> list[Path]:
    """openstacksdk's CONFIG_SEARCH_PATH, worked out as its loader does at import, /etc moved."""
    import platformdirs  # noqa: PLC0415

    dirs = platformdirs.PlatformDirs("openstack", "OpenStack", multipath=True)

    def moved(path: str) -> Path:
        return root / "etc" / path.removeprefix("/etc/") if path.startswith("/etc/") else Path(path)

    return [
        Path.cwd(),
        moved(dirs.user_config_dir),
        Path(os.path.expanduser("~/.config/openstack")),  # noqa: PTH111 - as the loader does
        moved(dirs.site_config_dir),
        root / "etc" / "openstack",
    ]


def sdk(root: Path, env: dict[str, str], setup: Setup, monkeypatch) -> dict[str, Any] | str:
    with warnings.catch_warnings():
        # openstacksdk's and keystoneauth's own deprecation warnings are not ours to fail on.
        warnings.simplefilter("ignore")
        return _sdk(root, env, setup, monkeypatch)


def _sdk(root: Path, env: dict[str, str], setup: Setup, monkeypatch) -> dict[str, Any] | str:
    config = pytest.importorskip("openstack.config")
    pytest.importorskip("otcextensions")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    search = sdk_search_path(root)
    loader = config.OpenStackConfig(
        config_files=[str(d / f"clouds{s}") for d in search for s in (".yaml", ".yml", ".json")],
        secure_files=[str(d / f"secure{s}") for d in search for s in (".yaml", ".yml", ".json")],
        vendor_files=[],
    )
    try:
        region = loader.get_one(
            cloud=(setup.overrides or {}).get("cloud"),
            **{"region_name": (setup.overrides or {}).get("region")}
            if (setup.overrides or {}).get("region")
            else {},
        )
    except Exception as error:  # noqa: BLE001 - any refusal of openstacksdk's
        return f"{type(error).__name__}: {error}"
    conf, auth = region.config, region.config["auth"]
    auth_type = conf.get("auth_type")
    kinds = {
        "password": "password",
        "v3password": "password",
        "token": "token",
        "v3token": "token",
        "admin_token": "token",
        "agency": "agency",
    }
    verify, _ = region.get_requests_verify_args()
    agency = None
    project = auth.get("project_id") or auth.get("project_name")
    if auth_type == "agency":
        agency = (
            auth.get("target_agency_name"),
            auth.get("target_domain_id") or auth.get("target_domain_name"),
        )
        project = auth.get("target_project_id") or auth.get("target_project_name")
    auth_url = auth.get("auth_url")
    return view(
        kinds.get(auth_type, str(auth_type)),
        user=auth.get("user_id") or auth.get("username"),
        domain=auth.get("user_domain_id") or auth.get("user_domain_name"),
        agency=agency,
        project=project,
        region=region.region_name or None,
        verify=Path(verify).name if isinstance(verify, str) else verify,
        auth_url=auth_url.rstrip("/").removesuffix("/v3") if auth_url else None,
    )


COMPARED = [s for s in SETUPS if s.sdk == SAME]


@pytest.mark.parametrize("setup", COMPARED, ids=[s.name for s in COMPARED])
def test_openstacksdk_resolves_the_same_setups_the_same_way(place, setup, monkeypatch):
    env = lay_out(place, setup)
    theirs = sdk(place, env, setup, monkeypatch)
    if isinstance(setup.expected, str):
        assert isinstance(theirs, str), f"openstacksdk resolved {theirs}"
    else:
        expected = {k: v for k, v in setup.expected.items() if k != "endpoint"}
        assert theirs == expected


def test_the_table_s_tls_setups_give_a_context_trusting_the_file(place):
    setup = next(s for s in SETUPS if s.name == "clouds.yaml cacert with ~")
    env = lay_out(place, setup)
    settings = resolve(env, {}, cwd=place / "cwd", home=place / "home", system_root=place / "etc")
    assert isinstance(settings.ssl, ssl.SSLContext)
