# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Copy the collection's files into DEST/ansible_collections/corebackup/backup.

ansible-test, the unit tests' imports and ansible-galaxy all want the collection at that path.
Inside a git checkout the files are those git tracks plus new files it does not ignore; elsewhere
everything except build and test output. DEST is emptied first, so deleted files do not linger.
The copy gets a git repository of its own: ansible-test lists files with git, and would otherwise
find the source checkout, where the copy itself is ignored.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

SKIP_DIRS = {".git", ".venv", ".venv-secantus", ".build", ".cache", ".demo", "__pycache__", ".pytest_cache", ".hypothesis", "output"}


def source_files(root: str) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, check=True).stdout
        return sorted({p for p in out.decode().split("\0") if p and os.path.lexists(os.path.join(root, p))})
    except (OSError, subprocess.CalledProcessError):
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            files.extend(os.path.relpath(os.path.join(dirpath, f), root) for f in filenames)
        return sorted(files)


def main() -> None:
    root, dest = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    target = os.path.join(dest, "ansible_collections", "corebackup", "backup")
    if os.path.commonpath([root, target]) == root and not target.startswith(os.path.join(root, ".build") + os.sep):
        raise SystemExit("refusing to build the collection tree inside the source tree at %s" % target)
    shutil.rmtree(target, ignore_errors=True)
    for rel in source_files(root):
        src, dst = os.path.join(root, rel), os.path.join(target, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    subprocess.run(["git", "init", "--quiet", target], check=True)
    print(target)


if __name__ == "__main__":
    main()
