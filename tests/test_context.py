"""The atom context a task sees: its atom's name and stable uuid, immutable, and sinks that never travel."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from flowkit import LinearFlow, Task, context, engines
from flowkit.context import AtomContext, contexts_for, new_context


class Seen(Task):
    """Records the context it ran in (execute and revert)."""

    seen: list[tuple[str, AtomContext | None]] = []

    def execute(self) -> None:
        Seen.seen.append(("execute", context.current()))

    def revert(self, **kwargs: Any) -> None:
        Seen.seen.append(("revert", context.current()))


class Boom(Task):
    def execute(self) -> None:
        raise RuntimeError("boom")


def test_a_context_pickles_without_its_sinks_and_cannot_be_changed() -> None:
    ctx = new_context("a", "uuid-a", print, print)
    back = pickle.loads(pickle.dumps(ctx))
    assert (back.atom_name, back.atom_uuid, back.progress, back.progress_details) == (
        "a",
        "uuid-a",
        None,
        None,
    )
    with pytest.raises(AttributeError):
        ctx.atom_name = "b"  # type: ignore[misc]


def test_contexts_for_pairs_names_with_uuids_and_shares_the_sinks() -> None:
    made = contexts_for(["a", "b"], ["u1", "u2"], print, None)
    assert [(c.atom_name, c.atom_uuid, c.progress) for c in made] == [("a", "u1", print), ("b", "u2", print)]


def test_each_call_sees_its_own_atom_and_its_storage_uuid() -> None:
    Seen.seen = []
    engine = engines.load(LinearFlow("f").add(Seen(name="a"), Seen(name="b"), Boom(name="c")))
    with pytest.raises(RuntimeError):
        engine.run()
    assert context.current() is None
    calls = [(action, ctx.atom_name) for action, ctx in Seen.seen if ctx is not None]
    assert calls == [("execute", "a"), ("execute", "b"), ("revert", "b"), ("revert", "a")]
    for _action, ctx in Seen.seen:
        assert ctx is not None and ctx.atom_uuid == engine.storage.get_atom_uuid(ctx.atom_name)
