# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""playbooks/report.yml as users run it, over a store of real sets, and its page as Debian's headless Chromium shows it."""

from __future__ import annotations

import datetime
import json
import os
import re

import yaml

from ansible_collections.corebackup.backup.plugins.module_utils._report import human_size
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_playbook
from ansible_collections.corebackup.backup.tests.testbed.chromium import Chromium

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
TOKEN = "ghp_reportreportreportreportreportrepo1"  # in a job's options: must reach neither the page nor the output
STORAGE = 'local <u>"&'  # a storage name is user input: shown as text, never as markup
FAILING_PATH = "missing <u>gone</u>"

PAGE_FACTS = r"""(() => {
  const text = (root, selector) => [...root.querySelectorAll(selector)].map(e => e.textContent);
  const rows = [...document.querySelectorAll('#summary tbody tr')].map(tr => ({
    job: tr.dataset.job, storage: tr.querySelector('td.storage').textContent, freshness: tr.dataset.freshness,
    run: tr.querySelector('td.last-run').dataset.status, verified: tr.querySelector('td.verified').dataset.result,
    drill: tr.querySelector('td.drill').dataset.result, size: tr.querySelector('td.size').textContent,
    runTitle: (tr.querySelector('td.last-run .badge') || {title: ''}).title}));
  const charts = [...document.querySelectorAll('svg.job-chart')].map(svg => {
    const box = svg.getBoundingClientRect();
    return {job: svg.dataset.job, width: box.width, height: box.height,
      yTicks: text(svg, '.y-axis text.tick'), xTicks: text(svg, '.x-axis text.tick'), titles: text(svg, '.axis-title'),
      points: [...svg.querySelectorAll('circle.set')].map(c => {
        const dot = c.getBoundingClientRect();
        return {date: c.dataset.date, size: Number(c.dataset.size), status: c.dataset.status,
                title: c.querySelector('title').textContent,
                inside: dot.width > 0 && dot.left >= box.left && dot.right <= box.right && dot.top >= box.top
                  && dot.bottom <= box.bottom};
      })};
  });
  return {rows, charts, problems: text(document, '#problems li'), headline: document.querySelector('header').textContent,
    summaryHeight: document.querySelector('#summary').getBoundingClientRect().height,
    foreign: document.querySelectorAll('u, script, img, link, iframe, object, embed').length};
})()"""


