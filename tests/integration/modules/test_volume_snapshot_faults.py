# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""volume_snapshot with a failure injected at one point per test, while a container is stopped or paused.

Each point is a real run of the module (through ansible-playbook) against the test Docker engine, through
a fault-injecting proxy of the engine's API (``tests/testbed/docker_proxy.py``) and, for S3 storage, of
the S3 endpoint. The calls of a clean run, in order (``quiesce: stop``; ``pause``/``unpause`` instead of
``stop``/``start``)::

    GET /version, GET /_ping                      connect
    GET /containers/json (label=helper)           reconcile: the helpers a killed run left
    GET /containers/json (running)                discovery, and GET /containers/<id>/json for each
    GET /containers/<name>/json                   the container named in ``containers``
    GET /volumes/<volume>
    POST /containers/create, GET .../json         the helper (never started: no start, attach or wait)
    POST /containers/<app>/stop                   after the journal is in the store
    GET /containers/<helper>/archive              streamed into the store
    GET /containers/<app>/json, POST .../start    put back
    DELETE /containers/<helper>

After every point, whatever the fault: each container that mounts the volume is as it was (the same id,
running, paused or exited as before, the same restart count; only the one the module stopped has a new
start time), no helper container is left, and either the fault was absorbed (retried) and the volume
is backed up, or the run failed with an error naming what failed, its entry claims nothing, and no
artifact is under a final name. Where the module could not put a container back, or was SIGKILLed, the
next, normal run puts it back and succeeds.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
import typing as t
import uuid

import pytest

from ansible_collections.corebackup.backup.tests.conftest import files_below, make_s3_backend
from ansible_collections.corebackup.backup.tests.testbed import docker_proxy as dp
from ansible_collections.corebackup.backup.tests.testbed import s3_proxy as sp
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import RunningModule
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
RETRIES = {"attempts": 2, "delay": 0.1, "max_delay": 0.2}
JOB = "volumes"
APP = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]  # shuts down on SIGTERM, as a well-behaved one does
HELPER = "corebackup.helper=" + JOB
KIB = 1024
NOW = "2026-06-15T02:00:00Z"


@pytest.fixture(scope="module")
def volumes(docker_engine):
    """A small volume (files and 2 MB of noise) and a big one (18 MB of noise: three S3 parts), shared by the points;
    the containers of each point only read them."""
    names = {}
    for size, megabytes in (("small", 2), ("big", 18)):
        name = "faults-%s-%s" % (size, uuid.uuid4().hex[:6])
        docker_engine.client.volumes.create(name)
        script = ("mkdir -p /v/etc /v/empty && echo 'port = 8080' > /v/etc/app.conf && ln -s etc/app.conf /v/link && "
                  "dd if=/dev/urandom of=/v/noise bs=1M count=%d 2>/dev/null" % megabytes)
        docker_engine.client.containers.run(docker_engine.image, ["sh", "-c", script], network_mode="none", remove=True,
                                            volumes={name: {"bind": "/v", "mode": "rw"}})
        names[size] = name
    yield names
    for name in names.values():
        for container in docker_engine.client.containers.list(all=True, filters={"volume": name}):
            container.remove(force=True)
        docker_engine.client.volumes.get(name).remove(force=True)


def pending_journal(keys: list[str]) -> list[str]:
    """Of quiesce journal keys, the records of a pause or stop without the record that the container is back."""
    return [k for k in keys if not k.endswith(".back.json") and k[:-len(".json")].rsplit(".", 1)[0] + ".back.json" not in keys]


