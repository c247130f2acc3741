# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""postgres_dump and the PostgreSQL restorer against a real PostgreSQL 15 server with the genuine pg_dump,
pg_dumpall, pg_restore and psql: a database restored into a new one is the same database (rows in key order, views,
sequences, indexes, grants, comments), in place with force after a pre-restore backup, a drill under concurrent writes
compares counts taken in the dump's own snapshot, and hostile artifacts (a dump that runs COPY ... TO PROGRAM, globals
that run a shell) run nothing."""

from __future__ import annotations

import datetime
import os
import subprocess
import time
import uuid

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._manifest import record_run
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.tests.conftest import files_below
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module
from ansible_collections.corebackup.backup.tests.testbed.ansible_tasks import Task, run_tasks
from ansible_collections.corebackup.backup.tests.testbed.postgres_data import fill_sample, snapshot

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
TAG = uuid.uuid4().hex[:6]


class Cluster:
    """The session's server, a database filled with the sample, its owner (who restores: no superuser) and a store."""

    def __init__(self, server, root):
        self.server, self.root = server, root
        self.owner, self.owner_password = "pgt_owner_" + TAG, "owner-" + uuid.uuid4().hex
        self.db = "pgt_app_" + TAG
        server.create_role(self.owner, self.owner_password, "LOGIN", "CREATEDB")
        server.create_database(self.db, self.owner)
        fill_sample(server, self.db, self.owner)
        self.gone = "pgt_gone_" + TAG  # a role the globals test drops after the backup
        server.create_role(self.gone, None, "NOLOGIN")
        self.storage = {"type": "filesystem", "path": str(root / "store")}

    def backup(self, check=False, **args):
        args = dict(dict(host=self.server.host, port=self.server.port, user=self.server.superuser,
                         password=self.server.password, databases=[self.db], storage=self.storage), **args)
        return run_module(COLLECTIONS, "postgres_dump", args, check=check).result

    def restore(self, **args):
        args = dict(dict(job="postgres", storage=self.storage, postgres=dict(
            host=self.server.host, port=self.server.port, user=self.owner, password=self.owner_password)), **args)
        return run_module(COLLECTIONS, "backup_restore", args).result

    def databases(self):
        return set(self.server.sql("SELECT datname FROM pg_database").splitlines())

    def date(self):
        return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")


@pytest.fixture(scope="module")
def pg(postgres_server, tmp_path_factory):
    return Cluster(postgres_server, tmp_path_factory.mktemp("pg"))


@pytest.fixture(scope="module")
def backed_up(pg):
    result = pg.backup()
    assert result.get("failed") is not True, result.get("msg")
    return result


def test_a_database_restores_into_a_new_database_as_it_was(pg, backed_up):
    by_name = {entry["name"]: entry for entry in backed_up["entries"]}
    assert set(by_name) == {"globals", pg.db} and backed_up["status"] == "success"
    entry = by_name[pg.db]
    assert entry["key"].endswith(".dump") and entry["tables"] == 2 and entry["rows"] == 800, entry
    artifact = next(a for a in backed_up["artifacts"] if a["key"] == entry["key"])
    assert artifact["compression"] == "none"  # pg_dump compressed it: the stored file is what pg_restore reads
    assert artifact["contents"]["tables"] == {"public.customers": 300, "sales.orders": 500}
    sales = artifact["contents"]["objects"]["sales"]
    assert sales["TABLE"] == 1 and sales["ACL"] >= 1 and sales["INDEX"] == 1 and sales["VIEW"] == 1, sales
    listing = subprocess.run([os.path.join(pg.server.bin_dir, "pg_restore"), "-l", os.path.join(
        pg.storage["path"], entry["key"])], capture_output=True, text=True, check=True)
    assert "TABLE DATA sales orders" in listing.stdout  # a genuine pg_dump archive: pg_restore by hand reads it

    result = pg.restore(items=[pg.db])
    target = "%s_restored_%s" % (pg.db, pg.date())
    assert result.get("failed") is not True, result.get("msg")
    assert result["restored"][0]["target"] == target and result["restored"][0]["checksum"] == "ok"
    assert snapshot(pg.server, target) == snapshot(pg.server, pg.db)
    assert not [name for name in pg.databases() if name.startswith("corebackup_")]

    before = snapshot(pg.server, target)
    again = pg.restore(items=[pg.db])
    assert again["failed"] and "the database %s exists: set force" % target in again["msg"]
    assert snapshot(pg.server, target) == before


