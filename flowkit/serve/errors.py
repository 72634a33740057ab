"""How ``flowkit serve`` answers what went wrong: a status code and one line naming the problem.

Every flowkit error maps to a 4xx (bad input, unknown or ambiguous uuid, a state that forbids the
verb) or a 503 (the board or the database is unreachable); anything else is a 500 whose body names
only the exception's type: tracebacks go to the server's log, never to the client.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from flowkit.exceptions import (
    CancelRefused,
    FlowkitError,
    InvalidStateError,
    JobBoardConnectionError,
    MissingExtraError,
    NotFound,
    StorageError,
)

LOG = logging.getLogger("flowkit.serve")

__all__ = ["install", "status_of"]


def status_of(exc: FlowkitError) -> int:
    """The HTTP status for a flowkit error."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidStateError | CancelRefused):
        return 409
    if isinstance(exc, JobBoardConnectionError | MissingExtraError | StorageError):
        return 503  # unreachable, or a schema this server cannot use: nothing the client can fix
    return 400


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def flowkit_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FlowkitError)
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        LOG.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server's log"}, 500)

    app.add_exception_handler(FlowkitError, flowkit_error)
    app.add_exception_handler(Exception, unexpected)
