"""RFC 9457 problem documents for the API."""

from __future__ import annotations

import json

from flask import Response
from werkzeug.http import HTTP_STATUS_CODES

PROBLEM_JSON = "application/problem+json"


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """A problem document: `type` about:blank, so `title` is the status's standard phrase."""
    body = {
        "type": "about:blank",
        "title": HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON, headers=headers)
