"""TaskFlow's conductor API path: ``flowkit.conductors.backends.fetch("blocking", name, board)``.

flowkit's conductor is the top-level :mod:`conductor` package (an application on top of flowkit);
this package is a thin adapter with TaskFlow's names over it, in the applications layer too.
"""
