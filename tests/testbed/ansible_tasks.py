# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Several module calls in one ansible-playbook run on localhost, in order: Ansible starts once, not once per call.

Each task runs with ``ignore_errors`` and its own environment; every result is returned, failed ones included.
"""

from __future__ import annotations

import json
import os
import tempfile
import typing as t

import yaml

from ansible_collections.corebackup.backup.tests.testbed.ansible_run import PlayRun, run_playbook


class Task(t.NamedTuple):
    module: str  # a module of this collection, or a fully qualified name (ansible.builtin.copy)
    args: dict
    env: dict | None = None  # added to the environment of this task


def fully_qualified(module: str) -> str:
    return module if "." in module else "corebackup.backup." + module


def run_tasks(collections_path: str, tasks: list[Task], timeout: float = 900) -> tuple[list[dict], PlayRun]:
    """Run ``tasks`` in one play on localhost; their results in order, and the run's output."""
    with tempfile.TemporaryDirectory(prefix="corebackup-tasks-") as workdir:
        results_path = os.path.join(workdir, "results.json")
        play_tasks: list[dict] = [
            {"name": "task %d: %s" % (index, task.module), fully_qualified(task.module): task.args,
             "register": "task_%d" % index, "ignore_errors": True, "environment": dict(task.env or {})}
            for index, task in enumerate(tasks)]
        play_tasks.append({"name": "save the results", "check_mode": False, "ansible.builtin.copy": {
            "content": "{{ [%s] | to_json }}" % ", ".join("task_%d" % index for index in range(len(tasks))),
            "dest": results_path}})
        playbook = os.path.join(workdir, "tasks.yml")
        with open(playbook, "w", encoding="utf-8") as handle:
            yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": play_tasks}],
                           handle)
        run = run_playbook(collections_path, playbook, "localhost,", timeout=timeout)
        try:
            with open(results_path, encoding="utf-8") as handle:
                return json.load(handle), run
        except (OSError, ValueError) as exc:
            raise AssertionError("ansible-playbook gave no results (%s):\n%s\n%s"
                                 % (exc, run.stdout[-3000:], run.stderr[-3000:])) from None
