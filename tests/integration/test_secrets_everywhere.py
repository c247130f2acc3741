# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Known secrets, every module and the backup role run with -vvv, and everything they leave: zero occurrences.

The secrets: a GitHub token, a GitHub App's private key and the installation tokens the stand-in mints for
it, a MongoDB SCRAM password, the passwords of two PostgreSQL roles (one that backs up, a superuser, and one
that restores, with CREATEDB only; characters that a URI or a passfile must escape among them), S3 credentials,
the age identity that decrypts the artifacts, a Slack webhook secret and a JSON webhook token. Scanned: every
byte on the filesystem stores and in the S3 bucket (age decrypted, gzip and zstd decompressed, tars unpacked,
pg_dump archives read back by pg_restore, every object of every git repository inside), what the restores
wrote, files left in the runs' TMPDIR (the modules' own temporary folders are in it: ANSIBLE_REMOTE_TMP), the
metrics textfile and report page, the notifications posted, every result, stdout, stderr and Ansible log, and the
command line of every process sampled during the runs; the environment of every process of the runs is sampled
too, for where the PostgreSQL passwords are (the clients' own environment or a 0600 passfile only). The age
recipient is public and may be stored. The modules run one by one through ansible-playbook; then every playbook
under playbooks/ runs on an inventory holding the secrets (backup.yml, verify.yml, report.yml, drill.yml,
restore.yml with its pre-restore backup, setup.yml), which also runs backup_plan, backup_run, backup_metrics and
backup_report.
"""

from __future__ import annotations

import base64
import collections
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
import urllib.parse
import uuid

import boto3
import pymongo
import pytest

from ansible_collections.corebackup.backup.tests.integration.modules import test_volume_snapshot as volume_tests
from ansible_collections.corebackup.backup.tests.integration.roles.test_backup_role import Receiver, inventory
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module_watching_argv, run_playbook
from ansible_collections.corebackup.backup.tests.testbed.postgres_data import fill_sample
from ansible_collections.corebackup.backup.tests.testbed.secret_scan import (
    ArgvSampler,
    EnvSampler,
    SecretScanner,
    forms,
)
from ansible_collections.corebackup.backup.tests.testbed.services import secantus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
ORG = "secretsorg"
PUSH_ORG = "secretspush"
JOB = "secrets"  # the module runs on the filesystem store, encrypted
APP_JOB = "secrets-app"  # github_backup as a GitHub App, on S3, zstd
PG_JOB = "secrets-pg"  # postgres_dump as the restoring role (no superuser: no globals), on S3, zstd
PG_TAG = uuid.uuid4().hex[:6]  # the session's PostgreSQL server is shared: names of this module's own
PG_CLIENTS = {"pg_dump", "pg_dumpall", "pg_restore", "psql"}
PG_SECRETS = ("postgres password", "postgres restore password")
APP_ID = 515151
RETRIES = {"attempts": 3, "delay": 0.2, "max_delay": 1}
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class Private(dict):
    """A dict whose repr shows its keys only: pytest prints a failing test's arguments, never a secret."""

    def __repr__(self):
        return "<%s>" % ", ".join(sorted(self))


def random_string(prefix, length):
    return prefix + "".join(secrets.choice(ALNUM) for _n in range(length))


# -- the scanner finds what it must (a control: a scan that finds nothing proves nothing otherwise) --------

def test_the_scanner_finds_a_secret_in_every_layer(tmp_path, age_identity, postgres_server):
    identity, recipient = age_identity
    planted = random_string("planted", 32)
    scanner = SecretScanner({"planted": forms(planted, basic_user="x-access-token")}, identities=(identity,))
    # A git repository whose only copy of the secret is a blob (git compresses objects: not in the raw bytes).
    repo = str(tmp_path / "repo.git")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(git + ["init", "--quiet", "--bare", repo], check=True)
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.ini").write_text("password = %s\n" % planted)
    env = dict(os.environ, GIT_DIR=repo, GIT_WORK_TREE=str(work))
    subprocess.run(git + ["add", "config.ini"], check=True, env=env)
    subprocess.run(git + ["commit", "--quiet", "-m", "c"], check=True, env=env)
    subprocess.run(git + ["gc", "--quiet"], check=True, env=env)  # packed
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(repo, arcname="repo.git")
        header = base64.b64encode(("x-access-token:" + planted).encode())
        member = tarfile.TarInfo("metadata/request.txt")
        member.size = len(b"Authorization: Basic " + header)
        tar.addfile(member, io.BytesIO(b"Authorization: Basic " + header))
    encrypted = subprocess.run(["age", "-r", recipient], input=archive.getvalue(), capture_output=True, check=True).stdout
    store = tmp_path / "store"
    store.mkdir()
    (store / "item.tar.gz.age").write_bytes(encrypted)
    # Text around it, so that zstd codes the secret's letters too (a short input would be stored as it is). zstd
    # still keeps the literals raw when Huffman coding them would not pay (about one text in 16): draw another.
    for _attempt in range(20):
        text = " ".join(secrets.choice(["backup", "restore", "the", "set", "of"]) for _n in range(3000)).encode()
        zstd = subprocess.run(["zstd", "-q", "-c"], input=text + planted.encode() + text, capture_output=True,
                              check=True).stdout
        if planted.encode() not in zstd:
            break
    (store / "doc.zst").write_bytes(zstd)
    # A row of a table in a pg_dump archive (custom format: pg_dump compresses each table's data with zlib), encrypted.
    server, database = postgres_server, "scan_control_" + PG_TAG
    server.create_database(database)
    server.sql("CREATE TABLE notes (id int, body text); INSERT INTO notes SELECT i, repeat('a note ', i %% 50) || CASE "
               "WHEN i = 700 THEN 'password = %s' ELSE '' END FROM generate_series(1, 2000) AS i;" % planted,
               dbname=database, secrets_in_query=[planted])
    dump = subprocess.run([os.path.join(server.bin_dir, "pg_dump"), "-Fc", "-h", server.host, "-p", str(server.port),
                           "-U", server.superuser, "-d", database], env=server.client_env(server.password),
                          capture_output=True, check=True).stdout
    server.drop_database(database)
    (store / "db.dump.age").write_bytes(subprocess.run(["age", "-r", recipient], input=dump, capture_output=True,
                                                       check=True).stdout)
    hidden = planted.encode() not in encrypted and planted.encode() not in zstd and planted.encode() not in dump
    assert hidden  # a raw scan would miss all three
    scanner.scan_tree(str(store), "store/")
    where = {(f.form, f.where.split(": git ")[0]) for f in scanner.findings}
    assert ("plain", "store/item.tar.gz.age | age -d | gunzip!repo.git") in where  # the blob, through cat-file
    assert ("basic-auth", "store/item.tar.gz.age | age -d | gunzip!metadata/request.txt") in where
    assert ("plain", "store/doc.zst | unzstd") in where
    assert ("plain", "store/db.dump.age | age -d | pg_restore") in where  # the row, decompressed
    assert any(": git blob " in f.where for f in scanner.findings)
    assert scanner.counts["git objects"] == 3 and scanner.counts["age decrypted"] == 2 and not scanner.unreadable
    assert scanner.counts["pg_dump archives"] == 1
    # Without the identity, the encrypted artifact is reported as unreadable, not passed over.
    blind = SecretScanner({"planted": forms(planted)})
    blind.scan_tree(str(store), "store/")
    assert blind.unreadable and "age -d failed" in blind.unreadable[0]


# -- the world: services with known secrets ------------------------------------------------------------------

@pytest.fixture(scope="module")
def known(age_identity):
    """The secrets of this module, and the scanner's forms of each."""
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import rsa  # pylint: disable=import-outside-toplevel

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    with open(age_identity[0], encoding="utf-8") as handle:
        age_key = [line for line in handle.read().splitlines() if line.startswith("AGE-SECRET-KEY-")][0]
    values = {
        "github token": random_string("ghp_", 36),
        "mongodb password": random_string("Mpw", 29),
        "s3 access key id": random_string("CBKEY", 15).upper(),
        "s3 secret key": random_string("S3sk", 36),
        "slack webhook secret": random_string("slk", 24),
        "webhook token": random_string("whk", 24),
        "backup_secrets value": random_string("listed", 24),
        # Characters that a URI must percent-encode (the backup role's, in a uri) and that a passfile must escape.
        "postgres password": random_string("Pgb", 24) + "@:/?#%&= +",
        "postgres restore password": random_string("Pgr", 24) + "\\:'",
    }
    found = {label: forms(value, basic_user="x-access-token" if label == "github token" else None)
             for label, value in values.items()}
    for label in PG_SECRETS:  # its random letters alone: found whatever is made of the characters after them
        found[label]["random part"] = values[label][:27].encode()
    found["age identity"] = forms(age_key, lowercase=True)
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    found["github app private key"] = {"pem line %d" % n: line.encode() for n, line in enumerate(body) if len(line) >= 40}
    return Private(values=Private(values), forms=Private(found), pem=pem, age_recipient=age_identity[1])


@pytest.fixture(scope="module")
def mongo_with_password(known, service_log_dir, tmp_path_factory):
    """SecantusDB with --auth and a SCRAM user whose password is known, with a database to dump."""
    python = os.environ.get("SECANTUS_PYTHON") or os.path.join(os.getcwd(), ".venv-secantus", "bin", "python")
    data = str(tmp_path_factory.mktemp("secret-mongo"))
    password = known["values"]["mongodb password"]
    with secantus(python, service_log_dir, storage_path=data) as server:
        client = pymongo.MongoClient("mongodb://127.0.0.1:%d/?directConnection=true" % server.port)
        client.admin.command("createUser", "backup", pwd=password, roles=["root"], mechanisms=["SCRAM-SHA-256"])
        client.vault.things.insert_many([{"n": n, "text": "thing %d" % n} for n in range(300)])
        client.close()
    with secantus(python, service_log_dir, storage_path=data, auth=True) as server:
        yield "mongodb://backup:%s@127.0.0.1:%d/?authSource=admin&directConnection=true" % (password, server.port)


@pytest.fixture(scope="module")
def pg_with_passwords(known, postgres_server):
    """On the session's PostgreSQL server: a role that backs up (LOGIN SUPERUSER, so that the globals are dumped),
    one that restores (LOGIN CREATEDB, no superuser, as backup_restore wants it) and owns a database with rows,
    each with its known password."""
    server, values = postgres_server, known["values"]
    backup, restore, database = "sec_backup_" + PG_TAG, "sec_restore_" + PG_TAG, "sec_vault_" + PG_TAG
    server.create_role(backup, values["postgres password"], "LOGIN", "SUPERUSER")
    server.create_role(restore, values["postgres restore password"], "LOGIN", "CREATEDB")
    server.create_database(database, restore)
    fill_sample(server, database, restore)
    where = {"host": server.host, "port": server.port}
    return Private(
        database=database, host=server.host, port=server.port,
        uri="postgresql://%s:%s@%s:%d/postgres" % (backup, urllib.parse.quote(values["postgres password"], safe=""),
                                                   server.host, server.port),
        backup=dict(where, user=backup, password=values["postgres password"]),
        restore=dict(where, user=restore, password=values["postgres restore password"]),
        restore_uri="postgresql://%s:%s@%s:%d/postgres" % (
            restore, urllib.parse.quote(values["postgres restore password"], safe=""), server.host, server.port))


@pytest.fixture(scope="module")
def world(known, github_standin, docker_engine, s3_endpoint, mongo_with_password, pg_with_passwords, age_identity,
          tmp_path_factory):
    values = known["values"]
    root = tmp_path_factory.mktemp("secrets-world")
    github_standin.add_token(values["github token"], login="secrets-bot")
    github_fixtures.build_many(github_standin, ORG, str(root / "github"), count=2, seed=15)
    github_fixtures.add_wiki(github_standin, ORG, "bench-001")
    github_standin.add_app(APP_ID, known["pem"], installations={ORG: 818181})
    github_standin.github.add_org(PUSH_ORG)
    source = root / "source" / "data"
    (source / "sub").mkdir(parents=True)
    (source / "notes.txt").write_text("nothing secret here\n")
    (source / "sub" / "blob.bin").write_bytes(os.urandom(20000))
    bucket = "corebackup-secrets-" + uuid.uuid4().hex[:8]
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id=values["s3 access key id"], aws_secret_access_key=values["s3 secret key"])
    client.create_bucket(Bucket=bucket)
    s3 = {"type": "s3", "bucket": bucket, "endpoint_url": s3_endpoint, "region": "us-east-1",
          "access_key": values["s3 access key id"], "secret_key": values["s3 secret key"]}
    tmpdir = root / "tmpdir"  # the runs' TMPDIR: what they leave there is scanned
    tmpdir.mkdir()
    # The modules' own temporary folders (module.tmpdir, where postgres_dump writes its passfile) in it too, so that
    # what Ansible does not remove of them is scanned as well.
    remote_tmp = tmpdir / "ansible-remote-tmp"
    remote_tmp.mkdir(mode=0o700)
    return Private(root=root, standin=github_standin, engine=docker_engine, uri=mongo_with_password, source=str(source),
                   volume=volume_tests.new_volume(docker_engine), s3_client=client, bucket=bucket, s3=s3,
                   fs={"type": "filesystem", "path": str(root / "store")}, pg=pg_with_passwords,
                   env={"TMPDIR": str(tmpdir), "ANSIBLE_REMOTE_TMP": str(remote_tmp)},
                   tmpdir=str(tmpdir), identity=age_identity[0], encryption={"recipients": [age_identity[1]]})


