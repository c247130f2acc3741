# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""files_backup through ansible-playbook: restore with tar and compare with the source, entry by entry."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
AWKWARD = os.fsdecode(b"caf\xe9 \xff.txt")  # Latin-1 bytes: not UTF-8
ROOT = os.geteuid() == 0


def make_tree(root):
    os.makedirs(os.path.join(root, "etc", "conf.d"))
    os.makedirs(os.path.join(root, "empty"))
    os.makedirs(os.path.join(root, "cache"))
    files = {"etc/app.conf": b"port = 8080\n", "etc/conf.d/extra.conf": b"x" * 70000, "run.sh": b"#!/bin/sh\necho hi\n",
             "cache/big.tmp": b"t" * 1000, "name with spaces.txt": b"spaces\n", AWKWARD: b"latin-1 name\n",
             "debug.log": b"log\n"}
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as handle:
            handle.write(data)
    os.chmod(os.path.join(root, "run.sh"), 0o750)
    os.chmod(os.path.join(root, "etc", "app.conf"), 0o640)
    os.link(os.path.join(root, "etc", "app.conf"), os.path.join(root, "app.conf.hardlink"))
    os.symlink("etc/app.conf", os.path.join(root, "config-link"))
    os.symlink("nowhere/at/all", os.path.join(root, "dangling"))
    os.utime(os.path.join(root, "etc", "conf.d", "extra.conf"), (1500000000, 1500000000))
    if ROOT:
        os.chown(os.path.join(root, "run.sh"), 1234, 2345)
        os.lchown(os.path.join(root, "config-link"), 4321, 5432)


def snapshot(root, skip=()):
    """Everything a restore must reproduce: {relative path: (type, mode, uid, gid, mtime, content or target)},
    and the hard-link groups."""
    entries, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            relative = os.path.relpath(path, root)
            if any(relative == s or relative.startswith(s + "/") or relative.endswith(s.lstrip("*")) for s in skip):
                continue
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                content = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    content = handle.read()
                inodes.setdefault(info.st_ino, []).append(relative)
            else:
                content = None
            mtime = int(info.st_mtime) if not stat.S_ISDIR(info.st_mode) else None  # tar sets directory times last
            entries[relative] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                                 mtime, content)
    return entries, sorted(sorted(group) for group in inodes.values() if len(group) > 1)


def files(paths, storage, check=False, **options):
    args = dict({"paths": paths, "storage": storage, "fail_on_error": False, "exclude": ["*.tmp"]}, **options)
    return run_module(COLLECTIONS, "files_backup", args, check=check)


def extract(store, key, dest):
    os.makedirs(dest)
    subprocess.run(["tar", "-xzf", os.path.join(store, key), "-C", dest, "--numeric-owner", "--same-permissions"],
                   check=True, capture_output=True)
    return dest


def test_restore_gives_back_every_entry_and_a_rerun_changes_nothing(tmp_path):
    source = str(tmp_path / "data")
    make_tree(source)
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    run = files([{"path": source, "exclude": ["*.log"]}], storage)
    assert not run.failed, run.result.get("msg")
    [entry] = run.result["entries"]
    assert (entry["name"], entry["status"], entry["warnings"]) == ("data", "backed_up", [])
    assert run.result["paths"] == run.result["entries"] and run.result["status"] == "success"
    restored = extract(storage["path"], entry["key"], str(tmp_path / "restored"))
    expected, links = snapshot(source, skip=("cache/big.tmp", "debug.log"))
    got, got_links = snapshot(os.path.join(restored, "data"))
    assert got == expected
    assert got_links == links == [["app.conf.hardlink", "etc/app.conf"]]
    assert AWKWARD in got and "empty" in got and "cache" in got
    assert "cache/big.tmp" not in got and "debug.log" not in got  # excluded by the module and by the path

    checked = files([{"path": source, "exclude": ["*.log"]}], storage, check=True)
    assert not checked.changed and checked.result["entries"][0]["status"] == "unchanged"
    again = files([{"path": source, "exclude": ["*.log"]}], storage)
    assert not again.changed and again.result["entries"][0]["key"] == entry["key"]
    os.chmod(os.path.join(source, "run.sh"), 0o700)  # only a mode changes
    changed = files([{"path": source, "exclude": ["*.log"]}], storage)
    assert changed.changed and changed.result["entries"][0]["status"] == "backed_up"


