# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Both storage backends against the real thing: a directory, and an S3 HTTP endpoint (moto server)."""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import json
import os
import subprocess
import time

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._catalog import carry
from ansible_collections.corebackup.backup.plugins.module_utils._checksum import verify_artifact
from ansible_collections.corebackup.backup.plugins.module_utils._layout import ArtifactKey, checksum_key
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import (
    ArtifactWriter,
    bytes_stream,
    tar_stream,
)
from ansible_collections.corebackup.backup.plugins.module_utils._retry import RetryPolicy
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.plugins.module_utils._storage_s3 import S3Backend
from ansible_collections.corebackup.backup.tests.conftest import files_below, make_s3_backend
from ansible_collections.corebackup.backup.tests.testbed.s3_proxy import Rule
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS, free_port

MiB = 1024 * 1024
DAY1 = datetime.datetime(2024, 5, 1, 2, 0, tzinfo=datetime.timezone.utc)
DAY2 = DAY1 + datetime.timedelta(days=1)


def blocks(data, size=300 * 1024):
    return bytes_stream(data[i:i + size] for i in range(0, len(data), size))


def download(backend, key, path):
    with backend.open(key) as reader, open(path, "wb") as out:
        for block in iter(lambda: reader.read(MiB), b""):
            out.write(block)
    return path


def test_write_list_read_verify_delete(backend, tmp_path):
    writer = ArtifactWriter(backend, "gzip", 1)
    payloads = {name: os.urandom(size) for name, size in [("small", 1000), ("medium", 3 * MiB), ("big", 19 * MiB)]}
    artifacts = {name: writer.store("nightly", name, "bin", blocks(data)) for name, data in payloads.items()}

    listed = {obj.key: obj.size for obj in backend.list("nightly/")}
    records = {checksum_key(a.key): a for a in artifacts.values()}
    assert listed == dict({a.key: a.size for a in artifacts.values()}, **{k: listed.get(k) for k in records})
    assert list(backend.list("other-job/")) == []
    for record_key, artifact in records.items():  # each artifact's checksum record, written once it was stored
        assert json.loads(backend.read_bytes(record_key)) == artifact.to_dict()

    for name, artifact in artifacts.items():
        local = download(backend, artifact.key, str(tmp_path / name))
        sha256sum = subprocess.run(["sha256sum", local], capture_output=True, text=True, check=True).stdout.split()[0]
        assert sha256sum == artifact.sha256
        restored = subprocess.run(["gzip", "-dc", local], capture_output=True, check=True).stdout
        assert restored == payloads[name]
        assert verify_artifact(backend, artifact.key, artifact.sha256, artifact.size).status == "ok"

    result = backend.delete_many(list(records) + [a.key for a in artifacts.values()])
    assert sorted(result.deleted) == sorted(list(records) + [a.key for a in artifacts.values()]) and result.errors == []
    assert list(backend.list("")) == []
    assert backend.stat(artifacts["small"].key) is None


def test_verify_names_missing_truncated_and_corrupted(backend):
    writer = ArtifactWriter(backend, "none")
    good, short, flipped, gone = (writer.write("job/d/%s" % n, blocks(os.urandom(200000))) for n in "abcd")

    def rewrite(key, transform):
        data = backend.read_bytes(key)
        backend.write(key, [transform(data)])

    rewrite(short.key, lambda data: data[:-1])
    rewrite(flipped.key, lambda data: data[:1000] + bytes([data[1000] ^ 0x01]) + data[1001:])
    backend.delete_many([gone.key])

    statuses = {a.key: verify_artifact(backend, a.key, a.sha256, a.size).status for a in (good, short, flipped, gone)}
    assert statuses == {good.key: "ok", short.key: "truncated", flipped.key: "corrupted", gone.key: "missing"}


