# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The carry decision and the catalog of stored artifacts: only recorded artifacts are carried."""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils import _manifest as m
from ansible_collections.corebackup.backup.plugins.module_utils._catalog import (
    BACKUP,
    CARRY,
    PRESENT,
    SKIP,
    Catalog,
    carry,
    choose_action,
)
from ansible_collections.corebackup.backup.plugins.module_utils._layout import checksum_key
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend

TODAY = datetime.date(2026, 6, 15)
DAY = datetime.datetime(2026, 6, 15, 2, 0, tzinfo=datetime.timezone.utc)


def expected(today, previous, same_packing, unchanged, skip_existing, skip_unchanged):
    """The rules as the issue states them, one by one."""
    if skip_existing and today:
        return SKIP
    if not skip_unchanged or not previous or not same_packing or not unchanged:
        return BACKUP  # changed, never stored, or packed otherwise (a key rotation): from the source
    return PRESENT if today else CARRY


CASES = [case for case in itertools.product([False, True], [False, True], [False, True], [None, False, True],
                                            [False, True], [False, True])
         if case[1] or not case[0]]  # an artifact of today is a previous artifact


@pytest.mark.parametrize("case", CASES)
def test_choose_action_follows_the_rules_for_every_combination(case):
    assert choose_action(*case) == expected(*case)


def store(backend, name, when, data=b"data", metadata=None):
    return ArtifactWriter(backend, "none").store("job", name, "bin", [data * 100], metadata=metadata or {"f": "1"},
                                                 when=when)


