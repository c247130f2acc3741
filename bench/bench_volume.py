# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: volume_snapshot against tar of the volume's mount point, in the same run.

    module:    volume_snapshot (the module process itself, run as Ansible runs it, with its arguments
               in a file): Docker's archive API -> re-tar -> gzip -1 -> sha256 -> filesystem store
    baseline:  tar -C <the volume's mount point> -cf - . | gzip -1 | sha256sum   (needs root on the engine)

A Docker engine of the benchmark's own holds a volume of mixed files (a third random bytes, a third
base64 text, a third words), warm in the page cache; the contenders run alternately and the medians
give the ratio (baseline seconds / module seconds, > 1 means the module is faster). Peak RSS is the
module process's.

Targets (issue 10): ratio >= 0.9 at the same gzip level; peak RSS < 100 MB.
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
from ansible_collections.corebackup.backup.bench.bench_pipeline import MB, generate_tree
from ansible_collections.corebackup.backup.tests.testbed.services import build_busybox_image, dockerd


def run_baseline(mountpoint: str) -> float:
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", "tar -C %s -cf - . | gzip -1 | sha256sum" % mountpoint], check=True,
                   capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    import docker  # pylint: disable=import-outside-toplevel

    root = tempfile.mkdtemp(prefix="cbbench-", dir="/tmp")
    try:
        with dockerd(root, root) as engine:
            client = docker.DockerClient(base_url="unix://" + engine.socket, version="auto")
            image = build_busybox_image(client)
            volume = client.volumes.create("bench-volume")
            mountpoint = volume.attrs["Mountpoint"]
            tree_bytes = generate_tree(mountpoint, args.size_mb * MB)
            subprocess.run(["tar", "-C", mountpoint, "-cf", "/dev/null", "."], check=True)  # warm the page cache
            module_args = {"docker_host": "unix://" + engine.socket, "volumes": ["bench-volume"], "helper_image": image,
                           "compression_level": 1, "storage": {"type": "filesystem", "path": os.path.join(root, "store")}}
            baseline, module, rss = [], [], []
            for _round in range(args.rounds):
                baseline.append(run_baseline(mountpoint))
                run = run_module("volume_snapshot", module_args, root)
                module.append(run.seconds)
                rss.append(run.peak_rss_kb)
                shutil.rmtree(os.path.join(root, "store"))
            for container in client.containers.list(all=True):
                container.remove(force=True)
            client.volumes.prune()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base_s, module_s = statistics.median(baseline), statistics.median(module)
    peak_mb = max(rss) * 1024 / MB
    report = {
        "volume_bytes": tree_bytes, "rounds": args.rounds,
        "baseline_seconds": [round(s, 2) for s in baseline], "module_seconds": [round(s, 2) for s in module],
        "baseline_mb_per_s": round(tree_bytes / base_s / MB, 1), "module_mb_per_s": round(tree_bytes / module_s / MB, 1),
        "throughput_ratio": round(base_s / module_s, 3), "module_peak_rss_mb": round(peak_mb, 1),
    }
    met = report["throughput_ratio"] >= 0.9 and peak_mb < 100
    return emit(report, args.results, "volume.json", met)


if __name__ == "__main__":
    sys.exit(main())
