# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Two runs of the same job at once: one writes, the other fails clearly or waits (lock_timeout).

The runs are github_backup against the stand-in with a latency per answer, so that the first run is
still writing while the second starts. On both stores the lease is a sequence of records that are only ever
created (``<job>/leases/<seq>.json``), never overwritten or deleted. A lease whose holder died is taken over;
runs that race for a lease never both hold it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils import _lease
from ansible_collections.corebackup.backup.plugins.module_utils._storage import PreconditionFailed
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
    """(backend, storage option, the lease's holder while it is held)."""
    if request.param == "filesystem":
        backend = FilesystemBackend(str(tmp_path / "store"))
        storage = {"type": "filesystem", "path": backend.root}
    else:
        backend = make_s3_backend(request.getfixturevalue("s3_endpoint"), prefix="leases/")
        storage = dict(type="s3", bucket=backend.bucket, prefix="leases/", endpoint_url=backend.client.meta.endpoint_url,
                       **S3_TEST_CREDENTIALS)
    return backend, storage, lambda: _lease.current_holder(backend, JOB)


def lease_records(backend, job=JOB):
    """{key: record} of the job's lease records."""
    return {obj.key: json.loads(backend.read_bytes(obj.key)) for obj in backend.list(job + "/leases/")}


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
    # The waiting run starts first: on a loaded machine a module run takes seconds to start, and it must not arrive
    # after the first run ended. Another run is refused at once (in this process, for the same reason; the module's
    # failure with this message is tested with a record that stays below).
    waiting = RunningModule(COLLECTIONS, "github_backup", args(org, storage, lock_timeout=120), env=NOW)
    with pytest.raises(_lease.LeaseBusy) as refused:
        backend.lease(JOB).acquire(0)
    assert "job %s is being written by the run of pid %d on %s since %s" % (
        JOB, held["pid"], held["host"], held["taken"]) in str(refused.value)
    assert "stored nothing" in str(refused.value) and "lock_timeout" in str(refused.value)
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
    # Every take, renewal and release was a new record; none was overwritten or deleted: each run took (held) and
    # released, in turn, and the refused run created none.
    records = lease_records(backend)
    keys = sorted(records)
    assert keys == [JOB + "/leases/%012d.json" % seq for seq in range(1, len(keys) + 1)]
    runs = [records[key]["run"] for key in keys]
    assert [records[key]["state"] for key in keys if records[key]["state"] == "released"] == ["released"] * 2
    assert len(set(runs)) == 2 and runs[0] != runs[-1]
    assert records[keys[-1]]["state"] == "released" and records[keys[0]]["pid"] == held["pid"]


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
    # The killed run's record stays as it was: the next run took the lease with a record of its own.
    states = [(record["run"], record["state"]) for _key, record in sorted(lease_records(backend).items())]
    assert states[0][1] == "held" and states[-1][1] == "released" and states[0][0] != states[-1][0]


def test_an_s3_lease_is_taken_over_only_from_a_holder_that_is_gone(org, s3_endpoint):
    backend = make_s3_backend(s3_endpoint, prefix="stale/")
    storage = dict(type="s3", bucket=backend.bucket, prefix="stale/", endpoint_url=s3_endpoint, **S3_TEST_CREDENTIALS)
    seq = [0]

    def lease(**holder):
        seq[0] = _lease.newest(backend, JOB)[0] + 1
        record = dict({"run": "x", "taken": "2026-06-15T01:00:00Z", "state": "held"}, **holder)
        backend.write(_lease.record_key(JOB, seq[0]), [json.dumps(record).encode()], overwrite=False)

    lease(host="elsewhere.example", pid=4242, expires=time.time() + 600)  # alive, on another host
    busy = run_module(COLLECTIONS, "github_backup", args(org, storage), env=NOW)
    assert busy.failed and "the run of pid 4242 on elsewhere.example since 2026-06-15T01:00:00Z" in busy.result["msg"]
    assert "stored nothing" in busy.result["msg"] and "lock_timeout" in busy.result["msg"]
    assert [o.key for o in backend.list("")] == [_lease.record_key(JOB, 1)]  # it stored nothing, not even a record
    lease(host="elsewhere.example", pid=4242, expires=time.time() - 1)  # expired: its holder stopped renewing
    expired = run_module(COLLECTIONS, "github_backup", args(org, storage), env=NOW)
    assert not expired.failed, expired.result.get("msg")
    assert _lease.current_holder(backend, JOB) is None
    assert json.loads(backend.read_bytes(_lease.record_key(JOB, 2)))["pid"] == 4242  # not overwritten
    gone = subprocess.Popen(["true"])  # pylint: disable=consider-using-with
    gone.wait()
    lease(host=os.uname().nodename, pid=gone.pid, expires=time.time() + 600)  # this host, a process that ended
    rerun = run_module(COLLECTIONS, "github_backup", args(org, storage), env=NOW)
    assert not rerun.failed, rerun.result.get("msg")
    assert {e["status"] for e in rerun.result["entries"]} == {"unchanged"}
    assert _lease.current_holder(backend, JOB) is None
    assert json.loads(backend.read_bytes(_lease.record_key(JOB, seq[0])))["pid"] == gone.pid


def test_racing_runs_never_hold_a_lease_together_and_a_late_renewal_knows_it_lost(store, monkeypatch):
    """6 holders race for the lease twice each (taking, renewing and releasing it by creating records only);
    never are two inside at once. A holder whose lease was taken over while it did not renew finds out at its
    next renewal: it warns (``lost``) and writes no release over the new holder's."""
    backend = store[0]
    monkeypatch.setattr(_lease, "POLL", 0.05)
    inside, overlaps, failures, guard = set(), [], [], threading.Lock()

    def worker(number):
        try:
            for _turn in range(2):
                lease = backend.lease("race")
                lease.acquire(60)
                with guard:
                    if inside:
                        overlaps.append((number, set(inside)))
                    inside.add(number)
                time.sleep(0.01)
                with guard:
                    inside.discard(number)
                lease.release()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and not overlaps
    records = lease_records(backend, "race")
    assert len(records) == 24  # a take and a release per turn, in order, none lost or replaced
    states = [records[key]["state"] for key in sorted(records)]
    assert states == ["held", "released"] * 12
    assert time.monotonic() - started < 30

    late = backend.lease("late")
    late.ttl = 0.6  # renewed every 0.2 s
    late.acquire(0)
    # It stalled past its expiry (simulated: another host's run took the lease over meanwhile).
    other = json.dumps({"run": "y", "host": "elsewhere.example", "pid": 1, "taken": "now", "state": "held",
                        "expires": time.time() + 600}).encode()
    while True:
        try:
            backend.write(_lease.record_key("late", _lease.newest(backend, "late")[0] + 1), [other], overwrite=False)
            break
        except PreconditionFailed:
            continue  # it renewed meanwhile
    deadline = time.monotonic() + 5
    while late.lost is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert late.lost == "the lease of job late was taken over by another run while this one wrote"
    late.release()
    assert _lease.current_holder(backend, "late")["host"] == "elsewhere.example"
    with pytest.raises(PreconditionFailed):  # records are never replaced
        backend.write(_lease.record_key("late", 1), [b"{}"], overwrite=False)
