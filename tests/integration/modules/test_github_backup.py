# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""github_backup through ansible-playbook against the GitHub stand-in (real git over smart HTTP), with the REST API.

test_github_graphql.py runs the same checks (restore and compare, metadata counts, secrets) with GraphQL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import tarfile

import pytest

from ansible_collections.corebackup.backup.tests.conftest import files_below
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.ansible_run import run_module
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))))
ORG = "acme"
RETRIES = {"attempts": 4, "delay": 0.2, "max_delay": 2}
EXPECTED_FAILURES = {"dmca-repo"}


@pytest.fixture(scope="module")
def github(github_standin, tmp_path_factory):
    token = github_standin.add_token(login="octocat")
    facts = github_fixtures.build_organization(github_standin, ORG, str(tmp_path_factory.mktemp("acme")), count=32, seed=1)
    return github_standin, token, facts


def backup(github, storage, check=False, verbosity=0, **options):
    standin, token = github[0], github[1]
    args = {"organization": ORG, "token": token, "api_url": standin.api_url, "storage": storage,
            "retries": RETRIES, "fail_on_error": False, "release_assets": True, "api_mode": "rest"}
    args.update(options)
    args = {k: v for k, v in args.items() if v is not None}
    return run_module(COLLECTIONS, "github_backup", args, check=check, verbosity=verbosity)


def by_name(run):
    return {r["name"]: r for r in run.result["repositories"]}


def extract(path, dest):
    with tarfile.open(path) as archive:
        archive.extractall(dest, filter="tar")
    return dest


def run_key(result):
    return result["key"]


def artifact_requires(run, result):
    [artifact] = [a for a in run.result["artifacts"] if a["key"] == result["key"]]
    return [r["key"] for r in artifact.get("requires") or []]


def rebuild_mirror(restored, target, part="repo"):
    """repo.git (``part`` wiki: wiki.git) from a full bundle and the refs list (refs.json; wiki-refs.json), with git
    alone."""
    subprocess.run(["git", "init", "--quiet", "--bare", target], check=True, capture_output=True)
    with open(os.path.join(restored, "refs.json" if part == "repo" else "wiki-refs.json"), encoding="utf-8") as handle:
        refs = json.load(handle)
    if os.path.exists(os.path.join(restored, part + ".bundle")):
        subprocess.run(["git", "-C", target, "fetch", "--quiet", os.path.join(restored, part + ".bundle"),
                        "+refs/*:refs/*"], check=True, capture_output=True)
    updates = "".join("update %s %s\n" % (ref, sha) for ref, sha in sorted(refs.items()) if ref != "HEAD")
    subprocess.run(["git", "-C", target, "update-ref", "--stdin"], input=updates, text=True, check=True,
                   capture_output=True)


