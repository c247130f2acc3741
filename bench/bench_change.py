# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: a month of github_backup's bundle chains on an organization where one big repository changes a little.

    source:    an organization of 20 repositories on the GitHub stand-in (git over smart HTTP, every answer, API and
               git alike, LATENCY seconds late: what limits a run in production is round trips and bytes, not this
               machine's cores): one of BIG_MB MiB (random blobs of 10 MiB committed with git fast-import: they
               neither compress nor delta) and 19 small ones (github_fixtures.build_many: labels, an issue, a
               reviewed pull request). DAYS simulated days (COREBACKUP_NOW, 02:00), each after 10 new commits of
               random files (DAILY_KB KiB in all) on the big repository and nothing elsewhere; one extra run with no
               push at all, 12 hours after day 15's (same set date: a second day would make the chain 30 days old
               on day 30, and full_every_days, 30 by default, would start a new chain there)
    module:    github_backup with cache_dir (a mirror cache per store), else its defaults (gzip 6, full_every_days 30,
               api_mode auto), once a day into each store
    stores:    a filesystem store (bytes as du counts them, hard links once) and an S3 bucket (moto as a server on
               127.0.0.1: the bytes of every listed object)
    peer:      what a user backing up the same organization's git data (no metadata: no issues, pull requests,
               labels) with git and a deduplicating backup tool does: a mirror of each of the organization's 20
               repositories, from the same stand-in URLs with the token in git's environment as the module's (git
               clone --mirror of each on day 1, then every day git fetch --prune of each, one after another, as a
               shell loop over the organization's repositories would), then one restic backup of the folder
               holding the 20 mirrors into a restic repository on local disk (restic init on day 1,
               RESTIC_PASSWORD set); its stored bytes are those of the restic repository's files, its wall time
               all the fetches plus the restic backup
    timed:     every 5th day (the last day when there is none), except that a timed day on which the mirror cache
               ran its full check (below) gives its timing to the next change day that did not
    full-check days: the mirror cache runs git fsck --connectivity-only every run and a full git fsck once
               full_refresh_days (7) have passed since the last (the issue asks for it: a mirror kept between runs
               is checked, never trusted), which reads and hashes every object of the mirror, the 1 GiB one's
               too; the metadata of every repository is read again in full on the same days (full_refresh_days).
               With day 1's clone, those are days 8, 15, 22 and 29; they are found from the runs themselves (the
               days on which the cache marker's full_check of the big repository's mirror moved, its clone
               aside). Their wall time is a cost of the checks the issue requires, not of a change day, so
               they are reported apart, as information (against the clone-and-pack of the nearest timed day and
               the peer's same day), not as targets
    baseline:  today's clone-and-pack, on the timed days: git clone
               --mirror of the changed repository from the stand-in, then git bundle create --all of it. Not the
               module without cache_dir: full_every_days accepts 1 or more (0 is refused), and a run without
               cache_dir still builds on its chain (it clones in full but stores an incremental bundle), so no
               module option makes it clone and pack in full every day; the clone plus the full bundle is what a
               run without cache and without a previous chain does for the repository, before tar, gzip and the
               store's write (left out: the baseline is the cheaper for it, the target the stricter)
    minimum:   one full copy (the packed size of the organization after day 1's pushes: git count-objects -v,
               size-pack + size, of each source repository) plus each later day's new objects (git pack-objects
               --revs of the day's tips, ^ the previous day's)

Bytes served are counted on the stand-in (in this process): the bytes of the HTTP response bodies it wrote, by kind
(git, rest, graphql), status lines and headers left out (they are reported too).

Targets (issue 25), each store:
  1. stored after the last day <= 1.1 x the minimum;
  2. stored after the last day <= the peer's restic repository;
  3. served on the no-change run <= 1% of the organization's packed size; on every change day after the first
     <= 2 x that day's new objects' packed size;
  4. wall time of the module on each timed day <= 0.2 x the baseline's, and <= the peer's (the 20 fetches + restic
     backup);
  5. backup_restore of day 17 and of the last day (the middle and the last day on shorter runs): every repository
     identical to the source of that day, ref by ref (git for-each-ref), git fsck clean, and as many objects
     (git rev-list --all --objects).

    python bench/bench_change.py --results <dir> [--big-mb 1024] [--days 30]
    (smoke: --big-mb 50 --days 4)
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import boto3

