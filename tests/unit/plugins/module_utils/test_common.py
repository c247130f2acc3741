# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shared argument spec, its documentation, and what Ansible makes of user input with it."""

from __future__ import annotations

import os

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.corebackup.backup.plugins.doc_fragments.common import ModuleDocFragment
from ansible_collections.corebackup.backup.plugins.module_utils._common import common_argument_spec
from ansible_collections.corebackup.backup.plugins.module_utils._storage import backend_from_params
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.plugins.module_utils._storage_s3 import S3Backend

SECRETS = ("access_key", "secret_key", "session_token")


def _compare(spec, docs, path):
    assert sorted(spec) == sorted(docs), "options differ at %s" % path
    for name, option in spec.items():
        doc = docs[name]
        where = path + name
        assert option.get("type", "str") == doc.get("type", "str"), where
        assert option.get("default") == doc.get("default"), where
        assert option.get("choices") == doc.get("choices"), where
        assert option.get("elements") == doc.get("elements"), where
        assert bool(option.get("required")) == bool(doc.get("required")), where
        if "options" in option or "suboptions" in doc:
            _compare(option["options"], doc["suboptions"], where + ".")


def test_doc_fragments_match_the_argument_spec():
    docs = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    _compare(common_argument_spec(packing=False), docs, "")
    docs.update(yaml.safe_load(ModuleDocFragment.PACKING)["options"])
    docs.update(yaml.safe_load(ModuleDocFragment.SERVICE)["options"])
    _compare(common_argument_spec(), docs, "")


def test_credentials_are_no_log():
    storage = common_argument_spec()["storage"]["options"]
    for name in SECRETS:
        assert storage[name]["no_log"] is True


def test_job_default_is_per_module_and_copies_are_independent():
    first = common_argument_spec("github")
    first["storage"]["options"]["type"]["choices"].append("ftp")
    assert first["job"]["default"] == "github"
    assert "ftp" not in common_argument_spec()["storage"]["options"]["type"]["choices"]


def validate(params):
    return ArgumentSpecValidator(common_argument_spec("demo")).validate(params)


def test_filesystem_storage_from_user_input(tmp_path):
    result = validate({"storage": {"type": "filesystem", "path": str(tmp_path)}})
    assert result.error_messages == []
    backend = backend_from_params(result.validated_parameters["storage"])
    assert isinstance(backend, FilesystemBackend) and backend.root == str(tmp_path)
    assert backend.directory_mode == 0o700 and backend.file_mode == 0o600


def test_s3_storage_takes_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    result = validate({"storage": {"type": "s3", "bucket": "b", "endpoint_url": "http://127.0.0.1:9"}})
    assert result.error_messages == []
    storage = result.validated_parameters["storage"]
    assert storage["access_key"] == "AKIAFROMENV" and storage["region"] == "eu-west-1"
    backend = backend_from_params(storage)
    assert isinstance(backend, S3Backend)
    assert backend.client.meta.region_name == "eu-west-1"
    assert "secret-from-env" in result._no_log_values  # pylint: disable=protected-access


@pytest.mark.parametrize("storage, message", [
    ({"type": "filesystem"}, "path"),
    ({"type": "s3"}, "bucket"),
    ({"type": "ftp", "path": "/x"}, "type"),
    ({"type": "s3", "bucket": "b", "sse_kms_key_id": "k"}, "sse"),
    ({"type": "s3", "bucket": "b", "profile": "p", "access_key": "a"}, "mutually exclusive"),
])
def test_incomplete_storage_is_a_clear_error(storage, message):
    result = validate({"storage": storage})
    assert result.error_messages
    assert message in " ".join(result.error_messages)


def test_encryption_needs_recipients():
    result = validate({"storage": {"type": "filesystem", "path": "/x"}, "encryption": {"type": "age"}})
    assert "recipients" in " ".join(result.error_messages)


def test_collection_version_is_the_one_in_galaxy_yml():
    from ansible_collections.corebackup.backup.plugins.module_utils._common import COLLECTION_VERSION
    galaxy = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "galaxy.yml")
    with open(galaxy, encoding="utf-8") as handle:
        assert yaml.safe_load(handle)["version"] == COLLECTION_VERSION
