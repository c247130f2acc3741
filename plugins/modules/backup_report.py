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
    lists, and returns a table of jobs (sets, size, newest set, age of the newest good set) and writes an HTML
    page with a chart per job of set size over time, one point per set coloured by its status.
  - The page is self-contained (inline SVG and CSS); it fetches nothing from the network.
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  sets:
    description: The C(sets) of one or more O(corebackup.backup.backup_manifest#module:state=query) results.
    type: list
    elements: dict
    required: true
  dest:
    description: Where to write the HTML page. Without it, only the table is returned.
    type: path
"""

EXAMPLES = r"""
- name: List the sets of every job
  corebackup.backup.backup_manifest:
    state: query
    all_jobs: true
    storage: "{{ backup_storage }}"
  register: listed

- name: Write the report
  corebackup.backup.backup_report:
    sets: "{{ listed.sets }}"
    dest: /var/www/backups/index.html
"""

RETURN = r"""
jobs:
  description: Per job C(job), C(sets), C(bytes), C(newest), C(newest_good) and C(newest_good_age_days).
  returned: always
  type: list
  elements: dict
lines:
  description: The table as text lines.
  returned: always
  type: list
  elements: str
"""

import html
import os
import tempfile

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import parse_date, utc_now
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule

COLOURS = {"success": "#2e7d32", "partial": "#ef6c00", "failed": "#c62828", "unreadable": "#6d4c41"}
WIDTH = 640
HEIGHT = 180
PAD = 40


def summarise(sets, today):
    jobs = {}
    for entry in sets:
        jobs.setdefault(entry["job"], []).append(entry)
    summary = []
    for job, entries in sorted(jobs.items()):
        entries.sort(key=lambda e: e["date"])
        good = [e["date"] for e in entries if e.get("status") in ("success", "partial")]
        summary.append({"job": job, "sets": len(entries), "bytes": sum(e.get("size") or 0 for e in entries),
                        "newest": entries[-1]["date"], "newest_good": good[-1] if good else None,
                        "newest_good_age_days": (today - parse_date(good[-1])).days if good else None,
                        "points": [(e["date"], e.get("size") or 0, e.get("status") or "unreadable") for e in entries]})
    return summary


def chart(job):
    points = job["points"]
    days = [parse_date(date).toordinal() for date, _size, _status in points]
    first, span = min(days), max(1, max(days) - min(days))
    top = max(1, max(size for _date, size, _status in points))
    marks = []
    for (date, size, status), day in zip(points, days):
        x = PAD + (day - first) * (WIDTH - 2 * PAD) / span
        y = HEIGHT - PAD - size * (HEIGHT - 2 * PAD) / top
        marks.append('<circle class="set" cx="%.1f" cy="%.1f" r="4" fill="%s" data-date="%s" data-size="%d" '
                     'data-status="%s"><title>%s: %s, %d bytes</title></circle>'
                     % (x, y, COLOURS.get(status, "#555"), date, size, status, date, status, size))
    line = " ".join("%.1f,%.1f" % (PAD + (d - first) * (WIDTH - 2 * PAD) / span,
                                   HEIGHT - PAD - s * (HEIGHT - 2 * PAD) / top) for (_dt, s, _st), d in zip(points, days))
    return ('<svg class="job-chart" data-job="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
            'viewBox="0 0 %d %d" role="img" aria-label="set size over time of %s">'
            '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/><polyline points="%s" fill="none" stroke="#90a4ae"/>'
            '%s<text x="%d" y="%d" font-size="11">%s</text><text x="%d" y="%d" font-size="11" text-anchor="end">%s'
            '</text><text x="4" y="14" font-size="11">%d bytes</text></svg>'
            % (html.escape(job["job"]), WIDTH, HEIGHT, WIDTH, HEIGHT, html.escape(job["job"]), PAD, HEIGHT - PAD,
               WIDTH - PAD, HEIGHT - PAD, line, "".join(marks), PAD, HEIGHT - 12, points[0][0], WIDTH - PAD,
               HEIGHT - 12, points[-1][0], top))


def page(jobs, generated):
    sections = []
    for job in jobs:
        age = "no good set" if job["newest_good"] is None else "newest good set %s, %d day(s) old" % (
            job["newest_good"], job["newest_good_age_days"])
        sections.append('<section class="job"><h2>%s</h2><p>%d sets, %d bytes; %s</p>%s</section>' % (
            html.escape(job["job"]), job["sets"], job["bytes"], html.escape(age), chart(job)))
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Backup sets</title><style>'
            'body{font-family:sans-serif;margin:2em}section{margin-bottom:2em}</style></head><body>'
            '<h1>Backup sets</h1><p>Generated %s. Points: one per set, green success, orange partial, red failed.</p>'
            '%s</body></html>\n' % (html.escape(generated), "".join(sections) or "<p>No backup set.</p>"))


def run(module):
    now = utc_now()
    jobs = summarise(module.params["sets"], now.date())
    lines = ["%-30s %5s %14s  %-10s  %s" % ("job", "sets", "bytes", "newest", "newest good (age)")]
    for job in jobs:
        good = "%s (%d d)" % (job["newest_good"], job["newest_good_age_days"]) if job["newest_good"] else "none"
        lines.append("%-30s %5d %14d  %-10s  %s" % (job["job"], job["sets"], job["bytes"], job["newest"], good))
    changed = False
    dest = module.params["dest"]
    if dest:
        text = page(jobs, now.strftime("%Y-%m-%d %H:%M UTC"))
        changed = True
        if not module.check_mode:
            try:
                fd, temp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)), suffix=".html.tmp")
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.chmod(temp, 0o644)
                os.replace(temp, dest)
            except OSError as exc:
                raise BackupError("cannot write the report %s: %s" % (dest, exc)) from None
    module.exit(changed=changed, jobs=[{k: v for k, v in job.items() if k != "points"} for job in jobs], lines=lines)


def main():
    module = BackupModule(argument_spec=dict(
        sets=dict(type="list", elements="dict", required=True),
        dest=dict(type="path"),
    ), storage=False)
    module.run(run)


if __name__ == "__main__":
    main()
