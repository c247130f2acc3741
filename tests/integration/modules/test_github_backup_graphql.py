# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""github_backup with GitHub's GraphQL API, against the stand-in (GraphQL executed against a subset of GitHub's
schema, GitHub's cost rules and limits, real git over smart HTTP).

The checks of test_github_backup.py (restore and compare, metadata counts, secrets) run here with GraphQL, and
the metadata a GraphQL run stores is compared byte for byte with a REST run's.
"""

from __future__ import annotations

import datetime
import json
import os
import re

import pytest

from ansible_collections.corebackup.backup.tests.conftest import files_below
from ansible_collections.corebackup.backup.tests.integration.modules.test_github_backup import (
    EXPECTED_FAILURES,
    RETRIES,
    assert_restores,
    assert_secret_nowhere,
    by_name,
    extract,
)
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module, run_module_watching_argv

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
ORG = "graphco"
NOW = datetime.datetime(2026, 7, 1, 2, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def github(github_standin, tmp_path_factory):
    token = github_standin.add_token(login="graphql-bot", orgs=[ORG])
    facts = github_fixtures.build_organization(github_standin, ORG, str(tmp_path_factory.mktemp(ORG)), count=24, seed=5)
    return github_standin, token, facts


def backup(github, storage, api_mode="graphql", when=None, verbosity=0, **options):
    standin, token = github[0], github[1]
    args = {"organization": ORG, "token": token, "api_url": standin.api_url, "storage": storage, "retries": RETRIES,
            "fail_on_error": False, "release_assets": True, "api_mode": api_mode}
    args.update(options)
    env = {"COREBACKUP_NOW": (when or NOW).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return run_module(COLLECTIONS, "github_backup", {k: v for k, v in args.items() if v is not None}, env=env,
                      verbosity=verbosity)


def api_requests(standin):
    return standin.count(kind="rest") + standin.count(kind="graphql")


@pytest.fixture(scope="module")
def first_run(github, tmp_path_factory):
    standin = github[0]
    store = str(tmp_path_factory.mktemp("graphql-store"))
    standin.reset_log()
    run = backup(github, {"type": "filesystem", "path": store}, verbosity=3)
    return store, run, standin.count(kind="rest"), standin.count(kind="graphql")


def test_a_graphql_run_restores_every_repository_with_its_metadata(github, first_run, tmp_path):
    facts = github[2]
    store, run, rest, graphql = first_run
    assert run.result["totals"]["api"] == "graphql"
    results = by_name(run)
    assert set(results) == set(facts)
    assert {n for n, r in results.items() if r["status"] == "failed"} == EXPECTED_FAILURES
    assert_restores(facts, store, run, tmp_path)
    # Few requests: the listing, about one metadata query per repository, REST only for release asset files.
    with_assets = sum(1 for f in facts.values() if f["assets"])
    assert graphql <= 1 + 1.5 * len(facts), graphql
    assert rest <= 2 * with_assets + sum(f["assets"] for f in facts.values()), rest
    assert (rest + graphql) / len(facts) <= 3
    assert run.result["totals"]["graphql_requests"] == graphql and run.result["totals"]["rate_limit_answers"] == 0


def test_the_token_appears_nowhere(github, first_run):
    assert_secret_nowhere(github[0], github[1], first_run[0], first_run[1])


def metadata_files(store, run, tmp_path, label):
    """{repository: {file: bytes}} of the metadata folder of each backed-up repository's artifact."""
    found = {}
    for name, result in by_name(run).items():
        if result["status"] == "failed":
            continue
        folder = extract(os.path.join(store, result["key"]), str(tmp_path / label / name))
        meta = os.path.join(folder, "metadata")
        found[name] = {rel: open(os.path.join(meta, rel), "rb").read() for rel in files_below(meta)}
    return found


def first_difference(left: bytes, right: bytes) -> str:
    """The first differing line of two files, to read in a failure."""
    for number, (one, two) in enumerate(zip(left.splitlines(), right.splitlines()), 1):
        if one != two:
            return "line %d: %r != %r" % (number, one, two)
    return "lengths %d != %d" % (len(left), len(right))


def test_the_stored_metadata_is_the_same_with_rest(github, first_run, tmp_path):
    store, run = first_run[0], first_run[1]
    rest_store = str(tmp_path / "rest-store")
    rest_run = backup(github, {"type": "filesystem", "path": rest_store}, api_mode="rest")
    assert rest_run.result["totals"]["api"] == "rest"
    graphql_files = metadata_files(store, run, tmp_path, "graphql")
    rest_files = metadata_files(rest_store, rest_run, tmp_path, "rest")
    assert set(graphql_files) == set(rest_files)
    for name, files in graphql_files.items():
        assert sorted(files) == sorted(rest_files[name]), name
        for rel, content in files.items():
            # Every run downloads the release assets, which counts on GitHub: the REST run, second, reads one more.
            content, rest = (re.sub(rb'"download_count": \d+', b'"download_count": N', c) for c in (content, rest_files[name][rel]))
            assert content == rest, (name, rel, first_difference(content, rest))
    tracker = json.loads(graphql_files["tracker"]["pulls.json"])
    assert any(p["review_comment_list"] for p in tracker) and any(p["review_list"] for p in tracker)
    for result in by_name(rest_run).values():
        if result["status"] != "failed":
            assert result["metadata"] == by_name(run)[result["name"]]["metadata"], result["name"]


