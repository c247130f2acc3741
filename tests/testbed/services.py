# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Start and stop the real services the tests and the demo talk to, on 127.0.0.1 only.

Each service is a child process in its own process group, with its output in a log file, a
readiness probe, and a stop that ends the whole group. Use it as a context manager so that what
was started is stopped, also when a test run fails or is interrupted.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request

LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def http_ready(url: str) -> t.Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                return response.status < 500
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except OSError:
            return False
    return probe


class Service:
    """One service process on loopback."""

    def __init__(self, name: str, argv: list[str], port: int, ready: t.Callable[[], bool], log_dir: str,
                 env: dict | None = None, start_timeout: float = 60.0):
        self.name = name
        self.argv = argv
        self.port = port
        self.ready = ready
        self.env = env
        self.start_timeout = start_timeout
        self.log_path = os.path.join(log_dir, "%s-%d.log" % (name, port))
        self.process: subprocess.Popen | None = None

    def start(self) -> "Service":
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # pylint: disable=consider-using-with
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError("%s exited with %s before it was ready:\n%s" % (self.name, self.process.returncode, self.log_tail()))
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise ServiceError("%s was not ready within %ss:\n%s" % (self.name, self.start_timeout, self.log_tail()))

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass

    def log_tail(self, size: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - size))
                return log.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def __enter__(self) -> "Service":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def moto_s3(log_dir: str) -> Service:
    """moto in server mode: a real S3 HTTP endpoint on 127.0.0.1."""
    port = free_port()
    env = dict(os.environ)
    env.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    return Service(
        "moto-s3", [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)], port,
        http_ready("http://%s:%d/moto-api/" % (LOOPBACK, port)), log_dir, env=env,
    )


S3_TEST_CREDENTIALS = {"access_key": "corebackup-test", "secret_key": "corebackup-test-secret", "region": "us-east-1"}


def unix_http_ready(socket_path: str, path: str = "/_ping") -> t.Callable[[], bool]:
    """Readiness of an HTTP API on a unix socket (the Docker engine answers OK to /_ping)."""
    def probe() -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(socket_path)
                sock.sendall(("GET %s HTTP/1.0\r\nHost: docker\r\n\r\n" % path).encode())
                return b" 200 " in sock.recv(64)
        except OSError:
            return False
    return probe


def dockerd(root: str, log_dir: str) -> Service:
    """A Docker engine of our own (Debian's docker.io): its own data root, exec root and socket, no
    bridge, no iptables (containers run with --network none). Needs root."""
    os.makedirs(root, exist_ok=True)
    sock = os.path.join(root, "docker.sock")
    argv = ["dockerd", "--data-root", os.path.join(root, "data"), "--exec-root", os.path.join(root, "exec"),
            "--pidfile", os.path.join(root, "docker.pid"), "-H", "unix://" + sock, "--bridge=none",
            "--iptables=false", "--ip-masq=false", "--ip6tables=false", "--storage-driver=vfs"]
    service = Service("dockerd", argv, 0, unix_http_ready(sock), log_dir, start_timeout=90)
    service.socket = sock  # type: ignore[attr-defined]
    return service


def build_busybox_image(client: t.Any, tag: str = "corebackup-test:busybox") -> str:
    """A tiny local image (no registry is reachable): Debian's busybox-static imported as a root file system."""
    import io  # pylint: disable=import-outside-toplevel
    import tarfile  # pylint: disable=import-outside-toplevel
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as rootfs:
        for folder in ("bin", "tmp"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            rootfs.addfile(info)
        rootfs.add(os.path.realpath("/bin/busybox"), "bin/busybox")
        for applet in ("sh", "sleep", "ls", "cat", "touch", "mkdir", "ln", "chmod", "chown", "printf", "dd", "tar",
                       "find", "stat", "sha256sum", "echo", "rm", "head", "true", "sync"):
            info = tarfile.TarInfo("bin/" + applet)
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            rootfs.addfile(info)
    repository, _sep, version = tag.partition(":")
    client.api.import_image_from_data(data.getvalue(), repository=repository, tag=version or "latest",
                                      changes=['CMD ["/bin/sh"]'])
    return tag


def secantus(python: str, log_dir: str, storage_path: str = ":memory:", auth: bool = False) -> Service:
    """SecantusDB (a MongoDB-compatible server on WiredTiger) on 127.0.0.1: a single-node replica set with an
    oplog. It runs from its own venv (``python``), since it pulls numpy."""
    port = free_port()
    argv = [python, "-m", "secantus", "--host", LOOPBACK, "--port", str(port), "--storage-path", storage_path]
    if auth:
        argv.append("--auth")

    def ready() -> bool:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return True
        except OSError:
            return False
    return Service("secantus", argv, port, ready, log_dir, start_timeout=120)
