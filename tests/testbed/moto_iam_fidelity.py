# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where ``moto_iam.py``'s server answers as S3 with IAM does, and where it does not (issue 24's spike).

Each check sends one request as an IAM user whose policy is shown, and prints moto's answer beside the answer
AWS documents. The checks marked ``relied on`` are what the create-only policies of issue 24 need from the
test server; the others are differences to keep in mind when a policy is written (no test may lean on them).
Run it after a moto upgrade: it exits 1 when a check that is relied on answers otherwise.

    PYTHONPATH=<build>/collections python -m ansible_collections.corebackup.backup.tests.testbed.moto_iam_fidelity
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid

import boto3
import botocore.config
import botocore.exceptions

from ansible_collections.corebackup.backup.tests.testbed.moto_iam import bootstrap_admin, moto_s3_iam

CONFIG = botocore.config.Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"})
OK, DENIED, PRECONDITION = "OK", "403 AccessDenied", "412 PreconditionFailed"


def answer(call) -> str:
    try:
        call()
        return OK
    except botocore.exceptions.ClientError as exc:
        return "%s %s" % (exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"].get("Code"))


class Fidelity:
    def __init__(self, endpoint: str):
        admin = bootstrap_admin(endpoint)
        self.session = {"endpoint_url": endpoint, "region_name": "us-east-1", "config": CONFIG}
        credentials = {"aws_access_key_id": admin["access_key"], "aws_secret_access_key": admin["secret_key"]}
        self.admin = boto3.client("s3", **credentials, **self.session)
        self.iam = boto3.client("iam", **credentials, **self.session)
        self.bucket = "fidelity-" + uuid.uuid4().hex[:8]
        self.arn = "arn:aws:s3:::" + self.bucket
        self.admin.create_bucket(Bucket=self.bucket)
        self.failed: list[str] = []

    def user(self, name: str, statements: list[dict]):
        self.iam.create_user(UserName=name)
        self.iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return boto3.client("s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                            **self.session)

    def check(self, label: str, call, aws: str, relied_on: bool = False) -> None:
        self.report(label, answer(call), aws, relied_on)

    def report(self, label: str, got: str, aws: str, relied_on: bool = False) -> None:
        if relied_on and got != aws:
            self.failed.append(label)
        mark = "relied on" if relied_on else ""
        print("  %-74s moto %-24s AWS %-24s %s" % (label, got, aws, mark), flush=True)

    def existing(self, key: str = "existing", body: bytes = b"v1") -> str:
        self.admin.put_object(Bucket=self.bucket, Key=key, Body=body)
        return key

    def create_only(self) -> None:
        print("A user allowed s3:PutObject only with Null {s3:if-none-match: false}, and for parts with Bool "
              "{s3:ObjectCreationOperation: false}; s3:AbortMultipartUpload; no s3:DeleteObject")
        bucket, objects = self.bucket, self.arn + "/*"
        s3 = self.user("create-only", [
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": objects},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": objects,
             "Condition": {"Null": {"s3:if-none-match": "false"}}},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": objects,
             "Condition": {"Bool": {"s3:ObjectCreationOperation": "false"}}},
            {"Effect": "Allow", "Action": "s3:AbortMultipartUpload", "Resource": objects}])
        self.check("PutObject(IfNoneMatch='*'), a new key", lambda: s3.put_object(
            Bucket=bucket, Key="new", Body=b"x", IfNoneMatch="*"), OK, True)
        self.check("PutObject(IfNoneMatch='*'), an existing key", lambda: s3.put_object(
            Bucket=bucket, Key=self.existing(), Body=b"x", IfNoneMatch="*"), PRECONDITION, True)
        self.check("PutObject without If-None-Match, an existing key", lambda: s3.put_object(
            Bucket=bucket, Key=self.existing(), Body=b"x"), DENIED, True)
        self.check("PutObject(IfMatch=<its etag>), an existing key", lambda: s3.put_object(
            Bucket=bucket, Key=self.existing(), Body=b"x",
            IfMatch=self.admin.head_object(Bucket=bucket, Key="existing")["ETag"]), DENIED, True)
        part = os.urandom(5 * 1024 * 1024)

        def multipart(key: str, **conditions):
            upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=part)["ETag"]
            s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                         MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}, **conditions)

        self.check("multipart upload, CompleteMultipartUpload(IfNoneMatch='*'), a new key",
                   lambda: multipart("new-multipart", IfNoneMatch="*"), OK, True)
        self.check("... CompleteMultipartUpload(IfNoneMatch='*'), an existing key",
                   lambda: multipart(self.existing(), IfNoneMatch="*"), PRECONDITION, True)
        self.check("... CompleteMultipartUpload without If-None-Match, an existing key",
                   lambda: multipart(self.existing()), DENIED, True)
        uploads = self.admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        self.check("AbortMultipartUpload of the refused upload, without s3:DeleteObject", lambda: [
            s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]) for u in uploads], OK, True)
        self.check("DeleteObject", lambda: s3.delete_object(Bucket=bucket, Key=self.existing()), DENIED, True)
        self.check("CopyObject without If-None-Match (its ObjectCreationOperation is true)", lambda: s3.copy_object(
            Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": self.existing()}), DENIED, True)
        print("   (AWS: a CopyObject *with* If-None-Match under such a policy answers 501 NotImplemented; moto copies)")
        print("   existing after all this: %r" % self.admin.get_object(Bucket=bucket, Key="existing")["Body"].read())

    def other_actions(self) -> None:
        print("Actions and resources")
        bucket = self.bucket
        s3 = self.user("delete-no-abort", [{"Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"],
                                            "Resource": self.arn + "/*"}])
        upload = s3.create_multipart_upload(Bucket=bucket, Key="abort-me")["UploadId"]
        self.check("AbortMultipartUpload with s3:DeleteObject, without s3:AbortMultipartUpload", lambda: s3.abort_multipart_upload(
            Bucket=bucket, Key="abort-me", UploadId=upload), DENIED, True)
        self.admin.abort_multipart_upload(Bucket=bucket, Key="abort-me", UploadId=upload)
        s3 = self.user("leases", [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": self.arn + "/backups/*/leases/*"}])
        for key, aws in (("backups/site/leases/1.json", OK), ("backups/a/b/leases/1.json", OK),
                         ("backups/site/2026-01-01/leases.json", DENIED), ("backups/leases/1.json", DENIED)):
            self.check("Resource backups/*/leases/*: PutObject %s" % key, lambda key=key: s3.put_object(
                Bucket=bucket, Key=key, Body=b"x"), aws, True)
        s3 = self.user("wildcards", [{"Effect": "Allow", "Action": "s3:PutObject",
                                      "Resource": [self.arn + "/q/job?/x", self.arn + "/d/.lease"]}])
        self.check("Resource q/job?/x ('?' is one character): PutObject q/jobA/x", lambda: s3.put_object(
            Bucket=bucket, Key="q/jobA/x", Body=b"x"), OK)
        self.check("Resource d/.lease ('.' is a dot): PutObject d/Xlease", lambda: s3.put_object(
            Bucket=bucket, Key="d/Xlease", Body=b"x"), DENIED)
        s3 = self.user("not-resource", [{"Effect": "Allow", "Action": "s3:DeleteObject", "NotResource": self.arn + "/keep/*"}])
        self.check("Allow s3:DeleteObject with NotResource keep/*: DeleteObject keep/x", lambda: s3.delete_object(
            Bucket=bucket, Key=self.existing("keep/x")), DENIED)
        s3 = self.user("copy-no-read", [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": self.arn + "/dst/*"}])
        self.check("CopyObject without s3:GetObject on the source", lambda: s3.copy_object(
            Bucket=bucket, Key="dst/x", CopySource={"Bucket": bucket, "Key": self.existing()}), DENIED)

    def bucket_policy(self) -> None:
        print("A bucket policy (moto checks its Deny statements itself, with no condition keys)")
        bucket, objects = self.bucket, self.arn + "/*"
        s3 = self.user("writer", [{"Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                                   "Resource": objects}])
        upload = s3.create_multipart_upload(Bucket=bucket, Key="abort-me")["UploadId"]
        doomed = self.existing("bp-existing")  # before the policy, which denies the administrator too
        self.admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": objects,
             "Condition": {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": objects}]}))
        self.check("Deny PutObject unless If-None-Match: PutObject(IfNoneMatch='*'), a new key", lambda: s3.put_object(
            Bucket=bucket, Key="bp-new", Body=b"x", IfNoneMatch="*"), OK)
        self.check("Deny s3:DeleteObject: AbortMultipartUpload", lambda: s3.abort_multipart_upload(
            Bucket=bucket, Key="abort-me", UploadId=upload), OK)
        deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": doomed}]})
        self.report("Deny s3:DeleteObject: DeleteObjects of one key (moto_iam.py checks each key's IAM only)",
                    "key in Errors" if deleted.get("Errors") else "key deleted", "key in Errors")
        self.admin.delete_bucket_policy(Bucket=bucket)


def main() -> int:
    with moto_s3_iam(tempfile.mkdtemp(prefix="moto-iam-fidelity-")) as service:
        fidelity = Fidelity("http://127.0.0.1:%d" % service.port)
        fidelity.create_only()
        fidelity.other_actions()
        fidelity.bucket_policy()
    if fidelity.failed:
        print("\nmoto_iam.py no longer answers as S3 where the policies rely on it: %s" % "; ".join(fidelity.failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
