# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""Which backup sets a retention policy keeps, and why (pure logic, no storage).

A set is kept if any rule keeps it, like restic ``forget``:

* the newest successful set is always kept;
* ``keep_days``: successful sets less than that many days older than the newest successful set
  (anchored there, not to today, so a backup job that stopped does not let retention delete
  everything);
* ``keep_last``: the newest N successful sets;
* ``keep_daily`` / ``keep_weekly`` / ``keep_monthly`` / ``keep_yearly``: the newest successful set
  of each of the N newest days / ISO weeks / months / years that have one;
* ``min_keep``: more of the newest successful sets until that many successful sets are kept.

Partial and failed sets never count toward a rule. They are kept while they are newer than the
newest successful set or within ``keep_days`` of it, and deleted after that. When no set has
succeeded, nothing is deleted. A set without a manifest is never counted; it is deleted only with
``delete_unmanifested`` and only when it is older than the newest successful set.

Before it deletes a set, retention writes a deletion record ``<job>/deletions/<when>_<id>.<set date>.json`` (what
it deletes and why): from then on the set is gone for every reader, even while some of its objects are still
there (a prune killed half-way), and the next retention run finishes deleting it, whatever the policy says.

Items that disappear (a repository deleted upstream, or one that fails every night since) are in
no newer set: the set holding the last artifact of such an item is kept for ``keep_removed_days``
after the first successful set that lacks it, whatever the other rules say.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import tempfile
import threading
import typing as t
import uuid
from dataclasses import dataclass, field

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import (
    CHECKSUMS_FOLDER,
    ArtifactKey,
    LayoutError,
    format_timestamp,
    iso,
    job_prefix,
    objects_prefix,
    parse_date,
)
from ansible_collections.corebackup.backup.plugins.module_utils._records import dumps, read_runs
from ansible_collections.corebackup.backup.plugins.module_utils._schema import (
    DELETION_RECORD_SCHEMA,
    OBJECT_DELETION_RECORD_SCHEMA,
    schema_errors,
)
from ansible_collections.corebackup.backup.plugins.module_utils._sets import DELETIONS, iter_sets
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError

RULES = ("keep_days", "keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
PERIODS: dict[str, t.Callable[[datetime.date], str]] = {
    "keep_daily": lambda d: d.isoformat(),
    "keep_weekly": lambda d: "%04d-W%02d" % d.isocalendar()[:2],
    "keep_monthly": lambda d: d.strftime("%Y-%m"),
    "keep_yearly": lambda d: d.strftime("%Y"),
}


class PolicyError(BackupError, ValueError):
    """The retention policy is empty or invalid."""


@dataclass
class Decision:
    date: datetime.date
    status: str | None  # success | partial | failed | None (no manifest)
    keep: bool = False
    reasons: list = field(default_factory=list)


def check_policy(policy: dict) -> dict:
    """The policy with every rule an int or None; refuses an empty or negative policy."""
    checked = {}
    for name in RULES + ("min_keep",):
        value = policy.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise PolicyError("%s must be a whole number of 0 or more, got %r" % (name, value))
        checked[name] = value
    if not any(checked[name] for name in RULES):
        raise PolicyError("the retention policy is empty: set at least one of %s above 0" % ", ".join(RULES))
    checked["min_keep"] = checked["min_keep"] or 0
    return checked


def last_seen_of(contents: dict[datetime.date, set]) -> dict[str, datetime.date]:
    """{name: the date of the newest set holding an artifact of it} from the item names of each set."""
    last: dict[str, datetime.date] = {}
    for date, names in contents.items():
        for name in names:
            if name not in last or date > last[name]:
                last[name] = date
    return last


def removed_items(contents: dict[datetime.date, set] | None, statuses: dict[datetime.date, str | None],
                  last_seen: dict[str, datetime.date] | None = None) -> dict[str, tuple]:
    """Items absent from the newest successful set: {name: (date of the set with its last artifact,
    date of the first successful set without it)}.

    ``contents`` (the item names of each set) or ``last_seen`` (the newest set of each name, what a
    listing read one set at a time keeps) say where the items are.
    """
    successful = sorted((date for date, status in statuses.items() if status == "success"), reverse=True)
    if not successful:
        return {}
    if last_seen is None:
        last_seen = last_seen_of(contents or {})
    return {name: (date, min(d for d in successful if d > date))
            for name, date in last_seen.items() if date < successful[0]}


def judge_sets(sets: t.Iterable[tuple[datetime.date, str | None]], policy: dict,
               delete_unmanifested: bool = False, contents: dict[datetime.date, set] | None = None,
               keep_removed_days: int = 0, last_seen: dict[str, datetime.date] | None = None) -> list[Decision]:
    """A Decision for every (date, status) given, newest first.

    ``contents``: the item names of each set, or ``last_seen``: the newest set of each item, for
    ``keep_removed_days``.
    """
    policy = check_policy(policy)
    if not isinstance(keep_removed_days, int) or isinstance(keep_removed_days, bool) or keep_removed_days < 0:
        raise PolicyError("keep_removed_days must be a whole number of 0 or more, got %r" % (keep_removed_days,))
    sets = list(sets)
    decisions = sorted((Decision(date, status) for date, status in sets), key=lambda d: d.date, reverse=True)
    successful = [d for d in decisions if d.status == "success"]
    if not successful:
        for decision in decisions:
            decision.keep = True
            decision.reasons.append("no successful set yet: nothing is deleted")
        return decisions
    anchor = successful[0].date
    keep_days = policy["keep_days"]

    def within_days(date: datetime.date) -> bool:
        return bool(keep_days) and (anchor - date).days < keep_days

    def keep(decision: Decision, reason: str) -> None:
        decision.keep = True
        decision.reasons.append(reason)

    keep(successful[0], "newest successful set")
    for index, decision in enumerate(successful):
        if within_days(decision.date):
            keep(decision, "keep_days: within %d days of the newest successful set" % keep_days)
        if policy["keep_last"] and index < policy["keep_last"]:
            keep(decision, "keep_last: one of the newest %d successful sets" % policy["keep_last"])
    for rule, period_of in PERIODS.items():
        wanted = policy[rule]
        seen: set[str] = set()
        for decision in successful:
            if not wanted or len(seen) >= wanted:
                break
            period = period_of(decision.date)
            if period not in seen:
                seen.add(period)
                keep(decision, "%s: newest successful set of %s" % (rule, period))
    kept = sum(1 for d in successful if d.keep)
    for decision in successful:
        if kept >= policy["min_keep"]:
            break
        if not decision.keep:
            keep(decision, "min_keep: at least %d successful sets are kept" % policy["min_keep"])
            kept += 1
    if keep_removed_days and (contents or last_seen):
        by_date = {d.date: d for d in decisions}
        removed = removed_items(contents, {d.date: d.status for d in decisions}, last_seen)
        for name, (last, since) in sorted(removed.items()):
            if (anchor - since).days < keep_removed_days:
                keep(by_date[last], "keep_removed_days: last artifact of %s, in no set since %s" % (name, since))
    for decision in decisions:
        if decision.status == "success":
            if not decision.keep:
                decision.reasons.append("no rule keeps it")
        elif decision.status in ("partial", "failed"):
            if decision.date > anchor:
                keep(decision, "%s set newer than the newest successful set (not counted)" % decision.status)
            elif within_days(decision.date):
                keep(decision, "%s set within keep_days (not counted)" % decision.status)
            else:
                decision.reasons.append("%s set older than keep_days of the newest successful set" % decision.status)
        elif delete_unmanifested and decision.date < anchor:
            decision.reasons.append("no readable manifest, older than the newest successful set (delete_unmanifested)")
        else:
            keep(decision, "no readable manifest: reported, not deleted")
    return decisions


@dataclass
class SetSummary:
    """What retention keeps of one set once its listing is read: no object list."""

    date: str
    status: str | None
    size: int
    objects: int
    run_ids: list = field(default_factory=list)
    deletion: str | None = None  # the deletion record of a set a retention run began to delete
    references: frozenset = frozenset()  # the shared objects (<job>/objects/) its run records name
    unreadable: str | None = None  # why its run records could not all be read (then nothing shared is deleted)


class KeySpool:
    """The keys of every set, in a temporary file, one set after another: a plan holds the offsets of each
    set's keys, not the keys (a job of 100,000 objects costs a few MB of disk, not of memory)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        self._ranges: dict[str, tuple[int, int]] = {}

    def add(self, date: str, objects: t.Iterable[t.Any]) -> None:
        start = self._file.seek(0, os.SEEK_END)
        for key, size in sorted((obj.key, obj.size) for obj in objects):
            self._file.write(json.dumps([key, size]).encode("utf-8") + b"\n")
        self._ranges[date] = (start, self._file.tell())

    def keys(self, date: str) -> t.Iterator[tuple[str, int]]:
        """(key, size) of the set's objects, in key order."""
        start, end = self._ranges[date]
        self._file.seek(start)
        while self._file.tell() < end:
            key, size = json.loads(self._file.readline())
            yield key, size

    def close(self) -> None:
        self._file.close()


@dataclass
class Plan:
    sets: dict  # {date text: SetSummary}
    ignored: list  # keys under the job prefix outside any dated folder and outside objects/
    decisions: list  # Decision, newest first
    removed: list  # items absent from the newest successful set, with where their last artifact is
    spool: KeySpool

    def doomed_objects(self) -> t.Iterator[tuple[str, int]]:
        """(key, size) of every object to delete, oldest set first, the run records of every set last: a set
        whose deletion is interrupted still shows what it was."""
        dates = sorted(d.date.isoformat() for d in self.decisions if not d.keep)
        for runs in (False, True):
            for date in dates:
                for key, size in self.spool.keys(date):
                    if ("/runs/" in key) == runs:
                        yield key, size

    @property
    def doomed(self) -> t.Iterator[str]:
        return (key for key, _size in self.doomed_objects())

    def entries(self, keep: bool) -> list[dict]:
        entries = []
        for decision in self.decisions:
            if decision.keep != keep:
                continue
            summary = self.sets[decision.date.isoformat()]
            entries.append({"date": summary.date, "status": summary.status or "unmanifested",
                            "size": summary.size, "objects": summary.objects, "reasons": decision.reasons})
        return entries


def write_deletion_records(backend: t.Any, job: str, plan: Plan, policy: dict, when: datetime.datetime) -> list[str]:
    """Before any object of them is deleted: a deletion record of each set the plan deletes that has none yet
    (from then on the set is gone for every reader); the keys written. The records are written 16 at a time (a
    prune of hundreds of sets must not pay one round trip per set in a row); if one cannot be written, nothing is
    deleted (the sets whose record was written are gone for readers, and the next run finishes them)."""
    pending = []
    for decision in plan.decisions:
        summary = plan.sets[decision.date.isoformat()]
        if decision.keep or summary.deletion is not None:
            continue
        record = {"schema_version": 1, "job": job, "set_date": summary.date, "when": iso(when),
                  "status": summary.status, "policy": policy, "reasons": decision.reasons,
                  "keys": summary.objects, "bytes": summary.size, "run_ids": summary.run_ids}
        errors = schema_errors(record, DELETION_RECORD_SCHEMA, "deletion record")
        if errors:
            raise BackupError("; ".join(errors))
        key = "%s%s%s_%s.%s.json" % (job_prefix(job), DELETIONS, format_timestamp(when), uuid.uuid4().hex, summary.date)
        pending.append((summary, key, dumps(record)))

    def write(entry: tuple) -> str | None:
        summary, key, data = entry
        try:
            backend.write(key, [data], overwrite=False)
        except StorageError as exc:
            return "the deletion record of %s could not be written: %s" % (summary.date, exc)
        summary.deletion = key
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(pending) or 1)) as pool:
        failures = [failure for failure in pool.map(write, pending) if failure]
    if failures:
        raise BackupError("nothing was deleted: %s" % failures[0] + (
            " (and %d more)" % (len(failures) - 1) if len(failures) > 1 else ""))
    return [key for summary, key, _data in pending]


