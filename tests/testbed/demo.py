# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""`make demo`: playbooks/backup.yml, verify.yml and report.yml, against inventories/demo and local stand-ins.

Starts on 127.0.0.1 the GitHub stand-in (an organization built the same way every time, on the port of
the last run), an S3 endpoint (moto), a MongoDB-compatible server (SecantusDB) with a sample database,
a PostgreSQL cluster of its own with a sample database (tests/testbed/postgres_data.py) and a role that
backs it up, and a Docker engine with a container and its volume when one can be started (it needs root).
Makes once an age key pair and a sample tree under the demo's folder. The secrets of the inventory are in
its vault (demo password). Prints what was backed up, where, and how to restore it, writes the HTML report
(<demo>/report.html; docs/report.png shows one), and stops everything it started: the filesystem backups
stay in <demo>/backups, the S3, MongoDB and PostgreSQL data go with their servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile

from ansible_collections.corebackup.backup.plugins.module_utils._records import read_set
from ansible_collections.corebackup.backup.plugins.module_utils._sets import list_sets
from ansible_collections.corebackup.backup.plugins.module_utils._storage import backend_from_params
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn
from ansible_collections.corebackup.backup.tests.testbed.postgres_data import fill_sample
from ansible_collections.corebackup.backup.tests.testbed.services import (
    S3_TEST_CREDENTIALS,
    PostgresServer,
    build_busybox_image,
    dockerd,
    free_port,
    moto_s3,
    postgres,
    secantus,
)

ORG = "demo-org"
DEMO_TOKEN = "ghp_demodemodemodemodemodemodemodemodemo1"  # the same as in inventories/demo's vault
# The PostgreSQL role of the job demo-postgres: a superuser (the cluster's globals need one), its password the same
# as in inventories/demo's vault; the sample database shop belongs to another role.
DEMO_PG_USER, DEMO_PG_PASSWORD, DEMO_PG_OWNER = "demo_backup", "demo-postgres-password", "demo_app"


def sample_tree(root: str) -> None:
    """Configuration files and a SQLite database, made once so that later runs find them unchanged."""
    if os.path.isdir(root):
        return
    os.makedirs(os.path.join(root, "config", "conf.d"))
    for name, text in {"app.conf": "port = 8080\nworkers = 4\n", "conf.d/logging.conf": "level = info\n"}.items():
        with open(os.path.join(root, "config", name), "w", encoding="utf-8") as handle:
            handle.write(text)
    database = sqlite3.connect(os.path.join(root, "app.db"))
    database.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    database.executemany("INSERT INTO orders (item) VALUES (?)", [("item %d" % n,) for n in range(100)])
    database.commit()
    database.close()


def demo_port(workdir: str) -> int:
    """The stand-in's port of the earlier runs when it is free: its URLs are in the stored metadata, and
    the same organization at the same address is unchanged, so a rerun stores nothing new."""
    path = os.path.join(workdir, "github-port")
    try:
        with open(path, encoding="utf-8") as handle:
            port = int(handle.read())
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
    except (OSError, ValueError):
        port = free_port()
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(str(port))
    return port


@contextlib.contextmanager
def docker_engine(workdir: str):
    """A Docker engine with a running container 'demo-app' and its volume, or None where none can start."""
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        yield None
        return
    import docker  # pylint: disable=import-outside-toplevel
    root = tempfile.mkdtemp(prefix="cbdemo-docker-", dir="/tmp")
    try:
        with dockerd(root, os.path.join(workdir, "logs")) as engine:
            client = docker.DockerClient(base_url="unix://" + engine.socket, version="auto")
            image = build_busybox_image(client)
            client.volumes.create("demo-data")
            client.containers.run(image, ["sh", "-c", "printf 'hello\\n' > /data/greeting"], network_mode="none",
                                  volumes={"demo-data": {"bind": "/data", "mode": "rw"}}, remove=True)
            client.containers.run(image, ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"], name="demo-app",
                                  detach=True, network_mode="none", volumes={"demo-data": {"bind": "/data", "mode": "rw"}})
            try:
                yield "unix://" + engine.socket
            finally:
                for container in client.containers.list(all=True):
                    container.remove(force=True)
                client.volumes.prune()
    except Exception as exc:  # pylint: disable=broad-exception-caught
        print("demo: no Docker engine could be started here (%s): the volume job is left out" % exc)
        yield None
    finally:
        shutil.rmtree(root, ignore_errors=True)


def mongo_sample(uri: str) -> None:
    import pymongo  # pylint: disable=import-outside-toplevel
    client = pymongo.MongoClient(uri)
    client.shop.orders.insert_many([{"n": n, "item": "item %d" % n} for n in range(1000)])
    client.shop.orders.create_index("n", unique=True)
    client.close()


def postgres_sample(server: PostgresServer) -> None:
    server.create_role(DEMO_PG_USER, DEMO_PG_PASSWORD, "LOGIN", "SUPERUSER")
    server.create_role(DEMO_PG_OWNER, None, "NOLOGIN")
    server.create_database("shop", DEMO_PG_OWNER)
    fill_sample(server, "shop", DEMO_PG_OWNER)


