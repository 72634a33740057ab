"""Binding's shortcuts give what the general route gives.

Two shortcuts: the compiler binds an argument whose symbol has one provider, a direct predecessor,
without the general search (``bind``'s inline case), and the engine passes a one-argument atom's value
straight from its provider's result (``CompiledFlow.single_arg``) instead of through
``Storage.bind_args``. Random nestings of flows (store values, optional arguments, rebinds, keyed
results, several providers of a symbol, injected values) are bound both ways and run both ways, and
every argument every task received must be the same.
"""

from __future__ import annotations

import random
from typing import Any

from flowkit import GraphFlow, LinearFlow, Task, UnorderedFlow, engines
from flowkit.compiler import FROM_ATOM, Binding, CompiledFlow, compile_flow
from flowkit.compiler.binding import _bind_one, _Reachability
from flowkit.exceptions import FlowkitError
from flowkit.flow import Flow


class Rec(Task):
    """Records the arguments it got; its result names it, so a value from the wrong provider shows."""

    def __init__(self, seen: dict[str, dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen = seen

    def execute(self, **kwargs: Any) -> Any:
        self.seen[self.name] = dict(kwargs)
        n = len(self.provides)
        return f"{self.name}-out" if n <= 1 else tuple(f"{self.name}-{k}" for k in range(n))


class RecOpt(Rec):
    """One optional argument (``opt``, default ``"default"``) besides whatever it requires."""

    def execute(self, opt: Any = "default", **kwargs: Any) -> Any:
        return super().execute(opt=opt, **kwargs)


def _random_flow(rng: random.Random, seen: dict[str, dict[str, Any]]) -> Flow:
    symbols = [f"s{k}" for k in range(rng.randint(1, 6))]
    count = [0]

    def task() -> Rec:
        name = f"t{count[0]}"
        count[0] += 1
        requires = rng.sample(symbols, rng.randint(0, min(2, len(symbols))))
        free = [s for s in symbols if s not in requires]
        provided = rng.sample(free, rng.randint(0, min(2, len(free))))
        provides: Any = provided[0] if len(provided) == 1 else tuple(provided) or None
        kwargs: dict[str, Any] = {"name": name, "requires": requires, "provides": provides}
        if requires and rng.random() < 0.2:  # an argument named apart from its symbol
            kwargs["requires"] = requires[1:]
            kwargs["rebind"] = {"renamed": requires[0]}
        if rng.random() < 0.1:
            kwargs["inject"] = {rng.choice(symbols): "injected"}
        if rng.random() < 0.2:
            return RecOpt(seen, rebind={**kwargs.pop("rebind", {}), "opt": rng.choice(symbols)}, **kwargs)
        return Rec(seen, **kwargs)

    def flow(depth: int) -> Flow:
        kind = rng.choice((LinearFlow, GraphFlow, GraphFlow, UnorderedFlow))
        f = kind(f"f{count[0]}_{depth}")
        for _ in range(rng.randint(1, 6)):
            child: Any = flow(depth + 1) if depth < 2 and rng.random() < 0.2 else task()
            try:
                f.add(child)
            except FlowkitError:  # an ambiguous provider or a cycle: refused, the flow stays as it was
                continue
        return f

    return flow(0)


def _general(c: CompiledFlow) -> list[tuple[Binding, ...]]:
    """Every atom's execute bindings by the general route alone (``_bind_one`` for each argument)."""
    reach = _Reachability(c.preds, c.order)
    out: list[tuple[Binding, ...]] = [()] * len(c.atoms)
    for i in c.order:
        atom = c.atoms[i]
        bound = [
            _bind_one(c, i, atom, arg, symbol, False, c.providers, reach)
            for arg, symbol in atom.required_rebind.items()
        ]
        bound += [
            _bind_one(c, i, atom, arg, symbol, True, c.providers, reach)
            for arg, symbol in atom.optional_rebind.items()
        ]
        out[i] = tuple(bound)
    return out


def _run(flow: Flow, store: dict[str, Any], seen: dict[str, dict[str, Any]], shortcut: bool) -> Any:
    seen.clear()
    engine = engines.load(flow, store=store)
    c = engine.compile()
    if not shortcut:
        c.single_arg[:] = [None] * len(c.single_arg)
    engine.run()
    return dict(seen), engine.storage.fetch_all()


def test_random_flows_bind_and_run_the_same_as_the_general_route() -> None:
    compiled = shortcuts = ran = 0
    for seed in range(300):
        rng = random.Random(seed)
        seen: dict[str, dict[str, Any]] = {}
        flow = _random_flow(rng, seen)
        try:
            c = compile_flow(flow)
        except FlowkitError:
            continue
        compiled += 1
        assert c.bindings == _general(c), f"seed {seed}"
        for i, bindings in enumerate(c.bindings):
            if c.single_arg[i] is not None:
                shortcuts += 1
                (b,) = bindings
                assert b.kind == FROM_ATOM and b.key is None and not b.optional, f"seed {seed}"
                assert c.single_arg[i] is b, f"seed {seed}"
        # every symbol in the store, but some left out: an optional argument then takes its default
        store = {f"s{k}": f"store-{k}" for k in range(6) if rng.random() < 0.9}
        try:
            fast = _run(flow, store, seen, shortcut=True)
        except FlowkitError:  # a requirement nothing meets: the same with or without the shortcut
            continue
        slow = _run(flow, store, seen, shortcut=False)
        assert fast == slow, f"seed {seed}"
        ran += 1
    # the comparisons meant something: most flows compiled and ran, and the shortcut was often taken
    assert compiled > 200 and ran > 150 and shortcuts > 50, (compiled, ran, shortcuts)


def test_a_chain_passes_each_value_on() -> None:
    seen: dict[str, dict[str, Any]] = {}
    flow = GraphFlow("chain").add(
        *(Rec(seen, name=f"t{i}", provides=f"v{i}", requires=[f"v{i - 1}"] if i else []) for i in range(30))
    )
    engine = engines.load(flow)
    engine.run()
    c = engine.compile()
    assert all(
        c.single_arg[i] == Binding(f"v{i - 1}", f"v{i - 1}", False, FROM_ATOM, i - 1) for i in range(1, 30)
    )
    assert all(seen[f"t{i}"] == {f"v{i - 1}": f"t{i - 1}-out"} for i in range(1, 30))
    assert engine.storage.fetch("v29") == "t29-out"


def test_a_provider_that_was_not_run_falls_back_to_the_store() -> None:
    # b's provider a is ignored by a decider: b's value comes from the store, not from a's (absent) result
    seen: dict[str, dict[str, Any]] = {}
    first = Rec(seen, name="first")
    a = Rec(seen, name="a", provides="x")
    b = Rec(seen, name="b", requires=["x"])
    flow = GraphFlow("g").add(first, a, b)
    flow.link(first, a, decider=lambda history: False, decider_depth="ATOM")
    engine = engines.load(flow, store={"x": "stored"})
    c = engine.compile()
    assert c.single_arg[c.index["b"]] == Binding("x", "x", False, FROM_ATOM, c.index["a"])
    engine.run()
    assert "a" not in seen
    assert seen["b"] == {"x": "stored"}
