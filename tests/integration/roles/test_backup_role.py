# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""playbooks/backup.yml (the backup role) as users run it: an inventory with jobs, ansible-playbook."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.corebackup.backup.tests.conftest import files_below
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_playbook
from ansible_collections.corebackup.backup.tests.testbed.records import set_records
from ansible_collections.corebackup.backup.tests.testbed.secret_scan import SecretScanner, forms

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
PLAYBOOK = os.path.join(ROOT, "playbooks", "backup.yml")
BAD_TOKEN = "ghp_badbadbadbadbadbadbadbadbadbadbadbad1"


class Receiver(http.server.ThreadingHTTPServer):
    """A local HTTP endpoint that keeps what was posted to it (a Slack webhook, a JSON webhook) and answers with
    ``status``."""

    def __init__(self):
        self.posts = []
        self.status = 200
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append((self.path, json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]


@pytest.fixture(scope="module")
def org(github_standin, tmp_path_factory):
    token = github_standin.add_token(login="role-bot")
    github_fixtures.build_many(github_standin, "roleorg", str(tmp_path_factory.mktemp("roleorg")), count=3, seed=4,
                               metadata=False)
    return github_standin, token


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.shutdown()


def closed_port():
    """A port of 127.0.0.1 that nothing listens on: a receiver that refuses connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def inventory(tmp_path, jobs, restore_host=False, **variables):
    """An inventory folder as a user writes one: hosts, and group_vars for backup_hosts; with ``restore_host``
    the same host is in restore_hosts too (restore.yml and drill.yml run there)."""
    folder = tmp_path / "inventory"
    (folder / "group_vars" / "backup_hosts").mkdir(parents=True)
    groups = ["backup_hosts", "restore_hosts"] if restore_host else ["backup_hosts"]
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {group: {"hosts": {"localhost": {
        "ansible_connection": "local"}}} for group in groups}}}))
    settings = {"backup_storages": {"local": {"type": "filesystem", "path": str(tmp_path / "store")}},
                "backup_jobs": jobs}
    settings.update(variables)
    (folder / "group_vars" / "backup_hosts" / "main.yml").write_text(yaml.safe_dump(settings))
    return str(folder)


def sample(tmp_path, name):
    path = tmp_path / name
    path.mkdir()
    (path / "file.txt").write_text("content of %s\n" % name)
    return str(path)


def jobs_of(tmp_path, org):
    standin, token = org
    return [
        {"name": "etc", "service": "files", "storage": "local", "retention": {"keep_daily": 7},
         "options": {"paths": [sample(tmp_path, "etc")]}, "verify": True},
        {"name": "code", "service": "github", "storage": "local", "retention": {"keep_days": 30},
         "options": {"organization": "roleorg", "token": BAD_TOKEN, "api_url": standin.api_url,
                     "retries": {"attempts": 1}}},
        {"name": "srv", "service": "files", "storage": "local", "options": {"paths": [sample(tmp_path, "srv")]}},
        {"name": "old", "service": "files", "storage": "local", "enabled": False, "options": {"paths": ["/nonexistent"]}},
        {"name": "good-code", "service": "github", "storage": "local",
         "options": {"organization": "roleorg", "token": token, "api_url": standin.api_url}},
    ]


def set_status(tmp_path, job):
    """The status of the job's only set, as its records say."""
    return set_records(tmp_path / "store", job).status


def test_a_failing_job_does_not_stop_the_others_and_fails_the_play(tmp_path, org, receiver):
    metrics = tmp_path / "corebackup.prom"
    inv = inventory(tmp_path, jobs_of(tmp_path, org), backup_notify_slack_webhook=receiver.url + "/slack",
                    backup_notify_webhook=receiver.url + "/hook", backup_metrics_textfile=str(metrics),
                    backup_secrets=[BAD_TOKEN])
    run = run_playbook(COLLECTIONS, PLAYBOOK, inv)
    assert run.returncode != 0  # cron, systemd and AWX see that a job failed
    assert "1 job(s) failed: code" in run.all_text()
    assert {job: set_status(tmp_path, job) for job in ("etc", "code", "srv", "good-code")} == {
        "etc": "success", "code": "failed", "srv": "success", "good-code": "success"}
    assert not os.path.exists(str(tmp_path / "store" / "old"))  # disabled
    posts = dict(((path, body.get("job") or body["text"].split(":")[0]), body) for path, body in receiver.posts)
    assert set(posts) == {("/slack", "code"), ("/hook", "code")}  # notify_on: failure
    assert "Bad credentials" in posts[("/slack", "code")]["text"] and posts[("/hook", "code")]["status"] == "failed"
    assert BAD_TOKEN not in json.dumps(receiver.posts) + run.all_text()
    assert org[1] not in json.dumps(receiver.posts) + run.all_text()
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    status = {(s.labels["job"], s.labels["status"]): s.value for s in families["corebackup_job_status"].samples}
    assert status[("code", "failed")] == 1 and status[("etc", "success")] == 1 and status[("etc", "failed")] == 0
    # Every enabled job, the disabled one not: 0 for the job that never succeeded, so that its stale alert fires.
    last = {s.labels["job"]: s.value for s in families["corebackup_job_last_success_timestamp_seconds"].samples}
    assert set(last) == {"etc", "srv", "good-code", "code"} and last["code"] == 0
    assert all(last[job] > 0 for job in ("etc", "srv", "good-code"))
    assert families["corebackup_config_error"].samples[0].value == 0
    # backup_secrets still works for this release (each run recorded with it by backup_manifest), and says so.
    assert "backup_secrets is deprecated and will be removed in 1.0.0" in run.all_text()


def test_group_module_defaults_reach_a_job_that_records_its_own_run(tmp_path, age_identity):
    """module_defaults for group/corebackup.backup.backup on the play apply to the service module a job runs (as to
    any task of the play), and the module records its run itself: one run in the set, nothing recorded twice."""
    _identity, recipient = age_identity
    inv = inventory(tmp_path, [{"name": "etc", "service": "files", "storage": "local",
                                "options": {"paths": [sample(tmp_path, "etc")]}}])
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Back up with group defaults", "hosts": "backup_hosts", "gather_facts": False,
        "module_defaults": {"group/corebackup.backup.backup": {"encryption": {"recipients": [recipient]}}},
        "roles": ["corebackup.backup.backup"]}]))
    run = run_playbook(COLLECTIONS, str(play), inv)
    assert run.returncode == 0, run.stdout[-3000:]
    date = set_records(tmp_path / "store", "etc").date
    folder = tmp_path / "store" / "etc" / date
    objects = tmp_path / "store" / "etc" / "objects"  # the set references its artifact there
    artifacts = [name for name in os.listdir(str(objects)) if name.startswith("etc_")]
    assert len(artifacts) == 1 and artifacts[0].endswith(".tar.gz.age"), artifacts
    assert (objects / artifacts[0]).read_bytes().startswith(b"age-encryption.org/v1")
    runs = set_records(tmp_path / "store", "etc").runs
    assert [(r["status"], r["source"]["type"]) for r in runs] == [("success", "files")]
    assert len(os.listdir(str(folder / "runs"))) == 1
    assert "DEPRECATION" not in run.all_text()


