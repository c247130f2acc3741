# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""Reading an artifact back, once, and checking it while it streams into a staging target.

:class:`ArtifactStream` yields the artifact's plain bytes (decrypted with an age identity, then
decompressed) and hashes the stored bytes on the way; :meth:`ArtifactStream.check` says whether they
were the ones recorded (size and sha256). A restore writes into a staging target first and commits
only after the check, so a corrupted artifact never touches the target.

:func:`extract` unpacks a tar stream safely: no absolute name, no ``..``, nothing written through a
symbolic link (one in the archive, or one already there), hard links only to what the archive holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
import time
import typing as t
import uuid
import zlib

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import iso, parse_date
from ansible_collections.corebackup.backup.plugins.module_utils._manifest import refresh_view
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import (
    ChunkReader,
    PipelineError,
    TreeStats,
    age_decrypt,
    decompress,
    tar_stream,
    threaded,
)
from ansible_collections.corebackup.backup.plugins.module_utils._service import run_nested
from ansible_collections.corebackup.backup.plugins.module_utils._records import (
    RecordNotWritten,
    not_recorded,
    read_set,
    write_drill,
)
from ansible_collections.corebackup.backup.plugins.module_utils._sets import list_sets
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError


class RestoreError(BackupError):
    """An artifact cannot be restored as asked; nothing was written to the target."""


class ArtifactStream:
    """The plain bytes of one stored artifact, checked against its record as they are read."""

    def __init__(self, backend: t.Any, artifact: dict, identity_file: str | None = None, age_path: str | None = None):
        self.backend = backend
        self.artifact = artifact
        self.identity_file = identity_file
        self.age_path = age_path
        self._sha256 = hashlib.sha256()
        self.size = 0

    def _stored(self) -> t.Iterator[bytes]:
        with self.backend.open(self.artifact["key"]) as reader:
            while True:
                block = reader.read(1 << 20)
                if not block:
                    return
                self._sha256.update(block)
                self.size += len(block)
                yield block

    def chunks(self) -> t.Iterator[bytes]:
        stream: t.Iterable[bytes] = self._stored()
        if self.artifact.get("encryption"):
            if not self.identity_file:
                raise RestoreError("%s is encrypted: give identity_file (an age identity of one of its recipients)"
                                   % self.artifact["key"])
            stream = age_decrypt(stream, self.identity_file, self.age_path)
        try:  # reading, hashing and decompressing in a thread of their own, while the caller writes
            yield from threaded(decompress(stream, self.artifact.get("compression") or "none"), name="restore")
        except (zlib.error, PipelineError, ValueError) as exc:
            # age says so of a key that is not a recipient, and of a recipient's stanza that was damaged in the store.
            if "no identity matched any of the recipients" in str(exc) and self._intact():
                raise RestoreError("%s cannot be decrypted with identity_file %s: none of its keys is a recipient of the "
                                   "artifact, which is encrypted to %s; nothing was restored from it" % (
                                       self.artifact["key"], self.identity_file,
                                       ", ".join((self.artifact.get("encryption") or {}).get("recipients") or ["?"]))) from None
            raise RestoreError("%s cannot be read back (%s): it is not what was recorded; nothing was restored from "
                               "it" % (self.artifact["key"], exc)) from None

    def _intact(self) -> bool:
        """Is the stored artifact what was recorded? Read whole again, only after age refused to open it."""
        digest, size = hashlib.sha256(), 0
        try:
            with self.backend.open(self.artifact["key"]) as reader:
                for block in iter(lambda: reader.read(1 << 20), b""):
                    digest.update(block)
                    size += len(block)
        except (StorageError, OSError):
            return False
        return size == self.artifact["size"] and digest.hexdigest() == self.artifact["sha256"]

    def reader(self) -> ChunkReader:
        return ChunkReader(self.chunks())

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def check(self) -> None:
        """After the whole artifact was read: RestoreError unless it is what was recorded."""
        if self.size != self.artifact["size"] or self.sha256 != self.artifact["sha256"]:
            raise RestoreError("%s is not what was recorded (%d bytes, sha256 %s; recorded %d bytes, sha256 %s): "
                               "nothing was restored from it" % (self.artifact["key"], self.size, self.sha256,
                                                                 self.artifact["size"], self.artifact["sha256"]))


def _check_name(name: str, what: str) -> list[str]:
    if name.startswith("/") or os.path.isabs(name):
        raise RestoreError("refusing %s %r: an absolute path" % (what, name))
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise RestoreError("refusing %s %r: it climbs out with '..'" % (what, name))
    return parts


