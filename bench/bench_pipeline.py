# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: files_backup on one tree against the shell pipelines a careful operator writes, in the same run.

    module:    files_backup, one path, default options but compression and compression_level (so the
               default parallel: 4 and compression_threads), as Ansible runs it: its own process, its
               arguments in a file; tar + compression + sha256 + filesystem store, checksum record
    gzip:      tar -cf - DIR | pigz -L | tee OUT | sha256sum
    zstd:      tar -cf - DIR | zstd -L -T0 | tee OUT | sha256sum

All read the same generated tree (1 GB: a third random bytes, a third base64 text, a third words), warm in
the page cache, and run alternately; the medians give the throughput ratio (baseline seconds /
module seconds, wall time of the whole process, so > 1 means the module is faster). Peak RSS (VmHWM)
of the pipeline alone (``_pipeline_once.py``, ArtifactWriter with every core) is measured for every
compression at two input sizes, to show that memory stays flat.

Targets: gzip -1 >= 1.0x pigz -1 and zstd -1 >= 1.2x zstd -1 -T0 through the module with default options
(issue 20); gzip -6 >= 1.0x pigz -6 and zstd -3 >= 1.2x zstd -3 -T0 (issue 16); peak RSS < 100 MB for
every compression at 100 MB and at 2 GB.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from ansible_collections.corebackup.backup.bench._report import emit, run_module

HERE = os.path.dirname(os.path.abspath(__file__))
MB = 1000 * 1000