def test_newest_usable_is_the_newest_recorded_artifact(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    old = store(backend, "a", DAY - datetime.timedelta(days=2))
    bare = store(backend, "a", DAY - datetime.timedelta(days=1), data=b"newer")
    backend.delete_many([checksum_key(bare.key)])  # a killed run's artifact: complete, but never recorded
    stored = Catalog(backend, "job", TODAY).newest("a")
    assert stored.artifact == old and not stored.today  # never carried from a bare listing


def test_the_manifest_records_what_has_no_checksum_record(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    artifact = store(backend, "a", DAY - datetime.timedelta(days=1))
    backend.delete_many([checksum_key(artifact.key)])  # stored by an older version, recorded by backup_manifest
    run = {"run_id": "r1", "started": "2026-06-14T02:00:00Z", "finished": "2026-06-14T03:00:00Z", "duration": 1.0,
           "status": "success", "source": {"type": "files", "name": "x"}, "artifacts": [artifact.to_dict()],
           "counts": {}, "warnings": [], "errors": [], "tools": {}}
    m.record_run(backend, "job", "2026-06-14", run)
    assert Catalog(backend, "job", TODAY).newest("a").artifact == artifact


def record(backend, date, artifact):
    run = {"run_id": "r-" + date, "started": date + "T02:00:00Z", "finished": date + "T03:00:00Z", "duration": 1.0,
           "status": "success", "source": {"type": "files", "name": "x"}, "artifacts": [artifact.to_dict()],
           "counts": {}, "warnings": [], "errors": [], "tools": {}}
    m.record_run(backend, "job", date, run)


def test_a_referenced_artifact_has_its_newest_metadata_and_is_todays_once_today_references_it(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    artifact = store(backend, "a", DAY - datetime.timedelta(days=2))
    record(backend, "2026-06-13", artifact)
    carried = carry(backend, artifact, "job", DAY - datetime.timedelta(days=1), {"checked": "2026-06-14"})
    assert carried.key == artifact.key == carried.carried_from  # a reference: nothing stored
    assert [o.key for o in backend.list("job/objects/") if "/checksums/" not in o.key] == [artifact.key]
    record(backend, "2026-06-14", carried)
    stored = Catalog(backend, "job", TODAY).newest("a")
    # The newest set's run record says more than the checksum record written with the object.
    assert stored.artifact.metadata == {"f": "1", "checked": "2026-06-14"} and not stored.today
    record(backend, "2026-06-15", carry(backend, stored.artifact, "job", DAY))
    again = Catalog(backend, "job", TODAY).newest("a")
    assert again.today and again.artifact.key == artifact.key  # a rerun today finds it present: no change


def test_an_artifact_of_today_without_record_is_read_again(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    artifact = store(backend, "a", DAY)
    backend.delete_many([checksum_key(artifact.key)])
    in_check_mode = Catalog(backend, "job", TODAY, read_only=True).newest("a")
    assert in_check_mode.today and in_check_mode.artifact.sha256 == hashlib.sha256(b"data" * 100).hexdigest()
    assert backend.stat(checksum_key(artifact.key)) is None  # check mode writes nothing
    stored = Catalog(backend, "job", TODAY).newest("a")
    assert stored.today and stored.artifact.sha256 == artifact.sha256 and stored.artifact.metadata == {"f": "1"}
    assert json.loads(backend.read_bytes(checksum_key(artifact.key)))["sha256"] == artifact.sha256


def test_an_encrypted_artifact_of_today_without_record_is_not_used(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    key = "job/2026-06-15/a_20260615T020000Z.bin.age"
    backend.write(key, [b"age-encryption.org/v1 ..."])
    assert Catalog(backend, "job", TODAY).newest("a") is None  # to which keys? nothing says: back it up again


def test_same_packing_compares_compression_and_recipients():
    writer = ArtifactWriter(None, "gzip", 6, {"recipients": ["age1" + "q" * 58, "age1" + "p" * 58]})
    record = {"compression": "gzip", "encryption": {"type": "age", "recipients": ["age1" + "p" * 58, "age1" + "q" * 58]}}
    assert writer.same_packing(record)
    assert not writer.same_packing(dict(record, compression="zstd"))
    assert not writer.same_packing(dict(record, encryption={"recipients": ["age1" + "p" * 58]}))
    assert not writer.same_packing(dict(record, encryption=None))
    assert ArtifactWriter(None, "gzip").same_packing({"compression": "gzip", "encryption": None})


class Listing:
    """A store of many sets that only lists (key order, as S3 lists), and counts what is read."""

    def __init__(self, keys):
        self.keys = sorted(keys)
        self.reads = []

    def list(self, prefix=""):
        from ansible_collections.corebackup.backup.plugins.module_utils._storage import StoredObject
        return (StoredObject(key=key, size=1) for key in self.keys if key.startswith(prefix))

    def read_bytes(self, key):
        self.reads.append(key)
        parsed_key = key.replace("/checksums/", "/")[:-len(".json")]
        return json.dumps({"key": parsed_key, "size": 1, "sha256": "0" * 64, "compression": "none",
                           "created": "2026-06-14T02:00:00Z", "metadata": {}}).encode()


def test_the_catalog_keeps_a_few_artifacts_per_item_whatever_the_history():
    """Memory bounded by the items, not the days: 300 daily sets of 20 items, every artifact recorded but the newest."""
    keys = []
    for day in range(300):
        date = TODAY - datetime.timedelta(days=day + 1)
        for item in range(20):
            key = "job/%s/item-%02d_%sT020000Z.tar.gz" % (date.isoformat(), item, date.strftime("%Y%m%d"))
            keys.append(key)
            if day:  # the newest artifact of each item has no record: a killed run
                keys.append(checksum_key(key))
    store = Listing(keys)
    catalog = Catalog(store, "job", TODAY)
    assert catalog.names() == {"item-%02d" % i for i in range(20)}
    assert max(len(history) for history in catalog._history.values()) == 2  # pylint: disable=protected-access
    assert catalog.sets == {}  # no set with a manifest: nothing kept of them
    newest = catalog.newest("item-07")
    assert newest.artifact.key == "job/2026-06-13/item-07_20260613T020000Z.tar.gz" and not newest.today
