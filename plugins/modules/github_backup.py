#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: github_backup
short_description: Back up the repositories of a GitHub organization or user with their metadata
version_added: 0.1.0
description:
  - Stores one artifact per repository, C(<repo>_<timestamp>.tar.gz) (or C(.zst), with C(.age) when
    encrypted), holding C(repo.bundle) (a git bundle of what changed since the previous artifact, see
    O(full_every_days)) with C(refs.json) (every ref), the same for the wiki when it exists (C(wiki.bundle),
    C(wiki-refs.json)), when asked the LFS objects no earlier artifact of the chain holds (C(lfs/)) with
    C(lfs.json) (all of that day's), and C(metadata/) JSON files (issues, pull requests, releases, labels,
    milestones, the repository itself), written with sorted keys so unchanged data stays byte-equal.
  - The token never reaches disk, a command line or the output. git authenticates with an
    C(http.extraHeader) passed through the environment (C(GIT_CONFIG_COUNT)), never in the remote URL,
    so no C(config) in the archive or the cache holds a credential.
  - Reads metadata through GitHub's GraphQL API (O(api_mode)), in as few queries as the data allows
    (about one per repository), and stores it in one REST-shaped format whichever API read it.
  - Stays inside GitHub's limits by design. One scheduler shared by every worker keeps the run under the
    secondary limits (concurrent requests, REST and GraphQL points per minute), reads C(X-RateLimit-*)
    on every answer, and pauses every worker when GitHub answers with C(Retry-After), a secondary limit
    or an exhausted primary limit (C(RATE_LIMITED) for GraphQL). 5xx answers and GraphQL time-outs are
    retried with jittered backoff. A repository that fails is recorded and the others go on.
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - corebackup.backup.common
  - corebackup.backup.common.packing
  - corebackup.backup.common.service
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Discovery and selection through the API only; returns what would be backed up.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  organization:
    description:
      - The organization whose repositories are backed up. Mutually exclusive with O(user).
    type: str
  user:
    description:
      - The user whose own repositories are backed up. Mutually exclusive with O(organization).
    type: str
  repositories:
    description:
      - Back up only these repositories. Each item is a name, or a dictionary with C(name) and any of
        C(wiki), C(issues), C(pulls), C(releases), C(release_assets), C(lfs) to override the
        module-wide toggles for that repository.
      - Empty or omitted, every repository of the organization or user is discovered through the API.
    type: list
    elements: raw
    default: []
  include:
    description:
      - Regular expressions; a repository is kept only if one of them matches its name (C(re.search)).
    type: list
    elements: str
    default: []
  exclude:
    description:
      - Regular expressions; a repository whose name matches one of them is left out.
    type: list
    elements: str
    default: []
  skip_forks:
    description: Leave out forks.
    type: bool
    default: false
  skip_archived:
    description: Leave out archived repositories.
    type: bool
    default: false
  visibility:
    description: Which repositories to back up by visibility.
    type: str
    choices: [all, public, private]
    default: all
  token:
    description:
      - GitHub token. If not set, the E(GITHUB_TOKEN) environment variable is used.
      - Without a token (and without O(app_id)) only public data can be read, through REST, under a much
        lower rate limit.
      - Mutually exclusive with O(app_id).
    type: str
  app_id:
    description:
      - Authenticate as this GitHub App (its App ID) instead of with a O(token). An installation token is
        minted with O(app_private_key) through PyGithub, renewed before it expires during a long run
        (and when GitHub refuses it), kept in memory only and never shown.
    type: str
  app_private_key:
    description:
      - The App's private key (PEM), from Ansible Vault. Required with O(app_id).
    type: str
  app_installation_id:
    description:
      - The installation of the App to use. By default the App's installation on the O(organization)
        or O(user).
    type: int
  api_url:
    description:
      - Base URL of the REST API; for GitHub Enterprise Server C(https://HOST/api/v3). The GraphQL API
        is C(<api_url>/graphql), or C(https://HOST/api/graphql) beside C(/api/v3).
    type: str
    default: https://api.github.com
  api_mode:
    description:
      - V(graphql) lists repositories and reads their metadata through GitHub's GraphQL API (about one
        query per repository, and a rerun with nothing changed costs the listing only); REST stays for
        what GraphQL does not offer (release asset downloads).
      - V(rest) uses the REST API only (about 9 requests per repository, plus conditional requests on
        reruns).
      - V(auto) uses GraphQL, and REST when there is no token, no GraphQL endpoint, or the endpoint lacks a
        field the queries need (older GitHub Enterprise Server), with a warning.
      - The stored metadata is the same whichever API read it.
    type: str
    choices: [auto, graphql, rest]
    default: auto
  full_refresh_days:
    description:
      - With GraphQL, whether a repository's metadata changed is read from the listing (counts and newest
        updates of issues, pull requests, releases, milestones, labels). Edits and deletions of comments
        do not always move them, so a repository's metadata is read again in full at least every this many
        days (V(0) every run); when it turns out unchanged, its newest artifact is carried as usual.
    type: int
    default: 7
  full_every_days:
    description:
      - A repository's git data is stored as a chain of bundles - a full bundle, then each run's new objects (an
        incremental bundle whose prerequisites are the previous run's tips), with the whole list of refs every run.
        A new chain starts with a full bundle at least every this many days, and whenever the packing changes or a
        ref was rewritten (a force-push; GitHub's regenerated C(refs/pull/*/merge) excepted). The wiki is chained
        with the repository; LFS objects are stored once, in the first artifact of the chain that holds them.
    type: int
    default: 30
  cache_dir:
    description:
      - A folder on the backup host that keeps a bare mirror of every repository between runs, so that a run
        fetches only what changed (C(git fetch --prune)) instead of cloning. It holds the plaintext of every
        repository it caches - created with mode 0700; keep it on an encrypted disk of the backup host.
      - A mirror that is missing, that mirrors another URL, or that fails C(git fsck --connectivity-only) (every
        run) or a full C(git fsck) (every O(full_refresh_days)) is cloned again, with a warning. A fetch that fails
        on a mirror that passes its check (the network, the token) fails the repository and keeps the mirror.
      - What the cache did not make is refused, never changed or removed - an existing folder that is not the
        backup user's alone (owner, mode 0700), or a folder in a mirror's place without the cache's marker file.
      - Runs that share one O(cache_dir) (several jobs on one host) take each mirror in turn (a file lock).
      - Unset (the default), every repository that changed is cloned in full into a temporary folder.
    type: path
  validate_certs:
    description: Verify TLS certificates of the API and of git.
    type: bool
    default: true
  wiki:
    description: Mirror the wiki when it exists.
    type: bool
    default: true
  issues:
    description: Export issues with their comments.
    type: bool
    default: true
  pulls:
    description: Export pull requests with their comments, reviews and review comments.
    type: bool
    default: true
  releases:
    description: Export releases.
    type: bool
    default: true
  release_assets:
    description: Download the files attached to releases into C(metadata/assets/).
    type: bool
    default: false
  labels:
    description: Export labels.
    type: bool
    default: true
  milestones:
    description: Export milestones.
    type: bool
    default: true
  lfs:
    description: Fetch Git LFS objects into C(lfs/). Needs C(git-lfs) on the backup host.
    type: bool
    default: false
  job:
    description: Name of the backup job; artifacts are stored under C(<prefix>/<job>/<YYYY-MM-DD>/).
    type: str
    default: github
notes:
  - Private repositories of a O(user) other than the token's owner cannot be listed; name them in O(repositories).
  - With O(skip_unchanged), a repository is unchanged when its refs (no push since, by C(pushed_at), else
    C(git ls-remote)), its wiki's refs (C(git ls-remote); a wiki edit does not move C(pushed_at); the wikis of
    the repositories backed up before are asked 16 at once when the run starts), its
    metadata and the options that shape the artifact are as recorded with its newest artifact. With
    GraphQL, the metadata's freshness comes from the listing itself (see O(full_refresh_days)); with REST,
    from the first page of each export, asked with its recorded C(ETag) (a 304 costs no rate limit).
  - Metadata is spooled to a SQLite file in the module's temporary folder as it is read, and release assets are
    written to disk as they arrive, so memory does not grow with a repository's issues or assets; that folder
    needs room for the metadata, mirrors and assets of the repositories backed up at once (O(parallel)).
  - git commands are retried on transient network errors (resets, time-outs, 5xx answers), never on
    authentication errors or missing repositories.
requirements:
  - git
  - PyGithub (with O(app_id) only)
"""

EXAMPLES = r"""
- name: Back up every repository of an organization to S3, encrypted
  corebackup.backup.github_backup:
    organization: my-org
    token: "{{ vault_github_token }}"
    job: nightly-github
    storage:
      type: s3
      bucket: backups
      prefix: github/
      region: eu-west-1
    compression: zstd
    encryption:
      recipients:
        - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p

- name: Back up an organization as a GitHub App, its key from Ansible Vault
  corebackup.backup.github_backup:
    organization: my-org
    app_id: "123456"
    app_private_key: "{{ vault_github_app_key }}"
    storage:
      type: filesystem
      path: /srv/backups

- name: Back up some repositories of a user to a directory, without pull requests of one of them
  corebackup.backup.github_backup:
    user: octocat
    repositories:
      - hello-world
      - name: big-repo
        pulls: false
        lfs: true
    include: ['^lecture-.*']
    storage:
      type: filesystem
      path: /srv/backups
"""

RETURN = r"""
job:
  description: The job, as M(corebackup.backup.backup_manifest) records it.
  returned: always
  type: str
entries:
  description: One entry per selected repository (C(repositories) is the same list under its old name).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Repository name.
      type: str
    status:
      description:
        - V(backed_up) (from GitHub), V(carried) (unchanged, its newest artifact carried into today's set),
          V(unchanged) (today's set holds it already), V(skipped) (O(skip_existing) and today's set holds
          it), V(failed), or in check mode V(would_back_up).
      type: str
    key:
      description: Key of the repository's artifact in today's set.
      type: str
    carried_from:
      description: With V(carried), the key of the artifact whose bytes were carried.
      type: str
    size:
      description: Size of the artifact in bytes.
      type: int
    sha256:
      description: sha256 of the artifact as stored.
      type: str
    refs:
      description: Number of refs (branches, tags, notes, ...) in the mirror.
      type: int
    metadata:
      description: Counts of the exported items (issues, issue_comments, pulls, reviews, review_comments, releases, ...).
      type: dict
    error:
      description: Why the repository failed.
      type: str
repositories:
  description: The same list as RV(entries).
  returned: always
  type: list
  elements: dict
cleaned:
  description: Leftovers of killed runs older than a day removed under the job's prefix (temporary files, incomplete multipart uploads).
  returned: always
  type: list
  elements: str
artifacts:
  description:
    - Every artifact today's set holds for the selected repositories (backed up, carried, or there
      already), in the collection's shared Artifact form, so that the set's manifest lists them all.
  returned: always
  type: list
  elements: dict
  sample:
    - key: github/2024-05-01/ansible_20240501T020000Z.tar.gz
      size: 123456
      sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      compression: gzip
      encryption:
      created: "2024-05-01T02:00:07Z"
      metadata: {repository: my-org/ansible}
status:
  description: V(success), V(partial) (some repositories failed, the others are in the set) or V(failed).
  returned: always
  type: str
source:
  description: What was backed up, in the form M(corebackup.backup.backup_manifest) records.
  returned: always
  type: dict
  sample: {type: github, name: my-org, api_url: "https://api.github.com"}
totals:
  description: Counts by status, bytes stored and API requests made.
  returned: always
  type: dict
  sample: {selected: 30, backed_up: 3, carried: 25, unchanged: 0, skipped: 0, failed: 2, bytes: 1048576,
           api: graphql, api_requests: 36, api_not_modified: 0, graphql_requests: 35, graphql_cost: 95,
           rate_limit_answers: 0, rate_limit_pauses: 0, rate_limit_wait_seconds: 0.0, app_tokens_minted: 0,
           seconds: 12.5}
run:
  description:
    - This run as recorded in its backup set (O(record)) - C(run_id), C(status), C(started), C(finished) and C(errors).
  returned: when recorded
  type: dict
  sample: {run_id: 5d0c1e2f3a4b, status: success, started: "2026-06-15T02:00:00Z", finished: "2026-06-15T02:00:31Z",
           errors: []}
manifest_key:
  description: The key of the set's C(manifest.json), which the run was recorded into.
  returned: when recorded
  type: str
run_key:
  description: The key of the run's own record.
  returned: when recorded
  type: str
set_status:
  description: The status of the whole set once the run was recorded (V(success), V(partial) or V(failed)).
  returned: when recorded
  type: str
record_error:
  description: Why the run could not be recorded (its artifacts are stored; M(corebackup.backup.backup_manifest) can record them).
  returned: when recording failed
  type: str
"""

from ansible_collections.corebackup.backup.plugins.module_utils._services.github import SLICE


def main():
    SLICE.main()


if __name__ == "__main__":
    main()
