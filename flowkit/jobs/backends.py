"""TaskFlow's module path for the job board backends; everything here is :mod:`flowkit.jobboard.backends`.

``fetch(name, conf, persistence=..., client=...)`` takes a URL or TaskFlow's settings dict
(:mod:`flowkit.jobboard.backends.settings`).
"""

from __future__ import annotations

from flowkit.jobboard.backends import SCHEMES, display_url, fetch

__all__ = ["SCHEMES", "display_url", "fetch"]
