"""The typed values vbs_async returns: backups, sharings, pages and listing reports."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import attrs

from ._errors import VBSError


@attrs.frozen
class Backup:
    """A disk backup, as embedded in a sharing.

    Only `id` is required; the service sends nulls or omits the rest freely.

    Attributes:
        id: The backup's ID.
        name: The backup's name.
        status: `available`, `creating`, `error`, ...
        size: Size in GB.
        volume_id: The ID of the disk that was backed up.
        availability_zone: The availability zone of the backup.
        container: The OBS container holding the data.
        created_at: When the backup was created (UTC).
        updated_at: When the backup was last updated (UTC).
        data_timestamp: The point in time the backup's data represents (UTC).
        description: Free text.
        fail_reason: Why the backup failed, if it did.
        has_dependent_backups: Whether incremental backups depend on this one
            (the document's table also spells it `has_dependent_backup`).
        is_incremental: Whether this is an incremental backup.
        object_count: Number of OBS objects holding the data.
        snapshot_id: The snapshot the backup was taken from.
        service_metadata: The service's metadata string.
    """

    id: str
    name: str | None = None
    status: str | None = None
    size: int | None = None
    volume_id: str | None = None
    availability_zone: str | None = None
    container: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    data_timestamp: datetime | None = None
    description: str | None = None
    fail_reason: str | None = None
    has_dependent_backups: bool | None = None
    is_incremental: bool | None = None
    object_count: int | None = None
    snapshot_id: str | None = None
    service_metadata: str | None = None


@attrs.frozen
class BackupSharing:
    """One backup shared from one project to another.

    Attributes:
        id: The sharing's ID.
        backup_id: The shared backup's ID.
        from_project_id: The project that shares the backup.
        to_project_id: The project the backup is shared with.
        created_at: When the sharing was created (UTC); null in a share call's answer.
        updated_at: When the sharing was last updated (UTC).
        backup: The shared backup's details, when the service includes them.
    """

    id: str
    backup_id: str
    from_project_id: str
    to_project_id: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    backup: Backup | None = None


@attrs.frozen
class SharingPage:
    """The sharings of one list response.

    Attributes:
        project_id: The project that was listed.
        offset: The `offset` of the first item in `items`.
        limit: The `limit` that was asked for.
        items: The sharings, in the server's order, without items already yielded.
    """

    project_id: str
    offset: int
    limit: int
    items: tuple[BackupSharing, ...]


@attrs.define
class ListingStats:
    """What one listing cost and what it noticed.

    Attributes:
        requests: HTTP requests sent, retries, throttled ones and count requests included.
        retries: Requests that repeated a failed one (throttling is not failure).
        throttled: Answers that were the gateway's throttling (429), waited out
            and sent again without spending a retry.
        pages: List responses accepted.
        items: Sharings yielded.
        duplicates_dropped: Items dropped because their id was already yielded.
        shifts_detected: Times the listing's offsets were found to have moved.
        elapsed: Seconds from the first request to the end of the listing.
        recounts: Count requests made again because the listing ended off its
            count (`end_check="count"`): the listing changed while it was read.
        verify_passes: Passes listed again after the end (`verify=True`).
        found_by_verify: Sharings the verification passes found that the
            first pass missed (they moved, or were created, during it).
    """

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    pages: int = 0
    items: int = 0
    duplicates_dropped: int = 0
    shifts_detected: int = 0
    elapsed: float = 0.0
    recounts: int = 0
    verify_passes: int = 0
    found_by_verify: int = 0


MOS_PROJECT: Final = "MOS"
"""IAM's built-in project of the account's management services: never a crawl's business."""


def region_of(project_name: str) -> str:
    """The region a project name carries: `eu-de_prod` is in `eu-de`, `eu-de` itself too."""
    return project_name.partition("_")[0]


@attrs.frozen
class Project:
    """A project the credentials may use, as IAM lists it.

    Attributes:
        id: The project's ID.
        name: Its name, `{region}_{suffix}`; a region's default project is
            named after the region.
        region: The region, from the name's prefix.
        enabled: Whether the project is enabled.
        domain_id: The account (domain) it belongs to, as IAM lists it;
            None when IAM does not say.
    """

    id: str
    name: str
    region: str
    enabled: bool = True
    domain_id: str | None = None


@attrs.frozen
class ProjectSharings:
    """One project's result in a crawl.

    Attributes:
        project_id: The project that was listed.
        sharings: Every sharing of the project; empty when `error` is set.
        error: Why the project's listing failed, or None.
        stats: What the project's listing cost.
    """

    project_id: str
    sharings: tuple[BackupSharing, ...]
    error: VBSError | None = None
    stats: ListingStats = attrs.field(factory=ListingStats)

    @property
    def ok(self) -> bool:
        """True when the project was listed completely."""
        return self.error is None


@attrs.frozen
class ProjectDone:
    """The end of one project's listing in `crawl_pages`: its pages came before it.

    Attributes:
        project_id: The project that was listed.
        sharings: How many sharings its pages carried.
        error: Why the listing failed (its pages so far are then incomplete:
            drop them), or None.
        stats: What the project's listing cost.
    """

    project_id: str
    sharings: int = 0
    error: VBSError | None = None
    stats: ListingStats = attrs.field(factory=ListingStats)

    @property
    def ok(self) -> bool:
        """Whether the project was listed completely."""
        return self.error is None
