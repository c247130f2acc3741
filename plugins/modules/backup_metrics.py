#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_metrics
short_description: Write the health of backup jobs as a Prometheus textfile
version_added: 0.1.0
description:
  - Writes, for the node exporter's textfile collector, per job (label C(job)) the outcome of its latest run
    (C(corebackup_job_status) per status, C(corebackup_job_last_run_timestamp_seconds), C(corebackup_job_duration_seconds),
    C(corebackup_job_bytes), C(corebackup_job_artifacts), C(corebackup_job_failures)), the last time it succeeded
    (C(corebackup_job_last_success_timestamp_seconds), success or partial), how often it should
    (C(corebackup_job_expected_interval_seconds)), and what its store says of it (O(health)) -
    C(corebackup_job_set_logical_bytes) (the bytes a restore of its newest usable set reads, carried artifacts
    included), C(corebackup_job_previous_sets_median_logical_bytes) (the median of the sets before it),
    C(corebackup_last_verified_timestamp_seconds), C(corebackup_last_drill_success_timestamp_seconds) and
    C(corebackup_job_bad_artifacts). The three times are V(0) for a job that never succeeded, was never verified
    or never passed a drill, so that an alert on their age fires for it too.
  - Besides, whether the job list was refused (C(corebackup_config_error)), the duration of the whole run
    (C(corebackup_run_duration_seconds)), and per notification receiver the last time a notification to it failed
    (C(corebackup_notify_last_failure_timestamp_seconds), V(0) until one fails; a run whose notifications succeed
    keeps the time, so an alert on it does not depend on when the next run happens).
  - The file is merged with what it holds, so that no alert goes quiet because a run left a job out. A job not in
    O(jobs) (not run this time) keeps every value it had; a job that failed keeps its last success time; the times
    read from the store never go back. With O(configured), the file holds exactly those jobs (a job no longer
    configured, or disabled, is dropped); without it (a refused configuration), every job it holds stays. An
    option left out keeps what the file holds.
  - The file is replaced atomically (a temporary file beside it, then a rename), mode 0644.
  - C(extensions/prometheus/corebackup-alerts.yml) in the collection has alert rules on these metrics.
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
  path:
    description: The textfile, for example C(/var/lib/prometheus/node-exporter/corebackup.prom).
    type: path
    required: true
  jobs:
    description:
      - The jobs of this run, each with C(name), C(status) (V(success), V(partial) or V(failed)), and optionally
        C(finished) (ISO 8601), C(duration) (seconds), C(bytes), C(artifacts) and C(failures). A value a job does
        not give is not exported for it (it belonged to an older run).
    type: list
    elements: dict
    default: []
  configured:
    description:
      - Every job the host runs (enabled), whether it ran this time or not, to its expected interval - how often it
        should produce a good set, whole seconds or a duration such as V(12h), V(1d) or V(1w)
        (C(corebackup_job_expected_interval_seconds); V(null) keeps the file's value).
      - The file then holds exactly these jobs and those of O(jobs). Without it, every job the file holds stays.
    type: dict
  health:
    description:
      - What the store says of the jobs, RV(corebackup.backup.backup_health#module:jobs). The times only move
        forward; a job with an C(error) keeps what the file holds; a job not in O(configured) (when given) is
        ignored.
    type: list
    elements: dict
    default: []
  config_error:
    description: The job list was refused before any job ran. Left out, the file's value stays (V(0) in a new file).
    type: bool
  duration:
    description: Seconds the whole run took (C(corebackup_run_duration_seconds)). Left out, the file's value stays.
    type: float
  notifications:
    description:
      - The notification receivers of this run (RV(corebackup.backup.backup_notify#module:receivers)), each with
        C(receiver) (V(slack), V(webhook)) and C(failed) (a notification to it failed in this run). A receiver left
        out loses its sample. Left out altogether, every receiver's sample stays.
    type: list
    elements: dict
    suboptions:
      receiver:
        description: The receiver, the C(receiver) label of its sample.
        type: str
        required: true
      failed:
        description: A notification to it failed in this run.
        type: bool
        default: false
notes:
  - Scraped by a node exporter, the label C(job) becomes C(exported_job) unless the scrape sets C(honor_labels),
    as the scrape job's own C(job) label wins; the shipped alert rules work either way.
"""

EXAMPLES = r"""
- name: Read what the store says of the jobs
  corebackup.backup.backup_health:
    storage: "{{ backup_storage }}"
    jobs: [etc, github]
  register: health

- name: Export the outcome and the health of the jobs
  corebackup.backup.backup_metrics:
    path: /var/lib/prometheus/node-exporter/corebackup.prom
    jobs: "{{ outcomes }}"
    configured: {etc: 1d, github: 12h}
    health: "{{ health.jobs }}"
    config_error: false
    notifications: "{{ notified.receivers }}"
"""

RETURN = r"""
path:
  description: The file written.
  returned: always
  type: str
jobs:
  description: The jobs the file holds.
  returned: always
  type: list
  elements: str
"""

import os
import re
import tempfile

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import parse_iso
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._schedule import IntervalError, parse_interval

LAST_SUCCESS = "corebackup_job_last_success_timestamp_seconds"
LAST_RUN = "corebackup_job_last_run_timestamp_seconds"
DURATION = "corebackup_job_duration_seconds"
BYTES = "corebackup_job_bytes"
ARTIFACTS = "corebackup_job_artifacts"
FAILURES = "corebackup_job_failures"
INTERVAL = "corebackup_job_expected_interval_seconds"
SET_BYTES = "corebackup_job_set_logical_bytes"
MEDIAN_BYTES = "corebackup_job_previous_sets_median_logical_bytes"
BAD = "corebackup_job_bad_artifacts"
LAST_VERIFIED = "corebackup_last_verified_timestamp_seconds"
LAST_DRILL = "corebackup_last_drill_success_timestamp_seconds"
STATUS = "corebackup_job_status"
CONFIG_ERROR = "corebackup_config_error"
RUN_DURATION = "corebackup_run_duration_seconds"
NOTIFY_FAILURE = "corebackup_notify_last_failure_timestamp_seconds"

# The per-job gauges (label job), in the order of the file.
JOB_GAUGES = (
    (LAST_SUCCESS, "Time the job last finished with status success or partial; 0 if never."),
    (LAST_RUN, "Time the job's latest run finished."),
    (DURATION, "Duration of the job's latest run."),
    (BYTES, "Bytes of the artifacts of the job's latest run."),
    (ARTIFACTS, "Artifacts of the job's latest run."),
    (FAILURES, "Items that failed in the job's latest run."),
    (INTERVAL, "How often the job should produce a good backup set, in seconds."),
    (SET_BYTES, "Bytes a restore of the job's newest usable set reads, carried artifacts included."),
    (MEDIAN_BYTES, "Median of the same of the usable sets before the newest."),
    (BAD, "Artifacts of the job whose latest verification found them missing, truncated or corrupted."),
    (LAST_VERIFIED, "Time the job's artifacts were last read back and found intact (verification or drill); 0 if never."),
    (LAST_DRILL, "Time a restore drill of the job last passed; 0 if never."),
)
# What a job's run sets, and what it removes when the run does not say (the value of an older run).
RUN_VALUES = (("finished", LAST_RUN), ("duration", DURATION), ("bytes", BYTES), ("artifacts", ARTIFACTS),
              ("failures", FAILURES))
# Times every job has, 0 for never: an alert on their age fires for a job that never did it.
ALWAYS = (LAST_SUCCESS, LAST_VERIFIED, LAST_DRILL)
STATUSES = ("success", "partial", "failed")
USABLE = ("success", "partial")
STATUS_HELP = "1 for the status of the job's latest run."
CONFIG_HELP = "1 when the job list was refused before any job ran."
RUN_DURATION_HELP = "Duration of the latest run of the backup role (every job, notifications, export)."
NOTIFY_HELP = ("Time a notification to the receiver last failed (no answer, or not 2xx); 0 if none has failed since the "
               "file was first written; runs whose notifications succeed keep it.")

_SAMPLE_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def unlabel(text):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def number(value):
    return repr(float(value))


class Textfile:
    """What a metrics file says: per job its values ({metric: value}, and ``status``), the configuration error,
    the run's duration, and per receiver its last failed notification."""

    def __init__(self, jobs=None, config_error=None, run_duration=None, notify=None):
        self.jobs = jobs if jobs is not None else {}
        self.config_error = config_error
        self.run_duration = run_duration
        self.notify = notify if notify is not None else {}

    @classmethod
    def parse(cls, text):
        """The samples of a file this module wrote; lines it does not know are left out."""
        found = cls()
        known = {name for name, _help in JOB_GAUGES}
        for line in text.splitlines():
            match = _SAMPLE_RE.match(line.strip())
            if not match or line.startswith("#"):
                continue
            name, labels, value = match.group(1), dict(
                (k, unlabel(v)) for k, v in _LABEL_RE.findall(match.group(2) or "")), match.group(3)
            try:
                value = float(value)
            except ValueError:
                continue
            if name in known and "job" in labels:
                found.jobs.setdefault(labels["job"], {})[name] = value
            elif name == STATUS and "job" in labels and labels.get("status") in STATUSES:
                values = found.jobs.setdefault(labels["job"], {})
                if value == 1:
                    values["status"] = labels["status"]
            elif name == CONFIG_ERROR:
                found.config_error = value
            elif name == RUN_DURATION:
                found.run_duration = value
            elif name == NOTIFY_FAILURE and "receiver" in labels:
                found.notify[labels["receiver"]] = value
        return found

    @classmethod
    def read(cls, path):
        try:
            with open(path, encoding="utf-8") as handle:
                return cls.parse(handle.read())
        except (OSError, UnicodeDecodeError):
            return cls()

    def render(self):
        lines = []
        for metric, text in JOB_GAUGES:
            samples = ['%s{job="%s"} %s' % (metric, label(job), number(values[metric]))
                       for job, values in sorted(self.jobs.items()) if values.get(metric) is not None]
            if samples:
                lines += ["# HELP %s %s" % (metric, text), "# TYPE %s gauge" % metric] + samples
        statuses = ['%s{job="%s",status="%s"} %d' % (STATUS, label(job), candidate, int(candidate == values["status"]))
                    for job, values in sorted(self.jobs.items()) if values.get("status") in STATUSES
                    for candidate in STATUSES]
        if statuses:
            lines += ["# HELP %s %s" % (STATUS, STATUS_HELP), "# TYPE %s gauge" % STATUS] + statuses
        lines += ["# HELP %s %s" % (CONFIG_ERROR, CONFIG_HELP), "# TYPE %s gauge" % CONFIG_ERROR,
                  "%s %d" % (CONFIG_ERROR, int(bool(self.config_error)))]
        if self.run_duration is not None:
            lines += ["# HELP %s %s" % (RUN_DURATION, RUN_DURATION_HELP), "# TYPE %s gauge" % RUN_DURATION,
                      "%s %s" % (RUN_DURATION, number(self.run_duration))]
        if self.notify:
            lines += ["# HELP %s %s" % (NOTIFY_FAILURE, NOTIFY_HELP), "# TYPE %s gauge" % NOTIFY_FAILURE]
            lines += ['%s{receiver="%s"} %s' % (NOTIFY_FAILURE, label(name), number(value))
                      for name, value in sorted(self.notify.items())]
        return "\n".join(lines) + "\n"


def timestamp(value, what):
    return parse_iso(value, what).timestamp() if value else None


def later(current, value):
    """The later of two times, either of which may be unknown."""
    known = [v for v in (current, value) if v is not None]
    return max(known) if known else None


def merge(previous, outcomes=(), configured=None, health=(), config_error=None, duration=None, notifications=None,
          now=0.0):
    """The file after this run (pure): ``previous`` (a Textfile) merged with this run's outcomes, the jobs
    configured ({name: expected interval in seconds or None}; None keeps every job), what the store says of them
    (backup_health's jobs), and the rest of the run."""
    jobs = {name: dict(values) for name, values in previous.jobs.items()}
    if configured is not None:
        names = list(configured) + [outcome["name"] for outcome in outcomes]
        jobs = {name: jobs.get(name, {}) for name in names}
        for name, interval in configured.items():
            if interval is not None:
                jobs[name][INTERVAL] = float(interval)
    for outcome in outcomes:
        values = jobs.setdefault(outcome["name"], {})
        given = dict(outcome, finished=timestamp(outcome.get("finished"), "finished"))
        for key, metric in RUN_VALUES:
            if given.get(key) is not None:
                values[metric] = float(given[key])
            else:
                values.pop(metric, None)
        values["status"] = outcome["status"]
        if outcome["status"] in USABLE and given["finished"] is not None:
            values[LAST_SUCCESS] = given["finished"]
    for found in health:
        values = jobs.get(found["job"]) if configured is not None else jobs.setdefault(found["job"], {})
        if values is None or found.get("error"):
            continue
        for key, metric in (("last_success", LAST_SUCCESS), ("last_verified", LAST_VERIFIED),
                            ("last_drill_success", LAST_DRILL)):
            values[metric] = later(values.get(metric), timestamp(found.get(key), key))
        for key, metric in (("logical_size", SET_BYTES), ("median_logical_size", MEDIAN_BYTES),
                            ("bad_artifacts", BAD)):
            if found.get(key) is not None:
                values[metric] = float(found[key])
            else:
                values.pop(metric, None)
    for values in jobs.values():
        for metric in ALWAYS:
            if values.get(metric) is None:
                values[metric] = 0.0
    notify = dict(previous.notify)
    if notifications is not None:
        notify = {n["receiver"]: now if n["failed"] else previous.notify.get(n["receiver"], 0.0) for n in notifications}
    return Textfile(
        jobs=jobs,
        config_error=previous.config_error if config_error is None else float(bool(config_error)),
        run_duration=previous.run_duration if duration is None else float(duration),
        notify=notify,
    )


def checked(params):
    """The options, checked: (outcomes, configured jobs with their intervals in seconds, health)."""
    for job in params["jobs"]:
        if not job.get("name") or job.get("status") not in STATUSES:
            raise BackupError("jobs: each job needs a name and a status (%s), got %r" % (", ".join(STATUSES), job))
    configured = None
    if params["configured"] is not None:
        configured = {}
        for name, interval in params["configured"].items():
            try:
                configured[name] = parse_interval(interval) if interval is not None else None
            except IntervalError as exc:
                raise BackupError("configured: job %s: %s" % (name, exc)) from None
    for found in params["health"]:
        if not found.get("job"):
            raise BackupError("health: each entry needs its job (the jobs backup_health returns), got %r" % (found,))
    return params["jobs"], configured, params["health"]


def run(module):
    params = module.params
    outcomes, configured, health = checked(params)
    path = params["path"]
    after = merge(Textfile.read(path), outcomes, configured, health, params["config_error"], params["duration"],
                  params["notifications"], module.now.timestamp())
    text = after.render()
    try:
        with open(path, encoding="utf-8") as handle:
            changed = handle.read() != text
    except OSError:
        changed = True
    if changed and not module.check_mode:
        folder = os.path.dirname(os.path.abspath(path))
        temp = None
        try:
            fd, temp = tempfile.mkstemp(dir=folder, prefix=".corebackup-", suffix=".prom.tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(temp, 0o644)
            os.replace(temp, path)
        except OSError as exc:
            if temp and os.path.exists(temp):
                os.unlink(temp)
            raise BackupError("cannot write the metrics file %s: %s" % (path, exc)) from None
    module.exit(changed=changed, path=path, jobs=sorted(after.jobs))


def main():
    module = BackupModule(argument_spec=dict(
        path=dict(type="path", required=True),
        jobs=dict(type="list", elements="dict", default=[]),
        configured=dict(type="dict"),
        health=dict(type="list", elements="dict", default=[]),
        config_error=dict(type="bool"),
        duration=dict(type="float"),
        notifications=dict(type="list", elements="dict", options=dict(
            receiver=dict(type="str", required=True),
            failed=dict(type="bool", default=False),
        )),
    ), storage=False)
    module.run(run)


if __name__ == "__main__":
    main()
