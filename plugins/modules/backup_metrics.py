#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_metrics
short_description: Write the outcome of backup jobs as a Prometheus textfile
version_added: 0.1.0
description:
  - Writes, for the node exporter's textfile collector, per job the last success time, the duration, the bytes
    stored, the artifacts and the failed items of its latest run, and its status; and whether the job list was
    refused (a configuration error), so that a failing job and a refused configuration can be told apart.
  - Per notification receiver, the last time a notification to it failed
    (C(corebackup_notify_last_failure_timestamp_seconds)); a run whose notifications succeed keeps the time the file
    held, so an alert on it (C(time() - corebackup_notify_last_failure_timestamp_seconds < 86400)) does not depend on
    when the next run happens; V(0) until a notification to the receiver first fails.
  - The file is replaced atomically. A job that failed keeps the last success time the file held for it.
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
        C(finished) (ISO 8601), C(duration) (seconds), C(bytes), C(artifacts) and C(failures).
    type: list
    elements: dict
    default: []
  config_error:
    description: The job list was refused before any job ran.
    type: bool
    default: false
  notifications:
    description:
      - The notification receivers of this run (RV(corebackup.backup.backup_notify#module:receivers)), each with
        C(receiver) (V(slack), V(webhook)) and C(failed) (a notification to it failed in this run). A receiver left
        out loses its sample.
    type: list
    elements: dict
    default: []
    suboptions:
      receiver:
        description: The receiver, the C(receiver) label of its sample.
        type: str
        required: true
      failed:
        description: A notification to it failed in this run.
        type: bool
        default: false
"""

EXAMPLES = r"""
- name: Export the outcome of the jobs
  corebackup.backup.backup_metrics:
    path: /var/lib/prometheus/node-exporter/corebackup.prom
    jobs: "{{ outcomes }}"
    notifications: "{{ notified.receivers }}"
"""

RETURN = r"""
path:
  description: The file written.
  returned: always
  type: str
"""

import os
import re
import tempfile

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import parse_iso
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule

PREFIX = "corebackup"
GAUGES = (
    ("last_success_timestamp_seconds", "Time the job last finished with status success or partial."),
    ("last_run_timestamp_seconds", "Time the job's latest run finished."),
    ("duration_seconds", "Duration of the job's latest run."),
    ("bytes", "Bytes of the artifacts of the job's latest run."),
    ("artifacts", "Artifacts of the job's latest run."),
    ("failures", "Items that failed in the job's latest run."),
)
STATUSES = ("success", "partial", "failed")
LAST_SUCCESS = "%s_job_last_success_timestamp_seconds" % PREFIX
NOTIFY_FAILURE = "%s_notify_last_failure_timestamp_seconds" % PREFIX
NOTIFY_HELP = ("Time a notification to the receiver last failed (no answer, or not 2xx); 0 if none has failed since the "
               "file was first written; runs whose notifications succeed keep it.")


def label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def unlabel(text):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def previous_values(path, metric, name):
    """{label value: sample value} of ``metric{name="..."}`` in the file as it is: what a run that does not
    renew a sample keeps (the last success of a job that fails, the last failure of a receiver)."""
    sample = re.compile(r'^%s\{%s="((?:[^"\\]|\\.)*)"\} (\S+)$' % (re.escape(metric), re.escape(name)))
    found = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                match = sample.match(line.strip())
                if match:
                    found[unlabel(match.group(1))] = float(match.group(2))
    except (OSError, ValueError):
        pass
    return found


def previous_successes(path):
    """{job: last success time} from the file as it is, for jobs that fail this time."""
    return previous_values(path, LAST_SUCCESS, "job")


def notify_samples(notifications, previous_failures, now):
    """The last failure time of each receiver: now if a notification to it failed, else what the file held, else 0."""
    samples = []
    for receiver in sorted(notifications, key=lambda n: n["receiver"]):
        name = receiver["receiver"]
        value = now if receiver["failed"] else previous_failures.get(name, 0.0)
        samples.append('%s{receiver="%s"} %s' % (NOTIFY_FAILURE, label(name), repr(float(value))))
    if not samples:
        return []
    return ["# HELP %s %s" % (NOTIFY_FAILURE, NOTIFY_HELP), "# TYPE %s gauge" % NOTIFY_FAILURE] + samples


def render(jobs, config_error, previous, notifications=(), previous_failures=None, now=0.0):
    lines = []
    samples = {name: [] for name, _help in GAUGES}
    samples["status"] = []
    for job in sorted(jobs, key=lambda j: j["name"]):
        name, status = label(job["name"]), job["status"]
        finished = parse_iso(job["finished"], "finished").timestamp() if job.get("finished") else None
        success = finished if status in ("success", "partial") else previous.get(job["name"])
        values = {"last_success_timestamp_seconds": success, "last_run_timestamp_seconds": finished,
                  "duration_seconds": job.get("duration"), "bytes": job.get("bytes"), "artifacts": job.get("artifacts"),
                  "failures": job.get("failures")}
        for metric, value in values.items():
            if value is not None:
                samples[metric].append('%s_job_%s{job="%s"} %s' % (PREFIX, metric, name, repr(float(value))))
        for candidate in STATUSES:
            sample = '%s_job_status{job="%s",status="%s"} %d' % (PREFIX, name, candidate, candidate == status)
            samples["status"].append(sample)
    for metric, text in GAUGES + (("status", "1 for the status of the job's latest run."),):
        if samples[metric]:
            lines += ["# HELP %s_job_%s %s" % (PREFIX, metric, text), "# TYPE %s_job_%s gauge" % (PREFIX, metric)]
            lines += samples[metric]
    lines += ["# HELP %s_config_error 1 when the job list was refused before any job ran." % PREFIX,
              "# TYPE %s_config_error gauge" % PREFIX, "%s_config_error %d" % (PREFIX, bool(config_error))]
    lines += notify_samples(notifications, previous_failures or {}, now)
    return "\n".join(lines) + "\n"


def run(module):
    params = module.params
    for job in params["jobs"]:
        if not job.get("name") or job.get("status") not in STATUSES:
            raise BackupError("jobs: each job needs a name and a status (%s), got %r" % (", ".join(STATUSES), job))
    path = params["path"]
    text = render(params["jobs"], params["config_error"], previous_successes(path), params["notifications"],
                  previous_values(path, NOTIFY_FAILURE, "receiver"), module.now.timestamp())
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
    module.exit(changed=changed, path=path)


def main():
    module = BackupModule(argument_spec=dict(
        path=dict(type="path", required=True),
        jobs=dict(type="list", elements="dict", default=[]),
        config_error=dict(type="bool", default=False),
        notifications=dict(type="list", elements="dict", default=[], options=dict(
            receiver=dict(type="str", required=True),
            failed=dict(type="bool", default=False),
        )),
    ), storage=False)
    module.run(run)


if __name__ == "__main__":
    main()
