# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Manifests and records: the schemas, run records, the view, secrets, SHA256SUMS, concurrent writers."""

from __future__ import annotations

import copy
import hashlib
import json
import multiprocessing
import os
import subprocess
import time

import jsonschema
import pytest

from ansible_collections.corebackup.backup.plugins.module_utils import _manifest as m
from ansible_collections.corebackup.backup.plugins.module_utils import _records as rec
from ansible_collections.corebackup.backup.plugins.module_utils import _schema as sch
from ansible_collections.corebackup.backup.plugins.module_utils import _sets as sets
from ansible_collections.corebackup.backup.plugins.module_utils._secrets import scrub
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_DIR = os.path.join(HERE, "..", "..", "..", "..", "schemas")
SCHEMA_FILE = os.path.join(SCHEMA_DIR, "manifest-v%d.schema.json")
JOB, DATE = "nightly", "2026-11-22"


def make_run(run_id="r1", status="success", finished="2026-11-22T03:00:00Z", source=("github", "acme"), artifacts=()):
    return {
        "run_id": run_id, "started": "2026-11-22T02:00:00Z", "finished": finished, "duration": 3600.0,
        "status": status, "source": {"type": source[0], "name": source[1]}, "artifacts": list(artifacts),
        "counts": {"repositories": 3}, "warnings": [], "errors": [], "tools": {"python": "3.11"},
    }


def store_artifact(backend, name, data, folder="objects"):
    key = "%s/%s/%s_20261122T020000Z.bin" % (JOB, folder, name)
    backend.write(key, [data])
    return {"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "compression": "none",
            "encryption": None, "created": "2026-11-22T02:00:00Z", "metadata": {}}


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_shipped_schema_files_are_the_ones_the_module_validates_with(version):
    with open(SCHEMA_FILE % version, encoding="utf-8") as handle:
        assert json.load(handle) == sch.SCHEMAS[version]
    jsonschema.Draft202012Validator.check_schema(sch.SCHEMAS[version])
    assert sch.SCHEMA is sch.SCHEMAS[sch.SCHEMA_VERSION] and sch.SCHEMA_VERSION == 5


@pytest.mark.parametrize("name", sorted(sch.RECORD_SCHEMAS))
def test_shipped_record_schema_files_are_the_ones_the_module_validates_with(name):
    with open(os.path.join(SCHEMA_DIR, name + ".schema.json"), encoding="utf-8") as handle:
        assert json.load(handle) == sch.RECORD_SCHEMAS[name]
    jsonschema.Draft202012Validator.check_schema(sch.RECORD_SCHEMAS[name])


def test_the_module_documentation_names_the_schema_version_it_writes():
    from ansible_collections.corebackup.backup.plugins.modules import backup_manifest

    written = "schema version %d\n    (C(schemas/manifest-v%d.schema.json))" % (sch.SCHEMA_VERSION, sch.SCHEMA_VERSION)
    assert written in backup_manifest.DOCUMENTATION
    assert all("manifest-v%d.schema.json" % version in backup_manifest.DOCUMENTATION for version in sch.SCHEMAS)


