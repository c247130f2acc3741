# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Storage faults, each through a real files_backup run (ansible-playbook): nothing is lost, nothing half-made
is passed off as a backup.

- A full filesystem (a 2 MiB tmpfs, ENOSPC) and a file size limit (RLIMIT_FSIZE on the module process, EFBIG):
  the run fails naming the path, nothing is left under a final name or as a temporary file, the manifest
  records the failure, older sets keep every byte.
- S3 faults through the fault proxy (500, 503 SlowDown, a connection reset half-way through a part, an answer
  lost after S3 acted, slow answers): retried to a complete, verified artifact; or, when the faults outlast the
  retries, a clean failure: no object under the final key, no incomplete multipart upload, the failure in the
  manifest, older sets untouched.
- A run SIGKILLed half-way through an artifact, on both backends: nothing under a final name, no run recorded;
  the next run succeeds and ignores the leftover, a run a day later removes it. (github_backup has the same in
  tests/integration/modules/test_complete_sets.py, with a lost checksum record besides.)
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._layout import iso
from ansible_collections.corebackup.backup.plugins.module_utils._manifest import record_run
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter, bytes_stream, tar_stream
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.tests.conftest import files_below, make_s3_backend
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import RunningModule, run_module
from ansible_collections.corebackup.backup.tests.testbed.records import set_records
from ansible_collections.corebackup.backup.tests.testbed.s3_proxy import Rule
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))))
MiB = 1024 * 1024
JOB = "files"
TODAY = datetime.datetime(2026, 6, 15, 2, 0, tzinfo=datetime.timezone.utc)
YESTERDAY = TODAY - datetime.timedelta(days=1)
RETRIES = {"attempts": 4, "delay": 0.1, "max_delay": 0.4}


def at(when, minutes=0):
    return {"COREBACKUP_NOW": iso(when + datetime.timedelta(minutes=minutes))}


def files(storage, paths, when, minutes=0, env=None, **options):
    args = dict({"paths": paths, "storage": storage, "retries": RETRIES, "parallel": 1, "job": JOB}, **options)
    return run_module(COLLECTIONS, "files_backup", args, env=dict(at(when, minutes), **(env or {})))


def record(storage, result, when, minutes=30):
    run = run_module(COLLECTIONS, "backup_manifest", {"job": JOB, "storage": storage, "result": result,
                                                      "retries": RETRIES}, env=at(when, minutes))
    assert not run.failed, run.result.get("msg")
    return run


def make_source(root, name, size):
    """A folder with one file of ``size`` random bytes (they do not compress)."""
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "data.bin"), "wb") as handle:
        handle.write(os.urandom(size))
    return folder


def in_older_set(relative, skip_prefix):
    """Is ``relative`` (to the store's root or prefix) in a backup set folder not under ``skip_prefix`` (a prefix or
    a tuple of them), or a shared object (``<job>/objects/``) written on a day whose set is not under it?"""
    parts = relative.split("/")
    if len(parts) > 2 and parts[1] == "objects":
        stamp = re.search(r"_(\d{4})(\d{2})(\d{2})T\d{6}Z\.", parts[-1])
        return stamp is not None and not ("%s/%s-%s-%s/" % ((parts[0],) + stamp.groups())).startswith(skip_prefix)
    return len(parts) > 2 and re.match(r"^\d{4}-\d{2}-\d{2}$", parts[1]) is not None and not relative.startswith(
        skip_prefix)


def store_snapshot(backend, skip_prefix):
    """sha256 of every object of the backup sets other than ``skip_prefix`` (today's set) and of the shared objects
    written on their days; on a filesystem every file of their folders, hidden helper files included."""
    found = {}
    if isinstance(backend, FilesystemBackend):
        for relative in files_below(backend.root):
            if in_older_set(relative, skip_prefix):
                with open(os.path.join(backend.root, relative), "rb") as handle:
                    found[relative] = hashlib.sha256(handle.read()).hexdigest()
        return found
    pages = backend.client.get_paginator("list_objects_v2").paginate(Bucket=backend.bucket, Prefix=backend.prefix)
    for page in pages:
        for item in page.get("Contents", []):
            if in_older_set(item["Key"][len(backend.prefix):], skip_prefix):
                body = backend.client.get_object(Bucket=backend.bucket, Key=item["Key"])["Body"].read()
                found[item["Key"]] = hashlib.sha256(body).hexdigest()
    return found


