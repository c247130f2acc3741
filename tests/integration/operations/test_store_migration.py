# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A store of the release before records (manifest schema 2, made by that release: tests/fixtures/make_v2_store.py)
is read, verified, drilled, restored, backed up into and pruned by this one, through ansible-playbook."""

from __future__ import annotations

import json
import os
import tarfile

from ansible_collections.corebackup.backup.tests.testbed.ansible_tasks import Task, run_tasks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "store-v2.tar.gz")
DAY4 = "2026-11-23T02:00:00Z"


def test_a_store_of_the_previous_release_is_read_verified_drilled_restored_and_pruned(tmp_path):
    store = tmp_path / "store"
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(str(store), filter="data")
    old_view = (store / "web" / "2026-11-22" / "manifest.json").read_bytes()
    assert json.loads(old_view)["schema_version"] == 2
    source = tmp_path / "src"
    (source / "etc").mkdir(parents=True)
    (source / "etc" / "app.conf").write_text("listen = 127.0.0.1\n")
    (source / "www").mkdir()
    (source / "www" / "index.html").write_text("<p>day 4</p>\n")
    storage = {"type": "filesystem", "path": str(store)}

    def task(module, now="2026-11-23T06:00:00Z", **args):
        return Task(module, dict(args, storage=storage), {"COREBACKUP_NOW": now})

    results, run = run_tasks(COLLECTIONS, [
        task("backup_manifest", state="query", job="web"),
        task("backup_manifest", state="query", job="notes"),
        task("backup_health", jobs=["web"]),
        task("backup_restore", state="drill", job="web", set_date="2026-11-21"),
        task("backup_restore", job="notes", dest=str(tmp_path / "restored")),
        task("files_backup", now=DAY4, job="web", paths=[str(source / "etc"), str(source / "www")]),
        task("backup_manifest", state="verified", job="web"),
        task("backup_manifest", state="query", job="web"),
        task("backup_retention", job="web", keep_days=1, keep_last=2),
        task("backup_manifest", state="query", job="web"),
        task("backup_restore", state="drill", job="web", set_date="2026-11-22", now="2026-11-23T08:00:00Z"),
        task("backup_manifest", state="query", job="web", set_date="2026-11-22"),
    ])
    (web, notes, health, drill, restore, backup, verified, after_verify, prune, after_prune, drill_after,
     last) = results
    for result in results:
        assert not result.get("failed"), (result.get("msg"), run.stdout[-3000:])

    # Read as they are: the runs, the verification and the drill the old release kept in manifest.json.
    assert [(s["date"], s["status"]) for s in web["sets"]] == [
        ("2026-11-22", "success"), ("2026-11-21", "success"), ("2026-11-20", "success")]
    newest = web["sets"][0]
    assert newest["verified_at"] == "2026-11-22T07:00:00Z" and newest["last_drill"]["result"] == "ok"
    assert newest["last_verification"] == {"when": "2026-11-22T06:00:00Z", "checked": 2, "bad": 0, "artifacts": 2}
    assert newest["problems"] == [] and newest["items"] == 2
    assert [(s["date"], s["status"]) for s in notes["sets"]] == [
        ("2026-11-22", "success"), ("2026-11-21", "partial"), ("2026-11-20", "success")]
    [job_health] = health["jobs"]
    assert job_health["last_verified"] == "2026-11-22T07:00:00Z"
    assert job_health["last_drill_success"] == "2026-11-22T07:00:00Z"

    # A carried artifact of an old set drills; an old set restores.
    assert [r["status"] for r in drill["restored"]] == ["ok", "ok"]
    assert (tmp_path / "restored" / "notes" / "a.txt").read_text() == "first\n"

    # The first run of this release writes records for its new set only.
    assert backup["status"] == "success"
    assert (store / "web" / "2026-11-23" / "runs").is_dir() and not (store / "web" / "2026-11-23" / "legacy").exists()

    # A verification writes its record into the old sets; the old manifest.json is kept as it was.
    assert [v["status"] for v in verified["verified"]] == ["ok"] * 8
    assert (store / "web" / "2026-11-22" / "legacy" / "manifest.json").read_bytes() == old_view
    assert json.loads((store / "web" / "2026-11-22" / "manifest.json").read_text())["schema_version"] == 5
    by_date = {s["date"]: s for s in after_verify["sets"]}
    assert [len(by_date[day]["runs"]) for day in sorted(by_date)] == [1, 1, 1, 1]  # no run written into an old set
    assert by_date["2026-11-22"]["verified_at"] == "2026-11-23T06:00:00Z"
    assert by_date["2026-11-22"]["last_drill"]["when"] == "2026-11-22T07:00:00Z"  # the old drill, still read
    assert by_date["2026-11-20"]["verified_at"] == "2026-11-23T06:00:00Z"

    # Pruning an old set writes its deletion record first, and deletes all of it.
    assert [d["date"] for d in prune["deleted"]] == ["2026-11-21", "2026-11-20"]
    assert len(prune["deletion_records"]) == 2
    assert sorted(os.listdir(str(store / "web" / "deletions"))) == sorted(
        key.rsplit("/", 1)[1] for key in prune["deletion_records"])
    assert not (store / "web" / "2026-11-20").exists() and not (store / "web" / "2026-11-21").exists()
    assert [s["date"] for s in after_prune["sets"]] == ["2026-11-23", "2026-11-22"]

    # An old set that was kept still drills, and its records say so.
    assert drill_after["drill"]["result"] == "ok"
    [kept] = last["sets"]
    assert kept["verified_at"] == "2026-11-23T08:00:00Z" and kept["last_drill"]["when"] == "2026-11-23T08:00:00Z"
