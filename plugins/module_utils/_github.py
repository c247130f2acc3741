# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""A small GitHub REST client: pagination, rate limits, conditional requests, retries.

It never puts the token in a URL, a message or an exception: errors name the method, the path and
GitHub's own message only.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import ssl
import threading
import time
import typing as t
import urllib.parse
import urllib.request
from dataclasses import dataclass

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
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


def local_refs(mirror: str) -> tuple[list, str]:
    """The refs of a fresh mirror, read from its files (one process less per repository)."""
    refs = {}
    packed = os.path.join(mirror, "packed-refs")
    if os.path.exists(packed):
        with open(packed, encoding="utf-8") as handle:
            for line in handle:
                if line[:1] not in ("#", "^") and " " in line:
                    sha, name = line.rstrip("\n").split(" ", 1)
                    refs[name] = sha
    refs_root = os.path.join(mirror, "refs")
    for dirpath, _dirnames, filenames in os.walk(refs_root):
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            with open(path, encoding="utf-8") as handle:
                content = handle.read().strip()
            if not content.startswith("ref:"):
                refs["refs/" + os.path.relpath(path, refs_root).replace(os.sep, "/")] = content
    return refs_digest("".join("%s\t%s\n" % (sha, name) for name, sha in refs.items()))


def parse_link_header(value: str | None) -> dict:
    """``<url>; rel="next", <url>; rel="last"`` -> {"next": url, "last": url}."""
    return {rel: url for url, rel in _LINK_RE.findall(value or "")}


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

    def get(self, url: str, headers: dict) -> tuple[int, dict, bytes]:
        origin = urllib.parse.urlsplit(url).netloc
        for _redirect in range(self.MAX_REDIRECTS + 1):
            status, response_headers, body = self._get_once(url, headers)
            location = response_headers.get("location")
            if status not in (301, 302, 303, 307, 308) or not location:
                return status, response_headers, body
            url = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(url).netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise OSError("too many redirects")

    def _get_once(self, url: str, headers: dict, method: str = "GET", body: bytes | None = None) -> tuple[int, dict, bytes]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise OSError("unsupported URL scheme in %s" % parts.scheme)
        for attempt in (1, 2):
            conn = self._connection(parts.scheme, parts.netloc, fresh=attempt == 2)
            target = url if getattr(conn, "absolute_urls", False) else (parts.path or "/") + ("?" + parts.query if parts.query else "")
            try:
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
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
        self._transport = _Transport(validate_certs, timeout)
        self.requests = 0
        self.not_modified = 0

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
        with self._lock:
            self.requests += 1
        try:
            status, headers, body = self._transport.get(url, self._headers(etag, accept))
        except (OSError, http.client.HTTPException) as exc:
            raise TransientGitHubError(0, "cannot connect: %s" % exc, display) from None
        if status == 304:
            with self._lock:
                self.not_modified += 1
            return Response(304, None, headers, headers.get("etag") or etag)
        content_type = headers.get("content-type", "")
        data: t.Any = body
        if "json" in content_type:
            try:
                data = json.loads(body.decode("utf-8")) if body else None
            except ValueError:
                raise TransientGitHubError(status, "answer is not valid JSON", display) from None
        if status >= 400:
            raise self._error(status, data, headers, display)
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

    def post(self, path: str, document: dict) -> Response:
        """POST a JSON document (not retried: a write is not repeated blindly)."""
        url = self.url_for(path)
        with self._lock:
            self.requests += 1
        headers = dict(self._headers(None, "application/vnd.github+json"), **{"Content-Type": "application/json"})
        try:
            status, response_headers, body = self._transport._get_once(  # pylint: disable=protected-access
                url, headers, method="POST", body=json.dumps(document).encode())
        except (OSError, http.client.HTTPException) as exc:
            raise GitHubError(0, "cannot connect: %s" % exc, self._display(url)) from None
        data = json.loads(body.decode("utf-8")) if body and "json" in response_headers.get("content-type", "") else body
        if status >= 400:
            raise self._error(status, data, response_headers, self._display(url))
        return Response(status, data, response_headers)

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
