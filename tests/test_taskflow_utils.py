"""TaskFlow's ``taskflow.utils`` helpers that its programs import: threads, ``as_int``, a kazoo client."""

from __future__ import annotations

import threading

import pytest

from flowkit.exceptions import InvalidFormat
from flowkit.utils import misc, threading_utils


def test_daemon_thread_is_a_daemon_not_yet_started_that_calls_its_target() -> None:
    seen: list[tuple[object, ...]] = []
    thread = threading_utils.daemon_thread(lambda *a, **k: seen.append((a, k)), 1, 2, key="v")
    assert thread.daemon and not thread.is_alive()
    thread.start()
    thread.join(5)
    assert seen == [((1, 2), {"key": "v"})]


def test_get_ident_names_the_calling_thread() -> None:
    idents: list[int] = []
    thread = threading.Thread(target=lambda: idents.append(threading_utils.get_ident()))
    thread.start()
    thread.join(5)
    assert idents == [thread.ident] and idents[0] != threading_utils.get_ident()


@pytest.mark.parametrize(("value", "expected"), [("2", 2), ("2.5", 2), (3.9, 3), (7, 7)])
def test_as_int_converts_numbers_and_their_strings(value: object, expected: int) -> None:
    assert misc.as_int(value) == expected


def test_as_int_refuses_what_is_not_a_number_unless_quiet() -> None:
    with pytest.raises(TypeError, match="'abc'"):
        misc.as_int("abc")
    marker = object()
    assert misc.as_int(marker, quiet=True) is marker


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [(" h1:1 ", "h1:1"), (["h1:1", "h2:2"], "h1:1,h2:2"), ({"h1": 1, "h2": 2}, "h1:1,h2:2")],
)
def test_make_client_reads_taskflow_host_forms(hosts: object, expected: str) -> None:
    pytest.importorskip("kazoo")
    from flowkit.utils import kazoo_utils

    client = kazoo_utils.make_client({"hosts": hosts, "timeout": 3})
    try:
        assert [f"{h}:{p}" for h, p in client.hosts] == expected.split(",")
        assert client._session_timeout == 3000  # kazoo keeps the session timeout in milliseconds
    finally:
        client.close()


def test_make_client_refuses_hosts_of_another_type() -> None:
    pytest.importorskip("kazoo")
    from flowkit.utils import kazoo_utils

    with pytest.raises(InvalidFormat, match="hosts"):
        kazoo_utils.make_client({"hosts": 2181})


def test_make_client_connects_to_zookeeper(zookeeper_hosts: str) -> None:
    from flowkit.utils import kazoo_utils

    client = kazoo_utils.make_client({"hosts": zookeeper_hosts, "connection_retry": {"max_tries": 2}})
    client.start(timeout=10)
    try:
        assert client.connected and client.exists("/") is not None
    finally:
        client.stop()
        client.close()


def test_taskflow_log_levels_and_a_logger_that_traces(caplog: pytest.LogCaptureFixture) -> None:
    from flowkit import logging as fk_logging

    assert fk_logging.TRACE == fk_logging.BLATHER == 5 < fk_logging.DEBUG
    log = fk_logging.getLogger("fk.test.trace", extra={"who": "me"})
    with caplog.at_level(fk_logging.TRACE, logger="fk.test.trace"):
        log.trace("deep %s", "detail")
        log.blather("deeper")
    assert [(r.levelname, r.getMessage(), r.who) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("TRACE", "deep detail", "me"),
        ("TRACE", "deeper", "me"),
    ]


def test_eventlet_check_says_whether_it_is_installed() -> None:
    from flowkit.exceptions import FlowkitError
    from flowkit.utils import eventlet_utils

    if eventlet_utils.EVENTLET_AVAILABLE:
        eventlet_utils.check_for_eventlet()
    else:
        with pytest.raises(FlowkitError, match="eventlet is not installed"):
            eventlet_utils.check_for_eventlet()
        with pytest.raises(KeyError):
            eventlet_utils.check_for_eventlet(KeyError("mine"))
