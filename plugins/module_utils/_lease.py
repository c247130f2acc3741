# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""One writing run of a job at a time, per store: a lease made of records that are only ever created.

Two runs of the same job at once (a scheduled run that overlaps a manual one, two AWX nodes) would
decide from the same catalog and race on today's set. The second run waits for the lease up to
``lock_timeout`` seconds, then fails with a message naming the holder.

The lease is a sequence of records ``<job>/leases/<seq>.json`` (``seq`` twelve digits), each created once
where none exists (S3 ``If-None-Match: *``, a hard link on a filesystem) and never overwritten or deleted by
a run, so that a backup credential needs neither. The newest record (the highest ``seq``, found by listing
``<job>/leases/``) says who holds the job: ``{holder, host, pid, run, taken, expires, state}``.

- A run takes the lease by creating record ``seq + 1`` when the newest one is released, expired, or held by a
  process of this host that no longer runs (a killed run). Of two runs that read the same newest record, the
  store lets one create ``seq + 1``; the other reads again.
- Its holder renews it every third of its time to live by creating ``seq + 1`` with a later ``expires``; if
  that record exists already, another run took the lease over (this one's had expired) and the run warns.
- Releasing is one more record, ``state: released``.

A holder that died leaves its last record; it expires by its own timestamp (at once when the holder was a
process of the same host that no longer runs). Listings of sets ignore ``leases/`` (it is not a dated
folder). Old records stay: only the newest matters, and a bucket lifecycle rule (or a person) may remove the
others; retention does not yet.

The release before these records held a job by overwriting ``<job>/.lease`` (S3) or by ``flock()`` on
``<job>/.lease.lock`` (filesystem). A run of this release waits while such a lease is held, so that a host not
yet upgraded that writes or prunes the job is never raced; on a filesystem it also holds that ``flock()`` (the
kernel's, nothing written), which the older release waits for in turn. On S3 the older release cannot see
these records: upgrade every host that writes or prunes a job on S3 together.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import socket
import threading
import time
import typing as t
import uuid

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import job_prefix
from ansible_collections.corebackup.backup.plugins.module_utils._storage import PreconditionFailed, StorageError

TTL = 300.0  # seconds a lease lives without renewal
POLL = 0.5
PROBES = ".probes/"  # below a job's folder: the write probes of runs that asked whether the store refuses writes
_RECORD_RE = re.compile(r"^(\d{12})\.json$")


class LeaseBusy(BackupError):
    """Another run of the job holds the lease."""


def utc_clock() -> datetime.datetime:
    """The real time (not the runs' COREBACKUP_NOW): names of probes and records that must not collide."""
    return datetime.datetime.now(datetime.timezone.utc)


def _stamp(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def holder_record(ttl: float) -> dict:
    now = time.time()
    run = uuid.uuid4().hex
    return {"holder": "%s:%d:%s" % (socket.gethostname(), os.getpid(), run[:12]), "run": run,
            "host": socket.gethostname(), "pid": os.getpid(), "taken": _stamp(now), "expires": now + ttl,
            "state": "held"}


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another run"
    since = holder.get("taken") or holder.get("since")
    return "the run of pid %s on %s since %s" % (holder.get("pid"), holder.get("host"), since)


def busy_error(job: str, holder: dict | None, timeout: float) -> LeaseBusy:
    waited = " after waiting %gs" % timeout if timeout else ""
    return LeaseBusy("job %s is being written by %s%s; this run stored nothing. Let it finish, or set "
                     "lock_timeout to wait for it" % (job, _describe(holder), waited))


def is_stale(holder: t.Any) -> bool:
    """A lease record whose holder is gone: released, expired, or held by a process of this host that no longer
    runs. (An unreadable record counts as gone: records are created whole, so it is damage, not a writer's.)"""
    if not isinstance(holder, dict) or not isinstance(holder.get("expires"), (int, float)):
        return True
    if holder.get("state") == "released" or holder["expires"] < time.time():
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


def records_prefix(job: str) -> str:
    return job_prefix(job) + "leases/"


def record_key(job: str, seq: int) -> str:
    return "%s%012d.json" % (records_prefix(job), seq)


def list_records(backend: t.Any, job: str) -> list[tuple[int, t.Any]]:
    """The lease records of ``job``, oldest first: [(seq, StoredObject)] (other names in ``leases/`` ignored)."""
    prefix = records_prefix(job)
    found = []
    for obj in backend.list(prefix):
        match = _RECORD_RE.match(obj.key[len(prefix):])
        if match:
            found.append((int(match.group(1)), obj))
    return sorted(found, key=lambda pair: pair[0])


def newest(backend: t.Any, job: str) -> tuple[int, dict | None]:
    """(seq, record) of the newest lease record of ``job``; (0, None) when there is none, and the record None when
    it cannot be read as one."""
    records = list_records(backend, job)
    if not records:
        return 0, None
    seq, obj = records[-1]
    try:
        record = json.loads(backend.read_bytes(obj.key))
    except (ValueError, StorageError):
        return seq, None
    return seq, record if isinstance(record, dict) else None


def current_holder(backend: t.Any, job: str) -> dict | None:
    """The newest record of ``job``'s lease while it is held (not released nor expired), else None."""
    _seq, record = newest(backend, job)
    if record is None or record.get("state") != "held" or not isinstance(record.get("expires"), (int, float)):
        return None
    return record if record["expires"] >= time.time() else None


class RecordLease:
    """The lease of ``job`` on ``backend``: create-only records (see above), renewed from a thread while held."""

    def __init__(self, backend: t.Any, job: str, ttl: float = TTL):
        self.backend, self.job, self.ttl = backend, job, ttl
        self.seq: int | None = None
        self.holder: dict | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _create(self, seq: int, **changes: t.Any) -> None:
        """Create record ``seq`` (PreconditionFailed if it exists: another run was first)."""
        record = dict(self.holder or holder_record(self.ttl), **changes)
        self.backend.write(record_key(self.job, seq), [json.dumps(record, sort_keys=True).encode()], overwrite=False)
        self.holder, self.seq = record, seq

    def previous_release_holder(self) -> dict | None:
        """The holder of the lease of the release before records (``<job>/.lease``) while it holds it, else None."""
        try:
            record = json.loads(self.backend.read_bytes(job_prefix(self.job) + ".lease"))
        except (ValueError, StorageError):
            return None
        return None if is_stale(record) else record

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self.holder = holder_record(self.ttl)
        while True:
            seq, other = newest(self.backend, self.job)
            older = self.previous_release_holder()
            if older is not None:
                other = older
            elif seq == 0 or is_stale(other):
                try:
                    self._create(seq + 1, expires=time.time() + self.ttl)
                    break
                except PreconditionFailed:
                    continue  # another run created it first: read again
            if time.monotonic() >= deadline:
                raise busy_error(self.job, other, timeout)
            time.sleep(POLL)
        self._thread = threading.Thread(target=self._renew, name="lease-%s" % self.job, daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self._create(self.seq + 1, expires=time.time() + self.ttl)
            except PreconditionFailed:
                self.lost = "the lease of job %s was taken over by another run while this one wrote" % self.job
                return
            except StorageError:
                continue  # tried again at the next turn, well before the lease expires

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost or self.seq is None:
            return
        with contextlib.suppress(StorageError):  # PreconditionFailed too: taken over, nothing of ours to release
            self._create(self.seq + 1, state="released", expires=time.time())


@contextlib.contextmanager
def job_lease(backend: t.Any, job: str, timeout: float, dry_run: bool = False) -> t.Iterator[t.Any]:
    """The lease of ``job`` on ``backend`` while the block runs (nothing in a ``dry_run``)."""
    if dry_run:
        yield None
        return
    lease = backend.lease(job)
    lease.acquire(max(0.0, float(timeout)))
    try:
        yield lease
    finally:
        lease.release()
