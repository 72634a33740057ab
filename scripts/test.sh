#!/usr/bin/env bash
# THE test command: installs everything, starts the services that are missing, runs the whole suite.
#
#   scripts/test.sh [PYTEST ARGS...]
#
# 1. creates .venv if absent and installs flowkit with every extra (all) and the test and lint ones;
# 2. starts PostgreSQL, RabbitMQ and ZooKeeper when they are down (scripts/services.sh; ZooKeeper is
#    installed from Debian's package first when missing); with CI=true a service that cannot be
#    started fails the run, locally the tests that need it skip with a reason;
# 3. lints (scripts/lint.sh: ruff check, ruff format --check, mypy), then runs pytest with the
#    arguments given to this script.
# The exit status is pytest's, or non-zero when lint failed; pytest's 5 ("no tests collected") is a
# failure too. Lint failures do not stop the tests from running, so one run shows every problem.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
# shellcheck source=scripts/services.sh
source scripts/services.sh

venv_ensure
venv_pip_install -e '.[all,test,lint]'

echo "== services"
services_start

echo "== lint"
lint_status=0
LINT_PYTHON="$VENV_DIR/bin/python" bash scripts/lint.sh || lint_status=$?

echo "== tests"
test_status=0
"$VENV_DIR/bin/pytest" "$@" || test_status=$?

if ((test_status == 5)); then
    echo "error: pytest collected no tests; a run that tests nothing is a failure" >&2
fi
if ((lint_status != 0)); then
    echo "error: lint failed (scripts/lint.sh, output above)" >&2
fi
if ((test_status != 0)); then
    exit "$test_status"
fi
exit "$lint_status"
