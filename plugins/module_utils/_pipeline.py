# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The streaming artifact writer.

A producer (a tar of directory trees, a command's stdout, any iterable of bytes) flows through
compression, optional encryption to age recipients, sha256 and byte counting, into a storage
backend, in one pass. Stages run in threads joined by small bounded queues, so memory stays flat
whatever the size of the artifact and compression overlaps with reading and storing. Nothing is
written to a temporary copy of the whole artifact.

Subprocesses (``age``, and commands used as producers) are driven with ``subprocess.Popen`` rather
than ``AnsibleModule.run_command``: a stream needs its stdin fed and its stdout read at the same
time, which ``run_command`` cannot do. They never get a shell, and never a secret on the command
line: age takes public keys only.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import typing as t
import zlib
from dataclasses import dataclass, field

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._checksum import StreamDigest, iter_reader
from ansible_collections.corebackup.backup.plugins.module_utils._compress import RunBudget, parallel_gzip, zstd_compress
from ansible_collections.corebackup.backup.plugins.module_utils._layout import ArtifactKey, checksum_key, iso, utc_now

try:
    import zstandard
    HAS_ZSTANDARD = True
    ZSTANDARD_IMP_ERR = None
except ImportError as _imp_exc:  # pragma: no cover - depends on the host
    HAS_ZSTANDARD = False
    ZSTANDARD_IMP_ERR = _imp_exc

CHUNK_SIZE = 1024 * 1024
QUEUE_DEPTH = 4
COMPRESSIONS = ("gzip", "zstd", "none")
COMPRESSION_SUFFIX = {"gzip": ".gz", "zstd": ".zst", "none": ""}
LEVELS = {"gzip": (0, 9), "zstd": (1, 22), "none": (0, 0)}
AGE_RECIPIENT_RE = re.compile(r"^(age1[02-9ac-hj-np-z]{58}|ssh-(ed25519|rsa) [A-Za-z0-9+/=]+( .*)?)$")
STDERR_TAIL = 4096


class PipelineError(BackupError):
    """The artifact could not be produced; nothing was stored under its name."""


class BrokenTarStream(PipelineError, tarfile.TarError):
    """A source's tar stream that ends half-way or is not a tar (a TarError still, for callers that say more)."""


@dataclass(frozen=True)
class Artifact:
    """What was stored: the record every service module returns and every manifest keeps."""

    key: str
    size: int
    sha256: str
    compression: str
    encryption: dict | None = None
    created: str = ""
    metadata: dict = field(default_factory=dict)
    carried_from: str | None = None  # the key of an older artifact whose bytes this one holds
    contents: dict | None = None  # what the service found inside while writing it (counts, digests)
    requires: tuple = ()  # ({key, size, sha256} of the objects a restore of it reads first, in order)

    def to_dict(self) -> dict:
        record = {
            "key": self.key, "size": self.size, "sha256": self.sha256, "compression": self.compression,
            "encryption": dict(self.encryption) if self.encryption else None, "created": self.created,
            "metadata": dict(self.metadata),
        }
        if self.carried_from:
            record["carried_from"] = self.carried_from
        if self.contents:
            record["contents"] = dict(self.contents)
        if self.requires:
            record["requires"] = [dict(required) for required in self.requires]
        return record

    @classmethod
    def from_dict(cls, record: dict) -> "Artifact":
        return cls(key=record["key"], size=int(record["size"]), sha256=record["sha256"],
                   compression=record.get("compression") or "none", encryption=record.get("encryption") or None,
                   created=record.get("created") or "", metadata=dict(record.get("metadata") or {}),
                   carried_from=record.get("carried_from") or None, contents=record.get("contents") or None,
                   requires=tuple(dict(r) for r in record.get("requires") or ()))

    def record_checksum(self, backend: t.Any) -> None:
        """Write the artifact's checksum record beside it, once it is completely stored."""
        backend.write(checksum_key(self.key), [(json.dumps(self.to_dict(), sort_keys=True) + "\n").encode("utf-8")],
                      overwrite=False)


# --------------------------------------------------------------------------------------------
# Threads joined by bounded queues
# --------------------------------------------------------------------------------------------

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class _ChunkSink:
    """A write()-able object that hands coalesced chunks to a bounded queue."""

    def __init__(self, out: queue.Queue, stop: threading.Event, chunk_size: int):
        self._out = out
        self._stop = stop
        self._chunk_size = chunk_size
        self._pending = bytearray()
        self._position = 0

    def put(self, item: t.Any) -> None:
        while True:
            if self._stop.is_set():
                raise PipelineError("the pipeline was stopped by its consumer")
            try:
                self._out.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def write(self, data: bytes) -> int:
        size = len(data)
        self._position += size
        if not self._pending and size >= self._chunk_size:
            self.put(bytes(data))
            return size
        self._pending += data
        if len(self._pending) >= self._chunk_size:
            self.put(bytes(self._pending))
            self._pending = bytearray()
        return size

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        if self._pending:
            self.put(bytes(self._pending))
            self._pending = bytearray()


def run_in_thread(
    fill: t.Callable[[_ChunkSink], None], chunk_size: int = CHUNK_SIZE, depth: int = QUEUE_DEPTH, name: str = "stage"
) -> t.Iterator[bytes]:
    """Run ``fill(sink)`` in a thread and yield the chunks it writes to ``sink``.

    An exception in the thread is raised in the consumer. If the consumer stops early (or fails),
    closing this generator stops the thread at its next write.
    """
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    sink = _ChunkSink(out, stop, chunk_size)

    def target():
        try:
            fill(sink)
            sink.flush()
            sink.put(_DONE)
        except BaseException as exc:  # pylint: disable=broad-exception-caught
            if not stop.is_set():
                try:
                    sink.put(_Failure(exc))
                except PipelineError:
                    pass

    thread = threading.Thread(target=target, name="corebackup-" + name, daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                out.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def threaded(chunks: t.Iterable[bytes], name: str = "stage") -> t.Iterator[bytes]:
    """Pull ``chunks`` in a background thread, so that producing overlaps with consuming."""
    def fill(sink: _ChunkSink) -> None:
        iterator = iter(chunks)
        try:
            for chunk in iterator:
                sink.write(chunk)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
    return run_in_thread(fill, name=name)


# --------------------------------------------------------------------------------------------
# Producers
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TreeEntry:
    """One entry of a walked tree: its path, its name relative to the tree's root, and its stat."""

    path: str
    relative: str
    stat: os.stat_result


def walk_tree(path: str, exclude: t.Sequence[str] = (), one_file_system: bool = False,
              follow_symlinks: bool = False) -> t.Iterator[TreeEntry]:
    """The entries of a tree in sorted order, the root first, as :func:`tar_stream` archives them.

    ``exclude``: glob patterns matched against an entry's path relative to the root and against its
    name (``*.log``, ``cache/*``, ``.git``); an excluded directory is not entered. With
    ``one_file_system``, directories on other file systems are archived empty, like ``tar
    --one-file-system``. Symbolic links are stored as links unless ``follow_symlinks``.
    """
    stat = os.stat if follow_symlinks else os.lstat
    try:
        root = stat(path)
    except OSError as exc:
        raise PipelineError("cannot archive %s: %s" % (path, exc.strerror or exc)) from None
    todo = [(path, "", root)]
    entered = set()  # directories, so that a followed link back up is not entered again
    while todo:
        current, relative, info = todo.pop()
        yield TreeEntry(current, relative, info)
        if not stat_is_dir(info) or (info.st_dev, info.st_ino) in entered:
            continue
        entered.add((info.st_dev, info.st_ino))
        if one_file_system and info.st_dev != root.st_dev:
            continue
        try:
            names = sorted(os.listdir(current))
        except OSError as exc:
            raise PipelineError("cannot read the directory %s: %s" % (current, exc.strerror or exc)) from None
        children = []
        for name in names:
            child_relative = name if not relative else relative + "/" + name
            if any(fnmatch.fnmatchcase(child_relative, p) or fnmatch.fnmatchcase(name, p) for p in exclude):
                continue
            child = os.path.join(current, name)
            try:
                children.append((child, child_relative, stat(child)))
            except FileNotFoundError:
                continue  # gone since the listing
            except OSError as exc:
                raise PipelineError("cannot archive %s: %s" % (child, exc.strerror or exc)) from None
        todo.extend(reversed(children))


def stat_is_dir(info: os.stat_result) -> bool:
    return (info.st_mode & 0o170000) == 0o040000


class _ExactReader:
    """Exactly ``size`` bytes of a file that may change while it is read, as GNU tar stores them:
    padded with zeros when it shrank, cut at ``size`` when it grew; ``warn`` names the file."""

    def __init__(self, handle: t.BinaryIO, size: int, path: str, warn: t.Callable[[str], None]):
        self._handle = handle
        self._left = size
        self._path = path
        self._warn = warn
        self._padded = False
        self.sha256 = hashlib.sha256()  # of what the archive holds

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._handle.read(size) if not self._padded else b""
        if len(data) < size:
            if not self._padded:
                self._warn("%s shrank while it was read: padded with zeros to the size it had" % self._path)
                self._padded = True
            data += b"\0" * (size - len(data))
        self._left -= size
        self.sha256.update(data)
        return data

    def finish(self) -> None:
        """After the member: was there more than its size (a file that grew, or one that says it is empty)?"""
        if not self._padded and self._handle.read(1):
            self._warn("%s grew while it was read: archived at the size it had" % self._path)


def tar_stream(sources: str | t.Sequence[tuple[str, str]], chunk_size: int = CHUNK_SIZE, exclude: t.Sequence[str] = (),
               one_file_system: bool = False, follow_symlinks: bool = False,
               warn: t.Callable[[str], None] | None = None, stats: "TreeStats | None" = None) -> t.Iterator[bytes]:
    """A POSIX (pax) tar of directory trees, produced in a background thread.

    ``sources`` is a path (stored under its base name) or a list of ``(path, arcname)`` pairs. The
    trees are walked by :func:`walk_tree`. Modes, numeric owners (and names), times, symbolic links,
    hard links, empty directories and names that are not UTF-8 are kept; sockets are skipped. A file
    that changes while it is read stays consistent with its header (padded or cut) and ``warn`` is
    told; a file that cannot be read fails the stream. ``stats`` learns what was archived.
    """
    if isinstance(sources, str):
        sources = [(sources, os.path.basename(os.path.normpath(sources)))]
    for path, _arcname in sources:
        if not os.path.lexists(path):
            raise PipelineError("cannot archive %s: no such file or directory" % path)
    warn = warn or (lambda _message: None)

    def fill(sink: _ChunkSink) -> None:
        with tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT, copybufsize=chunk_size,
                             dereference=follow_symlinks) as archive:
            for path, arcname in sources:
                for entry in walk_tree(path, exclude, one_file_system, follow_symlinks):
                    _add(archive, entry, arcname + ("/" + entry.relative if entry.relative else ""), warn, stats)

    return run_in_thread(fill, chunk_size=chunk_size, name="tar")


def _add(archive: tarfile.TarFile, entry: TreeEntry, arcname: str, warn: t.Callable[[str], None],
         stats: "TreeStats | None") -> None:
    try:
        info = archive.gettarinfo(entry.path, arcname)
    except FileNotFoundError:
        return  # gone since it was listed
    if info is None:
        return  # a socket
    if not info.isreg():
        archive.addfile(info)
        if stats is not None:
            stats.add(info, "")
        return
    try:
        with open(entry.path, "rb") as handle:
            reader = _ExactReader(handle, info.size, entry.path, warn)
            archive.addfile(info, reader)
            reader.finish()
            after = os.fstat(handle.fileno())
        if stats is not None:
            stats.add(info, reader.sha256.hexdigest())
    except OSError as exc:
        raise PipelineError("cannot read %s: %s" % (entry.path, exc.strerror or exc)) from None
    if after.st_mtime_ns != entry.stat.st_mtime_ns and after.st_size == info.size:
        warn("%s changed while it was read: the archived copy may mix old and new bytes" % entry.path)


class TreeStats:
    """What :func:`tar_filter` saw: regular files, bytes, and a digest of the tree (names, types, modes,
    owners, times, link targets and every file's sha256), equal for equal trees."""

    def __init__(self):
        self.files = 0
        self.bytes = 0
        self.entries = 0
        self._digest = hashlib.sha256()

    def add(self, member: tarfile.TarInfo, content_sha256: str) -> None:
        # The time of a volume's root ("."): the archive API cannot set it back, so it is not part of the tree.
        mtime = None if member.name in (".", "./") else int(member.mtime)
        self._digest.update(repr((member.name, member.type, member.mode, member.uid, member.gid, mtime,
                                  member.size, member.linkname, content_sha256)).encode("utf-8", "surrogateescape"))
        self.entries += 1
        if member.isreg():
            self.files += 1
            self.bytes += member.size

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()


class ChunkReader:
    """A file-like ``read(n)`` over an iterator of byte chunks."""

    def __init__(self, chunks: t.Iterable[bytes]):
        self._chunks = iter(chunks)
        self._chunk = b""
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        parts = []
        while size != 0:
            if self._position >= len(self._chunk):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._chunk, self._position = chunk, 0
                continue
            part = self._chunk[self._position:] if size < 0 else self._chunk[self._position:self._position + size]
            self._position += len(part)
            size -= len(part) if size > 0 else 0
            parts.append(part)
        return b"".join(parts)


class _HashingReader:
    def __init__(self, handle: t.BinaryIO):
        self._handle = handle
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.sha256.update(data)
        return data


def tar_filter(chunks: t.Iterable[bytes], exclude: t.Sequence[str] = (), strip: int = 0,
               stats: TreeStats | None = None, chunk_size: int = CHUNK_SIZE) -> t.Iterator[bytes]:
    """Re-archive a tar stream member by member, in a background thread, with bounded memory.

    ``strip`` leading name components are replaced by ``.`` (``vol/a/b`` -> ``./a/b``, as ``tar -C dir
    -cf - .`` names them); members matching ``exclude`` (see :func:`walk_tree`) are left out, with
    what is below an excluded directory; ``stats`` learns what passed.
    """
    stats = stats if stats is not None else TreeStats()

    def fill(sink: _ChunkSink) -> None:
        try:
            refill(sink)
        except tarfile.TarError as exc:  # a source that ends half-way or is not a tar
            raise BrokenTarStream("the tar stream of the source is broken: %s" % exc) from exc

    def refill(sink: _ChunkSink) -> None:
        with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as source, \
                tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT, copybufsize=chunk_size) as target:
            skipped: list[str] = []
            for member in source:
                parts = member.name.split("/")[strip:]
                relative = "/".join(p for p in parts if p not in ("", "."))
                if relative and (any(relative.startswith(s + "/") for s in skipped) or any(
                        fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(parts[-1], p) for p in exclude)):
                    skipped.append(relative)
                    continue
                member.name = "./" + relative if relative else "."
                member.pax_headers.pop("path", None)  # the old name would win over the new one
                if member.islnk():
                    member.linkname = "./" + "/".join(member.linkname.split("/")[strip:])
                    member.pax_headers.pop("linkpath", None)
                reader = _HashingReader(source.extractfile(member)) if member.isreg() else None
                target.addfile(member, reader)
                stats.add(member, reader.sha256.hexdigest() if reader else "")

    return run_in_thread(fill, chunk_size=chunk_size, name="tar-filter")


