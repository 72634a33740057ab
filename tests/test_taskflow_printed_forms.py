"""What TaskFlow programs print about tasks and saved flows, printed the way TaskFlow prints it.

TaskFlow's shipped examples print tasks (``"executing %s" % self``), atom detail versions and
``logbook.pformat()``; flowkit prints the same text so those programs' output does not change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from flowkit import FunctorTask, GraphFlow, LinearFlow, Task, engines
from flowkit.persistence import backends
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.retry import Times


class Boot(Task):
    def execute(self) -> str:
        return "up"


class Patched(Task):
    version = (2, 3, 1)

    def execute(self) -> None:
        return None


def test_a_task_prints_as_its_quoted_name_and_version() -> None:
    assert str(Boot("boot")) == '"boot==1.0"'
    assert f"executing {Patched('p')}" == 'executing "p==2.3.1"'
    assert str(FunctorTask(lambda: 1, name="f", version=(3, 0))) == '"f==3.0"'
    assert repr(Boot("boot")).endswith('Boot "boot==1.0">')  # the class's dotted name, then str()


def test_a_retry_prints_with_the_default_version_as_every_atom() -> None:
    assert str(Times(2, name="again")) == '"again==1.0"'


def test_a_saved_atom_detail_keeps_the_version_as_text() -> None:
    backend = backends.fetch("memory://")
    book = LogBook("book")
    engine = engines.load(LinearFlow("f").add(Boot("boot"), Patched("p")), backend=backend, book=book)
    engine.run()
    with backend.get_connection() as conn:
        saved = conn.get_logbook(book.uuid).find(engine.storage.flow_uuid)
    assert saved is not None
    assert {ad.name: ad.version for ad in saved} == {"boot": "1.0", "p": "2.3.1"}


def test_pformat_prints_times_in_utc_without_an_offset() -> None:
    two_hours_east = timezone(timedelta(hours=2))
    book = LogBook("b", "b-1", created_at=datetime(2026, 1, 2, 5, 4, 5, 6, tzinfo=two_hours_east))
    lines = book.pformat(linesep="\n").splitlines()
    assert " - created_at = 2026-01-02T03:04:05.000006" in lines
    naive = LogBook("n", "n-1", created_at=datetime(2026, 1, 2, 3, 4, 5))
    assert " - created_at = 2026-01-02T03:04:05" in naive.pformat(linesep="\n").splitlines()
    assert datetime(2026, 1, 2, tzinfo=UTC).isoformat().endswith("+00:00")  # what was printed before


def test_pformat_leaves_out_an_empty_store_but_shows_a_filled_one() -> None:
    empty = FlowDetail("f", "f-1", meta={"store": {}})
    assert "metadata" not in empty.pformat(linesep="\n")
    filled = FlowDetail("g", "g-1", meta={"store": {"x": 1}})
    assert filled.pformat(linesep="\n").splitlines()[-2:] == [" - metadata:", "   + store = {'x': 1}"]


class Add(Task):
    def execute(self, x: int, y: int) -> int:
        return x + y


def test_fetch_all_lists_the_store_then_results_in_the_order_atoms_run() -> None:
    # "late" is declared before "early" but needs its result: it runs, and is listed, after it.
    flow = GraphFlow("g").add(
        Add("late", provides="c", rebind=["a", "b"]),
        Add("early", provides="b", rebind=["a", "a"]),
        Add("other", provides="d", rebind=["a", "a"]),
    )
    engine = engines.load(flow, store={"z": 0, "a": 1})
    engine.run()
    assert list(engine.storage.fetch_all().items()) == [("z", 0), ("a", 1), ("b", 2), ("d", 2), ("c", 3)]


def test_a_new_flow_detail_has_no_state_until_saved_then_reads_back_pending() -> None:
    backend = backends.fetch("memory://")
    book = LogBook("book")
    detail = book.add(FlowDetail("f"))
    assert detail.state is None and "state=None" in repr(detail)
    assert "  - state = None" in book.pformat(linesep="\n").splitlines()
    with backend.get_connection() as conn:
        conn.save_logbook(book)
        assert detail.state is None  # saving leaves the caller's object as it was
        assert conn.get_flow_detail(detail.uuid).state == "PENDING"


def test_an_engine_runs_a_flow_detail_that_has_no_state_yet() -> None:
    backend = backends.fetch("memory://")
    book = LogBook("book")
    detail = book.add(FlowDetail("f"))
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    engine = engines.load(LinearFlow("f").add(Boot("boot")), backend=backend, book=book, flow_detail=detail)
    engine.run()
    with backend.get_connection() as conn:
        assert conn.get_flow_detail(detail.uuid).state == "SUCCESS"
