# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How every benchmark runs a module and reports: JSON on stdout, a copy in the results folder, exit 1 if a
target is missed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

# The module's own process, which prints its peak RSS (KiB) on stderr when it exits. VmHWM, not
# ru_maxrss: the latter keeps the high-water mark of the process that forked it across exec.
MODULE_WITH_RSS = """
import runpy, sys
try:
    runpy.run_module("ansible_collections.corebackup.backup.plugins.modules." + sys.argv.pop(1), run_name="__main__")
finally:
    with open("/proc/self/status") as status:
        sys.stderr.write([line.split()[1] for line in status if line.startswith("VmHWM:")][0] + "\\n")
"""


@dataclass
class ModuleRun:
    seconds: float
    result: dict
    peak_rss_kb: int


def run_module(name: str, args: dict, workdir: str, env: dict | None = None) -> ModuleRun:
    """The module process, as Ansible runs it: its arguments in a file, its result on stdout; timed, with its
    peak RSS. ``env`` adds to its environment (``COREBACKUP_NOW`` for a run on another day)."""
    args_file = os.path.join(workdir, "args.json")
    with open(args_file, "w", encoding="utf-8") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MODULE_WITH_RSS, name, args_file], check=True, capture_output=True,
                          text=True, env=dict(os.environ, **(env or {})))
    seconds = time.perf_counter() - started
    result = json.loads(done.stdout)
    if result.get("failed"):
        raise RuntimeError(result["msg"])
    return ModuleRun(seconds, result, int(done.stderr.split()[-1]))


def emit(report: dict, results_dir: str | None, filename: str, targets_met: bool) -> int:
    report["targets_met"] = targets_met
    print(json.dumps(report, indent=2))
    if results_dir:
        os.makedirs(results_dir, exist_ok=True)
        with open(os.path.join(results_dir, filename), "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0 if targets_met else 1


@dataclass
class WatchedModuleRun(ModuleRun):
    peak_fds: int  # most file descriptors the module process held open at once, sampled
    fd_samples: int


def _open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def run_module_watched(name: str, args: dict, workdir: str, interval: float = 0.02) -> ModuleRun:
    """run_module, also sampling the open file descriptors of the module process (/proc/PID/fd) every
    ``interval`` seconds while it runs: a WatchedModuleRun."""
    args_file = os.path.join(workdir, "args.json")
    with open(args_file, "w", encoding="utf-8") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    out_path, err_path = os.path.join(workdir, "module.stdout"), os.path.join(workdir, "module.stderr")
    peak = samples = 0
    started = time.perf_counter()
    with open(out_path, "w", encoding="utf-8") as out, open(err_path, "w", encoding="utf-8") as err:
        with subprocess.Popen([sys.executable, "-c", MODULE_WITH_RSS, name, args_file], stdout=out, stderr=err) as proc:
            while proc.poll() is None:
                count = _open_fds(proc.pid)
                if count is not None:
                    peak, samples = max(peak, count), samples + 1
                time.sleep(interval)
    seconds = time.perf_counter() - started
    with open(out_path, encoding="utf-8") as out, open(err_path, encoding="utf-8") as err:
        stdout, stderr = out.read(), err.read()
    if proc.returncode and not stdout.strip():
        raise RuntimeError("module %s exited %d: %s" % (name, proc.returncode, stderr[-3000:]))
    result = json.loads(stdout)
    if result.get("failed"):
        raise RuntimeError(result["msg"])
    return WatchedModuleRun(seconds, result, int(stderr.split()[-1]), peak, samples)
