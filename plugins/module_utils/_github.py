# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""A small GitHub client: REST (pagination, conditional requests) and GraphQL, inside GitHub's limits.

Every request of a run goes through one :class:`RequestScheduler`, shared by all workers: it keeps
the run under GitHub's secondary rate limits (concurrent requests, REST and GraphQL points per
minute) and pauses every worker, not just the one that was told, when GitHub answers with
``Retry-After``, a secondary limit or an exhausted primary limit.

It never puts the token in a URL, a message or an exception: errors name the method, the path and
GitHub's own message only.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import threading
import time
import typing as t
import urllib.parse
import urllib.request
from dataclasses import dataclass

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._gitchain import read_refs
from ansible_collections.corebackup.backup.plugins.module_utils._retry import RetryPolicy

API_VERSION = "2022-11-28"
USER_AGENT = "corebackup.backup-github_backup"
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


class GitHubError(BackupError):
    """A request failed for good; ``status`` is the HTTP status (0 for connection errors)."""

    def __init__(self, status: int, message: str, path: str, retry_after: float = 0.0):
        super().__init__("GitHub API %s: %s%s" % (path, "HTTP %d " % status if status else "", message))
        self.status = status
        self.message = message
        self.path = path
        self.retry_after = retry_after


class TransientGitHubError(GitHubError):
    """Worth another try: 5xx, secondary rate limits, an exhausted rate limit that resets soon."""


class GraphQLError(GitHubError):
    """A GraphQL answer with ``errors``: ``errors`` as GitHub sent them, ``data`` what came with them."""

    def __init__(self, status: int, message: str, path: str, errors: list | None = None, data: t.Any = None,
                 retry_after: float = 0.0):
        super().__init__(status, message, path, retry_after=retry_after)
        self.errors = errors or []
        self.data = data


class TransientGraphQLError(GraphQLError, TransientGitHubError):
    """RATE_LIMITED, or GitHub's query time-out ("Something went wrong while executing your query")."""


class GraphQLUnavailable(GitHubError):
    """No GraphQL endpoint (an old GitHub Enterprise Server), or a schema without a field a query needs."""


# GitHub's secondary limits (docs: "About secondary rate limits"): 100 concurrent requests, 900 REST
# points and 2,000 GraphQL points a minute. A run keeps a margin below them, so that it never trips
# one on its own even with another client on the same token.
REST_POINTS_PER_MINUTE = 720
GRAPHQL_POINTS_PER_MINUTE = 1600
MAX_CONCURRENT_REQUESTS = 32
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


class RequestScheduler:
    """Admission of every API request of a run: concurrency, points per minute, and pauses for all.

    ``slot(kind, points)`` waits until the request may go: no pause is in force, fewer than
    ``max_concurrent`` requests are in flight, and the points of ``kind`` ("rest" or "graphql")
    spent in the last 60 seconds leave room for ``points``. ``pause(seconds)`` holds every worker
    back (``Retry-After``, a secondary limit, an exhausted primary limit). ``waited`` is the time
    requests spent waiting for admission, summed over workers; ``pauses`` how often GitHub asked.
    """

    WINDOW = 60.0

    def __init__(self, rest_points_per_minute: int = REST_POINTS_PER_MINUTE,
                 graphql_points_per_minute: int = GRAPHQL_POINTS_PER_MINUTE,
                 max_concurrent: int = MAX_CONCURRENT_REQUESTS,
                 clock: t.Callable[[], float] = time.monotonic):
        self.limits = {"rest": rest_points_per_minute, "graphql": graphql_points_per_minute}
        self.max_concurrent = max_concurrent
        self.clock = clock
        self._cond = threading.Condition()
        self._spent: dict[str, collections.deque] = {"rest": collections.deque(), "graphql": collections.deque()}
        self._in_flight = 0
        self._paused_until = 0.0
        self.waited = 0.0
        self.pauses = 0

    def _delay(self, kind: str, points: int, now: float) -> float:
        """Seconds until a request of ``kind`` costing ``points`` may go (0: now)."""
        if now < self._paused_until:
            return self._paused_until - now
        if self._in_flight >= self.max_concurrent:
            return self.WINDOW  # woken by notify when one finishes
        spent = self._spent[kind]
        while spent and spent[0][0] <= now - self.WINDOW:
            spent.popleft()
        used = sum(p for _when, p in spent)
        if used + points <= self.limits[kind] or not spent:
            return 0.0
        # Wait until enough of the oldest points leave the window.
        for when, spent_points in spent:
            used -= spent_points
            if used + points <= self.limits[kind]:
                return max(0.001, when + self.WINDOW - now)
        return self.WINDOW  # pragma: no cover - the loop always ends with used == 0

    @contextlib.contextmanager
    def slot(self, kind: str, points: int = 1) -> t.Iterator[None]:
        started = self.clock()
        with self._cond:
            while True:
                now = self.clock()
                delay = self._delay(kind, points, now)
                if delay <= 0:
                    break
                self._cond.wait(delay)
            self._spent[kind].append((now, points))
            self._in_flight += 1
            self.waited += now - started
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        """Hold every worker back for ``seconds`` from now."""
        with self._cond:
            until = self.clock() + seconds
            if until > self._paused_until:
                self._paused_until = until
                self.pauses += 1
            self._cond.notify_all()


