"""A TCP proxy on loopback that the tests put between a client and a real service, to break the link.

The service itself (PostgreSQL, RabbitMQ, ZooKeeper) is never stopped: it is shared by the whole test
session. What a client sees of a server restart or a dropped network is made here instead:

- :meth:`TcpProxy.cut` closes every connection through the proxy and refuses new ones until
  :meth:`TcpProxy.restore` (a server that went away);
- ``cut(blackhole=True)`` keeps the connections open but drops every byte, both ways (a network
  partition: the client only finds out by its own timeouts);
- :meth:`TcpProxy.cut_for` cuts, then accepts connections again by itself after a while (a restart).
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``; see the module docstring.

    ``accepted`` counts the connections forwarded so far (a client that reconnected made more than one).
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.accepted = 0
        self._refuse_until = 0.0  # time.monotonic() before which new connections are refused
        self._blackhole = False
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name=f"tcp-proxy-{self.port}", daemon=True).start()

    @property
    def address(self) -> str:
        """``127.0.0.1:port``, to put in a client's URL instead of the service's address."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- breaking and mending the link ------------------------------------------------------------

    def cut(self, blackhole: bool = False) -> None:
        """Sever every connection and refuse new ones until :meth:`restore`; with ``blackhole``, keep
        connections open (and accept new ones) but drop every byte until then."""
        with self._lock:
            self._blackhole = blackhole
            self._refuse_until = 0.0 if blackhole else math.inf
        if not blackhole:
            self._drop_all()

    def cut_for(self, seconds: float) -> None:
        """Sever every connection and refuse new ones for ``seconds``, then accept them again."""
        with self._lock:
            self._blackhole = False
            self._refuse_until = time.monotonic() + seconds
        self._drop_all()

    def restore(self) -> None:
        """Forward again. Connections that lived through a blackhole have lost bytes, so they are
        closed: the client reconnects."""
        with self._lock:
            blackholed, self._blackhole = self._blackhole, False
            self._refuse_until = 0.0
        if blackholed:
            self._drop_all()

    def close(self) -> None:
        self._closed = True
        self._server.close()
        self._drop_all()

    # -- forwarding ---------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, (client, upstream)), daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        try:
            while data := src.recv(65536):
                if not self._blackhole:
                    dst.sendall(data)
        except OSError:
            pass
        # One side ended: end the other, and forget the pair (the other pump gets here too).
        with self._lock:
            known = pair in self._pairs
            if known:
                self._pairs.remove(pair)
        if known:
            _shut(pair)

    def _drop_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _shut(pair)


def _shut(pair: tuple[socket.socket, socket.socket]) -> None:
    # shutdown() first: it wakes a pump blocked in recv() on the socket, which close() alone does not.
    for s in pair:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()
