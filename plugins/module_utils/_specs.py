# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The options of each service module, kept here so that backup_plan can check a job's options against
the spec of the module that will run it before the first job runs (a typo in the third job must not
surface after two jobs have run). Each module's DOCUMENTATION documents its own part.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

from ansible_collections.corebackup.backup.plugins.module_utils._docker import CONNECTION_SPEC, TIMEOUT_SPEC

GITHUB = dict(
    argument_spec=dict(
        organization=dict(type="str"),
        user=dict(type="str"),
        repositories=dict(type="list", elements="raw", default=[]),
        include=dict(type="list", elements="str", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
        skip_forks=dict(type="bool", default=False),
        skip_archived=dict(type="bool", default=False),
        visibility=dict(type="str", choices=["all", "public", "private"], default="all"),
        token=dict(type="str", no_log=True, fallback=(env_fallback, ["GITHUB_TOKEN"])),
        app_id=dict(type="str"),
        app_private_key=dict(type="str", no_log=True),
        app_installation_id=dict(type="int"),
        api_url=dict(type="str", default="https://api.github.com"),
        api_mode=dict(type="str", choices=["auto", "graphql", "rest"], default="auto"),
        full_refresh_days=dict(type="int", default=7),
        validate_certs=dict(type="bool", default=True),
        wiki=dict(type="bool", default=True),
        issues=dict(type="bool", default=True),
        pulls=dict(type="bool", default=True),
        releases=dict(type="bool", default=True),
        release_assets=dict(type="bool", default=False),
        labels=dict(type="bool", default=True),
        milestones=dict(type="bool", default=True),
        lfs=dict(type="bool", default=False),
    ),
    job_default="github",
    mutually_exclusive=[("organization", "user"), ("token", "app_id")],
    required_one_of=[("organization", "user")],
    required_together=[("app_id", "app_private_key")],
)

FILES = dict(
    argument_spec=dict(
        paths=dict(type="list", elements="raw", required=True),
        exclude=dict(type="list", elements="str", default=[]),
        one_file_system=dict(type="bool", default=False),
        follow_symlinks=dict(type="bool", default=False),
    ),
    job_default="files",
)

VOLUMES = dict(
    argument_spec=dict(
        volumes=dict(type="list", elements="str", default=[]),
        volume_labels=dict(type="list", elements="str", default=[]),
        containers=dict(type="list", elements="str", default=[]),
        quiesce=dict(type="str", choices=["none", "pause", "stop"], default="none"),
        stop_timeout=dict(type="int", default=30),
        helper_image=dict(type="str"),
        exclude=dict(type="list", elements="str", default=[]),
        **CONNECTION_SPEC,
        **TIMEOUT_SPEC,
    ),
    job_default="volumes",
)

MONGODB = dict(
    argument_spec=dict(
        uri=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["MONGO_URI"])),
        tls=dict(type="bool", default=False),
        tls_ca_file=dict(type="path"),
        tls_certificate_key_file=dict(type="path", no_log=False),
        read_preference=dict(type="str", default="secondaryPreferred",
                             choices=["primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"]),
        databases=dict(type="list", elements="raw", default=[]),
        exclude_databases=dict(type="list", elements="str", default=[]),
        strategy=dict(type="str", choices=["pymongo", "mongodump"], default="pymongo"),
        oplog=dict(type="bool", default=False),
        split=dict(type="str", choices=["database", "run"], default="database"),
        include_users_and_roles=dict(type="bool", default=False),
        parallel_collections=dict(type="int", default=2),
    ),
    job_default="mongodb",
)

# service name in a job list -> (module, its spec)
SERVICES = {
    "github": ("github_backup", GITHUB),
    "files": ("files_backup", FILES),
    "docker_volume": ("volume_snapshot", VOLUMES),
    "mongodb": ("mongo_dump", MONGODB),
}
