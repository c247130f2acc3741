# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""backup_manifest and backup_retention through ansible-playbook, on the filesystem and on the S3 endpoint."""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import json
import os

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils import _manifest as m
from ansible_collections.corebackup.backup.plugins.module_utils import _schema as sch
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.tests.conftest import make_s3_backend
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS
from ansible_collections.corebackup.backup.tests.unit.plugins.module_utils.test_retention import reference

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
RETRIES = {"attempts": 3, "delay": 0.1, "max_delay": 1}
JOB = "nightly"
SECRET = "hunter2-vault-value"


@pytest.fixture(params=["filesystem", "s3"])
def store(request, tmp_path):
    """(backend, the storage option that names the same place)."""
    if request.param == "filesystem":
        backend = FilesystemBackend(str(tmp_path / "store"))
        return backend, {"type": "filesystem", "path": backend.root}
    endpoint = request.getfixturevalue("s3_endpoint")
    backend = make_s3_backend(endpoint)
    return backend, dict(type="s3", bucket=backend.bucket, prefix=backend.prefix, endpoint_url=endpoint, **S3_TEST_CREDENTIALS)


def module(name, storage, check=False, diff=False, **args):
    args.update(storage=storage, retries=RETRIES)
    return run_module(COLLECTIONS, name, args, check=check, diff=diff)


