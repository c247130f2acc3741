# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""Compression on every core, in bounded memory.

gzip, as pigz writes it: the stream is cut into blocks of ``GZIP_BLOCK`` bytes, each compressed on
its own in a worker thread (zlib releases the GIL while it deflates) as raw deflate primed with the
last 32 KiB of the block before it, and ended with a sync flush, so that the blocks join into one
deflate stream; an empty final block ends it. One gzip member, one CRC-32 over the whole input:
``gzip -t``, ``gzip -dc`` and Python's ``gzip`` read it as any other, and since the block size does
not depend on the number of threads, the bytes are the same whatever that number is. Reading it back
is one stream and runs on one core (gzip's format has no index of blocks).

zstd, multi-threaded by the library, with a window of at most ``ZSTD_MAX_WINDOW_LOG`` and jobs of
``ZSTD_JOB_SIZE``: the memory a compression needs is then bounded whatever the level (see
:func:`zstd_parameters`); zstd frames written so decompress with a window of the same bound.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import struct
import threading
import typing as t
import zlib

try:
    import zstandard
    HAS_ZSTANDARD = True
except ImportError:  # pragma: no cover - depends on the host
    zstandard = None
    HAS_ZSTANDARD = False

GZIP_BLOCK = 512 * 1024
GZIP_DICT = 32 * 1024  # deflate's window: what a block may refer back to
GZIP_HEADER_OS = 3  # Unix
ZSTD_MAX_WINDOW_LOG = 22  # 4 MiB: levels 1-9 keep their own window (19-22); higher levels are capped here
ZSTD_JOB_SIZE = 512 * 1024  # zstd's smallest: the library holds many jobs' buffers per worker
ZSTD_MAX_HASH_LOG = 20
ZSTD_MAX_CHAIN_LOG = 20
MAX_THREADS = 64


THREADS_PER_CORE = 2  # the run's ceiling of compression threads: twice the cores (one compresses while one waits)
MEMORY_CEILING = 256 * 1024 * 1024  # the run's ceiling of upload buffers


def thread_share(compression_threads: int | None, cores: int, at_once: int) -> int:
    """Compression threads of one item when ``at_once`` items run together: the run's ceiling (twice the cores)
    divided among them, at most ``compression_threads`` (every core by default), at least one."""
    return max(1, min(compression_threads or cores, THREADS_PER_CORE * cores // max(1, at_once), MAX_THREADS))


def run_budget(parallel: int, compression_threads: int | None, upload_concurrency: int, part_memory: int,
               cores: int | None = None, selected: int | None = None) -> dict:
    """What one module run may use, whatever its options ask: compression threads per item and S3 parts in flight
    per artifact, so that the items running at once stay within the thread and memory ceilings.

    Threads are divided among the items that can run at once, ``min(parallel, selected)``, not ``parallel``:
    one item alone gets every core. Upload buffers are sized by ``parallel`` (the store is opened before the
    items are known)."""
    cores = cores or default_threads()
    parallel = max(1, parallel)
    at_once = max(1, min(parallel, parallel if selected is None else selected))
    uploads = max(1, min(upload_concurrency, MEMORY_CEILING // (parallel * part_memory)))
    return {"parallel": parallel, "items_at_once": at_once,
            "compression_threads": thread_share(compression_threads, cores, at_once),
            "upload_concurrency": uploads, "threads_ceiling": THREADS_PER_CORE * cores,
            "memory_ceiling_bytes": MEMORY_CEILING}


class RunBudget:
    """The budget of one run (:func:`run_budget`), shared by its items while they run.

    The run says how many items it selected (:meth:`select`) and when each is done (:meth:`finished`); the
    items that can run at once are then ``min(parallel, items not done)``, and an item's share of the threads
    grows as the last items finish. A gzip compression (:func:`parallel_gzip`) asks for its share before each
    block, so it takes freed threads while it runs; a zstd compression's workers are fixed when its frame
    starts (the library cannot add workers to a frame), so it gets the share of that moment.
    """

    def __init__(self, parallel: int, compression_threads: int | None, upload_concurrency: int, part_memory: int,
                 cores: int | None = None):
        self.cores = cores or default_threads()
        self.compression_threads = compression_threads
        self.start = run_budget(parallel, compression_threads, upload_concurrency, part_memory, self.cores)
        self.parallel = self.start["parallel"]
        self.per_item = thread_share(compression_threads, self.cores, 1)  # the most one item ever gets
        self.upload_concurrency = self.start["upload_concurrency"]
        self._left: int | None = None  # items not done; None until the run says how many it selected
        self._most = 0
        self.changed = threading.Condition()

    def select(self, items: int) -> None:
        with self.changed:
            self._left = items
            self.start = dict(self.start, items_at_once=self.at_once(), compression_threads=self.share())
            self.changed.notify_all()

    def finished(self) -> None:
        """One item is done: its threads go to the items still running."""
        with self.changed:
            if self._left:
                self._left -= 1
            self.changed.notify_all()

    def at_once(self) -> int:
        return max(1, min(self.parallel, self.parallel if self._left is None else self._left))

    def share(self) -> int:
        """One item's compression threads now."""
        return thread_share(self.compression_threads, self.cores, self.at_once())

    def take(self) -> int:
        """The share of an item that starts compressing (or takes another thread) now; remembered for the report."""
        share = self.share()
        self._most = max(self._most, share)
        return share

    def gate(self) -> "ThreadGate":
        return ThreadGate(self)

    def to_dict(self) -> dict:
        """What the run used: the share when its items were selected, and the most one item was given since."""
        return dict(self.start, compression_threads_max=self._most)


class ThreadGate:
    """Lets at most the budget's current share of one compression's blocks be compressed at once."""

    def __init__(self, budget: RunBudget):
        self.budget = budget
        self.active = 0

    def __enter__(self) -> None:
        with self.budget.changed:
            while self.active >= self.budget.share():
                self.budget.changed.wait()
            self.active += 1
            self.budget.take()

    def __exit__(self, *_exc: t.Any) -> None:
        with self.budget.changed:
            self.active -= 1
            self.budget.changed.notify_all()


def default_threads() -> int:
    """Every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _blocks(chunks: t.Iterable[bytes], size: int) -> t.Iterator[t.Any]:
    """The input cut into blocks of exactly ``size`` bytes (the last one shorter); views of the chunks where they
    hold whole blocks (``bytes`` do not change), copies only across chunk boundaries."""
    pending = bytearray()
    for chunk in chunks:
        view = memoryview(chunk if isinstance(chunk, bytes) else bytes(chunk))
        if pending:
            take = size - len(pending)
            pending += view[:take]
            view = view[take:]
            if len(pending) < size:
                continue
            yield bytes(pending)
            pending = bytearray()
        while len(view) >= size:
            yield view[:size]
            view = view[size:]
        if len(view):
            pending += view
    if pending:
        yield bytes(pending)


def _deflate_block(level: int, block: bytes, primer: bytes, gate: ThreadGate | None = None) -> bytes:
    if gate is not None:
        with gate:
            return _deflate_block(level, block, primer)
    if primer:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, primer)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    return compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)


def gzip_header(level: int) -> bytes:
    """A gzip member header without name or time, so that equal input gives equal bytes."""
    extra_flags = 2 if level == 9 else 4 if level == 1 else 0
    return b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + bytes([extra_flags, GZIP_HEADER_OS])


def parallel_gzip(chunks: t.Iterable[bytes], level: int = 6, threads: int | RunBudget | None = None,
                  block_size: int = GZIP_BLOCK) -> t.Iterator[bytes]:
    """One gzip member of ``chunks``, its blocks deflated by ``threads`` workers; bytes independent of ``threads``.

    ``threads`` may be a run's :class:`RunBudget`: the workers are then the item's share of it, read again
    before each block, so that threads freed by items that finished are taken up while this one runs.
    At most two blocks per worker are in flight: memory is a few times ``threads * block_size``.
    """
    gate = threads.gate() if isinstance(threads, RunBudget) else None
    workers = gate.budget.per_item if gate else max(1, min(MAX_THREADS, threads or default_threads()))
    yield gzip_header(level)
    crc, size = 0, 0
    primer = b""
    in_flight: collections.deque = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gzip") as pool:
        try:
            for block in _blocks(chunks, block_size):
                in_flight.append(pool.submit(_deflate_block, level, block, primer, gate))
                crc = zlib.crc32(block, crc)
                size += len(block)
                primer = bytes(block[-GZIP_DICT:])
                limit = 2 * (gate.budget.share() if gate else workers)
                while len(in_flight) >= limit or (in_flight and in_flight[0].done()):
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        finally:
            for future in in_flight:
                future.cancel()
    yield zlib.compressobj(level, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # an empty final block
    yield struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


def zstd_parameters(level: int, threads: int | RunBudget | None = None) -> t.Any:
    """zstd's parameters for ``level``, with window, tables and job size capped so that memory stays bounded.

    A worker holds its jobs' input and output (``ZSTD_JOB_SIZE`` each, plus the window it may refer back to)
    and the match-finder tables (``4 << hash_log`` and ``4 << chain_log`` bytes, 4 MiB each at the caps).
    Measured with two workers, on top of the pipeline's own: 12-16 MiB at levels 1-6, about 25 MiB at
    level 9; above that the window (4 MiB) and the caps bound it, at some cost in ratio.
    """
    if isinstance(threads, RunBudget):
        threads = threads.take()  # the workers of a frame are fixed when it starts
    threads = max(1, min(MAX_THREADS, threads or default_threads()))
    base = zstandard.ZstdCompressionParameters.from_level(level)
    return zstandard.ZstdCompressionParameters.from_level(
        level, window_log=min(base.window_log, ZSTD_MAX_WINDOW_LOG), hash_log=min(base.hash_log, ZSTD_MAX_HASH_LOG),
        chain_log=min(base.chain_log, ZSTD_MAX_CHAIN_LOG), threads=threads if threads > 1 else 0,
        job_size=ZSTD_JOB_SIZE if threads > 1 else 0, write_content_size=False, write_checksum=True)


def zstd_compress(chunks: t.Iterable[bytes], level: int = 3, threads: int | RunBudget | None = None,
                  read_size: int = 1024 * 1024) -> t.Iterator[bytes]:
    """One zstd frame of ``chunks``, compressed by ``threads`` workers in bounded memory."""
    compressor = zstandard.ZstdCompressor(compression_params=zstd_parameters(level, threads))
    stream = compressor.compressobj(size=-1)
    for chunk in chunks:
        if chunk:
            out = stream.compress(chunk)
            if out:
                yield out
    tail = stream.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
    if tail:
        yield tail
