# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The key rotation of docs/operations.md with real age keys: a job backed up with the recipients [A], then [B];
each set opens with its own key, an identity file holding both keys opens both, and neither set opens with the
other key alone (the error names the artifact's recipients)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

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

    storage = {"type": "filesystem", "path": str(store)}

    def back_up(day, recipients):  # backup_module_defaults.encryption.recipients of the backup hosts, as the role passes it
        return Task("files_backup", {"job": "site", "paths": [str(site)], "storage": storage,
                                     "encryption": {"recipients": recipients}}, {"COREBACKUP_NOW": day + "T02:00:00Z"})

    def restore(day, identity, dest=None):
        return Task("backup_restore", {"job": "site", "set_date": day, "identity_file": str(identity),
                                       "dest": str(tmp_path / (dest or "unused")), "storage": storage})

    results, _run = run_tasks(COLLECTIONS, [
        back_up(OLD, [recipient_a]), back_up(NEW, [recipient_b]),  # the rotation: the recipients are B's alone
        restore(OLD, key_a, "old-with-a"), restore(NEW, key_b, "new-with-b"),
        restore(OLD, both, "old-with-both"), restore(NEW, both, "new-with-both"),
        restore(OLD, key_b), restore(NEW, key_a)])
    old, new = results[:2]
    assert old["set_status"] == "success" and new["set_status"] == "success", (old.get("msg"), new.get("msg"))
    # Nothing changed in the source, yet nothing was carried: the new set holds no artifact encrypted to A.
    assert [entry["status"] for entry in new["entries"]] == ["backed_up"]
    for day, recipient in ((OLD, recipient_a), (NEW, recipient_b)):
        [run] = [json.loads(path.read_text()) for path in (store / "site" / day / "runs").iterdir()]
        assert [a["encryption"]["recipients"] for a in run["artifacts"]] == [[recipient]]

    for result, dest in zip(results[2:6], ("old-with-a", "new-with-b", "old-with-both", "new-with-both")):
        assert not result.get("failed"), result.get("msg")
        assert (tmp_path / dest / "site" / "index.html").read_text() == "the same page before and after the rotation\n"
    # The other key alone opens neither set: the error says so, naming the artifact's recipients, and writes nothing.
    for result, identity, recipient in ((results[6], key_b, recipient_a), (results[7], key_a, recipient_b)):
        assert result["failed"]
        assert "cannot be decrypted with identity_file %s: none of its keys is a recipient" % identity in result["msg"]
        assert "encrypted to %s;" % recipient in result["msg"], result["msg"]
    assert not (tmp_path / "unused").exists() or os.listdir(str(tmp_path / "unused")) == []
