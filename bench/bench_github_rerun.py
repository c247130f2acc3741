# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""github_backup alone on bench_github.py's organization: a first run, then N no-change reruns; JSON on stdout.

For comparing two releases of the collection on the same machine (run it from each one's tree, alternating):
100 repositories, 50 ms per answer, secondary limits on, a filesystem store, as in bench_github.py.

    PYTHONPATH=<collections> python bench/bench_github_rerun.py --reruns 5
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from ansible_collections.corebackup.backup.bench import bench_github as bench
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=3)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-github-rerun-")
    with GitHubStandIn(os.path.join(root, "github"), secondary_limits=True) as standin:
        bench.build_org(standin, os.path.join(root, "github"), 100, 1000)
        standin.latency = 0.05
        stage = bench.Stage(standin, bench.Operations(), secondary_limits=True)
        token = standin.add_token(token="github_pat_rerun_%s" % os.urandom(8).hex(), login="octocat")
        module = bench.module_args(standin, token, os.path.join(root, "store"), 0)
        first = stage(lambda: bench.module_run(module, root))
        reruns = [stage(lambda: bench.module_run(module, root)) for _rerun in range(args.reruns)]
    print(json.dumps({"first": first["seconds"], "reruns": [rerun["seconds"] for rerun in reruns],
                      "api_requests": [run["api_requests"] for run in [first] + reruns],
                      "git_requests": [run["git_requests"] for run in [first] + reruns]}))


if __name__ == "__main__":
    main()
