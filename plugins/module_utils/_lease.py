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
import os
import socket
import time
import typing as t
import uuid

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError

TTL = 300.0  # seconds an S3 lease lives without renewal
POLL = 0.5


class LeaseBusy(BackupError):
    """Another run of the job holds the lease."""


def holder_record(ttl: float) -> dict:
    now = time.time()
    return {"run": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
            "since": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expires": now + ttl}


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another run"
    return "the run of pid %s on %s since %s" % (holder.get("pid"), holder.get("host"), holder.get("since"))


def busy_error(job: str, holder: dict | None, timeout: float) -> LeaseBusy:
    waited = " after waiting %gs" % timeout if timeout else ""
    return LeaseBusy("job %s is being written by %s%s; this run stored nothing. Let it finish, or set "
                     "lock_timeout to wait for it" % (job, _describe(holder), waited))


def is_stale(holder: t.Any) -> bool:
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
