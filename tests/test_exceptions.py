"""Every flowkit error survives pickling and the JSON of a Failure, and names what it is about."""

from __future__ import annotations

import importlib
import inspect
import json
import pickle
import pkgutil
from typing import Any

import pytest

from flowkit import exceptions
from flowkit.exceptions import FlowkitError, details_of
from flowkit.failure import Failure


def _failure(message: str, atom: str) -> Failure:
    failure = Failure.from_exception(ValueError(message))
    failure.atom_name = atom
    return failure


# Representative arguments for classes with their own __init__; the others take a message.
ARGS: dict[str, tuple[Any, ...]] = {
    "DuplicateNameError": ("dup-name", "flow-x"),
    "CycleError": (["a", "b"],),
    "MissingRequirementError": ("t", "x", ["late-provider"]),
    "AmbiguousProviderError": ("t", "x", ["p1", "p2"]),
    "NotSerializableError": ("t", "result", "cannot pickle '_thread.lock' object"),
    "InvalidStateError": ("atom", "t", "SUCCESS", "RUNNING"),
    "WrappedFailure": ([_failure("first boom", "a1"), _failure("second boom", "a2")],),
    "RemoteError": ("mypkg.errors.Boom", "remote boom", "  File 'x.py', line 1\n"),
    "UnknownBackendError": ("bogus://host/db", ["memory", "sqlite"]),
    "NoWorkerAvailable": ("mypkg.tasks.CreateServer", ["hypervisors", "spare"], 2.5),
    "AtomTimeout": ("create-server", "execute", 120, "worker 'w1'"),
    "WaitTimeout": ("approval", "approve-42", 86400),
    "CoroutineResult": ("fetch-page", "revert"),
    "JobSetAsideError": ("'create-42' (uuid-1)", "claimed 3 times without being consumed"),
    "MalformedJobError": ("field 'name' must be a non-empty string",),
    "ConductorError": ("conductor 'c1': max_jobs must be at least 1, got 0",),
    "InvalidNameError": ("job name", "bad\x00name", "contains a NUL character"),
    "JobTooLargeError": ("big-job", 10_485_900, 1_000_000, "<ZooKeeperJobBoard 'b'>"),
    "MissingExtraError": ("postgres", "psycopg2", "the PostgreSQL backend"),
    "ClaimLost": ("create-cluster", "fd-uuid-1", 7, 9),
    "Cancelled": ("create-cluster", "operator asked"),
    "MapError": ("servers", "over ('specs') must be a sequence of items, got int"),
    "AmbiguousPrefixError": ("job", "ab", ["ab12", "ab34"]),
}

# What each message must name.
NAMED: dict[str, tuple[str, ...]] = {
    "DuplicateNameError": ("dup-name", "flow-x"),
    "CycleError": ("a", "b"),
    "MissingRequirementError": ("t", "x", "late-provider"),
    "AmbiguousProviderError": ("t", "x", "p1", "p2"),
    "NotSerializableError": ("t", "result", "_thread.lock"),
    "InvalidStateError": ("t", "SUCCESS", "RUNNING"),
    "WrappedFailure": ("first boom", "a1", "second boom", "a2"),
    "RemoteError": ("mypkg.errors.Boom", "remote boom"),
    "UnknownBackendError": ("bogus://host/db", "memory", "sqlite"),
    "NoWorkerAvailable": ("mypkg.tasks.CreateServer", "hypervisors", "spare", "2.5"),
    "JobSetAsideError": ("create-42", "uuid-1", "claimed 3 times"),
    "MalformedJobError": ("'name'",),
    "ConductorError": ("'c1'", "max_jobs"),
    "InvalidNameError": ("job name", "bad\\x00name", "NUL"),
    "AmbiguousPrefixError": ("job", "'ab'", "ab12", "ab34"),
    "JobTooLargeError": ("big-job", "10,485,900", "1,000,000", "ZooKeeper"),
    "MissingExtraError": ("flowkit[postgres]", "'psycopg2'", "the PostgreSQL backend"),
    "ClaimLost": ("create-cluster", "fd-uuid-1", "fence 7", "fence 9"),
    "AtomTimeout": ("create-server", "execute", "120s", "w1"),
    "Cancelled": ("create-cluster", "cancelled", "operator asked"),
    "WaitTimeout": ("'approval'", "'approve-42'", "86400s"),
    "CoroutineResult": ("revert of atom 'fetch-page'", "async def revert"),
    "MapError": ("Map 'servers'", "'specs'", "sequence"),
}