class Runs:
    """Every run of this module: its text (output, log, result) and the command lines seen while it ran."""

    def __init__(self, world):
        self.world = world
        self.runs = []  # (name, text, argv, ok, detail)

    def module(self, name, **args):
        run, seen = run_module_watching_argv(COLLECTIONS, name, args, verbosity=3, env=self.world["env"])
        # The log was written at -vvv (the connection's commands are in it), so that it is worth scanning.
        verbose = "ESTABLISH LOCAL CONNECTION" in run.log
        self.runs.append((name, {"stdout": run.stdout, "stderr": run.stderr, "ansible log": run.log,
                                 "result": json.dumps(run.result)}, seen, not run.failed and verbose,
                          str(run.result.get("msg"))[-2000:] if run.failed else "log at -vvv: %s" % verbose))
        return run

    def playbook(self, name, inv, **kwargs):
        with ArgvSampler() as sampler:
            run = run_playbook(COLLECTIONS, os.path.join(ROOT, "playbooks", name), inv, env=self.world["env"],
                               args=("-vvv",), **kwargs)
        verbose = "ESTABLISH LOCAL CONNECTION" in run.log
        self.runs.append(("playbooks/" + name, {"stdout": run.stdout, "stderr": run.stderr, "ansible log": run.log},
                          sampler.seen, run.returncode == 0 and verbose,
                          "return code %d, log at -vvv: %s: %s" % (run.returncode, verbose, run.stdout[-3000:])))
        return run


