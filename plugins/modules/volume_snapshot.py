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
"""

import json
import tarfile
import threading
import time

from ansible_collections.corebackup.backup.plugins.module_utils._docker import DOCKER_ERRORS, HELPER_LABEL
from ansible_collections.corebackup.backup.plugins.module_utils._docker import ArchiveStream, connect
from ansible_collections.corebackup.backup.plugins.module_utils._docker import helper as make_helper
from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import checksum_key, iso, job_prefix
from ansible_collections.corebackup.backup.plugins.module_utils._lease import job_lease
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import TreeStats, tar_filter
from ansible_collections.corebackup.backup.plugins.module_utils._retry import RetryPolicy
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceRunner
from ansible_collections.corebackup.backup.plugins.module_utils._specs import VOLUMES
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError

try:
    import docker.errors
except ImportError:  # pragma: no cover - _docker.connect says what is missing
    pass

LEVELS = {"none": 0, "pause": 1, "stop": 2}
LABEL = "corebackup.quiesce"
PUT_BACK_ATTEMPTS = 5  # at least, whatever retries.attempts says: a container left stopped is worse than a failed backup
VERBS = {"paused": ("pause", "unpause"), "stopped": ("stop", "start")}


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
                try:
                    self.service.module.backend.write(self.journal_key(container), [json.dumps(record).encode()])
                except StorageError as exc:
                    raise BackupError("cannot write the quiesce journal of container %s, so it was not %s: %s"
                                      % (container.name, action, exc)) from None
                try:
                    if action == "paused":
                        container.pause()
                    else:
                        container.stop(timeout=self.service.params["stop_timeout"])
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    # The engine may have acted although the call failed (a lost answer, a time-out): put back what it did.
                    failure = "cannot %s container %s: %s" % (VERBS[action][0], container.name, exc)
                    try:
                        self.service.put_back(container, action)
                    except BackupError as left:
                        raise BackupError("%s; %s" % (failure, left)) from None  # the journal stays for the next run
                    self.forget(container)
                    raise BackupError(failure) from None
                held = self.held[container.id] = {"count": 0, "action": action, "since": time.monotonic()}
            held["count"] += 1
            return held

    def release(self, container):
        """Put the container back once no volume of it is being archived; the seconds it was quiesced."""
        with self.lock:
            held = self.held[container.id]
            held["count"] -= 1
            if held["count"]:
                return time.monotonic() - held["since"]
            del self.held[container.id]
            self.service.put_back(container, held["action"])  # if this fails, the journal stays for the next run
            self.forget(container)
            return time.monotonic() - held["since"]

    def forget(self, container):
        """Remove the journal of a container that is back; one left behind only makes the next run look again."""
        try:
            result = self.service.module.backend.delete_many([self.journal_key(container)])
            problems = [error["error"] for error in getattr(result, "errors", [])]
        except StorageError as exc:
            problems = [str(exc)]
        if problems:
            self.service.module.warn("%s is back, but its quiesce journal %s could not be removed (the next run removes "
                                     "it): %s" % (container.name, self.journal_key(container), "; ".join(problems)))


class VolumeSnapshot(Service):
    source_type = "docker_volume"
    item_kind = "volumes"
    entry_fields = {"files": None, "tree_digest": None, "containers": [], "warnings": []}

    def __init__(self, module):
        super().__init__(module)
        if self.params["timeout"] < 1:
            raise OptionError("timeout must be at least 1 second, got %d" % self.params["timeout"])
        self.client = connect(self.params, timeout=self.params["timeout"])  # a stop gets stop_timeout more
        self.item_errors = DOCKER_ERRORS
        self.quiescer = Quiescer(self)
        self.reconciled = []
        retry = module.retry
        self.put_back_retry = RetryPolicy(attempts=max(PUT_BACK_ATTEMPTS, retry.attempts), delay=retry.delay,
                                          max_delay=retry.max_delay)

    def engine_error(self, what, exc):
        return BackupError("cannot %s on the Docker engine at %s: %s" % (what, self.params["docker_host"], exc))

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
            except DOCKER_ERRORS as exc:
                raise self.engine_error("inspect the image %s" % self.params["helper_image"], exc) from None
        if not self.module.check_mode:
            self.reconcile()
        try:
            self.running = self.client.containers.list(filters={"status": "running"}, ignore_removed=True)
        except DOCKER_ERRORS as exc:
            raise self.engine_error("list the running containers", exc) from None
        items = {}
        for name in self.params["volumes"]:
            items[name] = self.volume_item(name)
        if self.params["volume_labels"]:
            try:
                labelled = self.client.volumes.list(filters={"label": self.params["volume_labels"]})
            except DOCKER_ERRORS as exc:
                raise self.engine_error("list the volumes", exc) from None
            if not labelled:
                raise OptionError("no volume carries the labels %s" % ", ".join(self.params["volume_labels"]))
            for volume in labelled:
                items.setdefault(volume.name, self.volume_item(volume.name))
        for name in self.params["containers"]:
            try:
                container = self.client.containers.get(name)
            except docker.errors.NotFound:
                raise OptionError("container %s does not exist" % name) from None
            except DOCKER_ERRORS as exc:
                raise self.engine_error("inspect the container %s" % name, exc) from None
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
        except DOCKER_ERRORS as exc:
            return Item(name, error="cannot inspect the volume %s: %s" % (name, exc))
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
        """Unpause or start a container that this run or a killed one paused or stopped, if it still is.

        Every try reads the container's state again, so that what a failed call did anyway is not done twice; tries
        are retried with backoff, whatever failed. A container that cannot be put back is reported loudly (a
        warning and a BackupError naming it and the state it is left in); its journal stays for the next run.
        """
        def once():
            container.reload()
            state = container.attrs["State"]
            if action == "paused" and state.get("Paused"):
                container.unpause()
            elif action == "stopped" and not state.get("Running"):
                container.start()

        try:
            self.put_back_retry.call(once, is_transient=lambda exc: isinstance(exc, DOCKER_ERRORS) and not isinstance(
                exc, docker.errors.NotFound))
        except docker.errors.NotFound:
            self.module.warn("container %s was removed while it was %s: nothing to put back" % (container.name, action))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            message = ("container %s (%s) was running and is left %s: could not %s it in %d attempts (%s); %s it by hand, "
                       "or the next run of job %s will" % (container.name, container.id[:12], action, VERBS[action][1],
                                                           self.put_back_retry.attempts, exc, VERBS[action][1],
                                                           self.module.job))
            self.module.warn(message)
            raise BackupError(message) from None

    def reconcile(self):
        """Put back what a killed run left paused or stopped (its journal says what it did), remove its helpers.

        Under the job's lease: a run that holds it is alive, and its journals and helpers are its own. A run that
        holds it is waited for (lock_timeout), and has then put back and removed what was its own.
        """
        prefix = job_prefix(self.module.job) + "quiesce/"
        if not (list(self.module.backend.list(prefix)) or self.helpers()):
            return
        self.module.backend.check_root(create=True)
        with job_lease(self.module.backend, self.module.job, self.params["lock_timeout"]):
            for obj in list(self.module.backend.list(prefix)):
                try:
                    record = json.loads(self.module.backend.read_bytes(obj.key))
                    if record["action"] not in VERBS:
                        raise ValueError("unknown action %r" % record["action"])
                    container = self.client.containers.get(record["id"])
                except docker.errors.NotFound:
                    container = None  # the container is gone: nothing to put back
                except (ValueError, KeyError, TypeError, StorageError) + DOCKER_ERRORS as exc:
                    raise BackupError("cannot reconcile %s left by a killed run: %s" % (obj.key, exc)) from None
                if container is not None:
                    self.put_back(container, record["action"])  # reads the state first; a BackupError if it cannot
                    self.reconciled.append({"name": record.get("name"), "id": record["id"], "action": record["action"],
                                            "since": record.get("since")})
                self.module.backend.delete_many([obj.key])
            for helper in self.helpers():
                self.remove_helper(helper)

    def helpers(self):
        """The helper containers of this job (another job's run, or a restore, may be using its own right now)."""
        try:
            return self.client.containers.list(all=True, filters={"label": "%s=%s" % (HELPER_LABEL, self.module.job)},
                                               ignore_removed=True)
        except DOCKER_ERRORS as exc:
            raise self.engine_error("list the helper containers of job %s" % self.module.job, exc) from None

    def remove_helper(self, helper):
        """Remove a helper container (retried); one left behind is harmless and the next run removes it."""
        def once():
            try:
                helper.remove(force=True)
            except docker.errors.NotFound:
                pass

        try:
            self.put_back_retry.call(once, is_transient=lambda exc: isinstance(exc, DOCKER_ERRORS))
        except DOCKER_ERRORS as exc:
            self.module.warn("could not remove the helper container %s (the next run of job %s will): %s"
                             % (helper.name, self.module.job, exc))

    # -- one volume -----------------------------------------------------------------------------
    def produce(self, item, recorded, entry):
        users = self.plan(item, entry)
        for warning in entry["warnings"]:
            self.module.warn("%s: %s" % (item.name, warning))
        image = self.params["helper_image"] or (users[0][0].attrs["Config"]["Image"] if users else None)
        if not image:
            raise BackupError("no running container uses %s: set helper_image to a local image" % item.name)
        try:
            helper, target = make_helper(self.client, image, item.data.get("volume") or item.data["bind"],
                                         kind="volume" if "volume" in item.data else "bind", label=self.module.job)
        except DOCKER_ERRORS as exc:
            raise BackupError("cannot create the helper container that mounts %s: %s" % (item.name, exc)) from None
        quiesced, stream, artifact, failure = [], None, None, None
        try:
            for record, (container, _rw) in zip(entry["containers"], users):
                if record["action"] != "none":
                    self.quiescer.acquire(container, record["action"])
                    quiesced.append((record, container))
            stats = TreeStats()
            stream = self.archive(item, helper, target)
            artifact = self.store(item, "tar", tar_filter(self.chunks(item, stream), self.params["exclude"],
                                                          strip=1, stats=stats),
                                  {"volume": item.name, "engine": self.params["docker_host"]},
                                  contents=lambda: {"files": stats.files, "bytes": stats.bytes, "tree_digest": stats.digest})
            entry.update(files=stats.files, tree_digest=stats.digest)
        except tarfile.TarError as exc:
            # The engine ended the stream cleanly half-way through a file (one that shrank, or could not be read).
            failure = BackupError("the archive of %s ends half-way: the engine could not read all of it (%s)" % (item.name, exc))
            raise failure from None
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if stream is not None:
                stream.close()
            problems = self.finish_quiesce(quiesced, helper)
            if problems:
                if artifact is not None:
                    # The item fails, so its artifact goes too: the store holds what the result says.
                    try:
                        self.module.backend.delete_many([checksum_key(artifact.key), artifact.key])
                    except StorageError as exc:
                        problems.append("its artifact %s could not be removed: %s" % (artifact.key, exc))
                raise BackupError("; ".join(([str(failure)] if failure is not None else []) + problems)) from None
        return artifact

    def archive(self, item, helper, target):
        """The volume's content as the engine's archive API streams it; an error, also half-way, names the volume."""
        try:
            return ArchiveStream(self.client, helper.id, target)
        except DOCKER_ERRORS as exc:
            raise BackupError("cannot read %s through the archive API: %s" % (item.name, exc)) from None

    @staticmethod
    def chunks(item, stream):
        try:
            yield from stream
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise BackupError("the archive stream of %s broke off: %s" % (item.name, exc)) from None

    def finish_quiesce(self, quiesced, helper):
        """Put back every container and remove the helper, whatever happened; what could not be put back."""
        problems = []
        for record, container in reversed(quiesced):
            try:
                record["seconds"] = round(self.quiescer.release(container), 3)
            except BackupError as exc:
                problems.append(str(exc))
            except Exception as exc:  # pylint: disable=broad-exception-caught
                problems.append("could not put container %s back (it was %s; the next run of job %s will): %s"
                                % (container.name, record["action"], self.module.job, exc))
        self.remove_helper(helper)
        return problems


def main():
    module = BackupModule(packing=True, **VOLUMES)
    module.run(lambda m: ServiceRunner(m, VolumeSnapshot(m)).run())


if __name__ == "__main__":
    main()
