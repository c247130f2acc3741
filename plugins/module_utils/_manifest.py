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

import copy
import datetime
import hashlib
import json
import posixpath
import re
import typing as t
import uuid

from ansible_collections.corebackup.backup.plugins.module_utils._layout import (
    LayoutError,
    format_timestamp,
    job_prefix,
    parse_date,
    parse_timestamp,
    sanitize_name,
    set_prefix,
)
from ansible_collections.corebackup.backup.plugins.module_utils._storage import PreconditionFailed, StorageError, check_key

SCHEMA_VERSION = 2
SCHEMA_ID = "https://github.com/corebackup/backup/schemas/manifest-v%d.json"
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
RUNS = "runs/"
STATUSES = ("success", "partial", "failed")

_SHA256 = "^[0-9a-f]{64}$"
_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

ARTIFACT_SCHEMA = {
    "type": "object",
    "required": ["key", "size", "sha256"],
    "properties": {
        "key": {"type": "string", "minLength": 1},
        "size": {"type": "integer", "minimum": 0},
        "sha256": {"type": "string", "pattern": _SHA256},
        "compression": {"type": ["string", "null"]},
        "encryption": {"type": ["object", "null"]},
        "created": {"type": "string"},
        "metadata": _STRING_MAP,
        "carried_from": {"type": "string", "minLength": 1},
    },
    "additionalProperties": False,
}

# Every item of a run with what happened to it; an item that is present in the set (backed up,
# carried, unchanged or skipped) names its artifact, which the run's artifacts hold.
ITEM_STATUSES = ("backed_up", "carried", "unchanged", "skipped", "failed")
PRESENT_STATUSES = ("backed_up", "carried", "unchanged", "skipped")
ENTRY_SCHEMA = {
    "type": "object",
    "required": ["name", "status", "key"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "status": {"enum": list(ITEM_STATUSES)},
        "key": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
    },
    "additionalProperties": False,
}

RUN_SCHEMA = {
    "type": "object",
    "required": ["run_id", "started", "finished", "duration", "status", "source", "artifacts", "counts", "warnings",
                 "errors", "tools"],
    "properties": {
        "run_id": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$"},
        "started": {"type": "string", "pattern": _TIME},
        "finished": {"type": "string", "pattern": _TIME},
        "duration": {"type": "number", "minimum": 0},
        "status": {"enum": list(STATUSES)},
        "source": {
            "type": "object",
            "required": ["type", "name"],
            "properties": {"type": {"type": "string", "minLength": 1}, "name": {"type": "string", "minLength": 1}},
        },
        "artifacts": {"type": "array", "items": ARTIFACT_SCHEMA},
        "entries": {"type": "array", "items": ENTRY_SCHEMA},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "errors": {"type": "array", "items": {"type": "string"}},
        "tools": _STRING_MAP,
    },
    "additionalProperties": False,
}

VERIFICATION_SCHEMA = {
    "type": "object",
    "required": ["verified_at", "status"],
    "properties": {
        "verified_at": {"type": "string", "pattern": _TIME},
        "status": {"enum": ["ok", "missing", "truncated", "corrupted"]},
    },
    "additionalProperties": False,
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID % SCHEMA_VERSION,
    "title": "corebackup.backup manifest of one backup set",
    "type": "object",
    "required": ["schema_version", "job", "set_date", "status", "runs", "verified_at", "verification"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "job": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"},
        "set_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "status": {"enum": list(STATUSES)},
        "runs": {"type": "array", "items": RUN_SCHEMA, "minItems": 1},
        "verified_at": {"type": ["string", "null"], "pattern": _TIME},
        "verification": {"type": "object", "additionalProperties": VERIFICATION_SCHEMA},
    },
    "additionalProperties": False,
}


def _schema_v1() -> dict:
    """Version 1, still read: no item entries, no carried artifacts."""
    schema = copy.deepcopy(SCHEMA)
    schema["$id"] = SCHEMA_ID % 1
    schema["properties"]["schema_version"] = {"const": 1}
    run = schema["properties"]["runs"]["items"]
    del run["properties"]["entries"]
    del run["properties"]["artifacts"]["items"]["properties"]["carried_from"]
    return schema


SCHEMAS = {SCHEMA_VERSION: SCHEMA, 1: _schema_v1()}
RUN_SCHEMA_V1 = SCHEMAS[1]["properties"]["runs"]["items"]

_RUN_KEY_RE = re.compile(
    r"^runs/(?P<finished>\d{8}T\d{6}Z)_(?P<run_id>[A-Za-z0-9-]{1,64})_(?P<source>[A-Za-z0-9][A-Za-z0-9_-]*)"
    r"\.(?P<status>success|partial|failed)\.json$"
)
_DATE_DIR_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SECRET_PATTERNS = [
    # credentials in URLs: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^\s@]+@"), r"\1********@"),
    # HTTP authorization headers and their values
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*)(basic|bearer|token)?\s*[^\s,;'\"]+"), r"\1********"),
    # GitHub tokens (classic, fine-grained, app, OAuth)
    (re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b"), "********"),
    # AWS access key ids
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "********"),
    # key=value / key: value pairs that name a secret
    # (db_password=, PGPASSWORD=, client_secret:, access_token=, x-api-key: ...)
    (re.compile(r"(?i)([A-Za-z0-9_-]*(?:password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*)[^\s,;'\"]+"),
     r"\1********"),
]


class ManifestError(Exception):
    """A manifest or run record is invalid, unreadable or cannot be written."""


# --------------------------------------------------------------------------------------------
# JSON Schema (the subset the manifest schema uses; jsonschema itself is used when present)
# --------------------------------------------------------------------------------------------