@pytest.fixture(scope="module")
def runs(world, known):
    """Every module, then every playbook (the backup role, verify, report, drill, restore, setup), all at -vvv."""
    # The environment of each process of the runs (their TMPDIR tells them from others'), for the PostgreSQL passwords.
    watch = EnvSampler("TMPDIR=" + world["tmpdir"], {label: known["forms"][label] for label in PG_SECRETS},
                       keep=("PGPASSFILE",), flags=("PGPASSWORD",))
    with watch:
        done = every_run(world, known)
    done.env = watch
    return done


def every_run(world, known):
    values, standin, engine, fs, s3, pg = (known["values"], world["standin"], world["engine"], world["fs"], world["s3"],
                                           world["pg"])
    done = Runs(world)
    # The service modules, one encrypted set on the filesystem store.
    services = [
        done.module("files_backup", paths=[world["source"]], job=JOB, storage=fs, encryption=world["encryption"]),
        done.module("github_backup", organization=ORG, token=values["github token"], api_url=standin.api_url, job=JOB,
                    storage=fs, encryption=world["encryption"], retries=RETRIES),
        done.module("volume_snapshot", volumes=[world["volume"]], helper_image=engine.image, docker_host=engine.url,
                    job=JOB, storage=fs, encryption=world["encryption"]),
        done.module("mongo_dump", uri=world["uri"], databases=["vault"], job=JOB, storage=fs,
                    encryption=world["encryption"], retries=RETRIES),
        # The backup role's password in the URI (percent-encoded): stripped from it before any client sees it.
        done.module("postgres_dump", uri=pg["uri"], databases=[pg["database"]], job=JOB, storage=fs,
                    encryption=world["encryption"], retries=RETRIES),
    ]
    for run in services:
        done.module("backup_manifest", storage=fs, result=run.result,
                    secrets=[values["github token"], values["mongodb password"]])
    done.module("backup_manifest", state="verified", job=JOB, storage=fs)
    done.drill = done.module("backup_restore", state="drill", job=JOB, storage=fs, identity_file=world["identity"],
                             uri=world["uri"], helper_image=engine.image, docker_host=engine.url,
                             postgres={"uri": pg["restore_uri"]})
    done.module("backup_restore", job=JOB, storage=fs, identity_file=world["identity"], items=["bench-001"],
                dest=str(world["root"] / "restored"),
                push_to={"api_url": standin.api_url, "organization": PUSH_ORG, "token": values["github token"]})
    # A GitHub App on S3 (zstd); its set pruned and verified there.
    s3_modules = dict(s3, prefix="modules/")
    app = done.module("github_backup", organization=ORG, app_id=str(APP_ID), app_private_key=known["pem"],
                      api_url=standin.api_url, job=APP_JOB, storage=s3_modules, compression="zstd", retries=RETRIES)
    done.module("backup_manifest", storage=s3_modules, result=app.result)
    # The restoring role's password as an option (backslash, colon and quote: escaped in the passfile), zstd on S3.
    pg_s3 = done.module("postgres_dump", databases=[pg["database"]], globals=False, job=PG_JOB, storage=s3_modules,
                        compression="zstd", retries=RETRIES, **pg["restore"])
    done.module("backup_manifest", storage=s3_modules, result=pg_s3.result)
    done.module("backup_retention", job=APP_JOB, storage=s3_modules, keep_last=1)
    done.module("backup_manifest", state="verified", all_jobs=True, storage=s3_modules)
    # The backup role, as users run it: an inventory with secrets, notifications on every outcome.
    receiver = Receiver()
    try:
        role_dir = world["root"] / "role"
        role_dir.mkdir()
        hooks = {"backup_notify_on": "always",
                 "backup_notify_slack_webhook": "%s/services/TCOREBACKUP/BSECRETS/%s" % (
                     receiver.url, values["slack webhook secret"]),
                 "backup_notify_webhook": "%s/hook?token=%s" % (receiver.url, values["webhook token"])}
        storages = {"local": {"type": "filesystem", "path": str(role_dir / "store")}, "s3": dict(s3, prefix="role/")}
        jobs = [
            {"name": "role-files", "service": "files", "storage": "local", "verify": True, "retention": {"keep_last": 3},
             "options": {"paths": [world["source"]], "encryption": world["encryption"]}},
            {"name": "role-code", "service": "github", "storage": "s3", "retention": {"keep_last": 3},
             "options": {"organization": ORG, "token": values["github token"], "api_url": standin.api_url,
                         "compression": "zstd", "retries": RETRIES}},
            {"name": "role-mongo", "service": "mongodb", "storage": "s3", "verify": True,
             "options": {"uri": world["uri"], "databases": ["vault"], "encryption": world["encryption"]}},
            {"name": "role-volume", "service": "docker_volume", "storage": "local",
             "options": {"volumes": [world["volume"]], "helper_image": engine.image, "docker_host": engine.url}},
            {"name": "role-postgres", "service": "postgres", "storage": "local", "verify": True,
             "options": dict(pg["backup"], databases=[pg["database"]], encryption=world["encryption"])},
        ]
        inv = inventory(role_dir, jobs, restore_host=True, backup_storages=storages,
                        backup_secrets=[values["backup_secrets value"]],
                        backup_metrics_textfile=str(role_dir / "out" / "corebackup.prom"), **hooks)
        (role_dir / "out").mkdir()
        done.playbook("backup.yml", inv)
        done.playbook("verify.yml", inv)
        done.playbook("report.yml", inv, extra_vars={"backup_report_html": str(role_dir / "out" / "report.html")})
        # The restore host (the same host here): every job's newest set drilled, then an in-place restore of the
        # database, which first backs up what it replaces (a mongo_dump with the secret URI).
        # The drill gets the identity as AWX's credential type hands it (a file where ansible-playbook runs, copied
        # to the restore host for the run: TMPDIR, scanned below); the restore, as a restore host holds it.
        # restore_drill_postgres: backup_restore's postgres option (the restoring role, its password as an option).
        done.playbook("drill.yml", inv, extra_vars={
            "restore_identity_controller_file": world["identity"], "restore_drill_mongo_uri": world["uri"],
            "restore_drill_docker": {"helper_image": engine.image, "docker_host": engine.url},
            "restore_drill_postgres": pg["restore"]})
        done.playbook("restore.yml", inv, extra_vars={
            "restore_job": "role-mongo", "restore_storage": "s3", "restore_items": "vault", "restore_drop": True,
            "restore_confirm": True, "restore_identity_file": world["identity"], "restore_target": {"uri": world["uri"]}})
        with open(world["identity"], encoding="utf-8") as handle:
            identity = handle.read()
        # setup.yml on this machine: its own Python (the discovered one may be a shim), no sudo; the restore host's
        # identity deployed from a variable, as from the vault.
        done.playbook("setup.yml", inv, extra_vars={
            "backup_host_install_packages": False, "backup_host_venv": "", "backup_host_schedule": "none",
            "backup_host_storage_dirs": [{"path": str(role_dir / "store")}], "backup_host_setup_python": sys.executable,
            "ansible_become": False, "backup_host_identity": identity,
            "restore_identity_file": str(role_dir / "restore-host" / "age-identity.txt")})
    finally:
        receiver.shutdown()
    done.posts = receiver.posts
    done.app_tokens = [token.token for token in standin.app_tokens(APP_ID)]
    return done


