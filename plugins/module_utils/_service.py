# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The service runner: what every service module does the same way.

A service module backs up the items of one source, one artifact per item (the repositories of an
organization, host paths, databases, Docker volumes). It describes its source with a
:class:`Service`: ``discover()`` the items, tell whether an item is ``unchanged()`` since the
artifact recorded for it, and ``produce()`` a new artifact. :class:`ServiceRunner` does the rest:

1. check the store and list the job's artifacts once (:class:`Catalog`), clean what killed runs left;
2. for each item, with at most ``parallel`` at once: its newest recorded artifact, then the pure
   :func:`choose_action` (``skip_existing``, ``skip_unchanged`` by the service's comparison, same packing),
   then back it up, carry its artifact into today's set, or leave it; check mode makes the same
   decision and stops there, so its ``changed`` is what the real run would report;
3. totals, the run's status, and ``fail_on_error`` after all items.

The result contract, the same for every service module (``backup_manifest`` reads only this):

- ``job``: the job; ``source``: what was backed up, at least ``type`` and ``name``;
- ``status``: ``success`` (no item failed), ``partial`` (some failed, some are in the set),
  ``failed`` (none is);
- ``entries``: one per item: ``name``, ``status`` (``backed_up``, ``carried``, ``unchanged``,
  ``skipped``, ``failed``; in check mode ``would_back_up`` or ``would_carry``), ``key`` (its artifact
  in today's set), ``size``, ``sha256``, ``error``, ``carried_from`` when carried, and the service's
  own fields; the same list also under the service's own name (``repositories``, ``paths``, ...);
- ``artifacts``: every artifact today's set holds for the items, in the shared Artifact form;
- ``totals``: counts by status, ``selected``, ``bytes`` (new bytes stored), ``seconds``, and the
  service's own counters; ``cleaned``: leftovers of killed runs that were removed.
"""

from __future__ import annotations

import concurrent.futures
import copy
import datetime
import errno
import threading
import time
import traceback
import typing as t
import uuid
from dataclasses import dataclass, field

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.warnings import get_warnings

from ansible_collections.corebackup.backup.plugins.module_utils._catalog import (
    BACKUP,
    CARRY,
    LEFTOVER_AGE,
    PRESENT,
    SKIP,
    Catalog,
    carry,
    choose_action,
)
from ansible_collections.corebackup.backup.plugins.module_utils._common import common_argument_spec
from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, OptionError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import format_date, format_timestamp, job_prefix, sanitize_name
from ansible_collections.corebackup.backup.plugins.module_utils._lease import PROBES, job_lease, utc_clock
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import Artifact
from ansible_collections.corebackup.backup.plugins.module_utils._record import CHECK_MODE_STATUSES, build_run, record_result
from ansible_collections.corebackup.backup.plugins.module_utils._schema import ITEM_STATUSES, PRESENT_STATUSES
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError


@dataclass(frozen=True)
class ServiceSlice:
    """Everything about one service, in one place (``plugins/module_utils/_services/<name>.py``) that the
    registry (``_registry.py``) lists: what a job list, the role, ``backup_plan``, ``backup_run`` and
    ``backup_restore`` know of a service comes from here.

    ``name`` is the service's name in job lists and run records (the ``type`` of a run's source);
    ``module`` the module that backs it up; ``spec`` that module's options (``argument_spec``,
    ``job_default`` and the constraints ``AnsibleModule`` takes); ``backup`` its :class:`Service`;
    ``restorer`` the ``_restore.Restorer`` that puts its artifacts back and ``restore_spec`` the options of
    ``backup_restore`` for its targets (options several services share are specified alike).
    """

    name: str
    module: str
    spec: dict
    backup: type
    restorer: type | None = None
    restore_spec: dict = field(default_factory=dict)

    def argument_spec(self) -> dict:
        """The backup module's whole argument spec: the shared options, packing included, then its own."""
        spec = common_argument_spec(self.spec.get("job_default"), packing=True)
        spec.update(copy.deepcopy(self.spec["argument_spec"]))
        return spec

    def constraints(self) -> dict:
        """mutually_exclusive, required_one_of, ... of the backup module."""
        return {k: v for k, v in self.spec.items() if k in CONSTRAINTS}

    def main(self) -> None:
        """The backup module's ``main()``."""
        module = BackupModule(packing=True, **self.spec)
        module.run(lambda m: ServiceRunner(m, self.backup(m)).run())


