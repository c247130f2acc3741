# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.corebackup.backup.plugins.module_utils._registry import MODULES


class ActionModule(ActionBase):
    """Runs the service module a job names with the job's arguments; see the module's documentation."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("module", "module_args"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        module = self._task.args.get("module")
        if module not in MODULES:
            result.update(failed=True, msg="module must be one of %s, got %r" % (", ".join(sorted(MODULES)), module))
            return result
        result.update(self._execute_module(module_name="corebackup.backup." + module,
                                           module_args=dict(self._task.args.get("module_args") or {}),
                                           task_vars=task_vars))
        return result
