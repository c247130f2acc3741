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

With ``lock_rules`` (:class:`LockRules`) the proxy also refuses, as AWS does, what moto (5.2.x) lets through around
Object Lock: shortening or loosening a COMPLIANCE retention, or a GOVERNANCE one without the bypass (each checked
against the object version's retention, read from the server with a HEAD), the bypass header from a credential
that lacks ``s3:BypassGovernanceRetention``, and a CopyObject with ``If-None-Match: *`` onto an existing key.
"""

from __future__ import annotations

import dataclasses
import datetime
import http.client
import http.server
import re
import socket
import threading
import time
import typing as t
import urllib.parse
import xml.etree.ElementTree as ET

LOOPBACK = "127.0.0.1"
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "expect"}
ERROR_CODES = {500: "InternalError", 503: "SlowDown", 400: "BadRequest", 403: "AccessDenied"}


_SUBRESOURCES = {  # the query word of an operation on a subresource: {method: operation}
    "retention": {"PUT": "PutObjectRetention", "GET": "GetObjectRetention"},
    "legal-hold": {"PUT": "PutObjectLegalHold", "GET": "GetObjectLegalHold"},
    "object-lock": {"PUT": "PutObjectLockConfiguration", "GET": "GetObjectLockConfiguration"},
    "versioning": {"PUT": "PutBucketVersioning", "GET": "GetBucketVersioning"},
    "versions": {"GET": "ListObjectVersions"},
}


def operation(method: str, path: str, query: dict, headers: t.Mapping[str, str]) -> str:
    """The S3 operation of a request, named as botocore names it."""
    copy = "x-amz-copy-source" in {k.lower() for k in headers}
    key = path.strip("/").count("/") >= 1
    for name, operations in _SUBRESOURCES.items():
        if name in query and method in operations:
            return operations[method]
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
class LockRules:
    """What the proxy refuses around Object Lock where moto does not (see the module's docstring). ``admin`` are
    the credentials it reads an object version's retention with; ``bypass_allowed`` the access key ids that hold
    ``s3:BypassGovernanceRetention``."""
    admin: t.Mapping[str, str]  # access_key, secret_key, region
    bypass_allowed: t.Collection[str] = ()


@dataclasses.dataclass
class Logged:
    operation: str
    method: str
    path: str
    status: int  # 0 for a reset connection


def _access_key(headers: t.Mapping[str, str]) -> str:
    match = re.search(r"Credential=([^/,\s]+)/", headers.get("Authorization", ""))
    return match.group(1) if match else ""


def _retention_asked(body: bytes) -> tuple[str | None, datetime.datetime | None]:
    """(mode, retain until) of a PutObjectRetention body; (None, None) removes the retention."""
    if not body.strip():
        return None, None
    root = ET.fromstring(body)
    found = {element.tag.rsplit("}", 1)[-1]: (element.text or "").strip() for element in root.iter()}
    until = found.get("RetainUntilDate")
    return found.get("Mode") or None, _parse_time(until) if until else None


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


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
            self._error(op, parts.path, rule.status, rule.code or ERROR_CODES.get(rule.status, "InternalError"),
                        "injected by the test proxy")
            return
        refusal = proxy.lock_refusal(op, parts.path, query, self.headers, body)
        if refusal is not None:
            self._error(op, parts.path, *refusal)
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
            # Logged before it is answered: a client that got its answer finds its request in the log.
            proxy.record(Logged(op, self.command, parts.path, response.status))
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
        finally:
            upstream.close()

    def _error(self, op: str, path: str, status: int, code: str, message: str) -> None:
        """An error answer in S3's XML form, logged."""
        payload = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message>"
                   "<RequestId>proxy</RequestId></Error>" % (code, message)).encode()
        self.server.proxy.record(Logged(op, self.command, path, status))
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

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

    def __init__(self, upstream_port: int, lock_rules: LockRules | None = None):
        self.upstream_port = upstream_port
        self.lock_rules = lock_rules
        self.refused: list[str] = []  # what the lock rules refused, said as AWS would
        self._admin: t.Any = None
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

    def lock_refusal(self, op: str, path: str, query: dict, headers: t.Mapping[str, str],
                     body: bytes) -> tuple[int, str, str] | None:
        """(status, code, message) of AWS's refusal of this request under the lock rules, or None."""
        if self.lock_rules is None:
            return None
        bucket, _slash, key = path.lstrip("/").partition("/")
        key = urllib.parse.unquote(key)
        bypass = headers.get("x-amz-bypass-governance-retention", "").lower() == "true"
        refusal = None
        if bypass and _access_key(headers) not in self.lock_rules.bypass_allowed:
            refusal = (403, "AccessDenied", "%s may not bypass governance retention (s3:BypassGovernanceRetention)" % (
                _access_key(headers) or "an anonymous caller"))
        elif op == "PutObjectRetention":
            refusal = self._retention_refusal(bucket, key, query.get("versionId"), body, bypass)
        elif op == "CopyObject" and headers.get("If-None-Match", "").strip() == "*":
            if self._head(bucket, key, None) is not None:
                refusal = (412, "PreconditionFailed", "%s exists: If-None-Match: * refuses the copy" % key)
        if refusal is not None:
            with self._lock:
                self.refused.append("%s %s: %s" % (op, key, refusal[2]))
        return refusal

    def _retention_refusal(self, bucket: str, key: str, version_id: str | None, body: bytes,
                           bypass: bool) -> tuple[int, str, str] | None:
        current = self._head(bucket, key, version_id)
        if current is None or not current.get("ObjectLockMode") or not current.get("ObjectLockRetainUntilDate"):
            return None
        mode, until = current["ObjectLockMode"], current["ObjectLockRetainUntilDate"]
        if until <= datetime.datetime.now(datetime.timezone.utc):
            return None  # expired: anything goes
        asked_mode, asked_until = _retention_asked(body)
        stronger = asked_until is not None and asked_until >= until and (asked_mode == "COMPLIANCE" or mode == asked_mode)
        if stronger:
            return None
        if mode == "COMPLIANCE":
            return 403, "AccessDenied", "a COMPLIANCE retention until %s can be neither shortened nor removed" % until
        if not bypass:
            return 403, "AccessDenied", "shortening a GOVERNANCE retention until %s needs the bypass" % until
        return None

    def _head(self, bucket: str, key: str, version_id: str | None) -> dict | None:
        """The server's HeadObject of a key (version), as the lock rules' administrator; None if there is none."""
        if self._admin is None:
            import boto3  # pylint: disable=import-outside-toplevel
            admin = self.lock_rules.admin
            self._admin = boto3.client("s3", endpoint_url="http://%s:%d" % (LOOPBACK, self.upstream_port),
                                       aws_access_key_id=admin["access_key"], aws_secret_access_key=admin["secret_key"],
                                       region_name=admin.get("region", "us-east-1"))
        kwargs = {"VersionId": version_id} if version_id else {}
        try:
            return self._admin.head_object(Bucket=bucket, Key=key, **kwargs)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchVersion"):
                return None
            raise

    def record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def count(self, *operations: str) -> int:
        with self._lock:
            return sum(1 for entry in self.log if entry.operation in operations)