@pytest.mark.parametrize("fail_after", [1 * MiB, 20 * MiB], ids=["single-part", "multipart"])
def test_stream_failing_half_way_leaves_nothing(backend, fail_after):
    def failing():
        yield from blocks(os.urandom(fail_after))
        raise RuntimeError("producer died")

    with pytest.raises(RuntimeError, match="producer died"):
        ArtifactWriter(backend, "none").store("job", "partial", "bin", failing())
    assert list(backend.list("")) == []
    if isinstance(backend, S3Backend):
        uploads = backend.client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", [])
        assert uploads == []
        # The upload was aborted, not deleted: it never had a name (a create-only credential does the same).
        assert "DeleteObjects" not in backend.requests and "DeleteObject" not in backend.requests, backend.requests
        assert backend.requests.get("AbortMultipartUpload", 0) == (1 if fail_after > backend.part_size else 0)
    else:
        assert files_below(backend.root) == []


def test_failing_run_keeps_what_was_stored_before(backend):
    writer = ArtifactWriter(backend, "none")
    kept = writer.write("job/2024-01-01/a_20240101T000000Z.bin", blocks(b"precious" * 1000))

    def failing():
        yield b"new"
        raise RuntimeError("broken")

    with pytest.raises(RuntimeError):
        writer.write("job/2024-01-02/a_20240102T000000Z.bin", failing())
    with pytest.raises(StorageError, match="refusing to overwrite"):
        writer.write(kept.key, blocks(b"other"))
    assert sorted(obj.key for obj in backend.list("")) == sorted([kept.key, checksum_key(kept.key)])
    assert verify_artifact(backend, kept.key, kept.sha256, kept.size).ok


def test_tar_of_a_tree_on_s3_multipart(s3_endpoint, tmp_path):
    backend = make_s3_backend(s3_endpoint, part_size=5 * MiB)
    source = tmp_path / "tree"
    source.mkdir()
    for index in range(6):
        (source / ("f%d" % index)).write_bytes(os.urandom(2 * MiB))
    artifact = ArtifactWriter(backend, "none").store("job", "tree", "tar", tar_stream(str(source)))
    stored = backend.stat(artifact.key)
    assert stored.etag.endswith("-3")  # 12 MiB of tar in 5 MiB parts
    local = download(backend, artifact.key, str(tmp_path / "tree.tar"))
    listing = subprocess.run(["tar", "-tf", local], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(listing) == ["tree/"] + ["tree/f%d" % i for i in range(6)]


def test_listing_follows_pages(s3_endpoint):
    backend = make_s3_backend(s3_endpoint, page_size=7)
    keys = ["job/2024-01-%02d/x_202401%02dT000000Z.bin" % (day, day) for day in range(1, 21)]
    for key in keys:
        backend.write(key, [b"x"])
    backend.requests.clear()
    assert [obj.key for obj in backend.list("job/")] == keys
    assert backend.requests == {"ListObjectsV2": 3}


def test_batch_delete_uses_one_request_per_thousand_keys(s3_endpoint):
    backend = make_s3_backend(s3_endpoint)
    keys = ["job/2024-01-01/n%04d_20240101T000000Z.bin" % i for i in range(2001)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: backend.client.put_object(Bucket=backend.bucket, Key=backend.prefix + k, Body=b"x"),
                      keys))
    backend.requests.clear()
    result = backend.delete_many(keys)
    assert len(result.deleted) == 2001 and result.errors == []
    assert backend.requests == {"DeleteObjects": 3}
    assert list(backend.list("")) == []


def test_object_settings_reach_the_service(s3_endpoint):
    backend = make_s3_backend(s3_endpoint, storage_class="STANDARD_IA", sse="AES256", metadata={"team": "ops"})
    writer = ArtifactWriter(backend, "none")
    for name, size in [("one", 10), ("multi", 17 * MiB)]:
        artifact = writer.store("job", name, "bin", blocks(os.urandom(size)), metadata={"repository": "org/" + name})
        head = backend.client.head_object(Bucket=backend.bucket, Key=backend.prefix + artifact.key)
        assert head["Metadata"] == {"team": "ops", "repository": "org/" + name}
        assert head["StorageClass"] == "STANDARD_IA"
        assert head["ServerSideEncryption"] == "AES256"


