"""`/api/v1`: one member's consents, audiences, the change feed and the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from ...services.api_tokens import AUDIENCES_READ, CONSENTS_READ, EVENTS_READ
from ...services.downstream import (
    MAX_PAGE,
    BadQuery,
    audience_page,
    check_purpose,
    decode_cursor,
    encode_cursor,
    iso,
    read_change_feed,
    read_member_consents,
    stream_audience,
)
from ..ratelimits import hit
from ..transactions import read_only
from .auth import (
    address_blocked,
    admit_token,
    authenticate,
    bearer_token,
    checks_token_itself,
    missing_token,
    rate_limit_key,
    require_scope,
    token_checked_in_query,
    too_many_refused_tokens,
)
from .openapi import openapi_document
from .problems import problem

# Served by the API app (`web/api/__init__.py`), which is mounted at /api/v1.
bp = Blueprint("api", __name__)

NDJSON = "application/x-ndjson"
CSV = "text/csv"
FEED_PAGE = 100
FEED_MAX_PAGE = 1000
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def count_request(token: str | None, address: str | None):
    """Count a request against its token's rate limit (or its address's, without one):
    None when it may go on, else the 429 problem."""
    wait = hit(current_app.config["API_RATE_LIMIT"], "api", rate_limit_key(token, address))
    return None if wait is None else too_many_requests(wait)


def too_many_requests(wait: int) -> Response:
    """The 429 problem, with the seconds until the limit lets requests through again."""
    return problem(
        429,
        "Too many requests for this API token; slow down and retry later.",
        {"Retry-After": str(wait)},
    )


@bp.before_request
def require_token():
    """Every request counts against its token's rate limit (or its address's, without one);
    every request but the OpenAPI document carries a live token (checked here, or in the
    view's own query), from an address that has not had too many tokens refused."""
    refused = count_request(bearer_token(), request.remote_addr)
    if refused is not None:
        return refused
    if request.endpoint == "api.openapi":
        return None
    wait = address_blocked(current_app, request.remote_addr)
    if wait is not None:
        return too_many_refused_tokens(wait)
    if checks_token_itself(
        current_app.view_functions.get(request.endpoint or "")
    ):
        return None
    return authenticate()


def _limit(default: int | None, maximum: int) -> int | None:
    value = request.args.get("limit")
    if value is None:
        return default
    if not (value.isascii() and value.isdigit() and len(value) < 7 and 1 <= int(value) <= maximum):
        raise BadQuery(f"limit must be a whole number from 1 to {maximum}.")
    return int(value)


@bp.get("/openapi.json")
@read_only
def openapi():
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi_document())


@bp.get("/members/<member_id>/consents")
@read_only
@token_checked_in_query
def consents(member_id: str):
    """Each optional purpose's current answer for one member, and whether it is usable now."""
    token = bearer_token()
    if token is None:
        return missing_token()
    answer = read_member_consents(token, member_id)
    refused = admit_token(answer.token, CONSENTS_READ)
    if refused is not None:
        return refused
    return jsonify(
        {
            "member_id": member_id,
            "consents": [
                {
                    "purpose": a.purpose,
                    "state": a.state,
                    "policy_version": a.policy_version,
                    "changed_at": iso(a.changed_at),
                    "usable_now": a.usable_now,
                    "needs_reconsent": a.needs_reconsent,
                }
                for a in answer.consents()
            ],
        }
    )


def _ndjson(batches: Iterable[Sequence]) -> Iterator[str]:
    # Public ids are URL-safe base64 (new_public_id) and `since` is ISO 8601 text from the
    # database, so neither needs JSON escaping.
    for batch in batches:
        yield "".join(f'{{"member_id":"{pid}","since":"{since}"}}\n' for pid, since in batch)


def _csv(batches: Iterable[Sequence]) -> Iterator[str]:
    yield "member_id,since\r\n"
    for batch in batches:
        yield "".join(f"{pid},{since}\r\n" for pid, since in batch)


@bp.get("/audiences/<purpose>")
@read_only
@require_scope(AUDIENCES_READ)
def audience(purpose: str):
    """Every member usable for the purpose now, streamed as NDJSON or CSV, by public id."""
    check_purpose(purpose)
    if request.accept_mimetypes:
        mimetype = request.accept_mimetypes.best_match([NDJSON, CSV])
        if mimetype is None:
            return problem(406, f"This list comes as {NDJSON} (the default) or {CSV}.")
    else:
        mimetype = NDJSON
    after = request.args.get("after")
    if after is not None and not _PUBLIC_ID.fullmatch(after):
        raise BadQuery("after must be a member id from a previous page.")
    limit = _limit(None, MAX_PAGE)
    headers = {"Vary": "Accept"}
    if limit is None:
        batches = stream_audience(purpose, after=after)
    else:
        rows, next_after = audience_page(purpose, after=after, limit=limit)
        batches = [rows]
        if next_after is not None:
            link = url_for(".audience", purpose=purpose, after=next_after, limit=limit)
            headers["Link"] = f'<{link}>; rel="next"'
    body = (_csv if mimetype == CSV else _ndjson)(batches)
    # No stream_with_context: the batches need no request context (they read on their own
    # connection), and Flask 3.1 tears down the request's session before the body is sent.
    return Response(body, mimetype=mimetype, headers=headers)


@bp.get("/consent-events")
@read_only
@require_scope(EVENTS_READ)
def consent_events():
    """The change feed: consent changes and erasures, in order, from an opaque cursor."""
    cursor = decode_cursor(request.args.get("after"))
    limit = _limit(FEED_PAGE, FEED_MAX_PAGE)
    page = read_change_feed(cursor, limit)
    next_cursor = encode_cursor(page.cursor)
    response = jsonify({"items": page.items, "next_cursor": next_cursor, "has_more": page.has_more})
    link = url_for(".consent_events", after=next_cursor, limit=limit)
    response.headers["Link"] = f'<{link}>; rel="next"'
    return response
