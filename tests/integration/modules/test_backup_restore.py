# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""backup_restore against the real test bed: back up, restore into a new target, compare with the source."""

from __future__ import annotations

import json
import os
import uuid

import pymongo
import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from ansible_collections.corebackup.backup.tests.conftest import files_below
from ansible_collections.corebackup.backup.tests.integration.modules import test_files_backup as files_tests
from ansible_collections.corebackup.backup.tests.integration.modules import test_volume_snapshot as volume_tests
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module, run_module_watching_argv
from ansible_collections.corebackup.backup.tests.testbed.github_standin import run_git

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
RAW = CodecOptions(document_class=RawBSONDocument)
JOB = "mixed"


def module(name, **args):
    return run_module(COLLECTIONS, name, args, check=args.pop("_check", False))


def restore(storage, identity, **args):
    return module("backup_restore", job=args.pop("job", JOB), storage=storage, identity_file=identity, **args)


def record(storage, result):
    recorded = module("backup_manifest", storage=storage, result=result)
    assert not recorded.failed, recorded.result.get("msg")


def corrupt(storage, key):
    path = os.path.join(storage["path"], key)
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))


@pytest.fixture
def encrypted(age_identity):
    return {"recipients": [age_identity[1]]}


def test_files_restore_bit_for_bit_and_refuse_what_they_must(tmp_path, age_identity, encrypted):
    source = str(tmp_path / "data")
    files_tests.make_tree(source)
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    backup = module("files_backup", paths=[source], storage=storage, job=JOB, encryption=encrypted)
    assert not backup.failed, backup.result.get("msg")
    record(storage, backup.result)
    dest = str(tmp_path / "restored")
    checked = restore(storage, age_identity[0], dest=dest, _check=True)
    assert not checked.failed and checked.result["restored"][0]["checksum"] == "ok" and not os.path.exists(dest)
    run = restore(storage, age_identity[0], dest=dest)
    assert not run.failed, run.result.get("msg")
    [item] = run.result["restored"]
    assert item["target"] == os.path.join(dest, "data") and item["checksum"] == "ok" and item["files"] == 7
    assert files_tests.snapshot(os.path.join(dest, "data")) == files_tests.snapshot(source)
    again = restore(storage, age_identity[0], dest=dest)
    assert again.failed and "is not empty: set force" in again.result["msg"]
    (tmp_path / "restored" / "data" / "stale").write_text("must go")
    forced = restore(storage, age_identity[0], dest=dest, force=True)
    assert not forced.failed and not os.path.exists(os.path.join(dest, "data", "stale"))
    corrupt(storage, backup.result["artifacts"][0]["key"])
    elsewhere = str(tmp_path / "elsewhere")
    refused = restore(storage, age_identity[0], dest=elsewhere)
    assert refused.failed and "is not what was recorded" in refused.result["msg"]
    assert files_below(elsewhere) == []  # nothing was written where the restore was going
    identity_text = open(age_identity[0], encoding="utf-8").read()
    secret_key = [line for line in identity_text.splitlines() if line.startswith("AGE-SECRET-KEY")][0]
    assert secret_key not in run.all_text() + json.dumps(run.result)


@pytest.fixture(scope="module")
def restore_org(github_standin, tmp_path_factory):
    token = github_standin.add_token(login="restore-bot")
    facts = github_fixtures.build_many(github_standin, "restoreorg", str(tmp_path_factory.mktemp("restoreorg")), count=2,
                                       seed=9)
    return github_standin, token, facts


def test_github_restore_gives_a_mirror_a_clone_and_the_metadata(tmp_path, restore_org, age_identity):
    standin, token, facts = restore_org
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    backup = module("github_backup", organization="restoreorg", token=token, api_url=standin.api_url,
                    storage=storage, job=JOB)
    assert not backup.failed, backup.result.get("msg")
    record(storage, backup.result)
    run = restore(storage, age_identity[0], dest=str(tmp_path / "restored"), items=["bench-001"])
    assert not run.failed, run.result.get("msg")
    [item] = run.result["restored"]
    target = item["target"]
    assert github_fixtures.git_refs(os.path.join(target, "repo.git")) == facts["bench-001"]["refs"]
    assert item["refs"] == len(facts["bench-001"]["refs"])
    assert os.path.isfile(os.path.join(target, "bench-001", "ID"))  # the working clone
    meta = os.path.join(target, "metadata")
    documents = {name[:-5]: json.load(open(os.path.join(meta, name), encoding="utf-8"))
                 for name in os.listdir(meta) if name.endswith(".json")}
    assert documents["repository"]["full_name"] == "restoreorg/bench-001"
    source = facts["bench-001"]
    assert source["issues"] and source["pulls"] and source["labels"]
    for export in ("issues", "pulls", "labels", "releases", "milestones"):
        assert len(documents[export]) == source[export], export
    assert sum(len(i["comment_list"]) for i in documents["issues"] + documents["pulls"]) == source["issue_comments"]
    assert token not in run.all_text() + json.dumps(run.result)


