"""Server plumbing without a server: log rate limits, admission and head checks via the ASGI app."""

from __future__ import annotations

import logging
import platform

import pytest
from inference_support import TestClient

from inference import contract
from inference.app import count_multipart_parts, create_app
from inference.errors import ClientError
from inference.server import UVICORN_PER_REQUEST_WARNINGS, IntervalFilter, IntervalLog, release_free_memory
from inference.settings import ServerSettings, Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_interval_log_reports_once_per_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = IntervalLog(logging.getLogger("test.interval"), 60, clock)
    with caplog.at_level(logging.WARNING, logger="test.interval"):
        assert log.warning("overloaded", "overloaded")
        for _ in range(500):
            clock.now += 0.1
            assert not log.warning("overloaded", "overloaded")
        assert log.warning("body_timeout", "stalled")  # another kind has its own interval
        clock.now += 60
        assert log.warning("overloaded", "overloaded")
    assert [record.getMessage() for record in caplog.records] == [
        "overloaded",
        "stalled",
        "overloaded (500 more in the last 110 s)",
    ]


def test_interval_filter_only_limits_the_named_messages() -> None:
    clock = Clock()
    interval_filter = IntervalFilter(UVICORN_PER_REQUEST_WARNINGS, 60, clock)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.WARNING, __file__, 1, message, None, None)

    assert interval_filter.filter(record("Invalid HTTP request received."))
    assert not interval_filter.filter(record("Invalid HTTP request received."))
    assert interval_filter.filter(record("something else"))
    assert interval_filter.filter(record("something else"))
    clock.now += 61
    assert interval_filter.filter(record("Invalid HTTP request received."))


def test_multipart_parts_are_counted_by_their_delimiters() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="image"\r\n\r\nxx\r\n'
        b'--b\r\nContent-Disposition: form-data; name="y"\r\n\r\nz\r\n--b--\r\n'
    )
    assert count_multipart_parts("multipart/form-data; boundary=b", body) == 2
    with pytest.raises(ClientError, match="no boundary"):
        count_multipart_parts("multipart/form-data", body)


def test_heads_over_the_limit_get_431_json_and_probes_are_checked_too() -> None:
    settings = Settings(server=ServerSettings(max_header_bytes=2048))
    with TestClient(
        create_app(settings, load_engine=lambda on_status: (_ for _ in ()).throw(RuntimeError("no models")))
    ) as client:
        response = client.get(contract.HEALTH_PATH, headers={"X-Padding": "a" * 4096})
        assert response.status_code == 431 and response.json()["error"] == "header_too_large"
        assert client.get(contract.HEALTH_PATH).status_code == 200
        metrics = client.get(contract.METRICS_PATH).text
        assert 'catwatcher_refused_total{reason="header_too_large"} 1.0' in metrics


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_free_memory_works_on_glibc() -> None:
    assert release_free_memory() is True
