"""Job board backends, chosen by URL: :func:`fetch`.

``zookeeper://[user:password@]host:port[,host:port...]/path?timeout=SECONDS[&max_attempts=N][&world_read=1]``
    ZooKeeper (claims die with their owner's session; ``timeout`` is that session's timeout).
``sqlite:///path/to/file.db``, ``postgresql://user@host/db`` (or ``postgres://``), ``memory://NAME``
    The board in an SQL database (claims are leases the claimant renews; ``?lease=SECONDS``); the URL is
    read by the same parser as persistence's (:mod:`flowkit.sql.urls`), and a board on the same database
    as persistence shares its engine. ``memory://NAME`` is an SQLite database in this process.

Backends import their client libraries only when fetched (ZooKeeper: ``flowkit[zookeeper]``,
PostgreSQL: ``flowkit[postgres]``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from flowkit import extras
from flowkit.exceptions import JobBoardError, UnknownBackendError
from flowkit.factory import allow_list
from flowkit.jobboard.base import JobBoard

ZOOKEEPER_SCHEMES = ("zookeeper",)
SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "memory")
"""Each may add ``+driver`` (``postgresql+psycopg2://``), as for persistence."""
SCHEMES = ZOOKEEPER_SCHEMES + SQL_SCHEMES

__all__ = ["SCHEMES", "display_url", "fetch"]


def display_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs (``user:***@host``).

    Plain string work, so it also takes ZooKeeper's ``host:port,host:port`` lists and URLs too broken
    to parse.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    userinfo, at, hosts = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{hosts}{tail}"


def fetch(
    name: str, url: str, persistence: Any = None, *, allow: Iterable[str] | None = None, **options: Any
) -> JobBoard:
    """A (not yet connected) board named ``name`` at ``url``; call ``connect()`` or use ``with``.

    ``allow`` sets the board's :attr:`~flowkit.jobboard.JobBoard.allow` list (module prefixes every
    posted factory must be defined under). ``options`` are passed to the backend's constructor and
    win over the URL's query.
    """
    board = _make(name, url, persistence, options)
    board.allow = allow_list(allow)
    return board


def _make(name: str, url: str, persistence: Any, options: dict[str, Any]) -> JobBoard:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    dialect = scheme.split("+", 1)[0]
    if scheme in ZOOKEEPER_SCHEMES:
        extras.require("zookeeper", "the ZooKeeper job board")
        from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard

        return ZooKeeperJobBoard(name, persistence=persistence, **(_zookeeper_options(url) | options))
    if dialect in SQL_SCHEMES:
        from flowkit.jobboard.backends.sql import SQLJobBoard

        board = SQLJobBoard(name, url, persistence=persistence, **options)
        if board.database.dialect == "postgresql":
            extras.require("postgres", "the PostgreSQL job board")
        return board
    raise UnknownBackendError(display_url(url), SCHEMES)


def _number(url: str, query: dict[str, str], key: str, kind: type) -> Any:
    value = query.pop(key)
    try:
        return kind(value)
    except ValueError:
        raise JobBoardError(f"job board URL {display_url(url)!r}: {key}={value!r} is not a number") from None


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _unknown(url: str, query: dict[str, str]) -> None:
    if query:
        raise JobBoardError(
            f"job board URL {display_url(url)!r}: unknown option(s) {', '.join(sorted(query))}"
        )


def _zookeeper_options(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    userinfo, _, hosts = parts.netloc.rpartition("@")
    options: dict[str, Any] = {"hosts": hosts or "127.0.0.1:2181", "path": parts.path or "/flowkit"}
    if userinfo:
        user, _, password = userinfo.partition(":")
        options["auth"] = (unquote(user), unquote(password))
    if "timeout" in query:
        options["timeout"] = _number(url, query, "timeout", float)
    if "max_attempts" in query:
        options["max_attempts"] = _number(url, query, "max_attempts", int)
    if "world_read" in query:
        options["world_read"] = _flag(query.pop("world_read"))
    _unknown(url, query)
    return options
