# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every successful backup set is complete on its own, on both backends.

Daily runs at shifted dates (COREBACKUP_NOW, from a fixed anchor) of github_backup with its defaults,
recorded by backup_manifest, then retention: with skip_unchanged, nothing changes upstream, yet every
kept set can restore every repository, which is compared ref by ref with the source.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import tarfile
import time

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._layout import ArtifactKey, iso, sanitize_name
from ansible_collections.corebackup.backup.plugins.module_utils._records import read_set
from ansible_collections.corebackup.backup.plugins.module_utils._sets import iter_sets
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.plugins.module_utils._storage_s3 import S3Backend
from ansible_collections.corebackup.backup.tests.conftest import files_below
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import RunningModule, run_module
from ansible_collections.corebackup.backup.tests.testbed.s3_proxy import Rule
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
ORG = "sets"
JOB = "github"
ANCHOR = datetime.datetime(2026, 6, 15, 2, 0, tzinfo=datetime.timezone.utc)
DAYS = (-45, -44, -43, -10, 0)
RETRIES = {"attempts": 3, "delay": 0.1, "max_delay": 1}
WIKI_EDITED = "wiki-repo"  # its wiki changes before day -10; nothing else of it does
DELETED = "releases-repo"  # deleted upstream after day -43
README_POLICY = {"keep_days": 30, "keep_weekly": 8, "keep_monthly": 12, "keep_yearly": 3}


def at(day, hours=0):
    return ANCHOR + datetime.timedelta(days=day, hours=hours)


@pytest.fixture(scope="module")
def org(github_standin, tmp_path_factory):
    token = github_standin.add_token(login="sets-bot")
    facts = github_fixtures.build_organization(github_standin, ORG, str(tmp_path_factory.mktemp("sets")), count=32, seed=7)
    return github_standin, token, facts


@pytest.fixture(params=["filesystem", "s3"])
def store(request, tmp_path):
    """(backend, storage option, proxy or None): S3 through the fault proxy, which counts what reaches the server."""
    if request.param == "filesystem":
        backend = FilesystemBackend(str(tmp_path / "store"))
        return backend, {"type": "filesystem", "path": backend.root}, None
    proxy = request.getfixturevalue("s3_proxy")
    from ansible_collections.corebackup.backup.tests.conftest import make_s3_backend
    backend = make_s3_backend(proxy.url, prefix="sets/")
    storage = dict(type="s3", bucket=backend.bucket, prefix="sets/", endpoint_url=proxy.url, **S3_TEST_CREDENTIALS)
    return backend, storage, proxy


def module(name, args, when, **kwargs):
    return run_module(COLLECTIONS, name, args, env={"COREBACKUP_NOW": iso(when)}, **kwargs)


def backup(org, storage, when, **options):
    args = {"organization": ORG, "token": org[1], "api_url": org[0].api_url, "storage": storage, "retries": RETRIES,
            "exclude": ["^dmca-repo$"], "job": JOB}
    args.update(options)
    run = module("github_backup", args, when)
    assert not run.failed, run.result.get("msg")
    return run


def record(storage, result, when):
    run = module("backup_manifest", {"job": JOB, "storage": storage, "result": result, "retries": RETRIES}, when)
    assert not run.failed, run.result.get("msg")
    return run


def statuses(run):
    return {entry["name"]: entry["status"] for entry in run.result["entries"]}


def artifacts_by_set(backend):
    """{set date: {item name: key}} of every set that is not gone, as its run records say; each key is stored with
    the size its set recorded (a set whose artifact is gone would not be complete)."""
    found = {}
    stored = {obj.key: obj.size for obj in backend.list(JOB + "/objects/")}
    for backup_set in iter_sets(backend, JOB):
        for item in read_set(backend, backup_set).items().values():
            assert stored.get(item["key"]) == item["artifact"]["size"], (backup_set.date, item["key"])
            found.setdefault(backup_set.date, {})[ArtifactKey.parse(item["key"]).name] = item["key"]
    return found


