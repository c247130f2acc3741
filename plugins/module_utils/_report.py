# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The backup report: what the sets of each job say at a glance, as text lines and as one HTML page.

:func:`summarise` turns the sets that ``backup_manifest`` ``state=query`` lists (per storage) and the
configured jobs into one :class:`JobSummary` per job and storage (pure); :func:`text_lines` and
:func:`render_page` present them. The page is self-contained: inline CSS and inline SVG charts, no
script at all, and a Content-Security-Policy that forbids the browser to fetch anything. Every value
on it is escaped: job, storage and source names and recorded errors are user input.
"""

from __future__ import annotations

import datetime
import html
import math
import typing as t
from dataclasses import dataclass, field

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import LayoutError, parse_date, parse_iso
from ansible_collections.corebackup.backup.plugins.module_utils._schedule import (
    LATE_AFTER,
    OVERDUE_AFTER,
    IntervalError,
    freshness,
    parse_interval,
)

SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
STATUS_COLOURS = {"success": "#2e7d32", "partial": "#ef6c00", "failed": "#c62828", "unreadable": "#6d4c41"}
FRESHNESS_WORDS = {"ok": "on time", "late": "late", "overdue": "overdue", "none": "no good set",
                   "disabled": "disabled", "unscheduled": "not configured"}
CSP = "default-src 'none'; style-src 'unsafe-inline'"


class ReportError(BackupError):
    """The report's input is not what backup_manifest state=query returns, or a job's interval is wrong."""


# -- units ----------------------------------------------------------------------------------------
def human_size(size: int | float | None) -> str:
    """``0 B``, ``512 B``, ``1.50 KiB``, ``12.3 MiB``, ``205 GiB``: three significant digits in binary units."""
    if size is None:
        return "-"
    size = float(size)
    unit = 0
    while abs(size) >= 1024 and unit < len(SIZE_UNITS) - 1:
        size /= 1024.0
        unit += 1
    if unit == 0:
        return "%d B" % size
    text = "%.2f" % size if abs(size) < 10 else "%.1f" % size if abs(size) < 100 else "%.0f" % size
    return "%s %s" % (text, SIZE_UNITS[unit])


def human_age(seconds: float | None) -> str:
    """``40 s``, ``12 min``, ``3 h``, ``2 d``: a duration as a person reads it on a dashboard."""
    if seconds is None:
        return "-"
    seconds = max(0, seconds)
    if seconds < 90:
        return "%d s" % seconds
    if seconds < 90 * 60:
        return "%d min" % (seconds // 60)
    if seconds < 48 * 3600:
        return "%d h" % (seconds // 3600)
    return "%d d" % (seconds // 86400)


def human_interval(seconds: int) -> str:
    """An expected interval in the largest unit that divides it: ``1 d``, ``12 h``, ``90 min``."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return "%d %s" % (seconds // size, unit)
    return "%d s" % seconds


