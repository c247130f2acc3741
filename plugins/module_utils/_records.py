# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The read model of a backup set: its records, the only facts.

Every fact about a set is an object written once (``backend.write(..., overwrite=False)``) and never changed:
run records (``runs/``), verification records (``verifications/``) and drill records (``drills/``); see
``_sets.py`` for their names. :func:`read_set` reads them; every decision (restore's choice of set and items,
verification, health, the report, metrics, the catalog) is made on the :class:`SetRecords` it returns, never on
``manifest.json``, which is a view derived from them for people (``_manifest.write_view``).

A set written by an older release (manifest schema 1 or 2) has its verifications and drills in its
``manifest.json`` only: they are read from it (or from ``legacy/manifest.json``, where the view writer keeps that
file unchanged before it replaces it) as legacy records, read-only. Its run records are the same as today's.
"""

from __future__ import annotations

import json
import typing as t
import uuid

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import ArtifactKey, format_timestamp, iso
from ansible_collections.corebackup.backup.plugins.module_utils._schema import (
    DRILL_RECORD_SCHEMA,
    DRILL_SCHEMA,
    RUN_SCHEMA,
    SCHEMA_VERSION,
    VIEWS_SINCE,
    VERIFICATION_RECORD_SCHEMA,
    VIEW_OMITS,
    schema_errors,
    schema_for,
)
from ansible_collections.corebackup.backup.plugins.module_utils._sets import (
    DRILLS,
    LEGACY_MANIFEST,
    MANIFEST,
    VERIFICATIONS,
    BackupSet,
    set_status,
    source_id,
)
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError


class RecordError(BackupError):
    """A record cannot be read, is invalid, or cannot be written."""


class RecordNotWritten(RecordError):
    """The store refused a new record (a credential that may only read, a full disk): what the record would say
    was found all the same, and is returned; only the record is missing."""


def _load(backend: t.Any, key: str) -> t.Any:
    try:
        return json.loads(backend.read_bytes(key).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError("%s is not valid JSON: %s" % (key, exc)) from None
    except StorageError as exc:
        raise RecordError(str(exc)) from None


def dumps(document: t.Any) -> bytes:
    """A record or view as stored: compact JSON, sorted keys, a final newline (``jq .`` shows it indented). A run
    record lists every artifact of the run with its metadata, every day: a fifth of its bytes were indentation."""
    return (json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def record_key(backup_set_prefix: str, folder: str, when: t.Any, result: str) -> str:
    """A new record's key: ``<set>/<folder><when>_<random id>.<result>.json``; two writers never collide."""
    return "%s%s%s_%s.%s.json" % (backup_set_prefix, folder, format_timestamp(when), uuid.uuid4().hex, result)