def command_stream(argv: t.Sequence[str], env: dict | None = None, cwd: str | None = None,
                   chunk_size: int = CHUNK_SIZE) -> t.Iterator[bytes]:
    """The stdout of a command (no shell); fails with the tail of its stderr if it exits non-zero.

    ``env`` is added to this process's environment (a child given one variable keeps ``PATH``).
    """
    with tempfile.TemporaryFile() as stderr:
        try:
            # pylint: disable-next=consider-using-with
            process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                                       env=dict(os.environ, **env) if env else None, cwd=cwd)
        except OSError as exc:
            raise PipelineError("cannot run %s: %s" % (argv[0], exc)) from exc
        try:
            yield from iter_reader(process.stdout, chunk_size)
            returncode = process.wait()
            if returncode != 0:
                raise PipelineError("%s exited with status %d: %s" % (argv[0], returncode, _tail(stderr)))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()


def bytes_stream(chunks: t.Iterable[bytes]) -> t.Iterator[bytes]:
    """Any iterable of bytes as a producer (generators included)."""
    for chunk in chunks:
        if chunk:
            yield bytes(chunk)


def _tail(handle: t.BinaryIO) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - STDERR_TAIL))
    return handle.read().decode("utf-8", "replace").strip() or "(no error output)"


# --------------------------------------------------------------------------------------------
# Compression
# --------------------------------------------------------------------------------------------

