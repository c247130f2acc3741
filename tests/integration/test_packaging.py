# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection as users get it: built with ansible-galaxy, installed into an empty path, documented, and in the
context of an AWX execution environment."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def clean_env(collections_path):
    """The environment of a user who has only ``collections_path``: no PYTHONPATH to the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH")}
    env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    return env


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(tarball, collections path) after `ansible-galaxy collection build` and `install`."""
    dist = str(tmp_path_factory.mktemp("dist"))
    build = run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", dist, COLLECTION_ROOT])
    assert build.returncode == 0, build.stderr
    tarball = glob.glob(os.path.join(dist, "corebackup-backup-*.tar.gz"))
    assert len(tarball) == 1
    target = str(tmp_path_factory.mktemp("collections"))
    # Only the empty target may count as installed; neither the tree the tests run from (as the
    # working directory or on the collections path) nor anything else.
    env = clean_env(target)
    install = run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "-p", target, tarball[0]],
                  env=env, cwd=dist)
    assert install.returncode == 0, install.stderr
    assert "corebackup.backup:0.1.0 was installed successfully" in install.stdout, install.stdout
    return tarball[0], target


def modules_in(path):
    return sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(path, "plugins", "modules", "*.py")))


def test_tarball_holds_the_code_and_no_build_or_test_output(installed):
    tarball = installed[0]
    assert os.path.basename(tarball) == "corebackup-backup-0.1.0.tar.gz"
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    for needed in ("MANIFEST.json", "FILES.json", "meta/runtime.yml", "plugins/module_utils/_pipeline.py",
                   "plugins/module_utils/_storage.py", "plugins/doc_fragments/common.py", "README.md"):
        assert needed in names
    unwanted = [n for n in names if n.startswith((".venv", ".build", ".demo", "tests/output", ".ci"))
                or "__pycache__" in n or n.endswith(".pyc")]
    assert unwanted == []


def test_installed_core_works_from_the_installed_path(installed, tmp_path):
    collections = installed[1]
    manifest = json.load(open(os.path.join(collections, "ansible_collections", "corebackup", "backup", "MANIFEST.json")))
    assert manifest["collection_info"]["namespace"] == "corebackup"
    script = (
        "from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter, bytes_stream\n"
        "from ansible_collections.corebackup.backup.plugins.module_utils._storage_fs import FilesystemBackend\n"
        "import ansible_collections.corebackup.backup.plugins.module_utils._pipeline as p\n"
        "a = ArtifactWriter(FilesystemBackend(%r), 'gzip', 6).store('job', 'n', 'bin', bytes_stream([b'x']))\n"
        "print(p.__file__)\n" % str(tmp_path / "store")
    )
    env = dict(clean_env(collections), PYTHONPATH=collections)
    result = run([sys.executable, "-c", script], env=env, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(collections)


def test_ansible_doc_lists_every_module_without_errors(installed):
    collections = installed[1]
    root = os.path.join(collections, "ansible_collections", "corebackup", "backup")
    env = clean_env(collections)
    listing = run([os.path.join(BIN, "ansible-doc"), "-t", "module", "-l", "--json", "corebackup.backup"],
                  env=env, cwd=collections)
    assert listing.returncode == 0, listing.stderr
    assert "ERROR" not in listing.stderr and "WARNING" not in listing.stderr, listing.stderr
    listed = sorted(name.split(".")[-1] for name in json.loads(listing.stdout or "{}"))
    assert listed == modules_in(root)
    for name in listed:
        doc = run([os.path.join(BIN, "ansible-doc"), "-t", "module", "corebackup.backup." + name],
                  env=env, cwd=collections)
        assert doc.returncode == 0 and "ERROR" not in doc.stderr, doc.stderr


def storage_modules(path):
    """The modules that take the shared storage options (their documentation extends corebackup.backup.common)."""
    found = []
    for name in modules_in(path):
        with open(os.path.join(path, "plugins", "modules", name + ".py"), encoding="utf-8") as handle:
            if "  - corebackup.backup.common\n" in handle.read():
                found.append(name)
    return found


def test_action_group_lists_every_module_that_takes_the_storage_options():
    with open(os.path.join(COLLECTION_ROOT, "meta", "runtime.yml"), encoding="utf-8") as handle:
        runtime = yaml.safe_load(handle)
    assert runtime["requires_ansible"] == ">=2.16.0"
    group = sorted(runtime["action_groups"]["backup"])
    assert group == storage_modules(COLLECTION_ROOT)
    assert {"files_backup", "github_backup", "mongo_dump", "volume_snapshot", "backup_manifest"} <= set(group)


def test_the_installed_collection_runs_the_backup_playbook_by_its_name(installed, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "file").write_text("data\n")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"backup_hosts": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    settings = {"backup_storages": {"local": {"type": "filesystem", "path": str(tmp_path / "store")}},
                "backup_jobs": [{"name": "installed", "service": "files", "storage": "local",
                                 "retention": {"keep_days": 7}, "options": {"paths": [str(source)]}}]}
    (tmp_path / "vars.json").write_text(json.dumps(settings))
    play = run([os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), "corebackup.backup.backup",
                "-e", "@" + str(tmp_path / "vars.json")], env=clean_env(installed[1]), cwd=str(tmp_path))
    assert play.returncode == 0, play.stdout[-3000:] + play.stderr[-3000:]
    assert "installed: success, 1 artifact(s)" in play.stdout
    assert os.listdir(str(tmp_path / "store" / "installed"))


