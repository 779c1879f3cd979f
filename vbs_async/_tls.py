"""TLS settings as OpenStack users give them: a CA bundle, a client certificate, or none.

`tls_context` turns clouds.yaml's `cacert`, `cert` and `key` (or
`OS_CACERT`, `OS_CERT`, `OS_KEY`) into the `ssl.SSLContext` that
`VBSClient(ssl=...)` hands to aiohttp for every request, IAM's included.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from ._errors import ConfigurationError

SSLSetting = ssl.SSLContext | bool
"""TLS verification: True (system CAs), an `ssl.SSLContext` (its own CAs), False (none)."""

if TYPE_CHECKING:
    from pathlib import Path


def tls_context(
    ca_bundle: str | Path | None = None,
    *,
    cert: str | Path | None = None,
    key: str | Path | None = None,
) -> ssl.SSLContext:
    """A verifying TLS context: the system's CAs, or `ca_bundle`'s; a client certificate.

    Args:
        ca_bundle: A PEM file of the CAs to trust instead of the system's (a
            private or TLS-inspecting CA).
        cert: A PEM client certificate (its key inside, or in `key`).
        key: The client certificate's PEM key.

    Raises:
        ConfigurationError: A file is missing or is not what it should be.
    """
    if key is not None and cert is None:
        raise ConfigurationError("a client key needs its certificate (cert) as well")
    try:
        context = ssl.create_default_context(cafile=None if ca_bundle is None else str(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"the CA bundle {ca_bundle} cannot be used: {_reason(exc)}"
        ) from None
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), None if key is None else str(key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"the client certificate {cert} cannot be used: {_reason(exc)}"
            ) from None
    return context


def _reason(error: OSError | ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLError):
        return error.reason or "not PEM"
    return error.strerror or type(error).__name__
