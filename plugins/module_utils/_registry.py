# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The registry of services: everything that lists services reads it (``backup_plan`` and ``backup_run`` on the
controller, ``backup_restore``, the role through ``backup_plan``). A service is one slice under ``_services/``
and one line below; a unit test keeps ``meta/runtime.yml`` and the role's ``argument_specs.yml`` equal to it.

Modules are bundled by Ansible from their imports, so the slices are imported by name here, not discovered.
"""

from __future__ import annotations

from ansible_collections.corebackup.backup.plugins.module_utils._services import docker_volume, files, github, mongodb, postgres

SLICES = (
    files.SLICE,
    github.SLICE,
    docker_volume.SLICE,
    mongodb.SLICE,
    postgres.SLICE,
)

# service name (in job lists, and the type of a run's source) -> its slice
SERVICES = {service.name: service for service in SLICES}
# backup module -> its slice
MODULES = {service.module: service for service in SLICES}


def restore_spec() -> dict:
    """The options of backup_restore that the restorers read, from every slice (alike where they share one)."""
    spec: dict = {}
    for service in SLICES:
        for name, option in service.restore_spec.items():
            if name in spec and spec[name] != option:
                raise ValueError("%s specifies the restore option %s unlike another service" % (service.name, name))
            spec[name] = option
    return spec