def restore_refs(backend, date, key, workdir):
    """Restore an artifact as a user would (download, gunzip, untar each link of its chain, fetch their bundles in
    order into new bare repositories, set the refs from the day's lists) and return its refs and its wiki's."""
    [backup_set] = [s for s in iter_sets(backend, JOB) if s.date == date]
    [item] = [i for i in read_set(backend, backup_set).items().values() if i["key"] == key]
    links = [r["key"] for r in item["artifact"].get("requires") or [] if "--tips_" not in r["key"]] + [key]
    folders = []
    for number, link in enumerate(links):
        folder = os.path.join(workdir, "link-%d" % number)
        os.makedirs(folder)
        archive = os.path.join(folder, "artifact.tar.gz")
        with backend.open(link) as reader, open(archive, "wb") as out:
            for block in iter(lambda: reader.read(1 << 20), b""):
                out.write(block)
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="tar")
        folders.append(folder)
    found = []
    for part, refs_name in (("repo", "refs.json"), ("wiki", "wiki-refs.json")):
        if not os.path.exists(os.path.join(folders[-1], refs_name)):
            found.append({})
            continue
        target = os.path.join(workdir, part + ".git")
        subprocess.run(["git", "init", "--quiet", "--bare", target], check=True, capture_output=True)
        for folder in folders:
            if os.path.exists(os.path.join(folder, part + ".bundle")):
                subprocess.run(["git", "-C", target, "fetch", "--quiet", os.path.join(folder, part + ".bundle"),
                                "+refs/*:refs/chain/%s/*" % os.path.basename(folder)], check=True, capture_output=True)
        with open(os.path.join(folders[-1], refs_name), encoding="utf-8") as handle:
            refs = json.load(handle)
        fetched = subprocess.run(["git", "-C", target, "for-each-ref", "--format=%(refname)", "refs/chain/"],
                                 check=True, capture_output=True, text=True).stdout.split()
        updates = "".join("update %s %s\n" % (ref, sha) for ref, sha in sorted(refs.items()) if ref != "HEAD")
        updates += "".join("delete %s\n" % ref for ref in fetched)
        subprocess.run(["git", "-C", target, "update-ref", "--stdin"], input=updates, text=True, check=True,
                       capture_output=True)
        subprocess.run(["git", "-C", target, "fsck", "--no-dangling"], check=True, capture_output=True)
        clone = os.path.join(workdir, part + "-clone.git")
        subprocess.run(["git", "clone", "--mirror", "--quiet", target, clone], check=True, capture_output=True)
        found.append(github_fixtures.git_refs(clone))
    return tuple(found)


def unique_bytes(root):
    """Bytes of the regular files below ``root``, each inode once (what hard links share counts once)."""
    seen, total = set(), 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            info = os.lstat(os.path.join(dirpath, name))
            if info.st_ino not in seen:
                seen.add(info.st_ino)
                total += info.st_size
    return total


def du_bytes(path):
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout.split()[0])


@pytest.fixture
def deletable(org):
    """Puts back the repository the scenario deletes upstream, for the next backend's run."""
    removed = []
    yield removed
    for repo in removed:
        with org[0].github.lock:
            org[0].github.repos[(ORG, repo.name.lower())] = repo


