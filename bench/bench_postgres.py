# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: postgres_dump against ``pg_dump -Fc | sha256sum`` on a 1 GB database, in the same run.

    module:    postgres_dump through ansible-playbook (tests/testbed/ansible_run.py), one database, globals: false,
               otherwise default options (compression none: pg_dump -Fc compresses, at zlib's default level as the
               baseline's does), the server's own client programs (bin_dir), into a filesystem store on the same
               disk: the schema-only TOC and the rows of every table counted in the dump's snapshot, then
               pg_dump -Fc -> sha256 -> file, checksum record, run record and manifest
    baseline:  bash -o pipefail -c 'pg_dump -Fc -d <the database> | sha256sum'   (the server's own pg_dump)

A PostgreSQL 15 cluster of the benchmark's own (tests/testbed/services.py ``postgres()``, 256 MB of shared buffers,
no autovacuum) holds a database built with generate_series each run (about 1 GB, ``pg_database_size``): two wide
tables (text, numeric, double, timestamptz, jsonb columns; 460,000 customers and 800,000 orders at ``--size-mb
1000``) with secondary indexes and foreign keys, and 1,500 attachments of 100 to 500 KB in a bytea column (storage
EXTERNAL: TOAST without pglz), half random bytes (pgcrypto's gen_random_bytes) and half CSV-like text, so that zlib has
realistic work. The contenders alternate (baseline, module, baseline, ...); the medians give the throughput ratio,
module / baseline = baseline seconds / module seconds, with the module's own time (``totals.seconds``: from the
start of its run to its result, without Python's start-up and Ansible's) and, reported beside it, the wall time of
the whole ansible-playbook run.

Peak RSS is the module process's own VmHWM, read as it exits (ANSIBLE_PYTHON_INTERPRETER is a wrapper that runs the
AnsiballZ file in the same process and appends VmHWM, with the process's CPU time and its children's, to a file).
pg_dump's own VmHWM (a child of the module, and of the baseline's shell) is sampled from /proc every 200 ms and
reported apart: the target is the module's Python process. The server's CPU time per round is the postmaster's
children's (the backend of each session, once it ended).

Targets (issue 23): throughput >= 0.95x the baseline's; peak RSS of the module process < 100 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from ansible_collections.corebackup.backup.bench._report import emit
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import RunningModule, descendants
from ansible_collections.corebackup.backup.tests.testbed.services import postgres

MB = 1000 * 1000
RATIO_TARGET = 0.95
RSS_TARGET_MB = 100
DATABASE = "bench"
# Rows at --size-mb 1000 (about 1,050,000,000 bytes by pg_database_size: customers 227 MiB, orders 317 MiB and
# attachments 450 MiB with their indexes).
CUSTOMERS, ORDERS, ATTACHMENTS = 460000, 800000, 1500
SETTINGS = {
    "shared_buffers": "256MB", "maintenance_work_mem": "256MB", "autovacuum": "off",
    # The build writes each table in the transaction that creates it: with wal_level minimal, no WAL for its rows.
    "wal_level": "minimal", "max_wal_senders": "0", "max_wal_size": "8GB", "checkpoint_timeout": "1h",
}
WORDS = ("ARRAY['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', "
         "'lima', 'mike', 'november', 'oscar', 'papa']")
