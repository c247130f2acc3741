# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Chains of git bundles with the real git: what each day stores, and that a chain rebuilds each day's mirror."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils import _gitchain as gc
from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError

ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
           GIT_COMMITTER_EMAIL="t@example.invalid", GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")


def git(args, what="git", data=None):
    done = subprocess.run(["git"] + args, input=data, capture_output=True, text=True, env=ENV, check=False)
    if done.returncode != 0:
        raise BackupError("%s failed: %s" % (what, (done.stderr or done.stdout or "exit %d" % done.returncode).strip()))
    return done.stdout


class Upstream:
    """A working repository and the bare mirror a backup fetches from it."""

    def __init__(self, root):
        self.work = str(root / "work")
        self.mirror = str(root / "mirror.git")
        git(["init", "--quiet", "-b", "main", self.work])
        self.count = 0

    def commit(self, branch="main", size=100):
        self.count += 1
        git(["-C", self.work, "checkout", "--quiet", "-B", branch])
        with open(os.path.join(self.work, "file%d.bin" % self.count), "wb") as handle:
            handle.write(os.urandom(size))
        git(["-C", self.work, "add", "-A"])
        git(["-C", self.work, "commit", "--quiet", "-m", "commit %d" % self.count])
        return git(["-C", self.work, "rev-parse", "HEAD"]).strip()

    def fetch(self):
        """The backup side: a mirror clone the first time, ``git fetch --prune`` after."""
        if not os.path.isdir(self.mirror):
            git(["clone", "--quiet", "--mirror", self.work, self.mirror])
        else:
            git(["-C", self.mirror, "fetch", "--quiet", "--prune", "origin"])
        return gc.refs_of(git, self.mirror)


def restore(tmp_path, name, bundles, refs):
    target = str(tmp_path / name)
    git(["init", "--quiet", "--bare", target])
    gc.apply_chain(git, target, bundles, refs)
    return gc.refs_of(git, target)


def test_a_chain_rebuilds_every_day_ref_by_ref(tmp_path):
    up = Upstream(tmp_path)
    up.commit(size=50000)
    up.commit(branch="feature")
    day1 = up.fetch()
    full = str(tmp_path / "day1.bundle")
    assert gc.create_bundle(git, up.mirror, full)
    assert gc.bundle_prerequisites(full) == []
    # Day 2: new commits on two branches; the bundle holds only them.
    up.commit(branch="main", size=300)
    up.commit(branch="feature", size=300)
    day2 = up.fetch()
    assert gc.rewritten(git, up.mirror, day1, day2) == []
    incremental = str(tmp_path / "day2.bundle")
    assert gc.create_bundle(git, up.mirror, incremental, gc.tips(day1))
    assert set(gc.bundle_prerequisites(incremental)) <= set(gc.tips(day1))
    assert os.path.getsize(incremental) < os.path.getsize(full) / 10
    # Day 3: a branch deleted and a lightweight tag on an old commit: no new object, so no bundle; the refs say it.
    git(["-C", up.work, "checkout", "--quiet", "main"])
    git(["-C", up.work, "branch", "-D", "feature"])
    git(["-C", up.work, "tag", "old", day1["refs/heads/main"]])
    day3 = up.fetch()
    assert "refs/heads/feature" not in day3 and day3["refs/tags/old"] == day1["refs/heads/main"]
    assert not gc.create_bundle(git, up.mirror, str(tmp_path / "day3.bundle"), gc.tips(day2))
    assert not os.path.exists(str(tmp_path / "day3.bundle"))
    assert restore(tmp_path, "r1", [full], day1) == day1
    assert restore(tmp_path, "r2", [full, incremental], day2) == day2
    assert restore(tmp_path, "r3", [full, incremental], day3) == day3


def test_an_annotated_tag_on_an_old_commit_is_a_new_object(tmp_path):
    up = Upstream(tmp_path)
    first = up.commit()
    up.commit()
    day1 = up.fetch()
    full = str(tmp_path / "full.bundle")
    gc.create_bundle(git, up.mirror, full)
    git(["-C", up.work, "tag", "-a", "-m", "release of the first", "v1", first])
    day2 = up.fetch()
    tag = str(tmp_path / "tag.bundle")
    assert gc.create_bundle(git, up.mirror, tag, gc.tips(day1))
    assert restore(tmp_path, "r", [full, tag], day2) == day2


