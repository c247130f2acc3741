# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""How often a job is expected to produce a good backup set, and how fresh its newest one is.

A job's expected interval is ``backup_expected_interval`` (daily by default) or the job's own
``expected_interval``: a whole number of seconds, or a duration such as ``30m``, ``12h``, ``1d``, ``1w``
or ``1d12h``. The newest good set of a job is

* ``ok`` while its age is at most LATE_AFTER times the interval (a run may start late or take long);
* ``late`` up to OVERDUE_AFTER times the interval (a run was missed);
* ``overdue`` beyond that, or ``none`` when the job has no good set at all.

The metrics export the interval per job, so that one alert rule (no success within the interval plus a grace)
serves every job whatever its schedule.
"""

from __future__ import annotations

import re
import typing as t

DEFAULT_INTERVAL = "1d"
UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
LATE_AFTER = 1.5
OVERDUE_AFTER = 2.5
MAX_INTERVAL = 10 * 366 * 86400
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(min|s|m|h|d|w)")
_DURATION_RE = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*(?:min|s|m|h|d|w))+\s*$")


class IntervalError(ValueError):
    """An expected interval that is not a positive duration."""


def parse_interval(value: t.Any) -> int:
    """``value`` (seconds, or a duration string) as a whole number of seconds, at least 1."""
    if isinstance(value, bool):
        raise IntervalError("an expected interval must be seconds or a duration like 12h, 1d, 1w; got %r" % (value,))
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = float(value.strip())
    elif isinstance(value, str) and _DURATION_RE.match(value):
        seconds = sum(float(number) * UNITS[unit] for number, unit in _PART_RE.findall(value))
    else:
        raise IntervalError("an expected interval must be seconds or a duration like 12h, 1d, 1w; got %r" % (value,))
    if not 1 <= seconds <= MAX_INTERVAL:
        raise IntervalError("an expected interval must be between one second and ten years, got %r" % (value,))
    return int(round(seconds))


def freshness(age: float | None, interval: int) -> str:
    """``ok``, ``late``, ``overdue`` for the age (seconds) of a job's newest good set; ``none`` without one."""
    if age is None:
        return "none"
    if age <= LATE_AFTER * interval:
        return "ok"
    if age <= OVERDUE_AFTER * interval:
        return "late"
    return "overdue"
