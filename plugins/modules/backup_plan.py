#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_plan
short_description: Check a declarative list of backup jobs as a whole before any of them runs
version_added: 0.1.0
description:
  - Runs on the controller (an action plugin). Finds every problem of every job at once, so that a typo in
    the third job does not surface after two jobs have run, and says which jobs run.
  - Checks each storage's options, each job's name (unique, a valid job name), service, storage (defined in
    O(storages)), retention policy, and options against the argument spec of the module that will run it.
  - An empty O(jobs) is refused unless O(allow_no_jobs) is set (a job list in a group_vars file the host does not
    read leaves the role's default, no job); the error names the groups whose variables were expected to hold them.
  - Returns no option values, so no secret passes through it.
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  storages:
    description: Storage name to the C(storage) options every module takes.
    type: dict
    required: true
  jobs:
    description:
      - The jobs, each with C(name), C(service) (V(github), V(files), V(docker_volume) or V(mongodb)),
        C(storage) (a name in O(storages)), and optionally C(enabled), C(retention) (the options of
        M(corebackup.backup.backup_retention); rules it does not name are off), C(options) (the options of the
        service module), C(verify) and C(expected_interval) (how often the job should produce a good set, see
        O(expected_interval)).
    type: list
    elements: dict
    required: true
  only:
    description: Run only these jobs, a list or a comma-separated string.
    type: raw
  defaults:
    description: Options every service module gets unless a job's C(options) say otherwise (compression, encryption).
    type: dict
  allow_no_jobs:
    description: Accept an empty O(jobs) (a host without jobs on purpose); without it an empty list is a problem.
    type: bool
    default: false
  expected_interval:
    description:
      - How often a job is expected to produce a good backup set, unless the job gives its own C(expected_interval).
      - Whole seconds, or a duration such as V(30m), V(12h), V(1d), V(1w) or V(1d12h). The metrics export it per job
        (C(corebackup_job_expected_interval_seconds)) for the stale-backup alert.
    type: raw
    default: 1d
  deprecated:
    description:
      - Names of deprecated role variables the caller has set; each gets a deprecation warning (the C(backup)
        role passes C(backup_secrets) here).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Check the jobs
  corebackup.backup.backup_plan:
    storages: "{{ backup_storages }}"
    jobs: "{{ backup_jobs }}"
    only: "{{ backup_only }}"
  register: plan
"""

RETURN = r"""
jobs:
  description:
    - The jobs that run, with C(name), C(service), C(module), C(storage), C(retention), C(verify) and
      C(expected_interval) (seconds).
  returned: always
  type: list
  elements: dict
skipped:
  description: The jobs left out, with C(name), C(reason) (V(disabled) or V(not in only)), C(storage) and
    C(expected_interval) (seconds).
  returned: always
  type: list
  elements: dict
problems:
  description: Every problem found; the task fails when there is one.
  returned: always
  type: list
  elements: str
"""
