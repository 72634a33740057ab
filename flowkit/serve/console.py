"""The web console's pages: one HTML page at ``/`` and its script and style, all shipped in the package.

Nothing comes from a CDN or any other host: consoles often run on networks without internet. The
page is a small hand-written single-page app (``console_static/``): it reads the REST API, draws a
flow's DAG as SVG and follows the flow's server-sent events.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

__all__ = ["STATIC_FILES", "router"]

router = APIRouter(include_in_schema=False)
STATIC_FILES = {"console.js": "text/javascript", "dag.js": "text/javascript", "console.css": "text/css"}
"""The files under ``/static/`` (a fixed list: nothing else of the package can be read this way)."""


def _read(name: str) -> str:
    return resources.files("flowkit.serve").joinpath("console_static", name).read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    """The console (its views are chosen by the URL's ``#`` part, so any view can be bookmarked)."""
    return HTMLResponse(_read("index.html"), headers={"Cache-Control": "no-cache"})


@router.get("/static/{name}")
def static(name: str) -> Response:
    media = STATIC_FILES.get(name)
    if media is None:
        raise HTTPException(404, f"no static file {name!r}")
    return Response(_read(name), media_type=media, headers={"Cache-Control": "no-cache"})
