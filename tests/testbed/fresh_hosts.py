# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fresh Debian hosts as containers, reached over SSH like real ones.

The image is built here from Debian's packages (mmdebstrap from the Debian mirror, then ``docker import``: no
image registry is reachable) and holds openssh-server, sudo and python3 only, with a user ``deploy`` who may
sudo. The tests' dockerd has no bridge, so each container shares the host's network and runs sshd on a port
of its own on 127.0.0.1. The root file system and a wheelhouse of the backup hosts' Python packages are cached
between test runs (``$XDG_CACHE_HOME/corebackup-tests``), and the containers share a cache of apt's downloads.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import time
import typing as t

from ansible_collections.corebackup.backup.tests.testbed.services import free_port

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("openssh-server", "sudo", "python3")
USER = "deploy"
HOOKS = (
    'chroot "$1" useradd --create-home --shell /bin/bash %s' % USER,
    'echo "%s ALL=(ALL) NOPASSWD:ALL" > "$1/etc/sudoers.d/%s" && chmod 0440 "$1/etc/sudoers.d/%s"' % (USER, USER, USER),
)
# What a container runs: the test's public key for the user, host keys, and sshd on its own port of 127.0.0.1.
START = """set -e
install -d -m 0700 -o {user} -g {user} /home/{user}/.ssh
printf '%s\\n' "$AUTHORIZED_KEY" > /home/{user}/.ssh/authorized_keys
chown {user}: /home/{user}/.ssh/authorized_keys && chmod 0600 /home/{user}/.ssh/authorized_keys
mkdir -p /run/sshd && ssh-keygen -A >/dev/null
exec /usr/sbin/sshd -D -e -p "$SSH_PORT" -o ListenAddress=127.0.0.1 -o PasswordAuthentication=no
""".format(user=USER)


def cache_dir() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(root, "corebackup-tests")
    os.makedirs(path, exist_ok=True)
    return path


def _key(*parts: t.Any) -> str:
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:16]


def debian_rootfs() -> str:
    """A tarball of a minimal Debian (openssh-server, sudo, python3, the user): built once, then cached."""
    path = os.path.join(cache_dir(), "debian-%s-%s.tar" % (SUITE, _key(SUITE, MIRROR, PACKAGES, HOOKS)))
    if not os.path.exists(path):
        argv = ["mmdebstrap", "--variant=apt", "--include=" + ",".join(PACKAGES), "--format=tar"]
        argv += ["--customize-hook=" + hook for hook in HOOKS]
        built = subprocess.run(argv + [SUITE, path + ".part", MIRROR], capture_output=True, text=True, timeout=900,
                               check=False)
        if built.returncode != 0:
            raise RuntimeError("mmdebstrap failed (%d): %s" % (built.returncode, built.stderr[-3000:]))
        os.replace(path + ".part", path)
    return path


def wheelhouse(requirements: t.Sequence[str]) -> str:
    """A folder with wheels of ``requirements`` and their dependencies (for the hosts' Python, the same Debian
    release as this machine's): downloaded once from PyPI, then cached."""
    path = os.path.join(cache_dir(), "wheelhouse-" + _key(sorted(requirements)))
    if not os.path.exists(os.path.join(path, ".complete")):
        os.makedirs(path, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--only-binary=:all:", "--dest", path] + list(requirements), check=True, timeout=900)
        with open(os.path.join(path, ".complete"), "w", encoding="utf-8"):
            pass
    return path


def import_image(client: t.Any, rootfs: str, tag: str = "corebackup-test:debian") -> str:
    repository, _sep, version = tag.partition(":")
    with open(rootfs, "rb") as data:
        client.api.import_image(src=data, repository=repository, tag=version)
    return tag


class Host:
    """A running container with sshd on 127.0.0.1:port, reached as ``deploy`` with ``key``."""

    def __init__(self, client: t.Any, image: str, name: str, key: str, volumes: dict[str, str]):
        self.name = name
        self.key = key
        self.port = free_port()
        with open(key + ".pub", encoding="utf-8") as handle:
            public = handle.read().strip()
        self.container = client.containers.run(
            image, ["/bin/sh", "-c", START], name=name, detach=True, network_mode="host",
            environment={"AUTHORIZED_KEY": public, "SSH_PORT": str(self.port)},
            volumes={source: {"bind": target, "mode": "rw"} for source, target in volumes.items()})
        self.wait_for_ssh()

    def wait_for_ssh(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            probe = subprocess.run(self.ssh_argv() + ["true"], capture_output=True, text=True, check=False)
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("sshd of %s did not answer: %s\n%s" % (
                    self.name, probe.stderr, self.container.logs().decode("utf-8", "replace")))
            time.sleep(0.5)

    def ssh_argv(self) -> list[str]:
        return ["ssh", "-i", self.key, "-p", str(self.port), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                "%s@127.0.0.1" % USER]

    def inventory_vars(self) -> dict[str, t.Any]:
        """How an inventory reaches this host."""
        return {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": self.port,
                "ansible_user": USER, "ansible_ssh_private_key_file": self.key,
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"}

    def root(self, script: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        """``script`` run by root in the container (docker exec), with exactly ``env`` as its environment when
        given (cron's, for example)."""
        argv = ["/bin/sh", "-c", script]
        if env is not None:
            argv = ["env", "-i"] + ["%s=%s" % item for item in env.items()] + argv
        exit_code, output = self.container.exec_run(argv, user="root", demux=True)
        stdout, stderr = output
        return subprocess.CompletedProcess(argv, exit_code, (stdout or b"").decode("utf-8", "replace"),
                                           (stderr or b"").decode("utf-8", "replace"))

    def read(self, path: str) -> str:
        result = self.root("cat %s" % shlex.quote(path))
        if result.returncode != 0:
            raise FileNotFoundError("%s on %s: %s" % (path, self.name, result.stderr))
        return result.stdout

    def remove(self) -> None:
        self.container.remove(force=True)
