# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The GraphQL queries github_backup sends, sized for GitHub's limits.

GitHub charges a query by the connections it could return: the requests needed to fill every
connection at its ``first`` size, divided by 100 (at least 1), against 5,000 points an hour; and
refuses a query that could return more than 500,000 nodes. So the nested connections here are
small, and what overflows them is fetched by follow-up queries on the nodes that overflowed,
several nodes to a query (:func:`follow_up_query`). Every query is validated against GitHub's
published schema in the tests (npm ``@octokit/graphql-schema``).

Listing (``REPOSITORIES``) reads, besides each repository's own fields, what tells whether its
metadata changed since the last backup (:data:`FRESHNESS`): the count and newest update of its
issues, pull requests and milestones, of its releases (by creation: releases cannot be ordered by
update), and the count of its labels; so a rerun with nothing changed costs the listing only.
"""

from __future__ import annotations

import typing as t

from ansible_collections.corebackup.backup.plugins.module_utils._github import GitHubError, GraphQLError

# Page sizes: a repository with few issues and pull requests (most of them) is read in one query
# costing about 3 points; larger ones page.
ISSUES_PAGE = 50
PULLS_PAGE = 10
NESTED_PAGE = 10  # comments, reviews, labels, assignees, assets of one node in the first query
FOLLOW_UP_PAGE = 100  # what overflowed, read from the node that overflowed
FOLLOW_UPS_PER_QUERY = 10
REPOSITORIES_PAGE = 50
RELEASES_PAGE = 20

RATE_LIMIT = "rateLimit { cost remaining resetAt }"
PAGE_INFO = "pageInfo { hasNextPage endCursor }"

FRESHNESS = """
  issues(first: 1, orderBy: {field: UPDATED_AT, direction: DESC}) { totalCount nodes { updatedAt } }
  pullRequests(first: 1, orderBy: {field: UPDATED_AT, direction: DESC}) { totalCount nodes { updatedAt } }
  releases(first: 1, orderBy: {field: CREATED_AT, direction: DESC}) { totalCount nodes { createdAt } }
  milestones(first: 1, orderBy: {field: UPDATED_AT, direction: DESC}) { totalCount nodes { updatedAt } }
  labels(first: 1) { totalCount }"""

REPOSITORY_FRAGMENT = """
fragment Repo on Repository {
  databaseId name nameWithOwner owner { login } description homepageUrl url
  isPrivate visibility isFork isArchived isDisabled isEmpty
  hasIssuesEnabled hasWikiEnabled
  defaultBranchRef { name }
  primaryLanguage { name }
  repositoryTopics(first: 20) { nodes { topic { name } } }
  createdAt updatedAt pushedAt diskUsage%s
}
""" % FRESHNESS

REPOSITORIES = """
query Repositories($login: String!, $cursor: String) {
  %s
  repositoryOwner(login: $login) {
    repositories(first: %d, after: $cursor, ownerAffiliations: [OWNER], orderBy: {field: NAME, direction: ASC}) {
      nodes { ...Repo }
      %s
    }
  }
}
""" % (RATE_LIMIT, REPOSITORIES_PAGE, PAGE_INFO) + REPOSITORY_FRAGMENT

REPOSITORY = """
query Repository($owner: String!, $name: String!) {
  %s
  repository(owner: $owner, name: $name) { ...Repo }
}
""" % RATE_LIMIT + REPOSITORY_FRAGMENT

ACTOR = "author { login }"
COMMENT_FIELDS = "databaseId body %s authorAssociation createdAt updatedAt" % ACTOR
REVIEW_FIELDS = "fullDatabaseId body %s state submittedAt commit { oid }" % ACTOR
REVIEW_COMMENT_FIELDS = ("fullDatabaseId body %s path diffHunk line originalLine startLine originalStartLine "
                         "commit { oid } originalCommit { oid } replyTo { fullDatabaseId } "
                         "pullRequestReview { fullDatabaseId } createdAt updatedAt" % ACTOR)
ASSET_FIELDS = "name contentType size downloadCount downloadUrl createdAt updatedAt uploadedBy { login }"
LABEL_NAMES = "labels(first: %d) { nodes { name } %s }" % (NESTED_PAGE, PAGE_INFO)
ASSIGNEES = "assignees(first: %d) { nodes { login } %s }" % (NESTED_PAGE, PAGE_INFO)
MILESTONE_REF = "milestone { number title }"

REVIEW_NODE = "id %s comments(first: %d) { nodes { %s } %s }" % (REVIEW_FIELDS, NESTED_PAGE, REVIEW_COMMENT_FIELDS, PAGE_INFO)

# The connections of a node that may overflow their first page, by node type: connection ->
# (fields of one element, the element's own node type when it has such connections itself). A
# follow-up reads the rest from the node (``node(id:)``), FOLLOW_UP_PAGE at a time.
NESTED: dict[str, dict[str, tuple[str, str | None]]] = {
    "Issue": {"comments": (COMMENT_FIELDS, None), "labels": ("name", None), "assignees": ("login", None)},
    "PullRequest": {"comments": (COMMENT_FIELDS, None), "labels": ("name", None), "assignees": ("login", None),
                    "reviews": (REVIEW_NODE, "PullRequestReview")},
    "PullRequestReview": {"comments": (REVIEW_COMMENT_FIELDS, None)},
    "Release": {"releaseAssets": (ASSET_FIELDS, None)},
}
# The node type of the elements of each top-level connection of a repository.
ELEMENT_TYPES = {"issues": "Issue", "pullRequests": "PullRequest", "releases": "Release", "labels": None,
                 "milestones": None}

ISSUE_FIELDS = """
        id databaseId number title body state stateReason locked %s createdAt updatedAt closedAt
        %s %s %s
        comments(first: %d) { nodes { %s } %s }""" % (
    ACTOR, LABEL_NAMES, ASSIGNEES, MILESTONE_REF, NESTED_PAGE, COMMENT_FIELDS, PAGE_INFO)

PULL_FIELDS = """
        id fullDatabaseId number title body state isDraft locked %s createdAt updatedAt closedAt mergedAt
        mergeCommit { oid } baseRefName baseRefOid headRefName headRefOid
        %s %s %s
        comments(first: %d) { nodes { %s } %s }
        reviews(first: %d) { nodes { %s } %s }""" % (
    ACTOR, LABEL_NAMES, ASSIGNEES, MILESTONE_REF, NESTED_PAGE, COMMENT_FIELDS, PAGE_INFO, NESTED_PAGE, REVIEW_NODE,
    PAGE_INFO)

RELEASE_FIELDS = """
        id databaseId tagName name description isDraft isPrerelease createdAt publishedAt %s
        releaseAssets(first: %d) { nodes { %s } %s }""" % (ACTOR, NESTED_PAGE, ASSET_FIELDS, PAGE_INFO)

LABEL_FIELDS = "name color description isDefault"
MILESTONE_FIELDS = "number title description state dueOn createdAt updatedAt closedAt creator { login }"

# One query per page of a repository's metadata: the connections to read (a connection whose
# cursor is None is not asked for, one whose pages are done is left out).
CONNECTIONS = {
    "issues": ("issues(first: %d, after: $issues, orderBy: {field: CREATED_AT, direction: ASC})" % ISSUES_PAGE,
               ISSUE_FIELDS),
    "pullRequests": ("pullRequests(first: %d, after: $pullRequests, orderBy: {field: CREATED_AT, direction: ASC})"
                     % PULLS_PAGE, PULL_FIELDS),
    "releases": ("releases(first: %d, after: $releases, orderBy: {field: CREATED_AT, direction: ASC})" % RELEASES_PAGE,
                 RELEASE_FIELDS),
    "labels": ("labels(first: %d, after: $labels)" % FOLLOW_UP_PAGE, LABEL_FIELDS),
    "milestones": ("milestones(first: %d, after: $milestones, states: [OPEN, CLOSED])" % FOLLOW_UP_PAGE,
                   MILESTONE_FIELDS),
}


def metadata_query(connections: list[str]) -> str:
    """The query for the next page of each of ``connections`` (names of CONNECTIONS) of one repository."""
    variables = "".join(", $%s: String" % name for name in connections)
    body = "\n".join("    %s { nodes { %s } %s }" % (CONNECTIONS[name][0], CONNECTIONS[name][1], PAGE_INFO)
                     for name in connections)
    return "query Metadata($owner: String!, $name: String!%s) {\n  %s\n  repository(owner: $owner, name: $name) {\n%s\n  }\n}\n" % (
        variables, RATE_LIMIT, body)


def follow_up_query(requests: list[tuple[str, str, str, str | None]]) -> str:
    """One query for the next page of several overflowed connections: (node id, node type, connection, cursor)."""
    parts = []
    for index, (node_id, node_type, connection, cursor) in enumerate(requests):
        after = ", after: %s" % _string(cursor) if cursor else ""
        parts.append("  n%d: node(id: %s) { ... on %s { %s(first: %d%s) { nodes { %s } %s } } }" % (
            index, _string(node_id), node_type, connection, FOLLOW_UP_PAGE, after, NESTED[node_type][connection][0],
            PAGE_INFO))
    return "query FollowUp {\n  %s\n%s\n}\n" % (RATE_LIMIT, "\n".join(parts))


def repositories_query(repositories: list[tuple[str, str]]) -> str:
    """Several repositories, by owner and name, with everything REPOSITORIES reads (aliases r0, r1, ...)."""
    parts = ["  r%d: repository(owner: %s, name: %s) { ...Repo }" % (i, _string(owner), _string(name))
             for i, (owner, name) in enumerate(repositories)]
    return "query Repositories {\n  %s\n%s\n}\n" % (RATE_LIMIT, "\n".join(parts)) + REPOSITORY_FRAGMENT


def _string(value: str) -> str:
    """A GraphQL string literal."""
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def freshness_of(node: dict) -> dict:
    """What tells whether a repository's metadata changed, from a REPOSITORY_FRAGMENT node: by part,
    [count, newest update] (labels: [count])."""
    def newest(connection: str, field: str) -> list:
        value = node.get(connection) or {}
        nodes = value.get("nodes") or [{}]
        return [value.get("totalCount"), (nodes[0] or {}).get(field)]
    return {"issues": newest("issues", "updatedAt"), "pulls": newest("pullRequests", "updatedAt"),
            "releases": newest("releases", "createdAt"), "milestones": newest("milestones", "updatedAt"),
            "labels": [(node.get("labels") or {}).get("totalCount")]}


class GraphQLReader:
    """Reads repositories and their metadata through ``client.graphql``, in as few queries as the data allows."""

    NAMED_PER_QUERY = 20

    def __init__(self, client: t.Any):
        self.client = client

    def repositories(self, login: str) -> list[dict]:
        """Every repository ``login`` (a user or an organization) owns, as REPOSITORY_FRAGMENT nodes."""
        found: list[dict] = []
        cursor = None
        while True:
            data = self.client.graphql(REPOSITORIES, {"login": login, "cursor": cursor})
            owner = data.get("repositoryOwner")
            if owner is None:
                raise GitHubError(404, "no user or organization named %r" % login, "/graphql")
            connection = owner["repositories"]
            found.extend(node for node in connection["nodes"] if node)
            if not connection["pageInfo"]["hasNextPage"]:
                return found
            cursor = connection["pageInfo"]["endCursor"]

    def named_repositories(self, owner: str, names: list[str]) -> dict[str, dict | str]:
        """name -> REPOSITORY_FRAGMENT node, or the reason it could not be read, several names to a query."""
        found: dict[str, dict | str] = {}
        for start in range(0, len(names), self.NAMED_PER_QUERY):
            chunk = names[start:start + self.NAMED_PER_QUERY]
            errors: dict[str, str] = {}
            try:
                data = self.client.graphql(repositories_query([(owner, name) for name in chunk]))
            except GraphQLError as exc:
                if not isinstance(exc.data, dict):
                    raise
                data = exc.data
                for error in exc.errors:
                    path = error.get("path") or [""]
                    errors[str(path[0])] = str(error.get("message") or error.get("type"))
            for index, name in enumerate(chunk):
                node = data.get("r%d" % index)
                found[name] = node if node else errors.get("r%d" % index, "not found")
        return found

    def metadata(self, owner: str, name: str, connections: list[str],
                 sink: t.Callable[[str, dict], None]) -> None:
        """Every element of each of ``connections``, handed to ``sink(connection, element)`` once its nested
        connections are complete: memory holds a page and the elements that wait for a follow-up, not the
        repository."""
        cursors: dict[str, str | None] = {connection: None for connection in connections}
        pending = list(connections)
        follow_ups = _FollowUps(self.client, sink)
        while pending:
            variables = dict({"owner": owner, "name": name}, **{c: cursors[c] for c in pending})
            data = self.client.graphql(metadata_query(pending), variables)
            repo = data.get("repository")
            if repo is None:
                raise GitHubError(404, "repository %s/%s not found" % (owner, name), "/graphql")
            still = []
            for connection in pending:
                value = repo[connection]
                for element in value["nodes"]:
                    if element:
                        follow_ups.admit(connection, element, ELEMENT_TYPES[connection])
                if value["pageInfo"]["hasNextPage"]:
                    cursors[connection] = value["pageInfo"]["endCursor"]
                    still.append(connection)
            pending = still
            follow_ups.send(final=False)
        follow_ups.send(final=True)


class _FollowUps:
    """Elements whose nested connections overflowed, waiting for the follow-ups that complete them; the
    follow-ups are sent FOLLOW_UPS_PER_QUERY to a query as soon as that many wait."""

    def __init__(self, client: t.Any, sink: t.Callable[[str, dict], None]):
        self.client = client
        self.sink = sink
        self.queue: list[tuple[dict, dict, str, str, str]] = []  # (element, node, type, connection, cursor)
        self.waiting: dict[int, list] = {}  # id(element) -> [connection, follow-ups still to read]

    def admit(self, connection: str, element: dict, kind: str | None) -> None:
        found = _overflowed(element, kind) if kind else []
        if not found:
            self.sink(connection, element)
            return
        self.waiting[id(element)] = [connection, len(found)]
        self.queue.extend((element,) + entry for entry in found)

    def send(self, final: bool) -> None:
        while len(self.queue) >= FOLLOW_UPS_PER_QUERY or (final and self.queue):
            batch, self.queue = self.queue[:FOLLOW_UPS_PER_QUERY], self.queue[FOLLOW_UPS_PER_QUERY:]
            data = self.client.graphql(follow_up_query([(node["id"], kind, connection, cursor)
                                                        for _element, node, kind, connection, cursor in batch]))
            for index, (element, node, kind, connection, _cursor) in enumerate(batch):
                value = (data.get("n%d" % index) or {}).get(connection)
                if value is None:
                    raise GitHubError(404, "%s %s vanished while it was read" % (kind, node.get("id")), "/graphql")
                elements = [child for child in value["nodes"] if child]
                node[connection]["nodes"].extend(elements)
                node[connection]["pageInfo"] = value["pageInfo"]
                more = []
                child_type = NESTED[kind][connection][1]
                if child_type:
                    for child in elements:
                        more.extend(_overflowed(child, child_type))
                if value["pageInfo"]["hasNextPage"]:
                    more.append((node, kind, connection, value["pageInfo"]["endCursor"]))
                self.queue.extend((element,) + entry for entry in more)
                waiting = self.waiting[id(element)]
                waiting[1] += len(more) - 1
                if not waiting[1]:
                    del self.waiting[id(element)]
                    self.sink(waiting[0], element)


def _overflowed(node: dict, kind: str) -> list[tuple[dict, str, str, str]]:
    """(node, type, connection, cursor) for each nested connection of ``node`` (and of its elements) with more pages."""
    found = []
    for connection, (_fields, child) in NESTED[kind].items():
        value = node.get(connection)
        if not value:
            continue
        if value["pageInfo"]["hasNextPage"]:
            found.append((node, kind, connection, value["pageInfo"]["endCursor"]))
        if child:
            for element in value["nodes"]:
                if element:
                    found.extend(_overflowed(element, child))
    return found
