# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""mongodump's archive format, written from raw BSON (common/archive/spec.md in mongodb/mongo-tools).

    archive = magic-number, header, *collection-metadata, terminator,
              *(namespace-segment | namespace-eof)
    namespace-segment = namespace-header (EOF false, CRC 0), +document, terminator
    namespace-eof = eof-header (EOF true, CRC-64-ECMA of all the namespace's documents), terminator

Documents are never decoded: the raw batches the server sends are written as they are. Collection
metadata is the JSON that mongodump writes to ``<collection>.metadata.json``: canonical Extended JSON
v2, compact, keys in mongodump's order (``options`` when there are any, ``indexes``, ``uuid`` as hex,
``collectionName``, ``type``). The official ``mongorestore --archive`` restores what this writes.
"""

from __future__ import annotations

import struct
import typing as t

try:  # the collection's one guard of pymongo (bson comes with it)
    import bson
    import bson.json_util
    import pymongo  # noqa: F401 pylint: disable=unused-import
    from bson.int64 import Int64
    from bson.json_util import CANONICAL_JSON_OPTIONS
    from bson.son import SON
    HAS_PYMONGO = True
    PYMONGO_IMP_ERR = None
except ImportError as _imp_exc:  # pragma: no cover - depends on the host
    HAS_PYMONGO = False
    PYMONGO_IMP_ERR = _imp_exc

try:
    import fastcrc
    HAS_FASTCRC = True
except ImportError:  # pragma: no cover - depends on the host
    HAS_FASTCRC = False

MAGIC = struct.pack("<I", 0x8199E26D)
TERMINATOR = b"\xff\xff\xff\xff"
FORMAT_VERSION = "0.1"
FORMAT = "mongodump-archive-" + FORMAT_VERSION
OPLOG_NAMESPACE = ("", "oplog")  # where mongodump --oplog puts the oplog entries of the dump

_CRC_TABLE: list[int] = []


def _crc_table() -> list[int]:
    if not _CRC_TABLE:
        for byte in range(256):
            crc = byte
            for _bit in range(8):
                crc = (crc >> 1) ^ 0xC96C5795D7870F42 if crc & 1 else crc >> 1
            _CRC_TABLE.append(crc)
    return _CRC_TABLE


def crc64(data: bytes, crc: int | None = None, pure: bool = False) -> int:
    """CRC-64-ECMA as Go's ``hash/crc64`` computes it (CRC-64/XZ), continuing from ``crc``.

    With the ``fastcrc`` library it runs at memory speed; without it (or with ``pure``), a table in
    Python does it slowly.
    """
    if HAS_FASTCRC and not pure:
        return fastcrc.crc64.xz(data, crc)
    table = _crc_table()
    crc = (crc or 0) ^ 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def canonical_json(document: t.Any) -> str:
    """Canonical Extended JSON v2, compact, as the Go driver writes it for mongodump."""
    return bson.json_util.dumps(document, json_options=CANONICAL_JSON_OPTIONS, separators=(",", ":"), ensure_ascii=False)


def collection_metadata(info: dict, indexes: list) -> str:
    """The metadata JSON of a collection, from its ``listCollections`` entry and its ``listIndexes``."""
    metadata = SON()
    if info.get("options"):
        metadata["options"] = info["options"]
    metadata["indexes"] = [] if info.get("type") == "view" else list(indexes)
    uuid = (info.get("info") or {}).get("uuid")
    if uuid is not None and info.get("type") != "view":
        metadata["uuid"] = bytes(uuid).hex()
    metadata["collectionName"] = info["name"]
    if info.get("type"):
        metadata["type"] = info["type"]
    return canonical_json(metadata)


def header(server_version: str, concurrent_collections: int, tool_version: str) -> bytes:
    return MAGIC + bson.encode(SON([("concurrent_collections", concurrent_collections), ("version", FORMAT_VERSION),
                                    ("server_version", server_version), ("tool_version", tool_version)]))


def prelude(collections: t.Iterable[tuple[str, str, str, str]]) -> bytes:
    """The collection-metadata documents and the terminator: (db, collection, metadata JSON, type) each."""
    parts = [bson.encode(SON([("db", db), ("collection", name), ("metadata", metadata), ("size", 0), ("type", kind)]))
             for db, name, metadata, kind in collections]
    return b"".join(parts) + TERMINATOR


def _namespace_header(db: str, collection: str, eof: bool, crc: int) -> bytes:
    signed = crc - (1 << 64) if crc >= 1 << 63 else crc  # BSON has no unsigned int64
    return bson.encode(SON([("db", db), ("collection", collection), ("EOF", eof), ("CRC", Int64(signed))]))


def segment_parts(db: str, collection: str, documents: bytes) -> tuple[bytes, bytes, bytes]:
    """One namespace segment in its three parts (so that a large batch is never copied): a header, the
    raw documents, the terminator."""
    return _namespace_header(db, collection, False, 0), documents, TERMINATOR


def segment(db: str, collection: str, documents: bytes) -> bytes:
    return b"".join(segment_parts(db, collection, documents))


def eof(db: str, collection: str, crc: int) -> bytes:
    return _namespace_header(db, collection, True, crc) + TERMINATOR


def count_documents(raw: bytes) -> int:
    """How many BSON documents a raw batch holds (their lengths, walked; nothing is decoded)."""
    count = position = 0
    view = memoryview(raw)
    while position < len(raw):
        position += struct.unpack_from("<i", view, position)[0]
        count += 1
    if position != len(raw):
        raise ValueError("a raw batch does not end on a document boundary")
    return count


def read_archive(reader: t.Any) -> t.Iterator[tuple]:
    """Events of an archive read from ``reader`` (a ``read(n)`` object), in order, never holding more than a
    document: ("header", dict), ("collection", db, name, metadata JSON, type), ("document", db, name, raw
    BSON), ("eof", db, name, CRC the archive gives, CRC of the documents read). Raises ValueError on a
    malformed archive."""
    def document() -> bytes | None:
        head = reader.read(4)
        if len(head) < 4:
            raise ValueError("the archive ends in the middle of a document")
        (size,) = struct.unpack("<i", head)
        if size == -1:
            return None
        if size < 5:
            raise ValueError("a malformed document length %d" % size)
        body = reader.read(size - 4)
        if len(body) != size - 4:
            raise ValueError("the archive ends in the middle of a document")
        return head + body

    if reader.read(4) != MAGIC:
        raise ValueError("not a mongodump archive (its magic number is missing)")
    yield ("header", bson.decode(document()))
    while True:
        raw = document()
        if raw is None:
            break
        entry = bson.decode(raw)
        yield ("collection", entry["db"], entry["collection"], entry.get("metadata") or "{}", entry.get("type") or "")
    crcs: dict = {}
    while True:
        head = reader.read(4)
        if not head:
            return
        (size,) = struct.unpack("<i", head)
        body = reader.read(size - 4)
        header_doc = bson.decode(head + body)
        key = (header_doc["db"], header_doc["collection"])
        if header_doc["EOF"]:
            if document() is not None:
                raise ValueError("no terminator after the end of %s.%s" % key)
            yield ("eof", key[0], key[1], header_doc["CRC"] & 0xFFFFFFFFFFFFFFFF, crcs.get(key, 0))
            continue
        while True:
            raw = document()
            if raw is None:
                break
            crcs[key] = crc64(raw, crcs.get(key))
            yield ("document", key[0], key[1], raw)
