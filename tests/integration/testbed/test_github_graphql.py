# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The GitHub stand-in's GraphQL API over real HTTP: its schema against GitHub's published one, the queries of
``_github_graphql`` answered with the data REST answers, GitHub's accounting, errors and faults, git at GitHub's URLs."""

from __future__ import annotations

import base64
import dataclasses
import http.client
import inspect
import itertools
import json
import os
import subprocess
import time
import typing as t
import urllib.parse

import graphql
import pytest

from ansible_collections.corebackup.backup.plugins.module_utils import _github_graphql as q
from ansible_collections.corebackup.backup.tests.testbed import github_fixtures, github_graphql
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn, git_env, utc_iso

ORG = "acme"
BUSY = "busy"  # a repository whose connections overflow every page size of _github_graphql
OCTOKIT_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".cache", "octokit-graphql-schema",
                               "package", "schema.graphql")


@dataclasses.dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> t.Any:
        return json.loads(self.body)

    @property
    def data(self) -> t.Any:
        payload = self.json()
        assert "errors" not in payload, payload["errors"]
        return payload["data"]

    def rate(self, name: str) -> int:
        return int(self.headers["X-RateLimit-" + name])


def http_request(standin: GitHubStandIn, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def post(standin: GitHubStandIn, query: str, variables: dict | None = None, token: str | None = None, scheme: str = "bearer",
         raw: bytes | None = None) -> Answer:
    """POST /api/graphql as a GraphQL client sends it."""
    headers = {"Content-Type": "application/json", "User-Agent": "corebackup-tests"}
    if token is not None:
        headers["Authorization"] = "%s %s" % (scheme, token)
    body = raw if raw is not None else json.dumps({"query": query, "variables": variables or {}}).encode()
    return http_request(standin, "POST", "/api/graphql", body, headers)


def rest(standin: GitHubStandIn, path: str, token: str | None) -> t.Any:
    """Every item of a REST list (following Link rel="next"), or one object."""
    items: list = []
    url: str | None = standin.api_url + path
    while url:
        split = urllib.parse.urlsplit(url)
        answer = http_request(standin, "GET", split.path + ("?" + split.query if split.query else ""),
                              headers={"Authorization": "token %s" % token} if token else {})
        if answer.status != 200:
            return answer.status
        page = answer.json()
        if not isinstance(page, list):
            return page
        items.extend(page)
        links = {rel: link for link, rel in (part.split(">; rel=") for part in answer.headers.get("Link", "").split(", ") if part)}
        url = links.get('"next"', "").lstrip("<") or None
    return items


@dataclasses.dataclass
class Env:
    standin: GitHubStandIn
    root: str
    token: str
    facts: dict

    def graphql(self, query: str, variables: dict | None = None, token: str | None = None) -> Answer:
        return post(self.standin, query, variables, token or self.token)

    def rest(self, path: str, token: str | None = None) -> t.Any:
        return rest(self.standin, path, token or self.token)


def build_busy(standin: GitHubStandIn, root: str) -> None:
    """A repository with more of everything than one page of _github_graphql holds: 55 issues (one with 23 comments, 12
    labels, 11 assignees), 12 pull requests (one with 12 comments, 11 labels and assignees, 12 reviews, the first with
    14 comments), 22 releases (one with 13 assets), 12 labels of its own on top of the defaults, 3 milestones."""
    gh = standin.github
    git_dir = os.path.join(root, ORG, BUSY + ".git")
    github_fixtures.init_bare(git_dir)
    stream = github_fixtures.FastImportStream()
    stream.commit("refs/heads/main", "Start\n", github_fixtures.BASE_EPOCH, {"README.md": "busy\n"})
    stream.commit("refs/heads/topic", "Topic\n", github_fixtures.BASE_EPOCH + 60, {"TOPIC.md": "topic\n"}, parent="refs/heads/main")
    stream.lightweight_tag("v1.0", 1)
    stream.run(git_dir)
    refs = github_fixtures.git_refs(git_dir)
    repo = gh.add_repo(ORG, BUSY, git_dir, created_at=utc_iso(github_fixtures.BASE_EPOCH), pushed_at=utc_iso(github_fixtures.BASE_EPOCH + 60),
                       topics=["busy", "graphql"], homepage="https://example.com/busy")
    for name, color, description in github_fixtures.DEFAULT_LABELS:
        gh.add_label(repo, name, color, description, default=True)
    for index in range(12):
        gh.add_label(repo, "area/%02d" % index, "1d76db", "Area %d" % index, created_at=utc_iso(github_fixtures.BASE_EPOCH + index))
    for index in range(3):
        gh.add_milestone(repo, "m%d" % index, "octocat", state="closed" if index == 0 else "open", description="Milestone %d" % index,
                         created_at=utc_iso(github_fixtures.BASE_EPOCH + 600 * index),
                         due_on=None if index == 2 else utc_iso(github_fixtures.BASE_EPOCH + 86400 * (5 - index)))
    clock = itertools.count(github_fixtures.BASE_EPOCH + 3600, 60)
    users = ["user%02d" % i for i in range(12)]
    labels = [label.name for label in repo.labels]
    for index in range(55):
        issue = gh.add_issue(repo, "Issue %d" % index, users[index % 12], body="Body of issue %d\n" % index, created_at=utc_iso(next(clock)),
                             state="closed" if index % 3 == 0 else "open", labels=labels[:12] if index == 0 else labels[index % 5:index % 5 + 2],
                             milestone=index % 4 or None)
        if index == 0:
            issue.assignees = users[:11]
            for number in range(23):
                gh.add_comment(repo, issue.number, users[number % 12], "Comment %d\n" % number, created_at=utc_iso(next(clock)))
        elif index % 7 == 0:
            gh.add_comment(repo, issue.number, "octocat", "One comment\n", created_at=utc_iso(next(clock)))
    for index in range(12):
        pull = gh.add_pull(repo, "PR %d" % index, users[index], "topic", refs["refs/heads/topic"], "main", refs["refs/heads/main"],
                           body="PR body %d\n" % index, created_at=utc_iso(next(clock)), state="closed" if index % 2 else "open",
                           merged=index % 4 == 1, labels=labels[:11] if index == 0 else [], draft=index == 2)
        if index == 0:
            pull.assignees = users[:11]
            for number in range(12):
                gh.add_comment(repo, pull.number, users[number], "PR comment %d\n" % number, created_at=utc_iso(next(clock)))
            for number in range(12):
                review = gh.add_review(repo, pull.number, users[number], "COMMENTED" if number else "CHANGES_REQUESTED", "Review %d" % number,
                                       submitted_at=utc_iso(next(clock)))
                for line in range(14 if number == 0 else 1):
                    first = gh.add_review_comment(repo, pull.number, users[number], "Line %d" % line, "README.md", line=line + 1,
                                                  review=review, created_at=utc_iso(next(clock)))
            gh.add_review_comment(repo, pull.number, "octocat", "A reply", "README.md", line=first.line, in_reply_to=first,
                                  created_at=utc_iso(next(clock)))
    for index in range(22):
        release = gh.add_release(repo, "v1.0" if index == 0 else "v0.%d" % index, "Release %02d" % (21 - index), users[index % 12],
                                 body="Notes %d\n" % index, prerelease=index == 3, draft=index == 4, created_at=utc_iso(next(clock)))
        for number in range(13 if index == 0 else index % 2):
            gh.add_asset(repo, release, "asset-%d-%d.bin" % (index, number), b"x" * (number + 1), created_at=release.created_at)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("github-graphql"))
    served = os.path.join(root, "served")
    with GitHubStandIn(served) as standin:
        token = standin.add_token(login="octocat")
        facts = github_fixtures.build_organization(standin, ORG, served, count=30, seed=3)
        build_busy(standin, served)
        yield Env(standin, root, token, facts)
        assert not standin.errors, standin.errors[-1]


@pytest.fixture
def fresh_token(env):
    """A token of its own, so that its GraphQL bucket starts full."""
    return env.standin.add_token(login="graphql-user")


# --------------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def octokit_schema():
    """GitHub's public schema from npm @octokit/graphql-schema, as `make setup` fetches it (OCTOKIT_SCHEMA)."""
    path = os.environ.get("OCTOKIT_SCHEMA") or OCTOKIT_DEFAULT
    if not os.path.isfile(path):
        pytest.fail("GitHub's GraphQL schema is missing at %s: `make setup` fetches it (npm @octokit/graphql-schema)" % path)
    with open(path, encoding="utf-8") as handle:
        return graphql.build_schema(handle.read(), assume_valid=True, assume_valid_sdl=True)


def _default(value: t.Any) -> t.Any:
    return graphql.print_ast(value) if isinstance(value, graphql.Node) else repr(value)


