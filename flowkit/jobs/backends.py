"""TaskFlow's module path for the job board backends; everything here is :mod:`flowkit.jobboard.backends`.

``fetch(name, url, persistence)`` takes a URL, as flowkit's does (not TaskFlow's settings dict).
"""

from __future__ import annotations

from flowkit.jobboard.backends import SCHEMES, display_url, fetch

__all__ = ["SCHEMES", "display_url", "fetch"]