from ansible_collections.corebackup.backup.bench._report import emit, run_module
from ansible_collections.corebackup.backup.plugins.module_utils._gitcache import MARKER as CACHE_MARKER
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn, utc_iso
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS, moto_s3

ORG, BIG, JOB, BUCKET = "changeorg", "big", "change", "change"
MIB = 1024 * 1024
BLOB_MIB = 10
START = datetime.datetime(2026, 3, 1, 2, 0, tzinfo=datetime.timezone.utc)
KINDS = ("git", "rest", "graphql")


def when(day: int, hours: float = 0.0) -> datetime.datetime:
    """Day 1 is START; the module runs at 02:00 of its day."""
    return START + datetime.timedelta(days=day - 1, hours=hours)


def at(day: int, hours: float = 0.0) -> dict:
    return {"COREBACKUP_NOW": when(day, hours).strftime("%Y-%m-%dT%H:%M:%SZ")}


# -- bytes served, counted on the stand-in ----------------------------------------------------

class _CountingWriter:
    """A handler's wfile that counts what is written to it (the status line and headers apart)."""

    def __init__(self, raw):
        self.raw, self.total, self.headers, self.in_headers = raw, 0, 0, False

    def write(self, data):
        written = self.raw.write(data)
        size = len(data)
        self.total += size
        if self.in_headers:
            self.headers += size
        return written

    def __getattr__(self, name):
        return getattr(self.raw, name)


class CountingStandIn(GitHubStandIn):
    """The stand-in, also counting the bytes it sends per kind of request: ``served`` {kind: body bytes} and
    ``served_headers``. One handler serves one connection, one request at a time, so what its writer counted
    during ``handle`` is that request's answer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.served, self.served_headers, self.requests = collections.Counter(), collections.Counter(), collections.Counter()
        self._count_lock = threading.Lock()

    def handle(self, handler, method):
        writer = handler.wfile
        if not isinstance(writer, _CountingWriter):
            writer = handler.wfile = _CountingWriter(handler.wfile)
            flush_headers = handler.flush_headers

            def counted_flush_headers():
                writer.in_headers = True
                try:
                    flush_headers()
                finally:
                    writer.in_headers = False
            handler.flush_headers = counted_flush_headers
        total, headers = writer.total, writer.headers
        try:
            super().handle(handler, method)
        finally:
            kind = self._kind(urllib.parse.urlsplit(handler.path).path)
            with self._count_lock:
                self.served[kind] += (writer.total - total) - (writer.headers - headers)
                self.served_headers[kind] += writer.headers - headers
                self.requests[kind] += 1

    def take(self) -> dict:
        """Since the last take: {kind: body bytes served, ..., "total": body bytes, "headers": bytes of status lines and
        headers, "requests": {kind: requests answered}}."""
        with self._count_lock:
            served, headers, requests = dict(self.served), sum(self.served_headers.values()), dict(self.requests)
            self.served.clear()
            self.served_headers.clear()
            self.requests.clear()
        figures = {kind: served.get(kind, 0) for kind in KINDS}
        figures.update({kind: count for kind, count in served.items() if kind not in KINDS and count})
        figures["total"] = sum(served.values())
        figures["headers"] = headers
        figures["requests"] = requests
        return figures


# -- the source -------------------------------------------------------------------------------

def git(git_dir: str, *args: str, data: bytes | None = None, env: dict | None = None) -> bytes:
    return subprocess.run(["git", "--git-dir", git_dir] + list(args), input=data, capture_output=True, check=True,
                          env=env or github_fixtures.fixed_git_env()).stdout


class FastImport:
    """git fast-import fed as it goes (a gigabyte never held in memory); blobs above 1 MiB are not deltified."""

    def __init__(self, git_dir: str):
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            ["git", "--git-dir", git_dir, "-c", "pack.compression=1", "fast-import", "--quiet", "--done",
             "--big-file-threshold=1m"], stdin=subprocess.PIPE, env=github_fixtures.fixed_git_env())

    def commit(self, ref: str, message: str, stamp: int, files: dict, parent: str | None = None):
        """A commit on ``ref``: after ``parent`` (``ref^0`` for the tip in the repository, as the first commit of a
        stream on an existing branch), else after the stream's previous commit on ``ref`` (none: a root commit)."""
        head = "commit %s\ncommitter Bench <bench@example.invalid> %d +0000\ndata %d\n%s\n" % (
            ref, stamp, len(message.encode()), message)
        self.proc.stdin.write(head.encode() + (("from %s\n" % parent).encode() if parent else b""))
        for path, payload in files.items():
            self.proc.stdin.write(b"M 100644 inline %s\ndata %d\n" % (path.encode(), len(payload)))
            self.proc.stdin.write(payload)
            self.proc.stdin.write(b"\n")
        self.proc.stdin.write(b"\n")

    def close(self):
        self.proc.stdin.write(b"done\n")
        self.proc.stdin.close()
        if self.proc.wait():
            raise RuntimeError("git fast-import failed")


