# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: mongo_dump against a raw pymongo cursor read of the same collections, in the same run.

    module:    mongo_dump (the module process itself, as Ansible runs it): raw batches -> archive format ->
               gzip -1 -> sha256 -> filesystem store
    baseline:  the same collections read with Collection.find_raw_batches, bytes thrown away

The server is SecantusDB from the test bed (MongoDB-compatible, on 127.0.0.1), holding documents of
mixed shapes. The contenders alternate; the medians give the ratio (baseline seconds / module seconds).

Targets (issue 11): ratio >= 0.8; peak RSS of the module process reported (and < 100 MB).
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

import pymongo
from bson import Binary, Decimal128, ObjectId

from ansible_collections.corebackup.backup.bench._report import emit, run_module
from ansible_collections.corebackup.backup.tests.testbed.services import secantus

MB = 1000 * 1000


def load(client, documents):
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    shapes = {
        "orders": lambda n: {"_id": ObjectId(), "n": n, "total": Decimal128("%d.%02d" % (n, n % 100)),
                             "at": datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=n),
                             "items": [{"sku": rng.randrange(10 ** 6), "qty": rng.randrange(9)} for _i in range(4)]},
        "events": lambda n: {"n": n, "kind": rng.choice(words), "text": " ".join(rng.choices(words, k=30))},
        "blobs": lambda n: {"n": n, "data": Binary(rng.randbytes(600))},
    }
    for name, make in shapes.items():
        batch = []
        for n in range(documents // len(shapes)):
            batch.append(make(n))
            if len(batch) == 5000:
                client.bench[name].insert_many(batch)
                batch = []
        if batch:
            client.bench[name].insert_many(batch)
    return list(shapes)


def run_baseline(client, names):
    started = time.perf_counter()
    size = documents = 0
    for name in names:
        for batch in client.bench[name].find_raw_batches():
            size += len(batch)
    for name in names:
        documents += client.bench[name].estimated_document_count()
    return time.perf_counter() - started, size, documents


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=150000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    python = os.environ.get("SECANTUS_PYTHON") or os.path.join(os.getcwd(), ".venv-secantus", "bin", "python")
    workdir = tempfile.mkdtemp(prefix="cbmongo-")
    try:
        with secantus(python, workdir) as server:
            uri = "mongodb://127.0.0.1:%d/?directConnection=true" % server.port
            client = pymongo.MongoClient(uri)
            names = load(client, args.documents)
            module_args = {"uri": uri, "databases": ["bench"], "compression_level": 1,
                           "storage": {"type": "filesystem", "path": os.path.join(workdir, "store")}}
            baseline, module, rss = [], [], []
            for _round in range(args.rounds):
                seconds, size, documents = run_baseline(client, names)
                baseline.append(seconds)
                run = run_module("mongo_dump", module_args, workdir)
                seconds, dumped, peak = run.seconds, run.result["entries"][0]["documents"], run.peak_rss_kb
                module.append(seconds)
                rss.append(peak)
                shutil.rmtree(os.path.join(workdir, "store"))
                assert dumped == documents, (dumped, documents)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base_s, module_s = statistics.median(baseline), statistics.median(module)
    report = {
        "documents": documents, "bson_bytes": size, "rounds": args.rounds,
        "baseline_seconds": [round(s, 2) for s in baseline], "module_seconds": [round(s, 2) for s in module],
        "baseline_docs_per_s": round(documents / base_s), "module_docs_per_s": round(documents / module_s),
        "baseline_mb_per_s": round(size / base_s / MB, 1), "module_mb_per_s": round(size / module_s / MB, 1),
        "throughput_ratio": round(base_s / module_s, 3), "module_peak_rss_mb": round(max(rss) * 1024 / MB, 1),
        "module_rss_mb_per_round": [round(r * 1024 / MB, 1) for r in rss],
    }
    met = report["throughput_ratio"] >= 0.8 and report["module_peak_rss_mb"] < 100
    return emit(report, args.results, "mongo.json", met)


if __name__ == "__main__":
    sys.exit(main())
