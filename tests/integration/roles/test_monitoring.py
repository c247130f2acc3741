# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The metrics textfile cannot go quiet: playbooks/backup.yml, verify.yml and drill.yml run as users run them, on
days of their own (COREBACKUP_NOW), and the textfile read with Prometheus' parser after each."""

from __future__ import annotations

import datetime
import json
import os

from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.corebackup.backup.tests.integration.roles.test_backup_role import inventory, sample
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_playbook

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))


def playbook(name):
    return os.path.join(ROOT, "playbooks", name)


def at(text):
    return {"COREBACKUP_NOW": text}


def seconds(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_metrics(path):
    """{family: {job (or "" for a sample without one): value}}; status as {job: the status whose sample is 1}."""
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if family.name == "corebackup_job_status":
                if sample.value == 1:
                    found.setdefault(family.name, {})[sample.labels["job"]] = sample.labels["status"]
            else:
                found.setdefault(family.name, {})[sample.labels.get("job", "")] = sample.value
    return found


def per_job(metrics):
    return {family: values for family, values in metrics.items() if family.startswith(("corebackup_job",
                                                                                       "corebackup_last"))}


def manifest(store, job, date):
    """The set's run records, as a manifest lists them (the facts, not the view)."""
    runs = []
    for path in sorted((store / job / date / "runs").iterdir()):
        with open(str(path), encoding="utf-8") as handle:
            runs.append(json.load(handle))
    return {"runs": runs}


def test_every_job_stays_in_the_textfile_with_its_store_health(tmp_path):
    store = tmp_path / "store"
    path = tmp_path / "corebackup.prom"
    etc = sample(tmp_path, "etc")
    jobs = [{"name": "etc", "service": "files", "storage": "local", "options": {"paths": [etc, sample(tmp_path, "www")]}},
            {"name": "srv", "service": "files", "storage": "local", "expected_interval": "12h",
             "options": {"paths": [sample(tmp_path, "srv")]}}]
    inv = inventory(tmp_path, jobs, restore_host=True, backup_metrics_textfile=str(path))

    # Day 1: every job, then the verification (on the backup host), then the drill (on the restore host).
    first = run_playbook(COLLECTIONS, playbook("backup.yml"), inv, env=at("2026-06-15T02:00:00Z"))
    assert first.returncode == 0, first.stdout[-3000:]
    day1 = read_metrics(path)
    assert day1["corebackup_job_status"] == {"etc": "success", "srv": "success"}
    assert day1["corebackup_job_expected_interval_seconds"] == {"etc": 86400, "srv": 43200}
    assert all(seconds("2026-06-15T02:00:00Z") <= v < seconds("2026-06-15T02:05:00Z")
               for v in day1["corebackup_job_last_success_timestamp_seconds"].values())
    assert day1["corebackup_last_verified_timestamp_seconds"] == {"etc": 0, "srv": 0}  # never: the alert fires
    assert day1["corebackup_last_drill_success_timestamp_seconds"] == {"etc": 0, "srv": 0}
    sizes = [a["size"] for run in manifest(store, "etc", "2026-06-15")["runs"] for a in run["artifacts"]]
    assert len(sizes) == 2 and day1["corebackup_job_set_logical_bytes"]["etc"] == sum(sizes)
    assert day1["corebackup_config_error"] == {"": 0} and day1["corebackup_run_duration_seconds"][""] > 0
    assert "corebackup_job_previous_sets_median_logical_bytes" not in day1  # one set: nothing to compare with

    verified = run_playbook(COLLECTIONS, playbook("verify.yml"), inv, env=at("2026-06-15T03:00:00Z"))
    assert verified.returncode == 0, verified.stdout[-3000:]
    after_verify = read_metrics(path)
    assert after_verify["corebackup_last_verified_timestamp_seconds"] == {
        "etc": seconds("2026-06-15T03:00:00Z"), "srv": seconds("2026-06-15T03:00:00Z")}
    assert after_verify["corebackup_job_bad_artifacts"] == {"etc": 0, "srv": 0}
    for family in ("corebackup_job_status", "corebackup_job_last_success_timestamp_seconds",
                   "corebackup_run_duration_seconds", "corebackup_config_error"):
        assert after_verify[family] == day1[family], family  # verify.yml runs no job: the run's values stay

    drilled = run_playbook(COLLECTIONS, playbook("drill.yml"), inv, env=at("2026-06-15T04:00:00Z"))
    assert drilled.returncode == 0, drilled.stdout[-3000:]

    # Day 2: only etc runs. Nothing changed in its sources: its artifacts are carried, no byte is written, and its
    # set is as large as yesterday's. srv did not run: it keeps every value, and its drill shows (read from the store).
    only = run_playbook(COLLECTIONS, playbook("backup.yml"), inv, env=at("2026-06-16T02:00:00Z"),
                        extra_vars={"backup_only": "etc"})
    assert only.returncode == 0, only.stdout[-3000:]
    day2 = read_metrics(path)
    carried = [a for run in manifest(store, "etc", "2026-06-16")["runs"] for a in run["artifacts"]]
    assert carried and all(a.get("carried_from") for a in carried)
    assert day2["corebackup_job_set_logical_bytes"]["etc"] == day1["corebackup_job_set_logical_bytes"]["etc"]
    assert day2["corebackup_job_previous_sets_median_logical_bytes"] == {"etc": day1["corebackup_job_set_logical_bytes"]["etc"]}
    assert day2["corebackup_job_last_success_timestamp_seconds"]["etc"] >= seconds("2026-06-16T02:00:00Z")
    drill_time = seconds("2026-06-15T04:00:00Z")
    assert day2["corebackup_last_drill_success_timestamp_seconds"] == {"etc": drill_time, "srv": drill_time}
    assert day2["corebackup_last_verified_timestamp_seconds"] == {"etc": drill_time, "srv": drill_time}  # it read all
    for family, values in per_job(after_verify).items():
        if family not in ("corebackup_last_drill_success_timestamp_seconds", "corebackup_last_verified_timestamp_seconds"):
            assert day2[family]["srv"] == values["srv"], family

    # A refused configuration (a job on a storage that does not exist): nothing runs, every job keeps its values.
    (tmp_path / "broken").mkdir()
    broken = inventory(tmp_path / "broken", jobs + [{"name": "new", "service": "files", "storage": "nowhere",
                                                    "options": {"paths": [etc]}}],
                       backup_storages={"local": {"type": "filesystem", "path": str(store)}},
                       backup_metrics_textfile=str(path))
    refused = run_playbook(COLLECTIONS, playbook("backup.yml"), broken, env=at("2026-06-17T02:00:00Z"))
    assert refused.returncode != 0 and "storage 'nowhere' is not defined" in refused.stdout
    day3 = read_metrics(path)
    assert day3["corebackup_config_error"] == {"": 1}
    assert per_job(day3) == per_job(day2)
