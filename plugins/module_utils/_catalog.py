# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""What a job's store holds, and how an unchanged item gets into today's backup set.

Every backup set must be complete on its own: it is what a person restores, what retention keeps or deletes
and what verification reads. So an item that did not change since its newest artifact is not left out of
today's set: today's run record *references* that artifact (its key and sha256), which stays where it is,
under ``<job>/objects/``; no byte is copied or sent again. Retention deletes an object only when no kept set
references it (``_retention.py``).

Only a *recorded* artifact is referenced: one whose sha256 was written down after it was completely stored, in
its checksum record (``<job>/objects/checksums/<file>.json``, written by the writer) or in a run record. A bare
listing is never enough: a killed run leaves artifacts without one. An artifact of today without a record (left
by a killed run of the same day) is read once again to compute its sha256 before it counts. An artifact of an
older release, in its set's folder (which retention deletes with the set), is copied once into ``objects/``
inside the storage (a hard link, a server-side copy) and referenced from then on.
"""

from __future__ import annotations

import datetime
import json
import typing as t
from dataclasses import dataclass

from ansible_collections.corebackup.backup.plugins.module_utils._checksum import iter_reader, sha256_stream
from ansible_collections.corebackup.backup.plugins.module_utils._layout import (
    CHECKSUMS_FOLDER,
    ArtifactKey,
    LayoutError,
    checksum_key,
    iso,
    objects_prefix,
)
from ansible_collections.corebackup.backup.plugins.module_utils._records import RecordError, read_set
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import Artifact
from ansible_collections.corebackup.backup.plugins.module_utils._sets import iter_sets
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError

COMPRESSION_OF_SUFFIX = {"gz": "gzip", "zst": "zstd"}
# Temporary files and multipart uploads older than this are left by killed runs, not running ones.
LEFTOVER_AGE = datetime.timedelta(days=1)
# What a run may do with one item.
BACKUP, CARRY, PRESENT, SKIP = "backup", "carry", "present", "skip"


def choose_action(today: bool, previous: bool, same_packing: bool, unchanged: bool | None,
                  skip_existing: bool, skip_unchanged: bool) -> str:
    """What to do with one item (pure).

    ``today``: today's set holds a usable artifact of the item; ``previous``: a usable artifact
    exists (today's or older); ``same_packing``: it was compressed and encrypted as today's would
    be; ``unchanged``: the service found the source equal to what that artifact holds.
    """
    if skip_existing and today:
        return SKIP
    if skip_unchanged and previous and same_packing and unchanged:
        return PRESENT if today else CARRY
    return BACKUP


@dataclass
class Stored:
    """The newest usable artifact of one item: its record, and whether it lies in today's set."""

    artifact: Artifact
    today: bool


# How many artifacts of one item, newest first, are kept as candidates while no checksum record is seen among
# them: older ones are reached only when every newer one proves unusable, and then the item is backed up again.
CANDIDATES = 8


class Catalog:
    """The artifacts of one job, from one listing of ``<job>/``, read one set at a time.

    What it keeps is bounded by the job's items, not by its history: for each item, its artifacts from the
    newest down to the first one with a checksum record (at most CANDIDATES), of each set only what reading its
    records needs (no object list), and the artifacts that the newest set and today's set reference (their run
    records hold each artifact's newest metadata).
    """

    def __init__(self, backend: t.Any, job: str, today: datetime.date, read_only: bool = False):
        self.backend = backend
        self.job = job
        self.today = today
        self.read_only = read_only  # check mode: records what it learns nowhere
        self.sets: dict[str, t.Any] = {}  # date -> BackupSet without its objects, for sets with a manifest or runs
        # name -> [(ArtifactKey, has a checksum record: True, False, None when not known)], newest first
        self._history: dict[str, list[tuple[ArtifactKey, bool | None]]] = {}
        self._objects = objects_prefix(job)
        for backup_set in iter_sets(backend, job, self._other):
            self._add_set(backup_set)
        self._manifests: dict[str, dict] = {}
        self.referenced: dict[str, dict] = {}  # key -> artifact record, from the newest set's and today's runs
        self.today_keys: set[str] = set()  # the artifacts today's set references
        self._read_references()

    def _other(self, key: str) -> None:
        """A key outside the dated folders: an artifact under ``objects/`` joins its item's history (its checksum
        record is read when it is a candidate, not looked for in the listing)."""
        if not key.startswith(self._objects) or key[len(self._objects):].startswith(CHECKSUMS_FOLDER + "/"):
            return
        try:
            parsed = ArtifactKey.parse(key)
        except LayoutError:
            return
        self._remember(parsed, None)
        self._trim(parsed.name)

    def _remember(self, parsed: ArtifactKey, has_record: bool | None) -> None:
        self._history.setdefault(parsed.name, []).append((parsed, has_record))

    def _trim(self, name: str) -> None:
        history = self._history[name]
        history.sort(key=lambda entry: (entry[0].timestamp, entry[0].key), reverse=True)
        for index, (_parsed, has_record) in enumerate(history):
            if has_record or index + 1 >= CANDIDATES:
                del history[index + 1:]
                break

    def _add_set(self, backup_set: t.Any) -> None:
        records = set()
        artifacts = []
        for obj in backup_set.objects:
            relative = obj.key[len(backup_set.prefix):]
            if relative.startswith(CHECKSUMS_FOLDER + "/"):
                records.add(obj.key)
                continue
            try:
                artifacts.append(ArtifactKey.parse(obj.key))
            except LayoutError:
                continue
        touched = set()
        for parsed in artifacts:
            self._remember(parsed, checksum_key(parsed.key) in records)
            touched.add(parsed.name)
        for name in touched:
            self._trim(name)
        backup_set.objects = []
        if backup_set.has_manifest or backup_set.runs:
            self.sets[backup_set.date] = backup_set

    def _read_references(self) -> None:
        """What the newest set with runs and today's set reference: the newest metadata of each artifact (a run
        that referenced it may have updated it) and what today's set holds already."""
        dated = {date for date, backup_set in self.sets.items() if backup_set.runs}
        today = self.today.isoformat()
        for date in sorted({max(dated)} | ({today} & dated)) if dated else []:
            try:
                artifacts = read_set(self.backend, self.sets[date]).artifacts()
            except RecordError:
                continue
            self.referenced.update(artifacts)
            if date == today:
                self.today_keys.update(artifacts)

    def names(self) -> set[str]:
        return set(self._history)

    def newest(self, name: str) -> Stored | None:
        """The newest artifact of ``name`` whose sha256 is known; None if there is none."""
        for parsed, has_record in self._history.get(name, []):
            today = parsed.key in self.today_keys or parsed.date == self.today
            artifact = self.recorded(parsed.key, parsed, has_record)
            if artifact is None and today:
                artifact = self._read_again(parsed)
            if artifact is not None:
                return Stored(artifact, today)
        return None

    def recorded(self, key: str, parsed: ArtifactKey, has_record: bool | None) -> Artifact | None:
        """The artifact's record: what the newest set references, else its checksum record, else (an older
        release's artifact) its set's run records."""
        if key in self.referenced:
            return Artifact.from_dict(self.referenced[key])
        record_key = checksum_key(key)
        if has_record is not False:
            try:
                record = json.loads(self.backend.read_bytes(record_key).decode("utf-8"))
                if isinstance(record, dict) and record.get("key") == key:
                    return Artifact.from_dict(record)
            except (StorageError, ValueError, UnicodeDecodeError, KeyError, TypeError):
                pass  # an unreadable record proves nothing: the manifest may still know the artifact
        if parsed.shared:
            return None
        date = parsed.date.isoformat()
        if date not in self._manifests:
            self._manifests[date] = {}
            backup_set = self.sets.get(date)
            if backup_set is not None:
                try:
                    self._manifests[date] = read_set(self.backend, backup_set).artifacts()
                except RecordError:
                    pass
        record = self._manifests[date].get(key)
        return Artifact.from_dict(record) if record else None

    def _read_again(self, parsed: ArtifactKey) -> Artifact | None:
        """An artifact of today without a record: its sha256 from its bytes, and a record from now on.

        An encrypted one is not used: nothing tells to which keys it was encrypted; nor one that requires other
        objects (a link of a chain of bundles): which ones only its record tells.
        """
        ext = parsed.ext.split(".")
        if ext[-1] == "age":
            return None
        stat = self.backend.stat(parsed.key)
        if stat is None or (stat.metadata or {}).get("requires", "0") != "0":
            return None
        try:
            with self.backend.open(parsed.key) as reader:
                sha256, size = sha256_stream(iter_reader(reader))
        except (StorageError, OSError):
            return None
        if size != stat.size:
            return None
        artifact = Artifact(key=parsed.key, size=size, sha256=sha256, compression=COMPRESSION_OF_SUFFIX.get(ext[-1], "none"),
                            created=iso(stat.modified) if stat.modified else "", metadata=dict(stat.metadata))
        if not self.read_only:
            try:
                artifact.record_checksum(self.backend)
            except StorageError:
                pass  # another run recorded it meanwhile, or the store refuses: the sha256 is known either way
        return artifact


def carry(backend: t.Any, previous: Artifact, job: str, when: datetime.datetime, updates: dict | None = None) -> Artifact:
    """``previous`` in today's set: a reference to the same object (its recorded metadata updated with
    ``updates``), nothing copied. An older release's artifact, in its set's folder, is first stored once under
    ``<job>/objects/`` inside the storage, and checked against its record.

    Raises StorageError when the store cannot copy such an artifact (an archived S3 object, a credential that
    may only create) or the copy does not match what was recorded; the caller then backs the item up from its
    source.
    """
    parsed = ArtifactKey.parse(previous.key)
    metadata = dict(previous.metadata, **(updates or {}))
    if parsed.shared and parsed.job == job:
        return Artifact(key=previous.key, size=previous.size, sha256=previous.sha256, compression=previous.compression,
                        encryption=previous.encryption, created=previous.created, metadata=metadata,
                        carried_from=previous.key, contents=previous.contents, requires=previous.requires)
    key = ArtifactKey.build(job, parsed.name, parsed.ext, when=when).key
    stored, sha256 = backend.copy(previous.key, key)
    if stored.size != previous.size or (sha256 is not None and sha256 != previous.sha256):
        backend.delete_many([key])
        raise StorageError("%s no longer matches its recorded size and sha256 (%d bytes, sha256 %s)" % (
            previous.key, previous.size, previous.sha256))
    artifact = Artifact(key=key, size=previous.size, sha256=previous.sha256, compression=previous.compression,
                        encryption=previous.encryption, created=iso(when), metadata=metadata,
                        carried_from=previous.key, contents=previous.contents)
    artifact.record_checksum(backend)
    return artifact
