# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every restorer against artifacts that are hostile or damaged, recorded as if they were good (their sha256
matches): names that climb out, links that point out, a stream that stops half-way, a MongoDB archive whose
checksum lies. Nothing may be written outside the target, nothing may be left half-restored. And the MongoDB
restorer's oplog replay, on an archive whose oplog holds every kind of entry mongodump stores."""

from __future__ import annotations

import datetime
import io
import os
import tarfile
import uuid

import bson
import pymongo
import pytest
from bson.timestamp import Timestamp

from ansible_collections.corebackup.backup.plugins.module_utils import _mongo as archive
from ansible_collections.corebackup.backup.plugins.module_utils._manifest import record_run
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.tests.conftest import files_below
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
WHEN = datetime.datetime(2026, 6, 15, 2, 0, tzinfo=datetime.timezone.utc)
JOB = "hostile"


def plant(tmp_path, kind, name, data, ext="tar", metadata=None):
    """An artifact of ``data`` for an item ``name`` of service ``kind``, with its checksum record and a successful
    run record naming it: a set that looks complete. Returns the storage option."""
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    backend = FilesystemBackend(storage["path"])
    artifact = ArtifactWriter(backend, "gzip", 1).store(JOB, name, ext, [data], metadata=metadata or {}, when=WHEN)
    record_run(backend, JOB, WHEN.date().isoformat(), {
        "run_id": uuid.uuid4().hex[:12], "started": "2026-06-15T02:00:00Z", "finished": "2026-06-15T02:01:00Z",
        "duration": 60.0, "status": "success", "source": {"type": kind, "name": "planted"},
        "artifacts": [artifact.to_dict()], "entries": [{"name": name, "status": "backed_up", "key": artifact.key,
                                                        "error": None}],
        "counts": {"backed_up": 1}, "warnings": [], "errors": [], "tools": {}})
    return storage


