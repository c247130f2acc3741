# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""A run's record, from a service module's result: what the runner records of its own run (under the lease
it holds) and what ``backup_manifest`` records of a run made elsewhere.

The result contract every service module keeps is checked by :func:`contract_errors`; :func:`build_run`
turns a result (and explicit values) into a run record of the manifest schema; :func:`record_result`
checks that the set holds what the run says and records it, once: a run whose id is already in the set
is not recorded again.
"""

from __future__ import annotations

import datetime
import json
import math
import typing as t

from ansible_collections.corebackup.backup.plugins.module_utils._common import COLLECTION_VERSION
from ansible_collections.corebackup.backup.plugins.module_utils._layout import (
    ArtifactKey,
    LayoutError,
    format_date,
    iso,
    objects_prefix,
    parse_iso,
    set_prefix,
)
from ansible_collections.corebackup.backup.plugins.module_utils._manifest import (
    ManifestError,
    clean_run_id,
    new_run_id,
    normalize_artifact,
    record_run,
    refresh_view,
    run_key,
    tool_versions,
)
from ansible_collections.corebackup.backup.plugins.module_utils._schema import (
    ITEM_STATUSES,
    PRESENT_STATUSES,
    RUN_SCHEMA,
    STATUSES,
    schema_errors,
)
from ansible_collections.corebackup.backup.plugins.module_utils._secrets import scrub
from ansible_collections.corebackup.backup.plugins.module_utils._sets import MANIFEST, load_set, set_status, source_id
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError

CHECK_MODE_STATUSES = ("would_back_up", "would_carry")
ENTRY_KEYS = ("name", "status", "key", "size", "sha256", "error")


def contract_errors(result: dict) -> list[str]:
    """Where a registered result breaks the service result contract (empty when it keeps it)."""
    problems = []
    for name, kind in (("job", str), ("source", dict), ("status", str), ("entries", list), ("artifacts", list),
                       ("totals", dict)):
        if not isinstance(result.get(name), kind):
            problems.append("%s is missing or not a %s" % (name, kind.__name__))
    if problems:
        return problems
    if result["status"] not in STATUSES:
        problems.append("status must be one of %s" % ", ".join(STATUSES))
    if not result["source"].get("type") or not result["source"].get("name"):
        problems.append("source needs a type and a name")
    for index, entry in enumerate(result["entries"]):
        if not isinstance(entry, dict) or any(key not in entry for key in ENTRY_KEYS):
            problems.append("entries[%d] needs %s" % (index, ", ".join(ENTRY_KEYS)))
        elif entry["status"] not in ITEM_STATUSES + CHECK_MODE_STATUSES:
            problems.append("entries[%d].status %r is not one of %s" % (index, entry["status"], ", ".join(ITEM_STATUSES)))
    return problems


def _counts(values, strict):
    """Whole-number counts; ``strict`` refuses anything else, otherwise it is left out."""
    counts = {}
    for name, value in (values or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
            if strict:
                raise ManifestError("counts.%s must be a whole number, got %r" % (name, value))
            continue
        counts[str(name)] = int(value)
    return counts


def read_result(result):
    """What a service module's registered result says, by the result contract only:
    (entries, errors, status). A module that failed before its first item says only C(msg)."""
    if not result:
        return [], [], None
    if "entries" not in result and result.get("failed"):
        return [], [str(result.get("msg") or "the module failed")], "failed"
    problems = contract_errors(result)
    if problems:
        raise ManifestError("result is not the registered result of a service module: %s" % "; ".join(problems))
    entries = [{"name": str(entry["name"]), "status": entry["status"], "key": entry["key"] or None,
                "error": str(entry["error"]) if entry["error"] else None} for entry in result["entries"]]
    if any(entry["status"] not in ITEM_STATUSES for entry in entries):
        raise ManifestError("result comes from a run in check mode: nothing was stored, nothing to record")
    errors = ["%s: %s" % (entry["name"], entry["error"] or "failed") for entry in entries if entry["status"] == "failed"]
    if result.get("failed") and result.get("msg") and not errors:
        errors.append(str(result["msg"]))
    return entries, errors, result["status"]


def incomplete(run, listed):
    """Why the set would not hold what the run says it holds: every item reported present needs its
    artifact among the run's artifacts, and every artifact must be stored as recorded.

    ``listed``: {key: size} of the set's objects and of the job's shared objects the run names.
    """
    recorded = {artifact["key"] for artifact in run["artifacts"]}
    problems = []
    for entry in run.get("entries", []):
        if entry["status"] in PRESENT_STATUSES and entry["key"] not in recorded:
            problems.append("%s: reported %s, but the run holds no artifact of it%s" % (
                entry["name"], entry["status"], " (%s)" % entry["key"] if entry["key"] else ""))
    required = {r["key"]: r for a in run["artifacts"] for r in a.get("requires") or []}
    for artifact in run["artifacts"] + [r for k, r in sorted(required.items())]:
        key = artifact["key"]
        if key not in listed:
            problems.append("%s: not in the store" % key)
        elif listed[key] != artifact["size"]:
            problems.append("%s: stored with %d bytes, recorded with %d" % (key, listed[key], artifact["size"]))
    return problems


def build_run(params, now):
    """The run record of O(state=present), from the explicit options and O(result)."""
    result = params["result"] or {}
    secrets = params["secrets"] or []
    raw_artifacts = params["artifacts"] if params["artifacts"] is not None else result.get("artifacts") or []
    artifacts = [normalize_artifact(record, index) for index, record in enumerate(raw_artifacts)]
    entries, result_errors, result_status = read_result(result)
    errors = params["errors"] if params["errors"] is not None else result_errors
    warnings = params["warnings"] if params["warnings"] is not None else [str(w) for w in result.get("warnings") or []]
    status = params["status"] or result_status or "success"
    source = params["source"] or result.get("source")
    if not isinstance(source, dict) or not source.get("type") or not source.get("name"):
        raise ManifestError("source is required (a dict with type and name), unless result holds one")
    finished = parse_iso(params["finished"], "finished") if params["finished"] else now
    if params["started"]:
        started = parse_iso(params["started"], "started")
    else:
        seconds = (result.get("totals") or {}).get("seconds") or 0
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < 10 ** 7:
            seconds = 0  # not a duration: started is then unknown and recorded as finished
        started = finished - datetime.timedelta(seconds=round(seconds))
    if started > finished:
        raise ManifestError("started (%s) is after finished (%s)" % (iso(started), iso(finished)))
    tools = tool_versions(COLLECTION_VERSION)
    run = {
        "run_id": clean_run_id(params["run_id"] or (result.get("run") or {}).get("run_id") or new_run_id()),
        "started": iso(started),
        "finished": iso(finished),
        "duration": (finished - started).total_seconds(),
        "status": status,
        "source": {str(k): scrub(v, secrets) if isinstance(v, str) else v for k, v in source.items()},
        "artifacts": artifacts,
        "entries": [dict(entry, error=scrub(entry["error"], secrets) if entry["error"] else None) for entry in entries],
        "counts": _counts(params["counts"], True) if params["counts"] is not None
        else _counts(result.get("totals"), False),
        "warnings": [scrub(w, secrets) for w in warnings],
        "errors": [scrub(e, secrets) for e in errors],
        "tools": tools,
    }
    problems = schema_errors(run, RUN_SCHEMA, "run")
    if problems:
        raise ManifestError("; ".join(problems))
    return run


def set_date_of(job: str, run: dict) -> str:
    """The set the run's artifacts are in (a run that crossed midnight wrote them into the day it started): the
    set of the artifacts an older release stored in a set's folder, else the day the run started."""
    dates = set()
    for artifact in run["artifacts"]:
        try:
            parsed = ArtifactKey.parse(artifact["key"])
        except LayoutError:
            continue
        if parsed.job == job and not parsed.shared:
            dates.add(format_date(parsed.date))
    if len(dates) > 1:
        raise ManifestError("the artifacts lie in several backup sets (%s): record them one set at a time with set_date"
                            % ", ".join(sorted(dates)))
    return dates.pop() if dates else format_date(parse_iso(run["started"], "started"))


