#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_retention
short_description: Delete old backup sets of a job by a retention policy
version_added: 0.1.0
description:
  - Applies a retention policy to the backup sets (dated folders C(<prefix>/<job>/<YYYY-MM-DD>/)) of
    one job. A set is kept if any rule keeps it, like restic C(forget); every other set is deleted
    with everything in it.
  - Only successful sets count toward a rule. Partial and failed sets are kept while they are newer
    than the newest successful set or within O(keep_days) of it. When no set has succeeded yet,
    nothing is deleted. The newest successful set is never deleted.
  - The status of each set comes from the names of its run records (see
    M(corebackup.backup.backup_manifest)), so a run needs only one paginated listing of the job and
    one delete call per 1000 keys. A set without run records (no manifest) is reported, never counted,
    and deleted only with O(delete_unmanifested).
  - Artifacts are stored once under C(<prefix>/<job>/objects/) and referenced by the run records of every set
    that holds them. After the sets, the run marks every object a kept set references and deletes the others
    (mark and sweep), once they are more than a day older than the run (a run of an older release that holds no
    lease may not have recorded them yet). If a kept set has a run record that cannot be read, no object is
    deleted (RV(objects) says why). A deletion record C(<job>/deletions/<time>_<id>.objects.json) lists the
    objects before they are deleted.
  - The run holds the job's lease (one writing run of a job at a time, as backups do), waiting up to
    O(lock_timeout) seconds for a running backup.
  - Nothing outside C(<prefix>/<job>/) is listed, and inside it only folders named like a date and
    C(objects/) are touched; other keys are reported in RV(ignored).
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - corebackup.backup.common
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be deleted and why each set is kept; deletes nothing.
  diff_mode:
    support: full
    details: The sets before and after, one line per set with the rule that keeps it.
  platform:
    platforms: posix
options:
  keep_days:
    description:
      - Keep successful sets less than this many days older than the newest successful set. The age
        is anchored to the newest successful set, not to today, so a backup job that stopped does not
        let retention delete everything. V(0) turns the rule off.
    type: int
    default: 30
  keep_last:
    description:
      - Keep the newest N successful sets.
    type: int
  keep_daily:
    description:
      - Keep the newest successful set of each of the newest N days that have one.
    type: int
  keep_weekly:
    description:
      - Keep the newest successful set of each of the newest N ISO weeks that have one.
    type: int
  keep_monthly:
    description:
      - Keep the newest successful set of each of the newest N months that have one.
    type: int
  keep_yearly:
    description:
      - Keep the newest successful set of each of the newest N years that have one.
    type: int
  min_keep:
    description:
      - Keep at least this many successful sets whatever the other rules say (the newest ones).
    type: int
    default: 1
  keep_removed_days:
    description:
      - Items that are in no newer set (a repository deleted upstream, a database dropped, or an item
        that fails every night since) keep the set that holds their last artifact for this many days
        after the first successful set without them, whatever the rules above say. They are reported
        in RV(removed_items). V(0) turns the rule off.
    type: int
    default: 365
  lock_timeout:
    description:
      - Seconds to wait for the job's lease while another run (a backup, another retention run) holds it; V(0)
        fails at once with a message naming the holder.
    type: int
    default: 0
  delete_unmanifested:
    description:
      - Also delete sets without any run record, when they are older than the newest successful set.
        They are only reported otherwise.
    type: bool
    default: false
notes:
  - The job's O(job) has no default here; name the job whose sets are pruned.
  - A policy with no rule above 0 is refused.
"""

EXAMPLES = r"""
- name: Keep a month of nightly sets, then 8 weekly, 12 monthly and 3 yearly
  corebackup.backup.backup_retention:
    job: github
    storage: "{{ backup_storage }}"
    keep_days: 30
    keep_weekly: 8
    keep_monthly: 12
    keep_yearly: 3

- name: Show what a policy would delete
  corebackup.backup.backup_retention:
    job: mongodb
    storage: "{{ backup_storage }}"
    keep_last: 7
  check_mode: true
  diff: true
"""

RETURN = r"""
kept:
  description: The sets kept, newest first, each with C(date), C(status), C(size) and C(reasons) (the rules that keep it).
  returned: always
  type: list
  elements: dict
  sample: [{date: "2026-11-22", status: success, size: 1048576, objects: 31, reasons: ["newest successful set"]}]