def test_every_set_is_complete_and_retention_keeps_every_repository(org, store, deletable, tmp_path):
    standin, _token, facts = org
    backend, storage, proxy = store
    names = sorted(n for n in facts if n != "dmca-repo")
    upstream = {n: (github_fixtures.git_refs(facts[n]["git_dir"]), github_fixtures.git_refs(facts[n]["wiki_dir"]))
                for n in names}
    runs = {}
    for day in DAYS:
        if day == -10:
            del upstream[DELETED]
            deletable.append(standin.github.remove_repo(ORG, DELETED))
            github_fixtures.edit_wiki(standin, ORG, WIKI_EDITED)
            upstream[WIKI_EDITED] = (upstream[WIKI_EDITED][0], github_fixtures.git_refs(facts[WIKI_EDITED]["wiki_dir"]))
        before = (unique_bytes(backend.root), du_bytes(os.path.join(backend.root, JOB))) if day == -44 and proxy is None \
            else None
        if proxy is not None:
            proxy.clear()
        run = backup(org, storage, at(day))
        runs[day] = run
        expected = {n: "carried" for n in upstream}
        if day == -45:
            expected = {n: "backed_up" for n in upstream}
        elif day == -10:
            expected[WIKI_EDITED] = "backed_up"  # a change to the wiki alone is backed up
        assert statuses(run) == expected, day
        assert run.changed  # referencing in a new day's set is a change
        assert len(run.result["artifacts"]) == len(upstream)
        assert {a["key"].split("/")[1] for a in run.result["artifacts"]} == {"objects"}
        carried = [a for a in run.result["artifacts"] if a.get("carried_from")]
        # Referenced where it is, written once: a carried artifact is the object an earlier set holds.
        assert all(a["key"] == a["carried_from"] for a in carried)
        if day == -44 and proxy is None:
            added_bytes, added_du = unique_bytes(backend.root) - before[0], du_bytes(os.path.join(backend.root, JOB)) - before[1]
            artifact_bytes = sum(a["size"] for a in carried)
            # Besides the set's own records (the run record and the manifest the run writes, which grow with the
            # number of items, not with their bytes), nothing was added: no copy, no link, no checksum record.
            keys = {a["key"] for a in run.result["artifacts"]}
            set_dir = os.path.join(backend.root, JOB, at(day).date().isoformat())
            records = [os.lstat(os.path.join(d, f)) for d, _dirs, files in os.walk(set_dir) for f in files
                       if os.path.relpath(os.path.join(d, f), backend.root) not in keys]
            record_bytes, record_du = sum(r.st_size for r in records), sum(r.st_blocks * 512 for r in records)
            assert added_bytes - record_bytes < artifact_bytes / 4 and added_du - record_du < artifact_bytes / 4, (
                added_bytes, record_bytes, added_du, record_du, artifact_bytes)
        if proxy is not None and day in (-44, 0):
            uploads = [e for e in proxy.log if e.operation in ("PutObject", "UploadPart") and ".tar.gz" in e.path
                       and "/checksums/" not in e.path]
            assert uploads == [] and proxy.count("CopyObject") == 0 and len(carried) == len(upstream)
        recorded = record(storage, run.result, at(day, hours=1))
        assert recorded.result["set_status"] == "success"
        assert sorted(e["name"] for e in recorded.result["run"]["entries"]) == sorted(upstream)

    # The rerun of the same day finds every item present: no change, no new artifact; only its own run record.
    listing = sorted(o.key for o in backend.list(""))
    rerun = backup(org, storage, at(0, hours=3))
    assert not rerun.changed and set(statuses(rerun).values()) == {"unchanged"}
    added = sorted(set(o.key for o in backend.list("")) - set(listing))
    assert [key for key in added if "/leases/" not in key] == [rerun.result["run_key"]] and "/runs/" in added[0], added
    assert len([key for key in added if key.startswith(JOB + "/leases/")]) == 2, added  # taken and released

    verified = module("backup_manifest", {"state": "verified", "job": JOB, "storage": storage,
                                          "set_date": at(0).date().isoformat()}, at(0, hours=4))
    assert not verified.failed, verified.result.get("msg")
    # Every repository's artifact, and what each requires (its tips; the earlier links of its chain), read and ok.
    keys = {a["key"] for a in rerun.result["artifacts"]}
    required = {r["key"] for a in rerun.result["artifacts"] for r in a.get("requires") or []}
    assert len(keys) == len(upstream) and len([k for k in required if "--tips_" in k]) == len(upstream)
    assert sorted(v["key"] for v in verified.result["verified"]) == sorted(keys | required)
    assert {v["status"] for v in verified.result["verified"]} == {"ok"}

    for number, policy in enumerate((README_POLICY, {"keep_days": 30})):
        pruned = module("backup_retention", dict(policy, job=JOB, storage=storage, retries=RETRIES), at(0, hours=5))
        assert not pruned.failed, pruned.result.get("msg")
        kept = {entry["date"] for entry in pruned.result["kept"]}
        sets = artifacts_by_set(backend)
        assert set(sets) == kept
        if number == 1:
            # keep_days alone would keep the last 30 days; the set holding the deleted repository's last
            # artifact stays (keep_removed_days), and it is named.
            assert kept == {at(d).date().isoformat() for d in (-43, -10, 0)}
            assert [(r["name"], r["last_set"], r["kept"]) for r in pruned.result["removed_items"]] == [
                (DELETED, at(-43).date().isoformat(), True)]
            [entry] = [e for e in pruned.result["kept"] if e["date"] == at(-43).date().isoformat()]
            assert entry["reasons"] == ["keep_removed_days: last artifact of %s, in no set since %s"
                                        % (DELETED, at(-10).date().isoformat())]
        # Each kept set is complete: every repository that existed that day has its artifact in it.
        for date, items in sets.items():
            present = names if date < at(-10).date().isoformat() else list(upstream)
            assert set(items) == {sanitize_name(n) for n in present}, date
        # Restore every repository from the newest kept set that holds it, and compare with the source.
        newest = max(sets)
        for name in names:
            holding = [d for d in sorted(sets, reverse=True) if sanitize_name(name) in sets[d]]
            assert holding, "%s has no artifact left after %s" % (name, policy)
            key = sets[holding[0]][sanitize_name(name)]
            refs, wiki_refs = restore_refs(backend, holding[0], key, str(tmp_path / ("restore-%d-%s" % (number, name))))
            if name == DELETED:
                assert holding[0] == at(-43).date().isoformat()
                assert refs == github_fixtures.git_refs(facts[name]["git_dir"]), name
            else:
                assert holding[0] == newest
                assert (refs, wiki_refs) == upstream[name], name


