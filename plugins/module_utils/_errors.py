# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The one base class of the errors a user can act on.

Every error the collection raises on purpose derives from :class:`BackupError`; its message names
the problem and what to do. The module wrapper turns these into ``fail_json(msg=...)``; anything
else is a bug and is reported with its traceback.
"""

from __future__ import annotations


class BackupError(Exception):
    """An expected failure: bad input, an unreachable store, a refused write, a failing command."""


class CommandFailed(BackupError):
    """An external command (git, age, ...) failed; the message is its last error line, scrubbed."""


class OptionError(BackupError, ValueError):
    """An option's value cannot be used; the message names the option."""
