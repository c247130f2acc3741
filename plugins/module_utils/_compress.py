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


def run_budget(parallel: int, compression_threads: int | None, upload_concurrency: int, part_memory: int,
               cores: int | None = None) -> dict:
    """What one module run may use, whatever its options ask: compression threads per item and S3 parts in flight
    per artifact, so that ``parallel`` items at once stay within the thread and memory ceilings."""
    cores = cores or default_threads()
    parallel = max(1, parallel)
    thread_ceiling = THREADS_PER_CORE * cores
    threads = max(1, min(compression_threads or cores, thread_ceiling // parallel, MAX_THREADS))
    uploads = max(1, min(upload_concurrency, MEMORY_CEILING // (parallel * part_memory)))
    return {"parallel": parallel, "compression_threads": threads, "upload_concurrency": uploads,
            "threads_ceiling": thread_ceiling, "memory_ceiling_bytes": MEMORY_CEILING}


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


def _deflate_block(level: int, block: bytes, primer: bytes) -> bytes:
    if primer:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, primer)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    return compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)


def gzip_header(level: int) -> bytes:
    """A gzip member header without name or time, so that equal input gives equal bytes."""
    extra_flags = 2 if level == 9 else 4 if level == 1 else 0
    return b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + bytes([extra_flags, GZIP_HEADER_OS])


def parallel_gzip(chunks: t.Iterable[bytes], level: int = 6, threads: int | None = None,
                  block_size: int = GZIP_BLOCK) -> t.Iterator[bytes]:
    """One gzip member of ``chunks``, its blocks deflated by ``threads`` workers; bytes independent of ``threads``.

    At most two blocks per worker are in flight: memory is a few times ``threads * block_size``.
    """
    threads = max(1, min(MAX_THREADS, threads or default_threads()))
    yield gzip_header(level)
    crc, size = 0, 0
    primer = b""
    in_flight: collections.deque = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gzip") as pool:
        try:
            for block in _blocks(chunks, block_size):
                in_flight.append(pool.submit(_deflate_block, level, block, primer))
                crc = zlib.crc32(block, crc)
                size += len(block)
                primer = bytes(block[-GZIP_DICT:])
                while len(in_flight) >= 2 * threads or (in_flight and in_flight[0].done()):
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        finally:
            for future in in_flight:
                future.cancel()
    yield zlib.compressobj(level, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # an empty final block
    yield struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


def zstd_parameters(level: int, threads: int | None = None) -> t.Any:
    """zstd's parameters for ``level``, with window, tables and job size capped so that memory stays bounded.

    A worker holds its jobs' input and output (``ZSTD_JOB_SIZE`` each, plus the window it may refer back to)
    and the match-finder tables (``4 << hash_log`` and ``4 << chain_log`` bytes, 4 MiB each at the caps).
    Measured with two workers, on top of the pipeline's own: 12-16 MiB at levels 1-6, about 25 MiB at
    level 9; above that the window (4 MiB) and the caps bound it, at some cost in ratio.
    """
    threads = max(1, min(MAX_THREADS, threads or default_threads()))
    base = zstandard.ZstdCompressionParameters.from_level(level)
    return zstandard.ZstdCompressionParameters.from_level(
        level, window_log=min(base.window_log, ZSTD_MAX_WINDOW_LOG), hash_log=min(base.hash_log, ZSTD_MAX_HASH_LOG),
        chain_log=min(base.chain_log, ZSTD_MAX_CHAIN_LOG), threads=threads if threads > 1 else 0,
        job_size=ZSTD_JOB_SIZE if threads > 1 else 0, write_content_size=False, write_checksum=True)


def zstd_compress(chunks: t.Iterable[bytes], level: int = 3, threads: int | None = None,
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
