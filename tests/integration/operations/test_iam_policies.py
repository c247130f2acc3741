# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""docs/iam/*.json, the S3 permissions of each play (docs/operations.md), on a moto server with IAM enforcement.

One IAM user per policy document, as shipped (the bucket and prefix substituted as the runbook says). Each
play's modules succeed with their user's keys alone, and what a policy leaves out is refused with an error
naming the missing action: the backup user creates objects but can neither replace nor delete one (so it cannot
prune), the restore user cannot write into a job's sets. Leases and write probes are records that are only
created, so no play deletes anything but prune.
"""

from __future__ import annotations

import json
import os
import re
import uuid

import boto3
import botocore.exceptions
import pytest

from ansible_collections.corebackup.backup.tests.testbed.ansible_tasks import Task, run_tasks
from ansible_collections.corebackup.backup.tests.testbed.moto_iam import bootstrap_admin, moto_s3_iam

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
PLAYS = ("backup", "prune", "verify", "restore")
DAY1, DAY2 = "2026-01-01", "2026-01-02"

pytestmark = [pytest.mark.s3, pytest.mark.services, pytest.mark.playbook]


def policy_document(play: str, bucket: str, prefix: str) -> str:
    """docs/iam/<play>.json for ``bucket`` and ``prefix``: its example bucket and prefix replaced, as the runbook says."""
    with open(os.path.join(ROOT, "docs", "iam", play + ".json"), encoding="utf-8") as handle:
        text = handle.read()
    for statement in json.loads(text)["Statement"]:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert all(r == "arn:aws:s3:::example-backups" or r.startswith("arn:aws:s3:::example-backups/backups/")
                   for r in resources), (play, resources)
    text = text.replace("arn:aws:s3:::example-backups/backups/", "arn:aws:s3:::%s/%s" % (bucket, prefix))
    return text.replace("arn:aws:s3:::example-backups", "arn:aws:s3:::" + bucket)


@pytest.fixture(scope="module")
def iam_store(service_log_dir):
    """(storage options by play) on a bucket of a moto server that enforces IAM; the administrator's S3 client."""
    with moto_s3_iam(service_log_dir) as service:
        endpoint = "http://127.0.0.1:%d" % service.port
        admin = bootstrap_admin(endpoint)
        session = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": admin["access_key"],
                   "aws_secret_access_key": admin["secret_key"]}
        s3, iam = boto3.client("s3", **session), boto3.client("iam", **session)
        bucket, prefix = "corebackup-iam-" + uuid.uuid4().hex[:8], "offsite/"
        s3.create_bucket(Bucket=bucket)
        storages = {}
        for play in PLAYS:
            iam.create_user(UserName=play)
            iam.put_user_policy(UserName=play, PolicyName=play, PolicyDocument=policy_document(play, bucket, prefix))
            key = iam.create_access_key(UserName=play)["AccessKey"]
            storages[play] = {"type": "s3", "bucket": bucket, "prefix": prefix, "endpoint_url": endpoint,
                              "region": "us-east-1", "access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
        # A user that may only read (verify.json without the statements that create records and rewrite views).
        document = json.loads(policy_document("verify", bucket, prefix))
        document["Statement"] = [s for s in document["Statement"] if s["Action"] != "s3:PutObject"]
        iam.create_user(UserName="readonly")
        iam.put_user_policy(UserName="readonly", PolicyName="readonly", PolicyDocument=json.dumps(document))
        key = iam.create_access_key(UserName="readonly")["AccessKey"]
        storages["readonly"] = dict(storages["verify"], access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
        yield storages, s3


def client_of(storage):
    return boto3.client("s3", endpoint_url=storage["endpoint_url"], region_name="us-east-1",
                        aws_access_key_id=storage["access_key"], aws_secret_access_key=storage["secret_key"])


def refused(call, **kwargs):
    """The error code S3 answers ``call`` with (None if it succeeds)."""
    try:
        call(**kwargs)
    except botocore.exceptions.ClientError as exc:
        return exc.response["Error"]["Code"]
    return None


def test_each_play_works_with_its_policy_alone_and_what_it_leaves_out_is_refused(iam_store, tmp_path, age_identity):
    storages, s3 = iam_store
    identity, recipient = age_identity
    site = tmp_path / "srv" / "site"
    site.mkdir(parents=True)
    (site / "index.html").write_text("version 1\n")
    (site / "media.bin").write_bytes(os.urandom(9 * 1024 * 1024))  # more than a part: a multipart upload
    backup = {"job": "site", "paths": [str(site)], "encryption": {"recipients": [recipient]}}
    prune = {"job": "site", "keep_last": 1, "keep_days": 1}
    day = {DAY1: {"COREBACKUP_NOW": DAY1 + "T02:00:00Z"}, DAY2: {"COREBACKUP_NOW": DAY2 + "T02:00:00Z"}}
    results, run = run_tasks(COLLECTIONS, [
        Task("files_backup", dict(backup, storage=storages["backup"]), day[DAY1]),
        Task("files_backup", dict(backup, storage=storages["backup"]), day[DAY2]),
        Task("backup_retention", dict(prune, storage=storages["backup"]), day[DAY2]),
        Task("backup_retention", dict(prune, storage=storages["prune"]), day[DAY2]),
        Task("backup_manifest", {"state": "verified", "all_jobs": True, "storage": storages["verify"]}),
        Task("backup_manifest", {"state": "query", "job": "site", "storage": storages["restore"]}),
        Task("backup_restore", {"job": "site", "identity_file": identity, "dest": str(tmp_path / "restored"),
                                "storage": storages["restore"]}),
        Task("backup_restore", {"job": "site", "state": "drill", "identity_file": identity, "storage": storages["restore"]}),
        Task("backup_restore", {"job": "site", "identity_file": identity, "dest": str(site.parent), "force": True,
                                "pre_restore_backup": True, "packing": {"encryption": {"recipients": [recipient]}},
                                "storage": storages["restore"]}),
        Task("files_backup", dict(backup, storage=storages["restore"])),
        Task("backup_manifest", {"state": "verified", "job": "site", "storage": storages["readonly"]}),
        Task("backup_restore", {"job": "site", "state": "drill", "identity_file": identity,
                                "storage": storages["readonly"]}),
    ])
    (first, second, backup_prunes, pruned, verified, query, restored, drilled, in_place, restore_backs_up,
     read_verified, read_drilled) = results
    output = run.stdout[-3000:]

    # backup: a new set (a multipart upload), then a set of the unchanged items.
    assert first["status"] == "success" and first["set_status"] == "success", first.get("msg", output)
    assert max(artifact["size"] for artifact in first["artifacts"]) > 8 * 1024 * 1024
    assert second["set_status"] == "success", second.get("msg", output)
    # The unchanged item is referenced by the new set, not copied: nothing to refuse, nothing uploaded again.
    assert [e["status"] for e in second["entries"]] == ["carried"], second["entries"]
    assert second["entries"][0]["key"] == first["entries"][0]["key"] and "/objects/" in first["entries"][0]["key"]
    assert not [w for w in second.get("warnings", []) if "could not carry" in w], second["warnings"]
    bucket, prefix = storages["backup"]["bucket"], storages["backup"]["prefix"]
    # ... it creates objects, but cannot replace one (a plain PUT, a multipart upload, a copy over it) nor delete
    # one; the artifact is intact.
    backup_s3, artifact = client_of(storages["backup"]), prefix + second["entries"][0]["key"]  # kept by prune
    original = s3.get_object(Bucket=bucket, Key=artifact)["Body"].read()
    assert refused(backup_s3.put_object, Bucket=bucket, Key=artifact, Body=b"ransom") == "AccessDenied"
    assert refused(backup_s3.put_object, Bucket=bucket, Key=artifact, Body=b"ransom", IfNoneMatch="*") == "PreconditionFailed"
    upload = backup_s3.create_multipart_upload(Bucket=bucket, Key=artifact)["UploadId"]  # parts: no object yet
    part = backup_s3.upload_part(Bucket=bucket, Key=artifact, UploadId=upload, PartNumber=1, Body=b"ransom")
    assert refused(backup_s3.complete_multipart_upload, Bucket=bucket, Key=artifact, UploadId=upload,
                   MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}) == "AccessDenied"
    backup_s3.abort_multipart_upload(Bucket=bucket, Key=artifact, UploadId=upload)
    assert refused(backup_s3.copy_object, Bucket=bucket, Key=artifact, CopySource={"Bucket": bucket, "Key": artifact},
                   MetadataDirective="REPLACE") == "AccessDenied"
    assert refused(backup_s3.delete_object, Bucket=bucket, Key=artifact) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key=artifact)["Body"].read() == original
    assert refused(backup_s3.put_object, Bucket=bucket, Key=prefix + "site/new-object", Body=b"x", IfNoneMatch="*") is None
    s3.delete_object(Bucket=bucket, Key=prefix + "site/new-object")
    # ... but it cannot prune: not even the deletion record (which would hide the set from every reader) is
    # written, the refusal is named, and nothing goes.
    assert backup_prunes["failed"], backup_prunes
    assert "nothing was deleted: the deletion record of %s could not be written" % DAY1 in backup_prunes["msg"]
    assert "AccessDenied" in backup_prunes["msg"], backup_prunes["msg"]
    assert refused(backup_s3.put_object, Bucket=bucket, Key=prefix + "site/deletions/x.%s.json" % DAY1, Body=b"{}",
                   IfNoneMatch="*") == "AccessDenied"
    # prune: the same policy with the prune user's keys deletes the old set, but not the object the kept set references.
    assert not pruned.get("failed") and pruned["errors"] == [] and [s["date"] for s in pruned["deleted"]] == [DAY1], pruned
    assert pruned["objects"]["referenced"] == 1 and pruned["objects"]["blocked"] is None, pruned["objects"]
    # verify: reads every artifact and records it.
    assert not verified.get("failed"), verified.get("msg")
    # restore: lists, restores into a new folder, drills (recorded), and an in-place restore backs up what it replaces.
    assert [s["date"] for s in query["sets"]] == [DAY2], query
    assert (tmp_path / "restored" / "site" / "index.html").read_text() == "version 1\n"
    assert (tmp_path / "restored" / "site" / "media.bin").read_bytes() == (site / "media.bin").read_bytes()
    assert drilled["drill"]["result"] == "ok", drilled
    assert in_place["pre_restore"]["status"] == "success" and in_place["pre_restore"]["job"] == "site-pre-restore", in_place
    # ... but it cannot write into a job's sets (it may take the job's lease, which a volume restore holds).
    assert restore_backs_up["failed"] and "cannot write s3://%s/%ssite/" % (bucket, prefix) in restore_backs_up["msg"]
    assert "(AccessDenied) when calling the CreateMultipartUpload operation" in restore_backs_up["msg"], restore_backs_up["msg"]

    # A user that may only read verifies and drills all the same: the results are returned, with a warning that
    # they could not be recorded (nothing was written).
    assert not read_verified.get("failed") and {v["status"] for v in read_verified["verified"]} == {"ok"}, read_verified
    assert not read_drilled.get("failed") and read_drilled["drill"]["result"] == "ok", read_drilled.get("msg")
    for result, what in ((read_verified, "verification"), (read_drilled, "drill")):
        assert any("the %s was done" % what in w and "not recorded" in w and "AccessDenied" in w
                   for w in result.get("warnings", [])), result.get("warnings")

    # Every run released its lease by a record of its own (none deleted: the first is still there), and the store
    # holds what the plays made.
    keys = [o["Key"][len(prefix):] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    leases = sorted(key for key in keys if key.startswith("site/leases/"))
    # taken and released by the two backups and by the restore user's backup that failed
    assert leases[0] == "site/leases/%012d.json" % 1 and len(leases) >= 2 * 3, leases
    newest = json.loads(s3.get_object(Bucket=bucket, Key=prefix + leases[-1])["Body"].read())
    assert newest["state"] == "released", newest
    assert not [key for key in keys if key.endswith((".lease", ".write-probe"))], keys
    folders = sorted({key.split("/")[0] + "/" + key.split("/")[1] for key in keys if "/leases/" not in key})
    pre_restore_sets = [f for f in folders if re.match(r"^site-pre-restore/\d{4}-\d{2}-\d{2}$", f)]
    assert in_place["pre_restore"]["artifacts"][0].startswith("site-pre-restore/objects/")
    # The sets, their shared objects (the site's artifact of DAY1 is kept: DAY2 references it), and the prune's record.
    assert len(pre_restore_sets) == 1 and folders == sorted(pre_restore_sets + [
        "site-pre-restore/objects", "site/" + DAY2, "site/deletions", "site/objects"]), folders
    [deletion] = [key for key in keys if key.startswith("site/deletions/")]  # the prune's record of the set it deleted
    assert deletion.endswith(".%s.json" % DAY1) and pruned["deletion_records"] == [deletion], pruned
