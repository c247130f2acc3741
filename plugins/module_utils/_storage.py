# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""Storage backends behind one interface.

A backend stores byte streams under keys (``job/2024-05-01/name_20240501T020000Z.tar.gz``) below
its own root (a directory) or prefix (an S3 bucket prefix). Every backend can

- ``write(key, chunks)``: store an iterable of bytes under ``key``; nothing appears under the final
  name unless the whole stream was stored and checked; a failing stream leaves nothing behind;
- ``open(key)``: a binary reader;
- ``stat(key)``: a :class:`StoredObject` or ``None``;
- ``list(prefix)``: every object whose key starts with ``prefix``, page by page;
- ``delete_many(keys)``: delete in batches, reporting what could not be deleted;
- ``copy(source, key)``: the same bytes under a second key without sending them again (a hard link
  or a server-side copy), for carrying an unchanged artifact into a newer backup set;
- ``clean_leftovers(prefix, older_than)``: remove what killed writers left (temporary files,
  incomplete multipart uploads);
- ``check_root(create)``: refuse a storage root that is missing or not a directory;
- ``lease(job)``: the lease that lets one run of a job write at a time, made of create-only records (see ``_lease.py``).

The backends live in files of their own: ``_storage_fs.py`` (a folder) and ``_storage_s3.py`` (S3 and
S3-compatible services); :func:`backend_from_params` builds the one the ``storage`` option names.
"""

from __future__ import annotations

import contextlib
import datetime
import typing as t
from dataclasses import dataclass, field

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._retry import (
    RetryPolicy,
)


# Memory of an S3 part being filled or sent (the rest of a larger part is in a temporary file); the run's budget
# reads it.
PART_MEMORY = 16 * 1024 * 1024


class StorageError(BackupError):
    """A storage operation failed; the message names the key and the cause."""


class InvalidKeyError(StorageError):
    """A key is malformed or would resolve outside the storage root."""


class PreconditionFailed(StorageError):
    """A conditional write was refused: the object exists already, or changed since it was read."""


class UploadVerificationError(StorageError):
    """The stored object does not match what was sent; it has been removed."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime.datetime | None = None
    metadata: dict = field(default_factory=dict)
    etag: str | None = None
    # Where objects share their bytes (hard links on a filesystem), equal for keys that do.
    data_id: tuple | None = None
    # S3 Object Lock of this version (``storage.object_lock``): its mode and the time it is retained until.
    lock_mode: str | None = None
    locked_until: datetime.datetime | None = None


@dataclass
class DeleteResult:
    deleted: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # [{"key": ..., "error": ...}]
    requests: int = 0
    # Keys not deleted because a version of theirs is locked (S3 Object Lock): [{"key": ..., "locked_until": ...}]
    locked: list = field(default_factory=list)


def check_key(key: str) -> str:
    """Refuse keys that are empty, absolute, or climb out with ``..``; return the normalised key."""
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("storage key must be a non-empty string, got %r" % (key,))
    if "\x00" in key or "\\" in key:
        raise InvalidKeyError("storage key %r contains a NUL byte or a backslash" % (key,))
    if key.startswith("/"):
        raise InvalidKeyError("storage key %r is absolute; keys are relative to the storage root" % (key,))
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts[:-1]) or parts[-1] in (".", ".."):
        raise InvalidKeyError("storage key %r has an empty, '.' or '..' path component" % (key,))
    return key


def check_prefix(prefix: str) -> str:
    if prefix in ("", None):
        return ""
    check_key(prefix.rstrip("/") or "x")
    return prefix