def test_a_version_1_manifest_is_read_as_legacy_records_and_kept_when_the_view_replaces_it(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    check = {"verified_at": "2026-11-22T05:00:00Z", "status": "ok"}
    old = dict(_valid_manifest(), schema_version=1, verified_at="2026-11-22T05:00:00Z",
               verification={"nightly/2026-11-22/a_20261122T020000Z.bin": check})
    assert sch.schema_errors(old, sch.SCHEMAS[1]) == [] and sch.schema_errors(old) != []
    raw = json.dumps(old).encode()
    backend.write("%s/%s/manifest.json" % (JOB, DATE), [raw])
    records = rec.read_set(backend, sets.load_set(backend, JOB, DATE))
    assert records.problems == [] and [r["run_id"] for r in records.runs] == ["r1"]  # a run only that manifest has
    assert records.verified_at == "2026-11-22T05:00:00Z" and records.last_verification()["bad"] == 0
    entry = {"name": "tool", "status": "carried", "key": "nightly/2026-11-22/tool_20261122T040000Z.bin"}
    run = dict(make_run("r2", finished="2026-11-22T04:00:00Z"), entries=[entry])
    _key, warnings = m.record_run(backend, JOB, DATE, run)
    assert warnings == []
    rewritten = json.loads(backend.read_bytes("%s/%s/manifest.json" % (JOB, DATE)))
    assert rewritten["schema_version"] == 5 and sch.schema_errors(rewritten) == []
    assert [r["run_id"] for r in rewritten["runs"]] == ["r1", "r2"] and rewritten["runs"][1]["entries"] == [entry]
    assert rewritten["verified_at"] == "2026-11-22T05:00:00Z"
    jsonschema.validate(rewritten, sch.SCHEMA)
    # the old file is kept as it was: its run and verification are still read once the view replaced it
    assert backend.read_bytes("%s/%s/legacy/manifest.json" % (JOB, DATE)) == raw
    backend.write("%s/%s/manifest.json" % (JOB, DATE), [b"{damaged"])
    again = rec.read_set(backend, sets.load_set(backend, JOB, DATE))
    assert [r["run_id"] for r in again.runs] == ["r1", "r2"] and again.verified_at == "2026-11-22T05:00:00Z"


def test_the_view_says_where_each_object_is_and_the_run_record_holds_the_rest(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    artifact = dict(store_artifact(backend, "web", b"web"), metadata={"repository": "acme/web", "refs_digest": "d" * 64},
                    contents={"refs": 7}, carried_from="%s/objects/web_20261122T020000Z.bin" % JOB)
    chained = dict(store_artifact(backend, "big", b"today"), metadata={"bundle": "incremental"},
                   requires=[{k: v for k, v in store_artifact(backend, "big-1", b"first").items() if k in ("key", "size", "sha256")}])
    key, warnings = m.record_run(backend, JOB, DATE, make_run(artifacts=[artifact, chained]))
    assert warnings == []
    stored = backend.read_bytes(key)
    assert stored.count(b"\n") == 1 and json.loads(stored)["artifacts"] == [artifact, chained]  # compact, complete
    raw = backend.read_bytes("%s/%s/manifest.json" % (JOB, DATE))
    view = json.loads(raw)
    assert raw.count(b"\n") == 1 and view["schema_version"] == 5
    jsonschema.validate(view, sch.SCHEMA)
    [web, big] = view["runs"][0]["artifacts"]
    assert web == {k: v for k, v in artifact.items() if k not in ("metadata", "contents")}
    assert big["requires"] == chained["requires"] and "metadata" not in big
    # every reader reads the records: the metadata the view leaves out is there
    records = rec.read_set(backend, sets.load_set(backend, JOB, DATE))
    assert records.artifacts()[artifact["key"]]["metadata"] == artifact["metadata"]
    assert records.artifacts()[artifact["key"]]["contents"] == {"refs": 7}
    sums = backend.read_bytes("%s/%s/SHA256SUMS" % (JOB, DATE)).decode()
    listed = sorted(line.split()[1] for line in sums.splitlines())
    assert listed == ["objects/%s_20261122T020000Z.bin" % name for name in ("big-1", "big", "web")]
    assert subprocess.run(["sha256sum", "--quiet", "-c", "%s/SHA256SUMS" % DATE], cwd=str(tmp_path / JOB),
                          check=False).returncode == 0


def empty_manifest():
    return {"schema_version": sch.SCHEMA_VERSION, "job": JOB, "set_date": DATE, "status": "failed", "runs": [],
            "verified_at": None, "verification": {}}


def _valid_manifest():
    manifest = empty_manifest()
    artifact = {"key": "nightly/2026-11-22/a_20261122T020000Z.bin", "size": 1, "sha256": "0" * 64,
                "compression": "gzip", "encryption": None, "created": ""}
    manifest["runs"] = [make_run(artifacts=[artifact])]
    manifest["status"] = "success"
    return manifest


BREAKAGES = [
    ("schema_version", lambda d: d.update(schema_version=6)),
    ("metadata in the view", lambda d: d["runs"][0]["artifacts"][0].update(metadata={})),
    ("entry status", lambda d: d["runs"][0].update(entries=[{"name": "a", "status": "gone", "key": None}])),
    ("entry without key", lambda d: d["runs"][0].update(entries=[{"name": "a", "status": "failed"}])),
    ("carried_from empty", lambda d: d["runs"][0]["artifacts"][0].update(carried_from="")),
    ("status", lambda d: d.update(status="fine")),
    ("runs", lambda d: d.update(runs=[])),
    ("sha256", lambda d: d["runs"][0]["artifacts"][0].update(sha256="xyz")),
    ("size", lambda d: d["runs"][0]["artifacts"][0].update(size=-1)),
    ("size type", lambda d: d["runs"][0]["artifacts"][0].update(size="1")),
    ("bool is not a count", lambda d: d["runs"][0]["counts"].update(x=True)),
    ("finished", lambda d: d["runs"][0].update(finished="yesterday")),
    ("unknown field", lambda d: d.update(extra=1)),
    ("missing source name", lambda d: d["runs"][0]["source"].pop("name")),
    ("verification status", lambda d: d["verification"].update({"k": {"verified_at": "2026-11-22T03:00:00Z", "status": "meh"}})),
    ("job", lambda d: d.update(job="../x")),
]


@pytest.mark.parametrize("what, breakage", BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_built_in_validator_agrees_with_jsonschema(what, breakage):
    valid = _valid_manifest()
    assert sch.schema_errors(valid) == []
    jsonschema.validate(valid, sch.SCHEMA)
    broken = copy.deepcopy(valid)
    breakage(broken)
    assert sch.schema_errors(broken), what
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, sch.SCHEMA)


@pytest.mark.parametrize("text, secret", [
    ("clone of https://x-access-token:ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/a/b failed", "ghp_abcdefghij"),
    ("header Authorization: Bearer s3cr3t-value rejected", "s3cr3t-value"),
    ("mongodb://admin:hunter2@db:27017 refused", "hunter2"),
    ("password=hunter2 is wrong", "hunter2"),
    ("key AKIAABCDEFGHIJKLMNOP denied", "AKIAABCDEFGHIJKLMNOP"),
    ("the vault value pLainWord was refused", "pLainWord"),
    ("connect failed: db_password=hunter2 rejected", "hunter2"),
    ("env PGPASSWORD=hunter2 was refused", "hunter2"),
    ("oauth client_secret: hunter2 expired", "hunter2"),
    ("request access_token=hunter2 denied", "hunter2"),
    ("clone https://user:pa/ss@host/x failed", "pa/ss"),
])
def test_scrub_removes_secrets_and_keeps_the_message(text, secret):
    scrubbed = scrub(text, ["pLainWord"])
    assert secret not in scrubbed
    assert "********" in scrubbed and scrubbed.split()[-1] == text.split()[-1]  # the rest of the message stays


def test_run_key_round_trips_and_carries_the_status():
    run = make_run(run_id="awx-1234", status="partial", source=("github", "my.org"))
    key = m.run_key(DATE, JOB, run)
    assert key.startswith("nightly/2026-11-22/runs/20261122T030000Z_awx-1234_github-my-org-")
    parsed = sets.parse_run_key(key[len("nightly/2026-11-22/"):])
    assert parsed["status"] == "partial" and parsed["run_id"] == "awx-1234"
    assert sets.parse_run_key("runs/notes.txt") is None


@pytest.mark.parametrize("runs, expected", [
    ([("a", "failed", 1), ("a", "success", 2)], "success"),  # a failed run redone the same day
    ([("a", "success", 1), ("a", "failed", 2)], "failed"),
    ([("a", "success", 1), ("b", "failed", 2)], "partial"),
    ([("a", "partial", 1)], "partial"),
])
def test_newest_run_of_each_source_decides_the_set_status(runs, expected):
    records = [{"source": source, "status": status, "run_id": "r%d" % hour,
                "finished": "2026-11-22T0%d:00:00Z" % hour} for source, status, hour in runs]
    assert sets.set_status(records) == expected


def test_runs_accumulate_and_sha256sums_checks_out_with_sha256sum(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    first = store_artifact(backend, "one", b"first artifact\n")
    second = store_artifact(backend, "two", b"second artifact\n", folder=DATE)  # an older release's, in its set
    m.record_run(backend, JOB, DATE, make_run("r1", artifacts=[first]))
    m.record_run(backend, JOB, DATE, make_run("r2", finished="2026-11-22T04:00:00Z", source=("mongodb", "db"),
                                              status="failed", artifacts=[second]))
    backup_set = sets.load_set(backend, JOB, DATE)
    records = rec.read_set(backend, backup_set)
    assert records.problems == []
    assert [r["run_id"] for r in records.runs] == ["r1", "r2"]
    assert records.status == "partial" and backup_set.status == "partial"
    # Paths relative to the job's folder: the set's artifacts lie under objects/ (and an older release's in the set).
    sums = ["sha256sum", "-c", DATE + "/SHA256SUMS"]
    check = subprocess.run(sums, cwd=tmp_path / JOB, capture_output=True, text=True, check=False)
    assert check.returncode == 0 and check.stdout.count(": OK") == 2, check.stdout + check.stderr
    assert "objects/one_20261122T020000Z.bin: OK" in check.stdout
    (tmp_path / JOB / "objects" / "one_20261122T020000Z.bin").write_bytes(b"first artifacT\n")
    assert subprocess.run(sums, cwd=tmp_path / JOB, capture_output=True, check=False).returncode != 0


def test_a_run_the_view_lacks_is_read_from_its_record(tmp_path):
    """What a writer that stopped before its view leaves behind: its run record only."""
    backend = FilesystemBackend(str(tmp_path))
    m.record_run(backend, JOB, DATE, make_run("r1"))
    late = make_run("r2", finished="2026-11-22T05:00:00Z", status="failed")
    backend.write(m.run_key(DATE, JOB, late), [json.dumps(late).encode()], overwrite=False)
    records = rec.read_set(backend, sets.load_set(backend, JOB, DATE))
    assert [r["run_id"] for r in records.runs] == ["r1", "r2"] and records.status == "failed"


def test_a_damaged_or_missing_view_changes_nothing_and_records_that_cannot_be_read_are_named(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    m.record_run(backend, JOB, DATE, make_run("r1"))
    backend.write("%s/%s/manifest.json" % (JOB, DATE), [b"{not json"])
    records = rec.read_set(backend, sets.load_set(backend, JOB, DATE))
    assert [r["run_id"] for r in records.runs] == ["r1"] and records.problems == [] and records.status == "success"
    backend.delete_many(["%s/%s/manifest.json" % (JOB, DATE)])
    assert rec.read_set(backend, sets.load_set(backend, JOB, DATE)).status == "success"
    for obj in backend.list("%s/%s/runs/" % (JOB, DATE)):
        backend.write(obj.key, [b"[]"])
    with pytest.raises(rec.RecordError, match="has no readable run record.*runs/.*must be of type object"):
        rec.read_set(backend, sets.load_set(backend, JOB, DATE))


def test_run_that_breaks_the_schema_is_refused_and_nothing_is_written(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    run = make_run()
    run["status"] = "ok"
    with pytest.raises(m.ManifestError, match="status"):
        m.record_run(backend, JOB, DATE, run)
    assert list(backend.list("")) == []


@pytest.mark.parametrize("record, message", [
    ({"key": "a/b", "size": 1}, "has no sha256"),
    ({"key": "../x", "size": 1, "sha256": "0" * 64}, "'..'"),
    ({"key": "a/b", "size": "big", "sha256": "0" * 64}, "not a number of bytes"),
    ({"key": "a/b", "size": 1, "sha256": "nope"}, "does not match"),
    ("a/b", "must be a dict"),
])
def test_bad_artifact_records_are_named(record, message):
    with pytest.raises(m.ManifestError, match=message):
        m.normalize_artifact(record, 0)


class SlowReads(FilesystemBackend):
    """A store whose reads take a while, like a busy NAS: it widens every read-modify-write window."""

    def read_bytes(self, key):
        data = super().read_bytes(key)
        time.sleep(0.1)
        return data


def _writer(root, index, barrier):
    backend = SlowReads(root)
    barrier.wait()
    m.record_run(backend, JOB, DATE, make_run("run%02d" % index, finished="2026-11-22T03:%02d:00Z" % index))


def test_concurrent_writers_lose_no_run(tmp_path):
    writers = 8
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(writers)
    processes = [context.Process(target=_writer, args=(str(tmp_path), i, barrier)) for i in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    with open(tmp_path / JOB / DATE / "manifest.json", encoding="utf-8") as handle:
        manifest = json.load(handle)  # manifest.json itself, not merged on read: the lock kept it whole
    assert sorted(r["run_id"] for r in manifest["runs"]) == ["run%02d" % i for i in range(writers)]


def _stamper(root, key, barrier):
    backend = SlowReads(root)
    barrier.wait()
    outcome = {"key": key, "status": "ok", "size": 1, "sha256": "0" * 64}
    rec.write_verification(backend, sets.load_set(backend, JOB, DATE), sets.parse_iso("2026-11-22T06:00:00Z", "t"),
                           [outcome], False, {})
    m.write_view(backend, JOB, DATE)


def test_concurrent_verifications_each_write_their_record_and_the_view_shows_them_all(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    keys = [store_artifact(backend, name, name.encode())["key"] for name in ("a", "b", "c")]
    m.record_run(backend, JOB, DATE, make_run("r1"))
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(keys))
    processes = [context.Process(target=_stamper, args=(str(tmp_path), key, barrier)) for key in keys]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    backup_set = sets.load_set(backend, JOB, DATE)
    assert len(backup_set.verifications) == 3
    assert sorted(rec.read_set(backend, backup_set).checks()) == keys
    with open(tmp_path / JOB / DATE / "manifest.json", encoding="utf-8") as handle:
        assert sorted(json.load(handle)["verification"]) == keys  # the view, for people


def test_a_manifest_from_a_newer_schema_is_not_rewritten_and_the_run_is_recorded_still(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    newer = dict(_valid_manifest(), schema_version=6)
    backend.write("%s/%s/manifest.json" % (JOB, DATE), [json.dumps(newer).encode()])
    key, warnings = m.record_run(backend, JOB, DATE, make_run("r1"))
    assert len(warnings) == 1 and "schema_version 6, newer than the 5" in warnings[0]
    assert json.loads(backend.read_bytes("%s/%s/manifest.json" % (JOB, DATE))) == newer
    assert json.loads(backend.read_bytes(key))["run_id"] == "r1"


def test_an_unreadable_manifest_is_kept_aside_before_it_is_rebuilt(tmp_path):
    backend = FilesystemBackend(str(tmp_path))
    m.record_run(backend, JOB, DATE, make_run("r1"))
    backend.write("%s/%s/manifest.json" % (JOB, DATE), [b"{half a manif"])
    m.record_run(backend, JOB, DATE, make_run("r2", finished="2026-11-22T04:00:00Z"))
    copies = [o.key for o in backend.list("%s/%s/manifest.json.unreadable-" % (JOB, DATE))]
    assert len(copies) == 1 and backend.read_bytes(copies[0]) == b"{half a manif"
    manifest = json.loads(backend.read_bytes("%s/%s/manifest.json" % (JOB, DATE)))
    assert [r["run_id"] for r in manifest["runs"]] == ["r1", "r2"]


def test_logical_size_is_what_a_restore_reads_carried_artifacts_included():
    def artifact(name, stamp, size, carried=False):
        record = {"key": "%s/%s/%s_20261122T0%s0000Z.tar.gz" % (JOB, DATE, name, stamp), "size": size, "sha256": "0" * 64}
        if carried:
            record["carried_from"] = "%s/2026-11-21/%s_20261121T020000Z.tar.gz" % (JOB, name)
        return record

    def entries(*records):
        return [{"name": r["key"].rsplit("/", 1)[1].split("_")[0], "status": "carried" if r.get("carried_from") else
                 "backed_up", "key": r["key"], "error": None} for r in records]

    a_first, a_again, b_carried = artifact("a", 2, 100), artifact("a", 3, 150), artifact("b", 2, 1000, carried=True)
    first = dict(make_run("r1", finished="2026-11-22T02:30:00Z", artifacts=[a_first, b_carried]),
                 entries=entries(a_first, b_carried))
    again = dict(make_run("r2", finished="2026-11-22T03:30:00Z", artifacts=[a_again]), entries=entries(a_again))
    records = rec.SetRecords(sets.BackupSet(JOB, DATE))
    records.runs = [first, again]
    # a restore reads a's newer artifact and b's carried one; the superseded artifact of a is not read
    assert records.sizes() == {"items": 2, "logical_size": 1150, "new_size": 150}
    assert records.last_verification() is None and records.verified_at is None

    def verification(when, outcomes, whole):
        return {"when": when, "result": "ok" if all(v == "ok" for v in outcomes.values()) else "bad", "whole": whole,
                "artifacts": {k: {"status": v} for k, v in outcomes.items()}}

    records.verifications = [verification("2026-11-22T04:00:00Z", {b_carried["key"]: "corrupted"}, False),
                             verification("2026-11-22T05:00:00Z", {a_again["key"]: "ok"}, False)]
    assert records.last_verification() == {"when": "2026-11-22T05:00:00Z", "checked": 2, "bad": 1, "artifacts": 3}
    assert records.verified_at is None  # a sample never verifies the whole set
    every = {a_first["key"]: "ok", a_again["key"]: "ok", b_carried["key"]: "ok"}
    records.verifications.append(verification("2026-11-22T06:00:00Z", every, True))
    assert records.verified_at == "2026-11-22T06:00:00Z" and records.last_verification()["bad"] == 0
    records.drills = [{"when": "2026-11-22T07:00:00Z", "result": "failed", "items": []}]
    assert records.verified_at is None  # a failed drill after it
