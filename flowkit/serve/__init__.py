"""``flowkit serve``: the web console, the REST API (``/api/v1``), ``/metrics`` and ``/healthz``.

Needs the ``serve`` extra (FastAPI, uvicorn, prometheus_client); nothing below the applications layer
imports this package, so the in-memory engine stays light.
"""
