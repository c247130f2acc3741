# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The retention policy against an independent reference implementation, for random histories."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.corebackup.backup.plugins.module_utils._retention import RULES, PolicyError, judge_sets, retention_plan
from ansible_collections.corebackup.backup.plugins.module_utils._storage import StorageError, StoredObject

START = datetime.date(2023, 1, 1)
STATUSES = ["success", "success", "success", "partial", "failed", None]


def reference(history, policy, delete_unmanifested):
    """The dates kept, computed rule by rule as sets of dates (not the module's single pass)."""
    ok = sorted((d for d, s in history if s == "success"), reverse=True)
    if not ok:
        return {d for d, _s in history}
    anchor = ok[0]
    days = policy.get("keep_days") or 0
    keep = {anchor}
    keep |= {d for d in ok if (anchor - d).days < days}
    keep |= set(ok[:policy.get("keep_last") or 0])
    periods = {
        "keep_daily": lambda d: (d.year, d.month, d.day),
        "keep_weekly": lambda d: (d.isocalendar()[0], d.isocalendar()[1]),
        "keep_monthly": lambda d: (d.year, d.month),
        "keep_yearly": lambda d: (d.year,),
    }
    for rule, period in periods.items():
        newest_periods = sorted({period(d) for d in ok}, reverse=True)[:policy.get(rule) or 0]
        keep |= {max(d for d in ok if period(d) == p) for p in newest_periods}
    missing = (policy.get("min_keep") or 0) - len(keep)
    keep |= set([d for d in ok if d not in keep][:max(0, missing)])
    for date, status in history:
        if status in ("partial", "failed") and (date > anchor or (anchor - date).days < days):
            keep.add(date)
        if status is None and not (delete_unmanifested and date < anchor):
            keep.add(date)
    return keep


small = st.one_of(st.none(), st.integers(min_value=0, max_value=12))
policies = st.fixed_dictionaries({
    "keep_days": st.one_of(st.none(), st.integers(min_value=0, max_value=120)),
    "keep_last": small, "keep_daily": small, "keep_weekly": small, "keep_monthly": small, "keep_yearly": small,
    "min_keep": st.integers(min_value=0, max_value=8),
}).filter(lambda p: any(p[rule] for rule in RULES))
histories = st.dictionaries(st.integers(min_value=0, max_value=1200), st.sampled_from(STATUSES), max_size=80).map(
    lambda days: [(START + datetime.timedelta(days=offset), status) for offset, status in days.items()])


@settings(max_examples=400, deadline=None)
@given(histories, policies, st.booleans())
def test_policy_equals_the_reference_and_keeps_its_promises(history, policy, delete_unmanifested):
    decisions = judge_sets(history, policy, delete_unmanifested=delete_unmanifested)
    kept = {d.date for d in decisions if d.keep}
    assert kept == reference(history, policy, delete_unmanifested)
    assert sorted(d.date for d in decisions) == sorted(date for date, _s in history)
    successful = sorted((date for date, status in history if status == "success"), reverse=True)
    if successful:
        assert successful[0] in kept  # the newest successful set is never deleted
    assert len(kept & set(successful)) >= min(policy["min_keep"], len(successful))
    for decision in decisions:
        assert decision.reasons  # every set says why it is kept or deleted


def test_a_stopped_job_keeps_its_last_sets():
    """keep_days counts from the newest successful set: a job that stopped a year ago keeps its last month."""
    history = [(START + datetime.timedelta(days=n), "success") for n in range(60)]
    kept = [d.date for d in judge_sets(history, {"keep_days": 30}) if d.keep]
    assert len(kept) == 30 and max(kept) == START + datetime.timedelta(days=59)


def test_partial_and_failed_sets_do_not_count_toward_keep_last():
    history = [(START + datetime.timedelta(days=n), status)
               for n, status in enumerate(["success", "success", "partial", "failed", "success"])]
    decisions = {d.date: d for d in judge_sets(history, {"keep_days": 0, "keep_last": 2, "min_keep": 0})}
    assert [d.status for d in decisions.values() if d.keep and d.status == "success"] == ["success", "success"]
    assert decisions[START + datetime.timedelta(days=1)].keep  # second newest successful set
    assert not decisions[START + datetime.timedelta(days=2)].keep  # partial, older than the newest success
    assert not decisions[START].keep


