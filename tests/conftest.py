# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures shared by the unit and integration tests: real services on 127.0.0.1 and backends on them."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
import typing as t
import uuid

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._retry import RetryPolicy
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.plugins.module_utils._storage_s3 import S3Backend
from ansible_collections.corebackup.backup.tests.testbed.docker_proxy import DockerProxy
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn
from ansible_collections.corebackup.backup.tests.testbed.s3_proxy import S3Proxy
from ansible_collections.corebackup.backup.tests.testbed.services import (
    S3_TEST_CREDENTIALS,
    PostgresServer,
    build_busybox_image,
    dockerd,
    moto_s3,
    postgres,
    secantus,
)


def files_below(root) -> list[str]:
    """Every file below ``root`` (temporary files included), as paths relative to it."""
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _dirs, files in os.walk(root) for f in files)


@pytest.fixture(scope="session")
def service_log_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("service-logs"))


@pytest.fixture(scope="session")
def s3_endpoint(service_log_dir):
    """URL of a moto S3 server started for this test session."""
    with moto_s3(service_log_dir) as service:
        yield "http://127.0.0.1:%d" % service.port


@pytest.fixture
def s3_proxy(s3_endpoint):
    """A fault-injecting proxy in front of the session's S3 endpoint; it logs every S3 operation."""
    with S3Proxy(int(s3_endpoint.rsplit(":", 1)[1])) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def github_standin(tmp_path_factory):
    """The GitHub stand-in of this test session; each test module builds its own organization in it."""
    with GitHubStandIn(str(tmp_path_factory.mktemp("github"))) as standin:
        yield standin


def make_s3_backend(endpoint: str, bucket: str | None = None, prefix: str = "backups/", **kwargs) -> S3Backend:
    bucket = bucket or "corebackup-" + uuid.uuid4().hex[:12]
    backend = S3Backend(bucket=bucket, prefix=prefix, endpoint_url=endpoint,
                        retry=RetryPolicy(attempts=3, delay=0.05, max_delay=0.2), **S3_TEST_CREDENTIALS, **kwargs)
    backend.client.create_bucket(Bucket=bucket)
    return backend


@pytest.fixture
def s3_backend(s3_endpoint):
    return make_s3_backend(s3_endpoint)


@pytest.fixture
def fs_backend(tmp_path):
    return FilesystemBackend(str(tmp_path / "store"))


@pytest.fixture(params=["filesystem", "s3"])
def backend(request, tmp_path):
    """Each test using this runs once per storage backend."""
    if request.param == "filesystem":
        return FilesystemBackend(str(tmp_path / "store"))
    return make_s3_backend(request.getfixturevalue("s3_endpoint"))


@pytest.fixture(scope="session")
def age_identity(tmp_path_factory):
    """A fresh age key pair: (identity file path, public recipient)."""
    path = str(tmp_path_factory.mktemp("age") / "identity.txt")
    result = subprocess.run(["age-keygen", "-o", path], check=True, capture_output=True, text=True)
    recipient = result.stderr.strip().split()[-1]
    os.chmod(path, 0o600)
    return path, recipient


@dataclasses.dataclass
class DockerEngine:
    url: str  # the docker_host of the modules
    client: t.Any  # docker.DockerClient
    image: str  # a tiny local image with busybox


@pytest.fixture(scope="session")
def docker_engine(service_log_dir):
    """A Docker engine of this test session (dockerd from Debian's docker.io), stopped at the end."""
    import docker  # pylint: disable=import-outside-toplevel
    root = tempfile.mkdtemp(prefix="cbdocker-", dir="/tmp")  # a short path: unix sockets have a length limit
    try:
        with dockerd(root, service_log_dir) as engine:
            client = docker.DockerClient(base_url="unix://" + engine.socket, version="auto")
            try:
                yield DockerEngine("unix://" + engine.socket, client, build_busybox_image(client))
            finally:
                for container in client.containers.list(all=True):
                    container.remove(force=True)
                client.volumes.prune()
                client.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def docker_proxy(docker_engine):
    """A fault-injecting proxy on a unix socket in front of the session's Docker engine; it logs every API call."""
    directory = tempfile.mkdtemp(prefix="cbdproxy-", dir="/tmp")  # a short path: unix sockets have a length limit
    try:
        with DockerProxy(docker_engine.url, os.path.join(directory, "docker.sock")) as proxy:
            yield proxy
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def mongo_server(service_log_dir):
    """A MongoDB-compatible server of this test session (SecantusDB): its URI."""
    import pymongo  # pylint: disable=import-outside-toplevel
    python = os.environ.get("SECANTUS_PYTHON") or os.path.join(os.getcwd(), ".venv-secantus", "bin", "python")
    with secantus(python, service_log_dir) as server:
        uri = "mongodb://127.0.0.1:%d/?directConnection=true" % server.port
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=60000)
        client.admin.command("ping")
        client.close()
        yield uri


@pytest.fixture(scope="session")
def postgres_server(service_log_dir) -> t.Iterator[PostgresServer]:
    """A PostgreSQL 15 server of this test session on 127.0.0.1 (a cluster of its own, removed at the end): its
    address, superuser password and client programs, with helpers (sql, create_role, create_database, ...).
    Each test makes its own roles and databases, with names of its own."""
    with postgres(service_log_dir) as service:
        yield service.server


# Markers, set from what a test uses, so that a subset can be chosen with -m (README, "Running the tests"):
# the service each real-service fixture starts, "services" for any of them, "playbook" for tests that run
# ansible-playbook on the collection, and "unit" for the pure tier (tests/unit/).
SERVICE_MARKERS = {"s3_endpoint": "s3", "docker_engine": "docker", "mongo_server": "mongodb", "github_standin": "github",
                   "postgres_server": "postgres"}


def pytest_configure(config):
    for name, what in (("s3", "S3 through moto"), ("docker", "a Docker engine"), ("mongodb", "SecantusDB"),
                       ("postgres", "a PostgreSQL server"), ("github", "the GitHub stand-in"),
                       ("services", "any real service"),
                       ("playbook", "ansible-playbook on the collection"), ("unit", "pure logic, no service")):
        config.addinivalue_line("markers", "%s: tests that need %s" % (name, what))


def pytest_collection_modifyitems(items):
    for item in items:
        used = [SERVICE_MARKERS[name] for name in getattr(item, "fixturenames", ()) if name in SERVICE_MARKERS]
        for marker in used + (["services"] if used else []):
            item.add_marker(marker)
        path = str(getattr(item, "path", ""))
        if os.sep + os.path.join("tests", "unit") + os.sep in path:
            item.add_marker("unit")
        elif "run_module" in getattr(getattr(item, "module", None), "__dict__", {}) or "run_playbook" in getattr(
                getattr(item, "module", None), "__dict__", {}):
            item.add_marker("playbook")
