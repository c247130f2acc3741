# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: backup_restore of a 1 GB files artifact against tar -xzf of the same artifact, in the same run.

    module:    backup_restore (the module process, as Ansible runs it): read + sha256 check + gunzip +
               safe extraction into a staging folder + rename into place
    baseline:  tar -xzf ARTIFACT -C DEST   (no checksum check)

The artifact is made once by files_backup from a generated tree (a third random bytes, a third base64
text, a third words), warm in the page cache; the contenders alternate; the medians give the ratio
(baseline seconds / module seconds). Target (issue 13): ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from ansible_collections.corebackup.backup.bench._report import emit, run_module
from ansible_collections.corebackup.backup.bench.bench_pipeline import MB, ensure_tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "corebackup-bench"))
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    tree = ensure_tree(args.cache, args.size_mb * MB)
    with tempfile.TemporaryDirectory(dir=args.cache) as workdir:
        storage = {"type": "filesystem", "path": os.path.join(workdir, "store")}
        backup = run_module("files_backup", {"paths": [tree], "job": "bench", "storage": storage,
                                             "compression_level": 1}, workdir).result
        run_module("backup_manifest", {"result": backup, "storage": storage}, workdir)
        artifact = os.path.join(storage["path"], backup["artifacts"][0]["key"])
        subprocess.run(["cat", artifact], stdout=subprocess.DEVNULL, check=True)  # warm
        baseline, restored, rss = [], [], []
        for _round in range(args.rounds):
            dest = os.path.join(workdir, "baseline")
            os.makedirs(dest)
            started = time.perf_counter()
            subprocess.run(["tar", "-xzf", artifact, "-C", dest], check=True)
            baseline.append(time.perf_counter() - started)
            shutil.rmtree(dest)
            dest = os.path.join(workdir, "restored")
            run = run_module("backup_restore", {"job": "bench", "storage": storage, "dest": dest}, workdir)
            restored.append(run.seconds)
            rss.append(run.peak_rss_kb)
            shutil.rmtree(dest)
        size = backup["artifacts"][0]["size"]
    base_s, restore_s = statistics.median(baseline), statistics.median(restored)
    tree_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _dirs, fs in os.walk(tree) for f in fs)
    report = {"tree_bytes": tree_bytes, "artifact_bytes": size, "rounds": args.rounds,
              "baseline_seconds": [round(s, 2) for s in baseline], "restore_seconds": [round(s, 2) for s in restored],
              "baseline_mb_per_s": round(tree_bytes / base_s / MB, 1), "restore_mb_per_s": round(tree_bytes / restore_s / MB, 1),
              "throughput_ratio": round(base_s / restore_s, 3), "restore_peak_rss_mb": round(max(rss) * 1024 / MB, 1)}
    return emit(report, args.results, "restore.json", report["throughput_ratio"] >= 0.9)


if __name__ == "__main__":
    sys.exit(main())
