"""Fencing at the persistence level, on every backend: once an engine with a newer claim's token has
loaded a flow detail, the database refuses every write of an engine with an older token, and that
engine stops at once (serial and parallel) without starting anything more."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from flowkit import LinearFlow, Task, UnorderedFlow, engines
from flowkit.engines import Engine
from flowkit.exceptions import ClaimLost, InvalidFlowError, StorageError
from flowkit.flow import Flow
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.states import FlowState
from tests.support.persistence import fresh_backend, saved_flow, saved_new_flow


class Step(Task):
    """Records who ran it; the first step the old owner runs lets ``takeover`` happen meanwhile."""

    def __init__(self, name: str, calls: list[tuple[str, str]], takeover: Callable[[], None]) -> None:
        super().__init__(name=name)
        self.calls, self.takeover = calls, takeover

    def execute(self, who: str) -> str:
        self.calls.append((self.name, who))
        if who == "old" and len(self.calls) == 1:
            self.takeover()
        return f"{self.name}:{who}"


def _steps(kind: type[Flow], calls: list[tuple[str, str]], takeover: Callable[[], None]) -> Flow:
    flow = kind("fenced")
    flow.add(*(Step(name, calls, takeover) for name in ("a", "b", "c")))
    return flow


def _no_takeover() -> None:
    """For the engines whose steps let nothing happen meanwhile."""


def _fenced_engine(
    backend: Backend,
    fd: FlowDetail,
    calls: list[tuple[str, str]],
    who: str,
    fence: int,
    *,
    kind: type[Flow] = LinearFlow,
    takeover: Callable[[], None] = _no_takeover,
    **options: object,
) -> Engine:
    """An engine on ``fd`` holding claim token ``fence``, whose steps a, b, c record ``who`` ran them:
    every test plays an owner (old, new) this way, and tells them apart by ``who`` and ``fence``."""
    return engines.load(
        _steps(kind, calls, takeover),
        store={"who": who},
        backend=backend,
        flow_detail=fd,
        fence=fence,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("flow_kind", "options"),
    [(LinearFlow, {"engine": "serial"}), (UnorderedFlow, {"engine": "parallel", "max_workers": 1})],
    ids=["serial", "parallel"],
)
def test_a_newer_claim_refuses_the_older_engines_writes_and_it_stops_at_once(
    backend: Backend, flow_kind: type[Flow], options: dict[str, object]
) -> None:
    _, fd = saved_new_flow(backend, "fenced")
    calls: list[tuple[str, str]] = []

    def takeover() -> None:  # the new owner resumes the flow from the database and runs it to the end
        _fenced_engine(backend, saved_flow(backend, fd.uuid), calls, "new", 2, kind=flow_kind).run()

    old = _fenced_engine(backend, fd, calls, "old", 1, kind=flow_kind, takeover=takeover, **options)
    with pytest.raises(ClaimLost) as caught:
        old.run()
    assert (caught.value.token, caught.value.newer, caught.value.flow_uuid) == (1, 2, fd.uuid)
    # the old engine started one step (the one during which it lost the flow), and nothing after it
    started_by_old = [name for name, who in calls if who == "old"]
    assert len(started_by_old) == 1, calls
    assert sorted(name for name, who in calls if who == "new") == ["a", "b", "c"]
    saved = saved_flow(backend, fd.uuid)
    assert saved.state is FlowState.SUCCESS  # the old engine did not write SUSPENDED over it either
    assert {ad.name: ad.results for ad in saved} == {"a": "a:new", "b": "b:new", "c": "c:new"}


def test_an_older_token_is_refused_before_anything_runs(backend: Backend) -> None:
    _, fd = saved_new_flow(backend, "fenced")
    calls: list[tuple[str, str]] = []
    newer = _fenced_engine(backend, saved_flow(backend, fd.uuid), calls, "new", 7)
    newer.prepare()
    late = _fenced_engine(backend, fd, calls, "old", 5)
    with pytest.raises(ClaimLost, match=r"fence 5.*|fence 7") as caught:
        late.run()
    assert (caught.value.token, caught.value.newer) == (5, 7)
    assert "fence 5" in str(caught.value) and "fence 7" in str(caught.value)
    assert calls == []
    newer.run()
    assert [who for _, who in calls] == ["new"] * 3


def test_the_same_token_resumes_and_unfenced_engines_are_unchanged(backend: Backend) -> None:
    _, fd = saved_new_flow(backend, "fenced")
    calls: list[tuple[str, str]] = []
    first = _fenced_engine(backend, fd, calls, "one", 3)
    first.prepare()
    # a conductor that lost nothing loads its own flow again with its own token: allowed
    again = _fenced_engine(backend, fd, calls, "one", 3)
    again.run()
    assert saved_flow(backend, fd.uuid).state is FlowState.SUCCESS
    # without a token nothing is checked (an engine run in-process, no board)
    plain = engines.run(
        _steps(LinearFlow, [], _no_takeover), store={"who": "plain"}, backend=backend, book=LogBook("plain")
    )
    assert plain["who"] == "plain"
    with pytest.raises(InvalidFlowError, match="fence= need backend="):
        engines.load(_steps(LinearFlow, [], _no_takeover), fence=1)


def test_a_fenced_write_to_a_destroyed_flow_detail_is_not_a_lost_claim(backend: Backend) -> None:
    book, fd = saved_new_flow(backend, "gone")

    def destroy() -> None:
        with backend.get_connection() as conn:
            conn.destroy_logbook(book.uuid)

    calls: list[tuple[str, str]] = []
    old = _fenced_engine(backend, fd, calls, "old", 1, takeover=destroy)
    with pytest.raises(StorageError, match="is gone") as caught:
        old.run()
    assert not isinstance(caught.value, ClaimLost)
    assert calls == [("a", "old")]


@pytest.mark.postgres
def test_postgresql_a_write_waiting_on_the_newer_claims_restore_is_refused(postgres_url: str) -> None:
    """The newer claim raises the fence in a transaction still open when the old engine writes: the
    write waits on the row lock, and READ COMMITTED re-checks its WHERE on the row the newer claim
    committed, so it is refused, with no read before it."""
    from flowkit.persistence.backends.sqlalchemy import SQLAlchemyConnection

    backend = fresh_backend(postgres_url)
    try:
        _, fd = saved_new_flow(backend, "fenced")
        calls: list[tuple[str, str]] = []
        running, raised = threading.Event(), threading.Event()
        committed_at: list[float] = []

        def newer_claim() -> None:
            running.wait(10)
            conn = backend.get_connection()
            assert isinstance(conn, SQLAlchemyConnection)
            with conn._checkout().begin():
                assert conn.raise_fence(fd.uuid, 2) == 2
                raised.set()
                time.sleep(0.5)  # the old engine's write of step a's result waits on the row lock
                committed_at.append(time.monotonic())
            conn.close()

        def takeover() -> None:  # in step a's execute, in the old engine's thread
            running.set()
            assert raised.wait(10)

        thread = threading.Thread(target=newer_claim)
        thread.start()
        old = _fenced_engine(backend, fd, calls, "old", 1, takeover=takeover)
        with pytest.raises(ClaimLost) as caught:
            old.run()
        refused_at = time.monotonic()
        thread.join(10)
        assert (caught.value.token, caught.value.newer) == (1, 2)
        assert committed_at and refused_at >= committed_at[0]  # it waited for the newer claim's commit
        assert calls == [("a", "old")]
        saved = saved_flow(backend, fd.uuid)
        assert next((ad.name, ad.state.value, ad.results) for ad in saved) == ("a", "RUNNING", None)
    finally:
        backend.close()


def test_take_flow_detail_raises_the_fence_and_reads_what_the_older_claim_left(backend: Backend) -> None:
    """A fenced restore's read (PostgreSQL: the fence updates returning the rows): the flow detail with
    its atoms in their saved order and the fence raised; a higher fence refuses it and reads nothing;
    a flow detail that is not saved is None."""
    _, fd = saved_new_flow(backend, "fenced")
    engines.load(
        _steps(LinearFlow, [], lambda: None), store={"who": "one"}, backend=backend, flow_detail=fd, fence=3
    ).run()
    with backend.get_connection() as conn:
        fence, taken = conn.run(lambda: conn.take_flow_detail(fd.uuid, 4))
        assert fence == 4 and taken is not None
        assert [ad.name for ad in taken] == ["a", "b", "c"]
        assert [ad.position for ad in taken] == [ad.position for ad in saved_flow(backend, fd.uuid)]
        assert taken.state is FlowState.SUCCESS and taken.meta["store"] == {"who": "one"}
        assert conn.run(lambda: conn.take_flow_detail(fd.uuid, 2)) == (4, None)
        assert conn.run(lambda: conn.take_flow_detail("no-such-flow", 5)) == (None, None)
    with pytest.raises(ClaimLost):  # the raise above took the flow over for token 4
        engines.load(
            _steps(LinearFlow, [], lambda: None),
            store={"who": "one"},
            backend=backend,
            flow_detail=fd,
            fence=3,
        ).prepare()


def test_take_flow_detail_reads_every_field_as_the_plain_read_does(backend: Backend) -> None:
    """The fenced read (on PostgreSQL one statement returning the rows as JSON) gives the same flow and
    atom details, field by field, as ``get_flow_detail``: timestamps in UTC with their microseconds,
    results, failures, meta, a retry's history, NULLs."""
    import datetime as dt

    from flowkit.failure import Failure
    from flowkit.persistence.models import RetryDetail, TaskDetail

    book, fd = LogBook("b"), FlowDetail("rich", meta={"store": {"x": [1, "two", None]}})
    book.add(fd)
    moment = dt.datetime(
        2026, 11, 29, 9, 30, 1, 234567, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
    )
    try:
        raise ValueError("broken on purpose")
    except ValueError:
        failure = Failure()
    fd.add(
        TaskDetail(
            "done",
            state="SUCCESS",
            results={"n": 1, "nested": [1.5, "é"]},
            attempts=2,
            seq=3,
            started_at=moment,
            finished_at=moment + dt.timedelta(microseconds=1),
            version="1.2",
            meta={"progress": 1.0},
            position=0,
        )
    )
    fd.add(TaskDetail("failed", state="FAILURE", failure=failure, attempts=1, position=1))
    retry = RetryDetail("retry", position=2)
    retry.history._start_attempt("first")  # type: ignore[attr-defined]
    fd.add(retry)
    fd.add(TaskDetail("never", position=3))
    with backend.get_connection() as conn:
        conn.save_logbook(book)
        plain = conn.get_flow_detail(fd.uuid)
        fence, taken = conn.run(lambda: conn.take_flow_detail(fd.uuid, 7))
    assert fence == 7 and taken is not None

    def fields(detail: FlowDetail) -> list[dict[str, object]]:
        flow = {k: v for k, v in vars(detail).items() if not k.startswith("_")}
        atoms = [
            dict(vars(ad), failure=repr(ad.failure), history=repr(getattr(ad, "history", None)))
            for ad in detail
        ]
        return [flow, *atoms]

    assert fields(taken) == fields(plain)
    done = next(ad for ad in taken if ad.name == "done")
    assert done.started_at == moment and done.started_at.tzinfo is not None
    assert done.results == {"n": 1, "nested": [1.5, "é"]}
