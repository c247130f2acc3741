"""One run of the collection's pipeline (tar + compression + sha256 + filesystem store), in its own process.

    python _pipeline_once.py TREE STORE COMPRESSION LEVEL [THREADS]

Prints a JSON line: seconds, stored size, sha256, peak RSS (VmHWM). Used by bench_pipeline.py so that each
run's peak RSS is its own.
"""
from __future__ import annotations

import json
import sys
import time

from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter, tar_stream
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend


def main() -> None:
    tree, store, compression, level = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else None
    writer = ArtifactWriter(FilesystemBackend(store), compression, level, threads=threads)
    started = time.perf_counter()
    artifact = writer.store("bench", "tree", "tar", tar_stream(tree))
    seconds = time.perf_counter() - started
    with open("/proc/self/status", encoding="ascii") as status:
        peak_kb = int([line.split()[1] for line in status if line.startswith("VmHWM:")][0])
    print(json.dumps({"seconds": seconds, "size": artifact.size, "sha256": artifact.sha256, "key": artifact.key,
                      "max_rss_bytes": peak_kb * 1024}))


if __name__ == "__main__":
    main()
