# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: github_backup against the seeds' approach, on the GitHub stand-in, in the same run.

    seeds:    for each repository, sequentially: git clone --mirror URL; tar czf OUT.tar.gz DIR
    module:   corebackup.backup.github_backup through ansible-playbook, parallel 4, default exports
              (mirror, wiki, issues, pull requests with reviews, releases, labels, milestones)
    rerun:    the module again with nothing changed upstream

Targets (issue 3): seeds seconds / module seconds >= 3; module seconds / rerun seconds >= 20.
API requests of each module run are counted on the stand-in.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from ansible_collections.corebackup.backup.bench._report import emit
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn

ORG = "bench"


def seeds_approach(standin, token, names, workdir):
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
               GIT_CONFIG_VALUE_0="Authorization: Bearer " + token)
    started = time.perf_counter()
    for name in names:
        target = os.path.join(workdir, name + ".git")
        subprocess.run(["git", "clone", "--mirror", "--quiet", standin.git_url(ORG, name), target], check=True, env=env)
        subprocess.run(["tar", "czf", target + ".tar.gz", "-C", workdir, name + ".git"], check=True)
        shutil.rmtree(target)
    return time.perf_counter() - started


def _cpu_seconds():
    children, own = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime


def clone_cpu(standin, token, names, workdir):
    """CPU seconds of one git clone --mirror, client and server (git-http-backend and the stand-in) together.

    Every backup has to clone each repository once, so N clones / cores bounds any approach's wall time
    from below when the server shares the machine, as it does here.
    """
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
               GIT_CONFIG_VALUE_0="Authorization: Bearer " + token)
    client = 0.0
    before = _cpu_seconds()
    for name in names:
        target = os.path.join(workdir, name + ".git")
        with subprocess.Popen(["git", "clone", "--mirror", "--quiet", standin.git_url(ORG, name), target], env=env) as proc:
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit("git clone of %s failed" % name)
        client += usage.ru_utime + usage.ru_stime
        shutil.rmtree(target)
    total = _cpu_seconds() - before
    return client / len(names), total / len(names)


def module_run(collections, standin, token, store, parallel):
    standin.reset_log()
    started = time.perf_counter()
    run = run_module(collections, "github_backup", {
        "organization": ORG, "token": token, "api_url": standin.api_url, "parallel": parallel,
        "storage": {"type": "filesystem", "path": store}, "compression_level": 6,
    })
    seconds = time.perf_counter() - started
    if run.failed:
        raise SystemExit("github_backup failed: %s" % run.result.get("msg"))
    return seconds, run.result["totals"], standin.count(kind="rest"), standin.count(kind="git")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--collections", default=os.environ.get("ANSIBLE_COLLECTIONS_PATH"))
    parser.add_argument("--results", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="corebackup-bench-github-") as root:
        with GitHubStandIn(os.path.join(root, "github")) as standin:
            token = standin.add_token(login="octocat")
            facts = github_fixtures.build_many(standin, ORG, os.path.join(root, "github"), count=args.repositories)
            names = sorted(facts)
            seeds_dir = os.path.join(root, "seeds")
            os.makedirs(seeds_dir)
            seeds = seeds_approach(standin, token, names, seeds_dir)
            client_cpu, clone_total_cpu = clone_cpu(standin, token, names[:40], seeds_dir)
            store = os.path.join(root, "store")
            first, first_totals, first_rest, first_git = module_run(args.collections, standin, token, store, args.parallel)
            rerun, rerun_totals, rerun_rest, rerun_git = module_run(args.collections, standin, token, store, args.parallel)

    report = {
        "repositories": len(names), "parallel": args.parallel,
        "seeds_seconds": round(seeds, 2), "module_first_seconds": round(first, 2), "module_rerun_seconds": round(rerun, 2),
        "speedup_vs_seeds": round(seeds / first, 2), "rerun_speedup": round(first / rerun, 2),
        # The module's own time, without ansible-playbook's start-up (about 2.5 s a run here).
        "module_first_seconds_inside": first_totals["seconds"], "module_rerun_seconds_inside": rerun_totals["seconds"],
        "speedup_vs_seeds_inside": round(seeds / first_totals["seconds"], 2),
        "rerun_speedup_inside": round(first_totals["seconds"] / rerun_totals["seconds"], 2),
        # Lower bound of any backup's wall time here: one clone per repository, spread over every core.
        "clone_cpu_ms": {"client": round(client_cpu * 1000, 1), "client_and_server": round(clone_total_cpu * 1000, 1)},
        "cores": os.cpu_count(),
        "best_possible_speedup_vs_seeds": round(seeds / (len(names) * clone_total_cpu / os.cpu_count()), 2),
        "first_run": {"backed_up": first_totals["backed_up"], "rest_requests": first_rest, "git_requests": first_git},
        "rerun": {"unchanged": rerun_totals["unchanged"], "rest_requests": rerun_rest,
                  "rest_answered_304": rerun_totals["api_not_modified"], "git_requests": rerun_git},
    }
    return emit(report, args.results, "github.json", report["speedup_vs_seeds"] >= 3 and report["rerun_speedup"] >= 20)


if __name__ == "__main__":
    sys.exit(main())
