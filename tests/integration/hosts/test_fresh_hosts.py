# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The operator's path on two fresh Debian hosts reached over SSH: setup.yml converges a backup host and a restore
host from nothing (twice: the second run changes nothing), the backup host's schedule runs as cron would run it
(a set in the store, metrics, exit 1 and a notification on a failed job, exit 2 on a refused configuration), and
the restore host restores and drills what the backup host wrote."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import uuid

import boto3
import pytest
import yaml

from ansible_collections.corebackup.backup.tests.integration.roles.test_backup_role import Receiver
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_playbook
from ansible_collections.corebackup.backup.tests.testbed.fresh_hosts import Host, debian_rootfs, import_image, wheelhouse
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS
from ansible_collections.corebackup.backup.tests.testbed.records import DATE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
BIN = os.path.dirname(sys.executable)
VAULT_PASSWORD = "fresh-hosts-" + uuid.uuid4().hex
# What cron gives a job: no more than this.
CRON_ENV = {"HOME": "/root", "LOGNAME": "root", "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}
pytestmark = pytest.mark.skipif(shutil.which("mmdebstrap") is None or os.geteuid() != 0,
                                reason="needs mmdebstrap and root (for dockerd)")


def role_defaults():
    with open(os.path.join(ROOT, "roles", "backup_host", "defaults", "main.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def vault_file(path, variables, password_file):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(variables))
    subprocess.run([os.path.join(BIN, "ansible-vault"), "encrypt", "--vault-password-file", password_file, str(path)],
                   check=True, capture_output=True)


def write_yaml(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def fleet(docker_engine, s3_endpoint, github_standin, tmp_path_factory):
    """Two fresh hosts, an inventory of them as an operator writes one (shared variables in group_vars/all, secrets
    vaulted), the collection's tarball, a GitHub organization and an S3 bucket."""
    work = tmp_path_factory.mktemp("fleet")
    key = str(work / "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    wheels = wheelhouse(role_defaults()["backup_host_python_packages"])
    apt_cache = os.path.join(os.path.dirname(wheels), "apt-archives")
    os.makedirs(os.path.join(apt_cache, "partial"), exist_ok=True)
    image = import_image(docker_engine.client, debian_rootfs())
    volumes = {wheels: "/wheelhouse", apt_cache: "/var/cache/apt/archives"}
    hosts = {name: Host(docker_engine.client, image, "fresh-" + name, key, volumes) for name in ("backup", "restore")}

    dist = str(work / "dist")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", dist, ROOT],
                   check=True, capture_output=True)
    [tarball] = glob.glob(os.path.join(dist, "corebackup-backup-*.tar.gz"))

    standin = github_standin
    token = standin.add_token(login="fresh-bot")
    repos = github_fixtures.build_many(standin, "freshorg", str(work / "freshorg"), count=2, seed=7)
    bucket = "fresh-" + uuid.uuid4().hex[:10]
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=S3_TEST_CREDENTIALS["access_key"],
                      aws_secret_access_key=S3_TEST_CREDENTIALS["secret_key"], region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    identity = subprocess.run(["age-keygen"], check=True, capture_output=True, text=True)
    recipient = identity.stderr.strip().split()[-1]
    receiver = Receiver()

    password_file = str(work / "vault-password")
    with open(password_file, "w", encoding="utf-8") as handle:
        handle.write(VAULT_PASSWORD + "\n")
    inventory = work / "inventory"
    venv_python = role_defaults()["backup_host_venv"] + "/bin/python"
    write_yaml(inventory / "hosts.yml", {
        "backup_hosts": {"hosts": {"backup1": hosts["backup"].inventory_vars()}},
        "restore_hosts": {"hosts": {"restore1": hosts["restore"].inventory_vars()}}})
    write_yaml(inventory / "group_vars" / "all" / "main.yml", {
        "backup_storages": {"offsite": {
            "type": "s3", "bucket": bucket, "prefix": "backups/", "endpoint_url": s3_endpoint, "region": "us-east-1",
            "access_key": "{{ vault_s3_access_key }}", "secret_key": "{{ vault_s3_secret_key }}"}},
        "backup_module_defaults": {"encryption": {"recipients": ["{{ vault_age_recipient }}"]}},
        "backup_jobs": [
            {"name": "app-files", "service": "files", "storage": "offsite", "retention": {"keep_daily": 7},
             "options": {"paths": ["/srv/app"]}},
            {"name": "code", "service": "github", "storage": "offsite", "retention": {"keep_days": 30},
             "options": {"organization": "freshorg", "token": "{{ vault_github_token }}", "api_url": standin.api_url}},
            {"name": "app-data", "service": "files", "storage": "offsite", "options": {"paths": ["/srv/data"]}}]})
    vault_file(inventory / "group_vars" / "all" / "vault.yml", {
        "vault_s3_access_key": S3_TEST_CREDENTIALS["access_key"], "vault_s3_secret_key": S3_TEST_CREDENTIALS["secret_key"],
        "vault_github_token": token, "vault_age_recipient": recipient}, password_file)
    write_yaml(inventory / "group_vars" / "backup_hosts" / "main.yml", {
        "ansible_python_interpreter": venv_python, "ansible_become": True, "backup_host_schedule": "cron",
        "backup_host_wheelhouse": "/wheelhouse", "backup_metrics_textfile": "/var/lib/corebackup/corebackup.prom",
        "backup_notify_on": "failure", "backup_notify_webhook": receiver.url})
    write_yaml(inventory / "group_vars" / "restore_hosts" / "main.yml", {
        "ansible_python_interpreter": venv_python, "ansible_become": True, "backup_host_wheelhouse": "/wheelhouse",
        "restore_identity_file": "/etc/corebackup/age-identity.txt", "backup_host_identity": "{{ vault_age_identity }}"})
    vault_file(inventory / "group_vars" / "restore_hosts" / "vault.yml", {
        "vault_age_identity": identity.stdout}, password_file)

    hosts["backup"].root("mkdir -p /srv/app/conf /srv/data && echo 'listen 8080' > /srv/app/conf/app.conf"
                         " && head -c 200000 /dev/urandom > /srv/app/blob.bin && echo rows > /srv/data/db.txt")
    try:
        yield dict(hosts=hosts, inventory=str(inventory), password_file=password_file, tarball=tarball, s3=s3,
                   bucket=bucket, repos=repos, receiver=receiver, token=token)
    finally:
        receiver.shutdown()
        for host in hosts.values():
            host.remove()


def play(fleet, name, extra_vars=None, args=()):
    return run_playbook(COLLECTIONS, os.path.join(ROOT, "playbooks", name), fleet["inventory"], extra_vars,
                        args=("--vault-password-file", fleet["password_file"]) + tuple(args), timeout=1500)


def recap(run):
    """{host: {ok, changed, failed, ...}} of a run's PLAY RECAP."""
    found = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", run.stdout, re.M):
        found[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return found


@pytest.fixture(scope="module")
def converged(fleet):
    extra = {"backup_host_collection_tarball": fleet["tarball"], "backup_host_vault_password_src": fleet["password_file"]}
    first = play(fleet, "setup.yml", extra)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    second = play(fleet, "setup.yml", extra)
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
    return first, second


def scheduled_command(host):
    """The command of root's crontab entry, as cron runs it: /bin/sh -c, cron's environment, as root."""
    crontab = host.root("crontab -l -u root")
    assert crontab.returncode == 0, crontab.stderr
    [line] = [entry for entry in crontab.stdout.splitlines() if entry and not entry.startswith("#")]
    command = line.split(None, 5)[5]
    return host.root(command, env=CRON_ENV)


def stored_sets(fleet, job):
    listing = fleet["s3"].list_objects_v2(Bucket=fleet["bucket"], Prefix="backups/%s/" % job)
    return sorted({key["Key"].split("/")[2] for key in listing.get("Contents", []) if key["Key"].count("/") >= 3
                   and DATE.match(key["Key"].split("/")[2])})


def test_setup_converges_fresh_hosts_and_a_second_run_changes_nothing(fleet, converged):
    first, second = converged
    assert recap(first)["backup1"]["changed"] > 0 and recap(first)["restore1"]["changed"] > 0
    assert {host: counts["changed"] for host, counts in recap(second).items()} == {"backup1": 0, "restore1": 0}, \
        second.stdout[-6000:]
    backup, restore = fleet["hosts"]["backup"], fleet["hosts"]["restore"]
    # The venv has ansible-core and the collection; the vault password and the identity are root's alone.
    versions = backup.root("/opt/corebackup/venv/bin/ansible-galaxy collection list -p /opt/corebackup/collections"
                           " corebackup.backup")
    assert "corebackup.backup" in versions.stdout, versions.stdout + versions.stderr
    for host, path in ((backup, "/etc/corebackup/vault-password"), (restore, "/etc/corebackup/age-identity.txt")):
        assert host.root("stat -c '%U %a' " + path).stdout.strip() == "root 400"
    assert restore.read("/etc/corebackup/age-identity.txt").startswith("# created")
    assert VAULT_PASSWORD not in first.all_text() + second.all_text()
    assert "AGE-SECRET-KEY" not in first.all_text() + second.all_text()


def test_the_scheduled_command_backs_up_and_its_exit_code_says_what_happened(fleet, converged):
    backup = fleet["hosts"]["backup"]
    run = scheduled_command(backup)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    for job in ("app-files", "code", "app-data"):
        assert len(stored_sets(fleet, job)) == 1, job
    metrics = backup.read("/var/lib/corebackup/corebackup.prom")
    for job in ("app-files", "code", "app-data"):
        assert re.search(r'^corebackup_job_last_success_timestamp_seconds\{job="%s"\} [1-9]' % job, metrics, re.M), metrics
    assert json.loads(backup.read("/var/lib/corebackup/last-run.json"))["status"] == "completed"

    # The data of one job is gone: that job fails, the others are backed up, a notification goes out, exit 1.
    backup.root("mv /srv/data /srv/data.moved")
    failed = scheduled_command(backup)
    backup.root("mv /srv/data.moved /srv/data")
    assert failed.returncode == 1, failed.stdout[-6000:]
    statuses = {job["name"]: job["status"] for job in json.loads(backup.read("/var/lib/corebackup/last-run.json"))["jobs"]}
    assert statuses == {"app-files": "success", "code": "success", "app-data": "failed"}
    assert [body["job"] for _path, body in fleet["receiver"].posts] == ["app-data"]
    assert fleet["token"] not in failed.stdout + json.dumps(fleet["receiver"].posts)

    # A job list the play refuses (a storage nobody declared): nothing runs, exit 2, every job's metrics kept.
    backup.root("mkdir -p /etc/corebackup/inventory/host_vars && printf '%s\\n' 'backup_only: [app-files]'"
                " 'backup_jobs: [{name: app-files, service: files, storage: nowhere, options: {paths: [/srv/app]}}]'"
                " > /etc/corebackup/inventory/host_vars/backup1.yml")
    refused = scheduled_command(backup)
    backup.root("rm /etc/corebackup/inventory/host_vars/backup1.yml")
    assert refused.returncode == 2, refused.stdout[-6000:]
    assert "nowhere" in refused.stdout
    assert json.loads(backup.read("/var/lib/corebackup/last-run.json"))["status"] == "config_error"
    assert re.search(r"^corebackup_config_error 1$", backup.read("/var/lib/corebackup/corebackup.prom"), re.M)


def test_the_restore_host_restores_and_drills_what_the_backup_host_wrote(fleet, converged):
    backup, restore = fleet["hosts"]["backup"], fleet["hosts"]["restore"]
    if not stored_sets(fleet, "app-files"):
        assert scheduled_command(backup).returncode == 0
    files = play(fleet, "restore.yml", {"restore_job": "app-files", "restore_storage": "offsite",
                                        "restore_target": {"dest": "/srv/restored/files"}})
    assert files.returncode == 0, files.stdout[-6000:]
    digests = "cd %s && find . -type f -exec sha256sum {} + | sort -k 2"
    restored = restore.root(digests % "/srv/restored/files/app").stdout
    assert restored == backup.root(digests % "/srv/app").stdout and "./blob.bin" in restored
    code = play(fleet, "restore.yml", {"restore_job": "code", "restore_storage": "offsite",
                                       "restore_target": {"dest": "/srv/restored/code"}})
    assert code.returncode == 0, code.stdout[-6000:]
    for name, facts in fleet["repos"].items():
        refs = restore.root("git --git-dir=/srv/restored/code/%s/repo.git for-each-ref --format='%%(refname) %%(objectname)'"
                            % name)
        assert dict(line.split() for line in refs.stdout.splitlines()) == github_fixtures.git_refs(facts["git_dir"])
    # app-data's set of the day holds the failed run of the previous test: drill the other two.
    drill = play(fleet, "drill.yml", {"restore_drill_jobs": ["app-files", "code"]})
    assert drill.returncode == 0, drill.stdout[-6000:]
    for job in ("app-files", "code"):
        [newest] = stored_sets(fleet, job)[-1:]
        drills = fleet["s3"].list_objects_v2(Bucket=fleet["bucket"], Prefix="backups/%s/%s/drills/" % (job, newest))
        assert [o["Key"] for o in drills.get("Contents", []) if o["Key"].endswith(".ok.json")], job
