"""The web layer: thin views over the services, one blueprint per area."""

from __future__ import annotations

from flask import Flask


def register_web(app: Flask) -> None:
    # Imported here, not above: every view module imports this package (`..htmx`, `..forms`),
    # so importing them while the package itself loads would be an import circle.
    from . import errors, gpc, i18n, inputs, ratelimits, security, transactions
    from . import sessions as _sessions  # noqa: F401 (Flask-Login's user loader)
    from .api import mount_api
    from .auth.views import bp as auth_bp
    from .dev.views import bp as dev_bp
    from .guardian.views import bp as guardian_bp
    from .member import awaiting as _member_awaiting  # noqa: F401 (routes)
    from .member import deletion as _member_deletion  # noqa: F401 (routes)
    from .member import export as _member_export  # noqa: F401 (routes)
    from .member import notifications as _member_notifications  # noqa: F401 (routes)
    from .member.views import bp as member_bp
    from .ops.views import bp as ops_bp
    from .public.views import bp as public_bp
    from .staff import deletions as _staff_deletions  # noqa: F401 (routes)
    from .staff.views import bp as staff_bp
    from .webhooks.views import bp as webhooks_bp

    inputs.init_app(app)  # first: the converter must exist before any route is added
    transactions.init_app(app)
    ratelimits.init_app(app)
    security.init_app(app)
    i18n.init_app(app)
    errors.init_app(app)
    app.register_blueprint(public_bp)
    app.register_blueprint(ops_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(member_bp)
    if app.config.get("DEV_MAILBOX"):  # development and tests only: it shows every code
        app.register_blueprint(dev_bp)
    app.register_blueprint(guardian_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(webhooks_bp)
    gpc.init_app(app)  # Global Privacy Control on every page view
    mount_api(app)  # /api/v1: a small app of its own, beside the site