def format_time(when: datetime.datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when is not None else "-"


# -- the summary of a job --------------------------------------------------------------------------
@dataclass
class JobSummary:
    """One job on one storage: its sets (oldest first) and what a person looks for in them."""

    job: str
    storage: str
    interval: int
    configured: bool = True
    enabled: bool = True
    sets: list = field(default_factory=list)
    newest_good: dict | None = None
    newest_good_finished: datetime.datetime | None = None
    age: float | None = None
    freshness: str = "none"
    last_run: dict | None = None
    last_verification: dict | None = None
    last_drill: dict | None = None

    def to_result(self, today: datetime.date) -> dict:
        good = self.newest_good
        return {
            "job": self.job, "storage": self.storage, "configured": self.configured, "enabled": self.enabled,
            "sets": len(self.sets), "bytes": sum(s["size"] for s in self.sets),
            "newest": self.sets[-1]["date"] if self.sets else None,
            "newest_good": good["date"] if good else None,
            "newest_good_age_days": (today - parse_date(good["date"])).days if good else None,
            "newest_good_finished": self.newest_good_finished.strftime("%Y-%m-%dT%H:%M:%SZ")
            if self.newest_good_finished else None,
            "age_seconds": int(self.age) if self.age is not None else None,
            "expected_interval": self.interval, "freshness": self.freshness,
            "logical_size": good["logical_size"] if good else None,
            "last_run": self.last_run, "last_verification": self.last_verification, "last_drill": self.last_drill,
        }


def _time(value: t.Any, what: str) -> datetime.datetime:
    try:
        return parse_iso(value, what)
    except LayoutError as exc:
        raise ReportError(str(exc)) from None


def normalise_set(entry: t.Any, where: str) -> dict:
    """A set as backup_manifest state=query returns it, checked; sizes from older results filled in."""
    if not isinstance(entry, dict) or not entry.get("job") or not entry.get("date"):
        raise ReportError("%s is not a set of backup_manifest state=query (it needs job and date)" % where)
    try:
        parse_date(entry["date"])
    except LayoutError as exc:
        raise ReportError("%s: %s" % (where, exc)) from None
    backup_set = dict(entry)
    backup_set["job"] = str(entry["job"])
    backup_set["status"] = entry.get("status") or "unreadable"
    backup_set["size"] = int(entry.get("size") or 0)
    if entry.get("logical_size") is None:
        backup_set["logical_size"] = int(entry.get("artifact_bytes") or 0)
    backup_set["runs"] = [run for run in entry.get("runs") or [] if isinstance(run, dict) and run.get("finished")]
    return backup_set


def _interval(value: t.Any, what: str) -> int:
    try:
        return parse_interval(value)
    except IntervalError as exc:
        raise ReportError("%s: %s" % (what, exc)) from None


def summarise(storages: list, jobs: list | None, default_interval: t.Any, now: datetime.datetime) -> list[JobSummary]:
    """One summary per (job, storage), sorted by job then storage.

    ``storages``: [{name, sets, error}], the sets each storage holds; ``jobs``: the configured jobs
    ([{name, storage, expected_interval, enabled}]) or None when unknown. A configured job with no set
    still gets a summary; a job found in a store but absent from ``jobs`` is judged by no schedule.
    """
    default = _interval(default_interval, "expected_interval")
    configured: dict[str, dict] = {}
    for index, job in enumerate(jobs or []):
        name = str(job["name"])
        interval = default if job.get("expected_interval") in (None, "") else _interval(
            job["expected_interval"], "job %s: expected_interval" % name)
        configured[name] = {"storage": job.get("storage"), "interval": interval,
                            "enabled": job.get("enabled") is not False, "index": index}
    found: dict[tuple[str, str], JobSummary] = {}
    for store in storages:
        for index, entry in enumerate(store.get("sets") or []):
            backup_set = normalise_set(entry, "storage %s: sets[%d]" % (store["name"], index))
            key = (backup_set["job"], store["name"])
            if key not in found:
                config = configured.get(backup_set["job"])
                here = config is not None and (not config["storage"] or not store["name"]
                                               or config["storage"] == store["name"])
                found[key] = JobSummary(job=key[0], storage=key[1], interval=config["interval"] if config else default,
                                        configured=here if jobs is not None else True,
                                        enabled=config["enabled"] if here else True)
            found[key].sets.append(backup_set)
    for name, config in configured.items():
        if not any(job == name and (not config["storage"] or not storage or storage == config["storage"])
                   for job, storage in found):
            found[(name, config["storage"] or "")] = JobSummary(job=name, storage=config["storage"] or "",
                                                                interval=config["interval"], enabled=config["enabled"])
    summaries = [found[key] for key in sorted(found)]
    for summary in summaries:
        judge(summary, now)
    return summaries


def judge(summary: JobSummary, now: datetime.datetime) -> None:
    """The newest good set and its age against the job's interval, the last run, verification and drill."""
    summary.sets.sort(key=lambda s: s["date"])
    good = [s for s in summary.sets if s["status"] == "success"]
    if good:
        summary.newest_good = good[-1]
        finished = [_time(run["finished"], "finished") for run in good[-1]["runs"] if run.get("status") == "success"]
        summary.newest_good_finished = max(finished) if finished else datetime.datetime.combine(
            parse_date(good[-1]["date"]), datetime.time(), datetime.timezone.utc)
        summary.age = (now - summary.newest_good_finished).total_seconds()
    if not summary.configured:
        summary.freshness = "unscheduled"
    elif not summary.enabled:
        summary.freshness = "disabled"
    else:
        summary.freshness = freshness(summary.age, summary.interval)
    runs = [(_time(run["finished"], "finished"), run, s["date"]) for s in summary.sets for run in s["runs"]]
    if runs:
        finished, run, date = max(runs, key=lambda r: (r[0], str(r[1].get("run_id") or "")))
        summary.last_run = {"status": run.get("status") or "failed", "finished": run["finished"], "set": date,
                            "errors": [str(e) for e in run.get("errors") or []]}
    verified = [(s["last_verification"], s["date"]) for s in summary.sets if isinstance(s.get("last_verification"), dict)
                and s["last_verification"].get("when")]
    if verified:
        newest, date = max(verified, key=lambda v: (str(v[0]["when"]), v[1]))
        summary.last_verification = {
            "when": newest["when"], "set": date,
            "bad": sum(int(v.get("bad") or 0) for v, _date in verified),
            "checked": sum(int(v.get("checked") or 0) for v, _date in verified),
            "artifacts": sum(int(v.get("artifacts") or 0) for v, _date in verified)}
    drills = [(s["last_drill"], s["date"]) for s in summary.sets if isinstance(s.get("last_drill"), dict)
              and s["last_drill"].get("when")]
    if drills:
        drill, date = max(drills, key=lambda d: (str(d[0]["when"]), d[1]))
        summary.last_drill = {"when": drill["when"], "set": date, "result": drill.get("result") or "failed",
                              "failed": ["%s: %s" % (i.get("name"), i.get("detail") or i.get("status"))
                                         for i in drill.get("items") or [] if i.get("status") != "ok"]}


def ago(when: str | None, now: datetime.datetime) -> str:
    return "never" if not when else "%s ago" % human_age((now - _time(when, "time")).total_seconds())


# -- text -----------------------------------------------------------------------------------------
def text_lines(summaries: list[JobSummary], now: datetime.datetime) -> list[str]:
    lines = ["%-24s %-12s %-20s %-14s %-20s %-16s %-16s %10s" % (
        "job", "storage", "newest good (age)", "freshness", "last run", "verified", "drilled", "size")]
    for s in summaries:
        good = "%s (%s)" % (s.newest_good["date"], human_age(s.age)) if s.newest_good else "none"
        run = "%s %s" % (s.last_run["status"], ago(s.last_run["finished"], now)) if s.last_run else "never"
        verified = "never" if not s.last_verification else "%s%s" % (
            ago(s.last_verification["when"], now), ", %d bad" % s.last_verification["bad"] if s.last_verification["bad"] else "")
        drilled = "never" if not s.last_drill else "%s %s" % (s.last_drill["result"], ago(s.last_drill["when"], now))
        lines.append("%-24s %-12s %-20s %-14s %-20s %-16s %-16s %10s" % (
            s.job, s.storage or "-", good, FRESHNESS_WORDS[s.freshness], run, verified, drilled,
            human_size(s.newest_good["logical_size"]) if s.newest_good else "-"))
    return lines


# -- the page -------------------------------------------------------------------------------------
def esc(value: t.Any) -> str:
    """Text or attribute value, escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def nice_ticks(top: float) -> tuple[list[float], float, int]:
    """Y ticks (bytes) from 0 to at least ``top``: ([ticks], the axis maximum, the unit's index in SIZE_UNITS)."""
    top = wanted = max(float(top), 1.0)
    unit = 0
    while top >= 1024 and unit < len(SIZE_UNITS) - 1:
        top /= 1024.0
        unit += 1
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if unit == 0:
        step = max(1, math.ceil(step))
    count = max(1, math.ceil(top / step - 1e-9))
    scale = 1024 ** unit
    if count * step * scale < wanted:  # top was a hair above a tick, more than the tolerance for float noise allows
        count += 1
    ticks = [i * step * scale for i in range(count + 1)]
    return ticks, ticks[-1], unit


def tick_label(value: float, unit: int) -> str:
    number = value / (1024 ** unit)
    text = ("%.2f" % number).rstrip("0").rstrip(".")
    return "%s %s" % (text, SIZE_UNITS[unit])


def date_ticks(first: datetime.date, last: datetime.date) -> list[datetime.date]:
    span = (last - first).days
    if span <= 0:
        return [first]
    step = max(1, math.ceil(span / 6))
    ticks = [first + datetime.timedelta(days=d) for d in range(0, span + 1, step)]
    if (last - ticks[-1]).days * 2 >= step:
        ticks.append(last)
    return ticks


WIDTH, HEIGHT = 760, 230
LEFT, RIGHT, TOP, BOTTOM = 78, 44, 14, 50


def point_title(backup_set: dict) -> str:
    parts = ["set %s" % backup_set["date"], "%s logical" % human_size(backup_set["logical_size"])]
    if backup_set.get("new_size") is not None:
        parts.append("%s stored new" % human_size(backup_set["new_size"]))
    parts.append("status %s" % backup_set["status"])
    if backup_set.get("items") is not None:
        parts.append("%d item(s)" % backup_set["items"])
    errors = [e for run in backup_set["runs"] for e in run.get("errors") or []]
    if errors:
        parts.append("errors: %s" % "; ".join(str(e) for e in errors)[:300])
    return ", ".join(parts)


def chart(summary: JobSummary, index: int) -> str:
    """The job's sets over time: logical size by set date, one point per set coloured by its status."""
    sets = summary.sets
    dates = [parse_date(s["date"]) for s in sets]
    first, last = min(dates), max(dates)
    span = max(1, (last - first).days)
    ticks, top, unit = nice_ticks(max(s["logical_size"] for s in sets))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(day: datetime.date) -> float:
        if first == last:
            return LEFT + plot_w / 2
        return LEFT + (day - first).days * plot_w / span

    def y_of(size: float) -> float:
        return TOP + plot_h - size * plot_h / top

    out = ['<svg class="job-chart" id="chart-%d" data-job="%s" data-storage="%s" xmlns="http://www.w3.org/2000/svg" '
           'width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-labelledby="chart-%d-title">'
           '<title id="chart-%d-title">Logical size of each backup set of %s on %s, by set date</title>'
           % (index, esc(summary.job), esc(summary.storage), WIDTH, HEIGHT, WIDTH, HEIGHT, index, index,
              esc(summary.job), esc(summary.storage or "-"))]
    out.append('<g class="y-axis">')
    for tick in ticks:
        y = y_of(tick)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/><text x="%d" y="%.1f" class="tick" '
                   'text-anchor="end" dominant-baseline="middle">%s</text>'
                   % (LEFT, y, WIDTH - RIGHT, y, LEFT - 6, y, esc(tick_label(tick, unit))))
    out.append('<text class="axis-title" transform="translate(14 %.1f) rotate(-90)" text-anchor="middle">'
               'logical size</text></g>' % (TOP + plot_h / 2))
    out.append('<g class="x-axis"><line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>'
               % (LEFT, TOP + plot_h, WIDTH - RIGHT, TOP + plot_h))
    for day in date_ticks(first, last):
        x = x_of(day)
        bottom = TOP + plot_h
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="axis"/><text x="%.1f" y="%d" class="tick" '
                   'text-anchor="middle">%s</text>' % (x, bottom, x, bottom + 5, x, bottom + 18, esc(day.isoformat())))
    out.append('<text class="axis-title" x="%.1f" y="%d" text-anchor="middle">set date (UTC)</text></g>'
               % (LEFT + plot_w / 2, HEIGHT - 6))
    if len(sets) > 1:
        out.append('<polyline class="trend" points="%s"/>' % " ".join(
            "%.1f,%.1f" % (x_of(day), y_of(s["logical_size"])) for day, s in zip(dates, sets)))
    for day, backup_set in zip(dates, sets):
        status = backup_set["status"]
        out.append('<circle class="set s-%s" cx="%.1f" cy="%.1f" r="5" fill="%s" data-date="%s" data-size="%d" '
                   'data-status="%s"><title>%s</title></circle>'
                   % (esc(status), x_of(day), y_of(backup_set["logical_size"]), STATUS_COLOURS.get(status, "#555"),
                      esc(backup_set["date"]), backup_set["logical_size"], esc(status), esc(point_title(backup_set))))
    out.append("</svg>")
    return "".join(out)


