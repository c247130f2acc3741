# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: github_backup against python-github-backup and the original design's loop, on the GitHub stand-in.

One run, one organization (100 repositories by default, one of them with 1,000 issues, some with many comments;
every one with has_wiki, as GitHub makes new repositories, five with a wiki page), the stand-in answering every
request 50 ms late (REST, GraphQL and git alike), with GitHub's secondary rate limits on for the module and the
loop. python-github-backup runs without them (``--ghb-secondary-limits`` turns them on): it does not retry a
secondary-limit 403 and stops there, in the middle of the busy repository.

    ghb:         python-github-backup 0.65.1 (a venv of its own: GHB_PYTHON, `make bench` makes it), exports
                 comparable to github_backup's defaults: --repositories --bare --wikis --issues --issue-comments
                 --pulls --pull-comments --pull-reviews --releases --labels --milestones, and --incremental (on an
                 empty folder a full backup, recording the checkpoints of the next run); then its output packed per
                 repository (tar czf of each repository's folder, in its wall time). Fine-grained token (-f): the
                 stand-in reads a Basic header's password as the token, so the classic form TOKEN:x-oauth-basic
                 (-t) would be refused.
    loop:        the original design's loop: the REST listing, then for each repository, sequentially:
                 git clone --mirror URL; tar czf OUT.tar.gz DIR (no metadata)
    module:      corebackup.backup.github_backup (the module process, as Ansible runs it), default exports (mirror,
                 wiki, issues, pull requests with reviews, releases, labels, milestones), api_mode auto (GraphQL)
    rerun:       the module again, nothing changed upstream
    ghb rerun:   python-github-backup --incremental again on its own output, packed again

Every request is counted on the stand-in: API requests (REST + GraphQL), git requests, limit answers (403/429 to
API requests, and the stand-in's secondary-limit refusals). "Discovery" is the listing of the repositories: the
GraphQL Repositories queries, REST GET /orgs|users/{owner}/repos pages and GET /user.

Targets (issue 14): ghb / module first run >= 8 and module first run < loop; module first-run API requests <= 3
per repository; rerun API requests beyond discovery <= 10; ghb --incremental / module rerun >= 20; no limit answer
to the module.

Second phase (``--scale N``, 1,000 by default, 0 to skip): the module alone on N repositories and on 100, on a
stand-in with a lower latency (``--scale-latency``): wall time, requests, peak RSS (VmHWM) and peak open file
descriptors of the module process; memory should not grow with the number of repositories.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from ansible_collections.corebackup.backup.bench._report import emit, run_module_watched
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures, github_graphql
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module as run_playbook_module
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn

ORG = "bench"
MB = 1000 * 1000
# The collections folder holding the tree under test (bench/ imports from it, not from the checkout).
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(github_fixtures.__file__), *[os.pardir] * 5))

# python-github-backup always builds https:// URLs; this wrapper sends those for the stand-in over plain HTTP.
GHB_WRAPPER = '''
import sys, urllib.request
import github_backup.github_backup as gb
from github_backup.cli import main


class _HttpRequest(urllib.request.Request):
    def __init__(self, url, *args, **kwargs):
        if url.startswith("https://127.0.0.1:"):
            url = "http://" + url[len("https://"):]
        super().__init__(url, *args, **kwargs)


gb.Request = _HttpRequest
sys.argv = ["github-backup"] + sys.argv[1:]
try:
    main()
except Exception as exc:  # as its own entry point does
    gb.logger.error(str(exc))
    sys.exit(1)
'''
GHB_EXPORTS = ["--repositories", "--bare", "--wikis", "--issues", "--issue-comments", "--pulls", "--pull-comments",
               "--pull-reviews", "--releases", "--labels", "--milestones"]

LISTING = re.compile(r"^/api(?:/v3)?/(?:(?:orgs|users)/[^/]+/repos|user)/?$")
OPERATION = re.compile(r"\s*(?:query|mutation)\s+([_A-Za-z][_0-9A-Za-z]*)")
LISTING_OPERATIONS = ("Repositories",)


