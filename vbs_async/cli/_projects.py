"""Which projects a run crawls: IDs, names resolved through IAM, or every project of a region.

Open Telekom Cloud project names carry their region (`eu-de`, `eu-de_prod`);
IDs are 32 hexadecimal digits. An argument shaped like a name is looked up
in IAM's project list, once per run, however many names there are.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from vbs_async._client import VBSClient

_NAME: Final = re.compile(r"^[a-z]{2}-[a-z]+[0-9]*(?:_.+)?$")


class ProjectLookupError(Exception):
    """A project name that IAM does not list: the message says which."""


def is_project_name(text: str) -> bool:
    """Whether `text` is shaped like a project name (`eu-de_prod`), not an ID."""
    return bool(_NAME.match(text))


async def resolve_projects(
    client: VBSClient, wanted: list[str], *, all_in_region: str | None, every: bool
) -> list[str]:
    """The project IDs to crawl: `wanted` with names resolved, or every enabled project.

    Args:
        client: Asks IAM for the project list (at most once).
        wanted: IDs and names, in the order given.
        all_in_region: With `every`, the region whose projects are crawled
            (None: every region).
        every: Crawl every enabled project IAM lists (MOS left out) instead
            of `wanted`.

    Raises:
        ProjectLookupError: A name IAM does not list.
    """
    if every:
        return [p.id for p in await client.list_projects(region=all_in_region)]
    if not any(is_project_name(text) for text in wanted):
        return wanted
    by_name = {p.name: p.id for p in await client.list_projects(include_disabled=True)}
    resolved = []
    for text in wanted:
        if not is_project_name(text):
            resolved.append(text)
            continue
        project_id = by_name.get(text)
        if project_id is None:
            raise ProjectLookupError(
                f"no project named {text!r} among the {len(by_name)} IAM lists for these "
                "credentials"
            )
        resolved.append(project_id)
    return list(dict.fromkeys(resolved))