_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}


def _is_type(value: t.Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def schema_for(document: t.Any) -> dict:
    """The schema of the version a manifest says it has (the current one if it says nothing known)."""
    version = document.get("schema_version") if isinstance(document, dict) else None
    return SCHEMAS.get(version, SCHEMA) if isinstance(version, int) and not isinstance(version, bool) else SCHEMA


def schema_errors(document: t.Any, schema: dict | None = None, path: str = "$") -> list[str]:
    """Where ``document`` breaks ``schema``, as readable messages (empty when it is valid)."""
    schema = SCHEMA if schema is None else schema
    errors: list[str] = []
    if "const" in schema and document != schema["const"]:
        errors.append("%s must be %r" % (path, schema["const"]))
    if "enum" in schema and document not in schema["enum"]:
        errors.append("%s must be one of %s, got %r" % (path, ", ".join(map(str, schema["enum"])), document))
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(document, name) for name in names):
            return errors + ["%s must be of type %s, got %s" % (path, " or ".join(names), type(document).__name__)]
    if isinstance(document, str):
        if len(document) < schema.get("minLength", 0):
            errors.append("%s must not be empty" % path)
        if "pattern" in schema and not re.search(schema["pattern"], document):
            errors.append("%s %r does not match %s" % (path, document, schema["pattern"]))
    if _is_type(document, "number") and "minimum" in schema and document < schema["minimum"]:
        errors.append("%s must be at least %s" % (path, schema["minimum"]))
    if isinstance(document, list):
        if len(document) < schema.get("minItems", 0):
            errors.append("%s must have at least %d item(s)" % (path, schema["minItems"]))
        for index, item in enumerate(document):
            errors.extend(schema_errors(item, schema.get("items", {}), "%s[%d]" % (path, index)))
    if isinstance(document, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in document:
                errors.append("%s.%s is required" % (path, name))
        for name, value in document.items():
            if name in properties:
                errors.extend(schema_errors(value, properties[name], "%s.%s" % (path, name)))
            elif schema.get("additionalProperties") is False:
                errors.append("%s.%s is not allowed" % (path, name))
            elif isinstance(schema.get("additionalProperties"), dict):
                errors.extend(schema_errors(value, schema["additionalProperties"], "%s.%s" % (path, name)))
    return errors


# --------------------------------------------------------------------------------------------
# Run records
# --------------------------------------------------------------------------------------------

def parse_iso(text: str, what: str) -> datetime.datetime:
    try:
        when = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ManifestError("%s %r is not an ISO 8601 time such as 2026-11-22T03:00:00Z" % (what, text)) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).replace(microsecond=0)


def scrub(text: t.Any, secrets: t.Iterable[str] = ()) -> str:
    """``text`` with known secrets and anything that looks like a credential replaced by asterisks."""
    text = str(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "********")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


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
    try:
        artifact["size"] = int(artifact["size"])
    except (TypeError, ValueError):
        raise ManifestError("artifacts[%d].size %r is not a number of bytes" % (index, record["size"])) from None
    errors = schema_errors(artifact, ARTIFACT_SCHEMA, "artifacts[%d]" % index)
    if errors:
        raise ManifestError("; ".join(errors))
    return artifact


def source_id(source: dict | str) -> str:
    """The name a run's source has in run record keys; a run is identified by (run id, source id)."""
    if isinstance(source, str):
        return source
    return sanitize_name("%s-%s" % (source["type"], source["name"]))


def run_key(set_date: str, job: str, run: dict) -> str:
    finished = format_timestamp(parse_iso(run["finished"], "finished"))
    source = source_id(run["source"])
    return "%s%s%s_%s_%s.%s.json" % (set_prefix(job, set_date), RUNS, finished, run["run_id"], source, run["status"])


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


# --------------------------------------------------------------------------------------------
# Sets in a store
# --------------------------------------------------------------------------------------------

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


def list_sets(backend: t.Any, job: str) -> tuple[dict[str, BackupSet], list[str]]:
    """Every dated folder of ``job`` from one paginated listing: ({date: BackupSet}, other keys)."""
    prefix = job_prefix(job)
    sets: dict[str, BackupSet] = {}
    others: list[str] = []
    for obj in backend.list(prefix):
        folder, _sep, rest = obj.key[len(prefix):].partition("/")
        try:
            valid = bool(rest) and bool(parse_date(folder))
        except LayoutError:
            valid = False
        if not valid:
            others.append(obj.key)
            continue
        if folder not in sets:
            sets[folder] = BackupSet(job, folder)
        sets[folder].add(obj)
    return sets, others


def list_jobs(backend: t.Any) -> list[str]:
    """Jobs that have at least one manifest in the store."""
    jobs = set()
    for obj in backend.list(""):
        parts = obj.key.split("/")
        if len(parts) >= 3 and parts[2] in (MANIFEST, "runs") and _DATE_DIR_RE.match(parts[1]):
            jobs.add(parts[0])
    return sorted(jobs)


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


def load_set(backend: t.Any, job: str, set_date: str) -> BackupSet:
    """One set from a listing of its own folder."""
    backup_set = BackupSet(job, set_date)
    for obj in backend.list(backup_set.prefix):
        backup_set.add(obj)
    return backup_set


def tool_versions(collection_version: str) -> dict:
    import platform  # pylint: disable=import-outside-toplevel
    try:
        from ansible.module_utils.ansible_release import __version__ as ansible_version  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover - always there in a module
        ansible_version = "unknown"
    return {"corebackup.backup": collection_version, "ansible-core": ansible_version,
            "python": platform.python_version()}
