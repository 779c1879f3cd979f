"""Which projects a run crawls: IDs, names resolved through IAM, or every project of a region.

A name IAM does not list, or a disabled project, fails alone in a crawl (the
others are crawled); a call that changes the cloud refuses it before
anything is sent. `--all-projects` crawls one region's projects: with no
region configured, it refuses when IAM lists projects of several regions
(one endpoint serves one region), and a region with no project is an error
(a typo such as `eu-dee` would otherwise crawl nothing and succeed).

Open Telekom Cloud project names carry their region (`eu-de`, `eu-de_prod`);
IDs are 32 hexadecimal digits. An argument shaped like a name is looked up
in IAM's project list, once per run, however many names there are.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Final

import attrs

from vbs_async._errors import VBSError

if TYPE_CHECKING:
    from vbs_async._client import VBSClient

_NAME: Final = re.compile(r"^[a-z]{2}-[a-z]+[0-9]*(?:_.+)?$")


_MOS: Final = "MOS"
_MOS_REASON: Final = "MOS is IAM's built-in project, which holds no backups: name another"


class ProjectLookupError(Exception):
    """A project name that IAM does not list, or a project list that cannot be crawled."""


class ProjectUnavailableError(VBSError):
    """A named project that cannot be crawled (disabled, or unknown to IAM): it fails alone."""


@attrs.frozen
class Resolved:
    """The projects a run works on.

    Attributes:
        ids: Project IDs (and the names IAM did not know), in order, no repeats.
        unavailable: Those of `ids` that fail without a request, with why.
    """

    ids: list[str]
    unavailable: dict[str, str] = attrs.field(factory=dict)


def is_project_name(text: str) -> bool:
    """Whether `text` is shaped like a project name (`eu-de_prod`), not an ID."""
    return bool(_NAME.match(text))


async def resolve_projects(
    client: VBSClient, wanted: list[str], *, all_in_region: str | None, every: bool
) -> list[str]:
    """The project IDs for `wanted` (names resolved), or every enabled project of a region.

    Raises:
        ProjectLookupError: A name IAM does not list, or a disabled project.
    """
    resolved = await resolve_for_crawl(client, wanted, region=all_in_region, every=every)
    for reason in resolved.unavailable.values():
        raise ProjectLookupError(reason)
    return resolved.ids


async def resolve_for_crawl(
    client: VBSClient, wanted: list[str], *, region: str | None, every: bool
) -> Resolved:
    """The projects to crawl: `wanted` with names resolved, or every enabled project.

    A name IAM does not list, or a disabled project named by name or ID
    (when IAM is asked anyway), is kept in the list as unavailable, so that
    it fails alone, with its reason, while the others are crawled.

    Args:
        client: Asks IAM for the project list (at most once).
        wanted: IDs and names, in the order given.
        region: With `every`, the region whose projects are crawled (None:
            the only region IAM lists projects in).
        every: Crawl every enabled project IAM lists (MOS left out) instead
            of `wanted`.

    Raises:
        ProjectLookupError: `every` without a region when IAM lists several,
            or a region with no project at all.
    """
    if every:
        return Resolved(await _every_project(client, region))
    builtin = {text: _MOS_REASON for text in wanted if text == _MOS}
    if not any(is_project_name(text) for text in wanted):
        return Resolved(list(dict.fromkeys(wanted)), builtin)
    listed = await client.list_projects(include_disabled=True)
    by_name = {p.name: p for p in listed}
    by_id = {p.id: p for p in listed}
    ids: list[str] = []
    unavailable: dict[str, str] = dict(builtin)
    for text in wanted:
        project = by_name.get(text) if is_project_name(text) else by_id.get(text)
        key = text if project is None else project.id
        if project is None and is_project_name(text):
            unavailable[key] = (
                f"no project named {text!r} among the {len(by_name)} IAM lists for these "
                "credentials"
            )
        elif project is not None and not project.enabled:
            unavailable[key] = f"project {project.name} ({project.id}) is disabled in IAM"
        ids.append(key)
    return Resolved(list(dict.fromkeys(ids)), unavailable)


async def _every_project(client: VBSClient, region: str | None) -> list[str]:
    listed = await client.list_projects()
    regions = Counter(p.region for p in listed)
    if region is None:
        if len(regions) > 1:
            counts = ", ".join(f"{name}: {n}" for name, n in sorted(regions.items()))
            raise ProjectLookupError(
                f"--all-projects needs --region: IAM lists projects in {len(regions)} regions "
                f"({counts}), and one endpoint serves one region"
            )
        return [p.id for p in listed]
    chosen = [p.id for p in listed if p.region == region]
    if not chosen:
        known = ", ".join(sorted(regions)) or "none"
        raise ProjectLookupError(
            f"IAM lists no enabled project in region {region!r} (regions with projects: "
            f"{known}): check --region"
        )
    return chosen
