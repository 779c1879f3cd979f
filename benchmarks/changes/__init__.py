"""The issue's fifty one-line changes, as data: `python -m benchmarks.changes` runs them.

Issue 24 made fifty plausible one-line changes to the library and the command
(an off-by-one in a limit, a cancel dropped, a lock skipped, a flush dropped, a
comparison flipped) and counted how many the tests caught. The fifteen it names
as caught by nothing are written here exactly as it describes them (`named`);
the others are re-derived in the same spirit against the current code, by the
issue's count per module. The issue's counts add up to 48: the two others are
the changes it names elsewhere (redaction removed from the call path, and the
producer not cancelled when the consumer stops, which hung the suite).

Each change replaces `old` (found exactly once in `path`) by `new`; `module`
names its test selection in pyproject.toml's `[tool.mutmut.selection]`, and
`tests` adds files when the changed code has no selection of its own.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Change:
    """One plausible mistake: `old` replaced by `new` in `path`."""

    area: str
    path: str
    old: str
    new: str
    description: str
    module: str
    named: bool = False
    tests: tuple[str, ...] = ()


# The call path (`_client.py` has no selection of its own): its callers' files too.
_CLIENT_TESTS = ("test_crawl.py", "test_lifecycle.py", "test_streaming.py")

CHANGES: tuple[Change, ...] = (
    # -- pagination (9) -----------------------------------------------------------
    Change(
        "pagination", "vbs_async/_pagination.py",
        "            if self._stale >= MAX_STALE_PAGES:",
        "            if self._stale > MAX_STALE_PAGES:",
        "the stale-page limit moved by one", "_pagination", named=True,
    ),
    Change(
        "pagination", "vbs_async/_pagination.py",
        "            pending.pop(request).cancel()",
        "            pending.pop(request)",
        "guesses dropped by a re-planned prefetch no longer cancelled", "_pagination", named=True,
    ),
    Change(
        "pagination", "vbs_async/_pagination.py",
        "        return anchor is None or anchor - first <= reach",
        "        return anchor is None or anchor - first < reach",
        "the placement reach compared with `<` instead of `<=`", "_pagination", named=True,
    ),
    Change(
        "pagination", "vbs_async/_pagination.py",
        "            if self._repeats >= MAX_REPEATED_PAGES:",
        "            if self._repeats > MAX_REPEATED_PAGES:",
        "the repeated-page limit moved by one", "_pagination",
    ),
    Change(
        "pagination", "vbs_async/_pagination.py",
        "        await _cancel(self._ahead)\n\n    async def _recount",
        "\n\n    async def _recount",
        "pages fetched ahead no longer cancelled when a pass ends", "_pagination",
    ),
    Change(
        "pagination", "vbs_async/_pagination.py",
        "                if index >= overlap:  # re-reading the overlap is no duplicate",
        "                if index > overlap:  # re-reading the overlap is no duplicate",
        "a duplicate just past the overlap not counted", "_pagination",
    ),
    Change(
        "pagination", "vbs_async/_pagination.py",
        "self.stats.items + len(fresh) >= self.max_items:",
        "self.stats.items + len(fresh) > self.max_items:",
        "`max_items` reached exactly not ending the listing", "_pagination",
    ),
    Change(
        "pagination", "vbs_async/_pagination.py",
        "                self.offset = request.offset + last + 1",
        "                self.offset = request.offset + last",
        "the resume offset after `max_items` off by one", "_pagination",
    ),
    Change(
        "pagination", "vbs_async/_pagination.py",
        "        return fresh_count == 0 or page_length < self.page_sizes.get(request.limit, 0)",
        "        return fresh_count == 0 or page_length <= self.page_sizes.get(request.limit, 0)",
        "a page as long as the longest seen (a silent cap) taken as the end", "_pagination",
    ),
    # -- limits (3) ---------------------------------------------------------------
    Change(
        "limits", "vbs_async/_adaptive.py",
        "            or ticket.started < cut.at + CUT_GRACE",
        "            or ticket.started < cut.at",
        "a 429 inside the grace period after a cut cutting again", "_adaptive", named=True,
    ),
    Change(
        "limits", "vbs_async/_pacing.py",
        "        self._most = max(1, math.floor(rate))  # starts in any window",
        "        self._most = max(1, math.floor(rate) + 1)  # starts in any window",
        "the rate limit's window holding one start too many", "_pacing",
    ),
    Change(
        "limits", "vbs_async/_pacing.py",
        "        async with self._turn.hold(urgent=urgent):",
        "        async with asyncio.Lock():",
        "the pacer's turn lock skipped (a fresh lock each time)", "_pacing",
    ),
    # -- retry (5) ----------------------------------------------------------------
    Change(
        "retry", "vbs_async/_retry.py",
        "self.wait_initial * 2.0 ** (attempt - 1) + jitter",
        "self.wait_initial * 2.0 ** attempt + jitter",
        "the backoff exponent off by one", "_retry", named=True,
    ),
    Change(
        "retry", "vbs_async/_session.py",
        "            attempt >= policy.attempts",
        "            attempt > policy.attempts",
        "one attempt more than `RetryPolicy.attempts`", "_retry",
    ),
    Change(
        "retry", "vbs_async/_retry.py",
        "TRANSIENT_STATUSES: Final = frozenset({429, 500, 502, 503, 504})",
        "TRANSIENT_STATUSES: Final = frozenset({429, 500, 503, 504})",
        "a 502 no longer retried", "_retry",
    ),
    Change(
        "retry", "vbs_async/_retry.py",
        "        return max(wait, min(spread, self.wait_max))\n\n    def throttle_backoff",
        "        return min(wait, min(spread, self.wait_max))\n\n    def throttle_backoff",
        "`Retry-After` shortening the backoff instead of lengthening it", "_retry",
    ),
    Change(
        "retry", "vbs_async/_retry.py",
        "        return request.idempotent and error.status in TRANSIENT_STATUSES",
        "        return error.status in TRANSIENT_STATUSES",
        "a POST answered 500 sent again", "_retry",
    ),
    # -- client: the call path (5, and the redaction of its errors) ---------------
    Change(
        "client", "vbs_async/_client.py",
        "end.project_id, tuple(found) if end.ok else (), end.error, end.stats",
        "end.project_id, tuple(found), end.error, end.stats",
        "a crawl that fails after some pages keeping them", "_session", named=True,
        tests=_CLIENT_TESTS,
    ),
    Change(
        "client", "vbs_async/_client.py",
        "        await session.cancel_calls()\n",
        "",
        "calls in flight not cancelled by `close()`", "_session", tests=_CLIENT_TESTS,
    ),
    Change(
        "client", "vbs_async/_session.py",
        'if request.method == "DELETE" and state.outcome_unknown:',
        'if request.method == "DELETE":',
        "a DELETE's first 404 taken as done", "_session",
    ),
    Change(
        "client", "vbs_async/_session.py",
        "                self.budget.refund()\n",
        "",
        "successes no longer refund the retry budget", "_session",
    ),
    Change(
        "client", "vbs_async/_client.py",
        "        except (ClientClosedError, EventLoopError):",
        "        except EventLoopError:",
        "a closed client's crawl going on, each project failing", "_session", tests=_CLIENT_TESTS,
    ),
    Change(
        "client", "vbs_async/_session.py",
        "        except VBSError as error:\n"
        "            raise redact_error(error, self.auth.secrets()) from None",
        "        except VBSError as error:\n            raise error from None",
        "redaction removed from the call path", "_redaction",
    ),
    # -- crawl (3, and the producer's cancel) -------------------------------------
    Change(
        "crawl", "vbs_async/_crawl.py",
        "        async with self._lock:",
        "        async with asyncio.Lock():",
        "the project-id source's lock skipped (two workers advance one generator)", "_crawl",
    ),
    Change(
        "crawl", "vbs_async/_crawl.py",
        "asyncio.Queue(maxsize=max_projects)",
        "asyncio.Queue()",
        "the crawl's queue unbounded (a slow consumer no longer holds the workers)", "_crawl",
    ),
    Change(
        "crawl", "vbs_async/_crawl.py",
        "            raise _first_leaf(failed) from None",
        "            raise",
        "a crawl's end raised as an exception group", "_crawl",
    ),
    Change(
        "crawl", "vbs_async/_crawl.py",
        "        producer.cancel()\n",
        "",
        "the producer not cancelled when the consumer stops", "_crawl",
    ),
    # -- transport (3) ------------------------------------------------------------
    Change(
        "transport", "vbs_async/_transport.py",
        'f"could not connect within {timeout.total}s",\n                request_sent=False,',
        'f"could not connect within {timeout.total}s",\n                request_sent=True,',
        "a connect timeout marked as sent (a POST not retried)", "_transport", named=True,
    ),
    Change(
        "transport", "vbs_async/_transport.py",
        "                allow_redirects=False,",
        "                allow_redirects=True,",
        "redirects followed (credentials sent on)", "_transport",
    ),
    Change(
        "transport", "vbs_async/_transport.py",
        "        size += len(chunk)",
        "        size = len(chunk)",
        "the body cap counting each chunk, not the whole body", "_transport",
    ),
    # -- tokens (3) ---------------------------------------------------------------
    Change(
        "tokens", "vbs_async/_tokens.py",
        "    if 400 <= error.status < 500 and error.status != 429:",
        "    if 400 <= error.status < 500:",
        "an IAM 429 (past the deadline) turned into `AuthenticationError`", "_tokens", named=True,
    ),
    Change(
        "tokens", "vbs_async/_tokens.py",
        "            self._pending[scope] = pending\n",
        "",
        "token fetches no longer single-flight", "_tokens",
    ),
    Change(
        "tokens", "vbs_async/_tokens.py",
        "    margin = min(refresh_margin, lifetime / 10)",
        "    margin = refresh_margin",
        "the refresh margin not capped at a tenth of a short token's life", "_tokens",
    ),
    # -- signing (2) --------------------------------------------------------------
    Change(
        "signing", "vbs_async/_signing.py",
        '    return uri if uri.endswith("/") else uri + "/"',
        "    return uri",
        "the canonical URI without its trailing slash", "_signing",
    ),
    Change(
        "signing", "vbs_async/_signing.py",
        "for name, value in sorted(query))",
        "for name, value in query)",
        "the canonical query not sorted", "_signing",
    ),
    # -- redaction (2) ------------------------------------------------------------
    Change(
        "redaction", "vbs_async/_redaction.py",
        "    for secret in sorted(secrets, key=len, reverse=True):",
        "    for secret in secrets:",
        "secrets not replaced longest-first", "_redaction", named=True,
    ),
    Change(
        "redaction", "vbs_async/_redaction.py",
        "    error.args = tuple(redact(a, secrets) if isinstance(a, str) else a"
        " for a in error.args)\n",
        "",
        "`error.args` not redacted", "_redaction", named=True,
    ),
    # -- responses (2) ------------------------------------------------------------
    Change(
        "responses", "vbs_async/_responses.py",
        '_REQUEST_ID_HEADERS: Final = ("X-Request-Id", "X-Openstack-Request-Id")',
        '_REQUEST_ID_HEADERS: Final = ("X-Request-Id",)',
        "`X-Openstack-Request-Id` not read", "_responses", named=True,
    ),
    Change(
        "responses", "vbs_async/_responses.py",
        "    if type(count) is not int or count < 0:",
        "    if type(count) is not int:",
        "a negative count accepted", "_responses", named=True,
    ),
    # -- output (3) ---------------------------------------------------------------
    Change(
        "output", "vbs_async/cli/_output.py",
        "    stream.truncate(state.committed_size)\n",
        "",
        "resumed output not cut back to its committed size", "cli/_output", named=True,
    ),
    Change(
        "output", "vbs_async/cli/_output.py",
        '        if not any_succeeded and self.target.kind == "regular":',
        "        if not any_succeeded:",
        'a run where every project fails and no output existed saying it "was kept as it was"',
        "cli/_output", named=True,
    ),
    Change(
        "output", "vbs_async/cli/_output.py",
        "            rows.copy_to(self.stream)\n            self.stream.flush()\n",
        "            rows.copy_to(self.stream)\n",
        "a finished project's rows not flushed before its commit", "cli/_output",
    ),
    # -- state (3) ----------------------------------------------------------------
    Change(
        "state", "vbs_async/cli/_state.py",
        '        self._file.write(orjson.dumps(entry) + b"\\n")\n        self._file.flush()\n',
        '        self._file.write(orjson.dumps(entry) + b"\\n")\n',
        "a state line not flushed when written", "cli/_state",
    ),
    Change(
        "state", "vbs_async/cli/_state.py",
        "            self._file.truncate(complete)\n",
        "            pass\n",
        "a state line a crash cut short not dropped before appending", "cli/_state",
    ),
    Change(
        "state", "vbs_async/cli/_state.py",
        "fcntl.LOCK_EX | fcntl.LOCK_NB",
        "fcntl.LOCK_SH | fcntl.LOCK_NB",
        "the state's lock shared (two crawls on one state)", "cli/_state",
    ),
    # -- run (2) ------------------------------------------------------------------
    Change(
        "run", "vbs_async/cli/_run.py",
        "        output.finish(any_succeeded=tally.ok > 0)",
        "        output.finish(any_succeeded=tally.ok >= 0)",
        "a run where every project failed replacing the output", "cli/_run",
    ),
    Change(
        "run", "vbs_async/cli/_run.py",
        "        watchdog.cancel()\n",
        "",
        "the silence watchdog not cancelled when the crawl ends", "cli/_run",
    ),
    # -- failures (3) -------------------------------------------------------------
    Change(
        "failures", "vbs_async/cli/_failures.py",
        "self._refused_in_a_row = self._refused_in_a_row + 1 if refused else 0",
        "self._refused_in_a_row = self._refused_in_a_row + 1 if refused"
        " else self._refused_in_a_row",
        'alternating 403 and 500 failures stopping the crawl as "credentials refused"',
        "cli/_failures", named=True,
    ),
    Change(
        "failures", "vbs_async/cli/_failures.py",
        "        if self._unreachable_in_a_row >= self._window:",
        "        if self._unreachable_in_a_row > self._window:",
        "the unreachable window moved by one", "cli/_failures",
    ),
    Change(
        "failures", "vbs_async/cli/_failures.py",
        "self._failed >= self._max_failures:",
        "self._failed > self._max_failures:",
        "`--max-failures` moved by one", "cli/_failures",
    ),
)  # fmt: skip
