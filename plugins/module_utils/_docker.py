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
import urllib.parse
import uuid

from ansible.module_utils.basic import env_fallback

from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError

try:
    import docker
    import docker.errors
    import docker.tls
    import requests.exceptions
    from docker.types import Mount
    HAS_DOCKER = True
    DOCKER_IMP_ERR = None
    # What a call to the engine raises when it fails: an error answer, or a connection that broke or timed out.
    DOCKER_ERRORS: tuple = (docker.errors.DockerException, requests.exceptions.RequestException)
except ImportError as _imp_exc:  # pragma: no cover - depends on the host
    HAS_DOCKER = False
    DOCKER_IMP_ERR = _imp_exc
    DOCKER_ERRORS = ()

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

# How long a call to the engine may take; volume_snapshot takes it (backup_plan checks jobs against the docker_volume slice's spec).
TIMEOUT_SPEC = dict(
    timeout=dict(type="int", default=60, fallback=(env_fallback, ["DOCKER_TIMEOUT"])),
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
    """A helper container (never started) with ``source`` mounted; (container, where it is mounted).

    It gets a name of its own, so that a helper the engine created although the call failed (its answer,
    or the inspect that follows it, was lost) is removed before the error is raised.
    """
    token = uuid.uuid4().hex[:12]
    target = "%s/%s" % (MOUNT_ROOT, token)
    mount = Mount(target, source, type=kind, read_only=read_only)
    name = "corebackup-helper-" + token
    try:
        container = client.containers.create(image, command=["true"], mounts=[mount], network_mode="none",
                                             labels={HELPER_LABEL: label}, name=name)
    except DOCKER_ERRORS:
        try:
            client.api.remove_container(name, force=True)
        except DOCKER_ERRORS:
            pass  # never created, or the engine is gone: the next run removes helpers by their label
        raise
    return container, target


class ArchiveStream:
    """The tar stream of a path in a container (GET /containers/{id}/archive), with the client's time-out on every read.

    docker-py's ``get_archive`` turns the read time-out off for its stream: an engine that stops sending half-way
    would hang the run for ever, with the containers it quiesced paused or stopped. ``close()`` ends the request
    also when the stream was never read (a store that refused the write): the engine will not remove the container
    while it is being read.
    """

    def __init__(self, client: t.Any, container_id: str, path: str, chunk_size: int = 1 << 20):
        api = client.api
        url = "%s/v%s/containers/%s/archive" % (api.base_url, api.api_version, urllib.parse.quote(container_id, safe=""))
        self.chunk_size = chunk_size
        self.response = api.get(url, params={"path": path}, stream=True, timeout=api.timeout)
        try:
            self.response.raise_for_status()
        except requests.exceptions.HTTPError as exc:
            self.response.close()
            raise docker.errors.create_api_error_from_http_exception(exc) from exc

    def __iter__(self) -> t.Iterator[bytes]:
        try:
            yield from self.response.iter_content(self.chunk_size)
        finally:
            self.close()

    def close(self) -> None:
        self.response.close()
