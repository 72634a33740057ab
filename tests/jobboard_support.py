"""Helpers for the job board and conductor tests: a scratch ZooKeeper tree, and a TCP proxy that can
cut a client off from ZooKeeper and let it back (the shared ZooKeeper server is never stopped)."""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from collections.abc import Iterator

ROOT = "/flowkit-tests"


@contextlib.contextmanager
def zookeeper_tree(hosts: str, auth: tuple[str, str] | None = None) -> Iterator[str]:
    """A fresh path for one test's board, deleted afterwards (as ``auth``'s user, for ACL tests)."""
    from kazoo.client import KazooClient

    auth_data = [("digest", f"{auth[0]}:{auth[1]}")] if auth else None
    client = KazooClient(hosts=hosts, timeout=4, auth_data=auth_data)
    client.start(timeout=10)
    try:
        client.ensure_path(ROOT)  # open ACL: a board with an ACL must not create the shared root
        path = f"{ROOT}/{secrets.token_hex(6)}"
        try:
            yield path
        finally:
            with contextlib.suppress(Exception):
                client.delete(path, recursive=True)
    finally:
        client.stop()
        client.close()


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``; :meth:`cut` severs every connection and refuses new
    ones (``blackhole=True``: keeps them open but drops every byte, like a network partition) until
    :meth:`restore`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._blackhole = False
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._open.is_set() and not self._blackhole:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if self._open.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _drop_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self, blackhole: bool = False) -> None:
        self._blackhole = blackhole
        self._open.clear()
        if not blackhole:
            self._drop_all()

    def restore(self) -> None:
        if self._blackhole:
            self._drop_all()  # the byte streams are broken; the client reconnects
        self._blackhole = False
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self._server.close()
        self._drop_all()
