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
    and records the drill in the set's manifest; a drill that passes sets the set's C(verified_at).
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
  - ansible.builtin.action_common_attributes
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
  dest:
    description:
      - Where files and GitHub repositories go (each item in a folder of its own name below it). By default a new
        folder C(corebackup-restore/<job>/<set date>) in the working directory.
    type: path
  force:
    description:
      - Replace what is already at a non-empty target (a folder, a volume). Without it such a target is refused.
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
  description: The drill recorded in the manifest (C(when), C(items), C(result), C(duration)).
  returned: when O(state=drill)
  type: dict
"""

import os
import shutil
import tempfile
import time
import uuid

from ansible.module_utils.basic import env_fallback

from ansible_collections.corebackup.backup.plugins.module_utils import _mongo as archive
from ansible_collections.corebackup.backup.plugins.module_utils._docker import CONNECTION_SPEC, connect, helper
from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._github import GitHubClient, GitHubError, git_env, local_refs
from ansible_collections.corebackup.backup.plugins.module_utils._layout import ArtifactKey, iso, parse_date
from ansible_collections.corebackup.backup.plugins.module_utils._manifest import read_manifest, update_manifest
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import TreeStats, tar_filter, tar_stream
from ansible_collections.corebackup.backup.plugins.module_utils._restore import ArtifactStream, RestoreError, extract
from ansible_collections.corebackup.backup.plugins.module_utils._sets import list_sets

try:
    import pymongo
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument
    RAW = CodecOptions(document_class=RawBSONDocument)
    HAS_PYMONGO = True
except ImportError:  # pragma: no cover - depends on the host
    HAS_PYMONGO = False

PUSHED_REFS = ("refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*", "refs/notes/*:refs/notes/*")


def items_of(manifest):
    """{name: {name, type, key, artifact, source}} from the set's runs, later runs winning."""
    found = {}
    for run in sorted(manifest["runs"], key=lambda r: (r["finished"], r["run_id"])):
        artifacts = {a["key"]: a for a in run["artifacts"]}
        entries = run.get("entries") or [{"name": ArtifactKey.parse(k).name, "key": k, "status": "backed_up"}
                                         for k in artifacts]
        for entry in entries:
            if entry.get("key") in artifacts:
                found[entry["name"]] = {"name": entry["name"], "type": run["source"]["type"], "key": entry["key"],
                                        "artifact": artifacts[entry["key"]], "source": run["source"]}
    return found


