# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""requirements.txt names exactly the Python libraries the modules import, no more, no less."""

from __future__ import annotations

import ast
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DISTRIBUTION = {"bson": "pymongo", "github": "PyGithub"}  # import name -> what pip installs, where they differ


def imported_libraries():
    found = set()
    for dirpath, _dirs, files in os.walk(os.path.join(ROOT, "plugins")):
        for name in files:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(dirpath, name), encoding="utf-8") as handle:
                tree = ast.parse(handle.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    found -= set(sys.stdlib_module_names) | {"ansible", "ansible_collections", "__future__"}
    return {DISTRIBUTION.get(name, name) for name in found}


def test_requirements_txt_lists_exactly_what_the_modules_import():
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as handle:
        listed = {re.split(r"[<>=!~ ]", line.strip(), 1)[0].lower() for line in handle
                  if line.strip() and not line.startswith("#")}
    assert listed == {name.lower() for name in imported_libraries()}