def build_big(git_dir: str, size_mib: int) -> None:
    github_fixtures.init_bare(git_dir)
    blobs = max(1, round(size_mib / BLOB_MIB))
    stamp = int(when(1, -24 * 400).timestamp())
    importer = FastImport(git_dir)
    importer.commit("refs/heads/main", "Start\n", stamp, {"README.md": b"# big\n\nRandom blobs.\n"})
    left = size_mib * MIB
    for index in range(blobs):
        size = left // (blobs - index)
        left -= size
        importer.commit("refs/heads/main", "Add blob %d\n" % index, stamp + 60 * (index + 1),
                        {"blobs/blob-%03d.bin" % index: os.urandom(size)})
    importer.close()


def push_day(standin: GitHubStandIn, day: int, commits: int, daily_kib: int) -> None:
    """``commits`` commits of one new random file each on the big repository's main, as pushed at 01:00 of ``day``."""
    repo = standin.github.repo(ORG, BIG)
    stamp = int(when(day, -1).timestamp())
    importer = FastImport(repo.git_dir)
    for index in range(commits):
        importer.commit("refs/heads/main", "Day %d, change %d\n" % (day, index + 1), stamp + index,
                        {"data/day-%02d/change-%02d.bin" % (day, index): os.urandom(daily_kib * 1024 // commits)},
                        parent="refs/heads/main^0" if index == 0 else None)
    importer.close()
    standin.github.refresh_git(repo, utc_iso(stamp + commits))


def packed_size(git_dir: str) -> int:
    """Bytes of the repository's objects as stored (packs and loose), from git count-objects -v."""
    counts = dict(line.split(": ", 1) for line in git(git_dir, "count-objects", "-v").decode().splitlines())
    return (int(counts["size-pack"]) + int(counts["size"])) * 1024


def new_objects_size(git_dir: str, old_tips: dict, new_tips: dict) -> int:
    """Bytes of a pack of what the new tips reach and the old ones do not."""
    revs = sorted(set(new_tips.values())) + ["^" + sha for sha in sorted(set(old_tips.values()))]
    return len(git(git_dir, "pack-objects", "--stdout", "--revs", "--quiet", data=("\n".join(revs) + "\n").encode()))


def object_count(git_dir: str) -> int:
    return len(git(git_dir, "rev-list", "--all", "--objects").splitlines())


def source_state(standin: GitHubStandIn, names: list) -> dict:
    return {name: {"refs": github_fixtures.git_refs(standin.github.repo(ORG, name).git_dir),
                   "objects": object_count(standin.github.repo(ORG, name).git_dir)} for name in names}


# -- stores, peer, baseline ---------------------------------------------------------------------

def filesystem_listing(root: str) -> list:
    """(path below ``root``, bytes) of its files, each inode once (as du counts them)."""
    seen, listing = set(), []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                listing.append((os.path.relpath(path, root), info.st_size))
    return listing


def filesystem_bytes(root: str) -> int:
    return sum(size for _path, size in filesystem_listing(root))


def bucket_listing(client, bucket: str) -> list:
    return [(item["Key"], item["Size"]) for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])]


def git_auth_env(token: str) -> dict:
    return dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0="http.extraHeader", GIT_CONFIG_VALUE_0="Authorization: Bearer " + token)


