"""``flowkit graph FACTORY``: the compiled DAG of a flow as Graphviz dot or Mermaid.

Only atoms are drawn: the compiler's internal junction nodes are contracted away (each
junction's predecessors are joined to its successors). Retry controllers are diamonds;
links guarded by a decider are dashed and labelled with the decider's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import click

from flowkit.cli._common import FACTORY_HELP, FlowError, load_flow
from flowkit.compiler import JUNCTION, KIND_NAMES, CompiledFlow, compile_flow
from flowkit.exceptions import FlowkitError

FORMATS = ("dot", "mermaid")


@dataclass
class AtomGraph:
    """What is drawn: atoms (in compile order) and the links between them.

    Built straight from the compiler's adjacency lists, so drawing needs no graph library.
    """

    nodes: dict[str, str] = field(default_factory=dict)
    """Atom name -> kind ("task" or "retry")."""
    edges: dict[tuple[str, str], str | None] = field(default_factory=dict)
    """(from, to) -> the name of the decider guarding the link, or None."""


def atom_graph(compiled: CompiledFlow) -> AtomGraph:
    """The compiled graph with junctions contracted; edges with a decider carry its name."""
    names, kinds, succs = compiled.names, compiled.kinds, compiled.succs
    g = AtomGraph()
    for i in compiled.atom_ids():
        g.nodes[names[i]] = KIND_NAMES[kinds[i]]
    for i in compiled.atom_ids():
        seen = set(succs[i])
        stack = list(reversed(succs[i]))
        while stack:  # a junction's successors become the atom's own
            s = stack.pop()
            if kinds[s] != JUNCTION:
                g.edges[names[i], names[s]] = None
                continue
            fresh = [t for t in succs[s] if t not in seen]
            seen.update(fresh)
            stack.extend(reversed(fresh))
    for target, links in compiled.deciders.items():
        v = names[target]
        for link in links:
            label = getattr(link.decider, "__name__", "decider")
            label = "decider" if label.startswith("<") else label
            for u in (names[i] for i in link.history):
                if (u, v) in g.edges:
                    g.edges[u, v] = label
    return g


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(g: AtomGraph, name: str) -> str:
    """Graphviz dot: boxes for tasks, diamonds for retry controllers, dashed decider links."""
    lines = [f"digraph {_dot_quote(name)} {{", "    rankdir=TB;", "    node [shape=box];"]
    for node, kind in g.nodes.items():
        lines.append(f"    {_dot_quote(node)}" + (" [shape=diamond];" if kind == "retry" else ";"))
    for (u, v), decider in g.edges.items():
        attrs = f" [style=dashed, label={_dot_quote(decider)}]" if decider else ""
        lines.append(f"    {_dot_quote(u)} -> {_dot_quote(v)}{attrs};")
    lines.append("}")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(g: AtomGraph, name: str) -> str:
    """A Mermaid flowchart: rectangles for tasks, rhombi for retry controllers, dotted decider links."""
    ids = {node: f"n{k}" for k, node in enumerate(g.nodes)}
    lines = ["---", f"title: {_mermaid_text(name)}", "---", "flowchart TD"]
    for node, kind in g.nodes.items():
        label = f'"{_mermaid_text(node)}"'
        lines.append(f"    {ids[node]}{{{label}}}" if kind == "retry" else f"    {ids[node]}[{label}]")
    for (u, v), decider in g.edges.items():
        arrow = f'-.->|"{_mermaid_text(decider)}"|' if decider else "-->"
        lines.append(f"    {ids[u]} {arrow} {ids[v]}")
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[AtomGraph, str], str]] = {"dot": to_dot, "mermaid": to_mermaid}


@click.command("graph", epilog=FACTORY_HELP)
@click.argument("factory")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="dot", show_default=True)
def graph(factory: str, fmt: str) -> None:
    """Print the DAG that the flow built by FACTORY compiles to (atoms only)."""
    flow = load_flow(factory)
    try:
        compiled = compile_flow(flow)
    except FlowkitError as exc:
        raise FlowError(f"flow {flow.name!r} from {factory!r} does not compile: {exc}") from exc
    click.echo(RENDERERS[fmt](atom_graph(compiled), flow.name))
