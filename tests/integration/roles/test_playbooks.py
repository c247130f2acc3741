# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""playbooks/setup.yml as users run it on this machine (report.yml: test_report.py; fresh hosts: tests/integration/hosts)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys

import yaml

from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_playbook

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))


def inventory(tmp_path, **variables):
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"backup_hosts": {"hosts": {"localhost": dict({"ansible_connection": "local"},
                                                                                 **variables)}}}))
    return str(path)


def test_setup_prepares_storage_folders_and_a_systemd_timer(tmp_path):
    """The systemd variant of the schedule, on this machine (the fresh hosts of tests/integration/hosts use cron):
    the collection installed for the host, units that systemd-analyze verify accepts, a second run that changes
    nothing."""
    dist = tmp_path / "dist"
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-galaxy"), "collection", "build",
                    "--output-path", str(dist), ROOT], check=True, capture_output=True)
    [tarball] = list(dist.glob("corebackup-backup-*.tar.gz"))
    host = tmp_path / "host"
    password = tmp_path / "vault-password"
    password.write_text("secret\n")
    settings = {"backup_host_install_packages": False, "backup_host_venv": os.path.dirname(os.path.dirname(sys.executable)),
                "backup_host_setup_python": sys.executable, "backup_host_schedule": "systemd", "backup_host_manage_services": False,
                "backup_host_systemd_dir": str(host / "units"), "backup_host_collection_tarball": str(tarball),
                "backup_host_collections_path": str(host / "collections"), "backup_host_state_dir": str(host / "state"),
                "backup_host_inventory_src": str(tmp_path / "inventory"), "backup_host_inventory": str(host / "inventory"),
                "backup_host_vault_password_src": str(password),
                "backup_host_vault_password_file": str(host / "etc" / "vault-password"),
                "backup_host_run_command": str(host / "bin" / "corebackup-run"),
                "backup_host_storage_dirs": [{"path": str(tmp_path / "backups" / "nightly"), "mode": "0750"}]}
    (host / "units").mkdir(parents=True)
    (host / "bin").mkdir()
    (tmp_path / "inventory").mkdir()
    hosts = str(tmp_path / "inventory" / "hosts.yml")
    with open(hosts, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"backup_hosts": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": sys.executable}}}}, handle)
    run = run_playbook(COLLECTIONS, os.path.join(ROOT, "playbooks", "setup.yml"), hosts, extra_vars=settings)
    assert run.returncode == 0, run.stdout[-3000:]
    assert stat.S_IMODE(os.stat(str(tmp_path / "backups" / "nightly")).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(str(host / "etc" / "vault-password")).st_mode) == 0o400
    assert (host / "collections" / "ansible_collections" / "corebackup" / "backup" / "MANIFEST.json").exists()
    assert (host / "inventory" / "hosts.yml").exists()
    assert "ExecStart=%s\n" % (host / "bin" / "corebackup-run") in (host / "units" / "corebackup-backup.service").read_text()
    assert "OnCalendar=*-*-* 02:00:00" in (host / "units" / "corebackup-backup.timer").read_text()
    if shutil.which("systemd-analyze"):
        assert re.search(r"TASK \[.*Check the units with systemd-analyze verify\][^\n]*\nok:", run.stdout), run.stdout
    again = run_playbook(COLLECTIONS, os.path.join(ROOT, "playbooks", "setup.yml"), hosts, extra_vars=settings)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]


def test_setup_says_what_a_schedule_lacks(tmp_path):
    (tmp_path / "inventory").mkdir()
    hosts = str(tmp_path / "inventory" / "hosts.yml")
    with open(hosts, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"backup_hosts": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": sys.executable}}}}, handle)
    base = {"backup_host_install_packages": False, "backup_host_venv": os.path.dirname(os.path.dirname(sys.executable)),
            "backup_host_setup_python": sys.executable, "backup_host_schedule": "cron",
            "backup_host_state_dir": str(tmp_path / "state")}
    run = run_playbook(COLLECTIONS, os.path.join(ROOT, "playbooks", "setup.yml"), hosts, extra_vars=base)
    assert run.returncode != 0 and "-e backup_host_collection_tarball=" in run.stdout, run.stdout[-3000:]
    # The inventory runs the modules with another Python than the venv's: backup.yml would fail later, setup says so now.
    with open(hosts, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"backup_hosts": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": "/usr/bin/python3"}}}},
            handle)
    run = run_playbook(COLLECTIONS, os.path.join(ROOT, "playbooks", "setup.yml"), hosts,
                       extra_vars=dict(base, backup_host_schedule="none"))
    assert run.returncode != 0, run.stdout[-3000:]
    assert "Set ansible_python_interpreter: %s/bin/python" % base["backup_host_venv"] in run.stdout, run.stdout[-3000:]


def test_setup_installs_the_postgresql_clients_where_a_job_uses_postgres(tmp_path, age_identity):
    """The package of the service postgres is asked of apt (check mode, a name no repository has: apt says it looked
    for it) on the backup host whose job uses it and on the restore host, which restores the backup hosts' jobs (it
    has no job list of its own here); the backup host without such a job gets the tools alone."""
    missing = "corebackup-test-no-such-package-" + os.urandom(4).hex()
    inventory = tmp_path / "inventory"
    (inventory / "host_vars").mkdir(parents=True)
    local = {"ansible_connection": "local", "ansible_become": False}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({
        "backup_hosts": {"hosts": {"backup1": local, "backup2": local}}, "restore_hosts": {"hosts": {"restore1": local}}}))
    # The system's python3 runs setup.yml (apt's bindings are there); no venv, no schedule: only the tools.
    (inventory / "group_vars").mkdir()
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump({
        "backup_host_setup_python": "/usr/bin/python3", "backup_host_venv": "", "backup_host_packages": ["tar"],
        "backup_host_service_packages": {"postgres": [missing]}, "backup_host_identity_file": age_identity[0]}))
    files = {"name": "etc", "service": "files", "storage": "local", "options": {"paths": ["/etc"]}}
    (inventory / "host_vars" / "backup1.yml").write_text(yaml.safe_dump({"backup_jobs": [files, {
        "name": "db", "service": "postgres", "storage": "local", "options": {"host": "db.example.com"}}]}))
    (inventory / "host_vars" / "backup2.yml").write_text(yaml.safe_dump({"backup_jobs": [files]}))
    run = run_playbook(COLLECTIONS, os.path.join(ROOT, "playbooks", "setup.yml"), str(inventory), check=True)
    assert run.returncode != 0
    for host in ("backup1", "restore1"):
        assert re.search(r"fatal: \[%s\]: FAILED! => .*No package matching '%s' is available" % (host, missing),
                         run.stdout), run.stdout[-3000:]
    assert re.search(r"TASK \[[^\]]*Install the tools the modules run \(apt\)\][^\n]*\n(.*\n)*?ok: \[backup2\]",
                     run.stdout), run.stdout[-3000:]
    assert re.search(r"^backup2 +: ok=\d+ +changed=\d+ +unreachable=0 +failed=0 ", run.stdout, re.M), run.stdout[-3000:]
