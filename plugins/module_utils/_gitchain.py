# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""A repository's history as a chain of git bundles: a full bundle, then incremental ones, and the refs of each day.

A run stores what changed since the run before it: an *incremental* bundle whose prerequisites are the tips the
previous run recorded (never ``--since``: commit times are free text), or nothing but the list of refs when no
object is new. A *full* bundle starts a chain: when no kept set holds one for the repository, every
``full_every_days``, when the packing changes, and when a recorded tip is no ancestor of the ref's new tip (a
force-push, rewritten history), GitHub's regenerated ``refs/pull/<n>/merge`` excepted.

Every run records the full list of refs and their targets: a deleted branch, or a tag created on an old commit,
cannot be expressed by a bundle, and is restored from that list. A restore applies the chain in order (each bundle
checked with ``git bundle verify`` against what the chain built so far), sets the refs to the day's list, and checks
the result with ``git fsck``.

Every function takes ``git``, a callable ``git(args, what, data=None) -> stdout`` that runs git with ``data`` on its
standard input (with the caller's retries and environment) and raises BackupError on failure.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import typing as t

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError

# Refs GitHub writes itself and rewrites at will: a merge ref's new tip need not descend from its old one.
REGENERATED = re.compile(r"^refs/pull/\d+/merge$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
# Object ids asked of one ``git cat-file --batch-check``: its answers (about 50 bytes each) must fit in a pipe (64 KiB)
# while the caller is still writing the questions, or both wait for ever.
BATCH = 1000


class ChainError(BackupError):
    """A chain cannot be built or applied as recorded."""


Git = t.Callable[..., str]


def refs_of(git: Git, repo: str) -> dict[str, str]:
    """{ref name: object id} of every ref of ``repo`` (branches, tags, notes, pull refs), and ``HEAD`` as
    ``ref: <target>`` when it is symbolic."""
    refs = {}
    listing = git(["-C", repo, "for-each-ref", "--format=%(objectname) %(refname)"], "git for-each-ref")
    for line in listing.splitlines():
        if line.strip():
            sha, name = line.split(" ", 1)
            refs[name] = sha
    try:
        head = git(["-C", repo, "symbolic-ref", "-q", "HEAD"], "git symbolic-ref").strip()
    except BackupError:
        head = ""
    if head:
        refs["HEAD"] = "ref: " + head
    return refs


def read_refs(repo: str) -> dict[str, str]:
    """:func:`refs_of` read from the repository's files, without a process: loose refs win over packed ones; a
    ``.lock`` file is a ref being written, not a ref."""
    if os.path.isdir(os.path.join(repo, "reftable")):
        raise BackupError("%s keeps its refs in a reftable, which this collection does not read" % repo)
    refs = {}
    packed = os.path.join(repo, "packed-refs")
    if os.path.exists(packed):
        with open(packed, encoding="utf-8") as handle:
            for line in handle:
                if line[:1] not in ("#", "^") and " " in line:
                    sha, name = line.rstrip("\n").split(" ", 1)
                    refs[name] = sha
    refs_root = os.path.join(repo, "refs")
    for dirpath, _dirnames, filenames in os.walk(refs_root):
        for filename in filenames:
            if filename.endswith(".lock"):
                continue
            path = os.path.join(dirpath, filename)
            with open(path, encoding="utf-8") as handle:
                content = handle.read().strip()
            if content and not content.startswith("ref:"):
                refs["refs/" + os.path.relpath(path, refs_root).replace(os.sep, "/")] = content
    try:
        with open(os.path.join(repo, "HEAD"), encoding="utf-8") as handle:
            head = handle.read().strip()
    except OSError:
        head = ""
    if head.startswith("ref: "):
        refs["HEAD"] = head
    return refs


def hashed_tips(refs: dict[str, str]) -> dict[str, str]:
    """{sha256 of the ref's name: object id} of every ref but HEAD and GitHub's regenerated merge refs: what the next
    run needs of this one (its prerequisites, and what a rewrite is measured against), stored where the backup host
    can read it without the private key of encrypted artifacts, so without the refs' names."""
    return {hashlib.sha256(name.encode("utf-8")).hexdigest(): sha for name, sha in refs.items()
            if name != "HEAD" and not REGENERATED.match(name)}


def tips(refs: dict[str, str]) -> list[str]:
    """The distinct object ids the refs point at (HEAD's symbolic target left out)."""
    return sorted({sha for name, sha in refs.items() if name != "HEAD"})


def is_ancestor(git: Git, repo: str, old: str, new: str) -> bool:
    """Is ``old`` an ancestor of ``new`` (or the same) in ``repo``? False when ``old`` is not there at all."""
    if old == new:
        return True
    try:
        git(["-C", repo, "merge-base", "--is-ancestor", old, new], "git merge-base --is-ancestor")
    except BackupError:
        return False
    return True


def rewritten(git: Git, repo: str, previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """The refs whose recorded tip is no ancestor of their new tip (force-pushed, rewritten), GitHub's regenerated
    merge refs excepted; deleted refs are not rewritten (the refs list restores them), new ones neither. ``previous``
    may be keyed by names or by their hashes (:func:`hashed_tips`); ``current`` is then hashed the same way."""
    if previous and all(len(name) == 64 and "/" not in name for name in previous):
        current = hashed_tips(current)
    found = []
    for name, old in sorted(previous.items()):
        new = current.get(name)
        if name == "HEAD" or new is None or REGENERATED.match(name) or old == new:
            continue
        if not is_ancestor(git, repo, old, new):
            found.append(name)
    return found


def missing(git: Git, repo: str, shas: t.Iterable[str]) -> list[str]:
    """The object ids of ``shas`` that ``repo`` does not hold (a cache that lost objects, history gone upstream)."""
    wanted = sorted(set(shas))
    found = []
    for start in range(0, len(wanted), BATCH):  # cat-file answers as it reads: a pipe's worth at a time
        listing = git(["-C", repo, "cat-file", "--batch-check"], "git cat-file",
                      data="".join(s + "\n" for s in wanted[start:start + BATCH]))
        found.extend(line.split(" ", 1)[0] for line in listing.splitlines() if line.endswith(" missing"))
    return sorted(found)


def create_bundle(git: Git, repo: str, path: str, prerequisites: t.Iterable[str] = (),
                  refs: dict[str, str] | None = None) -> bool:
    """Write the bundle of every ref of ``repo`` into ``path``: full without ``prerequisites``, else only the objects
    they do not reach. False (and no file) when no object is new: the refs list alone says what changed. ``refs``:
    the repository's, when the caller has read them (:func:`read_refs`)."""
    excluded = "".join("^%s\n" % sha for sha in sorted(set(prerequisites)))
    if not excluded and pack_as_bundle(repo, path, refs):
        return True
    try:  # the prerequisites on standard input: a repository's tips can outgrow a command line
        git(["-C", repo, "bundle", "create", "--quiet", path, "--all", "--stdin"], "git bundle create", data=excluded)
    except BackupError as exc:
        if "empty bundle" in str(exc):
            return False
        raise
    return True


def pack_as_bundle(repo: str, path: str, refs: dict[str, str] | None = None) -> bool:
    """A full bundle of a repository whose objects are one pack and nothing else (a fresh ``git clone --mirror``:
    the pack the server sent holds what every ref reaches), written as the bundle header and that pack, without
    packing again. False (nothing written) for any other repository: ``git bundle create`` packs it."""
    objects = os.path.join(repo, "objects")
    try:
        packs = os.listdir(os.path.join(objects, "pack"))
        loose = [name for name in os.listdir(objects) if len(name) == 2 and os.listdir(os.path.join(objects, name))]
    except OSError:
        return False
    pack_files = [name for name in packs if name.endswith(".pack")]
    if (loose or len(pack_files) != 1 or os.path.exists(os.path.join(objects, "info", "alternates"))
            or any(name.endswith(".promisor") for name in packs)):
        return False  # not a fresh clone's single pack (a fetched cache, a partial clone): git packs it
    refs = {name: sha for name, sha in (read_refs(repo) if refs is None else refs).items() if name != "HEAD"}
    if not refs or not all(_SHA1.match(sha) for sha in refs.values()):
        return False  # nothing to bundle, or SHA-256 object names (a v3 bundle): git's own
    pack = pack_files[0]
    with open(path, "wb") as bundle, open(os.path.join(objects, "pack", pack), "rb") as source:
        bundle.write(b"# v2 git bundle\n")
        bundle.write("".join("%s %s\n" % (sha, name) for name, sha in sorted(refs.items())).encode("utf-8"))
        bundle.write(b"\n")
        shutil.copyfileobj(source, bundle, 1 << 20)
    return True


def bundle_prerequisites(path: str) -> list[str]:
    """The object ids a bundle needs before it applies, from its header (``-<id> <subject>`` lines)."""
    needed = []
    with open(path, "rb") as handle:
        header = handle.readline()
        if header not in (b"# v2 git bundle\n", b"# v3 git bundle\n"):
            raise ChainError("%s is not a git bundle" % path)
        for raw in handle:
            line = raw.rstrip(b"\n")
            if not line:
                break
            if line.startswith(b"-"):
                needed.append(line[1:].split(b" ", 1)[0].decode("ascii"))
    return needed


def apply_chain(git: Git, target: str, bundles: list[str], refs: dict[str, str]) -> None:
    """Build the bare repository ``target`` (it exists, empty) from ``bundles`` (full first, then each incremental in
    order) and set its refs to ``refs``: each bundle is verified against what the chain built so far, the refs are
    set from the list, every other ref is removed, and the result must pass ``git fsck``."""
    for index, bundle in enumerate(bundles):
        try:
            git(["-C", target, "bundle", "verify", "--quiet", bundle], "git bundle verify")
        except BackupError as exc:
            raise ChainError("bundle %d of the chain (%s) does not apply to what the bundles before it hold: %s" % (
                index + 1, bundle, exc)) from None
        git(["-C", target, "fetch", "--quiet", "--no-tags", bundle, "+refs/*:refs/corebackup-chain/%d/*" % index],
            "git fetch from a bundle")
    lines = []
    current = refs_of(git, target)
    for name in sorted(current):
        if name != "HEAD" and name not in refs:
            lines.append("delete %s\n" % name)
    for name, sha in sorted(refs.items()):
        if name == "HEAD":
            continue
        if not _SHA.match(sha):
            raise ChainError("the refs list names %s at %r, which is no object id" % (name, sha))
        lines.append("update %s %s\n" % (name, sha))
    git(["-C", target, "update-ref", "--stdin"], "git update-ref", data="".join(lines))
    head = refs.get("HEAD", "")
    if head.startswith("ref: "):
        git(["-C", target, "symbolic-ref", "HEAD", head[len("ref: "):]], "git symbolic-ref")
    git(["-C", target, "fsck", "--no-progress", "--no-dangling"], "git fsck")
