# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The manifest of a backup set.

A backup set is the folder ``<job>/<YYYY-MM-DD>/``. Every run recorded into it is stored twice:

* as its own object ``runs/<finished>_<run id>_<source>.<status>.json``, written once and never
  changed, so two writers can never lose each other's run, even on S3 where there are no locks;
  its name alone tells the set's status, so retention needs only a listing;
* merged with the other runs into ``manifest.json`` (with ``SHA256SUMS`` beside it), rewritten under
  a lock on the filesystem and with conditional writes (If-Match / If-None-Match) on S3. Readers
  also merge ``manifest.json`` with the run objects, so a run is seen even if its writer stopped
  between the two writes, or the S3 endpoint ignores conditional writes.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import typing as t
import uuid

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import ArtifactKey, format_timestamp, parse_iso, set_prefix
from ansible_collections.corebackup.backup.plugins.module_utils._schema import (
    ARTIFACT_SCHEMA,
    RUN_SCHEMA,
    SCHEMA_VERSION,
    schema_errors,
    schema_for,
)
from ansible_collections.corebackup.backup.plugins.module_utils._sets import (
    MANIFEST,
    RUNS,
    SUMS,
    BackupSet,
    load_set,
    set_status,
    source_id,
)
from ansible_collections.corebackup.backup.plugins.module_utils._storage import PreconditionFailed, StorageError, check_key


class ManifestError(BackupError):
    """A manifest or run record is invalid, unreadable or cannot be written."""


def new_run_id() -> str:
    return uuid.uuid4().hex


def clean_run_id(run_id: t.Any) -> str:
    text = re.sub(r"[^A-Za-z0-9-]+", "-", str(run_id)).strip("-")[:64]
    if not text:
        raise ManifestError("run_id %r has no letter or digit" % (run_id,))
    return text


def normalize_artifact(record: t.Any, index: int) -> dict:
    """An artifact record as the manifest keeps it; a clear error names what is missing."""
    if not isinstance(record, dict):
        raise ManifestError("artifacts[%d] must be a dict with key, size and sha256, got %r" % (index, record))
    missing = [name for name in ("key", "size", "sha256") if record.get(name) in (None, "")]
    if missing:
        raise ManifestError("artifacts[%d] has no %s" % (index, ", ".join(missing)))
    try:
        key = check_key(str(record["key"]))
    except StorageError as exc:
        raise ManifestError("artifacts[%d]: %s" % (index, exc)) from None
    artifact = {
        "key": key,
        "size": record["size"],
        "sha256": str(record["sha256"]).lower(),
        "compression": record.get("compression"),
        "encryption": record.get("encryption") or None,
        "created": str(record.get("created") or ""),
        "metadata": {str(k): str(v) for k, v in (record.get("metadata") or {}).items()},
    }
    if record.get("carried_from"):
        artifact["carried_from"] = str(record["carried_from"])
    if isinstance(record.get("contents"), dict) and record["contents"]:
        artifact["contents"] = record["contents"]
    try:
        artifact["size"] = int(artifact["size"])
    except (TypeError, ValueError):
        raise ManifestError("artifacts[%d].size %r is not a number of bytes" % (index, record["size"])) from None
    errors = schema_errors(artifact, ARTIFACT_SCHEMA, "artifacts[%d]" % index)
    if errors:
        raise ManifestError("; ".join(errors))
    return artifact


def run_key(set_date: str, job: str, run: dict) -> str:
    finished = format_timestamp(parse_iso(run["finished"], "finished"))
    source = source_id(run["source"])
    return "%s%s%s_%s_%s.%s.json" % (set_prefix(job, set_date), RUNS, finished, run["run_id"], source, run["status"])


def _load_json(backend: t.Any, key: str, raw: bytes | None = None) -> t.Any:
    try:
        return json.loads((backend.read_bytes(key) if raw is None else raw).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError("%s is not valid JSON: %s" % (key, exc)) from None
    except StorageError as exc:
        raise ManifestError(str(exc)) from None


def _dumps(document: t.Any) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=2) + "\n").encode("utf-8")


def empty_manifest(job: str, set_date: str) -> dict:
    return {"schema_version": SCHEMA_VERSION, "job": job, "set_date": set_date, "status": "failed", "runs": [],
            "verified_at": None, "verification": {}}


