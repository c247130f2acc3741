# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The registry of services is what everything else says about services: modules, runtime.yml, the role."""

from __future__ import annotations

import ast
import os
import re

import yaml

from ansible_collections.corebackup.backup.plugins.module_utils._plan import plan_jobs
from ansible_collections.corebackup.backup.plugins.module_utils._registry import MODULES, SERVICES, SLICES, restore_spec
from ansible_collections.corebackup.backup.plugins.modules import backup_restore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_each_service_has_one_slice_and_one_module_that_is_a_shell():
    assert len(SERVICES) == len(SLICES) and len(MODULES) == len(SLICES)
    for service in SLICES:
        path = os.path.join(ROOT, "plugins", "modules", service.module + ".py")
        tree = ast.parse(open(path, encoding="utf-8").read())
        imports = [node.module for node in tree.body if isinstance(node, ast.ImportFrom)]
        assert "ansible_collections.corebackup.backup.plugins.module_utils._services." + service.backup.__module__.rsplit(
            ".", 1)[1] in imports, service.module
        functions = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        assert functions == ["main"], "%s holds code besides main(): %s" % (service.module, functions)


def test_runtime_yml_groups_every_service_module():
    with open(os.path.join(ROOT, "meta", "runtime.yml"), encoding="utf-8") as handle:
        group = yaml.safe_load(handle)["action_groups"]["backup"]
    assert set(MODULES) <= set(group)


def test_the_roles_argument_specs_name_every_service():
    with open(os.path.join(ROOT, "roles", "backup", "meta", "argument_specs.yml"), encoding="utf-8") as handle:
        specs = yaml.safe_load(handle)
    service = specs["argument_specs"]["main"]["options"]["backup_jobs"]["options"]["service"]
    assert "choices" not in service  # backup_plan checks against the registry: a new slice needs no edit there
    named = set(re.findall(r"V\(([a-z_]+)\)", " ".join(service["description"])))
    assert named == set(SERVICES)


def test_backup_plan_refuses_a_service_the_registry_does_not_list_naming_those_it_does():
    _jobs, _skipped, problems = plan_jobs({"local": {"type": "filesystem", "path": "/srv"}},
                                          [{"name": "x", "service": "ftp", "storage": "local"}])
    assert problems == ["job x: service must be one of %s, got 'ftp'" % ", ".join(sorted(SERVICES))]


def test_backup_restore_takes_every_restorers_options_specified_alike():
    spec = restore_spec()
    for service in SLICES:
        if service.restorer is not None:
            for name, option in service.restorer.SPEC.items():
                assert spec[name] == option, (service.name, name)
    source = open(backup_restore.__file__, encoding="utf-8").read()
    assert "**restore_spec()" in source
