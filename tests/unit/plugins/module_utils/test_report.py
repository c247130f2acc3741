# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The backup report: units, axes, what a job's sets say, and a page where every value stays text."""

from __future__ import annotations

import datetime
import re
import html.parser

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ansible_collections.corebackup.backup.plugins.module_utils import _report as r

NOW = datetime.datetime(2026, 6, 15, 12, 0, tzinfo=datetime.timezone.utc)


def a_set(job, date, status="success", size=1000, finished=None, errors=(), **extra):
    finished = finished or date + "T02:00:00Z"
    return dict({"job": job, "date": date, "status": status, "size": size + 500, "logical_size": size, "new_size": size,
                 "items": 1, "runs": [{"run_id": "r-" + date, "status": status, "started": finished,
                                       "finished": finished, "errors": list(errors)}]}, **extra)


def by_job(summaries):
    return {s.job: s for s in summaries}


@pytest.mark.parametrize("size, text", [(0, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (1536, "1.50 KiB"),
                                        (10 * 2 ** 20, "10.0 MiB"), (123 * 2 ** 30, "123 GiB"), (None, "-")])
def test_sizes_are_in_binary_units_with_three_digits(size, text):
    assert r.human_size(size) == text


@pytest.mark.parametrize("seconds, text", [(40, "40 s"), (600, "10 min"), (3 * 3600, "3 h"), (47 * 3600, "47 h"),
                                           (50 * 3600, "2 d"), (-5, "0 s")])
def test_ages_read_as_on_a_dashboard(seconds, text):
    assert r.human_age(seconds) == text


@pytest.mark.parametrize("seconds, text", [(86400, "1 d"), (43200, "12 h"), (5400, "90 min"), (1209600, "2 w"), (45, "45 s")])
def test_an_interval_is_shown_in_the_largest_unit_that_divides_it(seconds, text):
    assert r.human_interval(seconds) == text


@given(st.integers(min_value=0, max_value=2 ** 52))
@example(2 ** 51 + 1)  # a hair above 2 PiB: float noise once took the last tick
def test_the_size_axis_covers_every_point_in_a_few_distinct_round_ticks(top):
    ticks, maximum, unit = r.nice_ticks(top)
    assert ticks[0] == 0 and maximum == ticks[-1] >= top and 2 <= len(ticks) <= 5
    steps = {round(b - a, 6) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1  # evenly spaced
    labels = [r.tick_label(tick, unit) for tick in ticks]
    assert len(set(labels)) == len(labels) and labels[0] == "0 %s" % r.SIZE_UNITS[unit]


@pytest.mark.parametrize("days", [0, 1, 3, 6, 7, 30, 365])
def test_the_date_axis_starts_at_the_first_set_and_labels_at_most_eight_days(days):
    first = datetime.date(2026, 1, 1)
    ticks = r.date_ticks(first, first + datetime.timedelta(days=days))
    assert ticks[0] == first and len(ticks) <= 8 and ticks == sorted(set(ticks))
    assert (first + datetime.timedelta(days=days) - ticks[-1]).days <= max(1, days // 6)


def test_a_job_is_judged_by_its_newest_successful_set_and_its_own_interval():
    sets = [a_set("daily", "2026-06-14", finished="2026-06-14T20:00:00Z"),
            a_set("daily", "2026-06-15", status="partial", size=2000, errors=["repo: HTTP 500"],
                  finished="2026-06-15T02:00:00Z"),
            a_set("weekly", "2026-06-01", size=5 * 2 ** 20), a_set("hourly", "2026-06-15", finished="2026-06-15T08:00:00Z")]
    jobs = [{"name": "daily", "storage": "local"}, {"name": "weekly", "storage": "local", "expected_interval": "1w"},
            {"name": "hourly", "storage": "local", "expected_interval": 3600},
            {"name": "never-ran", "storage": "local", "expected_interval": None}]
    found = by_job(r.summarise([{"name": "local", "sets": sets}], jobs, "1d", NOW))
    daily = found["daily"]
    # a partial set is not good: the age runs from the last successful run, 16 h ago, within a day and a half
    assert daily.newest_good["date"] == "2026-06-14" and daily.age == 16 * 3600 and daily.freshness == "ok"
    assert daily.last_run == {"status": "partial", "finished": "2026-06-15T02:00:00Z", "set": "2026-06-15",
                              "errors": ["repo: HTTP 500"]}
    assert daily.to_result(NOW.date())["logical_size"] == 1000
    assert (found["weekly"].freshness, found["weekly"].interval) == ("late", 604800)  # 14.4 d: within 2.5 weeks
    assert (found["hourly"].freshness, found["hourly"].interval) == ("overdue", 3600)  # 4 h
    assert (found["never-ran"].freshness, found["never-ran"].storage, found["never-ran"].sets) == ("none", "local", [])


def test_jobs_not_configured_or_disabled_are_shown_and_not_judged():
    sets = [a_set("old", "2026-01-01"), a_set("paused", "2026-01-01"), a_set("moved", "2026-01-01")]
    storages = [{"name": "local", "sets": sets}]
    jobs = [{"name": "paused", "enabled": False}, {"name": "moved", "storage": "offsite"}]
    found = r.summarise(storages, jobs, "1d", NOW)
    assert [(s.job, s.storage, s.freshness) for s in found] == [
        ("moved", "local", "unscheduled"), ("moved", "offsite", "none"), ("old", "local", "unscheduled"),
        ("paused", "local", "disabled")]
    # without a job list every job found is judged against the default interval
    assert {s.freshness for s in r.summarise(storages, None, 86400, NOW)} == {"overdue"}
    # sets of an unnamed storage match a job configured on any storage
    assert [(s.job, s.configured, len(s.sets)) for s in r.summarise([{"name": "", "sets": sets[2:]}], jobs, "1d", NOW)] == [
        ("moved", True, 1), ("paused", True, 0)]


def test_the_last_verification_and_drill_are_the_newest_of_any_set():
    sets = [a_set("j", "2026-06-13", last_verification={"when": "2026-06-13T05:00:00Z", "checked": 1, "bad": 1, "artifacts": 1},
                  last_drill={"when": "2026-06-14T06:00:00Z", "result": "failed",
                              "items": [{"name": "etc", "status": "mismatch", "detail": "files 3, recorded 4"}]}),
            a_set("j", "2026-06-14", last_verification={"when": "2026-06-14T05:00:00Z", "checked": 2, "bad": 0, "artifacts": 2},
                  last_drill={"when": "2026-06-13T06:00:00Z", "result": "ok", "items": []}),
            a_set("j", "2026-06-15")]
    [job] = r.summarise([{"name": "s", "sets": sets}], None, "1d", NOW)
    # the known-bad artifact of an older set still counts
    assert job.last_verification == {"when": "2026-06-14T05:00:00Z", "set": "2026-06-14", "bad": 1, "checked": 3,
                                     "artifacts": 3}
    assert job.last_drill == {"when": "2026-06-14T06:00:00Z", "set": "2026-06-13", "result": "failed",
                              "failed": ["etc: files 3, recorded 4"]}


@pytest.mark.parametrize("storages, jobs, default, message", [
    ([{"name": "s", "sets": [{"job": "j"}]}], None, "1d", "storage s: sets[0] is not a set"),
    ([{"name": "s", "sets": [{"job": "j", "date": "yesterday"}]}], None, "1d", "storage s: sets[0]: 'yesterday'"),
    ([], [{"name": "j", "expected_interval": "often"}], "1d", "job j: expected_interval: an expected interval"),
    ([], None, "0s", "expected_interval: an expected interval must be between")])
def test_bad_input_is_refused_naming_where(storages, jobs, default, message):
    with pytest.raises(r.ReportError, match=re.escape(message)):
        r.summarise(storages, jobs, default, NOW)


class Elements(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.texts, self.attributes = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data):
        self.texts.append(data)


def test_every_value_on_the_page_stays_text_and_nothing_is_fetched():
    hostile = '<script>alert("x")</script><img src=http://127.0.0.1:9/x onerror=alert(1)>'
    sets = [a_set("j", "2026-06-14", errors=[hostile]), a_set("j", "2026-06-15", status="failed", errors=[hostile])]
    summaries = r.summarise([{"name": "s" + hostile, "sets": sets}], None, "1d", NOW)
    page = r.render_page(summaries, [{"storage": hostile, "error": hostile}], NOW, "Backups of " + hostile)
    parsed = Elements()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert hostile in "".join(parsed.texts) and any(hostile in (value or "") for _name, value in parsed.attributes)
    assert ("content", r.CSP) in parsed.attributes  # the browser may fetch nothing
    links = [value for name, value in parsed.attributes if name in ("src", "href")]
    assert links and all(link.startswith("#job-") for link in links)
    assert parsed.tags.count("svg") == 1 and parsed.tags.count("circle") == 2


def test_the_text_lines_name_each_job_and_its_state():
    sets = [a_set("j", "2026-06-10", size=3 * 2 ** 20)]
    lines = r.text_lines(r.summarise([{"name": "local", "sets": sets}], [{"name": "j"}, {"name": "k"}], "1d", NOW), NOW)
    assert lines[0].split()[:3] == ["job", "storage", "newest"]
    assert lines[1].split() == ["j", "local", "2026-06-10", "(5", "d)", "overdue", "success", "5", "d", "ago", "never",
                                "never", "3.00", "MiB"]
    assert lines[2].split()[:6] == ["k", "-", "none", "no", "good", "set"]