def older_set(backend, source):
    """Yesterday's set, written in this process: one artifact of ``source`` and its run recorded in the manifest."""
    artifact = ArtifactWriter(backend, "gzip", 1).store(JOB, "small", "tar", tar_stream(source), when=YESTERDAY)
    finished = iso(YESTERDAY + datetime.timedelta(minutes=1))
    run = {"run_id": "yesterday", "started": iso(YESTERDAY), "finished": finished, "duration": 60.0,
           "status": "success", "source": {"type": "files", "name": "host"}, "artifacts": [artifact.to_dict()],
           "entries": [{"name": "small", "status": "backed_up", "key": artifact.key, "error": None}],
           "counts": {"backed_up": 1}, "warnings": [], "errors": [], "tools": {}}
    record_run(backend, JOB, YESTERDAY.date().isoformat(), run)
    snapshot = store_snapshot(backend, today_prefix())
    assert len(snapshot) >= 5, snapshot  # artifact, checksum record, run record, manifest, SHA256SUMS
    return snapshot


def uploads(backend):
    return backend.client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", [])


def today_prefix():
    return "%s/%s/" % (JOB, TODAY.date().isoformat())


def objects_of(backend, name):
    """The keys of ``name``'s artifacts and checksum records under the job's shared objects."""
    return [o.key for o in backend.list(JOB + "/objects/") if "/%s_" % name in o.key]


def records_of(backend):
    """Today's set as its records say (not its manifest.json, a view)."""
    return set_records(backend, JOB, TODAY.date().isoformat())


def entry(run, name):
    [found] = [e for e in run.result["entries"] if e["name"] == name]
    return found


def tar_member(data, name):
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return archive.extractfile(name).read()


# --------------------------------------------------------------------------------------------------------------
# A full filesystem
# --------------------------------------------------------------------------------------------------------------

def limited_interpreter(tmp_path, limit):
    """A Python interpreter for the module (ANSIBLE_PYTHON_INTERPRETER) that runs under RLIMIT_FSIZE ``limit``,
    through util-linux prlimit. Python ignores SIGXFSZ, so a write past the limit fails with EFBIG."""
    prlimit = subprocess.run(["sh", "-c", "command -v prlimit"], capture_output=True, text=True, check=False).stdout
    if not prlimit.strip():
        pytest.skip("RLIMIT_FSIZE: no prlimit (util-linux) on this machine")
    wrapper = tmp_path / "python-fsize-limited"
    wrapper.write_text("#!/bin/sh\nexec %s --fsize=%d -- %s \"$@\"\n" % (prlimit.strip(), limit, sys.executable))
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.fixture(params=["tmpfs", "rlimit_fsize"])
def full_store(request, tmp_path):
    """(how the store fills up, its root, extra environment of the module run, the error text expected)."""
    root = tmp_path / "store"
    root.mkdir()
    if request.param == "tmpfs":
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "corebackup-full", str(root)],
                                 capture_output=True, text=True, check=False)
        if mounted.returncode:
            pytest.skip("ENOSPC through a 2 MiB tmpfs: mounting is not allowed here (%s); the rlimit_fsize case "
                        "covers a write that the file system refuses" % mounted.stderr.strip())
        try:
            yield "a 2 MiB tmpfs (ENOSPC)", str(root), {}, "No space left on device"
        finally:
            subprocess.run(["umount", str(root)], check=True)
    else:
        yield ("RLIMIT_FSIZE of 1 MiB on the module process (EFBIG)", str(root),
               {"ANSIBLE_PYTHON_INTERPRETER": limited_interpreter(tmp_path, MiB)}, "File too large")


