# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""playbooks/setup.yml as users run it (report.yml: test_report.py); the execution environment file as ansible-builder reads it."""

from __future__ import annotations

import os
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
    units = tmp_path / "units"
    units.mkdir()
    password = tmp_path / "vault-password"
    password.write_text("secret\n")
    settings = {"backup_host_install_packages": False, "backup_host_venv": "", "backup_host_schedule": "systemd",
                "backup_host_systemd_dir": str(units), "backup_host_manage_services": False,
                "backup_host_vault_password_file": str(password), "backup_host_inventory": "/etc/corebackup/inv",
                "backup_host_storage_dirs": [{"path": str(tmp_path / "backups" / "nightly"), "mode": "0750"}]}
    run = run_playbook(COLLECTIONS, os.path.join(ROOT, "playbooks", "setup.yml"),
                       inventory(tmp_path, ansible_python_interpreter=sys.executable), extra_vars=settings)
    assert run.returncode == 0, run.stdout[-3000:]
    assert stat.S_IMODE(os.stat(str(tmp_path / "backups" / "nightly")).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(str(password)).st_mode) == 0o400
    service = (units / "corebackup-backup.service").read_text()
    assert "-i /etc/corebackup/inv" in service and "--vault-password-file %s" % password in service
    assert "OnCalendar=*-*-* 02:00:00" in (units / "corebackup-backup.timer").read_text()
    again = run_playbook(COLLECTIONS, os.path.join(ROOT, "playbooks", "setup.yml"),
                         inventory(tmp_path, ansible_python_interpreter=sys.executable), extra_vars=settings)
    assert again.returncode == 0 and "changed=0" in again.stdout


def test_ansible_builder_accepts_the_execution_environment(tmp_path):
    context = tmp_path / "context"
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-builder"), "create", "-f",
                             os.path.join(ROOT, "execution-environment.yml"), "--context", str(context)],
                            capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (context / "Containerfile").exists() or (context / "Dockerfile").exists()
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as one, \
            open(os.path.join(ROOT, "meta", "ee-requirements.txt"), encoding="utf-8") as other:
        assert [line for line in one if not line.startswith("#")] == [line for line in other if not line.startswith("#")]
