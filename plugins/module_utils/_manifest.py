# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""Run records and the view of a backup set, ``manifest.json`` with ``SHA256SUMS``.

A backup set is the folder ``<job>/<YYYY-MM-DD>/``. Every run recorded into it is stored as its own object
``runs/<finished>_<run id>_<source>.<status>.json``, written once and never changed (as are the verification and
drill records, ``_records.py``): those are the facts, and every reader reads them (``_records.read_set``).

``manifest.json`` (schema version 3) and ``SHA256SUMS`` are a view for people and for tools
(``cd <job> && sha256sum -c <date>/SHA256SUMS``: its paths are relative to the job's folder): derived from the
records by :func:`write_view` after each record is written, rewritten freely (the last writer wins; a writer that
sees records appear meanwhile writes again) and never read for a decision. A view that cannot be written is a warning, never a failed run.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import typing as t
import uuid

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import format_timestamp, job_prefix, parse_iso, set_prefix
from ansible_collections.corebackup.backup.plugins.module_utils._records import RecordError, dumps, read_set
from ansible_collections.corebackup.backup.plugins.module_utils._schema import (
    ARTIFACT_SCHEMA,
    RUN_SCHEMA,
    SCHEMA_VERSION,
    VIEWS_SINCE,
    schema_errors,
    schema_for,
)
from ansible_collections.corebackup.backup.plugins.module_utils._sets import (
    LEGACY_MANIFEST,
    MANIFEST,
    RUNS,
    SUMS,
    BackupSet,
    load_set,
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
    if record.get("requires"):
        artifact["requires"] = [{"key": str(r.get("key")), "size": r.get("size"), "sha256": str(r.get("sha256")).lower()}
                                for r in record["requires"] if isinstance(r, dict)]
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


def sha256sums(manifest: dict, prefix: str) -> bytes:
    """``SHA256SUMS`` in the format of sha256sum, paths relative to ``prefix``, the job's folder (the set's
    artifacts lie under ``<job>/objects/``): ``cd <job> && sha256sum -c <date>/SHA256SUMS``."""
    artifacts = {}
    for run in manifest["runs"]:
        for artifact in run["artifacts"]:
            for required in artifact.get("requires") or []:
                artifacts.setdefault(required["key"], required)
            artifacts[artifact["key"]] = artifact
    lines = []
    for key, artifact in sorted(artifacts.items()):
        path = posixpath.relpath(key, prefix.rstrip("/"))
        lines.append("%s  %s\n" % (artifact["sha256"], path))
    return "".join(lines).encode("utf-8")


PUBLISH_ATTEMPTS = 20


def record_run(backend: t.Any, job: str, set_date: str, run: dict) -> tuple[str, list[str]]:
    """Store ``run`` as its own record, then rewrite the set's view; returns (run key, warnings)."""
    errors = schema_errors(run, RUN_SCHEMA, "run")
    if errors:
        raise ManifestError("; ".join(errors))
    key = run_key(set_date, job, run)
    backend.write(key, [dumps(run)], overwrite=False)
    return key, refresh_view(backend, job, set_date)


def refresh_view(backend: t.Any, job: str, set_date: str) -> list[str]:
    """:func:`write_view`, best effort: the warnings (empty when the view was written)."""
    try:
        write_view(backend, job, set_date)
    except (BackupError, StorageError) as exc:
        return ["the view %s%s was not rewritten (the records are complete): %s" % (
            set_prefix(job, set_date), MANIFEST, exc)]
    return []


def _record_names(backup_set: BackupSet) -> set:
    return {p["key"] for p in backup_set.runs + backup_set.verifications + backup_set.drills}


def write_view(backend: t.Any, job: str, set_date: str) -> dict:
    """Rewrite ``manifest.json`` and ``SHA256SUMS`` of the set from its records; returns the view.

    Writers are serialised by the set's lock where the backend has locks (filesystem). Elsewhere (S3) the last
    writer wins; a writer that finds records added while it wrote writes again, so the last view holds them all.
    A manifest.json of an older release (schema 1 or 2, which holds its verifications and drills) is first kept
    unchanged as ``legacy/manifest.json``, which readers read as legacy records.
    """
    prefix = set_prefix(job, set_date)
    with backend.lock(prefix + MANIFEST):
        for _attempt in range(PUBLISH_ATTEMPTS):
            backup_set = load_set(backend, job, set_date, check_deleted=False)
            if backup_set.has_manifest:
                _keep_what_cannot_be_merged(backend, backup_set)
            try:
                view = read_set(backend, backup_set).view()
            except RecordError as exc:
                raise ManifestError(str(exc)) from None
            errors = schema_errors(view)
            if errors:
                raise ManifestError("refusing to write a manifest that breaks its schema: %s" % "; ".join(errors[:5]))
            backend.write(prefix + MANIFEST, [dumps(view)])
            backend.write(prefix + SUMS, [sha256sums(view, job_prefix(job))])
            if _record_names(load_set(backend, job, set_date, check_deleted=False)) == _record_names(backup_set):
                return view
    raise ManifestError("records kept appearing in %s while its view was written; gave up after %d attempts" % (
        prefix, PUBLISH_ATTEMPTS))


def _keep_what_cannot_be_merged(backend: t.Any, backup_set: BackupSet) -> None:
    """Before ``manifest.json`` is rewritten: refuse one from a newer schema, keep a copy of an unreadable one,
    and keep one of an older release (its verifications and drills) as ``legacy/manifest.json``."""
    prefix = backup_set.prefix
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
    elif version < VIEWS_SINCE and not backup_set.has_legacy_manifest:
        copy_key = prefix + LEGACY_MANIFEST
    else:
        return
    try:
        backend.write(copy_key, [raw], overwrite=False)
    except PreconditionFailed:
        pass  # kept already


def tool_versions(collection_version: str) -> dict:
    import platform  # pylint: disable=import-outside-toplevel
    try:
        from ansible.module_utils.ansible_release import __version__ as ansible_version  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover - always there in a module
        ansible_version = "unknown"
    return {"corebackup.backup": collection_version, "ansible-core": ansible_version,
            "python": platform.python_version()}
