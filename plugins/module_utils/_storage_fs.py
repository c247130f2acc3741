# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The filesystem backend: a folder (local disk, NFS, a mounted share) with atomic writes, private modes, hard
links for carried artifacts and flock() leases."""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import tempfile
import typing as t

from ansible_collections.corebackup.backup.plugins.module_utils._checksum import StreamDigest, iter_reader
from ansible_collections.corebackup.backup.plugins.module_utils._storage import (
    DeleteResult,
    InvalidKeyError,
    PreconditionFailed,
    StorageBackend,
    StorageError,
    StoredObject,
    check_key,
    check_prefix,
)
from ansible_collections.corebackup.backup.plugins.module_utils._layout import job_prefix
from ansible_collections.corebackup.backup.plugins.module_utils._lease import RecordLease, current_holder


# Errors of os.link() that mean "no hard links here", not "something is wrong".
_NO_LINK_ERRNOS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS, errno.EXDEV)


def _parse_mode(value: t.Any, default: int, what: str) -> int:
    if value is None:
        return default
    if isinstance(value, int):
        mode = value
    else:
        try:
            mode = int(str(value), 8)
        except ValueError:
            raise StorageError("storage.%s %r is not an octal mode such as '0750'" % (what, value)) from None
    if not 0 <= mode <= 0o7777:
        raise StorageError("storage.%s %r is out of range" % (what, value))
    return mode


class FilesystemBackend(StorageBackend):
    """Artifacts as files below ``root``; directories 0700 and files 0600 unless told otherwise.

    Object metadata, which S3 keeps with the object, is kept in a hidden ``.<name>.meta.json``
    beside the file. Hidden helper files never show up in listings.
    """

    kind = "filesystem"
    TEMP_SUFFIX = ".partial"
    META_SUFFIX = ".meta.json"
    LOCK_SUFFIX = ".lock"

    def __init__(self, root: str, directory_mode: t.Any = None, file_mode: t.Any = None, carry: str = "link"):
        if not root:
            raise StorageError("storage.path is required for the filesystem backend")
        if carry not in ("link", "copy"):
            raise StorageError("storage.carry must be 'link' or 'copy', got %r" % (carry,))
        self.root = os.path.abspath(os.path.expanduser(root))
        self.directory_mode = _parse_mode(directory_mode, 0o700, "directory_mode")
        self.file_mode = _parse_mode(file_mode, 0o600, "file_mode")
        self.carry = carry

    def lease(self, job: str) -> "FileLease":
        return FileLease(self, job)

    def check_root(self, create: bool = False, dry_run: bool = False) -> None:
        """The root must be a directory; writers create it, but only below an existing parent."""
        if os.path.isdir(self.root):
            return
        if os.path.lexists(self.root):
            raise StorageError("storage.path %s is not a directory" % self.root)
        if not create:
            raise StorageError("storage.path %s does not exist" % self.root)
        parent = os.path.dirname(self.root)
        if not os.path.isdir(parent):
            raise StorageError("storage.path %s does not exist and neither does its parent %s; create the parent "
                               "first (a mistyped path must not grow a new tree)" % (self.root, parent))
        if dry_run:
            return
        try:
            os.mkdir(self.root, self.directory_mode)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StorageError("cannot create storage.path %s: %s" % (self.root, exc)) from exc

    def describe(self) -> str:
        return "filesystem:%s" % self.root

    # -- paths ------------------------------------------------------------------------------
    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def path_for(self, key: str) -> str:
        """The absolute path of ``key``; refuses anything that resolves outside the root."""
        check_key(key)
        path = os.path.join(self.root, *key.split("/"))
        real_root = self._real_root()
        real = os.path.realpath(path)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise InvalidKeyError("storage key %r resolves to %s, outside the storage root %s" % (key, real, real_root))
        return path

    def _meta_path(self, path: str) -> str:
        return os.path.join(os.path.dirname(path), "." + os.path.basename(path) + self.META_SUFFIX)

    def _lock_path(self, path: str) -> str:
        return os.path.join(os.path.dirname(path), "." + os.path.basename(path) + self.LOCK_SUFFIX)

    def _is_helper_file(self, filename: str) -> bool:
        return filename.startswith(".") and filename.endswith((self.TEMP_SUFFIX, self.META_SUFFIX, self.LOCK_SUFFIX))

    @contextlib.contextmanager
    def lock(self, key: str) -> t.Iterator[None]:
        """flock() on a hidden ``.<name>.lock`` beside ``key``; blocks until the lock is free."""
        path = self.path_for(key)
        try:
            self._ensure_dirs(os.path.dirname(path))
            fd = os.open(self._lock_path(path), os.O_RDWR | os.O_CREAT, self.file_mode)
        except OSError as exc:
            raise StorageError("cannot lock %s: %s" % (path, exc)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_metadata(self, path: str, metadata: dict | None) -> None:
        meta_path = self._meta_path(path)
        if not metadata:
            if os.path.lexists(meta_path):
                os.unlink(meta_path)
            return
        fd, temp_path = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(meta_path) + ".",
                                         suffix=self.TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({str(k): str(v) for k, v in metadata.items()}, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_path, self.file_mode)
            os.replace(temp_path, meta_path)
        except BaseException:
            if os.path.lexists(temp_path):
                os.unlink(temp_path)
            raise

    def _read_metadata(self, path: str) -> dict:
        try:
            with open(self._meta_path(path), encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StorageError("cannot read the metadata of %s: %s" % (path, exc)) from exc
        return data if isinstance(data, dict) else {}

    def _ensure_dirs(self, directory: str) -> None:
        missing = []
        current = directory
        while not os.path.isdir(current):
            missing.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for path in reversed(missing):
            try:
                os.mkdir(path, self.directory_mode)
            except FileExistsError:
                continue
            os.chmod(path, self.directory_mode)

    # -- interface --------------------------------------------------------------------------
    def write(self, key: str, chunks: t.Iterable[bytes], metadata: dict | None = None,
              overwrite: bool = True, if_match: str | None = None) -> StoredObject:
        path = self.path_for(key)
        directory = os.path.dirname(path)
        try:
            self._ensure_dirs(directory)
            # The parent may have been a dangling symlink created meanwhile; check again.
            self.path_for(key)
            fd, temp_path = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                                             suffix=self.TEMP_SUFFIX)
        except OSError as exc:
            raise StorageError("cannot write %s: %s" % (path, exc)) from exc
        placed = False
        try:
            size = 0
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_path, self.file_mode)
            if if_match is not None:
                # Compare and replace are two steps here: writers that race must also hold lock().
                current = self.stat(key)
                if current is None or current.etag != if_match:
                    raise PreconditionFailed("refusing to replace %s: it changed since it was read" % path)
            if overwrite:
                os.replace(temp_path, path)
            else:
                # link() refuses an existing name atomically, unlike rename().
                try:
                    os.link(temp_path, path)
                    os.unlink(temp_path)
                except FileExistsError:
                    raise PreconditionFailed("refusing to overwrite %s: it already exists" % path) from None
                except OSError as exc:
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                        raise
                    # No hard links here (SMB/CIFS, some FUSE mounts): check, then rename. Writers
                    # that may race hold lock(), as manifest writers do.
                    if os.path.lexists(path):
                        raise PreconditionFailed("refusing to overwrite %s: it already exists" % path) from None
                    os.replace(temp_path, path)
            placed = True
            self._write_metadata(path, metadata)
            _fsync_dir(directory)
        except BaseException as exc:
            try:
                if placed:
                    # The data is in place but its metadata is not: do not leave a half-stored object.
                    os.unlink(path)
                os.unlink(temp_path)
            except FileNotFoundError:
                pass
            except OSError:
                pass  # a folder made read-only meanwhile: the error that matters is the write's; leftovers are cleaned later
            if isinstance(exc, OSError):
                raise StorageError("cannot write %s: %s" % (path, exc)) from exc
            raise
        return StoredObject(key=key, size=size, modified=_mtime(path), metadata=dict(metadata or {}))

    def open(self, key: str) -> t.BinaryIO:
        path = self.path_for(key)
        try:
            return open(path, "rb")  # pylint: disable=consider-using-with
        except FileNotFoundError:
            raise StorageError("no stored object %s (%s)" % (key, path)) from None
        except OSError as exc:
            raise StorageError("cannot read %s: %s" % (path, exc)) from exc

    def stat(self, key: str) -> StoredObject | None:
        path = self.path_for(key)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError("cannot stat %s: %s" % (path, exc)) from exc
        if not os.path.isfile(path):
            return None
        return StoredObject(key=key, size=info.st_size, metadata=self._read_metadata(path),
                            modified=datetime.datetime.fromtimestamp(info.st_mtime, datetime.timezone.utc),
                            etag="%x-%x-%x" % (info.st_ino, info.st_mtime_ns, info.st_size),
                            data_id=(info.st_dev, info.st_ino))

    def list(self, prefix: str = "") -> t.Iterator[StoredObject]:
        check_prefix(prefix)
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self.path_for(base_dir) if base_dir else self.root
        if not os.path.isdir(top):
            return
        real_root = self._real_root()
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            # Never descend through a symlink that leaves the root.
            dirnames[:] = [d for d in dirnames
                           if os.path.realpath(os.path.join(dirpath, d)).startswith(real_root + os.sep)]
            rel_dir = os.path.relpath(dirpath, self.root)
            for filename in sorted(filenames):
                if self._is_helper_file(filename):
                    continue
                key = filename if rel_dir == "." else "/".join(rel_dir.split(os.sep) + [filename])
                if not key.startswith(prefix):
                    continue
                obj = self.stat(key)
                if obj is not None:
                    yield obj

    def delete_many(self, keys: t.Iterable[str]) -> DeleteResult:
        result = DeleteResult()
        directories = set()
        for key in keys:
            try:
                path = self.path_for(key)
                for helper in (self._meta_path(path), self._lock_path(path)):
                    if os.path.lexists(helper):
                        os.unlink(helper)
                os.unlink(path)
            except FileNotFoundError:
                result.deleted.append(key)
                continue
            except (OSError, StorageError) as exc:
                result.errors.append({"key": key, "error": str(exc)})
                continue
            result.deleted.append(key)
            directories.add(os.path.dirname(path))
        # Remove folders that the deletion emptied, deepest first, but never the root.
        real_root = self._real_root()
        for directory in sorted(directories, key=len, reverse=True):
            while os.path.realpath(directory).startswith(real_root + os.sep):
                try:
                    os.rmdir(directory)
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                        break
                    raise
                directory = os.path.dirname(directory)
        return result

    def copy(self, source_key: str, key: str) -> tuple[StoredObject, str | None]:
        """A hard link of the data and of its metadata (no new bytes); a copy where links are not
        possible or ``carry: copy`` asks for independent copies."""
        source, path = self.path_for(source_key), self.path_for(key)
        if not os.path.isfile(source):
            raise StorageError("no stored object %s (%s)" % (source_key, source))
        if os.path.lexists(path):
            raise PreconditionFailed("refusing to overwrite %s: it already exists" % path)
        if self.carry == "link":
            try:
                self._ensure_dirs(os.path.dirname(path))
                self.path_for(key)
                self._link(source, path)
                _fsync_dir(os.path.dirname(path))
                return self.stat(key), None
            except OSError as exc:
                if exc.errno not in _NO_LINK_ERRNOS:
                    raise StorageError("cannot link %s to %s: %s" % (source, path, exc)) from exc
        digest = StreamDigest()
        try:
            with open(source, "rb") as handle:
                stored = self.write(key, digest.wrap(iter_reader(handle)), metadata=self._read_metadata(source),
                                    overwrite=False)
        except OSError as exc:
            raise StorageError("cannot copy %s to %s: %s" % (source, path, exc)) from exc
        return stored, digest.sha256

    def _link(self, source: str, path: str) -> None:
        """Metadata first: until the data's link exists, no listing shows the new key."""
        source_meta, meta = self._meta_path(source), self._meta_path(path)
        if os.path.lexists(meta):
            os.unlink(meta)  # left by a writer that stopped before the data's link
        if os.path.exists(source_meta):
            os.link(source_meta, meta)
        try:
            os.link(source, path)
        except FileExistsError:
            raise PreconditionFailed("refusing to overwrite %s: it already exists" % path) from None
        except BaseException:
            if os.path.lexists(meta):
                os.unlink(meta)
            raise

    def clean_leftovers(self, prefix: str, older_than: datetime.datetime) -> list[str]:
        """Temporary files, and metadata whose data is gone, that writers stopped before ``older_than`` left."""
        check_prefix(prefix)
        top = self.path_for(prefix.rstrip("/")) if prefix.rstrip("/") else self.root
        cleaned: list[str] = []
        limit = older_than.timestamp()
        for dirpath, _dirnames, filenames in os.walk(top):
            for filename in filenames:
                path = os.path.join(dirpath, filename)
                if not filename.startswith("."):
                    continue
                orphan = filename.endswith(self.META_SUFFIX) and not os.path.lexists(
                    os.path.join(dirpath, filename[1:-len(self.META_SUFFIX)]))
                if not (filename.endswith(self.TEMP_SUFFIX) or orphan):
                    continue
                try:
                    if os.lstat(path).st_mtime >= limit:
                        continue
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise StorageError("cannot remove the leftover %s: %s" % (path, exc)) from exc
                cleaned.append(os.path.relpath(path, self.root).replace(os.sep, "/"))
        return sorted(cleaned)


