# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The backup, verify, drill, restore and prune cycle on a filesystem store: every fact is a file written once.

File permissions cannot separate create from delete (docs/operations.md), so here the proof is the store itself:
after each play, every file that was there before is still there with the same inode and bytes, but the views
(``manifest.json``, ``SHA256SUMS``, rewritten freely) and the sets that prune deleted, which it recorded first.
(S3, each play under its own least-privilege credential: test_iam_policies.py.)
"""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.corebackup.backup.tests.testbed.ansible_tasks import Task, run_tasks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
DAY1, DAY2 = "2026-01-01", "2026-01-02"
VIEWS = ("manifest.json", "SHA256SUMS")


def files(store):
    """{relative path: (inode, sha256)} of every file of the store."""
    found = {}
    for directory, _dirs, names in os.walk(store):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, store)] = (os.stat(path).st_ino, hashlib.sha256(handle.read()).hexdigest())
    return found


def test_each_play_only_adds_files_to_a_filesystem_store_but_prune(tmp_path, age_identity):
    identity, recipient = age_identity
    store = tmp_path / "store"
    storage = {"type": "filesystem", "path": str(store)}
    site = tmp_path / "srv" / "site"
    site.mkdir(parents=True)
    (site / "index.html").write_text("version 1\n")
    (site / "media.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    backup = {"job": "site", "paths": [str(site)], "encryption": {"recipients": [recipient]}, "storage": storage}
    plays = [
        ("backup", [Task("files_backup", backup, {"COREBACKUP_NOW": DAY1 + "T02:00:00Z"})]),
        ("backup", [Task("files_backup", backup, {"COREBACKUP_NOW": DAY2 + "T02:00:00Z"})]),
        ("verify", [Task("backup_manifest", {"state": "verified", "all_jobs": True, "storage": storage})]),
        ("restore", [Task("backup_manifest", {"state": "query", "job": "site", "storage": storage}),
                     Task("backup_restore", {"job": "site", "identity_file": identity, "dest": str(tmp_path / "restored"),
                                             "set_date": DAY1, "storage": storage})]),
        ("drill", [Task("backup_restore", {"job": "site", "state": "drill", "identity_file": identity,
                                           "storage": storage})]),
        ("in-place restore", [Task("backup_restore", {
            "job": "site", "identity_file": identity, "dest": str(site.parent), "force": True, "pre_restore_backup": True,
            "packing": {"encryption": {"recipients": [recipient]}}, "storage": storage})]),
        ("prune", [Task("backup_retention", {"job": "site", "keep_last": 1, "keep_days": 1, "storage": storage},
                        {"COREBACKUP_NOW": DAY2 + "T09:00:00Z"})]),
    ]
    outcomes = {}
    before = {}
    for play, tasks in plays:
        results, run = run_tasks(COLLECTIONS, tasks)
        for result in results:
            assert not result.get("failed"), (play, result.get("msg"), run.stdout[-3000:])
        outcomes.setdefault(play, []).append(results)
        after = files(str(store))
        pruned = {d["date"] for d in results[-1].get("deleted", [])} if play == "prune" else set()
        for path, identity_and_digest in before.items():
            if os.path.basename(path) in VIEWS or path.split(os.sep)[1:2] and path.split(os.sep)[1] in pruned:
                continue
            assert after.get(path) == identity_and_digest, "%s changed or went away in the %s play" % (path, play)
        added = set(after) - set(before)
        if play in ("verify", "drill"):  # a play that only reads adds its own record (and may rewrite the views)
            kind = "verifications" if play == "verify" else "drills"
            assert added and all(("/%s/" % kind) in "/" + path for path in added), (play, sorted(added))
        before = after

    # What the plays did: two sets, both verified, the first restored, the second drilled, an in-place restore
    # backed up first, the first set pruned after its deletion record was written.
    assert (tmp_path / "restored" / "site" / "index.html").read_text() == "version 1\n"
    [[drilled]] = outcomes["drill"]
    assert drilled["drill"]["result"] == "ok"
    [[pruned]] = outcomes["prune"]
    assert [d["date"] for d in pruned["deleted"]] == [DAY1] and len(pruned["deletion_records"]) == 1
    deletion = json.loads((store / pruned["deletion_records"][0]).read_text())
    assert deletion["set_date"] == DAY1, deletion
    assert not (store / "site" / DAY1).exists() and (store / "site" / DAY2 / "runs").is_dir()
    assert sorted(os.listdir(str(store / "site" / DAY2 / "verifications"))) and os.listdir(str(store / "site" / DAY2 / "drills"))