def test_a_volume_restores_into_a_new_volume_and_force_empties_an_old_one(docker_engine, tmp_path, age_identity):
    engine = docker_engine
    volume = volume_tests.new_volume(engine)
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    backup = module("volume_snapshot", volumes=[volume], helper_image=engine.image, docker_host=engine.url,
                    storage=storage, job=JOB)
    assert not backup.failed, backup.result.get("msg")
    record(storage, backup.result)
    target = "restored-" + uuid.uuid4().hex[:6]
    run = restore(storage, age_identity[0], items=[volume], volume=target, helper_image=engine.image,
                  docker_host=engine.url)
    assert not run.failed, run.result.get("msg")
    source, copy = volume_tests.members(engine, volume), volume_tests.members(engine, target)
    copy.pop("."), source.pop(".")
    assert copy == source
    engine.client.containers.run(engine.image, ["sh", "-c", "echo stale > /v/stale"], remove=True, network_mode="none",
                                 volumes={target: {"bind": "/v", "mode": "rw"}})
    refused = restore(storage, age_identity[0], items=[volume], volume=target, helper_image=engine.image,
                      docker_host=engine.url)
    assert refused.failed and "is not empty: set force" in refused.result["msg"]
    forced = restore(storage, age_identity[0], items=[volume], volume=target, helper_image=engine.image,
                     docker_host=engine.url, force=True)
    assert not forced.failed and "stale" not in volume_tests.members(engine, target)


def test_mongodb_restores_under_another_name_and_refuses_to_overwrite(mongo_server, tmp_path, age_identity):
    client = pymongo.MongoClient(mongo_server)
    for name in ("rshop", "rshop_copy"):
        client.drop_database(name)
    client.rshop.orders.insert_many([{"n": n, "tags": ["a"] * (n % 3)} for n in range(2500)])
    client.rshop.orders.create_index([("n", 1)], unique=True)
    client.rshop.create_collection("notes", capped=True, size=65536)
    client.rshop.notes.insert_many([{"note": n} for n in range(10)])
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    backup = module("mongo_dump", uri=mongo_server, databases=["rshop"], storage=storage, job=JOB)
    assert not backup.failed, backup.result.get("msg")
    record(storage, backup.result)
    run = restore(storage, age_identity[0], items=["rshop"], uri=mongo_server, ns_from="rshop", ns_to="rshop_copy")
    assert not run.failed, run.result.get("msg")
    assert run.result["restored"][0]["documents"] == 2510
    for name in ("orders", "notes"):
        source = sorted(d.raw for d in client.rshop[name].with_options(codec_options=RAW).find())
        assert sorted(d.raw for d in client.rshop_copy[name].with_options(codec_options=RAW).find()) == source
        assert list(client.rshop_copy[name].list_indexes()) == list(client.rshop[name].list_indexes())
    options = {c["name"]: c["options"] for c in client.rshop_copy.list_collections()}
    assert options["notes"] == {"capped": True, "size": 65536}
    refused = restore(storage, age_identity[0], items=["rshop"], uri=mongo_server, ns_from="rshop", ns_to="rshop_copy")
    assert refused.failed and "rshop_copy.notes exists: set drop to replace it" in refused.result["msg"]
    assert not [n for n in client.rshop_copy.list_collection_names() if n.startswith("corebackup_restore")]
    dropped = restore(storage, age_identity[0], items=["rshop"], uri=mongo_server, ns_from="rshop", ns_to="rshop_copy",
                      drop=True)
    assert not dropped.failed and client.rshop_copy.orders.count_documents({}) == 2500