class SetRecords:
    """What the records of one set say (see :func:`read_set`)."""

    def __init__(self, backup_set: BackupSet):
        self.backup_set = backup_set
        self.job = backup_set.job
        self.date = backup_set.date
        self.runs: list[dict] = []  # full run records, oldest first
        self.verifications: list[dict] = []  # verification records, oldest first (legacy ones marked "legacy")
        self.drills: list[dict] = []  # drill records, oldest first
        self.problems: list[str] = []  # unreadable or invalid records, named
        self.legacy_verified_at: str | None = None  # the verified_at of a schema 1/2 manifest

    @property
    def status(self) -> str:
        return set_status(self.runs)

    def artifacts(self) -> dict[str, dict]:
        """Every artifact the set's runs recorded, by key (a later run's record of a key wins)."""
        found = {}
        for run in self.runs:
            for artifact in run["artifacts"]:
                found[artifact["key"]] = artifact
        return found

    def objects(self) -> dict[str, dict]:
        """Every object the set needs, by key: its artifacts, and the objects they require (the earlier bundles of a
        chain), each with ``key``, ``size`` and ``sha256``. What a set holds, verification reads and retention keeps."""
        found = {}
        for key, artifact in self.artifacts().items():
            for required in artifact.get("requires") or []:
                found.setdefault(required["key"], dict(required))
            found[key] = artifact
        return found

    def items(self) -> dict:
        """{name: {name, type, key, artifact, source}} from the set's runs, later runs winning: what a restore of
        the set reads, one artifact per item (carried artifacts included)."""
        found = {}
        for run in self.runs:
            artifacts = {a["key"]: a for a in run["artifacts"]}
            entries = run.get("entries") or [{"name": ArtifactKey.parse(k).name, "key": k, "status": "backed_up"}
                                             for k in artifacts]
            for entry in entries:
                if entry.get("key") in artifacts:
                    found[entry["name"]] = {"name": entry["name"], "type": run["source"]["type"], "key": entry["key"],
                                            "artifact": artifacts[entry["key"]], "source": run["source"]}
        return found

    def sizes(self) -> dict:
        """``items``, ``logical_size`` (bytes of the artifact of each item, carried ones included) and
        ``new_size`` (the bytes of those this set stored from the source, not carried)."""
        artifacts = [item["artifact"] for item in self.items().values()]
        return {"items": len(artifacts), "logical_size": sum(a["size"] for a in artifacts),
                "new_size": sum(a["size"] for a in artifacts if not a.get("carried_from"))}

    def checks(self) -> dict[str, dict]:
        """{artifact key: {verified_at, status}}: the newest verification of each artifact."""
        newest: dict[str, dict] = {}
        for record in self.verifications:
            for key, outcome in record["artifacts"].items():
                newest[key] = {"verified_at": record["when"], "status": outcome["status"]}
        return newest

    def last_verification(self) -> dict | None:
        """The newest re-reading of the set's artifacts: ``when`` (its newest check), ``checked`` (artifacts with a
        check), ``bad`` (those whose newest check is not ok), ``artifacts``; None when never."""
        checks = self.checks()
        if not checks:
            return None
        return {"when": max(check["verified_at"] for check in checks.values()), "checked": len(checks),
                "bad": sum(1 for check in checks.values() if check["status"] != "ok"),
                "artifacts": len(self.artifacts())}

    def last_drill(self) -> dict | None:
        return self.drills[-1] if self.drills else None

    @property
    def verified_at(self) -> str | None:
        """When the whole set was last read back and found intact: a whole verification that was ok, or a drill
        of every item that passed; None when never, or when a later check found a problem."""
        verified = self.legacy_verified_at
        events = [(v["when"], 0, v) for v in self.verifications if not v.get("legacy")]
        events += [(d["when"], 1, d) for d in self.drills if not d.get("legacy")]
        artifacts = set(self.artifacts())
        items = len(self.items())
        for when, kind, record in sorted(events, key=lambda e: (e[0], e[1])):
            if record["result"] not in ("ok",):
                verified = None
            elif kind == 0 and record.get("whole") and set(record["artifacts"]) >= artifacts:
                verified = when
            elif kind == 1 and len(record["items"]) >= items:
                verified = when
        return verified

    def view(self) -> dict:
        """``manifest.json`` of the current schema, derived from the records: each run as its record holds it, its
        artifacts without what the view leaves to the record (``VIEW_OMITS``)."""
        drills = [{k: d[k] for k in DRILL_SCHEMA["properties"] if k in d} for d in self.drills]
        runs = [dict(run, artifacts=[{k: v for k, v in artifact.items() if k not in VIEW_OMITS}
                                     for artifact in run["artifacts"]]) for run in self.runs]
        manifest = {"schema_version": SCHEMA_VERSION, "job": self.job, "set_date": self.date, "status": self.status,
                    "runs": runs, "verified_at": self.verified_at, "verification": self.checks()}
        if drills:
            manifest["restore_drills"] = drills
        return manifest


def _valid(backend: t.Any, key: str, schema: dict, problems: list[str]) -> dict | None:
    try:
        document = _load(backend, key)
    except RecordError as exc:
        problems.append(str(exc))
        return None
    errors = schema_errors(document, schema, key)
    if errors:
        problems.append("; ".join(errors[:5]))
        return None
    return document


