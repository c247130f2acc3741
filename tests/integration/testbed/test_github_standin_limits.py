# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The GitHub stand-in's secondary rate limits and latency, against real HTTP clients and git."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import http.client
import json
import os
import subprocess
import time
import urllib.parse

import pytest

from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn, git_env

SECONDARY_MESSAGE = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


@dataclasses.dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


def call(url: str, token: str | None = None, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
    parts = urllib.parse.urlsplit(url)
    all_headers = {"Authorization": "token %s" % token} if token else {}
    all_headers.update(headers or {})
    started = time.monotonic()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, parts.path + ("?" + parts.query if parts.query else ""), body=body, headers=all_headers)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read(), time.monotonic() - started)
    finally:
        conn.close()


def graphql(standin: GitHubStandIn, token: str, query: str = "{ rateLimit { remaining } }") -> Answer:
    return call(standin.api_url + "/graphql", token, "POST", json.dumps({"query": query}).encode(), {"Content-Type": "application/json"})


def ls_remote(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "ls-remote", url], env=git_env(), capture_output=True, text=True, check=False, timeout=60)


def assert_secondary(answer: Answer, kind: str = "rest") -> int:
    """A secondary-rate-limit answer as GitHub sends it; returns its Retry-After."""
    assert answer.status == 403
    body = answer.json()
    assert body["message"].startswith(SECONDARY_MESSAGE) and "include the request ID %s." % answer.headers["X-GitHub-Request-Id"] in body["message"]
    assert body["documentation_url"].endswith("#secondary-rate-limits" if kind == "graphql" else "#about-secondary-rate-limits")
    return int(answer.headers["Retry-After"])


@pytest.fixture
def hive(tmp_path):
    """A stand-in with secondary limits on, an organization with a repository that has history, and a token."""
    with GitHubStandIn(str(tmp_path), secondary_limits=True) as standin:
        standin.github.add_org("hive")
        git_dir = os.path.join(str(tmp_path), "hive", "comb.git")
        github_fixtures.init_bare(git_dir)
        stream = github_fixtures.FastImportStream()
        stream.commit("refs/heads/main", "First\n", github_fixtures.BASE_EPOCH, {"README.md": "comb\n"})
        stream.run(git_dir)
        standin.github.add_repo("hive", "comb", git_dir)
        yield standin, standin.add_token(login="bee")
        assert not standin.errors, standin.errors[-1]


def test_secondary_rest_points_per_minute(hive):
    standin, token = hive
    standin.set_secondary_limits(rest_points=12, window=2.0)
    url = standin.api_url + "/orgs/hive"
    assert [call(url, token).status for _index in range(12)] == [200] * 12  # a GET costs 1 point
    refused = call(url, token)
    retry_after = assert_secondary(refused)
    assert 1 <= retry_after <= 2 and standin.secondary_limit_hits == 1 and standin.count("rest", status=403) == 1
    assert refused.headers["X-RateLimit-Remaining"] == "4988"  # the primary bucket is not charged for it
    assert call(url, standin.add_token(login="other-bee")).status == 200  # per token
    assert call(url).status == 200  # without a token: per client address
    assert ls_remote(standin.git_url("hive", "comb")).returncode == 0  # git is not counted
    assert graphql(standin, token).status == 200  # GraphQL has points of its own
    time.sleep(retry_after + 0.1)
    create = standin.api_url + "/orgs/hive/repos"
    assert call(create, token, "POST", b'{"name": "cell-1"}').status == 201  # a POST costs 5 points
    assert call(create, token, "POST", b'{"name": "cell-2"}').status == 201
    assert_secondary(call(create, token, "POST", b'{"name": "cell-3"}'))  # 10 + 5 > 12
    assert [call(url, token).status for _index in range(2)] == [200, 200]  # 10 + 1 + 1
    assert_secondary(call(url, token))
    assert standin.secondary_limit_hits == 3 and standin.github.repo("hive", "cell-3") is None


def test_secondary_graphql_points_per_minute(hive):
    standin, token = hive
    standin.set_secondary_limits(graphql_points=7, window=2.0)
    assert graphql(standin, token, "mutation { addStar(input: {}) { clientMutationId } }").status == 200  # 5 points (an error: no mutations here)
    assert [graphql(standin, token).status for _index in range(2)] == [200, 200]  # 1 point each
    refused = graphql(standin, token)
    retry_after = assert_secondary(refused, "graphql")
    assert 1 <= retry_after <= 2 and refused.headers["X-RateLimit-Resource"] == "graphql"
    assert call(standin.api_url + "/orgs/hive", token).status == 200  # REST's points are apart
    time.sleep(retry_after + 0.1)
    assert graphql(standin, token).status == 200
    assert standin.count("graphql", status=403) == standin.secondary_limit_hits == 1