def test_a_full_store_fails_naming_the_path_and_keeps_older_sets(full_store, tmp_path):
    how, root, env, error = full_store
    backend = FilesystemBackend(root)
    storage = {"type": "filesystem", "path": root}
    sources = str(tmp_path / "src")
    small = make_source(sources, "small", 20000)
    before = older_set(backend, small)

    big = make_source(sources, "big", 3 * MiB)
    with open(os.path.join(small, "more.txt"), "w", encoding="utf-8") as handle:
        handle.write("changed today\n")
    run = files(storage, [small, big], TODAY, env=env)
    assert run.failed, how
    failed = entry(run, "big")
    print("store filled up by %s: %s" % (how, failed["error"]))
    assert failed["status"] == "failed" and entry(run, "small")["status"] == "backed_up", (how, run.result["entries"])
    final = os.path.join(root, JOB, "objects", "big_%s.tar.gz" % TODAY.strftime("%Y%m%dT%H%M%SZ"))
    # The error names the file it could not write and the system's reason, in the entry and in the task's message.
    assert final in failed["error"] and error in failed["error"], (how, failed["error"])
    assert final in run.result["msg"] and error in run.result["msg"], (how, run.result["msg"])
    assert run.result["status"] == "partial"
    # Nothing of big under a final name, no temporary file, no metadata or checksum record of it.
    left = files_below(root)
    assert not [f for f in left if "big" in f], (how, left)
    assert not [f for f in left if f.endswith(".partial")], (how, left)

    recorded = record(storage, run.result, TODAY)
    assert recorded.result["set_status"] == "partial"
    records = records_of(backend)
    [stored_run] = records.runs
    assert stored_run["status"] == "partial" and records.status == "partial"
    assert {e["name"]: e["status"] for e in stored_run["entries"]} == {"small": "backed_up", "big": "failed"}
    assert any(final in e and error in e for e in stored_run["errors"]), stored_run["errors"]
    assert [a["key"] for a in stored_run["artifacts"]] == [entry(run, "small")["key"]]
    assert store_snapshot(backend, today_prefix()) == before, how  # older sets: every byte as it was


def test_an_artifact_whose_checksum_record_is_refused_is_removed(backend, monkeypatch):
    """A store that fills up between the artifact and its checksum record (a lower level than a module run: the
    moment is too narrow to hit with a real file system): the item fails, and nothing is left under its name."""
    write = backend.write

    def full_for_records(key, chunks, **kwargs):
        if "/checksums/" in key:
            raise StorageError("cannot write %s: [Errno 28] No space left on device" % key)
        return write(key, chunks, **kwargs)

    monkeypatch.setattr(backend, "write", full_for_records)
    with pytest.raises(StorageError, match=r"checksums/x_20260615T020000Z\.bin\.json: \[Errno 28\]"):
        ArtifactWriter(backend, "none").store(JOB, "x", "bin", bytes_stream([os.urandom(1000)]), when=TODAY)
    assert list(backend.list("")) == []
    if isinstance(backend, FilesystemBackend):
        assert files_below(backend.root) == []


# --------------------------------------------------------------------------------------------------------------
# S3 endpoint faults
# --------------------------------------------------------------------------------------------------------------

BIG = 20 * MiB  # a tar of it is three parts of the backend's 8 MiB part size: 8 + 8 + 4
PARTS = 3
# (id, rules, size of the big item, whether the run succeeds, the operation the faults hit, error text expected)
S3_FAULTS = [
    ("500-on-parts", [Rule("UploadPart", "status", status=500, count=2)], BIG, True, "UploadPart", None),
    ("503-slowdown-on-each-step", [Rule(op, "status", status=503, count=1) for op in (
        "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")], BIG, True, "UploadPart", None),
    ("reset-mid-part", [Rule("UploadPart", "reset_mid", count=2)], BIG, True, "UploadPart", None),
    # S3 completed the upload (and stored the checksum record) but the answers were lost: the retries find the
    # object there, exactly what was sent.
    ("answer-lost-after-commit", [Rule("CompleteMultipartUpload", "drop_answer", count=1),
                                  Rule("PutObject", "drop_answer", key_regex="/checksums/big_", count=1)],
     BIG, True, "CompleteMultipartUpload", None),
    ("slow-answers", [Rule("UploadPart", "delay", seconds=1.0, count=-1)], BIG, True, "UploadPart", None),
    ("500-outlasts-retries-on-parts", [Rule("UploadPart", "status", status=500, count=-1)], BIG, False,
     "UploadPart", "InternalError"),
    ("reset-mid-part-outlasts-retries", [Rule("UploadPart", "reset_mid", count=-1)], BIG, False, "UploadPart",
     "Connection"),
    ("500-outlasts-retries-on-complete", [Rule("CompleteMultipartUpload", "status", status=500, count=-1)], BIG,
     False, "CompleteMultipartUpload", "InternalError"),
    ("503-slowdown-outlasts-retries-single-put", [Rule("PutObject", "status", status=503, key_regex=r"/big_",
                                                       count=-1)], 2 * MiB, False, "PutObject", "SlowDown"),
]


