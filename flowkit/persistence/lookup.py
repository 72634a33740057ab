"""Flow details found the way operators name them: by uuid or a unique prefix of it."""

from __future__ import annotations

from flowkit.exceptions import AmbiguousPrefixError, NotFound
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail
from flowkit.persistence.rows import FLOWS

__all__ = ["find_flow_detail"]


def find_flow_detail(backend: Backend, prefix: str) -> FlowDetail:
    """The flow detail whose uuid is or starts with ``prefix`` (with its atom details).

    :class:`~flowkit.exceptions.NotFound` when none does, :class:`AmbiguousPrefixError` when several do.
    """
    prefix = prefix.strip().lower()
    with backend.get_connection() as conn:
        try:
            return conn.get_flow_detail(prefix)
        except NotFound:
            pass
        matches = _starting_with(backend, prefix)
        if matches is None:
            uuids = conn.run(lambda: [str(r["uuid"]) for r in conn.select_rows(FLOWS)])
            matches = sorted(u for u in uuids if u.startswith(prefix))
        if not matches:
            raise NotFound(
                f"no flow detail with uuid {prefix!r} or starting with it in {backend.display_url}"
            )
        if len(matches) > 1:
            raise AmbiguousPrefixError("flow detail", prefix, matches)
        return conn.get_flow_detail(matches[0])


def _starting_with(backend: Backend, prefix: str) -> list[str] | None:
    """The flow detail uuids starting with ``prefix`` by one indexed query on an SQL backend (None on
    others, which are scanned instead)."""
    engine = getattr(backend, "engine", None)
    if engine is None:
        return None
    import sqlalchemy as sa

    from flowkit.persistence.backends._tables import flowdetails as t

    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = sa.select(t.c.uuid).where(t.c.uuid.like(f"{escaped}%", escape="\\")).order_by(t.c.uuid)
    with engine.connect() as sql:
        return [str(u) for u in sql.execute(query).scalars()]
