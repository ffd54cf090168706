"""Consent Center: a member-facing privacy consent center (Flask application factory)."""

from __future__ import annotations

import os

from flask import Flask

from .config import PROJECT_ROOT, BaseConfig, environment_name, load_config


def create_app(config: BaseConfig | str | None = None, **overrides) -> Flask:
    """Create the application.

    :param config: a config object, an environment name, or None for `CONSENT_CENTER_ENV`
        (production when unset: it refuses to start without its settings).
    :param overrides: individual settings (tests use these).
    """
    if config is None or isinstance(config, str):
        if (config or environment_name()) == "development":
            _load_dotenv()
        config = load_config(config)
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(PROJECT_ROOT / "instance"),
    )
    app.config.from_object(config)
    app.config["ENV_NAME"] = config.ENV_NAME
    app.config.update(overrides)
    os.makedirs(app.instance_path, exist_ok=True)
    # Before prometheus_client is imported (by `observability.init_app`): it reads the
    # multiprocess directory once.
    from .observability import prepare_multiprocess

    prepare_multiprocess(app.config.get("METRICS_DIR"))

    # Imported here, not above: every module of the package imports this package first, so
    # importing them while it loads would be an import circle (and importing `domain` or a
    # model, as migrations and scripts do, would build the whole web app).
    from . import models  # noqa: F401  (register the tables)
    from .extensions import babel, csrf, db, limiter, login_manager, migrate
    from .notify.email import mail
    from .web import i18n

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.sign_in"
    login_manager.login_message = None  # the sign-in page itself says what to do
    limiter.init_app(app)
    mail.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale)

    from .web import register_web

    register_web(app)
    from . import metrics, observability

    metrics.listen_for_commits()
    # Around every layer: the site and the API mounted beside it.
    observability.init_app(app, metrics.IN_FLIGHT.inc, metrics.count_request)
    # Outermost, so the site and the API mounted beside it see the client's address.
    hops = app.config.get("PROXY_FIX_HOPS") or 0
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)

    from .cli import register_cli

    register_cli(app)
    return app


def _load_dotenv() -> None:
    env_file = PROJECT_ROOT / ".env"
    if env_file.exists():
        from dotenv import load_dotenv

        load_dotenv(env_file, override=False)
