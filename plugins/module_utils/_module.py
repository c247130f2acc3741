# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""The wrapper every module of the collection is built on, in the spirit of amazon.aws's
``AnsibleAWSModule`` and community.docker's ``AnsibleDockerClient``.

It wraps ``AnsibleModule`` (it does not subclass it): it merges the shared argument spec, builds the
retry policy, the storage backend and the artifact writer on first use, runs external commands
with retries of transient failures, and turns every expected error (:class:`BackupError`) into a
``fail_json`` with a scrubbed, actionable message. Anything else is a bug: it is reported as an
unexpected error with its traceback, scrubbed too. A module's ``main()`` is then a few lines::

    def main():
        module = BackupModule(argument_spec=dict(...), job_default="files")
        module.run(lambda m: ServiceRunner(m, FilesBackup(m)).run())
"""

from __future__ import annotations

import os
import re
import traceback
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corebackup.backup.plugins.module_utils._common import common_argument_spec
from ansible_collections.corebackup.backup.plugins.module_utils._compress import RunBudget
from ansible_collections.corebackup.backup.plugins.module_utils._errors import BackupError, CommandFailed
from ansible_collections.corebackup.backup.plugins.module_utils._layout import utc_now, validate_job
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter
from ansible_collections.corebackup.backup.plugins.module_utils._retry import RetryPolicy
from ansible_collections.corebackup.backup.plugins.module_utils._secrets import scrub
from ansible_collections.corebackup.backup.plugins.module_utils._storage import PART_MEMORY, backend_from_params

# Failures of external commands that another try may cure: the network, or a server in trouble.
# Never authentication, a missing repository, or anything else a retry cannot change.
TRANSIENT_COMMAND_ERRORS = re.compile(
    r"(?i)connection (reset|refused|timed out)|operation timed out|timed out after|early eof"
    r"|the remote end hung up unexpectedly|rpc failed|unexpected disconnect|empty reply from server"
    r"|transfer closed with outstanding read data|returned error: 5\d\d|http 5\d\d|ssl_error_syscall"
    r"|gnutls_handshake\(\) failed|tls connection was non-properly terminated|could not read from remote")


class BackupModule:
    """An ``AnsibleModule`` with the collection's shared options, objects and error handling."""

    def __init__(self, argument_spec: dict | None = None, job_default: str | None = None, packing: bool = False,
                 storage: bool = True, **kwargs: t.Any):
        """``storage=False`` for a module that does not touch a store (no job, storage or retries options)."""
        spec = common_argument_spec(job_default, packing=packing) if storage else {}
        spec.update(argument_spec or {})
        self.module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self._secrets = {str(v) for v in self.module.no_log_values if v}
        self._retry: RetryPolicy | None = None
        self._backend: t.Any = None
        self._writer: ArtifactWriter | None = None
        self._budget: RunBudget | None = None
        self.now = None

    def derive(self, params: dict) -> "BackupModule":
        """This run with other (already validated) parameters: its AnsibleModule, its secrets (shared: a secret
        either learns is scrubbed by both) and its clock; a pre-restore backup runs a service inside a restore."""
        child = object.__new__(BackupModule)
        child.module = self.module
        child.params = params
        child.check_mode = self.check_mode
        child._secrets = self._secrets  # pylint: disable=protected-access
        child._retry = child._backend = child._writer = child._budget = None  # pylint: disable=protected-access
        child.now = self.now
        return child

    # -- secrets and outcomes ------------------------------------------------------------------
    def add_secret(self, *values: str | None) -> None:
        """Values derived from secrets (an encoded header) that must be scrubbed too."""
        self._secrets.update(v for v in values if v)

    @property
    def secrets(self) -> set:
        """Every secret of the run: the no_log values, and what was derived from them."""
        return self._secrets

    def scrub(self, text: t.Any) -> str:
        return scrub(text, self._secrets)

    def warn(self, message: str) -> None:
        self.module.warn(self.scrub(message))

    def fail(self, msg: str, **result: t.Any) -> t.NoReturn:
        self.module.fail_json(msg=self.scrub(msg), **result)

    def exit(self, **result: t.Any) -> t.NoReturn:
        self.module.exit_json(**result)

    def run(self, main: t.Callable[["BackupModule"], None]) -> None:
        """Run ``main(self)``; expected errors fail with their message, bugs with their traceback."""
        try:
            self.now = utc_now()
            main(self)
        except BackupError as exc:
            self.fail(str(exc))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            self.module.fail_json(msg="unexpected error: %s" % self.scrub(exc),
                                  exception=self.scrub(traceback.format_exc()))

    # -- shared objects, built on first use ----------------------------------------------------
    @property
    def job(self) -> str:
        if not self.params.get("job"):
            raise BackupError("job is required: name the backup job")
        return validate_job(self.params["job"])

    @property
    def retry(self) -> RetryPolicy:
        if self._retry is None:
            try:
                self._retry = RetryPolicy.from_params(self.params.get("retries"))
            except ValueError as exc:
                raise BackupError(str(exc)) from None
        return self._retry

    @property
    def backend(self) -> t.Any:
        if self._backend is None:
            storage = self.params["storage"]
            if storage.get("type") == "filesystem" and storage.get("path") and not os.path.isabs(storage["path"]):
                # Relative to whatever directory Ansible runs the module in: a temporary one, or the user's home.
                raise BackupError("storage.path must be an absolute path, got %r" % storage["path"])
            if storage.get("type") == "s3" and self.run_budget is not None:
                storage = dict(storage, upload_concurrency=self.run_budget.upload_concurrency)
            self._backend = backend_from_params(storage, self.retry)
        return self._backend

    @property
    def run_budget(self) -> RunBudget | None:
        """Threads and buffers of this run (service modules, which write artifacts), shared by its items."""
        if "compression_threads" not in self.params:
            return None
        if self._budget is None:
            for name in ("compression_threads",):
                if self.params[name] is not None and self.params[name] < 1:
                    raise BackupError("%s must be at least 1, got %d" % (name, self.params[name]))
            storage = self.params.get("storage") or {}
            if (storage.get("upload_concurrency") or 1) < 1:
                raise BackupError("storage.upload_concurrency must be at least 1, got %d" % storage["upload_concurrency"])
            self._budget = RunBudget(self.params.get("parallel") or 1, self.params["compression_threads"],
                                     storage.get("upload_concurrency") or 4, PART_MEMORY)
        return self._budget

    @property
    def budget(self) -> dict | None:
        """What the run's budget gives (see ``run_budget`` in _compress), for the result's totals."""
        return self.run_budget.to_dict() if self.run_budget is not None else None

    @property
    def writer(self) -> ArtifactWriter:
        if self._writer is None:
            age = self.module.get_bin_path("age", required=True) if self.params.get("encryption") else None
            self._writer = ArtifactWriter.from_params(self.backend, self.params, age_path=age, threads=self.run_budget)
        return self._writer

    # -- external commands ---------------------------------------------------------------------
    def command(self, argv: list[str], what: str, env: dict | None = None,
                before_retry: t.Callable[[], None] | None = None, data: str | None = None) -> str:
        """Run a command (no shell) and return its stdout; retried while it fails transiently.

        ``env`` is added to the module's environment, ``data`` goes to its standard input. ``before_retry`` clears
        what a failed try left (a half-cloned directory). Raises CommandFailed with the command's last error line.
        """
        def once() -> str:
            rc, out, err = self.module.run_command(argv, environ_update=env or {}, data=data, binary_data=True)
            if rc != 0:
                lines = (err or out or "").strip().splitlines()
                raise CommandFailed("%s failed: %s" % (what, self.scrub(lines[-1] if lines else "exit status %d" % rc)))
            return out

        def transient(exc: BaseException) -> bool:
            if isinstance(exc, CommandFailed) and TRANSIENT_COMMAND_ERRORS.search(str(exc)):
                if before_retry is not None:
                    before_retry()
                return True
            return False

        return self.retry.call(once, is_transient=transient)
