# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A reader of mongodump's archive format, written from its specification (common/archive/spec.md in
mongodb/mongo-tools) independently of the collection's writer, and a restore through pymongo.

It checks what mongorestore checks: the magic number, the terminators, that every namespace ends with
an EOF header whose CRC-64-ECMA (computed here with a table of its own) matches its documents.
"""

from __future__ import annotations

import dataclasses
import struct

import bson
import bson.json_util
from bson.raw_bson import RawBSONDocument

MAGIC = 0x8199E26D
TERMINATOR = -1
ECMA = 0xC96C5795D7870F42
_TABLE = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ ECMA if _crc & 1 else _crc >> 1
    _TABLE.append(_crc)


def crc64_ecma(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


class ArchiveError(Exception):
    pass


@dataclasses.dataclass
class Namespace:
    db: str
    collection: str
    metadata: str | None = None  # the metadata JSON of the prelude
    type: str = ""
    documents: list = dataclasses.field(default_factory=list)  # raw BSON bytes, in archive order
    crc: int = 0
    closed: bool = False


@dataclasses.dataclass
class Archive:
    header: dict
    namespaces: dict  # (db, collection) -> Namespace, prelude order first


def _document(data: bytes, position: int) -> tuple[bytes | None, int]:
    (size,) = struct.unpack_from("<i", data, position)
    if size == TERMINATOR:
        return None, position + 4
    if size < 5 or position + size > len(data) or data[position + size - 1] != 0:
        raise ArchiveError("a malformed BSON document at offset %d" % position)
    return data[position:position + size], position + size


def read(data: bytes) -> Archive:
    if len(data) < 4 or struct.unpack_from("<I", data, 0)[0] != MAGIC:
        raise ArchiveError("not a mongodump archive (magic number)")
    raw, position = _document(data, 4)
    header = bson.decode(raw)
    namespaces: dict = {}
    while True:
        raw, position = _document(data, position)
        if raw is None:
            break
        entry = bson.decode(raw)
        namespaces[(entry["db"], entry["collection"])] = Namespace(entry["db"], entry["collection"], entry["metadata"],
                                                                   entry.get("type", ""))
    while position < len(data):
        raw, position = _document(data, position)
        if raw is None:
            raise ArchiveError("a terminator where a namespace header belongs, at offset %d" % position)
        ns_header = bson.decode(raw)
        key = (ns_header["db"], ns_header["collection"])
        namespace = namespaces.setdefault(key, Namespace(*key))
        if namespace.closed:
            raise ArchiveError("%s.%s has data after its EOF" % key)
        if ns_header["EOF"]:
            expected = ns_header["CRC"] & 0xFFFFFFFFFFFFFFFF
            if expected != namespace.crc:
                raise ArchiveError("CRC mismatch for %s.%s: %x != %x" % (key + (namespace.crc, expected)))
            namespace.closed = True
            raw, position = _document(data, position)
            if raw is not None:
                raise ArchiveError("no terminator after the EOF of %s.%s" % key)
            continue
        count = 0
        while True:
            raw, position = _document(data, position)
            if raw is None:
                break
            namespace.documents.append(raw)
            namespace.crc = crc64_ecma(raw, namespace.crc)
            count += 1
        if not count:
            raise ArchiveError("an empty segment of %s.%s" % key)
    unclosed = [k for k, n in namespaces.items() if not n.closed]
    if unclosed:
        raise ArchiveError("namespaces without EOF: %s" % unclosed)
    return Archive(header, namespaces)


def restore(client, archive: Archive, rename=lambda db: db) -> None:
    """Create each collection with its options and indexes, insert its documents as raw BSON, make views."""
    views = []
    for (db, name), namespace in archive.namespaces.items():
        if not db:
            continue  # the oplog of an --oplog dump
        metadata = bson.json_util.loads(namespace.metadata)
        options = dict(metadata.get("options") or {})
        target = client[rename(db)]
        if namespace.type == "view":
            views.append((target, name, options))
            continue
        target.create_collection(name, **options)
        indexes = [index for index in metadata["indexes"] if index["name"] != "_id_"]
        for index in indexes:
            spec = dict(index)
            keys = list(spec.pop("key").items())
            spec.pop("v", None)
            spec.pop("ns", None)
            target[name].create_index(keys, **spec)
        if namespace.documents:
            target[name].insert_many([RawBSONDocument(raw) for raw in namespace.documents], ordered=True)
    for target, name, options in views:
        target.create_collection(name, **options)
