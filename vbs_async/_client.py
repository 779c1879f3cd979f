"""`VBSClient`: the calls of the backup-sharing API over one aiohttp session.

The client validates arguments, builds requests (`_requests`), hands them
to its `Session` (`_session`: the path every request takes, under the limits
of `_limits` with the retries of `_retry`) and turns answers into models or
errors (`_responses`). Listing is `_pagination`'s job,
fanning out over projects `_crawl`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import warnings
from typing import TYPE_CHECKING, Any, Final, Self, TypedDict, Unpack

import aiohttp
import attrs

from ._agency import AgencyAuth
from ._auth import Auth
from ._crawl import ProjectIds, fan_out
from ._endpoints import KNOWN_REGIONS
from ._errors import (
    ClientClosedError,
    ConfigurationError,
    EventLoopError,
    VBSError,
)
from ._iam import PasswordAuth, normalise_auth_url
from ._limits import RequestLimiter
from ._models import (
    BackupSharing,
    ListingStats,
    Project,
    ProjectDone,
    ProjectSharings,
    SharingPage,
)
from ._pagination import SharingIterator
from ._redaction import redact_error
from ._requests import (
    FilterKeywords,
    ListingKeywords,
    ListingOptions,
    SharingFilters,
    cancel_sharing_request,
    count_sharings_request,
    get_sharing_request,
    list_projects_request,
    list_sharings_request,
    share_backup_request,
)
from ._responses import (
    read_count,
    read_projects,
    read_sharing,
    read_sharing_list,
)
from ._retry import RetryBudget, RetryPolicy
from ._session import VBS_SERVICE, Session
from ._transport import AiohttpTransport, Transport
from ._validation import (
    check_endpoint,
    check_id,
    check_int,
    check_positive_number,
    check_rate_limit,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable
    from types import TracebackType

    from ._tls import SSLSetting

logger: Final = logging.getLogger("vbs_async")
_SSLContext: Final = ssl.SSLContext  # the module's name is taken by the `ssl` argument

DEFAULT_MAX_BODY_SIZE: Final = 64 * 1024 * 1024


class ClientKeywords(TypedDict, total=False):
    """`VBSClient`'s keywords besides the endpoint and auth (for `from_env`)."""

    max_concurrency: int
    rate_limit: float | None
    timeout: float
    retry: RetryPolicy | None
    session: aiohttp.ClientSession | None
    max_body_size: int
    retry_budget: RetryBudget | None
    transport: Transport | None
    ssl: SSLSetting
    iam_endpoint: str | None


