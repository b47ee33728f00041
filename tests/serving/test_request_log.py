"""The traffic middleware: requests in flight, draining at shutdown, and OPENEDAI_DEBUG's log."""

from __future__ import annotations

import logging
import re

import requests
from serving_support import wait_until
from werkzeug.test import Client

from modules.serving.traffic import Traffic


def streaming_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"one ", b"two ", b"three"])


def test_a_stream_is_in_flight_until_its_body_is_closed():
    traffic = Traffic(streaming_app, log_requests=False)
    body = traffic({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda *args: None)
    assert traffic.in_flight == 1
    assert b"".join(body) == b"one two three"
    assert traffic.in_flight == 1  # the server has not closed it yet
    body.close()
    body.close()  # a second close counts nothing
    assert traffic.in_flight == 0


def test_websockets_are_not_waited_for():
    traffic = Traffic(streaming_app, log_requests=False)
    traffic({"REQUEST_METHOD": "GET", "PATH_INFO": "/ws", "HTTP_UPGRADE": "websocket"}, lambda *a: None)
    assert traffic.in_flight == 0
    assert traffic.wait_idle(0.1)


def test_wait_idle_gives_up_after_the_timeout():
    traffic = Traffic(streaming_app, log_requests=False)
    body = traffic({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda *args: None)
    assert not traffic.wait_idle(0.2)
    body.close()
    assert traffic.wait_idle(0.2)


def test_draining_answers_503_and_closes_the_connection():
    traffic = Traffic(streaming_app, log_requests=False)
    traffic.drain()
    response = Client(traffic).get("/v1/models")
    assert response.status_code == 503
    assert response.headers["Connection"] == "close"
    assert response.get_json()["error"]["code"] == "shutting_down"
    assert traffic.in_flight == 0


def test_one_log_line_per_request(caplog):
    traffic = Traffic(streaming_app, log_requests=True)
    with caplog.at_level(logging.INFO, logger="hearth.requests"):
        Client(traffic).get("/v1/models?limit=2", environ_overrides={"hearth.listener": "api"}, buffered=True)
    [record] = [r for r in caplog.records if r.name == "hearth.requests"]
    message = record.getMessage()
    assert re.fullmatch(
        r"api GET /v1/models\?limit=2 -> 200 \(0 bytes in\) 13 bytes out in \d+\.\d ms", message
    )


def test_no_log_without_the_setting(caplog):
    with caplog.at_level(logging.INFO, logger="hearth.requests"):
        Client(Traffic(streaming_app, log_requests=False)).get("/", buffered=True)
    assert not [r for r in caplog.records if r.name == "hearth.requests"]


def request_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if " hearth.requests: " in line]


def test_openedai_debug_logs_each_request_on_both_ports(serve):
    server = serve("--api", env={"OPENEDAI_DEBUG": "1"})
    requests.get(server.api_base + "/metrics", timeout=10)
    requests.get(server.ui_url + "/health", timeout=10)
    requests.get(server.api_url + "/nothing-here", timeout=10)
    requests.post(server.api_base + "/health", data=b"12345", timeout=10)
    expected = [
        " api GET /metrics -> 200 (0 bytes in) ",
        " ui GET /health -> 200 ",
        " api GET /v1/nothing-here -> 404 ",
        " api POST /health -> 405 (5 bytes in) ",
    ]

    def all_logged() -> bool:  # a line is written when its response ends, after the client has it
        lines = request_lines(server.log())
        return all(any(part in line for line in lines) for part in expected)

    assert wait_until(all_logged, timeout=5), request_lines(server.log())


def test_quiet_by_default(serve):
    server = serve("--api")
    requests.get(server.api_base + "/metrics", timeout=10)
    assert request_lines(server.log()) == []
