"""Failure: capture, cause chains, check, reraise, JSON and pickle round trips."""

from __future__ import annotations

import json
import pickle
import sys
import threading
import traceback
import types
from typing import Any

import pytest

from flowkit.exceptions import FlowkitError, MissingRequirementError, RemoteError, WrappedFailure
from flowkit.failure import Failure


def _raise_boom() -> None:
    raise ValueError("boom")


def _capture(fn: Any) -> Failure:
    try:
        fn()
    except BaseException:
        return Failure()
    raise AssertionError("fn did not raise")


def _chained(implicit: bool) -> None:
    try:
        raise KeyError("inner")
    except KeyError as exc:
        if implicit:
            raise RuntimeError("outer")  # noqa: B904 -- the implicit __context__ is what is tested
        raise RuntimeError("outer") from exc


def test_failure_inside_except_captures_the_handled_exception() -> None:
    try:
        _raise_boom()
    except ValueError as exc:
        failure = Failure()
        caught = exc
    assert failure.exception is caught
    assert failure.exc_info is not None
    assert failure.exc_info[0] is ValueError
    assert failure.exc_info[2] is caught.__traceback__
    assert failure.exception_str == "boom"
    assert failure.exc_type_names == ("builtins.ValueError", "builtins.Exception", "builtins.BaseException")
    assert "_raise_boom" in failure.traceback_str
    assert 'raise ValueError("boom")' in failure.traceback_str
    assert failure.cause is None
    assert failure.atom_name is None
    assert str(failure) == "Failure: ValueError: boom"  # TaskFlow's form
    assert repr(failure) == "Failure(ValueError: boom)"


def test_failure_outside_except_is_an_error() -> None:
    with pytest.raises(FlowkitError, match="from_exception"):
        Failure()


def test_exc_info_argument() -> None:
    try:
        _raise_boom()
    except ValueError as exc:
        info = (type(exc), exc, exc.__traceback__)
    failure = Failure(exc_info=info)
    assert failure.exception is info[1]
    assert "_raise_boom" in failure.traceback_str


def test_from_exception_of_raised_and_never_raised_exceptions() -> None:
    try:
        _raise_boom()
    except ValueError as exc:
        raised = exc
    assert "_raise_boom" in Failure.from_exception(raised).traceback_str

    fresh = Failure.from_exception(KeyError("k"))
    assert fresh.exception_str == "'k'"
    assert fresh.traceback_str == ""
    assert fresh.exc_info is not None and fresh.exc_info[2] is None
    assert str(fresh) == "Failure: KeyError: 'k'"


def test_explicit_cause_chain() -> None:
    failure = _capture(lambda: _chained(implicit=False))
    assert failure.check(RuntimeError)
    assert failure.cause is not None
    assert failure.cause.exc_type_names[0] == "builtins.KeyError"
    assert failure.cause.exception_str == "'inner'"
    assert "_chained" in failure.cause.traceback_str
    assert failure.cause.cause is None


def test_implicit_context_is_the_cause_unless_suppressed() -> None:
    failure = _capture(lambda: _chained(implicit=True))
    assert failure.cause is not None and failure.cause.check(KeyError)

    def suppressed() -> None:
        try:
            raise KeyError("inner")
        except KeyError:
            raise RuntimeError("outer") from None

    assert _capture(suppressed).cause is None


def test_looping_chain_terminates() -> None:
    a, b = ValueError("a"), KeyError("b")
    a.__cause__, b.__cause__ = b, a
    failure = Failure.from_exception(a)
    assert failure.cause is not None and failure.cause.cause is None


def test_check_by_class_name_and_superclass() -> None:
    failure = Failure.from_exception(KeyError("k"))
    assert failure.check(KeyError) is KeyError
    assert failure.check(LookupError) is LookupError
    assert failure.check("builtins.LookupError") == "builtins.LookupError"
    assert failure.check("KeyError") == "KeyError"  # bare builtin names, as TaskFlow users write them
    assert failure.check(ValueError, "builtins.IndexError") is None
    assert failure.check(ValueError, Exception, KeyError) is Exception  # first match wins
    assert failure.check() is None


