# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""github_backup stores a chain of bundles: a full one, then what changed; every day restores ref by ref (the
stand-in's repositories over smart HTTP, backup_restore as users run it)."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tarfile

import pytest

from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module
from ansible_collections.corebackup.backup.tests.testbed.github_standin import lfs_pointer, run_git

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
ORG, REPO, JOB = "chainorg", "bench-001", "chains"
START = datetime.datetime(2026, 5, 1, 2, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def chain_org(github_standin, tmp_path_factory):
    token = github_standin.add_token(login="chain-bot")
    facts = github_fixtures.build_many(github_standin, ORG, str(tmp_path_factory.mktemp("chainorg")), count=1, seed=5,
                                       metadata=False)
    assert sorted(facts) == [REPO]
    return github_standin, token


def at(day):
    return {"COREBACKUP_NOW": (START + datetime.timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def backup(org, storage, day, **options):
    standin, token = org
    run = run_module(COLLECTIONS, "github_backup", dict({
        "organization": ORG, "token": token, "api_url": standin.api_url, "storage": storage, "job": JOB,
        "api_mode": "rest", "issues": False, "pulls": False, "releases": False, "labels": False, "milestones": False,
        "wiki": False}, **options), env=at(day))
    assert not run.failed, run.result.get("msg")
    [entry] = run.result["repositories"]
    [artifact] = [a for a in run.result["artifacts"] if a["key"] == entry["key"]]
    return dict(entry, run_warnings=run.result.get("warnings", [])), artifact


def restored_refs(storage, day, tmp_path):
    dest = str(tmp_path / ("restore-%d" % day))
    run = run_module(COLLECTIONS, "backup_restore", {"job": JOB, "storage": storage, "dest": dest, "items": [REPO],
                                                     "set_date": (START + datetime.timedelta(days=day)).date().isoformat()},
                     env=at(day))
    assert not run.failed, run.result.get("msg")
    [item] = run.result["restored"]
    return github_fixtures.git_refs(os.path.join(item["target"], "repo.git")), item


def upstream(org):
    return github_fixtures.git_refs(org[0].github.repo(ORG, REPO).git_dir)


def test_a_key_rotation_starts_a_new_chain_encrypted_to_the_new_key(chain_org, tmp_path, age_identity):
    """Packed otherwise (encrypted now): nothing of the old chain is built on; the new one restores with the key."""
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    _entry, first = backup(chain_org, storage, 10)
    github_fixtures.push_commit(chain_org[0], ORG, REPO)
    _entry, rotated = backup(chain_org, storage, 11, encryption={"recipients": [age_identity[1]]})
    assert first["metadata"]["bundle"] == "full" and rotated["metadata"]["bundle"] == "full", rotated["metadata"]
    assert rotated["key"].endswith(".tar.gz.age") and [r for r in rotated["requires"] if "--tips" not in r["key"]] == []
    github_fixtures.push_commit(chain_org[0], ORG, REPO)
    _entry, next_day = backup(chain_org, storage, 12, encryption={"recipients": [age_identity[1]]})
    assert next_day["metadata"]["bundle"] == "incremental"  # the tips are readable without the private key
    assert [r["key"] for r in next_day["requires"] if "--tips" not in r["key"]] == [rotated["key"]]
    dest = str(tmp_path / "restored")
    run = run_module(COLLECTIONS, "backup_restore", {
        "job": JOB, "storage": storage, "dest": dest, "items": [REPO], "identity_file": age_identity[0],
        "set_date": (START + datetime.timedelta(days=12)).date().isoformat()}, env=at(12))
    assert not run.failed, run.result.get("msg")
    assert github_fixtures.git_refs(os.path.join(run.result["restored"][0]["target"], "repo.git")) == upstream(chain_org)


def test_each_day_stores_what_changed_and_restores_as_it_was(chain_org, tmp_path):
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    states, artifacts = {}, {}
    entry, artifacts[0] = backup(chain_org, storage, 0)
    states[0] = upstream(chain_org)
    assert entry["status"] == "backed_up" and artifacts[0]["metadata"]["bundle"] == "full"
    # Day 1: two commits: an incremental bundle, requiring the full one.
    github_fixtures.push_commit(chain_org[0], ORG, REPO)
    github_fixtures.push_commit(chain_org[0], ORG, REPO)
    entry, artifacts[1] = backup(chain_org, storage, 1)
    states[1] = upstream(chain_org)
    assert artifacts[1]["metadata"]["bundle"] == "incremental", artifacts[1]["metadata"]
    assert [r["key"] for r in artifacts[1]["requires"] if "--tips" not in r["key"]] == [artifacts[0]["key"]]
    assert artifacts[1]["size"] < artifacts[0]["size"]
    # Day 2: a branch deleted and a tag on an old commit: no new object, only the refs list.
    git_dir = chain_org[0].github.repo(ORG, REPO).git_dir
    branches = [r for r in states[1] if r.startswith("refs/heads/") and not r.endswith("/main")]
    run_git(git_dir, "update-ref", "-d", branches[0])
    run_git(git_dir, "tag", "old-one", states[0]["refs/heads/main"])
    chain_org[0].github.refresh_git(chain_org[0].github.repo(ORG, REPO), "2026-05-03T01:00:00Z")
    entry, artifacts[2] = backup(chain_org, storage, 2)
    states[2] = upstream(chain_org)
    assert artifacts[2]["metadata"]["bundle"] == "refs", artifacts[2]["metadata"]
    # Day 3: a force-push (main rewritten): a full bundle starts a new chain.
    run_git(git_dir, "update-ref", "refs/heads/main", states[0]["refs/heads/main"])
    github_fixtures.push_commit(chain_org[0], ORG, REPO)
    entry, artifacts[3] = backup(chain_org, storage, 3)
    states[3] = upstream(chain_org)
    assert artifacts[3]["metadata"]["bundle"] == "full" and "rewritten" in artifacts[3]["metadata"]["bundle_reason"]
    for day in range(4):
        refs, item = restored_refs(storage, day, tmp_path)
        assert refs == states[day], day

    def check(day):  # backup_restore in check mode: reads and checks, writes nothing
        return run_module(COLLECTIONS, "backup_restore", {
            "job": JOB, "storage": storage, "dest": str(tmp_path / "checked"), "items": [REPO],
            "set_date": (START + datetime.timedelta(days=day)).date().isoformat()}, env=at(4), check=True)

    checked = check(2)
    assert not checked.failed and checked.result["restored"][0]["chain"] == 3, checked.result  # 2 links + the tips
    assert not os.path.exists(str(tmp_path / "checked"))
    # A missing middle link: check mode names it, day 2's restore fails by name, nothing half-restored is left.
    os.remove(os.path.join(storage["path"], artifacts[0]["key"]))
    checked = check(2)
    assert checked.failed and artifacts[0]["key"] in checked.result["msg"], checked.result
    dest = str(tmp_path / "broken")
    broken = run_module(COLLECTIONS, "backup_restore", {"job": JOB, "storage": storage, "dest": dest, "items": [REPO],
                                                        "set_date": (START + datetime.timedelta(days=1)).date().isoformat()},
                        env=at(4))
    assert broken.failed and artifacts[0]["key"] in broken.result["msg"], broken.result.get("msg")
    assert not os.path.exists(os.path.join(dest, REPO))
    # Day 4: the newest link is not what was recorded (cut short): never built on, a full bundle starts a new chain.
    newest = os.path.join(storage["path"], artifacts[3]["key"])
    os.chmod(newest, 0o600)
    os.truncate(newest, artifacts[3]["size"] // 2)
    github_fixtures.push_commit(chain_org[0], ORG, REPO)
    entry, artifacts[4] = backup(chain_org, storage, 4)
    assert artifacts[4]["metadata"]["bundle"] == "full", artifacts[4]["metadata"]
    assert artifacts[3]["key"] in artifacts[4]["metadata"]["bundle_reason"]
    assert restored_refs(storage, 4, tmp_path)[0] == upstream(chain_org)


def archive_names(storage, artifact):
    """The top-level names in a stored (unencrypted) artifact and the LFS oids it holds."""
    with tarfile.open(os.path.join(storage["path"], artifact["key"])) as tar:
        names = tar.getnames()
    return {n.split("/")[0] for n in names}, {n.rsplit("/", 1)[1] for n in names if n.startswith("lfs/objects/")
                                              and len(n.rsplit("/", 1)[1]) == 64}


def test_the_wiki_and_lfs_are_chained_too_and_the_cache_is_rebuilt_when_it_cannot_be_trusted(chain_org, tmp_path):
    standin = chain_org[0]
    record = standin.github.repo(ORG, REPO)
    github_fixtures.add_wiki(standin, ORG, REPO)
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    cache = str(tmp_path / "cache")
    options = {"wiki": True, "lfs": True, "cache_dir": cache}
    blobs = {}

    def add_lfs(name):
        data = os.urandom(20000)
        blobs[name] = standin.github.add_lfs_object(record, data), data
        github_fixtures.push_commit(standin, ORG, REPO, files={".gitattributes": github_fixtures.LFS_ATTRIBUTES,
                                                               name + ".bin": lfs_pointer(data)})

    states, artifacts, warnings = {}, {}, {}

    def day(number):
        entry, artifacts[number] = backup(chain_org, storage, number, **options)
        states[number] = (upstream(chain_org), github_fixtures.git_refs(record.wiki_dir),
                          {oid for oid, _data in blobs.values()})
        warnings[number] = entry["run_warnings"]
        return entry

    add_lfs("a")
    day(20)
    assert artifacts[20]["metadata"]["bundle"] == "full"
    assert oct(os.stat(cache).st_mode & 0o777) == "0o700"
    for folder, _dirs, files in os.walk(cache):  # the token stays in git's environment: no file of the cache holds it
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                assert chain_org[1].encode() not in handle.read(), os.path.join(folder, name)
    assert archive_names(storage, artifacts[20]) == ({"refs.json", "repo.bundle", "wiki-refs.json", "wiki.bundle",
                                                      "lfs", "lfs.json", "metadata"}, {blobs["a"][0]})
    # Day 21: only the wiki changed: its bundle alone, the LFS object stored on day 20 not again.
    github_fixtures.edit_wiki(standin, ORG, REPO)
    assert day(21)["status"] == "backed_up"
    assert artifacts[21]["metadata"]["bundle"] == "incremental"
    assert archive_names(storage, artifacts[21]) == ({"refs.json", "wiki-refs.json", "wiki.bundle", "lfs", "lfs.json",
                                                      "metadata"}, set())
    # Day 22: a new LFS object: only it is stored.
    add_lfs("b")
    day(22)
    assert archive_names(storage, artifacts[22])[1] == {blobs["b"][0]}
    # Day 23: the cache is gone: cloned again, the chain goes on (the tips are in the new clone).
    shutil.rmtree(os.path.join(cache, ORG))
    github_fixtures.push_commit(standin, ORG, REPO)
    day(23)
    assert artifacts[23]["metadata"]["bundle"] == "incremental"
    # Day 24: the cached mirror lost its objects: its check fails, it is cloned again, never trusted.
    mirror = os.path.join(cache, ORG, REPO + ".git")
    for pack in os.listdir(os.path.join(mirror, "objects", "pack")):
        os.remove(os.path.join(mirror, "objects", "pack", pack))
    github_fixtures.push_commit(standin, ORG, REPO)
    entry = day(24)
    assert entry["status"] == "backed_up" and artifacts[24]["metadata"]["bundle"] == "incremental"
    assert [w for w in warnings[24] if "cloned again" in w], warnings[24]
    assert not [w for w in warnings[23] + warnings[22] if "cloned again" in w]  # a first clone is no warning
    # Day 25: a foreign mirror in its place (another URL in its marker): cloned again.
    marker = os.path.join(mirror, "corebackup-cache.json")
    with open(marker, encoding="utf-8") as handle:
        foreign = json.load(handle)
    with open(marker, "w", encoding="utf-8") as handle:
        json.dump(dict(foreign, url="http://127.0.0.1:1/other/repo.git"), handle)
    github_fixtures.edit_wiki(standin, ORG, REPO)
    run = run_module(COLLECTIONS, "github_backup", dict({
        "organization": ORG, "token": chain_org[1], "api_url": standin.api_url, "storage": storage, "job": JOB,
        "api_mode": "rest", "issues": False, "pulls": False, "releases": False, "labels": False, "milestones": False},
        **options), env=at(25))
    assert not run.failed, run.result.get("msg")
    assert any("cloned again" in w and "other/repo.git" in w for w in run.result.get("warnings", [])), run.result
    with open(marker, encoding="utf-8") as handle:
        assert json.load(handle)["url"] == foreign["url"]
    states[25] = (upstream(chain_org), github_fixtures.git_refs(record.wiki_dir), {oid for oid, _data in blobs.values()})
    # Day 26: a cached LFS object damaged on disk, and a force-push: the full bundle stores every LFS object again, the
    # damaged one fetched again first (never stored as it is). git-lfs's logs (it logs its environment, git's
    # credentials included, when it fails) are not kept in the cache.
    oid_a = blobs["a"][0]
    cached = os.path.join(mirror, "lfs", "objects", oid_a[:2], oid_a[2:4], oid_a)
    with open(cached, "r+b") as handle:
        handle.write(b"damaged")
    os.makedirs(os.path.join(mirror, "lfs", "logs"), exist_ok=True)
    with open(os.path.join(mirror, "lfs", "logs", "20260601T000000.log"), "w", encoding="utf-8") as handle:
        handle.write("GIT_CONFIG_VALUE_0=Authorization: Basic ...\n")
    run_git(record.git_dir, "update-ref", "refs/heads/main", states[22][0]["refs/heads/main"])
    github_fixtures.push_commit(standin, ORG, REPO)
    day(26)
    assert artifacts[26]["metadata"]["bundle"] == "full"
    assert [w for w in warnings[26] if "LFS object(s) of the mirror do not hold the bytes" in w], warnings[26]
    assert archive_names(storage, artifacts[26])[1] == {blobs["a"][0], blobs["b"][0]}
    assert not os.path.exists(os.path.join(mirror, "lfs", "logs"))
    # Every day restores as it was: refs, wiki refs, and every LFS object of the day with its bytes.
    for number in range(20, 27):
        refs, item = restored_refs(storage, number, tmp_path)
        assert refs == states[number][0], number
        assert github_fixtures.git_refs(os.path.join(item["target"], "wiki.git")) == states[number][1], number
        lfs_dir = os.path.join(item["target"], "lfs", "objects")
        found = {name for _dirs, _sub, files in os.walk(lfs_dir) for name in files}
        assert found == states[number][2], number
        for name, (oid, data) in blobs.items():
            if oid in found:
                with open(os.path.join(lfs_dir, oid[:2], oid[2:4], oid), "rb") as handle:
                    assert handle.read() == data, name
                with open(os.path.join(item["target"], REPO, name + ".bin"), "rb") as handle:
                    assert handle.read() == data, name  # the working clone holds the file, not its pointer
