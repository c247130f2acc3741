# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Realistic, deterministic data for the GitHub stand-in, built fast.

Git repositories are written with one ``git fast-import`` per repository (branches, lightweight and annotated tags,
notes), with fixed identities and dates, without user or system git configuration. Repositories live in
``root_dir/<org>/<name>.git``, wikis in ``root_dir/<org>/<name>.wiki.git``.

:func:`build_organization` makes an organization covering the cases a backup tool meets (empty, archived, fork,
wikis, DMCA-blocked, issues disabled, private, odd names, issues, pull requests, reviews, releases with assets, Git LFS);
:func:`build_many` makes many small repositories for a benchmark; :func:`push_commit` and :func:`add_issue` change
upstream between two runs. The builders return descriptions (see :func:`describe_repo`) to compare a restore with.
:func:`add_comment`, :func:`edit_comment`, :func:`delete_comment`, :func:`edit_release`, :func:`delete_label` and
:func:`add_milestone` change GitHub's metadata between two runs, moving the dates GitHub moves.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import re
import shutil
import subprocess
import time
import typing as t

from ansible_collections.corebackup.backup.tests.testbed.github_standin import (
    Comment,
    GitHubStandIn,
    Issue,
    Label,
    Milestone,
    Release,
    Repo,
    git_env,
    lfs_pointer,
    run_git,
    utc_iso,
)

BASE_EPOCH = 1672531200  # 2023-01-01T00:00:00Z
AUTHOR = ("Ada Lovelace", "ada@example.com")
COMMITTER = ("GitHub", "noreply@github.com")
USERS = ("octocat", "hubot", "monalisa", "defunkt")
DEFAULT_LABELS = (
    ("bug", "d73a4a", "Something isn't working"),
    ("documentation", "0075ca", "Improvements or additions to documentation"),
    ("duplicate", "cfd3d7", "This issue or pull request already exists"),
    ("enhancement", "a2eeef", "New feature or request"),
    ("good first issue", "7057ff", "Good for newcomers"),
    ("help wanted", "008672", "Extra attention is needed"),
    ("invalid", "e4e669", "This doesn't seem right"),
    ("question", "d876e3", "Further information is requested"),
    ("wontfix", "ffffff", "This will not be worked on"),
)

Description = dict[str, dict[str, t.Any]]
LFS_POINTER = re.compile(rb"^version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize ([0-9]+)\n")
LFS_POINTER_MAX_SIZE = 1024  # git-lfs does not look at bigger blobs
LFS_ATTRIBUTES = "*.bin filter=lfs diff=lfs merge=lfs -text\n"


def fixed_git_env(epoch: int = BASE_EPOCH) -> dict[str, str]:
    """git's environment for the builders: fixed names and dates, no user or system configuration."""
    date = "%d +0000" % epoch
    return git_env({"GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1], "GIT_AUTHOR_DATE": date,
                    "GIT_COMMITTER_NAME": COMMITTER[0], "GIT_COMMITTER_EMAIL": COMMITTER[1], "GIT_COMMITTER_DATE": date})


def init_bare(git_dir: str, default_branch: str = "main") -> None:
    os.makedirs(os.path.dirname(git_dir), exist_ok=True)
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch", default_branch, git_dir], check=True, env=fixed_git_env(),
                   capture_output=True)