def test_check_works_on_a_failure_rebuilt_without_its_exception() -> None:
    class Local(KeyError):
        pass

    rebuilt = Failure.from_dict(Failure.from_exception(Local("k")).to_dict())
    assert rebuilt.exception is None
    assert rebuilt.check(LookupError) is LookupError
    assert rebuilt.check(Local) is Local
    assert rebuilt.check(ValueError) is None


def test_reraise_raises_the_original_with_its_traceback() -> None:
    failure = _capture(_raise_boom)
    original = failure.exception
    for _ in range(2):  # reraising twice must not pile frames onto the traceback
        with pytest.raises(ValueError) as info:
            failure.reraise()
        assert info.value is original
        names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
        assert names[-1] == "_raise_boom"
        assert names.count("reraise") == 1


def test_reraise_after_from_dict_rebuilds_builtin_exception() -> None:
    data = json.loads(json.dumps(Failure.from_exception(ValueError("x")).to_dict()))
    rebuilt = Failure.from_dict(data)
    assert isinstance(rebuilt.exception, ValueError)
    with pytest.raises(ValueError) as info:
        rebuilt.reraise()
    assert info.value.args == ("x",)


def test_reraise_after_from_dict_rebuilds_importable_flowkit_exception() -> None:
    failure = Failure.from_exception(MissingRequirementError("t", "x"))
    rebuilt = Failure.from_dict(json.loads(json.dumps(failure.to_dict())))
    with pytest.raises(MissingRequirementError) as info:
        rebuilt.reraise()
    assert (info.value.atom, info.value.symbol) == ("t", "x")


def test_reraise_after_from_dict_of_non_importable_class_is_remote_error() -> None:
    class Custom(Exception):
        pass

    try:
        raise Custom("kaput")
    except Custom:
        failure = Failure()
    rebuilt = Failure.from_dict(json.loads(json.dumps(failure.to_dict())))
    assert rebuilt.exception is None and rebuilt.exc_info is None
    with pytest.raises(RemoteError) as info:
        rebuilt.reraise()
    assert info.value.message == "kaput"
    assert info.value.type_name.endswith("Custom")
    assert info.value.traceback_str == failure.traceback_str != ""
    assert "kaput" in str(info.value)