def test_schema_is_a_subset_of_githubs(octokit_schema):
    ours = github_graphql.schema()
    problems = []
    checked = 0
    for name, mine in ours.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        theirs = octokit_schema.type_map.get(name)
        if theirs is None or type(theirs) is not type(mine):
            problems.append("%s: %s in ours, %s in GitHub's" % (name, type(mine).__name__, type(theirs).__name__))
            continue
        checked += 1
        if isinstance(mine, graphql.GraphQLEnumType):
            problems += ["%s.%s: no such value" % (name, value) for value in mine.values if value not in theirs.values]
            problems += ["%s.%s: deprecation differs" % (name, value) for value in mine.values if value in theirs.values
                         and mine.values[value].deprecation_reason != theirs.values[value].deprecation_reason]
        elif isinstance(mine, graphql.GraphQLUnionType):
            problems += ["%s: %s is no member" % (name, member.name) for member in mine.types if member.name not in
                         {m.name for m in theirs.types}]
        elif isinstance(mine, graphql.GraphQLInputObjectType):
            for field_name, field in mine.fields.items():
                other = theirs.fields.get(field_name)
                if other is None or str(other.type) != str(field.type) or _default(other.ast_node and other.ast_node.default_value) != \
                        _default(field.ast_node and field.ast_node.default_value):
                    problems.append("%s.%s: %s, GitHub's: %s" % (name, field_name, field.type, other and other.type))
            problems += ["%s.%s: GitHub requires it" % (name, f) for f, other in theirs.fields.items()
                         if f not in mine.fields and graphql.is_required_input_field(other)]
        elif isinstance(mine, (graphql.GraphQLObjectType, graphql.GraphQLInterfaceType)):
            problems += ["%s implements %s, GitHub's does not" % (name, i.name) for i in mine.interfaces
                         if i.name not in {j.name for j in theirs.interfaces}]
            for field_name, field in mine.fields.items():
                other = theirs.fields.get(field_name)
                if other is None:
                    problems.append("%s.%s: no such field" % (name, field_name))
                    continue
                if str(other.type) != str(field.type) or other.deprecation_reason != field.deprecation_reason:
                    problems.append("%s.%s: %s, GitHub's: %s" % (name, field_name, field.type, other.type))
                for arg_name, arg in field.args.items():
                    their_arg = other.args.get(arg_name)
                    if their_arg is None or str(their_arg.type) != str(arg.type) or \
                            _default(their_arg.ast_node and their_arg.ast_node.default_value) != _default(arg.ast_node and arg.ast_node.default_value):
                        problems.append("%s.%s(%s): %s, GitHub's: %s" % (name, field_name, arg_name, arg.type, their_arg and their_arg.type))
                problems += ["%s.%s(%s): GitHub requires it" % (name, field_name, a) for a, their_arg in other.args.items()
                             if a not in field.args and graphql.is_required_argument(their_arg)]
    assert not problems, "\n".join(problems)
    assert checked >= 90 and ours.query_type.name == octokit_schema.query_type.name == "Query"


SAMPLE_REPOSITORIES = [(ORG, "a"), ("some-user", 'odd"name\\'), (ORG, "dotted.name")]


def query_builders() -> dict[str, t.Callable[..., str]]:
    """The public ``*_query`` functions of _github_graphql."""
    return {name: value for name, value in vars(q).items() if name.endswith("_query") and not name.startswith("_") and callable(value)}


def module_queries() -> dict[str, str]:
    """Every query text _github_graphql builds: its module-level queries, and its builders over every choice of their
    argument (connections, follow-ups, repositories); a builder of another kind has to be taught here."""
    queries = {name: value for name, value in vars(q).items() if isinstance(value, str) and value.lstrip().startswith(("query", "mutation"))}
    nested = [(node_type, connection) for node_type in q.NESTED for connection in q.NESTED[node_type]]
    for name, builder in query_builders().items():
        parameters = list(inspect.signature(builder).parameters)
        if parameters == ["connections"]:
            for size in range(1, len(q.CONNECTIONS) + 1):
                for subset in itertools.combinations(q.CONNECTIONS, size):
                    queries["%s(%s)" % (name, ",".join(subset))] = builder(list(subset))
        elif parameters == ["requests"]:
            queries[name] = builder([("MDU6SXNzdWUx", node_type, connection, None) for node_type, connection in nested])
            queries[name + "(cursors)"] = builder([("MDU6SXNzdWUx", node_type, connection, "Y3Vyc29yOnYyOlsxXQ==")
                                                   for node_type, connection in nested])
        elif parameters == ["repositories"]:
            queries[name] = builder(SAMPLE_REPOSITORIES)
        else:
            pytest.fail("module_queries() does not know how to call _github_graphql.%s%s" % (name, inspect.signature(builder)))
    assert {"REPOSITORIES", "REPOSITORY", "metadata_query(issues)", "follow_up_query", "repositories_query"} <= set(queries)
    return queries


def test_module_queries_validate_against_githubs_schema(octokit_schema):
    for name, text in module_queries().items():
        document = graphql.parse(text)
        errors = graphql.validate(octokit_schema, document)
        assert not errors, (name, [e.message for e in errors])
        mine = graphql.validate(github_graphql.schema(), document)
        assert not mine, (name, [e.message for e in mine])


def test_every_field_is_answered():
    """Each object type of the schema has a view, and each of its fields a method or property."""
    missing = []
    for name, graphql_type in github_graphql.schema().type_map.items():
        if not isinstance(graphql_type, graphql.GraphQLObjectType) or name.startswith("__"):
            continue
        if name.endswith("Connection"):
            view: type = github_graphql._Connection  # pylint: disable=protected-access
        elif name.endswith("Edge") or name in ("PageInfo", "RateLimit", "GitActor"):
            continue  # answered by dicts
        else:
            view = github_graphql.VIEWS[name]
        missing += ["%s.%s" % (name, field) for field in graphql_type.fields
                    if not hasattr(view, github_graphql._snake(field))]  # pylint: disable=protected-access
    assert not missing, missing


def _selection(graphql_type: graphql.GraphQLNamedType, depth: int) -> str:
    """Every field of a type that takes no required argument, connections two at a time, ``depth`` levels down."""
    if isinstance(graphql_type, graphql.GraphQLUnionType):
        return "__typename " + " ".join("... on %s { id }" % member.name for member in graphql_type.types)
    parts = ["__typename"]
    for name, field in graphql_type.fields.items():
        if any(graphql.is_required_argument(arg) for arg in field.args.values()):
            continue
        named = graphql.get_named_type(field.type)
        if graphql.is_leaf_type(named):
            parts.append(name)
        elif depth > 0 and named.name.endswith("Connection"):
            node = graphql.get_named_type(named.fields["nodes"].type)
            parts.append("%s(first: 2) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor } "
                         "nodes { %s } }" % (name, _selection(node, depth - 1)))
        elif depth > 0:
            parts.append("%s { %s }" % (name, _selection(named, depth - 1)))
    return " ".join(parts)


def test_every_field_of_a_repository_resolves(env):
    """All fields of everything below a repository (three levels), through the stand-in: no error, no failed resolver."""
    repository = github_graphql.schema().type_map["Repository"]
    query = '{ repository(owner: "%s", name: "%s") { %s } }' % (ORG, BUSY, _selection(repository, 3))
    answer = env.graphql(query)
    assert answer.status == 200 and not env.standin.errors
    data = answer.data["repository"]
    assert data["nameWithOwner"] == "%s/%s" % (ORG, BUSY) and data["issues"]["totalCount"] == 55
    assert data["defaultBranchRef"]["target"]["__typename"] == "Commit" and data["defaultBranchRef"]["prefix"] == "refs/heads/"
    owner = github_graphql.schema().type_map["Organization"]
    answer = env.graphql('{ organization(login: "%s") { %s } user(login: "octocat") { %s } }' % (
        ORG, _selection(owner, 2), _selection(github_graphql.schema().type_map["User"], 2)))
    assert answer.data["organization"]["login"] == ORG and answer.data["user"]["login"] == "octocat"
    assert not env.standin.errors


# --------------------------------------------------------------------------------------------------
# The queries of _github_graphql, answered like REST answers
# --------------------------------------------------------------------------------------------------

def newest(items: list[dict], key: str) -> str | None:
    return max((i[key] for i in items), default=None)


