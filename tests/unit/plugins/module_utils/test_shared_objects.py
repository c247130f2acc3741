# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Storage by reference against a reference model: random histories of a source (changes, failures, items removed
upstream and back, packing changes, retention policies) run through the service runner and ``backup_retention`` on
a real filesystem store, one simulated day after another. After every run:

- every set that is not gone lists exactly what the model says that day's runs backed up, and every item restores
  (its object's bytes, checked against the recorded sha256 and unpacked) to the content the source had that day;
- nothing under ``<job>/objects/`` that no remaining set references is older than a day (the sweep's grace);
- an unchanged item is never stored twice: the objects hold one artifact per (item, content, packing) the kept
  sets need.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import os
import tempfile

import pytest
from ansible.module_utils.testing import patch_module_args
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError
from ansible_collections.corebackup.backup.plugins.module_utils._layout import NOW_ENV, ArtifactKey, objects_prefix
from ansible_collections.corebackup.backup.plugins.module_utils._module import BackupModule
from ansible_collections.corebackup.backup.plugins.module_utils._records import read_set
from ansible_collections.corebackup.backup.plugins.module_utils._service import Item, Service, ServiceRunner
from ansible_collections.corebackup.backup.plugins.module_utils._sets import iter_sets
from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend
from ansible_collections.corebackup.backup.plugins.modules import backup_retention

JOB = "model"
START = datetime.datetime(2026, 3, 1, 2, 0, tzinfo=datetime.timezone.utc)
NAMES = ("a", "b", "c", "d")


class World:
    """The source on the day being backed up: {name: content}, and the items that fail today."""

    items: dict = {}
    failing: set = set()


class ModelService(Service):
    item_kind = "things"

    def discover(self):
        return [Item(name) for name in sorted(World.items)]

    def source(self):
        return {"type": "model", "name": "world"}

    def unchanged(self, item, recorded, entry):
        if item.name in World.failing:
            raise BackupError("%s cannot be read today" % item.name)
        return recorded.get("digest") == hashlib.sha256(World.items[item.name]).hexdigest()

    def produce(self, item, recorded, entry):
        if item.name in World.failing:
            raise BackupError("%s fails today" % item.name)
        content = World.items[item.name]
        return self.store(item, "bin", [content], {"digest": hashlib.sha256(content).hexdigest()})


def run_module(main, args, when, **spec):
    """Run ``main`` in a BackupModule at ``when``."""
    os.environ[NOW_ENV] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        with patch_module_args(args), pytest.raises(SystemExit):
            BackupModule(**spec).run(main)
    finally:
        del os.environ[NOW_ENV]


def backup(store, when, compression, capsys):
    args = {"job": JOB, "storage": {"type": "filesystem", "path": store}, "fail_on_error": False,
            "compression": compression}
    run_module(lambda m: ServiceRunner(m, ModelService(m)).run(), args, when, packing=True)
    return json.loads(capsys.readouterr().out)


def prune(store, when, policy, capsys):
    args = dict({"job": JOB, "storage": {"type": "filesystem", "path": store}}, **policy)
    run_module(backup_retention.run, args, when, argument_spec=backup_retention.argument_spec())
    return json.loads(capsys.readouterr().out)


def restored(backend, artifact):
    """The item's content from its object, checked against the recorded size and sha256."""
    data = backend.read_bytes(artifact["key"])
    assert len(data) == artifact["size"] and hashlib.sha256(data).hexdigest() == artifact["sha256"], artifact["key"]
    return gzip.decompress(data) if artifact["compression"] == "gzip" else data


NO_EXPLAIN = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)
step = st.fixed_dictionaries({
    "gap": st.integers(min_value=1, max_value=3),  # days since the previous run
    "change": st.sets(st.sampled_from(NAMES), max_size=2),  # new content upstream
    "remove": st.sets(st.sampled_from(NAMES), max_size=1),  # deleted upstream (back later when changed)
    "fail": st.sets(st.sampled_from(NAMES), max_size=2),  # cannot be read today
    "repack": st.booleans(),  # compression switched: nothing already stored can be referenced
    "prune": st.booleans(),
})
policies = st.fixed_dictionaries({
    "keep_days": st.sampled_from([1, 2, 4]),
    "keep_last": st.sampled_from([None, 1, 2]),
    "keep_weekly": st.sampled_from([None, 1]),
    "min_keep": st.sampled_from([1, 2]),
    "keep_removed_days": st.sampled_from([0, 3]),
})


@settings(max_examples=25, deadline=None, report_multiple_bugs=False, phases=NO_EXPLAIN,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=2, max_size=9), policy=policies)
def test_every_kept_set_restores_what_the_source_held_that_day(capsys, steps, policy):
    with tempfile.TemporaryDirectory() as store:
        backend = FilesystemBackend(store)
        world = {name: b"%s v0\n" % name.encode() for name in NAMES}
        versions = {name: 0 for name in NAMES}
        expected = {}  # set date -> {item: content} that day's runs backed up
        when, compression = START, "gzip"
        for number, today in enumerate(steps):
            when += datetime.timedelta(days=today["gap"])
            for name in sorted(today["change"]):
                versions[name] += 1
                world[name] = b"%s v%d\n" % (name.encode(), versions[name]) * versions[name]
            if today["repack"]:
                compression = "none" if compression == "gzip" else "gzip"
            World.items = {n: c for n, c in world.items() if n not in today["remove"] or n in today["change"]}
            World.failing = set(today["fail"]) & set(World.items)
            if not World.items.keys() - World.failing:
                World.failing = set()  # a run whose every item fails records nothing: covered elsewhere
            result = backup(store, when, compression, capsys)
            statuses = {e["name"]: e["status"] for e in result["entries"]}
            assert {n for n, s in statuses.items() if s == "failed"} == World.failing, result
            day = when.date().isoformat()
            expected.setdefault(day, {}).update({n: World.items[n] for n in World.items if n not in World.failing})
            pruned = today["prune"] or number == len(steps) - 1
            if pruned:
                result = prune(store, when + datetime.timedelta(hours=1), policy, capsys)
                assert not result.get("failed"), result
                assert result["objects"]["blocked"] is None
            check_store(backend, expected, when, swept=pruned, repacked=any(s["repack"] for s in steps))