def read_manifest(backend: t.Any, backup_set: BackupSet, raw: bytes | None = None) -> tuple[dict, list[str]]:
    """The set's manifest merged with its run records, and the problems found on the way.

    ``raw`` is the content of ``manifest.json`` when the caller has read it already.
    Raises ManifestError when neither a valid ``manifest.json`` nor any valid run record exists.
    """
    problems: list[str] = []
    manifest = empty_manifest(backup_set.job, backup_set.date)
    manifest_ok = False
    if backup_set.has_manifest:
        key = backup_set.prefix + MANIFEST
        try:
            document = _load_json(backend, key, raw)
            errors = schema_errors(document, schema_for(document))
            if errors:
                raise ManifestError("%s does not follow the manifest schema: %s" % (key, "; ".join(errors[:5])))
            if document["job"] != backup_set.job or document["set_date"] != backup_set.date:
                raise ManifestError("%s belongs to %s/%s" % (key, document["job"], document["set_date"]))
            manifest = dict(document, schema_version=SCHEMA_VERSION)  # read as v1, written as the current version
            manifest_ok = True
        except ManifestError as exc:
            problems.append(str(exc))
    known = {(run["run_id"], source_id(run["source"])) for run in manifest["runs"]}
    for parsed in backup_set.runs:
        if (parsed["run_id"], parsed["source"]) in known:
            continue
        try:
            run = _load_json(backend, parsed["key"])
            errors = schema_errors(run, RUN_SCHEMA, parsed["key"])
            if errors:
                raise ManifestError("; ".join(errors[:5]))
        except ManifestError as exc:
            problems.append(str(exc))
            continue
        manifest["runs"].append(run)
        known.add((run["run_id"], source_id(run["source"])))
    problems.extend("%s is not a run record of this collection" % key for key in backup_set.bad_names)
    if not manifest["runs"]:
        raise ManifestError("backup set %s has no readable manifest: %s" % (
            backup_set.prefix, "; ".join(problems) or "no manifest.json and no run records"))
    if not manifest_ok and backup_set.has_manifest:
        problems.append("rebuilt from the run records")
    manifest["runs"].sort(key=lambda run: (run["finished"], run["run_id"]))
    manifest["status"] = set_status(manifest["runs"])
    return manifest, problems


def artifacts_of(manifest: dict) -> dict[str, dict]:
    """Every artifact the set's runs recorded, by key (a later run's record of a key wins)."""
    artifacts = {}
    for run in manifest["runs"]:
        for artifact in run["artifacts"]:
            artifacts[artifact["key"]] = artifact
    return artifacts


def items_of(manifest: dict) -> dict:
    """{name: {name, type, key, artifact, source}} from the set's runs, later runs winning: what a restore of the
    set reads, one artifact per item (carried artifacts included)."""
    found = {}
    for run in sorted(manifest["runs"], key=lambda r: (r["finished"], r["run_id"])):
        artifacts = {a["key"]: a for a in run["artifacts"]}
        entries = run.get("entries") or [{"name": ArtifactKey.parse(k).name, "key": k, "status": "backed_up"}
                                         for k in artifacts]
        for entry in entries:
            if entry.get("key") in artifacts:
                found[entry["name"]] = {"name": entry["name"], "type": run["source"]["type"], "key": entry["key"],
                                        "artifact": artifacts[entry["key"]], "source": run["source"]}
    return found


def sizes_of(manifest: dict) -> dict:
    """What a restore of the set reads: ``items``, ``logical_size`` (bytes of the artifact of each item, carried
    ones included) and ``new_size`` (the bytes of those that this set stored from the source, not carried)."""
    artifacts = [item["artifact"] for item in items_of(manifest).values()]
    return {"items": len(artifacts), "logical_size": sum(a["size"] for a in artifacts),
            "new_size": sum(a["size"] for a in artifacts if not a.get("carried_from"))}


def last_verification(manifest: dict) -> dict | None:
    """The newest re-reading of the set's artifacts (O(state=verified)): ``when`` (its newest record), ``checked``
    (artifacts with a record), ``bad`` (those whose newest record is not ok), ``artifacts``; None when never."""
    records = manifest.get("verification") or {}
    if not records:
        return None
    return {"when": max(record["verified_at"] for record in records.values()), "checked": len(records),
            "bad": sum(1 for record in records.values() if record["status"] != "ok"),
            "artifacts": len(artifacts_of(manifest))}


def sha256sums(manifest: dict, prefix: str) -> bytes:
    """``SHA256SUMS`` in the format of sha256sum, paths relative to the set folder."""
    lines = []
    for key, artifact in sorted(artifacts_of(manifest).items()):
        path = posixpath.relpath(key, prefix.rstrip("/"))
        lines.append("%s  %s\n" % (artifact["sha256"], path))
    return "".join(lines).encode("utf-8")


