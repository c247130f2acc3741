# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fault-injecting HTTP proxy on a unix socket in front of a Docker engine's socket.

Everything a client sends reaches the engine unchanged, except what a rule intercepts. A rule picks
requests by method and a regular expression on the path (without the ``/v1.NN`` API version prefix,
for example ``^/containers/[^/]+/stop$``), acts on the ``nth`` one that matches and on ``count`` in
all from there, and does one of:

- ``status``: answer ``status`` (500 unless told) with the engine's JSON error form; with ``forward``
  the engine gets the request first (it acted, its answer is lost);
- ``drop``: close the connection without an answer (``forward`` as above);
- ``delay``: forward, then hold the answer ``seconds`` (an engine slow to answer, beyond a client's
  time-out);
- ``stall``: forward, relay the answer's head and ``after_bytes`` of its body, then hold the rest
  ``seconds`` (or until ``release()``): a stream that stops half-way for as long as a test needs;
- ``cut``: forward, relay the head and ``after_bytes`` of the body, then close: a stream broken off.

``rule.hit`` is set when a rule acts, so that a test can wait for the moment (the engine stopped the
container, the archive is half-way) and act then (kill the module, remove a container). Every request
is logged with its method, path and the status relayed (0 when none was).
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import json
import os
import re
import socket
import socketserver
import threading
import typing as t

from ansible_collections.corebackup.backup.tests.testbed.s3_proxy import request_body

_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}
_VERSION = re.compile(r"^/v[0-9.]+(?=/)")
BLOCK = 64 * 1024


def api_path(path: str) -> str:
    """The path of a request without its query and API version prefix."""
    return _VERSION.sub("", path.split("?", 1)[0])


@dataclasses.dataclass
class Rule:
    method: str  # GET, POST, DELETE, ... or "*"
    path: str  # a regular expression searched in api_path()
    action: str  # status, drop, delay, stall or cut
    nth: int = 1  # the first matching request the rule acts on (1: the first)
    count: int = 1  # how many matching requests it acts on from there; -1 for all
    status: int = 500
    seconds: float = 0.0
    after_bytes: int = 0
    forward: bool = False
    seen: int = 0
    hits: int = 0
    hit: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)
    released: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and re.search(self.path, path) is not None

    def release(self) -> None:
        """End a ``stall`` or ``delay`` now."""
        self.released.set()


@dataclasses.dataclass
class Logged:
    method: str
    path: str  # api_path() of the request
    query: str
    status: int  # what the client got; 0 when the connection was closed without an answer
    rule: Rule | None = None

    def __str__(self) -> str:
        return "%s %s" % (self.method, self.path)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._socket_path)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args) -> None:  # pylint: disable=redefined-builtin
        pass

    def address_string(self) -> str:
        return "unix"

    def _inject(self, rule: t.Any, logged: t.Any) -> None:
        """Answer as ``rule`` says (an error status, or a dropped connection) and signal that it fired."""
        rule.hit.set()
        if rule.action == "status":
            self._send_error(rule.status)
            logged.status = rule.status
        else:
            self._drop()

    def _body(self) -> bytes:
        return request_body(self)

    def _send_error(self, status: int) -> None:
        payload = json.dumps({"message": "injected by the test proxy"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self) -> None:
        proxy = self.server.proxy
        path, query = api_path(self.path), self.path.partition("?")[2]
        body = self._body()
        rule = proxy.take(self.command, path)
        logged = Logged(self.command, path, query, 0, rule)
        proxy.record(logged)
        if rule is not None and rule.action in ("status", "drop") and not rule.forward:
            self._inject(rule, logged)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        if body or self.command in ("POST", "PUT"):
            headers["Content-Length"] = str(len(body))
        upstream = _UnixConnection(proxy.upstream, timeout=600)
        response = None
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            if rule is not None and rule.action in ("status", "drop"):  # forwarded: the engine acted
                response.read()
                self._inject(rule, logged)
                return
            if rule is not None and rule.action == "delay":
                rule.hit.set()
                rule.released.wait(rule.seconds)
            self._relay(response, rule, logged)
        finally:
            if response is not None:
                response.close()  # it holds the socket too: the engine must see the connection end
            upstream.close()

    def _relay(self, response: http.client.HTTPResponse, rule: Rule | None, logged: Logged) -> None:
        self.send_response(response.status, response.reason)
        length = response.getheader("Content-Length")
        no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        for name, value in response.getheaders():
            if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                self.send_header(name, value)
        chunked = not no_body and length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        logged.status = response.status
        if no_body:
            self.wfile.flush()
            return
        sent = 0
        pending = rule if rule is not None and rule.action in ("stall", "cut") else None
        while True:
            if pending is not None and sent >= pending.after_bytes:
                self.wfile.flush()
                pending.hit.set()
                if pending.action == "cut":
                    self._drop()
                    return
                pending.released.wait(pending.seconds)
                pending = None
            data = response.read1(BLOCK if pending is None else min(BLOCK, pending.after_bytes - sent))
            if not data:
                break
            self._write(data, chunked)
            sent += len(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write(self, data: bytes, chunked: bool) -> None:
        if chunked:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.wfile.write(data)

    def _safely(self) -> None:
        try:
            self._handle()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True  # the client went away (a killed module, a client time-out)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _safely  # noqa: N815


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, proxy: "DockerProxy"):
        super().__init__(path, _Handler)
        self.proxy = proxy


class DockerProxy:
    """``with DockerProxy(engine_socket, proxy_socket) as proxy:`` point the client at ``proxy.url``."""

    def __init__(self, upstream: str, path: str):
        self.upstream = upstream[len("unix://"):] if upstream.startswith("unix://") else upstream
        self.path = path
        self._lock = threading.Lock()
        self.rules: list[Rule] = []
        self.log: list[Logged] = []
        if os.path.exists(path):
            os.unlink(path)
        self._server = _Server(path, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="docker-proxy", daemon=True)

    @property
    def url(self) -> str:
        return "unix://" + self.path

    def __enter__(self) -> "DockerProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        for rule in self.rules:
            rule.release()
        self._server.shutdown()
        self._server.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """No rules (stalled answers go on) and an empty log."""
        with self._lock:
            for rule in self.rules:
                rule.release()
            self.rules = []
            self.log = []

    def take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                rule.seen += 1
                if rule.seen >= rule.nth and (rule.count < 0 or rule.hits < rule.count):
                    rule.hits += 1
                    return rule
        return None

    def record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def calls(self) -> list[str]:
        """``METHOD /path`` of every request so far, in order."""
        with self._lock:
            return [str(entry) for entry in self.log]
