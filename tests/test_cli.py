"""The ``flowkit`` command line: ``run`` and ``graph``, through click's CliRunner, and the factory lookup."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flowkit.cli.main import cli, main
from flowkit.exceptions import InvalidFlowError
from flowkit.factory import build_flow, check_allowed, resolve_factory
from flowkit.flow import Flow

EX = "tests.example_flows"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


# -- run --------------------------------------------------------------------------------------------


def test_run_success_shows_every_atom_and_exits_0() -> None:
    result = invoke("run", f"{EX}:linear")
    assert result.exit_code == 0, result.output
    for atom in ("step-a", "step-b", "step-c"):
        assert re.search(rf"task\s+'{atom}'\s+RUNNING -> SUCCESS", result.output)  # live lines
        assert re.search(rf"│ {atom}\s+│ task │ SUCCESS", result.output)  # final table
    assert "flow 'three-steps' ended SUCCESS in" in result.output
    assert "progress 50%" in result.output


@pytest.mark.parametrize(
    "options", [["--engine", "parallel"], ["--executor", "threads"], ["--max-workers", "2"]]
)
def test_run_parallel(options: list[str]) -> None:
    result = invoke("run", f"{EX}:wide", *options)
    assert result.exit_code == 0, result.output
    assert "left-4" in result.output and "right-0" in result.output
    assert "junction" not in result.output


def test_run_processes() -> None:
    result = invoke("run", f"{EX}:linear", "--executor", "processes", "--max-workers", "2")
    assert result.exit_code == 0, result.output
    assert "ended SUCCESS" in result.output


def test_run_with_store_and_show_results() -> None:
    result = invoke("run", f"{EX}:needs_input", "--store", '{"size": 21}', "--show-results")
    assert result.exit_code == 0, result.output
    provided = json.loads(result.output[result.output.index("{") :])
    assert provided == {"doubled": 42}


def test_run_store_from_file(tmp_path: Path) -> None:
    store = tmp_path / "store.json"
    store.write_text('{"size": 2}', encoding="utf-8")
    result = invoke("run", f"{EX}:needs_input", "--store", f"@{store}", "--show-results")
    assert result.exit_code == 0, result.output
    assert '"doubled": 4' in result.output


def test_run_accepts_a_flow_object_and_a_single_task() -> None:
    assert invoke("run", f"{EX}:FLOW_OBJECT").exit_code == 0
    result = invoke("run", f"{EX}:SINGLE_TASK")
    assert result.exit_code == 0, result.output
    assert "'lonely'" in result.output


def test_run_failing_flow_exits_1_and_names_the_failure() -> None:
    result = invoke("run", f"{EX}:failing")
    assert result.exit_code == 1, result.output
    assert "flow 'doomed' ended REVERTED" in result.output
    assert "error: atom 'explode' failed: ValueError: boom in explode" in result.stderr
    assert re.search(r"│ prepare\s+│ task │ REVERTED", result.output)


def test_run_revert_failure_exits_1_and_names_both_failures() -> None:
    result = invoke("run", f"{EX}:revert_fails")
    assert result.exit_code == 1, result.output
    assert "ended FAILURE" in result.output
    assert "error: atom 'explode' failed: ValueError: boom in explode" in result.stderr
    assert "error: atom 'make-thing' could not be reverted: OSError: cannot undo" in result.stderr


def test_run_retried_flow_succeeds() -> None:
    result = invoke("run", f"{EX}:with_retry")
    assert result.exit_code == 0, result.output
    assert re.search(r"retry\s+'three-times'\s+SUCCESS -> RETRYING", result.output)
    assert re.search(r"│ three-times\s+│ retry │ SUCCESS", result.output)


def test_run_live_display_renders_the_table() -> None:
    result = invoke("run", f"{EX}:linear", "--live")
    assert result.exit_code == 0, result.output
    assert "flow 'three-steps': SUCCESS" in result.output
    assert re.search(r"│ step-c\s+│ task │ SUCCESS", result.output)
    assert "RUNNING -> SUCCESS" not in result.output  # no plain lines in live mode


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.example_flows", "must look like 'package.module:attribute'"),
        ("tests.example_flows:", "must name both a module and an attribute"),
        ("tests.no_such_module:flow", "cannot import module 'tests.no_such_module'"),
        (f"{EX}:missing", "module 'tests.example_flows' has no attribute 'missing'"),
        (f"{EX}:Step.nope", "'tests.example_flows:Step' has no attribute 'nope'"),
        (f"{EX}:NOT_A_FLOW", "names a int, not a flow or a callable returning one"),
        (f"{EX}:returns_number", "returned 42 (int), not a flowkit flow"),
        (f"{EX}:raises_in_factory", "raised RuntimeError: factory exploded"),
    ],
)
@pytest.mark.parametrize("command", ["run", "graph"])
def test_bad_factory_path_exits_2_naming_the_path(command: str, path: str, message: str) -> None:
    result = invoke(command, path)
    assert result.exit_code == 2, result.output
    assert "Invalid value for FACTORY" in result.output
    assert repr(path) in result.output
    assert message in result.output


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("{", "--store is not valid JSON: Expecting property name"),
        ("not json", "--store is not valid JSON"),
        ("[1, 2]", "--store must be a JSON object mapping names to values"),
        ('"text"', "got a str"),
        ("@/no/such/file.json", "cannot read '/no/such/file.json'"),
    ],
)
def test_bad_store_exits_2(store: str, message: str) -> None:
    result = invoke("run", f"{EX}:linear", "--store", store)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--store'" in result.output
    assert message in result.output


def test_missing_input_exits_2_naming_atom_and_symbol() -> None:
    result = invoke("run", f"{EX}:needs_input")
    assert result.exit_code == 2, result.output
    assert "flow 'sized' from 'tests.example_flows:needs_input' cannot run" in result.output
    assert "atom 'double' requires 'size'" in result.output


def test_executor_with_serial_engine_is_a_usage_error() -> None:
    result = invoke("run", f"{EX}:linear", "--engine", "serial", "--executor", "threads")
    assert result.exit_code == 2
    assert "--executor and --max-workers need --engine parallel" in result.output


def test_main_entry_point_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "flowkit, version" in capsys.readouterr().out
    help_text = invoke("--help").output
    assert "run" in help_text and "graph" in help_text


# -- graph ------------------------------------------------------------------------------------------


def test_graph_dot_contracts_junctions() -> None:
    result = invoke("graph", f"{EX}:wide")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith('digraph "wide" {')
    for i in range(5):
        assert f'"left-{i}";' in out and f'"right-{i}";' in out
    assert "junction" not in out
    assert out.count(" -> ") == 25  # every left atom before every right atom, junction contracted
    assert '"left-0" -> "right-4";' in out


def test_graph_dot_draws_retries_and_deciders() -> None:
    out = invoke("graph", f"{EX}:with_retry", "--format", "dot").output
    assert '"three-times" [shape=diamond];' in out
    assert '"three-times" -> "before";' in out and '"before" -> "flaky";' in out
    decided = invoke("graph", f"{EX}:with_decider").output
    assert '"measure" -> "grow" [style=dashed, label="is_big"];' in decided


def test_graph_mermaid() -> None:
    result = invoke("graph", f"{EX}:wide", "--format", "mermaid")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "flowchart TD" in out and "junction" not in out
    ids = dict(re.findall(r'^\s+(n\d+)\["([^"]+)"\]$', out, re.M))
    assert set(ids.values()) == {f"{side}-{i}" for side in ("left", "right") for i in range(5)}
    assert len(re.findall(r"^\s+n\d+ --> n\d+$", out, re.M)) == 25
    retried = invoke("graph", f"{EX}:with_retry", "--format", "mermaid").output
    assert re.search(r'n\d+\{"three-times"\}', retried)
    decided = invoke("graph", f"{EX}:with_decider", "--format", "mermaid").output
    assert re.search(r'n\d+ -.->\|"is_big"\| n\d+', decided)


def test_graph_names_with_quotes_are_escaped() -> None:
    from flowkit import FunctorTask, LinearFlow
    from flowkit.cli.graph import atom_graph, to_dot, to_mermaid
    from flowkit.compiler import compile_flow

    flow = LinearFlow('say "hi"').add(FunctorTask(lambda: 1, name='a "quoted" task'))
    g = atom_graph(compile_flow(flow))
    assert '"a \\"quoted\\" task";' in to_dot(g, flow.name)
    assert 'n0["a #quot;quoted#quot; task"]' in to_mermaid(g, flow.name)


def test_graph_of_a_flow_that_does_not_compile_exits_2() -> None:
    result = invoke("graph", "tests.test_cli:duplicate_names")
    assert result.exit_code == 2
    assert "does not compile: duplicate name 'twin'" in result.output


def duplicate_names() -> Flow:
    from flowkit import FunctorTask, LinearFlow

    return LinearFlow("dups").add(FunctorTask(lambda: 1, name="twin"), FunctorTask(lambda: 2, name="twin"))


# -- factory lookup ---------------------------------------------------------------------------------


def test_resolve_factory_returns_the_callable() -> None:
    from tests import example_flows

    assert resolve_factory(f"{EX}:linear") is example_flows.linear
    assert resolve_factory(f"{EX}:FLOW_OBJECT")() is example_flows.FLOW_OBJECT
    assert build_flow(f"{EX}:wide", 2).name == "wide"
    assert build_flow(f"{EX}:wide", width=2).name == "wide"


def test_resolve_factory_allow_list() -> None:
    assert resolve_factory(f"{EX}:linear", allow=["tests"]) is not None
    assert resolve_factory(f"{EX}:linear", allow=["tests.example_flows"]) is not None
    with pytest.raises(
        InvalidFlowError, match=r"module 'tests\.example_flows' is not under an allowed prefix"
    ):
        resolve_factory(f"{EX}:linear", allow=["test", "mypkg"])
    with pytest.raises(InvalidFlowError, match="none allowed"):
        resolve_factory("os:getcwd", allow=[])


def test_check_allowed_imports_nothing() -> None:
    check_allowed("no_such_package.flows:make", ["no_such_package"])  # would fail if it imported
    check_allowed("anything at all", None)  # no allow list: resolve_factory reports a bad path
    with pytest.raises(InvalidFlowError, match=r"module 'no_such_packagex' is not under"):
        check_allowed("no_such_packagex:make", ["no_such_package"])
    with pytest.raises(InvalidFlowError, match=r"factory path 'nocolon'"):
        check_allowed("nocolon", ["nocolon"])
    assert "no_such_package" not in sys.modules


def test_factory_errors_are_invalid_flow_errors_naming_the_path() -> None:
    with pytest.raises(InvalidFlowError, match=r"factory path 'nocolon'"):
        resolve_factory("nocolon")
    with pytest.raises(InvalidFlowError, match=r"factory path 'a:b:c'"):
        resolve_factory("a:b:c")