def test_force_replaces_a_database_after_its_pre_restore_backup(pg, backed_up):
    target = "pgt_inplace_" + TAG
    first = pg.restore(items=[pg.db], target_database=target)
    assert first.get("failed") is not True, first.get("msg")
    pg.server.sql("DELETE FROM sales.orders WHERE id > 10; DROP VIEW sales.big_orders;", dbname=target)

    result = pg.restore(items=[pg.db], target_database=target, force=True, pre_restore_backup=True, packing={})
    assert result.get("failed") is not True, result.get("msg")
    assert snapshot(pg.server, target) == snapshot(pg.server, pg.db)
    saved = result["pre_restore"]
    assert saved["job"] == "postgres-pre-restore" and saved["status"] == "success"
    assert [os.path.basename(key).rsplit("_", 1)[0] for key in saved["artifacts"]] == [target]
    # the pre-restore backup holds what was replaced: 10 orders, no view
    back = pg.restore(job="postgres-pre-restore", items=[target], target_database="pgt_saved_" + TAG)
    assert back.get("failed") is not True, back.get("msg")
    assert pg.server.sql("SELECT count(*) FROM sales.orders", dbname="pgt_saved_" + TAG) == "10"
    assert pg.server.sql("SELECT count(*) FROM pg_views WHERE viewname = 'big_orders'",
                         dbname="pgt_saved_" + TAG) == "0"