class Restore:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.backend = module.backend
        self.job = module.job
        self.drill = self.params["state"] == "drill"
        self.age = module.module.get_bin_path("age") if self.params["identity_file"] else None
        if self.params["identity_file"] and not os.path.isfile(self.params["identity_file"]):
            raise OptionError("identity_file %s is not a file" % self.params["identity_file"])
        self.scratch = tempfile.mkdtemp(prefix="restore-", dir=module.module.tmpdir)

    # -- the set and its items ----------------------------------------------------------------
    def choose(self):
        self.backend.check_root()
        sets, _others = list_sets(self.backend, self.job)
        if self.params["set_date"]:
            parse_date(self.params["set_date"])
            if self.params["set_date"] not in sets:
                raise OptionError("job %s has no backup set %s" % (self.job, self.params["set_date"]))
            date = self.params["set_date"]
        else:
            good = sorted(d for d, s in sets.items() if s.status == "success")
            if not good:
                raise OptionError("job %s has no successful backup set; name one with set_date" % self.job)
            date = good[-1]
        manifest, _problems = read_manifest(self.backend, sets[date])
        items = items_of(manifest)
        unknown = sorted(set(self.params["items"]) - set(items))
        if unknown:
            raise OptionError("the set %s of %s holds no item %s (it holds %s)"
                              % (date, self.job, ", ".join(unknown), ", ".join(sorted(items))))
        chosen = [items[n] for n in (self.params["items"] or sorted(items))]
        return date, chosen

    def stream(self, item):
        return ArtifactStream(self.backend, item["artifact"], self.params["identity_file"], self.age)

    def run(self):
        started = time.monotonic()
        date, items = self.choose()
        targets = {"files": FilesTarget, "github": GitHubTarget, "docker_volume": VolumeTarget, "mongodb": MongoTarget}
        results = []
        try:
            for item in items:
                if item["type"] not in targets:
                    raise OptionError("%s was backed up by %s, which backup_restore cannot restore"
                                      % (item["name"], item["type"]))
                target = targets[item["type"]](self, date)
                result = {"name": item["name"], "type": item["type"], "key": item["key"], "checksum": None}
                try:
                    if self.module.check_mode:
                        target.check(item, result)
                    elif self.drill:
                        target.drill(item, result)
                    else:
                        target.restore(item, result)
                except (BackupError, OSError) as exc:
                    if not self.drill:
                        raise
                    result.update(status="failed", detail=self.module.scrub(exc))
                results.append(result)
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)
        output = dict(changed=not self.module.check_mode, set_date=date, restored=results)
        if self.drill and not self.module.check_mode:
            output["drill"] = self.record(date, results, time.monotonic() - started)
            bad = [r for r in results if r["status"] != "ok"]
            if bad:
                self.module.fail("the drill of %s %s failed: %s" % (self.job, date, "; ".join(
                    "%s: %s" % (r["name"], r["detail"]) for r in bad)), **output)
        self.module.exit(**output)

    def record(self, date, results, duration):
        drill = {"when": iso(self.module.now), "duration": round(duration, 3),
                 "result": "ok" if all(r["status"] == "ok" for r in results) else "failed",
                 "items": [{"name": r["name"], "key": r["key"], "status": r["status"], "detail": r.get("detail") or ""}
                           for r in results]}

        def add(manifest):
            manifest.setdefault("restore_drills", []).append(drill)
            if drill["result"] == "ok" and len(results) == len(items_of(manifest)):
                manifest["verified_at"] = drill["when"]
            elif drill["result"] != "ok":
                manifest["verified_at"] = None
        update_manifest(self.backend, self.job, date, add)
        return drill

    def compare(self, result, recorded, restored):
        """A drill's verdict: every fact recorded at backup time equals what was restored."""
        differences = ["%s %s, recorded %s" % (k, restored.get(k), v) for k, v in sorted(recorded.items())
                       if k in restored and restored[k] != v]
        result.update(status="mismatch" if differences else "ok", detail="; ".join(differences))