def test_only_and_check_mode(tmp_path, org):
    inv = inventory(tmp_path, jobs_of(tmp_path, org))
    dry = run_playbook(COLLECTIONS, PLAYBOOK, inv, check=True, extra_vars={"backup_only": "etc,srv"})
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert not os.path.exists(str(tmp_path / "store")) or files_below(str(tmp_path / "store")) == []
    assert "etc: success" in dry.stdout and "code: not run" in dry.stdout
    only = run_playbook(COLLECTIONS, PLAYBOOK, inv, extra_vars={"backup_only": "etc,srv"})
    assert only.returncode == 0, only.stdout[-3000:]
    assert sorted(os.listdir(str(tmp_path / "store"))) == ["etc", "srv"]
    again = run_playbook(COLLECTIONS, PLAYBOOK, inv, extra_vars={"backup_only": ["etc"]})
    assert again.returncode == 0 and "etc: success, 1 artifact(s)" in again.stdout


def test_a_configuration_error_is_refused_before_any_job_runs(tmp_path, org):
    jobs = jobs_of(tmp_path, org)
    jobs[2]["storage"] = "nowhere"
    jobs[4]["options"]["organisation"] = "typo"
    jobs.append(dict(jobs[0]))
    metrics = tmp_path / "corebackup.prom"
    run = run_playbook(COLLECTIONS, PLAYBOOK, inventory(tmp_path, jobs, backup_metrics_textfile=str(metrics),
                                                        backup_notify_webhook="http://127.0.0.1:%d/" % closed_port()))
    assert run.returncode != 0
    text = run.all_text()
    assert "webhook notification failed: no answer (Connection refused)" in run.stdout  # said, not hidden by no_log
    assert "job srv: storage 'nowhere' is not defined in storages (local)" in text
    assert "job good-code: options: " in text and "organisation" in text
    assert "job etc: the name is used by an earlier job too" in text
    assert not os.path.exists(str(tmp_path / "store"))  # no job ran
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    assert families["corebackup_config_error"].samples[0].value == 1
    assert families["corebackup_notify_last_failure_timestamp_seconds"].samples[0].value > 0


