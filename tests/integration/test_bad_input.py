# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bad input, as a new user gives it: a clear error naming the problem, a failed task, and not one byte of
the backups already stored deleted or overwritten.

Each case runs a module through ansible-playbook against a store that already holds a backup of the same
job (on a filesystem and on S3); the store is read in full before and after.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

import pytest

from ansible_collections.corebackup.backup.tests.conftest import make_s3_backend
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))))
JOB = "precious"
ORG = "badinput"
QUICK = {"attempts": 2, "delay": 0.1, "max_delay": 0.2}


@pytest.fixture(scope="module")
def world(github_standin, s3_endpoint, tmp_path_factory):
    """A GitHub organization, a source folder, and a filesystem and an S3 store that hold a backup of JOB."""
    root = tmp_path_factory.mktemp("bad-input")
    token = github_standin.add_token(login="bad-input-bot")
    github_fixtures.build_many(github_standin, ORG, str(root / "org"), count=3, metadata=False)
    source = root / "source"
    (source / "etc").mkdir(parents=True)
    (source / "etc" / "app.conf").write_text("setting = 1\n")
    fs_storage = {"type": "filesystem", "path": str(root / "store")}
    backend = make_s3_backend(s3_endpoint, prefix="bad/")
    s3_storage = dict(type="s3", bucket=backend.bucket, prefix="bad/", endpoint_url=s3_endpoint, **S3_TEST_CREDENTIALS)
    for storage in (fs_storage, s3_storage):
        first = run_module(COLLECTIONS, "files_backup", {"paths": [str(source)], "job": JOB, "storage": storage})
        assert not first.failed, first.result.get("msg")
    return {"standin": github_standin, "token": token, "source": str(source), "fs": fs_storage, "s3": s3_storage,
            "backend": backend, "root": root}


def fs_snapshot(path):
    """{file: (sha256, mtime)} of a store, but the jobs' lease records (a run refused for its source may have taken
    and released the lease: records that are only ever added) and the empty file whose flock() the release before
    records waits for."""
    found = {}
    for directory, _dirs, files in os.walk(path):
        if os.path.basename(directory) == "leases":
            continue
        for name in files:
            if name == ".lease.lock":
                continue
            full = os.path.join(directory, name)
            with open(full, "rb") as handle:
                found[os.path.relpath(full, path)] = (hashlib.sha256(handle.read()).hexdigest(), os.stat(full).st_mtime_ns)
    return found


def s3_snapshot(backend):
    return {o.key: (o.size, o.etag) for o in backend.list("") if "/leases/" not in o.key}


def github_args(world, **options):
    return dict({"organization": ORG, "token": world["token"], "api_url": world["standin"].api_url, "job": JOB,
                 "storage": world["fs"], "retries": QUICK, "api_mode": "rest"}, **options)


def files_args(world, storage="fs", **options):
    return dict({"paths": [world["source"]], "job": JOB, "storage": world[storage], "retries": QUICK}, **options)


def retention_args(world, **policy):
    return dict({"job": JOB, "storage": world["fs"]}, **policy)


