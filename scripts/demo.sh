#!/usr/bin/env bash
# Run flowkit's demo: creates .venv if needed, installs flowkit into it (the core: the demo runs on
# SQLite and needs no extra), runs `python -m flowkit.demo`.
# Arguments are passed to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
venv_ensure
venv_pip_install -e .
exec "$VENV_DIR/bin/python" -m flowkit.demo "$@"
