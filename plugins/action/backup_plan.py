# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.corebackup.backup.plugins.module_utils._plan import no_jobs_problem, plan_jobs
from ansible_collections.corebackup.backup.plugins.module_utils._schedule import DEFAULT_INTERVAL


# Role variables on their way out, and what to do instead.
DEPRECATED = {
    "backup_secrets": "backup_secrets is deprecated and will be removed in 1.0.0: the modules know their secrets and "
                      "record their own runs; while it is set, each run is recorded by backup_manifest with it, as before",
}


class ActionModule(ActionBase):
    """Checks a whole job list on the controller and says which jobs run; see the module's documentation."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("storages", "jobs", "only", "defaults", "allow_no_jobs", "deprecated", "expected_interval"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        jobs = args.get("jobs") or []
        planned, skipped, problems = plan_jobs(args.get("storages") or {}, jobs, args.get("only"),
                                               args.get("defaults") or {}, args.get("expected_interval") or DEFAULT_INTERVAL)
        if jobs == [] and not boolean(args.get("allow_no_jobs", False), strict=False):
            problems.append(no_jobs_problem(task_vars.get("inventory_hostname", "this host"),
                                            task_vars.get("group_names") or [], task_vars.get("inventory_dir")))
        result.update(changed=False, jobs=planned, skipped=skipped, problems=problems)
        deprecations = [{"msg": DEPRECATED[name], "version": "1.0.0", "collection_name": "corebackup.backup"}
                        for name in args.get("deprecated") or [] if name in DEPRECATED]
        if deprecations:
            result["deprecations"] = deprecations
        if problems:
            result.update(failed=True, msg="the job list has %d problem(s); no job was run: %s" % (
                len(problems), "; ".join(problems)))
        return result