def test_without_any_successful_set_nothing_is_deleted():
    history = [(START + datetime.timedelta(days=n), "failed") for n in range(40)] + [(START - datetime.timedelta(days=1), None)]
    assert all(d.keep for d in judge_sets(history, {"keep_last": 1}, delete_unmanifested=True))


@pytest.mark.parametrize("policy, message", [
    ({}, "policy is empty"),
    ({"keep_days": 0, "keep_last": 0}, "policy is empty"),
    ({"keep_days": None, "min_keep": 5}, "policy is empty"),
    ({"keep_last": -1}, "keep_last must be a whole number"),
])
def test_empty_or_negative_policy_is_refused(policy, message):
    with pytest.raises(PolicyError, match=message):
        judge_sets([(START, "success")], policy)


class ListingOnly:
    """A store that can list and refuses every read: planning reads nothing but run records (whose items and
    shared objects it needs), and a store that refuses them leaves the plan of the sets unchanged."""

    def __init__(self, keys):
        self.keys = sorted(keys)
        self.prefixes = []
        self.read = []

    def read_bytes(self, key):
        self.read.append(key)
        raise StorageError("%s: refused" % key)

    def list(self, prefix=""):
        self.prefixes.append(prefix)
        return iter([StoredObject(key=key, size=len(key)) for key in self.keys if key.startswith(prefix)])


segment = st.text(alphabet="abcjob-_0123456789.", min_size=1, max_size=12)
stray_keys = st.lists(st.builds(lambda a, b, c: "%s/%s/%s" % (a, b, c), segment, segment, segment), max_size=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, stray_keys, policies)
def test_nothing_outside_the_jobs_dated_folders_is_planned_for_deletion(history, strays, policy):
    keys = list(strays)
    for date, status in history:
        folder = "job/%s/" % date.isoformat()
        keys.append(folder + "repo_%sT000000Z.tar.gz" % date.strftime("%Y%m%d"))
        keys.append("job-2/%s/other_%sT000000Z.tar.gz" % (date.isoformat(), date.strftime("%Y%m%d")))
        if status:
            keys.append(folder + "runs/%sT010000Z_r1_github-acme.%s.json" % (date.strftime("%Y%m%d"), status))
            keys.append(folder + "manifest.json")
    store = ListingOnly(set(keys))
    planned = retention_plan(store, "job", policy)
    assert sorted(store.prefixes) == ["job/", "job/deletions/"]  # the sets, and the deletion records
    assert all("/runs/" in key or key.endswith("/manifest.json") for key in store.read), store.read
    deleted_dates = {d.date.isoformat() for d in planned.decisions if not d.keep}
    for key in planned.doomed:
        job, date, _rest = key.split("/", 2)
        assert job == "job" and date in deleted_dates
    assert set(planned.ignored) == {k for k in keys if k.startswith("job/") and not k.startswith("job/deletions/")} - {
        k for k in keys if k.startswith("job/") and k.split("/")[1] in planned.sets}


def removed_reference(history, contents, keep_removed_days):
    """Dates kept for items that disappeared, from the rule's words: the set with the last artifact of an
    item that no set from the newest successful one on holds, while its absence is younger than N days."""
    ok = sorted((d for d, s in history if s == "success"), reverse=True)
    if not ok or not keep_removed_days:
        return set()
    anchor = ok[0]
    since_anchor = set()
    for date, names in contents.items():
        if date >= anchor:
            since_anchor |= names
    keep = set()
    for name in set().union(*contents.values()) - since_anchor:
        last = max(d for d, names in contents.items() if name in names)
        first_missing = min(d for d in ok if d > last)
        if (anchor - first_missing).days < keep_removed_days:
            keep.add(last)
    return keep


histories_with_items = histories.flatmap(lambda history: st.tuples(
    st.just(history),
    st.fixed_dictionaries({date: st.sets(st.sampled_from("abcde"), max_size=5) for date, _s in history})))


@settings(max_examples=300, deadline=None)
@given(histories_with_items, policies, st.integers(min_value=0, max_value=400))
def test_the_last_artifact_of_a_removed_item_is_kept(history_and_contents, policy, keep_removed_days):
    history, contents = history_and_contents
    decisions = judge_sets(history, policy, contents=contents, keep_removed_days=keep_removed_days)
    kept = {d.date for d in decisions if d.keep}
    assert kept == reference(history, policy, False) | removed_reference(history, contents, keep_removed_days)