class Operations:
    """The GraphQL operations the stand-in (in this process) was asked for, by name: wraps github_graphql.prepare."""

    def __init__(self):
        self.counts = collections.Counter()
        self._lock = threading.Lock()
        original = github_graphql.prepare

        def prepare(query, *args, **kwargs):
            match = OPERATION.match(query) if isinstance(query, str) else None
            with self._lock:
                self.counts[match.group(1) if match else "(anonymous)"] += 1
            return original(query, *args, **kwargs)

        github_graphql.prepare = prepare

    def take(self) -> dict:
        with self._lock:
            counts, self.counts = dict(self.counts), collections.Counter()
        return counts


def request_shape(record) -> str:
    """A request's method and path with owner, repository and numbers replaced: requests grouped by what they ask."""
    path = urllib.parse.urlsplit(record.path).path
    if record.kind == "git":
        path = re.sub(r"^/(?:git/)?[^/]+/[^/]+?(\.wiki)?(?:\.git)?(?=/)", lambda m: "/{o}/{r}%s.git" % (m.group(1) or ""), path)
    else:
        path = re.sub(r"^/api/v3(?=/|$)", "/api", path)
        path = re.sub(r"/repos/[^/]+/[^/]+", "/repos/{o}/{r}", path)
        path = re.sub(r"/(orgs|users)/[^/]+", r"/\1/{o}", path)
        path = re.sub(r"/\d+(?=/|$)", "/{n}", path)
    return "%s %s %s" % (record.kind, record.method, path)


class Stage:
    """One contender's run, measured on the stand-in: wall seconds and the requests it made, by kind."""

    def __init__(self, standin, operations, secondary_limits):
        self.standin, self.operations, self.secondary_limits = standin, operations, secondary_limits

    def __call__(self, action):
        standin = self.standin
        standin.set_secondary_limits(self.secondary_limits)  # a clean slate: the previous contender's minute is over
        standin.reset_log()
        self.operations.take()
        hits, errors = standin.secondary_limit_hits, len(standin.errors)
        started = time.perf_counter()
        detail = action() or {}
        seconds = time.perf_counter() - started
        log = standin.log
        api = [r for r in log if r.kind in ("rest", "graphql")]
        operations = self.operations.take()
        shapes = collections.Counter(request_shape(r) for r in log if r.kind != "graphql")
        shapes.update({"graphql %s" % name: count for name, count in operations.items()})
        discovery = sum(1 for r in api if r.kind == "rest" and r.method == "GET" and LISTING.match(
            urllib.parse.urlsplit(r.path).path)) + sum(operations.get(name, 0) for name in LISTING_OPERATIONS)
        figures = {
            "seconds": round(seconds, 2),
            "api_requests": len(api), "rest_requests": sum(r.kind == "rest" for r in api),
            "graphql_requests": sum(r.kind == "graphql" for r in api), "discovery_requests": discovery,
            "api_answered_304": sum(r.status == 304 for r in api),
            "git_requests": sum(r.kind == "git" for r in log),
            "other_requests": sum(r.kind not in ("rest", "graphql", "git") for r in log),
            "limit_answers": sum(r.status in (403, 429) for r in api),
            "secondary_limit_hits": standin.secondary_limit_hits - hits,
            "statuses": dict(sorted(collections.Counter("%s %d" % (r.kind, r.status) for r in log).items())),
            "requests_by_shape": dict(shapes.most_common(25)),
        }
        if len(standin.errors) > errors:
            figures["standin_errors"] = [e.strip().splitlines()[-1] for e in standin.errors[errors:]][:5]
        figures.update(detail)
        return figures


# -- contenders ------------------------------------------------------------------------------

def pack_per_repository(folder, packed):
    """tar czf of each repository's folder of python-github-backup's output."""
    os.makedirs(packed, exist_ok=True)
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    for name in names:
        subprocess.run(["tar", "czf", os.path.join(packed, name + ".tar.gz"), "-C", folder, name], check=True)
    return len(names)