def test_prefix_isolates_stores(s3_endpoint):
    first = make_s3_backend(s3_endpoint, prefix="team-a/")
    second = S3Backend(bucket=first.bucket, prefix="team-b", endpoint_url=s3_endpoint, **S3_TEST_CREDENTIALS)
    first.write("job/k", [b"a"])
    second.write("job/k", [b"b"])
    assert first.read_bytes("job/k") == b"a" and second.read_bytes("job/k") == b"b"
    assert [o.key for o in first.list("")] == ["job/k"]
    assert sorted(o["Key"] for o in first.client.list_objects_v2(Bucket=first.bucket)["Contents"]) == [
        "team-a/job/k", "team-b/job/k"]


def test_unreachable_endpoint_is_retried_then_named():
    port = free_port()
    backend = S3Backend(bucket="b", endpoint_url="http://127.0.0.1:%d" % port,
                        retry=RetryPolicy(attempts=2, delay=0.01, max_delay=0.01), **S3_TEST_CREDENTIALS)
    with pytest.raises(StorageError, match="cannot stat s3://b/job/k"):
        backend.stat("job/k")
    assert backend.requests == {"HeadObject": 2}


def test_missing_bucket_is_a_clear_error_and_not_retried(s3_endpoint):
    backend = S3Backend(bucket="no-such-bucket-here", endpoint_url=s3_endpoint, **S3_TEST_CREDENTIALS)
    with pytest.raises(StorageError, match="NoSuchBucket"):
        ArtifactWriter(backend, "none").write("job/k", blocks(b"x" * 100))
    assert backend.requests.get("PutObject") == 1


def test_missing_object_read_names_the_key(backend):
    with pytest.raises(StorageError, match="no stored object"):
        backend.open("job/2024-01-01/none_20240101T000000Z.bin")
    assert backend.stat("job/2024-01-01/none_20240101T000000Z.bin") is None


def test_sha256_of_stored_object_matches_record_byte_for_byte(backend, tmp_path):
    data = hashlib.sha256(b"seed").digest() * 50000
    artifact = ArtifactWriter(backend, "zstd", 3).store("job", "z", "bin", blocks(data))
    local = download(backend, artifact.key, str(tmp_path / "z.zst"))
    assert subprocess.run(["zstd", "-dc", local], capture_output=True, check=True).stdout == data
    assert hashlib.sha256(open(local, "rb").read()).hexdigest() == artifact.sha256


def test_object_metadata_round_trips_on_both_backends(backend):
    artifact = ArtifactWriter(backend, "none").store("job", "m", "bin", blocks(b"data"),
                                                     metadata={"refs_digest": "abc123", "pushed_at": "2024-05-01T00:00:00Z"})
    assert backend.stat(artifact.key).metadata == {"refs_digest": "abc123", "pushed_at": "2024-05-01T00:00:00Z"}
    # the metadata is not an object of its own (the checksum record is)
    assert sorted(obj.key for obj in backend.list("")) == sorted([artifact.key, checksum_key(artifact.key)])
    backend.write(artifact.key, [b"replaced"])  # an overwrite without metadata drops the old metadata
    assert backend.stat(artifact.key).metadata == {}
    backend.delete_many([artifact.key, checksum_key(artifact.key)])
    assert backend.stat(artifact.key) is None
    if not isinstance(backend, S3Backend):
        assert files_below(backend.root) == []


def test_attempts_mean_sends_botocore_does_not_retry_again(s3_proxy):
    backend = make_s3_backend(s3_proxy.url)
    backend.retry = RetryPolicy(attempts=5, delay=0.01, max_delay=0.02)
    s3_proxy.clear()
    s3_proxy.add(Rule("PutObject", "status", status=500, count=-1))
    with pytest.raises(StorageError, match="InternalError"):
        backend.write("job/2024-01-01/x_20240101T000000Z.bin", [b"data"])
    assert s3_proxy.count("PutObject") == 5  # botocore's own retries once multiplied this to 10
    s3_proxy.clear()
    s3_proxy.add(Rule("PutObject", "status", status=503, count=2))
    s3_proxy.add(Rule("PutObject", "reset", count=1))
    stored = backend.write("job/2024-01-01/y_20240101T000000Z.bin", [b"data"])
    assert stored.size == 4 and s3_proxy.count("PutObject") == 4


