# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""What a job's store holds, and how an unchanged item gets into today's backup set.

Every backup set must be complete on its own: it is what a person restores, what retention keeps
or deletes whole and what verification reads. So an item that did not change since its newest
artifact is not left out of today's set: that artifact is *carried* into it, inside the storage
(a hard link, a server-side copy), under a key with today's timestamp.

Only a *recorded* artifact is carried: one whose sha256 was written down after it was completely
stored, in its checksum record (``<set>/checksums/<file>.json``, written by the writer) or in its
set's manifest. A bare listing is never enough: a killed run leaves artifacts without one. An
artifact already in today's set without a record (left by a killed run of the same day) is read
once again to compute its sha256 before it counts.
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
    newest down to the first one with a checksum record (at most CANDIDATES), and of each set only what
    reading its manifest needs (no object list).
    """

    def __init__(self, backend: t.Any, job: str, today: datetime.date, read_only: bool = False):
        self.backend = backend
        self.job = job
        self.today = today
        self.read_only = read_only  # check mode: records what it learns nowhere
        self.sets: dict[str, t.Any] = {}  # date -> BackupSet without its objects, for sets with a manifest or runs
        # name -> [(ArtifactKey, has a checksum record)], newest first
        self._history: dict[str, list[tuple[ArtifactKey, bool]]] = {}
        for backup_set in iter_sets(backend, job):
            self._add_set(backup_set)
        self._manifests: dict[str, dict] = {}

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
            self._history.setdefault(parsed.name, []).append((parsed, checksum_key(parsed.key) in records))
            touched.add(parsed.name)
        for name in touched:
            history = self._history[name]
            history.sort(key=lambda entry: (entry[0].timestamp, entry[0].key), reverse=True)
            for index, (_parsed, has_record) in enumerate(history):
                if has_record or index + 1 >= CANDIDATES:
                    del history[index + 1:]
                    break
        backup_set.objects = []
        if backup_set.has_manifest or backup_set.runs:
            self.sets[backup_set.date] = backup_set

    def names(self) -> set[str]:
        return set(self._history)

    def newest(self, name: str) -> Stored | None:
        """The newest artifact of ``name`` whose sha256 is known; None if there is none."""
        for parsed, has_record in self._history.get(name, []):
            today = parsed.date == self.today
            artifact = self.recorded(parsed.key, parsed, has_record)
            if artifact is None and today:
                artifact = self._read_again(parsed)
            if artifact is not None:
                return Stored(artifact, today)
        return None

    def recorded(self, key: str, parsed: ArtifactKey, has_record: bool) -> Artifact | None:
        """The artifact's record: its checksum record, else its set's run records."""
        record_key = checksum_key(key)
        if has_record:
            try:
                record = json.loads(self.backend.read_bytes(record_key).decode("utf-8"))
                if isinstance(record, dict) and record.get("key") == key:
                    return Artifact.from_dict(record)
            except (StorageError, ValueError, UnicodeDecodeError, KeyError, TypeError):
                pass  # an unreadable record proves nothing: the manifest may still know the artifact
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

        An encrypted one is not used: nothing tells to which keys it was encrypted.
        """
        ext = parsed.ext.split(".")
        if ext[-1] == "age":
            return None
        stat = self.backend.stat(parsed.key)
        if stat is None:
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
    """Store ``previous`` again under today's key, inside the storage; checked against its record.

    ``updates`` change the carried artifact's recorded metadata (its checksum record; the bytes and
    the object's own metadata are those of ``previous``).

    Raises StorageError when the store cannot copy it (an archived S3 object) or the copy does not
    match what was recorded; the caller then backs the item up from its source.
    """
    parsed = ArtifactKey.parse(previous.key)
    key = ArtifactKey.build(job, parsed.name, parsed.ext, when=when).key
    stored, sha256 = backend.copy(previous.key, key)
    if stored.size != previous.size or (sha256 is not None and sha256 != previous.sha256):
        backend.delete_many([key])
        raise StorageError("%s no longer matches its recorded size and sha256 (%d bytes, sha256 %s)" % (
            previous.key, previous.size, previous.sha256))
    artifact = Artifact(key=key, size=previous.size, sha256=previous.sha256, compression=previous.compression,
                        encryption=previous.encryption, created=iso(when), metadata=dict(previous.metadata, **(updates or {})),
                        carried_from=previous.key, contents=previous.contents)
    artifact.record_checksum(backend)
    return artifact
