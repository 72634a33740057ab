"""What persistence stores: a logbook holds flow details, a flow detail holds atom details.

These are plain in-memory records, the same for every backend. A :class:`FlowDetail` is one run of one
flow (its state, the failures it reverts for, its ``meta`` with the store and the factory that rebuilds
it); an :class:`AtomDetail` is one task (:class:`TaskDetail`) or retry controller
(:class:`RetryDetail`) in it, found again by *name* when a flow is resumed. Values (results, meta) are
whatever the backend's serializer returns: JSON by default, so a tuple comes back as a list. Names
are checked when a record is made (:func:`flowkit.names.check_name`): a name no database can hold is
an :class:`~flowkit.exceptions.InvalidNameError` here, not a driver's error half way through a save.

An atom detail's ``uuid`` stays the same for the whole life of the flow detail, across retries, crashes
and resumes: it is the idempotency key a task can hand to outside APIs (see
:meth:`flowkit.storage.Storage.get_atom_uuid`).
"""

from __future__ import annotations

import os
import uuid as uuidlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

from flowkit.atom import version_text
from flowkit.failure import Failure
from flowkit.names import check_name
from flowkit.retry import History
from flowkit.states import AtomState, FlowState

TASK_KIND = "task"
RETRY_KIND = "retry"


class Intention(StrEnum):
    """What the engine means to do with an atom next (saved before it does it)."""

    EXECUTE = "EXECUTE"
    """Run ``execute`` (or it is running)."""
    REVERT = "REVERT"
    """Run ``revert`` (or it is running)."""
    RETRY = "RETRY"
    """A retry controller is about to run its subflow again."""
    IGNORE = "IGNORE"
    """A decider skipped the atom."""


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (what every timestamp here is)."""
    return datetime.now(UTC)


def _new_uuid() -> str:
    return str(uuidlib.uuid4())


# -- pretty text (pformat) ----------------------------------------------------------------------------
# One layout for the three records, so a logbook prints as an indented tree: a "Kind: 'name'" head,
# then " - field = value" lines one space deeper, meta entries as "   + key = value" under "- metadata:",
# children one space deeper again. The facts and their order are TaskFlow's, so its tools and examples
# print the same text.


def _head(obj: object, name: str, indent: int) -> str:
    return f"{' ' * indent}{type(obj).__name__}: '{name}'"


def _field(indent: int, key: str, value: object) -> str:
    return f"{' ' * indent}- {key} = {value}"


def _utc_text(when: datetime) -> str:
    """``when`` in UTC, ISO 8601 without the offset (``2026-01-02T03:04:05.000006``), as TaskFlow prints."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat()


def _version_text(version: object) -> str | None:
    """A version as people write it: ``(1, 0)`` (how tasks often declare it) is ``1.0``."""
    return None if version is None else version_text(version)


def _meta_lines(meta: Mapping[str, Any], indent: int) -> list[str]:
    """``meta`` as lines; ``progress`` (a fraction) as a percentage, the way people read it.

    An empty ``store`` (every flow detail flowkit saves has one) is left out: it says nothing, and
    TaskFlow's text has no such line.
    """
    shown = {key: value for key, value in meta.items() if not (key == "store" and value == {})}
    if not shown:
        return []
    lines = [f"{' ' * indent}- metadata:"]
    for key, value in shown.items():
        if key == "progress" and isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{value * 100.0:0.2f}%"
        lines.append(f"{' ' * (indent + 2)}+ {key} = {value}")
    return lines