def _mtime(path: str) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(os.stat(path).st_mtime, datetime.timezone.utc)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileLease(RecordLease):
    """The lease of a job on a filesystem store: create-only records in ``<job>/leases/`` (see ``_lease.py``),
    each placed whole by a hard link that refuses an existing name. A killed run's record is taken over at once
    on the same host (its process is gone), after its expiry elsewhere.

    It also holds the ``flock()`` on ``<job>/.lease.lock`` that the release before records took (and waits while
    a run of that release holds it): an older host sharing the store waits for this run and this run for it."""

    _fd: int | None = None

    def previous_release_holder(self) -> dict | None:
        if self._fd is None:
            path = self.backend._lock_path(self.backend.path_for(job_prefix(self.job) + "lease"))
            try:
                self.backend._ensure_dirs(os.path.dirname(path))
                fd = os.open(path, os.O_RDWR | os.O_CREAT, self.backend.file_mode)
            except OSError as exc:
                raise StorageError("cannot lock %s: %s" % (path, exc)) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:  # the older release wrote who holds it into the file; a run of this one, a lease record
                    holder = json.loads(os.pread(fd, 4096, 0) or b"null")
                except ValueError:
                    holder = None
                os.close(fd)
                return holder if isinstance(holder, dict) else current_holder(self.backend, self.job) or {}
            self._fd = fd
        return None

    def _unlock(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def acquire(self, timeout: float) -> None:
        try:
            super().acquire(timeout)
        except BaseException:
            self._unlock()
            raise

    def release(self) -> None:
        try:
            super().release()
        finally:
            self._unlock()