def scanner_of(known, runs, identities=()):
    secrets_forms = dict(known["forms"])
    for number, token in enumerate(runs.app_tokens):
        secrets_forms["github app installation token %d" % number] = forms(token, basic_user="x-access-token")
    return SecretScanner(secrets_forms, identities=identities)


def redact(known, text):
    """``text`` with every form of every secret replaced by its label, fit to be shown."""
    for label, found in known["forms"].items():
        for form, needle in found.items():
            text = text.replace(needle.decode(), "<%s (%s)>" % (label, form))
    return text


def findings(scanner):
    return "secrets found (label (form) in where):\n" + scanner.report()


def test_every_run_succeeded_and_wrote_what_is_scanned(runs, world, known):
    failed = ["%s: %s" % (name, redact(known, detail)) for name, _text, _argv, ok, detail in runs.runs if not ok]
    assert not failed, "\n".join(failed)
    playbooks = {"playbooks/" + name for name in os.listdir(os.path.join(ROOT, "playbooks")) if name.endswith(".yml")}
    assert playbooks <= {name for name, _text, _argv, _ok, _detail in runs.runs}  # every playbook, a new one too
    assert len(runs.app_tokens) >= 1  # the App's run minted its installation tokens
    assert any(path.startswith("/services/") for path, _body in runs.posts)  # both notifications were posted
    assert any(path.startswith("/hook?") for path, _body in runs.posts)
    stored = [os.path.join(d, f) for d, _dirs, files in os.walk(world["fs"]["path"]) for f in files]
    assert any(path.endswith(".age") for path in stored)  # the module set is encrypted
    database = world["pg"]["database"]
    for store in (world["fs"]["path"], str(world["root"] / "role" / "store" / "role-postgres")):
        names = {os.path.basename(f) for _d, _dirs, files in os.walk(store) for f in files}
        assert any(n.startswith(database + "_") and n.endswith(".dump.age") for n in names), store
        assert any(n.startswith("globals_") and n.endswith(".sql.age") for n in names), store  # as the superuser
    # The module drill restored the database as the restoring role and found what was recorded.
    [drilled] = [r for r in runs.drill.result["restored"] if r["name"] == database]
    assert drilled["status"] == "ok" and drilled["rows"] == 800, drilled
    keys = [o["Key"] for page in world["s3_client"].get_paginator("list_objects_v2").paginate(Bucket=world["bucket"])
            for o in page.get("Contents", [])]
    assert any(k.startswith("modules/%s/" % APP_JOB) and k.endswith(".zst") for k in keys)
    assert any(k.startswith("role/role-code/") for k in keys) and any(k.startswith("role/role-mongo/") for k in keys)
    assert any(k.startswith("modules/%s/" % PG_JOB) and k.endswith(".dump.zst") for k in keys)
    assert any(k.startswith("role/role-mongo-pre-restore/") for k in keys)  # what the restore replaced