BUILD_SQL = ["CREATE EXTENSION pgcrypto;", """
BEGIN;
CREATE TABLE customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  phone text,
  street text,
  city text,
  country char(2),
  notes text,
  balance numeric(14, 2),
  credit_limit numeric(14, 2),
  score double precision,
  created_at timestamptz NOT NULL,
  updated_at timestamptz,
  profile jsonb NOT NULL
);
INSERT INTO customers (name, email, phone, street, city, country, notes, balance, credit_limit, score, created_at,
                       updated_at, profile)
SELECT initcap(w[1 + g % 16]) || ' ' || initcap(w[1 + (g / 16) % 16]) || '-' || left(h, 6),
       w[1 + g % 16] || '.' || left(h, 10) || '@' || w[1 + (g / 7) % 16] || '.example',
       '+49 ' || (g * 7919) % 1000000000,
       (g % 400 + 1) || ' ' || initcap(w[1 + (g / 3) % 16]) || ' Street',
       initcap(w[1 + (g / 5) % 16]) || 'ville',
       (ARRAY['DE', 'FR', 'NL', 'PL', 'IT', 'ES', 'SE', 'US'])[1 + g % 8],
       CASE WHEN g % 4 = 0 THEN NULL
            ELSE 'Contact ' || w[1 + g % 16] || ' about ' || w[1 + (g / 11) % 16] || ' ' || h || ' ' || md5(h) END,
       round(((g * 7129) % 100000000) / 100.0, 2),
       round(((g * 31) % 5000) * 10.0, 2),
       (g * 0.618033) % 100,
       timestamptz '2019-01-01 00:00:00+00' + g * interval '3 minutes 7.31 seconds',
       CASE WHEN g % 3 = 0 THEN NULL ELSE timestamptz '2025-01-01 00:00:00+00' + (g % 86400) * interval '1 minute' END,
       jsonb_build_object('tier', (ARRAY['gold', 'silver', 'bronze', 'none'])[1 + g % 4], 'newsletter', g % 5 = 0,
                          'tags', jsonb_build_array(w[1 + g % 16], w[1 + (g / 2) % 16]),
                          'crm', jsonb_build_object('id', left(h, 12), 'owner', w[1 + (g / 13) % 16], 'visits', g % 97))
FROM generate_series(1::bigint, {customers}) AS g, LATERAL (SELECT md5(g::text) AS h) AS digest,
     (SELECT {words} AS w) AS words;
CREATE INDEX customers_email_idx ON customers (email);
CREATE INDEX customers_place_idx ON customers (country, city);
CREATE INDEX customers_created_idx ON customers (created_at);
COMMIT;""", """
BEGIN;
CREATE TABLE orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers (id),
  status text NOT NULL,
  amount numeric(12, 2) NOT NULL,
  tax numeric(12, 2) NOT NULL,
  currency char(3) NOT NULL,
  placed_at timestamptz NOT NULL,
  shipped_at timestamptz,
  shipping_address text,
  lines jsonb NOT NULL,
  comment text
);
INSERT INTO orders (customer_id, status, amount, tax, currency, placed_at, shipped_at, shipping_address, lines, comment)
SELECT 1 + (g * 7) % {customers},
       (ARRAY['placed', 'paid', 'shipped', 'delivered', 'returned'])[1 + g % 5],
       round(((g * 104729) % 5000000) / 100.0, 2),
       round(((g * 104729) % 5000000) / 100.0 * 0.19, 2),
       (ARRAY['EUR', 'USD', 'PLN', 'SEK'])[1 + g % 4],
       timestamptz '2022-01-01 00:00:00+00' + g * interval '71 seconds',
       CASE WHEN g % 5 IN (0, 1) THEN NULL ELSE timestamptz '2022-01-02 00:00:00+00' + g * interval '71 seconds' END,
       (g % 300 + 1) || ' Harbour Road, ' || upper(left(h, 5)) || ' Portsmouth',
       jsonb_build_array(jsonb_build_object('sku', 'SKU-' || left(h, 8), 'qty', 1 + g % 7, 'price', (g % 9000) / 100.0),
                         jsonb_build_object('sku', 'SKU-' || substr(h, 9, 8), 'qty', 1 + g % 3, 'price', (g % 700) / 10.0)),
       CASE WHEN g % 6 = 0 THEN 'Leave at the door; ref ' || h ELSE NULL END
FROM generate_series(1::bigint, {orders}) AS g, LATERAL (SELECT md5('o' || g) AS h) AS digest;
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_placed_idx ON orders (placed_at);
CREATE INDEX orders_status_idx ON orders (status, placed_at);
COMMIT;""", """
BEGIN;
CREATE TABLE attachments (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id bigint NOT NULL REFERENCES orders (id),
  filename text NOT NULL,
  mime_type text NOT NULL,
  uploaded_at timestamptz NOT NULL,
  body bytea NOT NULL
);
ALTER TABLE attachments ALTER COLUMN body SET STORAGE EXTERNAL;
-- 100 to 500 KiB each: half random bytes (gen_random_bytes gives at most 1 KiB a call), then half CSV-like lines.
INSERT INTO attachments (order_id, filename, mime_type, uploaded_at, body)
SELECT 1 + (g * 977) % {orders}, 'scan-' || g || '.pdf', 'application/pdf',
       timestamptz '2022-01-01 00:00:00+00' + g * interval '53 minutes',
       (SELECT string_agg(gen_random_bytes(1024), ''::bytea) FROM generate_series(1, kib / 2))
       || (SELECT convert_to(string_agg(format('%s;%s;%s;%s;%s', g, i, md5((g * 100000 + i)::text), i % 97,
                                               'line of the scanned file'), E'\\n'), 'UTF8')
           FROM generate_series(1, kib * 1024 / 2 / 72) AS i)
FROM generate_series(1::bigint, {attachments}) AS g, LATERAL (SELECT 100 + (g * 7919) % 401 AS kib) AS size;
CREATE INDEX attachments_order_idx ON attachments (order_id);
CREATE INDEX attachments_uploaded_idx ON attachments (uploaded_at);
COMMIT;""", "VACUUM (ANALYZE);", "CHECKPOINT;"]

