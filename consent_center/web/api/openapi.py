"""The OpenAPI 3.1 document of `/api/v1`, written by hand (tests/test_api.py keeps it true by
running schemathesis against the live app)."""

from __future__ import annotations

from ...domain import OPTIONAL_PURPOSES, Actor, Method
from ...services.api_tokens import AUDIENCES_READ, CONSENTS_READ, EVENTS_READ
from ...services.downstream import EVENT_TYPES, MAX_PAGE

PUBLIC_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
DATE_TIME = {"type": "string", "format": "date-time"}


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _problem_response(description: str, headers: dict | None = None) -> dict:
    response = {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("schemas", "Problem")}},
    }
    if headers:
        response["headers"] = headers
    return response


def _errors(*statuses: int) -> dict:
    names = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        406: "NotAcceptable",
        429: "TooManyRequests",
    }
    return {str(s): _ref("responses", names[s]) for s in statuses}


EVENT_SCHEMA = {
    "type": "object",
    "description": (
        "One change. The change feed lists these and each webhook delivery carries one, in the"
        " same shape. `id` is stable: use it to drop duplicates (delivery is at least once)."
    ),
    "required": ["id", "type", "created_at", "member_id"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "type": {"type": "string", "enum": list(EVENT_TYPES)},
        "created_at": DATE_TIME,
        "member_id": {
            "type": ["string", "null"],
            "description": (
                "The member's public id. In a `member.erased` event, the id the member had, for"
                " the erasure notice period (API_ERASURE_NOTICE_DAYS, 30 days by default), then"
                " null; earlier events of an erased member show its `erased-...` tombstone."
            ),
        },
        "consent": {
            "type": "object",
            "description": "Present in `consent.changed` events.",
            "required": ["purpose", "granted", "policy_version", "actor", "method"],
            "additionalProperties": False,
            "properties": {
                "purpose": {"type": "string", "enum": list(OPTIONAL_PURPOSES)},
                "granted": {"type": "boolean"},
                "policy_version": {"type": ["integer", "null"]},
                "actor": {"type": "string", "enum": [a.value for a in Actor]},
                "method": {"type": "string", "enum": [m.value for m in Method]},
            },
        },
    },
}


def _webhook(event_type: str, summary: str) -> dict:
    return {
        "post": {
            "summary": summary,
            "description": (
                "POSTed to each subscription of this event type. Verify "
                "`X-Consent-Signature: t=<unix seconds>,v1=<hex>`: HMAC-SHA256 with the "
                "subscription's secret over the bytes `<t>.` followed by the raw body; reject "
                "old timestamps. Answer 2xx once stored; 408, 429, 5xx and timeouts are retried "
                "with backoff, other statuses are not. Events of one member arrive in order."
            ),
            "parameters": [
                {"name": "X-Consent-Signature", "in": "header", "required": True,
                 "schema": {"type": "string"}},
                {"name": "X-Consent-Event-Id", "in": "header", "required": True,
                 "schema": {"type": "string", "format": "uuid"}},
                {"name": "X-Consent-Event-Type", "in": "header", "required": True,
                 "schema": {"type": "string", "enum": [event_type]}},
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("schemas", "Event")}},
            },
            "responses": {"2XX": {"description": "Received."}},
        }
    }  # fmt: skip