def _legacy(backend: t.Any, backup_set: BackupSet, records: SetRecords) -> dict | None:
    """The manifest.json of a release before records (schema 1 or 2), when the set has one."""
    key = backup_set.prefix + (LEGACY_MANIFEST if backup_set.has_legacy_manifest else MANIFEST)
    if not (backup_set.has_legacy_manifest or backup_set.has_manifest):
        return None
    try:
        document = _load(backend, key)
    except RecordError as exc:
        if backup_set.has_legacy_manifest:
            records.problems.append(str(exc))
        return None  # a damaged view is no problem: nothing is decided on it
    version = document.get("schema_version") if isinstance(document, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version >= VIEWS_SINCE:
        return None
    errors = schema_errors(document, schema_for(document))
    if errors or document.get("job") != backup_set.job or document.get("set_date") != backup_set.date:
        records.problems.append("%s (schema %d) is not readable as a manifest of this set: %s" % (
            key, version, "; ".join(errors[:5]) or "it belongs to %s/%s" % (document.get("job"), document.get("set_date"))))
        return None
    return document


def read_set(backend: t.Any, backup_set: BackupSet, need_runs: bool = True) -> SetRecords:
    """The records of ``backup_set`` (from its listing), read and validated.

    Raises RecordError when the set has no readable run record (``need_runs``): such a set holds nothing a
    reader can use.
    """
    records = SetRecords(backup_set)
    known = set()
    for parsed in sorted(backup_set.runs, key=lambda p: (p["finished"], p["run_id"])):
        run = _valid(backend, parsed["key"], RUN_SCHEMA, records.problems)
        if run is not None:
            records.runs.append(run)
            known.add((run["run_id"], source_id(run["source"])))
    for parsed in sorted(backup_set.verifications, key=lambda p: (p["when"], p["id"])):
        record = _valid(backend, parsed["key"], VERIFICATION_RECORD_SCHEMA, records.problems)
        if record is not None:
            records.verifications.append(record)
    for parsed in sorted(backup_set.drills, key=lambda p: (p["when"], p["id"])):
        record = _valid(backend, parsed["key"], DRILL_RECORD_SCHEMA, records.problems)
        if record is not None:
            records.drills.append(record)
    records.problems.extend("%s is not a record of this collection" % key for key in backup_set.bad_names)
    legacy = _legacy(backend, backup_set, records)
    if legacy is not None:
        _add_legacy(records, legacy, known)
    records.runs.sort(key=lambda run: (run["finished"], run["run_id"]))
    if need_runs and not records.runs:
        raise RecordError("backup set %s has no readable run record: %s" % (
            backup_set.prefix, "; ".join(records.problems) or "none recorded"))
    return records


def read_runs(backend: t.Any, backup_set: BackupSet) -> tuple[list[dict], list[str]]:
    """The set's run records only (no legacy manifest, no verification or drill), read and validated: (runs oldest
    first, problems). What retention needs of every set: the items and shared objects the set's runs name (a
    manifest of an older release names only artifacts in the set's own folder)."""
    problems: list[str] = []
    runs = []
    for parsed in sorted(backup_set.runs, key=lambda p: (p["finished"], p["run_id"])):
        run = _valid(backend, parsed["key"], RUN_SCHEMA, problems)
        if run is not None:
            runs.append(run)
    return runs, problems


def _add_legacy(records: SetRecords, legacy: dict, known: set) -> None:
    """A schema 1/2 manifest's runs (those without their own record), verifications and drills, as legacy
    records, older than any record of this release."""
    for run in legacy["runs"]:
        if (run["run_id"], source_id(run["source"])) not in known:
            records.runs.append(run)
    by_time: dict[str, dict] = {}
    for key, check in sorted((legacy.get("verification") or {}).items()):
        record = by_time.setdefault(check["verified_at"], {
            "schema_version": 1, "job": records.job, "set_date": records.date, "when": check["verified_at"],
            "result": "ok", "artifacts": {}, "tools": {}, "legacy": True})
        record["artifacts"][key] = {"status": check["status"]}
        if check["status"] != "ok":
            record["result"] = "bad"
    records.verifications[:0] = [by_time[when] for when in sorted(by_time)]
    records.drills[:0] = [dict(drill, legacy=True) for drill in legacy.get("restore_drills") or []]
    records.legacy_verified_at = legacy.get("verified_at")


def not_recorded(what: str, exc: Exception) -> str:
    """The warning of a verification or drill whose record the store refused: its result stands, unrecorded."""
    return ("the %s was done and its result is returned, but it was not recorded (%s): the report, metrics and "
            "backup_health will not see it. A credential that may only read cannot record; docs/iam/verify.json and "
            "restore.json let it create these records, and nothing else" % (what, exc))


def write_verification(backend: t.Any, backup_set: BackupSet, when: t.Any, outcomes: list[dict], whole: bool,
                       tools: dict) -> tuple[str, dict]:
    """Write one verification record for ``outcomes`` (verify_artifact results) of the set; (key, record)."""
    record = {"schema_version": 1, "job": backup_set.job, "set_date": backup_set.date, "when": iso(when),
              "result": "ok" if all(o["status"] == "ok" for o in outcomes) else "bad", "whole": whole,
              "artifacts": {o["key"]: {"status": o["status"], "size": o.get("size"), "sha256": o.get("sha256"),
                                       "detail": o.get("detail") or ""}
                            for o in outcomes},
              "tools": tools}
    return _write(backend, backup_set, VERIFICATIONS, when, record, VERIFICATION_RECORD_SCHEMA)


def write_drill(backend: t.Any, backup_set: BackupSet, when: t.Any, drill: dict) -> tuple[str, dict]:
    """Write one drill record (the drill dict of backup_restore); (key, record)."""
    record = dict(drill, schema_version=1, job=backup_set.job, set_date=backup_set.date)
    return _write(backend, backup_set, DRILLS, when, record, DRILL_RECORD_SCHEMA)


def _write(backend: t.Any, backup_set: BackupSet, folder: str, when: t.Any, record: dict,
           schema: dict) -> tuple[str, dict]:
    errors = schema_errors(record, schema, "record")
    if errors:
        raise RecordError("refusing to write a record that breaks its schema: %s" % "; ".join(errors[:5]))
    key = record_key(backup_set.prefix, folder, when, record["result"])
    try:
        backend.write(key, [dumps(record)], overwrite=False)
    except StorageError as exc:
        raise RecordNotWritten("cannot write %s: %s" % (key, exc)) from None
    return key, record