class FilesTarget:
    """Host files, and GitHub artifacts' trees: a folder of its own per item below dest."""

    def __init__(self, restore, date):
        self.parent = restore
        self.params = restore.params
        self.dest = os.path.abspath(self.params["dest"] or os.path.join("corebackup-restore", restore.job, date))

    def check(self, item, result):
        check_artifact(self.parent, item, result)
        result["target"] = os.path.join(self.dest, item["name"])

    def unpack(self, item, result, into):
        """Extract the artifact into ``into`` (a new folder) and check it; the folder is gone if it fails."""
        stream = self.parent.stream(item)
        stats = TreeStats()
        try:
            os.makedirs(into)
            result["files"] = extract(stream.reader(), into, stats)
            stream.check()
        except BaseException:
            shutil.rmtree(into, ignore_errors=True)
            raise
        result.update(checksum="ok", bytes=stats.bytes)
        return stats

    def restore(self, item, result):
        """The archive's top entries (the backed-up path itself) into dest, through a staging folder beside it."""
        os.makedirs(self.dest, exist_ok=True)
        staging = os.path.join(self.dest, ".corebackup-restore-%s" % uuid.uuid4().hex[:8])
        self.unpack(item, result, staging)
        try:
            moves = [(os.path.join(staging, name), os.path.join(self.dest, name)) for name in sorted(os.listdir(staging))]
            self.refuse_occupied([target for _source, target in moves])
            for source, target in moves:
                self.commit(source, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result["target"] = moves[0][1] if len(moves) == 1 else self.dest

    def refuse_occupied(self, targets):
        for target in targets:
            occupied = os.path.isdir(target) and os.listdir(target) or os.path.lexists(target) and not os.path.isdir(target)
            if occupied and not self.params["force"]:
                raise RestoreError("%s is not empty: set force to replace what it holds" % target)

    @staticmethod
    def commit(staging, target):
        old = None
        if os.path.lexists(target):
            old = target + ".replaced-%s" % uuid.uuid4().hex[:8]
            os.rename(target, old)
        os.rename(staging, target)
        if old:
            if os.path.isdir(old) and not os.path.islink(old):
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.unlink(old)

    def drill(self, item, result):
        scratch = os.path.join(self.parent.scratch, uuid.uuid4().hex[:8])
        self.unpack(item, result, scratch)
        recorded = item["artifact"].get("contents") or {}
        names = os.listdir(scratch)
        again = TreeStats()
        for _chunk in tar_stream([(os.path.join(scratch, n), n) for n in sorted(names)], stats=again):
            pass
        self.parent.compare(result, recorded, {"files": again.files, "bytes": again.bytes, "tree_digest": again.digest})
        shutil.rmtree(scratch, ignore_errors=True)


class GitHubTarget(FilesTarget):
    """A repository: its bare mirror, a working clone and the metadata; and optionally pushed to a GitHub."""

    def restore(self, item, result):
        """The whole archive (repo.git, wiki.git, lfs, metadata) into dest/<repository>."""
        target = os.path.join(self.dest, item["name"])
        self.refuse_occupied([target])
        os.makedirs(self.dest, exist_ok=True)
        staging = os.path.join(self.dest, ".corebackup-restore-%s" % uuid.uuid4().hex[:8])
        self.unpack(item, result, staging)
        self.commit(staging, target)
        result["target"] = target
        mirror = os.path.join(target, "repo.git")
        refs, _digest = local_refs(mirror)
        result["refs"] = len(refs)
        git = self.parent.module.module.get_bin_path("git", required=True)
        if refs:
            self.parent.module.command([git, "clone", "--quiet", mirror, os.path.join(target, item["name"])],
                                       "git clone of the restored mirror")
        if self.params["push_to"]:
            result["pushed_to"] = self.push(item, target, git)

    def push(self, item, target, git):
        push_to = self.params["push_to"]
        client = GitHubClient(push_to["api_url"], push_to["token"], push_to["validate_certs"], self.parent.module.retry)
        owner = push_to["organization"]
        source = item["artifact"].get("metadata", {}).get("repository", "")
        name = source.split("/")[-1] or item["name"]
        try:
            repo = client.post("orgs/%s/repos" % owner if owner else "user/repos",
                               {"name": name, "private": True, "description": "restored from %s" % source}).data
        except GitHubError as exc:
            raise RestoreError("cannot create %s on %s: %s" % (name, push_to["api_url"], exc)) from None
        env = git_env(repo["clone_url"], push_to["token"], push_to["validate_certs"])
        module = self.parent.module
        mirror = os.path.join(target, "repo.git")
        module.command([git, "-C", mirror, "push", "--quiet", repo["clone_url"]] + list(PUSHED_REFS),
                       "git push to %s" % repo["full_name"], env=env)
        lfs = os.path.join(target, "lfs", "objects")
        if os.path.isdir(lfs):
            shutil.copytree(lfs, os.path.join(mirror, "lfs", "objects"), dirs_exist_ok=True)
            module.command([git, "-C", mirror, "lfs", "push", "--all", repo["clone_url"]], "git lfs push", env=env)
        wiki = os.path.join(target, "wiki.git")
        if os.path.isdir(wiki):
            wiki_url = repo["clone_url"][:-4] + ".wiki.git" if repo["clone_url"].endswith(".git") else repo["clone_url"] + ".wiki.git"
            try:
                module.command([git, "-C", wiki, "push", "--quiet", wiki_url, "refs/heads/*:refs/heads/*"],
                               "git push of the wiki", env=git_env(wiki_url, push_to["token"], push_to["validate_certs"]))
            except BackupError:
                module.warn("%s: the wiki was not pushed: GitHub creates a repository's wiki only from its web page; "
                            "open the wiki tab of %s once, then restore again with only this item" % (
                                item["name"], repo["html_url"]))
        return repo["full_name"]

    def drill(self, item, result):
        scratch = os.path.join(self.parent.scratch, uuid.uuid4().hex[:8])
        self.unpack(item, result, scratch)
        refs, digest = local_refs(os.path.join(scratch, "repo.git"))
        metadata = item["artifact"].get("metadata") or {}
        recorded = {"refs": int(metadata["refs_count"]) if metadata.get("refs_count") else None,
                    "refs_digest": metadata.get("refs_digest")}
        recorded.update({k: v for k, v in (item["artifact"].get("contents") or {}).items() if k in ("refs", "refs_digest")})
        result["refs"] = len(refs)
        self.parent.compare(result, {k: v for k, v in recorded.items() if v is not None},
                            {"refs": len(refs), "refs_digest": digest})
        shutil.rmtree(scratch, ignore_errors=True)


class VolumeTarget:
    """A Docker volume, through the archive API: a scratch volume first, then copied into the target."""

    def __init__(self, restore, date):
        self.parent = restore
        self.params = restore.params
        self.client = connect(self.params)

    def image(self, volume):
        if self.params["helper_image"]:
            return self.params["helper_image"]
        for container in self.client.containers.list(all=True, filters={"volume": volume}):
            return container.attrs["Config"]["Image"]
        raise RestoreError("no container uses %s: set helper_image to a local image" % volume)

    def into_scratch(self, item, result, image):
        scratch = self.client.volumes.create("corebackup-restore-%s" % uuid.uuid4().hex[:10])
        container, path = helper(self.client, image, scratch.name, read_only=False)
        stream = self.parent.stream(item)
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
        source, path = helper(self.client, image, volume)
        stats = TreeStats()
        try:
            chunks = tar_filter(self.client.api.get_archive(source.id, path)[0], strip=1, stats=stats)
            if into is None:
                for _chunk in chunks:
                    pass
            else:
                target, target_path = helper(self.client, image, into, read_only=False)
                try:
                    self.client.api.put_archive(target.id, target_path, chunks)
                finally:
                    target.remove(force=True)
        finally:
            source.remove(force=True)
        return stats

    def check(self, item, result):
        check_artifact(self.parent, item, result)
        result["target"] = self.params["volume"] or item["name"]

    def restore(self, item, result):
        name = self.params["volume"] or item["name"]
        image = self.params["helper_image"] or self.image(name)
        existing = any(v.name == name for v in self.client.volumes.list(filters={"name": name}))
        occupied = existing and self.non_empty(name, image)
        if occupied and not self.params["force"]:
            raise RestoreError("volume %s is not empty: set force to replace what it holds" % name)
        scratch = self.into_scratch(item, result, image)
        users = list(self.client.containers.list(filters={"volume": name}))
        try:
            for container in users:
                container.stop()
            if not existing:
                self.client.volumes.create(name)
            elif occupied:
                self.empty(name, image)
            stats = self.tree(scratch.name, image, into=name)
        finally:
            for container in users:
                container.start()
            scratch.remove(force=True)
        result.update(target=name, files=stats.files, bytes=stats.bytes, stopped=[c.name for c in users])

    def non_empty(self, name, image):
        container, path = helper(self.client, image, name)
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
        self.parent.compare(result, item["artifact"].get("contents") or {},
                            {"files": stats.files, "bytes": stats.bytes, "tree_digest": stats.digest})


class MongoTarget:
    """MongoDB collections: into scratch collections first, renamed into place once the artifact checks out."""

    BATCH = 1000

    def __init__(self, restore, date):
        if not HAS_PYMONGO:
            raise BackupError("restoring MongoDB needs the pymongo Python library on the host")
        self.parent = restore
        self.params = restore.params
        if not self.params["uri"]:
            raise OptionError("uri is required to restore MongoDB items (or MONGO_URI)")
        self.client = pymongo.MongoClient(self.params["uri"], serverSelectionTimeoutMS=15000)
        self.tag = uuid.uuid4().hex[:8]

    def rename(self, database):
        source, target = (self.params["ns_from"] or "").rstrip(".*"), (self.params["ns_to"] or "").rstrip(".*")
        return target if source and database == source else database

    def check(self, item, result):
        check_artifact(self.parent, item, result)
        result["target"] = "the MongoDB server of uri"

    def load(self, item, result, rename):
        """Stream the archive into scratch collections: {(db, name): (scratch, metadata, type)}, oplog entries."""
        stream = self.parent.stream(item)
        events = archive.read_archive(stream.reader())
        collections, pending, oplog, documents = {}, {}, [], 0
        try:
            for event in events:
                if event[0] == "collection":
                    _kind, db, name, metadata, ctype = event
                    target = (rename(db), name)
                    if ctype != "view" and not self.params["drop"] and not self.parent.drill and \
                            name in self.client[target[0]].list_collection_names():
                        raise RestoreError("%s.%s exists: set drop to replace it" % target)
                    collections[(db, name)] = (target, "corebackup_restore_%s_%s" % (self.tag, name),
                                               bson_loads(metadata), ctype)
                elif event[0] == "document":
                    _kind, db, name, raw = event
                    if (db, name) == archive.OPLOG_NAMESPACE:
                        oplog.append(raw)
                        continue
                    batch = pending.setdefault((db, name), [])
                    batch.append(RawBSONDocument(raw))
                    documents += 1
                    if len(batch) >= self.BATCH:
                        self.flush(collections[(db, name)], batch)
                elif event[0] == "eof":
                    _kind, db, name, expected, crc = event
                    if expected != crc:
                        raise RestoreError("%s.%s: the archive's checksum does not match its documents" % (db, name))
                    if (db, name) in collections and collections[(db, name)][3] != "view":
                        self.flush(collections[(db, name)], pending.pop((db, name), []), create=True)
            stream.check()
        except BaseException:
            self.drop_scratch(collections)
            raise
        result.update(checksum="ok", documents=documents)
        return collections, oplog

    def flush(self, collection, batch, create=False):
        (database, _name), scratch, metadata, _ctype = collection
        target = self.client[database]
        if scratch not in target.list_collection_names():
            options = dict(metadata.get("options") or {})
            target.create_collection(scratch, **options)
        if batch:
            target[scratch].insert_many(batch, ordered=False)
            del batch[:]

    def drop_scratch(self, collections):
        for (database, _name), scratch, _metadata, ctype in collections.values():
            if ctype != "view":
                self.client[database].drop_collection(scratch)

    def restore(self, item, result):
        collections, oplog = self.load(item, result, self.rename)
        for (database, name), scratch, metadata, ctype in collections.values():
            if ctype == "view":
                continue
            self.indexes(database, scratch, metadata)
            self.client.admin.command("renameCollection", "%s.%s" % (database, scratch), to="%s.%s" % (database, name),
                                      dropTarget=self.params["drop"])
            self.keep_options(database, name, scratch, metadata)
        for (database, name), _scratch, metadata, ctype in collections.values():
            if ctype == "view":
                if self.params["drop"]:
                    self.client[database].drop_collection(name)
                self.client[database].create_collection(name, **dict(metadata.get("options") or {}))
        applied = self.replay(oplog) if oplog and self.params["oplog_replay"] else 0
        result.update(target=sorted({"%s.%s" % t[0] for t in collections.values()}), oplog_applied=applied)

    def keep_options(self, database, name, scratch, metadata):
        """A server that drops a collection's options when renaming it (some MongoDB-compatible ones do) gets
        the collection made with its options, and the documents copied over from the renamed one."""
        wanted = dict(metadata.get("options") or {})
        info = next(iter(self.client[database].list_collections(filter={"name": name})), {})
        if not wanted or dict(info.get("options") or {}) == wanted:
            return
        self.client.admin.command("renameCollection", "%s.%s" % (database, name), to="%s.%s" % (database, scratch))
        self.client[database].create_collection(name, **wanted)
        self.indexes(database, name, metadata)
        batch = []
        for document in self.client[database][scratch].with_options(codec_options=RAW).find():
            batch.append(document)
            if len(batch) >= self.BATCH:
                self.client[database][name].insert_many(batch, ordered=False)
                batch = []
        if batch:
            self.client[database][name].insert_many(batch, ordered=False)
        self.client[database].drop_collection(scratch)

    def indexes(self, database, scratch, metadata):
        for index in metadata.get("indexes") or []:
            if index.get("name") == "_id_":
                continue
            spec = dict(index)
            keys = list(spec.pop("key").items())
            for drop in ("v", "ns"):
                spec.pop(drop, None)
            self.client[database][scratch].create_index(keys, **spec)

    def replay(self, entries):
        """Apply the dump's oplog: inserts, deletes and updates (operators, replacements, diffs)."""
        applied = 0
        for raw in entries:
            entry = RawBSONDocument(raw)
            if entry["op"] not in ("i", "u", "d") or "." not in entry["ns"]:
                continue
            database, name = entry["ns"].split(".", 1)
            collection = self.client[self.rename(database)][name]
            document = dict(entry["o"])
            selector = dict(entry["o2"]) if "o2" in entry else {"_id": document.get("_id")}
            if entry["op"] == "i":
                collection.replace_one({"_id": document["_id"]}, document, upsert=True)
            elif entry["op"] == "d":
                collection.delete_one(document)
            else:
                update = to_update(document)
                if update is None:
                    collection.replace_one(selector, document, upsert=True)
                else:
                    collection.update_one(selector, update)
            applied += 1
        return applied

    def drill(self, item, result):
        scratch_db = "corebackup_drill_%s" % self.tag
        collections, _oplog = self.load(item, result, lambda _db: scratch_db)
        counts = {}
        for (database, name), scratch, _metadata, ctype in collections.values():
            if ctype != "view":
                counts["%s.%s" % (database, name)] = self.client[scratch_db][scratch].count_documents({})
        self.client.drop_database(scratch_db)
        recorded = {ns: facts.get("documents") for ns, facts in
                    ((item["artifact"].get("contents") or {}).get("collections") or {}).items()
                    if "documents" in facts and ns != "oplog"}
        result["documents"] = sum(counts.values())
        self.parent.compare(result, recorded, counts)


def check_artifact(restore, item, result):
    """Check mode: read the artifact through decryption and decompression, and check it; write nothing."""
    stream = restore.stream(item)
    for _chunk in stream.chunks():
        pass
    stream.check()
    result["checksum"] = "ok"


def bson_loads(text):
    import bson.json_util  # pylint: disable=import-outside-toplevel
    return bson.json_util.loads(text)


def to_update(document):
    """The update of an oplog ``u`` entry as an update document, or None for a replacement."""
    if "$v" in document and "diff" in document:
        diff = document["diff"]
        if "updatedFields" in diff or "removedFields" in diff:  # the change-stream form
            update = {}
            if diff.get("updatedFields"):
                update["$set"] = dict(diff["updatedFields"])
            if diff.get("removedFields"):
                update["$unset"] = {field: "" for field in diff["removedFields"]}
            return update
        sets, unsets = {}, {}
        _flatten_diff(diff, "", sets, unsets)
        return dict(({"$set": sets} if sets else {}), **({"$unset": unsets} if unsets else {}))
    if any(key.startswith("$") for key in document):
        return {k: v for k, v in document.items() if k != "$v"}
    return None


def _flatten_diff(diff, prefix, sets, unsets):
    """MongoDB's $v: 2 update diff (u: update, i: insert, d: delete, s<field>: a sub-diff) as $set/$unset."""
    for key, value in diff.items():
        if key in ("u", "i"):
            sets.update({prefix + field: val for field, val in value.items()})
        elif key == "d":
            unsets.update({prefix + field: "" for field in value})
        elif key.startswith("s"):
            _flatten_diff(value, prefix + key[1:] + ".", sets, unsets)
        elif key.startswith("u") and key[1:].isdigit():
            sets[prefix.rstrip(".") + "." + key[1:]] = value
        elif key == "a":
            continue
        else:
            raise RestoreError("an oplog update this module cannot replay: %r" % (diff,))


def main():
    module = BackupModule(argument_spec=dict(
        state=dict(type="str", choices=["restored", "drill"], default="restored"),
        set_date=dict(type="str"),
        items=dict(type="list", elements="str", default=[]),
        identity_file=dict(type="path"),
        dest=dict(type="path"),
        force=dict(type="bool", default=False),
        push_to=dict(type="dict", options=dict(
            api_url=dict(type="str", default="https://api.github.com"),
            organization=dict(type="str"),
            token=dict(type="str", required=True, no_log=True),
            validate_certs=dict(type="bool", default=True),
        )),
        volume=dict(type="str"),
        helper_image=dict(type="str"),
        uri=dict(type="str", no_log=True, fallback=(env_fallback, ["MONGO_URI"])),
        drop=dict(type="bool", default=False),
        ns_from=dict(type="str"),
        ns_to=dict(type="str"),
        oplog_replay=dict(type="bool", default=True),
        **CONNECTION_SPEC,
    ), required_together=[("ns_from", "ns_to")])
    module.run(lambda m: Restore(m).run())


if __name__ == "__main__":
    main()
