"""Database URLs: the one parser that persistence and the SQL job board both use.

A flowkit database URL is a SQLAlchemy URL whose query may also carry the options of the backend that
reads it (``?durability=atom``, ``?lease=5``). :func:`parse` splits the two: a :class:`Database` (what
the engine connects to, the same for every backend on that database, so they can share one engine) and
the backend's options as strings, which the backend turns into its own frozen options dataclass.

Why one parser: every backend then takes the same schemes (``postgres://`` is ``postgresql://`` for
all), a bare ``postgresql://`` means psycopg2 everywhere (SQLAlchemy 2.1 would pick psycopg 3, which
flowkit does not depend on), and every URL that cannot work is refused before anything connects, as a
:class:`~flowkit.exceptions.FlowkitError` of the caller's kind that names the URL with its password
hidden (SQLAlchemy's own ``render_as_string(hide_password=True)``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from flowkit.exceptions import FlowkitError

N = TypeVar("N", int, float)

DIALECTS = ("sqlite", "postgresql")
ALIASES = {"postgres": "postgresql"}
"""Scheme spellings that mean a dialect under another name."""
SCHEMES = (*DIALECTS, *ALIASES)
"""The URL schemes of SQL databases (each may add ``+driver``)."""
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg2", "sqlite": "sqlite"}
# Query keys the drivers understand (passed through to them); any other key that is not an option of
# the backend reading the URL is a typo, refused rather than ignored or left to fail at connect.
DRIVER_KEYS: dict[str, frozenset[str]] = {
    "postgresql": frozenset(
        [
            "host",
            "hostaddr",
            "port",
            "dbname",
            "user",
            "password",
            "passfile",
            "channel_binding",
            "connect_timeout",
            "client_encoding",
            "options",
            "application_name",
            "fallback_application_name",
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
            "tcp_user_timeout",
            "gssencmode",
            "sslmode",
            "sslcompression",
            "sslcert",
            "sslkey",
            "sslpassword",
            "sslcertmode",
            "sslrootcert",
            "sslcrl",
            "sslcrldir",
            "sslsni",
            "requirepeer",
            "ssl_min_protocol_version",
            "ssl_max_protocol_version",
            "krbsrvname",
            "gsslib",
            "gssdelegation",
            "service",
            "target_session_attrs",
            "load_balance_hosts",
        ]
    ),
    "sqlite": frozenset({"timeout", "cached_statements"}),
}


@dataclass(frozen=True)
class Database:
    """A database as flowkit connects to it: a SQLAlchemy URL without any backend's options.

    ``name`` is set for an in-process database shared by name (the job board's ``memory://NAME``).
    """

    url: sa.URL
    name: str | None = None

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def in_memory(self) -> bool:
        """A SQLite database in this process only (no file)."""
        return self.dialect == "sqlite" and self.url.database in (None, "", ":memory:")

    @functools.cached_property
    def display(self) -> str:
        """The URL for messages and logs: its password hidden (made once: every durable point on a
        SQLite file passes it along for the message of a failed flush)."""
        if self.name is not None:
            return f"memory://{self.name}"
        return self.url.render_as_string(hide_password=True)

    @property
    def key(self) -> str | None:
        """What identifies the database within this process; None when no two users can share it (an
        unnamed in-memory SQLite database exists once per engine)."""
        if self.name is not None:
            return f"memory://{self.name}"
        if self.in_memory:
            return None
        return self.url.render_as_string(hide_password=False)


def memory(name: str) -> Database:
    """The in-process SQLite database called ``name`` (every user in this process sees the same)."""
    return Database(sa.URL.create("sqlite"), name=name)


def scheme_of(url: str) -> str:
    """The dialect a URL's scheme names (``postgres+psycopg2://`` -> ``postgresql``), else its scheme."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    return ALIASES.get(scheme, scheme)


def hide_password(url: str) -> str:
    """``url`` with its password shown as ``***``; string work when the URL is too broken to parse."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError):
        pass
    scheme, sep, rest = url.partition("://")
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    userinfo, at, hosts = rest[:end].rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{hosts}{rest[end:]}"


def parse(
    url: str, options: Collection[str], error: type[FlowkitError], what: str
) -> tuple[Database, dict[str, str]]:
    """``(database, backend options)`` for ``url``; ``options`` are the query keys the backend reads.

    Raises ``error`` (the caller's kind of FlowkitError), naming ``what`` the URL is for and the URL
    with its password hidden, for a URL that is not a SQL database URL flowkit can use.
    """

    bad = complaint(url, error, what)

    try:
        parsed = sa.make_url(url)
        port = parsed.port
    except (sa_exc.ArgumentError, ValueError):
        raise bad("not a database URL (scheme://[user[:password]@]host[:port]/database)") from None
    dialect, _, driver = parsed.drivername.lower().partition("+")
    dialect = ALIASES.get(dialect, dialect)
    if dialect not in DIALECTS:
        raise bad(f"unknown scheme; known: {', '.join(f'{s}://' for s in SCHEMES)}")
    if port is not None and not 0 < port < 65536:
        raise bad(f"port {port} is out of range")
    if dialect == "sqlite" and (parsed.host or parsed.username or port):
        raise bad("a SQLite URL has no host: sqlite:///relative/path.db, sqlite:////absolute/path.db")
    ours: dict[str, str] = {}
    kept: dict[str, str | tuple[str, ...]] = {}
    for key, value in parsed.query.items():
        if isinstance(value, tuple):
            raise bad(f"{key} is given {len(value)} times")
        if key in options:
            ours[key] = value
        elif key in DRIVER_KEYS[dialect]:
            kept[key] = value
        else:
            raise bad(f"unknown option {key!r}")
    drivername = f"{dialect}+{driver}" if driver else DEFAULT_DRIVERS[dialect]
    return Database(parsed.set(drivername=drivername, query=kept)), ours


def complaint(url: str, error: type[FlowkitError], what: str) -> Callable[[str], FlowkitError]:
    """A maker of ``error`` about ``url`` (password hidden) for ``what``: ``bad(reason)``."""
    shown = hide_password(url)
    return lambda reason: error(f"{what} URL {shown!r}: {reason}")


def number(
    options: Mapping[str, str],
    key: str,
    kind: type[N],
    bad: Callable[[str], FlowkitError],
    *,
    zero: bool = False,
) -> N | None:
    """``options[key]`` as a positive ``kind`` (or zero, if ``zero``); None when absent.

    ``bad(reason)`` makes the error for a value that is not such a number.
    """
    if key not in options:
        return None
    text = options[key]
    try:
        value = kind(text)
    except ValueError:
        raise bad(f"{key}={text!r} is not a number") from None
    if value < 0 or (value == 0 and not zero):
        raise bad(f"{key}={text!r} must be {'zero or more' if zero else 'more than zero'}")
    return value
