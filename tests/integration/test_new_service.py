# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A new service is one slice, a module that is a shell, and one line of the registry.

A copy of the collection gets a toy service (notes, each a text backed up as a tar of one file, restored into a
folder); nothing else is edited: the backup role, backup_plan, backup_run, backup_restore and the restore
playbook take it from the registry. It is backed up by playbooks/backup.yml, restored by playbooks/restore.yml,
and drilled by backup_restore.
"""

from __future__ import annotations

import os
import re
import shutil

import yaml

from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module, run_playbook
from ansible_collections.corebackup.backup.tests.testbed.records import set_records

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SLICE = '''
"""A toy service of the tests: notes (name -> text), each backed up as a tar of one file."""

from __future__ import annotations

import io
import socket
import tarfile

from ansible_collections.corebackup.backup.plugins.module_utils._restore import FolderRestorer
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceSlice

SPEC = dict(argument_spec=dict(notes=dict(type="dict", required=True)), job_default="notes")


class NotesBackup(Service):
    item_kind = "notes"

    def discover(self):
        return [Item(name, data=text) for name, text in sorted(self.params["notes"].items())]

    def source(self):
        return {"type": "toy", "name": socket.gethostname()}

    def produce(self, item, recorded, entry):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            data = item.data.encode()
            info = tarfile.TarInfo(item.name)
            info.size, info.mtime = len(data), 1500000000
            tar.addfile(info, io.BytesIO(data))
        return self.store(item, "tar", [buffer.getvalue()], {"note": item.name})


SLICE = ServiceSlice(name="toy", module="toy_backup", spec=SPEC, backup=NotesBackup, restorer=FolderRestorer,
                     restore_spec=FolderRestorer.SPEC)
'''

MODULE = '''#!/usr/bin/python
from __future__ import annotations

DOCUMENTATION = r"""
module: toy_backup
short_description: Back up notes (a toy service of the tests)
"""

from ansible_collections.corebackup.backup.plugins.module_utils._services.toy import SLICE


def main():
    SLICE.main()


if __name__ == "__main__":
    main()
'''


def with_toy_service(tmp_path):
    """A copy of the collection under test with the toy slice, its module and its registry line."""
    collections = tmp_path / "collections"
    tree = collections / "ansible_collections" / "corebackup" / "backup"
    shutil.copytree(ROOT, str(tree), ignore=shutil.ignore_patterns("__pycache__", "tests", "bench", ".git"))
    (tree / "plugins" / "module_utils" / "_services" / "toy.py").write_text(SLICE)
    (tree / "plugins" / "modules" / "toy_backup.py").write_text(MODULE)
    registry = tree / "plugins" / "module_utils" / "_registry.py"
    text = registry.read_text()
    imports = re.search(r"^from .*\._services import .*$", text, re.M)
    assert imports and "SLICES = (\n" in text
    registry.write_text(text.replace(imports.group(0), imports.group(0) + ", toy")
                        .replace("SLICES = (\n", "SLICES = (\n    toy.SLICE,\n"))
    return str(collections), str(tree)


def test_a_toy_service_is_backed_up_restored_and_drilled_with_nothing_but_its_slice(tmp_path):
    collections, tree = with_toy_service(tmp_path)
    store = str(tmp_path / "store")
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "backup_hosts": {"hosts": {"localhost": {"ansible_connection": "local"}}},
        "restore_hosts": {"hosts": {"localhost": {"ansible_connection": "local"}}}}}}))
    notes = {"shopping": "milk, bread\n", "todo": "write the toy service\n"}
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump({
        "backup_storages": {"local": {"type": "filesystem", "path": store}},
        "backup_jobs": [{"name": "notes", "service": "toy", "storage": "local", "retention": {"keep_days": 7},
                         "options": {"notes": notes}}]}))
    backup = run_playbook(collections, os.path.join(tree, "playbooks", "backup.yml"), str(inventory))
    assert backup.returncode == 0, backup.stdout[-3000:]
    assert "notes: success, 2 artifact(s)" in backup.stdout
    dest = tmp_path / "restored"
    restore = run_playbook(collections, os.path.join(tree, "playbooks", "restore.yml"), str(inventory), extra_vars={
        "restore_job": "notes", "restore_storage": "local", "restore_target": {"dest": str(dest)}})
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert {name: (dest / name).read_text() for name in os.listdir(str(dest))} == notes
    drill = run_module(collections, "backup_restore", {"job": "notes", "state": "drill", "storage": {
        "type": "filesystem", "path": store}})
    assert not drill.failed and drill.result["drill"]["result"] == "ok", drill.result.get("msg")
    assert [run["source"]["type"] for run in set_records(store, "notes").runs] == ["toy"]
