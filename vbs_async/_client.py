"""`VBSClient`: the calls of the backup-sharing API over one aiohttp session.

The client validates arguments, builds requests (`_requests`), sends them
under the limits (`_limits`) with retries (`_retry`, on stamina) and turns
answers into models or errors (`_responses`). Listing is `_pagination`'s job,
fanning out over projects `_crawl`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, Self, Unpack

import aiohttp
import stamina
from yarl import URL

from ._auth import Auth
from ._config import resolve_from_os
from ._crawl import ProjectIds, crawl
from ._errors import RequestTimeoutError, VBSError
from ._limits import RequestLimiter
from ._models import BackupSharing, ListingStats, ProjectSharings
from ._pagination import SharingIterator
from ._requests import (
    FilterKeywords,
    ListingKeywords,
    ListingOptions,
    Request,
    SharingFilters,
    cancel_sharing_request,
    count_sharings_request,
    get_sharing_request,
    list_sharings_request,
    share_backup_request,
)
from ._responses import Response, check_response, read_count, read_sharing, read_sharing_list
from ._retry import RetryBudget, RetryPolicy, is_transient
from ._transport import send
from ._validation import check_endpoint, check_id, check_int, check_positive_number

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator
    from types import TracebackType

logger: Final = logging.getLogger("vbs_async")

DEFAULT_MAX_BODY_SIZE: Final = 64 * 1024 * 1024
_CONFIG_KEYWORDS: Final = frozenset({"endpoint", "auth", "cloud", "region"})
_USER_AGENT: Final = "vbs-async"


class VBSClient:
    """An asyncio client of the VBS backup-sharing API.

    Use it as `async with VBSClient(...) as client:`, or call `close()`.

    Args:
        endpoint: `https://host[:port]`; plain `http` only for loopback hosts.
        auth: How requests are authenticated (`TokenAuth`, ...).
        max_concurrency: Requests in flight at most, across the whole client.
        rate_limit: Request starts per second at most, or None for no cap.
        timeout: Seconds one HTTP request may take, connecting included.
        retry: How transient failures are retried.
        session: An aiohttp session to borrow; the client never closes it.
        max_body_size: Answers larger than this many bytes are refused.
        retry_budget: The retry quota shared by every call of this client.

    Raises:
        ValueError: An argument is invalid.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        auth: Auth,
        max_concurrency: int = 32,
        rate_limit: float | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        retry_budget: RetryBudget | None = None,
    ) -> None:
        self._endpoint = str(check_endpoint(endpoint))
        if not isinstance(auth, Auth):
            raise ValueError(f"auth must be a vbs_async auth object, got {type(auth).__name__}")
        self._auth = auth
        self._limiter = RequestLimiter(
            check_int("max_concurrency", max_concurrency, minimum=1),
            check_positive_number("rate_limit", rate_limit, allow_none=True),
        )
        self._timeout = aiohttp.ClientTimeout(total=check_positive_number("timeout", timeout))
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValueError("retry must be a RetryPolicy")
        self._retry = retry or RetryPolicy()
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ValueError("session must be an aiohttp.ClientSession")
        self._session = session
        self._owns_session = session is None
        self._max_body_size = check_int("max_body_size", max_body_size, minimum=1)
        self._budget = retry_budget if retry_budget is not None else RetryBudget()
        # Limits the server has filled a page at: `end_check="auto"` then takes a
        # short page at such a limit as the end without a confirming request.
        self._honoured_limits: set[int] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"VBSClient({self._endpoint!r}, auth={self._auth!r})"

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """A client configured the way OpenStack users keep their settings.

        The endpoint and credentials come from the OpenStack variables
        (`OS_AUTH_TOKEN`; `OS_ACCESS_KEY` and `OS_SECRET_KEY`; `OS_AUTH_URL`,
        `OS_USERNAME`, `OS_PASSWORD`, `OS_USER_DOMAIN_NAME`; `OS_REGION_NAME`;
        `VBS_ENDPOINT`) or from the cloud named by `OS_CLOUD` in clouds.yaml.
        See the README for the precedence.

        Args:
            **overrides: `endpoint`, `auth`, `cloud` and `region` win over the
                environment; any other keyword goes to `VBSClient`.

        Raises:
            ConfigurationError: A setting is missing or contradicts another;
                the message names the variable or key to set.
        """
        resolved = resolve_from_os(overrides)
        options = {k: v for k, v in overrides.items() if k not in _CONFIG_KEYWORDS}
        return cls(resolved.endpoint, auth=resolved.auth, **options)

    @property
    def endpoint(self) -> str:
        """The service endpoint, `scheme://host[:port]`."""
        return self._endpoint

    @property
    def limiter(self) -> RequestLimiter:
        """The client's request limiter (in-flight counts and the adaptive cap)."""
        return self._limiter

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
        """Close the session the client owns; a borrowed session stays open."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        session = getattr(self, "_session", None)
        if getattr(self, "_owns_session", False) and session is not None and not session.closed:
            _warn(
                "VBSClient was not closed: use `async with` or `await client.close()`",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the VBSClient is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limiter.max_concurrency),
                headers={"User-Agent": _USER_AGENT},
            )
        return self._session

    # -- sending ----------------------------------------------------------------

    async def _call(self, request: Request, stats: ListingStats | None = None) -> Response:
        """Send `request` with retries; return its 2xx answer or raise the right error."""
        policy = self._retry
        attempt_number = 0

        def retry_or_not(error: Exception) -> bool | float:
            if (
                attempt_number >= policy.attempts
                or not is_transient(error, request)
                or not self._budget.spend(error)
            ):
                return False
            retry_after = getattr(error, "retry_after", None)
            return True if retry_after is None else policy.backoff_after(retry_after)

        try:
            async with asyncio.timeout(policy.timeout):
                async for attempt in stamina.retry_context(
                    on=retry_or_not,
                    attempts=policy.attempts,
                    timeout=policy.timeout,
                    wait_initial=policy.wait_initial,
                    wait_max=policy.wait_max,
                    wait_jitter=policy.wait_jitter,
                ):
                    with attempt:
                        attempt_number = attempt.num
                        if stats is not None and attempt_number > 1:
                            stats.retries += 1
                        return await self._send(request, attempt_number, stats)
        except TimeoutError as exc:
            if isinstance(exc, VBSError):
                raise
            raise RequestTimeoutError(
                f"the call did not finish within RetryPolicy.timeout ({policy.timeout}s)",
                project_id=request.project_id,
                offset=request.offset,
            ) from None
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    async def _send(self, request: Request, attempt: int, stats: ListingStats | None) -> Response:
        """One attempt: authenticate, send under the limits, check the status."""
        session = self._http()
        url = URL(self._endpoint + request.target, encoded=True)
        refreshed = False
        while True:
            headers = {"Accept": "application/json"}
            if request.body is not None:
                headers["Content-Type"] = "application/json"
            credentials = await self._auth.headers(request, url, session)
            headers.update(credentials)
            async with self._limiter.slot() as started_in_round:
                if stats is not None:
                    stats.requests += 1
                began = time.perf_counter()
                try:
                    response = await send(
                        session,
                        url,
                        request,
                        headers,
                        timeout=self._timeout,
                        max_body_size=self._max_body_size,
                    )
                except VBSError as error:
                    self._log(request, attempt, began, type(error).__name__)
                    raise
            self._log(request, attempt, began, response.status)
            if (
                response.status == HTTPStatus.UNAUTHORIZED
                and not refreshed
                and self._auth.invalidate(request.project_id, credentials)
            ):
                refreshed = True
                continue
            if response.status == HTTPStatus.TOO_MANY_REQUESTS:
                self._limiter.throttled(started_in_round)
            check_response(response, request)
            self._limiter.succeeded()
            self._budget.refund()
            return response

    @staticmethod
    def _log(request: Request, attempt: int, began: float, outcome: object) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            # The path only: IDs, never a credential (none travels in a URL).
            logger.debug(
                "%s %s offset=%s -> %s in %.3fs (attempt %d)",
                request.method,
                request.path,
                request.offset,
                outcome,
                time.perf_counter() - began,
                attempt,
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
        sort position changed is yielded at most once. `verify=True` lists
        again after the end, up to three more passes, until a pass brings
        nothing new and sees no change: it then also yields every sharing that
        moved, so that everything present at the start and at the end is
        yielded (when the listing stops changing). `end_check="count"` uses
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
            return read_sharing_list(response.body, request)

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
            honoured_limits=self._honoured_limits,
        )
        return iterator

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
                (filters, sort, `page_size`, `end_check`, `prefetch`).

        A project's failure comes back as its result's `error`; it never stops
        the crawl. Wrap the loop in `contextlib.aclosing` to stop a crawl
        deterministically when breaking out of it.

        Raises:
            ValueError: An option is invalid (raised here, before any request).
        """
        check_int("max_projects", max_projects, minimum=1)
        for forbidden in ("start_offset", "max_items"):
            if forbidden in options:
                raise ValueError(f"crawl() lists whole projects; {forbidden} is not accepted")
        listing = _options(options)

        async def list_project(project_id: str) -> ProjectSharings:
            try:
                iterator = self._iterator(check_id("project_id", project_id), listing)
            except ValueError as exc:
                # One bad ID among thousands is that project's failure, not the crawl's.
                return ProjectSharings(
                    str(project_id), (), VBSError(str(exc), project_id=str(project_id))
                )
            try:
                sharings = tuple([sharing async for sharing in iterator])
            except VBSError as exc:
                return ProjectSharings(project_id, (), exc, iterator.stats)
            return ProjectSharings(project_id, sharings, None, iterator.stats)

        return crawl(list_project, project_ids, max_projects=max_projects)

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
        """End one sharing."""
        await self._call(cancel_sharing_request(project_id, sharing_id, is_backup_id=False))

    async def cancel_backup_sharings(self, project_id: str, backup_id: str) -> None:
        """End every sharing of one backup."""
        await self._call(cancel_sharing_request(project_id, backup_id, is_backup_id=True))


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
