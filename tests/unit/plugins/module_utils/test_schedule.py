# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A job's expected interval, and how fresh its newest good set is against it."""

from __future__ import annotations

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._schedule import IntervalError, freshness, parse_interval


@pytest.mark.parametrize("value, seconds", [
    (3600, 3600), ("3600", 3600), (" 90 ", 90), (1.6, 2), ("45s", 45), ("30m", 1800), ("30min", 1800), ("12h", 43200),
    ("1d", 86400), ("2w", 1209600), ("1d12h", 129600), ("1d 12h", 129600), ("1.5h", 5400)])
def test_an_interval_is_seconds_or_a_duration(value, seconds):
    assert parse_interval(value) == seconds


@pytest.mark.parametrize("value", ["", "daily", "1x", "1d garbage", "-1h", "0", 0, -60, 0.2, True, None, [1],
                                   float("nan"), float("inf"), "99999w"])
def test_anything_else_is_refused_naming_the_value(value):
    with pytest.raises(IntervalError, match="expected interval"):
        parse_interval(value)


@pytest.mark.parametrize("age, expected", [
    (None, "none"), (0, "ok"), (36 * 3600, "ok"), (36 * 3600 + 1, "late"), (60 * 3600, "late"),
    (60 * 3600 + 1, "overdue"), (400 * 86400, "overdue")])
def test_a_daily_job_is_on_time_for_a_day_and_a_half_then_late_then_overdue(age, expected):
    assert freshness(age, 86400) == expected
