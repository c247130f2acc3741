# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The postgres service: databases dumped by postgres_dump with the genuine ``pg_dump -Fc`` (and the cluster's roles and
settings with ``pg_dumpall --globals-only``), restored by backup_restore with the genuine ``pg_restore`` as a role that
is no superuser, into a staging database renamed into place once the artifact checked out.

The clients get the connection as a libpq connection string without the password; the password reaches them through a
0600 passfile in the module's temporary directory (``PGPASSFILE``), never argv. What a dump holds (rows per table, and
its objects per schema as ``pg_restore -l`` lists them) is counted in the dump's own snapshot: a psql session holds a
REPEATABLE READ transaction open whose exported snapshot every ``pg_dump`` of the database imports."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import tempfile
import urllib.parse
import uuid

from ansible.module_utils.basic import env_fallback

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import command_stream
from ansible_collections.corebackup.backup.plugins.module_utils._restore import Restorer, RestoreError, check_artifact
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceSlice, item_specs

# The connection, alike in postgres_dump and in backup_restore's postgres option.
CONNECTION = dict(
    uri=dict(type="str", no_log=True),
    host=dict(type="str"),
    port=dict(type="int"),
    user=dict(type="str"),
    password=dict(type="str", no_log=True, fallback=(env_fallback, ["PGPASSWORD"])),
    dbname=dict(type="str"),
    ssl_mode=dict(type="str", choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
    ssl_root_cert=dict(type="path"),
    ssl_cert=dict(type="path"),
    ssl_key=dict(type="path", no_log=False),
    bin_dir=dict(type="path"),
)
FILTERS = ("schemas", "exclude_schemas", "tables", "exclude_tables")
SPEC = dict(
    argument_spec=dict(
        CONNECTION,
        databases=dict(type="list", elements="raw", default=[]),
        exclude_databases=dict(type="list", elements="str", default=[]),
        globals=dict(type="bool", default=True),
        compression=dict(type="str", choices=["gzip", "zstd", "none"], default="none"),
        **{name: dict(type="list", elements="str", default=[]) for name in FILTERS}
    ),
    job_default="postgres",
)
KEYWORDS = {k: k.replace("_", "") for k in (  # option -> libpq's keyword
    "host", "port", "user", "dbname", "ssl_mode", "ssl_root_cert", "ssl_cert", "ssl_key")}
GLOBALS = "globals"  # the item of the cluster's roles, tablespaces and role settings
# Rows of the tables with these oids (or of every table of the database), counted in the transaction's snapshot.
COUNT_ROWS = ("SELECT coalesce(json_object_agg(n.nspname || '.' || c.relname, (xpath('/row/c/text()', query_to_xml("
              "format('SELECT count(*) AS c FROM %%s', c.oid::regclass), false, true, '')))[1]::text::bigint), '{}') "
              "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND %s")
USER_TABLES = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'"


def quote(value, mark="'"):
    """A SQL literal (or with ``mark='"'`` an identifier)."""
    return mark + str(value).replace(mark, mark * 2) + mark


class Client:
    """The PostgreSQL clients of a run and how they connect (``params``: the CONNECTION options)."""

    def __init__(self, module, params, tmpdir):
        self.module, self.params = module, params
        self.uri, password = without_password(params["uri"] or "postgresql://")
        self.keywords = {KEYWORDS[k]: str(params[k]) for k in KEYWORDS if params.get(k) is not None}
        if not urllib.parse.urlsplit(self.uri).path.strip("/"):
            self.keywords.setdefault("dbname", "postgres")
        self.keywords["application_name"] = "corebackup.backup"
        self.env = {}
        password = params["password"] or password
        if password:
            module.add_secret(password)
            path = os.path.join(tmpdir, "pgpass-%s" % uuid.uuid4().hex[:8])
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
                handle.write("*:*:*:*:%s\n" % password.replace("\\", "\\\\").replace(":", "\\:"))
            self.env["PGPASSFILE"] = path

    def name(self):
        if "host" in self.keywords:
            return "%s:%s" % (self.keywords["host"], self.keywords.get("port", "5432"))
        return urllib.parse.urlsplit(self.uri).netloc.rpartition("@")[2] or "localhost"

    def bin(self, name):
        where = self.params.get("bin_dir")
        path = os.path.join(where, name) if where else self.module.module.get_bin_path(name)
        if not path or not os.access(path, os.X_OK):
            where = "in bin_dir " + where if where else "on this host (or set bin_dir)"
            raise BackupError("%s is not %s: install PostgreSQL's client programs" % (name, where))
        return path

    def conninfo(self, dbname=None):
        """The connection as a URI without password (its parameters override its parts, the last one wins)."""
        keywords = dict(self.keywords, **({"dbname": dbname} if dbname else {}))
        return self.uri + ("&" if "?" in self.uri else "?") + urllib.parse.urlencode(keywords)

    def run(self, argv, what=None):
        """A client's output; BackupError with its error lines (not only the last, which is often a detail)."""
        rc, out, err = self.module.module.run_command(argv, environ_update=self.env)
        if rc != 0:
            lines = err.strip().splitlines() or ["exit status %d" % rc]
            said = [line for line in lines if re.search(r"(?i)\b(error|fatal)\b", line)] or lines[-1:]
            what = what or os.path.basename(argv[0]) + " failed"
            raise BackupError(self.module.scrub("%s: %s" % (what, " ".join(said[:3]))))
        return out

    def query(self, sql, dbname=None):
        """The JSON value the one-row query returns."""
        out = self.run([self.bin("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.conninfo(dbname),
                        "-c", sql])
        return json.loads(out) if out.strip() else None

    def check_versions(self):
        """The server's major version, once the clients proved at least as new."""
        server = int(self.query("SELECT to_json(current_setting('server_version_num')::int)")) // 10000
        for name in ("pg_dump", "pg_restore"):
            out = self.run([self.bin(name), "--version"])
            client = int(re.search(r"\) (\d+)", out).group(1))
            if client < server:
                raise BackupError("%s is of PostgreSQL %d, older than the server (%d) at %s: install the client "
                                  "programs of %d or newer (bin_dir)" % (name, client, server, self.name(), server))
        return server

    def toc(self, argv, path):
        """pg_restore's listing of the archive ``argv`` writes to ``path``: {schema: {type: count}} and table oids."""
        self.run(argv + ["-f", path])
        objects, tables = {}, []
        for line in self.run([self.bin("pg_restore"), "-l", path]).splitlines():
            # "<id>; <catalog> <oid> <TYPE, in capitals> <schema> <name> <owner>"; a schema's own: "SCHEMA - <schema>"
            match = re.match(r"^\d+; \d+ (\d+) ((?:[A-Z]+ )*[A-Z]+) (\S*) (\S*)", line)
            if match:
                oid, kind, schema, name = match.groups()
                counts = objects.setdefault(name if kind == "SCHEMA" else schema, {})
                counts[kind] = counts.get(kind, 0) + 1
                tables += [oid] if kind == "TABLE" else []
        os.unlink(path)
        return objects, tables


def without_password(uri):
    """A libpq URI without its password (in its user part or its parameters), and the password."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("postgresql", "postgres"):
        raise OptionError("uri must be a postgresql:// URI, got one of scheme %r" % parts.scheme)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    password = urllib.parse.unquote(userinfo.partition(":")[2]) or dict(query).get("password")
    query = urllib.parse.urlencode([(k, v) for k, v in query if k != "password"])
    user = userinfo.partition(":")[0] + at
    return "%s://%s%s%s%s" % (parts.scheme, user, hosts, parts.path, query and "?" + query), password


class Session:
    """A psql session holding a REPEATABLE READ, READ ONLY transaction open; ``snapshot`` is its exported snapshot."""

    def __init__(self, client, dbname):
        self.stderr = tempfile.TemporaryFile()
        # pylint: disable-next=consider-using-with
        self.process = subprocess.Popen([client.bin("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d",
                                         client.conninfo(dbname)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr, env=dict(os.environ, **client.env), text=True)
        self.send("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; "  # as long as the dump
                  "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT pg_export_snapshot();")
        self.snapshot = self.read()

    def send(self, sql):
        self.process.stdin.write(sql + "\n")
        self.process.stdin.flush()

    def read(self):
        """The next line of output: the one row of a query's JSON."""
        line = self.process.stdout.readline()
        if not line:
            self.stderr.seek(0)
            raise BackupError("psql ended: %s" % self.stderr.read().decode("utf-8", "replace").strip()[-2000:])
        return line.strip()

    def close(self, ended):
        """End the transaction (after what it counts, when the dump ``ended``; at once otherwise)."""
        try:
            if ended:
                self.process.communicate("COMMIT;\n")
        finally:
            self.process.kill()  # nothing, once it ended
            self.process.wait()
            self.stderr.close()


class PostgresDump(Service):
    item_kind = "databases"
    entry_fields = {"tables": None, "rows": None, "objects": None, "bytes": None}

    def __init__(self, module):
        super().__init__(module)
        self.client = Client(module, self.params, module.module.tmpdir)
        self.specs = {s["name"]: s for s in item_specs(self.params["databases"], "databases", "name", FILTERS)}
        self.server = None

    def discover(self):
        self.server = self.client.check_versions()
        names = self.client.query("SELECT coalesce(json_agg(datname ORDER BY datname), '[]') FROM pg_database "
                                  "WHERE NOT datistemplate AND datallowconn")
        wanted = [n for n in (list(self.specs) or names) if n not in self.params["exclude_databases"]]
        if self.params["globals"] and GLOBALS in wanted:
            raise OptionError("the database %s would share its name with the item of the cluster's roles and settings: "
                              "exclude it, or set globals: false" % GLOBALS)
        return ([Item(GLOBALS)] if self.params["globals"] else []) + [
            Item(n, data=n, error=None if n in names else "database %s does not exist" % n) for n in sorted(wanted)]

    def source(self):
        return {"type": "postgres", "name": self.client.name()}

    def preview(self, item, entry):
        if item.data:
            entry["bytes"] = self.client.query("SELECT to_json(pg_database_size(%s))" % quote(item.data))

    def filters(self, item):
        spec = self.specs.get(item.data) or {}
        flags = dict(zip(FILTERS, ("--schema=", "--exclude-schema=", "--table=", "--exclude-table=")))
        return [flags[f] + pattern for f in FILTERS for pattern in (spec.get(f) or self.params[f])]

    def produce(self, item, recorded, entry):
        client = self.client
        if item.data is None:
            argv = [client.bin("pg_dumpall"), "--globals-only", "--dbname=" + client.conninfo()]
            return self.store(item, "sql", command_stream(argv, env=client.env), {"format": "pg_dumpall globals"})
        level = min(max(self.params["compression_level"], 0), 9) if self.params["compression"] == "none" else 0
        session, ended = Session(client, item.data), False
        try:
            argv = [client.bin("pg_dump"), "--snapshot=" + session.snapshot, "-d", client.conninfo(item.data)]
            argv += self.filters(item)
            objects, tables = client.toc(argv + ["-Fc", "--schema-only"], os.path.join(
                self.module.module.tmpdir, "toc-%s" % uuid.uuid4().hex[:8]))
            session.send(COUNT_ROWS % ("c.oid IN (%s)" % ",".join(tables or ["0"])) + ";")
            counts = {}

            def contents():
                counts.update(json.loads(session.read()))
                return {"format": "pg_dump custom", "tables": counts, "objects": objects}
            artifact = self.store(item, "dump", command_stream(argv + ["-Fc", "-Z%d" % level], env=client.env),
                                  {"format": "pg_dump custom", "database": item.data, "server_version": self.server},
                                  contents=contents)
            ended = True
        finally:
            session.close(ended)
        entry.update(tables=len(counts), rows=sum(counts.values()),
                     objects=sum(sum(kinds.values()) for kinds in objects.values()))
        return artifact


class PostgresRestorer(Restorer):
    """PostgreSQL databases, with pg_restore into a staging database renamed into place once the artifact checked
    out; the roles and settings of the cluster with psql, only when asked. As a role that is no superuser: a dump is
    SQL that runs as the restoring role (a hostile one must not reach COPY ... TO PROGRAM)."""

    SPEC = dict(
        postgres=dict(type="dict", options=CONNECTION),
        target_database=dict(type="str", default="{database}_restored_{date}"),
        restore_globals=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
    )
    UNSAFE = ("pg_execute_server_program", "pg_write_server_files", "pg_read_server_files")

    def __init__(self, runner):
        super().__init__(runner)
        if not self.params["postgres"]:
            raise OptionError("postgres (the server to restore PostgreSQL items into) is required for them")
        self.client = Client(self.module, self.params["postgres"], runner.scratch)
        self.tag = uuid.uuid4().hex[:8]
        self.globals = None  # the result of the globals, once restored
        self.check_role()

    def check_role(self):
        """Refuse a role that could run programs or write files on the server (again after the globals ran: on
        PostgreSQL 15 and older, a role with CREATEROLE may grant itself pg_execute_server_program)."""
        role = self.client.query(
            "SELECT json_build_object('name', rolname, 'super', rolsuper, 'createdb', rolcreatedb, 'unsafe', %s) FROM "
            "pg_roles WHERE rolname = current_user" % " OR ".join("pg_has_role(current_user, %s, 'MEMBER')" % quote(r)
                                                                  for r in self.UNSAFE))
        if role["super"] or role["unsafe"]:
            raise OptionError("refusing to restore as %s, a superuser or a member of %s: a dump is SQL that runs as "
                              "the restoring role; use a role that owns the target databases and has CREATEDB"
                              % (role["name"], "/".join(self.UNSAFE)))
        if not role["createdb"]:
            raise OptionError("the role %s cannot create databases (CREATEDB), which a restore needs" % role["name"])

    def target(self, item):
        if is_globals(item):
            return "the roles and settings of %s" % self.client.name()
        name = self.params["target_database"].format(database=item["name"], date=self.runner.date.replace("-", ""))
        if not name or len(name.encode("utf-8")) > 63:
            raise OptionError("target_database: %r is not a PostgreSQL database name (1 to 63 bytes)" % name)
        return name

    def exists(self, name):
        return self.client.query("SELECT to_json(count(*) > 0) FROM pg_database WHERE datname = %s" % quote(name))

    def load(self, item, result, into):
        """Stream the artifact into pg_restore (into the new database ``into``); ``into`` is gone if it fails."""
        client = self.client
        client.query("CREATE DATABASE %s TEMPLATE template0" % quote(into, '"'))
        argv = [client.bin("pg_restore"), "--no-owner", "--exit-on-error", "-d", client.conninfo(into)]
        try:
            feed(argv, self.runner.stream(item), client.env, "pg_restore")
        except BaseException:
            client.query("DROP DATABASE IF EXISTS %s" % quote(into, '"'))
            raise
        result["checksum"] = "ok"

    def restore(self, item, result):
        if is_globals(item):
            self.restore_globals(item, result)
            return
        if self.params["restore_globals"] and self.globals is None:  # first, for the grants to its roles
            found = [i for i in self.runner.choose()[1] if is_globals(i)]
            if not found:
                raise OptionError("restore_globals: name the item %s among items too" % GLOBALS)
            self.restore_globals(found[0], {})
        target = self.target(item)
        if self.exists(target) and not self.params["force"]:
            raise RestoreError("the database %s exists: set force to replace it (after a pre-restore backup), or "
                               "choose another target_database" % target)
        staging = quote("corebackup_restore_%s" % self.tag, '"')
        self.load(item, result, staging[1:-1])
        old = quote("corebackup_replaced_%s" % self.tag, '"') if self.exists(target) else None
        try:
            if old:
                self.client.query("ALTER DATABASE %s RENAME TO %s" % (quote(target, '"'), old))
            self.client.query("ALTER DATABASE %s RENAME TO %s" % (staging, quote(target, '"')))
        except BackupError as exc:
            self.client.query("DROP DATABASE IF EXISTS %s" % staging)
            raise RestoreError("the database %s could not be replaced, so it was left as it was (%s): its owner must "
                               "restore, with no one connected to it" % (target, exc)) from None
        if old:
            self.client.query("DROP DATABASE %s" % old)
        result["target"] = target

    def restore_globals(self, item, result):
        if not self.params["restore_globals"]:
            check_artifact(self.runner.stream(item), result)
            result.update(target=self.target(item), restored=False)
            return
        if self.globals is None:  # psql in restricted mode: no meta-command of the file (\! runs a shell) is run
            key, psql = uuid.uuid4().hex, [self.client.bin("psql"), "-X", "-q", "-d", self.client.conninfo()]
            self.client.run(psql + ["-v", "ON_ERROR_STOP=1", "-c", "\\restrict " + key, "-c", "\\unrestrict " + key],
                            "psql cannot run a backup's SQL restricted (\\restrict: 15.14, 16.10, 17.6 or newer)")
            output = feed(psql + ["-v", "ON_ERROR_STOP=0", "-f", "-"], self.runner.stream(item), self.client.env,
                          "psql", head=b"\\restrict %s\n" % key.encode())
            errors = [line for line in output.splitlines() if "ERROR:" in line]
            if errors:  # the roles that exist already, above all
                self.module.warn("%d statements of %s failed (roles that exist are among them): %s"
                                 % (len(errors), item["key"], "; ".join(errors[:5])))
            self.globals = dict(checksum="ok", target=self.target(item), restored=True, errors=len(errors))
            self.check_role()
        result.update(self.globals)

    def drill(self, item, result):
        if is_globals(item):  # SQL that only a restore runs: its checksum
            self.check(item, result)
            self.runner.compare(result, {}, {})
            return
        scratch = "corebackup_drill_%s" % self.tag
        self.load(item, result, scratch)
        try:
            recorded = item["artifact"].get("contents") or {}
            objects, _tables = self.client.toc([self.client.bin("pg_dump"), "-d", self.client.conninfo(scratch), "-Fc",
                                                "--schema-only"], os.path.join(self.runner.scratch, "toc-" + self.tag))
            counts = self.client.query(COUNT_ROWS % USER_TABLES, scratch)
        finally:
            self.client.query("DROP DATABASE IF EXISTS %s" % quote(scratch, '"'))
        facts = {"rows of " + t: n for t, n in (recorded.get("tables") or {}).items()}
        facts.update({"objects in " + s: o for s, o in (recorded.get("objects") or {}).items()})
        restored = {"rows of " + t: counts.get(t) for t in recorded.get("tables") or {}}
        restored.update({"objects in " + s: objects.get(s, {}) for s in recorded.get("objects") or {}})
        result["rows"] = sum(counts.values())
        self.runner.compare(result, facts, restored)

    def pre_restore(self, items):
        """postgres_dump of the databases the restore replaces, those that exist."""
        existing = [self.target(i) for i in items if i["name"] != GLOBALS and self.exists(self.target(i))]
        options = {k: v for k, v in self.params["postgres"].items() if v is not None}
        return dict(options, databases=existing, globals=False) if existing else None


def feed(argv, stream, env, what, head=b""):
    """Stream an artifact's plain bytes into a command's stdin (read to its end, and checked, whatever the command
    reads of it); the command's output, once it succeeded."""
    with tempfile.TemporaryFile() as output:
        # pylint: disable-next=consider-using-with
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, **env))
        pipe = process.stdin
        try:
            for chunk in itertools.chain([head], stream.chunks()):
                if pipe is not None:
                    try:
                        pipe.write(chunk)
                    except BrokenPipeError:  # it ended: the rest is still read, for the check
                        with contextlib.suppress(OSError):
                            pipe.close()
                        pipe = None
            if pipe is not None:
                pipe.close()
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    stream.check()
    if returncode != 0:
        raise RestoreError("%s failed on %s: %s" % (what, stream.artifact["key"], text.strip()[-2000:]))
    return text


def is_globals(item):
    return (item["artifact"].get("metadata") or {}).get("format") == "pg_dumpall globals"


SLICE = ServiceSlice(name="postgres", module="postgres_dump", spec=SPEC, backup=PostgresDump,
                     restorer=PostgresRestorer, restore_spec=PostgresRestorer.SPEC)
