# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The S3 backend: S3 and S3-compatible services, with verified multipart uploads sent concurrently from bounded
part buffers, server-side copies for carried artifacts and leases held by conditional writes."""

from __future__ import annotations

import base64
import concurrent.futures
import datetime
import functools
import hashlib
import io
import mmap
import re
import tempfile
import threading
import typing as t

from ansible_collections.corebackup.backup.plugins.module_utils._storage import (
    PART_MEMORY,
    DeleteResult,
    PreconditionFailed,
    StorageBackend,
    StorageError,
    StoredObject,
    UploadVerificationError,
    check_key,
    check_prefix,
)
from ansible_collections.corebackup.backup.plugins.module_utils._lease import RecordLease
from ansible_collections.corebackup.backup.plugins.module_utils._retry import (
    RetryPolicy,
    is_transient_aws_error,
)

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    HAS_BOTO3 = True
    BOTO3_IMP_ERR = None
except ImportError as _imp_exc:  # pragma: no cover - depends on the host
    HAS_BOTO3 = False
    BOTO3_IMP_ERR = _imp_exc

MiB = 1024 * 1024
GiB = 1024 * MiB
S3_MIN_PART_SIZE = 5 * MiB
S3_MAX_PART_SIZE = 5 * GiB
S3_MAX_PARTS = 10000
S3_MAX_OBJECT_SIZE = 5 * 1024 * GiB
S3_DELETE_BATCH = 1000
S3_MAX_COPY_SIZE = 5 * GiB  # CopyObject's limit; larger objects are copied part by part
S3_COPY_PART_SIZE = 512 * MiB
_BOTOCORE_RETRIES_RE = re.compile(r" \(reached max retries: \d+\)")
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")


class ObjectLock:
    """``storage.object_lock``: every object a run writes is retained (S3 Object Lock) in ``mode`` for ``days`` from
    the real time of its writing (never a test's or a run's clock), on a bucket with Object Lock and versioning."""

    def __init__(self, params: t.Mapping[str, t.Any]):
        self.mode = str(params.get("mode") or "").upper()
        if self.mode not in LOCK_MODES:
            raise StorageError("storage.object_lock.mode must be GOVERNANCE or COMPLIANCE, got %r" % (params.get("mode"),))
        days = params.get("days")
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise StorageError("storage.object_lock.days must be a whole number of days, 1 or more (how long every "
                               "object written stays locked: the daily horizon of the job's retention), got %r" % (days,))
        self.days = days

    def retain_until(self) -> datetime.datetime:
        """Now (real time), plus the days, to the next whole second."""
        now = datetime.datetime.now(datetime.timezone.utc)
        return (now + datetime.timedelta(days=self.days, seconds=1)).replace(microsecond=0)


def s3_part_size(part_number: int, base: int = 8 * MiB) -> int:
    """Size of multipart part ``part_number`` (1-based) for a stream of unknown length.

    Parts start at ``base`` and double every 1000 parts, so the 10,000 parts S3 allows hold
    ``base * 1000 * 1023`` bytes (8 TiB with the default), more than S3's 5 TB object limit.
    """
    return min(S3_MAX_PART_SIZE, max(S3_MIN_PART_SIZE, base) * (2 ** ((part_number - 1) // 1000)))


def _md5(data: bytes) -> "hashlib._Hash":
    return hashlib.md5(data, usedforsecurity=False)


class _MappedReader(io.RawIOBase):
    """The first ``size`` bytes of an anonymous mapping, as a seekable file for the HTTP client."""

    def __init__(self, mapping: mmap.mmap, size: int):
        super().__init__()
        self._mapping, self._size, self._pos = mapping, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        count = max(0, min(len(buffer), self._size - self._pos))
        buffer[:count] = self._mapping[self._pos:self._pos + count]
        self._pos += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


class _PartBuffer:
    """Collects one part in an anonymous mapping of ``memory_limit`` bytes, given back to the system when closed
    (the allocator would keep freed parts); past that, in a temporary file, to keep memory flat."""

    def __init__(self, memory_limit: int):
        self._mapping: mmap.mmap | None = mmap.mmap(-1, memory_limit)
        self._spool: t.BinaryIO | None = None
        self._md5 = _md5(b"")
        self.size = 0

    def add(self, data: t.Any) -> None:
        if self._spool is None and self._mapping is not None and self.size + len(data) > len(self._mapping):
            self._spool = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
            self._spool.write(self._mapping[:self.size])
            self._mapping.close()
            self._mapping = None
        if self._spool is not None:
            self._spool.write(data)
        else:
            self._mapping[self.size:self.size + len(data)] = data
        self._md5.update(data)
        self.size += len(data)

    @property
    def md5_digest(self) -> bytes:
        return self._md5.digest()

    def body(self) -> t.BinaryIO:
        if self._spool is not None:
            self._spool.seek(0)
            return self._spool
        return io.BufferedReader(_MappedReader(self._mapping, self.size))  # type: ignore[arg-type]

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
        if self._mapping is not None:
            self._mapping.close()
            self._mapping = None


class _PartUploads:
    """Parts of one multipart upload sent by up to ``concurrency`` threads, in whatever order they finish.

    Memory: at most ``concurrency`` parts at once, sent or being filled, each at most ``PART_MEMORY`` in memory
    (a larger part spills to a temporary file).
    """

    def __init__(self, backend: "S3Backend", object_key: str, concurrency: int):
        self.backend, self.object_key = backend, object_key
        self.concurrency = max(1, concurrency)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: dict = {}  # future -> its part's buffer
        self._parts: list[dict] = []

    def _send(self, upload_id: str, number: int, buffer: "_PartBuffer") -> dict:
        try:
            return self.backend._upload_part(self.object_key, upload_id, number, buffer)  # pylint: disable=protected-access
        finally:
            buffer.close()

    def submit(self, upload_id: str, number: int, buffer: "_PartBuffer") -> None:
        if self.concurrency == 1:
            self._parts.append(self._send(upload_id, number, buffer))
            return
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="s3-part")
        self._pending[self._pool.submit(self._send, upload_id, number, buffer)] = buffer
        # At most ``concurrency`` parts held at once: while the next one fills, one fewer is in flight.
        done = [future for future in self._pending if future.done()]
        if len(self._pending) >= self.concurrency and not done:
            done = concurrent.futures.wait(self._pending, return_when=concurrent.futures.FIRST_COMPLETED)[0]
        for future in done:
            del self._pending[future]
            self._parts.append(future.result())  # the first failure stops the upload

    def finish(self) -> list[dict]:
        for future in list(self._pending):
            self._parts.append(future.result())
            del self._pending[future]
        self.cancel()
        return sorted(self._parts, key=lambda part: part["PartNumber"])

    def cancel(self) -> None:
        """Stop: parts not yet sent are not sent, parts being sent are waited for (before the upload is aborted)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for buffer in self._pending.values():
            buffer.close()
        self._pending.clear()