def test_a_live_sqlite_database_is_copied_consistently_without_its_side_files(tmp_path):
    database = str(tmp_path / "app.db")
    writer = sqlite3.connect(database)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (n INTEGER)")
    writer.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(1000)])
    writer.commit()  # committed into the write-ahead log, not yet into the database file
    writer.execute("INSERT INTO t VALUES (-1)")  # an open transaction that must not be in the copy
    assert os.path.exists(database + "-wal") and os.path.exists(database + "-shm")
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    run = files([{"path": database, "sqlite": True}], storage)
    writer.rollback()
    writer.close()
    assert not run.failed, run.result.get("msg")
    [entry] = run.result["entries"]
    listing = subprocess.run(["tar", "-tzf", os.path.join(storage["path"], entry["key"])], capture_output=True,
                             text=True, check=True).stdout.split()
    assert listing == ["app.db"]
    restored = extract(storage["path"], entry["key"], str(tmp_path / "restored"))
    copy = sqlite3.connect(os.path.join(restored, "app.db"))
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert copy.execute("SELECT count(*), min(n) FROM t").fetchone() == (1000, 0)


# A process of its own that holds the database open (as an application does) and acts when told to.
SQLITE_WRITER = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=" + sys.argv[2])
db.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER, label TEXT)")
db.execute("BEGIN")
db.executemany("INSERT INTO t VALUES (?, ?)", [(n, "row %d" % n) for n in range(2000)])
db.execute("COMMIT")
for line in sys.stdin:
    command = line.strip()
    if command == "write":
        db.execute("INSERT INTO t VALUES (-1, 'one more row')")
    elif command == "checkpoint":  # the log copied into the database file: the file changes, its content does not
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    elif command == "rollback":  # a transaction too big for the page cache, rolled back: the file is rewritten
        db.execute("PRAGMA cache_size=1")
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE t SET label = label || ' never kept'")
        db.execute("ROLLBACK")
    print(db.execute("PRAGMA journal_mode").fetchone()[0], flush=True)