def test_repositories_query_agrees_with_rest(env):
    answer = env.graphql(q.REPOSITORIES, {"login": ORG, "cursor": None})
    assert answer.status == 200 and answer.headers["X-RateLimit-Resource"] == "graphql"
    connection = answer.data["repositoryOwner"]["repositories"]
    nodes = connection["nodes"]
    rest_repos = {r["name"]: r for r in env.rest("/orgs/%s/repos?per_page=100" % ORG)}
    assert [n["name"] for n in nodes] == sorted(rest_repos, key=str.lower) and len(nodes) == len(env.facts) + 1  # + busy
    assert connection["pageInfo"] == {"hasNextPage": False, "endCursor": connection["pageInfo"]["endCursor"]}
    assert answer.data["rateLimit"]["cost"] == 3  # 1 + 50 * 6 connections below each repository = 301 requests
    for node in nodes:
        repo = rest_repos[node["name"]]
        assert (node["databaseId"], node["nameWithOwner"], node["owner"]["login"], node["url"]) == (
            repo["id"], repo["full_name"], repo["owner"]["login"], repo["html_url"])
        assert (node["description"], node["homepageUrl"], node["isPrivate"], node["visibility"], node["isFork"], node["isArchived"],
                node["isDisabled"], node["hasIssuesEnabled"], node["hasWikiEnabled"]) == (
            repo["description"], repo["homepage"] or None, repo["private"], repo["visibility"].upper(), repo["fork"], repo["archived"],
            repo["disabled"], repo["has_issues"], repo["has_wiki"])
        assert (node["createdAt"], node["updatedAt"], node["pushedAt"], node["diskUsage"]) == (
            repo["created_at"], repo["updated_at"], repo["pushed_at"], repo["size"])
        assert node["primaryLanguage"] == ({"name": repo["language"]} if repo["language"] else None)
        assert [n["topic"]["name"] for n in node["repositoryTopics"]["nodes"]] == repo["topics"]
        empty = node["name"] != BUSY and env.facts[node["name"]]["empty"]
        assert node["isEmpty"] == empty and node["defaultBranchRef"] == (None if empty else {"name": repo["default_branch"]})
        base = "/repos/%s/%s" % (ORG, node["name"])
        if repo["name"] == "dmca-repo":  # REST answers 451; GraphQL lists it with nothing in it
            assert env.rest(base + "/issues?state=all") == 451
            assert all(node[c]["totalCount"] == 0 for c in ("issues", "pullRequests", "releases", "milestones", "labels"))
            continue
        issues = env.rest(base + "/issues?state=all&per_page=100")
        issues = [] if issues == 410 else [i for i in issues if "pull_request" not in i]
        pulls = env.rest(base + "/pulls?state=all&per_page=100")
        releases = env.rest(base + "/releases?per_page=100")
        milestones = env.rest(base + "/milestones?state=all&per_page=100")
        labels = env.rest(base + "/labels?per_page=100")
        for name, items, key in (("issues", issues, "updated_at"), ("pullRequests", pulls, "updated_at"),
                                 ("releases", releases, "created_at"), ("milestones", milestones, "updated_at")):
            graph_key = "createdAt" if key == "created_at" else "updatedAt"
            assert node[name]["totalCount"] == len(items), (node["name"], name)
            assert newest(node[name]["nodes"], graph_key) == newest(items, key), (node["name"], name)
        assert node["labels"]["totalCount"] == len(labels)


