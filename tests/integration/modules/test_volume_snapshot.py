# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""volume_snapshot through ansible-playbook against a real Docker engine started by the tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
import uuid

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import TreeStats, tar_filter
from ansible_collections.corebackup.backup.tests.conftest import files_below, make_s3_backend
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import RunningModule, run_module
from ansible_collections.corebackup.backup.tests.testbed.s3_proxy import Rule
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
RETRIES = {"attempts": 2, "delay": 0.1, "max_delay": 0.2}
POPULATE = r"""
set -e
cd /v
mkdir -p etc/conf.d empty "dir with spaces" deep/a/b/c
printf 'port = 8080\n' > etc/app.conf
dd if=/dev/urandom of=deep/a/b/c/blob.bin bs=1024 count=300 2>/dev/null
printf 'x' > "dir with spaces/file name"
printf 'unicode\n' > "$(printf 'caf\303\251 \342\230\225')"
printf 'newline\n' > "$(printf 'line\nbreak')"
ln -s etc/app.conf config-link
ln -s /nowhere dangling
ln etc/app.conf hard-link
chmod 0640 etc/app.conf
chmod 0750 deep
chmod 0700 empty
chown 1234:5678 etc/conf.d
chown -h 4321:8765 config-link
touch -d '2021-03-04 05:06:07' deep/a/b/c/blob.bin
"""


@pytest.fixture
def engine(docker_engine):
    yield docker_engine
    for container in docker_engine.client.containers.list(all=True):
        container.remove(force=True)
    docker_engine.client.volumes.prune()


def run_in(engine, volume, script):
    engine.client.containers.run(engine.image, ["sh", "-c", script], volumes={volume: {"bind": "/v", "mode": "rw"}},
                                 network_mode="none", remove=True)


def new_volume(engine, populate=POPULATE, **labels):
    name = "vol-" + uuid.uuid4().hex[:8]
    engine.client.volumes.create(name, labels=labels)
    if populate:
        run_in(engine, name, populate)
    return name


def app(engine, volume, name="app", **kwargs):
    """A running container that uses the volume."""
    # An application that shuts down on SIGTERM, as a well-behaved one does (a bare sleep as PID 1 ignores it).
    command = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    container = engine.client.containers.run(engine.image, command, name=name, detach=True,
                                             network_mode="none", volumes={volume: {"bind": "/data", "mode": "rw"}},
                                             **kwargs)
    container.reload()
    assert container.status == "running"
    return container


def snapshot(engine, storage, check=False, **options):
    args = dict({"docker_host": engine.url, "storage": storage, "retries": RETRIES, "fail_on_error": False}, **options)
    return run_module(COLLECTIONS, "volume_snapshot", args, check=check)


def members(engine, volume):
    """What the engine's archive API gives for a volume: {name: (type, mode, uid, gid, mtime, linkname, sha256)}."""
    helper = engine.client.containers.create(engine.image, ["true"], volumes={volume: {"bind": "/v", "mode": "ro"}},
                                             network_mode="none")
    try:
        stream, _stat = engine.client.api.get_archive(helper.id, "/v")
        found = {}
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            for member in archive:
                data = archive.extractfile(member).read() if member.isreg() else b""
                name = member.name.split("/", 1)[1] if "/" in member.name else "."
                found[name] = (member.type, member.mode, member.uid, member.gid, int(member.mtime),
                               member.linkname.split("/", 1)[-1] if member.islnk() else member.linkname,
                               hashlib.sha256(data).hexdigest())
        return found
    finally:
        helper.remove(force=True)


def tree_digest(engine, volume):
    helper = engine.client.containers.create(engine.image, ["true"], volumes={volume: {"bind": "/v", "mode": "ro"}},
                                             network_mode="none")
    try:
        stats = TreeStats()
        b"".join(tar_filter(engine.client.api.get_archive(helper.id, "/v")[0], strip=1, stats=stats))
        return stats.digest
    finally:
        helper.remove(force=True)


def restore_into_new_volume(engine, artifact_path):
    """The artifact extracted into a fresh volume through the engine (put_archive), as a restore does."""
    target = new_volume(engine, populate=None)
    helper = engine.client.containers.create(engine.image, ["true"], volumes={target: {"bind": "/v", "mode": "rw"}},
                                             network_mode="none")
    try:
        with open(artifact_path, "rb") as handle:
            assert engine.client.api.put_archive(helper.id, "/v", gzip.decompress(handle.read()))
    finally:
        helper.remove(force=True)
    return target


