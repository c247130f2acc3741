# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The backup sets of a job, from one listing of its folder.

A backup set is the folder ``<job>/<YYYY-MM-DD>/``. What a listing tells about it, without reading
any object: its artifacts, its records (written once, never changed) and whether it has a ``manifest.json``
(a view derived from the records):

* run records ``runs/<finished>_<run id>_<source>.<status>.json``, whose names alone give the set's status;
* verification records ``verifications/<when>_<id>.<ok|bad>.json`` and drill records
  ``drills/<when>_<id>.<ok|failed>.json``, whose names give the newest result;
* deletion records ``<job>/deletions/<when>_<id>.<set date>.json``, outside the sets: retention writes one
  before it deletes a set, and a set that has one (newer than its newest run) is gone for every reader.
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
VERIFICATIONS = "verifications/"
DRILLS = "drills/"
DELETIONS = "deletions/"
# Where the manifest.json of an older release (schema 1 or 2) is kept, unchanged, once a view replaces it: it
# holds that release's verifications and drills, read as legacy records.
LEGACY_MANIFEST = "legacy/manifest.json"

_RUN_KEY_RE = re.compile(
    r"^runs/(?P<finished>\d{8}T\d{6}Z)_(?P<run_id>[A-Za-z0-9-]{1,64})_(?P<source>[A-Za-z0-9][A-Za-z0-9_-]*)"
    r"\.(?P<status>success|partial|failed)\.json$"
)
_RECORD_KEY_RE = re.compile(
    r"^(?P<kind>verifications|drills)/(?P<when>\d{8}T\d{6}Z)_(?P<id>[A-Za-z0-9]{1,64})\.(?P<result>ok|bad|failed)\.json$"
)
_RESULTS = {"verifications": ("ok", "bad"), "drills": ("ok", "failed")}
_DELETION_KEY_RE = re.compile(r"^(?P<when>\d{8}T\d{6}Z)_(?P<id>[A-Za-z0-9]{1,64})\.(?P<date>\d{4}-\d{2}-\d{2})\.json$")
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


def parse_record_key(relative: str) -> dict | None:
    """The parts of a verification or drill record's name, relative to its set; None for any other name."""
    match = _RECORD_KEY_RE.match(relative)
    if not match or match.group("result") not in _RESULTS[match.group("kind")]:
        return None
    return {"kind": match.group("kind"), "when": parse_timestamp(match.group("when")), "id": match.group("id"),
            "result": match.group("result")}


def parse_deletion_key(relative: str) -> dict | None:
    """The parts of a deletion record's name, relative to ``<job>/deletions/``; None for any other name."""
    match = _DELETION_KEY_RE.match(relative)
    if not match:
        return None
    return {"when": parse_timestamp(match.group("when")), "id": match.group("id"), "date": match.group("date")}


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
        self.verifications: list[dict] = []  # parsed verification record names
        self.drills: list[dict] = []  # parsed drill record names
        self.bad_names: list[str] = []  # objects under runs/, verifications/, drills/ whose names do not parse
        self.has_manifest = False
        self.has_legacy_manifest = False
        self.deletion: str | None = None  # the key of the deletion record that makes the set gone

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
        elif relative == LEGACY_MANIFEST:
            self.has_legacy_manifest = True
        elif relative.startswith((VERIFICATIONS, DRILLS)):
            parsed = parse_record_key(relative)
            if parsed is None:
                self.bad_names.append(obj.key)
            else:
                parsed["key"] = obj.key
                (self.verifications if parsed["kind"] == "verifications" else self.drills).append(parsed)
        elif relative.startswith(RUNS):
            parsed = parse_run_key(relative)
            if parsed is None:
                self.bad_names.append(obj.key)
            else:
                parsed["key"] = obj.key
                self.runs.append(parsed)


def deletions(backend: t.Any, job: str) -> dict[str, list[dict]]:
    """{set date: [parsed deletion record names]} from a listing of ``<job>/deletions/``."""
    prefix = job_prefix(job) + DELETIONS
    found: dict[str, list[dict]] = {}
    for obj in backend.list(prefix):
        parsed = parse_deletion_key(obj.key[len(prefix):])
        if parsed is not None:
            parsed["key"] = obj.key
            found.setdefault(parsed["date"], []).append(parsed)
    return found


def deleted_by(backup_set: BackupSet, records: list[dict]) -> str | None:
    """The deletion record that makes ``backup_set`` gone: one written after its newest run (a set recorded into
    again after a deletion, as an import with set_date does, is back)."""
    newest_run = max((run["finished"] for run in backup_set.runs), default=None)
    for record in sorted(records, key=lambda r: r["when"], reverse=True):
        if newest_run is None or record["when"] >= newest_run:
            return record["key"]
    return None


def iter_sets(backend: t.Any, job: str, others: t.Callable[[str], None] | None = None,
              include_deleted: bool = False) -> t.Iterator[BackupSet]:
    """Every dated folder of ``job``, one at a time, from one paginated listing: a set is yielded whole as soon
    as the listing has moved past it, so memory holds one set's objects, not the job's.

    A set that has a deletion record is gone: it is left out, unless ``include_deleted`` (retention, which
    finishes deleting it), and then has ``deletion`` set.

    Both backends list a folder's keys together (S3 in key order, the filesystem folder by folder); a dated
    folder that shows up again after another one is a listing this cannot trust and raises StorageError.
    ``others`` is called with every key under ``<job>/`` outside a dated folder but the deletion records.
    """
    prefix = job_prefix(job)
    deleted = deletions(backend, job)

    def finish(backup_set: BackupSet) -> bool:
        backup_set.deletion = deleted_by(backup_set, deleted.get(backup_set.date, []))
        return include_deleted or backup_set.deletion is None

    current: BackupSet | None = None
    done: set[str] = set()
    for obj in backend.list(prefix):
        folder, _sep, rest = obj.key[len(prefix):].partition("/")
        try:
            valid = bool(rest) and bool(parse_date(folder))
        except LayoutError:
            valid = False
        if not valid:
            if others is not None and folder + "/" != DELETIONS:
                others(obj.key)
            continue
        if current is not None and current.date != folder:
            done.add(current.date)
            if finish(current):
                yield current
            current = None
        if current is None:
            if folder in done:
                raise StorageError("the listing of %s returned the keys of %s%s/ apart from each other" % (
                    prefix, prefix, folder))
            current = BackupSet(job, folder)
        current.add(obj)
    if current is not None and finish(current):
        yield current


def list_sets(backend: t.Any, job: str) -> tuple[dict[str, BackupSet], list[str]]:
    """Every dated folder of ``job`` that is not gone, from one paginated listing: ({date: BackupSet}, other keys)."""
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


def load_set(backend: t.Any, job: str, set_date: str, check_deleted: bool = True) -> BackupSet:
    """One set from a listing of its own folder, and of the job's deletion records (``deletion`` is set when the
    set is gone) unless not ``check_deleted`` (a writer of the set's view, which needs its records only)."""
    backup_set = BackupSet(job, set_date)
    for obj in backend.list(backup_set.prefix):
        backup_set.add(obj)
    if check_deleted:
        backup_set.deletion = deleted_by(backup_set, deletions(backend, job).get(set_date, []))
    return backup_set
