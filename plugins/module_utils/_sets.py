# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The backup sets of a job, from one listing of its folder.

A backup set is the folder ``<job>/<YYYY-MM-DD>/``. What a listing tells about it, without reading
any object: its artifacts, its run records (``runs/<finished>_<run id>_<source>.<status>.json``, whose
names alone give the set's status), and whether it has a ``manifest.json``.
"""

from __future__ import annotations

import datetime
import re
import typing as t

from ansible_collections.corebackup.backup.plugins.module_utils._layout import (
    LayoutError,
    job_prefix,
    parse_date,
    parse_iso,
    parse_timestamp,
    sanitize_name,
    set_prefix,
)
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
RUNS = "runs/"

_RUN_KEY_RE = re.compile(
    r"^runs/(?P<finished>\d{8}T\d{6}Z)_(?P<run_id>[A-Za-z0-9-]{1,64})_(?P<source>[A-Za-z0-9][A-Za-z0-9_-]*)"
    r"\.(?P<status>success|partial|failed)\.json$"
)
_DATE_DIR_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def source_id(source: dict | str) -> str:
    """The name a run's source has in run record keys; a run is identified by (run id, source id)."""
    if isinstance(source, str):
        return source
    return sanitize_name("%s-%s" % (source["type"], source["name"]))


def parse_run_key(relative: str) -> dict | None:
    """The parts of a run record's name, relative to its set; None for any other name."""
    match = _RUN_KEY_RE.match(relative)
    if not match:
        return None
    return {"finished": parse_timestamp(match.group("finished")), "run_id": match.group("run_id"),
            "source": match.group("source"), "status": match.group("status")}


def set_status(runs: t.Iterable[dict]) -> str:
    """The newest run of each source decides: all succeeded, all failed, or partial.

    ``runs`` need ``finished``, ``run_id``, ``status`` and ``source`` (a name or a dict).
    """
    newest: dict[str, dict] = {}
    for run in runs:
        source = source_id(run["source"])
        finished = run["finished"] if isinstance(run["finished"], datetime.datetime) else parse_iso(run["finished"], "finished")
        current = newest.get(source)
        if current is None or (finished, run["run_id"]) > current["_order"]:
            newest[source] = {"status": run["status"], "_order": (finished, run["run_id"])}
    statuses = {run["status"] for run in newest.values()}
    if not statuses:
        return "failed"
    if statuses == {"success"}:
        return "success"
    if statuses == {"failed"}:
        return "failed"
    return "partial"


class BackupSet:
    """What a listing says about one dated folder of a job."""

    def __init__(self, job: str, date: str):
        self.job = job
        self.date = date
        self.objects: list = []  # StoredObject of every key in the set
        self.runs: list[dict] = []  # parsed run record names
        self.bad_names: list[str] = []  # objects under runs/ whose names do not parse
        self.has_manifest = False

    @property
    def prefix(self) -> str:
        return set_prefix(self.job, self.date)

    @property
    def size(self) -> int:
        return sum(obj.size for obj in self.objects)

    @property
    def status(self) -> str | None:
        """success, partial or failed from the run records' names; None when the set has none."""
        return set_status(self.runs) if self.runs else None

    def add(self, obj: t.Any) -> None:
        self.objects.append(obj)
        relative = obj.key[len(self.prefix):]
        if relative == MANIFEST:
            self.has_manifest = True
        elif relative.startswith(RUNS):
            parsed = parse_run_key(relative)
            if parsed is None:
                self.bad_names.append(obj.key)
            else:
                parsed["key"] = obj.key
                self.runs.append(parsed)


def iter_sets(backend: t.Any, job: str, others: t.Callable[[str], None] | None = None) -> t.Iterator[BackupSet]:
    """Every dated folder of ``job``, one at a time, from one paginated listing: a set is yielded whole as soon
    as the listing has moved past it, so memory holds one set's objects, not the job's.

    Both backends list a folder's keys together (S3 in key order, the filesystem folder by folder); a dated
    folder that shows up again after another one is a listing this cannot trust and raises StorageError.
    ``others`` is called with every key under ``<job>/`` outside a dated folder.
    """
    prefix = job_prefix(job)
    current: BackupSet | None = None
    done: set[str] = set()
    for obj in backend.list(prefix):
        folder, _sep, rest = obj.key[len(prefix):].partition("/")
        try:
            valid = bool(rest) and bool(parse_date(folder))
        except LayoutError:
            valid = False
        if not valid:
            if others is not None:
                others(obj.key)
            continue
        if current is not None and current.date != folder:
            done.add(current.date)
            yield current
            current = None
        if current is None:
            if folder in done:
                raise StorageError("the listing of %s returned the keys of %s%s/ apart from each other" % (
                    prefix, prefix, folder))
            current = BackupSet(job, folder)
        current.add(obj)
    if current is not None:
        yield current


def list_sets(backend: t.Any, job: str) -> tuple[dict[str, BackupSet], list[str]]:
    """Every dated folder of ``job`` from one paginated listing: ({date: BackupSet}, other keys)."""
    others: list[str] = []
    sets = {backup_set.date: backup_set for backup_set in iter_sets(backend, job, others.append)}
    return sets, others


def list_jobs(backend: t.Any) -> list[str]:
    """Jobs that have at least one manifest in the store."""
    jobs = set()
    for obj in backend.list(""):
        parts = obj.key.split("/")
        if len(parts) >= 3 and parts[2] in (MANIFEST, "runs") and _DATE_DIR_RE.match(parts[1]):
            jobs.add(parts[0])
    return sorted(jobs)


def load_set(backend: t.Any, job: str, set_date: str) -> BackupSet:
    """One set from a listing of its own folder."""
    backup_set = BackupSet(job, set_date)
    for obj in backend.list(backup_set.prefix):
        backup_set.add(obj)
    return backup_set