def playbook(source: str, collections: str, name: str, extra: str) -> int:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
            os.path.join(source, "inventories", "demo"), os.path.join(source, "playbooks", name),
            "--vault-password-file", os.path.join(source, "inventories", "demo", "vault-password.txt"), "-e", "@" + extra]
    return subprocess.run(argv, env=env, check=False).returncode


def table(stores: dict) -> None:
    print("\n%-14s %-8s %-12s %9s %12s  %s" % ("job", "storage", "set", "artifacts", "bytes", "where"))
    for label, (storage, where) in stores.items():
        backend = backend_from_params(storage)
        jobs = sorted({key.split("/")[0] for key in (obj.key for obj in backend.list("")) if "/" in key})
        for job in jobs:
            sets = list_sets(backend, job)[0]  # the Catalog keeps no object list: its sets would look empty here
            if not sets:
                continue
            newest = max(sets)
            # What the set's run records list (its artifacts are shared objects under <job>/objects/).
            artifacts = [item["artifact"] for item in read_set(backend, sets[newest]).items().values()]
            print("%-14s %-8s %-12s %9d %12d  %s" % (job, label, newest, len(artifacts), sum(a["size"] for a in artifacts),
                                                     where % (job, newest)))


def main() -> int:
    source = os.path.abspath(sys.argv[1])
    workdir = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else ".demo")
    collections = os.path.abspath(os.path.join(os.getcwd(), "..", "..", ".."))
    os.makedirs(workdir, exist_ok=True)
    identity = os.path.join(workdir, "age-identity.txt")
    if not os.path.exists(identity):
        subprocess.run(["age-keygen", "-o", identity], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", identity], check=True, capture_output=True, text=True).stdout.strip()
    sample_tree(os.path.join(workdir, "sample"))
    os.makedirs(os.path.join(workdir, "backups"), exist_ok=True)
    github_dir = os.path.join(workdir, "github")
    python = os.environ.get("SECANTUS_PYTHON") or os.path.join(source, ".venv-secantus", "bin", "python")
    logs = os.path.join(workdir, "logs")
    with GitHubStandIn(github_dir, port=demo_port(workdir)) as github, moto_s3(logs) as s3, \
            secantus(python, logs) as mongo, postgres(logs) as pg, docker_engine(workdir) as docker_host:
        github.add_token(token=DEMO_TOKEN, login="demo")
        github_fixtures.build_organization(github, ORG, github_dir, count=20, seed="demo")
        s3_endpoint = "http://127.0.0.1:%d" % s3.port
        s3_storage = dict(type="s3", bucket="demo-backups", prefix="corebackup/", endpoint_url=s3_endpoint,
                          **S3_TEST_CREDENTIALS)
        backend_from_params(s3_storage).client.create_bucket(Bucket="demo-backups")
        mongo_uri = "mongodb://127.0.0.1:%d/?directConnection=true" % mongo.port
        mongo_sample(mongo_uri)
        postgres_sample(pg.server)
        variables = {"demo_dir": workdir, "demo_github_api": github.api_url, "demo_s3_endpoint": s3_endpoint,
                     "demo_mongo_uri": mongo_uri, "demo_postgres_host": pg.server.host,
                     "demo_postgres_port": pg.server.port, "demo_postgres_bin_dir": pg.server.bin_dir,
                     "demo_docker_host": docker_host or "", "demo_recipient": recipient,
                     "backup_report_html": os.path.join(workdir, "report.html")}
        extra = os.path.join(workdir, "demo-vars.json")
        with open(extra, "w", encoding="utf-8") as handle:
            json.dump(variables, handle)
        status = (playbook(source, collections, "backup.yml", extra) or playbook(source, collections, "verify.yml", extra)
                  or playbook(source, collections, "report.yml", extra))
        if status == 0:
            table({"local": ({"type": "filesystem", "path": os.path.join(workdir, "backups")},
                             os.path.join(workdir, "backups", "%s", "%s")),
                   "offsite": (s3_storage, "s3://demo-backups/corebackup/%s/%s (in the demo's S3 server)")})
    if status == 0:
        print("\nThe report, one self-contained page: %s" % os.path.join(workdir, "report.html"))
    print("\nThe demo's servers are stopped: the S3, MongoDB and PostgreSQL data are gone, the filesystem backups stay.")
    print("Restore an artifact with the standard tools (the private key is %s):" % identity)
    print("  cd <job folder> && sha256sum -c <date>/SHA256SUMS    (the artifacts are under objects/)")
    print("  age -d -i %s <artifact>.tar.gz.age | tar -xz" % identity)
    print("  age -d -i %s <database>.archive.gz.age | mongorestore --archive --gzip" % identity)
    print("  createdb <new database> && age -d -i %s <database>.dump.age | pg_restore --no-owner -d <new database>"
          % identity)
    return status


if __name__ == "__main__":
    sys.exit(main())
