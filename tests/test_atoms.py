"""Atoms: how arguments are bound from storage and how results are named."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import FunctorTask, LinearFlow, Task, UnorderedFlow, engines, notifier
from flowkit.exceptions import InvalidFlowError
from flowkit.failure import Failure
from flowkit.states import AtomState, FlowState


class Echo(Task):
    """Returns the arguments it was called with."""

    def execute(self, a, b):
        return {"a": a, "b": b}


class Provide(Task):
    """Returns the value given at construction."""

    def __init__(self, value: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value = value

    def execute(self):
        return self.value


class WithDefault(Task):
    def execute(self, node_id, flavor="small"):
        return (node_id, flavor)


def run_one(task: Task, store: dict[str, Any] | None = None) -> dict[str, Any]:
    return engines.run(LinearFlow("f").add(task), store=store)


def test_arguments_bound_by_parameter_name():
    out = run_one(Echo(name="echo", provides="out"), store={"a": 1, "b": 2})
    assert out["out"] == {"a": 1, "b": 2}


def test_requires_and_rebind_metadata_follow_the_signature():
    t = Echo(name="echo")
    assert t.requires == {"a", "b"}
    assert t.optional == frozenset()
    w = WithDefault(name="w")
    assert w.requires == {"node_id"}
    assert w.optional == {"flavor"}


def test_requires_passes_extra_symbols_as_keywords():
    seen = {}

    class KW(Task):
        def execute(self, **kwargs):
            seen.update(kwargs)

    t = KW(name="kw", requires=["zone", "size"])
    assert t.requires == {"zone", "size"}
    run_one(t, store={"zone": "z1", "size": 3, "unrelated": 0})
    assert seen == {"zone": "z1", "size": 3}


def test_requires_symbol_missing_from_store_is_a_missing_requirement():
    from flowkit.exceptions import MissingRequirementError

    class KW(Task):
        def execute(self, **kwargs):
            return kwargs

    with pytest.raises(MissingRequirementError, match="zone"):
        run_one(KW(name="kw", requires=["zone"]))


def test_optional_argument_uses_default_when_nothing_provides_it():
    out = run_one(WithDefault(name="w", provides="r"), store={"node_id": 7})
    assert out["r"] == (7, "small")


def test_optional_argument_bound_from_store():
    out = run_one(WithDefault(name="w", provides="r"), store={"node_id": 7, "flavor": "big"})
    assert out["r"] == (7, "big")


def test_optional_argument_bound_from_earlier_atom():
    flow = LinearFlow("f").add(
        Provide("huge", name="p", provides="flavor"),
        WithDefault(name="w", provides="r"),
    )
    out = engines.run(flow, store={"node_id": 1, "flavor": "from-store"})
    assert out["r"] == (1, "huge")


def test_optional_argument_not_bound_from_later_atom():
    flow = LinearFlow("f").add(
        WithDefault(name="w", provides="r"),
        Provide("late", name="p", provides="flavor"),
    )
    out = engines.run(flow, store={"node_id": 1})
    assert out["r"] == (1, "small")


def test_rebind_dict_renames_arguments():
    t = Echo(name="echo", provides="out", rebind={"a": "alpha", "b": "beta"})
    assert t.requires == {"alpha", "beta"}
    out = run_one(t, store={"alpha": 10, "beta": 20, "a": -1, "b": -1})
    assert out["out"] == {"a": 10, "b": 20}


def test_rebind_dict_on_optional_argument():
    t = WithDefault(name="w", provides="r", rebind={"flavor": "big_flavor"})
    assert "big_flavor" in t.optional
    assert run_one(t, store={"node_id": 1, "big_flavor": "xl", "flavor": "nope"})["r"] == (1, "xl")
    t2 = WithDefault(name="w", provides="r", rebind={"flavor": "big_flavor"})
    assert run_one(t2, store={"node_id": 1, "flavor": "nope"})["r"] == (1, "small")


def test_rebind_list_binds_in_parameter_order():
    t = Echo(name="echo", provides="out", rebind=["second", "first"])
    out = run_one(t, store={"first": 1, "second": 2})
    assert out["out"] == {"a": 2, "b": 1}


def test_rebind_list_shorter_than_parameters_keeps_the_rest_by_name():
    t = Echo(name="echo", provides="out", rebind=["x"])
    assert t.requires == {"x", "b"}
    assert run_one(t, store={"x": 5, "b": 6})["out"] == {"a": 5, "b": 6}


def test_rebind_list_extra_symbols_go_to_kwargs_under_their_own_names():
    seen = {}

    class K(Task):
        def execute(self, a, **kwargs):
            seen["a"] = a
            seen.update(kwargs)

    run_one(K(name="k", rebind=["x", "y"]), store={"x": 1, "y": 2})
    assert seen == {"a": 1, "y": 2}


def test_inject_gives_atom_local_values_over_the_store():
    t = Echo(name="echo", provides="out", inject={"a": "injected"})
    assert t.requires == {"b"}
    out = run_one(t, store={"a": "from-store", "b": 2})
    assert out["out"] == {"a": "injected", "b": 2}


def test_inject_of_an_optional_argument():
    t = WithDefault(name="w", provides="r", inject={"flavor": "tiny"})
    assert run_one(t, store={"node_id": 1, "flavor": "big"})["r"] == (1, "tiny")


def test_inject_is_per_atom():
    flow = UnorderedFlow("u").add(
        Echo(name="e1", provides="o1", inject={"a": 1}),
        Echo(name="e2", provides="o2", inject={"a": 2}),
    )
    out = engines.run(flow, store={"b": 0})
    assert out["o1"] == {"a": 1, "b": 0}
    assert out["o2"] == {"a": 2, "b": 0}
    assert "a" not in out


def test_provides_str_names_the_whole_result():
    out = run_one(Provide([1, 2], name="p", provides="both"))
    assert out["both"] == [1, 2]


def test_provides_tuple_maps_by_position():
    t = Provide(("x-val", "y-val", "z-val"), name="p", provides=("x", "y", "z"))
    assert tuple(t.provides) == ("x", "y", "z")
    out = run_one(t)
    assert (out["x"], out["y"], out["z"]) == ("x-val", "y-val", "z-val")


def test_provides_list_maps_by_position():
    out = run_one(Provide([10, 20], name="p", provides=["first", "second"]))
    assert (out["first"], out["second"]) == (10, 20)


def test_provides_set_maps_dict_keys():
    t = Provide({"host": "h1", "port": 22, "extra": "ignored"}, name="p", provides={"host", "port"})
    assert set(t.provides) == {"host", "port"}
    out = run_one(t)
    assert out["host"] == "h1"
    assert out["port"] == 22
    assert "extra" not in out


def test_provided_values_feed_later_atoms_by_position_and_key():
    flow = LinearFlow("f").add(
        Provide((1, 2), name="p1", provides=("a", "unused")),
        Provide({"b": 3}, name="p2", provides={"b"}),
        Echo(name="echo", provides="out"),
    )
    assert engines.run(flow)["out"] == {"a": 1, "b": 3}


def test_default_provides_on_class_and_override():
    class Server(Task):
        default_provides = "server_id"

        def execute(self):
            return "srv-1"

    assert tuple(Server(name="s").provides) == ("server_id",)
    assert run_one(Server(name="s"))["server_id"] == "srv-1"
    overridden = Server(name="s", provides="other")
    assert tuple(overridden.provides) == ("other",)
    out = run_one(overridden)
    assert out["other"] == "srv-1"
    assert "server_id" not in out


def test_default_name_is_the_dotted_class_name():
    assert Echo().name == f"{__name__}.Echo"


def test_functor_task_with_revert_receives_args_and_result():
    log: list[Any] = []

    def create(size):
        log.append(("create", size))
        return f"vol-{size}"

    def delete(size, result, flow_failures, **kwargs):
        log.append(("delete", size, result, sorted(flow_failures)))

    def boom():
        raise RuntimeError("boom")

    flow = LinearFlow("f").add(
        FunctorTask(create, name="create", provides="vol", revert=delete),
        FunctorTask(boom, name="boom"),
    )
    with pytest.raises(RuntimeError, match="boom"):
        engines.run(flow, store={"size": 5})
    assert log == [("create", 5), ("delete", 5, "vol-5", ["boom"])]


def test_functor_task_default_name_is_the_function_name():
    def make_thing():
        return 1

    t = FunctorTask(make_thing)
    assert t.name.endswith("make_thing")
    assert t.requires == frozenset()


def test_functor_task_rejects_non_callables():
    with pytest.raises(InvalidFlowError):
        FunctorTask(42, name="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidFlowError):
        FunctorTask(lambda: None, name="x", revert="nope")  # type: ignore[arg-type]


def test_rebind_of_unknown_argument_names_the_atom():
    with pytest.raises(InvalidFlowError, match="bad-rebind") as info:
        Echo(name="bad-rebind", rebind={"nope": "x"})
    assert "nope" in str(info.value)


def test_rebind_list_too_long_names_the_atom():
    with pytest.raises(InvalidFlowError, match="long-rebind"):
        Echo(name="long-rebind", rebind=["x", "y", "z"])


def test_rebind_to_non_str_names_the_atom():
    with pytest.raises(InvalidFlowError, match="int-rebind"):
        Echo(name="int-rebind", rebind={"a": 3})


def test_requires_unknown_argument_without_kwargs_names_the_atom():
    with pytest.raises(InvalidFlowError, match="bad-requires") as info:
        Echo(name="bad-requires", requires=["zzz"])
    assert "zzz" in str(info.value)


@pytest.mark.parametrize("provides", [("a", 1), ["x", "x"], {1, 2}, 3.5])
def test_bad_provides_names_the_atom(provides):
    with pytest.raises(InvalidFlowError, match="bad-provides"):
        Provide(None, name="bad-provides", provides=provides)


def test_result_without_a_provided_key_fails_the_provider_naming_it():
    # A result is checked against what the atom promised to provide when it succeeds,
    # so the failure names the provider, not some later consumer.
    engine = engines.load(LinearFlow("f").add(Provide({"a": 1}, name="short", provides={"a", "missing"})))
    with pytest.raises(InvalidFlowError, match="short") as info:
        engine.run()
    assert "missing" in str(info.value)
    assert engine.storage.get_atom_state("short") is AtomState.REVERTED


def test_result_without_a_provided_key_fails_the_flow_cleanly():
    reverted = []

    class Short(Task):
        def execute(self):
            return {"a": 1}

        def revert(self, **kwargs):
            reverted.append("short")

    def use(missing):
        return missing

    engine = engines.load(
        LinearFlow("f").add(Short(name="short", provides={"a", "missing"}), FunctorTask(use, name="use"))
    )
    with pytest.raises(InvalidFlowError, match="short"):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    assert reverted == ["short"]


def test_inject_keyed_by_rebound_symbol_like_taskflow():
    t = Echo(name="echo", provides="out", rebind={"a": "alpha"}, inject={"alpha": 1})
    assert run_one(t, store={"b": 2})["out"] == {"a": 1, "b": 2}


class Progress(Task):
    def execute(self):
        self.update_progress(0.5)
        self.update_progress(2.0)  # clamped
        return "ok"


def test_update_progress_reaches_atom_notifier():
    events = []
    engine = engines.load(LinearFlow("f").add(Progress(name="prog")))
    engine.atom_notifier.register(
        notifier.EVENT_UPDATE_PROGRESS, lambda event, details: events.append((event, details))
    )
    engine.run()
    assert [d["progress"] for _, d in events] == [0.5, 1.0]
    for event, details in events:
        assert event == notifier.EVENT_UPDATE_PROGRESS == Task.EVENT_UPDATE_PROGRESS
        assert details["atom_name"] == "prog"
        assert details["task_name"] == "prog"


def test_update_progress_outside_an_engine_is_harmless():
    Progress(name="alone").execute()


def test_revert_gets_failure_as_result_when_execute_failed():
    got = {}

    class Fails(Task):
        def execute(self, x):
            raise KeyError("k")

        def revert(self, x, result, **kwargs):
            got["x"] = x
            got["result"] = result

    with pytest.raises(KeyError):
        run_one(Fails(name="fails"), store={"x": 1})
    assert got["x"] == 1
    assert isinstance(got["result"], Failure)
    assert got["result"].check(KeyError)


def test_a_rebind_list_longer_than_the_parameters_is_refused_naming_the_method() -> None:
    class Two(Task):
        def execute(self, a: int, b: int) -> None:
            return None

        def revert(self, a: int) -> None:
            return None

    with pytest.raises(
        InvalidFlowError, match=r"^Extra arguments given: rebind lists 3 symbols but execute takes 2"
    ):
        Two(name="two", rebind=["x", "y", "z"])
    with pytest.raises(
        InvalidFlowError, match=r"rebind lists 2 symbols but revert takes 1 .*task 'two', revert_rebind"
    ):
        Two(name="two", revert_rebind=["x", "y"])
    assert Two(name="two", rebind=["x", "y"]).rebind == {"a": "x", "b": "y"}


class _Plain(Task):
    def execute(self) -> None:
        return None


class _TakesX(Task):
    def execute(self, x: int) -> int:
        return x

    def revert(self, x: int, **kwargs: Any) -> None:
        return None


def test_atoms_share_one_read_only_empty_argument_mapping() -> None:
    """An atom's argument mappings that hold nothing are one shared object (memory and cache lines per
    atom of a large flow), which nobody can change for the others; pickled or copied, it stays that
    one; an atom given revert symbols of its own gets dicts of its own."""
    import copy
    import pickle

    a, b = _Plain("a"), _Plain("b")
    empties = ("inject_kwargs", "required_rebind", "optional_rebind", "revert_required_rebind")
    for field in (*empties, "revert_optional_rebind", "revert_inject_kwargs"):
        assert getattr(a, field) == {} and getattr(a, field) is getattr(b, field), field
    with pytest.raises(TypeError, match="read-only"):
        a.required_rebind["x"] = "y"
    with pytest.raises(TypeError, match="read-only"):
        a.optional_rebind.update(x="y")
    assert b.required_rebind == {} and b.optional_rebind == {}
    for twin in (pickle.loads(pickle.dumps(a)), copy.copy(a), copy.deepcopy(a)):
        assert twin.required_rebind is b.required_rebind and twin.revert_inject_kwargs is b.inject_kwargs
    own = _Plain("own", revert_requires=["y"])
    assert own.revert_required_rebind == {"y": "y"} and a.revert_required_rebind == {}
    taker = _TakesX("taker", provides="out", revert_rebind={"x": "z"}, inject={"x": 1})
    assert taker.required_rebind == {} and taker.inject_kwargs == {"x": 1}
    assert taker.revert_required_rebind == {"x": "z"} and taker.revert_inject_kwargs == {}
    # what its own symbols leave empty is the shared mapping again, not an empty dict of its own
    assert taker.revert_inject_kwargs is a.revert_inject_kwargs
    assert own.revert_optional_rebind is a.revert_optional_rebind
    assert a.revert_inject_kwargs == {} and a.revert_required_rebind == {}
    # atoms with shared and with own mappings run side by side, each bound from its own
    assert engines.run(LinearFlow("f").add(a, b, own, taker), store={"y": 2, "z": 3})["out"] == 1
