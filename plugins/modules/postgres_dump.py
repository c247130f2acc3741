#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: postgres_dump
short_description: Back up PostgreSQL databases with pg_dump, in the custom format that pg_restore restores
version_added: 0.1.0
description:
  - Stores one artifact per database, C(<database>_<timestamp>.dump), the output of the genuine
    C(pg_dump -Fc) streamed through the shared pipeline (never a temporary copy), which C(pg_restore) restores;
    and, with O(globals), the cluster's roles, tablespaces and role settings (C(pg_dumpall --globals-only)) as the
    item C(globals), C(globals_<timestamp>.sql).
  - The clients (C(pg_dump), C(pg_dumpall), C(pg_restore), C(psql)) must be of PostgreSQL's major version of the
    server or newer; the module checks that first and says which to install.
  - The rows of every table dumped and its objects per schema (as C(pg_restore -l) lists them) are counted in the
    dump's own snapshot (a transaction held open exports it, C(pg_dump --snapshot) imports it), so that a restore
    drill compares like with like while the database is written to. The counts are recorded with the artifact.
  - Every run dumps every database. PostgreSQL's statistics counters cannot prove a database unchanged (they are
    flushed asynchronously, reset by a crash or C(pg_stat_reset()), and count read-only transactions, pg_dump's
    own included), so O(skip_unchanged) has no effect here.
  - The password (O(password), or the one in O(uri)) reaches the clients through a 0600 passfile in the module's
    temporary directory, never their command line, a result, a log or a stored byte.
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
    details: Connects, checks the clients' version and lists the databases that would be dumped with their size.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  uri:
    description:
      - A libpq connection URI, C(postgresql://[user[:password]@][host][:port][,...][/dbname][?param=value&...]). The
        options below override its parts; a password in it is handled as O(password) is.
    type: str
  host:
    description: The server's host name or address (or several, comma-separated, as libpq takes them).
    type: str
  port:
    description: The server's port (5432 by default).
    type: int
  user:
    description: The role to connect as (a superuser, or one that may read every object dumped).
    type: str
  password:
    description: Its password (E(PGPASSWORD) by default).
    type: str
  dbname:
    description: The database connected to for the list of databases and the globals (V(postgres) by default).
    type: str
  ssl_mode:
    description: libpq's C(sslmode).
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ssl_root_cert:
    description: CA certificates to check the server's certificate with (C(sslrootcert)).
    type: path
  ssl_cert:
    description: Client certificate (C(sslcert)).
    type: path
  ssl_key:
    description: Client key (C(sslkey)).
    type: path
  bin_dir:
    description:
      - The folder of the client programs, for example C(/usr/lib/postgresql/16/bin); by default they are looked up
        on E(PATH).
    type: path
  compression:
    description:
      - V(none) (the default) stores what C(pg_dump -Fc) writes, compressed by pg_dump itself (zlib, at
        O(compression_level) up to 9), and the stored file is what C(pg_restore) reads, with nothing to unpack first.
      - V(gzip) or V(zstd) run C(pg_dump -Z0) and compress in the pipeline instead, on several threads (zstd is the
        faster for large databases).
    type: str
    choices: [gzip, zstd, none]
    default: none
  databases:
    description:
      - Databases to dump, each a name or a dictionary with C(name) and any of C(schemas), C(exclude_schemas),
        C(tables), C(exclude_tables) (for that database instead of the options of the same names).
      - Empty means every database but templates and those that refuse connections.
    type: list
    elements: raw
    default: []
  exclude_databases:
    description: Databases left out.
    type: list
    elements: str
    default: []
  schemas:
    description: Only the schemas matching these patterns (C(pg_dump --schema)).
    type: list
    elements: str
    default: []
  exclude_schemas:
    description: Not the schemas matching these patterns (C(pg_dump --exclude-schema)).
    type: list
    elements: str
    default: []
  tables:
    description: Only the tables matching these patterns (C(pg_dump --table)).
    type: list
    elements: str
    default: []
  exclude_tables:
    description: Not the tables matching these patterns (C(pg_dump --exclude-table)).
    type: list
    elements: str
    default: []
  globals:
    description:
      - Also dump the cluster's roles, tablespaces and role settings (C(pg_dumpall --globals-only)), as the item
        C(globals). It reads C(pg_authid), which needs a superuser (set V(false) for another role).
    type: bool
    default: true
  job:
    description: Name of the backup job.
    type: str
    default: postgres
requirements:
  - the PostgreSQL client programs (C(pg_dump), C(pg_dumpall), C(pg_restore), C(psql)) of the server's major version or newer
"""

EXAMPLES = r"""
- name: Dump every database of a server, and its roles
  corebackup.backup.postgres_dump:
    host: db.example.com
    user: backup
    password: "{{ vault_postgres_password }}"
    ssl_mode: verify-full
    ssl_root_cert: /etc/ssl/certs/db-ca.pem
    storage: {type: s3, bucket: backups, prefix: postgres/}

- name: One database, without its audit schema, compressed with zstd on the pipeline's threads
  corebackup.backup.postgres_dump:
    uri: "{{ vault_postgres_uri }}"
    databases: [app]
    exclude_schemas: [audit]
    globals: false
    compression: zstd
    storage: {type: filesystem, path: /mnt/backups}
"""

RETURN = r"""
entries:
  description:
    - One entry per artifact (a database, or C(globals)), in the form every service module returns; C(databases) is
      the same list. Besides C(key), C(size) and C(sha256), C(tables) (tables dumped), C(rows) (their rows) and
      C(objects) (the archive's objects), counted in the dump's snapshot; in check mode C(bytes), the database's
      size on the server.
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
  description: What was backed up, the C(type) V(postgres) and C(name), the host and port (no credentials).
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

from ansible_collections.corebackup.backup.plugins.module_utils._services.postgres import SLICE


def main():
    SLICE.main()


if __name__ == "__main__":
    main()