class Peer:
    """A mirror of each of the organization's repositories, git fetch --prune into each one after another, then one
    restic backup of the folder holding them, once a day."""

    def __init__(self, root: str, urls: dict, token: str):
        self.mirrors, self.repo = os.path.join(root, "peer-mirrors"), os.path.join(root, "restic-repo")
        self.urls, self.git_env = dict(sorted(urls.items())), git_auth_env(token)
        self.restic_env = dict(os.environ, RESTIC_PASSWORD="corebackup-bench-change",
                               RESTIC_CACHE_DIR=os.path.join(root, "restic-cache"))

    def restic(self, *args: str) -> None:
        subprocess.run(["restic", "-r", self.repo, "--quiet"] + list(args), check=True, env=self.restic_env,
                       stdout=subprocess.DEVNULL)

    def run(self) -> dict:
        started = time.perf_counter()
        os.makedirs(self.mirrors, exist_ok=True)
        for name, url in self.urls.items():
            mirror = os.path.join(self.mirrors, name + ".git")
            if not os.path.isdir(mirror):
                subprocess.run(["git", "clone", "--mirror", "--quiet", url, mirror], check=True, env=self.git_env)
            else:
                subprocess.run(["git", "-C", mirror, "fetch", "--prune", "--quiet", "origin"], check=True,
                               env=self.git_env)
        fetched = time.perf_counter()
        if not os.path.isdir(self.repo):
            self.restic("init")
        self.restic("backup", "--host", "bench", self.mirrors)
        done = time.perf_counter()
        return {"seconds": round(done - started, 2), "fetch_seconds": round(fetched - started, 2),
                "restic_seconds": round(done - fetched, 2), "repositories": len(self.urls),
                "stored_bytes": filesystem_bytes(self.repo)}


def restic_breakdown(repo: str) -> dict:
    """The restic repository's bytes: data/ (the packs), the rest (index, snapshots, keys, config)."""
    parts = collections.Counter()
    for path, size in filesystem_listing(repo):
        parts["data" if path.startswith("data" + os.sep) else path.split(os.sep, 1)[0] if os.sep in path else "other"] += size
    return dict(parts)


def clone_and_pack(root: str, url: str, token: str) -> dict:
    """Today's clone-and-pack of the changed repository: git clone --mirror, git bundle create --all."""
    target, bundle = os.path.join(root, "baseline.git"), os.path.join(root, "baseline.bundle")
    started = time.perf_counter()
    subprocess.run(["git", "clone", "--mirror", "--quiet", url, target], check=True, env=git_auth_env(token))
    cloned = time.perf_counter()
    subprocess.run(["git", "-C", target, "bundle", "create", "--quiet", bundle, "--all"], check=True,
                   env=github_fixtures.fixed_git_env())
    done = time.perf_counter()
    size = os.path.getsize(bundle)
    shutil.rmtree(target)
    os.remove(bundle)
    return {"seconds": round(done - started, 2), "clone_seconds": round(cloned - started, 2),
            "bundle_seconds": round(done - cloned, 2), "bundle_bytes": size}


