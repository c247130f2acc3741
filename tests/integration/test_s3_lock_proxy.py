# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The test S3 proxy refuses what AWS refuses around Object Lock and moto lets through (issue 26): each refusal is
checked against moto itself, which accepts it, so that a test of the collection through the proxy meets AWS's
answers."""

from __future__ import annotations

import datetime
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from ansible_collections.corebackup.backup.tests.testbed.s3_proxy import LockRules, S3Proxy
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS

PRUNE_KEY = "corebackup-prune"  # the one credential allowed s3:BypassGovernanceRetention


def client(endpoint, access_key=S3_TEST_CREDENTIALS["access_key"]):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=access_key,
                        aws_secret_access_key=S3_TEST_CREDENTIALS["secret_key"])


@pytest.fixture
def locked(s3_endpoint):
    """(a client through the proxy, a client straight to moto, the prune credential's client, the proxy, bucket)."""
    bucket = "corebackup-lock-" + uuid.uuid4().hex[:10]
    client(s3_endpoint).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    with S3Proxy(int(s3_endpoint.rsplit(":", 1)[1]), LockRules(S3_TEST_CREDENTIALS, {PRUNE_KEY})) as proxy:
        yield client(proxy.url), client(s3_endpoint), client(proxy.url, PRUNE_KEY), proxy, bucket


def later(days):
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)).replace(microsecond=0)


def code(call, **kwargs):
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"]


def test_a_compliance_retention_is_only_ever_extended(locked):
    through, direct, _prune, proxy, bucket = locked
    version = through.put_object(Bucket=bucket, Key="set/run.json", Body=b"{}", ObjectLockMode="COMPLIANCE",
                                 ObjectLockRetainUntilDate=later(7))["VersionId"]
    for retention in ({"Mode": "COMPLIANCE", "RetainUntilDate": later(1)}, {"Mode": "GOVERNANCE", "RetainUntilDate": later(30)}):
        assert code(through.put_object_retention, Bucket=bucket, Key="set/run.json", VersionId=version,
                    Retention=retention) == "AccessDenied"
    assert len(proxy.refused) == 2 and all("COMPLIANCE" in reason for reason in proxy.refused)
    through.put_object_retention(Bucket=bucket, Key="set/run.json", VersionId=version,
                                 Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later(30)})
    assert direct.head_object(Bucket=bucket, Key="set/run.json")["ObjectLockRetainUntilDate"] == later(30)
    # moto alone shortens it: the gap the proxy fills
    direct.put_object_retention(Bucket=bucket, Key="set/run.json", VersionId=version,
                                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later(1)})
    assert direct.head_object(Bucket=bucket, Key="set/run.json")["ObjectLockRetainUntilDate"] == later(1)


def test_governance_is_bypassed_only_by_the_credential_allowed_to(locked):
    through, direct, prune, proxy, bucket = locked
    version = through.put_object(Bucket=bucket, Key="objects/a.tar.gz", Body=b"a", ObjectLockMode="GOVERNANCE",
                                 ObjectLockRetainUntilDate=later(7))["VersionId"]
    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": later(1)}
    assert code(through.put_object_retention, Bucket=bucket, Key="objects/a.tar.gz", VersionId=version,
                Retention=shorter) == "AccessDenied"
    assert code(through.put_object_retention, Bucket=bucket, Key="objects/a.tar.gz", VersionId=version,
                Retention=shorter, BypassGovernanceRetention=True) == "AccessDenied"
    # a locked version cannot be deleted (moto refuses that itself), nor by the bypass without the permission
    assert code(through.delete_object, Bucket=bucket, Key="objects/a.tar.gz", VersionId=version) == "AccessDenied"
    assert code(through.delete_object, Bucket=bucket, Key="objects/a.tar.gz", VersionId=version,
                BypassGovernanceRetention=True) == "AccessDenied"
    assert direct.head_object(Bucket=bucket, Key="objects/a.tar.gz", VersionId=version)["ContentLength"] == 1
    assert len(proxy.refused) == 3
    prune.put_object_retention(Bucket=bucket, Key="objects/a.tar.gz", VersionId=version, Retention=shorter,
                               BypassGovernanceRetention=True)
    prune.delete_object(Bucket=bucket, Key="objects/a.tar.gz", VersionId=version, BypassGovernanceRetention=True)
    assert code(direct.head_object, Bucket=bucket, Key="objects/a.tar.gz", VersionId=version) in ("404", "NoSuchVersion")


def test_a_copy_onto_an_existing_key_with_if_none_match_is_refused(locked):
    through, direct, _prune, proxy, bucket = locked
    through.put_object(Bucket=bucket, Key="a", Body=b"first")
    through.put_object(Bucket=bucket, Key="b", Body=b"second")
    source = {"Bucket": bucket, "Key": "a"}
    assert code(through.copy_object, Bucket=bucket, Key="b", CopySource=source, IfNoneMatch="*") == "PreconditionFailed"
    assert direct.get_object(Bucket=bucket, Key="b")["Body"].read() == b"second"
    through.copy_object(Bucket=bucket, Key="c", CopySource=source, IfNoneMatch="*")
    assert direct.get_object(Bucket=bucket, Key="c")["Body"].read() == b"first"
    assert proxy.count("CopyObject") == 2 and len(proxy.refused) == 1
    # moto alone overwrites it
    direct.copy_object(Bucket=bucket, Key="b", CopySource=source, IfNoneMatch="*")
    assert direct.get_object(Bucket=bucket, Key="b")["Body"].read() == b"first"


def test_the_proxy_names_the_lock_operations_it_forwards(locked):
    through, _direct, _prune, proxy, bucket = locked
    through.get_object_lock_configuration(Bucket=bucket)
    through.get_bucket_versioning(Bucket=bucket)
    through.list_object_versions(Bucket=bucket)
    through.put_object(Bucket=bucket, Key="h", Body=b"h")
    through.put_object_legal_hold(Bucket=bucket, Key="h", LegalHold={"Status": "ON"})
    named = ("GetObjectLockConfiguration", "GetBucketVersioning", "ListObjectVersions", "PutObject", "PutObjectLegalHold")
    assert all(proxy.count(op) >= 1 for op in named), [(entry.operation, entry.path) for entry in proxy.log]
    assert {entry.operation for entry in proxy.log} == set(named)
