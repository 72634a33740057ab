"""Developer entry point (``alembic -c alembic.ini ...``): runs the migrations shipped in the package.

The environment logic and the revisions live in :mod:`flowkit.persistence.migrations`, so that an
installed flowkit (no checkout) can upgrade a database; this file only delegates to it.
"""

from flowkit.persistence.migrations import run_env

run_env()