class AtomDetail:
    """The saved state of one atom of one flow detail; subclasses say which kind of atom.

    ``started_at``/``finished_at`` bound the most recent ``execute``, ``revert_started_at``/
    ``revert_finished_at`` the most recent ``revert`` (kept apart so that a reverted atom still shows
    how long it ran); ``attempts`` counts how many times ``execute`` was started, crashes included;
    ``seq`` orders the atoms that finished (later providers win when several provide one symbol).
    """

    kind: ClassVar[str] = TASK_KIND

    def __init__(
        self,
        name: str,
        uuid: str | None = None,
        *,
        state: AtomState | str = AtomState.PENDING,
        intention: Intention | str = Intention.EXECUTE,
        results: Any = None,
        failure: Failure | None = None,
        revert_results: Any = None,
        revert_failure: Failure | None = None,
        version: str | None = None,
        attempts: int = 0,
        seq: int = 0,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        meta: Mapping[str, Any] | None = None,
        parent_uuid: str | None = None,
        position: int | None = None,
        revert_started_at: datetime | None = None,
        revert_finished_at: datetime | None = None,
    ) -> None:
        self.name = check_name(name, "atom name")
        self.uuid = uuid or _new_uuid()
        # the enum call only for a str (as read from a row): a new atom detail per atom of a new flow
        self.state = state if type(state) is AtomState else AtomState(state)
        self.intention = intention if type(intention) is Intention else Intention(intention)
        self.results = results
        self.failure = failure
        self.revert_results = revert_results
        self.revert_failure = revert_failure
        self.version = version
        self.attempts = attempts
        self.seq = seq
        self.started_at = started_at
        self.finished_at = finished_at
        self.revert_started_at = revert_started_at
        self.revert_finished_at = revert_finished_at
        self.meta: dict[str, Any] = dict(meta or {})
        self.parent_uuid = parent_uuid
        """The uuid of the flow detail this atom detail belongs to."""
        self.position = position
        """Where the atom sits in its flow (its compiled order); orders iteration."""

    @classmethod
    def unsaved(cls, name: str, uuid: str, version: str | None, position: int) -> Self:
        """``cls(name, uuid, version=version, position=position)``: the same fields, set from a copy
        of the defaults instead of through the keyword constructor.

        Why: a new flow detail's set-up makes one per atom, and binding the constructor's twenty
        keywords was most of an atom's set-up in Python.
        """
        ad = cls.__new__(cls)
        fields = ad.__dict__
        fields.update(_UNSAVED)
        fields["name"] = check_name(name, "atom name")
        fields["uuid"] = uuid
        fields["version"] = version
        fields["meta"] = {}
        fields["position"] = position
        if issubclass(cls, RetryDetail):
            fields["history"] = History()
        return ad

    def update(self, other: AtomDetail) -> AtomDetail:
        """Take every saved field of ``other`` (the same atom, as a backend returned it); returns self.

        TaskFlow's ``AtomDetail.update``: ``ad.update(conn.update_atom_details(ad))``.
        """
        if other is not self:
            for name, value in vars(other).items():
                if name != "meta":
                    setattr(self, name, value)
            self.meta = dict(other.meta)
        return self

    @property
    def duration(self) -> float | None:
        """Seconds the last ``execute`` took; None while it runs or before it started."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def revert_duration(self) -> float | None:
        """Seconds the last ``revert`` took; None while it runs or when it was never reverted."""
        if self.revert_started_at is None or self.revert_finished_at is None:
            return None
        return (self.revert_finished_at - self.revert_started_at).total_seconds()

    def pformat(self, indent: int = 0, linesep: str = os.linesep) -> str:
        """This atom detail as indented multi-line text (uuid, state, version, results, meta).

        ``failure`` shows only whether there is one: a traceback would swamp the tree.
        """
        inner = indent + 1
        lines = [
            _head(self, self.name, indent),
            _field(inner, "uuid", self.uuid),
            _field(inner, "state", self.state.value),
            _field(inner, "version", _version_text(self.version)),
            _field(inner, "results", self.results),
            _field(inner, "failure", self.failure is not None),
        ]
        lines.extend(_meta_lines(self.shown_meta(), inner))
        return linesep.join(lines)

    def shown_meta(self) -> dict[str, Any]:
        """``meta`` as printed: what was saved (a task detail adds its progress, see there)."""
        return self.meta

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, uuid={self.uuid!r}, state={self.state.value})"


class TaskDetail(AtomDetail):
    """The saved state of a task."""

    kind = TASK_KIND

    def shown_meta(self) -> dict[str, Any]:
        """``meta`` with the task's progress when none was saved, worked out from its state as storage
        does: 1.0 once it succeeded or was reverted, 0.0 once it started (a saved one is shown as is).

        TaskFlow's engine writes the progress into every task's meta; flowkit saves no extra row for
        it, yet prints the same ``progress = 100.00%`` line.
        """
        state = self.state
        if state is AtomState.PENDING or "progress" in self.meta:
            return self.meta
        progress = 1.0 if state is AtomState.SUCCESS or state is AtomState.REVERTED else 0.0
        return {"progress": progress, **self.meta}


class RetryDetail(AtomDetail):
    """The saved state of a retry controller, with its ``history`` of attempts and their failures."""

    kind = RETRY_KIND

    def __init__(self, name: str, uuid: str | None = None, *, history: History | None = None, **kw: Any):
        super().__init__(name, uuid, **kw)
        self.history = history if history is not None else History()


_UNSAVED: dict[str, Any] = dict(vars(AtomDetail("-", "-")))
"""A new atom detail's fields (see :meth:`AtomDetail.unsaved`); name, uuid, version, meta, position
are set apart."""

ATOM_DETAIL_CLASSES: dict[str, type[AtomDetail]] = {TASK_KIND: TaskDetail, RETRY_KIND: RetryDetail}
"""Atom detail class by ``kind``, as stored in the database."""


class FlowDetail:
    """The saved state of one run of one flow: its state, failures, ``meta`` and atom details.

    ``state`` is None in a flow detail made here that no engine has run yet (TaskFlow's convention);
    it is saved as ``PENDING``, so one read back from a backend always has a state.

    ``failures`` are the failures the flow reverts (or reverted) for: a flow that crashed while
    reverting needs them to finish reverting. ``meta["store"]`` is the flow's store and
    ``meta["factory"]`` the factory that rebuilds the flow (see ``engines.save_factory_details``).
    """

    def __init__(
        self,
        name: str,
        uuid: str | None = None,
        *,
        state: FlowState | str | None = None,
        meta: Mapping[str, Any] | None = None,
        failures: Mapping[str, Failure] | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        parent_uuid: str | None = None,
    ) -> None:
        self.name = check_name(name, "flow name")
        self.uuid = uuid or _new_uuid()
        self.state: FlowState | None = None if state is None else FlowState(state)
        self.meta: dict[str, Any] = dict(meta or {})
        self.failures: dict[str, Failure] = dict(failures or {})
        self.created_at = created_at or utcnow()
        self.updated_at = updated_at or self.created_at
        self.parent_uuid = parent_uuid
        """The uuid of the logbook this flow detail belongs to."""
        self._atoms: dict[str, AtomDetail] = {}

    def update(self, other: FlowDetail) -> FlowDetail:
        """Take ``other``'s state, meta, failures and atom details (the same flow detail, as a backend
        returned it); returns self. TaskFlow's ``FlowDetail.update``."""
        if other is not self:
            self.state = other.state
            self.meta = dict(other.meta)
            self.failures = dict(other.failures)
            self.updated_at = other.updated_at
            for ad in other:
                self.add(ad)
        return self

    def add(self, atom_detail: AtomDetail) -> AtomDetail:
        """Add (or replace, by uuid) an atom detail; returns it."""
        atom_detail.parent_uuid = self.uuid
        if atom_detail.position is None:
            atom_detail.position = len(self._atoms)
        self._atoms[atom_detail.uuid] = atom_detail
        return atom_detail

    def find(self, uuid: str) -> AtomDetail | None:
        """The atom detail with this uuid, or None."""
        return self._atoms.get(uuid)

    def find_by_name(self, name: str) -> AtomDetail | None:
        """The atom detail of the atom called ``name``, or None (names are unique in a flow)."""
        for ad in self._atoms.values():
            if ad.name == name:
                return ad
        return None

    def clear_atoms(self) -> None:
        """Forget every atom detail (in memory only)."""
        self._atoms.clear()

    def __iter__(self) -> Iterator[AtomDetail]:
        return iter(list(self._atoms.values()))

    def __len__(self) -> int:
        return len(self._atoms)

    def pformat(self, indent: int = 0, linesep: str = os.linesep) -> str:
        """This flow detail and its atom details as indented multi-line text (for people and logs)."""
        inner = indent + 1
        lines = [_head(self, self.name, indent), _field(inner, "uuid", self.uuid)]
        lines.append(_field(inner, "state", self.state))  # None for a new one, as TaskFlow prints it
        lines.extend(_meta_lines(self.meta, inner))
        lines.extend(atom.pformat(inner, linesep) for atom in self)
        return linesep.join(lines)

    def __repr__(self) -> str:
        return f"FlowDetail(name={self.name!r}, uuid={self.uuid!r}, state={self.state}, atoms={len(self)})"


