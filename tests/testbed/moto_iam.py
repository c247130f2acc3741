# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""moto's S3 and IAM server with IAM enforcement on, for the tests of the policies in docs/iam/.

moto serves the first ``INITIAL_NO_AUTH_ACTION_COUNT`` requests without authorization, then checks
every request against the policies of the IAM user whose access key signed it (moto's docs/iam.rst).
``moto_s3_iam()`` lets three requests through: those that create an administrator
(``bootstrap_admin()``), whose keys then create the bucket, the users and their policies.

One difference from S3 would make a policy pass here and fail on AWS, or the reverse: moto
authorizes DeleteObjects (``POST ?delete``) as ``s3:DeleteObject`` on the *bucket*, where S3 checks
``s3:DeleteObject`` on each key and lists the keys it refused in the answer's ``Errors``. Run as a
script, this file serves moto with each key of a DeleteObjects authorized as S3 does.
"""

from __future__ import annotations

import os
import sys

from ansible_collections.corebackup.backup.tests.testbed.services import LOOPBACK, Service, free_port, http_ready

BOOTSTRAP_REQUESTS = 3  # CreateUser, PutUserPolicy, CreateAccessKey of the administrator
ADMIN_POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'


def moto_s3_iam(log_dir: str) -> Service:
    """A moto server of its own that enforces IAM after ``BOOTSTRAP_REQUESTS`` requests."""
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(BOOTSTRAP_REQUESTS), MOTO_ALLOW_NONEXISTENT_REGION="true")
    return Service("moto-iam", [sys.executable, os.path.abspath(__file__), "-H", LOOPBACK, "-p", str(port)], port,
                   http_ready("http://%s:%d/moto-api/" % (LOOPBACK, port)), log_dir, env=env)


def bootstrap_admin(endpoint: str) -> dict:
    """The first requests of a fresh ``moto_s3_iam`` server: an administrator; its access key."""
    import boto3  # pylint: disable=import-outside-toplevel
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=ADMIN_POLICY)
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    return {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}


def _delete_keys_authorized_per_key(self, bucket_name, authenticated=True):  # pylint: disable=unused-argument
    """moto's S3Response._bucket_response_delete_keys, with ``s3:DeleteObject`` checked on each key as S3 does."""
    # pylint: disable=import-outside-toplevel,protected-access
    import xmltodict
    from moto.core.responses import ActionResult
    from moto.s3.exceptions import BucketAccessDeniedError, MalformedXML, S3AccessDeniedError

    objects = xmltodict.parse(self.body, strip_whitespace=False)["Delete"].get("Object", [])
    if not isinstance(objects, list):
        objects = [objects]
    if not objects:
        raise MalformedXML()
    allowed, errors = [], []
    for obj in objects:
        try:
            self._authenticate_and_authorize_s3_action(bucket_name=bucket_name, key_name=obj["Key"])
            allowed.append(obj)
        except (BucketAccessDeniedError, S3AccessDeniedError):
            errors.append({"Key": obj["Key"], "Code": "AccessDenied", "Message": "Access Denied"})
    bypass = self.headers.get("x-amz-bypass-governance-retention", "").lower() == "true"
    deleted, locked = self.backend.delete_objects(bucket_name, allowed, bypass) if allowed else ([], [])
    errors += [{"Key": key, "Code": "AccessDenied", "Message": "Access Denied because object protected by object lock."}
               for key in locked]
    self.data["Action"] = "DeleteObjects"
    return self.serialized(ActionResult({
        "Deleted": [{"Key": k, "VersionId": v or None, "DeleteMarkerVersionId": dv or None, "DeleteMarker": True if dv else None}
                    for k, v, dv in deleted],
        "Errors": errors,
    }))


def main() -> None:
    from moto import server  # pylint: disable=import-outside-toplevel
    from moto.s3.responses import S3Response  # pylint: disable=import-outside-toplevel
    S3Response._bucket_response_delete_keys = _delete_keys_authorized_per_key  # pylint: disable=protected-access
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
