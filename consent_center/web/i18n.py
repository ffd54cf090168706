"""Language: the member's stored choice, else the session's, else the browser's."""

from __future__ import annotations

from flask import Flask, has_request_context, request, session
from flask_login import current_user
from markupsafe import Markup

from ..domain import LOCALE_HTML_LANG, LOCALE_LABELS, Locale

_BROWSER_TAGS = {"en": Locale.EN, "zh": Locale.ZH}


def select_locale() -> str:
    if not has_request_context():  # CLI and workers pass the locale explicitly
        return Locale.EN
    if current_user and current_user.is_authenticated:
        return current_user.locale
    chosen = session.get("locale")
    if chosen in LOCALE_LABELS:
        return chosen
    best = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-Hans"])
    return _BROWSER_TAGS.get((best or "en")[:2], Locale.EN)


def init_app(app: Flask) -> None:
    from flask_babel import format_date, format_datetime, gettext

    from ..domain import PURPOSES, REFUSAL_GROUNDS

    app.jinja_env.filters["format_date"] = lambda value, fmt="long": format_date(value, fmt)
    app.jinja_env.filters["format_datetime"] = lambda value: format_datetime(value, "medium")
    app.jinja_env.globals["purposes"] = PURPOSES
    app.jinja_env.globals["static_inventory_table"] = _static_inventory_table
    app.jinja_env.globals["refusal_grounds"] = REFUSAL_GROUNDS
    app.jinja_env.filters["purpose_titles"] = lambda keys: gettext(", ").join(
        str(PURPOSES[k].title) for k in keys
    )

    @app.context_processor
    def language_context() -> dict:
        from flask_babel import get_locale

        current = str(get_locale() or Locale.EN)
        return {
            "locales": LOCALE_LABELS,
            "current_locale": current,
            "html_lang": LOCALE_HTML_LANG.get(current, "en"),
        }


_STATIC_TABLES: dict[tuple[str, str], Markup] = {}


def _static_inventory_table(group) -> Markup:
    """The field table of an inventory group that shows no member values, rendered once per
    language and process: it is the same for everyone, and it is most of /me's markup."""
    from flask import render_template
    from flask_babel import get_locale

    key = (group.table, str(get_locale() or Locale.EN))
    html = _STATIC_TABLES.get(key)
    if html is None:
        html = Markup(render_template("member/_inventory_table.html", group=group))
        _STATIC_TABLES[key] = html
    return html
