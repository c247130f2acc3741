# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Two runs of the same job at once: one writes, the other fails clearly or waits (lock_timeout).

The runs are github_backup against the stand-in with a latency per answer, so that the first run is
still writing while the second starts; on a filesystem the lease is a flock, on S3 (moto) an object
written with conditional requests. A lease whose holder died is taken over.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.tests.conftest import make_s3_backend
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import RunningModule, run_module
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))))
ORG = "leased"
JOB = "leased"
NOW = {"COREBACKUP_NOW": "2026-06-15T02:00:00Z"}


@pytest.fixture(scope="module")
def org(github_standin, tmp_path_factory):
    token = github_standin.add_token(login="lease-bot")
    names = github_fixtures.build_many(github_standin, ORG, str(tmp_path_factory.mktemp(ORG)), count=4, metadata=False)
    return github_standin, token, sorted(names)


@pytest.fixture(params=["filesystem", "s3"])
def store(request, tmp_path):
    """(backend, storage option, where the lease shows)."""
    if request.param == "filesystem":
        backend = FilesystemBackend(str(tmp_path / "store"))
        return backend, {"type": "filesystem", "path": backend.root}, lambda: _file_holder(backend)
    backend = make_s3_backend(request.getfixturevalue("s3_endpoint"), prefix="leases/")
    storage = dict(type="s3", bucket=backend.bucket, prefix="leases/", endpoint_url=backend.client.meta.endpoint_url,
                   **S3_TEST_CREDENTIALS)
    return backend, storage, lambda: _object_holder(backend)


def _file_holder(backend):
    try:
        with open(os.path.join(backend.root, JOB, ".lease.lock"), encoding="utf-8") as handle:
            return json.loads(handle.read() or "null")
    except (OSError, ValueError):
        return None


def _object_holder(backend):
    if backend.stat(JOB + "/.lease") is None:
        return None
    return json.loads(backend.read_bytes(JOB + "/.lease"))


def args(org, storage, **options):
    standin, token, _names = org
    return dict({"organization": ORG, "token": token, "api_url": standin.api_url, "storage": storage, "job": JOB,
                 "api_mode": "rest", "parallel": 1, "wiki": False, "retries": {"attempts": 3, "delay": 0.1}}, **options)


@pytest.fixture
def slow(org):
    """Every answer of the stand-in takes 0.5 s while the test runs: a run lasts several seconds."""
    org[0].latency = 0.5
    yield
    org[0].latency = 0.0


def start_holding(org, storage, holder):
    running = RunningModule(COLLECTIONS, "github_backup", args(org, storage), env=NOW)
    deadline = time.monotonic() + 60
    while holder() is None:
        assert running.process.poll() is None and time.monotonic() < deadline, "the first run never held the lease"
        time.sleep(0.05)
    return running


def test_a_second_run_fails_naming_the_holder_or_waits_for_it(org, store, slow):
    backend, storage, holder = store
    first = start_holding(org, storage, holder)
    held = holder()
    # The waiting run starts first: on a loaded machine a module run takes seconds to start, and the refused one's
    # whole run must not leave the waiting one to arrive after the first run ended.
    waiting = RunningModule(COLLECTIONS, "github_backup", args(org, storage, lock_timeout=120), env=NOW)
    refused = run_module(COLLECTIONS, "github_backup", args(org, storage), env=NOW)
    assert refused.failed
    assert "job %s is being written by the run of pid %d" % (JOB, held["pid"]) in refused.result["msg"]
    assert "stored nothing" in refused.result["msg"] and "lock_timeout" in refused.result["msg"]
    done = first.wait(120)
    assert not done.failed, done.result.get("msg")
    assert {e["status"] for e in done.result["entries"]} == {"backed_up"}
    waited = waiting.wait(120)
    assert not waited.failed, waited.result.get("msg")
    assert waited.result["totals"]["lock_wait_seconds"] > 0.5
    # It decided after the first run had finished: what the first stored is today's, nothing written twice.
    assert {e["status"] for e in waited.result["entries"]} == {"unchanged"}
    assert [e["key"] for e in waited.result["entries"]] == [e["key"] for e in done.result["entries"]]
    for entry in done.result["entries"]:
        with backend.open(entry["key"]) as reader:
            assert hashlib.sha256(reader.read()).hexdigest() == entry["sha256"]
    assert holder() is None  # released by the last run


def test_a_killed_holder_does_not_block_the_next_run(org, store, slow):
    backend, storage, holder = store
    first = start_holding(org, storage, holder)
    first.kill()
    org[0].latency = 0.0
    after = run_module(COLLECTIONS, "github_backup", args(org, storage), env=NOW)
    assert not after.failed, after.result.get("msg")
    assert after.result["totals"]["lock_wait_seconds"] < 5
    assert holder() is None
    assert backend.stat(after.result["entries"][0]["key"]) is not None


def test_an_s3_lease_is_taken_over_only_from_a_holder_that_is_gone(org, s3_endpoint):
    backend = make_s3_backend(s3_endpoint, prefix="stale/")
    storage = dict(type="s3", bucket=backend.bucket, prefix="stale/", endpoint_url=s3_endpoint, **S3_TEST_CREDENTIALS)
    key = JOB + "/.lease"

    def lease(**holder):
        backend.write(key, [json.dumps(dict({"run": "x", "since": "2026-06-15T01:00:00Z"}, **holder)).encode()])

    lease(host="elsewhere.example", pid=4242, expires=time.time() + 600)  # alive, on another host
    busy = run_module(COLLECTIONS, "github_backup", args(org, storage), env=NOW)
    assert busy.failed and "the run of pid 4242 on elsewhere.example since 2026-06-15T01:00:00Z" in busy.result["msg"]
    assert [o.key for o in backend.list("")] == [key]  # it stored nothing
    lease(host="elsewhere.example", pid=4242, expires=time.time() - 1)  # expired: its holder stopped renewing
    expired = run_module(COLLECTIONS, "github_backup", args(org, storage), env=NOW)
    assert not expired.failed, expired.result.get("msg")
    assert backend.stat(key) is None
    gone = subprocess.Popen(["true"])  # pylint: disable=consider-using-with
    gone.wait()
    lease(host=os.uname().nodename, pid=gone.pid, expires=time.time() + 600)  # this host, a process that ended
    rerun = run_module(COLLECTIONS, "github_backup", args(org, storage), env=NOW)
    assert not rerun.failed, rerun.result.get("msg")
    assert {e["status"] for e in rerun.result["entries"]} == {"unchanged"}