def test_a_drill_under_concurrent_writes_compares_counts_of_the_dumps_own_snapshot(pg, tmp_path):
    """Two tables written in one transaction each, a large one between them in the dump's order: counts taken at
    another moment than the dump's snapshot would differ from what the scratch restore holds."""
    db = "pgt_busy_" + TAG
    pg.server.create_database(db, pg.owner)
    pg.server.sql("SET ROLE %s; CREATE TABLE a_left (id bigserial PRIMARY KEY, n int); "
                  "CREATE TABLE z_right (id bigserial PRIMARY KEY, n int); "
                  "CREATE TABLE m_bulk AS SELECT i, md5(i::text) || md5((i * 7)::text) AS v "
                  "FROM generate_series(1, 400000) AS i;" % pg.owner, dbname=db)
    pump = ("CREATE PROCEDURE pump() LANGUAGE plpgsql AS $$ BEGIN FOR i IN 1..1000000 LOOP "
            "INSERT INTO a_left (n) VALUES (i); INSERT INTO z_right (n) VALUES (i); COMMIT; PERFORM pg_sleep(0.001); "
            "END LOOP; END $$;")
    pg.server.sql(pump, dbname=db)
    writer = subprocess.Popen([os.path.join(pg.server.bin_dir, "psql"), "-X", "-q", "-h", pg.server.host, "-p",
                               str(pg.server.port), "-U", pg.server.superuser, "-d", db, "-c", "CALL pump()"],
                              env=pg.server.client_env(pg.server.password), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        storage = {"type": "filesystem", "path": str(tmp_path / "store")}
        result = pg.backup(databases=[db], globals=False, storage=storage, job="busy")
        assert result.get("failed") is not True, result.get("msg")
        during = pg.server.sql("SELECT count(*) FROM a_left", dbname=db)
    finally:
        writer.terminate()
        writer.wait()
    recorded = result["artifacts"][0]["contents"]["tables"]
    assert recorded["public.a_left"] == recorded["public.z_right"] > 0
    assert int(during) > recorded["public.a_left"]  # it went on writing after the snapshot
    drill = pg.restore(job="busy", storage=storage, state="drill")
    assert drill.get("failed") is not True, drill.get("msg")
    assert drill["restored"][0]["status"] == "ok" and drill["restored"][0]["rows"] == sum(recorded.values())

    # The drill's comparison can fail: the same dump, recorded with one row more than it holds.
    lying = plant(tmp_path / "lying", "busy", open(os.path.join(storage["path"], result["artifacts"][0]["key"]),
                                                   "rb").read(), dict(result["artifacts"][0]["contents"], tables=dict(
                                                       recorded, **{"public.a_left": recorded["public.a_left"] + 1})))
    bad = pg.restore(job="planted", storage=lying, state="drill")
    assert bad["failed"] and "rows of public.a_left %d, recorded %d" % (
        recorded["public.a_left"], recorded["public.a_left"] + 1) in bad["msg"]
    assert not [name for name in pg.databases() if name.startswith("corebackup_")]


WHEN = datetime.datetime(2026, 6, 15, 2, 0, tzinfo=datetime.timezone.utc)


def plant(root, name, data, contents=None, metadata=None, ext="dump"):
    """An artifact of the item ``name`` (a postgres one) holding ``data``, recorded as a good run of the job
    ``planted`` would record it (its sha256 matches): what a tampered store looks like."""
    storage = {"type": "filesystem", "path": str(root)}
    backend = FilesystemBackend(storage["path"])
    metadata = metadata or {"format": "pg_dump custom", "database": name}
    artifact = ArtifactWriter(backend, "none", 0).store("planted", name, ext, [data], metadata=metadata, when=WHEN,
                                                        contents=(lambda: contents) if contents else None)
    record_run(backend, "planted", WHEN.date().isoformat(), {
        "run_id": uuid.uuid4().hex[:12], "started": "2026-06-15T02:00:00Z", "finished": "2026-06-15T02:01:00Z",
        "duration": 60.0, "status": "success", "source": {"type": "postgres", "name": "planted"},
        "artifacts": [artifact.to_dict()], "entries": [{"name": name, "status": "backed_up", "key": artifact.key,
                                                        "error": None}],
        "counts": {"backed_up": 1}, "warnings": [], "errors": [], "tools": {}})
    return storage


def test_a_hostile_dump_cannot_run_a_program_on_the_server(pg, tmp_path):
    """A custom-format archive whose comment was replaced by COPY ... TO PROGRAM: pg_restore as a superuser runs it
    (the control); backup_restore, which restores as a role that is no superuser, does not, and leaves nothing."""
    source = "pgt_hostile_src_" + TAG
    pg.server.create_database(source, pg.owner)
    pg.server.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); COMMENT ON TABLE t IS '%s';"
                  % ("x" * 120), dbname=source)
    archive = subprocess.run([os.path.join(pg.server.bin_dir, "pg_dump"), "-Fc", "-h", pg.server.host, "-p",
                              str(pg.server.port), "-U", pg.server.superuser, "-d", source], capture_output=True,
                             env=pg.server.client_env(pg.server.password), check=True).stdout
    marker = "/tmp/pgt-pwned-%s" % uuid.uuid4().hex[:8]
    comment = ("COMMENT ON TABLE public.t IS '%s';" % ("x" * 120)).encode()
    hostile = ("COPY (SELECT 1) TO PROGRAM 'touch %s';" % marker).encode().ljust(len(comment))
    assert archive.count(comment) == 1
    crafted = archive.replace(comment, hostile)
    path = tmp_path / "crafted.dump"
    path.write_bytes(crafted)

    control = "pgt_control_" + TAG
    pg.server.create_database(control)
    subprocess.run([os.path.join(pg.server.bin_dir, "pg_restore"), "-h", pg.server.host, "-p", str(pg.server.port),
                    "-U", pg.server.superuser, "-d", control, str(path)], env=pg.server.client_env(pg.server.password),
                   capture_output=True, check=False)
    assert os.path.exists(marker), "the control: a superuser's pg_restore runs the crafted archive's program"
    os.unlink(marker)

    storage = plant(tmp_path / "store", "hostile", crafted)
    before = pg.databases()
    result = pg.restore(job="planted", storage=storage)
    assert result["failed"] and "pg_restore failed on" in result["msg"], result.get("msg")
    assert "pg_execute_server_program" in result["msg"]
    assert not os.path.exists(marker) and pg.databases() == before

    as_superuser = pg.restore(job="planted", storage=storage, postgres=dict(
        host=pg.server.host, port=pg.server.port, user=pg.server.superuser, password=pg.server.password))
    refusal = "refusing to restore as %s, a superuser" % pg.server.superuser
    assert as_superuser["failed"] and refusal in as_superuser["msg"]
    assert not os.path.exists(marker) and pg.databases() == before