@pytest.fixture(scope="module")
def stored_scan(runs, world, known):
    """Every stored byte, every byte a restore wrote, every file the runs left in TMPDIR or wrote for users."""
    scanner = scanner_of(known, runs, identities=(world["identity"],))
    root = world["root"]
    for label, folder in (("module store", world["fs"]["path"]), ("role store", root / "role" / "store"),
                          ("restored", root / "restored"), ("TMPDIR left over", world["tmpdir"]),
                          ("role output", root / "role" / "out")):
        scanner.scan_tree(str(folder), "%s: " % label)
    scanner.scan_s3(world["s3_client"], world["bucket"])
    print("\nscanned: %s" % dict(sorted(scanner.counts.items())))
    return scanner


def test_no_secret_in_any_stored_byte(stored_scan, known):
    scanner = stored_scan
    assert not scanner.unreadable, "layers the scan could not open:\n" + "\n".join(scanner.unreadable)
    assert scanner.counts["age decrypted"] >= 6 and scanner.counts["git objects"] > 0 and scanner.counts["s3 objects"] > 0
    assert scanner.counts["pg_dump archives"] >= 3  # the module's (encrypted, zstd on S3) and the role's, read back
    assert not scanner.findings, findings(scanner)
    # The age recipient is public and may be stored: no form of a secret flags it.
    assert not SecretScanner(known["forms"]).check(known["age_recipient"], "the age recipient")