class LogBook:
    """A named group of flow details (say, everything done for one customer's cluster)."""

    def __init__(
        self,
        name: str,
        uuid: str | None = None,
        *,
        meta: Mapping[str, Any] | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        self.name = check_name(name, "logbook name")
        self.uuid = uuid or _new_uuid()
        self.meta: dict[str, Any] = dict(meta or {})
        self.created_at = created_at or utcnow()
        self.updated_at = updated_at or self.created_at
        self._flows: dict[str, FlowDetail] = {}

    def add(self, flow_detail: FlowDetail) -> FlowDetail:
        """Add (or replace, by uuid) a flow detail; returns it."""
        flow_detail.parent_uuid = self.uuid
        self._flows[flow_detail.uuid] = flow_detail
        return flow_detail

    def find(self, uuid: str) -> FlowDetail | None:
        """The flow detail with this uuid, or None."""
        return self._flows.get(uuid)

    def __iter__(self) -> Iterator[FlowDetail]:
        return iter(list(self._flows.values()))

    def __len__(self) -> int:
        return len(self._flows)

    def pformat(self, indent: int = 0, linesep: str = os.linesep) -> str:
        """This logbook, its flow details and their atom details as indented multi-line text."""
        inner = indent + 1
        lines = [_head(self, self.name, indent), _field(inner, "uuid", self.uuid)]
        lines.extend(_meta_lines(self.meta, inner))
        lines.append(_field(inner, "created_at", _utc_text(self.created_at)))
        lines.append(_field(inner, "updated_at", _utc_text(self.updated_at)))
        lines.extend(flow.pformat(inner, linesep) for flow in self)
        return linesep.join(lines)

    def __repr__(self) -> str:
        return f"LogBook(name={self.name!r}, uuid={self.uuid!r}, flows={len(self)})"