class VBSClient:
    """An asyncio client of the VBS backup-sharing API.

    Use it as `async with VBSClient(...) as client:`, or call `close()`.

    Args:
        endpoint: `https://host[:port]`; plain `http` only for loopback hosts.
            None: from the service catalog of each project's token (with
            `PasswordAuth` and `AgencyAuth`: type `vbs`, then `vbsv2`, public,
            in `region`), else from the known endpoints of `region`.
        auth: How requests are authenticated (`TokenAuth`, ...).
        region: The region (`eu-de`), for the endpoints and `list_projects`.
        iam_endpoint: IAM's endpoint, for `list_projects`: by default the
            auth's `auth_url`, else the known IAM endpoint of `region`.
        ssl: TLS settings: True verifies against the system's CAs, an
            `ssl.SSLContext` against its own (a private CA, a client
            certificate: see `vbs_async.tls_context`); False does not verify
            (a WARNING says so).
        max_concurrency: Requests in flight at most, across the whole client.
        rate_limit: Request starts per second at most, or None for no cap.
        timeout: Seconds one HTTP request may take, connecting included.
        retry: How transient failures are retried.
        session: An aiohttp session to borrow; the client never closes it.
        max_body_size: Answers larger than this many bytes are refused
            (counted after decompression).
        retry_budget: The retry quota shared by every call of this client.
        transport: What sends the requests (`AiohttpTransport` by default;
            `vbs_async.testing.MockTransport` in unit tests). When given,
            `session`, `timeout` and `max_body_size` are the transport's business.

    Raises:
        ValueError: An argument is invalid.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        auth: Auth,
        region: str | None = None,
        iam_endpoint: str | None = None,
        ssl: SSLSetting = True,
        max_concurrency: int = 32,
        rate_limit: float | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        retry_budget: RetryBudget | None = None,
        transport: Transport | None = None,
    ) -> None:
        if not isinstance(auth, Auth):
            raise ValueError(f"auth must be a vbs_async auth object, got {type(auth).__name__}")
        self._auth = auth
        if region is not None and (not isinstance(region, str) or not region):
            raise ValueError("region must be a non-empty string")
        self._region = region
        self._endpoint = None if endpoint is None else str(check_endpoint(endpoint))
        known = KNOWN_REGIONS.get(region) if region is not None else None
        # The known table's endpoint, used when no catalog names VBS.
        self._fallback_endpoint = VBS_SERVICE.known_endpoint(region)
        if self._endpoint is None and self._fallback_endpoint is None and not auth.brings_catalog:
            with_vbs = [name for name, table in KNOWN_REGIONS.items() if table.vbs]
            where = (
                "no region is given"
                if not region
                else f"region {region!r} publishes no VBS endpoint (only its tokens' catalogs "
                "name one)"
                if region in KNOWN_REGIONS
                else f"region {region!r} is not a known one"
            )
            raise ConfigurationError(
                f"no VBS endpoint: {where}, and {type(auth).__name__} brings no service "
                "catalog; set VBS_ENDPOINT (endpoint=), use a password or an agency (their "
                "tokens bring a catalog), or a region with a known endpoint (OS_REGION_NAME, "
                f"region_name: {', '.join(with_vbs)})"
            )
        if iam_endpoint is not None:
            self._iam_endpoint: str | None = normalise_auth_url(iam_endpoint)
        elif isinstance(auth, PasswordAuth | AgencyAuth):
            self._iam_endpoint = auth.auth_url
        else:
            self._iam_endpoint = known.iam if known is not None else None
        if not isinstance(ssl, bool) and not isinstance(ssl, _SSLContext):
            raise ValueError("ssl must be True, False or an ssl.SSLContext")
        if ssl is False:
            logger.warning(
                "TLS certificates are NOT verified (ssl=False): anyone on the network path "
                "can read and change this client's requests, credentials included"
            )
        self._limiter = RequestLimiter(
            check_int("max_concurrency", max_concurrency, minimum=1),
            check_rate_limit("rate_limit", rate_limit),
        )
        check_positive_number("timeout", timeout)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValueError("retry must be a RetryPolicy")
        self._retry = retry or RetryPolicy()
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ValueError("session must be an aiohttp.ClientSession")
        check_int("max_body_size", max_body_size, minimum=1)
        self._transport: Transport = transport or AiohttpTransport(
            session,
            max_connections=max_concurrency,
            timeout=timeout,
            max_body_size=max_body_size,
            ssl=ssl,
        )
        self._budget = _checked_budget(retry_budget)
        # The longest page the sharing listing returned at each limit: with
        # `end_check="auto"`, a shorter page at that limit is the end at once.
        # One per listing (endpoint), never shared with another API's.
        self._sharing_page_sizes: dict[int, int] = {}
        self._session = Session(
            VBS_SERVICE,
            auth=auth,
            transport=self._transport,
            limiter=self._limiter,
            retry=self._retry,
            budget=self._budget,
            endpoint=self._endpoint,
            region=region,
        )
        # Every request of the client, IAM's included, passes here.
        self._call = self._session.call

    def __repr__(self) -> str:
        return f"VBSClient({self._endpoint!r}, auth={self._auth!r})"

    @classmethod
    def from_env(
        cls,
        *,
        endpoint: str | None = None,
        auth: Auth | None = None,
        cloud: str | None = None,
        region: str | None = None,
        **options: Unpack[ClientKeywords],
    ) -> Self:
        """A client configured the way OpenStack users keep their settings.

        The endpoint, region, credentials and TLS settings come from the
        OpenStack variables (`OS_AUTH_TOKEN`/`OS_TOKEN`; `OS_ACCESS_KEY`,
        `OS_SECRET_KEY`, `OS_SECURITY_TOKEN`; `OS_AUTH_URL`, `OS_USERNAME`,
        `OS_PASSWORD`, `OS_USER_DOMAIN_NAME`/`_ID`; `OS_AGENCY_NAME`,
        `OS_AGENCY_DOMAIN_NAME`; `OS_REGION_NAME`; `OS_CACERT`, `OS_CERT`,
        `OS_KEY`, `OS_INSECURE`; `VBS_ENDPOINT`) or from the cloud named by
        `OS_CLOUD` in clouds.yaml (with secure.yaml and the `otc` profiles),
        as openstacksdk reads them. See the README ("Connecting to your
        cloud") for the precedence.

        Args:
            endpoint: The VBS endpoint, over any configured one.
            auth: The credentials, over any configured ones.
            cloud: The cloud of clouds.yaml to use, over `OS_CLOUD`.
            region: The region, over the configured one.
            **options: `VBSClient`'s other keywords.

        Raises:
            ConfigurationError: A setting is missing or contradicts another;
                the message names the variable or key to set.
        """
        from ._config import resolve_from_os  # noqa: PLC0415 - YAML only for who reads config

        overrides = {"endpoint": endpoint, "auth": auth, "cloud": cloud, "region": region}
        resolved = resolve_from_os({k: v for k, v in overrides.items() if v is not None})
        return cls(**{**resolved.client_options(), **options})

    @property
    def endpoint(self) -> str | None:
        """The service endpoint, `scheme://host[:port]`; None when each token's catalog says.

        Given, or the known endpoint of the region when the auth brings no catalog.
        """
        if self._endpoint is None and not self._auth.brings_catalog:
            return self._fallback_endpoint
        return self._endpoint

    @property
    def region(self) -> str | None:
        """The region, if one was given."""
        return self._region

    @property
    def auth(self) -> Auth:
        """How this client authenticates its requests."""
        return self._auth

    @property
    def limiter(self) -> RequestLimiter:
        """The client's request limiter (in-flight counts and the learned rate)."""
        return self._limiter

    @property
    def listings(self) -> ListingStats:
        """Every listing's requests, retries and throttled answers so far, counted live.

        The sum of the `ListingStats` of each listing, those still running (or
        stopped midway, whose own figures never come) included. A copy, as of
        now: two reads before and after a crawl give what it cost (the live
        object read 0 for 10 requests that way, and took any value assigned).
        """
        return attrs.evolve(self._session.listings)

    @property
    def retry_budget(self) -> RetryBudget:
        """The retry quota shared by this client's calls."""
        return self._budget

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop token requests in flight and close what the client owns.

        A borrowed aiohttp session stays open.
        """
        session = self._session
        session.closed = True
        loop = session.loop
        if loop is not None and loop is not asyncio.get_running_loop():
            if not loop.is_closed():
                raise EventLoopError(
                    "close() must run in the event loop the client ran in, which still runs"
                )
            # Its loop is gone, and the connections with it: closing the
            # session now only marks it closed (aiohttp touches no dead loop).
            await self._transport.close()
            return
        await session.cancel_calls()
        await self._auth.aclose()
        await self._transport.close()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        transport = getattr(self, "_transport", None)
        if getattr(transport, "unclosed", False):
            _warn(
                "VBSClient was not closed: use `async with` or `await client.close()`",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )

    # -- listing ----------------------------------------------------------------

    def iter_sharings(self, project_id: str, **options: Unpack[ListingKeywords]) -> SharingIterator:
        """Every sharing of `project_id` that matches the filters, drained page by page.

        Args:
            project_id: The project to list.
            **options: Filters (`share_to_me`, `volume_id`, `name`, `status`,
                `backup_id`, `from_project_id`, `to_project_id`,
                `availability_zone`; None is not sent), `sort_key`, `sort_dir`,
                `page_size` (the `limit` sent, default 100), `start_offset`,
                `max_items`, `end_check` (`auto`, `short_page`, `empty_page`,
                `count`), `prefetch` (pages requested ahead) and `verify`
                (list again after the end until a pass brings nothing new).
                See the README.

        The guarantee (with `page_size` >= 2): every sharing present for the
        whole listing and whose sort position did not change is yielded
        exactly once, or the listing raises `PaginationError`. A sharing
        created or deleted meanwhile may or may not appear; a sharing whose
        sort position changed is yielded at most once. One gap: if one of
        the items a request re-reads to check its place moved there itself
        while sharings before it were deleted, unmoved ones can go unseen.
        `verify=True` lists again after the end, up to three more passes,
        until a pass brings nothing new and sees no change: it then also
        yields what moved or went unseen, so that everything present at the
        start and at the end is yielded (when the listing stops changing). `end_check="count"` uses
        the count to fetch pages ahead, never as the end.

        Raises:
            ValueError: An argument is invalid (raised here, before any request).
        """
        return self._iterator(check_id("project_id", project_id), _options(options))

    def _iterator(self, project_id: str, options: ListingOptions) -> SharingIterator:
        filters, sort = options.filters, options.sort
        iterator: SharingIterator

        async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
            request = list_sharings_request(project_id, filters, sort, offset=offset, limit=limit)
            response = await self._call(request, iterator.stats)
            return read_sharing_list(response.body, request, limit=limit)

        async def fetch_count() -> int:
            request = count_sharings_request(project_id, filters)
            response = await self._call(request, iterator.stats)
            return read_count(response.body, request)

        iterator = SharingIterator(
            project_id,
            fetch_page,
            fetch_count,
            page_size=options.page_size,
            start_offset=options.start_offset,
            max_items=options.max_items,
            end_check=options.end_check,
            prefetch=options.prefetch,
            verify=options.verify,
            page_sizes=self._sharing_page_sizes,
            check_open=functools.partial(self._check_open, project_id),
        )
        return iterator

    def _check_open(self, project_id: str, offset: int) -> None:
        """Raise `ClientClosedError` once the client is closed (a listing's items stop there)."""
        if self._session.closed:
            raise ClientClosedError(
                "the client was closed while this listing ran",
                project_id=project_id,
                offset=offset,
            )

    async def list_sharings(
        self, project_id: str, **options: Unpack[ListingKeywords]
    ) -> list[BackupSharing]:
        """Every sharing of `project_id` as a list; takes `iter_sharings`' keywords."""
        return [sharing async for sharing in self.iter_sharings(project_id, **options)]

    def crawl(
        self,
        project_ids: ProjectIds,
        *,
        max_projects: int = 16,
        **options: Unpack[ListingKeywords],
    ) -> AsyncGenerator[ProjectSharings, None]:
        """List many projects at once; yield each project's result as it completes.

        Args:
            project_ids: An iterable or async iterable of project IDs, read lazily.
            max_projects: Projects listed at once.
            **options: `iter_sharings` keywords applied to every project
                (filters, sort, `page_size`, `end_check`, `prefetch`, `verify`).

        A project's failure comes back as its result's `error`; it never stops
        the crawl. Each result holds the project's every sharing: for projects
        too big to hold, use `crawl_pages`. Wrap the loop in
        `contextlib.aclosing` to stop a crawl deterministically when breaking
        out of it.

        Raises:
            ValueError: An option is invalid (raised here, before any request).
        """
        listing = _crawl_options(max_projects, options)

        async def run(project_id: str, emit: Callable[[ProjectSharings], Awaitable[None]]) -> None:
            found: list[BackupSharing] = []

            async def keep(page: SharingPage) -> None:
                found.extend(page.items)

            end = await self._list_project(project_id, listing, keep)
            await emit(
                ProjectSharings(
                    end.project_id, tuple(found) if end.ok else (), end.error, end.stats
                )
            )

        return fan_out(run, project_ids, max_projects=max_projects)

    def crawl_pages(
        self,
        project_ids: ProjectIds,
        *,
        max_projects: int = 16,
        **options: Unpack[ListingKeywords],
    ) -> AsyncGenerator[SharingPage | ProjectDone, None]:
        """`crawl`, streamed: each project's pages as they arrive, then its `ProjectDone`.

        Memory is bounded by the pages in flight (about `max_projects` pages,
        plus `prefetch` per project), whatever the projects' sizes. Pages of
        projects listed at once interleave; a project's pages come in order,
        and its `ProjectDone` after the last of them. When a project fails, its
        `ProjectDone` carries the error and the pages it yielded are incomplete:
        drop them (the command keeps each project's rows apart until its end).

        Args:
            project_ids: An iterable or async iterable of project IDs, read lazily.
            max_projects: Projects listed at once.
            **options: `iter_sharings` keywords applied to every project.

        Raises:
            ValueError: An option is invalid (raised here, before any request).
        """
        listing = _crawl_options(max_projects, options)

        async def run(
            project_id: str, emit: Callable[[SharingPage | ProjectDone], Awaitable[None]]
        ) -> None:
            await emit(await self._list_project(project_id, listing, emit))

        return fan_out(run, project_ids, max_projects=max_projects)

    async def _list_project(
        self,
        project_id: str,
        listing: ListingOptions,
        on_page: Callable[[SharingPage], Awaitable[None]],
    ) -> ProjectDone:
        """List one project of a crawl, handing each page to `on_page`; never raises for it."""
        try:
            iterator = self._iterator(check_id("project_id", project_id), listing)
        except ValueError as exc:
            # One bad ID among thousands is that project's failure, not the crawl's.
            return ProjectDone(
                str(project_id), error=VBSError(str(exc), project_id=str(project_id))
            )
        count = 0
        try:
            async with contextlib.aclosing(iterator.pages()) as pages:
                async for page in pages:
                    count += len(page.items)
                    await on_page(page)
        except (ClientClosedError, EventLoopError):
            raise  # the crawl's end, not this project's failure
        except VBSError as exc:
            return ProjectDone(project_id, count, exc, iterator.stats)
        except Exception as exc:
            # A bug (ours or a library's) in one project must not end the crawl
            # of thousands: it becomes that project's error, logged in full.
            logger.exception("unexpected error listing project %s", project_id)
            error = redact_error(
                VBSError(f"unexpected {type(exc).__name__}: {exc}", project_id=project_id),
                self._auth.secrets(),
            )
            return ProjectDone(project_id, count, error, iterator.stats)
        return ProjectDone(project_id, count, None, iterator.stats)

    # -- projects ----------------------------------------------------------------

    async def list_projects(
        self,
        region: str | None = None,
        *,
        include_disabled: bool = False,
        include_mos: bool = False,
    ) -> list[Project]:
        """The projects the credentials may use (IAM `GET /v3/auth/projects`).

        IAM's built-in `MOS` project is left out, and disabled projects, unless
        asked for.

        Args:
            region: Only the projects of this region (`eu-de`); None for all.
            include_disabled: Also the disabled projects.
            include_mos: Also the account's `MOS` project (its region is
                `MOS`, so a `region` leaves it out): a project of the
                account, though no crawl may list it.

        Raises:
            ConfigurationError: No IAM endpoint is known (give `iam_endpoint`).
        """
        if region is not None and (not isinstance(region, str) or not region):
            raise ValueError("region must be a non-empty string or None")
        if not isinstance(include_disabled, bool):
            raise ValueError("include_disabled must be a bool")
        if not isinstance(include_mos, bool):
            raise ValueError("include_mos must be a bool")
        if self._iam_endpoint is None:
            raise ConfigurationError(
                "no IAM endpoint to list projects from: give iam_endpoint= (OS_AUTH_URL) "
                "or a known region"
            )
        request = list_projects_request(self._iam_endpoint)
        projects = read_projects((await self._call(request)).body, request, mos=include_mos)
        return [
            project
            for project in projects
            if (include_disabled or project.enabled)
            and (region is None or project.region == region)
        ]

    # -- the other sharing calls -----------------------------------------------

    async def count_sharings(self, project_id: str, **filters: Unpack[FilterKeywords]) -> int:
        """How many sharings of `project_id` match the filters (`iter_sharings`' filters)."""
        request = count_sharings_request(project_id, _filters(filters))
        return read_count((await self._call(request)).body, request)

    async def get_sharing(self, project_id: str, sharing_id: str) -> BackupSharing:
        """One sharing by ID.

        Raises:
            NotFoundError: No such sharing.
        """
        request = get_sharing_request(project_id, sharing_id)
        return read_sharing((await self._call(request)).body, request)

    async def share_backup(
        self, project_id: str, backup_id: str, to_project_ids: list[str] | tuple[str, ...]
    ) -> list[BackupSharing]:
        """Share a backup of `project_id` with other projects; one sharing per target.

        Not retried once the request has left: the service may have acted on it.
        """
        request = share_backup_request(project_id, backup_id, to_project_ids)
        return list(read_sharing_list((await self._call(request)).body, request))

    async def cancel_sharing(self, project_id: str, sharing_id: str) -> None:
        """End one sharing.

        A retry after an attempt whose answer was lost (a dropped connection,
        a 502/503/504) that finds the sharing gone counts as success: the
        first attempt may have ended it, and the state asked for holds.
        """
        await self._call(cancel_sharing_request(project_id, sharing_id, is_backup_id=False))

    async def cancel_backup_sharings(self, project_id: str, backup_id: str) -> None:
        """End every sharing of one backup (a retried 404 is done, as for `cancel_sharing`)."""
        await self._call(cancel_sharing_request(project_id, backup_id, is_backup_id=True))


def _crawl_options(max_projects: int, keywords: ListingKeywords) -> ListingOptions:
    """A crawl's listing options, checked before any request."""
    check_int("max_projects", max_projects, minimum=1)
    for forbidden in ("start_offset", "max_items"):
        if forbidden in keywords:
            raise ValueError(f"a crawl lists whole projects; {forbidden} is not accepted")
    return _options(keywords)


def _options(keywords: ListingKeywords) -> ListingOptions:
    try:
        return ListingOptions.from_keywords(**keywords)
    except TypeError as exc:
        # attrs names the unknown keyword; say it the way a caller reads it.
        raise TypeError(f"unknown listing keyword: {exc}") from None


def _filters(keywords: FilterKeywords) -> SharingFilters:
    try:
        return SharingFilters(**keywords)
    except TypeError as exc:
        raise TypeError(f"unknown filter keyword: {exc}") from None


def _checked_budget(retry_budget: object) -> RetryBudget:
    """The client's retry budget: the one given, or a new one.

    Raises:
        ValueError: `retry_budget` is not a `RetryBudget` (caught here, not at the first 503).
    """
    if retry_budget is None:
        return RetryBudget()
    if not isinstance(retry_budget, RetryBudget):
        raise ValueError(f"retry_budget must be a RetryBudget, got {type(retry_budget).__name__}")
    return retry_budget
