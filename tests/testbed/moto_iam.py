# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""moto's S3 and IAM server with IAM enforcement on, for the tests of the policies in docs/iam/.

moto serves the first ``INITIAL_NO_AUTH_ACTION_COUNT`` requests without authorization, then checks
every request against the policies of the IAM user whose access key signed it (moto's docs/iam.rst).
``moto_s3_iam()`` lets three requests through: those that create an administrator
(``bootstrap_admin()``), whose keys then create the bucket, the users and their policies.

Two differences from S3 would make a policy pass here and fail on AWS, or the reverse; run as a script,
this file serves moto with both put right:
- moto authorizes DeleteObjects (``POST ?delete``) as ``s3:DeleteObject`` on the *bucket*, where S3 checks
  ``s3:DeleteObject`` on each key and lists the keys it refused in the answer's ``Errors``.
- moto checks a user's policies without the request's condition keys: a condition it cannot evaluate holds
  (an Allow with one acts unconditionally, a Deny with one always denies), and one that fails turns even an
  Allow into an explicit Deny. Here the conditional-write keys of S3 (``s3:if-none-match``, ``s3:if-match``
  and ``s3:ObjectCreationOperation``, see ``s3_condition_context``) are evaluated as IAM does, so that a
  policy may allow creating objects but not replacing them. Conditions on other keys stay as moto has them
  (ignored), and so do bucket policies, whose Deny statements moto checks with no request context at all.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import typing as t
import urllib.parse

from ansible_collections.corebackup.backup.tests.testbed.services import LOOPBACK, Service, free_port, http_ready

BOOTSTRAP_REQUESTS = 3  # CreateUser, PutUserPolicy, CreateAccessKey of the administrator
ADMIN_POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
CONDITION_KEYS = ("s3:if-none-match", "s3:if-match", "s3:ObjectCreationOperation")


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


class S3ConditionContext(dict):
    """The condition keys of one S3 request that this server evaluates (``CONDITION_KEYS``)."""


def s3_condition_context(action: str, method: str, path: str, headers: t.Mapping[str, str]) -> S3ConditionContext:
    """The conditional-write keys of an ``s3:PutObject`` request, as the S3 user guide describes them
    (conditional-writes-enforce): ``s3:ObjectCreationOperation`` is true for PutObject, CopyObject and
    CompleteMultipartUpload, false for CreateMultipartUpload, UploadPart and UploadPartCopy (which take no
    conditional header); ``s3:if-none-match`` and ``s3:if-match`` are the request's headers, when it has them."""
    context = S3ConditionContext()
    if action != "s3:PutObject":
        return context
    query = urllib.parse.parse_qs(urllib.parse.urlparse(path).query, keep_blank_values=True)
    if method == "POST":
        creation = "uploadId" in query  # CompleteMultipartUpload; ?uploads is CreateMultipartUpload
    else:
        creation = "partNumber" not in query  # UploadPart and UploadPartCopy carry a part number
    context["s3:ObjectCreationOperation"] = "true" if creation else "false"
    lowered = {name.lower(): value for name, value in headers.items()}
    for header in ("if-none-match", "if-match"):
        if creation and header in lowered:
            context["s3:" + header] = lowered[header]
    return context


def condition_holds(operator: str, expected: t.Any, actual: str | None) -> bool:
    """One condition key of a policy statement against the request's value (``None``: the request has no such
    key), as IAM evaluates it: any of the expected values matches; a missing key matches only ``Null: true``
    and the ``...IfExists`` operators."""
    values = [str(value) for value in (expected if isinstance(expected, list) else [expected])]
    if_exists = operator.endswith("IfExists")
    operator = operator[:-len("IfExists")] if if_exists else operator
    if operator == "Null":
        return any((actual is None) == (value.lower() == "true") for value in values)
    if actual is None:
        return if_exists
    if operator == "Bool":
        return actual.lower() in [value.lower() for value in values]
    if operator == "StringEquals":
        return actual in values
    if operator == "StringNotEquals":
        return actual not in values
    if operator == "StringLike":
        return any(fnmatch.fnmatchcase(actual, value) for value in values)
    raise ValueError("this test server does not evaluate the condition operator %s" % operator)


def _evaluate_s3_condition_keys() -> None:
    """Teach moto's IAM enforcement the ``CONDITION_KEYS`` of S3 requests signed by IAM users."""
    # pylint: disable=import-outside-toplevel,protected-access
    from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, PermissionResult, S3IAMRequest

    moto_check_conditions = IAMPolicyStatement._check_conditions
    moto_is_action_permitted = IAMPolicyStatement.is_action_permitted

    def check_conditions(self, incoming_condition_values):
        if not isinstance(incoming_condition_values, S3ConditionContext):
            return moto_check_conditions(self, incoming_condition_values)
        return all(condition_holds(operator, expected, incoming_condition_values.get(key))
                   for operator, block in (self._statement.get("Condition") or {}).items()
                   for key, expected in block.items() if key in CONDITION_KEYS)

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        result = moto_is_action_permitted(self, action, resource, principal, incoming_condition_values)
        if result == PermissionResult.DENIED and self._statement.get("Condition") and \
                not self._check_conditions(incoming_condition_values):
            return PermissionResult.NEUTRAL  # a statement whose condition does not hold does not apply
        return result

    def check_action_permitted(self, resource):
        context = s3_condition_context(self._action, self._method, self._path, self._headers)
        permitted = False
        for policy in self._access_key.collect_policies():
            result = IAMPolicy(policy).is_action_permitted(self._action, resource, None, context)
            if result == PermissionResult.DENIED:
                self._raise_access_denied()
            permitted = permitted or result == PermissionResult.PERMITTED
        if not permitted:
            self._raise_access_denied()

    IAMPolicyStatement._check_conditions = check_conditions
    IAMPolicyStatement.is_action_permitted = is_action_permitted
    S3IAMRequest.check_action_permitted = check_action_permitted


def main() -> None:
    from moto import server  # pylint: disable=import-outside-toplevel
    from moto.s3.responses import S3Response  # pylint: disable=import-outside-toplevel
    S3Response._bucket_response_delete_keys = _delete_keys_authorized_per_key  # pylint: disable=protected-access
    _evaluate_s3_condition_keys()
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