def test_repositories_query_pages(env, fresh_token):
    """REPOSITORIES pages 50 at a time; with many repositories the cursor walks the whole list exactly once."""
    standin = env.standin
    standin.github.add_user("pager")
    for index in range(57):
        standin.github.add_repo("pager", "r%02d" % index, owner_type="User", created_at=utc_iso(github_fixtures.BASE_EPOCH + index))
    standin.github.add_repo(ORG, "not-pagers", created_at=utc_iso(github_fixtures.BASE_EPOCH))
    names, cursor, pages = [], None, 0
    while True:
        connection = env.graphql(q.REPOSITORIES, {"login": "pager", "cursor": cursor}, fresh_token).data["repositoryOwner"]["repositories"]
        names += [n["name"] for n in connection["nodes"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        cursor = connection["pageInfo"]["endCursor"]
    assert pages == 2 and names == ["r%02d" % i for i in range(57)]
    one = env.graphql('query($login: String!) { repository(owner: $login, name: "r07") { ...Repo } }' + q.REPOSITORY_FRAGMENT,
                      {"login": "pager"}, fresh_token).data
    assert one["repository"]["nameWithOwner"] == "pager/r07" and one["repository"]["owner"]["login"] == "pager"
    single = env.graphql(q.REPOSITORY, {"owner": "pager", "name": "r07"}, fresh_token).data["repository"]
    assert single == one["repository"]
    for name, builder in query_builders().items():  # the builders of queries about several repositories by name
        if list(inspect.signature(builder).parameters) == ["repositories"]:
            data = env.graphql(builder([("pager", "r07"), ("pager", "r08")]), None, fresh_token).data
            assert data["r0"] and data["r1"] and data["r0"] != data["r1"], name
            if "nameWithOwner" in data["r0"]:
                assert data["r0"] == single


def read_repository(env: Env, owner: str, name: str, token: str | None = None) -> dict[str, list[dict]]:
    """A repository's metadata the way the module reads it: metadata_query pages, then follow_up_query for every nested
    connection that overflowed (reviews read by a follow-up get their comments by one of their own)."""
    token = token or env.token
    result: dict[str, list[dict]] = {name: [] for name in q.CONNECTIONS}
    cursors: dict[str, str | None] = {name: None for name in q.CONNECTIONS}
    pending = list(q.CONNECTIONS)
    while pending:
        variables = {"owner": owner, "name": name, **{c: cursors[c] for c in pending}}
        repo = env.graphql(q.metadata_query(pending), variables, token).data["repository"]
        for connection in list(pending):
            result[connection].extend(repo[connection]["nodes"])
            if repo[connection]["pageInfo"]["hasNextPage"]:
                cursors[connection] = repo[connection]["pageInfo"]["endCursor"]
            else:
                pending.remove(connection)
    review_ids = {}
    for pull in result["pullRequests"]:
        review_ids.update({str(r["id"]): r["node_id"] for r in env.rest("/repos/%s/%s/pulls/%d/reviews?per_page=100" % (owner, name, pull["number"]),
                                                                        token)})
    overflow: list[tuple[dict, str, str, str | None]] = []

    def check(node: dict, node_type: str) -> None:
        for connection in q.NESTED[node_type]:
            page = node.get(connection)
            if page is None:
                node[connection] = {"nodes": []}
                overflow.append((node, node_type, connection, None))
            elif page["pageInfo"]["hasNextPage"]:
                overflow.append((node, node_type, connection, page["pageInfo"]["endCursor"]))

    for issue in result["issues"]:
        check(issue, "Issue")
    for pull in result["pullRequests"]:
        check(pull, "PullRequest")
        for review in pull["reviews"]["nodes"]:
            check(review, "PullRequestReview")
    for release in result["releases"]:
        check(release, "Release")
    followed = set()
    while overflow:
        batch, overflow = overflow[:q.FOLLOW_UPS_PER_QUERY], overflow[q.FOLLOW_UPS_PER_QUERY:]
        ids = [(n.get("id") or review_ids[n["fullDatabaseId"]], node_type, connection, cursor) for n, node_type, connection, cursor in batch]
        data = env.graphql(q.follow_up_query(ids), None, token).data
        for index, (node, node_type, connection, _cursor) in enumerate(batch):
            followed.add((node_type, connection))
            page = data["n%d" % index][connection]
            node[connection]["nodes"].extend(page["nodes"])
            if page["pageInfo"]["hasNextPage"]:
                overflow.append((node, node_type, connection, page["pageInfo"]["endCursor"]))
            if node_type == "PullRequest" and connection == "reviews":
                for review in page["nodes"]:
                    check(review, "PullRequestReview")
    result["followed"] = sorted(followed)  # type: ignore[assignment]
    return result


def login(actor: dict | None) -> str | None:
    return actor["login"] if actor else None


def check_against_rest(env: Env, owner: str, name: str, data: dict[str, list[dict]], token: str | None = None) -> None:
    """The GraphQL answers about a repository equal REST's: same numbers, bodies, logins, dates and counts."""
    token = token or env.token
    base = "/repos/%s/%s" % (owner, name)
    issues = env.rest(base + "/issues?state=all&per_page=100", token)
    issues = {i["number"]: i for i in ([] if issues == 410 else issues) if "pull_request" not in i}
    assert sorted(i["number"] for i in data["issues"]) == sorted(issues) and len(data["issues"]) == len(issues)
    for node in data["issues"]:
        issue = issues[node["number"]]
        assert (node["id"], node["databaseId"], node["title"], node["body"], node["state"], node["locked"], login(node["author"])) == (
            issue["node_id"], issue["id"], issue["title"], issue["body"], issue["state"].upper(), issue["locked"], issue["user"]["login"])
        assert node["stateReason"] == (issue["state_reason"].upper() if issue["state_reason"] else None)
        assert (node["createdAt"], node["updatedAt"], node["closedAt"]) == (issue["created_at"], issue["updated_at"], issue["closed_at"])
        assert sorted(n["name"] for n in node["labels"]["nodes"]) == sorted(label["name"] for label in issue["labels"])
        assert node["milestone"] == ({"number": issue["milestone"]["number"], "title": issue["milestone"]["title"]} if issue["milestone"] else None)
        assert [n["login"] for n in node["assignees"]["nodes"]] == [a["login"] for a in issue["assignees"]]
        check_comments(env, base, node, issue["comments"], token)
    pulls = {p["number"]: p for p in env.rest(base + "/pulls?state=all&per_page=100", token)}
    assert sorted(p["number"] for p in data["pullRequests"]) == sorted(pulls)
    for node in data["pullRequests"]:
        pull = pulls[node["number"]]
        assert (node["id"], node["fullDatabaseId"], node["title"], node["body"], node["isDraft"], node["locked"], login(node["author"])) == (
            pull["node_id"], str(pull["id"]), pull["title"], pull["body"], pull["draft"], pull["locked"], pull["user"]["login"])
        assert node["state"] == ("MERGED" if pull["merged_at"] else pull["state"].upper())
        assert (node["createdAt"], node["updatedAt"], node["closedAt"], node["mergedAt"]) == (
            pull["created_at"], pull["updated_at"], pull["closed_at"], pull["merged_at"])
        assert node["mergeCommit"] == ({"oid": pull["merge_commit_sha"]} if pull["merge_commit_sha"] else None)
        assert (node["baseRefName"], node["baseRefOid"], node["headRefName"], node["headRefOid"]) == (
            pull["base"]["ref"], pull["base"]["sha"], pull["head"]["ref"], pull["head"]["sha"])
        assert sorted(n["name"] for n in node["labels"]["nodes"]) == sorted(label["name"] for label in pull["labels"])
        assert [n["login"] for n in node["assignees"]["nodes"]] == [a["login"] for a in pull["assignees"]]
        details = env.rest("%s/pulls/%d" % (base, node["number"]), token)
        check_comments(env, base, node, details["comments"], token)
        reviews = env.rest("%s/pulls/%d/reviews?per_page=100" % (base, node["number"]), token)
        assert [(r["fullDatabaseId"], r["body"], login(r["author"]), r["state"], r["submittedAt"], r["commit"]["oid"])
                for r in node["reviews"]["nodes"]] == [
            (str(r["id"]), r["body"], r["user"]["login"], r["state"], r["submitted_at"], r["commit_id"]) for r in reviews]
        comments = env.rest("%s/pulls/%d/comments?per_page=100" % (base, node["number"]), token)
        assert len(comments) == details["review_comments"]
        graph = sorted(((c["fullDatabaseId"], c["body"], login(c["author"]), c["path"], c["diffHunk"], c["line"], c["originalLine"],
                         c["commit"]["oid"], c["originalCommit"]["oid"], (c["replyTo"] or {}).get("fullDatabaseId"),
                         c["pullRequestReview"]["fullDatabaseId"], c["createdAt"], c["updatedAt"])
                        for r in node["reviews"]["nodes"] for c in r["comments"]["nodes"]), key=lambda c: int(c[0]))
        assert graph == [(str(c["id"]), c["body"], c["user"]["login"], c["path"], c["diff_hunk"], c["line"], c["original_line"], c["commit_id"],
                          c["original_commit_id"], str(c["in_reply_to_id"]) if c.get("in_reply_to_id") else None,
                          str(c["pull_request_review_id"]), c["created_at"], c["updated_at"]) for c in comments]
    releases = {r["id"]: r for r in env.rest(base + "/releases?per_page=100", token)}
    assert sorted(r["databaseId"] for r in data["releases"]) == sorted(releases)
    for node in data["releases"]:
        release = releases[node["databaseId"]]
        assert (node["id"], node["tagName"], node["name"], node["description"], node["isDraft"], node["isPrerelease"], node["createdAt"],
                node["publishedAt"], login(node["author"])) == (
            release["node_id"], release["tag_name"], release["name"], release["body"], release["draft"], release["prerelease"],
            release["created_at"], release["published_at"], release["author"]["login"])
        assert [(a["name"], a["contentType"], a["size"], a["downloadCount"], a["downloadUrl"], a["createdAt"], a["updatedAt"],
                 login(a["uploadedBy"])) for a in node["releaseAssets"]["nodes"]] == [
            (a["name"], a["content_type"], a["size"], a["download_count"], a["browser_download_url"], a["created_at"], a["updated_at"],
             a["uploader"]["login"]) for a in release["assets"]]
    labels = env.rest(base + "/labels?per_page=100", token)
    assert [(n["name"], n["color"], n["description"], n["isDefault"]) for n in data["labels"]] == [
        (label["name"], label["color"], label["description"], label["default"]) for label in labels]
    milestones = env.rest(base + "/milestones?state=all&per_page=100&sort=completeness", token)
    assert [(n["number"], n["title"], n["description"], n["state"], n["dueOn"], n["createdAt"], n["updatedAt"], n["closedAt"],
             login(n["creator"])) for n in sorted(data["milestones"], key=lambda m: m["number"])] == [
        (m["number"], m["title"], m["description"], m["state"].upper(), m["due_on"], m["created_at"], m["updated_at"], m["closed_at"],
         m["creator"]["login"]) for m in milestones]


def check_comments(env: Env, base: str, node: dict, count: int, token: str) -> None:
    comments = env.rest("%s/issues/%d/comments?per_page=100" % (base, node["number"]), token)
    assert len(comments) == count
    assert [(c["databaseId"], c["body"], login(c["author"]), c["authorAssociation"], c["createdAt"], c["updatedAt"])
            for c in node["comments"]["nodes"]] == [
        (c["id"], c["body"], c["user"]["login"], c["author_association"], c["created_at"], c["updated_at"]) for c in comments]


@pytest.mark.parametrize("name", ["tracker", "core-lib", "secret-repo", "no-issues", "archived-repo", "empty-repo", BUSY])
def test_metadata_queries_agree_with_rest(env, name):
    data = read_repository(env, ORG, name)
    check_against_rest(env, ORG, name, data)
    if name == BUSY:  # every nested connection of _github_graphql overflowed and was read by follow-ups
        assert set(data["followed"]) == {(node_type, c) for node_type in q.NESTED for c in q.NESTED[node_type]}
        assert len(data["issues"]) == 55 and len(data["pullRequests"]) == 12 and len(data["releases"]) == 22  # a member sees the draft
        assert len(data["issues"][0]["comments"]["nodes"]) == 23


def test_metadata_query_of_any_connections(env):
    """metadata_query() of every subset of CONNECTIONS answers exactly those, each the same first page."""
    full = env.graphql(q.metadata_query(list(q.CONNECTIONS)), {"owner": ORG, "name": BUSY}).data["repository"]
    for size in range(1, len(q.CONNECTIONS)):
        for subset in itertools.combinations(q.CONNECTIONS, size):
            variables = {"owner": ORG, "name": BUSY, **{c: None for c in subset}}
            repo = env.graphql(q.metadata_query(list(subset)), variables).data["repository"]
            assert set(repo) == set(subset) and all(repo[c] == full[c] for c in subset)


def test_repositories_query_reads_freshness_and_names_what_is_missing(env):
    names = ["tracker", "core-lib", "no-such-repo", "secret-repo", "empty-repo"]
    answer = env.graphql(q.repositories_query([(ORG, n) for n in names]), None).json()
    data, errors = answer["data"], answer["errors"]
    assert data["r2"] is None and errors == [{"type": "NOT_FOUND", "path": ["r2"], "locations": errors[0]["locations"],
                                              "message": "Could not resolve to a Repository with the name 'acme/no-such-repo'."}]
    assert errors[0]["locations"][0]["line"] == 5
    for index, name in enumerate(names):
        if data["r%d" % index] is None:
            continue
        fresh = data["r%d" % index]
        repo = env.rest("/repos/%s/%s" % (ORG, name))
        issues = [i for i in env.rest("/repos/%s/%s/issues?state=all&per_page=100" % (ORG, name)) if "pull_request" not in i]
        assert fresh["pushedAt"] == repo["pushed_at"] and fresh["issues"]["totalCount"] == len(issues)
        assert fresh["issues"]["nodes"] == ([{"updatedAt": newest(issues, "updated_at")}] if issues else [])
    outsider = env.standin.add_token(login="freshness-outsider", orgs=[])
    hidden = env.graphql(q.repositories_query([(ORG, "secret-repo"), (ORG, "tracker")]), None, outsider).json()
    assert hidden["data"]["r0"] is None and hidden["data"]["r1"] is not None
    assert [(e["type"], e["path"]) for e in hidden["errors"]] == [("NOT_FOUND", ["r0"])]


# --------------------------------------------------------------------------------------------------
# Nodes, connections, arguments
# --------------------------------------------------------------------------------------------------

def test_node_ids_are_rest_node_ids(env):
    base = "/repos/%s/tracker" % ORG
    pull = env.rest(base + "/pulls?state=all")[0]
    issue = next(i for i in env.rest(base + "/issues?state=all&per_page=100") if "pull_request" not in i and i["comments"])
    comment = env.rest("%s/issues/%d/comments" % (base, issue["number"]))[0]
    review = env.rest("%s/pulls/%d/reviews" % (base, pull["number"]))[0]
    review_comment = env.rest("%s/pulls/%d/comments" % (base, pull["number"]))[0]
    release = env.rest(base + "/releases")[0]
    label = env.rest(base + "/labels")[0]
    milestone = env.rest(base + "/milestones?state=all")[0]
    objects = {
        "Repository": (env.rest(base), "databaseId", "id"), "Issue": (issue, "databaseId", "id"), "PullRequest": (pull, "fullDatabaseId", "id"),
        "IssueComment": (comment, "databaseId", "id"), "PullRequestReview": (review, "fullDatabaseId", "id"),
        "PullRequestReviewComment": (review_comment, "fullDatabaseId", "id"), "Release": (release, "databaseId", "id"),
        "ReleaseAsset": (release["assets"][0], "name", "name"), "Label": (label, "name", "name"), "Milestone": (milestone, "number", "number"),
        "Organization": (env.rest("/orgs/%s" % ORG), "databaseId", "id"), "User": (env.rest("/users/octocat"), "databaseId", "id"),
    }
    ids = [obj["node_id"] for obj, _field, _rest in objects.values()]
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id %s } }" % " ".join(
        "... on %s { %s }" % (kind, field) for kind, (_obj, field, _rest) in objects.items() if field != "id")
    nodes = env.graphql(query, {"ids": ids}).data["nodes"]
    for (kind, (obj, field, rest_field)), node in zip(objects.items(), nodes):
        assert node["__typename"] == kind and node["id"] == obj["node_id"]
        assert str(node[field]) == str(obj[rest_field]), kind
    single = env.graphql('{ node(id: "%s") { ... on Issue { number title } } }' % issue["node_id"]).data["node"]
    assert single == {"number": issue["number"], "title": issue["title"]}
    unknown_issue = base64.b64encode(b"05:Issue9999999").decode()
    bad = env.graphql('query($ids: [ID!]!) { nodes(ids: $ids) { id } node(id: "nope") { id } }', {"ids": [ids[0], unknown_issue, "x"]}).json()
    assert bad["data"] == {"nodes": [{"id": ids[0]}, None, None], "node": None}
    assert sorted((e["type"], tuple(e["path"])) for e in bad["errors"]) == [
        ("NOT_FOUND", ("node",)), ("NOT_FOUND", ("nodes", 1)), ("NOT_FOUND", ("nodes", 2))]
    assert {e["message"] for e in bad["errors"]} >= {"Could not resolve to a node with the global id of 'nope'"}
    secret = env.rest("/repos/%s/secret-repo" % ORG)["node_id"]
    outsider = env.standin.add_token(login="node-outsider", orgs=[])
    hidden = env.graphql('{ node(id: "%s") { id } }' % secret, None, outsider).json()
    assert hidden["data"] == {"node": None} and hidden["errors"][0]["type"] == "NOT_FOUND"