def badge(kind: str, text: str, title: str = "") -> str:
    return '<span class="badge %s"%s>%s</span>' % (esc(kind), ' title="%s"' % esc(title) if title else "", esc(text))


def summary_row(s: JobSummary, index: int, now: datetime.datetime) -> str:
    good = s.newest_good
    if good:
        age = badge("f-" + s.freshness, human_age(s.age), "newest good set finished %s; expected every %s"
                    % (format_time(s.newest_good_finished), human_interval(s.interval)))
        good_cell = '<a href="#job-%d">%s</a>' % (index, esc(good["date"]))
    else:
        age = badge("f-" + s.freshness, FRESHNESS_WORDS[s.freshness])
        good_cell = "none"
    if s.last_run:
        run = s.last_run
        errors = "; " + "; ".join(run["errors"])[:500] if run["errors"] else ""
        title = "finished %s in the set %s%s" % (format_time(_time(run["finished"], "finished")), run["set"], errors)
        run_cell = "%s %s" % (badge("s-" + run["status"], run["status"], title), esc(ago(run["finished"], now)))
        run_status = run["status"]
    else:
        run_cell, run_status = "never", "none"
    if s.last_verification:
        v = s.last_verification
        result = "bad" if v["bad"] else "ok"
        title = "newest re-read %s (set %s); %d of %d artifacts re-read, %d bad" % (
            format_time(_time(v["when"], "when")), v["set"], v["checked"], v["artifacts"], v["bad"])
        verified = "%s %s" % (badge("r-" + result, "%d bad" % v["bad"] if v["bad"] else "ok", title),
                              esc(ago(v["when"], now)))
    else:
        verified, result = "never", "never"
    if s.last_drill:
        d = s.last_drill
        title = "drilled %s (set %s)%s" % (format_time(_time(d["when"], "when")), d["set"],
                                           "; " + "; ".join(d["failed"])[:500] if d["failed"] else "")
        drill = "%s %s" % (badge("r-" + ("ok" if d["result"] == "ok" else "bad"), d["result"], title),
                           esc(ago(d["when"], now)))
        drill_result = d["result"]
    else:
        drill, drill_result = "never", "never"
    return ('<tr data-job="%s" data-storage="%s" data-freshness="%s"><th scope="row" class="job">%s</th>'
            '<td class="storage">%s</td><td class="newest-good">%s</td><td class="age">%s</td>'
            '<td class="interval">%s</td><td class="last-run" data-status="%s">%s</td>'
            '<td class="verified" data-result="%s">%s</td><td class="drill" data-result="%s">%s</td>'
            '<td class="size num">%s</td><td class="count num">%d</td></tr>'
            % (esc(s.job), esc(s.storage), esc(s.freshness), esc(s.job), esc(s.storage or "-"), good_cell, age,
               esc(human_interval(s.interval)) if s.configured and s.enabled else "-", esc(run_status), run_cell,
               esc(result), verified, esc(drill_result), drill, esc(human_size(good["logical_size"]) if good else "-"),
               len(s.sets)))


