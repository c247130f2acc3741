# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The decisions of github_backup that need no service: selection, option parsing, scrubbing."""

from __future__ import annotations

import base64

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._github import parse_link_header
from ansible_collections.corebackup.backup.plugins.module_utils._secrets import scrub
from ansible_collections.corebackup.backup.plugins.module_utils._services.github import (
    GitHubBackup,
    basic_auth,
    canonical_json,
    compile_patterns,
    select_repositories,
)

REPOS = [
    {"name": "lecture-01", "fork": False, "archived": False, "private": False},
    {"name": "lecture-02", "fork": True, "archived": False, "private": False},
    {"name": "lecture-old", "fork": False, "archived": True, "private": True},
    {"name": "tools", "fork": False, "archived": False, "private": True},
    {"name": "my.dotted.repo", "fork": False, "archived": False, "private": False},
]


def names(**kwargs):
    options = dict(include=[], exclude=[], skip_forks=False, skip_archived=False, visibility="all")
    options.update(kwargs)
    options["include"] = compile_patterns(options["include"], "include")
    options["exclude"] = compile_patterns(options["exclude"], "exclude")
    return [r["name"] for r in select_repositories(REPOS, **options)]


def test_everything_is_selected_by_default_in_name_order():
    assert names() == ["lecture-01", "lecture-02", "lecture-old", "my.dotted.repo", "tools"]


@pytest.mark.parametrize("options, expected", [
    ({"include": ["lecture-.*"]}, ["lecture-01", "lecture-02", "lecture-old"]),
    ({"include": ["^tools$", "dotted"]}, ["my.dotted.repo", "tools"]),
    ({"include": ["lecture-.*"], "exclude": ["old"]}, ["lecture-01", "lecture-02"]),
    ({"skip_forks": True}, ["lecture-01", "lecture-old", "my.dotted.repo", "tools"]),
    ({"skip_archived": True}, ["lecture-01", "lecture-02", "my.dotted.repo", "tools"]),
    ({"visibility": "private"}, ["lecture-old", "tools"]),
    ({"visibility": "public", "skip_forks": True}, ["lecture-01", "my.dotted.repo"]),
])
def test_filters(options, expected):
    assert names(**options) == expected


def test_invalid_expression_is_named_before_any_work():
    with pytest.raises(ValueError, match=r"exclude: '\(unclosed' is not a valid regular expression"):
        compile_patterns(["ok", "(unclosed"], "exclude")


def test_repository_items_accept_names_and_toggles():
    explicit = GitHubBackup._explicit_repositories(["a", {"name": "b", "pulls": False, "lfs": True}])  # pylint: disable=protected-access
    assert explicit == {"a": {"name": "a"}, "b": {"name": "b", "pulls": False, "lfs": True}}


@pytest.mark.parametrize("item, message", [
    ({"pulls": False}, "repositories: each item is a name or a dictionary with name, wiki, issues"),
    ({"name": "x", "wikis": True}, "repositories: x: unknown keys wikis"),
    (42, "each item is a name or a dictionary"),
])
def test_bad_repository_items_are_named(item, message):
    with pytest.raises(ValueError, match=message):
        GitHubBackup._explicit_repositories([item])  # pylint: disable=protected-access


def test_scrub_hides_the_token_and_its_basic_auth_form():
    token = "ghp_" + "A" * 36
    basic = base64.b64encode(("x-access-token:" + token).encode()).decode()
    assert basic_auth(token) == basic
    text = scrub("fatal: header Authorization: Basic %s for %s" % (basic, token), [token, basic_auth(token)])
    assert token not in text and basic not in text


def test_metadata_json_is_deterministic():
    assert canonical_json({"b": 1, "a": [2, {"d": 1, "c": 2}]}) == canonical_json({"a": [2, {"c": 2, "d": 1}], "b": 1})


def test_link_header_parsing():
    header = ('<https://api.github.com/orgs/o/repos?page=2>; rel="next", '
              '<https://api.github.com/orgs/o/repos?page=5>; rel="last"')
    assert parse_link_header(header) == {"next": "https://api.github.com/orgs/o/repos?page=2",
                                         "last": "https://api.github.com/orgs/o/repos?page=5"}
    assert parse_link_header(None) == {}
