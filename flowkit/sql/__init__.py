"""The SQL foundation that persistence and the SQL job board both stand on.

- :mod:`flowkit.sql.urls`: one parser for database URLs (which schemes, the ``postgres://`` alias, bad
  URLs as a clear error with the password hidden) and the option values their queries carry.
- :mod:`flowkit.sql.engines`: one factory for SQLAlchemy engines (the same SQLite settings everywhere),
  and one engine per database per process, so a board and persistence on the same URL share a pool.

The schema of every flowkit table has one migrations tree (:mod:`flowkit.persistence.migrations`),
which runs on an engine from here. Importing this package does not import SQLAlchemy; its modules do.
"""
