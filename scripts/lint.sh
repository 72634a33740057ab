#!/usr/bin/env bash
# THE lint command, run by scripts/test.sh and by `tox -e lint`, so the two can never check different
# things (bench/ once failed the format check because only tox ran it).
#
#   scripts/lint.sh
#
# Runs, over flowkit conductor tests bench:
#   ruff check            (lint rules from pyproject.toml)
#   ruff format --check   (layout; fix with `ruff format flowkit conductor tests bench`)
#   mypy                  (paths and strictness from pyproject.toml's [tool.mypy])
# Every tool runs even when an earlier one fails, so one run shows every problem; the exit status is
# non-zero when any of them failed.
#
# The tools are taken from the Python given in LINT_PYTHON (scripts/test.sh passes .venv's), else from
# the checkout's .venv when there is one, else from the `python` first on PATH (tox's environment).
set -uo pipefail
cd "$(dirname "$0")/.."

python="${LINT_PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x .venv/bin/python && -z "${TOX_ENV_NAME:-}" ]]; then python=.venv/bin/python; else python=python; fi
fi
paths=(flowkit conductor tests bench examples scripts)
failed=()

run() {
    local name="$1"
    shift
    echo "-- $name"
    "$python" -m "$@" || failed+=("$name")
}

run "ruff check" ruff check "${paths[@]}"
run "ruff format --check" ruff format --check "${paths[@]}"
run "mypy" mypy

if ((${#failed[@]} > 0)); then
    echo "error: lint failed: $(printf '[%s] ' "${failed[@]}")" >&2
    exit 1
fi
