"""Flow and atom details written by a program before a run (TaskFlow's ``detail.update(conn.update_...)``)."""

from __future__ import annotations

import contextlib

from flowkit import LinearFlow, Task, engines
from flowkit.persistence import models
from flowkit.persistence.backends import impl_memory
from flowkit.states import AtomState
from flowkit.utils import persistence_utils


class Five(Task):
    def execute(self) -> int:
        return 5


def test_update_takes_what_the_backend_saved():
    ad = models.TaskDetail(name="a", uuid="u1")
    saved = models.TaskDetail(name="a", uuid="u1", state=AtomState.SUCCESS, results=3, meta={"k": 1})
    assert ad.update(saved) is ad
    assert (ad.state, ad.results, ad.meta) == (AtomState.SUCCESS, 3, {"k": 1})
    fd = models.FlowDetail("f", uuid="f1")
    other = models.FlowDetail("f", uuid="f1", meta={"m": 2})
    other.add(saved)
    assert fd.update(other) is fd and fd.meta == {"m": 2} and fd.find("u1") is saved


def test_a_flow_detail_saved_as_if_one_task_had_run_resumes_after_it():
    backend = impl_memory.MemoryBackend({})
    flow = LinearFlow("f").add(Five(name="first", provides="x1"), Five(name="second", provides="x2"))
    _book, fd = persistence_utils.temporary_flow_detail(backend)
    td = models.TaskDetail(name="first", uuid="42", state=AtomState.SUCCESS, results=17)
    fd.add(td)
    with contextlib.closing(backend.get_connection()) as conn:
        fd.update(conn.update_flow_details(fd))
        td.update(conn.update_atom_details(td))
    engine = engines.load(flow, flow_detail=fd, backend=backend)
    ran: list[str] = []
    engine.atom_notifier.register(AtomState.RUNNING, lambda state, details: ran.append(details["atom_name"]))
    engine.run()
    assert ran == ["second"]
    assert engine.storage.fetch_all() == {"x1": 17, "x2": 5}
