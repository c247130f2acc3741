#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_notify
short_description: Send the outcome of backup jobs to a Slack incoming webhook and a JSON webhook
version_added: 0.1.0
description:
  - Posts each notice to every receiver that has a URL, from the host the module runs on; its C(text) to Slack (a
    JSON document with C(text)), its C(body) to the JSON webhook.
  - A notification that fails (no answer, or an answer other than 2xx) is reported in RV(failures) with the
    receiver, the job and the status code. The module does not fail for it, so that a failed notification never
    fails a backup; the caller reports it (the C(backup) role prints it in its summary and exports
    C(corebackup_notify_last_failure_timestamp_seconds) through M(corebackup.backup.backup_metrics)).
  - The URLs are secrets (a Slack webhook URL is its own credential). They are never returned, and no error text
    holds them.
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Sends nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  slack_webhook:
    description: A Slack incoming webhook URL; empty for none.
    type: str
    default: ""
  webhook:
    description: A URL that gets each notice's C(body) as JSON; empty for none.
    type: str
    default: ""
  notices:
    description: What to send, one notification per notice and receiver.
    type: list
    elements: dict
    default: []
    suboptions:
      job:
        description: The job the notice is about (none for the whole run), named in RV(failures).
        type: str
      text:
        description: The text Slack shows.
        type: str
        required: true
      body:
        description: The JSON document the webhook gets; by default C(job) and C(text).
        type: dict
  timeout:
    description: Seconds to wait for each receiver's answer.
    type: int
    default: 30
  validate_certs:
    description: Verify the receivers' TLS certificates.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Notify
  corebackup.backup.backup_notify:
    slack_webhook: "{{ vault_slack_webhook }}"
    notices:
      - job: nightly-github
        text: "nightly-github: failed, 0 artifact(s), 0 bytes in 3 s; Bad credentials"
        body: {job: nightly-github, status: failed}
  register: notified

- name: Say which notifications failed
  ansible.builtin.debug:
    msg: "{{ notified.failures | map(attribute='msg') | list }}"
"""

RETURN = r"""
sent:
  description: The notifications that were answered with a 2xx status, each with C(receiver), C(job) and C(status).
  returned: always
  type: list
  elements: dict
failures:
  description:
    - The notifications that failed, each with C(receiver) (V(slack) or V(webhook)), C(job), C(status) (the HTTP
      status code, V(-1) when there was no answer), C(error) (why, without the URL) and C(msg) (all of it in a line).
  returned: always
  type: list
  elements: dict
  sample:
    - receiver: slack
      job: nightly-github
      status: 500
      error: HTTP 500 Internal Server Error
      msg: "slack notification of nightly-github failed: HTTP 500 Internal Server Error"
receivers:
  description: Every receiver with a URL, with C(receiver) and C(failed) (a notification to it failed in this run).
  returned: always
  type: list
  elements: dict
"""

import json
import socket
import urllib.error
import urllib.parse

from ansible.module_utils.urls import open_url

from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule

RECEIVERS = ("slack", "webhook")
# Parts of a URL at least this long are secrets too (Slack's path, a token in the query); shorter ones (/hook)
# would mask ordinary words in a message.
SECRET_PART = 8


def describe(exc, timeout):
    """(status, why) of a failed post, from what the receiver answered or the connection error; never the URL."""
    if isinstance(exc, urllib.error.HTTPError):
        exc.close()
        return exc.code, ("HTTP %d %s" % (exc.code, exc.reason or "")).strip()
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return -1, "no answer within %d s" % timeout
    if isinstance(reason, OSError) and reason.strerror:
        return -1, "no answer (%s)" % reason.strerror
    return -1, "no answer (%s: %s)" % (type(reason).__name__, reason)


def post(url, document, timeout, validate_certs):
    """(status, None) when the receiver answered 2xx, else (status, why)."""
    try:
        response = open_url(url, data=json.dumps(document).encode("utf-8"), method="POST", timeout=timeout,
                            headers={"Content-Type": "application/json"}, validate_certs=validate_certs,
                            follow_redirects="none")
        with response:
            response.read()
            status = response.status
    except Exception as exc:  # pylint: disable=broad-exception-caught  # any failure is reported, none is raised
        return describe(exc, timeout)
    if not 200 <= status < 300:
        return status, "HTTP %d" % status
    return status, None


def run(module):
    params = module.params
    urls = {"slack": params["slack_webhook"], "webhook": params["webhook"]}
    for url in urls.values():
        parts = urllib.parse.urlsplit(url)
        module.add_secret(*(part for part in (parts.path, parts.query, parts.netloc) if len(part) >= SECRET_PART))
    sent, failures = [], []
    for notice in [] if module.check_mode else params["notices"]:
        documents = {"slack": {"text": notice["text"]},
                     "webhook": notice["body"] if notice["body"] is not None else {"job": notice["job"], "text": notice["text"]}}
        for receiver in RECEIVERS:
            if not urls[receiver]:
                continue
            status, error = post(urls[receiver], documents[receiver], params["timeout"], params["validate_certs"])
            if error is None:
                sent.append({"receiver": receiver, "job": notice["job"], "status": status})
                continue
            error = module.scrub(error)
            failures.append({"receiver": receiver, "job": notice["job"], "status": status, "error": error,
                             "msg": "%s notification%s failed: %s" % (
                                 receiver, " of %s" % notice["job"] if notice["job"] else "", error)})
    failed = {failure["receiver"] for failure in failures}
    module.exit(changed=False, sent=sent, failures=failures,
                receivers=[{"receiver": r, "failed": r in failed} for r in RECEIVERS if urls[r]])


def main():
    module = BackupModule(argument_spec=dict(
        slack_webhook=dict(type="str", default="", no_log=True),
        webhook=dict(type="str", default="", no_log=True),
        notices=dict(type="list", elements="dict", default=[], options=dict(
            job=dict(type="str"),
            text=dict(type="str", required=True),
            body=dict(type="dict"),
        )),
        timeout=dict(type="int", default=30),
        validate_certs=dict(type="bool", default=True),
    ), storage=False)
    module.run(run)


if __name__ == "__main__":
    main()