def _module_exceptions() -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(exceptions, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == exceptions.__name__
    ]


ALL = _module_exceptions()


def _has_own_init(cls: type[BaseException]) -> bool:
    # FlowkitError's own __init__ takes any arguments (and TaskFlow's cause=): not a signature to fill
    return any(
        "__init__" in vars(c)
        for c in cls.__mro__
        if c.__module__ == exceptions.__name__ and c is not exceptions.FlowkitError
    )


def _make(cls: type[BaseException]) -> BaseException:
    if cls.__name__ in ARGS:
        return cls(*ARGS[cls.__name__])
    assert not _has_own_init(cls), f"{cls.__name__} has its own __init__: add its arguments to ARGS"
    return cls(f"something about 'thing-1' went wrong in {cls.__name__}")


def test_discovery_finds_the_hierarchy() -> None:
    names = {cls.__name__ for cls in ALL}
    assert {"FlowkitError", "CycleError", "WrappedFailure", "RemoteError", "NotFound"} <= names
    assert set(ARGS) <= names and set(NAMED) <= names


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_exception_derives_from_flowkit_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, FlowkitError)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_pickle_round_trip(cls: type[BaseException]) -> None:
    exc = _make(cls)
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is cls
    assert str(copy) == str(exc)
    assert copy.args == exc.args
    assert details_of(copy) == details_of(exc)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_failure_json_round_trip(cls: type[BaseException]) -> None:
    """Through a Failure's JSON each error comes back as itself, or (args that are not JSON) as text."""
    exc = _make(cls)
    rebuilt = Failure.from_dict(json.loads(json.dumps(Failure.from_exception(exc).to_dict())))
    assert rebuilt.check(cls) is cls
    if cls is exceptions.WrappedFailure:  # its args are Failures, not JSON: only the text survives
        with pytest.raises(exceptions.RemoteError) as remote:
            rebuilt.reraise()
        assert remote.value.message == str(exc)
        return
    with pytest.raises(cls) as info:
        rebuilt.reraise()
    assert type(info.value) is cls
    assert str(info.value) == str(exc)


@pytest.mark.parametrize("name", sorted(NAMED))
def test_message_names_what_is_involved(name: str) -> None:
    message = str(_make(getattr(exceptions, name)))
    for word in NAMED[name]:
        assert word in message, f"{name}: {word!r} missing from {message!r}"


def test_cycle_message_shows_the_loop() -> None:
    assert str(exceptions.CycleError(["a", "b"])).endswith(
        "dependency cycle between atoms: 'a' -> 'b' -> 'a'"
    )


def test_wrapped_failure_survives_pickling_with_its_failures() -> None:
    exc = _make(exceptions.WrappedFailure)
    assert isinstance(exc, exceptions.WrappedFailure)
    copy = pickle.loads(pickle.dumps(exc))
    assert list(copy) == list(exc)
    assert [f.atom_name for f in copy] == ["a1", "a2"]
    assert copy.check(ValueError) is ValueError


def test_job_board_errors_that_callers_may_catch_as_value_errors() -> None:
    assert issubclass(exceptions.MalformedJobError, exceptions.JobBoardError)
    assert issubclass(exceptions.MalformedJobError, ValueError)