def helpers_left(engine):
    return engine.client.containers.list(all=True, filters={"label": "corebackup.helper"})


def test_restore_into_a_new_volume_equals_the_source(engine, tmp_path):
    volume = new_volume(engine)
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    run = snapshot(engine, storage, volumes=[volume], helper_image=engine.image)
    assert not run.failed, run.result.get("msg")
    [entry] = run.result["entries"]
    assert entry["status"] == "backed_up" and entry["files"] == 5 and run.changed  # the hard link is a link
    restored = restore_into_new_volume(engine, os.path.join(storage["path"], entry["key"]))
    source, copy = members(engine, volume), members(engine, restored)
    copy["."], source["."] = copy["."][:4] + copy["."][5:], source["."][:4] + source["."][5:]  # extracting touched its time
    assert copy == source
    assert source["hard-link"][0] == tarfile.LNKTYPE and source["config-link"][5] == "etc/app.conf"
    assert source["etc/conf.d"][2:4] == (1234, 5678) and source["deep/a/b/c/blob.bin"][4] == 1614834367
    assert "line\nbreak" in source and "café ☕" in source and "empty" in source
    assert entry["tree_digest"] == tree_digest(engine, volume)  # what the entry says is what the volume holds
    assert helpers_left(engine) == []
    again = snapshot(engine, storage, volumes=[volume], helper_image=engine.image)
    assert again.changed and again.result["entries"][0]["status"] == "backed_up"  # no cheap fingerprint: always archived


@pytest.mark.parametrize("quiesce", ["stop", "pause"])
def test_containers_are_quiesced_during_the_archive_and_put_back(engine, tmp_path, quiesce):
    volume = new_volume(engine)
    container = app(engine, volume, restart_policy={"Name": "unless-stopped"})
    started = container.attrs["State"]["StartedAt"]
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    run = snapshot(engine, storage, containers=["app"], quiesce=quiesce)
    assert not run.failed, run.result.get("msg")
    [entry] = run.result["entries"]
    [record] = entry["containers"]
    assert record["name"] == "app" and record["action"] == {"stop": "stopped", "pause": "paused"}[quiesce]
    assert record["seconds"] > 0
    container.reload()
    assert container.status == "running" and not container.attrs["State"]["Paused"]
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert (container.attrs["State"]["StartedAt"] != started) == (quiesce == "stop")
    # The journal: a record of the stop or pause, then one that the container is back (created, never deleted).
    journal = sorted(k for k in files_below(storage["path"]) if "/quiesce/" in k and not os.path.basename(k).startswith("."))
    assert [k.rsplit(".", 2)[1] for k in journal] == ["back", {"stop": "stopped", "pause": "paused"}[quiesce]], journal
    assert journal[0][:-len(".back.json")] == journal[1].rsplit(".", 2)[0] and helpers_left(engine) == []


def test_a_failing_upload_puts_the_container_back_and_leaves_nothing(engine, s3_proxy):
    volume = new_volume(engine, populate="dd if=/dev/urandom of=/v/big bs=1M count=20 2>/dev/null")
    container = app(engine, volume)
    backend = make_s3_backend(s3_proxy.url, prefix="vol/")
    storage = dict(type="s3", bucket=backend.bucket, prefix="vol/", endpoint_url=s3_proxy.url, **S3_TEST_CREDENTIALS)
    s3_proxy.add(Rule("UploadPart", "status", status=500, count=-1))
    run = snapshot(engine, storage, containers=["app"], quiesce="stop")
    [entry] = run.result["entries"]
    assert entry["status"] == "failed" and "InternalError" in entry["error"]
    container.reload()
    assert container.status == "running"
    assert helpers_left(engine) == []
    assert [o.key for o in backend.list("") if o.key.endswith(".tar.gz")] == []
    assert backend.client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", []) == []