STYLE = """
body{font:14px/1.45 "DejaVu Sans",system-ui,sans-serif;margin:24px 32px;color:#212121;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 4px}
.meta{color:#616161;margin:0 0 14px}
table{border-collapse:collapse;margin:8px 0 14px}
th,td{padding:5px 10px;border-bottom:1px solid #e0e0e0;text-align:left;white-space:nowrap;vertical-align:middle}
thead th{background:#f5f5f5;font-weight:600;border-bottom:2px solid #bdbdbd}
td.num{text-align:right}th.job{font-weight:600}
a{color:#1565c0;text-decoration:none}a:hover{text-decoration:underline}
.badge{display:inline-block;min-width:38px;padding:1px 7px;border-radius:9px;color:#fff;font-size:12px;
font-weight:600;text-align:center;margin-right:4px}
.f-ok,.s-success,.r-ok{background:#2e7d32}.f-late,.s-partial{background:#e65100}
.f-overdue,.f-none,.s-failed,.r-bad{background:#c62828}.s-unreadable{background:#6d4c41}
.f-disabled,.f-unscheduled{background:#757575}
#problems{border:2px solid #c62828;background:#ffebee;padding:8px 14px;margin:0 0 14px}
#problems h2{color:#b71c1c}
.legend{color:#424242;font-size:13px;margin:4px 0 22px}.legend .badge{margin-left:10px}
#charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:8px 32px}
section.job{margin:0 0 18px;padding-top:6px;border-top:1px solid #eeeeee;min-width:0}
.job-stats{color:#424242;margin:0 0 4px}
svg.job-chart{display:block;max-width:100%;height:auto}
svg .grid{stroke:#eeeeee}svg .axis{stroke:#9e9e9e}svg .trend{fill:none;stroke:#90a4ae;stroke-width:1.5}
svg .tick{font-size:11px;fill:#616161}svg .axis-title{font-size:12px;fill:#424242}
svg circle.set{stroke:#fff;stroke-width:1.5}
footer{color:#757575;font-size:12px;margin-top:24px}
"""


