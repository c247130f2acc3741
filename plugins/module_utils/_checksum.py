# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""Streaming sha256 and the re-read verification of stored artifacts."""

from __future__ import annotations

import hashlib
import typing as t
from dataclasses import dataclass

READ_SIZE = 1024 * 1024


class StreamDigest:
    """sha256 and byte count of everything passed through :meth:`wrap` or :meth:`update`."""

    def __init__(self):
        self._sha256 = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._sha256.update(data)
        self.size += len(data)

    def wrap(self, chunks: t.Iterable[bytes]) -> t.Iterator[bytes]:
        """Pass ``chunks`` through, counting them; closing the result closes ``chunks``."""
        iterator = iter(chunks)
        try:
            for chunk in iterator:
                self.update(chunk)
                yield chunk
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


def iter_reader(reader: t.Any, size: int = READ_SIZE) -> t.Iterator[bytes]:
    """Yield blocks from a binary file-like object until it is exhausted."""
    while True:
        block = reader.read(size)
        if not block:
            return
        yield block


def sha256_stream(chunks: t.Iterable[bytes]) -> tuple[str, int]:
    digest = StreamDigest()
    for chunk in chunks:
        digest.update(chunk)
    return digest.sha256, digest.size


@dataclass(frozen=True)
class Verification:
    """Outcome of re-reading one stored artifact."""

    key: str
    status: str  # ok | missing | truncated | corrupted
    expected_size: int | None
    expected_sha256: str
    size: int | None = None
    sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return {
            "key": self.key, "status": self.status, "expected_size": self.expected_size,
            "expected_sha256": self.expected_sha256, "size": self.size, "sha256": self.sha256,
        }


def verify_artifact(backend: t.Any, key: str, expected_sha256: str, expected_size: int | None = None,
                    seen: dict | None = None) -> Verification:
    """Re-read ``key`` from ``backend`` and compare its sha256 (and size) with what was recorded.

    ``truncated`` means the stored object is shorter than recorded, ``corrupted`` that it has the
    recorded size (or is longer) but other bytes. ``seen`` ({data id: (sha256, size)}, kept by the
    caller) reads bytes that several keys share (hard links) or several sets reference (a shared object) only once.
    """
    stored = backend.stat(key)
    if stored is None:
        return Verification(key, "missing", expected_size, expected_sha256)
    if seen is not None and stored.data_id is not None and stored.data_id in seen:
        sha256, size = seen[stored.data_id]
    else:
        with backend.open(key) as reader:
            sha256, size = sha256_stream(iter_reader(reader))
        if seen is not None and stored.data_id is not None:
            seen[stored.data_id] = (sha256, size)
    if sha256 == expected_sha256 and (expected_size is None or size == expected_size):
        status = "ok"
    elif expected_size is not None and size < expected_size:
        status = "truncated"
    else:
        status = "corrupted"
    return Verification(key, status, expected_size, expected_sha256, size, sha256)