def test_a_drill_over_four_kinds_records_its_result_and_a_corrupt_artifact_fails_it(
        tmp_path, docker_engine, mongo_server, restore_org, age_identity):
    standin, token, _facts = restore_org
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    source = str(tmp_path / "data")
    files_tests.make_tree(source)
    volume = volume_tests.new_volume(docker_engine)
    client = pymongo.MongoClient(mongo_server)
    client.drop_database("drilldb")
    client.drilldb.things.insert_many([{"n": n} for n in range(300)])
    runs = [module("files_backup", paths=[source], storage=storage, job=JOB),
            module("github_backup", organization="restoreorg", token=token, api_url=standin.api_url, storage=storage,
                   job=JOB),
            module("volume_snapshot", volumes=[volume], helper_image=docker_engine.image, docker_host=docker_engine.url,
                   storage=storage, job=JOB),
            module("mongo_dump", uri=mongo_server, databases=["drilldb"], storage=storage, job=JOB)]
    for run in runs:
        assert not run.failed, run.result.get("msg")
        record(storage, run.result)
    drill = restore(storage, age_identity[0], state="drill", uri=mongo_server, helper_image=docker_engine.image,
                    docker_host=docker_engine.url)
    assert not drill.failed, drill.result.get("msg")
    assert {r["name"]: r["status"] for r in drill.result["restored"]} == {
        "data": "ok", "bench-001": "ok", "bench-002": "ok", volume: "ok", "drilldb": "ok"}
    sets = module("backup_manifest", state="query", job=JOB, storage=storage).result["sets"]
    assert sets[0]["last_drill"]["result"] == "ok" and sets[0]["verified_at"] == sets[0]["last_drill"]["when"]
    assert "drilldb" not in "".join(n for n in client.list_database_names() if n.startswith("corebackup_drill"))
    bad_key = runs[3].result["artifacts"][0]["key"]
    corrupt(storage, bad_key)
    failed = restore(storage, age_identity[0], state="drill", uri=mongo_server, helper_image=docker_engine.image,
                     docker_host=docker_engine.url)
    assert failed.failed and "drilldb:" in failed.result["msg"] and bad_key in failed.result["msg"]
    sets = module("backup_manifest", state="query", job=JOB, storage=storage).result["sets"]
    assert sets[0]["last_drill"]["result"] == "failed" and sets[0]["verified_at"] is None


def test_a_repository_is_pushed_to_a_github_without_its_pull_refs(tmp_path, restore_org, age_identity):
    standin, token, facts = restore_org
    standin.github.add_org("pushorg")
    # A pull request's ref, as GitHub keeps one in every repository with pull requests.
    run_git(facts["bench-002"]["git_dir"], "update-ref", "refs/pull/1/head", "refs/heads/main")
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    backup = module("github_backup", organization="restoreorg", token=token, api_url=standin.api_url,
                    storage=storage, job=JOB, include=["^bench-002$"])
    assert not backup.failed, backup.result.get("msg")
    record(storage, backup.result)
    push_to = {"api_url": standin.api_url, "organization": "pushorg", "token": token}
    run, seen = run_module_watching_argv(COLLECTIONS, "backup_restore", {
        "job": JOB, "storage": storage, "identity_file": age_identity[0], "dest": str(tmp_path / "restored"),
        "push_to": push_to})
    assert not run.failed, run.result.get("msg")
    assert run.result["restored"][0]["pushed_to"] == "pushorg/bench-002"
    assert any(b"push" in cmdline for cmdline in seen) and not any(token.encode() in cmdline for cmdline in seen)
    pushed = github_fixtures.git_refs(standin.github.repo("pushorg", "bench-002").git_dir)
    source = github_fixtures.git_refs(facts["bench-002"]["git_dir"])
    assert pushed == {ref: sha for ref, sha in source.items() if not ref.startswith("refs/pull/")}
    assert any(ref.startswith("refs/pull/") for ref in source)  # GitHub's pull refs stay behind
    assert token not in run.all_text() + json.dumps(run.result)
    again = restore(storage, age_identity[0], dest=str(tmp_path / "again"), push_to=push_to)
    assert again.failed and "cannot create bench-002" in again.result["msg"] and "already exists" in again.result["msg"]