def test_connection_paging_cursors_and_edges(env):
    query = """query($after: String, $before: String, $first: Int, $last: Int) { repository(owner: "acme", name: "busy") {
      issues(first: $first, last: $last, after: $after, before: $before) { totalCount edges { cursor node { number } }
        nodes { number } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }"""
    numbers, after, pages = [], None, 0
    while True:
        page = env.graphql(query, {"first": 7, "after": after}).data["repository"]["issues"]
        assert [e["node"] for e in page["edges"]] == page["nodes"] and page["totalCount"] == 55
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"] and page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        assert page["pageInfo"]["hasPreviousPage"] == (after is not None)
        numbers += [n["number"] for n in page["nodes"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    expected = sorted((i for i in env.rest("/repos/acme/busy/issues?state=all&per_page=100") if "pull_request" not in i),
                      key=lambda i: (i["created_at"], i["number"]))
    assert numbers == [i["number"] for i in expected] and pages == 8
    last = env.graphql(query, {"last": 3}).data["repository"]["issues"]
    assert [n["number"] for n in last["nodes"]] == numbers[-3:] and last["pageInfo"]["hasPreviousPage"] and not last["pageInfo"]["hasNextPage"]
    before = env.graphql(query, {"last": 2, "before": last["pageInfo"]["startCursor"]}).data["repository"]["issues"]
    assert [n["number"] for n in before["nodes"]] == numbers[-5:-3]
    # a cursor stays put when an earlier item goes: the next page starts after the item it names
    gh = env.standin.github
    repo = gh.repo(ORG, BUSY)
    second = env.graphql(query, {"first": 5}).data["repository"]["issues"]
    new_issue = gh.add_issue(repo, "Late issue", "octocat", created_at=utc_iso(github_fixtures.BASE_EPOCH))  # sorts first
    try:
        rest_of = env.graphql(query, {"first": 3, "after": second["pageInfo"]["endCursor"]}).data["repository"]["issues"]
        assert [n["number"] for n in rest_of["nodes"]] == numbers[5:8]
    finally:
        del repo.issues[new_issue.number]
    invalid = env.graphql(query, {"first": 2, "after": "not-a-cursor"}).json()
    assert invalid["data"]["repository"] is None
    assert invalid["errors"][0]["type"] == "INVALID_CURSOR_ARGUMENTS" and "`not-a-cursor` does not appear to be a valid cursor." == \
        invalid["errors"][0]["message"]


@pytest.mark.parametrize("connection,order,rest_key", [
    ("issues", "CREATED_AT", lambda i: (i["created_at"], i["number"])),
    ("issues", "UPDATED_AT", lambda i: (i["updated_at"], i["number"])),
    ("issues", "COMMENTS", lambda i: (i["comments"], i["number"])),
    ("pullRequests", "UPDATED_AT", lambda i: (i["updated_at"], i["number"])),
    ("pullRequests", "COMMENTS", lambda i: (i["comments"], i["number"])),
])
def test_issue_ordering(env, connection, order, rest_key):
    items = [i for i in env.rest("/repos/acme/busy/issues?state=all&per_page=100") if ("pull_request" in i) == (connection == "pullRequests")]
    for direction in ("ASC", "DESC"):
        query = '{ repository(owner: "acme", name: "busy") { %s(first: 100, orderBy: {field: %s, direction: %s}) { nodes { number } } } }' % (
            connection, order, direction)
        numbers = [n["number"] for n in env.graphql(query).data["repository"][connection]["nodes"]]
        assert numbers == [i["number"] for i in sorted(items, key=rest_key, reverse=direction == "DESC")]


def test_other_orderings_and_filters(env):
    def repo_query(body: str, owner: str = ORG, name: str = BUSY) -> dict:
        return env.graphql('{ repository(owner: "%s", name: "%s") { %s } }' % (owner, name, body)).data["repository"]

    releases = env.rest("/repos/acme/busy/releases?per_page=100")
    by_name = repo_query("releases(first: 100, orderBy: {field: NAME, direction: ASC}) { nodes { name } }")["releases"]["nodes"]
    assert [r["name"] for r in by_name] == sorted(r["name"] for r in releases)
    newest_first = repo_query("releases(first: 100, orderBy: {field: CREATED_AT, direction: DESC}) { nodes { databaseId } }")
    assert [r["databaseId"] for r in newest_first["releases"]["nodes"]] == [r["id"] for r in releases]  # REST: newest first
    latest = repo_query("latestRelease { tagName isLatest } releases(first: 100) { nodes { isLatest isDraft isPrerelease } }")
    assert sum(r["isLatest"] for r in latest["releases"]["nodes"]) == 1 and latest["latestRelease"]["isLatest"]
    milestones = env.rest("/repos/acme/busy/milestones?state=all")
    for field, key in (("NUMBER", lambda m: m["number"]), ("CREATED_AT", lambda m: (m["created_at"], m["number"])),
                       ("UPDATED_AT", lambda m: (m["updated_at"], m["number"])),
                       ("DUE_DATE", lambda m: (m["due_on"] is None, m["due_on"] or "", m["number"]))):
        for direction in ("ASC", "DESC"):
            nodes = repo_query("milestones(first: 10, orderBy: {field: %s, direction: %s}) { nodes { number } }" % (field, direction))
            assert [m["number"] for m in nodes["milestones"]["nodes"]] == [m["number"] for m in sorted(milestones, key=key, reverse=direction == "DESC")]
    closed = repo_query("milestones(first: 10, states: [CLOSED]) { totalCount nodes { state closed } }")["milestones"]
    assert closed["totalCount"] == len([m for m in milestones if m["state"] == "closed"]) == 1 and closed["nodes"][0]["closed"]
    states = repo_query("open: issues(first: 1, states: [OPEN]) { totalCount } closed: issues(first: 1, states: [CLOSED]) { totalCount } "
                        "merged: pullRequests(first: 1, states: [MERGED]) { totalCount } prClosed: pullRequests(first: 1, states: [CLOSED]) "
                        "{ totalCount } prOpen: pullRequests(first: 1, states: OPEN) { totalCount }")
    issues = [i for i in env.rest("/repos/acme/busy/issues?state=all&per_page=100") if "pull_request" not in i]
    pulls = env.rest("/repos/acme/busy/pulls?state=all&per_page=100")
    assert states["open"]["totalCount"] == sum(i["state"] == "open" for i in issues)
    assert states["closed"]["totalCount"] == sum(i["state"] == "closed" for i in issues)
    assert states["merged"]["totalCount"] == sum(bool(p["merged_at"]) for p in pulls) > 0
    assert states["prClosed"]["totalCount"] == sum(p["state"] == "closed" and not p["merged_at"] for p in pulls)
    assert states["prOpen"]["totalCount"] == sum(p["state"] == "open" for p in pulls)
    since = issues[10]["updated_at"]
    filtered = repo_query('issues(first: 100, filterBy: {since: "%s"}) { nodes { number } }' % since)["issues"]["nodes"]
    assert {n["number"] for n in filtered} == {i["number"] for i in issues if i["updated_at"] >= since}
    labelled = repo_query('issues(first: 100, labels: ["area/03"]) { totalCount } label(name: "area/03") { issues(first: 1) { totalCount } }')
    assert labelled["issues"]["totalCount"] == labelled["label"]["issues"]["totalCount"] == sum(
        any(label["name"] == "area/03" for label in i["labels"]) for i in issues)
    labels = repo_query("labels(first: 100, orderBy: {field: NAME, direction: DESC}) { nodes { name } }")["labels"]["nodes"]
    assert [n["name"] for n in labels] == sorted((label["name"] for label in env.rest("/repos/acme/busy/labels?per_page=100")),
                                                 key=str.lower, reverse=True)


def test_repository_ordering_and_affiliations(env):
    rest_repos = env.rest("/orgs/%s/repos?per_page=100" % ORG)
    for field, sort in (("NAME", "full_name"), ("CREATED_AT", "created"), ("UPDATED_AT", "updated"), ("PUSHED_AT", "pushed")):
        for direction in ("ASC", "DESC"):
            query = '{ organization(login: "%s") { repositories(first: 100, orderBy: {field: %s, direction: %s}) { totalCount nodes { name } } } }' % (
                ORG, field, direction)
            nodes = env.graphql(query).data["organization"]["repositories"]
            listed = env.rest("/orgs/%s/repos?per_page=100&sort=%s&direction=%s" % (ORG, sort, direction.lower()))
            assert [n["name"] for n in nodes["nodes"]] == [r["name"] for r in listed] and nodes["totalCount"] == len(rest_repos)
    outsider = env.standin.add_token(login="affiliations-outsider", orgs=[])
    public = env.graphql('{ organization(login: "%s") { repositories(first: 100) { totalCount } } }' % ORG, None, outsider).data
    assert public["organization"]["repositories"]["totalCount"] == len(env.rest("/orgs/%s/repos?per_page=100" % ORG, outsider))
    forks = env.graphql('{ organization(login: "%s") { repositories(first: 100, isFork: true, privacy: PUBLIC) { nodes { name } } } }' % ORG).data
    assert [n["name"] for n in forks["organization"]["repositories"]["nodes"]] == ["core-lib-fork"]
    env.standin.github.add_repo("octocat", "dotfiles", owner_type="User")
    mine = '{ user(login: "octocat") { repositories(first: 100, ownerAffiliations: [%s]) { nodes { nameWithOwner } } } }'
    owned = env.graphql(mine % "OWNER").data["user"]["repositories"]["nodes"]
    assert [n["nameWithOwner"] for n in owned] == ["octocat/dotfiles"]
    default = env.graphql('{ user(login: "octocat") { repositories(first: 100) { totalCount } } }').data  # OWNER, COLLABORATOR
    assert default["user"]["repositories"]["totalCount"] == 1
    member = env.graphql(mine % "OWNER, ORGANIZATION_MEMBER").data["user"]["repositories"]["nodes"]
    assert {"octocat/dotfiles", "acme/tracker", "acme/secret-repo"} <= {n["nameWithOwner"] for n in member}


def test_bigint_and_dates_are_strings(env):
    data = env.graphql('{ repository(owner: "acme", name: "busy") { pullRequests(first: 1) { nodes { fullDatabaseId databaseId '
                       'reviews(first: 1) { nodes { fullDatabaseId comments(first: 1) { nodes { fullDatabaseId } } } } } } '
                       'issues(first: 1) { nodes { fullDatabaseId databaseId } } } }').data["repository"]
    pull = data["pullRequests"]["nodes"][0]
    assert isinstance(pull["fullDatabaseId"], str) and pull["fullDatabaseId"] == str(pull["databaseId"])
    assert isinstance(pull["reviews"]["nodes"][0]["fullDatabaseId"], str)
    assert data["issues"]["nodes"][0]["fullDatabaseId"] == str(data["issues"]["nodes"][0]["databaseId"])


# --------------------------------------------------------------------------------------------------
# Accounting: cost, node limit, the GraphQL bucket
# --------------------------------------------------------------------------------------------------

DOCS_NODE_EXAMPLE = """{ viewer { repositories(first: 50) { edges { repository: node { name
  issues(first: 10) { totalCount edges { node { title bodyHTML } } } } } } } rateLimit { cost nodeCount } }"""
DOCS_COST_EXAMPLE = """{ viewer { login repositories(first: 100) { edges { node { id issues(first: 50) { edges { node { id
  labels(first: 60) { edges { node { id name } } } } } } } } } } rateLimit { cost nodeCount } }"""
# GitHub's second example without its followers(first: 10) (not in the stand-in's schema): 22,060 - 10 nodes
DOCS_SECOND_NODE_EXAMPLE = """{ viewer { repositories(first: 50) { edges { repository: node { name
  pullRequests(first: 20) { edges { pullRequest: node { title comments(first: 10) { edges { comment: node { bodyHTML } } } } } }
  issues(first: 20) { totalCount edges { issue: node { title bodyHTML comments(first: 10) { edges { comment: node { bodyHTML } } } } } } } } }
  } rateLimit { cost nodeCount } }"""


def test_cost_and_node_count_as_githubs_docs_compute_them(env, fresh_token):
    node_example = env.graphql(DOCS_NODE_EXAMPLE, None, fresh_token)
    assert node_example.data["rateLimit"] == {"cost": 1, "nodeCount": 550}  # 50 + 50 * 10; 51 requests
    cost_example = env.graphql(DOCS_COST_EXAMPLE, None, fresh_token)
    assert cost_example.data["rateLimit"] == {"cost": 51, "nodeCount": 305100}  # 1 + 100 + 5,000 requests
    assert cost_example.rate("Used") == node_example.rate("Used") + 51 == 52
    assert cost_example.rate("Remaining") == 5000 - 52 and cost_example.headers["X-RateLimit-Resource"] == "graphql"
    assert cost_example.rate("Limit") == 5000 and cost_example.rate("Reset") > time.time()
    second = env.graphql(DOCS_SECOND_NODE_EXAMPLE, None, fresh_token).data["rateLimit"]
    assert second == {"cost": 21, "nodeCount": 22050}  # 1 + 50 + 50 + 1,000 + 1,000 requests
    metadata = env.graphql(q.metadata_query(list(q.CONNECTIONS)), {"owner": ORG, "name": "tracker"}, fresh_token).data["rateLimit"]
    assert metadata["cost"] >= 1 and metadata["remaining"] == 5000 - 73 - metadata["cost"]
    rest_limits = env.rest("/rate_limit", fresh_token)["resources"]
    assert rest_limits["graphql"]["used"] == 73 + metadata["cost"] and rest_limits["core"]["used"] == 0


def test_pagination_limits_and_node_limit(env, fresh_token):
    used = env.graphql("{ rateLimit { used } }", None, fresh_token).data["rateLimit"]["used"]
    query = '{ repository(owner: "acme", name: "busy") { issues(first: 101) { nodes { number } } } }'
    too_many = env.graphql(query, None, fresh_token)
    assert too_many.status == 200 and too_many.json() == {"errors": [{
        "type": "EXCESSIVE_PAGINATION", "path": ["query", "repository", "issues"], "locations": [{"line": 1, "column": query.index("issues") + 1}],
        "message": "Requesting 101 records on the `issues` connection exceeds the `first` limit of 100 records."}]}
    last = env.graphql('query Q($n: Int) { repository(owner: "acme", name: "busy") { labels(last: $n) { totalCount } } }', {"n": 500},
                       fresh_token).json()
    assert last["errors"][0]["type"] == "EXCESSIVE_PAGINATION" and "exceeds the `last` limit of 100" in last["errors"][0]["message"]
    assert last["errors"][0]["path"] == ["query Q", "repository", "labels"]
    query = '{ repository(owner: "acme", name: "busy") { issues { totalCount } } }'
    missing = env.graphql(query, None, fresh_token).json()
    assert missing == {"errors": [{"type": "MISSING_PAGINATION_BOUNDARIES", "path": ["query", "repository", "issues"],
                                   "locations": [{"line": 1, "column": query.index("issues") + 1}],
                                   "message": "You must provide a `first` or `last` value to properly paginate the `issues` connection."}]}
    huge = env.graphql('{ organization(login: "acme") { repositories(first: 100) { nodes { issues(first: 100) { nodes { '
                       'comments(first: 100) { totalCount } } } } } } }', None, fresh_token)
    assert huge.status == 200 and huge.json() == {"errors": [{
        "type": "MAX_NODE_LIMIT_EXCEEDED",
        "message": "This query requests up to 1,010,100 possible nodes which exceeds the maximum limit of 500,000."}]}
    fits = env.graphql('{ organization(login: "acme") { repositories(first: 50) { nodes { issues(first: 100) { nodes { '
                       'comments(first: 98) { totalCount } } } } } } rateLimit { nodeCount cost } }', None, fresh_token)
    assert fits.data["rateLimit"] == {"nodeCount": 50 + 5000 + 490000, "cost": 51}  # 5,051 requests
    assert fits.rate("Used") == used + 51  # refused queries cost nothing


def test_dry_run_and_bucket_exhaustion(env, fresh_token):
    dry = env.graphql('{ rateLimit(dryRun: true) { cost nodeCount used } repository(owner: "acme", name: "busy") { '
                      'issues(first: 100) { nodes { comments(first: 100) { totalCount } } } } }', None, fresh_token)
    assert dry.data == {"rateLimit": {"cost": 1, "nodeCount": 10100, "used": 0}, "repository": None} and dry.rate("Used") == 0
    standin = env.standin
    standin.set_graphql_rate_limit(fresh_token, 3, window=3)
    first = env.graphql(DOCS_NODE_EXAMPLE, None, fresh_token)
    assert first.rate("Limit") == 3 and first.rate("Remaining") == 2
    assert env.graphql(q.REPOSITORIES, {"login": ORG, "cursor": None}, fresh_token).json() == {  # costs 3, 2 left
        "data": None, "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID %d." % standin.github.owner(
            "graphql-user").id}]}
    assert [env.graphql("{ rateLimit { remaining } }", None, fresh_token).data["rateLimit"]["remaining"] for _i in range(2)] == [1, 0]
    limited = env.graphql("{ rateLimit { cost } }", None, fresh_token)
    assert limited.status == 200 and limited.json()["errors"][0]["type"] == "RATE_LIMITED" and limited.rate("Remaining") == 0
    assert env.rest("/repos/acme/tracker", fresh_token)["name"] == "tracker"  # REST has its own bucket
    time.sleep(max(0.0, limited.rate("Reset") - time.time()) + 0.1)
    assert env.graphql("{ rateLimit { remaining } }", None, fresh_token).data == {"rateLimit": {"remaining": 2}}
    standin.exhaust_graphql_rate_limit(fresh_token, 30)
    assert env.graphql("{ rateLimit { remaining } }", None, fresh_token).json()["errors"][0]["type"] == "RATE_LIMITED"
    assert standin.graphql_rate_limit_state(fresh_token).remaining == 0
    own = standin.add_token(login="graphql-small", graphql_rate_limit=7)
    assert env.graphql("{ rateLimit { limit remaining } }", None, own).data == {"rateLimit": {"limit": 7, "remaining": 6}}


