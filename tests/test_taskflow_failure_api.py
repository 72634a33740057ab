"""Failure's TaskFlow-shaped surface: the keyword form, ``copy``, ``causes``, ``validate``, the
``Failure: Type: message`` text, ``exception_args``, and ``flowkit.types.failure``."""

from __future__ import annotations

import pickle
import sys

import pytest

from flowkit.exceptions import FlowkitError, InvalidFormat, NotAFailureError, RemoteError, WrappedFailure
from flowkit.failure import Failure
from flowkit.types import failure as types_failure


def _failing(message: str) -> Failure:
    try:
        raise RuntimeError(message)
    except RuntimeError:
        return Failure()


def _chain() -> Failure:
    try:
        try:
            try:
                raise KeyError("first")
            except KeyError as exc:
                raise ValueError("second") from exc
        except ValueError as exc:
            raise RuntimeError("third") from exc
    except RuntimeError:
        return Failure()


def test_types_failure_is_the_same_class() -> None:
    assert types_failure.Failure is Failure


def test_str_has_the_failure_prefix_and_repr_does_not_repeat_it() -> None:
    failure = _failing("Woot!")
    assert str(failure) == "Failure: RuntimeError: Woot!"
    assert failure.summary == "RuntimeError: Woot!"
    assert repr(failure) == "Failure(RuntimeError: Woot!)"


def test_exc_info_tuple_is_accepted_positionally() -> None:
    try:
        raise OSError("disk")
    except OSError:
        info = sys.exc_info()
    failure = Failure(info)  # type: ignore[arg-type]
    assert failure.exception is info[1]
    assert failure.check(OSError) is OSError
    with pytest.raises(InvalidFormat, match="exc_info"):
        Failure((OSError, info[1]))  # type: ignore[arg-type]


def test_keyword_form_rebuilds_from_facts_with_taskflow_type_names() -> None:
    live = _failing("Woot!")
    rebuilt = Failure(exception_str="Woot!", traceback_str=live.traceback_str, exc_type_names=list(live))
    assert list(live) == ["RuntimeError", "Exception"]
    assert rebuilt.exception is None and rebuilt.exc_info is None
    assert rebuilt.exc_type_names == live.exc_type_names
    assert rebuilt.check(RuntimeError) is RuntimeError
    assert rebuilt.matches(live)


def test_keyword_form_rejects_unknown_keywords_by_name() -> None:
    with pytest.raises(TypeError, match=r"^Failure.__init__ got unexpected keyword argument\(s\): hi$"):
        Failure(exception_str="x", exc_type_names=["Exception"], hi="there")


def test_keyword_form_without_type_names_formats_the_message_alone() -> None:
    failure = Failure(exception_str="Woot!", traceback_str="", exc_type_names=[])
    assert list(failure) == []
    assert failure.pformat() == "Failure: Woot!"
    assert failure.pformat(traceback=True).endswith("Traceback not available.")


def test_copy_is_a_new_equal_object_keeping_the_live_exception() -> None:
    failure = _failing("Woot!")
    copied = failure.copy()
    assert copied is not failure
    assert copied == failure and copied.matches(failure)
    assert copied.exception is failure.exception
    copied.atom_name = "elsewhere"
    assert failure.atom_name is None


def test_causes_is_the_whole_chain_nearest_first() -> None:
    failure = _chain()
    assert [c.exception_str for c in failure.causes] == ["second", "'first'"]
    assert [c.exception_str for c in failure.causes[0].causes] == ["'first'"]
    assert failure.causes[1].causes == ()
    for restored in (Failure.from_dict(failure.to_dict()), pickle.loads(pickle.dumps(failure))):
        assert [c.exception_str for c in restored.causes] == ["second", "'first'"]


def test_keyword_form_takes_causes() -> None:
    inner = _failing("inner")
    outer = Failure(exception_str="outer", exc_type_names=["ValueError", "Exception"], causes=(inner,))
    assert outer.causes == (inner,)


