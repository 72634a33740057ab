"""The three ways to order a flow's children: linear, unordered and graph."""

from flowkit.patterns import graph_flow, linear_flow, unordered_flow

__all__ = ["graph_flow", "linear_flow", "unordered_flow"]