def test_a_rerun_with_nothing_changed_costs_the_listing_only(github, first_run):
    standin = github[0]
    store = first_run[0]
    before = files_below(store)
    standin.reset_log()
    run = backup(github, {"type": "filesystem", "path": store})
    assert not run.changed
    assert {n: r["status"] for n, r in by_name(run).items() if r["status"] != "unchanged"} == {
        n: "failed" for n in EXPECTED_FAILURES}
    # Nothing stored but the run's own record.
    # (and the two lease records that took and released the job)
    added = sorted(set(files_below(store)) - set(before))
    assert [key for key in added if "/leases/" not in key] == [run.result["run_key"]], added
    assert len([key for key in added if key.startswith("github/leases/")]) == 2 and set(before) <= set(files_below(store))
    # One listing page (the freshness of every repository comes with it); a repository that failed is read again.
    assert standin.count(kind="graphql") == 1 + len(EXPECTED_FAILURES)
    assert standin.count(kind="rest") == 0
    wikis = {n for n, f in github[2].items() if f["has_wiki"] and n not in EXPECTED_FAILURES}
    assert {r.path.split("/")[2][:-len(".wiki.git")] for r in standin.log if r.kind == "git"} <= wikis


def test_changes_are_found_and_edits_within_full_refresh_days(github, tmp_path):
    standin = github[0]
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    names = ["^tracker$", "^core-lib$", "^releases-repo$", "^service-01$"]
    first = backup(github, storage, include=names)
    assert {r["status"] for r in first.result["repositories"]} == {"backed_up"}
    github_fixtures.add_comment(standin, ORG, "tracker", 1, body="A new comment\n")
    github_fixtures.delete_label(standin, ORG, "service-01", "bug")
    edited = github_fixtures.edit_comment(standin, ORG, "core-lib", 1, body="Edited, which moves no updatedAt\n")
    day = datetime.timedelta(days=1)
    second = backup(github, storage, include=names, when=NOW + day)
    statuses = {n: r["status"] for n, r in by_name(second).items()}
    assert statuses == {"tracker": "backed_up", "service-01": "backed_up", "core-lib": "carried", "releases-repo": "carried"}
    # Eight days on (full_refresh_days 7): everything is read again; core-lib's edit is found, the others are equal
    # and carried, their read recorded, so that the day after costs the listing only again.
    third = backup(github, storage, include=names, when=NOW + 8 * day)
    statuses = {n: r["status"] for n, r in by_name(third).items()}
    assert statuses == {"tracker": "carried", "service-01": "carried", "core-lib": "backed_up", "releases-repo": "carried"}
    restored = extract(os.path.join(storage["path"], by_name(third)["core-lib"]["key"]), str(tmp_path / "core-lib"))
    bodies = []
    for conversations in ("issues.json", "pulls.json"):  # number 1 may be a pull request
        with open(os.path.join(restored, "metadata", conversations), encoding="utf-8") as handle:
            bodies += [c["body"] for i in json.load(handle) for c in i["comment_list"]]
    assert edited.body in bodies
    standin.reset_log()
    fourth = backup(github, storage, include=names, when=NOW + 9 * day)
    assert {r["status"] for r in fourth.result["repositories"]} == {"carried"}
    assert standin.count(kind="graphql") == 1


def test_without_graphql_auto_uses_rest_and_graphql_mode_says_why(github, tmp_path):
    standin = github[0]
    standin.graphql = False
    try:
        auto = backup(github, {"type": "filesystem", "path": str(tmp_path / "auto")}, api_mode="auto", include=["^tracker$"])
        strict = backup(github, {"type": "filesystem", "path": str(tmp_path / "strict")}, include=["^tracker$"])
    finally:
        standin.graphql = True
    assert not auto.failed and auto.result["totals"]["api"] == "rest"
    assert by_name(auto)["tracker"]["status"] == "backed_up"
    assert any("GraphQL API cannot be used" in w for w in auto.result.get("warnings", []))
    assert strict.failed and "api_mode graphql" in strict.result["msg"] and "no GraphQL API" in strict.result["msg"]
    anonymous = run_module(COLLECTIONS, "github_backup", {"organization": ORG, "api_url": standin.api_url, "api_mode": "graphql",
                                                          "storage": {"type": "filesystem", "path": str(tmp_path / "anon")}})
    assert anonymous.failed and "api_mode graphql needs a token or a GitHub App" in anonymous.result["msg"]


