# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""playbooks/restore.yml and drill.yml as users run them, after playbooks/backup.yml."""

from __future__ import annotations

import os

import yaml

from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_playbook

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))


def playbook(name):
    return os.path.join(ROOT, "playbooks", name)


def test_an_in_place_restore_keeps_what_it_replaces_packed_as_the_job_and_drills_pass(tmp_path, age_identity):
    srv = tmp_path / "srv"
    (srv / "site").mkdir(parents=True)
    (srv / "site" / "index.html").write_text("version 1\n")
    store = tmp_path / "store"
    # A backup host and a restore host, each with the variables of its own group: the packing defaults (age
    # recipients) and the jobs' options are the backup host's alone; the restore host knows where each job is.
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "backup_hosts": {"hosts": {"backup1": {"ansible_connection": "local"}}},
        "restore_hosts": {"hosts": {"restore1": {"ansible_connection": "local"}}}}}}))
    storages = {"local": {"type": "filesystem", "path": str(store)}}
    (inventory / "group_vars" / "backup_hosts.yml").write_text(yaml.safe_dump({
        "backup_storages": storages,
        "backup_module_defaults": {"compression": "gzip", "encryption": {"recipients": [age_identity[1]]}},
        "backup_jobs": [{"name": "site", "service": "files", "storage": "local", "retention": {"keep_days": 7},
                         "options": {"paths": [str(srv / "site")], "compression": "zstd"}}]}))
    # The restore hosts' identity file, as inventories/example gives it (group_vars rank below the playbooks' vars).
    (inventory / "group_vars" / "restore_hosts.yml").write_text(yaml.safe_dump({
        "backup_storages": storages, "backup_jobs": [{"name": "site", "service": "files", "storage": "local"}],
        "restore_identity_file": age_identity[0]}))
    assert run_playbook(COLLECTIONS, playbook("backup.yml"), str(inventory)).returncode == 0
    (srv / "site" / "index.html").write_text("version 2, broken\n")
    restore = {"restore_job": "site", "restore_storage": "local", "restore_items": "site", "restore_force": True,
               "restore_target": {"dest": str(srv)}}
    unconfirmed = run_playbook(COLLECTIONS, playbook("restore.yml"), str(inventory), extra_vars=restore)
    assert unconfirmed.returncode != 0 and "restore_confirm=true" in unconfirmed.stdout
    assert (srv / "site" / "index.html").read_text() == "version 2, broken\n"
    # A job no backup host declares: how to pack its pre-restore backup is unknown, so nothing is replaced.
    unknown = run_playbook(COLLECTIONS, playbook("restore.yml"), str(inventory),
                           extra_vars=dict(restore, restore_job="gone", restore_confirm=True))
    assert unknown.returncode != 0 and "No backup host (group backup_hosts) declares the job gone" in unknown.stdout
    assert (srv / "site" / "index.html").read_text() == "version 2, broken\n"
    done = run_playbook(COLLECTIONS, playbook("restore.yml"), str(inventory), extra_vars=dict(restore, restore_confirm=True))
    assert done.returncode == 0, done.stdout[-3000:]
    assert (srv / "site" / "index.html").read_text() == "version 1\n"
    # What the restore replaced was backed up first, packed as a backup of the job is (the backup host's defaults,
    # then the job's own options): encrypted to its recipients, zstd.
    [day] = [name for name in os.listdir(str(store / "site-pre-restore")) if not name.startswith(".")]
    folder = store / "site-pre-restore" / day
    artifacts = [folder / line.split()[1] for line in (folder / "SHA256SUMS").read_text().splitlines()]
    assert [path.name.split(".", 1)[1] for path in artifacts] == ["tar.zst.age"]
    assert all(path.read_bytes().startswith(b"age-encryption.org/v1\n") for path in artifacts)
    # It can itself be restored.
    back = dict(restore, restore_job="site-pre-restore", restore_confirm=True, restore_pre_restore_backup=False)
    assert run_playbook(COLLECTIONS, playbook("restore.yml"), str(inventory), extra_vars=back).returncode == 0
    assert (srv / "site" / "index.html").read_text() == "version 2, broken\n"
    drill = run_playbook(COLLECTIONS, playbook("drill.yml"), str(inventory))
    assert drill.returncode == 0, drill.stdout[-3000:]
    assert "ok: [restore1] => (item=site)" in drill.stdout or "changed: [restore1] => (item=site)" in drill.stdout


def test_restore_says_what_to_pass_before_anything_runs(tmp_path):
    inventory = tmp_path / "inventory.yml"
    storages = {"local": {"type": "filesystem", "path": str(tmp_path / "store")},
                "offsite": {"type": "s3", "bucket": "backups", "secret_key": "not-to-be-shown"}}
    inventory.write_text(yaml.safe_dump({"restore_hosts": {
        "hosts": {"restore1": {"ansible_connection": "local"}}, "vars": {"backup_storages": storages}}}))
    bare = run_playbook(COLLECTIONS, playbook("restore.yml"), str(inventory))
    assert bare.returncode != 0
    assert "pass -e restore_job=<the job> -e restore_storage=<local|offsite>" in bare.stdout, bare.stdout[-3000:]
    wrong = run_playbook(COLLECTIONS, playbook("restore.yml"), str(inventory),
                         extra_vars={"restore_job": "site", "restore_storage": "nowhere"})
    assert wrong.returncode != 0
    assert "restore_storage=<local|offsite> (nowhere is not a storage of backup_storages)" in wrong.stdout, wrong.stdout
    for run in (bare, wrong):
        assert "not-to-be-shown" not in run.all_text()
        assert "backup_restore" not in run.stdout  # stopped at the first task
    assert not (tmp_path / "store").exists()
