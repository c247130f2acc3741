# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""A repository's metadata on disk while it is read: memory stays flat whatever the repository's size.

Each page of issues, pull requests, comments, releases, labels and milestones is normalized to the
stored format (:mod:`._github_format`) as it arrives and spooled into a SQLite database in the
module's temporary folder (:class:`MetadataSpool`). The files of the artifact's ``metadata/`` folder
are then written from the spool in the format's order, and ``metadata_digest`` is computed on the way
(:func:`write_documents`): the bytes and the digest are those :func:`canonical_json` gives for the
whole lists, which the unit tests check.

JSON text never holds a raw newline (inside strings it is escaped), so a document rendered alone
with ``indent=1`` is nested deeper by indenting each of its lines: that is how the lists are written
one element at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import typing as t

# SQLite's page cache for one spool (KiB): what a spool holds in memory whatever its size.
CACHE_KIB = 2048


def canonical_json(data: t.Any) -> bytes:
    """The stored form of a document: sorted keys, one-space indent, UTF-8, a final newline."""
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _element(data: t.Any, depth: int) -> str:
    """``data`` as it appears at ``depth`` inside a canonical document (the indent of its first line not included)."""
    return json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False).replace("\n", "\n" + " " * depth)


class CanonicalList:
    """Writes ``canonical_json(list)`` element by element to ``write`` (bytes), at ``depth`` inside a document."""

    def __init__(self, write: t.Callable[[bytes], t.Any], depth: int = 0):
        self.write = write
        self.depth = depth
        self.count = 0

    def add(self, element: t.Any) -> None:
        prefix = "[\n" if not self.count else ",\n"
        inner = " " * (self.depth + 1)
        self.write((prefix + inner + _element(element, self.depth + 1)).encode("utf-8"))
        self.count += 1

    def close(self) -> None:
        self.write(("\n" + " " * self.depth + "]").encode("utf-8") if self.count else b"[]")


class ListDigest:
    """sha256 of ``canonical_json(items)`` without holding the items; ``hexdigest()`` once every item is added."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._list = CanonicalList(self._hash.update)

    def add(self, item: t.Any) -> None:
        self._list.add(item)

    def hexdigest(self) -> str:
        self._list.close()
        self._hash.update(b"\n")
        return self._hash.hexdigest()


def without_download_counts(release: dict) -> dict:
    """A release as the digests see it: an asset's download counter moves by reading it."""
    return dict(release, assets=[{k: v for k, v in asset.items() if k != "download_count"}
                                 for asset in release.get("assets") or []])


# The order the stored format keeps each list in (stable: equal keys keep their arrival order).
SORT_KEYS: dict[str, t.Callable[[dict], tuple]] = {
    "issues.json": lambda i: (i["number"], 0),
    "pulls.json": lambda p: (p["number"], 0),
    "releases.json": lambda r: (r["created_at"] or "", r["id"] or 0),
    "labels.json": lambda label: (label["name"] or "", 0),
    "milestones.json": lambda m: (m["number"], 0),
}


def _sortable(value: t.Any) -> t.Any:
    """A sort key SQLite orders as Python does: text as UTF-8 bytes (byte order is code point order)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return value


def _dumps(data: t.Any) -> str:
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


class MetadataSpool:
    """The normalized documents of one repository (by file name) and their children (comments by the item
    they belong to), in a SQLite file of the module's temporary folder. One spool belongs to one thread."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, "metadata-spool.sqlite")
        self.db = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE", "cache_size=-%d" % CACHE_KIB):
            self.db.execute("PRAGMA " + pragma)
        self.db.execute("CREATE TABLE documents (seq INTEGER PRIMARY KEY, file TEXT, k1, k2, link TEXT, body TEXT)")
        self.db.execute("CREATE TABLE children (seq INTEGER PRIMARY KEY, kind TEXT, parent TEXT, body TEXT)")
        self.db.execute("BEGIN")
        self._indexed = False
        self.counts: dict[str, int] = {}

    def add(self, file_name: str, document: dict, link: t.Any = None) -> None:
        """A document of ``file_name`` (``issues.json``, ...); ``link`` is what its children name as parent."""
        k1, k2 = SORT_KEYS[file_name](document)
        self.db.execute("INSERT INTO documents (file, k1, k2, link, body) VALUES (?, ?, ?, ?, ?)",
                        (file_name, _sortable(k1), _sortable(k2), _dumps(link), _dumps(document)))
        self.counts[file_name] = self.counts.get(file_name, 0) + 1

    def add_child(self, kind: str, parent: t.Any, document: t.Any) -> None:
        self.db.execute("INSERT INTO children (kind, parent, body) VALUES (?, ?, ?)",
                        (kind, _dumps(parent), _dumps(document)))

    def clear(self) -> None:
        """Forget everything spooled (the metadata is read again, through another API)."""
        self.db.execute("DELETE FROM documents")
        self.db.execute("DELETE FROM children")
        self.counts = {}

    def _index(self) -> None:
        if not self._indexed:
            self.db.execute("COMMIT")
            self.db.execute("CREATE INDEX documents_order ON documents (file, k1, k2, seq)")
            self.db.execute("CREATE INDEX children_parent ON children (kind, parent, seq)")
            self._indexed = True

    def documents(self, file_name: str) -> t.Iterator[tuple[dict, t.Any]]:
        """(document, link) of ``file_name`` in the format's order."""
        self._index()
        cursor = self.db.execute("SELECT body, link FROM documents WHERE file = ? ORDER BY k1, k2, seq", (file_name,))
        for body, link in cursor:
            yield json.loads(body), json.loads(link)

    def children(self, kind: str, parent: t.Any = None, every: bool = False) -> list:
        """The children of ``kind`` whose parent is ``parent`` (of every parent with ``every``), in arrival order."""
        self._index()
        if every:
            cursor = self.db.execute("SELECT body FROM children WHERE kind = ? ORDER BY seq", (kind,))
        else:
            cursor = self.db.execute("SELECT body FROM children WHERE kind = ? AND parent = ? ORDER BY seq",
                                     (kind, _dumps(parent)))
        return [json.loads(body) for (body,) in cursor]

    def close(self) -> None:
        self.db.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def write_documents(spool: MetadataSpool, folder: str, file_names: t.Iterable[str],
                    complete: t.Callable[[str, dict, t.Any], dict] | None = None) -> str:
    """Write each of ``file_names`` into ``folder`` from the spool (as ``canonical_json`` of its whole list) and
    return ``metadata_digest``: sha256 of ``canonical_json({file name: list})``, releases without download counts.

    ``complete(file_name, document, link)`` gives the document as stored (its children joined in).
    """
    digest = hashlib.sha256()
    names = sorted(file_names)
    digest.update(b"{" if names else b"{}")
    for position, file_name in enumerate(names):
        digest.update((("\n" if not position else ",\n") + " " + _element(file_name, 1) + ": ").encode("utf-8"))
        in_digest = CanonicalList(digest.update, depth=1)
        with open(os.path.join(folder, file_name), "wb") as handle:
            in_file = CanonicalList(handle.write)
            for document, link in spool.documents(file_name):
                if complete is not None:
                    document = complete(file_name, document, link)
                in_file.add(document)
                in_digest.add(without_download_counts(document) if file_name == "releases.json" else document)
            in_file.close()
            handle.write(b"\n")
        in_digest.close()
    if names:
        digest.update(b"\n}")
    digest.update(b"\n")
    return digest.hexdigest()