def test_a_conductor_error_is_not_a_job_board_error() -> None:
    """A conductor refusing an option (or persistence not answering at start) is no board's fault."""
    assert issubclass(exceptions.ConductorError, exceptions.FlowkitError)
    assert not issubclass(exceptions.ConductorError, exceptions.JobBoardError)


def test_not_found_is_a_key_error_with_a_plain_message() -> None:
    exc = exceptions.NotFound("no symbol 'server_id'")
    assert isinstance(exc, KeyError)
    assert str(exc) == "no symbol 'server_id'"
    assert str(pickle.loads(pickle.dumps(exc))) == "no symbol 'server_id'"


# Written by flowkit when its exceptions were one module (flowkit/exceptions.py): a pickle of ClaimLost
# and a saved Failure of it. Stored flows and messages in flight hold such data; it must still load.
_OLD_PICKLE = (
    b"\x80\x02cflowkit.exceptions\nClaimLost\nq\x00(X\x0e\x00\x00\x00create-clusterq\x01X\t\x00\x00\x00"
    b"fd-uuid-1q\x02K\x07K\ttq\x03Rq\x04}q\x05(X\t\x00\x00\x00flow_nameq\x06h\x01X\t\x00\x00\x00flow_uuidq"
    b"\x07h\x02X\x05\x00\x00\x00tokenq\x08K\x07X\x05\x00\x00\x00newerq\tK\tub."
)
_OLD_FAILURE = {
    "version": 1,
    "exc_type_names": [
        "flowkit.exceptions.ClaimLost",
        "flowkit.exceptions.StorageError",
        "flowkit.exceptions.FlowkitError",
        "builtins.Exception",
        "builtins.BaseException",
    ],
    "exception_str": "flow detail 'create-cluster' (fd-uuid-1) was taken over by a newer claim (fence 9): "
    "writes with fence 7 are refused",
    "traceback_str": "",
    "cause": None,
    "atom_name": None,
    "exc_args": ["create-cluster", "fd-uuid-1", 7, 9],
}


def test_every_class_is_known_as_flowkit_exceptions_whatever_module_it_is_written_in() -> None:
    """Saved failures (``exc_type_names``), pickles and ``Failure.check("flowkit.exceptions.X")`` name a
    class by its module: the package's modules (flowkit.exceptions.storage, ...) must not show."""
    classes = [obj for obj in map(vars(exceptions).get, exceptions.__all__) if isinstance(obj, type)]
    assert len(classes) > 40
    for cls in classes:
        assert cls.__module__ == "flowkit.exceptions", cls
        assert getattr(exceptions, cls.__qualname__) is cls
    exc = exceptions.ClaimLost("create-cluster", "fd-uuid-1", 7, 9)
    assert b"cflowkit.exceptions\nClaimLost\n" in pickle.dumps(exc, protocol=2)
    assert Failure.from_exception(exc).to_dict()["exc_type_names"] == _OLD_FAILURE["exc_type_names"]


def test_every_class_of_every_module_of_the_package_is_exported() -> None:
    """A class written in a module of the package but not imported in its ``__init__`` would keep that
    module's name in saved data, and the tests above (which find the classes by module) would miss it."""
    for info in pkgutil.iter_modules(exceptions.__path__):
        module = importlib.import_module(f"{exceptions.__name__}.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ != "builtins":
                assert getattr(exceptions, name, None) is obj, f"{module.__name__}.{name} is not exported"
                assert name in exceptions.__all__


def test_data_saved_before_the_exceptions_became_a_package_still_loads() -> None:
    copy = pickle.loads(_OLD_PICKLE)
    assert type(copy) is exceptions.ClaimLost
    assert (copy.flow_name, copy.token, copy.newer) == ("create-cluster", 7, 9)
    failure = Failure.from_dict(_OLD_FAILURE)
    assert failure.check("flowkit.exceptions.StorageError") == "flowkit.exceptions.StorageError"
    with pytest.raises(exceptions.ClaimLost) as info:
        failure.reraise()
    assert str(info.value) == _OLD_FAILURE["exception_str"]