PUBLISH_ATTEMPTS = 20


def record_run(backend: t.Any, job: str, set_date: str, run: dict) -> tuple[str, dict]:
    """Store ``run`` as its own record and merge it into the set's manifest; returns (run key, manifest)."""
    errors = schema_errors(run, RUN_SCHEMA, "run")
    if errors:
        raise ManifestError("; ".join(errors))
    key = run_key(set_date, job, run)
    with backend.lock(set_prefix(job, set_date) + MANIFEST):
        backend.write(key, [_dumps(run)], overwrite=False)
        return key, publish(backend, job, set_date)


def update_manifest(backend: t.Any, job: str, set_date: str, update: t.Callable[[dict], None]) -> dict:
    """Apply ``update`` to the set's manifest and publish it."""
    with backend.lock(set_prefix(job, set_date) + MANIFEST):
        return publish(backend, job, set_date, update)


def publish(backend: t.Any, job: str, set_date: str, update: t.Callable[[dict], None] | None = None) -> dict:
    """Merge the set's run records into ``manifest.json`` (applying ``update``), then ``SHA256SUMS`` to match.

    Writers are serialised by the set's lock where the backend has locks (filesystem). Elsewhere (S3)
    ``manifest.json`` is replaced only if it is still the version that was read (a conditional write);
    a writer that loses the race reads again and merges again, so no run and no update is lost.
    """
    prefix = set_prefix(job, set_date)
    for _attempt in range(PUBLISH_ATTEMPTS):
        current = backend.stat(prefix + MANIFEST)
        raw = _keep_what_cannot_be_merged(backend, prefix) if current is not None else None
        manifest, _problems = read_manifest(backend, load_set(backend, job, set_date), raw)
        if update is not None:
            update(manifest)
        errors = schema_errors(manifest)
        if errors:
            raise ManifestError("refusing to write a manifest that breaks its schema: %s" % "; ".join(errors[:5]))
        try:
            backend.write(prefix + MANIFEST, [_dumps(manifest)], overwrite=current is not None,
                          if_match=current.etag if current is not None else None)
        except PreconditionFailed:
            continue
        _publish_sums(backend, prefix)
        return manifest
    raise ManifestError("%s%s kept changing under concurrent writers; gave up after %d attempts" % (
        prefix, MANIFEST, PUBLISH_ATTEMPTS))


def _keep_what_cannot_be_merged(backend: t.Any, prefix: str) -> bytes:
    """Before ``manifest.json`` is rebuilt: refuse one from a newer schema, keep a copy of an unreadable one.

    Returns its content, for the merge.
    """
    try:
        raw = backend.read_bytes(prefix + MANIFEST)
    except StorageError as exc:
        raise ManifestError(str(exc)) from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        document = None
    version = document.get("schema_version") if isinstance(document, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ManifestError("%s%s has schema_version %d, newer than the %d this collection writes: refusing to "
                            "rewrite it; upgrade corebackup.backup" % (prefix, MANIFEST, version, SCHEMA_VERSION))
    if document is None or schema_errors(document, schema_for(document)):
        copy_key = "%s%s.unreadable-%s" % (prefix, MANIFEST, hashlib.sha256(raw).hexdigest()[:16])
        try:
            backend.write(copy_key, [raw], overwrite=False)
        except PreconditionFailed:
            pass  # the same bytes were kept already
    return raw


def _publish_sums(backend: t.Any, prefix: str) -> None:
    """Write ``SHA256SUMS`` from the current ``manifest.json`` until no other writer replaced it meanwhile."""
    for _attempt in range(PUBLISH_ATTEMPTS):
        before = backend.stat(prefix + MANIFEST)
        manifest = _load_json(backend, prefix + MANIFEST)
        backend.write(prefix + SUMS, [sha256sums(manifest, prefix)])
        after = backend.stat(prefix + MANIFEST)
        if before is not None and after is not None and before.etag == after.etag:
            return
    raise ManifestError("%s%s kept changing under concurrent writers; gave up after %d attempts" % (
        prefix, SUMS, PUBLISH_ATTEMPTS))


def tool_versions(collection_version: str) -> dict:
    import platform  # pylint: disable=import-outside-toplevel
    try:
        from ansible.module_utils.ansible_release import __version__ as ansible_version  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover - always there in a module
        ansible_version = "unknown"
    return {"corebackup.backup": collection_version, "ansible-core": ansible_version,
            "python": platform.python_version()}
