# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The textfile backup_metrics writes: what a run keeps from the file it replaces."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.corebackup.backup.plugins.modules.backup_metrics import (
    NOTIFY_FAILURE,
    previous_successes,
    previous_values,
    render,
)


def samples(text, family):
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return {tuple(sorted(s.labels.items())): s.value for s in families[family].samples} if family in families else {}


def test_the_last_failure_of_a_receiver_stays_until_the_next_failure(tmp_path):
    path = tmp_path / "corebackup.prom"
    jobs = [{"name": "etc", "status": "success", "finished": "2026-06-15T02:00:00Z"}]
    first = render(jobs, False, {}, [{"receiver": "slack", "failed": True}, {"receiver": "webhook", "failed": False}],
                   {}, 1000.0)
    assert samples(first, NOTIFY_FAILURE) == {(("receiver", "slack"),): 1000.0, (("receiver", "webhook"),): 0.0}
    path.write_text(first)
    # A later run whose notifications succeed keeps both; a receiver added since starts at 0.
    kept = render(jobs, False, {}, [{"receiver": "slack", "failed": False}, {"receiver": "webhook", "failed": False},
                                    {"receiver": "pager", "failed": False}],
                  previous_values(str(path), NOTIFY_FAILURE, "receiver"), 2000.0)
    assert samples(kept, NOTIFY_FAILURE) == {(("receiver", "slack"),): 1000.0, (("receiver", "webhook"),): 0.0,
                                             (("receiver", "pager"),): 0.0}
    path.write_text(kept)
    again = render(jobs, False, {}, [{"receiver": "webhook", "failed": True}],
                   previous_values(str(path), NOTIFY_FAILURE, "receiver"), 3000.0)
    assert samples(again, NOTIFY_FAILURE) == {(("receiver", "webhook"),): 3000.0}  # slack and pager no longer set
    assert samples(render(jobs, False, {}), NOTIFY_FAILURE) == {}  # no receiver, no sample


def test_a_failed_job_keeps_its_last_success(tmp_path):
    path = tmp_path / "corebackup.prom"
    path.write_text(render([{"name": "etc", "status": "success", "finished": "2026-06-15T02:00:00Z"}], False, {}))
    assert previous_successes(str(path)) == {"etc": 1781488800.0}
    text = render([{"name": "etc", "status": "failed", "finished": "2026-06-16T02:00:00Z"}], False,
                  previous_successes(str(path)))
    assert samples(text, "corebackup_job_last_success_timestamp_seconds") == {(("job", "etc"),): 1781488800.0}
