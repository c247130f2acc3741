#!/usr/bin/python
# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_manifest
short_description: Record, verify and list the backup sets of a job
version_added: 0.1.0
description:
  - A backup set is the dated folder C(<prefix>/<job>/<YYYY-MM-DD>/) of a store. Every fact about it is a record,
    an object written once and never changed - C(runs/<finished>_<run id>_<source>.<status>.json) for each run
    recorded into it (times, status, artifacts with size and sha256, items, counts, warnings and errors, what was
    backed up, tool versions), C(verifications/<time>_<id>.<ok|bad>.json) for each verification and
    C(drills/<time>_<id>.<ok|failed>.json) for each restore drill - so concurrent writers never lose each
    other's facts, and verifying or drilling never rewrites anything.
  - C(manifest.json) and C(SHA256SUMS) beside the records are a view for people (C(sha256sum -c SHA256SUMS) checks
    a downloaded set with standard tools), rewritten from the records after each record is written and never read
    for a decision. A set whose view is missing or damaged is complete if its records are; a view that cannot be
    written is a warning.
  - O(state=present) records one run. Several runs on one day accumulate in one set.
  - O(state=verified) re-reads artifacts, recomputes size and sha256 and fails naming every missing,
    truncated or corrupted artifact. It writes a verification record of what it read, so O(sample) can verify a
    large store in rotating slices over several runs, least recently verified first.
  - O(state=query) lists the sets of a job with status, size and artifacts, to pick one to restore.
  - A set that retention deleted (it has a deletion record C(<job>/deletions/<time>_<id>.<set date>.json)) is gone,
    even while some of its objects are still there.
  - The manifest follows a versioned JSON Schema shipped in the collection. The module writes schema version 5
    (C(schemas/manifest-v5.schema.json)) - each run's artifacts with key, size, sha256 and what they require, their
    C(metadata) and C(contents) left to the run record. The views of earlier releases, version 4
    (C(schemas/manifest-v4.schema.json), artifacts as the run record holds them) and version 3
    (C(schemas/manifest-v3.schema.json), no artifact C(requires)), are replaced like any view. Records and views are
    compact JSON (C(jq .) shows them indented). The records follow C(schemas/verification-record.schema.json)
    and C(schemas/drill-record.schema.json). Sets written by earlier releases, with a manifest of version 2
    (C(schemas/manifest-v2.schema.json)) or 1 (C(schemas/manifest-v1.schema.json)) that holds their verifications
    and drills, are read with them as they are; when a record is written into such a set, that manifest is first
    kept unchanged as C(legacy/manifest.json). A manifest of a newer version than the module knows is never
    rewritten.
author:
  - corebackup.backup contributors (@corebackup)
