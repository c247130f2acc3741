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

import hashlib
import os
import tarfile
import typing as t
import zlib

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import (
    ChunkReader,
    PipelineError,
    age_decrypt,
    decompress,
    threaded,
)


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
            raise RestoreError("%s cannot be read back (%s): it is not what was recorded; nothing was restored from "
                               "it" % (self.artifact["key"], exc)) from None

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
    with archive:
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


def _attributes(archive: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
    if os.geteuid() == 0:
        archive.chown(member, path, numeric_owner=True)
    archive.chmod(member, path)
    archive.utime(member, path)
