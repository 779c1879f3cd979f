"""vbs_async: an asyncio client for Open Telekom Cloud VBS backup sharings."""

from __future__ import annotations

from . import inventory
from ._agency import AgencyAuth
from ._auth import Auth, TokenAuth
from ._client import VBSClient
from ._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    EventLoopError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTimeoutError,
    ResponseDecodeError,
    ServerError,
    TransportError,
    VBSError,
)
from ._iam import PasswordAuth
from ._models import (
    Backup,
    BackupSharing,
    ListingStats,
    Project,
    ProjectDone,
    ProjectSharings,
    SharingPage,
)
from ._pagination import SharingIterator
from ._retry import RetryBudget, RetryPolicy
from ._signing import AKSKAuth
from ._tls import tls_context
from ._validation import EndCheck, SortDir, SortKey

__all__ = [
    "AKSKAuth",
    "APIError",
    "AgencyAuth",
    "Auth",
    "AuthenticationError",
    "Backup",
    "BackupSharing",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "EndCheck",
    "EventLoopError",
    "ListingStats",
    "NotFoundError",
    "PaginationError",
    "PasswordAuth",
    "PermissionDeniedError",
    "Project",
    "ProjectDone",
    "ProjectSharings",
    "RateLimitedError",
    "RequestTimeoutError",
    "ResponseDecodeError",
    "RetryBudget",
    "RetryPolicy",
    "ServerError",
    "SharingIterator",
    "SharingPage",
    "SortDir",
    "SortKey",
    "TokenAuth",
    "TransportError",
    "VBSClient",
    "VBSError",
    "inventory",
    "tls_context",
]
