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
run:
  description:
    - This run as recorded in its backup set (O(record)) - C(run_id), C(status), C(started), C(finished) and C(errors).
  returned: when recorded
  type: dict
  sample: {run_id: 5d0c1e2f3a4b, status: success, started: "2026-06-15T02:00:00Z", finished: "2026-06-15T02:00:31Z",
           errors: []}
manifest_key:
  description: The key of the set's C(manifest.json), which the run was recorded into.
  returned: when recorded
  type: str
run_key:
  description: The key of the run's own record.
  returned: when recorded
  type: str
set_status:
  description: The status of the whole set once the run was recorded (V(success), V(partial) or V(failed)).
  returned: when recorded
  type: str
record_error:
  description: Why the run could not be recorded (its artifacts are stored; M(corebackup.backup.backup_manifest) can record them).
  returned: when recording failed
  type: str
"""

from ansible_collections.corebackup.backup.plugins.module_utils._services.files import SLICE


def main():
    SLICE.main()


if __name__ == "__main__":
    main()
