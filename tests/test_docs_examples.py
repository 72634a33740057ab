"""The ``python`` code blocks of README.md and docs/*.md run, so the docs never rot.

Every fenced block whose info string is ``python`` runs, unless its first line starts with
``# not-run``. Blocks of one file share one namespace and run in order, like a session:
a block's test runs the blocks before it first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)


class Block(NamedTuple):
    path: Path
    line: int
    code: str


def runnable_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        if match.group("info").strip() != "python":
            continue
        code = match.group("code")
        if code.lstrip().startswith("# not-run"):
            continue
        line = text.count("\n", 0, match.start("code")) + 1
        blocks.append(Block(path, line, code))
    return blocks


ALL = [block for path in DOCS for block in runnable_blocks(path)]


def test_the_docs_have_runnable_examples() -> None:
    assert (ROOT / "README.md") in {b.path for b in ALL}
    assert len(ALL) >= 10


def _run(block: Block, namespace: dict[str, object]) -> None:
    compiled = compile(block.code, f"{block.path.relative_to(ROOT)}:{block.line}", "exec")
    exec(compiled, namespace)


@pytest.mark.parametrize("block", ALL, ids=[f"{b.path.name}:{b.line}" for b in ALL])
def test_doc_example_runs(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{block.path.stem.lower()}"}
    for earlier in runnable_blocks(block.path):
        if earlier.line == block.line:
            break
        _run(earlier, namespace)
    _run(block, namespace)


def test_not_run_blocks_are_skipped(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "```python\n# not-run\nraise SystemExit\n```\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n"
    )
    assert [b.code for b in runnable_blocks(doc)] == ["x = 1\n"]
