# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Parallel gzip and bounded zstd: what the standard tools read back, byte for byte, whatever the threads."""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import shutil
import subprocess
import threading
import time

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils import _compress
from ansible_collections.corebackup.backup.plugins.module_utils._compress import (
    GZIP_BLOCK,
    ZSTD_MAX_WINDOW_LOG,
    RunBudget,
    parallel_gzip,
    run_budget,
    zstd_compress,
    zstd_parameters,
)


def sample(size: int, seed: int = 0) -> bytes:
    """A third random, a third base64-like text, a third words: what the benchmarks' trees hold."""
    rng = random.Random(seed)
    third = size // 3
    words = [b"backup", b"restore", b"archive", b"stone", b"river", b"token", b"mirror", b"volume"]
    text = b" ".join(rng.choice(words) for _word in range(third // 6))[:third]
    return rng.randbytes(third) + bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/") for _char in range(third)) + text


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


@pytest.mark.parametrize("length", [0, 1, GZIP_BLOCK - 1, GZIP_BLOCK, GZIP_BLOCK + 1, 3 * GZIP_BLOCK + 12345])
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_gzip_is_read_back_by_python_and_the_same_for_any_thread_count(length, level):
    data = sample(length, seed=length)
    outputs = {threads: b"".join(parallel_gzip(pieces(data, 70_000), level, threads)) for threads in (1, 2, 5)}
    assert outputs[1] == outputs[2] == outputs[5]
    assert gzip.decompress(outputs[1]) == data


def test_gzip_is_read_back_by_the_gzip_command(tmp_path):
    data = sample(5 * GZIP_BLOCK + 999, seed=3)
    path = tmp_path / "out.gz"
    path.write_bytes(b"".join(parallel_gzip(pieces(data, 1 << 16), 6, 4)))
    assert subprocess.run(["gzip", "-t", str(path)], check=False).returncode == 0
    assert subprocess.run(["gzip", "-dc", str(path)], capture_output=True, check=True).stdout == data


def test_gzip_compresses_about_as_well_as_gzip_itself():
    data = sample(2_000_000, seed=4)
    ours = len(b"".join(parallel_gzip([data], 6, 2)))
    assert ours <= len(gzip.compress(data, 6, mtime=0)) * 1.02


@pytest.mark.skipif(not shutil.which("pigz"), reason="pigz is not installed")
def test_pigz_reads_it_too(tmp_path):
    data = sample(3 * GZIP_BLOCK, seed=5)
    path = tmp_path / "out.gz"
    path.write_bytes(b"".join(parallel_gzip([data], 1, 2)))
    assert subprocess.run(["pigz", "-dc", str(path)], capture_output=True, check=True).stdout == data


@pytest.mark.parametrize("level", [1, 3, 9, 19])
@pytest.mark.parametrize("threads", [1, 2])
def test_zstd_is_read_back_by_the_zstd_command(tmp_path, level, threads):
    data = sample(3_000_000, seed=level)
    path = tmp_path / "out.zst"
    path.write_bytes(b"".join(zstd_compress(pieces(data, 1 << 17), level, threads)))
    read = subprocess.run(["zstd", "-dc", "--memory=%dMB" % (1 << (ZSTD_MAX_WINDOW_LOG - 20)), str(path)],
                          capture_output=True, check=True).stdout
    assert hashlib.sha256(read).digest() == hashlib.sha256(data).digest()


def test_zstd_window_and_tables_are_capped_at_high_levels():
    for level in range(1, 23):
        params = zstd_parameters(level, threads=4)
        assert params.window_log <= ZSTD_MAX_WINDOW_LOG and params.hash_log <= 20 and params.chain_log <= 20
    assert zstd_parameters(3, threads=1).threads == 0  # one thread: no worker pool at all


def test_default_threads_are_the_cores_this_process_may_use():
    from ansible_collections.corebackup.backup.plugins.module_utils._compress import default_threads
    assert default_threads() == len(os.sched_getaffinity(0))


def test_one_budget_per_run_whatever_the_options_ask():
    from ansible_collections.corebackup.backup.plugins.module_utils._compress import MEMORY_CEILING, run_budget

    mib = 1024 * 1024
    alone = run_budget(parallel=1, compression_threads=None, upload_concurrency=4, part_memory=16 * mib, cores=8)
    assert alone["compression_threads"] == 8 and alone["upload_concurrency"] == 4
    greedy = run_budget(parallel=16, compression_threads=32, upload_concurrency=64, part_memory=16 * mib, cores=8)
    assert greedy["compression_threads"] * 16 <= greedy["threads_ceiling"] == 16
    assert greedy["upload_concurrency"] * 16 * 16 * mib <= MEMORY_CEILING
    crowded = run_budget(parallel=100, compression_threads=4, upload_concurrency=4, part_memory=16 * mib, cores=2)
    assert crowded["compression_threads"] == 1 and crowded["upload_concurrency"] == 1  # at least one each


def test_threads_are_divided_among_the_items_that_run_at_once_not_by_parallel():
    mib = 1024 * 1024
    one = run_budget(parallel=4, compression_threads=None, upload_concurrency=4, part_memory=16 * mib, cores=2, selected=1)
    assert (one["items_at_once"], one["compression_threads"]) == (1, 2)  # every core, not 2 * 2 // 4
    two = run_budget(parallel=4, compression_threads=None, upload_concurrency=4, part_memory=16 * mib, cores=8, selected=2)
    assert (two["items_at_once"], two["compression_threads"]) == (2, 8)
    many = run_budget(parallel=4, compression_threads=None, upload_concurrency=4, part_memory=16 * mib, cores=8, selected=9)
    assert (many["items_at_once"], many["compression_threads"]) == (4, 4)
    asked = run_budget(parallel=4, compression_threads=1, upload_concurrency=4, part_memory=16 * mib, cores=8, selected=1)
    assert asked["compression_threads"] == 1


def test_threads_freed_by_finished_items_go_to_a_gzip_compression_still_running(monkeypatch):
    """Three items on two cores share four threads, one each; when two are done, the third, half-way through its
    stream, compresses on two. Its bytes are the same as on one thread."""
    budget = RunBudget(parallel=4, compression_threads=None, upload_concurrency=4, part_memory=16 << 20, cores=2)
    budget.select(3)
    assert budget.to_dict()["compression_threads"] == 1 and budget.to_dict()["items_at_once"] == 3
    lock, active, peaks = threading.Lock(), [0], []
    original = _compress._deflate_block

    def observed(level, block, primer, gate=None):
        with gate:
            with lock:
                active[0] += 1
                peaks[-1] = max(peaks[-1], active[0])
            time.sleep(0.02)
            out = original(level, block, primer)
            with lock:
                active[0] -= 1
        return out

    data = sample(40 * 64 * 1024, seed=9)
    blocks = pieces(data, 64 * 1024)
    one_thread = b"".join(parallel_gzip(blocks, 6, 1, block_size=64 * 1024))
    monkeypatch.setattr(_compress, "_deflate_block", observed)

    def source():
        peaks.append(0)
        for index, block in enumerate(blocks):
            if index == len(blocks) // 2:
                budget.finished()
                budget.finished()  # two items done: their threads are free
                peaks.append(0)
            yield block

    out = b"".join(parallel_gzip(source(), 6, budget, block_size=64 * 1024))
    assert peaks == [1, 2]
    assert budget.to_dict()["compression_threads_max"] == 2
    assert out == one_thread and gzip.decompress(out) == data
