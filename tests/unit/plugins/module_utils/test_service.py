# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The module wrapper's error mapping, the service runner on a fake service, and the result contract."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._module import TRANSIENT_COMMAND_ERRORS, BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._record import contract_errors, read_result
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceRunner, run_status


def outcome(capsys, args, main, check=False, **module_args):
    """Run ``main`` in a BackupModule with ``args``; the JSON it printed and its exit code."""
    if check:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit) as stop:
        module = BackupModule(**module_args)
        module.run(main)
    return json.loads(capsys.readouterr().out), stop.value.code


def storage(tmp_path):
    return {"type": "filesystem", "path": str(tmp_path / "store")}


def test_a_bad_retries_value_is_a_message_not_a_traceback(capsys, tmp_path):
    result, code = outcome(capsys, {"job": "j", "storage": storage(tmp_path), "retries": {"attempts": 0}},
                           lambda m: m.backend)
    assert code == 1 and result["msg"] == "retries.attempts must be at least 1, got 0"


def test_expected_errors_are_scrubbed_and_bugs_are_named_as_such(capsys, tmp_path):
    secret = "s3cr3t-value-123"
    args = {"job": "j", "storage": dict(storage(tmp_path), secret_key=secret)}

    def user_error(module):
        raise BackupError("cannot reach https://ci:%s@example.invalid with password=%s" % (secret, secret))

    result, code = outcome(capsys, args, user_error)
    assert code == 1 and secret not in json.dumps(result)
    assert result["msg"].startswith("cannot reach https://********@example.invalid")

    def bug(module):
        return {}["missing"]

    result, code = outcome(capsys, args, bug)
    # A bug says so (its traceback is in the result where Ansible captures tracebacks, as with -vvv).
    assert code == 1 and result["msg"] == "unexpected error: 'missing'"


def test_an_invalid_job_is_named(capsys, tmp_path):
    result, _code = outcome(capsys, {"job": "../x", "storage": storage(tmp_path)}, lambda m: m.job)
    assert "job '../x' is not a valid job name" in result["msg"]


@pytest.mark.parametrize("line, transient", [
    ("fatal: unable to access 'https://h/r.git/': The requested URL returned error: 502", True),
    ("error: RPC failed; curl 56 Recv failure: Connection reset by peer", True),
    ("fatal: the remote end hung up unexpectedly", True),
    ("fatal: unable to access 'https://h/r.git/': Operation timed out after 30000 milliseconds", True),
    ("fatal: Authentication failed for 'https://h/r.git/'", False),
    ("fatal: unable to access 'https://h/r.git/': The requested URL returned error: 403", False),
    ("remote: Repository not found.", False),
    ("fatal: repository 'https://h/r.git/' not found", False),
])
def test_only_transient_command_failures_are_retried(line, transient):
    assert bool(TRANSIENT_COMMAND_ERRORS.search(line)) == transient


class Fake(Service):
    """Items a, b, c; those in ``broken`` fail; an item is unchanged when its recorded fingerprint is 'same'."""

    item_kind = "things"
    broken = {"b"}

    def discover(self):
        return [Item("a"), Item("b"), Item("c")]

    def source(self):
        return {"type": "fake", "name": "box"}

    def unchanged(self, item, recorded, entry):
        return recorded.get("fingerprint") == "same"

    def produce(self, item, recorded, entry):
        if item.name in self.broken:
            raise BackupError("%s is broken" % item.name)
        return self.store(item, "bin", [b"data of " + item.name.encode()], {"fingerprint": "same"})


def test_the_runner_on_a_fake_service(capsys, tmp_path):
    args = {"job": "j", "storage": storage(tmp_path), "fail_on_error": False}

    def main(module):
        ServiceRunner(module, Fake(module)).run()

    first, _code = outcome(capsys, args, main, packing=True)
    assert contract_errors(first) == []
    assert {e["name"]: e["status"] for e in first["entries"]} == {"a": "backed_up", "b": "failed", "c": "backed_up"}
    assert first["status"] == "partial" and first["changed"] and first["things"] == first["entries"]
    assert first["totals"]["backed_up"] == 2 and first["totals"]["failed"] == 1
    failing, code = outcome(capsys, dict(args, fail_on_error=True), main, packing=True)
    assert code == 1 and failing["msg"] == "1 of 3 things failed: b: b is broken" and failing["status"] == "partial"
    checked, _code = outcome(capsys, args, main, check=True, packing=True)
    assert {e["name"]: e["status"] for e in checked["entries"]} == {"a": "unchanged", "b": "would_back_up", "c": "unchanged"}
    assert checked["changed"]  # b would be tried again
    Fake.broken = set()
    try:
        mended, _code = outcome(capsys, args, main, packing=True)
        assert mended["status"] == "success" and mended["changed"]
        # Check mode on an unchanged store: the same decision as the real run, nothing would change.
        checked, _code = outcome(capsys, args, main, check=True, packing=True)
        assert set(e["status"] for e in checked["entries"]) == {"unchanged"} and not checked["changed"]
        again, _code = outcome(capsys, args, main, packing=True)
        assert not again["changed"] and again["artifacts"] == mended["artifacts"]
    finally:
        Fake.broken = {"b"}


def test_run_status():
    assert run_status([]) == "success"
    assert run_status([{"status": "unchanged"}, {"status": "carried"}]) == "success"
    assert run_status([{"status": "failed"}, {"status": "unchanged"}]) == "partial"
    assert run_status([{"status": "failed"}]) == "failed"


def test_a_mongodb_shaped_result_with_one_failure_is_recorded_partial():
    entry = {"key": None, "size": None, "sha256": None, "error": None}
    entries = [dict(entry, name="app", status="unchanged", key="mongodb/2026-06-15/app_20260615T020000Z.archive.gz"),
               dict(entry, name="billing", status="failed", error="auth failed"),
               dict(entry, name="audit", status="unchanged", key="mongodb/2026-06-15/audit_20260615T020000Z.archive.gz")]
    result = {"failed": True, "msg": "1 of 3 databases failed: billing: auth failed", "job": "mongodb",
              "source": {"type": "mongodb", "name": "prod"}, "status": run_status(entries), "entries": entries,
              "databases": entries, "artifacts": [], "totals": {}}
    assert contract_errors(result) == []
    recorded_entries, errors, status = read_result(result)
    assert status == "partial" and errors == ["billing: auth failed"]
    assert [e["status"] for e in recorded_entries] == ["unchanged", "failed", "unchanged"]


def test_the_contract_names_what_is_missing():
    assert contract_errors({}) == ["job is missing or not a str", "source is missing or not a dict",
                                   "status is missing or not a str", "entries is missing or not a list",
                                   "artifacts is missing or not a list", "totals is missing or not a dict"]
    broken = {"job": "j", "source": {"type": "x"}, "status": "fine", "entries": [{"name": "a"}], "artifacts": [],
              "totals": {}}
    assert contract_errors(broken) == ["status must be one of success, partial, failed", "source needs a type and a name",
                                       "entries[0] needs name, status, key, size, sha256, error"]
