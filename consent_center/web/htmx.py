"""The one place that decides whether a request wants a page or an htmx fragment."""

from __future__ import annotations

from flask import Response, make_response, render_template, request


def wants_fragment() -> bool:
    """True for an htmx request that will swap part of the page (not a boosted full load)."""
    headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and headers.get("HX-Boosted") != "true"
        and headers.get("HX-Request-Type", "partial") != "full"
        and headers.get("HX-History-Restore-Request") != "true"
    )


def render_page_or_fragment(page: str, fragment: str, status: int = 200, **context) -> Response:
    """Render the full page, or only its fragment for htmx; always `Vary` on the headers that
    decide (a history restore is an htmx request that wants the page)."""
    template = fragment if wants_fragment() else page
    response = make_response(render_template(template, **context), status)
    response.vary.update(("HX-Request", "HX-History-Restore-Request"))
    return response

