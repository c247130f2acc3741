# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""A mirror cache on the backup host: one bare mirror per repository, fetched again instead of cloned.

``cache_dir`` holds the plaintext of every repository it caches: it is created with mode 0700 and is off unless
asked for. A repository's mirror is ``<cache_dir>/<owner>/<name>.git`` with a marker ``corebackup-cache.json`` (the
URL it mirrors, without credentials; when it was last checked in full). The first run clones (``git clone
--mirror``); later runs ``git fetch --prune`` (the token only in git's environment, as for a clone). A mirror that
is missing, foreign (its marker names another URL, or there is none), or fails its check is removed and cloned
again, never trusted: ``git fsck --connectivity-only`` every run, a full ``git fsck`` every ``full_check_days``.

``git`` is a callable ``git(args, what) -> stdout`` that runs git with the caller's environment (the token) and
retries, and raises BackupError on failure.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
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
        os.makedirs(root, mode=0o700, exist_ok=True)
        os.chmod(root, 0o700)  # the plaintext of every repository: the backup user's alone

    def path(self, full_name: str, suffix: str = ".git") -> str:
        """``<cache_dir>/<owner>/<name><suffix>``: a wiki's is ``.wiki.git`` (a sanitized name holds no dot)."""
        owner, _sep, name = full_name.partition("/")
        return os.path.join(self.root, sanitize_name(owner), sanitize_name(name or owner) + suffix)

    def update(self, git: t.Callable[..., str], full_name: str, url: str, now: datetime.datetime,
               suffix: str = ".git") -> tuple[str, str]:
        """The mirror of ``url`` brought up to date: (its path, what was done: ``cloned``, ``fetched`` or
        ``rebuilt: <why>``)."""
        path = self.path(full_name, suffix)
        why = self._unusable(path, url)
        if why is None:
            try:
                git(["-C", path, "fetch", "--quiet", "--prune", "--", url, "+refs/*:refs/*"], "git fetch --prune")
                self._check(git, path, now)
                return path, "fetched"
            except BackupError as exc:
                why = str(exc)
        existed = os.path.exists(path)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        git(["clone", "--mirror", "--quiet", "--", url, path], "git clone --mirror")
        self._write_marker(path, url, now)
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
            return "%s has no readable %s: not a mirror of this collection" % (path, MARKER)
        if marker.get("url") != url:
            return "%s mirrors %s, not %s" % (path, marker.get("url"), url)
        return None

    def _check(self, git: t.Callable[..., str], path: str, now: datetime.datetime) -> None:
        """``fsck --connectivity-only`` every time, the whole ``fsck`` once ``full_check_days`` have passed."""
        marker = self._marker(path) or {}
        try:
            last = parse_iso(marker.get("full_check") or "", "full_check")
        except BackupError:
            last = None
        full = last is None or now - last >= datetime.timedelta(days=self.full_check_days)
        git(["-C", path, "fsck", "--no-progress", "--no-dangling"] + ([] if full else ["--connectivity-only"]),
            "git fsck" if full else "git fsck --connectivity-only")
        if full:
            self._write_marker(path, marker.get("url"), now)

    @staticmethod
    def _write_marker(path: str, url: str, now: datetime.datetime) -> None:
        with open(os.path.join(path, MARKER), "w", encoding="utf-8") as handle:
            json.dump({"url": url, "full_check": iso(now), "by": "corebackup.backup"}, handle)
