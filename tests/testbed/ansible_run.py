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
import signal
import subprocess
import sys
import tempfile
import time
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


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="utf-8") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class RunningModule:
    """A module run through ansible-playbook in the background, in its own process group."""

    def __init__(self, collections_path: str, module: str, args: dict, check: bool = False, env: dict | None = None,
                 verbosity: int = 0, diff: bool = False):
        self._workdir = tempfile.TemporaryDirectory(prefix="corebackup-play-")  # pylint: disable=consider-using-with
        workdir = self._workdir.name
        playbook = os.path.join(workdir, "play.yml")
        self.result_path = os.path.join(workdir, "result.json")
        with open(playbook, "w", encoding="utf-8") as handle:
            yaml.safe_dump([{
                "hosts": "localhost", "gather_facts": False, "connection": "local",
                "tasks": [
                    {"name": "run", "corebackup.backup." + module: args, "register": "out", "ignore_errors": True},
                    {"name": "save", "ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": self.result_path},
                     "check_mode": False},
                ],
            }], handle)
        self.log_path = os.path.join(workdir, "ansible.log")
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        run_env.update({
            "ANSIBLE_COLLECTIONS_PATH": collections_path, "ANSIBLE_LOG_PATH": self.log_path, "ANSIBLE_NOCOLOR": "1",
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
        # Output goes to files, not pipes: a caller that only polls (run_module_watching_argv) would otherwise
        # block a verbose run on a full pipe.
        self._output = [open(os.path.join(workdir, name), "w+", encoding="utf-8", errors="replace")  # pylint: disable=consider-using-with
                        for name in ("stdout", "stderr")]
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            argv, stdout=self._output[0], stderr=self._output[1], text=True, env=run_env, cwd=workdir,
            start_new_session=True)

    def _read_output(self) -> tuple[str, str]:
        texts = []
        for handle in self._output:
            handle.seek(0)
            texts.append(handle.read())
            handle.close()
        return texts[0], texts[1]

    def kill(self) -> None:
        """SIGKILL to ansible-playbook and every process below it (its workers call setsid, so a process group
        is not enough): the module and what it runs stop as under an OOM killer or a power cut."""
        for pid in [self.process.pid] + descendants(self.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        self._read_output()
        self._workdir.cleanup()

    def wait(self, timeout: float = 900) -> TaskRun:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        stdout, stderr = self._read_output()
        log = ""
        if os.path.exists(self.log_path):
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                log = handle.read()
        try:
            with open(self.result_path, encoding="utf-8") as handle:
                result = json.load(handle)
        except (OSError, ValueError) as exc:
            raise AssertionError("ansible-playbook gave no task result (%s):\n%s\n%s"
                                 % (exc, stdout[-3000:], stderr[-3000:])) from None
        finally:
            self._workdir.cleanup()
        return TaskRun(result, stdout, stderr, log, self.process.returncode)


def run_module(collections_path: str, module: str, args: dict, check: bool = False, env: dict | None = None,
               verbosity: int = 0, timeout: float = 900, diff: bool = False) -> TaskRun:
    return RunningModule(collections_path, module, args, check=check, env=env, verbosity=verbosity, diff=diff).wait(timeout)


def run_module_watching_argv(collections_path: str, module: str, args: dict, **kwargs) -> tuple[TaskRun, list[bytes]]:
    """run_module, recording the command line of every process on the machine while it runs (every 50 ms), for
    tests that a secret never reaches an argv (which any local user can read in /proc)."""
    running = RunningModule(collections_path, module, args, **kwargs)
    seen: list[bytes] = []
    while running.process.poll() is None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as handle:
                    seen.append(handle.read())
            except OSError:
                pass
        time.sleep(0.05)
    return running.wait(), seen


@dataclass
class PlayRun:
    stdout: str
    stderr: str
    log: str
    returncode: int

    def all_text(self) -> str:
        return "\n".join((self.stdout, self.stderr, self.log))


def run_playbook(collections_path: str, playbook: str, inventory: str, extra_vars: dict | None = None,
                 check: bool = False, env: dict | None = None, timeout: float = 900, args: tuple = ()) -> PlayRun:
    """ansible-playbook as a user runs it, with everything it printed and logged."""
    with tempfile.TemporaryDirectory(prefix="corebackup-playbook-") as workdir:
        log_path = os.path.join(workdir, "ansible.log")
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        run_env.update({"ANSIBLE_COLLECTIONS_PATH": collections_path, "ANSIBLE_LOG_PATH": log_path,
                        "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
                        "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_HOME": os.path.join(workdir, "home")})
        run_env.update(env or {})
        argv = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, playbook] + list(args)
        if extra_vars:
            extra = os.path.join(workdir, "extra.json")
            with open(extra, "w", encoding="utf-8") as handle:
                json.dump(extra_vars, handle)
            argv += ["-e", "@" + extra]
        if check:
            argv.append("--check")
        proc = subprocess.run(argv, capture_output=True, text=True, env=run_env, timeout=timeout, check=False)
        log = ""
        if os.path.exists(log_path):
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                log = handle.read()
    return PlayRun(proc.stdout, proc.stderr, log, proc.returncode)
