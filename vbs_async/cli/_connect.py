"""How a command reaches the cloud: the connection options and the client they make.

Every command that calls VBS takes `--cloud`, `--region`, `--endpoint`,
`--ca-bundle` and `--insecure` over what clouds.yaml and the `OS_*`
variables say (`vbs_async._config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vbs_async._client import VBSClient
from vbs_async._config import Settings, resolve_from_os
from vbs_async._tls import tls_context


def connection_options(command: Any) -> Any:
    """Add the options that say which cloud to reach, and how."""
    options = [
        click.option(
            "--cloud",
            "--os-cloud",  # the openstack command's spelling
            "cloud",
            multiple=True,
            callback=_one_cloud,
            help="The cloud to use from clouds.yaml (else OS_CLOUD / OS_* variables).",
        ),
        click.option("--region", help="The region (eu-de, eu-ch2, ...), over the configured one."),
        click.option("--endpoint", help="The VBS endpoint, overriding the configured one."),
        click.option(
            "--ca-bundle",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Trust the CAs of this PEM file (a private or TLS-inspecting CA).",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            help="Do not verify TLS certificates (anyone on the path can read your credentials).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _one_cloud(_context: Any, _parameter: Any, values: tuple[str, ...]) -> str | None:
    """`--cloud` / `--os-cloud` given more than once must name one cloud (not the last one)."""
    named = list(dict.fromkeys(values))
    if len(named) > 1:
        raise click.BadParameter(
            f"names two clouds ({', '.join(repr(n) for n in named)}): give one",
            param_hint="'--cloud' / '--os-cloud'",
        )
    return named[0] if named else None


def tls_setting(options: dict[str, Any]) -> dict[str, Any]:
    """`VBSClient(ssl=...)` from --insecure / --ca-bundle, if either is given."""
    if options["insecure"] and options["ca_bundle"] is not None:
        raise click.UsageError("--insecure and --ca-bundle contradict each other: choose one")
    if options["insecure"]:
        return {"ssl": False}
    if options["ca_bundle"] is not None:
        return {"ssl": tls_context(options["ca_bundle"])}
    return {}


def configured_client(options: dict[str, Any], **client_options: Any) -> tuple[VBSClient, Settings]:
    """A client of the configured cloud, with the command line's overrides.

    Raises:
        ConfigurationError: The configuration is missing or contradicts itself.
    """
    overrides = {k: options[k] for k in ("cloud", "endpoint", "region") if options.get(k)}
    configured = resolve_from_os(overrides)
    client = VBSClient(**{**configured.client_options(), **tls_setting(options), **client_options})
    return client, configured
