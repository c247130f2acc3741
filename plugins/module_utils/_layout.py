# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""Where artifacts live in a store.

Every artifact is stored once, under ``<job>/objects/<name>_<YYYYMMDDTHHMMSSZ>.<ext>``, relative to the storage
backend's own root or prefix. A *backup set* is the dated folder ``<job>/<YYYY-MM-DD>/``: its run records name
the artifacts it holds, wherever they are (an unchanged item's artifact is referenced by every set that holds
it, not copied). Releases before shared objects stored artifacts in the set's folder
(``<job>/<YYYY-MM-DD>/<name>_<timestamp>.<ext>``); those keys are still read. Times are UTC. Keys built here can
be parsed back into job, date (the set's, or the timestamp's for a shared object), name and timestamp.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError


class LayoutError(BackupError, ValueError):
    """A name or key does not fit the layout."""


DATE_FORMAT = "%Y-%m-%d"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"

_JOB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_NAME_CLEAN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,149}$")
_NAME_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_-]+")
_EXT_RE = re.compile(r"^[a-z0-9]+(\.[a-z0-9]+)*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_KEY_RE = re.compile(
    r"^(?P<job>[A-Za-z0-9][A-Za-z0-9_-]*)/(?P<date>\d{4}-\d{2}-\d{2}|objects)/"
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9_-]*)_(?P<timestamp>\d{8}T\d{6}Z)\.(?P<ext>[a-z0-9]+(?:\.[a-z0-9]+)*)$"
)


# Tests run modules at other dates (a run "45 days ago") by setting this in the module's
# environment to an ISO 8601 UTC time; nothing else in the process has its clock changed.
NOW_ENV = "COREBACKUP_NOW"


def utc_now() -> datetime.datetime:
    """The current time in UTC, to the second (the layout's resolution).

    ``COREBACKUP_NOW`` (``2026-06-15T02:00:00Z``) fixes it, for tests of runs on other days.
    """
    fixed = os.environ.get(NOW_ENV)
    if fixed:
        return parse_iso(fixed, NOW_ENV)
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def iso(when: datetime.datetime) -> str:
    """``2026-06-15T02:00:00Z``: how results, records and manifests write times."""
    return _as_utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str, what: str) -> datetime.datetime:
    """An ISO 8601 time (UTC when it names no zone), to the second; ``what`` names it in the error."""
    try:
        when = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise LayoutError("%s %r is not an ISO 8601 time such as 2026-11-22T03:00:00Z" % (what, text)) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).replace(microsecond=0)


def validate_job(job: str) -> str:
    """Return ``job`` if it can name a folder of the layout, else raise LayoutError."""
    if not isinstance(job, str) or not _JOB_RE.match(job):
        raise LayoutError(
            "job %r is not a valid job name: use 1 to 100 letters, digits, '-' or '_', "
            "starting with a letter or digit" % (job,)
        )
    return job


def sanitize_name(name: str) -> str:
    """Turn any source name (repository, database, volume) into a safe artifact name.

    Names that are already safe are kept as they are. Others are folded to ASCII, every run of
    other characters (dots, slashes, spaces, unicode left over) becomes ``-``, and a short hash of
    the original name is appended, so that ``my.repo`` and ``my-repo`` never share a key.
    """
    if not isinstance(name, str) or not name:
        raise LayoutError("an artifact name must be a non-empty string, got %r" % (name,))
    if _NAME_CLEAN_RE.match(name):
        return name
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = _NAME_UNSAFE_RE.sub("-", folded).strip("-_")[:120] or "x"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return "%s-%s" % (cleaned, digest)


def format_date(when: datetime.datetime | datetime.date) -> str:
    return when.strftime(DATE_FORMAT)


def parse_date(text: str) -> datetime.date:
    if not isinstance(text, str) or not _DATE_RE.match(text):
        raise LayoutError("%r is not a date of the form YYYY-MM-DD" % (text,))
    try:
        return datetime.datetime.strptime(text, DATE_FORMAT).date()
    except ValueError as exc:
        raise LayoutError("%r is not a valid date: %s" % (text, exc)) from exc