def legacy(writer, name, ext, chunks, metadata=None):
    """An artifact as the release before shared objects stored it: in the folder of its set (DAY1's)."""
    return writer.write(ArtifactKey.build("job", name, writer.extension(ext), when=DAY1, shared=False).key, chunks,
                        metadata=metadata)


def test_an_unchanged_shared_artifact_is_referenced_not_copied(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    artifact = ArtifactWriter(backend, "none").store("job", "a", "bin", blocks(b"a" * 1000), metadata={"k": "v"},
                                                     when=DAY1)
    before = sorted(o.key for o in backend.list(""))
    carried = carry(backend, artifact, "job", DAY2, {"checked": "2024-05-02"})
    assert carried.key == artifact.key == carried.carried_from and artifact.key.startswith("job/objects/a_20240501T")
    assert carried.metadata == {"k": "v", "checked": "2024-05-02"} and carried.sha256 == artifact.sha256
    assert sorted(o.key for o in backend.list("")) == before  # nothing written


def test_carry_links_or_copies_on_the_filesystem(tmp_path):
    """An older release's artifact (in its set's folder) is moved into objects/ once, by a hard link or a copy."""
    for mode in ("link", "copy"):
        backend = FilesystemBackend(str(tmp_path / mode), carry=mode)
        artifact = legacy(ArtifactWriter(backend, "gzip", 1), "a", "tar", blocks(os.urandom(300000)),
                          metadata={"refs_digest": "r1"})
        carried = carry(backend, artifact, "job", DAY2)
        source, target = (os.stat(os.path.join(backend.root, k)) for k in (artifact.key, carried.key))
        assert carried.carried_from == artifact.key and carried.key.startswith("job/objects/a_20240502T")
        assert (source.st_ino == target.st_ino) == (mode == "link")
        assert backend.stat(carried.key).metadata == {"refs_digest": "r1"}
        assert verify_artifact(backend, carried.key, artifact.sha256, artifact.size).ok
        record = json.loads(backend.read_bytes(checksum_key(carried.key)))
        assert record == dict(carried.to_dict(), carried_from=artifact.key) and record["sha256"] == artifact.sha256


def test_a_copy_that_does_not_match_the_record_is_refused(tmp_path):
    backend = FilesystemBackend(str(tmp_path), carry="copy")
    artifact = legacy(ArtifactWriter(backend, "none"), "a", "bin", blocks(b"precious" * 1000))
    with open(os.path.join(backend.root, artifact.key), "r+b") as handle:
        handle.write(b"X")  # bit rot since it was recorded
    with pytest.raises(StorageError, match="no longer matches its recorded size and sha256"):
        carry(backend, artifact, "job", DAY2)
    assert not [o for o in backend.list("job/objects/") if not o.key.endswith(".json")]


def test_s3_carries_by_server_side_copy_part_by_part_above_the_limit(s3_proxy):
    backend = make_s3_backend(s3_proxy.url, storage_class="STANDARD_IA", sse="AES256", max_copy_size=6 * MiB,
                              copy_part_size=5 * MiB)
    data = os.urandom(13 * MiB)
    big = legacy(ArtifactWriter(backend, "none"), "big", "bin", blocks(data), metadata={"k": "v"})
    small = legacy(ArtifactWriter(backend, "none"), "small", "bin", blocks(b"s" * 1000))
    s3_proxy.clear()
    carried = [carry(backend, artifact, "job", DAY2) for artifact in (big, small)]
    assert s3_proxy.count("UploadPartCopy") == 3 and s3_proxy.count("CopyObject") == 1
    assert s3_proxy.count("UploadPart") == 0 and s3_proxy.count("PutObject") == 2  # the two checksum records
    head = backend.client.head_object(Bucket=backend.bucket, Key=backend.prefix + carried[0].key)
    assert head["Metadata"] == {"k": "v"} and head["ServerSideEncryption"] == "AES256"
    assert head.get("StorageClass") == "STANDARD_IA"
    assert verify_artifact(backend, carried[0].key, big.sha256, big.size).ok
    assert verify_artifact(backend, carried[1].key, small.sha256, small.size).ok


def test_s3_refusing_a_copy_leaves_nothing(s3_proxy):
    backend = make_s3_backend(s3_proxy.url)
    artifact = legacy(ArtifactWriter(backend, "none"), "cold", "bin", blocks(b"c" * 1000))
    s3_proxy.add(Rule("CopyObject", "status", status=403, code="InvalidObjectState", count=-1))
    with pytest.raises(StorageError, match="InvalidObjectState"):
        carry(backend, artifact, "job", DAY2)
    assert [o.key for o in backend.list("job/objects/")] == []
    assert s3_proxy.count("CopyObject") == 1  # not a transient error: no retry


def test_leftovers_older_than_a_day_are_cleaned(backend):
    writer = ArtifactWriter(backend, "none")

    def stopped():
        yield b"x" * (6 * MiB)
        raise KeyboardInterrupt  # killed half-way

    if isinstance(backend, S3Backend):
        backend.part_size = 5 * MiB
        backend._abort = lambda *args: None  # the abort itself failed (a 500 answered it)
    with pytest.raises(KeyboardInterrupt):
        writer.store("job", "half", "bin", stopped(), when=DAY1)
    with pytest.raises(KeyboardInterrupt):
        writer.store("other", "half", "bin", stopped(), when=DAY1)
    if not isinstance(backend, S3Backend):
        # A killed process leaves its temporary file (the writer above cleaned up after itself).
        for job in ("job", "other"):
            os.makedirs(os.path.join(backend.root, job, "2024-05-01"), exist_ok=True)
            path = os.path.join(backend.root, job, "2024-05-01", ".half_20240501T020000Z.bin.abc.partial")
            with open(path, "wb") as handle:
                handle.write(b"half")
        os.utime(os.path.join(backend.root, "job", "2024-05-01", ".half_20240501T020000Z.bin.abc.partial"),
                 (time.time() - 3 * 86400,) * 2)
    assert backend.clean_leftovers("job/", DAY1) == []  # not older than a day by the run's clock
    cleaned = backend.clean_leftovers("job/", datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2))
    # The upload of a killed run (S3, under objects/), the temporary file a killed process left (in a set's folder).
    assert len(cleaned) == 1 and cleaned[0].startswith("job/objects/" if isinstance(backend, S3Backend) else "job/2024-05-01/")
    left = backend.clean_leftovers("", datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2))
    assert len(left) == 1 and left[0].startswith("other/")  # only under the job's prefix, until asked for