def ghb_run(python, workdir, standin, token, label):
    wrapper = os.path.join(workdir, "ghb_http.py")
    with open(wrapper, "w", encoding="utf-8") as handle:
        handle.write(GHB_WRAPPER)
    out = os.path.join(workdir, "ghb-output")
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="url.http://.insteadOf",
               GIT_CONFIG_VALUE_0="https://")
    env.pop("PYTHONPATH", None)
    # --incremental on the first run too, as its users run it: on an empty folder it is a full backup that records the
    # checkpoints (last_update) the next --incremental run starts from; without them that run would be a full one.
    argv = [python, wrapper, "-f", token, "-O", "-H", "127.0.0.1:%d" % standin.port] + GHB_EXPORTS + [
        "--incremental", "-o", out, ORG]
    log_path = os.path.join(workdir, "ghb-%s.log" % label)
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    with open(log_path, encoding="utf-8", errors="replace") as log:
        text = log.read()
    detail = {"exit_code": done.returncode,
              "errors": [line.split(": ", 1)[-1][:200] for line in text.splitlines() if "Error" in line or "rror:" in line][:5]}
    packed = os.path.join(workdir, "ghb-packed-%s" % label)
    detail["packed_repositories"] = pack_per_repository(os.path.join(out, "repositories"), packed)
    detail["packed_bytes"] = sum(os.path.getsize(os.path.join(packed, f)) for f in os.listdir(packed))
    shutil.rmtree(packed)
    return detail


def list_repositories(standin, token):
    """The loop's listing: GET /orgs/{org}/repos, every page."""
    names, url = [], standin.api_url + "/orgs/%s/repos?per_page=100&type=all" % ORG
    while url:
        request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token,
                                                       "Accept": "application/vnd.github+json"})
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - 127.0.0.1 only
            names += [repo["name"] for repo in json.load(answer)]
            links = re.findall(r'<([^>]+)>;\s*rel="next"', answer.headers.get("Link") or "")
        url = links[0] if links else None
    return sorted(names)


def loop_run(standin, token, workdir):
    """The original design: list, then for each repository git clone --mirror and tar czf, one after the other."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
               GIT_CONFIG_VALUE_0="Authorization: Bearer " + token)
    os.makedirs(workdir)
    size = 0
    names = list_repositories(standin, token)
    for name in names:
        target = os.path.join(workdir, name + ".git")
        subprocess.run(["git", "clone", "--mirror", "--quiet", standin.git_url(ORG, name), target], check=True, env=env)
        subprocess.run(["tar", "czf", target + ".tar.gz", "-C", workdir, name + ".git"], check=True)
        shutil.rmtree(target)
        size += os.path.getsize(target + ".tar.gz")
    shutil.rmtree(workdir)
    return {"repositories": len(names), "packed_bytes": size}


def module_args(standin, token, store, parallel, org=ORG):
    """The module's default options (``parallel`` only when --parallel asks), gzip -6 as ``tar czf`` packs."""
    args = {"organization": org, "token": token, "api_url": standin.api_url,
            "storage": {"type": "filesystem", "path": store}, "compression_level": 6}
    if parallel:
        args["parallel"] = parallel
    return args


def module_run(args, workdir):
    """The module process as Ansible runs it, with its peak RSS and open file descriptors."""
    run = run_module_watched("github_backup", args, workdir)
    totals = run.result["totals"]
    failed = [e for e in run.result["entries"] if e["status"] == "failed"]
    return {"module_seconds_wall": round(run.seconds, 2), "peak_rss_mb": round(run.peak_rss_kb * 1024 / MB, 1),
            "peak_open_fds": run.peak_fds, "status": run.result["status"], "failed": [(e["name"], e.get("error")) for e in failed][:5],
            "totals": {k: totals[k] for k in sorted(totals)}}