def test_no_secret_in_a_result_the_output_or_the_ansible_log(runs, known):
    scanner = scanner_of(known, runs)
    for name, texts, _argv, _ok, _detail in runs.runs:
        for kind, text in texts.items():
            scanner.scan_text(text, "%s: %s" % (name, kind))
    for path, body in runs.posts:
        scanner.scan_text(json.dumps(body), "notification body posted to %s" % path.split("?")[0].rsplit("/", 1)[0])
    for record in runs.world["standin"].log:
        scanner.scan_text(record.path or "", "GitHub stand-in request path")
    print("\nscanned: %s" % dict(sorted(scanner.counts.items())))
    assert not scanner.findings, findings(scanner)


def test_no_secret_on_a_command_line(runs, known):
    scanner = scanner_of(known, runs)
    for name, _texts, argv, _ok, _detail in runs.runs:
        scanner.scan_argv(argv, name)
    print("\nscanned: %s" % dict(sorted(scanner.counts.items())))
    assert scanner.counts["argv"] > 100
    assert not scanner.findings, findings(scanner)


def test_the_postgres_passwords_reach_only_the_clients_through_a_0600_passfile_or_their_environment(runs, world):
    """Sampled while the runs ran: every PostgreSQL client of theirs got its password through PGPASSFILE, a 0600 file
    in the runs' TMPDIR (a module's temporary folder), or through PGPASSWORD; no other process of the runs held a
    password in its environment; and no passfile is left once they ended."""
    seen = list(runs.env.seen.values())
    clients = [p for p in seen if p.program in PG_CLIENTS]
    print("\nsampled: %d times, %d processes of the runs, PostgreSQL clients: %s" % (
        runs.env.samples, len(seen), dict(sorted(collections.Counter(p.program for p in clients).items()))))
    # pg_dump and the psql session that holds the dump's snapshot open run long enough to be seen at every sampling.
    assert runs.env.samples > 100 and {"pg_dump", "psql"} <= {p.program for p in clients}, sorted(
        {p.program for p in seen})
    without = sorted({p.program for p in clients if "PGPASSFILE" not in p.kept and "PGPASSWORD" not in p.present})
    assert not without, "PostgreSQL clients of the runs started without a password: %s" % without
    passfiles = {path: mode for p in clients for path, mode in p.modes.items()}
    outside = sorted(path for path in passfiles if not path.startswith(world["tmpdir"] + os.sep))
    assert not outside, "passfiles outside the runs' TMPDIR: %s" % outside
    assert passfiles and all(mode in (0o600, None) for mode in passfiles.values()), {
        path: oct(mode) if mode is not None else "gone" for path, mode in passfiles.items()}
    assert any(mode == 0o600 for mode in passfiles.values())  # seen while there, not only after
    holders = sorted({"%s (%s)" % (p.program, ", ".join(sorted(p.secrets))) for p in seen
                      if p.secrets and p.program not in PG_CLIENTS})
    assert not holders, "processes of the runs other than PostgreSQL's clients with a password in their environment: " \
        "%s" % holders
    assert not [path for path in passfiles if os.path.exists(path)]  # what they held is scanned: TMPDIR left over
