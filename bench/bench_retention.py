# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: backup_retention on 100,000 objects of an S3 endpoint: API calls by operation, and wall time.

    store:     400 daily sets of one job, 250 objects each, laid out as the modules write them: 123 artifacts
               with their checksum records, two run records, manifest.json and SHA256SUMS (valid against the
               manifest schema); some sets partial, the newest one failed
    policy:    keep_days 14, keep_weekly 8, keep_monthly 12 (it deletes most sets)
    counted:   every request that reaches the S3 endpoint, through the fault proxy of the test bed
               (tests/testbed/s3_proxy.py, no fault injected), by S3 operation
    baseline:  one paginated ListObjectsV2 of the job with boto3, through the same proxy: what any
               retention tool must read at least

The endpoint is moto, run in this process (moto.server.ThreadedMotoServer on 127.0.0.1) so that the
100,000 objects are put straight into its store in seconds instead of minutes of PUTs; the module talks
to it over HTTP like to any S3 endpoint. The module runs as Ansible runs it (arguments in a file), in
check mode, for real, and again (nothing left to delete).

Targets: the sets deleted are exactly those the reference policy of the unit tests deletes, every object
of a kept set is still there with its ETag, nothing of a deleted set is left, and each deleted set has its
deletion record; the real run makes no more requests than one listing (one ListObjectsV2 per 1000 keys) and
one of the job's deletion records, one of its lease records and one of its shared objects (<job>/objects/, the
sweep), a GET of each set's run records (the items and shared objects they name) and of the previous release's
lease object, one DeleteObjects per 1000 keys, and one create-only write per deletion record and per lease record
(taken, released: PutObject, with the HeadObject before and after of the store's write path).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time

import boto3
import botocore.config
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

from ansible_collections.corebackup.backup.bench._report import emit, run_module
from ansible_collections.corebackup.backup.plugins.module_utils._manifest import run_key, sha256sums
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import Artifact
from ansible_collections.corebackup.backup.plugins.module_utils._records import dumps
from ansible_collections.corebackup.backup.plugins.module_utils._schema import SCHEMA_VERSION, VIEW_OMITS, schema_errors
from ansible_collections.corebackup.backup.plugins.module_utils._sets import set_status
from ansible_collections.corebackup.backup.tests.testbed.s3_proxy import S3Proxy
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS, free_port
from ansible_collections.corebackup.backup.tests.unit.plugins.module_utils.test_retention import reference

JOB = "bench"
BUCKET = "corebackup-bench-retention"
PREFIX = "store/"
NEWEST = datetime.date(2026, 6, 14)
POLICY = {"keep_days": 14, "keep_weekly": 8, "keep_monthly": 12}


def status_of(index: int) -> str:
    """The newest set failed (kept: newer than the newest successful one); every 29th is partial."""
    if index == 0:
        return "failed"
    return "partial" if index % 29 == 7 else "success"


def build_set(date: datetime.date, status: str, items: int) -> dict[str, bytes]:
    """{key: bytes} of one set as the modules lay it out; two runs, the second with ``status``."""
    prefix = "%s/%s/" % (JOB, date.isoformat())
    stamp = date.strftime("%Y%m%d")
    objects: dict[str, bytes] = {}
    runs = []
    halves = ((0, items // 2 + 1, "success", "host-a"), (items // 2 + 1, items, status, "host-b"))
    for number, (first, last, run_status, host) in enumerate(halves):
        artifacts = []
        for item in range(first, last):
            key = "%sitem-%03d_%sT02%02d00Z.tar.gz" % (prefix, item, stamp, number)
            data = ("artifact %s\n" % key).encode()
            artifact = Artifact(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest(), compression="gzip",
                                created="%sT02:%02d:00Z" % (date.isoformat(), number))
            objects[key] = data
            objects["%schecksums/%s.json" % (prefix, key.rsplit("/", 1)[1])] = (
                json.dumps(artifact.to_dict(), sort_keys=True) + "\n").encode()
            artifacts.append(artifact.to_dict())
        run = {"run_id": "run-%s-%d" % (stamp, number), "started": "%sT02:00:00Z" % date.isoformat(),
               "finished": "%sT03:%02d:00Z" % (date.isoformat(), number), "duration": 3600.0, "status": run_status,
               "source": {"type": "files", "name": host}, "artifacts": artifacts,
               "entries": [{"name": a["key"].rsplit("/", 1)[1].split("_")[0], "status": "backed_up", "key": a["key"],
                            "error": None} for a in artifacts],
               "counts": {"backed_up": len(artifacts)}, "warnings": [], "errors": [], "tools": {"corebackup.backup": "0.1.0"}}
        objects[run_key(date.isoformat(), JOB, run)] = dumps(run)
        runs.append(run)
    view_runs = [dict(run, artifacts=[{k: v for k, v in a.items() if k not in VIEW_OMITS} for a in run["artifacts"]])
                 for run in runs]  # as the view lists them (the run records hold the rest)
    manifest = {"schema_version": SCHEMA_VERSION, "job": JOB, "set_date": date.isoformat(), "status": set_status(runs),
                "runs": view_runs, "verified_at": None, "verification": {}}
    objects[prefix + "manifest.json"] = dumps(manifest)
    objects[prefix + "SHA256SUMS"] = sha256sums(manifest, prefix)
    return objects


def populate(sets: int, per_set: int) -> tuple[dict[datetime.date, str], dict[str, tuple[int, str]], float]:
    """Put the sets straight into moto's store: ({date: status}, {key: (size, etag)}, seconds)."""
    started = time.perf_counter()
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    assert BUCKET in backend.buckets, "the bucket was created through the endpoint under another account"
    items = (per_set - 4) // 2  # each with its checksum record; two run records, manifest.json, SHA256SUMS
    statuses, stored = {}, {}
    for index in range(sets):
        date = NEWEST - datetime.timedelta(days=index)
        statuses[date] = status_of(index)
        objects = build_set(date, statuses[date], items)
        assert len(objects) == per_set, len(objects)
        if index == 0:
            manifest = json.loads(objects["%s/%s/manifest.json" % (JOB, date.isoformat())])
            assert schema_errors(manifest) == [], schema_errors(manifest)[:3]
        for key, data in objects.items():
            backend.put_object(BUCKET, PREFIX + key, data, disable_notification=True)
            stored[key] = (len(data), hashlib.md5(data, usedforsecurity=False).hexdigest())
    return statuses, stored, time.perf_counter() - started


def listing(client) -> dict[str, tuple[int, str]]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX + JOB + "/"):
        for item in page.get("Contents", []):
            found[item["Key"][len(PREFIX):]] = (item["Size"], item["ETag"].strip('"'))
    return found


def by_operation(proxy: S3Proxy) -> dict[str, int]:
    return dict(sorted(collections.Counter(entry.operation for entry in proxy.log).items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=400)
    parser.add_argument("--objects-per-set", type=int, default=250)
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="cbretention-")
    port = free_port()
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        with S3Proxy(port) as proxy:
            config = botocore.config.Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"})
            credentials = dict(aws_access_key_id=S3_TEST_CREDENTIALS["access_key"], region_name="us-east-1",
                               aws_secret_access_key=S3_TEST_CREDENTIALS["secret_key"])
            direct = boto3.client("s3", endpoint_url="http://127.0.0.1:%d" % port, config=config, **credentials)
            counted = boto3.client("s3", endpoint_url=proxy.url, config=config, **credentials)
            direct.create_bucket(Bucket=BUCKET)
            statuses, stored, create_seconds = populate(args.sets, args.objects_per_set)
            total = len(stored)

            proxy.clear()
            started = time.perf_counter()
            assert len(listing(counted)) == total
            baseline_seconds = time.perf_counter() - started
            baseline_calls = by_operation(proxy)

            module_args = dict(POLICY, job=JOB, retries={"attempts": 3, "delay": 0.2, "max_delay": 2},
                               storage=dict(type="s3", bucket=BUCKET, prefix=PREFIX, endpoint_url=proxy.url,
                                            **S3_TEST_CREDENTIALS))
            runs = {}
            for name, extra in (("check_mode", {"_ansible_check_mode": True}), ("run", {}), ("rerun", {})):
                proxy.clear()
                run = run_module("backup_retention", dict(module_args, **extra), workdir)
                runs[name] = (run, by_operation(proxy))
            after = listing(direct)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    expected_kept = reference(list(statuses.items()), POLICY, False)
    run, calls = runs["run"]
    kept = {datetime.date.fromisoformat(entry["date"]) for entry in run.result["kept"]}
    deleted = {datetime.date.fromisoformat(entry["date"]) for entry in run.result["deleted"]}
    check_deleted = {entry["date"] for entry in runs["check_mode"][0].result["deleted"]}
    kept_keys = {key: value for key, value in stored.items() if datetime.date.fromisoformat(key.split("/")[1]) in kept}
    doomed = total - len(kept_keys)
    # Deletion records: one per deleted set, written before anything is deleted, and listed by every reader (one
    # more listing, of <job>/deletions/). Each is a create-only write of the store's write path: HEAD (exists?),
    # PUT, HEAD (verified).
    records = {key for key in after if key.startswith(JOB + "/deletions/")}
    leases = {key for key in after if key.startswith(JOB + "/leases/")}  # two per run that is not in check mode
    after = {key: value for key, value in after.items() if key not in records | leases}
    run_records = sum(1 for key in stored if "/runs/" in key)
    # The listing of <job>/ holds the lease record the run took; then deletions/, leases/ and objects/. One
    # GetBucketVersioning once something was deleted: on a versioned bucket the bytes would stay (bytes_hidden).
    minimum = {"ListObjectsV2": math.ceil((total + 1) / 1000) + 3, "GetObject": run_records + 1,
               "DeleteObjects": math.ceil(doomed / 1000), "PutObject": len(deleted) + 2,
               "HeadObject": 2 * (len(deleted) + 2), "GetBucketVersioning": 1}
    kept_runs = sum(1 for key in kept_keys if "/runs/" in key)
    correct = (kept == expected_kept and deleted == set(statuses) - expected_kept
               and check_deleted == {d.isoformat() for d in deleted} and after == kept_keys
               and sorted(key.rsplit(".", 2)[1] for key in records) == sorted(d.isoformat() for d in deleted))
    report = {
        "objects": total, "sets": len(statuses), "policy": POLICY,
        "sets_kept": len(kept), "sets_deleted": len(deleted), "objects_deleted": doomed,
        "bytes_freed": run.result["bytes_freed"],
        "create_seconds": round(create_seconds, 1),
        "baseline_list_seconds": round(baseline_seconds, 2), "baseline_calls": baseline_calls,
        "check_mode_seconds": round(runs["check_mode"][0].seconds, 2), "check_mode_calls": runs["check_mode"][1],
        "run_seconds": round(run.seconds, 2), "run_calls": calls, "run_api_requests_reported": run.result["api_requests"],
        "rerun_seconds": round(runs["rerun"][0].seconds, 2), "rerun_calls": runs["rerun"][1],
        "minimum_calls": minimum, "deletion_records": len(records),
        "list_ratio": round(baseline_seconds / runs["check_mode"][0].seconds, 3),
        "module_peak_rss_mb": round(max(r.peak_rss_kb for r, _c in runs.values()) * 1024 / 1e6, 1),
        "deletes_what_the_policy_says": correct,
        "wrong": {"kept_not_expected": sorted(d.isoformat() for d in kept - expected_kept),
                  "expected_not_kept": sorted(d.isoformat() for d in expected_kept - kept),
                  "objects_differing_after": len(set(after.items()) ^ set(kept_keys.items()))},
    }
    met = correct and calls == minimum and runs["rerun"][1] == {
        # the kept sets' run records, the previous release's lease object, the newest lease record (the first run's)
        "ListObjectsV2": math.ceil((len(kept_keys) + len(records) + 3) / 1000) + 3, "GetObject": kept_runs + 2,
        "PutObject": 2, "HeadObject": 4}
    return emit(report, args.results, "retention.json", met)


if __name__ == "__main__":
    sys.exit(main())
