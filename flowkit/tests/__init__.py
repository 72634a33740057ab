"""``flowkit.tests``: the few test helpers TaskFlow programs import from ``taskflow.tests``.

TaskFlow installs its test helpers with the package, and some of its own examples use them
(:mod:`.utils`). flowkit's tests live outside the package (``tests/`` in the repository); this is
only what a program moved over from TaskFlow needs to keep running.
"""
