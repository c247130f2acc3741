# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The github service: the repositories of an organization or user (git mirror, wiki, LFS, metadata), backed up
by github_backup, restored into a folder as a bare mirror, a working clone and the metadata, or pushed to a
GitHub (``push_to``). Its clients register every secret they derive (the token's basic-auth form, an App's
installation tokens) with the module wrapper when they create it."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, CommandFailed, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils import _gitchain as gc
from ansible_collections.corebackup.backup.plugins.module_utils import _github_format as fmt
from ansible_collections.corebackup.backup.plugins.module_utils._gitcache import MirrorCache
from ansible_collections.corebackup.backup.plugins.module_utils._github import (
    GitHubClient,
    GitHubError,
    GraphQLError,
    GraphQLUnavailable,
    RequestScheduler,
    TokenSource,
    basic_auth,
    git_env,
    listed_refs,
    local_refs,
    parse_link_header,
    refs_digest,
)
from ansible_collections.corebackup.backup.plugins.module_utils._github_app import HAS_PYGITHUB, PYGITHUB_IMP_ERR, AppTokenSource
from ansible_collections.corebackup.backup.plugins.module_utils._github_graphql import GraphQLReader, freshness_of
from ansible_collections.corebackup.backup.plugins.module_utils._github_metadata import (
    ListDigest,
    MetadataSpool,
    canonical_json,
    without_download_counts,
    write_documents,
)
from ansible_collections.corebackup.backup.plugins.module_utils._layout import iso, objects_prefix, parse_iso, sanitize_name
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter, tar_stream
from ansible_collections.corebackup.backup.plugins.module_utils._restore import (
    FolderRestorer, RestoreError, check_artifact, commit)
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceSlice, item_specs