def test_secondary_concurrency_counts_rest_and_graphql_together(hive):
    standin, token = hive
    standin.set_secondary_limits(concurrency=3)
    standin.latency = 0.6
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(call, standin.api_url + "/orgs/hive", token) for _index in range(4)]
        futures += [pool.submit(graphql, standin, token) for _index in range(2)]
        futures += [pool.submit(ls_remote, standin.git_url("hive", "comb"))]  # not counted
        answers = [f.result() for f in futures]
    statuses = sorted(a.status for a in answers[:6])
    assert statuses == [200, 200, 200, 403, 403, 403] and answers[6].returncode == 0
    assert all(assert_secondary(a, "rest" if index < 4 else "graphql") == 1 for index, a in enumerate(answers[:6]) if a.status == 403)
    assert standin.secondary_limit_hits == 3
    standin.latency = 0
    assert call(standin.api_url + "/orgs/hive", token).status == 200  # the slots were given back


def test_secondary_limits_are_off_by_default(tmp_path):
    with GitHubStandIn(str(tmp_path)) as standin:
        standin.github.add_org("free")
        token = standin.add_token(login="free-bee")
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _i: call(standin.api_url + "/orgs/free", token).status, range(120)))
        assert statuses == [200] * 120 and standin.secondary_limit_hits == 0


def test_latency_delays_every_answer_without_serializing(tmp_path):
    root = str(tmp_path)
    with GitHubStandIn(root, latency=0.2) as standin:
        token = standin.add_token(login="octocat")
        standin.github.add_org("slow")
        facts = github_fixtures.build_organization(standin, "slow", root, count=18, seed=2)
        lfs = standin.github.repo("slow", "lfs-repo")
        oid, size = next(iter(facts["lfs-repo"]["lfs_objects"].items()))
        release = standin.github.repo("slow", "releases-repo").releases[0]
        asset_url = "%s/slow/releases-repo/releases/download/%s/%s" % (standin.base_url, release.tag_name, release.assets[0].name)
        lfs_body = json.dumps({"operation": "download", "objects": [{"oid": oid, "size": size}]}).encode()
        lfs_headers = {"Accept": "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json"}
        requests = [
            lambda: call(standin.api_url + "/orgs/slow/repos", token),
            lambda: call(standin.api_url + "/repos/slow/tracker/issues?state=all", token),
            lambda: graphql(standin, token, '{ repository(owner: "slow", name: "tracker") { issues(first: 5) { totalCount } } }'),
            lambda: call(standin.git_url("slow", "tracker") + "/info/refs?service=git-upload-pack", token),
            lambda: call(standin.web_git_url("slow", "core-lib") + "/info/refs?service=git-upload-pack"),
            lambda: call(standin.git_url("slow", "lfs-repo") + "/info/lfs/objects/batch", token, "POST", lfs_body, lfs_headers),
            lambda: call(standin.lfs_download_url(lfs, oid)),
            lambda: call(asset_url),
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            started = time.monotonic()
            answers = list(pool.map(lambda index: requests[index % len(requests)](), range(20)))
            wall = time.monotonic() - started
        assert [a.status for a in answers[:8]] == [200, 200, 200, 200, 200, 200, 200, 302]
        assert all(a.seconds >= 0.2 for a in answers), [a.seconds for a in answers]
        assert wall < 20 * 0.2 / 2, wall  # concurrent, not one after the other (that would take 4 s)
        download = call(answers[7].headers["Location"])
        assert download.status == 200 and download.seconds >= 0.2 and hashlib.sha256(download.body).digest() == hashlib.sha256(
            release.assets[0].data).digest()
        assert call(standin.lfs_download_url(lfs, oid)).body == lfs.lfs_objects[oid]
        started = time.monotonic()
        cloned = subprocess.run(["git", "clone", "--mirror", "--quiet", standin.git_url("slow", "core-lib"), os.path.join(root, "slow.git")],
                                env=git_env(), capture_output=True, text=True, check=False, timeout=60)
        assert cloned.returncode == 0 and time.monotonic() - started >= 0.4  # two requests at least
        standin.latency = 0.0
        assert call(standin.api_url + "/orgs/slow", token).seconds < 0.2
