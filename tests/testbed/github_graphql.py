# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""GitHub's GraphQL API (``POST /api/graphql``) for the GitHub stand-in, answered from its :class:`FakeGitHub` model.

The schema is ``github_schema.graphql``: a strict subset of GitHub's public schema (the same type, field, argument
and enum value names, types and nullability; a test checks it against npm ``@octokit/graphql-schema``), built once
per process with graphql-core. Queries run through graphql-core; what GitHub adds is copied:

* accounting before execution (:func:`prepare`): every connection needs ``first`` or ``last`` (at most 100), else
  ``MISSING_PAGINATION_BOUNDARIES`` / ``EXCESSIVE_PAGINATION``; the node count is the sum over connections of the
  product of the page sizes down to them, above 500,000 the query is refused (``MAX_NODE_LIMIT_EXCEEDED``, no
  data); the cost is the number of requests needed to fill every connection at its page size (1 for a top-level
  connection, the product of the page sizes above it for a nested one), divided by 100 and rounded, at least 1;
* errors next to partial data, with GitHub's ``type`` (``NOT_FOUND`` with the alias as ``path``, ``FORBIDDEN``,
  ``INVALID_CURSOR_ARGUMENTS``); node ids equal to the REST ``node_id`` of the same object, ``node(id:)`` and
  ``nodes(ids:)`` resolve them; BigInt values (``fullDatabaseId``) are strings;
* visibility as in REST: private repositories (and everything in them) only for tokens that may read them, draft
  releases only for members. A DMCA-blocked or disabled repository asked for by name or id answers ``FORBIDDEN``
  ("Repository access blocked"); in an owner's repository list it shows with empty connections.

The rate limit bucket, authentication and injected faults are the stand-in's business (``_handle_graphql``).
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import datetime
import hashlib
import html
import json
import os
import re
import threading
import typing as t
import urllib.parse

import graphql

from ansible_collections.corebackup.backup.tests.testbed.github_standin import (
    Asset,
    Comment,
    Issue,
    Label,
    Milestone,
    Owner,
    Release,
    Repo,
    Review,
    ReviewComment,
    Token,
    _node_id,
    run_git,
    utc_iso,
)

SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "github_schema.graphql")
MAX_PAGE_SIZE = 100
MAX_NODES = 500000
DOCUMENT_CACHE_SIZE = 512

_SCHEMA: graphql.GraphQLSchema | None = None
_SCHEMA_LOCK = threading.Lock()
_DOCUMENTS: collections.OrderedDict[str, tuple[graphql.DocumentNode | None, list[dict]]] = collections.OrderedDict()
_DOCUMENTS_LOCK = threading.Lock()


def schema() -> graphql.GraphQLSchema:
    """The stand-in's schema, built (and checked) once per process."""
    global _SCHEMA  # pylint: disable=global-statement
    with _SCHEMA_LOCK:
        if _SCHEMA is None:
            with open(SCHEMA_FILE, encoding="utf-8") as handle:
                built = graphql.build_schema(handle.read())
            problems = graphql.validate_schema(built)
            if problems:
                raise RuntimeError("%s is not a valid schema: %s" % (SCHEMA_FILE, "; ".join(p.message for p in problems)))
            _SCHEMA = built
        return _SCHEMA


class GraphQLProblem(Exception):
    """An error GitHub reports with a ``type`` next to ``path``, ``locations`` and ``message``."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclasses.dataclass
class Prepared:
    """A parsed, validated and costed request; ``errors`` (GitHub's error objects) when it may not run."""
    document: graphql.DocumentNode | None = None
    operation: graphql.OperationDefinitionNode | None = None
    operation_name: str | None = None
    variables: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    errors: list[dict] = dataclasses.field(default_factory=list)
    mutation: bool = False
    dry_run: bool = False
    requests: int = 0  # requests needed to fill every connection (GitHub's rate limit calculation)
    node_count: int = 0
    cost: int = 1


def _location(node: graphql.Node | None) -> list[dict[str, int]]:
    if node is None or node.loc is None:
        return []
    return [{"line": node.loc.start_token.line, "column": node.loc.start_token.column}]


def _parsed(query: str) -> tuple[graphql.DocumentNode | None, list[dict]]:
    """The document of ``query`` and its syntax or validation errors, cached by the text (clients repeat their queries)."""
    with _DOCUMENTS_LOCK:
        cached = _DOCUMENTS.get(query)
        if cached is not None:
            _DOCUMENTS.move_to_end(query)
            return cached
    try:
        document: graphql.DocumentNode | None = graphql.parse(query)
    except graphql.GraphQLError as exc:
        result: tuple[graphql.DocumentNode | None, list[dict]] = (None, [_plain(exc.formatted)])
    else:
        result = (document, [_plain(e.formatted) for e in graphql.validate(schema(), document)])
    with _DOCUMENTS_LOCK:
        _DOCUMENTS[query] = result
        while len(_DOCUMENTS) > DOCUMENT_CACHE_SIZE:
            _DOCUMENTS.popitem(last=False)
    return result


def _plain(formatted: t.Mapping[str, t.Any]) -> dict:
    return {key: value for key, value in formatted.items() if value is not None and key != "extensions"}


def prepare(query: str, variables: dict[str, t.Any], operation_name: str | None = None) -> Prepared:
    """Parse, validate and cost a request the way GitHub does before it runs one."""
    document, errors = _parsed(query)
    prepared = Prepared(document=document, operation_name=operation_name, variables=dict(variables))
    if document is None:
        prepared.errors = errors
        return prepared
    operation = graphql.get_operation_ast(document, operation_name)
    if operation is not None:
        prepared.operation = operation
        prepared.mutation = operation.operation == graphql.OperationType.MUTATION
    if errors:
        prepared.errors = errors
        return prepared
    if operation is None:
        operations = [d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)]
        message = "No operation named \"%s\"" % operation_name if operation_name and operations else \
            "An operation name is required" if len(operations) > 1 else "No operations given"
        prepared.errors = [{"message": message}]
        return prepared
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in prepared.variables and definition.default_value is not None:
            prepared.variables[name] = graphql.value_from_ast_untyped(definition.default_value)
    walk = _Walk(prepared.variables, {d.name.value: d for d in document.definitions if isinstance(d, graphql.FragmentDefinitionNode)},
                 "query" if operation.name is None else "%s %s" % (operation.operation.value, operation.name.value))
    root = schema().mutation_type if prepared.mutation else schema().query_type
    if root is not None:
        _account(walk, root, operation.selection_set, 1, [walk.root])
    unique: list[dict] = []
    for error in walk.errors:
        if error not in unique:
            unique.append(error)
    if not unique and walk.nodes > MAX_NODES:
        unique.append({"type": "MAX_NODE_LIMIT_EXCEEDED", "message": "This query requests up to %s possible nodes which exceeds the "
                                                                     "maximum limit of 500,000." % "{:,}".format(walk.nodes)})
    prepared.errors = unique
    prepared.requests = walk.requests
    prepared.node_count = walk.nodes
    prepared.cost = max(1, int(walk.requests / 100.0 + 0.5))
    prepared.dry_run = any(key == "rateLimit" and _literal(node, "dryRun", prepared.variables) is True
                           for key, node in _top_level(walk, operation.selection_set))
    return prepared


@dataclasses.dataclass
class _Walk:
    variables: dict[str, t.Any]
    fragments: dict[str, graphql.FragmentDefinitionNode]
    root: str
    requests: int = 0
    nodes: int = 0
    errors: list[dict] = dataclasses.field(default_factory=list)


def _literal(node: graphql.FieldNode, argument: str, variables: dict[str, t.Any]) -> t.Any:
    """The value of a scalar argument of ``node`` (a literal or a variable), None when absent."""
    for arg in node.arguments or ():
        if arg.name.value == argument:
            if isinstance(arg.value, graphql.VariableNode):
                return variables.get(arg.value.name.value)
            if isinstance(arg.value, graphql.NullValueNode):
                return None
            return graphql.value_from_ast_untyped(arg.value)
    return None


def _top_level(walk: _Walk, selection_set: graphql.SelectionSetNode) -> list[tuple[str, graphql.FieldNode]]:
    """(field name, node) of the top-level fields, through fragments."""
    found = []
    for selection in selection_set.selections:
        if isinstance(selection, graphql.FieldNode):
            found.append((selection.name.value, selection))
        elif isinstance(selection, graphql.InlineFragmentNode):
            found.extend(_top_level(walk, selection.selection_set))
        elif isinstance(selection, graphql.FragmentSpreadNode) and selection.name.value in walk.fragments:
            found.extend(_top_level(walk, walk.fragments[selection.name.value].selection_set))
    return found