def item_names(backup_set: t.Any) -> set:
    """The names of the items that have an artifact in a set's own folder (an older release's layout)."""
    names = set()
    for obj in backup_set.objects:
        try:
            parsed = ArtifactKey.parse(obj.key)
        except LayoutError:
            continue  # manifest, run records, checksum records
        if not parsed.shared:
            names.add(parsed.name)
    return names


# Run records read at once by a retention run (each set's are read once, to know its items and references).
READERS = 16


def read_references(backend: t.Any, job: str, sets: list) -> dict[str, tuple]:
    """{set date: (item names, shared object keys, None) or (set(), frozenset(), why unreadable)} from the run
    records of ``sets`` (BackupSets without their objects), READERS at a time. Key strings are shared between
    sets (memory holds each key once, whatever the number of sets that reference it)."""
    shared = objects_prefix(job)
    interned: dict[str, str] = {}
    lock = threading.Lock()

    def read(backup_set: t.Any) -> tuple[str, tuple]:
        runs, problems = read_runs(backend, backup_set)
        if problems:
            return backup_set.date, (set(), frozenset(), "; ".join(problems))
        names, keys = set(), set()
        for run in runs:
            for artifact in run["artifacts"]:
                try:
                    names.add(ArtifactKey.parse(artifact["key"]).name)
                except LayoutError:
                    pass  # an artifact an import recorded under a name of its own
                for key in [artifact["key"]] + [r["key"] for r in artifact.get("requires") or []]:
                    if key.startswith(shared):
                        keys.add(key)
        with lock:
            return backup_set.date, ({interned.setdefault(name, name) for name in names},
                                     frozenset(interned.setdefault(key, key) for key in keys), None)

    with concurrent.futures.ThreadPoolExecutor(max_workers=READERS) as pool:
        return dict(pool.map(read, sets))