class StorageBackend:
    """The interface every backend implements."""

    kind = "abstract"

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def write(self, key: str, chunks: t.Iterable[bytes], metadata: dict | None = None,
              overwrite: bool = True, if_match: str | None = None) -> StoredObject:  # pragma: no cover - interface
        """Store ``chunks`` under ``key``, all or nothing.

        ``overwrite=False`` refuses an existing key and ``if_match`` a key whose etag (see stat())
        is not that one, both with PreconditionFailed.
        """
        raise NotImplementedError

    def open(self, key: str) -> t.BinaryIO:  # pragma: no cover - interface
        raise NotImplementedError

    def stat(self, key: str) -> StoredObject | None:  # pragma: no cover - interface
        raise NotImplementedError

    def list(self, prefix: str = "") -> t.Iterator[StoredObject]:  # pragma: no cover - interface
        raise NotImplementedError

    def delete_many(self, keys: t.Iterable[str]) -> DeleteResult:  # pragma: no cover - interface
        raise NotImplementedError

    def copy(self, source_key: str, key: str) -> tuple[StoredObject, str | None]:  # pragma: no cover - interface
        """Store the object at ``source_key`` under ``key`` too (never overwriting), with its metadata.

        Returns what was stored, and the sha256 of the bytes when they were read on the way
        (``None`` when the backend copied without reading them: a hard link, a server-side copy).
        """
        raise NotImplementedError

    def clean_leftovers(self, prefix: str, older_than: datetime.datetime) -> list[str]:  # pragma: no cover
        """Remove what writers killed before ``older_than`` left below ``prefix``; what was removed."""
        raise NotImplementedError

    def check_root(self, create: bool = False, dry_run: bool = False) -> None:
        """Refuse a root that cannot hold backups; ``create`` (writers) may create it (not in a ``dry_run``)."""

    def deletes_hide(self) -> str | None:
        """Why a delete here only hides the bytes (a versioned S3 bucket keeps them as noncurrent versions), or
        None where a delete frees them."""
        return None

    def lock(self, key: str) -> t.ContextManager:
        """Exclusive lock on ``key`` among writers on this backend, where the backend can lock.

        S3 has no locks; callers that need safe concurrent updates there write one object per
        writer and merge on read.
        """
        check_key(key)
        return contextlib.nullcontext()

    def lease(self, job: str) -> t.Any:  # pragma: no cover - interface
        """The lease of ``job`` on this store (``acquire(timeout)``, ``release()``, ``lost``): one run writes at a time."""
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as reader:
            return reader.read()


def backend_from_params(storage: dict, retry: RetryPolicy | None = None) -> StorageBackend:
    """Build the backend that the shared ``storage`` option describes."""
    kind = storage.get("type")
    # The backends import this module (its interface and errors): imported here, when one is built.
    from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend  # pylint: disable=import-outside-toplevel
    from ansible_collections.corebackup.backup.plugins.module_utils._storage_s3 import S3Backend  # pylint: disable=import-outside-toplevel
    if kind == "filesystem":
        if storage.get("object_lock"):
            raise StorageError("storage.object_lock is S3 only: a filesystem store cannot keep what it wrote from "
                               "whoever can write it (see docs/operations.md, the threat model)")
        return FilesystemBackend(storage.get("path"), storage.get("directory_mode"), storage.get("file_mode"),
                                 carry=storage.get("carry") or "link")
    if kind == "s3":
        return S3Backend(
            bucket=storage.get("bucket"), prefix=storage.get("prefix") or "", region=storage.get("region"),
            endpoint_url=storage.get("endpoint_url"), access_key=storage.get("access_key"),
            secret_key=storage.get("secret_key"), session_token=storage.get("session_token"),
            profile=storage.get("profile"), validate_certs=storage.get("validate_certs", True),
            storage_class=storage.get("storage_class"), sse=storage.get("sse"),
            sse_kms_key_id=storage.get("sse_kms_key_id"), metadata=storage.get("metadata"), retry=retry,
            upload_concurrency=storage.get("upload_concurrency") or 4, object_lock=storage.get("object_lock"),
        )
    raise StorageError("storage.type must be 'filesystem' or 's3', got %r" % (kind,))