def _account(walk: _Walk, parent: graphql.GraphQLNamedType, selection_set: graphql.SelectionSetNode, multiplier: int,
             path: list[str]) -> None:
    """Add the connections below ``selection_set`` to the request and node counts (``multiplier``: how many times the
    enclosing connections may repeat it) and note pagination errors."""
    for selection in selection_set.selections:
        if isinstance(selection, graphql.FieldNode):
            name = selection.name.value
            fields = getattr(parent, "fields", None)
            if name.startswith("__") or not fields or name not in fields:
                continue
            field = fields[name]
            named = graphql.get_named_type(field.type)
            key = selection.alias.value if selection.alias else name
            inner = multiplier
            if named.name.endswith("Connection") and "first" in field.args:
                size = _page_size(walk, selection, name, path + [key])
                walk.requests += multiplier
                inner = multiplier * size
                walk.nodes += inner
            if selection.selection_set is not None:
                _account(walk, named, selection.selection_set, inner, path + [key])
        elif isinstance(selection, graphql.InlineFragmentNode):
            target = schema().get_type(selection.type_condition.name.value) if selection.type_condition else parent
            _account(walk, target or parent, selection.selection_set, multiplier, path)
        elif isinstance(selection, graphql.FragmentSpreadNode):
            fragment = walk.fragments.get(selection.name.value)
            if fragment is not None:
                _account(walk, schema().get_type(fragment.type_condition.name.value) or parent, fragment.selection_set, multiplier, path)


def _page_size(walk: _Walk, node: graphql.FieldNode, name: str, path: list[str]) -> int:
    sizes = {arg: _literal(node, arg, walk.variables) for arg in ("first", "last")}
    sizes = {arg: value for arg, value in sizes.items() if isinstance(value, int) and not isinstance(value, bool)}
    if not sizes:
        walk.errors.append({"type": "MISSING_PAGINATION_BOUNDARIES", "path": path, "locations": _location(node),
                            "message": "You must provide a `first` or `last` value to properly paginate the `%s` connection." % name})
        return 0
    for arg, value in sizes.items():
        if value > MAX_PAGE_SIZE:
            walk.errors.append({"type": "EXCESSIVE_PAGINATION", "path": path, "locations": _location(node),
                                "message": "Requesting %d records on the `%s` connection exceeds the `%s` limit of %d records." % (
                                    value, name, arg, MAX_PAGE_SIZE)})
    return max(0, min(MAX_PAGE_SIZE, max(sizes.values())))


# --------------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------------

class Context:
    """One request: the stand-in, the token, the ``rateLimit`` answer, and errors found outside graphql-core's reach."""

    def __init__(self, standin: t.Any, token: Token, rate: dict[str, t.Any], dry_run: bool = False):
        self.standin = standin
        self.github = standin.github
        self.token = token
        self.rate = rate
        self.dry_run = dry_run
        self.base_url = standin.base_url
        self.extra_errors: list[dict] = []
        self.info: graphql.GraphQLResolveInfo | None = None
        self._git: dict[tuple[str, str], t.Any] = {}

    def can_read(self, repo: Repo) -> bool:
        return self.github.can_read(self.token, repo)

    def member(self, repo: Repo) -> bool:
        return self.github.is_member(self.token, repo.owner)

    def actor(self, login: str | None) -> _Owner | None:
        if not login:
            return None
        return _Owner(self, self.github.owner(login) or self.github.add_user(login))

    def git(self, repo: Repo, what: str, *args: str) -> t.Any:
        """A git answer about ``repo``, once per request: ``commit`` (fields of a commit), ``tag`` (of a tag object),
        ``refs`` (for-each-ref lines under a prefix), ``resolve`` (object id and type of a ref)."""
        key = (repo.git_dir, what + "\0" + "\0".join(args))
        if key not in self._git:
            self._git[key] = _git_answer(repo, what, args)
        return self._git[key]


def _git_answer(repo: Repo, what: str, args: tuple[str, ...]) -> t.Any:
    if what == "commit":
        out = run_git(repo.git_dir, "log", "-1", "--format=%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%B", args[0], "--", check=False)
        fields = out.stdout.decode("utf-8", "replace").split("\0")
        if out.returncode or len(fields) < 7:
            return None
        return {"author": {"name": fields[0], "email": fields[1], "date": utc_iso(int(fields[2]))},
                "committer": {"name": fields[3], "email": fields[4], "date": utc_iso(int(fields[5]))}, "message": fields[6].rstrip("\n")}
    if what == "tag":
        out = run_git(repo.git_dir, "cat-file", "tag", args[0], check=False)
        if out.returncode:
            return None
        head, _sep, message = out.stdout.decode("utf-8", "replace").partition("\n\n")
        fields = dict(line.split(" ", 1) for line in head.splitlines() if " " in line)
        tagger = re.match(r"^(.*) <(.*)> (\d+) [+-]\d{4}$", fields.get("tagger", ""))
        return {"object": fields.get("object"), "type": fields.get("type"), "tag": fields.get("tag"), "message": message,
                "tagger": {"name": tagger.group(1), "email": tagger.group(2), "date": utc_iso(int(tagger.group(3)))} if tagger else None}
    if what == "refs":
        out = run_git(repo.git_dir, "for-each-ref", "--format=%(refname)%00%(objectname)%00%(objecttype)%00%(*committerdate:unix)"
                      "%00%(committerdate:unix)", args[0], check=False)
        refs = []
        for line in out.stdout.decode("utf-8", "replace").splitlines():
            name, oid, kind, peeled_date, date = (line.split("\0") + ["", "", "", ""])[:5]
            refs.append((name, oid, kind, int(peeled_date or date or 0)))
        return refs
    if what == "resolve":
        out = run_git(repo.git_dir, "for-each-ref", "--format=%(refname)%00%(objectname)%00%(objecttype)", args[0], check=False)
        for line in out.stdout.decode("utf-8", "replace").splitlines():
            name, oid, kind = (line.split("\0") + ["", ""])[:3]
            if name == args[0]:
                return oid, kind
        return None
    if what == "peel":
        out = run_git(repo.git_dir, "rev-parse", "--verify", "--quiet", args[0] + "^{commit}", check=False)
        return out.stdout.decode().strip() or None if not out.returncode else None
    raise ValueError(what)


_SNAKE: dict[str, str] = {}


def _snake(name: str) -> str:
    snake = _SNAKE.get(name)
    if snake is None:
        snake = _SNAKE[name] = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    return snake


def _resolve(source: t.Any, info: graphql.GraphQLResolveInfo, **args: t.Any) -> t.Any:
    """graphql-core's field resolver: a dict answers by key, a view by its method or property named in snake_case."""
    if isinstance(source, dict):
        return source.get(info.field_name)
    if isinstance(source, _Query):  # nodes(ids:) reports the ids it cannot resolve with their paths
        source.ctx.info = info
    value = getattr(source, _snake(info.field_name))
    return value(**args) if callable(value) else value


def _resolve_type(value: t.Any, info: graphql.GraphQLResolveInfo, abstract_type: graphql.GraphQLAbstractType) -> str:
    return value.typename


