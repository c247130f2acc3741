# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""A mirror cache on the backup host: one bare mirror per repository, fetched again instead of cloned.

``cache_dir`` holds the plaintext of every repository it caches: it is created with mode 0700 and is off unless
asked for. A repository's mirror is ``<cache_dir>/<owner>/<name>.git`` with a marker ``corebackup-cache.json`` (the
URL it mirrors, without credentials; when it was last checked in full). The first run clones (``git clone
--mirror``); later runs ``git fetch --prune`` (the token only in git's environment, as for a clone). A mirror that
is missing, foreign (its marker names another URL), or fails its check is cloned again, never trusted: ``git fsck
--connectivity-only`` every run, a full ``git fsck`` every ``full_check_days``. A fetch that fails on a mirror that
passes its check (the network, the token) fails the repository and keeps the mirror for the next run.

What the cache does not own it leaves alone: an existing ``cache_dir`` that others may read, or a folder in a
mirror's place without a marker, is refused with an error, never chmodded or removed. A clone is made beside the
mirror and renamed into place once its marker is written, so a killed run leaves no marker-less folder behind. Two
runs that share a ``cache_dir`` (two jobs, two workers) take a mirror in turn: :meth:`MirrorCache.lock`.

``git`` is a callable ``git(args, what) -> stdout`` that runs git with the caller's environment (the token) and
retries, and raises BackupError on failure.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import stat
import typing as t

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import iso, parse_iso, sanitize_name

MARKER = "corebackup-cache.json"


class MirrorCache:
    """The mirrors of one ``cache_dir``."""

    def __init__(self, root: str, full_check_days: int = 7):
        if not os.path.isabs(root):
            raise BackupError("cache_dir %r is not an absolute path" % (root,))
        self.root = root
        self.full_check_days = full_check_days
        try:
            os.makedirs(root, mode=0o700)
            os.chmod(root, 0o700)  # the plaintext of every repository: the backup user's alone, whatever the umask
        except FileExistsError:
            pass
        info = os.stat(root)
        if not stat.S_ISDIR(info.st_mode):
            raise BackupError("cache_dir %s is not a directory" % root)
        if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
            raise BackupError("cache_dir %s is mode %04o, owned by uid %d: it would hold the plaintext of every "
                              "repository, so it must be the backup user's alone (mode 0700, owned by uid %d); "
                              "chmod it, or name a directory that does not exist yet" % (
                                  root, stat.S_IMODE(info.st_mode), info.st_uid, os.geteuid()))

    def path(self, full_name: str, suffix: str = ".git") -> str:
        """``<cache_dir>/<owner>/<name><suffix>``: a wiki's is ``.wiki.git`` (a sanitized name holds no dot)."""
        owner, _sep, name = full_name.partition("/")
        return os.path.join(self.root, sanitize_name(owner), sanitize_name(name or owner) + suffix)

    @contextlib.contextmanager
    def lock(self, full_name: str, suffix: str = ".git") -> t.Iterator[None]:
        """Hold the mirror of ``full_name`` against every other run using this cache (an advisory ``flock`` on a
        file beside it) while it is fetched and read."""
        path = self.path(full_name, suffix)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        handle = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)

    def update(self, git: t.Callable[..., str], full_name: str, url: str, now: datetime.datetime,
               suffix: str = ".git") -> tuple[str, str]:
        """The mirror of ``url`` brought up to date: (its path, what was done: ``cloned``, ``fetched`` or
        ``rebuilt: <why>``). The caller holds :meth:`lock`."""
        path = self.path(full_name, suffix)
        why = self._unusable(path, url)
        if why is None:
            try:
                git(["-C", path, "fetch", "--quiet", "--prune", "--", url, "+refs/*:refs/*"], "git fetch --prune")
            except BackupError as exc:
                try:
                    self._check(git, path, now, full=False)
                except BackupError:
                    why = "git fetch failed and so does its check: %s" % exc
                else:
                    raise  # a sound mirror: the fetch failed for another reason (the network, the token); kept
            else:
                try:
                    self._check(git, path, now)
                    return path, "fetched"
                except BackupError as exc:
                    why = str(exc)
        existed = os.path.exists(path)
        fresh, old = path + ".new", path + ".old"
        for leftover in (fresh, old):  # of a run killed while it replaced a mirror
            shutil.rmtree(leftover, ignore_errors=True)
        git(["clone", "--mirror", "--quiet", "--", url, fresh], "git clone --mirror")
        self._write_marker(fresh, url, now)
        if existed:
            os.rename(path, old)
        os.rename(fresh, path)
        shutil.rmtree(old, ignore_errors=True)
        return path, ("rebuilt: %s" % why) if existed else "cloned"

    @staticmethod
    def _marker(path: str) -> dict | None:
        try:
            with open(os.path.join(path, MARKER), encoding="utf-8") as handle:
                marker = json.load(handle)
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) else None

    def _unusable(self, path: str, url: str) -> str | None:
        if not os.path.isdir(path):
            return "no mirror yet"
        marker = self._marker(path)
        if marker is None:
            raise BackupError("%s is in the place of a mirror of the cache but has no readable %s: it was not made by "
                              "this collection and is left alone; move it away, or name another cache_dir" % (
                                  path, MARKER))
        if marker.get("url") != url:
            return "%s mirrors %s, not %s" % (path, marker.get("url"), url)
        return None

    def _check(self, git: t.Callable[..., str], path: str, now: datetime.datetime, full: bool | None = None) -> None:
        """``fsck --connectivity-only`` every time, the whole ``fsck`` once ``full_check_days`` have passed."""
        marker = self._marker(path) or {}
        try:
            last = parse_iso(marker.get("full_check") or "", "full_check")
        except BackupError:
            last = None
        if full is None:
            full = last is None or now - last >= datetime.timedelta(days=self.full_check_days)
        git(["-C", path, "fsck", "--no-progress", "--no-dangling"] + ([] if full else ["--connectivity-only"]),
            "git fsck" if full else "git fsck --connectivity-only")
        if full:
            self._write_marker(path, marker.get("url"), now)

    @staticmethod
    def _write_marker(path: str, url: str, now: datetime.datetime) -> None:
        with open(os.path.join(path, MARKER), "w", encoding="utf-8") as handle:
            json.dump({"url": url, "full_check": iso(now), "by": "corebackup.backup"}, handle)
