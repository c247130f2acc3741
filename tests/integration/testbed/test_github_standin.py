# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The GitHub stand-in against real clients: HTTP requests for the REST API, ``git clone --mirror`` for git."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.client
import json
import os
import re
import subprocess
import time
import urllib.parse

import pytest

from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn, fingerprint, git_env, lfs_pointer

ORG = "acme"


@dataclasses.dataclass
class GitHubEnv:
    standin: GitHubStandIn
    root: str
    token: str
    facts: dict

    def url(self, path: str) -> str:
        return self.standin.api_url + path


@dataclasses.dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def links(self) -> dict[str, str]:
        return {rel: url for url, rel in re.findall(r'<([^>]+)>;\s*rel="([^"]+)"', self.headers.get("Link", ""))}

    def rate(self, name: str) -> int:
        return int(self.headers["X-RateLimit-" + name])


def request(url: str, token: str | None = None, headers: dict[str, str] | None = None, method: str = "GET", scheme: str = "token",
            body: bytes | None = None) -> Reply:
    """One request, no redirects followed, no proxies, loopback only."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    all_headers = {"Accept": "application/vnd.github+json", "User-Agent": "corebackup-tests", "X-GitHub-Api-Version": "2022-11-28"}
    if token is not None:
        all_headers["Authorization"] = "%s %s" % (scheme, token)
    all_headers.update(headers or {})
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, parts.path + ("?" + parts.query if parts.query else ""), body=body, headers=all_headers)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def get_all(url: str, token: str | None) -> tuple[list, int]:
    """Every item of a paginated list, following rel="next"; (items, pages)."""
    items: list = []
    pages = 0
    next_url: str | None = url
    while next_url:
        reply = request(next_url, token)
        assert reply.status == 200, reply.body
        items.extend(reply.json())
        pages += 1
        next_url = reply.links.get("next")
    return items, pages


def git(*args: str, token: str | None = None, cwd: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """git as a backup tool runs it: no user configuration, no prompts, the token in an extra header."""
    extra = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": "Authorization: Bearer %s" % token} if token else {}
    result = subprocess.run(["git", *args], cwd=cwd, env=git_env(extra), capture_output=True, text=True, check=False, timeout=60)
    if check and result.returncode:
        raise AssertionError("git %s failed: %s" % (" ".join(args), result.stderr))
    return result


def mirror(env: GitHubEnv, name: str, dest: str, token: str | None = None, wiki: bool = False,
           options: tuple[str, ...] = (), owner: str = ORG) -> subprocess.CompletedProcess:
    return git(*options, "clone", "--mirror", "--quiet", env.standin.git_url(owner, name, wiki=wiki), dest, token=token, check=False)


@pytest.fixture(scope="module")
def github(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("github"))
    with GitHubStandIn(os.path.join(root, "served")) as standin:
        token = standin.add_token(login="octocat")
        facts = github_fixtures.build_organization(standin, ORG, os.path.join(root, "served"), count=30, seed=1)
        yield GitHubEnv(standin, root, token, facts)
        assert not standin.errors, standin.errors[-1]


@pytest.fixture
def fresh_token(github):
    """A token of its own, so that rate-limit counts are not disturbed by other tests."""
    return github.standin.add_token(login="ratelimited")


def test_organization_covers_the_cases(github):
    facts = github.facts
    assert len(facts) >= 30
    for name in ("empty-repo", "archived-repo", "core-lib-fork", "dotted.name", "my.repo.js", "under_score_repo", "dmca-repo", "no-issues"):
        assert name in facts
    assert facts["empty-repo"]["empty"] and facts["empty-repo"]["refs"] == {}
    assert facts["secret-repo"]["private"] and facts["secret-repo"]["wiki"]
    assert facts["core-lib"]["wiki"] and not facts["tracker"]["wiki"] and facts["tracker"]["has_wiki"]
    refs = facts["tracker"]["refs"]
    assert {"refs/heads/main", "refs/heads/develop", "refs/heads/feature/login", "refs/notes/commits", "refs/tags/v0.1", "refs/tags/v1.0"} <= set(refs)
    assert git("--git-dir", facts["tracker"]["git_dir"], "cat-file", "-t", "refs/tags/v1.0").stdout.strip() == "tag"
    assert git("--git-dir", facts["tracker"]["git_dir"], "cat-file", "-t", "refs/tags/v0.1").stdout.strip() == "commit"
    tracker = facts["tracker"]
    assert tracker["issues"] and tracker["pulls"] and tracker["issue_comments"] and tracker["reviews"] and tracker["review_comments"]
    assert tracker["labels"] and tracker["milestones"] and tracker["releases"] == tracker["assets"] == 2


def test_pagination_follows_link_headers(github):
    url = github.url("/orgs/%s/repos?type=all&per_page=7" % ORG)
    first = request(url, github.token)
    assert first.status == 200 and len(first.json()) == 7
    assert set(first.links) == {"next", "last"}
    assert "type=all" in first.links["next"] and "per_page=7" in first.links["next"] and "page=2" in first.links["next"]
    second = request(first.links["next"], github.token)
    assert set(second.links) == {"prev", "next", "last", "first"}
    last = request(first.links["last"], github.token)
    assert set(last.links) == {"prev", "first"}
    repos, pages = get_all(url, github.token)
    assert pages == 5 and len(repos) == len(github.facts) == 31  # count=30, and lfs-repo on top
    assert {r["name"] for r in repos} == set(github.facts)
    everything = request(github.url("/orgs/%s/repos?per_page=500" % ORG), github.token)
    assert len(everything.json()) == 31 and "Link" not in everything.headers
    default = request(github.url("/orgs/%s/repos" % ORG), github.token)
    assert len(default.json()) == 30 and set(default.links) == {"next", "last"} and "page=2" in default.links["last"]
    repo = next(r for r in repos if r["name"] == "dotted.name")
    assert repo["clone_url"] == github.standin.web_git_url(ORG, "dotted.name")
    assert repo["owner"] == {**repo["owner"], "login": ORG, "type": "Organization"}
    for key in ("id", "node_id", "full_name", "private", "visibility", "fork", "archived", "disabled", "has_wiki", "has_issues",
                "default_branch", "pushed_at", "updated_at", "size", "html_url", "description", "topics"):
        assert key in repo


def test_metadata_lists_match_the_model(github):
    facts = github.facts["tracker"]
    base = "/repos/%s/tracker" % ORG
    issues, pages = get_all(github.url(base + "/issues?state=all&per_page=5"), github.token)
    assert pages >= 3
    assert len(issues) == facts["issues"] + facts["pulls"]
    assert sum(1 for i in issues if "pull_request" in i) == facts["pulls"]
    pulls, _pages = get_all(github.url(base + "/pulls?state=all&per_page=3"), github.token)
    assert len(pulls) == facts["pulls"] and all("head" in p and "base" in p for p in pulls)
    open_pulls, _pages = get_all(github.url(base + "/pulls"), github.token)
    assert all(p["state"] == "open" for p in open_pulls) and len(open_pulls) < len(pulls)
    comments, _pages = get_all(github.url(base + "/issues/comments?per_page=10"), github.token)
    assert len(comments) == facts["issue_comments"] == sum(i["comments"] for i in issues)
    review_comments, _pages = get_all(github.url(base + "/pulls/comments?per_page=4"), github.token)
    assert len(review_comments) == facts["review_comments"]
    reviews = sum(len(get_all(github.url("%s/pulls/%d/reviews" % (base, p["number"])), github.token)[0]) for p in pulls)
    assert reviews == facts["reviews"]
    issue = next(i for i in issues if i["comments"])
    assert len(get_all(github.url("%s/issues/%d/comments" % (base, issue["number"])), github.token)[0]) == issue["comments"]
    assert len(get_all(github.url(base + "/labels"), github.token)[0]) == facts["labels"]
    assert len(get_all(github.url(base + "/milestones?state=all"), github.token)[0]) == facts["milestones"]
    assert len(get_all(github.url(base + "/releases"), github.token)[0]) == facts["releases"]
    branches = get_all(github.url(base + "/branches"), github.token)[0]
    assert {"refs/heads/" + b["name"]: b["commit"]["sha"] for b in branches} == {k: v for k, v in facts["refs"].items() if k.startswith("refs/heads/")}
    tags = get_all(github.url(base + "/tags"), github.token)[0]
    assert {t["name"] for t in tags} == {k[len("refs/tags/"):] for k in facts["refs"] if k.startswith("refs/tags/")}
    commits, pages = get_all(github.url(base + "/commits?per_page=2"), github.token)
    assert pages == 3 and len(commits) == 5 and commits[0]["sha"] == facts["refs"]["refs/heads/main"]
    assert all(c["parents"][0]["sha"] == n["sha"] for c, n in zip(commits, commits[1:]))
    me = request(github.url("/user"), github.token).json()
    assert me["login"] == "octocat" and me["type"] == "User"
    assert request(github.url("/orgs/%s" % ORG), github.token).json()["type"] == "Organization"
    assert request(github.standin.base_url + "/api/v3/repos/%s/tracker" % ORG, github.token).status == 200


def test_bad_token_gets_401(github):
    reply = request(github.url("/repos/%s/tracker" % ORG), "ghp_not-a-valid-token")
    assert reply.status == 401
    assert reply.json() == {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}
    assert request(github.url("/repos/%s/tracker" % ORG), github.token, scheme="Bearer").status == 200


def test_rate_limit_headers_decrease(github, fresh_token):
    first = request(github.url("/repos/%s/tracker" % ORG), fresh_token)
    second = request(github.url("/repos/%s/tracker/labels" % ORG), fresh_token)
    assert first.rate("Limit") == 5000 and first.headers["X-RateLimit-Resource"] == "core"
    assert second.rate("Remaining") == first.rate("Remaining") - 1 == 4998
    assert second.rate("Used") == first.rate("Used") + 1 == 2
    assert first.rate("Reset") > time.time()
    limits = request(github.url("/rate_limit"), fresh_token)
    assert limits.json()["resources"]["core"]["remaining"] == 4998
    assert request(github.url("/rate_limit"), fresh_token).json()["rate"]["used"] == 2


def test_conditional_request_is_free(github, fresh_token):
    url = github.url("/repos/%s/tracker" % ORG)
    first = request(url, fresh_token)
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = request(url, fresh_token, headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b"" and again.headers["ETag"] == etag
    assert again.rate("Remaining") == first.rate("Remaining")
    stale = request(url, fresh_token, headers={"If-None-Match": 'W/"0000"'})
    assert stale.status == 200 and stale.rate("Remaining") == first.rate("Remaining") - 1


def test_rate_limit_exhaustion_and_reset(github, fresh_token):
    github.standin.exhaust_rate_limit(fresh_token, 1.2)
    url = github.url("/orgs/%s" % ORG)
    blocked = request(url, fresh_token)
    assert blocked.status == 403 and blocked.json()["message"].startswith("API rate limit exceeded for")
    assert blocked.rate("Remaining") == 0
    reset = blocked.rate("Reset")
    assert request(url, fresh_token, headers={"If-None-Match": "x"}).status == 403
    time.sleep(max(0.0, reset - time.time()) + 0.05)
    after = request(url, fresh_token)
    assert after.status == 200 and after.rate("Remaining") == 4999


def test_anonymous_rate_limit(tmp_path):
    with GitHubStandIn(str(tmp_path), anonymous_rate_limit=3, rate_limit_window=1.0) as standin:
        standin.github.add_org("solo")
        url = standin.api_url + "/orgs/solo"
        replies = [request(url) for _attempt in range(4)]
        assert [r.status for r in replies] == [200, 200, 200, 403]
        assert replies[0].rate("Limit") == 3 and replies[2].rate("Remaining") == 0
        assert "Authenticated requests get a higher rate limit" in replies[3].json()["message"]
        time.sleep(max(0.0, replies[3].rate("Reset") - time.time()) + 0.05)
        assert request(url).status == 200
        assert standin.count("rest") == 5 and standin.count("rest", status=403) == 1


def test_special_repositories(github):
    def get(path, token=github.token):
        return request(github.url("/repos/%s/%s" % (ORG, path)), token)

    dmca = get("dmca-repo")
    assert dmca.status == 451 and dmca.json()["message"] == "Repository access blocked" and dmca.json()["block"]["reason"] == "dmca"
    assert get("dmca-repo/issues?state=all").status == 451
    empty = get("empty-repo/commits")
    assert empty.status == 409 and empty.json()["message"] == "Git Repository is empty."
    assert get("empty-repo/branches").json() == [] and get("empty-repo").json()["size"] == 0
    disabled = get("no-issues/issues?state=all")
    assert disabled.status == 410 and disabled.json()["message"] == "Issues are disabled for this repo"
    assert get("no-issues/pulls?state=all").status == 200 and get("no-issues").json()["has_issues"] is False
    assert get("archived-repo").json()["archived"] is True
    fork = get("core-lib-fork").json()
    assert fork["fork"] is True and fork["parent"]["full_name"] == "%s/core-lib" % ORG
    secret = get("secret-repo")
    assert secret.status == 200 and secret.json()["private"] is True and secret.json()["visibility"] == "private"
    anonymous = get("secret-repo", token=None)
    assert anonymous.status == 404 and anonymous.json()["message"] == "Not Found"
    public = [r["name"] for r in get_all(github.url("/orgs/%s/repos?per_page=100" % ORG), None)[0]]
    assert "secret-repo" not in public and "tracker" in public
    assert anonymous.rate("Limit") == 60


def test_injected_faults(github, fresh_token):
    standin = github.standin
    url = github.url("/repos/%s/tracker" % ORG)
    standin.inject(r"/repos/acme/tracker$", 502)
    assert request(url, fresh_token).status == 502
    ok = request(url, fresh_token)
    assert ok.status == 200
    standin.inject_secondary_rate_limit(r"/repos/acme/tracker$", retry_after=1, count=2)
    for _attempt in range(2):
        limited = request(url, fresh_token)
        assert limited.status == 403 and limited.headers["Retry-After"] == "1"
        assert "You have exceeded a secondary rate limit" in limited.json()["message"]
        assert limited.rate("Remaining") == ok.rate("Remaining")
    assert request(url, fresh_token).status == 200
    standin.inject(r"^/git/acme/core-lib\.git/info/refs", 502, kind="git")
    dest = os.path.join(github.root, "injected.git")
    failed = mirror(github, "core-lib", dest)
    assert failed.returncode != 0 and "502" in failed.stderr
    assert mirror(github, "core-lib", dest + "2").returncode == 0


@pytest.mark.parametrize("name", ["secret-repo", "tracker", "core-lib-fork", "dotted.name", "my.repo.js", ".github", "trunk-default"])
def test_mirror_clone_matches_source(github, name):
    dest = os.path.join(github.root, "mirror-" + name + ".git")
    private = github.facts[name]["private"]
    if private:
        denied = mirror(github, name, dest + "-anon")
        assert denied.returncode != 0
        assert github.standin.count("git", status=401, path_regex=re.escape("/%s.git/" % name)) >= 1
    github.standin.reset_log()
    result = mirror(github, name, dest, github.token if private else None)
    assert result.returncode == 0, result.stderr
    assert github_fixtures.git_refs(dest) == github.facts[name]["refs"]
    assert git("--git-dir", dest, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/" + github.facts[name]["default_branch"]
    assert len(git("--git-dir", dest, "notes", "list").stdout.split("\n")) >= 2
    assert git("--git-dir", dest, "fsck", "--no-progress").returncode == 0
    assert github.standin.count("git") >= 2 and github.standin.count("rest") == 0


def test_protocol_v0_clone_and_bad_token(github):
    dest = os.path.join(github.root, "v0-core-lib.git")
    result = mirror(github, "core-lib", dest, options=("-c", "protocol.version=0"))
    assert result.returncode == 0, result.stderr
    assert github_fixtures.git_refs(dest) == github.facts["core-lib"]["refs"]
    bad = mirror(github, "core-lib", dest + "-bad", "ghp_wrong")
    assert bad.returncode != 0
    basic = github.standin.git_url(ORG, "secret-repo").replace("http://", "http://x-access-token:%s@" % github.token)
    result = git("clone", "--mirror", "--quiet", basic, dest + "-basic", check=False)
    assert result.returncode == 0, result.stderr
    assert github_fixtures.git_refs(dest + "-basic") == github.facts["secret-repo"]["refs"]


def test_wiki_clones(github):
    dest = os.path.join(github.root, "wiki-core-lib.git")
    assert mirror(github, "core-lib", dest, None, True).returncode == 0
    assert github_fixtures.git_refs(dest) == github.facts["core-lib"]["wiki_refs"] != {}
    private = os.path.join(github.root, "wiki-secret.git")
    assert mirror(github, "secret-repo", private, None, True).returncode != 0
    assert mirror(github, "secret-repo", private, github.token, True).returncode == 0
    assert github_fixtures.git_refs(private) == github.facts["secret-repo"]["wiki_refs"]
    missing = mirror(github, "tracker", os.path.join(github.root, "wiki-tracker.git"), github.token, True)
    assert missing.returncode != 0 and "not found" in missing.stderr
    assert github.standin.count("git", status=404, path_regex=r"tracker\.wiki\.git") >= 1


def test_empty_and_blocked_clones(github):
    empty = os.path.join(github.root, "mirror-empty.git")
    result = git("clone", "--mirror", github.standin.git_url(ORG, "empty-repo"), empty, check=False)
    assert result.returncode == 0 and "empty repository" in result.stderr
    assert github_fixtures.git_refs(empty) == {}
    blocked = mirror(github, "dmca-repo", os.path.join(github.root, "mirror-dmca.git"), github.token)
    assert blocked.returncode != 0 and "451" in blocked.stderr


def test_release_asset_download(github):
    releases = request(github.url("/repos/%s/releases-repo/releases" % ORG), github.token).json()
    asset = releases[0]["assets"][0]
    assert asset["state"] == "uploaded" and asset["size"] > 0
    meta = request(asset["url"], github.token)
    assert meta.status == 200 and meta.json()["name"] == asset["name"]
    redirect = request(asset["url"], github.token, headers={"Accept": "application/octet-stream"})
    assert redirect.status == 302 and redirect.headers["Location"].startswith(github.standin.base_url + "/_downloads/")
    download = request(redirect.headers["Location"])
    assert download.status == 200 and len(download.body) == asset["size"]
    assert "sha256:" + hashlib.sha256(download.body).hexdigest() == asset["digest"]
    browser = request(asset["browser_download_url"])
    assert browser.status == 302 and request(browser.headers["Location"]).body == download.body
    assert request(redirect.headers["Location"].replace("sig=", "sig=0")).status == 404
    secret = request(github.url("/repos/%s/secret-repo/releases" % ORG), github.token).json()[0]["assets"][0]
    assert request(secret["browser_download_url"]).status == 404
    assert request(secret["url"], None, headers={"Accept": "application/octet-stream"}).status == 404
    assert github.standin.count("download", status=200) >= 2


def lfs_env(token: str | None) -> dict[str, str]:
    """git's environment as the backup module sets it: the token only in an extra header (Basic, x-access-token)."""
    if token is None:
        return git_env()
    credentials = base64.b64encode(("x-access-token:%s" % token).encode()).decode()
    return git_env({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": "Authorization: Basic " + credentials})


def run_lfs(*args: str, token: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], env=lfs_env(token), capture_output=True, text=True, check=False, timeout=120)


def lfs_batch(github: GitHubEnv, name: str, objects: list[dict], token: str | None = None, scheme: str = "token",
              operation: str = "download", owner: str = ORG) -> Reply:
    payload = {"operation": operation, "transfers": ["basic"], "objects": objects, "ref": {"name": "refs/heads/main"}, "hash_algo": "sha256"}
    headers = {"Accept": "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json"}
    return request(github.standin.git_url(owner, name) + "/info/lfs/objects/batch", token, method="POST", scheme=scheme,
                   body=json.dumps(payload).encode(), headers=headers)


def test_lfs_fixture_points_at_stored_objects(github):
    facts = github.facts["lfs-repo"]
    assert facts["private"] and set(facts["refs"]) >= {"refs/heads/main", "refs/heads/assets"}
    assert len(facts["lfs_objects"]) == 4 and all(size > 0 for size in facts["lfs_objects"].values())
    assert all(f["lfs_objects"] == {} for name, f in github.facts.items() if name != "lfs-repo")
    on_main = github_fixtures.lfs_references(facts["git_dir"])
    assert on_main == facts["lfs_objects"]
    main_tree = git("--git-dir", facts["git_dir"], "ls-tree", "-r", "--name-only", "refs/heads/main").stdout.split()
    assert {".gitattributes", "data/model.bin", "data/table.bin"} <= set(main_tree) and "assets/big.bin" not in main_tree
    attributes = git("--git-dir", facts["git_dir"], "show", "refs/heads/main:.gitattributes").stdout
    assert attributes == "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    pointer = git("--git-dir", facts["git_dir"], "show", "refs/heads/assets:assets/big.bin").stdout
    assert re.match(r"^version https://git-lfs\.github\.com/spec/v1\noid sha256:[0-9a-f]{64}\nsize [0-9]+\n$", pointer)
    repo = github.standin.github.repo(ORG, "lfs-repo")
    assert {oid: len(data) for oid, data in repo.lfs_objects.items()} == facts["lfs_objects"]


def test_lfs_mirror_and_fetch_all(github):
    facts = github.facts["lfs-repo"]
    dest = os.path.join(github.root, "mirror-lfs-repo.git")
    start = len(github.standin.log)  # not reset_log(): test_log_never_holds_a_token looks at everything
    cloned = run_lfs("clone", "--mirror", "--quiet", github.standin.git_url(ORG, "lfs-repo"), dest, token=github.token)
    assert cloned.returncode == 0, cloned.stderr
    assert github_fixtures.git_refs(dest) == facts["refs"]
    fetched = run_lfs("-C", dest, "lfs", "fetch", "--all", token=github.token)
    assert fetched.returncode == 0, fetched.stderr
    for oid, size in facts["lfs_objects"].items():
        path = os.path.join(dest, "lfs", "objects", oid[0:2], oid[2:4], oid)
        with open(path, "rb") as handle:
            data = handle.read()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == oid
    log = github.standin.log[start:]
    lfs = [r for r in log if r.kind == "lfs"]
    assert [r for r in lfs if r.method == "POST"] and all(r.status == 200 for r in log)  # authenticated at once, no 401 first
    assert {r.token for r in lfs if "/info/lfs/objects/batch" in r.path} == {fingerprint(github.token)}
    assert len([r for r in lfs if r.path.startswith("/_lfs/")]) == len(facts["lfs_objects"])
    with open(os.path.join(dest, "config"), encoding="utf-8") as handle:
        assert github.token not in handle.read()
    downloads = len(github.standin.log)
    again = run_lfs("-C", dest, "lfs", "fetch", "--all", token=github.token)
    assert again.returncode == 0 and not [r for r in github.standin.log[downloads:] if r.path.startswith("/_lfs/")]


def test_lfs_fetch_without_token_fails(github):
    dest = os.path.join(github.root, "mirror-lfs-anon.git")
    assert run_lfs("clone", "--mirror", "--quiet", github.standin.git_url(ORG, "lfs-repo"), dest, token=github.token).returncode == 0
    start = len(github.standin.log)
    fetched = run_lfs("-C", dest, "lfs", "fetch", "--all", token=None)
    assert fetched.returncode != 0
    assert not [files for _dir, _dirs, files in os.walk(os.path.join(dest, "lfs", "objects")) if files]
    log = [r for r in github.standin.log[start:] if r.kind == "lfs"]
    assert log and {r.status for r in log} == {401} and {r.token for r in log} == {None}


def test_lfs_batch_api(github):
    facts = github.facts["lfs-repo"]
    oid, size = next(iter(facts["lfs_objects"].items()))
    unknown = {"oid": hashlib.sha256(b"never uploaded").hexdigest(), "size": 14}
    anonymous = lfs_batch(github, "lfs-repo", [{"oid": oid, "size": size}])
    assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"] == 'Basic realm="GitHub"'
    assert anonymous.headers["Content-Type"].startswith("application/vnd.git-lfs+json") and anonymous.json()["message"]
    assert lfs_batch(github, "lfs-repo", [{"oid": oid, "size": size}], "ghp_wrong").status == 401
    outsider = github.standin.add_token(login="outsider", orgs=[])
    assert lfs_batch(github, "lfs-repo", [{"oid": oid, "size": size}], outsider).status == 404
    reply = lfs_batch(github, "lfs-repo", [{"oid": oid, "size": size}, unknown, {"oid": oid, "size": size + 1}], github.token, scheme="bearer")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/vnd.git-lfs+json")
    found, missing, mismatch = reply.json()["objects"]
    assert reply.json()["transfer"] == "basic"
    assert found["oid"] == oid and found["size"] == size and found["authenticated"] is True and "error" not in found
    download = found["actions"]["download"]
    assert download["expires_in"] == 3600 and download["href"].startswith(github.standin.base_url + "/_lfs/acme/lfs-repo/" + oid + "?")
    assert missing == {**unknown, "error": {"code": 404, "message": "Object does not exist"}}
    assert mismatch["error"]["code"] == 422 and "actions" not in mismatch
    data = request(download["href"], headers=download.get("header"))
    assert data.status == 200 and hashlib.sha256(data.body).hexdigest() == oid and len(data.body) == size
    assert request(download["href"].replace("sig=", "sig=0")).status == 404
    assert request(download["href"].replace(oid, unknown["oid"])).status == 404
    repo = github.standin.github.repo(ORG, "lfs-repo")
    assert request(github.standin.lfs_download_url(repo, oid, expires=int(time.time()) - 1)).status == 404
    basic = base64.b64encode(("x-access-token:%s" % github.token).encode()).decode()
    assert lfs_batch(github, "lfs-repo", [unknown], basic, scheme="Basic").json()["objects"][0]["error"]["code"] == 404
    as_user = base64.b64encode(("%s:x-oauth-basic" % github.token).encode()).decode()  # the token as the user name
    assert lfs_batch(github, "lfs-repo", [unknown], as_user, scheme="Basic").json()["objects"][0]["error"]["code"] == 404
    public = lfs_batch(github, "tracker", [unknown])
    assert public.status == 200 and public.json()["objects"][0]["error"]["code"] == 404
    stored = lfs_batch(github, "lfs-repo", [{"oid": oid, "size": size}], github.token, operation="upload")
    assert stored.status == 200 and "actions" not in stored.json()["objects"][0]  # it has that one: nothing to upload
    assert lfs_batch(github, "tracker", [unknown], outsider, operation="upload").status == 403  # may read, not write
    locks = request(github.standin.git_url(ORG, "lfs-repo") + "/info/lfs/locks", github.token, headers={"Accept": "application/vnd.git-lfs+json"})
    assert locks.status == 200 and locks.json()["locks"] == []
    assert request(github.standin.git_url(ORG, "lfs-repo") + "/info/lfs/locks").status == 401
    assert lfs_batch(github, "core-lib.wiki", [unknown], github.token).status == 404
    assert github.standin.count("lfs", status=401, method="POST") >= 2


def test_second_run_helpers(github, fresh_token):
    url = github.url("/repos/%s/dash-repo-name" % ORG)
    before = request(url, fresh_token)
    sha = github_fixtures.push_commit(github.standin, ORG, "dash-repo-name")
    after_push = request(url, fresh_token, headers={"If-None-Match": before.headers["ETag"]})
    assert after_push.status == 200 and after_push.json()["pushed_at"] > before.json()["pushed_at"]
    branches = request(url + "/branches", fresh_token).json()
    assert {b["name"]: b["commit"]["sha"] for b in branches}["main"] == sha
    issue = github_fixtures.add_issue(github.standin, ORG, "dash-repo-name", "Found after the first run")
    after_issue = request(url, fresh_token, headers={"If-None-Match": after_push.headers["ETag"]})
    assert after_issue.status == 200 and after_issue.json()["updated_at"] >= after_push.json()["updated_at"]
    assert request(url + "/issues/%d" % issue.number, fresh_token).json()["title"] == "Found after the first run"
    first = github_fixtures.push_commit(github.standin, ORG, "empty-repo")
    assert github_fixtures.git_refs(github.facts["empty-repo"]["git_dir"]) == {"refs/heads/main": first}
    assert request(github.url("/repos/%s/empty-repo/commits" % ORG), fresh_token).status == 200


def test_build_many_is_fast(github):
    started = time.monotonic()
    facts = github_fixtures.build_many(github.standin, "bench", os.path.join(github.root, "served"), count=200, seed=7)
    elapsed = time.monotonic() - started
    assert len(facts) == 200 and elapsed < 30
    repos, pages = get_all(github.url("/orgs/bench/repos?per_page=100"), github.token)
    assert pages == 2 and len(repos) == 200
    tips = {f["refs"]["refs/heads/main"] for f in facts.values()}
    assert len(tips) == 200
    dest = os.path.join(github.root, "mirror-bench.git")
    assert mirror(github, "bench-042", dest, owner="bench").returncode == 0
    assert github_fixtures.git_refs(dest) == facts["bench-042"]["refs"]


def test_keep_alive_connection(github):
    conn = http.client.HTTPConnection("127.0.0.1", github.standin.port, timeout=30)
    try:
        statuses = []
        etag = None
        for path, token, headers in [("/repos/acme/tracker", github.token, {}), ("/repos/acme/tracker", github.token, "etag"),
                                     ("/repos/acme/nope", github.token, {}), ("/repos/acme/tracker", "ghp_bad", {}),
                                     ("/repos/acme/releases-repo/releases", None, {}), ("/orgs/acme", github.token, {})]:
            if headers == "etag":
                headers = {"If-None-Match": etag}
            all_headers = dict(headers, **({"Authorization": "token " + token} if token else {}))
            conn.request("GET", "/api" + path, headers=all_headers)
            response = conn.getresponse()
            body = response.read()
            etag = etag or response.headers.get("ETag")
            statuses.append(response.status)
            if response.status == 200:
                assert json.loads(body)
        assert statuses == [200, 304, 404, 401, 200, 200]
    finally:
        conn.close()


def test_large_negotiation_gzip_and_chunked(github):
    """300 branches: upload-pack requests over 1 KiB arrive gzipped; with a small http.postBuffer, chunked."""
    git_dir = os.path.join(github.root, "served", ORG, "branchy.git")
    github_fixtures.init_bare(git_dir)
    stream = github_fixtures.FastImportStream()
    root = stream.commit("refs/heads/main", "root\n", github_fixtures.BASE_EPOCH, {"README.md": "branchy\n"})
    for index in range(300):
        stream.commit("refs/heads/topic-%03d" % index, "topic %d\n" % index, github_fixtures.BASE_EPOCH + index, {"t%d" % index: "%d\n" % index},
                      parent=root)
    stream.run(git_dir)
    github.standin.github.add_repo(ORG, "branchy", git_dir)
    for name, options in (("v2", ()), ("v0-chunked", ("-c", "protocol.version=0", "-c", "http.postBuffer=1024"))):
        dest = os.path.join(github.root, "branchy-%s.git" % name)
        result = mirror(github, "branchy", dest, options=options)
        assert result.returncode == 0, result.stderr
        assert github_fixtures.git_refs(dest) == github_fixtures.git_refs(git_dir)
        github_fixtures.push_commit(github.standin, ORG, "branchy")
        assert git(*options, "--git-dir", dest, "fetch", "--quiet", "--prune").returncode == 0
        assert github_fixtures.git_refs(dest) == github_fixtures.git_refs(git_dir)


RESTORE_ORG = "restored"


@pytest.fixture
def restore_org(github):
    """An organization of its own for repositories created through the API, so that acme's listings stay as built."""
    github.standin.github.add_org(RESTORE_ORG)
    return RESTORE_ORG


def create_repo(github: GitHubEnv, name: str, token: str | None, owner: str | None = RESTORE_ORG, **fields) -> Reply:
    """POST /orgs/{owner}/repos (owner None: POST /user/repos) as a restore tool sends it."""
    path = "/orgs/%s/repos" % owner if owner else "/user/repos"
    return request(github.url(path), token, method="POST", body=json.dumps(dict(fields, name=name)).encode(),
                   headers={"Content-Type": "application/json"})


def restore_source(path: str, pull_refs: bool = False) -> dict[str, str]:
    """A bare repository as a backup holds it: two branches, a lightweight and an annotated tag, notes, and with
    ``pull_refs`` the refs/pull/* GitHub adds. Returns its refs."""
    github_fixtures.init_bare(path)
    stream = github_fixtures.FastImportStream()
    when = github_fixtures.BASE_EPOCH
    root = stream.commit("refs/heads/main", "Initial commit\n", when, {"README.md": "restored\n"})
    main = stream.commit("refs/heads/main", "Add the app\n", when + 60, {"src/app.py": "print('restored')\n"})
    stream.commit("refs/heads/develop", "Work in progress\n", when + 120, {"src/wip.py": "pass\n"}, parent=main)
    stream.lightweight_tag("v0.1", root)
    stream.annotated_tag("v1.0", main, "Release 1.0\n", when + 180)
    stream.notes({main: "Reviewed-by: Hubot <hubot@example.com>\n"}, when + 240)
    if pull_refs:
        head = stream.commit("refs/pull/1/head", "Proposed change\n", when + 300, {"src/pr.py": "pass\n"}, parent=main)
        stream.commit("refs/pull/1/merge", "Merge pull request #1\n", when + 360, {"src/pr.py": "pass\n"}, parent=head)
    stream.run(path)
    return github_fixtures.git_refs(path)


def ls_remote(url: str, token: str | None = None) -> dict[str, str]:
    """The refs a fetch sees: {refname: object id}, without HEAD and peeled tags."""
    pairs = (line.split("\t", 1) for line in git("ls-remote", url, token=token).stdout.splitlines() if line)
    return {ref: sha for sha, ref in pairs if ref.startswith("refs/") and not ref.endswith("^{}")}


def test_create_repository_through_the_api(github, restore_org):
    standin = github.standin
    url = github.url("/orgs/%s/repos" % restore_org)
    created = create_repo(github, "created", github.token, private=True, description="Restored from a backup", has_wiki=False, has_issues=False)
    assert created.status == 201, created.body
    assert created.headers["Location"] == github.url("/repos/%s/created" % restore_org) and "ETag" not in created.headers
    repo = created.json()
    assert repo["full_name"] == "%s/created" % restore_org and repo["owner"]["type"] == "Organization"
    assert repo["organization"]["login"] == restore_org and repo["permissions"]["push"] is True
    assert (repo["private"], repo["visibility"], repo["description"]) == (True, "private", "Restored from a backup")
    assert (repo["has_wiki"], repo["has_issues"], repo["default_branch"], repo["size"]) == (False, False, "main", 0)
    assert repo["clone_url"] == standin.web_git_url(restore_org, "created")
    assert request(github.url("/repos/%s/created" % restore_org), github.token).json() == repo
    record = standin.github.repo(restore_org, "created")
    assert record.git_dir == os.path.join(standin.root_dir, restore_org, "created.git") and record.empty and not record.wiki_exists
    assert github_fixtures.git_refs(record.git_dir) == {}
    assert git("--git-dir", record.git_dir, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/main"
    assert request(github.url("/repos/%s/created/commits" % restore_org), github.token).status == 409
    listed = [r["name"] for r in get_all(url, github.token)[0]]
    assert "created" in listed and "created" not in [r["name"] for r in get_all(url, None)[0]]

    taken = create_repo(github, "Created", github.token)
    assert taken.status == 422 and taken.json() == {
        "message": "Repository creation failed.", "documentation_url": "https://docs.github.com/rest/repos/repos#create-an-organization-repository",
        "errors": [{"resource": "Repository", "code": "custom", "field": "name", "message": "name already exists on this account"}],
        "status": "422"}
    anonymous = create_repo(github, "other", None)
    assert anonymous.status == 401 and anonymous.json()["message"] == "Requires authentication"
    assert create_repo(github, "other", "ghp_wrong").json()["message"] == "Bad credentials"
    outsider = standin.add_token(login="restore-outsider", orgs=[])
    assert create_repo(github, "other", outsider).status == 404
    assert create_repo(github, "other", github.token, owner="no-such-org").status == 404
    assert create_repo(github, "other", github.token, owner="octocat").status == 404  # a user, not an organization
    assert standin.github.repo(restore_org, "other") is None
    missing = request(url, github.token, method="POST", body=b'{"private": true}')
    assert missing.status == 422 and "\"name\" wasn't supplied" in missing.json()["message"]
    assert request(url, github.token, method="POST", body=b"{not json").status == 400
    assert create_repo(github, "other", github.token, private="yes").status == 422
    spaced = create_repo(github, "with spaces", github.token)
    assert spaced.status == 201 and spaced.json()["name"] == "with-spaces"

    own = create_repo(github, "own-repo", outsider, owner=None)
    assert own.status == 201 and own.json()["owner"]["login"] == "restore-outsider" and own.json()["owner"]["type"] == "User"
    assert own.json()["visibility"] == "public" and "organization" not in own.json()
    assert create_repo(github, "own-repo", outsider, owner=None).status == 422
    assert create_repo(github, "own-repo", None, owner=None).status == 401
    assert standin.count("rest", status=201, method="POST") >= 3


def test_push_branches_tags_and_notes(github, restore_org):
    standin = github.standin
    assert create_repo(github, "pushed", github.token).status == 201
    record = standin.github.repo(restore_org, "pushed")
    source = os.path.join(github.root, "restore-source.git")
    refs = restore_source(source)
    url = standin.git_url(restore_org, "pushed")
    start = len(standin.log)
    pushed = git("--git-dir", source, "push", "--quiet", url, "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*",
                 "refs/notes/*:refs/notes/*", token=github.token, check=False)
    assert pushed.returncode == 0, pushed.stderr
    assert github_fixtures.git_refs(record.git_dir) == refs and ls_remote(url) == refs
    assert {"refs/heads/main", "refs/heads/develop", "refs/tags/v0.1", "refs/tags/v1.0", "refs/notes/commits"} == set(refs)
    assert git("--git-dir", record.git_dir, "cat-file", "-t", "refs/tags/v1.0").stdout.strip() == "tag"
    api = "/repos/%s/pushed" % restore_org
    assert {b["name"] for b in request(github.url(api + "/branches"), github.token).json()} == {"main", "develop"}
    assert {t["name"] for t in request(github.url(api + "/tags"), github.token).json()} == {"v0.1", "v1.0"}
    commits = request(github.url(api + "/commits"), github.token)
    assert commits.status == 200 and commits.json()[0]["sha"] == refs["refs/heads/main"]
    repo = request(github.url(api), github.token).json()
    assert not record.empty and repo["pushed_at"] >= repo["created_at"] and repo["default_branch"] == "main"
    pushes = [r for r in standin.log[start:] if "receive-pack" in r.path]
    assert pushes and {(r.kind, r.status, r.token) for r in pushes} == {("git", 200, fingerprint(github.token))}
    assert any(r.method == "POST" and r.path.endswith("/git-receive-pack") for r in pushes)

    # a second run: a mirror push with the token in the URL (git asks, gets 401, retries with it) moves and deletes refs
    git("--git-dir", source, "branch", "-D", "develop")
    git("--git-dir", source, "update-ref", "refs/heads/hotfix", refs["refs/heads/main"])
    with_token = url.replace("http://", "http://x-access-token:%s@" % github.token)
    mirrored = git("--git-dir", source, "push", "--mirror", "--quiet", with_token, check=False)
    assert mirrored.returncode == 0, mirrored.stderr
    assert ls_remote(url) == github_fixtures.git_refs(source) and "refs/heads/develop" not in ls_remote(url)
    assert standin.count("git", status=401, path_regex=r"/pushed\.git/info/refs\?service=git-receive-pack") >= 1


def test_push_of_pull_refs_is_rejected(github, restore_org):
    standin = github.standin
    assert create_repo(github, "with-pulls", github.token).status == 201
    record = standin.github.repo(restore_org, "with-pulls")
    source = os.path.join(github.root, "restore-source-pulls.git")
    refs = restore_source(source, pull_refs=True)
    assert {"refs/pull/1/head", "refs/pull/1/merge"} <= set(refs)
    pushed = git("--git-dir", source, "push", "--mirror", standin.git_url(restore_org, "with-pulls"), token=github.token, check=False)
    assert pushed.returncode != 0
    assert "! [remote rejected] refs/pull/1/head -> refs/pull/1/head (deny updating a hidden ref)" in pushed.stderr
    assert "! [remote rejected] refs/pull/1/merge -> refs/pull/1/merge (deny updating a hidden ref)" in pushed.stderr
    accepted = {ref: sha for ref, sha in refs.items() if not ref.startswith("refs/pull/")}
    assert github_fixtures.git_refs(record.git_dir) == accepted and len(accepted) == 5
    # The stand-in notes the push once git http-backend has ended, which may be just after git has its answer.
    deadline = time.monotonic() + 10
    while record.empty and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not record.empty


def test_push_needs_write_access(github, restore_org):
    standin = github.standin
    for name, private in (("guarded", False), ("guarded-private", True)):
        assert create_repo(github, name, github.token, private=private).status == 201
    standin.github.add_repo(restore_org, "frozen", archived=True)
    source = os.path.join(github.root, "restore-source-guarded.git")
    restore_source(source)
    outsider = standin.add_token(login="push-outsider", orgs=[])

    def push(name: str, token: str | None) -> subprocess.CompletedProcess:
        return git("--git-dir", source, "push", "--quiet", standin.git_url(restore_org, name), "refs/heads/main:refs/heads/main",
                   token=token, check=False)

    anonymous = push("guarded", None)
    assert anonymous.returncode != 0 and "could not read Username" in anonymous.stderr
    assert standin.count("git", status=401, path_regex=r"/guarded\.git/info/refs\?service=git-receive-pack") >= 1
    assert push("guarded", "ghp_wrong").returncode != 0
    reader = push("guarded", outsider)
    assert reader.returncode != 0 and "403" in reader.stderr
    assert standin.count("git", status=403, path_regex=r"/guarded\.git/") >= 1
    hidden = push("guarded-private", outsider)
    assert hidden.returncode != 0 and "not found" in hidden.stderr
    frozen = push("frozen", github.token)
    assert frozen.returncode != 0 and "403" in frozen.stderr
    for name in ("guarded", "guarded-private", "frozen"):
        assert github_fixtures.git_refs(standin.github.repo(restore_org, name).git_dir) == {}
    assert push("guarded", github.token).returncode == 0
    assert mirror(github, "guarded", os.path.join(github.root, "guarded-reader.git"), outsider, owner=restore_org).returncode == 0


def test_wiki_push_needs_an_existing_wiki(github, restore_org):
    standin = github.standin
    assert create_repo(github, "wikied", github.token).status == 201
    record = standin.github.repo(restore_org, "wikied")
    wiki_source = standin.github.repo(ORG, "core-lib").wiki_dir
    wiki_url = standin.git_url(restore_org, "wikied", wiki=True)
    pushed_at = record.pushed_at

    def push(token: str | None) -> subprocess.CompletedProcess:
        return git("--git-dir", wiki_source, "push", "--quiet", wiki_url, "refs/heads/*:refs/heads/*", token=token, check=False)

    refused = push(github.token)
    assert refused.returncode != 0 and "not found" in refused.stderr
    assert standin.count("git", status=404, path_regex=r"/wikied\.wiki\.git/") >= 1 and not record.wiki_exists
    wiki_dir = standin.github.create_wiki(record)
    assert wiki_dir == record.wiki_dir and record.wiki_exists and github_fixtures.git_refs(wiki_dir) == {}
    assert git("--git-dir", wiki_dir, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/master"
    assert standin.github.create_wiki(record) == wiki_dir  # once is enough
    outsider = standin.add_token(login="wiki-outsider", orgs=[])
    assert push(outsider).returncode != 0 and push(None).returncode != 0
    accepted = push(github.token)
    assert accepted.returncode == 0, accepted.stderr
    assert github_fixtures.git_refs(wiki_dir) == github.facts["core-lib"]["wiki_refs"] == ls_remote(wiki_url)
    assert record.pushed_at == pushed_at and record.empty  # a wiki push is not a push to the repository


def test_lfs_push_uploads_objects(github, restore_org):
    standin = github.standin
    assert create_repo(github, "lfs-restored", github.token, private=True).status == 201
    record = standin.github.repo(restore_org, "lfs-restored")
    payload = hashlib.sha256(b"restore").digest() * 512  # 16 KiB
    oid = hashlib.sha256(payload).hexdigest()
    source = os.path.join(github.root, "restore-source-lfs.git")
    github_fixtures.init_bare(source)
    stream = github_fixtures.FastImportStream()
    stream.commit("refs/heads/main", "Add the model\n", github_fixtures.BASE_EPOCH,
                  {".gitattributes": github_fixtures.LFS_ATTRIBUTES, "model.bin": lfs_pointer(payload)})
    stream.run(source)
    object_dir = os.path.join(source, "lfs", "objects", oid[0:2], oid[2:4])
    os.makedirs(object_dir)
    with open(os.path.join(object_dir, oid), "wb") as handle:
        handle.write(payload)
    url = standin.git_url(restore_org, "lfs-restored")
    assert run_lfs("--git-dir", source, "remote", "add", "origin", url, token=None).returncode == 0
    assert run_lfs("--git-dir", source, "push", "--quiet", "origin", "refs/heads/main", token=github.token).returncode == 0
    assert run_lfs("--git-dir", source, "lfs", "push", "--all", "origin", token=None).returncode != 0 and not record.lfs_objects
    start = len(standin.log)
    uploaded = run_lfs("--git-dir", source, "lfs", "push", "--all", "origin", token=github.token)
    assert uploaded.returncode == 0, uploaded.stderr
    assert record.lfs_objects == {oid: payload}
    log = standin.log[start:]
    puts = [r for r in log if r.method == "PUT"]
    assert len(puts) == 1 and puts[0].status == 200 and puts[0].kind == "lfs" and puts[0].path.startswith("/_lfs/%s/lfs-restored/%s?" % (
        restore_org, oid))
    batch = [r for r in log if r.path.endswith("/info/lfs/objects/batch")]
    assert batch and {(r.status, r.token) for r in batch} == {(200, fingerprint(github.token))}
    again = len(standin.log)
    assert run_lfs("--git-dir", source, "lfs", "push", "--all", "origin", token=github.token).returncode == 0
    assert not [r for r in standin.log[again:] if r.method == "PUT"]  # the stand-in has it: no upload action

    dest = os.path.join(github.root, "lfs-restored-clone.git")
    assert run_lfs("clone", "--mirror", "--quiet", url, dest, token=github.token).returncode == 0
    fetched = run_lfs("-C", dest, "lfs", "fetch", "--all", token=github.token)
    assert fetched.returncode == 0, fetched.stderr
    with open(os.path.join(dest, "lfs", "objects", oid[0:2], oid[2:4], oid), "rb") as handle:
        assert handle.read() == payload


def test_lfs_upload_api(github, restore_org):
    standin = github.standin
    assert create_repo(github, "lfs-upload", github.token).status == 201
    record = standin.github.repo(restore_org, "lfs-upload")
    data = b"an LFS object\n" * 100
    item = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data)}
    outsider = standin.add_token(login="lfs-outsider", orgs=[])
    assert lfs_batch(github, "lfs-upload", [item], None, operation="upload", owner=restore_org).status == 401
    assert lfs_batch(github, "lfs-upload", [item], outsider, operation="upload", owner=restore_org).status == 403
    assert lfs_batch(github, "lfs-upload", [item], outsider, owner=restore_org).status == 200  # a reader may still download
    reply = lfs_batch(github, "lfs-upload", [item, {"oid": "abc", "size": 1}, {"oid": item["oid"], "size": -1}], github.token,
                      operation="upload", owner=restore_org)
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/vnd.git-lfs+json")
    wanted, bad_oid, bad_size = reply.json()["objects"]
    assert bad_oid["error"]["code"] == 422 and bad_size["error"]["code"] == 422
    upload = wanted["actions"]["upload"]
    assert wanted["oid"] == item["oid"] and upload["expires_in"] == 3600
    assert upload["href"].startswith("%s/_lfs/%s/lfs-upload/%s?expires=" % (standin.base_url, restore_org, item["oid"])) and "&sig=" in upload["href"]
    assert request(upload["href"], method="PUT", body=data[:-1] + b"?", headers=upload["header"]).status == 422  # not the oid's content
    assert request(upload["href"].replace("sig=", "sig=0"), method="PUT", body=data).status == 403
    download_url = standin.lfs_download_url(record, item["oid"])
    assert request(download_url, method="PUT", body=data).status == 403  # a download URL does not take uploads
    assert not record.lfs_objects
    assert request(upload["href"], method="PUT", body=data, headers=upload["header"]).status == 200
    assert record.lfs_objects == {item["oid"]: data}
    assert request(download_url).body == data
    have = lfs_batch(github, "lfs-upload", [item], github.token, operation="upload", owner=restore_org).json()["objects"][0]
    assert have == {"oid": item["oid"], "size": item["size"], "authenticated": True}
    verify = standin.git_url(restore_org, "lfs-upload") + "/info/lfs/locks/verify"
    lfs_headers = {"Accept": "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json"}
    locks = request(verify, github.token, method="POST", body=b'{"ref": {"name": "refs/heads/main"}}', headers=lfs_headers)
    assert locks.status == 200 and locks.json()["ours"] == [] and locks.json()["theirs"] == []
    assert request(verify, None, method="POST", body=b"{}", headers=lfs_headers).status == 401
    assert request(verify, outsider, method="POST", body=b"{}", headers=lfs_headers).status == 403


def test_log_never_holds_a_token(github):
    log = github.standin.log
    assert log and {r.kind for r in log} >= {"rest", "git", "download"}
    text = repr(log) + json.dumps([dataclasses.asdict(r) for r in log])
    for token in github.standin.tokens | {"ghp_wrong", "ghp_not-a-valid-token"}:
        assert token not in text
    assert fingerprint(github.token) in text
    assert not github.standin.errors