def check_compression(algorithm: str, level: int | None) -> int:
    """Validate an algorithm and level; return the level to use."""
    if algorithm not in COMPRESSIONS:
        raise PipelineError("compression must be one of %s, got %r" % (", ".join(COMPRESSIONS), algorithm))
    if algorithm == "zstd" and not HAS_ZSTANDARD:
        raise PipelineError("compression 'zstd' needs the zstandard Python library on the backup host: %s"
                            % ZSTANDARD_IMP_ERR)
    low, high = LEVELS[algorithm]
    if algorithm == "none":
        return 0
    level = 6 if level is None else level
    if not low <= level <= high:
        raise PipelineError("compression_level %r is out of range for %s (%d to %d)" % (level, algorithm, low, high))
    return level


def compress(chunks: t.Iterable[bytes], algorithm: str, level: int | None = None,
             threads: int | RunBudget | None = None) -> t.Iterator[bytes]:
    """``chunks`` compressed on ``threads`` threads (every core by default, or an item's share of a run's
    :class:`RunBudget`); see :mod:`_compress`."""
    level = check_compression(algorithm, level)
    if algorithm == "none":
        yield from chunks
    elif algorithm == "gzip":
        # One gzip member without name and with mtime 0: equal input gives equal output, whatever the threads.
        yield from parallel_gzip(chunks, level, threads)
    else:
        yield from zstd_compress(chunks, level, threads)


