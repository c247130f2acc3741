# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The manifest's JSON Schema, every version still read, the records' schemas, and a validator for the subset
they use.

``SCHEMAS[n]`` equals ``schemas/manifest-v<n>.schema.json`` and ``RECORD_SCHEMAS[name]`` equals
``schemas/<name>.schema.json`` (``tests/unit/plugins/module_utils/test_manifest.py`` keeps them equal; a file is
``json.dumps(schema, indent=2, sort_keys=True)`` and a newline); the ``jsonschema`` library is not needed on the
backup host.

Since version 3 the manifest is a view: derived from the set's records (run, verification and drill records),
rewritten freely and never read for a decision. Versions 1 and 2 were the facts themselves. Since version 5 the
view lists each run's artifacts without their ``metadata`` and ``contents`` (the run record holds them): where each
object is, its size and sha256, and the objects it requires.
"""

from __future__ import annotations

import copy
import re
import typing as t

SCHEMA_VERSION = 5
VIEWS_SINCE = 3  # manifests of this version on are views of the records; older ones were the facts
SCHEMA_ID = "https://github.com/corebackup/backup/schemas/manifest-v%d.json"
STATUSES = ("success", "partial", "failed")

_SHA256 = "^[0-9a-f]{64}$"
_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

DRILL_SCHEMA = {
    "type": "object",
    "required": ["when", "duration", "result", "items"],
    "properties": {
        "when": {"type": "string", "pattern": _TIME},
        "duration": {"type": "number", "minimum": 0},
        "result": {"enum": ["ok", "failed"]},
        "items": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "key", "status"],
            "properties": {"name": {"type": "string"}, "key": {"type": "string"},
                           "status": {"enum": ["ok", "mismatch", "failed"]}, "detail": {"type": "string"}},
            "additionalProperties": False,
        }},
    },
    "additionalProperties": False,
}

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
        "contents": {"type": "object"},
        # The other objects a restore of this artifact reads first, in order (the earlier bundles of a chain): a set
        # that holds the artifact holds them too (retention keeps them, verification reads them).
        "requires": {"type": "array", "items": {
            "type": "object",
            "required": ["key", "size", "sha256"],
            "properties": {"key": {"type": "string", "minLength": 1}, "size": {"type": "integer", "minimum": 0},
                           "sha256": {"type": "string", "pattern": _SHA256}},
            "additionalProperties": False,
        }},
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

# What a run record holds of each artifact and the view (version 5 on) leaves out: the view says where each object
# is, its size and sha256 and what it requires; the run record, the rest.
VIEW_OMITS = ("metadata", "contents")


def _view_run_schema() -> dict:
    schema = copy.deepcopy(RUN_SCHEMA)
    for name in VIEW_OMITS:
        del schema["properties"]["artifacts"]["items"]["properties"][name]
    return schema


VIEW_RUN_SCHEMA = _view_run_schema()

VERIFICATION_SCHEMA = {
    "type": "object",
    "required": ["verified_at", "status"],
    "properties": {
        "verified_at": {"type": "string", "pattern": _TIME},
        "status": {"enum": ["ok", "missing", "truncated", "corrupted"]},
    },
    "additionalProperties": False,
}


def _record_schema(name: str, title: str, required: list, properties: dict) -> dict:
    """The JSON schema of a record of one set (written once): ``schema_version``, ``job``, ``set_date`` and more."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/corebackup/backup/schemas/%s.json" % name,
        "title": "corebackup.backup %s" % title,
        "type": "object",
        "required": ["schema_version", "job", "set_date"] + required,
        "properties": dict({
            "schema_version": {"const": 1},
            "job": {"type": "string", "minLength": 1},
            "set_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        }, **properties),
        "additionalProperties": False,
    }


VERIFICATION_RECORD_SCHEMA = _record_schema(
    "verification-record", "verification record: one re-reading of artifacts of a backup set, written once",
    ["when", "result", "artifacts", "tools"], {
        "when": {"type": "string", "pattern": _TIME},
        "result": {"enum": ["ok", "bad"]},
        "whole": {"type": "boolean"},
        "artifacts": {"type": "object", "additionalProperties": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"enum": ["ok", "missing", "truncated", "corrupted"]},
                "size": {"type": ["integer", "null"]},
                "sha256": {"type": ["string", "null"]},
                "detail": {"type": "string"},
            },
            "additionalProperties": False,
        }},
        "tools": _STRING_MAP,
    })

DRILL_RECORD_SCHEMA = _record_schema(
    "drill-record", "drill record: one restore drill of a backup set, written once",
    DRILL_SCHEMA["required"], DRILL_SCHEMA["properties"])

DELETION_RECORD_SCHEMA = _record_schema(
    "deletion-record", "deletion record: retention deletes the set it names, written before the deletion",
    ["when", "policy", "keys", "bytes", "run_ids"], {
        "when": {"type": "string", "pattern": _TIME},
        "status": {"type": ["string", "null"]},
        "policy": {"type": "object"},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "keys": {"type": "integer", "minimum": 0},
        "bytes": {"type": "integer", "minimum": 0},
        "run_ids": {"type": "array", "items": {"type": "string"}},
    })

OBJECT_DELETION_RECORD_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/corebackup/backup/schemas/object-deletion-record.json",
    "title": "corebackup.backup object deletion record: retention deletes the shared objects no kept set references, "
             "written before the deletion",
    "type": "object",
    "required": ["schema_version", "job", "when", "kept_sets", "objects", "bytes"],
    "properties": {
        "schema_version": {"const": 1},
        "job": {"type": "string", "minLength": 1},
        "when": {"type": "string", "pattern": _TIME},
        "kept_sets": {"type": "array", "items": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}},
        "objects": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "bytes": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": False,
}