class Store:
    """One store and the module's mirror cache for it."""

    def __init__(self, name: str, storage: dict, listing, cache_dir: str):
        self.name, self.storage, self.listing, self.cache_dir = name, storage, listing, cache_dir

    def measure(self) -> int:
        return sum(size for _key, size in self.listing())

    def full_check_mark(self) -> str | None:
        """When the mirror cache last checked the big repository's mirror in full (its marker's full_check)."""
        try:
            with open(os.path.join(self.cache_dir, ORG, BIG + ".git", CACHE_MARKER), encoding="utf-8") as handle:
                return json.load(handle).get("full_check")
        except (OSError, ValueError, AttributeError):
            return None

    def backup(self, standin: GitHubStandIn, token: str, workdir: str, env: dict) -> dict:
        args = {"organization": ORG, "token": token, "api_url": standin.api_url, "storage": self.storage, "job": JOB,
                "cache_dir": self.cache_dir}
        mark = self.full_check_mark()
        standin.take()
        run = run_module("github_backup", args, workdir, env=env)
        after = self.full_check_mark()
        served = standin.take()
        result = run.result
        [entry] = [e for e in result["repositories"] if e["name"] == BIG]
        [artifact] = [a for a in result["artifacts"] if a["key"] == entry["key"]]
        totals = result.get("totals", {})
        return {"seconds": round(run.seconds, 2), "module_seconds": totals.get("seconds"), "status": result.get("status"),
                "big": entry["status"], "bundle": artifact["metadata"].get("bundle") if entry["status"] == "backed_up" else None,
                "bundle_reason": artifact["metadata"].get("bundle_reason") if entry["status"] == "backed_up" else None,
                "big_artifact_bytes": entry["size"] if entry["status"] == "backed_up" else 0,
                "backed_up": totals.get("backed_up"), "carried": totals.get("carried"),
                "api_requests": totals.get("api_requests"), "stored_bytes": self.measure(), "served": served,
                "full_check": mark is not None and after != mark}

    def breakdown(self) -> dict:
        """The store's bytes by what they are: the big repository's artifacts, the tips objects, the other
        repositories' artifacts, the sets' records (manifest.json, SHA256SUMS, runs/), the rest (leases, sidecars)."""
        parts = collections.Counter()
        for key, size in self.listing():
            name = key.rsplit("/", 1)[-1]
            if "/objects/" in key and "--tips_" in name:
                parts["tips"] += size
            elif "/objects/" in key and name.startswith(BIG + "_"):
                parts["big_repository_artifacts"] += size
            elif "/objects/" in key and not name.startswith("."):
                parts["other_repositories_artifacts"] += size
            elif name in ("manifest.json", "SHA256SUMS") or "/runs/" in key:
                parts["set_records"] += size
            else:
                parts["other"] += size
        return dict(parts)

    def restore_check(self, workdir: str, day: int, expected: dict) -> dict:
        dest = os.path.join(workdir, "restore-%s-%d" % (self.name, day))
        started = time.perf_counter()
        run = run_module("backup_restore", {"job": JOB, "storage": self.storage, "dest": dest,
                                            "set_date": when(day).date().isoformat()}, workdir, env=at(day, 6))
        seconds = time.perf_counter() - started
        problems = []
        restored = {item["name"]: item for item in run.result["restored"]}
        for name, state in sorted(expected.items()):
            if name not in restored:
                problems.append("%s: not restored" % name)
                continue
            repo = os.path.join(restored[name]["target"], "repo.git")
            refs = github_fixtures.git_refs(repo)
            if refs != state["refs"]:
                differ = sorted(set(refs.items()) ^ set(state["refs"].items()))
                problems.append("%s: refs differ: %s" % (name, differ[:4]))
            fsck = subprocess.run(["git", "--git-dir", repo, "fsck", "--no-progress", "--no-dangling"],
                                  capture_output=True, text=True, check=False)
            if fsck.returncode or fsck.stdout.strip() or fsck.stderr.strip():
                problems.append("%s: git fsck: %s" % (name, (fsck.stdout + fsck.stderr).strip()[:200]))
            count = object_count(repo)
            if count != state["objects"]:
                problems.append("%s: %d objects, the source had %d" % (name, count, state["objects"]))
        shutil.rmtree(dest, ignore_errors=True)
        return {"day": day, "seconds": round(seconds, 2), "repositories": len(restored),
                "big_objects": expected[BIG]["objects"], "identical": not problems, "problems": problems[:10]}


# -- the month ----------------------------------------------------------------------------------

def build_org(standin: GitHubStandIn, root: str, small: int, big_mib: int) -> list:
    github_fixtures.build_many(standin, ORG, root, count=small, seed=25, describe=False)
    git_dir = os.path.join(root, ORG, BIG + ".git")
    build_big(git_dir, big_mib)
    stamp = utc_iso(when(1, -48).timestamp())
    standin.github.add_repo(ORG, BIG, git_dir, created_at=stamp, pushed_at=stamp, empty=False, has_wiki=False,
                            description="The big one")
    return sorted(repo.name for repo in standin.github.repos.values() if repo.owner.login == ORG)


