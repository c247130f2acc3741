# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""AWX as docs/awx.md sets it up, run with the commands AWX runs (awx/main/tasks/jobs.py, models/credential.py):
the inventory source synced by `ansible-inventory --list --export` without any vault password, job templates running
the project's playbooks against what the sync stored, with the vaulted vars files beside those playbooks, and the
credential type of extensions/awx/credential-type-age-identity.yml handing the age identity to restores and drills."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import types

import yaml
from jinja2 import sandbox

from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_playbook
from ansible_collections.corebackup.backup.tests.testbed.records import dated_folders

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
BIN = os.path.dirname(sys.executable)
CREDENTIAL_TYPE = os.path.join(ROOT, "extensions", "awx", "credential-type-age-identity.yml")


def sync(source, home):
    """An inventory update of a source from a project, as AWX runs it: no vault password, no template rendered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_HOME=home)
    return subprocess.run([os.path.join(BIN, "ansible-inventory"), "--list", "--export", "-i", source,
                           "--playbook-dir", os.path.dirname(source)], capture_output=True, text=True, env=env, check=False)


def inject(credential_type, inputs, private_dir):
    """What AWX does with a credential of this type when a job starts: each file template rendered into a 0600 file
    of the job's private folder, then the extra variables rendered with tower.filename.<name> naming those files."""
    os.makedirs(private_dir, exist_ok=True)
    env = sandbox.ImmutableSandboxedEnvironment()
    filenames = types.SimpleNamespace()
    for label, template in credential_type["injectors"]["file"].items():
        path = os.path.join(private_dir, label.split(".", 1)[1])
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(env.from_string(template).render(**inputs))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        setattr(filenames, label.split(".", 1)[1], path)
    namespace = dict(inputs, tower=types.SimpleNamespace(filename=filenames))
    extra_vars = {name: env.from_string(template).render(**namespace)
                  for name, template in credential_type["injectors"]["extra_vars"].items()}
    path = os.path.join(private_dir, "extravars.yml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(extra_vars, handle)
    return "@" + path, extra_vars


def test_the_credential_type_takes_a_secret_multiline_identity_and_names_a_variable_the_playbooks_read():
    with open(CREDENTIAL_TYPE, encoding="utf-8") as handle:
        credential_type = yaml.safe_load(handle)
    assert set(credential_type) == {"name", "description", "kind", "inputs", "injectors"}
    assert credential_type["kind"] == "cloud"  # custom types may be cloud or net only
    [field] = credential_type["inputs"]["fields"]
    assert field["id"] == "age_identity" and field["secret"] is True and field["multiline"] is True
    assert credential_type["inputs"]["required"] == ["age_identity"]
    assert credential_type["injectors"]["file"] == {"template.age_identity": "{{ age_identity }}"}
    assert credential_type["injectors"]["extra_vars"] == {
        "restore_identity_controller_file": "{{ tower.filename.age_identity }}"}
    for name in ("restore.yml", "drill.yml"):
        with open(os.path.join(ROOT, "playbooks", name), encoding="utf-8") as handle:
            tasks = yaml.safe_load(handle)[0]["tasks"]
        assert "restore_identity_controller_file" in json.dumps(tasks), name


def test_a_project_synced_without_the_vault_backs_up_restores_and_drills_with_the_credential(tmp_path, age_identity):
    home = str(tmp_path / "ansible-home")
    # The example inventory keeps its vaults in the inventory's group_vars: an inventory update cannot read them.
    example = sync(os.path.join(ROOT, "inventories", "example", "hosts.yml"), home)
    assert example.returncode != 0 and "no vault secrets" in example.stderr, example.stderr

    # The project of docs/awx.md: extensions/awx/project (the job templates' playbooks), an inventory with no vault,
    # and the vaults beside the playbooks.
    project = tmp_path / "project"
    shutil.copytree(os.path.join(ROOT, "extensions", "awx", "project"), str(project))
    inventory = project / "inventories" / "site"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({
        "backup_hosts": {"hosts": {"backup1": {"ansible_connection": "local"}}},
        "restore_hosts": {"hosts": {"restore1": {"ansible_connection": "local"}}}}))
    srv = tmp_path / "srv"
    (srv / "site").mkdir(parents=True)
    (srv / "site" / "index.html").write_text("version 1\n")
    (inventory / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump({
        "backup_storages": {"local": {"type": "filesystem", "path": str(tmp_path / "store")}},
        "backup_module_defaults": {"encryption": {"recipients": "{{ vault_age_recipients }}"}},
        "backup_jobs": [{"name": "site", "service": "files", "storage": "local", "retention": {"keep_days": 7},
                         "options": {"paths": [str(srv / "site")]}}]}))
    (project / "playbooks" / "vault").mkdir()
    vault = project / "playbooks" / "vault" / "all.yml"
    vault.write_text(yaml.safe_dump({"vault_age_recipients": [age_identity[1]]}))
    password = tmp_path / "vault-password"
    password.write_text("corebackup-example\n")
    encrypt = subprocess.run([os.path.join(BIN, "ansible-vault"), "encrypt", "--vault-password-file", str(password),
                              str(vault)], capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_HOME=home))
    assert encrypt.returncode == 0, encrypt.stderr

    synced = sync(str(inventory / "hosts.yml"), home)
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["all"]["vars"]["backup_jobs"][0]["name"] == "site"
    assert age_identity[1] not in synced.stdout
    # A job reads the inventory as AWX stored it (a script of what the sync found), not the project's files.
    stored = tmp_path / "awx-inventory.json"
    stored.write_text(synced.stdout)
    script = tmp_path / "awx-inventory.sh"
    script.write_text("#!/bin/sh\ncat %s\n" % stored)
    script.chmod(0o700)
    vault_args = ("--vault-password-file", str(password))

    backup = run_playbook(COLLECTIONS, str(project / "playbooks" / "backup.yml"), str(script), args=vault_args)
    assert backup.returncode == 0, backup.stdout[-3000:] + backup.stderr[-3000:]
    [day] = dated_folders(tmp_path / "store" / "site")
    artifacts = [name for name in os.listdir(str(tmp_path / "store" / "site" / "objects")) if name.endswith(".age")]
    assert len(artifacts) == 1  # encrypted to the recipients of the vault, which the job read
    (srv / "site" / "index.html").write_text("version 2, broken\n")

    with open(CREDENTIAL_TYPE, encoding="utf-8") as handle:
        credential_type = yaml.safe_load(handle)
    with open(age_identity[0], encoding="utf-8") as handle:
        identity = handle.read()
    credential, injected = inject(credential_type, {"age_identity": identity}, str(tmp_path / "private" / "env"))
    restore_host_tmp = tmp_path / "restore-host-tmp"
    restore_host_tmp.mkdir()
    survey = {"restore_job": "site", "restore_storage": "local", "restore_items": "site", "restore_force": True,
              "restore_confirm": True, "restore_pre_restore_backup": False, "restore_target": {"dest": str(srv)}}
    restore = run_playbook(COLLECTIONS, str(project / "playbooks" / "restore.yml"), str(script), extra_vars=survey,
                           env={"TMPDIR": str(restore_host_tmp)}, args=vault_args + ("-e", credential, "--diff", "-v"))
    assert restore.returncode == 0, restore.stdout[-3000:] + restore.stderr[-3000:]
    assert (srv / "site" / "index.html").read_text() == "version 1\n"
    # The restore host got the identity for the run only, and nothing printed or logged it.
    assert os.listdir(str(restore_host_tmp)) == []
    key = [line for line in identity.splitlines() if line.startswith("AGE-SECRET-KEY-")][0]
    assert key not in restore.all_text()

    drill = run_playbook(COLLECTIONS, str(project / "playbooks" / "drill.yml"), str(script),
                         env={"TMPDIR": str(restore_host_tmp)}, args=vault_args + ("-e", credential))
    assert drill.returncode == 0, drill.stdout[-3000:] + drill.stderr[-3000:]
    assert "ok: [restore1] => (item=site)" in drill.stdout or "changed: [restore1] => (item=site)" in drill.stdout
    assert os.listdir(str(restore_host_tmp)) == []

    # Without the credential's file (a job template without the credential, a stale path): a message, not age's.
    gone = run_playbook(COLLECTIONS, str(project / "playbooks" / "drill.yml"), str(script),
                        extra_vars={"restore_identity_controller_file": injected["restore_identity_controller_file"]
                                    + ".gone"}, args=vault_args)
    assert gone.returncode != 0 and "is not a file where ansible-playbook runs" in gone.stdout, gone.stdout[-3000:]