@pytest.mark.parametrize("case", S3_FAULTS, ids=[case[0] for case in S3_FAULTS])
def test_s3_faults_are_retried_or_fail_cleanly(case, s3_endpoint, s3_proxy, tmp_path):
    name, rules, size, succeeds, operation, error = case
    backend = make_s3_backend(s3_endpoint)  # the test's own view of the bucket, around the proxy
    storage = dict(type="s3", bucket=backend.bucket, prefix=backend.prefix, endpoint_url=s3_proxy.url,
                   **S3_TEST_CREDENTIALS)
    sources = str(tmp_path / "src")
    before = older_set(backend, make_source(sources, "small", 20000))
    big = make_source(sources, "big", size)
    key = "%s/objects/big_%s.tar" % (JOB, TODAY.strftime("%Y%m%dT%H%M%SZ"))
    s3_proxy.clear()
    for rule in rules:
        s3_proxy.add(rule)
    started = time.monotonic()
    run = files(storage, [big], TODAY, compression="none")
    seconds = time.monotonic() - started
    sent = [e for e in s3_proxy.log if e.operation == operation and "/big_" in e.path]
    faults = [e for e in sent if e.status != 200]
    slowed = sum(rule.seconds for rule in rules if rule.action == "delay") * PARTS
    # Nothing was deleted (a failed upload is aborted, never deleted; lease records and probes are only created),
    # so a create-only credential would have done the same.
    deletes = [e.operation for e in s3_proxy.log if e.operation in ("DeleteObject", "DeleteObjects")]
    aborts = [e for e in s3_proxy.log if e.operation == "AbortMultipartUpload" and "/big_" in e.path]
    s3_proxy.clear()
    assert deletes == [], (name, deletes)
    print("%s: %d %s sends, %d answered with a fault or none, %.1f s" % (
        name, len(sent), operation, len(faults), seconds))
    assert faults or seconds > slowed > 0, (name, "no fault reached the endpoint")
    assert uploads(backend) == [], name  # no incomplete multipart upload, whatever happened
    if succeeds:
        assert not run.failed, (name, run.result.get("msg"))
        done = entry(run, "big")
        assert done["status"] == "backed_up" and done["key"] == key
        data = backend.read_bytes(key)
        assert hashlib.sha256(data).hexdigest() == done["sha256"] and len(data) == done["size"]
        with open(os.path.join(big, "data.bin"), "rb") as handle:
            assert tar_member(data, "big/data.bin") == handle.read(), name
        checksum = json.loads(backend.read_bytes(JOB + "/objects/checksums/" + key.rsplit("/", 1)[1] + ".json"))
        assert (checksum["sha256"], checksum["size"]) == (done["sha256"], done["size"])
        # Within the backoff budget: each fault cost one more send and a short wait, nothing more.
        if operation == "UploadPart":
            assert len(sent) == PARTS + len(faults), (name, sent)
        assert seconds < 30 + slowed, (name, seconds)
    else:
        assert run.failed and run.result["status"] == "failed", name
        failed = entry(run, "big")
        where = "s3://%s/%s%s" % (backend.bucket, backend.prefix, key)
        assert where in failed["error"] and error in failed["error"], (name, failed["error"])
        # How often it was tried, in our words: botocore's own "(reached max retries: 0)" would say it never was.
        assert failed["error"].endswith("(gave up after %d attempts)" % RETRIES["attempts"]), failed["error"]
        assert "reached max retries" not in failed["error"]
        assert where in run.result["msg"], (name, run.result["msg"])
        print("  error: %s" % failed["error"])
        # Each try of the failing step sent as often as retries.attempts says, then the upload was aborted. Parts
        # go up concurrently (storage.upload_concurrency): each part in flight was tried that often, no part more.
        tried = [RETRIES["attempts"] * parts for parts in range(1, (PARTS if operation == "UploadPart" else 1) + 1)]
        assert len(sent) in tried, (name, sent)
        if operation in ("UploadPart", "CompleteMultipartUpload"):
            assert aborts, (name, "the failed multipart upload was not aborted")
        # Nothing under the final key, no checksum record: today's set holds nothing of big.
        assert [o.key for o in backend.list(today_prefix())] == [] and objects_of(backend, "big") == [], name
        recorded = record(storage, run.result, TODAY)
        assert recorded.result["set_status"] == "failed"
        [stored_run] = records_of(backend).runs
        assert stored_run["status"] == "failed" and stored_run["artifacts"] == []
        assert stored_run["entries"] == [{"name": "big", "status": "failed", "key": None, "error": failed["error"]}]
        assert any(where in e for e in stored_run["errors"])
    assert store_snapshot(backend, today_prefix()) == before, name  # older sets: every byte as it was


