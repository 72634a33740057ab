"""Failure's TaskFlow-shaped surface: the keyword form, ``copy``, ``causes``, ``validate``, the
``Failure: Type: message`` text, ``exception_args``, and ``flowkit.types.failure``."""

from __future__ import annotations

import pickle
import sys

import pytest

from flowkit.exceptions import FlowkitError, InvalidFormat
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
