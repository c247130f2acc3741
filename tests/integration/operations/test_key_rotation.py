# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The key rotation of docs/operations.md with real age keys: playbooks/backup.yml backs a job up with the
recipients [A], then [B]; each set opens with its own key, an identity file holding both keys opens both, and
neither set opens with the other key alone (the error names the artifact's recipients)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_playbook
from ansible_collections.corebackup.backup.tests.testbed.ansible_tasks import Task, run_tasks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
OLD, NEW = "2026-05-01", "2026-05-02"

pytestmark = pytest.mark.playbook


def age_key(path) -> str:
    """A new age identity at ``path``; its public key."""
    made = subprocess.run(["age-keygen", "-o", str(path)], capture_output=True, text=True, check=True)
    return made.stderr.strip().split()[-1]


def test_sets_before_and_after_a_key_rotation_restore_with_their_own_keys_and_an_identity_that_holds_both(tmp_path):
    key_a, key_b, both = tmp_path / "identity-a.txt", tmp_path / "identity-b.txt", tmp_path / "identity-ab.txt"
    recipient_a, recipient_b = age_key(key_a), age_key(key_b)
    both.write_text(key_a.read_text() + key_b.read_text())  # one identity file, two keys: age tries each
    site = tmp_path / "srv" / "site"
    site.mkdir(parents=True)
    (site / "index.html").write_text("the same page before and after the rotation\n")
    store = tmp_path / "store"
    store.mkdir()

    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"backup_hosts": {"hosts": {"backup1": {"ansible_connection": "local"}}}}))

    def back_up(day, recipients):
        (inventory / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump({
            "backup_storages": {"local": {"type": "filesystem", "path": str(store)}},
            "backup_module_defaults": {"encryption": {"recipients": recipients}},
            "backup_jobs": [{"name": "site", "service": "files", "storage": "local", "retention": {"keep_days": 30},
                             "options": {"paths": [str(site)]}}]}))
        run = run_playbook(COLLECTIONS, os.path.join(ROOT, "playbooks", "backup.yml"), str(inventory),
                           env={"COREBACKUP_NOW": day + "T02:00:00Z"})
        assert run.returncode == 0 and "site: success" in run.stdout, run.stdout[-3000:]
        return json.loads((store / "site" / day / "manifest.json").read_text())

    old = back_up(OLD, [recipient_a])
    new = back_up(NEW, [recipient_b])  # the rotation: the recipients are B's alone
    # Nothing changed in the source, yet nothing was carried: the new set holds no artifact encrypted to A.
    assert [run["counts"]["backed_up"] for run in new["runs"]] == [1] and new["runs"][0]["counts"]["carried"] == 0
    for manifest, recipient in ((old, recipient_a), (new, recipient_b)):
        assert [a["encryption"]["recipients"] for a in manifest["runs"][0]["artifacts"]] == [[recipient]]

    def restore(day, identity, dest=None):
        return Task("backup_restore", {"job": "site", "set_date": day, "identity_file": str(identity),
                                       "dest": str(tmp_path / (dest or "unused")),
                                       "storage": {"type": "filesystem", "path": str(store)}})

    results, _run = run_tasks(COLLECTIONS, [
        restore(OLD, key_a, "old-with-a"), restore(NEW, key_b, "new-with-b"),
        restore(OLD, both, "old-with-both"), restore(NEW, both, "new-with-both"),
        restore(OLD, key_b), restore(NEW, key_a)])
    for result, dest in zip(results[:4], ("old-with-a", "new-with-b", "old-with-both", "new-with-both")):
        assert not result.get("failed"), result.get("msg")
        assert (tmp_path / dest / "site" / "index.html").read_text() == "the same page before and after the rotation\n"
    # The other key alone opens neither set: the error says so, naming the artifact's recipients, and writes nothing.
    for result, identity, recipient in ((results[4], key_b, recipient_a), (results[5], key_a, recipient_b)):
        assert result["failed"]
        assert "cannot be decrypted with identity_file %s: none of its keys is a recipient" % identity in result["msg"]
        assert "encrypted to %s;" % recipient in result["msg"], result["msg"]
    assert not (tmp_path / "unused").exists() or os.listdir(str(tmp_path / "unused")) == []