@pytest.mark.parametrize(
    "names, args",
    [
        (["builtins.print"], ["must not be printed"]),  # a callable, not an exception class
        (["builtins.KeyboardInterrupt", "builtins.BaseException"], ["boom"]),  # not an Exception subclass
        (["builtins.EnvironmentError"], ["boom"]),  # an alias: OSError's name is builtins.OSError
        (["builtins.ValueError"], ["different"]),  # rebuilt message would not match the recorded one
        (["no_such_module_xyz.Error"], ["boom"]),
    ],
)
def test_from_dict_rebuilds_only_matching_exception_classes(
    names: list[str], args: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    data = {"version": 1, "exc_type_names": names, "exception_str": "boom", "traceback_str": ""}
    failure = Failure.from_dict({**data, "exc_args": args})
    assert failure.exception is None
    assert capsys.readouterr().out == ""
    with pytest.raises(RemoteError, match="boom"):
        failure.reraise()


def test_json_round_trip_keeps_everything() -> None:
    failure = _capture(lambda: _chained(implicit=False))
    failure.atom_name = "create-node-1"
    data = failure.to_dict()
    text = json.dumps(data)
    rebuilt = Failure.from_dict(json.loads(text))
    assert rebuilt == failure
    assert rebuilt.atom_name == "create-node-1"
    assert rebuilt.exc_type_names == failure.exc_type_names
    assert rebuilt.traceback_str == failure.traceback_str
    assert rebuilt.to_dict() == json.loads(text)
    assert data["version"] == 1 and data["exc_args"] == ["outer"]
    assert data["cause"]["exc_type_names"][0] == "builtins.KeyError"
    assert rebuilt.cause is not None and isinstance(rebuilt.cause.exception, KeyError)
    assert rebuilt.exception is not None and rebuilt.exception.__cause__ is rebuilt.cause.exception


def test_exc_args_left_out_when_not_json() -> None:
    data = Failure.from_exception(ValueError(object())).to_dict()
    assert "exc_args" not in data
    json.dumps(data)
    assert Failure.from_dict(data).exception is None


def _valid_dict() -> dict[str, Any]:
    return Failure.from_exception(ValueError("x")).to_dict()


@pytest.mark.parametrize("key", ["version", "exc_type_names", "exception_str", "traceback_str"])
def test_from_dict_missing_key_is_named(key: str) -> None:
    data = _valid_dict()
    del data[key]
    with pytest.raises(FlowkitError, match=f"missing key '{key}'"):
        Failure.from_dict(data)


@pytest.mark.parametrize(
    "key, value",
    [
        ("exception_str", 3),
        ("traceback_str", None),
        ("exc_type_names", "builtins.ValueError"),
        ("exc_type_names", []),
        ("exc_type_names", [1]),
        ("cause", "not a dict"),
        ("atom_name", 5),
        ("exc_args", "x"),
        ("version", "1"),
        ("version", True),
        ("version", 2),
    ],
)
def test_from_dict_wrong_value_is_named(key: str, value: Any) -> None:
    data = {**_valid_dict(), key: value}
    with pytest.raises(FlowkitError, match=f"'{key}'"):
        Failure.from_dict(data)


def test_from_dict_names_bad_key_inside_cause() -> None:
    data = _capture(lambda: _chained(implicit=False)).to_dict()
    del data["cause"]["exception_str"]
    with pytest.raises(FlowkitError, match=r"missing key 'cause\.exception_str'"):
        Failure.from_dict(data)


def test_from_dict_of_non_dict() -> None:
    with pytest.raises(FlowkitError, match="must be a dict"):
        Failure.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]


def test_pickle_with_unpicklable_exception_keeps_the_text() -> None:
    class _Unpicklable(Exception):  # local, so it cannot be rebuilt by import either
        def __init__(self, message: str) -> None:
            super().__init__(message)
            self.lock = threading.Lock()

    def fail() -> None:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise _Unpicklable("holds a lock") from exc

    failure = _capture(fail)
    failure.atom_name = "locked"
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        pickle.dumps(failure.exception)
    copy = pickle.loads(pickle.dumps(failure))
    assert copy == failure
    assert copy.atom_name == "locked"
    assert copy.exception is None
    assert copy.check(_Unpicklable)
    assert copy.cause is not None and isinstance(copy.cause.exception, KeyError)
    with pytest.raises(RemoteError, match="holds a lock"):
        copy.reraise()


class _HoldsLock(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class _TwoArgs(Exception):
    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}-{b}")  # args no longer match __init__: unpickling this fails


def _importable(monkeypatch: pytest.MonkeyPatch, base: type[Exception], name: str) -> Any:
    """A subclass of ``base`` importable as fk_test_errors.<name>, whatever pytest's import mode."""
    module = sys.modules.get("fk_test_errors") or types.ModuleType("fk_test_errors")
    cls = type(name, (base,), {"__module__": module.__name__, "__qualname__": name})
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(module, name, cls, raising=False)
    return cls


@pytest.fixture
def importable_holds_lock(monkeypatch: pytest.MonkeyPatch) -> type[_HoldsLock]:
    return _importable(monkeypatch, _HoldsLock, "HoldsLock")