class TokenSource:
    """Where a client gets its token: a fixed one, or one minted and refreshed (a GitHub App's).

    ``get()`` returns the token to use now; ``rejected(token)`` is called when GitHub answered 401
    to it, and says whether a retry with a fresh token is worth it.
    """

    def __init__(self, token: str | None):
        self._token = token

    def get(self) -> str | None:
        return self._token

    def rejected(self, token: str | None) -> bool:  # pylint: disable=unused-argument
        return False


@dataclass
class Response:
    status: int
    data: t.Any
    headers: dict
    etag: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def basic_auth(token: str) -> str:
    """The value of the Basic authorization header git sends: a secret as much as the token."""
    return base64.b64encode(("x-access-token:" + token).encode()).decode()


def server_of(url: str) -> str:
    """``scheme://host[:port]/`` of a clone URL: the prefix git matches ``http.<url>.*`` settings against."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GitHubError(0, "clone URL %r is not an http(s) URL" % url, url)
    return "%s://%s/" % (parts.scheme, parts.netloc.rpartition("@")[2])


def git_env(url: str, token: str | None, validate_certs: bool = True) -> dict:
    """Credentials for git through the environment, never the URL or the command line.

    The header is scoped to the scheme, host and port of ``url``, so git and git-lfs send the token
    to the GitHub server only, never to a host an LFS batch answer points downloads or uploads at.
    """
    entries = []
    if token:
        entries.append(("http.%s.extraHeader" % server_of(url), "Authorization: Basic " + basic_auth(token)))
    if not validate_certs:
        entries.append(("http.sslVerify", "false"))
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "GIT_CONFIG_COUNT": str(len(entries)),
           "LC_ALL": "C"}
    for index, (key, value) in enumerate(entries):
        env["GIT_CONFIG_KEY_%d" % index] = key
        env["GIT_CONFIG_VALUE_%d" % index] = value
    return env


def refs_digest(listing):
    """Refs and their digest from ``git ls-remote`` or ``git for-each-ref`` output (same format).

    HEAD and the peeled ``^{}`` lines of annotated tags, which only ls-remote prints, are left out.
    """
    lines = sorted(line for line in listing.splitlines()
                   if line.strip() and not line.endswith(("\tHEAD", "^{}")))
    return lines, hashlib.sha256("\n".join(lines).encode()).hexdigest()


def listed_refs(refs: dict) -> tuple[list, str]:
    """The refs of :func:`read_refs` (HEAD left out) and their digest, as :func:`refs_digest` gives them."""
    return refs_digest("".join("%s\t%s\n" % (sha, name) for name, sha in refs.items() if name != "HEAD"))


def local_refs(mirror: str) -> tuple[list, str]:
    """The refs of a mirror and their digest, read from its files."""
    return listed_refs(read_refs(mirror))


def parse_link_header(value: str | None) -> dict:
    """``<url>; rel="next", <url>; rel="last"`` -> {"next": url, "last": url}."""
    return {rel: url for url, rel in _LINK_RE.findall(value or "")}


# Bytes read at a time from a download.
DOWNLOAD_BLOCK = 1024 * 1024


class _Transport:
    """Keep-alive HTTP(S) connections, one set per thread, with the TLS context built once.

    A backup makes thousands of small requests; opening a connection and loading the CA store for
    each one costs more than the request itself. Redirects are followed, and the Authorization
    header is dropped when a redirect leaves the API's host (release assets are served from
    another host, which must never see the token). ``https_proxy``/``http_proxy``/``no_proxy``
    are honoured.
    """

    MAX_REDIRECTS = 5

    def __init__(self, validate_certs: bool, timeout: float):
        self.timeout = timeout
        self.context = ssl.create_default_context()
        if not validate_certs:
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        self._local = threading.local()
        self._proxies = urllib.request.getproxies()

    def _connection(self, scheme: str, netloc: str, fresh: bool = False) -> http.client.HTTPConnection:
        connections = self._local.__dict__.setdefault("connections", {})
        key = (scheme, netloc)
        if fresh and key in connections:
            connections.pop(key).close()
        if key not in connections:
            host = urllib.parse.urlsplit("//" + netloc).hostname or netloc
            port = urllib.parse.urlsplit("//" + netloc).port
            proxy = self._proxies.get(scheme)
            if proxy and not urllib.request.proxy_bypass(host):
                proxy_parts = urllib.parse.urlsplit(proxy)
                if scheme == "https":
                    conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                        proxy_parts.hostname, proxy_parts.port or 3128, timeout=self.timeout, context=self.context)
                    conn.set_tunnel(host, port or 443)
                else:
                    conn = http.client.HTTPConnection(proxy_parts.hostname, proxy_parts.port or 3128, timeout=self.timeout)
                    conn.absolute_urls = True  # type: ignore[attr-defined]
            elif scheme == "https":
                conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.context)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            connections[key] = conn
        return connections[key]

    def get(self, url: str, headers: dict, into: t.BinaryIO | None = None) -> tuple[int, dict, bytes]:
        """GET, following redirects; a successful answer's body goes to ``into`` in blocks when it is given."""
        origin = urllib.parse.urlsplit(url).netloc
        for _redirect in range(self.MAX_REDIRECTS + 1):
            status, response_headers, body = self._get_once(url, headers, into=into)
            location = response_headers.get("location")
            if status not in (301, 302, 303, 307, 308) or not location:
                return status, response_headers, body
            url = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(url).netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise OSError("too many redirects")

    def _get_once(self, url: str, headers: dict, method: str = "GET", body: bytes | None = None,
                  into: t.BinaryIO | None = None) -> tuple[int, dict, bytes]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise OSError("unsupported URL scheme in %s" % parts.scheme)
        for attempt in (1, 2):
            conn = self._connection(parts.scheme, parts.netloc, fresh=attempt == 2)
            target = url if getattr(conn, "absolute_urls", False) else (parts.path or "/") + ("?" + parts.query if parts.query else "")
            try:
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
                if into is not None and 200 <= response.status < 300:
                    while True:
                        block = response.read(DOWNLOAD_BLOCK)
                        if not block:
                            break
                        into.write(block)
                    body = b""
                else:
                    body = response.read()
            except (http.client.RemoteDisconnected, http.client.BadStatusLine, BrokenPipeError, ConnectionResetError):
                conn.close()
                if attempt == 2:
                    raise
                continue  # a kept-alive connection the server had closed: one fresh try
            except Exception:
                conn.close()
                raise
            if response.getheader("connection", "").lower() == "close":
                conn.close()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        raise OSError("unreachable")  # pragma: no cover