def extract(chunks_reader: t.Any, dest: str, stats: t.Any = None) -> int:
    """Unpack a tar stream into the existing folder ``dest``; returns the number of regular files.

    Modes and times are kept, and owners when running as root. ``stats`` (a TreeStats) learns what
    was extracted.
    """
    files = 0
    dest = os.path.realpath(dest)
    directories = []
    try:
        archive = tarfile.open(fileobj=chunks_reader, mode="r|")
    except (tarfile.TarError, PipelineError) as exc:
        raise RestoreError("not a tar archive: %s" % exc) from None
    with archive, _complete_tar():
        for member in archive:
            parts = _check_name(member.name, "the member")
            if not parts:
                directories.append((dest, member))
                continue
            path = os.path.join(dest, *parts)
            current = dest
            for part in parts[:-1]:  # never through a symbolic link, ours or one that was there
                current = os.path.join(current, part)
                if os.path.islink(current):
                    raise RestoreError("refusing %r: %s is a symbolic link" % (member.name, current))
            if member.islnk():
                link_parts = _check_name(member.linkname, "the hard link target")
                member.linkname = "/".join(link_parts)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.lexists(path) and not os.path.isdir(path):
                os.unlink(path)  # tar replaces a file it extracts again
            sha256 = hashlib.sha256()
            if member.isreg():
                source = archive.extractfile(member)
                with open(path, "wb") as handle:
                    while True:
                        block = source.read(1 << 20)
                        if not block:
                            break
                        sha256.update(block)
                        handle.write(block)
                files += 1
                _attributes(archive, member, path)
            elif member.isdir():
                os.makedirs(path, exist_ok=True)
                directories.append((path, member))
            else:
                archive.extract(member, dest, set_attrs=True, numeric_owner=True, filter="fully_trusted")
                if member.issym():  # tarfile leaves a link's own time alone
                    os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
            if stats is not None:
                stats.add(member, sha256.hexdigest() if member.isreg() else "")
    for path, member in reversed(directories):  # after their content, as tar does
        _attributes(archive, member, path)
    return files


@contextlib.contextmanager
def _complete_tar() -> t.Iterator[None]:
    """An archive that ends half-way (or is not tar at all) is a RestoreError, not a crash."""
    try:
        yield
    except (tarfile.TarError, EOFError) as exc:
        raise RestoreError("the artifact is not a complete tar archive (%s): nothing was restored from it" % exc) from None


