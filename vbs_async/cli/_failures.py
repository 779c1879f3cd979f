"""When a crawl stops early instead of failing every project one by one.

- Credentials refused: a 401 (IAM's or VBS's) before any project succeeded,
  or `CREDENTIALS_IN_A_ROW` projects in a row refused with 401/403. Trying
  the other projects would only repeat the refusal (and a wrong password
  risks locking the account).
- An endpoint that stopped answering: the first project failed without
  reaching it (connection refused: a wrong endpoint), or the last
  `unreachable_window` projects all failed without an answer (refused
  connections, timeouts, dropped answers).
- A configuration error (a token catalog that names no usable VBS
  endpoint): the same for every project.
- `--max-failures N`: the operator's own limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from vbs_async._agency import AgencyAuth
from vbs_async._errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    TransportError,
)
from vbs_async._iam import PasswordAuth
from vbs_async._signing import AKSKAuth

if TYPE_CHECKING:
    from vbs_async._auth import Auth
    from vbs_async._errors import VBSError

CREDENTIALS_IN_A_ROW: Final = 5


class CrawlStoppedError(Exception):
    """The crawl stopped early; the message says why and what to check.

    Attributes:
        setup: A setup problem (credentials, endpoint, configuration), told in one
            line when nothing was crawled yet; False for the operator's own limit
            (`--max-failures`), which ends with a summary like any run.
    """

    def __init__(self, message: str, *, setup: bool = True) -> None:
        super().__init__(message)
        self.setup = setup


def what_to_check(auth: Auth) -> str:
    """The settings behind these credentials, for the operator to check."""
    if isinstance(auth, AgencyAuth):
        return "the agency (agency_name, agency_domain_name) and the delegated user's credentials"
    if isinstance(auth, PasswordAuth):
        return (
            "the user name, password and domain (OS_USERNAME, OS_PASSWORD, "
            "OS_USER_DOMAIN_NAME, or the cloud's auth in clouds.yaml)"
        )
    if isinstance(auth, AKSKAuth):
        return (
            "the access key, secret key and security token (OS_ACCESS_KEY, OS_SECRET_KEY, "
            "OS_SECURITY_TOKEN), and this machine's clock"
        )
    return "the token (OS_AUTH_TOKEN / OS_TOKEN): is it valid and scoped to these projects?"


class FailurePolicy:
    """Watches project results and says when to stop.

    Args:
        auth: The crawl's credentials (to say what to check).
        endpoint: The endpoint, as messages name it.
        max_failures: Stop after this many failed projects; None for no limit.
        unreachable_window: Consecutive projects failing without an answer
            that mean the endpoint is gone.
    """

    def __init__(
        self, auth: Auth, endpoint: str, *, max_failures: int | None, unreachable_window: int
    ) -> None:
        self._auth = auth
        self._endpoint = endpoint
        self._max_failures = max_failures
        self._window = unreachable_window
        self._succeeded = 0
        self._failed = 0
        self._answered = False  # any HTTP answer at all: a success, a 429, a 500
        self._refused_in_a_row = 0
        self._unreachable_in_a_row = 0

    def succeeded(self) -> None:
        """A project finished well."""
        self._succeeded += 1
        self._answered = True
        self._refused_in_a_row = 0
        self._unreachable_in_a_row = 0

    def failed(self, error: VBSError) -> None:
        """A project failed with `error`.

        Raises:
            CrawlStoppedError: The crawl should stop now.
        """
        self._failed += 1
        answered = (isinstance(error, APIError) and error.request_sent) or (
            isinstance(error, TransportError) and error.answered
        )
        self._answered = self._answered or answered
        if isinstance(error, ConfigurationError):  # the same for every project
            raise CrawlStoppedError(str(error))
        # IAM refusing one project's token after it accepted the credentials
        # for another (no role there, a disabled project) is that project's alone.
        alone = isinstance(error, AuthenticationError) and error.credentials_refused is False
        refused = isinstance(error, AuthenticationError | PermissionDeniedError) and not alone
        self._refused_in_a_row = self._refused_in_a_row + 1 if refused else 0
        # A call whose requests were answered (429s), then cut at its deadline with
        # one on the wire, is no project failed without an answer: behind a gateway
        # answering every request with 429 in 1 s, ten such read "stopped answering".
        transport = isinstance(error, TransportError) and not error.answered
        unreachable = isinstance(error, TransportError) and not error.request_sent
        self._unreachable_in_a_row = self._unreachable_in_a_row + 1 if transport else 0
        if refused and (
            (isinstance(error, AuthenticationError) and error.credentials_refused)
            or (isinstance(error, AuthenticationError) and self._succeeded == 0)
            or self._refused_in_a_row >= CREDENTIALS_IN_A_ROW
        ):
            raise CrawlStoppedError(
                f"credentials refused ({error}); check {what_to_check(self._auth)}"
            )
        # A deadline that ran out once the endpoint had answered (every request 429,
        # a call cut at its deadline) is no endpoint that never answers.
        if (unreachable or isinstance(error, TimeoutError)) and not self._answered:
            raise CrawlStoppedError(
                f"the endpoint {self._endpoint} does not answer: {error}; check --endpoint "
                "(VBS_ENDPOINT) and the network, or raise --timeout for a slow one"
            )
        if self._unreachable_in_a_row >= self._window:
            raise CrawlStoppedError(
                f"the endpoint {self._endpoint} stopped answering: the last "
                f"{self._unreachable_in_a_row} projects failed without an answer ({error}); "
                "check the endpoint and the network (proxy, firewall)"
            )
        if self._max_failures is not None and self._failed >= self._max_failures:
            raise CrawlStoppedError(
                f"{self._failed} projects failed (--max-failures {self._max_failures})",
                setup=False,
            )