class GitHubClient:
    """The parts of GitHub's REST and GraphQL APIs a backup needs, through one scheduler per run."""

    def __init__(self, api_url: str, token: t.Any, validate_certs: bool = True,
                 retry: RetryPolicy | None = None, timeout: float = 60.0, max_rate_limit_wait: float = 900.0,
                 scheduler: RequestScheduler | None = None):
        self.api_url = api_url.rstrip("/")
        self.tokens = token if isinstance(token, TokenSource) else TokenSource(token)
        self.validate_certs = validate_certs
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.max_rate_limit_wait = max_rate_limit_wait
        self.scheduler = scheduler or RequestScheduler()
        self._lock = threading.Lock()
        self._transport = _Transport(validate_certs, timeout)
        self.requests = 0
        self._answered = False  # some request got an answer: a refused connection is then transient
        self.rate_remaining: int | None = None  # REST requests left in this hour's budget, as GitHub last said
        self.rate_reset: str | None = None
        self.graphql_requests = 0
        self.graphql_cost = 0
        self.not_modified = 0
        self.limit_answers = 0  # secondary or primary rate-limit answers GitHub gave this run

    @property
    def graphql_url(self) -> str:
        """GitHub's ``https://api.github.com/graphql``; GitHub Enterprise Server's ``/api/graphql`` beside ``/api/v3``."""
        if self.api_url.endswith("/api/v3"):
            return self.api_url[:-len("/v3")] + "/graphql"
        return self.api_url + "/graphql"

    def _headers(self, token: str | None, etag: str | None, accept: str) -> dict:
        headers = {"Accept": accept, "User-Agent": USER_AGENT, "X-GitHub-Api-Version": API_VERSION}
        if token:
            headers["Authorization"] = "Bearer " + token
        if etag:
            headers["If-None-Match"] = etag
        return headers

    def url_for(self, path: str, params: dict | None = None) -> str:
        url = path if path.startswith(("http://", "https://")) else self.api_url + "/" + path.lstrip("/")
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        return url

    def _display(self, url: str) -> str:
        return url[len(self.api_url):] if url.startswith(self.api_url) else urllib.parse.urlsplit(url).path

    def _send(self, method: str, url: str, etag: str | None = None, accept: str = "application/vnd.github+json",
              body: bytes | None = None, kind: str = "rest", into: t.BinaryIO | None = None) -> tuple[int, dict, t.Any]:
        """One request, admitted by the scheduler; (status, headers, body parsed as JSON when it is JSON).

        A 401 to a token its source can renew (a GitHub App's installation token) is tried once more
        with a fresh one.
        """
        display = self._display(url)
        points = 5 if method in WRITE_METHODS and kind == "rest" else 1
        for _attempt in (1, 2):
            token = self.tokens.get()
            headers = self._headers(token, etag, accept)
            if body is not None:
                headers["Content-Type"] = "application/json"
            with self.scheduler.slot(kind, points):
                with self._lock:
                    self.requests += 1
                    if kind == "graphql":
                        self.graphql_requests += 1
                try:
                    if method == "GET":
                        status, response_headers, raw = self._transport.get(url, headers, into=into)
                    else:
                        status, response_headers, raw = self._transport._get_once(  # pylint: disable=protected-access
                            url, headers, method=method, body=body)
                except (OSError, http.client.HTTPException) as exc:
                    reason = getattr(exc, "reason", exc)
                    if isinstance(reason, socket.gaierror) or (
                            isinstance(reason, ConnectionRefusedError) and not self._answered):
                        # A host that does not resolve, or refuses the very first request, is a wrong api_url
                        # or a service that is down: no retry cures it within a run.
                        raise GitHubError(0, "cannot reach %s: %s" % (
                            urllib.parse.urlsplit(url).netloc, getattr(reason, "strerror", None) or reason), display) from None
                    raise TransientGitHubError(0, "cannot connect: %s" % exc, display) from None
            self._answered = True
            if status == 401 and self.tokens.rejected(token):
                continue
            break
        data: t.Any = raw
        if "json" in response_headers.get("content-type", "") and raw:
            try:
                data = json.loads(raw.decode("utf-8"))
            except ValueError:
                raise TransientGitHubError(status, "answer is not valid JSON", display) from None
        elif not raw:
            data = None
        self._observe(status, response_headers)
        return status, response_headers, data

    def _observe(self, status: int, headers: dict) -> None:
        """Primary limit used up (by this run or another client of the token): every worker waits for its reset."""
        if headers.get("x-ratelimit-resource", "core") == "core" and headers.get("x-ratelimit-remaining", "").isdigit():
            self.rate_remaining = int(headers["x-ratelimit-remaining"])
            reset = headers.get("x-ratelimit-reset", "")
            if reset.isdigit():
                self.rate_reset = time.strftime("%H:%M UTC", time.gmtime(int(reset)))
        if headers.get("x-ratelimit-remaining") == "0" and status < 400:
            reset = headers.get("x-ratelimit-reset", "")
            if reset.isdigit():
                wait = float(reset) - time.time() + 1
                if 0 < wait <= self.max_rate_limit_wait:
                    self.scheduler.pause(wait)

    def get(self, path: str, params: dict | None = None, etag: str | None = None,
            accept: str = "application/vnd.github+json") -> Response:
        """GET with retries of transient failures; 304 comes back as a Response, not an error."""
        url = self.url_for(path, params)
        return self.retry.call(self._get_once, url, etag, accept, is_transient=self._transient)

    def download(self, path: str, target: str) -> int:
        """A file (a release asset) written to ``target`` as it arrives, with retries: memory holds a block of it,
        not the file. Returns its size."""
        url = self.url_for(path)

        def once() -> int:
            with open(target, "wb") as handle:
                status, headers, data = self._send("GET", url, accept="application/octet-stream", into=handle)
            if status >= 400:
                raise self._error(status, data, headers, self._display(url))
            return os.path.getsize(target)

        return self.retry.call(once, is_transient=self._transient)

    def _transient(self, exc: BaseException) -> bool:
        if not isinstance(exc, TransientGitHubError):
            return False
        if exc.retry_after:
            self.scheduler.pause(exc.retry_after)  # every worker waits, not just the one GitHub told
        return True

    def _get_once(self, url: str, etag: str | None, accept: str) -> Response:
        status, headers, data = self._send("GET", url, etag=etag, accept=accept)
        if status == 304:
            with self._lock:
                self.not_modified += 1
            return Response(304, None, headers, headers.get("etag") or etag)
        if status >= 400:
            raise self._error(status, data, headers, self._display(url))
        return Response(status, data, headers, headers.get("etag"))

    def _error(self, status: int, body: t.Any, headers: dict, display: str) -> GitHubError:
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")[:200]
        message = body.get("message") if isinstance(body, dict) else None
        message = message or (body if isinstance(body, str) else "") or "no message"
        details = [e.get("message") or e.get("code") for e in body.get("errors") or [] if isinstance(e, dict)] \
            if isinstance(body, dict) and isinstance(body.get("errors"), list) else []
        if any(details):
            message = "%s (%s)" % (message, "; ".join(d for d in details if d))
        if status in (403, 429):
            retry_after = headers.get("retry-after")
            if retry_after and retry_after.isdigit():
                self._count_limit_answer()
                return TransientGitHubError(status, message, display, retry_after=float(retry_after))
            if headers.get("x-ratelimit-remaining") == "0":
                self._count_limit_answer()
                reset = headers.get("x-ratelimit-reset", "")
                wait = max(0.0, float(reset) - time.time()) + 1 if reset.isdigit() else 60.0
                if wait > self.max_rate_limit_wait:
                    return GitHubError(status, "%s (rate limit resets in %d s, longer than the %d s this run waits)"
                                       % (message, wait, self.max_rate_limit_wait), display)
                return TransientGitHubError(status, message, display, retry_after=wait)
            if "secondary rate limit" in message.lower():
                self._count_limit_answer()
                return TransientGitHubError(status, message, display, retry_after=60.0)
        if status >= 500:
            return TransientGitHubError(status, message, display)
        return GitHubError(status, message, display)

    def _count_limit_answer(self) -> None:
        with self._lock:
            self.limit_answers += 1

    def post(self, path: str, document: dict) -> Response:
        """POST a JSON document (not retried: a write is not repeated blindly)."""
        url = self.url_for(path)
        try:
            status, headers, data = self._send("POST", url, body=json.dumps(document).encode())
        except TransientGitHubError as exc:
            raise GitHubError(exc.status, exc.message, exc.path) from None
        if status >= 400:
            raise self._error(status, data, headers, self._display(url))
        return Response(status, data, headers)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """A GraphQL query's ``data``, with retries of RATE_LIMITED answers, time-outs and 5xx.

        Raises GraphQLUnavailable when there is no GraphQL endpoint (404) or GitHub does not know a
        field of the query (an older GitHub Enterprise Server), GraphQLError for other ``errors``
        (with the partial ``data`` that came with them).
        """
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        return self.retry.call(self._graphql_once, body, is_transient=self._transient)

    def _graphql_once(self, body: bytes) -> dict:
        url = self.graphql_url
        status, headers, data = self._send("POST", url, body=body, kind="graphql")
        if status == 404:
            raise GraphQLUnavailable(404, "no GraphQL API at %s" % url, "/graphql")
        if status >= 400:
            raise self._error(status, data, headers, "/graphql")
        if not isinstance(data, dict):
            raise TransientGitHubError(status, "the GraphQL answer is not a JSON object", "/graphql")
        cost = ((data.get("data") or {}).get("rateLimit") or {}).get("cost") if isinstance(data.get("data"), dict) else None
        if isinstance(cost, int):
            with self._lock:
                self.graphql_cost += cost
        errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
        if errors:
            raise self._graphql_error(status, headers, errors, data.get("data"))
        return data.get("data") or {}

    def _graphql_error(self, status: int, headers: dict, errors: list, data: t.Any) -> GitHubError:
        message = "; ".join(str(e.get("message") or e.get("type") or "error") for e in errors[:3])
        types = {e.get("type") for e in errors}
        if "RATE_LIMITED" in types:
            self._count_limit_answer()
            reset = headers.get("x-ratelimit-reset", "")
            wait = max(0.0, float(reset) - time.time()) + 1 if reset.isdigit() else 60.0
            if wait > self.max_rate_limit_wait:
                return GraphQLError(status, "%s (rate limit resets in %d s, longer than the %d s this run waits)"
                                    % (message, wait, self.max_rate_limit_wait), "/graphql", errors, data)
            return TransientGraphQLError(status, message, "/graphql", errors, data, retry_after=wait)
        if data is None and any("something went wrong while executing your query" in str(e.get("message", "")).lower()
                                or "timeout" in str(e.get("message", "")).lower() for e in errors):
            return TransientGraphQLError(status, message, "/graphql", errors, data)
        codes = {(e.get("extensions") or {}).get("code") for e in errors}
        if data is None and codes & {"undefinedField", "undefinedType", "argumentNotAccepted", "undefinedArgument"}:
            return GraphQLUnavailable(status, message, "/graphql")
        return GraphQLError(status, message, "/graphql", errors, data)

    def paginate(self, path: str, params: dict | None = None) -> t.Iterator[t.Any]:
        """Every item of a list endpoint, following ``Link: rel="next"``."""
        params = dict(params or {})
        params.setdefault("per_page", 100)
        url: str | None = self.url_for(path, params)
        while url:
            response = self.get(url)
            if not isinstance(response.data, list):
                raise GitHubError(response.status, "expected a list", self._display(url))
            yield from response.data
            url = parse_link_header(response.headers.get("link")).get("next")