def decompress(chunks: t.Iterable[bytes], algorithm: str) -> t.Iterator[bytes]:
    """The inverse of :func:`compress`, for restores and verification."""
    if algorithm == "none":
        yield from chunks
        return
    if algorithm == "gzip":
        decompressor = zlib.decompressobj(31)
    elif algorithm == "zstd":
        check_compression("zstd", None)
        decompressor = zstandard.ZstdDecompressor().decompressobj()
    else:
        raise PipelineError("unknown compression %r" % (algorithm,))
    for chunk in chunks:
        out = decompressor.decompress(chunk)
        if out:
            yield out
    if algorithm == "gzip":
        yield decompressor.flush()
        if not decompressor.eof:
            raise PipelineError("the gzip stream is truncated")


# --------------------------------------------------------------------------------------------
# Encryption
# --------------------------------------------------------------------------------------------

def check_recipients(recipients: t.Sequence[str]) -> list[str]:
    if not recipients:
        raise PipelineError("encryption needs at least one age recipient (a public key such as age1...)")
    bad = [r for r in recipients if not isinstance(r, str) or not AGE_RECIPIENT_RE.match(r.strip())]
    if bad:
        raise PipelineError("not an age recipient (expected age1... or an ssh-ed25519/ssh-rsa public key): %s"
                            % ", ".join(repr(str(b)[:20] + "...") for b in bad))
    return [r.strip() for r in recipients]


