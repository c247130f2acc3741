# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The docker_volume service: Docker volumes and bind mounts, read and written through the Docker API by
volume_snapshot (backup) and backup_restore, with the containers that use them paused or stopped under one
journal in the store (``<job>/quiesce/``, records created only) that the next run reconciles."""

from __future__ import annotations

import json
import tarfile
import threading
import time
import uuid

from ansible_collections.corebackup.backup.plugins.module_utils._docker import (
    CONNECTION_SPEC,
    DOCKER_ERRORS,
    HELPER_LABEL,
    TIMEOUT_SPEC,
    ArchiveStream,
    connect,
)
from ansible_collections.corebackup.backup.plugins.module_utils._docker import helper as make_helper
from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import checksum_key, format_timestamp, iso, job_prefix
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import TreeStats, tar_filter
from ansible_collections.corebackup.backup.plugins.module_utils._lease import job_lease, utc_clock
from ansible_collections.corebackup.backup.plugins.module_utils._restore import Restorer, RestoreError
from ansible_collections.corebackup.backup.plugins.module_utils._retry import RetryPolicy
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceSlice
from ansible_collections.corebackup.backup.plugins.module_utils._storage import PreconditionFailed, StorageError

try:
    import docker.errors
except ImportError:  # pragma: no cover - _docker.connect says what is missing
    pass

SPEC = dict(
    argument_spec=dict(
        volumes=dict(type="list", elements="str", default=[]),
        volume_labels=dict(type="list", elements="str", default=[]),
        containers=dict(type="list", elements="str", default=[]),
        quiesce=dict(type="str", choices=["none", "pause", "stop"], default="none"),
        stop_timeout=dict(type="int", default=30),
        helper_image=dict(type="str"),
        exclude=dict(type="list", elements="str", default=[]),
        **CONNECTION_SPEC,
        **TIMEOUT_SPEC,
    ),
    job_default="volumes",
)

LEVELS = {"none": 0, "pause": 1, "stop": 2}
LABEL = "corebackup.quiesce"
PUT_BACK_ATTEMPTS = 5  # at least, whatever retries.attempts says: a container left stopped is worse than a failed backup
VERBS = {"paused": ("pause", "unpause"), "stopped": ("stop", "start")}


class Quiescer:
    """Pauses or stops containers while volumes they mount are read (a backup) or written (a restore), and puts
    them back.

    A container shared by several volumes is quiesced once, while any of them is in use. What is about to be done
    to a container is written to the job's journal in the store before the container is touched, as a new record
    ``<job>/quiesce/<container id>/<time>_<id>.<paused|stopped>.json``; once the container is back, a second
    record ``<same name>.back.json`` says so. Nothing is overwritten or deleted (a backup credential may only
    create), so that the next run of the job (``reconcile``) puts back what a killed run left paused or stopped:
    a record without its ``.back`` record. Old records are left for retention or a lifecycle rule.
    ``<job>/quiesce/<container id>.json`` (earlier releases' journal) is reconciled too, then deleted if the
    credential may.
    """

    def __init__(self, module, client, stop_timeout):
        self.module = module
        self.client = client
        self.stop_timeout = stop_timeout
        self.lock = threading.Lock()
        self.held = {}  # container id -> {"count", "action", "since"}
        retry = module.retry
        self.retry = RetryPolicy(attempts=max(PUT_BACK_ATTEMPTS, retry.attempts), delay=retry.delay,
                                 max_delay=retry.max_delay)

    def journal_key(self, container_id, stem, state):
        return "%squiesce/%s/%s.%s.json" % (job_prefix(self.module.job), container_id, stem, state)

    def acquire(self, container, action):
        with self.lock:
            held = self.held.get(container.id)
            if held is None:
                record = {"id": container.id, "name": container.name, "action": action, "since": iso(self.module.now)}
                stem = "%s_%s" % (format_timestamp(utc_clock()), uuid.uuid4().hex[:12])
                try:
                    self.module.backend.write(self.journal_key(container.id, stem, action), [json.dumps(record).encode()],
                                              overwrite=False)
                except StorageError as exc:
                    raise BackupError("cannot write the quiesce journal of container %s, so it was not %s: %s"
                                      % (container.name, action, exc)) from None
                try:
                    if action == "paused":
                        container.pause()
                    else:
                        container.stop(timeout=self.stop_timeout)
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    # The engine may have acted although the call failed (a lost answer, a time-out): put back what it did.
                    failure = "cannot %s container %s: %s" % (VERBS[action][0], container.name, exc)
                    try:
                        self.put_back(container, action)
                    except BackupError as left:
                        raise BackupError("%s; %s" % (failure, left)) from None  # the journal stays for the next run
                    self.forget(container.id, stem, container.name)
                    raise BackupError(failure) from None
                held = self.held[container.id] = {"count": 0, "action": action, "since": time.monotonic(), "stem": stem}
            held["count"] += 1
            return held

    def release(self, container):
        """Put the container back once no volume of it is in use; the seconds it was quiesced."""
        with self.lock:
            held = self.held[container.id]
            held["count"] -= 1
            if held["count"]:
                return time.monotonic() - held["since"]
            del self.held[container.id]
            self.put_back(container, held["action"])  # if this fails, the journal stays for the next run
            self.forget(container.id, held["stem"], container.name)
            return time.monotonic() - held["since"]

    def forget(self, container_id, stem, name):
        """Record that a container is back (a ``.back`` record beside its journal record); one that could not be
        written only makes the next run look again."""
        key = self.journal_key(container_id, stem, "back")
        record = {"id": container_id, "name": name, "back": iso(utc_clock())}
        try:
            self.module.backend.write(key, [json.dumps(record).encode()], overwrite=False)
        except PreconditionFailed:
            pass  # recorded already
        except StorageError as exc:
            self.module.warn("%s is back, but the record %s saying so could not be written (the next run looks at it "
                             "again): %s" % (name, key, exc))

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
            self.retry.call(once, is_transient=lambda exc: isinstance(exc, DOCKER_ERRORS) and not isinstance(
                exc, docker.errors.NotFound))
        except docker.errors.NotFound:
            self.module.warn("container %s was removed while it was %s: nothing to put back" % (container.name, action))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            message = ("container %s (%s) was running and is left %s: could not %s it in %d attempts (%s); %s it by hand, "
                       "or the next run of job %s will" % (container.name, container.id[:12], action, VERBS[action][1],
                                                           self.retry.attempts, exc, VERBS[action][1], self.module.job))
            self.module.warn(message)
            raise BackupError(message) from None

    def reconcile(self):
        """Put back what a killed run left paused or stopped (its journal says what it did): [what it put back].

        Called under the job's lease: a run that holds it is alive, and its journals are its own.
        """
        prefix = job_prefix(self.module.job) + "quiesce/"
        reconciled = []
        keys = {obj.key for obj in self.module.backend.list(prefix)}
        for key in sorted(keys):
            rest = key[len(prefix):]
            parts = rest.split("/")
            if len(parts) == 1 and rest.endswith(".json") and "." not in rest[:-5]:
                legacy, stem = True, None  # <container id>.json of an earlier release
            elif len(parts) == 2 and rest.count(".") == 2 and rest.endswith(".json"):
                legacy, (stem, state, _ext) = False, parts[1].split(".")
                if state not in VERBS or "%s%s/%s.back.json" % (prefix, parts[0], stem) in keys:
                    continue  # a container put back, or the record that says so
            else:
                continue
            try:
                record = json.loads(self.module.backend.read_bytes(key))
                if record["action"] not in VERBS:
                    raise ValueError("unknown action %r" % record["action"])
                container = self.client.containers.get(record["id"])
            except docker.errors.NotFound:
                container = None  # the container is gone: nothing to put back
            except (ValueError, KeyError, TypeError, StorageError) + DOCKER_ERRORS as exc:
                raise BackupError("cannot reconcile %s left by a killed run: %s" % (key, exc)) from None
            if container is not None:
                self.put_back(container, record["action"])  # reads the state first; a BackupError if it cannot
                reconciled.append({"name": record.get("name"), "id": record["id"], "action": record["action"],
                                   "since": record.get("since")})
            if legacy:
                self.module.backend.delete_many([key])  # best effort: a create-only credential cannot
            else:
                self.forget(record["id"], stem, record.get("name"))
        return reconciled


class VolumeSnapshot(Service):
    item_kind = "volumes"
    entry_fields = {"files": None, "tree_digest": None, "containers": [], "warnings": []}

    def __init__(self, module):
        super().__init__(module)
        if self.params["timeout"] < 1:
            raise OptionError("timeout must be at least 1 second, got %d" % self.params["timeout"])
        self.client = connect(self.params, timeout=self.params["timeout"])  # a stop gets stop_timeout more
        self.item_errors = DOCKER_ERRORS
        self.quiescer = Quiescer(module, self.client, self.params["stop_timeout"])
        self.reconciled = []

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

    def preview(self, item, entry):
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

    def prepare(self, items, history):
        """Under the job's lease, before any volume: put back what a killed run left paused or stopped and remove
        its helpers (not in check mode), then see which containers run."""
        if not self.module.check_mode:
            self.reconciled.extend(self.quiescer.reconcile())
            for helper in self.helpers():
                self.remove_helper(helper)
        try:
            self.running = self.client.containers.list(filters={"status": "running"}, ignore_removed=True)
        except DOCKER_ERRORS as exc:
            raise self.engine_error("list the running containers", exc) from None

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
            self.quiescer.retry.call(once, is_transient=lambda exc: isinstance(exc, DOCKER_ERRORS))
        except DOCKER_ERRORS as exc:
            self.module.warn("could not remove the helper container %s (the next run of job %s will): %s"
                             % (helper.name, self.module.job, exc))

    # -- one volume -----------------------------------------------------------------------------
    def produce(self, item, recorded, entry):
        users = self.preview(item, entry)
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


class VolumeRestorer(Restorer):
    """A Docker volume, through the archive API: into a scratch volume first (checked), then copied into the
    target with the containers that use it stopped under the job's quiesce journal and lease."""

    SPEC = dict(
        volume=dict(type="str"),
        helper_image=dict(type="str"),
        force=dict(type="bool", default=False),
        **CONNECTION_SPEC,
    )

    def __init__(self, runner):
        super().__init__(runner)
        self.client = connect(self.params)

    def target(self, item):
        return self.params["volume"] or item["name"]

    def image(self, volume):
        if self.params["helper_image"]:
            return self.params["helper_image"]
        for container in self.client.containers.list(all=True, filters={"volume": volume}):
            return container.attrs["Config"]["Image"]
        raise RestoreError("no container uses %s: set helper_image to a local image" % volume)

    def into_scratch(self, item, result, image):
        scratch = self.client.volumes.create("corebackup-restore-%s" % uuid.uuid4().hex[:10])
        container, path = make_helper(self.client, image, scratch.name, read_only=False)
        stream = self.runner.stream(item)
        try:
            self.client.api.put_archive(container.id, path, stream.chunks())
            stream.check()
        except BaseException:
            container.remove(force=True)
            scratch.remove(force=True)
            raise
        container.remove(force=True)
        result["checksum"] = "ok"
        return scratch

    def tree(self, volume, image, into=None):
        """The tree of a volume (TreeStats); with ``into``, copied into that volume on the way."""
        source, path = make_helper(self.client, image, volume)
        stats = TreeStats()
        try:
            chunks = tar_filter(self.client.api.get_archive(source.id, path)[0], strip=1, stats=stats)
            if into is None:
                for _chunk in chunks:
                    pass
            else:
                target, target_path = make_helper(self.client, image, into, read_only=False)
                try:
                    self.client.api.put_archive(target.id, target_path, chunks)
                finally:
                    target.remove(force=True)
        finally:
            source.remove(force=True)
        return stats

    def restore(self, item, result):
        name = self.target(item)
        image = self.image(name)
        existing = any(v.name == name for v in self.client.volumes.list(filters={"name": name}))
        occupied = existing and self.non_empty(name, image)
        if occupied and not self.params["force"]:
            raise RestoreError("volume %s is not empty: set force to replace what it holds" % name)
        scratch = self.into_scratch(item, result, image)
        try:
            with job_lease(self.module.backend, self.module.job, self.params["lock_timeout"]):
                quiescer = Quiescer(self.module, self.client, DEFAULT_STOP_TIMEOUT)
                users = list(self.client.containers.list(filters={"volume": name}))
                stopped, problems = [], []
                try:
                    for container in users:
                        quiescer.acquire(container, "stopped")
                        stopped.append(container)
                    if not existing:
                        self.client.volumes.create(name)
                    elif occupied:
                        self.empty(name, image)
                    stats = self.tree(scratch.name, image, into=name)
                finally:
                    for container in reversed(stopped):
                        try:
                            quiescer.release(container)
                        except BackupError as exc:
                            problems.append(str(exc))
                if problems:
                    raise RestoreError("%s was restored, but: %s" % (name, "; ".join(problems)))
        finally:
            scratch.remove(force=True)
        result.update(target=name, files=stats.files, bytes=stats.bytes, stopped=[c.name for c in users])

    def non_empty(self, name, image):
        container, path = make_helper(self.client, image, name)
        try:
            stream, _stat = self.client.api.get_archive(container.id, path)
            stats = TreeStats()
            for _chunk in tar_filter(stream, strip=1, stats=stats):
                pass
        finally:
            container.remove(force=True)
        return stats.entries > 1  # more than its root

    def empty(self, name, image):
        """Empty a volume with a shell of the helper image, so that no stale file survives the restore."""
        self.client.containers.run(image, ["sh", "-c", "rm -rf /v/..?* /v/.[!.]* /v/*"], remove=True,
                                   network_mode="none", volumes={name: {"bind": "/v", "mode": "rw"}})

    def drill(self, item, result):
        image = self.params["helper_image"]
        if not image:
            raise RestoreError("a volume drill needs helper_image (a local image for the helper containers)")
        scratch = self.into_scratch(item, result, image)
        try:
            stats = self.tree(scratch.name, image)
        finally:
            scratch.remove(force=True)
        result.update(files=stats.files, bytes=stats.bytes)
        self.runner.compare(result, item["artifact"].get("contents") or {},
                            {"files": stats.files, "bytes": stats.bytes, "tree_digest": stats.digest})

    def pre_restore(self, items):
        """volume_snapshot of the target volume, when it exists."""
        names = [self.target(item) for item in items]
        existing = [name for name in names if self.client.volumes.list(filters={"name": name})]
        if not existing:
            return None
        options = {"volumes": existing}
        for option in ("helper_image",) + tuple(CONNECTION_SPEC):
            if self.params.get(option) is not None:
                options[option] = self.params[option]
        return options


# Seconds a container stopped for a restore gets to shut down.
DEFAULT_STOP_TIMEOUT = 30

SLICE = ServiceSlice(name="docker_volume", module="volume_snapshot", spec=SPEC, backup=VolumeSnapshot,
                     restorer=VolumeRestorer, restore_spec=VolumeRestorer.SPEC)
