# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""plugins/modules/README.md lists every module once, each with what its documentation says it does."""

from __future__ import annotations

import ast
import glob
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = os.path.join(ROOT, "plugins", "modules")


def short_description(path):
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [target.id for target in node.targets] == ["DOCUMENTATION"]:
            return yaml.safe_load(node.value.value)["short_description"]
    raise AssertionError("%s has no DOCUMENTATION" % path)


def test_the_module_list_names_every_module_once_with_its_short_description():
    with open(os.path.join(MODULES, "README.md"), encoding="utf-8") as handle:
        listed = re.findall(r"^- `([a-z_]+)`: (.+)$", handle.read(), re.MULTILINE)
    names = [name for name, _line in listed]
    on_disk = sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(MODULES, "*.py")))
    assert sorted(names) == on_disk
    for name, line in listed:
        described = short_description(os.path.join(MODULES, name + ".py"))
        assert line.startswith(described[0].lower() + described[1:]), (name, line, described)
