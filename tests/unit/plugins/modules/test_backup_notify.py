# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""backup_notify's posts against a receiver on 127.0.0.1: what counts as delivered, and what a failure says."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest

from ansible_collections.corebackup.backup.plugins.modules.backup_notify import post


class Receiver(http.server.ThreadingHTTPServer):
    """Answers every POST with ``status``; keeps the JSON documents posted."""

    def __init__(self, status):
        self.status, self.documents = status, []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                receiver.documents.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(receiver.status)
                if 300 <= receiver.status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(request):
    server = Receiver(request.param)
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("receiver, expected", [(200, (200, None)), (204, (204, None)),
                                                (500, (500, "HTTP 500 Internal Server Error")),
                                                (404, (404, "HTTP 404 Not Found")), (302, (302, "HTTP 302 Found"))],
                         indirect=["receiver"])
def test_only_a_2xx_answer_is_delivered(receiver, expected):
    url = "http://127.0.0.1:%d/services/T0/B0/secretpath" % receiver.server_address[1]
    assert post(url, {"text": "etc: success"}, 5, True) == expected
    assert receiver.documents == [{"text": "etc: success"}]


def test_no_answer_says_why_without_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert post("http://127.0.0.1:%d/hook?token=secretpath" % port, {}, 5, True) == (
        -1, "no answer (Connection refused)")


def test_a_receiver_that_does_not_answer_in_time():
    with socket.socket() as sock:  # accepts connections (the backlog) and never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        assert post("http://127.0.0.1:%d/hook" % sock.getsockname()[1], {}, 1, True) == (-1, "no answer within 1 s")
