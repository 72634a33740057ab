"""The worker-based engine's options, checked once when the engine is loaded.

``engines.load(flow, engine="worker-based", transport=..., topics=[...], ...)`` takes them as keywords
(the public form, see ``README.md``); :func:`flowkit.workers.engine.load` builds one
:class:`WorkerOptions` from them, and the dispatcher works from that record: every option has one
type and one check, and a bad one is refused before anything connects or is saved. No broker client
is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from flowkit.atom import check_timeout
from flowkit.exceptions import InvalidFlowError

DEFAULT_TRANSITION_TIMEOUT_S = 60.0


def broker_url(transport: str | None, url: str | None = None) -> str:
    """The broker URL from flowkit's ``transport`` (a URL) or TaskFlow's pair ``url`` + ``transport``.

    TaskFlow names the kombu transport (``transport="memory"``) apart from the broker URL (``url=``);
    flowkit takes one URL. A bare transport name is that transport's URL (``"memory"`` ->
    ``"memory://"``); a ``url`` without a scheme gets the transport's; an empty result is refused later,
    by whoever needs a broker.
    """
    if url:
        if "://" not in url and transport and "://" not in transport:
            return f"{transport}://{url}"
        return url
    if transport and "://" not in transport:
        return f"{transport.strip()}://"
    return transport or ""


@dataclass(frozen=True)
class WorkerOptions:
    """Where the worker-based engine finds its workers and how long it waits for them.

    ``transport`` is the broker URL; ``topics`` the worker topics tasks are looked for on (one str
    is one topic); a request no worker serves, accepts or answers within ``transition_timeout``
    seconds fails its atom; ``default_timeout`` bounds the calls of atoms without a ``timeout`` of
    their own (None: unbounded); ``transport_options`` go to kombu's connection as they are.
    """

    transport: str
    topics: Sequence[str]
    exchange: str = "flowkit"
    transition_timeout: float = DEFAULT_TRANSITION_TIMEOUT_S
    default_timeout: float | None = None
    transport_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.transport or not isinstance(self.transport, str):
            raise InvalidFlowError("the worker-based engine needs transport=<broker URL>, e.g. amqp://host//")
        topics = [self.topics] if isinstance(self.topics, str) else self.topics
        if not topics or not all(isinstance(t, str) and t for t in topics):
            raise InvalidFlowError(
                f"the worker-based engine needs topics=[...] (non-empty str), got {self.topics!r}"
            )
        timeout = self.transition_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise InvalidFlowError(f"transition_timeout must be a positive number, got {timeout!r}")
        if not self.exchange or not isinstance(self.exchange, str):
            raise InvalidFlowError(f"exchange must be a non-empty name, got {self.exchange!r}")
        if not isinstance(self.transport_options, Mapping):
            raise InvalidFlowError(f"transport_options must be a mapping, got {self.transport_options!r}")
        default = check_timeout(self.default_timeout, "the worker-based engine's default_timeout")
        # Normalised in place once (the record is frozen from here on): tuple, floats, a read-only copy.
        object.__setattr__(self, "topics", tuple(topics))
        object.__setattr__(self, "transition_timeout", float(timeout))
        object.__setattr__(self, "default_timeout", default)
        object.__setattr__(self, "transport_options", MappingProxyType(dict(self.transport_options)))