@pytest.mark.parametrize("concurrency", [1, 4])
def test_s3_parts_go_up_concurrently_and_are_assembled_in_order(s3_proxy, concurrency):
    """upload_concurrency parts in flight at once (and no more), the object byte for byte what was sent."""
    backend = make_s3_backend(s3_proxy.url, part_size=5 * MiB, upload_concurrency=concurrency)
    s3_proxy.add(Rule("UploadPart", "delay", seconds=0.3, count=-1))  # a link with latency: parts overlap
    data = os.urandom(28 * MiB + 17)  # five parts of 5 MiB, then 3 MiB
    stored = backend.write("job/2026-01-01/big.bin", [data[i:i + MiB] for i in range(0, len(data), MiB)])
    assert stored.size == len(data) and stored.etag.endswith("-6")
    assert hashlib.sha256(backend.read_bytes("job/2026-01-01/big.bin")).digest() == hashlib.sha256(data).digest()
    assert s3_proxy.max_in_flight["UploadPart"] == concurrency


def test_a_failing_part_among_concurrent_ones_aborts_the_upload(s3_proxy):
    backend = make_s3_backend(s3_proxy.url, part_size=5 * MiB, upload_concurrency=3)
    s3_proxy.add(Rule("UploadPart", "status", status=403, code="AccessDenied", count=-1))
    with pytest.raises(StorageError):
        backend.write("job/2026-01-01/big.bin", [os.urandom(MiB) for _part in range(16)])
    assert backend.stat("job/2026-01-01/big.bin") is None
    assert backend.client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", []) == []