class Case:
    """One point's world: its containers (app, running, quiesced by the module; idle, exited; frozen, paused by its
    user), its store, the proxies, and what a run of the module there looks like."""

    def __init__(self, point: "Point", engine, proxy: dp.DockerProxy, volumes: dict, tmp_path, request):
        self.point, self.engine, self.proxy, self.tmp_path = point, engine, proxy, tmp_path
        self.client = engine.client
        token = uuid.uuid4().hex[:8]
        self.names = {role: "%s-%s" % (role, token) for role in ("app", "idle", "frozen")}
        self.volume = volumes["big" if point.big else "small"]
        if point.mount == "scratch":  # a volume of its own, which the point damages
            self.volume = "scratch-" + token
            self.client.volumes.create(self.volume)
            self.client.containers.run(engine.image, ["sh", "-c", "dd if=/dev/urandom of=/v/noise bs=1M count=2"],
                                       network_mode="none", remove=True, volumes={self.volume: {"bind": "/v", "mode": "rw"}})
        if point.mount == "bind":
            self.source = str(tmp_path / "bind")
            os.makedirs(self.source)
            with open(os.path.join(self.source, "data"), "w", encoding="utf-8") as handle:
                handle.write("data\n")
            self.item = self.source
        else:
            self.source = self.item = self.volume
        mounts = {self.source: {"bind": "/data", "mode": "rw"}}
        self.client.containers.run(engine.image, ["true"], name=self.names["idle"], detach=True, network_mode="none",
                                   volumes=mounts).wait()
        frozen = self.client.containers.run(engine.image, APP, name=self.names["frozen"], detach=True,
                                            network_mode="none", volumes=mounts)
        frozen.pause()
        self.app = self.client.containers.run(engine.image, APP, name=self.names["app"], detach=True,
                                              network_mode="none", volumes=mounts,
                                              restart_policy={"Name": "unless-stopped"})
        self.s3_proxy = None
        if point.storage == "s3":
            self.s3_proxy = request.getfixturevalue("s3_proxy")
            self.backend = make_s3_backend(self.s3_proxy.url, prefix="vol/")
            self.storage = dict(type="s3", bucket=self.backend.bucket, prefix="vol/", endpoint_url=self.s3_proxy.url,
                                **S3_TEST_CREDENTIALS)
        else:
            self.store = str(tmp_path / "store")
            os.makedirs(self.store)
            self.storage = {"type": "filesystem", "path": self.store}
        self.fields = {"app": self.app.id, "name": self.names["app"], "volume": re.escape(self.item),
                       "others": "(?!%s)" % "|".join(self.client.api.inspect_container(n)["Id"] for n in self.names.values())}

    # -- what is observed -------------------------------------------------------------------
    def states(self) -> dict:
        """Each container as ``docker inspect`` shows it; the app's start time only when the module must not restart it."""
        found = {}
        for role, name in self.names.items():
            attrs = self.client.api.inspect_container(name)
            state = attrs["State"]
            found[role] = {"id": attrs["Id"], "status": state["Status"], "running": state["Running"],
                           "paused": state["Paused"], "restarts": attrs["RestartCount"],
                           "started": None if role == "app" and self.point.quiesce == "stop" else state["StartedAt"]}
        return found

    def status(self, role: str = "app") -> str:
        return self.client.api.inspect_container(self.names[role])["State"]["Status"]

    def keys(self) -> list[str]:
        """Every key in the store; hidden ones (temporary and metadata files, the job's lease) left out."""
        if self.point.storage == "s3":
            keys = sorted(obj.key for obj in self.backend.list(""))
        else:
            keys = files_below(self.store)
        return [k for k in keys if not os.path.basename(k).startswith(".")]

    def artifacts(self) -> list[str]:
        """What is under a final name: artifacts and their checksum records (not the quiesce journal, nor the set's
        records of the run: a failed run is recorded as failed in its set)."""
        return [k for k in self.keys() if not k.startswith((JOB + "/quiesce/", JOB + "/leases/", JOB + "/.probes/"))
                and "/runs/" not in k and k.rsplit("/", 1)[-1] not in ("manifest.json", "SHA256SUMS")]

    def journal(self) -> list[str]:
        """The journal's records of containers not (yet) put back: no ``.back`` record beside them."""
        return pending_journal([k for k in self.keys() if k.startswith(JOB + "/quiesce/")])

    def helpers(self) -> list[str]:
        return [c.name for c in self.client.containers.list(all=True, filters={"label": HELPER})]

    def error(self, pattern: str) -> str:
        return pattern.format(**self.fields)

    # -- runs -------------------------------------------------------------------------------
    def start(self, **options) -> RunningModule:
        args = dict({"docker_host": self.proxy.url, "storage": self.storage, "retries": RETRIES, "job": JOB,
                     "containers": [self.names["app"]], "quiesce": self.point.quiesce, "stop_timeout": 5},
                    **self.point.options, **options)
        return RunningModule(COLLECTIONS, "volume_snapshot", args, env=self.point.env)

    def wait_for(self, condition: t.Callable[[], t.Any], what: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "timed out waiting for " + what
            time.sleep(0.05)

    def close(self) -> None:
        if self.point.storage == "filesystem":
            subprocess.run(["chattr", "-R", "-i", self.store], check=False, capture_output=True)
        for name in list(self.names.values()) + self.helpers():
            try:
                self.client.api.remove_container(name, force=True)
            except Exception:  # pylint: disable=broad-exception-caught
                pass
        if self.point.mount == "scratch":
            self.client.volumes.get(self.volume).remove(force=True)


# -- how a point injects its fault --------------------------------------------------------------

def docker(method: str, path: str, action: str = "status", **kwargs) -> t.Callable[[Case], list]:
    """A rule of the Docker proxy; ``path`` may name {app} (its id), {name} and {others} (not one of the case's)."""
    def arm(case: Case) -> list:
        return [case.proxy.add(dp.Rule(method, path.format(**case.fields), action, **kwargs))]
    return arm


def s3(*rules: sp.Rule) -> t.Callable[[Case], list]:
    def arm(case: Case) -> list:
        return [case.s3_proxy.add(dataclasses.replace(rule)) for rule in rules]
    return arm


def immutable(folder: str) -> None:
    """A folder that refuses new entries, to root too (the tests run as root, for the engine)."""
    done = subprocess.run(["chattr", "+i", folder], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("chattr +i is not possible here: %s" % done.stderr.strip())


def read_only_objects(case: Case) -> list:
    """The job's objects folder refuses new entries; the journal goes elsewhere."""
    folder = os.path.join(case.store, JOB, "objects")
    os.makedirs(folder)
    immutable(folder)
    return []


def unreadable_bind_source(case: Case) -> list:
    """The bind mount's folder is gone from the host: the engine cannot mount it for reading."""
    subprocess.run(["rm", "-rf", case.source], check=True)
    return []


STOP, START = r"^/containers/{app}/stop$", r"^/containers/{app}/start$"
PAUSE, UNPAUSE = r"^/containers/{app}/pause$", r"^/containers/{app}/unpause$"
ARCHIVE = r"^/containers/[0-9a-f]{{64}}/archive$"
STALL = dict(action="stall", after_bytes=256 * KIB, seconds=60)
STALL_BEYOND_TIMEOUT = dict(action="stall", after_bytes=256 * KIB, seconds=5)


# -- what happens while a run is under way ------------------------------------------------------

def make_read_only_mid_run(case: Case, rules: list, running: RunningModule) -> None:
    """Half-way through the archive, the folder of today's set stops taking new names."""
    assert rules[0].hit.wait(60)
    partial = []
    case.wait_for(lambda: partial.extend(k for k in files_below(case.store) if k.endswith(".partial")) or partial,
                  "the artifact's temporary file")
    try:
        immutable(os.path.dirname(os.path.join(case.store, partial[0])))
    finally:
        rules[0].release()


def truncate_mid_archive(case: Case, rules: list, running: RunningModule) -> None:
    """Half-way through the archive, the file being read shrinks under the engine: it cannot read what it announced.
    (The helper is never started, so there is no process to kill; the engine will not remove it while it is read.)"""
    assert rules[0].hit.wait(60)
    os.truncate(os.path.join(case.client.volumes.get(case.volume).attrs["Mountpoint"], "noise"), 0)
    rules[0].release()


def kill_at_hit(expected: str) -> t.Callable[[Case, list, RunningModule], None]:
    """SIGKILL the run once the proxy's rule acted, with the app ``expected`` (exited, paused, running) then."""
    def during(case: Case, rules: list, running: RunningModule) -> None:
        assert rules[0].hit.wait(60), "the run never got there"
        assert case.status() == expected
        running.kill()
    return during


def kill_mid_upload(case: Case, rules: list, running: RunningModule) -> None:
    case.wait_for(lambda: case.s3_proxy.count("CreateMultipartUpload"), "the upload to start")
    time.sleep(0.3)
    assert case.status() == "paused"
    running.kill()


@dataclasses.dataclass(frozen=True)
class Point:
    id: str
    quiesce: str  # stop or pause
    arm: t.Callable[[Case], list]
    outcome: str  # failed, backed_up (the fault was absorbed), left (put back by the next run), killed
    error: str = ""  # a regular expression the run's message matches; {name}, {volume} are the case's
    storage: str = "filesystem"
    big: bool = False
    mount: str = "volume"
    options: dict = dataclasses.field(default_factory=dict)
    env: dict | None = None
    during: t.Callable[[Case, list, RunningModule], None] | None = None


LEFT = r"container {name} \([0-9a-f]{{12}}\) was running and is left %s: could not %s it in 5 attempts"
POINTS = [
    # Docker API errors, at each call of the sequence
    Point("api-list-running-500", "stop", docker("GET", r"^/containers/json$", nth=2), "failed",
          r"^cannot list the running containers on the Docker engine at unix://\S+: 500 Server Error"),
    Point("api-inspect-container-500", "pause", docker("GET", r"^/containers/{name}/json$"), "failed",
          r"^cannot inspect the container {name} on the Docker engine .*: 500 Server Error"),
    Point("api-create-helper-500", "stop", docker("POST", r"^/containers/create$"), "failed",
          r"{volume}: cannot create the helper container that mounts {volume}: 500 Server Error"),
    Point("api-inspect-helper-500", "pause", docker("GET", r"^/containers/{others}[0-9a-f]{{64}}/json$"), "failed",
          r"{volume}: cannot create the helper container that mounts {volume}: 500 Server Error"),
    Point("api-stop-500", "stop", docker("POST", STOP), "failed", r"{volume}: cannot stop container {name}: 500 Server"),
    Point("api-pause-500", "pause", docker("POST", PAUSE), "failed", r"{volume}: cannot pause container {name}: 500 Server"),
    Point("api-stop-answer-lost", "stop", docker("POST", STOP, "drop", forward=True), "failed",
          r"{volume}: cannot stop container {name}: \('Connection aborted"),
    Point("api-archive-500", "stop", docker("GET", ARCHIVE), "failed",
          r"{volume}: cannot read {volume} through the archive API: 500 Server Error"),
    Point("api-put-back-inspect-500", "pause", docker("GET", r"^/containers/{app}/json$", nth=2), "backed_up"),
    Point("api-start-500", "stop", docker("POST", START), "backed_up"),
    Point("api-unpause-500-twice", "pause", docker("POST", UNPAUSE, count=2), "backed_up"),
    Point("api-remove-helper-500-twice", "stop", docker("DELETE", r"^/containers/{others}[0-9a-f]{{64}}$", count=2),
          "backed_up"),
    Point("api-start-500-always", "stop", docker("POST", START, count=-1), "left", LEFT % ("stopped", "start")),
    Point("api-unpause-500-always", "pause", docker("POST", UNPAUSE, count=-1), "left", LEFT % ("paused", "unpause")),
    # Time-outs (timeout: 2): the engine acted but answers late, or an archive stops half-way
    Point("timeout-pause", "pause", docker("POST", PAUSE, "delay", seconds=5), "failed",
          r"{volume}: cannot pause container {name}: .*Read timed out", options={"timeout": 2}),
    Point("timeout-start", "stop", docker("POST", START, "delay", seconds=5), "backed_up", options={"timeout": 2}),
    Point("timeout-archive-stalls", "pause", docker("GET", ARCHIVE, **STALL_BEYOND_TIMEOUT), "failed",
          r"{volume}: the archive stream of {volume} broke off: .*timed out", options={"timeout": 2}),
    # Producer errors
    Point("producer-archive-stream-cut", "stop", docker("GET", ARCHIVE, "cut", after_bytes=512 * KIB), "failed",
          r"{volume}: the archive stream of {volume} broke off"),
    Point("producer-file-shrinks-mid-archive", "pause", docker("GET", ARCHIVE, **STALL), "failed",
          r"{volume}: the archive of {volume} ends half-way", mount="scratch", during=truncate_mid_archive),
    Point("producer-bind-source-unreadable", "stop", unreadable_bind_source, "failed",
          r"{volume}: cannot create the helper container that mounts {volume}: .*bind source path does not exist",
          mount="bind"),
    # Storage errors
    Point("s3-first-part", "pause", s3(sp.Rule("UploadPart", "status", count=-1)), "failed",
          r"{volume}: cannot write s3://\S+: .*InternalError.* UploadPart ", storage="s3", big=True),
    Point("s3-mid-upload", "stop", s3(sp.Rule("UploadPart", "delay", count=1), sp.Rule("UploadPart", "status", count=-1)),
          "failed", r"{volume}: cannot write s3://\S+: .*InternalError.* UploadPart ", storage="s3", big=True),
    Point("s3-completion", "pause", s3(sp.Rule("CompleteMultipartUpload", "status", count=-1)), "failed",
          r"{volume}: cannot write s3://\S+: .*InternalError.* CompleteMultipartUpload ", storage="s3", big=True),
    Point("s3-journal-write", "stop", s3(sp.Rule("PutObject", "status", count=-1, key_regex="/quiesce/")), "failed",
          r"{volume}: cannot write the quiesce journal of container {name}, so it was not stopped: .*InternalError",
          storage="s3"),
    Point("fs-read-only-mid-run", "stop", docker("GET", ARCHIVE, **STALL), "failed", r"{volume}: .*Operation not permitted",
          during=make_read_only_mid_run),
    Point("fs-write-refused", "pause", read_only_objects, "failed",
          r"cannot write \S+/store/volumes/objects/\S+: \[Errno 1\] Operation not permitted",
          env={"COREBACKUP_NOW": NOW}),
    # SIGKILL of the module, then the next run
    Point("kill-while-stopped-mid-archive", "stop", docker("GET", ARCHIVE, **STALL), "killed",
          during=kill_at_hit("exited")),
    Point("kill-while-paused-mid-upload", "pause", s3(sp.Rule("UploadPart", "delay", seconds=5, count=-1)), "killed",
          storage="s3", big=True, during=kill_mid_upload),
    Point("kill-after-the-engine-stopped", "stop", docker("POST", STOP, "delay", seconds=60), "killed",
          during=kill_at_hit("exited")),
    Point("kill-while-unpausing", "pause", docker("POST", UNPAUSE, "delay", seconds=60), "killed",
          during=kill_at_hit("running")),
]


def test_there_are_at_least_20_injection_points():
    assert len({point.id for point in POINTS}) == len(POINTS) >= 20


@pytest.mark.parametrize("point", POINTS, ids=["%02d-%s" % (n, p.id) for n, p in enumerate(POINTS, 1)])
def test_the_container_is_back_whatever_fails(point, docker_engine, docker_proxy, volumes, tmp_path, request):
    case = Case(point, docker_engine, docker_proxy, volumes, tmp_path, request)
    try:
        before = case.states()
        assert [s["status"] for s in before.values()] == ["running", "exited", "paused"]
        rules = point.arm(case)
        running = case.start()
        if point.during is not None:
            point.during(case, rules, running)
        if point.outcome == "killed":
            case.proxy.clear()  # a stalled archive holds the helper's lock in the engine, which listing it waits for
            assert len(case.journal()) == 1 and len(case.helpers()) == 1  # what the killed run left
            check_next_run_puts_back(case, before)
            return
        run = running.wait(timeout=180)
        for rule in rules:  # the fault did happen
            assert injected(case, rule), rule
        check(case, point, run, before)
    finally:
        case.close()


def injected(case: Case, rule) -> bool:
    if isinstance(rule, dp.Rule):
        return rule.hits > 0
    return any(entry.operation == rule.operation and (rule.action != "status" or entry.status == rule.status)
               for entry in case.s3_proxy.log)


def check(case: Case, point: Point, run, before: dict) -> None:
    result = run.result
    entries = result.get("entries") or []
    if point.outcome == "backed_up":
        assert not run.failed, result.get("msg")
        assert [(e["name"], e["status"]) for e in entries] == [(case.item, "backed_up")]
        assert len([k for k in case.artifacts() if k.endswith(".tar.gz")]) == 1
        assert case.states() == before
        assert case.journal() == [] and case.helpers() == []
        return
    assert run.failed
    assert re.search(case.error(point.error), result["msg"]), result["msg"]
    assert all(e["status"] == "failed" and e["key"] is None and e["sha256"] is None for e in entries), entries
    assert result.get("artifacts", []) == []
    assert case.artifacts() == []  # nothing under a final name: no artifact, no checksum record
    assert case.helpers() == []
    if point.outcome == "failed":
        assert case.states() == before
        assert case.journal() == []
        if case.s3_proxy is not None:
            assert case.backend.client.list_multipart_uploads(Bucket=case.backend.bucket).get("Uploads", []) == []
        return
    # left: loudly, and for the next run to put back
    assert point.outcome == "left"
    assert case.status() == {"stop": "exited", "pause": "paused"}[point.quiesce]
    assert any(re.search(case.error(point.error), w) for w in result.get("warnings", [])), result.get("warnings")
    assert len(case.journal()) == 1
    check_next_run_puts_back(case, before)


def check_next_run_puts_back(case: Case, before: dict) -> None:
    """A normal run after the failed or killed one: it puts the app back first, then backs the volume up."""
    case.proxy.clear()  # also ends what a killed run left stalled
    if case.s3_proxy is not None:
        case.s3_proxy.clear()
    run = case.start().wait(timeout=180)
    assert not run.failed, run.result.get("msg")
    assert [(r["name"], r["action"]) for r in run.result["reconciled"]] == [
        (case.names["app"], {"stop": "stopped", "pause": "paused"}[case.point.quiesce])]
    assert [(e["name"], e["status"]) for e in run.result["entries"]] == [(case.item, "backed_up")]
    assert case.states() == before
    assert case.journal() == [] and case.helpers() == []