def put_artifact(backend, date, name, data):
    key = "%s/%s/%s_%sT020000Z.bin" % (JOB, date, name, date.replace("-", ""))
    backend.write(key, [data])
    return {"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def everything(backend):
    return {obj.key: backend.read_bytes(obj.key) for obj in backend.list("")}


def test_runs_accumulate_and_verified_names_every_bad_artifact(store):
    backend, storage = store
    date = "2026-11-20"
    artifacts = [put_artifact(backend, date, name, (name * 5000).encode()) for name in ("alpha", "beta", "gamma", "delta")]
    first = module("backup_manifest", storage, job=JOB, set_date=date, artifacts=artifacts[:3], run_id="awx-41",
                   source={"type": "github", "name": "acme"}, counts={"repositories": 3}, secrets=[SECRET],
                   warnings=["slow answer from https://ci:%s@github.example" % SECRET])
    assert not first.failed, first.result.get("msg")
    assert first.changed and first.result["set_status"] == "success"
    retry = module("backup_manifest", storage, job=JOB, set_date=date, artifacts=artifacts[:3], run_id="awx-41",
                   source={"type": "github", "name": "acme"})
    assert not retry.changed  # the same run recorded once
    second = module("backup_manifest", storage, job=JOB, set_date=date, artifacts=artifacts[3:], status="partial",
                    source={"type": "mongodb", "name": "orders"}, errors=["db2: auth failed with password=%s" % SECRET],
                    secrets=[SECRET])
    assert second.result["set_status"] == "partial"
    stored = everything(backend)
    assert not any(SECRET.encode() in data for data in stored.values())
    assert SECRET not in json.dumps(first.result) + json.dumps(second.result)
    manifest = json.loads(stored["%s/%s/manifest.json" % (JOB, date)])
    assert sch.schema_errors(manifest) == []
    assert [run["run_id"] for run in manifest["runs"]] == ["awx-41", second.result["run"]["run_id"]]
    sums = stored["%s/%s/SHA256SUMS" % (JOB, date)].decode()
    # Paths relative to the job's folder (cd <job> && sha256sum -c <date>/SHA256SUMS).
    assert sorted(sums.splitlines()) == sorted("%s  %s" % (a["sha256"], a["key"].split("/", 1)[1]) for a in artifacts)

    query = module("backup_manifest", storage, state="query", job=JOB)
    [listed] = query.result["sets"]
    assert (listed["date"], listed["status"], len(listed["artifacts"])) == (date, "partial", 4)
    assert listed["artifact_bytes"] == sum(a["size"] for a in artifacts) < listed["size"]

    good = module("backup_manifest", storage, state="verified", job=JOB)
    assert not good.failed, good.result.get("msg")
    assert [v["status"] for v in good.result["verified"]] == ["ok"] * 4
    assert good.result["sets"][0]["verified_at"]

    alpha, beta, gamma = (a["key"] for a in artifacts[:3])
    data = bytearray(backend.read_bytes(alpha))
    data[1234] ^= 0x01
    backend.write(alpha, [bytes(data)])  # one byte flipped
    backend.write(beta, [backend.read_bytes(beta)[:-1]])  # one byte short
    backend.delete_many([gamma])
    bad = module("backup_manifest", storage, state="verified", job=JOB)
    assert bad.failed
    assert {b["key"]: b["status"] for b in bad.result["bad"]} == {alpha: "corrupted", beta: "truncated", gamma: "missing"}
    for key in (alpha, beta, gamma):
        assert key in bad.result["msg"]
    [listed] = bad.result["sets"]
    assert listed["verified_at"] is None and listed["last_verification"]["bad"] == 3
    records = sorted(o.key.rsplit("/", 1)[1].rsplit(".", 2)[1] for o in backend.list("%s/%s/verifications/" % (JOB, date)))
    assert records == ["bad", "ok"]  # one record per verification, written once; its name says its result
    # the view shows it to people
    assert json.loads(backend.read_bytes("%s/%s/manifest.json" % (JOB, date)))["verification"][beta]["status"] == "truncated"
    # nothing is decided on the view: a damaged one changes no answer
    backend.write("%s/%s/manifest.json" % (JOB, date), [b"{damaged"])
    [again] = module("backup_manifest", storage, state="query", job=JOB).result["sets"]
    assert (again["status"], again["verified_at"], again["last_verification"]["bad"], again["problems"]) == (
        "partial", None, 3, [])


def test_sample_verifies_a_rotating_slice(store):
    backend, storage = store
    for day in ("2026-11-01", "2026-11-02"):
        artifacts = [put_artifact(backend, day, "part%d" % n, os.urandom(100)) for n in range(3)]
        assert not module("backup_manifest", storage, job=JOB, set_date=day, artifacts=artifacts,
                          source={"type": "files", "name": "share"}).failed
    seen = []
    for _round in range(3):
        run = module("backup_manifest", storage, state="verified", job=JOB, sample=2)
        assert not run.failed, run.result.get("msg")
        seen.extend(v["key"] for v in run.result["verified"])
    assert len(seen) == 6 and len(set(seen)) == 6  # every artifact once, least recently verified first
    # A sample keeps per-artifact results only: a set counts as verified after reading all of it at once.
    assert not any(s["verified_at"] for s in module("backup_manifest", storage, state="query", job=JOB).result["sets"])
    for listed in module("backup_manifest", storage, state="query", job=JOB).result["sets"]:
        assert (listed["last_verification"]["checked"], listed["last_verification"]["bad"]) == (3, 0)
    whole = module("backup_manifest", storage, state="verified", job=JOB, set_date="2026-11-02")
    assert not whole.failed, whole.result.get("msg")
    verified = {s["date"]: s["verified_at"] for s in module("backup_manifest", storage, state="query", job=JOB).result["sets"]}
    assert verified["2026-11-02"] and not verified["2026-11-01"]


def test_check_mode_and_bad_input_write_nothing(store):
    backend, storage = store
    artifact = put_artifact(backend, "2026-11-22", "one", b"x")
    before = everything(backend)
    check = module("backup_manifest", storage, check=True, job=JOB, set_date="2026-11-22", artifacts=[artifact],
                   source={"type": "files", "name": "share"})
    assert check.changed and not check.failed
    broken = module("backup_manifest", storage, job=JOB, artifacts=[{"key": artifact["key"], "size": 1}],
                    source={"type": "files", "name": "share"})
    assert broken.failed and "artifacts[0] has no sha256" in broken.result["msg"]
    nosource = module("backup_manifest", storage, job=JOB, artifacts=[artifact])
    assert nosource.failed and "source is required" in nosource.result["msg"]
    typo = module("backup_manifest", storage, state="verified", job="nightlly")
    assert typo.failed and "no backup set of job 'nightlly'" in typo.result["msg"]
    empty = module("backup_retention", storage, job=JOB, keep_days=0)
    assert empty.failed and "policy is empty" in empty.result["msg"]
    assert everything(backend) == before


def seed_history(backend, days, anchor, step=1):
    """A set every ``step`` days for ``days`` days up to ``anchor``: mostly successful, some partial, failed or
    without manifest."""
    history = []

    def one(offset):
        date = anchor - datetime.timedelta(days=offset)
        text = date.isoformat()
        status = "partial" if offset % 17 == 5 else "failed" if offset % 29 == 7 else None if offset % 41 == 3 else "success"
        artifact = put_artifact(backend, text, "data", text.encode() * 10)
        if status:
            run = {"run_id": "r%d" % offset, "started": text + "T02:00:00Z", "finished": text + "T02:10:00Z",
                   "duration": 600.0, "status": status, "source": {"type": "github", "name": "acme"},
                   "artifacts": [m.normalize_artifact(artifact, 0)], "counts": {}, "warnings": [], "errors": [],
                   "tools": {}}
            m.record_run(backend, JOB, text, run)
        return date, status

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        history = list(pool.map(one, range(0, days, step)))
    return history


def _run(index):
    return {"run_id": "w%02d" % index, "started": "2026-11-22T02:00:00Z", "finished": "2026-11-22T02:%02d:00Z" % index,
            "duration": 1.0, "status": "success", "source": {"type": "files", "name": "share%d" % index},
            "artifacts": [], "counts": {}, "warnings": [], "errors": [], "tools": {}}


def test_concurrent_writers_on_s3_lose_no_run(s3_endpoint):
    backend = make_s3_backend(s3_endpoint)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda index: m.record_run(backend, JOB, "2026-11-22", _run(index)), range(8)))
    manifest = json.loads(backend.read_bytes("%s/2026-11-22/manifest.json" % JOB))  # manifest.json itself, not merged
    assert sorted(run["run_id"] for run in manifest["runs"]) == ["w%02d" % i for i in range(8)]


