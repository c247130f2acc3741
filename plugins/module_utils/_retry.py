# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur any time.

"""Jittered exponential backoff for an allow-list of transient errors, shared by every module.

Only errors that a classifier calls transient are retried; everything else is raised at once with
the service's own message. A transient error may carry a ``retry_after`` attribute (seconds, e.g.
from an HTTP ``Retry-After`` or a rate-limit reset); the wait is then at least that long.
"""

from __future__ import annotations

import random
import socket
import time
import typing as t
from dataclasses import dataclass, field

T = t.TypeVar("T")

# Error codes that AWS and S3-compatible services use for throttling or passing server trouble.
TRANSIENT_AWS_CODES = frozenset((
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException", "InternalError", "ServiceUnavailable",
    "RequestTimeout", "RequestTimeoutException",
    "ConditionalRequestConflict",  # S3: a concurrent conditional write; AWS advises to retry
))


@dataclass
class RetryPolicy:
    """How often and how long to retry.

    ``attempts`` counts the first try. Delays grow as ``delay * 2**n`` up to ``max_delay``, with
    full jitter (a random wait between half and all of that), so that parallel workers spread out.
    """

    attempts: int = 5
    delay: float = 1.0
    max_delay: float = 60.0
    sleep: t.Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self):
        if self.attempts < 1:
            raise ValueError("retries.attempts must be at least 1, got %r" % (self.attempts,))
        if self.delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must not be negative")

    @classmethod
    def from_params(cls, params: dict | None) -> "RetryPolicy":
        params = params or {}
        return cls(
            attempts=params.get("attempts", 5),
            delay=params.get("delay", 1.0),
            max_delay=params.get("max_delay", 60.0),
        )

    def backoff(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.delay * (2 ** (retry_number - 1)))
        return self.rng.uniform(ceiling / 2, ceiling)

    def call(
        self,
        func: t.Callable[..., T],
        *args: t.Any,
        is_transient: t.Callable[[BaseException], bool],
        on_retry: t.Callable[[BaseException, int, float], None] | None = None,
        **kwargs: t.Any,
    ) -> T:
        """Call ``func``; retry it while it raises errors that ``is_transient`` allows."""
        retry_number = 0
        while True:
            try:
                return func(*args, **kwargs)
            except Exception as exc:  # pylint: disable=broad-exception-caught
                retry_number += 1
                if retry_number >= self.attempts or not is_transient(exc):
                    raise
                wait = max(self.backoff(retry_number), float(getattr(exc, "retry_after", 0) or 0))
                if on_retry is not None:
                    on_retry(exc, retry_number, wait)
                self.sleep(wait)


def is_transient_network_error(exc: BaseException) -> bool:
    """Connection resets, refusals and time-outs: worth another try."""
    return isinstance(exc, (ConnectionError, TimeoutError, socket.timeout))


def is_transient_aws_error(exc: BaseException) -> bool:
    """Throttling, 5xx and connection trouble from botocore; never auth or not-found errors."""
    if is_transient_network_error(exc):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code", "")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code == "NotImplemented":  # a feature the endpoint lacks does not come back by waiting
            return False
        return code in TRANSIENT_AWS_CODES or status >= 500 or status == 429
    # botocore.exceptions.EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ...
    # are checked by name so that this module imports without botocore.
    names = {klass.__name__ for klass in type(exc).__mro__}
    return bool(names & {"ConnectionError", "HTTPClientError", "ReadTimeoutError", "ConnectTimeoutError",
                         "EndpointConnectionError", "ConnectionClosedError", "IncompleteReadError"})