def test_an_item_deleted_upstream_keeps_its_last_set_past_the_policy():
    days = [START + datetime.timedelta(days=n) for n in range(100)]
    history = [(day, "success") for day in days]
    contents = {day: {"app", "tool"} if n < 40 else {"app"} for n, day in enumerate(days)}
    decisions = {d.date: d for d in judge_sets(history, {"keep_days": 7}, contents=contents, keep_removed_days=365)}
    assert decisions[days[39]].keep and decisions[days[39]].reasons == [
        "keep_removed_days: last artifact of tool, in no set since %s" % days[40]]
    assert not decisions[days[38]].keep
    assert not {d.date for d in judge_sets(history, {"keep_days": 7}, contents=contents, keep_removed_days=59)
                if d.keep} & {days[39]}  # gone 59 days after it disappeared
    with pytest.raises(PolicyError, match="keep_removed_days"):
        judge_sets(history, {"keep_days": 7}, contents=contents, keep_removed_days=-1)


def test_a_set_with_a_deletion_record_is_gone_for_readers_and_the_next_run_finishes_deleting_it(tmp_path):
    """A prune killed after its deletion record and some deletes: readers no longer see the set, whatever is left of
    it, and the next retention run deletes the rest even though its policy would keep the set."""
    import hashlib  # pylint: disable=import-outside-toplevel

    from ansible_collections.corebackup.backup.plugins.module_utils import _manifest as m  # pylint: disable=import-outside-toplevel
    from ansible_collections.corebackup.backup.plugins.module_utils import _retention as r  # pylint: disable=import-outside-toplevel
    from ansible_collections.corebackup.backup.plugins.module_utils import _sets as s  # pylint: disable=import-outside-toplevel
    from ansible_collections.corebackup.backup.plugins.module_utils._health import job_health  # pylint: disable=import-outside-toplevel
    from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend  # pylint: disable=import-outside-toplevel

    backend = FilesystemBackend(str(tmp_path))

    def backup(day, hour=2, finished=None):
        data = day.encode()
        key = "job/%s/data_%sT0%d0000Z.bin" % (day, day.replace("-", ""), hour)
        backend.write(key, [data])
        m.record_run(backend, "job", day, {
            "run_id": "r%d" % hour, "started": "%sT0%d:00:00Z" % (day, hour),
            "finished": finished or "%sT0%d:10:00Z" % (day, hour),
            "duration": 600.0, "status": "success", "source": {"type": "files", "name": "host"},
            "artifacts": [{"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}], "counts": {},
            "warnings": [], "errors": [], "tools": {}})

    for day in ("2026-06-01", "2026-06-02", "2026-06-03"):
        backup(day)
    policy = dict({rule: None for rule in RULES}, keep_last=2, min_keep=1)
    plan = retention_plan(backend, "job", policy)
    try:
        written = r.write_deletion_records(backend, "job", plan, policy, datetime.datetime(2026, 6, 3, 5, tzinfo=datetime.timezone.utc))
    finally:
        plan.spool.close()
    [key] = written
    assert key.startswith("job/deletions/20260603T050000Z_") and key.endswith(".2026-06-01.json")
    record = json.loads(backend.read_bytes(key))
    assert (record["set_date"], record["run_ids"], record["keys"] > 0) == ("2026-06-01", ["r2"], True)
    backend.delete_many(["job/2026-06-01/data_20260601T020000Z.bin"])  # killed here: the records are still there

    assert sorted(s.list_sets(backend, "job")[0]) == ["2026-06-02", "2026-06-03"]
    assert s.load_set(backend, "job", "2026-06-01").deletion == key
    assert job_health(backend, "job")["median_sets"] == 1  # the gone set is not one of them

    everything = dict({rule: None for rule in RULES}, keep_days=365, min_keep=1)
    again = retention_plan(backend, "job", everything)
    try:
        [gone] = [d for d in again.decisions if not d.keep]
        assert gone.date == datetime.date(2026, 6, 1) and "finishing its deletion" in gone.reasons[0]
        assert all(k.startswith("job/2026-06-01/") for k in again.doomed) and again.ignored == []
        assert r.write_deletion_records(backend, "job", again, everything, datetime.datetime.now(datetime.timezone.utc)) == []
    finally:
        again.spool.close()

    # recorded into again after the deletion (an import with set_date): it is back
    backup("2026-06-01", hour=6, finished="2026-06-03T06:10:00Z")
    assert "2026-06-01" in s.list_sets(backend, "job")[0]