deleted:
  description:
    - The sets deleted (in check mode, that would be deleted), with C(date), C(status), C(size),
      C(objects) and C(reasons).
  returned: always
  type: list
  elements: dict
deletion_records:
  description:
    - The deletion records written before anything was deleted, C(<job>/deletions/<time>_<id>.<set date>.json), one
      per set deleted (none in check mode, none for a set whose deletion an interrupted run began). From then on
      every reader takes the set as gone; the next run finishes deleting what is left of it.
  returned: always
  type: list
  elements: str
unmanifested:
  description: Dates of sets without any run record.
  returned: always
  type: list
  elements: str
removed_items:
  description:
    - Items absent from the newest successful set, with C(name), C(last_set) (the date of the set holding
      their last artifact), C(missing_since) (the first successful set without them) and C(kept).
  returned: always
  type: list
  elements: dict
  sample: [{name: old-tool, last_set: "2026-03-01", missing_since: "2026-03-02", kept: true}]
ignored:
  description: Keys under C(<job>/) that are not in a dated folder; retention never touches them.
  returned: always
  type: list
  elements: str
bytes_freed:
  description:
    - Bytes of the objects deleted (that would be deleted in check mode), the sets' and the shared objects'; on a
      store with O(storage.object_lock), every version of them (a locked key is not counted).
  returned: always
  type: int
bytes_hidden:
  description:
    - On a versioned S3 bucket without O(storage.object_lock), the bytes of the keys deleted, which S3 still stores
      as noncurrent versions behind delete markers until a lifecycle rule removes them; C(bytes_freed) is then 0,
      and a warning says why. 0 elsewhere, and where the credential may not read the bucket's versioning
      (C(s3:GetBucketVersioning)).
  returned: always
  type: int
locked:
  description:
    - Keys of deleted sets or unreferenced shared objects that were not deleted because a version of theirs is
      still locked (O(storage.object_lock)), with C(locked_until); a later run deletes them. Never an error.
  returned: always
  type: list
  elements: dict
  sample: [{key: github/2026-11-01/runs/20261101T020000Z_5f3a_github-acme.success.json,
            locked_until: "2026-12-08T02:00:01Z"}]
