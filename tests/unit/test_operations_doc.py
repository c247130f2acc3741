# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""docs/operations.md against the code: every error message it quotes is one the collection still writes, and its
upgrade notes name every option that a changelog fragment deprecates, breaks or removes."""

from __future__ import annotations

import ast
import glob
import os
import re

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def section(title: str) -> str:
    with open(os.path.join(ROOT, "docs", "operations.md"), encoding="utf-8") as handle:
        text = handle.read()
    return text.split("\n## %s\n" % title, 1)[1].split("\n## ", 1)[0]


def quoted_messages() -> list[str]:
    """The messages the troubleshooting section quotes, one per heading; ``…`` stands for what varies."""
    return re.findall(r"^### `(.+)`$", section("Troubleshooting by error message"), flags=re.M)


def _yaml_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _yaml_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _yaml_strings(value)


def code_strings() -> list[str]:
    """Every string the modules, plugins, roles and playbooks hold (implicitly joined Python literals as one)."""
    found = []
    for path in glob.glob(os.path.join(ROOT, "plugins", "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        found.extend(node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str))
    yaml_files = glob.glob(os.path.join(ROOT, "playbooks", "*.yml")) + glob.glob(os.path.join(ROOT, "roles", "**", "*.yml"), recursive=True)
    for path in yaml_files:
        with open(path, encoding="utf-8") as handle:
            found.extend(_yaml_strings(yaml.safe_load(handle)))
    return found


def written_by_the_code(message: str, strings: list[str]) -> bool:
    """Does one string of the code hold every fixed part of ``message``, in order?"""
    parts = [part.strip() for part in message.split("…") if part.strip()]
    for text in strings:
        position = 0
        for part in parts:
            position = text.find(part, position)
            if position < 0:
                break
            position += len(part)
        else:
            return True
    return False


def test_every_quoted_error_message_is_written_by_the_code():
    messages = quoted_messages()
    assert len(messages) >= 20, messages
    strings = code_strings()
    assert [m for m in messages if not written_by_the_code(m, strings)] == []


def test_the_check_tells_a_message_the_code_does_not_write():
    strings = code_strings()
    assert written_by_the_code("job … has no successful backup set; name one with set_date", strings)
    assert not written_by_the_code("job … has no successful backup set; name one with restore_date", strings)
    assert not written_by_the_code("name one with set_date … job … has no successful backup set", strings)


def test_the_upgrade_notes_name_every_deprecated_breaking_or_removed_option():
    notes = section("Upgrade notes")
    named = set()
    for path in glob.glob(os.path.join(ROOT, "changelogs", "fragments", "*.yml")):
        with open(path, encoding="utf-8") as handle:
            fragment = yaml.safe_load(handle) or {}
        for kind in ("breaking_changes", "deprecated_features", "removed_features"):
            for entry in fragment.get(kind) or []:
                named.update(re.findall(r"``([^`]+)``", entry))
    assert "backup_secrets" in named
    assert sorted(name for name in named if "`%s`" % name not in notes) == []
