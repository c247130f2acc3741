# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight of a job list: every problem at once, and which jobs run."""

from __future__ import annotations

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._plan import (
    no_jobs_problem,
    plan_jobs,
    retention_args,
    selected_names,
)

STORAGES = {"local": {"type": "filesystem", "path": "/mnt/backups"}}


def job(name, service="files", **extra):
    options = {"files": {"paths": ["/etc"]}, "github": {"organization": "o"}, "mongodb": {"uri": "mongodb://h/"},
               "docker_volume": {"volumes": ["v"]}}.get(service, {})
    return dict({"name": name, "service": service, "storage": "local", "options": options}, **extra)


def test_a_good_list_runs_what_is_enabled_and_named():
    jobs = [job("a", expected_interval="12h"), job("b", "github"), job("c", "mongodb", enabled=False),
            job("d", "docker_volume", expected_interval=3600)]
    planned, skipped, problems = plan_jobs(STORAGES, jobs, "a, d")
    assert problems == []
    assert [(j["name"], j["module"]) for j in planned] == [("a", "files_backup"), ("d", "volume_snapshot")]
    assert [(j["name"], j["reason"], j["storage"]) for j in skipped] == [("b", "not in only", "local"),
                                                                         ("c", "disabled", "local")]


def test_every_job_has_its_expected_interval_in_seconds():
    jobs = [job("a"), job("b", expected_interval="12h"), job("c", expected_interval=3600, enabled=False)]
    planned, skipped, problems = plan_jobs(STORAGES, jobs, interval="1w")
    assert problems == []
    assert {j["name"]: j["expected_interval"] for j in planned + skipped} == {"a": 604800, "b": 43200, "c": 3600}
    assert plan_jobs(STORAGES, [job("a")])[0][0]["expected_interval"] == 86400  # daily unless told


def test_a_wrong_expected_interval_is_a_problem_of_the_list():
    _planned, _skipped, problems = plan_jobs(STORAGES, [job("a", expected_interval="daily"),
                                                        job("b", expected_interval=0)], interval="soon")
    text = "\n".join(problems)
    assert "expected interval: an expected interval must be seconds or a duration like 12h, 1d, 1w; got 'soon'" in text
    assert "job a: expected_interval: an expected interval must be seconds or a duration" in text
    assert "job b: expected_interval: an expected interval must be between one second and ten years" in text


def test_every_problem_is_found_at_once():
    jobs = [job("a"), job("a"), job("b", "ftp"), job("c", storage="nowhere"), job("d", retention={"keep_days": 0}),
            job("e", options={"paths": ["/x"], "paht": 1}), job("f", "github", options={}), "not a job",
            job("../g"), job("h", colour="red"), job("i", expected_interval="daily")]
    _planned, _skipped, problems = plan_jobs(STORAGES, jobs, ["zz"])
    text = "\n".join(problems)
    for expected in ("job a: the name is used by an earlier job too", "job b: service must be one of",
                     "job c: storage 'nowhere' is not defined in storages (local)", "job d: retention: the retention policy is empty",
                     "job e: options: paht. Supported parameters include: allow_empty, compression", "job f: options: one of the following is required: "
                     "organization, user", "job 8 is not a dictionary", "job '../g' is not a valid job name",
                     "job h: unknown keys colour", "job i: expected_interval: an expected interval must be seconds",
                     "only names jobs that do not exist: zz"):
        assert expected in text, expected


def test_retention_as_written_turns_off_the_rules_it_does_not_name():
    assert retention_args({"keep_daily": 7, "keep_weekly": 4}) == {
        "keep_days": 0, "keep_last": 0, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 0, "keep_yearly": 0}
    assert retention_args({"keep_days": 3, "min_keep": 2})["min_keep"] == 2


@pytest.mark.parametrize("only, names", [(None, []), ("", []), ("a,b", ["a", "b"]), (" a , ", ["a"]), (["a"], ["a"])])
def test_only_is_a_list_or_a_comma_separated_string(only, names):
    assert selected_names(only) == names


def test_a_storage_with_bad_options_is_named():
    _planned, _skipped, problems = plan_jobs({"s3": {"type": "s3"}}, [], None)
    assert problems and problems[0].startswith("storage s3:") and "bucket" in problems[0]


@pytest.mark.parametrize("groups, expected", [
    (["backup_hosts"], "variables of its group backup_hosts (group_vars/backup_hosts.yml, group_vars/backup_hosts/, in"),
    (["backup_hosts", "eu"], "variables of one of its groups backup_hosts, eu (group_vars/backup_hosts.yml, "
                             "group_vars/backup_hosts/ or group_vars/eu.yml, group_vars/eu/, in"),
    ([], "variables of its group all (group_vars/all.yml, group_vars/all/, in"),
])
def test_an_empty_job_list_names_where_the_jobs_were_expected(groups, expected):
    text = no_jobs_problem("db1", groups, "/srv/inventory")
    assert text.startswith("no job for db1: backup_jobs is empty")
    assert expected in text and "the inventory /srv/inventory" in text and "host_vars/db1" in text
    assert "backup_allow_no_jobs: true" in text