# --------------------------------------------------------------------------------------------------
# Authentication, errors, faults
# --------------------------------------------------------------------------------------------------

def test_authentication(env):
    query = "{ rateLimit { limit } }"
    anonymous = post(env.standin, query)
    assert anonymous.status == 401 and anonymous.json() == {
        "message": "This endpoint requires you to be authenticated.",
        "documentation_url": "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql"}
    bad = post(env.standin, query, token="ghp_not-valid")
    assert bad.status == 401 and bad.json() == {"message": "Bad credentials", "documentation_url": "https://docs.github.com/graphql"}
    for scheme, value in (("bearer", env.token), ("token", env.token), ("Basic", base64.b64encode(("x:%s" % env.token).encode()).decode())):
        assert post(env.standin, query, token=value, scheme=scheme).status == 200
    assert env.standin.count("graphql", status=401) >= 2


def test_errors_like_githubs(env):
    query = '{ repository(owner: "acme", name: "tracker") { name } other: repository(owner: "acme", name: "gone") { name } }'
    unknown = env.graphql(query).json()
    assert unknown == {"data": {"repository": {"name": "tracker"}, "other": None}, "errors": [{
        "type": "NOT_FOUND", "path": ["other"], "locations": [{"line": 1, "column": query.index("other") + 1}],
        "message": "Could not resolve to a Repository with the name 'acme/gone'."}]}
    blocked = env.graphql('{ repository(owner: "acme", name: "dmca-repo") { name } }').json()
    assert blocked["data"] == {"repository": None} and blocked["errors"][0]["type"] == "FORBIDDEN"
    assert env.graphql('{ organization(login: "octocat") { login } }').json()["errors"][0]["message"] == \
        "Could not resolve to an Organization with the login of 'octocat'."
    assert env.graphql('{ repositoryOwner(login: "nobody-here") { login } }').json() == {"data": {"repositoryOwner": None}}
    pull_as_issue = env.graphql('{ repository(owner: "acme", name: "busy") { issue(number: 56) { title } pullRequest(number: 56) { title } } }').json()
    assert pull_as_issue["data"]["repository"]["issue"] is None and pull_as_issue["data"]["repository"]["pullRequest"]["title"] == "PR 0"
    undefined = env.graphql('{ repository(owner: "acme", name: "tracker") { hasWiki } }').json()
    assert "data" not in undefined and "hasWiki" in undefined["errors"][0]["message"] and undefined["errors"][0]["locations"]
    syntax = env.graphql("{ repository(owner: ").json()
    assert "data" not in syntax and syntax["errors"][0]["message"].startswith("Syntax Error")
    missing_variable = env.graphql("query($owner: String!) { repository(owner: $owner, name: \"x\") { name } }").json()
    assert "data" not in missing_variable and "$owner" in missing_variable["errors"][0]["message"]
    not_json = post(env.standin, "", token=env.token, raw=b"{not json")
    assert not_json.status == 400 and not_json.json()["message"] == "Problems parsing JSON"
    no_query = post(env.standin, "", token=env.token, raw=b'{"variables": {}}')
    assert no_query.status == 200 and no_query.json() == {"errors": [{"message": "A query attribute must be specified and must be a string."}]}
    variables_text = post(env.standin, "", token=env.token, raw=json.dumps({
        "query": "query($n: String!) { repository(owner: \"acme\", name: $n) { name } }", "variables": json.dumps({"n": "tracker"})}).encode())
    assert variables_text.data == {"repository": {"name": "tracker"}}


