#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_restore
short_description: Restore the artifacts of a backup set, or prove in a drill that they restore
version_added: 0.1.0
description:
  - Takes a backup set of O(job) (O(set_date), by default the newest successful one), selects its items
    (O(items), by default all), and restores each into a target chosen by what backed it up.
  - Each artifact is read once. It streams into a staging target (a folder beside O(dest), a scratch volume,
    scratch collections) and is committed (a rename, a copy between volumes, C(renameCollection)) only after
    its size and sha256 match the record, so a corrupted artifact never touches the target. Extraction is
    safe (no absolute names, no C(..), nothing written through a symbolic link).
  - O(state=drill) restores into scratch targets, compares what was restored with what was recorded at
    backup time (files, bytes and tree digest; refs; documents per collection), removes the scratch targets
    and writes the drill's record into the set (C(drills/<time>_<id>.<ok|failed>.json), written once); a drill
    of every item that passes makes it the set's C(verified_at).
  - Run it where the age identity is (restore hosts), not on backup hosts, which keep only public keys.
  - Host files (M(corebackup.backup.files_backup)) go into O(dest), keeping modes, times, links, and owners
    when run as root. GitHub repositories (M(corebackup.backup.github_backup)) go into O(dest) as a bare
    mirror, a working clone and the metadata, and with O(push_to) into a new repository on GitHub (branches,
    tags and notes; LFS objects; and the wiki when it exists there, since GitHub creates a wiki only from its web page).
    Docker volumes (M(corebackup.backup.volume_snapshot)) go into a volume through the Docker API, stopping
    the containers that use it meanwhile. MongoDB dumps (M(corebackup.backup.mongo_dump)) go into O(uri),
    replaying the dump's oplog when it has one.
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - corebackup.backup.common
  - corebackup.backup.restore
  - ansible.builtin.action_common_attributes
requirements:
  - age (the command, to decrypt encrypted artifacts with O(identity_file))
  - zstandard (the Python library, for artifacts compressed with zstd)
  - git (for GitHub items), and git-lfs to push their LFS objects with O(push_to)
  - docker (the Python library, for Docker volume items)
  - pymongo (for MongoDB items)
attributes:
  check_mode:
    support: full
    details: Reads and checks every selected artifact and says what would be written where; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  state:
    description: V(restored) restores into the targets; V(drill) restores into scratch targets, compares and records.
    type: str
    choices: [restored, drill]
    default: restored
  set_date:
    description: The backup set (V(YYYY-MM-DD)); by default the newest successful one.
    type: str
  items:
    description: Names of the items to restore (repositories, paths, volumes, databases); all by default.
    type: list
    elements: str
    default: []
  identity_file:
    description: An age identity (private key) file of one of the artifacts' recipients. Its content is never read by the module.
    type: path
  pre_restore_backup:
    description:
      - Before an in-place restore replaces what its targets hold (O(force) or O(drop)), back that up with the
        service's own module into the job C(<job>-pre-restore) (a folder with M(corebackup.backup.files_backup),
        a volume with M(corebackup.backup.volume_snapshot), databases with M(corebackup.backup.mongo_dump)),
        packed as O(packing) says, and record it. If it fails, nothing is replaced.
    type: bool
    default: false
  packing:
    description:
      - How the pre-restore backup is packed - the job's own C(compression), C(compression_level),
        C(compression_threads) and C(encryption) (as the backup host packs the job), so that what is about to be
        replaced is not stored in plaintext while the job's other artifacts are encrypted.
      - Required with O(pre_restore_backup); V({}) packs it with the modules' defaults (gzip, not encrypted).
    type: dict
  lock_timeout:
    description:
      - Seconds to wait for a backup run of the job to finish before a volume restore stops the volume's
        containers under the job's lease; V(0) fails at once.
    type: int
    default: 0
  job:
    description: The job whose set is restored.
    type: str
"""

EXAMPLES = r"""
- name: Restore two repositories of last night into /srv/restore
  corebackup.backup.backup_restore:
    job: github
    items: [tool, docs]
    dest: /srv/restore
    identity_file: /root/.config/age/backup.key
    storage: {type: s3, bucket: backups, prefix: github/}

- name: Prove that the newest set of a job restores
  corebackup.backup.backup_restore:
    state: drill
    job: mongodb
    uri: mongodb://restore-test:27017/
    identity_file: /root/.config/age/backup.key
    storage: {type: s3, bucket: backups}
"""

RETURN = r"""
set_date:
  description: The set restored from.
  returned: always
  type: str
restored:
  description:
    - Per item C(name), C(type), C(key), C(target), C(checksum) (V(ok), or why not), C(bytes) (restored), and
      C(files), C(refs) or C(documents); in a drill C(status) (V(ok), V(mismatch) or V(failed)) and C(detail).
  returned: always
  type: list
  elements: dict
drill:
  description: The drill, as its record holds it (C(when), C(items), C(result), C(duration)).
  returned: when O(state=drill)
  type: dict
pre_restore:
  description: The pre-restore backup (C(job), C(status), C(run_id), C(artifacts)), when one was made.
  returned: when O(pre_restore_backup) backed something up
  type: dict
"""

from ansible_collections.corebackup.backup.plugins.module_utils._errors import OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._registry import SERVICES, restore_spec
from ansible_collections.corebackup.backup.plugins.module_utils._restore import PACKING, RestoreRunner


def run(module):
    packing = module.params["packing"]
    if module.params["pre_restore_backup"] and packing is None:
        raise OptionError("pre_restore_backup needs packing (the job's compression and encryption), so that what is "
                          "replaced is not stored otherwise than the job's artifacts; packing: {} for the defaults")
    unknown = sorted(set(packing or {}) - set(PACKING))
    if unknown:
        raise OptionError("packing: unknown keys %s (it takes %s)" % (", ".join(unknown), ", ".join(PACKING)))
    RestoreRunner(module, SERVICES).run()


def main():
    module = BackupModule(argument_spec=dict(
        state=dict(type="str", choices=["restored", "drill"], default="restored"),
        set_date=dict(type="str"),
        items=dict(type="list", elements="str", default=[]),
        identity_file=dict(type="path"),
        pre_restore_backup=dict(type="bool", default=False),
        packing=dict(type="dict"),
        lock_timeout=dict(type="int", default=0),
        **restore_spec(),
    ))
    module.run(run)


if __name__ == "__main__":
    main()