def month(args, workdir: str, stores: list, standin: CountingStandIn, token: str) -> dict:
    names = build_org(standin, os.path.join(workdir, "github"), args.small, args.big_mb)
    standin.latency = args.latency
    big_dir = standin.github.repo(ORG, BIG).git_dir
    url = standin.git_url(ORG, BIG)
    peer = Peer(workdir, {name: standin.git_url(ORG, name) for name in names}, token)
    candidates = [d for d in range(2, args.days + 1) if d % 5 == 0] or [args.days]
    timed, full_check_days, pending = [], [], False
    quiet_after = 15 if args.days > 15 else max(1, args.days // 2)
    restore_days = sorted({args.days, 17 if args.days >= 17 else max(1, (args.days + 1) // 2)})
    states, days, new_bytes, org_bytes = {}, [], {}, {}
    tips = {}
    for day in range(1, args.days + 1):
        push_day(standin, day, args.commits, args.daily_kb)
        state = source_state(standin, names)
        states[day] = state
        new_tips = state[BIG]["refs"]
        if day > 1:
            new_bytes[day] = new_objects_size(big_dir, tips, new_tips)
        tips = new_tips
        org_bytes[day] = sum(packed_size(standin.github.repo(ORG, name).git_dir) for name in names)
        row = {"day": day, "set_date": when(day).date().isoformat(), "new_objects_bytes": new_bytes.get(day),
               "org_packed_bytes": org_bytes[day]}
        for store in stores:
            row[store.name] = store.backup(standin, token, workdir, at(day))
            print("bench_change: day %d %s: %.1f s, %s, served %d B, stored %d B" % (
                day, store.name, row[store.name]["seconds"], row[store.name]["bundle"],
                row[store.name]["served"]["total"], row[store.name]["stored_bytes"]), file=sys.stderr, flush=True)
        standin.take()
        row["peer"] = peer.run()
        row["peer"]["served"] = standin.take()
        pending = pending or day in candidates
        if any(row[store.name]["full_check"] for store in stores):
            row["full_check"] = True
            full_check_days.append(day)
            print("bench_change: day %d is a full-check day (%s), peer %.1f s" % (
                day, ", ".join("%s %.1f s" % (s.name, row[s.name]["seconds"]) for s in stores), row["peer"]["seconds"]),
                file=sys.stderr, flush=True)
        elif pending:
            pending = False
            timed.append(day)
            row["clone_and_pack"] = clone_and_pack(workdir, url, token)
            row["clone_and_pack"]["served"] = standin.take()
            print("bench_change: day %d clone-and-pack %.1f s, peer %.1f s" % (
                day, row["clone_and_pack"]["seconds"], row["peer"]["seconds"]), file=sys.stderr, flush=True)
        days.append(row)
        if day == quiet_after:  # no push at all, then the module again on the same set date, 12 hours later
            quiet = {"day": "%d+12h" % day, "set_date": when(day).date().isoformat(), "no_change": True,
                     "org_packed_bytes": org_bytes[day]}
            for store in stores:
                quiet[store.name] = store.backup(standin, token, workdir, at(day, 12))
            quiet["peer"] = peer.run()
            quiet["peer"]["served"] = standin.take()
            days.append(quiet)
    restores = {store.name: [store.restore_check(workdir, day, states[day]) for day in restore_days]
                for store in stores}
    return {"names": names, "days": days, "new_bytes": new_bytes, "org_bytes": org_bytes, "timed": timed,
            "full_check_days": full_check_days, "quiet_after": quiet_after, "restores": restores}


def ratio(value, limit) -> float:
    return round(value / limit, 4) if limit else float("inf")


def targets_of(stores: list, run: dict) -> dict:
    days = run["days"]
    change_days = [d for d in days if not d.get("no_change")]
    [quiet] = [d for d in days if d.get("no_change")]
    last = change_days[-1]
    full_copy = run["org_bytes"][1]
    minimum = full_copy + sum(run["new_bytes"].values())
    targets = {}
    for store in stores:
        name = store.name
        stored = last[name]["stored_bytes"]
        restic = last["peer"]["stored_bytes"]
        targets["%s: stored vs full copy + new objects" % name] = {
            "value": stored, "limit": minimum, "ratio": ratio(stored, minimum), "target": "<= 1.1",
            "met": stored <= 1.1 * minimum}
        targets["%s: stored vs git fetch + restic" % name] = {
            "value": stored, "limit": restic, "ratio": ratio(stored, restic), "target": "<= 1", "met": stored <= restic}
        served = quiet[name]["served"]["total"]
        org = quiet["org_packed_bytes"]
        targets["%s: served, no-change run vs organization" % name] = {
            "value": served, "limit": org, "ratio": ratio(served, org), "target": "<= 0.01", "met": served <= 0.01 * org}
        worst = max(change_days[1:], key=lambda d: d[name]["served"]["total"] / d["new_objects_bytes"])
        served = worst[name]["served"]["total"]
        targets["%s: served, change day vs new objects (worst: day %d)" % (name, worst["day"])] = {
            "value": served, "limit": worst["new_objects_bytes"], "ratio": ratio(served, worst["new_objects_bytes"]),
            "target": "<= 2", "met": served <= 2 * worst["new_objects_bytes"]}
        for day in (d for d in change_days if "clone_and_pack" in d):
            seconds = day[name]["seconds"]
            baseline = day["clone_and_pack"]["seconds"]
            targets["%s: wall, day %d vs clone-and-pack" % (name, day["day"])] = {
                "value": seconds, "limit": baseline, "ratio": ratio(seconds, baseline), "target": "<= 0.2",
                "met": seconds <= 0.2 * baseline}
            peer = day["peer"]["seconds"]
            targets["%s: wall, day %d vs git fetch + restic" % (name, day["day"])] = {
                "value": seconds, "limit": peer, "ratio": ratio(seconds, peer), "target": "<= 1", "met": seconds <= peer}
        for check in run["restores"][name]:
            targets["%s: restore of day %d identical" % (name, check["day"])] = {
                "value": check["repositories"], "limit": len(run["names"]), "ratio": 1.0 if check["identical"] else 0.0,
                "target": "identical", "met": check["identical"] and check["repositories"] == len(run["names"]),
                "problems": check["problems"]}
    return targets


def full_check_rows(stores: list, run: dict) -> dict:
    """Information, not targets: each store's wall time on each full-check day, against the clone-and-pack of the
    nearest timed day (the earlier on a tie) and against the peer's same day."""
    timed = {d["day"]: d["clone_and_pack"]["seconds"] for d in run["days"] if "clone_and_pack" in d}
    rows = {}
    for day in (d for d in run["days"] if d.get("full_check")):
        if not timed:
            break
        nearest = min(timed, key=lambda t, d=day["day"]: (abs(t - d), t))
        for store in stores:
            seconds = day[store.name]["seconds"]
            rows["%s: wall, full-check day %d" % (store.name, day["day"])] = {
                "value": seconds, "clone_and_pack_day": nearest, "clone_and_pack_seconds": timed[nearest],
                "ratio_clone_and_pack": ratio(seconds, timed[nearest]), "peer_seconds": day["peer"]["seconds"],
                "ratio_peer": ratio(seconds, day["peer"]["seconds"])}
    return rows


def unit_of(name: str, value) -> str:
    """A figure of target ``name`` with its unit."""
    if "restore" in name:
        return "%d repos" % value
    if "wall" in name:
        return "%.2f s" % value
    return "{:,} B".format(value)


def table(stores: list, run: dict, targets: dict, full_checks: dict) -> list:
    lines = ["| target | value | against | ratio | limit | met |", "|---|---|---|---|---|---|"]
    for name, figure in targets.items():
        def unit(value, name=name):
            return unit_of(name, value)
        lines.append("| %s | %s | %s | %s | %s | %s |" % (name, unit(figure["value"]), unit(figure["limit"]),
                                                          figure["ratio"], figure["target"], "yes" if figure["met"] else "NO"))
    lines += ["", "Full-check days (information, not targets: a full git fsck of every mirror and all metadata read again)",
              "", "| row | value | clone-and-pack (day) | ratio | peer, same day | ratio |", "|---|---|---|---|---|---|"]
    for name, figure in full_checks.items():
        lines.append("| %s | %.2f s | %.2f s (day %d) | %s | %.2f s | %s |" % (
            name, figure["value"], figure["clone_and_pack_seconds"], figure["clone_and_pack_day"],
            figure["ratio_clone_and_pack"], figure["peer_seconds"], figure["ratio_peer"]))
    lines += ["", "| day | " + " | ".join("%s wall s (module's own) / big repo / served B / stored B" % s.name for s in stores)
              + " | peer s (%d fetches+restic) / stored B | clone-and-pack s | new objects B |" % len(run["names"]),
              "|---|" + "---|" * (len(stores) + 3)]
    for day in run["days"]:
        cells = ["%.2f (%.2f) / %s / {:,} / {:,}".format(day[s.name]["served"]["total"], day[s.name]["stored_bytes"])
                 % (day[s.name]["seconds"], day[s.name]["module_seconds"] or 0, day[s.name]["bundle"] or day[s.name]["big"])
                 for s in stores]
        peer = "%.2f (%.2f+%.2f) / {:,}".format(day["peer"]["stored_bytes"]) % (
            day["peer"]["seconds"], day["peer"]["fetch_seconds"], day["peer"]["restic_seconds"])
        baseline = "%.2f" % day["clone_and_pack"]["seconds"] if "clone_and_pack" in day else ""
        new = "{:,}".format(day["new_objects_bytes"]) if day.get("new_objects_bytes") else ""
        label = "%s (full check)" % day["day"] if day.get("full_check") else day["day"]
        lines.append("| %s | %s | %s | %s | %s |" % (label, " | ".join(cells), peer, baseline, new))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mb", type=int, default=int(os.environ.get("BENCH_CHANGE_BIG_MB", "1024")),
                        help="MiB of random blobs in the big repository (BENCH_CHANGE_BIG_MB)")
    parser.add_argument("--days", type=int, default=int(os.environ.get("BENCH_CHANGE_DAYS", "30")))
    parser.add_argument("--small", type=int, default=19, help="small repositories beside the big one")
    parser.add_argument("--commits", type=int, default=10, help="commits a day on the big repository")
    parser.add_argument("--daily-kb", type=int, default=1024, help="KiB of new random files a day, all commits together")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the stand-in waits before each answer")
    parser.add_argument("--stores", default="filesystem,s3", help="filesystem, s3 or both")
    parser.add_argument("--results", default=None)
    parser.add_argument("--keep-workdir", action="store_true", help="leave the stores, mirrors and restic repository "
                        "in place (their folder is printed) to look at what was stored")
    args = parser.parse_args()
    if args.days < 2:
        parser.error("--days must be 2 or more")
    began = time.perf_counter()
    load_before = os.getloadavg()
    workdir = tempfile.mkdtemp(prefix="cbchange-")
    wanted = [s.strip() for s in args.stores.split(",") if s.strip()]
    try:
        with CountingStandIn(os.path.join(workdir, "github")) as standin, moto_s3(workdir) as moto:
            token = standin.add_token(token="github_pat_change_%s" % os.urandom(8).hex(), login="octocat")
            stores = []
            if "filesystem" in wanted:
                root = os.path.join(workdir, "store")
                os.makedirs(root)
                stores.append(Store("filesystem", {"type": "filesystem", "path": root},
                                    lambda: filesystem_listing(root), os.path.join(workdir, "cache-filesystem")))
            if "s3" in wanted:
                endpoint = "http://127.0.0.1:%d" % moto.port
                client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                      aws_access_key_id=S3_TEST_CREDENTIALS["access_key"],
                                      aws_secret_access_key=S3_TEST_CREDENTIALS["secret_key"])
                client.create_bucket(Bucket=BUCKET)
                stores.append(Store("s3", dict(type="s3", bucket=BUCKET, endpoint_url=endpoint, **S3_TEST_CREDENTIALS),
                                    lambda: bucket_listing(client, BUCKET), os.path.join(workdir, "cache-s3")))
            run = month(args, workdir, stores, standin, token)
            run["breakdown"] = {store.name: store.breakdown() for store in stores}
            run["breakdown"]["restic"] = restic_breakdown(os.path.join(workdir, "restic-repo"))
            standin_errors = [e.strip().splitlines()[-1] for e in standin.errors][:5]
    finally:
        if args.keep_workdir:
            print("kept", workdir, file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    targets = targets_of(stores, run)
    full_checks = full_check_rows(stores, run)
    lines = table(stores, run, targets, full_checks)
    valid = all(day[s.name]["status"] == "success" for day in run["days"] for s in stores) and not standin_errors
    report = {
        "big_mib": args.big_mb, "days": args.days, "small_repositories": args.small, "commits_a_day": args.commits,
        "daily_kib": args.daily_kb, "latency_seconds": args.latency, "cores": os.cpu_count(),
        "timed_days": run["timed"], "full_check_days": run["full_check_days"],
        "no_change_run_after_day": run["quiet_after"],
        "full_copy_bytes": run["org_bytes"][1], "new_objects_bytes": sum(run["new_bytes"].values()),
        "load_average_1_5_15": {"before": [round(x, 2) for x in load_before],
                                "after": [round(x, 2) for x in os.getloadavg()]},
        "bench_seconds": round(time.perf_counter() - began, 1), "valid": valid, "standin_errors": standin_errors,
        "stored_breakdown": run["breakdown"], "targets": targets, "full_check_information": full_checks,
        "days_detail": run["days"], "restores": run["restores"], "table": lines,
    }
    code = emit(report, args.results, "bench_change.json", valid and all(t["met"] for t in targets.values()))
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())
