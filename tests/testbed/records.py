# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What tests assert about a stored set comes from its records (the facts), read as the collection reads them;
``manifest.json`` is a view for people, asserted on only where a test is about the view."""

from __future__ import annotations

import os
import re
import typing as t

from ansible_collections.corebackup.backup.plugins.module_utils._records import SetRecords, read_set
from ansible_collections.corebackup.backup.plugins.module_utils._sets import list_sets, load_set
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def dated_folders(job_folder: t.Any) -> list[str]:
    """The set dates of a job's folder in a filesystem store, oldest first (not its leases/, deletions/, ...)."""
    return sorted(name for name in os.listdir(str(job_folder)) if DATE.match(name))


def set_records(store: t.Any, job: str, set_date: str | None = None) -> SetRecords:
    """The records of ``job``'s set of ``set_date`` (its only set when None) in ``store`` (a backend, or the path
    of a filesystem store)."""
    backend = FilesystemBackend(str(store)) if isinstance(store, (str, bytes)) or hasattr(store, "__fspath__") else store
    if set_date is None:
        sets, _others = list_sets(backend, job)
        assert len(sets) == 1, "job %s has %d sets: %s" % (job, len(sets), sorted(sets))
        [set_date] = sets
    return read_set(backend, load_set(backend, job, set_date))