def test_a_view_writer_that_a_record_overtook_writes_again_on_s3(s3_endpoint):
    """Another run is recorded (and writes its view) while this writer writes a view without it: this writer sees
    the new record once it wrote, and writes the view again, so the last view holds every run."""
    backend = make_s3_backend(s3_endpoint)
    other = make_s3_backend(s3_endpoint, bucket=backend.bucket)
    views = []
    write = backend.write

    def racing_write(key, chunks, **kwargs):
        chunks = list(chunks)
        if key.endswith("/manifest.json"):
            views.append(len(json.loads(b"".join(chunks))["runs"]))
            if len(views) == 1:
                m.record_run(other, JOB, "2026-11-22", _run(1))  # the concurrent writer, its view written first
        return write(key, chunks, **kwargs)

    backend.write = racing_write
    _key, warnings = m.record_run(backend, JOB, "2026-11-22", _run(0))
    assert warnings == [] and views == [1, 2]
    manifest = json.loads(backend.read_bytes("%s/2026-11-22/manifest.json" % JOB))
    assert [run["run_id"] for run in manifest["runs"]] == ["w00", "w01"]


def test_s3_itself_refuses_conditional_writes(s3_endpoint):
    """The endpoint enforces If-Match / If-None-Match even when the check before the upload saw nothing wrong."""
    from ansible_collections.corebackup.backup.plugins.module_utils._storage import PreconditionFailed, StoredObject
    backend = make_s3_backend(s3_endpoint)
    key = "%s/2026-11-22/manifest.json" % JOB
    backend.write(key, [b"v1"])
    stale = backend.stat(key).etag
    backend.write(key, [b"v2"], if_match=stale)
    with pytest.raises(PreconditionFailed, match="changed since it was read"):
        backend.write(key, [b"v3"], if_match=stale)
    backend.stat = lambda _key: StoredObject(key, 2, etag=stale)  # a check that raced with another writer
    with pytest.raises(PreconditionFailed, match="changed since it was read"):
        backend.write(key, [b"v3"], if_match=stale)
    backend.stat = lambda _key: None
    with pytest.raises(PreconditionFailed, match="already exists"):
        backend.write(key, [b"v4"], overwrite=False)
    with pytest.raises(PreconditionFailed, match="already exists"):
        backend.write(key, [b"v5" * (3 * 1024 * 1024)] * 3, overwrite=False)  # multipart: refused at completion
    assert backend.read_bytes(key) == b"v2"
    real_stat, checks = type(backend).stat, []

    def first_check_saw_nothing(key_):  # as when the first try landed but its answer was lost
        checks.append(key_)
        return None if len(checks) == 1 else real_stat(backend, key_)

    backend.stat = first_check_saw_nothing
    backend.write(key, [b"v2"], overwrite=False)  # refused by S3, but what is there is what was sent: success
    assert backend.client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", []) == []