def test_exception_args_is_a_tuple_and_include_args_leaves_them_out() -> None:
    failure = _failing("Woot!")
    assert failure.exception_args == ("Woot!",)
    assert "exc_args" not in failure.to_dict(include_args=False)
    assert Failure.from_dict(failure.to_dict()).exception_args == ("Woot!",)


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"exc_type_names": []}, "non-empty"),
        ({"version": -1}, "version"),
        ({"exc_type_names": ["Junk"]}, "must end with Exception or BaseException"),
        ({"traceback_str": None}, "traceback_str"),
    ],
)
def test_validate_names_the_problem(change: dict[str, object], problem: str) -> None:
    data = {**_failing("Woot!").to_dict(), **change}
    with pytest.raises(InvalidFormat, match=problem) as info:
        Failure.validate(data)
    assert isinstance(info.value, FlowkitError) and isinstance(info.value, ValueError)


def test_validate_accepts_flowkit_and_taskflow_dicts_and_checks_causes() -> None:
    data = _chain().to_dict()
    Failure.validate(data)
    taskflow_style = {
        "version": 1,
        "exc_type_names": ["RuntimeError", "Exception"],
        "exception_str": "Woot!",
        "traceback_str": "",
        "exc_args": ("Woot!",),
        "causes": [],
    }
    Failure.validate(taskflow_style)
    assert Failure.from_dict(taskflow_style).check(RuntimeError) is RuntimeError
    data["cause"]["exc_type_names"] = ["Junk"]
    with pytest.raises(InvalidFormat, match=r"'cause\.exc_type_names'"):
        Failure.validate(data)


def test_from_dict_still_reads_what_validate_refuses() -> None:
    # a stored failure is never lost for a naming detail: only validate() is strict about the root type
    data = {"version": 1, "exc_type_names": ["mod.Odd"], "exception_str": "x", "traceback_str": ""}
    assert Failure.from_dict(data).exception_str == "x"


# -- WrappedFailure, RemoteError, and what Failure() refuses ---------------------------------------


def _wrapped(*failures: Failure) -> Failure:
    try:
        raise WrappedFailure(failures)
    except WrappedFailure:
        return Failure()


def test_wrapped_failure_flattens_a_failure_that_captured_a_wrapped_failure() -> None:
    one, two, three = _failing("one"), _failing("two"), _failing("three")
    wrapped = WrappedFailure([_wrapped(one, two), three])
    assert list(wrapped) == [one, two, three]
    # nested twice: still one flat list
    assert list(WrappedFailure([_wrapped(_wrapped(one), two)])) == [one, two]


def test_wrapped_failure_check_returns_the_matching_type_as_failure_check_does() -> None:
    wrapped = WrappedFailure([_failing("Woot!")])
    assert wrapped.check(ValueError, RuntimeError) is RuntimeError
    assert wrapped.check("RuntimeError") == "RuntimeError"
    assert wrapped.check(ValueError) is None


def test_wrapped_failure_str_lists_each_failure_and_names_its_atom() -> None:
    plain = Failure.from_exception(ValueError("\u55e8"))
    assert str(WrappedFailure([plain])) == "WrappedFailure: [Failure: ValueError: \u55e8]"
    named = _failing("boom")
    named.atom_name = "a"
    assert str(WrappedFailure([plain, named])) == (
        "WrappedFailure: [Failure: ValueError: \u55e8, Failure: RuntimeError: boom (atom 'a')]"
    )


def test_a_failure_without_its_exception_reraises_a_remote_error_that_is_a_wrapped_failure() -> None:
    restored = Failure.from_dict(_failing("Woot!").to_dict(include_args=False))
    assert restored.exception is None
    with pytest.raises(WrappedFailure) as info:
        restored.reraise()
    assert isinstance(info.value, RemoteError)
    assert info.value.check(RuntimeError) is RuntimeError
    assert list(info.value) == [restored]
    assert str(info.value) == "builtins.RuntimeError: Woot!"


@pytest.mark.parametrize("exc", [SystemExit(2), KeyboardInterrupt(), GeneratorExit()])
def test_failure_refuses_exceptions_that_are_not_task_failures(exc: BaseException) -> None:
    with pytest.raises(NotAFailureError, match=type(exc).__name__):
        Failure.from_exception(exc)
    with pytest.raises(TypeError):
        Failure((type(exc), exc, None))
    try:
        raise exc
    except BaseException:
        with pytest.raises(TypeError, match="not a task failure"):
            Failure()
        # the engine's pool threads still carry them to the scheduler
        captured = Failure.from_base_exception()
    assert captured.exception is exc and captured.check(type(exc))


def test_failure_outside_an_except_block_is_a_type_error_naming_the_fix() -> None:
    with pytest.raises(NotAFailureError, match="except block"):
        Failure()
