# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: S3Backend.write of a 1 GB stream through a 50 ms-per-request proxy, parts sent concurrently
against one at a time.

    endpoint:    moto in server mode (its own process) on 127.0.0.1, behind the test bed's proxy
                 (tests/testbed/s3_proxy.py) with a delay of 50 ms on every request (Rule("*", "delay"))
    concurrent:  S3Backend.write with upload_concurrency=4 (the default), 8 MiB parts (the default)
    sequential:  the same with upload_concurrency=1
    stream:      a fixed 1 MiB random block repeated, an 8-byte counter in front of each, so that every part
                 differs; cheap enough that the producer is not what is measured

Each upload runs in a child process of its own, so that its peak RSS (VmHWM) is its own; the contenders
alternate, different keys in the same bucket and prefix, each object deleted after it was checked (size and
ETag, from the write and from a stat of its own). The medians give the ratio (sequential seconds /
concurrent seconds). Also measured, to tell where the time goes: each contender straight against moto
(no proxy, no delay; --direct-rounds), the CPU time of the client, of moto and of the proxy (this process),
how many requests the proxy answered at once, and the client's time per S3 operation.

Targets (issue 16): ratio >= 3; peak RSS of each upload process within concurrency x part size + 50 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

from ansible_collections.corebackup.backup.bench._report import emit
from ansible_collections.corebackup.backup.plugins.module_utils._storage_s3 import S3Backend, s3_part_size
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS, moto_s3

MB = 1000 * 1000
MiB = 1024 * 1024
CHUNK = MiB
BUCKET = "corebackup-bench-upload"
PREFIX = "bench/"
SEED = 16
RSS_MARGIN = 50 * MB


def stream(size: int, seed: int = SEED):
    """``size`` bytes in 1 MiB chunks: one random block, an 8-byte counter in front of each copy."""
    tail = random.Random(seed).randbytes(CHUNK - 8)
    sent = counter = 0
    while sent < size:
        chunk = struct.pack(">Q", counter) + tail
        if size - sent < CHUNK:
            chunk = chunk[:size - sent]
        sent += len(chunk)
        counter += 1
        yield chunk


def expected_etag(size: int, part_size: int) -> tuple[str, int]:
    """The multipart ETag S3 gives the stream, and its part count, computed here independently of the backend."""
    digests, part, number = [], hashlib.md5(usedforsecurity=False), 1
    filled, target = 0, s3_part_size(1, part_size)
    for chunk in stream(size):
        view = memoryview(chunk)
        while view:
            take = min(len(view), target - filled)
            part.update(view[:take])
            filled += take
            view = view[take:]
            if filled == target:
                digests.append(part.digest())
                part, filled, number = hashlib.md5(usedforsecurity=False), 0, number + 1
                target = s3_part_size(number, part_size)
    if filled or not digests:
        digests.append(part.digest())
    if len(digests) == 1:  # one PUT: a plain MD5
        return digests[0].hex(), 1
    return "%s-%d" % (hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest(), len(digests)), len(digests)