def test_injected_graphql_faults(env, fresh_token):
    standin = env.standin
    query = '{ rateLimit { cost } repository(owner: "acme", name: "tracker") { name } }'
    standin.inject_graphql("rate_limited", count=2, reset_in=42)
    for _attempt in range(2):
        limited = env.graphql(query, None, fresh_token)
        assert limited.status == 200 and limited.rate("Remaining") == 0 and limited.rate("Used") == limited.rate("Limit")
        assert abs(limited.rate("Reset") - (time.time() + 42)) < 3
        assert limited.json() == {"data": None, "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID %d."
                                                            % standin.github.owner("graphql-user").id}]}
    assert env.graphql(query, None, fresh_token).data["repository"] == {"name": "tracker"}
    standin.inject_graphql("partial")
    partial = env.graphql(query, None, fresh_token).json()
    assert partial["data"] == {"rateLimit": {"cost": 1}, "repository": None}
    assert partial["errors"][0]["path"] == ["repository"] and partial["errors"][0]["message"].startswith("Something went wrong")
    standin.inject_graphql("partial", path=["r1", "issues"], error_type="FORBIDDEN", message="Resource not accessible by integration")
    fresh = env.graphql(q.repositories_query([(ORG, "tracker"), (ORG, "core-lib")]), None, fresh_token).json()
    assert fresh["data"]["r1"]["issues"] is None and fresh["data"]["r0"]["issues"]["totalCount"] > 0
    assert fresh["errors"] == [{"type": "FORBIDDEN", "path": ["r1", "issues"], "message": "Resource not accessible by integration"}]
    standin.inject_graphql("timeout")
    timeout = env.graphql(query, None, fresh_token)
    body = timeout.json()
    assert timeout.status == 200 and body["data"] is None and len(body["errors"]) == 1
    assert body["errors"][0]["message"] == ("Something went wrong while executing your query. This may be the result of a timeout, or it "
                                            "could be a GitHub bug. Please include `%s` when reporting this issue." % timeout.headers["X-GitHub-Request-Id"])
    standin.inject_graphql("502")
    bad_gateway = env.graphql(query, None, fresh_token)
    assert bad_gateway.status == 502 and bad_gateway.headers["Content-Type"].startswith("text/html") and b"Unicorn!" in bad_gateway.body
    standin.inject_graphql("502", body_format="json")
    assert env.graphql(query, None, fresh_token).json() == {"message": "Server Error"}
    standin.inject_graphql("delay", delay=0.6)
    started = time.monotonic()
    assert env.graphql(query, None, fresh_token).data["repository"] == {"name": "tracker"}
    assert time.monotonic() - started >= 0.6
    standin.inject(r"^/api/graphql$", 503, kind="graphql")
    assert env.graphql(query, None, fresh_token).status == 503
    standin.inject_secondary_rate_limit(r"graphql", retry_after=3, kind="graphql")
    secondary = env.graphql(query, None, fresh_token)
    assert secondary.status == 403 and secondary.headers["Retry-After"] == "3" and "secondary rate limit" in secondary.json()["message"]
    assert env.graphql(query, None, fresh_token).status == 200
    assert standin.count("graphql", status=502) == 2