def test_a_force_push_is_named_but_github_merge_refs_are_not(tmp_path):
    up = Upstream(tmp_path)
    up.commit()
    up.commit(branch="topic")
    merge = up.commit(branch="merge-source")
    git(["-C", up.work, "update-ref", "refs/pull/1/merge", merge])
    day1 = up.fetch()
    git(["-C", up.work, "checkout", "--quiet", "topic"])
    git(["-C", up.work, "reset", "--quiet", "--hard", "HEAD~1"])
    up.commit(branch="topic")  # rewritten: the old tip is no ancestor of the new one
    other = up.commit(branch="other-source")
    git(["-C", up.work, "update-ref", "refs/pull/1/merge", other])  # GitHub regenerated it
    day2 = up.fetch()
    assert gc.rewritten(git, up.mirror, day1, day2) == ["refs/heads/topic"]
    # What the next run reads of this one has no ref names, and finds the same rewrite.
    hashed = gc.hashed_tips(day1)
    assert not any("refs/" in name for name in hashed) and len(hashed) == len(day1) - 2  # HEAD, the merge ref
    assert gc.rewritten(git, up.mirror, hashed, day2) == [
        __import__("hashlib").sha256(b"refs/heads/topic").hexdigest()]


def test_a_missing_middle_bundle_fails_the_restore_and_names_it(tmp_path):
    up = Upstream(tmp_path)
    up.commit()
    day1 = up.fetch()
    full = str(tmp_path / "1.bundle")
    gc.create_bundle(git, up.mirror, full)
    up.commit()
    day2 = up.fetch()
    second = str(tmp_path / "2.bundle")
    gc.create_bundle(git, up.mirror, second, gc.tips(day1))
    up.commit()
    day3 = up.fetch()
    third = str(tmp_path / "3.bundle")
    gc.create_bundle(git, up.mirror, third, gc.tips(day2))
    with pytest.raises(gc.ChainError, match=r"bundle 2 of the chain \(.*3\.bundle\) does not apply"):
        restore(tmp_path, "r", [full, third], day3)
    # Refs that name objects no bundle brought fail git fsck (update-ref refuses them first).
    with pytest.raises(BackupError):
        restore(tmp_path, "r2", [full], day3)


def test_missing_objects_are_found(tmp_path):
    up = Upstream(tmp_path)
    known = up.commit()
    up.fetch()
    assert gc.missing(git, up.mirror, [known, "1" * 40]) == ["1" * 40]
    assert gc.missing(git, up.mirror, []) == []


def git_writing_first(args, what="git", data=None):
    """git as Ansible's run_command runs it: all of standard input written before any output is read; stopped after
    20 seconds (a pipe both sides wait on)."""
    process = subprocess.Popen(["git"] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=ENV)
    timer = threading.Timer(20, process.kill)
    timer.start()
    try:
        process.stdin.write((data or "").encode())
        process.stdin.close()
        out = process.stdout.read().decode()
    except BrokenPipeError:
        out = ""
    finally:
        timer.cancel()
    assert process.wait() == 0, "git %s was stopped: it waited on a full pipe" % what
    return out


def test_thousands_of_tips_are_looked_up_without_filling_a_pipe(tmp_path):
    """A repository with thousands of pull requests has thousands of tips: their answers outgrow a pipe."""
    up = Upstream(tmp_path)
    known = up.commit()
    up.fetch()
    unknown = ["%040x" % n for n in range(1, 6001)]
    assert gc.missing(git_writing_first, up.mirror, unknown + [known]) == unknown


