"""Factories for the allow-list tests, in a module that (like most) imports ``os`` and ``subprocess``.

A conductor told ``--allow tests.allowlist_flows`` may run what this module defines (``make``,
``Builder.create``, ``FLOW``), never what it merely imports: ``tests.allowlist_flows:os.system`` names
a shell, not a factory. Importing this module has no side effects.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from flowkit import LinearFlow, Task

__all__ = ["FLOW", "Builder", "Touch", "make", "os", "run_shell", "subprocess"]


class Touch(Task):
    """Creates the file it is given: proof that the flow ran (and where)."""

    def execute(self, path: str) -> None:
        Path(path).touch()


def make(name: str = "allowed") -> LinearFlow:
    return LinearFlow(name).add(Touch(f"{name}-touch"))


class Builder:
    @classmethod
    def create(cls, name: str = "built") -> LinearFlow:
        return make(name)

    shell = staticmethod(os.system)
    """Reached through a class defined here, but defined in ``os``: not a factory of this module."""


run_shell = subprocess.getoutput
"""A module attribute of this module whose object is defined elsewhere: not a factory either."""

FLOW = make("constant")
