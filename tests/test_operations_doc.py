"""Every environment variable the code reads is documented in docs/operations.md, and nothing else is."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIABLE = re.compile(r"\bFLOWKIT_[A-Z][A-Z_]*[A-Z]\b")


def _in_code() -> set[str]:
    found: set[str] = set()
    for package in ("flowkit", "conductor"):
        for path in (ROOT / package).rglob("*.py"):
            found |= set(VARIABLE.findall(path.read_text()))
    return found


def _documented() -> set[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text[text.index("## Environment variables") :]
    return set(re.findall(r"^\| `(FLOWKIT_[A-Z_]+)` \|", table, re.MULTILINE))


def test_every_environment_variable_is_documented() -> None:
    code = _in_code()
    assert {"FLOWKIT_PERSISTENCE", "FLOWKIT_BOARD", "FLOWKIT_TOKEN"} <= code
    assert code == _documented()
