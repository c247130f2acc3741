# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible.plugins.action import ActionBase

try:  # ansible-core 2.19 and later
    from ansible.executor.module_common import _apply_action_arg_defaults
    get_action_args_with_defaults = None
except ImportError:  # ansible-core 2.16 to 2.18
    from ansible.executor.module_common import get_action_args_with_defaults
    _apply_action_arg_defaults = None

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
        name = "corebackup.backup." + module
        result.update(self._execute_module(module_name=name, module_args=self.with_defaults(
            name, dict(self._task.args.get("module_args") or {})), task_vars=task_vars))
        return result

    def with_defaults(self, name, args):
        """``args``, and for what they do not set, the play's module_defaults of the module (and of the group
        corebackup.backup.backup), as ansible-core's package action applies them to the module it runs."""
        if _apply_action_arg_defaults is not None:
            return _apply_action_arg_defaults(name, self._task, args, self._templar)
        return get_action_args_with_defaults(name, args, self._task.module_defaults, self._templar,
                                             action_groups=self._task._parent._play._action_groups)  # pylint: disable=protected-access
