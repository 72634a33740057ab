"""``flowkit.utils.threading_utils``: the two thread helpers TaskFlow programs import.

Examples and conductors written for TaskFlow start their board consumers and workers with
``daemon_thread(target, *args)`` and print ``get_ident()``; both are one line over :mod:`threading`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

get_ident = threading.get_ident
"""The calling thread's identifier (:func:`threading.get_ident`)."""

__all__ = ["daemon_thread", "get_ident"]


def daemon_thread(target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
    """A daemon thread, not yet started, that calls ``target(*args, **kwargs)``.

    Daemon, so that a worker or conductor loop left running never keeps the program from exiting.
    """
    thread = threading.Thread(target=target, args=args, kwargs=kwargs)
    thread.daemon = True
    return thread
