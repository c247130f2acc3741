# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: what a week of daily backups stores, against what changed.

    source:    ITEMS folders of one file of ITEM_MB random bytes each (they do not compress), backed up by
               files_backup (one artifact per folder) once a day for DAYS simulated days (COREBACKUP_NOW); on
               CHANGED_DAYS of them one folder gets new content
    stores:    a filesystem store (bytes as `du` counts them: hard links once) and an S3 bucket (moto, run as a
               server on 127.0.0.1: the bytes of every object, as S3 bills them)
    baseline:  what must be stored at least: the first day's artifacts plus each changed artifact once
    then:      backup_retention keep_last 2: the bytes left, against the artifacts the two kept sets reference

Target: after DAYS days, each store holds at most 1.1x the baseline (artifacts stored once, referenced by every
set), and after retention, at most 1.1x what the kept sets reference; every kept set verifies.

    python bench/bench_storage_growth.py --results <dir>
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile

import boto3

from ansible_collections.corebackup.backup.bench._report import emit, run_module
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS, moto_s3

ITEMS, ITEM_MB, DAYS, CHANGED_DAYS = 20, 1, 7, (2, 4, 6)
START = datetime.datetime(2026, 3, 1, 2, 0, tzinfo=datetime.timezone.utc)


def at(day: int) -> dict:
    return {"COREBACKUP_NOW": (START + datetime.timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def filesystem_bytes(root: str) -> int:
    """Bytes of the store's files, each inode once (as du counts them)."""
    seen, total = set(), 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def bucket_bytes(client, bucket: str) -> int:
    return sum(item["Size"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
               for item in page.get("Contents", []))


def one_store(name: str, storage: dict, measure, sources: list, workdir: str) -> dict:
    baseline, days = 0, []
    for day in range(DAYS):
        if day in CHANGED_DAYS:
            with open(os.path.join(sources[day], "data.bin"), "wb") as handle:
                handle.write(os.urandom(ITEM_MB << 20))
        run = run_module("files_backup", {"job": "week", "storage": storage, "paths": sources, "compression": "none"},
                         workdir, env=at(day))
        baseline += sum(e["size"] for e in run.result["entries"] if e["status"] == "backed_up")
        days.append({"day": day, "stored_bytes": measure(), "backed_up": run.result["totals"]["backed_up"],
                     "carried": run.result["totals"]["carried"]})
    pruned = run_module("backup_retention", {"job": "week", "storage": storage, "keep_last": 2, "keep_days": 0,
                                             "min_keep": 2}, workdir, env=at(DAYS - 1))
    verified = run_module("backup_manifest", {"state": "verified", "job": "week", "storage": storage}, workdir,
                          env=at(DAYS - 1))
    referenced = sum(v["size"] for v in {v["key"]: v for v in verified.result["verified"]}.values())
    after = measure()
    return {"store": name, "days": days, "baseline_bytes": baseline, "stored_bytes": days[-1]["stored_bytes"],
            "ratio_to_baseline": round(days[-1]["stored_bytes"] / baseline, 3),
            "ratio_to_first_day": round(days[-1]["stored_bytes"] / days[0]["stored_bytes"], 3),
            "after_retention_bytes": after, "kept_sets_reference_bytes": referenced,
            "after_retention_ratio": round(after / referenced, 3),
            "verified_ok": bool(verified.result["verified"]) and {v["status"] for v in verified.result["verified"]} == {"ok"},
            "objects_deleted": pruned.result.get("objects", {}).get("deleted")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="cbgrowth-")
    try:
        sources = []
        for index in range(ITEMS):
            folder = os.path.join(workdir, "src", "item%02d" % index)
            os.makedirs(folder)
            with open(os.path.join(folder, "data.bin"), "wb") as handle:
                handle.write(os.urandom(ITEM_MB << 20))
            sources.append(folder)
        rows = []
        root = os.path.join(workdir, "store")
        os.makedirs(root)
        rows.append(one_store("filesystem", {"type": "filesystem", "path": root}, lambda: filesystem_bytes(root),
                              sources, workdir))
        with moto_s3(workdir) as moto:
            endpoint = "http://127.0.0.1:%d" % moto.port
            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                  aws_access_key_id=S3_TEST_CREDENTIALS["access_key"],
                                  aws_secret_access_key=S3_TEST_CREDENTIALS["secret_key"])
            client.create_bucket(Bucket="growth")
            storage = dict(type="s3", bucket="growth", endpoint_url=endpoint, **S3_TEST_CREDENTIALS)
            rows.append(one_store("s3", storage, lambda: bucket_bytes(client, "growth"), sources, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = {"items": ITEMS, "item_mb": ITEM_MB, "days": DAYS, "changed_days": list(CHANGED_DAYS), "stores": rows}
    met = all(r["ratio_to_baseline"] <= 1.1 and r["after_retention_ratio"] <= 1.1 and r["verified_ok"] for r in rows)
    return emit(report, args.results, "storage_growth.json", met)


if __name__ == "__main__":
    sys.exit(main())
