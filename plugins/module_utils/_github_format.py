# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The one stored format of a repository's metadata, whichever API fetched it.

The files in an artifact's ``metadata/`` folder (``repository.json``, ``issues.json``, ``pulls.json``,
``releases.json``, ``labels.json``, ``milestones.json``) hold REST-shaped objects (GitHub's REST
field names, snake_case, ``user: {login}``) restricted to the fields both the REST and the GraphQL
API give, so that restore, drills and digests do not depend on the API a run used. Each object is
built here from either API's answer; the version of this format is recorded in the artifact's
metadata (``metadata_format``) and bumped when a field is added or changes meaning.

``default_branch`` is null for a repository without any branch (GraphQL names none there; the module
sets it once the mirror shows no refs).

Version 1 (before this module) stored REST answers whole.
"""

from __future__ import annotations

import typing as t

FORMAT_VERSION = 2


def _login(actor: t.Any) -> dict | None:
    return {"login": actor["login"]} if isinstance(actor, dict) and actor.get("login") else None


def _lower(value: t.Any) -> t.Any:
    return value.lower() if isinstance(value, str) else value


def _int(value: t.Any) -> int | None:
    """GraphQL's BigInt is a string; REST ids are numbers."""
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _nodes(connection: t.Any) -> list:
    return list((connection or {}).get("nodes") or [])


def _oid(commit: t.Any) -> str | None:
    return commit.get("oid") if isinstance(commit, dict) else None


def _milestone_ref(milestone: t.Any) -> dict | None:
    return {"number": milestone["number"], "title": milestone["title"]} if isinstance(milestone, dict) else None


def sort_comments(comments: t.Iterable[dict]) -> list:
    """Stored comments in the format's order: by creation, then id."""
    return sorted(comments, key=lambda c: (c["created_at"] or "", c["id"] or 0))


def sort_by_id(items: t.Iterable[dict]) -> list:
    """Stored reviews and review comments in the format's order: by id."""
    return sorted(items, key=lambda item: item["id"] or 0)


# -- from REST -----------------------------------------------------------------------------------

def rest_repository(repo: dict) -> dict:
    return {
        "id": repo.get("id"), "name": repo["name"], "full_name": repo["full_name"],
        "owner": _login(repo.get("owner")), "description": repo.get("description"), "homepage": repo.get("homepage") or None,
        "html_url": repo.get("html_url"), "clone_url": repo.get("clone_url"),
        "private": bool(repo.get("private")), "visibility": _lower(repo.get("visibility")) or (
            "private" if repo.get("private") else "public"),
        "fork": bool(repo.get("fork")), "archived": bool(repo.get("archived")), "disabled": bool(repo.get("disabled")),
        "has_issues": bool(repo.get("has_issues")), "has_wiki": bool(repo.get("has_wiki")),
        "default_branch": repo.get("default_branch"), "language": repo.get("language"),
        "topics": sorted(repo.get("topics") or []),
        "created_at": repo.get("created_at"), "updated_at": repo.get("updated_at"), "pushed_at": repo.get("pushed_at"),
        "size": repo.get("size") or 0,
    }


def rest_comment(comment: dict) -> dict:
    return {"id": comment.get("id"), "user": _login(comment.get("user")), "body": comment.get("body"),
            "author_association": comment.get("author_association"), "created_at": comment.get("created_at"),
            "updated_at": comment.get("updated_at")}


def _rest_conversation(item: dict, comments: list) -> dict:
    return {
        "number": item["number"], "title": item.get("title"), "body": item.get("body"), "state": item.get("state"),
        "locked": bool(item.get("locked")), "user": _login(item.get("user")),
        "labels": sorted(label["name"] for label in item.get("labels") or []),
        "assignees": sorted(a["login"] for a in item.get("assignees") or []),
        "milestone": _milestone_ref(item.get("milestone")),
        "created_at": item.get("created_at"), "updated_at": item.get("updated_at"), "closed_at": item.get("closed_at"),
        "comment_list": sort_comments(rest_comment(c) for c in comments),
    }


def rest_issue(issue: dict, comments: list) -> dict:
    return dict(_rest_conversation(issue, comments), state_reason=issue.get("state_reason"))


def rest_review(review: dict) -> dict:
    return {"id": review.get("id"), "user": _login(review.get("user")), "body": review.get("body"),
            "state": review.get("state"), "submitted_at": review.get("submitted_at"), "commit_id": review.get("commit_id")}


