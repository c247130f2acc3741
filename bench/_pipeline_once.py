"""One run of the collection's pipeline (tar + gzip + sha256 + filesystem store), in its own process.

Prints a JSON line: seconds, stored size, sha256, peak RSS. Used by bench_pipeline.py so that each
run's peak RSS is its own.
"""
from __future__ import annotations

import json
import resource
import sys
import time

from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter, tar_stream
from ansible_collections.corebackup.backup.plugins.module_utils._storage import FilesystemBackend


def main() -> None:
    tree, store, level = sys.argv[1], sys.argv[2], int(sys.argv[3])
    writer = ArtifactWriter(FilesystemBackend(store), "gzip", level)
    started = time.perf_counter()
    artifact = writer.store("bench", "tree", "tar", tar_stream(tree))
    seconds = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds, "size": artifact.size, "sha256": artifact.sha256, "key": artifact.key,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