# The module's interpreter: the AnsiballZ file run in this very process, which then appends its name, its VmHWM (KiB)
# and the CPU seconds of itself and of its children (pg_dump, pg_restore, psql) to the file in CB_BENCH_RSS_LOG.
INTERPRETER = """#!/bin/sh
exec %s -c '
import json, os, resource, runpy, sys
path = sys.argv[1]
sys.argv = [path]
try:
    runpy.run_path(path, run_name="__main__")
finally:
    with open("/proc/self/status") as status:
        hwm = int([line.split()[1] for line in status if line.startswith("VmHWM:")][0])
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.environ["CB_BENCH_RSS_LOG"], "a") as log:
        log.write(json.dumps({"file": os.path.basename(path), "vmhwm_kb": hwm,
                              "cpu_s": own.ru_utime + own.ru_stime,
                              "children_cpu_s": children.ru_utime + children.ru_stime}) + "\\n")
' "$@"
"""


class Sampler(threading.Thread):
    """pg_dump below ``root`` (a pid), sampled every ``interval`` seconds until stopped: the highest VmHWM (KiB) of
    the dump that writes the rows (``peaks['data']``) and of a schema-only one (``peaks['schema']``, the module's
    TOC); of the former also what it did at each sample (``states``: on a CPU or waiting for one, blocked writing
    to a full pipe, waiting for the server, other) and its CPU and run-queue seconds (/proc/PID/schedstat) over
    the seconds it was seen (``life``), as last read."""

    def __init__(self, root: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.interval, self.done = root, interval, threading.Event()
        self.peaks: dict = {}
        self.states: dict = {}
        self.sched = {"cpu_s": 0.0, "runqueue_s": 0.0, "life_s": 0.0}
        self.first: float | None = None

    def run(self) -> None:
        while not self.done.is_set():
            for pid in descendants(self.root):
                try:
                    self.sample(pid)
                except (OSError, IndexError, ValueError):
                    continue
            self.done.wait(self.interval)

    def sample(self, pid: int) -> None:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
        if os.path.basename(argv[0]) != b"pg_dump":
            return
        with open("/proc/%d/status" % pid, encoding="utf-8") as handle:
            hwm = int([line.split()[1] for line in handle if line.startswith("VmHWM:")][0])
        kind = "schema" if b"--schema-only" in argv else "data"
        self.peaks[kind] = max(self.peaks.get(kind, 0), hwm)
        if kind != "data":
            return
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        with open("/proc/%d/wchan" % pid, encoding="utf-8") as handle:
            wchan = handle.read().strip()
        with open("/proc/%d/schedstat" % pid, encoding="utf-8") as handle:
            on_cpu, waiting = (int(field) / 1e9 for field in handle.read().split()[:2])
        if state == "R":
            what = "cpu or run queue"
        elif "pipe_write" in wchan:
            what = "pipe full"
        elif "poll" in wchan or "select" in wchan or wchan.startswith("sk_"):
            what = "waiting for the server"
        else:
            what = "other: " + wchan
        self.states[what] = self.states.get(what, 0) + 1
        now = time.monotonic()
        self.first = now if self.first is None else self.first
        self.sched = {"cpu_s": on_cpu, "runqueue_s": waiting, "life_s": now - self.first}

    def stop(self) -> "Sampler":
        self.done.set()
        self.join()
        return self


def server_cpu(postmaster: int, backends: int | None = None) -> float:
    """CPU seconds of the postmaster's children that ended (each session's backend, once it ended); with
    ``backends``, once no more than that many children are left (the postmaster reaps an ended one a moment later)."""
    deadline = time.monotonic() + 10
    while backends is not None and len(descendants(postmaster)) > backends and time.monotonic() < deadline:
        time.sleep(0.05)
    with open("/proc/%d/stat" % postmaster, encoding="utf-8") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(server, size_mb: int) -> dict:
    """The database, its size and what it holds."""
    scale = size_mb / 1000
    counts = {"customers": max(1, int(CUSTOMERS * scale)), "orders": max(1, int(ORDERS * scale)),
              "attachments": max(1, int(ATTACHMENTS * scale))}
    started = time.perf_counter()
    server.create_database(DATABASE)
    for statement in BUILD_SQL:
        for name, value in dict(counts, words=WORDS).items():
            statement = statement.replace("{%s}" % name, str(value))
        server.sql(statement, dbname=DATABASE)
    seconds = time.perf_counter() - started
    size = int(server.sql("SELECT pg_database_size(current_database())", dbname=DATABASE))
    tables = {}
    for line in server.sql("SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                           "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY relname",
                           dbname=DATABASE).splitlines():
        name, total = line.split("|")
        tables[name] = {"rows": counts[name], "bytes": int(total)}
    low, mean, high = server.sql("SELECT min(length(body)), avg(length(body))::bigint, max(length(body)) "
                                 "FROM attachments", dbname=DATABASE).split("|")
    return {"bytes": size, "build_seconds": round(seconds, 1), "tables": tables,
            "attachment_bytes": {"min": int(low), "mean": int(mean), "max": int(high)}}


def run_baseline(server, postmaster: int) -> dict:
    conninfo = "host=%s port=%d user=%s dbname=%s" % (server.host, server.port, server.superuser, DATABASE)
    command = "%s -Fc -d '%s' | sha256sum" % (os.path.join(server.bin_dir, "pg_dump"), conninfo)
    idle = len(descendants(postmaster))  # the server's own processes, no session
    cpu, backend = children_cpu(), server_cpu(postmaster)
    started = time.perf_counter()
    with subprocess.Popen(["bash", "-o", "pipefail", "-c", command], env=server.client_env(server.password),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as shell:
        sampler = Sampler(shell.pid)
        sampler.start()
        out, err = shell.communicate()
        seconds = time.perf_counter() - started
        sampler.stop()
    if shell.returncode != 0:
        raise RuntimeError("the baseline exited %d: %s" % (shell.returncode, err.decode("utf-8", "replace")[-2000:]))
    return {"seconds": seconds, "client_cpu_s": children_cpu() - cpu, "server_cpu_s": server_cpu(postmaster, idle) - backend,
            "pg_dump_peak_rss_kb": sampler.peaks.get("data", 0), "pg_dump_states": sampler.states,
            "pg_dump_sched": sampler.sched, "sha256": out.split()[0].decode()}


def run_dump_module(server, postmaster: int, collections: str, workdir: str, expected_rows: int) -> dict:
    store = os.path.join(workdir, "store")
    rss_log = os.path.join(workdir, "module-rss.jsonl")
    interpreter = os.path.join(workdir, "python-with-rss")
    with open(interpreter, "w", encoding="utf-8") as handle:
        handle.write(INTERPRETER % sys.executable)
    os.chmod(interpreter, 0o755)
    if os.path.exists(rss_log):
        os.unlink(rss_log)
    args = {"host": server.host, "port": server.port, "user": server.superuser, "password": server.password,
            "bin_dir": server.bin_dir, "databases": [DATABASE], "globals": False,
            "storage": {"type": "filesystem", "path": store}}
    idle = len(descendants(postmaster))
    cpu, backend = children_cpu(), server_cpu(postmaster)
    started = time.perf_counter()
    running = RunningModule(collections, "postgres_dump", args,
                            env={"ANSIBLE_PYTHON_INTERPRETER": interpreter, "CB_BENCH_RSS_LOG": rss_log})
    sampler = Sampler(running.process.pid)
    sampler.start()
    try:
        run = running.wait()
    finally:
        sampler.stop()
    seconds = time.perf_counter() - started
    cpu, backend = children_cpu() - cpu, server_cpu(postmaster, idle) - backend
    result = run.result
    if run.failed:
        raise RuntimeError("postgres_dump failed: %s" % result.get("msg"))
    with open(rss_log, encoding="utf-8") as handle:
        [module] = [record for record in map(json.loads, handle) if record["file"] == "AnsiballZ_postgres_dump.py"]
    [entry], [artifact] = result["entries"], result["artifacts"]
    if entry["status"] != "backed_up" or entry["rows"] != expected_rows or entry["tables"] != 3:
        raise RuntimeError("postgres_dump stored %s: %d tables, %d rows (expected 3, %d)"
                           % (entry["status"], entry["tables"], entry["rows"], expected_rows))
    # What was stored is what the module says, and a dump that pg_restore reads, with the rows of the three tables.
    path = os.path.join(store, artifact["key"])
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    listing = subprocess.run([os.path.join(server.bin_dir, "pg_restore"), "-l", path], capture_output=True, text=True,
                             check=True).stdout
    data = sorted(line.split()[-2] for line in listing.splitlines() if " TABLE DATA public " in line)
    if digest.hexdigest() != artifact["sha256"] or os.path.getsize(path) != artifact["size"] or \
            data != ["attachments", "customers", "orders"]:
        raise RuntimeError("the stored dump is not what postgres_dump reported: %s, %d bytes, tables %s"
                           % (digest.hexdigest(), os.path.getsize(path), data))
    shutil.rmtree(store)
    return {"seconds": result["totals"]["seconds"], "ansible_seconds": seconds, "peak_rss_kb": module["vmhwm_kb"],
            "module_cpu_s": module["cpu_s"], "module_children_cpu_s": module["children_cpu_s"],
            "ansible_cpu_s": cpu, "server_cpu_s": backend,
            "pg_dump_peak_rss_kb": sampler.peaks.get("data", 0), "pg_dump_schema_peak_rss_kb": sampler.peaks.get("schema", 0),
            "pg_dump_states": sampler.states, "pg_dump_sched": sampler.sched,
            "artifact_bytes": artifact["size"]}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def pg_dump_profile(runs: list[dict]) -> dict:
    """Where the dump of the rows spent its time, per round: seconds on a CPU, waiting in the run queue (other work
    on the machine), and off both (blocked: on the server or on a full pipe); and the share of samples in each
    state."""
    rounds = []
    for run in runs:
        sched, states = run["pg_dump_sched"], run["pg_dump_states"]
        total = sum(states.values()) or 1
        rounds.append({
            "seconds_seen": round(sched["life_s"], 1), "on_cpu_s": round(sched["cpu_s"], 1),
            "run_queue_s": round(sched["runqueue_s"], 1),
            "blocked_s": round(max(0.0, sched["life_s"] - sched["cpu_s"] - sched["runqueue_s"]), 1),
            "samples": {state: round(count / total, 3) for state, count in sorted(states.items())}})
    return {"rounds": rounds, "on_cpu_s": statistics.median(r["on_cpu_s"] for r in rounds),
            "run_queue_s": statistics.median(r["run_queue_s"] for r in rounds),
            "blocked_s": statistics.median(r["blocked_s"] for r in rounds)}


def table(report: dict) -> str:
    base, mod = report["baseline"], report["module"]
    rows = [
        ("", "baseline", "postgres_dump"),
        ("seconds per round", ", ".join("%.1f" % s for s in base["seconds"]),
         ", ".join("%.1f" % s for s in mod["seconds"]) + " (totals.seconds)"),
        ("whole ansible-playbook run", "", ", ".join("%.1f" % s for s in mod["ansible_seconds"])),
        ("throughput (median)", "%.1f MB/s" % base["mb_per_s"],
         "%.1f MB/s (%.1f through ansible-playbook)" % (mod["mb_per_s"], mod["mb_per_s_ansible"])),
        ("CPU s: client / server", "%s / %s" % (base["client_cpu_s"], base["server_cpu_s"]),
         "module %s + its children %s / %s" % (mod["module_cpu_s"], mod["module_children_cpu_s"], mod["server_cpu_s"])),
        ("pg_dump s: CPU / run queue / blocked", "%(on_cpu_s)s / %(run_queue_s)s / %(blocked_s)s" % base["pg_dump"],
         "%(on_cpu_s)s / %(run_queue_s)s / %(blocked_s)s" % mod["pg_dump"]),
        ("peak RSS, MB", "pg_dump %s" % base["pg_dump_peak_rss_mb"],
         "module %s; pg_dump %s" % (mod["peak_rss_mb_max"], mod["pg_dump_peak_rss_mb"])),
    ]
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    figures = (report["throughput_ratio"], report["throughput_ratio_ansible"], RATIO_TARGET, mod["peak_rss_mb_max"],
               RSS_TARGET_MB)
    lines.append("ratio module/baseline: %.3f (totals.seconds), %.3f (ansible-playbook run); target >= %.2f; peak RSS "
                 "of the module %.1f MB, target < %d MB" % figures)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000, help="about the database's size (pg_database_size)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--collections", default=os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.abspath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), *[os.pardir] * 4)))
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="cbpgbench-", dir="/tmp")
    report: dict = {"cores": os.cpu_count(), "rounds": args.rounds, "settings": SETTINGS}
    try:
        with postgres(os.path.join(workdir, "logs"), settings=SETTINGS) as service:
            server, postmaster = service.server, service.process.pid
            report["database"] = database = build(server, args.size_mb)
            expected_rows = sum(t["rows"] for t in database["tables"].values())
            report["pg_dump_version"] = subprocess.run([os.path.join(server.bin_dir, "pg_dump"), "--version"],
                                                       capture_output=True, text=True, check=True).stdout.strip()
            baseline, module, load = [], [], []
            for _round in range(args.rounds):
                baseline.append(run_baseline(server, postmaster))
                module.append(run_dump_module(server, postmaster, args.collections, workdir, expected_rows))
                load.append([round(value, 2) for value in os.getloadavg()])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    size = database["bytes"]
    base_s, module_s, ansible_s = median(baseline, "seconds"), median(module, "seconds"), median(module, "ansible_seconds")
    report["order"] = "baseline, module, alternating; medians of %d each" % args.rounds
    report["load_average_after_each_pair"] = load
    report["baseline"] = {
        "seconds": [round(r["seconds"], 2) for r in baseline], "mb_per_s": round(size / base_s / MB, 1),
        "client_cpu_s": round(median(baseline, "client_cpu_s"), 1), "server_cpu_s": round(median(baseline, "server_cpu_s"), 1),
        "pg_dump_peak_rss_mb": round(max(r["pg_dump_peak_rss_kb"] for r in baseline) * 1024 / MB, 1),
        "pg_dump": pg_dump_profile(baseline),
    }
    report["module"] = {
        "seconds": [r["seconds"] for r in module], "ansible_seconds": [round(r["ansible_seconds"], 2) for r in module],
        "mb_per_s": round(size / module_s / MB, 1), "mb_per_s_ansible": round(size / ansible_s / MB, 1),
        "module_cpu_s": round(median(module, "module_cpu_s"), 1),
        "module_children_cpu_s": round(median(module, "module_children_cpu_s"), 1),
        "ansible_cpu_s": round(median(module, "ansible_cpu_s"), 1), "server_cpu_s": round(median(module, "server_cpu_s"), 1),
        "peak_rss_mb": [round(r["peak_rss_kb"] * 1024 / MB, 1) for r in module],
        "peak_rss_mb_max": round(max(r["peak_rss_kb"] for r in module) * 1024 / MB, 1),
        "pg_dump_peak_rss_mb": round(max(r["pg_dump_peak_rss_kb"] for r in module) * 1024 / MB, 1),
        "pg_dump_schema_only_peak_rss_mb": round(max(r["pg_dump_schema_peak_rss_kb"] for r in module) * 1024 / MB, 1),
        "artifact_bytes": [r["artifact_bytes"] for r in module],
        "pg_dump": pg_dump_profile(module),
    }
    report["throughput_ratio"] = round(base_s / module_s, 3)  # module / baseline, the module's own time
    report["throughput_ratio_ansible"] = round(base_s / ansible_s, 3)  # the whole ansible-playbook run
    print(table(report))
    met = report["throughput_ratio"] >= RATIO_TARGET and report["module"]["peak_rss_mb_max"] < RSS_TARGET_MB
    return emit(report, args.results, "postgres.json", met)


if __name__ == "__main__":
    sys.exit(main())