def format_timestamp(when: datetime.datetime) -> str:
    return _as_utc(when).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError) as exc:
        raise LayoutError("%r is not a timestamp of the form YYYYMMDDTHHMMSSZ" % (text,)) from exc


def _as_utc(when: datetime.datetime) -> datetime.datetime:
    if when.tzinfo is None:
        raise LayoutError("timestamps must be timezone-aware (UTC), got a naive datetime")
    return when.astimezone(datetime.timezone.utc)


def set_prefix(job: str, date: datetime.date | str) -> str:
    """The key prefix of one backup set: ``<job>/<YYYY-MM-DD>/``."""
    date_text = date if isinstance(date, str) else format_date(date)
    parse_date(date_text)
    return "%s/%s/" % (validate_job(job), date_text)


def job_prefix(job: str) -> str:
    return validate_job(job) + "/"


OBJECTS = "objects/"  # below a job's folder: every artifact, stored once and referenced by the sets that hold it


def objects_prefix(job: str) -> str:
    """``<job>/objects/``: where a job's artifacts are stored."""
    return job_prefix(job) + OBJECTS


@dataclass(frozen=True)
class ArtifactKey:
    """The parts of an artifact's key."""

    job: str
    date: datetime.date
    name: str
    timestamp: datetime.datetime
    ext: str
    shared: bool = False  # under <job>/objects/ (else in the dated folder of a set, as releases before wrote)

    @classmethod
    def build(cls, job: str, name: str, ext: str, when: datetime.datetime | None = None,
              set_date: datetime.date | None = None, shared: bool = True) -> "ArtifactKey":
        """Key for a new artifact of ``name``: under ``<job>/objects/``, or (not ``shared``) in the set of
        ``set_date``, by default the timestamp's UTC date."""
        when = _as_utc(when) if when is not None else utc_now()
        if not isinstance(ext, str) or not _EXT_RE.match(ext):
            raise LayoutError("%r is not a valid extension (lower-case letters and digits, dot-separated)" % (ext,))
        return cls(
            job=validate_job(job),
            date=set_date or when.date(),
            name=sanitize_name(name),
            timestamp=when.replace(microsecond=0),
            ext=ext,
            shared=shared,
        )

    @classmethod
    def parse(cls, key: str) -> "ArtifactKey":
        match = _KEY_RE.match(key) if isinstance(key, str) else None
        if not match:
            raise LayoutError("%r does not match <job>/objects/<name>_<YYYYMMDDTHHMMSSZ>.<ext> (or an older release's "
                              "<job>/<YYYY-MM-DD>/<name>_<YYYYMMDDTHHMMSSZ>.<ext>)" % (key,))
        timestamp = parse_timestamp(match.group("timestamp"))
        shared = match.group("date") == "objects"
        return cls(
            job=match.group("job"),
            date=timestamp.date() if shared else parse_date(match.group("date")),
            name=match.group("name"),
            timestamp=timestamp,
            ext=match.group("ext"),
            shared=shared,
        )

    @property
    def folder(self) -> str:
        """The folder of the key: ``<job>/objects/``, or its set's for an older release's artifact."""
        return objects_prefix(self.job) if self.shared else set_prefix(self.job, self.date)

    @property
    def key(self) -> str:
        return "%s%s_%s.%s" % (self.folder, self.name, format_timestamp(self.timestamp), self.ext)

    def __str__(self) -> str:
        return self.key


CHECKSUMS_FOLDER = "checksums"


def checksum_key(artifact_key: str) -> str:
    """Where the checksum record of an artifact lives: ``<job>/objects/checksums/<file>.json`` (an older release's:
    ``<job>/<date>/checksums/<file>.json``).

    The record is written once the artifact is completely stored; an artifact without one (a run
    killed between the two writes) is never trusted without reading it again.
    """
    folder, _sep, filename = artifact_key.rpartition("/")
    return "%s/%s/%s.json" % (folder, CHECKSUMS_FOLDER, filename)