@pytest.fixture(scope="module")
def small_org(github_standin, tmp_path_factory):
    """Twelve small repositories and one big one (24 MiB that do not compress), last in name order."""
    root = str(tmp_path_factory.mktemp("killed"))
    token = github_standin.add_token(login="killed-bot")
    facts = github_fixtures.build_many(github_standin, "killed", root, count=12, seed=3, metadata=False)
    github_fixtures.add_big_repo(github_standin, "killed", root, "zz-big", 24 << 20)
    return github_standin, token, sorted(facts) + ["zz-big"]


def leftovers(backend):
    if isinstance(backend, S3Backend):
        uploads = backend.client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", [])
        return [u["Key"] for u in uploads]
    return [f for f in files_below(backend.root) if os.path.basename(f).startswith(".") and f.endswith(".partial")]


def test_a_killed_run_leaves_nothing_passed_off_as_complete(small_org, store):
    standin, token, names = small_org
    backend, storage, proxy = store
    args = {"organization": "killed", "token": token, "api_url": standin.api_url, "storage": storage, "retries": RETRIES,
            "job": JOB, "parallel": 1, "wiki": False, "issues": False, "pulls": False, "releases": False}
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    if started.hour == 23 and started.minute >= 30:
        # The runs below are 10 and 20 minutes later on the runs' clock and must fall on the killed run's date;
        # the store's own clock (an upload's start, a file's time) stays the real one, later than the runs'.
        started -= datetime.timedelta(minutes=45)
    if proxy is not None:
        proxy.add(Rule("UploadPart", "delay", seconds=1.5, count=-1))  # a slow link: parts take a while
    running = RunningModule(COLLECTIONS, "github_backup", args, env={"COREBACKUP_NOW": iso(started)})
    deadline = time.monotonic() + 120
    while not any("zz-big" in leftover for leftover in leftovers(backend)):  # the big artifact is being stored
        assert running.process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    running.kill()
    assert len(leftovers(backend)) == 1
    done = {k for k in (o.key for o in backend.list(JOB + "/")) if "/checksums/" not in k and k.endswith(".tar.gz")}
    assert len(done) == len(names) - 1 and not any("zz-big" in k for k in done)  # nothing under the big one's name
    # One artifact lost its checksum record, as if the run had been killed between the two writes.
    orphan = sorted(done)[0]
    backend.delete_many(["%s/checksums/%s.json" % tuple(orphan.rsplit("/", 1))])
    if proxy is not None:
        proxy.clear()

    rerun = module("github_backup", args, started + datetime.timedelta(minutes=10))
    assert not rerun.failed, rerun.result.get("msg")
    # The orphan requires its tips, which only its lost record named: backed up again, never taken as it is.
    orphan_name = ArtifactKey.parse(orphan).name
    assert statuses(rerun) == dict({n: "unchanged" for n in names[:-1]}, **{"zz-big": "backed_up", orphan_name: "backed_up"})
    assert rerun.result["cleaned"] == []  # younger than a day: it could belong to a run still going
    recorded = record(storage, rerun.result, started + datetime.timedelta(minutes=20))
    assert recorded.result["set_status"] == "success"
    assert len(recorded.result["run"]["artifacts"]) == len(names)  # the set lists what the killed run stored too
    [again] = [a for a in rerun.result["artifacts"] if ArtifactKey.parse(a["key"]).name == orphan_name]
    assert again["key"] != orphan and [r for r in again["requires"] if "--tips_" in r["key"]]
    verified = module("backup_manifest", {"state": "verified", "job": JOB, "storage": storage}, started)
    assert not verified.failed and {v["status"] for v in verified.result["verified"]} == {"ok"}
    items = [v for v in verified.result["verified"] if "--tips_" not in v["key"]]
    assert len(items) == len(names) and len(verified.result["verified"]) == 2 * len(names)  # each with its tips

    later = module("github_backup", args, started + datetime.timedelta(days=1, hours=1))
    assert not later.failed, later.result.get("msg")
    assert len(later.result["cleaned"]) == 1 and "zz-big" in later.result["cleaned"][0]
    assert leftovers(backend) == []