def find_age(age_path: str | None = None) -> str:
    path = age_path or shutil.which("age")
    if not path:
        raise PipelineError("encryption needs the 'age' command on the backup host (Debian/Ubuntu package 'age')")
    return path


def _age_filter(argv: list[str], chunks: t.Iterable[bytes], chunk_size: int) -> t.Iterator[bytes]:
    """Feed ``chunks`` to an age process in a thread and yield what it writes."""
    with tempfile.TemporaryFile() as stderr:
        # pylint: disable-next=consider-using-with
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        feed_error: list[BaseException] = []

        def feed():
            iterator = iter(chunks)
            try:
                for chunk in iterator:
                    process.stdin.write(chunk)
            except BaseException as exc:  # pylint: disable=broad-exception-caught
                feed_error.append(exc)
                process.kill()
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
                try:
                    process.stdin.close()
                except OSError:
                    pass

        feeder = threading.Thread(target=feed, name="corebackup-age", daemon=True)
        feeder.start()
        try:
            yield from iter_reader(process.stdout, chunk_size)
            feeder.join()
            returncode = process.wait()
            if feed_error and not isinstance(feed_error[0], BrokenPipeError):
                raise feed_error[0]
            if returncode != 0:
                raise PipelineError("age exited with status %d: %s" % (returncode, _tail(stderr)))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            feeder.join()
            process.stdout.close()


def age_encrypt(chunks: t.Iterable[bytes], recipients: t.Sequence[str], age_path: str | None = None,
                chunk_size: int = CHUNK_SIZE) -> t.Iterator[bytes]:
    argv = [find_age(age_path)]
    for recipient in check_recipients(recipients):
        argv += ["-r", recipient]
    return _age_filter(argv, chunks, chunk_size)


def age_decrypt(chunks: t.Iterable[bytes], identity_file: str, age_path: str | None = None,
                chunk_size: int = CHUNK_SIZE) -> t.Iterator[bytes]:
    """Decrypt with the private key in ``identity_file`` (for restores; never needed to back up)."""
    return _age_filter([find_age(age_path), "-d", "-i", identity_file], chunks, chunk_size)


# --------------------------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------------------------