SPEC = dict(
    argument_spec=dict(
        organization=dict(type="str"),
        user=dict(type="str"),
        repositories=dict(type="list", elements="raw", default=[]),
        include=dict(type="list", elements="str", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
        skip_forks=dict(type="bool", default=False),
        skip_archived=dict(type="bool", default=False),
        visibility=dict(type="str", choices=["all", "public", "private"], default="all"),
        token=dict(type="str", no_log=True, fallback=(env_fallback, ["GITHUB_TOKEN"])),
        app_id=dict(type="str"),
        app_private_key=dict(type="str", no_log=True),
        app_installation_id=dict(type="int"),
        api_url=dict(type="str", default="https://api.github.com"),
        api_mode=dict(type="str", choices=["auto", "graphql", "rest"], default="auto"),
        full_refresh_days=dict(type="int", default=7),
        full_every_days=dict(type="int", default=30),
        cache_dir=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        wiki=dict(type="bool", default=True),
        issues=dict(type="bool", default=True),
        pulls=dict(type="bool", default=True),
        releases=dict(type="bool", default=True),
        release_assets=dict(type="bool", default=False),
        labels=dict(type="bool", default=True),
        milestones=dict(type="bool", default=True),
        lfs=dict(type="bool", default=False),
    ),
    job_default="github",
    mutually_exclusive=[("organization", "user"), ("token", "app_id")],
    required_one_of=[("organization", "user")],
    required_together=[("app_id", "app_private_key")],
)

TOGGLES = ("wiki", "issues", "pulls", "releases", "release_assets", "lfs")
# The exports whose first page tells whether anything changed: sorted by update time where the API allows.
EXPORTS = {
    "issues": ("issues", {"state": "all", "sort": "updated", "direction": "desc"}),
    "issue_comments": ("issues/comments", {"sort": "updated", "direction": "desc"}),
    "pulls": ("pulls", {"state": "all", "sort": "updated", "direction": "desc"}),
    "review_comments": ("pulls/comments", {"sort": "updated", "direction": "desc"}),
    "releases": ("releases", {}),
    "labels": ("labels", {}),
    "milestones": ("milestones", {"state": "all", "sort": "due_on", "direction": "desc"}),
}
# Which toggles need an export: conversation comments of pull requests are issue comments too.
EXPORT_TOGGLES = {"issues": ("issues",), "issue_comments": ("issues", "pulls"), "pulls": ("pulls",),
                  "review_comments": ("pulls",), "releases": ("releases",), "labels": ("labels",),
                  "milestones": ("milestones",)}
# An export that GitHub refuses for one repository (issues disabled, ...) is recorded as empty.
EXPORT_ABSENT_STATUSES = (404, 410)
# GraphQL: the connections of a repository each toggle reads, and the freshness parts that tell whether they changed.
GRAPHQL_CONNECTIONS = {"issues": ("issues",), "pulls": ("pullRequests",), "releases": ("releases",),
                       "labels": ("labels",), "milestones": ("milestones",)}
# Wikis probed at once (git ls-remote) before a rerun decides which repositories changed.
WIKI_PROBES = 16
# The artifact format of a repository stored as a chain of bundles (see _gitchain.py), and the suffix of the name of
# the object that holds a run's tips: the last object such an artifact requires (the links of its chain come first).
BUNDLE_FORMAT = "bundle-1"
TIPS_SUFFIX = "--tips"
# Characters of the reason for a full bundle kept in the object's metadata (S3 allows 2 KB of it in all).
REASON_CHARS = 160
# The files of each part of a chain link: its refs list and its bundle.
PARTS = {"repo": ("refs.json", "repo.bundle"), "wiki": ("wiki-refs.json", "wiki.bundle")}
_OID = re.compile(r"^[0-9a-f]{64}$")


def chain_of(requires):
    """(the links of a bundle artifact's chain, in order; its tips object): the tips are required last."""
    requires = [dict(r) for r in requires or ()]
    if not requires:
        return [], None
    return requires[:-1], requires[-1]


def link_artifact(artifact, link):
    """A link of ``artifact``'s chain as an artifact of its own: packed (compressed, encrypted) as the artifact is."""
    return dict(link, compression=artifact.get("compression"), encryption=artifact.get("encryption"))


def read_checked(backend, entry):
    """The bytes of the required object ``entry`` ({key, sha256}); BackupError unless they are what was recorded."""
    raw = backend.read_bytes(entry["key"])
    if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
        raise BackupError("%s is not what was recorded" % entry["key"])
    return raw


class CorruptLfs(BackupError):
    """LFS objects of the mirror cache do not hold the bytes their oids name: ``paths``."""

    def __init__(self, paths):
        super().__init__("%d LFS object(s) of the mirror do not hold the bytes their oids name: %s" % (
            len(paths), ", ".join(os.path.basename(p) for p in sorted(paths)[:3])))
        self.paths = paths


# What must equal the newest artifact's for a repository read again to count as unchanged.
SAME_AS_STORED = ("refs_digest", "wiki_refs_digest", "metadata_digest", "options", "metadata_format")


class RepositoryFailed(BackupError):
    """One repository could not be backed up; the message is safe to show."""


def compile_patterns(patterns, option):
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise OptionError("%s: %r is not a valid regular expression: %s" % (option, pattern, exc)) from None
    return compiled


def select_repositories(repos, include, exclude, skip_forks, skip_archived, visibility):
    """The repositories to back up, in name order: a pure function of the discovered list and the filters."""
    selected = []
    for repo in repos:
        name = repo["name"]
        if include and not any(p.search(name) for p in include):
            continue
        if any(p.search(name) for p in exclude):
            continue
        if skip_forks and repo.get("fork"):
            continue
        if skip_archived and repo.get("archived"):
            continue
        private = bool(repo.get("private"))
        if visibility == "public" and private or visibility == "private" and not private:
            continue
        selected.append(repo)
    return sorted(selected, key=lambda r: r["name"])


class GitHubBackup(Service):
    """The repositories of an organization or user, each mirrored with its wiki and metadata."""

    item_kind = "repositories"
    item_errors = (GitHubError,)
    entry_fields = {"refs": None, "metadata": {}}

    def __init__(self, module):
        super().__init__(module)
        params = self.params
        self.owner = params["organization"] or params["user"]
        self.include = compile_patterns(params["include"], "include")
        self.listed = 0
        self.exclude = compile_patterns(params["exclude"], "exclude")
        self.explicit = self._explicit_repositories(params["repositories"])
        if params["full_refresh_days"] < 0:
            raise OptionError("full_refresh_days must be 0 or more, got %d" % params["full_refresh_days"])
        if params["full_every_days"] < 1:
            raise OptionError("full_every_days must be 1 or more, got %d" % params["full_every_days"])
        self.cache = MirrorCache(params["cache_dir"], max(1, params["full_refresh_days"])) if params["cache_dir"] else None
        self.tokens = self._token_source()
        self.scheduler = RequestScheduler()
        self.client = GitHubClient(params["api_url"], self.tokens, params["validate_certs"], module.retry,
                                   scheduler=self.scheduler)
        self.reader = GraphQLReader(self.client)
        self.api = "rest"  # the API the listing used: "graphql" or "rest" (decided by discover)
        self.metadata_api = "rest"  # the API metadata is read with (REST after a GraphQL schema lacked a field)
        self.carry_updates_of = {}
        self.wiki_probes = {}  # repository name -> its wiki's refs digest, being read (prepare)
        self.probe_pool = None
        self.git = module.module.get_bin_path("git", required=True)

    def _token_source(self):
        params = self.params
        if not params["app_id"]:
            self._add_token_secret(params["token"])
            return TokenSource(params["token"])
        if not HAS_PYGITHUB:
            self.module.module.fail_json(msg=missing_required_lib("PyGithub"), exception=PYGITHUB_IMP_ERR)
        if "PRIVATE KEY-----" not in (params["app_private_key"] or ""):
            raise OptionError("app_private_key is not a PEM private key (it begins with -----BEGIN RSA PRIVATE KEY-----"
                              " or -----BEGIN PRIVATE KEY-----)")
        return AppTokenSource(params["api_url"], params["app_id"], params["app_private_key"], self.owner,
                              is_org=bool(params["organization"]), installation_id=params["app_installation_id"],
                              validate_certs=params["validate_certs"], on_token=self._add_token_secret)

    def _add_token_secret(self, token):
        register_token(self.module, token)

    # -- selection -------------------------------------------------------------------------
    @staticmethod
    def _explicit_repositories(items):
        return {spec["name"]: spec for spec in item_specs(items, "repositories", "name", TOGGLES)}

    def discover(self):
        mode = self.params["api_mode"]
        authenticated = bool(self.params["token"] or self.params["app_id"])
        if mode == "graphql" and not authenticated:
            raise OptionError("api_mode graphql needs a token or a GitHub App: GitHub's GraphQL API refuses anonymous requests")
        repos = None
        try:
            if mode != "rest" and authenticated:
                try:
                    repos = self.list_repositories_graphql()
                    self.api = self.metadata_api = "graphql"
                except GraphQLUnavailable as exc:
                    if mode == "graphql":
                        raise BackupError("api_mode graphql: %s" % exc) from None
                    self.module.warn("GitHub's GraphQL API cannot be used (%s): the REST API is used instead" % exc.message)
            if repos is None:
                repos = self.list_repositories_rest()
        except GitHubError as exc:
            raise BackupError("cannot list the repositories of %s: %s" % (self.owner, exc)) from None
        selected = select_repositories(repos, self.include, self.exclude, self.params["skip_forks"],
                                       self.params["skip_archived"], self.params["visibility"])
        self.listed = len(repos)
        if not authenticated:
            self.check_anonymous_budget(selected)
        return [Item(repo["name"], data=repo, error=repo.get("_error")) for repo in selected]

    def check_anonymous_budget(self, selected):
        """Without a token: say so up front, and refuse a run that GitHub's 60 requests an hour cannot finish."""
        self.module.warn("no token: only public repositories of %s are seen, and GitHub allows 60 API requests an hour "
                         "without one; give a token (or a GitHub App) from Ansible Vault" % self.owner)
        needed = sum(len(self.enabled_exports(self.options_for(repo["name"]))) for repo in selected)
        remaining = self.client.rate_remaining
        if remaining is not None and needed > remaining:
            raise BackupError("without a token GitHub allows %d more API requests this hour (until %s); the metadata of "
                              "%d repositories needs at least %d: give a token, or export less (issues, pulls, releases)"
                              % (remaining, self.client.rate_reset or "its reset", len(selected), needed))

    def selection(self):
        filters = ["%s %s" % (name, [p.pattern for p in patterns]) for name, patterns in
                   (("include", self.include), ("exclude", self.exclude)) if patterns]
        filters += [name for name in ("skip_forks", "skip_archived") if self.params[name]]
        if self.params["visibility"] != "all":
            filters.append("visibility %s" % self.params["visibility"])
        if not self.listed:
            return "%s has no repositories this token can see" % self.owner
        return "%s matched none of the %d repositories of %s" % (" and ".join(filters) or "the selection", self.listed, self.owner)

    def list_repositories_graphql(self):
        if self.explicit:
            found = self.reader.named_repositories(self.owner, list(self.explicit))
            return [_graphql_repo(node) if isinstance(node, dict) else {"name": name, "_error": "GitHub: %s" % node}
                    for name, node in found.items()]
        return [_graphql_repo(node) for node in self.reader.repositories(self.owner)]

    def list_repositories_rest(self):
        if self.explicit:
            repos = []
            for name in self.explicit:
                try:
                    repos.append(fmt.rest_repository(self.client.get("repos/%s/%s" % (self.owner, name)).data))
                except GitHubError as exc:
                    repos.append({"name": name, "_error": str(exc)})
            return repos
        if self.params["organization"]:
            listing = self.client.paginate("orgs/%s/repos" % self.owner, {"type": "all"})
        else:
            listing = self.client.paginate("users/%s/repos" % self.owner, {"type": "owner"})
        return [fmt.rest_repository(repo) for repo in listing]

    def source(self):
        return {"type": "github", "name": self.owner, "api_url": self.params["api_url"]}

    def totals(self):
        return {"api": self.api, "api_requests": self.client.requests, "api_not_modified": self.client.not_modified,
                "graphql_requests": self.client.graphql_requests, "graphql_cost": self.client.graphql_cost,
                "rate_limit_answers": self.client.limit_answers, "rate_limit_pauses": self.scheduler.pauses,
                "rate_limit_wait_seconds": round(self.scheduler.waited, 3),
                "app_tokens_minted": getattr(self.tokens, "minted", 0)}

    def options_for(self, name):
        options = {toggle: self.params[toggle] for toggle in TOGGLES + ("labels", "milestones")}
        options.update({k: v for k, v in self.explicit.get(name, {}).items() if k in TOGGLES})
        return options

    # -- git ---------------------------------------------------------------------------------
    def git_env(self, url):
        return git_env(url, self.tokens.get(), self.params["validate_certs"])

    def run_git(self, args, what, url, before_retry=None):
        return self.module.command([self.git] + args, what, env=self.git_env(url), before_retry=before_retry)

    def remote_refs(self, url):
        return refs_digest(self.run_git(["ls-remote", "--", url], "git ls-remote", url))

    # -- metadata ----------------------------------------------------------------------------
    def export_path(self, repo, export):
        return "repos/%s/%s" % (repo["full_name"], EXPORTS[export][0])

    @staticmethod
    def enabled_exports(options):
        return [export for export, toggles in EXPORT_TOGGLES.items() if any(options[t] for t in toggles)]

    def fetch_export(self, repo, export, etag=None, sink=None):
        """One export, page by page: each item goes to ``sink`` (when given) as it arrives, never into a list.
        Returns (state, modified): state is [etag, digest of the items]; modified is False when 304 answered."""
        path, params = self.export_path(repo, export), dict(EXPORTS[export][1], per_page=100)
        try:
            first = self.client.get(path, params, etag=etag)
        except GitHubError as exc:
            if exc.status in EXPORT_ABSENT_STATUSES:
                return ["absent", ""], True
            raise RepositoryFailed("%s export failed: %s" % (export, exc)) from None
        if first.not_modified:
            return [etag, ""], False
        digest = ListDigest()

        def take(item):
            digest.add(without_download_counts(item) if export == "releases" else item)
            if sink is not None:
                sink(item)

        for item in first.data or []:
            take(item)
        next_url = _next_link(first.headers)
        if next_url:
            for item in self.client.paginate(next_url):
                take(item)
        return [first.etag or "", digest.hexdigest()[:32]], True

    def exports_unchanged(self, repo, options, recorded):
        """True if no enabled export changed since the newest artifact.

        Each export's first page is asked for with the recorded ETag (a 304 costs no rate limit);
        an export that answers anyway (its ETag moved, e.g. with a download counter) is compared by
        content digest.
        """
        for export in self.enabled_exports(options):
            etag, digest = (recorded.get(export) or ["", ""])[:2]
            if not etag:
                return False
            if etag == "absent":
                try:
                    state, _modified = self.fetch_export(repo, export)
                except RepositoryFailed:
                    return False
                if state[0] != "absent":
                    return False
                continue
            state, modified = self.fetch_export(repo, export, etag)
            if modified and state[1] != digest:
                return False
        return True

    def spool_rest(self, repo, options, spool):
        """Every enabled export through REST into ``spool``, normalized as it arrives; {export: [etag, digest]}."""
        states = {}
        sinks = {
            "issues": lambda issue: None if "pull_request" in issue else spool.add(
                "issues.json", fmt.rest_issue(issue, []), link=issue.get("url")),
            "issue_comments": lambda comment: spool.add_child("issue_comments", comment.get("issue_url"),
                                                              fmt.rest_comment(comment)),
            "pulls": lambda pull: spool.add("pulls.json", fmt.rest_pull(pull, [], [], []),
                                            link=[pull.get("issue_url"), pull.get("url"), pull["number"]]),
            "review_comments": lambda comment: spool.add_child("review_comments", comment.get("pull_request_url"),
                                                               fmt.rest_review_comment(comment)),
            "releases": lambda release: self.spool_release(spool, fmt.rest_release(release), release),
            "labels": lambda label: spool.add("labels.json", fmt.rest_label(label)),
            "milestones": lambda milestone: spool.add("milestones.json", fmt.rest_milestone(milestone)),
        }
        for export in self.enabled_exports(options):
            states[export] = self.fetch_export(repo, export, sink=sinks[export])[0]
        return states

    @staticmethod
    def spool_release(spool, release, raw):
        """A release, and the files of its assets to download."""
        spool.add("releases.json", release)
        spool_asset_files(spool, raw)

    def spool_graphql(self, repo, options, spool):
        """Every enabled export through GraphQL into ``spool``, each element normalized once it is complete."""
        connections = [c for toggle, names in GRAPHQL_CONNECTIONS.items() if options[toggle] for c in names]
        owner, name = repo["full_name"].split("/", 1)
        assets = []
        normalize = {"issues": ("issues.json", fmt.graphql_issue), "pullRequests": ("pulls.json", fmt.graphql_pull),
                     "releases": ("releases.json", fmt.graphql_release), "labels": ("labels.json", fmt.graphql_label),
                     "milestones": ("milestones.json", fmt.graphql_milestone)}

        def sink(connection, node):
            file_name, convert = normalize[connection]
            document = convert(node)
            spool.add(file_name, document)
            if connection == "releases" and document["assets"]:
                assets.append(True)

        try:
            if connections:
                self.reader.metadata(owner, name, connections, sink)
        except GraphQLError as exc:
            raise RepositoryFailed("metadata: %s" % exc) from None
        if options["release_assets"] and assets:  # asset ids: REST only
            for release in self.client.paginate("repos/%s/releases" % repo["full_name"]):
                spool_asset_files(spool, release)

    def read_metadata(self, repo, options, spool):
        """Every enabled export into ``spool`` through the API this run reads metadata with; the REST export states."""
        if self.metadata_api == "graphql":
            try:
                self.spool_graphql(repo, options, spool)
                return {}
            except GraphQLUnavailable as exc:
                if self.params["api_mode"] == "graphql":
                    raise RepositoryFailed("metadata: %s" % exc) from None
                self.module.warn("GitHub's GraphQL API cannot read the metadata (%s): the REST API is used instead"
                                 % exc.message)
                self.metadata_api = "rest"
                spool.clear()
        return self.spool_rest(repo, options, spool)

    def write_metadata(self, repo, options, spool, states, folder):
        """The metadata files from ``spool`` into ``folder``: (metadata_digest, counts). REST pull requests get their
        reviews (and, with issues disabled, their comments) here, one pull request at a time."""
        counts = {}
        file_names = [name for toggle, name in (("issues", "issues.json"), ("pulls", "pulls.json"),
                                                ("releases", "releases.json"), ("labels", "labels.json"),
                                                ("milestones", "milestones.json")) if options[toggle]]
        rest = self.metadata_api == "rest"
        own_comments = states.get("issue_comments", [""])[0] == "absent"

        def complete(file_name, document, link):
            if file_name == "issues.json":
                if rest:
                    document["comment_list"] = fmt.sort_comments(spool.children("issue_comments", link))
                _count(counts, issues=1, issue_comments=len(document["comment_list"]))
            elif file_name == "pulls.json":
                if rest:
                    issue_url, url, number = link
                    if own_comments:  # issues disabled: the repository-wide listing is refused, a pull request's own is not
                        comments = [fmt.rest_comment(c) for c in self.client.paginate(
                            "repos/%s/issues/%d/comments" % (repo["full_name"], number))]
                    else:
                        comments = spool.children("issue_comments", issue_url)
                    reviews = self.client.paginate("repos/%s/pulls/%d/reviews" % (repo["full_name"], number))
                    document.update(comment_list=fmt.sort_comments(comments),
                                    review_list=fmt.sort_by_id(fmt.rest_review(r) for r in reviews),
                                    review_comment_list=fmt.sort_by_id(spool.children("review_comments", url)))
                _count(counts, pulls=1, reviews=len(document["review_list"]),
                       review_comments=len(document["review_comment_list"]))
            else:
                _count(counts, **{file_name[:-len(".json")]: 1})
            return document

        digest = write_documents(spool, folder, file_names, complete)
        for toggle, names in (("issues", ("issues", "issue_comments")), ("pulls", ("pulls", "reviews", "review_comments")),
                              ("releases", ("releases",)), ("labels", ("labels",)), ("milestones", ("milestones",))):
            if options[toggle]:
                for name in names:
                    counts.setdefault(name, 0)
        with open(os.path.join(folder, "repository.json"), "wb") as handle:
            handle.write(canonical_json({k: v for k, v in repo.items() if not k.startswith("_")}))
        return digest, counts

    def download_assets(self, spool, target):
        """The files of every release's assets, one at a time, from the spool's list (REST's asset ids), each written
        to disk as it arrives."""
        count = 0
        for asset in spool.children("asset_files", every=True):
            folder = os.path.join(target, sanitize_name(asset["folder"]))
            os.makedirs(folder, exist_ok=True)
            self.client.download(asset["url"], os.path.join(folder, os.path.basename(asset["name"])))
            count += 1
        return count

    # -- one repository ----------------------------------------------------------------------
    def unchanged(self, item, recorded, entry):
        return self.source_unchanged(item, self.options_for(item.name), recorded)

    def produce(self, item, recorded, entry):
        """A new artifact from GitHub; None when it would equal the artifact ``recorded`` describes."""
        repo, options = item.data, self.options_for(item.name)
        workspace = tempfile.mkdtemp(prefix="github-", dir=self.module.module.tmpdir)
        try:
            spool = MetadataSpool(workspace)
            try:
                states = self.read_metadata(repo, options, spool)
                meta_dir = os.path.join(workspace, "metadata")
                os.makedirs(meta_dir)
                digest, counts = self.write_metadata(repo, options, spool, states, meta_dir)
                entry["metadata"] = counts
                checked = {"metadata_checked_at": iso(self.module.now), "fingerprint": self.fingerprint(item, options)}
                object_metadata = dict(checked, **{
                    "repository": repo["full_name"], "backup_date": iso(self.module.now),
                    "default_branch": repo.get("default_branch") or "",
                    "size_bytes": str(int(repo.get("size") or 0) * 1024), "pushed_at": repo.get("pushed_at") or "",
                    "options": options_digest(options), "metadata_digest": digest,
                    "metadata_format": str(fmt.FORMAT_VERSION), "api": self.metadata_api,
                    "exports": json.dumps(states, sort_keys=True, separators=(",", ":")),
                })
                self.carry_updates_of[item.name] = checked  # when the artifact read again equals the newest one
                artifact, entry["refs"] = self.store_repository(item, options, workspace, object_metadata, counts,
                                                                recorded, spool)
            finally:
                spool.close()
            return artifact
        finally:
            shutil.rmtree(workspace, ignore_errors=True)

    def carry_updates(self, item):
        return self.carry_updates_of.get(item.name, {})

    def fingerprint(self, item, options):
        """Digest of the freshness of the enabled exports (GraphQL listings only; "" otherwise)."""
        freshness = item.data.get("_freshness")
        if not freshness:
            return ""
        parts = {part: freshness[part] for toggle, part in (("issues", "issues"), ("pulls", "pulls"),
                                                            ("releases", "releases"), ("labels", "labels"),
                                                            ("milestones", "milestones")) if options[toggle]}
        return hashlib.sha256(canonical_json(parts)).hexdigest()

    def finish(self, entry, artifact):
        if entry["refs"] is None:
            entry["refs"] = _int(artifact.metadata.get("refs_count"))

    def source_unchanged(self, item, options, recorded):
        """Does GitHub still hold what the recorded artifact holds: options, refs, wiki refs, metadata?"""
        repo = item.data
        if recorded.get("options") != options_digest(options):
            return False
        if recorded.get("metadata_format") != str(fmt.FORMAT_VERSION):
            return False  # made before the stored format changed: exported again
        if not self.refs_unchanged(repo, recorded):
            return False
        if recorded.get("wiki_refs_digest") != self.wiki_refs(repo, options):
            return False
        if self.api == "graphql":
            return self.metadata_fresh(item, options, recorded)
        return self.exports_unchanged(repo, options, _loads(recorded.get("exports")))

    def metadata_fresh(self, item, options, recorded):
        """The listing's freshness as recorded, and the metadata exported (or found equal) within full_refresh_days.

        Edits and deletions of comments do not move what the listing reads; full_refresh_days bounds how
        long such a change can go unnoticed.
        """
        if not recorded.get("fingerprint") or recorded["fingerprint"] != self.fingerprint(item, options):
            return False
        try:
            checked = parse_iso(recorded.get("metadata_checked_at") or "", "metadata_checked_at")
        except BackupError:
            return False
        return self.module.now - checked < datetime.timedelta(days=self.params["full_refresh_days"])

    def refs_unchanged(self, repo, stored):
        """Refs as recorded with the newest artifact? No git call when GitHub reports no push since."""
        if not stored.get("refs_digest"):
            return False
        if stored.get("pushed_at") and stored["pushed_at"] == (repo.get("pushed_at") or ""):
            return True
        return self.remote_refs(repo["clone_url"])[1] == stored["refs_digest"]

    def wiki_refs(self, repo, options):
        """Digest of the wiki's refs ("" without a wiki): a wiki edit does not move the repository's pushed_at."""
        if not (options["wiki"] and repo.get("has_wiki")):
            return ""
        probe = self.wiki_probes.pop(repo["name"], None)
        return probe.result() if probe is not None else self.probe_wiki(repo)

    def probe_wiki(self, repo):
        try:
            return self.remote_refs(wiki_url(repo))[1]
        except CommandFailed:
            return ""  # has_wiki is true for every repository whose wiki is enabled, even if it has no page yet

    def prepare(self, items, history):
        """Probe the wikis of the repositories already backed up, WIKI_PROBES at once: their refs decide whether a
        repository changed (a wiki edit does not move pushed_at, and has_wiki is true also for a wiki never created,
        so each must be asked), and these tiny git requests are not counted by GitHub's API limits."""
        wanted = [item.data for item in items if item.key_name in history and not item.error
                  and self.options_for(item.name)["wiki"] and item.data.get("has_wiki")]
        if wanted:
            self.probe_pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(WIKI_PROBES, len(wanted)))
            self.wiki_probes = {repo["name"]: self.probe_pool.submit(self.probe_wiki, repo) for repo in wanted}

    def close(self):
        if self.probe_pool is not None:
            self.probe_pool.shutdown(wait=True, cancel_futures=True)

    def store_repository(self, item, options, workspace, object_metadata, counts, stored, spool):
        """Mirror one repository and its wiki (its metadata already in ``workspace``/metadata) and store what changed
        since its previous artifact: for the repository and the wiki each a bundle of the new objects (or a full one,
        see _gitchain) and the whole refs list, the LFS objects no earlier link of the chain holds with the list of
        all of them, and the metadata; no artifact when it turns out equal to ``stored`` (its metadata)."""
        with contextlib.ExitStack() as held:  # the cached mirrors, against other runs sharing cache_dir
            return self._store_repository(item, options, workspace, object_metadata, counts, stored, spool, held)

    def _store_repository(self, item, options, workspace, object_metadata, counts, stored, spool, held):
        repo = item.data
        mirror = self.fetch_mirror(item, workspace, held)
        current = {"repo": gc.read_refs(mirror)}
        refs, digest = listed_refs(current["repo"])
        meta_dir = os.path.join(workspace, "metadata")
        if not refs:  # no branch yet: GraphQL names none, REST the one the first push will create; stored as null
            described = {k: v for k, v in repo.items() if not k.startswith("_")}
            with open(os.path.join(meta_dir, "repository.json"), "wb") as handle:
                handle.write(canonical_json(dict(described, default_branch=None)))
            object_metadata["default_branch"] = ""
        wiki = self.fetch_wiki(item, options, workspace, held)
        if wiki:
            current["wiki"] = gc.read_refs(wiki)
        wiki_digest = listed_refs(current["wiki"])[1] if wiki else ""
        object_metadata.update(refs_digest=digest, refs_count=str(len(refs)), wiki_refs_digest=wiki_digest)
        if stored and all(stored.get(k) == object_metadata[k] for k in SAME_AS_STORED):
            return None, len(refs)
        git = self.git_in(repo["clone_url"])
        mirrors = {"repo": mirror, "wiki": wiki} if wiki else {"repo": mirror}
        lfs = self.fetch_lfs(mirror, repo["clone_url"]) if options["lfs"] else None
        kind, why, previous, chain, started = self.chain_plan(item, git, mirrors, current)
        sources, written = [], []
        for part, path in mirrors.items():
            refs_file = os.path.join(workspace, PARTS[part][0])
            with open(refs_file, "wb") as handle:
                handle.write(canonical_json(current[part]))
            sources.append((refs_file, PARTS[part][0]))
            bundle = os.path.join(workspace, PARTS[part][1])
            needs = () if kind == "full" else previous.get(part, {}).values()
            if gc.create_bundle(git, path, bundle, sorted(set(needs) - set(gc.missing(git, path, needs))),
                                refs=current[part]):
                sources.append((bundle, PARTS[part][1]))
                written.append(part)
        if not written:
            kind = "refs" if kind == "incremental" else "empty"  # nothing new; or a repository without a commit
        if lfs is not None:
            stored_lfs = set(previous.get("lfs", ())) if kind != "full" else set()
            try:
                sources.extend(self.stage_lfs(lfs, stored_lfs, workspace))
            except CorruptLfs as exc:  # damaged in the cache: removed and fetched again, never stored as they are
                self.module.warn("%s: %s; fetched again" % (item.name, exc))
                for path in exc.paths:
                    os.remove(path)
                lfs = self.fetch_lfs(mirror, repo["clone_url"])
                sources.extend(self.stage_lfs(lfs, stored_lfs, workspace))
        tips = self.store_tips(item, current, lfs)
        object_metadata.update(format=BUNDLE_FORMAT, bundle=kind, bundle_reason=why[:REASON_CHARS],
                               chain_started=started)
        if options["release_assets"]:
            counts["release_assets"] = self.download_assets(spool, os.path.join(meta_dir, "assets"))
        sources.append((meta_dir, "metadata"))
        facts = {"refs": len(refs), "refs_digest": digest, "wiki_refs_digest": wiki_digest, "bundle": kind, **counts}
        artifact = self.store(item, "tar", tar_stream(sources), object_metadata, contents=lambda: facts,
                              requires=chain + [tips])
        return artifact, len(refs)

    def git_in(self, url):
        """``git(args, what, data=None)`` with the token of ``url``'s server in git's environment (never argv)."""
        return lambda args, what, data=None: self.module.command([self.git] + args, what, env=self.git_env(url),
                                                                 data=data)

    def fetch_mirror(self, item, workspace, held):
        """The repository's bare mirror: from the cache (fetched, checked, rebuilt when it cannot be trusted; locked in
        ``held``), or a fresh clone in ``workspace``."""
        repo = item.data
        path = self.cached(item, repo["clone_url"], workspace, ".git", held)
        branch = repo.get("default_branch")
        if branch and self.cache is not None:  # a fetch does not move HEAD when the default branch changes
            self.git_in(repo["clone_url"])(["-C", path, "symbolic-ref", "HEAD", "refs/heads/" + branch], "git symbolic-ref")
        return path

    def fetch_wiki(self, item, options, workspace, held):
        """The wiki's bare mirror, as the repository's; None without a wiki (has_wiki is true for every repository
        whose wiki is enabled, even if it has no page yet: the clone then fails)."""
        if not (options["wiki"] and item.data.get("has_wiki")):
            return None
        try:
            return self.cached(item, wiki_url(item.data), workspace, ".wiki.git", held)
        except CommandFailed:
            return None

    def cached(self, item, url, workspace, suffix, held):
        if self.cache is None:
            return self.mirror(url, os.path.join(workspace, "repo" + suffix))
        held.enter_context(self.cache.lock(item.data["full_name"], suffix))
        path, done = self.cache.update(self.git_in(url), item.data["full_name"], url, self.module.now, suffix)
        if done.startswith("rebuilt"):
            self.module.warn(self.module.scrub("%s: the mirror cache of %s was cloned again (%s)" % (
                item.name, "the wiki" if suffix == ".wiki.git" else "the repository", done)))
        return path

    def chain_plan(self, item, git, mirrors, current):
        """(kind, why, previous tips, chain, chain_started): ``full`` starts a chain; ``incremental`` stores the
        objects the previous run's tips (``{"repo": {hashed ref: id}, "wiki": ..., "lfs": [oid]}``) do not reach and
        requires the chain before it."""
        now, previous = self.module.now, item.previous
        metadata = previous.metadata if previous is not None else {}

        def full(why):
            return "full", why, {}, [], iso(now)

        if previous is None or metadata.get("format") != BUNDLE_FORMAT:
            return full("no bundle of the repository packed as today's to build on")
        try:
            started = parse_iso(metadata.get("chain_started") or "", "chain_started")
        except BackupError:
            return full("the previous artifact does not say when its chain started")
        if now - started >= datetime.timedelta(days=self.params["full_every_days"]):
            return full("a full bundle every %d days (full_every_days)" % self.params["full_every_days"])
        chain, _tips = chain_of(previous.requires)
        chain.append({"key": previous.key, "size": previous.size, "sha256": previous.sha256})
        gone = self.lost_links(item, chain)
        if gone:
            return full("the chain lacks %s" % ", ".join(gone[:3]))
        try:
            tips = self.read_tips(previous)
        except (BackupError, ValueError, OSError) as exc:
            return full("the previous run's tips cannot be read (%s)" % exc)
        moved = sum(len(gc.rewritten(git, path, tips.get(part, {}), current[part])) for part, path in mirrors.items())
        if moved:
            return full("%d ref(s) rewritten since the previous run (a force-push)" % moved)
        return "incremental", "", tips, chain, metadata["chain_started"]

    def lost_links(self, item, chain):
        """The keys of ``chain`` the store does not hold as recorded (gone, or another size): one listing of the
        repository's objects (a request, not one a link), a ``stat`` for a link stored elsewhere."""
        backend = self.module.backend
        prefix = objects_prefix(self.module.job) + item.key_name + "_"
        listed = {obj.key: obj.size for obj in backend.list(prefix)} if any(
            r["key"].startswith(prefix) for r in chain) else {}
        gone = []
        for link in chain:
            if link["key"].startswith(prefix):
                size = listed.get(link["key"])
            else:
                stored = backend.stat(link["key"])
                size = stored.size if stored is not None else None
            if size != link["size"]:
                gone.append(link["key"])
        return gone

    def store_tips(self, item, refs, lfs):
        """The tips the next run builds on (``refs``: {"repo": refs, "wiki": refs}), by hashed ref name, and the oids of
        the LFS objects, compressed, never encrypted (the backup host holds no private key): an object of their own
        that the artifact requires. {key, size, sha256}."""
        writer = ArtifactWriter(self.module.backend, "gzip", 6)
        tips = {part: gc.hashed_tips(part_refs) for part, part_refs in refs.items()}
        data = canonical_json(dict(tips, lfs=sorted(lfs or ())))
        stored = writer.store(self.module.job, item.key_name + TIPS_SUFFIX, "json", [data], when=self.module.now)
        return {"key": stored.key, "size": stored.size, "sha256": stored.sha256}

    def read_tips(self, previous):
        entry = chain_of(previous.requires)[1]
        if entry is None:
            raise BackupError("%s requires no tips object" % previous.key)
        raw = read_checked(self.module.backend, entry)
        tips = json.loads(gzip.decompress(raw).decode("utf-8"))
        if not (isinstance(tips, dict) and isinstance(tips.get("repo"), dict) and isinstance(tips.get("lfs"), list)):
            raise BackupError("%s holds no tips" % entry["key"])
        return tips

    def fetch_lfs(self, mirror, url):
        """{oid: path} of the LFS objects of every ref, fetched into the mirror (a cached mirror keeps them, so only
        new ones are downloaded)."""
        try:
            self.run_git(["-C", mirror, "lfs", "fetch", "--all"], "git lfs fetch", url)
        finally:  # git-lfs logs a failure with its environment, where git's credentials are: none kept in the cache
            shutil.rmtree(os.path.join(mirror, "lfs", "logs"), ignore_errors=True)
        return lfs_objects(os.path.join(mirror, "lfs", "objects"))

    @staticmethod
    def stage_lfs(lfs, stored, workspace):
        """The archive's ``lfs/objects`` (the objects ``stored`` in earlier links of the chain left out, each checked
        against its oid as it is copied: CorruptLfs) and ``lfs.json``, the oids of all of them."""
        target = os.path.join(workspace, "lfs", "objects")
        shutil.rmtree(os.path.join(workspace, "lfs"), ignore_errors=True)
        os.makedirs(target)
        corrupt = []
        for oid, path in lfs.items():
            if oid not in stored:
                os.makedirs(os.path.join(target, oid[:2], oid[2:4]), exist_ok=True)
                if copy_hashed(path, os.path.join(target, oid[:2], oid[2:4], oid)) != oid:
                    corrupt.append(path)
        if corrupt:
            raise CorruptLfs(corrupt)
        listing = os.path.join(workspace, "lfs.json")
        with open(listing, "wb") as handle:
            handle.write(canonical_json(sorted(lfs)))
        return [(os.path.join(workspace, "lfs"), "lfs"), (listing, "lfs.json")]

    def mirror(self, url, path):
        self.run_git(["clone", "--mirror", "--quiet", "--", url, path], "git clone --mirror", url,
                     before_retry=lambda: shutil.rmtree(path, ignore_errors=True))
        return path


