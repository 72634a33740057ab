"""Linear and complete graph flows of atoms are laid out in bulk (``Structure.add_atoms``): the same
DAG as one by one.

Random nestings of linear, unordered and graph flows (with retry controllers, empty subflows and data
edges across them) are compiled twice, once as they are and once with the bulk path turned off, and
must give the same nodes, edges, scopes, order and bindings; a duplicate name is still refused,
named, whichever path saw it.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from flowkit import GraphFlow, LinearFlow, Task, UnorderedFlow
from flowkit.compiler import CompiledFlow, compile_flow
from flowkit.compiler.structure import Structure
from flowkit.exceptions import DuplicateNameError
from flowkit.flow import Flow
from flowkit.retry import Times


class Step(Task):
    def execute(self, **kwargs: Any) -> None:
        return None


def _shape(c: CompiledFlow) -> tuple[Any, ...]:
    bindings = [[(b.arg, b.symbol, b.kind, b.provider, b.key) for b in bs] for bs in c.bindings]
    return (
        c.names, c.kinds, c.preds, c.succs, c.retry_of, c.scope_end, c.index, c.order, bindings,
        [id(a) for a in c.atoms],
    )  # fmt: skip


def _both_ways(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    fast = _shape(compile_flow(flow))
    with monkeypatch.context() as m:
        m.setattr(Structure, "add_atoms", lambda self, children, retry, chain: False)
        slow = _shape(compile_flow(flow))
    return fast, slow


def _random_flow(rng: random.Random, counter: list[int], depth: int = 0) -> Flow:
    kind = rng.choice((LinearFlow, LinearFlow, UnorderedFlow, GraphFlow))
    n = counter[0]
    counter[0] += 1
    retry = Times(2, name=f"r{n}") if rng.random() < 0.3 else None
    flow = kind(f"f{n}", retry=retry)
    for _ in range(rng.randint(0, 5)):
        if depth < 3 and rng.random() < 0.3:
            flow.add(_random_flow(rng, counter, depth + 1))
            continue
        k = counter[0]
        counter[0] += 1
        requires = [f"s{j}" for j in rng.sample(range(k), min(k, rng.randint(0, 2)))]
        flow.add(Step(name=f"t{k}", provides=f"s{k}", requires=requires))
    return flow


def test_random_nestings_compile_the_same_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    compared = 0
    for seed in range(300):
        rng = random.Random(seed)
        try:
            flow = _random_flow(rng, [0])
            fast, slow = _both_ways(flow, monkeypatch)
        except Exception as exc:  # a random flow may be refused (a missing symbol is not): both ways
            with monkeypatch.context() as m:
                m.setattr(Structure, "add_atoms", lambda self, children, retry, chain: False)
                with pytest.raises(type(exc)):
                    compile_flow(flow)
            continue
        assert fast == slow, f"seed {seed}"
        compared += 1
    assert compared > 200  # most random flows compile: the comparison means something


def test_a_long_chain_with_a_retry_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = LinearFlow("outer").add(
        Step(name="first"),
        LinearFlow("inner", retry=Times(3, name="r")).add(*(Step(name=f"t{i}") for i in range(40))),
        Step(name="last"),
    )
    fast, slow = _both_ways(flow, monkeypatch)
    assert fast == slow
    c = compile_flow(flow)
    assert c.preds[c.index["t0"]] == [c.index["r"]]
    assert c.succs[c.index["t39"]] == [c.index["last"]]


@pytest.mark.parametrize(
    "flow",
    [
        LinearFlow("dup").add(Step(name="a"), Step(name="b"), Step(name="a")),
        LinearFlow("outer").add(Step(name="a"), LinearFlow("inner").add(Step(name="b"), Step(name="a"))),
    ],
)
def test_a_duplicate_name_is_still_refused_and_named(flow: Flow) -> None:
    with pytest.raises(DuplicateNameError) as info:
        compile_flow(flow)
    assert repr("a") in str(info.value)
