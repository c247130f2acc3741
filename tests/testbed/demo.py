# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""`make demo`: the real backup job (playbooks/demo.yml through ansible-playbook) against local stand-ins.

Starts the GitHub stand-in (an organization built the same way every time) and a moto S3 server on
127.0.0.1, makes once an age key pair and a sample tree with a live SQLite database under the demo's
folder, runs the playbook, then checks today's sets with ``sha256sum -c`` and prints where they are
and how to restore them. The backups live in ``<demo>/backups`` and are kept; the S3 copy lives in
the moto server and is gone when the demo ends. Nothing the demo writes (its backups, its key) is
inside what it backs up.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys

from ansible_collections.corebackup.backup.plugins.module_utils._storage import backend_from_params
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS, free_port, moto_s3

ORG = "demo-org"


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


def main() -> int:
    source = os.path.abspath(sys.argv[1])
    workdir = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else ".demo")
    collections = os.path.abspath(os.path.join(os.getcwd(), "..", "..", ".."))
    os.makedirs(workdir, exist_ok=True)
    identity = os.path.join(workdir, "age-identity.txt")
    if not os.path.exists(identity):
        subprocess.run(["age-keygen", "-o", identity], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", identity], check=True, capture_output=True, text=True).stdout.strip()
    sample = os.path.join(workdir, "sample")
    sample_tree(sample)
    store = os.path.join(workdir, "backups")
    os.makedirs(store, exist_ok=True)
    github_dir = os.path.join(workdir, "github")
    with GitHubStandIn(github_dir, port=demo_port(workdir)) as github, moto_s3(os.path.join(workdir, "logs")) as s3:
        token = github.add_token(login="demo")
        github_fixtures.build_organization(github, ORG, github_dir, count=20, seed="demo")
        endpoint = "http://127.0.0.1:%d" % s3.port
        s3_storage = dict(type="s3", bucket="demo-backups", prefix="corebackup/", endpoint_url=endpoint,
                          **S3_TEST_CREDENTIALS)
        backend_from_params(s3_storage).client.create_bucket(Bucket="demo-backups")
        variables = {"demo_github_org": ORG, "demo_github_api": github.api_url, "demo_github_token": token,
                     "demo_storage": {"type": "filesystem", "path": store}, "demo_s3_storage": s3_storage,
                     "demo_sample": sample, "demo_recipient": recipient}
        extra = os.path.join(workdir, "vars.json")
        with open(os.open(extra, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
            json.dump(variables, handle)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_LOCALHOST_WARNING="0",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
        play = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                               os.path.join(source, "playbooks", "demo.yml"), "-e", "@" + extra], env=env, check=False)
        os.unlink(extra)
        if play.returncode:
            return play.returncode
    print("\nBackup sets (filesystem store %s):" % store)
    status = 0
    for job in sorted(os.listdir(store)):
        newest = max(d for d in os.listdir(os.path.join(store, job)) if d[:1].isdigit())
        set_dir = os.path.join(store, job, newest)
        check = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=set_dir, capture_output=True, text=True,
                               check=False)
        artifacts = len(open(os.path.join(set_dir, "SHA256SUMS"), encoding="utf-8").read().splitlines())
        print("  %s  %d artifacts, sha256sum -c SHA256SUMS: %s" % (set_dir, artifacts,
                                                                   "OK" if check.returncode == 0 else "FAILED"))
        status |= check.returncode
    print("S3 copy of demo-files: s3://demo-backups/corebackup/ on the demo's moto server, gone now that it stopped.")
    print("\nRestore an artifact with the standard tools (the private key is %s):" % identity)
    print("  cd <set folder> && sha256sum -c SHA256SUMS")
    print("  age -d -i %s <artifact>.tar.gz.age | tar -xz" % identity)
    return status


if __name__ == "__main__":
    sys.exit(main())
