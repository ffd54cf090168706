"""Typed domain errors; one handler maps them to 404/403/409/422/429/503 responses."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    status = 400

    def __init__(self, message: object = "", field_errors: dict[str, list] | None = None):
        super().__init__(str(message))
        self.message = message
        self.field_errors = field_errors or {}


class NotFound(DomainError):
    """The object does not exist or is not yours: the two are indistinguishable on purpose."""

    status = 404


class NotAllowed(DomainError):
    status = 403


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    """Input breaks a rule; `field_errors` maps form fields to messages."""

    status = 422


class TooManyAttempts(DomainError):
    status = 429


class Unavailable(DomainError):
    """Refused for now (a spent site-wide budget); `retry_after` may say for how long."""

    status = 503
    retry_after: int | None = None