RECORD_SCHEMAS = {"verification-record": VERIFICATION_RECORD_SCHEMA, "drill-record": DRILL_RECORD_SCHEMA,
                  "deletion-record": DELETION_RECORD_SCHEMA, "object-deletion-record": OBJECT_DELETION_RECORD_SCHEMA}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID % SCHEMA_VERSION,
    "title": "corebackup.backup manifest of one backup set",
    "description": "A view derived from the set's run, verification and drill records; rewritten freely, never "
                   "read for a decision.",
    "type": "object",
    "required": ["schema_version", "job", "set_date", "status", "runs", "verified_at", "verification"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "job": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"},
        "set_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "status": {"enum": list(STATUSES)},
        "runs": {"type": "array", "items": VIEW_RUN_SCHEMA, "minItems": 1},
        "verified_at": {"type": ["string", "null"], "pattern": _TIME},
        "verification": {"type": "object", "additionalProperties": VERIFICATION_SCHEMA},
        "restore_drills": {"type": "array", "items": DRILL_SCHEMA},
    },
    "additionalProperties": False,
}


def _schema_v4() -> dict:
    """Version 4, still read: a view of the records, each run as its record holds it."""
    schema = copy.deepcopy(SCHEMA)
    schema["$id"] = SCHEMA_ID % 4
    schema["properties"]["schema_version"] = {"const": 4}
    schema["properties"]["runs"]["items"] = copy.deepcopy(RUN_SCHEMA)
    return schema


def _schema_v3() -> dict:
    """Version 3, still read: a view of the records, artifacts without ``requires``."""
    schema = _schema_v4()
    schema["$id"] = SCHEMA_ID % 3
    schema["properties"]["schema_version"] = {"const": 3}
    del schema["properties"]["runs"]["items"]["properties"]["artifacts"]["items"]["properties"]["requires"]
    return schema


def _schema_v2() -> dict:
    """Version 2, still read: the facts themselves (verifications and drills kept in it, not in records)."""
    schema = _schema_v3()
    schema["$id"] = SCHEMA_ID % 2
    del schema["description"]
    schema["properties"]["schema_version"] = {"const": 2}
    return schema


def _schema_v1() -> dict:
    """Version 1, still read: no item entries, no carried artifacts."""
    schema = _schema_v2()
    schema["$id"] = SCHEMA_ID % 1
    schema["properties"]["schema_version"] = {"const": 1}
    run = schema["properties"]["runs"]["items"]
    del run["properties"]["entries"]
    del run["properties"]["artifacts"]["items"]["properties"]["carried_from"]
    del run["properties"]["artifacts"]["items"]["properties"]["contents"]
    del schema["properties"]["restore_drills"]
    return schema


SCHEMAS = {SCHEMA_VERSION: SCHEMA, 4: _schema_v4(), 3: _schema_v3(), 2: _schema_v2(), 1: _schema_v1()}


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
    errors: list[str] = []
    _check(document, SCHEMA if schema is None else schema, (path,), errors)
    return errors


def _path(where: tuple) -> str:
    """``where``: (parent's where, ".name" or "[index]"), down to the root's (path,): the path as text, built only for
    an error (formatting every node's path cost more than checking it)."""
    parts = []
    while len(where) == 2:
        where, part = where
        parts.append(part)
    return where[0] + "".join(reversed(parts))


_PATTERNS: dict = {}


def _check(document: t.Any, schema: dict, where: tuple, errors: list) -> None:
    if "const" in schema and document != schema["const"]:
        errors.append("%s must be %r" % (_path(where), schema["const"]))
    if "enum" in schema and document not in schema["enum"]:
        errors.append("%s must be one of %s, got %r" % (_path(where), ", ".join(map(str, schema["enum"])), document))
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(document, name) for name in names):
            errors.append("%s must be of type %s, got %s" % (_path(where), " or ".join(names), type(document).__name__))
            return
    if isinstance(document, str):
        if len(document) < schema.get("minLength", 0):
            errors.append("%s must not be empty" % _path(where))
        if "pattern" in schema:
            pattern = _PATTERNS.get(schema["pattern"])
            if pattern is None:
                pattern = _PATTERNS[schema["pattern"]] = re.compile(schema["pattern"])
            if not pattern.search(document):
                errors.append("%s %r does not match %s" % (_path(where), document, schema["pattern"]))
    elif isinstance(document, list):
        if len(document) < schema.get("minItems", 0):
            errors.append("%s must have at least %d item(s)" % (_path(where), schema["minItems"]))
        items = schema.get("items", {})
        if items:
            for index, item in enumerate(document):
                _check(item, items, (where, "[%d]" % index), errors)
    elif isinstance(document, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in document:
                errors.append("%s.%s is required" % (_path(where), name))
        additional = schema.get("additionalProperties")
        for name, value in document.items():
            if name in properties:
                _check(value, properties[name], (where, "." + name), errors)
            elif additional is False:
                errors.append("%s.%s is not allowed" % (_path(where), name))
            elif isinstance(additional, dict):
                _check(value, additional, (where, "." + name), errors)
    elif _is_type(document, "number") and "minimum" in schema and document < schema["minimum"]:
        errors.append("%s must be at least %s" % (_path(where), schema["minimum"]))