def test_the_mirror_cache_fetches_checks_and_rebuilds_what_it_cannot_trust(tmp_path):
    import datetime
    import stat

    from ansible_collections.corebackup.backup.plugins.module_utils._gitcache import MARKER, MirrorCache

    up = Upstream(tmp_path)
    up.commit()
    url = "file://" + up.work
    now = datetime.datetime(2026, 6, 1, 2, tzinfo=datetime.timezone.utc)
    cache = MirrorCache(str(tmp_path / "cache"), full_check_days=7)
    assert stat.S_IMODE(os.stat(str(tmp_path / "cache")).st_mode) == 0o700
    path, done = cache.update(git, "acme/tool", url, now)
    assert done == "cloned" and path == str(tmp_path / "cache" / "acme" / "tool.git")
    tip = up.commit()
    path, done = cache.update(git, "acme/tool", url, now + datetime.timedelta(days=1))
    assert done == "fetched" and gc.refs_of(git, path)["refs/heads/main"] == tip
    # A branch deleted upstream goes (fetch --prune).
    git(["-C", up.work, "branch", "gone"])
    cache.update(git, "acme/tool", url, now)
    git(["-C", up.work, "branch", "-D", "gone"])
    path, _done = cache.update(git, "acme/tool", url, now)
    assert "refs/heads/gone" not in gc.refs_of(git, path)
    # Corruption: an object file of the mirror damaged: the full check finds it, and the mirror is cloned again.
    up.commit()
    cache.update(git, "acme/tool", url, now)
    objects = os.path.join(path, "objects")
    victims = [os.path.join(d, f) for d, _dirs, files in os.walk(objects) for f in files
               if len(os.path.basename(d)) == 2]
    assert victims, "a fetch of one commit leaves loose objects"
    for victim in victims:
        os.chmod(victim, 0o600)
        with open(victim, "r+b") as handle:
            handle.write(b"\0" * 8)
    newest = up.commit()
    path, done = cache.update(git, "acme/tool", url, now + datetime.timedelta(days=30))
    assert done.startswith("rebuilt: ") and "corrupt" in done, done  # the fetch met it: cloned again
    assert gc.refs_of(git, path)["refs/heads/main"] == newest
    git(["-C", path, "fsck", "--no-progress"])
    # A foreign mirror (another URL in its marker, or none) is not trusted either.
    with open(os.path.join(path, MARKER), "w", encoding="utf-8") as handle:
        handle.write('{"url": "file:///elsewhere"}')
    _path, done = cache.update(git, "acme/tool", url, now)
    assert done == "rebuilt: %s mirrors file:///elsewhere, not %s" % (path, url)
    # A fetch that fails on a sound mirror (the source is away) fails, and the mirror stays for the next run.
    away = up.work + ".away"
    os.rename(up.work, away)
    with pytest.raises(BackupError):
        cache.update(git, "acme/tool", url, now)
    assert gc.refs_of(git, path)["refs/heads/main"] == newest
    os.rename(away, up.work)
    # What the cache did not make is left alone: a folder without a marker in a mirror's place, a cache_dir that others
    # may read.
    os.remove(os.path.join(path, MARKER))
    with pytest.raises(BackupError, match="has no readable corebackup-cache.json.*left alone"):
        cache.update(git, "acme/tool", url, now)
    assert os.path.isdir(os.path.join(path, "objects"))
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(str(shared), 0o755)
    with pytest.raises(BackupError, match="mode 0755.*must be the backup user's alone"):
        MirrorCache(str(shared))
    assert stat.S_IMODE(os.stat(str(shared)).st_mode) == 0o755


def test_runs_sharing_a_cache_take_a_mirror_in_turn(tmp_path):
    import time

    from ansible_collections.corebackup.backup.plugins.module_utils._gitcache import MirrorCache

    cache = MirrorCache(str(tmp_path / "cache"))
    order = []

    def other():
        with cache.lock("acme/tool"):
            order.append("other")

    with cache.lock("acme/tool"):
        waiting = threading.Thread(target=other)
        waiting.start()
        time.sleep(0.3)  # the other run is at the lock, and must wait
        order.append("first")
    waiting.join(5)
    assert order == ["first", "other"]
    with cache.lock("acme/other"), cache.lock("acme/tool", ".wiki.git"):
        pass  # other mirrors are not held


def test_refs_read_from_the_files_are_what_git_lists(tmp_path):
    up = Upstream(tmp_path)
    up.commit()
    up.commit(branch="feature")
    git(["-C", up.work, "tag", "-a", "-m", "v1", "v1"])
    cloned = up.fetch()
    assert gc.read_refs(up.mirror) == cloned and "refs/tags/v1" in cloned  # a fresh clone: packed refs
    up.commit(branch="main")  # loose refs over packed ones after a fetch, a branch deleted
    git(["-C", up.work, "branch", "-D", "feature"])
    listed = up.fetch()
    assert "refs/heads/feature" not in listed
    with open(os.path.join(up.mirror, "refs", "heads", "main.lock"), "w", encoding="utf-8") as handle:
        handle.write("0" * 40 + "\n")  # another git process writing main: not a ref
    assert gc.read_refs(up.mirror) == listed and listed["HEAD"].startswith("ref: refs/heads/")


def test_a_fresh_clone_is_bundled_from_its_own_pack(tmp_path):
    up = Upstream(tmp_path)
    up.commit(size=30000)
    up.commit(branch="feature")
    git(["-C", up.work, "tag", "-a", "-m", "v1", "v1"])
    clone = str(tmp_path / "clone.git")
    git(["clone", "--quiet", "--mirror", "file://" + up.work, clone])  # over a transport: the one pack it sent
    bundle = str(tmp_path / "full.bundle")
    assert gc.pack_as_bundle(clone, bundle)
    assert restore(tmp_path, "from-pack", [bundle], gc.refs_of(git, clone)) == gc.refs_of(git, clone)
    # Anything but a single pack (a fetch added loose objects): not taken as it is, git packs it.
    up.commit()
    git(["-C", clone, "fetch", "--quiet", "origin"])
    assert not gc.pack_as_bundle(clone, str(tmp_path / "other.bundle"))
    assert not os.path.exists(str(tmp_path / "other.bundle"))
    assert gc.create_bundle(git, clone, str(tmp_path / "packed.bundle"))
    assert restore(tmp_path, "packed", [str(tmp_path / "packed.bundle")], gc.refs_of(git, clone)) == gc.refs_of(git, clone)
