#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_health
short_description: Read what a store says of the health of backup jobs, for monitoring
version_added: 0.1.0
description:
  - For each job, from one listing of C(<prefix>/<job>/) and the records of its newest O(sets) usable sets
    (status V(success) or V(partial)) - the time of its last successful run, the logical size of its newest usable
    set (the bytes a restore of it reads, carried artifacts included) and the median of the sets before it, the last
    time its artifacts were read back and found intact (a verification, sampled or whole, or a drill that passed),
    the last drill that passed, and the artifacts whose latest verification found them missing, truncated or
    corrupted.
  - The store is the record, whoever wrote it - the backup role, C(playbooks/verify.yml), C(playbooks/drill.yml)
    on a restore host - so the backup role reads it for every job of the host when it writes its metrics
    (M(corebackup.backup.backup_metrics)), also for the jobs that did not run.
  - Reads only. A job whose store cannot be read gets RV(jobs[].error) and a warning; the module fails only on
    wrong options.
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - corebackup.backup.common
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  jobs:
    description: The jobs to read. Without it, O(job).
    type: list
    elements: str
  sets:
    description:
      - How many of each job's newest usable sets are read (their records) - the newest gives the logical size,
        the others the median; verifications and drills are looked for in all of them.
    type: int
    default: 8
notes:
  - The times are those the store recorded. Older verifications and drills than the O(sets) newest usable sets
    show are not looked for; M(corebackup.backup.backup_metrics) keeps the times it exported before.
"""

EXAMPLES = r"""
- name: Read the health of two jobs
  corebackup.backup.backup_health:
    storage: "{{ backup_storage }}"
    jobs: [github-org-backup, mongo-prod-backup]
  register: health

- name: Export it with the outcome of the jobs
  corebackup.backup.backup_metrics:
    path: /var/lib/prometheus/node-exporter/corebackup.prom
    health: "{{ health.jobs }}"
"""

RETURN = r"""
jobs:
  description: One per job, in the order of O(jobs).
  returned: always
  type: list
  elements: dict
  contains:
    job:
      description: The job.
      type: str
    last_success:
      description: When the newest run recorded V(success) or V(partial) finished; V(null) when none.
      type: str
    newest_set:
      description: Date of the newest usable set whose records could be read; V(null) when none.
      type: str
    logical_size:
      description: Bytes a restore of the newest usable set reads, one artifact per item, carried artifacts included.
      type: int
    median_logical_size:
      description: Median of RV(jobs[].logical_size) of the usable sets before the newest; V(null) without one.
      type: float
    median_sets:
      description: How many sets RV(jobs[].median_logical_size) is the median of.
      type: int
    last_verified:
      description:
        - The newest time the job's artifacts were read back and all found intact - a whole set's C(verified_at)
          (O(corebackup.backup.backup_manifest#module:state=verified) or a passing drill), or a verification
          that read some of them (O(corebackup.backup.backup_manifest#module:sample)) and found every one ok.
          V(null) when none.
      type: str
    last_drill_success:
      description: When the newest drill that passed ran (M(corebackup.backup.backup_restore)); V(null) when none.
      type: str
    bad_artifacts:
      description: Artifacts whose latest verification found them missing, truncated or corrupted.
      type: int
    problems:
      description: Sets whose records could not be read (the others still count).
      type: list
      elements: str
    error:
      description: Why the job's store could not be read; V(null) when it was.
      type: str
  sample:
    - {job: etc, last_success: "2026-06-15T02:00:09Z", newest_set: "2026-06-15", logical_size: 1048576,
       median_logical_size: 1040000, median_sets: 7, last_verified: "2026-06-15T03:00:00Z",
       last_drill_success: "2026-06-14T04:00:00Z", bad_artifacts: 0, problems: [], error: null}
"""

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._health import job_health
from ansible_collections.corebackup.backup.plugins.module_utils._layout import validate_job
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule


def unreadable(job, error):
    return {"job": job, "last_success": None, "newest_set": None, "logical_size": None, "median_logical_size": None,
            "median_sets": 0, "last_verified": None, "last_drill_success": None, "bad_artifacts": 0, "problems": [],
            "error": error}


def run(module):
    params = module.params
    names = params["jobs"] if params["jobs"] is not None else [module.job]
    for name in names:
        validate_job(name)
    if params["sets"] < 1:
        raise BackupError("sets must be 1 or more, got %d" % params["sets"])
    try:
        module.backend.check_root()
        root_error = None
    except BackupError as exc:
        root_error = module.scrub(exc)
    found = []
    for name in names:
        if root_error is not None:
            health = unreadable(name, root_error)
        else:
            try:
                health = job_health(module.backend, name, params["sets"])
            except BackupError as exc:
                health = unreadable(name, module.scrub(exc))
        if health["error"]:
            module.warn("the health of job %s could not be read: %s" % (name, health["error"]))
        for problem in health["problems"]:
            module.warn("job %s: %s" % (name, problem))
        found.append(health)
    module.exit(changed=False, jobs=found)


def main():
    module = BackupModule(argument_spec=dict(
        jobs=dict(type="list", elements="str"),
        sets=dict(type="int", default=8),
    ))
    module.run(run)


if __name__ == "__main__":
    main()
