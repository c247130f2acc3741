# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: peak RSS of the module process does not grow with the size of what it reads.

Each row runs one module at two sizes, ten times apart, and reads the module process's own peak RSS (VmHWM):

    github_graphql, github_rest:  github_backup on one repository of the GitHub stand-in holding SMALL and LARGE
                                  issues (0 to 3 comments each, every 50th with 25: more than one nested page), default
                                  exports, api_mode graphql / rest; the stand-in answers at once (latency 0) with its
                                  limits raised, the module paces itself as against GitHub (its own scheduler)
    retention:                    backup_retention (keep_days 14, keep_weekly 8, keep_monthly 12) on a job of SMALL and
                                  LARGE objects of an S3 endpoint (moto, in this process), laid out as the modules write
                                  sets (250 objects a set: 123 artifacts, their checksum records, run records, manifest,
                                  SHA256SUMS); it deletes most sets
    catalog:                      files_backup of one small folder into a job of SMALL and LARGE objects (the same sets,
                                  123 items a day): the runner lists the job and finds the item's newest artifact

The baseline of each row is its own smaller size: the target (issue 20) is growth <= 15 MB for ten times the data,
and under 150 MB at the larger size. Sizes: ``--small`` and ``--large`` (10,000 and 100,000).
"""

from __future__ import annotations

import argparse
import datetime
import logging
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
from ansible_collections.corebackup.backup.bench.bench_retention import BUCKET, JOB, NEWEST, POLICY, PREFIX, build_set, status_of
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS, free_port

MB = 1024  # KiB in a MiB: VmHWM is in KiB
GROWTH_MB = 15
CEILING_MB = 150
OBJECTS_PER_SET = 250
ORG = "memory"


def github_row(api: str, sizes: tuple[int, int], root: str) -> dict:
    """github_backup on one repository of ``size`` issues, at each size."""
    runs = {}
    for size in sizes:
        folder = tempfile.mkdtemp(dir=root)
        with GitHubStandIn(os.path.join(folder, "github"), rate_limit=10 ** 9, graphql_rate_limit=10 ** 9) as standin:
            token = standin.add_token(login="memory-bot", orgs=[ORG])
            [name] = github_fixtures.build_many(standin, ORG, os.path.join(folder, "repos"), count=1, metadata=False,
                                                describe=False)
            made = github_fixtures.add_many_issues(standin, ORG, name, size, seed=size)
            started = time.perf_counter()
            run = run_module("github_backup", {
                "organization": ORG, "token": token, "api_url": standin.api_url, "api_mode": api,
                "storage": {"type": "filesystem", "path": os.path.join(folder, "store")}}, folder)
            entry = run.result["entries"][0]
            if entry["status"] != "backed_up" or entry["metadata"]["issues"] != size:
                raise RuntimeError("github_backup stored %s: %r" % (entry["status"], entry["metadata"]))
            runs[size] = {"issues": size, "comments": made["comments"], "peak_rss_mb": round(run.peak_rss_kb / MB, 1),
                          "seconds": round(time.perf_counter() - started, 1),
                          "requests": run.result["totals"]["api_requests"]}
        shutil.rmtree(folder, ignore_errors=True)
    return runs


class S3Store:
    """moto in this process (objects put straight into its store), reached by the modules over HTTP."""

    def __init__(self) -> None:
        self.port = free_port()
        os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                   aws_access_key_id=S3_TEST_CREDENTIALS["access_key"],
                                   aws_secret_access_key=S3_TEST_CREDENTIALS["secret_key"],
                                   config=botocore.config.Config(s3={"addressing_style": "path"}))

    def fill(self, bucket: str, objects: int) -> None:
        """``objects`` objects of daily sets (the newest on NEWEST), put straight into moto's store."""
        self.client.create_bucket(Bucket=bucket)
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        items = (OBJECTS_PER_SET - 4) // 2  # each with its checksum record; two run records, manifest, SHA256SUMS
        for index in range(objects // OBJECTS_PER_SET):
            date = NEWEST - datetime.timedelta(days=index)
            for key, data in build_set(date, status_of(index), items).items():
                backend.put_object(bucket, PREFIX + key, data, disable_notification=True)

    def storage(self, bucket: str) -> dict:
        return dict({"type": "s3", "bucket": bucket, "prefix": PREFIX, "endpoint_url": self.endpoint},
                    **S3_TEST_CREDENTIALS)

    def stop(self) -> None:
        self.server.stop()


def retention_row(store: S3Store, sizes: tuple[int, int], root: str) -> dict:
    runs = {}
    for size in sizes:
        bucket = "%s-%d" % (BUCKET, size)
        store.fill(bucket, size)
        run = run_module("backup_retention", dict(POLICY, job=JOB, storage=store.storage(bucket)), root)
        runs[size] = {"objects": size, "peak_rss_mb": round(run.peak_rss_kb / MB, 1), "seconds": round(run.seconds, 1),
                      "sets_deleted": len(run.result["deleted"]), "api_requests": run.result["api_requests"]}
    return runs


def catalog_row(store: S3Store, sizes: tuple[int, int], root: str) -> dict:
    source = os.path.join(root, "item-000")
    os.makedirs(source, exist_ok=True)
    with open(os.path.join(source, "data.txt"), "w", encoding="utf-8") as handle:
        handle.write("one small file\n")
    runs = {}
    for size in sizes:
        bucket = "%s-catalog-%d" % (BUCKET, size)
        store.fill(bucket, size)
        when = datetime.datetime.combine(NEWEST + datetime.timedelta(days=1), datetime.time(2))
        os.environ["COREBACKUP_NOW"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            run = run_module("files_backup", {"job": JOB, "paths": [source], "storage": store.storage(bucket)}, root)
        finally:
            del os.environ["COREBACKUP_NOW"]
        runs[size] = {"objects": size, "peak_rss_mb": round(run.peak_rss_kb / MB, 1), "seconds": round(run.seconds, 1),
                      "status": run.result["entries"][0]["status"]}
    return runs


def verdict(runs: dict, sizes: tuple[int, int]) -> dict:
    small, large = runs[sizes[0]]["peak_rss_mb"], runs[sizes[1]]["peak_rss_mb"]
    growth = round(large - small, 1)
    return {"runs": runs, "growth_mb": growth, "ratio": round(large / small, 2),
            "met": growth <= GROWTH_MB and large < CEILING_MB}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", help="folder for memory.json")
    parser.add_argument("--small", type=int, default=10000)
    parser.add_argument("--large", type=int, default=100000)
    parser.add_argument("--rows", default="github_graphql,github_rest,retention,catalog")
    options = parser.parse_args()
    sizes = (options.small, options.large)
    rows = options.rows.split(",")
    report: dict = {"sizes": list(sizes), "targets": {"growth_mb": GROWTH_MB, "ceiling_mb": CEILING_MB}}
    root = tempfile.mkdtemp(prefix="bench-memory-")
    try:
        for api in ("graphql", "rest"):
            if "github_" + api in rows:
                report["github_" + api] = verdict(github_row(api, sizes, root), sizes)
                print("github_%s: %r" % (api, report["github_" + api]), file=sys.stderr)
        if "retention" in rows or "catalog" in rows:
            store = S3Store()
            try:
                if "retention" in rows:
                    report["retention"] = verdict(retention_row(store, sizes, root), sizes)
                    print("retention: %r" % report["retention"], file=sys.stderr)
                if "catalog" in rows:
                    report["catalog"] = verdict(catalog_row(store, sizes, root), sizes)
                    print("catalog: %r" % report["catalog"], file=sys.stderr)
            finally:
                store.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    met = all(report[row]["met"] for row in report if isinstance(report[row], dict) and "met" in report[row])
    return emit(report, options.results, "memory.json", met)


if __name__ == "__main__":
    sys.exit(main())