def rest_review_comment(comment: dict) -> dict:
    return {
        "id": comment.get("id"), "pull_request_review_id": comment.get("pull_request_review_id"),
        "in_reply_to_id": comment.get("in_reply_to_id"), "user": _login(comment.get("user")), "body": comment.get("body"),
        "path": comment.get("path"), "diff_hunk": comment.get("diff_hunk"), "line": comment.get("line"),
        "original_line": comment.get("original_line"), "start_line": comment.get("start_line"),
        "original_start_line": comment.get("original_start_line"), "commit_id": comment.get("commit_id"),
        "original_commit_id": comment.get("original_commit_id"), "created_at": comment.get("created_at"),
        "updated_at": comment.get("updated_at"),
    }


def rest_pull(pull: dict, comments: list, reviews: list, review_comments: list) -> dict:
    data = _rest_conversation(pull, comments)
    data.update(
        draft=bool(pull.get("draft")), merged_at=pull.get("merged_at"), merge_commit_sha=pull.get("merge_commit_sha"),
        base={"ref": (pull.get("base") or {}).get("ref"), "sha": (pull.get("base") or {}).get("sha")},
        head={"ref": (pull.get("head") or {}).get("ref"), "sha": (pull.get("head") or {}).get("sha")},
        review_list=sort_by_id(rest_review(r) for r in reviews),
        review_comment_list=sort_by_id(rest_review_comment(c) for c in review_comments),
    )
    return data


# A release asset's stored fields, and what each API calls them (the uploader is a login in both).
ASSET_FIELDS = {"name": ("name", "name"), "content_type": ("content_type", "contentType"), "size": ("size", "size"),
                "download_count": ("download_count", "downloadCount"), "created_at": ("created_at", "createdAt"),
                "updated_at": ("updated_at", "updatedAt"), "browser_download_url": ("browser_download_url", "downloadUrl"),
                "uploader": ("uploader", "uploadedBy")}


def _asset(asset: dict, api: int) -> dict:
    found = {stored: asset.get(names[api]) for stored, names in ASSET_FIELDS.items()}
    found["uploader"] = _login(found["uploader"])
    return found


def rest_asset(asset: dict) -> dict:
    return _asset(asset, 0)


def rest_release(release: dict) -> dict:
    return {
        "id": release.get("id"), "tag_name": release.get("tag_name"), "name": release.get("name"),
        "body": release.get("body"), "draft": bool(release.get("draft")), "prerelease": bool(release.get("prerelease")),
        "author": _login(release.get("author")), "created_at": release.get("created_at"),
        "published_at": release.get("published_at"),
        "assets": sorted((rest_asset(a) for a in release.get("assets") or []), key=lambda a: a["name"] or ""),
    }


def rest_label(label: dict) -> dict:
    return {"name": label.get("name"), "color": label.get("color"), "description": label.get("description") or None,
            "default": bool(label.get("default"))}


def rest_milestone(milestone: dict) -> dict:
    return {"number": milestone.get("number"), "title": milestone.get("title"),
            "description": milestone.get("description") or None, "state": milestone.get("state"),
            "creator": _login(milestone.get("creator")), "due_on": milestone.get("due_on"),
            "created_at": milestone.get("created_at"), "updated_at": milestone.get("updated_at"),
            "closed_at": milestone.get("closed_at")}


# -- from GraphQL --------------------------------------------------------------------------------

def graphql_repository(repo: dict) -> dict:
    owner = (repo.get("owner") or {}).get("login")
    return {
        "id": repo.get("databaseId"), "name": repo["name"], "full_name": repo.get("nameWithOwner") or "%s/%s" % (owner, repo["name"]),
        "owner": _login(repo.get("owner")), "description": repo.get("description"), "homepage": repo.get("homepageUrl") or None,
        "html_url": repo.get("url"), "clone_url": repo["url"] + ".git" if repo.get("url") else None,
        "private": bool(repo.get("isPrivate")), "visibility": _lower(repo.get("visibility")),
        "fork": bool(repo.get("isFork")), "archived": bool(repo.get("isArchived")), "disabled": bool(repo.get("isDisabled")),
        "has_issues": bool(repo.get("hasIssuesEnabled")), "has_wiki": bool(repo.get("hasWikiEnabled")),
        "default_branch": (repo.get("defaultBranchRef") or {}).get("name"),
        "language": (repo.get("primaryLanguage") or {}).get("name"),
        "topics": sorted(n["topic"]["name"] for n in _nodes(repo.get("repositoryTopics"))),
        "created_at": repo.get("createdAt"), "updated_at": repo.get("updatedAt"), "pushed_at": repo.get("pushedAt"),
        "size": repo.get("diskUsage") or 0,
    }


