"""Language: the member's stored choice, else the session's, else the one this browser chose
before (a long-lived cookie, so it outlives signing out), else the browser's."""

from __future__ import annotations

from datetime import date, datetime

from flask import Flask, Response, current_app, has_request_context, request, session
from flask_babel import get_locale, get_translations, gettext
from flask_login import current_user
from jinja2 import pass_context
from markupsafe import Markup

from ..domain import (
    CHANNEL_LABELS,
    LOCALE_HTML_LANG,
    LOCALE_LABELS,
    PURPOSES,
    REFUSAL_GROUNDS,
    REFUSAL_REMEDIES,
    WITHDRAWAL_NOTE,
    Locale,
)
from ..services.localtime import format_day, format_moment

_BROWSER_TAGS = {"en": Locale.EN, "zh": Locale.ZH}
LOCALE_COOKIE = "cc_locale"
# A language preference, no personal data: kept for a year, renewed on each choice.
LOCALE_COOKIE_MAX_AGE = 365 * 24 * 3600


def select_locale() -> str:
    if not has_request_context():  # CLI and workers pass the locale explicitly
        return Locale.EN
    if current_user and current_user.is_authenticated:
        return current_user.locale
    for chosen in (session.get("locale"), request.cookies.get(LOCALE_COOKIE)):
        if chosen in LOCALE_LABELS:
            return chosen
    return browser_locale()


def browser_locale() -> str:
    """The language the request's `Accept-Language` prefers (the API's only guide)."""
    if not has_request_context():
        return Locale.EN
    best = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-Hans"])
    return _BROWSER_TAGS.get((best or "en")[:2], Locale.EN)


def remember_locale(response: Response, locale: str) -> Response:
    """Keep `locale` on this browser (on a language switch, and at sign-in from the member's
    stored choice), so the site stays in it after signing out."""
    if locale in LOCALE_LABELS:
        response.set_cookie(
            LOCALE_COOKIE,
            locale,
            max_age=LOCALE_COOKIE_MAX_AGE,
            secure=current_app.config["SESSION_COOKIE_SECURE"],
            httponly=True,
            samesite="Lax",
        )
    return response


def init_app(app: Flask) -> None:
    app.jinja_env.filters["format_date"] = format_day
    app.jinja_env.filters["format_datetime"] = format_moment
    app.jinja_env.globals["purposes"] = PURPOSES
    app.jinja_env.globals["channel_labels"] = CHANNEL_LABELS
    app.jinja_env.filters["display_value"] = display_value
    app.jinja_env.globals["refusal_grounds"] = REFUSAL_GROUNDS
    app.jinja_env.globals["withdrawal_note"] = WITHDRAWAL_NOTE
    app.jinja_env.globals["refusal_remedies"] = REFUSAL_REMEDIES
    app.jinja_env.globals["locale_html_lang"] = LOCALE_HTML_LANG
    app.jinja_env.filters["purpose_titles"] = lambda keys: gettext(", ").join(
        str(PURPOSES[k].title) for k in keys
    )

    @app.context_processor
    def language_context() -> dict:
        current = str(get_locale() or Locale.EN)
        return {
            "locales": LOCALE_LABELS,
            "current_locale": current,
            "html_lang": LOCALE_HTML_LANG.get(current, "en"),
            **template_gettext(get_translations()),
        }


def template_gettext(translations) -> dict:
    """The templates' `_`, `gettext` and `ngettext` for one render, bound to the catalogue
    of the locale in force (Flask-Babel's `get_translations()`, looked up once per render
    rather than once per string: a page translates hundreds). They behave as Jinja's
    new-style gettext: the result is escaped like any value, then `%(name)s` is filled."""

    @pass_context
    def gettext(context, string: str, **variables):
        text = translations.ugettext(string)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % variables

    @pass_context
    def ngettext(context, singular: str, plural: str, num: int, **variables):
        variables.setdefault("num", num)
        text = translations.ungettext(singular, plural, num)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % variables

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext}


def display_value(value) -> object:
    """A stored value as a page shows it: dates and times in the reader's language, yes/no
    for flags, "(none)" for nothing."""
    if value is None or value == "":
        return Markup('<span class="muted">%s</span>') % gettext("(none)")
    if value is True or value is False:
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, datetime):
        return format_moment(value)
    if isinstance(value, date):
        return format_day(value)
    return value


def current_locale():
    """The request's babel Locale (Flask-Babel's `get_locale()`)."""
    return get_locale()
