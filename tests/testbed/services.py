# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Start and stop the real services the tests and the demo talk to, on 127.0.0.1 only.

Each service is a child process in its own process group, with its output in a log file, a
readiness probe, and a stop that ends the whole group. Use it as a context manager so that what
was started is stopped, also when a test run fails or is interrupted.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.error
import urllib.parse
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


PG_BIN_DEFAULT = "/usr/lib/postgresql/15/bin"


def pg_bin_dir() -> str:
    """Where the PostgreSQL programs are: ``PG_BIN`` if set, else Debian's PostgreSQL 15."""
    return os.environ.get("PG_BIN") or PG_BIN_DEFAULT


class PostgresError(RuntimeError):
    """psql failed: its exit code and its stderr, with every password it was given replaced by ``********``."""


def quote_ident(name: str) -> str:
    return '"%s"' % name.replace('"', '""')


def quote_literal(value: str) -> str:
    return "'%s'" % value.replace("'", "''")  # standard_conforming_strings is on: a backslash is a backslash


ROLE_ATTRIBUTES = re.compile(r"^(NO)?(SUPERUSER|CREATEDB|CREATEROLE|INHERIT|LOGIN|REPLICATION|BYPASSRLS)$")


@dataclasses.dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server on 127.0.0.1 and its superuser, with psql from ``bin_dir`` as the client."""

    host: str
    port: int
    password: str = dataclasses.field(repr=False)
    superuser: str = "postgres"
    bin_dir: str = PG_BIN_DEFAULT

    @property
    def uri(self) -> str:
        """The superuser's connection URI (it holds the password: keep it out of logs and assertions)."""
        return "postgresql://%s:%s@%s:%d/postgres" % (
            urllib.parse.quote(self.superuser, safe=""), urllib.parse.quote(self.password, safe=""), self.host, self.port)

    def client_env(self, password: str | None) -> dict[str, str]:
        """The environment of a client program (pg_dump, psql, ...): ours without any PG* variable that could point
        it elsewhere, and ``password`` in PGPASSWORD (``server.client_env(server.password)`` for the superuser)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "10"
        if password is not None:
            env["PGPASSWORD"] = password
        return env

    def sql(self, query: str, dbname: str = "postgres", user: str | None = None, password: str | None = None,
            secrets_in_query: t.Sequence[str] = ()) -> str:
        """Run ``query`` (one or more statements, each on its own) with psql over TCP as ``user`` (the superuser
        by default, with its password) and return what it printed, stripped: unaligned, tuples only, ``|``
        between columns. The query goes through stdin, so that nothing of it shows in a process list; a
        failure raises PostgresError with psql's stderr, ``secrets_in_query`` and the passwords masked."""
        __tracebackhide__ = True  # pylint: disable=unused-variable  # pytest: the error says it all, the password stays out
        if user is None:
            user, password = self.superuser, self.password if password is None else password
        argv = [os.path.join(self.bin_dir, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                "-h", self.host, "-p", str(self.port), "-U", user, "-d", dbname, "-f", "-"]
        result = subprocess.run(argv, input=query, capture_output=True, text=True, env=self.client_env(password),
                                timeout=300, check=False)
        if result.returncode != 0:
            message = result.stderr.strip() or result.stdout.strip()
            for secret in (self.password, password, *secrets_in_query):
                if secret:
                    message = message.replace(secret, "********")
            raise PostgresError("psql as %s on %s failed (exit %d): %s" % (user, dbname, result.returncode, message))
        return result.stdout.strip()

    def create_role(self, name: str, password: str | None = None, *attributes: str) -> None:
        """CREATE ROLE with ``attributes`` ("LOGIN", "CREATEDB", ...) and a password (stored as a SCRAM hash)."""
        for attribute in attributes:
            if not ROLE_ATTRIBUTES.match(attribute):
                raise ValueError("not a role attribute: %r" % attribute)
        clauses = list(attributes) + (["PASSWORD " + quote_literal(password)] if password is not None else [])
        self.sql("CREATE ROLE %s%s;" % (quote_ident(name), " WITH " + " ".join(clauses) if clauses else ""),
                 secrets_in_query=[password] if password else [])

    def create_database(self, name: str, owner: str | None = None, template: str | None = None) -> None:
        statement = "CREATE DATABASE " + quote_ident(name)
        if owner:
            statement += " OWNER " + quote_ident(owner)
        if template:
            statement += " TEMPLATE " + quote_ident(template)
        self.sql(statement + ";")

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS, WITH (FORCE): sessions still connected to it are ended."""
        self.sql("DROP DATABASE IF EXISTS %s WITH (FORCE);" % quote_ident(name))


class PostgresService(Service):
    """A PostgreSQL cluster of its own: initdb into a fresh folder under /tmp, postgres on 127.0.0.1, and at the
    end a fast shutdown and the folder removed. As root (CI), initdb and postgres, which refuse to run as root,
    run as ``nobody`` through setpriv, in a folder that ``nobody`` owns."""

    def __init__(self, log_dir: str, bin_dir: str | None = None, settings: dict[str, str] | None = None,
                 start_timeout: float = 60.0):
        self.bin_dir = bin_dir or pg_bin_dir()
        self.password = secrets.token_urlsafe(18)
        self.root = ""
        port = free_port()
        self.settings = {
            "listen_addresses": LOOPBACK, "port": str(port), "unix_socket_directories": "",
            # Throwaway data: no fsync, for speed.
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            # A failed statement is not copied into the log (CREATE ROLE ... PASSWORD); psql shows it to its caller.
            "log_min_error_statement": "panic",
        }
        self.settings.update(settings or {})
        super().__init__("postgres", [], port, self._ready, log_dir, start_timeout=start_timeout)

    @property
    def server(self) -> PostgresServer:
        return PostgresServer(LOOPBACK, self.port, self.password, "postgres", self.bin_dir)

    def _as_owner(self) -> tuple[list[str], int | None, int | None]:
        """The prefix that runs a program as the cluster's owner, and that owner's uid and gid (None: ourselves)."""
        if os.geteuid() != 0:
            return [], None, None
        nobody = pwd.getpwnam("nobody")
        return (["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid, "--clear-groups", "--"],
                nobody.pw_uid, nobody.pw_gid)

    def _ready(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1):
                pass
        except OSError:
            return False
        probe = subprocess.run([os.path.join(self.bin_dir, "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(self.port),
                                "-U", "postgres", "-d", "postgres", "-t", "2"],
                               env=self.server.client_env(None), capture_output=True, check=False)
        return probe.returncode == 0

    def start(self) -> "PostgresService":
        prefix, uid, gid = self._as_owner()
        self.root = tempfile.mkdtemp(prefix="cbpg-", dir="/tmp")  # short: the path shows in every log line
        data = os.path.join(self.root, "data")
        pwfile = os.path.join(self.root, "pwfile")
        try:
            with open(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
                handle.write(self.password + "\n")
            if uid is not None:
                os.chown(self.root, uid, gid)
                os.chown(pwfile, uid, gid)
            os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
            env = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "LC_"))}
            env["LANG"] = "C.UTF-8"
            with open(self.log_path, "ab") as log:
                initdb = subprocess.run(
                    prefix + [os.path.join(self.bin_dir, "initdb"), "-D", data, "--username=postgres",
                              "--pwfile=" + pwfile, "--auth-host=scram-sha-256", "--auth-local=peer",
                              "--encoding=UTF8", "--no-locale", "--no-sync"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, env=env,
                    timeout=120, check=False)
            os.unlink(pwfile)
            if initdb.returncode != 0:
                raise ServiceError("initdb exited with %s:\n%s" % (initdb.returncode, self.log_tail()))
            self.argv = prefix + [os.path.join(self.bin_dir, "postgres"), "-D", data]
            for key, value in self.settings.items():
                self.argv += ["-c", "%s=%s" % (key, value)]
            self.env = env
            super().start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended, the cluster is checkpointed), then the folder is removed."""
        try:
            if self.process is not None and self.process.poll() is None:
                try:
                    os.killpg(self.process.pid, signal.SIGINT)
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
                except ProcessLookupError:
                    pass
        finally:
            if self.root:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = ""

    def __enter__(self) -> "PostgresService":
        return self.start()


def postgres(log_dir: str, bin_dir: str | None = None, settings: dict[str, str] | None = None) -> PostgresService:
    """A PostgreSQL server of its own on 127.0.0.1 (Debian's PostgreSQL 15, or ``bin_dir`` or ``PG_BIN``): a fresh
    cluster, superuser ``postgres`` with a random password (SCRAM over TCP), no unix socket, fsync off.
    ``settings`` adds or overrides server settings (``{"password_encryption": "md5"}``). Its ``server`` is the
    :class:`PostgresServer` to talk to it with."""
    return PostgresService(log_dir, bin_dir, settings)
