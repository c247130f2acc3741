# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a store says of a job's health: sets recorded, verified and drilled with the collection's own record code on
a filesystem store, then read back as the metrics read them."""

from __future__ import annotations

import hashlib

from ansible_collections.corebackup.backup.plugins.module_utils import _manifest as m
from ansible_collections.corebackup.backup.plugins.module_utils._health import job_health
from ansible_collections.corebackup.backup.plugins.module_utils._layout import parse_iso
from ansible_collections.corebackup.backup.plugins.module_utils._records import write_drill, write_verification
from ansible_collections.corebackup.backup.plugins.module_utils._sets import load_set
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend

JOB = "etc"


def artifact(backend, date, name, size, stamp="020000", carried_from=None):
    key = "%s/%s/%s_%sT%sZ.tar.gz" % (JOB, date, name, date.replace("-", ""), stamp)
    data = name.encode()[:1] * size
    backend.write(key, [data])
    found = {"key": key, "size": size, "sha256": hashlib.sha256(data).hexdigest(), "compression": "gzip",
             "encryption": None, "created": "%sT02:00:00Z" % date, "metadata": {}}
    if carried_from:
        found["carried_from"] = carried_from
    return found


def record(backend, date, run_id, status, artifacts, finished="02:10:00"):
    run = {"run_id": run_id, "started": "%sT02:00:00Z" % date, "finished": "%sT%sZ" % (date, finished),
           "duration": 600.0, "status": status, "source": {"type": "files", "name": "host"}, "artifacts": artifacts,
           "counts": {}, "warnings": [], "errors": [], "tools": {}}
    m.record_run(backend, JOB, date, run)


def verify(backend, date, when, statuses, whole=False):
    outcomes = [{"key": key, "status": status, "size": None, "sha256": None} for key, status in statuses.items()]
    write_verification(backend, load_set(backend, JOB, date), parse_iso(when, "when"), outcomes, whole, {})


def drill(backend, date, when, result):
    write_drill(backend, load_set(backend, JOB, date), parse_iso(when, "when"),
                {"when": when, "duration": 1.0, "result": result, "items": []})


def test_a_job_read_from_its_sets_verifications_and_drills(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    one = artifact(backend, "2026-06-01", "conf", 100)
    record(backend, "2026-06-01", "r1", "success", [one])
    drill(backend, "2026-06-01", "2026-06-01T04:00:00Z", "ok")
    # A day later: conf unchanged (carried: linked, no byte written), data new. The set is restored whole: both.
    two = [artifact(backend, "2026-06-02", "conf", 100, carried_from=one["key"]), artifact(backend, "2026-06-02", "data", 100)]
    record(backend, "2026-06-02", "r2", "success", two)
    verify(backend, "2026-06-02", "2026-06-02T03:00:00Z", {a["key"]: "ok" for a in two}, whole=True)
    drill(backend, "2026-06-02", "2026-06-02T04:00:00Z", "failed")
    record(backend, "2026-06-03", "r3", "failed", [])  # nothing usable: neither newest nor in the median
    # The newest set: two runs, data backed up twice; a restore reads its newest artifact only. Partial counts.
    four = [artifact(backend, "2026-06-04", "conf", 100, carried_from=one["key"]), artifact(backend, "2026-06-04", "data", 50)]
    record(backend, "2026-06-04", "r4", "success", four)
    again = artifact(backend, "2026-06-04", "data", 80, stamp="120000")
    record(backend, "2026-06-04", "r5", "partial", [again], finished="12:10:00")
    # A sampled verification that found one of the two it read corrupted does not count as a verification.
    verify(backend, "2026-06-04", "2026-06-04T13:00:00Z", {four[0]["key"]: "ok", again["key"]: "corrupted"})

    health = job_health(backend, JOB)
    assert health["last_success"] == "2026-06-04T12:10:00Z"
    assert health["newest_set"] == "2026-06-04"
    assert health["logical_size"] == 100 + 80  # conf (carried) and the newest data, not 100 + 50 + 80
    assert health["median_logical_size"] == 150  # of 200 (2026-06-02) and 100 (2026-06-01); the failed set is not one
    assert health["median_sets"] == 2
    assert health["last_verified"] == "2026-06-02T03:00:00Z"
    assert health["last_drill_success"] == "2026-06-01T04:00:00Z"  # the drill of 2026-06-02 failed
    assert health["bad_artifacts"] == 1 and health["problems"] == [] and health["error"] is None

    # A later sampled verification finds the newest set intact: it counts, and nothing is bad any more.
    verify(backend, "2026-06-04", "2026-06-05T03:00:00Z", {four[0]["key"]: "ok", again["key"]: "ok"})
    # Only the two newest usable sets: the drill of 2026-06-01 is not looked for.
    narrow = job_health(backend, JOB, window=2)
    assert narrow["last_verified"] == "2026-06-05T03:00:00Z" and narrow["bad_artifacts"] == 0
    assert narrow["median_logical_size"] == 200 and narrow["median_sets"] == 1
    assert narrow["last_drill_success"] is None


def test_a_job_without_sets_and_an_unreadable_manifest(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    empty = job_health(backend, JOB)
    assert (empty["last_success"], empty["logical_size"], empty["median_logical_size"], empty["last_verified"]) == (
        None, None, None, None)
    record(backend, "2026-06-01", "r1", "success", [artifact(backend, "2026-06-01", "conf", 10)])
    record(backend, "2026-06-02", "r2", "success", [artifact(backend, "2026-06-02", "conf", 20)])
    # The newest set's view and run record are garbage: it is said, and the set before it is the newest read.
    for path in (tmp_path / JOB / "2026-06-02" / "manifest.json", *(tmp_path / JOB / "2026-06-02" / "runs").iterdir()):
        path.write_text("{not json")
    health = job_health(backend, JOB)
    assert health["newest_set"] == "2026-06-01" and health["logical_size"] == 10
    assert health["last_success"] == "2026-06-02T02:10:00Z"  # the run record's name says it
    assert len(health["problems"]) == 1 and "2026-06-02" in health["problems"][0]
