#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mongo_dump
short_description: Back up MongoDB databases in the archive format that mongorestore restores
version_added: 0.1.0
description:
  - Stores one artifact per database (or one for the whole run), C(<database>_<timestamp>.archive.gz) (or
    C(.zst), C(.age) when encrypted), in mongodump's archive format, which C(mongorestore --archive)
    restores. Documents are streamed as the raw BSON the server sends, never decoded, through the shared
    pipeline with bounded memory.
  - Collection metadata (options, indexes, UUID, type; views as views) is written as mongodump writes it.
    The artifact's record lists every collection with its documents and bytes, for restore drills.
  - Without O(oplog), all collections are read in one snapshot session where the server supports
    snapshot reads (MongoDB 5.0 and newer, replica sets), so the dump is consistent across collections;
    otherwise each collection is read on its own and the result warns. With O(oplog) (a replica set, the
    whole server in one artifact), the oplog position is taken before the dump and the entries written
    during it are stored as mongodump's C(--oplog) does, for C(mongorestore --oplogReplay).
  - The URI's credentials never appear in a result, a log, an archive or a process list.
  - There is no cheap fingerprint of a database's content, so every run dumps every database.
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - corebackup.backup.common
  - corebackup.backup.common.packing
  - corebackup.backup.common.service
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Connects and lists what would be dumped, with estimated document counts and sizes.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  uri:
    description:
      - MongoDB connection string. If not set, the E(MONGO_URI) environment variable is used.
    type: str
    required: true
  tls:
    description: Use TLS (also when the URI does not say so).
    type: bool
    default: false
  tls_ca_file:
    description: CA certificates to check the server's certificate with.
    type: path
  tls_certificate_key_file:
    description: Client certificate and key (PEM) for X.509 authentication.
    type: path
  read_preference:
    description: Which members to read from.
    type: str
    choices: [primary, primaryPreferred, secondary, secondaryPreferred, nearest]
    default: secondaryPreferred
  databases:
    description:
      - Databases to dump, each a name or a dictionary with C(name) and any of C(collections) (only these),
        C(exclude_collections), and C(query) (a dictionary of collection name to a filter in Extended JSON).
      - Empty means every database but C(admin), C(local) and C(config).
    type: list
    elements: raw
    default: []
  exclude_databases:
    description: Databases left out.
    type: list
    elements: str
    default: []
  strategy:
    description:
      - V(pymongo) streams with the driver and needs nothing else on the host.
      - V(mongodump) runs the official C(mongodump --archive) (it must be on the host), its output streamed;
        the credentials reach it through a 0600 C(--config) file in the module's temporary directory.
    type: str
    choices: [pymongo, mongodump]
    default: pymongo
  oplog:
    description:
      - A point-in-time dump with mongodump's C(--oplog) semantics. Needs a replica set and O(split=run).
    type: bool
    default: false
  split:
    description:
      - V(database), one artifact per database; V(run), one artifact for all of them, named after O(job).
    type: str
    choices: [database, run]
    default: database
  include_users_and_roles:
    description: With O(split=run), also dump C(admin.system.users), C(admin.system.roles) and C(admin.system.version).
    type: bool
    default: false
  parallel_collections:
    description: How many collections of one artifact are read at once.
    type: int
    default: 2
  job:
    description: Name of the backup job.
    type: str
    default: mongodb