def test_from_dict_rebuilds_an_importable_custom_exception(importable_holds_lock: type[_HoldsLock]) -> None:
    failure = Failure.from_exception(importable_holds_lock("boom"))
    assert failure.exc_type_names[0] == "fk_test_errors.HoldsLock"
    rebuilt = Failure.from_dict(json.loads(json.dumps(failure.to_dict())))
    assert type(rebuilt.exception) is importable_holds_lock
    assert rebuilt.exception is not failure.exception


def test_pickle_rebuilds_an_unpicklable_exception_from_its_args(
    importable_holds_lock: type[_HoldsLock],
) -> None:
    failure = Failure.from_exception(importable_holds_lock("boom"))
    copy = pickle.loads(pickle.dumps(failure))
    assert type(copy.exception) is importable_holds_lock
    assert copy.exception.args == ("boom",)


def test_pickle_of_exception_that_fails_to_unpickle_keeps_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = _importable(monkeypatch, _TwoArgs, "TwoArgs")
    failure = Failure.from_exception(cls("a", "b"))
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(failure.exception))
    copy = pickle.loads(pickle.dumps(failure))
    assert copy.exception is None and copy == failure
    with pytest.raises(RemoteError, match="a-b"):
        copy.reraise()


def test_pickle_keeps_an_exception_whose_args_are_not_json() -> None:
    failure = Failure.from_exception(ValueError({1, 2}))
    assert "exc_args" not in failure.to_dict()
    copy = pickle.loads(pickle.dumps(failure))
    assert isinstance(copy.exception, ValueError) and copy.exception.args == ({1, 2},)


def test_pickle_keeps_a_picklable_exception_and_drops_the_traceback() -> None:
    failure = _capture(lambda: _chained(implicit=False))
    copy = pickle.loads(pickle.dumps(failure))
    assert copy == failure
    assert isinstance(copy.exception, RuntimeError) and copy.exception.args == ("outer",)
    assert copy.exc_info is not None and copy.exc_info[2] is None
    assert copy.cause is not None and isinstance(copy.cause.exception, KeyError)
    assert failure.exc_info is not None and failure.exc_info[2] is not None  # the original is untouched


def test_reraise_if_any() -> None:
    Failure.reraise_if_any([])

    one = Failure.from_exception(ValueError("one"))
    with pytest.raises(ValueError, match="one"):
        Failure.reraise_if_any([one])

    two = Failure.from_exception(KeyError("two"))
    two.atom_name = "b"
    with pytest.raises(WrappedFailure) as info:
        Failure.reraise_if_any(iter([one, two]))
    wrapped = info.value
    assert list(wrapped) == [one, two]
    assert len(wrapped) == 2
    assert wrapped.check(LookupError) is LookupError
    assert wrapped.check("builtins.ValueError") == "builtins.ValueError"
    assert wrapped.check(TypeError) is None
    assert "'b'" in str(wrapped)


def test_equality_and_matches() -> None:
    first, second = _capture(_raise_boom), _capture(lambda: _raise_boom())
    assert first.traceback_str != second.traceback_str
    assert first.matches(second) and first != second
    assert first == pickle.loads(pickle.dumps(first))
    assert not first.matches(Failure.from_exception(ValueError("other")))
    assert not first.matches(Failure.from_exception(TypeError("boom")))
    assert first != "ValueError: boom"
    chained, unchained = _capture(lambda: _chained(False)), Failure.from_exception(RuntimeError("outer"))
    assert not chained.matches(unchained) and not unchained.matches(chained)


def test_pformat() -> None:
    failure = _capture(lambda: _chained(implicit=False))
    failure.atom_name = "a1"
    short = failure.pformat()
    assert short.splitlines() == ["Failure in atom 'a1': RuntimeError: outer", "Caused by: KeyError: 'inner'"]
    full = failure.pformat(traceback=True)
    assert full.count("Traceback (most recent call last):") == 2
    assert "_chained" in full
    assert full.index("RuntimeError: outer") < full.index("Caused by: KeyError: 'inner'")