def generate_tree(root: str, total: int, seed: int = 1) -> int:
    """A deterministic tree of files of 64 KiB to 1 MiB; returns the bytes written."""
    rng = random.Random(seed)
    letters = b"abcdefghijklmnopqrstuvwxyz"
    words = [bytes(rng.choices(letters, k=rng.randint(2, 10))) for _word in range(5000)]
    written = index = 0
    while written < total:
        folder = os.path.join(root, "d%03d" % (index // 100))
        os.makedirs(folder, exist_ok=True)
        size = rng.randint(64 * 1024, 1024 * 1024)
        kind = index % 3
        if kind == 0:
            data = rng.randbytes(size)
        elif kind == 1:
            data = base64.b64encode(rng.randbytes(size * 3 // 4))
        else:
            text = bytearray()
            while len(text) < size:
                text += b" ".join(rng.choices(words, k=12)) + b"\n"
            data = bytes(text[:size])
        with open(os.path.join(folder, "f%05d.bin" % index), "wb") as handle:
            handle.write(data)
        written += len(data)
        index += 1
    return written


def ensure_tree(cache: str, total: int) -> str:
    root = os.path.join(cache, "tree-%dMB" % (total // MB))
    marker = root + ".done"
    if not os.path.exists(marker):
        shutil.rmtree(root, ignore_errors=True)
        generate_tree(root, total)
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write("ok")
    # Warm the page cache so that both contenders read from memory.
    subprocess.run(["tar", "-cf", "/dev/null", root], check=True)
    return root


BASELINES = {"gzip": "pigz -%d", "zstd": "zstd -q -%d -T0"}
CONTENDERS = [("gzip", 1), ("gzip", 6), ("zstd", 1), ("zstd", 3)]
TARGETS = {"gzip": 1.0, "zstd": 1.2}


def run_baseline(tree: str, out_dir: str, compression: str, level: int) -> dict:
    out = os.path.join(out_dir, "baseline.tar.x")
    command = "tar -cf - %s | %s | tee %s | sha256sum" % (tree, BASELINES[compression] % level, out)
    started = time.perf_counter()
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    size = os.path.getsize(out)
    os.unlink(out)
    return {"seconds": seconds, "size": size, "sha256": result.stdout.split()[0]}


def run_files_backup(tree: str, out_dir: str, compression: str, level: int) -> dict:
    """files_backup of the tree as one path, with default options but the compression."""
    store = os.path.join(out_dir, "store")
    args = {"paths": [tree], "job": "bench", "storage": {"type": "filesystem", "path": store},
            "compression": compression, "compression_level": level}
    run = run_module("files_backup", args, out_dir)
    [entry] = run.result["entries"]
    assert entry["status"] == "backed_up", entry
    shutil.rmtree(store)
    return {"seconds": run.seconds, "module_seconds": run.result["totals"]["seconds"], "size": entry["size"],
            "budget": run.result["totals"]["budget"], "peak_rss_kb": run.peak_rss_kb}


def run_pipeline(tree: str, out_dir: str, compression: str, level: int) -> dict:
    store = os.path.join(out_dir, "store")
    result = subprocess.run([sys.executable, os.path.join(HERE, "_pipeline_once.py"), tree, store, compression, str(level)],
                            check=True, capture_output=True, text=True)
    shutil.rmtree(store)
    return json.loads(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "corebackup-bench"))
    parser.add_argument("--size-mb", type=int, default=1000, help="size of the tree the contenders race on")
    parser.add_argument("--only", choices=["gzip -1", "gzip -6", "zstd -1", "zstd -3"], action="append",
                        help="race only these (repeatable); the default races all four")
    parser.add_argument("--skip-rss", action="store_true", help="do not measure peak RSS")
    parser.add_argument("--small-mb", type=int, default=100, help="size of the small tree (RSS flatness)")
    parser.add_argument("--large-mb", type=int, default=2000, help="size of the large tree (RSS flatness)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--results", default=None, help="folder for a JSON copy of the results")
    args = parser.parse_args()

    os.makedirs(args.cache, exist_ok=True)
    race = ensure_tree(args.cache, args.size_mb * MB)
    tree_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _dirs, fs in os.walk(race) for f in fs)
    report: dict = {"tree_bytes": tree_bytes, "rounds": args.rounds, "cores": os.cpu_count(), "race": {}, "peak_rss_mb": {}}
    met = True
    with tempfile.TemporaryDirectory(dir=args.cache) as out_dir:
        for compression, level in CONTENDERS:
            if args.only and "%s -%d" % (compression, level) not in args.only:
                continue
            baseline, module = [], []
            for _round in range(args.rounds):
                baseline.append(run_baseline(race, out_dir, compression, level))
                module.append(run_files_backup(race, out_dir, compression, level))
            base_s = statistics.median(r["seconds"] for r in baseline)
            module_s = statistics.median(r["seconds"] for r in module)
            ratio = round(base_s / module_s, 3)
            met = met and ratio >= TARGETS[compression]
            report["race"]["%s -%d" % (compression, level)] = {
                "baseline": BASELINES[compression] % level,
                "baseline_seconds": [round(r["seconds"], 2) for r in baseline],
                "module_seconds": [round(r["seconds"], 2) for r in module],
                "module_own_seconds": [r["module_seconds"] for r in module],  # totals.seconds: without start-up
                "module_mb_per_s": round(tree_bytes / module_s / MB, 1),
                "throughput_ratio": ratio, "target": TARGETS[compression], "met": ratio >= TARGETS[compression],
                # For information: the module's own seconds, without Python's start-up and the imports.
                "ratio_without_start_up": round(base_s / statistics.median(r["module_seconds"] for r in module), 3),
                "compressed_bytes": {"module": module[0]["size"], "baseline": baseline[0]["size"]},
                "budget": module[0]["budget"],
                "module_peak_rss_mb": round(max(r["peak_rss_kb"] for r in module) * 1024 / MB, 1),
                "load_average_after": [round(load, 2) for load in os.getloadavg()],  # other work on the machine
            }
        for size_mb in () if args.skip_rss else (args.small_mb, args.large_mb):
            tree = ensure_tree(args.cache, size_mb * MB)
            for compression, level in CONTENDERS:
                peak = round(run_pipeline(tree, out_dir, compression, level)["max_rss_bytes"] / MB, 1)
                report["peak_rss_mb"]["%s -%d at %d MB" % (compression, level, size_mb)] = peak
                met = met and peak < 100
    return emit(report, args.results, "pipeline.json", met)


if __name__ == "__main__":
    sys.exit(main())
