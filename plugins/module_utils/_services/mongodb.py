# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The mongodb service: databases dumped by mongo_dump in mongodump's archive format (pymongo, or the
mongodump command), restored by backup_restore into scratch collections renamed into place, with the
dump's oplog replayed. Its clients register the URI's password with the module wrapper when they parse it."""

from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid

from ansible.module_utils.basic import env_fallback

from ansible_collections.corebackup.backup.plugins.module_utils import _mongo as archive
from ansible_collections.corebackup.backup.plugins.module_utils._common import COLLECTION_VERSION
from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import command_stream, run_in_thread
from ansible_collections.corebackup.backup.plugins.module_utils._restore import Restorer, RestoreError
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceSlice, item_specs
from ansible_collections.corebackup.backup.plugins.module_utils._mongo import HAS_PYMONGO, PYMONGO_IMP_ERR

if HAS_PYMONGO:  # _mongo guards the import
    import bson.errors
    import bson.json_util
    import pymongo
    import pymongo.errors
    import pymongo.uri_parser
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

SPEC = dict(
    argument_spec=dict(
        uri=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["MONGO_URI"])),
        tls=dict(type="bool", default=False),
        tls_ca_file=dict(type="path"),
        tls_certificate_key_file=dict(type="path", no_log=False),
        read_preference=dict(type="str", default="secondaryPreferred",
                             choices=["primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"]),
        databases=dict(type="list", elements="raw", default=[]),
        exclude_databases=dict(type="list", elements="str", default=[]),
        strategy=dict(type="str", choices=["pymongo", "mongodump"], default="pymongo"),
        oplog=dict(type="bool", default=False),
        split=dict(type="str", choices=["database", "run"], default="database"),
        include_users_and_roles=dict(type="bool", default=False),
        parallel_collections=dict(type="int", default=2),
    ),
    job_default="mongodb",
)

SKIPPED_DATABASES = ("admin", "local", "config")
USERS_AND_ROLES = ("system.users", "system.roles", "system.version")
TOOL_VERSION = "corebackup.backup " + COLLECTION_VERSION
BATCH = 1000  # documents per batch read: about a megabyte of ordinary documents (the server caps a batch at 16 MB)


class MongoDump(Service):
    item_kind = "databases"
    entry_fields = {"collections": {}, "documents": None, "bytes": None}

    def __init__(self, module):
        super().__init__(module)
        if not HAS_PYMONGO:
            raise BackupError("mongo_dump needs the pymongo Python library on the backup host: %s" % PYMONGO_IMP_ERR)
        self.item_errors = (pymongo.errors.PyMongoError,)
        params = self.params
        self.hosts = ",".join("%s:%s" % node for node in parse_uri(module, params["uri"])["nodelist"]) or "mongodb+srv"
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
        self.client = connect(module, params["uri"], **options)
        self.consistency = "oplog" if params["oplog"] else "unknown"
        self.oplog = None

    @staticmethod
    def database_specs(items):
        specs = {}
        for spec in item_specs(items, "databases", "name", ("collections", "exclude_collections", "query")):
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

    def preview(self, item, entry):
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


class MongoRestorer(Restorer):
    """MongoDB collections: into scratch collections first, renamed into place once the artifact checks out; then
    the dump's oplog replayed."""

    SPEC = dict(
        uri=dict(type="str", no_log=True, fallback=(env_fallback, ["MONGO_URI"])),
        drop=dict(type="bool", default=False),
        ns_from=dict(type="str"),
        ns_to=dict(type="str"),
        oplog_replay=dict(type="bool", default=True),
    )
    BATCH = 1000

    def __init__(self, runner):
        super().__init__(runner)
        if not HAS_PYMONGO:
            raise BackupError("restoring MongoDB needs the pymongo Python library on the host: %s" % PYMONGO_IMP_ERR)
        if not self.params["uri"]:
            raise OptionError("uri is required to restore MongoDB items (or MONGO_URI)")
        if bool(self.params["ns_from"]) != bool(self.params["ns_to"]):
            raise OptionError("ns_from and ns_to go together")
        self.client = connect(self.module, self.params["uri"], serverSelectionTimeoutMS=15000)
        self.tag = uuid.uuid4().hex[:8]

    def rename(self, database):
        source, target = (self.params["ns_from"] or "").rstrip(".*"), (self.params["ns_to"] or "").rstrip(".*")
        return target if source and database == source else database

    def target(self, item):
        return "the MongoDB server of uri"

    def replaces(self):
        return bool(self.params["drop"])

    def load(self, item, result, rename):
        """Stream the archive into scratch collections: {(db, name): (scratch, metadata, type)}, oplog entries."""
        stream = self.runner.stream(item)
        events = archive.read_archive(stream.reader())
        collections, pending, oplog, documents, ended = {}, {}, [], 0, set()
        try:
            for event in self.events(item, events):
                if event[0] == "collection":
                    _kind, db, name, metadata, ctype = event
                    target = (rename(db), name)
                    if ctype != "view" and not self.params["drop"] and not self.runner.drilling and \
                            name in self.client[target[0]].list_collection_names():
                        raise RestoreError("%s.%s exists: set drop to replace it" % target)
                    collections[(db, name)] = (target, "corebackup_restore_%s_%s" % (self.tag, name),
                                               bson_loads(metadata), ctype)
                elif event[0] == "document":
                    _kind, db, name, raw = event
                    if (db, name) == archive.OPLOG_NAMESPACE:
                        oplog.append(raw)
                        continue
                    batch = pending.setdefault((db, name), [])
                    batch.append(RawBSONDocument(raw))
                    documents += 1
                    if len(batch) >= self.BATCH:
                        self.flush(collections[(db, name)], batch)
                elif event[0] == "eof":
                    _kind, db, name, expected, crc = event
                    if expected != crc:
                        raise RestoreError("%s.%s: the archive's checksum does not match its documents" % (db, name))
                    ended.add((db, name))
                    if (db, name) in collections and collections[(db, name)][3] != "view":
                        self.flush(collections[(db, name)], pending.pop((db, name), []), create=True)
            unfinished = sorted("%s.%s" % key for key, collection in collections.items()
                                if collection[3] != "view" and key not in ended)
            if unfinished:
                raise RestoreError("%s is not a complete mongodump archive: it ends before the end of %s"
                                   % (item["key"], ", ".join(unfinished)))
            stream.check()
        except BaseException:
            self.drop_scratch(collections)
            raise
        result.update(checksum="ok", documents=documents)
        return collections, oplog

    @staticmethod
    def events(item, events):
        """The archive's events; a malformed or truncated archive is a RestoreError that names the artifact."""
        try:
            yield from events
        except (ValueError, bson.errors.BSONError, KeyError) as exc:
            raise RestoreError("%s is not a complete mongodump archive: %s" % (item["key"], exc)) from None

    def flush(self, collection, batch, create=False):
        (database, _name), scratch, metadata, _ctype = collection
        target = self.client[database]
        if scratch not in target.list_collection_names():
            options = dict(metadata.get("options") or {})
            target.create_collection(scratch, **options)
        if batch:
            target[scratch].insert_many(batch, ordered=False)
            del batch[:]

    def drop_scratch(self, collections):
        for (database, _name), scratch, _metadata, ctype in collections.values():
            if ctype != "view":
                self.client[database].drop_collection(scratch)

    def restore(self, item, result):
        collections, oplog = self.load(item, result, self.rename)
        for (database, name), scratch, metadata, ctype in collections.values():
            if ctype == "view":
                continue
            self.indexes(database, scratch, metadata)
            self.client.admin.command("renameCollection", "%s.%s" % (database, scratch), to="%s.%s" % (database, name),
                                      dropTarget=self.params["drop"])
            self.keep_options(database, name, scratch, metadata)
        for (database, name), _scratch, metadata, ctype in collections.values():
            if ctype == "view":
                if self.params["drop"]:
                    self.client[database].drop_collection(name)
                self.client[database].create_collection(name, **dict(metadata.get("options") or {}))
        applied = self.replay(oplog) if oplog and self.params["oplog_replay"] else 0
        result.update(target=sorted({"%s.%s" % t[0] for t in collections.values()}), oplog_applied=applied)

    def keep_options(self, database, name, scratch, metadata):
        """A server that drops a collection's options when renaming it (some MongoDB-compatible ones do) gets
        the collection made with its options, and the documents copied over from the renamed one."""
        wanted = dict(metadata.get("options") or {})
        info = next(iter(self.client[database].list_collections(filter={"name": name})), {})
        if not wanted or dict(info.get("options") or {}) == wanted:
            return
        self.client.admin.command("renameCollection", "%s.%s" % (database, name), to="%s.%s" % (database, scratch))
        self.client[database].create_collection(name, **wanted)
        self.indexes(database, name, metadata)
        batch = []
        for document in self.client[database][scratch].with_options(codec_options=RAW).find():
            batch.append(document)
            if len(batch) >= self.BATCH:
                self.client[database][name].insert_many(batch, ordered=False)
                batch = []
        if batch:
            self.client[database][name].insert_many(batch, ordered=False)
        self.client[database].drop_collection(scratch)

    def indexes(self, database, scratch, metadata):
        for index in metadata.get("indexes") or []:
            if index.get("name") == "_id_":
                continue
            spec = dict(index)
            keys = list(spec.pop("key").items())
            for drop in ("v", "ns"):
                spec.pop(drop, None)
            self.client[database][scratch].create_index(keys, **spec)

    def replay(self, entries):
        """Apply the dump's oplog: inserts, deletes and updates (operators, replacements, diffs)."""
        applied = 0
        for raw in entries:
            entry = RawBSONDocument(raw)
            if entry["op"] not in ("i", "u", "d") or "." not in entry["ns"]:
                continue
            database, name = entry["ns"].split(".", 1)
            collection = self.client[self.rename(database)][name]
            document = dict(entry["o"])
            selector = dict(entry["o2"]) if "o2" in entry else {"_id": document.get("_id")}
            if entry["op"] == "i":
                collection.replace_one({"_id": document["_id"]}, document, upsert=True)
            elif entry["op"] == "d":
                collection.delete_one(document)
            else:
                update = to_update(document)
                if update is None:
                    collection.replace_one(selector, document, upsert=True)
                else:
                    collection.update_one(selector, update)
            applied += 1
        return applied

    def drill(self, item, result):
        scratch_db = "corebackup_drill_%s" % self.tag
        collections, _oplog = self.load(item, result, lambda _db: scratch_db)
        counts = {}
        for (database, name), scratch, _metadata, ctype in collections.values():
            if ctype != "view":
                counts["%s.%s" % (database, name)] = self.client[scratch_db][scratch].count_documents({})
        self.client.drop_database(scratch_db)
        recorded = {ns: facts.get("documents") for ns, facts in
                    ((item["artifact"].get("contents") or {}).get("collections") or {}).items()
                    if "documents" in facts and ns != "oplog"}
        result["documents"] = sum(counts.values())
        self.runner.compare(result, recorded, counts)

    def pre_restore(self, items):
        """mongo_dump of the databases the restore replaces (after ns_from/ns_to), those that exist."""
        wanted = []
        for item in items:
            for database in (item["artifact"].get("metadata") or {}).get("databases", item["name"]).split(","):
                name = self.rename(database)
                if name and name not in wanted:
                    wanted.append(name)
        existing = [name for name in wanted if name in self.client.list_database_names()]
        return {"uri": self.params["uri"], "databases": existing} if existing else None