def test_a_killed_run_is_reconciled_by_the_next_one(engine, s3_proxy):
    volume = new_volume(engine, populate="dd if=/dev/urandom of=/v/big bs=1M count=24 2>/dev/null")
    container = app(engine, volume)
    backend = make_s3_backend(s3_proxy.url, prefix="vol/")
    storage = dict(type="s3", bucket=backend.bucket, prefix="vol/", endpoint_url=s3_proxy.url, **S3_TEST_CREDENTIALS)
    s3_proxy.add(Rule("UploadPart", "delay", seconds=2, count=-1))
    running = RunningModule(COLLECTIONS, "volume_snapshot", {"docker_host": engine.url, "storage": storage,
                                                             "containers": ["app"], "quiesce": "stop"})
    deadline = time.monotonic() + 60
    while container.status != "exited":  # stopped by the run
        assert running.process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
        container.reload()
    time.sleep(0.5)
    running.kill()
    container.reload()
    assert container.status == "exited" and len(helpers_left(engine)) == 1  # what the killed run left
    journal = [o.key for o in backend.list("volumes/quiesce/")]
    assert len(journal) == 1 and json.loads(backend.read_bytes(journal[0]))["action"] == "stopped"
    s3_proxy.clear()
    run = snapshot(engine, storage, containers=["app"], quiesce="stop")
    assert not run.failed, run.result.get("msg")
    assert [(r["name"], r["action"]) for r in run.result["reconciled"]] == [("app", "stopped")]
    container.reload()
    assert container.status == "running" and helpers_left(engine) == []
    # Nothing in the journal was overwritten or deleted: the killed run's record has a record that the container is
    # back beside it, and so has this run's own.
    after = sorted(o.key for o in backend.list("volumes/quiesce/"))
    assert journal[0] in after and journal[0][:-len(".stopped.json")] + ".back.json" in after
    assert len(after) == 4 and len([k for k in after if k.endswith(".back.json")]) == 2, after


def test_labels_ask_for_more_and_auto_remove_containers_are_only_paused(engine, tmp_path):
    labelled = new_volume(engine, purpose="db")
    app(engine, labelled, name="db", labels={"corebackup.quiesce": "stop"})
    temporary = new_volume(engine, purpose="cache")
    app(engine, temporary, name="cache", auto_remove=True)
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    checked = snapshot(engine, storage, check=True, volume_labels=["purpose"], quiesce="stop")
    assert not checked.failed and checked.changed
    by_volume = {e["name"]: e for e in checked.result["entries"]}
    assert {e["status"] for e in by_volume.values()} == {"would_back_up"}
    assert by_volume[temporary]["containers"][0]["action"] == "paused"
    assert "cache was started with --rm: paused, not stopped" in by_volume[temporary]["warnings"]
    assert not os.path.exists(storage["path"]) or files_below(storage["path"]) == []
    run = snapshot(engine, storage, volume_labels=["purpose"])  # quiesce: none, but the db asks for a stop
    by_volume = {e["name"]: e for e in run.result["entries"]}
    assert by_volume[labelled]["containers"][0]["action"] == "stopped"
    assert by_volume[temporary]["containers"][0]["action"] == "none"
    assert any("may write to the volume while it is archived" in w for w in by_volume[temporary]["warnings"])
    assert {c.name: c.status for c in engine.client.containers.list()} == {"db": "running", "cache": "running"}


def test_exclude_leaves_out_what_it_names(engine, tmp_path):
    volume = new_volume(engine)
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    run = snapshot(engine, storage, volumes=[volume], helper_image=engine.image, exclude=["deep", "*.conf"])
    [entry] = run.result["entries"]
    with tarfile.open(os.path.join(storage["path"], entry["key"])) as archive:
        names = archive.getnames()
    assert "./dir with spaces/file name" in names and "./hard-link" in names
    assert not [n for n in names if n.startswith("./deep") or n.endswith(".conf")]


def test_bad_input_is_named(engine, tmp_path):
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    missing = snapshot(engine, storage, volumes=["no-such-volume"], helper_image=engine.image)
    assert missing.result["entries"][0]["error"] == "volume no-such-volume does not exist"
    unreachable = snapshot(engine, storage, volumes=["x"], docker_host="unix:///nonexistent/docker.sock")
    assert unreachable.failed and unreachable.result["msg"].startswith(
        "cannot reach the Docker engine at unix:///nonexistent/docker.sock")
    nothing = snapshot(engine, storage, volume_labels=["no-such-label=1"])
    assert nothing.failed and nothing.result["msg"] == "no volume carries the labels no-such-label=1"
    image = snapshot(engine, storage, volumes=[new_volume(engine, populate=None)], helper_image="no-such:image")
    assert image.failed and image.result["msg"].startswith("helper_image no-such:image does not exist on the Docker engine")
    orphan = snapshot(engine, storage, volumes=[new_volume(engine, populate=None)])
    assert "set helper_image to a local image" in orphan.result["entries"][0]["error"]
    none = snapshot(engine, storage)
    assert none.failed and none.result["msg"] == "name at least one of volumes, volume_labels or containers"