def lfs_objects(root):
    """{oid: path} of the LFS objects under ``root`` (``<oid[:2]>/<oid[2:4]>/<oid>``)."""
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if _OID.match(name):
                found[name] = os.path.join(folder, name)
    return found


def copy_hashed(source, target):
    """Copy ``source`` to ``target``; the sha256 of what was copied."""
    digest = hashlib.sha256()
    with open(source, "rb") as reader, open(target, "wb") as writer:
        for block in iter(lambda: reader.read(1 << 20), b""):
            digest.update(block)
            writer.write(block)
    return digest.hexdigest()


def gather_lfs(folders, into):
    """``into``/lfs/objects: every object ``into``/lfs.json lists, from whichever link of the chain (``folders``)
    stored it, each checked against its oid (its sha256)."""
    with open(os.path.join(into, "lfs.json"), encoding="utf-8") as handle:
        wanted = json.load(handle)
    found = {}
    for folder in folders:
        found.update(lfs_objects(os.path.join(folder, "lfs", "objects")))
    target = os.path.join(into, ".lfs-gathered")
    for oid in wanted:
        if oid not in found:
            raise gc.ChainError("LFS object %s is listed for the day but no link of the chain holds it" % oid)
        os.makedirs(os.path.join(target, "objects", oid[:2], oid[2:4]), exist_ok=True)
        if copy_hashed(found[oid], os.path.join(target, "objects", oid[:2], oid[2:4], oid)) != oid:
            raise gc.ChainError("LFS object %s does not hold the bytes its oid names" % oid)
    os.makedirs(os.path.join(target, "objects"), exist_ok=True)
    shutil.rmtree(os.path.join(into, "lfs"), ignore_errors=True)
    os.rename(target, os.path.join(into, "lfs"))