# --------------------------------------------------------------------------------------------------------------
# A run killed half-way through an artifact
# --------------------------------------------------------------------------------------------------------------

@pytest.fixture(params=["filesystem", "s3"])
def kill_store(request, tmp_path):
    """(backend, storage option, proxy or None, the leftovers a killed writer of big leaves)."""
    if request.param == "filesystem":
        backend = FilesystemBackend(str(tmp_path / "store"))

        def partial():
            return [f for f in files_below(backend.root) if os.path.basename(f).startswith(".big_")
                    and f.endswith(".partial") and os.path.getsize(os.path.join(backend.root, f)) > 4 * MiB]
        return backend, {"type": "filesystem", "path": backend.root}, None, partial
    proxy = request.getfixturevalue("s3_proxy")
    backend = make_s3_backend(request.getfixturevalue("s3_endpoint"))
    storage = dict(type="s3", bucket=backend.bucket, prefix=backend.prefix, endpoint_url=proxy.url, **S3_TEST_CREDENTIALS)
    return backend, storage, proxy, lambda: [u["Key"] for u in uploads(backend) if "/big_" in u["Key"]]


def test_a_killed_run_leaves_no_artifact_and_no_run_and_the_next_run_succeeds(kill_store, tmp_path):
    backend, storage, proxy, leftovers = kill_store
    sources = str(tmp_path / "src")
    before = older_set(backend, make_source(sources, "small", 20000))
    big = make_source(sources, "big", 64 * MiB if proxy is None else BIG)
    if proxy is not None:
        proxy.add(Rule("UploadPart", "delay", seconds=1.5, count=-1))  # a slow link: parts take a while
    args = {"paths": [big], "storage": storage, "retries": RETRIES, "job": JOB, "compression": "none"}
    running = RunningModule(COLLECTIONS, "files_backup", args, env=at(TODAY))
    deadline = time.monotonic() + 120
    while not leftovers():  # big is being stored
        assert running.process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    running.kill()
    if proxy is not None:
        proxy.clear()
    left = leftovers()
    assert len(left) == 1
    # Nothing under a final name, no checksum record, no run record, no manifest.
    assert [o.key for o in backend.list(today_prefix())] == [] and objects_of(backend, "big") == []
    assert store_snapshot(backend, today_prefix()) == before

    rerun = run_module(COLLECTIONS, "files_backup", args, env=at(TODAY, minutes=10))
    assert not rerun.failed, rerun.result.get("msg")
    assert entry(rerun, "big")["status"] == "backed_up" and rerun.result["status"] == "success"
    assert rerun.result["cleaned"] == [] and leftovers() == left  # younger than a day: it may be a running writer's
    record(storage, rerun.result, TODAY)
    [stored_run] = records_of(backend).runs
    assert stored_run["status"] == "success" and [a["key"] for a in stored_run["artifacts"]] == [
        entry(rerun, "big")["key"]]
    data = backend.read_bytes(entry(rerun, "big")["key"])
    assert hashlib.sha256(data).hexdigest() == entry(rerun, "big")["sha256"]

    # A day after the killed writer stopped by every clock that judges it (the temporary file's time is the real
    # one; an upload's, the later of S3's Initiated and the time in its key), the next run removes what it left.
    when = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=1, hours=1)
    if proxy is not None:
        proxy.clear()
    later = run_module(COLLECTIONS, "files_backup", args, env=at(when))
    assert not later.failed, later.result.get("msg")
    assert entry(later, "big")["status"] == "carried"
    assert len(later.result["cleaned"]) == 1 and "big_" in later.result["cleaned"][0] and leftovers() == []
    if proxy is not None:  # the killed upload is aborted, and nothing is deleted
        sent = [e.operation for e in proxy.log]
        assert "AbortMultipartUpload" in sent and not [op for op in sent if op.startswith("Delete")], sent
    assert store_snapshot(backend, (today_prefix(), "%s/%s/" % (JOB, when.date().isoformat()))) == before