def _attributes(archive: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
    if os.geteuid() == 0:
        archive.chown(member, path, numeric_owner=True)
    archive.chmod(member, path)
    archive.utime(member, path)


def check_artifact(stream: ArtifactStream, result: dict) -> None:
    """Check mode: read the artifact through decryption and decompression, and check it; write nothing."""
    for _chunk in stream.chunks():
        pass
    stream.check()
    result["checksum"] = "ok"


class Restorer:
    """How the artifacts of one service go back: a slice's restorer, called by :class:`RestoreRunner` for
    each item of a set (``item``: name, type, key, artifact, source). Each method fills ``result``.

    ``restore`` streams the artifact once (``runner.stream(item)``) into a staging target, checks its size
    and sha256 (``stream.check()``) and only then replaces what the target holds; ``drill`` restores into a
    scratch target and compares it with what was recorded at backup time (``runner.compare``);
    ``pre_restore`` says what the service's backup module must back up before the items replace what their
    targets hold (its options, or None when nothing is there).
    """

    SPEC: dict = {}  # the options of backup_restore this restorer reads
    PRE_RESTORE_SERVICE: str | None = None  # the service whose backup keeps what a restore replaces (None: its own)

    def __init__(self, runner: t.Any):
        self.runner = runner
        self.module = runner.module
        self.params = runner.params

    def target(self, item: dict) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def check(self, item: dict, result: dict) -> None:
        check_artifact(self.runner.stream(item), result)
        result["target"] = self.target(item)

    def restore(self, item: dict, result: dict) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def drill(self, item: dict, result: dict) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def replaces(self) -> bool:
        """Does this restore replace what its targets hold (force, drop)?"""
        return bool(self.params.get("force"))

    def pre_restore(self, items: list[dict]) -> dict | None:
        return None


class FolderRestorer(Restorer):
    """Artifacts that are tar archives restored into a folder of ``dest`` (host files, GitHub repositories)."""

    SPEC = dict(
        dest=dict(type="path"),
        force=dict(type="bool", default=False),
    )
    PRE_RESTORE_SERVICE = "files"  # what a restore replaces is a folder: files_backup backs it up first

    def __init__(self, runner: t.Any):
        super().__init__(runner)
        self.dest = os.path.abspath(self.params["dest"] or os.path.join("corebackup-restore", runner.job, runner.date))

    def target(self, item: dict) -> str:
        return os.path.join(self.dest, item["name"])

    def unpack(self, item: dict, result: dict, into: str) -> TreeStats:
        """Extract the artifact into ``into`` (a new folder) and check it; the folder is gone if it fails."""
        stream = self.runner.stream(item)
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

    def staging(self) -> str:
        os.makedirs(self.dest, exist_ok=True)
        return os.path.join(self.dest, ".corebackup-restore-%s" % uuid.uuid4().hex[:8])

    def restore(self, item: dict, result: dict) -> None:
        """The archive's top entries (the backed-up path itself) into dest, through a staging folder beside it."""
        staging = self.staging()
        self.unpack(item, result, staging)
        try:
            moves = [(os.path.join(staging, name), os.path.join(self.dest, name)) for name in sorted(os.listdir(staging))]
            self.refuse_occupied([target for _source, target in moves])
            for source, target in moves:
                commit(source, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result["target"] = moves[0][1] if len(moves) == 1 else self.dest

    def refuse_occupied(self, targets: list[str]) -> None:
        for target in targets:
            occupied = os.path.isdir(target) and os.listdir(target) or os.path.lexists(target) and not os.path.isdir(target)
            if occupied and not self.params["force"]:
                raise RestoreError("%s is not empty: set force to replace what it holds" % target)

    def restored_path(self, item: dict) -> str:
        """Where the item goes (what it replaces)."""
        return os.path.join(self.dest, item["name"])

    def pre_restore(self, items: list[dict]) -> dict | None:
        """files_backup of what the restore replaces, where something is there."""
        paths = [{"path": self.restored_path(item), "name": item["name"]} for item in items
                 if os.path.lexists(self.restored_path(item))]
        return {"paths": paths} if paths else None

    def drill(self, item: dict, result: dict) -> None:
        scratch = self.runner.scratch_folder()
        self.unpack(item, result, scratch)
        recorded = item["artifact"].get("contents") or {}
        again = TreeStats()
        for _chunk in tar_stream([(os.path.join(scratch, n), n) for n in sorted(os.listdir(scratch))], stats=again):
            pass
        self.runner.compare(result, recorded, {"files": again.files, "bytes": again.bytes, "tree_digest": again.digest})
        shutil.rmtree(scratch, ignore_errors=True)


def commit(staging: str, target: str) -> None:
    """Put ``staging`` where ``target`` is, replacing it: never a moment without one or the other."""
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


# The options of a service's backup that a pre-restore backup takes from backup_restore's packing option.
PACKING = ("compression", "compression_level", "compression_threads", "encryption")


class RestoreRunner:
    """Runs backup_restore, as :class:`ServiceRunner` runs a service module: the set and its items, the
    pre-restore backup, one artifact after another through its service's restorer, the drill's record.

    ``slices`` maps a service's name (an item's ``type``) to its ServiceSlice.
    """

    def __init__(self, module: t.Any, slices: dict):
        self.module = module
        self.params = module.params
        self.slices = slices
        self.backend = module.backend
        self.job = module.job
        self.date = ""
        self.backup_set: t.Any = None
        self.drilling = self.params["state"] == "drill"
        self.age = module.module.get_bin_path("age") if self.params["identity_file"] else None
        if self.params["identity_file"] and not os.path.isfile(self.params["identity_file"]):
            raise OptionError("identity_file %s is not a file" % self.params["identity_file"])
        self.scratch = tempfile.mkdtemp(prefix="restore-", dir=module.module.tmpdir)
        self.restorers: dict = {}

    # -- the set and its items ----------------------------------------------------------------
    def choose(self) -> tuple[str, list[dict]]:
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
        self.backup_set = sets[date]
        items = read_set(self.backend, self.backup_set).items()
        unknown = sorted(set(self.params["items"]) - set(items))
        if unknown:
            raise OptionError("the set %s of %s holds no item %s (it holds %s)"
                              % (date, self.job, ", ".join(unknown), ", ".join(sorted(items))))
        return date, [items[n] for n in (self.params["items"] or sorted(items))]

    def restorer(self, item: dict) -> Restorer:
        kind = item["type"]
        if kind not in self.restorers:
            service = self.slices.get(kind)
            if service is None or service.restorer is None:
                raise OptionError("%s was backed up by %s, which backup_restore cannot restore" % (item["name"], kind))
            self.restorers[kind] = service.restorer(self)
        return self.restorers[kind]

    def stream(self, item: dict) -> ArtifactStream:
        return ArtifactStream(self.backend, item["artifact"], self.params["identity_file"], self.age)

    def scratch_folder(self) -> str:
        return os.path.join(self.scratch, uuid.uuid4().hex[:8])

    def compare(self, result: dict, recorded: dict, restored: dict) -> None:
        """A drill's verdict: every fact recorded at backup time equals what was restored."""
        differences = ["%s %s, recorded %s" % (k, restored.get(k), v) for k, v in sorted(recorded.items())
                       if k in restored and restored[k] != v]
        result.update(status="mismatch" if differences else "ok", detail="; ".join(differences))

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> None:
        started = time.monotonic()
        self.date, items = self.choose()
        results = []
        output: dict = {}
        try:
            for item in items:
                self.restorer(item)  # every item's service can restore, before anything is replaced
            pre = self.pre_restore_backup(items)
            if pre is not None:
                output["pre_restore"] = pre
            for item in items:
                result = {"name": item["name"], "type": item["type"], "key": item["key"], "checksum": None}
                restorer = self.restorer(item)
                try:
                    if self.module.check_mode:
                        restorer.check(item, result)
                    elif self.drilling:
                        restorer.drill(item, result)
                    else:
                        restorer.restore(item, result)
                except (BackupError, OSError) as exc:
                    if not self.drilling:
                        raise
                    result.update(status="failed", detail=self.module.scrub(exc))
                results.append(result)
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)
        output.update(changed=not self.module.check_mode, set_date=self.date, restored=results)
        if self.drilling and not self.module.check_mode:
            output["drill"] = self.record(results, time.monotonic() - started)
            bad = [r for r in results if r["status"] != "ok"]
            if bad:
                self.module.fail("the drill of %s %s failed: %s" % (self.job, self.date, "; ".join(
                    "%s: %s" % (r["name"], r["detail"]) for r in bad)), **output)
        self.module.exit(**output)

    def pre_restore_backup(self, items: list[dict]) -> dict | None:
        """Before an in-place restore replaces what its targets hold: that, backed up by the service's own module
        into the job ``<job>-pre-restore``, packed as ``packing`` says, and recorded. Nothing is replaced when it
        fails."""
        if self.module.check_mode or self.drilling or not self.params["pre_restore_backup"]:
            return None
        by_kind: dict = {}
        for item in items:
            by_kind.setdefault(item["type"], []).append(item)
        done = None
        for kind, of_kind in by_kind.items():
            restorer = self.restorer(of_kind[0])
            options = restorer.pre_restore(of_kind) if restorer.replaces() else None
            if options is None:
                continue
            service = self.slices[restorer.PRE_RESTORE_SERVICE or kind]
            packing = {k: v for k, v in (self.params["packing"] or {}).items() if k in PACKING}
            args = dict(packing, **options)
            args.update(job=pre_restore_job(self.job), storage=self.params["storage"], retries=self.params["retries"])
            output, failure = run_nested(self.module, service, args)
            if failure is not None or output["status"] != "success":
                failed = [e for e in output.get("entries", []) if e["status"] == "failed"]
                raise RestoreError("the pre-restore backup of what %s replaces failed, so nothing was replaced: %s" % (
                    self.job, failure or "; ".join("%s: %s" % (e["name"], e["error"]) for e in failed)))
            done = {"job": output["job"], "status": output["status"], "run_id": (output.get("run") or {}).get("run_id"),
                    "artifacts": [a["key"] for a in output["artifacts"]]}
        return done

    def record(self, results: list[dict], duration: float) -> dict:
        drill = {"when": iso(self.module.now), "duration": round(duration, 3),
                 "result": "ok" if all(r["status"] == "ok" for r in results) else "failed",
                 "items": [{"name": r["name"], "key": r["key"], "status": r["status"], "detail": r.get("detail") or ""}
                           for r in results]}
        # The drill's record, written once; a drill of every item that passed makes the set verified (_records.py).
        try:
            write_drill(self.backend, self.backup_set, self.module.now, drill)
        except RecordNotWritten as exc:
            self.module.warn(self.module.scrub(not_recorded("drill", exc)))
            return drill
        for warning in refresh_view(self.backend, self.job, self.date):
            self.module.warn(self.module.scrub(warning))
        return drill


def pre_restore_job(job: str) -> str:
    """The job a pre-restore backup of ``job`` goes to (the same for a restore from a pre-restore set)."""
    base = job
    while base.endswith("-pre-restore"):
        base = base[:-len("-pre-restore")]
    return base + "-pre-restore"
