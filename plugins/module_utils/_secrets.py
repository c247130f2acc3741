# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""One scrubber for every message, result, log line and manifest: known secrets and anything that
looks like a credential become asterisks."""

from __future__ import annotations

import re
import typing as t

_SECRET_PATTERNS = [
    # credentials in URLs: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^\s@]+@"), r"\1********@"),
    # HTTP authorization headers and their values
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*)(basic|bearer|token)?\s*[^\s,;'\"]+"), r"\1********"),
    # GitHub tokens (classic, fine-grained, app, OAuth)
    (re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b"), "********"),
    # AWS access key ids
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "********"),
    # key=value / key: value pairs that name a secret
    # (db_password=, PGPASSWORD=, client_secret:, access_token=, x-api-key: ...)
    (re.compile(r"(?i)([A-Za-z0-9_-]*(?:password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*)[^\s,;'\"]+"),
     r"\1********"),
]


def scrub(text: t.Any, secrets: t.Iterable[str] = ()) -> str:
    """``text`` with known secrets and anything that looks like a credential replaced by asterisks."""
    text = str(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "********")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text
