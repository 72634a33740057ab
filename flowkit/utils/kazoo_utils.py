"""``flowkit.utils.kazoo_utils.make_client``: a ZooKeeper client from TaskFlow's settings dict.

TaskFlow programs build one client and hand it to several boards (``jobs.backends.fetch(...,
client=...)``). The settings are TaskFlow's: ``hosts`` (a string, a list, or a dict host -> port;
``localhost:2181`` if absent), ``timeout``, ``read_only``, ``randomize_hosts``, ``command_retry``,
``connection_retry`` (a kazoo ``KazooRetry`` or the dict to build one), ``handler``, and the SSL ones
(``keyfile``, ``keyfile_password``, ``certfile``, ``ca``, ``use_ssl``, ``verify_certs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowkit.exceptions import InvalidFormat
from flowkit.extras import require

__all__ = ["make_client"]

_PASSED_AS_IS = ("read_only", "randomize_hosts", "handler", "keyfile", "keyfile_password", "certfile", "ca",
                 "use_ssl", "verify_certs")  # fmt: skip


def make_client(conf: Mapping[str, Any]) -> Any:
    """A new, not yet started ``kazoo.client.KazooClient`` configured by ``conf``.

    The caller starts and stops it (``client.start()``, ``client.stop()``, ``client.close()``); a
    board given this client leaves it alone.
    """
    require("zookeeper", "flowkit.utils.kazoo_utils.make_client")
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry

    kwargs: dict[str, Any] = {"hosts": _hosts(conf.get("hosts", "localhost:2181"))}
    if "timeout" in conf:
        kwargs["timeout"] = float(conf["timeout"])
    for key in ("command_retry", "connection_retry"):
        retry = conf.get(key)
        if isinstance(retry, Mapping):
            retry = KazooRetry(**retry)
        if retry is not None:
            kwargs[key] = retry
    kwargs.update({key: conf[key] for key in _PASSED_AS_IS if key in conf})
    return KazooClient(**kwargs)


def _hosts(hosts: Any) -> str:
    """kazoo's ``"h1:p1,h2:p2"`` from a string, a list/set/tuple of hosts, or a dict host -> port."""
    if isinstance(hosts, str):
        return hosts.strip()
    if isinstance(hosts, Mapping):
        hosts = [f"{host}:{port}" for host, port in hosts.items()]
    if isinstance(hosts, (list, set, tuple)):
        return ",".join(str(host) for host in hosts)
    raise InvalidFormat(f"ZooKeeper 'hosts' must be a string, a list or a dict, not {hosts!r}")