class ArtifactWriter:
    """Turns producers into stored, checksummed artifacts on one backend."""

    def __init__(self, backend: t.Any, compression: str = "gzip", compression_level: int | None = 6,
                 encryption: dict | None = None, age_path: str | None = None, threads: int | RunBudget | None = None):
        self.backend = backend
        self.compression = compression
        self.compression_level = check_compression(compression, compression_level)
        self.threads = threads
        self.recipients: list[str] = []
        if encryption:
            if encryption.get("type", "age") != "age":
                raise PipelineError("encryption.type must be 'age', got %r" % (encryption.get("type"),))
            self.recipients = check_recipients(encryption.get("recipients") or [])
            self.age_path = find_age(age_path)

    @classmethod
    def from_params(cls, backend: t.Any, params: dict, age_path: str | None = None,
                    threads: int | RunBudget | None = None) -> "ArtifactWriter":
        return cls(backend, params.get("compression") or "gzip", params.get("compression_level"),
                   params.get("encryption"), age_path=age_path, threads=threads)

    @property
    def encryption(self) -> dict | None:
        return {"type": "age", "recipients": list(self.recipients)} if self.recipients else None

    def extension(self, base: str) -> str:
        """``tar`` becomes ``tar.gz``, ``tar.zst`` or ``tar``, with ``.age`` when encrypted."""
        return base + COMPRESSION_SUFFIX[self.compression] + (".age" if self.recipients else "")

    def transform(self, chunks: t.Iterable[bytes]) -> t.Iterator[bytes]:
        """Compression then encryption, each in its own thread or process."""
        stream: t.Iterable[bytes] = chunks
        if self.compression != "none":
            stream = threaded(compress(stream, self.compression, self.compression_level, self.threads), name="compress")
        if self.recipients:
            stream = age_encrypt(stream, self.recipients, self.age_path)
        return iter(stream)

    def write(self, key: str, chunks: t.Iterable[bytes], metadata: dict | None = None,
              contents: t.Callable[[], dict] | None = None, requires: t.Sequence[dict] = ()) -> Artifact:
        """Store ``chunks`` under ``key``; never overwrites an existing artifact.

        ``contents`` is asked, once the stream is stored, what the producer found inside it. An artifact that
        ``requires`` other objects says how many in its stored metadata (``requires``): which ones only its
        records say, so without them it is never used again.
        """
        digest = StreamDigest()
        stream = digest.wrap(self.transform(chunks))
        stored_metadata = dict(metadata or {}, requires=str(len(requires))) if requires else metadata
        try:
            stored = self.backend.write(key, stream, metadata=stored_metadata, overwrite=False)
        finally:
            stream.close()
        try:
            if stored.size != digest.size:
                raise PipelineError("stored %s has %d bytes but %d were written" % (key, stored.size, digest.size))
            artifact = Artifact(
                key=key, size=digest.size, sha256=digest.sha256, compression=self.compression,
                encryption=self.encryption, created=iso(utc_now()), metadata=dict(metadata or {}),
                contents=contents() if contents is not None else None, requires=tuple(dict(r) for r in requires),
            )
            artifact.record_checksum(self.backend)
        except BaseException:
            # The item fails: leave nothing under its name that its run will not record (a full disk refusing
            # the checksum record, say). Only a killed run leaves an artifact without one.
            self._remove(key)
            raise
        return artifact

    def _remove(self, key: str) -> None:
        try:
            self.backend.delete_many([key])
        except Exception:  # pylint: disable=broad-exception-caught
            pass  # the error that failed the item matters more; the next run reads an unrecorded artifact again

    def same_packing(self, record: dict) -> bool:
        """Was ``record`` (an artifact's record) packed as this writer packs: same compression, same recipients?

        An artifact encrypted to other keys must not be carried into a new set after a key rotation.
        """
        recipients = sorted((record.get("encryption") or {}).get("recipients") or [])
        return record.get("compression") == self.compression and recipients == sorted(self.recipients)

    def store(self, job: str, name: str, base_ext: str, chunks: t.Iterable[bytes], metadata: dict | None = None,
              when: datetime.datetime | None = None, contents: t.Callable[[], dict] | None = None,
              requires: t.Sequence[dict] = ()) -> Artifact:
        """Store a new artifact of ``name`` in the layout (``<job>/objects/<name>_<ts>.<ext>``), once: the sets that
        hold it reference it in their run records."""
        key = ArtifactKey.build(job, name, self.extension(base_ext), when=when).key
        return self.write(key, chunks, metadata=metadata, contents=contents, requires=requires)