class FastImportStream:
    """A ``git fast-import`` stream: commits (files given inline), tags, notes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.marks = 0

    def _data(self, payload: str | bytes) -> None:
        raw = payload.encode("utf-8") if isinstance(payload, str) else payload
        self.chunks.append(b"data %d\n%s\n" % (len(raw), raw))

    def commit(self, ref: str, message: str, when: int, files: dict[str, str | bytes], parent: int | str | None = None,
               author: tuple[str, str] = AUTHOR) -> int:
        """A commit on ``ref`` changing ``files``; ``parent``: a mark, a ref/sha (``refs/heads/main^0``), or None to continue
        ``ref`` (or start a root commit). Returns the commit's mark."""
        self.marks += 1
        mark = self.marks
        self.chunks.append(("commit %s\nmark :%d\nauthor %s <%s> %d +0000\ncommitter %s <%s> %d +0000\n" % (
            ref, mark, author[0], author[1], when, COMMITTER[0], COMMITTER[1], when)).encode("utf-8"))
        self._data(message)
        if isinstance(parent, int):
            self.chunks.append(b"from :%d\n" % parent)
        elif parent:
            self.chunks.append(("from %s\n" % parent).encode("utf-8"))
        for path, content in files.items():
            self.chunks.append(("M 100644 inline %s\n" % path).encode("utf-8"))
            self._data(content)
        self.chunks.append(b"\n")
        return mark

    def lightweight_tag(self, name: str, mark: int) -> None:
        self.chunks.append(("reset refs/tags/%s\nfrom :%d\n\n" % (name, mark)).encode("utf-8"))

    def annotated_tag(self, name: str, mark: int, message: str, when: int) -> None:
        self.chunks.append(("tag %s\nfrom :%d\ntagger %s <%s> %d +0000\n" % (name, mark, AUTHOR[0], AUTHOR[1], when)).encode("utf-8"))
        self._data(message)

    def notes(self, notes: dict[int, str], when: int, ref: str = "refs/notes/commits") -> None:
        self.marks += 1
        self.chunks.append(("commit %s\nmark :%d\ncommitter %s <%s> %d +0000\n" % (ref, self.marks, AUTHOR[0], AUTHOR[1], when)).encode())
        self._data("Notes added by 'git notes add'\n")
        for target, text in notes.items():
            self.chunks.append(b"N inline :%d\n" % target)
            self._data(text)
        self.chunks.append(b"\n")

    def run(self, git_dir: str) -> None:
        stream = b"".join(self.chunks) + b"done\n"
        result = subprocess.run(["git", "--git-dir", git_dir, "fast-import", "--quiet", "--done"], input=stream, capture_output=True,
                                env=fixed_git_env(), check=False)
        if result.returncode:
            raise RuntimeError("git fast-import into %s failed: %s" % (git_dir, result.stderr.decode("utf-8", "replace")))


def git_refs(git_dir: str) -> dict[str, str]:
    """``git for-each-ref`` of a repository: {refname: object id} (tags: the tag object for annotated ones)."""
    if not os.path.isdir(git_dir):
        return {}
    out = run_git(git_dir, "for-each-ref", "--format=%(refname) %(objectname)").stdout.decode()
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def _repo_history(stream: FastImportStream, name: str, rng: random.Random, default_branch: str, start: int, commits: int = 5) -> int:
    """A small but complete history: ``commits`` commits on the default branch, ``develop`` and ``feature/login``
    branches, a lightweight and two annotated tags, notes on two commits. Returns the time of the last commit."""
    when = start
    module = name.replace(".", "_").replace("-", "_").lstrip("_") or "pkg"
    head = "refs/heads/" + default_branch
    marks = []
    for index in range(commits):
        when += 3600 + rng.randrange(600)
        files: dict[str, str | bytes] = {"docs/page-%d.md" % index: "# Page %d of %s\n\n%s\n" % (index, name, rng.random())}
        if index == 0:
            files.update({"README.md": "# %s\n\nA repository of the GitHub stand-in.\n" % name, ".gitignore": "*.pyc\n__pycache__/\n",
                          "src/%s/__init__.py" % module: "VERSION = '0.%d'\n" % index, "LICENSE": "GPL-3.0-or-later\n"})
        else:
            files["src/%s/__init__.py" % module] = "VERSION = '0.%d'\n" % index
        marks.append(stream.commit(head, "%s: change %d\n\nDetails of change %d.\n" % (name, index + 1, index + 1), when, files,
                                   parent=None))
    base_dev = marks[min(2, len(marks) - 1)]
    base_feature = marks[min(3, len(marks) - 1)]
    when += 600
    stream.commit("refs/heads/develop", "Start develop\n", when, {"DEVELOP.md": "develop %s\n" % name}, parent=base_dev)
    when += 600
    stream.commit("refs/heads/develop", "More develop\n", when, {"DEVELOP.md": "develop %s, second\n" % name})
    when += 600
    stream.commit("refs/heads/feature/login", "Add login\n", when, {"src/%s/login.py" % module: "def login():\n    return True\n"},
                  parent=base_feature)
    stream.lightweight_tag("v0.1", marks[min(1, len(marks) - 1)])
    stream.annotated_tag("v0.9-rc1", base_feature, "Release candidate\n", when)
    stream.annotated_tag("v1.0", marks[-1], "Version 1.0\n", when + 60)
    stream.notes({marks[-1]: "Reviewed-by: Hubot <hubot@example.com>\n", base_dev: "Tested-by: CI\n"}, when + 120)
    return when + 120