CONSTRAINTS = ("mutually_exclusive", "required_one_of", "required_together", "required_if", "required_by")


def _given(value: t.Any) -> t.Any:
    """Options as a user gives them: validated ones (another module's) hold every suboption, None where unset."""
    if isinstance(value, dict):
        return {k: _given(v) for k, v in value.items() if v is not None}
    return value


def run_nested(module: t.Any, service: ServiceSlice, args: dict) -> tuple[dict, str | None]:
    """The backup of ``service`` inside another module's run (a pre-restore backup inside a restore): ``args``
    checked against its module's spec, then its runner's (result, failure). Its secrets join the run's."""
    checked = ArgumentSpecValidator(service.argument_spec(), **service.constraints()).validate(_given(args))
    if checked.error_messages:
        raise BackupError("%s: %s" % (service.module, module.scrub("; ".join(checked.error_messages))))
    child = module.derive(checked.validated_parameters)
    child.add_secret(*checked._no_log_values)  # pylint: disable=protected-access
    return ServiceRunner(child, service.backup(child)).execute()


@dataclass
class Item:
    """One thing to back up; ``data`` is whatever the service needs for it."""

    name: str
    data: t.Any = None
    error: str | None = None  # discovery already failed for it
    artifact_name: str | None = None  # the name in artifact keys, if not the item's own name
    previous: t.Any = None  # its newest recorded Artifact packed as today's would be (set by the runner), if any

    @property
    def key_name(self) -> str:
        return sanitize_name(self.artifact_name or self.name)


class Service:
    """The hooks a service module implements; everything else is the runner's."""

    item_kind = "items"  # the result's own name for its entries, and the word in messages
    item_errors: tuple = ()  # exceptions (besides BackupError and OSError) that fail one item
    entry_fields: dict = {}  # the service's own fields of an entry, with their values before any work

    def __init__(self, module: t.Any):
        self.module = module
        self.params = module.params

    def discover(self) -> list[Item]:  # pragma: no cover - interface
        raise NotImplementedError

    def source(self) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def unchanged(self, item: Item, recorded: dict, entry: dict) -> bool:
        """Does the source still hold what the artifact whose object metadata is ``recorded`` holds?"""
        return False

    def produce(self, item: Item, recorded: dict, entry: dict) -> Artifact | None:  # pragma: no cover
        """A new artifact of ``item``; None only when ``recorded`` is given and the item, read again,
        turns out equal to what it describes."""
        raise NotImplementedError

    def prepare(self, items: list[Item], history: set[str]) -> None:
        """Before any item is processed: ``history`` holds the key names of the items with artifacts in the store
        (those whose ``unchanged()`` may be asked), for work worth starting for all of them at once."""

    def close(self) -> None:
        """After every item: stop what ``prepare()`` started."""

    def preview(self, item: Item, entry: dict) -> t.Any:
        """In check mode, fill the service's own fields of an entry with what a real run would do."""

    def finish(self, entry: dict, artifact: Artifact) -> None:
        """Fill the service's own fields of an entry from its artifact (carried or unchanged)."""

    def carry_updates(self, item: Item) -> dict:
        """Metadata to record with an artifact carried after produce() found the source equal to it (e.g. when
        the source was last compared in full)."""
        return {}

    def selection(self) -> str:
        """What was asked for and what it matched, for the error of an empty selection."""
        return ""

    def totals(self) -> dict:
        return {}

    def result(self) -> dict:
        """Top-level keys of the service's own in the result."""
        return {}

    def store(self, item: Item, base_ext: str, chunks: t.Iterable[bytes], metadata: dict,
              contents: t.Callable[[], dict] | None = None, requires: t.Sequence[dict] = ()) -> Artifact:
        """Store a new artifact of ``item`` in today's set; ``contents`` says what was inside, once stored;
        ``requires`` the objects a restore of it reads first ({key, size, sha256}, in order)."""
        return self.module.writer.store(self.module.job, item.key_name, base_ext, chunks, metadata=metadata,
                                        when=self.module.now, contents=contents, requires=requires)


