# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The files service: host paths (and live SQLite databases) backed up by files_backup, restored into a folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sqlite3
import tempfile
import urllib.parse
from dataclasses import dataclass

from ansible_collections.corebackup.backup.plugins.module_utils._checksum import iter_reader, sha256_stream
from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import TreeStats, tar_stream, walk_tree
from ansible_collections.corebackup.backup.plugins.module_utils._restore import FolderRestorer
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceSlice, item_specs

SPEC = dict(
    argument_spec=dict(
        paths=dict(type="list", elements="raw", required=True),
        exclude=dict(type="list", elements="str", default=[]),
        one_file_system=dict(type="bool", default=False),
        follow_symlinks=dict(type="bool", default=False),
    ),
    job_default="files",
)


class FilesBackup(Service):
    item_kind = "paths"
    entry_fields = {"warnings": []}

    def __init__(self, module):
        super().__init__(module)
        self._snapshots = {}  # SQLite copies of this run by item: made once, by unchanged() or produce()

    def discover(self):
        if not self.params["paths"]:
            raise OptionError("paths is empty: name at least one path to back up")
        items, names = [], set()
        for spec in item_specs(self.params["paths"], "paths", "path", ("name", "exclude", "sqlite")):
            path = os.path.abspath(spec["path"])
            item = Item(spec.get("name") or os.path.basename(path.rstrip("/")) or "root", data=dict(spec, path=path))
            if item.key_name in names:
                raise OptionError("paths: two paths would share the artifact name %r; give one a name" % item.name)
            names.add(item.key_name)
            items.append(item)
        return items

    def source(self):
        return {"type": "files", "name": socket.gethostname()}

    def tree(self, spec):
        """How a path is walked and archived: the module's and the path's own excludes, and the flags."""
        return dict(exclude=self.params["exclude"] + list(spec.get("exclude") or []),
                    one_file_system=self.params["one_file_system"], follow_symlinks=self.params["follow_symlinks"])

    def fingerprint(self, spec):
        """A path's fingerprint: what the walk sees of every entry (no content is read)."""
        digest = hashlib.sha256(repr((sorted(spec.items()), sorted(self.tree(spec).items()))).encode())
        for entry in walk_tree(spec["path"], **self.tree(spec)):
            info = entry.stat
            digest.update(repr((entry.relative, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino,
                                info.st_mode, info.st_uid, info.st_gid)).encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def sqlite_snapshot(self, item):
        """The item's consistent copy of this run, made on first use, and its fingerprint: what the database
        holds (the copy's sha256), not what its files look like. A checkpoint or a reader rewrites the files
        without changing the rows; the copy, in rollback-journal mode, is the same bytes until a write."""
        snapshot = self._snapshots.get(item.key_name)
        if snapshot is None:
            spec = item.data
            workspace = tempfile.mkdtemp(prefix="sqlite-", dir=self.module.module.tmpdir)
            try:
                copy = os.path.join(workspace, arcname_of(spec))
                sqlite_copy(spec["path"], copy)
                with open(copy, "rb") as handle:
                    content, _size = sha256_stream(iter_reader(handle, 64 * 1024))
            except BaseException:
                shutil.rmtree(workspace, ignore_errors=True)
                raise
            digest = hashlib.sha256(repr(("sqlite", sorted(spec.items()), content)).encode())
            snapshot = self._snapshots[item.key_name] = SqliteSnapshot(workspace, copy, digest.hexdigest())
        return snapshot

    def release(self, item):
        """Remove the item's copy once it is stored, or not needed."""
        snapshot = self._snapshots.pop(item.key_name, None)
        if snapshot is not None:
            shutil.rmtree(snapshot.workspace, ignore_errors=True)

    def unchanged(self, item, recorded, entry):
        if not item.data.get("sqlite"):
            return recorded.get("fingerprint") == self.fingerprint(item.data)
        same = recorded.get("fingerprint") == self.sqlite_snapshot(item).fingerprint
        if same or self.module.check_mode:
            self.release(item)  # carried or left as it is: the copy is not stored
        return same

    def produce(self, item, recorded, entry):
        if item.data.get("sqlite"):
            try:
                return self.produce_one(item, recorded, entry, self.sqlite_snapshot(item))
            finally:
                self.release(item)
        return self.produce_one(item, recorded, entry)

    def produce_one(self, item, recorded, entry, snapshot=None):
        spec = item.data
        fingerprint = snapshot.fingerprint if snapshot is not None else self.fingerprint(spec)
        if recorded and recorded.get("fingerprint") == fingerprint:
            return None
        metadata = {"path": spec["path"], "fingerprint": fingerprint}
        arcname = arcname_of(spec)

        def warn(message):
            entry["warnings"].append(message)
            self.module.warn("%s: %s" % (item.name, message))

        stats = TreeStats()

        def contents():
            return {"files": stats.files, "bytes": stats.bytes, "tree_digest": stats.digest}

        if snapshot is None:
            stream = tar_stream([(spec["path"], arcname)], warn=warn, stats=stats, **self.tree(spec))
        else:
            stream = tar_stream([(snapshot.copy, arcname)], warn=warn, stats=stats)
        return self.store(item, "tar", stream, metadata, contents=contents)


@dataclass(frozen=True)
class SqliteSnapshot:
    """A consistent copy of a SQLite database in the module's temporary directory, and its fingerprint."""

    workspace: str
    copy: str
    fingerprint: str


def arcname_of(spec):
    return os.path.basename(spec["path"].rstrip("/")) or "root"


def sqlite_copy(path, target):
    """A consistent copy of a live SQLite database (the online backup API), as a single file."""
    if not os.path.isfile(path):
        raise BackupError("%s is not a SQLite database file" % path)
    try:
        source = sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(path), uri=True)
        try:
            with sqlite3.connect(target) as copy:
                source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
            copy.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise BackupError("cannot copy the SQLite database %s: %s" % (path, exc)) from None


class FilesRestorer(FolderRestorer):
    """Host files: the archive's top entry (the backed-up path) into dest, through a staging folder beside it."""

    def restored_path(self, item):
        """dest/<the backed-up path's name>: the archive's top entry."""
        metadata = item["artifact"].get("metadata") or {}
        return os.path.join(self.dest, arcname_of({"path": metadata.get("path") or item["name"]}))


SLICE = ServiceSlice(name="files", module="files_backup", spec=SPEC, backup=FilesBackup, restorer=FilesRestorer,
                     restore_spec=FolderRestorer.SPEC)
