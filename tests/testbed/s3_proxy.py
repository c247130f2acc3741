# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fault-injecting HTTP proxy in front of the S3 endpoint (moto), on 127.0.0.1.

Everything the client sends reaches the real S3 endpoint unchanged, except what a rule intercepts:
an error answer in S3's XML form (500 InternalError, 503 SlowDown, ...), a connection reset (once the
request was read, or half-way through its body: ``reset_mid``), a delay before forwarding, or an
answer lost after the server acted on the request (``drop_answer``: forwarded, then the connection
reset). Every request is logged with the S3 operation it is (told from the method, the query and
the copy-source header, as S3 itself tells them), so that tests count what reached the server: how
many PutObject against CopyObject, how many sends of one call.
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import re
import socket
import threading
import time
import typing as t
import urllib.parse

LOOPBACK = "127.0.0.1"
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "expect"}
ERROR_CODES = {500: "InternalError", 503: "SlowDown", 400: "BadRequest", 403: "AccessDenied"}


def operation(method: str, path: str, query: dict, headers: t.Mapping[str, str]) -> str:
    """The S3 operation of a request, named as botocore names it."""
    copy = "x-amz-copy-source" in {k.lower() for k in headers}
    key = path.strip("/").count("/") >= 1
    if method == "PUT":
        if "partNumber" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if copy:
            return "CopyObject"
        return "PutObject" if key else "CreateBucket"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        if "delete" in query:
            return "DeleteObjects"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "HEAD":
        return "HeadObject" if key else "HeadBucket"
    if method == "GET":
        if "uploads" in query:
            return "ListMultipartUploads"
        if "uploadId" in query:
            return "ListParts"
        if not key:
            return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
        return "GetObject"
    return method


@dataclasses.dataclass
class Rule:
    operation: str  # an operation name, or "*"
    action: str  # "status", "reset", "reset_mid", "drop_answer" or "delay"
    status: int = 500
    seconds: float = 0.0
    count: int = 1  # how many requests it intercepts; -1 for all
    key_regex: str | None = None
    code: str | None = None  # the S3 error code of a status answer (default: by status)

    def matches(self, op: str, path: str) -> bool:
        return (self.operation in ("*", op) and self.count != 0
                and (self.key_regex is None or re.search(self.key_regex, path) is not None))


@dataclasses.dataclass
class Logged:
    operation: str
    method: str
    path: str
    status: int  # 0 for a reset connection


def request_body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    """The whole body of the request ``handler`` is reading, chunked or with a Content-Length."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            data = handler.rfile.read(size + 2)[:size]
            if size == 0:
                break
            chunks.append(data)
        return b"".join(chunks)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args) -> None:  # pylint: disable=redefined-builtin
        pass

    def _body(self) -> bytes:
        return request_body(self)

    def _handle(self) -> None:
        proxy = self.server.proxy
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        op = operation(self.command, parts.path, query, self.headers)
        rule = proxy.take(op, parts.path)
        if rule is not None and rule.action == "reset_mid":
            # Half of the body read, then the connection dropped: the client is still sending.
            self.rfile.read(int(self.headers.get("Content-Length") or 0) // 2)
            proxy.record(Logged(op, self.command, parts.path, 0))
            self._reset()
            return
        body = self._body()
        if rule is not None and rule.action == "delay":
            time.sleep(rule.seconds)
            rule = None
        if rule is not None and rule.action == "reset":
            proxy.record(Logged(op, self.command, parts.path, 0))
            self._reset()
            return
        if rule is not None and rule.action == "status":
            code = rule.code or ERROR_CODES.get(rule.status, "InternalError")
            payload = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>injected by the test "
                       "proxy</Message><RequestId>proxy</RequestId></Error>" % code).encode()
            self.send_response(rule.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            proxy.record(Logged(op, self.command, parts.path, rule.status))
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(LOOPBACK, proxy.upstream_port, timeout=120)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            if rule is not None and rule.action == "drop_answer":
                # The server acted on the request; the client never hears of it.
                proxy.record(Logged(op, self.command, parts.path, 0))
                self._reset()
                return
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                # A HEAD answer keeps the object's length; other answers get the length of what is sent.
                if name.lower() not in _HOP_HEADERS and (name.lower() != "content-length" or self.command == "HEAD"):
                    self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            proxy.record(Logged(op, self.command, parts.path, response.status))
        finally:
            upstream.close()

    def _reset(self) -> None:
        """Close the connection with a TCP reset (SO_LINGER 0), as a dropped link or a crashed server does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.close_connection = True
        self.connection.close()

    def _safely(self) -> None:
        op = operation(self.command, urllib.parse.urlsplit(self.path).path,
                       dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)),
                       self.headers)
        self.server.proxy.entered(op, +1)
        try:
            self._handle()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (a killed module)
        finally:
            self.server.proxy.entered(op, -1)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _safely  # noqa: N815


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: "S3Proxy"):
        super().__init__((LOOPBACK, 0), _Handler)
        self.proxy = proxy


class S3Proxy:
    """``with S3Proxy(moto_port) as proxy:`` point the client at ``proxy.url``."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self.rules: list[Rule] = []
        self.log: list[Logged] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}  # by operation: the most requests the proxy was answering at once
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-proxy", daemon=True)

    @property
    def url(self) -> str:
        return "http://%s:%d" % (LOOPBACK, self._server.server_address[1])

    def __enter__(self) -> "S3Proxy":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()

    def entered(self, op: str, step: int) -> None:
        with self._lock:
            self.in_flight[op] = self.in_flight.get(op, 0) + step
            self.max_in_flight[op] = max(self.max_in_flight.get(op, 0), self.in_flight[op])

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules = []
            self.log = []
            self.max_in_flight = {}

    def take(self, op: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(op, path):
                    if rule.count > 0:
                        rule.count -= 1
                    return rule
        return None

    def record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def count(self, *operations: str) -> int:
        with self._lock:
            return sum(1 for entry in self.log if entry.operation in operations)
