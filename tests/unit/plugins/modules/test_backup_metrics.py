# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The textfile backup_metrics writes: what a run keeps from the file it replaces, so that no alert goes quiet."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.modules.backup_metrics import (
    INTERVAL,
    LAST_DRILL,
    LAST_SUCCESS,
    LAST_VERIFIED,
    NOTIFY_FAILURE,
    Textfile,
    checked,
    merge,
)

JUNE_15 = 1781488800.0  # 2026-06-15T02:00:00Z


def samples(text, family):
    """{labels: value} of one family, read by Prometheus' own parser (the file must be valid exposition format)."""
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return {tuple(sorted(s.labels.items())): s.value for s in families[family].samples} if family in families else {}


def by_job(text, family):
    return {dict(labels)["job"]: value for labels, value in samples(text, family).items()}


def again(textfile, **run):
    """The next run: the file as written, read back, merged with ``run``."""
    return merge(Textfile.parse(textfile.render()), **run)


def outcome(name, status, finished="2026-06-15T02:00:00Z", **extra):
    return dict({"name": name, "status": status, "finished": finished, "duration": 5.0, "bytes": 100, "artifacts": 1,
                 "failures": 0}, **extra)


def health(job, **extra):
    return dict({"job": job, "last_success": None, "logical_size": None, "median_logical_size": None,
                 "last_verified": None, "last_drill_success": None, "bad_artifacts": 0, "error": None}, **extra)


def test_a_job_not_run_keeps_every_value_and_a_job_no_longer_configured_is_dropped():
    first = merge(Textfile(), [outcome("etc", "success"), outcome("srv", "success", bytes=700),
                               outcome("gone", "failed")],
                  {"etc": 86400, "srv": 43200, "gone": 86400})
    text = first.render()
    assert by_job(text, INTERVAL) == {"etc": 86400.0, "srv": 43200.0, "gone": 86400.0}
    # backup_only=etc, and `gone` removed from (or disabled in) the job list.
    second = again(first, outcomes=[outcome("etc", "failed", "2026-06-16T02:00:00Z", bytes=None)],
                   configured={"etc": 86400, "srv": 43200}).render()
    assert by_job(second, LAST_SUCCESS) == {"etc": JUNE_15, "srv": JUNE_15}  # etc failed: its last success stays
    assert by_job(second, "corebackup_job_bytes") == {"srv": 700.0}  # etc's run said none: not the old run's
    assert samples(second, "corebackup_job_status")[(("job", "srv"), ("status", "success"))] == 1
    assert samples(second, "corebackup_job_status")[(("job", "etc"), ("status", "failed"))] == 1
    assert by_job(second, "corebackup_job_last_run_timestamp_seconds") == {"etc": JUNE_15 + 86400, "srv": JUNE_15}
    assert "gone" not in second
    assert by_job(second, INTERVAL) == {"etc": 86400.0, "srv": 43200.0}


def test_a_refused_configuration_keeps_every_job_and_says_so():
    first = merge(Textfile(), [outcome("etc", "success"), outcome("srv", "partial")], {"etc": 86400, "srv": 86400},
                  config_error=False, duration=12.5)
    refused = again(first, config_error=True, duration=0.5).render()
    kept = first.render()
    for family in (LAST_SUCCESS, INTERVAL, "corebackup_job_status", "corebackup_job_bytes"):
        assert samples(refused, family) == samples(kept, family), family
    assert samples(refused, "corebackup_config_error") == {(): 1.0}
    assert samples(refused, "corebackup_run_duration_seconds") == {(): 0.5}
    # The next good run clears it; a run that does not say (verify.yml) keeps it.
    assert samples(again(Textfile.parse(refused)).render(), "corebackup_config_error") == {(): 1.0}
    assert samples(again(Textfile.parse(refused), config_error=False).render(), "corebackup_config_error") == {(): 0.0}


