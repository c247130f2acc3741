# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""What a store says of the health of a job, for monitoring: from one listing of the job and the records of
its newest usable sets (success or partial, read through ``_records.read_set``), whoever wrote them (the backup
role, verify.yml, drills on a restore host).

- ``last_success``: the newest run recorded ``success`` or ``partial`` (from the run records' names alone);
- ``logical_size``: the bytes a restore of the newest usable set reads, one artifact per item, carried
  artifacts included (not only what its last run wrote);
- ``median_logical_size``: the median of the same of the usable sets before it (up to ``window - 1`` of them);
- ``last_verified``: the newest time the job's artifacts were read back and found intact: a set's
  ``verified_at`` (a whole verification, or a drill that passed), or a verification (sampled or not) every
  artifact of the job it read was ok;
- ``last_drill_success``: the newest drill that passed;
- ``bad_artifacts``: artifacts whose latest verification found them missing, truncated or corrupted.

The last three look at the newest ``window`` usable sets only: a caller that keeps what it saw before (the
metrics textfile) keeps older times.
"""

from __future__ import annotations

import collections
import statistics
import typing as t

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import ArtifactKey, iso, parse_iso, validate_job
from ansible_collections.corebackup.backup.plugins.module_utils._records import read_set
from ansible_collections.corebackup.backup.plugins.module_utils._sets import iter_sets

USABLE = ("success", "partial")
DEFAULT_WINDOW = 8


def logical_size(manifest: dict) -> int:
    """Bytes a restore of the whole set reads: the artifact of each item, carried ones included."""
    found = {}
    for run in sorted(manifest["runs"], key=lambda r: (r["finished"], r["run_id"])):
        artifacts = {a["key"]: a for a in run["artifacts"]}
        entries = run.get("entries") or [{"name": ArtifactKey.parse(key).name, "key": key} for key in artifacts]
        for entry in entries:
            if entry.get("key") in artifacts:
                found[entry["name"]] = artifacts[entry["key"]]["size"]
    return sum(found.values())


def verified_times(manifest: dict) -> tuple[dict[str, bool], int]:
    """({time: every artifact read then was ok}, artifacts whose latest verification was not ok) of one set.

    A verification stamps every artifact it reads with one time; a whole one also sets the set's ``verified_at``,
    as a drill that passes does."""
    times: dict[str, bool] = {}
    bad = 0
    for record in (manifest.get("verification") or {}).values():
        ok = record.get("status") == "ok"
        times[record["verified_at"]] = times.get(record["verified_at"], True) and ok
        bad += not ok
    if manifest.get("verified_at"):
        times[manifest["verified_at"]] = times.get(manifest["verified_at"], True)
    return times, bad


def summarise(job: str, last_success: str | None, manifests: list[dict]) -> dict:
    """The health of ``job`` from its newest usable sets' manifests, newest first (pure)."""
    sizes = [logical_size(manifest) for manifest in manifests]
    times: dict[str, bool] = {}
    bad = 0
    drills = []
    for manifest in manifests:
        found, bad_here = verified_times(manifest)
        for when, ok in found.items():
            times[when] = times.get(when, True) and ok
        bad += bad_here
        drills.extend(drill["when"] for drill in manifest.get("restore_drills") or [] if drill["result"] == "ok")
    verified = [when for when, ok in times.items() if ok]
    return {
        "job": job,
        "last_success": last_success,
        "newest_set": manifests[0]["set_date"] if manifests else None,
        "logical_size": sizes[0] if sizes else None,
        "median_logical_size": statistics.median(sizes[1:]) if len(sizes) > 1 else None,
        "median_sets": max(len(sizes) - 1, 0),
        "last_verified": _newest(verified),
        "last_drill_success": _newest(drills),
        "bad_artifacts": bad,
        "problems": [],
        "error": None,
    }


def _newest(times: t.Iterable[str]) -> str | None:
    parsed = [parse_iso(when, "time") for when in times]
    return iso(max(parsed)) if parsed else None


def job_health(backend: t.Any, job: str, window: int = DEFAULT_WINDOW) -> dict:
    """The health of ``job`` in the store: one listing of ``<job>/``, then the manifests of its newest ``window``
    usable sets. A store that cannot be read is said in ``error``; a set whose manifest cannot be read in
    ``problems`` (the others still count)."""
    validate_job(job)
    if window < 1:
        raise BackupError("sets must be 1 or more, got %d" % window)
    newest_success = None
    recent: collections.deque = collections.deque(maxlen=window)
    for backup_set in iter_sets(backend, job):
        for run in backup_set.runs:
            if run["status"] in USABLE and (newest_success is None or run["finished"] > newest_success):
                newest_success = run["finished"]
        if backup_set.status in USABLE:
            recent.append(backup_set)
    manifests, problems = [], []
    for backup_set in reversed(recent):
        try:
            manifest = read_set(backend, backup_set).view()  # derived from the records, never read from the store
        except BackupError as exc:
            problems.append(str(exc))
            continue
        manifests.append(manifest)
    health = summarise(job, iso(newest_success) if newest_success else None, manifests)
    health["problems"] = problems
    return health
