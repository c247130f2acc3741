# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""GitHub App authentication: installation tokens minted with the app's key, renewed before they expire.

Through PyGithub (``Auth.AppAuth``, ``GithubIntegration``): a JWT signed with the app's private key
(RS256) buys an installation token, valid for an hour on GitHub. A long run renews it when a
quarter of its life (at most five minutes) is left, and at once when GitHub refuses it. Tokens live
in memory only; each one is handed to ``on_token`` (which adds it to the secrets scrubbed from
output) before it is used.
"""

from __future__ import annotations

import datetime
import threading
import typing as t

from ansible_collections.corebackup.backup.plugins.module_utils._github import GitHubError, TokenSource

try:
    from github import Auth, GithubException, GithubIntegration
    HAS_PYGITHUB = True
    PYGITHUB_IMP_ERR = None
except ImportError as _imp_exc:  # pragma: no cover - depends on the host
    HAS_PYGITHUB = False
    PYGITHUB_IMP_ERR = _imp_exc

RENEW_MARGIN = datetime.timedelta(minutes=5)


class AppTokenSource(TokenSource):
    """Installation tokens of GitHub App ``app_id`` for ``owner`` (or installation ``installation_id``)."""

    def __init__(self, api_url: str, app_id: str, private_key: str, owner: str, is_org: bool,
                 installation_id: int | None = None, validate_certs: bool = True,
                 on_token: t.Callable[[str], None] = lambda token: None):
        super().__init__(None)
        self.owner = owner
        self.is_org = is_org
        self.installation_id = installation_id
        self.on_token = on_token
        self.minted = 0
        self._lock = threading.Lock()
        self._expires: datetime.datetime | None = None
        self._renew_at: datetime.datetime | None = None
        self._integration = GithubIntegration(auth=Auth.AppAuth(str(app_id), private_key), base_url=api_url.rstrip("/"),
                                              verify=validate_certs, seconds_between_requests=None)

    def get(self) -> str | None:
        with self._lock:
            if self._token is None or self._renew_at is None or _now() >= self._renew_at:
                self._mint()
            return self._token

    def rejected(self, token: str | None) -> bool:
        """GitHub refused ``token`` (expired early, revoked): the next get() mints a new one."""
        with self._lock:
            if token is not None and token == self._token:
                self._token = None
                return True
            return token != self._token  # refused an old one while a newer one exists: try the newer

    def _mint(self) -> None:
        try:
            if self.installation_id is None:
                installation = (self._integration.get_org_installation(self.owner) if self.is_org
                                else self._integration.get_user_installation(self.owner))
                self.installation_id = installation.id
            grant = self._integration.get_access_token(self.installation_id)
        except GithubException as exc:
            message = exc.data.get("message") if isinstance(exc.data, dict) else None
            raise GitHubError(exc.status or 0, "GitHub App %s: %s" % (
                "installation %s" % self.installation_id if self.installation_id else "installation for %s" % self.owner,
                message or "cannot mint an installation token"), "/app/installations") from None
        except (OSError, ValueError) as exc:  # connection trouble, a key that is not a PEM private key
            raise GitHubError(0, "GitHub App: cannot mint an installation token: %s" % exc.__class__.__name__,
                              "/app/installations") from None
        self.on_token(grant.token)
        now = _now()
        expires = grant.expires_at if grant.expires_at.tzinfo else grant.expires_at.replace(tzinfo=datetime.timezone.utc)
        self._token, self._expires = grant.token, expires
        self._renew_at = expires - min(RENEW_MARGIN, (expires - now) / 4)
        self.minted += 1


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
