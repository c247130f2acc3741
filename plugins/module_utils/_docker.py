# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The Docker engine, as volume_snapshot and backup_restore reach it, and the helper containers they use.

A helper container is created (never started) with a volume mounted, so that the archive API reads or
writes the volume; the engine may be remote and its data directory is never touched.
"""

from __future__ import annotations

import os
import typing as t
import uuid

from ansible.module_utils.basic import env_fallback

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError

try:
    import docker
    import docker.errors
    import docker.tls
    from docker.types import Mount
    HAS_DOCKER = True
    DOCKER_IMP_ERR = None
except ImportError as _imp_exc:  # pragma: no cover - depends on the host
    HAS_DOCKER = False
    DOCKER_IMP_ERR = _imp_exc

HELPER_LABEL = "corebackup.helper"
MOUNT_ROOT = "/corebackup"

# The connection options both modules take (documented in each).
CONNECTION_SPEC = dict(
    docker_host=dict(type="str", default="unix:///var/run/docker.sock", fallback=(env_fallback, ["DOCKER_HOST"])),
    tls=dict(type="bool", default=False, fallback=(env_fallback, ["DOCKER_TLS"])),
    validate_certs=dict(type="bool", default=False, fallback=(env_fallback, ["DOCKER_TLS_VERIFY"])),
    ca_path=dict(type="path"),
    client_cert=dict(type="path"),
    client_key=dict(type="path", no_log=False),
    api_version=dict(type="str", default="auto"),
)


def connect(params: dict, timeout: int = 60) -> t.Any:
    """A DockerClient for the connection options; BackupError when the engine cannot be reached."""
    if not HAS_DOCKER:
        raise BackupError("this module needs the docker Python library on the host: %s" % DOCKER_IMP_ERR)
    tls = None
    if params.get("tls") or params.get("validate_certs"):
        certs = os.environ.get("DOCKER_CERT_PATH") or ""
        cert = params.get("client_cert") or (os.path.join(certs, "cert.pem") if certs else None)
        key = params.get("client_key") or (os.path.join(certs, "key.pem") if certs else None)
        tls = docker.tls.TLSConfig(client_cert=(cert, key) if cert else None, verify=params.get("validate_certs"),
                                   ca_cert=params.get("ca_path") or (os.path.join(certs, "ca.pem") if certs else None))
    try:
        client = docker.DockerClient(base_url=params["docker_host"], version=params.get("api_version") or "auto",
                                     tls=tls, timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise BackupError("cannot reach the Docker engine at %s: %s" % (params["docker_host"], exc)) from None
    return client


def helper(client: t.Any, image: str, source: str, kind: str = "volume", read_only: bool = True,
           label: str = "corebackup") -> tuple[t.Any, str]:
    """A helper container (never started) with ``source`` mounted; (container, where it is mounted)."""
    target = "%s/%s" % (MOUNT_ROOT, uuid.uuid4().hex[:12])
    mount = Mount(target, source, type=kind, read_only=read_only)
    container = client.containers.create(image, command=["true"], mounts=[mount], network_mode="none",
                                         labels={HELPER_LABEL: label})
    return container, target