def render_page(summaries: list[JobSummary], problems: list[dict], now: datetime.datetime, title: str) -> str:
    counts: dict[str, int] = {}
    for s in summaries:
        counts[s.freshness] = counts.get(s.freshness, 0) + 1
    headline = ", ".join("%d %s" % (counts[k], FRESHNESS_WORDS[k]) for k in FRESHNESS_WORDS if counts.get(k))
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
           '<meta http-equiv="Content-Security-Policy" content="%s">'
           '<meta name="viewport" content="width=device-width, initial-scale=1">'
           '<title>%s</title><style>%s</style></head><body>' % (esc(CSP), esc(title), STYLE)]
    out.append('<header><h1>%s</h1><p class="meta">Generated %s. %d job(s)%s.</p></header>'
               % (esc(title), esc(format_time(now)), len(summaries), ": " + esc(headline) if headline else ""))
    if problems:
        out.append('<section id="problems"><h2>Not in this report</h2><ul>%s</ul></section>' % "".join(
            '<li>storage <strong>%s</strong> could not be listed: %s</li>' % (esc(p["storage"]), esc(p["error"]))
            for p in problems))
    out.append('<section id="overview"><h2>Summary</h2><table id="summary"><thead><tr><th scope="col">Job</th>'
               '<th scope="col">Storage</th><th scope="col">Newest good set</th><th scope="col">Age</th>'
               '<th scope="col">Expected every</th><th scope="col">Last run</th><th scope="col">Last verification</th>'
               '<th scope="col">Last drill</th><th scope="col">Logical size</th><th scope="col">Sets</th></tr></thead>'
               '<tbody>%s</tbody></table>' % "".join(summary_row(s, i, now) for i, s in enumerate(summaries, 1)))
    if not summaries:
        out.append('<p class="empty">No backup set and no configured job.</p>')
    out.append('<p class="legend">Age of the newest good (successful) set, against the job\'s expected interval:'
               '%s up to %s&times; the interval;%s up to %s&times;%s older;%s none at all;%s%s not judged.<br>'
               'Runs and sets:%s%s%s%s. Last verification: artifacts re-read and their sha256 compared. Last drill: '
               'the set restored into scratch and compared with what was recorded. Logical size: the bytes a restore '
               'of the newest good set reads, unchanged (carried) items included.</p></section>' % (
                   badge("f-ok", "on time"), "%g" % LATE_AFTER, badge("f-late", "late"), "%g" % OVERDUE_AFTER,
                   badge("f-overdue", "overdue"), badge("f-none", "no good set"), badge("f-unscheduled", "not configured"),
                   badge("f-disabled", "disabled"), badge("s-success", "success"), badge("s-partial", "partial"),
                   badge("s-failed", "failed"), badge("s-unreadable", "unreadable")))
    out.append('<div id="charts">')
    for index, s in enumerate(summaries, 1):
        stats = "%d set(s), %s stored in all" % (len(s.sets), human_size(sum(b["size"] for b in s.sets)))
        if s.newest_good:
            stats += "; newest good set %s, finished %s, %s logical" % (
                s.newest_good["date"], format_time(s.newest_good_finished), human_size(s.newest_good["logical_size"]))
        body = '<p class="job-stats">%s</p>%s' % (esc(stats), chart(s, index)) if s.sets else (
            '<p class="job-stats empty">No backup set yet.</p>')
        out.append('<section class="job" id="job-%d" data-job="%s" data-storage="%s"><h2>%s <small>on %s</small></h2>'
                   '%s</section>' % (index, esc(s.job), esc(s.storage), esc(s.job), esc(s.storage or "-"), body))
    out.append('</div><footer>corebackup.backup report: hover a point for its set\'s date, size and status.</footer>'
               '</body></html>\n')
    return "".join(out)
