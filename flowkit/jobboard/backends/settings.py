"""TaskFlow's job board settings dict, read into flowkit's board URL and options.

TaskFlow programs fetch a board with a dict: ``fetch(name, {"board": "zookeeper", "hosts": ...,
"path": ...}, client=..., persistence=...)``, where ``board`` is the kind or a URI of it
(``"zookeeper://localhost?path=/jobs"``). :func:`from_settings` turns that into the URL
:func:`flowkit.jobboard.backends.fetch` takes and the options it passes to the board.

Settings flowkit's boards have no use for are refused, naming them, rather than ignored: a setting
that silently does nothing is a surprise found in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flowkit.exceptions import JobBoardError

__all__ = ["from_settings"]

_ZOOKEEPER_KEYS = {"board", "hosts", "path", "timeout", "max_attempts", "world_read"}


def from_settings(conf: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(url, options)`` for the board TaskFlow's settings ``conf`` describe."""
    board = conf.get("board")
    if not isinstance(board, str) or not board.strip():
        raise JobBoardError(f"job board settings {dict(conf)!r} need 'board': a kind or a URL")
    settings = dict(conf)
    if "://" not in board:
        kind = board.strip().lower()
    else:
        parts = urlsplit(board)
        kind = parts.scheme.lower()
        if kind != "zookeeper":  # flowkit's own board URLs (sqlite://, postgresql://...) as they are
            return board, {key: value for key, value in settings.items() if key != "board"}
        # the URI's host, path and query fill in what the dict does not say itself
        if parts.netloc:
            settings.setdefault("hosts", parts.netloc)
        if parts.path:
            settings.setdefault("path", parts.path)
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            settings.setdefault(key, value)
    if kind != "zookeeper":
        raise JobBoardError(
            f"job board kind {kind!r} in settings is not offered: use 'zookeeper', or a flowkit board URL "
            f"(sqlite:///..., postgresql://..., memory://NAME)"
        )
    unknown = sorted(set(settings) - _ZOOKEEPER_KEYS)
    if unknown:
        raise JobBoardError(f"ZooKeeper job board settings: unknown setting(s) {', '.join(unknown)}")
    hosts = _hosts(settings.get("hosts", "127.0.0.1:2181"))
    path = str(settings.get("path", "/flowkit"))
    options: dict[str, Any] = {}
    if "timeout" in settings:
        options["timeout"] = _number(settings, "timeout", float)
    if "max_attempts" in settings:
        options["max_attempts"] = _number(settings, "max_attempts", int)
    if "world_read" in settings:
        options["world_read"] = str(settings["world_read"]).strip().lower() in ("1", "true", "yes", "on")
    return f"zookeeper://{hosts}{path if path.startswith('/') else '/' + path}", options


def _hosts(hosts: Any) -> str:
    if isinstance(hosts, str):
        return hosts.strip()
    if isinstance(hosts, Mapping):
        return ",".join(f"{host}:{port}" for host, port in hosts.items())
    if isinstance(hosts, list | tuple | set):
        return ",".join(str(host) for host in hosts)
    raise JobBoardError(
        f"ZooKeeper job board settings: 'hosts' must be a string, a list or a dict, not {hosts!r}"
    )


def _number(settings: Mapping[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(settings[key])
    except (TypeError, ValueError):
        raise JobBoardError(
            f"ZooKeeper job board settings: {key}={settings[key]!r} is not a number"
        ) from None