class S3Backend(StorageBackend):
    """Artifacts as objects below ``prefix`` in ``bucket`` of AWS S3 or an S3-compatible service."""

    kind = "s3"

    def __init__(self, bucket: str, prefix: str = "", region: str | None = None, endpoint_url: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, session_token: str | None = None,
                 profile: str | None = None, validate_certs: bool = True, storage_class: str | None = None,
                 sse: str | None = None, sse_kms_key_id: str | None = None, metadata: dict | None = None,
                 retry: RetryPolicy | None = None, part_size: int = 8 * MiB, page_size: int = 1000,
                 client: t.Any = None, max_copy_size: int = S3_MAX_COPY_SIZE, copy_part_size: int = S3_COPY_PART_SIZE,
                 upload_concurrency: int = 4, object_lock: t.Mapping[str, t.Any] | None = None):
        if not bucket:
            raise StorageError("storage.bucket is required for the s3 backend")
        if not HAS_BOTO3 and client is None:
            raise StorageError("the s3 backend needs the boto3 Python library: %s" % BOTO3_IMP_ERR)
        if sse_kms_key_id and sse != "aws:kms":
            raise StorageError("storage.sse_kms_key_id needs storage.sse set to 'aws:kms'")
        if part_size < S3_MIN_PART_SIZE:
            raise StorageError("the S3 part size must be at least 5 MiB")
        if upload_concurrency < 1:
            raise StorageError("storage.upload_concurrency must be at least 1, got %d" % upload_concurrency)
        self.upload_concurrency = upload_concurrency
        self.bucket = bucket
        self.prefix = check_prefix(prefix or "")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        self.storage_class = storage_class
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        self.metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
        self.retry = retry or RetryPolicy()
        self.part_size = part_size
        self.page_size = page_size
        self.max_copy_size = max_copy_size
        self.copy_part_size = copy_part_size
        self.conditional_writes = True  # until the endpoint says it does not implement them
        self.object_lock = ObjectLock(object_lock) if object_lock else None
        self._bucket_refusal: str | None = None  # why the bucket cannot hold locked objects ("" once it can)
        self._versioning: str | None = None  # the bucket's versioning status, once asked ("" when never enabled)
        self.requests: dict[str, int] = {}
        self._requests_lock = threading.Lock()
        if client is None:
            session = boto3.session.Session(
                aws_access_key_id=access_key or None, aws_secret_access_key=secret_key or None,
                aws_session_token=session_token or None, profile_name=profile or None, region_name=region or None,
            )
            config = botocore.config.Config(
                # Our own RetryPolicy retries; botocore's would multiply the attempts. (Its
                # ``max_attempts`` counts retries, not sends: 1 there still sends twice.)
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=max(10, 2 * upload_concurrency),
                s3={"addressing_style": "path" if endpoint_url else "auto"},
                signature_version="s3v4",
            )
            client = session.client("s3", endpoint_url=endpoint_url or None, verify=validate_certs, config=config)
        self.client = client
        self.client.meta.events.register("before-call.s3", self._count_request)

    def _count_request(self, model=None, **_kwargs):
        name = getattr(model, "name", "unknown")
        with self._requests_lock:  # parts are sent from several threads
            self.requests[name] = self.requests.get(name, 0) + 1

    def lease(self, job: str) -> "ObjectLease":
        return ObjectLease(self, job)

    def describe(self) -> str:
        return "s3://%s/%s" % (self.bucket, self.prefix)

    def _object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, method: str, **kwargs: t.Any) -> t.Any:
        return self._retried(getattr(self.client, method), **kwargs)

    def _retried(self, func: t.Callable[..., t.Any], **kwargs: t.Any) -> t.Any:
        """``func`` under the retry policy; the error it finally raises says how many tries were made."""
        tries = [1]

        def count(_exc: BaseException, retry_number: int, _wait: float) -> None:
            tries[0] = retry_number + 1

        try:
            return self.retry.call(func, is_transient=is_transient_aws_error, on_retry=count, **kwargs)
        except Exception as exc:
            if tries[0] > 1:
                try:
                    exc.corebackup_attempts = tries[0]  # type: ignore[attr-defined]
                except AttributeError:
                    pass
            raise

    def _error(self, action: str, key: str, exc: BaseException) -> StorageError:
        # botocore's own retries are off (our policy retries), so its "(reached max retries: 0)" would mislead.
        text = _BOTOCORE_RETRIES_RE.sub("", str(exc))
        attempts = getattr(exc, "corebackup_attempts", 1)
        if attempts > 1:
            text += " (gave up after %d attempts)" % attempts
        return StorageError("cannot %s s3://%s/%s: %s" % (action, self.bucket, self.prefix + key, text))

    def _put_extra(self, metadata: dict | None) -> dict:
        extra: dict[str, t.Any] = {}
        merged = dict(self.metadata)
        merged.update({str(k): str(v) for k, v in (metadata or {}).items()})
        if merged:
            extra["Metadata"] = merged
        if self.storage_class:
            extra["StorageClass"] = self.storage_class
        if self.sse:
            extra["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.object_lock:
            self.check_lock_bucket()
            extra["ObjectLockMode"] = self.object_lock.mode
            extra["ObjectLockRetainUntilDate"] = self.object_lock.retain_until()
        return extra

    def check_lock_bucket(self) -> None:
        """With ``object_lock``: refuse a bucket that cannot hold locked objects (no Object Lock, versioning not
        enabled), asked once per backend (one run), with the reason."""
        if self._bucket_refusal is None:
            self._bucket_refusal = self._lock_bucket_refusal()
        if self._bucket_refusal:
            raise StorageError(self._bucket_refusal)

    def _lock_bucket_refusal(self) -> str:
        try:
            configuration = self._call("get_object_lock_configuration", Bucket=self.bucket)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            code = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
            if code != "ObjectLockConfigurationNotFoundError":
                return "storage.object_lock: cannot read the Object Lock configuration of bucket %s: %s" % (
                    self.bucket, _BOTOCORE_RETRIES_RE.sub("", str(exc)))
            configuration = {}
        if (configuration.get("ObjectLockConfiguration") or {}).get("ObjectLockEnabled") != "Enabled":
            return ("storage.object_lock: bucket %s has no Object Lock: create a bucket with Object Lock enabled (it "
                    "cannot be turned on for objects already written) and store the backups there" % self.bucket)
        try:
            status = self._bucket_versioning()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            return "storage.object_lock: cannot read the versioning of bucket %s: %s" % (
                self.bucket, _BOTOCORE_RETRIES_RE.sub("", str(exc)))
        if status != "Enabled":
            return ("storage.object_lock: bucket %s has versioning %s: Object Lock needs it Enabled (a suspended "
                    "versioning lets a new write replace a locked object's bytes)" % (
                        self.bucket, (status or "never enabled").lower()))
        return ""

    def _conditions(self, overwrite: bool, if_match: str | None) -> dict:
        """Conditional-write headers: S3 itself refuses to replace what it must not (no HEAD-then-PUT race)."""
        conditions = {}
        if self.conditional_writes:
            if not overwrite:
                conditions["IfNoneMatch"] = "*"
            if if_match is not None:
                conditions["IfMatch"] = '"%s"' % if_match
        return conditions

    def _conditional(self, call: t.Callable[..., t.Any], conditions: dict, **kwargs: t.Any) -> t.Any:
        """``call`` with the conditions; again without them if the endpoint does not implement them."""
        try:
            return call(**dict(kwargs, **conditions))
        except Exception as exc:
            if conditions and type(exc).__name__ == "ParamValidationError":
                # botocore older than the If-Match/If-None-Match parameters (2024)
                self.conditional_writes = False
                return call(**kwargs)
            code = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise PreconditionFailed("refusing to write s3://%s/%s: %s" % (
                    self.bucket, kwargs["Key"], "it already exists" if "IfNoneMatch" in conditions
                    else "it changed since it was read")) from None
            if code != "NotImplemented" or not conditions:
                raise
        self.conditional_writes = False
        return call(**kwargs)

    def write(self, key: str, chunks: t.Iterable[bytes], metadata: dict | None = None,
              overwrite: bool = True, if_match: str | None = None) -> StoredObject:
        object_key = self._object_key(key)
        existing = self.stat(key) if (not overwrite or if_match is not None) else None
        # Checked before the upload so that a refused artifact is not uploaded in vain; the write
        # itself is conditional too, where the endpoint supports it.
        if not overwrite and existing is not None:
            raise PreconditionFailed("refusing to overwrite s3://%s/%s: it already exists" % (self.bucket, object_key))
        if if_match is not None and (existing is None or existing.etag != if_match):
            raise PreconditionFailed("refusing to replace s3://%s/%s: it changed since it was read" % (
                self.bucket, object_key))
        conditions = self._conditions(overwrite, if_match)
        extra = self._put_extra(metadata)
        upload_id = None
        completed = False
        parts: list[dict] = []
        part_digests: list[bytes] = []
        total = 0
        buffer = _PartBuffer(memory_limit=PART_MEMORY)
        uploads = _PartUploads(self, object_key, self.upload_concurrency)
        try:
            part_number = 1
            target = s3_part_size(part_number, self.part_size)
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    take = min(len(view), target - buffer.size)
                    buffer.add(view[:take])
                    view = view[take:]
                    if buffer.size < target:
                        continue
                    if upload_id is None:
                        upload_id = self._call("create_multipart_upload", Bucket=self.bucket, Key=object_key,
                                               **extra)["UploadId"]
                    if part_number > S3_MAX_PARTS:
                        raise StorageError("stream exceeds S3's limit of %d parts" % S3_MAX_PARTS)
                    part_digests.append(buffer.md5_digest)
                    total += buffer.size
                    uploads.submit(upload_id, part_number, buffer)  # closes it once sent
                    buffer = _PartBuffer(memory_limit=PART_MEMORY)
                    part_number += 1
                    target = s3_part_size(part_number, self.part_size)
            if upload_id is None:
                # The whole stream fits in one part: a single PUT.
                total = buffer.size
                body = buffer.body()
                expected_etag = buffer.md5_digest.hex()
                try:
                    self._conditional(functools.partial(self._call_with_body, "put_object", body), conditions,
                                      Bucket=self.bucket, Key=object_key, ContentLength=buffer.size,
                                      ContentMD5=base64.b64encode(buffer.md5_digest).decode("ascii"), **extra)
                except PreconditionFailed:
                    if not self._landed(key, total, expected_etag):
                        raise
            else:
                if buffer.size or not part_digests:
                    part_digests.append(buffer.md5_digest)
                    total += buffer.size
                    uploads.submit(upload_id, part_number, buffer)
                    buffer = _PartBuffer(memory_limit=PART_MEMORY)
                parts = uploads.finish()
                expected_etag = "%s-%d" % (_md5(b"".join(part_digests)).hexdigest(), len(part_digests))
                try:
                    completion = self._conditional(functools.partial(self._call, "complete_multipart_upload"),
                                                   conditions, Bucket=self.bucket, Key=object_key, UploadId=upload_id,
                                                   MultipartUpload={"Parts": parts})
                except PreconditionFailed:
                    if not self._landed(key, total, expected_etag):
                        raise
                    completion = None
                if completion is not None:
                    self._lock_completed(object_key, completion.get("VersionId"), extra)
            completed = True
            stored = self.stat(key)
            self._verify_upload(key, stored, total, expected_etag)
            self._verify_lock(key, stored, extra)
            return stored
        except BaseException as exc:
            uploads.cancel()
            if upload_id is not None and not completed:
                self._abort(object_key, upload_id)
            elif isinstance(exc, UploadVerificationError):
                self.delete_many([key])
            if isinstance(exc, StorageError):
                raise
            if HAS_BOTO3 and isinstance(exc, (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)):
                raise self._error("write", key, exc) from exc
            raise
        finally:
            buffer.close()

    def _lock_completed(self, object_key: str, version_id: str | None, extra: dict) -> None:
        """Lock an object a multipart upload completed, explicitly: some servers (moto) drop the lock the upload
        was created with. Only ever the same or a later date than it asked for: never a shortening."""
        if "ObjectLockMode" not in extra:
            return
        kwargs = {"VersionId": version_id} if version_id else {}
        self._call("put_object_retention", Bucket=self.bucket, Key=object_key, **kwargs,
                   Retention={"Mode": extra["ObjectLockMode"], "RetainUntilDate": extra["ObjectLockRetainUntilDate"]})

    def _verify_lock(self, key: str, stored: StoredObject | None, extra: dict) -> None:
        """With ``object_lock``: the stored object is locked in the mode and until (at least) the date it was
        written with; else StorageError (the object is left as it is: it holds the right bytes)."""
        if "ObjectLockMode" not in extra or stored is None:
            return
        until = extra["ObjectLockRetainUntilDate"]
        if stored.lock_mode != extra["ObjectLockMode"] or stored.locked_until is None or stored.locked_until < until:
            raise StorageError("s3://%s/%s was stored but not locked as asked (%s until %s): the server says %s "
                               "until %s" % (self.bucket, self.prefix + key, extra["ObjectLockMode"],
                                             until.strftime("%Y-%m-%dT%H:%M:%SZ"), stored.lock_mode or "no lock",
                                             stored.locked_until or "-"))

    def _landed(self, key: str, size: int, expected_etag: str) -> bool:
        """After a refused conditional write: is the object there exactly what this write sent?

        A try whose answer was lost (a 5xx or a dropped connection after S3 committed) is retried, and
        the retry is refused because the first try succeeded.
        """
        stored = self.stat(key)
        return bool(stored and stored.size == size and self.sse != "aws:kms" and stored.etag == expected_etag)

    def _call_with_body(self, method: str, body: t.BinaryIO, **kwargs: t.Any) -> t.Any:
        def attempt():
            body.seek(0)
            return getattr(self.client, method)(Body=body, **kwargs)
        return self._retried(attempt)

    def _upload_part(self, object_key: str, upload_id: str, part_number: int, buffer: _PartBuffer) -> dict:
        response = self._call_with_body(
            "upload_part", buffer.body(), Bucket=self.bucket, Key=object_key, UploadId=upload_id,
            PartNumber=part_number, ContentLength=buffer.size,
            ContentMD5=base64.b64encode(buffer.md5_digest).decode("ascii"),
        )
        return {"PartNumber": part_number, "ETag": response["ETag"]}

    def _abort(self, object_key: str, upload_id: str) -> None:
        try:
            self._call("abort_multipart_upload", Bucket=self.bucket, Key=object_key, UploadId=upload_id)
        except Exception:  # pylint: disable=broad-exception-caught
            # The original error matters more; a bucket lifecycle rule cleans up what is left.
            pass

    def _verify_upload(self, key: str, stored: StoredObject | None, size: int, expected_etag: str) -> None:
        if stored is None:
            raise UploadVerificationError("upload verification failed for %s: the object is missing after upload" % key)
        if stored.size != size:
            raise UploadVerificationError("upload verification failed for %s: stored %d bytes, sent %d" % (key, stored.size, size))
        # With SSE-KMS the ETag is not an MD5 of the content; Content-MD5 on every request still
        # made the service check each part.
        if self.sse != "aws:kms" and stored.etag and stored.etag != expected_etag:
            raise UploadVerificationError(
                "upload verification failed for %s: ETag %s, expected %s" % (key, stored.etag, expected_etag))

    def copy(self, source_key: str, key: str) -> tuple[StoredObject, str | None]:
        """A server-side copy (CopyObject, or UploadPartCopy above 5 GiB): no byte is uploaded.

        Metadata, storage class and server-side encryption are sent again (a copy does not keep
        them by itself). An object S3 refuses to copy (``InvalidObjectState`` from an archive
        storage class) raises StorageError, like every other failure.
        """
        source = self.stat(source_key)
        if source is None:
            raise StorageError("no stored object s3://%s/%s" % (self.bucket, self.prefix + source_key))
        object_key = self._object_key(key)
        if self.stat(key) is not None:
            raise PreconditionFailed("refusing to overwrite s3://%s/%s: it already exists" % (self.bucket, object_key))
        copy_source = {"Bucket": self.bucket, "Key": self._object_key(source_key)}
        extra = self._put_extra(source.metadata)
        try:
            if source.size <= self.max_copy_size:
                self._call("copy_object", Bucket=self.bucket, Key=object_key, CopySource=copy_source,
                           MetadataDirective="REPLACE", **extra)
            else:
                self._copy_parts(copy_source, object_key, source.size, extra)
        except Exception as exc:
            if isinstance(exc, StorageError):
                raise
            raise self._error("copy s3://%s/%s to" % (self.bucket, copy_source["Key"]), key, exc) from exc
        stored = self.stat(key)
        if stored is None or stored.size != source.size:
            self.delete_many([key])
            raise UploadVerificationError("copy of %s to %s has %s bytes, the source %d" % (
                source_key, key, stored.size if stored else "no", source.size))
        self._verify_lock(key, stored, extra)
        return stored, None

    def _copy_parts(self, copy_source: dict, object_key: str, size: int, extra: dict) -> None:
        part_size = max(self.copy_part_size, -(-size // S3_MAX_PARTS))
        upload_id = self._call("create_multipart_upload", Bucket=self.bucket, Key=object_key, **extra)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, part_size), start=1):
                end = min(size, start + part_size) - 1
                response = self._call("upload_part_copy", Bucket=self.bucket, Key=object_key, UploadId=upload_id,
                                      PartNumber=number, CopySource=copy_source,
                                      CopySourceRange="bytes=%d-%d" % (start, end))
                parts.append({"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]})
            completion = self._call("complete_multipart_upload", Bucket=self.bucket, Key=object_key,
                                    UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            self._abort(object_key, upload_id)
            raise
        self._lock_completed(object_key, completion.get("VersionId"), extra)

    def clean_leftovers(self, prefix: str, older_than: datetime.datetime) -> list[str]:
        """Abort the multipart uploads below ``prefix`` started before ``older_than`` (killed writers)."""
        check_prefix(prefix)
        cleaned: list[str] = []
        markers: dict = {}
        while True:
            try:
                page = self._call("list_multipart_uploads", Bucket=self.bucket, Prefix=self.prefix + prefix, **markers)
            except Exception as exc:
                raise self._error("list the multipart uploads of", prefix, exc) from exc
            for upload in page.get("Uploads", []):
                initiated = _upload_started(upload, self.prefix)
                if initiated is None or initiated >= older_than:
                    continue
                try:
                    self._call("abort_multipart_upload", Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                except Exception as exc:
                    if not _is_not_found(exc) and "NoSuchUpload" not in str(exc):
                        raise self._error("abort the multipart upload of", upload["Key"][len(self.prefix):], exc) from exc
                cleaned.append("%s (multipart upload started %s)" % (
                    upload["Key"][len(self.prefix):], initiated.strftime("%Y-%m-%dT%H:%M:%SZ")))
            if not page.get("IsTruncated"):
                return cleaned
            markers = {"KeyMarker": page.get("NextKeyMarker"), "UploadIdMarker": page.get("NextUploadIdMarker")}

    def open(self, key: str) -> t.BinaryIO:
        try:
            response = self._call("get_object", Bucket=self.bucket, Key=self._object_key(key))
        except Exception as exc:
            if _is_not_found(exc):
                raise StorageError("no stored object s3://%s/%s" % (self.bucket, self.prefix + key)) from None
            raise self._error("read", key, exc) from exc
        return response["Body"]

    def stat(self, key: str) -> StoredObject | None:
        try:
            response = self._call("head_object", Bucket=self.bucket, Key=self._object_key(key))
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise self._error("stat", key, exc) from exc
        etag = response.get("ETag", "").strip('"') or None
        # The same key with the same ETag and time holds the same bytes: sets that reference one shared object have
        # it read once by a verification of all of them.
        return StoredObject(key=key, size=response["ContentLength"], modified=response.get("LastModified"),
                            metadata=response.get("Metadata", {}), etag=etag,
                            data_id=("s3", key, etag, str(response.get("LastModified"))) if etag else None,
                            lock_mode=response.get("ObjectLockMode"),
                            locked_until=response.get("ObjectLockRetainUntilDate"))

    def list(self, prefix: str = "") -> t.Iterator[StoredObject]:
        check_prefix(prefix)
        token = None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": self.prefix + prefix, "MaxKeys": self.page_size}
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = self._call("list_objects_v2", **kwargs)
            except Exception as exc:
                raise self._error("list", prefix, exc) from exc
            for item in page.get("Contents", []):
                yield StoredObject(key=item["Key"][len(self.prefix):], size=item["Size"],
                                   modified=item.get("LastModified"), etag=item.get("ETag", "").strip('"') or None)
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def delete_many(self, keys: t.Iterable[str]) -> DeleteResult:
        result = DeleteResult()
        delete = self._delete_versions if self.object_lock else self._delete_batch
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == S3_DELETE_BATCH:
                delete(batch, result)
                batch = []
        if batch:
            delete(batch, result)
        return result

    def deletes_hide(self) -> str | None:
        """On a versioned bucket without ``object_lock`` a delete adds a delete marker and the bytes stay (as
        noncurrent versions, until a lifecycle rule expires them); with ``object_lock`` deletions are by version."""
        if self.object_lock:
            return None
        try:
            self._bucket_versioning()
        except Exception:  # pylint: disable=broad-exception-caught
            self._versioning = ""  # a credential without s3:GetBucketVersioning (older policies): as before
        if self._versioning in ("Enabled", "Suspended"):
            return ("bucket %s has versioning %s: a delete only adds a delete marker and the bytes stay as noncurrent "
                    "versions until a lifecycle rule (NoncurrentVersionExpiration) removes them; storage.object_lock "
                    "deletes by version" % (self.bucket, self._versioning.lower()))
        return None

    def _bucket_versioning(self) -> str:
        """The bucket's versioning status ("" when never enabled), asked once a backend; raises what the call does."""
        if self._versioning is None:
            self._versioning = self._call("get_bucket_versioning", Bucket=self.bucket).get("Status") or ""
        return self._versioning

    def _versions(self, key: str) -> list[dict]:
        """Every version and delete marker of ``key``: [{"VersionId", "marker"}]."""
        object_key = self._object_key(key)
        found: list[dict] = []
        markers: dict = {}
        while True:
            page = self._call("list_object_versions", Bucket=self.bucket, Prefix=object_key, **markers)
            for entry in page.get("Versions", []):
                if entry["Key"] == object_key:
                    found.append({"VersionId": entry["VersionId"], "marker": False})
            for entry in page.get("DeleteMarkers", []):
                if entry["Key"] == object_key:
                    found.append({"VersionId": entry["VersionId"], "marker": True})
            if not page.get("IsTruncated"):
                return found
            markers = {"KeyMarker": page.get("NextKeyMarker"), "VersionIdMarker": page.get("NextVersionIdMarker")}

    def _locked_until(self, key: str, version_id: str) -> datetime.datetime | None:
        """Until when a version of ``key`` is locked (a legal hold counts as locked for ever), or None."""
        response = self._call("head_object", Bucket=self.bucket, Key=self._object_key(key), VersionId=version_id)
        if response.get("ObjectLockLegalHoldStatus") == "ON":
            return datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)
        until = response.get("ObjectLockRetainUntilDate")
        return until if until is not None and until > datetime.datetime.now(datetime.timezone.utc) else None

    def _delete_versions(self, keys: list[str], result: DeleteResult) -> None:
        """On a locked store (versioned): delete every version of each key, never one that is locked (asked first:
        a delete without a version would only hide the bytes behind a delete marker). A key with a locked version
        is reported in ``locked`` with the latest date, and left whole for a later run."""
        batch: list[tuple[str, str]] = []
        for key in keys:
            try:
                versions = self._versions(key)
                locks = [until for until in (self._locked_until(key, v["VersionId"]) for v in versions
                                             if not v["marker"]) if until is not None]
            except Exception as exc:  # pylint: disable=broad-exception-caught
                result.errors.append({"key": key, "error": str(self._error("read the versions of", key, exc))})
                continue
            if locks:
                result.locked.append({"key": key, "locked_until": max(locks).strftime("%Y-%m-%dT%H:%M:%SZ")})
                continue
            if not versions:
                result.deleted.append(key)  # nothing left of it
                continue
            if batch and len(batch) + len(versions) > S3_DELETE_BATCH:  # a key's versions go in one call
                self._delete_batch(list(dict.fromkeys(k for k, _v in batch)), result, versions=batch)
                batch = []
            batch.extend((key, v["VersionId"]) for v in versions)
        if batch:
            self._delete_batch(list(dict.fromkeys(k for k, _v in batch)), result, versions=batch)

    def _delete_batch(self, keys: list[str], result: DeleteResult, versions: list | None = None) -> None:
        """Delete ``keys`` (or, given, those (key, version id) pairs) in one DeleteObjects."""
        objects = ([{"Key": self._object_key(key), "VersionId": version} for key, version in versions]
                   if versions is not None else [{"Key": self._object_key(key)} for key in keys])
        result.requests += 1
        try:
            response = self._call("delete_objects", Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
        except Exception as exc:  # pylint: disable=broad-exception-caught
            result.errors.extend({"key": key, "error": str(exc)} for key in keys)
            return
        failed = {}
        for error in response.get("Errors", []):
            code = error.get("Code")
            # S3 authorizes s3:DeleteObject (a version: s3:DeleteObjectVersion) on each key: name the permission
            # that these credentials lack.
            permission = "s3:DeleteObjectVersion" if versions is not None else "s3:DeleteObject"
            action = " (%s)" % permission if code == "AccessDenied" else ""
            failed[error["Key"][len(self.prefix):]] = "%s%s: %s" % (code, action, error.get("Message"))
        for key in keys:
            if key in failed:
                result.errors.append({"key": key, "error": failed[key]})
            else:
                result.deleted.append(key)


def _upload_started(upload: dict, prefix: str) -> datetime.datetime | None:
    """When a multipart upload started, judged by both clocks: S3's ``Initiated`` and the timestamp in an
    artifact's key (``..._20260615T020000Z.tar.gz``), whichever is later, so that an upload of a run that
    may still be going is never taken for a leftover (some S3-compatible servers report no real time)."""
    initiated = upload.get("Initiated")
    match = re.search(r"_(\d{8}T\d{6}Z)\.[a-z0-9.]+$", upload["Key"][len(prefix):])
    if match:
        stamp = datetime.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        initiated = stamp if initiated is None else max(initiated, stamp)
    return initiated


def _is_not_found(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class ObjectLease(RecordLease):
    """The lease of a job on a store without locks: create-only records in ``<job>/leases/`` (``If-None-Match``,
    see ``_lease.py``); neither overwrite nor delete is needed."""
