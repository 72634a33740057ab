# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/demo.sh, from the repository root: one way to make the
# project's virtualenv (.venv) and install flowkit into it.

VENV_DIR=".venv"
VENV_PIP_LOG="$VENV_DIR/pip-install.log"

# Create .venv with the machine's python3 unless a working one (with pip) is already there: a run
# interrupted while the venv was being made leaves a python without pip, which is made again.
venv_ensure() {
    if [[ -x "$VENV_DIR/bin/python" ]] && ! "$VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1; then
        echo "== $VENV_DIR has no working pip (an interrupted set-up?): making it again"
        rm -rf "$VENV_DIR"
    fi
    if [[ ! -x "$VENV_DIR/bin/python" ]]; then
        echo "== creating $VENV_DIR"
        python3 -m venv "$VENV_DIR"
    fi
}

# pip install ARGS... into .venv, quietly; the full log is printed only when pip fails.
venv_pip_install() {
    echo "== pip install $* (log: $VENV_PIP_LOG)"
    if ! "$VENV_DIR/bin/python" -m pip install --quiet "$@" >"$VENV_PIP_LOG" 2>&1; then
        cat "$VENV_PIP_LOG" >&2
        echo "error: pip install $* failed (log above, also in $VENV_PIP_LOG)" >&2
        return 1
    fi
}
