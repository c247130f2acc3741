# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The alert rules shipped in extensions/prometheus/, checked and unit-tested by Prometheus' own promtool, on the
metrics backup_metrics really writes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.corebackup.backup.plugins.modules.backup_metrics import Textfile, merge

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES_DIR = os.path.join(ROOT, "extensions", "prometheus")
RULES = os.path.join(RULES_DIR, "corebackup-alerts.yml")
RULE_TESTS = os.path.join(RULES_DIR, "corebackup-alerts.test.yml")


@pytest.fixture(scope="module")
def promtool():
    """The promtool `make setup` takes out of Debian's prometheus package (tests/testbed/install-promtool.sh)."""
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("promtool not found (PROMTOOL=%r): run `make promtool` (or `make setup`)" % path)
    return path


def run(promtool, *args):
    return subprocess.run([promtool, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_checks_the_rules_and_passes_their_tests(promtool):
    checked = run(promtool, "check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with open(RULES, encoding="utf-8") as handle:
        alerts = [rule["alert"] for group in yaml.safe_load(handle)["groups"] for rule in group["rules"]]
    assert "SUCCESS: %d rules found" % len(alerts) in checked.stdout
    tested = run(promtool, "test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every alert is tested, firing at least once.
    with open(RULE_TESTS, encoding="utf-8") as handle:
        fired = {case["alertname"] for test in yaml.safe_load(handle)["tests"] for case in test["alert_rule_test"]
                 if case.get("exp_alerts")}
    assert fired == set(alerts)


def test_the_rules_use_only_metrics_the_textfile_has():
    """A metric renamed in backup_metrics, or misspelt in a rule, would leave an alert that can never fire."""
    everything = merge(Textfile(), [{"name": "etc", "status": "failed", "finished": "2026-06-15T02:00:00Z",
                                     "duration": 1.0, "bytes": 1, "artifacts": 1, "failures": 1}],
                       {"etc": 86400},
                       [{"job": "etc", "last_success": None, "logical_size": 1, "median_logical_size": 1.0,
                         "last_verified": None, "last_drill_success": None, "bad_artifacts": 0}],
                       config_error=False, duration=1.0, notifications=[{"receiver": "slack", "failed": True}])
    written = {sample.name for family in text_string_to_metric_families(everything.render())
               for sample in family.samples}
    with open(RULES, encoding="utf-8") as handle:
        used = set(re.findall(r"\bcorebackup_[a-z_]+", "\n".join(
            rule["expr"] for group in yaml.safe_load(handle)["groups"] for rule in group["rules"])))
    with open(RULE_TESTS, encoding="utf-8") as handle:
        series = set(re.findall(r"\bcorebackup_[a-z_]+", "\n".join(
            s["series"] for test in yaml.safe_load(handle)["tests"] for s in test["input_series"])))
    assert used and used <= written, used - written
    assert series <= written, series - written