# Below this many shared objects, a run checks each with a HEAD; above, one listing of <job>/objects/ is cheaper.
STAT_AT_MOST = 20


def stored_sizes(backend: t.Any, prefix: str, keys: set) -> dict:
    """{key: size} of those of ``keys`` (below ``prefix``) that are stored."""
    if len(keys) <= STAT_AT_MOST:
        found = {key: backend.stat(key) for key in sorted(keys)}
        return {key: obj.size for key, obj in found.items() if obj is not None}
    return {obj.key: obj.size for obj in backend.list(prefix) if obj.key in keys}


def record_result(backend: t.Any, job: str, run: dict, set_date: str | None = None, secrets: t.Iterable[str] = (),
                  check_mode: bool = False) -> dict:
    """Record ``run`` (from :func:`build_run`) in its set, once: {changed, run, set_status, manifest_key, run_key,
    view_warnings}.

    The set must hold every artifact the run names as recorded (else the run is recorded with errors, and not as
    a success); a run whose id the set already holds is not recorded again. The view (``manifest.json``) is
    rewritten after the record, best effort: ``view_warnings`` says when it could not be.
    """
    set_date = set_date or set_date_of(job, run)
    prefix = set_prefix(job, set_date)
    shared = objects_prefix(job)
    outside = [key for a in run["artifacts"] for key in [a["key"]] + [r["key"] for r in a.get("requires") or []]
               if not key.startswith((prefix, shared))]
    if outside:
        # Retention deletes whole set folders: a set must not claim artifacts that live in another one.
        raise ManifestError("artifacts must lie in %s or in the backup set %s they are recorded into; not there: %s" % (
            shared, prefix, ", ".join(outside[:5])))
    backup_set = load_set(backend, job, set_date)
    listed = {obj.key: obj.size for obj in backup_set.objects}
    needed = {a["key"] for a in run["artifacts"]} | {r["key"] for a in run["artifacts"] for r in a.get("requires") or []}
    listed.update(stored_sizes(backend, shared, {key for key in needed if key.startswith(shared)}))
    problems = incomplete(run, listed)
    if problems:
        # A set that lacks an artifact the run relies on is never recorded as a success.
        run["errors"] += [scrub(problem, list(secrets)) for problem in problems]
        if run["status"] == "success":
            stored = any(listed.get(a["key"]) == a["size"] for a in run["artifacts"])
            run["status"] = "partial" if stored else "failed"
    same = [p for p in backup_set.runs if p["run_id"] == run["run_id"] and p["source"] == source_id(run["source"])]
    if same:
        return _recorded_already(backend, job, set_date, run, same[0], check_mode)
    runs = [{"source": p["source"], "finished": p["finished"], "run_id": p["run_id"], "status": p["status"]}
            for p in backup_set.runs] + [run]
    if check_mode:
        return {"changed": True, "run": run, "set_status": set_status(runs), "manifest_key": prefix + MANIFEST,
                "run_key": run_key(set_date, job, run), "view_warnings": []}
    key, warnings = record_run(backend, job, set_date, run)
    return {"changed": True, "run": run, "set_status": set_status(runs), "manifest_key": prefix + MANIFEST,
            "run_key": key, "view_warnings": warnings}


def _recorded_already(backend: t.Any, job: str, set_date: str, run: dict, parsed: dict, check_mode: bool) -> dict:
    """A retried record changes nothing: the run's record is there (the view is written again: its writer may have
    stopped before it)."""
    prefix = set_prefix(job, set_date)
    backup_set = load_set(backend, job, set_date)
    try:
        recorded = json.loads(backend.read_bytes(parsed["key"]).decode("utf-8"))
    except (StorageError, ValueError, UnicodeDecodeError) as exc:
        raise ManifestError("the run %s is recorded in %s, but its record cannot be read: %s" % (
            run["run_id"], parsed["key"], exc)) from None
    warnings = [] if check_mode else refresh_view(backend, job, set_date)  # the view may lack it (writer stopped)
    return {"changed": False, "run": recorded, "set_status": backup_set.status, "manifest_key": prefix + MANIFEST,
            "run_key": parsed["key"], "view_warnings": warnings}