def test_graphql_faults_are_waited_out(github, tmp_path):
    standin = github[0]
    standin.inject_graphql("rate_limited", reset_in=2)
    standin.inject_graphql("timeout")
    standin.inject_graphql("502")
    run = backup(github, {"type": "filesystem", "path": str(tmp_path / "store")}, include=["^tracker$", "^core-lib$"])
    assert not run.failed, run.result.get("msg")
    assert {r["status"] for r in run.result["repositories"]} == {"backed_up"}
    assert run.result["totals"]["rate_limit_answers"] == 1 and run.result["totals"]["rate_limit_pauses"] >= 1


def test_a_repository_github_cannot_answer_for_fails_alone(github, tmp_path):
    standin = github[0]
    standin.inject_graphql("partial", path=["r1"], error_type="FORBIDDEN", message="Resource not accessible by integration")
    run = backup(github, {"type": "filesystem", "path": str(tmp_path / "store")}, repositories=["tracker", "core-lib", "nope"])
    results = by_name(run)
    assert results["tracker"]["status"] == "backed_up"
    assert results["core-lib"]["status"] == "failed" and "Resource not accessible by integration" in results["core-lib"]["error"]
    assert results["nope"]["status"] == "failed" and "Could not resolve to a Repository" in results["nope"]["error"]


def test_with_githubs_secondary_limits_on_a_run_trips_none(github, tmp_path):
    standin = github[0]
    standin.set_secondary_limits(True)
    standin.latency = 0.02
    try:
        hits = standin.secondary_limit_hits
        run = backup(github, {"type": "filesystem", "path": str(tmp_path / "store")}, parallel=8)
        assert standin.secondary_limit_hits == hits
    finally:
        standin.set_secondary_limits(False)
        standin.latency = 0.0
    assert {n for n, r in by_name(run).items() if r["status"] == "failed"} == EXPECTED_FAILURES
    assert run.result["totals"]["rate_limit_answers"] == 0


@pytest.fixture(scope="module")
def app(github):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    github[0].add_app(424242, pem, installations={ORG: 777})
    return 424242, pem


def test_a_github_app_backs_up_with_tokens_renewed_mid_run_and_shown_nowhere(github, app, tmp_path):
    standin = github[0]
    app_id, pem = app
    standin.set_app_token_lifetime(app_id, 4)
    standin.latency = 0.08
    mints = standin.app_token_mints(app_id)
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    try:
        run, argv = run_module_watching_argv(COLLECTIONS, "github_backup", {
            "organization": ORG, "app_id": str(app_id), "app_private_key": pem, "api_url": standin.api_url,
            "storage": storage, "retries": RETRIES, "fail_on_error": False, "parallel": 2}, env={
                "COREBACKUP_NOW": NOW.strftime("%Y-%m-%dT%H:%M:%SZ")}, verbosity=3)
    finally:
        standin.latency = 0.0
        standin.set_app_token_lifetime(app_id, 3600)
    assert not run.failed, run.result.get("msg")
    assert {n for n, r in by_name(run).items() if r["status"] == "failed"} == EXPECTED_FAILURES
    assert "secret-repo" in by_name(run) and by_name(run)["secret-repo"]["status"] == "backed_up"  # private ones too
    minted = standin.app_token_mints(app_id) - mints
    assert minted >= 2 and run.result["totals"]["app_tokens_minted"] == minted  # renewed during the run
    body = "".join(line for line in pem.splitlines()[1:-1])
    for token in standin.app_tokens(app_id):
        assert_secret_nowhere(standin, token.token, storage["path"], run)
        assert not any(token.token.encode() in cmdline for cmdline in argv)
    assert body[:64] not in run.all_text() + json.dumps(run.result)
    assert not any(body[:64].encode() in cmdline for cmdline in argv)


def test_a_bad_app_key_or_installation_is_named(github, app, tmp_path):
    standin = github[0]
    app_id, pem = app
    base = {"organization": ORG, "app_id": str(app_id), "api_url": standin.api_url, "retries": RETRIES,
            "storage": {"type": "filesystem", "path": str(tmp_path / "store")}}
    not_pem = run_module(COLLECTIONS, "github_backup", dict(base, app_private_key="not a key"))
    assert not_pem.failed and "app_private_key is not a PEM private key" in not_pem.result["msg"]
    wrong = run_module(COLLECTIONS, "github_backup", dict(base, app_private_key=pem, app_installation_id=999))
    assert wrong.failed and "installation 999" in wrong.result["msg"]
    both = run_module(COLLECTIONS, "github_backup", dict(base, app_private_key=pem, token="ghp_x"))
    assert both.failed and "mutually exclusive" in both.result["msg"]
