"""The notifier's TaskFlow-shaped surface (``flowkit.types.notifier``)."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit.exceptions import FlowkitError, NotifierRegistrationError
from flowkit.notifier import ANY, Notifier, RestrictedNotifier
from flowkit.types import notifier as nt


def _noop(event: Any, details: dict[str, Any]) -> None:
    return None


def test_types_notifier_exposes_the_same_classes() -> None:
    assert nt.Notifier is Notifier and nt.RestrictedNotifier is RestrictedNotifier
    assert Notifier.ANY == ANY


def test_len_reset_and_registered_events() -> None:
    n = Notifier()
    n.register(ANY, _noop)
    n.register("SUCCESS", _noop)
    assert len(n) == 2
    assert n.registered_event_types() == {ANY, "SUCCESS"}
    assert dict(n.listeners_iter()) == {ANY: [_noop], "SUCCESS": [_noop]}
    n.reset()
    assert len(n) == 0 and not n.active


def test_notifying_any_itself_reaches_nobody() -> None:
    got: list[Any] = []
    n = Notifier()
    n.register(ANY, lambda e, d: got.append(e))
    assert not n.can_trigger_notification(ANY)
    n.notify(ANY, {})
    n.notify("SUCCESS", {})
    assert got == ["SUCCESS"]


def test_same_callback_twice_is_refused_unless_filters_differ() -> None:
    n = Notifier()
    n.register("SUCCESS", _noop)
    with pytest.raises(NotifierRegistrationError, match="already registered"):
        n.register("SUCCESS", _noop)

    def red(details: dict[str, Any]) -> bool:
        return details.get("color") == "red"

    n.register("SUCCESS", _noop, details_filter=red)
    assert n.is_registered("SUCCESS", _noop, details_filter=red)
    assert len(n) == 2


def test_non_callable_is_a_value_and_type_error() -> None:
    with pytest.raises(NotifierRegistrationError) as info:
        Notifier().register(ANY, 2)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert isinstance(info.value, FlowkitError)


def test_bound_args_and_kwargs_are_passed_taskflow_style() -> None:
    got: list[Any] = []

    def cb(event: Any, tag: str, details: dict[str, Any], scale: int) -> None:
        got.append((event, tag, details["n"] * scale))

    n = Notifier()
    n.register("E", cb, args=["t"], kwargs={"scale": 10})
    n.notify("E", {"n": 2})
    assert got == [("E", "t", 20)]
    with pytest.raises(KeyError):
        n.register("E", _noop, kwargs={"details": 1})


def test_deregister_event_and_copy_are_independent() -> None:
    n = Notifier()
    n.register("E", _noop)
    clone = n.copy()
    assert n.deregister_event("E") == 1
    assert len(n) == 0 and len(clone) == 1
    clone.register("F", _noop)
    assert len(n) == 0


def test_restricted_notifier_accepts_only_its_events() -> None:
    n = RestrictedNotifier(["a", "b"])
    with pytest.raises(NotifierRegistrationError, match="'c'"):
        n.register("c", _noop)
    n.register("b", _noop)
    n.register(ANY, _noop)
    assert len(n) == 2
    assert set(n.events_iter()) == {"a", "b", ANY}
    strict = RestrictedNotifier(["a"], allow_any=False)
    with pytest.raises(NotifierRegistrationError):
        strict.register(ANY, _noop)
    assert isinstance(n.copy(), RestrictedNotifier) and not n.copy().can_be_registered("c")