def test_graphql_can_be_switched_off(tmp_path):
    with GitHubStandIn(str(tmp_path), graphql=False) as standin:
        token = standin.add_token(login="ghes-user")
        off = post(standin, "{ rateLimit { cost } }", token=token)
        assert off.status == 404 and off.json()["message"] == "Not Found"
        standin.graphql = True
        assert post(standin, "{ rateLimit { cost } }", token=token).status == 200


# --------------------------------------------------------------------------------------------------
# Changes upstream, seen alike through REST and GraphQL
# --------------------------------------------------------------------------------------------------

def test_changes_move_the_right_dates(env):
    standin = env.standin
    repo = standin.github.repo(ORG, "core-lib")
    issue_number = next(i.number for i in repo.issues.values() if i.pull is None)
    query = """query($number: Int!) { repository(owner: "acme", name: "core-lib") { updatedAt
      issue(number: $number) { updatedAt comments(last: 1) { totalCount nodes { databaseId body updatedAt lastEditedAt editor { login } } } }
      releases(first: 5) { nodes { databaseId updatedAt description } } labels(first: 100) { totalCount nodes { name } }
      milestones(first: 1, orderBy: {field: UPDATED_AT, direction: DESC}) { totalCount nodes { title updatedAt } } } }"""

    def both() -> tuple[dict, dict, dict]:
        graph = env.graphql(query, {"number": issue_number}).data["repository"]
        return graph, env.rest("/repos/acme/core-lib/issues/%d" % issue_number), env.rest("/repos/acme/core-lib")

    before, issue_before, repo_before = both()
    added = github_fixtures.add_comment(standin, ORG, "core-lib", issue_number, "A new comment\n")
    graph, issue, _repo = both()
    assert graph["issue"]["updatedAt"] == issue["updated_at"] == added.created_at > issue_before["updated_at"]  # a comment moves the issue
    assert graph["issue"]["comments"]["totalCount"] == issue["comments"] == issue_before["comments"] + 1
    time.sleep(1.1)
    edited = github_fixtures.edit_comment(standin, ORG, "core-lib", issue_number, body="Edited body\n")
    graph, issue_after_edit, _repo = both()
    comments = env.rest("/repos/acme/core-lib/issues/%d/comments" % issue_number)
    node = graph["issue"]["comments"]["nodes"][0]
    assert node == {"databaseId": edited.id, "body": "Edited body\n", "updatedAt": comments[-1]["updated_at"], "lastEditedAt": edited.last_edited_at,
                    "editor": {"login": "octocat"}}
    assert comments[-1]["body"] == "Edited body\n" and comments[-1]["updated_at"] > comments[-1]["created_at"]
    assert graph["issue"]["updatedAt"] == issue_after_edit["updated_at"] == issue["updated_at"]  # an edit does not move the issue
    github_fixtures.delete_comment(standin, ORG, "core-lib", issue_number)
    graph, issue_after_delete, _repo = both()
    assert graph["issue"]["comments"]["totalCount"] == issue_after_delete["comments"] == issue_before["comments"]
    release = env.rest("/repos/acme/core-lib/releases")[0]
    edited_release = github_fixtures.edit_release(standin, ORG, "core-lib", release["tag_name"], body="New notes\n")
    graph, _issue, repo_after = both()
    rest_release = env.rest("/repos/acme/core-lib/releases/%d" % release["id"])
    assert rest_release["updated_at"] == edited_release.updated_at > release["updated_at"] and rest_release["body"] == "New notes\n"
    assert rest_release["created_at"] == release["created_at"]
    assert [(r["databaseId"], r["updatedAt"], r["description"]) for r in graph["releases"]["nodes"]] == [
        (release["id"], rest_release["updated_at"], "New notes\n")]
    assert repo_after["updated_at"] == graph["updatedAt"]
    labels = env.rest("/repos/acme/core-lib/labels")
    issue_with_label = next(i for i in repo.issues.values() if i.labels)
    dropped = issue_with_label.labels[0]
    github_fixtures.delete_label(standin, ORG, "core-lib", dropped)
    graph, _issue, _repo = both()
    assert graph["labels"]["totalCount"] == len(env.rest("/repos/acme/core-lib/labels")) == len(labels) - 1
    assert dropped not in [n["name"] for n in graph["labels"]["nodes"]]
    assert dropped not in [label["name"] for label in env.rest("/repos/acme/core-lib/issues/%d" % issue_with_label.number)["labels"]]
    milestone = github_fixtures.add_milestone(standin, ORG, "core-lib", "v9.9")
    graph, _issue, _repo = both()
    assert graph["milestones"]["totalCount"] == before["milestones"]["totalCount"] + 1 == len(env.rest("/repos/acme/core-lib/milestones?state=all"))
    assert graph["milestones"]["nodes"] == [{"title": "v9.9", "updatedAt": milestone.updated_at}]
    assert repo_before["updated_at"] <= graph["updatedAt"]


# --------------------------------------------------------------------------------------------------
# git at GitHub's URLs
# --------------------------------------------------------------------------------------------------

def git(*args: str, token: str | None = None) -> subprocess.CompletedProcess:
    extra = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": "Authorization: Bearer %s" % token} if token else {}
    return subprocess.run(["git", *args], env=git_env(extra), capture_output=True, text=True, check=False, timeout=60)


def ls_remote(url: str, token: str | None = None) -> dict[str, str]:
    result = git("ls-remote", url, token=token)
    assert result.returncode == 0, result.stderr
    return {line.split("\t")[1]: line.split("\t")[0] for line in result.stdout.splitlines() if not line.endswith("^{}") and "\tHEAD" not in line}


def test_git_at_the_web_url(env):
    standin = env.standin
    url = env.graphql('{ repository(owner: "acme", name: "secret-repo") { url } }').data["repository"]["url"]
    assert url == env.rest("/repos/acme/secret-repo")["html_url"] == standin.web_git_url(ORG, "secret-repo")[:-4]
    assert ls_remote(url + ".git", env.token) == env.facts["secret-repo"]["refs"] == ls_remote(standin.git_url(ORG, "secret-repo"), env.token)
    assert git("ls-remote", url + ".git").returncode != 0  # private: needs the token
    dest = os.path.join(env.root, "web-mirror.git")
    cloned = git("clone", "--mirror", "--quiet", standin.web_git_url(ORG, "core-lib"), dest)
    assert cloned.returncode == 0, cloned.stderr
    assert github_fixtures.git_refs(dest) == env.facts["core-lib"]["refs"]
    assert ls_remote(standin.web_git_url(ORG, "core-lib", wiki=True)) == env.facts["core-lib"]["wiki_refs"]
    facts = env.facts["lfs-repo"]
    oid, size = next(iter(facts["lfs_objects"].items()))
    batch = http_request(standin, "POST", "/%s/lfs-repo.git/info/lfs/objects/batch" % ORG, json.dumps(
        {"operation": "download", "objects": [{"oid": oid, "size": size}]}).encode(), {
        "Authorization": "token %s" % env.token, "Accept": "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json"})
    assert batch.status == 200 and batch.json()["objects"][0]["actions"]["download"]["href"]
    assert standin.count("lfs", status=200, path_regex=r"^/acme/lfs-repo\.git/info/lfs/") == 1
    assert standin.count("git", path_regex=r"^/acme/core-lib\.git/") >= 2
    assert http_request(standin, "GET", "/acme/core-lib").status == 404  # the web page itself is not served
    standin.github.add_org("git")
    standin.github.add_repo("git", "tools", os.path.join(env.root, "served", "git", "tools.git"))
    assert ls_remote(standin.base_url + "/git/tools.git") == {}  # an owner called "git": the web URL wins where it names a repository
    assert ls_remote(standin.git_url(ORG, "tracker")) == env.facts["tracker"]["refs"]
