#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_snapshot
short_description: Back up Docker volumes and bind mounts through the Docker API, quiescing their containers
version_added: 0.1.0
description:
  - Stores one artifact per volume, C(<volume>_<timestamp>.tar.gz) (or C(.zst), C(.age) when encrypted), a
    POSIX tar of the volume's content named as C(tar -C <volume> -cf - .) names it, that keeps modes,
    numeric owners, times, symbolic links, hard links, empty directories and any file name.
  - The volume is read through the Docker API, so the engine may be remote and its data directory is
    never touched. A helper container is created, never started, with the volume mounted read-only;
    its content is streamed out with the archive API, through compression, encryption and sha256 into
    the storage in one pass. The helper container is always removed.
  - Running containers that mount the volume can be paused or stopped while it is archived (the window
    covers the archive and the upload, one streaming pass) and are put back as they were, whatever
    happens. What the module is about to do to a container is written to a journal in the store
    (C(<job>/quiesce/)) first, so that the next run puts back what a killed run left paused or stopped.
  - Putting a container back reads its state first (a call that failed may have been carried out anyway) and is
    retried with backoff (O(retries), at least 5 attempts) whatever failed. A container that still cannot be put
    back fails its volume with an error and a warning that name the container and the state it is left in (its
    artifact is removed), and the next run puts it back.
  - There is no cheap fingerprint of a volume's content, so every run archives every volume and reports
    a change.
  - The archive API does not carry extended attributes or ACLs; they are not in the artifact.
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
    details: Resolves volumes and containers and says what it would do; pauses, stops and stores nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  volumes:
    description: Names of Docker volumes.
    type: list
    elements: str
    default: []
  volume_labels:
    description: Volumes that carry all these labels, each V(key) or V(key=value).
    type: list
    elements: str
    default: []
  containers:
    description: Every named volume and bind mount of these containers (names or ids).
    type: list
    elements: str
    default: []
  quiesce:
    description:
      - What to do with running containers that mount a volume while it is archived.
      - A container's label C(corebackup.quiesce) (V(pause) or V(stop)) asking for more is honoured.
      - A container started with C(--rm) is paused instead of stopped, since stopping would delete it.
      - With V(none), a volume that a running container mounts read-write gets a warning that its copy
        may be torn.
    type: str
    choices: [none, pause, stop]
    default: none
  stop_timeout:
    description: Seconds a stopped container gets to shut down before it is killed.
    type: int
    default: 30
  helper_image:
    description:
      - Image of the helper container that mounts the volume. It is never started, so any local image
        will do. By default the image of a container that uses the volume.
    type: str
  exclude:
    description: Glob patterns left out, matched against paths relative to the volume's root and names.
    type: list
    elements: str
    default: []
  docker_host:
    description: The Docker engine, for example V(unix:///var/run/docker.sock) or V(tcp://host:2376).
    type: str
    default: unix:///var/run/docker.sock
  tls:
    description: Talk TLS to the engine.
    type: bool
    default: false
  validate_certs:
    description: With O(tls), check the engine's certificate against O(ca_path).
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
  timeout:
    description:
      - Seconds to wait for the Docker engine to answer a call, or to send more of an archive; a stop gets
        O(stop_timeout) more.
    type: int
    default: 60
  job:
    description: Name of the backup job.
    type: str
    default: volumes
notes:
  - O(docker_host) falls back to E(DOCKER_HOST), O(tls) and O(validate_certs) to E(DOCKER_TLS) and E(DOCKER_TLS_VERIFY),
    O(ca_path), O(client_cert) and O(client_key) to the files in E(DOCKER_CERT_PATH), O(timeout) to E(DOCKER_TIMEOUT).
requirements:
  - docker (the Python library)
"""

EXAMPLES = r"""
- name: Back up the volumes of the app, stopping it while they are archived
  corebackup.backup.volume_snapshot:
    containers: [app]
    quiesce: stop
    storage: {type: s3, bucket: backups, prefix: docker/}
"""

RETURN = r"""
entries:
  description:
    - One entry per volume, in the form every service module returns; C(volumes) is the same list. Besides
      C(key), C(size) and C(sha256), C(files) (regular files archived), C(tree_digest) (a digest of names,
      modes, owners, times, links and every file's sha256) and C(containers) (each with C(name), C(id),
      C(action) V(paused), V(stopped) or V(none), and C(seconds) quiesced).
  returned: always
  type: list
  elements: dict
volumes:
  description: The same list as RV(entries).
  returned: always
  type: list
  elements: dict
reconciled:
  description: Containers a killed earlier run had paused or stopped, put back by this run.
  returned: always
  type: list
  elements: dict
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
  description: What was backed up, the C(type) V(docker_volume) and the engine as C(name).
  returned: always
  type: dict
status:
  description: V(success), V(partial) (some volumes failed) or V(failed).
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

from ansible_collections.corebackup.backup.plugins.module_utils._services.docker_volume import SLICE


def main():
    SLICE.main()


if __name__ == "__main__":
    main()