def playbook_run(collections_path, args):
    """The module through ansible-playbook, as users run it: its wall time includes Ansible's own start."""
    run = run_playbook_module(collections_path, "github_backup", args)
    if run.failed:
        raise SystemExit("github_backup through ansible-playbook failed: %s" % run.result.get("msg"))
    return {"totals": {k: run.result["totals"][k] for k in ("api_requests", "backed_up", "unchanged", "carried", "seconds")}}


# -- the two phases --------------------------------------------------------------------------

def build_org(standin, root, repositories, big_issues, seed=0):
    facts = github_fixtures.build_many(standin, ORG, root, count=repositories, seed=seed, describe=False)
    names = sorted(facts)
    big = names[len(names) // 2]
    made = github_fixtures.add_many_issues(standin, ORG, big, big_issues, seed=seed)
    wikis = [name for index, name in enumerate(names) if index % 20 == 0]
    for name in wikis:
        github_fixtures.add_wiki(standin, ORG, name)
    with standin.github.lock:  # GitHub turns the wiki on for every new repository, though few ever get a page
        for name in names:
            standin.github.repo(ORG, name).has_wiki = True
    return names, {"big_repository": big, "big_repository_issues": made["issues"] + 1,
                   "big_repository_comments": made["comments"], "wikis": len(wikis),
                   "has_wiki": sum(1 for n in names if standin.github.repo(ORG, n).has_wiki)}


def comparison(args, root, ghb_python):
    with GitHubStandIn(os.path.join(root, "github"), secondary_limits=True) as standin:
        started = time.perf_counter()
        names, org_facts = build_org(standin, os.path.join(root, "github"), args.repositories, args.big_issues)
        org_facts["build_seconds"] = round(time.perf_counter() - started, 1)
        standin.latency = args.latency
        stage = Stage(standin, Operations(), secondary_limits=True)
        ghb_stage = Stage(standin, stage.operations, secondary_limits=args.ghb_secondary_limits)
        tokens = {who: standin.add_token(token="github_pat_%s_%s" % (who, os.urandom(8).hex()), login="octocat")
                  for who in ("ghb", "loop", "module")}
        ghb_dir = os.path.join(root, "ghb")
        os.makedirs(ghb_dir)
        results = {}
        print("bench_github: python-github-backup, first run", file=sys.stderr, flush=True)
        results["ghb_first"] = ghb_stage(lambda: ghb_run(ghb_python, ghb_dir, standin, tokens["ghb"], "first"))
        print("bench_github: the original design's loop", file=sys.stderr, flush=True)
        results["loop"] = stage(lambda: loop_run(standin, tokens["loop"], os.path.join(root, "loop")))
        store = os.path.join(root, "store")
        module = module_args(standin, tokens["module"], store, args.parallel)
        print("bench_github: github_backup, first run", file=sys.stderr, flush=True)
        results["module_first"] = stage(lambda: module_run(module, root))
        print("bench_github: github_backup, rerun", file=sys.stderr, flush=True)
        results["module_rerun"] = stage(lambda: module_run(module, root))
        if args.playbook_rerun:
            results["module_rerun_ansible_playbook"] = stage(lambda: playbook_run(args.collections, module))
        print("bench_github: python-github-backup --incremental", file=sys.stderr, flush=True)
        results["ghb_incremental"] = ghb_stage(lambda: ghb_run(ghb_python, ghb_dir, standin, tokens["ghb"], "rerun"))
    return names, org_facts, results


def scale(args, root):
    """The module alone on 100 and on N repositories: memory and descriptors must not grow with N."""
    figures = {"latency_seconds": args.scale_latency, "parallel": args.parallel}
    with GitHubStandIn(os.path.join(root, "github-scale"), secondary_limits=True) as standin:
        operations = Operations()
        stage = Stage(standin, operations, secondary_limits=True)
        token = standin.add_token(token="github_pat_scale_%s" % os.urandom(8).hex(), login="octocat")
        for count in (100, args.scale):
            org = "scale%d" % count
            started = time.perf_counter()
            github_fixtures.build_many(standin, org, os.path.join(root, "github-scale"), count=count, describe=False)
            built = time.perf_counter() - started
            standin.latency = args.scale_latency
            store = os.path.join(root, "store-%d" % count)
            print("bench_github: scale, %d repositories" % count, file=sys.stderr, flush=True)
            run = stage(lambda: module_run(module_args(standin, token, store, args.parallel, org), root))  # noqa: B023
            run["build_seconds"] = round(built, 1)
            standin.latency = 0
            figures[str(count)] = run
            shutil.rmtree(store)
    small, large = figures["100"], figures[str(args.scale)]
    figures["peak_rss_ratio"] = round(large["peak_rss_mb"] / small["peak_rss_mb"], 2)
    figures["peak_fds_ratio"] = round(large["peak_open_fds"] / max(1, small["peak_open_fds"]), 2)
    figures["peak_rss_growth_kb_per_repository"] = round((large["peak_rss_mb"] - small["peak_rss_mb"]) * MB / 1000
                                                         / (args.scale - 100), 1) if args.scale != 100 else 0.0
    return figures


def row(label, figures, rerun=False):
    api = "{:,}".format(figures["api_requests"])
    if rerun:
        api += " (%s listing, %s answered 304)" % ("{:,}".format(figures["discovery_requests"]),
                                                   "{:,}".format(figures["api_answered_304"]))
    return "| %s | %.1f s | %s | %s |" % (label, figures["seconds"], api, "{:,}".format(figures["git_requests"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=100)
    parser.add_argument("--big-issues", type=int, default=1000, help="issues of the one busy repository")
    # The work is latency-bound and git-bound on 2 cores: parallel 4, 8, 16, 32 took 10.3, 8.3, 6.5, 7.6 s here
    # (first run, before issue 20). The targets are met with the module's defaults.
    parser.add_argument("--parallel", type=int, default=0, help="the module's parallel (0: its default)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the stand-in waits before each answer")
    parser.add_argument("--scale", type=int, default=1000, help="repositories of the second phase (0: skip it)")
    parser.add_argument("--scale-latency", type=float, default=0.01)
    parser.add_argument("--ghb-secondary-limits", action="store_true",
                        help="python-github-backup's runs with the stand-in's secondary limits too (it stops at the first "
                             "refusal: a 403 without X-RateLimit-Remaining 0 is not retried)")
    parser.add_argument("--playbook-rerun", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the rerun through ansible-playbook")
    parser.add_argument("--collections", default=os.environ.get("ANSIBLE_COLLECTIONS_PATH") or COLLECTIONS)
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    ghb_python = os.environ.get("GHB_PYTHON") or os.path.join(os.getcwd(), ".cache", "ghb-venv", "bin", "python")
    if not os.access(ghb_python, os.X_OK):
        raise SystemExit("python-github-backup's python not found at %s (in the checkout: make $PWD/.cache/ghb-venv/.installed;"
                         " or set GHB_PYTHON)" % ghb_python)
    version = subprocess.run([ghb_python, "-c", "import importlib.metadata as m; print(m.version('github-backup'))"],
                             capture_output=True, text=True, check=True).stdout.strip()

    load_before = os.getloadavg()
    root = tempfile.mkdtemp(prefix="corebackup-bench-github-")
    try:
        names, org_facts, results = comparison(args, root, ghb_python)
        scaled = scale(args, root) if args.scale else None
    finally:
        shutil.rmtree(root, ignore_errors=True)

    ghb, loop, first, rerun, incremental = (results[k] for k in ("ghb_first", "loop", "module_first", "module_rerun",
                                                                 "ghb_incremental"))
    repos = len(names)
    limit_answers = sum(results[k]["limit_answers"] + results[k]["secondary_limit_hits"]
                        + results[k]["totals"]["rate_limit_answers"] for k in ("module_first", "module_rerun"))
    targets = {
        "first_run_vs_ghb": {"value": round(ghb["seconds"] / first["seconds"], 2), "target": ">= 8"},
        "first_run_vs_loop": {"value": round(loop["seconds"] / first["seconds"], 2), "target": "> 1"},
        "first_run_api_requests_per_repository": {"value": round(first["api_requests"] / repos, 2), "target": "<= 3"},
        "rerun_api_requests_beyond_discovery": {"value": rerun["api_requests"] - rerun["discovery_requests"], "target": "<= 10"},
        "rerun_vs_ghb_incremental": {"value": round(incremental["seconds"] / rerun["seconds"], 2), "target": ">= 20"},
        "module_limit_answers": {"value": limit_answers, "target": "== 0"},
    }
    met = {
        "first_run_vs_ghb": targets["first_run_vs_ghb"]["value"] >= 8,
        "first_run_vs_loop": first["seconds"] < loop["seconds"],
        "first_run_api_requests_per_repository": targets["first_run_api_requests_per_repository"]["value"] <= 3,
        "rerun_api_requests_beyond_discovery": targets["rerun_api_requests_beyond_discovery"]["value"] <= 10,
        "rerun_vs_ghb_incremental": targets["rerun_vs_ghb_incremental"]["value"] >= 20,
        "module_limit_answers": limit_answers == 0,
    }
    for name, value in met.items():
        targets[name]["met"] = value
    valid = ghb["exit_code"] == 0 and incremental["exit_code"] == 0 and first["status"] == "success" \
        and rerun["status"] == "success" and first["totals"]["backed_up"] == repos and rerun["totals"]["backed_up"] == 0
    if scaled:
        targets["scale_memory_flat"] = {"value": scaled["peak_rss_ratio"], "target": "<= 1.5 (peak RSS %d vs 100 repositories)"
                                        % args.scale, "met": scaled["peak_rss_ratio"] <= 1.5}
        valid = valid and all(scaled[k]["status"] == "success" for k in ("100", str(args.scale)))
    table = [
        "| | wall | API requests | git requests |",
        "|---|---|---|---|",
        row("python-github-backup %s, comparable exports" % version, ghb),
        row("the original design's loop (git mirror + tar only, no metadata)", loop),
        row("github_backup, parallel %s" % (args.parallel or "default"), first),
        row("github_backup, rerun with nothing changed", rerun, rerun=True),
        row("python-github-backup `--incremental` rerun", incremental),
    ]
    if scaled:
        table += ["", "| github_backup alone, latency %g s | wall | API requests | git requests | peak RSS | peak open files |"
                  % args.scale_latency, "|---|---|---|---|---|---|"]
        for count in ("100", str(args.scale)):
            run = scaled[count]
            table.append("| %s repositories | %.1f s | %s | %s | %.1f MB | %d |" % (
                "{:,}".format(int(count)), run["seconds"], "{:,}".format(run["api_requests"]),
                "{:,}".format(run["git_requests"]), run["peak_rss_mb"], run["peak_open_fds"]))
    report = {
        "repositories": repos, "parallel": args.parallel, "latency_seconds": args.latency, "cores": os.cpu_count(),
        # Other work on the machine slows every contender (the module most: it is CPU-bound, the others latency-bound).
        "load_average_1_5_15": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
        "python_github_backup": version, "ghb_secondary_limits": args.ghb_secondary_limits,
        "ghb_options": " ".join(GHB_EXPORTS + ["--incremental"]), "discovery": "GraphQL Repositories queries + REST GET /orgs|users/{o}/repos and /user",
        "organization": org_facts, "targets": targets, "valid": valid, **results,
    }
    if scaled:
        report["scale"] = scaled
    report["table"] = table
    code = emit(report, args.results, "github.json", valid and all(t["met"] for t in targets.values()))
    print("\n".join(table))
    return code


if __name__ == "__main__":
    sys.exit(main())
