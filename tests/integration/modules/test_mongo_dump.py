# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""mongo_dump through ansible-playbook against a MongoDB-compatible server (SecantusDB), restored by an
independent reader of the archive format and compared byte for byte."""

from __future__ import annotations

import datetime
import gzip
import os
import shutil
import threading
import time
import uuid

import pymongo
import pytest
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from ansible_collections.corebackup.backup.tests.testbed import mongo_archive
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module, run_module_watching_argv

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
RAW = CodecOptions(document_class=RawBSONDocument)


def every_type(n):
    return {
        "_id": ObjectId(), "n": n, "dec": Decimal128("1.23E+%d" % (n % 50)), "neg": Decimal128("-0"),
        "date": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=n),
        "bin": Binary(b"\x00\x01" * 8, 0), "uuid": Binary(uuid.UUID(int=n).bytes, 4), "md5": Binary(b"m" * 16, 5),
        "user": Binary(b"custom", 128), "i64": Int64(2 ** 40 + n), "i32": n, "re": Regex("^a.*b$", "im"),
        "ts": Timestamp(1600000000 + n, 7), "code": Code("function () { return 1; }"), "min": MinKey(), "max": MaxKey(),
        "zero": -0.0, "nan": float("nan"), "inf": float("-inf"), "nested": {"a": [1, [2, {"b": None, "c": [[]]}]], "t": True},
        "text": "ünïcødé ☕ %d" % n,
    }


@pytest.fixture(scope="module")
def mongo(mongo_server):
    client = pymongo.MongoClient(mongo_server)
    for name in ("shop", "events", "shop_restored", "events_restored"):
        client.drop_database(name)
    shop, events = client.shop, client.events
    shop.orders.insert_many([every_type(n) for n in range(6000)])
    shop.orders.create_index([("n", 1)], unique=True)
    shop.orders.create_index([("i32", 1), ("date", -1)], name="compound")
    shop.orders.create_index([("date", 1)], expireAfterSeconds=3600 * 24 * 365 * 100, name="ttl")
    shop.orders.create_index([("maybe", 1)], sparse=True)
    shop.orders.create_index([("i64", 1)], partialFilterExpression={"n": {"$gt": 100}}, name="partial")
    shop.create_collection("customers", validator={"$jsonSchema": {"bsonType": "object", "required": ["name"]}})
    shop.customers.insert_many([{"name": "customer %d" % n, "tags": ["a", "b"][: n % 3]} for n in range(3000)])
    shop.create_collection("recent", capped=True, size=1 << 20, max=500)
    shop.recent.insert_many([{"n": n} for n in range(800)])  # the oldest fall out
    shop.create_collection("big_orders", viewOn="orders", pipeline=[{"$match": {"n": {"$gt": 5000}}}])
    events.log.insert_many([{"at": n, "kind": "click" if n % 2 else "view"} for n in range(2000)])
    events.audit.insert_many([{"at": n, "user": n % 7} for n in range(500)])
    events.huge.insert_one({"_id": 1, "blob": "x" * (16 * 1024 * 1024 - 200)})  # just below the 16 MB limit
    events.empty.insert_one({"x": 1})
    events.empty.delete_many({})
    yield client, mongo_server
    client.close()


def dump(uri, storage, check=False, **options):
    args = dict({"uri": uri, "storage": storage, "fail_on_error": False, "retries": {"attempts": 2, "delay": 0.1}},
                **options)
    return run_module(COLLECTIONS, "mongo_dump", args, check=check)


def read_artifact(storage, key):
    with open(os.path.join(storage["path"], key), "rb") as handle:
        return mongo_archive.read(gzip.decompress(handle.read()))


def raw_documents(collection):
    return sorted(doc.raw for doc in collection.with_options(codec_options=RAW).find())


def clean_indexes(collection):
    return sorted((dict((k, v) for k, v in index.items() if k != "ns") for index in collection.list_indexes()),
                  key=lambda index: index["name"])


def test_every_database_round_trips_byte_for_byte(mongo, tmp_path):
    client, uri = mongo
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    run = dump(uri, storage, databases=["shop", "events"])
    assert not run.failed, run.result.get("msg")
    assert run.result["status"] == "success" and run.result["strategy"] == "pymongo"
    entries = {e["name"]: e for e in run.result["entries"]}
    assert entries["shop"]["collections"]["shop.orders"] == {"documents": 6000, "bytes": entries["shop"]["collections"][
        "shop.orders"]["bytes"]} and entries["shop"]["documents"] + entries["events"]["documents"] >= 10000
    for name in ("shop", "events"):
        archive = read_artifact(storage, entries[name]["key"])
        assert archive.header["version"] == "0.1" and archive.header["concurrent_collections"] == 2
        mongo_archive.restore(client, archive, rename=lambda db: db + "_restored")
        source, copy = client[name], client[name + "_restored"]
        infos = {i["name"]: i for i in source.list_collections()}
        assert sorted(c["name"] for c in copy.list_collections()) == sorted(infos)
        for collection, info in infos.items():
            restored = {i["name"]: i for i in copy.list_collections()}[collection]
            assert restored.get("type") == info.get("type") and restored.get("options") == info.get("options"), collection
            if info.get("type") == "view":
                continue
            assert raw_documents(copy[collection]) == raw_documents(source[collection]), collection
            assert clean_indexes(copy[collection]) == clean_indexes(source[collection]), collection
    counts = run.result["artifacts"][0]["contents"]["collections"]
    assert counts["events.huge"]["documents"] == 1 and counts["events.empty"] == {"documents": 0, "bytes": 0}


def test_filters_select_exactly_what_they_say(mongo, tmp_path):
    client, uri = mongo
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    run = dump(uri, storage, databases=[
        {"name": "shop", "collections": ["orders", "customers"], "query": {"orders": '{"n": {"$lt": 10}}'}},
        {"name": "events", "exclude_collections": ["huge", "log"]}])
    assert not run.failed, run.result.get("msg")
    entries = {e["name"]: e for e in run.result["entries"]}
    shop = read_artifact(storage, entries["shop"]["key"])
    assert sorted(c for _db, c in shop.namespaces) == ["customers", "orders"]
    selected = client.shop.orders.with_options(codec_options=RAW).find({"n": {"$lt": 10}})
    assert sorted(shop.namespaces[("shop", "orders")].documents) == sorted(d.raw for d in selected)
    assert len(shop.namespaces[("shop", "customers")].documents) == 3000
    events = read_artifact(storage, entries["events"]["key"])
    assert sorted(c for _db, c in events.namespaces) == ["audit", "empty"]
    everything = dump(uri, storage, job="all")
    assert {e["name"] for e in everything.result["entries"]} >= {"shop", "events"}
    assert not {"admin", "local", "config"} & {e["name"] for e in everything.result["entries"]}


def test_a_point_in_time_dump_holds_the_writes_made_during_it(mongo, tmp_path):
    client, uri = mongo
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    stop = threading.Event()
    written = []

    def writer():
        while not stop.is_set():
            written.append(client.ticker.ticks.insert_one({"at": time.time()}).inserted_id)
            time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        run = dump(uri, storage, split="run", oplog=True, databases=["shop", "events", "ticker"], job="pit")
    finally:
        stop.set()
        thread.join()
    assert not run.failed, run.result.get("msg")
    assert run.result["consistency"] == "oplog" and run.result["oplog"]["entries"] > 0
    [entry] = run.result["entries"]
    assert entry["name"] == "pit"
    archive = read_artifact(storage, entry["key"])
    oplog = archive.namespaces[("", "oplog")].documents
    ticks = [d for d in (RawBSONDocument(raw) for raw in oplog) if d["ns"] == "ticker.ticks" and d["op"] == "i"]
    assert ticks and len(oplog) == run.result["oplog"]["entries"]
    start, end = (Timestamp(*map(int, run.result["oplog"][k].split(":"))) for k in ("start", "end"))
    assert all(start <= d["ts"] <= end for d in (RawBSONDocument(raw) for raw in oplog))
    # Replaying the oplog over the dumped collection gives every write made before the dump ended.
    dumped = {RawBSONDocument(raw)["_id"] for raw in archive.namespaces[("ticker", "ticks")].documents}
    until_end = {oid for oid in written if oid.generation_time < datetime.datetime.fromtimestamp(  # whole seconds
        end.time, datetime.timezone.utc)}
    assert len(until_end) > 10
    assert until_end - {t["o"]["_id"] for t in ticks} <= dumped
    refused = dump(uri, storage, oplog=True)
    assert refused.failed and "oplog needs split: run" in refused.result["msg"]


def test_check_mode_lists_and_writes_nothing(mongo, tmp_path):
    _client, uri = mongo
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    run = dump(uri, storage, check=True, databases=["shop"])
    assert run.changed and not os.path.exists(storage["path"])
    [entry] = run.result["entries"]
    assert entry["status"] == "would_back_up" and entry["collections"]["shop.orders"]["documents"] == 6000
    assert entry["collections"]["shop.big_orders"] == {"type": "view"}


def test_bad_input_is_named_without_secrets(mongo, tmp_path):
    _client, uri = mongo
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    missing = dump(uri, storage, databases=["shop", "nope"])
    assert {e["name"]: e["status"] for e in missing.result["entries"]} == {"nope": "failed", "shop": "backed_up"}
    assert {e["name"]: e["error"] for e in missing.result["entries"]}["nope"] == "database nope does not exist"
    secret = "s3cr3t-Passw0rd"
    unreachable = dump("mongodb://backup:%s@127.0.0.1:9/?serverSelectionTimeoutMS=500" % secret, storage)
    assert unreachable.failed and unreachable.result["msg"].startswith("cannot reach MongoDB at 127.0.0.1:9")
    assert secret not in unreachable.all_text() + str(unreachable.result)
    before = sorted(os.walk(storage["path"]))
    bad_query = dump(uri, storage, databases=[{"name": "shop", "query": {"orders": "{not json"}}])
    assert bad_query.failed and "databases: shop: the query of orders is not Extended JSON" in bad_query.result["msg"]
    assert sorted(os.walk(storage["path"])) == before  # refused before any work


def test_a_scram_user_authenticates_and_its_password_is_nowhere_in_a_dump_or_a_restore(tmp_path, service_log_dir):
    from ansible_collections.corebackup.backup.tests.testbed.services import secantus
    python = os.environ.get("SECANTUS_PYTHON") or os.path.join(os.getcwd(), ".venv-secantus", "bin", "python")
    data = str(tmp_path / "data")
    password = "Sc4am-" + uuid.uuid4().hex
    with secantus(python, service_log_dir, storage_path=data) as server:
        client = pymongo.MongoClient("mongodb://127.0.0.1:%d/?directConnection=true" % server.port)
        client.admin.command("createUser", "backup", pwd=password, roles=["root"], mechanisms=["SCRAM-SHA-256"])
        client.app.things.insert_many([{"n": n} for n in range(100)])
        client.close()
    with secantus(python, service_log_dir, storage_path=data, auth=True) as server:
        uri = "mongodb://backup:%s@127.0.0.1:%d/?authSource=admin&directConnection=true" % (password, server.port)
        storage = {"type": "filesystem", "path": str(tmp_path / "store")}
        run, seen = run_module_watching_argv(COLLECTIONS, "mongo_dump", {"uri": uri, "storage": storage, "databases": ["app"]})
        assert not run.failed, run.result.get("msg")
        assert run.result["entries"][0]["documents"] == 100
        assert not any(password.encode() in cmdline for cmdline in seen)
        # (into a store of its own: a failed run recorded in the set would make it the set's newest, failed run)
        wrong = dump(uri.replace(password, "wrong-password"), {"type": "filesystem", "path": str(tmp_path / "other")},
                     databases=["app"])
        assert wrong.failed and "wrong-password" not in wrong.all_text() + str(wrong.result)
        # The restore of that dump talks to the same server with the same password, and keeps it as secret.
        recorded = run_module(COLLECTIONS, "backup_manifest", {"storage": storage, "result": run.result})
        assert not recorded.failed, recorded.result.get("msg")
        restored, seen = run_module_watching_argv(COLLECTIONS, "backup_restore", {
            "job": run.result["job"], "storage": storage, "uri": uri, "ns_from": "app", "ns_to": "app_copy"})
        assert not restored.failed, restored.result.get("msg")
        assert restored.result["restored"][0]["documents"] == 100
        assert not any(password.encode() in cmdline for cmdline in seen)
        assert password not in restored.all_text() + str(restored.result)
    assert password not in run.all_text() + str(run.result)
    for dirpath, _dirs, files in os.walk(storage["path"]):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as handle:
                raw = handle.read()
            assert password.encode() not in raw and password.encode() not in (
                gzip.decompress(raw) if name.endswith(".gz") else b"")


@pytest.mark.skipif(shutil.which("mongodump") is None, reason="the mongodump binary is not on PATH (MongoDB's "
                    "database tools cannot be installed here): the mongodump strategy is not tested")
def test_the_mongodump_strategy_writes_the_same_format(mongo, tmp_path):
    _client, uri = mongo
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    run = dump(uri, storage, databases=["events"], strategy="mongodump")
    assert not run.failed, run.result.get("msg")
    archive = read_artifact(storage, run.result["entries"][0]["key"])
    assert ("events", "log") in archive.namespaces
