# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A GitHub stand-in on 127.0.0.1: the REST API a backup tool uses, and real git repositories over smart HTTP.

URL layout (``base_url`` is ``http://127.0.0.1:PORT``):

* REST API: ``api_url`` = ``{base_url}/api`` (``{base_url}/api/v3`` is accepted as an alias, like GitHub
  Enterprise Server). Paths below it are GitHub's: ``/api/orgs/acme/repos``, ``/api/repos/acme/tool/issues``.
* GraphQL: ``POST {api_url}/graphql`` (``/api/graphql``, as on GitHub Enterprise Server), see :mod:`github_graphql`: the
  same data as REST, GitHub's cost and node limits, a bucket of points of its own (``X-RateLimit-Resource: graphql``),
  errors next to partial data; faults with :meth:`GitHubStandIn.inject_graphql`; ``graphql=False`` answers 404.
* git: ``{base_url}/{owner}/{repo}.git`` (REST ``clone_url``, as on GitHub) and the wiki ``{base_url}/{owner}/{repo}.wiki.git``;
  the older ``{base_url}/git/{owner}/{repo}.git`` is served too (there the ``.git`` suffix is optional; LFS below
  both). Answered by ``git-http-backend`` run as a CGI. Fetches follow the read rules of the API;
  pushes (``git-receive-pack``) need a token that may write the repository (member of the organization, or the
  owning user): 401 without one, 403 ``Permission to o/r.git denied to login.`` for a reader, 404 for a private
  repository the token may not see, 403 for an archived repository. Like GitHub, updates of ``refs/pull/*`` are
  refused per ref (``! [remote rejected] ... (deny updating a hidden ref)``, git's ``receive.hideRefs``) while
  the other refs of the push are accepted. A push to a wiki that does not exist yet answers 404 (GitHub creates
  wikis from the web page only; :meth:`FakeGitHub.create_wiki` stands in for that). After a push to a repository
  its size, emptiness and ``pushed_at`` are refreshed (a wiki push does not move ``pushed_at``).
* web: ``{base_url}/{owner}/{repo}`` is the ``html_url``; only ``/{owner}/{repo}/releases/download/{tag}/{name}``
  (``browser_download_url``) answers, with a 302 to a signed ``{base_url}/_downloads/...`` URL, which is also
  where ``GET /api/repos/{o}/{r}/releases/assets/{id}`` with ``Accept: application/octet-stream`` redirects.
* Git LFS: the Batch API at ``{git_url}/info/lfs/objects/batch`` (same authentication as git), whose download
  actions point at signed ``{base_url}/_lfs/{owner}/{repo}/{oid}?expires=...&sig=...`` URLs that need no
  Authorization header. ``operation: upload`` needs write access (like a push) and answers an ``upload`` action
  (a signed URL of the same shape, taking ``PUT`` with the object's bytes, checked against oid and size) for each
  object the repository does not have yet, none for those it has. ``{git_url}/info/lfs/locks`` lists no locks,
  ``POST {git_url}/info/lfs/locks/verify`` answers writers that there are none. Objects are also added with
  :meth:`FakeGitHub.add_lfs_object`; these requests are logged with kind ``lfs``.
* Creating repositories: ``POST /api/orgs/{org}/repos`` (a member's token) and ``POST /api/user/repos`` answer 201
  with the repository (an empty bare git repository, default branch ``main``), 422 when the name is taken.
* GitHub Apps (:meth:`GitHubStandIn.add_app`): ``/api/app``, ``/api/app/installations[/{id}]``,
  ``/api/{orgs,users}/{login}/installation``, ``/api/repos/{o}/{r}/installation`` and
  ``POST /api/app/installations/{id}/access_tokens``, authenticated with the app's RS256 JWT; the ``ghs_`` installation
  tokens read every repository of the account (REST, GraphQL, git, LFS) until they expire, then 401 Bad credentials.
* Secondary rate limits (off by default, :meth:`GitHubStandIn.set_secondary_limits`) and a latency added to every
  answer (``latency``).

The data lives in a :class:`FakeGitHub` model (owners, repositories, issues, pull requests, releases, ...);
branches, tags and commits are read from the bare repositories on disk. Behaviour copied from GitHub:
token authentication (``token``/``Bearer``/Basic), 401 ``Bad credentials``, private repositories answering 404
to those who may not see them, pagination with ``Link`` headers, primary rate limits with the ``X-RateLimit-*``
headers, ETags and free 304 answers, 451 for DMCA-blocked repositories, 409 for commits of an empty repository,
410 for issues of a repository with issues disabled. Faults can be injected (:meth:`GitHubStandIn.inject`) and
every request is recorded (:attr:`GitHubStandIn.log`) with a fingerprint of the token, never the token itself.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import hashlib
import hmac
import http.server
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import traceback
import typing as t
import urllib.parse

LOOPBACK = "127.0.0.1"
GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
DOCS_URL = "https://docs.github.com/rest"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID %s."
)
SECONDARY_REST_DOCS = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits"
SECONDARY_GRAPHQL_DOCS = "https://docs.github.com/graphql/overview/rate-limits-and-node-limits-for-the-graphql-api#secondary-rate-limits"
# GitHub's documented secondary limits: concurrent requests (REST and GraphQL together), and points per minute: a REST
# GET, HEAD or OPTIONS costs 1 point, any other REST method 5; a GraphQL query 1, a mutation 5.
SECONDARY_CONCURRENCY = 100
SECONDARY_REST_POINTS = 900
SECONDARY_GRAPHQL_POINTS = 2000
SECONDARY_WINDOW = 60.0
GRAPHQL_DOCS = "https://docs.github.com/graphql"
GRAPHQL_AUTH_DOCS = "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql"
GRAPHQL_TIMEOUT_MESSAGE = ("Something went wrong while executing your query. This may be the result of a timeout, or it could be "
                           "a GitHub bug. Please include `%s` when reporting this issue.")
UNICORN_PAGE = (b"<!DOCTYPE html>\n<html>\n  <head>\n    <meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\n"
                b"    <title>Unicorn! &middot; GitHub</title>\n  </head>\n  <body>\n    <p><strong>We had issues producing the "
                b"response to your request.</strong></p>\n    <p>Sorry about that. Please try refreshing and contact us if the "
                b"problem persists.</p>\n  </body>\n</html>\n")
JWT_DECODE_ERROR = "A JSON web token could not be decoded"
JWT_EXP_ERROR = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
JWT_EXP_TOO_FAR = "'Expiration time' claim ('exp') is too far in the future"
JWT_IAT_ERROR = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
JWT_MAX_LIFETIME = 600  # GitHub: exp at most 10 minutes after iat
JWT_CLOCK_DRIFT = 60  # an iat this far in the future is still accepted
# The REST paths a GitHub App calls with its JWT instead of a token.
APP_ROUTE = re.compile(r"^/app(/installations(/\d+(/access_tokens)?)?)?$|^/(orgs|users)/[^/]+/installation$|^/repos/[^/]+/[^/]+/installation$")
INSTALLATION_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
DEFAULT_APP_PERMISSIONS = {"contents": "read", "issues": "read", "metadata": "read", "pull_requests": "read"}

LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"
LFS_POINTER_VERSION = "https://git-lfs.github.com/spec/v1"
LFS_EXPIRES_IN = 3600
LFS_OID = re.compile(r"^[0-9a-f]{64}$")

GIT_BASE_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


def utc_iso(timestamp: float | None = None) -> str:
    """A time the way GitHub writes it: ``2024-01-31T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if timestamp is None else timestamp))


def fingerprint(token: str | None) -> str | None:
    """What the request log stores instead of a token."""
    if token is None:
        return None
    return "fp-" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for git without user or system configuration."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/nonexistent")}
    env.update(GIT_BASE_ENV)
    if extra:
        env.update(extra)
    return env


class GitError(RuntimeError):
    pass


def run_git(git_dir: str, *args: str, check: bool = True, data: bytes | None = None) -> subprocess.CompletedProcess:
    """``git --git-dir GIT_DIR ARGS`` without user configuration; GitError (with git's message) when it fails and ``check``."""
    result = subprocess.run(["git", "--git-dir", git_dir, *args], input=data, capture_output=True, check=False, env=git_env())
    if check and result.returncode:
        raise GitError("git %s in %s failed (%d): %s" % (" ".join(args), git_dir, result.returncode, result.stderr.decode("utf-8", "replace").strip()))
    return result


def lfs_pointer(data: bytes) -> str:
    """The Git LFS pointer file that stands for ``data`` in a repository."""
    return "version %s\noid sha256:%s\nsize %d\n" % (LFS_POINTER_VERSION, hashlib.sha256(data).hexdigest(), len(data))


def _node_id(kind: str, ident: int) -> str:
    return base64.b64encode(("0%d:%s%d" % (len(kind), kind, ident)).encode()).decode().rstrip("=")


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Owner:
    login: str
    type: str  # "User" or "Organization"
    id: int
    name: str | None = None
    description: str | None = None
    created_at: str = "2015-01-01T00:00:00Z"
    updated_at: str = "2015-01-01T00:00:00Z"


@dataclasses.dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False
    created_at: str | None = None  # not in the REST answers; GraphQL's createdAt and updatedAt


@dataclasses.dataclass
class Milestone:
    id: int
    number: int
    title: str
    creator: str
    description: str | None = None
    state: str = "open"
    created_at: str = ""
    updated_at: str = ""
    due_on: str | None = None
    closed_at: str | None = None


@dataclasses.dataclass
class Comment:
    id: int
    issue_number: int
    user: str
    body: str
    created_at: str
    updated_at: str
    last_edited_at: str | None = None  # GraphQL's lastEditedAt and editor, set by FakeGitHub.edit_comment
    editor: str | None = None


@dataclasses.dataclass
class Review:
    id: int
    user: str
    body: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    submitted_at: str
    commit_id: str


@dataclasses.dataclass
class ReviewComment:
    id: int
    pull_number: int
    review_id: int | None
    user: str
    body: str
    path: str
    line: int
    commit_id: str
    diff_hunk: str
    created_at: str
    updated_at: str
    in_reply_to_id: int | None = None


@dataclasses.dataclass
class PullInfo:
    id: int
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    merged_at: str | None = None
    merge_commit_sha: str | None = None
    draft: bool = False
    reviews: list[Review] = dataclasses.field(default_factory=list)
    review_comments: list[ReviewComment] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Issue:
    id: int
    number: int
    title: str
    user: str
    created_at: str
    updated_at: str
    body: str | None = None
    state: str = "open"
    state_reason: str | None = None
    closed_at: str | None = None
    labels: list[str] = dataclasses.field(default_factory=list)
    milestone: int | None = None
    assignees: list[str] = dataclasses.field(default_factory=list)
    locked: bool = False
    comments: list[Comment] = dataclasses.field(default_factory=list)
    pull: PullInfo | None = None


@dataclasses.dataclass
class Asset:
    id: int
    name: str
    data: bytes
    uploader: str
    created_at: str
    content_type: str = "application/octet-stream"
    label: str | None = None
    download_count: int = 0


@dataclasses.dataclass
class Release:
    id: int
    tag_name: str
    name: str
    author: str
    created_at: str
    published_at: str | None
    target_commitish: str = "main"
    body: str | None = None
    draft: bool = False
    prerelease: bool = False
    assets: list[Asset] = dataclasses.field(default_factory=list)
    updated_at: str = ""  # moved by FakeGitHub.edit_release; the creation time until then


@dataclasses.dataclass
class Repo:  # pylint: disable=too-many-instance-attributes
    id: int
    owner: Owner
    name: str
    git_dir: str
    created_at: str
    updated_at: str
    pushed_at: str
    private: bool = False
    visibility: str = "public"
    description: str | None = None
    homepage: str | None = None
    language: str | None = None
    fork: bool = False
    parent: Repo | None = None
    archived: bool = False
    disabled: bool = False
    has_issues: bool = True
    has_wiki: bool = True
    has_projects: bool = True
    has_downloads: bool = True
    has_discussions: bool = False
    default_branch: str = "main"
    topics: list[str] = dataclasses.field(default_factory=list)
    size: int = 0
    empty: bool = False
    dmca: bool = False
    stargazers_count: int = 0
    forks_count: int = 0
    labels: list[Label] = dataclasses.field(default_factory=list)
    milestones: list[Milestone] = dataclasses.field(default_factory=list)
    issues: dict[int, Issue] = dataclasses.field(default_factory=dict)
    releases: list[Release] = dataclasses.field(default_factory=list)
    lfs_objects: dict[str, bytes] = dataclasses.field(default_factory=dict)  # Git LFS objects: sha256 oid -> content
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return "%s/%s" % (self.owner.login, self.name)

    @property
    def wiki_dir(self) -> str:
        return self.git_dir[:-4] + ".wiki.git" if self.git_dir.endswith(".git") else self.git_dir + ".wiki.git"

    @property
    def wiki_exists(self) -> bool:
        return os.path.isdir(self.wiki_dir)


@dataclasses.dataclass
class Token:
    token: str
    login: str
    orgs: frozenset[str] | None = None  # organizations (lower case) the token's owner is a member of; None: all
    rate_limit: int | None = None
    scopes: str = "repo, read:org"
    graphql_rate_limit: int | None = None  # points per window of the GraphQL bucket; None: the stand-in's default
    expires_at: float | None = None  # an installation token stops working then (401 Bad credentials)
    account: str | None = None  # an installation token: the account (lower case) whose repositories it may read
    installation_id: int | None = None
    permissions: dict[str, str] | None = None  # an installation token's; "contents": "write" lets it push


@dataclasses.dataclass
class RateBucket:
    limit: int
    window: float
    used: int = 0
    reset: float = 0.0
    resource: str = "core"  # X-RateLimit-Resource: "core" (REST) or "graphql"

    def roll(self, now: float) -> None:
        if now >= self.reset:
            self.used = 0
            self.reset = now + self.window

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(self.remaining)),
            ("X-RateLimit-Reset", str(int(math.ceil(self.reset)))),
            ("X-RateLimit-Used", str(min(self.used, self.limit))),
            ("X-RateLimit-Resource", self.resource),
        ]


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int
    token: str | None  # a fingerprint (see fingerprint()), never the token
    kind: str  # "rest", "graphql", "git", "lfs", "download" or "web"
    time: float


def _dir_size_kb(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total // 1024


class FakeGitHub:
    """Owners, repositories and everything in them. Every mutation takes :attr:`lock`."""

    def __init__(self, root_dir: str):
        self.root_dir = root_dir
        self.lock = threading.RLock()
        self.owners: dict[str, Owner] = {}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.tokens: dict[str, Token] = {}
        self.assets: dict[int, tuple[Repo, Release, Asset]] = {}
        self._next_id = 1000
        self._nodes: dict[tuple[str, int], tuple] = {}  # (node type, database id) -> (repository or owner, object, ...)

    def new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    # owners and tokens -----------------------------------------------------------------------------

    def owner(self, login: str) -> Owner | None:
        return self.owners.get(login.lower())

    def add_owner(self, login: str, owner_type: str = "User", **fields) -> Owner:
        with self.lock:
            existing = self.owner(login)
            if existing is not None:
                return existing
            owner = Owner(login=login, type=owner_type, id=self.new_id(), **fields)
            self.owners[login.lower()] = owner
            return owner

    def add_org(self, login: str, **fields) -> Owner:
        return self.add_owner(login, "Organization", **fields)

    def add_user(self, login: str, **fields) -> Owner:
        return self.add_owner(login, "User", **fields)

    def add_token(self, token: str, login: str, orgs: t.Iterable[str] | None = None, rate_limit: int | None = None,
                  scopes: str = "repo, read:org", graphql_rate_limit: int | None = None) -> Token:
        """A valid token of user ``login``, member of ``orgs`` (None: of every organization)."""
        with self.lock:
            self.add_user(login)
            record = Token(token=token, login=login, orgs=None if orgs is None else frozenset(o.lower() for o in orgs),
                           rate_limit=rate_limit, scopes=scopes, graphql_rate_limit=graphql_rate_limit)
            self.tokens[token] = record
            return record

    def lookup_token(self, value: str | None) -> Token | None:
        """The token record of an Authorization value; None for an unknown token and for an installation token past its
        ``expires_at`` (GitHub answers both with 401 Bad credentials)."""
        if not value:
            return None
        record = self.tokens.get(value)
        if record is None or (record.expires_at is not None and time.time() >= record.expires_at):
            return None
        return record

    def is_member(self, token: Token | None, owner: Owner) -> bool:
        if token is None:
            return False
        if token.account is not None:  # an installation token: the repositories of the account the app is installed on
            return token.account == owner.login.lower()
        if owner.type == "User":
            return token.login.lower() == owner.login.lower()
        return token.orgs is None or owner.login.lower() in token.orgs

    def can_read(self, token: Token | None, repo: Repo) -> bool:
        return not repo.private or self.is_member(token, repo.owner)

    def can_write(self, token: Token | None, repo: Repo) -> bool:
        """Push access: a member of the organization, or the user who owns the repository (an installation token: when its
        permissions have ``contents: write``)."""
        if token is not None and token.permissions is not None and token.permissions.get("contents") != "write":
            return False
        return self.is_member(token, repo.owner)

    def association(self, repo: Repo, login: str) -> str:
        """The ``author_association`` (REST) or ``authorAssociation`` (GraphQL) of ``login`` in ``repo``."""
        owner = self.owner(login)
        if owner is not None and owner.login.lower() == repo.owner.login.lower():
            return "OWNER"
        if any(tok.login.lower() == login.lower() and self.is_member(tok, repo.owner) for tok in self.tokens.values()):
            return "MEMBER"
        return "CONTRIBUTOR"

    # node ids --------------------------------------------------------------------------------------

    def locate(self, kind: str, ident: int) -> tuple | None:
        """The object behind a node id (its type and database id, see :func:`_node_id`): ``(owner,)`` for ``User``/``Organization``, ``(repo,)``,
        ``(repo, issue)`` for ``Issue`` and ``PullRequest`` (whose database id is the pull request's), ``(repo, issue,
        comment)``, ``(repo, issue, review)``, ``(repo, issue, review comment)`` (also for ``PullRequestReviewThread``,
        by the id of its first comment), ``(repo, release)``, ``(repo, release, asset)``, ``(repo, label)``,
        ``(repo, milestone)``; None when it does not exist (any more)."""
        with self.lock:
            found = self._nodes.get((kind, ident))
            if found is None or not self._still_there(kind, found):
                self._index_nodes()
                found = self._nodes.get((kind, ident))
            return found if found is not None and self._still_there(kind, found) else None

    def _still_there(self, kind: str, found: tuple) -> bool:
        if kind in ("User", "Organization"):
            return self.owners.get(found[0].login.lower()) is found[0]
        repo = found[0]
        if self.repos.get((repo.owner.login.lower(), repo.name.lower())) is not repo:
            return False
        if kind == "Repository":
            return True
        if kind in ("Release", "ReleaseAsset"):
            return any(r is found[1] for r in repo.releases) and (kind == "Release" or any(a is found[2] for a in found[1].assets))
        if kind == "Label":
            return any(label is found[1] for label in repo.labels)
        if kind == "Milestone":
            return any(m is found[1] for m in repo.milestones)
        issue = found[1]
        if repo.issues.get(issue.number) is not issue:
            return False
        if kind == "IssueComment":
            return any(c is found[2] for c in issue.comments)
        if kind == "PullRequestReview":
            return issue.pull is not None and any(r is found[2] for r in issue.pull.reviews)
        if kind in ("PullRequestReviewComment", "PullRequestReviewThread"):
            return issue.pull is not None and any(c is found[2] for c in issue.pull.review_comments)
        return kind == "Issue" or issue.pull is not None

    def _index_nodes(self) -> None:
        nodes: dict[tuple[str, int], tuple] = {}
        for owner in self.owners.values():
            nodes[(owner.type, owner.id)] = (owner,)
        for repo in self.repos.values():
            nodes[("Repository", repo.id)] = (repo,)
            for label in repo.labels:
                nodes[("Label", label.id)] = (repo, label)
            for milestone in repo.milestones:
                nodes[("Milestone", milestone.id)] = (repo, milestone)
            for release in repo.releases:
                nodes[("Release", release.id)] = (repo, release)
                for asset in release.assets:
                    nodes[("ReleaseAsset", asset.id)] = (repo, release, asset)
            for issue in repo.issues.values():
                nodes[("Issue", issue.id)] = (repo, issue)
                for comment in issue.comments:
                    nodes[("IssueComment", comment.id)] = (repo, issue, comment)
                if issue.pull is not None:
                    nodes[("PullRequest", issue.pull.id)] = (repo, issue)
                    for review in issue.pull.reviews:
                        nodes[("PullRequestReview", review.id)] = (repo, issue, review)
                    for review_comment in issue.pull.review_comments:
                        nodes[("PullRequestReviewComment", review_comment.id)] = (repo, issue, review_comment)
                        if review_comment.in_reply_to_id is None:
                            nodes[("PullRequestReviewThread", review_comment.id)] = (repo, issue, review_comment)
        self._nodes = nodes

    # repositories ----------------------------------------------------------------------------------

    def repo(self, owner: str, name: str) -> Repo | None:
        return self.repos.get((owner.lower(), name.lower()))

    def add_repo(self, owner: str, name: str, git_dir: str | None = None, *, owner_type: str = "Organization",
                 created_at: str | None = None, pushed_at: str | None = None, updated_at: str | None = None,
                 parent: Repo | None = None, empty: bool | None = None, **fields) -> Repo:
        """Register a repository; its bare git repository is ``git_dir`` (default ``root_dir/owner/name.git``,
        created empty if missing). ``empty`` defaults to whether the git repository has no refs."""
        with self.lock:
            owner_record = self.owner(owner) or self.add_owner(owner, owner_type)
            if git_dir is None:
                git_dir = os.path.join(self.root_dir, owner, name + ".git")
            if not os.path.isdir(git_dir):
                os.makedirs(os.path.dirname(git_dir), exist_ok=True)
                subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch", fields.get("default_branch", "main"), git_dir],
                               check=True, env=git_env())
            if empty is None:
                empty = not run_git(git_dir, "for-each-ref", "--count=1").stdout.strip()
            now = utc_iso()
            created = created_at or now
            fork = parent is not None or bool(fields.pop("fork", False))
            if fields.get("private") and "visibility" not in fields:
                fields["visibility"] = "private"
            repo = Repo(id=self.new_id(), owner=owner_record, name=name, git_dir=os.path.abspath(git_dir), created_at=created,
                        updated_at=updated_at or pushed_at or created, pushed_at=pushed_at or created, parent=parent,
                        fork=fork, empty=empty, size=_dir_size_kb(os.path.join(git_dir, "objects")), **fields)
            if repo.visibility != "public":
                repo.private = True
            self.repos[(owner.lower(), name.lower())] = repo
            if parent is not None:
                parent.forks_count += 1
            return repo

    def remove_repo(self, owner: str, name: str) -> Repo:
        """Delete a repository, as its owner does on GitHub: the API and git answer 404 from now on."""
        with self.lock:
            return self.repos.pop((owner.lower(), name.lower()))

    def refresh_git(self, repo: Repo, pushed_at: str | None = None) -> None:
        """After a push to ``repo.git_dir``: size, emptiness, pushed_at and updated_at."""
        with self.lock:
            repo.empty = not run_git(repo.git_dir, "for-each-ref", "--count=1").stdout.strip()
            repo.size = _dir_size_kb(os.path.join(repo.git_dir, "objects"))
            repo.pushed_at = pushed_at or utc_iso()
            repo.updated_at = max(repo.updated_at, repo.pushed_at)

    def create_wiki(self, repo: Repo) -> str:
        """Make the wiki of ``repo`` exist (what saving its first page on GitHub's web page does): an empty bare git
        repository with default branch ``master``, which pushes are accepted into from now on (unless ``repo.has_wiki`` is
        False: a disabled wiki answers 404 whether it exists or not). Returns its directory."""
        with self.lock:
            if not repo.wiki_exists:
                os.makedirs(os.path.dirname(repo.wiki_dir), exist_ok=True)
                subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch", "master", repo.wiki_dir], check=True,
                               capture_output=True, env=git_env())
            return repo.wiki_dir

    def add_label(self, repo: Repo, name: str, color: str = "ededed", description: str | None = None, default: bool = False,
                  created_at: str | None = None) -> Label:
        """A label of ``repo``; its creation time (GraphQL only) defaults to the repository's, so that fixtures stay the same."""
        with self.lock:
            label = Label(id=self.new_id(), name=name, color=color, description=description, default=default,
                          created_at=created_at or repo.created_at)
            repo.labels.append(label)
            return label

    def delete_label(self, repo: Repo, name: str) -> Label:
        """Delete a label, as on GitHub: it goes from the issues and pull requests that had it, whose ``updated_at`` stays."""
        with self.lock:
            label = next(label for label in repo.labels if label.name == name)
            repo.labels.remove(label)
            for issue in repo.issues.values():
                if name in issue.labels:
                    issue.labels.remove(name)
            return label

    def add_milestone(self, repo: Repo, title: str, creator: str, state: str = "open", description: str | None = None,
                      created_at: str | None = None, due_on: str | None = None) -> Milestone:
        with self.lock:
            when = created_at or utc_iso()
            milestone = Milestone(id=self.new_id(), number=len(repo.milestones) + 1, title=title, creator=creator, description=description,
                                  state=state, created_at=when, updated_at=when, due_on=due_on, closed_at=when if state == "closed" else None)
            repo.milestones.append(milestone)
            return milestone

    def _new_issue(self, repo: Repo, title: str, user: str, body: str | None, state: str, created_at: str | None,
                   closed_at: str | None, labels: t.Iterable[str], milestone: int | None) -> Issue:
        self.add_user(user)
        when = created_at or utc_iso()
        if state == "closed" and closed_at is None:
            closed_at = when
        issue = Issue(id=self.new_id(), number=repo.next_number, title=title, user=user, body=body, state=state,
                      created_at=when, updated_at=closed_at or when, closed_at=closed_at, labels=list(labels), milestone=milestone,
                      state_reason="completed" if state == "closed" else None)
        repo.next_number += 1
        repo.issues[issue.number] = issue
        repo.updated_at = max(repo.updated_at, issue.updated_at)
        return issue

    def add_issue(self, repo: Repo, title: str, user: str, body: str | None = None, state: str = "open", created_at: str | None = None,
                  closed_at: str | None = None, labels: t.Iterable[str] = (), milestone: int | None = None) -> Issue:
        with self.lock:
            return self._new_issue(repo, title, user, body, state, created_at, closed_at, labels, milestone)

    def add_pull(self, repo: Repo, title: str, user: str, head_ref: str, head_sha: str, base_ref: str, base_sha: str,
                 body: str | None = None, state: str = "open", merged: bool = False, created_at: str | None = None,
                 closed_at: str | None = None, labels: t.Iterable[str] = (), milestone: int | None = None, draft: bool = False) -> Issue:
        with self.lock:
            issue = self._new_issue(repo, title, user, body, state, created_at, closed_at, labels, milestone)
            issue.pull = PullInfo(id=self.new_id(), head_ref=head_ref, head_sha=head_sha, base_ref=base_ref, base_sha=base_sha, draft=draft,
                                  merged_at=issue.closed_at if merged else None, merge_commit_sha=head_sha if merged else None)
            return issue

    def _touch(self, repo: Repo, issue: Issue, when: str) -> None:
        issue.updated_at = max(issue.updated_at, when)
        repo.updated_at = max(repo.updated_at, when)

    def add_comment(self, repo: Repo, number: int, user: str, body: str, created_at: str | None = None) -> Comment:
        with self.lock:
            self.add_user(user)
            issue = repo.issues[number]
            when = created_at or utc_iso()
            comment = Comment(id=self.new_id(), issue_number=number, user=user, body=body, created_at=when, updated_at=when)
            issue.comments.append(comment)
            self._touch(repo, issue, when)
            return comment

    def edit_comment(self, repo: Repo, comment: Comment, body: str, editor: str | None = None, when: str | None = None) -> Comment:
        """Edit an issue (or pull request) comment. Like GitHub, this moves the comment's ``updated_at`` (and sets GraphQL's
        ``lastEditedAt`` and ``editor``) but not the ``updated_at`` of its issue or repository."""
        with self.lock:
            when = when or utc_iso()
            comment.body = body
            comment.updated_at = max(comment.updated_at, when)
            comment.last_edited_at = when
            comment.editor = editor or comment.user
            return comment

    def delete_comment(self, repo: Repo, comment: Comment) -> None:
        """Delete an issue (or pull request) comment; the issue's ``updated_at`` stays (GitHub records no edit of the issue)."""
        with self.lock:
            repo.issues[comment.issue_number].comments.remove(comment)

    def add_review(self, repo: Repo, number: int, user: str, state: str = "COMMENTED", body: str = "",
                   submitted_at: str | None = None) -> Review:
        with self.lock:
            self.add_user(user)
            issue = repo.issues[number]
            if issue.pull is None:
                raise ValueError("#%d of %s is not a pull request" % (number, repo.full_name))
            when = submitted_at or utc_iso()
            review = Review(id=self.new_id(), user=user, body=body, state=state, submitted_at=when, commit_id=issue.pull.head_sha)
            issue.pull.reviews.append(review)
            self._touch(repo, issue, when)
            return review

    def add_review_comment(self, repo: Repo, number: int, user: str, body: str, path: str, line: int = 1,
                           review: Review | None = None, in_reply_to: ReviewComment | None = None,
                           created_at: str | None = None) -> ReviewComment:
        """A review comment of pull request ``number``, in ``review``. Without one it gets a review of its own, as on GitHub,
        where every review comment belongs to a review: a single comment or a reply outside a review is a ``COMMENTED``
        review with an empty body, submitted with it."""
        with self.lock:
            self.add_user(user)
            issue = repo.issues[number]
            if issue.pull is None:
                raise ValueError("#%d of %s is not a pull request" % (number, repo.full_name))
            when = created_at or utc_iso()
            if review is None:
                review = Review(id=self.new_id(), user=user, body="", state="COMMENTED", submitted_at=when, commit_id=issue.pull.head_sha)
                issue.pull.reviews.append(review)
            comment = ReviewComment(id=self.new_id(), pull_number=number, review_id=review.id, user=user, body=body,
                                    path=path, line=line, commit_id=issue.pull.head_sha, created_at=when, updated_at=when,
                                    diff_hunk="@@ -%d,3 +%d,4 @@\n context\n+%s" % (line, line, body.splitlines()[0] if body else ""),
                                    in_reply_to_id=in_reply_to.id if in_reply_to else None)
            issue.pull.review_comments.append(comment)
            self._touch(repo, issue, when)
            return comment

    def add_release(self, repo: Repo, tag_name: str, name: str, author: str, body: str | None = None, draft: bool = False,
                    prerelease: bool = False, created_at: str | None = None, target_commitish: str | None = None) -> Release:
        with self.lock:
            self.add_user(author)
            when = created_at or utc_iso()
            release = Release(id=self.new_id(), tag_name=tag_name, name=name, author=author, body=body, draft=draft, prerelease=prerelease,
                              created_at=when, published_at=None if draft else when, target_commitish=target_commitish or repo.default_branch,
                              updated_at=when)
            repo.releases.append(release)
            return release

    def edit_release(self, repo: Repo, release: Release, when: str | None = None, **changes: t.Any) -> Release:
        """Edit a release (``name``, ``body``, ``prerelease``, ``draft``, ``tag_name``): only its ``updated_at`` moves, not the
        repository's. Publishing a draft sets ``published_at``."""
        with self.lock:
            when = when or utc_iso()
            for key, value in changes.items():
                if key not in ("name", "body", "prerelease", "draft", "tag_name"):
                    raise TypeError("edit_release() cannot change %r" % key)
                setattr(release, key, value)
            if not release.draft and release.published_at is None:
                release.published_at = when
            release.updated_at = max(release.updated_at, when)
            return release

    def add_asset(self, repo: Repo, release: Release, name: str, data: bytes, content_type: str = "application/octet-stream",
                  label: str | None = None, created_at: str | None = None) -> Asset:
        with self.lock:
            asset = Asset(id=self.new_id(), name=name, data=data, uploader=release.author, created_at=created_at or release.created_at,
                          content_type=content_type, label=label)
            release.assets.append(asset)
            self.assets[asset.id] = (repo, release, asset)
            return asset

    def add_lfs_object(self, repo: Repo, data: bytes) -> str:
        """Store ``data`` as a Git LFS object of ``repo`` (what ``git lfs push`` would upload); returns its oid (sha256).
        The repository's history refers to it with a pointer file, see :func:`lfs_pointer`."""
        oid = hashlib.sha256(data).hexdigest()
        with self.lock:
            repo.lfs_objects[oid] = bytes(data)
        return oid


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status: int, message: str, documentation_url: str | None = DOCS_URL, extra: dict | None = None,
                 headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.body: dict[str, t.Any] = {"message": message}
        if documentation_url:
            self.body["documentation_url"] = documentation_url
        if extra:
            self.body.update(extra)
        if documentation_url:
            self.body["status"] = str(status)
        self.headers = headers or []


def _not_found() -> ApiError:
    return ApiError(404, "Not Found")


def _request_id() -> str:
    """An ``X-GitHub-Request-Id`` the way GitHub writes them: ``D2A6:2F1C:3B2E5A6:3C7D8E9:65A1B2C3``."""
    return ":".join(secrets.token_hex(size).upper() for size in (2, 2, 4, 4, 4))


@dataclasses.dataclass
class _Injection:
    pattern: re.Pattern
    status: int
    count: int
    headers: list[tuple[str, str]]
    body: bytes | None
    method: str | None
    kind: str | None


@dataclasses.dataclass
class _GraphQLInjection:
    """What the next ``count`` GraphQL answers get instead (see :meth:`GitHubStandIn.inject_graphql`)."""
    mode: str  # "rate_limited", "partial", "timeout", "502" or "delay"
    count: int
    delay: float = 0.0
    path: list[str | int] | None = None  # "partial": the field of data to null
    error_type: str | None = None  # "partial": the type of the error entry
    message: str | None = None
    body_format: str = "html"  # "502": GitHub's HTML page or a JSON body
    reset_in: float | None = None  # "rate_limited": X-RateLimit-Reset this far ahead (default: the bucket's)


@dataclasses.dataclass
class App:
    """A GitHub App: its public key (JWTs signed with the private one authenticate it), the accounts it is installed on,
    and the installation tokens minted so far."""
    id: int
    slug: str
    name: str
    public_key: t.Any  # cryptography's RSAPublicKey
    installations: dict[str, int]  # account login (lower case) -> installation id
    token_lifetime: float
    permissions: dict[str, str]
    created_at: str
    minted: list[Token] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Reply:
    status: int
    payload: t.Any = None
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    raw: bytes | None = None  # a non-JSON body
    etag: bool = True


@dataclasses.dataclass
class _GitTarget:
    """What a ``/git/...`` URL refers to, and whether the request may have it (``status`` 0) or not."""
    status: int
    message: str
    repo: Repo | None = None
    git_dir: str | None = None
    suffix: str | None = None  # PATH_INFO below the git directory
    wiki: bool = False
    write: bool = False  # a push (git-receive-pack)


class _Ctx:
    """One REST request."""

    def __init__(self, standin: GitHubStandIn, handler: _Handler, method: str, prefix: str, path: str, query: list[tuple[str, str]],
                 token: Token | None, body: bytes = b""):
        self.standin = standin
        self.body = body
        self.handler = handler
        self.method = method
        self.prefix = prefix
        self.path = path
        self.query = query
        self.params = dict(query)
        self.token = token

    def param(self, name: str, default: str | None = None) -> str | None:
        value = self.params.get(name)
        return default if value in (None, "") else value

    def int_param(self, name: str, default: int) -> int:
        try:
            return int(self.params.get(name, ""))
        except ValueError:
            return default

    def page_url(self, page: int) -> str:
        query = [(k, v) for k, v in self.query if k != "page"] + [("page", str(page))]
        return "%s%s%s?%s" % (self.standin.base_url, self.prefix, self.path, urllib.parse.urlencode(query))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120
    wbufsize = 65536  # one write for headers and body, flushed after each request
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        return "GitHub.com"

    def log_message(self, format, *args) -> None:  # pylint: disable=redefined-builtin
        pass  # requests are recorded in GitHubStandIn.log, without credentials

    def do_GET(self) -> None:  # pylint: disable=invalid-name
        self.server.standin.handle(self, "GET")

    def do_HEAD(self) -> None:  # pylint: disable=invalid-name
        self.server.standin.handle(self, "HEAD")

    def do_POST(self) -> None:  # pylint: disable=invalid-name
        self.server.standin.handle(self, "POST")

    def do_PUT(self) -> None:  # pylint: disable=invalid-name
        self.server.standin.handle(self, "PUT")

    def do_PATCH(self) -> None:  # pylint: disable=invalid-name
        self.server.standin.handle(self, "PATCH")

    def do_DELETE(self) -> None:  # pylint: disable=invalid-name
        self.server.standin.handle(self, "DELETE")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], standin: GitHubStandIn):
        self.standin = standin
        super().__init__(address, _Handler)


def _read_body(handler: _Handler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        parts = []
        while True:
            line = handler.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline(65537)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def _parse_authorization(header: str | None) -> str | None:
    """The token in an Authorization header; "" for a header that carries none."""
    if not header:
        return None
    scheme, value = (header.strip().split(None, 1) + [""])[:2]
    scheme = scheme.lower()
    if scheme in ("token", "bearer"):
        return value.strip()
    if scheme == "basic":
        try:
            user, password = (base64.b64decode(value.strip()).decode("utf-8").split(":", 1) + [""])[:2]
        except (ValueError, UnicodeDecodeError):
            return ""
        # GitHub takes the token as the password (user:token, x-access-token:token) or, with the password
        # x-oauth-basic, as the user name (token:x-oauth-basic, as python-github-backup sends it).
        return user if password == "x-oauth-basic" else password or user
    return ""


def _b64url(text: str) -> bytes:
    """Base64url without padding (JWT), decoded; ValueError when it is not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _is_number(value: t.Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _etag_matches(header: str, etag: str) -> bool:
    wanted = etag[2:] if etag.startswith("W/") else etag
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or (candidate[2:] if candidate.startswith("W/") else candidate) == wanted:
            return True
    return False


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------

class GitHubStandIn:  # pylint: disable=too-many-public-methods
    """The GitHub REST and GraphQL APIs and git smart HTTP on 127.0.0.1, backed by a :class:`FakeGitHub`.

    ``root_dir`` is where :meth:`FakeGitHub.add_repo` puts repositories it is not given a path for (a temporary
    directory, removed by :meth:`stop`, when None). ``rate_limit`` is the default hourly limit of a token,
    ``anonymous_rate_limit`` that of requests without one (per client address), ``rate_limit_window`` the
    length of a rate-limit window in seconds; ``graphql_rate_limit`` the points per window of a token's GraphQL
    bucket (GitHub: 5,000 an hour). ``graphql=False`` makes ``/api/graphql`` answer 404, like a GitHub Enterprise
    Server without GraphQL. ``secondary_limits`` turns on GitHub's secondary rate limits (see
    :meth:`set_secondary_limits`); ``latency`` delays every answer by that many seconds (the attribute can be
    changed while the stand-in runs).
    """

    def __init__(self, root_dir: str | None = None, *, rate_limit: int = 5000, anonymous_rate_limit: int = 60,
                 rate_limit_window: float = 3600.0, port: int = 0, git_http_backend: str = GIT_HTTP_BACKEND,
                 graphql: bool = True, graphql_rate_limit: int = 5000, secondary_limits: bool = False, latency: float = 0.0):
        self._own_root = root_dir is None
        self.root_dir = os.path.abspath(root_dir or tempfile.mkdtemp(prefix="github-standin-"))
        self.github = FakeGitHub(self.root_dir)
        self.rate_limit = rate_limit
        self.anonymous_rate_limit = anonymous_rate_limit
        self.rate_limit_window = rate_limit_window
        self.git_http_backend = git_http_backend
        self.graphql = graphql
        self.graphql_rate_limit = graphql_rate_limit
        self.latency = latency
        # GitHub's secondary rate limits, per token (per client address without one); see set_secondary_limits().
        self.secondary_limits = secondary_limits
        self.secondary_concurrency = SECONDARY_CONCURRENCY
        self.secondary_rest_points = SECONDARY_REST_POINTS
        self.secondary_graphql_points = SECONDARY_GRAPHQL_POINTS
        self.secondary_window = SECONDARY_WINDOW
        self.secondary_limit_hits = 0  # requests answered 403 by a secondary limit (injected ones not counted)
        self._in_flight: dict[str, int] = {}
        self._spent: dict[tuple[str, str], collections.deque[tuple[float, int]]] = {}
        self._graphql_injections: list[_GraphQLInjection] = []
        self.apps: dict[int, App] = {}
        # Host name in the LFS download URLs; set it to "localhost" to put downloads on another host than the
        # API and git, as GitHub does (media.githubusercontent.com).
        self.lfs_host = LOOPBACK
        self.errors: list[str] = []  # tracebacks of requests the stand-in failed on (a bug in it)
        self.git_stderr: list[str] = []  # what git-http-backend wrote to stderr, newest last
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._log: list[RequestRecord] = []
        self._buckets: dict[str, RateBucket] = {}
        self._injections: list[_Injection] = []
        self._secret = secrets.token_bytes(16)
        self._routes: list[tuple[re.Pattern, t.Callable[..., _Reply]]] = [(re.compile(p), f) for p, f in self._route_table()]
        self._post_routes: list[tuple[re.Pattern, t.Callable[..., _Reply]]] = [
            (re.compile(r"^/orgs/([^/]+)/repos$"), self._r_create_org_repo), (re.compile(r"^/user/repos$"), self._r_create_user_repo)]
        self._lfs_pending: dict[tuple[int, str], int] = {}  # (repository id, oid) -> size announced by an upload batch request

    # lifecycle -------------------------------------------------------------------------------------

    def start(self) -> GitHubStandIn:
        if self._server is not None:
            return self
        self._server = _Server((LOOPBACK, self._requested_port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="github-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        if self._own_root:
            shutil.rmtree(self.root_dir, ignore_errors=True)

    def __enter__(self) -> GitHubStandIn:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # addresses -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the GitHub stand-in is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return "http://%s:%d" % (LOOPBACK, self.port)

    @property
    def api_url(self) -> str:
        return self.base_url + "/api"

    def git_url(self, owner: str, repo: str, wiki: bool = False) -> str:
        """The stand-in's clone URL of a repository (REST ``clone_url``): ``{base_url}/git/{owner}/{repo}.git``."""
        return "%s/git/%s/%s%s.git" % (self.base_url, owner, repo, ".wiki" if wiki else "")

    def web_git_url(self, owner: str, repo: str, wiki: bool = False) -> str:
        """GitHub's own clone URL of a repository, its web address plus ``.git`` (GraphQL ``url`` + ``.git``); served too."""
        return "%s/%s/%s%s.git" % (self.base_url, owner, repo, ".wiki" if wiki else "")

    # tokens and rate limits ------------------------------------------------------------------------

    @property
    def tokens(self) -> set[str]:
        return set(self.github.tokens)

    def add_token(self, token: str | None = None, login: str = "octocat", orgs: t.Iterable[str] | None = None,
                  rate_limit: int | None = None, graphql_rate_limit: int | None = None) -> str:
        """Make ``token`` (a new random one when None) valid for user ``login``; returns it. ``rate_limit`` and
        ``graphql_rate_limit``: its own limits of the REST and GraphQL buckets (None: the stand-in's defaults)."""
        token = token or "ghp_" + secrets.token_hex(18)
        self.github.add_token(token, login, orgs=orgs, rate_limit=rate_limit, graphql_rate_limit=graphql_rate_limit)
        return token

    def _bucket(self, key: str, limit: int) -> RateBucket:
        with self._state_lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = RateBucket(limit=limit, window=self.rate_limit_window)
            bucket.roll(time.time())
            return bucket

    def _bucket_for(self, token: Token | None, client: str = LOOPBACK) -> RateBucket:
        if token is None:
            return self._bucket("ip:" + client, self.anonymous_rate_limit)
        return self._bucket("token:" + token.token, token.rate_limit or self.rate_limit)

    def rate_limit_state(self, token: str | None = None) -> RateBucket:
        """A copy of the current rate-limit bucket of ``token`` (None: unauthenticated requests from 127.0.0.1)."""
        bucket = self._bucket_for(self.github.tokens[token] if token is not None else None)
        return dataclasses.replace(bucket)

    def exhaust_rate_limit(self, token: str | None, reset_in_seconds: float) -> None:
        """Use up the rate limit of ``token`` (None: unauthenticated) until ``reset_in_seconds`` from now."""
        bucket = self._bucket_for(self.github.tokens[token] if token is not None else None)
        with self._state_lock:
            bucket.used = bucket.limit
            bucket.reset = time.time() + reset_in_seconds

    def set_rate_limit(self, token: str | None, limit: int, window: float | None = None) -> None:
        """Change the limit (and window) of ``token``'s bucket, starting a fresh window."""
        record = self.github.tokens[token] if token is not None else None
        if record is not None:
            record.rate_limit = limit
        with self._state_lock:
            key = "token:" + token if token is not None else "ip:" + LOOPBACK
            self._buckets[key] = RateBucket(limit=limit, window=window or self.rate_limit_window)

    def reset_rate_limits(self) -> None:
        with self._state_lock:
            self._buckets.clear()

    # the GraphQL bucket: points (each query's cost) per window, apart from the REST bucket

    def _graphql_bucket(self, token: Token) -> RateBucket:
        with self._state_lock:
            key = "graphql:" + token.token
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = RateBucket(limit=token.graphql_rate_limit or self.graphql_rate_limit,
                                                         window=self.rate_limit_window, resource="graphql")
            bucket.roll(time.time())
            return bucket

    def graphql_rate_limit_state(self, token: str) -> RateBucket:
        """A copy of the current GraphQL bucket of ``token``."""
        return dataclasses.replace(self._graphql_bucket(self.github.tokens[token]))

    def set_graphql_rate_limit(self, token: str, limit: int, window: float | None = None) -> None:
        """Change the GraphQL limit (points per window) of ``token``, starting a fresh window."""
        record = self.github.tokens[token]
        record.graphql_rate_limit = limit
        with self._state_lock:
            self._buckets["graphql:" + token] = RateBucket(limit=limit, window=window or self.rate_limit_window, resource="graphql")

    def exhaust_graphql_rate_limit(self, token: str, reset_in_seconds: float) -> None:
        """Use up the GraphQL points of ``token`` until ``reset_in_seconds`` from now."""
        bucket = self._graphql_bucket(self.github.tokens[token])
        with self._state_lock:
            bucket.used = bucket.limit
            bucket.reset = time.time() + reset_in_seconds

    # secondary rate limits -------------------------------------------------------------------------

    def set_secondary_limits(self, enabled: bool = True, concurrency: int | None = None, rest_points: int | None = None,
                             graphql_points: int | None = None, window: float | None = None) -> None:
        """GitHub's secondary rate limits, per token (per client address without one): at most ``concurrency``
        concurrent REST and GraphQL requests (100), at most ``rest_points`` REST points (900) and ``graphql_points``
        GraphQL points (2,000) in a rolling ``window`` of seconds (60). A REST GET, HEAD or OPTIONS costs 1 point, any
        other method 5; a GraphQL query 1, a mutation 5. Over a limit: 403 with GitHub's message and ``Retry-After``
        (the seconds until the window has room), counted in :attr:`secondary_limit_hits`. Git, LFS and downloads are not
        counted. Changing the limits starts from a clean slate."""
        self.secondary_limits = enabled
        for name, value in (("secondary_concurrency", concurrency), ("secondary_rest_points", rest_points),
                            ("secondary_graphql_points", graphql_points), ("secondary_window", window)):
            if value is not None:
                setattr(self, name, value)
        with self._state_lock:
            self._spent.clear()

    def _secondary_key(self, token_value: str | None, client: str) -> str:
        token = self.github.lookup_token(token_value)
        return "token:" + token.token if token is not None else "ip:" + client

    def _secondary_admit(self, key: str, kind: str, method: str) -> int | None:
        """Count a request in flight under ``key``; the Retry-After seconds when a secondary limit refuses it (None: go on).
        A GraphQL request's points are taken later, once its operation is known (:meth:`_secondary_spend`)."""
        with self._state_lock:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            if self._in_flight[key] > self.secondary_concurrency:
                return 1
        if kind == "rest":
            return self._secondary_spend(key, "rest", 1 if method in ("GET", "HEAD", "OPTIONS") else 5)
        return None

    def _secondary_spend(self, key: str, resource: str, points: int) -> int | None:
        """Take ``points`` from the rolling window of ``key``; when they do not fit, the seconds until they would."""
        limit = self.secondary_rest_points if resource == "rest" else self.secondary_graphql_points
        now = time.time()
        with self._state_lock:
            spent = self._spent.setdefault((key, resource), collections.deque())
            while spent and spent[0][0] <= now - self.secondary_window:
                spent.popleft()
            total = sum(p for _when, p in spent)
            if total + points <= limit:
                spent.append((now, points))
                return None
            excess, freed = total + points - limit, 0
            for when, spent_points in spent:
                freed += spent_points
                if freed >= excess:
                    return max(1, math.ceil(when + self.secondary_window - now))
            return max(1, math.ceil(self.secondary_window))

    def _send_secondary_limit(self, handler: _Handler, method: str, kind: str, token_value: str | None, retry_after: int) -> int:
        with self._state_lock:
            self.secondary_limit_hits += 1
        request_id = _request_id()
        body = {"message": SECONDARY_RATE_LIMIT_MESSAGE % request_id,
                "documentation_url": SECONDARY_REST_DOCS if kind == "rest" else SECONDARY_GRAPHQL_DOCS}
        headers = [("Content-Type", "application/json; charset=utf-8"), ("X-GitHub-Request-Id", request_id),
                   ("Retry-After", str(retry_after))]
        token = self.github.lookup_token(token_value)
        if kind == "graphql" and token is not None:
            headers += self._graphql_bucket(token).headers()
        elif kind == "rest":
            headers += self._bucket_for(token, handler.client_address[0]).headers()
        self._send(handler, method, 403, json.dumps(body).encode(), headers)
        return 403

    # GitHub Apps -----------------------------------------------------------------------------------

    def add_app(self, app_id: int, key: t.Any, installations: dict[str, int] | None = None, token_lifetime: float = 3600.0,
                permissions: dict[str, str] | None = None, slug: str | None = None, name: str | None = None) -> App:
        """Register GitHub App ``app_id``. ``key``: its public key or its private key (PEM text or bytes, or a
        ``cryptography`` key object); JWTs signed RS256 with the private key authenticate it (``iss`` = the app id,
        ``exp`` in the future and at most 10 minutes after ``iat``). ``installations``: {account login: installation
        id}. ``token_lifetime``: seconds an installation token minted from now on works (GitHub: one hour).
        ``permissions`` of its installations (default: read contents, issues, metadata and pull requests)."""
        from cryptography.hazmat.primitives import serialization  # only GitHub App authentication needs it

        if isinstance(key, (str, bytes)):
            data = key.encode("ascii") if isinstance(key, str) else key
            if b"PRIVATE KEY" in data:
                public_key = serialization.load_pem_private_key(data, password=None).public_key()
            else:
                public_key = serialization.load_pem_public_key(data)
        elif hasattr(key, "public_key"):
            public_key = key.public_key()
        else:
            public_key = key
        app = App(id=int(app_id), slug=slug or "app-%d" % app_id, name=name or "App %d" % app_id, public_key=public_key,
                  installations={login.lower(): int(ident) for login, ident in (installations or {}).items()},
                  token_lifetime=float(token_lifetime), permissions=dict(permissions or DEFAULT_APP_PERMISSIONS), created_at=utc_iso())
        with self._state_lock:
            self.apps[app.id] = app
        return app

    def add_installation(self, app_id: int, account: str, installation_id: int) -> None:
        """Install app ``app_id`` on ``account`` (an organization or user login)."""
        with self._state_lock:
            self.apps[app_id].installations[account.lower()] = int(installation_id)

    def set_app_token_lifetime(self, app_id: int, seconds: float) -> None:
        """How long installation tokens of ``app_id`` minted from now on work (tokens already minted keep theirs)."""
        self.apps[app_id].token_lifetime = float(seconds)

    def app_tokens(self, app_id: int | None = None) -> list[Token]:
        """The installation tokens minted so far (of ``app_id``, or of every app), oldest first."""
        with self._state_lock:
            return [token for app in self.apps.values() if app_id is None or app.id == app_id for token in app.minted]

    def app_token_mints(self, app_id: int | None = None) -> int:
        """How many installation tokens were minted (``POST /app/installations/{id}/access_tokens`` answered 201)."""
        return len(self.app_tokens(app_id))

    # fault injection -------------------------------------------------------------------------------

    def inject(self, path_regex: str, status: int, count: int = 1, headers: dict[str, str] | None = None,
               body: t.Any = None, method: str | None = None, kind: str | None = None) -> None:
        """The next ``count`` requests whose path (with query) matches ``path_regex`` (re.search) get this answer
        instead. ``body``: dict/list (sent as JSON), str or bytes; default ``{"message": <reason>}``. REST
        answers below 500 carry the rate-limit headers (without using up the limit)."""
        if body is None:
            reason = http.server.BaseHTTPRequestHandler.responses.get(status, ("Error",))[0]
            body = {"message": reason}
        if isinstance(body, (dict, list)):
            raw = json.dumps(body).encode()
            header_list = [("Content-Type", "application/json; charset=utf-8")]
        else:
            raw = body.encode() if isinstance(body, str) else body
            header_list = [("Content-Type", "text/plain; charset=utf-8")]
        for name, value in (headers or {}).items():
            header_list = [(k, v) for k, v in header_list if k.lower() != name.lower()] + [(name, value)]
        with self._state_lock:
            self._injections.append(_Injection(re.compile(path_regex), status, count, header_list, raw, method, kind))

    def inject_secondary_rate_limit(self, path_regex: str = ".", retry_after: int = 1, count: int = 1, kind: str = "rest") -> None:
        """GitHub's secondary ("abuse") rate limit: 403, ``Retry-After`` (``kind="graphql"``: for ``/api/graphql``)."""
        self.inject(path_regex, 403, count=count, headers={"Retry-After": str(retry_after)}, kind=kind, body={
            "message": SECONDARY_RATE_LIMIT_MESSAGE % secrets.token_hex(8).upper(),
            "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api"
                                 "#about-secondary-rate-limits" if kind == "rest" else SECONDARY_GRAPHQL_DOCS,
        })

    def inject_graphql(self, mode: str, count: int = 1, *, delay: float = 0.0, path: list[str | int] | None = None,
                       error_type: str | None = None, message: str | None = None, body_format: str = "html",
                       reset_in: float | None = None) -> None:
        """The next ``count`` authenticated GraphQL requests are answered as GitHub does when things go wrong:

        * ``"rate_limited"``: 200 ``{"data": null, "errors": [{"type": "RATE_LIMITED", ...}]}`` with ``X-RateLimit-Remaining: 0``
          (and ``X-RateLimit-Reset`` ``reset_in`` seconds ahead, default the bucket's); nothing is charged;
        * ``"partial"``: the query runs (and is charged), then the field at ``path`` (keys of ``data``; default the first
          top-level field other than ``rateLimit``) is nulled and an ``errors`` entry added (``message``, default GitHub's
          timeout text; ``type`` ``error_type`` when given);
        * ``"timeout"``: 200 ``{"data": null, "errors": [{"message": "Something went wrong while executing your query. ..."}]}``;
        * ``"502"``: HTTP 502 with GitHub's HTML page ("Unicorn!", ``body_format="html"``) or ``{"message": "Server Error"}``
          (``body_format="json"``);
        * ``"delay"``: the answer as usual, ``delay`` seconds late.
        """
        if mode not in ("rate_limited", "partial", "timeout", "502", "delay"):
            raise ValueError("unknown GraphQL fault %r" % mode)
        with self._state_lock:
            self._graphql_injections.append(_GraphQLInjection(mode, count, delay, list(path) if path else None, error_type, message,
                                                              body_format, reset_in))

    def _take_graphql_injection(self) -> _GraphQLInjection | None:
        with self._state_lock:
            for injection in self._graphql_injections:
                if injection.count > 0:
                    injection.count -= 1
                    self._graphql_injections = [i for i in self._graphql_injections if i.count > 0]
                    return dataclasses.replace(injection)
        return None

    def clear_injections(self) -> None:
        with self._state_lock:
            self._injections.clear()
            self._graphql_injections.clear()

    def _take_injection(self, method: str, path: str, kind: str) -> _Injection | None:
        with self._state_lock:
            for injection in self._injections:
                if injection.count <= 0 or (injection.method and injection.method != method) or (injection.kind and injection.kind != kind):
                    continue
                if injection.pattern.search(path):
                    injection.count -= 1
                    self._injections = [i for i in self._injections if i.count > 0]
                    return injection
        return None

    # request log -----------------------------------------------------------------------------------

    @property
    def log(self) -> list[RequestRecord]:
        with self._state_lock:
            return list(self._log)

    def count(self, kind: str | None = "rest", status: int | None = None, path_regex: str | None = None, method: str | None = None) -> int:
        """How many logged requests match (None matches anything)."""
        pattern = re.compile(path_regex) if path_regex else None
        return sum(1 for r in self.log if (kind is None or r.kind == kind) and (status is None or r.status == status)
                   and (method is None or r.method == method) and (pattern is None or pattern.search(r.path)))

    def reset_log(self) -> None:
        with self._state_lock:
            self._log.clear()

    def _record(self, method: str, path: str, status: int, token: str | None, kind: str) -> None:
        if token:
            path = path.replace(token, fingerprint(token) or "")
        with self._state_lock:
            self._log.append(RequestRecord(method, path, status, fingerprint(token), kind, time.time()))

    # dispatch --------------------------------------------------------------------------------------

    def _git_path(self, path: str) -> tuple[str, str, str] | None:
        """(owner, repository name as written, path below it) of a git or LFS URL: ``/git/{owner}/{repo}[.git]/...`` or,
        as on GitHub, the web address of the repository plus ``.git``: ``/{owner}/{repo}.git/...``."""
        legacy = re.match(r"^/git/([^/]+)/([^/]+?)(/.*)?$", path)
        web = re.match(r"^/([^/]+)/([^/]+?\.git)(/.*)$", path)
        if legacy and web:  # an owner called "git": take the reading that names a repository
            def exists(owner: str, name: str) -> bool:
                name = urllib.parse.unquote(name)
                name = name[:-4] if name.endswith(".git") else name
                return self.github.repo(urllib.parse.unquote(owner), name) is not None or (
                    name.endswith(".wiki") and self.github.repo(urllib.parse.unquote(owner), name[:-5]) is not None)
            if exists(web.group(1), web.group(2)) and not exists(legacy.group(1), legacy.group(2)):
                legacy = None
        match = legacy or web
        if match is None:
            return None
        return match.group(1), match.group(2), match.group(3) or ""

    def _kind(self, path: str) -> str:
        if path.startswith("/_lfs/"):
            return "lfs"
        if path in ("/api/graphql", "/api/graphql/"):
            return "graphql"
        if path == "/api" or path.startswith("/api/"):
            return "rest"
        if path.startswith("/_downloads/"):
            return "download"
        target = self._git_path(path)
        if target is not None:
            return "lfs" if target[2].startswith("/info/lfs/") else "git"
        return "web"

    def handle(self, handler: _Handler, method: str) -> None:
        raw_path = handler.path
        kind = self._kind(urllib.parse.urlsplit(raw_path).path)
        token = _parse_authorization(handler.headers.get("Authorization"))
        slot: str | None = None
        try:
            body = _read_body(handler)
            retry_after = None
            if self.secondary_limits and kind in ("rest", "graphql"):
                slot = self._secondary_key(token, handler.client_address[0])
                retry_after = self._secondary_admit(slot, kind, method)
            if self.latency > 0:
                time.sleep(self.latency)
            injection = self._take_injection(method, raw_path, kind)
            if injection is not None:
                self._send_injection(handler, method, injection, kind, token)
                status = injection.status
            elif retry_after is not None:
                status = self._send_secondary_limit(handler, method, kind, token, retry_after)
            elif kind == "git":
                status = self._handle_git(handler, method, raw_path, token, body)
            elif kind == "lfs":
                status = self._handle_lfs(handler, method, raw_path, token, body)
            elif kind == "rest":
                status = self._handle_rest(handler, method, raw_path, token, body)
            elif kind == "graphql":
                status = self._handle_graphql(handler, method, token, body, slot)
            else:
                status = self._handle_web(handler, method, raw_path, token, kind)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
            status = 499
        except Exception:  # pylint: disable=broad-except
            self.errors.append(traceback.format_exc())
            handler.close_connection = True
            status = 500
            with contextlib.suppress(OSError):
                self._send(handler, method, 500, json.dumps({"message": "Server Error"}).encode(),
                           [("Content-Type", "application/json; charset=utf-8")])
        finally:
            if slot is not None:
                with self._state_lock:
                    self._in_flight[slot] -= 1
        self._record(method, raw_path, status, token, kind)

    def _send(self, handler: _Handler, method: str, status: int, body: bytes | None, headers: list[tuple[str, str]]) -> None:
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        if status != 304:
            handler.send_header("Content-Length", str(len(body or b"")))
        handler.end_headers()
        if body and method != "HEAD" and status != 304:
            handler.wfile.write(body)

    def _send_injection(self, handler: _Handler, method: str, injection: _Injection, kind: str, token: str | None) -> None:
        headers = list(injection.headers)
        if kind == "rest" and injection.status < 500:
            record = self.github.lookup_token(token)
            headers = self._bucket_for(record, handler.client_address[0]).headers() + headers
        elif kind == "graphql" and injection.status < 500 and self.github.lookup_token(token) is not None:
            headers = self._graphql_bucket(self.github.lookup_token(token)).headers() + headers
        if kind in ("git", "lfs") and injection.status == 401:
            headers.append(("WWW-Authenticate", 'Basic realm="GitHub"'))
        self._send(handler, method, injection.status, injection.body, headers)

    # REST ------------------------------------------------------------------------------------------

    def _handle_rest(self, handler: _Handler, method: str, raw_path: str, token_value: str | None, body: bytes = b"") -> int:
        split = urllib.parse.urlsplit(raw_path)
        path = split.path
        prefix = "/api/v3" if path == "/api/v3" or path.startswith("/api/v3/") else "/api"
        path = path[len(prefix):] or "/"
        if len(path) > 1:
            path = path.rstrip("/")
        query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        client = handler.client_address[0]
        headers = [("Content-Type", "application/json; charset=utf-8"), ("X-GitHub-Media-Type", "github.v3; format=json"),
                   ("X-GitHub-Api-Version-Selected", "2022-11-28"), ("X-GitHub-Request-Id", secrets.token_hex(8).upper()),
                   ("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding"),
                   ("Access-Control-Expose-Headers", "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, "
                    "X-RateLimit-Remaining, X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset")]
        if APP_ROUTE.match(path):
            return self._handle_app(handler, method, path, token_value, body, headers)
        token: Token | None = None
        if token_value is not None:
            token = self.github.lookup_token(token_value)
            if token is None:
                error = ApiError(401, "Bad credentials")
                bucket = self._bucket_for(None, client)
                self._send(handler, method, 401, json.dumps(error.body).encode(), headers + bucket.headers())
                return 401
            headers.append(("X-OAuth-Scopes", token.scopes))
            headers.append(("X-Accepted-OAuth-Scopes", "repo"))
        headers.append(("Cache-Control", "private, max-age=60, s-maxage=60" if token else "public, max-age=60, s-maxage=60"))
        ctx = _Ctx(self, handler, method, prefix, path, query, token, body)
        try:
            if method in ("GET", "HEAD"):
                reply = self._route(ctx, self._routes)
            elif method == "POST":
                reply = self._route(ctx, self._post_routes)
            else:
                raise _not_found()
        except ApiError as exc:
            reply = _Reply(exc.status, exc.body, exc.headers, etag=False)
        body = reply.raw if reply.raw is not None else (json.dumps(reply.payload, indent=None).encode() if reply.payload is not None else b"")
        headers.extend(reply.headers)
        if path == "/rate_limit":  # does not count against the rate limit
            self._send(handler, method, reply.status, body, headers)
            return reply.status
        bucket = self._bucket_for(token, client)
        if reply.status == 200 and reply.etag:
            etag = 'W/"%s"' % hashlib.sha256(body).hexdigest()
            headers.append(("ETag", etag))
            if _etag_matches(handler.headers.get("If-None-Match", ""), etag):
                self._send(handler, method, 304, None, [h for h in headers if h[0] != "Content-Type"] + bucket.headers())
                return 304
        with self._state_lock:
            if bucket.used >= bucket.limit:
                exhausted = True
            else:
                exhausted = False
                bucket.used += 1
        if exhausted:
            if token is None:
                message = ("API rate limit exceeded for %s. (But here's the good news: Authenticated requests get a higher rate limit. "
                           "Check out the documentation for more details.)" % client)
            else:
                owner = self.github.owner(token.login)
                message = "API rate limit exceeded for user ID %d." % (owner.id if owner else 0)
            error = ApiError(403, message, "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
            kept = [h for h in headers if h[0] not in ("ETag", "Link", "Location")]
            self._send(handler, method, 403, json.dumps(error.body).encode(), kept + bucket.headers())
            return 403
        self._send(handler, method, reply.status, body, headers + bucket.headers())
        return reply.status

    @staticmethod
    def _route(ctx: _Ctx, routes: list[tuple[re.Pattern, t.Callable[..., _Reply]]]) -> _Reply:
        for pattern, func in routes:
            match = pattern.match(ctx.path)
            if match:
                return func(ctx, *match.groups())
        raise _not_found()

    def _route_table(self) -> list[tuple[str, t.Callable[..., _Reply]]]:
        repo = r"^/repos/([^/]+)/([^/]+)"
        return [
            (r"^/$", self._r_root),
            (r"^/rate_limit$", self._r_rate_limit),
            (r"^/user$", self._r_user),
            (r"^/installation/repositories$", self._r_installation_repos),
            (r"^/user/repos$", self._r_user_repos),
            (r"^/user/orgs$", self._r_user_orgs),
            (r"^/users/([^/]+)$", self._r_users),
            (r"^/users/([^/]+)/repos$", self._r_users_repos),
            (r"^/orgs/([^/]+)$", self._r_org),
            (r"^/orgs/([^/]+)/repos$", self._r_org_repos),
            (repo + r"$", self._r_repo),
            (repo + r"/issues$", self._r_issues),
            (repo + r"/issues/comments$", self._r_repo_issue_comments),
            (repo + r"/issues/(\d+)$", self._r_issue),
            (repo + r"/issues/(\d+)/comments$", self._r_issue_comments),
            (repo + r"/pulls$", self._r_pulls),
            (repo + r"/pulls/comments$", self._r_repo_review_comments),
            (repo + r"/pulls/(\d+)$", self._r_pull),
            (repo + r"/pulls/(\d+)/reviews$", self._r_reviews),
            (repo + r"/pulls/(\d+)/comments$", self._r_pull_review_comments),
            (repo + r"/releases$", self._r_releases),
            (repo + r"/releases/assets/(\d+)$", self._r_asset),
            (repo + r"/releases/(\d+)$", self._r_release),
            (repo + r"/releases/(\d+)/assets$", self._r_release_assets),
            (repo + r"/labels$", self._r_labels),
            (repo + r"/milestones$", self._r_milestones),
            (repo + r"/branches$", self._r_branches),
            (repo + r"/tags$", self._r_tags),
            (repo + r"/commits$", self._r_commits),
            (repo + r"/topics$", self._r_topics),
        ]

    # helpers for routes

    def _paginate(self, ctx: _Ctx, items: list, render: t.Callable[[t.Any], t.Any] | None = None, total: int | None = None) -> _Reply:
        """One page of ``items`` (all items, or the page's already when ``total`` is given) with GitHub's Link header."""
        per_page, page = self._page_params(ctx)
        if total is None:
            total = len(items)
            items = items[(page - 1) * per_page:page * per_page]
        page_items = [render(i) for i in items] if render else list(items)
        return _Reply(200, page_items, self._link_header(ctx, page, per_page, total))

    @staticmethod
    def _page_params(ctx: _Ctx) -> tuple[int, int]:
        per_page = ctx.int_param("per_page", DEFAULT_PER_PAGE)
        per_page = DEFAULT_PER_PAGE if per_page < 1 else min(per_page, MAX_PER_PAGE)
        return per_page, max(1, ctx.int_param("page", 1))

    @staticmethod
    def _link_header(ctx: _Ctx, page: int, per_page: int, total: int) -> list[tuple[str, str]]:
        last = max(1, math.ceil(total / per_page))
        links = []
        if page > 1:
            links.append((page - 1, "prev"))
        if page < last:
            links.append((page + 1, "next"))
            links.append((last, "last"))
        if page > 1:
            links.append((1, "first"))
        if not links:
            return []
        return [("Link", ", ".join('<%s>; rel="%s"' % (ctx.page_url(p), rel) for p, rel in links))]

    def _resolve_repo(self, ctx: _Ctx, owner: str, name: str) -> Repo:
        with self.github.lock:
            repo = self.github.repo(urllib.parse.unquote(owner), urllib.parse.unquote(name))
        if repo is None or not self.github.can_read(ctx.token, repo):
            raise _not_found()
        if repo.dmca:
            raise ApiError(451, "Repository access blocked", documentation_url=None, extra={"block": {
                "reason": "dmca", "created_at": "2023-01-01T00:00:00Z",
                "html_url": "https://github.com/github/dmca/blob/master/2023/01/2023-01-01-%s.md" % repo.owner.login.lower()}})
        if repo.disabled:
            raise ApiError(403, "Repository access blocked", documentation_url=None, extra={"block": {"reason": "unavailable"}})
        return repo

    def _issues_enabled(self, repo: Repo) -> None:
        if not repo.has_issues:
            raise ApiError(410, "Issues are disabled for this repo", "https://docs.github.com/v3/issues/")

    def _owner_or_404(self, login: str) -> Owner:
        owner = self.github.owner(urllib.parse.unquote(login))
        if owner is None:
            raise _not_found()
        return owner

    @staticmethod
    def _sorted(items: list, key: t.Callable[[t.Any], t.Any], descending: bool) -> list:
        return sorted(items, key=key, reverse=descending)

    # JSON renderers

    def _user_json(self, login: str | Owner) -> dict:
        owner = login if isinstance(login, Owner) else (self.github.owner(login) or self.github.add_user(login))
        api, web = self.api_url, self.base_url
        name = owner.login
        return {
            "login": name, "id": owner.id, "node_id": _node_id("Organization" if owner.type == "Organization" else "User", owner.id),
            "avatar_url": "%s/avatars/u/%d?v=4" % (web, owner.id), "gravatar_id": "", "url": "%s/users/%s" % (api, name),
            "html_url": "%s/%s" % (web, name), "followers_url": "%s/users/%s/followers" % (api, name),
            "repos_url": "%s/users/%s/repos" % (api, name), "organizations_url": "%s/users/%s/orgs" % (api, name),
            "type": owner.type, "site_admin": False,
        }

    def _owner_detail_json(self, ctx: _Ctx, owner: Owner) -> dict:
        repos = [r for r in self.github.repos.values() if r.owner is owner]
        data = self._user_json(owner)
        data.update({"name": owner.name or owner.login, "company": None, "blog": "", "location": None, "email": None,
                     "bio" if owner.type == "User" else "description": owner.description,
                     "public_repos": sum(1 for r in repos if not r.private), "public_gists": 0, "followers": 0, "following": 0,
                     "created_at": owner.created_at, "updated_at": owner.updated_at})
        if owner.type == "Organization":
            data.update({"url": "%s/orgs/%s" % (self.api_url, owner.login), "repos_url": "%s/orgs/%s/repos" % (self.api_url, owner.login),
                         "is_verified": False, "has_organization_projects": True, "has_repository_projects": True, "archived_at": None})
        if self.github.is_member(ctx.token, owner):
            private = sum(1 for r in repos if r.private)
            data.update({"total_private_repos": private, "owned_private_repos": private})
        return data

    def _repo_json(self, ctx: _Ctx, repo: Repo, full: bool = False) -> dict:
        api = "%s/repos/%s" % (self.api_url, repo.full_name)
        html = "%s/%s" % (self.base_url, repo.full_name)
        open_count = sum(1 for i in repo.issues.values() if i.state == "open")
        data = {
            "id": repo.id, "node_id": _node_id("Repository", repo.id), "name": repo.name, "full_name": repo.full_name,
            "private": repo.private, "owner": self._user_json(repo.owner), "html_url": html, "description": repo.description,
            "fork": repo.fork, "url": api, "forks_url": api + "/forks", "teams_url": api + "/teams", "hooks_url": api + "/hooks",
            "issue_events_url": api + "/issues/events{/number}", "events_url": api + "/events", "tags_url": api + "/tags",
            "branches_url": api + "/branches{/branch}", "languages_url": api + "/languages", "contributors_url": api + "/contributors",
            "commits_url": api + "/commits{/sha}", "git_refs_url": api + "/git/refs{/sha}", "comments_url": api + "/comments{/number}",
            "issue_comment_url": api + "/issues/comments{/number}", "contents_url": api + "/contents/{+path}",
            "issues_url": api + "/issues{/number}", "pulls_url": api + "/pulls{/number}", "milestones_url": api + "/milestones{/number}",
            "labels_url": api + "/labels{/name}", "releases_url": api + "/releases{/id}", "deployments_url": api + "/deployments",
            "created_at": repo.created_at, "updated_at": repo.updated_at, "pushed_at": repo.pushed_at,
            "git_url": "git://%s:%d/%s.git" % (LOOPBACK, self.port, repo.full_name),
            "ssh_url": "git@%s:%s.git" % (LOOPBACK, repo.full_name),
            "clone_url": self.web_git_url(repo.owner.login, repo.name), "svn_url": html, "homepage": repo.homepage, "size": repo.size,
            "stargazers_count": repo.stargazers_count, "watchers_count": repo.stargazers_count, "language": repo.language,
            "has_issues": repo.has_issues, "has_projects": repo.has_projects, "has_downloads": repo.has_downloads,
            "has_wiki": repo.has_wiki, "has_pages": False, "has_discussions": repo.has_discussions, "forks_count": repo.forks_count,
            "mirror_url": None, "archived": repo.archived, "disabled": repo.disabled, "open_issues_count": open_count, "license": None,
            "allow_forking": True, "is_template": False, "web_commit_signoff_required": False, "topics": list(repo.topics),
            "visibility": repo.visibility, "forks": repo.forks_count, "open_issues": open_count, "watchers": repo.stargazers_count,
            "default_branch": repo.default_branch,
        }
        if ctx.token is not None:
            member = self.github.is_member(ctx.token, repo.owner)
            data["permissions"] = {"admin": member, "maintain": member, "push": member, "triage": member, "pull": True}
        if full:
            data.update({"temp_clone_token": "" if repo.private else None, "network_count": repo.forks_count, "subscribers_count": 1})
            if repo.owner.type == "Organization":
                data["organization"] = self._user_json(repo.owner)
            if repo.parent is not None:
                root = repo.parent
                while root.parent is not None:
                    root = root.parent
                data["parent"] = self._repo_json(ctx, repo.parent)
                data["source"] = self._repo_json(ctx, root)
        return data

    def _label_json(self, repo: Repo, label: Label) -> dict:
        return {"id": label.id, "node_id": _node_id("Label", label.id),
                "url": "%s/repos/%s/labels/%s" % (self.api_url, repo.full_name, urllib.parse.quote(label.name)),
                "name": label.name, "color": label.color, "default": label.default, "description": label.description}

    def _milestone_json(self, repo: Repo, milestone: Milestone) -> dict:
        issues = [i for i in repo.issues.values() if i.milestone == milestone.number]
        api = "%s/repos/%s/milestones/%d" % (self.api_url, repo.full_name, milestone.number)
        return {"url": api, "html_url": "%s/%s/milestone/%d" % (self.base_url, repo.full_name, milestone.number), "labels_url": api + "/labels",
                "id": milestone.id, "node_id": _node_id("Milestone", milestone.id), "number": milestone.number, "title": milestone.title,
                "description": milestone.description, "creator": self._user_json(milestone.creator),
                "open_issues": sum(1 for i in issues if i.state == "open"), "closed_issues": sum(1 for i in issues if i.state == "closed"),
                "state": milestone.state, "created_at": milestone.created_at, "updated_at": milestone.updated_at, "due_on": milestone.due_on,
                "closed_at": milestone.closed_at}

    def _association(self, repo: Repo, login: str) -> str:
        return self.github.association(repo, login)

    @staticmethod
    def _reactions(url: str) -> dict:
        return {"url": url + "/reactions", "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0, "confused": 0, "heart": 0,
                "rocket": 0, "eyes": 0}

    def _issue_json(self, repo: Repo, issue: Issue) -> dict:
        api = "%s/repos/%s" % (self.api_url, repo.full_name)
        html = "%s/%s/%s/%d" % (self.base_url, repo.full_name, "pull" if issue.pull else "issues", issue.number)
        labels = {label.name: label for label in repo.labels}
        milestones = {m.number: m for m in repo.milestones}
        url = "%s/issues/%d" % (api, issue.number)
        data = {
            "url": url, "repository_url": api, "labels_url": url + "/labels{/name}", "comments_url": url + "/comments",
            "events_url": url + "/events", "html_url": html, "id": issue.id, "node_id": _node_id("Issue", issue.id), "number": issue.number,
            "title": issue.title, "user": self._user_json(issue.user),
            "labels": [self._label_json(repo, labels[n]) for n in issue.labels if n in labels], "state": issue.state, "locked": issue.locked,
            "assignee": self._user_json(issue.assignees[0]) if issue.assignees else None,
            "assignees": [self._user_json(a) for a in issue.assignees],
            "milestone": self._milestone_json(repo, milestones[issue.milestone]) if issue.milestone in milestones else None,
            "comments": len(issue.comments), "created_at": issue.created_at, "updated_at": issue.updated_at, "closed_at": issue.closed_at,
            "author_association": self._association(repo, issue.user), "active_lock_reason": None, "body": issue.body,
            "closed_by": None, "reactions": self._reactions(url), "timeline_url": url + "/timeline", "performed_via_github_app": None,
            "state_reason": issue.state_reason,
        }
        if issue.pull is not None:
            data["draft"] = issue.pull.draft
            data["pull_request"] = {"url": "%s/pulls/%d" % (api, issue.number), "html_url": html, "diff_url": html + ".diff",
                                    "patch_url": html + ".patch", "merged_at": issue.pull.merged_at}
        return data

    def _pull_json(self, ctx: _Ctx, repo: Repo, issue: Issue) -> dict:
        pull = issue.pull
        if pull is None:
            raise _not_found()
        api = "%s/repos/%s" % (self.api_url, repo.full_name)
        url = "%s/pulls/%d" % (api, issue.number)
        html = "%s/%s/pull/%d" % (self.base_url, repo.full_name, issue.number)
        labels = {label.name: label for label in repo.labels}
        milestones = {m.number: m for m in repo.milestones}
        repo_json = self._repo_json(ctx, repo)

        def side(ref: str, sha: str) -> dict:
            return {"label": "%s:%s" % (repo.owner.login, ref), "ref": ref, "sha": sha, "user": self._user_json(repo.owner), "repo": repo_json}

        return {
            "url": url, "id": pull.id, "node_id": _node_id("PullRequest", pull.id), "html_url": html, "diff_url": html + ".diff",
            "patch_url": html + ".patch", "issue_url": "%s/issues/%d" % (api, issue.number), "number": issue.number, "state": issue.state,
            "locked": issue.locked, "title": issue.title, "user": self._user_json(issue.user), "body": issue.body,
            "created_at": issue.created_at, "updated_at": issue.updated_at, "closed_at": issue.closed_at, "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha, "assignee": self._user_json(issue.assignees[0]) if issue.assignees else None,
            "assignees": [self._user_json(a) for a in issue.assignees], "requested_reviewers": [], "requested_teams": [],
            "labels": [self._label_json(repo, labels[n]) for n in issue.labels if n in labels],
            "milestone": self._milestone_json(repo, milestones[issue.milestone]) if issue.milestone in milestones else None,
            "draft": pull.draft, "commits_url": url + "/commits", "review_comments_url": url + "/comments",
            "review_comment_url": api + "/pulls/comments{/number}", "comments_url": "%s/issues/%d/comments" % (api, issue.number),
            "statuses_url": "%s/statuses/%s" % (api, pull.head_sha), "head": side(pull.head_ref, pull.head_sha),
            "base": side(pull.base_ref, pull.base_sha),
            "_links": {"self": {"href": url}, "html": {"href": html}, "issue": {"href": "%s/issues/%d" % (api, issue.number)},
                       "comments": {"href": "%s/issues/%d/comments" % (api, issue.number)}, "review_comments": {"href": url + "/comments"},
                       "commits": {"href": url + "/commits"}},
            "author_association": self._association(repo, issue.user), "auto_merge": None, "active_lock_reason": None,
        }

    def _comment_json(self, repo: Repo, comment: Comment) -> dict:
        api = "%s/repos/%s" % (self.api_url, repo.full_name)
        issue = repo.issues[comment.issue_number]
        url = "%s/issues/comments/%d" % (api, comment.id)
        return {"url": url, "html_url": "%s/%s/%s/%d#issuecomment-%d" % (self.base_url, repo.full_name, "pull" if issue.pull else "issues",
                                                                         comment.issue_number, comment.id),
                "issue_url": "%s/issues/%d" % (api, comment.issue_number), "id": comment.id, "node_id": _node_id("IssueComment", comment.id),
                "user": self._user_json(comment.user), "created_at": comment.created_at, "updated_at": comment.updated_at,
                "author_association": self._association(repo, comment.user), "body": comment.body, "reactions": self._reactions(url),
                "performed_via_github_app": None}

    def _review_json(self, repo: Repo, number: int, review: Review) -> dict:
        pr_url = "%s/repos/%s/pulls/%d" % (self.api_url, repo.full_name, number)
        html = "%s/%s/pull/%d#pullrequestreview-%d" % (self.base_url, repo.full_name, number, review.id)
        return {"id": review.id, "node_id": _node_id("PullRequestReview", review.id), "user": self._user_json(review.user),
                "body": review.body, "state": review.state, "html_url": html, "pull_request_url": pr_url,
                "author_association": self._association(repo, review.user),
                "_links": {"html": {"href": html}, "pull_request": {"href": pr_url}}, "submitted_at": review.submitted_at,
                "commit_id": review.commit_id}

    def _review_comment_json(self, repo: Repo, comment: ReviewComment) -> dict:
        api = "%s/repos/%s" % (self.api_url, repo.full_name)
        url = "%s/pulls/comments/%d" % (api, comment.id)
        html = "%s/%s/pull/%d#discussion_r%d" % (self.base_url, repo.full_name, comment.pull_number, comment.id)
        pr_url = "%s/pulls/%d" % (api, comment.pull_number)
        data = {"url": url, "pull_request_review_id": comment.review_id, "id": comment.id,
                "node_id": _node_id("PullRequestReviewComment", comment.id), "diff_hunk": comment.diff_hunk, "path": comment.path,
                "position": comment.line, "original_position": comment.line, "commit_id": comment.commit_id,
                "original_commit_id": comment.commit_id, "user": self._user_json(comment.user), "body": comment.body,
                "created_at": comment.created_at, "updated_at": comment.updated_at, "html_url": html, "pull_request_url": pr_url,
                "author_association": self._association(repo, comment.user),
                "_links": {"self": {"href": url}, "html": {"href": html}, "pull_request": {"href": pr_url}},
                "reactions": self._reactions(url), "start_line": None, "original_start_line": None, "start_side": None,
                "line": comment.line, "original_line": comment.line, "side": "RIGHT", "subject_type": "line"}
        if comment.in_reply_to_id is not None:
            data["in_reply_to_id"] = comment.in_reply_to_id
        return data

    def _asset_json(self, repo: Repo, release: Release, asset: Asset) -> dict:
        return {"url": "%s/repos/%s/releases/assets/%d" % (self.api_url, repo.full_name, asset.id), "id": asset.id,
                "node_id": _node_id("ReleaseAsset", asset.id), "name": asset.name, "label": asset.label,
                "uploader": self._user_json(asset.uploader), "content_type": asset.content_type, "state": "uploaded",
                "size": len(asset.data), "digest": "sha256:" + hashlib.sha256(asset.data).hexdigest(),
                "download_count": asset.download_count, "created_at": asset.created_at, "updated_at": asset.created_at,
                "browser_download_url": "%s/%s/releases/download/%s/%s" % (self.base_url, repo.full_name,
                                                                           urllib.parse.quote(release.tag_name), urllib.parse.quote(asset.name))}

    def _release_json(self, repo: Repo, release: Release) -> dict:
        api = "%s/repos/%s" % (self.api_url, repo.full_name)
        url = "%s/releases/%d" % (api, release.id)
        return {"url": url, "assets_url": url + "/assets",
                "upload_url": "%s/uploads/repos/%s/releases/%d/assets{?name,label}" % (self.base_url, repo.full_name, release.id),
                "html_url": "%s/%s/releases/tag/%s" % (self.base_url, repo.full_name, urllib.parse.quote(release.tag_name)),
                "id": release.id, "author": self._user_json(release.author), "node_id": _node_id("Release", release.id),
                "tag_name": release.tag_name, "target_commitish": release.target_commitish, "name": release.name, "draft": release.draft,
                "prerelease": release.prerelease, "created_at": release.created_at, "published_at": release.published_at,
                "updated_at": release.updated_at or release.created_at,
                "assets": [self._asset_json(repo, release, a) for a in release.assets],
                "tarball_url": "%s/tarball/%s" % (api, release.tag_name), "zipball_url": "%s/zipball/%s" % (api, release.tag_name),
                "body": release.body}

    # routes: accounts

    def _r_root(self, ctx: _Ctx) -> _Reply:
        del ctx
        return _Reply(200, {"current_user_url": self.api_url + "/user", "organization_url": self.api_url + "/orgs/{org}",
                            "organization_repositories_url": self.api_url + "/orgs/{org}/repos{?type,page,per_page,sort}",
                            "rate_limit_url": self.api_url + "/rate_limit", "repository_url": self.api_url + "/repos/{owner}/{repo}",
                            "user_url": self.api_url + "/users/{user}",
                            "user_repositories_url": self.api_url + "/users/{user}/repos{?type,page,per_page,sort}"})

    def _r_rate_limit(self, ctx: _Ctx) -> _Reply:
        bucket = self._bucket_for(ctx.token, ctx.handler.client_address[0])
        core = {"limit": bucket.limit, "used": min(bucket.used, bucket.limit), "remaining": bucket.remaining,
                "reset": int(math.ceil(bucket.reset)), "resource": "core"}
        later = int(time.time()) + 3600

        def other(limit: int, resource: str) -> dict:
            return {"limit": limit, "used": 0, "remaining": limit, "reset": later, "resource": resource}

        graphql = other(0, "graphql")
        if ctx.token is not None:
            state = self._graphql_bucket(ctx.token)
            graphql = {"limit": state.limit, "used": min(state.used, state.limit), "remaining": state.remaining,
                       "reset": int(math.ceil(state.reset)), "resource": "graphql"}
        return _Reply(200, {"resources": {"core": core, "search": other(30, "search"), "graphql": graphql,
                                          "integration_manifest": other(5000, "integration_manifest"),
                                          "code_search": other(10, "code_search")}, "rate": core}, etag=False)

    def _r_user(self, ctx: _Ctx) -> _Reply:
        if ctx.token is None:
            raise ApiError(401, "Requires authentication", "https://docs.github.com/rest/users/users#get-the-authenticated-user")
        if ctx.token.installation_id is not None:
            raise ApiError(403, "Resource not accessible by integration", "https://docs.github.com/rest/users/users#get-the-authenticated-user")
        with self.github.lock:
            owner = self.github.owner(ctx.token.login) or self.github.add_user(ctx.token.login)
            data = self._owner_detail_json(ctx, owner)
        data.update({"private_gists": 0, "disk_usage": 0, "collaborators": 0, "two_factor_authentication": True,
                     "plan": {"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000}})
        return _Reply(200, data)

    def _repo_sort(self, ctx: _Ctx, repos: list[Repo], default_sort: str) -> list[Repo]:
        sort = ctx.param("sort", default_sort)
        direction = ctx.param("direction", "asc" if sort == "full_name" else "desc")
        keys = {"created": lambda r: (r.created_at, r.id), "updated": lambda r: (r.updated_at, r.id),
                "pushed": lambda r: (r.pushed_at, r.id), "full_name": lambda r: r.full_name.lower()}
        return sorted(repos, key=keys.get(sort, keys[default_sort]), reverse=direction == "desc")

    def _r_installation_repos(self, ctx: _Ctx) -> _Reply:
        """GET /installation/repositories: the repositories an installation token may read (all of its account's)."""
        docs = "https://docs.github.com/rest/apps/installations#list-repositories-accessible-to-the-app-installation"
        if ctx.token is None or ctx.token.installation_id is None:
            raise ApiError(403, "You must authenticate with an installation access token in order to list repositories for an installation.",
                           docs)
        with self.github.lock:
            repos = sorted((r for r in self.github.repos.values() if self.github.is_member(ctx.token, r.owner)), key=lambda r: r.id)
            reply = self._paginate(ctx, repos, lambda r: self._repo_json(ctx, r))
        reply.payload = {"total_count": len(repos), "repository_selection": "all", "repositories": reply.payload}
        return reply

    def _r_user_repos(self, ctx: _Ctx) -> _Reply:
        if ctx.token is None:
            raise ApiError(401, "Requires authentication", "https://docs.github.com/rest/repos/repos#list-repositories-for-the-authenticated-user")
        if ctx.token.installation_id is not None:
            raise ApiError(403, "Resource not accessible by integration",
                           "https://docs.github.com/rest/repos/repos#list-repositories-for-the-authenticated-user")
        visibility = ctx.param("visibility", "all")
        affiliation = set((ctx.param("affiliation", "owner,collaborator,organization_member") or "").split(","))
        repo_type = ctx.param("type", "all")
        with self.github.lock:
            repos = []
            for repo in self.github.repos.values():
                own = repo.owner.type == "User" and repo.owner.login.lower() == ctx.token.login.lower()
                org = repo.owner.type == "Organization" and self.github.is_member(ctx.token, repo.owner)
                if not ((own and "owner" in affiliation) or (org and "organization_member" in affiliation)):
                    continue
                if visibility in ("public", "private") and (visibility == "private") != repo.private:
                    continue
                if repo_type in ("public", "private") and (repo_type == "private") != repo.private:
                    continue
                if (repo_type == "owner" and not own) or (repo_type == "member" and own):
                    continue
                repos.append(repo)
            repos = self._repo_sort(ctx, repos, "full_name")
            return self._paginate(ctx, repos, lambda r: self._repo_json(ctx, r))

    def _r_user_orgs(self, ctx: _Ctx) -> _Reply:
        if ctx.token is None:
            raise ApiError(401, "Requires authentication", DOCS_URL)
        with self.github.lock:
            orgs = [o for o in self.github.owners.values() if o.type == "Organization" and self.github.is_member(ctx.token, o)]
            return self._paginate(ctx, orgs, lambda o: {k: v for k, v in self._owner_detail_json(ctx, o).items()
                                                        if k in ("login", "id", "node_id", "url", "repos_url", "avatar_url", "description")})

    def _r_users(self, ctx: _Ctx, login: str) -> _Reply:
        with self.github.lock:
            return _Reply(200, self._owner_detail_json(ctx, self._owner_or_404(login)))

    def _r_users_repos(self, ctx: _Ctx, login: str) -> _Reply:
        repo_type = ctx.param("type", "owner")
        with self.github.lock:
            owner = self._owner_or_404(login)
            repos = [r for r in self.github.repos.values() if r.owner is owner and not r.private]
            if repo_type == "member":
                repos = []
            repos = self._repo_sort(ctx, repos, "full_name")
            return self._paginate(ctx, repos, lambda r: self._repo_json(ctx, r))

    def _r_org(self, ctx: _Ctx, login: str) -> _Reply:
        with self.github.lock:
            owner = self._owner_or_404(login)
            if owner.type != "Organization":
                raise _not_found()
            return _Reply(200, self._owner_detail_json(ctx, owner))

    def _r_org_repos(self, ctx: _Ctx, login: str) -> _Reply:
        repo_type = ctx.param("type", "all")
        with self.github.lock:
            owner = self._owner_or_404(login)
            if owner.type != "Organization":
                raise _not_found()
            member = self.github.is_member(ctx.token, owner)
            repos = [r for r in self.github.repos.values() if r.owner is owner and (member or not r.private)]
            filters = {"public": lambda r: not r.private, "private": lambda r: r.private, "forks": lambda r: r.fork,
                       "sources": lambda r: not r.fork, "member": lambda r: member}
            if repo_type in filters:
                repos = [r for r in repos if filters[repo_type](r)]
            repos = self._repo_sort(ctx, repos, "created")
            return self._paginate(ctx, repos, lambda r: self._repo_json(ctx, r))

    # routes: creating repositories

    def _r_create_org_repo(self, ctx: _Ctx, login: str) -> _Reply:
        docs = "https://docs.github.com/rest/repos/repos#create-an-organization-repository"
        if ctx.token is None:
            raise ApiError(401, "Requires authentication", docs)
        with self.github.lock:
            owner = self._owner_or_404(login)
            if owner.type != "Organization" or not self.github.is_member(ctx.token, owner):
                raise _not_found()
            return self._create_repo(ctx, owner, docs)

    def _r_create_user_repo(self, ctx: _Ctx) -> _Reply:
        docs = "https://docs.github.com/rest/repos/repos#create-a-repository-for-the-authenticated-user"
        if ctx.token is None:
            raise ApiError(401, "Requires authentication", docs)
        with self.github.lock:
            owner = self.github.owner(ctx.token.login) or self.github.add_user(ctx.token.login)
            return self._create_repo(ctx, owner, docs)

    def _create_repo(self, ctx: _Ctx, owner: Owner, docs: str) -> _Reply:
        """POST .../repos: a new empty repository of ``owner`` (GitHub's checks and error shapes), 201 with its JSON."""
        try:
            data = json.loads(ctx.body.decode("utf-8")) if ctx.body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise ApiError(400, "Problems parsing JSON", docs)
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(422, "Invalid request.\n\n\"name\" wasn't supplied.", docs)
        fields: dict[str, t.Any] = {}
        for key in ("private", "has_issues", "has_wiki", "has_projects", "has_downloads", "has_discussions"):
            if data.get(key) is not None:
                if not isinstance(data[key], bool):
                    raise ApiError(422, "Invalid request.\n\nFor 'properties/%s', %s is not a boolean." % (key, json.dumps(data[key])), docs)
                fields[key] = data[key]
        for key in ("description", "homepage"):
            if data.get(key) is not None:
                if not isinstance(data[key], str):
                    raise ApiError(422, "Invalid request.\n\nFor 'properties/%s', %s is not a string." % (key, json.dumps(data[key])), docs)
                fields[key] = data[key]
        visibility = data.get("visibility")
        if visibility is not None:
            if visibility not in ("public", "private", "internal") or (visibility == "internal" and owner.type != "Organization"):
                raise ApiError(422, "Invalid request.\n\nFor 'properties/visibility', %s is not a valid value." % json.dumps(visibility), docs)
            fields["visibility"] = visibility
            fields["private"] = visibility != "public"
        elif fields.get("private"):
            fields["visibility"] = "private"
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip())  # GitHub replaces what a name may not hold
        error = None
        if name in (".", "..") or name.lower().endswith(".git"):
            error = "name is invalid"
        elif self.github.repo(owner.login, name) is not None:
            error = "name already exists on this account"
        if error:
            raise ApiError(422, "Repository creation failed.", docs, extra={"errors": [
                {"resource": "Repository", "code": "custom", "field": "name", "message": error}]})
        git_dir = os.path.join(self.github.root_dir, owner.login, name + ".git")
        while os.path.exists(git_dir) or os.path.exists(git_dir[:-4] + ".wiki.git"):  # left behind by remove_repo
            git_dir = os.path.join(self.github.root_dir, owner.login, "%s-%d.git" % (name, self.github.new_id()))
        repo = self.github.add_repo(owner.login, name, git_dir, owner_type=owner.type, empty=True, **fields)
        return _Reply(201, self._repo_json(ctx, repo, full=True), [("Location", "%s/repos/%s" % (self.api_url, repo.full_name))], etag=False)

    # routes: repositories

    def _r_repo(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            return _Reply(200, self._repo_json(ctx, repo, full=True))

    def _r_topics(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        return _Reply(200, {"names": list(self._resolve_repo(ctx, owner, name).topics)})

    def _filtered_issues(self, ctx: _Ctx, repo: Repo, pulls_only: bool) -> list[Issue]:
        state = ctx.param("state", "open")
        issues = [i for i in repo.issues.values() if (i.pull is not None or not pulls_only) and (state == "all" or i.state == state)]
        since = ctx.param("since")
        if since and not pulls_only:
            issues = [i for i in issues if i.updated_at >= since]
        labels = [x for x in (ctx.param("labels") or "").split(",") if x]
        if labels and not pulls_only:
            issues = [i for i in issues if all(x in i.labels for x in labels)]
        milestone = ctx.param("milestone")
        if milestone and not pulls_only:
            if milestone == "none":
                issues = [i for i in issues if i.milestone is None]
            elif milestone == "*":
                issues = [i for i in issues if i.milestone is not None]
            else:
                issues = [i for i in issues if str(i.milestone) == milestone]
        creator = ctx.param("creator")
        if creator:
            issues = [i for i in issues if i.user.lower() == creator.lower()]
        if pulls_only:
            base, head = ctx.param("base"), ctx.param("head")
            if base:
                issues = [i for i in issues if i.pull and i.pull.base_ref == base]
            if head:
                issues = [i for i in issues if i.pull and "%s:%s" % (repo.owner.login, i.pull.head_ref) == head]
        sort = ctx.param("sort", "created")
        keys: dict[str, t.Callable[[Issue], t.Any]] = {
            "created": lambda i: (i.created_at, i.number), "updated": lambda i: (i.updated_at, i.number),
            "comments": lambda i: (len(i.comments), i.number), "popularity": lambda i: (len(i.comments), i.number),
            "long-running": lambda i: (i.created_at, i.number)}
        default_direction = "desc" if sort == "created" or not pulls_only else "asc"
        direction = ctx.param("direction", default_direction)
        return sorted(issues, key=keys.get(sort, keys["created"]), reverse=direction == "desc")

    def _r_issues(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        self._issues_enabled(repo)
        with self.github.lock:
            return self._paginate(ctx, self._filtered_issues(ctx, repo, False), lambda i: self._issue_json(repo, i))

    def _issue_or_404(self, repo: Repo, number: str) -> Issue:
        issue = repo.issues.get(int(number))
        if issue is None:
            raise _not_found()
        return issue

    def _r_issue(self, ctx: _Ctx, owner: str, name: str, number: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            issue = self._issue_or_404(repo, number)
            if issue.pull is None:
                self._issues_enabled(repo)
            return _Reply(200, self._issue_json(repo, issue))

    def _comment_sort(self, ctx: _Ctx, comments: list) -> list:
        since = ctx.param("since")
        if since:
            comments = [c for c in comments if c.updated_at >= since]
        sort = ctx.param("sort", "created")
        key = (lambda c: (c.updated_at, c.id)) if sort == "updated" else (lambda c: (c.created_at, c.id))
        return sorted(comments, key=key, reverse=ctx.param("direction", "asc") == "desc")

    def _r_repo_issue_comments(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        self._issues_enabled(repo)
        with self.github.lock:
            comments = [c for i in repo.issues.values() for c in i.comments]
            return self._paginate(ctx, self._comment_sort(ctx, comments), lambda c: self._comment_json(repo, c))

    def _r_issue_comments(self, ctx: _Ctx, owner: str, name: str, number: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            issue = self._issue_or_404(repo, number)
            if issue.pull is None:
                self._issues_enabled(repo)
            return self._paginate(ctx, self._comment_sort(ctx, list(issue.comments)), lambda c: self._comment_json(repo, c))

    def _r_pulls(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            return self._paginate(ctx, self._filtered_issues(ctx, repo, True), lambda i: self._pull_json(ctx, repo, i))

    def _r_pull(self, ctx: _Ctx, owner: str, name: str, number: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            issue = self._issue_or_404(repo, number)
            data = self._pull_json(ctx, repo, issue)
            if issue.pull is not None:
                data.update({"merged": issue.pull.merged_at is not None, "mergeable": None, "rebaseable": None, "mergeable_state": "unknown",
                             "merged_by": None, "comments": len(issue.comments), "review_comments": len(issue.pull.review_comments),
                             "maintainer_can_modify": False, "commits": 1, "additions": 1, "deletions": 0, "changed_files": 1})
            return _Reply(200, data)

    def _pull_or_404(self, repo: Repo, number: str) -> PullInfo:
        issue = self._issue_or_404(repo, number)
        if issue.pull is None:
            raise _not_found()
        return issue.pull

    def _r_reviews(self, ctx: _Ctx, owner: str, name: str, number: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            pull = self._pull_or_404(repo, number)
            return self._paginate(ctx, list(pull.reviews), lambda r: self._review_json(repo, int(number), r))

    def _r_pull_review_comments(self, ctx: _Ctx, owner: str, name: str, number: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            pull = self._pull_or_404(repo, number)
            return self._paginate(ctx, self._comment_sort(ctx, list(pull.review_comments)), lambda c: self._review_comment_json(repo, c))

    def _r_repo_review_comments(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            comments = [c for i in repo.issues.values() if i.pull for c in i.pull.review_comments]
            return self._paginate(ctx, self._comment_sort(ctx, comments), lambda c: self._review_comment_json(repo, c))

    def _visible_releases(self, ctx: _Ctx, repo: Repo) -> list[Release]:
        member = self.github.is_member(ctx.token, repo.owner)
        return [r for r in repo.releases if member or not r.draft]

    def _r_releases(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            releases = sorted(self._visible_releases(ctx, repo), key=lambda r: (r.created_at, r.id), reverse=True)
            return self._paginate(ctx, releases, lambda r: self._release_json(repo, r))

    def _r_release(self, ctx: _Ctx, owner: str, name: str, release_id: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            for release in self._visible_releases(ctx, repo):
                if release.id == int(release_id):
                    return _Reply(200, self._release_json(repo, release))
        raise _not_found()

    def _r_release_assets(self, ctx: _Ctx, owner: str, name: str, release_id: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            for release in self._visible_releases(ctx, repo):
                if release.id == int(release_id):
                    return self._paginate(ctx, list(release.assets), lambda a, rel=release: self._asset_json(repo, rel, a))
        raise _not_found()

    def _download_url(self, asset: Asset) -> str:
        signature = hmac.new(self._secret, str(asset.id).encode(), hashlib.sha256).hexdigest()[:32]
        return "%s/_downloads/assets/%d/%s?sig=%s" % (self.base_url, asset.id, urllib.parse.quote(asset.name), signature)

    def _r_asset(self, ctx: _Ctx, owner: str, name: str, asset_id: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            found = self.github.assets.get(int(asset_id))
            if found is None or found[0] is not repo or found[1] not in self._visible_releases(ctx, repo):
                raise _not_found()
            release, asset = found[1], found[2]
            if "application/octet-stream" in ctx.handler.headers.get("Accept", ""):
                return _Reply(302, None, [("Location", self._download_url(asset))], raw=b"", etag=False)
            return _Reply(200, self._asset_json(repo, release, asset))

    def _r_labels(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        with self.github.lock:
            return self._paginate(ctx, list(repo.labels), lambda label: self._label_json(repo, label))

    def _r_milestones(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        state = ctx.param("state", "open")
        sort = ctx.param("sort", "due_on")
        with self.github.lock:
            milestones = [m for m in repo.milestones if state == "all" or m.state == state]
            if sort == "completeness":
                milestones.sort(key=lambda m: m.number)
            else:
                milestones.sort(key=lambda m: (m.due_on is None, m.due_on or "", m.number))
            if ctx.param("direction", "asc") == "desc":
                milestones.reverse()
            return self._paginate(ctx, milestones, lambda m: self._milestone_json(repo, m))

    # routes: git data

    def _r_branches(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        out = run_git(repo.git_dir, "for-each-ref", "--sort=refname", "--format=%(refname:lstrip=2)%00%(objectname)", "refs/heads").stdout
        api = "%s/repos/%s" % (self.api_url, repo.full_name)
        branches = [line.split(b"\0") for line in out.splitlines() if line]
        return self._paginate(ctx, branches, lambda b: {"name": b[0].decode(), "commit": {"sha": b[1].decode(), "url": "%s/commits/%s" % (
            api, b[1].decode())}, "protected": b[0].decode() == repo.default_branch})

    def _r_tags(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        out = run_git(repo.git_dir, "for-each-ref", "--sort=-v:refname", "--format=%(refname:lstrip=2)%00%(objectname)%00%(*objectname)",
                      "refs/tags").stdout
        api = "%s/repos/%s" % (self.api_url, repo.full_name)

        def render(fields: list[bytes]) -> dict:
            tag, sha = fields[0].decode(), (fields[2] or fields[1]).decode()
            return {"name": tag, "zipball_url": "%s/zipball/refs/tags/%s" % (api, tag), "tarball_url": "%s/tarball/refs/tags/%s" % (api, tag),
                    "commit": {"sha": sha, "url": "%s/commits/%s" % (api, sha)},
                    "node_id": _node_id("Ref", int(hashlib.sha256(tag.encode()).hexdigest()[:8], 16))}

        return self._paginate(ctx, [line.split(b"\0") for line in out.splitlines() if line], render)

    def _r_commits(self, ctx: _Ctx, owner: str, name: str) -> _Reply:
        repo = self._resolve_repo(ctx, owner, name)
        if repo.empty:
            raise ApiError(409, "Git Repository is empty.", "https://docs.github.com/rest/commits/commits#list-commits")
        rev = ctx.param("sha", repo.default_branch) or repo.default_branch
        if rev.startswith("-") or run_git(repo.git_dir, "rev-parse", "--verify", "--quiet", rev + "^{commit}", check=False).returncode:
            raise ApiError(404, "No commit found for SHA: %s" % rev, "https://docs.github.com/rest/commits/commits#list-commits")
        limits = []
        for param, option in (("since", "--since"), ("until", "--until"), ("author", "--author")):
            if ctx.param(param):
                limits.append("%s=%s" % (option, ctx.param(param)))
        paths = ["--", ctx.param("path") or ""] if ctx.param("path") else []
        per_page, page = self._page_params(ctx)
        total = int(run_git(repo.git_dir, "rev-list", "--count", *limits, rev, *paths).stdout.strip() or 0)
        fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%B%x1e"
        out = run_git(repo.git_dir, "log", "--format=" + fmt, "--skip=%d" % ((page - 1) * per_page), "--max-count=%d" % per_page,
                      *limits, rev, *paths).stdout.decode("utf-8", "replace")
        api = "%s/repos/%s" % (self.api_url, repo.full_name)
        html = "%s/%s" % (self.base_url, repo.full_name)
        commits = []
        for record in out.split("\x1e"):
            fields = record.lstrip("\n").split("\0")
            if len(fields) < 10:
                continue
            sha, tree, parents = fields[0], fields[1], fields[2].split()
            commits.append({
                "sha": sha, "node_id": _node_id("Commit", int(sha[:7], 16)), "url": "%s/commits/%s" % (api, sha),
                "html_url": "%s/commit/%s" % (html, sha), "comments_url": "%s/commits/%s/comments" % (api, sha),
                "commit": {"author": {"name": fields[3], "email": fields[4], "date": utc_iso(int(fields[5]))},
                           "committer": {"name": fields[6], "email": fields[7], "date": utc_iso(int(fields[8]))},
                           "message": fields[9].rstrip("\n"), "tree": {"sha": tree, "url": "%s/git/trees/%s" % (api, tree)},
                           "url": "%s/git/commits/%s" % (api, sha), "comment_count": 0,
                           "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None}},
                "author": None, "committer": None,
                "parents": [{"sha": p, "url": "%s/commits/%s" % (api, p), "html_url": "%s/commit/%s" % (html, p)} for p in parents],
            })
        return _Reply(200, commits, self._link_header(ctx, page, per_page, total))

    # GitHub Apps: the endpoints an app calls with its JWT ------------------------------------------

    def _handle_app(self, handler: _Handler, method: str, path: str, token_value: str | None, body: bytes,
                    headers: list[tuple[str, str]]) -> int:
        """``/app``, ``/app/installations[/{id}]``, ``POST /app/installations/{id}/access_tokens`` and the installation of
        an organization, user or repository: authenticated with ``Authorization: Bearer <JWT>`` of the app."""
        try:
            app = self._verify_jwt(token_value)
            reply = self._app_route(app, method, path, body)
        except ApiError as exc:
            reply = _Reply(exc.status, exc.body, exc.headers)
        self._send(handler, method, reply.status, json.dumps(reply.payload).encode(), headers + reply.headers)
        return reply.status

    def _verify_jwt(self, token_value: str | None) -> App:
        """The app whose JWT this is, checked as GitHub does (RS256 signature, ``iss``, ``iat``, ``exp``); ApiError 401."""
        from cryptography.exceptions import InvalidSignature  # only GitHub App authentication needs it
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        undecodable = ApiError(401, JWT_DECODE_ERROR)
        try:
            head, claims_text, signature = (token_value or "").split(".")
            header, claims = json.loads(_b64url(head)), json.loads(_b64url(claims_text))
        except (ValueError, UnicodeDecodeError):
            raise undecodable
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
            raise undecodable
        issuer = claims.get("iss")  # the app id, as a string (GitHub also takes a number)
        app = self.apps.get(int(issuer)) if isinstance(issuer, (str, int)) and str(issuer).isdigit() else None
        if app is None:
            raise undecodable
        try:
            app.public_key.verify(_b64url(signature), ("%s.%s" % (head, claims_text)).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError, TypeError):
            raise undecodable
        now = time.time()
        expires, issued = claims.get("exp"), claims.get("iat")
        if not _is_number(expires) or expires <= now:
            raise ApiError(401, JWT_EXP_ERROR)
        if not _is_number(issued) or issued > now + JWT_CLOCK_DRIFT:
            raise ApiError(401, JWT_IAT_ERROR)
        if expires - issued > JWT_MAX_LIFETIME:
            raise ApiError(401, JWT_EXP_TOO_FAR)
        return app

    def _app_route(self, app: App, method: str, path: str, body: bytes) -> _Reply:
        mint = re.match(r"^/app/installations/(\d+)/access_tokens$", path)
        if mint:
            if method != "POST":
                raise _not_found()
            return self._mint_installation_token(app, int(mint.group(1)), body)
        if method not in ("GET", "HEAD"):
            raise _not_found()
        with self.github.lock:
            installed = [(self.github.owner(login), ident) for login, ident in app.installations.items()]
            installed = [(owner, ident) for owner, ident in installed if owner is not None]
            if path == "/app":
                return _Reply(200, self._app_json(app))
            if path == "/app/installations":
                return _Reply(200, [self._installation_json(app, owner, ident) for owner, ident in installed])
            by_id = re.match(r"^/app/installations/(\d+)$", path)
            account = re.match(r"^/(orgs|users)/([^/]+)/installation$", path)
            repo = re.match(r"^/repos/([^/]+)/([^/]+)/installation$", path)
            for owner, ident in installed:
                if by_id and int(by_id.group(1)) == ident:
                    return _Reply(200, self._installation_json(app, owner, ident))
                if account and urllib.parse.unquote(account.group(2)).lower() == owner.login.lower() and (
                        account.group(1) == "users" or owner.type == "Organization"):
                    return _Reply(200, self._installation_json(app, owner, ident))
                if repo:
                    found = self.github.repo(urllib.parse.unquote(repo.group(1)), urllib.parse.unquote(repo.group(2)))
                    if found is not None and found.owner is owner:
                        return _Reply(200, self._installation_json(app, owner, ident))
        raise _not_found()

    def _mint_installation_token(self, app: App, installation_id: int, body: bytes) -> _Reply:
        """POST /app/installations/{id}/access_tokens: 201 with a new ``ghs_`` token that reads every repository of the
        account (REST, GraphQL, git) until ``expires_at``. Permissions asked for must be granted to the installation."""
        docs = "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"
        account = next((login for login, ident in app.installations.items() if ident == installation_id), None)
        owner = self.github.owner(account) if account else None
        if owner is None:
            raise _not_found()
        try:
            request = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("permissions") or {}, dict):
            raise ApiError(400, "Problems parsing JSON", docs)
        wanted = request.get("permissions") or {}
        levels = {"read": 1, "write": 2, "admin": 3}
        if any(levels.get(level, 99) > levels.get(app.permissions.get(name, ""), 0) for name, level in wanted.items()):
            raise ApiError(422, "The permissions requested are not granted to this installation.", docs)
        permissions = dict(wanted) if wanted else dict(app.permissions)
        value = "ghs_" + "".join(secrets.choice(INSTALLATION_TOKEN_CHARS) for _index in range(36))
        expires = int(time.time() + app.token_lifetime)
        record = Token(token=value, login="%s[bot]" % app.slug, orgs=frozenset(), scopes="", expires_at=expires,
                       account=owner.login.lower(), installation_id=installation_id, permissions=permissions)
        with self.github.lock:
            self.github.tokens[value] = record
        with self._state_lock:
            app.minted.append(record)
        return _Reply(201, {"token": value, "expires_at": utc_iso(expires), "permissions": permissions, "repository_selection": "all"},
                      etag=False)

    def _app_json(self, app: App) -> dict:
        return {"id": app.id, "slug": app.slug, "node_id": _node_id("Integration", app.id), "client_id": "Iv1.%012x" % app.id,
                "owner": None, "name": app.name, "description": "", "external_url": self.base_url,
                "html_url": "%s/apps/%s" % (self.base_url, app.slug), "created_at": app.created_at, "updated_at": app.created_at,
                "permissions": dict(app.permissions), "events": [], "installations_count": len(app.installations)}

    def _installation_json(self, app: App, owner: Owner, ident: int) -> dict:
        if owner.type == "Organization":
            html = "%s/organizations/%s/settings/installations/%d" % (self.base_url, owner.login, ident)
        else:
            html = "%s/settings/installations/%d" % (self.base_url, ident)
        return {"id": ident, "client_id": "Iv1.%012x" % app.id, "account": self._user_json(owner), "repository_selection": "all",
                "access_tokens_url": "%s/app/installations/%d/access_tokens" % (self.api_url, ident),
                "repositories_url": self.api_url + "/installation/repositories", "html_url": html, "app_id": app.id,
                "app_slug": app.slug, "target_id": owner.id, "target_type": owner.type, "permissions": dict(app.permissions),
                "events": [], "created_at": app.created_at, "updated_at": app.created_at, "single_file_name": None,
                "has_multiple_single_files": False, "single_file_paths": [], "suspended_by": None, "suspended_at": None}

    # GraphQL ---------------------------------------------------------------------------------------

    def _handle_graphql(self, handler: _Handler, method: str, token_value: str | None, body: bytes, slot: str | None) -> int:
        """POST /api/graphql: GitHub's GraphQL API over the model (:mod:`github_graphql`), with GitHub's accounting (cost,
        node limit, a bucket of points apart from REST's) and its ways of failing (:meth:`inject_graphql`)."""
        from ansible_collections.corebackup.backup.tests.testbed import github_graphql  # imports this module

        request_id = _request_id()
        headers = [("Content-Type", "application/json; charset=utf-8"), ("X-GitHub-Media-Type", "github.v4; format=json"),
                   ("X-GitHub-Request-Id", request_id),
                   ("Access-Control-Expose-Headers", "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, "
                    "X-RateLimit-Remaining, X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset")]

        def answer(status: int, payload: t.Any, extra: list[tuple[str, str]] | None = None) -> int:
            self._send(handler, method, status, json.dumps(payload).encode(), headers + (extra or []))
            return status

        if not self.graphql or method != "POST":
            return answer(404, _not_found().body)
        if token_value is None:
            return answer(401, {"message": "This endpoint requires you to be authenticated.", "documentation_url": GRAPHQL_AUTH_DOCS})
        token = self.github.lookup_token(token_value)
        if token is None:
            return answer(401, {"message": "Bad credentials", "documentation_url": GRAPHQL_DOCS})
        bucket = self._graphql_bucket(token)
        injection = self._take_graphql_injection()
        if injection is not None:
            if injection.mode == "delay":
                time.sleep(injection.delay)
            elif injection.mode == "rate_limited":
                reset = time.time() + injection.reset_in if injection.reset_in is not None else bucket.reset
                return answer(200, self._graphql_rate_limited(token), [
                    ("X-RateLimit-Limit", str(bucket.limit)), ("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", str(int(math.ceil(reset)))),
                    ("X-RateLimit-Used", str(bucket.limit)), ("X-RateLimit-Resource", "graphql")])
            elif injection.mode == "timeout":
                return answer(200, {"data": None, "errors": [{"message": GRAPHQL_TIMEOUT_MESSAGE % request_id}]}, bucket.headers())
            elif injection.mode == "502":
                if injection.body_format == "json":
                    return answer(502, {"message": "Server Error"})
                self._send(handler, method, 502, UNICORN_PAGE, [("Content-Type", "text/html; charset=utf-8"), ("X-GitHub-Request-Id", request_id)])
                return 502
        try:
            request = json.loads(body.decode("utf-8"))
            if not isinstance(request, dict):
                raise ValueError("not an object")
            variables = request.get("variables")
            if isinstance(variables, str):  # GitHub takes the variables as a JSON text too
                variables = json.loads(variables) if variables.strip() else None
        except (ValueError, UnicodeDecodeError):
            return answer(400, {"message": "Problems parsing JSON", "documentation_url": GRAPHQL_DOCS})
        query, operation = request.get("query"), request.get("operationName")
        if not isinstance(query, str) or not query.strip():
            return answer(200, {"errors": [{"message": "A query attribute must be specified and must be a string."}]}, bucket.headers())
        if variables is not None and not isinstance(variables, dict):
            return answer(200, {"errors": [{"message": "Variables are invalid JSON."}]}, bucket.headers())
        prepared = github_graphql.prepare(query, variables or {}, operation if isinstance(operation, str) and operation else None)
        if slot is not None:
            retry_after = self._secondary_spend(slot, "graphql", 5 if prepared.mutation else 1)
            if retry_after is not None:
                return self._send_secondary_limit(handler, method, "graphql", token_value, retry_after)
        if prepared.errors:
            return answer(200, {"errors": prepared.errors}, bucket.headers())
        with self._state_lock:
            limited = not prepared.dry_run and bucket.used + prepared.cost > bucket.limit
            if not limited and not prepared.dry_run:
                bucket.used += prepared.cost
            state = dataclasses.replace(bucket)
        if limited:
            return answer(200, self._graphql_rate_limited(token), state.headers())
        rate = {"cost": prepared.cost, "limit": state.limit, "nodeCount": prepared.node_count, "remaining": state.remaining,
                "resetAt": utc_iso(state.reset), "used": min(state.used, state.limit)}
        payload = github_graphql.execute(prepared, github_graphql.Context(self, token, rate))
        if injection is not None and injection.mode == "partial":
            error = {"type": injection.error_type} if injection.error_type else {}
            error["message"] = injection.message or GRAPHQL_TIMEOUT_MESSAGE % request_id
            github_graphql.null_field(prepared, payload, injection.path, error)
        return answer(200, payload, state.headers())

    def _graphql_rate_limited(self, token: Token) -> dict:
        """GitHub's answer (HTTP 200) to a GraphQL query when the token's points are used up."""
        if token.installation_id is not None:
            who = "installation ID %d" % token.installation_id
        else:
            owner = self.github.owner(token.login)
            who = "user ID %d" % (owner.id if owner else 0)
        return {"data": None, "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for %s." % who}]}

    # web and downloads -----------------------------------------------------------------------------

    def _handle_web(self, handler: _Handler, method: str, raw_path: str, token_value: str | None, kind: str) -> int:
        split = urllib.parse.urlsplit(raw_path)
        text = [("Content-Type", "text/plain; charset=utf-8")]
        if kind == "download":
            match = re.match(r"^/_downloads/assets/(\d+)/[^/]+$", split.path)
            signature = dict(urllib.parse.parse_qsl(split.query)).get("sig", "")
            found = self.github.assets.get(int(match.group(1))) if match else None
            if found is None or not hmac.compare_digest(signature, self._download_url(found[2]).rsplit("sig=", 1)[1]):
                self._send(handler, method, 404, b"Not Found\n", text)
                return 404
            asset = found[2]
            with self.github.lock:
                asset.download_count += 1
            self._send(handler, method, 200, asset.data, [("Content-Type", "application/octet-stream"),
                                                          ("Content-Disposition", "attachment; filename=%s" % asset.name)])
            return 200
        match = re.match(r"^/([^/]+)/([^/]+)/releases/download/([^/]+)/([^/]+)$", split.path)
        if match and method in ("GET", "HEAD"):
            token = self.github.lookup_token(token_value)
            owner, name, tag, asset_name = (urllib.parse.unquote(g) for g in match.groups())
            repo = self.github.repo(owner, name)
            if repo is not None and self.github.can_read(token, repo) and not repo.dmca:
                for release in repo.releases:
                    if release.tag_name == tag and (not release.draft or self.github.is_member(token, repo.owner)):
                        for asset in release.assets:
                            if asset.name == asset_name:
                                self._send(handler, method, 302, b"", [("Location", self._download_url(asset))])
                                return 302
        self._send(handler, method, 404, b"Not Found\n", text)
        return 404

    # Git LFS ---------------------------------------------------------------------------------------

    def _lfs_signature(self, repo: Repo, oid: str, expires: int, operation: str = "download") -> str:
        """The ``sig`` of a signed LFS URL; download and upload URLs are signed apart (a download URL does not take a PUT)."""
        scope = b"lfs" if operation == "download" else b"lfs-" + operation.encode("ascii")
        return hmac.new(self._secret, b"%s:%d:%s:%d" % (scope, repo.id, oid.encode("ascii"), expires), hashlib.sha256).hexdigest()[:32]

    def _lfs_url(self, repo: Repo, oid: str, expires: int | None, operation: str) -> str:
        expires = int(time.time()) + LFS_EXPIRES_IN if expires is None else expires
        path = "/_lfs/%s/%s/%s" % (urllib.parse.quote(repo.owner.login), urllib.parse.quote(repo.name), oid)
        base = "http://%s:%d" % (self.lfs_host, self.port)
        return "%s%s?expires=%d&sig=%s" % (base, path, expires, self._lfs_signature(repo, oid, expires, operation))

    def lfs_download_url(self, repo: Repo, oid: str, expires: int | None = None) -> str:
        """The signed URL the Batch API hands out for object ``oid`` of ``repo``; it needs no Authorization header."""
        return self._lfs_url(repo, oid, expires, "download")

    def lfs_upload_url(self, repo: Repo, oid: str, expires: int | None = None) -> str:
        """The signed URL an upload batch request gets for object ``oid`` of ``repo``: it takes a PUT of the object."""
        return self._lfs_url(repo, oid, expires, "upload")

    def _send_lfs_json(self, handler: _Handler, method: str, status: int, payload: t.Any, headers: list[tuple[str, str]] | None = None) -> int:
        all_headers = [("Content-Type", LFS_MEDIA_TYPE), ("X-GitHub-Request-Id", secrets.token_hex(8).upper())] + (headers or [])
        self._send(handler, method, status, json.dumps(payload).encode(), all_headers)
        return status

    def _lfs_error(self, handler: _Handler, method: str, status: int, message: str) -> int:
        headers = [("WWW-Authenticate", 'Basic realm="GitHub"')] if status == 401 else []
        return self._send_lfs_json(handler, method, status, {"message": message, "documentation_url": "https://docs.github.com/repositories/"
                                                             "working-with-files/managing-large-files"}, headers)

    def _handle_lfs(self, handler: _Handler, method: str, raw_path: str, token_value: str | None, body: bytes) -> int:
        split = urllib.parse.urlsplit(raw_path)
        if split.path.startswith("/_lfs/"):
            if method == "PUT":
                return self._lfs_upload(handler, method, split, body)
            return self._lfs_download(handler, method, split)
        parts = self._git_path(split.path)
        if parts is None or not parts[2].startswith("/info/lfs/"):
            return self._lfs_error(handler, method, 404, "Not Found")
        target = self._git_target(raw_path, token_value)
        action = parts[2][len("/info/lfs"):]
        if target.status:
            return self._lfs_error(handler, method, target.status, target.message.strip().rstrip("."))
        repo = target.repo
        if repo is None or target.wiki:  # no LFS in wikis
            return self._lfs_error(handler, method, 404, "Repository not found")
        token = self.github.lookup_token(token_value)
        if action == "/objects/batch" and method == "POST":
            return self._lfs_batch(handler, method, repo, token, body)
        if action == "/locks" and method in ("GET", "HEAD"):
            return self._send_lfs_json(handler, method, 200, {"locks": [], "next_cursor": ""})
        if action == "/locks/verify" and method == "POST":  # git lfs push asks before it uploads
            denied = self._lfs_write_denied(repo, token)
            if denied:
                return self._lfs_error(handler, method, *denied)
            return self._send_lfs_json(handler, method, 200, {"ours": [], "theirs": [], "next_cursor": ""})
        return self._lfs_error(handler, method, 404, "Not Found")

    def _lfs_write_denied(self, repo: Repo, token: Token | None) -> tuple[int, str] | None:
        """Why ``token`` may not upload to ``repo`` (status, message), None when it may (the rules of a push)."""
        if token is None:
            return 401, "Authentication required"
        if not self.github.can_write(token, repo):
            return 403, "Write access to repository not granted"
        if repo.archived:
            return 403, "This repository was archived so it is read-only"
        return None

    def _lfs_batch(self, handler: _Handler, method: str, repo: Repo, token: Token | None, body: bytes) -> int:
        try:
            request = json.loads(body.decode("utf-8"))
            operation = request.get("operation")
            objects = request.get("objects")
            if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
                raise ValueError("objects")
        except (ValueError, UnicodeDecodeError, AttributeError):
            return self._lfs_error(handler, method, 422, "Unprocessable Entity")
        if operation == "upload":
            denied = self._lfs_write_denied(repo, token)
            if denied:
                return self._lfs_error(handler, method, *denied)
        elif operation != "download":
            return self._lfs_error(handler, method, 422, "Unprocessable Entity")
        expires = int(time.time()) + LFS_EXPIRES_IN
        answers = []
        with self.github.lock:
            stored = dict(repo.lfs_objects)
        for item in objects:
            oid, size = str(item.get("oid", "")), item.get("size")
            answer: dict[str, t.Any] = {"oid": oid, "size": size}
            data = stored.get(oid)
            if not LFS_OID.match(oid):
                answer["error"] = {"code": 422, "message": "Invalid object name"}
            elif operation == "upload":
                if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                    answer["error"] = {"code": 422, "message": "Invalid object size"}
                elif data is None:
                    with self._state_lock:
                        self._lfs_pending[(repo.id, oid)] = size
                    answer.update(authenticated=True, actions={"upload": {
                        "href": self.lfs_upload_url(repo, oid, expires), "header": {"Content-Type": "application/octet-stream"},
                        "expires_in": LFS_EXPIRES_IN, "expires_at": utc_iso(expires)}})
                else:  # an object the repository has gets no actions (the LFS spec: nothing to upload)
                    answer["authenticated"] = True
            elif data is None:
                answer["error"] = {"code": 404, "message": "Object does not exist"}
            elif size is not None and size != len(data):
                answer["error"] = {"code": 422, "message": "Object size mismatch"}
            else:
                answer.update(size=len(data), authenticated=True, actions={"download": {
                    "href": self.lfs_download_url(repo, oid, expires), "header": {"Accept": "application/octet-stream"},
                    "expires_in": LFS_EXPIRES_IN, "expires_at": utc_iso(expires)}})
            answers.append(answer)
        return self._send_lfs_json(handler, method, 200, {"transfer": "basic", "objects": answers, "hash_algo": "sha256"})

    def _lfs_upload(self, handler: _Handler, method: str, split: urllib.parse.SplitResult, body: bytes) -> int:
        """PUT to a signed upload URL: the object's bytes, checked against its oid and the size the batch request announced."""
        text = [("Content-Type", "text/plain; charset=utf-8")]
        match = re.match(r"^/_lfs/([^/]+)/([^/]+)/([0-9a-f]{64})$", split.path)
        params = dict(urllib.parse.parse_qsl(split.query))
        repo = self.github.repo(urllib.parse.unquote(match.group(1)), urllib.parse.unquote(match.group(2))) if match else None
        if repo is None or match is None:
            self._send(handler, method, 404, b"Not Found\n", text)
            return 404
        oid = match.group(3)
        try:
            expires = int(params.get("expires", ""))
        except ValueError:
            expires = 0
        if expires < time.time() or not hmac.compare_digest(params.get("sig", ""), self._lfs_signature(repo, oid, expires, "upload")):
            self._send(handler, method, 403, b"Request has expired or its signature does not match\n", text)
            return 403
        with self._state_lock:
            expected = self._lfs_pending.get((repo.id, oid))
        if hashlib.sha256(body).hexdigest() != oid or (expected is not None and expected != len(body)):
            message = b"Object size mismatch\n" if hashlib.sha256(body).hexdigest() == oid else b"Object digest mismatch\n"
            self._send(handler, method, 422, message, text)
            return 422
        with self.github.lock:
            repo.lfs_objects[oid] = bytes(body)
        with self._state_lock:
            self._lfs_pending.pop((repo.id, oid), None)
        self._send(handler, method, 200, b"", text)
        return 200

    def _lfs_download(self, handler: _Handler, method: str, split: urllib.parse.SplitResult) -> int:
        text = [("Content-Type", "text/plain; charset=utf-8")]
        match = re.match(r"^/_lfs/([^/]+)/([^/]+)/([0-9a-f]{64})$", split.path)
        params = dict(urllib.parse.parse_qsl(split.query))
        repo = self.github.repo(urllib.parse.unquote(match.group(1)), urllib.parse.unquote(match.group(2))) if match else None
        try:
            expires = int(params.get("expires", ""))
        except ValueError:
            expires = 0
        data = None
        if repo is not None and match is not None and method in ("GET", "HEAD") and expires >= time.time() \
                and hmac.compare_digest(params.get("sig", ""), self._lfs_signature(repo, match.group(3), expires)):
            with self.github.lock:
                data = repo.lfs_objects.get(match.group(3))
        if data is None:
            self._send(handler, method, 404, b"Not Found\n", text)
            return 404
        self._send(handler, method, 200, data, [("Content-Type", "application/octet-stream")])
        return 200

    # git smart HTTP --------------------------------------------------------------------------------

    def _git_target(self, raw_path: str, token_value: str | None) -> _GitTarget:
        """The repository (or wiki) of a git or LFS URL; status 0 means serve it, else the status and message to answer."""
        split = urllib.parse.urlsplit(raw_path)
        parts = self._git_path(split.path)
        if parts is None or not parts[2]:
            return _GitTarget(404, "Not Found\n")
        owner, name, suffix = urllib.parse.unquote(parts[0]), urllib.parse.unquote(parts[1]), parts[2]
        write = "git-receive-pack" in suffix or "service=git-receive-pack" in split.query
        token = None
        if token_value is not None:
            token = self.github.lookup_token(token_value)
            if token is None:
                return _GitTarget(401, "Invalid username or token. Password authentication is not supported for Git operations.\n")
        if name.endswith(".git"):
            name = name[:-4]
        wiki = False
        repo = self.github.repo(owner, name)
        if repo is None and name.endswith(".wiki"):
            repo, wiki = self.github.repo(owner, name[:-5]), True
        if repo is None or not self.github.can_read(token, repo):
            if token is None:
                return _GitTarget(401, "Authentication required.\n")
            return _GitTarget(404, "Repository not found.\n")
        if repo.dmca:
            return _GitTarget(451, "Repository unavailable due to DMCA takedown.\n")
        if repo.disabled:
            return _GitTarget(403, "Repository access blocked.\n")
        if wiki and (not repo.has_wiki or not repo.wiki_exists):
            return _GitTarget(404, "Repository not found.\n")
        if write:
            if token is None:
                return _GitTarget(401, "Authentication required.\n")
            if not self.github.can_write(token, repo):
                return _GitTarget(403, "Permission to %s%s.git denied to %s.\n" % (repo.full_name, ".wiki" if wiki else "", token.login))
            if repo.archived:
                return _GitTarget(403, "This repository was archived so it is read-only.\n")
        return _GitTarget(0, "", repo, repo.wiki_dir if wiki else repo.git_dir, suffix, wiki, write)

    def _handle_git(self, handler: _Handler, method: str, raw_path: str, token_value: str | None, body: bytes) -> int:
        target = self._git_target(raw_path, token_value)
        if target.status:
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            if target.status == 401:
                headers.append(("WWW-Authenticate", 'Basic realm="GitHub"'))
            self._send(handler, method, target.status, target.message.encode(), headers)
            return target.status
        git_dir, suffix = target.git_dir, target.suffix
        if git_dir is None or suffix is None or target.repo is None:
            raise RuntimeError("no git directory")
        token = self.github.lookup_token(token_value)
        # http.receivepack only for a push _git_target allowed; receive.hideRefs makes receive-pack refuse updates of
        # refs/pull/* one by one with "deny updating a hidden ref" (and leave them out of its advertisement), as GitHub does.
        config = [("uploadpack.allowFilter", "true"), ("uploadpack.allowAnySHA1InWant", "true"),
                  ("http.receivepack", "true" if target.write else "false"), ("receive.hideRefs", "refs/pull")]
        env = git_env({
            "GIT_PROJECT_ROOT": os.path.dirname(git_dir), "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": "/" + os.path.basename(git_dir) + suffix, "QUERY_STRING": urllib.parse.urlsplit(raw_path).query,
            "REQUEST_METHOD": method, "REMOTE_ADDR": handler.client_address[0], "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": LOOPBACK, "SERVER_PORT": str(self.port), "GIT_CONFIG_COUNT": str(len(config)),
        })
        for index, (key, value) in enumerate(config):
            env["GIT_CONFIG_KEY_%d" % index] = key
            env["GIT_CONFIG_VALUE_%d" % index] = value
        if token is not None:
            env["REMOTE_USER"] = token.login
        if handler.headers.get("Content-Type"):
            env["CONTENT_TYPE"] = handler.headers["Content-Type"]
        if method == "POST":
            env["CONTENT_LENGTH"] = str(len(body))
        if handler.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = handler.headers["Content-Encoding"]
        if handler.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"] = handler.headers["Git-Protocol"]
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen([self.git_http_backend], stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                    stderr=stderr, env=env, cwd=git_dir)
            feeder = threading.Thread(target=self._feed, args=(proc, body), daemon=True)
            feeder.start()
            try:
                status = self._relay_cgi(handler, method, proc)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                feeder.join(timeout=5)
                if proc.stdout is not None:
                    proc.stdout.close()
                stderr.seek(0)
                errors = stderr.read().decode("utf-8", "replace").strip()
                if errors:
                    self.git_stderr.append(errors)
                    del self.git_stderr[:-50]
        if target.write and method == "POST" and suffix.endswith("/git-receive-pack") and status == 200 and not target.wiki:
            self.github.refresh_git(target.repo)  # like GitHub, a wiki push does not move the repository's pushed_at
        return status

    @staticmethod
    def _feed(proc: subprocess.Popen, body: bytes) -> None:
        if proc.stdin is None:
            return
        with contextlib.suppress(OSError):
            if body:
                proc.stdin.write(body)
        with contextlib.suppress(OSError):
            proc.stdin.close()

    def _relay_cgi(self, handler: _Handler, method: str, proc: subprocess.Popen) -> int:
        stdout = proc.stdout
        if stdout is None:
            raise RuntimeError("no CGI output")
        status = 200
        headers: list[tuple[str, str]] = []
        while True:
            line = stdout.readline()
            if not line or line in (b"\r\n", b"\n"):
                break
            name, value = (line.decode("latin-1").rstrip("\r\n").split(":", 1) + [""])[:2]
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            else:
                headers.append((name.strip(), value.strip()))
        if not headers and status == 200:
            status = 500
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        has_length = any(name.lower() == "content-length" for name, _value in headers)
        chunked = not has_length and method != "HEAD" and handler.request_version == "HTTP/1.1"
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        elif not has_length:
            handler.close_connection = True
            handler.send_header("Connection", "close")
        handler.end_headers()
        if method == "HEAD":
            return status
        while True:
            block = stdout.read1(65536)
            if not block:
                break
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
        return status
