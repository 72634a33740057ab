"""TaskFlow's job board settings dict and a shared kazoo client: ``fetch(name, {...}, client=...)``."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowkit.exceptions import JobBoardError
from flowkit.jobboard.backends.settings import from_settings
from flowkit.jobs import backends as boards
from flowkit.persistence.models import FlowDetail, LogBook


def test_a_zookeeper_uri_in_board_gives_hosts_path_and_options() -> None:
    url, options = from_settings({"board": "zookeeper://zk1:2181?path=/tf/jobs&timeout=7"})
    assert (url, options) == ("zookeeper://zk1:2181/tf/jobs", {"timeout": 7.0})


def test_the_dict_wins_over_the_uri_and_takes_taskflow_host_forms() -> None:
    url, options = from_settings(
        {
            "board": "zookeeper://ignored:1/ignored",
            "hosts": {"a": 1, "b": 2},
            "path": "jobs",
            "max_attempts": "5",
        }
    )
    assert (url, options) == ("zookeeper://a:1,b:2/jobs", {"max_attempts": 5})
    assert from_settings({"board": "zookeeper", "hosts": ["a:1", "b:2"]})[0] == "zookeeper://a:1,b:2/flowkit"


def test_a_flowkit_board_url_passes_with_its_options(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/b.db"
    assert from_settings({"board": url, "max_attempts": 2}) == (url, {"max_attempts": 2})


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({}, "need 'board'"),
        ({"board": "redis"}, "kind 'redis' in settings is not offered"),
        ({"board": "zookeeper", "emit_notifications": True}, "unknown setting.*emit_notifications"),
        ({"board": "zookeeper", "timeout": "soon"}, "timeout='soon' is not a number"),
        ({"board": "zookeeper", "hosts": 2181}, "'hosts' must be"),
    ],
)
def test_bad_settings_are_refused_naming_the_problem(conf: dict[str, object], message: str) -> None:
    with pytest.raises(JobBoardError, match=message):
        from_settings(conf)


def test_fetch_takes_the_settings_dict_for_an_sql_board(tmp_path: Path) -> None:
    board = boards.fetch(
        "b", {"board": f"sqlite:///{tmp_path}/b.db"}, persistence=f"sqlite:///{tmp_path}/p.db"
    )
    with board:
        book = LogBook("book")
        book.add(FlowDetail("f"))
        board.post("job-1", book=book, details={"store": {"x": 1}})
        assert [job.name for job in board.iterjobs()] == ["job-1"]


def test_a_board_starts_a_shared_client_and_leaves_it_running(zookeeper_hosts: str, zk_path: str) -> None:
    from flowkit.utils import kazoo_utils

    client = kazoo_utils.make_client({"hosts": zookeeper_hosts})
    conf = {"board": f"zookeeper://{zookeeper_hosts}", "path": zk_path, "timeout": 4}
    try:
        poster = boards.fetch("poster", conf, client=client, persistence="memory://")
        poster.connect()  # the client was never started: the board starts it, as TaskFlow's does
        assert client.connected
        book = LogBook("book")
        book.add(FlowDetail("f"))
        poster.post("job-1", book=book)
        reader = boards.fetch("reader", conf, client=client, persistence="memory://")
        with reader:
            assert [job.name for job in reader.iterjobs()] == ["job-1"]
        poster.close()
        assert client.connected  # the owner stops it, not the boards
    finally:
        client.stop()
        client.close()


def test_backend_gives_a_connected_board_and_closes_it(tmp_path: Path) -> None:
    with boards.backend("b", f"sqlite:///{tmp_path}/b.db", persistence="memory://") as board:
        assert board.connected
        board.post("job-1", details={"color": "red"})
        assert [job.details["color"] for job in board.iterjobs()] == ["red"]
    assert not board.connected


def test_boards_sharing_one_unstarted_client_connect_from_many_threads(
    zookeeper_hosts: str, zk_path: str
) -> None:
    import threading

    from flowkit.utils import kazoo_utils

    client = kazoo_utils.make_client({"hosts": zookeeper_hosts})
    conf = {"board": "zookeeper", "hosts": zookeeper_hosts, "path": zk_path, "timeout": 4}
    errors: list[BaseException] = []

    def connect(k: int) -> None:
        try:
            with boards.backend(f"b{k}", conf, client=client, persistence="memory://") as board:
                board.post(f"job-{k}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=connect, args=(k,)) for k in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        with boards.backend("reader", conf, client=client, persistence="memory://") as reader:
            assert sorted(job.name for job in reader.iterjobs()) == [f"job-{k}" for k in range(6)]
    finally:
        client.stop()
        client.close()