def lfs_references(git_dir: str) -> dict[str, int]:
    """The Git LFS objects the history of any ref of a repository points at: {oid: size}."""
    if not os.path.isdir(git_dir) or not run_git(git_dir, "for-each-ref", "--count=1").stdout.strip():
        return {}
    listed = run_git(git_dir, "rev-list", "--all", "--objects").stdout.split(b"\n")
    objects = b"".join(line[:40] + b"\n" for line in listed if len(line) >= 40)
    checked = run_git(git_dir, "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)", data=objects).stdout.decode()
    small = [f[0] for f in (line.split() for line in checked.splitlines()) if len(f) == 3 and f[1] == "blob" and int(f[2]) < LFS_POINTER_MAX_SIZE]
    if not small:
        return {}
    contents = run_git(git_dir, "cat-file", "--batch", data="".join(sha + "\n" for sha in small).encode()).stdout
    found: dict[str, int] = {}
    position = 0
    while position < len(contents):
        end = contents.index(b"\n", position)
        size = int(contents[position:end].split()[2])
        match = LFS_POINTER.match(contents[end + 1:end + 1 + size])
        if match:
            found[match.group(1).decode()] = int(match.group(2))
        position = end + 1 + size + 1
    return found


def _lfs_history(stream: FastImportStream, rng: random.Random, default_branch: str, when: int) -> tuple[int, list[bytes]]:
    """Git LFS on top of :func:`_repo_history`: ``.gitattributes`` and pointer files on the default branch (one of
    them changed later, so that its first version is only in the history) and one more on the ``assets`` branch.
    Returns the time of the last commit and the contents of the LFS objects, to register with the stand-in."""
    head = "refs/heads/" + default_branch
    blobs = [rng.randbytes(size) for size in (2048 + rng.randrange(512), 70000 + rng.randrange(4096), 1536, 300000 + rng.randrange(4096))]
    when += 600
    stream.commit(head, "Track *.bin with Git LFS\n", when, {".gitattributes": LFS_ATTRIBUTES, "data/model.bin": lfs_pointer(blobs[0]),
                                                             "data/table.bin": lfs_pointer(blobs[1])})
    when += 600
    retrained = stream.commit(head, "Retrain the model\n", when, {"data/model.bin": lfs_pointer(blobs[2])})
    when += 600
    stream.commit("refs/heads/assets", "Add the big asset\n", when, {"assets/big.bin": lfs_pointer(blobs[3])}, parent=retrained)
    return when, blobs


def _build_wiki(wiki_dir: str, name: str, start: int) -> None:
    init_bare(wiki_dir, "master")
    stream = FastImportStream()
    stream.commit("refs/heads/master", "Initial Home page\n", start + 60, {"Home.md": "Welcome to the %s wiki!\n" % name})
    pages = {"Setup.md": "# Setup\n\npip install %s\n" % name, "_Sidebar.md": "* [[Home]]\n* [[Setup]]\n"}
    stream.commit("refs/heads/master", "Add Setup page\n", start + 120, pages)
    stream.run(wiki_dir)


def _add_labels(standin: GitHubStandIn, repo: Repo) -> None:
    for name, color, description in DEFAULT_LABELS:
        standin.github.add_label(repo, name, color, description, default=True)


