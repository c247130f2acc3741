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
import socket
import sqlite3
import tempfile
import urllib.parse

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import TreeStats, tar_stream, walk_tree
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceRunner
from ansible_collections.corebackup.backup.plugins.module_utils._specs import FILES


class FilesBackup(Service):
    source_type = "files"
    item_kind = "paths"
    entry_fields = {"warnings": []}

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
        entries = list(walk_tree(spec["path"], **self.tree(spec)))
        if spec.get("sqlite") and os.path.exists(spec["path"] + "-wal"):  # a write may sit in the log only
            entries.append(next(walk_tree(spec["path"] + "-wal")))
        digest = hashlib.sha256(repr((sorted(spec.items()), sorted(self.tree(spec).items()))).encode())
        for entry in entries:
            info = entry.stat
            digest.update(repr((entry.relative, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino,
                                info.st_mode, info.st_uid, info.st_gid)).encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def unchanged(self, item, recorded, entry):
        return recorded.get("fingerprint") == self.fingerprint(item.data)

    def produce(self, item, recorded, entry):
        spec = item.data
        fingerprint = self.fingerprint(spec)
        if recorded and recorded.get("fingerprint") == fingerprint:
            return None
        metadata = {"path": spec["path"], "fingerprint": fingerprint}
        arcname = os.path.basename(spec["path"].rstrip("/")) or "root"

        def warn(message):
            entry["warnings"].append(message)
            self.module.warn("%s: %s" % (item.name, message))

        stats = TreeStats()

        def contents():
            return {"files": stats.files, "bytes": stats.bytes, "tree_digest": stats.digest}

        if not spec.get("sqlite"):
            stream = tar_stream([(spec["path"], arcname)], warn=warn, stats=stats, **self.tree(spec))
            return self.store(item, "tar", stream, metadata, contents=contents)
        with tempfile.TemporaryDirectory(dir=self.module.module.tmpdir) as workspace:
            copy = os.path.join(workspace, arcname)
            sqlite_copy(spec["path"], copy)
            return self.store(item, "tar", tar_stream([(copy, arcname)], warn=warn, stats=stats), metadata, contents=contents)


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