def item_specs(items: t.Iterable[t.Any], option: str, key: str, allowed: t.Iterable[str]) -> list[dict]:
    """The items of a list option that takes each as a string (its ``key``) or as a dictionary with ``key`` and any
    of ``allowed``: a dictionary each. OptionError names the option and the item otherwise."""
    keys = (key,) + tuple(allowed)
    found = []
    for raw in items:
        spec = {key: raw} if isinstance(raw, str) else raw
        if not isinstance(spec, dict) or not isinstance(spec.get(key), str) or not spec[key]:
            raise OptionError("%s: each item is a %s or a dictionary with %s; got %r" % (option, key, ", ".join(keys), raw))
        unknown = set(spec) - set(keys)
        if unknown:
            raise OptionError("%s: %s: unknown keys %s (allowed: %s)" % (
                option, spec[key], ", ".join(sorted(unknown)), ", ".join(keys)))
        found.append(spec)
    return found


# What the runner gives build_run besides its result (everything else is read from the result).
RECORD_DEFAULTS = {"artifacts": None, "errors": None, "warnings": None, "status": None, "source": None, "started": None,
                   "finished": None, "run_id": None, "counts": None}


# Storage errors no other item can escape: the store refuses every write, or has no room.
STORE_WIDE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
STORE_WIDE_S3_CODES = {"AccessDenied", "AllAccessDisabled", "NoSuchBucket", "InvalidAccessKeyId",
                       "SignatureDoesNotMatch", "InvalidBucketName", "AccountProblem"}


def store_wide(exc: BaseException) -> bool:
    """Would every item meet this storage error? (Its causes are looked at: an OSError's errno, S3's code.)"""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in STORE_WIDE_ERRNOS:
            return True
        code = ((getattr(exc, "response", None) or {}).get("Error") or {}).get("Code")
        if code in STORE_WIDE_S3_CODES:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def run_status(entries: t.Iterable[dict]) -> str:
    """success when no item failed; partial when some failed and some are in the set; failed otherwise."""
    statuses = [entry["status"] for entry in entries]
    if "failed" not in statuses:
        return "success"
    return "partial" if any(status in PRESENT_STATUSES for status in statuses) else "failed"


