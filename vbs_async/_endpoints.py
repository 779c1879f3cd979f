"""Where VBS and IAM live: the token's service catalog, then a table of known regions.

A project-scoped IAM token carries the catalog of the project's region:
recorded Open Telekom Cloud catalogs list VBS as type `vbs` (URL `…/v2/`)
and `vbsv2` (URL `…/v2/{project_id}`). Only where no catalog is at hand
(a ready token, AK/SK) does the small table below answer, and only for the
regions it knows: a made-up host name would fail later, and less clearly.
"""

from __future__ import annotations

from typing import Any, Final

import attrs
from yarl import URL

from ._errors import ConfigurationError
from ._validation import check_endpoint


@attrs.frozen
class RegionEndpoints:
    """The public endpoints of one region."""

    vbs: str | None
    iam: str


KNOWN_REGIONS: Final = {
    "eu-de": RegionEndpoints(
        vbs="https://vbs.eu-de.otc.t-systems.com", iam="https://iam.eu-de.otc.t-systems.com"
    ),
    # VBS is not in eu-nl's public endpoint table: its catalog has to say.
    "eu-nl": RegionEndpoints(vbs=None, iam="https://iam.eu-nl.otc.t-systems.com"),
    # The Swiss cloud lives under its own domain, and its IAM is `iam-pub`.
    "eu-ch2": RegionEndpoints(
        vbs="https://vbs.eu-ch2.sc.otc.t-systems.com",
        iam="https://iam-pub.eu-ch2.sc.otc.t-systems.com",
    ),
}
VBS_SERVICE_TYPES: Final = ("vbs", "vbsv2")
"""The catalog types VBS goes by, in order of preference (as otcextensions, then the Go SDK)."""


@attrs.frozen
class CatalogEndpoint:
    """One endpoint of a token's service catalog."""

    service_type: str
    interface: str
    region: str
    url: str


Catalog = tuple[CatalogEndpoint, ...]


def read_catalog(token: Any) -> Catalog:
    """The endpoints of `token.catalog` in an IAM answer; what cannot be read is left out."""
    entries = token.get("catalog") if isinstance(token, dict) else None
    found: list[CatalogEndpoint] = []
    for service in entries if isinstance(entries, list) else ():
        if not isinstance(service, dict) or not isinstance(service.get("type"), str):
            continue
        for endpoint in service.get("endpoints") or ():
            if not isinstance(endpoint, dict) or not isinstance(endpoint.get("url"), str):
                continue
            region = endpoint.get("region_id") or endpoint.get("region") or ""
            found.append(
                CatalogEndpoint(
                    service["type"],
                    str(endpoint.get("interface") or "public"),
                    str(region),
                    endpoint["url"],
                )
            )
    return tuple(found)


def catalog_endpoint(catalog: Catalog, types: tuple[str, ...], region: str | None) -> str | None:
    """`scheme://host[:port]` of the first public endpoint of `types` in `region`.

    Without a region, a type's endpoint counts only if the catalog has one
    region for it (a project token's catalog has its own region's).
    """
    for service_type in types:
        public = [e for e in catalog if e.service_type == service_type and e.interface == "public"]
        if region is not None:
            public = [e for e in public if e.region == region]
        if len({e.region for e in public}) == 1:
            try:
                url = URL(public[0].url)
                origin = str(url.origin())
            except ValueError:
                continue
            try:
                # Held to the rules of a configured endpoint: a catalog must not
                # send tokens over plain http (only loopback may).
                return str(check_endpoint(origin, f"the catalog's {service_type} endpoint"))
            except ValueError as exc:
                raise ConfigurationError(f"{exc}; set VBS_ENDPOINT") from None
    return None
