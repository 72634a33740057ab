"""Saving flows as they run, so that a crashed or suspended flow continues where it stopped.

```python
from flowkit.persistence import backends, models
backend = backends.fetch("sqlite:///flows.db")        # or postgresql://..., memory://
with backend.get_connection() as conn:
    conn.upgrade()
engine = engines.load(flow, backend=backend, book=book, flow_detail=fd, store={...})
```

- :mod:`.models`: ``LogBook`` > ``FlowDetail`` > ``AtomDetail`` (``TaskDetail``, ``RetryDetail``);
- :mod:`.backends`: ``fetch(url)`` and the ``Backend``/``Connection`` contract;
- :mod:`.recorder`: how the engine writes every state change before acting on it, and resumes.

Delivery is at least once: an atom that was RUNNING when the process died runs again on resume.
Its atom detail's ``uuid`` stays the same across those runs: pass it to outside APIs as an idempotency
key. A task reads it with ``flowkit.context.current_atom_uuid()`` inside ``execute``/``revert`` (in
any executor); outside, ``engine.storage.get_atom_uuid(name)`` and ``atom_uuid`` in atom
notifications give the same value.
"""

from flowkit.persistence import backends, models
from flowkit.persistence.backends import Backend, Connection, fetch
from flowkit.persistence.models import AtomDetail, FlowDetail, LogBook, RetryDetail, TaskDetail

__all__ = [
    # models
    "AtomDetail",
    # backends
    "Backend",
    "Connection",
    "FlowDetail",
    "LogBook",
    "RetryDetail",
    "TaskDetail",
    "backends",
    "fetch",
    "models",
]
