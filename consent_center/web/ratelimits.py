"""Rate limits stay where they are declared, and cost nothing elsewhere.

Flask-Limiter checks every request in a `before_request` hook, for default, application and
blueprint limits. This app declares no default or application limits, only per-view limits
(checked by their decorators, in the view) and the API blueprint's shared limit. So the hook
is narrowed to API requests: every other request (every page view, every static file)
skips the limiter's bookkeeping, which measured about a tenth of a millisecond per request.
"""

from __future__ import annotations

from flask import Flask, request

from ..extensions import limiter

# Blueprints with a limit declared on the blueprint itself (`limiter.limit(bp)` or
# `limiter.shared_limit(...)(bp)`); tests/test_app.py keeps this list true.
LIMITED_BLUEPRINTS = frozenset({"api"})


def _check_limited_blueprints() -> None:
    if request.blueprint in LIMITED_BLUEPRINTS:
        limiter._check_request_limit()


def init_app(app: Flask) -> None:
    if limiter.enabled and (app.config.get("RATELIMIT_DEFAULT") or
                            app.config.get("RATELIMIT_APPLICATION")):
        return  # global limits would need the hook on every request: leave it as it is
    hooks = app.before_request_funcs.setdefault(None, [])
    check = limiter._check_request_limit
    if check in hooks:
        hooks[hooks.index(check)] = _check_limited_blueprints
