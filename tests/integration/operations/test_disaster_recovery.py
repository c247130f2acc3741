# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The disaster recovery section of docs/operations.md, run as written.

Every ``sh`` block between its markers runs, in the document's order, in one bash session (as a person
types them in one terminal), with nothing but the variables its table names: the collection's tarball
(``ansible-galaxy collection build``), an inventory repository (a copy of inventories/example whose S3
storage is the session's moto server, committed with git, its vaults as shipped), the vault password and
the store, where files_backup made two sets encrypted to the example's recipient. ``COREBACKUP_VENV`` is
this test's own environment, which has ansible-core: the runbook creates one only where there is none, and
its ``pip install`` of the collection's requirements has nothing to install (``PIP_NO_INDEX``: no download).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid

import boto3
import pytest
import yaml

from ansible_collections.corebackup.backup.tests.testbed.ansible_tasks import Task, run_tasks
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
BIN = os.path.dirname(sys.executable)
EXAMPLE = os.path.join(ROOT, "inventories", "example")
VAULT_PASSWORD = "corebackup-example"  # the example inventory's, inventories/README.md
DAY1, DAY2 = "2026-03-01", "2026-03-02"

pytestmark = pytest.mark.playbook


def dr_blocks() -> list[str]:
    """The sh blocks of the disaster recovery section, in order."""
    with open(os.path.join(ROOT, "docs", "operations.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("<!-- corebackup:dr-begin", 1)[1].split("<!-- corebackup:dr-end -->", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.S | re.M)


def example_vault(path: str, password_file: str) -> dict:
    shown = subprocess.run([os.path.join(BIN, "ansible-vault"), "view", "--vault-password-file", password_file, path],
                           capture_output=True, text=True, check=True)
    return yaml.safe_load(shown.stdout)


def snapshot(root) -> dict:
    """Every entry below ``root``: (mode, content or link target)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            content = os.readlink(path) if stat.S_ISLNK(info.st_mode) else (
                None if stat.S_ISDIR(info.st_mode) else open(path, "rb").read())  # pylint: disable=consider-using-with
            found[os.path.relpath(path, root)] = (stat.S_IMODE(info.st_mode), content)
    return found


def test_the_disaster_recovery_section_restores_a_set_from_the_store_the_inventory_and_the_identity(tmp_path, s3_endpoint):
    blocks = dr_blocks()
    assert len(blocks) == 6, "the six steps of the disaster recovery section, found %d sh blocks" % len(blocks)
    password_file = tmp_path / "vault-pass"
    password_file.write_text(VAULT_PASSWORD + "\n")
    password_file.chmod(0o600)
    secrets = dict(example_vault(os.path.join(EXAMPLE, "group_vars", "all", "vault.yml"), str(password_file)),
                   **example_vault(os.path.join(EXAMPLE, "group_vars", "restore_hosts", "vault.yml"), str(password_file)))
    [recipient] = secrets["vault_age_recipients"]

    # The inventory repository: inventories/example, its offsite storage on the session's moto server and its
    # host-config job backing up a folder of this test. The vaults are those of the example.
    bucket = "corebackup-dr-" + uuid.uuid4().hex[:8]
    repo = tmp_path / "inventory-repo"
    shutil.copytree(EXAMPLE, str(repo / "inventories" / "example"))
    settings_path = repo / "inventories" / "example" / "group_vars" / "all" / "main.yml"
    settings = yaml.safe_load(settings_path.read_text())
    settings["backup_storages"]["local"]["path"] = str(tmp_path / "lost-with-the-backup-host")
    settings["backup_storages"]["offsite"].update(bucket=bucket, region="us-east-1", endpoint_url=s3_endpoint)
    source = tmp_path / "etc" / "app"
    [job] = [j for j in settings["backup_jobs"] if j["name"] == "host-config"]
    job["options"]["paths"] = [str(source)]
    settings_path.write_text(yaml.safe_dump(settings, sort_keys=False))
    for argv in (["init", "--quiet"], ["add", "-A"], ["-c", "user.name=ops", "-c", "user.email=ops@example.com",
                                                      "commit", "--quiet", "-m", "backup inventory"]):
        subprocess.run(["git"] + argv, cwd=str(repo), check=True)

    # The store: two sets of host-config, made by files_backup as the lost backup host made them.
    source.mkdir(parents=True)
    (source / "app.conf").write_text("listen 8080\n")
    (source / "tls").mkdir()
    (source / "tls" / "server.key").write_text("not really a key\n")
    (source / "tls" / "server.key").chmod(0o600)
    (source / "current").symlink_to("app.conf")
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id=S3_TEST_CREDENTIALS["access_key"],
                 aws_secret_access_key=S3_TEST_CREDENTIALS["secret_key"]).create_bucket(Bucket=bucket)
    storage = dict(settings["backup_storages"]["offsite"], access_key=S3_TEST_CREDENTIALS["access_key"],
                   secret_key=S3_TEST_CREDENTIALS["secret_key"])
    backup = {"job": "host-config", "paths": [str(source)], "storage": storage, "encryption": {"recipients": [recipient]}}
    wanted = snapshot(source)
    (first, _changed, second), _run = run_tasks(COLLECTIONS, [
        Task("files_backup", backup, {"COREBACKUP_NOW": DAY1 + "T02:00:00Z"}),
        Task("ansible.builtin.copy", {"content": "listen 9090, broken\n", "dest": str(source / "app.conf")}),
        Task("files_backup", backup, {"COREBACKUP_NOW": DAY2 + "T02:00:00Z"})])
    assert first["set_status"] == "success" and second["set_status"] == "success", (first, second)

    # The collection as users get it.
    dist = tmp_path / "dist"
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(dist), ROOT],
                   capture_output=True, check=True)
    [tarball] = dist.iterdir()

    # A new machine: nothing of the test's Ansible settings, no PYTHONPATH to the source tree.
    dr = tmp_path / "dr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    env.update(HOME=str(tmp_path / "home"), DR=str(dr), COREBACKUP_TARBALL=str(tarball), COREBACKUP_VENV=sys.prefix,
               INVENTORY_REPO=str(repo), INVENTORY="inventories/example", VAULT_PASSWORD_FILE=str(password_file),
               STORE="offsite", JOB="host-config", SET_DATE=DAY1, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    script = tmp_path / "dr.sh"
    script.write_text("set -euxo pipefail\n" + "\n".join(blocks))
    run = subprocess.run(["bash", str(script)], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=900,
                         check=False)
    transcript = run.stdout + run.stderr
    assert run.returncode == 0, transcript[-6000:]

    # What the set held is back, as it was on DAY1: contents, modes, links.
    assert snapshot(dr / "restored" / "app") == wanted
    # The collection ran from the tarball's installation; the identity is the example's, readable by its owner alone.
    assert (dr / "collections" / "ansible_collections" / "corebackup" / "backup" / "MANIFEST.json").is_file()
    assert stat.S_IMODE(os.stat(str(dr / "age-identity.txt")).st_mode) == 0o400
    assert recipient in run.stdout.splitlines()
    # The listing showed both sets; the drill of the set passed and is recorded: a drill record of its own.
    assert DAY1 in run.stdout and DAY2 in run.stdout
    assert '"result": "ok"' in run.stdout
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    [drill] = client.list_objects_v2(Bucket=bucket, Prefix="backups/host-config/%s/drills/" % DAY1)["Contents"]
    assert drill["Key"].endswith(".ok.json")
    assert json.loads(client.get_object(Bucket=bucket, Key=drill["Key"])["Body"].read())["result"] == "ok"
    # No secret on the screen.
    for name in ("vault_age_identity", "vault_s3_secret_key", "vault_s3_access_key"):
        assert secrets[name].strip() not in transcript, name
