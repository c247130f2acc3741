#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mongo_dump
short_description: Back up MongoDB databases in the archive format that mongorestore restores
version_added: 0.1.0
description:
  - Stores one artifact per database (or one for the whole run), C(<database>_<timestamp>.archive.gz) (or
    C(.zst), C(.age) when encrypted), in mongodump's archive format, which C(mongorestore --archive)
    restores. Documents are streamed as the raw BSON the server sends, never decoded, through the shared
    pipeline with bounded memory.
  - Collection metadata (options, indexes, UUID, type; views as views) is written as mongodump writes it.
    The artifact's record lists every collection with its documents and bytes, for restore drills.
  - Without O(oplog), all collections are read in one snapshot session where the server supports
    snapshot reads (MongoDB 5.0 and newer, replica sets), so the dump is consistent across collections;
    otherwise each collection is read on its own and the result warns. With O(oplog) (a replica set, the
    whole server in one artifact), the oplog position is taken before the dump and the entries written
    during it are stored as mongodump's C(--oplog) does, for C(mongorestore --oplogReplay).
  - The URI's credentials never appear in a result, a log, an archive or a process list.
  - There is no cheap fingerprint of a database's content, so every run dumps every database.
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
    details: Connects and lists what would be dumped, with estimated document counts and sizes.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  uri:
    description:
      - MongoDB connection string. If not set, the E(MONGO_URI) environment variable is used.
    type: str
    required: true
  tls:
    description: Use TLS (also when the URI does not say so).
    type: bool
    default: false
  tls_ca_file:
    description: CA certificates to check the server's certificate with.
    type: path
  tls_certificate_key_file:
    description: Client certificate and key (PEM) for X.509 authentication.
    type: path
  read_preference:
    description: Which members to read from.
    type: str
    choices: [primary, primaryPreferred, secondary, secondaryPreferred, nearest]
    default: secondaryPreferred
  databases:
    description:
      - Databases to dump, each a name or a dictionary with C(name) and any of C(collections) (only these),
        C(exclude_collections), and C(query) (a dictionary of collection name to a filter in Extended JSON).
      - Empty means every database but C(admin), C(local) and C(config).
    type: list
    elements: raw
    default: []
  exclude_databases:
    description: Databases left out.
    type: list
    elements: str
    default: []
  strategy:
    description:
      - V(pymongo) streams with the driver and needs nothing else on the host.
      - V(mongodump) runs the official C(mongodump --archive) (it must be on the host), its output streamed;
        the credentials reach it through a 0600 C(--config) file in the module's temporary directory.
    type: str
    choices: [pymongo, mongodump]
    default: pymongo
  oplog:
    description:
      - A point-in-time dump with mongodump's C(--oplog) semantics. Needs a replica set and O(split=run).
    type: bool
    default: false
  split:
    description:
      - V(database), one artifact per database; V(run), one artifact for all of them, named after O(job).
    type: str
    choices: [database, run]
    default: database
  include_users_and_roles:
    description: With O(split=run), also dump C(admin.system.users), C(admin.system.roles) and C(admin.system.version).
    type: bool
    default: false
  parallel_collections:
    description: How many collections of one artifact are read at once.
    type: int
    default: 2
  job:
    description: Name of the backup job.
    type: str
    default: mongodb
requirements:
  - pymongo
  - fastcrc (recommended; without it the archive's checksums are computed slowly in Python)
"""

EXAMPLES = r"""
- name: Dump two databases, one with a filtered collection
  corebackup.backup.mongo_dump:
    uri: "{{ vault_mongo_uri }}"
    databases:
      - app
      - name: events
        exclude_collections: [cache]
        query: {audit: '{"ts": {"$gte": {"$date": "2026-01-01T00:00:00Z"}}}'}
    storage: {type: s3, bucket: backups, prefix: mongo/}

- name: A point-in-time dump of the whole replica set
  corebackup.backup.mongo_dump:
    uri: "{{ vault_mongo_uri }}"
    split: run
    oplog: true
    storage: {type: filesystem, path: /mnt/backups}
"""

RETURN = r"""
entries:
  description:
    - One entry per artifact (a database, or the run), in the form every service module returns; C(databases)
      is the same list. Besides C(key), C(size) and C(sha256), C(collections) (by namespace, its C(documents)
      and C(bytes), or its C(type) V(view)), C(documents) and C(bytes) (BSON bytes dumped).
  returned: always
  type: list
  elements: dict
databases:
  description: The same list as RV(entries).
  returned: always
  type: list
  elements: dict
status:
  description: V(success), V(partial) (some databases failed, the others are in the set) or V(failed).
  returned: always
  type: str
strategy:
  description: The strategy used.
  returned: always
  type: str
consistency:
  description: V(snapshot), V(oplog) or V(per-collection) (each collection read on its own).
  returned: always
  type: str
oplog:
  description: With O(oplog), C(start) and C(end) (timestamps as C(seconds:increment)) and C(entries).
  returned: when O(oplog)
  type: dict
artifacts:
  description: The artifacts stored, in the shared Artifact form.
  returned: always
  type: list
  elements: dict
job:
  description: The job.
  returned: always
  type: str
source:
  description: What was backed up, the C(type) V(mongodb) and the hosts as C(name) (no credentials).
  returned: always
  type: dict
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

from ansible_collections.corebackup.backup.plugins.module_utils._services.mongodb import SLICE


def main():
    SLICE.main()


if __name__ == "__main__":
    main()
