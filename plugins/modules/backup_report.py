#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_report
short_description: A report of the backup sets of every job, as text and as one self-contained HTML page
version_added: 0.1.0
description:
  - Takes the sets that M(corebackup.backup.backup_manifest) O(corebackup.backup.backup_manifest#module:state=query)
    lists on each storage, and the configured jobs, and tells per job whether its backups are healthy.
  - A summary table per job and storage - the newest good (successful) set and its age, coloured against the job's
    expected interval (on time up to 1.5 times the interval, late up to 2.5 times, overdue beyond or without a good
    set), the expected interval, the status of the last run, the last verification and the last restore drill, the
    logical size of the newest good set (the bytes a restore reads, carried artifacts included) and the number of
    sets.
  - Per job a chart of the logical size of each set by set date, with labelled axes in human units; each point
    is coloured by the set's status, and hovering it shows the set's date, size, status and errors.
  - The page is one self-contained file - inline CSS and SVG, no script - and its Content-Security-Policy forbids
    the browser to fetch anything. Every value on it is escaped.
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports and returns everything, writes no page.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  storages:
    description:
      - What each storage holds, named as in C(backup_storages) - the RV(corebackup.backup.backup_manifest#module:sets)
        of a O(corebackup.backup.backup_manifest#module:state=query) with
        O(corebackup.backup.backup_manifest#module:all_jobs=true) on it - or why it could not be listed.
      - A storage with an O(storages[].error) is named on the page and in RV(problems).
    type: list
    elements: dict
    suboptions:
      name:
        description: The storage's name.
        type: str
        required: true
      sets:
        description: The sets listed on it.
        type: list
        elements: dict
        default: []
      error:
        description: Why the storage could not be listed (the failed query's message).
        type: str
  sets:
    description:
      - Sets of O(corebackup.backup.backup_manifest#module:state=query) results whose storage is not named;
        they match a configured job on any storage. One of O(storages) and O(sets) is required.
    type: list
    elements: dict
  jobs:
    description:
      - The configured jobs (the C(backup_jobs) of the backup role, without their options), to report a job that has
        no set yet, and each job's own expected interval.
      - Without it every job found is judged against O(expected_interval). With it, a job found in a store that is
        not configured there (an old job, a C(-pre-restore) job) is shown as not configured and not judged.
    type: list
    elements: dict
    suboptions:
      name:
        description: The job's name.
        type: str
        required: true
      storage:
        description: The name of the storage the job writes to. Without it, the job is matched on every storage.
        type: str
      expected_interval:
        description: How often the job is expected to make a good set, overriding O(expected_interval).
        type: raw
      enabled:
        description: A disabled job is shown as such and not judged.
        type: bool
        default: true
  expected_interval:
    description:
      - How often a job is expected to make a good set, unless O(jobs[].expected_interval) says otherwise.
      - Seconds (V(86400)) or a duration such as V(30m), V(12h), V(1d), V(1w) or V(1d12h).
    type: raw
    default: 1d
  title:
    description: The page's title and heading.
    type: str
    default: Backups
  dest:
    description:
      - Where to write the HTML page (replaced atomically, mode 0644). Without it, only the summary is returned.
    type: path
"""

EXAMPLES = r"""
- name: List the sets of every job
  corebackup.backup.backup_manifest:
    state: query
    all_jobs: true
    storage: "{{ backup_storage }}"
  register: listed

- name: Write the report, judging every job against a daily schedule
  corebackup.backup.backup_report:
    storages:
      - name: local
        sets: "{{ listed.sets }}"
    jobs:
      - {name: github-org-backup, storage: local}
      - {name: mongo-hourly, storage: local, expected_interval: 1h}
    dest: /var/www/backups/index.html
"""

RETURN = r"""
jobs:
  description: One per job and storage, sorted by job then storage.
  returned: always
  type: list
  elements: dict
  contains:
    job:
      description: The job.
      type: str
    storage:
      description: The storage's name (empty for the sets given in O(sets)).
      type: str
    configured:
      description: Whether the job is in O(jobs) for this storage (always V(true) without O(jobs)).
      type: bool
    enabled:
      description: Whether the job is enabled.
      type: bool
    sets:
      description: Number of sets.
      type: int
    bytes:
      description: Bytes of every object in the job's sets, as listed.
      type: int
    newest:
      description: Date of the newest set, V(null) without one.
      type: str
    newest_good:
      description: Date of the newest successful set, V(null) without one.
      type: str
    newest_good_age_days:
      description: Days from the newest successful set's date to today.
      type: int
    newest_good_finished:
      description: When the newest successful set's last successful run finished.
      type: str
    age_seconds:
      description: Seconds since RV(jobs[].newest_good_finished).
      type: int
    expected_interval:
      description: The job's expected interval, in seconds.
      type: int
    freshness:
      description:
        - V(ok), V(late), V(overdue), V(none) (no good set), V(disabled) or V(unscheduled) (not configured).
      type: str
    logical_size:
      description: Bytes a restore of the newest good set reads, carried artifacts included.
      type: int
    last_run:
      description: The job's newest run (C(status), C(finished), C(set), C(errors)), V(null) without one.
      type: dict
    last_verification:
      description:
        - The newest re-reading of the job's artifacts (C(when), C(set)), with C(bad), C(checked) and C(artifacts)
          counted over all of the job's sets; V(null) when never.
      type: dict
    last_drill:
      description: The job's newest restore drill (C(when), C(set), C(result), C(failed)), V(null) when never.
      type: dict
lines:
  description: The summary as text lines.
  returned: always
  type: list
  elements: str
problems:
  description: The storages that could not be listed (C(storage), C(error)); they are named on the page too.
  returned: always
  type: list
  elements: dict
"""

import contextlib
import os
import tempfile

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._report import (
    render_page,
    summarise,
    text_lines,
)


def write_page(dest, text):
    """``text`` into ``dest`` through a temporary file beside it: a reader never sees half a page."""
    try:
        fd, temp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)), prefix=".report-", suffix=".html.tmp")
    except OSError as exc:
        raise BackupError("cannot write the report %s: %s" % (dest, exc)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise BackupError("cannot write the report %s: %s" % (dest, exc)) from None


def run(module):
    params = module.params
    now = module.now
    storages = [dict(store, sets=store["sets"] or []) for store in params["storages"] or []]
    if params["sets"] is not None:
        storages.append({"name": "", "sets": params["sets"], "error": None})
    problems = [{"storage": store["name"], "error": store["error"]} for store in storages if store.get("error")]
    summaries = summarise(storages, params["jobs"], params["expected_interval"], now)
    changed = False
    if params["dest"]:
        text = render_page(summaries, problems, now, params["title"])
        changed = True
        if not module.check_mode:
            write_page(params["dest"], text)
    module.exit(changed=changed, jobs=[s.to_result(now.date()) for s in summaries], lines=text_lines(summaries, now),
                problems=problems)


def main():
    module = BackupModule(argument_spec=dict(
        storages=dict(type="list", elements="dict", options=dict(
            name=dict(type="str", required=True),
            sets=dict(type="list", elements="dict", default=[]),
            error=dict(type="str"),
        )),
        sets=dict(type="list", elements="dict"),
        jobs=dict(type="list", elements="dict", options=dict(
            name=dict(type="str", required=True),
            storage=dict(type="str"),
            expected_interval=dict(type="raw"),
            enabled=dict(type="bool", default=True),
        )),
        expected_interval=dict(type="raw", default="1d"),
        title=dict(type="str", default="Backups"),
        dest=dict(type="path"),
    ), storage=False, required_one_of=[["storages", "sets"]])
    module.run(run)


if __name__ == "__main__":
    main()
