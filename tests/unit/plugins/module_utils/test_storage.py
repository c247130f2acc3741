# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filesystem backend safety and the S3 part-size schedule (pure logic; S3 I/O is in tests/integration)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._storage import InvalidKeyError, StorageError, backend_from_params
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.plugins.module_utils._storage_s3 import (
    S3_MAX_OBJECT_SIZE,
    S3_MAX_PART_SIZE,
    S3_MAX_PARTS,
    S3_MIN_PART_SIZE,
    s3_part_size,
)


@pytest.mark.parametrize("key", [
    "../outside", "a/../../outside", "/etc/passwd", "a//b", "./a", "a/./b", "", "a/..", "a\\..\\b", "a\x00b",
])
def test_keys_that_escape_or_are_malformed_are_refused(fs_backend, key):
    with pytest.raises(InvalidKeyError):
        fs_backend.write(key, [b"x"])
    with pytest.raises(InvalidKeyError):
        fs_backend.stat(key)


def test_symlink_that_leads_out_of_the_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "store"
    root.mkdir()
    os.symlink(str(outside), str(root / "job"))
    backend = FilesystemBackend(str(root))
    with pytest.raises(InvalidKeyError, match="outside the storage root"):
        backend.write("job/2024-01-01/x_20240101T000000Z.tar", [b"data"])
    with pytest.raises(InvalidKeyError):
        backend.open("job/secret")
    assert os.listdir(str(outside)) == []
    # A symlinked directory pointing out is not followed by listing either.
    (outside / "leak").write_bytes(b"secret")
    assert [obj.key for obj in backend.list("")] == []


def test_symlink_inside_the_root_is_allowed(tmp_path):
    root = tmp_path / "store"
    (root / "real").mkdir(parents=True)
    os.symlink(str(root / "real"), str(root / "alias"))
    backend = FilesystemBackend(str(root))
    backend.write("alias/file", [b"data"])
    assert (root / "real" / "file").read_bytes() == b"data"


def test_default_modes_are_private(fs_backend):
    fs_backend.write("job/2024-01-01/a_20240101T000000Z.tar", [b"data"])
    root = fs_backend.root
    assert stat.S_IMODE(os.stat(os.path.join(root, "job")).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(root, "job", "2024-01-01")).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(root, "job", "2024-01-01", "a_20240101T000000Z.tar")).st_mode) == 0o600


def test_user_modes_are_applied_despite_umask(tmp_path):
    old = os.umask(0o077)
    try:
        backend = FilesystemBackend(str(tmp_path / "store"), directory_mode="0750", file_mode="0640")
        backend.write("job/x", [b"data"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(str(tmp_path / "store" / "job")).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(str(tmp_path / "store" / "job" / "x")).st_mode) == 0o640


def test_bad_mode_is_a_clear_error(tmp_path):
    with pytest.raises(StorageError, match="directory_mode 'rwx'"):
        FilesystemBackend(str(tmp_path), directory_mode="rwx")


def test_overwrite_false_keeps_the_existing_file(fs_backend):
    fs_backend.write("k", [b"first"])
    with pytest.raises(StorageError, match="refusing to overwrite"):
        fs_backend.write("k", [b"second"], overwrite=False)
    assert fs_backend.read_bytes("k") == b"first"
    assert sorted(os.listdir(fs_backend.root)) == ["k"]


def test_write_is_atomic_a_failing_stream_keeps_the_old_file(fs_backend):
    fs_backend.write("k", [b"old content"])

    def failing():
        yield b"new"
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        fs_backend.write("k", failing())
    assert fs_backend.read_bytes("k") == b"old content"
    assert os.listdir(fs_backend.root) == ["k"]  # no temp file left


def test_delete_removes_emptied_folders_but_not_the_root(fs_backend):
    keys = ["job/2024-01-01/a", "job/2024-01-01/b", "job/2024-01-02/c"]
    for key in keys:
        fs_backend.write(key, [b"x"])
    result = fs_backend.delete_many(keys[:2])
    assert result.deleted == keys[:2] and not result.errors
    assert os.listdir(os.path.join(fs_backend.root, "job")) == ["2024-01-02"]
    fs_backend.delete_many(keys[2:])
    assert os.listdir(fs_backend.root) == []


def test_part_sizes_fit_five_terabytes_in_ten_thousand_parts():
    sizes = [s3_part_size(n) for n in range(1, S3_MAX_PARTS + 1)]
    assert sum(sizes) >= S3_MAX_OBJECT_SIZE
    assert all(S3_MIN_PART_SIZE <= size <= S3_MAX_PART_SIZE for size in sizes)
    assert sizes == sorted(sizes)  # grows, never shrinks
    assert sizes[0] == 8 * 1024 * 1024  # small artifacts use small parts


def test_unknown_backend_type_is_named():
    with pytest.raises(StorageError, match="'ftp'"):
        backend_from_params({"type": "ftp"})


def test_filesystem_conditional_writes(tmp_path):
    from ansible_collections.corebackup.backup.plugins.module_utils._storage import PreconditionFailed
    backend = FilesystemBackend(str(tmp_path))
    backend.write("job/2026-11-22/manifest.json", [b"v1"])
    stale = backend.stat("job/2026-11-22/manifest.json").etag
    backend.write("job/2026-11-22/manifest.json", [b"v2"], if_match=stale)
    with pytest.raises(PreconditionFailed, match="changed since it was read"):
        backend.write("job/2026-11-22/manifest.json", [b"v3"], if_match=stale)
    with pytest.raises(PreconditionFailed, match="already exists"):
        backend.write("job/2026-11-22/manifest.json", [b"v4"], overwrite=False)
    assert backend.read_bytes("job/2026-11-22/manifest.json") == b"v2"
    assert sorted(os.listdir(tmp_path / "job" / "2026-11-22")) == ["manifest.json"]  # no temp file left


def test_no_clobber_without_hard_links(tmp_path, monkeypatch):
    """SMB/CIFS and some FUSE mounts refuse link(): no-clobber falls back to check-then-rename."""
    from ansible_collections.corebackup.backup.plugins.module_utils._storage import PreconditionFailed

    def no_links(*_args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    backend = FilesystemBackend(str(tmp_path))
    backend.write("job/2026-11-22/runs/r1.json", [b"first"], overwrite=False)
    with pytest.raises(PreconditionFailed, match="already exists"):
        backend.write("job/2026-11-22/runs/r1.json", [b"second"], overwrite=False)
    assert backend.read_bytes("job/2026-11-22/runs/r1.json") == b"first"
    assert os.listdir(tmp_path / "job" / "2026-11-22" / "runs") == ["r1.json"]