def openapi_document() -> dict:
    """The document as a plain dict."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Consent Center API",
            "version": "1.0.0",
            "description": (
                "Whom downstream systems may use, now. Every request but this document needs "
                "`Authorization: Bearer <token>` (made with `flask api-token create`) with the "
                "operation's scope, and is rate-limited per token (429 with Retry-After); an "
                "address that presents too many refused tokens gets 429 for a while, right "
                "tokens too. "
                "Errors are RFC 9457 problem documents. Answers are never cached: each reflects "
                "the latest consent at the moment of the request."
            ),
        },
        "security": [{"bearerAuth": []}],
        "paths": {
            "/api/v1/members/{member_id}/consents": {
                "get": {
                    "operationId": "getMemberConsents",
                    "summary": "One member's consents, and whether each is usable now",
                    "description": (
                        f"Scope `{CONSENTS_READ}`. `usable_now` is false for an unapproved "
                        "minor's account, for advertising to minors (unless allowed), for a yes "
                        "given under terms a later policy version changed (`needs_reconsent`), "
                        "and for anything not granted. Unknown and erased members are both 404."
                    ),
                    "parameters": [
                        {"name": "member_id", "in": "path", "required": True, "schema": PUBLIC_ID}
                    ],
                    "responses": {
                        "200": {
                            "description": "Each optional purpose.",
                            "content": {
                                "application/json": {"schema": _ref("schemas", "MemberConsents")}
                            },
                        },
                        **_errors(401, 403, 404, 429),
                    },
                }
            },
            "/api/v1/audiences/{purpose}": {
                "get": {
                    "operationId": "getAudience",
                    "summary": "Every member usable for a purpose now",
                    "description": (
                        f"Scope `{AUDIENCES_READ}`. Streamed in member id order as NDJSON (one "
                        "object per line; the default) or CSV (`Accept: text/csv`). Without "
                        "`limit` the whole audience streams in one response, in constant "
                        "memory. With `limit`, a page: when more follow, the `Link` header "
                        'holds the next page\'s URL (`rel="next"`, with `after` set to the '
                        "last member id of this page)."
                    ),
                    "parameters": [
                        {
                            "name": "purpose",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": list(OPTIONAL_PURPOSES)},
                        },
                        {
                            "name": "after",
                            "in": "query",
                            "description": "Start after this member id (the last one you got).",
                            "schema": PUBLIC_ID,
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "description": "Page size; omit to stream the whole audience.",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The members, in member id order.",
                            "headers": {
                                "Link": {
                                    "description": "The next page, on paged calls.",
                                    "schema": {"type": "string"},
                                }
                            },
                            "content": {
                                "application/x-ndjson": {
                                    "schema": {
                                        "type": "array",
                                        "description": "One AudienceMember per line.",
                                        "items": _ref("schemas", "AudienceMember"),
                                    }
                                },
                                "text/csv": {
                                    "schema": {
                                        "type": "array",
                                        "description": "A header line `member_id,since`, then "
                                        "one line per member.",
                                        "items": _ref("schemas", "AudienceMember"),
                                    }
                                },
                            },
                        },
                        **_errors(400, 401, 403, 404, 406, 429),
                    },
                }
            },
            "/api/v1/consent-events": {
                "get": {
                    "operationId": "getConsentEvents",
                    "summary": "The change feed: consent changes and erasures, in order",
                    "description": (
                        f"Scope `{EVENTS_READ}`. Start without `after`; then pass the "
                        "`next_cursor` of each answer (also in the `Link` header) and store it "
                        "once you have processed the items. Events come in the order they were "
                        "recorded (so, per member, the order they happened); one that was still "
                        "committing when you passed it is delivered on a later call. Never parse "
                        "the cursor."
                    ),
                    "parameters": [
                        {
                            "name": "after",
                            "in": "query",
                            "description": "An opaque cursor from a previous answer.",
                            "schema": {
                                "type": "string",
                                "pattern": "^[A-Za-z0-9_-]+$",
                                "maxLength": 4096,
                            },
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 1000,
                                "default": 100,
                            },
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The next events, and where to continue.",
                            "headers": {
                                "Link": {
                                    "description": "The URL of the next call.",
                                    "schema": {"type": "string"},
                                }
                            },
                            "content": {
                                "application/json": {"schema": _ref("schemas", "FeedPage")}
                            },
                        },
                        **_errors(400, 401, 403, 429),
                    },
                }
            },
        },
        "webhooks": {
            "consent.changed": _webhook("consent.changed", "A consent was given or withdrawn"),
            "member.erased": _webhook("member.erased", "A member's data was erased"),
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `flask api-token create NAME --scopes ...`.",
                }
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details.",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                },
                "ConsentAnswer": {
                    "type": "object",
                    "required": [
                        "purpose",
                        "state",
                        "policy_version",
                        "changed_at",
                        "usable_now",
                        "needs_reconsent",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "purpose": {"type": "string", "enum": list(OPTIONAL_PURPOSES)},
                        "state": {"type": "string", "enum": ["granted", "withdrawn", "not_given"]},
                        "policy_version": {
                            "type": ["integer", "null"],
                            "description": "The policy version number the answer was given under.",
                        },
                        "changed_at": {"type": ["string", "null"], "format": "date-time"},
                        "usable_now": {"type": "boolean"},
                        "needs_reconsent": {"type": "boolean"},
                    },
                },
                "MemberConsents": {
                    "type": "object",
                    "required": ["member_id", "consents"],
                    "additionalProperties": False,
                    "properties": {
                        "member_id": {"type": "string"},
                        "consents": {"type": "array", "items": _ref("schemas", "ConsentAnswer")},
                    },
                },
                "AudienceMember": {
                    "type": "object",
                    "required": ["member_id", "since"],
                    "additionalProperties": False,
                    "properties": {
                        "member_id": {"type": "string"},
                        "since": {**DATE_TIME, "description": "When this consent was given."},
                    },
                },
                "Event": EVENT_SCHEMA,
                "FeedPage": {
                    "type": "object",
                    "required": ["items", "next_cursor", "has_more"],
                    "additionalProperties": False,
                    "properties": {
                        "items": {"type": "array", "items": _ref("schemas", "Event")},
                        "next_cursor": {"type": "string"},
                        "has_more": {"type": "boolean"},
                    },
                },
            },
            "responses": {
                "BadRequest": _problem_response("A malformed parameter or cursor."),
                "Unauthorized": _problem_response(
                    "No token, or an unknown or revoked one.",
                    {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
                ),
                "Forbidden": _problem_response("The token lacks this operation's scope."),
                "NotFound": _problem_response("No such member (or erased), or no such purpose."),
                "NotAcceptable": _problem_response("Ask for application/x-ndjson or text/csv."),
                "TooManyRequests": _problem_response(
                    "Rate limit reached for this token, or too many refused tokens from "
                    "this address.",
                    {"Retry-After": {"schema": {"type": "string"}}},
                ),
            },
        },
    }
