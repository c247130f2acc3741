# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""github_backup spools metadata to disk while it reads it: what it stores must not change by that.

A stand-in of its own (fresh ids, the same data on every run) serves an organization whose ``tracker``
has 260 more issues (pages of 100 on REST and of 50 on GraphQL, comments overflowing their nested page).
The metadata files stored by a REST run and by a GraphQL run are compared, byte for byte, with those the
release before the spool stored (their sha256 in ``golden/github_metadata.json``, the stand-in's address
replaced by ``STANDIN``); ``metadata_digest`` is checked against its definition over the stored files.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.corebackup.backup.tests.conftest import files_below
from ansible_collections.corebackup.backup.tests.integration.modules.test_github_backup import RETRIES, by_name, extract
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "github_metadata.json")
ORG = "spoolco"
REPOSITORIES = ["tracker", "core-lib", "no-issues", "releases-repo", "secret-repo", "empty-repo"]


def canonical_json(data):
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def digest_of(files):
    """metadata_digest as defined: every exported file but repository.json, releases without download counters."""
    exported = {name: json.loads(content) for name, content in files.items()
                if name.endswith(".json") and "/" not in name and name != "repository.json"}
    if "releases.json" in exported:
        exported["releases.json"] = [dict(r, assets=[{k: v for k, v in a.items() if k != "download_count"}
                                                     for a in r["assets"]]) for r in exported["releases.json"]]
    return hashlib.sha256(canonical_json(exported)).hexdigest()


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """{api: {repository: ({file: bytes, the stand-in's address as STANDIN}, recorded metadata_digest, digest_of)}}."""
    root = tmp_path_factory.mktemp("spool")
    with GitHubStandIn(str(root / "github")) as standin:
        token = standin.add_token(login="spool-bot", orgs=[ORG])
        github_fixtures.build_organization(standin, ORG, str(root / "repos"), count=18, seed=11)
        github_fixtures.add_many_issues(standin, ORG, "tracker", 260, seed=11)
        address = standin.api_url.split("//", 1)[1].split("/", 1)[0]
        found = {}
        for api in ("rest", "graphql"):
            store = str(root / ("store-" + api))
            run = run_module(COLLECTIONS, "github_backup", {
                "organization": ORG, "token": token, "api_url": standin.api_url, "api_mode": api,
                "storage": {"type": "filesystem", "path": store}, "retries": RETRIES, "release_assets": True,
                "repositories": REPOSITORIES}, env={"COREBACKUP_NOW": "2026-07-01T02:00:00Z"})
            assert not run.failed, run.result.get("msg")
            found[api] = {}
            for name, entry in by_name(run).items():
                folder = os.path.join(extract(os.path.join(store, entry["key"]), str(root / api / name)), "metadata")
                files = {}
                for rel in files_below(folder):
                    with open(os.path.join(folder, rel), "rb") as handle:
                        files[rel] = handle.read()
                [artifact] = [a for a in run.result["artifacts"] if a["key"] == entry["key"]]
                found[api][name] = ({rel: content.replace(address.encode(), b"STANDIN") for rel, content in files.items()},
                                    artifact["metadata"]["metadata_digest"], digest_of(files), entry["metadata"])
    return found


@pytest.mark.parametrize("api", ["rest", "graphql"])
def test_the_stored_metadata_is_byte_identical_to_the_release_before_the_spool(stored, api):
    if os.environ.get("COREBACKUP_WRITE_GOLDEN"):  # by hand, when the stored format changes on purpose
        write_golden(stored)
    with open(GOLDEN, encoding="utf-8") as handle:
        golden = json.load(handle)[api]
    files = {name: {rel: hashlib.sha256(content).hexdigest() for rel, content in found[0].items()}
             for name, found in stored[api].items()}
    assert sorted(files) == sorted(golden)
    for name in files:
        assert files[name] == golden[name]["files"], name
        assert stored[api][name][3] == golden[name]["counts"], name
    tracker = stored[api]["tracker"][3]
    assert tracker["issues"] > 260 and tracker["issue_comments"] > 260


@pytest.mark.parametrize("api", ["rest", "graphql"])
def test_the_recorded_metadata_digest_is_that_of_the_stored_files(stored, api):
    for name, (_files, recorded, computed, _counts) in stored[api].items():
        assert recorded == computed, name


def write_golden(found):
    golden = {api: {name: {"files": {rel: hashlib.sha256(content).hexdigest() for rel, content in entry[0].items()},
                           "counts": entry[3]} for name, entry in repos.items()} for api, repos in found.items()}
    with open(GOLDEN, "w", encoding="utf-8") as handle:
        json.dump(golden, handle, indent=1, sort_keys=True)
        handle.write("\n")