"""


class SqliteWriter:
    """The writer process; ``do()`` returns once it has acted."""

    def __init__(self, database, journal_mode):
        # pylint: disable-next=consider-using-with
        self.process = subprocess.Popen([sys.executable, "-c", SQLITE_WRITER, database, journal_mode],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.do("ready") == journal_mode.lower()

    def do(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_a_sqlite_database_is_backed_up_again_only_when_its_content_changes(tmp_path, journal_mode):
    database = str(tmp_path / "app.db")
    writer = SqliteWriter(database, journal_mode)
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    paths = [{"path": database, "sqlite": True}]
    try:
        first = files(paths, storage)
        assert not first.failed, first.result.get("msg")
        [entry] = first.result["entries"]
        assert first.changed and entry["status"] == "backed_up"

        checked = files(paths, storage, check=True)
        assert not checked.changed and checked.result["entries"][0]["status"] == "unchanged"
        again = files(paths, storage)
        assert not again.changed and again.result["entries"][0]["status"] == "unchanged"
        assert again.result["entries"][0]["key"] == entry["key"]

        # A checkpoint (WAL) or a rolled-back transaction (rollback journal) rewrites the file, not its rows.
        before = os.stat(database).st_mtime_ns
        time.sleep(0.01)
        writer.do("checkpoint" if journal_mode == "WAL" else "rollback")
        assert os.stat(database).st_mtime_ns != before
        quiet = files(paths, storage)
        assert not quiet.changed and quiet.result["entries"][0]["status"] == "unchanged"
        assert files(paths, storage, check=True).result["entries"][0]["status"] == "unchanged"

        writer.do("write")  # one row
        would = files(paths, storage, check=True)
        assert would.changed and would.result["entries"][0]["status"] == "would_back_up"
        written = files(paths, storage)
        assert written.changed and written.result["entries"][0]["status"] == "backed_up"
        assert written.result["entries"][0]["key"] != entry["key"]
        settled = files(paths, storage)
        assert not settled.changed and settled.result["entries"][0]["status"] == "unchanged"
    finally:
        writer.close()
    restored = extract(storage["path"], written.result["entries"][0]["key"], str(tmp_path / "restored"))
    copy = sqlite3.connect(os.path.join(restored, "app.db"))
    assert copy.execute("SELECT count(*), min(n) FROM t").fetchone() == (2001, -1)
    copy.close()


def test_missing_and_unreadable_paths_fail_alone_and_growing_files_are_named(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "f").write_bytes(b"fine")
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    run = files([str(good), str(tmp_path / "missing"), "/proc/sys/vm/drop_caches", "/proc/uptime"], storage)
    assert not run.failed
    by_name = {e["name"]: e for e in run.result["entries"]}
    assert by_name["good"]["status"] == "backed_up" and run.result["status"] == "partial"
    assert by_name["missing"]["status"] == "failed"
    assert by_name["missing"]["error"] == "cannot archive %s: No such file or directory" % (tmp_path / "missing")
    assert by_name["drop_caches"]["status"] == "failed"
    assert by_name["drop_caches"]["error"] == "cannot read /proc/sys/vm/drop_caches: Permission denied"
    # /proc/uptime says it is empty and is not: archived at the size it had, and named.
    assert by_name["uptime"]["status"] == "backed_up"
    assert by_name["uptime"]["warnings"] == ["/proc/uptime grew while it was read: archived at the size it had"]
    assert any("/proc/uptime grew" in w for w in run.result.get("warnings", []))
    strict = files([str(good), str(tmp_path / "missing")], storage, fail_on_error=True)
    assert strict.failed and strict.result["msg"].startswith("1 of 2 paths failed: missing: cannot archive")


def test_one_file_system_stays_on_the_first_file_system(tmp_path):
    source = tmp_path / "data"
    (source / "mnt").mkdir(parents=True)
    (source / "local").write_bytes(b"local")
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(source / "mnt")], capture_output=True, check=False).returncode:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        (source / "mnt" / "other-fs").write_bytes(b"elsewhere")
        storage = {"type": "filesystem", "path": str(tmp_path / "store")}
        both = files([str(source)], storage, job="both")
        one = files([str(source)], storage, job="one", one_file_system=True)
    finally:
        subprocess.run(["umount", str(source / "mnt")], check=True)
    lists = [subprocess.run(["tar", "-tzf", os.path.join(storage["path"], run.result["entries"][0]["key"])],
                            capture_output=True, text=True, check=True).stdout.split() for run in (both, one)]
    assert "data/mnt/other-fs" in lists[0] and "data/mnt/other-fs" not in lists[1]
    assert "data/mnt/" in lists[1] and "data/local" in lists[1]  # the mount point itself is kept, empty


def test_two_paths_that_would_share_an_artifact_name_are_refused(tmp_path):
    (tmp_path / "a" / "x").mkdir(parents=True)
    (tmp_path / "b" / "x").mkdir(parents=True)
    run = files([str(tmp_path / "a" / "x"), str(tmp_path / "b" / "x")], {"type": "filesystem", "path": str(tmp_path / "s")})
    assert run.failed and "two paths would share the artifact name 'x'; give one a name" in run.result["msg"]
    empty = files([], {"type": "filesystem", "path": str(tmp_path / "s")})
    assert empty.failed and empty.result["msg"] == "paths is empty: name at least one path to back up"


def test_a_one_path_job_compresses_on_every_core_by_default(tmp_path):
    """The run's threads (twice the cores) are shared by the items that run at once, not by ``parallel``
    (default 4) whatever is selected: one path alone gets every core; of four paths, the one still compressing
    when the three others are done takes their threads."""
    cores = len(os.sched_getaffinity(0))
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    for name in ("a", "b", "c", "d"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_bytes(name.encode() * 100000)
    (tmp_path / "d" / "big").write_bytes(os.urandom(48 * 1024 * 1024))  # seconds on one thread at gzip -6
    alone = files([str(tmp_path / "a")], storage, job="alone")
    assert not alone.failed, alone.result.get("msg")
    assert alone.result["totals"]["budget"]["compression_threads"] == cores
    assert alone.result["totals"]["budget"]["items_at_once"] == 1
    four = files([str(tmp_path / name) for name in "abcd"], storage, job="four")
    assert [entry["status"] for entry in four.result["entries"]] == ["backed_up"] * 4
    assert four.result["totals"]["budget"]["items_at_once"] == 4
    assert four.result["totals"]["budget"]["compression_threads"] == max(1, 2 * cores // 4)
    assert four.result["totals"]["budget"]["compression_threads_max"] == cores
    restored = extract(storage["path"], alone.result["entries"][0]["key"], str(tmp_path / "restored"))
    assert (tmp_path / "restored" / "a" / "f").read_bytes() == b"a" * 100000 and restored
