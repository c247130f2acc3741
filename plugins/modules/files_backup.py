#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: files_backup
short_description: Back up files, directories and SQLite databases of the backup host
version_added: 0.1.0
description:
  - Stores one artifact per path, C(<name>_<timestamp>.tar.gz) (or C(.zst), C(.age) when encrypted), a
    POSIX tar that keeps modes, numeric owners, times, symbolic links, hard links, empty directories
    and names that are not UTF-8.
  - A file that changes while it is read is archived consistently with its header (padded or cut, as
    GNU tar does) and its entry gets a warning naming it.
  - A path with C(sqlite) is copied with SQLite's online backup API into the module's temporary
    directory first, so the copy is consistent while the database is in use; its C(-wal), C(-shm) and
    C(-journal) files are never archived.
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - corebackup.backup.common
  - corebackup.backup.common.packing
  - corebackup.backup.common.service
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Walks the paths and reports what a real run would do; stores nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  paths:
    description:
      - What to back up. Each item is a path, or a dictionary with C(path) and any of C(name) (the
        artifact's name, by default the path's last component), C(exclude) (more patterns) and C(sqlite).
    type: list
    elements: raw
    required: true
  exclude:
    description:
      - Glob patterns left out of every path, matched against the path of an entry relative to its
        root and against its name (V(*.log), V(cache/*), V(.git)).
    type: list
    elements: str
    default: []
  one_file_system:
    description: Do not descend into directories on other file systems.
    type: bool
    default: false
  follow_symlinks:
    description: Archive what symbolic links point at instead of the links.
    type: bool
    default: false
  job:
    description: Name of the backup job.
    type: str
    default: files
notes:
  - With O(skip_unchanged), a path is unchanged when the path, size, modification and change times, inode,
    mode and owner of every entry it holds are as recorded with its newest artifact.
  - A path with C(sqlite) is unchanged when what the database holds is, whatever its files look like (a
    checkpoint or a reader rewrites them without a write). So every run, check mode too, reads the whole
    database to make its consistent copy, and hashes that copy (the copy of an unwritten database is the
    same bytes each time); the copy is archived when it differs. The first run after an upgrade from a
    release that compared file attributes backs each database up once more.
"""

EXAMPLES = r"""
- name: Back up configuration and a live SQLite database, encrypted
  corebackup.backup.files_backup:
    paths:
      - /etc/gitlab
      - {path: /srv/app/data.db, sqlite: true}
      - {path: /srv/www, name: www, exclude: ["cache/*"]}
    exclude: ["*.tmp"]
    storage: {type: filesystem, path: /mnt/backups}
    encryption: {recipients: ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]}
"""

RETURN = r"""
entries:
  description:
    - One entry per path, in the form every service module returns (see C(plugins/module_utils/_service.py));
      C(paths) is the same list. C(warnings) names files that changed while they were read.
  returned: always
  type: list
  elements: dict
  sample: [{name: gitlab, status: backed_up, key: files/2026-06-15/gitlab_20260615T020000Z.tar.gz, size: 20480,
            sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, error: null, warnings: []}]
paths:
  description: The same list as RV(entries).
  returned: always
  type: list
  elements: dict
artifacts:
  description: Every artifact today's set holds for the paths, in the shared Artifact form.
  returned: always
  type: list
  elements: dict
job:
  description: The job.
  returned: always
  type: str
source:
  description: What was backed up, the C(type) V(files) and the host's C(name).
  returned: always
  type: dict
status:
  description: V(success), V(partial) (some paths failed) or V(failed).
  returned: always
  type: str
totals:
  description: Counts by status, C(bytes) stored and C(seconds).
  returned: always
  type: dict
cleaned:
  description: Leftovers of killed runs older than a day that were removed.
  returned: always
  type: list
  elements: str
"""

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
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import TreeStats, tar_stream, walk_tree
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceRunner
from ansible_collections.corebackup.backup.plugins.module_utils._specs import FILES


class FilesBackup(Service):
    source_type = "files"
    item_kind = "paths"
    entry_fields = {"warnings": []}

    def __init__(self, module):
        super().__init__(module)
        self._snapshots = {}  # SQLite copies of this run by item: made once, by unchanged() or produce()

    def discover(self):
        if not self.params["paths"]:
            raise OptionError("paths is empty: name at least one path to back up")
        items, names = [], set()
        for raw in self.params["paths"]:
            spec = {"path": raw} if isinstance(raw, str) else raw
            if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or set(spec) - {
                    "path", "name", "exclude", "sqlite"}:
                raise OptionError("paths: each item is a path or a dictionary with path, name, exclude, sqlite; "
                                  "got %r" % (raw,))
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


def main():
    module = BackupModule(packing=True, **FILES)
    module.run(lambda m: ServiceRunner(m, FilesBackup(m)).run())


if __name__ == "__main__":
    main()
