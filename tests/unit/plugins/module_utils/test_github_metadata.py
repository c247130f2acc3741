# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The metadata spool writes exactly the bytes, and the digest, that the whole lists in memory give."""

from __future__ import annotations

import hashlib
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.corebackup.backup.plugins.module_utils._github_metadata import (
    CanonicalList,
    ListDigest,
    MetadataSpool,
    canonical_json,
    without_download_counts,
    write_documents,
)

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", "a\nb", "caf\u00e9", "\U0001F600", '"quoted"', "tab\there"])
scalars = st.none() | st.booleans() | st.integers(-2**40, 2**40) | text
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                      max_leaves=8)


def conversation(number, extra):
    return {"number": number, "title": extra, "comment_list": [], "labels": [extra] if extra else []}


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=6))
def test_a_list_written_element_by_element_is_its_canonical_json(items):
    written = []
    listing = CanonicalList(written.append)
    for item in items:
        listing.add(item)
    listing.close()
    assert b"".join(written) + b"\n" == canonical_json(items)
    digest = ListDigest()
    for item in items:
        digest.add(item)
    assert digest.hexdigest() == hashlib.sha256(canonical_json(items)).hexdigest()


releases = st.lists(st.fixed_dictionaries({
    "id": st.none() | st.integers(0, 50), "created_at": st.none() | st.sampled_from(["2026-01-01", "2025-12-31", "2026-01-01T00:00:01Z"]),
    "tag_name": text, "assets": st.lists(st.fixed_dictionaries({"name": text, "download_count": st.integers(0, 9)}), max_size=2)}),
    max_size=5)
labels = st.lists(st.fixed_dictionaries({"name": st.none() | text, "color": text}), max_size=5)
issues = st.lists(st.builds(conversation, st.integers(1, 20), text), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(issues=issues, releases=releases, labels=labels, with_milestones=st.booleans())
def test_files_and_digest_equal_what_the_documents_in_memory_give(tmp_path, issues, releases, labels, with_milestones):
    order = {"issues.json": lambda i: i["number"], "releases.json": lambda r: (r["created_at"] or "", r["id"] or 0),
             "labels.json": lambda label: label["name"] or "", "milestones.json": lambda m: m["number"]}
    documents = {"issues.json": issues, "releases.json": releases, "labels.json": labels}
    if with_milestones:
        documents["milestones.json"] = []
    folder = tmp_path / ("run%d" % len(os.listdir(tmp_path)))
    folder.mkdir()
    spool = MetadataSpool(str(folder))
    for name, documents_of in documents.items():
        for document in documents_of:
            spool.add(name, document, link=document.get("number"))
    spool.add_child("comments", 3, {"id": 1})
    comments_of = {}

    def complete(name, document, link):
        if name == "issues.json":
            comments_of[link] = spool.children("comments", link)
        return document

    digest = write_documents(spool, str(folder), documents, complete)
    spool.close()
    assert not os.path.exists(spool.path)
    expected = {name: sorted(docs, key=order[name]) for name, docs in documents.items()}
    for name, docs in expected.items():
        assert (folder / name).read_bytes() == canonical_json(docs)
    exported = dict(expected, **{"releases.json": [without_download_counts(r) for r in expected["releases.json"]]})
    assert digest == hashlib.sha256(canonical_json(exported)).hexdigest()
    assert all(comments == ([{"id": 1}] if number == 3 else []) for number, comments in comments_of.items())


def test_no_documents_digest_as_an_empty_dictionary(tmp_path):
    spool = MetadataSpool(str(tmp_path))
    assert write_documents(spool, str(tmp_path), []) == hashlib.sha256(canonical_json({})).hexdigest()
    spool.close()
