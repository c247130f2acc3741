# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import random

import botocore.exceptions
import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._retry import (
    RetryPolicy,
    is_transient_aws_error,
    is_transient_network_error,
)


class Flaky:
    """Fails with the given errors in turn, then returns 'ok'."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def policy(**kwargs):
    waits = []
    kwargs.setdefault("rng", random.Random(7))
    return RetryPolicy(sleep=waits.append, **kwargs), waits


def client_error(code, status):
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "msg"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def test_transient_errors_are_retried_until_success():
    retry, waits = policy(attempts=5, delay=1.0, max_delay=60)
    func = Flaky(ConnectionResetError(), TimeoutError(), ConnectionRefusedError())
    assert retry.call(func, is_transient=is_transient_network_error) == "ok"
    assert func.calls == 4
    assert len(waits) == 3


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    retry = policy(attempts=10, delay=1.0, max_delay=8.0)[0]
    for number, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (9, 8.0)]:
        samples = [retry.backoff(number) for _sample in range(200)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples)
        assert len(set(samples)) > 100  # jittered, not a fixed wait


def test_gives_up_after_the_last_attempt_with_the_original_error():
    retry, waits = policy(attempts=3, delay=0.01)
    func = Flaky(*[ConnectionResetError("reset %d" % i) for i in range(5)])
    with pytest.raises(ConnectionResetError, match="reset 2"):
        retry.call(func, is_transient=is_transient_network_error)
    assert func.calls == 3
    assert len(waits) == 2


def test_errors_not_on_the_allow_list_fail_at_once():
    retry, waits = policy(attempts=5)
    func = Flaky(client_error("AccessDenied", 403))
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        retry.call(func, is_transient=is_transient_aws_error)
    assert func.calls == 1
    assert not waits


def test_retry_after_hint_sets_the_minimum_wait():
    retry, waits = policy(attempts=3, delay=0.1, max_delay=1.0)
    error = ConnectionResetError()
    error.retry_after = 30
    assert retry.call(Flaky(error), is_transient=is_transient_network_error) == "ok"
    assert waits == [30.0]


def test_on_retry_sees_each_retry():
    retry = policy(attempts=4, delay=0.01)[0]
    seen = []
    retry.call(Flaky(TimeoutError(), TimeoutError()), is_transient=is_transient_network_error,
               on_retry=lambda exc, number, wait: seen.append((type(exc).__name__, number)))
    assert seen == [("TimeoutError", 1), ("TimeoutError", 2)]


@pytest.mark.parametrize("error, transient", [
    (client_error("SlowDown", 503), True),
    (client_error("Throttling", 400), True),
    (client_error("InternalError", 500), True),
    (client_error("Whatever", 502), True),
    (client_error("TooManyRequests", 429), True),
    (client_error("NoSuchBucket", 404), False),
    (client_error("AccessDenied", 403), False),
    (client_error("InvalidDigest", 400), False),
    (botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
    (botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
    (botocore.exceptions.NoCredentialsError(), False),
    (ValueError("bad"), False),
])
def test_aws_error_classification(error, transient):
    assert is_transient_aws_error(error) is transient


def test_invalid_policy_is_refused():
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