def for_each_ref(git_dir):
    out = subprocess.run(["git", "-C", git_dir, "for-each-ref", "--format=%(refname) %(objectname)"],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


@pytest.fixture(scope="module")
def first_run(github, tmp_path_factory):
    store = str(tmp_path_factory.mktemp("store"))
    github[0].reset_log()
    run = backup(github, {"type": "filesystem", "path": store}, verbosity=3)
    return store, run, github[0].count(kind="rest"), github[0].count(kind="git")


def test_first_run_backs_up_every_repository_and_names_the_failure(github, first_run):
    facts = github[2]
    run = first_run[1]
    results = by_name(run)
    assert len(facts) >= 30
    assert set(results) == set(facts)
    assert run.changed
    assert {n for n, r in results.items() if r["status"] == "failed"} == EXPECTED_FAILURES
    assert "451" in results["dmca-repo"]["error"]
    assert all(r["status"] == "backed_up" for n, r in results.items() if n not in EXPECTED_FAILURES)
    totals = run.result["totals"]
    assert totals["backed_up"] == len(facts) - 1 and totals["failed"] == 1
    assert len(run.result["artifacts"]) == totals["backed_up"]


def test_restore_reproduces_every_ref_and_the_metadata(github, first_run, tmp_path):
    assert_restores(github[2], first_run[0], first_run[1], tmp_path)


def assert_restores(facts, store, run, tmp_path):
    """Every backed-up repository restores with every ref, its wiki, and metadata in the counts GitHub holds."""
    for name, result in by_name(run).items():
        if name in EXPECTED_FAILURES:
            continue
        source = facts[name]
        artifact = os.path.join(store, result["key"])
        assert result["key"].endswith(".tar.gz") and "/%s/" % run.result["artifacts"][0]["key"].split("/")[1] in result["key"]
        sha256 = subprocess.run(["sha256sum", artifact], capture_output=True, text=True, check=True).stdout.split()[0]
        assert sha256 == result["sha256"]
        restored = extract(artifact, str(tmp_path / name))
        # A real restore, as README says by hand: a first run stores a full bundle and the refs list; fetch the bundle
        # into a new bare repository, set the refs from the list, then compare every ref with the source.
        assert result["key"] == run_key(result) and not [r for r in artifact_requires(run, result) if "--tips" not in r]
        clone = str(tmp_path / (name + "-clone.git"))
        rebuild_mirror(restored, clone)
        assert for_each_ref(clone) == source["refs"], name
        assert result["refs"] == len(source["refs"])
        if not source["empty"]:
            assert any(ref.startswith("refs/tags/") for ref in source["refs"])
            assert "refs/notes/commits" in source["refs"]
        if source["wiki"]:
            rebuild_mirror(restored, str(tmp_path / (name + "-wiki.git")), "wiki")
            assert for_each_ref(str(tmp_path / (name + "-wiki.git"))) == source["wiki_refs"], name
        else:
            assert not os.path.exists(os.path.join(restored, "wiki-refs.json"))
        meta = os.path.join(restored, "metadata")
        documents = {f[:-5]: json.load(open(os.path.join(meta, f), encoding="utf-8"))
                     for f in os.listdir(meta) if f.endswith(".json")}
        assert documents["repository"]["full_name"] == source["full_name"]
        assert len(documents["issues"]) == source["issues"], name
        assert len(documents["pulls"]) == source["pulls"], name
        assert sum(len(i["comment_list"]) for i in documents["issues"] + documents["pulls"]) == source["issue_comments"], name
        assert sum(len(p["review_list"]) for p in documents["pulls"]) == source["reviews"], name
        assert sum(len(p["review_comment_list"]) for p in documents["pulls"]) == source["review_comments"], name
        for export in ("releases", "labels", "milestones"):
            assert len(documents[export]) == source[export], (name, export)
        assets = files_below(os.path.join(meta, "assets")) if os.path.isdir(os.path.join(meta, "assets")) else []
        assert len(assets) == source["assets"], name


def test_the_archive_holds_no_credential(github, first_run, tmp_path):
    """The archive is a bundle, the refs list and the metadata: no git config, and the token in no byte of it."""
    token = github[1]
    store, run = first_run[0], first_run[1]
    result = by_name(run)["secret-repo"]
    restored = extract(os.path.join(store, result["key"]), str(tmp_path / "secret"))
    assert sorted(os.listdir(restored))[:2] == ["metadata", "refs.json"] and "repo.bundle" in os.listdir(restored)
    for path in files_below(restored):
        with open(os.path.join(restored, path), "rb") as handle:
            data = handle.read()
        assert token.encode() not in data and b"extraheader" not in data.lower(), path


def test_token_appears_in_no_stored_byte_result_or_log(github, first_run):
    assert_secret_nowhere(github[0], github[1], first_run[0], first_run[1])


def assert_secret_nowhere(standin, token, store, run):
    """``token`` (and the Basic header git sends) is in no stored byte, result, log line or request path."""
    basic = base64.b64encode(("x-access-token:" + token).encode()).decode()
    needles = [token.encode(), basic.encode()]
    for rel in files_below(store):
        path = os.path.join(store, rel)
        with open(path, "rb") as handle:
            raw = handle.read()
        contents = [raw]
        if rel.endswith(".tar.gz"):
            contents.append(subprocess.run(["gzip", "-dc", path], capture_output=True, check=True).stdout)
        for content in contents:
            assert not any(needle in content for needle in needles), rel
    text = run.all_text() + json.dumps(run.result)
    assert run.log and "github_backup" in run.log  # the log was written, and scanned
    assert token not in text and basic not in text
    assert all(token not in (record.path or "") for record in standin.log)


def test_second_run_with_nothing_changed_stores_nothing(github, first_run):
    store, first = first_run[0], first_run[1]
    before = files_below(store)
    github[0].reset_log()
    run = backup(github, {"type": "filesystem", "path": store})
    results = by_name(run)
    assert {n: r["status"] for n, r in results.items() if r["status"] != "unchanged"} == {n: "failed" for n in EXPECTED_FAILURES}
    assert not run.changed
    # The set is complete: the run lists every artifact it relies on, all stored by the first run.
    assert sorted(run.result["artifacts"], key=lambda a: a["key"]) == sorted(first.result["artifacts"], key=lambda a: a["key"])
    assert run.result["totals"]["bytes"] == 0
    # Nothing stored but the run's own record.
    # (and the two lease records that took and released the job)
    added = sorted(set(files_below(store)) - set(before))
    assert [key for key in added if "/leases/" not in key] == [run.result["run_key"]], added
    assert len([key for key in added if key.startswith("github/leases/")]) == 2 and set(before) <= set(files_below(store))
    rest, git = github[0].count(kind="rest"), github[0].count(kind="git")
    print("\nAPI requests: first run %d REST + %d git; unchanged rerun %d REST (%d answered 304) + %d git"
          % (first_run[2], first_run[3], rest, run.result["totals"]["api_not_modified"], git))
    # pushed_at told that nothing was pushed to the repositories: no git call for them; a wiki edit
    # does not move pushed_at, so each wiki's refs are listed (git ls-remote), and nothing else.
    wikis = {n for n, f in github[2].items() if f["has_wiki"] and n not in EXPECTED_FAILURES}
    git_paths = [r.path for r in github[0].log if r.kind == "git"]
    assert all(p.split("/")[2].endswith(".wiki.git") for p in git_paths), git_paths
    assert {p.split("/")[2][:-len(".wiki.git")] for p in git_paths} == wikis
    assert git == len(git_paths) <= 2 * len(wikis)  # info/refs, and ls-refs where the wiki has refs
    assert rest == run.result["totals"]["api_requests"]
    # 304 answers cost no rate limit: what counts is the repository listing and the few exports
    # whose ETag moved without a change (a release asset's download counter).
    assert rest - run.result["totals"]["api_not_modified"] < first_run[2] / 4
    assert by_name(first)["tracker"]["key"] == results["tracker"]["key"]


def test_check_mode_on_an_unchanged_store_reports_no_change(github, first_run):
    store = first_run[0]
    before = files_below(store)
    run = backup(github, {"type": "filesystem", "path": store}, check=True, exclude=["^dmca-repo$"])
    assert not run.failed, run.result.get("msg")
    assert {r["status"] for r in run.result["repositories"]} == {"unchanged"}
    assert not run.changed  # the real run would change nothing either
    assert files_below(store) == before


def test_git_is_retried_on_a_transient_error_only(github, tmp_path):
    standin = github[0]
    standin.reset_log()
    standin.inject(r"^/%s/service-06\.git/info/refs" % ORG, 502, count=1, kind="git")
    run = backup(github, {"type": "filesystem", "path": str(tmp_path / "a")}, include=["^service-06$"], wiki=False)
    assert by_name(run)["service-06"]["status"] == "backed_up", run.result
    assert standin.count(kind="git", path_regex=r"service-06\.git/info/refs") == 2
    standin.reset_log()
    standin.inject(r"^/%s/service-07\.git/info/refs" % ORG, 404, count=3, kind="git")
    run = backup(github, {"type": "filesystem", "path": str(tmp_path / "b")}, include=["^service-07$"], wiki=False)
    standin.clear_injections()
    assert by_name(run)["service-07"]["status"] == "failed" and "git clone --mirror failed" in by_name(run)["service-07"]["error"]
    assert standin.count(kind="git", path_regex=r"service-07\.git/info/refs") == 1  # not found is not retried


def test_third_run_backs_up_exactly_what_changed(github, first_run):
    store = first_run[0]
    standin = github[0]
    github_fixtures.push_commit(standin, ORG, "service-03")
    github_fixtures.add_issue(standin, ORG, "tracker", "A new bug")
    run = backup(github, {"type": "filesystem", "path": store})
    results = by_name(run)
    assert run.changed
    assert {n for n, r in results.items() if r["status"] == "backed_up"} == {"service-03", "tracker"}
    assert results["tracker"]["metadata"]["issues"] == github[2]["tracker"]["issues"] + 1


def test_check_mode_lists_what_would_be_backed_up_and_stores_nothing(github, tmp_path):
    store = str(tmp_path / "store")
    run = backup(github, {"type": "filesystem", "path": store}, check=True, include=["^service-0[1-3]$", "dotted"],
                 skip_forks=True)
    assert run.changed
    assert sorted(r["name"] for r in run.result["repositories"]) == ["dotted.name", "service-01", "service-02", "service-03"]
    assert {r["status"] for r in run.result["repositories"]} == {"would_back_up"}
    assert not os.path.exists(store) or files_below(store) == []


def test_invalid_expression_fails_before_any_request(github, tmp_path):
    github[0].reset_log()
    run = backup(github, {"type": "filesystem", "path": str(tmp_path)}, include=["lecture-(.*"])
    assert run.failed
    assert "include: 'lecture-(.*' is not a valid regular expression" in run.result["msg"]
    assert github[0].count(kind="rest") == 0


def test_bad_token_is_named_and_not_shown(github, tmp_path):
    bad = "ghp_wrongwrongwrongwrongwrongwrongwrong1"
    standin = github[0]
    run = run_module(COLLECTIONS, "github_backup", {
        "organization": ORG, "token": bad, "api_url": standin.api_url, "retries": RETRIES,
        "storage": {"type": "filesystem", "path": str(tmp_path)}})
    assert run.failed
    assert "Bad credentials" in run.result["msg"] and "401" in run.result["msg"]
    assert bad not in run.all_text() + json.dumps(run.result)


def test_fail_on_error_fails_after_all_repositories_naming_each(github, tmp_path):
    run = backup(github, {"type": "filesystem", "path": str(tmp_path)}, include=["^dmca-repo$", "^service-01$"],
                 fail_on_error=True)
    assert run.failed
    assert run.result["msg"].startswith("1 of 2 repositories failed: dmca-repo: ")
    assert by_name(run)["service-01"]["status"] == "backed_up"


def test_transient_faults_and_rate_limits_are_waited_out(github, tmp_path):
    standin = github[0]
    standin.inject(r"/repos/%s/service-01/issues\?" % ORG, 502, count=2)
    standin.inject_secondary_rate_limit(r"/repos/%s/service-02/labels" % ORG, retry_after=1)
    run = backup(github, {"type": "filesystem", "path": str(tmp_path)}, include=["^service-0[12]$"])
    assert not run.failed
    assert {r["status"] for r in run.result["repositories"]} == {"backed_up"}


def test_s3_objects_carry_repository_metadata(github, s3_endpoint):
    from ansible_collections.corebackup.backup.tests.conftest import make_s3_backend
    backend = make_s3_backend(s3_endpoint, prefix="github/")
    storage = dict(type="s3", bucket=backend.bucket, prefix="github/", endpoint_url=s3_endpoint, **S3_TEST_CREDENTIALS)
    run = backup(github, storage, include=["^trunk-default$", "^core-lib$"], compression="zstd", job="nightly-github")
    assert not run.failed, run.result.get("msg")
    for result in run.result["repositories"]:
        assert result["key"].startswith("nightly-github/") and result["key"].endswith(".tar.zst")
        head = backend.client.head_object(Bucket=backend.bucket, Key="github/" + result["key"])
        meta = head["Metadata"]
        assert meta["repository"] == "%s/%s" % (ORG, result["name"])
        assert meta["default_branch"] == github[2][result["name"]]["default_branch"]
        assert int(meta["size_bytes"]) >= 0 and meta["backup_date"].endswith("Z")
    rerun = backup(github, storage, include=["^trunk-default$", "^core-lib$"], compression="zstd", job="nightly-github")
    assert not rerun.changed
    assert {r["status"] for r in rerun.result["repositories"]} == {"unchanged"}


def test_exhausted_rate_limit_is_waited_out_until_reset(github, tmp_path):
    standin, token = github[0], github[1]
    standin.exhaust_rate_limit(token, 2)
    run = backup(github, {"type": "filesystem", "path": str(tmp_path)}, include=["^service-04$"])
    assert not run.failed, run.result.get("msg")
    assert by_name(run)["service-04"]["status"] == "backed_up"
    assert standin.count(kind="rest", status=403) >= 1


def test_skip_existing_leaves_todays_artifact_alone(github, tmp_path):
    storage = {"type": "filesystem", "path": str(tmp_path)}
    first = backup(github, storage, include=["^service-05$"])
    github_fixtures.push_commit(github[0], ORG, "service-05")
    run = backup(github, storage, include=["^service-05$"], skip_existing=True)
    assert not run.changed
    assert by_name(run)["service-05"] == dict(by_name(first)["service-05"], status="skipped", metadata={})
    assert run.result["artifacts"] == first.result["artifacts"]


def test_user_repositories_and_per_repository_toggles(github, tmp_path):
    standin = github[0]
    standin.github.add_user("alice")
    for name in ("dotfiles", "notes.md"):
        standin.github.add_repo("alice", name, owner_type="User")
        github_fixtures.push_commit(standin, "alice", name)
    storage = {"type": "filesystem", "path": str(tmp_path)}
    run = backup(github, storage, organization=None, user="alice")
    assert {n: r["status"] for n, r in by_name(run).items()} == {"dotfiles": "backed_up", "notes.md": "backed_up"}
    assert by_name(run)["notes.md"]["key"].split("/")[-1].startswith("notes-md-")
    explicit = backup(github, storage, organization=None, user="alice", job="picked",
                      repositories=[{"name": "dotfiles", "issues": False, "pulls": False}])
    result = by_name(explicit)
    assert list(result) == ["dotfiles"]
    restored = extract(os.path.join(str(tmp_path), result["dotfiles"]["key"]), str(tmp_path / "restored"))
    assert sorted(os.listdir(os.path.join(restored, "metadata"))) == [
        "labels.json", "milestones.json", "releases.json", "repository.json"]


def test_invalid_job_name_fails_before_any_request(github, tmp_path):
    github[0].reset_log()
    run = backup(github, {"type": "filesystem", "path": str(tmp_path)}, job="../escape")
    assert run.failed
    assert "job '../escape' is not a valid job name" in run.result["msg"]
    assert github[0].count(kind="rest") == 0
    assert files_below(str(tmp_path)) == []


def test_lfs_objects_are_archived_and_the_token_stays_on_the_github_host(github, tmp_path):
    standin, token, facts = github
    expected = facts["lfs-repo"]["lfs_objects"]
    assert len(expected) == 4
    standin.lfs_host = "localhost"  # downloads on another host, as GitHub's media host is
    standin.reset_log()
    try:
        run = backup(github, {"type": "filesystem", "path": str(tmp_path)}, include=["^lfs-repo$"], lfs=True)
    finally:
        standin.lfs_host = "127.0.0.1"
    assert by_name(run)["lfs-repo"]["status"] == "backed_up", run.result
    restored = extract(os.path.join(str(tmp_path), by_name(run)["lfs-repo"]["key"]), str(tmp_path / "restored"))
    for oid, size in expected.items():
        path = os.path.join(restored, "lfs", "objects", oid[0:2], oid[2:4], oid)
        assert os.path.getsize(path) == size
        with open(path, "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == oid
    batch = [r for r in standin.log if r.kind == "lfs" and r.path.endswith("/objects/batch")]
    downloads = [r for r in standin.log if r.kind == "lfs" and r.path.startswith("/_lfs/")]
    assert batch and all(r.token is not None for r in batch)  # the private repository's batch call was authenticated
    assert len(downloads) == len(expected)
    assert all(r.token is None for r in downloads)  # the token was not sent to the download host


def test_the_registered_result_is_recorded_and_verified_by_backup_manifest(github, first_run):
    store, run = first_run[0], first_run[1]
    token = github[1]
    storage = {"type": "filesystem", "path": store}
    recorded = run_module(COLLECTIONS, "backup_manifest", {"job": "github", "storage": storage, "result": run.result,
                                                           "secrets": [token]})
    assert not recorded.failed, recorded.result.get("msg")
    record = recorded.result["run"]
    assert record["status"] == "partial"  # one repository failed
    assert record["source"]["type"] == "github" and record["source"]["name"] == ORG
    assert [e.split(":")[0] for e in record["errors"]] == ["dmca-repo"]
    assert len(record["artifacts"]) == run.result["totals"]["backed_up"]
    assert record["counts"]["backed_up"] == run.result["totals"]["backed_up"]
    # As README says: from the job's folder, the set's SHA256SUMS (its artifacts lie under objects/).
    job_dir = os.path.join(store, "github")
    set_date = recorded.result["manifest_key"].split("/")[1]
    check = subprocess.run(["sha256sum", "--quiet", "-c", set_date + "/SHA256SUMS"], cwd=job_dir, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0 and record["artifacts"][0]["key"].startswith("github/objects/"), check.stdout + check.stderr
    verified = run_module(COLLECTIONS, "backup_manifest", {"state": "verified", "job": "github", "storage": storage})
    assert not verified.failed, verified.result.get("msg")
    # Every artifact of the set is re-read: this run's, and those the later runs of this module recorded.
    assert {a["key"] for a in record["artifacts"]} <= {v["key"] for v in verified.result["verified"]}
    assert {v["status"] for v in verified.result["verified"]} == {"ok"}
    with open(os.path.join(job_dir, set_date, "manifest.json"), encoding="utf-8") as handle:
        assert token not in handle.read()


def test_a_rerun_probes_the_wikis_at_once_and_still_finds_a_new_wiki(github_standin, tmp_path):
    """GitHub says has_wiki for wikis never created, so a rerun asks git for each; those probes go out together,
    not one per worker (parallel 1 here), and a wiki created since the last run is still found."""
    standin, org = github_standin, "wikico"
    token = standin.add_token(login="wiki-bot", orgs=[org])
    names = sorted(github_fixtures.build_many(standin, org, str(tmp_path / "repos"), count=10, metadata=False,
                                              describe=False))
    with standin.github.lock:
        for name in names:
            standin.github.repo(org, name).has_wiki = True
    github_fixtures.add_wiki(standin, org, names[0])
    storage = {"type": "filesystem", "path": str(tmp_path / "store")}
    args = {"organization": org, "token": token, "api_url": standin.api_url, "storage": storage, "retries": RETRIES,
            "parallel": 1}
    first = run_module(COLLECTIONS, "github_backup", args)
    assert not first.failed and {e["status"] for e in first.result["entries"]} == {"backed_up"}
    github_fixtures.add_wiki(standin, org, names[-1])  # created since: only its probe can tell
    latency = 0.3
    standin.latency = latency
    standin.reset_log()
    try:
        rerun = run_module(COLLECTIONS, "github_backup", args)
    finally:
        standin.latency = 0.0
    assert not rerun.failed, rerun.result.get("msg")
    statuses = {e["name"]: e["status"] for e in rerun.result["entries"]}
    assert statuses == dict({name: "unchanged" for name in names}, **{names[-1]: "backed_up"})
    answered = sorted(r.time for r in standin.log if r.kind == "git" and ".wiki.git/info/refs" in r.path)
    probes = answered[:len(names)]  # then the new wiki is cloned
    assert len(answered) > len(names)
    # One after another, ten probes answered 0.3 s late each would span 2.7 s at least.
    assert probes[-1] - probes[0] < (len(names) - 1) * latency / 2, probes