def execute(prepared: Prepared, ctx: Context) -> dict[str, t.Any]:
    """Run a prepared request: ``{"data": ..., "errors": [...]}`` (no ``data`` when the variables do not fit)."""
    ctx.dry_run = prepared.dry_run
    result = graphql.execute_sync(schema(), prepared.document, root_value=_Query(ctx), variable_values=prepared.variables,
                                  operation_name=prepared.operation_name, field_resolver=_resolve, type_resolver=_resolve_type)
    errors = []
    for error in result.errors or ():
        original = error.original_error
        if isinstance(original, GraphQLProblem):
            entry: dict[str, t.Any] = {"type": original.error_type}
            if error.path:
                entry["path"] = list(error.path)
            entry["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations or ()]
            entry["message"] = original.message
            errors.append(entry)
        else:
            if original is not None and not isinstance(original, graphql.GraphQLError):  # a bug of the stand-in
                ctx.standin.errors.append("GraphQL resolver failed at %s: %r" % (error.path, original))
            errors.append(_plain(error.formatted))
    errors.extend(ctx.extra_errors)
    payload: dict[str, t.Any] = {}
    if result.data is not None or any("path" in e for e in errors):
        payload["data"] = result.data
    if errors:
        payload["errors"] = errors
    return payload


def null_field(prepared: Prepared, payload: dict[str, t.Any], path: list[str | int] | None, error: dict[str, t.Any]) -> None:
    """Make ``payload`` a partial answer: the field at ``path`` in ``data`` (default: the first top-level field other than
    ``rateLimit``) becomes null and ``error`` (with that ``path``) is added to ``errors``."""
    data = payload.get("data")
    if not isinstance(data, dict) or prepared.operation is None:
        return
    location: list[dict[str, int]] = []
    if path is None:
        walk = _Walk({}, {d.name.value: d for d in prepared.document.definitions if isinstance(d, graphql.FragmentDefinitionNode)}, "")
        for name, node in _top_level(walk, prepared.operation.selection_set):
            if name != "rateLimit":
                path = [node.alias.value if node.alias else name]
                location = _location(node)
                break
    if not path:
        return
    parent: t.Any = data
    for step in path[:-1]:
        parent = parent[step] if parent is not None else None
    if parent is None:
        return
    parent[path[-1]] = None
    entry = {"type": error["type"]} if error.get("type") else {}
    entry["path"] = list(path)
    if location:
        entry["locations"] = location
    entry["message"] = error["message"]
    payload.setdefault("errors", []).append(entry)


# --------------------------------------------------------------------------------------------------
# Connections, cursors, node ids
# --------------------------------------------------------------------------------------------------

def _cursor(key: tuple) -> str:
    return base64.b64encode(("cursor:v2:" + json.dumps(list(key), separators=(",", ":"))).encode("utf-8")).decode("ascii")


def _decode_cursor(cursor: str) -> tuple:
    try:
        text = base64.b64decode(cursor.encode("ascii"), validate=True).decode("utf-8")
        if not text.startswith("cursor:v2:"):
            raise ValueError(text)
        key = json.loads(text[len("cursor:v2:"):])
        if not isinstance(key, list):
            raise ValueError(text)
        return tuple(key)
    except (ValueError, UnicodeError, binascii.Error):
        raise GraphQLProblem("INVALID_CURSOR_ARGUMENTS", "`%s` does not appear to be a valid cursor." % cursor)


class _Connection:
    """A page of a connection: ``items`` ordered by ``key`` (unique, JSON-able tuples: cursors are built from them, so
    that a page boundary stays put when items come or go), cut by after/before/first/last."""

    def __init__(self, items: t.Iterable[t.Any], key: t.Callable[[t.Any], tuple], args: dict[str, t.Any],
                 view: t.Callable[[t.Any], t.Any], descending: bool = False, disk_usage: int = 0):
        ordered = sorted(items, key=key, reverse=descending)
        keys = [key(item) for item in ordered]
        low, high = 0, len(ordered)
        try:
            if args.get("after") is not None:
                mark = _decode_cursor(args["after"])
                low = next((i for i, k in enumerate(keys) if (k < mark if descending else k > mark)), len(keys))
            if args.get("before") is not None:
                mark = _decode_cursor(args["before"])
                high = max(low, next((i for i, k in enumerate(keys) if (k <= mark if descending else k >= mark)), len(keys)))
        except TypeError:
            raise GraphQLProblem("INVALID_CURSOR_ARGUMENTS", "`%s` does not appear to be a valid cursor." % (args.get("after") or args.get("before")))
        if args.get("first") is not None:
            high = min(high, low + max(0, args["first"]))
        if args.get("last") is not None:
            low = max(low, high - max(0, args["last"]))
        self._page = list(zip(keys[low:high], ordered[low:high]))
        self._has_next = high < len(ordered)
        self._has_previous = low > 0
        self._total = len(ordered)
        self._view = view
        self._disk_usage = disk_usage

    def nodes(self) -> list[t.Any]:
        return [self._view(item) for _key, item in self._page]

    def edges(self) -> list[dict[str, t.Any]]:
        return [{"cursor": _cursor(key), "node": self._view(item)} for key, item in self._page]

    @property
    def page_info(self) -> dict[str, t.Any]:
        return {"hasNextPage": self._has_next, "hasPreviousPage": self._has_previous,
                "startCursor": _cursor(self._page[0][0]) if self._page else None,
                "endCursor": _cursor(self._page[-1][0]) if self._page else None}

    @property
    def total_count(self) -> int:
        return self._total

    @property
    def total_disk_usage(self) -> int:
        return self._disk_usage


def decode_node_id(value: str) -> tuple[str, int] | None:
    """(type, database id) of a node id (``MDEwOlJlcG9zaXRvcnkxMDAx`` is ``010:Repository1001``), None if it is none."""
    try:
        text = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("ascii")
    except (ValueError, UnicodeError, binascii.Error):
        return None
    match = re.match(r"^0(\d+):([A-Za-z]+?)(\d+)$", text)
    if not match or int(match.group(1)) != len(match.group(2)):
        return None
    return match.group(2), int(match.group(3))


def _html(text: str | None) -> str:
    return '<p dir="auto">%s</p>' % html.escape(text or "").replace("\n", "<br>\n") if text else ""


def _iso(value: t.Any) -> str:
    """A DateTime argument in the model's form (``2024-01-31T12:00:00Z``)."""
    try:
        parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise GraphQLProblem("INVALID_ARGUMENTS", "Could not coerce value %s to DateTime" % json.dumps(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _order(args: dict[str, t.Any], keys: dict[str, t.Callable[[t.Any], tuple]], default: str, default_direction: str = "ASC"
           ) -> tuple[t.Callable[[t.Any], tuple], bool]:
    order = args.get("orderBy") or {}
    return keys[order.get("field") or default], (order.get("direction") or default_direction) == "DESC"


# --------------------------------------------------------------------------------------------------
# Views: one per GraphQL object type, a method or property per field (snake_case)
# --------------------------------------------------------------------------------------------------

class _View:
    typename = ""

    def __init__(self, ctx: Context):
        self.ctx = ctx


class _Query(_View):
    typename = "Query"

    def rate_limit(self, dryRun: bool = False) -> dict[str, t.Any]:
        return self.ctx.rate

    def _repository(self, repo: Repo | None, what: str) -> _Repository:
        if repo is None or not self.ctx.can_read(repo):
            raise GraphQLProblem("NOT_FOUND", "Could not resolve to a Repository with the name '%s'." % what)
        if repo.dmca or repo.disabled:
            raise GraphQLProblem("FORBIDDEN", "Repository access blocked")
        return _Repository(self.ctx, repo)

    def repository(self, owner: str, name: str, followRenames: bool = True) -> _Repository | None:
        if self.ctx.dry_run:
            return None
        with self.ctx.github.lock:
            return self._repository(self.ctx.github.repo(owner, name), "%s/%s" % (owner, name))

    def repository_owner(self, login: str) -> _Owner | None:
        owner = self.ctx.github.owner(login)
        return None if owner is None or self.ctx.dry_run else _Owner(self.ctx, owner)

    def organization(self, login: str) -> _Owner | None:
        owner = self.ctx.github.owner(login)
        if owner is None or owner.type != "Organization":
            raise GraphQLProblem("NOT_FOUND", "Could not resolve to an Organization with the login of '%s'." % login)
        return None if self.ctx.dry_run else _Owner(self.ctx, owner)

    def user(self, login: str) -> _Owner | None:
        owner = self.ctx.github.owner(login)
        if owner is None or owner.type != "User":
            raise GraphQLProblem("NOT_FOUND", "Could not resolve to a User with the login of '%s'." % login)
        return None if self.ctx.dry_run else _Owner(self.ctx, owner)

    @property
    def viewer(self) -> _Owner:
        if self.ctx.token.installation_id is not None:
            raise GraphQLProblem("FORBIDDEN", "Resource not accessible by integration")
        return self.ctx.actor(self.ctx.token.login)

    def _node(self, value: str) -> _View:
        missing = GraphQLProblem("NOT_FOUND", "Could not resolve to a node with the global id of '%s'" % value)
        decoded = decode_node_id(value)
        if decoded is None:
            raise missing
        kind, ident = decoded
        with self.ctx.github.lock:
            found = self.ctx.github.locate(kind, ident)
            if found is None:
                raise missing
            if kind in ("User", "Organization"):
                return _Owner(self.ctx, found[0])
            repo: Repo = found[0]
            if not self.ctx.can_read(repo):
                raise missing
            if repo.dmca or repo.disabled:
                raise GraphQLProblem("FORBIDDEN", "Repository access blocked")
            if kind == "Repository":
                return _Repository(self.ctx, repo)
            if kind in ("Issue", "PullRequest"):
                return _issue_view(self.ctx, repo, found[1], as_issue=kind == "Issue")
            if kind == "IssueComment":
                return _IssueComment(self.ctx, repo, found[1], found[2])
            if kind == "PullRequestReview":
                return _Review(self.ctx, repo, found[1], found[2])
            if kind == "PullRequestReviewComment":
                return _ReviewComment(self.ctx, repo, found[1], found[2])
            if kind == "PullRequestReviewThread":
                return _Thread(self.ctx, repo, found[1], found[2])
            if kind == "Release":
                if found[1].draft and not self.ctx.member(repo):
                    raise missing
                return _Release(self.ctx, repo, found[1])
            if kind == "ReleaseAsset":
                if found[1].draft and not self.ctx.member(repo):
                    raise missing
                return _Asset(self.ctx, repo, found[1], found[2])
            if kind == "Label":
                return _Label(self.ctx, repo, found[1])
            if kind == "Milestone":
                return _Milestone(self.ctx, repo, found[1])
        raise missing

    def node(self, id: str) -> _View | None:  # pylint: disable=redefined-builtin
        return None if self.ctx.dry_run else self._node(id)

    def nodes(self, ids: list[str]) -> list[_View | None]:
        if self.ctx.dry_run:
            return []
        path = self.ctx.info.path.as_list() if self.ctx.info else ["nodes"]
        location = _location(self.ctx.info.field_nodes[0]) if self.ctx.info else []
        found: list[_View | None] = []
        for index, value in enumerate(ids):
            try:
                found.append(self._node(value))
            except GraphQLProblem as problem:
                found.append(None)
                self.ctx.extra_errors.append({"type": problem.error_type, "path": path + [index], "locations": location,
                                              "message": problem.message})
        return found


class _Owner(_View):
    """A ``User`` or an ``Organization``."""

    def __init__(self, ctx: Context, owner: Owner):
        super().__init__(ctx)
        self.owner = owner
        self.typename = "Organization" if owner.type == "Organization" else "User"

    @property
    def id(self) -> str:
        return _node_id(self.typename, self.owner.id)

    @property
    def database_id(self) -> int:
        return self.owner.id

    @property
    def login(self) -> str:
        return self.owner.login

    @property
    def name(self) -> str:
        return self.owner.name or self.owner.login  # as REST's "name"

    @property
    def description(self) -> str | None:
        return self.owner.description

    @property
    def bio(self) -> str | None:
        return self.owner.description

    company = location = website_url = archived_at = None
    is_site_admin = is_verified = False

    @property
    def email(self) -> str | None:
        return "" if self.typename == "User" else None  # User.email is String!: "" when not public

    @property
    def created_at(self) -> str:
        return self.owner.created_at

    @property
    def updated_at(self) -> str:
        return self.owner.updated_at

    @property
    def url(self) -> str:
        return "%s/%s" % (self.ctx.base_url, self.owner.login)

    @property
    def resource_path(self) -> str:
        return "/" + self.owner.login

    def avatar_url(self, size: int | None = None) -> str:
        return "%s/avatars/u/%d?v=4%s" % (self.ctx.base_url, self.owner.id, "&s=%d" % size if size else "")

    @property
    def is_viewer(self) -> bool:
        return self.ctx.token.installation_id is None and self.ctx.token.login.lower() == self.owner.login.lower()

    def repository(self, name: str, followRenames: bool = True) -> _Repository | None:
        repo = self.ctx.github.repo(self.owner.login, name)
        return _Repository(self.ctx, repo) if repo is not None and self.ctx.can_read(repo) else None

    def repositories(self, **args: t.Any) -> _Connection:
        """An owner's repositories as GitHub lists them: ``ownerAffiliations`` (default OWNER, COLLABORATOR: those it
        owns; ORGANIZATION_MEMBER adds, for a user, those of the organizations its tokens are members of), the viewer's
        ``affiliations``, ``privacy``, ``visibility``, ``isFork``, ``isArchived``, ``isLocked``, ``hasIssuesEnabled``."""
        github, token = self.ctx.github, self.ctx.token
        owner_affiliations = args.get("ownerAffiliations") or ["OWNER", "COLLABORATOR"]
        with github.lock:
            repos = []
            for repo in github.repos.values():
                owned = repo.owner is self.owner
                member_of = (self.owner.type == "User" and repo.owner.type == "Organization" and
                             any(tok.login.lower() == self.owner.login.lower() and tok.account is None and github.is_member(tok, repo.owner)
                                 for tok in github.tokens.values()))
                if not ((owned and "OWNER" in owner_affiliations) or (member_of and "ORGANIZATION_MEMBER" in owner_affiliations)):
                    continue
                if not github.can_read(token, repo):
                    continue
                repos.append(repo)
            affiliations = args.get("affiliations")
            if affiliations:
                repos = [r for r in repos if ("OWNER" in affiliations and r.owner.login.lower() == token.login.lower()) or
                         ("ORGANIZATION_MEMBER" in affiliations and r.owner.type == "Organization" and github.is_member(token, r.owner))]
            filters = (("privacy", lambda r, v: r.private == (v == "PRIVATE")), ("visibility", lambda r, v: r.visibility.upper() == v),
                       ("isFork", lambda r, v: r.fork == v), ("isArchived", lambda r, v: r.archived == v),
                       ("isLocked", lambda r, v: not v), ("hasIssuesEnabled", lambda r, v: r.has_issues == v))
            for name, keep in filters:
                if args.get(name) is not None:
                    repos = [r for r in repos if keep(r, args[name])]
            key, descending = _order(args, {"NAME": lambda r: (r.name.lower(), r.id), "CREATED_AT": lambda r: (r.created_at, r.id),
                                            "UPDATED_AT": lambda r: (r.updated_at, r.id), "PUSHED_AT": lambda r: (r.pushed_at, r.id),
                                            "STARGAZERS": lambda r: (r.stargazers_count, r.id), "ID": lambda r: (r.id,)}, "ID")
            return _Connection(repos, key, args, lambda r: _Repository(self.ctx, r), descending, sum(r.size for r in repos))


class _InRepo(_View):
    """A view of something in a repository."""

    def __init__(self, ctx: Context, repo: Repo):
        super().__init__(ctx)
        self.repo = repo

    @property
    def repository(self) -> _Repository:
        return _Repository(self.ctx, self.repo)

    def _web(self, path: str) -> str:
        return "%s/%s%s" % (self.ctx.base_url, self.repo.full_name, path)

    def _commit(self, oid: str | None) -> _Commit | None:
        return _Commit(self.ctx, self.repo, oid) if oid else None


def _issue_view(ctx: Context, repo: Repo, issue: Issue, as_issue: bool = False) -> _Issue:
    return _PullRequest(ctx, repo, issue) if issue.pull is not None and not as_issue else _Issue(ctx, repo, issue)


def _pull_state(issue: Issue) -> str:
    if issue.pull is not None and issue.pull.merged_at is not None:
        return "MERGED"
    return issue.state.upper()


def _issue_connection(ctx: Context, repo: Repo, issues: t.Iterable[Issue], pulls: bool, args: dict[str, t.Any]) -> _Connection:
    """``issues`` or ``pullRequests`` with GitHub's filters (``states``, ``labels``, ``filterBy``, ``baseRefName``,
    ``headRefName``) and ``orderBy`` (CREATED_AT, UPDATED_AT, COMMENTS; default CREATED_AT ascending)."""
    items = [i for i in issues if (i.pull is not None) == pulls]
    if args.get("states"):
        items = [i for i in items if (_pull_state(i) if pulls else i.state.upper()) in args["states"]]
    if args.get("labels"):
        items = [i for i in items if any(name in i.labels for name in args["labels"])]
    for name, attribute in (("baseRefName", "base_ref"), ("headRefName", "head_ref")):
        if pulls and args.get(name):
            items = [i for i in items if getattr(i.pull, attribute) == args[name]]
    filters = args.get("filterBy") or {}
    if filters.get("states"):
        items = [i for i in items if i.state.upper() in filters["states"]]
    if filters.get("labels"):
        items = [i for i in items if any(name in i.labels for name in filters["labels"])]
    if filters.get("since") is not None:
        since = _iso(filters["since"])
        items = [i for i in items if i.updated_at >= since]
    if filters.get("createdBy"):
        items = [i for i in items if i.user.lower() == filters["createdBy"].lower()]
    if filters.get("assignee"):
        wanted = filters["assignee"]
        items = [i for i in items if (i.assignees if wanted == "*" else wanted.lower() in (a.lower() for a in i.assignees))]
    for name in ("milestone", "milestoneNumber"):
        wanted = filters.get(name)
        if wanted == "*":
            items = [i for i in items if i.milestone is not None]
        elif wanted == "none":
            items = [i for i in items if i.milestone is None]
        elif wanted:
            items = [i for i in items if str(i.milestone) == str(wanted)]
    key, descending = _order(args, {"CREATED_AT": lambda i: (i.created_at, i.number), "UPDATED_AT": lambda i: (i.updated_at, i.number),
                                    "COMMENTS": lambda i: (len(i.comments), i.number)}, "CREATED_AT")
    return _Connection(items, key, args, lambda i: _issue_view(ctx, repo, i), descending)


class _Repository(_InRepo):
    typename = "Repository"

    @property
    def repository(self) -> _Repository:
        return self

    def _contents(self) -> bool:
        """Whether its contents may be shown (not for a DMCA-blocked or disabled repository)."""
        return not (self.repo.dmca or self.repo.disabled)

    @property
    def id(self) -> str:
        return _node_id("Repository", self.repo.id)

    @property
    def database_id(self) -> int:
        return self.repo.id

    @property
    def name(self) -> str:
        return self.repo.name

    @property
    def name_with_owner(self) -> str:
        return self.repo.full_name

    @property
    def owner(self) -> _Owner:
        return _Owner(self.ctx, self.repo.owner)

    @property
    def description(self) -> str | None:
        return self.repo.description

    @property
    def description_html(self) -> str:
        return "<div>%s</div>" % html.escape(self.repo.description or "")

    @property
    def homepage_url(self) -> str | None:
        return self.repo.homepage or None

    @property
    def url(self) -> str:
        return self._web("")

    @property
    def resource_path(self) -> str:
        return "/" + self.repo.full_name

    @property
    def ssh_url(self) -> str:
        return "git@127.0.0.1:%s.git" % self.repo.full_name

    @property
    def created_at(self) -> str:
        return self.repo.created_at

    @property
    def updated_at(self) -> str:
        return self.repo.updated_at

    @property
    def pushed_at(self) -> str:
        return self.repo.pushed_at

    @property
    def disk_usage(self) -> int:
        return self.repo.size

    @property
    def fork_count(self) -> int:
        return self.repo.forks_count

    @property
    def stargazer_count(self) -> int:
        return self.repo.stargazers_count

    forking_allowed = True
    is_locked = is_mirror = is_template = web_commit_signoff_required = False

    @property
    def has_issues_enabled(self) -> bool:
        return self.repo.has_issues

    @property
    def has_wiki_enabled(self) -> bool:
        return self.repo.has_wiki

    @property
    def has_projects_enabled(self) -> bool:
        return self.repo.has_projects

    @property
    def has_discussions_enabled(self) -> bool:
        return self.repo.has_discussions

    @property
    def is_archived(self) -> bool:
        return self.repo.archived

    @property
    def is_disabled(self) -> bool:
        return self.repo.disabled

    @property
    def is_empty(self) -> bool:
        return self.repo.empty

    @property
    def is_fork(self) -> bool:
        return self.repo.fork

    @property
    def is_private(self) -> bool:
        return self.repo.private

    @property
    def is_in_organization(self) -> bool:
        return self.repo.owner.type == "Organization"

    @property
    def is_user_configuration_repository(self) -> bool:
        return self.repo.owner.type == "User" and self.repo.name.lower() == self.repo.owner.login.lower()

    @property
    def visibility(self) -> str:
        return self.repo.visibility.upper()

    @property
    def viewer_can_administer(self) -> bool:
        return self.ctx.token.installation_id is None and self.ctx.member(self.repo)

    @property
    def viewer_permission(self) -> str:
        return "ADMIN" if self.viewer_can_administer else ("WRITE" if self.ctx.github.can_write(self.ctx.token, self.repo) else "READ")

    @property
    def parent(self) -> _Repository | None:
        parent = self.repo.parent
        return _Repository(self.ctx, parent) if parent is not None and self.ctx.can_read(parent) else None

    @property
    def primary_language(self) -> _Language | None:
        return _Language(self.ctx, self.repo.language) if self.repo.language else None

    def repository_topics(self, **args: t.Any) -> _Connection:
        return _Connection(list(enumerate(self.repo.topics)), lambda item: (item[0],), args,
                           lambda item: _RepositoryTopic(self.ctx, self.repo, item[1]))

    @property
    def default_branch_ref(self) -> _Ref | None:
        return None if self.repo.empty else _Ref(self.ctx, self.repo, "refs/heads/" + self.repo.default_branch)

    def ref(self, qualifiedName: str) -> _Ref | None:
        candidates = [qualifiedName] if qualifiedName.startswith("refs/") else ["refs/heads/" + qualifiedName, "refs/tags/" + qualifiedName]
        for name in candidates:
            resolved = self.ctx.git(self.repo, "resolve", name) if self._contents() else None
            if resolved is not None:
                return _Ref(self.ctx, self.repo, name, *resolved)
        return None

    def refs(self, **args: t.Any) -> _Connection:
        prefix = args["refPrefix"]
        refs = list(self.ctx.git(self.repo, "refs", prefix.rstrip("/"))) if self._contents() and prefix.endswith("/") else []
        refs = [r for r in refs if r[0].startswith(prefix) and (not args.get("query") or args["query"] in r[0][len(prefix):])]
        key, descending = _order(args, {"ALPHABETICAL": lambda r: (r[0],), "TAG_COMMIT_DATE": lambda r: (r[3], r[0])}, "ALPHABETICAL")
        return _Connection(refs, key, args, lambda r: _Ref(self.ctx, self.repo, r[0], r[1], r[2], prefix), descending)

    def _issues(self) -> list[Issue]:
        with self.ctx.github.lock:
            return list(self.repo.issues.values()) if self._contents() else []

    def issues(self, **args: t.Any) -> _Connection:
        return _issue_connection(self.ctx, self.repo, self._issues(), False, args)

    def pull_requests(self, **args: t.Any) -> _Connection:
        return _issue_connection(self.ctx, self.repo, self._issues(), True, args)

    def issue(self, number: int) -> _Issue:
        found = self.repo.issues.get(number) if self._contents() else None
        if found is None or found.pull is not None:
            raise GraphQLProblem("NOT_FOUND", "Could not resolve to an Issue with the number of %d." % number)
        return _Issue(self.ctx, self.repo, found)

    def pull_request(self, number: int) -> _PullRequest:
        found = self.repo.issues.get(number) if self._contents() else None
        if found is None or found.pull is None:
            raise GraphQLProblem("NOT_FOUND", "Could not resolve to a PullRequest with the number of %d." % number)
        return _PullRequest(self.ctx, self.repo, found)

    def issue_or_pull_request(self, number: int) -> _Issue:
        found = self.repo.issues.get(number) if self._contents() else None
        if found is None:
            raise GraphQLProblem("NOT_FOUND", "Could not resolve to an issue or pull request with the number of %d." % number)
        return _issue_view(self.ctx, self.repo, found)

    def _releases(self) -> list[Release]:
        member = self.ctx.member(self.repo)
        with self.ctx.github.lock:
            return [r for r in self.repo.releases if member or not r.draft] if self._contents() else []

    def releases(self, **args: t.Any) -> _Connection:
        key, descending = _order(args, {"CREATED_AT": lambda r: (r.created_at, r.id), "NAME": lambda r: (r.name or "", r.id)}, "CREATED_AT")
        return _Connection(self._releases(), key, args, lambda r: _Release(self.ctx, self.repo, r), descending)

    def release(self, tagName: str) -> _Release | None:
        return next((_Release(self.ctx, self.repo, r) for r in self._releases() if r.tag_name == tagName), None)

    @property
    def latest_release(self) -> _Release | None:
        latest = _latest_release(self.repo)
        return _Release(self.ctx, self.repo, latest) if latest is not None and self._contents() else None

    def labels(self, **args: t.Any) -> _Connection:
        with self.ctx.github.lock:
            labels = list(self.repo.labels) if self._contents() else []
        query = (args.get("query") or "").lower()
        if query:
            labels = [label for label in labels if query in label.name.lower() or query in (label.description or "").lower()]
        key, descending = _order(args, _LABEL_ORDER, "CREATED_AT")
        return _Connection(labels, key, args, lambda label: _Label(self.ctx, self.repo, label), descending)

    def label(self, name: str) -> _Label | None:
        found = next((label for label in self.repo.labels if label.name.lower() == name.lower()), None) if self._contents() else None
        return _Label(self.ctx, self.repo, found) if found is not None else None

    def milestones(self, **args: t.Any) -> _Connection:
        with self.ctx.github.lock:
            milestones = list(self.repo.milestones) if self._contents() else []
        if args.get("states"):
            milestones = [m for m in milestones if m.state.upper() in args["states"]]
        if args.get("query"):
            milestones = [m for m in milestones if args["query"].lower() in m.title.lower()]
        key, descending = _order(args, {"CREATED_AT": lambda m: (m.created_at, m.number), "UPDATED_AT": lambda m: (m.updated_at, m.number),
                                        "NUMBER": lambda m: (m.number,), "DUE_DATE": lambda m: (m.due_on is None, m.due_on or "", m.number)},
                                 "NUMBER")
        return _Connection(milestones, key, args, lambda m: _Milestone(self.ctx, self.repo, m), descending)

    def milestone(self, number: int) -> _Milestone | None:
        found = next((m for m in self.repo.milestones if m.number == number), None) if self._contents() else None
        return _Milestone(self.ctx, self.repo, found) if found is not None else None


_LABEL_ORDER: dict[str, t.Callable[[Label], tuple]] = {"CREATED_AT": lambda label: (label.created_at or "", label.id),
                                                       "NAME": lambda label: (label.name.lower(), label.id)}


def _latest_release(repo: Repo) -> Release | None:
    """GitHub's latest release: the newest published one that is not a pre-release."""
    candidates = [r for r in repo.releases if not r.draft and not r.prerelease]
    return max(candidates, key=lambda r: (r.created_at, r.id)) if candidates else None


class _Comment(_InRepo):
    """The fields of GitHub's ``Comment`` interface (and ``RepositoryNode``) that the model answers alike."""
    kind = ""

    def __init__(self, ctx: Context, repo: Repo, ident: int, user: str, body: str | None, created_at: str, updated_at: str):
        super().__init__(ctx, repo)
        self._ident, self._user, self._body, self._created_at, self._updated_at = ident, user, body, created_at, updated_at

    @property
    def id(self) -> str:
        return _node_id(self.kind, self._ident)

    @property
    def database_id(self) -> int:
        return self._ident

    @property
    def full_database_id(self) -> str:
        return str(self._ident)

    @property
    def author(self) -> _Owner | None:
        return self.ctx.actor(self._user)

    @property
    def author_association(self) -> str:
        return self.ctx.github.association(self.repo, self._user)

    @property
    def viewer_did_author(self) -> bool:
        return self.ctx.token.login.lower() == self._user.lower()

    @property
    def body(self) -> str:
        return self._body or ""

    @property
    def body_html(self) -> str:
        return _html(self._body)

    @property
    def body_text(self) -> str:
        return self._body or ""

    @property
    def created_at(self) -> str:
        return self._created_at

    @property
    def published_at(self) -> str:
        return self._created_at

    @property
    def updated_at(self) -> str:
        return self._updated_at

    last_edited_at = editor = None
    created_via_email = includes_created_edit = is_minimized = False
    minimized_reason = None


class _Issue(_Comment):
    typename = kind = "Issue"

    def __init__(self, ctx: Context, repo: Repo, issue: Issue):
        pull = issue.pull
        ident = pull.id if pull is not None and self.kind == "PullRequest" else issue.id
        super().__init__(ctx, repo, ident, issue.user, issue.body, issue.created_at, issue.updated_at)
        self.issue = issue

    @property
    def number(self) -> int:
        return self.issue.number

    @property
    def title(self) -> str:
        return self.issue.title

    @property
    def title_html(self) -> str:
        return html.escape(self.issue.title)

    @property
    def state(self) -> str:
        return self.issue.state.upper()

    def state_reason(self, enableDuplicate: bool = False) -> str | None:
        reason = (self.issue.state_reason or "").upper() or None
        return "NOT_PLANNED" if reason == "DUPLICATE" and not enableDuplicate else reason

    @property
    def locked(self) -> bool:
        return self.issue.locked

    active_lock_reason = None

    @property
    def closed(self) -> bool:
        return self.issue.state == "closed"

    @property
    def closed_at(self) -> str | None:
        return self.issue.closed_at

    @property
    def url(self) -> str:
        return self._web("/%s/%d" % ("pull" if self.kind == "PullRequest" else "issues", self.issue.number))

    @property
    def resource_path(self) -> str:
        return "/%s/%s/%d" % (self.repo.full_name, "pull" if self.kind == "PullRequest" else "issues", self.issue.number)

    @property
    def milestone(self) -> _Milestone | None:
        found = next((m for m in self.repo.milestones if m.number == self.issue.milestone), None)
        return _Milestone(self.ctx, self.repo, found) if found is not None else None

    def labels(self, **args: t.Any) -> _Connection:
        labels = [label for label in self.repo.labels if label.name in self.issue.labels]
        key, descending = _order(args, _LABEL_ORDER, "CREATED_AT")
        return _Connection(labels, key, args, lambda label: _Label(self.ctx, self.repo, label), descending)

    def assignees(self, **args: t.Any) -> _Connection:
        return _Connection(list(enumerate(self.issue.assignees)), lambda item: (item[0],), args, lambda item: self.ctx.actor(item[1]))

    def comments(self, **args: t.Any) -> _Connection:
        with self.ctx.github.lock:
            comments = list(self.issue.comments)
        key, descending = _order(args, {"UPDATED_AT": lambda c: (c.updated_at, c.id), "ID": lambda c: (c.created_at, c.id)}, "ID")
        return _Connection(comments, key, args, lambda c: _IssueComment(self.ctx, self.repo, self.issue, c), descending)


class _PullRequest(_Issue):
    typename = kind = "PullRequest"

    @property
    def _pull(self) -> t.Any:
        return self.issue.pull

    @property
    def state(self) -> str:
        return _pull_state(self.issue)

    @property
    def permalink(self) -> str:
        return self.url

    @property
    def is_draft(self) -> bool:
        return self._pull.draft

    @property
    def merged(self) -> bool:
        return self._pull.merged_at is not None

    @property
    def merged_at(self) -> str | None:
        return self._pull.merged_at

    merged_by = None  # as REST's merged_by
    mergeable = "UNKNOWN"  # as REST's mergeable: null
    is_cross_repository = maintainer_can_modify = False
    additions = changed_files = 1  # as REST's pull request
    deletions = 0

    @property
    def merge_commit(self) -> _Commit | None:
        return self._commit(self._pull.merge_commit_sha)

    @property
    def base_ref_name(self) -> str:
        return self._pull.base_ref

    @property
    def base_ref_oid(self) -> str:
        return self._pull.base_sha

    @property
    def head_ref_name(self) -> str:
        return self._pull.head_ref

    @property
    def head_ref_oid(self) -> str:
        return self._pull.head_sha

    @property
    def base_ref(self) -> _Ref | None:
        return self.repository.ref("refs/heads/" + self._pull.base_ref)

    @property
    def head_ref(self) -> _Ref | None:
        return self.repository.ref("refs/heads/" + self._pull.head_ref)

    @property
    def base_repository(self) -> _Repository:
        return self.repository

    @property
    def head_repository(self) -> _Repository:
        return self.repository

    @property
    def head_repository_owner(self) -> _Owner:
        return _Owner(self.ctx, self.repo.owner)

    @property
    def total_comments_count(self) -> int:
        return len(self.issue.comments) + len(self._pull.review_comments)

    def reviews(self, **args: t.Any) -> _Connection:
        with self.ctx.github.lock:
            reviews = list(self._pull.reviews)
        if args.get("author"):
            reviews = [r for r in reviews if r.user.lower() == args["author"].lower()]
        if args.get("states"):
            reviews = [r for r in reviews if r.state in args["states"]]
        return _Connection(reviews, lambda r: (r.submitted_at, r.id), args, lambda r: _Review(self.ctx, self.repo, self.issue, r))

    def review_threads(self, **args: t.Any) -> _Connection:
        with self.ctx.github.lock:
            roots = [c for c in self._pull.review_comments if c.in_reply_to_id is None]
        return _Connection(roots, lambda c: (c.created_at, c.id), args, lambda c: _Thread(self.ctx, self.repo, self.issue, c))


class _IssueComment(_Comment):
    typename = kind = "IssueComment"

    def __init__(self, ctx: Context, repo: Repo, issue: Issue, comment: Comment):
        super().__init__(ctx, repo, comment.id, comment.user, comment.body, comment.created_at, comment.updated_at)
        self._issue, self.comment = issue, comment

    @property
    def last_edited_at(self) -> str | None:
        return self.comment.last_edited_at

    @property
    def editor(self) -> _Owner | None:
        return self.ctx.actor(self.comment.editor)

    @property
    def issue(self) -> _Issue:
        return _Issue(self.ctx, self.repo, self._issue)

    @property
    def pull_request(self) -> _PullRequest | None:
        return _PullRequest(self.ctx, self.repo, self._issue) if self._issue.pull is not None else None

    @property
    def url(self) -> str:
        return self._web("/%s/%d#issuecomment-%d" % ("pull" if self._issue.pull else "issues", self._issue.number, self.comment.id))

    @property
    def resource_path(self) -> str:
        return urllib.parse.urlsplit(self.url).path + "#issuecomment-%d" % self.comment.id


class _Review(_Comment):
    typename = kind = "PullRequestReview"

    def __init__(self, ctx: Context, repo: Repo, issue: Issue, review: Review):
        super().__init__(ctx, repo, review.id, review.user, review.body, review.submitted_at, review.submitted_at)
        self._issue, self.review = issue, review

    @property
    def state(self) -> str:
        return self.review.state

    @property
    def submitted_at(self) -> str:
        return self.review.submitted_at

    @property
    def commit(self) -> _Commit | None:
        return self._commit(self.review.commit_id)

    @property
    def author_can_push_to_repository(self) -> bool:
        return self.author_association in ("OWNER", "MEMBER")

    @property
    def pull_request(self) -> _PullRequest:
        return _PullRequest(self.ctx, self.repo, self._issue)

    @property
    def url(self) -> str:
        return self._web("/pull/%d#pullrequestreview-%d" % (self._issue.number, self.review.id))

    @property
    def resource_path(self) -> str:
        return "/%s/pull/%d#pullrequestreview-%d" % (self.repo.full_name, self._issue.number, self.review.id)

    def comments(self, **args: t.Any) -> _Connection:
        with self.ctx.github.lock:
            comments = [c for c in self._issue.pull.review_comments if c.review_id == self.review.id]
        return _Connection(comments, lambda c: (c.created_at, c.id), args, lambda c: _ReviewComment(self.ctx, self.repo, self._issue, c))


class _ReviewComment(_Comment):
    typename = kind = "PullRequestReviewComment"

    def __init__(self, ctx: Context, repo: Repo, issue: Issue, comment: ReviewComment):
        super().__init__(ctx, repo, comment.id, comment.user, comment.body, comment.created_at, comment.updated_at)
        self._issue, self.comment = issue, comment

    @property
    def path(self) -> str:
        return self.comment.path

    @property
    def diff_hunk(self) -> str:
        return self.comment.diff_hunk

    @property
    def line(self) -> int:
        return self.comment.line

    original_line = position = original_position = line  # REST answers the same for all four
    start_line = original_start_line = None
    outdated = False
    state = "SUBMITTED"
    subject_type = "LINE"

    @property
    def drafted_at(self) -> str:
        return self.comment.created_at

    @property
    def commit(self) -> _Commit | None:
        return self._commit(self.comment.commit_id)

    original_commit = commit

    @property
    def reply_to(self) -> _ReviewComment | None:
        found = next((c for c in self._issue.pull.review_comments if c.id == self.comment.in_reply_to_id), None)
        return _ReviewComment(self.ctx, self.repo, self._issue, found) if found is not None else None

    @property
    def pull_request_review(self) -> _Review | None:
        found = next((r for r in self._issue.pull.reviews if r.id == self.comment.review_id), None)
        return _Review(self.ctx, self.repo, self._issue, found) if found is not None else None

    @property
    def pull_request(self) -> _PullRequest:
        return _PullRequest(self.ctx, self.repo, self._issue)

    @property
    def url(self) -> str:
        return self._web("/pull/%d#discussion_r%d" % (self._issue.number, self.comment.id))

    @property
    def resource_path(self) -> str:
        return "/%s/pull/%d#discussion_r%d" % (self.repo.full_name, self._issue.number, self.comment.id)


class _Thread(_InRepo):
    """A review thread: its first comment and the replies to it."""
    typename = "PullRequestReviewThread"

    def __init__(self, ctx: Context, repo: Repo, issue: Issue, root: ReviewComment):
        super().__init__(ctx, repo)
        self._issue, self.root = issue, root

    @property
    def id(self) -> str:
        return _node_id("PullRequestReviewThread", self.root.id)

    @property
    def path(self) -> str:
        return self.root.path

    @property
    def line(self) -> int:
        return self.root.line

    original_line = line
    start_line = original_start_line = start_diff_side = None
    diff_side = "RIGHT"
    is_collapsed = is_outdated = is_resolved = False
    subject_type = "LINE"

    @property
    def pull_request(self) -> _PullRequest:
        return _PullRequest(self.ctx, self.repo, self._issue)

    def comments(self, **args: t.Any) -> _Connection:
        with self.ctx.github.lock:
            comments = list(self._issue.pull.review_comments)
        by_id = {c.id: c for c in comments}

        def root_of(comment: ReviewComment) -> ReviewComment:
            seen = set()
            while comment.in_reply_to_id in by_id and comment.id not in seen:
                seen.add(comment.id)
                comment = by_id[comment.in_reply_to_id]
            return comment

        mine = [c for c in comments if root_of(c) is self.root][args.get("skip") or 0:]
        return _Connection(mine, lambda c: (c.created_at, c.id), args, lambda c: _ReviewComment(self.ctx, self.repo, self._issue, c))


class _Release(_InRepo):
    typename = "Release"

    def __init__(self, ctx: Context, repo: Repo, release: Release):
        super().__init__(ctx, repo)
        self.release = release

    @property
    def id(self) -> str:
        return _node_id("Release", self.release.id)

    @property
    def database_id(self) -> int:
        return self.release.id

    @property
    def name(self) -> str | None:
        return self.release.name

    @property
    def tag_name(self) -> str:
        return self.release.tag_name

    @property
    def description(self) -> str | None:
        return self.release.body

    @property
    def description_html(self) -> str | None:
        return _html(self.release.body) if self.release.body is not None else None

    @property
    def is_draft(self) -> bool:
        return self.release.draft

    @property
    def is_prerelease(self) -> bool:
        return self.release.prerelease

    @property
    def is_latest(self) -> bool:
        return _latest_release(self.repo) is self.release

    @property
    def created_at(self) -> str:
        return self.release.created_at

    @property
    def published_at(self) -> str | None:
        return self.release.published_at

    @property
    def updated_at(self) -> str:
        return self.release.updated_at or self.release.created_at

    @property
    def author(self) -> _Owner | None:
        return self.ctx.actor(self.release.author)

    @property
    def url(self) -> str:
        return self._web("/releases/tag/%s" % urllib.parse.quote(self.release.tag_name))

    @property
    def resource_path(self) -> str:
        return urllib.parse.urlsplit(self.url).path

    @property
    def tag(self) -> _Ref | None:
        return self.repository.ref("refs/tags/" + self.release.tag_name)

    @property
    def tag_commit(self) -> _Commit | None:
        return self._commit(self.ctx.git(self.repo, "peel", "refs/tags/" + self.release.tag_name))

    def release_assets(self, **args: t.Any) -> _Connection:
        with self.ctx.github.lock:
            assets = [a for a in self.release.assets if not args.get("name") or a.name == args["name"]]
        return _Connection(assets, lambda a: (a.created_at, a.id), args, lambda a: _Asset(self.ctx, self.repo, self.release, a))


class _Asset(_InRepo):
    typename = "ReleaseAsset"

    def __init__(self, ctx: Context, repo: Repo, release: Release, asset: Asset):
        super().__init__(ctx, repo)
        self._release, self.asset = release, asset

    @property
    def id(self) -> str:
        return _node_id("ReleaseAsset", self.asset.id)

    @property
    def name(self) -> str:
        return self.asset.name

    @property
    def content_type(self) -> str:
        return self.asset.content_type

    @property
    def size(self) -> int:
        return len(self.asset.data)

    @property
    def download_count(self) -> int:
        return self.asset.download_count

    @property
    def download_url(self) -> str:
        return self._web("/releases/download/%s/%s" % (urllib.parse.quote(self._release.tag_name), urllib.parse.quote(self.asset.name)))

    url = download_url

    @property
    def created_at(self) -> str:
        return self.asset.created_at

    updated_at = created_at  # as REST's

    @property
    def uploaded_by(self) -> _Owner | None:
        return self.ctx.actor(self.asset.uploader)

    @property
    def release(self) -> _Release:
        return _Release(self.ctx, self.repo, self._release)


class _Label(_InRepo):
    typename = "Label"

    def __init__(self, ctx: Context, repo: Repo, label: Label):
        super().__init__(ctx, repo)
        self.label = label

    @property
    def id(self) -> str:
        return _node_id("Label", self.label.id)

    @property
    def name(self) -> str:
        return self.label.name

    @property
    def color(self) -> str:
        return self.label.color

    @property
    def description(self) -> str | None:
        return self.label.description

    @property
    def is_default(self) -> bool:
        return self.label.default

    @property
    def created_at(self) -> str | None:
        return self.label.created_at

    updated_at = created_at

    @property
    def url(self) -> str:
        return self._web("/labels/%s" % urllib.parse.quote(self.label.name))

    @property
    def resource_path(self) -> str:
        return urllib.parse.urlsplit(self.url).path

    def _tagged(self) -> list[Issue]:
        with self.ctx.github.lock:
            return [i for i in self.repo.issues.values() if self.label.name in i.labels]

    def issues(self, **args: t.Any) -> _Connection:
        return _issue_connection(self.ctx, self.repo, self._tagged(), False, args)

    def pull_requests(self, **args: t.Any) -> _Connection:
        return _issue_connection(self.ctx, self.repo, self._tagged(), True, args)


class _Milestone(_InRepo):
    typename = "Milestone"

    def __init__(self, ctx: Context, repo: Repo, milestone: Milestone):
        super().__init__(ctx, repo)
        self.milestone = milestone

    @property
    def id(self) -> str:
        return _node_id("Milestone", self.milestone.id)

    @property
    def number(self) -> int:
        return self.milestone.number

    @property
    def title(self) -> str:
        return self.milestone.title

    @property
    def description(self) -> str | None:
        return self.milestone.description

    @property
    def state(self) -> str:
        return self.milestone.state.upper()

    @property
    def closed(self) -> bool:
        return self.milestone.state == "closed"

    @property
    def closed_at(self) -> str | None:
        return self.milestone.closed_at

    @property
    def created_at(self) -> str:
        return self.milestone.created_at

    @property
    def updated_at(self) -> str:
        return self.milestone.updated_at

    @property
    def due_on(self) -> str | None:
        return self.milestone.due_on

    @property
    def creator(self) -> _Owner | None:
        return self.ctx.actor(self.milestone.creator)

    @property
    def progress_percentage(self) -> float:
        issues = self._planned()
        return 100.0 * sum(1 for i in issues if i.state == "closed") / len(issues) if issues else 0.0

    @property
    def url(self) -> str:
        return self._web("/milestone/%d" % self.milestone.number)

    @property
    def resource_path(self) -> str:
        return "/%s/milestone/%d" % (self.repo.full_name, self.milestone.number)

    def _planned(self) -> list[Issue]:
        with self.ctx.github.lock:
            return [i for i in self.repo.issues.values() if i.milestone == self.milestone.number]

    def issues(self, **args: t.Any) -> _Connection:
        return _issue_connection(self.ctx, self.repo, self._planned(), False, args)

    def pull_requests(self, **args: t.Any) -> _Connection:
        return _issue_connection(self.ctx, self.repo, self._planned(), True, args)


def _ref_id(name: str) -> str:
    short = name[len("refs/tags/"):] if name.startswith("refs/tags/") else name  # tags: as REST's node_id of a tag
    return _node_id("Ref", int(hashlib.sha256(short.encode("utf-8")).hexdigest()[:8], 16))


class _Ref(_InRepo):
    typename = "Ref"

    def __init__(self, ctx: Context, repo: Repo, qualified: str, oid: str | None = None, kind: str | None = None,
                 prefix: str | None = None):
        super().__init__(ctx, repo)
        self.qualified, self._oid, self._kind = qualified, oid, kind
        if prefix is None:  # GitHub's name and prefix of a branch or tag: "main" and "refs/heads/"
            prefix = qualified[:qualified.index("/", 5) + 1] if qualified.startswith(("refs/heads/", "refs/tags/")) else \
                qualified.rsplit("/", 1)[0] + "/"
        self._prefix = prefix

    @property
    def id(self) -> str:
        return _ref_id(self.qualified)

    @property
    def name(self) -> str:
        return self.qualified[len(self._prefix):]

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def target(self) -> _View | None:
        if self._oid is None:
            resolved = self.ctx.git(self.repo, "resolve", self.qualified)
            if resolved is None:
                return None
            self._oid, self._kind = resolved
        if self._kind == "tag":
            return _Tag(self.ctx, self.repo, self._oid)
        return _Commit(self.ctx, self.repo, self._oid)


class _GitObject(_InRepo):
    def __init__(self, ctx: Context, repo: Repo, oid: str):
        super().__init__(ctx, repo)
        self._oid = oid

    @property
    def oid(self) -> str:
        return self._oid

    @property
    def abbreviated_oid(self) -> str:
        return self._oid[:7]

    @property
    def commit_url(self) -> str:
        return self._web("/commit/" + self._oid)

    @property
    def commit_resource_path(self) -> str:
        return "/%s/commit/%s" % (self.repo.full_name, self._oid)


class _Commit(_GitObject):
    typename = "Commit"

    @property
    def id(self) -> str:
        return _node_id("Commit", int(self._oid[:7], 16))  # as REST's node_id of a commit

    url = _GitObject.commit_url
    resource_path = _GitObject.commit_resource_path

    def _fields(self) -> dict[str, t.Any]:
        return self.ctx.git(self.repo, "commit", self._oid) or {"author": None, "committer": None, "message": ""}

    @property
    def message(self) -> str:
        return self._fields()["message"]

    @property
    def message_headline(self) -> str:
        return self.message.split("\n", 1)[0]

    @property
    def message_body(self) -> str:
        return self.message.split("\n", 1)[1].strip("\n") if "\n" in self.message else ""

    @property
    def author(self) -> dict[str, t.Any] | None:
        return self._fields()["author"]

    @property
    def committer(self) -> dict[str, t.Any] | None:
        return self._fields()["committer"]

    @property
    def authored_date(self) -> str:
        return (self.author or {}).get("date") or self.repo.created_at

    @property
    def committed_date(self) -> str:
        return (self.committer or {}).get("date") or self.repo.created_at


class _Tag(_GitObject):
    typename = "Tag"

    def _fields(self) -> dict[str, t.Any]:
        return self.ctx.git(self.repo, "tag", self._oid) or {"object": None, "type": None, "tag": "", "message": None, "tagger": None}

    @property
    def id(self) -> str:
        return _node_id("Tag", int(self._oid[:7], 16))

    @property
    def name(self) -> str:
        return self._fields()["tag"]

    @property
    def message(self) -> str | None:
        return self._fields()["message"]

    @property
    def tagger(self) -> dict[str, t.Any] | None:
        return self._fields()["tagger"]

    @property
    def target(self) -> _GitObject:
        fields = self._fields()
        return (_Tag if fields["type"] == "tag" else _Commit)(self.ctx, self.repo, fields["object"] or self._oid)


class _Named(_View):
    """A language or a topic: a name, and a node id made from it."""

    def __init__(self, ctx: Context, name: str):
        super().__init__(ctx)
        self._name = name

    @property
    def id(self) -> str:
        return _node_id(self.typename, int(hashlib.sha256(self._name.encode("utf-8")).hexdigest()[:6], 16))

    @property
    def name(self) -> str:
        return self._name


class _Language(_Named):
    typename = "Language"
    color = None


class _Topic(_Named):
    typename = "Topic"


class _RepositoryTopic(_InRepo):
    typename = "RepositoryTopic"

    def __init__(self, ctx: Context, repo: Repo, name: str):
        super().__init__(ctx, repo)
        self.name = name

    @property
    def id(self) -> str:
        return _node_id("RepositoryTopic", int(hashlib.sha256(("%d:%s" % (self.repo.id, self.name)).encode("utf-8")).hexdigest()[:6], 16))

    @property
    def topic(self) -> _Topic:
        return _Topic(self.ctx, self.name)

    @property
    def url(self) -> str:
        return "%s/topics/%s" % (self.ctx.base_url, urllib.parse.quote(self.name))

    @property
    def resource_path(self) -> str:
        return "/topics/" + urllib.parse.quote(self.name)


# For a test: every object type of the schema and the view class that answers it.
VIEWS: dict[str, type] = {
    "Query": _Query, "User": _Owner, "Organization": _Owner, "Repository": _Repository, "Issue": _Issue, "PullRequest": _PullRequest,
    "IssueComment": _IssueComment, "PullRequestReview": _Review, "PullRequestReviewComment": _ReviewComment,
    "PullRequestReviewThread": _Thread, "Release": _Release, "ReleaseAsset": _Asset, "Label": _Label, "Milestone": _Milestone,
    "Ref": _Ref, "Commit": _Commit, "Tag": _Tag, "Language": _Language, "Topic": _Topic, "RepositoryTopic": _RepositoryTopic,
}
