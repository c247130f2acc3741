# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a module of the collection the way users do: through ansible-playbook, on localhost.

Returns the task result as the json callback reports it, with everything Ansible printed and
logged, so tests can check results and scan all output (for example for a leaked token).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import yaml

BIN = os.path.dirname(sys.executable)


@dataclass
class TaskRun:
    result: dict
    stdout: str
    stderr: str
    log: str
    returncode: int

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    def all_text(self) -> str:
        return "\n".join((self.stdout, self.stderr, self.log))


def run_module(collections_path: str, module: str, args: dict, check: bool = False, env: dict | None = None,
               verbosity: int = 0, timeout: float = 900, diff: bool = False) -> TaskRun:
    with tempfile.TemporaryDirectory(prefix="corebackup-play-") as workdir:
        playbook = os.path.join(workdir, "play.yml")
        result_path = os.path.join(workdir, "result.json")
        with open(playbook, "w", encoding="utf-8") as handle:
            yaml.safe_dump([{
                "hosts": "localhost", "gather_facts": False, "connection": "local",
                "tasks": [
                    {"name": "run", "corebackup.backup." + module: args, "register": "out", "ignore_errors": True},
                    {"name": "save", "ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": result_path},
                     "check_mode": False},
                ],
            }], handle)
        log_path = os.path.join(workdir, "ansible.log")
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        run_env.update({
            "ANSIBLE_COLLECTIONS_PATH": collections_path, "ANSIBLE_LOG_PATH": log_path, "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0", "ANSIBLE_HOME": os.path.join(workdir, "home"),
        })
        run_env.update(env or {})
        argv = [os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", playbook]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if verbosity:
            argv.append("-" + "v" * verbosity)
        proc = subprocess.run(argv, capture_output=True, text=True, env=run_env, timeout=timeout, cwd=workdir, check=False)
        log = ""
        if os.path.exists(log_path):
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                log = handle.read()
        try:
            with open(result_path, encoding="utf-8") as handle:
                result = json.load(handle)
        except (OSError, ValueError) as exc:
            raise AssertionError("ansible-playbook gave no task result (%s):\n%s\n%s"
                                 % (exc, proc.stdout[-3000:], proc.stderr[-3000:])) from None
    return TaskRun(result, proc.stdout, proc.stderr, log, proc.returncode)
