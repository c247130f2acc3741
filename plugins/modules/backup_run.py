#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_run
short_description: Run the service module of a backup job with the job's options
version_added: 0.1.0
description:
  - An action plugin that runs the service module O(module) with O(module_args), so that a role can run a job
    whose service is known only from its data. The result is that module's result.
  - The play's C(module_defaults) for that module, and for the group C(group/corebackup.backup.backup), apply to
    the options O(module_args) does not set, as if the module were a task of the play.
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: As the service module supports it.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  module:
    description:
      - The service module, without the collection prefix - a module of the collection's registry of services
        (M(corebackup.backup.files_backup), M(corebackup.backup.github_backup), M(corebackup.backup.volume_snapshot),
        M(corebackup.backup.mongo_dump)); any other is refused, naming them.
    type: str
    required: true
  module_args:
    description: Its options.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Run a job
  corebackup.backup.backup_run:
    module: files_backup
    module_args: {paths: [/etc], job: etc, storage: {type: filesystem, path: /mnt/backups}}
"""

RETURN = r"""
status:
  description: The service module's result, in the contract every service module keeps (see its documentation).
  returned: always
  type: str
"""
