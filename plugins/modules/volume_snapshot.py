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
  job:
    description: Name of the backup job.
    type: str
    default: volumes
notes:
  - O(docker_host) falls back to E(DOCKER_HOST), O(tls) and O(validate_certs) to E(DOCKER_TLS) and E(DOCKER_TLS_VERIFY),
    O(ca_path), O(client_cert) and O(client_key) to the files in E(DOCKER_CERT_PATH).
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
"""

import json
import threading
import time

from ansible_collections.corebackup.backup.plugins.module_utils._docker import HELPER_LABEL, connect
from ansible_collections.corebackup.backup.plugins.module_utils._docker import helper as make_helper
from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import iso, job_prefix
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import TreeStats, tar_filter
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceRunner
from ansible_collections.corebackup.backup.plugins.module_utils._specs import VOLUMES
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError

try:
    import docker.errors
except ImportError:  # pragma: no cover - _docker.connect says what is missing
    pass

LEVELS = {"none": 0, "pause": 1, "stop": 2}
LABEL = "corebackup.quiesce"


class Quiescer:
    """Pauses or stops containers while volumes they mount are archived, and puts them back.

    A container shared by several volumes is quiesced once, while any of them is being archived. The
    journal object is written before a container is touched and removed once it is back.
    """

    def __init__(self, service):
        self.service = service
        self.lock = threading.Lock()
        self.held = {}  # container id -> {"count", "action", "since"}

    def journal_key(self, container):
        return "%squiesce/%s.json" % (job_prefix(self.service.module.job), container.id)

    def acquire(self, container, action):
        with self.lock:
            held = self.held.get(container.id)
            if held is None:
                record = {"id": container.id, "name": container.name, "action": action, "since": iso(self.service.module.now)}
                self.service.module.backend.write(self.journal_key(container), [json.dumps(record).encode()])
                try:
                    if action == "paused":
                        container.pause()
                    else:
                        container.stop(timeout=self.service.params["stop_timeout"])
                except BaseException:
                    self.service.put_back(container, action)  # a stop that timed out may have stopped it anyway
                    self.service.module.backend.delete_many([self.journal_key(container)])
                    raise
                held = self.held[container.id] = {"count": 0, "action": action, "since": time.monotonic()}
            held["count"] += 1
            return held

    def release(self, container):
        with self.lock:
            held = self.held[container.id]
            held["count"] -= 1
            if held["count"]:
                return time.monotonic() - held["since"]
            del self.held[container.id]
            self.service.put_back(container, held["action"])  # if this fails, the journal stays for the next run
            self.service.module.backend.delete_many([self.journal_key(container)])
            return time.monotonic() - held["since"]


class VolumeSnapshot(Service):
    source_type = "docker_volume"
    item_kind = "volumes"
    entry_fields = {"files": None, "tree_digest": None, "containers": [], "warnings": []}

    def __init__(self, module):
        super().__init__(module)
        self.client = connect(self.params, timeout=max(60, self.params["stop_timeout"] + 30))
        self.item_errors = (docker.errors.DockerException,)
        self.quiescer = Quiescer(self)
        self.reconciled = []

    # -- discovery ------------------------------------------------------------------------------
    def discover(self):
        if not (self.params["volumes"] or self.params["volume_labels"] or self.params["containers"]):
            raise OptionError("name at least one of volumes, volume_labels or containers")
        if self.params["helper_image"]:
            try:
                self.client.images.get(self.params["helper_image"])
            except docker.errors.ImageNotFound:
                raise OptionError("helper_image %s does not exist on the Docker engine; pull or build it first"
                                  % self.params["helper_image"]) from None
        if not self.module.check_mode:
            self.reconcile()
        self.running = self.client.containers.list(filters={"status": "running"})
        items = {}
        for name in self.params["volumes"]:
            items[name] = self.volume_item(name)
        if self.params["volume_labels"]:
            labelled = self.client.volumes.list(filters={"label": self.params["volume_labels"]})
            if not labelled:
                raise OptionError("no volume carries the labels %s" % ", ".join(self.params["volume_labels"]))
            for volume in labelled:
                items.setdefault(volume.name, self.volume_item(volume.name))
        for name in self.params["containers"]:
            try:
                container = self.client.containers.get(name)
            except docker.errors.NotFound:
                raise OptionError("container %s does not exist" % name) from None
            for mount in container.attrs.get("Mounts", []):
                if mount.get("Type") == "volume":
                    items.setdefault(mount["Name"], self.volume_item(mount["Name"]))
                elif mount.get("Type") == "bind":
                    items.setdefault(mount["Source"], Item(mount["Source"], data={"bind": mount["Source"]}))
        return sorted(items.values(), key=lambda item: item.name)

    def volume_item(self, name):
        try:
            self.client.volumes.get(name)
        except docker.errors.NotFound:
            return Item(name, error="volume %s does not exist" % name)
        return Item(name, data={"volume": name})

    def users(self, item):
        """The running containers that mount the item, with whether they may write to it."""
        found = []
        for container in self.running:
            for mount in container.attrs.get("Mounts", []):
                if mount.get("Name") == item.data.get("volume") or mount.get("Source") == item.data.get("bind"):
                    found.append((container, bool(mount.get("RW"))))
                    break
        return found

    def source(self):
        return {"type": "docker_volume", "name": self.params["docker_host"]}

    def totals(self):
        return {"reconciled": len(self.reconciled)}

    def result(self):
        return {"reconciled": self.reconciled}

    # -- quiescing ------------------------------------------------------------------------------
    def action_for(self, container):
        """The task's quiesce, or more if the container's label asks; never a stop of a --rm container."""
        wanted = max(LEVELS[self.params["quiesce"]], LEVELS.get(container.labels.get(LABEL, "none"), 0))
        if wanted == 2 and container.attrs["HostConfig"].get("AutoRemove"):
            wanted = 1  # stopping would delete it
        return {0: "none", 1: "paused", 2: "stopped"}[wanted]

    def plan(self, item, entry):
        """The containers of the item and what is done to them; warnings for copies that may be torn."""
        users = self.users(item)
        entry["containers"] = [{"name": c.name, "id": c.id, "action": self.action_for(c), "seconds": 0.0} for c, _rw in users]
        for (container, rw), record in zip(users, entry["containers"]):
            if record["action"] == "none" and rw:
                entry["warnings"].append("%s may write to the volume while it is archived: the copy may be torn (quiesce: "
                                         "pause or stop)" % container.name)
            elif record["action"] == "paused" and LEVELS[self.params["quiesce"]] == 2:
                entry["warnings"].append("%s was started with --rm: paused, not stopped" % container.name)
        return users

    def put_back(self, container, action):
        container.reload()
        if action == "paused" and container.attrs["State"].get("Paused"):
            container.unpause()
        elif action == "stopped" and not container.attrs["State"].get("Running"):
            container.start()

    def reconcile(self):
        """Put back what a killed run left paused or stopped (its journal says what it did)."""
        prefix = job_prefix(self.module.job) + "quiesce/"
        for obj in list(self.module.backend.list(prefix)):
            try:
                record = json.loads(self.module.backend.read_bytes(obj.key))
                container = self.client.containers.get(record["id"])
                state = container.attrs["State"]
                if (record["action"] == "paused" and state.get("Paused")) or (
                        record["action"] == "stopped" and not state.get("Running")):
                    self.put_back(container, record["action"])
                self.reconciled.append({"name": record.get("name"), "id": record["id"], "action": record["action"],
                                        "since": record.get("since")})
            except docker.errors.NotFound:
                pass  # the container is gone: nothing to put back
            except (ValueError, KeyError, docker.errors.APIError, StorageError) as exc:
                raise BackupError("cannot reconcile %s left by a killed run: %s" % (obj.key, exc)) from None
            self.module.backend.delete_many([obj.key])
        for helper in self.client.containers.list(all=True, filters={"label": HELPER_LABEL}):
            helper.remove(force=True)

    # -- one volume -----------------------------------------------------------------------------
    def produce(self, item, recorded, entry):
        users = self.plan(item, entry)
        for warning in entry["warnings"]:
            self.module.warn("%s: %s" % (item.name, warning))
        image = self.params["helper_image"] or (users[0][0].attrs["Config"]["Image"] if users else None)
        if not image:
            raise BackupError("no running container uses %s: set helper_image to a local image" % item.name)
        helper, target = make_helper(self.client, image, item.data.get("volume") or item.data["bind"],
                                     kind="volume" if "volume" in item.data else "bind", label=self.module.job)
        quiesced = []
        try:
            for record, (container, _rw) in zip(entry["containers"], users):
                if record["action"] != "none":
                    self.quiescer.acquire(container, record["action"])
                    quiesced.append((record, container))
            stream, _stat = self.client.api.get_archive(helper.id, target, chunk_size=1 << 20)
            stats = TreeStats()
            artifact = self.store(item, "tar", tar_filter(stream, self.params["exclude"], strip=1, stats=stats),
                                  {"volume": item.name, "engine": self.params["docker_host"]},
                                  contents=lambda: {"files": stats.files, "bytes": stats.bytes, "tree_digest": stats.digest})
            entry.update(files=stats.files, tree_digest=stats.digest)
            return artifact
        finally:
            self.finish_quiesce(quiesced, helper)

    def finish_quiesce(self, quiesced, helper):
        """Put back every container and remove the helper, whatever happened; then report what could not be."""
        problems = []
        for record, container in reversed(quiesced):
            try:
                record["seconds"] = round(self.quiescer.release(container), 3)
            except Exception as exc:  # pylint: disable=broad-exception-caught
                problems.append("could not put %s back (%s); the next run will: %s" % (container.name, record["action"], exc))
        try:
            helper.remove(force=True)
        except docker.errors.DockerException as exc:
            problems.append("could not remove the helper container %s: %s" % (helper.name, exc))
        if problems:
            raise BackupError("; ".join(problems))


def main():
    module = BackupModule(packing=True, **VOLUMES)
    module.run(lambda m: ServiceRunner(m, VolumeSnapshot(m)).run())


if __name__ == "__main__":
    main()