extends_documentation_fragment:
  - corebackup.backup.common
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: O(state=present) and O(state=verified) read and report but write nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  state:
    description:
      - V(present) records a run, V(verified) re-reads and checks artifacts, V(query) lists sets.
    type: str
    choices: [present, verified, query]
    default: present
  set_date:
    description:
      - Date (V(YYYY-MM-DD), UTC) of the backup set.
      - With O(state=present) it defaults to the day the run started (or, for artifacts an older release stored in
        a set's folder, that set). It can name another day, for example to import backups made by other tools
        into this layout.
      - With O(state=verified) and O(state=query) it limits the work to that set; all sets otherwise.
    type: str
  all_jobs:
    description:
      - With O(state=verified) or O(state=query), every job in the store that has a manifest; O(job) is ignored.
    type: bool
    default: false
  result:
    description:
      - The registered result of a service module such as M(corebackup.backup.github_backup). Artifacts,
        counts (its C(totals)), errors, status and source are taken from it unless given explicitly.
    type: dict
  artifacts:
    description:
      - Artifacts of the run, in the shared Artifact form. Each needs at least C(key) (relative to the
        storage root or prefix), C(size) and C(sha256); C(compression), C(encryption), C(created) and
        C(metadata) are kept when present.
      - Every key must lie under C(<job>/objects/), where the service modules store artifacts (the set references
        them; retention deletes an object only when no kept set references it), or in the set's folder
        C(<job>/<set_date>/), which retention deletes with the set.
    type: list
    elements: dict
  status:
    description:
      - Outcome of the run. Defaults to what O(result) says, or V(success).
    type: str
    choices: [success, partial, failed]
  source:
    description:
      - What was backed up, at least C(type) (V(github), V(mongodb), V(docker_volume), ...) and C(name).
        Defaults to O(result)'s C(source).
    type: dict
  counts:
    description:
      - Item counts of the run (whole numbers), for example repositories or documents.
    type: dict
  warnings:
    description:
      - Warnings of the run. Secrets are scrubbed before they are stored.
    type: list
    elements: str
  errors:
    description:
      - Errors of the run. Secrets are scrubbed before they are stored.
    type: list
    elements: str
  secrets:
    description:
      - Strings that must never be stored, removed from warnings and errors besides what looks like a
        token, password or credential in a URL.
    type: list
    elements: str
  run_id:
    description:
      - Identifier of the run, for example an AWX job id. Recording a run id that the set already holds
        for the same O(source) changes nothing, so a retried task does not record a run twice (it only
        completes the manifest if an earlier attempt stopped half-way). A random id by default.
    type: str
  started:
    description:
      - When the run started (ISO 8601). Defaults to O(finished) minus O(result)'s C(totals.seconds).
    type: str
  finished:
    description:
      - When the run finished (ISO 8601). Defaults to now.
    type: str
  sample:
    description:
      - With O(state=verified), verify at most this many artifacts, those verified least recently first.
    type: int
"""

EXAMPLES = r"""
- name: Back up the organization
  corebackup.backup.github_backup:
    organization: my-org
    storage: "{{ backup_storage }}"
    fail_on_error: false
  register: github

- name: Record the run in today's set
  corebackup.backup.backup_manifest:
    job: github
    storage: "{{ backup_storage }}"
    result: "{{ github }}"
    secrets: ["{{ github_token }}"]

- name: Import an artifact made by another tool into the set of 2024-05-01
  corebackup.backup.backup_manifest:
    job: legacy
    storage: "{{ backup_storage }}"
    set_date: "2024-05-01"
    source: {type: files, name: old-nas}
    artifacts:
      - key: legacy/2024-05-01/nas_20240501T000000Z.tar.gz
        size: 1048576
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

- name: Verify a tenth of every job's artifacts each night
  corebackup.backup.backup_manifest:
    state: verified
    all_jobs: true
    sample: 100
    storage: "{{ backup_storage }}"

- name: List the sets of a job
  corebackup.backup.backup_manifest:
    state: query
    job: github
    storage: "{{ backup_storage }}"
  register: sets
"""

RETURN = r"""
run:
  description: The run recorded (O(state=present)).
  returned: when O(state=present)
  type: dict
  sample: {run_id: 5d0c..., status: success, started: "2026-11-22T02:00:00Z", finished: "2026-11-22T02:10:00Z",
           duration: 600, source: {type: github, name: my-org}, artifacts: [], counts: {backed_up: 30},
           warnings: [], errors: [], tools: {ansible-core: 2.19.0}}
manifest_key:
  description: Key of the set's C(manifest.json).
  returned: when O(state=present)
  type: str
run_key:
  description: Key of the run's own record.
  returned: when O(state=present)
  type: str
set_status:
  description: Status of the set after recording the run (the newest run of each source decides).
  returned: when O(state=present)
  type: str
verified:
  description: Every artifact re-read, with its status V(ok), V(missing), V(truncated) or V(corrupted).
  returned: when O(state=verified)
  type: list
  elements: dict
bad:
  description: The artifacts that are not V(ok), and sets whose manifest could not be read.
  returned: when O(state=verified)
  type: list
  elements: dict
sets:
  description:
    - O(state=query) and O(state=verified), the sets looked at, newest first.
  returned: when O(state=query) or O(state=verified)
  type: list
  elements: dict
  contains:
    job:
      description: The job.
      type: str
    date:
      description: The set's date, V(YYYY-MM-DD).
      type: str
    status:
      description: V(success), V(partial), V(failed) (the newest run of each source decides), or V(unreadable).
      type: str
    size:
      description: Bytes of every object in the set's folder (artifacts, records, manifest).
      type: int
    objects:
      description: Number of objects in the set's folder.
      type: int
    runs:
      description: The runs recorded in the set, oldest first, each with C(run_id), C(status), C(started),
        C(finished), C(source), C(counts) and C(errors).
      type: list
      elements: dict
    artifacts:
      description: Every artifact the set's runs recorded.
      type: list
      elements: dict
    artifact_bytes:
      description: Bytes of every artifact the set's runs recorded.
      type: int
    items:
      description: Number of items a restore of the set restores (one artifact each).
      type: int
    logical_size:
      description:
        - Bytes a restore of the whole set reads - the artifact of each item, carried artifacts (unchanged
          items, stored by an older set and linked or copied into this one) included.
      type: int
    new_size:
      description: The part of RV(sets[].logical_size) this set stored from the source (not carried).
      type: int
    verified_at:
      description: When the whole set was last read back and found intact (O(state=verified) without O(sample),
        or a passing drill); V(null) when never, or when the last check found a problem.
      type: str
    last_verification:
      description:
        - The newest re-reading of the set's artifacts by O(state=verified), V(null) when none was re-read.
        - C(when) (its newest record), C(checked) (artifacts with a record), C(bad) (artifacts whose newest record
          is not V(ok)) and C(artifacts) (artifacts in the set).
      type: dict
    last_drill:
      description: The set's newest restore drill (C(when), C(duration), C(result) V(ok) or V(failed), C(items)),
        V(null) when never drilled.
      type: dict
    problems:
      description: What was wrong reading the set's manifest and run records.
      type: list
      elements: str
"""


from ansible_collections.corebackup.backup.plugins.module_utils._checksum import verify_artifact
from ansible_collections.corebackup.backup.plugins.module_utils._layout import (
    parse_date,
    validate_job,
)
from ansible_collections.corebackup.backup.plugins.module_utils._manifest import refresh_view, tool_versions
from ansible_collections.corebackup.backup.plugins.module_utils._records import (
    RecordError,
    RecordNotWritten,
    not_recorded,
    read_set,
    write_verification,
)
from ansible_collections.corebackup.backup.plugins.module_utils._sets import (
    list_jobs,
    list_sets,
    load_set,
)
from ansible_collections.corebackup.backup.plugins.module_utils._common import COLLECTION_VERSION
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._record import build_run, record_result


class Manifests:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.now = module.now
        self.backend = module.backend

    def fail(self, msg, **extra):
        self.module.fail(msg, **extra)

    def jobs(self):
        if self.params["all_jobs"]:
            return list_jobs(self.backend)
        if not self.params["job"]:
            self.fail("job is required unless all_jobs is true")
        return [validate_job(self.params["job"])]

    def sets(self):
        """[(BackupSet)] in scope, newest first."""
        found = []
        for job in self.jobs():
            if self.params["set_date"]:
                backup_set = load_set(self.backend, job, self.params["set_date"])
                if backup_set.objects and backup_set.deletion is None:
                    found.append(backup_set)
                continue
            found.extend(list_sets(self.backend, job)[0].values())
        return sorted(found, key=lambda s: (s.date, s.job), reverse=True)

    # -- present -------------------------------------------------------------------------------
    def present(self):
        job = self.params["job"] or (self.params["result"] or {}).get("job")
        if not job:
            self.fail("job is required with state=present, unless result names it")
        validate_job(job)
        run = build_run(self.params, self.now)
        recorded = record_result(self.backend, job, run, self.params["set_date"], self.params["secrets"] or [],
                                 self.module.check_mode)
        for warning in recorded.pop("view_warnings"):
            self.module.warn(self.module.scrub(warning))
        self.module.exit(**recorded)

    # -- query ---------------------------------------------------------------------------------
    def describe(self, backup_set, records, problems):
        """A set as O(state=query) returns it, from its records (None when it has no readable run record)."""
        artifacts = list(records.artifacts().values()) if records else []
        sizes = records.sizes() if records else {"items": 0, "logical_size": 0, "new_size": 0}
        return dict(sizes, **{
            "job": backup_set.job, "date": backup_set.date,
            "status": records.status if records else "unreadable",
            "size": backup_set.size, "objects": len(backup_set.objects),
            "runs": [{k: run[k] for k in ("run_id", "status", "started", "finished", "source", "counts", "errors")}
                     for run in records.runs] if records else [],
            "artifacts": artifacts, "artifact_bytes": sum(a["size"] for a in artifacts),
            "verified_at": records.verified_at if records else None, "problems": problems,
            "last_drill": _public(records.last_drill()) if records else None,
            "last_verification": records.last_verification() if records else None,
        })

    def load(self, backup_set):
        try:
            records = read_set(self.backend, backup_set)
        except RecordError as exc:
            return None, [str(exc)]
        return records, records.problems

    def query(self):
        sets = [self.describe(s, *self.load(s)) for s in self.sets()]
        self.module.exit(changed=False, sets=sets)

    # -- verified ------------------------------------------------------------------------------
    def verified(self):
        sample = self.params["sample"]
        if sample is not None and sample < 1:
            self.fail("sample must be 1 or more, got %d" % sample)
        candidates, bad, described = [], [], []
        in_scope = self.sets()
        if not in_scope:
            # A typo in a job name must not look like a clean verification.
            self.fail("nothing to verify: no backup set of %s%s in %s" % (
                "any job" if self.params["all_jobs"] else "job %r" % self.params["job"],
                " on %s" % self.params["set_date"] if self.params["set_date"] else "", self.backend.describe()))
        for backup_set in in_scope:
            records, problems = self.load(backup_set)
            described.append((backup_set, records, problems))
            if records is None:
                bad.append({"job": backup_set.job, "date": backup_set.date, "key": backup_set.prefix + "runs/",
                            "status": "unreadable", "error": problems[0]})
                continue
            checks = records.checks()
            for key, artifact in records.objects().items():  # the artifacts and the objects they require
                last = (checks.get(key) or {}).get("verified_at") or ""
                candidates.append((last, key, backup_set, artifact))
        candidates.sort(key=lambda c: (c[0], c[1]))
        if sample is not None:
            candidates = candidates[:sample]
        results, by_set, seen = [], {}, {}
        for _last, key, backup_set, artifact in candidates:
            outcome = verify_artifact(self.backend, key, artifact["sha256"], artifact["size"], seen).to_dict()
            outcome.update(job=backup_set.job, date=backup_set.date)
            results.append(outcome)
            by_set.setdefault((backup_set.job, backup_set.date), []).append(outcome)
            if outcome["status"] != "ok":
                bad.append(outcome)
        changed = bool(by_set)
        if not self.module.check_mode:
            tools = tool_versions(COLLECTION_VERSION)
            for index, (backup_set, records, problems) in enumerate(described):
                outcomes = by_set.get((backup_set.job, backup_set.date))
                if not outcomes:
                    continue
                # A verification record of this run, written once; the set's view is rewritten after it.
                try:
                    write_verification(self.backend, backup_set, self.now, outcomes, sample is None, tools)
                except RecordNotWritten as exc:
                    self.module.warn(self.module.scrub(not_recorded("verification", exc)))
                    continue
                for warning in refresh_view(self.backend, backup_set.job, backup_set.date):
                    self.module.warn(self.module.scrub(warning))
                reread = load_set(self.backend, backup_set.job, backup_set.date)
                described[index] = (reread, *self.load(reread))
        sets = [self.describe(backup_set, records, problems) for backup_set, records, problems in described]
        output = dict(changed=changed, verified=results, bad=bad, sets=sets)
        if bad:
            self.fail("%d bad: %s" % (len(bad), "; ".join("%s %s" % (b["key"], b["status"]) for b in bad)), **output)
        self.module.exit(**output)

    def run(self):
        if self.params["set_date"]:
            parse_date(self.params["set_date"])
        self.backend.check_root()
        getattr(self, self.params["state"])()


def _public(drill):
    """A drill record as RV(sets[].last_drill) shows it: C(when), C(duration), C(result), C(items)."""
    if drill is None:
        return None
    return {k: drill[k] for k in ("when", "duration", "result", "items")}


def main():
    module = BackupModule(argument_spec=dict(
        state=dict(type="str", choices=["present", "verified", "query"], default="present"),
        set_date=dict(type="str"),
        all_jobs=dict(type="bool", default=False),
        result=dict(type="dict"),
        artifacts=dict(type="list", elements="dict"),
        status=dict(type="str", choices=["success", "partial", "failed"]),
        source=dict(type="dict"),
        counts=dict(type="dict"),
        warnings=dict(type="list", elements="str"),
        errors=dict(type="list", elements="str"),
        secrets=dict(type="list", elements="str", no_log=True),
        run_id=dict(type="str"),
        started=dict(type="str"),
        finished=dict(type="str"),
        sample=dict(type="int"),
    ))
    module.run(lambda m: Manifests(m).run())


if __name__ == "__main__":
    main()
