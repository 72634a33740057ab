"""``python -m flowkit``: the ``flowkit`` command, for when the console script is not on PATH."""

from flowkit.cli.main import main

main()
