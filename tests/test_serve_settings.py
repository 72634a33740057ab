"""Who may bind where: loopback needs no token, any other address does (unit tests of ServeSettings)."""

from __future__ import annotations

import pytest

from flowkit.exceptions import FlowkitError
from flowkit.serve.settings import ServeSettings, is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback(host)
    assert ServeSettings("sqlite:///f.db", host=host).host == host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com", ""])
def test_any_other_address_needs_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(FlowkitError, match="without a token"):
        ServeSettings("sqlite:///f.db", host=host)
    with pytest.raises(FlowkitError, match="without a token"):
        ServeSettings("sqlite:///f.db", host=host, token="")
    assert ServeSettings("sqlite:///f.db", host=host, token="t").token == "t"


def test_the_board_defaults_to_the_persistence_database() -> None:
    assert ServeSettings("sqlite:///f.db").board == "sqlite:///f.db"
    assert ServeSettings("sqlite:///f.db", board_url="zookeeper://h:2181/x").board == "zookeeper://h:2181/x"
