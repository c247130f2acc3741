# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The options of backup_restore that the services' restorers read (plugins/module_utils/_services/*.py,
    # their Restorer.SPEC, gathered by _registry.restore_spec()). A service with targets of a new kind adds
    # its options here; sanity's validate-modules compares this with the spec.
    DOCUMENTATION = r"""
options:
  dest:
    description:
      - Where files and GitHub repositories go (each item in a folder of its own name below it). By default a new
        folder C(corebackup-restore/<job>/<set date>) in the working directory.
    type: path
  force:
    description:
      - Replace what is already at a non-empty target (a folder, a volume, a PostgreSQL database). Without it such a
        target is refused.
      - A volume is emptied first (with a helper container that runs a shell of O(helper_image)), so no stale file survives.
    type: bool
    default: false
  push_to:
    description:
      - With GitHub items, also create each repository on this GitHub and push it there.
    type: dict
    suboptions:
      api_url:
        description: The REST API.
        type: str
        default: https://api.github.com
      organization:
        description: The organization that gets the repositories (else the token's user).
        type: str
      token:
        description: A token that may create repositories there.
        type: str
        required: true
      validate_certs:
        description: Verify TLS certificates.
        type: bool
        default: true
  volume:
    description: With one Docker volume item, the volume it goes into (created when missing). By default the item's own volume.
    type: str
  helper_image:
    description: A local image for the helper containers of volume restores; by default that of a container using the volume.
    type: str
  docker_host:
    description: The Docker engine; E(DOCKER_HOST) by default.
    type: str
    default: unix:///var/run/docker.sock
  tls:
    description: Talk TLS to the engine.
    type: bool
    default: false
  validate_certs:
    description: With O(tls), check the engine's certificate.
    type: bool
    default: false
  ca_path:
    description: CA certificate of the engine.
    type: path
  client_cert:
    description: Client certificate for the engine.
    type: path
  client_key:
    description: Client key for the engine.
    type: path
  api_version:
    description: Docker API version, or V(auto).
    type: str
    default: auto
  uri:
    description: The MongoDB server MongoDB items go into (E(MONGO_URI) by default).
    type: str
  drop:
    description: Replace collections that exist in the target; without it they are refused.
    type: bool
    default: false
  ns_from:
    description: With O(ns_to), restore the database O(ns_from) (or V(db.*)) under the name O(ns_to).
    type: str
  ns_to:
    description: The database name MongoDB collections of O(ns_from) get.
    type: str
  oplog_replay:
    description: Replay the oplog a point-in-time dump holds (inserts, updates, deletes).
    type: bool
    default: true
  postgres:
    description:
      - The PostgreSQL server PostgreSQL items go into, and how to connect, as M(corebackup.backup.postgres_dump) takes
        it. The role must not be a superuser (nor a member of C(pg_execute_server_program), C(pg_write_server_files),
        C(pg_read_server_files)), since a dump is SQL that runs as the restoring role. It needs C(CREATEDB), and must own a
        database that O(force) replaces. Restored objects belong to it (C(pg_restore --no-owner)); grants are restored.
    type: dict
    suboptions:
      uri:
        description: A libpq connection URI; the options below override its parts.
        type: str
      host:
        description: The server's host name or address.
        type: str
      port:
        description: The server's port.
        type: int
      user:
        description: The role to connect as.
        type: str
      password:
        description: Its password (E(PGPASSWORD) by default); it reaches the clients through a 0600 passfile.
        type: str
      dbname:
        description: The database connected to, to create, rename and drop databases (V(postgres) by default).
        type: str
      ssl_mode:
        description: libpq's C(sslmode).
        type: str
        choices: [disable, allow, prefer, require, verify-ca, verify-full]
      ssl_root_cert:
        description: CA certificates to check the server's certificate with.
        type: path
      ssl_cert:
        description: Client certificate.
        type: path
      ssl_key:
        description: Client key.
        type: path
      bin_dir:
        description: The folder of the client programs (C(pg_restore), C(psql), C(pg_dump)); by default E(PATH).
        type: path
  target_database:
    description:
      - The database a PostgreSQL item goes into; C({database}) is the item's database, C({date}) the set's date as
        C(YYYYMMDD). By default a new one; V({database}) restores in place, which needs O(force) when it exists.
      - The artifact is restored into a staging database first, and renamed into place once pg_restore succeeded
        and the artifact checked out; a database it replaces is dropped only then.
    type: str
    default: "{database}_restored_{date}"
  restore_globals:
    description:
      - Also run the item C(globals) (the cluster's roles and settings) with C(psql), before the databases; statements
        that fail (roles that exist) are counted and warned about. Without it the item is only checked.
      - It needs C(CREATEROLE). psql runs the file in restricted mode (C(\\restrict), psql 15.14, 16.10, 17.6 or
        newer), so that none of its meta-commands runs (C(\\!) would run a shell); the role is checked again after
        it, and a role it made a member of C(pg_execute_server_program) is refused.
    type: bool
    default: false
"""