def vm_hwm_kb(pid: str = "self") -> int:
    with open("/proc/%s/status" % pid, encoding="ascii") as status:
        return int([line.split()[1] for line in status if line.startswith("VmHWM:")][0])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads."""
    with open("/proc/%d/stat" % pid, encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def busy_cpu() -> float:
    """CPU time the whole machine spent, all cores (/proc/stat): user, nice, system, irq and softirq."""
    with open("/proc/stat", encoding="ascii") as stat:
        user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in stat.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# The upload process
# --------------------------------------------------------------------------------------------

def child(spec: dict) -> int:
    """One S3Backend.write of the stream; prints what it measured as JSON."""
    backend = S3Backend(bucket=spec["bucket"], prefix=spec["prefix"], endpoint_url=spec["endpoint"],
                        part_size=spec["part_size"], upload_concurrency=spec["concurrency"], **S3_TEST_CREDENTIALS)
    # The client's time per operation: from the call (after serialising) to the parsed answer; and when the
    # completion started and ended, with moto's CPU time then.
    local, lock, timings, marks = threading.local(), threading.Lock(), {}, {}

    def before(model=None, **_kwargs):
        local.started = time.perf_counter()
        if model.name == "CompleteMultipartUpload":
            marks.update(complete_started=local.started, moto_cpu_complete_started=cpu_seconds(spec["moto_pid"]),
                         client_cpu_complete_started=own_cpu())

    def after(model=None, **_kwargs):
        now = time.perf_counter()
        with lock:
            timings.setdefault(model.name, []).append(now - local.started)
        if model.name == "CompleteMultipartUpload":
            marks["complete_ended"], marks["moto_cpu_complete_ended"] = now, cpu_seconds(spec["moto_pid"])

    backend.client.head_bucket(Bucket=spec["bucket"])  # loads botocore's models, opens a connection
    floor_kb = vm_hwm_kb()
    backend.requests.clear()
    backend.client.meta.events.register("before-call.s3", before)
    backend.client.meta.events.register("after-call.s3", after)
    cpu = cpu_started = own_cpu()
    moto_cpu = moto_cpu_started = cpu_seconds(spec["moto_pid"])
    started = time.perf_counter()
    stored = backend.write(spec["key"], stream(spec["size"]))
    seconds = time.perf_counter() - started
    cpu, moto_cpu = own_cpu() - cpu, cpu_seconds(spec["moto_pid"]) - moto_cpu
    requests = dict(backend.requests)  # those of the write
    stat = backend.stat(spec["key"])
    print(json.dumps({
        "seconds": seconds, "cpu_seconds": cpu, "peak_rss_kb": vm_hwm_kb(), "floor_rss_kb": floor_kb,
        "moto_cpu_seconds": moto_cpu,
        "phases": {  # the parts (from the start to the completion), the completion, the check after it
            "parts_seconds": marks["complete_started"] - started,
            "complete_seconds": marks["complete_ended"] - marks["complete_started"],
            "after_seconds": started + seconds - marks["complete_ended"],
            "moto_cpu_parts_seconds": marks["moto_cpu_complete_started"] - moto_cpu_started,
            "client_cpu_parts_seconds": marks["client_cpu_complete_started"] - cpu_started,
            "moto_cpu_complete_seconds": marks["moto_cpu_complete_ended"] - marks["moto_cpu_complete_started"],
        },
        "requests": requests,
        "timings": {name: {"count": len(values), "total": sum(values), "mean": statistics.mean(values),
                           "max": max(values)} for name, values in timings.items()},
        "written": {"size": stored.size, "etag": stored.etag},
        "stat": {"size": stat.size, "etag": stat.etag} if stat else None,
    }))
    return 0


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------

def upload(endpoint: str, key: str, concurrency: int, args, moto_pid: int) -> dict:
    spec = {"endpoint": endpoint, "bucket": BUCKET, "prefix": PREFIX, "key": key, "size": args.size,
            "part_size": args.part_size, "concurrency": concurrency, "moto_pid": moto_pid}
    moto_cpu, proxy_cpu, children_cpu, busy = cpu_seconds(moto_pid), own_cpu(), children_cpu_seconds(), busy_cpu()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError("upload of %s (concurrency %d) failed:\n%s" % (key, concurrency, done.stderr[-4000:]))
    run = json.loads(done.stdout)
    run["process_seconds"] = wall
    ours = [cpu_seconds(moto_pid) - moto_cpu, own_cpu() - proxy_cpu, children_cpu_seconds() - children_cpu]
    run["proxy_cpu_seconds"] = ours[1]  # this process: the proxy's threads (and starting the upload process)
    # The CPU time the machine spent on other processes meanwhile (it is shared): all busy time less ours.
    run["others_cpu_seconds"] = busy_cpu() - busy - sum(ours)
    return run


def checked(run: dict, admin, key: str, etag: str, size: int) -> None:
    """The object as written, as the upload process saw it in a stat, and as seen here."""
    stored = admin.stat(key)
    seen = {"size": stored.size, "etag": stored.etag} if stored else None
    for what, found in (("written", run["written"]), ("stat", run["stat"]), ("admin stat", seen)):
        if found != {"size": size, "etag": etag}:
            raise AssertionError("%s of %s: %r, expected size %d and ETag %s" % (what, key, found, size, etag))
    result = admin.delete_many([key])
    if admin.stat(key) is not None:
        raise AssertionError("%s still there after delete: %r" % (key, result))


def mb(kb: int) -> float:
    return round(kb * 1024 / MB, 1)


def summary(runs: list[dict], concurrency: int, part_size: int) -> dict:
    """One contender over its rounds (lists: a figure per round)."""
    bound = concurrency * part_size + RSS_MARGIN
    peak = max(run["peak_rss_kb"] for run in runs) * 1024
    parts = runs[0]["requests"]["UploadPart"]

    def each(get, digits=2):
        return [round(get(run), digits) for run in runs]
    return {
        "seconds": each(lambda run: run["seconds"]),
        "median_seconds": round(statistics.median(run["seconds"] for run in runs), 2),
        "parts_seconds": each(lambda run: run["phases"]["parts_seconds"]),
        "complete_seconds": each(lambda run: run["phases"]["complete_seconds"]),
        "mb_per_s": each(lambda run: run["size_mb_per_s"], 1),
        "peak_rss_mb": each(lambda run: run["peak_rss_kb"] * 1024 / MB, 1),
        "rss_before_upload_mb": each(lambda run: run["floor_rss_kb"] * 1024 / MB, 1),
        "rss_bound_mb": round(bound / MB, 1),
        "rss_within_bound": peak <= bound,
        "requests": runs[0]["requests"],
        "seconds_per_part": each(lambda run: run["timings"]["UploadPart"]["mean"], 3),
        "parts_in_flight_mean": each(lambda run: run["timings"]["UploadPart"]["total"] / run["phases"]["parts_seconds"]),
        "proxy_max_in_flight": [run.get("max_in_flight") for run in runs],
        "cpu_ms_per_part": {  # the parts only (not the completion), by the number of parts
            "client": each(lambda run: 1000 * run["phases"]["client_cpu_parts_seconds"] / parts, 1),
            "moto": each(lambda run: 1000 * run["phases"]["moto_cpu_parts_seconds"] / parts, 1),
        },
        "cpu_seconds": {
            "client": each(lambda run: run["cpu_seconds"]),
            "moto": each(lambda run: run["moto_cpu_seconds"]),
            "moto_in_complete": each(lambda run: run["phases"]["moto_cpu_complete_seconds"]),
            "proxy": each(lambda run: run["proxy_cpu_seconds"]),
            "other_processes": each(lambda run: run["others_cpu_seconds"]),
        },
    }


def measure(args, runs: dict, contenders: tuple, workdir: str, etag: str) -> int:
    """Runs the rounds into ``runs``; moto's peak RSS (KiB)."""
    # Not at the top: the upload process runs this file too, and has no use for the proxy's imports.
    from ansible_collections.corebackup.backup.tests.testbed.s3_proxy import Rule, S3Proxy  # pylint: disable=import-outside-toplevel
    with moto_s3(workdir) as moto, S3Proxy(moto.port) as proxy:
        direct = "http://127.0.0.1:%d" % moto.port
        admin = S3Backend(bucket=BUCKET, prefix=PREFIX, endpoint_url=direct, **S3_TEST_CREDENTIALS)
        admin.client.create_bucket(Bucket=BUCKET)
        schedule = [("proxy", r) for r in range(args.rounds)] + [("direct", r) for r in range(args.direct_rounds)]
        for path, number in schedule:
            for concurrency in contenders:
                key = "upload-%s-%d-c%d.bin" % (path, number, concurrency)
                proxy.clear()  # also drops the rules: the delay again, for every request
                proxy.add(Rule("*", "delay", seconds=args.delay, count=-1))
                run = upload(proxy.url if path == "proxy" else direct, key, concurrency, args, moto.process.pid)
                if path == "proxy":
                    run["max_in_flight"] = proxy.max_in_flight.get("UploadPart", 0)
                    logged = len(proxy.log)
                    if logged != sum(run["requests"].values()) + 2:  # + a HeadBucket before, a HeadObject after
                        raise AssertionError("proxy saw %d requests, the client counted %r" % (logged, run["requests"]))
                run["size_mb_per_s"] = args.size / MB / run["seconds"]
                checked(run, admin, key, etag, args.size)
                runs[path][concurrency].append(run)
                print("%s round %d, concurrency %d: %.2f s (parts %.2f s, completion %.2f s), peak RSS %.1f MB, CPU: "
                      "moto %.1f s, client %.1f s, other processes %.1f s" % (
                          path, number, concurrency, run["seconds"], run["phases"]["parts_seconds"],
                          run["phases"]["complete_seconds"], mb(run["peak_rss_kb"]), run["moto_cpu_seconds"],
                          run["cpu_seconds"], run["others_cpu_seconds"]), file=sys.stderr)
        return vm_hwm_kb(str(moto.process.pid))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size-mb", type=float, default=1000, help="stream size in MB (10^6 bytes)")
    parser.add_argument("--part-size-mib", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds the proxy waits on every request")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--direct-rounds", type=int, default=1,
                        help="rounds of each contender straight against moto (no proxy, no delay)")
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))
    args.size, args.part_size = int(args.size_mb * MB), args.part_size_mib * MiB

    etag, parts = expected_etag(args.size, args.part_size)
    contenders = (1, args.concurrency)
    runs: dict[str, dict[int, list[dict]]] = {"proxy": {c: [] for c in contenders}, "direct": {c: [] for c in contenders}}
    workdir = tempfile.mkdtemp(prefix="cbs3up-")  # moto's log
    try:
        moto_peak_kb = measure(args, runs, contenders, workdir, etag)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    seq = summary(runs["proxy"][1], 1, args.part_size)
    conc = summary(runs["proxy"][args.concurrency], args.concurrency, args.part_size)
    ratio = seq["median_seconds"] / conc["median_seconds"]
    requests = sum(seq["requests"].values())
    # With one part at a time every request waits its 50 ms in turn; with N parts in flight the parts wait
    # together, ceil(parts / N) times.
    latency_seq = requests * args.delay
    latency_conc = (requests - parts + -(-parts // args.concurrency)) * args.delay
    report = {
        "size_bytes": args.size, "part_size_bytes": args.part_size, "parts": parts, "etag": etag,
        "delay_seconds_per_request": args.delay, "rounds": args.rounds, "cpus": os.cpu_count(),
        "sequential": seq, "concurrent": conc,
        "concurrency": args.concurrency,
        "ratio_sequential_over_concurrent": round(ratio, 2),
        "ratio_parts_only": round(statistics.median(seq["parts_seconds"]) / statistics.median(conc["parts_seconds"]), 2),
        "latency_only_seconds": {
            "sequential": round(latency_seq, 2), "concurrent": round(latency_conc, 2),
            "note": "requests x delay: what the 50 ms alone costs, with nothing else to do",
        },
        "moto_peak_rss_mb": mb(moto_peak_kb),
    }
    if args.direct_rounds:
        dseq = summary(runs["direct"][1], 1, args.part_size)
        dconc = summary(runs["direct"][args.concurrency], args.concurrency, args.part_size)
        for part in (dseq, dconc):
            part.pop("proxy_max_in_flight")
        report["direct_no_proxy"] = {
            "sequential": dseq, "concurrent": dconc,
            "ratio_sequential_over_concurrent": round(dseq["median_seconds"] / dconc["median_seconds"], 2),
            "delay_cost_sequential_seconds": round(seq["median_seconds"] - dseq["median_seconds"], 2),
            "delay_cost_concurrent_seconds": round(conc["median_seconds"] - dconc["median_seconds"], 2),
        }
    met = ratio >= 3 and seq["rss_within_bound"] and conc["rss_within_bound"]
    report["targets"] = {"ratio_at_least_3": ratio >= 3, "sequential_rss_within_bound": seq["rss_within_bound"],
                         "concurrent_rss_within_bound": conc["rss_within_bound"]}
    return emit(report, args.results, "s3_upload.json", met)


if __name__ == "__main__":
    sys.exit(main())