def test_globals_restore_only_when_asked_in_restricted_psql(pg, backed_up, tmp_path):
    """The globals item re-creates a dropped role when asked (and only then); a hostile one's shell escape does not
    run, and its GRANT of pg_execute_server_program to the restoring role stops the restore."""
    gone = pg.gone
    glob = next(e for e in backed_up["entries"] if e["name"] == "globals")
    assert glob["status"] == "backed_up" and glob["key"].endswith(".sql")
    pg.server.sql("DROP ROLE %s;" % gone)
    admin, admin_password = "pgt_admin_" + TAG, uuid.uuid4().hex
    pg.server.create_role(admin, admin_password, "LOGIN", "CREATEDB", "CREATEROLE")
    connection = dict(host=pg.server.host, port=pg.server.port, user=admin, password=admin_password)

    unasked = pg.restore(items=["globals"], postgres=connection)
    assert unasked.get("failed") is not True and unasked["restored"][0]["restored"] is False
    assert pg.server.sql("SELECT count(*) FROM pg_roles WHERE rolname = '%s'" % gone) == "0"
    asked = pg.restore(items=["globals"], postgres=connection, restore_globals=True)
    assert asked.get("failed") is not True, asked.get("msg")
    assert asked["restored"][0]["restored"] is True and asked["restored"][0]["errors"] > 0  # roles that exist
    assert pg.server.sql("SELECT count(*) FROM pg_roles WHERE rolname = '%s'" % gone) == "1"

    marker = "/tmp/pgt-shell-%s" % uuid.uuid4().hex[:8]
    sql = ("\\! touch %s\nGRANT pg_execute_server_program TO %s;\n" % (marker, admin)).encode()
    hostile = plant(tmp_path / "h", "globals", sql, metadata={"format": "pg_dumpall globals"}, ext="sql")
    refused = pg.restore(job="planted", storage=hostile, postgres=connection, restore_globals=True)
    assert not os.path.exists(marker)
    assert refused["failed"] and "refusing to restore as %s" % admin in refused["msg"]
    pg.server.sql("REVOKE pg_execute_server_program FROM %s;" % admin)


def test_selection_zstd_check_mode_and_bad_input(pg, tmp_path):
    storage = {"type": "filesystem", "path": str(tmp_path / "s")}
    preview = pg.backup(check=True, storage=storage, exclude_schemas=["sales"])
    entry = next(e for e in preview["entries"] if e["name"] == pg.db)
    assert preview["changed"] and entry["status"] == "would_back_up" and entry["bytes"] > 0
    assert files_below(str(tmp_path)) == []

    result = pg.backup(storage=storage, tables=["public.customers"], compression="zstd", globals=False,
                       job="only-public")
    assert result.get("failed") is not True, result.get("msg")
    artifact = result["artifacts"][0]
    assert artifact["key"].endswith(".dump.zst") and set(artifact["contents"]["tables"]) == {"public.customers"}
    assert "sales" not in artifact["contents"]["objects"]
    drill = pg.restore(job="only-public", storage=storage, state="drill")
    assert drill.get("failed") is not True and drill["restored"][0]["status"] == "ok", drill.get("msg")

    old = tmp_path / "old-bin"
    old.mkdir()
    for name in ("psql", "pg_restore", "pg_dumpall"):
        os.symlink(os.path.join(pg.server.bin_dir, name), str(old / name))
    (old / "pg_dump").write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.12'\n")
    (old / "pg_dump").chmod(0o755)
    connection = dict(host=pg.server.host, port=pg.server.port, user=pg.server.superuser, databases=[pg.db],
                      storage=storage, job="wrong")
    results, _run = run_tasks(COLLECTIONS, [  # one ansible-playbook run for the lot
        Task("postgres_dump", dict(connection, password="not-" + pg.server.password)),
        Task("postgres_dump", dict(connection, password=pg.server.password, ssl_mode="require")),
        Task("postgres_dump", dict(connection, uri="mysql://u:secret@h/db")),
        Task("postgres_dump", dict(connection, password=pg.server.password, bin_dir=str(old))),
    ])
    wrong, tls, scheme, too_old = results
    assert wrong["failed"] and "password authentication failed" in wrong["msg"]
    assert pg.server.password not in str(results)
    assert tls["failed"] and "server does not support SSL" in tls["msg"]  # the TLS options reach libpq
    assert scheme["failed"] and "uri must be a postgresql:// URI" in scheme["msg"] and "secret" not in str(scheme)
    assert too_old["failed"] and "pg_dump is of PostgreSQL 14, older than the server (15)" in too_old["msg"]
    assert not os.path.exists(os.path.join(storage["path"], "wrong"))  # nothing stored by a failed run
