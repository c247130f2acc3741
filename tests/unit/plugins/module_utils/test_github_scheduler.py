# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""RequestScheduler: points per window, concurrency, and pauses that hold every worker back."""

from __future__ import annotations

import threading
import time

from ansible_collections.corebackup.backup.plugins.module_utils._github import RequestScheduler


class ShortWindow(RequestScheduler):
    WINDOW = 0.4


def timed_requests(scheduler, count, kind="rest", points=1, hold=0.0, workers=None):
    """Start times (relative) of ``count`` requests made by ``workers`` threads (one each by default)."""
    origin = time.monotonic()
    started = []
    lock = threading.Lock()

    def one():
        with scheduler.slot(kind, points):
            with lock:
                started.append(time.monotonic() - origin)
            time.sleep(hold)

    threads = [threading.Thread(target=one) for _index in range(workers or count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(started)


def test_points_per_window_are_never_exceeded():
    scheduler = ShortWindow(rest_points_per_minute=3)
    started = timed_requests(scheduler, 7)
    # At most 3 requests in any window of 0.4 s: the 4th waits for the 1st to leave it.
    for index in range(3, len(started)):
        assert started[index] - started[index - 3] >= 0.39
    assert scheduler.waited > 0.4


def test_writes_cost_more_points_and_kinds_have_their_own_budget():
    scheduler = ShortWindow(rest_points_per_minute=10, graphql_points_per_minute=2)
    writes = timed_requests(scheduler, 3, points=5)
    assert writes[2] - writes[0] >= 0.39  # two writes fill the window


def test_graphql_points_are_counted_apart_from_rest_points():
    class LongWindow(RequestScheduler):
        WINDOW = 60.0

    scheduler = LongWindow(rest_points_per_minute=10, graphql_points_per_minute=2)
    timed_requests(scheduler, 2, points=5)  # the REST budget of the next minute is spent
    queries = threading.Thread(target=timed_requests, args=(scheduler, 2), kwargs={"kind": "graphql"})
    queries.start()
    queries.join(10)  # counted with REST, they would wait a minute
    assert not queries.is_alive()


def test_concurrency_is_capped():
    scheduler = RequestScheduler(max_concurrent=2)
    in_flight, peak = [0], [0]
    lock = threading.Lock()

    def one():
        with scheduler.slot("rest"):
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            time.sleep(0.05)
            with lock:
                in_flight[0] -= 1

    threads = [threading.Thread(target=one) for _index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 2


def test_a_pause_holds_every_worker_back():
    scheduler = RequestScheduler()
    scheduler.pause(0.3)
    started = timed_requests(scheduler, 4)
    assert min(started) >= 0.29 and scheduler.pauses == 1
    scheduler.pause(5.0)
    scheduler.pause(1.0)  # ends within the pause in force: nothing changes
    assert scheduler.pauses == 2


def test_a_host_that_does_not_resolve_fails_at_once_naming_it(monkeypatch):
    """No DNS lookup leaves this machine: getaddrinfo is the fake, the client and its retries are real."""
    import socket

    import pytest

    from ansible_collections.corebackup.backup.plugins.module_utils._github import GitHubClient, GitHubError
    from ansible_collections.corebackup.backup.plugins.module_utils._retry import RetryPolicy

    lookups = []

    def getaddrinfo(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    slept = []
    client = GitHubClient("http://github.example.invalid/api/v3", "ghp_x", retry=RetryPolicy(attempts=5, sleep=slept.append))
    with pytest.raises(GitHubError) as caught:
        client.get("orgs/acme/repos")
    assert "cannot reach github.example.invalid: Name or service not known" in str(caught.value)
    assert lookups == ["github.example.invalid"] and slept == []  # not retried as if transient
