# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The options every backup module shares, as one argument spec.

Documented once in ``plugins/doc_fragments/common.py``; a unit test keeps the two in step.
"""

from __future__ import annotations

import copy

from ansible.module_utils.basic import env_fallback

STORAGE_CLASSES = [
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER",
    "DEEP_ARCHIVE", "GLACIER_IR",
]

_COMMON_ARGUMENT_SPEC = dict(
    job=dict(type="str"),
    storage=dict(
        type="dict",
        required=True,
        options=dict(
            type=dict(type="str", required=True, choices=["filesystem", "s3"]),
            path=dict(type="path"),
            carry=dict(type="str", choices=["link", "copy"], default="link"),
            directory_mode=dict(type="raw", default="0700"),
            file_mode=dict(type="raw", default="0600"),
            bucket=dict(type="str"),
            prefix=dict(type="str", default=""),
            region=dict(type="str", fallback=(env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])),
            endpoint_url=dict(type="str", fallback=(env_fallback, ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])),
            access_key=dict(type="str", no_log=True, fallback=(env_fallback, ["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"])),
            secret_key=dict(type="str", no_log=True,
                            fallback=(env_fallback, ["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"])),
            session_token=dict(type="str", no_log=True, fallback=(env_fallback, ["AWS_SESSION_TOKEN"])),
            profile=dict(type="str", fallback=(env_fallback, ["AWS_PROFILE"])),
            validate_certs=dict(type="bool", default=True),
            upload_concurrency=dict(type="int", default=4),
            storage_class=dict(type="str", choices=STORAGE_CLASSES),
            sse=dict(type="str", choices=["AES256", "aws:kms"]),
            sse_kms_key_id=dict(type="str", no_log=False),
            metadata=dict(type="dict"),
            object_lock=dict(type="dict", options=dict(
                mode=dict(type="str", choices=["GOVERNANCE", "COMPLIANCE"], required=True),
                days=dict(type="int", required=True),
            )),
        ),
        required_if=[("type", "filesystem", ["path"]), ("type", "s3", ["bucket"])],
        mutually_exclusive=[("profile", "access_key")],
        required_by={"sse_kms_key_id": "sse"},
    ),
    retries=dict(
        type="dict",
        options=dict(
            attempts=dict(type="int", default=5),
            delay=dict(type="float", default=1.0),
            max_delay=dict(type="float", default=60.0),
        ),
    ),
)


_PACKING_ARGUMENT_SPEC = dict(
    compression=dict(type="str", choices=["gzip", "zstd", "none"], default="gzip"),
    compression_level=dict(type="int", default=6),
    compression_threads=dict(type="int"),
    encryption=dict(
        type="dict",
        options=dict(
            type=dict(type="str", choices=["age"], default="age"),
            recipients=dict(type="list", elements="str", required=True),
        ),
    ),
)


# What every service module (one artifact per item of a source) decides the same way.
_SERVICE_ARGUMENT_SPEC = dict(
    skip_existing=dict(type="bool", default=False),
    skip_unchanged=dict(type="bool", default=True),
    parallel=dict(type="int", default=4),
    fail_on_error=dict(type="bool", default=True),
    allow_empty=dict(type="bool", default=False),
    lock_timeout=dict(type="int", default=0),
    record=dict(type="bool", default=True),
)


def common_argument_spec(job_default: str | None = None, packing: bool = True) -> dict:
    """A fresh copy of the shared spec; ``job`` gets the calling module's default.

    ``packing`` adds compression and encryption and the service options (skip, parallel, fail), which
    only service modules, the modules that write artifacts, take.
    """
    spec = copy.deepcopy(_COMMON_ARGUMENT_SPEC)
    if packing:
        spec.update(copy.deepcopy(_PACKING_ARGUMENT_SPEC))
        spec.update(copy.deepcopy(_SERVICE_ARGUMENT_SPEC))
    if job_default is not None:
        spec["job"]["default"] = job_default
    return spec


# The collection's version, recorded in manifests (a unit test keeps it equal to galaxy.yml).
COLLECTION_VERSION = "0.1.0"
