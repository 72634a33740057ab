"""alembic's entry point for the shipped migrations; the work is in ``run_env``."""

from flowkit.persistence.migrations import run_env

run_env()