def test_an_empty_job_list_is_refused_naming_the_group_whose_variables_were_expected(tmp_path):
    inv = inventory(tmp_path, [{"name": "etc", "service": "files", "storage": "local",
                                "options": {"paths": [sample(tmp_path, "etc")]}}])
    # The user's file is under a group the host is not in (a typo): only the role's defaults apply, no job.
    (tmp_path / "inventory" / "group_vars" / "backup_hosts").rename(tmp_path / "inventory" / "group_vars" / "backup_host")
    metrics = tmp_path / "corebackup.prom"
    refused = run_playbook(COLLECTIONS, PLAYBOOK, inv, extra_vars={"backup_metrics_textfile": str(metrics)})
    assert refused.returncode != 0  # cron, systemd and AWX see it
    assert "no job for localhost: backup_jobs is empty" in refused.stdout
    assert "variables of its group backup_hosts" in refused.stdout and "backup_allow_no_jobs" in refused.stdout
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    assert families["corebackup_config_error"].samples[0].value == 1
    allowed = run_playbook(COLLECTIONS, PLAYBOOK, inv, extra_vars={"backup_metrics_textfile": str(metrics),
                                                                   "backup_allow_no_jobs": True})
    assert allowed.returncode == 0, allowed.stdout[-3000:]
    assert "no job: backup_jobs is empty" in allowed.stdout
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    assert families["corebackup_config_error"].samples[0].value == 0


def test_a_failed_notification_is_reported_without_its_url_and_never_fails_the_backup(tmp_path, receiver):
    secret = "hk" + os.urandom(12).hex()  # the part of a webhook URL that is its credential
    receiver.status = 500
    metrics = tmp_path / "corebackup.prom"
    inv = inventory(tmp_path, [{"name": "etc", "service": "files", "storage": "local",
                                "options": {"paths": [sample(tmp_path, "etc")]}}],
                    backup_notify_on="always", backup_metrics_textfile=str(metrics),
                    backup_notify_slack_webhook="%s/services/T0/B0/%s" % (receiver.url, secret),
                    backup_notify_webhook="http://127.0.0.1:%d/hook?token=%s" % (closed_port(), secret))
    started = time.time()
    run = run_playbook(COLLECTIONS, PLAYBOOK, inv, args=("-vvv",))
    assert run.returncode == 0, run.stdout[-3000:]  # the backup succeeded; its notification did not
    assert receiver.posts and receiver.posts[0][0].endswith(secret)  # Slack was reached, and answered 500
    assert "slack notification of etc failed: HTTP 500" in run.stdout
    assert "webhook notification of etc failed: no answer (Connection refused)" in run.stdout
    leaks = SecretScanner({"webhook URL": forms(secret)})
    leaks.scan_text(run.all_text(), "output at -vvv")
    assert not leaks.findings, leaks.report()
    assert set_status(tmp_path, "etc") == "success"

    def last_failures():
        families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
        return {s.labels["receiver"]: s.value for s in families["corebackup_notify_last_failure_timestamp_seconds"].samples}

    failed = last_failures()
    assert set(failed) == {"slack", "webhook"} and all(started - 1 <= v <= time.time() for v in failed.values())
    # The next run notifies both without a fault: the time of the last failure stays for alerts to see.
    receiver.status = 200
    again = run_playbook(COLLECTIONS, PLAYBOOK, inv, extra_vars={"backup_notify_webhook": receiver.url + "/hook"})
    assert again.returncode == 0 and "notification of" not in again.stdout, again.stdout[-3000:]
    assert len(receiver.posts) == 3
    assert last_failures() == failed