def _add_metadata(standin: GitHubStandIn, repo: Repo, rng: random.Random, start: int, issues: int, pulls: int, releases: int,
                  milestones: int) -> None:
    """Issues with comments, pull requests with reviews and review comments, milestones, releases with one asset."""
    gh = standin.github
    refs = git_refs(repo.git_dir)
    branches = {r[len("refs/heads/"):]: sha for r, sha in refs.items() if r.startswith("refs/heads/")}
    base_sha = branches.get(repo.default_branch, "0" * 40)
    heads = sorted(b for b in branches if b != repo.default_branch) or [repo.default_branch]
    clock = [start]

    def tick() -> str:
        clock[0] += 300 + rng.randrange(300)
        return utc_iso(clock[0])

    for number in range(milestones):
        gh.add_milestone(repo, "v%d.%d" % (1 + number // 2, number % 2), rng.choice(USERS), state="closed" if number == 0 and milestones > 1 else "open",
                         description="Milestone %d" % (number + 1), created_at=tick(), due_on=utc_iso(start + 86400 * (30 + number)))
    label_names = [label.name for label in repo.labels]
    kinds = ["issue"] * issues + ["pull"] * pulls
    rng.shuffle(kinds)
    for index, kind in enumerate(kinds):
        user = rng.choice(USERS)
        closed = rng.random() < 0.4
        labels = rng.sample(label_names, min(len(label_names), rng.randrange(3)))
        milestone = rng.randrange(1, milestones + 1) if milestones and rng.random() < 0.5 else None
        created = tick()
        closed_at = utc_iso(clock[0] + 7200) if closed else None
        if kind == "issue":
            issue = gh.add_issue(repo, "Issue %d: %s" % (index + 1, rng.choice(("crash on start", "docs typo", "add option", "slow sync"))), user,
                                 body="Steps to reproduce:\n\n1. run it\n2. see it fail\n", state="closed" if closed else "open",
                                 created_at=created, closed_at=closed_at, labels=labels, milestone=milestone)
        else:
            head = heads[index % len(heads)]
            merged = closed and rng.random() < 0.7
            issue = gh.add_pull(repo, "PR %d: merge %s" % (index + 1, head), user, head_ref=head, head_sha=branches.get(head, base_sha),
                                base_ref=repo.default_branch, base_sha=base_sha, body="This changes %s.\n" % head,
                                state="closed" if closed else "open", merged=merged, created_at=created, closed_at=closed_at, labels=labels,
                                milestone=milestone, draft=not closed and rng.random() < 0.2)
            reviewer = rng.choice([u for u in USERS if u != user])
            review = gh.add_review(repo, issue.number, reviewer, "CHANGES_REQUESTED", "Please fix the nits.", submitted_at=tick())
            first = gh.add_review_comment(repo, issue.number, reviewer, "Nit: rename this.", "README.md", line=1 + rng.randrange(5),
                                          review=review, created_at=tick())
            gh.add_review_comment(repo, issue.number, user, "Done.", "README.md", line=first.line, in_reply_to=first, created_at=tick())
            gh.add_review(repo, issue.number, reviewer, "APPROVED", "", submitted_at=tick())
        for comment in range(rng.randrange(4)):
            gh.add_comment(repo, issue.number, rng.choice(USERS), "Comment %d on #%d\n" % (comment + 1, issue.number), created_at=tick())
    tags = [r[len("refs/tags/"):] for r in refs if r.startswith("refs/tags/")]
    for index in range(releases):
        tag = ("v1.0", "v0.9-rc1", "v0.1")[index % 3] if tags else "v%d.0" % (index + 1)
        release = gh.add_release(repo, tag, "%s %s" % (repo.name, tag), rng.choice(USERS), body="## Changes\n\n* things\n",
                                 prerelease="rc" in tag, created_at=tick())
        gh.add_asset(repo, release, "%s-%s.tar.gz" % (repo.name, tag.lstrip("v")), rng.randbytes(1024 + rng.randrange(4096)),
                     content_type="application/gzip", created_at=release.created_at)


def describe_repo(standin: GitHubStandIn, repo: Repo) -> dict[str, t.Any]:
    """What a backup of ``repo`` should hold: flags, refs of the repository and wiki, counts of its metadata, and
    ``lfs_objects``: {oid: size} of the Git LFS objects its refs point at (``{}`` for a repository without LFS objects
    in the stand-in, which is not searched for pointers)."""
    with standin.github.lock:
        issues = list(repo.issues.values())
        pulls = [i for i in issues if i.pull is not None]
        facts = {
            "name": repo.name, "full_name": repo.full_name, "private": repo.private, "archived": repo.archived, "fork": repo.fork,
            "empty": repo.empty, "dmca": repo.dmca, "has_issues": repo.has_issues, "has_wiki": repo.has_wiki, "default_branch": repo.default_branch,
            "git_dir": repo.git_dir, "wiki_dir": repo.wiki_dir, "wiki": repo.has_wiki and repo.wiki_exists, "pushed_at": repo.pushed_at,
            "updated_at": repo.updated_at, "issues": len(issues) - len(pulls), "pulls": len(pulls),
            "issue_comments": sum(len(i.comments) for i in issues), "reviews": sum(len(i.pull.reviews) for i in pulls if i.pull),
            "review_comments": sum(len(i.pull.review_comments) for i in pulls if i.pull), "releases": len(repo.releases),
            "assets": sum(len(r.assets) for r in repo.releases), "labels": len(repo.labels), "milestones": len(repo.milestones),
        }
        has_lfs = bool(repo.lfs_objects)
    facts["refs"] = git_refs(repo.git_dir)
    facts["lfs_objects"] = lfs_references(repo.git_dir) if has_lfs else {}
    facts["wiki_refs"] = git_refs(repo.wiki_dir) if facts["wiki"] else {}
    return facts


# The special repositories of build_organization: name -> options.
SPECIAL_REPOS: dict[str, dict[str, t.Any]] = {
    "empty-repo": {"empty": True, "description": "Nothing pushed yet"},
    "archived-repo": {"archived": True, "issues": 3, "releases": 1},
    "core-lib": {"wiki": True, "issues": 4, "pulls": 2, "releases": 1, "milestones": 1, "topics": ["library", "python"]},
    "core-lib-fork": {"fork_of": "core-lib"},
    "wiki-repo": {"wiki": True, "issues": 1},
    "tracker": {"issues": 14, "pulls": 8, "releases": 2, "milestones": 3, "topics": ["issues"]},
    "releases-repo": {"releases": 3},
    "dotted.name": {"issues": 1},
    "my.repo.js": {"language": "JavaScript", "pulls": 1},
    "under_score_repo": {},
    "dash-repo-name": {},
    ".github": {"description": "Community health files"},
    "dmca-repo": {"dmca": True, "issues": 2},
    "no-issues": {"has_issues": False, "pulls": 2},
    "secret-repo": {"private": True, "wiki": True, "issues": 3, "pulls": 1, "releases": 1},
    "trunk-default": {"default_branch": "trunk", "issues": 1},
    "no-wiki-flag": {"has_wiki": False},
    "lfs-repo": {"private": True, "lfs": True, "issues": 1, "description": "Large files in Git LFS"},
}
# Built after the ordinary repositories, so that adding them changed nothing about the others.
_LATE_REPOS = ("lfs-repo",)


def _build_repo(standin: GitHubStandIn, org: str, root_dir: str, name: str, options: dict[str, t.Any], index: int, seed: t.Any) -> Repo:
    rng = random.Random("%s:%s:%s" % (seed, org, name))
    git_dir = os.path.join(root_dir, org, name + ".git")
    default_branch = options.get("default_branch", "main")
    start = BASE_EPOCH + index * 86400
    shutil.rmtree(git_dir, ignore_errors=True)
    init_bare(git_dir, default_branch)
    last = start
    parent = None
    lfs_blobs: list[bytes] = []
    if not options.get("empty"):
        stream = FastImportStream()
        fork_of = options.get("fork_of")
        if fork_of:
            parent = standin.github.repo(org, fork_of)
            source_rng = random.Random("%s:%s:%s" % (seed, org, fork_of))
            last = _repo_history(stream, fork_of, source_rng, parent.default_branch if parent else "main", BASE_EPOCH + _fork_index(fork_of) * 86400)
            last += 3600
            stream.commit("refs/heads/" + default_branch, "Change in the fork\n", last, {"FORK.md": "forked from %s\n" % fork_of})
        else:
            last = _repo_history(stream, name, rng, default_branch, start, commits=options.get("commits", 5))
        if options.get("lfs"):
            last, lfs_blobs = _lfs_history(stream, rng, default_branch, last)
        stream.run(git_dir)
    if options.get("wiki"):
        shutil.rmtree(git_dir[:-4] + ".wiki.git", ignore_errors=True)
        _build_wiki(git_dir[:-4] + ".wiki.git", name, last)
    private = bool(options.get("private"))
    repo = standin.github.add_repo(
        org, name, git_dir, created_at=utc_iso(start), pushed_at=utc_iso(last), parent=parent, empty=bool(options.get("empty")),
        private=private, description=options.get("description", "The %s repository" % name), archived=bool(options.get("archived")),
        has_issues=options.get("has_issues", True), has_wiki=options.get("has_wiki", True), default_branch=default_branch,
        topics=list(options.get("topics", [])), dmca=bool(options.get("dmca")), language=options.get("language", "Python"),
        homepage=None, stargazers_count=rng.randrange(50))
    for blob in lfs_blobs:
        standin.github.add_lfs_object(repo, blob)
    _add_labels(standin, repo)
    if options.get("custom_label", True):
        standin.github.add_label(repo, "area/%s" % name.strip(".").split(".")[0], "1d76db", "Custom label")
    _add_metadata(standin, repo, rng, last, issues=options.get("issues", 0), pulls=options.get("pulls", 0),
                  releases=options.get("releases", 0), milestones=options.get("milestones", 0))
    with standin.github.lock:
        repo.updated_at = max(repo.updated_at, repo.pushed_at)
    return repo


def _fork_index(name: str) -> int:
    return list(SPECIAL_REPOS).index(name)


def build_organization(standin: GitHubStandIn, org: str, root_dir: str, count: int = 30, seed: t.Any = 0) -> Description:
    """Organization ``org`` with at least ``count`` repositories: the :data:`SPECIAL_REPOS` and ordinary ones
    (``service-NN``, a few with issues, pull requests or releases), and last the repositories added to the special
    ones later (``lfs-repo``), on top of ``count``. Returns {name: :func:`describe_repo` facts}."""
    standin.github.add_org(org, name=org.title(), description="Organization %s of the GitHub stand-in" % org)
    plan = {name: options for name, options in SPECIAL_REPOS.items() if name not in _LATE_REPOS}
    rng = random.Random("%s:%s" % (seed, org))
    number = 0
    while len(plan) < count:
        number += 1
        plan["service-%02d" % number] = {"issues": rng.randrange(3), "pulls": rng.randrange(2), "releases": int(rng.random() < 0.3),
                                         "milestones": int(rng.random() < 0.3)}
    plan.update((name, SPECIAL_REPOS[name]) for name in _LATE_REPOS)
    repos = [_build_repo(standin, org, root_dir, name, options, index, seed) for index, (name, options) in enumerate(plan.items())]
    return {repo.name: describe_repo(standin, repo) for repo in repos}


def build_many(standin: GitHubStandIn, org: str, root_dir: str, count: int = 200, seed: t.Any = 0, metadata: bool = True,
               describe: bool = True, workers: int = 8) -> Description:
    """``count`` small repositories ``bench-NNN`` in organization ``org``, fast: one template history made with
    git fast-import, hard-linked into each repository, plus a commit of its own. With ``metadata``, each has the
    default labels, an issue with a comment and a reviewed pull request. Returns {name: facts} (refs only when
    ``describe``)."""
    standin.github.add_org(org)
    template = os.path.join(root_dir, ".templates", "%s-template.git" % org)
    shutil.rmtree(template, ignore_errors=True)
    init_bare(template)
    stream = FastImportStream()
    last = _repo_history(stream, "template", random.Random("%s:template" % seed), "main", BASE_EPOCH)
    stream.run(template)

    def make(index: int) -> tuple[str, str, int]:
        name = "bench-%03d" % index
        git_dir = os.path.join(root_dir, org, name + ".git")
        shutil.rmtree(git_dir, ignore_errors=True)
        _link_tree(template, git_dir)
        when = last + 60 * (index + 1)
        unique = FastImportStream()
        unique.commit("refs/heads/main", "Configure %s\n" % name, when, {"ID": "%s %s\n" % (name, seed)}, parent="refs/heads/main^0")
        unique.run(git_dir)
        return name, git_dir, when

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        built = list(pool.map(make, range(1, count + 1)))
    repos = []
    for index, (name, git_dir, when) in enumerate(built):
        rng = random.Random("%s:%s:%s" % (seed, org, name))
        repo = standin.github.add_repo(org, name, git_dir, created_at=utc_iso(BASE_EPOCH + index * 60), pushed_at=utc_iso(when), empty=False,
                                       description="Benchmark repository %d" % (index + 1), has_wiki=index % 10 == 0)
        if metadata:
            _add_labels(standin, repo)
            _add_metadata(standin, repo, rng, when, issues=1, pulls=1, releases=0, milestones=0)
        repos.append(repo)
    if not describe:
        return {repo.name: {"full_name": repo.full_name, "git_dir": repo.git_dir} for repo in repos}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        facts = list(pool.map(lambda r: describe_repo(standin, r), repos))
    return {f["name"]: f for f in facts}


def _link_tree(source: str, dest: str) -> None:
    """Copy a bare repository, hard-linking its files (git replaces files, it never rewrites them in place)."""
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    shutil.copytree(source, dest, copy_function=link)


def push_commit(standin: GitHubStandIn, org: str, repo: str, message: str | None = None, files: dict[str, str] | None = None) -> str:
    """A new commit on the default branch of ``org/repo`` (the first one of an empty repository); updates pushed_at.
    Returns the new commit id."""
    record = standin.github.repo(org, repo)
    if record is None:
        raise KeyError("%s/%s" % (org, repo))
    now = int(time.time())
    head = "refs/heads/" + record.default_branch
    exists = run_git(record.git_dir, "rev-parse", "--verify", "--quiet", head, check=False).returncode == 0
    stream = FastImportStream()
    stream.commit(head, message or "Upstream change at %s\n" % utc_iso(now), now,
                  files or {"CHANGES.md": "change at %d %f\n" % (now, time.time())}, parent=head + "^0" if exists else None)
    stream.run(record.git_dir)
    standin.github.refresh_git(record, utc_iso(now))
    return run_git(record.git_dir, "rev-parse", head).stdout.decode().strip()


def add_issue(standin: GitHubStandIn, org: str, repo: str, title: str, user: str = "octocat", body: str | None = None) -> Issue:
    """A new open issue in ``org/repo`` (now); updates the repository's updated_at."""
    record = standin.github.repo(org, repo)
    if record is None:
        raise KeyError("%s/%s" % (org, repo))
    return standin.github.add_issue(record, title, user, body=body or "Reported at %s\n" % utc_iso())


def edit_wiki(standin: GitHubStandIn, org: str, repo: str, page: str = "Home.md") -> str:
    """A new commit in the wiki of ``org/repo``; like on GitHub, the repository's pushed_at does not move."""
    record = standin.github.repo(org, repo)
    if record is None or not record.wiki_exists:
        raise KeyError("%s/%s has no wiki" % (org, repo))
    now = int(time.time())
    stream = FastImportStream()
    stream.commit("refs/heads/master", "Edit %s\n" % page, now, {page: "Edited at %f\n" % time.time()},
                  parent="refs/heads/master^0")
    stream.run(record.wiki_dir)
    return run_git(record.wiki_dir, "rev-parse", "refs/heads/master").stdout.decode().strip()


def add_big_repo(standin: GitHubStandIn, org: str, root_dir: str, name: str, size: int, seed: t.Any = 0) -> Repo:
    """A repository with one incompressible file of ``size`` bytes: an artifact that takes a while to store
    (several S3 parts), to stop a run in the middle of it."""
    git_dir = os.path.join(root_dir, org, name + ".git")
    shutil.rmtree(git_dir, ignore_errors=True)
    init_bare(git_dir)
    stream = FastImportStream()
    payload = random.Random("%s:%s" % (seed, name)).randbytes(size)
    stream.commit("refs/heads/main", "Add the blob\n", BASE_EPOCH, {"blob.bin": payload})
    stream.run(git_dir)
    return standin.github.add_repo(org, name, git_dir, pushed_at=utc_iso(BASE_EPOCH), has_wiki=False)


def _repo_record(standin: GitHubStandIn, org: str, repo: str) -> Repo:
    record = standin.github.repo(org, repo)
    if record is None:
        raise KeyError("%s/%s" % (org, repo))
    return record


def add_comment(standin: GitHubStandIn, org: str, repo: str, number: int, body: str | None = None, user: str = "octocat") -> Comment:
    """A new comment on issue (or pull request) ``number``; like on GitHub it moves the issue's ``updated_at``."""
    return standin.github.add_comment(_repo_record(standin, org, repo), number, user, body or "Comment at %s\n" % utc_iso())


def edit_comment(standin: GitHubStandIn, org: str, repo: str, number: int, index: int = -1, body: str | None = None) -> Comment:
    """Edit the ``index``-th comment of issue ``number``: the comment's ``updated_at`` moves, the issue's does not."""
    record = _repo_record(standin, org, repo)
    comment = record.issues[number].comments[index]
    return standin.github.edit_comment(record, comment, body or "Edited at %f\n" % time.time())


def delete_comment(standin: GitHubStandIn, org: str, repo: str, number: int, index: int = -1) -> Comment:
    """Delete the ``index``-th comment of issue ``number``."""
    record = _repo_record(standin, org, repo)
    comment = record.issues[number].comments[index]
    standin.github.delete_comment(record, comment)
    return comment


def edit_release(standin: GitHubStandIn, org: str, repo: str, tag_name: str, **changes: t.Any) -> Release:
    """Edit the release of ``tag_name`` (default: a new body); only the release's ``updated_at`` moves."""
    record = _repo_record(standin, org, repo)
    release = next(r for r in record.releases if r.tag_name == tag_name)
    return standin.github.edit_release(record, release, **(changes or {"body": "Edited at %f\n" % time.time()}))


def delete_label(standin: GitHubStandIn, org: str, repo: str, name: str) -> Label:
    """Delete a label of ``org/repo`` (it leaves the issues that had it)."""
    return standin.github.delete_label(_repo_record(standin, org, repo), name)


def add_milestone(standin: GitHubStandIn, org: str, repo: str, title: str, creator: str = "octocat", **fields: t.Any) -> Milestone:
    """A new milestone of ``org/repo`` (now)."""
    return standin.github.add_milestone(_repo_record(standin, org, repo), title, creator, **fields)


def add_many_issues(standin: GitHubStandIn, org: str, repo: str, count: int, seed: t.Any = 0, busy_every: int = 50,
                    busy_comments: int = 25) -> dict[str, int]:
    """``count`` issues in ``org/repo`` at once, written into the stand-in's model (no HTTP): a busy tracker for a
    benchmark. Each has 0 to 3 comments, labels of the repository, some are closed; every ``busy_every``-th issue has
    ``busy_comments`` comments (more than one page of a nested connection). Dates follow the repository's
    ``pushed_at``, a few minutes apart, deterministic for a ``seed``. Returns {"issues": n, "comments": n}."""
    record = _repo_record(standin, org, repo)
    gh = standin.github
    rng = random.Random("%s:%s:%s:issues" % (seed, org, repo))
    clock = [BASE_EPOCH + 400 * 86400]

    def tick() -> str:
        clock[0] += 60 + rng.randrange(240)
        return utc_iso(clock[0])

    comments = 0
    with gh.lock:
        label_names = [label.name for label in record.labels]
        for index in range(count):
            closed = rng.random() < 0.4
            created = tick()
            issue = gh.add_issue(record, "Issue %d: %s" % (index + 1, rng.choice(("crash on start", "docs typo", "add option", "slow sync"))),
                                 rng.choice(USERS), body="Steps to reproduce:\n\n1. run it\n2. see it fail (%d)\n" % index,
                                 state="closed" if closed else "open", created_at=created,
                                 closed_at=utc_iso(clock[0] + 3600) if closed else None,
                                 labels=rng.sample(label_names, min(len(label_names), rng.randrange(3))))
            many = busy_comments if busy_every and (index + 1) % busy_every == 0 else rng.randrange(4)
            for number in range(many):
                gh.add_comment(record, issue.number, rng.choice(USERS), "Comment %d on #%d\n" % (number + 1, issue.number),
                               created_at=tick())
            comments += many
    return {"issues": count, "comments": comments}


def add_wiki(standin: GitHubStandIn, org: str, repo: str) -> str:
    """A wiki with two commits (Home, Setup and a sidebar) for ``org/repo``, as :func:`build_organization` makes them;
    turns has_wiki on. Returns the wiki's git directory."""
    record = _repo_record(standin, org, repo)
    shutil.rmtree(record.wiki_dir, ignore_errors=True)
    _build_wiki(record.wiki_dir, repo, BASE_EPOCH)
    with standin.github.lock:
        record.has_wiki = True
    return record.wiki_dir
