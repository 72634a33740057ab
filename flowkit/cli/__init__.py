"""The ``flowkit`` command line: a click group (:mod:`flowkit.cli.main`) with one module per command."""