def graphql_comment(comment: dict) -> dict:
    return {"id": _int(comment.get("databaseId")), "user": _login(comment.get("author")), "body": comment.get("body"),
            "author_association": comment.get("authorAssociation"), "created_at": comment.get("createdAt"),
            "updated_at": comment.get("updatedAt")}


def _graphql_conversation(item: dict) -> dict:
    return {
        "number": item["number"], "title": item.get("title"), "body": item.get("body"), "state": _lower(item.get("state")),
        "locked": bool(item.get("locked")), "user": _login(item.get("author")),
        "labels": sorted(label["name"] for label in _nodes(item.get("labels"))),
        "assignees": sorted(a["login"] for a in _nodes(item.get("assignees"))),
        "milestone": _milestone_ref(item.get("milestone")),
        "created_at": item.get("createdAt"), "updated_at": item.get("updatedAt"), "closed_at": item.get("closedAt"),
        "comment_list": sort_comments(graphql_comment(c) for c in _nodes(item.get("comments"))),
    }


def graphql_issue(issue: dict) -> dict:
    return dict(_graphql_conversation(issue), state_reason=_lower(issue.get("stateReason")))


def graphql_review(review: dict) -> dict:
    return {"id": _int(review.get("fullDatabaseId")), "user": _login(review.get("author")), "body": review.get("body"),
            "state": review.get("state"), "submitted_at": review.get("submittedAt"), "commit_id": _oid(review.get("commit"))}


def graphql_review_comment(comment: dict) -> dict:
    return {
        "id": _int(comment.get("fullDatabaseId")),
        "pull_request_review_id": _int((comment.get("pullRequestReview") or {}).get("fullDatabaseId")),
        "in_reply_to_id": _int((comment.get("replyTo") or {}).get("fullDatabaseId")),
        "user": _login(comment.get("author")), "body": comment.get("body"), "path": comment.get("path"),
        "diff_hunk": comment.get("diffHunk"), "line": comment.get("line"), "original_line": comment.get("originalLine"),
        "start_line": comment.get("startLine"), "original_start_line": comment.get("originalStartLine"),
        "commit_id": _oid(comment.get("commit")), "original_commit_id": _oid(comment.get("originalCommit")),
        "created_at": comment.get("createdAt"), "updated_at": comment.get("updatedAt"),
    }


def graphql_pull(pull: dict) -> dict:
    data = _graphql_conversation(pull)
    state = _lower(pull.get("state"))
    review_comments = [c for review in _nodes(pull.get("reviews")) for c in _nodes(review.get("comments"))]
    data.update(
        state="closed" if state == "merged" else state,
        draft=bool(pull.get("isDraft")), merged_at=pull.get("mergedAt"), merge_commit_sha=_oid(pull.get("mergeCommit")),
        base={"ref": pull.get("baseRefName"), "sha": pull.get("baseRefOid")},
        head={"ref": pull.get("headRefName"), "sha": pull.get("headRefOid")},
        review_list=sort_by_id(graphql_review(r) for r in _nodes(pull.get("reviews"))),
        review_comment_list=sort_by_id(graphql_review_comment(c) for c in review_comments),
    )
    return data


def graphql_asset(asset: dict) -> dict:
    return _asset(asset, 1)


def graphql_release(release: dict) -> dict:
    return {
        "id": _int(release.get("databaseId")), "tag_name": release.get("tagName"), "name": release.get("name"),
        "body": release.get("description"), "draft": bool(release.get("isDraft")),
        "prerelease": bool(release.get("isPrerelease")), "author": _login(release.get("author")),
        "created_at": release.get("createdAt"), "published_at": release.get("publishedAt"),
        "assets": sorted((graphql_asset(a) for a in _nodes(release.get("releaseAssets"))), key=lambda a: a["name"] or ""),
    }


def graphql_label(label: dict) -> dict:
    return {"name": label.get("name"), "color": label.get("color"), "description": label.get("description") or None,
            "default": bool(label.get("isDefault"))}


def graphql_milestone(milestone: dict) -> dict:
    return {"number": milestone.get("number"), "title": milestone.get("title"),
            "description": milestone.get("description") or None, "state": _lower(milestone.get("state")),
            "creator": _login(milestone.get("creator")), "due_on": milestone.get("dueOn"),
            "created_at": milestone.get("createdAt"), "updated_at": milestone.get("updatedAt"),
            "closed_at": milestone.get("closedAt")}