def retention_plan(backend: t.Any, job: str, policy: dict, delete_unmanifested: bool = False,
                   keep_removed_days: int = 0) -> Plan:
    """What a retention run on ``job`` keeps and deletes, from one listing of ``<job>/`` read one set at a
    time (memory holds a summary of each set and the newest set of each item, not the listing)."""
    check_policy(policy)
    ignored: list[str] = []
    summaries: dict[str, SetSummary] = {}
    last_seen: dict[str, datetime.date] = {}
    names: dict[str, str] = {}  # one string per item name, whatever the number of sets
    spool = KeySpool()
    recorded = []  # sets whose run records name their items and shared objects
    try:
        shared = objects_prefix(job)

        def other(key: str) -> None:
            if not key.startswith(shared):  # the shared objects are swept apart (sweep_plan)
                ignored.append(key)

        for backup_set in iter_sets(backend, job, other, include_deleted=True):
            date = parse_date(backup_set.date)
            if backup_set.deletion is None:
                for name in item_names(backup_set):
                    last_seen[names.setdefault(name, name)] = max(date, last_seen.get(name, date))
            summaries[backup_set.date] = SetSummary(backup_set.date, backup_set.status, backup_set.size,
                                                    len(backup_set.objects), sorted({r["run_id"] for r in backup_set.runs}),
                                                    backup_set.deletion)
            spool.add(backup_set.date, backup_set.objects)
            backup_set.objects = []
            if backup_set.deletion is None and backup_set.runs:
                recorded.append(backup_set)
        for date, (found, keys, unreadable) in read_references(backend, job, recorded).items():
            summaries[date].references, summaries[date].unreadable = keys, unreadable
            for name in found:
                last_seen[names.setdefault(name, name)] = max(parse_date(date), last_seen.get(name, parse_date(date)))
        statuses = {parse_date(date): summary.status for date, summary in summaries.items() if summary.deletion is None}
        decisions = judge_sets(statuses.items(), policy, delete_unmanifested=delete_unmanifested,
                               keep_removed_days=keep_removed_days, last_seen=last_seen)
        for date, summary in summaries.items():
            if summary.deletion is not None:
                decisions.append(Decision(parse_date(date), summary.status, reasons=[
                    "deleted already (%s): finishing its deletion" % summary.deletion]))
        decisions.sort(key=lambda d: d.date, reverse=True)
    except BaseException:
        spool.close()
        raise
    kept = {d.date for d in decisions if d.keep}
    removed = [{"name": name, "last_set": last.isoformat(), "missing_since": since.isoformat(), "kept": last in kept}
               for name, (last, since) in sorted(removed_items(None, statuses, last_seen).items())]
    return Plan(summaries, ignored, decisions, removed, spool)


