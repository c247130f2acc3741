# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""One writing run of a job at a time, per store: a lease.

Two runs of the same job at once (a scheduled run that overlaps a manual one, two AWX nodes) would
decide from the same catalog and race on today's set. The second run waits for the lease up to
``lock_timeout`` seconds, then fails with a message naming the holder.

- Filesystem: ``flock()`` on ``<root>/<job>/.lease.lock``. The kernel releases it when its holder
  dies, even by SIGKILL, so a killed run never blocks the next one. The file says who holds it.
- S3 (no locks): an object ``<prefix><job>/.lease`` written only where none exists (``If-None-Match``),
  renewed by its holder every third of its time to live (``If-Match`` on its own version), deleted at
  the end. A holder that died leaves it behind; once its expiry has passed (at once when the holder
  was a process of the same host that no longer runs), the next run takes it over with ``If-Match``
  on the stale version, so that of two runs taking over at once one wins.
  Listings ignore the object (it is not in a dated folder).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import threading
import time
import typing as t
import uuid

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import job_prefix
from ansible_collections.corebackup.backup.plugins.module_utils._storage import PreconditionFailed, StorageError

TTL = 300.0  # seconds an S3 lease lives without renewal
POLL = 0.5


class LeaseBusy(BackupError):
    """Another run of the job holds the lease."""


def _holder(ttl: float) -> dict:
    now = time.time()
    return {"run": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
            "since": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expires": now + ttl}


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another run"
    return "the run of pid %s on %s since %s" % (holder.get("pid"), holder.get("host"), holder.get("since"))


def _busy(job: str, holder: dict | None, timeout: float) -> LeaseBusy:
    waited = " after waiting %gs" % timeout if timeout else ""
    return LeaseBusy("job %s is being written by %s%s; this run stored nothing. Let it finish, or set "
                     "lock_timeout to wait for it" % (job, _describe(holder), waited))


def _stale(holder: t.Any) -> bool:
    """A lease object whose holder is gone: expired, or held by a process of this host that no longer runs."""
    if not isinstance(holder, dict) or not isinstance(holder.get("expires"), (int, float)):
        return True
    if holder["expires"] < time.time():
        return True
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) and holder["pid"] != os.getpid():
        return not _running(holder["pid"])
    return False


def _running(pid: int) -> bool:
    """Is process ``pid`` of this host running? (A zombie, killed and not yet reaped, is not.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: it exists
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


class FileLease:
    """flock() on a hidden file in the job's folder."""

    def __init__(self, backend: t.Any, job: str):
        key_path = backend.path_for(job_prefix(job) + "lease")
        self.path = backend._lock_path(key_path)  # pylint: disable=protected-access
        self.backend, self.job = backend, job
        self._fd: int | None = None
        self.lost: str | None = None

    def acquire(self, timeout: float) -> None:
        try:
            self.backend._ensure_dirs(os.path.dirname(self.path))  # pylint: disable=protected-access
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, self.backend.file_mode)
        except OSError as exc:
            raise StorageError("cannot lock %s: %s" % (self.path, exc)) from exc
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._read(fd)
                    os.close(fd)
                    raise _busy(self.job, holder, timeout) from None
                time.sleep(POLL)
        self._fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder(0)).encode(), 0)

    @staticmethod
    def _read(fd: int) -> dict | None:
        try:
            return json.loads(os.pread(fd, 4096, 0) or b"null")
        except ValueError:
            return None

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the flock
            self._fd = None


class ObjectLease:
    """A lease object, conditional writes, renewed from a thread while held."""

    def __init__(self, backend: t.Any, job: str, ttl: float = TTL):
        self.backend, self.job, self.ttl = backend, job, ttl
        self.key = job_prefix(job) + ".lease"
        self.etag: str | None = None
        self.holder: dict | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self, if_match: str | None) -> None:
        self.holder = dict(self.holder or _holder(self.ttl), expires=time.time() + self.ttl)
        body = json.dumps(self.holder, sort_keys=True).encode()
        if if_match is None:
            stored = self.backend.write(self.key, [body], overwrite=False)
        else:
            stored = self.backend.write(self.key, [body], if_match=if_match)
        self.etag = stored.etag or (self.backend.stat(self.key) or stored).etag

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self.holder = _holder(self.ttl)
        while True:
            try:
                self._write(None)
                break
            except PreconditionFailed:
                pass
            current = self.backend.stat(self.key)
            other = None
            if current is not None:
                try:
                    other = json.loads(self.backend.read_bytes(self.key))
                except (ValueError, StorageError):
                    other = None
                if _stale(other):
                    try:  # its holder died: take it over, unless another run just did
                        self._write(current.etag)
                        break
                    except (PreconditionFailed, StorageError):
                        pass
            if time.monotonic() >= deadline:
                raise _busy(self.job, other, timeout)
            time.sleep(POLL)
        self._thread = threading.Thread(target=self._renew, name="lease-%s" % self.job, daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self._write(self.etag)
            except PreconditionFailed:
                self.lost = "the lease of job %s was taken over by another run while this one wrote" % self.job
                return
            except StorageError:
                continue  # tried again at the next turn, well before the lease expires

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost or self.etag is None:
            return
        with contextlib.suppress(StorageError):
            current = self.backend.stat(self.key)
            if current is not None and current.etag == self.etag:
                self.backend.delete_many([self.key])


@contextlib.contextmanager
def job_lease(backend: t.Any, job: str, timeout: float, dry_run: bool = False) -> t.Iterator[t.Any]:
    """The lease of ``job`` on ``backend`` while the block runs (nothing in a ``dry_run``)."""
    if dry_run:
        yield None
        return
    lease = FileLease(backend, job) if hasattr(backend, "path_for") else ObjectLease(backend, job)
    lease.acquire(max(0.0, float(timeout)))
    try:
        yield lease
    finally:
        lease.release()