def test_gfs_retention_over_400_days(store):
    backend, storage = store
    anchor = datetime.date(2026, 11, 1)
    # Every day on the filesystem; every third day on S3, where each set costs a dozen requests to seed.
    history = seed_history(backend, 400, anchor, step=1 if backend.kind == "filesystem" else 3)
    for stray in ("%s/latest/data.bin" % JOB, "%s/notes.txt" % JOB, "%s-other/2025-01-01/x_20250101T000000Z.bin" % JOB,
                  "%s/2025-13-45/not-a-date.bin" % JOB):
        backend.write(stray, [b"keep me"])
    policy = {"keep_days": 14, "keep_weekly": 8, "keep_monthly": 12, "keep_yearly": 3, "min_keep": 1}
    expected = reference(history, policy, False)
    before = everything(backend)

    preview = module("backup_retention", storage, check=True, diff=True, job=JOB, **policy)
    assert not preview.failed, preview.result.get("msg")
    assert everything(backend) == before
    assert {e["date"] for e in preview.result["kept"]} == {d.isoformat() for d in expected}
    deleted = {e["date"] for e in preview.result["deleted"]}
    assert deleted == {d.isoformat() for d, _s in history} - {d.isoformat() for d in expected}
    assert preview.result["diff"]["after"].count("\n") == len(expected)
    assert all(e["reasons"] for e in preview.result["kept"] + preview.result["deleted"])
    assert sorted(preview.result["unmanifested"]) == sorted(d.isoformat() for d, s in history if s is None)

    applied = module("backup_retention", storage, job=JOB, **policy)
    assert applied.changed and not applied.failed
    remaining = everything(backend)
    dated = {key.split("/")[1] for key in remaining if key.startswith(JOB + "/") and key.split("/")[1][:2] == "20"}
    assert dated == {d.isoformat() for d in expected} | {"2025-13-45"}
    for stray in ("%s/latest/data.bin" % JOB, "%s/notes.txt" % JOB, "%s-other/2025-01-01/x_20250101T000000Z.bin" % JOB):
        assert remaining[stray] == b"keep me"
    assert applied.result["bytes_freed"] == sum(len(v) for k, v in before.items() if k not in remaining)
    again = module("backup_retention", storage, job=JOB, **policy)
    assert not again.changed and again.result["deleted"] == []