# An object no kept set references is deleted only once it is this much older than the run (by the timestamp in its
# key, the clock of the run that wrote it): a run that is writing, or one of an older release that holds no lease,
# has not recorded its objects yet.
GRACE = datetime.timedelta(days=1)


@dataclass
class Sweep:
    """What retention does under ``<job>/objects/``: the objects (artifacts and their checksum records) no kept set
    references and older than GRACE are deleted; the others stay."""

    kept_sets: list  # the dates whose references were marked
    referenced: int = 0  # artifacts a kept set references
    young: int = 0  # artifacts no kept set references, newer than GRACE: left for a later run
    doomed: list = field(default_factory=list)  # (key, size): unreferenced artifacts, then their checksum records
    foreign: list = field(default_factory=list)  # keys under objects/ that are not this collection's
    blocked: str | None = None  # why nothing under objects/ is deleted this time

    @property
    def bytes(self) -> int:
        return sum(size for _key, size in self.doomed)

    def summary(self) -> dict:
        artifacts = [key for key, _size in self.doomed if "/%s/" % CHECKSUMS_FOLDER not in key]
        return {"referenced": self.referenced, "young": self.young, "deleted": len(artifacts), "bytes": self.bytes,
                "keys": artifacts[:100], "blocked": self.blocked}


def sweep_plan(backend: t.Any, job: str, plan: Plan, now: datetime.datetime) -> Sweep:
    """Mark every shared object a kept set references (read with the plan), then list ``<job>/objects/`` once and
    sweep the rest, once older than GRACE. A kept set whose run records cannot all be read may reference anything:
    then nothing is swept, and ``blocked`` says why."""
    kept = {d.date.isoformat() for d in plan.decisions if d.keep}
    sweep = Sweep(kept_sets=sorted(kept))
    marked: set = set()
    for date in sorted(kept):
        summary = plan.sets[date]
        if summary.unreadable:
            sweep.blocked = "nothing under %s was deleted: the kept set %s has run records that cannot be read (%s)" % (
                objects_prefix(job), date, summary.unreadable)
            return sweep
        marked.update(summary.references)
    prefix = objects_prefix(job)
    records = prefix + CHECKSUMS_FOLDER + "/"
    cutoff = now - GRACE
    doomed_records = []
    for obj in backend.list(prefix):
        is_record = obj.key.startswith(records)
        artifact = prefix + obj.key[len(records):-len(".json")] if is_record and obj.key.endswith(".json") else obj.key
        if artifact in marked:
            sweep.referenced += 0 if is_record else 1
            continue
        try:
            parsed = ArtifactKey.parse(artifact)
        except LayoutError:
            sweep.foreign.append(obj.key)
            continue
        if not parsed.shared or parsed.job != job:
            sweep.foreign.append(obj.key)
        elif parsed.timestamp > cutoff:
            sweep.young += 0 if is_record else 1
        else:
            (doomed_records if is_record else sweep.doomed).append((obj.key, obj.size))
    sweep.doomed.extend(doomed_records)
    return sweep


def write_object_deletion_record(backend: t.Any, job: str, sweep: Sweep, when: datetime.datetime) -> str | None:
    """Before any of them is deleted: the record of the shared objects a retention run deletes; its key (None when
    there are none). Raises BackupError when it cannot be written: then nothing is deleted."""
    if not sweep.doomed:
        return None
    record = {"schema_version": 1, "job": job, "when": iso(when), "kept_sets": sweep.kept_sets,
              "objects": [key for key, _size in sweep.doomed], "bytes": sweep.bytes}
    errors = schema_errors(record, OBJECT_DELETION_RECORD_SCHEMA, "object deletion record")
    if errors:
        raise BackupError("; ".join(errors))
    key = "%s%s%s_%s.objects.json" % (job_prefix(job), DELETIONS, format_timestamp(when), uuid.uuid4().hex)
    try:
        backend.write(key, [dumps(record)], overwrite=False)
    except StorageError as exc:
        raise BackupError("nothing under %s was deleted: the object deletion record could not be written: %s" % (
            objects_prefix(job), exc)) from None
    return key
