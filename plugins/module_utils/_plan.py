# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""A declarative job list, checked as a whole before the first job runs (the backup role's preflight).

Every problem of every job is found at once: an unknown service, a storage that is not defined, a
duplicate name, a retention policy that is empty or invalid, and each job's options against the
argument spec of the module that will run it. The plan says which jobs run (enabled, and named by
``only`` when it is given) and holds no option values, so no secret passes through it.
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.corebackup.backup.plugins.module_utils._common import common_argument_spec
from ansible_collections.corebackup.backup.plugins.module_utils._layout import LayoutError, validate_job
from ansible_collections.corebackup.backup.plugins.module_utils._retention import RULES, PolicyError, check_policy
from ansible_collections.corebackup.backup.plugins.module_utils._registry import SERVICES
from ansible_collections.corebackup.backup.plugins.module_utils._schedule import IntervalError, parse_interval

JOB_KEYS = ("name", "service", "storage", "enabled", "retention", "options", "verify", "expected_interval")
RETENTION_KEYS = RULES + ("min_keep", "keep_removed_days", "delete_unmanifested")


def selected_names(only: t.Any) -> list[str]:
    """``only`` as a list of names: a list, or a comma-separated string (what an AWX survey passes)."""
    if only in (None, "", []):
        return []
    if isinstance(only, str):
        return [name.strip() for name in only.split(",") if name.strip()]
    if isinstance(only, (list, tuple)) and all(isinstance(name, str) for name in only):
        return [name.strip() for name in only]
    raise ValueError("only must be a list of job names or a comma-separated string, got %r" % (only,))


def no_jobs_problem(host: str, groups: t.Sequence[str], inventory_dir: str | None = None) -> str:
    """What an empty job list says, naming where the host's jobs were expected: its group's variables. The usual
    cause is a group_vars file under another group's name or beside another inventory; the role's default (no
    job) then applies and passes the argument spec."""
    groups = [group for group in groups if group != "all"] or ["all"]
    which = "its group %s" % groups[0] if len(groups) == 1 else "one of its groups %s" % ", ".join(groups)
    files = " or ".join("group_vars/%s.yml, group_vars/%s/" % (group, group) for group in groups)
    return ("no job for %s: backup_jobs is empty. The jobs were expected in the variables of %s (%s, in the "
            "inventory %s or beside the playbook) or in host_vars/%s; a group_vars file named after a group the host "
            "is not in is not read. Set backup_allow_no_jobs: true if this host has no jobs on purpose" % (
                host, which, files, inventory_dir or "folder", host))


def retention_args(retention: dict) -> dict:
    """The backup_retention arguments of a job's policy, as written: the rules it does not name are off
    (so {keep_daily: 7} does not also keep the module's default 30 days)."""
    args = {rule: retention.get(rule) or 0 for rule in RULES}
    for name in ("min_keep", "keep_removed_days", "delete_unmanifested"):
        if name in retention:
            args[name] = retention[name]
    return args


def _service_spec(service: str) -> tuple[str, dict, dict]:
    found = SERVICES[service]
    return found.module, found.argument_spec(), found.constraints()


def plan_jobs(storages: t.Any, jobs: t.Any, only: t.Any = None, defaults: dict | None = None) -> tuple[list, list, list]:
    """(jobs to run, jobs left out, problems). A job to run is {name, service, module, storage, retention,
    verify}; its options stay with the caller."""
    problems: list[str] = []
    if not isinstance(storages, dict):
        return [], [], ["storages must be a dictionary of storage name to storage options, got %r" % type(storages).__name__]
    if not isinstance(jobs, list):
        return [], [], ["jobs must be a list, got %r" % type(jobs).__name__]
    storage_spec = {"storage": common_argument_spec()["storage"]}
    for name, storage in storages.items():
        errors = ArgumentSpecValidator(storage_spec).validate({"storage": storage}).error_messages
        problems.extend("storage %s: %s" % (name, error) for error in errors)
    try:
        wanted = selected_names(only)
    except ValueError as exc:
        problems.append(str(exc))
        wanted = []
    planned, skipped, seen = [], [], set()
    for index, job in enumerate(jobs):
        where = "job %d" % (index + 1)
        if not isinstance(job, dict):
            problems.append("%s is not a dictionary" % where)
            continue
        name = job.get("name")
        try:
            validate_job(name)
            where = "job %s" % name
        except LayoutError as exc:
            problems.append("%s: %s" % (where, exc))
        if name in seen:
            problems.append("%s: the name is used by an earlier job too" % where)
        seen.add(name)
        unknown = sorted(set(job) - set(JOB_KEYS))
        if unknown:
            problems.append("%s: unknown keys %s (allowed: %s)" % (where, ", ".join(unknown), ", ".join(JOB_KEYS)))
        service = job.get("service")
        if service not in SERVICES:
            problems.append("%s: service must be one of %s, got %r" % (where, ", ".join(sorted(SERVICES)), service))
        if job.get("storage") not in storages:
            problems.append("%s: storage %r is not defined in storages (%s)" % (
                where, job.get("storage"), ", ".join(sorted(storages)) or "none"))
        retention = job.get("retention")
        if retention is not None:
            if not isinstance(retention, dict) or set(retention) - set(RETENTION_KEYS):
                problems.append("%s: retention must be a dictionary of %s" % (where, ", ".join(RETENTION_KEYS)))
            else:
                try:
                    check_policy(dict(retention_args(retention), min_keep=retention.get("min_keep", 1)))
                except PolicyError as exc:
                    problems.append("%s: retention: %s" % (where, exc))
        if job.get("expected_interval") is not None:
            try:
                parse_interval(job["expected_interval"])
            except IntervalError as exc:
                problems.append("%s: expected_interval: %s" % (where, exc))
        options = job.get("options") or {}
        if not isinstance(options, dict):
            problems.append("%s: options must be a dictionary" % where)
            options = {}
        if service in SERVICES and job.get("storage") in storages:
            module, argument_spec, constraints = _service_spec(service)
            params = dict(defaults or {}, **options)
            params.update(job=name, storage=storages[job["storage"]])
            errors = ArgumentSpecValidator(argument_spec, **constraints).validate(params).error_messages
            problems.extend("%s: options: %s" % (where, error) for error in errors)
        entry = {"name": name, "service": service, "module": SERVICES[service].module if service in SERVICES else None,
                 "storage": job.get("storage"), "retention": retention_args(retention) if isinstance(retention, dict)
                 else None, "verify": bool(job.get("verify", False))}
        if job.get("enabled", True) is False or (wanted and name not in wanted):
            skipped.append({"name": name, "reason": "disabled" if job.get("enabled", True) is False else "not in only"})
        else:
            planned.append(entry)
    unknown_only = sorted(set(wanted) - seen)
    if unknown_only:
        problems.append("only names jobs that do not exist: %s" % ", ".join(unknown_only))
    return planned, skipped, problems
