"""``WorkerOptions``: the worker-based engine's options, one typed record checked once at load."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from flowkit import FunctorTask, LinearFlow, engines
from flowkit.exceptions import InvalidFlowError
from flowkit.persistence.backends.memory import MemoryBackend
from flowkit.workers.dispatcher import WorkerDispatcher
from flowkit.workers.options import WorkerOptions

URL = "memory://"


def _flow() -> LinearFlow:
    return LinearFlow("options").add(FunctorTask(lambda: 1, name="one"))


def test_an_unknown_worker_option_is_refused_naming_it_before_anything_is_saved() -> None:
    backend = MemoryBackend()
    with pytest.raises(InvalidFlowError, match=r"unknown engine option\(s\): colour"):
        engines.load(_flow(), engine="worker-based", transport=URL, topics=["t"], backend=backend, colour=1)
    with backend.get_connection() as conn:
        assert list(conn.get_logbooks()) == []


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"topics": ["t"]}, "transport"),
        ({"transport": URL}, "topics"),
        ({"transport": URL, "topics": ["t", ""]}, "topics"),
        ({"transport": URL, "topics": ["t"], "transition_timeout": -1}, "transition_timeout"),
        ({"transport": URL, "topics": ["t"], "transition_timeout": True}, "transition_timeout"),
        ({"transport": URL, "topics": ["t"], "exchange": ""}, "exchange"),
        ({"transport": URL, "topics": ["t"], "default_timeout": 0}, "default_timeout"),
        ({"transport": URL, "topics": ["t"], "transport_options": ["x"]}, "transport_options"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidFlowError, match=problem):
        engines.load(_flow(), engine="worker-based", **options)


def test_the_options_reach_the_dispatcher_as_one_frozen_typed_record() -> None:
    engine = engines.load(
        _flow(),
        engine="worker-based",
        url=URL,  # TaskFlow's name for transport
        topics="one-topic",
        exchange="ex",
        transition_timeout=5,
        default_timeout=2,
        transport_options={"polling_interval": 0.01},
    )
    dispatcher = engine._dispatcher
    assert isinstance(dispatcher, WorkerDispatcher)
    options = dispatcher.options
    assert options == WorkerOptions(
        transport=URL,
        topics=("one-topic",),
        exchange="ex",
        transition_timeout=5.0,
        default_timeout=2.0,
        transport_options={"polling_interval": 0.01},
    )
    assert isinstance(options.transition_timeout, float) and isinstance(options.default_timeout, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.exchange = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        options.transport_options["polling_interval"] = 1  # type: ignore[index]