def spool_asset_files(spool, release):
    """The files of a release's assets, to download once the repository turns out changed (``release`` as REST
    lists it: asset ids are REST's only)."""
    for asset in release.get("assets") or []:
        spool.add_child("asset_files", None, {"folder": str(release.get("tag_name") or release.get("id")),
                                              "url": asset["url"], "name": asset["name"]})


def _count(counts, **increments):
    for name, value in increments.items():
        counts[name] = counts.get(name, 0) + value


def register_token(module, token):
    """A token, and the basic-auth header git sends it in, are secrets of the run from the moment they exist."""
    if token:
        module.add_secret(token, basic_auth(token))


def options_digest(options):
    """What the artifact holds by the options: a change (wiki turned on) means a new artifact."""
    return ",".join("%s=%d" % (k, bool(v)) for k, v in sorted(options.items()))


def wiki_url(repo):
    return re.sub(r"\.git$", "", repo["clone_url"]) + ".wiki.git"


def _graphql_repo(node):
    """A repository of a GraphQL listing in the stored format, with the freshness of its metadata."""
    return dict(fmt.graphql_repository(node), _freshness=freshness_of(node))


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _next_link(headers):
    return parse_link_header(headers.get("link")).get("next")


def _loads(text):
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class GitHubRestorer(FolderRestorer):
    """A repository: its bare mirror, a working clone and the metadata into dest/<repository>; and optionally
    pushed to a GitHub (``push_to``)."""

    SPEC = dict(FolderRestorer.SPEC, push_to=dict(type="dict", options=dict(
        api_url=dict(type="str", default="https://api.github.com"),
        organization=dict(type="str"),
        token=dict(type="str", required=True, no_log=True),
        validate_certs=dict(type="bool", default=True),
    )))

    def unpack(self, item, result, into):
        """The archive into ``into``; an artifact of a chain of bundles (``format: bundle-1``) also reads the objects it
        requires, in order, and builds ``repo.git`` from their bundles and its own, with its refs list."""
        stats = super().unpack(item, result, into)
        artifact = item["artifact"]
        if (artifact.get("metadata") or {}).get("format") != BUNDLE_FORMAT:
            return stats
        try:
            git_bin = self.module.module.get_bin_path("git", required=True)
            folders = []
            chain = chain_of(artifact.get("requires"))[0]
            for index, required in enumerate(chain):
                folder = os.path.join(into, ".chain-%d" % index)
                super().unpack(dict(item, artifact=link_artifact(artifact, required), key=required["key"]), {}, folder)
                folders.append(folder)
            folders.append(into)

            def git(args, what, data=None):
                return self.module.command([git_bin] + args, what, data=data)

            for part, (refs_name, bundle_name) in PARTS.items():
                if not os.path.exists(os.path.join(into, refs_name)):
                    continue  # no wiki that day
                with open(os.path.join(into, refs_name), encoding="utf-8") as handle:
                    refs = json.load(handle)
                mirror = os.path.join(into, part + ".git")
                self.module.command([git_bin, "init", "--quiet", "--bare", mirror], "git init")
                gc.apply_chain(git, mirror, [os.path.join(f, bundle_name) for f in folders
                                             if os.path.exists(os.path.join(f, bundle_name))], refs)
            if os.path.exists(os.path.join(into, "lfs.json")):
                gather_lfs(folders, into)
        except BaseException:
            shutil.rmtree(into, ignore_errors=True)
            raise
        for name in os.listdir(into):
            path = os.path.join(into, name)
            if name.startswith(".chain-"):
                shutil.rmtree(path)
            elif name.endswith(".bundle"):
                os.remove(path)
        result["chain"] = len(folders)
        return stats

    def check(self, item, result):
        """Check mode: the artifact and every object it requires (the links of its chain, read through decryption and
        decompression; its tips object), each against its recorded size and sha256; nothing written."""
        super().check(item, result)
        artifact = item["artifact"]
        if (artifact.get("metadata") or {}).get("format") != BUNDLE_FORMAT:
            return
        chain, tips = chain_of(artifact.get("requires"))
        for required in chain:
            check_artifact(self.runner.stream(dict(item, artifact=link_artifact(artifact, required),
                                                   key=required["key"])), {})
        if tips is not None:
            try:
                read_checked(self.runner.backend, tips)
            except (BackupError, OSError) as exc:
                raise RestoreError("%s requires %s: %s" % (item["key"], tips["key"], exc)) from None
        result["chain"] = len(chain) + 1

    def restore(self, item, result):
        """The whole archive (repo.git, wiki.git, lfs, metadata) into dest/<repository>."""
        target = os.path.join(self.dest, item["name"])
        self.refuse_occupied([target])
        staging = self.staging()
        self.unpack(item, result, staging)
        commit(staging, target)
        result["target"] = target
        mirror = os.path.join(target, "repo.git")
        refs, _digest = local_refs(mirror)
        result["refs"] = len(refs)
        git = self.module.module.get_bin_path("git", required=True)
        if refs:
            self.checkout(git, target, os.path.join(target, item["name"]))
        if self.params["push_to"]:
            result["pushed_to"] = self.push(item, target, git)

    def checkout(self, git, target, clone):
        """A working clone of the restored mirror, its LFS files filled from the restored LFS objects (the mirror is
        a path: git-lfs would ask it for them, and it holds none itself); pointer files without them."""
        lfs = os.path.join(target, "lfs", "objects")
        held = os.path.isdir(lfs) and any(files for _dir, _sub, files in os.walk(lfs))
        self.module.command([git, "clone", "--quiet", os.path.join(target, "repo.git"), clone],
                            "git clone of the restored mirror", env={"GIT_LFS_SKIP_SMUDGE": "1"})
        if held:
            shutil.copytree(lfs, os.path.join(clone, ".git", "lfs", "objects"), dirs_exist_ok=True)
            self.module.command([git, "-C", clone, "lfs", "checkout"], "git lfs checkout of the restored clone")

    def push(self, item, target, git):
        push_to = self.params["push_to"]
        register_token(self.module, push_to["token"])
        client = GitHubClient(push_to["api_url"], push_to["token"], push_to["validate_certs"], self.module.retry)
        owner = push_to["organization"]
        source = item["artifact"].get("metadata", {}).get("repository", "")
        name = source.split("/")[-1] or item["name"]
        try:
            repo = client.post("orgs/%s/repos" % owner if owner else "user/repos",
                               {"name": name, "private": True, "description": "restored from %s" % source}).data
        except GitHubError as exc:
            raise RestoreError("cannot create %s on %s: %s" % (name, push_to["api_url"], exc)) from None
        env = git_env(repo["clone_url"], push_to["token"], push_to["validate_certs"])
        mirror = os.path.join(target, "repo.git")
        self.module.command([git, "-C", mirror, "push", "--quiet", repo["clone_url"]] + list(PUSHED_REFS),
                            "git push to %s" % repo["full_name"], env=env)
        lfs = os.path.join(target, "lfs", "objects")
        if os.path.isdir(lfs):
            shutil.copytree(lfs, os.path.join(mirror, "lfs", "objects"), dirs_exist_ok=True)
            self.module.command([git, "-C", mirror, "lfs", "push", "--all", repo["clone_url"]], "git lfs push", env=env)
        wiki = os.path.join(target, "wiki.git")
        if os.path.isdir(wiki):
            url = wiki_url(repo)
            try:
                self.module.command([git, "-C", wiki, "push", "--quiet", url, "refs/heads/*:refs/heads/*"],
                                    "git push of the wiki", env=git_env(url, push_to["token"], push_to["validate_certs"]))
            except BackupError:
                self.module.warn("%s: the wiki was not pushed: GitHub creates a repository's wiki only from its web "
                                 "page; open the wiki tab of %s once, then restore again with only this item" % (
                                     item["name"], repo["html_url"]))
        return repo["full_name"]

    def drill(self, item, result):
        scratch = self.runner.scratch_folder()
        self.unpack(item, result, scratch)
        refs, digest = local_refs(os.path.join(scratch, "repo.git"))
        metadata = item["artifact"].get("metadata") or {}
        recorded = {"refs": int(metadata["refs_count"]) if metadata.get("refs_count") else None,
                    "refs_digest": metadata.get("refs_digest")}
        recorded.update({k: v for k, v in (item["artifact"].get("contents") or {}).items() if k in ("refs", "refs_digest")})
        result["refs"] = len(refs)
        self.runner.compare(result, {k: v for k, v in recorded.items() if v is not None},
                            {"refs": len(refs), "refs_digest": digest})
        shutil.rmtree(scratch, ignore_errors=True)


# The refs a restore pushes to a GitHub.
PUSHED_REFS = ("refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*", "refs/notes/*:refs/notes/*")

SLICE = ServiceSlice(name="github", module="github_backup", spec=SPEC, backup=GitHubBackup, restorer=GitHubRestorer,
                     restore_spec=GitHubRestorer.SPEC)