def check_store(backend, expected, when, swept, repacked):
    referenced = set()
    sets = list(iter_sets(backend, JOB))
    assert sets, "retention never deletes the newest successful set"
    for backup_set in sets:
        records = read_set(backend, backup_set)
        items = records.items()
        assert set(items) == set(expected[backup_set.date]), backup_set.date
        for name, item in items.items():
            assert restored(backend, item["artifact"]) == expected[backup_set.date][name], (backup_set.date, name)
            referenced.add(item["key"])
            assert item["key"].startswith(objects_prefix(JOB))
    stored = {}
    for obj in backend.list(objects_prefix(JOB)):
        if "/checksums/" not in obj.key:
            stored[obj.key] = ArtifactKey.parse(obj.key)
    for key, parsed in stored.items():
        if swept and key not in referenced:
            assert when - parsed.timestamp < datetime.timedelta(days=1) + datetime.timedelta(hours=1), (
                "%s is referenced by no set and older than a day" % key)
    if repacked:
        return  # an older artifact packed as today's again is not looked for: the newest one decides
    # Stored once: no two objects of an item hold the same bytes.
    digests = {}
    for key, parsed in stored.items():
        digest = hashlib.sha256(backend.read_bytes(key)).hexdigest()
        assert (parsed.name, digest) not in digests, "%s stores the bytes of %s again" % (key, digests.get((parsed.name, digest)))
        digests[(parsed.name, digest)] = key


def test_objects_an_artifact_requires_are_kept_listed_and_checked_with_it(tmp_path, capsys):
    """An incremental artifact needs the earlier ones of its chain: a set holding it keeps them from the sweep, names
    them in SHA256SUMS, and is not recorded complete without them."""
    from ansible_collections.corebackup.backup.plugins.module_utils import _manifest as m
    from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter
    from ansible_collections.corebackup.backup.plugins.module_utils._record import incomplete

    backend = FilesystemBackend(str(tmp_path))
    writer = ArtifactWriter(backend, "none")
    day = [START + datetime.timedelta(days=n) for n in range(4)]
    base = writer.store(JOB, "repo", "bundle", [b"full" * 1000], when=day[0])
    delta = writer.store(JOB, "repo", "bundle", [b"delta"], when=day[1])
    needed = {"key": base.key, "size": base.size, "sha256": base.sha256}
    chained = dict(delta.to_dict(), requires=[needed])
    for when, artifact in ((day[0], base.to_dict()), (day[1], chained), (day[2], dict(chained, carried_from=delta.key))):
        run = {"run_id": "r%d" % when.day, "started": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "finished": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": 1.0, "status": "success",
               "source": {"type": "model", "name": "world"}, "artifacts": [artifact],
               "entries": [{"name": "repo", "status": "backed_up", "key": artifact["key"], "error": None}],
               "counts": {}, "warnings": [], "errors": [], "tools": {}}
        m.record_run(backend, JOB, when.date().isoformat(), run)
    sums = backend.read_bytes("%s/%s/SHA256SUMS" % (JOB, day[2].date().isoformat())).decode()
    assert sums.splitlines() == ["%s  %s" % (a.sha256, a.key.split("/", 1)[1]) for a in (base, delta)]  # key order
    result = prune(str(tmp_path), day[3], {"keep_last": 1, "keep_days": 0, "min_keep": 1}, capsys)
    assert sorted(s["date"] for s in result["deleted"]) == [day[0].date().isoformat(), day[1].date().isoformat()], result
    assert result["objects"]["deleted"] == 0 and result["objects"]["referenced"] == 2, result["objects"]
    [kept] = list(iter_sets(backend, JOB))
    assert set(read_set(backend, kept).objects()) == {base.key, delta.key}
    assert restored(backend, dict(needed, compression="none")) == b"full" * 1000
    # A run naming an artifact whose required object is gone is not complete.
    backend.delete_many([base.key])
    listed = {delta.key: delta.size}
    assert incomplete({"artifacts": [chained], "entries": []}, listed) == ["%s: not in the store" % base.key]