def parse_uri(module, uri):
    """The parts of a MongoDB connection string; its password is a secret of the run from here on."""
    try:
        parsed = pymongo.uri_parser.parse_uri(uri)
    except (pymongo.errors.InvalidURI, pymongo.errors.ConfigurationError, ValueError) as exc:
        raise OptionError("uri is not a MongoDB connection string: %s" % module.scrub(exc)) from None
    module.add_secret(parsed.get("password"))
    return parsed


def connect(module, uri, **options):
    """A client of ``uri`` (whose password the run then scrubs everywhere)."""
    parse_uri(module, uri)
    return pymongo.MongoClient(uri, **options)


RAW = CodecOptions(document_class=RawBSONDocument) if HAS_PYMONGO else None


def bson_loads(text):
    return bson.json_util.loads(text)


def to_update(document):
    """The update of an oplog ``u`` entry as an update document, or None for a replacement."""
    if "$v" in document and "diff" in document:
        diff = document["diff"]
        if "updatedFields" in diff or "removedFields" in diff:  # the change-stream form
            update = {}
            if diff.get("updatedFields"):
                update["$set"] = dict(diff["updatedFields"])
            if diff.get("removedFields"):
                update["$unset"] = {field: "" for field in diff["removedFields"]}
            return update
        sets, unsets = {}, {}
        _flatten_diff(diff, "", sets, unsets)
        return dict(({"$set": sets} if sets else {}), **({"$unset": unsets} if unsets else {}))
    if any(key.startswith("$") for key in document):
        return {k: v for k, v in document.items() if k != "$v"}
    return None


def _flatten_diff(diff, prefix, sets, unsets):
    """MongoDB's $v: 2 update diff (u: update, i: insert, d: delete, s<field>: a sub-diff) as $set/$unset."""
    for key, value in diff.items():
        if key in ("u", "i"):
            sets.update({prefix + field: val for field, val in value.items()})
        elif key == "d":
            unsets.update({prefix + field: "" for field in value})
        elif key.startswith("s"):
            _flatten_diff(value, prefix + key[1:] + ".", sets, unsets)
        elif key.startswith("u") and key[1:].isdigit():
            sets[prefix.rstrip(".") + "." + key[1:]] = value
        elif key == "a":
            continue
        else:
            raise RestoreError("an oplog update this module cannot replay: %r" % (diff,))


SLICE = ServiceSlice(name="mongodb", module="mongo_dump", spec=SPEC, backup=MongoDump, restorer=MongoRestorer,
                     restore_spec=MongoRestorer.SPEC)
