# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""A small GitHub REST client: pagination, rate limits, conditional requests, retries.

It never puts the token in a URL, a message or an exception: errors name the method, the path and
GitHub's own message only.
"""

from __future__ import annotations

import json
import re
import threading
import time
import typing as t
import urllib.parse
from dataclasses import dataclass

from ansible.module_utils.urls import Request
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

from ansible_collections.corebackup.backup.plugins.module_utils._retry import RetryPolicy

API_VERSION = "2022-11-28"
USER_AGENT = "corebackup.backup-github_backup"
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


class GitHubError(Exception):
    """A request failed for good; ``status`` is the HTTP status (0 for connection errors)."""

    def __init__(self, status: int, message: str, path: str, retry_after: float = 0.0):
        super().__init__("GitHub API %s: %s%s" % (path, "HTTP %d " % status if status else "", message))
        self.status = status
        self.message = message
        self.path = path
        self.retry_after = retry_after


class TransientGitHubError(GitHubError):
    """Worth another try: 5xx, secondary rate limits, an exhausted rate limit that resets soon."""


@dataclass
class Response:
    status: int
    data: t.Any
    headers: dict
    etag: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def parse_link_header(value: str | None) -> dict:
    """``<url>; rel="next", <url>; rel="last"`` -> {"next": url, "last": url}."""
    return {rel: url for url, rel in _LINK_RE.findall(value or "")}


class GitHubClient:
    """GET-only client for the parts of the REST API a backup needs."""

    def __init__(self, api_url: str, token: str | None, validate_certs: bool = True,
                 retry: RetryPolicy | None = None, timeout: float = 60.0, max_rate_limit_wait: float = 900.0):
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.validate_certs = validate_certs
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.max_rate_limit_wait = max_rate_limit_wait
        self._lock = threading.Lock()
        self.requests = 0
        self.not_modified = 0
        self.rate_limit_remaining: int | None = None

    def _headers(self, etag: str | None, accept: str) -> dict:
        headers = {"Accept": accept, "User-Agent": USER_AGENT, "X-GitHub-Api-Version": API_VERSION}
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
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

    def get(self, path: str, params: dict | None = None, etag: str | None = None,
            accept: str = "application/vnd.github+json") -> Response:
        """GET with retries of transient failures; 304 comes back as a Response, not an error."""
        url = self.url_for(path, params)
        return self.retry.call(self._get_once, url, etag, accept,
                               is_transient=lambda exc: isinstance(exc, TransientGitHubError))

    def _get_once(self, url: str, etag: str | None, accept: str) -> Response:
        display = self._display(url)
        request = Request(headers=self._headers(etag, accept), validate_certs=self.validate_certs,
                          timeout=self.timeout, follow_redirects="all")
        with self._lock:
            self.requests += 1
        try:
            response = request.open("GET", url)
            body = response.read()
            headers = {k.lower(): v for k, v in response.headers.items()}
            status = response.status
        except HTTPError as exc:
            headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
            if exc.code == 304:
                with self._lock:
                    self.not_modified += 1
                return Response(304, None, headers, headers.get("etag") or etag)
            self._note_rate_limit(headers)
            raise self._error(exc.code, _read_error_body(exc), headers, display) from None
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientGitHubError(0, "cannot connect: %s" % reason, display) from None
        self._note_rate_limit(headers)
        content_type = headers.get("content-type", "")
        data: t.Any = body
        if "json" in content_type:
            try:
                data = json.loads(body.decode("utf-8")) if body else None
            except ValueError:
                raise TransientGitHubError(status, "answer is not valid JSON", display) from None
        return Response(status, data, headers, headers.get("etag"))

    def _note_rate_limit(self, headers: dict) -> None:
        remaining = headers.get("x-ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            self.rate_limit_remaining = int(remaining)

    def _error(self, status: int, body: t.Any, headers: dict, display: str) -> GitHubError:
        message = body.get("message") if isinstance(body, dict) else None
        message = message or (body if isinstance(body, str) else "") or "no message"
        if status in (403, 429):
            retry_after = headers.get("retry-after")
            if retry_after and retry_after.isdigit():
                return TransientGitHubError(status, message, display, retry_after=float(retry_after))
            if headers.get("x-ratelimit-remaining") == "0":
                reset = headers.get("x-ratelimit-reset", "")
                wait = max(0.0, float(reset) - time.time()) + 1 if reset.isdigit() else 60.0
                if wait > self.max_rate_limit_wait:
                    return GitHubError(status, "%s (rate limit resets in %d s, longer than the %d s this run waits)"
                                       % (message, wait, self.max_rate_limit_wait), display)
                return TransientGitHubError(status, message, display, retry_after=wait)
            if "secondary rate limit" in message.lower():
                return TransientGitHubError(status, message, display, retry_after=60.0)
        if status >= 500:
            return TransientGitHubError(status, message, display)
        return GitHubError(status, message, display)

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


def _read_error_body(exc: HTTPError) -> t.Any:
    try:
        raw = exc.read()
    except Exception:  # pylint: disable=broad-exception-caught
        return ""
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")[:200]
