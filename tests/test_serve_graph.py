"""The console's graph of a flow: compiled from its factory (under the allow list), or the saved atoms."""

from __future__ import annotations

from flowkit import GraphFlow, LinearFlow, retry
from flowkit.persistence.models import FlowDetail, TaskDetail
from flowkit.serve.flow_graph import compiled_graph, graph_of
from tests.console_flows import Gated


def test_retry_controllers_and_deciders_are_drawn() -> None:
    def only_if_x(history: dict[str, object]) -> bool:
        return True

    a, b = Gated("a", provides="x"), Gated("b")
    flow = LinearFlow("outer").add(
        GraphFlow("inner", retry=retry.Times(attempts=2, name="again"))
        .add(a, b)
        .link(a, b, decider=only_if_x)
    )
    g = compiled_graph(flow)
    inner = next(x for x in g.groups if x.name == "inner")
    assert (inner.pattern, inner.retry, inner.parent) == ("GraphFlow", "again", "outer")
    kinds = {n.name: (n.kind, n.group) for n in g.nodes}
    assert kinds["again"] == ("retry", "outer/inner") and kinds["a"] == ("task", "outer/inner")
    assert {(e.source, e.target): e.decider for e in g.edges}[("a", "b")] == "only_if_x"


def test_without_a_factory_the_saved_atoms_are_drawn_in_order() -> None:
    fd = FlowDetail("f")
    for i, name in enumerate(("z", "y")):
        ad = TaskDetail(name)
        ad.position = i
        fd.add(ad)
    g = graph_of(fd)
    assert (g.source, [n.name for n in g.nodes], g.edges) == ("atoms", ["z", "y"], [])
    fd.meta["factory"] = {"name": "tests.console_flows:graph", "args": [], "kwargs": {}}
    assert graph_of(fd).source == "factory"
    refused = graph_of(fd, allow=["somewhere.else"])  # cached for others, still refused here
    assert refused.source == "atoms" and "tests.console_flows" in (refused.note or "")
