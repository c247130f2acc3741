# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""playbooks/restore.yml and drill.yml as users run them, after playbooks/backup.yml."""

from __future__ import annotations

import json
import os
import uuid

import yaml

from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_playbook
from ansible_collections.corebackup.backup.tests.testbed.postgres_data import fill_sample, snapshot
from ansible_collections.corebackup.backup.tests.testbed.records import dated_folders

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))


def playbook(name):
    return os.path.join(ROOT, "playbooks", name)


def newest_set(store, job):
    [day] = dated_folders(store / job)
    return store / job / day


def test_an_in_place_restore_keeps_what_it_replaces_packed_as_the_job_and_drills_pass(
        tmp_path, age_identity, postgres_server):
    srv = tmp_path / "srv"
    (srv / "site").mkdir(parents=True)
    (srv / "site" / "index.html").write_text("version 1\n")
    store = tmp_path / "store"
    # A PostgreSQL job too: backed up by the superuser (the globals need one), restored and drilled by the database's
    # owner, a role that is no superuser and has CREATEDB, which the restore hosts' group_vars give.
    pg, tag = postgres_server, uuid.uuid4().hex[:6]
    owner, owner_password, db = "pbk_owner_" + tag, "owner-" + uuid.uuid4().hex, "pbk_app_" + tag
    pg.create_role(owner, owner_password, "LOGIN", "CREATEDB")
    pg.create_database(db, owner)
    fill_sample(pg, db, owner)
    as_owner = {"host": pg.host, "port": pg.port, "user": owner, "password": owner_password}
    pg_job = {"name": "pg", "service": "postgres", "storage": "local", "retention": {"keep_daily": 7},
              "options": {"host": pg.host, "port": pg.port, "user": pg.superuser, "password": pg.password,
                          "databases": [db]}}
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
                         "options": {"paths": [str(srv / "site")], "compression": "zstd"}}, pg_job]}))
    # The restore hosts' identity file and drill server, as inventories/example gives them (group_vars rank below the
    # playbooks' vars).
    (inventory / "group_vars" / "restore_hosts.yml").write_text(yaml.safe_dump({
        "backup_storages": storages, "backup_jobs": [{"name": "site", "service": "files", "storage": "local"},
                                                     {"name": "pg", "service": "postgres", "storage": "local"}],
        "restore_identity_file": age_identity[0], "restore_drill_postgres": as_owner,
        "vault_pbk_password": owner_password}))
    backed_up = run_playbook(COLLECTIONS, playbook("backup.yml"), str(inventory))
    assert backed_up.returncode == 0, backed_up.stdout[-3000:]
    # The PostgreSQL set: the database's pg_dump archive and the cluster's globals, packed as the backup host says.
    pg_set = newest_set(store, "pg")
    stored = sorted((name.rsplit("_", 1)[0], name.split(".", 1)[1]) for name in (
        line.split()[1].rsplit("/", 1)[1] for line in (pg_set / "SHA256SUMS").read_text().splitlines()))
    assert stored == sorted([(db, "dump.gz.age"), ("globals", "sql.gz.age")]), stored
    assert {path.name.rsplit(".", 2)[1] for path in (pg_set / "runs").iterdir()} == {"success"}  # its run records
    verified = run_playbook(COLLECTIONS, playbook("verify.yml"), str(inventory))
    assert verified.returncode == 0, verified.stdout[-3000:]
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
    folder = newest_set(store, "site-pre-restore")
    # SHA256SUMS names each artifact relative to the job's folder (they are stored under <job>/objects/).
    artifacts = [folder.parent / line.split()[1] for line in (folder / "SHA256SUMS").read_text().splitlines()]
    assert [path.name.split(".", 1)[1] for path in artifacts] == ["tar.zst.age"]
    assert all(path.read_bytes().startswith(b"age-encryption.org/v1\n") for path in artifacts)
    # It can itself be restored.
    back = dict(restore, restore_job="site-pre-restore", restore_confirm=True, restore_pre_restore_backup=False)
    assert run_playbook(COLLECTIONS, playbook("restore.yml"), str(inventory), extra_vars=back).returncode == 0
    assert (srv / "site" / "index.html").read_text() == "version 2, broken\n"
    # The PostgreSQL database, into a new database on a server as README's example gives it (restore_target, its
    # password templated from the restore hosts' variables).
    copy = db + "_copy"
    pg_restored = run_playbook(COLLECTIONS, playbook("restore.yml"), str(inventory), extra_vars={
        "restore_job": "pg", "restore_storage": "local", "restore_items": db, "restore_target": {
            "postgres": dict(as_owner, password="{{ vault_pbk_password }}"), "target_database": "{database}_copy"}})
    assert pg_restored.returncode == 0, pg_restored.stdout[-3000:]
    assert "%s -> %s" % (db, copy) in pg_restored.stdout
    assert snapshot(pg, copy) == snapshot(pg, db)
    drill = run_playbook(COLLECTIONS, playbook("drill.yml"), str(inventory))
    assert drill.returncode == 0, drill.stdout[-3000:]
    for job in ("site", "pg"):
        assert "ok: [restore1] => (item=%s)" % job in drill.stdout or "changed: [restore1] => (item=%s)" % job in drill.stdout
    # The drill of pg restored into a scratch database of restore_drill_postgres, compared, and dropped it.
    drills = sorted((pg_set / "drills").iterdir())  # the drill's record, written once
    assert drills[-1].name.endswith(".ok.json") and json.loads(drills[-1].read_text())["result"] == "ok"
    assert not [name for name in pg.sql("SELECT datname FROM pg_database").splitlines() if name.startswith("corebackup_")]
    for run in (backed_up, verified, pg_restored, drill):
        assert pg.password not in run.all_text() and owner_password not in run.all_text()


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