def test_ansible_builder_makes_a_context_that_installs_the_collection_from_the_local_tarball(installed, tmp_path):
    """The shipped execution-environment.yml, unchanged, beside what it names as a checkout has it and the tarball
    where `ansible-galaxy collection build` leaves it; no image is built (no registry here)."""
    with open(os.path.join(COLLECTION_ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        version = yaml.safe_load(handle)["version"]
    tarball = "corebackup-backup-%s.tar.gz" % version
    assert os.path.basename(installed[0]) == tarball
    checkout = tmp_path / "checkout"
    (checkout / "meta").mkdir(parents=True)
    for name in ("execution-environment.yml", "bindep.txt", "meta/ee-galaxy.yml", "meta/ee-requirements.txt"):
        shutil.copy(os.path.join(COLLECTION_ROOT, name), str(checkout / name))
    shutil.copy(installed[0], str(checkout / tarball))
    context = tmp_path / "context"
    create = run([os.path.join(BIN, "ansible-builder"), "create", "-f", str(checkout / "execution-environment.yml"),
                  "--context", str(context)], cwd=str(tmp_path))
    assert create.returncode == 0, create.stdout + create.stderr
    assert "No matches" not in create.stdout + create.stderr  # every additional build file was found
    build = context / "_build"
    with open(installed[0], "rb") as built, open(str(build / "collections" / tarball), "rb") as copied:
        assert copied.read() == built.read()
    for name, shipped in (("requirements.txt", "meta/ee-requirements.txt"), ("bindep.txt", "bindep.txt"),
                          ("requirements.yml", "meta/ee-galaxy.yml")):
        with open(os.path.join(COLLECTION_ROOT, shipped), encoding="utf-8") as handle:
            assert (build / name).read_text() == handle.read()
    # The Python libraries of the image are those of the backup hosts (comments aside).
    with open(os.path.join(COLLECTION_ROOT, "requirements.txt"), encoding="utf-8") as one, \
            open(os.path.join(COLLECTION_ROOT, "meta", "ee-requirements.txt"), encoding="utf-8") as other:
        assert [line for line in one if not line.startswith("#")] == [line for line in other if not line.startswith("#")]
    [containerfile] = [path for path in (context / "Containerfile", context / "Dockerfile") if path.exists()]
    steps = containerfile.read_text().splitlines()
    # The galaxy stage copies _build to /build and installs what requirements.yml names, from there.
    assert "COPY _build /build" in steps and "WORKDIR /build" in steps
    installs = [step for step in steps if "ansible-galaxy collection install" in step]
    assert len(installs) == 1 and " -r requirements.yml " in installs[0], installs
    requirements = yaml.safe_load((build / "requirements.yml").read_text())
    assert requirements == {"collections": [{"name": "collections/" + tarball, "type": "file"}]}
    # That step, run here as the image build runs it (in /build, which is _build), with every Galaxy server out of
    # reach: it installs this collection from the local file.
    target = tmp_path / "image-collections"
    env = dict(clean_env(str(target)), ANSIBLE_GALAXY_SERVER="http://127.0.0.1:9/", ANSIBLE_GALAXY_DISABLE_GPG_VERIFY="1",
               ANSIBLE_HOME=str(tmp_path / "ansible-home"))
    install = run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "-r", "requirements.yml",
                   "--collections-path", str(target)], cwd=str(build), env=env)
    assert install.returncode == 0, install.stdout + install.stderr
    assert "corebackup.backup:%s was installed successfully" % version in install.stdout
    assert modules_in(str(target / "ansible_collections" / "corebackup" / "backup")) == modules_in(COLLECTION_ROOT)
