# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``storage.object_lock`` against moto with Object Lock, through the test proxy that refuses what AWS refuses
(issue 26): every object a run writes is locked for its days from the real time (a multipart one too, which moto
leaves unlocked), a bucket that cannot lock is refused before anything is written, and retention deletes every
version of what it deletes but never a locked one, which it reports with its date and deletes on a later run."""

from __future__ import annotations

import datetime
import os
import time
import uuid

import boto3
import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._layout import iso
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module
from ansible_collections.corebackup.backup.tests.testbed.s3_proxy import LockRules, S3Proxy
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
JOB = "files"
PREFIX = "locked/"
PRUNE_KEY = "corebackup-prune-admin"  # the test's own credential allowed to bypass governance; the modules never use it
DAY = datetime.datetime(2026, 3, 1, 2, 0, tzinfo=datetime.timezone.utc)  # the runs' clock, far from the real one


def client(endpoint, access_key=S3_TEST_CREDENTIALS["access_key"]):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=access_key,
                        aws_secret_access_key=S3_TEST_CREDENTIALS["secret_key"])


def new_bucket(endpoint, lock=True):
    bucket = "corebackup-locked-" + uuid.uuid4().hex[:10]
    client(endpoint).create_bucket(Bucket=bucket, **({"ObjectLockEnabledForBucket": True} if lock else {}))
    return bucket


@pytest.fixture
def proxy(s3_endpoint):
    with S3Proxy(int(s3_endpoint.rsplit(":", 1)[1]), LockRules(S3_TEST_CREDENTIALS, {PRUNE_KEY})) as running:
        yield running


def storage_of(proxy, bucket, mode="COMPLIANCE", days=2):
    return dict(type="s3", bucket=bucket, prefix=PREFIX, endpoint_url=proxy.url, object_lock={"mode": mode, "days": days},
                **S3_TEST_CREDENTIALS)


def module(name, args, when, check=False):
    return run_module(COLLECTIONS, name, dict(args, job=JOB), check=check, env={"COREBACKUP_NOW": iso(when)})


def backup(paths, storage, when):
    return module("files_backup", {"paths": paths, "storage": storage,
                                   "retries": {"attempts": 2, "delay": 0.1, "max_delay": 0.5}}, when)


def sample(root, name, size):
    path = os.path.join(str(root), name)
    os.makedirs(path)
    with open(os.path.join(path, "data.bin"), "wb") as handle:
        handle.write(os.urandom(size))
    return path


def versions(s3, bucket, prefix=PREFIX):
    """Every (key, version id, is a delete marker) under ``prefix``."""
    found = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        found += [(v["Key"], v["VersionId"], False) for v in page.get("Versions", [])]
        found += [(v["Key"], v["VersionId"], True) for v in page.get("DeleteMarkers", [])]
    return found


def test_every_object_a_run_writes_is_locked_for_its_days_from_the_real_time(s3_endpoint, proxy, tmp_path):
    bucket = new_bucket(s3_endpoint)
    paths = [sample(tmp_path, "small", 1000), sample(tmp_path, "big", 12 * 1024 * 1024)]  # big: a multipart upload
    asked = datetime.datetime.now(datetime.timezone.utc)
    run = backup(paths, storage_of(proxy, bucket, days=2), DAY)
    assert not run.failed and run.result["status"] == "success", run.result.get("msg")
    done = datetime.datetime.now(datetime.timezone.utc)
    direct = client(s3_endpoint)
    written = versions(direct, bucket)
    kinds = {key.split("/")[2] if key.count("/") > 2 else key for key, _v, _m in written}
    assert {"objects", "2026-03-01", "leases"} <= kinds, kinds
    for key, version, marker in written:
        assert not marker, key
        head = direct.head_object(Bucket=bucket, Key=key, VersionId=version)
        assert head.get("ObjectLockMode") == "COMPLIANCE", key
        # two days from the real time of the write, not from the run's clock (2026-03-01)
        assert asked + datetime.timedelta(days=2) <= head["ObjectLockRetainUntilDate"] \
            <= done + datetime.timedelta(days=2, seconds=2), (key, head["ObjectLockRetainUntilDate"])
    # the multipart object locked again, explicitly: moto dropped the lock it was created with
    assert proxy.count("CompleteMultipartUpload") >= 1 and proxy.count("PutObjectRetention") >= 1
    assert proxy.refused == []  # never a shortening, never a bypass


def test_a_bucket_that_cannot_lock_is_refused_before_anything_is_written(s3_endpoint, proxy, tmp_path):
    paths = [sample(tmp_path, "small", 1000)]
    plain = new_bucket(s3_endpoint, lock=False)
    run = backup(paths, storage_of(proxy, plain), DAY)
    assert run.failed and "bucket %s has no Object Lock" % plain in run.result["msg"], run.result
    suspended = new_bucket(s3_endpoint)
    client(s3_endpoint).put_bucket_versioning(Bucket=suspended, VersioningConfiguration={"Status": "Suspended"})
    run = backup(paths, storage_of(proxy, suspended), DAY)
    assert run.failed and "has versioning suspended" in run.result["msg"], run.result
    for bucket in (plain, suspended):
        assert versions(client(s3_endpoint), bucket) == []
    run = backup(paths, dict(type="filesystem", path=str(tmp_path / "store"), object_lock={"mode": "COMPLIANCE", "days": 1}), DAY)
    assert run.failed and "storage.object_lock is S3 only" in run.result["msg"] and not (tmp_path / "store").exists()


def test_retention_deletes_no_locked_version_and_deletes_every_version_once_free(s3_endpoint, proxy, tmp_path):
    bucket = new_bucket(s3_endpoint)
    storage = storage_of(proxy, bucket, mode="GOVERNANCE", days=1)
    data = sample(tmp_path, "data", 5000)
    assert backup([data], storage, DAY).result["status"] == "success"
    with open(os.path.join(data, "data.bin"), "ab") as handle:
        handle.write(b"changed")  # the first set's artifact is referenced by no later set
    later = DAY + datetime.timedelta(days=40)
    assert backup([data], storage, later).result["status"] == "success"
    direct = client(s3_endpoint)
    before = versions(direct, bucket)
    first_set = [(k, v) for k, v, _m in before if k.startswith(PREFIX + JOB + "/2026-03-01/")]
    assert first_set

    proxy.clear()
    pruned = module("backup_retention", {"storage": storage, "keep_days": 30, "min_keep": 1}, later)
    assert not pruned.failed, pruned.result.get("msg")
    assert [entry["date"] for entry in pruned.result["deleted"]] == ["2026-03-01"]
    locked = {entry["key"]: entry["locked_until"] for entry in pruned.result["locked"]}
    assert {PREFIX + key for key in locked} >= {key for key, _v in first_set}
    assert all(until > iso(datetime.datetime.now(datetime.timezone.utc)) for until in locked.values())
    assert pruned.result["errors"] == [] and pruned.result["bytes_freed"] == 0
    assert proxy.count("DeleteObjects", "DeleteObject") == 0 and proxy.refused == []  # nothing locked was asked
    assert set(versions(direct, bucket)) >= set(before)  # every version still there, no delete marker hides one

    # The locks run out (the test's own prune administrator shortens them, with the bypass): the next run deletes
    # every version of those keys, and says how many bytes that freed.
    prune = client(proxy.url, PRUNE_KEY)
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)).replace(microsecond=0)
    for key in locked:
        for k, version, marker in versions(direct, bucket, PREFIX + key):
            if k == PREFIX + key and not marker:
                prune.put_object_retention(Bucket=bucket, Key=k, VersionId=version, BypassGovernanceRetention=True,
                                           Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon})
    time.sleep(3)
    again = module("backup_retention", {"storage": storage, "keep_days": 30, "min_keep": 1}, later)
    assert not again.failed and again.result["locked"] == [] and again.result["errors"] == [], again.result
    assert again.result["bytes_freed"] > 0
    left = {k for k, _v, _m in versions(direct, bucket)}
    assert not left & {PREFIX + key for key in locked}, sorted(left & {PREFIX + key for key in locked})
    second = [k for k in left if k.startswith(PREFIX + JOB + "/2026-04-10/")]
    assert second  # the kept set is whole


def test_on_a_versioned_bucket_without_a_lock_retention_says_the_bytes_stay(s3_endpoint, proxy, tmp_path):
    bucket = new_bucket(s3_endpoint, lock=False)
    direct = client(s3_endpoint)
    direct.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    storage = dict(type="s3", bucket=bucket, prefix=PREFIX, endpoint_url=proxy.url, **S3_TEST_CREDENTIALS)
    data = sample(tmp_path, "data", 5000)
    assert backup([data], storage, DAY).result["status"] == "success"
    with open(os.path.join(data, "data.bin"), "ab") as handle:
        handle.write(b"changed")
    later = DAY + datetime.timedelta(days=40)
    assert backup([data], storage, later).result["status"] == "success"
    pruned = module("backup_retention", {"storage": storage, "keep_days": 30, "min_keep": 1}, later)
    assert not pruned.failed and [entry["date"] for entry in pruned.result["deleted"]] == ["2026-03-01"]
    assert pruned.result["bytes_freed"] == 0 and pruned.result["bytes_hidden"] > 0, pruned.result
    assert any("has versioning enabled: a delete only adds a delete marker" in w for w in pruned.result["warnings"])
    first = [(key, marker) for key, _v, marker in versions(direct, bucket, PREFIX + JOB + "/2026-03-01/")]
    assert any(marker for _k, marker in first) and any(not marker for _k, marker in first)  # hidden, not gone
