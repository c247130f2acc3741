# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""GitHub App authentication against the GitHub stand-in, with PyGithub itself: JWTs, installations, installation
tokens for REST, GraphQL and git, and their expiry."""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from github import Auth, Github, GithubException, GithubIntegration, UnknownObjectException

from ansible_collections.corebackup.backup.tests.testbed import github_fixtures
from ansible_collections.corebackup.backup.tests.testbed.github_standin import GitHubStandIn, git_env

ORG = "acme"
APP_ID = 4242
ORG_INSTALLATION = 777
USER_INSTALLATION = 778


@dataclasses.dataclass
class AppEnv:
    standin: GitHubStandIn
    root: str
    private_pem: str
    facts: dict

    def integration(self) -> GithubIntegration:
        return GithubIntegration(auth=Auth.AppAuth(APP_ID, self.private_pem), base_url=self.standin.api_url, seconds_between_requests=None)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("github-apps"))
    with GitHubStandIn(root) as standin:
        facts = github_fixtures.build_organization(standin, ORG, root, count=18, seed=4)
        standin.github.add_org("elsewhere")
        standin.github.add_repo("elsewhere", "hidden", private=True)
        key = new_key()
        public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        standin.add_app(APP_ID, public, installations={ORG: ORG_INSTALLATION, "octocat": USER_INSTALLATION}, slug="corebackup")
        standin.github.add_user("octocat")
        yield AppEnv(standin, root, pem(key), facts)
        assert not standin.errors, standin.errors[-1]


def call(standin: GitHubStandIn, path: str, authorization: str | None = None, method: str = "GET", body: bytes | None = None
         ) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Authorization": authorization} if authorization else {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def graphql(standin: GitHubStandIn, token: str, query: str) -> tuple[int, dict]:
    return call(standin, "/api/graphql", "bearer " + token, "POST", json.dumps({"query": query}).encode())


def ls_remote(url: str, token: str) -> subprocess.CompletedProcess:
    """git with the installation token in the URL, as tools using GitHub Apps do (``x-access-token:<token>@``)."""
    with_token = url.replace("http://", "http://x-access-token:%s@" % token)
    return subprocess.run(["git", "ls-remote", with_token], env=git_env(), capture_output=True, text=True, check=False, timeout=60)


def refs(result: subprocess.CompletedProcess) -> dict[str, str]:
    pairs = (line.split("\t", 1) for line in result.stdout.splitlines() if line)
    return {ref: sha for sha, ref in pairs if ref.startswith("refs/") and not ref.endswith("^{}")}


def test_pygithub_mints_a_token_that_reads_everything_of_the_org(app_env):
    standin = app_env.standin
    before = standin.app_token_mints(APP_ID)
    with app_env.integration() as integration:
        installation = integration.get_org_installation(ORG)
        assert installation.id == ORG_INSTALLATION and installation.app_id == APP_ID and installation.target_type == "Organization"
        token = integration.get_access_token(installation.id)
    assert token.token.startswith("ghs_") and len(token.token) == 40 and token.token[4:].isalnum()
    assert 3590 <= (token.expires_at.timestamp() - time.time()) <= 3600
    assert token.permissions == {"contents": "read", "issues": "read", "metadata": "read", "pull_requests": "read"}
    assert standin.app_token_mints(APP_ID) == before + 1 and standin.app_tokens(APP_ID)[-1].token == token.token
    with Github(auth=Auth.Token(token.token), base_url=standin.api_url, seconds_between_requests=None) as client:
        secret = client.get_repo("%s/secret-repo" % ORG)
        assert secret.private and secret.full_name == "%s/secret-repo" % ORG
        assert {r.name for r in client.get_organization(ORG).get_repos()} == set(app_env.facts)  # private ones too
        with pytest.raises(UnknownObjectException):
            client.get_repo("elsewhere/hidden")  # another account's private repository
    status, listed = call(standin, "/api/installation/repositories?per_page=100", "token " + token.token)
    assert status == 200 and listed["total_count"] == len(app_env.facts) and listed["repository_selection"] == "all"
    status, answer = graphql(standin, token.token, '{ repository(owner: "acme", name: "secret-repo") { isPrivate issues(first: 1) { totalCount } } }')
    assert status == 200 and answer["data"]["repository"] == {"isPrivate": True, "issues": {"totalCount": app_env.facts["secret-repo"]["issues"]}}
    for url in (standin.git_url(ORG, "secret-repo"), standin.web_git_url(ORG, "secret-repo")):
        listing = ls_remote(url, token.token)
        assert listing.returncode == 0, listing.stderr
        assert refs(listing) == app_env.facts["secret-repo"]["refs"]
    assert ls_remote(standin.git_url("elsewhere", "hidden"), token.token).returncode != 0
    assert call(standin, "/api/user", "token " + token.token) == (403, {
        "message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user",
        "status": "403"})
    assert token.token not in json.dumps([dataclasses.asdict(r) for r in standin.log])


def test_installations_of_an_app(app_env):
    with app_env.integration() as integration:
        assert integration.get_repo_installation(ORG, "tracker").id == ORG_INSTALLATION
        assert integration.get_user_installation("octocat").id == USER_INSTALLATION
        assert sorted(i.id for i in integration.get_installations()) == [ORG_INSTALLATION, USER_INSTALLATION]
        assert integration.get_app().slug == "corebackup"
        with pytest.raises(UnknownObjectException):
            integration.get_org_installation("elsewhere")
        user_token = integration.get_access_token(USER_INSTALLATION)
        with pytest.raises(GithubException) as refused:
            integration.get_access_token(ORG_INSTALLATION, permissions={"administration": "write"})
        assert refused.value.status == 422
        narrowed = integration.get_access_token(ORG_INSTALLATION, permissions={"contents": "read"})
        assert narrowed.permissions == {"contents": "read"}
    app_env.standin.github.add_repo("octocat", "private-notes", private=True, owner_type="User")
    status, repo = call(app_env.standin, "/api/repos/octocat/private-notes", "token " + user_token.token)
    assert status == 200 and repo["private"] and call(app_env.standin, "/api/repos/%s/secret-repo" % ORG, "token " + user_token.token)[0] == 404


def test_installation_tokens_expire_everywhere(app_env):
    standin = app_env.standin
    standin.set_app_token_lifetime(APP_ID, 3)
    try:
        with app_env.integration() as integration:
            token = integration.get_access_token(ORG_INSTALLATION).token
        query = '{ repository(owner: "acme", name: "secret-repo") { name } }'
        assert call(standin, "/api/repos/acme/secret-repo", "token " + token)[0] == 200
        assert graphql(standin, token, query)[0] == 200
        assert ls_remote(standin.git_url(ORG, "secret-repo"), token).returncode == 0
        expires = standin.app_tokens(APP_ID)[-1].expires_at
        time.sleep(max(0.0, expires - time.time()) + 0.2)
        status, body = call(standin, "/api/repos/acme/secret-repo", "token " + token)
        assert (status, body["message"]) == (401, "Bad credentials")
        assert graphql(standin, token, query) == (401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/graphql"})
        expired = ls_remote(standin.git_url(ORG, "secret-repo"), token)
        assert expired.returncode != 0
        assert standin.count("git", status=401, path_regex=r"/acme/secret-repo\.git/info/refs") >= 1
        # PyGithub refreshes a token that expires within 20 seconds before each use: here, before every request
        mints = standin.app_token_mints(APP_ID)
        auth = Auth.AppAuth(APP_ID, app_env.private_pem).get_installation_auth(ORG_INSTALLATION)
        with Github(auth=auth, base_url=standin.api_url, seconds_between_requests=None) as client:
            assert client.get_repo("%s/secret-repo" % ORG).private
            assert client.get_repo("%s/tracker" % ORG).name == "tracker"
        assert standin.app_token_mints(APP_ID) >= mints + 2
    finally:
        standin.set_app_token_lifetime(APP_ID, 3600)


def test_graphql_rate_limit_of_an_installation(app_env):
    with app_env.integration() as integration:
        token = integration.get_access_token(ORG_INSTALLATION).token
    app_env.standin.exhaust_graphql_rate_limit(token, 60)
    status, answer = graphql(app_env.standin, token, "{ rateLimit { remaining } }")
    assert status == 200 and answer == {"data": None, "errors": [{
        "type": "RATE_LIMITED", "message": "API rate limit exceeded for installation ID %d." % ORG_INSTALLATION}]}


def jwt_for(key: str | rsa.RSAPrivateKey, **claims) -> str:
    now = int(time.time())
    payload = {"iat": now - 60, "exp": now + 300, "iss": str(APP_ID)}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm="RS256")


def numeric_issuer_jwt(private_pem: str) -> str:
    """A JWT whose ``iss`` is a number (PyJWT only writes strings), signed RS256 by hand."""
    now = int(time.time())
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing_input = "%s.%s" % (part(b'{"alg":"RS256","typ":"JWT"}'), part(json.dumps({"iat": now - 60, "exp": now + 300, "iss": APP_ID}).encode()))
    return signing_input + "." + part(key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()))


def test_bad_jwts_are_refused_like_githubs(app_env):
    standin = app_env.standin
    path = "/api/app/installations/%d/access_tokens" % ORG_INSTALLATION
    now = int(time.time())

    def mint(authorization: str | None) -> tuple[int, dict]:
        return call(standin, path, authorization, "POST", b"{}")

    undecodable = {"message": "A JSON web token could not be decoded", "documentation_url": "https://docs.github.com/rest", "status": "401"}
    assert mint(None) == (401, undecodable)
    assert mint("Bearer not.a.jwt") == (401, undecodable)
    assert mint("Bearer " + jwt_for(new_key())) == (401, undecodable)  # signed by another key
    assert mint("Bearer " + jwt_for(app_env.private_pem, iss="9999")) == (401, undecodable)  # another app
    assert mint("Bearer " + jwt.encode({"iat": now, "exp": now + 60, "iss": str(APP_ID)}, "s" * 32, algorithm="HS256")) == (401, undecodable)
    expired = mint("Bearer " + jwt_for(app_env.private_pem, iat=now - 700, exp=now - 100))
    assert expired[0] == 401 and expired[1]["message"] == ("'Expiration time' claim ('exp') must be a numeric value representing the "
                                                           "future time at which the assertion expires")
    assert mint("Bearer " + jwt_for(app_env.private_pem, exp=None))[1]["message"].startswith("'Expiration time' claim ('exp') must be")
    too_long = mint("Bearer " + jwt_for(app_env.private_pem, iat=now - 10, exp=now + 600))
    assert too_long == (401, {**undecodable, "message": "'Expiration time' claim ('exp') is too far in the future"})
    assert mint("Bearer " + jwt_for(app_env.private_pem, iat=now + 600, exp=now + 700))[1]["message"].startswith("'Issued at' claim ('iat')")
    status, minted = mint("Bearer " + numeric_issuer_jwt(app_env.private_pem))  # a number is taken too
    assert status == 201 and minted["repository_selection"] == "all" and minted["expires_at"].endswith("Z")
    assert call(standin, "/api/orgs/acme", "Bearer " + jwt_for(app_env.private_pem))[0] == 401  # a JWT is no token for the API
    assert call(standin, "/api/app/installations", "token " + minted["token"])[0] == 401  # nor a token a JWT
    assert call(standin, "/api/app/installations/999/access_tokens", "Bearer " + jwt_for(app_env.private_pem), "POST")[0] == 404