objects:
  description:
    - The shared objects under C(<job>/objects/) (artifacts stored once and referenced by sets) -
      C(referenced) (by a kept set), C(young) (referenced by no kept set, but less than a day old; left for a later
      run), C(deleted) (that would be deleted in check mode), C(bytes) (theirs and their checksum records'),
      C(keys) (the first 100 deleted), C(blocked) (why none was deleted, or null) and C(deletion_record).
  returned: always
  type: dict
  sample: {referenced: 35, young: 0, deleted: 2, bytes: 1048576, keys: [github/objects/app_20261101T020000Z.tar.gz],
           blocked: null, deletion_record: github/deletions/20261207T020000Z_5f3a.objects.json}
errors:
  description: Keys that could not be deleted, with the error.
  returned: always
  type: list
  elements: dict
api_requests:
  description: Storage API calls made, by operation (S3 only).
  returned: always
  type: dict
  sample: {ListObjectsV2: 10, DeleteObjects: 4}
"""

from ansible_collections.corebackup.backup.plugins.module_utils._lease import job_lease
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._retention import (
    RULES,
    check_policy,
    retention_plan,
    sweep_plan,
    write_deletion_records,
    write_object_deletion_record,
)


def _line(entry):
    return "%s %-8s %12d bytes  %s\n" % (entry["date"], entry["status"], entry["size"], "; ".join(entry["reasons"]))


# Keys per deletion call: S3's DeleteObjects takes at most 1,000.
DELETE_BATCH = 1000


def _delete(module, backend, batch, errors, locked):
    """Delete one batch of (key, size) (in check mode, nothing); the bytes freed. Keys still locked (S3 Object
    Lock) are not deleted, and not errors: they are added to ``locked`` for a later run."""
    if not batch:
        return 0
    if module.check_mode:
        return sum(size for _key, size in batch)
    result = backend.delete_many([key for key, _size in batch])
    errors.extend(result.errors)
    locked.extend(result.locked)
    kept = {error["key"] for error in result.errors} | {entry["key"] for entry in result.locked}
    return sum(size for key, size in batch if key not in kept)


def _delete_all(module, backend, doomed, errors, locked):
    """Delete (key, size) pairs DELETE_BATCH at a time; the bytes freed."""
    freed, batch = 0, []
    for key, size in doomed:
        batch.append((key, size))
        if len(batch) == DELETE_BATCH:
            freed += _delete(module, backend, batch, errors, locked)
            batch = []
    return freed + _delete(module, backend, batch, errors, locked)


def run(module):
    params = module.params
    job = module.job
    policy = {name: params[name] for name in RULES + ("min_keep",)}
    check_policy(policy)  # refuse an empty or negative policy before touching the store
    if params["lock_timeout"] < 0:
        module.fail("lock_timeout must be 0 (do not wait) or more seconds, got %d" % params["lock_timeout"])
    backend = module.backend
    backend.check_root()
    with job_lease(backend, job, params["lock_timeout"], dry_run=module.check_mode) as lease:
        output, errors = prune(module, backend, job, policy)
    output["api_requests"] = dict(getattr(backend, "requests", {}))  # the lease's release included
    if lease is not None and lease.lost:
        module.warn(lease.lost)
    if module.module._diff:  # pylint: disable=protected-access
        kept, deleted = output["kept"], output["deleted"]
        before = sorted(kept + deleted, key=lambda e: e["date"], reverse=True)
        output["diff"] = {"before_header": "%s (%d sets)" % (job, len(before)),
                          "after_header": "%s (%d sets)" % (job, len(kept)),
                          "before": "".join(_line(e) for e in before), "after": "".join(_line(e) for e in kept)}
    if errors:
        module.fail("could not delete %d key(s): %s" % (
            len(errors), "; ".join("%s: %s" % (e["key"], e["error"]) for e in errors[:10])), **output)
    module.exit(**output)


def prune(module, backend, job, policy):
    """The sets, then the shared objects no kept set references: (the result, the keys that could not be deleted)."""
    params = module.params
    found = retention_plan(backend, job, policy, params["delete_unmanifested"], keep_removed_days=params["keep_removed_days"])
    try:
        kept, deleted = found.entries(keep=True), found.entries(keep=False)
        errors, locked = [], []
        sweep = sweep_plan(backend, job, found, module.now)
        records = [] if module.check_mode else write_deletion_records(backend, job, found, policy, module.now)
        bytes_freed = _delete_all(module, backend, found.doomed_objects(), errors, locked)
        objects = dict(sweep.summary(), deletion_record=None)
        if not errors and sweep.doomed:
            if not module.check_mode:
                objects["deletion_record"] = write_object_deletion_record(backend, job, sweep, module.now)
            bytes_freed += _delete_all(module, backend, sweep.doomed, errors, locked)
        elif errors and sweep.doomed:
            objects.update(deleted=0, bytes=0, keys=[], blocked="nothing under objects/ was deleted: some keys of the "
                           "sets could not be deleted")
    finally:
        found.spool.close()
    if sweep.blocked:
        module.warn(sweep.blocked)
    bytes_hidden, hides = 0, backend.deletes_hide() if bytes_freed else None
    if hides:
        # The keys are gone from the listing, their bytes are not: freed is what is no longer stored.
        module.warn("%d bytes were deleted but are still stored: %s" % (bytes_freed, hides))
        bytes_hidden, bytes_freed = bytes_freed, 0
    output = dict(
        changed=bool(deleted) or bool(objects["deleted"]), kept=kept, deleted=deleted, deletion_records=records,
        ignored=found.ignored, errors=errors, locked=locked, bytes_freed=bytes_freed, bytes_hidden=bytes_hidden,
        objects=objects,
        removed_items=found.removed,
        unmanifested=[date for date, summary in sorted(found.sets.items()) if summary.status is None],
    )
    return output, errors


def argument_spec():
    return dict(
        keep_days=dict(type="int", default=30),
        keep_last=dict(type="int"),
        keep_daily=dict(type="int"),
        keep_weekly=dict(type="int"),
        keep_monthly=dict(type="int"),
        keep_yearly=dict(type="int"),
        min_keep=dict(type="int", default=1),
        keep_removed_days=dict(type="int", default=365),
        lock_timeout=dict(type="int", default=0),
        delete_unmanifested=dict(type="bool", default=False),
    )


def main():
    module = BackupModule(argument_spec=argument_spec())
    module.run(run)


if __name__ == "__main__":
    main()
