"""``python -m flowkit.demo [--pace SECONDS] [--workdir DIR]``."""

import sys

from flowkit.demo.main import main

sys.exit(main())