def test_retention_of_10000_objects_costs_listing_pages_plus_one_delete_per_1000(s3_endpoint):
    backend = make_s3_backend(s3_endpoint, prefix="")
    storage = dict(type="s3", bucket=backend.bucket, endpoint_url=s3_endpoint, **S3_TEST_CREDENTIALS)
    anchor = datetime.date(2026, 11, 1)
    keys = []
    for offset in range(400):
        date = (anchor - datetime.timedelta(days=offset)).isoformat()
        folder = "%s/%s/" % (JOB, date)
        keys.extend(folder + "repo%02d_%sT020000Z.tar.gz" % (n, date.replace("-", "")) for n in range(23))
        keys.append(folder + "manifest.json")
        keys.append(folder + "runs/%sT021000Z_r%d_github-acme.success.json" % (date.replace("-", ""), offset))
    assert len(keys) == 10000

    def put(key):
        backend.client.put_object(Bucket=backend.bucket, Key=key, Body=b"x")

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(put, keys))
    run = module("backup_retention", storage, job=JOB, keep_days=30)
    assert not run.failed, run.result.get("msg")
    deleted = sum(e["objects"] for e in run.result["deleted"])
    assert deleted == 370 * 25
    pages = -(-10000 // 1000)
    # The listing, one listing of the deletion records, one of the job's lease records (taken, then released: two
    # records) and the previous release's lease object (a GET), each set's run record (a GET: the items and shared
    # objects it names), one deletion record per set deleted (a create-only write: the backend's HeadObject before
    # and after it), one DeleteObjects per 1,000 keys. These run records are not JSON: a kept set whose records
    # cannot be read stops the sweep of shared objects (no listing of <job>/objects/), and says so. One
    # GetBucketVersioning: on a versioned bucket a delete would free nothing (bytes_hidden).
    pages = -(-(10000 + 1) // 1000)  # the lease record this run took is under <job>/ too
    assert run.result["api_requests"] == {"ListObjectsV2": pages + 2, "GetObject": 400 + 1, "PutObject": 370 + 2,
                                          "HeadObject": 2 * (370 + 2), "DeleteObjects": -(-deleted // 1000),
                                          "GetBucketVersioning": 1}
    assert run.result["bytes_hidden"] == 0
    assert "have run records that cannot be read" not in str(run.result["objects"]["blocked"])
    assert "has run records that cannot be read" in run.result["objects"]["blocked"]
    assert len(run.result["deletion_records"]) == 370
    print("retention of 10,000 objects: %d deleted, API calls %s" % (deleted, run.result["api_requests"]))
    left = backend.client.list_objects_v2(Bucket=backend.bucket, Prefix=JOB + "/2")
    assert left["KeyCount"] == 30 * 25


def test_present_finds_the_set_of_its_artifacts_and_completes_a_half_recorded_run(store):
    backend, storage = store
    artifact = put_artifact(backend, "2026-11-20", "late", b"started before midnight")
    source = {"type": "github", "name": "acme"}
    crossed = module("backup_manifest", storage, job=JOB, artifacts=[artifact], source=source, run_id="awx-7",
                     finished="2026-11-21T00:10:00Z")
    assert not crossed.failed, crossed.result.get("msg")
    assert crossed.result["manifest_key"] == "%s/2026-11-20/manifest.json" % JOB
    elsewhere = module("backup_manifest", storage, job=JOB, set_date="2026-11-21", artifacts=[artifact], source=source)
    assert elsewhere.failed and "must lie in %s/objects/ or in the backup set %s/2026-11-21/" % (JOB, JOB) in elsewhere.result["msg"]
    other_source = module("backup_manifest", storage, job=JOB, set_date="2026-11-20", run_id="awx-7",
                          source={"type": "mongodb", "name": "orders"}, status="failed", errors=["db down"])
    assert other_source.changed and other_source.result["set_status"] == "partial"  # same AWX job, other source
    # A run whose writer stopped after its run record, before the view: it is recorded (every reader sees it), and
    # the retried task changes no fact, but writes the view again.
    half = dict(other_source.result["run"], run_id="awx-8", status="success", errors=[])
    backend.write(m.run_key("2026-11-20", JOB, half), [json.dumps(half).encode()])
    [listed] = module("backup_manifest", storage, state="query", job=JOB).result["sets"]
    assert sorted((r["run_id"], r["source"]["type"]) for r in listed["runs"]) == [
        ("awx-7", "github"), ("awx-7", "mongodb"), ("awx-8", "mongodb")] and listed["status"] == "success"
    retried = module("backup_manifest", storage, job=JOB, set_date="2026-11-20", run_id="awx-8",
                     source={"type": "mongodb", "name": "orders"})
    assert not retried.changed and retried.result["run"]["run_id"] == "awx-8"
    manifest = json.loads(backend.read_bytes("%s/2026-11-20/manifest.json" % JOB))  # the view, for people
    assert sorted((r["run_id"], r["source"]["type"]) for r in manifest["runs"]) == [
        ("awx-7", "github"), ("awx-7", "mongodb"), ("awx-8", "mongodb")]
    again = module("backup_manifest", storage, job=JOB, set_date="2026-11-20", run_id="awx-8",
                   source={"type": "mongodb", "name": "orders"})
    assert not again.changed


def test_a_run_that_lacks_an_artifact_it_reports_is_never_a_success(store):
    backend, storage = store
    date = "2026-11-21"
    stored = put_artifact(backend, date, "alpha", b"alpha" * 100)
    entry = {"size": None, "sha256": None, "error": None}
    result = {"changed": True, "job": JOB, "status": "success", "source": {"type": "files", "name": "host"},
              "totals": {"seconds": 1}, "artifacts": [stored],
              "entries": [dict(entry, name="alpha", status="backed_up", key=stored["key"]),
                          dict(entry, name="beta", status="carried", key="%s/%s/beta_20261121T020000Z.bin" % (JOB, date))]}
    run = module("backup_manifest", storage, job=JOB, result=result)
    assert not run.failed, run.result.get("msg")
    assert run.result["set_status"] == "partial"
    assert any(e.startswith("beta: reported carried, but the run holds no artifact of it") for e in run.result["run"]["errors"])
    ghost = dict(stored, key="%s/%s/gamma_20261121T020000Z.bin" % (JOB, date))
    result = dict(result, entries=[dict(entry, name="gamma", status="unchanged", key=ghost["key"])], artifacts=[ghost])
    run = module("backup_manifest", storage, result=result)  # the job from the result
    assert run.result["set_status"] == run.result["run"]["status"] == "failed"  # nothing of it is stored
    assert "%s: not in the store" % ghost["key"] in run.result["run"]["errors"]
    lost = dict(entry, name="x", status="lost", key=None)
    bad = module("backup_manifest", storage, job=JOB, result=dict(result, entries=[lost]))
    assert bad.failed and "entries[0].status 'lost' is not one of" in bad.result["msg"]
    bare = module("backup_manifest", storage, job=JOB, result={"changed": False, "artifacts": []})
    assert bare.failed and "result is not the registered result of a service module" in bare.result["msg"]


def test_verification_reads_bytes_that_sets_share_once(tmp_path):
    from ansible_collections.corebackup.backup.plugins.module_utils._catalog import carry
    from ansible_collections.corebackup.backup.plugins.module_utils._checksum import verify_artifact
    from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter

    backend = FilesystemBackend(str(tmp_path))
    day = datetime.datetime(2026, 11, 1, 2, 0, tzinfo=datetime.timezone.utc)
    artifact = ArtifactWriter(backend, "none").store(JOB, "a", "bin", [b"x" * 4096], when=day)
    keys = [artifact.key] + [carry(backend, artifact, JOB, day + datetime.timedelta(days=n)).key for n in (1, 2)]
    opened = []
    real_open = backend.open
    backend.open = lambda key: opened.append(key) or real_open(key)
    seen = {}
    assert all(verify_artifact(backend, key, artifact.sha256, artifact.size, seen).ok for key in keys)
    assert opened == [artifact.key]  # three keys, one inode, read once