# (case id, module, arguments from the world, what the error must say)
CASES = [
    ("include-invalid-regex", "github_backup", lambda w: github_args(w, include=["("]), "include"),
    ("exclude-invalid-regex", "github_backup", lambda w: github_args(w, exclude=["[a-"]), "exclude"),
    ("unknown-organization", "github_backup", lambda w: github_args(w, organization="no-such-org"),
     "cannot list the repositories of no-such-org"),
    ("bad-token", "github_backup", lambda w: github_args(w, token="ghp_" + "0" * 36), "Bad credentials"),
    ("include-matches-nothing", "github_backup", lambda w: github_args(w, include=["^nothing-like-this$"]),
     "include ['^nothing-like-this$'] matched none of the 3 repositories of badinput"),
    ("parallel-zero", "github_backup", lambda w: github_args(w, parallel=0), "parallel must be at least 1, got 0"),
    ("api-host-refuses", "github_backup", lambda w: github_args(w, api_url="http://127.0.0.1:9/api"),
     "cannot reach 127.0.0.1:9"),
    ("graphql-without-token", "github_backup", lambda w: github_args(w, token=None, api_mode="graphql"),
     "api_mode graphql needs a token"),
    ("app-key-not-pem", "github_backup", lambda w: github_args(w, token=None, app_id="1", app_private_key="secret"),
     "app_private_key is not a PEM private key"),
    ("relative-storage-path", "files_backup", lambda w: files_args(w) | {
        "storage": {"type": "filesystem", "path": "relative/store"}}, "storage.path must be an absolute path"),
    ("storage-root-is-a-file", "files_backup", lambda w: files_args(w) | {
        "storage": {"type": "filesystem", "path": os.path.join(w["source"], "etc", "app.conf")}}, "not a directory"),
    ("job-path-traversal", "files_backup", lambda w: files_args(w, job="../../etc"), "job"),
    ("job-with-slash", "files_backup", lambda w: files_args(w, job="precious/../other"), "job"),
    ("recipient-not-age", "files_backup", lambda w: files_args(w, encryption={"recipients": ["not-an-age-key"]}),
     "not an age recipient"),
    ("compression-level", "files_backup", lambda w: files_args(w, compression_level=42), "compression_level"),
    ("source-path-missing", "files_backup", lambda w: files_args(w, paths=["/nonexistent/data"]), "/nonexistent/data"),
    ("lock-timeout-negative", "files_backup", lambda w: files_args(w, lock_timeout=-1), "lock_timeout must be"),
    ("retries-zero", "files_backup", lambda w: files_args(w, retries={"attempts": 0}), "attempts"),
    ("bucket-missing", "files_backup", lambda w: files_args(w, storage="s3") | {
        "storage": dict(w["s3"], bucket="no-such-bucket-corebackup")}, "no-such-bucket-corebackup"),
    ("s3-endpoint-refuses", "files_backup", lambda w: files_args(w, storage="s3") | {
        "storage": dict(w["s3"], endpoint_url="http://127.0.0.1:9")}, "127.0.0.1:9"),
    ("s3-both-profile-and-keys", "files_backup", lambda w: files_args(w, storage="s3") | {
        "storage": dict(w["s3"], profile="default")}, "mutually exclusive"),
    ("retention-negative", "backup_retention", lambda w: retention_args(w, keep_daily=-1), "keep_daily"),
    ("retention-all-zero", "backup_retention", lambda w: retention_args(w, keep_days=0, keep_last=0, keep_weekly=0),
     "the retention policy is empty"),
    ("retention-empty-policy", "backup_retention", lambda w: retention_args(w, keep_days=0),
     "the retention policy is empty"),
    ("retention-s3-bucket-missing", "backup_retention", lambda w: retention_args(w, keep_last=1) | {
        "storage": dict(w["s3"], bucket="no-such-bucket-corebackup")}, "no-such-bucket-corebackup"),
    ("manifest-job-traversal", "backup_manifest", lambda w: {"state": "query", "job": "../x", "storage": w["fs"]}, "job"),
    ("mongo-uri-malformed", "mongo_dump", lambda w: {"uri": "mongodb:/bad", "job": JOB, "storage": w["fs"]}, "uri"),
    ("mongo-unreachable", "mongo_dump", lambda w: {
        "uri": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=500", "job": JOB, "storage": w["fs"], "retries": QUICK},
     "127.0.0.1:9"),
    ("docker-unreachable", "volume_snapshot", lambda w: {
        "volumes": ["data"], "docker_host": "unix:///nonexistent/docker.sock", "job": JOB, "storage": w["fs"]},
     "cannot reach the Docker engine"),
]


@pytest.mark.parametrize("case, module, make, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_named_and_nothing_stored_is_touched(world, case, module, make, expected):
    before = fs_snapshot(world["fs"]["path"]), s3_snapshot(world["backend"])
    started = time.monotonic()
    run = run_module(COLLECTIONS, module, {k: v for k, v in make(world).items() if v is not None})
    elapsed = time.monotonic() - started
    assert run.failed, "%s: the run succeeded" % case
    assert expected in run.result["msg"], run.result["msg"]
    assert "Traceback" not in run.result["msg"] and "unexpected error" not in run.result["msg"], run.result["msg"]
    after = fs_snapshot(world["fs"]["path"]), s3_snapshot(world["backend"])
    for was, now in zip(before, after):
        assert {k: now.get(k) for k in was} == was, case  # nothing deleted or overwritten
        assert set(now) == set(was), case  # nothing added
    if case == "api-host-refuses":
        assert elapsed < 15, "a refused first connection is not retried as if transient (%.1fs)" % elapsed


def test_an_empty_selection_passes_when_allowed(world):
    run = run_module(COLLECTIONS, "github_backup", github_args(world, include=["^nothing$"], allow_empty=True,
                                                               job="allowed-empty"))
    assert not run.failed, run.result.get("msg")
    assert run.result["totals"]["selected"] == 0


def test_a_read_only_store_fails_once_for_the_run(world, tmp_path):
    """One error for the run, not one per item, when the store refuses every write."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "none", str(mount)], capture_output=True,
                      check=False).returncode:
        pytest.skip("mounting a read-only tmpfs is not allowed here")
    try:
        sources = [os.path.join(str(tmp_path), "src%d" % i) for i in range(6)]
        for path in sources:
            os.makedirs(path)
            with open(os.path.join(path, "f"), "w", encoding="utf-8") as handle:
                handle.write(path)
        run = run_module(COLLECTIONS, "files_backup", {"paths": sources, "job": JOB, "retries": QUICK,
                                                       "storage": {"type": "filesystem", "path": str(mount)}})
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert run.failed
    assert run.result["msg"].count("Read-only file system") == 1, run.result["msg"]
    assert str(mount) in run.result["msg"]


def test_without_a_token_the_run_warns_and_refuses_what_the_hour_cannot_finish(tmp_path):
    with GitHubStandIn(str(tmp_path / "github"), anonymous_rate_limit=60) as standin:
        github_fixtures.build_many(standin, "public", str(tmp_path / "org"), count=9, metadata=False)
        storage = {"type": "filesystem", "path": str(tmp_path / "store")}
        args = {"organization": "public", "api_url": standin.api_url, "storage": storage, "retries": QUICK}
        small = run_module(COLLECTIONS, "github_backup", dict(args, include=["bench-00[01]"]))
        assert not small.failed, small.result.get("msg")
        assert any("no token" in w and "60 API requests an hour" in w for w in small.result.get("warnings", []))
        big = run_module(COLLECTIONS, "github_backup", args)
        assert big.failed
        assert "without a token GitHub allows" in big.result["msg"] and "needs at least" in big.result["msg"]
        assert not big.result.get("entries")  # refused before any repository was read