def when(now: datetime.datetime, days: float = 0, hours: float = 0) -> str:
    return (now - datetime.timedelta(days=days, hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def logical_sizes(job_dir) -> dict:
    """{set date: bytes of the artifact of each item}, the objects its run records name measured in the store's
    folders (shared objects under <job>/objects/), not read from a manifest or from a size a record states."""
    sizes = {}
    for set_dir in sorted(p for p in job_dir.iterdir() if p.is_dir() and re.match(r"^\d{4}-\d{2}-\d{2}$", p.name)):
        keys = {}
        for record in sorted((set_dir / "runs").glob("*.json")):  # their names begin with when the run finished
            for entry in json.loads(record.read_text())["entries"]:
                if entry.get("key"):
                    keys[entry["name"]] = entry["key"]
        sizes[set_dir.name] = sum((job_dir.parent / key).stat().st_size for key in keys.values())
    return sizes


def test_the_report_page_shows_every_job_at_a_glance_in_chromium(tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    versions = {}
    for name, kib in (("v1", 16), ("v2", 48), ("v3", 96)):
        versions[name] = tmp_path / "source" / name
        versions[name].mkdir(parents=True)
        (versions[name] / "data.bin").write_bytes(os.urandom(kib * 1024))  # incompressible: sizes differ per set

    def backup(job, version, at, **task):
        path = str(versions[version]) if version in versions else str(tmp_path / "source" / version)
        return dict({"name": "%s at %s" % (job, at), "environment": {"COREBACKUP_NOW": at},
                     "corebackup.backup.files_backup": {"paths": [{"path": path, "name": "data"}], "job": job,
                                                        "storage": storage}}, **task)

    tasks = [
        backup("alpha", "v1", when(now, days=6)), backup("alpha", "v2", when(now, days=4)),
        backup("alpha", "v3", when(now, days=2)),
        backup("alpha", "v3", when(now, hours=2)),  # unchanged: carried into today's set, yet restored from it
        backup("beta", "v1", when(now, days=5)),  # expected every 3 days: late
        backup("gamma", "v2", when(now, days=3)),  # daily: overdue, and its last run failed
        backup("gamma", FAILING_PATH, when(now, hours=1), failed_when=False, register="gamma_failed"),
        {"name": "record the failed run of gamma, as the role does (a failed run that stored nothing records nothing)",
         "environment": {"COREBACKUP_NOW": when(now, hours=1)},
         "corebackup.backup.backup_manifest": {"job": "gamma", "storage": storage, "result": "{{ gamma_failed }}",
                                               "source": {"type": "files", "name": "gamma"}}},
        backup("legacy", "v1", when(now, days=40)),  # in the store, no longer configured
        {"name": "verify alpha",
         "corebackup.backup.backup_manifest": {"state": "verified", "job": "alpha", "storage": storage}},
        {"name": "drill alpha", "corebackup.backup.backup_restore": {"state": "drill", "job": "alpha", "storage": storage}},
    ]
    setup = tmp_path / "setup.yml"
    setup.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"backup_hosts": {"hosts": {"localhost": {"ansible_connection": "local"}}}}))
    made = run_playbook(COLLECTIONS, str(setup), str(inventory))
    assert made.returncode == 0, made.stdout[-3000:]

    broken = tmp_path / "not-a-folder"
    broken.write_text("a file where a store should be\n")
    jobs = [{"name": "alpha", "service": "files", "storage": STORAGE, "options": {"paths": [str(versions["v3"])]}},
            {"name": "beta", "service": "files", "storage": STORAGE, "expected_interval": "3d",
             "options": {"paths": [str(versions["v1"])]}},
            {"name": "gamma", "service": "files", "storage": STORAGE, "options": {"paths": [str(versions["v2"])]}},
            {"name": "delta", "service": "github", "storage": STORAGE, "expected_interval": 3600,
             "options": {"organization": "acme", "token": TOKEN}}]
    page = tmp_path / "www" / "report.html"
    page.parent.mkdir()
    run = run_playbook(COLLECTIONS, os.path.join(ROOT, "playbooks", "report.yml"), str(inventory), extra_vars={
        "backup_storages": {STORAGE: storage, "broken": {"type": "filesystem", "path": str(broken)}},
        "backup_jobs": jobs, "backup_report_html": str(page)})
    # The page is written, then the play fails naming the storage it could not list.
    assert run.returncode == 2, run.stdout[-3000:]
    assert "TASK [Fail when a storage could not be listed]" in run.stdout and "broken could not be listed" in run.stdout
    assert re.search(r'gamma +local <u>\\?"& .* overdue +failed', run.stdout), run.stdout[-3000:]
    html_text = page.read_text()
    assert TOKEN not in html_text and TOKEN not in run.all_text()
    canary = tmp_path / "www" / "canary.html"  # the same page fetching one image: proves an error is caught
    canary.write_text(html_text.replace("</body>", '<img src="http://127.0.0.1:9/pixel.png"></body>'))

    with Chromium() as browser:
        shown = browser.load(page.as_uri())
        facts = shown.evaluate(PAGE_FACTS)
        caught = browser.load(canary.as_uri()).problems()
    assert shown.problems(("error", "warning")) == [], shown.console
    assert caught and "Content Security Policy" in caught[0]["text"], caught

    assert facts["foreign"] == 0 and facts["summaryHeight"] > 0
    assert facts["problems"] and "broken" in facts["problems"][0]
    rows = {row["job"]: row for row in facts["rows"]}
    assert sorted(rows) == ["alpha", "beta", "delta", "gamma", "legacy"]
    assert {job: row["freshness"] for job, row in rows.items()} == {
        "alpha": "ok", "beta": "late", "gamma": "overdue", "delta": "none", "legacy": "unscheduled"}
    assert {job: row["run"] for job, row in rows.items()} == {
        "alpha": "success", "beta": "success", "gamma": "failed", "delta": "none", "legacy": "success"}
    assert "missing <u>gone</u>" in rows["gamma"]["runTitle"]  # the recorded error, as text
    assert all(row["storage"] == STORAGE for row in rows.values())
    assert (rows["alpha"]["verified"], rows["alpha"]["drill"]) == ("ok", "ok")
    assert (rows["beta"]["verified"], rows["beta"]["drill"]) == ("never", "never")
    sizes = logical_sizes(tmp_path / "store" / "alpha")
    newest = max(sizes)
    assert rows["alpha"]["size"] == human_size(sizes[newest]) and sizes[newest] > 96 * 1024  # carried, still counted

    charts = {chart["job"]: chart for chart in facts["charts"]}
    assert sorted(charts) == ["alpha", "beta", "gamma", "legacy"]  # delta has no set: no chart
    for chart in charts.values():
        assert chart["width"] > 300 and chart["height"] > 100
        assert chart["titles"] == ["logical size", "set date (UTC)"]
        assert chart["yTicks"] and all(re.match(r"^\d+(\.\d+)? (B|KiB|MiB)$", tick) for tick in chart["yTicks"])
        assert chart["xTicks"] and all(re.match(r"^\d{4}-\d{2}-\d{2}$", tick) for tick in chart["xTicks"])
        assert all(point["inside"] for point in chart["points"])
        for point in chart["points"]:
            assert point["date"] in point["title"] and point["status"] in point["title"]
            assert human_size(point["size"]) in point["title"]
    assert {p["date"]: p["size"] for p in charts["alpha"]["points"]} == sizes
    assert [p["status"] for p in charts["gamma"]["points"]] == ["success", "failed"]
