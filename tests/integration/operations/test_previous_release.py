# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A host still running the previous release shares a store written by this one.

``tests/fixtures/previous-release.tar.gz`` is that release's collection (the last commit of manifest schema 2,
made by ``git archive aa4b002 galaxy.yml meta plugins | gzip -9n``): its ``backup_retention`` runs against a store
this release wrote (records, deletion records, lease records, write probes), on a filesystem and on S3. It deletes
dated folders only: every set it keeps still restores every item and verifies with this release, and nothing
outside the dated folders (``<job>/leases/``, ``<job>/deletions/``, ``<job>/objects/``, ...) is touched.

A run of this release also waits while the previous release holds the job (its ``.lease`` object or the flock
of its ``.lease.lock``), so that an older host pruning or writing the job is not raced.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tarfile
import time
import uuid

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils import _lease
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.tests.conftest import make_s3_backend
from ansible_collections.corebackup.backup.tests.testbed.ansible_tasks import Task, run_tasks
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "previous-release.tar.gz")
DAYS = ["2026-11-%02dT02:00:00Z" % day for day in range(10, 16)]  # six daily runs
PRUNE_AT = "2026-11-15T09:00:00Z"


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory):
    """ANSIBLE_COLLECTIONS_PATH of the previous release's collection."""
    root = tmp_path_factory.mktemp("previous-release")
    target = root / "ansible_collections" / "corebackup" / "backup"
    target.mkdir(parents=True)
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(str(target), filter="data")
    assert not (target / "plugins" / "module_utils" / "_records.py").exists()  # truly the release before records
    return str(root)


def outside_dated_folders(backend, job):
    """{key: sha256} of the job's objects that are not in a dated folder (records of the job, shared areas)."""
    prefix = job + "/"
    found = {}
    for obj in backend.list(prefix):
        first = obj.key[len(prefix):].split("/", 1)[0]
        if not (len(first) == 10 and first[4] == "-" and first[7] == "-"):
            found[obj.key] = hashlib.sha256(backend.read_bytes(obj.key)).hexdigest()
    return found


