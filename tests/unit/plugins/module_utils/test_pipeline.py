# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The streaming writer's output, checked with the standard tools a restorer would use."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import (
    ArtifactWriter,
    PipelineError,
    age_decrypt,
    bytes_stream,
    command_stream,
    decompress,
    tar_stream,
    walk_tree,
)
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError
from ansible_collections.corebackup.backup.tests.conftest import files_below

DECOMPRESS = {"gzip": ["gzip", "-dc"], "zstd": ["zstd", "-dc"], "none": ["cat"]}


@pytest.fixture
def tree(tmp_path):
    """A small tree with binary and text files, an empty directory, a symlink and a unicode name."""
    root = tmp_path / "source"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "random.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "sub" / "text.txt").write_bytes(b"line of text\n" * 50000)
    (root / "sub" / "deeper" / "ünï.txt").write_text("unicode name")
    os.symlink("sub/text.txt", str(root / "link"))
    return root


def tree_digest(root):
    """Every path below root with its content digest (or link target); the thing a restore must reproduce."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                result[rel] = "link:" + os.readlink(path)
            elif os.path.isdir(path):
                result[rel] = "dir"
            else:
                with open(path, "rb") as handle:
                    result[rel] = hashlib.sha256(handle.read()).hexdigest()
    return result


def restore_with_standard_tools(stored_path, compression, identity, dest):
    """age -d | gzip -dc | tar -x, as an operator would do by hand."""
    os.makedirs(dest)
    with open(stored_path, "rb") as stored:
        if identity:
            decrypted = subprocess.run(["age", "-d", "-i", identity], stdin=stored, capture_output=True, check=True).stdout
        else:
            decrypted = stored.read()
    raw = subprocess.run(DECOMPRESS[compression], input=decrypted, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=raw, check=True)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "age"])
def test_stored_artifact_restores_to_the_input(fs_backend, tree, tmp_path, age_identity, compression, encrypted):
    identity, recipient = age_identity
    encryption = {"type": "age", "recipients": [recipient]} if encrypted else None
    writer = ArtifactWriter(fs_backend, compression, 3, encryption)
    artifact = writer.store("job", "source tree", "tar", tar_stream(str(tree)))

    stored_path = fs_backend.path_for(artifact.key)
    expected_ext = {"gzip": ".tar.gz", "zstd": ".tar.zst", "none": ".tar"}[compression] + (".age" if encrypted else "")
    assert artifact.key.endswith(expected_ext)
    sha256sum = subprocess.run(["sha256sum", stored_path], capture_output=True, text=True, check=True).stdout.split()[0]
    assert artifact.sha256 == sha256sum
    assert artifact.size == os.path.getsize(stored_path)
    assert artifact.compression == compression
    assert artifact.encryption == encryption

    restore_with_standard_tools(stored_path, compression, identity if encrypted else None, str(tmp_path / "restored"))
    assert tree_digest(tmp_path / "restored" / "source") == tree_digest(tree)


def test_own_decrypt_and_decompress_invert_the_writer(fs_backend, age_identity):
    identity, recipient = age_identity
    payload = os.urandom(2 * 1024 * 1024) + b"tail" * 100000
    writer = ArtifactWriter(fs_backend, "gzip", 1, {"recipients": [recipient]})
    artifact = writer.store("job", "blob", "bin", bytes_stream([payload[i:i + 70000] for i in range(0, len(payload), 70000)]))
    with fs_backend.open(artifact.key) as reader:
        restored = b"".join(decompress(age_decrypt(iter(lambda: reader.read(65536), b""), identity), "gzip"))
    assert restored == payload


def test_same_input_gives_the_same_bytes(fs_backend, tree):
    """Unchanged sources must not look changed: tar and gzip output are deterministic."""
    writer = ArtifactWriter(fs_backend, "gzip", 6)
    first = writer.write("job/a", tar_stream(str(tree)))
    second = writer.write("job/b", tar_stream(str(tree)))
    assert first.sha256 == second.sha256


def _failing_source(after_bytes):
    sent = 0
    while sent < after_bytes:
        block = os.urandom(256 * 1024)
        sent += len(block)
        yield block
    raise RuntimeError("producer failed half-way")


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "age"])
def test_failing_producer_leaves_nothing_and_stops_every_stage(fs_backend, age_identity, compression, encrypted):
    threads_before = threading.active_count()
    encryption = {"recipients": [age_identity[1]]} if encrypted else None
    writer = ArtifactWriter(fs_backend, compression, 1, encryption)
    with pytest.raises(RuntimeError, match="half-way"):
        writer.write("job/2024-01-01/x_20240101T000000Z.tar", bytes_stream(_failing_source(5 * 1024 * 1024)))
    assert files_below(fs_backend.root) == []
    assert threading.active_count() == threads_before


def test_failing_storage_stops_the_producer(tmp_path):
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield os.urandom(65536)  # incompressible: every input block reaches the backend

    class BrokenBackend:
        def write(self, key, chunks, metadata=None, overwrite=True):
            for index, _chunk in enumerate(chunks):
                if index == 3:
                    raise StorageError("disk full")
            raise AssertionError("not reached")

    threads_before = threading.active_count()
    with pytest.raises(StorageError, match="disk full"):
        ArtifactWriter(BrokenBackend(), "gzip", 1).write("k", endless())
    assert threading.active_count() == threads_before
    # Stopped promptly: what was produced is what the bounded queues hold (a few MiB), not more.
    assert len(produced) * 65536 < 16 * 1024 * 1024


def test_command_producer_failure_names_the_command_and_its_error(fs_backend):
    script = "import sys; sys.stdout.write('x' * 100000); sys.stderr.write('dump failed: auth error'); sys.exit(3)"
    writer = ArtifactWriter(fs_backend, "gzip", 1)
    with pytest.raises(PipelineError, match="exited with status 3: dump failed: auth error"):
        writer.write("job/k", command_stream([sys.executable, "-c", script]))
    assert files_below(fs_backend.root) == []


def test_command_producer_output_is_stored(fs_backend):
    writer = ArtifactWriter(fs_backend, "none")
    artifact = writer.write("job/k", command_stream(["printf", "hello world"]))
    assert fs_backend.read_bytes("job/k") == b"hello world"
    assert artifact.sha256 == hashlib.sha256(b"hello world").hexdigest()


def test_an_existing_artifact_is_never_overwritten(fs_backend):
    writer = ArtifactWriter(fs_backend, "none")
    writer.write("job/k", bytes_stream([b"original"]))
    with pytest.raises(StorageError, match="refusing to overwrite"):
        writer.write("job/k", bytes_stream([b"replacement"]))
    assert fs_backend.read_bytes("job/k") == b"original"


@pytest.mark.parametrize("recipients, message", [
    ([], "at least one age recipient"),
    (["AGE-SECRET-KEY-1QQQ"], "not an age recipient"),
    (["age1short"], "not an age recipient"),
])
def test_bad_recipients_are_refused_before_any_work(fs_backend, recipients, message):
    with pytest.raises(PipelineError, match=message):
        ArtifactWriter(fs_backend, "gzip", 6, {"type": "age", "recipients": recipients})


def test_secret_key_is_not_echoed_in_the_error(fs_backend):
    secret = "AGE-SECRET-KEY-1" + "Q" * 58
    with pytest.raises(PipelineError) as info:
        ArtifactWriter(fs_backend, "gzip", 6, {"recipients": [secret]})
    assert secret not in str(info.value)


@pytest.mark.parametrize("compression, level, message", [
    ("gzip", 10, "out of range for gzip"),
    ("zstd", 0, "out of range for zstd"),
    ("brotli", 5, "compression must be one of"),
])
def test_bad_compression_settings_are_named(fs_backend, compression, level, message):
    with pytest.raises(PipelineError, match=message):
        ArtifactWriter(fs_backend, compression, level)


def test_missing_source_is_named(tmp_path):
    with pytest.raises(PipelineError, match="no such file"):
        tar_stream(str(tmp_path / "nope"))


@pytest.mark.parametrize("change", ["shrink", "grow"])
def test_a_file_that_changes_while_it_is_read_stays_consistent_with_its_header(tmp_path, change):
    size = 48 * 1024 * 1024
    path = tmp_path / "live.bin"
    path.write_bytes(b"a" * size)
    warnings = []
    stream = tar_stream([(str(path), "live.bin")], warn=warnings.append)
    chunks = [next(stream)]  # the reader is now well into the file, a few chunks ahead at most
    with open(path, "r+b") as handle:
        if change == "shrink":
            handle.truncate(2 * 1024 * 1024)
        else:
            handle.seek(0, os.SEEK_END)
            handle.write(b"b" * 1000)
    chunks.extend(stream)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        member = archive.getmember("live.bin")
        data = archive.extractfile(member).read()
    assert member.size == len(data) == size
    if change == "shrink":
        assert data[:2 * 1024 * 1024] == b"a" * (2 * 1024 * 1024) and data.endswith(b"\0" * 1024)
        assert warnings == ["%s shrank while it was read: padded with zeros to the size it had" % path]
    else:
        assert data == b"a" * size
        assert warnings == ["%s grew while it was read: archived at the size it had" % path]


def test_followed_links_that_loop_are_entered_once(tmp_path):
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f").write_bytes(b"f")
    os.symlink("..", str(tmp_path / "tree" / "sub" / "up"))
    entries = [e.relative for e in walk_tree(str(tmp_path / "tree"), follow_symlinks=True)]
    assert entries == ["", "sub", "sub/f", "sub/up"]
    assert [e.relative for e in walk_tree(str(tmp_path / "tree"), exclude=["f"])] == ["", "sub", "sub/up"]


def test_a_command_given_one_variable_keeps_the_environment(tmp_path):
    out = b"".join(command_stream(["sh", "-c", 'echo "$EXTRA:$PATH"'], env={"EXTRA": "x"}))
    assert out.decode().strip() == "x:" + os.environ["PATH"]