def test_what_the_store_says_only_moves_times_forward_and_never_is_zero():
    first = merge(Textfile(), [], {"etc": 86400, "srv": 86400, "new": 86400}, [
        health("etc", last_success="2026-06-15T02:00:00Z", last_verified="2026-06-15T03:00:00Z",
               logical_size=1000, median_logical_size=990.0),
        health("srv", last_drill_success="2026-06-15T04:00:00Z", logical_size=10, bad_artifacts=2),
        health("other", last_success="2026-06-15T02:00:00Z")])  # not a job of this host: ignored
    text = first.render()
    assert by_job(text, LAST_SUCCESS) == {"etc": JUNE_15, "srv": 0.0, "new": 0.0}
    assert by_job(text, LAST_VERIFIED) == {"etc": JUNE_15 + 3600, "srv": 0.0, "new": 0.0}
    assert by_job(text, LAST_DRILL) == {"etc": 0.0, "srv": JUNE_15 + 7200, "new": 0.0}
    assert by_job(text, "corebackup_job_set_logical_bytes") == {"etc": 1000.0, "srv": 10.0}
    assert by_job(text, "corebackup_job_previous_sets_median_logical_bytes") == {"etc": 990.0}
    assert by_job(text, "corebackup_job_bad_artifacts") == {"etc": 0.0, "srv": 2.0}
    # Retention removed the set holding etc's verification: the time stays. srv's store cannot be read: it keeps all.
    second = again(first, configured={"etc": 86400, "srv": 86400, "new": 86400}, health=[
        health("etc", last_success="2026-06-16T02:00:00Z", logical_size=1100, median_logical_size=1000.0),
        health("srv", error="storage unreachable")]).render()
    assert by_job(second, LAST_VERIFIED)["etc"] == JUNE_15 + 3600
    assert by_job(second, LAST_SUCCESS)["etc"] == JUNE_15 + 86400
    assert by_job(second, "corebackup_job_set_logical_bytes") == {"etc": 1100.0, "srv": 10.0}
    assert by_job(second, "corebackup_job_bad_artifacts")["srv"] == 2.0


def test_the_last_failure_of_a_receiver_stays_until_the_next_failure():
    first = merge(Textfile(), [outcome("etc", "success")], notifications=[
        {"receiver": "slack", "failed": True}, {"receiver": "webhook", "failed": False}], now=1000.0)
    assert samples(first.render(), NOTIFY_FAILURE) == {(("receiver", "slack"),): 1000.0,
                                                       (("receiver", "webhook"),): 0.0}
    # A later run whose notifications succeed keeps both; a receiver added since starts at 0.
    kept = again(first, notifications=[{"receiver": "slack", "failed": False}, {"receiver": "webhook", "failed": False},
                                       {"receiver": "pager", "failed": False}], now=2000.0)
    assert samples(kept.render(), NOTIFY_FAILURE) == {(("receiver", "slack"),): 1000.0, (("receiver", "webhook"),): 0.0,
                                                      (("receiver", "pager"),): 0.0}
    # A run that does not notify at all (verify.yml) keeps every receiver; one whose receivers are gone drops them.
    assert samples(again(kept, now=3000.0).render(), NOTIFY_FAILURE) == samples(kept.render(), NOTIFY_FAILURE)
    dropped = again(kept, notifications=[{"receiver": "webhook", "failed": True}], now=3000.0)
    assert samples(dropped.render(), NOTIFY_FAILURE) == {(("receiver", "webhook"),): 3000.0}
    assert samples(again(dropped, notifications=[]).render(), NOTIFY_FAILURE) == {}


def test_a_file_it_did_not_write_is_read_for_what_it_knows():
    previous = Textfile.parse('# HELP x y\nnode_other{job="etc"} 1\ncorebackup_job_last_success_timestamp_seconds'
                              '{job="etc"} 1.7e+09\ngarbage line\ncorebackup_job_status{job="etc",status="failed"} 1\n')
    assert previous.jobs == {"etc": {LAST_SUCCESS: 1.7e9, "status": "failed"}}


@pytest.mark.parametrize("params, message", [
    ({"jobs": [{"name": "etc"}]}, "each job needs a name and a status"),
    ({"configured": {"etc": "daily"}}, "configured: job etc: an expected interval must be seconds or a duration"),
    ({"configured": {"etc": 0}}, "between one second and ten years"),
    ({"health": [{"last_success": None}]}, "each entry needs its job"),
])
def test_wrong_options_are_named(params, message):
    with pytest.raises(BackupError, match=message):
        checked(dict({"jobs": [], "configured": None, "health": []}, **params))


def test_intervals_are_seconds_or_durations():
    _outcomes, configured, _health = checked({"jobs": [], "health": [], "configured": {
        "a": 3600, "b": "12h", "c": "1d12h", "d": "30min", "e": None}})
    assert configured == {
        "a": 3600, "b": 43200, "c": 129600, "d": 1800, "e": None}
