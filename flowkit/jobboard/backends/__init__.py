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

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from flowkit import extras
from flowkit.exceptions import JobBoardError, UnknownBackendError
from flowkit.factory import allow_list
from flowkit.jobboard.base import JobBoard

if TYPE_CHECKING:
    from flowkit.persistence.backends.base import Backend

ZOOKEEPER_SCHEMES = ("zookeeper",)
SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "memory")
"""Each may add ``+driver`` (``postgresql+psycopg2://``), as for persistence."""
SCHEMES = ZOOKEEPER_SCHEMES + SQL_SCHEMES
N = TypeVar("N", int, float)

__all__ = ["SCHEMES", "display_url", "fetch"]


def display_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs (``user:***@host``).

    A SQL URL is rendered by SQLAlchemy (:func:`flowkit.sql.urls.hide_password`); others by plain
    string work, which also takes ZooKeeper's ``host:port,host:port`` lists and URLs too broken to parse.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    if scheme.split("+", 1)[0].lower() in SQL_SCHEMES[:-1]:  # not memory://, which has no password
        from flowkit.sql.urls import hide_password

        return hide_password(url)
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    userinfo, at, hosts = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{hosts}{tail}"


def fetch(
    name: str,
    url: str | Mapping[str, Any],
    persistence: Backend | str | None = None,
    *,
    allow: Iterable[str] | None = None,
    **options: Any,
) -> JobBoard:
    """A (not yet connected) board named ``name`` at ``url``; call ``connect()`` or use ``with``.

    ``url`` may also be TaskFlow's settings dict (``{"board": "zookeeper", "hosts": ..., "path":
    ...}``, see :mod:`.settings`); TaskFlow's ``client=`` (a kazoo client to share) is an option.

    ``allow`` sets the board's :attr:`~flowkit.jobboard.JobBoard.allow` list (module prefixes every
    posted factory must be defined under). ``options`` are passed to the backend's constructor and
    win over the URL's query.
    """
    if isinstance(url, Mapping):
        from flowkit.jobboard.backends.settings import from_settings

        url, from_dict = from_settings(url)
        options = from_dict | options
    board = _make(name, url, persistence, options)
    board.allow = allow_list(allow)
    return board


def _make(name: str, url: str, persistence: Backend | str | None, options: dict[str, Any]) -> JobBoard:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    dialect = scheme.split("+", 1)[0]
    if scheme in ZOOKEEPER_SCHEMES:
        extras.require("zookeeper", "the ZooKeeper job board")
        from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard

        arguments = ZooKeeperOptions.from_url(url).arguments()
        return ZooKeeperJobBoard(name, persistence=persistence, **(arguments | options))
    if dialect in SQL_SCHEMES:
        from flowkit.jobboard.backends.sql import SQLJobBoard

        board = SQLJobBoard(name, url, persistence=persistence, **options)
        if board.database.dialect == "postgresql":
            extras.require("postgres", "the PostgreSQL job board")
        return board
    raise UnknownBackendError(display_url(url), SCHEMES)


def _number(url: str, query: dict[str, str], key: str, kind: Callable[[str], N]) -> N:
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


@dataclasses.dataclass(frozen=True)
class ZooKeeperOptions:
    """What a ``zookeeper://`` URL says; None for what it leaves to the board's defaults."""

    hosts: str = "127.0.0.1:2181"
    path: str = "/flowkit"
    auth: tuple[str, str] | None = None
    timeout: float | None = None
    max_attempts: int | None = None
    world_read: bool | None = None
    history: float | None = None

    @classmethod
    def from_url(cls, url: str) -> ZooKeeperOptions:
        """Parse ``url``; an unknown option or a bad number raises JobBoardError naming the URL."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        userinfo, _, hosts = parts.netloc.rpartition("@")
        auth = None
        if userinfo:
            user, _, password = userinfo.partition(":")
            auth = (unquote(user), unquote(password))
        found = cls(
            hosts=hosts or cls.hosts,
            path=parts.path or cls.path,
            auth=auth,
            timeout=_number(url, query, "timeout", float) if "timeout" in query else None,
            max_attempts=_number(url, query, "max_attempts", int) if "max_attempts" in query else None,
            world_read=_flag(query.pop("world_read")) if "world_read" in query else None,
            history=_number(url, query, "history", float) if "history" in query else None,
        )
        _unknown(url, query)
        return found

    def arguments(self) -> dict[str, Any]:
        """The board constructor's keyword arguments that the URL set."""
        return {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}