class ServiceRunner:
    """Runs one service module: discovery, the decision per item, artifacts, totals, the outcome."""

    def __init__(self, module: t.Any, service: Service):
        self.module = module
        self.service = service
        self.catalog: Catalog | None = None
        self.writer: t.Any = None
        self.store_failure: str | None = None  # a storage error every item would meet: the run stops there
        self._probe_lock = threading.Lock()

    def run(self) -> None:
        """Run the service and exit the module with its result (fail it when the run failed as a whole)."""
        output, failure = self.execute()
        if failure is not None:
            self.module.fail(failure, **output)
        self.module.exit(**output)

    def execute(self) -> tuple[dict, str | None]:
        """Run the service: (the result, the message of a failure of the whole run or None). A run that stored
        nothing, refused (options, discovery, packing, the store) or with every item failed, records nothing and
        leaves every stored byte as it was (the role records the failed job); the others record themselves."""
        return self._execute(time.monotonic())

    def _execute(self, started: float) -> tuple[dict, str | None]:
        module, service = self.module, self.service
        job = module.job
        if module.params["parallel"] < 1:
            raise BackupError("parallel must be at least 1, got %d" % module.params["parallel"])
        if module.params["lock_timeout"] < 0:
            raise BackupError("lock_timeout must be 0 (do not wait) or more seconds, got %d" % module.params["lock_timeout"])
        items = service.discover()
        if not items and not module.params["allow_empty"]:
            raise BackupError("nothing to back up: %s; set allow_empty: true if an empty selection is expected"
                              % (service.selection() or "no %s selected" % service.item_kind))
        if module.run_budget is not None:  # threads shared by the items that can run at once, not by parallel
            module.run_budget.select(len(items))
        self.writer = module.writer  # bad compression or recipients fail the module, not each item
        module.backend.check_root(create=True, dry_run=module.check_mode)
        waited = time.monotonic()
        with job_lease(module.backend, job, module.params["lock_timeout"], dry_run=module.check_mode) as lease:
            waited = time.monotonic() - waited
            output, failure = self.under_lease(items, started, waited)
            if self.recording and output["status"] != "failed":
                output.update(self.record(output, started))
        if lease is not None and lease.lost:
            module.warn(lease.lost)
        return output, failure

    @property
    def recording(self) -> bool:
        """Does this run record itself (its run record, the set's manifest and SHA256SUMS)?"""
        return not self.module.check_mode and bool(self.module.params.get("record", True))

    def under_lease(self, items: list[Item], started: float, waited: float) -> tuple[dict, str | None]:
        """The items, decided and backed up or carried; the result and the failure of the whole run, if any."""
        module, service, job = self.module, self.service, self.module.job
        self.catalog = Catalog(module.backend, job, module.now.date(), read_only=module.check_mode)
        cleaned = [] if module.check_mode else module.backend.clean_leftovers(job_prefix(job), module.now - LEFTOVER_AGE)
        try:
            service.prepare(items, self.catalog.names())
            with concurrent.futures.ThreadPoolExecutor(max_workers=self.module.params["parallel"]) as pool:
                done = list(pool.map(self.process_one, items))
        finally:
            service.close()
        entries = [entry for entry, _artifact in done]
        artifacts = [artifact.to_dict() for _entry, artifact in done if artifact is not None]
        totals = dict(selected=len(entries), bytes=sum(e["size"] for e in entries if e["status"] == "backed_up"),
                      seconds=round(time.monotonic() - started, 3), lock_wait_seconds=round(waited, 3),
                      budget=module.budget, **service.totals())
        for status in ITEM_STATUSES + CHECK_MODE_STATUSES:
            totals[status] = sum(1 for entry in entries if entry["status"] == status)
        changed = totals["backed_up"] + totals["carried"] + totals["would_back_up"] + totals["would_carry"] > 0
        output = dict(changed=changed, job=job, source=service.source(), status=run_status(entries), entries=entries,
                      artifacts=artifacts, totals=totals, cleaned=cleaned, **{service.item_kind: entries},
                      **service.result())
        failed = [entry for entry in entries if entry["status"] == "failed"]
        if self.store_failure is not None:  # said once, not once per item
            return output, "the store failed, so no %s could be stored: %s (%d of %d %s not backed up)" % (
                service.item_kind, self.store_failure, len(failed), len(entries), service.item_kind)
        if failed and module.params["fail_on_error"]:
            return output, "%d of %d %s failed: %s" % (len(failed), len(entries), service.item_kind, "; ".join(
                "%s: %s" % (entry["name"], entry["error"]) for entry in failed))
        return output, None

    def record(self, output: dict, started: float) -> dict:
        """This run's record in today's set (under the lease the run holds): the result's ``run`` (its id, status,
        times and errors), ``manifest_key``, ``run_key`` and ``set_status``. A record that cannot be written is an
        error of the run, said in ``record_error``; the artifacts stay, and ``backup_manifest`` can record them."""
        finished = self.module.now + datetime.timedelta(seconds=time.monotonic() - started)
        try:
            run = build_run(dict(RECORD_DEFAULTS, result=dict(output, warnings=list(get_warnings())),
                                 secrets=sorted(self.module.secrets)), finished)
            recorded = record_result(self.module.backend, self.module.job, run, set_date=format_date(self.module.now),
                                     secrets=self.module.secrets)
        except (BackupError, OSError) as exc:
            message = self.module.scrub("the run could not be recorded: %s" % exc)
            self.module.warn(message)
            return {"record_error": message}
        for warning in recorded["view_warnings"]:
            self.module.warn(self.module.scrub(warning))
        run = recorded["run"]
        return {"run": {k: run[k] for k in ("run_id", "status", "started", "finished", "errors")},
                "manifest_key": recorded["manifest_key"], "run_key": recorded["run_key"],
                "set_status": recorded["set_status"]}

    def process_one(self, item: Item) -> tuple[dict, Artifact | None]:
        """process(), then the item's compression threads go to the items still running."""
        try:
            return self.process(item)
        finally:
            if self.module.run_budget is not None:
                self.module.run_budget.finished()

    def process(self, item: Item) -> tuple[dict, Artifact | None]:
        """The decision for one item, then what it asks for; a failure fails this item only."""
        module, params = self.module, self.module.params
        entry = dict({"name": item.name, "status": "failed", "key": None, "size": None, "sha256": None, "error": None},
                     **{k: (dict(v) if isinstance(v, dict) else v) for k, v in self.service.entry_fields.items()})
        try:
            if self.store_failure is not None:
                raise BackupError("not attempted: the store failed")
            if item.error:
                raise BackupError(item.error)
            stored = self.catalog.newest(item.key_name)
            same_packing = stored is not None and self.writer.same_packing(stored.artifact.to_dict())
            item.previous = stored.artifact if same_packing else None  # what an incremental artifact builds on
            recorded = stored.artifact.metadata if same_packing and params["skip_unchanged"] else {}
            unchanged = None
            if recorded and not (params["skip_existing"] and stored.today):
                unchanged = self.service.unchanged(item, recorded, entry)
            action = choose_action(today=bool(stored and stored.today), previous=stored is not None,
                                   same_packing=same_packing, unchanged=unchanged,
                                   skip_existing=params["skip_existing"], skip_unchanged=params["skip_unchanged"])
            if module.check_mode:
                self.service.preview(item, entry)
                entry["status"] = {BACKUP: "would_back_up", CARRY: "would_carry", PRESENT: "unchanged", SKIP: "skipped"}[action]
                return entry, None
            artifact = self.act(item, entry, action, stored, recorded)
        except (BackupError, OSError) + self.service.item_errors as exc:
            entry["error"] = module.scrub(exc)
            if isinstance(exc, StorageError) and store_wide(exc) and self.store_refuses():
                self.store_failure = self.store_failure or entry["error"]
            return entry, None
        except Exception as exc:  # pylint: disable=broad-exception-caught
            entry["error"] = module.scrub("unexpected error: %s\n%s" % (exc, traceback.format_exc()))
            return entry, None
        if stored is not None and artifact is stored.artifact:
            entry["status"] = "skipped" if action == SKIP else "unchanged"
        else:
            entry["status"] = "carried" if artifact.carried_from else "backed_up"
        entry.update(key=artifact.key, size=artifact.size, sha256=artifact.sha256)
        if artifact.carried_from:
            entry["carried_from"] = artifact.carried_from
        self.service.finish(entry, artifact)
        return entry, artifact

    def store_refuses(self) -> bool:
        """Does the store refuse a small write into the job's folder too? (A source's read error can look like a
        storage error while its stream is written; only the store's own refusal stops the run.)"""
        with self._probe_lock:
            if self.store_failure is not None:
                return True
            # A new name every time, created only and left in place (a backup credential may not delete or
            # replace anything): retention removes old probes.
            key = "%s%s%s_%s" % (job_prefix(self.module.job), PROBES, format_timestamp(utc_clock()), uuid.uuid4().hex[:12])
            try:
                self.module.backend.write(key, [b"corebackup write probe\n"], overwrite=False)
            except StorageError as exc:
                return store_wide(exc)
            return False

    def act(self, item: Item, entry: dict, action: str, stored: t.Any, recorded: dict) -> Artifact:
        artifact = None
        if action in (PRESENT, SKIP):
            artifact = stored.artifact
        elif action == CARRY:
            artifact = self.carry(stored.artifact)
        if artifact is None:  # backed up from the source, also when the store could not carry
            artifact = self.service.produce(item, recorded if action == BACKUP else {}, entry)
        if artifact is None:  # read again, and equal to the recorded artifact after all
            artifact = stored.artifact if stored.today else (
                self.carry(stored.artifact, self.service.carry_updates(item)) or self.service.produce(item, {}, entry))
        if artifact is None:
            raise BackupError("%s produced no artifact" % item.name)
        return artifact

    def carry(self, previous: Artifact, updates: dict | None = None) -> Artifact | None:
        """``previous`` carried into today's set (its metadata updated with ``updates``); None (and a warning)
        when the store cannot carry it."""
        try:
            return carry(self.module.backend, previous, self.module.job, self.module.now, updates)
        except BackupError as exc:
            self.module.warn("could not carry %s into today's set (%s); backed up from the source instead"
                             % (previous.key, exc))
            return None
