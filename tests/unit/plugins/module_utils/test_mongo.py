# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""mongodump's archive format: metadata as mongodump writes it (golden output from mongo-tools' test data),
CRC-64-ECMA as Go computes it, and archives that an independent reader accepts."""

from __future__ import annotations

import bson
import pytest
from bson.binary import Binary
from bson.son import SON

from ansible_collections.corebackup.backup.plugins.module_utils import _mongo as archive
from ansible_collections.corebackup.backup.tests.testbed import mongo_archive

# mongorestore/testdata/collMod_ttl_index/mongodump_test_db/coll1.metadata.json in mongodb/mongo-tools
GOLDEN = ('{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"},{"v":{"$numberInt":"2"},'
          '"key":{"a":{"$numberInt":"1"}},"name":"a_1","expireAfterSeconds":{"$numberInt":"1000"}}],'
          '"uuid":"ffa7054f30dc422696fa9607e150cb53","collectionName":"coll1","type":"collection"}')


def test_metadata_is_what_mongodump_writes():
    info = {"name": "coll1", "type": "collection", "options": {},
            "info": {"readOnly": False, "uuid": Binary(bytes.fromhex("ffa7054f30dc422696fa9607e150cb53"), 4)},
            "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}}
    indexes = [SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_")]),
               SON([("v", 2), ("key", SON([("a", 1)])), ("name", "a_1"), ("expireAfterSeconds", 1000)])]
    assert archive.collection_metadata(info, indexes) == GOLDEN


def test_views_have_their_options_and_no_indexes():
    info = {"name": "v", "type": "view", "options": SON([("viewOn", "c"), ("pipeline", [{"$match": {"x": 1.5}}])]),
            "info": {"readOnly": True, "uuid": Binary(b"\x01" * 16, 4)}}
    assert archive.collection_metadata(info, []) == (
        '{"options":{"viewOn":"c","pipeline":[{"$match":{"x":{"$numberDouble":"1.5"}}}]},"indexes":[],'
        '"collectionName":"v","type":"view"}')


@pytest.mark.parametrize("data, expected", [(b"", 0), (b"123456789", 0x995DC9BBDF1939FA), (b"a" * 1000, None)])
def test_crc64_is_go_ecma(data, expected):
    value = archive.crc64(data)
    assert value == archive.crc64(data, pure=True) == mongo_archive.crc64_ecma(data)
    if expected is not None:
        assert value == expected
    half = len(data) // 2
    assert archive.crc64(data[half:], archive.crc64(data[:half])) == value


def test_an_archive_is_read_back_with_its_checksums():
    docs = [bson.encode({"_id": n, "v": "x" * n}) for n in range(50)]
    first, second = b"".join(docs[:30]), b"".join(docs[30:])
    assert archive.count_documents(first) == 30
    crc = archive.crc64(second, archive.crc64(first))
    data = (archive.header("8.0.0", 2, "test") + archive.prelude([("db", "c", "{}", ""), ("db", "empty", "{}", "")])
            + archive.segment("db", "c", first) + archive.eof("db", "empty", 0) + archive.segment("db", "c", second)
            + archive.eof("db", "c", crc))
    read = mongo_archive.read(data)
    assert read.namespaces[("db", "c")].documents == docs and read.namespaces[("db", "empty")].documents == []
    at = data.index(second) + len(second) - 5  # a bit flipped in the string of the last document
    broken = data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]
    with pytest.raises(mongo_archive.ArchiveError, match="CRC mismatch for db.c"):
        mongo_archive.read(broken)
    with pytest.raises(ValueError):
        archive.count_documents(first[:-1])


def test_a_crc_above_2_63_is_stored_as_bson_int64():
    header = bson.decode(archive.eof("d", "c", 0xFFFFFFFFFFFFFFF0)[:-4])
    assert header == {"db": "d", "collection": "c", "EOF": True, "CRC": -16}