@pytest.mark.parametrize("kind", ["filesystem", "s3"])
def test_the_previous_release_prunes_a_store_of_this_one_and_every_kept_set_restores(
        kind, previous_release, tmp_path, request):
    if kind == "filesystem":
        backend = FilesystemBackend(str(tmp_path / "store"))
        storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        backend = make_s3_backend(endpoint, bucket="corebackup-prev-" + uuid.uuid4().hex[:8])
        storage = dict(S3_TEST_CREDENTIALS, type="s3", bucket=backend.bucket, prefix="backups/", endpoint_url=endpoint)
    source = tmp_path / "src"
    (source / "etc").mkdir(parents=True)
    (source / "etc" / "app.conf").write_text("listen = 127.0.0.1\n")  # never changes: carried every day
    (source / "www").mkdir()
    job = {"job": "web", "paths": [str(source / "etc"), str(source / "www")], "storage": storage}

    # This release writes six daily sets (one changed item a day, the other carried), verifies and drills them,
    # and prunes the oldest with its own retention (a deletion record).
    tasks = []
    for day, when in enumerate(DAYS):
        tasks.append(Task("ansible.builtin.copy", {"content": "<p>day %d</p>\n" % day,
                                                   "dest": str(source / "www" / "index.html")}))
        tasks.append(Task("files_backup", job, {"COREBACKUP_NOW": when}))
    tasks += [Task("backup_manifest", {"state": "verified", "job": "web", "storage": storage},
                   {"COREBACKUP_NOW": PRUNE_AT}),
              Task("backup_restore", {"state": "drill", "job": "web", "storage": storage}, {"COREBACKUP_NOW": PRUNE_AT}),
              Task("backup_retention", {"job": "web", "keep_last": 5, "keep_days": 1, "storage": storage}, {"COREBACKUP_NOW": PRUNE_AT})]
    results, run = run_tasks(COLLECTIONS, tasks)
    for result in results:
        assert not result.get("failed"), (result.get("msg"), run.stdout[-3000:])
    assert [d["date"] for d in results[-1]["deleted"]] == ["2026-11-10"]
    records = outside_dated_folders(backend, "web")
    assert any("/deletions/" in key for key in records) and any("/leases/" in key for key in records), sorted(records)

    # The previous release prunes: keep the newest three.
    [pruned], run = run_tasks(previous_release, [
        Task("backup_retention", {"job": "web", "keep_last": 3, "keep_days": 1, "storage": storage}, {"COREBACKUP_NOW": PRUNE_AT})])
    assert not pruned.get("failed"), (pruned.get("msg"), run.stdout[-3000:])
    assert [d["date"] for d in pruned["deleted"]] == ["2026-11-12", "2026-11-11"], pruned["deleted"]
    # Nothing outside the dated folders was touched (the older release deletes dated folders only).
    assert outside_dated_folders(backend, "web") == records

    # Every kept set restores every item it lists with this release, and verifies.
    kept = ["2026-11-13", "2026-11-14", "2026-11-15"]
    tasks = [Task("backup_manifest", {"state": "query", "job": "web", "storage": storage})]
    tasks += [Task("backup_restore", {"job": "web", "set_date": date, "dest": str(tmp_path / date), "storage": storage})
              for date in kept]
    tasks.append(Task("backup_manifest", {"state": "verified", "job": "web", "storage": storage},
                      {"COREBACKUP_NOW": "2026-11-15T10:00:00Z"}))
    results, run = run_tasks(COLLECTIONS, tasks)
    for result in results:
        assert not result.get("failed"), (result.get("msg"), run.stdout[-3000:])
    query, verified = results[0], results[-1]
    assert [(s["date"], s["status"], s["problems"]) for s in query["sets"]] == [
        (date, "success", []) for date in reversed(kept)]
    for offset, date in enumerate(kept):
        restored = tmp_path / date
        assert (restored / "etc" / "app.conf").read_text() == "listen = 127.0.0.1\n"
        assert (restored / "www" / "index.html").read_text() == "<p>day %d</p>\n" % (3 + offset)
    assert [v["status"] for v in verified["verified"]] == ["ok"] * 6, verified["verified"]


def test_a_run_waits_while_the_previous_release_holds_the_job(tmp_path, s3_endpoint):
    """The previous release's lease (a flock() on a filesystem, a .lease object on S3) holds off this release."""
    fs = FilesystemBackend(str(tmp_path / "store"))
    os.makedirs(str(tmp_path / "store" / "web"))
    holder = {"run": "old", "host": "older-host", "pid": 4242, "since": "2026-11-15T09:00:00Z",
              "expires": time.time() + 300}
    with open(str(tmp_path / "store" / "web" / ".lease.lock"), "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(json.dumps(holder))
        handle.flush()
        with pytest.raises(_lease.LeaseBusy) as busy:
            fs.lease("web").acquire(0)
        assert "the run of pid 4242 on older-host since 2026-11-15T09:00:00Z" in str(busy.value)
    lease = fs.lease("web")
    lease.acquire(0)  # the older run is done
    with open(str(tmp_path / "store" / "web" / ".lease.lock"), "rb") as handle:
        with pytest.raises(BlockingIOError):  # ... and the older release now waits for this run
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    lease.release()

    s3 = make_s3_backend(s3_endpoint)
    s3.write("web/.lease", [json.dumps(holder).encode()])
    with pytest.raises(_lease.LeaseBusy) as busy:
        s3.lease("web").acquire(0)
    assert "the run of pid 4242 on older-host" in str(busy.value)
    s3.write("web/.lease", [json.dumps(dict(holder, expires=time.time() - 1)).encode()])  # expired: taken
    lease = s3.lease("web")
    lease.acquire(0)
    lease.release()
