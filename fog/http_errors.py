"""One shape for every refusal of the fog's HTTP API: ``{"error": what, "where": which input}``."""

from __future__ import annotations

import json

from aiohttp import web

_BY_STATUS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 404: web.HTTPNotFound, 409: web.HTTPConflict,
    422: web.HTTPUnprocessableEntity, 500: web.HTTPInternalServerError, 503: web.HTTPServiceUnavailable,
}


def http_error(status: int, error: str, where: str) -> web.HTTPException:
    """The exception to raise (a status it does not know becomes 400)."""
    cls = _BY_STATUS.get(status, web.HTTPBadRequest)
    return cls(text=json.dumps({"error": error, "where": where}), content_type="application/json")