requirements:
  - pymongo
  - fastcrc (recommended; without it the archive's checksums are computed slowly in Python)
"""

EXAMPLES = r"""
- name: Dump two databases, one with a filtered collection
  corebackup.backup.mongo_dump:
    uri: "{{ vault_mongo_uri }}"
    databases:
      - app
      - name: events
        exclude_collections: [cache]
        query: {audit: '{"ts": {"$gte": {"$date": "2026-01-01T00:00:00Z"}}}'}
    storage: {type: s3, bucket: backups, prefix: mongo/}

- name: A point-in-time dump of the whole replica set
  corebackup.backup.mongo_dump:
    uri: "{{ vault_mongo_uri }}"
    split: run
    oplog: true
    storage: {type: filesystem, path: /mnt/backups}
"""

RETURN = r"""
entries:
  description:
    - One entry per artifact (a database, or the run), in the form every service module returns; C(databases)
      is the same list. Besides C(key), C(size) and C(sha256), C(collections) (by namespace, its C(documents)
      and C(bytes), or its C(type) V(view)), C(documents) and C(bytes) (BSON bytes dumped).
  returned: always
  type: list
  elements: dict
databases:
  description: The same list as RV(entries).
  returned: always
  type: list
  elements: dict
status:
  description: V(success), V(partial) (some databases failed, the others are in the set) or V(failed).
  returned: always
  type: str
strategy:
  description: The strategy used.
  returned: always
  type: str
consistency:
  description: V(snapshot), V(oplog) or V(per-collection) (each collection read on its own).
  returned: always
  type: str
oplog:
  description: With O(oplog), C(start) and C(end) (timestamps as C(seconds:increment)) and C(entries).
  returned: when O(oplog)
  type: dict
artifacts:
  description: The artifacts stored, in the shared Artifact form.
  returned: always
  type: list
  elements: dict
job:
  description: The job.
  returned: always
  type: str
source:
  description: What was backed up, the C(type) V(mongodb) and the hosts as C(name) (no credentials).
  returned: always
  type: dict
totals:
  description: Counts by status, C(bytes) stored and C(seconds).
  returned: always
  type: dict
cleaned:
  description: Leftovers of killed runs older than a day that were removed.
  returned: always
  type: list
  elements: str
"""

import os
import queue
import shutil
import threading

from ansible_collections.corebackup.backup.plugins.module_utils import _mongo as archive
from ansible_collections.corebackup.backup.plugins.module_utils._common import COLLECTION_VERSION
from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import command_stream, run_in_thread
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceRunner
from ansible_collections.corebackup.backup.plugins.module_utils._specs import MONGODB

try:
    import bson.json_util
    import pymongo
    import pymongo.errors
    import pymongo.uri_parser
    HAS_PYMONGO = True
    PYMONGO_IMP_ERR = None
except ImportError as _imp_exc:  # pragma: no cover - depends on the host
    HAS_PYMONGO = False
    PYMONGO_IMP_ERR = _imp_exc

SKIPPED_DATABASES = ("admin", "local", "config")
USERS_AND_ROLES = ("system.users", "system.roles", "system.version")
TOOL_VERSION = "corebackup.backup " + COLLECTION_VERSION
BATCH = 1000  # documents per batch read: about a megabyte of ordinary documents (the server caps a batch at 16 MB)


class MongoDump(Service):
    source_type = "mongodb"
    item_kind = "databases"
    entry_fields = {"collections": {}, "documents": None, "bytes": None}

    def __init__(self, module):
        super().__init__(module)
        if not HAS_PYMONGO:
            raise BackupError("mongo_dump needs the pymongo Python library on the backup host: %s" % PYMONGO_IMP_ERR)
        self.item_errors = (pymongo.errors.PyMongoError,)
        params = self.params
        try:
            parsed = pymongo.uri_parser.parse_uri(params["uri"])
        except (pymongo.errors.InvalidURI, pymongo.errors.ConfigurationError, ValueError) as exc:
            raise OptionError("uri is not a MongoDB connection string: %s" % module.scrub(exc)) from None
        module.add_secret(parsed.get("password"))
        self.hosts = ",".join("%s:%s" % node for node in parsed["nodelist"]) or "mongodb+srv"
        if params["oplog"] and params["split"] != "run":
            raise OptionError("oplog needs split: run (the oplog belongs to the whole server, as with mongodump --oplog)")
        if params["include_users_and_roles"] and params["split"] != "run":
            raise OptionError("include_users_and_roles needs split: run")
        self.specs = self.database_specs(params["databases"])
        options = {"readPreference": params["read_preference"], "serverSelectionTimeoutMS": 15000,
                   "appname": "corebackup.backup"}
        if params["tls"]:
            options["tls"] = True
        if params["tls_ca_file"]:
            options["tlsCAFile"] = params["tls_ca_file"]
        if params["tls_certificate_key_file"]:
            options["tlsCertificateKeyFile"] = params["tls_certificate_key_file"]
        self.client = pymongo.MongoClient(params["uri"], **options)
        self.consistency = "oplog" if params["oplog"] else "unknown"
        self.oplog = None

    @staticmethod
    def database_specs(items):
        specs = {}
        for item in items:
            spec = {"name": item} if isinstance(item, str) else item
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or set(spec) - {
                    "name", "collections", "exclude_collections", "query"}:
                raise OptionError("databases: each item is a name or a dictionary with name, collections, "
                                  "exclude_collections, query; got %r" % (item,))
            queries = {}
            for collection, text in (spec.get("query") or {}).items():
                try:
                    queries[collection] = bson.json_util.loads(text) if isinstance(text, str) else text
                except ValueError as exc:
                    raise OptionError("databases: %s: the query of %s is not Extended JSON: %s"
                                      % (spec["name"], collection, exc)) from None
                if not isinstance(queries[collection], dict):
                    raise OptionError("databases: %s: the query of %s is not a document" % (spec["name"], collection))
            specs[spec["name"]] = dict(spec, query=queries)
        return specs

    # -- discovery ------------------------------------------------------------------------------
    def discover(self):
        try:
            hello = self.client.admin.command("hello")
            names = self.client.list_database_names()
        except pymongo.errors.OperationFailure as exc:
            raise BackupError("MongoDB refused %s: %s" % (self.hosts, self.module.scrub(exc))) from None
        except pymongo.errors.PyMongoError as exc:
            raise BackupError("cannot reach MongoDB at %s: %s" % (self.hosts, self.module.scrub(exc))) from None
        if self.params["oplog"] and not hello.get("setName"):
            raise OptionError("oplog needs a replica set; %s is a standalone server" % self.hosts)
        self.server_version = self.client.server_info().get("version", "")
        wanted = list(self.specs) or [n for n in names if n not in SKIPPED_DATABASES]
        wanted = [n for n in wanted if n not in self.params["exclude_databases"]]
        items = [Item(name, data=[name], error=None if name in names else "database %s does not exist" % name)
                 for name in sorted(wanted)]
        if self.params["split"] == "run":
            missing = [item.error for item in items if item.error]
            items = [Item(self.module.job, data=[i.name for i in items if not i.error], error="; ".join(missing) or None)]
        return items

    def snapshot_session(self):
        """A session whose reads all see one point in time, where the server has snapshot reads; one per
        artifact (a session serves one thread at a time, so its collections are read one after another)."""
        if self.params["oplog"] or self.module.check_mode:
            return None
        session = self.client.start_session(snapshot=True)
        try:
            next(iter(self.client.get_database("admin").list_collections(session=session)), None)
        except pymongo.errors.PyMongoError as exc:
            session.end_session()
            if self.consistency != "per-collection":
                self.module.warn("snapshot reads are not available on %s (%s): each collection is read on its own"
                                 % (self.hosts, self.module.scrub(exc)))
            self.consistency = "per-collection"
            return None
        self.consistency = "snapshot"
        return session

    def source(self):
        return {"type": "mongodb", "name": self.hosts}

    def result(self):
        extra = {"strategy": self.params["strategy"],
                 "consistency": "per-collection" if self.consistency == "unknown" else self.consistency}
        if self.oplog is not None:
            extra["oplog"] = self.oplog
        return extra

    # -- what an artifact holds -------------------------------------------------------------------
    def collections(self, database, session=None):
        """[(collection info, filter)] of a database, as the options select them."""
        spec = self.specs.get(database, {})
        found = []
        for info in self.client[database].list_collections(session=session):
            name = info["name"]
            if name.startswith("system.") and not (database == "admin" and self.params["include_users_and_roles"]
                                                   and name in USERS_AND_ROLES):
                continue
            if spec.get("collections") and name not in spec["collections"]:
                continue
            if name in (spec.get("exclude_collections") or []):
                continue
            found.append((info, spec["query"].get(name, {}) if spec else {}))
        if self.params["include_users_and_roles"] and database == "admin":
            return found
        return sorted(found, key=lambda entry: entry[0]["name"])

    def plan(self, item, entry):
        for database in item.data:
            for info, _query in self.collections(database):
                namespace = "%s.%s" % (database, info["name"])
                if info.get("type") == "view":
                    entry["collections"][namespace] = {"type": "view"}
                    continue
                collection = self.client[database][info["name"]]
                entry["collections"][namespace] = {"documents": collection.estimated_document_count()}

    def produce(self, item, recorded, entry):
        databases = list(item.data)
        if self.params["split"] == "run" and self.params["include_users_and_roles"] and "admin" not in databases:
            databases.insert(0, "admin")
        counts = {}
        session = None
        if self.params["strategy"] == "mongodump":
            stream = self.mongodump(item)
        else:
            session = self.snapshot_session()
            stream = run_in_thread(lambda sink: self.write_archive(sink, databases, counts, session), name="mongo")

        def contents():
            return {"format": archive.FORMAT, "collections": counts}

        try:
            artifact = self.store(item, "archive", stream, {"format": archive.FORMAT, "databases": ",".join(item.data)},
                                  contents=contents)
        finally:
            if session is not None:
                session.end_session()
        entry.update(collections=counts, documents=sum(c.get("documents", 0) for c in counts.values()),
                     bytes=sum(c.get("bytes", 0) for c in counts.values()))
        return artifact

    # -- the pymongo strategy ---------------------------------------------------------------------
    def write_archive(self, sink, databases, counts, session):
        """Header, prelude, then the collections' raw batches, read by parallel_collections threads (one
        when a snapshot session reads them)."""
        plan = []
        for database in databases:
            for info, query in self.collections(database, session):
                indexes = [] if info.get("type") == "view" else list(
                    self.client[database][info["name"]].list_indexes(session=session))
                plan.append((database, info, query, archive.collection_metadata(info, indexes)))
        oplog_start = self.oplog_time() if self.params["oplog"] else None
        sink.write(archive.header(self.server_version, self.params["parallel_collections"], TOOL_VERSION))
        sink.write(archive.prelude((db, info["name"], metadata, info.get("type", "")) for db, info, _q, metadata in plan))
        segments = queue.Queue(maxsize=1)  # memory: a batch per reader, and one waiting
        todo = queue.Queue()
        for entry in plan:
            todo.put(entry)
        parallel = 1 if session is not None else max(1, min(self.params["parallel_collections"], len(plan)))
        workers = [threading.Thread(target=self.read_collections, args=(todo, segments, counts, session), daemon=True)
                   for _worker in range(parallel)]
        for worker in workers:
            worker.start()
        running = len(workers)
        while running:
            part = segments.get()
            if part is None:
                running -= 1
            elif isinstance(part, BaseException):
                raise part
            else:
                for piece in part:
                    sink.write(piece)
        if oplog_start is not None:
            self.write_oplog(sink, oplog_start, counts)

    def read_collections(self, todo, segments, counts, session):
        try:
            while True:
                try:
                    database, info, query, _metadata = todo.get_nowait()
                except queue.Empty:
                    break
                name, crc, documents, size = info["name"], None, 0, 0
                if info.get("type") != "view":
                    cursor = self.client[database][name].find_raw_batches(query, session=session, batch_size=BATCH)
                    for batch in cursor:
                        crc = archive.crc64(batch, crc)
                        documents += archive.count_documents(batch)
                        size += len(batch)
                        segments.put(archive.segment_parts(database, name, batch))
                segments.put([archive.eof(database, name, crc if crc is not None else 0)])
                counts["%s.%s" % (database, name)] = {"documents": documents, "bytes": size} if info.get(
                    "type") != "view" else {"type": "view"}
            segments.put(None)
        except BaseException as exc:  # pylint: disable=broad-exception-caught
            segments.put(exc)

    def oplog_time(self):
        newest = self.client.local["oplog.rs"].find_one({}, sort=[("$natural", -1)])
        if newest is None:
            raise BackupError("the oplog of %s is empty" % self.hosts)
        return newest["ts"]

    def write_oplog(self, sink, start, counts):
        """The oplog entries written while the collections were read, as mongodump --oplog stores them."""
        end = self.oplog_time()
        crc, entries = None, 0
        oplog = self.client.local["oplog.rs"]
        for batch in oplog.find_raw_batches({"ts": {"$gte": start, "$lte": end}}, batch_size=BATCH):
            crc = archive.crc64(batch, crc)
            entries += archive.count_documents(batch)
            for piece in archive.segment_parts(archive.OPLOG_NAMESPACE[0], archive.OPLOG_NAMESPACE[1], batch):
                sink.write(piece)
        if oplog.find_one({"ts": start}) is None:
            raise BackupError("the oplog rolled over during the dump: entries of the dump were lost; make the oplog "
                              "larger or the dump faster")
        sink.write(archive.eof(archive.OPLOG_NAMESPACE[0], archive.OPLOG_NAMESPACE[1], crc if crc is not None else 0))
        counts["oplog"] = {"documents": entries}
        self.oplog = {"start": "%d:%d" % (start.time, start.inc), "end": "%d:%d" % (end.time, end.inc),
                      "entries": entries}

    # -- the mongodump strategy -------------------------------------------------------------------
    def mongodump(self, item):
        binary = shutil.which("mongodump")
        if not binary:
            raise BackupError("strategy mongodump needs the mongodump command on the backup host")
        config = os.path.join(self.module.module.tmpdir, "mongodump-%s.yml" % item.key_name)
        with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
            handle.write("uri: %s\n" % bson.json_util.dumps(self.params["uri"]))
        argv = [binary, "--config=" + config, "--archive", "--quiet",
                "--numParallelCollections=%d" % self.params["parallel_collections"]]
        if self.params["oplog"]:
            argv.append("--oplog")
        if self.params["split"] == "database":
            argv.append("--db=" + item.data[0])
        return command_stream(argv)


def main():
    module = BackupModule(packing=True, **MONGODB)
    module.run(lambda m: ServiceRunner(m, MongoDump(m)).run())


if __name__ == "__main__":
    main()