def test_a_key_rotation_backs_up_from_the_source(org, tmp_path, age_identity):
    standin, token, _facts = org
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    new_identity = str(tmp_path / "new-key.txt")
    subprocess.run(["age-keygen", "-o", new_identity], check=True, capture_output=True)
    new_recipient = subprocess.run(["age-keygen", "-y", new_identity], check=True, capture_output=True,
                                   text=True).stdout.strip()
    include = ["^service-0[12]$"]
    first = backup(org, storage, at(-2), include=include, encryption={"recipients": [age_identity[1]]})
    rotated = backup(org, storage, at(-1), include=include, encryption={"recipients": [new_recipient]})
    assert set(statuses(first).values()) == set(statuses(rotated).values()) == {"backed_up"}
    for artifact in rotated.result["artifacts"]:
        path = os.path.join(storage["path"], artifact["key"])
        with open(path, "rb") as handle:
            plain = subprocess.run(["age", "-d", "-i", new_identity], stdin=handle, capture_output=True, check=True).stdout
        assert plain[:2] == b"\x1f\x8b"  # the new key reads today's set
        with open(path, "rb") as handle:
            old = subprocess.run(["age", "-d", "-i", age_identity[0]], stdin=handle, capture_output=True, check=False)
        assert old.returncode != 0  # the old key does not
    same = backup(org, storage, at(0), include=include, encryption={"recipients": [new_recipient]})
    assert set(statuses(same).values()) == {"carried"}


def test_stores_that_are_not_a_directory_are_refused(org, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a store")
    missing = tmp_path / "missing"
    for path, what in ((afile, "is not a directory"), (missing, "does not exist")):
        storage = {"type": "filesystem", "path": str(path)}
        query = module("backup_manifest", {"state": "query", "job": JOB, "storage": storage}, at(0))
        assert query.failed and what in query.result["msg"] and str(path) in query.result["msg"]
        pruned = module("backup_retention", {"job": JOB, "storage": storage, "keep_days": 3}, at(0))
        assert pruned.failed and what in pruned.result["msg"]
    writer = module("github_backup", {"organization": ORG, "token": org[1], "api_url": org[0].api_url, "job": JOB,
                                      "storage": {"type": "filesystem", "path": str(missing / "deeper")}}, at(0))
    assert writer.failed and "neither does its parent" in writer.result["msg"]
    assert not missing.exists()
    into_file = module("github_backup", {"organization": ORG, "token": org[1], "api_url": org[0].api_url, "job": JOB,
                                         "storage": {"type": "filesystem", "path": str(afile)}}, at(0))
    assert into_file.failed and "is not a directory" in into_file.result["msg"]
    assert afile.read_text() == "not a store"