def tar_of(*members):
    """A tar archive of (TarInfo, bytes or None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name, data=b"x", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, linkname, 0o644, 1500000000
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def restore(storage, **args):
    return run_module(COLLECTIONS, "backup_restore", dict(job=JOB, storage=storage, **args))


OUTSIDE = "corebackup-escaped-%s" % uuid.uuid4().hex[:8]


def hostile_trees(top, outside):
    """name -> (tar bytes, what the refusal says) for an archive whose top entry is ``top``."""
    good = member(top, kind=tarfile.DIRTYPE)
    return {
        "climbs-out": (tar_of(good, member("%s/../../%s" % (top, OUTSIDE))), "climbs out with '..'"),
        "absolute": (tar_of(good, member(os.path.join(outside, OUTSIDE))), "an absolute path"),
        "through-a-link": (tar_of(good, member("%s/evil" % top, kind=tarfile.SYMTYPE, linkname=outside),
                                  member("%s/evil/%s" % (top, OUTSIDE))), "is a symbolic link"),
        "hard-link-out": (tar_of(good, member("%s/passwd" % top, kind=tarfile.LNKTYPE, linkname="../../../../etc/passwd")),
                          "climbs out with '..'"),
        "truncated": (tar_of(good, member("%s/big" % top, b"y" * 200000))[:70000], "is not a complete tar archive"),
    }


@pytest.mark.parametrize("kind, case", [("files", case) for case in ("climbs-out", "absolute", "through-a-link",
                                                                     "hard-link-out", "truncated")]
                         + [("github", "climbs-out"), ("github", "through-a-link")])
def test_a_hostile_or_truncated_archive_writes_nothing_anywhere(tmp_path, kind, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    top = "data" if kind == "files" else "repo.git"
    data, said = hostile_trees(top, str(outside))[case]
    storage = plant(tmp_path, kind, "data", data, metadata={"path": "/srv/data"} if kind == "files" else {})
    dest = tmp_path / "dest"
    dest.mkdir()
    run = restore(storage, dest=str(dest))
    assert run.failed and said in run.result["msg"], run.result.get("msg")
    assert os.listdir(str(outside)) == [] and not os.path.exists(str(tmp_path / OUTSIDE))
    assert os.listdir(str(dest)) == []  # not even the staging folder
    assert os.path.exists("/etc/passwd") and not any(OUTSIDE in path for path in files_below(str(tmp_path)))
    if case == "truncated":  # a drill says so too, and records it
        drill = restore(storage, state="drill")
        assert drill.failed and said in drill.result["msg"] and drill.result["drill"]["result"] == "failed"


def collection_archive(documents, oplog=(), crc_lie=False, cut=None, no_eof=False):
    """A mongodump archive of shop.items holding ``documents``, and the oplog entries ``oplog`` (mongodump --oplog);
    ``crc_lie`` records a wrong checksum for the collection, ``cut`` keeps only the bytes up to the middle of the
    collection's documents, ``no_eof`` ends the archive after them (its end marker missing)."""
    raw = b"".join(bson.encode(document) for document in documents)
    metadata = archive.collection_metadata({"name": "items", "type": "collection", "options": {}},
                                           [{"v": 2, "key": {"_id": 1}, "name": "_id_"}])
    parts = [archive.header("7.0.0", 1, "test"), archive.prelude([("shop", "items", metadata, "collection")]),
             archive.segment("shop", "items", raw)]
    if cut:
        parts[-1] = parts[-1][:len(parts[-1]) // 2]
    elif not no_eof:
        parts.append(archive.eof("shop", "items", archive.crc64(raw) ^ (1 if crc_lie else 0)))
    if oplog:
        entries = b"".join(bson.encode(entry) for entry in oplog)
        parts += [archive.segment("", "oplog", entries), archive.eof("", "oplog", archive.crc64(entries))]
    return b"".join(parts)


@pytest.fixture
def mongo(mongo_server):
    client = pymongo.MongoClient(mongo_server)
    names = ["restored_%s" % uuid.uuid4().hex[:8]]
    yield mongo_server, client, names[0]
    client.drop_database(names[0])
    client.close()


@pytest.mark.parametrize("damage, said", [
    ({"crc_lie": True}, "the archive's checksum does not match its documents"),
    ({"cut": True}, "is not a complete mongodump archive: the archive ends in the middle of a document"),
    ({"no_eof": True}, "is not a complete mongodump archive: it ends before the end of shop.items"),
])
def test_a_damaged_mongodb_archive_leaves_no_collection_behind(tmp_path, mongo, damage, said):
    uri, client, database = mongo
    documents = [{"_id": n, "name": "item %d" % n} for n in range(50)]
    storage = plant(tmp_path, "mongodb", "shop", collection_archive(documents, **damage), ext="archive",
                    metadata={"databases": "shop"})
    run = restore(storage, uri=uri, ns_from="shop.*", ns_to=database + ".*")
    assert run.failed and said in run.result["msg"], run.result.get("msg")
    assert client[database].list_collection_names() == []  # no scratch collection, no half collection


def test_the_oplog_of_a_point_in_time_dump_is_replayed_entry_by_entry(tmp_path, mongo):
    """Inserts, deletes, updates with operators, replacements and $v: 2 diffs (nested fields, array elements,
    removals), in the order the oplog holds them, over the dumped documents."""
    uri, client, database = mongo
    documents = [{"_id": 1, "name": "lamp", "price": 10, "tags": ["a", "b"], "dims": {"w": 1, "h": 2}},
                 {"_id": 2, "name": "desk", "price": 100},
                 {"_id": 3, "name": "chair", "price": 40, "old": True}]

    def entry(n, op, o, o2=None):
        found = {"ts": Timestamp(1750000000, n), "t": 1, "op": op, "ns": "shop.items", "o": o}
        if o2 is not None:
            found["o2"] = o2
        return found

    oplog = [
        entry(1, "i", {"_id": 4, "name": "shelf", "price": 70}),
        entry(2, "u", {"$v": 2, "diff": {"u": {"price": 12}, "sdims": {"u": {"h": 3}, "i": {"d": 4}}, "d": {"name": False}}},
              {"_id": 1}),
        entry(3, "u", {"$v": 2, "diff": {"stags": {"a": True, "u1": "z"}}}, {"_id": 1}),
        entry(4, "u", {"$set": {"price": 90}, "$unset": {"missing": ""}}, {"_id": 2}),
        entry(5, "u", {"_id": 3, "name": "stool", "price": 25}, {"_id": 3}),  # a replacement: "old" goes
        entry(6, "d", {"_id": 4}),
        entry(7, "i", {"_id": 5, "name": "rug", "price": 30}),
        entry(8, "n", {"msg": "periodic noop"}),
    ]
    storage = plant(tmp_path, "mongodb", "shop", collection_archive(documents, oplog), ext="archive",
                    metadata={"databases": "shop"})
    run = restore(storage, uri=uri, ns_from="shop.*", ns_to=database + ".*")
    assert not run.failed, run.result.get("msg")
    assert run.result["restored"][0]["oplog_applied"] == 7  # the noop is not an operation on a document
    restored = {doc["_id"]: doc for doc in client[database]["items"].find()}
    assert restored == {
        1: {"_id": 1, "price": 12, "tags": ["a", "z"], "dims": {"w": 1, "h": 3, "d": 4}},
        2: {"_id": 2, "name": "desk", "price": 90},
        3: {"_id": 3, "name": "stool", "price": 25},
        5: {"_id": 5, "name": "rug", "price": 30},
    }
    client.drop_database(database)
    without = restore(storage, uri=uri, ns_from="shop.*", ns_to=database + ".*", oplog_replay=False)
    assert not without.failed and without.result["restored"][0]["oplog_applied"] == 0
    assert sorted(doc["_id"] for doc in client[database]["items"].find()) == [1, 2, 3]
